//! Own-schema tenants on servers other than the registry's: each gets its schema in that
//! server's home database (beside the home's shared tables), made with its line there before
//! the registry row is written. Each sees its own rows only, whatever the other tenants of the
//! home (schemas or shared tables); reports, migrations, export and import reach the schema;
//! purge drops it; the home's write fence tells a schema's writes from the shared tables'; a
//! creation that fails leaves nothing half-made; such a tenant moves out to every other
//! placement and server, and the moves a home cannot take are refused before anything
//! changes.
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
};
use uuid::Uuid;

fn schema_on(slug: &str, server: &str) -> NewTenant {
    NewTenant::new(slug, slug)
        .placement(Placement::OwnSchema)
        .server(server)
}

/// The schemas named `t_...` in the database at `url`.
async fn tenant_schemas_at(url: &str) -> Vec<String> {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let names = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, 't_') ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    names
}

/// The lines of the home at `url`: (tenant, schema).
async fn lines_at(url: &str) -> Vec<(Uuid, Option<String>)> {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let lines = sqlx::query_as("SELECT id, schema_name FROM tenancy.tenants ORDER BY slug")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    lines
}

/// Every placement on every server at once (the registry's shared tables and a schema there,
/// a home's shared tables and schemas on two servers, own databases on two servers): each
/// tenant sees its own rows only under the same row id, and a report merges them all.
#[tenancy::test(migrations = "tests/migrations")]
async fn own_schema_tenants_of_another_server_live_in_its_home_and_keep_to_their_own(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("server_schemas_keep_to_their_own") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "server schemas").await.unwrap();
    let rows = [
        tenancy
            .create_tenant(NewTenant::new("here", "here").placement(Placement::OwnSchema))
            .await
            .unwrap(),
        tenancy
            .create_tenant(schema_on("two-a", "s2"))
            .await
            .unwrap(),
        tenancy
            .create_tenant(schema_on("two-b", "s2"))
            .await
            .unwrap(),
        tenancy
            .create_tenant(shared_on("two-shared", "s2"))
            .await
            .unwrap(),
        tenancy
            .create_tenant(schema_on("three", "s3"))
            .await
            .unwrap(),
        tenancy
            .create_tenant(own_db("own-two", "s2"))
            .await
            .unwrap(),
        tenancy
            .create_tenant(own_db("own-here", "primary"))
            .await
            .unwrap(),
    ];
    assert_eq!(
        rows.iter()
            .map(|r| (r.server.as_str(), r.placement))
            .collect::<Vec<_>>(),
        [
            ("primary", Placement::OwnSchema),
            ("s2", Placement::OwnSchema),
            ("s2", Placement::OwnSchema),
            ("s2", Placement::SharedTable),
            ("s3", Placement::OwnSchema),
            ("s2", Placement::OwnDatabase),
            ("primary", Placement::OwnDatabase),
        ]
    );
    // The schemas are made in their server's home only; the registry's database has the
    // primary tenant's alone.
    let home_two = url_of(&urls.0, &home_name(&tag, "s2"));
    let home_three = url_of(&urls.1, &home_name(&tag, "s3"));
    assert_eq!(tenant_schemas_at(&home_two).await, ["t_two_a", "t_two_b"]);
    assert_eq!(tenant_schemas_at(&home_three).await, ["t_three"]);
    assert_eq!(tenant_schemas_at(db.url()).await, ["t_here"]);
    // The home's lines say where in it each tenant lives.
    assert_eq!(
        lines_at(&home_two).await,
        [
            (rows[1].id.as_uuid(), Some("t_two_a".to_owned())),
            (rows[2].id.as_uuid(), Some("t_two_b".to_owned())),
            (rows[3].id.as_uuid(), None),
        ]
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
    // Each schema tenant's row is in its schema, the shared one's in the home's public tables.
    for (schema, slug) in [
        ("t_two_a", "two-a"),
        ("t_two_b", "two-b"),
        ("public", "two-shared"),
    ] {
        let sql = format!("SELECT count(*) FROM {schema}.spinners WHERE name = '{slug}'");
        assert_eq!(count_at(&home_two, &sql).await, 1, "{slug}");
        let all = format!("SELECT count(*) FROM {schema}.spinners");
        assert_eq!(count_at(&home_two, &all).await, 1, "{schema} holds one row");
    }

    // Writes and raw SQL through one schema tenant never reach the other's row of the same id.
    assert!(Spinner::repo().delete(&ctxs[1], same).await.unwrap());
    assert!(names(&ctxs[1]).await.is_empty());
    assert_eq!(names(&ctxs[2]).await, ["two-b"]);
    let (n,): (i64,) = Spinner::repo()
        .raw_as("SELECT count(*) FROM {spinners}")
        .fetch_one(&ctxs[2])
        .await
        .unwrap();
    assert_eq!(n, 1);
    for refused in [
        "SELECT count(*) FROM t_two_a.spinners",
        "SELECT count(*) FROM public.spinners",
        "SELECT count(*) FROM tenancy.tenants",
    ] {
        let r = Spinner::repo()
            .raw_as::<(i64,)>(refused)
            .fetch_one(&ctxs[2])
            .await;
        assert!(matches!(r, Err(Error::UnscopedSql(_))), "{refused}: {r:?}");
    }
    // A transaction: rolled back, nothing stays; committed, it does.
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
    let mut tx = ctxs[2].begin().await.unwrap();
    Spinner::repo()
        .insert(
            &mut tx,
            &NewSpinner {
                id: Uuid::new_v4(),
                name: "committed".into(),
                color: None,
            },
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(names(&ctxs[2]).await, ["committed", "two-b"]);

    // A report merges every tenant of every server and placement.
    let mut all = Spinner::repo().report().fetch_all(&su).await.unwrap();
    all.sort_by_key(|(_, r)| r.name.clone());
    let got: Vec<(tenancy::TenantId, &str)> =
        all.iter().map(|(t, r)| (*t, r.name.as_str())).collect();
    assert_eq!(
        got,
        [
            (rows[2].id, "committed"),
            (rows[0].id, "here"),
            (rows[6].id, "own-here"),
            (rows[5].id, "own-two"),
            (rows[4].id, "three"),
            (rows[2].id, "two-b"),
            (rows[3].id, "two-shared"),
        ]
    );
    // The deployment check finds every schema where its line says, with its history.
    let report = tenancy.verify_deployment().await.unwrap();
    assert!(report.registry.is_empty(), "{:?}", report.registry);
    // A tenant schema no line names, made around the library, is reported.
    exec_at(&home_two, "CREATE SCHEMA t_stray").await;
    let report = tenancy.verify_deployment().await.unwrap();
    assert_eq!(report.registry.len(), 1, "{:?}", report.registry);
    assert!(
        report.registry[0].contains("t_stray"),
        "{:?}",
        report.registry
    );
    exec_at(&home_two, "DROP SCHEMA t_stray").await;
    // A line that names another schema than the registry does is reported.
    exec_at(
        &home_two,
        &format!(
            "UPDATE tenancy.tenants SET schema_name = 't_elsewhere' WHERE id = '{}'",
            rows[1].id
        ),
    )
    .await;
    // (and the schema it named, no line's now).
    let report = tenancy.verify_deployment().await.unwrap();
    assert_eq!(report.registry.len(), 2, "{:?}", report.registry);
    assert!(
        report
            .registry
            .iter()
            .any(|p| p.contains("two-a") && p.contains("t_elsewhere")),
        "{:?}",
        report.registry
    );
    assert!(
        report.registry.iter().any(|p| p.contains("t_two_a")),
        "{:?}",
        report.registry
    );
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_purge_drops_the_schema_in_the_home_and_its_old_contexts_cannot_write(db: TestTenancy) {
    let Some(urls) = server_urls("server_schemas_purge") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "server schemas").await.unwrap();
    let gone = tenancy
        .create_tenant(schema_on("gone", "s2"))
        .await
        .unwrap();
    let kept = tenancy
        .create_tenant(schema_on("kept", "s2"))
        .await
        .unwrap();
    let shared = tenancy
        .create_tenant(shared_on("shared", "s2"))
        .await
        .unwrap();
    // Another process resolved `gone` before the purge (its cache is behind).
    let other = builder(&urls).connect(db.url()).await.unwrap();
    let stale = other.resolve_id(gone.id).await.unwrap();
    for (id, n) in [(gone.id, 3), (kept.id, 2), (shared.id, 1)] {
        let ctx = tenancy.resolve_id(id).await.unwrap();
        for i in 0..n {
            spin(&ctx, Uuid::new_v4(), &format!("s{i}")).await;
        }
    }
    tenancy.soft_delete(&su, gone.id).await.unwrap();
    let purged = tenancy.purge(&su, gone.id).await.unwrap();
    assert_eq!(purged, Purged::Schema("t_gone".to_owned()));
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    assert_eq!(tenant_schemas_at(&home).await, ["t_kept"]);
    assert_eq!(
        lines_at(&home).await,
        [
            (kept.id.as_uuid(), Some("t_kept".to_owned())),
            (shared.id.as_uuid(), None),
        ]
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
    assert_eq!(tenant_schemas_at(&home).await, ["t_kept"]);
    // The other tenants of the home are untouched and still served.
    assert_eq!(
        names(&tenancy.resolve_id(kept.id).await.unwrap()).await,
        ["s0", "s1"]
    );
    assert_eq!(
        names(&tenancy.resolve_id(shared.id).await.unwrap()).await,
        ["s0"]
    );
    other.close().await;
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// The home's write fence reads where in the home the tenant's line says it lives: a context
/// resolved for the shared tables cannot write once the line names a schema, nor one resolved
/// for a schema once it names another or none, whatever the line's tenant id. (No move reaches
/// such a line today; a tenant that leaves a home and comes back the other way would.)
#[tenancy::test(migrations = "tests/migrations")]
async fn the_homes_fence_tells_a_schemas_writes_from_the_shared_tables(db: TestTenancy) {
    let Some(urls) = server_urls("server_schemas_fence") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let in_schema = tenancy
        .create_tenant(schema_on("in-schema", "s2"))
        .await
        .unwrap();
    let in_public = tenancy
        .create_tenant(shared_on("in-public", "s2"))
        .await
        .unwrap();
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let schema_ctx = tenancy.resolve_id(in_schema.id).await.unwrap();
    let public_ctx = tenancy.resolve_id(in_public.id).await.unwrap();
    spin(&schema_ctx, Uuid::new_v4(), "before").await;
    spin(&public_ctx, Uuid::new_v4(), "before").await;
    let set = |id: tenancy::TenantId, schema: &str| {
        format!("UPDATE tenancy.tenants SET schema_name = {schema} WHERE id = '{id}'")
    };
    let write = async |ctx: &tenancy::TenantCtx| {
        Spinner::repo()
            .insert(
                ctx,
                &NewSpinner {
                    id: Uuid::new_v4(),
                    name: "after".into(),
                    color: None,
                },
            )
            .await
    };
    // The shared-table tenant's line now names a schema: its writes to `public` stop.
    exec_at(&home, &set(in_public.id, "'t_in_public'")).await;
    let r = write(&public_ctx).await;
    assert!(
        matches!(r, Err(Error::TenantMoved(id)) if id == in_public.id),
        "{r:?}"
    );
    // The schema tenant's line names none, then another schema: its writes stop.
    for schema in ["NULL", "'t_other'"] {
        exec_at(&home, &set(in_schema.id, schema)).await;
        let r = write(&schema_ctx).await;
        assert!(
            matches!(r, Err(Error::TenantMoved(id)) if id == in_schema.id),
            "{schema}: {r:?}"
        );
    }
    // Put back as they were, both write again.
    exec_at(&home, &set(in_schema.id, "'t_in_schema'")).await;
    exec_at(&home, &set(in_public.id, "NULL")).await;
    write(&schema_ctx).await.unwrap();
    write(&public_ctx).await.unwrap();
    assert_eq!(
        count_at(&home, "SELECT count(*) FROM t_in_schema.spinners").await,
        2
    );
    assert_eq!(
        count_at(&home, "SELECT count(*) FROM public.spinners").await,
        2
    );
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn migrations_reach_schemas_in_homes_and_archives_go_in_and_out_of_them(db: TestTenancy) {
    let Some(urls) = server_urls("server_schemas_migrations") else {
        return;
    };
    let (v1, tag) = connected(&db, &urls).await;
    let two = v1.create_tenant(schema_on("two", "s2")).await.unwrap();
    v1.create_tenant(schema_on("three", "s3")).await.unwrap();
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
    let schemas = |targets: Vec<&MigrationTarget>| {
        let mut found: Vec<(String, String)> = targets
            .into_iter()
            .filter_map(|t| match t {
                MigrationTarget::ServerSchema { server, schema, .. } => {
                    Some((server.clone(), schema.clone()))
                }
                _ => None,
            })
            .collect();
        found.sort();
        found
    };
    let expected = [
        ("s2".to_owned(), "t_two".to_owned()),
        ("s3".to_owned(), "t_three".to_owned()),
    ];
    let pending = v2.pending_migrations(&su).await.unwrap();
    assert_eq!(schemas(pending.iter().map(|(t, _)| t).collect()), expected);
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
    assert_eq!(schemas(applied), expected, "{report:?}");
    assert!(v2.pending_migrations(&su).await.unwrap().is_empty());
    for (url, server, schema) in [(&urls.0, "s2", "t_two"), (&urls.1, "s3", "t_three")] {
        let has_size = format!(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = '{schema}' \
             AND table_name = 'spinners' AND column_name = 'size'"
        );
        assert_eq!(
            count_at(&url_of(url, &home_name(&tag, server)), &has_size).await,
            1
        );
    }
    // Later creations in a home get the schema at the latest migration.
    let late = v2.create_tenant(schema_on("late", "s2")).await.unwrap();
    assert!(v2.pending_migrations(&su).await.unwrap().is_empty());

    // Export reads the tenant's rows from its schema; import writes them into a schema
    // tenant of another home, a shared-table tenant of a home and a registry tenant.
    let ctx = v2.resolve_id(two.id).await.unwrap();
    for name in ["x", "y"] {
        spin(&ctx, Uuid::new_v4(), name).await;
    }
    let archive = v2.export_tenant(&su, two.id).await.unwrap();
    let intos = [
        v2.create_tenant(schema_on("copy-three", "s3"))
            .await
            .unwrap(),
        v2.create_tenant(shared_on("copy-shared", "s2"))
            .await
            .unwrap(),
        v2.create_tenant(shared_on("copy-here", "primary"))
            .await
            .unwrap(),
        late,
    ];
    for into in &intos {
        assert_eq!(v2.import_tenant(&su, &archive, into.id).await.unwrap(), 2);
        assert_eq!(
            names(&v2.resolve_id(into.id).await.unwrap()).await,
            ["x", "y"],
            "{}",
            into.slug
        );
    }
    // An import into a tenant that has rows is refused, and changes nothing.
    assert!(v2.import_tenant(&su, &archive, intos[0].id).await.is_err());
    let home_three = url_of(&urls.1, &home_name(&tag, "s3"));
    assert_eq!(
        count_at(&home_three, "SELECT count(*) FROM t_copy_three.spinners").await,
        2
    );
    assert_eq!(names(&ctx).await, ["x", "y"]);
    v2.close().await;
    drop_extra(&urls, &tag).await;
}

/// A creation that fails (a slug taken, a migration that fails in the new schema, a schema of
/// that name already in the home) leaves no registry row, no line and no schema of its own;
/// a line and schema a crash left are removed by the cleanup; a creation cut off at any await
/// leaves the tenant whole or absent.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_creation_in_a_home_that_fails_or_is_cut_off_leaves_nothing_half_made(db: TestTenancy) {
    let Some(urls) = server_urls("server_schemas_failed_creation") else {
        return;
    };
    let mut list: Vec<tenancy::Migration> = spinner_migrations().iter().cloned().collect();
    // Fails in schema t_bad only: the home itself (public) is made.
    list.push(tenancy::Migration::new(
        2,
        "refuse t_bad",
        "DO $$ BEGIN IF current_schema() = 't_bad' THEN \
         RAISE EXCEPTION 'no tables for t_bad'; END IF; END $$",
    ));
    let tenancy = builder(&urls)
        .tenant_migrations(Migrations::from_list(list).unwrap())
        .connect(db.url())
        .await
        .unwrap();
    let su = tenancy.superuser("test", "server schemas").await.unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    let tag = tag_of(&db).await;
    let kept = tenancy
        .create_tenant(schema_on("kept", "s2"))
        .await
        .unwrap();
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let only_kept = [(kept.id.as_uuid(), Some("t_kept".to_owned()))];

    // A slug taken on the registry.
    let r = tenancy.create_tenant(schema_on("kept", "s2")).await;
    assert!(matches!(r, Err(Error::SlugTaken(_))), "{r:?}");
    // A migration that fails in the new schema.
    let r = tenancy.create_tenant(schema_on("bad", "s2")).await;
    assert!(matches!(r, Err(Error::Migration(_))), "{r:?}");
    // A schema of that name already in the home, made around the library: left as it is.
    exec_at(
        &home,
        "CREATE SCHEMA t_squatter; CREATE TABLE t_squatter.mine (x int)",
    )
    .await;
    let r = tenancy.create_tenant(schema_on("squatter", "s2")).await;
    assert!(
        matches!(&r, Err(Error::Provision(m)) if m.contains("t_squatter")),
        "{r:?}"
    );
    assert_eq!(
        count_at(&home, "SELECT count(*) FROM t_squatter.mine").await,
        0
    );
    exec_at(&home, "DROP SCHEMA t_squatter CASCADE").await;
    let slugs: Vec<String> = sqlx::query_scalar("SELECT slug FROM tenancy.tenants ORDER BY slug")
        .fetch_all(&mut db.connect().await)
        .await
        .unwrap();
    assert_eq!(slugs, ["kept"]);
    assert_eq!(lines_at(&home).await, only_kept);
    assert_eq!(tenant_schemas_at(&home).await, ["t_kept"]);

    // A crash between the home's commit and the registry's: a line and its schema, no row.
    let leftover = Uuid::new_v4();
    exec_at(
        &home,
        &format!(
            "INSERT INTO tenancy.tenants (id, slug, schema_name) \
             VALUES ('{leftover}', 'crashed', 't_crashed'); \
             CREATE SCHEMA t_crashed; CREATE TABLE t_crashed.spinners (x int)"
        ),
    )
    .await;
    let cleaned = tenancy.cleanup_orphans(&su).await.unwrap();
    assert_eq!(
        cleaned,
        [format!("s2/{}: tenant {leftover}", home_name(&tag, "s2"))]
    );
    assert_eq!(lines_at(&home).await, only_kept);
    assert_eq!(tenant_schemas_at(&home).await, ["t_kept"]);

    // Cut off at every await in turn: whole or absent, never a line or schema alone.
    let mut k = 1;
    loop {
        let slug = format!("cut-{k}");
        let out =
            tenancy::testing::cancel_at(k, tenancy.create_tenant(schema_on(&slug, "s2"))).await;
        if let Some(created) = out {
            let row = created.unwrap();
            let ctx = tenancy.resolve_id(row.id).await.unwrap();
            spin(&ctx, Uuid::new_v4(), "whole").await;
            assert_eq!(names(&ctx).await, ["whole"]);
            break;
        }
        tenancy.cleanup_orphans(&su).await.unwrap();
        let registered: Vec<(Uuid, Option<String>)> =
            sqlx::query_as("SELECT id, schema_name FROM tenancy.tenants ORDER BY slug")
                .fetch_all(&mut db.connect().await)
                .await
                .unwrap();
        assert_eq!(lines_at(&home).await, registered, "cancelled at await {k}");
        let mut schemas: Vec<String> = registered.into_iter().filter_map(|(_, s)| s).collect();
        schemas.sort();
        assert_eq!(
            tenant_schemas_at(&home).await,
            schemas,
            "cancelled at await {k}"
        );
        k += 1;
        assert!(k < 500, "the creation never finished");
    }
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// Own-schema creations on one server at once all finish: each takes the home's lines first,
/// so the tenant migrations' key to them never makes two wait on each other.
#[tenancy::test(migrations = "tests/migrations")]
async fn concurrent_schema_creations_in_one_home_all_finish(db: TestTenancy) {
    let Some(urls) = server_urls("server_schemas_concurrent") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    // The home exists first, so that every creation below builds a schema in it at once.
    tenancy
        .create_tenant(schema_on("first", "s2"))
        .await
        .unwrap();
    let created = futures_util::future::join_all((0..8).map(|i| {
        let tenancy = tenancy.clone();
        async move {
            tenancy
                .create_tenant(schema_on(&format!("c{i}"), "s2"))
                .await
        }
    }))
    .await;
    for (i, c) in created.iter().enumerate() {
        assert!(c.is_ok(), "creation {i}: {c:?}");
    }
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    assert_eq!(tenant_schemas_at(&home).await.len(), 9);
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// What a home says is checked against the registry where it decides what goes: a purge
/// refuses a line that names another place than the registry (and drops the registry's
/// schema when the line is gone), a chosen id of another tenant makes nothing in the home,
/// and a home whose fence lost a function gets the home's fence back, not an own database's.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_home_that_lies_or_lost_its_fence_changes_nothing(db: TestTenancy) {
    let Some(urls) = server_urls("server_schemas_lies") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "server schemas").await.unwrap();
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let a = tenancy.create_tenant(schema_on("aa", "s2")).await.unwrap();
    let b = tenancy.create_tenant(schema_on("bb", "s2")).await.unwrap();
    for id in [a.id, b.id] {
        spin(
            &tenancy.resolve_id(id).await.unwrap(),
            Uuid::new_v4(),
            "kept",
        )
        .await;
    }
    // A's line edited to name no schema (as a shared-table tenant's): its purge is refused,
    // both schemas whole.
    exec_at(
        &home,
        &format!(
            "UPDATE tenancy.tenants SET schema_name = NULL WHERE id = '{}'",
            a.id
        ),
    )
    .await;
    tenancy.soft_delete(&su, a.id).await.unwrap();
    let r = tenancy.purge(&su, a.id).await;
    assert!(matches!(r, Err(Error::Provision(_))), "{r:?}");
    assert_eq!(tenant_schemas_at(&home).await, ["t_aa", "t_bb"]);
    // Its line gone (past the foreign keys): the purge drops the schema the registry names
    // all the same.
    exec_at(
        &home,
        &format!(
            "SET session_replication_role = replica; \
             DELETE FROM tenancy.tenants WHERE id = '{}'",
            a.id
        ),
    )
    .await;
    assert_eq!(
        tenancy.purge(&su, a.id).await.unwrap(),
        Purged::Schema("t_aa".to_owned())
    );
    assert_eq!(tenant_schemas_at(&home).await, ["t_bb"]);
    assert_eq!(
        names(&tenancy.resolve_id(b.id).await.unwrap()).await,
        ["kept"]
    );

    // Another tenant's id, chosen: refused, and nothing is made in the home.
    let here = tenancy
        .create_tenant(shared_on("here", "primary"))
        .await
        .unwrap();
    let r = tenancy
        .create_tenant_with_id(&su, schema_on("fresh", "s2"), here.id)
        .await;
    assert!(matches!(r, Err(Error::TenantIdTaken(_))), "{r:?}");
    assert_eq!(tenant_schemas_at(&home).await, ["t_bb"]);
    assert_eq!(lines_at(&home).await.len(), 1);
    tenancy
        .create_tenant(schema_on("fresh", "s2"))
        .await
        .unwrap();

    // A fence function dropped by hand: a new handle's first connection puts the home's back.
    exec_at(&home, "DROP FUNCTION tenancy.write_fence(uuid, text, text)").await;
    let again = builder(&urls).connect(db.url()).await.unwrap();
    let ctx = again.resolve_id(b.id).await.unwrap();
    spin(&ctx, Uuid::new_v4(), "after").await;
    assert_eq!(names(&ctx).await, ["after", "kept"]);
    again.close().await;
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// Reports over own-schema tenants of several homes, with the registry's tenants: the rows
/// with an order and a limit, and a count per tenant, agree with each tenant's own reads at
/// every batch size (a home's schemas are read together, a batch at a time).
#[tenancy::test(migrations = "tests/migrations")]
async fn reports_over_schemas_in_homes_agree_with_every_tenants_own_reads(db: TestTenancy) {
    let Some(urls) = server_urls("server_schemas_reports") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "reports").await.unwrap();
    let mut expected: Vec<(tenancy::TenantId, i32)> = Vec::new();
    let mut counts = Vec::new();
    for (i, new) in [
        NewTenant::new("r-here", "x").placement(Placement::OwnSchema),
        shared_on("r-shared", "primary"),
        schema_on("r-two-a", "s2"),
        schema_on("r-two-b", "s2"),
        schema_on("r-two-c", "s2"),
        shared_on("r-two-shared", "s2"),
        schema_on("r-three", "s3"),
    ]
    .into_iter()
    .enumerate()
    {
        let row = tenancy.create_tenant(new).await.unwrap();
        let ctx = tenancy.resolve_id(row.id).await.unwrap();
        let s = common::moving::spinner(&ctx, "main").await;
        let n = 2 + i;
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
    counts.sort();
    for batch in [1, 2, 100] {
        let top: Vec<(tenancy::TenantId, i32)> = Spin::repo()
            .report()
            .batch_size(batch)
            .order_by(Spin::DURATION.desc())
            .limit(9)
            .fetch_all(&su)
            .await
            .unwrap()
            .into_iter()
            .map(|(t, s)| (t, s.duration))
            .collect();
        assert_eq!(top, expected[..9], "batch {batch}");
        let count = Spin::repo()
            .report()
            .batch_size(batch)
            .aggregate(tenancy::Agg::count())
            .fetch(&su)
            .await
            .unwrap();
        assert_eq!(count.per_tenant, counts, "batch {batch}");
        let all = Spin::repo()
            .report()
            .batch_size(batch)
            .fetch_all(&su)
            .await
            .unwrap();
        assert_eq!(all.len(), expected.len(), "batch {batch}");
    }
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// A tenant moves out of its schema in a home to every other placement and server: its rows
/// go whole, a context resolved before the move cannot write to the old copy (the home's
/// line is sealed), the old schema stays until `purge_old_copy` drops it there, and the home's
/// other tenants are never touched.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_tenant_moves_out_of_its_schema_in_a_home_and_its_old_copy_is_purged_there(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("server_schemas_move_out") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "server schemas").await.unwrap();
    // Another process that does not hear of the move: its context reaches the fence.
    let other = builder(&urls)
        .listen_for_changes(false)
        .connect(db.url())
        .await
        .unwrap();
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let neighbour = tenancy
        .create_tenant(schema_on("neighbour", "s2"))
        .await
        .unwrap();
    let shared = tenancy
        .create_tenant(shared_on("shared", "s2"))
        .await
        .unwrap();
    for id in [neighbour.id, shared.id] {
        spin(
            &tenancy.resolve_id(id).await.unwrap(),
            Uuid::new_v4(),
            "stays",
        )
        .await;
    }
    let targets = [
        ("to-shared", Placement::SharedTable, None, "primary"),
        ("to-schema", Placement::OwnSchema, None, "primary"),
        ("to-database", Placement::OwnDatabase, Some("s3"), "s3"),
        ("to-home", Placement::SharedTable, Some("s3"), "s3"),
    ];
    for (slug, to, server, lands) in targets {
        let row = tenancy.create_tenant(schema_on(slug, "s2")).await.unwrap();
        let ctx = tenancy.resolve_id(row.id).await.unwrap();
        for name in ["a", "b", "c"] {
            spin(&ctx, Uuid::new_v4(), name).await;
        }
        // Another process resolved it before the move (its cache is behind).
        let stale = other.resolve_id(row.id).await.unwrap();
        let mut options = tenancy::MoveOptions::default();
        if let Some(server) = server {
            options = options.server(server);
        }
        let moved = tenancy
            .move_tenant_with(&su, row.id, to, options)
            .await
            .unwrap();
        assert_eq!((moved.to, moved.server.as_str()), (to, lands), "{slug}");
        assert_eq!(moved.rows(), 3, "{slug}");
        assert_eq!(
            (moved.old_copy.placement, moved.old_copy.server.as_deref()),
            (Placement::OwnSchema, Some("s2")),
            "{slug}"
        );
        let now = tenancy.resolve_id(row.id).await.unwrap();
        assert_eq!(names(&now).await, ["a", "b", "c"], "{slug}");
        // The stale context's write is refused, and lands in neither copy.
        let late = Spinner::repo()
            .insert(
                &stale,
                &NewSpinner {
                    id: Uuid::new_v4(),
                    name: "late".into(),
                    color: None,
                },
            )
            .await;
        assert!(
            matches!(late, Err(Error::TenantMoved(id)) if id == row.id),
            "{slug}: {late:?}"
        );
        let schema = format!("t_{}", slug.replace('-', "_"));
        let old_rows = format!("SELECT count(*) FROM {schema}.spinners");
        assert_eq!(
            count_at(&home, &old_rows).await,
            3,
            "{slug}: the old copy is kept"
        );
        assert_eq!(names(&now).await, ["a", "b", "c"], "{slug}");
        // The new copy takes writes.
        spin(&now, Uuid::new_v4(), "d").await;
        // Purging the old copy drops the schema and the line in the home, nothing else.
        let purged = tenancy.purge_old_copy(&su, row.id).await.unwrap();
        assert_eq!(purged, [Purged::Schema(schema.clone())], "{slug}");
        assert!(
            !tenant_schemas_at(&home).await.contains(&schema),
            "{slug}: the old schema is gone"
        );
        assert!(
            !lines_at(&home)
                .await
                .iter()
                .any(|(id, _)| *id == row.id.as_uuid()),
            "{slug}: the old line is gone"
        );
        assert_eq!(names(&now).await, ["a", "b", "c", "d"], "{slug}");
    }
    for id in [neighbour.id, shared.id] {
        assert_eq!(
            names(&tenancy.resolve_id(id).await.unwrap()).await,
            ["stays"]
        );
    }
    other.close().await;
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// A tenant moves into an own schema on another server from every placement and server
/// while two processes write it: every acknowledged write is in the new schema, none in the
/// old copy after its seal, a context resolved before cannot write afterwards, and the old
/// copy is purged where it is.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_tenant_moves_into_an_own_schema_on_another_server_from_everywhere_under_writes(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("server_schemas_move_in") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let second = builder(&urls)
        .max_connections(4)
        .listen_for_changes(false)
        .connect(db.url())
        .await
        .unwrap();
    let su = tenancy.superuser("test", "move in").await.unwrap();
    let home_two = url_of(&urls.0, &home_name(&tag, "s2"));
    let home_three = url_of(&urls.1, &home_name(&tag, "s3"));
    let own_on_three = tenancy::MoveOptions::default().server("s3");
    let sources: [(&'static str, NewTenant); 5] = [
        ("from-shared", shared_on("from-shared", "primary")),
        (
            "from-schema",
            NewTenant::new("from-schema", "x").placement(Placement::OwnSchema),
        ),
        ("from-database", own_db("from-database", "s3")),
        ("from-home", shared_on("from-home", "s3")),
        ("from-home-schema", schema_on("from-home-schema", "s3")),
    ];
    for (slug, new) in sources {
        let row = tenancy.create_tenant(new).await.unwrap();
        let from = row.placement;
        let a = tenancy.resolve_id(row.id).await.unwrap();
        let sa = common::moving::fill(&a, 50).await;
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
                slug,
                sa.id,
                counter,
                stop.clone(),
            ))
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let moved = tenancy
            .move_tenant_with(
                &su,
                row.id,
                Placement::OwnSchema,
                tenancy::MoveOptions::default()
                    .server("s2")
                    .hold_fence(std::time::Duration::from_millis(200)),
            )
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut acked = Vec::new();
        for w in writers {
            acked.push(w.await.unwrap());
        }
        assert_eq!(
            (moved.from, moved.to, moved.server.as_str()),
            (from, Placement::OwnSchema, "s2"),
            "{slug}"
        );
        let schema = format!("t_{}", slug.replace('-', "_"));
        assert_eq!(moved.schema.as_deref(), Some(schema.as_str()), "{slug}");
        let new_copy = spin_ids_at(&home_two, &format!("{schema}.spins"), row.id).await;
        let old_copy = match slug {
            "from-shared" => spin_ids_at(db.url(), "public.spins", row.id).await,
            "from-schema" => {
                let old = moved.old_copy.schema.clone().unwrap();
                spin_ids_at(db.url(), &format!("{old}.spins"), row.id).await
            }
            "from-database" => {
                let database = moved.old_copy.database.clone().unwrap();
                spin_ids_at(&url_of(&urls.1, &database), "public.spins", row.id).await
            }
            "from-home" => spin_ids_at(&home_three, "public.spins", row.id).await,
            _ => spin_ids_at(&home_three, &format!("{schema}.spins"), row.id).await,
        };
        common::moving::acknowledged_writes_are_in_the_new_copy(
            &acked, &moved, &new_copy, &old_copy,
        );
        // A context resolved before the move: its write is refused and lands in neither copy.
        let late = common::moving::new_spin(sa.id, -1);
        let r = Spin::repo().insert(&stale, &late).await;
        assert!(r.is_err(), "{slug}: a stale write was acknowledged");
        assert!(
            !spin_ids_at(&home_two, &format!("{schema}.spins"), row.id)
                .await
                .contains(&late.id),
            "{slug}"
        );
        let now = tenancy.resolve_id(row.id).await.unwrap();
        let rows = Spin::repo().query().fetch_all(&now).await.unwrap().len();
        assert_eq!(rows, new_copy.len(), "{slug}");
        let purged = tenancy.purge_old_copy(&su, row.id).await.unwrap();
        assert_eq!(purged.len(), 1, "{slug}: {purged:?}");
        assert_eq!(
            Spin::repo().query().fetch_all(&now).await.unwrap().len(),
            rows,
            "{slug}"
        );
        // It moves on again, out of the home, whole.
        let back = tenancy
            .move_tenant_with(&su, row.id, Placement::OwnDatabase, own_on_three.clone())
            .await
            .unwrap();
        assert_eq!(
            back.rows() as usize,
            rows + 1,
            "{slug}: the spinner and its spins"
        );
    }
    second.close().await;
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// A move into an own schema on another server cut off at every await in turn: the tenant
/// stays whole where the registry says it lives, writable there, and the run that finishes
/// copies its rows exactly once, whatever the cut-off runs left in the home.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_move_into_a_schema_in_a_home_cancelled_at_any_await_leaves_the_tenant_whole(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("server_schemas_cancelled_move") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "cancelled move").await.unwrap();
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
            tenancy.move_tenant_with(&su, row.id, Placement::OwnSchema, to.clone()),
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
    assert_eq!(
        spin_ids_at(&home, "t_acme.spins", row.id).await.len(),
        rows,
        "every row exactly once in the schema"
    );
    assert_eq!(
        Spin::repo().query().fetch_all(&now).await.unwrap().len(),
        rows
    );
    assert_eq!(tenant_schemas_at(&home).await, ["t_acme"]);
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// Moves between the shared tables and an own schema of one home, both ways, while two
/// processes write: every acknowledged write is in the new place, a context resolved before
/// cannot write to the old one (the line names the new place), the old place is kept until
/// `purge_old_copy` removes it alone, and the home's other tenants are untouched.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_tenant_moves_between_the_shared_tables_and_a_schema_of_one_home_under_writes(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("server_schemas_same_home") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let second = builder(&urls)
        .max_connections(4)
        .listen_for_changes(false)
        .connect(db.url())
        .await
        .unwrap();
    let su = tenancy.superuser("test", "same home").await.unwrap();
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let neighbour = tenancy
        .create_tenant(shared_on("neighbour", "s2"))
        .await
        .unwrap();
    let n = tenancy.resolve_id(neighbour.id).await.unwrap();
    common::moving::fill(&n, 5).await;
    let row = tenancy
        .create_tenant(shared_on("acme", "s2"))
        .await
        .unwrap();
    let a = tenancy.resolve_id(row.id).await.unwrap();
    let sa = common::moving::fill(&a, 40).await;
    let counter = Spin::repo()
        .insert(&a, &common::moving::new_spin(sa.id, 0))
        .await
        .unwrap()
        .id;
    // Back out of the schema, the old one is renamed after the tenant.
    let old_schema = format!("tenancy_old_{}", row.id.as_uuid().simple());
    let old_schema_table = format!("{old_schema}.spins");
    for (to, new_table, old_table) in [
        (Placement::OwnSchema, "t_acme.spins", "public.spins"),
        (
            Placement::SharedTable,
            "public.spins",
            old_schema_table.as_str(),
        ),
    ] {
        // A process that resolved it just before this move and does not hear of it (a new
        // one each time: a handle's cache would still hold the place before the last move).
        let behind = builder(&urls)
            .listen_for_changes(false)
            .connect(db.url())
            .await
            .unwrap();
        let stale = behind.resolve_id(row.id).await.unwrap();
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
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let moved = tenancy
            .move_tenant_with(
                &su,
                row.id,
                to,
                tenancy::MoveOptions::default()
                    .server("s2")
                    .hold_fence(std::time::Duration::from_millis(200)),
            )
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut acked = Vec::new();
        for w in writers {
            acked.push(w.await.unwrap());
        }
        assert_eq!((moved.to, moved.server.as_str()), (to, "s2"));
        assert_eq!(moved.old_copy.server.as_deref(), Some("s2"));
        let new_copy = spin_ids_at(&home, new_table, row.id).await;
        let old_copy = spin_ids_at(&home, old_table, row.id).await;
        common::moving::acknowledged_writes_are_in_the_new_copy(
            &acked, &moved, &new_copy, &old_copy,
        );
        let late = common::moving::new_spin(sa.id, -1);
        let r = Spin::repo().insert(&stale, &late).await;
        // Refused by the fence (the line names the new place); a context of the old schema,
        // renamed, by its process's first check of the table there, as moved all the same.
        assert!(
            matches!(r, Err(Error::TenantMoved(id)) if id == row.id),
            "{to}: {r:?}"
        );
        assert!(
            !spin_ids_at(&home, new_table, row.id)
                .await
                .contains(&late.id)
        );
        assert!(
            !spin_ids_at(&home, old_table, row.id)
                .await
                .contains(&late.id)
        );
        behind.close().await;
        // The old place is a recorded old copy, no stray; it goes alone, the line and the
        // rows of the new place stay.
        let report = tenancy.verify_deployment().await.unwrap();
        assert!(report.registry.is_empty(), "{to}: {:?}", report.registry);
        tenancy.purge_old_copy(&su, row.id).await.unwrap();
        if to == Placement::OwnSchema {
            assert!(spin_ids_at(&home, old_table, row.id).await.is_empty());
        } else {
            let gone = format!(
                "SELECT count(*) FROM pg_namespace WHERE nspname IN ('t_acme', '{old_schema}')"
            );
            assert_eq!(count_at(&home, &gone).await, 0);
        }
        let now = tenancy.resolve_id(row.id).await.unwrap();
        assert_eq!(
            Spin::repo().query().fetch_all(&now).await.unwrap().len(),
            new_copy.len(),
            "{to}"
        );
        assert_eq!(
            spin_ids_at(&home, "public.spins", neighbour.id).await.len(),
            5
        );
    }
    // Back on the shared tables, the old schema gone.
    assert!(tenant_schemas_at(&home).await.is_empty());
    second.close().await;
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// A move between the shared tables and an own schema of one home cut off at every await in
/// turn: the tenant's rows are whole where its line says, and the run that finishes (a run
/// after one cut off between the home's commit and the registry's only switches the registry)
/// leaves them exactly once in the schema.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_move_inside_one_home_cancelled_at_any_await_leaves_the_tenant_whole(db: TestTenancy) {
    let Some(urls) = server_urls("server_schemas_same_home_cancelled") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "cancelled move").await.unwrap();
    let row = tenancy
        .create_tenant(shared_on("acme", "s2"))
        .await
        .unwrap();
    let ctx = tenancy.resolve_id(row.id).await.unwrap();
    common::moving::fill(&ctx, 6).await;
    let mut conn = db.connect().await;
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let to = tenancy::MoveOptions::default().server("s2");
    let mut k = 1;
    loop {
        // A run cut off after the home's commit left the line naming the new schema: the next
        // one only switches the registry, and says so.
        let copied = lines_at(&home)
            .await
            .contains(&(row.id.as_uuid(), Some("t_acme".to_owned())));
        let out = tenancy::testing::cancel_at(
            k,
            tenancy.move_tenant_with(&su, row.id, Placement::OwnSchema, to.clone()),
        )
        .await;
        if let Some(moved) = out {
            let moved = moved.unwrap();
            assert_eq!(moved.resumed, copied, "{moved:?}");
            assert_eq!(moved.rows(), if copied { 0 } else { 7 }, "{moved:?}");
            break;
        }
        common::no_transaction_left_open(&mut conn).await;
        if tenancy.tenant(&su, row.id).await.unwrap().placement == Placement::OwnSchema {
            break; // cut off with its commit on the wire
        }
        let lines = lines_at(&home).await;
        let here = if lines.contains(&(row.id.as_uuid(), None)) {
            "public.spins"
        } else {
            "t_acme.spins"
        };
        assert_eq!(
            spin_ids_at(&home, here, row.id).await.len(),
            6,
            "the rows are whole where the line says at await {k}"
        );
        k += 1;
        assert!(k < 500, "the move never finished");
    }
    let now = tenancy.resolve_id(row.id).await.unwrap();
    assert_eq!(
        spin_ids_at(&home, "t_acme.spins", row.id).await.len(),
        6,
        "every row exactly once in the schema"
    );
    assert_eq!(Spin::repo().query().fetch_all(&now).await.unwrap().len(), 6);
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// Old places in a home are purged where the registry records them and are never another
/// tenant's: a move inside the home renames the old schema after the tenant, so a tenant that
/// later takes the slug (and the schema name) keeps its schema when the first tenant's old
/// copies go, and an old schema outlives no move out of the home.
#[tenancy::test(migrations = "tests/migrations")]
async fn old_places_in_a_home_go_where_recorded_and_never_a_neighbours(db: TestTenancy) {
    let Some(urls) = server_urls("server_schemas_old_places") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "old places").await.unwrap();
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let all_schemas = async || -> Vec<String> {
        let mut conn = PgConnection::connect(&home).await.unwrap();
        let names = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace \
             WHERE starts_with(nspname, 't_') OR starts_with(nspname, 'tenancy_old_') ORDER BY 1",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        names
    };
    let x = tenancy.create_tenant(schema_on("xx", "s2")).await.unwrap();
    spin(
        &tenancy.resolve_id(x.id).await.unwrap(),
        Uuid::new_v4(),
        "x",
    )
    .await;
    let to_shared = tenancy::MoveOptions::default().server("s2");
    let moved = tenancy
        .move_tenant_with(&su, x.id, Placement::SharedTable, to_shared)
        .await
        .unwrap();
    let old = format!("tenancy_old_{}", x.id.as_uuid().simple());
    assert_eq!(moved.old_copy.schema.as_deref(), Some(old.as_str()));
    assert_eq!(all_schemas().await, std::slice::from_ref(&old));
    // Another tenant takes the slug, and the schema name, in the same home.
    tenancy.rename_slug(&su, x.id, "xx-renamed").await.unwrap();
    let y = tenancy.create_tenant(schema_on("xx", "s2")).await.unwrap();
    spin(
        &tenancy.resolve_id(y.id).await.unwrap(),
        Uuid::new_v4(),
        "y",
    )
    .await;
    // The first tenant moves out of the home: its line is sealed, two old copies are there.
    tenancy
        .move_tenant(&su, x.id, Placement::SharedTable)
        .await
        .unwrap();
    let purged = tenancy.purge_old_copy(&su, x.id).await.unwrap();
    assert_eq!(purged.len(), 2, "{purged:?}");
    assert_eq!(
        all_schemas().await,
        ["t_xx"],
        "the old schema went, the neighbour's stayed"
    );
    assert_eq!(
        lines_at(&home).await,
        [(y.id.as_uuid(), Some("t_xx".to_owned()))]
    );
    assert!(spin_ids_at(&home, "public.spins", x.id).await.is_empty());
    assert_eq!(names(&tenancy.resolve_id(y.id).await.unwrap()).await, ["y"]);
    assert_eq!(names(&tenancy.resolve_id(x.id).await.unwrap()).await, ["x"]);
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// A context left from an earlier stay of a tenant in a home (its process does not hear of
/// moves) cannot write into the copy a move back into that place is making: the line is
/// pending until the registry places the tenant there, then live, and the context's writes
/// land in the live copy. A line left pending by a move cut off after the registry's commit is
/// made live by the cleanup, or by the first write it refuses.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_context_of_an_earlier_stay_cannot_write_into_a_move_back_before_its_switch(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("server_schemas_earlier_stay") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "earlier stay").await.unwrap();
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let row = tenancy
        .create_tenant(shared_on("acme", "s2"))
        .await
        .unwrap();
    spin(
        &tenancy.resolve_id(row.id).await.unwrap(),
        Uuid::new_v4(),
        "first",
    )
    .await;
    let behind = builder(&urls)
        .listen_for_changes(false)
        .connect(db.url())
        .await
        .unwrap();
    let earlier = behind.resolve_id(row.id).await.unwrap();
    tenancy
        .move_tenant(&su, row.id, Placement::SharedTable)
        .await
        .unwrap();
    tenancy.purge_old_copy(&su, row.id).await.unwrap();
    // Back into s2's home, held before its switch: the earlier context's write is refused.
    let back = {
        let tenancy = tenancy.clone();
        let su = tenancy.superuser("test", "move back").await.unwrap();
        tokio::spawn(async move {
            tenancy
                .move_tenant_with(
                    &su,
                    row.id,
                    Placement::SharedTable,
                    tenancy::MoveOptions::default()
                        .server("s2")
                        .hold_before_switch(std::time::Duration::from_millis(1500)),
                )
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let late = NewSpinner {
        id: Uuid::new_v4(),
        name: "during".into(),
        color: None,
    };
    let r = Spinner::repo().insert(&earlier, &late).await;
    assert!(matches!(r, Err(Error::TenantMoved(_))), "{r:?}");
    back.await.unwrap().unwrap();
    // Switched: the line is live, the context's writes land in the live copy.
    let live = format!(
        "SELECT count(*) FROM tenancy.tenants WHERE id = '{}' AND moved_at IS NULL",
        row.id
    );
    assert_eq!(count_at(&home, &live).await, 1);
    spin(&earlier, Uuid::new_v4(), "after").await;
    assert_eq!(
        names(&tenancy.resolve_id(row.id).await.unwrap()).await,
        ["after", "first"]
    );
    // A line left pending after the registry's commit: the cleanup makes it live.
    exec_at(
        &home,
        &format!(
            "UPDATE tenancy.tenants SET moved_at = '-infinity' WHERE id = '{}'",
            row.id
        ),
    )
    .await;
    assert_eq!(count_at(&home, &live).await, 0);
    tenancy.cleanup_orphans(&su).await.unwrap();
    assert_eq!(count_at(&home, &live).await, 1);
    spin(
        &tenancy.resolve_id(row.id).await.unwrap(),
        Uuid::new_v4(),
        "again",
    )
    .await;
    // With no cleanup: the first write refused is retryable and makes the line live, so the
    // retry lands.
    exec_at(
        &home,
        &format!(
            "UPDATE tenancy.tenants SET moved_at = '-infinity' WHERE id = '{}'",
            row.id
        ),
    )
    .await;
    let fresh = tenancy.resolve_id(row.id).await.unwrap();
    let retried = NewSpinner {
        id: Uuid::new_v4(),
        name: "retried".into(),
        color: None,
    };
    let r = Spinner::repo().insert(&fresh, &retried).await;
    assert!(matches!(r, Err(Error::TenantMoved(_))), "{r:?}");
    assert_eq!(
        count_at(&home, &live).await,
        1,
        "the refused write healed the line"
    );
    Spinner::repo().insert(&fresh, &retried).await.unwrap();
    behind.close().await;
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// A mover stalled after its switch (a process paused there) makes its line live late: by
/// then the tenant moved out and a move back is on its way, its own line pending. The late
/// activation must not open that pending line before the later move's switch (a context of the
/// earlier stay would write into a copy a failure of the later move takes back): it waits for
/// the later move and checks the registry under its lock.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_late_activation_never_opens_the_pending_line_of_a_later_move_back(db: TestTenancy) {
    let Some(urls) = server_urls("server_schemas_late_activation") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "late activation").await.unwrap();
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let row = tenancy
        .create_tenant(shared_on("acme", "primary"))
        .await
        .unwrap();
    spin(
        &tenancy.resolve_id(row.id).await.unwrap(),
        Uuid::new_v4(),
        "first",
    )
    .await;
    let to_s2 = tenancy::MoveOptions::default().server("s2");
    // A: into s2's home, stalled between its switch and its line going live.
    let stalled = std::time::Duration::from_secs(8);
    let first = {
        let (tenancy, to) = (tenancy.clone(), to_s2.clone().hold_after_switch(stalled));
        let su = tenancy.superuser("test", "stalled mover").await.unwrap();
        tokio::spawn(async move {
            tenancy
                .move_tenant_with(&su, row.id, Placement::SharedTable, to)
                .await
        })
    };
    tenancy::testing::eventually(
        "the first move switched",
        std::time::Duration::from_secs(30),
        async || tenancy.tenant(&su, row.id).await.unwrap().server == "s2",
    )
    .await;
    let switched = std::time::Instant::now();
    // A context of that stay, from a process that hears of no move.
    let behind = builder(&urls)
        .listen_for_changes(false)
        .connect(db.url())
        .await
        .unwrap();
    let earlier = behind.resolve_id(row.id).await.unwrap();
    // B: out again (each old copy purged first); C: back in, held before its switch.
    tenancy.purge_old_copy(&su, row.id).await.unwrap();
    tenancy
        .move_tenant(&su, row.id, Placement::SharedTable)
        .await
        .unwrap();
    tenancy.purge_old_copy(&su, row.id).await.unwrap();
    let back = {
        let (tenancy, to) = (
            tenancy.clone(),
            to_s2
                .clone()
                .hold_before_switch(std::time::Duration::from_secs(15)),
        );
        let su = tenancy.superuser("test", "move back").await.unwrap();
        tokio::spawn(async move {
            tenancy
                .move_tenant_with(&su, row.id, Placement::SharedTable, to)
                .await
        })
    };
    // Past the first mover's stall, inside the second's hold.
    tokio::time::sleep(
        (stalled + std::time::Duration::from_millis(1500)).saturating_sub(switched.elapsed()),
    )
    .await;
    assert!(
        !back.is_finished(),
        "the setup outlasted the second move's hold: nothing was tested"
    );
    let pending = format!(
        "SELECT count(*) FROM tenancy.tenants WHERE id = '{}' AND moved_at = '-infinity'",
        row.id
    );
    assert_eq!(
        count_at(&home, &pending).await,
        1,
        "the later move's line is pending"
    );
    // The cleanup (run at every handle's start too) neither waits for the move in flight nor
    // opens its line.
    tokio::time::timeout(
        std::time::Duration::from_secs(4),
        tenancy.cleanup_orphans(&su),
    )
    .await
    .expect("the cleanup waited for the move in flight")
    .unwrap();
    assert_eq!(
        count_at(&home, &pending).await,
        1,
        "the cleanup opened the line"
    );
    let late = NewSpinner {
        id: Uuid::new_v4(),
        name: "late".into(),
        color: None,
    };
    let r = Spinner::repo().insert(&earlier, &late).await;
    assert!(matches!(r, Err(Error::TenantMoved(_))), "{r:?}");
    back.await.unwrap().unwrap();
    let moved = first.await.unwrap().unwrap();
    assert_eq!(moved.writes_held, None);
    // Switched: the context's writes land in the live copy.
    spin(&earlier, Uuid::new_v4(), "after").await;
    assert_eq!(
        names(&tenancy.resolve_id(row.id).await.unwrap()).await,
        ["after", "first"]
    );
    behind.close().await;
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// A write refused inside the tenant's transaction by a pending line, on a home whose default is
/// REPEATABLE READ (where the fence share-locks the line): the refusal comes back at once (the
/// aborted transaction holds no lock the heal would wait for) and makes the line live, so the
/// retry in a new transaction lands.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_write_refused_in_a_transaction_by_a_pending_line_neither_hangs_nor_stays_refused(
    db: TestTenancy,
) {
    let Some(urls) = server_urls("server_schemas_pending_in_tx") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let row = tenancy
        .create_tenant(shared_on("acme", "s2"))
        .await
        .unwrap();
    let home_db = home_name(&tag, "s2");
    let home = url_of(&urls.0, &home_db);
    exec_at(
        &urls.0,
        &format!(
            "ALTER DATABASE \"{home_db}\" SET default_transaction_isolation = 'repeatable read'"
        ),
    )
    .await;
    // The home's connections made before the setting keep READ COMMITTED: a new handle.
    let fresh = builder(&urls).connect(db.url()).await.unwrap();
    let ctx = fresh.resolve_id(row.id).await.unwrap();
    spin(&ctx, Uuid::new_v4(), "before").await;
    let live = format!(
        "SELECT count(*) FROM tenancy.tenants WHERE id = '{}' AND moved_at IS NULL",
        row.id
    );
    exec_at(
        &home,
        &format!(
            "UPDATE tenancy.tenants SET moved_at = '-infinity' WHERE id = '{}'",
            row.id
        ),
    )
    .await;
    let mut tx = ctx.begin().await.unwrap();
    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        Spinner::repo().insert(
            &mut tx,
            &NewSpinner {
                id: Uuid::new_v4(),
                name: "in tx".into(),
                color: None,
            },
        ),
    )
    .await
    .expect("the refused write came back");
    assert!(matches!(refused, Err(Error::TenantMoved(_))), "{refused:?}");
    assert_eq!(
        count_at(&home, &live).await,
        1,
        "the refusal made the line live"
    );
    tx.rollback().await.unwrap();
    let mut tx = ctx.begin().await.unwrap();
    Spinner::repo()
        .insert(
            &mut tx,
            &NewSpinner {
                id: Uuid::new_v4(),
                name: "after".into(),
                color: None,
            },
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(names(&ctx).await, ["after", "before"]);
    fresh.close().await;
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// A tenant whose line in its home a move cut off after its switch left pending moves on all the
/// same, inside its home and out of it: the move holds the registry row that places the tenant
/// there, so it makes the line live first.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_line_left_pending_does_not_stop_the_next_move(db: TestTenancy) {
    let Some(urls) = server_urls("server_schemas_pending_then_move") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy
        .superuser("test", "pending then move")
        .await
        .unwrap();
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let row = tenancy
        .create_tenant(shared_on("acme", "s2"))
        .await
        .unwrap();
    spin(
        &tenancy.resolve_id(row.id).await.unwrap(),
        Uuid::new_v4(),
        "a",
    )
    .await;
    let leave_pending = format!(
        "UPDATE tenancy.tenants SET moved_at = '-infinity' WHERE id = '{}'",
        row.id
    );
    exec_at(&home, &leave_pending).await;
    let moved = tenancy
        .move_tenant_with(
            &su,
            row.id,
            Placement::OwnSchema,
            tenancy::MoveOptions::default().server("s2"),
        )
        .await
        .unwrap();
    assert_eq!(moved.rows(), 1);
    let ctx = tenancy.resolve_id(row.id).await.unwrap();
    spin(&ctx, Uuid::new_v4(), "b").await;
    tenancy.purge_old_copy(&su, row.id).await.unwrap();
    exec_at(&home, &leave_pending).await;
    let moved = tenancy
        .move_tenant(&su, row.id, Placement::SharedTable)
        .await
        .unwrap();
    assert_eq!((moved.rows(), moved.server.as_str()), (2, "primary"));
    assert_eq!(
        names(&tenancy.resolve_id(row.id).await.unwrap()).await,
        ["a", "b"]
    );
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// `verify_deployment` names a tenant whose line in its home is pending (a move cut off after
/// its switch), and checks a home that no tenant lives in any more: a schema there that is no
/// one's, its tables' row-level security.
#[tenancy::test(migrations = "tests/migrations")]
async fn verify_deployment_names_pending_lines_and_checks_homes_left_empty(db: TestTenancy) {
    let Some(urls) = server_urls("server_schemas_verify_empty") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "verify").await.unwrap();
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let row = tenancy
        .create_tenant(shared_on("acme", "s2"))
        .await
        .unwrap();
    let about_acme = |report: &tenancy::DeploymentReport| {
        report
            .registry
            .iter()
            .filter(|p| p.contains("\"acme\""))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        about_acme(&tenancy.verify_deployment().await.unwrap()),
        Vec::<String>::new()
    );
    exec_at(
        &home,
        &format!(
            "UPDATE tenancy.tenants SET moved_at = '-infinity' WHERE id = '{}'",
            row.id
        ),
    )
    .await;
    let pending = about_acme(&tenancy.verify_deployment().await.unwrap());
    assert!(
        pending.len() == 1 && pending[0].contains("pending"),
        "{pending:?}"
    );
    tenancy.cleanup_orphans(&su).await.unwrap();
    assert_eq!(
        about_acme(&tenancy.verify_deployment().await.unwrap()),
        Vec::<String>::new()
    );
    // Out of the home, its old copy purged: no tenant lives there.
    tenancy
        .move_tenant(&su, row.id, Placement::SharedTable)
        .await
        .unwrap();
    tenancy.purge_old_copy(&su, row.id).await.unwrap();
    assert!(lines_at(&home).await.is_empty());
    exec_at(&home, "CREATE SCHEMA t_stray").await;
    let report = tenancy.verify_deployment().await.unwrap();
    assert!(
        report.registry.iter().any(|p| p.contains("t_stray")),
        "{report:?}"
    );
    assert!(
        report
            .row_level_security
            .iter()
            .any(|t| t.table == "s2:public.spinners"),
        "{report:?}"
    );
    // A listed server with no tenant that cannot be reached is reported; the rest still is.
    let down: sqlx::postgres::PgConnectOptions =
        "postgres://postgres@127.0.0.1:1/postgres".parse().unwrap();
    let with_down = builder(&urls)
        .server("s9", down)
        .connect(db.url())
        .await
        .unwrap();
    let su9 = with_down.superuser("test", "list s9").await.unwrap();
    with_down.add_server(&su9, "s9").await.unwrap();
    let report = with_down.verify_deployment().await.unwrap();
    assert!(
        report
            .registry
            .iter()
            .any(|p| p.starts_with("server s9: cannot be reached")),
        "{report:?}"
    );
    assert!(
        report.registry.iter().any(|p| p.contains("t_stray")),
        "{report:?}"
    );
    with_down.close().await;
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}

/// A move into a home that still keeps the tenant's old copy (which would give it two lines
/// there) is refused before anything changes, and goes once the old copy is purged.
#[tenancy::test(migrations = "tests/migrations")]
async fn moves_a_home_cannot_take_are_refused_and_change_nothing(db: TestTenancy) {
    let Some(urls) = server_urls("server_schemas_moves_refused") else {
        return;
    };
    let (tenancy, tag) = connected(&db, &urls).await;
    let su = tenancy.superuser("test", "server schemas").await.unwrap();
    let home = url_of(&urls.0, &home_name(&tag, "s2"));
    let there = tenancy
        .create_tenant(schema_on("there", "s2"))
        .await
        .unwrap();
    let shared = tenancy
        .create_tenant(shared_on("shared", "s2"))
        .await
        .unwrap();
    let here = tenancy
        .create_tenant(shared_on("here", "primary"))
        .await
        .unwrap();
    for (id, name) in [(there.id, "t"), (shared.id, "s"), (here.id, "h")] {
        spin(&tenancy.resolve_id(id).await.unwrap(), Uuid::new_v4(), name).await;
    }
    let refused = async |id: tenancy::TenantId, to: Placement, server: &str| {
        let options = tenancy::MoveOptions::default().server(server);
        let r = tenancy.move_tenant_with(&su, id, to, options).await;
        assert!(
            matches!(r, Err(Error::MoveRefused { .. })),
            "{to} {server}: {r:?}"
        );
    };
    let before = lines_at(&home).await;
    // Out of the home, then back while its old copy is kept there: refused until purged.
    tenancy
        .move_tenant(&su, there.id, Placement::SharedTable)
        .await
        .unwrap();
    refused(there.id, Placement::SharedTable, "s2").await;
    assert_eq!(
        count_at(&home, "SELECT count(*) FROM t_there.spinners").await,
        1
    );
    tenancy.purge_old_copy(&su, there.id).await.unwrap();
    let back = tenancy
        .move_tenant_with(
            &su,
            there.id,
            Placement::SharedTable,
            tenancy::MoveOptions::default().server("s2"),
        )
        .await
        .unwrap();
    assert_eq!(back.server, "s2");
    for (id, name) in [(there.id, "t"), (shared.id, "s"), (here.id, "h")] {
        assert_eq!(names(&tenancy.resolve_id(id).await.unwrap()).await, [name]);
    }
    assert_eq!(
        lines_at(&home).await.len(),
        before.len(),
        "one line for each tenant, the one that came back without a schema"
    );
    tenancy.close().await;
    drop_extra(&urls, &tag).await;
}
