//! The resolution cache against the server: concurrent resolutions of a tenant that is not
//! cached make one registry query between them.

mod common;

use std::time::Duration;

use sqlx::Connection;
use tenancy::Tenancy;
use tenancy::testing::TestTenancy;

/// Backends of this database waiting for a lock while running a registry lookup by slug.
async fn lookups_waiting(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'
            AND query LIKE '%FROM tenancy.tenants t WHERE t.slug%'",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

#[tenancy::test(migrations = "tests/migrations", tenants(acme = "shared"))]
async fn concurrent_resolutions_of_an_uncached_tenant_make_one_registry_query(t: TestTenancy) {
    // A handle of its own, whose cache has never seen acme, with room for every lookup to run
    // at once if each sent its own query.
    let tenancy = Tenancy::builder()
        .max_connections(12)
        .connect(t.url())
        .await
        .unwrap();
    // Hold the registry so that every lookup that reaches the server waits, visibly.
    let mut locker = t.connect().await;
    let mut tx = locker.begin().await.unwrap();
    sqlx::query("LOCK TABLE tenancy.tenants IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let resolutions: Vec<_> = (0..8)
        .map(|_| {
            let tenancy = tenancy.clone();
            tokio::spawn(async move { tenancy.resolve_slug("acme").await })
        })
        .collect();
    let mut watcher = t.connect().await;
    let mut waiting = 0;
    for _ in 0..100 {
        waiting = lookups_waiting(&mut watcher).await;
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give the other seven every chance to send theirs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settled = lookups_waiting(&mut watcher).await;
    tx.rollback().await.unwrap();
    assert_eq!((waiting, settled), (1, 1), "registry queries in flight");
    let acme = t.tenant("acme").id();
    for r in resolutions {
        assert_eq!(r.await.unwrap().unwrap().id(), acme);
    }
    tenancy.close().await;
}
