//! Through PgBouncer in transaction mode (Debian's 1.18, which does not track prepared
//! statements): with `StatementMode::Unnamed`, repositories, transactions and raw SQL work for
//! shared-table and own-schema tenants under concurrency, and no tenant's rows reach another.
//!
//! Ignored by a plain `cargo test`; `scripts/test` runs it with a real PgBouncer started by
//! `scripts/pgbouncer`.

mod common;

use std::collections::HashMap;

use common::models::*;
use common::{SPINNER_SCHEMA, TestDb};
use tenancy::{Migrations, Placement, StatementMode, Tenancy, TenantCtx};
use uuid::Uuid;

fn pgbouncer_url(db: &str) -> String {
    let base = std::env::var("TENANCY_TEST_PGBOUNCER_URL").expect(
        "TENANCY_TEST_PGBOUNCER_URL is not set: run this test through scripts/pgbouncer \
         (scripts/test does)",
    );
    format!("{base}/{db}")
}

async fn work(ctx: TenantCtx, task: usize) -> Vec<Uuid> {
    let repo = Spinner::repo();
    let mut mine = Vec::new();
    for i in 0..25 {
        let s = repo
            .insert(
                &ctx,
                &NewSpinner {
                    id: Uuid::new_v4(),
                    name: format!("t{task}-{i}"),
                    color: None,
                },
            )
            .await
            .expect("insert through pgbouncer");
        assert_eq!(repo.get(&ctx, s.id).await.unwrap().as_ref(), Some(&s));
        let mut tx = ctx.begin().await.unwrap();
        let spin = Spin::repo()
            .insert(
                &mut tx,
                &NewSpin {
                    id: Uuid::new_v4(),
                    spinner_id: s.id,
                    duration: i,
                    note: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            Spin::repo().get(&mut tx, spin.id).await.unwrap(),
            Some(spin)
        );
        tx.commit().await.unwrap();
        let named = repo
            .query()
            .filter(Spinner::NAME.eq(s.name.clone()))
            .fetch_all(&ctx)
            .await
            .unwrap();
        assert_eq!(named, vec![s.clone()]);
        let (n,): (i64,) = Spin::repo()
            .raw_as("SELECT count(*) FROM {spins} WHERE spinner_id = $1")
            .bind(s.id)
            .fetch_one(&ctx)
            .await
            .unwrap();
        assert_eq!(n, 1);
        mine.push(s.id);
    }
    mine
}

#[tokio::test]
#[ignore = "needs PgBouncer: scripts/test runs it through scripts/pgbouncer"]
async fn repositories_work_through_pgbouncer_in_transaction_mode() {
    let db = TestDb::new("pgbouncer").await;
    let tenancy = Tenancy::builder()
        .max_connections(16)
        .statement_mode(StatementMode::Unnamed)
        .tenant_migrations(Migrations::from_static(&[(1, "spinner app", SPINNER_SCHEMA)]).unwrap())
        .notify_url(&db.url)
        .connect(&pgbouncer_url(&db.name))
        .await
        .expect("connect through pgbouncer");
    common::migrate_all(&tenancy).await;
    let ctxs = common::create_tenants(
        &tenancy,
        &[
            ("shared-a", Placement::SharedTable),
            ("shared-b", Placement::SharedTable),
            ("schema-a", Placement::OwnSchema),
            ("schema-b", Placement::OwnSchema),
        ],
    )
    .await;
    // 16 tasks over 4 tenants through 4 server connections: statements of every tenant
    // interleave on every server connection.
    let mut handles = Vec::new();
    for task in 0..16 {
        let ctx = ctxs[task % 4].clone();
        handles.push(tokio::spawn(
            async move { (ctx.id(), work(ctx, task).await) },
        ));
    }
    let mut expected: HashMap<_, Vec<Uuid>> = HashMap::new();
    for h in handles {
        let (tenant, ids) = h.await.expect("a task failed");
        expected.entry(tenant).or_default().extend(ids);
    }
    for ctx in &ctxs {
        let mut got: Vec<Uuid> = Spinner::repo()
            .query()
            .fetch_all(ctx)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        let mut want = expected[&ctx.id()].clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "tenant {}", ctx.slug());
        assert_eq!(Spin::repo().count(ctx).await.unwrap(), 100);
    }
}

/// Row-level security through the pooler: the tenant is only ever set transaction-locally, so
/// the server connections PgBouncer hands from tenant to tenant carry none between
/// transactions, and every tenant's work stays its own.
#[tokio::test]
#[ignore = "needs PgBouncer: scripts/test runs it through scripts/pgbouncer"]
async fn row_level_security_works_through_pgbouncer() {
    use sqlx::Row;
    use tenancy::rls;

    // PgBouncer knows one user (a superuser, which row-level security skips): its sessions in
    // this database run as a role of their own instead. Roles are cluster-wide: a unique name.
    let role = format!("tt_rls_{}", &Uuid::new_v4().simple().to_string()[..12]);
    let _role = common::DropRole(role.clone()); // dropped after the database
    let db = TestDb::new("pgbouncer_rls").await;
    db.exec(&format!(
        "CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS; \
         ALTER DATABASE \"{0}\" OWNER TO {role}; ALTER SCHEMA public OWNER TO {role}; \
         ALTER ROLE CURRENT_USER IN DATABASE \"{0}\" SET role = '{role}'",
        db.name
    ))
    .await;
    let policies = format!(
        "{}{}",
        rls::policy_sql("spinners", "tenant_id").unwrap(),
        rls::policy_sql("spins", "tenant_id").unwrap()
    );
    let tenancy = Tenancy::builder()
        .max_connections(16)
        .statement_mode(StatementMode::Unnamed)
        .row_level_security(true)
        .tenant_migrations(
            Migrations::from_list(vec![
                tenancy::Migration::new(1, "spinner app", SPINNER_SCHEMA),
                tenancy::Migration::new(2, "row-level security", policies),
            ])
            .unwrap(),
        )
        .notify_url(&db.url)
        .connect(&pgbouncer_url(&db.name))
        .await
        .expect("connect through pgbouncer as a role row-level security applies to");
    common::migrate_all(&tenancy).await;
    let ctxs = common::create_tenants(
        &tenancy,
        &[
            ("shared-a", Placement::SharedTable),
            ("shared-b", Placement::SharedTable),
            ("shared-c", Placement::SharedTable),
            ("schema-a", Placement::OwnSchema),
        ],
    )
    .await;
    let mut handles = Vec::new();
    for task in 0..16 {
        let ctx = ctxs[task % 4].clone();
        handles.push(tokio::spawn(
            async move { (ctx.id(), work(ctx, task).await) },
        ));
    }
    for h in handles {
        h.await.expect("a task failed");
    }
    for ctx in &ctxs {
        assert_eq!(Spinner::repo().count(ctx).await.unwrap(), 100);
        assert_eq!(Spin::repo().count(ctx).await.unwrap(), 100);
    }
    let su = tenancy.superuser("test", "pgbouncer rls").await.unwrap();
    let total = Spin::repo()
        .report()
        .aggregate(tenancy::Agg::count())
        .fetch(&su)
        .await
        .unwrap();
    assert_eq!(total.overall, 400);

    // SQL written around the library, on the server connections every tenant just used: no
    // tenant is set on any of them, so it sees nothing.
    let plain = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(&pgbouncer_url(&db.name))
        .await
        .unwrap();
    for _ in 0..32 {
        // A simple query: an unnamed prepared statement outside a transaction could have its
        // two round trips split across server connections by the pooler.
        let row = sqlx::raw_sql(
            "SELECT NULLIF(current_setting('tenancy.tenant_id', true), ''), \
                    (SELECT count(*) FROM spins)",
        )
        .fetch_one(&plain)
        .await
        .unwrap();
        let (tenant, n): (Option<String>, i64) = (row.get(0), row.get(1));
        assert_eq!((tenant, n), (None, 0));
    }
}

/// `LISTEN` does not work through PgBouncer in transaction mode: with `notify_url` set to the
/// server's own address, a suspension through one handle behind the pooler reaches another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PgBouncer: scripts/test runs it through scripts/pgbouncer"]
async fn registry_notifications_reach_handles_behind_pgbouncer_through_notify_url() {
    let db = TestDb::new("pgbouncer_notify").await;
    let handle = async || {
        Tenancy::builder()
            .max_connections(4)
            .statement_mode(StatementMode::Unnamed)
            .cache_ttl(std::time::Duration::from_secs(3600))
            .notify_url(&db.url)
            .connect(&pgbouncer_url(&db.name))
            .await
            .expect("connect through pgbouncer, listening directly")
    };
    let (a, b) = (handle().await, handle().await);
    let acme = a
        .create_tenant(tenancy::NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    b.resolve_id(acme.id).await.unwrap(); // cached for an hour
    let su = a
        .superuser("ops", "notify through pgbouncer")
        .await
        .unwrap();
    a.suspend(&su, acme.id).await.unwrap();
    let start = std::time::Instant::now();
    while b.resolve_id(acme.id).await.is_ok() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "B still resolves the suspended tenant"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    a.close().await;
    b.close().await;
}

/// Without `notify_url` the listener's `LISTEN` runs on a server connection PgBouncer lends to
/// others, so it would hear nothing: connecting says so instead of leaving held contexts
/// unrevoked.
#[tokio::test]
#[ignore = "needs PgBouncer: scripts/test runs it through scripts/pgbouncer"]
async fn listening_through_pgbouncer_without_notify_url_is_refused() {
    let db = TestDb::new("pgbouncer_deaf").await;
    let builder = || {
        Tenancy::builder()
            .max_connections(2)
            .statement_mode(StatementMode::Unnamed)
    };
    let err = builder()
        .connect(&pgbouncer_url(&db.name))
        .await
        .expect_err("a listener behind PgBouncer hears nothing");
    assert!(
        matches!(&err, tenancy::Error::NotificationsUnheard { listener } if listener.ends_with(&format!("/{}", db.name))),
        "{err:?}"
    );
    assert!(err.to_string().contains("notify_url"), "{err}");
    // Not listening, it connects (changes elsewhere are then seen within the cache's TTL).
    builder()
        .listen_for_changes(false)
        .connect(&pgbouncer_url(&db.name))
        .await
        .expect("connect through pgbouncer without a listener")
        .close()
        .await;
}

/// Opens PgBouncer's four server connections to `db` at once, then checks that consecutive
/// transactions land on different ones (`scripts/pgbouncer` hands them out round robin): any
/// statement the library splits over two transactions then fails every time, not by chance.
async fn spread(db: &str) {
    use sqlx::Row;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&pgbouncer_url(db))
        .await
        .unwrap();
    let sleeps = (0..4).map(|_| sqlx::raw_sql("SELECT pg_sleep(0.2)").execute(&pool));
    futures_util::future::try_join_all(sleeps).await.unwrap();
    let mut backends = std::collections::HashSet::new();
    for _ in 0..8 {
        let row = sqlx::raw_sql("SELECT pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap();
        backends.insert(row.get::<i32, _>(0));
    }
    assert!(
        backends.len() > 1,
        "PgBouncer reuses one server connection: scripts/pgbouncer sets server_round_robin"
    );
    pool.close().await;
}

/// A handle behind PgBouncer in transaction mode, listening directly.
async fn behind_pgbouncer(db: &TestDb, builder: tenancy::TenancyBuilder) -> Tenancy {
    spread(&db.name).await;
    builder
        .max_connections(4)
        .statement_mode(StatementMode::Unnamed)
        .tenant_migrations(Migrations::from_static(&[(1, "spinner app", SPINNER_SCHEMA)]).unwrap())
        .notify_url(&db.url)
        .connect(&pgbouncer_url(&db.name))
        .await
        .expect("connect through pgbouncer")
}

fn spinner(name: &str) -> NewSpinner {
    NewSpinner {
        id: Uuid::new_v4(),
        name: name.into(),
        color: None,
    }
}

/// Connecting, the registry, every lifecycle call, members, hosts, spares and the superuser's
/// audited reads, through a pooler that gives each transaction another server connection.
#[tokio::test]
#[ignore = "needs PgBouncer: scripts/test runs it through scripts/pgbouncer"]
async fn registry_lifecycle_and_audit_calls_work_through_pgbouncer() {
    use tenancy::{AuditQuery, NewTenant};
    let db = TestDb::new("pgbouncer_admin").await;
    let tenancy = behind_pgbouncer(&db, Tenancy::builder()).await;
    common::migrate_all(&tenancy).await;
    tenancy.verify::<Spinner>().await.unwrap();
    tenancy.verify_deployment().await.unwrap();
    let su = tenancy.superuser("ops", "pgbouncer admin").await.unwrap();
    assert_eq!(tenancy.warm_schemas(&su, 2).await.unwrap(), 2);
    let ctxs = common::create_tenants(
        &tenancy,
        &[
            ("acme", Placement::SharedTable),
            ("initech", Placement::OwnSchema),
        ],
    )
    .await;
    for ctx in &ctxs {
        let id = ctx.id();
        add_spinner_through(ctx).await;
        assert_eq!(tenancy.tenant(&su, id).await.unwrap().id, id);
        tenancy.suspend(&su, id).await.unwrap();
        assert!(tenancy.resolve_id(id).await.is_err());
        tenancy.resume(&su, id).await.unwrap();
        let slug = format!("{}-renamed", ctx.slug());
        tenancy.rename_slug(&su, id, &slug).await.unwrap();
        let host = format!("{slug}.example");
        tenancy.add_host(&su, id, &host, true).await.unwrap();
        assert_eq!(tenancy.resolve_host(&host).await.unwrap().id(), id);
        tenancy.add_member(&su, id, "ann", "admin").await.unwrap();
        assert_eq!(
            tenancy
                .resolve_member("ann", &host)
                .await
                .unwrap()
                .ctx()
                .id(),
            id
        );
        assert_eq!(tenancy.members(&su, id).await.unwrap().len(), 1);
        assert!(tenancy.remove_member(&su, id, "ann").await.unwrap());
        tenancy.remove_host(&su, id, &host).await.unwrap();
        tenancy.soft_delete(&su, id).await.unwrap();
        tenancy.restore(&su, id).await.unwrap();
        let ctx = tenancy.resolve_id(id).await.unwrap();
        assert_eq!(Spinner::repo().count(&ctx).await.unwrap(), 1);
        tenancy.soft_delete(&su, id).await.unwrap();
        tenancy.purge(&su, id).await.unwrap();
    }
    assert!(tenancy.list_tenants(&su).await.unwrap().is_empty());
    let audit = tenancy.audit_log(&su, AuditQuery::default()).await.unwrap();
    assert!(
        audit.iter().any(|r| r.action == "tenant.purge"),
        "{audit:?}"
    );
    assert!(
        tenancy
            .pending_migrations(&su)
            .await
            .unwrap()
            .iter()
            .all(|(_, v)| v.is_empty())
    );
    let late = tenancy
        .create_tenant(NewTenant::new("late", "Late").placement(Placement::OwnSchema))
        .await
        .unwrap();
    add_spinner_through(&tenancy.resolve_id(late.id).await.unwrap()).await;
    tenancy.close().await;
}

async fn add_spinner_through(ctx: &TenantCtx) {
    let name = Uuid::new_v4().to_string();
    let s = Spinner::repo().insert(ctx, &spinner(&name)).await.unwrap();
    assert_eq!(Spinner::repo().get(ctx, s.id).await.unwrap(), Some(s));
}

/// Export and import (whole and streamed), reports, raw SQL, streams and a move, through the
/// round-robin pooler.
#[tokio::test]
#[ignore = "needs PgBouncer: scripts/test runs it through scripts/pgbouncer"]
async fn archives_reports_raw_sql_and_moves_work_through_pgbouncer() {
    use futures_util::TryStreamExt;
    use tenancy::{Agg, ArchiveOptions};
    let db = TestDb::new("pgbouncer_data").await;
    let tenancy = behind_pgbouncer(&db, Tenancy::builder()).await;
    common::migrate_all(&tenancy).await;
    let ctxs = common::create_tenants(
        &tenancy,
        &[
            ("from", Placement::SharedTable),
            ("copy", Placement::OwnSchema),
            ("stream", Placement::SharedTable),
        ],
    )
    .await;
    let su = tenancy.superuser("ops", "pgbouncer data").await.unwrap();
    for name in ["a", "b", "c"] {
        Spinner::repo()
            .insert(&ctxs[0], &spinner(name))
            .await
            .unwrap();
    }
    let archive = tenancy.export_tenant(&su, ctxs[0].id()).await.unwrap();
    assert_eq!(
        tenancy
            .import_tenant(&su, &archive, ctxs[1].id())
            .await
            .unwrap(),
        3
    );
    let mut bytes = Vec::new();
    tenancy
        .export_tenant_to(&su, ctxs[1].id(), &mut bytes, ArchiveOptions::default())
        .await
        .unwrap();
    tenancy
        .import_tenant_from(
            &su,
            &mut &bytes[..],
            ctxs[2].id(),
            ArchiveOptions::default(),
        )
        .await
        .unwrap();
    for ctx in &ctxs {
        let streamed: Vec<Spinner> = Spinner::repo()
            .query()
            .fetch(ctx)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(streamed.len(), 3, "{}", ctx.slug());
        let raw: Vec<(String,)> = Spinner::repo()
            .raw_as("SELECT name FROM {spinners} WHERE name <> $1 ORDER BY name")
            .bind("b")
            .fetch(ctx)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(raw, vec![("a".to_owned(),), ("c".to_owned(),)]);
    }
    let total = Spinner::repo()
        .report()
        .aggregate(Agg::count())
        .fetch(&su)
        .await
        .unwrap();
    assert_eq!(total.overall, 9);
    let moved = tenancy
        .move_tenant(&su, ctxs[0].id(), Placement::OwnSchema)
        .await
        .unwrap();
    assert_eq!(moved.to, Placement::OwnSchema);
    tenancy.purge_old_copy(&su, ctxs[0].id()).await.unwrap();
    let now = tenancy.resolve_id(ctxs[0].id()).await.unwrap();
    Spinner::repo()
        .insert(&now, &spinner("after"))
        .await
        .unwrap();
    assert_eq!(Spinner::repo().count(&now).await.unwrap(), 4);
    tenancy.close().await;
}

/// Own-database tenants behind the pooler: the pooler reaches their databases too, so their
/// provisioning, identity check, statements, spares, reports, migrations, archives, orphan
/// cleanup and purge all go through it.
#[tokio::test]
#[ignore = "needs PgBouncer: scripts/test runs it through scripts/pgbouncer"]
async fn own_database_tenants_work_through_pgbouncer() {
    use tenancy::{Agg, MigrateOptions, NewTenant};
    let db = TestDb::new("pgbouncer_owndb").await;
    let tenancy = behind_pgbouncer(&db, Tenancy::builder().database_budget(8, 2)).await;
    common::migrate_all(&tenancy).await;
    let su = tenancy
        .superuser("ops", "pgbouncer own databases")
        .await
        .unwrap();
    assert_eq!(tenancy.warm_databases(&su, 1).await.unwrap(), 1);
    let mut ctxs = Vec::new();
    for slug in ["hooli", "pied-piper"] {
        let t = tenancy
            .create_tenant(NewTenant::new(slug, slug).placement(Placement::OwnDatabase))
            .await
            .unwrap();
        let ctx = tenancy.resolve_id(t.id).await.unwrap();
        spread(ctx.home().database().unwrap().as_str()).await;
        ctxs.push(ctx);
    }
    for ctx in &ctxs {
        for _ in 0..3 {
            add_spinner_through(ctx).await;
        }
        let mut tx = ctx.begin().await.unwrap();
        assert_eq!(Spinner::repo().count(&mut tx).await.unwrap(), 3);
        tx.commit().await.unwrap();
    }
    let report = tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    let pending = tenancy.pending_migrations(&su).await.unwrap();
    assert!(pending.iter().all(|(_, v)| v.is_empty()), "{pending:?}");
    let total = Spinner::repo()
        .report()
        .aggregate(Agg::count())
        .fetch(&su)
        .await
        .unwrap();
    assert_eq!(total.overall, 6);
    let archive = tenancy.export_tenant(&su, ctxs[0].id()).await.unwrap();
    let copy = tenancy
        .create_tenant(NewTenant::new("copy", "Copy").placement(Placement::OwnDatabase))
        .await
        .unwrap();
    assert_eq!(
        tenancy.import_tenant(&su, &archive, copy.id).await.unwrap(),
        3
    );
    assert!(tenancy.cleanup_orphans(&su).await.unwrap().is_empty());
    for id in [ctxs[0].id(), ctxs[1].id(), copy.id] {
        tenancy.soft_delete(&su, id).await.unwrap();
        tenancy.purge(&su, id).await.unwrap();
    }
    tenancy.close().await;
}
