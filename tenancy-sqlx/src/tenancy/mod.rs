//! [`Tenancy`]: the handle an application keeps (one per database). Its methods live in the
//! files of this folder, one per job; each is a thin public entry point with the rustdoc, and
//! the work is done by the modules it names (the registry, the lifecycle, migrations...).

mod admin;
mod builder;
mod export;
mod lifecycle;
mod members;
mod migrate;
mod moving;
mod resolve;
mod servers;
mod spare;
mod verify;

use std::sync::Arc;

use sqlx::PgPool;
use tenancy_core::TenantId;

use crate::registry::cache::ResolveCache;
use crate::registry::notify::Listener;
use crate::runtime::Runtime;
use crate::{Migrations, Result};

pub(crate) use builder::SuperuserConfig;
pub use builder::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_DATABASE_BUDGET, DEFAULT_PER_DATABASE,
    DEFAULT_STATEMENT_CACHE, StatementMode, TenancyBuilder,
};
pub use servers::ServerEntry;

/// The entry point: a connection pool plus the tenant registry.
///
/// Cloning is cheap (an `Arc`); clones share the pool and the cache.
///
/// ```no_run
/// # async fn demo() -> tenancy_sqlx::Result<()> {
/// use tenancy_sqlx::{NewTenant, Tenancy};
///
/// let tenancy = Tenancy::connect("postgres://postgres@127.0.0.1/app").await?;
/// tenancy.create_tenant(NewTenant::new("acme", "Acme Corp").host("acme.example.com")).await?;
/// let ctx = tenancy.resolve_host("acme.example.com:443").await?;
/// assert_eq!(ctx.slug(), "acme");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Tenancy {
    /// What the tokens this handle mints share with it (pools, lanes, settings).
    pub(crate) rt: Arc<Runtime>,
    /// What only the handle uses: resolution and the admin side.
    pub(crate) handle: Arc<Handle>,
}

/// The state of a [`Tenancy`] that its tokens do not need: dropped with the last clone of the
/// handle, which stops the registry listener (contexts keep the runtime, not this).
pub(crate) struct Handle {
    /// Resolved contexts, by id, slug and host.
    pub(crate) cache: Arc<ResolveCache>,
    /// Run in each new own-schema tenant, and by `migrate_tenants`.
    pub(crate) tenant_migrations: Arc<Migrations>,
    /// Who may acquire a `Superuser`, and for how long.
    pub(crate) superuser: SuperuserConfig,
    /// The registry listener.
    pub(crate) listener: Option<Listener>,
}

impl std::fmt::Debug for Tenancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenancy").finish_non_exhaustive()
    }
}

impl Tenancy {
    /// After the commit of a change that revoked tenant `id` and notified every handle: revokes
    /// it here and records that this handle applied its own notification already, so that the
    /// notification, arriving later, does not refuse a context resolved after the change.
    pub(crate) fn revoke_after_commit(&self, id: TenantId) {
        self.handle.cache.revoke(id);
        // Without a listener no notification ever arrives to settle the count: keeping one
        // would only grow the map by a tenant per change.
        if self.handle.listener.is_some() {
            self.rt.revocations.own_revocation_applied(id);
        }
    }

    /// Connects with default options, installing or upgrading the registry schema if it is
    /// missing or behind (see [`TenancyBuilder::install_registry`]).
    ///
    /// # Errors
    /// [`Error::Connect`](crate::Error::Connect) if the server cannot be reached (within
    /// [`TenancyBuilder::acquire_timeout`]) or refuses the login;
    /// [`Error::Database`](crate::Error::Database) if the registry migrations fail;
    /// [`Error::RegistryNotInstalled`](crate::Error::RegistryNotInstalled) if the registry is
    /// missing or behind and [`TenancyBuilder::install_registry`] is off;
    /// [`Error::SearchPath`](crate::Error::SearchPath) if the connection's `search_path` (from
    /// the URL's `options`, the role's or the database's settings) names a tenant schema;
    /// [`Error::NotificationsUnheard`](crate::Error::NotificationsUnheard) if the registry
    /// listener does not hear notifications sent through the pool (behind PgBouncer in
    /// transaction mode; see [`TenancyBuilder::notify_url`]).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder().connect(url).await
    }

    /// Installs the registry schema (`tenancy`), or brings it up to date, and disconnects: the
    /// explicit step of a least-privilege setup, run as the role that owns the database's
    /// schemas (with a deploy's migrations), so that the application's role, connecting with
    /// [`TenancyBuilder::install_registry`]`(false)`, needs no right to create anything.
    ///
    /// # Errors
    /// As [`Tenancy::connect`]; [`Error::Database`](crate::Error::Database) if the role may not
    /// create the schema.
    pub async fn install(url: &str) -> Result<()> {
        let mut builder = Self::builder().max_connections(1).listen_for_changes(false);
        // One connection, and no tenant to serve: leftovers are the application's connect's.
        builder.cleanup_orphans = false;
        let tenancy = builder.connect(url).await?;
        tenancy.close().await;
        Ok(())
    }

    /// Uses an existing pool and brings the registry schema up to date.
    ///
    /// # Errors
    /// As [`Tenancy::connect`].
    pub async fn from_pool(pool: PgPool) -> Result<Self> {
        Self::builder().from_pool(pool).await
    }

    /// Options: pool size, resolution cache.
    pub fn builder() -> TenancyBuilder {
        TenancyBuilder::default()
    }

    /// Stops the registry listener and closes the pools; tokens minted by this handle fail from
    /// then on.
    pub async fn close(&self) {
        if let Some(listener) = &self.handle.listener {
            listener.stop().await;
        }
        self.rt.pool.close().await;
        for lane in &self.rt.lanes {
            lane.close().await;
        }
        for lane in &self.rt.report_lanes {
            lane.pool.close().await;
        }
        if let Some(databases) = &self.rt.databases {
            databases.close_idle().await;
        }
    }
}
