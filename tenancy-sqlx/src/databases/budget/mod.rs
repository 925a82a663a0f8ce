//! Connections to own-database tenants under a connection budget per server.
//!
//! A server hosts many tenant databases, and a PostgreSQL connection serves one database for
//! its whole life, so each tenant needs connections of its own. [`ServerBudget`] keeps them:
//! per tenant, the idle connections to its database and the count of those at work; per
//! server, the count of open connections, which never exceeds the budget.
//!
//! Why not one sqlx `Pool` per tenant: a `Pool` opens connections lazily, up to a maximum fixed
//! when it is built, and cannot ask anyone before it opens one. Per-pool maxima that sum to the
//! budget would leave most of it unusable (idle tenants' shares); a semaphore taken around each
//! acquire would count work, not open connections (an idle pooled connection holds none). So
//! this module holds its own idle lists, and the rule is simple to check: every `PgConnection`
//! it creates is owned, from before its TCP connect until after its backend has exited,
//! together with a [`Slot`], and at most `budget` slots exist.
//!
//! How a connection is got ([`ServerBudget::acquire`]), in order:
//! 1. one of the tenant's idle connections;
//! 2. a new one, if the tenant is below its share (`per_database`) and the budget has room;
//! 3. a new one in place of an idle connection of another tenant: the least recently used
//!    tenant with no work in progress loses all its idle connections (the pool is evicted);
//!    when every tenant with idle connections has work, the least recently used one loses one;
//! 4. otherwise wait for a release, at most until `acquire_timeout` has passed since the call,
//!    then [`BudgetError::ServerBusy`] (or [`BudgetError::TenantBusy`] at the tenant's share).
//!
//! Connections are found by tenant id only: a tenant's idle list holds connections to the
//! database recorded for it, opened with `PgConnectOptions::database` on the server's options
//! (never a URL assembled from text), so no task is ever handed another tenant's connection.
//!
//! A closed connection frees its slot only when the server has let it go: tenancy asks the
//! backend to exit (`pg_terminate_backend(pg_backend_pid())`) and waits for the server to hang
//! up, which PostgreSQL does after the backend left `pg_stat_activity` and `max_connections`.
//! (sqlx's `close` sends `Terminate` and returns at once; the backend's exit would then race the
//! next connection's start, and the server could briefly count one more than the budget.) The
//! price: each closing logs "terminating connection due to administrator command" at the
//! server, and closing waits one round trip.
//!
//! Cancellation: a connection is opened in a task of its own, so a caller dropped while it
//! connects leaves a connection that joins the tenant's idle list instead of a half-made one; a
//! [`Lease`] dropped without [`Lease::release`] (its state unknown: a statement or transaction
//! may be in flight) is closed, never reused.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tenancy_core::TenantId;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::name::DatabaseName;

#[cfg(test)]
mod tests;

/// How many connections, and how long to wait for one.
#[derive(Debug, Clone)]
pub(crate) struct BudgetConfig {
    /// The most connections open to the server at once, whatever their database.
    pub(crate) budget: usize,
    /// The most connections one tenant's database may have (idle and at work), so that one
    /// tenant's burst leaves room for the others.
    pub(crate) per_database: usize,
    /// How long [`ServerBudget::acquire`] waits, from its call, for a connection.
    pub(crate) acquire_timeout: Duration,
    /// How long opening one connection may take.
    pub(crate) connect_timeout: Duration,
    /// How long closing one connection may take before its slot is given up anyway.
    pub(crate) close_timeout: Duration,
}

impl BudgetConfig {
    /// A budget of `budget` connections, each tenant allowed up to `per_database` of them.
    pub(crate) fn new(budget: usize, per_database: usize) -> Self {
        Self {
            budget: budget.max(1),
            per_database: per_database.clamp(1, budget.max(1)),
            acquire_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
        }
    }

    /// Sets [`BudgetConfig::acquire_timeout`].
    pub(crate) fn acquire_timeout(mut self, wait: Duration) -> Self {
        self.acquire_timeout = wait;
        self
    }
}

/// Why no connection was handed out.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BudgetError {
    /// Every connection of the server's budget stayed at work (or closing) for the whole wait.
    #[error(
        "server {server}: all {budget} connections of its budget stayed busy for {waited:?}; \
         retry later, or raise the budget"
    )]
    ServerBusy {
        /// The server's key.
        server: String,
        /// Its budget.
        budget: usize,
        /// How long the caller waited.
        waited: Duration,
    },
    /// The tenant had all its share of connections at work for the whole wait.
    #[error(
        "server {server}: tenant {tenant} had all {per_database} of its connections busy for \
         {waited:?}; retry later"
    )]
    TenantBusy {
        /// The server's key.
        server: String,
        /// The tenant.
        tenant: TenantId,
        /// Its share.
        per_database: usize,
        /// How long the caller waited.
        waited: Duration,
    },
    /// The database connected to says it is not the tenant's (its `tenancy.tenants` row names
    /// another tenant, or none): the connection was closed unused.
    #[error("database {database} does not belong to tenant {tenant}: it says it holds {found}")]
    WrongDatabase {
        /// The tenant whose database was asked for.
        tenant: TenantId,
        /// The database connected to.
        database: DatabaseName,
        /// What its identity row says.
        found: String,
    },
    /// Opening a connection to the tenant's database failed.
    #[error("cannot connect to database {database} on server {server}: {cause}")]
    Connect {
        /// The server's key.
        server: String,
        /// The tenant's database.
        database: DatabaseName,
        /// What the server or the network said.
        cause: String,
    },
}

/// The connections of one PostgreSQL server's tenant databases, under its budget. Cheap to
/// clone (one shared state).
#[derive(Clone)]
pub(crate) struct ServerBudget {
    inner: Arc<Inner>,
}

struct Inner {
    /// The application's name for the server (never its URL: that may hold credentials).
    server: String,
    /// How to reach the server (host, port, user, password, TLS), from the application's map;
    /// each connection sets its database on a copy.
    options: PgConnectOptions,
    cfg: BudgetConfig,
    /// Slots: connections open, opening or closing. Changed only by [`Slot`].
    open: AtomicUsize,
    state: Mutex<State>,
    /// Woken whenever a connection is released, a slot freed or a tenant's work ends.
    changed: Notify,
}

#[derive(Default)]
struct State {
    /// A logical clock for least-recently-used order.
    tick: u64,
    tenants: HashMap<TenantId, TenantConns>,
    /// Per tenant of a server home, its leases out of the home's connections (which every
    /// tenant there shares under one key): at most `per_database` each, so that one tenant's
    /// burst leaves the home's other tenants room.
    home_shares: HashMap<TenantId, usize>,
}

/// One tenant's connections: what the issue calls its pool.
struct TenantConns {
    database: DatabaseName,
    /// How many connections it may hold at once: `per_database` for a tenant's own database,
    /// the whole budget for a server home's (shared by every tenant there).
    cap: usize,
    /// Bumped when the registry names another database for the tenant: leases of an older
    /// generation are closed on release instead of joining `idle`.
    generation: u64,
    idle: Vec<Pooled>,
    /// Leases out and connections being opened for the tenant.
    busy: usize,
    last_used: u64,
}

/// A connection and the slot it occupies. Never dropped while `Inner::state` is locked: the
/// connection must be closed (see [`close_strictly`]) before its slot is freed.
struct Pooled {
    conn: PgConnection,
    slot: Slot,
    /// On a server home's connection: the tenants this connection found listed there (see
    /// [`Lease::listed`]), at most [`LISTED_KEPT`].
    listed: Vec<TenantId>,
}

/// How many tenants a home connection remembers having found listed; then it asks again.
const LISTED_KEPT: usize = 1024;

/// One unit of the budget. Created only by [`Inner::reserve`], which refuses past the budget;
/// freed on drop.
struct Slot {
    inner: Weak<Inner>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.open.fetch_sub(1, Ordering::AcqRel);
            inner.changed.notify_waiters();
        }
    }
}

/// What the state allows a caller to do next.
enum Plan {
    Reuse(Pooled, u64),
    /// Open a connection: in a free slot, or in the slot of `evict[0]` once it is closed.
    Open {
        slot: Option<Slot>,
        evict: Vec<Pooled>,
        generation: u64,
    },
    Wait {
        tenant_full: bool,
    },
}

impl ServerBudget {
    /// The budget of the server the application calls `server`, reached with `options` (whose
    /// database is ignored: each tenant's is set on a copy).
    pub(crate) fn new(
        server: impl Into<String>,
        options: PgConnectOptions,
        cfg: BudgetConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                server: server.into(),
                options,
                cfg,
                open: AtomicUsize::new(0),
                state: Mutex::new(State::default()),
                changed: Notify::new(),
            }),
        }
    }

    /// A connection to `database`, the database the registry recorded for `tenant`. Waits at
    /// most the configured `acquire_timeout` from this call.
    ///
    /// # Errors
    /// [`BudgetError::ServerBusy`] or [`BudgetError::TenantBusy`] after the wait;
    /// [`BudgetError::Connect`] when a new connection could not be opened.
    #[cfg(test)]
    pub(crate) async fn acquire(
        &self,
        tenant: TenantId,
        database: &DatabaseName,
    ) -> Result<Lease, BudgetError> {
        self.acquire_in(tenant, database, DatabaseKind::Own).await
    }

    /// [`ServerBudget::acquire`] for a database of `kind`: each new connection is checked to be
    /// one the tenant's rows live in as `kind` says (see [`identity`]).
    pub(crate) async fn acquire_in(
        &self,
        tenant: TenantId,
        database: &DatabaseName,
        kind: DatabaseKind,
    ) -> Result<Lease, BudgetError> {
        self.acquire_from(tenant, database, kind, Instant::now())
            .await
    }

    /// A connection of server home `database`'s, kept under `key` for every tenant there,
    /// for `member`: within `member`'s share of the home's connections (`per_database`, see
    /// [`State::home_shares`]), held until the lease ends; without a member (work across the
    /// home's tenants, a report's part), out of no one's share. Waits at most
    /// `acquire_timeout` from this call, for the share and the connection together.
    ///
    /// # Errors
    /// As [`ServerBudget::acquire_in`], with the home's key full reported as
    /// [`BudgetError::ServerBusy`] (the server's budget is the key's cap);
    /// [`BudgetError::TenantBusy`] naming `member` when it held its whole share for the wait.
    pub(crate) async fn acquire_in_home(
        &self,
        key: TenantId,
        member: Option<TenantId>,
        database: &DatabaseName,
    ) -> Result<Lease, BudgetError> {
        let started = Instant::now();
        let deadline = started + self.inner.cfg.acquire_timeout;
        let share = match member {
            None => None,
            Some(member) => loop {
                let notified = self.inner.changed.notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                if let Some(share) = Share::take(&self.inner, member) {
                    break Some(share);
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return Err(self.busy(member, true, started.elapsed()));
                }
            },
        };
        let mut lease = self
            .acquire_from(key, database, DatabaseKind::HomePool, started)
            .await
            .map_err(|e| match e {
                BudgetError::TenantBusy { server, waited, .. } => BudgetError::ServerBusy {
                    server,
                    budget: self.inner.cfg.budget,
                    waited,
                },
                other => other,
            })?;
        lease.share = share;
        Ok(lease)
    }

    async fn acquire_from(
        &self,
        tenant: TenantId,
        database: &DatabaseName,
        kind: DatabaseKind,
        started: Instant,
    ) -> Result<Lease, BudgetError> {
        let deadline = started + self.inner.cfg.acquire_timeout;
        loop {
            // Registered before the state is read, so a release between the read and the wait
            // still wakes this caller.
            let notified = self.inner.changed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let cap = match kind {
                DatabaseKind::HomePool => self.inner.cfg.budget,
                _ => self.inner.cfg.per_database,
            };
            let tenant_full = match self.inner.plan(tenant, database, cap) {
                Plan::Reuse(pooled, generation) => {
                    return Ok(Lease::new(&self.inner, tenant, generation, pooled));
                }
                Plan::Open {
                    slot,
                    evict,
                    generation,
                } => {
                    return self
                        .open(tenant, (database, kind), generation, slot, evict, deadline)
                        .await;
                }
                Plan::Wait { tenant_full } => tenant_full,
            };
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(self.busy(tenant, tenant_full, started.elapsed()));
            }
        }
    }

    fn busy(&self, tenant: TenantId, tenant_full: bool, waited: Duration) -> BudgetError {
        let server = self.inner.server.clone();
        if tenant_full {
            BudgetError::TenantBusy {
                server,
                tenant,
                per_database: self.inner.cfg.per_database,
                waited,
            }
        } else {
            BudgetError::ServerBusy {
                server,
                budget: self.inner.cfg.budget,
                waited,
            }
        }
    }

    /// Opens a connection for `tenant` in a task of its own (see the module's cancellation
    /// note), after closing the evicted connections whose slot it takes.
    async fn open(
        &self,
        tenant: TenantId,
        (database, kind): (&DatabaseName, DatabaseKind),
        generation: u64,
        slot: Option<Slot>,
        mut evict: Vec<Pooled>,
        deadline: Instant,
    ) -> Result<Lease, BudgetError> {
        let (tx, rx) = oneshot::channel::<Result<Lease, BudgetError>>();
        let inner = self.inner.clone();
        let target = database.clone();
        tokio::spawn(async move {
            let database = target;
            let close_timeout = inner.cfg.close_timeout;
            let slot = match slot {
                Some(slot) => slot,
                None => {
                    let first = evict.remove(0);
                    close_strictly(first.conn, close_timeout).await;
                    first.slot
                }
            };
            for other in evict {
                tokio::spawn(close_pooled(other, close_timeout));
            }
            let options = inner.options.clone().database(database.as_str());
            let opened = tokio::time::timeout(
                inner.cfg.connect_timeout,
                PgConnection::connect_with(&options),
            )
            .await;
            let cause = match opened {
                Ok(Ok(mut conn)) => {
                    // The database must say it is the tenant's before anything of the
                    // tenant's runs on it: a renamed or swapped database, or a registry row
                    // naming another tenant's, is refused here, once per connection.
                    let checked = identity(&mut conn, tenant, (&inner.server, &database), kind);
                    if let Err(e) = checked.await {
                        close_strictly(conn, close_timeout).await;
                        drop(slot);
                        inner.finish_work(tenant);
                        let _ = tx.send(Err(e));
                        return;
                    }
                    let pooled = Pooled {
                        conn,
                        slot,
                        listed: Vec::new(),
                    };
                    let lease = Lease::new(&inner, tenant, generation, pooled);
                    // The caller gave up meanwhile: the new connection is clean (nothing ran
                    // on it), so it joins the tenant's idle list.
                    if let Err(Ok(lease)) = tx.send(Ok(lease)) {
                        lease.release();
                    }
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {:?}", inner.cfg.connect_timeout),
            };
            // Nothing was opened: free the slot now.
            drop(slot);
            inner.finish_work(tenant);
            let _ = tx.send(Err(BudgetError::Connect {
                server: inner.server.clone(),
                database,
                cause,
            }));
        });
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result,
            // The opening task panicked: its slot and work count were released as it unwound.
            Ok(Err(_)) => Err(BudgetError::Connect {
                server: self.inner.server.clone(),
                database: database.clone(),
                cause: "the task opening the connection failed".to_owned(),
            }),
            Err(_) => Err(BudgetError::ServerBusy {
                server: self.inner.server.clone(),
                budget: self.inner.cfg.budget,
                waited: self.inner.cfg.acquire_timeout,
            }),
        }
    }

    /// Closes every idle connection (waiting for the server to let each go). Leases out keep
    /// theirs until they end.
    pub(crate) async fn close_idle(&self) {
        let idle: Vec<Pooled> = {
            let mut state = self.inner.lock();
            let mut idle = Vec::new();
            for conns in state.tenants.values_mut() {
                idle.append(&mut conns.idle);
            }
            state.tenants.retain(|_, c| c.busy > 0);
            idle
        };
        let timeout = self.inner.cfg.close_timeout;
        futures_util::future::join_all(idle.into_iter().map(|p| close_pooled(p, timeout))).await;
    }

    /// Closes `tenant`'s idle connections and forgets it (its database is about to be dropped,
    /// or was): leases out are closed when they end.
    pub(crate) async fn forget(&self, tenant: TenantId) {
        let idle = {
            let mut state = self.inner.lock();
            match state.tenants.get_mut(&tenant) {
                Some(conns) => {
                    // Leases out belong to an older generation now: closed on release.
                    conns.generation += 1;
                    let idle = std::mem::take(&mut conns.idle);
                    if conns.busy == 0 {
                        state.tenants.remove(&tenant);
                    }
                    idle
                }
                None => Vec::new(),
            }
        };
        let timeout = self.inner.cfg.close_timeout;
        futures_util::future::join_all(idle.into_iter().map(|p| close_pooled(p, timeout))).await;
    }

    /// The application's name for the server.
    pub(crate) fn server(&self) -> &str {
        &self.inner.server
    }

    /// Connections open, opening or closing on this server (the slots in use).
    #[cfg(test)]
    pub(crate) fn open_connections(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot, if the budget has room.
    fn reserve(self: &Arc<Self>) -> Option<Slot> {
        let budget = self.cfg.budget;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < budget).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot {
                inner: Arc::downgrade(self),
            })
    }

    fn plan(self: &Arc<Self>, tenant: TenantId, database: &DatabaseName, cap: usize) -> Plan {
        let mut state = self.lock();
        state.tick += 1;
        let now = state.tick;
        let mut stale = Vec::new();
        let conns = state.tenants.entry(tenant).or_insert_with(|| TenantConns {
            database: database.clone(),
            cap,
            generation: 0,
            idle: Vec::new(),
            busy: 0,
            last_used: now,
        });
        if conns.database != *database {
            // The registry now records another database for the tenant (it was moved): its
            // connections to the old one must not serve it.
            conns.database = database.clone();
            conns.generation += 1;
            stale.append(&mut conns.idle);
        }
        conns.last_used = now;
        let generation = conns.generation;
        let plan = if let Some(pooled) = conns.idle.pop() {
            conns.busy += 1;
            Plan::Reuse(pooled, generation)
        } else if conns.busy >= conns.cap {
            Plan::Wait { tenant_full: true }
        } else if let Some(slot) = self.reserve() {
            conns.busy += 1;
            Plan::Open {
                slot: Some(slot),
                evict: Vec::new(),
                generation,
            }
        } else if let Some(evict) = Self::evict(&mut state, tenant) {
            let conns = state.tenants.get_mut(&tenant).expect("entry made above");
            conns.busy += 1;
            Plan::Open {
                slot: None,
                evict,
                generation,
            }
        } else {
            // Nothing to take: forget an entry that holds nothing, so the map stays bounded by
            // the tenants that hold connections.
            if let Some(c) = state.tenants.get(&tenant)
                && c.busy == 0
                && c.idle.is_empty()
            {
                state.tenants.remove(&tenant);
            }
            Plan::Wait { tenant_full: false }
        };
        drop(state);
        // Outside the lock: closing frees slots, and a slot's drop takes no lock but wakes
        // waiters, who take it.
        let timeout = self.cfg.close_timeout;
        for pooled in stale {
            tokio::spawn(close_pooled(pooled, timeout));
        }
        plan
    }

    /// Idle connections to close so that `tenant` can open one: all of the least recently used
    /// tenant that has idle connections and no work (its pool is evicted), else one of the least
    /// recently used tenant that has idle connections. `None` when no tenant has one.
    fn evict(state: &mut State, tenant: TenantId) -> Option<Vec<Pooled>> {
        let (&victim, conns) = state
            .tenants
            .iter()
            .filter(|(t, c)| **t != tenant && !c.idle.is_empty())
            .min_by_key(|(_, c)| (c.busy > 0, c.last_used))?;
        if conns.busy == 0 {
            let conns = state.tenants.remove(&victim)?;
            Some(conns.idle)
        } else {
            let conns = state.tenants.get_mut(&victim)?;
            // The oldest idle connection: the list is used from its end.
            Some(vec![conns.idle.remove(0)])
        }
    }

    /// A lease or an opening for `tenant` ended without returning a connection to its list.
    fn finish_work(&self, tenant: TenantId) {
        let mut state = self.lock();
        if let Some(conns) = state.tenants.get_mut(&tenant) {
            conns.busy = conns.busy.saturating_sub(1);
            if conns.busy == 0 && conns.idle.is_empty() {
                state.tenants.remove(&tenant);
            }
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// Returns a lease's connection to its tenant's idle list; gives it back if the tenant's
    /// database changed meanwhile.
    fn park(&self, tenant: TenantId, generation: u64, pooled: Pooled) -> Option<Pooled> {
        let mut state = self.lock();
        state.tick += 1;
        let now = state.tick;
        let back = match state.tenants.get_mut(&tenant) {
            Some(conns) => {
                conns.busy = conns.busy.saturating_sub(1);
                if conns.generation == generation {
                    conns.idle.push(pooled);
                    conns.last_used = now;
                    None
                } else {
                    Some(pooled)
                }
            }
            // Cannot happen while the lease counted as work; close rather than guess.
            None => Some(pooled),
        };
        drop(state);
        self.changed.notify_waiters();
        back
    }
}

/// A connection to one tenant's database, on loan from its [`ServerBudget`]. Derefs to the
/// `PgConnection`.
///
/// [`Lease::release`] returns it for reuse; dropping it instead closes it (its state is then
/// unknown: a cancelled statement or an open transaction), freeing its slot once the server has
/// let it go.
pub(crate) struct Lease {
    inner: Arc<Inner>,
    tenant: TenantId,
    generation: u64,
    pooled: Option<Pooled>,
    /// On a server home's connection: the share of the tenant it serves, given back when the
    /// lease ends.
    share: Option<Share>,
}

/// One unit of a home tenant's share of its home's connections (see [`State::home_shares`]).
/// Made only by [`Share::take`], within the share; given back on drop.
struct Share {
    inner: Weak<Inner>,
    tenant: TenantId,
}

impl Share {
    fn take(inner: &Arc<Inner>, tenant: TenantId) -> Option<Self> {
        let mut state = inner.lock();
        let held = state.home_shares.entry(tenant).or_default();
        if *held >= inner.cfg.per_database {
            return None;
        }
        *held += 1;
        Some(Self {
            inner: Arc::downgrade(inner),
            tenant,
        })
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            let mut state = inner.lock();
            if let Some(held) = state.home_shares.get_mut(&self.tenant) {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    state.home_shares.remove(&self.tenant);
                }
            }
            drop(state);
            inner.changed.notify_waiters();
        }
    }
}

impl Lease {
    fn new(inner: &Arc<Inner>, tenant: TenantId, generation: u64, pooled: Pooled) -> Self {
        Self {
            inner: inner.clone(),
            tenant,
            generation,
            pooled: Some(pooled),
            share: None,
        }
    }

    /// The tenant this connection serves.
    #[cfg(test)]
    pub(crate) fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// Whether this connection (a server home's) found `tenant` listed there before.
    pub(crate) fn listed(&self, tenant: TenantId) -> bool {
        self.pooled
            .as_ref()
            .is_some_and(|p| p.listed.contains(&tenant))
    }

    /// Records that this connection found `tenant` listed in its home.
    pub(crate) fn mark_listed(&mut self, tenant: TenantId) {
        if let Some(p) = self.pooled.as_mut() {
            if p.listed.len() >= LISTED_KEPT {
                p.listed.clear();
            }
            p.listed.push(tenant);
        }
    }

    /// Returns the connection for reuse under the same key (the same tenant's, or for a server
    /// home, any tenant's there). Only for a connection left as it was found: no transaction
    /// open, no statement in flight, no session setting changed.
    pub(crate) fn release(mut self) {
        if let Some(pooled) = self.pooled.take()
            && let Some(pooled) = self.inner.park(self.tenant, self.generation, pooled)
        {
            spawn_close(pooled, self.inner.cfg.close_timeout);
        }
    }
}

impl Deref for Lease {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self
            .pooled
            .as_ref()
            .expect("a lease holds its connection")
            .conn
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self
            .pooled
            .as_mut()
            .expect("a lease holds its connection")
            .conn
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(pooled) = self.pooled.take() {
            self.inner.finish_work(self.tenant);
            spawn_close(pooled, self.inner.cfg.close_timeout);
        }
    }
}

/// What a database tenancy connects a tenant to is to the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DatabaseKind {
    /// The tenant's own: its `tenancy.tenants` holds the tenant alone.
    Own,
    /// Its server's home database, for the shared tables there: its `tenancy.tenants` lists
    /// the tenant among others and says whose home it is (see [`SERVER_HOME_MARK`]).
    ServerHome,
    /// A server home's connections, kept for every tenant there under one key: checked to be
    /// that server's home when opened; each tenant is checked to be listed there when a
    /// connection first serves it ([`Lease::listed`]).
    HomePool,
}

/// What the comment on a server home's `tenancy.tenants` starts with, followed by the key of
/// the server it is the home of. In the table itself, so that it goes wherever the table goes
/// and no other database has it (no template or own database comments the table).
pub(crate) const SERVER_HOME_MARK: &str = "tenancy server home of ";

/// The tenants `tenancy.tenants` lists for an identity check (every row of an own database,
/// where there is at most one; the tenant's row alone in a server home, which lists many), and
/// the table's comment (a server home's mark).
const SQL_IDENTITY: &str = "SELECT ARRAY(SELECT id FROM tenancy.tenants \
                                 WHERE $1 OR id = $2 ORDER BY id LIMIT 2), \
                           pg_catalog.obj_description('tenancy.tenants'::regclass, 'pg_class')";

/// Checks that the database `conn` reached is one `tenant`'s rows live in as `kind` says:
/// its own (its `tenancy.tenants` holds exactly one row, with the tenant's id, and it is no
/// server home; see `provision`), or the home of `server` listing the tenant; then adds the
/// write fence if the database predates it.
pub(crate) async fn identity(
    conn: &mut PgConnection,
    tenant: TenantId,
    (server, database): (&str, &DatabaseName),
    kind: DatabaseKind,
) -> Result<(), BudgetError> {
    // A new connection, outside any transaction (see `crate::sql::in_own_tx`).
    let found: Result<(Vec<uuid::Uuid>, Option<String>), sqlx::Error> =
        crate::sql::in_own_tx(conn, async |c| {
            sqlx::query_as(SQL_IDENTITY)
                .bind(kind == DatabaseKind::Own)
                .bind(tenant.as_uuid())
                .persistent(false)
                .fetch_one(c)
                .await
        })
        .await;
    let found = found.map(|(ids, comment)| {
        let home = comment.and_then(|c| c.strip_prefix(SERVER_HOME_MARK).map(str::to_owned));
        (ids, home)
    });
    if kind == DatabaseKind::HomePool {
        return match found {
            // A home made by an older version (or whose fence lost a function) gets the
            // home's fence on first use.
            Ok((_, Some(home))) if home == server => {
                match crate::databases::provision::ensure_fence(
                    conn,
                    crate::databases::home::HOME_FENCE_DDL,
                )
                .await
                {
                    Ok(_) => Ok(()),
                    Err(e) => Err(BudgetError::Connect {
                        server: server.to_owned(),
                        database: database.clone(),
                        cause: format!("adding the write fence to the server home failed: {e}"),
                    }),
                }
            }
            Ok((_, Some(home))) => Err(BudgetError::WrongDatabase {
                tenant,
                database: database.clone(),
                found: format!("the home database of server {home}"),
            }),
            Ok((_, None)) => Err(BudgetError::WrongDatabase {
                tenant,
                database: database.clone(),
                found: "no server's home database".to_owned(),
            }),
            Err(e) => Err(BudgetError::WrongDatabase {
                tenant,
                database: database.clone(),
                found: format!("no tenancy.tenants it can read ({e})"),
            }),
        };
    }
    let found = match found {
        Ok((ids, home))
            if ids == [tenant.as_uuid()]
                && match kind {
                    DatabaseKind::Own => home.is_none(),
                    DatabaseKind::ServerHome => home.as_deref() == Some(server),
                    DatabaseKind::HomePool => unreachable!("checked below"),
                } =>
        {
            // A database made by an older version gets its write fence on first use.
            let fence = match kind {
                DatabaseKind::Own => crate::databases::provision::FENCE_DDL,
                _ => crate::databases::home::HOME_FENCE_DDL,
            };
            return match crate::databases::provision::ensure_fence(conn, fence).await {
                Ok(_) => Ok(()),
                Err(e) => Err(BudgetError::Connect {
                    server: server.to_owned(),
                    database: database.clone(),
                    cause: format!("adding the write fence to the tenant database failed: {e}"),
                }),
            };
        }
        Ok((_, Some(home))) if kind == DatabaseKind::Own => {
            format!("the home database of server {home}")
        }
        Ok((_, home)) if kind == DatabaseKind::ServerHome && home.as_deref() != Some(server) => {
            match home {
                Some(home) => format!("the home database of server {home}"),
                None => "no server's home database".to_owned(),
            }
        }
        Ok((_, Some(home))) => {
            format!("the home database of server {home}, not listing the tenant")
        }
        Ok((ids, _)) if ids.is_empty() => "no tenant".to_owned(),
        Ok((ids, _)) => ids
            .iter()
            .map(uuid::Uuid::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => format!("no tenancy.tenants row it can read ({e})"),
    };
    Err(BudgetError::WrongDatabase {
        tenant,
        database: database.clone(),
        found,
    })
}

/// Closes `pooled` in the background; its slot is freed when the server has let it go.
fn spawn_close(pooled: Pooled, timeout: Duration) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(close_pooled(pooled, timeout));
        }
        // No runtime to wait in (a lease dropped outside one): the socket closes now and the
        // backend exits on its own moments later.
        Err(_) => drop(pooled),
    }
}

async fn close_pooled(pooled: Pooled, timeout: Duration) {
    let Pooled { conn, slot, .. } = pooled;
    close_strictly(conn, timeout).await;
    drop(slot);
}

/// Ends the connection's backend and returns once the server has hung up, which PostgreSQL does
/// after the backend left `pg_stat_activity` (the process-exit hooks run before the socket is
/// closed). Bounded by `timeout`.
async fn close_strictly(mut conn: PgConnection, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, async {
        let asked = sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())")
            .persistent(false)
            .execute(&mut conn)
            .await;
        match asked {
            // The backend answered instead of exiting (a role that may not signal itself):
            // the ordinary goodbye.
            Ok(_) => {
                let _ = conn.close().await;
            }
            // It exited (or the connection was already broken): wait for the hang-up. A ping
            // on a connection whose backend is gone fails only once the socket is closed.
            Err(_) => {
                let _ = conn.ping().await;
            }
        }
    })
    .await;
}
