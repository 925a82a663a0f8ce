//! The world a soak runs in: a database of its own, an application pool (direct or through
//! PgBouncer, as the application role with row-level security on), and tenants over both
//! placements, with one table whose rows carry the tenant that wrote them.

use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tenancy::{
    Migration, Migrations, Placement, StatementMode, Superuser, Tenancy, TenantCtx, rls,
};
use uuid::Uuid;

use crate::common::{self, TestDb};
use crate::faults;

/// The soak's only model. `writer` is a payload, not a key: the tenant whose context wrote the
/// row, checked after the run against the tenant column and the schema the row is in.
pub mod model {
    use tenancy::tenant_scoped;
    use uuid::Uuid;

    #[tenant_scoped(table = "entries", new_derive(Debug, Clone))]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Entry {
        #[tenancy(id)]
        pub id: Uuid,
        pub writer: Uuid,
        pub n: i32,
    }
}

const ENTRIES: &str = r#"
CREATE TABLE entries (
    tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id),
    id        uuid NOT NULL,
    writer    uuid NOT NULL,
    n         integer NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX entries_n ON entries (tenant_id, n);
"#;

/// The table, and with `rls` the policy on it.
pub fn migrations(rls: bool) -> Migrations {
    let mut list = vec![Migration::new(1, "entries", ENTRIES)];
    if rls {
        list.push(Migration::new(
            2,
            "row-level security",
            rls::policy_sql("entries", "tenant_id").unwrap(),
        ));
    }
    Migrations::from_list(list).unwrap()
}

/// The login role the application runs as when row-level security is on (PostgreSQL applies
/// no policy to superusers). One fixed name, because PgBouncer only lets in the users its
/// auth file lists (`scripts/pgbouncer` lists this one); roles are cluster-wide, so it is
/// created when missing and left in place.
pub const APP_ROLE: &str = "tenancy_soak_app";

/// How the application reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Direct,
    /// Through `scripts/pgbouncer` (transaction mode), with `StatementMode::Unnamed`.
    PgBouncer,
}

/// One soak configuration, and its size (in operations, never in time).
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub route: Route,
    /// Connections in the application's pool.
    pub pool: u32,
    pub rls: bool,
    /// Tenants made before the run, alternating shared tables and own schema.
    pub tenants: usize,
    /// Concurrent tasks, each running `ops_per_task` operations.
    pub tasks: usize,
    pub ops_per_task: usize,
}

impl Config {
    /// The bounded round CI runs.
    pub fn ci(route: Route, pool: u32, rls: bool) -> Self {
        Self {
            route,
            pool,
            rls,
            tenants: 52,
            tasks: 8,
            ops_per_task: 120,
        }
    }

    pub fn ops(&self) -> usize {
        self.tasks * self.ops_per_task
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, pool of {}, row-level security {}, {} tenants, {} tasks x {} operations",
            match self.route {
                Route::Direct => "direct",
                Route::PgBouncer => "through PgBouncer (unnamed statements)",
            },
            self.pool,
            if self.rls { "on" } else { "off" },
            self.tenants,
            self.tasks,
            self.ops_per_task
        )
    }
}

pub struct World {
    pub config: Config,
    pub db: TestDb,
    pub tenancy: Tenancy,
    /// The pool `tenancy` runs on, kept to run SQL around the library on the same
    /// connections and to inspect every one of them after the run.
    pub pool: PgPool,
    pub su: Superuser,
    /// The server's default `search_path`.
    pub default_path: String,
    tenants: Mutex<Vec<TenantCtx>>,
    /// Tenants a lifecycle operation is working on: no second one touches them meanwhile.
    busy: Mutex<HashSet<usize>>,
}

impl World {
    pub async fn new(name: &str, config: Config) -> Self {
        let db = TestDb::new(name).await;
        let mut options: PgConnectOptions = match config.route {
            Route::Direct => db.url.clone(),
            Route::PgBouncer => format!("{}/{}", pgbouncer_base(), db.name),
        }
        .parse()
        .expect("a connection URL");
        if config.rls {
            db.exec(&format!(
                "DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS; \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$; \
                 ALTER DATABASE \"{}\" OWNER TO {APP_ROLE}; \
                 ALTER SCHEMA public OWNER TO {APP_ROLE};",
                db.name
            ))
            .await;
            options = options.username(APP_ROLE);
        }
        // The hooks only count hand-outs, for `Fault::RightAfterAcquire`.
        let pool = PgPoolOptions::new()
            .after_connect(|_, _| {
                Box::pin(async {
                    faults::note_acquired();
                    Ok(())
                })
            })
            .before_acquire(|_, _| {
                Box::pin(async {
                    faults::note_acquired();
                    Ok(true)
                })
            })
            .max_connections(config.pool)
            .connect_with(options)
            .await
            .expect("connect the application pool");
        let mut builder = Tenancy::builder();
        if config.route == Route::PgBouncer {
            // LISTEN hears nothing through the pooler: the listener goes straight to PostgreSQL.
            builder = builder.notify_url(&db.url);
        }
        let tenancy = builder
            .row_level_security(config.rls)
            .statement_mode(match config.route {
                Route::Direct => StatementMode::Cached,
                Route::PgBouncer => StatementMode::Unnamed,
            })
            .tenant_migrations(migrations(config.rls))
            .from_pool(pool.clone())
            .await
            .expect("connect tenancy");
        common::migrate_all(&tenancy).await;
        let slugs: Vec<(String, Placement)> = (0..config.tenants)
            .map(|i| {
                let placement = if i % 2 == 0 {
                    Placement::SharedTable
                } else {
                    Placement::OwnSchema
                };
                (format!("soak-{i}"), placement)
            })
            .collect();
        let slugs: Vec<(&str, Placement)> = slugs.iter().map(|(s, p)| (s.as_str(), *p)).collect();
        let tenants = common::create_tenants(&tenancy, &slugs).await;
        let su = tenancy
            .superuser("soak", "reports and lifecycle under faults")
            .await
            .unwrap();
        let default_path: String = sqlx::query_scalar("SHOW search_path")
            .fetch_one(&mut db.connect().await)
            .await
            .unwrap();
        Self {
            config,
            db,
            tenancy,
            pool,
            su,
            default_path,
            tenants: Mutex::new(tenants),
            busy: Mutex::new(HashSet::new()),
        }
    }

    pub fn tenant_count(&self) -> usize {
        self.tenants.lock().unwrap().len()
    }

    /// Tenant `i`'s current context (lifecycle operations replace revoked ones).
    pub fn ctx(&self, i: usize) -> TenantCtx {
        self.tenants.lock().unwrap()[i].clone()
    }

    /// Tenant `i` resolved again, as an application does per request: contexts are revoked
    /// wholesale when the registry listener loses its connection (the terminator kills it
    /// too). Where resolution fails (the tenant is suspended, a backend died), the context held
    /// so far, which then fails or acts as the library decides.
    pub async fn resolve(&self, i: usize) -> TenantCtx {
        let held = self.ctx(i);
        match self.tenancy.resolve_id(held.id()).await {
            Ok(ctx) => ctx,
            Err(_) => held,
        }
    }

    pub fn replace(&self, i: usize, ctx: TenantCtx) {
        self.tenants.lock().unwrap()[i] = ctx;
    }

    pub fn tenant_ids(&self) -> Vec<Uuid> {
        let tenants = self.tenants.lock().unwrap();
        tenants.iter().map(|t| t.id().as_uuid()).collect()
    }

    /// Claims tenant `i` for a lifecycle operation; `false` if another has it.
    pub fn claim(&self, i: usize) -> bool {
        self.busy.lock().unwrap().insert(i)
    }

    pub fn release(&self, i: usize) {
        self.busy.lock().unwrap().remove(&i);
    }
}

fn pgbouncer_base() -> String {
    std::env::var("TENANCY_TEST_PGBOUNCER_URL").expect(
        "TENANCY_TEST_PGBOUNCER_URL is not set: run the PgBouncer soak through scripts/pgbouncer \
         (scripts/test does)",
    )
}
