//! Adversarial tests of reads that end their read-only transaction with a rollback queued for
//! the pool's release check: what the application's own pool settings, and SQL inside a read,
//! can observe or lose.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::models::*;
use common::{Rls, SPINNER_SCHEMA};
use sqlx::Row;
use sqlx::postgres::PgPoolOptions;
use tenancy::{MigrateOptions, Migration, Migrations, NewTenant, Tenancy, TenantCtx, rls};
use uuid::Uuid;

fn migrations() -> Migrations {
    let policies = format!(
        "{}{}",
        rls::policy_sql("spinners", "tenant_id").unwrap(),
        rls::policy_sql("spins", "tenant_id").unwrap()
    );
    Migrations::from_list(vec![
        Migration::new(1, "spinner app", SPINNER_SCHEMA),
        Migration::new(2, "row-level security", policies),
    ])
    .unwrap()
}

/// Row-level security on, as a role the policy holds, on `pool`; tenant A with two spinners.
async fn world(rls: &Rls, pool: sqlx::PgPool) -> (Tenancy, TenantCtx) {
    let tenancy = Tenancy::builder()
        .row_level_security(true)
        .tenant_migrations(migrations())
        .from_pool(pool)
        .await
        .expect("connect as the application role");
    let su = tenancy.superuser("test", "setup").await.unwrap();
    let report = tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    tenancy
        .create_tenant(NewTenant::new("tenant-a", "A"))
        .await
        .unwrap();
    let a = tenancy.resolve_slug("tenant-a").await.unwrap();
    for i in 0..2 {
        Spinner::repo()
            .insert(
                &a,
                &NewSpinner {
                    id: Uuid::new_v4(),
                    name: format!("s{i}"),
                    color: None,
                },
            )
            .await
            .unwrap();
    }
    let _ = rls;
    (tenancy, a)
}

/// What the hook saw: the tenant setting, and whether a transaction was open.
type Seen = (Option<String>, bool);

/// HOLDS (perf): an application's `after_release` hook runs on the connection before sqlx's
/// release check, so it is the first to use a connection whose read left its `ROLLBACK` queued.
/// Whatever it runs must find no transaction open and no tenant set (sqlx sends the queued
/// rollback before the hook's statement). Catches a read that leaves the transaction open
/// without queuing its end.
#[tokio::test]
async fn an_after_release_hook_never_sees_a_reads_tenant_or_transaction() {
    let rls = Rls::new("adv_perf_after_release").await;
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = Arc::clone(&seen);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .after_release(move |conn, _meta| {
            let log = Arc::clone(&log);
            Box::pin(async move {
                // One simple-query message: `now()` is an earlier statement's only inside a
                // transaction left open.
                let row = sqlx::raw_sql(
                    "SELECT NULLIF(current_setting('tenancy.tenant_id', true), ''), \
                     now() <> statement_timestamp()",
                )
                .fetch_one(conn)
                .await?;
                log.lock().unwrap().push((row.get(0), row.get(1)));
                Ok(true)
            })
        })
        .connect_with(rls.options())
        .await
        .unwrap();
    let (_tenancy, a) = world(&rls, pool.clone()).await;
    seen.lock().unwrap().clear();

    for _ in 0..3 {
        assert_eq!(
            Spinner::repo().query().fetch_all(&a).await.unwrap().len(),
            2
        );
        assert_eq!(Spinner::repo().count(&a).await.unwrap(), 2);
        // The release runs in a task of its own: the next acquire waits for it.
        drop(pool.acquire().await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 6, "the hook ran after every read: {seen:?}");
    for (tenant, open) in &seen {
        assert_eq!(tenant, &None, "the hook saw the tenant set: {seen:?}");
        assert!(!open, "the hook saw the read's transaction open: {seen:?}");
    }
}

/// HOLDS (perf): a read ends in a rollback, so a side effect a `READ ONLY` transaction allows
/// (`pg_notify`) would be discarded in silence; raw SQL, the only read that could call one,
/// refuses every function outside its read-only allow-list before anything is sent. Catches
/// the allow-list growing a function whose effect the rollback would drop.
#[tokio::test]
async fn a_read_cannot_call_a_side_effect_its_rollback_would_discard() {
    let rls = Rls::new("adv_perf_notify").await;
    let (_tenancy, a) = world(&rls, rls.app_pool(2).await).await;
    for call in [
        "pg_notify('adv_perf', s.name) IS NULL",
        "pg_advisory_lock(1) IS NULL",
        "set_config('tenancy.tenant_id', '', false) IS NULL",
    ] {
        let rows = Spinner::repo()
            .raw_as::<(String,)>(sqlx::AssertSqlSafe(format!(
                "SELECT s.name FROM {{spinners}} s WHERE {call}"
            )))
            .fetch_all(&a)
            .await;
        assert!(
            matches!(rows, Err(tenancy::Error::UnscopedSql(_))),
            "{call}: {rows:?}"
        );
    }
}

/// Backends of database `name` left inside a transaction (`idle in transaction`), other than
/// the one asking, after giving the pool's release task a moment.
async fn idle_in_transaction(name: &str) -> i64 {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut admin = common::admin_conn().await;
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = $1 AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
    )
    .bind(name)
    .fetch_one(&mut admin)
    .await
    .unwrap()
}

/// HOLDS (perf): seen from the server, a read leaves no backend inside its transaction once
/// the pool took the connection back: the queued `ROLLBACK` is sent by the release check, not
/// by the connection's next borrower, however long that takes. Catches a release path that
/// does not talk to the server (a pool, or a budget, without the check).
#[tokio::test]
async fn no_backend_stays_in_a_reads_transaction_after_release() {
    let rls = Rls::new("adv_perf_idle_tx").await;
    let pool = rls.app_pool(3).await;
    let (_tenancy, a) = world(&rls, pool).await;
    for _ in 0..5 {
        assert_eq!(
            Spinner::repo().query().fetch_all(&a).await.unwrap().len(),
            2
        );
    }
    assert_eq!(idle_in_transaction(&rls.db.name).await, 0);
}

/// HOLDS (perf + owndb): an own-database tenant's reads, in the statement mode that runs each
/// in a transaction of its own, leave no backend of its database inside a transaction once
/// its lease is back in the budget. (Catches a merge that routes these reads through the
/// queued-rollback path: a budget's release has no check that would send the rollback.)
#[tokio::test]
async fn an_own_database_read_leaves_no_transaction_open_in_the_budget() {
    let db = common::TestDb::new("adv_perf_owndb_idle").await;
    let tenancy = Tenancy::builder()
        .tenant_migrations(Migrations::from_static(&[(1, "spinner app", SPINNER_SCHEMA)]).unwrap())
        .statement_mode(tenancy::StatementMode::Unnamed)
        .database_budget(4, 2)
        .connect(&db.url)
        .await
        .unwrap();
    tenancy
        .create_tenant(NewTenant::new("own", "own").placement(tenancy::Placement::OwnDatabase))
        .await
        .unwrap();
    let own = tenancy.resolve_slug("own").await.unwrap();
    Spinner::repo()
        .insert(
            &own,
            &NewSpinner {
                id: Uuid::new_v4(),
                name: "one".into(),
                color: None,
            },
        )
        .await
        .unwrap();
    for _ in 0..5 {
        assert_eq!(
            Spinner::repo().query().fetch_all(&own).await.unwrap().len(),
            1
        );
        assert_eq!(Spinner::repo().count(&own).await.unwrap(), 1);
    }
    let database = own.home().database().unwrap().as_str().to_owned();
    assert_eq!(idle_in_transaction(&database).await, 0);
}
