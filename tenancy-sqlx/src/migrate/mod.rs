//! Migrations in two scopes.
//!
//! - Shared (global) migrations: the app's tables that belong to no tenant, run once
//!   ([`Tenancy::migrate_shared`]).
//! - Tenant migrations: the tenant-scoped tables, run once on the shared tables (for every
//!   shared-table tenant at once) and once in every own-schema tenant's schema
//!   ([`Tenancy::migrate_tenants`](crate::Tenancy::migrate_tenants)), in parallel, each target in its own transaction: a failing
//!   tenant is rolled back and reported and does not stop the others, and a rerun resumes.
//!
//! Files are sqlx's: `<version>_<description>.sql`. Each target keeps its own history, and a
//! migration edited after it was applied is refused.
//!
//! A migration cannot leave its transaction: text with transaction control (`BEGIN`, `COMMIT`,
//! savepoints, `CALL`, a `DO` block that commits) is refused before anything runs
//! ([`Error::MigrationRefused`](crate::Error::MigrationRefused)), and each migration runs inside
//! a PL/pgSQL `EXECUTE`, where PostgreSQL refuses transaction control in any spelling. A tenant
//! migration sees its own schema (and `pg_catalog`) only. The connection a migration ran on is
//! reset (or closed) afterwards, so nothing it set for the session reaches another borrower
//! ([`Conn::commit_and_reset`](crate::conn::Conn::commit_and_reset)).

mod apply;
mod check;
mod source;
mod target;
pub(crate) mod tenants;

use std::sync::Arc;

pub(crate) use apply::{Target, apply, foreign_history, fresh_schema_script};
pub use source::{Migration, Migrations};
pub use target::MigrationTarget;

/// Histories read per statement by [`Tenancy::pending_migrations`]: few enough that the
/// statement's relation locks stay far below the lock table's size.
pub(crate) const PENDING_BATCH: usize = 500;

/// How one target fared.
///
/// With the `serde` feature it serialises tagged by `outcome`:
/// `{"outcome": "applied", "versions": [2, 3]}`, `{"outcome": "up_to_date"}`,
/// `{"outcome": "failed", "version": 2, "sqlstate": "42P01", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(
        from = "crate::records::OutcomeRecord",
        into = "crate::records::OutcomeRecord"
    )
)]
pub enum Outcome {
    /// These versions were applied.
    Applied(Vec<i64>),
    /// Nothing was pending.
    UpToDate,
    /// Rolled back; the target is as it was.
    Failed(MigrationFailure),
}

/// Why a target of [`Tenancy::migrate_tenants`](crate::Tenancy::migrate_tenants) failed: the
/// migration, the server's SQLSTATE and the message, kept as values so that a report can be
/// cloned, compared and logged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MigrationFailure {
    /// The version of the migration that failed; `None` when the target failed outside one
    /// (its connection, its lock, its history).
    pub version: Option<i64>,
    /// The server's SQLSTATE, when the server refused ([`Error::sqlstate`](crate::Error::sqlstate)).
    pub sqlstate: Option<String>,
    /// The error's message.
    pub message: String,
}

impl MigrationFailure {
    pub(crate) fn of(e: &crate::Error) -> Self {
        let version = match e {
            crate::Error::Migration(m) => m.version(),
            _ => None,
        };
        Self {
            version,
            sqlstate: e.sqlstate().map(str::to_owned),
            message: e.to_string(),
        }
    }
}

impl std::fmt::Display for MigrationFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Progress of [`Tenancy::migrate_tenants`](crate::Tenancy::migrate_tenants), reported after each target.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Progress {
    /// Targets finished (applied or up to date).
    pub done: usize,
    /// Targets that failed.
    pub failed: usize,
    /// Targets not finished yet.
    pub remaining: usize,
    /// The target just finished, and how.
    pub last: (MigrationTarget, Outcome),
}

/// The result of [`Tenancy::migrate_tenants`](crate::Tenancy::migrate_tenants).
///
/// With the `serde` feature it serialises as `{"outcomes": [...]}`, each outcome one object
/// with its target's fields and its own (see [`MigrationTarget`] and [`Outcome`]).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(
        from = "crate::records::ReportRecord",
        into = "crate::records::ReportRecord"
    )
)]
pub struct MigrationReport {
    /// Every target and its outcome, in completion order.
    pub outcomes: Vec<(MigrationTarget, Outcome)>,
}

impl MigrationReport {
    /// The targets that failed, with why.
    pub fn failed(&self) -> impl Iterator<Item = (&MigrationTarget, &MigrationFailure)> {
        self.outcomes.iter().filter_map(|(t, o)| match o {
            Outcome::Failed(e) => Some((t, e)),
            _ => None,
        })
    }

    /// True if no target failed.
    pub fn is_success(&self) -> bool {
        self.failed().next().is_none()
    }
}

type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Options for [`Tenancy::migrate_tenants`](crate::Tenancy::migrate_tenants).
#[derive(Clone)]
#[must_use]
pub struct MigrateOptions {
    pub(crate) parallelism: usize,
    pub(crate) on_progress: Option<ProgressFn>,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        Self {
            parallelism: 4,
            on_progress: None,
        }
    }
}

impl std::fmt::Debug for MigrateOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrateOptions")
            .field("parallelism", &self.parallelism)
            .finish_non_exhaustive()
    }
}

impl MigrateOptions {
    /// How many targets migrate at once (default 4; also bounded by the pool's size).
    pub fn parallelism(mut self, n: usize) -> Self {
        self.parallelism = n.max(1);
        self
    }

    /// Called after each target with the running totals.
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.on_progress = Some(Arc::new(f));
        self
    }
}
