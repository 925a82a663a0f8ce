//! [`Runtime`]: what every token minted by one [`Tenancy`](crate::Tenancy) shares (the pools,
//! the lanes, the statement settings) and how a unit of work gets its connection.
//!
//! A leaf: it imports nothing of the handle, the registry, the admin side or the statement
//! path, so that each of them can hold it without a circle.

use std::sync::Arc;

use sqlx::{PgPool, SqlStr};

use tenancy_core::TenantId;

use crate::checked::Checked;
use crate::conn::{Conn, SchemaEpoch};
use crate::databases::Databases;
use crate::raw::config::RawConfig;
use crate::revoked::Revocations;

/// The transaction-local setting holding the tenant tenancy acts for (see [`crate::rls`]).
pub const TENANT_SETTING: &str = "tenancy.tenant_id";

/// The transaction-local setting (`'on'`) that library code under a
/// [`Superuser`](crate::Superuser) sets for work across tenants (reports, migrations).
pub const ALL_TENANTS_SETTING: &str = "tenancy.all_tenants";

/// `BEGIN` and the tenant, in one simple-query round trip. The uuid is formatted by us (hex
/// and hyphens), so it is safe as a literal.
fn begin_for_tenant(tenant: TenantId) -> SqlStr {
    crate::sql::text(format!(
        "BEGIN; SELECT pg_catalog.set_config('{TENANT_SETTING}', '{}', true)",
        tenant.as_uuid()
    ))
}

/// `BEGIN READ ONLY` and, with row-level security, the tenant: a read's transaction (see
/// `crate::conn::read`), in one round trip. `SET LOCAL` is `set_config(.., true)` as a utility
/// command: nothing to plan, no row to send back.
fn begin_read(tenant: Option<TenantId>) -> SqlStr {
    match tenant {
        Some(t) => crate::sql::text(format!(
            "BEGIN READ ONLY; SET LOCAL {TENANT_SETTING} = '{}'",
            t.as_uuid()
        )),
        None => SqlStr::from_static("BEGIN READ ONLY"),
    }
}

/// What lets work across tenants (reports) past the policy, for one transaction.
fn set_all_tenants() -> String {
    format!("SELECT pg_catalog.set_config('{ALL_TENANTS_SETTING}', 'on', true)")
}

/// `BEGIN` for work across tenants (reports), in one round trip.
fn begin_all_tenants() -> SqlStr {
    crate::sql::text(format!("BEGIN; {}", set_all_tenants()))
}

/// Where one tenant's unit of work gets its connection.
#[derive(Clone, Copy)]
pub(crate) enum Lane<'a> {
    /// A pool of the handle's (the tenant's lane).
    Pool(&'a PgPool),
    /// The tenant's own database, through its server's connection budget.
    Database(&'a tenancy_core::home::DatabaseRef),
    /// A database read across its tenants (a report's part), through its server's budget: a
    /// server home's connections without one tenant's share of them.
    Across(&'a tenancy_core::home::DatabaseRef),
}

/// What every token minted by one [`Tenancy`](crate::Tenancy) shares.
pub(crate) struct Runtime {
    /// Registry, lifecycle, migration and report work.
    pub(crate) pool: PgPool,
    /// Tenant statements: tenant `t` runs on `lanes[lane_of(t)]`. One lane (the default) is
    /// `pool` itself; see [`TenancyBuilder::connection_lanes`].
    pub(crate) lanes: Vec<PgPool>,
    /// Reports' statements over own schemas: a batch of tenant `t`'s schema runs on
    /// `report_lanes[report_lane(t)]`, a pool of one connection, so that the same schemas meet
    /// the same server connection from report to report (see
    /// [`TenancyBuilder::report_connections`]). Empty for a pool given to `from_pool`: they
    /// run on `pool`.
    pub(crate) report_lanes: Vec<ReportLane>,
    /// Which contexts may no longer act; the handle's resolution cache shares it.
    pub(crate) revocations: Arc<Revocations>,
    /// Whether repository statements are prepared once per connection and cached.
    pub(crate) persistent: bool,
    /// Whether every tenant statement runs with the tenant set transaction-locally, for
    /// row-level security (see [`crate::rls`]).
    pub(crate) rls: bool,
    /// Names this handle in its registry notifications, for whoever reads the channel (every
    /// handle, the sender included, applies every notification).
    pub(crate) origin: uuid::Uuid,
    /// When a migration last changed tables (see [`Runtime::schema_changed`]).
    pub(crate) epoch: Arc<SchemaEpoch>,
    /// The models whose tables passed the model check through this handle (see `verify.rs`).
    pub(crate) models: Checked,
    /// Raw SQL's global tables and what it has checked of the server.
    pub(crate) raw: RawConfig,
    /// Own-database tenants' connections and naming; `None` only in unit tests of other parts.
    pub(crate) databases: Option<Databases>,
}

impl Runtime {
    /// Runs `f` on one connection for one unit of work: a pooled connection as it is in
    /// [`StatementMode::Cached`]; inside a transaction in [`StatementMode::Unnamed`], because an
    /// unnamed statement takes two round trips (prepare, then execute) and PgBouncer in
    /// transaction mode hands the second to whichever server connection is free unless a
    /// transaction holds one. Safe to cancel at any await (see [`Conn`]).
    pub(crate) async fn with_conn<T>(
        &self,
        f: impl AsyncFnOnce(&mut sqlx::PgConnection) -> crate::Result<T>,
    ) -> crate::Result<T> {
        self.conn_of_pool(&self.pool).await?.run(f).await
    }

    /// [`Runtime::with_conn`] on the given lane (a tenant's).
    pub(crate) async fn with_conn_of<T>(
        &self,
        lane: Lane<'_>,
        tenant: TenantId,
        f: impl AsyncFnOnce(&mut sqlx::PgConnection) -> crate::Result<T>,
    ) -> crate::Result<T> {
        self.conn_of(lane, tenant).await?.run(f).await
    }

    /// The connection [`Runtime::with_conn_of`] runs on.
    pub(crate) async fn conn_of(&self, lane: Lane<'_>, tenant: TenantId) -> crate::Result<Conn> {
        if self.persistent {
            self.take(lane, tenant).await
        } else {
            self.begin_on(lane, tenant, SqlStr::from_static("BEGIN"))
                .await
        }
    }

    /// A connection of `lane` for `tenant` with a transaction begun by `begin`. From a pool, the
    /// `BEGIN` is the connection's check (see [`Conn::begin`]).
    async fn begin_on(
        &self,
        lane: Lane<'_>,
        tenant: TenantId,
        begin: SqlStr,
    ) -> crate::Result<Conn> {
        match lane {
            Lane::Pool(pool) => Conn::begin(pool, begin).await,
            Lane::Database(_) | Lane::Across(_) => {
                self.take(lane, tenant).await?.start(begin).await
            }
        }
    }

    /// A connection of `lane` for `tenant`, outside any transaction: from the pool, or leased
    /// from the tenant's database's connections, keyed by the tenant's id.
    async fn take(&self, lane: Lane<'_>, tenant: TenantId) -> crate::Result<Conn> {
        let (database, share) = match lane {
            Lane::Pool(pool) => return Conn::take(pool).await,
            Lane::Database(database) => (database, true),
            Lane::Across(database) => (database, false),
        };
        // Boxed: a lease may open a connection, a future of kilobytes that, inline, would make
        // every pooled unit's future as large (see `conn::acquire::borrow`).
        let lease = Box::pin(self.databases()?.lease(tenant, database, share)).await?;
        Ok(Conn::leased(lease))
    }

    /// The own-database side of this handle.
    pub(crate) fn databases(&self) -> crate::Result<&Databases> {
        self.databases
            .as_ref()
            .ok_or(crate::Error::UnsupportedPlacement(
                tenancy_core::Placement::OwnDatabase,
            ))
    }

    /// A transaction on the admin pool, for registry, lifecycle, audit and migration work.
    pub(crate) async fn begin(&self) -> crate::Result<Conn> {
        Conn::begin(&self.pool, SqlStr::from_static("BEGIN")).await
    }

    /// Begins a transaction on `pool` for `tenant`: with row-level security on, the tenant is set
    /// for the transaction in the same round trip as the `BEGIN`.
    pub(crate) async fn begin_for(&self, lane: Lane<'_>, tenant: TenantId) -> crate::Result<Conn> {
        let begin = if self.rls {
            begin_for_tenant(tenant)
        } else {
            SqlStr::from_static("BEGIN")
        };
        self.begin_on(lane, tenant, begin).await
    }

    /// The connection for one tenant's statements: with row-level security on, always in a
    /// transaction that has the tenant set (see [`crate::rls`] for what it costs); otherwise
    /// as [`Runtime::conn_of`].
    pub(crate) async fn tenant_conn(
        &self,
        lane: Lane<'_>,
        tenant: TenantId,
    ) -> crate::Result<Conn> {
        if self.rls {
            self.begin_for(lane, tenant).await
        } else {
            self.conn_of(lane, tenant).await
        }
    }

    /// The `BEGIN` of a tenant's read on a pooled connection, when it needs a transaction: with
    /// row-level security (the tenant set), or in [`StatementMode::Unnamed`] (see
    /// [`Runtime::with_conn`]). `None`: the read runs outside any transaction.
    pub(crate) fn read_begin(&self, tenant: TenantId) -> Option<SqlStr> {
        if self.rls {
            Some(begin_read(Some(tenant)))
        } else if !self.persistent {
            Some(begin_read(None))
        } else {
            None
        }
    }

    /// Runs `f`, a read across tenants under a `Superuser` (a report's statement), on a pooled
    /// connection: with row-level security on, in a transaction that has `tenancy.all_tenants`
    /// set; with `generic_plans`, in one where prepared statements use their generic plan
    /// (`plan_cache_mode`; see `report::plan::run` for why). Such a transaction is read-only
    /// and ended by a queued rollback (see `crate::conn::read`).
    pub(crate) async fn read_all_tenants<T>(
        &self,
        generic_plans: bool,
        f: impl AsyncFnOnce(&mut sqlx::PgConnection) -> crate::Result<T>,
    ) -> crate::Result<T> {
        self.read_all_tenants_on(&self.pool, generic_plans, f).await
    }

    /// [`Runtime::read_all_tenants`] on `pool` (a report lane).
    pub(crate) async fn read_all_tenants_on<T>(
        &self,
        pool: &PgPool,
        generic_plans: bool,
        f: impl AsyncFnOnce(&mut sqlx::PgConnection) -> crate::Result<T>,
    ) -> crate::Result<T> {
        if !self.rls && !generic_plans && self.persistent {
            return Conn::with(pool, f).await;
        }
        let mut begin = String::from("BEGIN READ ONLY");
        if generic_plans {
            begin.push_str("; SET LOCAL plan_cache_mode = force_generic_plan");
        }
        if self.rls {
            begin.push_str("; ");
            begin.push_str(&set_all_tenants());
        }
        Conn::read_with(pool, crate::sql::text(begin), f).await
    }

    /// [`Runtime::read_all_tenants`]'s work (without its generic plans) on a tenant's lane (a report's part in an own-database
    /// tenant's database).
    pub(crate) async fn with_all_tenants_of<T>(
        &self,
        lane: Lane<'_>,
        tenant: TenantId,
        f: impl AsyncFnOnce(&mut sqlx::PgConnection) -> crate::Result<T>,
    ) -> crate::Result<T> {
        let conn = if self.rls {
            self.begin_on(lane, tenant, begin_all_tenants()).await?
        } else {
            self.conn_of(lane, tenant).await?
        };
        conn.run(f).await
    }

    /// [`Runtime::conn_of`] on a pool of the handle's.
    async fn conn_of_pool(&self, pool: &PgPool) -> crate::Result<Conn> {
        if self.persistent {
            Conn::take(pool).await
        } else {
            Conn::begin(pool, SqlStr::from_static("BEGIN")).await
        }
    }

    /// Records that a migration changed tables: the pools built by [`TenancyBuilder::connect`]
    /// stop lending connections opened before now, whose prepared statements may have been
    /// planned for the old shape.
    pub(crate) fn schema_changed(&self) {
        self.epoch.mark();
        // The tables the model check passed may have changed shape: check them again.
        self.models.forget();
        // So may the functions, operators and global tables raw SQL's verdicts rest on: judge
        // every statement again rather than run one unfenced on a verdict the DDL made stale.
        self.raw.verdicts.clear();
        // Tenant databases' idle connections may hold statements planned before: closed, so
        // that the next unit opens a new one (units at work keep theirs until they end).
        if let Some(databases) = &self.databases {
            databases.close_idle_soon();
        }
    }

    /// The pool a tenant's statements run on: always the same one for the same tenant.
    pub(crate) fn lane(&self, tenant: TenantId) -> &PgPool {
        &self.lanes[lane_index(tenant, self.lanes.len())]
    }

    /// The index of the report lane that reads `tenant`'s own schema, if the handle has report
    /// lanes (see [`Runtime::report_lanes`]).
    pub(crate) fn report_lane(&self, tenant: TenantId) -> Option<usize> {
        (!self.report_lanes.is_empty()).then(|| lane_index(tenant, self.report_lanes.len()))
    }
}

/// One report lane: a pool of one connection, and the turn a batch takes before borrowing it.
pub(crate) struct ReportLane {
    pub(crate) pool: PgPool,
    /// Held across each batch, so that the batches of reports running at once wait for the
    /// lane here, for as long as it takes, rather than in the pool's queue, where a wait longer
    /// than the acquire timeout fails the report (a cold batch can take a second).
    pub(crate) turn: tokio::sync::Mutex<()>,
}

impl ReportLane {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            turn: tokio::sync::Mutex::new(()),
        }
    }
}

/// Which of `lanes` lanes serves `tenant`: always the same.
fn lane_index(tenant: TenantId, lanes: usize) -> usize {
    // Uuids are random in their low bits (v4 everywhere, v7 after the timestamp), so the
    // remainder spreads tenants evenly.
    let n = lanes.max(1) as u128;
    usize::try_from(tenant.as_uuid().as_u128() % n).unwrap_or(0)
}
