//! Migration files: the plain sqlx format, `<version>_<description>.sql`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{MigrationError, Result};

/// One migration: a version, a description and its SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Ordering key, from the file name's leading digits.
    pub version: i64,
    /// From the file name, `_` as spaces.
    pub description: String,
    /// The file it was read from ([`Migrations::from_dir`]), or `<version>_<description>.sql`
    /// (spaces as `_`) for one given in code: errors name it.
    pub file: String,
    /// The SQL, run as one script.
    pub sql: String,
    /// SHA-256 of the SQL: a migration edited after it was applied is refused.
    pub checksum: Vec<u8>,
}

impl Migration {
    /// A migration from its parts.
    pub fn new(version: i64, description: impl Into<String>, sql: impl Into<String>) -> Self {
        let sql = sql.into();
        let description = description.into();
        Self {
            version,
            file: format!("{version}_{}.sql", description.replace(' ', "_")),
            description,
            checksum: Sha256::digest(sql.as_bytes()).to_vec(),
            sql,
        }
    }
}

/// An ordered set of migrations: the app's shared migrations (run once), or its tenant
/// migrations (run in every own-schema tenant's schema, and once on the shared tables).
///
/// ```
/// use tenancy_sqlx::Migrations;
/// let m = Migrations::from_static(&[
///     (1, "spinners", "CREATE TABLE spinners (tenant_id uuid NOT NULL, id uuid NOT NULL, PRIMARY KEY (tenant_id, id))"),
///     (2, "spinner names", "ALTER TABLE spinners ADD COLUMN name text"),
/// ])?;
/// assert_eq!(m.latest(), Some(2));
/// # Ok::<(), tenancy_sqlx::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migrations {
    list: Vec<Migration>,
}

impl Migrations {
    /// No migrations.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Migrations given in code (`include_str!` them to embed files in the binary).
    ///
    /// # Errors
    /// [`Error::Migration`](crate::Error::Migration) for duplicate versions.
    pub fn from_static(list: &[(i64, &str, &str)]) -> Result<Self> {
        Self::from_list(
            list.iter()
                .map(|&(v, d, sql)| Migration::new(v, d, sql))
                .collect(),
        )
    }

    /// Builds from migrations in any order.
    ///
    /// # Errors
    /// [`Error::Migration`](crate::Error::Migration) for duplicate or negative versions.
    pub fn from_list(mut list: Vec<Migration>) -> Result<Self> {
        list.sort_by_key(|m| m.version);
        for pair in list.windows(2) {
            if pair[0].version == pair[1].version {
                return Err(MigrationError::DuplicateVersion {
                    version: pair[0].version,
                }
                .into());
            }
        }
        if let Some(m) = list.first().filter(|m| m.version < 0) {
            return Err(MigrationError::NegativeVersion { version: m.version }.into());
        }
        Ok(Self { list })
    }

    /// Reads `<version>_<description>.sql` files (sqlx's format) from a directory. Reversible
    /// migrations' `.down.sql` halves are ignored, `.up.sql` is read like `.sql`.
    ///
    /// # Errors
    /// [`Error::Migration`](crate::Error::Migration) for an unreadable directory or file, a file name without a version,
    /// duplicate versions.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let unreadable =
            |path: PathBuf| move |source: std::io::Error| MigrationError::Read { path, source };
        let entries = std::fs::read_dir(dir).map_err(unreadable(dir.to_owned()))?;
        let mut list = Vec::new();
        for entry in entries {
            let entry = entry.map_err(unreadable(dir.to_owned()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".sql") else {
                continue;
            };
            if stem.ends_with(".down") {
                continue;
            }
            let stem = stem.strip_suffix(".up").unwrap_or(stem);
            let (version, description) = stem.split_once('_').unwrap_or((stem, ""));
            let version: i64 = version
                .parse()
                .map_err(|_| MigrationError::FileName { file: name.clone() })?;
            let sql = std::fs::read_to_string(entry.path()).map_err(unreadable(entry.path()))?;
            let mut migration = Migration::new(version, description.replace('_', " "), sql);
            migration.file = name;
            list.push(migration);
        }
        Self::from_list(list)
    }

    /// The migrations of a sqlx [`Migrator`](sqlx::migrate::Migrator), such as the one
    /// `sqlx::migrate!()` embeds in the binary at compile time: the same `<version>_<description>.sql`
    /// files as [`Migrations::from_dir`], read when the application is built instead of when it
    /// runs. Feature `migrate`.
    ///
    /// Reversible migrations' down halves are left out, as `from_dir` leaves out `.down.sql`
    /// files. Checksums are tenancy's (SHA-256 of the SQL), so migrations applied from the
    /// directory are recognised when the same files come embedded.
    ///
    /// ```ignore
    /// static TENANT: sqlx::migrate::Migrator = sqlx::migrate!("migrations/tenant");
    ///
    /// let tenancy = Tenancy::builder()
    ///     .tenant_migrations(Migrations::from_migrator(&TENANT)?)
    ///     .connect(&url)
    ///     .await?;
    /// ```
    ///
    /// # Errors
    /// [`MigrationError::NoTransaction`] for a migration marked `-- no-transaction` (tenancy
    /// runs every migration in its target's transaction);
    /// [`MigrationError::DuplicateVersion`] and [`MigrationError::NegativeVersion`] as
    /// [`Migrations::from_list`].
    #[cfg(feature = "migrate")]
    #[cfg_attr(docsrs, doc(cfg(feature = "migrate")))]
    pub fn from_migrator(migrator: &sqlx::migrate::Migrator) -> Result<Self> {
        let mut list = Vec::new();
        for m in migrator.iter() {
            if m.migration_type.is_down_migration() {
                continue;
            }
            if m.no_tx {
                return Err(MigrationError::NoTransaction {
                    version: m.version,
                    description: m.description.to_string(),
                }
                .into());
            }
            list.push(Migration::new(
                m.version,
                m.description.to_string(),
                m.sql.as_str(),
            ));
        }
        Self::from_list(list)
    }

    /// The migrations, by version.
    pub fn iter(&self) -> std::slice::Iter<'_, Migration> {
        self.list.iter()
    }

    /// The highest version, if any.
    pub fn latest(&self) -> Option<i64> {
        self.list.last().map(|m| m.version)
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sqlx_style_files() {
        let dir = std::env::temp_dir().join(format!("tenancy-mig-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("2_add_color.sql"), "ALTER TABLE x ADD c text").unwrap();
        std::fs::write(dir.join("1_create_x.up.sql"), "CREATE TABLE x ()").unwrap();
        std::fs::write(dir.join("1_create_x.down.sql"), "DROP TABLE x").unwrap();
        std::fs::write(dir.join("README.md"), "not a migration").unwrap();
        let m = Migrations::from_dir(&dir).unwrap();
        let v: Vec<_> = m
            .iter()
            .map(|m| (m.version, m.description.as_str()))
            .collect();
        assert_eq!(v, [(1, "create x"), (2, "add color")]);
        std::fs::write(dir.join("x_bad.sql"), "").unwrap();
        assert!(matches!(
            Migrations::from_dir(&dir),
            Err(crate::Error::Migration(MigrationError::FileName { file })) if file == "x_bad.sql"
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_duplicate_versions() {
        assert!(matches!(
            Migrations::from_static(&[(2, "a", "x"), (2, "b", "y")]),
            Err(crate::Error::Migration(MigrationError::DuplicateVersion {
                version: 2
            }))
        ));
    }

    #[test]
    fn an_unreadable_directory_keeps_its_io_error() {
        let dir = std::env::temp_dir().join(format!("tenancy-none-{}", uuid::Uuid::new_v4()));
        let err = Migrations::from_dir(&dir).unwrap_err();
        let crate::Error::Migration(MigrationError::Read { path, .. }) = &err else {
            panic!("{err:?}");
        };
        assert_eq!(path, &dir);
        let io = std::error::Error::source(&err)
            .and_then(std::error::Error::source)
            .and_then(|e| e.downcast_ref::<std::io::Error>())
            .expect("the io::Error behind it");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    }
}
