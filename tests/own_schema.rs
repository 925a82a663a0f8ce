//! The own-schema placement: the same models and repositories on tenants in their own schemas,
//! mixed with shared-table tenants; provisioning and tenant migrations.

mod common;

use common::models::*;
use common::{SPINNER_SCHEMA, TestDb};
use sqlx::Connection;
use tenancy::testing::TestTenancy;
use tenancy::{
    Error, MigrateOptions, MigrationError, MigrationTarget, Migrations, NewTenant, Outcome,
    Placement, Tenancy,
};
use uuid::Uuid;

/// The tenant migrations of the spinner app: the same DDL serves the shared tables and every
/// tenant schema (tenant tables keep the tenant column).
fn spinner_migrations() -> Migrations {
    Migrations::from_static(&[(1, "spinner app", SPINNER_SCHEMA)]).unwrap()
}

fn new_spinner(name: &str) -> NewSpinner {
    NewSpinner {
        id: Uuid::new_v4(),
        name: name.into(),
        color: None,
    }
}

#[tenancy::test(migrations = "tests/migrations")]
async fn own_schema_and_shared_tenants_share_models_without_cross_talk(db: TestTenancy) {
    let tenancy = db.tenancy().clone();
    let own = tenancy
        .create_tenant(NewTenant::new("acme-corp", "Acme").placement(Placement::OwnSchema))
        .await
        .unwrap();
    assert_eq!(own.schema.as_deref(), Some("t_acme_corp"));
    tenancy
        .create_tenant(NewTenant::new("globex", "Globex"))
        .await
        .unwrap();
    let a = tenancy.resolve_slug("acme-corp").await.unwrap();
    let b = tenancy.resolve_slug("globex").await.unwrap();
    assert_eq!(a.placement(), Placement::OwnSchema);

    let repo = Spinner::repo();
    let sa = repo.insert(&a, &new_spinner("same-name")).await.unwrap();
    let sb = repo.insert(&b, &new_spinner("same-name")).await.unwrap();
    // Each row is where its tenant's placement says, and only there.
    let mut conn = db.connect().await;
    let in_schema: i64 = sqlx::query_scalar("SELECT count(*) FROM t_acme_corp.spinners")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let in_shared: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM public.spinners")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(in_schema, 1);
    assert_eq!(in_shared, vec![sb.id]);

    assert_eq!(repo.get(&a, sa.id).await.unwrap(), Some(sa.clone()));
    assert_eq!(repo.get(&a, sb.id).await.unwrap(), None);
    assert_eq!(repo.get(&b, sa.id).await.unwrap(), None);
    assert_eq!(repo.count(&a).await.unwrap(), 1);
    assert!(!repo.delete(&b, sa.id).await.unwrap());

    let spin = Spin::repo()
        .insert(
            &a,
            &NewSpin {
                id: Uuid::new_v4(),
                spinner_id: sa.id,
                duration: 130,
                note: None,
            },
        )
        .await
        .unwrap();
    let long = Spin::repo()
        .query()
        .filter(Spin::DURATION.gt(100))
        .fetch_all(&a)
        .await
        .unwrap();
    assert_eq!(long, vec![spin.clone()]);
    let joined: Vec<Spin> = Spin::repo()
        .raw("SELECT s.* FROM {spins} s JOIN {spinners} p ON p.id = s.spinner_id WHERE p.name = $1")
        .with::<Spinner>()
        .bind("same-name")
        .fetch_all(&a)
        .await
        .unwrap();
    assert_eq!(joined, vec![spin]);
    assert!(Spin::repo().query().fetch_all(&b).await.unwrap().is_empty());

    let mut tx = a.begin().await.unwrap();
    repo.update_columns(&mut tx, sa.id, [Spinner::COLOR.set(Some("red".to_owned()))])
        .await
        .unwrap();
    drop(tx);
    assert_eq!(repo.get(&a, sa.id).await.unwrap().unwrap().color, None);
    let mut tx = a.begin().await.unwrap();
    repo.update_columns(&mut tx, sa.id, [Spinner::COLOR.set(Some("red".to_owned()))])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        repo.get(&a, sa.id).await.unwrap().unwrap().color.as_deref(),
        Some("red")
    );
    assert_eq!(repo.get(&b, sb.id).await.unwrap().unwrap().color, None);
}

#[tokio::test]
async fn failed_provisioning_leaves_no_registry_row_and_no_schema() {
    let db = TestDb::new("own_schema_atomic").await;
    let mut list: Vec<tenancy::Migration> = spinner_migrations().iter().cloned().collect();
    list.push(tenancy::Migration::new(
        2,
        "broken",
        "ALTER TABLE no_such_table ADD COLUMN x int",
    ));
    let tenancy = Tenancy::builder()
        .tenant_migrations(Migrations::from_list(list).unwrap())
        .connect(&db.url)
        .await
        .unwrap();
    let err = tenancy
        .create_tenant(NewTenant::new("acme", "Acme").placement(Placement::OwnSchema))
        .await
        .unwrap_err();
    // Which tenant, and the server's own error (undefined_table) behind it.
    assert!(
        matches!(&err, Error::Migration(MigrationError::Provision { target, .. })
            if matches!(&**target, MigrationTarget::Tenant { slug, schema, .. }
                if slug == "acme" && schema == "t_acme")),
        "{err:?}"
    );
    assert_eq!(err.sqlstate(), Some("42P01"), "{err:?}");
    let mut conn = db.connect().await;
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenancy.tenants")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let schemas: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 't_acme'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((tenants, schemas), (0, 0));
    assert!(matches!(
        tenancy.resolve_slug("acme").await,
        Err(Error::TenantNotFound(_))
    ));
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_failing_tenant_migration_is_isolated_and_a_rerun_resumes(db: TestTenancy) {
    let tenancy = db.tenancy().clone();
    let mut slugs = Vec::new();
    for i in 0..50 {
        let slug = format!("tenant-{i:02}");
        tenancy
            .create_tenant(NewTenant::new(&slug, "T").placement(Placement::OwnSchema))
            .await
            .unwrap();
        slugs.push(slug);
    }
    // Tenant 17 has a column in the way of migration 2.
    db.exec("ALTER TABLE t_tenant_17.spins ADD COLUMN rating integer")
        .await;
    let mut list: Vec<tenancy::Migration> = spinner_migrations().iter().cloned().collect();
    list.push(tenancy::Migration::new(
        2,
        "ratings",
        "ALTER TABLE spins ADD COLUMN rating smallint",
    ));
    let upgraded = Tenancy::builder()
        .tenant_migrations(Migrations::from_list(list).unwrap())
        .connect(db.url())
        .await
        .unwrap();
    let su = upgraded.superuser("deploy", "release 2").await.unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let report = upgraded
        .migrate_tenants(
            &su,
            MigrateOptions::default()
                .parallelism(4)
                .on_progress(move |p| {
                    sink.lock().unwrap().push((p.done, p.failed, p.remaining));
                }),
        )
        .await
        .unwrap();
    let failed: Vec<String> = report.failed().map(|(t, _)| t.to_string()).collect();
    assert_eq!(
        failed,
        vec!["tenant tenant-17 (schema t_tenant_17)".to_owned()]
    );
    assert_eq!(report.outcomes.len(), 51);
    let progress = seen.lock().unwrap().clone();
    assert_eq!(progress.len(), 51);
    assert_eq!(progress.last(), Some(&(50, 1, 0)));

    // Tenant 17 is unchanged (its column still integer, no history row for 2); the others moved.
    let mut conn = db.connect().await;
    let ty: String = sqlx::query_scalar(
        "SELECT data_type FROM information_schema.columns \
         WHERE table_schema = 't_tenant_17' AND table_name = 'spins' AND column_name = 'rating'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(ty, "integer");
    let at3: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.columns \
         WHERE table_name = 'spins' AND column_name = 'rating' AND data_type = 'smallint'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(at3, 50, "49 tenant schemas and the shared table");
    let pending = upgraded.pending_migrations(&su).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].0.to_string(),
        "tenant tenant-17 (schema t_tenant_17)"
    );
    assert_eq!(pending[0].1, vec![2]);
    let lagging = upgraded.resolve_slug("tenant-17").await.unwrap().id();
    let audited: Vec<Uuid> = sqlx::query_scalar(
        "SELECT tenant_ids FROM tenancy.audit_log \
         WHERE action = 'tenants.pending_migrations' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(audited, vec![lagging.as_uuid()]);

    // Fix the tenant and rerun: only it is migrated.
    db.exec("ALTER TABLE t_tenant_17.spins DROP COLUMN rating")
        .await;
    let again = upgraded
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    let applied: Vec<String> = again
        .outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Applied(_)))
        .map(|(t, _)| t.to_string())
        .collect();
    assert_eq!(
        applied,
        vec!["tenant tenant-17 (schema t_tenant_17)".to_owned()]
    );
    assert!(upgraded.pending_migrations(&su).await.unwrap().is_empty());
}

#[tenancy::test(migrations = "tests/migrations")]
async fn spare_schemas_make_provisioning_a_rename(db: TestTenancy) {
    let tenancy = db.tenancy().clone();
    let su = tenancy.superuser("test", "warm").await.unwrap();
    assert_eq!(tenancy.warm_schemas(&su, 2).await.unwrap(), 2);
    assert_eq!(
        tenancy.warm_schemas(&su, 2).await.unwrap(),
        0,
        "already warm"
    );
    let spares = |db: &TestTenancy| {
        let url = db.url().to_owned();
        async move {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query_scalar::<_, String>("SELECT name FROM tenancy.spare_schemas ORDER BY name")
                .fetch_all(&mut conn)
                .await
                .unwrap()
        }
    };
    assert_eq!(spares(&db).await.len(), 2);

    // A creation that fails (a stray schema is in the way) keeps both spares.
    db.exec("CREATE SCHEMA t_clash").await;
    let err = tenancy
        .create_tenant(NewTenant::new("clash", "Clash").placement(Placement::OwnSchema))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Migration(MigrationError::SchemaExists { schema }) if schema == "t_clash"),
        "{err:?}"
    );
    assert_eq!(spares(&db).await.len(), 2);
    assert!(matches!(
        tenancy.resolve_slug("clash").await,
        Err(Error::TenantNotFound(_))
    ));

    tenancy
        .create_tenant(NewTenant::new("globex", "Globex").placement(Placement::OwnSchema))
        .await
        .unwrap();
    assert_eq!(spares(&db).await.len(), 1, "one spare was taken");
    let ctx = tenancy.resolve_slug("globex").await.unwrap();
    let s = Spinner::repo()
        .insert(&ctx, &new_spinner("x"))
        .await
        .unwrap();
    assert_eq!(Spinner::repo().get(&ctx, s.id).await.unwrap(), Some(s));

    // A spare that fell behind a new migration is brought up to date when taken.
    let mut list: Vec<tenancy::Migration> = spinner_migrations().iter().cloned().collect();
    list.push(tenancy::Migration::new(
        2,
        "ratings",
        "ALTER TABLE spins ADD COLUMN rating smallint",
    ));
    let upgraded = Tenancy::builder()
        .tenant_migrations(Migrations::from_list(list).unwrap())
        .connect(db.url())
        .await
        .unwrap();
    upgraded
        .create_tenant(NewTenant::new("initech", "Initech").placement(Placement::OwnSchema))
        .await
        .unwrap();
    assert!(spares(&db).await.is_empty());
    let mut conn = db.connect().await;
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM t_initech.tenancy_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(versions, [1, 2]);
}

#[tokio::test]
async fn one_pooled_connection_serves_mixed_tenants_in_turn() {
    let db = TestDb::new("own_schema_hygiene").await;
    // Its own one-connection pool, to read the session's settings after (raw SQL may not).
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    let tenancy = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .from_pool(one.clone())
        .await
        .unwrap();
    common::migrate_all(&tenancy).await;
    let mut ctxs = Vec::new();
    for (slug, placement) in [
        ("schema-a", Placement::OwnSchema),
        ("shared-b", Placement::SharedTable),
        ("schema-c", Placement::OwnSchema),
    ] {
        tenancy
            .create_tenant(NewTenant::new(slug, slug).placement(placement))
            .await
            .unwrap();
        let ctx = tenancy.resolve_slug(slug).await.unwrap();
        Spinner::repo()
            .insert(&ctx, &new_spinner(slug))
            .await
            .unwrap();
        ctxs.push(ctx);
    }
    // The one connection goes A, B, C, A, ...: each sees exactly its own row, and the session
    // carries no search path or setting from one to the next.
    for round in 0..3 {
        for ctx in &ctxs {
            let names: Vec<String> = Spinner::repo()
                .query()
                .fetch_all(ctx)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.name)
                .collect();
            assert_eq!(names, vec![ctx.slug().to_owned()], "round {round}");
            let mut tx = ctx.begin().await.unwrap();
            Spinner::repo()
                .insert(&mut tx, &new_spinner("uncommitted"))
                .await
                .unwrap();
            drop(tx);
        }
    }
    let mut conn = db.connect().await;
    let leftovers: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM public.spinners WHERE name = 'uncommitted') \
              + (SELECT count(*) FROM t_schema_a.spinners WHERE name = 'uncommitted') \
              + (SELECT count(*) FROM t_schema_c.spinners WHERE name = 'uncommitted')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(leftovers, 0);
    // What the pooled connection's session looks like after all that: the server default.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    let default_path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(&pool)
        .await
        .unwrap();
    let path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(&one)
        .await
        .unwrap();
    assert_eq!(path, default_path);
}

#[tenancy::test(migrations = "tests/migrations")]
async fn hostile_slugs_create_no_schema(db: TestTenancy) {
    let tenancy = db.tenancy().clone();
    for slug in [
        "x\"; DROP SCHEMA public CASCADE; --",
        "Acme",
        "acme_corp",
        "pg-catalog",
        "public",
        "tenancy",
        "a",
        "ünïcode",
        &"a".repeat(49),
    ] {
        let err = tenancy
            .create_tenant(NewTenant::new(slug, "x").placement(Placement::OwnSchema))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{slug:?}: {err:?}");
    }
    // Two slugs that differ only where a schema name could fold them never share a schema:
    // slugs are lowercase and hyphens map to underscores, which slugs cannot contain.
    tenancy
        .create_tenant(NewTenant::new("a-b", "x").placement(Placement::OwnSchema))
        .await
        .unwrap();
    let mut conn = db.connect().await;
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 't\\_%' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(schemas, ["t_a_b"]);
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenancy.tenants")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(tenants, 1);
}

/// With `connection_lanes`, each tenant's statements always run on its lane's connections, so a
/// server connection only ever touches its lane's schemas (what bounds its memory at thousands
/// of tenants), and everything else keeps working: isolation, transactions, the registry.
#[tokio::test]
async fn connection_lanes_keep_each_tenant_on_its_lane() {
    let db = TestDb::new("own_schema_lanes").await;
    let tenancy = Tenancy::builder()
        .max_connections(4)
        .connection_lanes(4) // one connection per lane
        .tenant_migrations(spinner_migrations())
        .connect(&db.url)
        .await
        .unwrap();
    common::migrate_all(&tenancy).await;
    let mut ctxs = Vec::new();
    for i in 0..16 {
        let slug = format!("lane-{i:02}");
        let placement = if i % 4 == 3 {
            Placement::SharedTable
        } else {
            Placement::OwnSchema
        };
        tenancy
            .create_tenant(NewTenant::new(&slug, "T").placement(placement))
            .await
            .unwrap();
        let ctx = tenancy.resolve_slug(&slug).await.unwrap();
        Spinner::repo()
            .insert(&ctx, &new_spinner(&slug))
            .await
            .unwrap();
        ctxs.push(ctx);
    }
    // Every tenant, three times over, concurrently: which backend served it, and what it saw.
    let runs = futures_util::future::join_all(ctxs.iter().cycle().take(48).map(|ctx| async move {
        let (pid, names): (i32, Vec<String>) = Spinner::repo()
            .raw_as("SELECT pg_backend_pid(), coalesce(array_agg(name), '{}') FROM {spinners}")
            .fetch_one(ctx)
            .await
            .unwrap();
        let mut tx = ctx.begin().await.unwrap();
        Spinner::repo()
            .insert(&mut tx, &new_spinner("rolled back"))
            .await
            .unwrap();
        let (tx_pid,): (i32,) = Spinner::repo()
            .raw_as("SELECT pg_backend_pid() FROM {spinners} LIMIT 1")
            .fetch_one(&mut tx)
            .await
            .unwrap();
        // Rolled back, not dropped: a dropped transaction's connection is closed, and the lane
        // would serve the next statement from a new backend.
        tx.rollback().await.unwrap();
        (ctx.slug().to_owned(), pid, tx_pid, names)
    }))
    .await;
    let mut pid_of = std::collections::HashMap::new();
    let mut tenants_of = std::collections::HashMap::<i32, Vec<String>>::new();
    for (slug, pid, tx_pid, names) in runs {
        assert_eq!(names, vec![slug.clone()], "{slug} sees only its own row");
        assert_eq!(pid, tx_pid, "{slug}: transactions run on the lane too");
        let first = *pid_of.entry(slug.clone()).or_insert(pid);
        assert_eq!(
            first, pid,
            "{slug} always runs on its lane's one connection"
        );
        let seen = tenants_of.entry(pid).or_default();
        if !seen.contains(&slug) {
            seen.push(slug);
        }
    }
    // Four lanes of one connection: at most four backends, each serving a part of the tenants.
    assert!(tenants_of.len() <= 4, "{tenants_of:?}");
    assert!(
        tenants_of.len() >= 2,
        "16 tenants all hashed to one lane: {tenants_of:?}"
    );
    assert!(tenants_of.values().all(|t| t.len() < 16));
    // The dropped transactions kept nothing.
    for ctx in &ctxs {
        let names: Vec<String> = Spinner::repo()
            .query()
            .fetch_all(ctx)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, vec![ctx.slug().to_owned()]);
    }
    // The registry and lifecycle run on the admin pool, beside the lanes.
    let su = tenancy.superuser("test", "lifecycle").await.unwrap();
    let gone = ctxs[0].id();
    tenancy.suspend(&su, gone).await.unwrap();
    assert!(matches!(
        tenancy.resolve_slug("lane-00").await,
        Err(Error::TenantSuspended { .. })
    ));
    let pending = tenancy.pending_migrations(&su).await.unwrap();
    assert!(pending.is_empty(), "{pending:?}");
}

/// Tenant migrations that reference the registry lock it while a schema is built; creations
/// running at the same time must queue, not deadlock.
#[tenancy::test(migrations = "tests/migrations")]
async fn concurrent_own_schema_creations_all_succeed(db: TestTenancy) {
    let tenancy = db.tenancy().clone();
    assert!(SPINNER_SCHEMA.contains("REFERENCES tenancy.tenants"));
    let created = futures_util::future::join_all((0..8).map(|i| {
        let tenancy = tenancy.clone();
        async move {
            let placement = if i % 4 == 3 {
                Placement::SharedTable
            } else {
                Placement::OwnSchema
            };
            tenancy
                .create_tenant(NewTenant::new(format!("burst-{i}"), "T").placement(placement))
                .await
        }
    }))
    .await;
    for (i, result) in created.into_iter().enumerate() {
        let tenant = result.unwrap_or_else(|e| panic!("creation {i} failed: {e}"));
        let ctx = tenancy.resolve_id(tenant.id).await.unwrap();
        Spinner::repo()
            .insert(&ctx, &new_spinner(ctx.slug()))
            .await
            .unwrap();
        assert_eq!(Spinner::repo().count(&ctx).await.unwrap(), 1);
    }
}

/// A spare that cannot be used (here its schema was dropped by hand) must not stop creations:
/// the one that meets it sets it aside and builds a fresh schema, and the next takes the next
/// spare.
#[tenancy::test(migrations = "tests/migrations")]
async fn an_unusable_spare_is_set_aside_and_creation_goes_on(db: TestTenancy) {
    let tenancy = db.tenancy().clone();
    let su = tenancy.superuser("test", "warm").await.unwrap();
    assert_eq!(tenancy.warm_schemas(&su, 2).await.unwrap(), 2);
    let mut conn = db.connect().await;
    let oldest: String = sqlx::query_scalar(
        "SELECT name FROM tenancy.spare_schemas ORDER BY created_at, name LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    db.exec(&format!("DROP SCHEMA \"{oldest}\" CASCADE")).await;
    for slug in ["first", "second"] {
        tenancy
            .create_tenant(NewTenant::new(slug, slug).placement(Placement::OwnSchema))
            .await
            .unwrap_or_else(|e| panic!("{slug}: {e}"));
        let ctx = tenancy.resolve_slug(slug).await.unwrap();
        Spinner::repo()
            .insert(&ctx, &new_spinner(slug))
            .await
            .unwrap();
        assert_eq!(Spinner::repo().count(&ctx).await.unwrap(), 1);
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM tenancy.spare_schemas")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "the bad spare set aside, the good one taken");
}
