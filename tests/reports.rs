//! Cross-tenant reports, checked against a brute-force computation: every tenant read through its
//! own repository (with its own `TenantCtx`), the rows merged and sorted in the test, on random
//! data over tenants of both placements.

mod common;

use std::cmp::Ordering;

use common::models::*;
use common::{SPINNER_SCHEMA, TestDb};
use tenancy::testing::TestTenancy;
use tenancy::{
    Agg, AuditQuery, Error, Filter, MigrateOptions, Migrations, NewTenant, Order, Placement,
    ReportError, Superuser, Tenancy, TenantId,
};
use uuid::Uuid;

fn spinner_migrations() -> Migrations {
    Migrations::from_static(&[(1, "spinner app", SPINNER_SCHEMA)]).unwrap()
}

/// splitmix64: reproducible data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn uuid(&mut self) -> Uuid {
        Uuid::from_u64_pair(self.next(), self.next())
    }
}

const NOTES: &[&str] = &["alpha", "Beta", "beta", "élan", "zeta", "Zulu", "", "eta 2"];

/// Fills a tenant with 1-3 spinners and 0-59 spins: durations in steps of 10 (many ties),
/// notes NULL a third of the time, and some ids that other tenants use too.
async fn fill(ctx: &tenancy::TenantCtx, rng: &mut Rng, common_ids: &[Uuid]) -> usize {
    let spinners: Vec<NewSpinner> = (0..1 + rng.below(3))
        .map(|i| NewSpinner {
            id: rng.uuid(),
            name: format!("spinner-{i}"),
            color: None,
        })
        .collect();
    Spinner::repo().insert_many(ctx, &spinners).await.unwrap();
    let n = rng.below(60) as usize;
    let mut used = std::collections::HashSet::new();
    let spins: Vec<NewSpin> = (0..n)
        .map(|_| {
            let mut id = if rng.below(5) == 0 {
                common_ids[rng.below(common_ids.len() as u64) as usize]
            } else {
                rng.uuid()
            };
            while !used.insert(id) {
                id = rng.uuid();
            }
            NewSpin {
                id,
                spinner_id: spinners[rng.below(spinners.len() as u64) as usize].id,
                duration: (rng.below(30) * 10) as i32,
                note: (rng.below(3) != 0)
                    .then(|| NOTES[rng.below(NOTES.len() as u64) as usize].to_owned()),
            }
        })
        .collect();
    Spin::repo().insert_many(ctx, &spins).await.unwrap();
    n
}

struct World {
    tenancy: Tenancy,
    su: Superuser,
    /// Active tenants, by id, with their placement.
    active: Vec<(TenantId, Placement)>,
    /// Suspended and deleted tenants, with data.
    inactive: Vec<TenantId>,
}

/// 36 active tenants (18 on shared tables, 18 in their own schemas), plus a suspended and a
/// deleted one that hold data and must never show up.
async fn world(db: &TestTenancy, seed: u64) -> World {
    let tenancy = db.tenancy().clone();
    let mut rng = Rng(seed);
    let common_ids: Vec<Uuid> = (0..12).map(|_| rng.uuid()).collect();
    let su = tenancy
        .superuser("analyst@example.com", "report tests")
        .await
        .unwrap();
    let mut active = Vec::new();
    let mut inactive = Vec::new();
    for i in 0..39 {
        let placement = if i % 2 == 0 {
            Placement::SharedTable
        } else {
            Placement::OwnSchema
        };
        let t = tenancy
            .create_tenant(NewTenant::new(format!("t{i}"), format!("T{i}")).placement(placement))
            .await
            .unwrap();
        let ctx = tenancy.resolve_id(t.id).await.unwrap();
        fill(&ctx, &mut rng, &common_ids).await;
        match i {
            36 => {
                tenancy.suspend(&su, t.id).await.unwrap();
                inactive.push(t.id);
            }
            37 | 38 => {
                tenancy.soft_delete(&su, t.id).await.unwrap();
                inactive.push(t.id);
            }
            _ => active.push((t.id, placement)),
        }
    }
    active.sort_by_key(|(id, _)| *id);
    World {
        tenancy,
        su,
        active,
        inactive,
    }
}

#[derive(Debug, Clone, Copy)]
enum By {
    Duration,
    CreatedAt,
    Note,
    Id,
}

fn order(by: By, desc: bool) -> Order<Spin> {
    match (by, desc) {
        (By::Duration, false) => Spin::DURATION.asc(),
        (By::Duration, true) => Spin::DURATION.desc(),
        (By::CreatedAt, false) => Spin::CREATED_AT.asc(),
        (By::CreatedAt, true) => Spin::CREATED_AT.desc(),
        (By::Note, false) => Spin::NOTE.asc(),
        (By::Note, true) => Spin::NOTE.desc(),
        (By::Id, false) => Spin::ID.asc(),
        (By::Id, true) => Spin::ID.desc(),
    }
}

/// PostgreSQL's order, written out independently of the library: NULL after values, text
/// byte-wise.
fn cmp_by(a: &Spin, b: &Spin, by: By) -> Ordering {
    match by {
        By::Duration => a.duration.cmp(&b.duration),
        By::CreatedAt => a.created_at.cmp(&b.created_at),
        By::Id => a.id.cmp(&b.id),
        By::Note => match (&a.note, &b.note) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => x.as_bytes().cmp(y.as_bytes()),
        },
    }
}

#[derive(Clone)]
struct Case {
    name: &'static str,
    filter: Filter<Spin>,
    order: Vec<(By, bool)>,
    limit: Option<i64>,
    offset: Option<i64>,
    tenants: Option<Vec<TenantId>>,
    placement: Option<Placement>,
}

impl Case {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            filter: Filter::all(),
            order: Vec::new(),
            limit: None,
            offset: None,
            tenants: None,
            placement: None,
        }
    }

    fn report(&self) -> tenancy::Report<Spin> {
        let mut r = Spin::repo().report().filter(self.filter.clone());
        for &(by, desc) in &self.order {
            r = r.order_by(order(by, desc));
        }
        if let Some(n) = self.limit {
            r = r.limit(n);
        }
        if let Some(n) = self.offset {
            r = r.offset(n);
        }
        if let Some(ids) = &self.tenants {
            r = r.tenants(ids);
        }
        if let Some(p) = self.placement {
            r = r.placement(p);
        }
        r
    }

    /// The tenants this case covers.
    fn covered(&self, w: &World) -> Vec<TenantId> {
        w.active
            .iter()
            .filter(|(id, p)| {
                self.tenants.as_ref().is_none_or(|ids| ids.contains(id))
                    && self.placement.is_none_or(|want| want == *p)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Every covered tenant read with its own context, merged and sorted here.
    async fn brute_force(&self, w: &World) -> Vec<(TenantId, Spin)> {
        let mut all = Vec::new();
        for id in self.covered(w) {
            let ctx = w.tenancy.resolve_id(id).await.unwrap();
            let rows = Spin::repo()
                .query()
                .filter(self.filter.clone())
                .fetch_all(&ctx)
                .await
                .unwrap();
            all.extend(rows.into_iter().map(|r| (id, r)));
        }
        all.sort_by(|(ta, a), (tb, b)| {
            for &(by, desc) in &self.order {
                let o = cmp_by(a, b, by);
                let o = if desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            ta.cmp(tb).then(a.id.cmp(&b.id))
        });
        let offset = self.offset.unwrap_or(0) as usize;
        let limit = self.limit.map_or(usize::MAX, |n| n as usize);
        all.into_iter().skip(offset).take(limit).collect()
    }
}

fn cases(w: &World) -> Vec<Case> {
    let some: Vec<TenantId> = w.active.iter().step_by(3).map(|(id, _)| *id).collect();
    vec![
        Case::new("everything, in (tenant, key) order"),
        Case {
            filter: Spin::DURATION.gt(120),
            order: vec![(By::Duration, true)],
            limit: Some(100),
            ..Case::new("top 100 spins longer than 120")
        },
        Case {
            filter: Spin::DURATION.ge(50) & Spin::NOTE.is_not_null(),
            order: vec![(By::Note, false), (By::Duration, true)],
            limit: Some(25),
            offset: Some(7),
            ..Case::new("text then number, a page in")
        },
        Case {
            order: vec![(By::Note, true), (By::CreatedAt, false)],
            limit: Some(40),
            ..Case::new("nullable text descending: NULLs first")
        },
        Case {
            filter: Spin::DURATION.ge(200),
            order: vec![(By::Note, true), (By::Duration, false)],
            limit: Some(30),
            ..Case::new("nullable text descending, bounded by a value: NULLs kept")
        },
        Case {
            filter: Spin::DURATION.ge(100),
            order: vec![(By::Duration, true), (By::Note, false)],
            limit: Some(12),
            offset: Some(4),
            ..Case::new("a bound from the first schemas, ties kept")
        },
        Case {
            filter: Spin::NOTE.ilike("%eta%"),
            order: vec![(By::CreatedAt, true)],
            offset: Some(3),
            ..Case::new("offset without a limit")
        },
        Case {
            filter: Spin::DURATION.is_in([0, 10, 290]),
            order: vec![(By::Duration, false)],
            limit: Some(1000),
            offset: Some(5),
            ..Case::new("a limit past the end")
        },
        Case {
            order: vec![(By::Duration, true)],
            limit: Some(15),
            tenants: Some(some),
            ..Case::new("a list of tenants")
        },
        Case {
            order: vec![(By::Duration, false)],
            limit: Some(30),
            placement: Some(Placement::OwnSchema),
            ..Case::new("own-schema tenants only")
        },
        Case {
            limit: Some(30),
            offset: Some(2),
            placement: Some(Placement::SharedTable),
            ..Case::new("shared-table tenants only")
        },
        Case {
            order: vec![(By::Id, true)],
            limit: Some(20),
            ..Case::new("by key, descending")
        },
        Case {
            order: vec![(By::Duration, false)],
            limit: Some(0),
            ..Case::new("limit 0")
        },
        Case {
            filter: Spin::DURATION.lt(0),
            order: vec![(By::Duration, false)],
            limit: Some(10),
            ..Case::new("nothing matches")
        },
    ]
}

/// The newest audit record written under `su`.
async fn last_audit(w: &World) -> tenancy::AuditRecord {
    let records = w
        .tenancy
        .audit_log(
            &w.su,
            AuditQuery {
                grant_id: Some(w.su.grant_id()),
                limit: Some(2),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    // The newest may be the `audit.read` of a previous look; skip those.
    records
        .into_iter()
        .find(|r| r.action != "audit.read")
        .expect("an audit record")
}

fn assert_audited(rec: &tenancy::AuditRecord, w: &World, action: &str, tenants: &[TenantId]) {
    assert_eq!(rec.action, action);
    assert_eq!(rec.actor, "analyst@example.com");
    assert_eq!(rec.reason, "report tests");
    assert_eq!(rec.grant_id, Some(w.su.grant_id()));
    assert_eq!(rec.tenant_ids, tenants, "audited tenants");
    let detail = rec.detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains("Spin") && detail.contains("\"spins\""),
        "{detail}"
    );
}

#[tenancy::test(migrations = "tests/migrations", max_connections = 8)]
async fn rows_match_a_per_tenant_brute_force_over_mixed_placements(db: TestTenancy) {
    let w = world(&db, 0x5EED_0001).await;
    assert_eq!(w.active.len(), 36);

    let mut merged_duplicates = false;
    for case in cases(&w) {
        let expected = case.brute_force(&w).await;
        // The default plan, then small batches run concurrently: the same rows, in the same
        // order.
        for (batch, concurrency, cache) in [(100, 4, true), (4, 3, false), (1, 1, true)] {
            let got = case
                .report()
                .batch_size(batch)
                .concurrency(concurrency)
                .cache_statements(cache)
                .fetch_all(&w.su)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            assert_eq!(
                got.len(),
                expected.len(),
                "{} (batch {batch}): row count",
                case.name
            );
            assert!(
                got == expected,
                "{} (batch {batch}): rows or order differ",
                case.name
            );
            let rec = last_audit(&w).await;
            assert_audited(&rec, &w, "report.rows", &case.covered(&w));
        }
        if case.tenants.is_none() && case.placement.is_none() && case.limit.is_none() {
            // Equal ids in different tenants are different rows.
            let mut ids: Vec<Uuid> = expected.iter().map(|(_, s)| s.id).collect();
            let n = ids.len();
            ids.sort();
            ids.dedup();
            merged_duplicates |= ids.len() < n;
        }
    }
    assert!(merged_duplicates, "the data has ids shared by tenants");

    // Nothing of the inactive tenants, ever.
    let all = Spin::repo().report().fetch_all(&w.su).await.unwrap();
    assert!(all.iter().all(|(t, _)| !w.inactive.contains(t)));
    let mut conn = db.connect().await;
    let inactive_rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM public.spins WHERE tenant_id = ANY($1)) \
         + (SELECT count(*) FROM t_t37.spins)",
    )
    .bind(w.inactive.iter().map(|t| t.as_uuid()).collect::<Vec<_>>())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(inactive_rows > 0, "inactive tenants hold data");
}

#[tenancy::test(migrations = "tests/migrations", max_connections = 8)]
async fn aggregates_match_a_per_tenant_brute_force(db: TestTenancy) {
    let w = world(&db, 0x5EED_0002).await;

    for filter in [
        Filter::all(),
        Spin::DURATION.gt(100),
        Spin::NOTE.is_null(),
        Spin::DURATION.lt(0),
    ] {
        let case = Case {
            filter: filter.clone(),
            ..Case::new("aggregate")
        };
        let rows = case.brute_force(&w).await;
        let covered = case.covered(&w);
        let of = |t: TenantId| rows.iter().filter(move |(id, _)| *id == t).map(|(_, s)| s);

        let count = Spin::repo()
            .report()
            .filter(filter.clone())
            .batch_size(5)
            .aggregate(Agg::count())
            .fetch(&w.su)
            .await
            .unwrap();
        assert_eq!(count.overall, rows.len() as i64);
        assert_eq!(
            count.per_tenant,
            covered
                .iter()
                .map(|&t| (t, of(t).count() as i64))
                .collect::<Vec<_>>()
        );
        assert_audited(&last_audit(&w).await, &w, "report.aggregate", &covered);

        let sum = Spin::repo()
            .report()
            .filter(filter.clone())
            .aggregate(Agg::sum(Spin::DURATION))
            .fetch(&w.su)
            .await
            .unwrap();
        let total: i64 = rows.iter().map(|(_, s)| i64::from(s.duration)).sum();
        assert_eq!(sum.overall, total);
        for &(t, v) in &sum.per_tenant {
            assert_eq!(v, of(t).map(|s| i64::from(s.duration)).sum::<i64>());
        }

        let avg = Spin::repo()
            .report()
            .filter(filter.clone())
            .batch_size(3)
            .concurrency(2)
            .aggregate(Agg::avg(Spin::DURATION))
            .fetch(&w.su)
            .await
            .unwrap();
        // The true average over every row, not the average of the tenants' averages.
        let expected = (!rows.is_empty()).then(|| total as f64 / rows.len() as f64);
        assert_eq!(avg.overall, expected);
        for &(t, v) in &avg.per_tenant {
            let n = of(t).count();
            let s: i64 = of(t).map(|s| i64::from(s.duration)).sum();
            assert_eq!(v, (n > 0).then(|| s as f64 / n as f64), "tenant {t}");
        }
        let averages: Vec<f64> = avg.per_tenant.iter().filter_map(|(_, v)| *v).collect();
        if averages.len() > 1 {
            let mean_of_means = averages.iter().sum::<f64>() / averages.len() as f64;
            assert!((mean_of_means - expected.unwrap()).abs() > 1e-9);
        }

        let min = Spin::repo()
            .report()
            .filter(filter.clone())
            .aggregate(Agg::min(Spin::DURATION))
            .fetch(&w.su)
            .await
            .unwrap();
        assert_eq!(min.overall, rows.iter().map(|(_, s)| s.duration).min());
        for &(t, v) in &min.per_tenant {
            assert_eq!(v, of(t).map(|s| s.duration).min());
        }

        let max = Spin::repo()
            .report()
            .filter(filter.clone())
            .aggregate(Agg::max(Spin::DURATION))
            .fetch(&w.su)
            .await
            .unwrap();
        assert_eq!(max.overall, rows.iter().map(|(_, s)| s.duration).max());

        // Text: byte-wise, NULLs skipped.
        let notes = Spin::repo()
            .report()
            .filter(filter.clone())
            .aggregate(Agg::max(Spin::NOTE))
            .fetch(&w.su)
            .await
            .unwrap();
        assert_eq!(
            notes.overall,
            rows.iter().filter_map(|(_, s)| s.note.clone()).max()
        );
        for (t, v) in &notes.per_tenant {
            assert_eq!(*v, of(*t).filter_map(|s| s.note.clone()).max());
        }
        let first_note = Spin::repo()
            .report()
            .filter(filter.clone())
            .aggregate(Agg::min(Spin::NOTE))
            .fetch(&w.su)
            .await
            .unwrap();
        assert_eq!(
            first_note.overall,
            rows.iter().filter_map(|(_, s)| s.note.clone()).min()
        );

        let earliest = Spin::repo()
            .report()
            .filter(filter.clone())
            .placement(Placement::OwnSchema)
            .aggregate(Agg::min(Spin::CREATED_AT))
            .fetch(&w.su)
            .await
            .unwrap();
        let own: Vec<TenantId> = w
            .active
            .iter()
            .filter(|(_, p)| *p == Placement::OwnSchema)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(
            earliest
                .per_tenant
                .iter()
                .map(|(t, _)| *t)
                .collect::<Vec<_>>(),
            own
        );
        assert_eq!(
            earliest.overall,
            rows.iter()
                .filter(|(t, _)| own.contains(t))
                .map(|(_, s)| s.created_at)
                .min()
        );
        for (t, v) in &earliest.per_tenant {
            assert_eq!(*v, of(*t).map(|s| s.created_at).min());
            assert_eq!(earliest.tenant(*t), Some(v));
        }
    }
}

#[tenancy::test(migrations = "tests/migrations", max_connections = 8)]
async fn only_active_tenants_and_listed_ones_must_be_readable(db: TestTenancy) {
    let w = world(&db, 0x5EED_0003).await;
    let suspended = w.inactive[0];
    let deleted = w.inactive[1];
    let ok = w.active[0].0;

    let err = Spin::repo()
        .report()
        .tenants([ok, suspended])
        .fetch_all(&w.su)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TenantSuspended { id, .. } if id == suspended),
        "{err}"
    );
    let err = Spin::repo()
        .report()
        .tenants(vec![deleted])
        .aggregate(Agg::count())
        .fetch(&w.su)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TenantDeleted { id, .. } if id == deleted),
        "{err}"
    );
    let listed = vec![ok, TenantId::new_v4()];
    let err = Spin::repo()
        .report()
        .tenants(listed.as_slice())
        .fetch_all(&w.su)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TenantNotFound(_)), "{err}");

    // Duplicates in the list are one tenant; an empty list covers nothing (and is audited).
    let twice = Spin::repo()
        .report()
        .tenants([ok, ok])
        .fetch_all(&w.su)
        .await
        .unwrap();
    let once = Case {
        tenants: Some(vec![ok]),
        ..Case::new("one")
    }
    .brute_force(&w)
    .await;
    assert_eq!(twice, once);
    let none = Spin::repo()
        .report()
        .tenants(Vec::<TenantId>::new())
        .fetch_all(&w.su)
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_audited(&last_audit(&w).await, &w, "report.rows", &[]);
    let count = Spin::repo()
        .report()
        .tenants(Vec::<TenantId>::new())
        .aggregate(Agg::count())
        .fetch(&w.su)
        .await
        .unwrap();
    assert_eq!((count.overall, count.per_tenant.len()), (0, 0));

    let err = Spin::repo()
        .report()
        .limit(-1)
        .fetch_all(&w.su)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Report(ReportError::NegativeLimit(-1))),
        "{err}"
    );
}

/// A report over 300 schemas, 50 per statement: several batches, merged right.
#[tenancy::test(migrations = "tests/migrations", max_connections = 8)]
async fn many_schemas_in_batches(db: TestTenancy) {
    let tenancy = db.tenancy().clone();
    let su = tenancy.superuser("analyst", "batches").await.unwrap();
    tenancy.warm_schemas(&su, 300).await.unwrap();
    let mut rng = Rng(0x5EED_0004);
    let mut ids = Vec::new();
    for i in 0..300 {
        let t = tenancy
            .create_tenant(
                NewTenant::new(format!("s{i}"), format!("S{i}")).placement(Placement::OwnSchema),
            )
            .await
            .unwrap();
        let ctx = tenancy.resolve_id(t.id).await.unwrap();
        let spinner = Spinner::repo()
            .insert(
                &ctx,
                &NewSpinner {
                    id: rng.uuid(),
                    name: "s".into(),
                    color: None,
                },
            )
            .await
            .unwrap();
        let spins: Vec<NewSpin> = (0..rng.below(4))
            .map(|_| NewSpin {
                id: rng.uuid(),
                spinner_id: spinner.id,
                duration: rng.below(1000) as i32,
                note: None,
            })
            .collect();
        Spin::repo().insert_many(&ctx, &spins).await.unwrap();
        ids.push(t.id);
    }
    ids.sort();

    let mut expected = Vec::new();
    for &id in &ids {
        let ctx = tenancy.resolve_id(id).await.unwrap();
        for s in Spin::repo().query().fetch_all(&ctx).await.unwrap() {
            expected.push((id, s));
        }
    }
    expected.sort_by(|(ta, a), (tb, b)| {
        b.duration
            .cmp(&a.duration)
            .then(ta.cmp(tb))
            .then(a.id.cmp(&b.id))
    });
    expected.truncate(20);
    let got = Spin::repo()
        .report()
        .order_by(Spin::DURATION.desc())
        .limit(20)
        .batch_size(50)
        .concurrency(3)
        .fetch_all(&su)
        .await
        .unwrap();
    assert!(got == expected);
    let avg = Spin::repo()
        .report()
        .batch_size(50)
        .aggregate(Agg::avg(Spin::DURATION))
        .fetch(&su)
        .await
        .unwrap();
    assert_eq!(avg.per_tenant.len(), 300);
    let audit = tenancy
        .audit_log(
            &su,
            AuditQuery {
                action: Some("report.aggregate".into()),
                limit: Some(1),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(audit[0].tenant_ids, ids);
}

/// A report reads each own schema on the same server connection from one report to the next
/// (its report lane), and never on more connections than `report_connections`, whatever its
/// `concurrency`: a connection that has read a schema keeps its catalog entries, and planning
/// over cold ones costs 100 times more (BENCHMARKS.md). Observed through `pg_stat_activity`,
/// where an idle backend shows the last statement it ran: with one batch per lane, every
/// batch is some lane's last. (Without lanes, `report_connections(0)`, the batches spread
/// over the pool's connections: this fails.)
#[tokio::test]
async fn a_schema_is_read_on_the_same_report_connection_every_time() {
    let db = TestDb::new("report_lanes").await;
    let tenancy = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .max_connections(8)
        .report_connections(2)
        .connect(&db.url)
        .await
        .unwrap();
    let su = tenancy.superuser("analyst", "lanes").await.unwrap();
    tenancy.warm_schemas(&su, 30).await.unwrap();
    for i in 0..30 {
        tenancy
            .create_tenant(
                NewTenant::new(format!("l{i}"), format!("L{i}")).placement(Placement::OwnSchema),
            )
            .await
            .unwrap();
    }
    let mut watch = db.connect().await;
    let mut seen: Option<std::collections::BTreeMap<String, i32>> = None;
    for run in 0..5 {
        let counted = Spin::repo()
            .report()
            .batch_size(100)
            .concurrency(8)
            // Cached, a batch runs in a read-only transaction whose `ROLLBACK` is the last
            // statement `pg_stat_activity` shows.
            .cache_statements(false)
            .aggregate(Agg::count())
            .fetch(&su)
            .await
            .unwrap();
        assert_eq!(counted.per_tenant.len(), 30);
        // Each report statement's first schema, by the backend that ran it last.
        let last: Vec<(i32, String)> = sqlx::query_as(
            "SELECT pid, substring(query FROM '\"(t_[a-z0-9_]+)\"') FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
               AND query LIKE '%UNION ALL%' AND query LIKE '%t\\_l%'",
        )
        .fetch_all(&mut watch)
        .await
        .unwrap();
        let by_schema: std::collections::BTreeMap<String, i32> = last
            .into_iter()
            .map(|(pid, schema)| (schema, pid))
            .collect();
        assert_eq!(
            by_schema
                .values()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            2,
            "run {run}: report statements on two connections, one per lane: {by_schema:?}"
        );
        match &seen {
            None => seen = Some(by_schema),
            Some(first) => assert_eq!(
                first, &by_schema,
                "run {run}: a schema read on another connection than before"
            ),
        }
    }
}

/// Reports running at once share the report lanes and take turns on them, batch by batch:
/// none fails for waiting longer than the acquire timeout behind a slow batch (a turn is not
/// a pool borrow), and each gets its rows. One tenant's table is made slow to read (a view
/// that sleeps 0.4 s); waiting in the lane pool's queue behind it instead, this fails with
/// `PoolTimedOut`.
#[tokio::test]
async fn reports_running_at_once_take_turns_on_the_lanes() {
    let db = TestDb::new("report_lane_turns").await;
    let tenancy = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .report_connections(1)
        .acquire_timeout(std::time::Duration::from_millis(200))
        .connect(&db.url)
        .await
        .unwrap();
    let su = tenancy.superuser("analyst", "turns").await.unwrap();
    for i in 0..6 {
        tenancy
            .create_tenant(
                NewTenant::new(format!("r{i}"), format!("R{i}")).placement(Placement::OwnSchema),
            )
            .await
            .unwrap();
    }
    let report = || {
        Spin::repo()
            .report()
            .batch_size(1)
            .cache_statements(false)
            .aggregate(Agg::count())
    };
    // The first report checks the tables (a view would fail the model check) and warms the
    // lane; then the slow view goes in.
    assert_eq!(report().fetch(&su).await.unwrap().per_tenant.len(), 6);
    sqlx::raw_sql(
        "ALTER TABLE t_r0.spins RENAME TO spins_kept; \
         CREATE VIEW t_r0.spins AS SELECT * FROM t_r0.spins_kept \
          WHERE (SELECT pg_sleep(0.4)::text) = ''",
    )
    .execute(&mut db.connect().await)
    .await
    .unwrap();
    let runs = (0..4).map(|_| async { report().fetch(&su).await });
    for counted in futures_util::future::join_all(runs).await {
        assert_eq!(counted.unwrap().per_tenant.len(), 6);
    }
}

/// A report cancelled at any await leaves its report lane fit for the next one: a batch cut off
/// inside its read-only transaction closes the lane's connection rather than giving it back
/// inside it (no session stays idle in a transaction), and the next report, on a new
/// connection, reads the same rows. One lane, so
/// every batch meets the connection the cancelled one left.
#[tokio::test]
async fn a_report_cancelled_at_any_await_leaves_its_lane_clean() {
    use std::time::Duration;
    use tenancy::testing::{cancel_at, eventually};
    let db = TestDb::new("report_lane_cancel").await;
    let tenancy = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .report_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    let su = tenancy.superuser("analyst", "cancel").await.unwrap();
    let mut rng = Rng(0x5EED_0007);
    let mut want = Vec::new();
    for i in 0..12 {
        let t = tenancy
            .create_tenant(
                NewTenant::new(format!("c{i}"), format!("C{i}")).placement(Placement::OwnSchema),
            )
            .await
            .unwrap();
        let ctx = tenancy.resolve_id(t.id).await.unwrap();
        let spinner = Spinner::repo()
            .insert(
                &ctx,
                &NewSpinner {
                    id: rng.uuid(),
                    name: "s".into(),
                    color: None,
                },
            )
            .await
            .unwrap();
        let spin = NewSpin {
            id: rng.uuid(),
            spinner_id: spinner.id,
            duration: i,
            note: None,
        };
        want.push((t.id, Spin::repo().insert(&ctx, &spin).await.unwrap()));
    }
    want.sort_by_key(|(_, s)| std::cmp::Reverse(s.duration));
    want.truncate(10);
    // Ordered and limited: a probe, then batches of 4, each in its own transaction (cached
    // statements run on their generic plan).
    let report = Spin::repo()
        .report()
        .order_by(Spin::DURATION.desc())
        .limit(10)
        .batch_size(4)
        .cache_statements(true);
    let mut watch = db.connect().await;
    for k in 1..=500 {
        let done = cancel_at(k, report.fetch_all(&su)).await;
        eventually(
            "no session left inside a transaction",
            Duration::from_secs(5),
            async || {
                let open: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND state LIKE 'idle in transaction%'",
                )
                .fetch_one(&mut watch)
                .await
                .unwrap();
                open == 0
            },
        )
        .await;
        assert!(
            report.fetch_all(&su).await.unwrap() == want,
            "the report after one cancelled at its await #{k}"
        );
        if let Some(out) = done {
            assert!(out.unwrap() == want);
            assert!(k > 1, "the report never waited: nothing was cancelled");
            return;
        }
    }
    panic!("the report did not finish within 500 awaits");
}

/// A report's statements over schemas run with their generic plan from the first run on a
/// connection (no custom plan: planning a `UNION ALL` of many branches costs more than running
/// it), and the setting that asks for it ends with the statement's transaction.
#[tokio::test]
async fn cached_report_statements_use_their_generic_plan_and_leave_no_setting() {
    use sqlx::Row;
    let db = TestDb::new("report_generic").await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    let tenancy = Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .from_pool(pool.clone())
        .await
        .unwrap();
    let su = tenancy.superuser("analyst", "plans").await.unwrap();
    tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let t = tenancy
            .create_tenant(
                NewTenant::new(format!("g{i}"), format!("G{i}")).placement(Placement::OwnSchema),
            )
            .await
            .unwrap();
        ids.push(t.id);
    }
    let report = || {
        Spin::repo()
            .report()
            .tenants(ids.clone())
            .filter(Spin::DURATION.gt(5))
            .order_by(Spin::DURATION.desc())
            .limit(10)
    };
    for _ in 0..3 {
        assert!(report().fetch_all(&su).await.unwrap().is_empty());
    }
    let mut conn = pool.acquire().await.unwrap();
    let row = sqlx::raw_sql(
        "SELECT now() <> statement_timestamp(), current_setting('plan_cache_mode'), \
                (SELECT count(*) FROM pg_prepared_statements \
                  WHERE statement LIKE '%UNION ALL%' AND generic_plans = 3), \
                (SELECT count(*) FROM pg_prepared_statements \
                  WHERE statement LIKE '%UNION ALL%' AND custom_plans > 0)",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert!(!row.get::<bool, _>(0), "a transaction left open");
    assert_eq!(
        row.get::<String, _>(1),
        "auto",
        "the plan setting outlived its statement"
    );
    assert_eq!(
        row.get::<i64, _>(2),
        1,
        "the batch ran three times on its generic plan"
    );
    assert_eq!(row.get::<i64, _>(3), 0, "no custom plan");
}

#[tokio::test]
async fn an_expired_superuser_runs_no_report() {
    let db = TestDb::new("report_expired").await;
    let tenancy = Tenancy::builder()
        .max_connections(3)
        .tenant_migrations(spinner_migrations())
        .superuser_ttl(std::time::Duration::from_millis(300))
        .connect(&db.url)
        .await
        .unwrap();
    let su = tenancy.superuser("test", "migrate").await.unwrap();
    tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    Spin::repo().report().fetch_all(&su).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    let before = count_audit(&db).await;
    let err = Spin::repo().report().fetch_all(&su).await.unwrap_err();
    assert!(
        matches!(&err, Error::Forbidden(m) if m.contains("expired")),
        "{err}"
    );
    let err = Spin::repo()
        .report()
        .aggregate(Agg::count())
        .fetch(&su)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Forbidden(m) if m.contains("expired")),
        "{err}"
    );
    assert_eq!(
        count_audit(&db).await,
        before,
        "nothing ran, nothing audited"
    );
}

async fn count_audit(db: &TestDb) -> i64 {
    let mut conn = db.connect().await;
    sqlx::query_scalar("SELECT count(*) FROM tenancy.audit_log")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// The speed goal: the top 100 spins longer than 120 over 200 schemas of 1,000 spins,
/// against a naive UNION ALL of every schema. Prints timings; asserts only that both agree.
/// `cargo test --release --test reports -- --ignored --nocapture report_speed`
#[tenancy::test(
    migrations = "tests/migrations",
    max_connections = 8,
    flavor = "multi_thread"
)]
#[ignore = "benchmark: builds 200 schemas x 1,000 spins"]
async fn report_speed_200_schemas_by_1000_spins(db: TestTenancy) {
    let tenancy = db.tenancy().clone();
    let su = tenancy.superuser("bench", "speed").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..200 {
        let t = tenancy
            .create_tenant(
                NewTenant::new(format!("b{i}"), format!("B{i}")).placement(Placement::OwnSchema),
            )
            .await
            .unwrap();
        ids.push(t.id);
    }
    // 1,000 spins per schema, in SQL for speed.
    let mut script = String::new();
    for (i, id) in ids.iter().enumerate() {
        script.push_str(&format!(
            "INSERT INTO t_b{i}.spinners (tenant_id, id, name) VALUES ('{id}', '{id}', 's');
             INSERT INTO t_b{i}.spins (tenant_id, id, spinner_id, duration, created_at)
             SELECT '{id}', gen_random_uuid(), '{id}', (random() * 300)::int,
                    now() - random() * interval '30 days'
             FROM generate_series(1, 1000);
             ANALYZE t_b{i}.spins;"
        ));
    }
    db.exec(&script).await;

    {
        // The fixed cost: finding the tenants and writing the audit record.
        let mut times = Vec::new();
        for _ in 0..25 {
            let t = std::time::Instant::now();
            Spin::repo()
                .report()
                .placement(Placement::SharedTable)
                .fetch_all(&su)
                .await
                .unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        println!("resolve + audit only: median {:?}", times[times.len() / 2]);
    }
    let mut conn = db.connect().await;
    // "Newest/longest first": both orderings; the tenant tables index (tenant_id, created_at).
    for (name, by, desc_col) in [
        ("longest first", Spin::DURATION.desc(), "duration"),
        ("newest first", Spin::CREATED_AT.desc(), "created_at"),
    ] {
        let branches: Vec<String> = (0..200)
            .map(|i| {
                format!(
                    "SELECT tenant_id, id, spinner_id, duration, note, created_at FROM t_b{i}.spins"
                )
            })
            .collect();
        let naive_sql = format!(
            "SELECT tenant_id, id FROM ({}) s WHERE duration > 120 \
             ORDER BY {desc_col} DESC, tenant_id, id LIMIT 100",
            branches.join(" UNION ALL ")
        );
        let report = || {
            Spin::repo()
                .report()
                .filter(Spin::DURATION.gt(120))
                .order_by(by.clone())
                .limit(100)
        };
        let mut naive = Vec::new();
        let mut ours = Vec::new();
        for _ in 0..25 {
            let t = std::time::Instant::now();
            let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(sqlx::AssertSqlSafe(naive_sql.clone()))
                .fetch_all(&mut conn)
                .await
                .unwrap();
            naive.push(t.elapsed());
            let t = std::time::Instant::now();
            let got = report().fetch_all(&su).await.unwrap();
            ours.push(t.elapsed());
            let got: Vec<(Uuid, Uuid)> = got.iter().map(|(t, s)| (t.as_uuid(), s.id)).collect();
            assert_eq!(got, rows);
        }
        naive.sort();
        ours.sort();
        println!(
            "top 100 {name} over 200 schemas x 1,000 spins: naive UNION ALL median {:?} \
             (min {:?}); report median {:?} (min {:?})",
            naive[naive.len() / 2],
            naive[0],
            ours[ours.len() / 2],
            ours[0]
        );
        for (batch, conc) in [(25, 8), (50, 4), (100, 2), (200, 1)] {
            let mut times = Vec::new();
            for _ in 0..15 {
                let t = std::time::Instant::now();
                report()
                    .batch_size(batch)
                    .concurrency(conc)
                    .fetch_all(&su)
                    .await
                    .unwrap();
                times.push(t.elapsed());
            }
            times.sort();
            println!(
                "  batch {batch} x concurrency {conc}: median {:?}",
                times[times.len() / 2]
            );
        }
    }
}

/// A report's futures can be spawned onto a multi-threaded runtime (`tokio::spawn` needs them
/// `Send`): a compile-time check.
#[allow(dead_code)]
fn report_futures_are_send(su: &Superuser) {
    fn send<T: Send>(_: T) {}
    let rows = Spin::repo()
        .report()
        .order_by(Spin::DURATION.desc())
        .limit(5);
    send(rows.fetch_all(su));
    let count = Spin::repo().report().aggregate(Agg::count());
    send(count.fetch(su));
}
