//! Row-level security: what the runtime backstop costs a lookup.
//!
//! One database, one table, the same rows; two handles side by side. The measured one connects
//! as a role of its own (not a superuser, so the forced policy applies) with
//! `row_level_security(true)`: every statement on a `&TenantCtx` runs in a transaction that
//! sets the tenant first (a lookup: `BEGIN READ ONLY` with the setting, lent without the pool's
//! ping, the statement, and a `ROLLBACK` that rides on the pool's check of the connection on
//! release). The reference connects as the server's superuser, which PostgreSQL exempts from
//! policies, with RLS off: the same SQL on the same data, plain (its borrows pinged).
//! `lookup_rls_ctx_unpinged_vs_pinged` puts the same lookup on a pool of sqlx's defaults given to
//! `from_pool`, which pings every borrow, beside it.

use std::hint::black_box;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};
use tenancy::prelude::*;
use uuid::Uuid;

use crate::harness::{Bench, Compare, Goal, pick};
use crate::shared_table::{SCHEMA, Spin};

const DATABASE: &str = "tenancy_bench_rls";
/// The application role; roles are cluster-wide, so it is dropped at the end.
const ROLE: &str = "tenancy_bench_app";

const ROWS: &[&str] = &[
    "lookup_rls_ctx_vs_plain",
    "lookup_rls_ctx_vs_begin_commit",
    "lookup_rls_ctx_unpinged_vs_pinged",
    "lookup_rls_tx_vs_plain_tx",
];

pub async fn run(b: &mut Bench, admin_url: &str) {
    if !ROWS.iter().any(|r| b.wants(r)) {
        return;
    }
    let superuser_url = crate::fresh_database(admin_url, DATABASE).await;
    let mut admin = PgConnection::connect(admin_url).await.expect("connect");
    exec(
        &mut admin,
        &format!(
            "DROP ROLE IF EXISTS {ROLE}; CREATE ROLE {ROLE} LOGIN NOSUPERUSER NOBYPASSRLS; \
             ALTER DATABASE {DATABASE} OWNER TO {ROLE}"
        ),
    )
    .await;
    let app_options = superuser_url
        .parse::<PgConnectOptions>()
        .expect("DATABASE_URL")
        .username(ROLE);
    let mut app = PgConnection::connect_with(&app_options)
        .await
        .expect("connect as the application role");
    exec(&mut app, "ALTER SCHEMA public OWNER TO CURRENT_USER").await;
    drop(app);

    let (ids, tenant) = seed(&superuser_url, &app_options, b.cfg.quick).await;
    let with_rls = Tenancy::builder()
        .max_connections(1)
        .row_level_security(true)
        .connect(app_options.to_url_lossy().as_str())
        .await
        .expect("tenancy with row-level security");
    let plain = Tenancy::builder()
        .max_connections(1)
        .connect(&superuser_url)
        .await
        .expect("tenancy without");
    let on = with_rls.resolve_id(tenant).await.expect("resolve");
    let off = plain.resolve_id(tenant).await.expect("resolve");

    let lookup = |ctx: TenantCtx| {
        let ids = ids.clone();
        move |i: u64| {
            let (ctx, id) = (ctx.clone(), ids[pick(i, ids.len())]);
            async move {
                let spin = Spin::repo().get(&ctx, id).await.expect("get");
                black_box(spin.expect("the tenant's spin"));
            }
        }
    };
    b.compare(
        Compare {
            // Issue 15: at most one round trip more than the same lookup without.
            goal: Some(Goal::AtLeast(0.8)),
            ..spec("lookup_rls_ctx_vs_plain")
        },
        lookup(on.clone()),
        lookup(off.clone()),
    )
    .await;

    let in_tx = |ctx: TenantCtx| {
        let ids = ids.clone();
        move |i: u64| {
            let (ctx, id) = (ctx.clone(), ids[pick(i, ids.len())]);
            async move {
                let mut tx = ctx.begin().await.expect("begin");
                let spin = Spin::repo().get(&mut tx, id).await.expect("get");
                black_box(spin.expect("the tenant's spin"));
                tx.commit().await.expect("commit");
            }
        }
    };
    // The same lookup on a `&TenantCtx` against what it cost before reads ended with a queued
    // rollback: `BEGIN` with the setting, the statement, `COMMIT` (as a `TenantTx` does).
    b.compare(
        Compare {
            a: "ctx",
            b: "begin-commit",
            ..spec("lookup_rls_ctx_vs_begin_commit")
        },
        lookup(on.clone()),
        in_tx(on.clone()),
    )
    .await;
    // The pool `connect` builds lends a unit that begins with its own `BEGIN` without a ping;
    // a pool of sqlx's defaults given to `from_pool` pings every borrow.
    if b.wants("lookup_rls_ctx_unpinged_vs_pinged") {
        let pinged = Tenancy::builder()
            .row_level_security(true)
            .from_pool(pool(&app_options).await)
            .await
            .expect("tenancy with row-level security on a pool of sqlx's defaults");
        let pinged_ctx = pinged.resolve_id(tenant).await.expect("resolve");
        b.compare(
            Compare {
                a: "unpinged",
                b: "pinged",
                ..spec("lookup_rls_ctx_unpinged_vs_pinged")
            },
            lookup(on.clone()),
            lookup(pinged_ctx),
        )
        .await;
        pinged.close().await;
    }
    b.compare(
        spec("lookup_rls_tx_vs_plain_tx"),
        in_tx(on.clone()),
        in_tx(off.clone()),
    )
    .await;

    with_rls.close().await;
    plain.close().await;
    crate::drop_database(admin_url, DATABASE).await;
    exec(&mut admin, &format!("DROP ROLE IF EXISTS {ROLE}")).await;
}

fn spec(name: &'static str) -> Compare {
    Compare {
        name,
        a: "rls",
        b: "plain",
        concurrency: 1,
        goal: None,
    }
}

/// The registry and tables, created by the application role (so that it owns them and the
/// forced policy holds it), the policies, and one tenant's spins among three neighbours'.
async fn seed(superuser_url: &str, app: &PgConnectOptions, quick: bool) -> (Vec<Uuid>, TenantId) {
    let per_tenant: i32 = if quick { 1_000 } else { 5_000 };
    // The registry is created by the role that will own it; RLS stays off for setup.
    let setup = Tenancy::from_pool(pool(app).await)
        .await
        .expect("create the registry as the application role");
    let mut conn = PgConnection::connect_with(app).await.expect("connect");
    sqlx::raw_sql(SCHEMA)
        .execute(&mut conn)
        .await
        .expect("create the app's tables");
    for table in ["spinners", "spins"] {
        let policy = tenancy::rls::policy_sql(table, "tenant_id").expect("policy SQL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(policy))
            .execute(&mut conn)
            .await
            .expect("install the policy");
    }
    let mut tenants = Vec::new();
    for slug in ["measured", "neighbour-a", "neighbour-b", "neighbour-c"] {
        let t = setup
            .create_tenant(NewTenant::new(slug, slug))
            .await
            .expect("create tenant");
        tenants.push(t.id);
    }
    setup.close().await;
    // Rows go in as the superuser, whom the policy does not hold.
    let mut su = PgConnection::connect(superuser_url).await.expect("connect");
    for t in &tenants {
        sqlx::query(
            "INSERT INTO spinners (tenant_id, id, name) VALUES ($1, gen_random_uuid(), 'spinner')",
        )
        .bind(t.as_uuid())
        .execute(&mut su)
        .await
        .expect("seed a spinner");
        sqlx::query(
            "INSERT INTO spins (tenant_id, id, spinner_id, duration)
             SELECT $1, gen_random_uuid(), s.id, 30 + i % 300
             FROM spinners s, generate_series(1, $2) i WHERE s.tenant_id = $1",
        )
        .bind(t.as_uuid())
        .bind(per_tenant)
        .execute(&mut su)
        .await
        .expect("seed spins");
    }
    exec(&mut su, "VACUUM ANALYZE").await;
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM spins WHERE tenant_id = $1")
        .bind(tenants[0].as_uuid())
        .fetch_all(&mut su)
        .await
        .expect("spin ids");
    (ids, tenants[0])
}

/// One connection, as `TenancyBuilder::connect` would build it.
async fn pool(options: &PgConnectOptions) -> sqlx::PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .connect_with(
            options
                .clone()
                .statement_cache_capacity(tenancy::DEFAULT_STATEMENT_CACHE),
        )
        .await
        .expect("connect as the application role")
}

async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}
