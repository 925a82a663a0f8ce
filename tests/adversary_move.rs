//! Adversarial tests of `move_tenant`: what a schema the application is allowed to write can
//! make the move lose or leave behind.

mod common;

use common::TestDb;
use tenancy::{
    MigrateOptions, Migration, Migrations, NewTenant, Placement, Tenancy, tenant_scoped,
};
use uuid::Uuid;

/// A model whose tenant column is not called `tenant_id`, as `tenant_column` allows.
#[tenant_scoped(table = "gadgets", tenant_column = "org_id", new_derive(Debug, Clone))]
#[derive(Debug, Clone, PartialEq)]
pub struct Gadget {
    /// Key.
    #[tenancy(id)]
    pub id: Uuid,
    /// Name.
    pub name: String,
}

/// With the foreign key the shape check asks of a renamed tenant column.
const GADGETS: &str = "CREATE TABLE gadgets (
    org_id uuid NOT NULL REFERENCES tenancy.tenants (id),
    id     uuid NOT NULL,
    name   text NOT NULL,
    PRIMARY KEY (org_id, id)
);";

async fn world(test: &str) -> (TestDb, Tenancy) {
    let db = TestDb::new(test).await;
    let tenancy = Tenancy::builder()
        .max_connections(5)
        .tenant_migrations(
            Migrations::from_list(vec![Migration::new(1, "gadgets", GADGETS)]).unwrap(),
        )
        .connect(&db.url)
        .await
        .expect("connect");
    let su = tenancy.superuser("test", "setup").await.unwrap();
    let report = tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    (db, tenancy)
}

/// HOLDS: the move finds a tenant's tables by a `tenant_id` column or a foreign key to
/// `tenancy.tenants`; a model with a renamed tenant column must have that key (the shape
/// check refuses it otherwise), so its rows move with the tenant, both ways.
#[tokio::test]
async fn a_model_with_a_renamed_tenant_column_keeps_its_rows_across_a_move() {
    let (_db, tenancy) = world("adv_move_renamed_col").await;
    tenancy
        .create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let a = tenancy.resolve_slug("acme").await.unwrap();
    for i in 0..3 {
        Gadget::repo()
            .insert(
                &a,
                &NewGadget {
                    id: Uuid::new_v4(),
                    name: format!("g{i}"),
                },
            )
            .await
            .unwrap();
    }
    assert_eq!(Gadget::repo().count(&a).await.unwrap(), 3);

    let su = tenancy.superuser("ops", "move acme").await.unwrap();
    let moved = tenancy.move_tenant(&su, a.id(), Placement::OwnSchema).await;
    let moved = moved.unwrap();
    // Past the handle's own revocation notice (see the test below).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let a = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(a.placement(), Placement::OwnSchema);
    assert_eq!(
        Gadget::repo().count(&a).await.unwrap(),
        3,
        "the move reported {:?} tables and left the tenant's gadgets behind",
        moved.tables.iter().map(|t| &t.table).collect::<Vec<_>>()
    );
    tenancy.purge_old_copy(&su, a.id()).await.unwrap();
    tenancy
        .move_tenant(&su, a.id(), Placement::SharedTable)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let a = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(Gadget::repo().count(&a).await.unwrap(), 3, "and back");
}

/// HOLE (move, medium): the handle that moved a tenant revokes its cache when the move
/// returns, and a context resolved right after names the new home, yet that context is then
/// revoked by the handle's own move notification, which arrives later (the listener revokes
/// on every notice, whatever its origin, and revocation refuses every context minted before
/// the notice is read). A caller that moves and then serves the tenant gets
/// `ContextRevoked` on a context that was correct. Timing-dependent (the notice must arrive
/// after the resolve): ten rounds make it fail on most runs.
#[tokio::test]
async fn a_context_resolved_after_a_move_is_not_revoked_by_that_move() {
    let (_db, tenancy) = world("adv_move_self_revoke").await;
    tenancy
        .create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let su = tenancy.superuser("ops", "move acme").await.unwrap();
    let id = tenancy.resolve_slug("acme").await.unwrap().id();
    let mut to = Placement::OwnSchema;
    for round in 0..10 {
        tenancy.move_tenant(&su, id, to).await.unwrap();
        let a = tenancy.resolve_slug("acme").await.unwrap();
        assert_eq!(a.placement(), to);
        // The notice of the handle's own move is read within a few milliseconds.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let r = Gadget::repo().count(&a).await;
        assert!(
            r.is_ok(),
            "round {round}: a context resolved after the move returned: {r:?}"
        );
        tenancy.purge_old_copy(&su, id).await.unwrap();
        to = match to {
            Placement::OwnSchema => Placement::SharedTable,
            _ => Placement::OwnSchema,
        };
    }
}

mod rls_off {
    use common::Rls;
    use common::models::*;
    use tenancy::{Migrations, NewTenant, Placement, Tenancy};

    use super::common;

    fn migrations() -> Migrations {
        common::spinner_rls_migrations()
    }

    /// HOLE (move, high): the move reads the source and checks the copy as the handle's role.
    /// On a database whose tables carry tenancy's forced row-level security policy, a handle
    /// built without `row_level_security(true)` (an operator's CLI, a maintenance job) sets
    /// no tenant, so the policy shows it none of the tenant's rows: it copies nothing, the
    /// verification compares 0 with 0, and the switch commits. The tenant's rows are left in
    /// the old copy, which `purge_old_copy` then deletes.
    #[tokio::test]
    async fn a_move_by_a_handle_without_rls_does_not_empty_the_tenant() {
        let rls = Rls::new("adv_move_rls_off").await;
        let app = Tenancy::builder()
            .row_level_security(true)
            .tenant_migrations(migrations())
            .from_pool(rls.app_pool(4).await)
            .await
            .unwrap();
        common::migrate_all(&app).await;
        app.create_tenant(NewTenant::new("acme", "Acme"))
            .await
            .unwrap();
        let a = app.resolve_slug("acme").await.unwrap();
        for i in 0..3 {
            common::add_spinner(&a, &format!("s{i}")).await.unwrap();
        }
        assert_eq!(Spinner::repo().count(&a).await.unwrap(), 3);

        // An operator's handle on the same database, as the same role, without the option.
        let ops = Tenancy::builder()
            .tenant_migrations(migrations())
            .from_pool(rls.app_pool(2).await)
            .await
            .unwrap();
        let su = ops.superuser("ops", "move acme").await.unwrap();
        let moved = ops.move_tenant(&su, a.id(), Placement::OwnSchema).await;
        // Refusing would be fine; a move that reports success must have moved the rows.
        if let Ok(moved) = moved {
            // The app's handle hears of the move by notification.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let a = app.resolve_id(a.id()).await.unwrap();
            assert_eq!(a.placement(), Placement::OwnSchema);
            assert_eq!(
                Spinner::repo().count(&a).await.unwrap(),
                3,
                "the move reported success ({} rows) and the tenant's spinners are gone",
                moved.rows()
            );
        }
    }
}

mod repeatable_read {
    use std::time::Duration;

    use common::TestDb;
    use common::models::*;
    use sqlx::Connection;
    use tenancy::{Error, Migrations, NewTenant, Placement, Tenancy};
    use uuid::Uuid;

    use super::common;

    fn spinner(name: &str) -> NewSpinner {
        NewSpinner {
            id: Uuid::new_v4(),
            name: name.into(),
            color: None,
        }
    }

    /// HOLE (move, low): in `REPEATABLE READ` the fence share-locks the tenant's registry row
    /// after taking the fence key shared. A write that arrives after the mover locked that row
    /// (step 1) and before it raised the fence (step 3) takes the key, then waits for the row;
    /// the mover then waits for the key: a deadlock, which the server breaks after
    /// `deadlock_timeout` by failing one side with a bare 40P01 instead of the move's typed
    /// refusal or the write's typed retry. (The mover is held between the steps here by the
    /// shared tables' migration lock, as a migration in flight would hold it.)
    #[tokio::test]
    async fn a_repeatable_read_write_during_a_moves_setup_does_not_deadlock() {
        let db = TestDb::new("adv_move_rr_deadlock").await;
        db.exec(&format!(
            "ALTER DATABASE \"{}\" SET default_transaction_isolation = 'repeatable read'",
            db.name
        ))
        .await;
        let migrations = || Migrations::from_dir("tests/migrations/tenant").unwrap();
        let mover = Tenancy::builder()
            .tenant_migrations(migrations())
            .connect(&db.url)
            .await
            .unwrap();
        common::migrate_all(&mover).await;
        mover
            .create_tenant(NewTenant::new("acme", "Acme"))
            .await
            .unwrap();
        let writer = Tenancy::builder()
            .listen_for_changes(false)
            .connect(&db.url)
            .await
            .unwrap();
        let a = writer.resolve_slug("acme").await.unwrap();
        Spinner::repo().insert(&a, &spinner("first")).await.unwrap();

        // A migration of the shared tables in flight.
        let mut migration = db.connect().await;
        sqlx::query(
            "SELECT pg_advisory_lock(hashtext('tenancy.migrate'), hashtext('shared_tables'))",
        )
        .execute(&mut migration)
        .await
        .unwrap();
        let su = mover.superuser("ops", "move acme").await.unwrap();
        let id = a.id();
        let moving = tokio::spawn({
            let mover = mover.clone();
            async move { mover.move_tenant(&su, id, Placement::OwnSchema).await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let writing = tokio::spawn(async move {
            let mut tx = a.begin().await?;
            Spinner::repo().insert(&mut tx, &spinner("second")).await?;
            tx.commit().await
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        sqlx::query("SELECT pg_advisory_unlock_all()")
            .execute(&mut migration)
            .await
            .unwrap();
        migration.close().await.unwrap();

        let moved = moving.await.unwrap();
        let written = writing.await.unwrap();
        let deadlock = |e: &Error| matches!(e, Error::Database(sqlx::Error::Database(d)) if d.code().as_deref() == Some("40P01"));
        assert!(
            !matches!(&moved, Err(e) if deadlock(e)),
            "the move failed with a deadlock: {moved:?}"
        );
        assert!(
            !matches!(&written, Err(e) if deadlock(e)),
            "the write failed with a deadlock: {written:?}"
        );
    }
}

mod into_a_database {
    use std::time::Duration;

    use common::models::*;
    use common::moving::*;
    use tenancy::testing::{TestTenancy, cancel_at, eventually};
    use tenancy::{Error, MoveOptions, Placement, Tenancy};

    use super::common;

    /// HOLDS: a second process whose cache never hears of the move (no listener) keeps a
    /// context for the shared tables; after the switch its writes are refused by the fence in
    /// the registry, and none lands in the old copy.
    #[tenancy::test(migrations = "tests/migrations")]
    async fn a_stale_handle_cannot_write_to_the_copy_a_tenant_left_for_its_database(
        t: TestTenancy,
    ) {
        let tenancy = t.tenancy().clone();
        let behind = Tenancy::builder()
            .max_connections(2)
            .listen_for_changes(false)
            .connect(t.url())
            .await
            .unwrap();
        let a = tenant(&tenancy, "acme", Placement::SharedTable).await;
        let s = fill(&a, 5).await;
        let stale = behind.resolve_slug("acme").await.unwrap();
        let su = tenancy.superuser("ops", "stale").await.unwrap();
        let moved = tenancy
            .move_tenant(&su, a.id(), Placement::OwnDatabase)
            .await
            .unwrap();

        let late = new_spin(s.id, -1);
        let insert = Spin::repo().insert(&stale, &late).await;
        assert!(matches!(insert, Err(Error::TenantMoved(_))), "{insert:?}");
        let delete = Spinner::repo().delete(&stale, s.id).await;
        assert!(matches!(delete, Err(Error::TenantMoved(_))), "{delete:?}");
        let mut conn = t.connect().await;
        let old = spin_ids(&mut conn, "public.spins", a.id()).await;
        assert_eq!(old.len(), 5);
        let mut new = connect_to(moved.database.as_deref().unwrap()).await;
        assert_eq!(spin_ids(&mut new, "public.spins", a.id()).await, old);
        // Resolved by a handle that heard of the move, the write goes to the new home.
        let fresh = tenancy.resolve_slug("acme").await.unwrap();
        Spin::repo().insert(&fresh, &late).await.unwrap();
        assert!(
            spin_ids(&mut new, "public.spins", a.id())
                .await
                .contains(&late.id)
        );
        assert!(
            !spin_ids(&mut conn, "public.spins", a.id())
                .await
                .contains(&late.id)
        );
    }

    /// HOLDS: a copy that differs from its source (tampered with after the copy, in the new
    /// database) fails the verification: the registry is unchanged, the new database is
    /// dropped, the tenant stays writable, and a rerun moves it.
    #[tenancy::test(migrations = "tests/migrations")]
    async fn a_tampered_copy_fails_verification_and_leaves_no_database(t: TestTenancy) {
        let tenancy = t.tenancy().clone();
        let a = tenant(&tenancy, "acme", Placement::OwnSchema).await;
        let s = fill(&a, 8).await;
        let su = tenancy.superuser("ops", "tamper").await.unwrap();
        let mut conn = t.connect().await;
        let tampered = tenancy
            .move_tenant_with(
                &su,
                a.id(),
                Placement::OwnDatabase,
                MoveOptions::default().after_copy_sql(
                    "UPDATE public.spins SET note = 'forged' \
                     WHERE id = (SELECT min(id::text)::uuid FROM public.spins)",
                ),
            )
            .await;
        assert!(
            matches!(&tampered, Err(Error::MoveVerification { table, .. }) if table == "spins"),
            "{tampered:?}"
        );
        let home: (String, Option<String>) =
            sqlx::query_as("SELECT placement, schema_name FROM tenancy.tenants WHERE id = $1")
                .bind(a.id().as_uuid())
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(home, ("own_schema".into(), Some("t_acme".into())));
        assert!(registry_databases(&mut conn).await.is_empty());
        Spin::repo().insert(&a, &new_spin(s.id, 1)).await.unwrap();
        let moved = tenancy
            .move_tenant(&su, a.id(), Placement::OwnDatabase)
            .await
            .unwrap();
        assert_eq!(moved.rows(), 10);
    }

    /// HOLDS: a move into a database whose future is dropped at any of its awaits leaves the
    /// tenant whole on its old home and writable; whatever database it had made is a leftover
    /// `cleanup_orphans` drops.
    #[tenancy::test(migrations = "tests/migrations")]
    async fn a_move_into_a_database_cancelled_at_any_await_leaves_the_tenant_whole(t: TestTenancy) {
        let tenancy = t.tenancy().clone();
        let a = tenant(&tenancy, "acme", Placement::SharedTable).await;
        let s = fill(&a, 6).await;
        let su = tenancy.superuser("ops", "cancel").await.unwrap();
        let mut conn = t.connect().await;
        let tag: String = sqlx::query_scalar("SELECT tag FROM tenancy.deployment")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let mut rows = 7;
        let mut k = 1;
        loop {
            let out = cancel_at(k, tenancy.move_tenant(&su, a.id(), Placement::OwnDatabase)).await;
            if let Some(moved) = out {
                assert_eq!(moved.unwrap().rows(), rows);
                break;
            }
            common::no_transaction_left_open(&mut conn).await;
            let placement: String =
                sqlx::query_scalar("SELECT placement FROM tenancy.tenants WHERE id = $1")
                    .bind(a.id().as_uuid())
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            if placement == "own_database" {
                // Cut off with its commit on the wire: the server committed the whole move.
                break;
            }
            assert_eq!(placement, "shared_table", "cancelled at await {k}");
            // The cancelled move's registry transaction rolls back when its connection goes
            // back to the pool, and a `CREATE DATABASE` it left running ends on the server;
            // then the leftover is no one's and the cleanup drops it.
            eventually(
                "the leftover of a cancelled move is dropped",
                // A loaded server may take seconds over a `CREATE DATABASE` left running.
                Duration::from_secs(60),
                async || {
                    tenancy.cleanup_orphans(&su).await.unwrap();
                    let busy: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT FROM pg_stat_activity \
                         WHERE pid <> pg_backend_pid() AND state <> 'idle' \
                         AND query ~* '^(CREATE|ALTER|DROP) DATABASE' AND strpos(query, $1) > 0)",
                    )
                    .bind(tag.as_str())
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                    let left = registry_databases(&mut conn).await;
                    let locks: Vec<(i32, String, Option<String>)> = sqlx::query_as(
                        "SELECT l.pid, l.mode, a.state FROM pg_locks l \
                         LEFT JOIN pg_stat_activity a USING (pid) \
                         WHERE l.locktype = 'advisory' AND l.database = \
                         (SELECT oid FROM pg_database WHERE datname = current_database())",
                    )
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                    // Shown if the wait runs out: what was still in the way.
                    eprintln!("await {k}: busy {busy}, left {left:?}, locks {locks:?}");
                    !busy && left.is_empty()
                },
            )
            .await;
            Spin::repo()
                .insert(&a, &new_spin(s.id, k as i32))
                .await
                .unwrap();
            rows += 1;
            k += 1;
        }
        assert!(k > 3, "the move was cancelled at {k} awaits only");
        // The database the move switched to is registered: the cleanup keeps it.
        tenancy.cleanup_orphans(&su).await.unwrap();
        assert_eq!(registry_databases(&mut conn).await.len(), 1);
        let a = tenancy.resolve_slug("acme").await.unwrap();
        assert_eq!(Spin::repo().count(&a).await.unwrap() as u64, rows - 1);
    }
}

mod out_of_a_database {
    use std::time::Duration;

    use common::models::*;
    use common::moving::*;
    use sqlx::PgConnection;
    use tenancy::testing::{TestTenancy, cancel_at, eventually};
    use tenancy::{Error, Placement, Tenancy};

    use super::common;

    /// The tenant database the registry names for `id`, and its placement.
    async fn home(conn: &mut PgConnection, id: tenancy::TenantId) -> (String, Option<String>) {
        sqlx::query_as("SELECT placement, database_name FROM tenancy.tenants WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_one(conn)
            .await
            .unwrap()
    }

    /// HOLDS (was BROKEN): a fence replaced by hand in the tenant database with one that always
    /// passes let a move out go ahead, after which a context resolved before the move wrote
    /// into the old, sealed copy and was acknowledged. The move now checks that the fence is
    /// the one tenancy installs and refuses otherwise, changing nothing; a fence dropped by
    /// hand is installed again by the move, and then holds.
    #[tenancy::test(migrations = "tests/migrations")]
    async fn a_fence_replaced_by_hand_in_a_tenant_database_refuses_the_move_out(t: TestTenancy) {
        let tenancy = t.tenancy().clone();
        let behind = Tenancy::builder()
            .max_connections(2)
            .listen_for_changes(false)
            .connect(t.url())
            .await
            .unwrap();
        let a = tenant(&tenancy, "acme", Placement::OwnDatabase).await;
        let s = fill(&a, 4).await;
        let mut conn = t.connect().await;
        let db = home(&mut conn, a.id()).await.1.unwrap();
        let stale = behind.resolve_slug("acme").await.unwrap();
        let mut own = connect_to(&db).await;
        sqlx::raw_sql(
            "CREATE OR REPLACE FUNCTION tenancy.write_fence(p_tenant uuid, p_placement text, \
             p_schema text) RETURNS uuid LANGUAGE sql AS $$ SELECT p_tenant $$",
        )
        .execute(&mut own)
        .await
        .unwrap();
        let su = tenancy.superuser("ops", "tampered fence").await.unwrap();
        let moved = tenancy
            .move_tenant(&su, a.id(), Placement::SharedTable)
            .await;
        assert!(
            matches!(&moved, Err(Error::MoveRefused { reason, .. }) if reason.contains("write_fence")),
            "{moved:?}"
        );
        assert_eq!(home(&mut conn, a.id()).await.0, "own_database");
        Spin::repo().insert(&a, &new_spin(s.id, 1)).await.unwrap();

        // Dropped by hand: the move installs the fence again, and it holds.
        sqlx::raw_sql("DROP FUNCTION tenancy.write_fence(uuid, text, text)")
            .execute(&mut own)
            .await
            .unwrap();
        let moved = tenancy
            .move_tenant(&su, a.id(), Placement::SharedTable)
            .await
            .unwrap();
        assert_eq!(moved.rows(), 6);
        let late = new_spin(s.id, -1);
        let refused = Spin::repo().insert(&stale, &late).await;
        assert!(matches!(refused, Err(Error::TenantMoved(_))), "{refused:?}");
        assert!(
            !spin_ids(&mut own, "public.spins", a.id())
                .await
                .contains(&late.id)
        );
        behind.close().await;
    }

    /// HOLDS (was BROKEN): an import into an own-database tenant took the tenant database's
    /// identity row but not its fence, so one that started while a move out held its sealed
    /// copy before the switch wrote every row into that copy and was acknowledged, and the
    /// tenant's new home had none. The import now goes through the fence: it is refused as
    /// moved (nothing imported), and a rerun imports into the new home.
    #[tenancy::test(migrations = "tests/migrations")]
    async fn an_import_during_a_move_out_of_a_database_is_not_lost_in_the_old_copy(t: TestTenancy) {
        let tenancy = t.tenancy().clone();
        let a = tenant(&tenancy, "acme", Placement::OwnDatabase).await;
        let b = tenant(&tenancy, "globex", Placement::SharedTable).await;
        fill(&b, 5).await;
        let su = std::sync::Arc::new(tenancy.superuser("ops", "import").await.unwrap());
        let archive = tenancy.export_tenant(&su, b.id()).await.unwrap();
        let mut conn = t.connect().await;
        let db = home(&mut conn, a.id()).await.1.unwrap();
        let mover = spawn_move(
            &tenancy,
            &su,
            a.id(),
            Placement::SharedTable,
            tenancy::MoveOptions::default().hold_before_switch(Duration::from_secs(3)),
        );
        let mut own = connect_to(&db).await;
        eventually(
            "the move sealed the old copy",
            Duration::from_secs(30),
            async || {
                sqlx::query_scalar::<_, bool>("SELECT moved_at IS NOT NULL FROM tenancy.tenants")
                    .fetch_one(&mut own)
                    .await
                    .unwrap()
            },
        )
        .await;
        let imported = tenancy.import_tenant(&su, &archive, a.id()).await;
        assert_eq!(mover.await.unwrap().unwrap().rows(), 0);
        assert!(
            matches!(&imported, Err(Error::TenantMoved(_))),
            "{imported:?}: old copy {}, new home {}",
            spin_ids(&mut own, "public.spins", a.id()).await.len(),
            spin_ids(&mut conn, "public.spins", a.id()).await.len()
        );
        assert!(spin_ids(&mut own, "public.spins", a.id()).await.is_empty());
        assert_eq!(
            tenancy.import_tenant(&su, &archive, a.id()).await.unwrap(),
            6
        );
        assert_eq!(spin_ids(&mut conn, "public.spins", a.id()).await.len(), 5);
    }

    /// HOLDS: two handles moving the same tenant out of its database at once, to two
    /// placements: the registry row orders them; the tenant ends whole on one home, writable,
    /// and the cleanup finds no leftover.
    #[tenancy::test(migrations = "tests/migrations")]
    async fn two_handles_moving_a_tenant_out_of_its_database_at_once_leave_it_whole(
        t: TestTenancy,
    ) {
        let tenancy = t.tenancy().clone();
        let other = Tenancy::builder()
            .max_connections(4)
            .connect(t.url())
            .await
            .unwrap();
        let a = tenant(&tenancy, "acme", Placement::OwnDatabase).await;
        let s = fill(&a, 10).await;
        let su1 = tenancy.superuser("ops", "race 1").await.unwrap();
        let su2 = other.superuser("ops", "race 2").await.unwrap();
        let (one, two) = tokio::join!(
            tenancy.move_tenant(&su1, a.id(), Placement::SharedTable),
            other.move_tenant(&su2, a.id(), Placement::OwnSchema),
        );
        assert!(one.is_ok() || two.is_ok(), "{one:?} {two:?}");
        for out in [&one, &two] {
            if let Err(e) = out {
                assert!(matches!(e, Error::MoveRefused { .. }), "{e:?}");
            }
        }
        tenancy.cleanup_orphans(&su1).await.unwrap();
        let a = tenancy.resolve_slug("acme").await.unwrap();
        assert_eq!(Spin::repo().count(&a).await.unwrap(), 10, "{one:?} {two:?}");
        Spin::repo().insert(&a, &new_spin(s.id, 1)).await.unwrap();
        assert_eq!(Spin::repo().count(&a).await.unwrap(), 11);
        other.close().await;
    }

    /// HOLDS: a purge that comes while a move out of the tenant's database is between its
    /// seal and its switch waits for the move, then removes the tenant from its new home and
    /// its old database (through the cleanup of leftovers): no row and no database remain.
    #[tenancy::test(migrations = "tests/migrations")]
    async fn a_purge_racing_a_move_out_of_a_database_leaves_nothing(t: TestTenancy) {
        let tenancy = t.tenancy().clone();
        let a = tenant(&tenancy, "acme", Placement::OwnDatabase).await;
        fill(&a, 5).await;
        let su = std::sync::Arc::new(tenancy.superuser("ops", "purge race").await.unwrap());
        let mut conn = t.connect().await;
        let db = home(&mut conn, a.id()).await.1.unwrap();
        let mover = spawn_move(
            &tenancy,
            &su,
            a.id(),
            Placement::SharedTable,
            tenancy::MoveOptions::default().hold_before_switch(Duration::from_secs(2)),
        );
        let mut own = connect_to(&db).await;
        eventually(
            "the move sealed the old copy",
            Duration::from_secs(30),
            async || {
                sqlx::query_scalar::<_, bool>("SELECT moved_at IS NOT NULL FROM tenancy.tenants")
                    .fetch_one(&mut own)
                    .await
                    .unwrap()
            },
        )
        .await;
        drop(own);
        tenancy.soft_delete(&su, a.id()).await.unwrap();
        tenancy.purge(&su, a.id()).await.unwrap();
        assert_eq!(mover.await.unwrap().unwrap().rows(), 6);
        tenancy.cleanup_orphans(&su).await.unwrap();
        assert!(
            common::moving::registry_databases(&mut conn)
                .await
                .is_empty()
        );
        assert!(spin_ids(&mut conn, "public.spins", a.id()).await.is_empty());
    }

    /// HOLDS: a `TenantTx` begun (and read in) before a move out of its database, in a process
    /// that does not hear of the move, in each isolation level, that writes
    /// after the switch, is refused: as moved in read committed, by a serialization failure
    /// where its snapshot predates the seal. Its commit keeps nothing, and neither copy holds
    /// the write.
    #[tenancy::test(migrations = "tests/migrations")]
    async fn a_transaction_begun_before_a_move_out_cannot_write_across_the_switch(t: TestTenancy) {
        let tenancy = t.tenancy().clone();
        let mut conn = t.connect().await;
        let su = tenancy.superuser("ops", "tx across").await.unwrap();
        for (slug, level) in [
            ("rc", "read committed"),
            ("rr", "repeatable read"),
            ("sz", "serializable"),
        ] {
            let a = tenant(&tenancy, slug, Placement::OwnDatabase).await;
            let s = fill(&a, 3).await;
            let db = home(&mut conn, a.id()).await.1.unwrap();
            // The tenant database's sessions, the writer's and the mover's, in that level.
            let mut old = connect_to(&db).await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE \"{db}\" SET default_transaction_isolation = '{level}'"
            )))
            .execute(&mut old)
            .await
            .unwrap();
            // A second process that does not hear of the move: the tenant database's fence
            // alone stands in the way (this handle's own listener would revoke the context).
            let behind = Tenancy::builder()
                .max_connections(2)
                .listen_for_changes(false)
                .connect(t.url())
                .await
                .unwrap();
            let mut tx = behind
                .resolve_slug(slug)
                .await
                .unwrap()
                .begin()
                .await
                .unwrap();
            assert_eq!(Spin::repo().count(&mut tx).await.unwrap(), 3, "{level}");
            tenancy
                .move_tenant(&su, a.id(), Placement::OwnSchema)
                .await
                .unwrap();
            let late = new_spin(s.id, -1);
            let refused = Spin::repo().insert(&mut tx, &late).await;
            // Read committed sees the seal; a snapshot of before it fails to serialize.
            let serial = |e: &Error| matches!(e, Error::Database(sqlx::Error::Database(d)) if d.code().as_deref() == Some("40001"));
            if level == "read committed" {
                assert!(
                    matches!(&refused, Err(Error::TenantMoved(_))),
                    "{refused:?}"
                );
            } else {
                assert!(
                    matches!(&refused, Err(e) if serial(e)),
                    "{level}: {refused:?}"
                );
            }
            let commit = tx.commit().await;
            assert!(
                matches!(commit, Err(Error::TransactionAborted)),
                "{level}: {commit:?}"
            );
            assert!(
                !spin_ids(&mut old, "public.spins", a.id())
                    .await
                    .contains(&late.id)
            );
            let new = format!("t_{slug}.spins");
            assert!(!spin_ids(&mut conn, &new, a.id()).await.contains(&late.id));
            assert_eq!(spin_ids(&mut conn, &new, a.id()).await.len(), 3, "{level}");
            behind.close().await;
        }
    }

    /// HOLDS: a move out of a database dropped at each of its awaits leaves the tenant whole
    /// on one home: either not moved (writable, or sealed between its two commits and then
    /// finished by the next run) or moved; the next run goes on, and the cleanup of leftovers
    /// never takes the old database.
    #[tenancy::test(migrations = "tests/migrations")]
    async fn a_move_out_of_a_database_cancelled_at_any_await_leaves_the_tenant_whole(
        t: TestTenancy,
    ) {
        let tenancy = t.tenancy().clone();
        let a = tenant(&tenancy, "acme", Placement::OwnDatabase).await;
        let s = fill(&a, 6).await;
        let su = tenancy.superuser("ops", "cancel out").await.unwrap();
        let mut conn = t.connect().await;
        let db = home(&mut conn, a.id()).await.1.unwrap();
        let mut rows = 7;
        let mut k = 1;
        loop {
            let out = cancel_at(k, tenancy.move_tenant(&su, a.id(), Placement::SharedTable)).await;
            if let Some(moved) = out {
                assert_eq!(moved.unwrap().rows(), rows);
                break;
            }
            common::no_transaction_left_open(&mut conn).await;
            if home(&mut conn, a.id()).await.0 == "shared_table" {
                break; // cut off with its commit on the wire
            }
            assert_eq!(
                home(&mut conn, a.id()).await.1.as_deref(),
                Some(db.as_str())
            );
            tenancy.cleanup_orphans(&su).await.unwrap();
            let mut own = connect_to(&db).await;
            assert_eq!(
                spin_ids(&mut own, "public.spins", a.id()).await.len() as u64,
                rows - 1
            );
            // The tenant database's transaction ends when its connection closes.
            let fresh = tenancy.resolve_slug("acme").await.unwrap();
            let mut written = None;
            eventually(
                "the cancelled move lets go",
                Duration::from_secs(30),
                async || {
                    let out = Spin::repo()
                        .insert(&fresh, &new_spin(s.id, 1000 + k as i32))
                        .await;
                    let done = !matches!(out, Err(Error::TenantMoving(_)));
                    written = Some(out);
                    done
                },
            )
            .await;
            let sealed: bool =
                sqlx::query_scalar("SELECT moved_at IS NOT NULL FROM tenancy.tenants")
                    .fetch_one(&mut own)
                    .await
                    .unwrap();
            // Writable, or sealed between the two commits and refused as moved (retryable).
            match written.unwrap() {
                Ok(_) => assert!(!sealed, "a write landed in a sealed copy at await {k}"),
                Err(Error::TenantMoved(_)) => assert!(sealed, "refused unsealed at await {k}"),
                Err(other) => panic!("await {k}: {other:?}"),
            }
            rows = spin_ids(&mut own, "public.spins", a.id()).await.len() as u64 + 1;
            k += 1;
        }
        assert!(k > 3, "the move was cancelled at {k} awaits only");
        assert!(tenancy.cleanup_orphans(&su).await.unwrap().is_empty());
        let a = tenancy.resolve_slug("acme").await.unwrap();
        assert_eq!(Spin::repo().count(&a).await.unwrap() as u64, rows - 1);
        assert_eq!(
            spin_ids(&mut conn, "public.spins", a.id()).await.len() as u64,
            rows - 1
        );
    }
}
