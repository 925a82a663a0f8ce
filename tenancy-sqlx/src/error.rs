//! The runtime's error, and the typed causes of its migration, archive and report variants.
//!
//! Every variant that wraps a lower error (the server's, an I/O error) returns it from
//! [`source`](std::error::Error::source) and also says it in its message, so that printing the
//! top error alone still says why.

use std::fmt;

use tenancy_core::{Placement, TenantId, ValidationError};
use thiserror::Error;

mod archive;
mod migration;
mod report;

pub use archive::ArchiveError;
pub use migration::MigrationError;
pub use report::ReportError;

/// The result type of tenancy's runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a tenant was looked up, for [`Error::TenantNotFound`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lookup {
    /// By tenant id.
    Id(TenantId),
    /// By slug.
    Slug(String),
    /// By host name.
    Host(String),
}

impl fmt::Display for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "id {id}"),
            Self::Slug(slug) => write!(f, "slug {slug:?}"),
            Self::Host(host) => write!(f, "host {host:?}"),
        }
    }
}

/// Everything that can go wrong in tenancy's runtime.
///
/// Tenant resolution, creation and the raw-SQL escape hatch get typed variants so that callers
/// can map them (an unknown host to 404, a suspended tenant to 403, a taken slug to 409) without
/// parsing messages. Database errors pass through as [`Error::Database`], the `sqlx::Error`
/// itself as its [`source`](std::error::Error::source); [`Error::sqlstate`] reads the server's
/// SQLSTATE from whichever variant carries one.
///
/// ```
/// use tenancy_sqlx::{Error, MigrationError, Migrations};
///
/// let err = Migrations::from_static(&[(-1, "minus one", "SELECT 1")]).unwrap_err();
/// assert!(matches!(err, Error::Migration(MigrationError::NegativeVersion { version: -1 })));
/// assert_eq!(err.sqlstate(), None); // refused before any server saw it
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// No tenant matches the lookup.
    #[error("no tenant with {0}")]
    TenantNotFound(Lookup),
    /// The tenant exists but is suspended; it resolves again once resumed.
    #[error("tenant {slug:?} ({id}) is suspended")]
    TenantSuspended {
        /// The tenant.
        id: TenantId,
        /// Its slug.
        slug: String,
    },
    /// The tenant is soft-deleted; it resolves again only if restored.
    #[error("tenant {slug:?} ({id}) is deleted")]
    TenantDeleted {
        /// The tenant.
        id: TenantId,
        /// Its slug.
        slug: String,
    },
    /// The context was resolved before its tenant was suspended, deleted, purged or moved
    /// (through this `Tenancy`, or another whose notification reached this one), or before this handle's
    /// registry listener lost its connection and may have missed such a change: it acts no
    /// more. Resolve again (which refuses the tenant until it is active again).
    #[error(
        "tenant {slug:?} ({id}) may have been suspended, deleted or moved after this context was resolved; resolve it again"
    )]
    ContextRevoked {
        /// The tenant.
        id: TenantId,
        /// Its slug, when the context was resolved.
        slug: String,
    },
    /// A slug, host, identifier or tenant id given by a caller was refused. Nothing was created.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Another tenant already has this slug.
    #[error("the slug {0:?} is taken by another tenant")]
    SlugTaken(String),
    /// Another tenant already serves this host.
    #[error("the host {0:?} belongs to another tenant")]
    HostTaken(String),
    /// A tenant with this id already exists.
    #[error("a tenant with id {0} already exists")]
    TenantIdTaken(TenantId),
    /// A tenant with this id was purged: its id is never given to another tenant, so that
    /// nothing still holding it (a job payload, a cache, a stale process) reaches the new one.
    #[error("the tenant id {0} belonged to a purged tenant and cannot be used again")]
    TenantIdPurged(TenantId),
    /// A lifecycle move that the tenant's status does not allow (resuming an active tenant,
    /// purging one that is not soft-deleted ...). Nothing was changed.
    #[error("cannot {action} tenant {id}: it is {status}")]
    WrongStatus {
        /// The tenant.
        id: TenantId,
        /// Its status.
        status: tenancy_core::TenantStatus,
        /// What was attempted.
        action: &'static str,
    },
    /// A tenant name was empty or too long.
    #[error("invalid tenant name: {0}")]
    InvalidName(&'static str),
    /// The placement is not supported by this version of the runtime.
    #[error("the {0} placement is not supported yet")]
    UnsupportedPlacement(Placement),
    /// A model's description (table or column names) is invalid. Reported on first use.
    #[error("model {model}: {reason}")]
    InvalidModel {
        /// The model's Rust type name.
        model: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A model's table does not have the shape tenant isolation needs (see
    /// [`Tenancy::verify`](crate::Tenancy::verify)).
    #[error("{0}")]
    TableShape(crate::shape::ShapeReport),
    /// Raw SQL given to the escape hatch could reach rows outside the tenant, or cannot be read
    /// with certainty. The statement was not sent; the [`RawSqlRefusal`](crate::RawSqlRefusal)
    /// names the identifier, why, and what to write instead.
    #[error("raw SQL refused: {0}")]
    UnscopedSql(crate::raw::refusal::RawSqlRefusal),
    /// A migration could not be loaded or applied; what it ran on was rolled back. The
    /// [`MigrationError`] says which target, which version, and what failed.
    #[error("migration error: {0}")]
    Migration(#[from] MigrationError),
    /// A migration's text would end or escape the transaction tenancy runs it in (`COMMIT`,
    /// `BEGIN`, `ROLLBACK`, a savepoint, `CALL` of a procedure that may commit, a `DO` block
    /// that commits). Refused before anything ran.
    #[error("migration {file}, line {line}: {reason}")]
    MigrationRefused {
        /// The migration's file (`<version>_<description>.sql`).
        file: String,
        /// The line, from 1, where the refused statement starts.
        line: usize,
        /// What was refused, and what to write instead.
        reason: String,
    },
    /// A tenant archive is malformed, or does not fit the tenant it is imported into.
    /// The [`ArchiveError`] says which tenant, which table and what.
    #[error("tenant archive: {0}")]
    Archive(#[from] ArchiveError),
    /// A cross-tenant report cannot run as asked: a negative limit or offset, or an ordering on
    /// a column whose type a report cannot merge (see [`Report`](crate::Report)); the
    /// [`ReportError`] says which.
    #[error("report: {0}")]
    Report(#[from] ReportError),
    /// Row-level security was asked for but would not hold: the connected role is a
    /// PostgreSQL superuser or has `BYPASSRLS` (see
    /// [`TenancyBuilder::row_level_security`](crate::TenancyBuilder::row_level_security)).
    #[error("row-level security: {0}")]
    RowLevelSecurity(String),
    /// The server could not be reached: nothing listens there, the name does not resolve, it
    /// did not answer within [`TenancyBuilder::acquire_timeout`](crate::TenancyBuilder::acquire_timeout),
    /// or it refused the login.
    #[error("cannot connect to PostgreSQL at {server}: {cause}")]
    Connect {
        /// `host:port`, or the Unix socket's path.
        server: String,
        /// Why, as the operating system or the server said it.
        cause: String,
    },
    /// The registry listener connected and listens, but a notification sent through the
    /// handle's pool never reached it, so it would miss every change made elsewhere. Its
    /// `LISTEN` runs behind a pooler in transaction mode (PgBouncer lends its server connection
    /// to others), or [`TenancyBuilder::notify_url`](crate::TenancyBuilder::notify_url) names
    /// another database than the pool's (notifications are per database).
    #[error(
        "registry notifications sent through the pool do not reach the listener at {listener}: \
         a pooler in transaction mode (PgBouncer) lends its connection to others, or notify_url \
         names another database than the pool's; set notify_url to a direct connection to the \
         same database, or turn listening off with listen_for_changes(false) and rely on the \
         cache's time-to-live"
    )]
    NotificationsUnheard {
        /// The listener's `host:port/database`.
        listener: String,
    },
    /// The tenant registry (schema `tenancy`) is missing or older than this version needs, and
    /// this handle may not install it (see
    /// [`TenancyBuilder::install_registry`](crate::TenancyBuilder::install_registry)).
    #[error(
        "the tenancy registry is {0}; install it with Tenancy::install as a role that may create schemas in this database"
    )]
    RegistryNotInstalled(String),
    /// [`TenantTx::commit`](crate::TenantTx::commit) on a transaction in which a statement
    /// failed: PostgreSQL had already aborted it, so none of its work was kept (it was rolled
    /// back), including the statements that returned `Ok` before the failure.
    #[error(
        "the transaction was not committed: a statement in it failed, so PostgreSQL rolled back all of its work"
    )]
    TransactionAborted,
    /// `fetch_one` found no row.
    #[error("expected a row, found none")]
    RowNotFound,
    /// The user is not a member of the tenant (see [`Tenancy::member`](crate::Tenancy::member)).
    #[error("user {user:?} is not a member of tenant {id}")]
    NotMember {
        /// The user, as the application identified them.
        user: String,
        /// The tenant.
        id: TenantId,
    },
    /// A superuser acquisition or use was refused.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A value could not be encoded for PostgreSQL.
    #[error("could not encode a bound value: {0}")]
    Encode(#[source] sqlx::error::BoxDynError),
    /// A tenant's statement was not sent: its arguments were not laid out so that the server
    /// reads the tenant where tenancy wrote it (see the README's "What is guaranteed").
    #[error("the statement was not sent: the tenant's argument failed its check: {0}")]
    TenantBinding(String),
    /// A connection's `search_path` names an own-schema tenant's schema or a spare one, where
    /// shared-table statements, which name their table unqualified, could find a tenant's table.
    /// Nothing was sent on it.
    #[error("search_path: {0}")]
    SearchPath(String),
    /// A write of a tenant that is being moved ([`Tenancy::move_tenant`](crate::Tenancy::move_tenant))
    /// waited for the move as long as the server's `tenancy.move_wait` allows (5 s by default)
    /// and was not applied. Retryable: retry it shortly ([`Error::is_retryable`]).
    #[error("tenant {0} is being moved: the write was not applied; retry it shortly")]
    TenantMoving(TenantId),
    /// A write was going to a home its tenant has left: the tenant was moved (or purged) after
    /// the context was resolved, by this process or another. Nothing was applied. Resolve the
    /// tenant again and retry ([`Error::is_retryable`]).
    #[error(
        "tenant {0} has moved since this context was resolved: nothing was written; resolve it again"
    )]
    TenantMoved(TenantId),
    /// A move cannot be done as asked, and changed nothing: the tenant is already there, an
    /// old copy from an earlier move is in the way (purge it first,
    /// [`Tenancy::purge_old_copy`](crate::Tenancy::purge_old_copy)), the target's tables do not
    /// hold the source's columns, or the tenant's writes held it longer than the move's
    /// `lock_wait`.
    #[error("cannot move tenant {id}: {reason}")]
    MoveRefused {
        /// The tenant.
        id: TenantId,
        /// Why, and what to do.
        reason: String,
    },
    /// A moved table's copy did not match its source (row count or checksum): the move was
    /// rolled back and the tenant stays where it was, writable.
    #[error(
        "moving tenant {id}: the copy of {table} does not match its source ({detail}); nothing was moved"
    )]
    MoveVerification {
        /// The tenant.
        id: TenantId,
        /// The table, as the source names it.
        table: String,
        /// The counts and checksums found.
        detail: String,
    },
    /// The database refused or failed: the `sqlx::Error` is the
    /// [`source`](std::error::Error::source), its SQLSTATE [`Error::sqlstate`]. (The write
    /// fence's refusals are [`Error::TenantMoving`] and [`Error::TenantMoved`] instead.)
    #[error("{0}")]
    Database(#[source] sqlx::Error),
    /// Every connection of a server's budget for tenant databases stayed at work for the whole
    /// wait ([`TenancyBuilder::acquire_timeout`](crate::TenancyBuilder::acquire_timeout)).
    /// Nothing was sent; retry later, or raise
    /// [`TenancyBuilder::database_budget`](crate::TenancyBuilder::database_budget).
    #[error(
        "server {server}: all {budget} connections of its budget for tenant databases stayed \
         busy for {waited:?}; retry later, or raise the budget"
    )]
    ServerBusy {
        /// The server's key.
        server: String,
        /// Its budget.
        budget: usize,
        /// How long the caller waited.
        waited: std::time::Duration,
    },
    /// The registry names a server this handle has no connect options for
    /// ([`TenancyBuilder::server`](crate::TenancyBuilder::server)), or a server key the registry
    /// does not list ([`Tenancy::add_server`](crate::Tenancy::add_server)). Nothing was sent:
    /// a tenant is never served from another server than its own.
    #[error(
        "server {server} is not known to this handle or registry; map it with \
         TenancyBuilder::server and list it with Tenancy::add_server"
    )]
    UnknownServer {
        /// The server's key.
        server: String,
    },
    /// Work this version does not do for a shared-table tenant on a server other than the
    /// registry's (whose rows share that server's home database): reading its tables for an
    /// archive through the registry's database rather than its home (a path the public calls
    /// do not take; kept as the guard). Nothing was read or changed.
    #[error(
        "{action} is not supported yet for tenant {tenant}, a shared-table tenant on server          {server}"
    )]
    ServerHomeUnsupported {
        /// The tenant.
        tenant: TenantId,
        /// Its server's key.
        server: String,
        /// What was asked.
        action: &'static str,
    },
    /// An own-database tenant had its whole share of connections at work for the whole wait.
    /// Nothing was sent.
    #[error(
        "server {server}: tenant {tenant} had all {per_database} of its connections busy for \
         {waited:?}; retry later"
    )]
    TenantBusy {
        /// The server's key.
        server: String,
        /// The tenant.
        tenant: TenantId,
        /// Its share of the budget.
        per_database: usize,
        /// How long the caller waited.
        waited: std::time::Duration,
    },
    /// A connection to an own-database tenant's database found another tenant's identity in it
    /// (the database was renamed or swapped, or the registry names the wrong one): nothing of
    /// the tenant's was sent, and the connection was closed.
    #[error(
        "database {database} does not belong to tenant {tenant}: it says it holds {found}; \
         nothing was sent"
    )]
    WrongDatabase {
        /// The tenant whose database was asked for.
        tenant: TenantId,
        /// The database connected to.
        database: String,
        /// Whose the database says it is (tenant ids, or a description of what is missing).
        found: String,
    },
    /// Creating, or dropping, an own-database tenant's database failed. Whatever failed, no
    /// registry row and no database of the attempt is left.
    #[error("tenant database: {0}")]
    Provision(String),
}

/// The SQLSTATEs the write fence raises (see `moving.rs`): a move held the tenant's writes
/// too long, and a write going to a home its tenant left.
const FENCE_WAITED: &str = "TM001";
const FENCE_MOVED: &str = "TM002";

impl From<sqlx::Error> for Error {
    /// The write fence's refusals become their typed errors (the tenant is the error's
    /// detail); everything else is [`Error::Database`].
    fn from(e: sqlx::Error) -> Self {
        let fence = e.as_database_error().and_then(|db| {
            let code = db.code()?;
            if code != FENCE_WAITED && code != FENCE_MOVED {
                return None;
            }
            let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
            let id: TenantId = pg.detail()?.parse().ok()?;
            Some(if code == FENCE_WAITED {
                Error::TenantMoving(id)
            } else {
                Error::TenantMoved(id)
            })
        });
        fence.unwrap_or(Error::Database(e))
    }
}

impl Error {
    /// True for the errors a move causes, which pass: [`Error::TenantMoving`] (retry the same
    /// work shortly) and [`Error::TenantMoved`] (resolve the tenant again, then retry).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::TenantMoving(_) | Self::TenantMoved(_))
    }

    /// True for errors that mean "this tenant cannot be served": not found, suspended, deleted.
    /// An HTTP layer maps these to 404 (or 403 for suspended).
    pub fn is_tenant_unavailable(&self) -> bool {
        matches!(
            self,
            Self::TenantNotFound(_) | Self::TenantSuspended { .. } | Self::TenantDeleted { .. }
        )
    }

    /// The SQLSTATE of the server's error behind this one, if the server refused: `"23505"` for
    /// a unique violation, `"42P01"` for a missing table ... (PostgreSQL's appendix "Error
    /// Codes"). Found through the [`source`](std::error::Error::source) chain, so it reads a
    /// failed migration's or an archive's cause as well as [`Error::Database`]'s.
    ///
    /// ```
    /// fn status(e: &tenancy_sqlx::Error) -> u16 {
    ///     match e.sqlstate() {
    ///         Some("23505") => 409, // unique_violation: taken
    ///         Some("23503") => 422, // foreign_key_violation
    ///         _ => 500,
    ///     }
    /// }
    /// # assert_eq!(status(&tenancy_sqlx::Error::RowNotFound), 500);
    /// ```
    pub fn sqlstate(&self) -> Option<&str> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cause {
            if let Some(db) = e
                .downcast_ref::<sqlx::Error>()
                .and_then(sqlx::Error::as_database_error)
                .and_then(|db| db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
            {
                return Some(db.code());
            }
            cause = e.source();
        }
        None
    }
}

impl From<crate::raw::refusal::RawSqlRefusal> for Error {
    fn from(r: crate::raw::refusal::RawSqlRefusal) -> Self {
        Error::UnscopedSql(r)
    }
}

#[cfg(test)]
mod tests {
    /// Every `Result` of the crate carries an `Error`: typed causes must not make it large.
    #[test]
    fn the_error_stays_small() {
        assert!(std::mem::size_of::<super::Error>() <= 128);
    }
}
