//! Keyset pages and streams.

use futures_util::StreamExt;
use tenancy::{Error, Select, TenantCtx};
use uuid::Uuid;

use crate::common::models::*;
use crate::world::*;

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
async fn paging_world(name: &str, mix: Mix) -> World {
    let w = world(name, mix).await;
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

per_mix!(keyset_pagination_and_streams_stay_in_the_tenant);
async fn keyset_pagination_and_streams_stay_in_the_tenant(mix: Mix) {
    let w = paging_world("iso_pages", mix).await;
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

per_mix!(keyset_pagination_adds_the_key_to_the_first_page_too);
/// The key is the last ordering column of every page, the first included, without being asked
/// for: were it added to cursor pages only, the first page's order among ties would be
/// arbitrary, and the cursor taken from its last row would skip some tied rows and repeat others.
async fn keyset_pagination_adds_the_key_to_the_first_page_too(mix: Mix) {
    let w = paging_world("iso_pages_implicit", mix).await;
    check_keyset(&w, false).await;
}
