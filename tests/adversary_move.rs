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
    use common::models::*;
    use common::{Rls, SPINNER_SCHEMA};
    use tenancy::{MigrateOptions, Migration, Migrations, NewTenant, Placement, Tenancy, rls};
    use uuid::Uuid;

    use super::common;

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
        let su = app.superuser("test", "setup").await.unwrap();
        let report = app
            .migrate_tenants(&su, MigrateOptions::default())
            .await
            .unwrap();
        assert!(report.is_success(), "{report:?}");
        app.create_tenant(NewTenant::new("acme", "Acme"))
            .await
            .unwrap();
        let a = app.resolve_slug("acme").await.unwrap();
        for i in 0..3 {
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
