//! Adversarial tests of own-database tenants whose database is not where the registry says:
//! a registry row edited by hand to name another tenant's database, or two tenants' databases
//! swapped by name on the server. Serving such a tenant is refused (`own_database.rs`); so must
//! be the superuser's calls that open the database directly (export, import) or drop it
//! (purge), which would otherwise read, write or destroy the other tenant's data.

mod common;

use common::models::*;
use common::{SPINNER_SCHEMA, TestDb};
use sqlx::{Connection, PgConnection};
use tenancy::{
    Error, MigrateOptions, Migrations, NewTenant, Placement, Superuser, Tenancy, Tenant, TenantId,
};
use uuid::Uuid;

struct World {
    db: TestDb,
    tenancy: Tenancy,
    su: Superuser,
    alpha: Tenant,
    beta: Tenant,
}

/// Two own-database tenants, beta with one spinner; a superuser of the handle.
async fn world(test: &str) -> World {
    let db = TestDb::new(test).await;
    let tenancy = Tenancy::builder()
        .tenant_migrations(Migrations::from_static(&[(1, "spinner app", SPINNER_SCHEMA)]).unwrap())
        .connect(&db.url)
        .await
        .unwrap();
    common::migrate_all(&tenancy).await;
    let own = |slug: &str| NewTenant::new(slug, slug).placement(Placement::OwnDatabase);
    let alpha = tenancy.create_tenant(own("alpha")).await.unwrap();
    let beta = tenancy.create_tenant(own("beta")).await.unwrap();
    let ctx = tenancy.resolve_id(beta.id).await.unwrap();
    common::add_spinner(&ctx, "beta's secret").await.unwrap();
    let su = tenancy.superuser("ops", "wrong database").await.unwrap();
    World {
        db,
        tenancy,
        su,
        alpha,
        beta,
    }
}

fn database(t: &Tenant) -> String {
    t.database.clone().expect("an own-database tenant")
}

/// The rows of `spinners` in `database`, read around the library: (tenant id, name).
async fn rows_in(database: &str) -> Vec<(Uuid, String)> {
    let mut conn = PgConnection::connect(&tenancy::testing::database_url(database))
        .await
        .unwrap();
    let rows = sqlx::query_as("SELECT tenant_id, name FROM spinners ORDER BY name")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    rows
}

fn refused(r: &Result<impl std::fmt::Debug, Error>, tenant: TenantId) -> bool {
    matches!(r, Err(Error::WrongDatabase { tenant: t, .. }) if *t == tenant)
}

/// Every superuser call that opens alpha's database directly, or drops it, when alpha's
/// database is beta's: refused, and beta's rows are where they were.
async fn alpha_cannot_touch_betas_rows(w: &World, betas: &str) {
    let before = rows_in(betas).await;
    assert_eq!(before.len(), 1);
    let export = w.tenancy.export_tenant(&w.su, w.alpha.id).await;
    assert!(refused(&export, w.alpha.id), "{export:?}");
    // An archive of beta's own rows, imported into alpha: it would land in beta's database.
    let archive = w.tenancy.export_tenant(&w.su, w.beta.id).await;
    if let Ok(archive) = archive {
        let import = w.tenancy.import_tenant(&w.su, &archive, w.alpha.id).await;
        assert!(refused(&import, w.alpha.id), "{import:?}");
    }
    // Migrations: alpha's fails alone, rather than recording alpha's history in beta's database.
    let report = w
        .tenancy
        .migrate_tenants(&w.su, MigrateOptions::default())
        .await
        .unwrap();
    assert!(!report.is_success(), "{report:?}");
    let pending = w.tenancy.pending_migrations(&w.su).await;
    assert!(refused(&pending, w.alpha.id), "{pending:?}");
    w.tenancy.soft_delete(&w.su, w.alpha.id).await.unwrap();
    let purge = w.tenancy.purge(&w.su, w.alpha.id).await;
    assert!(refused(&purge, w.alpha.id), "{purge:?}");
    // Refused before anything was deleted: alpha is still registered, soft-deleted, and the
    // orphan cleanup leaves the database alone.
    assert!(w.tenancy.tenant(&w.su, w.alpha.id).await.is_ok());
    w.tenancy.cleanup_orphans(&w.su).await.unwrap();
    assert_eq!(rows_in(betas).await, before);
}

/// BROKE, fixed: alpha's registry row edited by hand to name beta's database (and beta's,
/// alpha's). Export, import and migrations opened it without asking whose it is, and purge
/// dropped it with beta's rows.
#[tokio::test]
async fn a_registry_row_naming_another_tenants_database_cannot_read_write_or_drop_it() {
    let w = world("adv_wrongdb_row").await;
    let (alphas, betas) = (database(&w.alpha), database(&w.beta));
    // A database belongs to one row: the rows trade names.
    let (a, b) = (w.alpha.id, w.beta.id);
    w.db.exec(&format!(
        "UPDATE tenancy.tenants SET database_name = 'tmp' WHERE id = '{a}'; \
         UPDATE tenancy.tenants SET database_name = '{alphas}' WHERE id = '{b}'; \
         UPDATE tenancy.tenants SET database_name = '{betas}' WHERE id = '{a}'"
    ))
    .await;
    alpha_cannot_touch_betas_rows(&w, &betas).await;
}

/// BROKE, fixed: alpha's and beta's databases swapped by name on the server. Purging alpha
/// dropped the database named alpha's, which held beta's rows.
#[tokio::test]
async fn swapped_databases_cannot_be_read_written_or_dropped_as_the_other_tenants() {
    let w = world("adv_wrongdb_swap").await;
    let (alphas, betas) = (database(&w.alpha), database(&w.beta));
    w.tenancy.close().await;
    let tmp = format!("{alphas}_x");
    let mut admin = common::admin_conn().await;
    for sql in [
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname IN ('{alphas}', '{betas}')"
        ),
        format!("ALTER DATABASE \"{alphas}\" RENAME TO \"{tmp}\""),
        format!("ALTER DATABASE \"{betas}\" RENAME TO \"{alphas}\""),
        format!("ALTER DATABASE \"{tmp}\" RENAME TO \"{betas}\""),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let tenancy = Tenancy::builder()
        .tenant_migrations(Migrations::from_static(&[(1, "spinner app", SPINNER_SCHEMA)]).unwrap())
        .connect(&w.db.url)
        .await
        .unwrap();
    let su = tenancy.superuser("ops", "swapped").await.unwrap();
    let w = World { tenancy, su, ..w };
    // Beta's rows now sit in the database named alpha's.
    alpha_cannot_touch_betas_rows(&w, &alphas).await;
}

/// HOLDS: the orphan cleanup, run over and over by a second handle (and by every connect) while
/// the first creates own-database tenants from spares, from the template and empty, never drops
/// a database that is, or is about to be, registered: every tenant made serves its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orphan_cleanup_racing_creations_never_drops_a_registered_database() {
    let w = world("adv_wrongdb_cleanup_race").await;
    let other = Tenancy::builder()
        .tenant_migrations(Migrations::from_static(&[(1, "spinner app", SPINNER_SCHEMA)]).unwrap())
        .connect(&w.db.url)
        .await
        .unwrap();
    let su = other.superuser("ops", "cleanup race").await.unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let create = async {
        w.tenancy.warm_databases(&w.su, 2).await.unwrap();
        let mut made = Vec::new();
        for i in 0..6 {
            let slug = format!("race-{i}");
            let t = w
                .tenancy
                .create_tenant(NewTenant::new(&slug, &slug).placement(Placement::OwnDatabase))
                .await
                .unwrap();
            made.push(t.id);
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        made
    };
    let cleanup = async {
        let mut rounds = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            assert_eq!(
                other.cleanup_orphans(&su).await.unwrap(),
                Vec::<String>::new()
            );
            rounds += 1;
        }
        rounds
    };
    let (made, rounds) = tokio::join!(create, cleanup);
    assert!(rounds > 0);
    for id in made {
        let ctx = w.tenancy.resolve_id(id).await.unwrap();
        common::add_spinner(&ctx, "kept").await.unwrap();
        assert_eq!(Spinner::repo().count(&ctx).await.unwrap(), 1);
    }
}

/// The tenant databases of `w`'s registry on the server, and those its registry records.
async fn tenant_databases(w: &World) -> (Vec<String>, Vec<String>) {
    let mut conn = w.db.connect().await;
    let on_server = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database \
         WHERE datname ~ ('^tenancy_' || (SELECT tag FROM tenancy.deployment) || '_[0-9a-f]{32}$') \
         ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let registered = sqlx::query_scalar(
        "SELECT database_name FROM tenancy.tenants WHERE database_name IS NOT NULL ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    (on_server, registered)
}

/// HOLDS: a creation of an own-database tenant cancelled at every await, from empty and from a
/// spare, leaves either a tenant that serves or no tenant; what it leaves on the server is a
/// leftover the cleanup drops (and only that), and the slug can be taken again.
#[tokio::test]
async fn a_creation_cancelled_at_any_await_leaves_a_whole_tenant_or_a_leftover_the_cleanup_drops() {
    let w = world("adv_wrongdb_cancel_create").await;
    for spares in [false, true] {
        let slug = format!("cancelled-{spares}");
        let mut k = 1;
        let made = loop {
            if spares {
                w.tenancy.warm_databases(&w.su, 1).await.unwrap();
            }
            let new = NewTenant::new(&slug, &slug).placement(Placement::OwnDatabase);
            let done = tenancy::testing::cancel_at(k, w.tenancy.create_tenant(new)).await;
            common::no_transaction_left_open(&mut w.db.connect().await).await;
            // A statement the cancelled call left running on the server may still finish, or
            // its registry transaction still hold the name's lock: the cleanup drops what it
            // left once neither does.
            tenancy::testing::eventually(
                "the cleanup drops what the cancelled creation left",
                std::time::Duration::from_secs(10),
                async || {
                    w.tenancy.cleanup_orphans(&w.su).await.unwrap();
                    let (on_server, registered) = tenant_databases(&w).await;
                    on_server == registered
                },
            )
            .await;
            match (done, w.tenancy.resolve_slug(&slug).await) {
                (Some(made), Ok(_)) => break made.unwrap(),
                // Cancelled after its commit: whole, and serving.
                (None, Ok(ctx)) => break w.tenancy.tenant(&w.su, ctx.id()).await.unwrap(),
                (None, Err(Error::TenantNotFound(_))) => {}
                (done, found) => panic!("at {k}: {done:?} / {found:?}"),
            }
            k += 1;
        };
        let ctx = w.tenancy.resolve_id(made.id).await.unwrap();
        common::add_spinner(&ctx, "whole").await.unwrap();
        assert_eq!(Spinner::repo().count(&ctx).await.unwrap(), 1);
    }
}

/// The databases of `w`'s registry on the server whose name starts with `kind` after the
/// registry's prefix (`build_`, `template_v`, `spare_v`).
async fn databases_of_kind(w: &World, kind: &str) -> Vec<String> {
    let mut conn = w.db.connect().await;
    sqlx::query_scalar(
        "SELECT datname::text FROM pg_database \
         WHERE starts_with(datname, 'tenancy_' || (SELECT tag FROM tenancy.deployment) || '_' || $1) \
         ORDER BY 1",
    )
    .bind(kind)
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

/// Warming spares cancelled at every await (while the template is built, renamed, or spares
/// are copied from it): once the cleanup has run, no half-built template is left on the server.
#[tokio::test]
async fn a_template_build_cancelled_at_any_await_leaves_nothing_the_cleanup_keeps() {
    let w = world("adv_wrongdb_cancel_build").await;
    // A template exists from the world's creations: a new set of migrations needs another.
    let tenancy = Tenancy::builder()
        .tenant_migrations(
            Migrations::from_list(vec![
                tenancy::Migration::new(1, "spinner app", SPINNER_SCHEMA),
                tenancy::Migration::new(2, "more", "CREATE TABLE public.extra (x int)"),
            ])
            .unwrap(),
        )
        .connect(&w.db.url)
        .await
        .unwrap();
    let su = tenancy.superuser("ops", "cancel build").await.unwrap();
    let mut k = 1;
    while tenancy::testing::cancel_at(k, tenancy.warm_databases(&su, 1))
        .await
        .is_none()
    {
        common::no_transaction_left_open(&mut w.db.connect().await).await;
        k += 1;
    }
    tenancy::testing::eventually(
        "no half-built template is left",
        std::time::Duration::from_secs(10),
        async || {
            tenancy.cleanup_orphans(&su).await.unwrap();
            databases_of_kind(&w, "build_").await.is_empty()
        },
    )
    .await;
    assert_eq!(databases_of_kind(&w, "template_v").await.len(), 1);
    // And a build in progress is never taken for a leftover: the cleanup, over and over while
    // the template of a third set of migrations is built, leaves it to finish.
    let third = Tenancy::builder()
        .tenant_migrations(
            Migrations::from_list(vec![
                tenancy::Migration::new(1, "spinner app", SPINNER_SCHEMA),
                tenancy::Migration::new(2, "more", "CREATE TABLE public.extra (x int)"),
                tenancy::Migration::new(3, "slow", "SELECT pg_sleep(1)"),
            ])
            .unwrap(),
        )
        .connect(&w.db.url)
        .await
        .unwrap();
    let third_su = third.superuser("ops", "build").await.unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let warm = async {
        let made = third.warm_databases(&third_su, 1).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        made
    };
    let cleanup = async {
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            tenancy.cleanup_orphans(&su).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    let (made, ()) = tokio::join!(warm, cleanup);
    assert_eq!(made.unwrap(), 1);
}
