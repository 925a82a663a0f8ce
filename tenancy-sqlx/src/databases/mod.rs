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
//! [`Databases`] ties them together for one handle: what the runtime's units lease and what the
//! handle's admin calls (creation, purge, migrations, cleanup) go through.

pub(crate) mod budget;
pub(crate) mod name;
pub(crate) mod provision;

#[cfg(test)]
mod testing;

use sqlx::postgres::PgConnectOptions;
use sqlx::{PgConnection, PgPool};
use tenancy_core::TenantId;
use tenancy_core::home::DatabaseRef;

use crate::migrate::Migrations;
use crate::{Error, Result};
use budget::{BudgetConfig, BudgetError, Lease, ServerBudget};
use name::{DatabaseName, Naming};
use provision::{ProvisionError, Source};

/// The server key of the server the registry lives on.
pub(crate) const PRIMARY_SERVER: &str = "primary";

/// One handle's own-database side, on the primary server.
pub(crate) struct Databases {
    naming: Naming,
    /// How to reach the server; each connection names its database on a copy.
    options: PgConnectOptions,
    budget: ServerBudget,
}

impl Databases {
    /// The databases of the registry tagged `tag`, on the server `options` reach.
    pub(crate) fn new(tag: &str, options: PgConnectOptions, cfg: BudgetConfig) -> Result<Self> {
        Ok(Self {
            naming: Naming::new(tag)?,
            budget: ServerBudget::new(PRIMARY_SERVER, options.clone(), cfg),
            options,
        })
    }

    /// A connection to `tenant`'s database, which the registry recorded as `database`: keyed
    /// by the tenant's id, checked to be the tenant's when it was opened.
    ///
    /// # Errors
    /// [`Error::ServerBusy`], [`Error::TenantBusy`] after the bounded wait;
    /// [`Error::WrongDatabase`]; [`Error::Connect`].
    pub(crate) async fn lease(&self, tenant: TenantId, database: &DatabaseRef) -> Result<Lease> {
        let database = DatabaseName::parse(database.as_str())?;
        self.budget
            .acquire(tenant, &database)
            .await
            .map_err(Error::from)
    }

    /// Closes every idle connection, in the background (after a migration: they may hold
    /// statements planned for the old shape).
    pub(crate) fn close_idle_soon(&self) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let budget = self.budget.clone();
            rt.spawn(async move { budget.close_idle().await });
        }
    }

    /// Closes every idle connection to tenant databases, waiting for the server to let each
    /// go (units at work keep theirs until they end).
    pub(crate) async fn close_idle(&self) {
        self.budget.close_idle().await;
    }

    /// The name `tenant`'s database gets.
    pub(crate) fn name_for(&self, tenant: TenantId) -> DatabaseName {
        self.naming.tenant(tenant)
    }

    /// A direct connection (outside the budget) to `database`, for admin work that runs
    /// caller-supplied SQL (migrations): closed by the caller, never pooled.
    pub(crate) async fn connect(&self, database: &DatabaseName) -> Result<PgConnection> {
        use sqlx::Connection;
        Ok(PgConnection::connect_with(&self.options.clone().database(database.as_str())).await?)
    }

    /// Runs `work` in one transaction on a direct connection to `database` (outside the
    /// budget: admin work such as an export or an import), committed if it succeeds; the
    /// connection is closed afterwards, whatever the outcome. `snapshot`: a repeatable-read,
    /// read-only transaction (one consistent view for an export).
    pub(crate) async fn in_database<T>(
        &self,
        database: &DatabaseName,
        snapshot: bool,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<T> {
        use sqlx::Connection;
        let mut conn = self.connect(database).await?;
        let out = async {
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

    /// Creates `tenant`'s database and registers it with `register` in the registry
    /// transaction (see [`provision::provision`]): from a spare or the template when one is
    /// current for `migrations`, else empty and migrated.
    pub(crate) async fn provision(
        &self,
        pool: &PgPool,
        tenant: TenantId,
        slug: &str,
        migrations: &Migrations,
        register: impl AsyncFnOnce(&mut PgConnection) -> Result<()>,
    ) -> Result<DatabaseName> {
        let mut registry = pool.acquire().await?;
        let mut server = pool.acquire().await?;
        let fingerprint = fingerprint(migrations);
        let template = self.naming.template(fingerprint);
        let source = if exists(&mut server, &template).await? {
            Source::Spare {
                template: &template,
                version: fingerprint,
            }
        } else {
            Source::Empty(migrations)
        };
        let (database, made) = provision::provision(
            &mut registry,
            &mut server,
            &self.options,
            &self.naming,
            (tenant, slug),
            source,
            register,
        )
        .await
        .map_err(provision_error)?;
        tracing::debug!(%tenant, %database, ?made, "provisioned tenant database");
        Ok(database)
    }

    /// Makes sure a template at `migrations` exists (built under another name, then renamed,
    /// so a half-built one is never used), dropping templates of other migrations. Returns it.
    pub(crate) async fn ensure_template(
        &self,
        pool: &PgPool,
        migrations: &Migrations,
    ) -> Result<DatabaseName> {
        let mut server = pool.acquire().await?;
        let template = self.naming.template(fingerprint(migrations));
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1) AND datname <> $2",
        )
        .persistent(false)
        .bind(self.naming.template_prefix())
        .bind(template.as_str())
        .fetch_all(&mut *server)
        .await?;
        for name in stale {
            if let Ok(name) = DatabaseName::parse(&name) {
                provision::drop_database(&mut server, &name)
                    .await
                    .map_err(provision_error)?;
            }
        }
        if exists(&mut server, &template).await? {
            return Ok(template);
        }
        let build = self.naming.template_build();
        run(&mut server, format!("CREATE DATABASE {}", build.quoted())).await?;
        if let Err(e) = provision::migrate(&self.options, &build, migrations).await {
            provision::drop_database(&mut server, &build)
                .await
                .map_err(provision_error)?;
            return Err(Error::Provision(format!(
                "building the tenant database template failed: {e}"
            )));
        }
        let renamed = run(
            &mut server,
            format!(
                "ALTER DATABASE {} RENAME TO {}",
                build.quoted(),
                template.quoted()
            ),
        )
        .await;
        if let Err(e) = renamed {
            provision::drop_database(&mut server, &build)
                .await
                .map_err(provision_error)?;
            // Another process made the same template meanwhile.
            if !exists(&mut server, &template).await? {
                return Err(e);
            }
        }
        Ok(template)
    }

    /// Makes `n` spare databases from the current template (made if missing), after dropping
    /// spares of other migrations. Returns how many were made.
    pub(crate) async fn warm(
        &self,
        pool: &PgPool,
        migrations: &Migrations,
        n: usize,
    ) -> Result<usize> {
        let template = self.ensure_template(pool, migrations).await?;
        let mut server = pool.acquire().await?;
        let made = provision::warm_spares(
            &mut server,
            &self.naming,
            &template,
            fingerprint(migrations),
            n,
        )
        .await
        .map_err(provision_error)?;
        Ok(made.len())
    }

    /// Drops this registry's tenant databases that the registry does not know and no
    /// provisioning in flight holds (see [`provision::cleanup_orphans`]). Returns their names.
    pub(crate) async fn cleanup_orphans(&self, pool: &PgPool) -> Result<Vec<String>> {
        let mut server = pool.acquire().await?;
        // The common case, a registry with no tenant database, costs one connection.
        let any: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT FROM pg_database WHERE starts_with(datname, $1))",
        )
        .persistent(false)
        .bind(self.naming.prefix())
        .fetch_one(&mut *server)
        .await?;
        if !any {
            return Ok(Vec::new());
        }
        let mut registry = pool.acquire().await?;
        let dropped = provision::cleanup_orphans(
            &mut registry,
            &mut server,
            &self.naming,
            async |conn: &mut PgConnection, tenant: TenantId| {
                Ok(
                    crate::sql::admin_scalar(crate::registry::store::TENANT_EXISTS)
                        .bind(tenant.as_uuid())
                        .fetch_one(conn)
                        .await?,
                )
            },
        )
        .await
        .map_err(provision_error)?;
        Ok(dropped.iter().map(|d| d.as_str().to_owned()).collect())
    }

    /// Drops `tenant`'s database `database` (after its registry row is gone), closing the
    /// connections the budget keeps to it first.
    pub(crate) async fn drop_database(
        &self,
        pool: &PgPool,
        tenant: TenantId,
        database: &DatabaseName,
    ) -> Result<()> {
        self.budget.forget(tenant).await;
        let mut server = pool.acquire().await?;
        provision::drop_database(&mut server, database)
            .await
            .map_err(provision_error)
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

async fn exists(server: &mut PgConnection, database: &DatabaseName) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
            .persistent(false)
            .bind(database.as_str())
            .fetch_one(server)
            .await?,
    )
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
