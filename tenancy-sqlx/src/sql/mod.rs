//! The one place where SQL text is assembled from identifiers.
//!
//! Identifiers reach here validated (`tenancy_core::ident`) and leave quoted; values never reach
//! SQL text, they are bound. [`text`] is the only caller of sqlx's `AssertSqlSafe` in the crate,
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
    pub(crate) fn finish(self, tenant: uuid::Uuid) -> Result<(SqlStr, TenantArgs)> {
        if !self.sql.contains(TENANT) {
            return Err(Error::TenantBinding(
                "the statement has no placeholder for the tenant".into(),
            ));
        }
        let n = self.args.len() + 1;
        let sql = self.sql.replace(TENANT, &format!("${n}"));
        Ok((text(sql), crate::bind::finish(self.args, tenant, n)?))
    }

    fn push_placeholder(&mut self) {
        use std::fmt::Write;
        let _ = write!(self.sql, "${}", self.args.len());
    }
}
