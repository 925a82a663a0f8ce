//! Memberships: which users may act for which tenant, and with what role.
//!
//! A [`TenantCtx`] alone proves the tenant is active; a [`Member`] proves, besides, that the
//! authenticated user belongs to it. Memberships live in the registry (`tenancy.memberships`),
//! keyed by the tenant's id so that renames keep them, and are read on every check (never
//! cached), so a removed membership refuses the user's next request.

use sqlx::Row;
use tenancy_core::TenantId;
use time::OffsetDateTime;

use crate::{Result, TenantCtx};

/// A user's membership of a tenant, as recorded in the registry. Plain data: grants nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Membership {
    /// The tenant.
    pub tenant: TenantId,
    /// The application's id of the user.
    pub user: String,
    /// The user's role in the tenant, as the application named it.
    pub role: String,
    /// When the user joined (or last changed role).
    pub created_at: OffsetDateTime,
}

/// Proof that a user is a member of an active tenant: its [`TenantCtx`], the user and their
/// role. Only [`Tenancy::member`](crate::Tenancy::member) and [`Tenancy::resolve_member`](crate::Tenancy::resolve_member) make one, after reading the
/// membership from the registry.
#[derive(Clone)]
pub struct Member {
    pub(crate) ctx: TenantCtx,
    pub(crate) user: String,
    pub(crate) role: String,
}

impl Member {
    /// The tenant's context.
    pub fn ctx(&self) -> &TenantCtx {
        &self.ctx
    }

    /// The user, as the application identified them.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The user's role in the tenant, as recorded.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The tenant's context, giving up the rest.
    pub fn into_ctx(self) -> TenantCtx {
        self.ctx
    }
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("tenant", &self.ctx.id())
            .field("user", &self.user)
            .field("role", &self.role)
            .finish()
    }
}

pub(crate) fn membership_from_row(row: &sqlx::postgres::PgRow) -> Result<Membership> {
    Ok(Membership {
        tenant: TenantId::from_uuid(row.try_get("tenant_id")?),
        user: row.try_get("user_id")?,
        role: row.try_get("role")?,
        created_at: row.try_get("created_at")?,
    })
}
