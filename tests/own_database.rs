//! The own-database placement: the same models, repositories, transactions, raw SQL, reports
//! and migrations on tenants that each have a database of their own, mixed with the other
//! placements; provisioning that leaves nothing half-made, purge, the connection budget, and
//! the cleanup of what a crash leaves.

mod common;

use std::time::{Duration, Instant};

use common::models::*;
use common::{SPINNER_SCHEMA, TestDb};
use sqlx::{Connection, PgConnection};
use tenancy::testing::TestTenancy;
use tenancy::{
    Agg, Error, MigrateOptions, MigrationTarget, Migrations, NewTenant, Outcome, Placement, Purged,
    Tenancy,
};
use uuid::Uuid;

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

fn own_db(slug: &str) -> NewTenant {
    NewTenant::new(slug, slug).placement(Placement::OwnDatabase)
}

/// A connection to database `name` on the test server.
async fn connect_to(name: &str) -> PgConnection {
    PgConnection::connect(&tenancy::testing::database_url(name))
        .await
        .unwrap_or_else(|e| panic!("connect to {name}: {e}"))
}

/// The databases on the server named like this registry's (its tag's prefix).
async fn registry_databases(registry: &mut PgConnection) -> Vec<String> {
    let tag: String = sqlx::query_scalar("SELECT tag FROM tenancy.deployment")
        .fetch_one(&mut *registry)
        .await
        .unwrap();
    let mut admin = common::admin_conn().await;
    sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1",
    )
    .bind(format!("tenancy_{tag}_"))
    .fetch_all(&mut admin)
    .await
    .unwrap()
}

async fn count_in(database: &str, sql: &str) -> i64 {
    let mut conn = connect_to(database).await;
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    n
}

#[tenancy::test(migrations = "tests/migrations")]
async fn own_database_tenants_serve_the_same_models_without_cross_talk(db: TestTenancy) {
    let tenancy = db.tenancy().clone();
    let a_row = tenancy.create_tenant(own_db("acme")).await.unwrap();
    let b_row = tenancy.create_tenant(own_db("globex")).await.unwrap();
    tenancy
        .create_tenant(NewTenant::new("shared-one", "S"))
        .await
        .unwrap();
    assert_eq!(a_row.placement, Placement::OwnDatabase);
    assert_eq!(a_row.server, "primary");
    let a_db = a_row.database.clone().expect("a database name");
    let b_db = b_row.database.clone().expect("a database name");
    assert_ne!(a_db, b_db);
    assert!(a_row.schema.is_none());
    // Each database says whose it is.
    let mut conn = connect_to(&a_db).await;
    let who: (Uuid, String) = sqlx::query_as("SELECT id, slug FROM tenancy.tenants")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(who, (a_row.id.as_uuid(), "acme".to_owned()));
    conn.close().await.unwrap();

    let a = tenancy.resolve_slug("acme").await.unwrap();
    let b = tenancy.resolve_slug("globex").await.unwrap();
    let s = tenancy.resolve_slug("shared-one").await.unwrap();
    assert_eq!(a.placement(), Placement::OwnDatabase);

    let repo = Spinner::repo();
    let sa = repo.insert(&a, &new_spinner("same-name")).await.unwrap();
    let sb = repo.insert(&b, &new_spinner("same-name")).await.unwrap();
    let ss = repo.insert(&s, &new_spinner("same-name")).await.unwrap();
    // Each row is in its tenant's database, and only there.
    assert_eq!(
        count_in(&a_db, "SELECT count(*) FROM public.spinners").await,
        1
    );
    assert_eq!(
        count_in(&b_db, "SELECT count(*) FROM public.spinners").await,
        1
    );
    let mut main = db.connect().await;
    let shared: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM public.spinners")
        .fetch_all(&mut main)
        .await
        .unwrap();
    assert_eq!(shared, vec![ss.id]);

    for (ctx, own, others) in [
        (&a, &sa, [&sb, &ss]),
        (&b, &sb, [&sa, &ss]),
        (&s, &ss, [&sa, &sb]),
    ] {
        assert_eq!(repo.get(ctx, own.id).await.unwrap().as_ref(), Some(own));
        for other in others {
            assert_eq!(repo.get(ctx, other.id).await.unwrap(), None);
            assert!(!repo.delete(ctx, other.id).await.unwrap());
        }
        assert_eq!(repo.count(ctx).await.unwrap(), 1);
    }

    // Queries, raw SQL with two models, and the fences raw SQL keeps.
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
    let (n,): (i64,) = Spin::repo()
        .raw_as("SELECT count(*) FROM {spins}")
        .fetch_one(&b)
        .await
        .unwrap();
    assert_eq!(n, 0);
    for refused in [
        "SELECT count(*) FROM spins",
        "SELECT count(*) FROM public.spins",
        "SELECT count(*) FROM tenancy.tenants",
    ] {
        let r = Spin::repo().raw_as::<(i64,)>(refused).fetch_one(&a).await;
        assert!(matches!(r, Err(Error::UnscopedSql(_))), "{refused}: {r:?}");
    }

    // Transactions: dropped rolls back, committed stays, on the tenant's database only.
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
    let stream_rows: Vec<_> = {
        use futures_util::StreamExt;
        repo.query().fetch(&mut tx).collect::<Vec<_>>().await
    };
    assert_eq!(stream_rows.len(), 1);
    tx.commit().await.unwrap();
    assert_eq!(
        repo.get(&a, sa.id).await.unwrap().unwrap().color.as_deref(),
        Some("red")
    );
    assert_eq!(repo.get(&b, sb.id).await.unwrap().unwrap().color, None);
}

#[tokio::test]
async fn a_failing_tenant_migration_leaves_no_row_and_no_database() {
    let db = TestDb::new("owndb_atomic").await;
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
    let err = tenancy.create_tenant(own_db("acme")).await.unwrap_err();
    assert!(matches!(err, Error::Migration(_)), "{err:?}");
    let mut conn = db.connect().await;
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenancy.tenants")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(tenants, 0);
    assert_eq!(registry_databases(&mut conn).await, Vec::<String>::new());
    // Refused by the registry after the database was made (a taken host): dropped again.
    let ok = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .connect(&db.url)
        .await
        .unwrap();
    ok.create_tenant(NewTenant::new("first", "F").host("taken.test"))
        .await
        .unwrap();
    let err = ok
        .create_tenant(own_db("second").host("taken.test"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::HostTaken(_)), "{err:?}");
    assert_eq!(registry_databases(&mut conn).await, Vec::<String>::new());
    assert!(matches!(
        ok.resolve_slug("second").await,
        Err(Error::TenantNotFound(_))
    ));
}

#[tokio::test]
async fn template_and_spares_make_the_same_database_as_the_empty_path() {
    let db = TestDb::new("owndb_template").await;
    let tenancy = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .connect(&db.url)
        .await
        .unwrap();
    let su = tenancy.superuser("test", "warm").await.unwrap();
    // Empty, then migrated: no template yet.
    let empty = tenancy.create_tenant(own_db("empty")).await.unwrap();
    assert_eq!(tenancy.warm_databases(&su, 1).await.unwrap(), 1);
    let mut conn = db.connect().await;
    let before = registry_databases(&mut conn).await;
    assert!(
        before.iter().any(|d| d.contains("_template_v")),
        "{before:?}"
    );
    assert!(before.iter().any(|d| d.contains("_spare_v")), "{before:?}");
    // The spare is taken (renamed), then the template is copied.
    let spare = tenancy.create_tenant(own_db("spare")).await.unwrap();
    let copied = tenancy.create_tenant(own_db("copied")).await.unwrap();
    let after = registry_databases(&mut conn).await;
    assert!(!after.iter().any(|d| d.contains("_spare_v")), "{after:?}");
    for t in [&empty, &spare, &copied] {
        let name = t.database.as_deref().unwrap();
        assert!(after.iter().any(|d| d == name));
        let ctx = tenancy.resolve_id(t.id).await.unwrap();
        let row = Spinner::repo()
            .insert(&ctx, &new_spinner("x"))
            .await
            .unwrap();
        assert_eq!(Spinner::repo().get(&ctx, row.id).await.unwrap(), Some(row));
        assert_eq!(
            count_in(name, "SELECT count(*) FROM public.tenancy_migrations").await,
            1,
            "{name}: history"
        );
        assert_eq!(
            count_in(name, "SELECT count(*) FROM tenancy.tenants").await,
            1,
            "{name}: identity"
        );
    }
}

#[tenancy::test(migrations = "tests/migrations")]
async fn lifecycle_and_purge_drop_the_database(db: TestTenancy) {
    let tenancy = db.tenancy().clone();
    let su = tenancy.superuser("test", "lifecycle").await.unwrap();
    let t = tenancy.create_tenant(own_db("gone")).await.unwrap();
    let name = t.database.clone().unwrap();
    let ctx = tenancy.resolve_id(t.id).await.unwrap();
    Spinner::repo()
        .insert(&ctx, &new_spinner("kept"))
        .await
        .unwrap();
    tenancy.suspend(&su, t.id).await.unwrap();
    assert!(matches!(
        Spinner::repo().count(&ctx).await,
        Err(Error::ContextRevoked { .. })
    ));
    assert!(matches!(
        tenancy.resolve_id(t.id).await,
        Err(Error::TenantSuspended { .. })
    ));
    tenancy.resume(&su, t.id).await.unwrap();
    tenancy.soft_delete(&su, t.id).await.unwrap();
    tenancy.restore(&su, t.id).await.unwrap();
    let ctx = tenancy.resolve_id(t.id).await.unwrap();
    assert_eq!(Spinner::repo().count(&ctx).await.unwrap(), 1, "data kept");
    tenancy.soft_delete(&su, t.id).await.unwrap();
    let purged = tenancy.purge(&su, t.id).await.unwrap();
    assert_eq!(purged, Purged::Database(name.clone()));
    let mut conn = db.connect().await;
    assert!(!registry_databases(&mut conn).await.contains(&name));
    assert!(matches!(
        tenancy.resolve_id(t.id).await,
        Err(Error::TenantNotFound(_))
    ));
}

#[tokio::test]
async fn migrations_run_in_every_database_failure_isolated_and_resumable() {
    let db = TestDb::new("owndb_migrate").await;
    let v1 = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .connect(&db.url)
        .await
        .unwrap();
    for slug in ["one", "two", "bad"] {
        v1.create_tenant(own_db(slug)).await.unwrap();
    }
    v1.create_tenant(NewTenant::new("schema-one", "S").placement(Placement::OwnSchema))
        .await
        .unwrap();
    v1.close().await;
    // Version 2 fails in the database whose tenant is `bad`, and only there (the registry's
    // `tenancy.tenants` has every tenant, a tenant database's only its own).
    let mut list: Vec<tenancy::Migration> = spinner_migrations().iter().cloned().collect();
    list.push(tenancy::Migration::new(
        2,
        "color index",
        "DO $$ BEGIN IF (SELECT array_agg(slug) FROM tenancy.tenants) = ARRAY['bad'] THEN \
         RAISE EXCEPTION 'refused in bad'; END IF; END $$; \
         ALTER TABLE spinners ADD COLUMN size int",
    ));
    let v2 = Tenancy::builder()
        .tenant_migrations(Migrations::from_list(list).unwrap())
        .connect(&db.url)
        .await
        .unwrap();
    let su = v2.superuser("test", "migrate").await.unwrap();
    let pending = v2.pending_migrations(&su).await.unwrap();
    let lagging_dbs = pending
        .iter()
        .filter(|(t, v)| matches!(t, MigrationTarget::Database { .. }) && v == &vec![2])
        .count();
    assert_eq!(lagging_dbs, 3, "{pending:?}");
    let report = v2
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    let outcome = |slug: &str| {
        report
            .outcomes
            .iter()
            .find(|(t, _)| matches!(t, MigrationTarget::Database { slug: s, .. } if s == slug))
            .map(|(_, o)| o.clone())
            .unwrap_or_else(|| panic!("no outcome for {slug}: {report:?}"))
    };
    assert_eq!(outcome("one"), Outcome::Applied(vec![2]));
    assert_eq!(outcome("two"), Outcome::Applied(vec![2]));
    assert!(matches!(outcome("bad"), Outcome::Failed(e) if e.message.contains("refused in bad")));
    let db_of = |slug: &str| {
        let v2 = v2.clone();
        let slug = slug.to_owned();
        async move {
            let su = v2.superuser("test", "read").await.unwrap();
            v2.list_tenants(&su)
                .await
                .unwrap()
                .into_iter()
                .find(|t| t.slug == slug)
                .and_then(|t| t.database)
                .unwrap()
        }
    };
    let (one, bad) = (db_of("one").await, db_of("bad").await);
    let has_size = "SELECT count(*) FROM information_schema.columns \
                    WHERE table_name = 'spinners' AND column_name = 'size'";
    assert_eq!(count_in(&one, has_size).await, 1);
    assert_eq!(count_in(&bad, has_size).await, 0, "rolled back in bad");
    assert_eq!(
        count_in(&bad, "SELECT count(*) FROM public.tenancy_migrations").await,
        1
    );
    // Again: the others are done, `bad` fails again and nothing else changes.
    let again = v2
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    for (t, o) in &again.outcomes {
        match t {
            MigrationTarget::Database { slug, .. } if slug == "bad" => {
                assert!(matches!(o, Outcome::Failed(_)), "{o:?}")
            }
            _ => assert_eq!(o, &Outcome::UpToDate, "{t}"),
        }
    }
    let pending = v2.pending_migrations(&su).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert!(matches!(&pending[0].0, MigrationTarget::Database { slug, .. } if slug == "bad"));
    // A tenant created now starts from the new template, at version 2.
    let fresh = v2.create_tenant(own_db("fresh")).await.unwrap();
    assert_eq!(
        count_in(
            fresh.database.as_deref().unwrap(),
            "SELECT count(*) FROM public.tenancy_migrations"
        )
        .await,
        2
    );
}

#[tenancy::test(migrations = "tests/migrations")]
async fn reports_read_every_placement_and_merge(db: TestTenancy) {
    let tenancy = db.tenancy().clone();
    tenancy
        .create_tenant(NewTenant::new("shared-a", "A"))
        .await
        .unwrap();
    tenancy
        .create_tenant(NewTenant::new("schema-b", "B").placement(Placement::OwnSchema))
        .await
        .unwrap();
    tenancy.create_tenant(own_db("db-c")).await.unwrap();
    tenancy.create_tenant(own_db("db-d")).await.unwrap();
    let mut expected = Vec::new();
    for (slug, n) in [("shared-a", 1), ("schema-b", 2), ("db-c", 3), ("db-d", 0)] {
        let ctx = tenancy.resolve_slug(slug).await.unwrap();
        for i in 0..n {
            let row = Spinner::repo()
                .insert(&ctx, &new_spinner(&format!("{slug}-{i}")))
                .await
                .unwrap();
            expected.push((ctx.id(), row));
        }
    }
    let su = tenancy.superuser("test", "report").await.unwrap();
    let mut all = Spinner::repo().report().fetch_all(&su).await.unwrap();
    all.sort_by_key(|(t, r)| (*t, r.id));
    expected.sort_by_key(|(t, r)| (*t, r.id));
    assert_eq!(all, expected);
    let first_two = Spinner::repo()
        .report()
        .order_by(Spinner::NAME.asc())
        .limit(2)
        .fetch_all(&su)
        .await
        .unwrap();
    let names: Vec<&str> = first_two.iter().map(|(_, r)| r.name.as_str()).collect();
    assert_eq!(names, ["db-c-0", "db-c-1"]);
    let counts = Spinner::repo()
        .report()
        .aggregate(Agg::count())
        .fetch(&su)
        .await
        .unwrap();
    assert_eq!(counts.overall, 6);
    assert_eq!(counts.per_tenant.len(), 4);
    let db_c = tenancy.resolve_slug("db-c").await.unwrap();
    assert!(counts.per_tenant.contains(&(db_c.id(), 3)));
    let only_db = Spinner::repo()
        .report()
        .placement(Placement::OwnDatabase)
        .fetch_all(&su)
        .await
        .unwrap();
    assert_eq!(only_db.len(), 3);
}

#[tokio::test]
async fn an_exhausted_budget_gives_a_typed_error_after_a_bounded_wait_never_another_pool() {
    let db = TestDb::new("owndb_budget").await;
    let tenancy = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .database_budget(1, 1)
        .acquire_timeout(Duration::from_millis(400))
        .connect(&db.url)
        .await
        .unwrap();
    tenancy.create_tenant(own_db("busy")).await.unwrap();
    tenancy.create_tenant(own_db("waits")).await.unwrap();
    let busy = tenancy.resolve_slug("busy").await.unwrap();
    let waits = tenancy.resolve_slug("waits").await.unwrap();
    let mine = Spinner::repo()
        .insert(&busy, &new_spinner("busy's"))
        .await
        .unwrap();
    // The budget's one connection, held by a transaction of `busy`.
    let mut tx = busy.begin().await.unwrap();
    Spinner::repo().count(&mut tx).await.unwrap();
    let started = Instant::now();
    let r = Spinner::repo().count(&waits).await;
    let waited = started.elapsed();
    assert!(
        matches!(r, Err(Error::ServerBusy { budget: 1, .. })),
        "{r:?}"
    );
    assert!(waited >= Duration::from_millis(350), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // The tenant's own share is spent too.
    let r = Spinner::repo().count(&busy).await;
    assert!(matches!(r, Err(Error::TenantBusy { .. })), "{r:?}");
    tx.commit().await.unwrap();
    // Released: `waits` gets a connection to its own database (the idle pool of `busy` is
    // evicted), and sees none of `busy`'s rows.
    assert_eq!(Spinner::repo().count(&waits).await.unwrap(), 0);
    assert_eq!(Spinner::repo().get(&waits, mine.id).await.unwrap(), None);
    assert_eq!(
        Spinner::repo().get(&busy, mine.id).await.unwrap(),
        Some(mine)
    );
}

#[tokio::test]
async fn a_database_that_is_not_the_tenants_is_refused() {
    let db = TestDb::new("owndb_swapped").await;
    let tenancy = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .connect(&db.url)
        .await
        .unwrap();
    let a = tenancy.create_tenant(own_db("alpha")).await.unwrap();
    let b = tenancy.create_tenant(own_db("beta")).await.unwrap();
    let ctx_b = tenancy.resolve_id(b.id).await.unwrap();
    Spinner::repo()
        .insert(&ctx_b, &new_spinner("beta's secret"))
        .await
        .unwrap();
    tenancy.close().await;
    // Someone swaps the two databases' names behind the registry's back.
    let (da, dbb) = (a.database.unwrap(), b.database.unwrap());
    let mut admin = common::admin_conn().await;
    let tmp = format!("{da}_x");
    for sql in [
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname IN ('{da}', '{dbb}')"
        ),
        format!("ALTER DATABASE \"{da}\" RENAME TO \"{tmp}\""),
        format!("ALTER DATABASE \"{dbb}\" RENAME TO \"{da}\""),
        format!("ALTER DATABASE \"{tmp}\" RENAME TO \"{dbb}\""),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let fresh = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .connect(&db.url)
        .await
        .unwrap();
    let ctx_a = fresh.resolve_id(a.id).await.unwrap();
    for r in [
        Spinner::repo().count(&ctx_a).await.map(|_| ()),
        ctx_a.begin().await.map(|_| ()),
    ] {
        assert!(
            matches!(&r, Err(Error::WrongDatabase { tenant, .. }) if *tenant == a.id),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn orphaned_databases_are_dropped_by_the_cleanup_and_at_connect() {
    let db = TestDb::new("owndb_orphans").await;
    let tenancy = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .connect(&db.url)
        .await
        .unwrap();
    let kept = tenancy.create_tenant(own_db("kept")).await.unwrap();
    let mut conn = db.connect().await;
    let tag: String = sqlx::query_scalar("SELECT tag FROM tenancy.deployment")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    // A crash between creating a tenant's database and registering it leaves this.
    let orphan = |id: Uuid| format!("tenancy_{tag}_{}", id.simple());
    let mut admin = common::admin_conn().await;
    let first = orphan(Uuid::new_v4());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{first}\"")))
        .execute(&mut admin)
        .await
        .unwrap();
    let su = tenancy.superuser("test", "cleanup").await.unwrap();
    assert_eq!(tenancy.cleanup_orphans(&su).await.unwrap(), vec![first]);
    let left = registry_databases(&mut conn).await;
    assert_eq!(left, vec![kept.database.clone().unwrap()]);
    // A crash between a purge's commit and its drop leaves the purged tenant's database.
    let second = orphan(Uuid::new_v4());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{second}\"")))
        .execute(&mut admin)
        .await
        .unwrap();
    let other = Tenancy::connect(&db.url).await.unwrap();
    let left = registry_databases(&mut conn).await;
    assert_eq!(left, vec![kept.database.clone().unwrap()], "at connect");
    // The registered tenant still works.
    let ctx = other.resolve_id(kept.id).await.unwrap();
    assert_eq!(Spinner::repo().count(&ctx).await.unwrap(), 0);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tenancy.audit_log WHERE action = 'databases.cleanup'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(audited, 1);
}

#[tenancy::test(
    migrations = "tests/migrations",
    tenants(acme = "database", globex = "shared")
)]
async fn the_test_attribute_hands_out_own_database_tenants(t: TestTenancy) {
    let acme = t.tenant("acme");
    let globex = t.tenant("globex");
    assert_eq!(acme.placement(), Placement::OwnDatabase);
    let row = Spinner::repo()
        .insert(acme, &new_spinner("a"))
        .await
        .unwrap();
    assert_eq!(Spinner::repo().get(globex, row.id).await.unwrap(), None);
    assert_eq!(Spinner::repo().get(acme, row.id).await.unwrap(), Some(row));
}

#[tenancy::test(migrations = "tests/migrations")]
async fn export_and_import_move_rows_between_databases_and_placements(db: TestTenancy) {
    let tenancy = db.tenancy().clone();
    let su = tenancy.superuser("test", "archive").await.unwrap();
    let from = tenancy.create_tenant(own_db("source")).await.unwrap();
    let ctx = tenancy.resolve_id(from.id).await.unwrap();
    let spinner = Spinner::repo()
        .insert(&ctx, &new_spinner("kept"))
        .await
        .unwrap();
    Spin::repo()
        .insert(
            &ctx,
            &NewSpin {
                id: Uuid::new_v4(),
                spinner_id: spinner.id,
                duration: 42,
                note: Some("n".into()),
            },
        )
        .await
        .unwrap();
    let archive = tenancy.export_tenant(&su, from.id).await.unwrap();
    assert_eq!(archive.source, from.id);
    // Into another database, and into the shared tables: the same rows, under the new tenant.
    let into_db = tenancy.create_tenant(own_db("copy-db")).await.unwrap();
    let into_shared = tenancy
        .create_tenant(NewTenant::new("copy-shared", "S"))
        .await
        .unwrap();
    for into in [&into_db, &into_shared] {
        assert_eq!(
            tenancy.import_tenant(&su, &archive, into.id).await.unwrap(),
            2
        );
        let target = tenancy.resolve_id(into.id).await.unwrap();
        assert_eq!(
            Spinner::repo().get(&target, spinner.id).await.unwrap(),
            Some(spinner.clone())
        );
        assert_eq!(Spin::repo().count(&target).await.unwrap(), 1);
        // Not empty any more: a second import is refused and changes nothing.
        let again = tenancy.import_tenant(&su, &archive, into.id).await;
        assert!(matches!(again, Err(Error::Archive(_))), "{again:?}");
        assert_eq!(Spin::repo().count(&target).await.unwrap(), 1);
    }
    // And back from the shared tables into a new database.
    let round = tenancy.export_tenant(&su, into_shared.id).await.unwrap();
    let last = tenancy.create_tenant(own_db("copy-back")).await.unwrap();
    tenancy.import_tenant(&su, &round, last.id).await.unwrap();
    let last_ctx = tenancy.resolve_id(last.id).await.unwrap();
    assert_eq!(
        Spinner::repo().get(&last_ctx, spinner.id).await.unwrap(),
        Some(spinner)
    );
    // The source is untouched, and every export and import was audited.
    assert_eq!(Spin::repo().count(&ctx).await.unwrap(), 1);
    let mut conn = db.connect().await;
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tenancy.audit_log WHERE action IN ('tenant.export', 'tenant.import')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(audited >= 5, "{audited}");
}
