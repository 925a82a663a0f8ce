//! The one place where SQL text is assembled from identifiers.
//!
//! Identifiers reach here validated (`tenancy_core::ident`) and leave quoted; values never reach
//! SQL text, they are bound, but for a query's limit, an integer written as its digits
//! ([`SqlBuf::limit`]). [`text`] is the only caller of sqlx's `AssertSqlSafe` in the crate,
//! so an audit of dynamic SQL starts and ends in this module and its callers' use of [`SqlBuf`].

pub(crate) mod fence;
mod filter;
pub(crate) mod report;
pub(crate) mod statements;
mod writes;

pub(crate) use filter::push_keyset;
pub(crate) use statements::{ModelSql, PlacedSql, push_values_row, statements, statements_of};
pub(crate) use writes::Filtered;

use sqlx::postgres::PgArguments;
use sqlx::{Arguments, AssertSqlSafe, Encode, Postgres, SqlSafeStr, SqlStr, Type};

use crate::bind::TenantArgs;
use crate::{Error, Result};

/// Marks the tenant's placeholder in SQL under construction: its number is known only once every
/// other value is bound, since the tenant is bound last (see `crate::bind`).
pub(crate) const TENANT: char = '\u{2}';

/// A statement off the hot path (registry, lifecycle, migrations, checks), always run as an
/// unnamed statement: inside a transaction it works through PgBouncer in transaction mode
/// whatever the [`StatementMode`](crate::StatementMode), and it fills no connection's statement
/// cache. Outside one, run it through [`in_own_tx`].
pub(crate) fn admin_query(
    sql: impl SqlSafeStr,
) -> sqlx::query::Query<'static, Postgres, PgArguments> {
    sqlx::query(sql).persistent(false)
}

/// As [`admin_query`], returning one column.
pub(crate) fn admin_scalar<O>(
    sql: impl SqlSafeStr,
) -> sqlx::query::QueryScalar<'static, Postgres, O, PgArguments>
where
    (O,): for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    sqlx::query_scalar(sql).persistent(false)
}

/// As [`admin_query`], returning rows as `O`.
pub(crate) fn admin_query_as<O>(
    sql: impl SqlSafeStr,
) -> sqlx::query::QueryAs<'static, Postgres, O, PgArguments>
where
    O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    sqlx::query_as(sql).persistent(false)
}

/// Runs `f` on `conn` in a transaction of its own, committed when `f` succeeds (rolled back
/// when it fails or is dropped): for statements with arguments on a connection outside any
/// transaction. sqlx prepares such a statement in one exchange and executes it in a second,
/// each ended by a `Sync`; PgBouncer in transaction mode may hand the second to another server
/// connection, which has no such statement ("unnamed prepared statement does not exist"). A
/// transaction keeps both on one server connection. Statements without arguments can go as
/// one simple query (`sqlx::raw_sql`) instead.
pub(crate) async fn in_own_tx<T, E>(
    conn: &mut sqlx::PgConnection,
    f: impl AsyncFnOnce(&mut sqlx::PgConnection) -> std::result::Result<T, E>,
) -> std::result::Result<T, E>
where
    E: From<sqlx::Error>,
{
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let out = f(&mut tx).await?;
    tx.commit().await?;
    Ok(out)
}

/// Wraps SQL text assembled by this crate for sqlx.
pub(crate) fn text(sql: String) -> SqlStr {
    AssertSqlSafe(sql).into_sql_str()
}

/// SQL text under construction with its bound arguments, so that `$n` numbering always matches
/// the order in which values are bound.
pub(crate) struct SqlBuf {
    pub(crate) sql: String,
    pub(crate) args: PgArguments,
}

impl SqlBuf {
    pub(crate) fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            args: PgArguments::default(),
        }
    }

    pub(crate) fn push(&mut self, s: &str) -> &mut Self {
        self.sql.push_str(s);
        self
    }

    /// Binds `value` and writes its placeholder.
    pub(crate) fn bind<'q, T>(&mut self, value: T) -> Result<&mut Self>
    where
        T: Encode<'q, Postgres> + Type<Postgres>,
    {
        self.args.add(value).map_err(Error::Encode)?;
        self.push_placeholder();
        Ok(self)
    }

    /// Binds a type-erased value and writes its placeholder.
    pub(crate) fn bind_value(&mut self, value: &dyn crate::value::BindValue) -> Result<&mut Self> {
        value.bind(&mut self.args).map_err(Error::Encode)?;
        self.push_placeholder();
        Ok(self)
    }

    /// Writes ` LIMIT n` with `n` in the text, not bound: PostgreSQL plans a `LIMIT $n`
    /// statement anew on every run (its generic plan, costed for an unknown limit, never wins
    /// against the custom ones), while with the number in the text the generic plan takes over
    /// after five runs. An integer's digits (or a minus sign, which the server refuses as it
    /// would the bound value) are all it can write; each limit is a statement of its own.
    pub(crate) fn limit(&mut self, n: i64) -> &mut Self {
        self.sql.push_str(" LIMIT ");
        self.sql.push_str(itoa::Buffer::new().format(n));
        self
    }

    /// Writes the tenant's placeholder; [`SqlBuf::finish`] binds the tenant, last.
    pub(crate) fn tenant(&mut self) -> &mut Self {
        self.sql.push(TENANT);
        self
    }

    /// Binds `tenant` after every other value and numbers its placeholders.
    ///
    /// # Errors
    /// [`Error::TenantBinding`] if the statement reads no tenant, or its arguments fail the
    /// tenant's check.
    pub(crate) fn finish(mut self, tenant: uuid::Uuid) -> Result<(SqlStr, TenantArgs)> {
        let Some(mut at) = self.sql.find(TENANT) else {
            return Err(Error::TenantBinding(
                "the statement has no placeholder for the tenant".into(),
            ));
        };
        let n = self.args.len() + 1;
        // In place, every mark: this runs on every built statement (a list page, say), where
        // a second string and a formatted number were a good part of the client's cost.
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(n);
        loop {
            self.sql.replace_range(at..at + TENANT.len_utf8(), "$");
            self.sql.insert_str(at + 1, digits);
            let from = at + 1 + digits.len();
            match self.sql[from..].find(TENANT) {
                Some(i) => at = from + i,
                None => break,
            }
        }
        Ok((text(self.sql), crate::bind::finish(self.args, tenant, n)?))
    }

    fn push_placeholder(&mut self) {
        use std::fmt::Write;
        let _ = write!(self.sql, "${}", self.args.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_numbers_the_tenant_after_ten_values() {
        let mut buf = SqlBuf::new("SELECT 1 FROM t WHERE tenant_id = ");
        buf.tenant().push(" AND a IN (");
        for v in 0..10_i32 {
            buf.bind(v).unwrap().push(",");
        }
        buf.push("0) AND f(").tenant().push(")");
        let (sql, _) = buf.finish(uuid::Uuid::nil()).unwrap();
        assert_eq!(
            sql.as_str(),
            "SELECT 1 FROM t WHERE tenant_id = $11 AND a IN ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,0) \
             AND f($11)"
        );
    }

    #[test]
    fn a_limit_is_written_as_its_digits() {
        let mut buf = SqlBuf::new("SELECT 1");
        buf.limit(50);
        assert_eq!(buf.sql, "SELECT 1 LIMIT 50");
        buf.limit(-1);
        assert_eq!(buf.sql, "SELECT 1 LIMIT 50 LIMIT -1");
    }

    #[test]
    fn finish_numbers_every_tenant_mark_after_the_bound_values() {
        let mut buf = SqlBuf::new("SELECT 1 FROM t WHERE tenant_id = ");
        buf.tenant().push(" AND a = ");
        buf.bind(7_i32).unwrap();
        buf.push(" AND f(").tenant().push(") AND b = ");
        buf.bind("x").unwrap();
        let (sql, _) = buf.finish(uuid::Uuid::nil()).unwrap();
        assert_eq!(
            sql.as_str(),
            "SELECT 1 FROM t WHERE tenant_id = $3 AND a = $1 AND f($3) AND b = $2"
        );
    }

    #[test]
    fn finish_refuses_a_statement_that_never_reads_the_tenant() {
        let mut buf = SqlBuf::new("SELECT 1 FROM t WHERE a = ");
        buf.bind(7_i32).unwrap();
        assert!(matches!(
            buf.finish(uuid::Uuid::nil()),
            Err(Error::TenantBinding(_))
        ));
    }
}
