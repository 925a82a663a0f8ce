//! Bugs the soak found, each reduced to a small test without randomness.

use tenancy::{Error, NewTenant, Tenancy};

use crate::common::{TestDb, migrate_all};
use crate::faults::{Ended, Fault, inject};
use crate::ledger::Ledger;
use crate::world::model::Entry;

/// Found by the soak's lifecycle work (on main before e17a49a): a `suspend` cut off after its
/// `COMMIT` went out still suspended the tenant, but contexts already held were not revoked
/// (the revocation ran after the commit's reply, and the handle ignored its own change
/// notification), so they kept reading and writing for a suspended tenant. The test drops `suspend` after its 1st, 2nd,
/// 3rd ... `Pending` until one call completes; each time the registry says suspended, a context
/// resolved before must be refused.
#[tokio::test]
async fn a_cancelled_suspend_that_committed_revokes_held_contexts() {
    let db = TestDb::new("soak_cancelled_suspend").await;
    let tenancy = Tenancy::builder()
        .max_connections(1)
        .tenant_migrations(crate::world::migrations(false))
        .connect(&db.url)
        .await
        .unwrap();
    migrate_all(&tenancy).await;
    tenancy
        .create_tenant(NewTenant::new("held", "held"))
        .await
        .unwrap();
    let su = tenancy
        .superuser("test", "suspend under cancellation")
        .await
        .unwrap();
    let ledger = Ledger::default();
    let mut admin = db.connect().await;
    let mut committed_cut_off = 0;
    for k in 1..=40 {
        let held = tenancy.resolve_slug("held").await.unwrap();
        let id = held.id();
        let ended = inject(&ledger, Fault::AfterPending(k), tenancy.suspend(&su, id)).await;
        settle(&mut admin).await;
        let status: String = sqlx::query_scalar("SELECT status FROM tenancy.tenants WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_one(&mut admin)
            .await
            .unwrap();
        if status == "suspended" {
            let refused = Entry::repo().count(&held).await;
            assert!(
                matches!(refused, Err(Error::ContextRevoked { .. })),
                "suspend dropped after its {k}th Pending suspended the tenant, and a context \
                 held from before still works: {refused:?}"
            );
            if matches!(ended, Ended::Cancelled) {
                committed_cut_off += 1;
            }
            tenancy.resume(&su, id).await.unwrap();
        }
        if matches!(ended, Ended::Done(_)) {
            ended.ok().expect("the uncut suspend succeeds");
            // Every await point of a suspend was cut once.
            assert!(
                k > 3,
                "suspend completed after {k} Pendings: the cuts covered nothing"
            );
            return;
        }
    }
    panic!("suspend never completed in 40 Pendings ({committed_cut_off} cut off after commit)");
}

/// Waits until no other backend of the database is busy or inside a transaction: what a cut-off
/// call had sent has been carried out (or rolled back) by then.
async fn settle(admin: &mut sqlx::PgConnection) {
    for _ in 0..250 {
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND backend_type = 'client backend' \
             AND state IS DISTINCT FROM 'idle'",
        )
        .fetch_one(&mut *admin)
        .await
        .unwrap();
        if busy == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("a backend of the database stayed busy for 5 s");
}
