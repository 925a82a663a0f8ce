//! Own-database tenants through the library (issue 12), in the database
//! `tenancy_bench_databases` (the registry, the shared tables and the floor tenant) and one
//! database per tenant beside it, all on the server of `DATABASE_URL`:
//!
//! - `create_tenant_database_ms_per_tenant`: `create_tenant` of an own-database tenant, as an
//!   application calls it (`CREATE DATABASE .. TEMPLATE` from the template at the latest
//!   tenant migration, the identity row, the registry row), median over rounds of 50;
//! - `lookup_database1000_vs_shared_raw`: `Repo::get` of a spin of one of 1,000 own-database
//!   tenants drawn at random, through a connection budget of 50
//!   (`TenancyBuilder::database_budget`), against hand-written lookups of the shared-table
//!   floor on a pool of its own; one task. With 20 times more databases than connections, most
//!   lookups find none open to their tenant's database: the budget closes the least recently
//!   used idle one and opens one (connect, the identity check). That is the path an
//!   application with more tenant databases than connections pays, and what the row measures.
//! - `lookup_home1000_vs_shared_raw`: the same lookup for 1,000 shared-table tenants of another
//!   server's home (here the key `s2`, mapped to the same PostgreSQL: a home database beside
//!   the registry), through that server's budget, where every tenant shares the home's
//!   connections (each checked to list a tenant once), against the same floor; one task.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use tenancy::MigrateOptions;
use tenancy::prelude::*;
use uuid::Uuid;

use crate::harness::{Bench, Compare, median, pick};
use crate::own_schema::{migrations, spin_id};
use crate::shared_table::{Spin, raw_get};

const DATABASE: &str = "tenancy_bench_databases";
const CREATE_ROW: &str = "create_tenant_database_ms_per_tenant";
const LOOKUP_ROW: &str = "lookup_database1000_vs_shared_raw";
const HOME_ROW: &str = "lookup_home1000_vs_shared_raw";
/// The connection budget the lookups go through.
const BUDGET: usize = 50;
/// Spins per tenant database.
const SPINS: u64 = 20;

pub async fn run(b: &mut Bench, admin: &str) {
    if !b.wants(CREATE_ROW) && !b.wants(LOOKUP_ROW) && !b.wants(HOME_ROW) {
        return;
    }
    let tenants = if b.cfg.quick { 100 } else { 1_000 };
    // A run that panicked left its tenant databases, named by its registry's tag: gone first.
    let previous = tenancy::testing::database_url(DATABASE);
    if PgConnection::connect(&previous).await.is_ok() {
        drop_tenant_databases(&previous).await;
    }
    let url = crate::fresh_database(admin, DATABASE).await;
    // The home of `s2` is a database on this same server: the key names where homes live,
    // and the row measures the path, not a second machine.
    let s2 = url
        .parse::<PgConnectOptions>()
        .expect("DATABASE_URL")
        .database("postgres");
    let tenancy = Tenancy::builder()
        .tenant_migrations(migrations(1))
        .database_budget(BUDGET, 2)
        .server("s2", s2)
        .connect(&url)
        .await
        .expect("connect tenancy (creates the registry)");
    let su = tenancy
        .superuser("bench", "own-database tenants")
        .await
        .expect("superuser");
    tenancy.add_server(&su, "s2").await.expect("list s2");
    let report = tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .expect("migrate the shared tables");
    assert!(report.is_success(), "{report:?}");
    let (floor_tenant, floor_ids) =
        floor(&tenancy, &url, if b.cfg.quick { 2_000 } else { 10_000 }).await;

    // The tenants, created as an application creates them; the first builds the template.
    let mut created = Vec::with_capacity(tenants);
    let mut rounds = Vec::new();
    let round = 50.min(tenants);
    let databases = if b.wants(CREATE_ROW) || b.wants(LOOKUP_ROW) {
        tenants
    } else {
        0
    };
    for start in (0..databases).step_by(round) {
        let t = Instant::now();
        for i in start..(start + round).min(databases) {
            let slug = format!("db{i:05}");
            created.push(
                tenancy
                    .create_tenant(NewTenant::new(&slug, &slug).placement(Placement::OwnDatabase))
                    .await
                    .expect("create an own-database tenant"),
            );
        }
        // The first round pays the template's build.
        if start > 0 {
            rounds.push(t.elapsed().as_secs_f64() * 1e3 / round as f64);
        }
    }
    if b.wants(CREATE_ROW) && !rounds.is_empty() {
        let detail = format!(
            "create_tenant, own database from the template (1 tenant migration), identity and \
             registry rows; median of {} rounds of {round} (min {:.1}, max {:.1}); the first \
             round, which builds the template, left out",
            rounds.len(),
            rounds.iter().copied().fold(f64::INFINITY, f64::min),
            rounds.iter().copied().fold(0.0, f64::max),
        );
        b.add_value(CREATE_ROW, median(&rounds), "ms", None, &detail);
    }

    if b.wants(HOME_ROW) {
        home_lookups(b, (&tenancy, &url), tenants, (floor_tenant, &floor_ids)).await;
    }

    if b.wants(LOOKUP_ROW) {
        for tenant in &created {
            seed(
                &url,
                tenant.database.as_deref().expect("its database"),
                tenant.id,
            )
            .await;
        }
        let mut ctxs = Vec::with_capacity(created.len());
        for tenant in &created {
            let ctx = tenancy.resolve_id(tenant.id).await.expect("resolve");
            // Every tenant answers before anything is timed.
            Spin::repo()
                .get(&ctx, spin_id(1))
                .await
                .expect("warm-up get")
                .expect("the tenant's spin");
            ctxs.push(ctx);
        }
        let ctxs = Arc::new(ctxs);
        let repo = move |i: u64| {
            let ctx = ctxs[pick(i, ctxs.len())].clone();
            let id = spin_id(1 + pick(i ^ 0x5DEE_CE66, SPINS as usize) as u64);
            async move {
                let spin = Spin::repo().get(&ctx, id).await.expect("repo get");
                black_box(spin.expect("the tenant's spin"));
            }
        };
        let options = url
            .parse::<PgConnectOptions>()
            .expect("DATABASE_URL")
            .statement_cache_capacity(tenancy::DEFAULT_STATEMENT_CACHE);
        let floor_pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("connect the floor pool");
        let p = floor_pool.clone();
        let floor_ids = floor_ids.clone();
        let raw = move |i| raw_get(p.clone(), floor_tenant, floor_ids[pick(i, floor_ids.len())]);
        eprintln!(
            "{LOOKUP_ROW}: {} own-database tenants, a budget of {BUDGET}",
            created.len()
        );
        let spec = Compare {
            name: LOOKUP_ROW,
            a: "database",
            b: "shared_raw",
            concurrency: 1,
            goal: None,
        };
        b.compare(spec, repo, raw).await;
        floor_pool.close().await;
    }

    tenancy.close().await;
    drop_tenant_databases(&url).await;
    crate::drop_database(admin, DATABASE).await;
}

/// `HOME_ROW`: `tenants` shared-table tenants in the home of `s2`, each with `SPINS` spins
/// written by hand into the home's shared tables, looked up at random through the library,
/// side by side with the floor.
async fn home_lookups(
    b: &mut Bench,
    (tenancy, url): (&Tenancy, &str),
    tenants: usize,
    (floor_tenant, floor_ids): (Uuid, &Arc<Vec<Uuid>>),
) {
    let mut ids = Vec::with_capacity(tenants);
    for i in 0..tenants {
        let slug = format!("hm{i:05}");
        let row = tenancy
            .create_tenant(NewTenant::new(&slug, &slug).server("s2"))
            .await
            .expect("create a tenant in s2's home");
        ids.push(row.id);
    }
    let mut conn = PgConnection::connect(url).await.expect("connect");
    let tag: String = sqlx::query_scalar("SELECT tag FROM tenancy.deployment")
        .fetch_one(&mut conn)
        .await
        .expect("the registry's tag");
    conn.close().await.expect("close");
    let home = format!("tenancy_{tag}_home_s2");
    for id in &ids {
        seed(url, &home, *id).await;
    }
    let mut ctxs = Vec::with_capacity(ids.len());
    for id in &ids {
        let ctx = tenancy.resolve_id(*id).await.expect("resolve");
        Spin::repo()
            .get(&ctx, spin_id(1))
            .await
            .expect("warm-up get")
            .expect("the tenant's spin");
        ctxs.push(ctx);
    }
    let ctxs = Arc::new(ctxs);
    let repo = move |i: u64| {
        let ctx = ctxs[pick(i, ctxs.len())].clone();
        let id = spin_id(1 + pick(i ^ 0x5DEE_CE66, SPINS as usize) as u64);
        async move {
            let spin = Spin::repo().get(&ctx, id).await.expect("repo get");
            black_box(spin.expect("the tenant's spin"));
        }
    };
    let options = url
        .parse::<PgConnectOptions>()
        .expect("DATABASE_URL")
        .statement_cache_capacity(tenancy::DEFAULT_STATEMENT_CACHE);
    let floor_pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("connect the floor pool");
    let p = floor_pool.clone();
    let floor_ids = floor_ids.clone();
    let raw = move |i| raw_get(p.clone(), floor_tenant, floor_ids[pick(i, floor_ids.len())]);
    eprintln!("{HOME_ROW}: {tenants} tenants in one home, a budget of {BUDGET}");
    let spec = Compare {
        name: HOME_ROW,
        a: "home",
        b: "shared_raw",
        concurrency: 1,
        goal: None,
    };
    b.compare(spec, repo, raw).await;
    floor_pool.close().await;
}

/// The shared-table floor: one tenant with `spins` spins, as in `own_schema.rs`; its id and
/// its spins' ids.
async fn floor(tenancy: &Tenancy, url: &str, spins: i32) -> (Uuid, Arc<Vec<Uuid>>) {
    let floor = tenancy
        .create_tenant(NewTenant::new("measured", "Measured"))
        .await
        .expect("create the floor tenant");
    let id = floor.id.as_uuid();
    let mut conn = PgConnection::connect(url).await.expect("connect");
    crate::shared_table::seed_spins(&mut conn, id, spins).await;
    sqlx::raw_sql("VACUUM ANALYZE spinners, spins")
        .execute(&mut conn)
        .await
        .expect("vacuum analyze");
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM spins WHERE tenant_id = $1")
        .bind(id)
        .fetch_all(&mut conn)
        .await
        .expect("spin ids");
    conn.close().await.expect("close");
    (id, Arc::new(ids))
}

/// A spinner and `SPINS` spins (ids `spin_id(1..)`) in tenant `id`'s database `database`.
async fn seed(url: &str, database: &str, id: TenantId) {
    let (base, _) = url.rsplit_once('/').expect("a database URL");
    let mut conn = PgConnection::connect(&format!("{base}/{database}"))
        .await
        .expect("connect to a tenant database");
    let spinner = Uuid::new_v4();
    sqlx::query("INSERT INTO spinners (tenant_id, id, name) VALUES ($1, $2, 'main')")
        .bind(id.as_uuid())
        .bind(spinner)
        .execute(&mut conn)
        .await
        .expect("seed the spinner");
    let ids: Vec<Uuid> = (1..=SPINS).map(spin_id).collect();
    sqlx::query(
        "INSERT INTO spins (tenant_id, id, spinner_id, duration)
         SELECT $1, i, $2, 60 FROM unnest($3::uuid[]) i",
    )
    .bind(id.as_uuid())
    .bind(spinner)
    .bind(&ids)
    .execute(&mut conn)
    .await
    .expect("seed spins");
    conn.close().await.expect("close");
}

/// Drops every database of the bench registry at `url` (its tag's prefix: tenants, template,
/// spares); nothing when it has no registry.
async fn drop_tenant_databases(url: &str) {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    let tag: Option<String> = sqlx::query_scalar("SELECT tag FROM tenancy.deployment")
        .fetch_optional(&mut conn)
        .await
        .unwrap_or(None);
    conn.close().await.expect("close");
    let Some(tag) = tag else {
        return;
    };
    let mut admin = crate::common::admin_conn().await;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)")
            .bind(format!("tenancy_{tag}_"))
            .fetch_all(&mut admin)
            .await
            .expect("the tenant databases");
    for name in names {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await
        .expect("drop a tenant database");
    }
}
