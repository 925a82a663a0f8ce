//! The cross-tenant capability: [`Superuser`], acquired only through an audited call, and the
//! registry operations that need it.

use std::fmt;
use std::sync::Arc;

use sqlx::{Acquire, PgConnection, Row};
use tenancy_core::TenantId;
use time::OffsetDateTime;

use crate::registry::{Tenant, sql_all_tenants, sql_tenant_by_id, tenant_from_row};
use crate::runtime::Runtime;
use crate::{Error, Lookup, Result, Tenancy};

/// The capability for cross-tenant work: admin screens, reports, lifecycle changes.
///
/// Acquired only through [`Tenancy::superuser`], which records the actor and the reason in
/// `tenancy.audit_log` before returning it; every operation done with it is recorded there too,
/// under the acquisition's id. It cannot be built, defaulted, deserialised, or derived from a
/// [`TenantCtx`](crate::TenantCtx):
///
/// ```compile_fail
/// # use tenancy_sqlx::{Superuser, TenantCtx};
/// fn escalate(ctx: TenantCtx) -> Superuser { Superuser::from(ctx) }
/// ```
pub struct Superuser {
    inner: Arc<SuperuserInner>,
}

struct SuperuserInner {
    grant_id: i64,
    actor: String,
    reason: String,
    acquired_at: OffsetDateTime,
    rt: Arc<Runtime>,
}

impl Superuser {
    /// Who acquired it.
    pub fn actor(&self) -> &str {
        &self.inner.actor
    }

    /// Why.
    pub fn reason(&self) -> &str {
        &self.inner.reason
    }

    /// When.
    pub fn acquired_at(&self) -> OffsetDateTime {
        self.inner.acquired_at
    }

    /// The id of the acquisition's audit record; every later record made with this capability
    /// points to it.
    pub fn grant_id(&self) -> i64 {
        self.inner.grant_id
    }

    /// Writes an audit record for an operation done with this capability, on `conn` so that it
    /// commits or rolls back with the operation itself.
    pub(crate) async fn audit(
        &self,
        conn: &mut PgConnection,
        action: &str,
        tenants: &[TenantId],
        detail: Option<&str>,
    ) -> Result<()> {
        let ids: Vec<uuid::Uuid> = tenants.iter().map(TenantId::as_uuid).collect();
        sqlx::query(
            "INSERT INTO tenancy.audit_log (actor, reason, action, tenant_ids, grant_id, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&self.inner.actor)
        .bind(&self.inner.reason)
        .bind(action)
        .bind(ids)
        .bind(self.inner.grant_id)
        .bind(detail)
        .execute(conn)
        .await?;
        Ok(())
    }
}

impl fmt::Debug for Superuser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Superuser")
            .field("actor", &self.inner.actor)
            .field("reason", &self.inner.reason)
            .field("grant_id", &self.inner.grant_id)
            .finish_non_exhaustive()
    }
}

const MAX_AUDIT_TEXT: usize = 1000;

fn check_audit_text(what: &'static str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::Forbidden(format!(
            "a superuser needs a non-empty {what}"
        )));
    }
    if value.chars().count() > MAX_AUDIT_TEXT {
        return Err(Error::Forbidden(format!(
            "a superuser's {what} must be at most {MAX_AUDIT_TEXT} characters"
        )));
    }
    Ok(())
}

impl Tenancy {
    /// Acquires the cross-tenant capability. The actor and reason are written to
    /// `tenancy.audit_log` before the capability is returned; if the write fails, no capability.
    ///
    /// # Errors
    /// [`Error::Forbidden`] for an empty actor or reason; [`Error::Database`].
    pub async fn superuser(&self, actor: &str, reason: &str) -> Result<Superuser> {
        check_audit_text("actor", actor)?;
        check_audit_text("reason", reason)?;
        let row = sqlx::query(
            "INSERT INTO tenancy.audit_log (actor, reason, action) VALUES ($1, $2, 'superuser.acquire') \
             RETURNING id, at",
        )
        .bind(actor)
        .bind(reason)
        .fetch_one(&self.rt.pool)
        .await?;
        tracing::warn!(actor, reason, "superuser acquired");
        Ok(Superuser {
            inner: Arc::new(SuperuserInner {
                grant_id: row.try_get("id")?,
                actor: actor.to_owned(),
                reason: reason.to_owned(),
                acquired_at: row.try_get("at")?,
                rt: Arc::clone(&self.rt),
            }),
        })
    }

    /// Refuses a capability acquired through another `Tenancy` (another database).
    pub(crate) fn check_superuser(&self, su: &Superuser) -> Result<()> {
        if Arc::ptr_eq(&su.inner.rt, &self.rt) {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "this Superuser was acquired through another Tenancy".into(),
            ))
        }
    }

    /// Every tenant in the registry, whatever its status, by slug. Audited.
    ///
    /// # Errors
    /// [`Error::Forbidden`], [`Error::Database`].
    pub async fn list_tenants(&self, su: &Superuser) -> Result<Vec<Tenant>> {
        self.check_superuser(su)?;
        let mut conn = self.rt.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let rows = sqlx::query(sql_all_tenants()).fetch_all(&mut *tx).await?;
        let tenants = rows
            .iter()
            .map(tenant_from_row)
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<TenantId> = tenants.iter().map(|t| t.id).collect();
        su.audit(&mut tx, "tenants.list", &ids, None).await?;
        tx.commit().await?;
        Ok(tenants)
    }

    /// One tenant's registry record, whatever its status. Audited.
    ///
    /// # Errors
    /// [`Error::TenantNotFound`], [`Error::Forbidden`], [`Error::Database`].
    pub async fn tenant(&self, su: &Superuser, id: TenantId) -> Result<Tenant> {
        self.check_superuser(su)?;
        let mut conn = self.rt.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let row = sqlx::query(sql_tenant_by_id())
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::TenantNotFound(Lookup::Id(id)))?;
        su.audit(&mut tx, "tenant.read", &[id], None).await?;
        tx.commit().await?;
        tenant_from_row(&row)
    }
}
