//! Adversarial tests of the own-database placement's connection budget: cancelled units at
//! every await, and many tenants fighting over a budget smaller than their number, must never
//! leak a slot of the budget or hand one tenant's unit another tenant's database.

mod common;

use std::time::Duration;

use common::models::*;
use common::{SPINNER_SCHEMA, TestDb, cancel_at};
use futures_util::future::join_all;
use sqlx::{Connection, PgConnection};
use tenancy::{Migrations, NewTenant, Placement, Tenancy, TenantCtx};
use uuid::Uuid;

fn new_spinner(name: String) -> NewSpinner {
    NewSpinner {
        id: Uuid::new_v4(),
        name,
        color: None,
    }
}

async fn world(
    test: &str,
    budget: usize,
    per_database: usize,
    n: usize,
) -> (TestDb, Tenancy, Vec<TenantCtx>) {
    let db = TestDb::new(test).await;
    let tenancy = Tenancy::builder()
        .tenant_migrations(Migrations::from_static(&[(1, "spinner app", SPINNER_SCHEMA)]).unwrap())
        .database_budget(budget, per_database)
        .acquire_timeout(Duration::from_secs(20))
        .connect(&db.url)
        .await
        .unwrap();
    let mut ctxs = Vec::new();
    for i in 0..n {
        let slug = format!("own-{i}");
        tenancy
            .create_tenant(NewTenant::new(&slug, &slug).placement(Placement::OwnDatabase))
            .await
            .unwrap();
        ctxs.push(tenancy.resolve_slug(&slug).await.unwrap());
    }
    (db, tenancy, ctxs)
}

/// The rows of `spinners` in `ctx`'s database, read around the library: (tenant id, name).
async fn rows_in_database(tenancy: &Tenancy, ctx: &TenantCtx) -> Vec<(Uuid, String)> {
    let database = ctx
        .home()
        .database()
        .expect("an own-database tenant")
        .as_str()
        .to_owned();
    let _ = tenancy;
    let mut conn = PgConnection::connect(&tenancy::testing::database_url(&database))
        .await
        .unwrap();
    let rows = sqlx::query_as("SELECT tenant_id, name FROM spinners ORDER BY name")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    rows
}

/// HOLDS (owndb): a unit cancelled at any await (while it waits for the budget, opens a
/// connection, checks the database's identity, or runs its statement) gives its slot back: a
/// budget of ONE connection still serves the next unit, of another tenant, at once.
#[tokio::test]
async fn a_cancelled_unit_never_keeps_a_slot_of_the_budget() {
    let (_db, tenancy, t) = world("adv_owndb_cancel", 1, 1, 2).await;
    for k in 1..40 {
        let who = &t[k % 2];
        let what = async {
            let mut tx = who.begin().await?;
            Spinner::repo()
                .insert(&mut tx, &new_spinner(format!("{}-{k}", who.slug())))
                .await?;
            Spinner::repo().count(&mut tx).await?;
            tx.commit().await
        };
        if cancel_at(k % 9 + 1, what).await.is_none() {
            // The other tenant's unit must get the one connection within the budget's wait.
            let other = &t[(k + 1) % 2];
            tokio::time::timeout(Duration::from_secs(15), Spinner::repo().count(other))
                .await
                .unwrap_or_else(|_| {
                    panic!("cancelled at await {}: the budget's slot leaked", k % 9 + 1)
                })
                .unwrap();
        }
    }
    for ctx in &t {
        for (tenant, name) in rows_in_database(&tenancy, ctx).await {
            assert_eq!(
                tenant,
                ctx.id().as_uuid(),
                "{name} in {}'s database",
                ctx.slug()
            );
            assert!(
                name.starts_with(ctx.slug()),
                "{name} in {}'s database",
                ctx.slug()
            );
        }
    }
}

/// HOLDS (owndb): six tenants on a budget of two connections (one each), forty units at once,
/// a quarter of them cancelled midway: every unit that finished saw and wrote only its own
/// tenant's database, and every database holds only its tenant's rows.
#[tokio::test]
async fn many_tenants_on_a_small_budget_never_get_each_others_connection() {
    let (_db, tenancy, t) = world("adv_owndb_contend", 2, 1, 6).await;
    let units = (0..40).map(|k| {
        let ctx = &t[k % t.len()];
        async move {
            let name = format!("{}-{k}", ctx.slug());
            let unit = async {
                let made = Spinner::repo()
                    .insert(ctx, &new_spinner(name.clone()))
                    .await?;
                let mut tx = ctx.begin().await?;
                let all = Spinner::repo().query().fetch_all(&mut tx).await?;
                tx.commit().await?;
                Ok::<_, tenancy::Error>((made, all))
            };
            let out = if k % 4 == 3 {
                cancel_at(k % 7 + 2, unit).await
            } else {
                Some(unit.await)
            };
            if let Some(out) = out {
                let (made, all) = out.unwrap_or_else(|e| panic!("unit {k}: {e}"));
                assert!(
                    all.iter().any(|s| s.id == made.id),
                    "unit {k} misses its own row"
                );
                for s in all {
                    assert!(
                        s.name.starts_with(&format!("{}-", ctx.slug())),
                        "unit {k} of {} read {}",
                        ctx.slug(),
                        s.name
                    );
                }
            }
        }
    });
    join_all(units).await;
    for ctx in &t {
        let rows = rows_in_database(&tenancy, ctx).await;
        assert!(!rows.is_empty(), "{} wrote nothing", ctx.slug());
        for (tenant, name) in rows {
            assert_eq!(
                tenant,
                ctx.id().as_uuid(),
                "{name} in {}'s database",
                ctx.slug()
            );
            assert!(name.starts_with(&format!("{}-", ctx.slug())), "{name}");
        }
    }
}

/// HOLDS (owndb): a page that fails to decode on its first row leaves 399 rows unread on the
/// tenant's leased connection, with a budget of ONE: the same tenant's next read, on that
/// connection, gets its 400 rows complete; another tenant, then the first again, read their own.
#[tokio::test]
async fn a_page_that_fails_to_decode_leaves_nothing_on_a_leased_connection() {
    use common::picky::*;
    let (_db, tenancy, t) = world("adv_owndb_decode", 1, 1, 2).await;
    for name in poisoned_names() {
        Spinner::repo()
            .insert(&t[0], &new_spinner(name))
            .await
            .unwrap();
    }
    Spinner::repo()
        .insert(&t[1], &new_spinner("b1".into()))
        .await
        .unwrap();
    let page = || async {
        PickySpinner::repo()
            .query()
            .order_by(PickySpinner::NAME.desc())
            .fetch_all(&t[0])
            .await
    };
    let count = |ctx: &TenantCtx| {
        let ctx = ctx.clone();
        async move { Spinner::repo().query().fetch_all(&ctx).await.unwrap().len() }
    };
    for _ in 0..2 {
        let failed = page().await;
        assert!(
            matches!(
                failed,
                Err(tenancy::Error::Database(sqlx::Error::ColumnDecode { .. }))
            ),
            "{failed:?}"
        );
        assert_eq!(count(&t[0]).await, 400);
        assert!(page().await.is_err());
        assert_eq!(count(&t[1]).await, 1);
        assert_eq!(count(&t[0]).await, 400);
    }
    tenancy.close().await;
}
