//! Tenant lifecycle: suspend, resume, soft delete, restore, purge, rename, hosts. Each needs a
//! [`Superuser`] and is audited in the same transaction as the change; each clears the
//! resolution cache for the tenant, so this handle sees the change at once, and notifies every
//! other handle on commit (see `registry/notify.rs`).

use sqlx::Row;
use tenancy_core::{Hostname, Slug, TenantId, TenantStatus};

use crate::registry::notify::{self, Change};
use crate::registry::{Tenant, sql_tenant_by_id, tenant_from_row};
use crate::{Error, Lookup, Result, Superuser, Tenancy};

/// The lifecycle moves, with the states each may start from.
#[derive(Debug, Clone, Copy)]
enum Move {
    Suspend,
    Resume,
    SoftDelete,
    Restore,
}

impl Move {
    fn action(self) -> &'static str {
        match self {
            Self::Suspend => "tenant.suspend",
            Self::Resume => "tenant.resume",
            Self::SoftDelete => "tenant.soft_delete",
            Self::Restore => "tenant.restore",
        }
    }
    fn from(self) -> &'static [&'static str] {
        match self {
            Self::Suspend => &["active"],
            Self::Resume => &["suspended"],
            Self::SoftDelete => &["active", "suspended"],
            Self::Restore => &["deleted"],
        }
    }
    fn to(self) -> TenantStatus {
        match self {
            Self::Suspend => TenantStatus::Suspended,
            Self::Resume | Self::Restore => TenantStatus::Active,
            Self::SoftDelete => TenantStatus::Deleted,
        }
    }
}

impl Tenancy {
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
        self.check_superuser(su)?;
        let mut tx = self.rt.begin().await?;
        let status: Option<String> =
            crate::sql::admin_scalar("SELECT status FROM tenancy.tenants WHERE id = $1 FOR UPDATE")
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
        crate::sql::admin_query(
            "UPDATE tenancy.tenants SET status = $2, \
             deleted_at = CASE WHEN $2 = 'deleted' THEN now() ELSE NULL END WHERE id = $1",
        )
        .bind(id.as_uuid())
        .bind(to.as_str())
        .execute(&mut *tx)
        .await?;
        su.audit(&mut tx, mv.action(), &[id], None).await?;
        let change = match mv {
            // The tenant stops acting: contexts already held stop with it.
            Move::Suspend | Move::SoftDelete => Change::Revoke,
            Move::Resume | Move::Restore => Change::Forget,
        };
        notify::send(&mut tx, self.rt.origin, change, id).await?;
        let row = crate::sql::admin_query(sql_tenant_by_id())
            .bind(id.as_uuid())
            .fetch_one(&mut *tx)
            .await?;
        // Before the commit as well as after: a caller cancelled once the COMMIT is on its way
        // never reaches the lines below, and a tenant that stops must not keep acting here.
        // Revoking a tenant whose change then fails costs its contexts a new resolution.
        if change == Change::Revoke {
            self.rt.cache.revoke(id);
        }
        tx.commit().await?;
        match change {
            Change::Revoke => self.rt.cache.revoke(id),
            Change::Forget => self.rt.cache.invalidate(id),
        }
        tracing::warn!(tenant = %id, actor = su.actor(), action = mv.action(), "tenant lifecycle");
        tenant_from_row(&row)
    }
}

/// What [`Tenancy::purge`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Purged {
    /// The tenant's schema, dropped with everything in it.
    Schema(String),
    /// Rows deleted from each shared table, `(table, rows)`.
    Rows(Vec<(String, u64)>),
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
        self.check_superuser(su)?;
        let mut tx = self.runtime().begin().await?;
        let row = crate::sql::admin_query(
            "SELECT status, schema_name FROM tenancy.tenants WHERE id = $1 FOR UPDATE",
        )
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
                crate::rls::act_for(&mut tx, self.runtime(), id).await?;
                let mut deleted = Vec::new();
                for table in tenant_tables_children_first(&mut tx, None).await? {
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
        crate::sql::admin_query("DELETE FROM tenancy.tenants WHERE id = $1")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;
        crate::sql::admin_query("INSERT INTO tenancy.purged_tenants (id) VALUES ($1)")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;
        su.audit(&mut tx, "tenant.purge", &[id], Some(&format!("{purged:?}")))
            .await?;
        notify::send(&mut tx, self.rt.origin, Change::Revoke, id).await?;
        // Before the commit too (see `lifecycle`).
        self.runtime().cache.revoke(id);
        tx.commit().await?;
        self.runtime().cache.revoke(id);
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
                crate::sql::admin_query("UPDATE tenancy.tenants SET slug = $2 WHERE id = $1")
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
                crate::sql::admin_query(
                    "UPDATE tenancy.domains SET is_primary = false WHERE tenant_id = $1",
                )
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await?;
            }
            crate::sql::admin_query(
                "INSERT INTO tenancy.domains (host, tenant_id, is_primary) \
                 VALUES ($1, $2, NOT EXISTS (SELECT 1 FROM tenancy.domains \
                                             WHERE tenant_id = $2 AND is_primary))",
            )
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
        self.registry_change(su, id, "tenant.remove_host", Some(host.as_str()), async |tx| {
            let removed = crate::sql::admin_query(
                "DELETE FROM tenancy.domains WHERE host = $1 AND tenant_id = $2",
            )
            .bind(host.as_str())
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;
            if removed.rows_affected() == 0 {
                return Err(Error::TenantNotFound(Lookup::Host(host.as_str().to_owned())));
            }
            crate::sql::admin_query(
                "UPDATE tenancy.domains SET is_primary = true WHERE host = ( \
                     SELECT host FROM tenancy.domains WHERE tenant_id = $1 ORDER BY host LIMIT 1) \
                 AND NOT EXISTS (SELECT 1 FROM tenancy.domains WHERE tenant_id = $1 AND is_primary)",
            )
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
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
        self.check_superuser(su)?;
        let mut tx = self.runtime().begin().await?;
        crate::sql::admin_scalar::<uuid::Uuid>(
            "SELECT id FROM tenancy.tenants WHERE id = $1 FOR UPDATE",
        )
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::TenantNotFound(Lookup::Id(id)))?;
        change(&mut tx).await?;
        su.audit(&mut tx, action, &[id], detail).await?;
        notify::send(&mut tx, self.rt.origin, Change::Forget, id).await?;
        let row = crate::sql::admin_query(sql_tenant_by_id())
            .bind(id.as_uuid())
            .fetch_one(&mut *tx)
            .await?;
        // Before the commit too (see `lifecycle`): a caller cut off once the COMMIT is on its
        // way must not leave the old slug or host resolving here.
        self.runtime().cache.invalidate(id);
        tx.commit().await?;
        self.runtime().cache.invalidate(id);
        tenant_from_row(&row)
    }
}

/// `typed` for a unique violation, the database error otherwise.
fn unique_to(e: sqlx::Error, typed: Error) -> Error {
    if e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
    {
        typed
    } else {
        Error::Database(e)
    }
}

/// A table holding a tenant's rows, and the column that says whose.
#[derive(Debug, Clone)]
pub(crate) struct TenantTable {
    pub(crate) oid: i64,
    /// Schema-qualified and quoted.
    pub(crate) name: String,
    /// Quoted: `"tenant_id"`, or the column of its one-column foreign key to the registry.
    pub(crate) column: String,
    /// The column's name, unquoted.
    pub(crate) column_name: String,
}

/// The tables holding a tenant's rows, each listed before the tables it references, so deleting
/// in this order never trips a foreign key (and inserting in the reverse order never does
/// either). With `schema`, the tables of that tenant schema; without, the shared tables in the
/// search path, outside the registry. A table holds tenant rows when it has a `tenant_id`
/// column or a one-column foreign key to `tenancy.tenants` (a model's renamed tenant column).
pub(crate) async fn tenant_tables_children_first(
    conn: &mut sqlx::PgConnection,
    schema: Option<&str>,
) -> Result<Vec<TenantTable>> {
    let tables = crate::sql::admin_query(
        "SELECT c.oid::bigint AS oid, format('%I.%I', n.nspname, c.relname) AS name, \
                tc.col AS col \
         FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN LATERAL ( \
             SELECT a.attname::text AS col, 0 AS pref FROM pg_attribute a \
             WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
             UNION ALL \
             SELECT a.attname::text, 1 FROM pg_constraint k \
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] \
             WHERE k.conrelid = c.oid AND k.contype = 'f' \
               AND k.confrelid = 'tenancy.tenants'::regclass AND cardinality(k.conkey) = 1 \
             ORDER BY pref LIMIT 1 \
         ) tc ON true \
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
           AND CASE WHEN $1::text IS NULL \
                    THEN n.nspname = ANY (current_schemas(false)) AND n.nspname <> 'tenancy' \
                    ELSE n.nspname = $1 END \
         ORDER BY 2",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?;
    let edges: Vec<(i64, i64)> = crate::sql::admin_query(
        "SELECT conrelid::bigint, confrelid::bigint FROM pg_constraint \
         WHERE contype = 'f' AND conrelid <> confrelid",
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect::<Result<_>>()?;
    let mut pending: Vec<TenantTable> = tables
        .iter()
        .map(|r| {
            let column_name: String = r.try_get("col")?;
            Ok(TenantTable {
                oid: r.try_get("oid")?,
                name: r.try_get("name")?,
                column: tenancy_core::ident::quote(&column_name),
                column_name,
            })
        })
        .collect::<Result<_>>()?;
    // Repeatedly take a table no remaining table references; a cycle falls back to name order.
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let referenced = |oid: i64, pending: &[TenantTable]| {
            edges
                .iter()
                .any(|&(child, parent)| parent == oid && pending.iter().any(|t| t.oid == child))
        };
        let pick = pending
            .iter()
            .position(|t| !referenced(t.oid, &pending))
            .unwrap_or(0);
        ordered.push(pending.remove(pick));
    }
    Ok(ordered)
}
