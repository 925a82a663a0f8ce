//! Own-database tenants spread over three PostgreSQL servers: the registry's (primary) and the
//! two that `scripts/pg-servers` starts (`TENANCY_SERVER2_URL`, `TENANCY_SERVER3_URL`). Each
//! tenant's database is made on its server, its rows stay there, migrations and reports span
//! the servers, purge drops the database on its server, and a tenant on a server the handle
//! cannot reach is refused, never served from another one.
//!
//! Without the URLs each test says so and returns, unless `CI` is set: then it fails.

mod common;

use common::models::*;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tenancy::testing::TestTenancy;
use tenancy::{
    AuditQuery, Error, MigrateOptions, MigrationTarget, Migrations, NewTenant, Outcome, Placement,
    Purged, Tenancy, TenancyBuilder,
};
use uuid::Uuid;

/// The URLs of the second and third servers; `None` (after saying why) when they are not set
/// outside CI.
fn server_urls(test: &str) -> Option<(String, String)> {
    match (
        std::env::var("TENANCY_SERVER2_URL"),
        std::env::var("TENANCY_SERVER3_URL"),
    ) {
        (Ok(a), Ok(b)) => Some((a, b)),
        _ if std::env::var_os("CI").is_some() => panic!(
            "{test}: TENANCY_SERVER2_URL and TENANCY_SERVER3_URL are not set, and CI is: run \
             the suite under scripts/pg-servers (scripts/test does)"
        ),
        _ => {
            eprintln!(
                "SKIPPED {test}: TENANCY_SERVER2_URL / TENANCY_SERVER3_URL are not set; run \
                 `scripts/pg-servers cargo test --test servers` to start the servers"
            );
            None
        }
    }
}

fn spinner_migrations() -> Migrations {
    Migrations::from_static(&[(1, "spinner app", common::SPINNER_SCHEMA)]).unwrap()
}

fn options(url: &str) -> PgConnectOptions {
    url.parse().unwrap()
}

/// A builder mapping `s2` and `s3` to the second and third servers.
fn builder((two, three): &(String, String)) -> TenancyBuilder {
    Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .server("s2", options(two))
        .server("s3", options(three))
}

fn own_db(slug: &str, server: &str) -> NewTenant {
    NewTenant::new(slug, slug)
        .placement(Placement::OwnDatabase)
        .server(server)
}

/// The databases of this registry on the server at `url`.
async fn databases_on(url: &str, tag: &str) -> Vec<String> {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let names = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1",
    )
    .bind(format!("tenancy_{tag}_"))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    names
}

async fn tag_of(db: &TestTenancy) -> String {
    sqlx::query_scalar("SELECT tag FROM tenancy.deployment")
        .fetch_one(&mut db.connect().await)
        .await
        .unwrap()
}

/// Drops this registry's databases on the extra servers (the test database's own go with it).
async fn drop_extra((two, three): &(String, String), tag: &str) {
    for url in [two, three] {
        let mut conn = PgConnection::connect(url).await.unwrap();
        for name in databases_on(url, tag).await {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
        conn.close().await.unwrap();
    }
}

/// `url` with its database replaced by `database`.
fn url_of(url: &str, database: &str) -> String {
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{database}")
}

async fn count_at(url: &str, sql: &str) -> i64 {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    n
}

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
    // A malformed key, and a server for a shared-table tenant: refused too.
    assert!(matches!(
        full.create_tenant(own_db("nope", "S 2")).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        full.create_tenant(NewTenant::new("nope", "n").server("s2"))
            .await,
        Err(Error::UnsupportedPlacement(Placement::SharedTable))
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
