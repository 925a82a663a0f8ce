//! Why a migration could not be loaded or applied.

use std::path::PathBuf;

use crate::migrate::MigrationTarget;

/// A migration could not be loaded or applied, as [`Error::Migration`](crate::Error::Migration)
/// carries it: which target, which version, and what failed. The server's error, when there is
/// one, is its [`source`](std::error::Error::source) (and its SQLSTATE
/// [`Error::sqlstate`](crate::Error::sqlstate)).
///
/// ```
/// use tenancy_sqlx::{Error, MigrationError, Migrations};
///
/// let err = Migrations::from_static(&[(1, "a", "SELECT 1"), (1, "b", "SELECT 2")]).unwrap_err();
/// assert!(matches!(err, Error::Migration(MigrationError::DuplicateVersion { version: 1 })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationError {
    /// Two migrations have the same version.
    #[error("two migrations have version {version}")]
    DuplicateVersion {
        /// The version.
        version: i64,
    },
    /// A migration's version is negative.
    #[error("migration versions must not be negative (found {version})")]
    NegativeVersion {
        /// The version.
        version: i64,
    },
    /// A file of a migrations directory is not named `<version>_<description>.sql`.
    #[error("{file}: a migration file is named <version>_<description>.sql")]
    FileName {
        /// The file's name.
        file: String,
    },
    /// A migrations directory or file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A migration was edited after it was applied to `target`: its checksum differs from the
    /// one recorded. Nothing of this run was kept on that target.
    #[error("migration {version} was changed after it was applied to the {target}")]
    Changed {
        /// Where it was applied (boxed: it keeps the error small).
        target: Box<MigrationTarget>,
        /// The migration's version.
        version: i64,
    },
    /// A migration failed on `target`; what ran on it in this run was rolled back.
    #[error("migration {version} failed on the {target}: {source}")]
    Failed {
        /// Where it ran (boxed: it keeps the error small).
        target: Box<MigrationTarget>,
        /// The migration's version.
        version: i64,
        /// The server's error.
        source: sqlx::Error,
    },
    /// Building a schema with every migration in one script (a new own-schema tenant's, or a
    /// spare's) failed; nothing of it was kept.
    #[error("provisioning the {target} failed: {source}")]
    Provision {
        /// The schema being built (boxed: it keeps the error small).
        target: Box<MigrationTarget>,
        /// The server's error.
        source: sqlx::Error,
    },
    /// A migration of a sqlx `Migrator` is marked `-- no-transaction`: tenancy runs every
    /// migration inside its target's transaction, so it cannot run as written.
    #[error(
        "migration {version} ({description}) is marked no-transaction; tenancy runs every \
         migration in its target's transaction: remove the marker (and CONCURRENTLY), or run \
         it outside tenancy"
    )]
    NoTransaction {
        /// The migration's version.
        version: i64,
        /// Its description.
        description: String,
    },
    /// A new own-schema tenant's schema name is taken by a schema no tenant owns.
    #[error(
        "provisioning schema {schema} failed: a schema of that name already exists (not \
         registered to any tenant); drop or rename it first"
    )]
    SchemaExists {
        /// The schema's name.
        schema: String,
    },
    /// Something else, said in words: an application's or a test's own migration check.
    #[error("{0}")]
    Other(String),
}

impl MigrationError {
    /// The version of the migration that failed, when one did.
    pub fn version(&self) -> Option<i64> {
        match self {
            Self::DuplicateVersion { version }
            | Self::NegativeVersion { version }
            | Self::NoTransaction { version, .. }
            | Self::Changed { version, .. }
            | Self::Failed { version, .. } => Some(*version),
            _ => None,
        }
    }

    /// What it failed on, when it ran on something.
    pub fn target(&self) -> Option<&MigrationTarget> {
        match self {
            Self::Changed { target, .. }
            | Self::Failed { target, .. }
            | Self::Provision { target, .. } => Some(target),
            _ => None,
        }
    }

    /// The same error, said of `target`: a step that knows the tenant names it where the
    /// step below knew only the schema.
    pub(crate) fn at(mut self, to: &MigrationTarget) -> Self {
        if let Self::Changed { target, .. }
        | Self::Failed { target, .. }
        | Self::Provision { target, .. } = &mut self
        {
            **target = to.clone();
        }
        self
    }
}

impl From<String> for MigrationError {
    fn from(what: String) -> Self {
        Self::Other(what)
    }
}
