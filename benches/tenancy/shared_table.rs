//! Rows on the shared-table placement: the generated repository against hand-written sqlx
//! running the same SQL text, and a scoped transaction against a plain lookup.
//!
//! Both contenders share one pool (built as `TenancyBuilder::connect` builds its own: sqlx's
//! default pool options and tenancy's statement cache), so they run the same prepared
//! statements on the same connections; the setup checks that every hand-written read is one
//! the repository prepared. Hand-written writes leave out the repository's write fence
//! (`tenancy.write_fence`, see `tenancy-sqlx/src/moving.rs`), so `insert_repo_vs_raw` and
//! `update_repo_vs_raw` include what the fence costs; `insert_fenced_vs_unfenced` measures the
//! fence alone, hand-written both ways.

use std::hint::black_box;
use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tenancy::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::harness::{Bench, Compare, Goal, pick};

/// Issue 5: "repo/raw >= 0.97".
const REPO_GOAL: Option<Goal> = Some(Goal::AtLeast(0.97));

/// Every row of this group, to skip the setup when the command line selects none.
const ROWS: &[&str] = &[
    "lookup_repo_vs_raw",
    "raw_lookup_vs_repo",
    "raw_fenced_lookup_vs_repo",
    "lookup_ping_vs_noping",
    "list50_repo_vs_raw",
    "insert_repo_vs_raw",
    "insert_fenced_vs_unfenced",
    "update_repo_vs_raw",
    "lookup_tx_vs_plain",
    "lookup_repo_vs_raw_c8",
    "list50_repo_vs_raw_c8",
    "lookup_tx_vs_plain_c8",
];

/// The seed's fidget-spinner app on shared tables (`SPINNER_SCHEMA` of `tests/common/mod.rs`);
/// also the first tenant migration of the own-schema rows.
pub use crate::common::SPINNER_SCHEMA as SCHEMA;
/// The seed's model, as its tests declare it.
pub use crate::common::models::{NewSpin, Spin};

/// What hand-written code decodes the same columns into.
pub type SpinRow = (Uuid, Uuid, i32, Option<String>, OffsetDateTime);

// The statements the repository sends for `Spin` (tenancy-sqlx/src/model.rs and query.rs);
// `check_same_sql` fails the run if the repository ever sends something else. The writes'
// hand-written forms are the repository's without its write fence.
pub const GET_SQL: &str = r#"SELECT "id", "spinner_id", "duration", "note", "created_at" FROM "spins" WHERE "tenant_id" = $2 AND "id" = $1"#;
const LIST50_SQL: &str = r#"SELECT "id", "spinner_id", "duration", "note", "created_at" FROM "spins" WHERE "tenant_id" = $1 ORDER BY "created_at" DESC, "id" DESC LIMIT 50"#;
const INSERT_SQL: &str = r#"INSERT INTO "spins" ("tenant_id", "id", "spinner_id", "duration", "note") VALUES ($5, $1, $2, $3, $4) RETURNING "id", "spinner_id", "duration", "note", "created_at""#;
const UPDATE_SQL: &str = r#"UPDATE "spins" SET "spinner_id" = $2, "duration" = $3, "note" = $4 WHERE "tenant_id" = $5 AND "id" = $1 RETURNING "id", "spinner_id", "duration", "note", "created_at""#;
const REPO_INSERT_SQL: &str = r#"INSERT INTO "spins" ("tenant_id", "id", "spinner_id", "duration", "note") VALUES (tenancy.write_fence($5, 'shared_table', NULL::text), $1, $2, $3, $4) RETURNING "id", "spinner_id", "duration", "note", "created_at""#;
const REPO_UPDATE_SQL: &str = r#"UPDATE "spins" SET "spinner_id" = $2, "duration" = $3, "note" = $4 WHERE "tenant_id" = $5 AND (SELECT tenancy.write_fence($5, 'shared_table', NULL::text)) IS NOT NULL AND "id" = $1 RETURNING "id", "spinner_id", "duration", "note", "created_at""#;

/// Tenants and rows: the measured tenant and its neighbours on the same tables.
#[derive(Clone)]
struct Data {
    tenant: Uuid,
    /// The measured tenant's spin ids.
    ids: Arc<Vec<Uuid>>,
    /// Some of its spins, to update.
    rows: Arc<Vec<Spin>>,
    /// Its spinners, to insert spins of.
    spinners: Arc<Vec<Uuid>>,
}

/// One pool, and the measured tenant's context on it.
struct Side {
    tenancy: Tenancy,
    pool: PgPool,
    ctx: TenantCtx,
}

impl Side {
    async fn new(url: &str, connections: u32) -> Self {
        // What `TenancyBuilder::connect` builds, shared with the hand-written contender.
        let options = url
            .parse::<PgConnectOptions>()
            .expect("DATABASE_URL")
            .statement_cache_capacity(tenancy::DEFAULT_STATEMENT_CACHE);
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .connect_with(options)
            .await
            .expect("connect the benchmark pool");
        let tenancy = Tenancy::from_pool(pool.clone())
            .await
            .expect("tenancy on the pool");
        let ctx = tenancy
            .resolve_slug("measured")
            .await
            .expect("resolve the measured tenant");
        Self { tenancy, pool, ctx }
    }

    async fn close(self) {
        self.tenancy.close().await;
    }
}

/// Whether the command line selects any row of this group.
pub fn wanted(b: &Bench) -> bool {
    ROWS.iter().any(|r| b.wants(r))
}

pub async fn run(b: &mut Bench, url: &str) {
    let data = seed(url, b.cfg.quick).await;

    let one = Side::new(url, 1).await;
    check_same_sql(&one, &data).await;
    lookup_repo_vs_raw(b, &one, &data, "lookup_repo_vs_raw").await;
    raw_lookup_vs_repo(b, &one, &data, "raw_lookup_vs_repo").await;
    raw_lookup_vs_repo(b, &one, &data, "raw_fenced_lookup_vs_repo").await;
    lookup_ping_vs_noping(b, &data, url).await;
    list50_repo_vs_raw(b, &one, &data, "list50_repo_vs_raw").await;
    lookup_tx_vs_plain(b, &one, &data, "lookup_tx_vs_plain").await;
    // Writes last: they grow the measured tenant.
    insert_repo_vs_raw(b, &one, &data, "insert_repo_vs_raw").await;
    insert_fenced_vs_unfenced(b, &one, &data, "insert_fenced_vs_unfenced").await;
    update_repo_vs_raw(b, &one, &data, "update_repo_vs_raw").await;
    one.close().await;

    let eight = Side::new(url, 8).await;
    lookup_repo_vs_raw(b, &eight, &data, "lookup_repo_vs_raw_c8").await;
    list50_repo_vs_raw(b, &eight, &data, "list50_repo_vs_raw_c8").await;
    lookup_tx_vs_plain(b, &eight, &data, "lookup_tx_vs_plain_c8").await;
    eight.close().await;
}

/// 20 spinners and `spins` spins of shared-table tenant `id`: a second apart, one in four with
/// a note, round-robin over the spinners. The floor of every row against the shared tables.
pub async fn seed_spins(conn: &mut PgConnection, id: Uuid, spins: i32) {
    sqlx::query(
        "INSERT INTO spinners (tenant_id, id, name)
         SELECT $1, gen_random_uuid(), 'spinner ' || i FROM generate_series(1, 20) i",
    )
    .bind(id)
    .execute(&mut *conn)
    .await
    .expect("seed spinners");
    sqlx::query(
        "WITH s AS (SELECT array_agg(id ORDER BY name) AS ids FROM spinners WHERE tenant_id = $1)
         INSERT INTO spins (tenant_id, id, spinner_id, duration, note, created_at)
         SELECT $1, gen_random_uuid(), s.ids[1 + i % 20], 30 + (i * 7919) % 300,
                CASE WHEN i % 4 = 0 THEN 'note ' || i END,
                now() - make_interval(secs => i)
         FROM s, generate_series(1, $2) i",
    )
    .bind(id)
    .bind(spins)
    .execute(&mut *conn)
    .await
    .expect("seed spins");
}

/// The registry, the app's tables, four tenants (the measured one with ~10,000 spins, three
/// neighbours with 3,000 each) and statistics.
async fn seed(url: &str, quick: bool) -> Data {
    let (measured, neighbour) = if quick { (2_000, 500) } else { (10_000, 3_000) };
    let tenancy = Tenancy::builder()
        .max_connections(2)
        .connect(url)
        .await
        .expect("connect tenancy (creates the registry)");
    let mut conn = PgConnection::connect(url).await.expect("connect");
    sqlx::raw_sql(SCHEMA)
        .execute(&mut conn)
        .await
        .expect("create the app's tables");
    tenancy.verify::<Spin>().await.expect("spins has the shape");

    let mut tenant = None;
    for (slug, spins) in [
        ("measured", measured),
        ("neighbour-a", neighbour),
        ("neighbour-b", neighbour),
        ("neighbour-c", neighbour),
    ] {
        let t = tenancy
            .create_tenant(NewTenant::new(slug, slug))
            .await
            .expect("create tenant");
        let id = t.id.as_uuid();
        tenant.get_or_insert(id);
        seed_spins(&mut conn, id, spins).await;
    }
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(&mut conn)
        .await
        .expect("vacuum analyze");
    let tenant = tenant.expect("the measured tenant");

    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM spins WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_all(&mut conn)
        .await
        .expect("spin ids");
    let spinners: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM spinners WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_all(&mut conn)
        .await
        .expect("spinner ids");
    let ctx = tenancy.resolve_slug("measured").await.expect("resolve");
    let rows = Spin::repo()
        .get_many(&ctx, &ids[..1_000.min(ids.len())])
        .await
        .expect("rows to update");
    tenancy.close().await;
    Data {
        tenant,
        ids: Arc::new(ids),
        rows: Arc::new(rows),
        spinners: Arc::new(spinners),
    }
}

/// Sends each repository statement once on the one-connection pool, then fails unless the
/// connection has prepared exactly the text the hand-written contender sends.
async fn check_same_sql(side: &Side, data: &Data) {
    let ctx = &side.ctx;
    let repo = Spin::repo();
    repo.get(ctx, data.ids[0]).await.expect("get");
    newest50(ctx).await;
    let new = repo.insert(ctx, &new_spin(data, 0)).await.expect("insert");
    repo.update(ctx, &new).await.expect("update");
    let prepared: Vec<String> = sqlx::query_scalar("SELECT statement FROM pg_prepared_statements")
        .fetch_all(&side.pool)
        .await
        .expect("pg_prepared_statements");
    for sql in [GET_SQL, LIST50_SQL, REPO_INSERT_SQL, REPO_UPDATE_SQL] {
        assert!(
            prepared.iter().any(|p| p == sql),
            "the repository no longer sends\n  {sql}\nit prepared:\n  {}",
            prepared.join("\n  ")
        );
    }
}

async fn newest50(ctx: &TenantCtx) -> Vec<Spin> {
    Spin::repo()
        .query()
        .order_by(Spin::CREATED_AT.desc())
        .limit(50)
        .fetch_all(ctx)
        .await
        .expect("newest 50")
}

fn new_spin(data: &Data, i: u64) -> NewSpin {
    NewSpin {
        id: Uuid::new_v4(),
        spinner_id: data.spinners[pick(i, data.spinners.len())],
        duration: (i % 300) as i32,
        note: None,
    }
}

/// The row to update in operation `i`, with a new duration.
fn changed(data: &Data, i: u64) -> Spin {
    let mut row = data.rows[pick(i, data.rows.len())].clone();
    row.duration = (i % 300) as i32;
    row
}

async fn lookup_repo_vs_raw(b: &mut Bench, side: &Side, data: &Data, name: &'static str) {
    let (ctx, ids) = (side.ctx.clone(), data.ids.clone());
    let repo = move |i| {
        let (ctx, id) = (ctx.clone(), ids[pick(i, ids.len())]);
        async move {
            let spin = Spin::repo().get(&ctx, id).await.expect("repo get");
            black_box(spin.expect("the tenant's spin"));
        }
    };
    let (pool, ids, tenant) = (side.pool.clone(), data.ids.clone(), data.tenant);
    let raw = move |i| raw_get(pool.clone(), tenant, ids[pick(i, ids.len())]);
    b.compare(spec(name, "repo", "raw", REPO_GOAL), repo, raw)
        .await;
}

/// One tenant's row by key through the raw-SQL escape hatch (parse, allow-list, catalog
/// verdict, the fence when needed) over the same lookup through the repository. `s.id = $1` is a
/// leakproof comparison, so the placeholder's CTE is not fenced and keeps its index lookup. The
/// `_fenced` row adds a division (not leakproof), so the tenant's rows are materialized first:
/// what the fence costs a lookup by key (no goal).
async fn raw_lookup_vs_repo(b: &mut Bench, side: &Side, data: &Data, name: &'static str) {
    let sql = if name.contains("fenced") {
        "SELECT s.* FROM {spins} s WHERE s.id = $1 AND s.duration / 1 >= 0"
    } else {
        "SELECT s.* FROM {spins} s WHERE s.id = $1"
    };
    let (ctx, ids) = (side.ctx.clone(), data.ids.clone());
    let raw = move |i| {
        let (ctx, id) = (ctx.clone(), ids[pick(i, ids.len())]);
        async move {
            let spin = Spin::repo()
                .raw(sql)
                .bind(id)
                .fetch_optional(&ctx)
                .await
                .expect("raw lookup");
            black_box(spin.expect("the tenant's spin"));
        }
    };
    let (ctx, ids) = (side.ctx.clone(), data.ids.clone());
    let repo = move |i| {
        let (ctx, id) = (ctx.clone(), ids[pick(i, ids.len())]);
        async move {
            let spin = Spin::repo().get(&ctx, id).await.expect("repo get");
            black_box(spin.expect("the tenant's spin"));
        }
    };
    let goal = (!name.contains("fenced")).then_some(Goal::AtLeast(0.8));
    b.compare(spec(name, "raw", "repo", goal), raw, repo).await;
}

/// One hand-written point lookup.
pub async fn raw_get(pool: PgPool, tenant: Uuid, id: Uuid) {
    let spin = sqlx::query_as::<_, SpinRow>(GET_SQL)
        .bind(id)
        .bind(tenant)
        .fetch_optional(&pool)
        .await
        .expect("raw get");
    black_box(spin.expect("the tenant's spin"));
}

/// What sqlx's `test_before_acquire` (on by default, and in the pool `TenancyBuilder::connect`
/// builds) costs every statement run through a `&TenantCtx`: a ping, one more round trip,
/// before the connection is lent. Both contenders run hand-written lookups on the same
/// connection of a pool that does not ping by itself; one pings first, as that pool would.
/// Not a goal of issue 5: the floor the issue quotes (~7,000 lookups/s) is the one without.
async fn lookup_ping_vs_noping(b: &mut Bench, data: &Data, url: &str) {
    const NAME: &str = "lookup_ping_vs_noping";
    if !b.wants(NAME) {
        return;
    }
    let options = url
        .parse::<PgConnectOptions>()
        .expect("DATABASE_URL")
        .statement_cache_capacity(tenancy::DEFAULT_STATEMENT_CACHE);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .expect("connect the no-ping pool");
    let lookup = async |pool: PgPool, tenant: Uuid, id: Uuid, ping: bool| {
        let mut conn = pool.acquire().await.expect("acquire");
        if ping {
            conn.ping().await.expect("ping");
        }
        let spin = sqlx::query_as::<_, SpinRow>(GET_SQL)
            .bind(id)
            .bind(tenant)
            .fetch_optional(&mut *conn)
            .await
            .expect("raw get");
        black_box(spin.expect("the tenant's spin"));
    };
    let (p, ids, tenant) = (pool.clone(), data.ids.clone(), data.tenant);
    let ping = move |i| lookup(p.clone(), tenant, ids[pick(i, ids.len())], true);
    let (p, ids) = (pool.clone(), data.ids.clone());
    let noping = move |i| lookup(p.clone(), tenant, ids[pick(i, ids.len())], false);
    b.compare(spec(NAME, "ping", "noping", None), ping, noping)
        .await;
    pool.close().await;
}

async fn list50_repo_vs_raw(b: &mut Bench, side: &Side, data: &Data, name: &'static str) {
    let ctx = side.ctx.clone();
    let repo = move |_| {
        let ctx = ctx.clone();
        async move {
            let rows = newest50(&ctx).await;
            assert_eq!(rows.len(), 50);
            black_box(rows);
        }
    };
    let (pool, tenant) = (side.pool.clone(), data.tenant);
    let raw = move |_| {
        let pool = pool.clone();
        async move {
            let rows = sqlx::query_as::<_, SpinRow>(LIST50_SQL)
                .bind(tenant)
                .fetch_all(&pool)
                .await
                .expect("raw newest 50");
            assert_eq!(rows.len(), 50);
            black_box(rows);
        }
    };
    b.compare(spec(name, "repo", "raw", REPO_GOAL), repo, raw)
        .await;
}

async fn insert_repo_vs_raw(b: &mut Bench, side: &Side, data: &Data, name: &'static str) {
    let (ctx, d) = (side.ctx.clone(), data.clone());
    let repo = move |i| {
        let (ctx, new) = (ctx.clone(), new_spin(&d, i));
        async move {
            let spin = Spin::repo().insert(&ctx, &new).await.expect("repo insert");
            black_box(spin);
        }
    };
    let (pool, d) = (side.pool.clone(), data.clone());
    let raw = move |i| {
        let (pool, new, tenant) = (pool.clone(), new_spin(&d, i), d.tenant);
        async move {
            let spin = sqlx::query_as::<_, SpinRow>(INSERT_SQL)
                .bind(new.id)
                .bind(new.spinner_id)
                .bind(new.duration)
                .bind(&new.note)
                .bind(tenant)
                .fetch_one(&pool)
                .await
                .expect("raw insert");
            black_box(spin);
        }
    };
    b.compare(spec(name, "repo", "raw", REPO_GOAL), repo, raw)
        .await;
}

/// The write fence alone: the repository's insert, hand-written with its fence, over the same
/// insert without it. No goal: it is what a move's safety costs every write.
async fn insert_fenced_vs_unfenced(b: &mut Bench, side: &Side, data: &Data, name: &'static str) {
    let run = |sql: &'static str| {
        let (pool, d) = (side.pool.clone(), data.clone());
        move |i| {
            let (pool, new, tenant) = (pool.clone(), new_spin(&d, i), d.tenant);
            async move {
                let spin = sqlx::query_as::<_, SpinRow>(sql)
                    .bind(new.id)
                    .bind(new.spinner_id)
                    .bind(new.duration)
                    .bind(&new.note)
                    .bind(tenant)
                    .fetch_one(&pool)
                    .await
                    .expect("insert");
                black_box(spin);
            }
        }
    };
    b.compare(
        spec(name, "fenced", "unfenced", None),
        run(REPO_INSERT_SQL),
        run(INSERT_SQL),
    )
    .await;
}

async fn update_repo_vs_raw(b: &mut Bench, side: &Side, data: &Data, name: &'static str) {
    let (ctx, d) = (side.ctx.clone(), data.clone());
    let repo = move |i| {
        let (ctx, row) = (ctx.clone(), changed(&d, i));
        async move {
            let spin = Spin::repo().update(&ctx, &row).await.expect("repo update");
            black_box(spin.expect("the tenant's spin"));
        }
    };
    let (pool, d) = (side.pool.clone(), data.clone());
    let raw = move |i| {
        let (pool, row, tenant) = (pool.clone(), changed(&d, i), d.tenant);
        async move {
            let spin = sqlx::query_as::<_, SpinRow>(UPDATE_SQL)
                .bind(row.id)
                .bind(row.spinner_id)
                .bind(row.duration)
                .bind(&row.note)
                .bind(tenant)
                .fetch_optional(&pool)
                .await
                .expect("raw update");
            black_box(spin.expect("the tenant's spin"));
        }
    };
    b.compare(spec(name, "repo", "raw", REPO_GOAL), repo, raw)
        .await;
}

/// What a scoped transaction costs: begin, one lookup, commit, against the lookup alone.
async fn lookup_tx_vs_plain(b: &mut Bench, side: &Side, data: &Data, name: &'static str) {
    let (ctx, ids) = (side.ctx.clone(), data.ids.clone());
    let tx = move |i| {
        let (ctx, id) = (ctx.clone(), ids[pick(i, ids.len())]);
        async move {
            let mut tx = ctx.begin().await.expect("begin");
            let spin = Spin::repo().get(&mut tx, id).await.expect("get in tx");
            tx.commit().await.expect("commit");
            black_box(spin.expect("the tenant's spin"));
        }
    };
    let (ctx, ids) = (side.ctx.clone(), data.ids.clone());
    let plain = move |i| {
        let (ctx, id) = (ctx.clone(), ids[pick(i, ids.len())]);
        async move {
            let spin = Spin::repo().get(&ctx, id).await.expect("get");
            black_box(spin.expect("the tenant's spin"));
        }
    };
    b.compare(spec(name, "tx", "plain", None), tx, plain).await;
}

/// The comparison for `name`; rows ending in `_c8` run 8 tasks (on the pool of 8).
fn spec(name: &'static str, a: &'static str, b: &'static str, goal: Option<Goal>) -> Compare {
    Compare {
        name,
        a,
        b,
        concurrency: if name.ends_with("_c8") { 8 } else { 1 },
        goal,
    }
}
