//! Tenant lifecycle: suspend, resume, soft delete, restore. Each needs a [`Superuser`] and is
//! audited in the same transaction as the change.

use sqlx::Acquire;
use tenancy_core::{TenantId, TenantStatus};

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
    /// # Errors
    /// [`Error::TenantNotFound`]; [`Error::Forbidden`] if the tenant is not active.
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
        let mut conn = self.rt.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let status: Option<String> =
            crate::sql::admin_scalar("SELECT status FROM tenancy.tenants WHERE id = $1 FOR UPDATE")
                .bind(id.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
        let status = status.ok_or(Error::TenantNotFound(Lookup::Id(id)))?;
        if !mv.from().contains(&status.as_str()) {
            return Err(Error::Forbidden(format!(
                "cannot {} tenant {id}: it is {status}",
                mv.action().trim_start_matches("tenant.")
            )));
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
        let row = crate::sql::admin_query(sql_tenant_by_id())
            .bind(id.as_uuid())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        self.rt.cache.invalidate(id);
        tracing::warn!(tenant = %id, actor = su.actor(), action = mv.action(), "tenant lifecycle");
        tenant_from_row(&row)
    }
}
