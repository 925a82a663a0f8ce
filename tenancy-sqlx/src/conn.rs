//! [`Conn`]: how a unit of work gets its pooled connection, begins its transaction with its
//! settings, and gives the connection back.
//!
//! Cancellation is a normal event: any future may be dropped at any await. sqlx's own
//! `Transaction` counts a transaction only once `BEGIN`'s reply is read, so a future dropped
//! while `BEGIN` (with `set_config(..)` riding on it) is in flight hands the connection back to
//! the pool inside an open transaction, with the tenant still set. Here the rule is the other
//! way round: a connection goes back to the pool as it is only when this type *knows* it is
//! idle, outside any transaction and with nothing in flight, because the unit of work ended
//! through [`Conn::end`], [`Conn::commit`] or [`Conn::rollback`]. Dropped anywhere else (`BEGIN`
//! in flight, inside the transaction, a statement in flight, `COMMIT` in flight), it is closed:
//! the server then rolls back whatever was open, and the next borrower gets a new connection.
//!
//! The uncancelled path costs nothing: `BEGIN` with its settings is the same one round trip as
//! sqlx's `begin_with`, `COMMIT` the same as its `commit`. A read that needs a transaction ends
//! it with no round trip at all ([`read`]: a `ROLLBACK` queued for the pool's check on release).
//!
//! # After caller-supplied SQL
//!
//! Migrations, provisioning and imports run SQL the library did not write, which can leave state
//! that outlives its transaction: a session setting (a pg_dump header's
//! `set_config('search_path', '', false)`, or `tenancy.tenant_id` itself), a role, a prepared
//! statement, a cursor `WITH HOLD`, a temporary table, a `LISTEN`, a session advisory lock.
//! Checking for each kind is not possible (custom settings are listed nowhere), so such a unit
//! ends with [`Conn::commit_and_reset`]: after the commit, `DISCARD ALL`, which covers them all.
//! `DISCARD ALL` also drops the statements sqlx prepared and cached on the connection, so sqlx's
//! cache is cleared first (its statements closed), and sqlx prepares them again when next
//! needed; and it cannot run inside a transaction, hence after the commit. A failed or dropped
//! unit is closed, as any other. Closing every such connection instead would be simpler but
//! costs a new connection per unit: measured on `migrate_tenants` (the bench's
//! `migrate_all_ms_per_tenant`, 1,000 schemas, a 2-core machine at load 10-13), the reset
//! 2.83 ms per tenant against 2.60 ms with neither, in runs side by side; closing 10.5 and
//! 12.8 ms against 4.9 ms in an earlier, more loaded pair of runs.
//!
//! `RESET ALL` (part of `DISCARD ALL`) also undoes settings a pool's `after_connect` made: set
//! those in the connect options (`PgConnectOptions::options`) or per role, which survive it.
//! Through PgBouncer in transaction mode the reset reaches whichever server connection PgBouncer
//! picks, not necessarily the one the work ran on: keep session state out of migrations there.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgConnection;
use sqlx::{Connection, PgPool, Postgres, SqlStr};

use crate::databases::budget::Lease;
use crate::{Error, Result};

pub(crate) mod acquire;
pub(crate) mod read;

/// Where a unit's connection came from, and goes back to.
enum Link {
    /// The handle's pool (or a lane of it).
    Pool(PoolConnection<Postgres>),
    /// An own-database tenant's connections, under its server's budget. `None` only once
    /// handed back in `drop`.
    Lease(Option<Lease>),
}

/// A pooled connection for one unit of work. Closed on drop unless the unit ended cleanly.
///
/// An own-database tenant's connection is a [`Lease`] from its server's budget, held here for
/// the unit's whole life: the budget never evicts or closes a connection a unit holds, and
/// gets it back (released for reuse, or closed) only when the unit ends.
pub(crate) struct Conn {
    conn: Link,
    /// The `BEGIN` (with its settings) of the transaction this unit opened, if it opened one.
    begin: Option<SqlStr>,
    /// Whether the connection is known to be idle, outside any transaction, with nothing in
    /// flight. Only the methods that end the unit set it.
    settled: bool,
}

impl Conn {
    /// Takes a connection from `pool`, for statements outside a transaction.
    pub(crate) async fn take(pool: &PgPool) -> Result<Self> {
        Ok(Self {
            conn: Link::Pool(acquire::borrow(pool).await?),
            begin: None,
            settled: false,
        })
    }

    /// A unit of work on a connection leased from an own-database tenant's budget.
    pub(crate) fn leased(lease: Lease) -> Self {
        Self {
            conn: Link::Lease(Some(lease)),
            begin: None,
            settled: false,
        }
    }

    /// Takes a connection from `pool` for a unit whose first message is its `BEGIN`, without
    /// the pool's ping (see [`acquire`]).
    async fn take_unchecked(pool: &PgPool) -> Result<Self> {
        Ok(Self {
            conn: Link::Pool(acquire::unchecked(acquire::borrow(pool)).await?),
            begin: None,
            settled: false,
        })
    }

    /// Runs `f` on this unit's connection and ends the unit with its outcome (commits, or rolls
    /// back on error); dropped before that, the connection is closed (see the module docs).
    pub(crate) async fn run<T>(
        mut self,
        f: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<T> {
        let out = f(&mut self).await;
        self.end(out).await
    }

    /// Runs `f` on a connection of `pool` outside any transaction it does not begin itself, as
    /// [`Conn::run`]. Library code borrows from a pool only through [`Conn`]: a raw
    /// `pool.acquire()` whose `BEGIN` was cut off in flight would go back inside a transaction
    /// (sqlx counts it only once its reply is read), and the next borrower's statements would
    /// run, uncommitted, inside it.
    pub(crate) async fn with<T>(
        pool: &PgPool,
        f: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<T> {
        Self::take(pool).await?.run(f).await
    }

    /// Takes a connection from `pool` and begins a transaction with `begin` (`BEGIN`, or
    /// `BEGIN` and the settings of the transaction), in one simple-query round trip.
    ///
    /// The `BEGIN` is the connection's check (see [`acquire`]): if the connection turns out to
    /// be gone, it is closed and the `BEGIN` sent once more on one the pool checked.
    pub(crate) async fn begin(pool: &PgPool, begin: SqlStr) -> Result<Self> {
        match Self::take_unchecked(pool).await?.start(begin.clone()).await {
            // The failed connection was dropped unsettled: closed.
            Err(e) if acquire::broken(&e) => Self::take(pool).await?.start(begin).await,
            out => out,
        }
    }

    /// Begins a transaction with `begin` on this unit's connection (see [`Conn::begin`]).
    pub(crate) async fn start(mut self, begin: SqlStr) -> Result<Self> {
        sqlx::raw_sql(begin.clone()).execute(self.pg()).await?;
        self.begin = Some(begin);
        Ok(self)
    }

    /// The connection, whichever its origin.
    fn pg(&mut self) -> &mut PgConnection {
        self
    }

    /// Ends the unit of work with its outcome: commits its transaction after `Ok`, rolls it back
    /// after `Err`. The connection then goes back to the pool; if the commit or rollback cannot
    /// be completed, it is closed.
    ///
    /// After an error outside a transaction the connection is settled too: the statement ran
    /// to its end (an error, not a cancellation), and the pool pings it on release, which reads
    /// whatever a stopped row stream left unread. Unless the error says the connection itself
    /// failed (its socket, its protocol): then it is closed, never lent again. A lease of a
    /// tenant database's connections is not pinged on release, and a dead one at the top of
    /// an idle list would otherwise fail every unit after it.
    pub(crate) async fn end<T>(mut self, out: Result<T>) -> Result<T> {
        match out {
            Ok(value) => {
                if self.begin.is_some() {
                    match self.commit_checked().await {
                        Ok(()) => {}
                        Err(Error::TransactionAborted) => {
                            self.settled = true;
                            return Err(Error::TransactionAborted);
                        }
                        Err(e) => return Err(e),
                    }
                }
                self.settled = true;
                Ok(value)
            }
            Err(e) => {
                if !connection_failed(&e)
                    && (self.begin.is_none()
                        || sqlx::raw_sql("ROLLBACK").execute(self.pg()).await.is_ok())
                {
                    self.settled = true;
                }
                Err(e)
            }
        }
    }

    /// Commits the open transaction, or rolls it back and says so when a failed statement had
    /// aborted it. `SELECT 1` goes first, in the same message: in an aborted transaction it fails
    /// (25P02) and the `COMMIT` behind it is not run, where a bare `COMMIT` would answer
    /// `ROLLBACK` and read as success, losing every write the caller saw acknowledged.
    async fn commit_checked(&mut self) -> Result<()> {
        if let Err(e) = sqlx::raw_sql("SELECT 1; COMMIT").execute(self.pg()).await {
            let aborted = matches!(&e, sqlx::Error::Database(db)
                if db.code().as_deref() == Some("25P02"));
            if !aborted {
                return Err(e.into());
            }
            sqlx::raw_sql("ROLLBACK").execute(self.pg()).await?;
            return Err(Error::TransactionAborted);
        }
        Ok(())
    }

    /// Commits the transaction (if any) and gives the connection back.
    pub(crate) async fn commit(self) -> Result<()> {
        self.end(Ok(())).await
    }

    /// Commits the transaction (if any), then resets the session before the connection goes
    /// back to the pool: for units that ran caller-supplied SQL (see "After caller-supplied
    /// SQL" above). If the reset fails the connection is closed instead; the commit stands.
    pub(crate) async fn commit_and_reset(mut self) -> Result<()> {
        // An aborted transaction is rolled back and reported, after the reset all the same.
        let committed = match self.begin {
            Some(_) => self.commit_checked().await,
            None => Ok(()),
        };
        if let Err(e) = &committed
            && !matches!(e, Error::TransactionAborted)
        {
            return committed;
        }
        let conn = self.pg();
        let reset = async {
            conn.clear_cached_statements().await?;
            sqlx::raw_sql("DISCARD ALL").execute(&mut *conn).await?;
            Ok::<_, sqlx::Error>(())
        };
        match reset.await {
            Ok(()) => self.settled = true,
            Err(e) => tracing::warn!(error = %e, "resetting a connection failed; closing it"),
        }
        committed
    }

    /// Rolls the transaction back (if any) and gives the connection back.
    pub(crate) async fn rollback(mut self) -> Result<()> {
        if self.begin.is_some() {
            sqlx::raw_sql("ROLLBACK").execute(self.pg()).await?;
        }
        self.settled = true;
        Ok(())
    }

    /// After a statement failed because a cached plan no longer fits its table (see
    /// [`is_stale_plan`]): ends the transaction the failure aborted, forgets every statement
    /// this connection prepared, and begins the same transaction again.
    pub(crate) async fn replan(&mut self) -> Result<()> {
        if self.begin.is_some() {
            sqlx::raw_sql("ROLLBACK").execute(self.pg()).await?;
        }
        self.clear_cached_statements().await?;
        if let Some(begin) = self.begin.clone() {
            sqlx::raw_sql(begin).execute(self.pg()).await?;
        }
        Ok(())
    }
}

impl Deref for Conn {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match &self.conn {
            Link::Pool(conn) => conn,
            Link::Lease(lease) => lease.as_ref().expect("held until drop"),
        }
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match &mut self.conn {
            Link::Pool(conn) => conn,
            Link::Lease(lease) => lease.as_mut().expect("held until drop"),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        match &mut self.conn {
            // State unknown: never lend it to the next borrower as it is.
            Link::Pool(conn) if !self.settled => conn.close_on_drop(),
            Link::Pool(_) => {}
            Link::Lease(lease) => {
                if let Some(lease) = lease.take() {
                    if self.settled {
                        lease.release();
                    } else {
                        // Dropped unreleased, a lease is closed (see `Lease`).
                        drop(lease);
                    }
                }
            }
        }
    }
}

/// Whether `e` is PostgreSQL refusing to run a cached plan whose result columns changed under
/// it ("cached plan must not change result type", after a migration altered the table). The
/// server raises it while binding the statement, before executing anything, so nothing of the
/// statement took effect and running it again, newly prepared, is safe.
pub(crate) fn is_stale_plan(e: &Error) -> bool {
    match e {
        Error::Database(sqlx::Error::Database(db)) => {
            db.code().as_deref() == Some("0A000")
                && db
                    .message()
                    .contains("cached plan must not change result type")
        }
        _ => false,
    }
}

/// When this process last changed the shape of tables (a migration), so that the pools it
/// built stop lending connections whose prepared statements were planned before.
#[derive(Debug)]
pub(crate) struct SchemaEpoch {
    start: Instant,
    /// Nanoseconds after `start` of the last change; 0 for none.
    changed: AtomicU64,
}

impl SchemaEpoch {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            changed: AtomicU64::new(0),
        }
    }

    /// Records a change of shape, now.
    pub(crate) fn mark(&self) {
        let now = nanos(self.start.elapsed()).max(1);
        self.changed.fetch_max(now, Ordering::Relaxed);
    }

    /// Whether a connection of this `age` was opened before the last change, so may hold
    /// statements planned for the old shape.
    pub(crate) fn predates(&self, age: Duration) -> bool {
        let changed = self.changed.load(Ordering::Relaxed);
        changed != 0 && nanos(self.start.elapsed()).saturating_sub(nanos(age)) <= changed
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Whether `e` says the connection itself failed (not a statement on it): its socket closed or
/// broken, its protocol out of step, its TLS failed, or the server ended its session (a
/// connection exception, class 08, or a shutdown or termination, 57P: the backend is gone).
fn connection_failed(e: &Error) -> bool {
    match e {
        Error::Database(
            sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed,
        ) => true,
        Error::Database(sqlx::Error::Database(db)) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connections_opened_before_the_last_change_are_stale() {
        let epoch = SchemaEpoch::new();
        let hour = Duration::from_secs(3600);
        assert!(!epoch.predates(hour), "no change yet");
        let opened_before = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        epoch.mark();
        std::thread::sleep(Duration::from_millis(2));
        let opened_after = Instant::now();
        assert!(epoch.predates(hour));
        assert!(epoch.predates(opened_before.elapsed()));
        assert!(!epoch.predates(opened_after.elapsed()));
    }
}
