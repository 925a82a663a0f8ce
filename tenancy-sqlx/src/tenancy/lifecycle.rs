//! Creating tenants and moving them through their lifecycle: every move but creation needs a
//! [`Superuser`] and is audited. The work is in `lifecycle.rs`; these check, audit and keep
//! the resolution cache in step.

use tenancy_core::{Hostname, Slug, TenantId};

use crate::lifecycle::*;
use crate::registry::notify::Change;
use crate::registry::{NewTenant, Tenant};
use crate::superuser::Audit;
use crate::{Result, Superuser, Tenancy};

impl Tenancy {
    /// Creates a tenant under a new random id: validates the slug, name and hosts, then writes
    /// the tenant and its domains in one transaction (an own-schema tenant's schema and tenant
    /// migrations too). On any error nothing is written.
    ///
    /// Returns the registry record; resolve it to act for the tenant.
    ///
    /// # Errors
    /// [`Error::Invalid`](crate::Error::Invalid) for a malformed slug or host, [`Error::InvalidName`](crate::Error::InvalidName),
    /// [`Error::SlugTaken`](crate::Error::SlugTaken), [`Error::HostTaken`](crate::Error::HostTaken),
    /// [`Error::UnsupportedPlacement`](crate::Error::UnsupportedPlacement) for a placement this version cannot provision,
    /// [`Error::MigrationRefused`](crate::Error::MigrationRefused) for a tenant migration that would end its transaction,
    /// [`Error::Migration`](crate::Error::Migration).
    pub async fn create_tenant(&self, new: NewTenant) -> Result<Tenant> {
        let migrations = &self.handle.tenant_migrations;
        let creation = Creation::check(new, migrations)?;
        let id = TenantId::new_v4();
        if creation.own_database() {
            return self.create_in_database(&creation, id, None).await;
        }
        if creation.in_server_home() {
            return self.create_in_server_home(&creation, id, None).await;
        }
        let mut tx = self.rt.begin().await?;
        let tenant = match creation.write(&mut tx, id, false, migrations, None).await {
            Ok(tenant) => tenant,
            Err(e) => {
                drop(tx);
                return Err(creation.taken(&self.rt, id, e).await);
            }
        };
        if creation.runs_migrations() {
            tx.commit_and_reset().await?;
        } else {
            tx.commit().await?;
        }
        creation.log(id);
        Ok(tenant)
    }

    /// As [`Tenancy::create_tenant`], under the id given (when bringing tenants in from another
    /// system). An id decides which rows a tenant reaches, so choosing one takes a
    /// [`Superuser`]; audited (`tenant.create_with_id`, with the slug) in the creation's
    /// transaction.
    ///
    /// # Errors
    /// As [`Tenancy::create_tenant`]; [`Error::TenantIdTaken`](crate::Error::TenantIdTaken); [`Error::TenantIdPurged`](crate::Error::TenantIdPurged) for
    /// the id of a purged tenant (ids are never reused); [`Error::Forbidden`](crate::Error::Forbidden) for an expired
    /// `su` or one of another `Tenancy`.
    pub async fn create_tenant_with_id(
        &self,
        su: &Superuser,
        new: NewTenant,
        id: TenantId,
    ) -> Result<Tenant> {
        let migrations = &self.handle.tenant_migrations;
        let creation = Creation::check(new, migrations)?;
        if creation.own_database() {
            self.check_superuser(su)?;
            return self.create_in_database(&creation, id, Some(su)).await;
        }
        if creation.in_server_home() {
            self.check_superuser(su)?;
            return self.create_in_server_home(&creation, id, Some(su)).await;
        }
        let reset = creation.runs_migrations();
        let tenant = su
            .audited_then(&self.rt, "tenant.create_with_id", reset, async |tx| {
                let tenant = creation.write(tx, id, true, migrations, None).await?;
                Ok((tenant, Audit::of([id]).detail(creation.slug())))
            })
            .await;
        let tenant = match tenant {
            Ok(tenant) => tenant,
            Err(e) => return Err(creation.taken(&self.rt, id, e).await),
        };
        creation.log(id);
        Ok(tenant)
    }

    /// Creates an own-database tenant (see `databases::provision`): its database first (from a
    /// spare or the template when one is current, else empty and migrated), told whose it is,
    /// then the registry rows (and, for a chosen id, the audit record) in one transaction that
    /// commits only if the database is complete; a failure at any step drops the database and
    /// leaves no row.
    async fn create_in_database(
        &self,
        creation: &Creation,
        id: TenantId,
        chosen: Option<&Superuser>,
    ) -> Result<Tenant> {
        let migrations = &self.handle.tenant_migrations;
        let databases = self.rt.databases()?;
        let server = creation.server();
        self.check_creation_server(server).await?;
        let database = databases.name_for(id);
        let mut tenant = None;
        databases
            .provision(
                &self.rt.pool,
                server,
                (id, creation.slug()),
                migrations,
                async |tx: &mut sqlx::PgConnection| {
                    let written = creation
                        .write(
                            tx,
                            id,
                            chosen.is_some(),
                            migrations,
                            Some(database.as_str()),
                        )
                        .await?;
                    if let Some(su) = chosen {
                        su.audit(tx, "tenant.create_with_id", &[id], Some(creation.slug()))
                            .await?;
                    }
                    tenant = Some(written);
                    Ok(())
                },
            )
            .await?;
        creation.log(id);
        tenant.ok_or(crate::Error::RowNotFound)
    }

    /// Refuses, before anything is made, a server the handle cannot reach or the registry does
    /// not list (the registry's foreign key would refuse the row too, after the database or
    /// line was made and then removed).
    async fn check_creation_server(&self, server: &str) -> Result<()> {
        if !self.rt.databases()?.knows(server) || !self.server_listed(server).await? {
            return Err(crate::Error::UnknownServer {
                server: server.to_owned(),
            });
        }
        Ok(())
    }

    /// Creates a shared-table or own-schema tenant on a server other than the registry's (see
    /// `databases::home`): listed in that server's home database first (made and migrated if
    /// needed; an own schema made and migrated there with the line), then the registry rows
    /// (and, for a chosen id, the audit record) in one transaction; if that fails, the line
    /// (and the schema) in the home is removed again.
    async fn create_in_server_home(
        &self,
        creation: &Creation,
        id: TenantId,
        chosen: Option<&Superuser>,
    ) -> Result<Tenant> {
        let migrations = &self.handle.tenant_migrations;
        let databases = self.rt.databases()?;
        let server = creation.server();
        self.check_creation_server(server).await?;
        databases
            .ensure_server_home(&self.rt.pool, server, migrations)
            .await?;
        let mut tx = self.rt.begin().await?;
        crate::databases::home::lock_line(&mut tx, id).await?;
        // A purged tenant's id is refused before its line is written again: a context of it
        // that another process still holds must not find a line to write through.
        if chosen.is_some() {
            let purged: bool =
                crate::sql::admin_scalar(crate::registry::store::TENANT_ID_WAS_PURGED)
                    .bind(id.as_uuid())
                    .fetch_one(&mut *tx)
                    .await?;
            if purged {
                return Err(crate::Error::TenantIdPurged(id));
            }
            // Another tenant's id: refused before anything is made in the home.
            let taken: bool = crate::sql::admin_scalar(
                "SELECT EXISTS (SELECT FROM tenancy.tenants WHERE id = $1)",
            )
            .bind(id.as_uuid())
            .fetch_one(&mut *tx)
            .await?;
            if taken {
                return Err(crate::Error::TenantIdTaken(id));
            }
        }
        let schema = creation.schema().map(|schema| (schema, &**migrations));
        databases
            .enter_home(server, (id, creation.slug()), schema, false)
            .await?;
        let written = async {
            let tenant = creation
                .write(&mut tx, id, chosen.is_some(), migrations, None)
                .await?;
            if let Some(su) = chosen {
                su.audit(
                    &mut tx,
                    "tenant.create_with_id",
                    &[id],
                    Some(creation.slug()),
                )
                .await?;
            }
            tx.commit().await?;
            Ok(tenant)
        }
        .await;
        match written {
            Ok(tenant) => {
                creation.log(id);
                Ok(tenant)
            }
            Err(e) => {
                // The line has no registry row placing it here: nothing can reach it, so it
                // goes now (or, if this fails too, with the next `cleanup_orphans`). Unless the
                // commit went through after all (its reply was lost): then the line is the
                // tenant's. (A row of the id elsewhere, another tenant's chosen id, is not.)
                let registered = self
                    .rt
                    .with_conn(async |c| {
                        Ok(sqlx::query_scalar::<_, uuid::Uuid>(
                            crate::databases::home::SQL_KEPT_HERE,
                        )
                        .persistent(false)
                        .bind(vec![id.as_uuid()])
                        .bind(server)
                        .fetch_optional(c)
                        .await?
                        .is_some())
                    })
                    .await;
                if registered.as_ref().is_ok_and(|r| !r)
                    && let Err(left) = databases.leave_home(server, id).await
                {
                    tracing::warn!(tenant = %id, server, error = %left, "removing a failed creation's line from its server home failed");
                }
                Err(creation.taken(&self.rt, id, e).await)
            }
        }
    }

    /// Suspends an active tenant: it stops resolving until [`resume`](Tenancy::resume)d.
    /// Data is untouched. Audited.
    ///
    /// Resolution through this handle refuses the tenant as soon as this returns, and so does
    /// every statement of a [`TenantCtx`](crate::TenantCtx) of it resolved before, with
    /// [`Error::ContextRevoked`](crate::Error::ContextRevoked): a request or job in flight stops at its next statement. Other
    /// handles and processes do the same when the change's notification reaches them, within
    /// moments of the commit (see
    /// [`TenancyBuilder::listen_for_changes`](crate::TenancyBuilder::listen_for_changes); where
    /// they do not listen, within their cache's time-to-live, and their held contexts act on).
    ///
    /// # Errors
    /// [`Error::TenantNotFound`](crate::Error::TenantNotFound); [`Error::WrongStatus`](crate::Error::WrongStatus) if the tenant is not active.
    pub async fn suspend(&self, su: &Superuser, id: TenantId) -> Result<Tenant> {
        self.lifecycle(su, id, Move::Suspend).await
    }

    /// Resumes a suspended tenant. Audited.
    ///
    /// # Errors
    /// As [`Tenancy::suspend`], if the tenant is not suspended.
    pub async fn resume(&self, su: &Superuser, id: TenantId) -> Result<Tenant> {
        self.lifecycle(su, id, Move::Resume).await
    }

    /// Soft-deletes an active or suspended tenant: it stops resolving, its data is kept until
    /// purged, and [`restore`](Tenancy::restore) brings it back. Audited.
    ///
    /// # Errors
    /// As [`Tenancy::suspend`], if the tenant is already deleted.
    pub async fn soft_delete(&self, su: &Superuser, id: TenantId) -> Result<Tenant> {
        self.lifecycle(su, id, Move::SoftDelete).await
    }

    /// Restores a soft-deleted tenant to active. Audited.
    ///
    /// # Errors
    /// As [`Tenancy::suspend`], if the tenant is not deleted.
    pub async fn restore(&self, su: &Superuser, id: TenantId) -> Result<Tenant> {
        self.lifecycle(su, id, Move::Restore).await
    }

    async fn lifecycle(&self, su: &Superuser, id: TenantId, mv: Move) -> Result<Tenant> {
        let change = mv.change();
        let tenant = su
            .audited(&self.rt, mv.action(), async |tx| {
                let tenant = move_status(tx, self.rt.origin, id, mv).await?;
                // Before the commit as well as after: a caller cancelled once the COMMIT is on
                // its way never reaches the lines below, and a tenant that stops must not keep
                // acting here. Revoking a tenant whose change then fails costs its contexts a
                // new resolution.
                if change == Change::Revoke {
                    self.handle.cache.revoke(id);
                }
                Ok((tenant, Audit::of([id])))
            })
            .await?;
        match change {
            Change::Revoke => self.revoke_after_commit(id),
            Change::Forget => self.handle.cache.invalidate(id),
        }
        tracing::warn!(tenant = %id, actor = su.actor(), action = mv.action(), "tenant lifecycle");
        Ok(tenant)
    }
}

impl Tenancy {
    /// Deletes a soft-deleted tenant for good: drops its database (own-database placement, after
    /// the registry row is gone; if the process stops in between, [`Tenancy::cleanup_orphans`]
    /// drops it, as every connect does), its schema (own-schema placement) or deletes its rows from every shared table that has a `tenant_id` column or a one-column
    /// foreign key to the registry (children
    /// before parents, following foreign keys), and the old copy of a move if one is kept
    /// (see [`Tenancy::purge_old_copy`]), then its registry row and hosts. One
    /// transaction: on error nothing is deleted. The audit log keeps the tenant's id, and the
    /// registry keeps it as purged: [`Tenancy::create_tenant`] refuses it from then on
    /// ([`Error::TenantIdPurged`](crate::Error::TenantIdPurged)), so that no job payload, cache or process still holding it
    /// reaches another tenant.
    ///
    /// # Errors
    /// [`Error::WrongStatus`](crate::Error::WrongStatus) unless the tenant is soft-deleted; [`Error::TenantNotFound`](crate::Error::TenantNotFound).
    pub async fn purge(&self, su: &Superuser, id: TenantId) -> Result<Purged> {
        let purged = su
            .audited(&self.rt, "tenant.purge", async |tx| {
                let (purged, server) = crate::lifecycle::purge(tx, &self.rt, id).await?;
                // Before the commit too (see `lifecycle`).
                self.handle.cache.revoke(id);
                let audit = Audit::of([id]).detail(format!("{purged:?} on {server}"));
                Ok(((purged, server), audit))
            })
            .await?;
        let (purged, server) = purged;
        self.revoke_after_commit(id);
        if let Purged::Database(name) = &purged {
            // After the registry row is gone: a crash before this line leaves a database no
            // tenant has, which `cleanup_orphans` drops (every connect runs it).
            let database = crate::databases::name::DatabaseName::parse(name)?;
            self.rt
                .databases()?
                .drop_database(&self.rt.pool, id, (&server, &database))
                .await?;
        }
        tracing::warn!(tenant = %id, actor = su.actor(), "tenant purged");
        Ok(purged)
    }

    /// Changes a tenant's slug. An own-schema tenant keeps its schema (schema names are fixed
    /// at creation). Audited.
    ///
    /// # Errors
    /// [`Error::Invalid`](crate::Error::Invalid) for a malformed slug, [`Error::SlugTaken`](crate::Error::SlugTaken),
    /// [`Error::TenantNotFound`](crate::Error::TenantNotFound).
    pub async fn rename_slug(&self, su: &Superuser, id: TenantId, slug: &str) -> Result<Tenant> {
        let slug = Slug::parse(slug)?;
        self.registry_change(su, id, "tenant.rename_slug", slug.as_str(), async |tx| {
            set_slug(tx, id, &slug).await
        })
        .await
    }

    /// Adds a host the tenant answers to; `primary` makes it the primary host (the tenant's
    /// first host is primary whatever `primary` says). Audited.
    ///
    /// # Errors
    /// [`Error::Invalid`](crate::Error::Invalid) for a malformed host, [`Error::HostTaken`](crate::Error::HostTaken) (also by this tenant),
    /// [`Error::TenantNotFound`](crate::Error::TenantNotFound).
    pub async fn add_host(
        &self,
        su: &Superuser,
        id: TenantId,
        host: &str,
        primary: bool,
    ) -> Result<Tenant> {
        let host = Hostname::parse(host)?;
        self.registry_change(su, id, "tenant.add_host", host.as_str(), async |tx| {
            crate::lifecycle::add_host(tx, id, &host, primary).await
        })
        .await
    }

    /// Removes a host from a tenant. If it was the primary host, the first remaining host (by
    /// name) becomes primary. Audited.
    ///
    /// # Errors
    /// [`Error::TenantNotFound`](crate::Error::TenantNotFound) if the tenant does not exist or the host is not its.
    pub async fn remove_host(&self, su: &Superuser, id: TenantId, host: &str) -> Result<Tenant> {
        let host = Hostname::parse(host)?;
        self.registry_change(su, id, "tenant.remove_host", host.as_str(), async |tx| {
            crate::lifecycle::remove_host(tx, id, &host).await
        })
        .await
    }

    /// A change to how one tenant resolves, audited with `detail`, then forgotten by the
    /// resolution cache.
    async fn registry_change(
        &self,
        su: &Superuser,
        id: TenantId,
        action: &str,
        detail: &str,
        change: impl AsyncFnOnce(&mut sqlx::PgConnection) -> Result<()>,
    ) -> Result<Tenant> {
        let tenant = su
            .audited(&self.rt, action, async move |tx| {
                let tenant = change_resolution(tx, self.rt.origin, id, change).await?;
                // Before the commit too (see `lifecycle`): a caller cut off once the COMMIT is
                // on its way must not leave the old slug or host resolving here.
                self.handle.cache.invalidate(id);
                Ok((tenant, Audit::of([id]).detail(detail)))
            })
            .await?;
        self.handle.cache.invalidate(id);
        Ok(tenant)
    }
}
