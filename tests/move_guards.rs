//! What a move and the purge of its old copy refuse to do, against the real server: copy rows
//! between homes whose migration histories differ, drop a database that is not a sealed old
//! copy of the tenant (or drop one outside the lock a move back takes), and wait without end
//! for a writer of the tenant's database.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::models::*;
use common::moving::*;
use sqlx::{Connection, PgConnection};
use tenancy::testing::TestTenancy;
use tenancy::{
    Error, MigrateOptions, Migration, Migrations, MoveOptions, Placement, Purged, Tenancy, TenantId,
};

/// The registry's database name for tenant `id`.
async fn database_of(t: &TestTenancy, id: TenantId) -> Option<String> {
    sqlx::query_scalar("SELECT database_name FROM tenancy.tenants WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_one(&mut t.connect().await)
        .await
        .unwrap()
}

async fn placement_of(t: &TestTenancy, id: TenantId) -> String {
    sqlx::query_scalar("SELECT placement FROM tenancy.tenants WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_one(&mut t.connect().await)
        .await
        .unwrap()
}

/// The spins' durations of tenant `id` in `table` of database `database` (`None`: the
/// registry's), in order.
async fn durations(t: &TestTenancy, database: Option<&str>, table: &str, id: TenantId) -> Vec<i32> {
    let mut conn = match database {
        Some(name) => connect_to(name).await,
        None => t.connect().await,
    };
    let out = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT duration FROM {table} WHERE tenant_id = $1 ORDER BY 1"
    )))
    .bind(id.as_uuid())
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    out
}

fn refused(out: tenancy::Result<tenancy::Moved>, says: &str) {
    match out {
        Err(Error::MoveRefused { reason, .. }) => {
            assert!(reason.contains(says), "{reason:?} should say {says:?}")
        }
        other => panic!("expected MoveRefused saying {says:?}, got {other:?}"),
    }
}

/// The test's tenant migrations, and a second version of them with a backfill (a migration
/// that changes rows, not tables) after.
fn with_backfill() -> Migrations {
    let mut list: Vec<Migration> = Migrations::from_dir("tests/migrations/tenant")
        .unwrap()
        .iter()
        .cloned()
        .collect();
    list.push(Migration::new(
        2,
        "backfill",
        "UPDATE spins SET duration = duration + 1000",
    ));
    Migrations::from_list(list).unwrap()
}

/// A move builds the new home at the mover's latest migrations. From a home that has not run
/// one (here a backfill, by a handle that has not migrated the tenants yet), the copied rows
/// would never get it; into a home behind the source, rows would land in tables that lack its
/// changes. Either is refused, making nothing, until the histories agree.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_move_between_homes_whose_migrations_differ_is_refused_and_makes_nothing(t: TestTenancy) {
    let old = t.tenancy().clone();
    let acme = tenant(&old, "acme", Placement::OwnSchema).await;
    let bob = tenant(&old, "bob", Placement::OwnDatabase).await;
    fill(&acme, 3).await;
    fill(&bob, 2).await;
    let bob_db = database_of(&t, bob.id()).await.unwrap();
    let new = Tenancy::builder()
        .tenant_migrations(with_backfill())
        .connect(t.url())
        .await
        .unwrap();
    let su = new.superuser("ops", "move before migrating").await.unwrap();
    let mut registry = t.connect().await;
    let databases_before = registry_databases(&mut registry).await;

    // Behind: acme's schema and bob's database have not run migration 2, the new homes have.
    refused(
        new.move_tenant(&su, acme.id(), Placement::OwnDatabase)
            .await,
        "has not run migrations [2]",
    );
    refused(
        new.move_tenant(&su, bob.id(), Placement::OwnSchema).await,
        "has not run migrations [2]",
    );
    assert_eq!(placement_of(&t, acme.id()).await, "own_schema");
    assert_eq!(placement_of(&t, bob.id()).await, "own_database");
    assert_eq!(registry_databases(&mut registry).await, databases_before);
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 't\\_%' ORDER BY 1",
    )
    .fetch_all(&mut registry)
    .await
    .unwrap();
    assert_eq!(schemas, ["t_acme"]);
    assert_eq!(
        durations(&t, None, "t_acme.spins", acme.id()).await,
        [0, 1, 2]
    );

    // Migrated, the same moves go ahead, and the backfill is in the copied rows, once.
    let report = new
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    new.move_tenant(&su, acme.id(), Placement::OwnDatabase)
        .await
        .unwrap();
    let acme_db = database_of(&t, acme.id()).await.unwrap();
    assert_eq!(
        durations(&t, Some(&acme_db), "public.spins", acme.id()).await,
        [1000, 1001, 1002]
    );

    // Ahead: bob's database has run migration 2, which the old handle's new schema lacks.
    let old_su = old.superuser("ops", "move with old code").await.unwrap();
    refused(
        old.move_tenant(&old_su, bob.id(), Placement::OwnSchema)
            .await,
        "has run migrations [2] that the new home has not",
    );
    assert_eq!(placement_of(&t, bob.id()).await, "own_database");
    // The shared tables were migrated with the rest: the histories agree, whichever handle.
    old.move_tenant(&old_su, bob.id(), Placement::SharedTable)
        .await
        .unwrap();
    assert_eq!(
        durations(&t, None, "public.spins", bob.id()).await,
        [1000, 1001]
    );
    assert_eq!(
        durations(&t, Some(&bob_db), "public.spins", bob.id()).await,
        [1000, 1001]
    );
    new.close().await;
}

/// Whether database `name` exists on the test server.
async fn exists(name: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut common::admin_conn().await)
        .await
        .unwrap()
}

async fn old_copies(t: &TestTenancy, id: TenantId) -> Vec<Option<String>> {
    sqlx::query_scalar("SELECT database_name FROM tenancy.old_copies WHERE tenant_id = $1")
        .bind(id.as_uuid())
        .fetch_all(&mut t.connect().await)
        .await
        .unwrap()
}

async fn exec_in(database: &str, sql: &str) {
    let mut conn = connect_to(database).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

/// `purge_old_copy` drops a database only when it says it is the tenant's and a move sealed
/// it: a record edited to name another tenant's live database, or an old copy unsealed by
/// hand, is refused with `WrongDatabase` and everything is kept, the record too.
#[tenancy::test(migrations = "tests/migrations")]
async fn purge_old_copy_drops_only_a_sealed_copy_of_the_tenant(t: TestTenancy) {
    let tenancy = t.tenancy().clone();
    let acme = tenant(&tenancy, "acme", Placement::OwnDatabase).await;
    let globex = tenant(&tenancy, "globex", Placement::OwnDatabase).await;
    fill(&acme, 3).await;
    fill(&globex, 2).await;
    let acme_db = database_of(&t, acme.id()).await.unwrap();
    let globex_db = database_of(&t, globex.id()).await.unwrap();
    let su = tenancy.superuser("ops", "purge guards").await.unwrap();
    tenancy
        .move_tenant(&su, acme.id(), Placement::SharedTable)
        .await
        .unwrap();
    let wrong = |out: tenancy::Result<Vec<Purged>>, database: &str| match out {
        Err(Error::WrongDatabase { database: d, .. }) if d == database => {}
        other => panic!("expected WrongDatabase for {database}, got {other:?}"),
    };

    // The record names globex's live database.
    t.exec(&format!(
        "UPDATE tenancy.old_copies SET database_name = '{globex_db}' WHERE tenant_id = '{}'",
        acme.id().as_uuid()
    ))
    .await;
    wrong(tenancy.purge_old_copy(&su, acme.id()).await, &globex_db);
    assert!(exists(&globex_db).await);
    assert_eq!(Spin::repo().count(&globex).await.unwrap(), 2);
    assert_eq!(old_copies(&t, acme.id()).await, [Some(globex_db.clone())]);

    // The record is right, but the copy was unsealed by hand.
    t.exec(&format!(
        "UPDATE tenancy.old_copies SET database_name = '{acme_db}' WHERE tenant_id = '{}'",
        acme.id().as_uuid()
    ))
    .await;
    exec_in(&acme_db, "UPDATE tenancy.tenants SET moved_at = NULL").await;
    wrong(tenancy.purge_old_copy(&su, acme.id()).await, &acme_db);
    assert!(exists(&acme_db).await);
    assert_eq!(old_copies(&t, acme.id()).await, [Some(acme_db.clone())]);

    // Sealed again: dropped, and the record with it.
    exec_in(&acme_db, "UPDATE tenancy.tenants SET moved_at = now()").await;
    assert_eq!(
        tenancy.purge_old_copy(&su, acme.id()).await.unwrap(),
        [Purged::Database(acme_db.clone())]
    );
    assert!(!exists(&acme_db).await);
    assert!(old_copies(&t, acme.id()).await.is_empty());
    let acme = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(Spin::repo().count(&acme).await.unwrap(), 3);

    // A record left by a purge cut off after its drop: cleared, nothing else done.
    t.exec(&format!(
        "INSERT INTO tenancy.old_copies (tenant_id, placement, database_name, server) \
         VALUES ('{}', 'own_database', '{acme_db}', 'primary')",
        acme.id().as_uuid()
    ))
    .await;
    assert_eq!(
        tenancy.purge_old_copy(&su, acme.id()).await.unwrap(),
        [Purged::Database(acme_db.clone())]
    );
    assert!(old_copies(&t, acme.id()).await.is_empty());
    assert!(exists(&globex_db).await);
}

/// The drop of an old database happens under its name's lock (the one a move back onto that
/// server takes to make a new database of the name) and before the registry forgets it.
/// Dropped after the commit, as it once was, a move back in between would have had its new,
/// live database dropped by the purge's late `DROP DATABASE`.
#[tenancy::test(migrations = "tests/migrations")]
async fn purge_old_copy_drops_under_the_lock_a_move_back_takes(t: TestTenancy) {
    let tenancy = t.tenancy().clone();
    let acme = tenant(&tenancy, "acme", Placement::OwnDatabase).await;
    let s = fill(&acme, 3).await;
    let acme_db = database_of(&t, acme.id()).await.unwrap();
    let su = Arc::new(tenancy.superuser("ops", "purge lock").await.unwrap());
    tenancy
        .move_tenant(&su, acme.id(), Placement::SharedTable)
        .await
        .unwrap();
    // A move back into a database, in the middle of making it: the name's lock held.
    let mut holder = t.connect().await;
    sqlx::query("SELECT pg_advisory_lock(hashtext('tenancy.database'), hashtext($1))")
        .bind(&acme_db)
        .execute(&mut holder)
        .await
        .unwrap();
    let purge = {
        let (tenancy, su, id) = (tenancy.clone(), su.clone(), acme.id());
        tokio::spawn(async move { tenancy.purge_old_copy(&su, id).await })
    };
    let mut watch = t.connect().await;
    wait_for_an_advisory_lock_waiter(&mut watch, "the purge waits for the name's lock").await;
    assert!(!purge.is_finished());
    assert!(exists(&acme_db).await);
    assert_eq!(old_copies(&t, acme.id()).await, [Some(acme_db.clone())]);
    // Meanwhile the tenant writes to its home, even in REPEATABLE READ, whose fence
    // share-locks the tenant's registry row: the purge holds that row in a mode that keeps
    // moves out, not writers (a drop can take seconds).
    t.exec(&format!(
        "ALTER DATABASE \"{}\" SET default_transaction_isolation = 'repeatable read'",
        t.database()
    ))
    .await;
    let writer = tenancy::Tenancy::builder()
        .tenant_migrations(tenancy::Migrations::from_dir("tests/migrations/tenant").unwrap())
        .connect(t.url())
        .await
        .unwrap();
    let during = writer.resolve_slug("acme").await.unwrap();
    let written = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        Spin::repo().insert(&during, &new_spin(s.id, 99)),
    )
    .await
    .expect("the write waited for the purge");
    written.unwrap();
    writer.close().await;
    assert!(!purge.is_finished());
    sqlx::query("SELECT pg_advisory_unlock(hashtext('tenancy.database'), hashtext($1))")
        .bind(&acme_db)
        .execute(&mut holder)
        .await
        .unwrap();
    assert_eq!(
        purge.await.unwrap().unwrap(),
        [Purged::Database(acme_db.clone())]
    );
    assert!(!exists(&acme_db).await);
    assert!(old_copies(&t, acme.id()).await.is_empty());
    // The move back makes the database anew, and keeps every row.
    tenancy
        .move_tenant(&su, acme.id(), Placement::OwnDatabase)
        .await
        .unwrap();
    assert_eq!(database_of(&t, acme.id()).await, Some(acme_db));
    let acme = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(Spin::repo().count(&acme).await.unwrap(), 4);
}

/// A move out of a database locks the tenant's identity row there, which a writer in a
/// `REPEATABLE READ` transaction share-locks: the move waits for it at most the lock wait,
/// as for the fence, then is refused (retryable) with nothing changed, and the writer goes on.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_move_out_of_a_database_waits_for_an_open_writer_at_most_the_lock_wait(t: TestTenancy) {
    let tenancy = t.tenancy().clone();
    let acme = tenant(&tenancy, "acme", Placement::OwnDatabase).await;
    fill(&acme, 3).await;
    let acme_db = database_of(&t, acme.id()).await.unwrap();
    let su = tenancy.superuser("ops", "bounded wait").await.unwrap();
    let mut writer: PgConnection = connect_to(&acme_db).await;
    sqlx::raw_sql(
        "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT id FROM tenancy.tenants FOR SHARE",
    )
    .execute(&mut writer)
    .await
    .unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tenancy.move_tenant_with(
            &su,
            acme.id(),
            Placement::SharedTable,
            MoveOptions::default().lock_wait(Duration::from_millis(300)),
        ),
    )
    .await
    .expect("the move waited past its lock wait for the writer");
    refused(out, "longer than the lock wait");
    assert_eq!(placement_of(&t, acme.id()).await, "own_database");
    sqlx::raw_sql("COMMIT").execute(&mut writer).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(
        tenancy
            .move_tenant(&su, acme.id(), Placement::SharedTable)
            .await
            .unwrap()
            .rows(),
        4
    );
}

/// A suspension asked for while a tenant moves waits for the move (both lock the tenant's
/// registry row) and then applies to its new home: the move is not undone, no context
/// resolves meanwhile to a suspended tenant's rows, and a resumed tenant has every row there.
/// A move asked for while the tenant is suspended is refused.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_suspension_during_a_move_waits_for_it_and_applies_to_the_new_home(t: TestTenancy) {
    let tenancy = t.tenancy().clone();
    let acme = tenant(&tenancy, "acme", Placement::SharedTable).await;
    fill(&acme, 4).await;
    let su = Arc::new(
        tenancy
            .superuser("ops", "suspend during move")
            .await
            .unwrap(),
    );
    let mover = spawn_move(
        &tenancy,
        &su,
        acme.id(),
        Placement::OwnDatabase,
        MoveOptions::default().hold_before_switch(Duration::from_secs(2)),
    );
    let mut conn = t.connect().await;
    wait_for_mover(&mut conn).await;
    let suspend = {
        let (tenancy, su, id) = (tenancy.clone(), su.clone(), acme.id());
        tokio::spawn(async move { tenancy.suspend(&su, id).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!suspend.is_finished() && !mover.is_finished());
    let moved = mover.await.unwrap().unwrap();
    assert_eq!(moved.rows(), 5);
    suspend.await.unwrap().unwrap();
    assert_eq!(placement_of(&t, acme.id()).await, "own_database");
    assert!(matches!(
        tenancy.resolve_slug("acme").await,
        Err(Error::TenantSuspended { .. })
    ));
    let out = tenancy
        .move_tenant(&su, acme.id(), Placement::SharedTable)
        .await;
    assert!(
        matches!(out, Err(Error::WrongStatus { action: "move", .. })),
        "{out:?}"
    );
    tenancy.resume(&su, acme.id()).await.unwrap();
    let acme = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(acme.placement(), Placement::OwnDatabase);
    assert_eq!(Spin::repo().count(&acme).await.unwrap(), 4);
}

/// A migration whose text changed after it ran in the tenant's home (the same version, another
/// checksum in the new home's history) is refused too, naming the version.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_move_into_a_home_built_from_edited_migrations_is_refused(t: TestTenancy) {
    let acme = tenant(t.tenancy(), "acme", Placement::OwnSchema).await;
    fill(&acme, 2).await;
    let edited: Vec<Migration> = Migrations::from_dir("tests/migrations/tenant")
        .unwrap()
        .iter()
        .map(|m| {
            Migration::new(
                m.version,
                m.description.clone(),
                format!("{}\n-- edited", m.sql),
            )
        })
        .collect();
    let other = Tenancy::builder()
        .tenant_migrations(Migrations::from_list(edited).unwrap())
        .connect(t.url())
        .await
        .unwrap();
    let su = other.superuser("ops", "edited migrations").await.unwrap();
    refused(
        other
            .move_tenant(&su, acme.id(), Placement::OwnDatabase)
            .await,
        "migrations [1] ran with other text",
    );
    assert_eq!(placement_of(&t, acme.id()).await, "own_schema");
    other.close().await;
}

/// A move reads the tenant's migration history with its own rights: a view put in the history
/// table's place (by whoever owns the tenant's schema), or row-level security on it, would run
/// that owner's function as the mover. Refused before anything reads it; the function never runs.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_history_that_is_not_a_plain_table_is_refused_unread(t: TestTenancy) {
    let tenancy = t.tenancy().clone();
    let acme = tenant(&tenancy, "acme", Placement::OwnSchema).await;
    fill(&acme, 2).await;
    let schema: String =
        sqlx::query_scalar("SELECT schema_name FROM tenancy.tenants WHERE id = $1")
            .bind(acme.id().as_uuid())
            .fetch_one(&mut t.connect().await)
            .await
            .unwrap();
    let history = format!("\"{schema}\".tenancy_migrations");
    t.exec(&format!(
        "CREATE TABLE public.ran_as (who text); \
         CREATE FUNCTION public.spy() RETURNS boolean LANGUAGE sql VOLATILE AS \
           'INSERT INTO public.ran_as VALUES (current_user) RETURNING true'; \
         ALTER TABLE {history} RENAME TO tenancy_migrations_real; \
         CREATE VIEW {history} AS SELECT * FROM \"{schema}\".tenancy_migrations_real WHERE public.spy()"
    ))
    .await;
    let su = tenancy.superuser("ops", "history view").await.unwrap();
    refused(
        tenancy
            .move_tenant(&su, acme.id(), Placement::SharedTable)
            .await,
        "is not the plain table tenancy keeps a migration history in (relation kind v;",
    );
    // Row-level security on the table itself: refused too.
    t.exec(&format!(
        "DROP VIEW {history}; \
         ALTER TABLE \"{schema}\".tenancy_migrations_real RENAME TO tenancy_migrations; \
         CREATE POLICY spy ON {history} USING (public.spy()); \
         ALTER TABLE {history} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY"
    ))
    .await;
    refused(
        tenancy
            .move_tenant(&su, acme.id(), Placement::SharedTable)
            .await,
        "(relation kind r, with row-level security;",
    );
    let ran: i64 = sqlx::query_scalar("SELECT count(*) FROM public.ran_as")
        .fetch_one(&mut t.connect().await)
        .await
        .unwrap();
    assert_eq!(ran, 0, "the history's function ran as the mover");
    assert_eq!(placement_of(&t, acme.id()).await, "own_schema");
    // As tenancy made it, the move goes ahead.
    t.exec(&format!(
        "ALTER TABLE {history} DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY"
    ))
    .await;
    let moved = tenancy
        .move_tenant(&su, acme.id(), Placement::SharedTable)
        .await
        .unwrap();
    assert_eq!(moved.rows(), 3);
}

/// Shared tables with an empty history may be the application's own, or tenancy's with the
/// history lost: a move past them is refused, saying how to declare them the application's
/// own, and with `MoveOptions::unmanaged_shared_tables` it goes ahead, both ways.
#[tenancy::test(migrations = "tests/migrations")]
async fn shared_tables_without_a_history_are_compared_unless_declared_unmanaged(t: TestTenancy) {
    t.exec("DELETE FROM tenancy.shared_table_migrations").await;
    let tenancy = t.tenancy().clone();
    let acme = tenant(&tenancy, "acme", Placement::SharedTable).await;
    fill(&acme, 3).await;
    let su = tenancy.superuser("ops", "unmanaged shared").await.unwrap();
    refused(
        tenancy
            .move_tenant(&su, acme.id(), Placement::OwnSchema)
            .await,
        "MoveOptions::unmanaged_shared_tables",
    );
    assert_eq!(placement_of(&t, acme.id()).await, "shared_table");
    let unmanaged = MoveOptions::default().unmanaged_shared_tables();
    tenancy
        .move_tenant_with(&su, acme.id(), Placement::OwnSchema, unmanaged.clone())
        .await
        .unwrap();
    tenancy.purge_old_copy(&su, acme.id()).await.unwrap();
    refused(
        tenancy
            .move_tenant(&su, acme.id(), Placement::SharedTable)
            .await,
        "MoveOptions::unmanaged_shared_tables",
    );
    let moved = tenancy
        .move_tenant_with(&su, acme.id(), Placement::SharedTable, unmanaged)
        .await
        .unwrap();
    assert_eq!(moved.rows(), 4);
}

/// A rerun of a move cut off after its seal, refused (here: the mover's migrations are newer
/// than the tenant's database), says that the tenant is sealed and its writes refused until a
/// run finishes; a run with agreeing histories then finishes it with every row.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_refused_rerun_of_a_move_cut_off_after_its_seal_says_the_tenant_is_sealed(
    t: TestTenancy,
) {
    let tenancy = t.tenancy().clone();
    let acme = tenant(&tenancy, "acme", Placement::OwnDatabase).await;
    fill(&acme, 3).await;
    let acme_db = database_of(&t, acme.id()).await.unwrap();
    let su = Arc::new(tenancy.superuser("ops", "sealed rerun").await.unwrap());
    let mover = spawn_move(
        &tenancy,
        &su,
        acme.id(),
        Placement::SharedTable,
        MoveOptions::default().hold_before_switch(Duration::from_secs(30)),
    );
    tenancy::testing::eventually(
        "the move sealed the old copy",
        Duration::from_secs(60),
        async || sealed(&acme_db).await,
    )
    .await;
    mover.abort();
    assert!(mover.await.unwrap_err().is_cancelled());
    common::no_transaction_left_open(&mut t.connect().await).await;

    let newer = Tenancy::builder()
        .tenant_migrations(with_backfill())
        .connect(t.url())
        .await
        .unwrap();
    let su2 = newer.superuser("ops", "sealed rerun").await.unwrap();
    refused(
        newer
            .move_tenant(&su2, acme.id(), Placement::OwnSchema)
            .await,
        "is sealed in database",
    );
    newer.close().await;
    assert_eq!(placement_of(&t, acme.id()).await, "own_database");
    let moved = tenancy
        .move_tenant(&su, acme.id(), Placement::SharedTable)
        .await
        .unwrap();
    assert_eq!(moved.rows(), 4);
}
