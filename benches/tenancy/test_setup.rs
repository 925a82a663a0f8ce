//! `test_setup_attr_vs_hand` (issue 14): what a test suite waits for its setup. 100 tests with
//! two tenants each (one on the shared tables, one in a schema of its own), run two at a time
//! as `cargo test` would on this machine, each way:
//!
//! - attr: what `#[tenancy::test(migrations = "tests/migrations", tenants(...))]` runs
//!   (`tenancy::testing::TestSetup`): a copy of the template database, a handle, two tenants,
//!   and the database dropped after;
//! - hand: the setup the tests wrote before: an empty database, a handle that installs the
//!   registry, the tenant migrations on the shared tables, two tenants, and the database dropped.
//!
//! The ratio is attr's seconds per 100 tests over hand's (lower is better), in alternating
//! rounds. The template is built before the first round, as a test binary's first test does.

use std::time::Instant;

use futures_util::StreamExt;
use tenancy::testing::{TestDatabase, TestSetup};
use tenancy::{MigrateOptions, Migrations, NewTenant, Placement, Tenancy};

use crate::harness::{Bench, Compare, Samples};

const NAME: &str = "test_setup_attr_vs_hand";

/// The tests of one round, and how many run at once.
const TESTS: usize = 100;
const PARALLEL: usize = 2;

const TENANTS: [(&str, Placement); 2] = [
    ("acme", Placement::SharedTable),
    ("globex", Placement::OwnSchema),
];

fn migrations_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/migrations").to_owned()
}

pub async fn run(b: &mut Bench) {
    if !b.wants(NAME) {
        return;
    }
    let mut setup = TestSetup::new("bench_attr")
        .migrations_dir(migrations_dir())
        .expect("tests/migrations");
    for (slug, placement) in TENANTS {
        setup = setup.tenant(slug, placement);
    }
    let tenant_migrations =
        Migrations::from_dir(format!("{}/tenant", migrations_dir())).expect("tenant migrations");
    // The template, built once as by the first test.
    attr_test(&setup).await;

    let rounds = if b.cfg.quick { 2 } else { 6 };
    let tests = if b.cfg.quick { 20 } else { TESTS };
    let (mut sa, mut sb) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        for attr_turn in [r % 2 == 0, r % 2 == 1] {
            let t = Instant::now();
            if attr_turn {
                suite(tests, |_| attr_test(&setup)).await;
                sa.push(t.elapsed().as_secs_f64());
            } else {
                suite(tests, |_| hand_test(&tenant_migrations)).await;
                sb.push(t.elapsed().as_secs_f64());
            }
        }
    }
    let spec = Compare {
        name: NAME,
        a: "attr",
        b: "hand",
        concurrency: PARALLEL,
        goal: None,
    };
    let detail = format!(
        "{tests} tests of 2 tenants (shared + own schema), {PARALLEL} at a time, seconds per suite"
    );
    b.add_ratio(&spec, &sa, &sb, Samples::Seconds, &detail);
}

async fn suite<F, Fut>(tests: usize, test: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    futures_util::stream::iter(0..tests)
        .map(test)
        .buffer_unordered(PARALLEL)
        .collect::<Vec<()>>()
        .await;
}

/// The attribute's setup and teardown of one passing test.
async fn attr_test(setup: &TestSetup) {
    let (db, t) = setup.create().await.expect("attribute setup");
    assert_eq!(t.tenants().len(), TENANTS.len());
    t.tenancy().close().await;
    db.drop_now().await.expect("drop the test database");
}

/// The hand-written setup and teardown of one passing test, as the tests had it.
async fn hand_test(tenant_migrations: &Migrations) {
    let db = TestDatabase::create("bench_hand")
        .await
        .expect("create database");
    let tenancy = Tenancy::builder()
        .max_connections(5)
        .tenant_migrations(tenant_migrations.clone())
        .connect(db.url())
        .await
        .expect("connect (installs the registry)");
    let su = tenancy
        .superuser("test", "migrate")
        .await
        .expect("superuser");
    let report = tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .expect("migrate");
    assert!(report.is_success(), "{report:?}");
    for (slug, placement) in TENANTS {
        tenancy
            .create_tenant(NewTenant::new(slug, slug).placement(placement))
            .await
            .expect("create tenant");
        tenancy.resolve_slug(slug).await.expect("resolve");
    }
    tenancy.close().await;
    db.drop_now().await.expect("drop the test database");
}
