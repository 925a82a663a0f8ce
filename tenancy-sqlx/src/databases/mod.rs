//! Tenants with a database of their own (the own-database placement of issue 12), on one or
//! more PostgreSQL servers.
//!
//! - [`name`]: the names tenancy gives the databases it creates, derived from the tenant id (never
//!   from a caller's text), and the template's.
//! - [`budget`]: one set of connections per tenant database under a connection budget per
//!   server: the connections open to a server never exceed its budget.
//! - [`provision`]: creating a tenant's database from a template kept at the latest tenant
//!   migration (or empty, then migrated), spare databases, and the cleanup of databases that a
//!   crash left without a registry row.
//!
//! - [`home`]: the home database of each server other than the registry's, where its
//!   shared-table tenants' rows live (many tenants per table).
//!
//! [`Databases`] ties them together for one handle: what the runtime's units lease and what the
//! handle's admin calls (creation, purge, migrations, cleanup) go through.

pub(crate) mod budget;
pub(crate) mod home;
pub(crate) mod name;
pub(crate) mod probe;
pub(crate) mod provision;

#[cfg(test)]
mod testing;

use std::collections::BTreeMap;

use sqlx::postgres::PgConnectOptions;
use sqlx::{PgConnection, PgPool};
use tenancy_core::TenantId;
use tenancy_core::home::DatabaseRef;

use crate::conn::Conn;
use crate::migrate::Migrations;
use crate::{Error, Result};
use budget::{BudgetConfig, BudgetError, DatabaseKind, Lease, ServerBudget};
use name::{DatabaseName, Naming};
use provision::{ProvisionError, Source};

pub(crate) use tenancy_core::home::PRIMARY_SERVER;

/// One handle's own-database side: the servers it maps a key to, each with its budget.
pub(crate) struct Databases {
    naming: Naming,
    /// By server key; the primary server's is the registry's.
    servers: BTreeMap<String, Server>,
    /// Whether row-level security was asked for: then a server home (many tenants per table)
    /// is served only through a role the policies apply to (see [`Databases::lease`]).
    rls: bool,
    /// Tenants whose pending line a refused write is making live (see
    /// `crate::moving::heal_pending_line`): one try per tenant at a time.
    pub(crate) healing: std::sync::Mutex<std::collections::HashSet<TenantId>>,
}

/// One server tenant databases live on.
struct Server {
    /// How to reach the server; each connection names its database on a copy. For a server
    /// other than the primary one, admin work connects to the database these name.
    options: PgConnectOptions,
    budget: ServerBudget,
    /// Set once the role this handle reaches the server with was found not to bypass
    /// row-level security.
    role_checked: tokio::sync::OnceCell<()>,
}

impl Databases {
    /// The databases of the registry tagged `tag`, on the primary server (which `primary`
    /// reaches) and the servers of `others` (key and options; validated keys), each under a
    /// budget of `cfg`.
    pub(crate) fn new(
        tag: &str,
        primary: PgConnectOptions,
        others: &[(String, PgConnectOptions)],
        cfg: BudgetConfig,
    ) -> Result<Self> {
        let mut servers = BTreeMap::new();
        let all =
            std::iter::once((PRIMARY_SERVER.to_owned(), primary)).chain(others.iter().cloned());
        for (key, options) in all {
            tenancy_core::home::validate_server_key(&key)?;
            let budget = ServerBudget::new(&key, options.clone(), cfg.clone());
            servers.insert(
                key,
                Server {
                    options,
                    budget,
                    role_checked: tokio::sync::OnceCell::new(),
                },
            );
        }
        Ok(Self {
            naming: Naming::new(tag)?,
            servers,
            rls: false,
            healing: std::sync::Mutex::default(),
        })
    }

    /// With row-level security asked for (see [`Databases::rls`]).
    pub(crate) fn with_row_level_security(mut self, on: bool) -> Self {
        self.rls = on;
        self
    }

    /// The server keyed `key`; [`Error::UnknownServer`] if this handle has no options for it
    /// (never another server in its place).
    fn server(&self, key: &str) -> Result<&Server> {
        self.servers.get(key).ok_or_else(|| Error::UnknownServer {
            server: key.to_owned(),
        })
    }

    /// Whether this handle can reach the server keyed `key`.
    pub(crate) fn knows(&self, key: &str) -> bool {
        self.servers.contains_key(key)
    }

    /// Runs `work` on a connection to the maintenance side of server `key`: one of the
    /// registry's pool for the primary server (through [`Conn`], so that work cut off inside a
    /// transaction never goes back to the pool with it open), one of its own, closed after,
    /// for another.
    async fn with_admin<T>(
        &self,
        pool: &PgPool,
        key: &str,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<T> {
        if key == PRIMARY_SERVER {
            self.server(key)?;
            return Conn::with(pool, work).await;
        }
        self.with_direct_admin(key, work).await
    }

    /// Runs `work` on a connection of its own to the maintenance side of server `key`, closed
    /// after: for another server, and for work on the primary that must not wait for the
    /// registry's pool (its caller's transaction holds one of its connections).
    async fn with_direct_admin<T>(
        &self,
        key: &str,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<T> {
        use sqlx::Connection;
        let mut conn = PgConnection::connect_with(&self.server(key)?.options)
            .await
            .map_err(|e| Error::Connect {
                server: format!("server {key}"),
                cause: e.to_string(),
            })?;
        let out = work(&mut conn).await;
        let _ = conn.close().await;
        out
    }

    /// A connection to `tenant`'s database, which the registry recorded as `database`: keyed
    /// by the tenant's id, checked to be the tenant's when it was opened.
    ///
    /// # Errors
    /// [`Error::ServerBusy`], [`Error::TenantBusy`] after the bounded wait;
    /// [`Error::WrongDatabase`]; [`Error::Connect`].
    pub(crate) async fn lease(
        &self,
        tenant: TenantId,
        database: &DatabaseRef,
        share: bool,
    ) -> Result<Lease> {
        let server = self.server(database.server())?;
        let name = DatabaseName::parse(database.as_str())?;
        let kind = self.kind_of(&name);
        if self.rls && kind == DatabaseKind::ServerHome {
            // Tenants share the home's tables: the backstop must hold there as on the
            // registry's server (whose role `connect` checks). Once per server.
            server
                .role_checked
                .get_or_try_init(|| {
                    self.with_direct_admin(database.server(), async |c| {
                        crate::rls::check_role_on(c).await
                    })
                })
                .await?;
        }
        if kind == DatabaseKind::ServerHome {
            return self.lease_in_home(tenant, server, &name, share).await;
        }
        server
            .budget
            .acquire_in(tenant, &name, kind)
            .await
            .map_err(Error::from)
    }

    /// A connection to server home `name` for `tenant`: from the home's connections, which
    /// every tenant there shares (one key for the home, the server's whole budget as its cap),
    /// at most `per_database` of them for `tenant` at once; the tenant found listed there once
    /// per connection (a short read-only transaction, on the connection's first unit for it).
    async fn lease_in_home(
        &self,
        tenant: TenantId,
        server: &Server,
        name: &DatabaseName,
        share: bool,
    ) -> Result<Lease> {
        let key = Self::home_key(name);
        let mut lease = server
            .budget
            .acquire_in_home(key, share.then_some(tenant), name)
            .await
            .map_err(|e| match Error::from(e) {
                // Named for the tenant asking, not for the home's key.
                Error::TenantBusy {
                    server,
                    per_database,
                    waited,
                    ..
                } => Error::TenantBusy {
                    server,
                    tenant,
                    per_database,
                    waited,
                },
                Error::WrongDatabase {
                    database, found, ..
                } => Error::WrongDatabase {
                    tenant,
                    database,
                    found,
                },
                other => other,
            })?;
        if lease.listed(tenant) {
            return Ok(lease);
        }
        // Outside any transaction, as a lent connection is.
        let listed = crate::sql::in_own_tx(&mut lease, async |c| {
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT FROM tenancy.tenants WHERE id = $1)",
            )
            .persistent(false)
            .bind(tenant.as_uuid())
            .fetch_one(c)
            .await
        })
        .await;
        match listed {
            Ok(true) => {
                lease.mark_listed(tenant);
                Ok(lease)
            }
            Ok(false) => {
                // The connection is as it was: back for the home's other tenants.
                lease.release();
                Err(Error::WrongDatabase {
                    tenant,
                    database: name.as_str().to_owned(),
                    found: format!(
                        "the home database of server {}, not listing the tenant",
                        server.budget.server()
                    ),
                })
            }
            // Its state is unknown: dropped, so closed.
            Err(e) => Err(e.into()),
        }
    }

    /// The key a server home's connections are kept under in its server's budget: one for the
    /// home, whichever tenant a unit is for. Made from the home's name; a version-8 uuid, which no
    /// tenancy-made tenant id is (a chosen id equal to it would only share the key, never a
    /// connection: the budget keeps a key's connections to one database).
    fn home_key(name: &DatabaseName) -> TenantId {
        use std::hash::{Hash, Hasher};
        let mut halves = [0u64; 2];
        for (i, half) in halves.iter_mut().enumerate() {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (i, name.as_str()).hash(&mut h);
            *half = h.finish();
        }
        let bits = (u128::from(halves[0]) << 64) | u128::from(halves[1]);
        let uuid = uuid::Builder::from_custom_bytes(bits.to_be_bytes()).into_uuid();
        TenantId::from_uuid(uuid)
    }

    /// Which check a database a tenant's rows are recorded in must pass, by its name: tenancy
    /// names every database it makes, and no tenant's database is named like a server home.
    fn kind_of(&self, database: &DatabaseName) -> DatabaseKind {
        if self.naming.is_server_home(database.as_str()) {
            DatabaseKind::ServerHome
        } else {
            DatabaseKind::Own
        }
    }

    /// The home database of server `server` (see [`Databases::server_home`]), by name.
    pub(crate) fn server_home_name(&self, server: &str) -> DatabaseName {
        self.naming.server_home(server)
    }

    /// Where the shared-table tenants of server `server` (not the primary one, whose shared
    /// tables are the registry database's) live: its home database
    /// ([`Home::ServerShared`](tenancy_core::Home::ServerShared)).
    ///
    /// # Errors
    /// [`Error::UnknownServer`] for a server this handle has no options for.
    pub(crate) fn server_home(&self, server: &str) -> Result<tenancy_core::Home> {
        self.server(server)?;
        let name = self.naming.server_home(server);
        let database = DatabaseRef::new(name.as_str())?.on_server(server)?;
        Ok(tenancy_core::Home::server_shared(database))
    }

    /// The home of an own-schema tenant on server `server`: `schema` in that server's home
    /// database ([`Home::ServerSchema`](tenancy_core::Home::ServerSchema)).
    pub(crate) fn server_schema(
        &self,
        server: &str,
        schema: tenancy_core::home::QuotedSchema,
    ) -> Result<tenancy_core::Home> {
        let shared = self.server_home(server)?;
        let database = shared.database().cloned().ok_or(Error::UnknownServer {
            server: server.to_owned(),
        })?;
        Ok(tenancy_core::Home::server_schema(database, schema))
    }

    /// Closes every idle connection, in the background (after a migration: they may hold
    /// statements planned for the old shape).
    pub(crate) fn close_idle_soon(&self) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            for server in self.servers.values() {
                let budget = server.budget.clone();
                rt.spawn(async move { budget.close_idle().await });
            }
        }
    }

    /// Closes every idle connection to tenant databases, waiting for the server to let each
    /// go (units at work keep theirs until they end).
    pub(crate) async fn close_idle(&self) {
        for server in self.servers.values() {
            server.budget.close_idle().await;
        }
    }

    /// The name `tenant`'s database gets.
    pub(crate) fn name_for(&self, tenant: TenantId) -> DatabaseName {
        self.naming.tenant(tenant)
    }

    /// A direct connection (outside the budget) to `database` on server `server`, for admin
    /// work that runs caller-supplied SQL (migrations): closed by the caller, never pooled.
    pub(crate) async fn connect(
        &self,
        server: &str,
        database: &DatabaseName,
    ) -> Result<PgConnection> {
        use sqlx::Connection;
        let options = self
            .server(server)?
            .options
            .clone()
            .database(database.as_str());
        Ok(PgConnection::connect_with(&options).await?)
    }

    /// Refuses with [`Error::WrongDatabase`] unless `database` on server `server` says it is
    /// `tenant`'s, as every leased connection is checked: for work that drops a tenant's
    /// database without leasing it (a purge). A registry row edited to name another tenant's
    /// database, or two databases swapped by name, would otherwise drop the other's. A
    /// database that does not exist passes: nothing of anyone's is in it.
    pub(crate) async fn check_identity(
        &self,
        tenant: TenantId,
        (server, database): (&str, &DatabaseName),
    ) -> Result<()> {
        use sqlx::Connection;
        // A server home's name is never a tenant's own database, not even before the home
        // exists (a purge that found nothing there would drop the home made meanwhile).
        if self.kind_of(database) == DatabaseKind::ServerHome {
            return Err(Error::WrongDatabase {
                tenant,
                database: database.as_str().to_owned(),
                found: format!("the name of the home database of a server ({server})"),
            });
        }
        let mut conn = match self.connect(server, database).await {
            Err(e) if e.sqlstate() == Some("3D000") => return Ok(()),
            other => other?,
        };
        let checked =
            budget::identity(&mut conn, tenant, (server, database), DatabaseKind::Own).await;
        let _ = conn.close().await;
        Ok(checked?)
    }

    /// Runs `work` in one transaction on a direct connection to `tenant`'s database `database`
    /// (outside the budget: admin work such as an export or an import), committed if it
    /// succeeds; the connection is closed afterwards, whatever the outcome. The database is
    /// checked first, as a leased connection is: the tenant's own, or the server home that
    /// lists it (by its name, see [`Databases::lease`]). `snapshot`: a
    /// repeatable-read, read-only transaction (one consistent view for an export).
    pub(crate) async fn in_database<T>(
        &self,
        tenant: TenantId,
        (server, database): (&str, &DatabaseName),
        snapshot: bool,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<T> {
        use sqlx::Connection;
        let mut conn = self.connect(server, database).await?;
        let out = async {
            budget::identity(
                &mut conn,
                tenant,
                (server, database),
                self.kind_of(database),
            )
            .await?;
            let mut tx = conn.begin().await?;
            if snapshot {
                sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *tx)
                    .await?;
            }
            let out = work(&mut tx).await?;
            tx.commit().await?;
            Ok(out)
        }
        .await;
        let _ = conn.close().await;
        out
    }

    /// Creates `tenant`'s database on server `on` and registers it with `register` in the
    /// registry transaction (see [`provision::provision`]): from a spare or the template when
    /// one is current for `migrations` on that server, else empty and migrated.
    pub(crate) async fn provision(
        &self,
        pool: &PgPool,
        on: &str,
        (tenant, slug): (TenantId, &str),
        migrations: &Migrations,
        register: impl AsyncFnOnce(&mut PgConnection) -> Result<()>,
    ) -> Result<DatabaseName> {
        let options = &self.server(on)?.options;
        self.with_admin(pool, on, async |server| {
            let fingerprint = fingerprint(migrations);
            let template = self.naming.template(fingerprint);
            let source = source(&mut *server, &template, fingerprint, migrations).await?;
            let (database, made) = Conn::with(pool, async |registry| {
                provision::provision(
                    registry,
                    &mut *server,
                    options,
                    &self.naming,
                    (tenant, slug),
                    source,
                    register,
                )
                .await
                .map_err(provision_error)
            })
            .await?;
            tracing::debug!(%tenant, %database, server = on, ?made, "provisioned tenant database");
            Ok(database)
        })
        .await
    }

    /// Creates `tenant`'s database on server `on` as [`Databases::provision`] does (a spare or
    /// the template when one is current for `migrations`, else empty and migrated) and records
    /// in it whose it is, without registering it: for a move into it, whose registry
    /// transaction must hold the provisioning lock on its name
    /// ([`provision::lock_name`]) from before this call until the switch commits. If the
    /// stamp fails, the database is dropped.
    ///
    /// # Errors
    /// [`Error::UnknownServer`]; [`Error::Provision`] when a database of that name exists
    /// already (left as it is); [`Error::Migration`]; [`Error::Database`].
    pub(crate) async fn create_unregistered(
        &self,
        pool: &PgPool,
        on: &str,
        (tenant, slug): (TenantId, &str),
        migrations: &Migrations,
    ) -> Result<DatabaseName> {
        let options = &self.server(on)?.options;
        self.with_admin(pool, on, async |server| {
            let fingerprint = fingerprint(migrations);
            let template = self.naming.template(fingerprint);
            let source = source(&mut *server, &template, fingerprint, migrations).await?;
            let database = self.naming.tenant(tenant);
            provision::create(&mut *server, options, &self.naming, &database, source)
                .await
                .map_err(provision_error)?;
            if let Err(cause) = provision::stamp(options, &database, tenant, slug).await {
                provision::drop_database(&mut *server, &database)
                    .await
                    .map_err(provision_error)?;
                return Err(provision_error(ProvisionError::Identity {
                    database,
                    tenant,
                    cause,
                }));
            }
            Ok(database)
        })
        .await
    }

    /// Makes sure a template at `migrations` exists on server `on` (built under another name,
    /// then renamed, so a half-built one is never used), dropping templates of other
    /// migrations. Returns it.
    pub(crate) async fn ensure_template(
        &self,
        pool: &PgPool,
        on: &str,
        migrations: &Migrations,
    ) -> Result<DatabaseName> {
        let options = &self.server(on)?.options;
        self.with_admin(pool, on, async |server| {
            let template = self.naming.template(fingerprint(migrations));
            let stale: Vec<String> = crate::sql::in_own_tx(&mut *server, async |c| {
                sqlx::query_scalar(
                    "SELECT datname FROM pg_database WHERE starts_with(datname, $1) AND datname <> $2",
                )
                .persistent(false)
                .bind(self.naming.template_prefix())
                .bind(template.as_str())
                .fetch_all(c)
                .await
            })
            .await?;
            for name in stale {
                if let Ok(name) = DatabaseName::parse(&name) {
                    provision::drop_database(&mut *server, &name)
                        .await
                        .map_err(provision_error)?;
                }
            }
            if exists(&mut *server, &template).await? {
                return Ok(template);
            }
            let build = self.naming.template_build();
            // Its name's lock, held in a registry transaction until the build is renamed: the
            // cleanup drops a build no one holds (a crash or a cancellation left it), never this one.
            let mut hold = crate::conn::Conn::begin(pool, sqlx::SqlStr::from_static("BEGIN")).await?;
            provision::lock_name(&mut hold, &build).await?;
            run(&mut *server, format!("CREATE DATABASE {}", build.quoted())).await?;
            if let Err(e) = provision::migrate(options, &build, migrations).await {
                provision::drop_database(&mut *server, &build)
                    .await
                    .map_err(provision_error)?;
                return Err(Error::Provision(format!(
                    "building the tenant database template failed: {e}"
                )));
            }
            // The build's own connections are closed, but a pooler may still hold its server's.
            provision::end_sessions(&mut *server, &build).await?;
            let renamed = run(
                &mut *server,
                format!(
                    "ALTER DATABASE {} RENAME TO {}",
                    build.quoted(),
                    template.quoted()
                ),
            )
            .await;
            if let Err(e) = renamed {
                provision::drop_database(&mut *server, &build)
                    .await
                    .map_err(provision_error)?;
                // Another process made the same template meanwhile.
                if !exists(&mut *server, &template).await? {
                    return Err(e);
                }
            }
            hold.commit().await?;
            Ok(template)
        })
        .await
    }

    /// Makes `n` spare databases on server `on` from its current template (made if missing),
    /// after dropping spares of other migrations. Returns how many were made.
    pub(crate) async fn warm(
        &self,
        pool: &PgPool,
        on: &str,
        migrations: &Migrations,
        n: usize,
    ) -> Result<usize> {
        let template = self.ensure_template(pool, on, migrations).await?;
        self.with_admin(pool, on, async |server| {
            let made = provision::warm_spares(
                &mut *server,
                &self.naming,
                &template,
                fingerprint(migrations),
                n,
            )
            .await
            .map_err(provision_error)?;
            Ok(made.len())
        })
        .await
    }

    /// Drops this registry's tenant databases that the registry does not know and no
    /// provisioning in flight holds (see [`provision::cleanup_orphans`]), on every server this
    /// handle maps; only names carrying this registry's tag are considered. A server that fails
    /// does not stop the others: the first error comes back after all were tried. Returns the
    /// names dropped, as `server/database` off the primary server, and the lines removed from
    /// server homes (see [`Databases::cleanup_home`]), as `server/home: tenant <id>`.
    pub(crate) async fn cleanup_orphans(&self, pool: &PgPool) -> Result<Vec<String>> {
        let mut dropped = Vec::new();
        let mut first_error = None;
        for key in self.servers.keys() {
            if key != PRIMARY_SERVER {
                match self.cleanup_home(pool, key).await {
                    Ok(lines) => dropped.extend(
                        lines
                            .into_iter()
                            .map(|t| format!("{key}/{}: tenant {t}", self.naming.server_home(key))),
                    ),
                    Err(e) => {
                        tracing::warn!(server = %key, error = %e, "server home cleanup failed");
                        first_error.get_or_insert(e);
                    }
                }
            }
            match self.cleanup_orphans_on(pool, key).await {
                Ok(names) => dropped.extend(names.into_iter().map(|n| {
                    if key == PRIMARY_SERVER {
                        n
                    } else {
                        format!("{key}/{n}")
                    }
                })),
                Err(e) => {
                    tracing::warn!(server = %key, error = %e, "orphan cleanup failed on a server");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if dropped.is_empty() => Err(e),
            _ => Ok(dropped),
        }
    }

    async fn cleanup_orphans_on(&self, pool: &PgPool, on: &str) -> Result<Vec<String>> {
        self.with_admin(pool, on, async |server| {
            // The common case, a registry with no tenant database, costs one connection.
            let any: bool = crate::sql::in_own_tx(&mut *server, async |c| {
                sqlx::query_scalar(
                    "SELECT EXISTS (SELECT FROM pg_database WHERE starts_with(datname, $1))",
                )
                .persistent(false)
                .bind(self.naming.prefix())
                .fetch_one(c)
                .await
            })
            .await?;
            if !any {
                return Ok(Vec::new());
            }
            let dropped = Conn::with(pool, async |registry| {
                provision::cleanup_orphans(
                    registry,
                    &mut *server,
                    &self.naming,
                    // Not whether its tenant exists: a tenant that does not live in it (a move
                    // into a database that crashed before its switch) does not keep it.
                    &Kept {
                        databases: self,
                        on,
                        same: std::sync::Mutex::default(),
                    },
                )
                .await
                .map_err(provision_error)
            })
            .await?;
            Ok(dropped.iter().map(|d| d.as_str().to_owned()).collect())
        })
        .await
    }

    /// Whether the registry keeps `tenant`'s database `database` on server `on` from the
    /// orphan cleanup (`same`: the servers found to be `on` under another key in this run),
    /// asked in the registry transaction `registry`. Kept: a row (a tenant's home or an old
    /// copy) names it on `on`; or one names it on another server and it is that very database
    /// under another key (two keys may reach one PostgreSQL server; asked of the database
    /// itself, see [`probe`]), or that cannot be told (a server this handle does not map,
    /// unreachable, the tenant's writes holding its identity row), or the registered database
    /// is sealed. Then this one may be the only copy with every write: a move between servers
    /// cut off after its seal (which its rerun replaces), or the move's new home when the
    /// registry was restored to before its switch, which only an operator can tell. What goes
    /// is what a move between servers cut off before its seal left on its target server.
    async fn kept(
        &self,
        registry: &mut PgConnection,
        (on, same): (&str, &std::sync::Mutex<Vec<String>>),
        tenant: TenantId,
        database: &DatabaseName,
    ) -> Result<bool> {
        let servers: Vec<String> =
            crate::sql::admin_scalar(crate::registry::store::DATABASE_SERVERS)
                .bind(database.as_str())
                .fetch_one(&mut *registry)
                .await?;
        if servers.iter().any(|s| s == on) {
            return Ok(true);
        }
        let known_same = |server: &String| {
            same.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(server)
        };
        for server in &servers {
            // Two keys of one server: every database there is kept, after one probe a run.
            if !self.knows(server) || known_same(server) {
                return Ok(true);
            }
            let there = self
                .probe(
                    tenant,
                    (server, database),
                    (on, database),
                    async |c: &mut PgConnection| {
                        probe::lock_identity(
                            c,
                            tenant,
                            (server, database),
                            std::time::Duration::from_secs(1),
                        )
                        .await
                    },
                )
                .await;
            match there {
                Ok((probe::There::Missing, _)) => {}
                Ok((probe::There::Leftover, sealed)) if sealed != Some(true) => {}
                Ok((probe::There::Same, _)) => {
                    same.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(server.clone());
                    return Ok(true);
                }
                Ok((probe::There::Leftover, _)) => {
                    tracing::warn!(%tenant, database = %database, server = %on, registered_on = %server,
                        "a copy of a tenant whose registered database is sealed is kept: rerun the \
                         tenant's move, or, after a registry restore, see which copy is its home");
                    return Ok(true);
                }
                Ok((probe::There::Another(_), _)) => return Ok(true),
                Err(e) => {
                    tracing::warn!(%tenant, database = %database, server = %on, registered_on = %server,
                        error = %e, "orphan cleanup could not tell a database from the registered one of its name; kept");
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Closes the connections the budget of server `on` keeps to `tenant` (after a move took
    /// it off that server's database: they reach the old copy, and hold the server's budget).
    /// Leases out are closed when they end. A server this handle does not map has none.
    pub(crate) async fn forget(&self, on: &str, tenant: TenantId) {
        if let Ok(server) = self.server(on) {
            server.budget.forget(tenant).await;
        }
    }

    /// Drops the old copy `database` of `tenant` that a move out of it kept on server `on`,
    /// with the registry transaction that forgets it still open and holding the database's
    /// name (so that no move of the tenant back onto that server makes a new database of the
    /// name in between, to be dropped in its place). Only a database that says it is
    /// `tenant`'s and is sealed (`moved_at`: the move's last write there) is dropped, and not
    /// the tenant's home (`home`: its server and database, when it lives in one) reached
    /// through `on` as a second key of its server: a home sealed by a move cut off before its
    /// switch would pass the first check. Anything else is refused with
    /// [`Error::WrongDatabase`] and kept. One that is gone already (a purge cut off after its
    /// drop) passes. The drop goes over a connection of its own, not the registry's pool,
    /// whose connection the caller's transaction holds. The connections the budget keeps to
    /// the tenant are those of its new home, if any: they are left alone.
    pub(crate) async fn drop_old_copy(
        &self,
        tenant: TenantId,
        (on, database): (&str, &DatabaseName),
        home: Option<(&str, &DatabaseName)>,
    ) -> Result<()> {
        use sqlx::Connection;
        let refuse = |found: String| Error::WrongDatabase {
            tenant,
            database: database.as_str().to_owned(),
            found,
        };
        if self.kind_of(database) == DatabaseKind::ServerHome {
            return Err(refuse(format!(
                "the name of the home database of a server ({on}): never dropped as an old copy"
            )));
        }
        if let Some((home_server, home)) = home
            && home_server != on
        {
            let (there, _) = self
                .probe(
                    tenant,
                    (home_server, home),
                    (on, database),
                    async |c: &mut PgConnection| {
                        probe::lock_identity(
                            c,
                            tenant,
                            (home_server, home),
                            std::time::Duration::from_secs(5),
                        )
                        .await
                    },
                )
                .await?;
            if there == probe::There::Same {
                return Err(refuse(format!(
                    "the tenant's home, database {home} on server {home_server}, reached through \
                     server {on}: kept"
                )));
            }
        }
        let mut conn = match self.connect(on, database).await {
            Err(e) if e.sqlstate() == Some("3D000") => return Ok(()),
            other => other?,
        };
        let sealed = async {
            budget::identity(&mut conn, tenant, (on, database), DatabaseKind::Own).await?;
            let sealed: Option<bool> = crate::sql::in_own_tx(&mut conn, async |c| {
                sqlx::query_scalar("SELECT moved_at IS NOT NULL FROM tenancy.tenants WHERE id = $1")
                    .persistent(false)
                    .bind(tenant.as_uuid())
                    .fetch_optional(c)
                    .await
            })
            .await?;
            Ok::<_, Error>(sealed == Some(true))
        }
        .await;
        let _ = conn.close().await;
        if !sealed? {
            return Err(refuse(
                "the tenant's database, not sealed by a move: its writes still reach it, so it \
                 is no old copy and was kept"
                    .to_owned(),
            ));
        }
        self.with_direct_admin(on, async |server| {
            provision::drop_database(&mut *server, database)
                .await
                .map_err(provision_error)
        })
        .await
    }

    /// Drops `tenant`'s database `database` on server `on` (after its registry row is gone),
    /// closing the connections the budget keeps to it first.
    pub(crate) async fn drop_database(
        &self,
        pool: &PgPool,
        tenant: TenantId,
        (on, database): (&str, &DatabaseName),
    ) -> Result<()> {
        self.server(on)?.budget.forget(tenant).await;
        self.with_admin(pool, on, async |server| {
            provision::drop_database(&mut *server, database)
                .await
                .map_err(provision_error)
        })
        .await
    }
}

/// The orphan cleanup's question on server `on` (see [`Databases::kept`]).
struct Kept<'a> {
    databases: &'a Databases,
    on: &'a str,
    /// The servers found to be `on` under another key.
    same: std::sync::Mutex<Vec<String>>,
}

impl provision::Registered for Kept<'_> {
    fn keeps<'c>(
        &'c self,
        registry: &'c mut PgConnection,
        tenant: TenantId,
        database: &'c DatabaseName,
    ) -> futures_util::future::BoxFuture<'c, Result<bool>> {
        Box::pin(
            self.databases
                .kept(registry, (self.on, &self.same), tenant, database),
        )
    }
}

/// The tenant migrations' fingerprint: templates and spares are named by it, so one made for
/// other migrations (another version, or an edited text) is never taken. FNV-1a over each
/// migration's version and checksum: stable across processes and builds.
pub(crate) fn fingerprint(migrations: &Migrations) -> i64 {
    let mut hash: u32 = 0x811c_9dc5;
    for m in migrations.iter() {
        for byte in m.version.to_le_bytes().iter().chain(m.checksum.iter()) {
            hash ^= u32::from(*byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    i64::from(hash)
}

/// Where a new tenant database on the server of `server` comes from: a spare or `template`
/// when the template at `fingerprint` exists, else empty and migrated.
async fn source<'a>(
    server: &mut PgConnection,
    template: &'a DatabaseName,
    fingerprint: i64,
    migrations: &'a Migrations,
) -> Result<Source<'a>> {
    Ok(if exists(server, template).await? {
        Source::Spare {
            template,
            version: fingerprint,
        }
    } else {
        Source::Empty(migrations)
    })
}

async fn exists(server: &mut PgConnection, database: &DatabaseName) -> Result<bool> {
    Ok(crate::sql::in_own_tx(server, async |c| {
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
            .persistent(false)
            .bind(database.as_str())
            .fetch_one(c)
            .await
    })
    .await?)
}

async fn run(server: &mut PgConnection, sql: String) -> Result<()> {
    sqlx::raw_sql(crate::sql::text(sql)).execute(server).await?;
    Ok(())
}

fn provision_error(e: ProvisionError) -> Error {
    match e {
        ProvisionError::Register { cause, .. } => cause,
        ProvisionError::Migration { database, cause } => Error::Migration(format!(
            "a tenant migration failed in the new database {database}, which was dropped: {cause}"
        ).into()),
        ProvisionError::Database(e) => Error::Database(e),
        ProvisionError::Registry(e) => e,
        other => Error::Provision(other.to_string()),
    }
}

impl From<BudgetError> for Error {
    fn from(e: BudgetError) -> Self {
        match e {
            BudgetError::ServerBusy {
                server,
                budget,
                waited,
            } => Error::ServerBusy {
                server,
                budget,
                waited,
            },
            BudgetError::TenantBusy {
                server,
                tenant,
                per_database,
                waited,
            } => Error::TenantBusy {
                server,
                tenant,
                per_database,
                waited,
            },
            BudgetError::WrongDatabase {
                tenant,
                database,
                found,
            } => Error::WrongDatabase {
                tenant,
                database: database.as_str().to_owned(),
                found,
            },
            BudgetError::Connect {
                server,
                database,
                cause,
            } => Error::Connect {
                server: format!("server {server}, database {database}"),
                cause,
            },
        }
    }
}
