//! Own-schema tenants (issue 3), in the database `tenancy_bench_schemas`: the second migration
//! applied to 1,000 tenants (`migrate_all_ms_per_tenant`), repository lookups over 50, 1,000
//! and 10,000 tenants against the shared-table hand-written floor, side by side on one pooled
//! connection, and that connection's backend memory afterwards. The reports of issue 4 run
//! over the same schemas (`reports.rs`).
//!
//! The app is the seed's spinner app in two tenant migrations: the spinners and spins tables,
//! then a column and an index. Tenants are created with `create_tenant` (cold, one at a time)
//! at the first migration, filled in SQL (1,000 spins each, foreign-key triggers off),
//! then brought to the second by `migrate_tenants`, timed.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use futures_util::stream::{self, StreamExt};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use tenancy::prelude::*;
use tenancy::{MigrateOptions, Migrations, Outcome, Tenant};
use uuid::Uuid;

use crate::harness::{Bench, Compare, Goal, env_flag, pick};
use crate::shared_table::{SCHEMA, Spin, raw_get};

const DATABASE: &str = "tenancy_bench_schemas";

/// Issue 5: "own schema at 1,000 tenants >= 0.9 of the shared floor with <= 64 MiB backend
/// memory per connection".
const LOOKUP_GOAL: Goal = Goal::AtLeast(0.9);
const MEMORY_GOAL: Goal = Goal::AtMost(64.0);
/// Issue 5: "migrate_all <= 3 ms per tenant".
const MIGRATE_GOAL: Goal = Goal::AtMost(3.0);

const LOOKUP_ROWS: &[&str] = &[
    "lookup_schema50_vs_shared_raw",
    "lookup_schema1000_vs_shared_raw",
    "backend_mib_per_conn_schema1000",
    "lookup_schema1000_vs_shared_same_data_raw",
];
const BIG_ROWS: &[&str] = &[
    "lookup_schema10000_vs_shared_raw",
    "backend_mib_per_conn_schema10000",
    LANES_ROW,
    LANES_MEMORY_ROW,
    LANES8X2_ROW,
    LANES8X2_MEMORY_ROW,
    LANES_SPREAD_ROW,
    LANES_ACTIVE_ROW,
    crate::reports::ROW_10000,
];
/// 10,000 tenants on 16 connection lanes of one connection, 16 tasks, against the floor on a
/// pool of 16: what `TenancyBuilder::connection_lanes` buys at that scale.
const LANES_ROW: &str = "lookup_schema10000_lanes16_c16_vs_shared_raw_c16";
const LANES_MEMORY_ROW: &str = "backend_mib_per_conn_schema10000_lanes16";
/// The same 16 connections as 8 lanes of two: twice the tenants per backend, for less queueing.
const LANES8X2_ROW: &str = "lookup_schema10000_lanes8x2_c16_vs_shared_raw_c16";
const LANES8X2_MEMORY_ROW: &str = "backend_mib_per_conn_schema10000_lanes8x2";
/// 16 lanes of one with each operation's tenant taken from the lane after the last operation's,
/// so that the operations in flight at once mostly fall on different lanes: the lanes without
/// most of their queueing (tenants placed on lanes by load rather than by hash would approach
/// it), to tell what the queueing costs from what the schemas do.
const LANES_SPREAD_ROW: &str = "lookup_schema10000_lanes16_spread_c16_vs_shared_raw_c16";
/// 16 lanes of one over the same 10,000 schemas, the lookups going to 1,000 of them: whether
/// the cost is the schemas that exist or the ones in use.
const LANES_ACTIVE_ROW: &str = "lookup_schema10000_lanes16_active1000_c16_vs_shared_raw_c16";
/// Connections in every lanes row, and tasks.
const LANES: usize = 16;

/// How a lanes row splits its `LANES` connections, and its rows' names.
struct LaneShape {
    lanes: usize,
    row: &'static str,
    memory_row: Option<&'static str>,
    /// Operation `i` takes a tenant of lane `i % lanes` instead of any tenant.
    spread: bool,
    /// Lookups go to this many tenants (spread evenly over the creation order), not all.
    active: Option<usize>,
}

const LANE_SHAPES: [LaneShape; 4] = [
    LaneShape {
        lanes: 16,
        row: LANES_ROW,
        memory_row: Some(LANES_MEMORY_ROW),
        spread: false,
        active: None,
    },
    LaneShape {
        lanes: 8,
        row: LANES8X2_ROW,
        memory_row: Some(LANES8X2_MEMORY_ROW),
        spread: false,
        active: None,
    },
    LaneShape {
        lanes: 16,
        row: LANES_SPREAD_ROW,
        memory_row: None,
        spread: true,
        active: None,
    },
    LaneShape {
        lanes: 16,
        row: LANES_ACTIVE_ROW,
        memory_row: None,
        spread: false,
        active: Some(1_000),
    },
];
const MIGRATE_ROW: &str = "migrate_all_ms_per_tenant";

/// The second tenant migration: a column and an index (the index the foreign key of spins
/// wants, which the first migration forgot).
pub const MIGRATION_2: &str = "ALTER TABLE spins ADD COLUMN rating smallint;\n\
     CREATE INDEX spins_by_spinner ON spins (tenant_id, spinner_id);";

/// The spinner app's tenant migrations up to `upto` (1 or 2).
pub fn migrations(upto: usize) -> Migrations {
    let all: [(i64, &str, &str); 2] = [
        (1, "spinner app", SCHEMA),
        (2, "spin ratings, spins by spinner", MIGRATION_2),
    ];
    Migrations::from_static(&all[..upto]).expect("the spinner migrations")
}

/// The id of spin `i` (from 1) in every own-schema tenant, as the seed script writes it.
pub fn spin_id(i: u64) -> Uuid {
    Uuid::from_u128((0x4000_u128 << 64) | (0x8000_u128 << 48) | u128::from(i))
}

/// How much data: the default run, or a quick one.
struct Sizes {
    /// Own-schema tenants with `spins` spins each (lookups, migrate_all, reports).
    tenants: usize,
    spins: usize,
    /// The shared-table tenant whose hand-written lookups are the floor.
    floor_spins: i32,
    /// Own-schema tenants in all for the 10,000-tenant rows, if they run; the ones added have
    /// `BIG_SPINS` spins each.
    big: Option<usize>,
}

const BIG_SPINS: usize = 20;

/// The own-schema tenants and the shared-table floor, for the rows of this module and of
/// `reports.rs`.
pub struct World {
    pub url: String,
    /// A handle at the latest migration, with `TenancyBuilder`'s defaults.
    pub tenancy: Tenancy,
    /// Own-schema tenants in creation order, their slugs and schemas.
    pub ids: Vec<TenantId>,
    pub slugs: Vec<String>,
    pub schemas: Vec<String>,
    /// Spins of each of the first `base` tenants (those the reports read); the ones added for
    /// the 10,000-tenant rows have `BIG_SPINS`.
    pub spins: usize,
    base: usize,
    floor_tenant: Uuid,
    floor_ids: Arc<Vec<Uuid>>,
}

pub async fn run(b: &mut Bench, admin: &str) {
    let report_wanted = crate::reports::wanted(b);
    let sizes = Sizes {
        tenants: if b.cfg.quick { 200 } else { 1_000 },
        spins: if b.cfg.quick { 100 } else { 1_000 },
        floor_spins: if b.cfg.quick { 2_000 } else { 10_000 },
        // Opt-in: 9,000 more schemas take a few minutes to build.
        big: env_flag("TENANCY_BENCH_10K")
            .unwrap_or(false)
            .then_some(if b.cfg.quick { 1_000 } else { 10_000 }),
    };
    let big_wanted = BIG_ROWS.iter().any(|r| b.wants(r));
    let big_runs = big_wanted && sizes.big.is_some();
    if !b.wants(MIGRATE_ROW)
        && !LOOKUP_ROWS.iter().any(|r| b.wants(r))
        && !report_wanted
        && !big_runs
    {
        if big_wanted {
            b.skip(BIG_ROWS[0], "opt-in: TENANCY_BENCH_10K=1");
        }
        return;
    }
    let url = crate::fresh_database(admin, DATABASE).await;
    let t = Instant::now();
    let mut w = build(&url, &sizes).await;
    eprintln!(
        "own-schema setup: {} tenants x {} spins in {:.1} s",
        w.ids.len(),
        w.spins,
        t.elapsed().as_secs_f64()
    );
    migrate_all(b, &mut w).await;

    let n = w.ids.len();
    let cap = tenancy::DEFAULT_STATEMENT_CACHE;
    lookups(
        b,
        &w,
        "lookup_schema50_vs_shared_raw",
        None,
        50.min(n),
        cap,
        false,
    )
    .await;
    let ratio = lookups(
        b,
        &w,
        "lookup_schema1000_vs_shared_raw",
        Some("backend_mib_per_conn_schema1000"),
        n,
        cap,
        true,
    )
    .await;
    same_data_floor(b, &w, n).await;
    // If the default statement cache cannot hold a statement per tenant, say what one that
    // does would give.
    if ratio.is_some_and(|r| r < 0.9) {
        let cap = n + 100;
        let row = leak(format!("lookup_schema1000_vs_shared_raw_cap{cap}"));
        let mem = leak(format!("backend_mib_per_conn_schema1000_cap{cap}"));
        lookups(b, &w, row, Some(mem), n, cap, true).await;
    }

    if report_wanted {
        crate::reports::run(b, &w).await;
    }

    match sizes.big {
        Some(total) if big_wanted => {
            let t = Instant::now();
            add_tenants(&mut w, total).await;
            eprintln!(
                "own-schema setup: {} tenants in {:.1} s",
                w.ids.len(),
                t.elapsed().as_secs_f64()
            );
            let n = w.ids.len();
            let ratio = lookups(
                b,
                &w,
                "lookup_schema10000_vs_shared_raw",
                Some("backend_mib_per_conn_schema10000"),
                n,
                cap,
                false,
            )
            .await;
            if ratio.is_some_and(|r| r < 0.9) {
                let cap = n + 100;
                let row = leak(format!("lookup_schema10000_vs_shared_raw_cap{cap}"));
                let mem = leak(format!("backend_mib_per_conn_schema10000_cap{cap}"));
                lookups(b, &w, row, Some(mem), n, cap, false).await;
            }
            for shape in &LANE_SHAPES {
                lanes(b, &w, shape).await;
            }
            crate::reports::run_all(b, &w).await;
        }
        None if big_wanted => b.skip(BIG_ROWS[0], "opt-in: TENANCY_BENCH_10K=1"),
        _ => {}
    }

    w.tenancy.close().await;
    crate::drop_database(admin, DATABASE).await;
}

/// The 1,000-tenant lookups against a floor holding the same data: a shared table of as many
/// tenants and rows as the schemas (`floor_spins`, shaped as `spins`), looked up by hand
/// across all of them. The issue's floor is one tenant of 10,000 rows, which stays in cache
/// while the schemas' million rows do not; this row tells the placement's cost from the data's.
async fn same_data_floor(b: &mut Bench, w: &World, tenants: usize) {
    const NAME: &str = "lookup_schema1000_vs_shared_same_data_raw";
    if !b.wants(NAME) {
        return;
    }
    let mut conn = PgConnection::connect(&w.url).await.expect("connect");
    let spins = w.spins;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP TABLE IF EXISTS floor_spins;
         CREATE TABLE floor_spins (LIKE spins INCLUDING DEFAULTS INCLUDING INDEXES);
         INSERT INTO floor_spins (tenant_id, id, spinner_id, duration, note, created_at)
         SELECT ('00000000-0000-4000-a000-' || lpad(to_hex(t), 12, '0'))::uuid,
                ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
                ('00000000-0000-4000-9000-' || lpad(to_hex(1 + i % 5), 12, '0'))::uuid,
                (random() * 300)::int, CASE WHEN i % 4 = 0 THEN 'note ' || i END,
                now() - random() * interval '30 days'
         FROM generate_series(1, {tenants}) t, generate_series(1, {spins}) i;"
    )))
    .execute(&mut conn)
    .await
    .expect("fill floor_spins");
    sqlx::raw_sql("VACUUM ANALYZE floor_spins")
        .execute(&mut conn)
        .await
        .expect("vacuum analyze floor_spins");
    let floor =
        |k: usize| Uuid::from_u128((0x4000_u128 << 64) | (0xa000_u128 << 48) | (1 + k as u128));

    let options = w
        .url
        .parse::<PgConnectOptions>()
        .expect("DATABASE_URL")
        .statement_cache_capacity(tenancy::DEFAULT_STATEMENT_CACHE);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("connect the one-connection pool");
    let tenancy = Tenancy::from_pool(pool.clone())
        .await
        .expect("tenancy on the pool");
    let mut ctxs = Vec::with_capacity(tenants);
    for slug in &w.slugs[..tenants] {
        ctxs.push(tenancy.resolve_slug(slug).await.expect("resolve"));
    }
    for pass in 0..6 {
        for ctx in &ctxs {
            Spin::repo()
                .get(ctx, spin_id(1 + pass))
                .await
                .expect("warm-up get")
                .expect("the tenant's spin");
        }
    }
    let ctxs = Arc::new(ctxs);
    // Both sides pick the same (tenant, spin) for operation `i`.
    let repo = move |i: u64| {
        let ctx = ctxs[pick(i, ctxs.len())].clone();
        let id = spin_id(1 + pick(i ^ 0x5DEE_CE66, spins) as u64);
        async move {
            let spin = Spin::repo().get(&ctx, id).await.expect("repo get");
            black_box(spin.expect("the tenant's spin"));
        }
    };
    let p = pool.clone();
    let raw = move |i: u64| {
        let (p, tenant) = (p.clone(), floor(pick(i, tenants)));
        let id = spin_id(1 + pick(i ^ 0x5DEE_CE66, spins) as u64);
        async move {
            let row = sqlx::query_as::<_, crate::shared_table::SpinRow>(
                r#"SELECT "id", "spinner_id", "duration", "note", "created_at" FROM "floor_spins" WHERE "tenant_id" = $1 AND "id" = $2"#,
            )
            .bind(tenant)
            .bind(id)
            .fetch_optional(&p)
            .await
            .expect("raw get");
            black_box(row.expect("the floor's spin"));
        }
    };
    let spec = Compare {
        name: NAME,
        a: "schema",
        b: "shared_same_data_raw",
        concurrency: 1,
        goal: None,
    };
    b.compare(spec, repo, raw).await;
    tenancy.close().await;
    sqlx::raw_sql("DROP TABLE floor_spins")
        .execute(&mut conn)
        .await
        .expect("drop floor_spins");
}

/// A row name made at run time (the harness keeps `&'static str` names).
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The registry and shared tables, the floor tenant, the own-schema tenants at the first
/// migration with their spins.
async fn build(url: &str, sizes: &Sizes) -> World {
    let first = Tenancy::builder()
        .max_connections(4)
        .tenant_migrations(migrations(1))
        .connect(url)
        .await
        .expect("connect tenancy (creates the registry)");
    let su = first
        .superuser("bench", "create the shared tables")
        .await
        .expect("superuser");
    let report = first
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .expect("migrate the shared tables");
    assert!(report.is_success(), "{report:?}");

    // The floor: one shared-table tenant, as in `shared_table.rs`.
    let floor = first
        .create_tenant(NewTenant::new("measured", "Measured"))
        .await
        .expect("create the floor tenant");
    let floor_tenant = floor.id.as_uuid();
    let mut conn = PgConnection::connect(url).await.expect("connect");
    crate::shared_table::seed_spins(&mut conn, floor_tenant, sizes.floor_spins).await;
    sqlx::raw_sql("VACUUM ANALYZE spinners, spins")
        .execute(&mut conn)
        .await
        .expect("vacuum analyze");
    let floor_ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM spins WHERE tenant_id = $1")
        .bind(floor_tenant)
        .fetch_all(&mut conn)
        .await
        .expect("spin ids");

    let mut w = World {
        url: url.to_owned(),
        tenancy: first.clone(),
        ids: Vec::new(),
        slugs: Vec::new(),
        schemas: Vec::new(),
        spins: sizes.spins,
        base: sizes.tenants,
        floor_tenant,
        floor_ids: Arc::new(floor_ids),
    };
    create(&mut w, &first, sizes.tenants, sizes.spins).await;
    first.close().await;
    w
}

/// Creates own-schema tenants until there are `total`, then gives each new one `spins` spins.
async fn create(w: &mut World, tenancy: &Tenancy, total: usize, spins: usize) {
    let from = w.ids.len();
    let mut made: Vec<(usize, Tenant)> = stream::iter(from..total)
        .map(|k| {
            let tenancy = tenancy.clone();
            async move {
                let slug = format!("s{k:05}");
                let t = tenancy
                    .create_tenant(NewTenant::new(&slug, &slug).placement(Placement::OwnSchema))
                    .await
                    .expect("create an own-schema tenant");
                (k, t)
            }
        })
        // One at a time: concurrent creations deadlock (see BENCHMARKS.md, "Found on the way").
        .buffered(1)
        .collect()
        .await;
    made.sort_by_key(|(k, _)| *k);
    for (_, t) in &made {
        w.ids.push(t.id);
        w.slugs.push(t.slug.clone());
        w.schemas
            .push(t.schema.clone().expect("an own-schema tenant has a schema"));
    }
    seed(&w.url, &made, spins).await;
}

/// Spins for each tenant, in SQL: 5 spinners, `spins` spins (ids from [`spin_id`], durations
/// 0-300, one in four with a note, spread over 30 days), then `VACUUM ANALYZE` (statistics, and
/// no first reader left to set hint bits). 50 tenants a script, two scripts at a time;
/// foreign-key triggers off (`session_replication_role`), since the rows are consistent by
/// construction.
async fn seed(url: &str, tenants: &[(usize, Tenant)], spins: usize) {
    let scripts: Vec<(String, String)> = tenants
        .chunks(50)
        .map(|chunk| {
            let mut fill =
                String::from("SET session_replication_role = replica; SELECT setseed(0.42);\n");
            let mut tables = Vec::new();
            for (_, t) in chunk {
                let schema = t.schema.as_deref().expect("a schema");
                let id = t.id.as_uuid();
                fill.push_str(&format!(
                    "INSERT INTO \"{schema}\".spinners (tenant_id, id, name)
                     SELECT '{id}', ('00000000-0000-4000-9000-' || lpad(to_hex(k), 12, '0'))::uuid,
                            'spinner ' || k
                     FROM generate_series(1, 5) k;
                     INSERT INTO \"{schema}\".spins (tenant_id, id, spinner_id, duration, note, created_at)
                     SELECT '{id}', ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
                            ('00000000-0000-4000-9000-' || lpad(to_hex(1 + i % 5), 12, '0'))::uuid,
                            (random() * 300)::int, CASE WHEN i % 4 = 0 THEN 'note ' || i END,
                            now() - random() * interval '30 days'
                     FROM generate_series(1, {spins}) i;\n"
                ));
                tables.push(format!("\"{schema}\".spinners, \"{schema}\".spins"));
            }
            (fill, format!("VACUUM (ANALYZE) {}", tables.join(", ")))
        })
        .collect();
    let done: Vec<()> = stream::iter(scripts)
        .map(|(fill, vacuum)| async move {
            let mut conn = PgConnection::connect(url).await.expect("connect");
            sqlx::raw_sql(sqlx::AssertSqlSafe(fill))
                .execute(&mut conn)
                .await
                .expect("seed own-schema tenants");
            // Outside the script's implicit transaction.
            sqlx::raw_sql(sqlx::AssertSqlSafe(vacuum))
                .execute(&mut conn)
                .await
                .expect("vacuum analyze own-schema tenants");
        })
        .buffer_unordered(2)
        .collect()
        .await;
    drop(done);
}

/// `migrate_all_ms_per_tenant`: a handle with both migrations, `TenancyBuilder`'s defaults and
/// `MigrateOptions::default()`, brings every tenant (each with its spins) to the second
/// migration. One shot: a migration applies once. The handle stays for the later rows.
async fn migrate_all(b: &mut Bench, w: &mut World) {
    let tenancy = Tenancy::builder()
        .tenant_migrations(migrations(2))
        .connect(&w.url)
        .await
        .expect("connect tenancy");
    let su = tenancy
        .superuser("bench", "migrate_all")
        .await
        .expect("superuser");
    let t = Instant::now();
    let report = tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .expect("migrate_tenants");
    let secs = t.elapsed().as_secs_f64();
    assert!(report.is_success(), "{report:?}");
    let applied = report
        .outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Applied(v) if v.as_slice() == [2]))
        .count();
    // Every schema and the shared tables.
    assert_eq!(applied, w.ids.len() + 1, "{report:?}");
    if b.wants(MIGRATE_ROW) {
        let n = w.ids.len();
        b.add_value(
            MIGRATE_ROW,
            secs * 1e3 / n as f64,
            "ms",
            Some(MIGRATE_GOAL),
            &format!(
                "migrate_tenants (default options: 4 at a time) applied migration 2 to {n} \
                 schemas of {} spins and the shared tables in {secs:.2} s",
                w.spins
            ),
        );
    }
    w.tenancy = tenancy;
}

/// Repository lookups over the first `tenants` own-schema tenants, a tenant at random per
/// operation, against hand-written lookups on the shared-table floor tenant, on one pooled
/// connection built as `TenancyBuilder::connect` builds its pool, with a statement cache of
/// `cap`. Every tenant is looked up once before measuring (the connection has served them
/// all). Then, if `memory` names a row, the connection's backend memory. `goals`: the rows are
/// issue 5's (1,000 tenants), checked against its goals.
async fn lookups(
    b: &mut Bench,
    w: &World,
    name: &'static str,
    memory: Option<&'static str>,
    tenants: usize,
    cap: usize,
    goals: bool,
) -> Option<f64> {
    if !b.wants(name) && !memory.is_some_and(|m| b.wants(m)) {
        return None;
    }
    let options = w
        .url
        .parse::<PgConnectOptions>()
        .expect("DATABASE_URL")
        .statement_cache_capacity(cap);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("connect the one-connection pool");
    let tenancy = Tenancy::from_pool(pool.clone())
        .await
        .expect("tenancy on the pool");
    let mut ctxs = Vec::with_capacity(tenants);
    for slug in &w.slugs[..tenants] {
        ctxs.push(tenancy.resolve_slug(slug).await.expect("resolve"));
    }
    // Spins every one of these tenants has.
    let spins = if tenants > w.base {
        BIG_SPINS.min(w.spins)
    } else {
        w.spins
    };
    // A long-lived pooled connection has run each tenant's statement many times: past the
    // five custom plans PostgreSQL makes before it settles on a generic one. (If the cache
    // cannot hold them all, once is enough: they are evicted before they get there.)
    let passes = if tenants < cap { 6 } else { 1 };
    for pass in 0..passes {
        for ctx in &ctxs {
            Spin::repo()
                .get(ctx, spin_id(1 + pass))
                .await
                .expect("warm-up get")
                .expect("the tenant's spin");
        }
    }
    let ctxs = Arc::new(ctxs);
    let repo = move |i: u64| {
        let ctx = ctxs[pick(i, ctxs.len())].clone();
        let id = spin_id(1 + pick(i ^ 0x5DEE_CE66, spins) as u64);
        async move {
            let spin = Spin::repo().get(&ctx, id).await.expect("repo get");
            black_box(spin.expect("the tenant's spin"));
        }
    };
    let (p, ids, floor) = (pool.clone(), w.floor_ids.clone(), w.floor_tenant);
    let raw = move |i| raw_get(p.clone(), floor, ids[pick(i, ids.len())]);
    eprintln!("{name}: {tenants} own-schema tenants, statement cache {cap}");
    let spec = Compare {
        name,
        a: "schema",
        b: "shared_raw",
        concurrency: 1,
        goal: goals.then_some(LOOKUP_GOAL),
    };
    let ratio = b.compare(spec, repo, raw).await;
    if let Some(mem) = memory.filter(|m| b.wants(m)) {
        let bytes: i64 =
            sqlx::query_scalar("SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts")
                .persistent(false)
                .fetch_one(&pool)
                .await
                .expect("pg_backend_memory_contexts (needs a superuser or pg_read_all_stats)");
        let prepared: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_prepared_statements")
            .persistent(false)
            .fetch_one(&pool)
            .await
            .expect("pg_prepared_statements");
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .persistent(false)
            .fetch_one(&pool)
            .await
            .expect("pg_backend_pid");
        // The measure `lanes_memory` has to use instead, beside this one.
        if let Some(rss) = rss_anon_mib(pid) {
            b.add_detail(format!("{mem}.rss_anon"), rss, "MiB");
        }
        let mib = bytes as f64 / (1024.0 * 1024.0);
        b.add_value(
            mem,
            mib,
            "MiB",
            goals.then_some(MEMORY_GOAL),
            &format!(
                "backend memory of the pooled connection after {name} ({tenants} tenants \
                 looked up; statement cache {cap}, {prepared} statements prepared)"
            ),
        );
    }
    tenancy.close().await;
    ratio
}

/// Lookups over every tenant on `LANES` connections split into `shape.lanes` lanes, `LANES`
/// tasks, against hand-written lookups on a pool of as many connections; then the largest
/// backend memory among the lanes' connections. Each connection's statement cache holds its
/// lane's tenants.
async fn lanes(b: &mut Bench, w: &World, shape: &LaneShape) {
    let (row, memory_row) = (shape.row, shape.memory_row);
    if !b.wants(row) && !memory_row.is_some_and(|m| b.wants(m)) {
        return;
    }
    let per_lane = w.slugs.len().div_ceil(shape.lanes);
    let tenancy = Tenancy::builder()
        .max_connections(LANES as u32)
        .connection_lanes(shape.lanes)
        .statement_cache_capacity(tenancy::DEFAULT_STATEMENT_CACHE.max(per_lane + per_lane / 4))
        .connect(&with_application_name(&w.url, LANES_APP))
        .await
        .expect("tenancy with lanes");
    let step = shape.active.map_or(1, |a| w.slugs.len().div_ceil(a));
    let mut ctxs = Vec::with_capacity(w.slugs.len());
    for slug in w.slugs.iter().step_by(step) {
        ctxs.push(tenancy.resolve_slug(slug).await.expect("resolve"));
    }
    let spins = BIG_SPINS.min(w.spins);
    // Each lane's connection serves its tenants' statements past the custom plans, as a
    // long-lived one would have.
    for pass in 0..6 {
        stream::iter(&ctxs)
            .for_each_concurrent(LANES, |ctx| async move {
                Spin::repo()
                    .get(ctx, spin_id(1 + pass))
                    .await
                    .expect("warm-up get")
                    .expect("the tenant's spin");
            })
            .await;
    }
    // The tenants of each lane, by the rule of `lane_index` in tenancy-sqlx/src/runtime.rs (the
    // uuid modulo the number of lanes); with `spread`, operation `i` takes one of lane `i %
    // lanes`'s, otherwise any of all.
    let lanes: Vec<Vec<TenantCtx>> = if shape.spread {
        let mut lanes = vec![Vec::new(); shape.lanes];
        for ctx in &ctxs {
            lanes[(ctx.id().as_uuid().as_u128() % shape.lanes as u128) as usize].push(ctx.clone());
        }
        lanes
    } else {
        vec![ctxs]
    };
    let lanes = Arc::new(lanes);
    let repo = {
        let lanes = lanes.clone();
        move |i: u64| {
            let lane = &lanes[i as usize % lanes.len()];
            let ctx = lane[pick(i / lanes.len() as u64, lane.len())].clone();
            let id = spin_id(1 + pick(i ^ 0x5DEE_CE66, spins) as u64);
            async move {
                let spin = Spin::repo().get(&ctx, id).await.expect("repo get");
                black_box(spin.expect("the tenant's spin"));
            }
        }
    };
    let options = w
        .url
        .parse::<PgConnectOptions>()
        .expect("DATABASE_URL")
        .statement_cache_capacity(tenancy::DEFAULT_STATEMENT_CACHE);
    let floor_pool = PgPoolOptions::new()
        .max_connections(LANES as u32)
        .connect_with(options)
        .await
        .expect("connect the floor pool");
    let (p, ids, floor) = (floor_pool.clone(), w.floor_ids.clone(), w.floor_tenant);
    let raw = move |i| raw_get(p.clone(), floor, ids[pick(i, ids.len())]);
    eprintln!(
        "{row}: lookups to {} of {} own-schema tenants on {} lanes of {} connections",
        lanes.iter().map(Vec::len).sum::<usize>(),
        w.slugs.len(),
        shape.lanes,
        LANES / shape.lanes
    );
    let spec = Compare {
        name: row,
        a: "schema_lanes",
        b: "shared_raw",
        concurrency: LANES,
        goal: Some(LOOKUP_GOAL),
    };
    // Rounds five times the usual length. A round ends when its last operation does, and on
    // lanes of one connection the last ones may be queued behind others of their lane (a few
    // milliseconds at 16 tasks); a server taking requests without end never drains that queue,
    // but the harness does at every round's end, which in rounds of 0.1 s weighs as much as a
    // tenth of the figure (BENCHMARKS.md shows both).
    let round_secs = b.cfg.round_secs;
    b.cfg.round_secs *= 5.0;
    b.compare(spec, repo, raw).await;
    b.cfg.round_secs = round_secs;
    if let Some(memory_row) = memory_row.filter(|m| b.wants(m)) {
        lanes_memory(b, &w.url, row, memory_row).await;
    }
    tenancy.close().await;
    floor_pool.close().await;
}

/// The `application_name` of the lanes' connections, by which `lanes_memory` finds them.
const LANES_APP: &str = "tenancy_bench_lanes";

fn with_application_name(url: &str, name: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={name}")
}

/// The largest backend memory among the lanes' connections.
///
/// A lane's connections are the handle's own: the only way to them is the library's raw SQL,
/// which refuses system views, and PostgreSQL 15 shows a backend's memory contexts
/// (`pg_backend_memory_contexts`) to that backend alone. So the figure is read from the
/// operating system: the backend process's anonymous resident memory (`RssAnon` in
/// `/proc/<pid>/status`), where its memory contexts live (shared buffers are shared memory,
/// counted apart). It counts what the allocator kept after freeing too, so it is at least the
/// contexts' total; `backend_mib_per_conn_schema10000` records both measures of one connection
/// side by side. Needs the server on this machine and the right to read its processes.
async fn lanes_memory(b: &mut Bench, url: &str, row: &str, memory_row: &'static str) {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    let pids: Vec<i32> =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
            .bind(LANES_APP)
            .fetch_all(&mut conn)
            .await
            .expect("pg_stat_activity");
    let _ = conn.close().await;
    let mibs: Option<Vec<f64>> = pids.iter().map(|&pid| rss_anon_mib(pid)).collect();
    match mibs {
        Some(mibs) if !mibs.is_empty() => {
            let max = mibs.iter().copied().fold(0.0, f64::max);
            let mean = mibs.iter().sum::<f64>() / mibs.len() as f64;
            b.add_value(
                memory_row,
                max,
                "MiB",
                Some(MEMORY_GOAL),
                &format!(
                    "largest RssAnon of the {} lane backends after {row} (mean {mean:.1})",
                    mibs.len()
                ),
            );
        }
        _ => eprintln!(
            "{memory_row}: not measured (the lanes' backends, {pids:?}, are not readable \
             in /proc: a server on another machine, or no right to read its processes)"
        ),
    }
}

/// The anonymous resident memory of process `pid`, from `/proc/<pid>/status`, in MiB.
fn rss_anon_mib(pid: i32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// The 10,000-tenant rows' schemas: tenants added at the latest migration, `BIG_SPINS` spins
/// each.
async fn add_tenants(w: &mut World, total: usize) {
    let tenancy = w.tenancy.clone();
    create(w, &tenancy, total, BIG_SPINS).await;
}
