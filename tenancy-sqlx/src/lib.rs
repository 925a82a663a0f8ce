//! The PostgreSQL runtime of [tenancy](https://docs.rs/tenancy), on sqlx.
//!
//! Most users depend on the `tenancy` facade crate, which re-exports this one with the
//! `#[tenant_scoped]` attribute. What lives here:
//!
//! - [`Tenancy`]: the pool and the tenant registry; resolution by id, slug and host
//!   ([`Tenancy::resolve_host`] ...), tenant creation, the startup shape check ([`Tenancy::verify`]);
//! - the capabilities: [`TenantCtx`] (one tenant), [`TenantTx`] (a transaction of one tenant) and
//!   [`Superuser`] (cross-tenant, audited);
//! - [`Repo`], [`Select`] and [`Raw`]: every way to a model's rows, each demanding a [`Scope`].
//! - [`Report`] (from [`Repo::report`]): rows and aggregates across tenants, demanding a
//!   [`Superuser`], audited; [`Tenancy::impersonate`] and [`Tenancy::audit_log`] likewise.
//! - [`rls`]: optional row-level security, PostgreSQL's second check of the same isolation
//!   ([`TenancyBuilder::row_level_security`]).
//!
//! The guarantee lives in these signatures: there is no function in this crate that reads or
//! writes a tenant-scoped table without a `TenantCtx` (or `TenantTx`), and none that reads
//! across tenants without a `Superuser`. Generated code calls only these functions, so it can do
//! nothing a user could not.
//!
//! # The pipeline, and where each step lives
//!
//! 1. **Connect** (`tenancy/builder.rs`): the builder opens the pools (`runtime.rs`, the leaf
//!    every token shares), installs or checks the registry (`registry/schema.rs`) and starts
//!    the listener for registry changes (`registry/notify.rs`).
//! 2. **Mint a token** (`tenancy/resolve.rs`): a lookup through the cache (`registry/cache.rs`)
//!    or the registry, or an audited impersonation, turns an active tenant's row into a
//!    `TenantCtx`, with where its rows live ([`Home`]) resolved once.
//! 3. **Open a unit of work** (`ctx.rs`): a `Scope` checks the token is still live (`revoked.rs`)
//!    and gets its connection (`conn.rs`).
//! 4. **Run statements** (the repository, queries, raw SQL, reports): SQL built in one place and
//!    bound to the tenant, after the model check (`verify.rs`) passed the table once.
//! 5. **Administer** (`tenancy/{lifecycle,admin,members,migrate,export,spare,moving}.rs`): every change
//!    is written through `Superuser::audited` (`superuser.rs`), with its audit row, in one
//!    transaction.

// First: its macro is used by the doc examples of the modules below.
#[macro_use]
mod doc_setup;

// The handle and its methods, and the axum layer over it.
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod tenancy;
// The registry: rows, cache, notifications, its own schema; and the server's own catalog.
mod catalog;
mod registry;
// The tokens and the statement path.
mod bind;
mod column;
mod criteria;
mod ctx;
mod model;
mod query;
mod raw;
mod repo;
mod report;
mod sql;
mod unit;
mod value;
// The work behind the handle's admin methods.
mod archive;
mod lifecycle;
mod membership;
mod migrate;
mod moving;
#[cfg(feature = "serde")]
mod records;
pub mod rls;
mod spare;
mod superuser;
mod verify;
mod verify_citus;
mod verify_deployment;
// Own-database placement: the per-server connection budget, provisioning, names.
mod databases;
// The leaf: pools and connections, and the state and payloads they hold.
mod checked;
mod conn;
mod error;
mod revoked;
mod runtime;
mod search_path;
mod server;
mod shape;
// The crate's own unit tests use it too.
#[cfg(any(test, feature = "testing"))]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use sqlx;
pub use tenancy_core::home::validate_server_key;
pub use tenancy_core::{
    Home, Hostname, Placement, Slug, TenantId, TenantName, TenantRef, TenantStatus, ValidationError,
};
pub use uuid;

pub use archive::{ArchiveOptions, ArchiveProgress, ArchiveSummary, ArchivedTable, TenantArchive};
pub use column::{
    Assignment, Column, ColumnValue, DeclaresColumn, DecodeColumns, FieldRefs, Filter, Order,
    ReadOnly, TextColumn, Writable,
};
pub use ctx::{TenantCtx, TenantTx};
pub use error::{ArchiveError, Error, Lookup, MigrationError, ReportError, Result};
pub use lifecycle::Purged;
pub use membership::{Member, Membership};
pub use migrate::{
    MigrateOptions, Migration, MigrationFailure, MigrationReport, MigrationTarget, Migrations,
    Outcome, Progress,
};
pub use model::{ColumnMeta, ColumnType, Model, ModelMeta, NewModel, TenantScoped};
pub use moving::{DEFAULT_MOVE_LOCK_WAIT, MoveOptions, Moved, MovedTable, OldCopy};
pub use query::Select;
pub use raw::{GlobalWrite, Raw, RawSqlRefusal, RefusalKind};
pub use registry::{NewTenant, Tenant};
pub use repo::Repo;
pub use report::{
    AUTO_CACHE_MAX_SCHEMAS, Agg, AggKind, Aggregated, Avg, Count, DEFAULT_REPORT_BATCH,
    DEFAULT_REPORT_CONCURRENCY, Max, Min, Numeric, Orderable, PROBE_SCHEMAS, Report,
    ReportAggregate, Sum, Total,
};
pub use shape::ShapeReport;
pub use superuser::Superuser;
pub use superuser::{AuditQuery, AuditRecord, DEFAULT_AUDIT_LIMIT};
pub use tenancy::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_DATABASE_BUDGET, DEFAULT_PER_DATABASE,
    DEFAULT_STATEMENT_CACHE, ServerEntry, StatementMode, Tenancy, TenancyBuilder,
};
pub use unit::Scope;
pub use value::{BindValue, Value};
pub use verify_citus::{CitusReport, CitusTable, Distribution};
pub use verify_deployment::DeploymentReport;

/// What `#[tenant_scoped]` expansions use. Not a stable API, and not a way around the scope:
/// nothing here runs SQL.
#[doc(hidden)]
pub mod __private {
    pub use crate::unit::TenantUnit;
}
