//! How the pools [`TenancyBuilder::connect`](crate::TenancyBuilder::connect) builds check a
//! connection before lending it, and why a unit that begins a transaction skips the check.
//!
//! sqlx's `test_before_acquire` pings every idle connection before lending it: a round trip per
//! borrow, so that a connection whose backend died is replaced rather than failing the
//! borrower's first statement. A unit whose first message is its own `BEGIN` (a read or write
//! with row-level security, a [`TenantTx`](crate::TenantTx), admin work, every unit in
//! [`StatementMode::Unnamed`](crate::StatementMode::Unnamed)) does not need it: the `BEGIN` is
//! the check. It has no effect outside the transaction it opens, so when it fails because the
//! connection is gone (see [`broken`]), the unit closes that connection and sends the same
//! `BEGIN` once more on a connection checked the usual way. With row-level security on, that
//! makes a read on a `&TenantCtx` three flights (`BEGIN` with the tenant, the statement, and the
//! pool's release check carrying the queued `ROLLBACK`: see [`super::read`]), as many as the
//! same read without it.
//!
//! sqlx has no per-borrow option, so these pools are built without sqlx's ping and ping in their
//! `before_acquire` hook instead ([`lendable`]), unless the borrow runs inside [`unchecked`]: a
//! task-local marker that the hook reads while the borrowing task polls `acquire`. A pool given
//! to [`TenancyBuilder::from_pool`](crate::TenancyBuilder::from_pool) keeps its own options,
//! and its borrowers are checked as those say.

use std::future::Future;

use futures_util::future::BoxFuture;
use sqlx::pool::{PoolConnection, PoolConnectionMetadata};
use sqlx::postgres::PgConnection;
use sqlx::{Connection, PgPool, Postgres};

use super::SchemaEpoch;
use crate::Error;

tokio::task_local! {
    /// Set while a unit whose first message is its `BEGIN` borrows a connection.
    static BEGINS_ITSELF: ();
}

/// Runs `borrow` (a pool's `acquire`) for a unit that begins with its own `BEGIN`: the pools
/// tenancy builds then lend without a ping.
pub(crate) fn unchecked<F: Future>(borrow: F) -> impl Future<Output = F::Output> {
    BEGINS_ITSELF.scope((), borrow)
}

/// `pool.acquire()`, on the heap. sqlx's borrow is a future of about 8.6 KiB; held inline, it
/// made every future above it (a repository call's, 20 KiB) that large, and each level copied
/// it as it was built: half the client's instructions of a lookup by key went to `memcpy`.
/// Boxed, it is copied once, as sqlx's own `fetch_*(&pool)` does.
pub(crate) fn borrow(pool: &PgPool) -> BoxFuture<'static, sqlx::Result<PoolConnection<Postgres>>> {
    Box::pin(pool.acquire())
}

/// The `before_acquire` check of the pools tenancy builds: a connection opened before the last
/// migration of this process is not lent (its prepared statements may fit the old shape of a
/// table, and sqlx's cache of custom types' oids may name types the migration dropped), and
/// one whose ping fails is closed; with `ping` off, or inside [`unchecked`], no round trip.
///
/// Except, with `persistent` statements, one with none prepared: every statement of the
/// handle's is then prepared and cached, so an empty cache means the connection was reset
/// since its last unit (`Conn::commit_and_reset`: `DISCARD ALL`, sqlx's caches cleared) or
/// has run only unnamed statements, whose plans the server makes anew each time. It is lent
/// after clearing sqlx's type cache (no round trip), so a migration run, which resets its
/// connection after each target, borrows it again for the next instead of opening one (2-3 ms
/// a target). With unnamed statements the cache is always empty and tells nothing.
pub(crate) fn lendable<'c>(
    conn: &'c mut PgConnection,
    meta: &PoolConnectionMetadata,
    epoch: &SchemaEpoch,
    (ping, persistent): (bool, bool),
) -> BoxFuture<'c, sqlx::Result<bool>> {
    let predates = epoch.predates(meta.age);
    let reset = predates && persistent && conn.cached_statements_size() == 0;
    let ping = (!predates || reset) && ping && BEGINS_ITSELF.try_with(|_| ()).is_err();
    Box::pin(async move {
        if reset && conn.clear_cached_statements().await.is_err() {
            return Ok(false);
        }
        if ping && let Err(error) = conn.ping().await {
            // sqlx's own ping reports at this level: a hung-up peer is not unexpected.
            tracing::info!(%error, "ping on idle connection returned error");
            return Ok(false);
        }
        Ok(!predates || reset)
    })
}

/// Whether `e` says the connection itself is gone (the socket closed, the backend terminated or
/// shutting down), so that what was sent may be sent again on another one.
pub(crate) fn broken(e: &Error) -> bool {
    match e {
        Error::Database(sqlx::Error::Io(_) | sqlx::Error::Protocol(_)) => true,
        Error::Database(sqlx::Error::Database(db)) => db.code().is_some_and(|code| {
            // Class 08: connection exception; 57P01-57P03: terminated by an administrator, a
            // crash or a shutdown.
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}
