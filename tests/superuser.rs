//! The `Superuser` capability: the acquisition policy, the time-to-live, impersonation, and the
//! audit log that records every cross-tenant call.

mod common;

use std::time::Duration;

use common::models::*;
use common::{SPINNER_SCHEMA, TestDb, spin_in};
use tenancy::{
    Agg, AuditQuery, AuditRecord, Error, MigrateOptions, Migrations, NewTenant, Placement, Tenancy,
    TenancyBuilder, TenantId,
};
use uuid::Uuid;

fn spinner_migrations() -> Migrations {
    Migrations::from_static(&[(1, "spinner app", SPINNER_SCHEMA)]).unwrap()
}

async fn setup(db: &TestDb, builder: TenancyBuilder) -> Tenancy {
    let tenancy = builder
        .max_connections(4)
        .tenant_migrations(spinner_migrations())
        .connect(&db.url)
        .await
        .unwrap();
    let su = tenancy
        .superuser("ops@example.com", "create shared tables")
        .await
        .unwrap();
    let report = tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    tenancy
}

/// Every audit record, oldest first, read directly (not through the audited API).
async fn all_records(
    db: &TestDb,
) -> Vec<(
    String,
    String,
    String,
    Vec<Uuid>,
    Option<i64>,
    Option<String>,
)> {
    let mut conn = db.connect().await;
    sqlx::query_as(
        "SELECT actor, reason, action, tenant_ids, grant_id, detail FROM tenancy.audit_log ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_policy_refusal_is_audited_and_forbidden() {
    let db = TestDb::new("su_policy").await;
    let tenancy = setup(
        &db,
        Tenancy::builder().superuser_policy(|actor, reason| {
            if actor != "ops@example.com" {
                return Err(format!("{actor} is not on the allow-list"));
            }
            if reason.len() < 5 {
                return Err("say why".into());
            }
            Ok(())
        }),
    )
    .await;

    let err = tenancy
        .superuser("intern@example.com", "just looking")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Forbidden(m) if m.contains("not on the allow-list")),
        "{err}"
    );
    let err = tenancy
        .superuser("ops@example.com", "why")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Forbidden(m) if m.contains("say why")),
        "{err}"
    );
    // Malformed requests are refused before the policy and write nothing.
    let before = all_records(&db).await.len();
    assert!(matches!(
        tenancy.superuser(" ", "x").await,
        Err(Error::Forbidden(_))
    ));
    assert_eq!(all_records(&db).await.len(), before);

    let su = tenancy
        .superuser("ops@example.com", "ticket #12")
        .await
        .unwrap();
    let records = all_records(&db).await;
    let refused: Vec<_> = records
        .iter()
        .filter(|r| r.2 == "superuser.refused")
        .collect();
    assert_eq!(refused.len(), 2);
    assert_eq!(refused[0].0, "intern@example.com");
    assert_eq!(refused[0].1, "just looking");
    assert_eq!(
        refused[0].5.as_deref(),
        Some("intern@example.com is not on the allow-list")
    );
    assert_eq!(refused[0].4, None, "a refusal is under no grant");
    assert!(
        !records
            .iter()
            .any(|r| r.0 == "intern@example.com" && r.2 == "superuser.acquire"),
        "no acquisition for a refused actor"
    );
    // The refusals are listed by the audit query too.
    let listed = tenancy
        .audit_log(
            &su,
            AuditQuery {
                action: Some("superuser.refused".into()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].actor, "ops@example.com", "newest first");
    assert_eq!(listed[1].actor, "intern@example.com");
}

#[tokio::test]
async fn an_expired_superuser_is_refused_by_every_operation() {
    let db = TestDb::new("su_ttl").await;
    let tenancy = setup(
        &db,
        Tenancy::builder().superuser_ttl(Duration::from_millis(400)),
    )
    .await;
    let t = tenancy
        .create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let su = tenancy
        .superuser("ops@example.com", "short job")
        .await
        .unwrap();
    assert!(!su.is_expired());
    assert_eq!(
        su.expires_at(),
        Some(su.acquired_at() + Duration::from_millis(400))
    );
    tenancy.list_tenants(&su).await.unwrap();
    let acquired = all_records(&db)
        .await
        .into_iter()
        .find(|r| r.2 == "superuser.acquire" && r.1 == "short job")
        .unwrap();
    assert_eq!(acquired.5.as_deref(), Some("expires after 0.400 s"));

    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(su.is_expired());
    let before = all_records(&db).await.len();
    let expired = |e: Error| matches!(&e, Error::Forbidden(m) if m.contains("expired"));
    assert!(expired(tenancy.list_tenants(&su).await.unwrap_err()));
    assert!(expired(tenancy.tenant(&su, t.id).await.unwrap_err()));
    assert!(expired(tenancy.impersonate(&su, t.id).await.unwrap_err()));
    assert!(expired(
        tenancy
            .audit_log(&su, AuditQuery::default())
            .await
            .unwrap_err()
    ));
    assert!(expired(tenancy.suspend(&su, t.id).await.unwrap_err()));
    assert!(expired(tenancy.export_tenant(&su, t.id).await.unwrap_err()));
    assert!(expired(
        tenancy
            .migrate_tenants(&su, MigrateOptions::default())
            .await
            .unwrap_err()
    ));
    assert!(expired(
        tenancy
            .migrate_shared(&su, &Migrations::empty())
            .await
            .unwrap_err()
    ));
    assert!(expired(tenancy.warm_schemas(&su, 1).await.unwrap_err()));
    assert!(expired(
        tenancy
            .create_tenant_with_id(&su, NewTenant::new("globex", "Globex"), TenantId::new_v4())
            .await
            .unwrap_err()
    ));
    assert!(expired(
        Spin::repo().report().fetch_all(&su).await.unwrap_err()
    ));
    assert!(expired(
        Spin::repo()
            .report()
            .aggregate(Agg::count())
            .fetch(&su)
            .await
            .unwrap_err()
    ));
    assert_eq!(
        all_records(&db).await.len(),
        before,
        "refused uses change nothing"
    );
    assert_eq!(
        tenancy.resolve_id(t.id).await.unwrap().id(),
        t.id,
        "not suspended"
    );

    // A new acquisition (audited again) works.
    let again = tenancy
        .superuser("ops@example.com", "short job, again")
        .await
        .unwrap();
    assert_eq!(tenancy.list_tenants(&again).await.unwrap().len(), 1);
}

/// The admin doors that run SQL outside a tenant or choose a tenant's id: each writes its
/// record with the change, and a failed call leaves neither.
#[tokio::test]
async fn shared_migrations_spares_and_chosen_ids_are_audited_with_the_change() {
    let db = TestDb::new("su_admin_doors").await;
    let tenancy = setup(&db, Tenancy::builder()).await;
    let su = tenancy
        .superuser("ops@example.com", "release 7")
        .await
        .unwrap();
    let records = async |action: &str| -> Vec<(Vec<Uuid>, Option<String>)> {
        all_records(&db)
            .await
            .into_iter()
            .filter(|r| r.2 == action)
            .map(|r| {
                assert_eq!(r.4, Some(su.grant_id()));
                (r.3, r.5)
            })
            .collect()
    };

    let plans = Migrations::from_static(&[(1, "plans", "CREATE TABLE plans (id int)")]).unwrap();
    assert_eq!(tenancy.migrate_shared(&su, &plans).await.unwrap(), vec![1]);
    let broken = Migrations::from_static(&[(2, "broken", "ALTER TABLE nope ADD x int")]).unwrap();
    tenancy.migrate_shared(&su, &broken).await.unwrap_err();
    assert_eq!(
        records("shared.migrate").await,
        vec![(vec![], Some("applied [1]".to_owned()))],
        "one record for the applied run, none for the failed one"
    );

    assert_eq!(tenancy.warm_schemas(&su, 2).await.unwrap(), 2);
    let warmed = records("schemas.warm").await;
    assert_eq!(warmed.len(), 2);
    assert!(warmed.iter().all(|(_, d)| {
        d.as_deref()
            .is_some_and(|d| d.starts_with("tenancy_spare_"))
    }));

    let id = TenantId::new_v4();
    let t = tenancy
        .create_tenant_with_id(&su, NewTenant::new("imported", "Imported"), id)
        .await
        .unwrap();
    assert_eq!(t.id, id);
    tenancy
        .create_tenant_with_id(&su, NewTenant::new("again", "Again"), id)
        .await
        .unwrap_err();
    assert_eq!(
        records("tenant.create_with_id").await,
        vec![(vec![id.as_uuid()], Some("imported".to_owned()))]
    );
}

#[tokio::test]
async fn impersonation_gives_exactly_that_tenant_and_is_audited() {
    let db = TestDb::new("su_impersonate").await;
    let tenancy = setup(&db, Tenancy::builder()).await;
    let a = tenancy
        .create_tenant(NewTenant::new("acme", "Acme").placement(Placement::OwnSchema))
        .await
        .unwrap();
    let b = tenancy
        .create_tenant(NewTenant::new("globex", "Globex"))
        .await
        .unwrap();
    let a_spin = spin_in(&tenancy.resolve_id(a.id).await.unwrap(), 130).await;
    let b_spin = spin_in(&tenancy.resolve_id(b.id).await.unwrap(), 90).await;

    let su = tenancy
        .superuser("support@example.com", "ticket #4411: missing spins")
        .await
        .unwrap();
    for (tenant, mine, theirs) in [(&a, &a_spin, &b_spin), (&b, &b_spin, &a_spin)] {
        let ctx = tenancy.impersonate(&su, tenant.id).await.unwrap();
        assert_eq!(ctx.id(), tenant.id);
        assert_eq!(ctx.slug(), tenant.slug);
        assert_eq!(ctx.placement(), tenant.placement);
        assert_eq!(
            Spin::repo().query().fetch_all(&ctx).await.unwrap(),
            vec![mine.clone()]
        );
        assert_eq!(Spin::repo().get(&ctx, theirs.id).await.unwrap(), None);
        assert!(!Spin::repo().delete(&ctx, theirs.id).await.unwrap());
        // It acts: a write lands in that tenant only.
        let new = spin_in(&ctx, 7).await;
        assert!(
            Spin::repo()
                .exists(&tenancy.resolve_id(tenant.id).await.unwrap(), new.id)
                .await
                .unwrap()
        );
        let other = if tenant.id == a.id { &b } else { &a };
        assert!(
            !Spin::repo()
                .exists(&tenancy.resolve_id(other.id).await.unwrap(), new.id)
                .await
                .unwrap()
        );
    }
    let records = tenancy
        .audit_log(
            &su,
            AuditQuery {
                action: Some("tenant.impersonate".into()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].tenant_ids, vec![b.id]);
    assert_eq!(records[1].tenant_ids, vec![a.id]);
    for r in &records {
        assert_eq!(r.actor, "support@example.com");
        assert_eq!(r.reason, "ticket #4411: missing spins");
        assert_eq!(r.grant_id, Some(su.grant_id()));
        assert!(r.at >= su.acquired_at());
    }

    // Suspended, deleted and unknown tenants are refused as by resolution, and audited.
    tenancy.suspend(&su, a.id).await.unwrap();
    let err = tenancy.impersonate(&su, a.id).await.unwrap_err();
    assert!(
        matches!(err, Error::TenantSuspended { id, .. } if id == a.id),
        "{err}"
    );
    tenancy.soft_delete(&su, b.id).await.unwrap();
    let err = tenancy.impersonate(&su, b.id).await.unwrap_err();
    assert!(
        matches!(err, Error::TenantDeleted { id, .. } if id == b.id),
        "{err}"
    );
    let ghost = TenantId::new_v4();
    let err = tenancy.impersonate(&su, ghost).await.unwrap_err();
    assert!(matches!(err, Error::TenantNotFound(_)), "{err}");
    let refused = tenancy
        .audit_log(
            &su,
            AuditQuery {
                action: Some("tenant.impersonate.refused".into()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    let refused: Vec<(Vec<TenantId>, String)> = refused
        .into_iter()
        .map(|r| (r.tenant_ids, r.detail.unwrap_or_default()))
        .collect();
    assert_eq!(refused.len(), 3);
    assert_eq!(refused[0].0, vec![ghost]);
    assert!(refused[1].1.contains("deleted"), "{}", refused[1].1);
    assert!(refused[2].1.contains("suspended"), "{}", refused[2].1);

    tenancy.resume(&su, a.id).await.unwrap();
    assert_eq!(tenancy.impersonate(&su, a.id).await.unwrap().id(), a.id);
}

#[tokio::test]
async fn the_audit_query_filters_lists_newest_first_and_is_audited() {
    let db = TestDb::new("su_audit_query").await;
    let tenancy = setup(&db, Tenancy::builder()).await;
    let a = tenancy
        .create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let b = tenancy
        .create_tenant(NewTenant::new("globex", "Globex").placement(Placement::OwnSchema))
        .await
        .unwrap();
    let alice = tenancy
        .superuser("alice@example.com", "ticket #1")
        .await
        .unwrap();
    let start = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    tenancy.impersonate(&alice, a.id).await.unwrap();
    tenancy.tenant(&alice, b.id).await.unwrap();
    let bob = tenancy
        .superuser("bob@example.com", "ticket #2")
        .await
        .unwrap();
    tenancy.suspend(&bob, b.id).await.unwrap();
    tenancy.resume(&bob, b.id).await.unwrap();

    let all = tenancy
        .audit_log(&alice, AuditQuery::default())
        .await
        .unwrap();
    assert!(
        all.windows(2)
            .all(|w| w[0].at >= w[1].at && w[0].id > w[1].id)
    );
    assert_eq!(all[0].action, "tenant.resume", "newest first");
    assert!(
        all.iter().all(|r| r.action != "audit.read"),
        "a read does not list itself"
    );

    let by_bob = tenancy
        .audit_log(
            &alice,
            AuditQuery {
                actor: Some("bob@example.com".into()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    let actions: Vec<&str> = by_bob.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        ["tenant.resume", "tenant.suspend", "superuser.acquire"]
    );
    assert_eq!(by_bob[2].id, bob.grant_id());
    assert_eq!(by_bob[2].grant_id, None);
    assert!(
        by_bob[..2]
            .iter()
            .all(|r| r.grant_id == Some(bob.grant_id()))
    );

    let on_b = tenancy
        .audit_log(
            &bob,
            AuditQuery {
                tenant: Some(b.id),
                since: Some(start),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    let actions: Vec<&str> = on_b.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        ["tenant.resume", "tenant.suspend", "tenant.read"],
        "reads of the log that were not narrowed to b do not name it"
    );

    let under_alice = tenancy
        .audit_log(
            &bob,
            AuditQuery {
                grant_id: Some(alice.grant_id()),
                limit: Some(2),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(under_alice.len(), 2);
    assert!(
        under_alice
            .iter()
            .all(|r| r.actor == "alice@example.com" && r.grant_id == Some(alice.grant_id()))
    );

    let nothing = tenancy
        .audit_log(
            &bob,
            AuditQuery {
                since: Some(time::OffsetDateTime::now_utc() + time::Duration::hours(1)),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(nothing.is_empty());

    // Each read was audited, with its query.
    let reads = tenancy
        .audit_log(
            &bob,
            AuditQuery {
                action: Some("audit.read".into()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(reads.len(), 5);
    let narrowed = reads
        .iter()
        .find(|r| r.tenant_ids == vec![b.id])
        .expect("the read narrowed to b names b");
    assert_eq!(narrowed.actor, "bob@example.com");
    let detail = narrowed.detail.as_deref().unwrap();
    assert!(
        detail.contains(&format!("tenant={}", b.id)) && detail.contains("since="),
        "{detail}"
    );
    assert!(reads[0].detail.as_deref().unwrap().contains("limit=1000"));
}

/// The record of what a call wrote, for comparing.
fn summary(r: &AuditRecord) -> (String, Vec<TenantId>) {
    (r.action.clone(), r.tenant_ids.clone())
}

#[tokio::test]
async fn every_cross_tenant_call_is_audited_completely() {
    let db = TestDb::new("su_every_call").await;
    let tenancy = setup(&db, Tenancy::builder()).await;
    let mut ids = Vec::new();
    for (slug, placement) in [
        ("acme", Placement::SharedTable),
        ("globex", Placement::OwnSchema),
        ("initech", Placement::SharedTable),
    ] {
        let t = tenancy
            .create_tenant(NewTenant::new(slug, slug).placement(placement))
            .await
            .unwrap();
        spin_in(&tenancy.resolve_id(t.id).await.unwrap(), 150).await;
        ids.push(t.id);
    }
    let mut sorted = ids.clone();
    sorted.sort();
    let su = tenancy
        .superuser("ops@example.com", "ticket #77")
        .await
        .unwrap();
    let (a, b, c) = (ids[0], ids[1], ids[2]);

    tenancy.list_tenants(&su).await.unwrap();
    tenancy.tenant(&su, a).await.unwrap();
    tenancy.impersonate(&su, b).await.unwrap();
    Spin::repo()
        .report()
        .filter(Spin::DURATION.gt(120))
        .order_by(Spin::DURATION.desc())
        .limit(10)
        .fetch_all(&su)
        .await
        .unwrap();
    Spin::repo()
        .report()
        .tenants([c, a])
        .aggregate(Agg::avg(Spin::DURATION))
        .fetch(&su)
        .await
        .unwrap();
    Spin::repo()
        .report()
        .placement(Placement::OwnSchema)
        .fetch_all(&su)
        .await
        .unwrap();
    tenancy.suspend(&su, c).await.unwrap();
    tenancy.resume(&su, c).await.unwrap();
    tenancy.soft_delete(&su, c).await.unwrap();
    tenancy.restore(&su, c).await.unwrap();
    tenancy.export_tenant(&su, a).await.unwrap();

    let records = tenancy
        .audit_log(
            &su,
            AuditQuery {
                grant_id: Some(su.grant_id()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    let mut got: Vec<(String, Vec<TenantId>)> = records.iter().map(summary).collect();
    got.reverse();
    let mut ac = vec![a, c];
    ac.sort();
    let expected: Vec<(String, Vec<TenantId>)> = vec![
        // By slug, which is the order they were created in.
        ("tenants.list".into(), ids.clone()),
        ("tenant.read".into(), vec![a]),
        ("tenant.impersonate".into(), vec![b]),
        ("report.rows".into(), sorted.clone()),
        ("report.aggregate".into(), ac),
        ("report.rows".into(), vec![b]),
        ("tenant.suspend".into(), vec![c]),
        ("tenant.resume".into(), vec![c]),
        ("tenant.soft_delete".into(), vec![c]),
        ("tenant.restore".into(), vec![c]),
        ("tenant.export".into(), vec![a]),
    ];
    assert_eq!(got, expected);
    for r in &records {
        assert_eq!(r.actor, "ops@example.com");
        assert_eq!(r.reason, "ticket #77");
        assert_eq!(r.grant_id, Some(su.grant_id()));
        assert!(r.at >= su.acquired_at());
    }
    let rows = records
        .iter()
        .rev()
        .find(|r| r.action == "report.rows")
        .unwrap();
    assert_eq!(
        rows.detail.as_deref(),
        Some(
            "rows of Spin from \"spins\" WHERE \"duration\" > $1 ORDER BY \"duration\" DESC \
             LIMIT 10; all active tenants"
        ),
        "the query, without its values"
    );
    let agg = records
        .iter()
        .find(|r| r.action == "report.aggregate")
        .unwrap();
    assert_eq!(
        agg.detail.as_deref(),
        Some("avg(\"duration\") of Spin from \"spins\"; 2 listed tenants")
    );
}

#[tokio::test]
async fn a_superuser_of_another_tenancy_is_refused() {
    let db = TestDb::new("su_other").await;
    let tenancy = setup(&db, Tenancy::builder()).await;
    let other = setup(&db, Tenancy::builder()).await;
    let t = tenancy
        .create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let su = other
        .superuser("ops@example.com", "wrong handle")
        .await
        .unwrap();
    for err in [
        tenancy.impersonate(&su, t.id).await.unwrap_err(),
        tenancy
            .audit_log(&su, AuditQuery::default())
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::Forbidden(m) if m.contains("another Tenancy")),
            "{err}"
        );
    }
}

/// Impersonation, creation under a chosen id and tenant migration write their audit rows
/// through the one audited path: each names its action, its tenants and what happened.
#[tokio::test]
async fn admin_calls_record_action_tenants_and_outcome() {
    let db = TestDb::new("su_outcomes").await;
    let tenancy = setup(&db, Tenancy::builder()).await;
    let records = async |action: &str| -> Vec<(Vec<Uuid>, Option<String>)> {
        all_records(&db)
            .await
            .into_iter()
            .filter(|r| r.2 == action)
            .map(|r| (r.3, r.5))
            .collect()
    };
    // `setup` migrated the shared tables, the one target then.
    assert_eq!(
        records("tenants.migrate").await,
        vec![(vec![], Some("1 applied, 0 up to date, 0 failed".to_owned()))]
    );
    let su = tenancy
        .superuser("ops@example.com", "outcomes")
        .await
        .unwrap();

    // Created under a chosen id, in its own schema (the path that runs migrations): audited
    // with the id and the slug.
    let acme = TenantId::new_v4();
    tenancy
        .create_tenant_with_id(
            &su,
            NewTenant::new("acme", "Acme").placement(Placement::OwnSchema),
            acme,
        )
        .await
        .unwrap();
    let beta = tenancy
        .create_tenant(NewTenant::new("beta", "Beta").placement(Placement::OwnSchema))
        .await
        .unwrap()
        .id;
    assert_eq!(
        records("tenant.create_with_id").await,
        vec![(vec![acme.as_uuid()], Some("acme".to_owned()))],
        "a creation under a random id is not an admin act"
    );

    // Impersonation: granted with the slug, refused with the cause.
    tenancy.impersonate(&su, beta).await.unwrap();
    tenancy.suspend(&su, acme).await.unwrap();
    tenancy.impersonate(&su, acme).await.unwrap_err();
    assert_eq!(
        records("tenant.impersonate").await,
        vec![(vec![beta.as_uuid()], Some("beta".to_owned()))]
    );
    let refused = records("tenant.impersonate.refused").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, vec![acme.as_uuid()]);
    assert!(
        refused[0]
            .1
            .as_deref()
            .is_some_and(|d| d.contains("suspended")),
        "{refused:?}"
    );

    // A second migration that fails in one schema: the row counts what was applied and what
    // failed, and names both own-schema tenants.
    db.exec("ALTER TABLE t_beta.spinners ADD COLUMN extra integer")
        .await;
    let next = Migrations::from_static(&[
        (1, "spinner app", SPINNER_SCHEMA),
        (2, "extra", "ALTER TABLE spinners ADD COLUMN extra integer"),
    ])
    .unwrap();
    let second = Tenancy::builder()
        .tenant_migrations(next)
        .listen_for_changes(false)
        .connect(&db.url)
        .await
        .unwrap();
    let su2 = second
        .superuser("ops@example.com", "migrate 2")
        .await
        .unwrap();
    let report = second
        .migrate_tenants(&su2, MigrateOptions::default())
        .await
        .unwrap();
    assert_eq!(report.failed().count(), 1, "{report:?}");
    let mut runs = records("tenants.migrate").await;
    assert_eq!(runs.len(), 2);
    let (mut tenants, detail) = runs.pop().unwrap();
    tenants.sort();
    let mut both = vec![acme.as_uuid(), beta.as_uuid()];
    both.sort();
    assert_eq!(tenants, both);
    assert_eq!(detail.as_deref(), Some("2 applied, 0 up to date, 1 failed"));

    // A run refused before it starts is on record too, with why.
    let refused = Migrations::from_static(&[(3, "escape", "COMMIT;")]).unwrap();
    let third = Tenancy::builder()
        .tenant_migrations(refused)
        .listen_for_changes(false)
        .connect(&db.url)
        .await
        .unwrap();
    let su3 = third
        .superuser("ops@example.com", "migrate 3")
        .await
        .unwrap();
    let err = third
        .migrate_tenants(&su3, MigrateOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MigrationRefused { .. }), "{err}");
    let runs = records("tenants.migrate").await;
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[2].0, Vec::<Uuid>::new());
    assert!(
        runs[2]
            .1
            .as_deref()
            .is_some_and(|d| d.starts_with("failed: ")),
        "{runs:?}"
    );
}
