//! A connection's `search_path` cannot send a shared tenant's statements into a tenant schema:
//! shared-table statements name their table unqualified, so a path that put an own-schema
//! tenant's schema first would find that tenant's table.

mod common;

use common::{SPINNER_SCHEMA, TestDb, add_spinner};
use sqlx::postgres::PgPoolOptions;
use tenancy::{Error, Migrations, Placement, Tenancy};

fn migrations() -> Migrations {
    Migrations::from_static(&[(1, "spinner app", SPINNER_SCHEMA)]).unwrap()
}

/// A database with an own-schema tenant `sp-own` and a shared one `sp-shared`; the own one's
/// schema name.
async fn two_tenants(db: &TestDb) -> String {
    let setup = Tenancy::builder()
        .max_connections(2)
        .tenant_migrations(migrations())
        .connect(&db.url)
        .await
        .unwrap();
    common::migrate_all(&setup).await;
    common::create_tenants(
        &setup,
        &[
            ("sp-own", Placement::OwnSchema),
            ("sp-shared", Placement::SharedTable),
        ],
    )
    .await;
    setup.close().await;
    let mut conn = db.connect().await;
    sqlx::query_scalar("SELECT schema_name FROM tenancy.tenants WHERE slug = 'sp-own'")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

fn with_path(url: &str, path: &str) -> String {
    format!("{url}?options=-c%20search_path%3D{path}")
}

async fn count(db: &TestDb, table: &str) -> i64 {
    let mut conn = db.connect().await;
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_url_whose_search_path_names_a_tenant_schema_is_refused() {
    let db = TestDb::new("sp_url").await;
    let schema = two_tenants(&db).await;
    // An existing tenant schema, and one no tenant has yet (it may be created later).
    for path in [format!("{schema}%2Cpublic"), "t_later%2Cpublic".to_owned()] {
        let refused = Tenancy::builder()
            .max_connections(2)
            .listen_for_changes(false)
            .connect(&with_path(&db.url, &path))
            .await;
        match refused {
            Err(Error::SearchPath(why)) => assert!(why.contains("tenant schema"), "{why}"),
            other => panic!("expected a search_path refusal for {path}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_shared_table_found_in_a_tenant_schema_fails_the_model_check() {
    let db = TestDb::new("sp_model").await;
    let schema = two_tenants(&db).await;
    // A pool tenancy did not build: its first connection is checked, later ones are not.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    let tenancy = Tenancy::builder()
        .listen_for_changes(false)
        .tenant_migrations(migrations())
        .from_pool(pool.clone())
        .await
        .unwrap();
    db.exec(&format!(
        "ALTER DATABASE \"{}\" SET search_path = {schema}, public",
        db.name
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
    assert_eq!(count(&db, &format!("\"{schema}\".spinners")).await, 0);
    assert_eq!(count(&db, "public.spinners").await, 0);
}

#[tokio::test]
async fn an_application_schema_on_the_search_path_still_works() {
    let db = TestDb::new("sp_app").await;
    let schema = two_tenants(&db).await;
    db.exec("CREATE SCHEMA app").await;
    let tenancy = Tenancy::builder()
        .max_connections(2)
        .listen_for_changes(false)
        .connect(&with_path(&db.url, "app%2Cpublic"))
        .await
        .unwrap();
    let shared = tenancy.resolve_slug("sp-shared").await.unwrap();
    add_spinner(&shared, "kept").await.unwrap();
    assert_eq!(count(&db, "public.spinners").await, 1);
    assert_eq!(count(&db, &format!("\"{schema}\".spinners")).await, 0);
}
