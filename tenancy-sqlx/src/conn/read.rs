//! A tenant's read on a pooled connection that needs a transaction (row-level security, or
//! [`StatementMode::Unnamed`](crate::StatementMode::Unnamed)), with no round trip to end it.
//!
//! Such a read used to be `BEGIN` (with the tenant's setting), the statement, `COMMIT`: two
//! round trips more than the statement alone. The first cannot be saved through sqlx 0.9's
//! public API: before it writes a statement's messages it waits for every reply still owed
//! (`wait_until_ready`), so neither a pipeline nor several `Execute` messages before one `Sync`
//! (an implicit transaction) can be expressed, and folding `set_config` into the statement
//! itself would trust the server's evaluation order. The last one can: a sqlx `Transaction`
//! dropped while open *queues* its `ROLLBACK` in the connection's write buffer without sending
//! it, and whatever uses the connection next sends it first, in the same flight. What uses it
//! next is the pool: a connection given back is checked with a `Sync` in the task sqlx spawns
//! on release, before it becomes idle (and closed if that fails), so the rollback rides on that
//! check and the read waits for none of it.
//!
//! Nor does it wait for the pool's ping before the `BEGIN`: on the pools
//! [`TenancyBuilder::connect`](crate::TenancyBuilder::connect) builds, a unit that begins with
//! its own `BEGIN` is lent its connection unchecked, the `BEGIN` being the check (see
//! [`super::acquire`]). A read is then three flights (`BEGIN` with the setting, the statement,
//! the release check with the rollback), as many as the same read outside a transaction on a
//! pool that pings.
//!
//! A rollback ends a read as well as a commit does, and the transaction is `BEGIN READ ONLY` so
//! that it is one: a statement that would write fails instead of being rolled back in silence.
//!
//! Cancellation keeps the rule of [`crate::conn`]: the connection counts as settled only once
//! the statement ran to its end (or failed on the server) and the rollback is queued behind it.
//! Dropped before that (`BEGIN` or the statement in flight), it is closed.

use futures_util::future::BoxFuture;
use sqlx::postgres::{PgArguments, PgConnection};
use sqlx::{Connection, PgPool, Postgres, SqlStr};

use super::Conn;
use crate::{Error, Result};

/// A statement with its arguments, ready to run.
pub(crate) type Query = sqlx::query::Query<'static, Postgres, PgArguments>;

/// What a unit does with a statement on a connection. A function pointer returning a boxed,
/// `Send` future rather than an async closure: rustc cannot yet prove the futures of generic
/// async closures `Send` for every lifetime, which would make the repository's futures unusable
/// with `tokio::spawn`.
pub(crate) type Op<T> = for<'c> fn(Query, &'c mut PgConnection) -> BoxFuture<'c, sqlx::Result<T>>;

/// The statement `sql` with `args`, prepared once per connection and cached if `persistent`.
pub(crate) fn query(sql: SqlStr, args: PgArguments, persistent: bool) -> Query {
    sqlx::query_with(sql, args).persistent(persistent)
}

impl Conn {
    /// Takes a connection from `pool`, runs the read `op` of `sql` in a transaction begun with
    /// `begin` (which must open a `READ ONLY` transaction), and hands the connection back with
    /// the transaction's `ROLLBACK` queued (see the module docs).
    ///
    /// A statement whose cached plan no longer fits its table (see
    /// [`is_stale_plan`](super::is_stale_plan)) is prepared again and run once more, in a new
    /// transaction, as `TenantUnit::run` does.
    pub(crate) async fn read<T>(
        pool: &PgPool,
        begin: SqlStr,
        sql: SqlStr,
        args: PgArguments,
        persistent: bool,
        op: Op<T>,
    ) -> Result<T> {
        let again = persistent.then(|| (sql.clone(), args.clone()));
        let first = query(sql, args, persistent);
        let (mut conn, out) =
            Self::read_lent(pool, begin.clone(), async |c| Ok(op(first, c).await?)).await?;
        match (out, again) {
            (Err(e), Some((sql, args))) if super::is_stale_plan(&e) => {
                // The first attempt's rollback is queued: clearing the cache sends it first.
                conn.settled = false;
                conn.pg().clear_cached_statements().await?;
                let q = query(sql, args, persistent);
                conn.in_read_tx(begin, async |c| Ok(op(q, c).await?))
                    .await
                    .unwrap_or_else(|(e, _)| Err(e))
            }
            (out, _) => out,
        }
        // `conn` goes back to the pool if `in_read_tx` settled it, and is closed otherwise.
    }

    /// Takes a connection from `pool` and runs `f` in a transaction begun with `begin` (which
    /// must open a `READ ONLY` transaction), ended by a queued `ROLLBACK` (see the module docs):
    /// for reads across tenants (a report's statements).
    pub(crate) async fn read_with<T>(
        pool: &PgPool,
        begin: SqlStr,
        f: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<T> {
        Self::read_lent(pool, begin, f).await?.1
    }

    /// Runs `f` in a read transaction (see [`Conn::in_read_tx`]) on a connection of `pool` lent
    /// unchecked, its `BEGIN` being the check (see [`super::acquire`]): if the connection is
    /// gone, it is closed and the `BEGIN` sent again on one the pool checked. Gives back the
    /// connection with `f`'s outcome.
    async fn read_lent<T, F>(pool: &PgPool, begin: SqlStr, f: F) -> Result<(Self, Result<T>)>
    where
        F: AsyncFnOnce(&mut PgConnection) -> Result<T>,
    {
        let mut conn = Self::take_unchecked(pool).await?;
        let (e, f) = match conn.in_read_tx(begin.clone(), f).await {
            Ok(out) => return Ok((conn, out)),
            Err((e, f)) if super::acquire::broken(&e) => (e, f),
            Err((e, _)) => return Err(e),
        };
        tracing::debug!(error = %e, "a connection lent unchecked was gone; begins again on another");
        // Unsettled, so closed (and its place in the pool freed) before the next is taken.
        drop(conn);
        let mut conn = Self::take(pool).await?;
        let out = conn.in_read_tx(begin, f).await.map_err(|(e, _)| e)?;
        Ok((conn, out))
    }

    /// `begin`, `f`, and the transaction's `ROLLBACK` queued. Marks the connection settled when
    /// `f` ran to its end or the server refused its statement, so that its replies are read in
    /// full or followed by nothing but the queued rollback; otherwise it stays unsettled and is
    /// closed when dropped. A `BEGIN` that failed gives `f` back, unrun, with its error.
    async fn in_read_tx<T, F>(
        &mut self,
        begin: SqlStr,
        f: F,
    ) -> std::result::Result<Result<T>, (Error, F)>
    where
        F: AsyncFnOnce(&mut PgConnection) -> Result<T>,
    {
        self.settled = false;
        let out = begun_then(self.pg(), begin, f).await?;
        self.settled = match &out {
            Ok(_) => true,
            Err(e) => matches!(e, Error::Database(sqlx::Error::Database(_))),
        };
        Ok(out)
    }
}

/// `begin`, then `f` in that transaction, whose `ROLLBACK` its drop queues. A `BEGIN` that failed
/// gives `f` back with its error, unrun.
async fn begun_then<T, F>(
    conn: &mut PgConnection,
    begin: SqlStr,
    f: F,
) -> std::result::Result<Result<T>, (Error, F)>
where
    F: AsyncFnOnce(&mut PgConnection) -> Result<T>,
{
    let mut tx = match Connection::begin_with(conn, begin).await {
        Ok(tx) => tx,
        Err(e) => return Err((e.into(), f)),
    };
    let out = f(&mut tx).await;
    // Dropping `tx` while open queues its rollback; nothing is sent here.
    drop(tx);
    Ok(out)
}
