//! Tenant identities for the [`tenancy`](https://docs.rs/tenancy) crate.
//!
//! This crate holds what every other part of tenancy agrees on and that needs no database:
//!
//! - [`TenantId`], the uuid that names a tenant;
//! - [`TenantRef`], a serialisable reference to a tenant, for job payloads and cache keys;
//! - [`Placement`] and [`TenantStatus`], as recorded in the tenant registry;
//! - validation of the strings users type: [`Slug`], [`Hostname`] and SQL identifiers ([`ident`]).
//!
//! The capability tokens (`TenantCtx`, `Superuser`) are not here: Rust privacy is per crate, so a
//! token defined here would need a public constructor for the registry crate to mint it, and then
//! anyone could. They live in `tenancy-sqlx`, the crate that owns the registry.

mod error;
pub mod home;
mod host;
mod id;
pub mod ident;
mod name;
mod placement;
mod slug;
mod tenant_ref;

pub use error::ValidationError;
pub use home::{DEFAULT_TENANT_COLUMN, Home};
pub use host::Hostname;
pub use id::TenantId;
pub use name::TenantName;
pub use placement::{Placement, TenantStatus};
pub use slug::Slug;
pub use tenant_ref::TenantRef;
