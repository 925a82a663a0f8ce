//! Moving a tenant between placements (`Tenancy::move_tenant`), against the real server: the
//! copy and its verification, the switch, the old copy and its purge, and the write fence that
//! keeps every acknowledged write while the tenant moves, from this process and from a second
//! handle whose cache is behind.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::models::*;
use common::moving::*;
use sqlx::PgConnection;
use tenancy::testing::TestTenancy;
use tenancy::{Error, MoveOptions, Placement, Purged, Tenancy, TenantId};

async fn registry_home(conn: &mut PgConnection, id: TenantId) -> (String, Option<String>) {
    sqlx::query_as("SELECT placement, schema_name FROM tenancy.tenants WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_one(conn)
        .await
        .unwrap()
}

fn old_schema(id: TenantId) -> String {
    format!("tenancy_old_{}", id.as_uuid().simple())
}

async fn schema_exists(conn: &mut PgConnection, name: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(name)
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_tenant_moves_to_its_own_schema_and_back_and_its_old_copies_are_purged(t: TestTenancy) {
    let tenancy = t.tenancy().clone();
    let a = tenant(&tenancy, "acme", Placement::SharedTable).await;
    let b = tenant(&tenancy, "globex", Placement::SharedTable).await;
    let sa = fill(&a, 50).await;
    fill(&b, 7).await;
    let mut conn = t.connect().await;
    let before = spin_ids(&mut conn, "public.spins", a.id()).await;
    let b_before = spin_ids(&mut conn, "public.spins", b.id()).await;

    let su = tenancy
        .superuser("ops", "ticket #12: move acme")
        .await
        .unwrap();
    let moved = tenancy
        .move_tenant(&su, a.id(), Placement::OwnSchema)
        .await
        .unwrap();
    assert_eq!(moved.from, Placement::SharedTable);
    assert_eq!(moved.to, Placement::OwnSchema);
    assert_eq!(moved.schema.as_deref(), Some("t_acme"));
    assert_eq!(moved.old_copy.placement, Placement::SharedTable);
    assert_eq!(moved.old_copy.schema, None);
    let names: Vec<&str> = moved.tables.iter().map(|m| m.table.as_str()).collect();
    assert_eq!(names, ["spinners", "spins"], "parents first");
    assert_eq!(moved.rows(), 51);
    assert!(moved.tables.iter().all(|m| m.checksum.len() == 32));

    // The registry names the new home and remembers the old copy; the move is audited.
    assert_eq!(
        registry_home(&mut conn, a.id()).await,
        ("own_schema".into(), Some("t_acme".into()))
    );
    let old: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT placement, schema_name FROM tenancy.old_copies WHERE tenant_id = $1",
    )
    .bind(a.id().as_uuid())
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(old, [("shared_table".to_owned(), None)]);
    let audit: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT actor, reason, detail FROM tenancy.audit_log \
         WHERE action = 'tenant.move' AND $1 = ANY (tenant_ids)",
    )
    .bind(a.id().as_uuid())
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].0, "ops");
    assert_eq!(audit[0].1, "ticket #12: move acme");
    assert!(audit[0].2.contains("51 rows"), "{}", audit[0].2);

    // Both copies hold the same rows; the other tenant is untouched.
    assert_eq!(spin_ids(&mut conn, "t_acme.spins", a.id()).await, before);
    assert_eq!(spin_ids(&mut conn, "public.spins", a.id()).await, before);
    assert_eq!(spin_ids(&mut conn, "public.spins", b.id()).await, b_before);
    let same: bool = sqlx::query_scalar(
        "SELECT (SELECT array_agg(s::text ORDER BY id) FROM t_acme.spins s) \
              = (SELECT array_agg(s::text ORDER BY id) FROM public.spins s WHERE tenant_id = $1)",
    )
    .bind(a.id().as_uuid())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(same, "every column of every row copied as it was");

    // The context resolved before the move was revoked; a new one works on the new home.
    assert!(matches!(
        Spin::repo().count(&a).await,
        Err(Error::ContextRevoked { .. })
    ));
    let a = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(a.placement(), Placement::OwnSchema);
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 50);
    let new = Spin::repo()
        .insert(&a, &new_spin(sa.id, 999))
        .await
        .unwrap();
    assert!(
        spin_ids(&mut conn, "t_acme.spins", a.id())
            .await
            .contains(&new.id)
    );
    assert!(
        !spin_ids(&mut conn, "public.spins", a.id())
            .await
            .contains(&new.id)
    );

    // Moving where it is, or back where an old copy still is, is refused and changes nothing.
    for to in [Placement::OwnSchema, Placement::SharedTable] {
        let e = tenancy.move_tenant(&su, a.id(), to).await.unwrap_err();
        assert!(matches!(e, Error::MoveRefused { .. }), "{to}: {e}");
    }
    assert_eq!(
        registry_home(&mut conn, a.id()).await,
        ("own_schema".into(), Some("t_acme".into()))
    );

    // Purging the old copy deletes the old shared rows, and only those.
    let purged = tenancy.purge_old_copy(&su, a.id()).await.unwrap();
    assert!(
        matches!(&purged[..], [Purged::Rows(rows)] if rows.iter().any(|(t, n)| t.ends_with(".spins") && *n == 50)),
        "{purged:?}"
    );
    assert!(spin_ids(&mut conn, "public.spins", a.id()).await.is_empty());
    assert_eq!(spin_ids(&mut conn, "public.spins", b.id()).await, b_before);
    assert_eq!(spin_ids(&mut conn, "t_acme.spins", a.id()).await.len(), 51);
    assert!(
        tenancy
            .purge_old_copy(&su, a.id())
            .await
            .unwrap()
            .is_empty()
    );

    // A handle that never hears of the next move (no listener) holds the own schema.
    let behind = Tenancy::builder()
        .listen_for_changes(false)
        .connect(t.url())
        .await
        .unwrap();
    let behind_ctx = behind.resolve_slug("acme").await.unwrap();
    assert_eq!(Spin::repo().count(&behind_ctx).await.unwrap(), 51);

    // And back: the old schema is kept under a name of its own until purged.
    let back = tenancy
        .move_tenant(&su, a.id(), Placement::SharedTable)
        .await
        .unwrap();
    assert_eq!(back.rows(), 52);
    assert_eq!(
        back.old_copy.schema.as_deref(),
        Some(old_schema(a.id()).as_str())
    );
    assert!(!schema_exists(&mut conn, "t_acme").await);
    assert!(schema_exists(&mut conn, &old_schema(a.id())).await);
    assert_eq!(spin_ids(&mut conn, "public.spins", a.id()).await.len(), 51);
    // A context that still holds the own schema gets a typed error, not the old copy.
    let stale = a.clone();
    assert!(matches!(
        Spin::repo().count(&stale).await,
        Err(Error::ContextRevoked { .. } | Error::TenantMoved(_))
    ));
    let a = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 51);
    // The handle that did not hear of it: its reads and writes find the old schema renamed,
    // and say the tenant moved.
    for out in [
        Spin::repo().count(&behind_ctx).await.map(drop),
        Spin::repo()
            .insert(&behind_ctx, &new_spin(sa.id, 7))
            .await
            .map(drop),
    ] {
        assert!(
            matches!(out, Err(Error::TenantMoved(id)) if id == a.id()),
            "{out:?}"
        );
    }

    // Purging the tenant removes its old copy too.
    tenancy.soft_delete(&su, a.id()).await.unwrap();
    tenancy.purge(&su, a.id()).await.unwrap();
    assert!(!schema_exists(&mut conn, &old_schema(a.id())).await);
    assert!(spin_ids(&mut conn, "public.spins", a.id()).await.is_empty());
    assert_eq!(spin_ids(&mut conn, "public.spins", b.id()).await, b_before);
}

#[tenancy::test(migrations = "tests/migrations")]
async fn moves_that_cannot_be_done_are_refused_with_clear_errors(t: TestTenancy) {
    let tenancy = t.tenancy().clone();
    let su = tenancy.superuser("ops", "refusals").await.unwrap();
    let unknown = TenantId::new_v4();
    assert!(matches!(
        tenancy
            .move_tenant(&su, unknown, Placement::OwnSchema)
            .await,
        Err(Error::TenantNotFound(_))
    ));
    let suspended = tenant(&tenancy, "suspended", Placement::SharedTable).await;
    tenancy.suspend(&su, suspended.id()).await.unwrap();
    let deleted = tenant(&tenancy, "deleted", Placement::OwnSchema).await;
    tenancy.soft_delete(&su, deleted.id()).await.unwrap();
    for (id, to) in [
        (suspended.id(), Placement::OwnSchema),
        (deleted.id(), Placement::SharedTable),
    ] {
        let e = tenancy.move_tenant(&su, id, to).await.unwrap_err();
        assert!(
            matches!(e, Error::WrongStatus { action: "move", .. }),
            "{e}"
        );
    }
    let shared = tenant(&tenancy, "shared", Placement::SharedTable).await;
    let e = tenancy
        .move_tenant(&su, shared.id(), Placement::SharedTable)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("already lives on the shared_table placement"),
        "{e}"
    );
    // A schema in the way of the target is named, and nothing is moved.
    t.exec("CREATE SCHEMA t_shared").await;
    let e = tenancy
        .move_tenant(&su, shared.id(), Placement::OwnSchema)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("t_shared exists already"), "{e}");
    let mut conn = t.connect().await;
    assert_eq!(
        registry_home(&mut conn, shared.id()).await.0,
        "shared_table"
    );
    // A failed move writes no audit row of a move.
    let moves: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenancy.audit_log WHERE action = 'tenant.move'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(moves, 0);
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_copy_that_does_not_match_aborts_the_move_and_leaves_the_tenant_writable(t: TestTenancy) {
    let tenancy = t.tenancy().clone();
    let a = tenant(&tenancy, "acme", Placement::SharedTable).await;
    let s = fill(&a, 20).await;
    let su = tenancy.superuser("ops", "verification").await.unwrap();
    // A tampered copy: same count, one value changed.
    let e = tenancy
        .move_tenant_with(
            &su,
            a.id(),
            Placement::OwnSchema,
            MoveOptions::default().after_copy_sql(
                "UPDATE t_acme.spins SET duration = duration + 1 \
                 WHERE id = (SELECT id FROM t_acme.spins ORDER BY id LIMIT 1)",
            ),
        )
        .await
        .unwrap_err();
    match &e {
        Error::MoveVerification { table, detail, .. } => {
            assert_eq!(table, "spins");
            assert!(detail.contains("20 rows"), "{detail}");
        }
        other => panic!("expected a verification failure, got {other}"),
    }
    // A lost row: the count differs.
    let e = tenancy
        .move_tenant_with(
            &su,
            a.id(),
            Placement::OwnSchema,
            MoveOptions::default().after_copy_sql(
                "DELETE FROM t_acme.spins WHERE id = (SELECT id FROM t_acme.spins ORDER BY id DESC LIMIT 1)",
            ),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::MoveVerification { .. }), "{e}");

    let mut conn = t.connect().await;
    assert_eq!(
        registry_home(&mut conn, a.id()).await,
        ("shared_table".into(), None)
    );
    assert!(!schema_exists(&mut conn, "t_acme").await);
    let olds: i64 = sqlx::query_scalar("SELECT count(*) FROM tenancy.old_copies")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(olds, 0);
    // Still served, still writable, where it was: the failed moves revoked nothing.
    Spin::repo().insert(&a, &new_spin(s.id, 100)).await.unwrap();
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 21);
    // And the move runs once nothing tampers with it.
    let moved = tenancy
        .move_tenant(&su, a.id(), Placement::OwnSchema)
        .await
        .unwrap();
    assert_eq!(moved.rows(), 22);
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_crashed_or_cancelled_mover_leaves_the_tenant_on_its_old_copy_and_writable(
    t: TestTenancy,
) {
    let tenancy = t.tenancy().clone();
    let a = tenant(&tenancy, "acme", Placement::OwnSchema).await;
    let s = fill(&a, 10).await;
    let su = Arc::new(tenancy.superuser("ops", "crash").await.unwrap());
    let mut conn = t.connect().await;

    // A mover whose backend dies with the fence up.
    let mover = spawn_move(
        &tenancy,
        &su,
        a.id(),
        Placement::SharedTable,
        MoveOptions::default().hold_fence(Duration::from_secs(3)),
    );
    let pid = wait_for_mover(&mut conn).await;
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(killed);
    // The write goes through (a fence left up would fail it after its wait), to the old copy,
    // which is still the home.
    Spin::repo().insert(&a, &new_spin(s.id, 1)).await.unwrap();
    assert!(mover.await.unwrap().is_err());
    assert_eq!(
        registry_home(&mut conn, a.id()).await,
        ("own_schema".into(), Some("t_acme".into()))
    );
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 11);
    assert!(spin_ids(&mut conn, "public.spins", a.id()).await.is_empty());

    // A mover whose future is dropped with the fence up.
    let dropped = tokio::time::timeout(
        Duration::from_millis(1500),
        tenancy.move_tenant_with(
            &su,
            a.id(),
            Placement::SharedTable,
            MoveOptions::default().hold_fence(Duration::from_secs(30)),
        ),
    )
    .await;
    assert!(
        dropped.is_err(),
        "the move was cut off while holding its fence"
    );
    Spin::repo().insert(&a, &new_spin(s.id, 2)).await.unwrap();
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 12);

    // A rerun starts over and completes.
    let moved = tenancy
        .move_tenant(&su, a.id(), Placement::SharedTable)
        .await
        .unwrap();
    assert_eq!(moved.rows(), 13);
    assert!(mover_pid(&mut conn).await.is_none());
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_write_meets_the_fence_waits_a_bounded_time_then_gets_a_retryable_error(t: TestTenancy) {
    // This handle's writes wait at most 200 ms for a move.
    let url = format!("{}?options=-c%20tenancy.move_wait%3D200ms", t.url());
    let short = Tenancy::builder()
        .max_connections(3)
        .connect(&url)
        .await
        .unwrap();
    let tenancy = t.tenancy().clone();
    let a = tenant(&tenancy, "acme", Placement::SharedTable).await;
    let b = tenant(&tenancy, "globex", Placement::SharedTable).await;
    let s = fill(&a, 5).await;
    let sb = fill(&b, 5).await;
    let a_short = short.resolve_id(a.id()).await.unwrap();
    let su = Arc::new(tenancy.superuser("ops", "bounded wait").await.unwrap());
    let mut conn = t.connect().await;

    let mover = spawn_move(
        &tenancy,
        &su,
        a.id(),
        Placement::OwnSchema,
        MoveOptions::default().hold_fence(Duration::from_secs(2)),
    );
    wait_for_mover(&mut conn).await;
    let started = Instant::now();
    let e = Spin::repo()
        .insert(&a_short, &new_spin(s.id, 1))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(e, Error::TenantMoving(id) if id == a.id()), "{e}");
    assert!(e.is_retryable());
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    // This handle's wait, not the default 5 s.
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    // Updates and deletes meet it too; reads do not wait.
    let row = Spin::repo().query().fetch_all(&a_short).await.unwrap();
    assert_eq!(row.len(), 5);
    assert!(matches!(
        Spin::repo()
            .update_columns(&a_short, row[0].id, [Spin::DURATION.set(7)])
            .await,
        Err(Error::TenantMoving(_))
    ));
    assert!(matches!(
        Spin::repo().delete(&a_short, row[0].id).await,
        Err(Error::TenantMoving(_))
    ));
    // Another tenant's writes do not wait: done while the fence is still up.
    Spin::repo().insert(&b, &new_spin(sb.id, 1)).await.unwrap();
    assert!(
        mover_pid(&mut conn).await.is_some(),
        "the move was still on"
    );

    // A write that waits through the switch (the default wait, 5 s) is refused, not applied
    // to the old copy: its context's home is gone.
    let e = Spin::repo()
        .insert(&a, &new_spin(s.id, 2))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::TenantMoved(id) if id == a.id()), "{e}");
    let moved = mover.await.unwrap().unwrap();
    assert_eq!(moved.rows(), 6);
    assert_eq!(spin_ids(&mut conn, "public.spins", a.id()).await.len(), 5);
    assert_eq!(spin_ids(&mut conn, "t_acme.spins", a.id()).await.len(), 5);
}

#[tenancy::test(migrations = "tests/migrations")]
async fn transactions_that_span_the_move_lose_nothing_and_write_nothing_to_the_old_copy(
    t: TestTenancy,
) {
    let tenancy = t.tenancy().clone();
    let a = tenant(&tenancy, "acme", Placement::SharedTable).await;
    let s = fill(&a, 3).await;
    let su = Arc::new(tenancy.superuser("ops", "transactions").await.unwrap());
    let mut conn = t.connect().await;

    // A transaction that wrote before the move began holds the move back until it commits;
    // its write is then copied.
    let mut tx = a.begin().await.unwrap();
    let early = Spin::repo()
        .insert(&mut tx, &new_spin(s.id, 10))
        .await
        .unwrap();
    let mover = spawn_move(
        &tenancy,
        &su,
        a.id(),
        Placement::OwnSchema,
        MoveOptions::default().lock_wait(Duration::from_secs(20)),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !mover.is_finished(),
        "the move waits for the transaction in flight"
    );
    tx.commit().await.unwrap();
    let moved = mover.await.unwrap().unwrap();
    assert_eq!(moved.rows(), 5);
    assert!(
        spin_ids(&mut conn, "t_acme.spins", a.id())
            .await
            .contains(&early.id)
    );

    // A transaction begun before the next move, whose first write meets the fence, is refused
    // when the move commits: its commit reports the loss, and nothing reached either copy.
    let a = tenancy.resolve_slug("acme").await.unwrap();
    let mut tx = a.begin().await.unwrap();
    assert_eq!(Spin::repo().count(&mut tx).await.unwrap(), 4);
    let mover = {
        let (tenancy, su, id) = (tenancy.clone(), su.clone(), a.id());
        tokio::spawn(async move {
            // The earlier old copy is in the way: purge it first.
            tenancy.purge_old_copy(&su, id).await.unwrap();
            tenancy
                .move_tenant_with(
                    &su,
                    id,
                    Placement::SharedTable,
                    MoveOptions::default().hold_fence(Duration::from_millis(500)),
                )
                .await
        })
    };
    wait_for_mover(&mut conn).await;
    let late = new_spin(s.id, 11);
    let e = Spin::repo().insert(&mut tx, &late).await.unwrap_err();
    assert!(matches!(e, Error::TenantMoved(_)), "{e}");
    assert!(matches!(tx.commit().await, Err(Error::TransactionAborted)));
    mover.await.unwrap().unwrap();
    assert!(
        !spin_ids(&mut conn, "public.spins", a.id())
            .await
            .contains(&late.id)
    );
    assert!(
        !spin_ids(&mut conn, &format!("{}.spins", old_schema(a.id())), a.id())
            .await
            .contains(&late.id)
    );
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_repeatable_read_transaction_cannot_write_to_the_home_its_snapshot_saw(t: TestTenancy) {
    // Every transaction of this database defaults to REPEATABLE READ: a transaction's
    // snapshot can predate a move that commits before its first write.
    t.exec(&format!(
        "ALTER DATABASE \"{}\" SET default_transaction_isolation = 'repeatable read'",
        t.database()
    ))
    .await;
    let tenancy = Tenancy::builder()
        .tenant_migrations(tenancy::Migrations::from_dir("tests/migrations/tenant").unwrap())
        .connect(t.url())
        .await
        .unwrap();
    // The writer's handle does not hear of the move: its transaction reaches the server.
    let writer = Tenancy::builder()
        .listen_for_changes(false)
        .connect(t.url())
        .await
        .unwrap();
    tenant(&tenancy, "acme", Placement::SharedTable).await;
    let a = writer.resolve_slug("acme").await.unwrap();
    let s = fill(&a, 3).await;
    let mut tx = a.begin().await.unwrap();
    assert_eq!(Spin::repo().count(&mut tx).await.unwrap(), 3); // the snapshot is taken
    let su = tenancy.superuser("ops", "repeatable read").await.unwrap();
    tenancy
        .move_tenant(&su, a.id(), Placement::OwnSchema)
        .await
        .unwrap();
    let late = new_spin(s.id, 4);
    let e = Spin::repo().insert(&mut tx, &late).await.unwrap_err();
    assert!(
        matches!(&e, Error::Database(sqlx::Error::Database(db)) if db.code().as_deref() == Some("40001")),
        "{e}"
    );
    drop(tx);
    let mut conn = t.connect().await;
    assert!(
        !spin_ids(&mut conn, "public.spins", a.id())
            .await
            .contains(&late.id)
    );
    assert_eq!(spin_ids(&mut conn, "public.spins", a.id()).await.len(), 3);
}

#[tenancy::test(migrations = "tests/migrations")]
async fn every_write_acknowledged_during_the_move_is_in_the_new_copy_and_none_in_the_old(
    t: TestTenancy,
) {
    let tenancy = t.tenancy().clone();
    // A second process's handle, on the same database, with its own cache and listener.
    let second = Tenancy::builder()
        .max_connections(4)
        .connect(t.url())
        .await
        .unwrap();
    // A third whose cache is behind: no listener, so it never hears of the move.
    let behind = Tenancy::builder()
        .max_connections(2)
        .listen_for_changes(false)
        .connect(t.url())
        .await
        .unwrap();
    let mut load = UnderWriters::start(
        &tenancy,
        &second,
        &behind,
        Placement::SharedTable,
        (2000, 50),
    )
    .await;
    let (moved, acked) = load.move_to(&tenancy, Placement::OwnSchema).await;
    let late = load.stale_writes_are_refused().await;
    let (a, b, counter_a) = (&load.a, &load.b, load.counter_a);

    let mut conn = t.connect().await;
    let new_copy = spin_ids(&mut conn, "t_acme.spins", a.id()).await;
    let old_copy = spin_ids(&mut conn, "public.spins", a.id()).await;
    let (a_writers, b_writer) = (&acked[..2], &acked[2]);
    nothing_acknowledged_is_lost(a_writers, &moved, &new_copy, &old_copy, late.id);
    // The last acknowledged update of the counter is the one kept.
    let counter: i32 = sqlx::query_scalar("SELECT duration FROM t_acme.spins WHERE id = $1")
        .bind(counter_a)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let last = a_writers
        .iter()
        .filter_map(|w| w.counter)
        .collect::<Vec<_>>();
    assert!(last.contains(&counter), "{counter} not among {last:?}");

    // The other tenant wrote throughout, unhindered, in the shared tables.
    assert_eq!(b_writer.refused, 0, "{b_writer:?}");
    let b_rows = spin_ids(&mut conn, "public.spins", b.id()).await;
    assert!(b_writer.ids.iter().all(|id| b_rows.contains(id)));
    assert_eq!(b_rows.len(), 51 + b_writer.ids.len());
}

#[tenancy::test(migrations = "tests/migrations")]
async fn identity_keys_go_on_from_the_copied_values_in_the_new_home(t: TestTenancy) {
    let tenancy = t.tenancy().clone();
    let a = tenant(&tenancy, "acme", Placement::OwnSchema).await;
    let b = tenant(&tenancy, "globex", Placement::SharedTable).await;
    // A table of the app's own, outside any model, keyed by an identity per tenant: the own
    // schema's sequence and the shared table's run apart.
    let ddl = |schema: &str| {
        format!(
            "CREATE TABLE {schema}.tickets (tenant_id uuid NOT NULL, \
             n bigint GENERATED BY DEFAULT AS IDENTITY, title text, PRIMARY KEY (tenant_id, n));"
        )
    };
    t.exec(&format!("{} {}", ddl("public"), ddl("t_acme")))
        .await;
    t.exec(&format!(
        "INSERT INTO t_acme.tickets (tenant_id, title) SELECT '{}', 'a' FROM generate_series(1, 5); \
         INSERT INTO public.tickets (tenant_id, title) SELECT '{}', 'b' FROM generate_series(1, 2);",
        a.id(),
        b.id()
    ))
    .await;
    let su = tenancy.superuser("ops", "identity").await.unwrap();
    let moved = tenancy
        .move_tenant(&su, a.id(), Placement::SharedTable)
        .await
        .unwrap();
    assert!(
        moved
            .tables
            .iter()
            .any(|m| m.table == "tickets" && m.rows == 5)
    );
    // Without moving the sequence on, this would draw 3 and collide with a copied key.
    let mut conn = t.connect().await;
    let n: i64 = sqlx::query_scalar(
        "INSERT INTO public.tickets (tenant_id, title) VALUES ($1, 'after') RETURNING n",
    )
    .bind(a.id().as_uuid())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(n, 6);
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_write_cancelled_while_it_waits_for_the_move_reaches_neither_copy(t: TestTenancy) {
    let tenancy = t.tenancy().clone();
    let a = tenant(&tenancy, "acme", Placement::SharedTable).await;
    let s = fill(&a, 3).await;
    let su = Arc::new(tenancy.superuser("ops", "cancelled write").await.unwrap());
    let mut conn = t.connect().await;
    let mover = spawn_move(
        &tenancy,
        &su,
        a.id(),
        Placement::OwnSchema,
        MoveOptions::default().hold_fence(Duration::from_millis(800)),
    );
    wait_for_mover(&mut conn).await;
    // The write is sent, waits on the fence, and its future is dropped: its connection is
    // closed, while its backend still waits for the fence.
    let cancelled = new_spin(s.id, 1);
    let out = tokio::time::timeout(
        Duration::from_millis(200),
        Spin::repo().insert(&a, &cancelled),
    )
    .await;
    assert!(out.is_err(), "the write waited for the move");
    let mut tx = a.begin().await.unwrap();
    let dropped = new_spin(s.id, 2);
    let out = tokio::time::timeout(
        Duration::from_millis(200),
        Spin::repo().insert(&mut tx, &dropped),
    )
    .await;
    assert!(out.is_err());
    drop(tx);
    mover.await.unwrap().unwrap();
    // Give the abandoned backends time to meet the fence's verdict.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for table in ["public.spins", "t_acme.spins"] {
        let ids = spin_ids(&mut conn, table, a.id()).await;
        assert_eq!(ids.len(), 3, "{table}");
        assert!(
            !ids.contains(&cancelled.id) && !ids.contains(&dropped.id),
            "{table}"
        );
    }
}

/// A table with an inheritance child, both tenant tables: a move reads each one's own rows
/// (`ONLY`), so the child's rows cross once, in the child, and the counts it verifies agree.
#[test]
fn a_table_with_an_inheritance_child_moves_each_row_once() {
    const NOTES: &str = "
        CREATE TABLE notes (tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id), body text NOT NULL);
        CREATE TABLE pinned_notes (pinned smallint NOT NULL) INHERITS (notes);";
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let migrations = tenancy::Migrations::from_static(&[
            (1, "spinner app", common::SPINNER_SCHEMA),
            (2, "notes", NOTES),
        ])
        .unwrap();
        let (_db, t) = tenancy::testing::TestSetup::new("move_inherited")
            .tenant_migrations(migrations)
            .tenant("acme", Placement::SharedTable)
            .create()
            .await
            .unwrap();
        let tenancy = t.tenancy().clone();
        let a = t.tenant("acme").id();
        t.exec(&format!(
            "INSERT INTO notes (tenant_id, body) VALUES ('{a}', 'a'), ('{a}', 'b');
             INSERT INTO pinned_notes (tenant_id, body, pinned) VALUES ('{a}', 'c', 1);"
        ))
        .await;
        let su = tenancy.superuser("ops", "inherited").await.unwrap();
        let mut conn = t.connect().await;
        for to in [Placement::OwnSchema, Placement::SharedTable] {
            let moved = tenancy.move_tenant(&su, a, to).await.unwrap();
            let rows = |name: &str| {
                moved
                    .tables
                    .iter()
                    .find(|m| m.table == name)
                    .map(|m| m.rows)
            };
            assert_eq!(
                (rows("notes"), rows("pinned_notes")),
                (Some(2), Some(1)),
                "{moved:?}"
            );
            let (_, schema) = registry_home(&mut conn, a).await;
            let at = schema.map_or(String::new(), |s| format!("\"{s}\"."));
            let bodies: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT string_agg(body, ',' ORDER BY body) FROM {at}notes WHERE tenant_id = $1"
            )))
            .bind(a.as_uuid())
            .fetch_one(&mut conn)
            .await
            .unwrap();
            assert_eq!(
                bodies, "a,b,c",
                "after the move to {to:?}: the child's row once"
            );
            tenancy.purge_old_copy(&su, a).await.unwrap();
        }
        tenancy.close().await;
    });
}
