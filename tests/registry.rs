//! The tenant registry: creation (validation, typed errors, atomicity), resolution by id, slug,
//! host and reference, lifecycle moves through an audited `Superuser`, and the registry's own
//! migration under concurrent start-up.

mod common;

use common::TestDb;
use tenancy::{
    Error, Lookup, NewTenant, Placement, Tenancy, TenantId, TenantRef, TenantStatus,
    ValidationError,
};
use uuid::Uuid;

/// `(tenants, domains, audit_log)` row counts, read around the library.
async fn registry_counts(db: &TestDb) -> (i64, i64, i64) {
    let mut conn = db.connect().await;
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM tenancy.tenants), (SELECT count(*) FROM tenancy.domains), \
                (SELECT count(*) FROM tenancy.audit_log)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

/// Every domain row: `(host, tenant_id, is_primary)`.
async fn domains(db: &TestDb) -> Vec<(String, Uuid, bool)> {
    let mut conn = db.connect().await;
    sqlx::query_as("SELECT host, tenant_id, is_primary FROM tenancy.domains ORDER BY host")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

type AuditRow = (i64, String, String, String, Vec<Uuid>, Option<i64>);

/// Audit records after `after`: `(id, actor, reason, action, tenant_ids, grant_id)`.
async fn audit_since(db: &TestDb, after: i64) -> Vec<AuditRow> {
    let mut conn = db.connect().await;
    sqlx::query_as(
        "SELECT id, actor, reason, action, tenant_ids, grant_id FROM tenancy.audit_log \
         WHERE id > $1 ORDER BY id",
    )
    .bind(after)
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

fn rec(
    id: i64,
    actor: &str,
    reason: &str,
    action: &str,
    tenants: &[TenantId],
    grant: Option<i64>,
) -> AuditRow {
    (
        id,
        actor.to_owned(),
        reason.to_owned(),
        action.to_owned(),
        tenants.iter().map(TenantId::as_uuid).collect(),
        grant,
    )
}

async fn last_audit_id(db: &TestDb) -> i64 {
    let mut conn = db.connect().await;
    sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM tenancy.audit_log")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn tenants_resolve_by_id_slug_host_and_reference() {
    let db = TestDb::new("reg_resolve").await;
    let tenancy = db.tenancy().await;
    let fixed = TenantId::new_v4();
    let su = tenancy.superuser("test", "import acme").await.unwrap();
    let acme = tenancy
        .create_tenant_with_id(
            &su,
            NewTenant::new("acme", "  Acme Corp  ")
                .host("Acme.Example.COM.")
                .host("app.acme.test")
                .host("ACME.example.com"),
            fixed,
        )
        .await
        .unwrap();
    assert_eq!(acme.id, fixed);
    assert_eq!(acme.slug, "acme");
    assert_eq!(acme.name, "Acme Corp", "the name is trimmed");
    assert_eq!(acme.placement, Placement::SharedTable);
    assert_eq!(acme.status, TenantStatus::Active);
    assert_eq!(acme.deleted_at, None);
    assert_eq!(acme.schema, None);
    assert_eq!(
        acme.hosts,
        vec!["acme.example.com", "app.acme.test"],
        "normalised, deduplicated, primary first"
    );
    let globex = tenancy
        .create_tenant(NewTenant::new("globex", "Globex").host("globex.test"))
        .await
        .unwrap();
    assert_ne!(globex.id, acme.id);
    assert_eq!(
        domains(&db).await,
        vec![
            ("acme.example.com".into(), acme.id.as_uuid(), true),
            ("app.acme.test".into(), acme.id.as_uuid(), false),
            ("globex.test".into(), globex.id.as_uuid(), true),
        ]
    );

    let check = |ctx: tenancy::TenantCtx, t: &tenancy::Tenant| {
        assert_eq!(ctx.id(), t.id);
        assert_eq!(ctx.slug(), t.slug);
        assert_eq!(ctx.name(), t.name);
        assert_eq!(ctx.placement(), Placement::SharedTable);
        assert_eq!(ctx.to_ref(), t.to_ref());
    };
    for _ in 0..2 {
        // The second round is served from the resolution cache.
        check(tenancy.resolve_id(acme.id).await.unwrap(), &acme);
        check(tenancy.resolve_slug("acme").await.unwrap(), &acme);
        for host in [
            "acme.example.com",
            "ACME.EXAMPLE.COM",
            "Acme.Example.com:8443",
            "acme.example.com:80",
            "acme.example.com.",
            "APP.acme.test:443",
        ] {
            check(tenancy.resolve_host(host).await.unwrap(), &acme);
        }
        check(
            tenancy.resolve(&TenantRef::new(acme.id)).await.unwrap(),
            &acme,
        );
        check(tenancy.resolve(&acme.to_ref()).await.unwrap(), &acme);
        check(
            tenancy.resolve_host("GLOBEX.test:1").await.unwrap(),
            &globex,
        );
        check(tenancy.resolve_slug("globex").await.unwrap(), &globex);
    }
    // A fresh handle without cache agrees.
    let uncached = Tenancy::builder()
        .max_connections(2)
        .cache_ttl(std::time::Duration::ZERO)
        .connect(&db.url)
        .await
        .unwrap();
    check(
        uncached.resolve_host("acme.example.com").await.unwrap(),
        &acme,
    );

    // Unknown: TenantNotFound naming the lookup.
    let nobody = TenantId::new_v4();
    assert!(matches!(
        tenancy.resolve_id(nobody).await,
        Err(Error::TenantNotFound(Lookup::Id(id))) if id == nobody
    ));
    assert!(matches!(
        tenancy.resolve(&TenantRef::new(nobody)).await,
        Err(Error::TenantNotFound(Lookup::Id(id))) if id == nobody
    ));
    assert!(matches!(
        tenancy.resolve_slug("initech").await,
        Err(Error::TenantNotFound(Lookup::Slug(s))) if s == "initech"
    ));
    assert!(matches!(
        tenancy.resolve_host("Initech.Example.com:8080").await,
        Err(Error::TenantNotFound(Lookup::Host(h))) if h == "initech.example.com"
    ));
    assert!(matches!(
        tenancy.resolve_host("example.com").await,
        Err(Error::TenantNotFound(_))
    ));
    assert!(matches!(
        tenancy.resolve_host("x.acme.example.com").await,
        Err(Error::TenantNotFound(_))
    ));
    assert!(
        tenancy
            .resolve_slug("initech")
            .await
            .unwrap_err()
            .is_tenant_unavailable()
    );

    // Malformed input is refused before any query: Invalid, not NotFound.
    for slug in [
        "ACME",
        "acme'--",
        "Robert'); DROP TABLE tenancy.tenants;--",
        "",
        "acmé",
    ] {
        assert!(
            matches!(
                tenancy.resolve_slug(slug).await,
                Err(Error::Invalid(ValidationError::Slug { .. }))
            ),
            "{slug:?}"
        );
    }
    for host in [
        "acme.example.com;drop",
        "acme..com",
        "",
        "acme.com:80x",
        "p\u{0430}ypal.com",
        "bücher\u{3002}de",
        "[::1]",
    ] {
        assert!(
            matches!(
                tenancy.resolve_host(host).await,
                Err(Error::Invalid(ValidationError::Host { .. }))
            ),
            "{host:?}"
        );
    }
    assert_eq!(registry_counts(&db).await.0, 2);
}

/// International host names are one name in either spelling: kept in punycode, resolved from
/// the Unicode or the ASCII form, and taken by either.
#[tokio::test]
async fn international_hosts_resolve_by_either_spelling() {
    let db = TestDb::new("reg_idn").await;
    let tenancy = db.tenancy().await;
    let buecher = tenancy
        .create_tenant(NewTenant::new("buecher", "Bücher").host("Bücher.example"))
        .await
        .unwrap();
    assert_eq!(buecher.hosts, ["xn--bcher-kva.example"]);
    assert_eq!(
        domains(&db).await,
        [(
            "xn--bcher-kva.example".to_owned(),
            buecher.id.as_uuid(),
            true
        )]
    );
    for host in [
        "bücher.example",
        "BÜCHER.example:8443",
        "bücher.example.",
        "xn--bcher-kva.example",
        "XN--BCHER-KVA.EXAMPLE:443",
    ] {
        let ctx = tenancy
            .resolve_host(host)
            .await
            .unwrap_or_else(|e| panic!("{host:?}: {e}"));
        assert_eq!(ctx.id(), buecher.id, "{host:?}");
    }
    // The other spelling is the same host: taken.
    let r = tenancy
        .create_tenant(NewTenant::new("copycat", "Copycat").host("xn--bcher-kva.example"))
        .await;
    assert!(
        matches!(r, Err(Error::HostTaken(ref h)) if h == "xn--bcher-kva.example"),
        "{r:?}"
    );
    // A look-alike with a Cyrillic letter is refused, not stored beside it.
    let r = tenancy
        .create_tenant(NewTenant::new("mixed", "Mixed").host("bü\u{0441}her.example"))
        .await;
    assert!(
        matches!(r, Err(Error::Invalid(ValidationError::Host { reason, .. })) if reason.contains("mixes scripts")),
        "{r:?}"
    );
    assert_eq!(registry_counts(&db).await.0, 1);
}

#[tokio::test]
async fn hostile_slugs_hosts_and_names_are_refused_and_nothing_is_written() {
    let db = TestDb::new("reg_hostile").await;
    let tenancy = db.tenancy().await;
    tenancy
        .create_tenant(NewTenant::new("existing", "Existing").host("existing.test"))
        .await
        .unwrap();
    let before = registry_counts(&db).await;
    assert_eq!((before.0, before.1), (1, 1));

    let long = "a".repeat(49);
    for slug in [
        "Robert'); DROP TABLE tenancy.tenants;--",
        "Acme",
        "ACME",
        long.as_str(),
        "pg_x",
        "pgx",
        "public",
        "tenancy",
        "acmé",
        "ünïcødé",
        "acme_corp",
        "acme corp",
        "a",
        "",
        "1acme",
        "-acme",
        "acme-",
        "ac--me",
        "acme\0",
        "acme\n",
    ] {
        let r = tenancy
            .create_tenant(NewTenant::new(slug, "Name").host("fresh.test"))
            .await;
        assert!(
            matches!(r, Err(Error::Invalid(ValidationError::Slug { ref input, .. })) if input == slug),
            "slug {slug:?}: {r:?}"
        );
    }
    assert!(
        tenancy
            .create_tenant(NewTenant::new("a".repeat(48), "Longest"))
            .await
            .is_ok()
    );
    let before = registry_counts(&db).await;

    let long_label = format!("{}.com", "a".repeat(64));
    for host in [
        "",
        ".",
        "acme..com",
        "-acme.com",
        "acme-.com",
        "acme_corp.com",
        "acme.com/evil",
        "acme com",
        "acme.com;DROP TABLE tenancy.domains",
        "acme.com'--",
        "p\u{0430}ypal.com",
        "bücher\u{3002}de",
        "[::1]",
        "acme.com:8080",
        long_label.as_str(),
    ] {
        let r = tenancy
            .create_tenant(
                NewTenant::new("fresh", "Fresh")
                    .host("good.test")
                    .host(host),
            )
            .await;
        assert!(
            matches!(r, Err(Error::Invalid(ValidationError::Host { .. }))),
            "host {host:?}: {r:?}"
        );
    }

    for name in ["", "   ", "\t\n"] {
        let r = tenancy.create_tenant(NewTenant::new("fresh", name)).await;
        assert!(
            matches!(r, Err(Error::InvalidName(_))),
            "name {name:?}: {r:?}"
        );
    }
    let r = tenancy
        .create_tenant(NewTenant::new("fresh", "x".repeat(201)))
        .await;
    assert!(matches!(r, Err(Error::InvalidName(_))), "{r:?}");
    let r = tenancy
        .create_tenant(NewTenant::new("fresh", "Evil\u{7}Bell"))
        .await;
    assert!(matches!(r, Err(Error::InvalidName(_))), "{r:?}");
    assert!(
        tenancy
            .create_tenant(NewTenant::new("named", "é".repeat(200)))
            .await
            .is_ok(),
        "200 characters is the limit, not 200 bytes"
    );
    let before = (before.0 + 1, before.1, before.2);

    // A database-per-tenant creation refused by the registry (a taken slug) after its
    // database was made: the database is dropped again, and no row is written.
    let r = tenancy
        .create_tenant(
            NewTenant::new("named", "Fresh")
                .host("fresh.test")
                .placement(Placement::OwnDatabase),
        )
        .await;
    assert!(matches!(r, Err(Error::SlugTaken(_))), "{r:?}");

    assert_eq!(
        registry_counts(&db).await,
        before,
        "a refused tenant wrote something"
    );
    assert!(matches!(
        tenancy.resolve_slug("fresh").await,
        Err(Error::TenantNotFound(_))
    ));
    assert!(matches!(
        tenancy.resolve_host("fresh.test").await,
        Err(Error::TenantNotFound(_))
    ));
    let mut conn = db.connect().await;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'tenancy' AND tablename IN ('tenants', 'domains')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, 2);
}

#[tokio::test]
async fn duplicates_are_typed_errors_and_a_failed_creation_writes_nothing() {
    let db = TestDb::new("reg_duplicates").await;
    let tenancy = db.tenancy().await;
    let acme = tenancy
        .create_tenant(
            NewTenant::new("acme", "Acme")
                .host("shop.example.com")
                .host("acme.test"),
        )
        .await
        .unwrap();
    // Acquired before counting: its own audit record is not the failed creation's.
    let su = tenancy.superuser("test", "same id").await.unwrap();
    let before = registry_counts(&db).await;
    let before_domains = domains(&db).await;

    // Same slug, different everything else.
    let r = tenancy
        .create_tenant(NewTenant::new("acme", "Other").host("other.test"))
        .await;
    assert!(
        matches!(r, Err(Error::SlugTaken(ref s)) if s == "acme"),
        "{r:?}"
    );

    // Same host, also in another case and with a trailing dot; as first or as a later host.
    for hosts in [
        vec!["shop.example.com"],
        vec!["SHOP.Example.COM"],
        vec!["shop.example.com."],
        vec!["new.example.com", "Acme.Test"],
        vec!["new.example.com", "newer.example.com", "shop.example.com"],
    ] {
        let mut new = NewTenant::new("globex", "Globex");
        for h in &hosts {
            new = new.host(*h);
        }
        let r = tenancy.create_tenant(new).await;
        assert!(
            matches!(r, Err(Error::HostTaken(ref h)) if h == "shop.example.com" || h == "acme.test"),
            "{hosts:?}: {r:?}"
        );
    }

    // Same id.
    let r = tenancy
        .create_tenant_with_id(&su, NewTenant::new("globex", "Globex"), acme.id)
        .await;
    assert!(
        matches!(r, Err(Error::TenantIdTaken(id)) if id == acme.id),
        "{r:?}"
    );

    // Nothing of the failed tenants was written: no tenant row, no domain row (the first hosts
    // of a creation failing on a later host included).
    assert_eq!(registry_counts(&db).await, before);
    assert_eq!(domains(&db).await, before_domains);
    assert!(matches!(
        tenancy.resolve_slug("globex").await,
        Err(Error::TenantNotFound(_))
    ));
    assert!(matches!(
        tenancy.resolve_host("new.example.com").await,
        Err(Error::TenantNotFound(_))
    ));

    // The slug and the hosts are free for a creation that does not collide.
    let globex = tenancy
        .create_tenant(
            NewTenant::new("globex", "Globex")
                .host("new.example.com")
                .host("newer.example.com"),
        )
        .await
        .unwrap();
    assert_eq!(globex.hosts, vec!["new.example.com", "newer.example.com"]);
    assert_eq!(
        tenancy.resolve_host("shop.example.com").await.unwrap().id(),
        acme.id
    );

    // Racing creations of one slug: exactly one wins, the others get SlugTaken.
    let racers: Vec<_> = (0..4)
        .map(|i| {
            let t = tenancy.clone();
            tokio::spawn(async move {
                t.create_tenant(
                    NewTenant::new("contested", format!("Racer {i}"))
                        .host(format!("racer{i}.test")),
                )
                .await
            })
        })
        .collect();
    let mut won = 0;
    for r in racers {
        match r.await.unwrap() {
            Ok(_) => won += 1,
            Err(Error::SlugTaken(s)) => assert_eq!(s, "contested"),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won, 1);
    let (tenants, domains_n, _) = registry_counts(&db).await;
    assert_eq!((tenants, domains_n), (before.0 + 2, before.1 + 3));
}

#[tokio::test]
async fn lifecycle_moves_take_effect_at_once_and_are_audited() {
    let db = TestDb::new("reg_lifecycle").await;
    let tenancy = db.tenancy().await;
    let acme = tenancy
        .create_tenant(NewTenant::new("acme", "Acme").host("acme.test"))
        .await
        .unwrap();
    let globex = tenancy
        .create_tenant(NewTenant::new("globex", "Globex").host("globex.test"))
        .await
        .unwrap();
    let id = acme.id;
    // Warm the cache under every key.
    tenancy.resolve_id(id).await.unwrap();
    tenancy.resolve_slug("acme").await.unwrap();
    tenancy.resolve_host("acme.test").await.unwrap();

    let start = last_audit_id(&db).await;
    let su = tenancy
        .superuser("alice@ops", "ticket 42: unpaid invoice")
        .await
        .unwrap();
    assert_eq!(su.actor(), "alice@ops");
    assert_eq!(su.reason(), "ticket 42: unpaid invoice");
    let grant = su.grant_id();
    assert_eq!(
        audit_since(&db, start).await,
        vec![rec(
            grant,
            "alice@ops",
            "ticket 42: unpaid invoice",
            "superuser.acquire",
            &[],
            None
        )]
    );

    let resolve_all = async |expect: &dyn Fn(&tenancy::Result<tenancy::TenantCtx>) -> bool| {
        for (how, r) in [
            ("id", tenancy.resolve_id(id).await),
            ("ref", tenancy.resolve(&TenantRef::new(id)).await),
            ("slug", tenancy.resolve_slug("acme").await),
            ("host", tenancy.resolve_host("ACME.test:443").await),
        ] {
            assert!(expect(&r), "by {how}: {r:?}");
        }
    };
    let suspended = |r: &tenancy::Result<tenancy::TenantCtx>| matches!(r, Err(Error::TenantSuspended { id: i, slug }) if *i == id && slug == "acme");
    let deleted = |r: &tenancy::Result<tenancy::TenantCtx>| matches!(r, Err(Error::TenantDeleted { id: i, slug }) if *i == id && slug == "acme");
    let active = |r: &tenancy::Result<tenancy::TenantCtx>| matches!(r, Ok(c) if c.id() == id);

    // suspend: refused at once despite the warm cache; the other tenant is unaffected.
    let t = tenancy.suspend(&su, id).await.unwrap();
    assert_eq!(t.status, TenantStatus::Suspended);
    assert_eq!(t.deleted_at, None);
    resolve_all(&suspended).await;
    assert!(
        tenancy
            .resolve_id(id)
            .await
            .unwrap_err()
            .is_tenant_unavailable()
    );
    assert_eq!(
        tenancy.resolve_slug("globex").await.unwrap().id(),
        globex.id
    );
    // Another handle (another process) without a cache sees it too.
    let other = Tenancy::builder()
        .max_connections(2)
        .cache_ttl(std::time::Duration::ZERO)
        .connect(&db.url)
        .await
        .unwrap();
    assert!(suspended(&other.resolve_slug("acme").await));

    // resume
    let t = tenancy.resume(&su, id).await.unwrap();
    assert_eq!(t.status, TenantStatus::Active);
    resolve_all(&active).await;

    // soft delete, from active and from suspended
    let t = tenancy.soft_delete(&su, id).await.unwrap();
    assert_eq!(t.status, TenantStatus::Deleted);
    assert!(t.deleted_at.is_some());
    resolve_all(&deleted).await;
    let t = tenancy.restore(&su, id).await.unwrap();
    assert_eq!(t.status, TenantStatus::Active);
    assert_eq!(t.deleted_at, None);
    resolve_all(&active).await;
    tenancy.suspend(&su, id).await.unwrap();
    tenancy.soft_delete(&su, id).await.unwrap();
    resolve_all(&deleted).await;
    let t = tenancy.restore(&su, id).await.unwrap();
    assert_eq!(t.status, TenantStatus::Active);
    assert_eq!(t.hosts, vec!["acme.test"]);
    resolve_all(&active).await;

    let after_moves = last_audit_id(&db).await;
    let records = audit_since(&db, start).await;
    let actions: Vec<&str> = records.iter().map(|r| r.3.as_str()).collect();
    assert_eq!(
        actions,
        [
            "superuser.acquire",
            "tenant.suspend",
            "tenant.resume",
            "tenant.soft_delete",
            "tenant.restore",
            "tenant.suspend",
            "tenant.soft_delete",
            "tenant.restore",
        ]
    );
    for r in &records[1..] {
        assert_eq!(r.1, "alice@ops");
        assert_eq!(r.2, "ticket 42: unpaid invoice");
        assert_eq!(r.4, vec![id.as_uuid()]);
        assert_eq!(r.5, Some(grant));
    }

    // Moves the status does not allow: WrongStatus, nothing changed, nothing audited.
    let wrong = |r: tenancy::Result<tenancy::Tenant>, status: TenantStatus, action: &str| {
        assert!(
            matches!(&r, Err(Error::WrongStatus { id: i, status: s, action: a }) if *i == id && *s == status && *a == action),
            "{action} from {status}: {r:?}"
        );
    };
    wrong(
        tenancy.resume(&su, id).await,
        TenantStatus::Active,
        "resume",
    );
    wrong(
        tenancy.restore(&su, id).await,
        TenantStatus::Active,
        "restore",
    );
    tenancy.suspend(&su, id).await.unwrap();
    wrong(
        tenancy.suspend(&su, id).await,
        TenantStatus::Suspended,
        "suspend",
    );
    wrong(
        tenancy.restore(&su, id).await,
        TenantStatus::Suspended,
        "restore",
    );
    tenancy.soft_delete(&su, id).await.unwrap();
    wrong(
        tenancy.suspend(&su, id).await,
        TenantStatus::Deleted,
        "suspend",
    );
    wrong(
        tenancy.resume(&su, id).await,
        TenantStatus::Deleted,
        "resume",
    );
    wrong(
        tenancy.soft_delete(&su, id).await,
        TenantStatus::Deleted,
        "soft_delete",
    );
    let nobody = TenantId::new_v4();
    assert!(matches!(
        tenancy.suspend(&su, nobody).await,
        Err(Error::TenantNotFound(Lookup::Id(i))) if i == nobody
    ));
    let records = audit_since(&db, after_moves).await;
    assert_eq!(
        records.iter().map(|r| r.3.as_str()).collect::<Vec<_>>(),
        ["tenant.suspend", "tenant.soft_delete"],
        "only the allowed moves are audited"
    );
    resolve_all(&deleted).await;

    // A second acquisition is its own grant; its records point at it.
    let before = last_audit_id(&db).await;
    let bob = tenancy
        .superuser("bob", "restore after payment")
        .await
        .unwrap();
    assert_ne!(bob.grant_id(), grant);
    tenancy.restore(&bob, id).await.unwrap();
    assert_eq!(
        audit_since(&db, before).await,
        vec![
            rec(
                bob.grant_id(),
                "bob",
                "restore after payment",
                "superuser.acquire",
                &[],
                None
            ),
            rec(
                bob.grant_id() + 1,
                "bob",
                "restore after payment",
                "tenant.restore",
                &[id],
                Some(bob.grant_id())
            ),
        ]
    );
    resolve_all(&active).await;

    // A capability acquired through another handle is refused, and writes nothing.
    let foreign = other.superuser("mallory", "other handle").await.unwrap();
    let before = last_audit_id(&db).await;
    assert!(matches!(
        tenancy.suspend(&foreign, id).await,
        Err(Error::Forbidden(_))
    ));
    assert_eq!(last_audit_id(&db).await, before);
    resolve_all(&active).await;
}

#[tokio::test]
async fn a_superuser_needs_an_actor_and_a_reason() {
    let db = TestDb::new("reg_superuser").await;
    let tenancy = db.tenancy().await;
    let before = registry_counts(&db).await;
    let long = "x".repeat(1001);
    for (actor, reason) in [
        ("", "reason"),
        ("   ", "reason"),
        ("\t\n", "reason"),
        ("alice", ""),
        ("alice", "  "),
        ("", ""),
        (long.as_str(), "reason"),
        ("alice", long.as_str()),
    ] {
        let r = tenancy.superuser(actor, reason).await;
        assert!(
            matches!(r, Err(Error::Forbidden(_))),
            "{actor:?}/{reason:?}: {r:?}"
        );
    }
    assert_eq!(
        registry_counts(&db).await,
        before,
        "a refused acquisition was audited"
    );
    let su = tenancy
        .superuser(&"x".repeat(1000), "at the limit")
        .await
        .unwrap();
    let rows = audit_since(&db, 0).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, su.grant_id());
    assert_eq!(rows[0].1.len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_connects_on_a_fresh_database_all_succeed() {
    let db = TestDb::new("reg_concurrent").await;
    let url = db.url.clone();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Tenancy::connect(&url).await })
        })
        .collect();
    let mut handles = Vec::new();
    for t in tasks {
        handles.push(t.await.unwrap().expect("a concurrent connect failed"));
    }
    let mut conn = db.connect().await;
    let versions: Vec<i32> =
        sqlx::query_scalar("SELECT version FROM tenancy.registry_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        versions,
        (1..=10).collect::<Vec<i32>>(),
        "each registry migration applied once"
    );
    // Every handle works on the one registry.
    let t = handles[0]
        .create_tenant(NewTenant::new("acme", "Acme").host("acme.test"))
        .await
        .unwrap();
    for h in &handles {
        assert_eq!(h.resolve_host("acme.test").await.unwrap().id(), t.id);
    }
    // And connecting again later is a no-op.
    Tenancy::connect(&url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tenancy.registry_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 10);
}

/// A server that is not there fails the connection at once, saying where and why, in a sentence;
/// a wrong database name likewise, with the server's words.
#[tokio::test]
async fn connecting_to_a_dead_server_says_where_and_why() {
    // Nothing listens on port 1. Before, this waited 30 s and said only "pool timed out".
    let connecting = Tenancy::connect("postgres://postgres@127.0.0.1:1/app");
    let err = tokio::time::timeout(std::time::Duration::from_secs(20), connecting)
        .await
        .expect("a refused connection fails long before the old 30 s timeout")
        .unwrap_err();
    assert!(
        matches!(&err, Error::Connect { server, .. } if server == "127.0.0.1:1"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "cannot connect to PostgreSQL at 127.0.0.1:1: connection refused"
    );
    // Connecting to install likewise.
    let err = Tenancy::install("postgres://postgres@127.0.0.1:1/app")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");

    let db = TestDb::new("reg_dead_server").await;
    let missing = db.url.replace(&db.name, "no_such_database_here");
    let err = Tenancy::connect(&missing).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("cannot connect to PostgreSQL at ")
            && text.ends_with(": database \"no_such_database_here\" does not exist"),
        "{text}"
    );
}

/// The least-privilege setup the README describes, with real roles: an owner role installs the
/// registry and creates the tables; the application's role, which may not create anything,
/// connects, resolves and reads and writes its tenants' rows, and cannot install the registry.
#[tokio::test]
async fn an_application_role_without_create_runs_once_the_owner_installed_the_registry() {
    use common::models::Spinner;
    use sqlx::Connection;

    let db = TestDb::new("reg_least_privilege").await;
    let suffix = db.name.rsplit('_').next().unwrap().to_owned();
    let (owner, app) = (format!("owner_{suffix}"), format!("app_{suffix}"));
    let as_role = |role: &str| {
        let url = db.url.replacen("://postgres@", &format!("://{role}@"), 1);
        assert_ne!(url, db.url, "the test server's URL names user postgres");
        url
    };
    db.exec(&format!(
        "CREATE ROLE {owner} LOGIN; CREATE ROLE {app} LOGIN;
         ALTER DATABASE \"{}\" OWNER TO {owner};",
        db.name
    ))
    .await;

    // The application's role cannot create the registry, and says so when told not to try.
    let err = Tenancy::connect(&as_role(&app)).await.unwrap_err();
    assert!(
        err.to_string().contains("permission denied for database"),
        "{err}"
    );
    let err = Tenancy::builder()
        .install_registry(false)
        .connect(&as_role(&app))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RegistryNotInstalled(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the tenancy registry is not installed in this database; install it with \
         Tenancy::install as a role that may create schemas in this database"
    );
    assert!(Tenancy::install(&as_role(&app)).await.is_err());

    // The owner installs it, creates the application's tables and grants what the README says.
    Tenancy::install(&as_role(&owner)).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&as_role(&owner)).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "{}
         GRANT USAGE ON SCHEMA tenancy TO {app};
         GRANT SELECT ON tenancy.registry_migrations, tenancy.tenants, tenancy.domains TO {app};
         GRANT SELECT ON tenancy.deployment TO {app};
         GRANT SELECT, INSERT, UPDATE, DELETE ON spinners, spins TO {app};",
        common::SPINNER_SCHEMA
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let ops = Tenancy::builder()
        .max_connections(2)
        .connect(&as_role(&owner))
        .await
        .unwrap();
    let acme = ops
        .create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    ops.create_tenant(NewTenant::new("globex", "Globex"))
        .await
        .unwrap();

    // The application's role starts (either way), resolves, reads and writes.
    for install in [false, true] {
        let tenancy = Tenancy::builder()
            .max_connections(2)
            .install_registry(install)
            .connect(&as_role(&app))
            .await
            .unwrap();
        let ctx = tenancy.resolve_slug("acme").await.unwrap();
        assert_eq!(ctx.id(), acme.id);
        let row = Spinner::repo()
            .insert(
                &ctx,
                &common::models::NewSpinner {
                    id: Uuid::new_v4(),
                    name: format!("install {install}"),
                    color: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(Spinner::repo().get(&ctx, row.id).await.unwrap(), Some(row));
        let globex = tenancy.resolve_slug("globex").await.unwrap();
        assert_eq!(Spinner::repo().count(&globex).await.unwrap(), 0);
        tenancy.close().await;
    }
    // It really is unprivileged: no schema of its own.
    let mut app_conn = sqlx::PgConnection::connect(&as_role(&app)).await.unwrap();
    assert!(
        sqlx::raw_sql("CREATE SCHEMA mine")
            .execute(&mut app_conn)
            .await
            .is_err()
    );
    drop(app_conn);
    ops.close().await;
    drop(conn);

    // Roles outlive the database: drop them (the database goes back to postgres first).
    db.exec(&format!(
        "ALTER DATABASE \"{}\" OWNER TO postgres;
         REASSIGN OWNED BY {owner} TO postgres; DROP OWNED BY {owner}; DROP OWNED BY {app};
         DROP ROLE {owner}; DROP ROLE {app};",
        db.name
    ))
    .await;
}

/// The registry's writes avoid what Citus refuses on a reference table (tests/citus.rs runs
/// them there); here, that the plainer forms do what the old ones did. A soft delete stamps
/// `deleted_at` with its transaction's time and every other move clears it; a host added to a
/// tenant without one becomes primary whatever `primary` says, one added beside a primary does
/// not; a member added again takes the new role and the new transaction's time.
#[tokio::test]
async fn registry_writes_keep_their_meaning_without_case_subqueries_or_now_in_upserts() {
    let db = TestDb::new("reg_citus_forms").await;
    let tenancy = db.tenancy().await;
    let su = tenancy.superuser("ops", "registry forms").await.unwrap();
    let t = tenancy
        .create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let mut conn = db.connect().await;
    let server_now = async |conn: &mut sqlx::PgConnection| -> time::OffsetDateTime {
        sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(conn)
            .await
            .unwrap()
    };

    let before = server_now(&mut conn).await;
    let deleted = tenancy.soft_delete(&su, t.id).await.unwrap();
    let after = server_now(&mut conn).await;
    let at = deleted.deleted_at.expect("a soft delete stamps deleted_at");
    assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
    for (moved, status) in [
        (
            tenancy.restore(&su, t.id).await.unwrap(),
            TenantStatus::Active,
        ),
        (
            tenancy.suspend(&su, t.id).await.unwrap(),
            TenantStatus::Suspended,
        ),
        (
            tenancy.resume(&su, t.id).await.unwrap(),
            TenantStatus::Active,
        ),
    ] {
        assert_eq!((moved.status, moved.deleted_at), (status, None));
    }
    let stored: (String, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT status, deleted_at FROM tenancy.tenants WHERE id = $1")
            .bind(t.id.as_uuid())
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(stored, ("active".to_owned(), None));

    // Hosts on a tenant created without one.
    tenancy
        .add_host(&su, t.id, "b.acme.test", false)
        .await
        .unwrap();
    tenancy
        .add_host(&su, t.id, "a.acme.test", false)
        .await
        .unwrap();
    let id = t.id.as_uuid();
    assert_eq!(
        domains(&db).await,
        vec![
            ("a.acme.test".to_owned(), id, false),
            ("b.acme.test".to_owned(), id, true),
        ]
    );
    tenancy
        .add_host(&su, t.id, "c.acme.test", true)
        .await
        .unwrap();
    assert_eq!(
        domains(&db).await,
        vec![
            ("a.acme.test".to_owned(), id, false),
            ("b.acme.test".to_owned(), id, false),
            ("c.acme.test".to_owned(), id, true),
        ]
    );

    // A member added again.
    let first = tenancy
        .add_member(&su, t.id, "ann", "viewer")
        .await
        .unwrap();
    let before = server_now(&mut conn).await;
    let again = tenancy.add_member(&su, t.id, "ann", "owner").await.unwrap();
    assert_eq!(again.role, "owner");
    assert!(
        first.created_at < before && before <= again.created_at,
        "{} < {before} <= {}",
        first.created_at,
        again.created_at
    );
}

/// With Citus's schema-based sharding on, a new schema becomes a distributed schema; the
/// registry's must not (tests/citus.rs checks it on a cluster). Without Citus the setting is a
/// placeholder, which an event trigger can read as `CREATE SCHEMA tenancy` runs: it must be
/// off there, for that transaction only.
#[tokio::test]
async fn the_registry_schema_is_created_with_schema_based_sharding_off() {
    let db = TestDb::new("reg_schema_sharding").await;
    db.exec(&format!(
        "ALTER DATABASE \"{}\" SET citus.enable_schema_based_sharding = 'on'; \
         CREATE TABLE public.schema_sharding_seen (schema text, setting text); \
         CREATE FUNCTION public.note_schema_sharding() RETURNS event_trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
             INSERT INTO public.schema_sharding_seen \
             SELECT object_identity, current_setting('citus.enable_schema_based_sharding', true) \
             FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE SCHEMA'; \
         END $$; \
         CREATE EVENT TRIGGER note_schema_sharding ON ddl_command_end \
             WHEN TAG IN ('CREATE SCHEMA') EXECUTE FUNCTION public.note_schema_sharding();",
        db.name
    ))
    .await;
    let tenancy = db.tenancy().await;
    let mut conn = db.connect().await;
    let seen: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT schema, setting FROM public.schema_sharding_seen")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(seen, vec![("tenancy".to_owned(), Some("off".to_owned()))]);
    // A session's own setting is left as it was.
    let session: String =
        sqlx::query_scalar("SELECT current_setting('citus.enable_schema_based_sharding')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(session, "on");
    // Without the extension there are no Citus facts to report, whatever the settings say.
    assert_eq!(tenancy.verify_deployment().await.unwrap().citus, None);
}

/// Citus re-raises a worker's unique violation without the constraint's name; creation then
/// reads the registry to say which value was taken. Here a trigger raises such an unnamed
/// violation where the real constraint would have fired.
#[tokio::test]
async fn an_unnamed_unique_violation_still_says_what_was_taken() {
    let db = TestDb::new("reg_unnamed_unique").await;
    let tenancy = db.tenancy().await;
    let acme = tenancy
        .create_tenant(NewTenant::new("acme", "Acme").host("acme.test"))
        .await
        .unwrap();
    db.exec(
        "CREATE FUNCTION public.unnamed_unique() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
             IF TG_TABLE_NAME = 'tenants' THEN \
                 IF EXISTS (SELECT 1 FROM tenancy.tenants WHERE slug = NEW.slug OR id = NEW.id) THEN \
                     RAISE unique_violation USING MESSAGE = 'duplicate key (from a shard)'; \
                 END IF; \
             ELSIF EXISTS (SELECT 1 FROM tenancy.domains WHERE host = NEW.host) THEN \
                 RAISE unique_violation USING MESSAGE = 'duplicate key (from a shard)'; \
             END IF; \
             RETURN NEW; \
         END $$; \
         CREATE TRIGGER unnamed BEFORE INSERT ON tenancy.tenants \
             FOR EACH ROW EXECUTE FUNCTION public.unnamed_unique(); \
         CREATE TRIGGER unnamed BEFORE INSERT ON tenancy.domains \
             FOR EACH ROW EXECUTE FUNCTION public.unnamed_unique();",
    )
    .await;
    let counts = registry_counts(&db).await;
    let again = tenancy.create_tenant(NewTenant::new("acme", "Again")).await;
    assert!(
        matches!(&again, Err(Error::SlugTaken(s)) if s == "acme"),
        "{again:?}"
    );
    assert!(matches!(
        tenancy
            .create_tenant(NewTenant::new("globex", "Globex").host("acme.test"))
            .await,
        Err(Error::HostTaken(h)) if h == "acme.test"
    ));
    let su = tenancy.superuser("ops", "import").await.unwrap();
    assert!(matches!(
        tenancy
            .create_tenant_with_id(&su, NewTenant::new("initech", "Initech"), acme.id)
            .await,
        Err(Error::TenantIdTaken(id)) if id == acme.id
    ));
    assert_eq!(
        registry_counts(&db).await.0,
        counts.0,
        "nothing was created"
    );
    assert_eq!(registry_counts(&db).await.1, counts.1);
}

/// Hosts added at once to a tenant without one: the first to take the tenant's row lock makes
/// its host primary, and every other sees that primary (none fails on the one-primary index,
/// which would read as a taken host).
#[tokio::test]
async fn hosts_added_at_once_elect_one_primary_and_all_succeed() {
    let db = TestDb::new("reg_hosts_at_once").await;
    let tenancy = Tenancy::builder()
        .max_connections(10)
        .connect(&db.url)
        .await
        .unwrap();
    let su = tenancy.superuser("ops", "hosts at once").await.unwrap();
    let t = tenancy
        .create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let adds = (0..8).map(|i| {
        let (tenancy, su) = (tenancy.clone(), &su);
        async move {
            tenancy
                .add_host(su, t.id, &format!("h{i}.acme.test"), false)
                .await
        }
    });
    for added in futures_util::future::join_all(adds).await {
        added.unwrap();
    }
    let rows = domains(&db).await;
    assert_eq!(rows.len(), 8);
    assert_eq!(rows.iter().filter(|(_, _, primary)| *primary).count(), 1);
}
