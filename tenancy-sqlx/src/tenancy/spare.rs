//! Spare schemas: own-schema tenants built ahead of time, so that creating one is a rename.

use crate::migrate::fresh_schema_script;
use crate::registry::store;
use crate::superuser::Audit;
use crate::{Error, MigrationError, MigrationTarget, Result, Superuser, Tenancy};

impl Tenancy {
    /// Makes sure `count` spare schemas are ready at the latest tenant migration, building the
    /// missing ones (each in its own transaction). Returns how many were built. Run it at
    /// startup or from a periodic job; creating an own-schema tenant then costs a rename.
    ///
    /// It runs the tenant migrations outside any tenant, so it takes a [`Superuser`] and each
    /// spare built is audited (`schemas.warm`, naming the schema) in its own transaction.
    ///
    /// # Errors
    /// [`Error::MigrationRefused`] for migration text that would end its transaction, before
    /// anything runs; [`Error::Migration`] if a tenant migration fails (that spare is not
    /// kept); [`Error::Forbidden`] for an expired `su` or one of another `Tenancy`.
    pub async fn warm_schemas(&self, su: &Superuser, count: usize) -> Result<usize> {
        self.check_superuser(su)?;
        let rt = &self.rt;
        self.handle.tenant_migrations.check_runnable()?;
        let have: i64 = rt
            .with_conn(async |c| {
                Ok(crate::sql::admin_scalar(store::SPARES_COUNT)
                    .fetch_one(c)
                    .await?)
            })
            .await?;
        let missing = count.saturating_sub(usize::try_from(have).unwrap_or(0));
        for _ in 0..missing {
            let name = format!(
                "{}{}",
                tenancy_core::home::SPARE_SCHEMA_PREFIX,
                uuid::Uuid::new_v4().simple()
            );
            su.audited_and_reset(&self.rt, "schemas.warm", async |tx| {
                sqlx::raw_sql(crate::sql::text(fresh_schema_script(
                    &name,
                    &self.handle.tenant_migrations,
                )))
                .execute(&mut *tx)
                .await
                .map_err(|source| {
                    Error::Migration(MigrationError::Provision {
                        target: Box::new(MigrationTarget::Spare {
                            schema: name.clone(),
                        }),
                        source,
                    })
                })?;
                crate::sql::admin_query(store::SPARE_INSERT)
                    .bind(&name)
                    .execute(&mut *tx)
                    .await?;
                Ok(((), Audit::default().detail(name.clone())))
            })
            .await?;
        }
        Ok(missing)
    }
}

impl Tenancy {
    /// Makes `count` spare databases for own-database tenants, at the latest tenant migration,
    /// so that creating one is a rename (a few milliseconds) rather than a `CREATE DATABASE`
    /// (hundreds). Also makes the template they are copied from when it is missing, which
    /// creation uses when no spare is left. Spares and templates made for other tenant
    /// migrations are dropped. Returns how many spares were made.
    ///
    /// It runs the tenant migrations outside any tenant, so it takes a [`Superuser`]; audited
    /// (`databases.warm`) before anything is made.
    ///
    /// # Errors
    /// [`Error::MigrationRefused`] before anything runs; [`Error::Provision`] if the template
    /// cannot be built (nothing half-built is kept); [`Error::Forbidden`] for an expired `su` or
    /// one of another `Tenancy`; [`Error::Database`].
    pub async fn warm_databases(&self, su: &Superuser, count: usize) -> Result<usize> {
        self.warm_databases_on(su, crate::databases::PRIMARY_SERVER, count)
            .await
    }

    /// As [`Tenancy::warm_databases`], on server `server` (a key this handle maps with
    /// [`TenancyBuilder::server`](crate::TenancyBuilder::server)): each server keeps its own
    /// template and spares, which creations on it take. Audited (`databases.warm`, naming the
    /// server).
    ///
    /// # Errors
    /// As [`Tenancy::warm_databases`]; [`Error::UnknownServer`] for a key the handle does not
    /// map, before anything is made.
    pub async fn warm_databases_on(
        &self,
        su: &Superuser,
        server: &str,
        count: usize,
    ) -> Result<usize> {
        self.check_superuser(su)?;
        self.handle.tenant_migrations.check_runnable()?;
        let databases = self.rt.databases()?;
        if !databases.knows(server) {
            return Err(Error::UnknownServer {
                server: server.to_owned(),
            });
        }
        let detail = format!("{count} spare databases on {server}");
        self.rt
            .with_conn(async |c| su.audit(c, "databases.warm", &[], Some(&detail)).await)
            .await?;
        databases
            .warm(&self.rt.pool, server, &self.handle.tenant_migrations, count)
            .await
    }

    /// Drops the own-database tenant databases of this registry that it has no tenant for:
    /// what a process stopped between creating a tenant's database and registering it, or
    /// between purging a tenant and dropping its database, or a move between servers cut off
    /// before its switch, left behind. A creation in flight is never mistaken for a leftover
    /// (it holds a lock this call takes), nor is a registered database reached through a
    /// second key of its server (asked of the database itself). Every
    /// [`Tenancy::connect`] runs it too. Returns the names of the databases dropped.
    ///
    /// Audited (`databases.cleanup`).
    ///
    /// # Errors
    /// [`Error::Forbidden`] for an expired `su` or one of another `Tenancy`; [`Error::Database`]
    /// (a role that may not drop databases).
    pub async fn cleanup_orphans(&self, su: &Superuser) -> Result<Vec<String>> {
        self.check_superuser(su)?;
        let dropped = self.rt.databases()?.cleanup_orphans(&self.rt.pool).await?;
        let detail = format!("dropped {dropped:?}");
        self.rt
            .with_conn(async |c| su.audit(c, "databases.cleanup", &[], Some(&detail)).await)
            .await?;
        Ok(dropped)
    }
}
