//! Reads: get, get_many, count, every filter operation, ordering, limit and offset.

use tenancy::{Error, Filter};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::common::models::*;
use crate::world::*;

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

per_mix!(reads_never_cross_tenants);
async fn reads_never_cross_tenants(mix: Mix) {
    let w = world("iso_reads", mix).await;
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
