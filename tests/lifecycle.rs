//! Purge, rename and hosts: each only through a Superuser, each audited, and purge only after a
//! soft delete, touching no other tenant.

mod common;

use common::TestDb;
use common::models::*;
use tenancy::testing::TestTenancy;
use tenancy::{Error, NewTenant, Placement, Purged, Tenancy, TenantCtx, TenantStatus};

async fn seed(ctx: &TenantCtx, n: i32) {
    for i in 0..n {
        common::spin_in(ctx, i).await;
    }
}

async fn count(db: &TestTenancy, sql: &str) -> i64 {
    let mut conn = db.connect().await;
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tenancy::test(migrations = "tests/migrations")]
async fn purge_only_after_soft_delete_and_only_that_tenant(db: TestTenancy) {
    let tenancy = db.tenancy().clone();
    for (slug, placement) in [
        ("gone-shared", Placement::SharedTable),
        ("kept-shared", Placement::SharedTable),
        ("gone-schema", Placement::OwnSchema),
        ("kept-schema", Placement::OwnSchema),
    ] {
        tenancy
            .create_tenant(
                NewTenant::new(slug, slug)
                    .placement(placement)
                    .host(format!("{slug}.example.com")),
            )
            .await
            .unwrap();
        seed(&tenancy.resolve_slug(slug).await.unwrap(), 3).await;
    }
    let su = tenancy.superuser("ops", "customer left").await.unwrap();
    let gone_shared = tenancy.resolve_slug("gone-shared").await.unwrap().id();
    let gone_schema = tenancy.resolve_slug("gone-schema").await.unwrap().id();

    // Not before a soft delete.
    let err = tenancy.purge(&su, gone_shared).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongStatus {
                status: TenantStatus::Active,
                action: "purge",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM public.spins").await, 6);

    tenancy.soft_delete(&su, gone_shared).await.unwrap();
    tenancy.soft_delete(&su, gone_schema).await.unwrap();
    let purged = tenancy.purge(&su, gone_shared).await.unwrap();
    // Children before parents: spins (which references spinners) first.
    assert_eq!(
        purged,
        Purged::Rows(vec![
            ("public.spins".into(), 3),
            ("public.spinners".into(), 3)
        ])
    );
    assert_eq!(
        tenancy.purge(&su, gone_schema).await.unwrap(),
        Purged::Schema("t_gone_schema".into())
    );

    assert_eq!(count(&db, "SELECT count(*) FROM public.spins").await, 3);
    assert_eq!(
        count(&db, "SELECT count(*) FROM t_kept_schema.spins").await,
        3
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 't_gone_schema'"
        )
        .await,
        0
    );
    assert_eq!(count(&db, "SELECT count(*) FROM tenancy.tenants").await, 2);
    assert_eq!(count(&db, "SELECT count(*) FROM tenancy.domains").await, 2);
    assert!(matches!(
        tenancy.resolve_slug("gone-shared").await,
        Err(Error::TenantNotFound(_))
    ));
    assert!(matches!(
        tenancy.resolve_host("gone-schema.example.com").await,
        Err(Error::TenantNotFound(_))
    ));
    assert!(matches!(
        tenancy.purge(&su, gone_shared).await,
        Err(Error::TenantNotFound(_))
    ));
    // The survivors still work.
    for slug in ["kept-shared", "kept-schema"] {
        let ctx = tenancy.resolve_slug(slug).await.unwrap();
        assert_eq!(Spin::repo().count(&ctx).await.unwrap(), 3);
    }
    // The audit keeps the purged tenants' ids.
    let audited = count(
        &db,
        &format!("SELECT count(*) FROM tenancy.audit_log WHERE action = 'tenant.purge' AND tenant_ids && ARRAY['{gone_shared}', '{gone_schema}']::uuid[]"),
    )
    .await;
    assert_eq!(audited, 2);
}

#[tenancy::test(migrations = "tests/migrations")]
async fn rename_and_hosts(db: TestTenancy) {
    let tenancy = db.tenancy().clone();
    tenancy
        .create_tenant(
            NewTenant::new("acme", "Acme")
                .placement(Placement::OwnSchema)
                .host("acme.example.com"),
        )
        .await
        .unwrap();
    tenancy
        .create_tenant(NewTenant::new("globex", "Globex").host("globex.example.com"))
        .await
        .unwrap();
    let acme = tenancy.resolve_slug("acme").await.unwrap();
    let su = tenancy.superuser("ops", "rebrand").await.unwrap();

    // Rename: the old slug stops resolving at once (cache cleared), the schema stays.
    let t = tenancy
        .rename_slug(&su, acme.id(), "acme-two")
        .await
        .unwrap();
    assert_eq!(
        (t.slug.as_str(), t.schema.as_deref()),
        ("acme-two", Some("t_acme"))
    );
    assert!(matches!(
        tenancy.resolve_slug("acme").await,
        Err(Error::TenantNotFound(_))
    ));
    assert_eq!(
        tenancy.resolve_slug("acme-two").await.unwrap().id(),
        acme.id()
    );
    assert!(matches!(
        tenancy.rename_slug(&su, acme.id(), "globex").await,
        Err(Error::SlugTaken(_))
    ));
    assert!(matches!(
        tenancy
            .rename_slug(&su, acme.id(), "Robert'); DROP TABLE x;--")
            .await,
        Err(Error::Invalid(_))
    ));

    // Hosts.
    let t = tenancy
        .add_host(&su, acme.id(), "ACME.io", false)
        .await
        .unwrap();
    assert_eq!(
        t.hosts,
        vec!["acme.example.com".to_owned(), "acme.io".to_owned()]
    );
    assert_eq!(
        tenancy.resolve_host("acme.io").await.unwrap().id(),
        acme.id()
    );
    assert!(matches!(
        tenancy
            .add_host(&su, acme.id(), "globex.example.com", false)
            .await,
        Err(Error::HostTaken(_))
    ));
    let t = tenancy
        .add_host(&su, acme.id(), "www.acme.io", true)
        .await
        .unwrap();
    assert_eq!(t.hosts[0], "www.acme.io", "a new primary host comes first");
    let t = tenancy
        .remove_host(&su, acme.id(), "www.acme.io")
        .await
        .unwrap();
    assert_eq!(
        t.hosts[0], "acme.example.com",
        "the first remaining host is promoted"
    );
    assert!(matches!(
        tenancy.resolve_host("www.acme.io").await,
        Err(Error::TenantNotFound(_))
    ));
    assert!(matches!(
        tenancy
            .remove_host(&su, acme.id(), "globex.example.com")
            .await,
        Err(Error::TenantNotFound(_))
    ));
    assert_eq!(
        tenancy
            .resolve_host("globex.example.com")
            .await
            .unwrap()
            .slug(),
        "globex"
    );

    let actions: Vec<String> = {
        let mut conn = db.connect().await;
        sqlx::query_scalar("SELECT action FROM tenancy.audit_log WHERE grant_id = $1 ORDER BY id")
            .bind(su.grant_id())
            .fetch_all(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(
        actions,
        [
            "tenant.rename_slug",
            "tenant.add_host",
            "tenant.add_host",
            "tenant.remove_host"
        ]
    );
}

/// A shared table whose tenant column is not `tenant_id` (a model's `tenant_column = "org_id"`,
/// with its foreign key to the registry) is exported, imported and purged like the others:
/// otherwise a purge would leave its rows behind for a tenant later created with the same id.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_renamed_tenant_column_is_exported_imported_and_purged(db: TestTenancy) {
    let tenancy = db.tenancy().clone();
    db.exec(
        "CREATE TABLE notes (org_id uuid NOT NULL REFERENCES tenancy.tenants (id), \
                             id uuid NOT NULL, body text NOT NULL, PRIMARY KEY (org_id, id))",
    )
    .await;
    let mut ids = Vec::new();
    for slug in ["acme", "globex", "copy"] {
        ids.push(
            tenancy
                .create_tenant(NewTenant::new(slug, slug))
                .await
                .unwrap()
                .id,
        );
    }
    let (acme, globex, copy) = (ids[0], ids[1], ids[2]);
    for (tenant, n) in [(acme, 3), (globex, 2)] {
        db.exec(&format!(
            "INSERT INTO notes SELECT '{tenant}', gen_random_uuid(), 'note ' || i \
             FROM generate_series(1, {n}) i"
        ))
        .await;
    }
    let notes = |t: tenancy::TenantId| {
        let db = &db;
        async move {
            count(
                db,
                &format!("SELECT count(*) FROM notes WHERE org_id = '{t}'"),
            )
            .await
        }
    };
    let su = tenancy.superuser("ops", "move acme").await.unwrap();
    let archive = tenancy.export_tenant(&su, acme).await.unwrap();
    let table = archive
        .tables
        .iter()
        .find(|t| t.name == "notes")
        .expect("notes is exported");
    assert_eq!(table.rows, 3);
    assert!(!table.columns.iter().any(|c| c == "org_id"));
    tenancy.import_tenant(&su, &archive, copy).await.unwrap();
    assert_eq!(notes(copy).await, 3);

    tenancy.soft_delete(&su, acme).await.unwrap();
    tenancy.purge(&su, acme).await.unwrap();
    assert_eq!(notes(acme).await, 0, "purged");
    assert_eq!(notes(globex).await, 2, "another tenant's rows stay");
    assert_eq!(notes(copy).await, 3);
}

/// A context held across a suspension (a request or job in flight) stops at its next
/// statement, a transaction too; after resuming, a fresh resolution acts again while the old
/// context stays revoked. Contexts of other tenants, and host changes, are not affected.
#[tenancy::test(migrations = "tests/migrations")]
async fn held_contexts_stop_when_their_tenant_is_suspended(db: TestTenancy) {
    let tenancy = db.tenancy().clone();
    for slug in ["acme", "globex"] {
        tenancy
            .create_tenant(NewTenant::new(slug, slug).host(format!("{slug}.test")))
            .await
            .unwrap();
    }
    let acme = tenancy.resolve_slug("acme").await.unwrap();
    let globex = tenancy.resolve_slug("globex").await.unwrap();
    seed(&acme, 2).await;
    seed(&globex, 1).await;
    let su = tenancy.superuser("ops", "revocation").await.unwrap();
    // Host changes do not stop contexts.
    tenancy
        .add_host(&su, acme.id(), "acme2.test", false)
        .await
        .unwrap();
    assert!(Spin::repo().count(&acme).await.is_ok());

    let mut tx = acme.begin().await.unwrap();
    assert!(Spin::repo().count(&mut tx).await.is_ok());
    tenancy.suspend(&su, acme.id()).await.unwrap();
    for r in [
        Spin::repo().count(&acme).await,
        Spin::repo().count(&mut tx).await,
    ] {
        assert!(
            matches!(&r, Err(Error::ContextRevoked { id, .. }) if *id == acme.id()),
            "{r:?}"
        );
    }
    drop(tx);
    assert!(matches!(
        Spin::repo().query().fetch_all(&acme).await,
        Err(Error::ContextRevoked { .. })
    ));
    assert_eq!(Spin::repo().count(&globex).await.unwrap(), 1);

    tenancy.resume(&su, acme.id()).await.unwrap();
    let again = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(Spin::repo().count(&again).await.unwrap(), 2);
    assert!(matches!(
        Spin::repo().count(&acme).await,
        Err(Error::ContextRevoked { .. })
    ));
}

/// An impersonation ends with its Superuser's time-to-live, even though the context outlives it.
#[tokio::test]
async fn an_impersonation_ends_with_its_superusers_ttl() {
    let db = TestDb::new("lifecycle_imp_ttl").await;
    let tenancy = Tenancy::builder()
        .superuser_ttl(std::time::Duration::from_millis(300))
        .connect(&db.url)
        .await
        .unwrap();
    db.exec(common::SPINNER_SCHEMA).await;
    let t = tenancy
        .create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let su = tenancy.superuser("support", "ticket 1").await.unwrap();
    let ctx = tenancy.impersonate(&su, t.id).await.unwrap();
    assert_eq!(Spin::repo().count(&ctx).await.unwrap(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(matches!(
        Spin::repo().count(&ctx).await,
        Err(Error::Forbidden(m)) if m.contains("impersonation")
    ));
    // A resolved context of the same tenant is not bound by it.
    let resolved = tenancy.resolve_id(t.id).await.unwrap();
    assert_eq!(Spin::repo().count(&resolved).await.unwrap(), 0);
}

/// Opening a transaction is a unit of work like a statement: a context that can no longer act
/// (its tenant suspended since it was resolved, its impersonation expired) is refused before a
/// connection is taken, as its statements are.
#[tokio::test]
async fn begin_refuses_a_context_that_can_no_longer_act() {
    let db = TestDb::new("lifecycle_begin_live").await;
    let tenancy = Tenancy::builder()
        .superuser_ttl(std::time::Duration::from_millis(300))
        .connect(&db.url)
        .await
        .unwrap();
    db.exec(common::SPINNER_SCHEMA).await;
    let acme = tenancy
        .create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let beta = tenancy
        .create_tenant(NewTenant::new("beta", "Beta"))
        .await
        .unwrap();
    let ctx = tenancy.resolve_id(acme.id).await.unwrap();
    let su = tenancy.superuser("support", "ticket 2").await.unwrap();
    let imp = tenancy.impersonate(&su, beta.id).await.unwrap();
    ctx.begin().await.unwrap().rollback().await.unwrap();
    imp.begin().await.unwrap().rollback().await.unwrap();

    tenancy.suspend(&su, acme.id).await.unwrap();
    assert!(matches!(
        ctx.begin().await,
        Err(Error::ContextRevoked { id, .. }) if id == acme.id
    ));
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(matches!(
        imp.begin().await,
        Err(Error::Forbidden(m)) if m.contains("impersonation")
    ));
    // The tenant itself is untouched: resolved again, it begins.
    let fresh = tenancy.resolve_id(beta.id).await.unwrap();
    fresh.begin().await.unwrap().commit().await.unwrap();
}
