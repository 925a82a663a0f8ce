//! Creating tenants and moving them through their lifecycle: every move but creation needs a
//! [`Superuser`] and is audited.

use sqlx::Row;
use tenancy_core::{Hostname, Placement, Slug, TenantId, TenantName, ValidationError};

use crate::lifecycle::*;
use crate::registry::notify::{self, Change};
use crate::registry::store;
use crate::registry::{
    NewTenant, Tenant, map_unique, schema_for, sql_tenant_by_id, tenant_from_row,
};
use crate::superuser::Audit;
use crate::{Error, Lookup, Result, Superuser, Tenancy};

impl Tenancy {
    /// Creates a tenant under a new random id: validates the slug, name and hosts, then writes
    /// the tenant and its domains in one transaction (an own-schema tenant's schema and tenant
    /// migrations too). On any error nothing is written.
    ///
    /// Returns the registry record; resolve it to act for the tenant.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed slug or host, [`Error::InvalidName`],
    /// [`Error::SlugTaken`], [`Error::HostTaken`],
    /// [`Error::UnsupportedPlacement`] for a placement this version cannot provision,
    /// [`Error::MigrationRefused`] for a tenant migration that would end its transaction,
    /// [`Error::Migration`].
    pub async fn create_tenant(&self, new: NewTenant) -> Result<Tenant> {
        self.create(new, None).await
    }

    /// As [`Tenancy::create_tenant`], under the id given (when bringing tenants in from another
    /// system). An id decides which rows a tenant reaches, so choosing one takes a
    /// [`Superuser`]; audited (`tenant.create_with_id`) in the creation's transaction.
    ///
    /// # Errors
    /// As [`Tenancy::create_tenant`]; [`Error::TenantIdTaken`]; [`Error::TenantIdPurged`] for
    /// the id of a purged tenant (ids are never reused); [`Error::Forbidden`] for an expired
    /// `su` or one of another `Tenancy`.
    pub async fn create_tenant_with_id(
        &self,
        su: &Superuser,
        new: NewTenant,
        id: TenantId,
    ) -> Result<Tenant> {
        self.check_superuser(su)?;
        self.create(new, Some((su, id))).await
    }

    async fn create(
        &self,
        new: NewTenant,
        chosen: Option<(&Superuser, TenantId)>,
    ) -> Result<Tenant> {
        let slug = Slug::parse(&new.slug)?;
        let name = match TenantName::parse(&new.name) {
            Ok(name) => name,
            Err(ValidationError::Name { reason, .. }) => return Err(Error::InvalidName(reason)),
            Err(e) => return Err(e.into()),
        };
        let name = name.as_str();
        let mut hosts: Vec<Hostname> = Vec::with_capacity(new.hosts.len());
        for host in &new.hosts {
            let host = Hostname::parse(host)?;
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        let schema = match new.placement {
            Placement::SharedTable => None,
            Placement::OwnSchema => Some(schema_for(&slug)?),
            other => return Err(Error::UnsupportedPlacement(other)),
        };
        let id = chosen.map_or_else(TenantId::new_v4, |(_, id)| id);
        if schema.is_some() {
            // Before anything runs.
            self.handle.tenant_migrations.check_runnable()?;
        }

        let mut tx = self.rt.begin().await?;
        if schema.is_some() {
            // Tenant migrations commonly reference the registry (`REFERENCES tenancy.tenants`),
            // and adding that foreign key locks the registry against inserts. Two creations that
            // each insert their row first, then build their schema, wait on each other: a
            // deadlock. Taking that lock first makes concurrent creations queue instead. Reads
            // (resolution) are not blocked.
            crate::sql::admin_query(store::LOCK_TENANTS_FOR_CREATION)
                .execute(&mut *tx)
                .await?;
        }
        crate::sql::admin_query(store::TENANT_INSERT)
            .bind(id.as_uuid())
            .bind(slug.as_str())
            .bind(name)
            .bind(new.placement.as_str())
            .bind(schema.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(|e| map_unique(e, slug.as_str(), id, None))?;
        // Only a chosen id can be a purged one (a new random v4 is not). After the insert: it
        // waits for a purge of this id still in flight, so this read sees that purge's tombstone.
        if chosen.is_some() {
            let purged: bool = crate::sql::admin_scalar(store::TENANT_ID_WAS_PURGED)
                .bind(id.as_uuid())
                .fetch_one(&mut *tx)
                .await?;
            if purged {
                return Err(Error::TenantIdPurged(id));
            }
        }
        for (i, host) in hosts.iter().enumerate() {
            crate::sql::admin_query(store::DOMAIN_INSERT)
                .bind(host.as_str())
                .bind(id.as_uuid())
                .bind(i == 0)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_unique(e, slug.as_str(), id, Some(host.as_str())))?;
        }
        if let Some(schema) = &schema {
            // The schema, its history and every tenant migration, in the same transaction as
            // the registry row: a failure leaves neither. A spare schema, built ahead by
            // `warm_schemas`, is renamed instead of built; either way one round trip when the
            // schema is at the latest migration.
            if !crate::spare::take(&mut tx, schema, &self.handle.tenant_migrations).await? {
                let script =
                    crate::migrate::fresh_schema_script(schema, &self.handle.tenant_migrations);
                sqlx::raw_sql(crate::sql::text(script))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        Error::Migration(format!("provisioning schema {schema} failed: {e}"))
                    })?;
            }
        }
        let row = crate::sql::admin_query(sql_tenant_by_id())
            .bind(id.as_uuid())
            .fetch_one(&mut *tx)
            .await?;
        let tenant = tenant_from_row(&row)?;
        if let Some((su, _)) = chosen {
            su.audit(&mut tx, "tenant.create_with_id", &[id], Some(slug.as_str()))
                .await?;
        }
        if schema.is_some() {
            // The tenant migrations ran on this connection.
            tx.commit_and_reset().await?;
        } else {
            tx.commit().await?;
        }
        tracing::info!(tenant = %id, slug = slug.as_str(), placement = %new.placement, "created tenant");
        Ok(tenant)
    }

    /// Suspends an active tenant: it stops resolving until [`resume`](Tenancy::resume)d.
    /// Data is untouched. Audited.
    ///
    /// Resolution through this handle refuses the tenant as soon as this returns, and so does
    /// every statement of a [`TenantCtx`](crate::TenantCtx) of it resolved before, with
    /// [`Error::ContextRevoked`]: a request or job in flight stops at its next statement. Other
    /// handles and processes do the same when the change's notification reaches them, within
    /// moments of the commit (see
    /// [`TenancyBuilder::listen_for_changes`](crate::TenancyBuilder::listen_for_changes); where
    /// they do not listen, within their cache's time-to-live, and their held contexts act on).
    ///
    /// # Errors
    /// [`Error::TenantNotFound`]; [`Error::WrongStatus`] if the tenant is not active.
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
        let change = match mv {
            // The tenant stops acting: contexts already held stop with it.
            Move::Suspend | Move::SoftDelete => Change::Revoke,
            Move::Resume | Move::Restore => Change::Forget,
        };
        let row = su
            .audited(&self.rt, mv.action(), async |tx| {
                let status: Option<String> =
                    crate::sql::admin_scalar(store::TENANT_STATUS_FOR_UPDATE)
                        .bind(id.as_uuid())
                        .fetch_optional(&mut *tx)
                        .await?;
                let status = status.ok_or(Error::TenantNotFound(Lookup::Id(id)))?;
                if !mv.from().contains(&status.as_str()) {
                    return Err(Error::WrongStatus {
                        id,
                        status: status.parse()?,
                        action: mv.action().trim_start_matches("tenant."),
                    });
                }
                let to = mv.to();
                crate::sql::admin_query(store::TENANT_SET_STATUS)
                    .bind(id.as_uuid())
                    .bind(to.as_str())
                    .execute(&mut *tx)
                    .await?;
                notify::send(&mut *tx, self.rt.origin, change, id).await?;
                let row = crate::sql::admin_query(sql_tenant_by_id())
                    .bind(id.as_uuid())
                    .fetch_one(&mut *tx)
                    .await?;
                // Before the commit as well as after: a caller cancelled once the COMMIT is on
                // its way never reaches the lines below, and a tenant that stops must not keep
                // acting here. Revoking a tenant whose change then fails costs its contexts a
                // new resolution.
                if change == Change::Revoke {
                    self.handle.cache.revoke(id);
                }
                Ok((row, Audit::of([id])))
            })
            .await?;
        match change {
            Change::Revoke => self.handle.cache.revoke(id),
            Change::Forget => self.handle.cache.invalidate(id),
        }
        tracing::warn!(tenant = %id, actor = su.actor(), action = mv.action(), "tenant lifecycle");
        tenant_from_row(&row)
    }
}

impl Tenancy {
    /// Deletes a soft-deleted tenant for good: drops its schema (own-schema placement) or
    /// deletes its rows from every shared table that has a `tenant_id` column or a one-column
    /// foreign key to the registry (children
    /// before parents, following foreign keys), then its registry row and hosts. One
    /// transaction: on error nothing is deleted. The audit log keeps the tenant's id, and the
    /// registry keeps it as purged: [`Tenancy::create_tenant`] refuses it from then on
    /// ([`Error::TenantIdPurged`]), so that no job payload, cache or process still holding it
    /// reaches another tenant.
    ///
    /// # Errors
    /// [`Error::WrongStatus`] unless the tenant is soft-deleted; [`Error::TenantNotFound`].
    pub async fn purge(&self, su: &Superuser, id: TenantId) -> Result<Purged> {
        let purged = su
            .audited(&self.rt, "tenant.purge", async |tx| {
                let row = crate::sql::admin_query(store::TENANT_STATUS_AND_SCHEMA_FOR_UPDATE)
                    .bind(id.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(Error::TenantNotFound(Lookup::Id(id)))?;
                let status: String = row.try_get("status")?;
                if status != "deleted" {
                    return Err(Error::WrongStatus {
                        id,
                        status: status.parse()?,
                        action: "purge",
                    });
                }
                let schema: Option<String> = row.try_get("schema_name")?;
                let purged = match schema {
                    Some(schema) => {
                        tenancy_core::ident::validate_schema(&schema)?;
                        sqlx::raw_sql(crate::sql::text(format!(
                            "DROP SCHEMA {} CASCADE",
                            tenancy_core::ident::quote(&schema)
                        )))
                        .execute(&mut *tx)
                        .await?;
                        Purged::Schema(schema)
                    }
                    None => {
                        crate::rls::act_for(tx, &self.rt, id).await?;
                        let mut deleted = Vec::new();
                        for table in tenant_tables_children_first(tx, None).await? {
                            let done = crate::sql::admin_query(crate::sql::text(format!(
                                "DELETE FROM {} WHERE {} = $1",
                                table.name, table.column
                            )))
                            .bind(id.as_uuid())
                            .execute(&mut *tx)
                            .await?;
                            deleted.push((table.name, done.rows_affected()));
                        }
                        Purged::Rows(deleted)
                    }
                };
                crate::sql::admin_query(store::TENANT_DELETE)
                    .bind(id.as_uuid())
                    .execute(&mut *tx)
                    .await?;
                crate::sql::admin_query(store::PURGED_INSERT)
                    .bind(id.as_uuid())
                    .execute(&mut *tx)
                    .await?;
                notify::send(&mut *tx, self.rt.origin, Change::Revoke, id).await?;
                // Before the commit too (see `lifecycle`).
                self.handle.cache.revoke(id);
                let audit = Audit::of([id]).detail(format!("{purged:?}"));
                Ok((purged, audit))
            })
            .await?;
        self.handle.cache.revoke(id);
        tracing::warn!(tenant = %id, actor = su.actor(), "tenant purged");
        Ok(purged)
    }

    /// Changes a tenant's slug. An own-schema tenant keeps its schema (schema names are fixed
    /// at creation). Audited.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed slug, [`Error::SlugTaken`],
    /// [`Error::TenantNotFound`].
    pub async fn rename_slug(&self, su: &Superuser, id: TenantId, slug: &str) -> Result<Tenant> {
        let slug = Slug::parse(slug)?;
        self.registry_change(
            su,
            id,
            "tenant.rename_slug",
            Some(slug.as_str()),
            async |tx| {
                crate::sql::admin_query(store::TENANT_SET_SLUG)
                    .bind(id.as_uuid())
                    .bind(slug.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| unique_to(e, Error::SlugTaken(slug.as_str().to_owned())))?;
                Ok(())
            },
        )
        .await
    }

    /// Adds a host the tenant answers to; `primary` makes it the primary host (the tenant's
    /// first host is primary whatever `primary` says). Audited.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed host, [`Error::HostTaken`] (also by this tenant),
    /// [`Error::TenantNotFound`].
    pub async fn add_host(
        &self,
        su: &Superuser,
        id: TenantId,
        host: &str,
        primary: bool,
    ) -> Result<Tenant> {
        let host = Hostname::parse(host)?;
        self.registry_change(su, id, "tenant.add_host", Some(host.as_str()), async |tx| {
            if primary {
                crate::sql::admin_query(store::DOMAINS_CLEAR_PRIMARY)
                    .bind(id.as_uuid())
                    .execute(&mut *tx)
                    .await?;
            }
            crate::sql::admin_query(store::DOMAIN_ADD)
                .bind(host.as_str())
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await
                .map_err(|e| unique_to(e, Error::HostTaken(host.as_str().to_owned())))?;
            Ok(())
        })
        .await
    }

    /// Removes a host from a tenant. If it was the primary host, the first remaining host (by
    /// name) becomes primary. Audited.
    ///
    /// # Errors
    /// [`Error::TenantNotFound`] if the tenant does not exist or the host is not its.
    pub async fn remove_host(&self, su: &Superuser, id: TenantId, host: &str) -> Result<Tenant> {
        let host = Hostname::parse(host)?;
        self.registry_change(
            su,
            id,
            "tenant.remove_host",
            Some(host.as_str()),
            async |tx| {
                let removed = crate::sql::admin_query(store::DOMAIN_DELETE)
                    .bind(host.as_str())
                    .bind(id.as_uuid())
                    .execute(&mut *tx)
                    .await?;
                if removed.rows_affected() == 0 {
                    return Err(Error::TenantNotFound(Lookup::Host(
                        host.as_str().to_owned(),
                    )));
                }
                crate::sql::admin_query(store::DOMAINS_ELECT_PRIMARY)
                    .bind(id.as_uuid())
                    .execute(&mut *tx)
                    .await?;
                Ok(())
            },
        )
        .await
    }

    /// A registry change to one tenant: locks its row, runs `change`, audits, returns the
    /// record as changed, all in one transaction; then clears the resolution cache.
    async fn registry_change(
        &self,
        su: &Superuser,
        id: TenantId,
        action: &str,
        detail: Option<&str>,
        change: impl AsyncFnOnce(&mut sqlx::PgConnection) -> Result<()>,
    ) -> Result<Tenant> {
        let row = su
            .audited(&self.rt, action, async move |tx| {
                crate::sql::admin_scalar::<uuid::Uuid>(store::TENANT_LOCK)
                    .bind(id.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(Error::TenantNotFound(Lookup::Id(id)))?;
                change(&mut *tx).await?;
                notify::send(&mut *tx, self.rt.origin, Change::Forget, id).await?;
                let row = crate::sql::admin_query(sql_tenant_by_id())
                    .bind(id.as_uuid())
                    .fetch_one(&mut *tx)
                    .await?;
                // Before the commit too (see `lifecycle`): a caller cut off once the COMMIT is
                // on its way must not leave the old slug or host resolving here.
                self.handle.cache.invalidate(id);
                let mut audit = Audit::of([id]);
                audit.detail = detail.map(str::to_owned);
                Ok((row, audit))
            })
            .await?;
        self.handle.cache.invalidate(id);
        tenant_from_row(&row)
    }
}
