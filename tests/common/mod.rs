//! Test support: every test gets a database of its own, dropped when the test ends (also when it
//! panics), so tests run in parallel without seeing each other's tenants.
#![allow(dead_code)]

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tenancy::testing::TestDatabase;
use tenancy::{
    MigrateOptions, Migrations, NewTenant, Placement, Tenancy, TenancyBuilder, TenantCtx,
};

/// The server the tests use: `TENANCY_TEST_DATABASE_URL`, else `DATABASE_URL`, else the local
/// default (the same rule as `#[tenancy::test]`). `scripts/test` sets it, starting a throwaway
/// server if none runs.
pub fn admin_url() -> String {
    tenancy::testing::server_url()
}

/// A connection to the server's maintenance database.
pub async fn admin_conn() -> PgConnection {
    let admin = admin_url();
    PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach PostgreSQL at {admin}: {e}\n\
             run the tests with ./scripts/test, which starts a server when none runs"
        )
    })
}

/// Drops a database that a test kept.
pub async fn drop_database(name: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin_conn().await)
    .await
    .unwrap();
}

/// Creates the database `name` afresh (dropped first if a previous run left it), for a fixed
/// name such as a benchmark's; returns its URL.
pub async fn fresh_database(name: &str) -> String {
    drop_database(name).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin_conn().await)
        .await
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    tenancy::testing::database_url(name)
}

/// An empty database of a test's own, for tests that need what `#[tenancy::test]` does not
/// express (several handles, a pooler's address, roles of their own). Dropped with the value.
pub struct TestDb {
    pub name: String,
    pub url: String,
    db: TestDatabase,
}

impl TestDb {
    /// Creates an empty database named after the test.
    pub async fn new(test: &str) -> Self {
        let db = TestDatabase::create(test)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            name: db.name().to_owned(),
            url: db.url().to_owned(),
            db,
        }
    }

    pub async fn connect(&self) -> PgConnection {
        self.db.connect().await.unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn tenancy(&self) -> Tenancy {
        Tenancy::builder()
            .max_connections(5)
            .connect(&self.url)
            .await
            .expect("connect tenancy")
    }

    /// Runs SQL (several statements allowed) on the test database.
    pub async fn exec(&self, sql: &str) {
        self.db.exec(sql).await.unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The seed's fidget-spinner app on shared tables: every key leads with the tenant. The same
/// file `#[tenancy::test(migrations = "tests/migrations")]` applies, so both setups agree.
pub const SPINNER_SCHEMA: &str = include_str!("../migrations/tenant/1_spinner_app.sql");

/// The spinner app with tenancy's row-level security policy on both tables, as two tenant
/// migrations.
pub fn spinner_rls_migrations() -> Migrations {
    let policies = format!(
        "{}{}",
        tenancy::rls::policy_sql("spinners", "tenant_id").unwrap(),
        tenancy::rls::policy_sql("spins", "tenant_id").unwrap()
    );
    Migrations::from_list(vec![
        tenancy::Migration::new(1, "spinner app", SPINNER_SCHEMA),
        tenancy::Migration::new(2, "row-level security", policies),
    ])
    .unwrap()
}

pub mod homes;
pub mod moving;
pub mod picky;
pub mod servers;

pub mod models {
    use tenancy::tenant_scoped;
    use time::OffsetDateTime;
    use uuid::Uuid;

    #[tenant_scoped(table = "spinners", new_derive(Debug, Clone))]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Spinner {
        #[tenancy(id)]
        pub id: Uuid,
        pub name: String,
        pub color: Option<String>,
        #[tenancy(read_only)]
        pub created_at: OffsetDateTime,
    }

    #[tenant_scoped(table = "spins", new_derive(Debug, Clone))]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Spin {
        #[tenancy(id)]
        pub id: Uuid,
        pub spinner_id: Uuid,
        pub duration: i32,
        pub note: Option<String>,
        #[tenancy(read_only)]
        pub created_at: OffsetDateTime,
    }
}

/// A handle on `db` from `builder`, with the spinner app as its tenant migrations, run on the
/// shared tables (as a test Superuser) and the models checked.
pub async fn spinner_tenancy(db: &TestDb, builder: TenancyBuilder) -> Tenancy {
    let tenancy = builder
        .tenant_migrations(Migrations::from_static(&[(1, "spinner app", SPINNER_SCHEMA)]).unwrap())
        .connect(&db.url)
        .await
        .unwrap();
    migrate_all(&tenancy).await;
    tenancy
}

/// Inserts a spinner named `name` for the context's tenant.
pub async fn add_spinner(ctx: &TenantCtx, name: &str) -> tenancy::Result<models::Spinner> {
    use models::*;
    Spinner::repo()
        .insert(
            ctx,
            &NewSpinner {
                id: uuid::Uuid::new_v4(),
                name: name.to_owned(),
                color: None,
            },
        )
        .await
}

/// Inserts a spinner `s<duration>` and one spin of `duration` on it; returns the spin.
pub async fn spin_in(ctx: &TenantCtx, duration: i32) -> models::Spin {
    use models::*;
    let spinner = add_spinner(ctx, &format!("s{duration}")).await.unwrap();
    Spin::repo()
        .insert(
            ctx,
            &NewSpin {
                id: uuid::Uuid::new_v4(),
                spinner_id: spinner.id,
                duration,
                note: None,
            },
        )
        .await
        .unwrap()
}

/// Runs the tenant migrations everywhere (the shared tables too) as a test Superuser; fails the
/// test unless every target succeeds.
pub async fn migrate_all(tenancy: &Tenancy) {
    let su = tenancy.superuser("test", "migrate").await.unwrap();
    let report = tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
}

/// Creates a tenant per `(slug, placement)` and resolves each.
pub async fn create_tenants(tenancy: &Tenancy, tenants: &[(&str, Placement)]) -> Vec<TenantCtx> {
    let mut ctxs = Vec::new();
    for &(slug, placement) in tenants {
        tenancy
            .create_tenant(NewTenant::new(slug, slug).placement(placement))
            .await
            .unwrap();
        ctxs.push(tenancy.resolve_slug(slug).await.unwrap());
    }
    ctxs
}

/// A test database owned by a login role of its own, which is dropped after the database
/// (fields drop in declaration order).
pub struct Rls {
    pub db: TestDb,
    role: DropRole,
}

/// Drops a login role when the test ends: declared before the `TestDb` it owns, it drops after
/// it (roles are cluster-wide, and one that owns a database cannot be dropped before it).
pub struct DropRole(pub String);

impl Drop for DropRole {
    fn drop(&mut self) {
        let role = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut c) = PgConnection::connect(&admin_url()).await {
                    let _ =
                        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS {role}")))
                            .execute(&mut c)
                            .await;
                }
            });
        })
        .join();
    }
}

impl Rls {
    /// A database owned by a fresh role: not a superuser, not BYPASSRLS. Roles are
    /// cluster-wide, so its name is unique.
    pub async fn new(test: &str) -> Self {
        let db = TestDb::new(test).await;
        let role = format!(
            "tt_rls_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        db.exec(&format!(
            "CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS; \
             ALTER DATABASE \"{}\" OWNER TO {role}; ALTER SCHEMA public OWNER TO {role};",
            db.name
        ))
        .await;
        Self {
            db,
            role: DropRole(role),
        }
    }

    pub fn role(&self) -> &str {
        &self.role.0
    }

    pub fn options(&self) -> PgConnectOptions {
        self.db
            .url
            .parse::<PgConnectOptions>()
            .unwrap()
            .username(self.role())
    }

    /// A plain connection as the application role: SQL written around the library.
    pub async fn app_conn(&self) -> PgConnection {
        PgConnection::connect_with(&self.options()).await.unwrap()
    }

    pub async fn app_pool(&self, max: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(max)
            .connect_with(self.options())
            .await
            .unwrap()
    }
}

#[allow(unused_imports)] // not every test binary cancels
pub use tenancy::testing::cancel_at;

/// Waits until no other session on `conn`'s database is inside a transaction; panics, listing
/// them, if one still is after 30 s.
///
/// Work cut off at an await leaves its connection to be dealt with: a pooled one goes back to
/// the pool, which sends what was queued on it (the `COMMIT`, if it was written, or the
/// `ROLLBACK` of a dropped transaction) from a task of its own, or is closed. After that
/// nothing may stay open: a connection lent again inside a transaction runs the next
/// borrower's statements in it, uncommitted. And a registry read before it races with the
/// outcome of the cut-off work; after it, the read is the outcome.
pub async fn no_transaction_left_open(conn: &mut PgConnection) {
    tenancy::testing::eventually(
        "no connection is left inside a transaction",
        std::time::Duration::from_secs(30),
        async || {
            let open: Vec<(i32, Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT pid, state, query FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 AND xact_start IS NOT NULL AND backend_type = 'client backend'",
            )
            .fetch_all(&mut *conn)
            .await
            .unwrap();
            // Shown if the wait runs out: what was still open.
            eprintln!("open: {open:?}");
            open.is_empty()
        },
    )
    .await;
}
