//! A lifecycle change made through one `Tenancy` reaches every other one (another process, or
//! another handle in this process: the same thing to the library) through PostgreSQL's
//! LISTEN/NOTIFY: the other handle's cache forgets the tenant and its held contexts are refused.
//! A purged tenant's id is never given out again.
//!
//! The other handle's cache lives far longer than any test, so only a notification can make it
//! see a change. Each wait polls against a generous deadline; nothing asserts how fast.

mod common;

use std::time::Duration;

use common::models::*;
use common::{SPINNER_SCHEMA, TestDb, add_spinner};
use tenancy::{Error, Migrations, NewTenant, Tenancy, TenantCtx, TenantId};

/// Far beyond any wait below: a change seen within a test was notified, not expired.
const LONG_TTL: Duration = Duration::from_secs(3600);
/// How long a notification may take before a test fails; it normally takes milliseconds.
const DEADLINE: Duration = Duration::from_secs(10);

async fn handle(db: &TestDb) -> Tenancy {
    Tenancy::builder()
        .max_connections(3)
        .cache_ttl(LONG_TTL)
        .tenant_migrations(Migrations::from_static(&[(1, "spinner app", SPINNER_SCHEMA)]).unwrap())
        .connect(&db.url)
        .await
        .unwrap()
}

/// Polls `check` until it holds, failing the test after [`DEADLINE`].
async fn eventually(what: &str, check: impl AsyncFnMut() -> bool) {
    tenancy::testing::eventually(what, DEADLINE, check).await;
}

async fn revoked(ctx: &TenantCtx) -> bool {
    match Spinner::repo().count(ctx).await {
        Err(Error::ContextRevoked { id, .. }) => id == ctx.id(),
        Ok(_) => false,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_handle_stops_the_tenant_in_another() {
    let db = TestDb::new("revoke_two_handles").await;
    let a = handle(&db).await;
    let b = handle(&db).await;
    common::migrate_all(&a).await;
    let mut ids = Vec::new();
    for slug in ["acme", "globex", "initech", "hooli"] {
        let t = a
            .create_tenant(NewTenant::new(slug, slug).host(format!("{slug}.test")))
            .await
            .unwrap();
        ids.push(t.id);
    }
    let [acme, globex, initech, hooli] = ids[..] else {
        unreachable!()
    };
    // B resolves each (its cache now holds them for an hour) and keeps the contexts.
    let held_acme = b.resolve_slug("acme").await.unwrap();
    let held_globex = b.resolve_host("globex.test").await.unwrap();
    let held_initech = b.resolve_id(initech).await.unwrap();
    let held_hooli = b.resolve_slug("hooli").await.unwrap();
    add_spinner(&held_initech, "written before the purge")
        .await
        .unwrap();
    let su = a.superuser("ops", "revocation test").await.unwrap();

    // Suspension.
    a.suspend(&su, acme).await.unwrap();
    eventually("B refuses acme's held context", async || {
        revoked(&held_acme).await
    })
    .await;
    assert!(matches!(
        b.resolve_slug("acme").await,
        Err(Error::TenantSuspended { id, .. }) if id == acme
    ));

    // Soft deletion.
    a.soft_delete(&su, globex).await.unwrap();
    eventually("B refuses globex's held context", async || {
        revoked(&held_globex).await
    })
    .await;
    assert!(matches!(
        b.resolve_host("globex.test").await,
        Err(Error::TenantDeleted { id, .. }) if id == globex
    ));

    // Purge: B's held context stops, B stops resolving it, and nobody can create it again.
    a.soft_delete(&su, initech).await.unwrap();
    a.purge(&su, initech).await.unwrap();
    eventually("B refuses initech's held context", async || {
        revoked(&held_initech).await
    })
    .await;
    assert!(matches!(
        add_spinner(&held_initech, "written after the purge").await,
        Err(Error::ContextRevoked { .. })
    ));
    assert!(matches!(
        b.resolve_id(initech).await,
        Err(Error::TenantNotFound(_))
    ));
    for creator in [&a, &b] {
        let su = creator.superuser("ops", "reuse an id").await.unwrap();
        let again = creator
            .create_tenant_with_id(&su, NewTenant::new("initech", "Initech again"), initech)
            .await;
        assert!(
            matches!(&again, Err(Error::TenantIdPurged(id)) if *id == initech),
            "{again:?}"
        );
    }
    // The slug is free again, under a new id, and nothing of the old tenant shows.
    let reborn = a
        .create_tenant(NewTenant::new("initech", "Initech again"))
        .await
        .unwrap();
    assert_ne!(reborn.id, initech);
    let reborn = b.resolve_slug("initech").await.unwrap();
    assert_eq!(Spinner::repo().count(&reborn).await.unwrap(), 0);

    // A slug or host change forgets the old names in B's cache; the tenant's context acts on.
    a.rename_slug(&su, hooli, "hooli-xyz").await.unwrap();
    a.remove_host(&su, hooli, "hooli.test").await.unwrap();
    eventually("B forgets hooli's old slug and host", async || {
        matches!(b.resolve_slug("hooli").await, Err(Error::TenantNotFound(_)))
            && matches!(
                b.resolve_host("hooli.test").await,
                Err(Error::TenantNotFound(_))
            )
    })
    .await;
    assert_eq!(b.resolve_slug("hooli-xyz").await.unwrap().id(), hooli);
    add_spinner(&held_hooli, "after the rename").await.unwrap();

    // Resumption: B resolves acme again, and the context it held before stays refused.
    a.resume(&su, acme).await.unwrap();
    let fresh = b.resolve_id(acme).await.unwrap();
    add_spinner(&fresh, "after resuming").await.unwrap();
    assert!(revoked(&held_acme).await);
    a.close().await;
    b.close().await;
}

/// A notification sent while a listener is disconnected is lost, so a listener that reconnects
/// treats everything resolved before as revoked; after that, notifications arrive again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_lost_its_connection_revokes_everything_and_listens_again() {
    let db = TestDb::new("revoke_reconnect").await;
    let a = handle(&db).await;
    let b = handle(&db).await;
    common::migrate_all(&a).await;
    for slug in ["acme", "globex"] {
        a.create_tenant(NewTenant::new(slug, slug)).await.unwrap();
    }
    let held_acme = b.resolve_slug("acme").await.unwrap();
    let held_globex = b.resolve_slug("globex").await.unwrap();

    // Kill every listener connection of this database (A's and B's), then suspend acme at
    // once: B may not hear of it, and must refuse acme all the same.
    let mut admin = db.connect().await;
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1) k",
    )
    .bind("tenancy registry listener")
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, 2, "one listener per handle");
    let su = a.superuser("ops", "revocation test").await.unwrap();
    let acme = held_acme.id();
    a.suspend(&su, acme).await.unwrap();
    eventually("B refuses acme's held context", async || {
        revoked(&held_acme).await
    })
    .await;
    assert!(matches!(
        b.resolve_id(acme).await,
        Err(Error::TenantSuspended { .. })
    ));
    // Nothing happened to globex, but B cannot know: its held context is refused too, and a
    // fresh one acts.
    eventually(
        "B refuses every context resolved before it reconnected",
        async || revoked(&held_globex).await,
    )
    .await;
    // A context resolved while B is still deaf is refused once B hears again (what was sent
    // meanwhile is lost), so wait until both listeners are back, then for a fresh context that
    // acts: B hears its own hello and revokes a moment after its LISTEN shows here.
    eventually("both listeners connect again", async || {
        let listening: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = $1",
        )
        .bind("tenancy registry listener")
        .fetch_one(&mut admin)
        .await
        .unwrap();
        listening == 2
    })
    .await;
    let mut fresh = None;
    eventually("a context resolved after B reconnected acts", async || {
        let ctx = b.resolve_slug("globex").await.unwrap();
        match add_spinner(&ctx, "after reconnecting").await {
            Ok(_) => {
                fresh = Some(ctx);
                true
            }
            Err(Error::ContextRevoked { .. }) => false,
            Err(e) => panic!("{e}"),
        }
    })
    .await;
    let globex = fresh.expect("set when it acted");

    // B listens again: the next change reaches it.
    a.soft_delete(&su, globex.id()).await.unwrap();
    eventually("B refuses globex after its deletion", async || {
        revoked(&globex).await
    })
    .await;
    a.close().await;
    b.close().await;
}

/// Closing a handle, or dropping its last clone, ends its listener and its connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_ends_with_its_handle() {
    let db = TestDb::new("revoke_listener_end").await;
    let mut admin = db.connect().await;
    let listeners = async |admin: &mut sqlx::PgConnection| -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = $1",
        )
        .bind("tenancy registry listener")
        .fetch_one(admin)
        .await
        .unwrap()
    };
    let closed = handle(&db).await;
    let dropped = handle(&db).await;
    let clone = dropped.clone();
    assert_eq!(listeners(&mut admin).await, 2);
    closed.close().await;
    drop(dropped);
    eventually("the closed handle's listener disconnects", async || {
        listeners(&mut admin).await == 1
    })
    .await;
    drop(clone);
    eventually("the dropped handle's listener disconnects", async || {
        listeners(&mut admin).await == 0
    })
    .await;

    // Turned off, there is none.
    let quiet = Tenancy::builder()
        .listen_for_changes(false)
        .connect(&db.url)
        .await
        .unwrap();
    assert_eq!(listeners(&mut admin).await, 0);
    quiet.close().await;
}

/// The listener may use its own address (the direct one, behind PgBouncer): it connects there,
/// and says so when it cannot.
#[tokio::test]
async fn the_listener_connects_to_the_notify_url() {
    let db = TestDb::new("revoke_notify_url").await;
    // Nothing listens on port 1.
    let err = Tenancy::builder()
        .notify_url("postgres://postgres@127.0.0.1:1/postgres")
        .connect(&db.url)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot connect to PostgreSQL at 127.0.0.1:1: connection refused"
    );
    let tenancy = Tenancy::builder()
        .notify_url(&db.url)
        .connect(&db.url)
        .await
        .unwrap();
    tenancy.close().await;
}

/// Notifications are per database: a listener whose `notify_url` names another database of the
/// same server connects and listens, but would hear none of this database's changes, so
/// connecting refuses it rather than leave held contexts unrevoked.
#[tokio::test]
async fn a_notify_url_naming_another_database_is_refused() {
    let db = TestDb::new("revoke_notify_other_db").await;
    // The server's maintenance database: reachable, and not the pool's.
    let err = Tenancy::builder()
        .notify_url(&common::admin_url())
        .connect(&db.url)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotificationsUnheard { listener } if listener.ends_with("/postgres")),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("notify_url"), "{message}");
    assert!(message.contains("listen_for_changes(false)"), "{message}");
}

/// Another handle's hello (each listener's proof, at start, that it hears the channel) changes
/// nothing here: contexts held by the handles already listening go on acting.
#[tokio::test]
async fn another_handles_hello_revokes_nothing() {
    let db = TestDb::new("revoke_hello").await;
    let a = handle(&db).await;
    common::migrate_all(&a).await;
    a.create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let marker = a
        .create_tenant(NewTenant::new("marker", "Marker"))
        .await
        .unwrap();
    let held = a.resolve_slug("acme").await.unwrap();
    let held_marker = a.resolve_id(marker.id).await.unwrap();
    // Each new handle says hello on the channel A listens to.
    let b = handle(&db).await;
    handle(&db).await.close().await;
    // A change after the hellos: notifications arrive in order, so once A has applied this
    // one it has read the hellos too.
    let su = b.superuser("ops", "hello test").await.unwrap();
    b.suspend(&su, marker.id).await.unwrap();
    eventually("A refuses the marker's held context", async || {
        revoked(&held_marker).await
    })
    .await;
    assert_eq!(Spinner::repo().count(&held).await.unwrap(), 0);
    a.close().await;
    b.close().await;
}

/// A purged id is refused even through a handle that never saw the tenant, and the refused
/// creation writes nothing.
#[tokio::test]
async fn purged_ids_are_refused_by_every_handle() {
    let db = TestDb::new("revoke_tombstone").await;
    let a = handle(&db).await;
    common::migrate_all(&a).await;
    let id = TenantId::new_v4();
    let su = a.superuser("ops", "tombstone test").await.unwrap();
    a.create_tenant_with_id(&su, NewTenant::new("acme", "Acme"), id)
        .await
        .unwrap();
    a.soft_delete(&su, id).await.unwrap();
    a.purge(&su, id).await.unwrap();
    let late = Tenancy::builder()
        .listen_for_changes(false)
        .connect(&db.url)
        .await
        .unwrap();
    let late_su = late.superuser("ops", "tombstone test").await.unwrap();
    assert!(matches!(
        late.create_tenant_with_id(&late_su, NewTenant::new("acme", "Acme"), id).await,
        Err(Error::TenantIdPurged(i)) if i == id
    ));
    assert_eq!(
        Error::TenantIdPurged(id).to_string(),
        format!("the tenant id {id} belonged to a purged tenant and cannot be used again")
    );
    let mut conn = db.connect().await;
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenancy.tenants")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(tenants, 0, "the refused creation wrote nothing");
}

/// A suspension whose caller is cancelled after its `COMMIT` went out has suspended the tenant
/// without running the lines after the commit: the handle that made it must still refuse the
/// contexts it holds, at once (before the commit) and, for a resolution that raced the change,
/// through its own notification. Cut at every await of `suspend` in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_cancelled_after_its_commit_still_stops_held_contexts() {
    let db = TestDb::new("revoke_cancelled_suspend").await;
    let a = handle(&db).await;
    common::migrate_all(&a).await;
    let t = a
        .create_tenant(NewTenant::new("held", "held"))
        .await
        .unwrap();
    let su = a
        .superuser("test", "suspend under cancellation")
        .await
        .unwrap();
    let mut admin = db.connect().await;
    // Whether the cut lands after the COMMIT reached the server is up to timing: sweep again
    // until it has, a few times at most.
    let mut cut_after_commit = 0;
    for _sweep in 0..20 {
        if cut_after_commit > 0 {
            break;
        }
        for k in 1.. {
            let held = a.resolve_id(t.id).await.unwrap();
            let done = common::cancel_at(k, a.suspend(&su, t.id)).await;
            // A cut connection is closed behind the cut: wait until the server has finished with
            // it (a COMMIT already sent commits first), so that the status read is final.
            eventually("the cut connection is finished with", async || {
                let busy: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND pid <> pg_backend_pid() AND state <> 'idle'",
                )
                .fetch_one(&mut admin)
                .await
                .unwrap();
                busy == 0
            })
            .await;
            let status: String =
                sqlx::query_scalar("SELECT status FROM tenancy.tenants WHERE id = $1")
                    .bind(t.id.as_uuid())
                    .fetch_one(&mut admin)
                    .await
                    .unwrap();
            if status == "suspended" {
                assert!(
                    revoked(&held).await,
                    "suspend cut at await {k} suspended the tenant, and a context held from before still acts"
                );
                // Resolution from the cache must not hand out the suspended tenant either.
                eventually("the suspended tenant stops resolving", async || {
                    matches!(a.resolve_id(t.id).await, Err(Error::TenantSuspended { .. }))
                })
                .await;
                if done.is_none() {
                    cut_after_commit += 1;
                }
                a.resume(&su, t.id).await.unwrap();
            }
            if let Some(out) = done {
                // Whether this sweep exercised anything is the check after the loop.
                out.unwrap();
                break;
            }
            assert!(k < 200, "suspend never finished");
        }
    }
    assert!(
        cut_after_commit > 0,
        "no cut fell after the COMMIT went out, so the case was not exercised"
    );
}
