//! Keeps tenant schemas off a connection's `search_path`.
//!
//! Shared-table statements name their table unqualified, so the session's `search_path` picks
//! it. A path that put an own-schema tenant's schema (or a spare one) first, from the URL's
//! `options`, `ALTER ROLE ... SET` or `ALTER DATABASE ... SET`, would send a shared tenant's rows
//! into that tenant's table. Each connection of the pools tenancy builds is checked when it
//! opens, and the model check refuses a shared table that resolves into such a schema.

use sqlx::PgConnection;

use crate::{Error, Result};

pub(crate) use tenancy_core::home::is_tenant_schema;

/// Refuses a connection whose `search_path` names a tenant or spare schema: as resolved
/// (`current_schemas`) and as written, so that a tenant schema not created yet counts too.
pub(crate) async fn check(conn: &mut PgConnection) -> Result<()> {
    // A connection outside any transaction (a new one, or one the caller took from its pool).
    let (written, resolved): (String, Vec<String>) = crate::sql::in_own_tx(conn, async |c| {
        crate::sql::admin_query(
            "SELECT current_setting('search_path'), current_schemas(false)::text[]",
        )
        .try_map(|row: sqlx::postgres::PgRow| {
            use sqlx::Row;
            Ok((row.try_get(0)?, row.try_get(1)?))
        })
        .fetch_one(c)
        .await
    })
    .await?;
    let named = written_schemas(&written);
    match named.iter().chain(&resolved).find(|s| is_tenant_schema(s)) {
        Some(schema) => Err(Error::SearchPath(format!(
            "the connection's search_path ({written}) names the tenant schema {schema:?}, \
             so shared-table statements could reach a tenant's table; \
             remove it from the URL's options and the role's or database's settings"
        ))),
        None => Ok(()),
    }
}

/// The schema names of a `search_path` setting as PostgreSQL reads them: unquoted names folded
/// to lower case, quoted ones taken as written.
fn written_schemas(setting: &str) -> Vec<String> {
    setting
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(
            |s| match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => s.to_lowercase(),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_path_is_read_as_the_server_reads_it() {
        assert_eq!(
            written_schemas(r#""$user", T_Acme , "t_b""c",public"#),
            ["$user", "t_acme", "t_b\"c", "public"]
        );
        assert!(is_tenant_schema("t_acme"));
        assert!(is_tenant_schema("tenancy_spare_0f"));
        assert!(!is_tenant_schema("app") && !is_tenant_schema("tenancy"));
    }
}
