//! Own-database tenants spread over three PostgreSQL servers: the registry's (primary) and the
//! two that `scripts/pg-servers` starts (`TENANCY_SERVER2_URL`, `TENANCY_SERVER3_URL`). Each
//! tenant's database is made on its server, its rows stay there, migrations and reports span
//! the servers, purge drops the database on its server, and a tenant on a server the handle
//! cannot reach is refused, never served from another one.
//!
//! Without the URLs each test says so and returns, unless `CI` is set: then it fails.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::models::*;
use common::moving::{acknowledged_writes_are_in_the_new_copy, fill, new_spin, writer};
use common::servers::*;
use sqlx::{Connection, PgConnection};
use tenancy::testing::{TestTenancy, cancel_at, eventually};
use tenancy::{
    AuditQuery, Error, MigrateOptions, MigrationTarget, Migrations, MoveOptions, NewTenant,
    Outcome, Placement, Purged, Tenancy,
};
use uuid::Uuid;

#[tenancy::test(migrations = "tests/migrations")]
async fn tenants_on_three_servers_keep_to_their_own_and_are_reported_together(db: TestTenancy) {
    let Some(urls) = server_urls("tenants_on_three_servers") else {
        return;
    };
    let tenancy = builder(&urls).connect(db.url()).await.unwrap();
    let tag = tag_of(&db).await;
    let su = tenancy.superuser("test", "servers").await.unwrap();
    assert!(tenancy.add_server(&su, "s2").await.unwrap());
    assert!(tenancy.add_server(&su, "s3").await.unwrap());
    assert!(!tenancy.add_server(&su, "s3").await.unwrap(), "listed once");

    let rows = [
        tenancy
            .create_tenant(own_db("on-primary", "primary"))
            .await
            .unwrap(),
        tenancy.create_tenant(own_db("on-two", "s2")).await.unwrap(),
        tenancy
            .create_tenant(own_db("on-three", "s3"))
            .await
            .unwrap(),
    ];
    let servers: Vec<&str> = rows.iter().map(|t| t.server.as_str()).collect();
    assert_eq!(servers, ["primary", "s2", "s3"]);
    // Each database is on its server, and only there.
    let primary_url = tenancy::testing::server_url();
    for (row, url) in rows.iter().zip([&primary_url, &urls.0, &urls.1]) {
        let name = row.database.clone().unwrap();
        for other in [&primary_url, &urls.0, &urls.1] {
            let here = databases_on(other, &tag).await.contains(&name);
            assert_eq!(here, other == url, "{name} on {other}");
        }
    }

    // The same row id in every tenant: each sees its own row only.
    let same = Uuid::new_v4();
    let mut ctxs = Vec::new();
    for slug in ["on-primary", "on-two", "on-three"] {
        let ctx = tenancy.resolve_slug(slug).await.unwrap();
        Spinner::repo()
            .insert(
                &ctx,
                &NewSpinner {
                    id: same,
                    name: slug.into(),
                    color: None,
                },
            )
            .await
            .unwrap();
        ctxs.push(ctx);
    }
    for (ctx, slug) in ctxs.iter().zip(["on-primary", "on-two", "on-three"]) {
        let all = Spinner::repo().query().fetch_all(ctx).await.unwrap();
        assert_eq!(all.len(), 1, "{slug}: {all:?}");
        assert_eq!((all[0].id, all[0].name.as_str()), (same, slug));
    }
    // The row of the tenant on s2 is in its database on s2.
    let two_db = rows[1].database.clone().unwrap();
    assert_eq!(
        count_at(
            &url_of(&urls.0, &two_db),
            "SELECT count(*) FROM public.spinners WHERE name = 'on-two'"
        )
        .await,
        1
    );

    // A report merges the tenants of every server.
    let mut all = Spinner::repo().report().fetch_all(&su).await.unwrap();
    all.sort_by_key(|(_, r)| r.name.clone());
    let got: Vec<(tenancy::TenantId, &str)> =
        all.iter().map(|(t, r)| (*t, r.name.as_str())).collect();
    assert_eq!(
        got,
        [
            (ctxs[0].id(), "on-primary"),
            (ctxs[2].id(), "on-three"),
            (ctxs[1].id(), "on-two"),
        ]
    );

    // list_servers: every listed key, its tenants, whether this handle maps it.
    let listed = tenancy.list_servers(&su).await.unwrap();
    let summary: Vec<(&str, i64, bool)> = listed
        .iter()
        .map(|s| (s.key.as_str(), s.tenants, s.mapped))
        .collect();
    assert_eq!(
        summary,
        [("primary", 1, true), ("s2", 1, true), ("s3", 1, true)]
    );
    let audit = async |action: &'static str| {
        tenancy
            .audit_log(
                &su,
                AuditQuery {
                    action: Some(action.into()),
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap()
    };
    let adds: Vec<Option<String>> = audit("server.add")
        .await
        .into_iter()
        .map(|r| r.detail)
        .collect();
    assert_eq!(
        adds,
        [
            Some("s3 (already listed)".to_owned()),
            Some("s3".to_owned()),
            Some("s2".to_owned())
        ]
    );
    assert_eq!(audit("server.list").await.len(), 1);

    // Purge on s2 drops that database only.
    let before_three = databases_on(&urls.1, &tag).await;
    tenancy.soft_delete(&su, rows[1].id).await.unwrap();
    let purged = tenancy.purge(&su, rows[1].id).await.unwrap();
    assert_eq!(purged, Purged::Database(two_db.clone()));
    assert!(!databases_on(&urls.0, &tag).await.contains(&two_db));
    assert_eq!(databases_on(&urls.1, &tag).await, before_three);
    for ctx in [&ctxs[0], &ctxs[2]] {
        let ctx = tenancy.resolve_id(ctx.id()).await.unwrap();
        assert_eq!(
            Spinner::repo().query().fetch_all(&ctx).await.unwrap().len(),
            1
        );
    }
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn migrations_span_the_servers_and_one_failing_tenant_fails_alone(db: TestTenancy) {
    let Some(urls) = server_urls("migrations_span_the_servers") else {
        return;
    };
    let v1 = builder(&urls).connect(db.url()).await.unwrap();
    let tag = tag_of(&db).await;
    let su = v1.superuser("test", "servers").await.unwrap();
    v1.add_server(&su, "s2").await.unwrap();
    v1.add_server(&su, "s3").await.unwrap();
    for (slug, server) in [
        ("one", "primary"),
        ("two", "s2"),
        ("three", "s3"),
        ("bad", "s3"),
    ] {
        v1.create_tenant(own_db(slug, server)).await.unwrap();
    }
    v1.close().await;
    // Version 2 fails in `bad`'s database only (a tenant database lists only its tenant).
    let mut list: Vec<tenancy::Migration> = spinner_migrations().iter().cloned().collect();
    list.push(tenancy::Migration::new(
        2,
        "size",
        "DO $$ BEGIN IF (SELECT array_agg(slug) FROM tenancy.tenants) = ARRAY['bad'] THEN \
         RAISE EXCEPTION 'refused in bad'; END IF; END $$; \
         ALTER TABLE spinners ADD COLUMN size int",
    ));
    let v2 = builder(&urls)
        .tenant_migrations(Migrations::from_list(list).unwrap())
        .connect(db.url())
        .await
        .unwrap();
    let su = v2.superuser("test", "migrate").await.unwrap();
    let report = v2
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    let mut outcomes: Vec<(String, String, Outcome)> = report
        .outcomes
        .iter()
        .filter_map(|(t, o)| match t {
            MigrationTarget::Database { slug, server, .. } => {
                Some((slug.clone(), server.clone(), o.clone()))
            }
            _ => None,
        })
        .collect();
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(outcomes.len(), 4, "{report:?}");
    for (slug, server, outcome) in &outcomes {
        match slug.as_str() {
            "bad" => {
                assert_eq!(server, "s3");
                assert!(
                    matches!(outcome, Outcome::Failed(e) if e.message.contains("refused in bad"))
                );
            }
            _ => assert_eq!(outcome, &Outcome::Applied(vec![2]), "{slug} on {server}"),
        }
    }
    let has_size = "SELECT count(*) FROM information_schema.columns \
                    WHERE table_name = 'spinners' AND column_name = 'size'";
    let tenants = v2.list_tenants(&su).await.unwrap();
    let url_for = |slug: &str| {
        let t = tenants.iter().find(|t| t.slug == slug).unwrap();
        let base = match t.server.as_str() {
            "s2" => urls.0.clone(),
            "s3" => urls.1.clone(),
            _ => tenancy::testing::server_url(),
        };
        url_of(&base, t.database.as_deref().unwrap())
    };
    for slug in ["one", "two", "three"] {
        assert_eq!(count_at(&url_for(slug), has_size).await, 1, "{slug}");
    }
    assert_eq!(count_at(&url_for("bad"), has_size).await, 0, "rolled back");
    // Only `bad` is still pending; a tenant made on s2 now is at version 2.
    let pending = v2.pending_migrations(&su).await.unwrap();
    assert!(
        matches!(&pending[..], [(MigrationTarget::Database { slug, .. }, v)] if slug == "bad" && v == &vec![2]),
        "{pending:?}"
    );
    let fresh = v2.create_tenant(own_db("fresh", "s2")).await.unwrap();
    assert_eq!(
        count_at(
            &url_of(&urls.0, fresh.database.as_deref().unwrap()),
            has_size
        )
        .await,
        1
    );
    v2.close().await;
    drop_extra(&urls, &tag).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_tenant_on_a_server_the_handle_cannot_reach_is_refused(db: TestTenancy) {
    let Some(urls) = server_urls("a_tenant_on_an_unknown_server") else {
        return;
    };
    let full = builder(&urls).connect(db.url()).await.unwrap();
    let tag = tag_of(&db).await;
    let su = full.superuser("test", "servers").await.unwrap();
    full.add_server(&su, "s2").await.unwrap();
    full.add_server(&su, "s3").await.unwrap();
    let on_three = full.create_tenant(own_db("far", "s3")).await.unwrap();
    let ctx = full.resolve_slug("far").await.unwrap();
    Spinner::repo()
        .insert(
            &ctx,
            &NewSpinner {
                id: Uuid::new_v4(),
                name: "far".into(),
                color: None,
            },
        )
        .await
        .unwrap();

    // A handle that maps only s2: the tenant on s3 is refused, by slug and by id, with the
    // typed error; it is not looked for on any other server.
    let partial = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .server("s2", options(&urls.0))
        .connect(db.url())
        .await
        .unwrap();
    for got in [
        partial.resolve_slug("far").await,
        partial.resolve_id(on_three.id).await,
    ] {
        match got {
            Err(Error::UnknownServer { server }) => assert_eq!(server, "s3"),
            other => panic!("expected UnknownServer, got {other:?}"),
        }
    }
    let psu = partial.superuser("test", "report").await.unwrap();
    assert!(matches!(
        Spinner::repo().report().fetch_all(&psu).await,
        Err(Error::UnknownServer { server }) if server == "s3"
    ));
    // Purge refuses before anything is deleted: the row and its database stay.
    partial.soft_delete(&psu, on_three.id).await.unwrap();
    assert!(matches!(
        partial.purge(&psu, on_three.id).await,
        Err(Error::UnknownServer { .. })
    ));
    assert!(
        databases_on(&urls.1, &tag)
            .await
            .contains(on_three.database.as_ref().unwrap())
    );
    full.restore(&su, on_three.id).await.unwrap();

    // Creating on a key the handle does not map, or that the registry does not list: refused
    // before anything is made.
    let before: Vec<Vec<String>> = vec![
        databases_on(&urls.0, &tag).await,
        databases_on(&urls.1, &tag).await,
    ];
    assert!(matches!(
        partial.create_tenant(own_db("nope", "s3")).await,
        Err(Error::UnknownServer { server }) if server == "s3"
    ));
    let unlisted = builder(&urls)
        .server("s4", options(&urls.0))
        .connect(db.url())
        .await
        .unwrap();
    assert!(matches!(
        unlisted.create_tenant(own_db("nope", "s4")).await,
        Err(Error::UnknownServer { server }) if server == "s4"
    ));
    // A shared-table or own-schema tenant on an unlisted key (no home is made), and a
    // malformed key: refused too.
    assert!(matches!(
        unlisted.create_tenant(NewTenant::new("nope", "n").server("s4")).await,
        Err(Error::UnknownServer { server }) if server == "s4"
    ));
    assert!(matches!(
        full.create_tenant(own_db("nope", "S 2")).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        unlisted.create_tenant(
            NewTenant::new("nope", "n")
                .placement(Placement::OwnSchema)
                .server("s4")
        )
        .await,
        Err(Error::UnknownServer { server }) if server == "s4"
    ));
    assert!(matches!(
        full.add_server(&su, "postgres://u:p@h/db").await,
        Err(Error::Invalid(_))
    ));
    assert!(
        full.list_tenants(&su)
            .await
            .unwrap()
            .iter()
            .all(|t| t.slug != "nope")
    );
    let after: Vec<Vec<String>> = vec![
        databases_on(&urls.0, &tag).await,
        databases_on(&urls.1, &tag).await,
    ];
    assert_eq!(before, after);
    // Mapping "primary" is refused at connect.
    assert!(
        Tenancy::builder()
            .server("primary", options(&urls.0))
            .connect(db.url())
            .await
            .is_err()
    );
    for t in [full, partial, unlisted] {
        t.close().await;
    }
    drop_extra(&urls, &tag).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn orphan_cleanup_on_another_server_drops_only_this_registrys_leftovers(db: TestTenancy) {
    let Some(urls) = server_urls("orphan_cleanup_on_another_server") else {
        return;
    };
    let tenancy = builder(&urls).connect(db.url()).await.unwrap();
    let tag = tag_of(&db).await;
    let su = tenancy.superuser("test", "servers").await.unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    let kept = tenancy.create_tenant(own_db("kept", "s2")).await.unwrap();
    // What a crash between creating a database and registering it leaves on s2, a database of
    // another registry (another tag) with a tenant-like name, and a bystander.
    let orphan = format!("tenancy_{tag}_{}", Uuid::new_v4().simple());
    let foreign = format!(
        "tenancy_zz{}_{}",
        &tag[..tag.len().min(8)],
        Uuid::new_v4().simple()
    );
    let bystander = format!("bystander_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&urls.0).await.unwrap();
    for name in [&orphan, &foreign, &bystander] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let dropped = tenancy.cleanup_orphans(&su).await.unwrap();
    assert_eq!(dropped, [format!("s2/{orphan}")]);
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname = ANY($1) ORDER BY 1",
    )
    .bind(vec![
        orphan.clone(),
        foreign.clone(),
        bystander.clone(),
        kept.database.clone().unwrap(),
    ])
    .fetch_all(&mut admin)
    .await
    .unwrap();
    let mut expected = vec![bystander.clone(), foreign.clone(), kept.database.unwrap()];
    expected.sort();
    assert_eq!(left, expected);
    for name in [&foreign, &bystander] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    admin.close().await.unwrap();
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_registry_row_pointing_at_another_tenants_database_on_another_server_is_refused(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("identity_check_per_server") else {
        return;
    };
    let tenancy = builder(&urls).connect(db.url()).await.unwrap();
    let tag = tag_of(&db).await;
    let su = tenancy.superuser("test", "servers").await.unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    tenancy.add_server(&su, "s3").await.unwrap();
    let a = tenancy.create_tenant(own_db("alpha", "s2")).await.unwrap();
    let b = tenancy.create_tenant(own_db("beta", "s3")).await.unwrap();
    tenancy.close().await;
    // The registry is edited behind tenancy's back: alpha's row now names beta's database on
    // beta's server (and beta's alpha's), as a botched restore could leave it.
    let mut registry = db.connect().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "BEGIN; \
         UPDATE tenancy.tenants SET database_name = NULL, placement = 'shared_table' \
           WHERE id = '{a}'; \
         UPDATE tenancy.tenants SET database_name = '{ad}', server = 's2' WHERE id = '{b}'; \
         UPDATE tenancy.tenants SET database_name = '{bd}', server = 's3', \
           placement = 'own_database' WHERE id = '{a}'; \
         COMMIT;",
        a = a.id.as_uuid(),
        b = b.id.as_uuid(),
        ad = a.database.as_deref().unwrap(),
        bd = b.database.as_deref().unwrap(),
    )))
    .execute(&mut registry)
    .await
    .unwrap();
    let fresh = builder(&urls).connect(db.url()).await.unwrap();
    for (slug, expected) in [("alpha", a.id), ("beta", b.id)] {
        let ctx = fresh.resolve_slug(slug).await.unwrap();
        match Spinner::repo().query().fetch_all(&ctx).await {
            Err(Error::WrongDatabase { tenant, .. }) => assert_eq!(tenant, expected),
            other => panic!("{slug}: expected WrongDatabase, got {other:?}"),
        }
    }
    fresh.close().await;
    drop_extra(&urls, &tag).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn spares_are_warmed_and_taken_per_server(db: TestTenancy) {
    let Some(urls) = server_urls("spares_per_server") else {
        return;
    };
    let tenancy = builder(&urls).connect(db.url()).await.unwrap();
    let tag = tag_of(&db).await;
    let su = tenancy.superuser("test", "servers").await.unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    assert!(matches!(
        tenancy.warm_databases_on(&su, "s9", 1).await,
        Err(Error::UnknownServer { server }) if server == "s9"
    ));
    assert_eq!(tenancy.warm_databases_on(&su, "s2", 2).await.unwrap(), 2);
    let spares = async |url: &str| {
        databases_on(url, &tag)
            .await
            .into_iter()
            .filter(|d| d.contains("_spare_v"))
            .count()
    };
    assert_eq!(spares(&urls.0).await, 2);
    assert_eq!(
        spares(&tenancy::testing::server_url()).await,
        0,
        "none on primary"
    );
    assert_eq!(spares(&urls.1).await, 0, "none on s3");
    let t = tenancy.create_tenant(own_db("sparse", "s2")).await.unwrap();
    assert_eq!(spares(&urls.0).await, 1, "one spare taken");
    let ctx = tenancy.resolve_id(t.id).await.unwrap();
    assert!(
        Spinner::repo()
            .query()
            .fetch_all(&ctx)
            .await
            .unwrap()
            .is_empty()
    );
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn each_server_has_its_own_connection_budget(db: TestTenancy) {
    let Some(urls) = server_urls("budget_per_server") else {
        return;
    };
    let tenancy = builder(&urls)
        .database_budget(1, 1)
        .acquire_timeout(std::time::Duration::from_millis(400))
        .connect(db.url())
        .await
        .unwrap();
    let tag = tag_of(&db).await;
    let su = tenancy.superuser("test", "servers").await.unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    tenancy.add_server(&su, "s3").await.unwrap();
    for (slug, server) in [
        ("busy", "s2"),
        ("waits", "s2"),
        ("free", "s3"),
        ("home", "primary"),
    ] {
        tenancy.create_tenant(own_db(slug, server)).await.unwrap();
    }
    let busy = tenancy.resolve_slug("busy").await.unwrap();
    let mut tx = busy.begin().await.unwrap();
    Spinner::repo().count(&mut tx).await.unwrap();
    // s2's one connection is held: another tenant on s2 waits, then gets the typed error
    // naming s2; tenants on s3 and the primary server are served from their own budgets.
    let waits = tenancy.resolve_slug("waits").await.unwrap();
    match Spinner::repo().count(&waits).await {
        Err(Error::ServerBusy { server, budget, .. }) => {
            assert_eq!((server.as_str(), budget), ("s2", 1))
        }
        other => panic!("expected ServerBusy on s2, got {other:?}"),
    }
    for slug in ["free", "home"] {
        let ctx = tenancy.resolve_slug(slug).await.unwrap();
        assert_eq!(Spinner::repo().count(&ctx).await.unwrap(), 0, "{slug}");
    }
    tx.commit().await.unwrap();
    assert_eq!(Spinner::repo().count(&waits).await.unwrap(), 0);
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_tenant_moves_from_the_shared_tables_into_a_database_on_another_server(db: TestTenancy) {
    let Some(urls) = server_urls("move_into_a_database_on_another_server") else {
        return;
    };
    let tenancy = builder(&urls).connect(db.url()).await.unwrap();
    let tag = tag_of(&db).await;
    let su = tenancy.superuser("test", "servers").await.unwrap();
    tenancy
        .create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let a = tenancy.resolve_slug("acme").await.unwrap();
    let spinner = Spinner::repo()
        .insert(
            &a,
            &NewSpinner {
                id: Uuid::new_v4(),
                name: "main".into(),
                color: None,
            },
        )
        .await
        .unwrap();
    for d in 0..30 {
        Spin::repo()
            .insert(
                &a,
                &NewSpin {
                    id: Uuid::new_v4(),
                    spinner_id: spinner.id,
                    duration: d,
                    note: None,
                },
            )
            .await
            .unwrap();
    }

    // A server the registry does not list yet is refused before anything is made.
    let unlisted = tenancy
        .move_tenant_with(
            &su,
            a.id(),
            Placement::OwnDatabase,
            tenancy::MoveOptions::default().server("s2"),
        )
        .await;
    assert!(
        matches!(&unlisted, Err(Error::UnknownServer { server }) if server == "s2"),
        "{unlisted:?}"
    );
    assert!(databases_on(&urls.0, &tag).await.is_empty());

    tenancy.add_server(&su, "s2").await.unwrap();
    let moved = tenancy
        .move_tenant_with(
            &su,
            a.id(),
            Placement::OwnDatabase,
            tenancy::MoveOptions::default().server("s2"),
        )
        .await
        .unwrap();
    assert_eq!(moved.server, "s2");
    assert_eq!(moved.rows(), 31);
    let database = moved.database.clone().unwrap();
    assert_eq!(
        databases_on(&urls.0, &tag).await,
        std::slice::from_ref(&database)
    );
    let on_s2 = url_of(&urls.0, &database);
    assert_eq!(
        count_at(
            &on_s2,
            &format!(
                "SELECT count(*) FROM public.spins WHERE tenant_id = '{}'",
                a.id().as_uuid()
            )
        )
        .await,
        30
    );
    let row: (String, Option<String>, String) = sqlx::query_as(
        "SELECT placement, database_name, server FROM tenancy.tenants WHERE id = $1",
    )
    .bind(a.id().as_uuid())
    .fetch_one(&mut db.connect().await)
    .await
    .unwrap();
    assert_eq!(
        row,
        ("own_database".into(), Some(database.clone()), "s2".into())
    );

    // The tenant is served from s2; the old rows go with the purge; the cleanup keeps s2's.
    let a = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 30);
    tenancy.purge_old_copy(&su, a.id()).await.unwrap();
    let shared: i64 = sqlx::query_scalar("SELECT count(*) FROM spins WHERE tenant_id = $1")
        .bind(a.id().as_uuid())
        .fetch_one(&mut db.connect().await)
        .await
        .unwrap();
    assert_eq!(shared, 0);
    assert!(tenancy.cleanup_orphans(&su).await.unwrap().is_empty());
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 30);
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// The registry's row for tenant `id`: placement, database, server.
async fn home_of(db: &TestTenancy, id: tenancy::TenantId) -> (String, Option<String>, String) {
    sqlx::query_as("SELECT placement, database_name, server FROM tenancy.tenants WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_one(&mut db.connect().await)
        .await
        .unwrap()
}

/// Tenant `id`'s spins in `database` on the server at `url`.
async fn spins_at(url: &str, database: &str, id: tenancy::TenantId) -> BTreeSet<Uuid> {
    let mut conn = PgConnection::connect(&url_of(url, database)).await.unwrap();
    let ids = common::moving::spin_ids(&mut conn, "public.spins", id).await;
    conn.close().await.unwrap();
    ids
}

/// Whether `database` on the server at `url` is sealed by a move out of it.
async fn sealed_at(url: &str, database: &str) -> bool {
    count_at(
        &url_of(url, database),
        "SELECT count(*) FROM tenancy.tenants WHERE moved_at IS NOT NULL",
    )
    .await
        > 0
}

fn to_server(key: &str) -> MoveOptions {
    MoveOptions::default().server(key)
}

#[tenancy::test(migrations = "tests/migrations")]
async fn an_own_database_tenant_moves_to_a_database_on_another_server(db: TestTenancy) {
    let Some(urls) = server_urls("own_database_to_another_server") else {
        return;
    };
    let tenancy = builder(&urls).connect(db.url()).await.unwrap();
    let tag = tag_of(&db).await;
    let su = tenancy.superuser("test", "between servers").await.unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    tenancy.add_server(&su, "s3").await.unwrap();
    let row = tenancy.create_tenant(own_db("acme", "s2")).await.unwrap();
    let other = tenancy.create_tenant(own_db("globex", "s2")).await.unwrap();
    let a = tenancy.resolve_slug("acme").await.unwrap();
    let s = fill(&a, 40).await;
    fill(&tenancy.resolve_slug("globex").await.unwrap(), 3).await;
    let db_name = row.database.clone().unwrap();
    let before = spins_at(&urls.0, &db_name, a.id()).await;
    // A handle that does not hear of the move: its context keeps the old home.
    let behind = builder(&urls)
        .listen_for_changes(false)
        .connect(db.url())
        .await
        .unwrap();
    let stale = behind.resolve_slug("acme").await.unwrap();
    assert_eq!(Spin::repo().count(&stale).await.unwrap(), 40);

    let moved = tenancy
        .move_tenant_with(&su, a.id(), Placement::OwnDatabase, to_server("s3"))
        .await
        .unwrap();
    assert_eq!(
        (moved.from, moved.to, moved.server.as_str(), moved.rows()),
        (Placement::OwnDatabase, Placement::OwnDatabase, "s3", 41)
    );
    assert_eq!(moved.database.as_deref(), Some(db_name.as_str()));
    assert_eq!(moved.old_copy.database.as_deref(), Some(db_name.as_str()));
    assert_eq!(moved.old_copy.server.as_deref(), Some("s2"));
    assert_eq!(
        home_of(&db, a.id()).await,
        ("own_database".into(), Some(db_name.clone()), "s3".into())
    );
    // Every row on s3; the old database kept on s2, sealed, with the same rows.
    assert_eq!(spins_at(&urls.1, &db_name, a.id()).await, before);
    assert_eq!(spins_at(&urls.0, &db_name, a.id()).await, before);
    assert!(sealed_at(&urls.0, &db_name).await);
    assert!(!sealed_at(&urls.1, &db_name).await);

    // The context of before the move cannot write to the old copy.
    let refused = Spin::repo().insert(&stale, &new_spin(s.id, -1)).await;
    assert!(
        matches!(&refused, Err(e @ Error::TenantMoved(_)) if e.is_retryable()),
        "{refused:?}"
    );
    behind.close().await;
    // The mover's handle let go of its connections to the old database.
    tenancy::testing::eventually(
        "no connection to the old database is left",
        std::time::Duration::from_secs(10),
        async || {
            count_at(
                &urls.0,
                &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{db_name}'"),
            )
            .await
                == 0
        },
    )
    .await;

    // A fresh context reads and writes on s3.
    let a = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 40);
    let after = Spin::repo().insert(&a, &new_spin(s.id, 99)).await.unwrap();
    assert!(
        spins_at(&urls.1, &db_name, a.id())
            .await
            .contains(&after.id)
    );
    assert!(
        !spins_at(&urls.0, &db_name, a.id())
            .await
            .contains(&after.id)
    );
    let detail: String = sqlx::query_scalar(
        "SELECT detail FROM tenancy.audit_log WHERE action = 'tenant.move' AND $1 = ANY (tenant_ids)",
    )
    .bind(a.id().as_uuid())
    .fetch_one(&mut db.connect().await)
    .await
    .unwrap();
    assert!(
        detail.contains(&format!("(s3/{db_name})")) && detail.ends_with(&format!("(s2/{db_name})")),
        "{detail}"
    );

    // The cleanup of leftovers keeps both; the purge drops the old one on s2, only.
    assert!(tenancy.cleanup_orphans(&su).await.unwrap().is_empty());
    let other_db = other.database.clone().unwrap();
    let mut on_two = vec![db_name.clone(), other_db.clone()];
    on_two.sort();
    assert_eq!(databases_on(&urls.0, &tag).await, on_two);
    let purged = tenancy.purge_old_copy(&su, a.id()).await.unwrap();
    assert_eq!(purged, [Purged::Database(db_name.clone())]);
    assert_eq!(databases_on(&urls.0, &tag).await, [other_db]);
    assert_eq!(
        databases_on(&urls.1, &tag).await,
        std::slice::from_ref(&db_name)
    );
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 41);
    assert!(tenancy.cleanup_orphans(&su).await.unwrap().is_empty());

    // And on again, to the primary server.
    let moved = tenancy
        .move_tenant_with(&su, a.id(), Placement::OwnDatabase, to_server("primary"))
        .await
        .unwrap();
    assert_eq!((moved.server.as_str(), moved.rows()), ("primary", 42));
    let a = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 41);
    // Purging the tenant takes the record of its old copy on s3 too; the cleanup then drops
    // that database there.
    tenancy.soft_delete(&su, a.id()).await.unwrap();
    tenancy.purge(&su, a.id()).await.unwrap();
    let dropped = tenancy.cleanup_orphans(&su).await.unwrap();
    assert_eq!(dropped, [format!("s3/{db_name}")]);
    assert!(databases_on(&urls.1, &tag).await.is_empty());
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_move_to_the_same_server_under_its_key_or_another_is_refused_and_changes_nothing(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("own_database_to_the_same_server") else {
        return;
    };
    // s2b is s2 under another key.
    let tenancy = builder(&urls)
        .server("s2b", options(&urls.0))
        .connect(db.url())
        .await
        .unwrap();
    let tag = tag_of(&db).await;
    let su = tenancy.superuser("test", "same server").await.unwrap();
    for key in ["s2", "s2b", "s3"] {
        tenancy.add_server(&su, key).await.unwrap();
    }
    let row = tenancy.create_tenant(own_db("acme", "s2")).await.unwrap();
    let a = tenancy.resolve_slug("acme").await.unwrap();
    let s = fill(&a, 5).await;
    let db_name = row.database.clone().unwrap();
    let home = home_of(&db, a.id()).await;

    for (options, says) in [
        (to_server("s2"), vec!["server s2"]),
        (to_server("s2b"), vec!["s2", "s2b", "one PostgreSQL server"]),
        (
            MoveOptions::default(),
            vec!["already lives on the own_database placement"],
        ),
    ] {
        let out = tenancy
            .move_tenant_with(&su, a.id(), Placement::OwnDatabase, options)
            .await;
        match &out {
            Err(Error::MoveRefused { reason, .. }) => {
                for s in &says {
                    assert!(reason.contains(s), "{reason:?} lacks {s:?}");
                }
            }
            other => panic!("expected MoveRefused, got {other:?}"),
        }
        assert_eq!(home_of(&db, a.id()).await, home);
        assert_eq!(
            databases_on(&urls.0, &tag).await,
            std::slice::from_ref(&db_name)
        );
        assert!(databases_on(&urls.1, &tag).await.is_empty());
        assert!(!sealed_at(&urls.0, &db_name).await);
        let a = tenancy.resolve_slug("acme").await.unwrap();
        Spin::repo().insert(&a, &new_spin(s.id, 7)).await.unwrap();
    }
    assert_eq!(spins_at(&urls.0, &db_name, a.id()).await.len(), 8);
    assert!(tenancy.cleanup_orphans(&su).await.unwrap().is_empty());
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// A database of the tenant's name on the target server is dropped as a cut-off move's
/// leftover only when no registry row names it there: one an old copy's row records (here
/// another tenant's, as a restore gone wrong could leave) is refused, and kept.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_database_on_the_target_that_the_registry_records_is_never_dropped_as_a_leftover(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("own_database_registered_leftover") else {
        return;
    };
    let tenancy = builder(&urls).connect(db.url()).await.unwrap();
    let tag = tag_of(&db).await;
    let su = tenancy
        .superuser("test", "recorded leftover")
        .await
        .unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    tenancy.add_server(&su, "s3").await.unwrap();
    let row = tenancy.create_tenant(own_db("acme", "s2")).await.unwrap();
    let other = tenancy
        .create_tenant(NewTenant::new("other", "other"))
        .await
        .unwrap();
    let a = tenancy.resolve_slug("acme").await.unwrap();
    fill(&a, 3).await;
    let db_name = row.database.clone().unwrap();
    // A database of acme's name on s3, recorded as another tenant's old copy there.
    let mut three = PgConnection::connect(&urls.1).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{db_name}\""
    )))
    .execute(&mut three)
    .await
    .unwrap();
    three.close().await.unwrap();
    db.exec(&format!(
        "INSERT INTO tenancy.old_copies (tenant_id, placement, database_name, server) \
         VALUES ('{}', 'own_database', '{db_name}', 's3')",
        other.id.as_uuid()
    ))
    .await;
    let home = home_of(&db, a.id()).await;
    let out = tenancy
        .move_tenant_with(&su, a.id(), Placement::OwnDatabase, to_server("s3"))
        .await;
    match &out {
        Err(Error::MoveRefused { reason, .. }) => {
            assert!(reason.contains("registry records"), "{reason:?}")
        }
        other => panic!("expected MoveRefused, got {other:?}"),
    }
    assert_eq!(home_of(&db, a.id()).await, home);
    assert_eq!(
        databases_on(&urls.1, &tag).await,
        std::slice::from_ref(&db_name)
    );
    assert!(!sealed_at(&urls.0, &db_name).await);
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 3);
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// The setup of the later tests: a handle mapping s2 and s3 (both listed) and acme, filled
/// with `spins` spins, in a database of its own on s2: the handle, the registry's tag, a
/// Superuser, acme's context and its database's name.
struct AcmeOnS2 {
    tenancy: Tenancy,
    tag: String,
    su: tenancy::Superuser,
    a: tenancy::TenantCtx,
    db_name: String,
}

async fn acme_on_s2(db: &TestTenancy, urls: &(String, String), spins: usize) -> AcmeOnS2 {
    let tenancy = builder(urls).connect(db.url()).await.unwrap();
    let tag = tag_of(db).await;
    let su = tenancy.superuser("test", "acme on s2").await.unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    tenancy.add_server(&su, "s3").await.unwrap();
    let row = tenancy.create_tenant(own_db("acme", "s2")).await.unwrap();
    let a = tenancy.resolve_slug("acme").await.unwrap();
    fill(&a, spins).await;
    AcmeOnS2 {
        tenancy,
        tag,
        su,
        a,
        db_name: row.database.unwrap(),
    }
}

/// A database of the tenant's name on the target server that says it is another tenant's (a
/// restore gone wrong, with no registry row naming it) is no leftover of this move: refused
/// and kept, whatever its name says.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_database_on_the_target_stamped_for_another_tenant_is_never_dropped_as_a_leftover(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("own_database_foreign_leftover") else {
        return;
    };
    let AcmeOnS2 {
        tenancy,
        tag,
        su,
        a,
        db_name,
    } = acme_on_s2(&db, &urls, 3).await;
    let stranger = Uuid::new_v4();
    let mut three = PgConnection::connect(&urls.1).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{db_name}\""
    )))
    .execute(&mut three)
    .await
    .unwrap();
    three.close().await.unwrap();
    let mut there = PgConnection::connect(&url_of(&urls.1, &db_name))
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA tenancy; \
         CREATE TABLE tenancy.tenants (id uuid PRIMARY KEY, slug text NOT NULL); \
         INSERT INTO tenancy.tenants VALUES ('{stranger}', 'stranger')"
    )))
    .execute(&mut there)
    .await
    .unwrap();
    there.close().await.unwrap();
    let home = home_of(&db, a.id()).await;
    let out = tenancy
        .move_tenant_with(&su, a.id(), Placement::OwnDatabase, to_server("s3"))
        .await;
    match &out {
        Err(Error::MoveRefused { reason, .. }) => {
            assert!(reason.contains("another tenant's"), "{reason:?}");
            assert!(reason.contains(&stranger.to_string()), "{reason:?}");
        }
        other => panic!("expected MoveRefused, got {other:?}"),
    }
    assert_eq!(home_of(&db, a.id()).await, home);
    assert_eq!(
        count_at(
            &url_of(&urls.1, &db_name),
            "SELECT count(*) FROM tenancy.tenants"
        )
        .await,
        1
    );
    assert!(!sealed_at(&urls.0, &db_name).await);
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 3);
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// The move between servers compares migration histories as every move does: a handle whose
/// tenant migrations have a backfill the tenant's database has not run is refused, and makes
/// nothing on the target server.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_move_between_servers_from_a_database_behind_the_new_one_is_refused(db: TestTenancy) {
    let Some(urls) = server_urls("own_database_history_between") else {
        return;
    };
    let AcmeOnS2 {
        tenancy, tag, a, ..
    } = acme_on_s2(&db, &urls, 3).await;
    let home = home_of(&db, a.id()).await;
    let newer = Tenancy::builder()
        .tenant_migrations(
            Migrations::from_static(&[
                (1, "spinner app", common::SPINNER_SCHEMA),
                (2, "backfill", "UPDATE spins SET duration = duration + 1000"),
            ])
            .unwrap(),
        )
        .server("s2", options(&urls.0))
        .server("s3", options(&urls.1))
        .connect(db.url())
        .await
        .unwrap();
    let su2 = newer.superuser("test", "history between").await.unwrap();
    match newer
        .move_tenant_with(&su2, a.id(), Placement::OwnDatabase, to_server("s3"))
        .await
    {
        Err(Error::MoveRefused { reason, .. }) => {
            assert!(reason.contains("has not run migrations [2]"), "{reason:?}")
        }
        other => panic!("expected MoveRefused, got {other:?}"),
    }
    assert_eq!(home_of(&db, a.id()).await, home);
    assert!(
        databases_on(&urls.1, &tag)
            .await
            .iter()
            .all(|d| d.contains("_template_") || d.contains("_spare_"))
    );
    assert!(!sealed_at(&urls.0, &home.1.clone().unwrap()).await);
    newer.close().await;
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// An old database on a server that is gone (its key no longer mapped) cannot be purged, and
/// its record refuses moves that would leave another: `forget_old_copy` removes the record
/// without touching the database, and only where the handle does not map the server.
#[tenancy::test(migrations = "tests/migrations")]
async fn an_old_copy_on_a_server_that_is_gone_is_forgotten_not_dropped(db: TestTenancy) {
    let Some(urls) = server_urls("own_database_forget_old_copy") else {
        return;
    };
    let AcmeOnS2 {
        tenancy,
        tag,
        su,
        a,
        db_name,
    } = acme_on_s2(&db, &urls, 4).await;
    tenancy
        .move_tenant_with(&su, a.id(), Placement::OwnDatabase, to_server("s3"))
        .await
        .unwrap();
    // A handle that maps it purges it instead.
    assert!(matches!(
        tenancy.forget_old_copy(&su, a.id(), "s2").await,
        Err(Error::MoveRefused { .. })
    ));
    tenancy.close().await;

    // s2 is gone: the handle maps s3 only.
    let without = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .server("s3", options(&urls.1))
        .connect(db.url())
        .await
        .unwrap();
    let su = without.superuser("test", "s2 is gone").await.unwrap();
    assert!(matches!(
        without.purge_old_copy(&su, a.id()).await,
        Err(Error::UnknownServer { .. })
    ));
    assert!(matches!(
        without
            .move_tenant(&su, a.id(), Placement::SharedTable)
            .await,
        Err(Error::MoveRefused { .. })
    ));
    assert_eq!(
        without.forget_old_copy(&su, a.id(), "s2").await.unwrap(),
        std::slice::from_ref(&db_name)
    );
    assert!(
        without
            .forget_old_copy(&su, a.id(), "s2")
            .await
            .unwrap()
            .is_empty()
    );
    // Not dropped; and the record no longer holds the tenant back.
    assert_eq!(
        databases_on(&urls.0, &tag).await,
        std::slice::from_ref(&db_name)
    );
    let moved = without
        .move_tenant(&su, a.id(), Placement::SharedTable)
        .await
        .unwrap();
    assert_eq!(moved.rows(), 5);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tenancy.audit_log WHERE action = 'tenant.forget_old_copy'",
    )
    .fetch_one(&mut db.connect().await)
    .await
    .unwrap();
    assert_eq!(audited, 2);
    without.close().await;
    drop_extra(&urls, &tag).await;
}

async fn exec_at(url: &str, sql: &str) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

/// A tenant that left a database on s2 for one on s3 keeps the old copy until it is purged:
/// a move out of its s3 database is refused meanwhile, before anything is sealed (the old copy
/// it would leave could not be recorded). And a purge through a handle whose key s2 reaches
/// s3's server (remapped, or an alias) finds the tenant's home under the old copy's name: even
/// sealed by hand, as a cut-off move would leave it, it is refused and kept.
#[tenancy::test(migrations = "tests/migrations")]
async fn an_old_copy_is_never_purged_through_a_key_that_reaches_the_tenants_home(db: TestTenancy) {
    let Some(urls) = server_urls("own_database_aliased_purge") else {
        return;
    };
    let AcmeOnS2 {
        tenancy,
        tag,
        su,
        a,
        db_name,
    } = acme_on_s2(&db, &urls, 5).await;
    tenancy
        .move_tenant_with(&su, a.id(), Placement::OwnDatabase, to_server("s3"))
        .await
        .unwrap();
    let home = home_of(&db, a.id()).await;

    let out = tenancy
        .move_tenant(&su, a.id(), Placement::SharedTable)
        .await;
    match &out {
        Err(Error::MoveRefused { reason, .. }) => {
            assert!(reason.contains("purge it first"), "{reason:?}")
        }
        other => panic!("expected MoveRefused, got {other:?}"),
    }
    assert_eq!(home_of(&db, a.id()).await, home);
    assert!(!sealed_at(&urls.1, &db_name).await);

    let home_url = url_of(&urls.1, &db_name);
    exec_at(&home_url, "UPDATE tenancy.tenants SET moved_at = now()").await;
    let aliased = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .server("s2", options(&urls.1))
        .server("s3", options(&urls.1))
        .connect(db.url())
        .await
        .unwrap();
    let su2 = aliased.superuser("test", "aliased purge").await.unwrap();
    match aliased.purge_old_copy(&su2, a.id()).await {
        Err(Error::WrongDatabase { found, .. }) => {
            assert!(found.contains("reached through"), "{found:?}")
        }
        other => panic!("expected WrongDatabase, got {other:?}"),
    }
    assert_eq!(spins_at(&urls.1, &db_name, a.id()).await.len(), 5);
    assert_eq!(
        databases_on(&urls.0, &tag).await,
        std::slice::from_ref(&db_name)
    );
    aliased.close().await;

    // Through the right keys, the old copy on s2 goes and the home stays.
    exec_at(&home_url, "UPDATE tenancy.tenants SET moved_at = NULL").await;
    assert_eq!(
        tenancy.purge_old_copy(&su, a.id()).await.unwrap(),
        [Purged::Database(db_name.clone())]
    );
    assert!(databases_on(&urls.0, &tag).await.is_empty());
    let a = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 5);
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn every_write_acknowledged_during_a_move_between_servers_is_in_the_new_database(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("writes_during_a_move_between_servers") else {
        return;
    };
    let tenancy = builder(&urls).connect(db.url()).await.unwrap();
    let second = builder(&urls)
        .max_connections(4)
        .connect(db.url())
        .await
        .unwrap();
    let tag = tag_of(&db).await;
    let su = tenancy.superuser("test", "under load").await.unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    tenancy.add_server(&su, "s3").await.unwrap();
    let row = tenancy.create_tenant(own_db("acme", "s2")).await.unwrap();
    let db_name = row.database.clone().unwrap();
    let a = tenancy.resolve_slug("acme").await.unwrap();
    let sa = fill(&a, 500).await;
    let counter = Spin::repo()
        .insert(&a, &new_spin(sa.id, 0))
        .await
        .unwrap()
        .id;

    let stop = Arc::new(AtomicBool::new(false));
    let writers = [tenancy.clone(), second.clone()]
        .map(|t| tokio::spawn(writer(t, "acme", sa.id, counter, stop.clone())));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let moved = tenancy
        .move_tenant_with(
            &su,
            a.id(),
            Placement::OwnDatabase,
            to_server("s3").hold_fence(std::time::Duration::from_millis(300)),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.push(w.await.unwrap());
    }
    let new_copy = spins_at(&urls.1, &db_name, a.id()).await;
    let old_copy = spins_at(&urls.0, &db_name, a.id()).await;
    acknowledged_writes_are_in_the_new_copy(&acked, &moved, &new_copy, &old_copy);
    assert!(
        new_copy.len() > old_copy.len(),
        "writes went on in the new home"
    );
    let last: i64 = count_at(
        &url_of(&urls.1, &db_name),
        &format!("SELECT duration::bigint FROM public.spins WHERE id = '{counter}'"),
    )
    .await;
    let counters: Vec<i64> = acked
        .iter()
        .filter_map(|w| w.counter.map(i64::from))
        .collect();
    assert!(counters.contains(&last), "{last} not among {counters:?}");
    second.close().await;
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_move_between_servers_cancelled_at_any_await_leaves_the_tenant_whole(db: TestTenancy) {
    let Some(urls) = server_urls("cancelled_move_between_servers") else {
        return;
    };
    let tenancy = builder(&urls).connect(db.url()).await.unwrap();
    let tag = tag_of(&db).await;
    let su = tenancy.superuser("test", "cancel between").await.unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    tenancy.add_server(&su, "s3").await.unwrap();
    let row = tenancy.create_tenant(own_db("acme", "s2")).await.unwrap();
    let db_name = row.database.clone().unwrap();
    let a = tenancy.resolve_slug("acme").await.unwrap();
    let s = fill(&a, 6).await;
    let mut conn = db.connect().await;
    let (mut rows, mut k) = (7, 1);
    loop {
        let out = cancel_at(
            k,
            tenancy.move_tenant_with(&su, a.id(), Placement::OwnDatabase, to_server("s3")),
        )
        .await;
        if let Some(moved) = out {
            assert_eq!(moved.unwrap().rows(), rows);
            break;
        }
        common::no_transaction_left_open(&mut conn).await;
        let (_, database, server) = home_of(&db, a.id()).await;
        if server == "s3" {
            break; // cut off with its commit on the wire
        }
        assert_eq!(
            (database.as_deref(), server.as_str()),
            (Some(db_name.as_str()), "s2"),
            "cancelled at await {k}"
        );
        assert_eq!(
            spins_at(&urls.0, &db_name, a.id()).await.len() as u64,
            rows - 1,
            "the rows are whole on the old home at await {k}"
        );
        // A database statement the cut-off move left running on a server ends there.
        eventually(
            "no database is being made or dropped",
            std::time::Duration::from_secs(60),
            async || {
                let mut idle = true;
                for url in [&urls.0, &urls.1] {
                    idle &= count_at(
                        url,
                        &format!(
                            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() \
                             AND state <> 'idle' AND query ~* '^(CREATE|ALTER|DROP) DATABASE' \
                             AND strpos(query, '{tag}') > 0"
                        ),
                    )
                    .await
                        == 0;
                }
                idle
            },
        )
        .await;
        // A database the cut-off move made on s3 is no one's home: before the seal the
        // cleanup drops it (a rerun makes it anew); after, it keeps it (with the registered
        // one sealed, it may be the copy with every write). Nothing on s2 goes.
        let sealed_before = sealed_at(&urls.0, &db_name).await;
        let dropped = tenancy.cleanup_orphans(&su).await.unwrap();
        assert!(
            dropped.iter().all(|d| *d == format!("s3/{db_name}")),
            "{dropped:?} at await {k}"
        );
        if !sealed_before {
            assert!(databases_on(&urls.1, &tag).await.is_empty(), "await {k}");
        } else {
            assert!(dropped.is_empty(), "await {k}");
        }
        // The tenant database's transaction ends when its connection closes.
        let fresh = tenancy.resolve_slug("acme").await.unwrap();
        let mut written = None;
        eventually(
            "the cancelled move lets go",
            std::time::Duration::from_secs(30),
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
        let sealed = sealed_at(&urls.0, &db_name).await;
        // Writable, or sealed between the seal and the switch and refused as moved.
        match written.unwrap() {
            Ok(_) => assert!(!sealed, "a write landed in a sealed copy at await {k}"),
            Err(e @ Error::TenantMoved(_)) => {
                assert!(sealed && e.is_retryable(), "refused unsealed at await {k}");
            }
            Err(other) => panic!("await {k}: {other:?}"),
        }
        rows = spins_at(&urls.0, &db_name, a.id()).await.len() as u64 + 1;
        k += 1;
    }
    assert!(k > 3, "the move was cancelled at {k} awaits only");
    assert_eq!(
        home_of(&db, a.id()).await,
        ("own_database".into(), Some(db_name.clone()), "s3".into())
    );
    assert!(tenancy.cleanup_orphans(&su).await.unwrap().is_empty());
    let a = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(Spin::repo().count(&a).await.unwrap() as u64, rows - 1);
    assert_eq!(
        databases_on(&urls.1, &tag).await,
        std::slice::from_ref(&db_name)
    );
    // The old database stays on s2 until purged.
    assert_eq!(
        databases_on(&urls.0, &tag).await,
        std::slice::from_ref(&db_name)
    );
    tenancy.purge_old_copy(&su, a.id()).await.unwrap();
    assert!(databases_on(&urls.0, &tag).await.is_empty());
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_move_between_servers_cut_off_after_its_seal_is_finished_by_a_rerun(db: TestTenancy) {
    let Some(urls) = server_urls("move_between_servers_cut_after_the_seal") else {
        return;
    };
    let tenancy = builder(&urls).connect(db.url()).await.unwrap();
    let tag = tag_of(&db).await;
    let su = Arc::new(
        tenancy
            .superuser("test", "crash after the seal")
            .await
            .unwrap(),
    );
    tenancy.add_server(&su, "s2").await.unwrap();
    tenancy.add_server(&su, "s3").await.unwrap();
    let row = tenancy.create_tenant(own_db("acme", "s2")).await.unwrap();
    let db_name = row.database.clone().unwrap();
    let a = tenancy.resolve_slug("acme").await.unwrap();
    let s = fill(&a, 10).await;
    let mut conn = db.connect().await;

    let mover = {
        let (tenancy, su, id) = (tenancy.clone(), su.clone(), a.id());
        tokio::spawn(async move {
            tenancy
                .move_tenant_with(
                    &su,
                    id,
                    Placement::OwnDatabase,
                    to_server("s3").hold_before_switch(std::time::Duration::from_secs(60)),
                )
                .await
        })
    };
    let (url, name) = (urls.0.clone(), db_name.clone());
    eventually(
        "the move sealed the old copy",
        std::time::Duration::from_secs(60),
        async || sealed_at(&url, &name).await,
    )
    .await;
    // Cut off between the seal and the switch, as a crash would.
    mover.abort();
    assert!(mover.await.unwrap_err().is_cancelled());
    common::no_transaction_left_open(&mut conn).await;

    // Sealed on its old home: every row there, writes refused as moved (retryable); the new
    // database, committed but no one's home, is kept by the cleanup (the registered one is
    // sealed, so this one may hold every write: after a registry restore to before a switch it
    // would) and replaced by the rerun.
    assert_eq!(
        home_of(&db, a.id()).await,
        ("own_database".into(), Some(db_name.clone()), "s2".into())
    );
    assert_eq!(
        databases_on(&urls.1, &tag).await,
        std::slice::from_ref(&db_name)
    );
    let fresh = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(Spin::repo().count(&fresh).await.unwrap(), 10);
    let refused = Spin::repo().insert(&fresh, &new_spin(s.id, 1)).await;
    assert!(
        matches!(&refused, Err(e @ Error::TenantMoved(_)) if e.is_retryable()),
        "{refused:?}"
    );
    assert!(tenancy.cleanup_orphans(&su).await.unwrap().is_empty());
    assert_eq!(
        databases_on(&urls.1, &tag).await,
        std::slice::from_ref(&db_name)
    );

    // A deploy before the rerun: its migration runs on the sealed database (the registry's
    // home of the tenant), not on the unregistered copy. The rerun's comparison of the two
    // leaves the new column out, finds the same rows, and replaces the copy.
    let weight = "ALTER TABLE spins ADD COLUMN weight int NOT NULL DEFAULT 7";
    let deployed = builder(&urls)
        .tenant_migrations(
            Migrations::from_static(&[
                (1, "spinner app", common::SPINNER_SCHEMA),
                (2, "weight", weight),
            ])
            .unwrap(),
        )
        .connect(db.url())
        .await
        .unwrap();
    let su2 = deployed.superuser("test", "deploy").await.unwrap();
    let report = deployed
        .migrate_tenants(&su2, MigrateOptions::default())
        .await
        .unwrap();
    assert!(
        report.outcomes.iter().any(|(t, o)| matches!(t,
            MigrationTarget::Database { id, .. } if *id == a.id())
            && *o == Outcome::Applied(vec![2])),
        "{report:?}"
    );
    tenancy.close().await;

    let moved = deployed
        .move_tenant_with(&su2, a.id(), Placement::OwnDatabase, to_server("s3"))
        .await
        .unwrap();
    assert_eq!((moved.server.as_str(), moved.rows()), ("s3", 11));
    let a = deployed.resolve_slug("acme").await.unwrap();
    Spin::repo().insert(&a, &new_spin(s.id, 2)).await.unwrap();
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 11);
    assert_eq!(spins_at(&urls.1, &db_name, a.id()).await.len(), 11);
    deployed.purge_old_copy(&su2, a.id()).await.unwrap();
    // Only the template the deploy's migration run brought up to date is left on s2.
    let left = databases_on(&urls.0, &tag).await;
    assert!(left.iter().all(|d| d.contains("_template_")), "{left:?}");
    deployed.close().await;
    drop_extra(&urls, &tag).await;
}

/// What two cut-off runs of a move between servers can leave: the first cut off after its seal
/// (the source sealed, every row there), the second, which dropped the first's copy, cut off
/// right after making its new database and before stamping it (a database without even
/// tenancy's schema). The next run takes that database for the half-made leftover it is, drops
/// it and finishes the move. (Found by the cancelled-move test: the check of the leftover named
/// `tenancy.tenants` and failed with "schema tenancy does not exist".)
#[tenancy::test(migrations = "tests/migrations")]
async fn a_half_made_database_beside_a_sealed_source_is_replaced_by_the_rerun(db: TestTenancy) {
    let Some(urls) = server_urls("move_between_servers_half_made_target") else {
        return;
    };
    let AcmeOnS2 {
        tenancy,
        tag,
        su,
        a,
        db_name,
    } = acme_on_s2(&db, &urls, 6).await;
    exec_at(
        &url_of(&urls.0, &db_name),
        "UPDATE tenancy.tenants SET moved_at = now()",
    )
    .await;
    exec_at(&urls.1, &format!("CREATE DATABASE \"{db_name}\"")).await;
    assert!(sealed_at(&urls.0, &db_name).await);

    let moved = tenancy
        .move_tenant_with(&su, a.id(), Placement::OwnDatabase, to_server("s3"))
        .await
        .unwrap();
    // The spinner and its 6 spins.
    assert_eq!((moved.server.as_str(), moved.rows()), ("s3", 7));
    assert_eq!(
        home_of(&db, a.id()).await,
        ("own_database".into(), Some(db_name.clone()), "s3".into())
    );
    assert_eq!(spins_at(&urls.1, &db_name, a.id()).await.len(), 6);
    let a = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 6);
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// A registry restored from a backup taken before tenant `id`'s move from s2 switched: its row
/// names s2 again, no old copy is recorded. Returns the connection to the registry.
async fn restore_registry_to_before_the_switch(
    db: &TestTenancy,
    id: tenancy::TenantId,
) -> PgConnection {
    let mut conn = db.connect().await;
    sqlx::query("UPDATE tenancy.tenants SET server = 's2' WHERE id = $1")
        .bind(id.as_uuid())
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM tenancy.old_copies WHERE tenant_id = $1")
        .bind(id.as_uuid())
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

/// A rerun refused because the copy on the target holds other spins than the sealed source.
fn refused_as_differing(rerun: tenancy::Result<tenancy::Moved>) {
    let Err(Error::MoveRefused { reason, .. }) = &rerun else {
        panic!("{rerun:?}");
    };
    assert!(
        reason.contains("differ from the sealed source") && reason.contains("spins"),
        "{reason}"
    );
}

/// A registry restored from a backup taken before a move between servers switched: it names
/// the sealed old database again, while the new one has been the tenant's home since, with
/// writes the old one lacks. The rerun of the move the docs suggest must not replace that
/// database with the stale copy: it compares the two and is refused, keeping both.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_rerun_after_a_registry_restore_never_replaces_the_home_with_the_sealed_copy(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("move_between_servers_registry_restore") else {
        return;
    };
    let tenancy = builder(&urls).connect(db.url()).await.unwrap();
    let tag = tag_of(&db).await;
    let su = tenancy.superuser("test", "registry restore").await.unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    tenancy.add_server(&su, "s3").await.unwrap();
    let row = tenancy.create_tenant(own_db("acme", "s2")).await.unwrap();
    let db_name = row.database.clone().unwrap();
    let a = tenancy.resolve_slug("acme").await.unwrap();
    let s = fill(&a, 5).await;
    tenancy
        .move_tenant_with(&su, a.id(), Placement::OwnDatabase, to_server("s3"))
        .await
        .unwrap();
    let a = tenancy.resolve_slug("acme").await.unwrap();
    for d in 0..2 {
        Spin::repo().insert(&a, &new_spin(s.id, d)).await.unwrap();
    }
    let home = spins_at(&urls.1, &db_name, a.id()).await;
    assert_eq!(home.len(), 7);

    let mut conn = restore_registry_to_before_the_switch(&db, a.id()).await;
    refused_as_differing(
        tenancy
            .move_tenant_with(&su, a.id(), Placement::OwnDatabase, to_server("s3"))
            .await,
    );
    // Nothing changed: the home on s3 with every write, the sealed copy on s2, the registry.
    assert_eq!(spins_at(&urls.1, &db_name, a.id()).await, home);
    assert_eq!(spins_at(&urls.0, &db_name, a.id()).await.len(), 5);
    assert!(sealed_at(&urls.0, &db_name).await);
    assert_eq!(
        home_of(&db, a.id()).await,
        ("own_database".into(), Some(db_name.clone()), "s2".into())
    );
    // The orphan cleanup keeps it too.
    assert!(tenancy.cleanup_orphans(&su).await.unwrap().is_empty());
    assert_eq!(spins_at(&urls.1, &db_name, a.id()).await, home);

    // The operator points the registry back at the home: every write is there.
    sqlx::query("UPDATE tenancy.tenants SET server = 's3' WHERE id = $1")
        .bind(a.id().as_uuid())
        .execute(&mut conn)
        .await
        .unwrap();
    let fresh = builder(&urls).connect(db.url()).await.unwrap();
    let a = fresh.resolve_slug("acme").await.unwrap();
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 7);
    fresh.close().await;
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// As above, but the writes since the switch are in a column only the new home has: a
/// migration ran there as the tenant's home, and filled it. The rows and the columns both
/// sides have are the same; the column only the copy has makes it a difference, and the copy
/// is kept, not replaced by the source that lacks it.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_rerun_after_a_registry_restore_keeps_a_home_migrated_since(db: TestTenancy) {
    let Some(urls) = server_urls("move_between_servers_restore_migrated") else {
        return;
    };
    let tenancy = builder(&urls).connect(db.url()).await.unwrap();
    let tag = tag_of(&db).await;
    let su = tenancy.superuser("test", "registry restore").await.unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    tenancy.add_server(&su, "s3").await.unwrap();
    let row = tenancy.create_tenant(own_db("acme", "s2")).await.unwrap();
    let db_name = row.database.clone().unwrap();
    let a = tenancy.resolve_slug("acme").await.unwrap();
    fill(&a, 5).await;
    tenancy
        .move_tenant_with(&su, a.id(), Placement::OwnDatabase, to_server("s3"))
        .await
        .unwrap();
    tenancy.close().await;
    // A deploy: the home on s3 gets a column, and the tenant fills it.
    let deployed = builder(&urls)
        .tenant_migrations(
            Migrations::from_static(&[
                (1, "spinner app", common::SPINNER_SCHEMA),
                (2, "weight", "ALTER TABLE spins ADD COLUMN weight int"),
            ])
            .unwrap(),
        )
        .connect(db.url())
        .await
        .unwrap();
    let su = deployed.superuser("test", "deploy").await.unwrap();
    assert!(
        deployed
            .migrate_tenants(&su, MigrateOptions::default())
            .await
            .unwrap()
            .is_success()
    );
    let home = url_of(&urls.1, &db_name);
    exec_at(&home, "UPDATE public.spins SET weight = 3").await;

    // The restore, then the rerun.
    restore_registry_to_before_the_switch(&db, a.id()).await;
    refused_as_differing(
        deployed
            .move_tenant_with(&su, a.id(), Placement::OwnDatabase, to_server("s3"))
            .await,
    );
    assert_eq!(
        count_at(&home, "SELECT count(*) FROM public.spins WHERE weight = 3").await,
        5
    );
    deployed.close().await;
    drop_extra(&urls, &tag).await;
}
