//! A first end-to-end pass over the shared-table placement.
mod common;

use common::models::*;
use tenancy::NewTenant;
use tenancy::testing::TestTenancy;
use uuid::Uuid;

#[tenancy::test(migrations = "tests/migrations")]
async fn two_tenants_do_not_see_each_other(db: TestTenancy) {
    let tenancy = db.tenancy().clone();
    tenancy.verify::<Spinner>().await.unwrap();
    tenancy.verify::<Spin>().await.unwrap();
    tenancy
        .create_tenant(NewTenant::new("acme", "Acme").host("acme.example.com"))
        .await
        .unwrap();
    tenancy
        .create_tenant(NewTenant::new("globex", "Globex"))
        .await
        .unwrap();
    let a = tenancy.resolve_host("ACME.example.com:8080").await.unwrap();
    let b = tenancy.resolve_slug("globex").await.unwrap();
    let s = Spinner::repo()
        .insert(
            &a,
            &NewSpinner {
                id: Uuid::new_v4(),
                name: "x".into(),
                color: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        Spinner::repo().get(&a, s.id).await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(Spinner::repo().get(&b, s.id).await.unwrap(), None);
    let rows = Spinner::repo()
        .query()
        .filter(Spinner::NAME.eq("x"))
        .fetch_all(&a)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let raw = Spinner::repo()
        .raw("SELECT * FROM {spinners} WHERE name = $1")
        .bind("x")
        .fetch_all(&b)
        .await
        .unwrap();
    assert!(raw.is_empty());
}

/// A repository call's future holds no connection borrow or lease inline: each is boxed where
/// it starts. sqlx's borrow alone is 8.6 KiB, and inline it made every call's future 20 KiB,
/// copied level by level as it was built: half a lookup's client instructions went to `memcpy`
/// (see `tenancy-sqlx/src/conn/acquire.rs`). The futures are built, measured and dropped,
/// never polled.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_repository_calls_future_stays_small(db: TestTenancy) {
    use std::mem::size_of_val;
    let tenancy = db.tenancy().clone();
    tenancy
        .create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let ctx = tenancy.resolve_slug("acme").await.unwrap();
    let repo = Spinner::repo();
    let new = NewSpinner {
        id: Uuid::new_v4(),
        name: "x".into(),
        color: None,
    };
    let ids = [new.id];
    let query = repo.query();
    let sizes = [
        ("get", size_of_val(&repo.get(&ctx, new.id))),
        ("get_many", size_of_val(&repo.get_many(&ctx, &ids))),
        ("insert", size_of_val(&repo.insert(&ctx, &new))),
        ("delete", size_of_val(&repo.delete(&ctx, new.id))),
        ("query().fetch_all", size_of_val(&query.fetch_all(&ctx))),
    ];
    for (call, size) in sizes {
        eprintln!("{call}: {size} bytes");
        assert!(
            size <= 6 * 1024,
            "the future of Repo::{call} is {size} bytes: something large (a pool borrow, a \
             lease, a connect) is held inline again"
        );
    }
}

/// A limited query is planned once per connection, not on every run: with its limit bound as a
/// parameter, PostgreSQL's generic plan (costed for an unknown limit) never won against the
/// custom plans, so every run was planned anew, about as much server work as running it. With
/// the limit in the text, the generic plan takes over after five runs.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_limited_query_is_planned_once_not_on_every_run(db: TestTenancy) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(db.url())
        .await
        .unwrap();
    let tenancy = tenancy::Tenancy::from_pool(pool.clone()).await.unwrap();
    tenancy
        .create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let ctx = tenancy.resolve_slug("acme").await.unwrap();
    // Enough rows that a plan for an unknown limit costs more than one for two rows.
    sqlx::query(
        "INSERT INTO spinners (tenant_id, id, name) \
         SELECT $1, gen_random_uuid(), 'spinner ' || i FROM generate_series(1, 2000) i",
    )
    .bind(ctx.id().as_uuid())
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE spinners")
        .execute(&pool)
        .await
        .unwrap();
    for _ in 0..10 {
        let page = Spinner::repo()
            .query()
            .order_by(Spinner::NAME.asc())
            .limit(2)
            .fetch_all(&ctx)
            .await
            .unwrap();
        assert_eq!(page.len(), 2);
    }
    let (statement, generic, custom): (String, i64, i64) = sqlx::query_as(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements \
         WHERE statement LIKE '%FROM \"spinners\"%ORDER BY%' AND statement NOT LIKE '%pg_prepared%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        generic >= 5 && custom <= 5,
        "{statement}: {generic} runs on the generic plan, {custom} planned anew"
    );
    tenancy.close().await;
}
