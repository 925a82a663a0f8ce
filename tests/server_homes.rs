//! Shared-table tenants on servers other than the registry's: they live in that server's home
//! database (`tenancy_<tag>_home_<key>`), many tenants per table, told apart by the tenant
//! column. Each sees its own rows only, reports and migrations cover the homes, purge removes a
//! tenant's rows there (and a context resolved before can no longer write), what is not
//! served yet (export, import, move) is refused before anything changes, and a database that
//! lies about being a home, or a home that does not list the tenant, is refused.
//!
//! Without the second and third servers each test says so and returns, unless `CI` is set.

mod common;

use common::homes::*;
use common::models::*;
use common::servers::*;
use sqlx::{Connection, PgConnection};
use tenancy::testing::TestTenancy;
use tenancy::{
    Error, MigrateOptions, MigrationTarget, Migrations, NewTenant, Outcome, Placement, Purged,
    Tenancy,
};
use uuid::Uuid;

#[tenancy::test(migrations = "tests/migrations")]
async fn shared_table_tenants_of_another_server_share_its_home_and_keep_to_their_own(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("server_homes_keep_to_their_own") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "server homes").await.unwrap();
    let rows = [
        tenancy
            .create_tenant(shared_on("here", "primary"))
            .await
            .unwrap(),
        tenancy
            .create_tenant(shared_on("two-a", "s2"))
            .await
            .unwrap(),
        tenancy
            .create_tenant(shared_on("two-b", "s2"))
            .await
            .unwrap(),
        tenancy
            .create_tenant(shared_on("three", "s3"))
            .await
            .unwrap(),
    ];
    for row in &rows {
        assert_eq!(row.placement, Placement::SharedTable);
        assert_eq!(row.database, None);
    }
    // One home per server, made on that server only; none on the primary.
    assert_eq!(
        databases_on(&urls.0, &tag).await,
        [home_name(&tag, "s2")],
        "s2"
    );
    assert_eq!(databases_on(&urls.1, &tag).await, [home_name(&tag, "s3")]);
    assert!(
        !databases_on(&tenancy::testing::server_url(), &tag)
            .await
            .iter()
            .any(|d| d.contains("_home_"))
    );

    // The same row id in every tenant: each sees its own row only.
    let same = Uuid::new_v4();
    let mut ctxs = Vec::new();
    for row in &rows {
        let ctx = tenancy.resolve_id(row.id).await.unwrap();
        spin(&ctx, same, &row.slug).await;
        ctxs.push(ctx);
    }
    for (ctx, row) in ctxs.iter().zip(&rows) {
        assert_eq!(names(ctx).await, [row.slug.as_str()], "{}", row.slug);
        let got = Spinner::repo().get(ctx, same).await.unwrap().unwrap();
        assert_eq!(got.name, row.slug);
    }
    // Both s2 tenants' rows are in s2's home, under their own tenant ids; nothing of theirs on
    // the primary.
    let home_two = url_of(&urls.0, &home_name(&tag, "s2"));
    for row in &rows[1..3] {
        let sql = format!(
            "SELECT count(*) FROM public.spinners WHERE tenant_id = '{}' AND name = '{}'",
            row.id, row.slug
        );
        assert_eq!(count_at(&home_two, &sql).await, 1, "{}", row.slug);
    }
    assert_eq!(
        count_at(db.url(), "SELECT count(*) FROM public.spinners").await,
        1,
        "only the primary's tenant's row is on the primary"
    );

    // A write through one s2 tenant never reaches the other's row of the same id.
    let deleted = Spinner::repo().delete(&ctxs[1], same).await.unwrap();
    assert!(deleted);
    assert!(names(&ctxs[1]).await.is_empty());
    assert_eq!(names(&ctxs[2]).await, ["two-b"]);
    // A transaction on an s2 tenant: rolled back, nothing stays; committed, it does.
    let mut tx = ctxs[2].begin().await.unwrap();
    Spinner::repo()
        .insert(
            &mut tx,
            &NewSpinner {
                id: Uuid::new_v4(),
                name: "rolled back".into(),
                color: None,
            },
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(names(&ctxs[2]).await, ["two-b"]);

    // A report merges the tenants of every server, the home's included.
    let mut all = Spinner::repo().report().fetch_all(&su).await.unwrap();
    all.sort_by_key(|(_, r)| r.name.clone());
    let got: Vec<(tenancy::TenantId, &str)> =
        all.iter().map(|(t, r)| (*t, r.name.as_str())).collect();
    assert_eq!(
        got,
        [
            (rows[0].id, "here"),
            (rows[3].id, "three"),
            (rows[2].id, "two-b"),
        ]
    );
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_purge_removes_the_tenants_rows_from_the_home_and_its_old_contexts_cannot_write(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("server_homes_purge") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "server homes").await.unwrap();
    let gone = tenancy
        .create_tenant(shared_on("gone", "s2"))
        .await
        .unwrap();
    let kept = tenancy
        .create_tenant(shared_on("kept", "s2"))
        .await
        .unwrap();
    // Another process resolved `gone` before the purge (its cache is behind).
    let other = builder(&urls).connect(db.url()).await.unwrap();
    let stale = other.resolve_id(gone.id).await.unwrap();
    for (id, n) in [(gone.id, 3), (kept.id, 2)] {
        let ctx = tenancy.resolve_id(id).await.unwrap();
        for i in 0..n {
            spin(&ctx, Uuid::new_v4(), &format!("s{i}")).await;
        }
    }
    tenancy.soft_delete(&su, gone.id).await.unwrap();
    let purged = tenancy.purge(&su, gone.id).await.unwrap();
    match purged {
        Purged::Rows(tables) => {
            let spinners = tables.iter().find(|(t, _)| t.contains("spinners"));
            assert_eq!(spinners.map(|(_, n)| *n), Some(3), "{tables:?}");
        }
        other => panic!("expected rows deleted, got {other:?}"),
    }
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let of = |id: tenancy::TenantId| {
        format!("SELECT count(*) FROM public.spinners WHERE tenant_id = '{id}'")
    };
    assert_eq!(count_at(&home, &of(gone.id)).await, 0);
    assert_eq!(count_at(&home, &of(kept.id)).await, 2);
    let line = format!(
        "SELECT count(*) FROM tenancy.tenants WHERE id = '{}'",
        gone.id
    );
    assert_eq!(
        count_at(&home, &line).await,
        0,
        "its line in the home is gone"
    );

    // The context resolved before the purge: its write is refused and lands nowhere.
    let write = Spinner::repo()
        .insert(
            &stale,
            &NewSpinner {
                id: Uuid::new_v4(),
                name: "late".into(),
                color: None,
            },
        )
        .await;
    assert!(write.is_err(), "a write after the purge was acknowledged");
    assert_eq!(count_at(&home, &of(gone.id)).await, 0);
    // The other tenant of the home is untouched and still served.
    let ctx = tenancy.resolve_id(kept.id).await.unwrap();
    assert_eq!(names(&ctx).await, ["s0", "s1"]);
    other.close().await;
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn migrations_reach_every_home_and_archives_go_in_and_out_of_homes(db: TestTenancy) {
    let Some(urls) = server_urls("server_homes_migrations") else {
        return;
    };
    let (v1, tag) = connected(&db, &urls).await;
    let two = v1.create_tenant(shared_on("two", "s2")).await.unwrap();
    v1.create_tenant(shared_on("three", "s3")).await.unwrap();
    v1.close().await;
    let mut list: Vec<tenancy::Migration> = spinner_migrations().iter().cloned().collect();
    list.push(tenancy::Migration::new(
        2,
        "size",
        "ALTER TABLE spinners ADD COLUMN size int",
    ));
    let v2 = builder(&urls)
        .tenant_migrations(Migrations::from_list(list).unwrap())
        .connect(db.url())
        .await
        .unwrap();
    let su = v2.superuser("test", "migrate").await.unwrap();
    let pending = v2.pending_migrations(&su).await.unwrap();
    let homes = |targets: Vec<&MigrationTarget>| {
        let mut servers: Vec<String> = targets
            .into_iter()
            .filter_map(|t| match t {
                MigrationTarget::ServerHome { server } => Some(server.clone()),
                _ => None,
            })
            .collect();
        servers.sort();
        servers
    };
    assert_eq!(
        homes(pending.iter().map(|(t, _)| t).collect()),
        ["s2", "s3"]
    );
    let report = v2
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    let applied: Vec<&MigrationTarget> = report
        .outcomes
        .iter()
        .filter(|(_, o)| *o == Outcome::Applied(vec![2]))
        .map(|(t, _)| t)
        .collect();
    assert_eq!(homes(applied), ["s2", "s3"], "{report:?}");
    assert!(v2.pending_migrations(&su).await.unwrap().is_empty());
    for (url, server) in [(&urls.0, "s2"), (&urls.1, "s3")] {
        let has_size = "SELECT count(*) FROM information_schema.columns \
                        WHERE table_name = 'spinners' AND column_name = 'size'";
        assert_eq!(
            count_at(&url_of(url, &home_name(&tag, server)), has_size).await,
            1
        );
    }

    // Export reads the tenant's rows only from its home, import writes them into another
    // home's tenant (and into one on the registry's server), leaving the neighbours alone.
    let ctx = v2.resolve_id(two.id).await.unwrap();
    for name in ["x", "y"] {
        spin(&ctx, Uuid::new_v4(), name).await;
    }
    let neighbour = v2
        .create_tenant(shared_on("neighbour", "s2"))
        .await
        .unwrap();
    spin(
        &v2.resolve_id(neighbour.id).await.unwrap(),
        Uuid::new_v4(),
        "n",
    )
    .await;
    let archive = v2.export_tenant(&su, two.id).await.unwrap();
    let onto_three = v2
        .create_tenant(shared_on("copy-three", "s3"))
        .await
        .unwrap();
    let onto_here = v2
        .create_tenant(shared_on("copy-here", "primary"))
        .await
        .unwrap();
    for into in [onto_three.id, onto_here.id] {
        assert_eq!(v2.import_tenant(&su, &archive, into).await.unwrap(), 2);
        assert_eq!(names(&v2.resolve_id(into).await.unwrap()).await, ["x", "y"]);
    }
    // An import into a tenant that has rows is refused, and changes nothing.
    assert!(
        v2.import_tenant(&su, &archive, onto_three.id)
            .await
            .is_err()
    );
    assert_eq!(
        names(&v2.resolve_id(onto_three.id).await.unwrap()).await,
        ["x", "y"]
    );
    assert_eq!(
        names(&v2.resolve_id(neighbour.id).await.unwrap()).await,
        ["n"]
    );
    let home_three = url_of(&urls.1, &home_name(&tag, "s3"));
    assert_eq!(
        count_at(
            &home_three,
            &format!(
                "SELECT count(*) FROM public.spinners WHERE tenant_id = '{}'",
                onto_three.id
            )
        )
        .await,
        2
    );

    let row = v2.tenant(&su, two.id).await.unwrap();
    assert_eq!(
        (row.server.as_str(), row.placement),
        ("s2", Placement::SharedTable)
    );
    assert_eq!(names(&ctx).await, ["x", "y"]);
    v2.close().await;
    drop_extra(&urls, &tag).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_database_that_lies_about_being_a_home_or_a_home_without_the_tenant_is_refused(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("server_homes_lies") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "server homes").await.unwrap();
    let a = tenancy.create_tenant(shared_on("ta", "s2")).await.unwrap();
    let b = tenancy.create_tenant(shared_on("tb", "s2")).await.unwrap();
    let home = home_name(&tag, "s2");
    let home_url = url_of(&urls.0, &home);
    spin(
        &tenancy.resolve_id(b.id).await.unwrap(),
        Uuid::new_v4(),
        "b's",
    )
    .await;

    // An own-database tenant whose registry row names the home (an edited row): its
    // connections are refused, the home does not list it (and is no tenant's own database).
    let own = tenancy
        .create_tenant(
            NewTenant::new("own", "own")
                .placement(Placement::OwnDatabase)
                .server("s2"),
        )
        .await
        .unwrap();
    exec_at(
        db.url(),
        &format!(
            "UPDATE tenancy.tenants SET database_name = '{home}' WHERE id = '{}'",
            own.id
        ),
    )
    .await;
    let fresh = builder(&urls).connect(db.url()).await.unwrap();
    let ctx = fresh.resolve_id(own.id).await.unwrap();
    match Spinner::repo().query().fetch_all(&ctx).await {
        Err(Error::WrongDatabase { found, .. }) => {
            assert!(found.contains("not listing the tenant"), "{found}");
        }
        other => panic!("expected WrongDatabase, got {other:?}"),
    }

    // Nor is the home dropped as its database by a purge: it is refused before anything goes.
    tenancy.soft_delete(&su, own.id).await.unwrap();
    match tenancy.purge(&su, own.id).await {
        Err(Error::WrongDatabase { found, .. }) => {
            assert!(found.contains("home database of a server"), "{found}");
        }
        other => panic!("expected WrongDatabase, got {other:?}"),
    }
    assert!(databases_on(&urls.0, &tag).await.contains(&home));
    assert_eq!(
        names(&tenancy.resolve_id(b.id).await.unwrap()).await,
        ["b's"]
    );

    // A home whose line for `a` was removed by hand: `a` is refused there, `b` still served.
    exec_at(
        &home_url,
        &format!("DELETE FROM tenancy.tenants WHERE id = '{}'", a.id),
    )
    .await;
    let ctx = fresh.resolve_id(a.id).await.unwrap();
    assert!(matches!(
        Spinner::repo().query().fetch_all(&ctx).await,
        Err(Error::WrongDatabase { .. })
    ));
    // And verify_deployment says so.
    let report = fresh.verify_deployment().await.unwrap();
    assert!(
        report
            .registry
            .iter()
            .any(|p| p.contains("\"ta\"") && p.contains("does not list it")),
        "{:?}",
        report.registry
    );
    assert_eq!(names(&fresh.resolve_id(b.id).await.unwrap()).await, ["b's"]);

    // The mark taken off: no tenant of the home is served, and no creation goes there.
    exec_at(&home_url, "COMMENT ON TABLE tenancy.tenants IS NULL").await;
    let third = builder(&urls).connect(db.url()).await.unwrap();
    let ctx = third.resolve_id(b.id).await.unwrap();
    assert!(matches!(
        Spinner::repo().query().fetch_all(&ctx).await,
        Err(Error::WrongDatabase { .. })
    ));
    let before = tenancy.list_tenants(&su).await.unwrap().len();
    assert!(tenancy.create_tenant(shared_on("tc", "s2")).await.is_err());
    assert_eq!(tenancy.list_tenants(&su).await.unwrap().len(), before);
    for t in [fresh, third, tenancy] {
        t.close().await;
    }
    drop_extra(&urls, &tag).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_line_a_crash_left_in_a_home_is_cleaned_up_and_registered_ones_are_kept(db: TestTenancy) {
    let Some(urls) = server_urls("server_homes_cleanup") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "server homes").await.unwrap();
    let kept = tenancy
        .create_tenant(shared_on("kept", "s2"))
        .await
        .unwrap();
    spin(
        &tenancy.resolve_id(kept.id).await.unwrap(),
        Uuid::new_v4(),
        "k",
    )
    .await;
    let home_url = url_of(&urls.0, &home_name(&tag, "s2"));
    // A creation that listed its tenant and crashed before the registry row was written.
    let leftover = Uuid::new_v4();
    exec_at(
        &home_url,
        &format!("INSERT INTO tenancy.tenants (id, slug) VALUES ('{leftover}', 'crashed')"),
    )
    .await;
    // A slug taken on the registry: the creation fails and takes its line back.
    assert!(matches!(
        tenancy.create_tenant(shared_on("kept", "s2")).await,
        Err(Error::SlugTaken(_))
    ));
    assert_eq!(
        count_at(&home_url, "SELECT count(*) FROM tenancy.tenants").await,
        2,
        "kept and the leftover, not the failed creation"
    );
    let cleaned = tenancy.cleanup_orphans(&su).await.unwrap();
    assert_eq!(
        cleaned,
        [format!("s2/{}: tenant {leftover}", home_name(&tag, "s2"))]
    );
    let ids: Vec<Uuid> = {
        let mut conn = PgConnection::connect(&home_url).await.unwrap();
        let ids = sqlx::query_scalar("SELECT id FROM tenancy.tenants")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        ids
    };
    assert_eq!(ids, [kept.id.as_uuid()]);
    assert_eq!(
        names(&tenancy.resolve_id(kept.id).await.unwrap()).await,
        ["k"]
    );
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// Row-level security on: a home's table is refused until tenancy's policy is on it there too,
/// `install_row_level_security` puts it in every home, and it then confines SQL written
/// around the library in the home to the tenant set.
#[tokio::test]
async fn row_level_security_is_required_and_installed_in_every_home() {
    let Some(urls) = server_urls("server_homes_rls") else {
        return;
    };
    let rls = common::Rls::new("server_homes_rls").await;
    let role = rls.role().to_owned();
    // The same role on the other servers, allowed to make the home there.
    for url in [&urls.0, &urls.1] {
        exec_at(
            url,
            &format!("CREATE ROLE {role} LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS"),
        )
        .await;
    }
    let as_role = |url: &str| {
        url.parse::<sqlx::postgres::PgConnectOptions>()
            .unwrap()
            .username(&role)
    };
    let tenancy = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .row_level_security(true)
        .server("s2", as_role(&urls.0))
        .server("s3", as_role(&urls.1))
        .from_pool(rls.app_pool(4).await)
        .await
        .unwrap();
    let tag: String = sqlx::query_scalar("SELECT tag FROM tenancy.deployment")
        .fetch_one(&mut rls.db.connect().await)
        .await
        .unwrap();
    let su = tenancy.superuser("test", "rls in homes").await.unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    // The registry's shared tables, which the policy goes on first.
    tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    let a = tenancy
        .create_tenant(shared_on("rls-a", "s2"))
        .await
        .unwrap();
    let b = tenancy
        .create_tenant(shared_on("rls-b", "s2"))
        .await
        .unwrap();
    let ctx_a = tenancy.resolve_id(a.id).await.unwrap();
    // No policy in the home yet: refused, naming the policy, before any statement runs.
    match Spinner::repo().query().fetch_all(&ctx_a).await {
        Err(Error::TableShape(report)) => assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("row-level security") || p.contains("policy")),
            "{report:?}"
        ),
        other => panic!("expected TableShape, got {other:?}"),
    }
    // verify_deployment sees the home's table without its policy.
    let home_table = |report: &tenancy::DeploymentReport| {
        report
            .row_level_security
            .iter()
            .find(|t| t.table == "s2:public.spinners")
            .map(|t| t.problems.len())
    };
    let before = tenancy.verify_deployment().await.unwrap();
    assert!(home_table(&before).is_some_and(|n| n > 0), "{before:?}");
    tenancy
        .install_row_level_security::<Spinner>(&su)
        .await
        .unwrap();
    let after = tenancy.verify_deployment().await.unwrap();
    assert_eq!(home_table(&after), Some(0), "{after:?}");
    spin(&ctx_a, Uuid::new_v4(), "a's").await;
    spin(
        &tenancy.resolve_id(b.id).await.unwrap(),
        Uuid::new_v4(),
        "b's",
    )
    .await;
    assert_eq!(names(&ctx_a).await, ["a's"]);

    // A handle that reaches s2 as a superuser (whom PostgreSQL exempts from every policy):
    // refused with row-level security on, before any statement of the tenant's runs there.
    let exempt = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .row_level_security(true)
        .server("s2", options(&urls.0))
        .from_pool(rls.app_pool(2).await)
        .await
        .unwrap();
    let ctx = exempt.resolve_id(a.id).await.unwrap();
    match Spinner::repo().query().fetch_all(&ctx).await {
        Err(Error::RowLevelSecurity(m)) => assert!(m.contains("superuser"), "{m}"),
        other => panic!("expected RowLevelSecurity, got {other:?}"),
    }
    exempt.close().await;

    // SQL written around the library, as the application's role in the home: the policy
    // confines it to the tenant set, and to nothing without one.
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let mut conn = PgConnection::connect_with(&as_role(&home)).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM spinners")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0, "no tenant set: no rows");
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('tenancy.tenant_id', $1, true)")
        .bind(a.id.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let seen: Vec<String> = sqlx::query_scalar("SELECT name FROM spinners")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, ["a's"]);
    tx.rollback().await.unwrap();
    conn.close().await.unwrap();
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
    for url in [&urls.0, &urls.1] {
        exec_at(url, &format!("DROP ROLE IF EXISTS {role}")).await;
    }
}

/// The ids of tenant `id`'s spins in `table` of the database at `url`.
/// A tenant of s2's home moves into the registry's database while two processes write it:
/// every acknowledged write is in the new copy, none lands in the old one after the seal, a
/// context resolved before cannot write to the home afterwards, the neighbour in the home is
/// untouched, and `purge_old_copy` removes the old rows and line from the home only.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_tenant_moves_out_of_a_home_under_writes_and_its_old_copy_is_purged_there(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("server_homes_move_out") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let second = builder(&urls)
        .max_connections(4)
        .connect(db.url())
        .await
        .unwrap();
    let su = tenancy
        .superuser("test", "move out of a home")
        .await
        .unwrap();
    let row = tenancy
        .create_tenant(shared_on("acme", "s2"))
        .await
        .unwrap();
    let neighbour = tenancy
        .create_tenant(shared_on("neighbour", "s2"))
        .await
        .unwrap();
    let a = tenancy.resolve_id(row.id).await.unwrap();
    let sa = common::moving::fill(&a, 300).await;
    let n = tenancy.resolve_id(neighbour.id).await.unwrap();
    common::moving::fill(&n, 7).await;
    let counter = Spin::repo()
        .insert(&a, &common::moving::new_spin(sa.id, 0))
        .await
        .unwrap()
        .id;
    let stale = second.resolve_id(row.id).await.unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers = [tenancy.clone(), second.clone()].map(|t| {
        tokio::spawn(common::moving::writer(
            t,
            "acme",
            sa.id,
            counter,
            stop.clone(),
        ))
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let moved = tenancy
        .move_tenant_with(
            &su,
            row.id,
            Placement::OwnSchema,
            tenancy::MoveOptions::default().hold_fence(std::time::Duration::from_millis(300)),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.push(w.await.unwrap());
    }
    assert_eq!(
        (moved.from, moved.to, moved.server.as_str()),
        (Placement::SharedTable, Placement::OwnSchema, "primary")
    );
    assert_eq!(
        (
            moved.old_copy.server.as_deref(),
            moved.old_copy.database.as_deref()
        ),
        (Some("s2"), None)
    );
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let new_copy = spin_ids_at(db.url(), "t_acme.spins", row.id).await;
    let old_copy = spin_ids_at(&home, "public.spins", row.id).await;
    common::moving::acknowledged_writes_are_in_the_new_copy(&acked, &moved, &new_copy, &old_copy);
    assert!(
        new_copy.len() > old_copy.len(),
        "writes went on in the new home"
    );
    let sealed = format!(
        "SELECT count(*) FROM tenancy.tenants WHERE id = '{}' AND moved_at IS NOT NULL",
        row.id
    );
    assert_eq!(
        count_at(&home, &sealed).await,
        1,
        "its line in the home is sealed"
    );

    // A context resolved before the move (its process's cache behind): its write is refused,
    // and lands in neither copy.
    let late = common::moving::new_spin(sa.id, -1);
    assert!(Spin::repo().insert(&stale, &late).await.is_err());
    assert!(
        !spin_ids_at(&home, "public.spins", row.id)
            .await
            .contains(&late.id)
    );
    assert!(
        !spin_ids_at(db.url(), "t_acme.spins", row.id)
            .await
            .contains(&late.id)
    );

    // The neighbour is untouched; the old copy goes from the home only.
    let neighbour_rows = spin_ids_at(&home, "public.spins", neighbour.id).await;
    assert_eq!(neighbour_rows.len(), 7);
    let purged = tenancy.purge_old_copy(&su, row.id).await.unwrap();
    assert!(matches!(purged.as_slice(), [Purged::Rows(_)]), "{purged:?}");
    assert!(spin_ids_at(&home, "public.spins", row.id).await.is_empty());
    assert_eq!(count_at(&home, &sealed).await, 0, "its line is gone");
    assert_eq!(
        spin_ids_at(&home, "public.spins", neighbour.id).await,
        neighbour_rows
    );
    let now = tenancy.resolve_id(row.id).await.unwrap();
    assert_eq!(
        Spin::repo().query().fetch_all(&now).await.unwrap().len(),
        new_copy.len()
    );
    second.close().await;
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// Out of a home into the registry's shared tables (the same placement, another server), then
/// purged: the tenant's purge removes its old rows from the home too.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_tenant_moves_from_a_home_to_the_registrys_shared_tables(db: TestTenancy) {
    let Some(urls) = server_urls("server_homes_move_shared") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "move to shared").await.unwrap();
    tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    let row = tenancy
        .create_tenant(shared_on("globex", "s3"))
        .await
        .unwrap();
    let ctx = tenancy.resolve_id(row.id).await.unwrap();
    common::moving::fill(&ctx, 20).await;
    let moved = tenancy
        .move_tenant(&su, row.id, Placement::SharedTable)
        .await
        .unwrap();
    assert_eq!(moved.rows(), 21);
    let now = tenancy.tenant(&su, row.id).await.unwrap();
    assert_eq!(
        (now.placement, now.server.as_str()),
        (Placement::SharedTable, "primary")
    );
    let ctx = tenancy.resolve_id(row.id).await.unwrap();
    assert_eq!(
        Spin::repo().query().fetch_all(&ctx).await.unwrap().len(),
        20
    );
    assert_eq!(
        spin_ids_at(db.url(), "public.spins", row.id).await.len(),
        20
    );
    let home = url_of(&urls.1, &home_name(&tag, "s3"));
    assert_eq!(spin_ids_at(&home, "public.spins", row.id).await.len(), 20);
    // Moving it again onto the shared tables it lives on is refused.
    assert!(matches!(
        tenancy
            .move_tenant(&su, row.id, Placement::SharedTable)
            .await,
        Err(Error::MoveRefused { .. })
    ));
    tenancy.soft_delete(&su, row.id).await.unwrap();
    tenancy.purge(&su, row.id).await.unwrap();
    assert!(spin_ids_at(&home, "public.spins", row.id).await.is_empty());
    assert!(
        spin_ids_at(db.url(), "public.spins", row.id)
            .await
            .is_empty()
    );
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// Out of a home into a database of its own on a third server: the rows are copied by tenant,
/// the line sealed, the neighbour untouched, the old rows purged from the home only; then back
/// into the home from its database.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_tenant_moves_from_a_home_into_a_database_of_its_own(db: TestTenancy) {
    let Some(urls) = server_urls("server_homes_move_database") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy
        .superuser("test", "move to a database")
        .await
        .unwrap();
    let row = tenancy
        .create_tenant(shared_on("initech", "s2"))
        .await
        .unwrap();
    let neighbour = tenancy
        .create_tenant(shared_on("hooli", "s2"))
        .await
        .unwrap();
    let ctx = tenancy.resolve_id(row.id).await.unwrap();
    common::moving::fill(&ctx, 40).await;
    common::moving::fill(&tenancy.resolve_id(neighbour.id).await.unwrap(), 5).await;
    let moved = tenancy
        .move_tenant_with(
            &su,
            row.id,
            Placement::OwnDatabase,
            tenancy::MoveOptions::default().server("s3"),
        )
        .await
        .unwrap();
    assert_eq!(moved.rows(), 41);
    assert_eq!(
        (moved.server.as_str(), moved.to),
        ("s3", Placement::OwnDatabase)
    );
    let database = moved.database.clone().unwrap();
    let new_home = url_of(&urls.1, &database);
    assert_eq!(
        spin_ids_at(&new_home, "public.spins", row.id).await.len(),
        40
    );
    // Only its rows went: the new database holds no neighbour's.
    assert!(
        spin_ids_at(&new_home, "public.spins", neighbour.id)
            .await
            .is_empty()
    );
    // The context resolved before the move cannot write to the home any more.
    let late = common::moving::new_spin(Uuid::new_v4(), -1);
    assert!(Spin::repo().insert(&ctx, &late).await.is_err());
    let now = tenancy.resolve_id(row.id).await.unwrap();
    assert_eq!(
        Spin::repo().query().fetch_all(&now).await.unwrap().len(),
        40
    );
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    assert_eq!(spin_ids_at(&home, "public.spins", row.id).await.len(), 40);
    tenancy.purge_old_copy(&su, row.id).await.unwrap();
    assert!(spin_ids_at(&home, "public.spins", row.id).await.is_empty());
    assert_eq!(
        spin_ids_at(&home, "public.spins", neighbour.id).await.len(),
        5
    );

    // And back from its database into s2's home, beside the neighbour.
    let back = tenancy
        .move_tenant_with(
            &su,
            row.id,
            Placement::SharedTable,
            tenancy::MoveOptions::default().server("s2"),
        )
        .await
        .unwrap();
    assert_eq!(back.rows(), 41);
    assert_eq!(back.old_copy.database.as_deref(), Some(database.as_str()));
    assert_eq!(spin_ids_at(&home, "public.spins", row.id).await.len(), 40);
    assert_eq!(
        spin_ids_at(&home, "public.spins", neighbour.id).await.len(),
        5
    );
    let now = tenancy.resolve_id(row.id).await.unwrap();
    assert_eq!(
        Spin::repo().query().fetch_all(&now).await.unwrap().len(),
        40
    );
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// From the registry's shared tables into s2's home while two processes write it: every
/// acknowledged write is in the home, a context resolved before cannot write to the registry's
/// shared tables afterwards (the registry's fence names its server), and `purge_old_copy`
/// deletes the old rows from the registry's shared tables only.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_tenant_moves_from_the_registrys_shared_tables_into_a_home_under_writes(db: TestTenancy) {
    let Some(urls) = server_urls("server_homes_move_in") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let second = builder(&urls)
        .max_connections(4)
        .connect(db.url())
        .await
        .unwrap();
    let su = tenancy.superuser("test", "move into a home").await.unwrap();
    tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    let row = tenancy
        .create_tenant(shared_on("acme", "primary"))
        .await
        .unwrap();
    let stays = tenancy
        .create_tenant(shared_on("stays", "primary"))
        .await
        .unwrap();
    let a = tenancy.resolve_id(row.id).await.unwrap();
    let sa = common::moving::fill(&a, 300).await;
    common::moving::fill(&tenancy.resolve_id(stays.id).await.unwrap(), 3).await;
    let counter = Spin::repo()
        .insert(&a, &common::moving::new_spin(sa.id, 0))
        .await
        .unwrap()
        .id;
    let stale = second.resolve_id(row.id).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers = [tenancy.clone(), second.clone()].map(|t| {
        tokio::spawn(common::moving::writer(
            t,
            "acme",
            sa.id,
            counter,
            stop.clone(),
        ))
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let moved = tenancy
        .move_tenant_with(
            &su,
            row.id,
            Placement::SharedTable,
            tenancy::MoveOptions::default()
                .server("s2")
                .hold_fence(std::time::Duration::from_millis(300)),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.push(w.await.unwrap());
    }
    assert_eq!(
        (moved.to, moved.server.as_str(), moved.database.as_deref()),
        (Placement::SharedTable, "s2", None)
    );
    let now = tenancy.tenant(&su, row.id).await.unwrap();
    assert_eq!((now.server.as_str(), now.database.as_deref()), ("s2", None));
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let new_copy = spin_ids_at(&home, "public.spins", row.id).await;
    let old_copy = spin_ids_at(db.url(), "public.spins", row.id).await;
    common::moving::acknowledged_writes_are_in_the_new_copy(&acked, &moved, &new_copy, &old_copy);
    assert!(
        new_copy.len() > old_copy.len(),
        "writes went on in the home"
    );

    // The stale context writes to the registry's shared tables: refused, lands nowhere.
    let late = common::moving::new_spin(sa.id, -1);
    match Spin::repo().insert(&stale, &late).await {
        Err(Error::TenantMoved(_) | Error::ContextRevoked { .. }) => {}
        other => panic!("expected the stale write refused as moved, got {other:?}"),
    }
    assert!(
        !spin_ids_at(db.url(), "public.spins", row.id)
            .await
            .contains(&late.id)
    );
    assert!(
        !spin_ids_at(&home, "public.spins", row.id)
            .await
            .contains(&late.id)
    );

    // Back onto the registry's shared tables is refused while the old copy is there.
    assert!(matches!(
        tenancy
            .move_tenant(&su, row.id, Placement::SharedTable)
            .await,
        Err(Error::MoveRefused { .. })
    ));
    tenancy.purge_old_copy(&su, row.id).await.unwrap();
    assert!(
        spin_ids_at(db.url(), "public.spins", row.id)
            .await
            .is_empty()
    );
    assert_eq!(
        spin_ids_at(db.url(), "public.spins", stays.id).await.len(),
        3
    );
    assert_eq!(spin_ids_at(&home, "public.spins", row.id).await, new_copy);
    second.close().await;
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// From an own schema into s2's home, then from there into s3's, a leftover of a cut-off run
/// waiting in s3's home: the leftover goes, the copy is the tenant's rows exactly, and each
/// old copy is purged where it is.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_tenant_moves_from_its_schema_into_a_home_and_on_to_another_servers_home(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("server_homes_move_between_homes") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "between homes").await.unwrap();
    let row = tenancy
        .create_tenant(NewTenant::new("wonka", "Wonka").placement(Placement::OwnSchema))
        .await
        .unwrap();
    let ctx = tenancy.resolve_id(row.id).await.unwrap();
    common::moving::fill(&ctx, 25).await;
    let to = |server: &str| tenancy::MoveOptions::default().server(server);
    let first = tenancy
        .move_tenant_with(&su, row.id, Placement::SharedTable, to("s2"))
        .await
        .unwrap();
    assert_eq!(first.rows(), 26);
    // The old schema was renamed: the context resolved before cannot write there.
    assert!(
        Spin::repo()
            .insert(&ctx, &common::moving::new_spin(Uuid::new_v4(), 1))
            .await
            .is_err()
    );
    tenancy.purge_old_copy(&su, row.id).await.unwrap();

    // A cut-off run into s3's home left a line and a row there.
    let neighbour = tenancy
        .create_tenant(shared_on("neighbour", "s3"))
        .await
        .unwrap();
    common::moving::fill(&tenancy.resolve_id(neighbour.id).await.unwrap(), 2).await;
    let home3 = url_of(&urls.1, &home_name(&tag, "s3"));
    exec_at(
        &home3,
        &format!(
            "INSERT INTO tenancy.tenants (id, slug) VALUES ('{0}', 'wonka'); \
             INSERT INTO spinners (tenant_id, id, name) VALUES ('{0}', gen_random_uuid(), 'stale')",
            row.id
        ),
    )
    .await;
    let second = tenancy
        .move_tenant_with(&su, row.id, Placement::SharedTable, to("s3"))
        .await
        .unwrap();
    assert_eq!(second.rows(), 26);
    assert_eq!(second.old_copy.server.as_deref(), Some("s2"));
    let now = tenancy.resolve_id(row.id).await.unwrap();
    let names: Vec<String> = Spinner::repo()
        .query()
        .fetch_all(&now)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        names,
        ["main"],
        "the leftover's row is gone, the tenant's are there"
    );
    assert_eq!(
        spin_ids_at(&home3, "public.spins", neighbour.id)
            .await
            .len(),
        2
    );
    let home2 = url_of(&urls.0, &home_name(&tag, "s2"));
    assert_eq!(spin_ids_at(&home2, "public.spins", row.id).await.len(), 25);
    tenancy.purge_old_copy(&su, row.id).await.unwrap();
    assert!(spin_ids_at(&home2, "public.spins", row.id).await.is_empty());
    assert_eq!(spin_ids_at(&home3, "public.spins", row.id).await.len(), 25);
    // Onto the home it lives in: refused.
    assert!(matches!(
        tenancy
            .move_tenant_with(&su, row.id, Placement::SharedTable, to("s3"))
            .await,
        Err(Error::MoveRefused { .. })
    ));
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// Reports over tenants of the registry's server and of two homes: ordered and limited, each
/// home read by one statement over its tenants, and aggregated per tenant, equal to what each
/// tenant's own context reads.
#[tenancy::test(migrations = "tests/migrations")]
async fn reports_read_each_home_once_and_agree_with_every_tenants_own_reads(db: TestTenancy) {
    let Some(urls) = server_urls("server_homes_reports") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "reports").await.unwrap();
    tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    let mut expected: Vec<(tenancy::TenantId, i32)> = Vec::new();
    let mut counts = Vec::new();
    for (i, (slug, server)) in [
        ("r-here", "primary"),
        ("r-two-a", "s2"),
        ("r-two-b", "s2"),
        ("r-two-c", "s2"),
        ("r-three", "s3"),
    ]
    .into_iter()
    .enumerate()
    {
        let row = tenancy
            .create_tenant(shared_on(slug, server))
            .await
            .unwrap();
        let ctx = tenancy.resolve_id(row.id).await.unwrap();
        let s = common::moving::spinner(&ctx, "main").await;
        let n = 3 + i;
        for d in 0..n {
            let duration = (d * 10 + i) as i32;
            Spin::repo()
                .insert(&ctx, &common::moving::new_spin(s.id, duration))
                .await
                .unwrap();
            expected.push((row.id, duration));
        }
        counts.push((row.id, n as i64));
    }
    expected.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
    let top: Vec<(tenancy::TenantId, i32)> = Spin::repo()
        .report()
        .order_by(Spin::DURATION.desc())
        .limit(7)
        .fetch_all(&su)
        .await
        .unwrap()
        .into_iter()
        .map(|(t, s)| (t, s.duration))
        .collect();
    assert_eq!(top, expected[..7]);
    let count = Spin::repo()
        .report()
        .aggregate(tenancy::Agg::count())
        .fetch(&su)
        .await
        .unwrap();
    counts.sort();
    assert_eq!(count.overall, counts.iter().map(|(_, n)| n).sum::<i64>());
    assert_eq!(count.per_tenant, counts);
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// Two moves the opposite ways between the same two homes, at once, a few times over: each
/// takes both homes' migration locks, in one order, so neither waits for the other across
/// servers (where no deadlock detector would break the wait): both finish.
#[tenancy::test(migrations = "tests/migrations")]
async fn opposite_moves_between_two_homes_at_once_both_finish(db: TestTenancy) {
    let Some(urls) = server_urls("server_homes_opposite_moves") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "opposite moves").await.unwrap();
    let a = tenancy
        .create_tenant(shared_on("left", "s2"))
        .await
        .unwrap();
    let b = tenancy
        .create_tenant(shared_on("right", "s3"))
        .await
        .unwrap();
    for id in [a.id, b.id] {
        common::moving::fill(&tenancy.resolve_id(id).await.unwrap(), 50).await;
    }
    let to = |server: &str| {
        tenancy::MoveOptions::default()
            .server(server)
            .hold_fence(std::time::Duration::from_millis(100))
    };
    let homes = [
        url_of(&urls.0, &home_name(&tag, "s2")),
        url_of(&urls.1, &home_name(&tag, "s3")),
    ];
    let (mut here_a, mut here_b) = ("s2", "s3");
    for _ in 0..3 {
        // Both homes' migration locks held (a migration running on each), then let go at
        // once: both moves are then waiting for their first lock together, the case where two
        // orders would each take one and wait forever for the other.
        let mut held = Vec::new();
        for url in &homes {
            let mut conn = PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql(
                "BEGIN; SELECT pg_advisory_xact_lock(hashtext('tenancy.migrate'), \
                 hashtext('schema:public'))",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            held.push(conn);
        }
        let release = async {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            for mut conn in held {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        };
        let both = async {
            tokio::join!(
                tenancy.move_tenant_with(&su, a.id, Placement::SharedTable, to(here_b)),
                tenancy.move_tenant_with(&su, b.id, Placement::SharedTable, to(here_a)),
                release,
            )
        };
        let (x, y, ()) = tokio::time::timeout(std::time::Duration::from_secs(60), both)
            .await
            .expect("two opposite moves waited for each other");
        assert_eq!(x.unwrap().rows(), 51);
        assert_eq!(y.unwrap().rows(), 51);
        for id in [a.id, b.id] {
            tenancy.purge_old_copy(&su, id).await.unwrap();
        }
        (here_a, here_b) = (here_b, here_a);
    }
    for id in [a.id, b.id] {
        let ctx = tenancy.resolve_id(id).await.unwrap();
        assert_eq!(
            Spin::repo().query().fetch_all(&ctx).await.unwrap().len(),
            50
        );
    }
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// A move out of a home whose server is then gone: `forget_old_copy` forgets the old rows
/// there (the tenant's purge is no longer blocked), and when the server is mapped again the
/// cleanup removes the sealed line and its rows, never the neighbour's.
#[tenancy::test(migrations = "tests/migrations")]
async fn an_old_copy_in_a_home_on_a_server_that_is_gone_is_forgotten_then_cleaned_up(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("server_homes_forget") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "forget").await.unwrap();
    tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    let row = tenancy
        .create_tenant(shared_on("gone-away", "s2"))
        .await
        .unwrap();
    let neighbour = tenancy
        .create_tenant(shared_on("stays-put", "s2"))
        .await
        .unwrap();
    common::moving::fill(&tenancy.resolve_id(row.id).await.unwrap(), 4).await;
    common::moving::fill(&tenancy.resolve_id(neighbour.id).await.unwrap(), 2).await;
    tenancy
        .move_tenant(&su, row.id, Placement::SharedTable)
        .await
        .unwrap();
    tenancy.close().await;
    // A handle that no longer maps s2.
    let without = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .server("s3", options(&urls.1))
        .connect(db.url())
        .await
        .unwrap();
    let su = without.superuser("test", "s2 is gone").await.unwrap();
    assert!(matches!(
        without.purge_old_copy(&su, row.id).await,
        Err(Error::UnknownServer { .. })
    ));
    let forgotten = without.forget_old_copy(&su, row.id, "s2").await.unwrap();
    assert_eq!(forgotten, ["shared rows in the home of server s2"]);
    assert!(
        without
            .purge_old_copy(&su, row.id)
            .await
            .unwrap()
            .is_empty()
    );
    without.close().await;
    // s2 mapped again: connecting runs the cleanup.
    let (again, _) = connected(&db, &urls).await;
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    assert!(spin_ids_at(&home, "public.spins", row.id).await.is_empty());
    assert_eq!(
        spin_ids_at(&home, "public.spins", neighbour.id).await.len(),
        2
    );
    let line = format!(
        "SELECT count(*) FROM tenancy.tenants WHERE id = '{}'",
        row.id
    );
    assert_eq!(count_at(&home, &line).await, 0);
    let ctx = again.resolve_id(row.id).await.unwrap();
    assert_eq!(Spin::repo().query().fetch_all(&ctx).await.unwrap().len(), 4);
    again.close().await;
    drop_extra(&urls, &tag).await;
}

/// The registry ids placed on server `server`'s shared tables, and the lines its home has.
async fn placed_and_listed(
    db: &TestTenancy,
    home: &str,
    server: &str,
) -> (
    std::collections::BTreeSet<Uuid>,
    std::collections::BTreeSet<Uuid>,
) {
    let mut registry = db.connect().await;
    let placed: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM tenancy.tenants WHERE placement = 'shared_table' AND server = $1",
    )
    .bind(server)
    .fetch_all(&mut registry)
    .await
    .unwrap();
    let listed: Vec<Uuid> = match PgConnection::connect(home).await {
        Ok(mut conn) => sqlx::query_scalar("SELECT id FROM tenancy.tenants")
            .fetch_all(&mut conn)
            .await
            .unwrap(),
        // Not made yet: a first creation cut off before the home was renamed into place.
        Err(_) => Vec::new(),
    };
    (placed.into_iter().collect(), listed.into_iter().collect())
}

/// A creation into a home cut off at every await in turn: afterwards the registry has the
/// tenant whole or not at all, and once the cleanup ran the home lists exactly the tenants
/// the registry places there (no line without its row, none missing).
#[tenancy::test(migrations = "tests/migrations")]
async fn a_creation_into_a_home_cancelled_at_any_await_leaves_nothing_half_made(db: TestTenancy) {
    let Some(urls) = server_urls("server_homes_cancelled_creation") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy
        .superuser("test", "cancelled creation")
        .await
        .unwrap();
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let mut conn = db.connect().await;
    let mut k = 1;
    loop {
        let slug = format!("cut-{k}");
        let out =
            tenancy::testing::cancel_at(k, tenancy.create_tenant(shared_on(&slug, "s2"))).await;
        if let Some(created) = out {
            let row = created.unwrap();
            let ctx = tenancy.resolve_id(row.id).await.unwrap();
            spin(&ctx, Uuid::new_v4(), "whole").await;
            assert_eq!(names(&ctx).await, ["whole"]);
            break;
        }
        common::no_transaction_left_open(&mut conn).await;
        tenancy.cleanup_orphans(&su).await.unwrap();
        let (placed, listed) = placed_and_listed(&db, &home, "s2").await;
        assert_eq!(placed, listed, "cancelled at await {k}");
        // A tenant the cut-off creation did register is whole: it resolves and is served.
        for id in &placed {
            let ctx = tenancy
                .resolve_id(tenancy::TenantId::from_uuid(*id))
                .await
                .unwrap();
            assert!(names(&ctx).await.is_empty(), "await {k}");
        }
        k += 1;
        assert!(k < 500, "the creation never finished");
    }
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// A move from the registry's shared tables into a home cut off at every await in turn: the
/// tenant stays whole where the registry says it lives, writable there, and the run that
/// finishes copies its rows exactly once, whatever the cut-off runs left in the home.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_move_into_a_home_cancelled_at_any_await_leaves_the_tenant_whole(db: TestTenancy) {
    let Some(urls) = server_urls("server_homes_cancelled_move") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "cancelled move").await.unwrap();
    tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    let row = tenancy
        .create_tenant(shared_on("acme", "primary"))
        .await
        .unwrap();
    let ctx = tenancy.resolve_id(row.id).await.unwrap();
    let s = common::moving::fill(&ctx, 6).await;
    let mut rows = 6usize;
    let mut conn = db.connect().await;
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let to = tenancy::MoveOptions::default().server("s2");
    let mut k = 1;
    loop {
        let out = tenancy::testing::cancel_at(
            k,
            tenancy.move_tenant_with(&su, row.id, Placement::SharedTable, to.clone()),
        )
        .await;
        if let Some(moved) = out {
            assert_eq!(moved.unwrap().rows(), rows as u64 + 1);
            break;
        }
        common::no_transaction_left_open(&mut conn).await;
        let now = tenancy.tenant(&su, row.id).await.unwrap();
        if now.server == "s2" {
            break; // cut off with its commit on the wire, or after
        }
        assert_eq!(
            spin_ids_at(db.url(), "public.spins", row.id).await.len(),
            rows,
            "the rows are whole on the registry's shared tables at await {k}"
        );
        // Still served there, and writable once the cut-off run let go.
        let fresh = tenancy.resolve_id(row.id).await.unwrap();
        tenancy::testing::eventually(
            "the cancelled move lets go",
            std::time::Duration::from_secs(30),
            async || {
                Spin::repo()
                    .insert(&fresh, &common::moving::new_spin(s.id, 1000 + k as i32))
                    .await
                    .is_ok()
            },
        )
        .await;
        rows += 1;
        k += 1;
        assert!(k < 500, "the move never finished");
    }
    // Writable in its new home, also after a run cut off between its switch and its line
    // going live (the first write refused makes the line live; no cleanup runs here).
    let now = tenancy.resolve_id(row.id).await.unwrap();
    tenancy::testing::eventually(
        "the moved tenant takes writes",
        std::time::Duration::from_secs(30),
        async || {
            Spin::repo()
                .insert(&now, &common::moving::new_spin(s.id, 9999))
                .await
                .is_ok()
        },
    )
    .await;
    rows += 1;
    let in_home = spin_ids_at(&home, "public.spins", row.id).await;
    assert_eq!(in_home.len(), rows, "every row exactly once in the home");
    assert_eq!(
        Spin::repo().query().fetch_all(&now).await.unwrap().len(),
        rows
    );
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// One tenant of a home holds at most its share of the home's connections (`per_database` of
/// `database_budget`): a second unit of a tenant at its share waits, then is told the tenant is
/// busy, while the home's other tenants are served from the rest; its share back, it is served.
/// A report across them takes no tenant's share.
#[tenancy::test(migrations = "tests/migrations")]
async fn one_tenant_of_a_home_holds_at_most_its_share_of_the_homes_connections(db: TestTenancy) {
    let Some(urls) = server_urls("server_homes_share") else {
        return;
    };
    let tenancy = builder(&urls)
        .database_budget(3, 1)
        .acquire_timeout(std::time::Duration::from_millis(1500))
        .connect(db.url())
        .await
        .unwrap();
    let su = tenancy.superuser("test", "share").await.unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    let tag: String = sqlx::query_scalar("SELECT tag FROM tenancy.deployment")
        .fetch_one(&mut db.connect().await)
        .await
        .unwrap();
    let a = tenancy.create_tenant(shared_on("aa", "s2")).await.unwrap();
    let b = tenancy.create_tenant(shared_on("bb", "s2")).await.unwrap();
    let ctx_a = tenancy.resolve_id(a.id).await.unwrap();
    let ctx_b = tenancy.resolve_id(b.id).await.unwrap();
    let held = ctx_a.begin().await.unwrap();
    match ctx_a.begin().await {
        Err(Error::TenantBusy {
            tenant,
            per_database,
            ..
        }) => assert_eq!((tenant, per_database), (a.id, 1)),
        Err(e) => panic!("expected TenantBusy, got {e}"),
        Ok(_) => panic!("tenant a held two of the home's connections, over its share of one"),
    }
    spin(&ctx_b, Uuid::new_v4(), "b's").await;
    assert_eq!(names(&ctx_b).await, ["b's"]);
    held.rollback().await.unwrap();
    spin(&ctx_a, Uuid::new_v4(), "a's").await;
    assert_eq!(names(&ctx_a).await, ["a's"]);
    // A report across the home's tenants takes no tenant's share: it runs while each holds
    // its whole share.
    let held = (ctx_a.begin().await.unwrap(), ctx_b.begin().await.unwrap());
    let rows = Spinner::repo().report().fetch_all(&su).await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    held.0.rollback().await.unwrap();
    held.1.rollback().await.unwrap();
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// The tenants of one home share its connections: used one after another, eight tenants are
/// served by one connection (each checked to be listed there once), not one each; and every
/// tenant still reads only its own rows on it.
#[tenancy::test(migrations = "tests/migrations")]
async fn the_tenants_of_a_home_share_its_connections(db: TestTenancy) {
    let Some(urls) = server_urls("server_homes_shared_connections") else {
        return;
    };
    let tenancy = builder(&urls)
        .database_budget(10, 2)
        .connect(db.url())
        .await
        .unwrap();
    let su = tenancy.superuser("test", "share").await.unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    let tag = tag_of(&db).await;
    let mut ctxs = Vec::new();
    for i in 0..8 {
        let row = tenancy
            .create_tenant(shared_on(&format!("share-{i}"), "s2"))
            .await
            .unwrap();
        ctxs.push((
            tenancy.resolve_id(row.id).await.unwrap(),
            format!("share-{i}"),
        ));
    }
    for round in 0..3 {
        for (ctx, slug) in &ctxs {
            spin(ctx, Uuid::new_v4(), &format!("{slug}-{round}")).await;
        }
    }
    for (ctx, slug) in &ctxs {
        let expected: Vec<String> = (0..3).map(|r| format!("{slug}-{r}")).collect();
        assert_eq!(names(ctx).await, expected);
    }
    let home = home_name(&tag, "s2");
    let open = count_at(
        &urls.0,
        &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{home}'"),
    )
    .await;
    assert_eq!(open, 1, "eight tenants used in turn share one connection");
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// A home connection whose backend was killed (a server restart, an idle timeout) is closed by
/// the unit it failed, never lent again: the unit after it gets a new connection.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_home_connection_whose_backend_died_is_not_lent_again(db: TestTenancy) {
    let Some(urls) = server_urls("server_homes_dead_connection") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let a = tenancy
        .create_tenant(shared_on("alive", "s2"))
        .await
        .unwrap();
    let b = tenancy
        .create_tenant(shared_on("also", "s2"))
        .await
        .unwrap();
    let ctx_a = tenancy.resolve_id(a.id).await.unwrap();
    let ctx_b = tenancy.resolve_id(b.id).await.unwrap();
    spin(&ctx_a, Uuid::new_v4(), "a").await;
    spin(&ctx_b, Uuid::new_v4(), "b").await;
    let home = home_name(&tag, "s2");
    for round in 0..3 {
        // The idle connections' backends go away under them.
        let killed = count_at(
            &urls.0,
            &format!(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{home}') k"
            ),
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // Each unit that meets a dead connection may fail, and closes it: at most one failure
        // a killed connection, then every unit is served.
        let mut failed = 0;
        for ctx in [&ctx_a, &ctx_b]
            .into_iter()
            .cycle()
            .take(killed as usize + 1)
        {
            if Spinner::repo().query().fetch_all(ctx).await.is_err() {
                failed += 1;
            }
        }
        assert!(
            failed <= killed,
            "round {round}: {failed} failures, {killed} killed"
        );
        for _ in 0..3 {
            assert_eq!(names(&ctx_b).await, ["b"], "round {round}");
            assert_eq!(names(&ctx_a).await, ["a"], "round {round}");
        }
    }
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// A page that fails to decode on its first row leaves 399 rows unread on a leased connection
/// of a server home with a budget of one: the home's next tenant, served on that same
/// connection, reads its own two rows and nothing of them; the failing tenant then reads its
/// 400, complete.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_page_that_fails_to_decode_leaves_nothing_on_a_homes_one_connection(db: TestTenancy) {
    use common::picky::*;
    let Some(urls) = server_urls("server_homes_decode_failure") else {
        return;
    };
    let tenancy = builder(&urls)
        .database_budget(1, 1)
        .connect(db.url())
        .await
        .unwrap();
    let su = tenancy.superuser("test", "decode failure").await.unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    let tag = tag_of(&db).await;
    let a = tenancy.create_tenant(shared_on("pa", "s2")).await.unwrap();
    let b = tenancy.create_tenant(shared_on("pb", "s2")).await.unwrap();
    let failing = tenancy.resolve_id(a.id).await.unwrap();
    let next = tenancy.resolve_id(b.id).await.unwrap();
    for name in poisoned_names() {
        spin(&failing, Uuid::new_v4(), &name).await;
    }
    for name in ["b1", "b2"] {
        spin(&next, Uuid::new_v4(), name).await;
    }
    for _ in 0..2 {
        let page = PickySpinner::repo()
            .query()
            .order_by(PickySpinner::NAME.desc())
            .fetch_all(&failing)
            .await;
        assert!(
            matches!(page, Err(Error::Database(sqlx::Error::ColumnDecode { .. }))),
            "{page:?}"
        );
        assert_eq!(names(&next).await, ["b1", "b2"]);
        assert_eq!(names(&failing).await.len(), 400);
    }
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}
