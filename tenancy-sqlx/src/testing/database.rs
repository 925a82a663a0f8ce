//! A database of one test: created empty or from a template, dropped when the guard goes.

use sqlx::{Connection, PgConnection};

use tenancy_core::ident::quote;

use super::SetupError;
use super::server::{connect_admin, server_url, with_database};

/// A database of its own for one test, dropped (with `FORCE`, closing what is still connected)
/// when this guard is dropped, also while a test panics. [`TestDatabase::keep`] leaves it for
/// inspection instead.
///
/// The [`#[tenancy::test]`](crate::testing) attribute manages one for you; use this type by
/// hand when a test needs what the attribute does not express (several handles, a pooler's
/// address, roles of its own).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use tenancy_sqlx::testing::TestDatabase;
///
/// let db = TestDatabase::create("my_test").await?; // an empty database
/// db.exec("CREATE TABLE t (x int)").await?;
/// let tenancy = tenancy_sqlx::Tenancy::connect(db.url()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    keep: bool,
}

impl TestDatabase {
    /// Creates an empty database named after `test` (with a random suffix, so parallel tests
    /// and reruns never collide).
    ///
    /// # Errors
    /// [`SetupError::NoServer`] when the server does not answer; [`SetupError::Database`]
    /// when the role may not create a database.
    pub async fn create(test: &str) -> Result<Self, SetupError> {
        Self::create_from(test, None).await
    }

    pub(super) async fn create_from(
        test: &str,
        template: Option<&str>,
    ) -> Result<Self, SetupError> {
        let mut admin = connect_admin().await?;
        let name = database_name(test);
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {} TEMPLATE {}", quote(&name), quote(t)),
            None => format!("CREATE DATABASE {}", quote(&name)),
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .map_err(|e| SetupError::database(format!("create database {name}"), e))?;
        let url = with_database(&server_url(), &name);
        let db = Self {
            name,
            url,
            keep: false,
        };
        if template.is_some() {
            // A copy of a registry carries its tag, which names its tenants' databases on the
            // server: each test's registry gets a tag of its own, or tests would take each
            // other's databases for leftovers.
            db.exec(
                "DO $$ BEGIN IF to_regclass('tenancy.deployment') IS NOT NULL THEN \
                 UPDATE tenancy.deployment SET tag = substr(md5(gen_random_uuid()::text), 1, 12); \
                 END IF; END $$",
            )
            .await?;
        }
        Ok(db)
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL that connects to it (the server's URL with this database).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A plain connection to it: SQL written around the library, for a test's own checks.
    ///
    /// # Errors
    /// [`SetupError::Database`] if it cannot connect.
    pub async fn connect(&self) -> Result<PgConnection, SetupError> {
        connect_at(&self.url, &self.name).await
    }

    /// Runs SQL (several statements allowed) on it.
    ///
    /// # Errors
    /// [`SetupError::Database`] naming the SQL that failed.
    pub async fn exec(&self, sql: &str) -> Result<(), SetupError> {
        exec_at(&self.url, &self.name, sql).await
    }

    /// Leaves the database in place (for a failed test, to look at what it left), and returns
    /// its name.
    pub fn keep(mut self) -> String {
        self.keep = true;
        std::mem::take(&mut self.name)
    }

    /// Drops the database now, from async code, instead of on a thread of its own.
    ///
    /// # Errors
    /// [`SetupError::Database`] if the server refuses.
    pub async fn drop_now(mut self) -> Result<(), SetupError> {
        self.keep = true; // dropped here, not again by `Drop`
        drop_database(&self.name).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let name = std::mem::take(&mut self.name);
        on_own_runtime(async move {
            let _ = drop_database(&name).await;
        });
    }
}

/// Runs `work` to its end from a `Drop`: async drop does not exist, and a drop may run inside a
/// runtime that must not block on itself, so `work` runs on a thread with a runtime of its own.
pub(crate) fn on_own_runtime(work: impl Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(work);
        }
    })
    .join();
}

/// A plain connection to the database `name` at `url`.
pub(super) async fn connect_at(url: &str, name: &str) -> Result<PgConnection, SetupError> {
    PgConnection::connect(url)
        .await
        .map_err(|e| SetupError::database(format!("connect to {name}"), e))
}

/// Runs SQL (several statements allowed) on the database `name` at `url`.
pub(super) async fn exec_at(url: &str, name: &str, sql: &str) -> Result<(), SetupError> {
    let mut conn = connect_at(url, name).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .map_err(|e| SetupError::database(format!("run {sql}"), e))?;
    Ok(())
}

/// Drops every database on `admin`'s server whose name starts with `prefix` (with `FORCE`,
/// closing what is still connected).
pub(crate) async fn drop_databases_starting(
    admin: &mut PgConnection,
    prefix: &str,
) -> Result<(), sqlx::Error> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(prefix)
            .fetch_all(&mut *admin)
            .await?;
    for db in names {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote(&db)
        )))
        .execute(&mut *admin)
        .await?;
    }
    Ok(())
}

pub(super) async fn drop_database(name: &str) -> Result<(), SetupError> {
    drop_tenant_databases(name).await?;
    let mut admin = connect_admin().await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote(name)
    )))
    .execute(&mut admin)
    .await
    .map_err(|e| SetupError::database(format!("drop database {name}"), e))?;
    Ok(())
}

/// Drops the own-database tenants' databases (and templates, spares) of the registry in
/// database `name`, if it has one: they live beside it on the server, named by its tag.
async fn drop_tenant_databases(name: &str) -> Result<(), SetupError> {
    let Ok(mut conn) = PgConnection::connect(&with_database(&server_url(), name)).await else {
        return Ok(()); // gone already
    };
    let tag: Option<String> = sqlx::query_scalar("SELECT tag FROM tenancy.deployment")
        .fetch_optional(&mut conn)
        .await
        .ok()
        .flatten();
    let _ = conn.close().await;
    let Some(tag) = tag else {
        return Ok(());
    };
    let mut admin = connect_admin().await?;
    let prefix = format!("tenancy_{tag}_");
    drop_databases_starting(&mut admin, &prefix)
        .await
        .map_err(|e| SetupError::database(format!("drop the databases {prefix}*"), e))
}

/// `tt_<test>_<random>`: readable in `\l`, unique, within PostgreSQL's 63 bytes.
pub(crate) fn database_name(test: &str) -> String {
    // The test's own name, not its module path: `tests::a::b` -> `b`.
    let last = test.rsplit("::").next().unwrap_or(test);
    let short: String = last
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect::<String>()
        .to_ascii_lowercase();
    format!(
        "tt_{short}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_short_safe_and_unique() {
        let a = super::database_name("tests::module::Some-Test\"; DROP");
        let b = super::database_name("tests::module::Some-Test\"; DROP");
        assert!(a.starts_with("tt_sometestdrop_"), "{a}");
        assert_ne!(a, b);
        let long = super::database_name(&"x".repeat(200));
        assert!(long.len() <= 63, "{long}");
    }
}
