//! Tenant isolation on shared tables, operation by operation: tenants with overlapping data
//! (same names, even the same keys), and for every repository operation, query, stream and raw
//! statement, one tenant never reads, counts, updates or deletes another's rows, through a
//! `TenantCtx` and through a `TenantTx`. Every check compares exact row sets, and the rows of the
//! tenants not acting are compared in full, as stored, before and after.

mod common;

use common::models::*;
use common::{SPINNER_SCHEMA, TestDb};
use futures_util::StreamExt;
use tenancy::{Error, Filter, NewTenant, Select, Tenancy, TenantCtx};
use time::OffsetDateTime;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// World: three tenants with overlapping data

const DURATIONS: [i32; 12] = [10, 20, 20, 30, 40, 40, 50, 60, 70, 80, 90, 100];
const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];

/// Keys that A and B both use (the primary keys lead with the tenant, so that is allowed).
struct Shared {
    spinner: Uuid,
    spins: [Uuid; 2],
}

/// What was inserted for one tenant, as returned by the repository.
#[derive(Clone)]
struct Seed {
    spinners: Vec<Spinner>,
    spins: Vec<Spin>,
}

impl Seed {
    fn spin_ids(&self) -> Vec<Uuid> {
        self.spins.iter().map(|s| s.id).collect()
    }
}

struct World {
    db: TestDb,
    tenancy: Tenancy,
    a: TenantCtx,
    b: TenantCtx,
    c: TenantCtx,
    sa: Seed,
    sb: Seed,
    sc: Seed,
    shared: Shared,
}

impl World {
    /// A's spins whose key B does not also use.
    fn a_only_spins(&self) -> Vec<Spin> {
        self.sa
            .spins
            .iter()
            .filter(|s| !self.shared.spins.contains(&s.id))
            .cloned()
            .collect()
    }

    /// A's spinners whose key B does not also use.
    fn a_only_spinners(&self) -> Vec<Spinner> {
        self.sa
            .spinners
            .iter()
            .filter(|s| s.id != self.shared.spinner)
            .cloned()
            .collect()
    }
}

async fn seed(ctx: &TenantCtx, tag: &str, shared: Option<&Shared>) -> Seed {
    let spinner_ids = [
        shared.map_or_else(Uuid::new_v4, |s| s.spinner),
        Uuid::new_v4(),
        Uuid::new_v4(),
    ];
    let news: Vec<NewSpinner> = NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| NewSpinner {
            id: spinner_ids[i],
            name: (*name).to_owned(),
            color: (i < 2).then(|| format!("{tag}-{name}")),
        })
        .collect();
    let spinners = Spinner::repo().insert_many(ctx, &news).await.unwrap();
    let news: Vec<NewSpin> = DURATIONS
        .iter()
        .enumerate()
        .map(|(i, &duration)| NewSpin {
            id: match shared {
                Some(s) if i < 2 => s.spins[i],
                _ => Uuid::new_v4(),
            },
            spinner_id: spinner_ids[i % 3],
            duration,
            note: match i % 3 {
                0 => None,
                1 => Some(format!("note {tag} {i}")),
                _ => Some(format!("NOTE {tag} {i}")),
            },
        })
        .collect();
    let spins = Spin::repo().insert_many(ctx, &news).await.unwrap();
    assert_eq!(spins.len(), DURATIONS.len());
    Seed { spinners, spins }
}

async fn world(name: &str) -> World {
    let db = TestDb::new(name).await;
    let tenancy = db.tenancy().await;
    db.exec(SPINNER_SCHEMA).await;
    tenancy.verify::<Spinner>().await.unwrap();
    tenancy.verify::<Spin>().await.unwrap();
    for slug in ["tenant-a", "tenant-b", "tenant-c"] {
        tenancy
            .create_tenant(NewTenant::new(slug, slug))
            .await
            .unwrap();
    }
    let a = tenancy.resolve_slug("tenant-a").await.unwrap();
    let b = tenancy.resolve_slug("tenant-b").await.unwrap();
    let c = tenancy.resolve_slug("tenant-c").await.unwrap();
    let shared = Shared {
        spinner: Uuid::new_v4(),
        spins: [Uuid::new_v4(), Uuid::new_v4()],
    };
    let sa = seed(&a, "a", Some(&shared)).await;
    let sb = seed(&b, "b", Some(&shared)).await;
    let sc = seed(&c, "c", None).await;
    World {
        db,
        tenancy,
        a,
        b,
        c,
        sa,
        sb,
        sc,
        shared,
    }
}

// ---------------------------------------------------------------------------------------------
// Ground truth, read with plain sqlx around the library

type SpinnerRow = (Uuid, String, Option<String>, OffsetDateTime);
type SpinRow = (Uuid, Uuid, i32, Option<String>, OffsetDateTime);

/// A tenant's rows exactly as stored.
#[derive(Debug, PartialEq)]
struct Stored {
    spinners: Vec<SpinnerRow>,
    spins: Vec<SpinRow>,
}

async fn stored(db: &TestDb, tenant: &TenantCtx) -> Stored {
    let mut conn = db.connect().await;
    let tenant = tenant.id().as_uuid();
    let spinners = sqlx::query_as(
        "SELECT id, name, color, created_at FROM spinners WHERE tenant_id = $1 ORDER BY id",
    )
    .bind(tenant)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let spins = sqlx::query_as(
        "SELECT id, spinner_id, duration, note, created_at FROM spins WHERE tenant_id = $1 \
         ORDER BY id",
    )
    .bind(tenant)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    Stored { spinners, spins }
}

/// `(tenant_id, count)` for every tenant with rows in `table`.
async fn per_tenant(db: &TestDb, table: &str) -> Vec<(Uuid, i64)> {
    let mut conn = db.connect().await;
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT tenant_id, count(*) FROM {table} GROUP BY tenant_id ORDER BY tenant_id"
    )))
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

fn count_of(groups: &[(Uuid, i64)], ctx: &TenantCtx) -> i64 {
    groups
        .iter()
        .find(|(t, _)| *t == ctx.id().as_uuid())
        .map_or(0, |(_, n)| *n)
}

fn by_id<T, F: Fn(&T) -> Uuid>(mut v: Vec<T>, key: F) -> Vec<T> {
    v.sort_by_key(|x| key(x));
    v
}

fn spins_by_id(v: Vec<Spin>) -> Vec<Spin> {
    by_id(v, |s| s.id)
}

fn spinners_by_id(v: Vec<Spinner>) -> Vec<Spinner> {
    by_id(v, |s| s.id)
}

fn is_fk_violation(e: &Error) -> bool {
    matches!(e, Error::Database(d) if d.as_database_error().is_some_and(|d| d.is_foreign_key_violation()))
}

// ---------------------------------------------------------------------------------------------
// Reads

type Pred = Box<dyn Fn(&Spin) -> bool>;

/// Every filter operation, with the rows it should keep, in Rust.
fn filter_cases(w: &World) -> Vec<(&'static str, Filter<Spin>, Pred)> {
    let a_ids = w.sa.spin_ids();
    let b_ids = w.sb.spin_ids();
    let mut mixed: Vec<Uuid> = a_ids[..6].to_vec();
    mixed.extend_from_slice(&b_ids[4..9]);
    mixed.push(Uuid::new_v4());
    let shared_spinner = w.shared.spinner;
    let later = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let note = |s: &Spin| s.note.clone();
    let mixed2 = mixed.clone();
    let a_ids2 = a_ids.clone();
    vec![
        ("all", Filter::all(), Box::new(|_: &Spin| true)),
        (
            "eq",
            Spin::DURATION.eq(20),
            Box::new(|s: &Spin| s.duration == 20),
        ),
        (
            "ne",
            Spin::DURATION.ne(20),
            Box::new(|s: &Spin| s.duration != 20),
        ),
        (
            "lt",
            Spin::DURATION.lt(40),
            Box::new(|s: &Spin| s.duration < 40),
        ),
        (
            "le",
            Spin::DURATION.le(40),
            Box::new(|s: &Spin| s.duration <= 40),
        ),
        (
            "gt",
            Spin::DURATION.gt(70),
            Box::new(|s: &Spin| s.duration > 70),
        ),
        (
            "ge",
            Spin::DURATION.ge(70),
            Box::new(|s: &Spin| s.duration >= 70),
        ),
        (
            "eq on the key",
            Spin::ID.eq(a_ids[0]),
            Box::new(move |s: &Spin| s.id == a_ids2[0]),
        ),
        (
            "eq on a uuid column",
            Spin::SPINNER_ID.eq(shared_spinner),
            Box::new(move |s: &Spin| s.spinner_id == shared_spinner),
        ),
        (
            "eq on a nullable column",
            Spin::NOTE.eq("note a 1".to_owned()),
            Box::new(|s: &Spin| s.note.as_deref() == Some("note a 1")),
        ),
        (
            "is_in with keys of both tenants",
            Spin::ID.is_in(mixed.iter().copied()),
            Box::new(move |s: &Spin| mixed2.contains(&s.id)),
        ),
        (
            "is_in empty",
            Spin::ID.is_in(Vec::<Uuid>::new()),
            Box::new(|_: &Spin| false),
        ),
        (
            "not_in A's keys",
            Spin::ID.not_in(a_ids.iter().copied()),
            Box::new(move |s: &Spin| !a_ids.contains(&s.id)),
        ),
        (
            "not_in empty",
            Spin::ID.not_in(Vec::<Uuid>::new()),
            Box::new(|_: &Spin| true),
        ),
        (
            "is_in on an int column",
            Spin::DURATION.is_in([20, 40, 1000]),
            Box::new(|s: &Spin| [20, 40].contains(&s.duration)),
        ),
        (
            "like",
            Spin::NOTE.like("note %"),
            Box::new(move |s: &Spin| note(s).is_some_and(|n| n.starts_with("note "))),
        ),
        (
            "ilike",
            Spin::NOTE.ilike("NoTe %"),
            Box::new(|s: &Spin| {
                s.note
                    .as_ref()
                    .is_some_and(|n| n.to_lowercase().starts_with("note "))
            }),
        ),
        (
            "like with _",
            Spin::NOTE.like("NOTE _ 1_"),
            Box::new(|s: &Spin| {
                s.note
                    .as_deref()
                    .is_some_and(|n| n.starts_with("NOTE ") && n.len() == 9 && &n[6..8] == " 1")
            }),
        ),
        (
            "is_null",
            Spin::NOTE.is_null(),
            Box::new(|s: &Spin| s.note.is_none()),
        ),
        (
            "is_not_null",
            Spin::NOTE.is_not_null(),
            Box::new(|s: &Spin| s.note.is_some()),
        ),
        (
            "and",
            Spin::DURATION.gt(20).and(Spin::DURATION.lt(80)),
            Box::new(|s: &Spin| s.duration > 20 && s.duration < 80),
        ),
        (
            "or",
            Spin::DURATION.lt(20).or(Spin::DURATION.gt(90)),
            Box::new(|s: &Spin| s.duration < 20 || s.duration > 90),
        ),
        (
            "not",
            Spin::DURATION.eq(40).not(),
            Box::new(|s: &Spin| s.duration != 40),
        ),
        (
            "& and |",
            (Spin::DURATION.ge(30) & Spin::NOTE.is_not_null())
                | Spin::SPINNER_ID.eq(shared_spinner),
            Box::new(move |s: &Spin| {
                (s.duration >= 30 && s.note.is_some()) || s.spinner_id == shared_spinner
            }),
        ),
        (
            "| then &: OR stays inside its parentheses",
            (Spin::DURATION.eq(10) | Spin::DURATION.eq(100)) & Spin::NOTE.is_null(),
            Box::new(|s: &Spin| (s.duration == 10 || s.duration == 100) && s.note.is_none()),
        ),
        (
            "! like: NULLs match neither",
            !Spin::NOTE.like("note %"),
            Box::new(|s: &Spin| s.note.as_ref().is_some_and(|n| !n.starts_with("note "))),
        ),
        ("! all", !Filter::all(), Box::new(|_: &Spin| false)),
        (
            "all | x",
            Filter::all() | Spin::DURATION.eq(-1),
            Box::new(|_: &Spin| true),
        ),
        (
            "x | all",
            Spin::DURATION.eq(-1) | Filter::all(),
            Box::new(|_: &Spin| true),
        ),
        (
            "read-only column",
            Spin::CREATED_AT.lt(later),
            Box::new(|_: &Spin| true),
        ),
        (
            "! (a | b)",
            !(Spin::DURATION.le(30) | Spin::DURATION.ge(90)),
            Box::new(|s: &Spin| s.duration > 30 && s.duration < 90),
        ),
    ]
}

#[tokio::test]
async fn reads_never_cross_tenants() {
    let w = world("iso_reads").await;
    let (a, b, c) = (&w.a, &w.b, &w.c);
    let before = [
        stored(&w.db, a).await,
        stored(&w.db, b).await,
        stored(&w.db, c).await,
    ];
    let a_only = w.a_only_spins();
    let repo = Spin::repo();

    // get: A's key through B is nothing; a shared key is B's own row.
    for s in &a_only {
        assert_eq!(repo.get(b, s.id).await.unwrap(), None);
        assert_eq!(repo.get(c, s.id).await.unwrap(), None);
        assert_eq!(repo.get(a, s.id).await.unwrap().as_ref(), Some(s));
        assert!(!repo.exists(b, s.id).await.unwrap());
        assert!(repo.exists(a, s.id).await.unwrap());
    }
    for (i, id) in w.shared.spins.iter().enumerate() {
        assert_eq!(
            repo.get(b, *id).await.unwrap().as_ref(),
            Some(&w.sb.spins[i])
        );
        assert_eq!(
            repo.get(a, *id).await.unwrap().as_ref(),
            Some(&w.sa.spins[i])
        );
        assert_ne!(
            w.sa.spins[i], w.sb.spins[i],
            "the shared keys hold different rows"
        );
        assert!(!repo.exists(c, *id).await.unwrap());
    }
    for s in w.a_only_spinners() {
        assert_eq!(Spinner::repo().get(b, s.id).await.unwrap(), None);
        assert!(!Spinner::repo().exists(b, s.id).await.unwrap());
    }
    assert_eq!(
        Spinner::repo()
            .get(b, w.shared.spinner)
            .await
            .unwrap()
            .as_ref(),
        Some(&w.sb.spinners[0])
    );

    // get_many: every key of everyone, plus unknown ones: each tenant gets its own rows.
    let mut all_ids: Vec<Uuid> = w.sa.spin_ids();
    all_ids.extend(w.sb.spin_ids());
    all_ids.extend(w.sc.spin_ids());
    all_ids.push(Uuid::new_v4());
    for (ctx, seed) in [(a, &w.sa), (b, &w.sb), (c, &w.sc)] {
        assert_eq!(
            spins_by_id(repo.get_many(ctx, &all_ids).await.unwrap()),
            spins_by_id(seed.spins.clone()),
            "get_many for {}",
            ctx.slug()
        );
    }
    let a_ids: Vec<Uuid> = a_only.iter().map(|s| s.id).collect();
    assert!(repo.get_many(b, &a_ids).await.unwrap().is_empty());
    assert!(repo.get_many(b, &[]).await.unwrap().is_empty());
    let spinner_ids: Vec<Uuid> = w.sa.spinners.iter().map(|s| s.id).collect();
    assert_eq!(
        spinners_by_id(Spinner::repo().get_many(b, &spinner_ids).await.unwrap()),
        vec![w.sb.spinners[0].clone()]
    );

    // count
    for (ctx, seed) in [(a, &w.sa), (b, &w.sb), (c, &w.sc)] {
        assert_eq!(repo.count(ctx).await.unwrap(), seed.spins.len() as i64);
        assert_eq!(Spinner::repo().count(ctx).await.unwrap(), 3);
    }

    // Every filter operation: exact row sets, counts and existence, for each tenant.
    for (name, filter, pred) in filter_cases(&w) {
        for (ctx, seed) in [(a, &w.sa), (b, &w.sb), (c, &w.sc)] {
            let want: Vec<Spin> =
                spins_by_id(seed.spins.iter().filter(|s| pred(s)).cloned().collect());
            let got = spins_by_id(
                repo.query()
                    .filter(filter.clone())
                    .fetch_all(ctx)
                    .await
                    .unwrap(),
            );
            assert_eq!(got, want, "filter {name:?} for {}", ctx.slug());
            assert_eq!(
                repo.count_where(ctx, filter.clone()).await.unwrap(),
                want.len() as i64,
                "count_where {name:?} for {}",
                ctx.slug()
            );
            assert_eq!(
                repo.exists_where(ctx, filter.clone()).await.unwrap(),
                !want.is_empty(),
                "exists_where {name:?} for {}",
                ctx.slug()
            );
            let first = repo
                .query()
                .filter(filter.clone())
                .order_by(Spin::ID.asc())
                .fetch_optional(ctx)
                .await
                .unwrap();
            assert_eq!(first.as_ref(), want.first(), "fetch_optional {name:?}");
        }
    }
    // Filters naming only A's keys, run by B: nothing.
    let only_a = Spin::ID.is_in(a_ids.iter().copied());
    assert_eq!(repo.count_where(b, only_a.clone()).await.unwrap(), 0);
    assert!(!repo.exists_where(b, only_a.clone()).await.unwrap());
    assert!(
        repo.query()
            .filter(only_a.clone())
            .fetch_all(b)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        repo.query().filter(only_a).fetch_one(b).await,
        Err(Error::RowNotFound)
    ));

    // Ordering on several columns, and limit/offset.
    for (ctx, seed) in [(a, &w.sa), (b, &w.sb)] {
        let mut want = seed.spins.clone();
        want.sort_by(|x, y| {
            x.spinner_id
                .cmp(&y.spinner_id)
                .then(y.duration.cmp(&x.duration))
                .then(x.id.cmp(&y.id))
        });
        let got = repo
            .query()
            .order_by(Spin::SPINNER_ID.asc())
            .order_by(Spin::DURATION.desc())
            .order_by(Spin::ID.asc())
            .fetch_all(ctx)
            .await
            .unwrap();
        assert_eq!(got, want, "ordering for {}", ctx.slug());

        let mut want = seed.spins.clone();
        want.sort_by(|x, y| x.duration.cmp(&y.duration).then(y.id.cmp(&x.id)));
        let got = repo
            .query()
            .order_by(Spin::DURATION.asc())
            .order_by(Spin::ID.desc())
            .fetch_all(ctx)
            .await
            .unwrap();
        assert_eq!(got, want, "asc/desc ordering for {}", ctx.slug());

        let by_key = spins_by_id(seed.spins.clone());
        let page = repo
            .query()
            .order_by(Spin::ID.asc())
            .offset(2)
            .limit(4)
            .fetch_all(ctx)
            .await
            .unwrap();
        assert_eq!(page, by_key[2..6].to_vec());
        let page = repo
            .query()
            .filter(Spin::DURATION.ge(40))
            .order_by(Spin::ID.asc())
            .limit(3)
            .fetch_all(ctx)
            .await
            .unwrap();
        let want: Vec<Spin> = by_key
            .iter()
            .filter(|s| s.duration >= 40)
            .take(3)
            .cloned()
            .collect();
        assert_eq!(page, want);
        let tail = repo
            .query()
            .order_by(Spin::ID.asc())
            .offset(10)
            .fetch_all(ctx)
            .await
            .unwrap();
        assert_eq!(
            tail,
            by_key[10..].to_vec(),
            "offset past another tenant's rows"
        );
        assert!(
            repo.query()
                .offset(12)
                .fetch_all(ctx)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            repo.query()
                .limit(0)
                .fetch_all(ctx)
                .await
                .unwrap()
                .is_empty()
        );
    }

    assert_eq!(stored(&w.db, a).await, before[0]);
    assert_eq!(stored(&w.db, b).await, before[1]);
    assert_eq!(stored(&w.db, c).await, before[2]);
}

/// Walks every page of `base` with `.after(&last)`; returns the rows in page order.
async fn walk(base: &Select<Spin>, ctx: &TenantCtx, page: i64) -> Vec<Spin> {
    let mut out = Vec::new();
    let mut last: Option<Spin> = None;
    for _ in 0..100 {
        let mut q = base.clone().limit(page);
        if let Some(last) = &last {
            q = q.after(last);
        }
        let rows = q.fetch_all(ctx).await.unwrap();
        assert!(rows.len() as i64 <= page);
        if rows.is_empty() {
            return out;
        }
        last = rows.last().cloned();
        out.extend(rows);
    }
    panic!("pagination does not end");
}

/// A world with more rows, with repeated durations in both tenants, so that ties need the key.
async fn paging_world(name: &str) -> World {
    let w = world(name).await;
    for (ctx, tag) in [(&w.a, "a"), (&w.b, "b")] {
        let news: Vec<NewSpin> = (0..25)
            .map(|i| NewSpin {
                id: Uuid::new_v4(),
                spinner_id: w.shared.spinner,
                duration: i % 4 * 10,
                note: Some(format!("extra {tag} {i}")),
            })
            .collect();
        Spin::repo().insert_many(ctx, &news).await.unwrap();
    }
    w
}

type Sort = fn(&Spin, &Spin) -> std::cmp::Ordering;

/// Orderings to page through, with the order they must produce (the key last). With
/// `explicit_key`, the key is written as the last ordering column; without, `.after` is left to
/// add it, as its documentation promises.
fn keyset_cases(explicit_key: bool) -> Vec<(&'static str, Select<Spin>, i64, Sort)> {
    let repo = Spin::repo();
    let key = |q: Select<Spin>, desc: bool| match (explicit_key, desc) {
        (false, _) => q,
        (true, false) => q.order_by(Spin::ID.asc()),
        (true, true) => q.order_by(Spin::ID.desc()),
    };
    vec![
        (
            "duration asc, id asc",
            key(repo.query().order_by(Spin::DURATION.asc()), false),
            5,
            |x, y| x.duration.cmp(&y.duration).then(x.id.cmp(&y.id)),
        ),
        (
            "spinner asc, duration desc, id desc",
            key(
                repo.query()
                    .order_by(Spin::SPINNER_ID.asc())
                    .order_by(Spin::DURATION.desc()),
                true,
            ),
            4,
            |x, y| {
                x.spinner_id
                    .cmp(&y.spinner_id)
                    .then(y.duration.cmp(&x.duration))
                    .then(y.id.cmp(&x.id))
            },
        ),
        (
            "spinner desc, duration asc, id asc",
            key(
                repo.query()
                    .order_by(Spin::SPINNER_ID.desc())
                    .order_by(Spin::DURATION.asc()),
                false,
            ),
            4,
            |x, y| {
                y.spinner_id
                    .cmp(&x.spinner_id)
                    .then(x.duration.cmp(&y.duration))
                    .then(x.id.cmp(&y.id))
            },
        ),
        ("id asc", key(repo.query(), false), 3, |x, y| {
            x.id.cmp(&y.id)
        }),
        (
            "filtered: duration desc, id desc",
            key(
                repo.query()
                    .filter(Spin::DURATION.ge(20))
                    .order_by(Spin::DURATION.desc()),
                true,
            ),
            6,
            |x, y| y.duration.cmp(&x.duration).then(y.id.cmp(&x.id)),
        ),
    ]
}

/// Walks every case for A and for B: every row of the tenant exactly once, in order, and no
/// row of the other.
async fn check_keyset(w: &World, explicit_key: bool) {
    let repo = Spin::repo();
    for (ctx, other) in [(&w.a, &w.b), (&w.b, &w.a)] {
        let mine = repo.query().fetch_all(ctx).await.unwrap();
        let theirs = repo.query().fetch_all(other).await.unwrap();
        assert_eq!(mine.len(), 37);
        for (name, base, page, sort) in keyset_cases(explicit_key) {
            let mut want: Vec<Spin> = mine
                .iter()
                .filter(|s| !name.starts_with("filtered") || s.duration >= 20)
                .cloned()
                .collect();
            want.sort_by(sort);
            let got = walk(&base, ctx, page).await;
            let mut ids: Vec<Uuid> = got.iter().map(|s| s.id).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(
                ids.len(),
                got.len(),
                "{name} for {}: a row came twice",
                ctx.slug()
            );
            assert_eq!(got, want, "{name} for {}", ctx.slug());
            for s in &got {
                assert!(!theirs.contains(s), "{name}: a row of the other tenant");
            }
        }
    }
}

#[tokio::test]
async fn keyset_pagination_and_streams_stay_in_the_tenant() {
    let w = paging_world("iso_pages").await;
    let repo = Spin::repo();
    check_keyset(&w, true).await;
    for (ctx, other) in [(&w.a, &w.b), (&w.b, &w.a)] {
        let mine = repo.query().fetch_all(ctx).await.unwrap();
        let theirs = repo.query().fetch_all(other).await.unwrap();
        // A cursor taken from the other tenant's row still yields only this tenant's rows.
        let cursor = theirs.iter().min_by_key(|s| (s.duration, s.id)).unwrap();
        let rows = repo
            .query()
            .order_by(Spin::DURATION.asc())
            .after(cursor)
            .fetch_all(ctx)
            .await
            .unwrap();
        let want: Vec<Spin> = {
            let mut v: Vec<Spin> = mine
                .iter()
                .filter(|s| (s.duration, s.id) > (cursor.duration, cursor.id))
                .cloned()
                .collect();
            v.sort_by_key(|s| (s.duration, s.id));
            v
        };
        assert_eq!(rows, want);
    }

    // Streams: two tenants' streams open at once, interleaved, each yield exactly their rows.
    let q = repo.query().order_by(Spin::ID.asc());
    let mut sa = q.fetch(&w.a);
    let mut sb = q.fetch(&w.b);
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    loop {
        let (x, y) = (sa.next().await, sb.next().await);
        if x.is_none() && y.is_none() {
            break;
        }
        got_a.extend(x.map(Result::unwrap));
        got_b.extend(y.map(Result::unwrap));
    }
    drop((sa, sb));
    assert_eq!(
        got_a,
        repo.query()
            .order_by(Spin::ID.asc())
            .fetch_all(&w.a)
            .await
            .unwrap()
    );
    assert_eq!(
        got_b,
        repo.query()
            .order_by(Spin::ID.asc())
            .fetch_all(&w.b)
            .await
            .unwrap()
    );
    let a_only: Vec<Uuid> = w.a_only_spins().iter().map(|s| s.id).collect();
    let leaked: Vec<Result<Spin, Error>> = repo
        .query()
        .filter(Spin::ID.is_in(a_only.iter().copied()))
        .fetch(&w.b)
        .collect()
        .await;
    assert!(leaked.is_empty(), "B streamed A's rows: {}", leaked.len());
    let c_rows: Vec<Spin> = repo
        .query()
        .filter(Spin::DURATION.gt(15))
        .fetch(&w.c)
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(
        spins_by_id(c_rows),
        spins_by_id(
            w.sc.spins
                .iter()
                .filter(|s| s.duration > 15)
                .cloned()
                .collect()
        )
    );
}

/// The key is the last ordering column of every page, the first included, without being asked
/// for: were it added to cursor pages only, the first page's order among ties would be
/// arbitrary, and the cursor taken from its last row would skip some tied rows and repeat others.
#[tokio::test]
async fn keyset_pagination_adds_the_key_to_the_first_page_too() {
    let w = paging_world("iso_pages_implicit").await;
    check_keyset(&w, false).await;
}

#[tokio::test]
async fn raw_sql_stays_in_the_tenant() {
    let w = world("iso_raw").await;
    let before_a = stored(&w.db, &w.a).await;
    for (ctx, seed) in [(&w.a, &w.sa), (&w.b, &w.sb), (&w.c, &w.sc)] {
        let rows = Spin::repo()
            .raw("SELECT * FROM {spins} ORDER BY id")
            .fetch_all(ctx)
            .await
            .unwrap();
        assert_eq!(rows, spins_by_id(seed.spins.clone()), "{}", ctx.slug());

        // Every key of every tenant, bound: only this tenant's rows come back.
        let mut ids = w.sa.spin_ids();
        ids.extend(w.sb.spin_ids());
        ids.extend(w.sc.spin_ids());
        let rows = Spin::repo()
            .raw(
                "SELECT s.* FROM {spins} s WHERE s.id = ANY($1) AND s.duration >= $2 ORDER BY s.id",
            )
            .bind(ids)
            .bind(0_i32)
            .fetch_all(ctx)
            .await
            .unwrap();
        assert_eq!(rows, spins_by_id(seed.spins.clone()));

        // A join on keys that A and B share: each tenant's spins meet only its own spinners.
        let alpha = &seed.spinners[0];
        let rows = Spin::repo()
            .raw(
                "SELECT s.* FROM {spins} s JOIN {spinners} p ON p.id = s.spinner_id \
                 WHERE p.name = $1 ORDER BY s.id",
            )
            .with::<Spinner>()
            .bind("alpha")
            .fetch_all(ctx)
            .await
            .unwrap();
        let want = spins_by_id(
            seed.spins
                .iter()
                .filter(|s| s.spinner_id == alpha.id)
                .cloned()
                .collect(),
        );
        assert_eq!(rows, want, "join for {}", ctx.slug());
        // The same join counted: duplicates would show a join across tenants.
        let (n,): (i64,) = Spin::repo()
            .raw_as("SELECT count(*) FROM {spins} s JOIN {spinners} p ON p.id = s.spinner_id")
            .with::<Spinner>()
            .fetch_one(ctx)
            .await
            .unwrap();
        assert_eq!(n, seed.spins.len() as i64);

        // The other way round: spinners with a long spin.
        let rows = Spinner::repo()
            .raw(
                "SELECT p.* FROM {spinners} p WHERE EXISTS \
                 (SELECT 1 FROM {spins} s WHERE s.spinner_id = p.id AND s.duration > $1) \
                 ORDER BY p.id",
            )
            .with::<Spin>()
            .bind(95_i32)
            .fetch_all(ctx)
            .await
            .unwrap();
        let long: Vec<Uuid> = seed
            .spins
            .iter()
            .filter(|s| s.duration > 95)
            .map(|s| s.spinner_id)
            .collect();
        let want = spinners_by_id(
            seed.spinners
                .iter()
                .filter(|p| long.contains(&p.id))
                .cloned()
                .collect(),
        );
        assert_eq!(rows, want);

        // Aggregates.
        let (n,): (i64,) = Spin::repo()
            .raw_as("SELECT count(*) FROM {spins}")
            .fetch_one(ctx)
            .await
            .unwrap();
        assert_eq!(n, seed.spins.len() as i64);
        let (n, total): (i64, i64) = Spin::repo()
            .raw_as("SELECT count(*), COALESCE(sum(duration), 0)::bigint FROM {spins} WHERE duration >= $1")
            .bind(30_i32)
            .fetch_one(ctx)
            .await
            .unwrap();
        let long: Vec<i32> = seed
            .spins
            .iter()
            .map(|s| s.duration)
            .filter(|&d| d >= 30)
            .collect();
        assert_eq!(n, long.len() as i64);
        assert_eq!(total, long.iter().map(|&d| i64::from(d)).sum::<i64>());
        let per_name: Vec<(String, i64)> = Spin::repo()
            .raw_as(
                "SELECT p.name, count(s.id) FROM {spinners} p LEFT JOIN {spins} s \
                 ON s.spinner_id = p.id GROUP BY p.name ORDER BY p.name",
            )
            .with::<Spinner>()
            .fetch_all(ctx)
            .await
            .unwrap();
        assert_eq!(
            per_name,
            vec![("alpha".into(), 4), ("beta".into(), 4), ("gamma".into(), 4)]
        );

        // Streamed.
        let streamed: Vec<Spin> = Spin::repo()
            .raw("SELECT * FROM {spins} WHERE duration < $1")
            .bind(50_i32)
            .fetch(ctx)
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(
            spins_by_id(streamed),
            spins_by_id(
                seed.spins
                    .iter()
                    .filter(|s| s.duration < 50)
                    .cloned()
                    .collect()
            )
        );
    }
    // B asking for A's keys by raw SQL: nothing of A.
    let a_only: Vec<Uuid> = w.a_only_spins().iter().map(|s| s.id).collect();
    let rows = Spin::repo()
        .raw("SELECT * FROM {spins} WHERE id = ANY($1)")
        .bind(a_only.clone())
        .fetch_all(&w.b)
        .await
        .unwrap();
    assert!(rows.is_empty());
    assert!(matches!(
        Spin::repo()
            .raw("SELECT * FROM {spins} WHERE id = $1")
            .bind(a_only[0])
            .fetch_one(&w.b)
            .await,
        Err(Error::RowNotFound)
    ));
    assert_eq!(
        Spin::repo()
            .raw("SELECT * FROM {spins} WHERE id = $1")
            .bind(a_only[0])
            .fetch_optional(&w.b)
            .await
            .unwrap(),
        None
    );
    assert_eq!(stored(&w.db, &w.a).await, before_a);
}

// ---------------------------------------------------------------------------------------------
// Writes

#[tokio::test]
async fn writes_never_cross_tenants() {
    let w = world("iso_writes").await;
    let (a, b, c) = (&w.a, &w.b, &w.c);
    let before_a = stored(&w.db, a).await;
    let before_c = stored(&w.db, c).await;
    let repo = Spin::repo();
    let a_only = w.a_only_spins();
    let a_spinner = w.a_only_spinners()[0].clone();

    // insert: B may use A's keys (keys lead with the tenant); the rows are B's.
    let spinners0 = per_tenant(&w.db, "spinners").await;
    let mine = Spinner::repo()
        .insert(
            b,
            &NewSpinner {
                id: a_spinner.id,
                name: a_spinner.name.clone(),
                color: Some("b's own".into()),
            },
        )
        .await;
    // B already has a spinner with that name ("beta"): a unique violation inside B only.
    assert!(
        matches!(&mine, Err(Error::Database(e)) if e.as_database_error().is_some_and(|d| d.is_unique_violation())),
        "{mine:?}"
    );
    let mine = Spinner::repo()
        .insert(
            b,
            &NewSpinner {
                id: a_spinner.id,
                name: "delta".into(),
                color: Some("b's own".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(mine.id, a_spinner.id);
    let spinners1 = per_tenant(&w.db, "spinners").await;
    assert_eq!(count_of(&spinners1, a), count_of(&spinners0, a));
    assert_eq!(count_of(&spinners1, b), count_of(&spinners0, b) + 1);
    assert_eq!(count_of(&spinners1, c), count_of(&spinners0, c));
    assert_eq!(
        Spinner::repo().get(a, a_spinner.id).await.unwrap(),
        Some(a_spinner.clone())
    );
    assert_eq!(
        Spinner::repo().get(b, a_spinner.id).await.unwrap(),
        Some(mine.clone())
    );

    // insert: a spin of B pointing at a spinner only A has is refused by the foreign key.
    let a_spinner2 = w.a_only_spinners()[1].clone();
    let spins0 = per_tenant(&w.db, "spins").await;
    let e = repo
        .insert(
            b,
            &NewSpin {
                id: Uuid::new_v4(),
                spinner_id: a_spinner2.id,
                duration: 1,
                note: None,
            },
        )
        .await
        .unwrap_err();
    assert!(is_fk_violation(&e), "{e:?}");
    let e = repo
        .insert_many(
            b,
            &[
                NewSpin {
                    id: Uuid::new_v4(),
                    spinner_id: w.shared.spinner,
                    duration: 1,
                    note: None,
                },
                NewSpin {
                    id: Uuid::new_v4(),
                    spinner_id: a_spinner2.id,
                    duration: 1,
                    note: None,
                },
            ],
        )
        .await
        .unwrap_err();
    assert!(is_fk_violation(&e), "{e:?}");
    assert_eq!(
        per_tenant(&w.db, "spins").await,
        spins0,
        "a failed insert wrote rows"
    );

    // insert / insert_many: the rows land in the acting tenant only, returned in input order.
    let one = repo
        .insert(
            b,
            &NewSpin {
                id: a_only[0].id,
                spinner_id: mine.id,
                duration: 7,
                note: Some("b reuses a's key".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(one.id, a_only[0].id);
    let news: Vec<NewSpin> = (0..5)
        .map(|i| NewSpin {
            id: Uuid::new_v4(),
            spinner_id: mine.id,
            duration: 100 + i,
            note: None,
        })
        .collect();
    let many = repo.insert_many(b, &news).await.unwrap();
    assert_eq!(
        many.iter().map(|s| (s.id, s.duration)).collect::<Vec<_>>(),
        news.iter().map(|s| (s.id, s.duration)).collect::<Vec<_>>()
    );
    let spins1 = per_tenant(&w.db, "spins").await;
    assert_eq!(count_of(&spins1, a), count_of(&spins0, a));
    assert_eq!(count_of(&spins1, b), count_of(&spins0, b) + 6);
    assert_eq!(count_of(&spins1, c), count_of(&spins0, c));
    assert_eq!(
        repo.get(a, a_only[0].id).await.unwrap().as_ref(),
        Some(&a_only[0])
    );
    assert_eq!(stored(&w.db, a).await, before_a, "inserts by B changed A");

    // update (whole row): A's key through B is None and changes nothing.
    let target = a_only[3].clone();
    let mut changed = target.clone();
    changed.duration = 999;
    changed.note = Some("written by b".into());
    assert_eq!(repo.update(b, &changed).await.unwrap(), None);
    assert_eq!(repo.update(c, &changed).await.unwrap(), None);
    // A key both tenants use: B's row changes, A's does not.
    let mut b_shared = w.sb.spins[0].clone();
    b_shared.duration = 555;
    let updated = repo.update(b, &b_shared).await.unwrap().unwrap();
    assert_eq!(updated, b_shared);
    assert_eq!(
        repo.get(a, b_shared.id).await.unwrap().as_ref(),
        Some(&w.sa.spins[0])
    );

    // update_columns
    assert_eq!(
        repo.update_columns(b, target.id, [Spin::DURATION.set(998)])
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        repo.update_columns(
            b,
            target.id,
            [Spin::NOTE.set(Some("b".to_owned())), Spin::DURATION.set(1)]
        )
        .await
        .unwrap(),
        None
    );
    assert_eq!(
        repo.update_columns(b, target.id, Vec::new()).await.unwrap(),
        None,
        "no assignments is get, scoped too"
    );
    let b_row = repo
        .update_columns(b, w.sb.spins[1].id, [Spin::DURATION.set(444)])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b_row.duration, 444);
    assert_eq!(
        repo.get(a, w.sb.spins[1].id).await.unwrap().as_ref(),
        Some(&w.sa.spins[1])
    );
    assert_eq!(
        Spinner::repo()
            .update_columns(b, w.a_only_spinners()[1].id, [Spinner::NAME.set("stolen")])
            .await
            .unwrap(),
        None
    );
    assert_eq!(stored(&w.db, a).await, before_a, "updates by B changed A");

    // update_where
    let a_keys: Vec<Uuid> = a_only
        .iter()
        .map(|s| s.id)
        .filter(|id| *id != one.id)
        .collect();
    assert_eq!(
        repo.update_where(
            b,
            Spin::ID.is_in(a_keys.iter().copied()),
            [Spin::DURATION.set(0)]
        )
        .await
        .unwrap(),
        0
    );
    assert_eq!(
        repo.update_where(b, Spin::DURATION.ge(0), Vec::new())
            .await
            .unwrap(),
        0,
        "no assignments updates nothing"
    );
    let b_count = repo.count(b).await.unwrap();
    let touched = repo
        .update_where(
            b,
            Filter::all(),
            [Spin::NOTE.set(Some("touched by b".to_owned()))],
        )
        .await
        .unwrap();
    assert_eq!(touched as i64, b_count);
    let notes: Vec<Option<String>> = repo
        .query()
        .fetch_all(b)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.note)
        .collect();
    assert!(notes.iter().all(|n| n.as_deref() == Some("touched by b")));
    let want = repo
        .query()
        .fetch_all(b)
        .await
        .unwrap()
        .iter()
        .filter(|s| s.duration < 50 || s.duration > 500)
        .count();
    let n = repo
        .update_where(
            b,
            Spin::DURATION.lt(50) | Spin::DURATION.gt(500),
            [Spin::DURATION.set(50)],
        )
        .await
        .unwrap();
    assert_eq!(n as usize, want);
    assert_eq!(repo.count_where(b, Spin::DURATION.lt(50)).await.unwrap(), 0);
    assert_eq!(
        Spinner::repo()
            .update_where(
                b,
                Filter::all(),
                [Spinner::COLOR.set(Some("grey".to_owned()))]
            )
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        stored(&w.db, a).await,
        before_a,
        "update_where by B changed A"
    );

    // delete
    assert!(!repo.delete(b, target.id).await.unwrap());
    assert!(!repo.delete(c, target.id).await.unwrap());
    assert!(
        !Spinner::repo()
            .delete(b, w.a_only_spinners()[1].id)
            .await
            .unwrap()
    );
    assert!(
        repo.delete(b, w.shared.spins[0]).await.unwrap(),
        "B's own row with a shared key"
    );
    assert!(!repo.delete(b, w.shared.spins[0]).await.unwrap());
    assert_eq!(
        repo.get(a, w.shared.spins[0]).await.unwrap().as_ref(),
        Some(&w.sa.spins[0])
    );
    assert_eq!(
        repo.delete_where(b, Spin::ID.is_in(a_keys.iter().copied()))
            .await
            .unwrap(),
        0
    );
    assert_eq!(stored(&w.db, a).await, before_a, "deletes by B changed A");

    // delete_where(all) empties B's tables and nobody else's.
    let b_count = repo.count(b).await.unwrap();
    assert_eq!(
        repo.delete_where(b, Filter::all()).await.unwrap() as i64,
        b_count
    );
    assert_eq!(
        Spinner::repo()
            .delete_where(b, Filter::all())
            .await
            .unwrap(),
        4
    );
    assert_eq!(repo.count(b).await.unwrap(), 0);
    assert_eq!(Spinner::repo().count(b).await.unwrap(), 0);
    assert!(!repo.exists_where(b, Filter::all()).await.unwrap());
    assert_eq!(repo.count(a).await.unwrap(), 12);
    assert_eq!(stored(&w.db, a).await, before_a);
    assert_eq!(stored(&w.db, c).await, before_c);
    let spins2 = per_tenant(&w.db, "spins").await;
    assert_eq!(spins2, {
        let mut v = vec![(a.id().as_uuid(), 12), (c.id().as_uuid(), 12)];
        v.sort();
        v
    });

    // Cascades stay in the tenant: A deleting the spinner whose key B also used.
    Spinner::repo()
        .insert(
            b,
            &NewSpinner {
                id: w.shared.spinner,
                name: "alpha".into(),
                color: None,
            },
        )
        .await
        .unwrap();
    repo.insert(
        b,
        &NewSpin {
            id: Uuid::new_v4(),
            spinner_id: w.shared.spinner,
            duration: 3,
            note: None,
        },
    )
    .await
    .unwrap();
    assert!(
        Spinner::repo()
            .delete(c, w.shared.spinner)
            .await
            .is_ok_and(|d| !d)
    );
    assert!(Spinner::repo().delete(a, w.shared.spinner).await.unwrap());
    assert_eq!(
        repo.count(a).await.unwrap(),
        8,
        "A's spins of that spinner cascaded"
    );
    assert_eq!(
        repo.count(b).await.unwrap(),
        1,
        "B's spin of its own spinner stays"
    );
    let _ = &w.tenancy;
}

#[tokio::test]
async fn insert_many_past_one_statement_is_all_or_nothing_in_the_tenant() {
    let w = world("iso_bulk").await;
    let repo = Spin::repo();
    let before_a = stored(&w.db, &w.a).await;
    // 4 bound columns per spin plus the tenant: 16,383 rows per statement.
    let rows = 16_500;
    let news: Vec<NewSpin> = (0..rows)
        .map(|i| NewSpin {
            id: Uuid::new_v4(),
            spinner_id: w.sb.spinners[i % 3].id,
            duration: i as i32,
            note: None,
        })
        .collect();
    let out = repo.insert_many(&w.b, &news).await.unwrap();
    assert_eq!(out.len(), rows);
    assert!(
        out.iter()
            .zip(&news)
            .all(|(o, n)| o.id == n.id && o.duration == n.duration)
    );
    let groups = per_tenant(&w.db, "spins").await;
    assert_eq!(count_of(&groups, &w.b), 12 + rows as i64);
    assert_eq!(count_of(&groups, &w.a), 12);
    assert_eq!(count_of(&groups, &w.c), 12);

    // The last row, in the second statement, points at A's spinner: nothing is inserted.
    let mut bad: Vec<NewSpin> = news
        .iter()
        .map(|n| NewSpin {
            id: Uuid::new_v4(),
            ..n.clone()
        })
        .collect();
    bad.last_mut().unwrap().spinner_id = w.a_only_spinners()[0].id;
    let e = repo.insert_many(&w.b, &bad).await.unwrap_err();
    assert!(is_fk_violation(&e), "{e:?}");
    assert_eq!(per_tenant(&w.db, "spins").await, groups);

    // The same through a transaction of the caller's: rolled back with it.
    let mut tx = w.c.begin().await.unwrap();
    let fresh: Vec<NewSpin> = news
        .iter()
        .map(|n| NewSpin {
            id: Uuid::new_v4(),
            spinner_id: w.sc.spinners[0].id,
            ..n.clone()
        })
        .collect();
    assert_eq!(repo.insert_many(&mut tx, &fresh).await.unwrap().len(), rows);
    assert_eq!(repo.count(&mut tx).await.unwrap(), 12 + rows as i64);
    tx.rollback().await.unwrap();
    assert_eq!(per_tenant(&w.db, "spins").await, groups);
    assert_eq!(stored(&w.db, &w.a).await, before_a);
}

// ---------------------------------------------------------------------------------------------
// Transactions

#[tokio::test]
async fn transactions_are_scoped_and_commit_keeps_rollback_and_drop_discard() {
    let w = world("iso_tx").await;
    let (a, b) = (&w.a, &w.b);
    let before_a = stored(&w.db, a).await;
    let before_b = stored(&w.db, b).await;
    let repo = Spin::repo();
    let a_only = w.a_only_spins();
    let a_keys: Vec<Uuid> = a_only.iter().map(|s| s.id).collect();

    // Every operation through B's transaction, with A's keys and Filter::all(); rolled back.
    let mut tx = b.begin().await.unwrap();
    assert_eq!(tx.ctx().id(), b.id());
    for s in &a_only {
        assert_eq!(repo.get(&mut tx, s.id).await.unwrap(), None);
        assert!(!repo.exists(&mut tx, s.id).await.unwrap());
        let mut changed = s.clone();
        changed.duration = -1;
        assert_eq!(repo.update(&mut tx, &changed).await.unwrap(), None);
        assert_eq!(
            repo.update_columns(&mut tx, s.id, [Spin::DURATION.set(-1)])
                .await
                .unwrap(),
            None
        );
        assert!(!repo.delete(&mut tx, s.id).await.unwrap());
    }
    assert!(repo.get_many(&mut tx, &a_keys).await.unwrap().is_empty());
    assert_eq!(
        spins_by_id(repo.get_many(&mut tx, &w.sa.spin_ids()).await.unwrap()),
        spins_by_id(w.sb.spins[..2].to_vec())
    );
    let only_a = Spin::ID.is_in(a_keys.iter().copied());
    assert_eq!(repo.count_where(&mut tx, only_a.clone()).await.unwrap(), 0);
    assert!(!repo.exists_where(&mut tx, only_a.clone()).await.unwrap());
    assert_eq!(
        repo.update_where(&mut tx, only_a.clone(), [Spin::DURATION.set(-1)])
            .await
            .unwrap(),
        0
    );
    assert_eq!(repo.delete_where(&mut tx, only_a.clone()).await.unwrap(), 0);
    assert!(
        repo.query()
            .filter(only_a.clone())
            .fetch_all(&mut tx)
            .await
            .unwrap()
            .is_empty()
    );
    let streamed: Vec<Spin> = repo
        .query()
        .order_by(Spin::ID.asc())
        .fetch(&mut tx)
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(streamed, spins_by_id(w.sb.spins.clone()));
    let raw = repo
        .raw("SELECT * FROM {spins} WHERE id = ANY($1)")
        .bind(a_keys.clone())
        .fetch_all(&mut tx)
        .await
        .unwrap();
    assert!(raw.is_empty());
    let (n,): (i64,) = repo
        .raw_as("SELECT count(*) FROM {spins} s JOIN {spinners} p ON p.id = s.spinner_id")
        .with::<Spinner>()
        .fetch_one(&mut tx)
        .await
        .unwrap();
    assert_eq!(n, 12);
    assert_eq!(
        repo.update_where(&mut tx, Filter::all(), [Spin::DURATION.set(-2)])
            .await
            .unwrap(),
        12
    );
    assert_eq!(repo.delete_where(&mut tx, Filter::all()).await.unwrap(), 12);
    assert_eq!(
        Spinner::repo()
            .delete_where(&mut tx, Filter::all())
            .await
            .unwrap(),
        3
    );
    assert_eq!(repo.count(&mut tx).await.unwrap(), 0);
    // Outside the transaction nothing has happened yet.
    assert_eq!(repo.count(b).await.unwrap(), 12);
    assert_eq!(stored(&w.db, b).await, before_b);
    assert_eq!(stored(&w.db, a).await, before_a);
    tx.rollback().await.unwrap();
    assert_eq!(
        stored(&w.db, b).await,
        before_b,
        "rollback kept B's deletes"
    );
    assert_eq!(stored(&w.db, a).await, before_a);

    // Dropped without commit: discarded.
    {
        let mut tx = b.begin().await.unwrap();
        assert_eq!(repo.delete_where(&mut tx, Filter::all()).await.unwrap(), 12);
        repo.insert(
            &mut tx,
            &NewSpin {
                id: Uuid::new_v4(),
                spinner_id: w.shared.spinner,
                duration: 1,
                note: Some("dropped".into()),
            },
        )
        .await
        .unwrap();
    }
    assert_eq!(
        stored(&w.db, b).await,
        before_b,
        "a dropped transaction kept its work"
    );

    // Committed: kept, in B only; A and B transactions open at once see only their own rows.
    let mut tx_b = b.begin().await.unwrap();
    let mut tx_a = a.begin().await.unwrap();
    let new_b = Spinner::repo()
        .insert(
            &mut tx_b,
            &NewSpinner {
                id: Uuid::new_v4(),
                name: "committed".into(),
                color: None,
            },
        )
        .await
        .unwrap();
    let spins_b = repo
        .insert_many(
            &mut tx_b,
            &[
                NewSpin {
                    id: a_keys[0],
                    spinner_id: new_b.id,
                    duration: 11,
                    note: None,
                },
                NewSpin {
                    id: Uuid::new_v4(),
                    spinner_id: new_b.id,
                    duration: 12,
                    note: None,
                },
            ],
        )
        .await
        .unwrap();
    let new_a = Spinner::repo()
        .insert(
            &mut tx_a,
            &NewSpinner {
                id: new_b.id,
                name: "rolled back".into(),
                color: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        Spinner::repo()
            .get(&mut tx_b, new_b.id)
            .await
            .unwrap()
            .as_ref(),
        Some(&new_b)
    );
    assert_eq!(
        Spinner::repo()
            .get(&mut tx_a, new_b.id)
            .await
            .unwrap()
            .as_ref(),
        Some(&new_a)
    );
    assert_eq!(
        repo.get(&mut tx_b, a_keys[0]).await.unwrap().as_ref(),
        Some(&spins_b[0])
    );
    assert_eq!(
        repo.get(&mut tx_a, a_keys[0]).await.unwrap().as_ref(),
        Some(&a_only[0])
    );
    assert_eq!(repo.count(&mut tx_b).await.unwrap(), 14);
    assert_eq!(repo.count(&mut tx_a).await.unwrap(), 12);
    let seen_by_b = repo
        .raw("SELECT s.* FROM {spins} s JOIN {spinners} p ON p.id = s.spinner_id WHERE p.name = $1")
        .with::<Spinner>()
        .bind("committed")
        .fetch_all(&mut tx_b)
        .await
        .unwrap();
    assert_eq!(spins_by_id(seen_by_b), spins_by_id(spins_b.clone()));
    // Not visible to anyone before the commit.
    assert_eq!(Spinner::repo().get(b, new_b.id).await.unwrap(), None);
    tx_b.commit().await.unwrap();
    tx_a.rollback().await.unwrap();
    assert_eq!(
        Spinner::repo().get(b, new_b.id).await.unwrap(),
        Some(new_b.clone())
    );
    assert_eq!(Spinner::repo().get(a, new_b.id).await.unwrap(), None);
    assert_eq!(
        stored(&w.db, a).await,
        before_a,
        "A's rolled-back insert or B's commit hit A"
    );
    let after_b = stored(&w.db, b).await;
    assert_eq!(after_b.spinners.len(), before_b.spinners.len() + 1);
    assert_eq!(after_b.spins.len(), before_b.spins.len() + 2);
    let groups = per_tenant(&w.db, "spins").await;
    assert_eq!(count_of(&groups, b), 14);
    assert_eq!(count_of(&groups, a), 12);
    assert_eq!(count_of(&groups, &w.c), 12);
    let _ = (&w.tenancy, &w.sc);
}
