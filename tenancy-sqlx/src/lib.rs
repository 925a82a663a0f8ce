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

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod bind;
mod column;
mod conn;
mod ctx;
mod databases;
mod error;
mod exec;
mod export;
mod lifecycle;
mod membership;
mod migrate;
mod model;
mod query;
mod raw;
mod registry;
mod repo;
mod report;
pub mod rls;
mod runtime;
mod search_path;
mod spare;
mod sql;
mod superuser;
mod value;
mod verify;

pub use sqlx;
pub use tenancy_core::{
    Hostname, Placement, Slug, TenantId, TenantRef, TenantStatus, ValidationError,
};
pub use uuid;

pub use column::{
    Assignment, Column, ColumnValue, DeclaresColumn, DecodeColumns, FieldRefs, Filter, Order,
    ReadOnly, TextColumn, Writable,
};
pub use ctx::{Scope, TenantCtx, TenantTx};
pub use error::{Error, Lookup, Result};
pub use export::{ArchivedTable, TenantArchive};
pub use lifecycle::Purged;
pub use membership::{Member, Membership};
pub use migrate::{
    MigrateOptions, Migration, MigrationReport, MigrationTarget, Migrations, Outcome, Progress,
};
pub use model::{ColumnMeta, ColumnType, Model, ModelMeta, NewModel, TenantScoped};
pub use query::Select;
pub use raw::{Raw, RawSqlRefusal, RefusalKind};
pub use registry::{NewTenant, Tenant};
pub use repo::Repo;
pub use report::{
    AUTO_CACHE_MAX_SCHEMAS, Agg, AggKind, Aggregated, Avg, Count, DEFAULT_REPORT_BATCH,
    DEFAULT_REPORT_CONCURRENCY, Max, Min, Numeric, Orderable, PROBE_SCHEMAS, Report,
    ReportAggregate, Sum, Total,
};
pub use runtime::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_STATEMENT_CACHE, StatementMode, Tenancy, TenancyBuilder,
};
pub use superuser::Superuser;
pub use superuser::{AuditQuery, AuditRecord, DEFAULT_AUDIT_LIMIT};
pub use value::{BindValue, Value};
pub use verify::ShapeReport;

/// What `#[tenant_scoped]` expansions use. Not a stable API, and not a way around the scope:
/// nothing here runs SQL.
#[doc(hidden)]
pub mod __private {
    pub use crate::ctx::Exec;
}
