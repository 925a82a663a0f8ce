//! The second and third test servers (`scripts/pg-servers`), shared by `tests/servers.rs` and
//! `tests/server_homes.rs`: their URLs, a builder mapping them, and reading what is on them.

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tenancy::testing::TestTenancy;
use tenancy::{Migrations, NewTenant, Placement, Tenancy, TenancyBuilder};

/// The URLs of the second and third servers; `None` (after saying why) when they are not set
/// outside CI.
pub fn server_urls(test: &str) -> Option<(String, String)> {
    match (
        std::env::var("TENANCY_SERVER2_URL"),
        std::env::var("TENANCY_SERVER3_URL"),
    ) {
        (Ok(a), Ok(b)) => Some((a, b)),
        _ if std::env::var_os("CI").is_some() => panic!(
            "{test}: TENANCY_SERVER2_URL and TENANCY_SERVER3_URL are not set, and CI is: run \
             the suite under scripts/pg-servers (scripts/test does)"
        ),
        _ => {
            eprintln!(
                "SKIPPED {test}: TENANCY_SERVER2_URL / TENANCY_SERVER3_URL are not set; run \
                 `scripts/pg-servers cargo test --test servers` to start the servers"
            );
            None
        }
    }
}

pub fn spinner_migrations() -> Migrations {
    Migrations::from_static(&[(1, "spinner app", super::SPINNER_SCHEMA)]).unwrap()
}

pub fn options(url: &str) -> PgConnectOptions {
    url.parse().unwrap()
}

/// A builder mapping `s2` and `s3` to the second and third servers.
pub fn builder((two, three): &(String, String)) -> TenancyBuilder {
    Tenancy::builder()
        .tenant_migrations(spinner_migrations())
        .server("s2", options(two))
        .server("s3", options(three))
}

pub fn own_db(slug: &str, server: &str) -> NewTenant {
    NewTenant::new(slug, slug)
        .placement(Placement::OwnDatabase)
        .server(server)
}

/// The databases of this registry on the server at `url`.
pub async fn databases_on(url: &str, tag: &str) -> Vec<String> {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let names = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1",
    )
    .bind(format!("tenancy_{tag}_"))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    names
}

pub async fn tag_of(db: &TestTenancy) -> String {
    sqlx::query_scalar("SELECT tag FROM tenancy.deployment")
        .fetch_one(&mut db.connect().await)
        .await
        .unwrap()
}

/// Drops this registry's databases on the extra servers (the test database's own go with it).
pub async fn drop_extra((two, three): &(String, String), tag: &str) {
    for url in [two, three] {
        let mut conn = PgConnection::connect(url).await.unwrap();
        for name in databases_on(url, tag).await {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
        conn.close().await.unwrap();
    }
}

/// `url` with its database replaced by `database`.
pub fn url_of(url: &str, database: &str) -> String {
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{database}")
}

pub async fn count_at(url: &str, sql: &str) -> i64 {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    n
}
