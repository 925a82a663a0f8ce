//! Acquiring a [`Superuser`](crate::Superuser), and what it reads of the registry: the tenants
//! and the audit log.

use std::sync::Arc;

use sqlx::Row;
use tenancy_core::TenantId;

use crate::registry::store;
use crate::registry::{Tenant, sql_all_tenants, sql_tenant_by_id, tenant_from_row};
use crate::sql::SqlBuf;
use crate::superuser::*;
use crate::{Error, Lookup, Result, Tenancy};

impl Tenancy {
    /// Acquires the cross-tenant capability. The actor and reason are written to
    /// `tenancy.audit_log` (action `superuser.acquire`) before the capability is returned; if
    /// the write fails, no capability.
    ///
    /// If a policy is set ([`TenancyBuilder::superuser_policy`](crate::TenancyBuilder::superuser_policy)) it decides first; a refusal is
    /// written to the audit log as `superuser.refused`, with the policy's reason as the detail.
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy) -> tenancy_sqlx::Result<()> {
    /// let su = tenancy.superuser("ops@example.com", "ticket #4411").await?;
    /// let all = tenancy.list_tenants(&su).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Forbidden`] for an empty (or longer than 1,000 characters) actor or reason,
    /// which writes nothing, and for a refusal by the policy; [`Error::Database`].
    pub async fn superuser(&self, actor: &str, reason: &str) -> Result<Superuser> {
        check_audit_text("actor", actor)?;
        check_audit_text("reason", reason)?;
        let config = &self.handle.superuser;
        if let Some(policy) = &config.policy
            && let Err(why) = policy(actor, reason)
        {
            let q = crate::sql::admin_query(store::AUDIT_SUPERUSER_REFUSED)
                .bind(actor)
                .bind(reason)
                .bind(&why);
            // `with_conn`: behind PgBouncer the prepare and execute of an unnamed statement
            // must reach the same server connection.
            self.rt.with_conn(async |c| Ok(q.execute(c).await?)).await?;
            tracing::warn!(actor, reason, why = %why, "superuser refused");
            return Err(Error::Forbidden(format!(
                "superuser refused to {actor:?}: {why}"
            )));
        }
        let detail = config
            .ttl
            .map(|ttl| format!("expires after {:.3} s", ttl.as_secs_f64()));
        let q = crate::sql::admin_query(store::AUDIT_SUPERUSER_ACQUIRED)
            .bind(actor)
            .bind(reason)
            .bind(detail);
        let row = self
            .rt
            .with_conn(async |c| Ok(q.fetch_one(c).await?))
            .await?;
        tracing::warn!(actor, reason, "superuser acquired");
        Ok(Superuser::grant(
            row.try_get("id")?,
            actor,
            reason,
            row.try_get("at")?,
            config.ttl,
            Arc::clone(&self.rt),
        ))
    }

    /// Refuses a capability acquired through another `Tenancy` (another database), or expired.
    pub(crate) fn check_superuser(&self, su: &Superuser) -> Result<()> {
        su.check_for(&self.rt)
    }

    /// Every tenant in the registry, whatever its status, by slug. Audited (`tenants.list`,
    /// naming every tenant listed).
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy) -> tenancy_sqlx::Result<()> {
    /// let su = tenancy.superuser("ops@example.com", "monthly review").await?;
    /// let suspended = tenancy
    ///     .list_tenants(&su)
    ///     .await?
    ///     .into_iter()
    ///     .filter(|t| t.status == tenancy_sqlx::TenantStatus::Suspended)
    ///     .count();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Forbidden`] for an expired capability or one of another `Tenancy`;
    /// [`Error::Database`].
    pub async fn list_tenants(&self, su: &Superuser) -> Result<Vec<Tenant>> {
        su.audited(&self.rt, "tenants.list", async |tx| {
            let rows = crate::sql::admin_query(sql_all_tenants())
                .fetch_all(&mut *tx)
                .await?;
            let tenants = rows
                .iter()
                .map(tenant_from_row)
                .collect::<Result<Vec<_>>>()?;
            let ids: Vec<TenantId> = tenants.iter().map(|t| t.id).collect();
            Ok((tenants, Audit::of(ids)))
        })
        .await
    }

    /// One tenant's registry record, whatever its status. Audited (`tenant.read`).
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy, id: tenancy_sqlx::TenantId) -> tenancy_sqlx::Result<()> {
    /// let su = tenancy.superuser("ops@example.com", "ticket #4411").await?;
    /// let record = tenancy.tenant(&su, id).await?;
    /// println!("{} is {}", record.slug, record.status);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::TenantNotFound`], [`Error::Forbidden`], [`Error::Database`].
    pub async fn tenant(&self, su: &Superuser, id: TenantId) -> Result<Tenant> {
        let row = su
            .audited(&self.rt, "tenant.read", async |tx| {
                let row = crate::sql::admin_query(sql_tenant_by_id())
                    .bind(id.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(Error::TenantNotFound(Lookup::Id(id)))?;
                Ok((row, Audit::of([id])))
            })
            .await?;
        tenant_from_row(&row)
    }

    /// The audit log, newest first: acquisitions, refusals and everything done with a
    /// [`Superuser`]. Reading it is itself audited (`audit.read`, with the query in the detail,
    /// and the tenant it was narrowed to, if any), after the read, so it does not list itself.
    ///
    /// ```no_run
    /// # use tenancy_sqlx::{AuditQuery, Tenancy, TenantId};
    /// # async fn demo(tenancy: Tenancy, customer: TenantId) -> tenancy_sqlx::Result<()> {
    /// let su = tenancy.superuser("security@example.com", "quarterly access review").await?;
    /// let who_looked = tenancy
    ///     .audit_log(&su, AuditQuery {
    ///         tenant: Some(customer),
    ///         since: Some(time::OffsetDateTime::now_utc() - time::Duration::days(90)),
    ///         ..AuditQuery::default()
    ///     })
    ///     .await?;
    /// for r in who_looked {
    ///     println!("{} {} {} because {:?}", r.at, r.actor, r.action, r.reason);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Forbidden`] for an expired capability or one of another `Tenancy`;
    /// [`Error::Database`].
    pub async fn audit_log(&self, su: &Superuser, query: AuditQuery) -> Result<Vec<AuditRecord>> {
        let mut buf = SqlBuf::new(store::AUDIT_LOG_FILTERED);
        let mut described = Vec::new();
        if let Some(actor) = &query.actor {
            buf.push(" AND actor = ");
            buf.bind(actor.as_str())?;
            described.push(format!("actor={actor:?}"));
        }
        if let Some(action) = &query.action {
            buf.push(" AND action = ");
            buf.bind(action.as_str())?;
            described.push(format!("action={action:?}"));
        }
        if let Some(tenant) = query.tenant {
            // Containment, so that the GIN index on tenant_ids serves it.
            buf.push(" AND tenant_ids @> ARRAY[");
            buf.bind(tenant.as_uuid())?;
            buf.push("]::uuid[]");
            described.push(format!("tenant={tenant}"));
        }
        if let Some(since) = query.since {
            buf.push(" AND at >= ");
            buf.bind(since)?;
            described.push(format!("since={since}"));
        }
        if let Some(grant) = query.grant_id {
            buf.push(" AND grant_id = ");
            buf.bind(grant)?;
            described.push(format!("grant_id={grant}"));
        }
        let limit = query.limit.unwrap_or(DEFAULT_AUDIT_LIMIT);
        buf.push(" ORDER BY at DESC, id DESC LIMIT ");
        buf.bind(i64::from(limit))?;
        described.push(format!("limit={limit}"));

        su.audited(&self.rt, "audit.read", async |tx| {
            let rows = sqlx::query_with(crate::sql::text(buf.sql), buf.args)
                .persistent(false)
                .fetch_all(&mut *tx)
                .await?;
            let records = rows
                .iter()
                .map(|r| {
                    let ids: Vec<uuid::Uuid> = r.try_get("tenant_ids")?;
                    Ok(AuditRecord {
                        id: r.try_get("id")?,
                        at: r.try_get("at")?,
                        actor: r.try_get("actor")?,
                        reason: r.try_get("reason")?,
                        action: r.try_get("action")?,
                        tenant_ids: ids.into_iter().map(TenantId::from_uuid).collect(),
                        grant_id: r.try_get("grant_id")?,
                        detail: r.try_get("detail")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let tenants: Vec<TenantId> = query.tenant.into_iter().collect();
            let audit = Audit::of(tenants).detail(format!(
                "{} records; {}",
                records.len(),
                described.join(" ")
            ));
            Ok((records, audit))
        })
        .await
    }
}
