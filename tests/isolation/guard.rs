//! The second guard of the own-schema placement: statements name the tenant's schema and keep the
//! tenant predicate, so rows of another tenant that end up in a tenant's schema (a botched
//! restore, a hand-written fix) are still not that tenant's to read, count, update or delete.

use futures_util::StreamExt;
use tenancy::{Filter, Placement};
use uuid::Uuid;

use crate::common::models::*;
use crate::world::*;

/// Rows of B and C planted, with plain SQL, in A's schema: a spinner of B, a spin of B with a
/// fresh key, a spin of B with a key A uses, and a spin of C.
#[tokio::test]
async fn own_schema_statements_keep_the_tenant_predicate() {
    let w = world("iso_guard", Mix::MixedAOwn).await;
    let (a, b, c) = (&w.a, &w.b, &w.c);
    assert_eq!(a.placement(), Placement::OwnSchema);
    let before = [stored(&w.db, a).await, stored(&w.db, b).await];
    let a_key = w.a_only_spins()[0].clone();
    let (spinner, fresh, c_spin) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (ta, tb, tc) = (a.id().as_uuid(), b.id().as_uuid(), c.id().as_uuid());
    let plant = format!(
        "INSERT INTO t_tenant_a.spinners (tenant_id, id, name) VALUES ('{tb}', '{spinner}', 'planted'), \
         ('{tc}', '{spinner}', 'planted');
         INSERT INTO t_tenant_a.spins (tenant_id, id, spinner_id, duration) VALUES \
         ('{tb}', '{fresh}', '{spinner}', 20), ('{tb}', '{}', '{spinner}', 20), \
         ('{tc}', '{c_spin}', '{spinner}', 20);",
        a_key.id
    );
    w.db.exec(&plant).await;
    assert_eq!(foreign_rows(&w.db, ta).await, 3);

    let repo = Spin::repo();
    let mine = spins_by_id(w.sa.spins.clone());
    for key in [fresh, c_spin] {
        assert_eq!(repo.get(a, key).await.unwrap(), None);
        assert!(!repo.exists(a, key).await.unwrap());
    }
    assert_eq!(repo.get(a, a_key.id).await.unwrap(), Some(a_key.clone()));
    assert_eq!(
        repo.get_many(a, &[fresh, c_spin, a_key.id]).await.unwrap(),
        vec![a_key.clone()]
    );
    assert_eq!(repo.count(a).await.unwrap(), 12);
    assert_eq!(repo.count_where(a, Filter::all()).await.unwrap(), 12);
    assert!(
        !repo
            .exists_where(a, Spin::ID.is_in([fresh, c_spin]))
            .await
            .unwrap()
    );
    let all = repo
        .query()
        .order_by(Spin::ID.asc())
        .fetch_all(a)
        .await
        .unwrap();
    assert_eq!(all, mine);
    let page = repo
        .query()
        .order_by(Spin::DURATION.asc())
        .after(&w.sa.spins[0])
        .fetch_all(a)
        .await
        .unwrap();
    let mut want: Vec<Spin> = mine
        .iter()
        .filter(|s| (s.duration, s.id) > (w.sa.spins[0].duration, w.sa.spins[0].id))
        .cloned()
        .collect();
    want.sort_by_key(|s| (s.duration, s.id));
    assert_eq!(page, want);
    let streamed: Vec<Spin> = repo.query().fetch(a).map(Result::unwrap).collect().await;
    assert_eq!(spins_by_id(streamed), mine);
    let raw = repo
        .raw("SELECT * FROM {spins} ORDER BY id")
        .fetch_all(a)
        .await
        .unwrap();
    assert_eq!(raw, mine);
    let (n,): (i64,) = repo
        .raw_as("SELECT count(*) FROM {spins} s JOIN {spinners} p ON p.id = s.spinner_id")
        .with::<Spinner>()
        .fetch_one(a)
        .await
        .unwrap();
    assert_eq!(n, 12, "the join met planted rows");
    assert_eq!(Spinner::repo().get(a, spinner).await.unwrap(), None);
    assert_eq!(Spinner::repo().count(a).await.unwrap(), 3);

    // Writes: nothing planted is touched; A's own rows are.
    assert_eq!(
        repo.update_columns(a, fresh, [Spin::DURATION.set(1)])
            .await
            .unwrap(),
        None
    );
    assert!(!repo.delete(a, fresh).await.unwrap());
    assert!(!Spinner::repo().delete(a, spinner).await.unwrap());
    assert_eq!(
        repo.delete_where(a, Spin::ID.is_in([fresh, c_spin]))
            .await
            .unwrap(),
        0
    );
    let mut tx = a.begin().await.unwrap();
    assert_eq!(
        repo.update_where(&mut tx, Filter::all(), [Spin::DURATION.set(1)])
            .await
            .unwrap(),
        12
    );
    assert_eq!(repo.delete_where(&mut tx, Filter::all()).await.unwrap(), 12);
    let mut conn = w.db.connect().await;
    tx.rollback().await.unwrap();
    let left: Vec<(Uuid, Uuid, i32)> = sqlx::query_as(
        "SELECT tenant_id, id, duration FROM t_tenant_a.spins WHERE tenant_id <> $1 ORDER BY id",
    )
    .bind(ta)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut want = vec![(tb, fresh, 20), (tb, a_key.id, 20), (tc, c_spin, 20)];
    want.sort_by_key(|r| r.1);
    assert_eq!(left, want, "A's statements changed the planted rows");

    // B, on the shared tables, sees none of what was planted in its name.
    assert_eq!(repo.get(b, fresh).await.unwrap(), None);
    assert_eq!(repo.count(b).await.unwrap(), 12);

    // Taken out again, the world is as before.
    w.db.exec(&format!(
        "DELETE FROM t_tenant_a.spinners WHERE tenant_id <> '{ta}'" // spins cascade
    ))
    .await;
    assert_eq!(foreign_rows(&w.db, ta).await, 0);
    assert_eq!(stored(&w.db, a).await, before[0]);
    assert_eq!(stored(&w.db, b).await, before[1]);
}

async fn foreign_rows(db: &crate::common::TestDb, owner: Uuid) -> i64 {
    let mut conn = db.connect().await;
    sqlx::query_scalar("SELECT count(*) FROM t_tenant_a.spins WHERE tenant_id <> $1")
        .bind(owner)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}
