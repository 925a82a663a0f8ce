//! Helpers of the tests of tenants in server homes (`tests/server_homes.rs`,
//! `tests/server_schemas.rs`): the tenants, their rows, the handle and raw SQL on a server.

use sqlx::{Connection, PgConnection};
use tenancy::testing::TestTenancy;
use tenancy::{NewTenant, Tenancy, TenantCtx};
use uuid::Uuid;

use super::models::*;
use super::servers::*;

pub fn shared_on(slug: &str, server: &str) -> NewTenant {
    NewTenant::new(slug, slug).server(server)
}

pub fn home_name(tag: &str, server: &str) -> String {
    format!("tenancy_{tag}_home_{server}")
}

pub async fn spin(ctx: &TenantCtx, id: Uuid, name: &str) {
    Spinner::repo()
        .insert(
            ctx,
            &NewSpinner {
                id,
                name: name.into(),
                color: None,
            },
        )
        .await
        .unwrap();
}

pub async fn names(ctx: &TenantCtx) -> Vec<String> {
    let mut all: Vec<String> = Spinner::repo()
        .query()
        .fetch_all(ctx)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    all.sort();
    all
}

/// A handle mapping `s2` and `s3`, both listed, with its tag.
pub async fn connected(db: &TestTenancy, urls: &(String, String)) -> (Tenancy, String) {
    let tenancy = builder(urls).connect(db.url()).await.unwrap();
    let su = tenancy.superuser("test", "server homes").await.unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    tenancy.add_server(&su, "s3").await.unwrap();
    (tenancy, tag_of(db).await)
}

pub async fn exec_at(url: &str, sql: &str) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

/// The ids of tenant `id`'s spins in `table` of the database at `url`.
pub async fn spin_ids_at(
    url: &str,
    table: &str,
    id: tenancy::TenantId,
) -> std::collections::BTreeSet<Uuid> {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let ids = super::moving::spin_ids(&mut conn, table, id).await;
    conn.close().await.unwrap();
    ids
}
