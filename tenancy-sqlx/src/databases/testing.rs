//! Test support for the own-database modules: throwaway databases on a real server.

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use super::name::DatabaseName;

/// The server these tests use: the second test server when `scripts/pg-servers` runs them
/// (`TENANCY_SERVER2_URL`), so that counting its backends sees no one else's work, else
/// [`crate::testing::server_url`]'s.
pub(crate) fn server_url() -> String {
    std::env::var("TENANCY_SERVER2_URL").unwrap_or_else(|_| crate::testing::server_url())
}

pub(crate) fn server_options() -> PgConnectOptions {
    server_url().parse().expect("a postgres:// URL")
}

pub(crate) async fn admin() -> PgConnection {
    let url = server_url();
    PgConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!("cannot reach PostgreSQL at {url}: {e}\nrun the tests with scripts/test")
    })
}

pub(crate) async fn exec(conn: &mut PgConnection, sql: String) {
    sqlx::raw_sql(crate::sql::text(sql.clone()))
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{e}\nwhile running:\n{sql}"));
}

/// A short random name part, so that parallel tests never share a database: a test
/// database's name.
pub(crate) fn unique(test: &str) -> String {
    crate::testing::database_name(test)
}

/// Databases that a test made, dropped when it ends (also when it panics). Every database
/// whose name starts with the guard's prefix is dropped, so a test may make more under it.
pub(crate) struct Dropped {
    pub(crate) prefix: String,
}

impl Drop for Dropped {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        crate::testing::on_own_runtime(async move {
            if let Ok(mut conn) = PgConnection::connect(&server_url()).await {
                let _ = crate::testing::drop_databases_starting(&mut conn, &prefix).await;
            }
        });
    }
}

/// Creates `n` databases named `<prefix>_<i>`, each holding `setup` run with `{i}` replaced
/// by its number.
pub(crate) async fn databases(prefix: &str, n: usize, setup: &str) -> Vec<DatabaseName> {
    let mut admin = admin().await;
    let mut names = Vec::new();
    for i in 0..n {
        let name = DatabaseName::parse(&format!("{prefix}_{i}")).unwrap();
        exec(&mut admin, format!("CREATE DATABASE {}", name.quoted())).await;
        if !setup.is_empty() {
            let mut conn = PgConnection::connect_with(&server_options().database(name.as_str()))
                .await
                .unwrap();
            exec(&mut conn, setup.replace("{i}", &i.to_string())).await;
            conn.close().await.unwrap();
        }
        names.push(name);
    }
    names
}

/// Backends connected to any of `names`, as the server counts them.
pub(crate) async fn backends(conn: &mut PgConnection, names: &[DatabaseName]) -> i64 {
    let names: Vec<&str> = names.iter().map(DatabaseName::as_str).collect();
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)")
        .bind(names)
        .fetch_one(conn)
        .await
        .unwrap()
}
