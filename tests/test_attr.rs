//! `#[tenancy::test]` itself: each test's own database from the template, tenants of each
//! placement resolved through the registry, the runtime flavors, and what is left after a
//! passing and a failing test.

mod common;

use common::models::*;
use tenancy::testing::{TestSetup, TestTenancy};
use tenancy::{Placement, TenantStatus};
use uuid::Uuid;

fn spinner(name: &str) -> NewSpinner {
    NewSpinner {
        id: Uuid::new_v4(),
        name: name.into(),
        color: None,
    }
}

async fn database_exists(name: &str) -> bool {
    let mut admin = common::admin_conn().await;
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut admin)
        .await
        .unwrap()
}

#[tenancy::test(
    migrations = "tests/migrations",
    tenants(acme = "shared", globex = "schema")
)]
async fn tenants_of_each_placement_are_handed_in_and_isolated(t: TestTenancy) {
    let (acme, globex) = (t.tenant("acme"), t.tenant("globex"));
    assert_eq!(acme.placement(), Placement::SharedTable);
    assert_eq!(globex.placement(), Placement::OwnSchema);
    assert_eq!(t.tenants().len(), 2);
    // Minted by the registry: resolving again gives the same tenant, and it is active.
    let again = t.tenancy().resolve_slug("globex").await.unwrap();
    assert_eq!(again.id(), globex.id());
    let record = t
        .tenancy()
        .tenant(
            &t.tenancy().superuser("test", "read").await.unwrap(),
            acme.id(),
        )
        .await
        .unwrap();
    assert_eq!(record.status, TenantStatus::Active);

    let a = Spinner::repo().insert(acme, &spinner("a")).await.unwrap();
    let g = Spinner::repo().insert(globex, &spinner("g")).await.unwrap();
    assert_eq!(Spinner::repo().get(globex, a.id).await.unwrap(), None);
    assert_eq!(Spinner::repo().get(acme, g.id).await.unwrap(), None);
    // The own-schema tenant's rows are in its schema, not in the shared table.
    let mut conn = t.connect().await;
    let shared: i64 = sqlx::query_scalar("SELECT count(*) FROM public.spinners")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(shared, 1);
}

#[tenancy::test(tenants(acme = "shared"))]
async fn without_migrations_the_registry_is_installed_and_tenants_made(t: TestTenancy) {
    let mut conn = t.connect().await;
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenancy.tenants")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(tenants, 1);
    assert_eq!(t.tenant("acme").slug(), "acme");
}

#[tenancy::test(
    migrations = "tests/migrations",
    tenants(acme = "shared"),
    flavor = "multi_thread",
    worker_threads = 2
)]
async fn runs_on_a_multi_thread_runtime_when_asked(t: TestTenancy) {
    let flavor = tokio::runtime::Handle::current().runtime_flavor();
    assert_eq!(flavor, tokio::runtime::RuntimeFlavor::MultiThread);
    let acme = t.tenant("acme").clone();
    let inserted = tokio::spawn(async move { Spinner::repo().insert(&acme, &spinner("x")).await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inserted.name, "x");
}

#[tenancy::test]
async fn a_test_may_take_nothing_and_return_a_result() -> Result<(), tenancy::Error> {
    Ok(())
}

#[tenancy::test(migrations = "tests/migrations")]
async fn tests_do_not_share_a_database(t: TestTenancy) {
    // Every test's database starts as the template: no tenant, empty tables, its own name.
    assert!(t.tenants().is_empty());
    assert!(
        t.database()
            .starts_with("tt_tests_do_not_share_a_database_")
    );
    let mut conn = t.connect().await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM spinners")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

/// The runner itself, driven by hand: a passing body's database is dropped, a panicking one's
/// kept (and dropped here by the test).
#[test]
fn a_passing_test_drops_its_database_and_a_failing_one_keeps_it() {
    use std::sync::{Arc, Mutex};
    let setup = || {
        TestSetup::new("runner_cleanup")
            .migrations_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/migrations"))
            .map(|s| s.tenant("acme", Placement::SharedTable))
    };
    let seen = Arc::new(Mutex::new(None::<String>));

    let s = Arc::clone(&seen);
    tenancy::testing::run(
        tenancy::testing::Flavor::CurrentThread,
        setup(),
        |t| async move {
            *s.lock().unwrap() = Some(t.database().to_owned());
        },
    );
    let passed = seen.lock().unwrap().take().unwrap();

    let s = Arc::clone(&seen);
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tenancy::testing::run(
            tenancy::testing::Flavor::CurrentThread,
            setup(),
            |t| async move {
                *s.lock().unwrap() = Some(t.database().to_owned());
                let fails = true;
                assert!(!fails, "the body fails");
            },
        )
    }));
    assert!(failed.is_err(), "the body's panic fails the test");
    let kept = seen.lock().unwrap().take().unwrap();

    let s = Arc::clone(&seen);
    let errored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tenancy::testing::run(
            tenancy::testing::Flavor::CurrentThread,
            setup(),
            |t| async move {
                *s.lock().unwrap() = Some(t.database().to_owned());
                Err::<(), _>("returned an error")
            },
        )
    }));
    assert!(errored.is_err(), "an Err fails the test");
    let kept_err = seen.lock().unwrap().take().unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert!(!database_exists(&passed).await, "{passed} was dropped");
        for name in [&kept, &kept_err] {
            assert!(database_exists(name).await, "{name} was kept");
            common::drop_database(name).await;
        }
    });
}

/// A bad migrations folder is a clear error, before any database is made.
#[test]
fn a_missing_migrations_folder_is_named() {
    let err = TestSetup::new("x")
        .migrations_dir("no/such/dir")
        .unwrap_err();
    assert!(err.to_string().contains("no/such/dir"), "{err}");
}

/// Without a server, the test says what is missing: run this binary again with a URL where
/// nothing listens.
#[test]
fn no_server_says_what_is_missing() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_test_may_take_nothing_and_return_a_result",
            "--nocapture",
        ])
        .env(
            "TENANCY_TEST_DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/postgres",
        )
        .output()
        .unwrap();
    assert!(!out.status.success(), "the test fails without a server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no PostgreSQL server for the tests")
            && stderr.contains("TENANCY_TEST_DATABASE_URL is set")
            && stderr.contains("127.0.0.1:1"),
        "{stderr}"
    );
}
