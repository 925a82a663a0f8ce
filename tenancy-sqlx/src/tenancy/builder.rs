//! [`TenancyBuilder`]: the options of a [`Tenancy`], and connecting with them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::Handle;
use crate::checked::Checked;
use crate::conn::SchemaEpoch;
use crate::databases::Databases;
use crate::databases::budget::BudgetConfig;
use crate::registry::cache::ResolveCache;
use crate::registry::notify::Listener;
use crate::revoked::Revocations;
use crate::runtime::Runtime;
use crate::server::probe;
use crate::{Migrations, Result, Tenancy, registry};

/// How repository statements are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StatementMode {
    /// Named statements, prepared once per connection and cached by sqlx. The fastest; needs
    /// a direct connection, or a pooler that tracks prepared statements (PgBouncer >= 1.21
    /// with `max_prepared_statements`).
    #[default]
    Cached,
    /// Unnamed statements, prepared and executed per call. For PgBouncer in transaction mode
    /// without prepared-statement tracking (Debian's 1.18): named statements would land on
    /// server connections that do not have them. Costs a second round trip per statement.
    Unnamed,
}

/// Options for [`Tenancy`].
#[derive(Debug, Clone)]
#[must_use]
pub struct TenancyBuilder {
    max_connections: u32,
    cache_ttl: Duration,
    cache_capacity: usize,
    tenant_migrations: Migrations,
    statement_mode: StatementMode,
    statement_cache_capacity: usize,
    test_before_acquire: bool,
    lanes: usize,
    admin_connections: u32,
    report_connections: usize,
    row_level_security: bool,
    acquire_timeout: Duration,
    install_registry: bool,
    listen: bool,
    notify_url: Option<String>,
    pub(crate) superuser: SuperuserConfig,
    global_tables: Vec<String>,
    database_budget: usize,
    per_database: usize,
    /// Servers other than the primary one, by key (keys checked at connect).
    servers: Vec<(String, PgConnectOptions)>,
    /// Whether connecting drops orphaned tenant databases (off for `Tenancy::install`).
    pub(crate) cleanup_orphans: bool,
}

/// Connections open at once to own-database tenants' databases on a server, by default: see
/// [`TenancyBuilder::database_budget`].
pub const DEFAULT_DATABASE_BUDGET: usize = 20;

/// Connections one own-database tenant may hold at once, by default.
pub const DEFAULT_PER_DATABASE: usize = 4;

/// How long [`TenancyBuilder::connect`] waits for the server, and each borrow for a connection,
/// by default: see [`TenancyBuilder::acquire_timeout`].
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Statements each pooled connection keeps prepared, for [`TenancyBuilder::connect`].
///
/// sqlx's default (100) thrashes as soon as the statements of the tenants one connection serves
/// outnumber it, which own-schema tenants do quickly: each (tenant, statement) pair is its own
/// prepared statement. Measured here, lookups on one connection over 1,000 own-schema tenants
/// run at 0.57x of the shared-table floor with 100 and at 0.96x with 1,100, for 24.7 MiB of
/// backend memory in all (most of it the catalog caches of 1,000 tables, which any schema-per-
/// tenant design pays; about 3 KiB per cached statement).
pub const DEFAULT_STATEMENT_CACHE: usize = 1_024;

impl Default for TenancyBuilder {
    fn default() -> Self {
        Self {
            max_connections: 10,
            cache_ttl: Duration::from_secs(30),
            cache_capacity: 10_000,
            tenant_migrations: Migrations::empty(),
            statement_mode: StatementMode::Cached,
            statement_cache_capacity: DEFAULT_STATEMENT_CACHE,
            test_before_acquire: true,
            lanes: 1,
            admin_connections: 2,
            report_connections: crate::DEFAULT_REPORT_CONCURRENCY,
            row_level_security: false,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            install_registry: true,
            listen: true,
            notify_url: None,
            global_tables: Vec::new(),
            superuser: SuperuserConfig::default(),
            database_budget: DEFAULT_DATABASE_BUDGET,
            per_database: DEFAULT_PER_DATABASE,
            servers: Vec::new(),
            cleanup_orphans: true,
        }
    }
}

impl TenancyBuilder {
    /// Pool size for [`TenancyBuilder::connect`]. Default 10.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// How long a resolved tenant is served from memory. Default 30 s; zero disables the cache.
    ///
    /// A tenant suspended, deleted or purged through this handle is refused at once; through
    /// another process or handle, as soon as its notification arrives (see
    /// [`TenancyBuilder::listen_for_changes`]). This is the bound when notifications are off or
    /// cannot be received.
    ///
    /// Raw SQL keeps the catalog's verdict on the names a statement uses (global tables,
    /// built-ins not shadowed) as long.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// How many lookups (by id, slug or host) the cache holds. Default 10,000.
    pub fn cache_capacity(mut self, n: usize) -> Self {
        self.cache_capacity = n;
        self
    }

    /// How repository statements are sent (default [`StatementMode::Cached`]; use
    /// [`StatementMode::Unnamed`] behind PgBouncer in transaction mode). Registry, lifecycle
    /// and migration statements are always unnamed.
    pub fn statement_mode(mut self, mode: StatementMode) -> Self {
        self.statement_mode = mode;
        self
    }

    /// How many prepared statements each connection of the pool [`TenancyBuilder::connect`]
    /// builds keeps (default [`DEFAULT_STATEMENT_CACHE`]). Size it to the statements the
    /// tenants served by one connection use, within the server memory you grant a connection.
    /// With [`TenancyBuilder::from_pool`], set it on your own `PgConnectOptions` instead.
    pub fn statement_cache_capacity(mut self, n: usize) -> Self {
        self.statement_cache_capacity = n;
        self
    }

    /// Whether the pool [`TenancyBuilder::connect`] builds pings a connection before lending it
    /// (default `true`, as sqlx). The ping is a round trip per borrow: measured here, it costs
    /// a one-statement lookup about a quarter of its throughput. Without it, a connection whose
    /// server backend died (a restart, `pg_terminate_backend`) fails the first statement sent on
    /// it instead of being replaced; turn it off where the application retries such errors.
    ///
    /// Units of work that begin with a transaction of their own (every statement with
    /// [`TenancyBuilder::row_level_security`], a [`TenantTx`](crate::TenantTx), every unit in
    /// [`StatementMode::Unnamed`]) are never pinged, whatever this says: their `BEGIN` checks the
    /// connection, and is sent again on a connection the pool replaced (pinged, if this is on)
    /// when it finds its own gone. It has no effect outside the transaction it opens, so
    /// sending it twice is safe. Pools given to [`TenancyBuilder::from_pool`] ping as their own
    /// options say.
    pub fn test_before_acquire(mut self, test: bool) -> Self {
        self.test_before_acquire = test;
        self
    }

    /// Splits the pool [`TenancyBuilder::connect`] builds into `n` lanes of
    /// `max_connections / n` connections each, and runs every tenant's statements on one lane,
    /// always the same (by its id). Default 1: one pool for all.
    ///
    /// For many own-schema tenants. A server connection keeps, for every table it has touched,
    /// catalog cache entries, and for every (tenant, statement) pair it has run, a prepared
    /// statement: served by any connection, 10,000 tenants make each connection hold all of
    /// them (over 100 MiB) or thrash its statement cache. With lanes, a connection serves only
    /// its lane's tenants, so its memory and statement cache are bounded by
    /// `tenants / lanes`: size lanes so that one lane's statements fit
    /// [`TenancyBuilder::statement_cache_capacity`]. BENCHMARKS.md measures it.
    ///
    /// The price: a tenant can use only its lane's connections at once, so a burst from one
    /// tenant queues sooner. (16 lanes of one connection over 10,000 tenants, 16 tasks at
    /// random tenants: 0.58-0.83 of a plain pool of 16 in runs on different days, at 32 MiB for
    /// the largest backend against 251; 8 lanes of two, or operations spread over the lanes,
    /// measure the same. What is left is PostgreSQL's own work for a statement on a table other
    /// than the last one's, profiled in BENCHMARKS.md, not the queueing.) Registry,
    /// lifecycle, migration and report work then runs on a pool of its own
    /// ([`TenancyBuilder::admin_connections`]; reports over own schemas on
    /// [`TenancyBuilder::report_connections`]). Through PgBouncer, lanes bound the client side
    /// only: the pooler picks the server connection.
    pub fn connection_lanes(mut self, n: usize) -> Self {
        self.lanes = n.max(1);
        self
    }

    /// With [`TenancyBuilder::connection_lanes`] above 1, the size of the pool that serves the
    /// registry (resolution misses), lifecycle, migrations, and reports other than their
    /// statements over own schemas (see [`TenancyBuilder::report_connections`]). Default 2.
    pub fn admin_connections(mut self, n: u32) -> Self {
        self.admin_connections = n;
        self
    }

    /// The connections [`TenancyBuilder::connect`] keeps for reports over own-schema tenants
    /// (default [`DEFAULT_REPORT_CONCURRENCY`](crate::DEFAULT_REPORT_CONCURRENCY), 2), each a
    /// lane of its own: a tenant's schema is always read on the same one (by its id), so the
    /// schemas a report reads meet the same server connection from one report to the next.
    ///
    /// Why: a server connection keeps catalog cache entries for every table it has touched. A
    /// report over 10,000 schemas is 100 statements of 100 schemas; on a connection that has not
    /// touched those tables, planning one takes 150-600 ms, on one that has, 5-8 ms (measured in
    /// BENCHMARKS.md). Spread over any connection of the pool, a report keeps meeting cold ones,
    /// and in time makes every connection of the pool hold every schema's entries for reports
    /// (over 100 MiB each at 10,000 schemas). With report lanes only these connections do, each
    /// for its share of the schemas. They are recycled like any pooled connection (after sqlx's
    /// idle timeout of 10 minutes and lifetime of 30), and the next report warms the new one.
    ///
    /// These connections come on top of [`TenancyBuilder::max_connections`] (and
    /// [`TenancyBuilder::admin_connections`]): count them when sizing the server. All reports
    /// of the handle share them: a report runs at most this many of its statements over own
    /// schemas at once, whatever [`Report::concurrency`](crate::Report::concurrency) says (it
    /// still bounds the statements for shared tables and other databases), and reports running
    /// at once take turns on each lane, batch by batch, waiting for as long as it takes (a
    /// turn is not a pool borrow, so it does not count against the acquire timeout). `0` runs
    /// reports on the handle's pool as any other admin work, as does a pool given to
    /// [`TenancyBuilder::from_pool`]. Through PgBouncer in transaction mode the lanes are fixed
    /// on the client side only: the pooler picks the server connection.
    ///
    /// ```
    /// // Reports over many schemas, four statements at once, four connections kept warm.
    /// let builder = tenancy_sqlx::Tenancy::builder().report_connections(4);
    /// ```
    pub fn report_connections(mut self, n: usize) -> Self {
        self.report_connections = n;
        self
    }

    /// Row-level security as a runtime backstop (default off): every tenant statement then runs
    /// in a transaction with the tenant set transaction-locally
    /// (`set_config('tenancy.tenant_id', <tenant>, true)`), so that PostgreSQL, with tenancy's
    /// policy on the table, confines any SQL on that connection to that tenant, and SQL on a
    /// connection where no tenant is set to nothing. Off, nothing is set and nothing changes.
    ///
    /// Install the policy with [`rls::policy_sql`](crate::rls::policy_sql) in a migration or
    /// [`Tenancy::install_row_level_security`]; [`Tenancy::verify`] then also reports a table
    /// without it.
    ///
    /// The cost: a read on a `&TenantCtx` takes one more round trip (`BEGIN` with the setting;
    /// its `ROLLBACK` rides on the pool's check of the connection on release), a write two
    /// (`BEGIN` and `COMMIT`); a [`TenantTx`](crate::TenantTx) takes none (the setting rides on
    /// its `BEGIN`), nor does [`StatementMode::Unnamed`]. See [`crate::rls`].
    ///
    /// ```no_run
    /// # async fn demo(url: &str) -> tenancy_sqlx::Result<()> {
    /// use tenancy_sqlx::Tenancy;
    ///
    /// // Connect as the application's role: not a superuser, not BYPASSRLS.
    /// let tenancy = Tenancy::builder().row_level_security(true).connect(url).await?;
    /// let ctx = tenancy.resolve_slug("acme").await?;
    /// let mut tx = ctx.begin().await?; // acme is set for this transaction only
    /// // ... repository calls on &mut tx ...
    /// tx.commit().await?;
    ///
    /// // SQL written around the library, on a connection where tenancy set no tenant, sees
    /// // no tenant's rows (and cannot write any):
    /// let pool = tenancy_sqlx::sqlx::PgPool::connect(url).await?;
    /// let n: i64 = tenancy_sqlx::sqlx::query_scalar("SELECT count(*) FROM spins")
    ///     .fetch_one(&pool)
    ///     .await?;
    /// assert_eq!(n, 0);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Connecting fails with [`Error::RowLevelSecurity`](crate::Error::RowLevelSecurity) when
    /// the connected role is a PostgreSQL superuser or has `BYPASSRLS`: PostgreSQL applies no
    /// policy to it, so the backstop would be silently off.
    pub fn row_level_security(mut self, on: bool) -> Self {
        self.row_level_security = on;
        self
    }

    /// How long connecting waits for the server to answer, and a unit of work for a pooled
    /// connection, before failing. Default [`DEFAULT_ACQUIRE_TIMEOUT`] (10 s). A server that
    /// refuses the connection fails [`TenancyBuilder::connect`] at once, with the cause. With
    /// [`TenancyBuilder::from_pool`], your pool's own timeout applies instead.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Whether connecting installs the registry schema (`tenancy`) when it is missing, and
    /// upgrades it when it is behind this version. Default `true`. Either way a current registry
    /// is only read, so a role without `CREATE` on the database can connect once it is
    /// installed; with `false`, a missing or outdated registry fails the connection with
    /// [`Error::RegistryNotInstalled`](crate::Error::RegistryNotInstalled) instead of trying.
    /// Install it with [`Tenancy::install`] as the owner role (README: least privilege).
    pub fn install_registry(mut self, install: bool) -> Self {
        self.install_registry = install;
        self
    }

    /// Whether this handle listens for registry changes made by other processes and handles
    /// (`LISTEN tenancy_registry`, on a connection of its own). Default `true`: a tenant
    /// suspended, deleted or purged elsewhere stops resolving here, and its contexts held here
    /// are refused with [`Error::ContextRevoked`](crate::Error::ContextRevoked), within moments
    /// of the commit. If the connection is lost, the listener reconnects and, since changes may
    /// have been missed meanwhile, revokes every context resolved before.
    ///
    /// After every `LISTEN` (at connect and after each reconnect) the listener sends a
    /// notification of its own through the pool and waits, up to the acquire timeout but at
    /// most three seconds, to hear it. At connect, if it does not,
    /// [`connect`](TenancyBuilder::connect) fails with
    /// [`Error::NotificationsUnheard`](crate::Error::NotificationsUnheard); after a reconnect,
    /// the listener counts as still disconnected and tries again.
    ///
    /// Off, changes made elsewhere are seen within [`TenancyBuilder::cache_ttl`], and contexts
    /// held here are not refused. Changes made through this handle notify others either way.
    pub fn listen_for_changes(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    /// The server the registry listener connects to, when it must differ from the pool's:
    /// `LISTEN` does not work through PgBouncer in transaction mode (a notification goes to
    /// whichever client holds the server connection), so behind one give the database's direct
    /// address here. It must name the pool's database: notifications are per database. Default:
    /// the pool's own address.
    ///
    /// Connecting checks that a notification sent through the pool reaches the listener, and
    /// fails with [`Error::NotificationsUnheard`](crate::Error::NotificationsUnheard) when it
    /// does not (see [`TenancyBuilder::listen_for_changes`]).
    pub fn notify_url(mut self, url: &str) -> Self {
        self.notify_url = Some(url.to_owned());
        self
    }

    /// Tables every tenant shares (no tenant column, no foreign key to the registry) that raw
    /// SQL may name, as `"countries"` or `"public.plans"`. Raw SQL reaches every other relation
    /// only through `{table}` placeholders. Each raw query checks, in its catalog round trip,
    /// that the names it uses resolve to these tables and that they still hold no tenant data.
    pub fn global_tables<I, S>(mut self, tables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.global_tables = tables.into_iter().map(Into::into).collect();
        self
    }

    /// The tenant migrations: run in each new own-schema tenant's schema when it is created,
    /// and everywhere by [`Tenancy::migrate_tenants`].
    pub fn tenant_migrations(mut self, migrations: Migrations) -> Self {
        self.tenant_migrations = migrations;
        self
    }

    /// The connection budget for own-database tenants on a server: at most `budget`
    /// connections open to its tenant databases at once, whatever their database, and at most
    /// `per_database` for one tenant (so one tenant's burst leaves room for the others): of
    /// its own database's connections, or of the connections of its server's home, which the
    /// tenants living there share (a report across a home's tenants takes no tenant's share).
    /// Each unit of work of a tenant holds one while it runs, a [`TenantTx`](crate::TenantTx)
    /// or an open stream until it ends: code that holds `per_database` of them for one tenant
    /// and starts another unit of that tenant waits for its own, then gets `TenantBusy`.
    /// Defaults [`DEFAULT_DATABASE_BUDGET`] and [`DEFAULT_PER_DATABASE`]; the handle's pool
    /// (registry, shared tables, schemas) comes on top.
    ///
    /// Each tenant's idle connections are kept for reuse; when the budget is full, the least
    /// recently used tenant with no work in progress loses its idle ones. A unit of work that
    /// finds every connection busy waits up to [`TenancyBuilder::acquire_timeout`], then gets
    /// [`Error::ServerBusy`](crate::Error::ServerBusy) (or
    /// [`Error::TenantBusy`](crate::Error::TenantBusy) at the tenant's share), never another
    /// tenant's connection.
    ///
    /// ```
    /// let builder = tenancy_sqlx::Tenancy::builder().database_budget(50, 5);
    /// ```
    pub fn database_budget(mut self, budget: usize, per_database: usize) -> Self {
        self.database_budget = budget.max(1);
        self.per_database = per_database.max(1);
        self
    }

    /// Maps server key `key` to the options that reach that PostgreSQL server, for tenants
    /// whose database lives there ([`NewTenant::server`](crate::NewTenant::server)). The
    /// registry records only the key ([`Tenancy::add_server`]); the credentials stay with the
    /// application. The options name the database admin work connects to on that server (to
    /// create and drop tenant databases), `postgres` usually; the role needs `CREATEDB`. Each
    /// server gets its own [`TenancyBuilder::database_budget`]. Given twice, the last wins.
    ///
    /// A tenant whose row names a key the handle has no options for is refused with
    /// [`Error::UnknownServer`](crate::Error::UnknownServer), never served from another server.
    ///
    /// ```
    /// use sqlx::postgres::PgConnectOptions;
    ///
    /// let eu2: PgConnectOptions = "postgres://app@eu2.internal/postgres".parse()?;
    /// let builder = tenancy_sqlx::Tenancy::builder().server("eu-2", eu2);
    /// # Ok::<(), sqlx::Error>(())
    /// ```
    ///
    /// A malformed key (see [`validate_server_key`](tenancy_core::home::validate_server_key)),
    /// or `"primary"` (the registry's own server), makes [`TenancyBuilder::connect`] fail.
    pub fn server(mut self, key: impl Into<String>, options: PgConnectOptions) -> Self {
        let key = key.into();
        self.servers.retain(|(k, _)| *k != key);
        self.servers.push((key, options));
        self
    }

    /// Connects and brings the registry schema up to date (see
    /// [`TenancyBuilder::install_registry`]).
    ///
    /// # Errors
    /// As [`Tenancy::connect`].
    pub async fn connect(self, url: &str) -> Result<Tenancy> {
        let options = url
            .parse::<PgConnectOptions>()?
            .statement_cache_capacity(self.statement_cache_capacity);
        // The pool retries a refused connection until its timeout and then reports only that
        // it timed out; one direct attempt first reports why.
        probe(&options, self.acquire_timeout, true).await?;
        let epoch = Arc::new(SchemaEpoch::new());
        let checks = (
            self.test_before_acquire,
            self.statement_mode == StatementMode::Cached,
        );
        let pool_of = |max: u32| {
            let epoch = Arc::clone(&epoch);
            PgPoolOptions::new()
                .max_connections(max.max(1))
                .acquire_timeout(self.acquire_timeout)
                // The hook pings instead, except for units that begin with their own `BEGIN`,
                // which checks the connection as well (see `conn::acquire`). It also refuses a
                // connection opened before a migration, which may hold statements planned for
                // the old shape of a table.
                .test_before_acquire(false)
                .before_acquire(move |conn, meta| {
                    crate::conn::acquire::lendable(conn, &meta, &epoch, checks)
                })
                // A role's or database's search_path can change after the probe: every
                // connection is checked before it is first lent.
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        crate::search_path::check(conn)
                            .await
                            .map_err(|e| sqlx::Error::Configuration(e.into()))
                    })
                })
        };
        // Report lanes open their connection when a report first needs it.
        let reports = (0..self.report_connections)
            .map(|_| crate::runtime::ReportLane::new(pool_of(1).connect_lazy_with(options.clone())))
            .collect();
        if self.lanes <= 1 {
            let pool = pool_of(self.max_connections).connect_with(options).await?;
            return self.build(pool.clone(), vec![pool], reports, epoch).await;
        }
        let per_lane = self.max_connections / u32::try_from(self.lanes).unwrap_or(u32::MAX);
        let admin = pool_of(self.admin_connections)
            .connect_with(options.clone())
            .await?;
        // Lanes open their connections when first used, not all at start.
        let lanes = (0..self.lanes)
            .map(|_| pool_of(per_lane).connect_lazy_with(options.clone()))
            .collect();
        self.build(admin, lanes, reports, epoch).await
    }

    /// Uses an existing pool and brings the registry schema up to date. The pool serves every
    /// tenant (one lane).
    ///
    /// tenancy cannot add its check to a pool it did not build, so after a migration that pool
    /// goes on lending connections whose prepared statements predate it: a statement on a
    /// `&TenantCtx` that the server refuses for that is prepared again and rerun, but one inside a
    /// [`TenantTx`](crate::TenantTx) fails. Prefer [`TenancyBuilder::connect`], or recycle the
    /// pool's connections after migrating.
    ///
    /// One of the pool's connections is checked for a tenant schema on its `search_path` (see
    /// [`Error::SearchPath`](crate::Error::SearchPath)); the others are not, so give the pool no
    /// per-connection `search_path` of its own.
    ///
    /// Code of yours that borrows from the same pool: sqlx counts a transaction only once the
    /// reply to its `BEGIN` is read, so a `begin()` whose future is dropped while that reply is
    /// on its way gives the connection back inside an open transaction, and whatever borrows
    /// it next (your code or tenancy's) runs in it, uncommitted. tenancy's own units never
    /// leave one (a connection whose unit did not end cleanly is closed); a pool of its own
    /// ([`TenancyBuilder::connect`]) keeps the two apart.
    ///
    /// # Errors
    /// As [`Tenancy::connect`].
    pub async fn from_pool(self, pool: PgPool) -> Result<Tenancy> {
        crate::conn::Conn::with(&pool, async |c| crate::search_path::check(c).await).await?;
        let lanes = vec![pool.clone()];
        self.build(pool, lanes, Vec::new(), Arc::new(SchemaEpoch::new()))
            .await
    }

    async fn build(
        self,
        pool: PgPool,
        lanes: Vec<PgPool>,
        report_lanes: Vec<crate::runtime::ReportLane>,
        epoch: Arc<SchemaEpoch>,
    ) -> Result<Tenancy> {
        if self.row_level_security {
            // Before anything is created: a refused role leaves the database as it was.
            crate::rls::check_role(&pool).await?;
        }
        registry::schema::ensure(&pool, self.install_registry).await?;
        let notify_options = match &self.notify_url {
            Some(url) => url.parse::<PgConnectOptions>()?,
            None => (*pool.connect_options()).clone(),
        };
        let revocations = Arc::new(Revocations::default());
        let cache = Arc::new(ResolveCache::new(
            self.cache_ttl,
            self.cache_capacity,
            Arc::clone(&revocations),
        ));
        let tag: String = sqlx::raw_sql(registry::store::DEPLOYMENT_TAG)
            .fetch_one(&pool)
            .await
            .and_then(|row| sqlx::Row::try_get(&row, 0))?;
        if self
            .servers
            .iter()
            .any(|(k, _)| k == crate::databases::PRIMARY_SERVER)
        {
            return Err(crate::Error::Invalid(
                tenancy_core::ValidationError::Identifier {
                    input: crate::databases::PRIMARY_SERVER.to_owned(),
                    reason: "is the registry's own server; it is not mapped by TenancyBuilder::server",
                },
            ));
        }
        let databases = Databases::new(
            &tag,
            (*pool.connect_options()).clone(),
            &self.servers,
            BudgetConfig::new(self.database_budget, self.per_database)
                .acquire_timeout(self.acquire_timeout),
        )?
        .with_row_level_security(self.row_level_security);
        // What a crash between creating a tenant database and registering it left. Not fatal:
        // a role that may not drop databases still serves tenants.
        match databases.cleanup_orphans(&pool).await {
            Ok(dropped) if !dropped.is_empty() => {
                tracing::warn!(
                    ?dropped,
                    "dropped tenant databases the registry does not know"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cleaning up orphaned tenant databases failed"),
        }
        let rt = Arc::new(Runtime {
            pool,
            lanes,
            report_lanes,
            revocations,
            persistent: self.statement_mode == StatementMode::Cached,
            rls: self.row_level_security,
            origin: uuid::Uuid::new_v4(),
            epoch,
            models: Checked::default(),
            raw: crate::raw::config::RawConfig::new(self.global_tables, self.cache_ttl),
            databases: Some(databases),
        });
        let listener = if self.listen {
            Some(
                Listener::start(
                    notify_options,
                    self.acquire_timeout,
                    rt.pool.clone(),
                    &cache,
                    crate::registry::notify::Own {
                        origin: rt.origin,
                        revocations: Arc::clone(&rt.revocations),
                    },
                )
                .await?,
            )
        } else {
            None
        };
        let handle = Arc::new(Handle {
            cache,
            tenant_migrations: Arc::new(self.tenant_migrations),
            superuser: self.superuser,
            listener,
        });
        Ok(Tenancy { rt, handle })
    }
}

impl TenancyBuilder {
    /// A policy every [`Tenancy::superuser`] call must pass: it gets the actor and the reason,
    /// and returns `Ok(())` to allow or `Err(why)` to refuse. A refusal is written to the audit
    /// log (action `superuser.refused`, with `why` as the detail) and the caller gets
    /// [`Error::Forbidden`](crate::Error::Forbidden). Default: everyone with a non-empty actor and reason is allowed.
    ///
    /// The policy runs in the acquiring task: keep it quick (an allow-list, a lookup in memory).
    ///
    /// ```no_run
    /// # async fn demo() -> tenancy_sqlx::Result<()> {
    /// use tenancy_sqlx::Tenancy;
    ///
    /// const ADMINS: &[&str] = &["ops@example.com", "oncall@example.com"];
    /// let tenancy = Tenancy::builder()
    ///     .superuser_policy(|actor, reason| {
    ///         if !ADMINS.contains(&actor) {
    ///             return Err(format!("{actor} is not an administrator"));
    ///         }
    ///         if !reason.contains('#') {
    ///             return Err("name the ticket (#1234) in the reason".into());
    ///         }
    ///         Ok(())
    ///     })
    ///     .connect("postgres://postgres@127.0.0.1/app")
    ///     .await?;
    /// assert!(tenancy.superuser("intern@example.com", "curious #1").await.is_err());
    /// # Ok(()) }
    /// ```
    pub fn superuser_policy(
        mut self,
        policy: impl Fn(&str, &str) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.superuser.policy = Some(Arc::new(policy));
        self
    }

    /// How long a [`Superuser`](crate::Superuser) stays valid after its acquisition. Once expired, every
    /// operation refuses it with [`Error::Forbidden`](crate::Error::Forbidden); acquire (and so audit) a new one.
    /// Default: no expiry. The expiry is recorded in the acquisition's audit record.
    ///
    /// Operations already running when it expires finish; a [`TenantCtx`](crate::TenantCtx) obtained by
    /// [`Tenancy::impersonate`] expires with it (its statements then fail with
    /// [`Error::Forbidden`](crate::Error::Forbidden)).
    ///
    /// ```no_run
    /// # async fn demo() -> tenancy_sqlx::Result<()> {
    /// use std::time::Duration;
    /// use tenancy_sqlx::Tenancy;
    ///
    /// let tenancy = Tenancy::builder()
    ///     .superuser_ttl(Duration::from_secs(15 * 60))
    ///     .connect("postgres://postgres@127.0.0.1/app")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn superuser_ttl(mut self, ttl: Duration) -> Self {
        self.superuser.ttl = Some(ttl);
        self
    }
}

/// A policy deciding who may acquire a [`Superuser`](crate::Superuser): `Ok(())` allows, `Err(why)` refuses.
type Policy = Arc<dyn Fn(&str, &str) -> std::result::Result<(), String> + Send + Sync>;

/// How superusers are acquired: set on [`TenancyBuilder`], kept by the handle.
#[derive(Clone, Default)]
pub(crate) struct SuperuserConfig {
    pub(crate) policy: Option<Policy>,
    pub(crate) ttl: Option<Duration>,
}

impl fmt::Debug for SuperuserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SuperuserConfig")
            .field("policy", &self.policy.as_ref().map(|_| "..."))
            .field("ttl", &self.ttl)
            .finish()
    }
}
