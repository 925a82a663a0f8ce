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
