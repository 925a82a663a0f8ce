//! A connection's `search_path` cannot send a shared tenant's statements into a tenant schema:
//! shared-table statements name their table unqualified, so a path that put an own-schema
//! tenant's schema first would find that tenant's table.

mod common;

use common::add_spinner;
use sqlx::postgres::PgPoolOptions;
use tenancy::testing::TestTenancy;
use tenancy::{Error, Migrations, Tenancy};

fn migrations() -> Migrations {
    Migrations::from_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/migrations/tenant"
    ))
    .unwrap()
}

/// The own-schema tenant `sp-own`'s schema name, as the registry holds it.
async fn own_schema(t: &TestTenancy) -> String {
    let mut conn = t.connect().await;
    sqlx::query_scalar("SELECT schema_name FROM tenancy.tenants WHERE slug = 'sp-own'")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

fn with_path(url: &str, path: &str) -> String {
    format!("{url}?options=-c%20search_path%3D{path}")
}

async fn count(t: &TestTenancy, table: &str) -> i64 {
    let mut conn = t.connect().await;
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tenancy::test(
    migrations = "tests/migrations",
    tenants("sp-own" = "schema", "sp-shared" = "shared")
)]
async fn a_url_whose_search_path_names_a_tenant_schema_is_refused(t: TestTenancy) {
    let schema = own_schema(&t).await;
    // An existing tenant schema, and one no tenant has yet (it may be created later).
    for path in [format!("{schema}%2Cpublic"), "t_later%2Cpublic".to_owned()] {
        let refused = Tenancy::builder()
            .max_connections(2)
            .listen_for_changes(false)
            .connect(&with_path(t.url(), &path))
            .await;
        match refused {
            Err(Error::SearchPath(why)) => assert!(why.contains("tenant schema"), "{why}"),
            other => panic!("expected a search_path refusal for {path}, got {other:?}"),
        }
    }
}

#[tenancy::test(
    migrations = "tests/migrations",
    tenants("sp-own" = "schema", "sp-shared" = "shared")
)]
async fn a_shared_table_found_in_a_tenant_schema_fails_the_model_check(t: TestTenancy) {
    let schema = own_schema(&t).await;
    // A pool tenancy did not build: its first connection is checked, later ones are not.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(t.url())
        .await
        .unwrap();
    let tenancy = Tenancy::builder()
        .listen_for_changes(false)
        .tenant_migrations(migrations())
        .from_pool(pool.clone())
        .await
        .unwrap();
    t.exec(&format!(
        "ALTER DATABASE \"{}\" SET search_path = {schema}, public",
        t.database()
    ))
    .await;
    // Drops the pool's one connection: the next is opened with the tenant schema first.
    pool.acquire().await.unwrap().detach();
    let shared = tenancy.resolve_slug("sp-shared").await.unwrap();
    match add_spinner(&shared, "lost write").await {
        Err(Error::TableShape(report)) => {
            assert!(report.problems[0].contains("tenant schema"), "{report}")
        }
        other => panic!("expected the model check to refuse, got {other:?}"),
    }
    assert_eq!(count(&t, &format!("\"{schema}\".spinners")).await, 0);
    assert_eq!(count(&t, "public.spinners").await, 0);
}

#[tenancy::test(
    migrations = "tests/migrations",
    tenants("sp-own" = "schema", "sp-shared" = "shared")
)]
async fn an_application_schema_on_the_search_path_still_works(t: TestTenancy) {
    let schema = own_schema(&t).await;
    t.exec("CREATE SCHEMA app").await;
    let tenancy = Tenancy::builder()
        .max_connections(2)
        .listen_for_changes(false)
        .connect(&with_path(t.url(), "app%2Cpublic"))
        .await
        .unwrap();
    let shared = tenancy.resolve_slug("sp-shared").await.unwrap();
    add_spinner(&shared, "kept").await.unwrap();
    assert_eq!(count(&t, "public.spinners").await, 1);
    assert_eq!(count(&t, &format!("\"{schema}\".spinners")).await, 0);
}
