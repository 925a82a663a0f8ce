//! Test support: a database of its own per test, the registry installed, migrations applied and
//! tenants created, behind the `testing` feature. This is what `#[tenancy::test]` runs.
//!
//! ```ignore
//! use tenancy::testing::TestTenancy;
//!
//! // tests/migrations/shared/*.sql and tests/migrations/tenant/*.sql, sqlx's file names.
//! #[tenancy::test(migrations = "tests/migrations", tenants(acme = "shared", globex = "schema"))]
//! async fn tenants_do_not_see_each_other(t: TestTenancy) {
//!     let acme = t.tenant("acme");
//!     let globex = t.tenant("globex");
//!     // ... write as acme, read as globex
//! }
//! ```
//!
//! Each test gets a database copied from a template that holds the registry and the migrations
//! (built once per test binary and migration set, see [`TestSetup`]), so parallel tests never see
//! each other's tenants. The database is dropped after a passing test and kept after a failing
//! one, its name printed so that you can look at what the test left.
//!
//! Nothing here weakens a guarantee: tenants are created through [`Tenancy::create_tenant`]
//! and their contexts resolved through the registry, as everywhere else.
//!
//! The server is `TENANCY_TEST_DATABASE_URL`, else `DATABASE_URL`, else a local one
//! ([`server_url`]); its role needs `CREATE DATABASE`.

mod database;
mod run;
mod server;
mod template;
mod wait;

use std::path::{Path, PathBuf};

pub use database::TestDatabase;
// For the own-database modules' unit tests (`databases::testing`).
#[cfg(test)]
pub(crate) use database::{database_name, drop_databases_starting, on_own_runtime};
#[doc(hidden)]
pub use run::check_body;
/// Runs a `#[tenancy::test]` body: what the attribute expands to. Call it yourself only to run
/// a [`TestSetup`] with the attribute's cleanup from a plain `#[test]`.
pub use run::run;
pub use run::{Flavor, TestOutcome};
pub use server::{DEFAULT_URL, database_url, server_url};
use tenancy_core::Placement;
pub use wait::{cancel_at, eventually};

use crate::{Migrations, NewTenant, Tenancy, TenantCtx};

/// Why a test's database could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// No PostgreSQL server answered.
    #[error(
        "no PostgreSQL server for the tests: {} ({url}) does not answer: {cause}; \
         start one, or set TENANCY_TEST_DATABASE_URL or DATABASE_URL to a server where this \
         role may CREATE DATABASE",
        source_var.map_or_else(|| "neither TENANCY_TEST_DATABASE_URL nor DATABASE_URL is set, and the local default".to_owned(), |v| format!("{v} is set, but the server it names"))
    )]
    NoServer {
        /// The URL tried (without its password).
        url: String,
        /// The variable it came from; `None` for the local default.
        source_var: Option<&'static str>,
        /// Why, as the client said it.
        cause: String,
    },
    /// A statement of the setup failed.
    #[error("cannot {what}: {source}")]
    Database {
        /// What the setup was doing.
        what: String,
        /// The server's error.
        source: sqlx::Error,
    },
    /// The library refused a step of the setup.
    #[error("cannot {what}: {source}")]
    Tenancy {
        /// What the setup was doing.
        what: &'static str,
        /// The library's error (boxed: it is the largest of the setup's causes).
        source: Box<crate::Error>,
    },
    /// A migration failed while building the template.
    #[error("a migration failed while building the test template: {0}")]
    Migrations(String),
}

impl SetupError {
    fn database(what: String, source: sqlx::Error) -> Self {
        Self::Database { what, source }
    }

    fn tenancy(what: &'static str, source: crate::Error) -> Self {
        Self::Tenancy {
            what,
            source: Box::new(source),
        }
    }
}

impl From<SetupError> for crate::Error {
    fn from(e: SetupError) -> Self {
        match e {
            SetupError::Tenancy { source, .. } => *source,
            SetupError::Database { source, .. } => source.into(),
            other => crate::MigrationError::Other(other.to_string()).into(),
        }
    }
}

/// What a test needs: migrations and tenants. `#[tenancy::test(...)]` builds one from its
/// arguments; build one by hand to set up the same world outside the attribute (a benchmark, a
/// test with a runtime of its own).
///
/// ```no_run
/// # async fn demo() -> Result<(), tenancy_sqlx::testing::SetupError> {
/// use tenancy_sqlx::Placement;
/// use tenancy_sqlx::testing::TestSetup;
///
/// let (db, t) = TestSetup::new("my_test")
///     .migrations_dir("tests/migrations")?
///     .tenant("acme", Placement::SharedTable)
///     .tenant("globex", Placement::OwnSchema)
///     .create()
///     .await?;
/// let acme = t.tenant("acme");
/// // ...
/// db.drop_now().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TestSetup {
    test: String,
    shared: Migrations,
    tenant: Migrations,
    tenants: Vec<(String, Placement)>,
    max_connections: u32,
}

impl TestSetup {
    /// For the test named `test` (its database is named after it).
    pub fn new(test: impl Into<String>) -> Self {
        Self {
            test: test.into(),
            shared: Migrations::empty(),
            tenant: Migrations::empty(),
            tenants: Vec::new(),
            max_connections: 5,
        }
    }

    /// Reads `dir/shared/*.sql` (shared migrations, [`Tenancy::migrate_shared`]) and
    /// `dir/tenant/*.sql` (tenant migrations, [`TenancyBuilder::tenant_migrations`](crate::TenancyBuilder::tenant_migrations)),
    /// each optional; a relative `dir` is read from the current directory (the package's
    /// root under `cargo test`).
    ///
    /// # Errors
    /// [`SetupError::Migrations`] if `dir` has neither, or a file is misnamed.
    pub fn migrations_dir(mut self, dir: impl AsRef<Path>) -> Result<Self, SetupError> {
        let dir = dir.as_ref();
        let read = |sub: &str| -> Result<Option<Migrations>, SetupError> {
            let path: PathBuf = dir.join(sub);
            if !path.is_dir() {
                return Ok(None);
            }
            Migrations::from_dir(&path)
                .map(Some)
                .map_err(|e| SetupError::Migrations(e.to_string()))
        };
        let (shared, tenant) = (read("shared")?, read("tenant")?);
        if shared.is_none() && tenant.is_none() {
            return Err(SetupError::Migrations(format!(
                "{} has neither a shared/ nor a tenant/ folder of migrations",
                dir.display()
            )));
        }
        self.shared = shared.unwrap_or_else(Migrations::empty);
        self.tenant = tenant.unwrap_or_else(Migrations::empty);
        Ok(self)
    }

    /// The shared migrations, applied once in the template.
    pub fn shared_migrations(mut self, migrations: Migrations) -> Self {
        self.shared = migrations;
        self
    }

    /// The tenant migrations: applied to the shared tables in the template, and in each
    /// own-schema tenant's schema when it is created.
    pub fn tenant_migrations(mut self, migrations: Migrations) -> Self {
        self.tenant = migrations;
        self
    }

    /// A tenant to create, slug and name `slug`.
    pub fn tenant(mut self, slug: impl Into<String>, placement: Placement) -> Self {
        self.tenants.push((slug.into(), placement));
        self
    }

    /// The handle's pool size (default 5).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Copies the template (building it first if no process has) into a new database,
    /// connects a [`Tenancy`] to it and creates the tenants. The [`TestDatabase`] guard drops
    /// the database; the [`TestTenancy`] is what the test uses.
    ///
    /// # Errors
    /// [`SetupError`], saying which step failed; the new database is dropped then.
    pub async fn create(&self) -> Result<(TestDatabase, TestTenancy), SetupError> {
        let template = template::ensure(&template::Recipe {
            shared: &self.shared,
            tenant: &self.tenant,
        })
        .await?;
        let db = TestDatabase::create_from(&self.test, Some(&template)).await?;
        let tenancy = Tenancy::builder()
            .max_connections(self.max_connections)
            .tenant_migrations(self.tenant.clone())
            .connect(db.url())
            .await
            .map_err(|e| SetupError::tenancy("connect to the test database", e))?;
        let mut tenants = Vec::with_capacity(self.tenants.len());
        for (slug, placement) in &self.tenants {
            let made = async {
                tenancy
                    .create_tenant(
                        NewTenant::new(slug.as_str(), slug.as_str()).placement(*placement),
                    )
                    .await?;
                tenancy.resolve_slug(slug).await
            }
            .await;
            match made {
                Ok(ctx) => tenants.push(ctx),
                Err(e) => {
                    tenancy.close().await;
                    return Err(SetupError::tenancy("create the test's tenants", e));
                }
            }
        }
        let t = TestTenancy {
            database: db.name().to_owned(),
            url: db.url().to_owned(),
            tenancy,
            tenants,
        };
        Ok((db, t))
    }
}

/// What a `#[tenancy::test]` function receives: a [`Tenancy`] on the test's own database and
/// the contexts of the tenants it asked for, resolved through the registry.
///
/// ```ignore
/// #[tenancy::test(tenants(acme = "shared"))]
/// async fn one_tenant(t: TestTenancy) {
///     let acme: &TenantCtx = t.tenant("acme");
///     assert_eq!(acme.slug(), "acme");
///     let again = t.tenancy().resolve_slug("acme").await.unwrap();
///     assert_eq!(again.id(), acme.id());
/// }
/// ```
#[derive(Clone)]
pub struct TestTenancy {
    database: String,
    url: String,
    tenancy: Tenancy,
    tenants: Vec<TenantCtx>,
}

impl std::fmt::Debug for TestTenancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestTenancy")
            .field("database", &self.database)
            .field(
                "tenants",
                &self.tenants.iter().map(TenantCtx::slug).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl TestTenancy {
    /// The handle, connected to the test's database.
    pub fn tenancy(&self) -> &Tenancy {
        &self.tenancy
    }

    /// The context of the tenant `slug` asked for in the attribute.
    ///
    /// # Panics
    /// If the test did not ask for `slug`, naming those it did.
    pub fn tenant(&self, slug: &str) -> &TenantCtx {
        self.tenants
            .iter()
            .find(|c| c.slug() == slug)
            .unwrap_or_else(|| {
                panic!(
                    "the test asked for no tenant {slug:?}; its tenants: {:?}",
                    self.tenants.iter().map(TenantCtx::slug).collect::<Vec<_>>()
                )
            })
    }

    /// Every tenant asked for, in the attribute's order.
    pub fn tenants(&self) -> &[TenantCtx] {
        &self.tenants
    }

    /// The test database's name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// A URL that connects to the test's database: for a second handle, or plain SQL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A plain connection to the test's database, past the library: for a test's own checks.
    ///
    /// # Panics
    /// If it cannot connect (this is for tests).
    pub async fn connect(&self) -> sqlx::PgConnection {
        database::connect_at(&self.url, &self.database)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs SQL (several statements allowed) on the test's database, past the library.
    ///
    /// # Panics
    /// If the SQL fails, naming it.
    pub async fn exec(&self, sql: &str) {
        database::exec_at(&self.url, &self.database, sql)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
