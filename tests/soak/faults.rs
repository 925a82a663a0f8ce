//! The faults a task suffers, and the seeded randomness that picks them: cancellation at a
//! random await point (a timeout, a lost `select!`, the future dropped right after its k-th
//! `Pending`), and, from a side task on a connection of its own, backends terminated with
//! `pg_terminate_backend`.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tenancy::Error;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::common::TestDb;
use crate::ledger::{Ledger, Outcome};

/// splitmix64: small, seedable, and the same sequence on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }

    /// A uuid from the seeded stream, so that a rerun writes the same ids.
    pub fn uuid(&mut self) -> uuid::Uuid {
        uuid::Builder::from_random_bytes(
            ((u128::from(self.next()) << 64) | u128::from(self.next())).to_le_bytes(),
        )
        .into_uuid()
    }
}

/// How one call is cut short, if at all.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    None,
    /// `tokio::time::timeout` around the call.
    Timeout(Duration),
    /// The call loses a `select!` against a sleep.
    Select(Duration),
    /// The call's future is dropped right after it returned `Pending` for the k-th time.
    AfterPending(u32),
    /// The call's future is dropped at the first `Pending` after it got a connection from the
    /// pool: with its first statement (a `BEGIN`, say) sent and its reply not yet read.
    RightAfterAcquire,
}

impl Fault {
    /// Cancels `pct` percent of calls, spread over the three ways.
    pub fn pick(rng: &mut Rng, pct: u64) -> Self {
        if !rng.chance(pct) {
            return Self::None;
        }
        // Log-uniform from 16 µs to 16 ms, and k from 1 to 8 leaning small: a call cut off
        // while it waits for a connection in a busy pool is common, one cut off in the round
        // trip right after it got one is what needs the spread.
        let micros = 16u64 << rng.below(11);
        let micros = micros + rng.below(micros as usize) as u64;
        match rng.below(5) {
            0 => Self::Timeout(Duration::from_micros(micros)),
            1 => Self::Select(Duration::from_micros(micros)),
            2 => Self::RightAfterAcquire,
            _ => {
                let most = 1 + rng.below(8);
                Self::AfterPending(1 + rng.below(most) as u32)
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Timeout(_) => "fault.cancel.timeout",
            Self::Select(_) => "fault.cancel.select",
            Self::AfterPending(_) => "fault.cancel.after_kth_pending",
            Self::RightAfterAcquire => "fault.cancel.right_after_acquire",
        }
    }
}

/// How a call ended: its result, or cut short by its fault.
pub enum Ended<T> {
    Done(tenancy::Result<T>),
    Cancelled,
}

impl<T> Ended<T> {
    /// What the call's writes are known to be.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Done(Ok(_)) => Outcome::Ack,
            Self::Done(Err(e)) if in_doubt(e) => Outcome::Unknown,
            Self::Done(Err(_)) => Outcome::Failed,
            Self::Cancelled => Outcome::Unknown,
        }
    }

    pub fn ok(self) -> Option<T> {
        match self {
            Self::Done(Ok(v)) => Some(v),
            _ => None,
        }
    }
}

/// Runs `fut` under `fault`, counting the fault when it cut the call short.
pub async fn inject<T>(
    ledger: &Ledger,
    fault: Fault,
    fut: impl Future<Output = tenancy::Result<T>>,
) -> Ended<T> {
    let ended = match fault {
        Fault::None => Ended::Done(fut.await),
        Fault::Timeout(d) => match tokio::time::timeout(d, fut).await {
            Ok(r) => Ended::Done(r),
            Err(_) => Ended::Cancelled,
        },
        Fault::Select(d) => {
            tokio::select! {
                r = fut => Ended::Done(r),
                () = tokio::time::sleep(d) => Ended::Cancelled,
            }
        }
        Fault::AfterPending(k) => match crate::common::cancel_at(k as usize, fut).await {
            Some(r) => Ended::Done(r),
            None => Ended::Cancelled,
        },
        Fault::RightAfterAcquire => match (DropAfterAcquire { fut: Box::pin(fut) }).await {
            Some(r) => Ended::Done(r),
            None => Ended::Cancelled,
        },
    };
    if matches!(ended, Ended::Cancelled) {
        ledger.count(fault.name());
    }
    ended
}

thread_local! {
    /// Connections the pools of this thread handed out (new or idle). Each soak runs on a
    /// current-thread runtime of its own, so while one of its futures is being polled, a
    /// change here was made by that future.
    static ACQUIRED: Cell<u64> = const { Cell::new(0) };
}

/// Called by the world's pool hooks whenever a connection is handed out.
pub fn note_acquired() {
    ACQUIRED.with(|a| a.set(a.get() + 1));
}

/// Drops a future at the first `Pending` of a poll during which it acquired a connection.
struct DropAfterAcquire<F> {
    fut: Pin<Box<F>>,
}

impl<F: Future> Future for DropAfterAcquire<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let before = ACQUIRED.with(Cell::get);
        match self.fut.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending if ACQUIRED.with(Cell::get) != before => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// An error after which the statement may or may not have taken effect: the connection broke
/// (a terminated backend, through PgBouncer too) somewhere between sending and the reply.
/// Errors the server or the library gave before doing anything are definite.
pub fn in_doubt(e: &Error) -> bool {
    match e {
        Error::Database(sqlx::Error::Database(d)) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57") || c.starts_with("XX")),
        Error::Database(sqlx::Error::PoolTimedOut | sqlx::Error::RowNotFound) => false,
        Error::Database(_) => true,
        _ => false,
    }
}

/// The side task: for every request the tasks send (at random operations), terminates a
/// random backend of the test database from a connection of its own, so that it dies under
/// whatever is in flight; ends when every task has ended.
pub async fn terminator(
    db: &TestDb,
    mut rng: Rng,
    ledger: &Ledger,
    mut requests: UnboundedReceiver<()>,
) {
    let mut conn = db.connect().await;
    while requests.recv().await.is_some() {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() \
             AND backend_type = 'client backend' ORDER BY pid",
        )
        .bind(&db.name)
        .fetch_all(&mut conn)
        .await
        .expect("list backends");
        if pids.is_empty() {
            continue;
        }
        let pid = pids[rng.below(pids.len())];
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&mut conn)
            .await
            .expect("pg_terminate_backend");
        if killed {
            ledger.count("fault.backend_terminated");
        }
    }
}
