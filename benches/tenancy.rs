//! What tenancy costs against the floor: the benchmark of issue 5 (see BENCHMARKS.md).
//!
//! `cargo bench --bench tenancy` against the PostgreSQL the tests use (`TENANCY_TEST_DATABASE_URL`,
//! else `DATABASE_URL`, else `postgres://postgres@127.0.0.1:5432/postgres`). It creates the
//! databases `tenancy_bench`, `tenancy_bench_schemas`, `tenancy_bench_provision`,
//! `tenancy_bench_dbreg`, `tenancy_bench_move` and `tenancy_bench_db_*` (each dropped first if a previous run left it)
//! and drops them when done, prints a table, and writes `target/bench/results.json`: a list of
//! `{"name", "value", "unit"}`.
//!
//! Every ratio is measured side by side in this one run, in alternating rounds, so that a noisy
//! machine slows both contenders alike.
//!
//! - `TENANCY_BENCH_QUICK=1`: a few seconds (fewer, shorter rounds, less data; no
//!   `derive_check_ratio` unless `TENANCY_BENCH_SKIP_DERIVE=0`).
//! - `TENANCY_BENCH_SKIP_DERIVE=1`: skip `derive_check_ratio` (two `cargo check` builds).
//! - `TENANCY_BENCH_10K=1`: also the 10,000 own-schema tenant rows (9,000 more schemas to
//!   build: minutes).
//! - `cargo bench --bench tenancy -- lookup insert`: only the rows whose name contains one of
//!   the words.
//! - `TENANCY_BENCH_CHARTS_FROM=docs/bench/results.json`: measure nothing; draw that file's
//!   charts (`ratios.svg`, `tenants.svg`) beside it. A run draws its own into
//!   `target/bench/charts/`.
//!
//! Adding rows: a function per row in the module of its capability, called from that module's
//! `run`; a new capability (own-schema placement, provisioning, migrations, reports, row-level
//! security) is a new module whose `run` is called from `main` below, in the same database.

#[path = "tenancy/charts.rs"]
mod charts;
// The tests' helpers: one set for tests and benches (server, databases, the spinner app).
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "tenancy/databases.rs"]
mod databases;
#[path = "tenancy/derive_check.rs"]
mod derive_check;
#[path = "tenancy/harness.rs"]
mod harness;
#[path = "tenancy/http.rs"]
mod http;
#[path = "tenancy/moving.rs"]
mod moving;
#[path = "tenancy/own_schema.rs"]
mod own_schema;
#[path = "tenancy/provision.rs"]
mod provision;
#[path = "tenancy/provision_database.rs"]
mod provision_database;
#[path = "tenancy/reports.rs"]
mod reports;
#[path = "tenancy/rls.rs"]
mod rls;
#[path = "tenancy/shared_table.rs"]
mod shared_table;
#[path = "tenancy/test_setup.rs"]
mod test_setup;

/// The database of the shared-table rows; every run creates it afresh and drops it at the end.
/// Other groups use databases named after it (`tenancy_bench_schemas` ...), likewise.
const DATABASE: &str = "tenancy_bench";

fn main() {
    // Redraw the charts of a results file (the committed `docs/bench/results.json`) beside it,
    // without measuring anything.
    if let Some(results) = std::env::var_os("TENANCY_BENCH_CHARTS_FROM") {
        let results = std::path::PathBuf::from(results);
        let dir = results.parent().map_or_else(
            || std::path::PathBuf::from("."),
            std::path::Path::to_path_buf,
        );
        match charts::draw_file(&results, &dir) {
            Ok(written) => written
                .iter()
                .for_each(|chart| println!("wrote {}", chart.display())),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let mut bench = harness::Bench::new(harness::Config::from_env());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        // The server the tests use (tests/common): TENANCY_TEST_DATABASE_URL, else DATABASE_URL,
        // else the local default.
        let admin = common::admin_url();
        server_info().await;

        // Issue 2: the generated repository on shared tables.
        if shared_table::wanted(&bench) {
            let url = fresh_database(&admin, DATABASE).await;
            shared_table::run(&mut bench, &url).await;
            drop_database(&admin, DATABASE).await;
        }
        // Issues 3 and 4: own-schema tenants (migrate_all, lookups over 50, 1,000 and 10,000
        // tenants and their backend memory), then cross-tenant reports over the same schemas.
        own_schema::run(&mut bench, &admin).await;
        // Issue 3: provisioning, cold and from spare schemas.
        provision::run(&mut bench, &admin).await;
        // Issue 12: a tenant database from a template, empty + migrations, or a spare.
        provision_database::run(&mut bench, &admin).await;
        // Issue 12: own-database tenants through the library: creation, and lookups over 1,000
        // databases through a budget of 50 connections.
        databases::run(&mut bench, &admin).await;
        // Issue 12: moving a tenant between placements.
        moving::run(&mut bench, &admin).await;
        // Row-level security: what the backstop costs a lookup.
        rls::run(&mut bench, &admin).await;
        // Issue 13: a list endpoint behind the axum edge, over HTTP.
        http::run(&mut bench, &admin).await;
        // Issue 14: a test suite's setup, #[tenancy::test] against hand-written.
        test_setup::run(&mut bench).await;
    });
    derive_check::run(&mut bench);
    bench.finish();
    // Other work on the machine moves absolute figures (ratios much less): say how busy it was.
    println!("{}", load_average());
}

/// The load averages, where the platform tells them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "load average unknown".to_owned(),
        |l| {
            let parts: Vec<&str> = l.split_whitespace().take(3).collect();
            format!("load average {}", parts.join(" "))
        },
    )
}

/// Prints the server version and the machine's load before anything runs.
async fn server_info() {
    let mut conn = common::admin_conn().await;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await
        .expect("server version");
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    eprintln!(
        "tenancy bench: PostgreSQL {version}, {cores} cores, database {DATABASE}*, {}",
        load_average()
    );
}

/// Creates the database `name` (dropped first if a previous run left it); returns its URL.
pub async fn fresh_database(_admin_url: &str, name: &str) -> String {
    common::fresh_database(name).await
}

/// Drops the database `name`, if it exists, whoever is connected to it.
pub async fn drop_database(_admin_url: &str, name: &str) {
    common::drop_database(name).await;
}
