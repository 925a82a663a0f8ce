use std::fmt;

use serde::{Deserialize, Serialize};

use crate::TenantId;

/// A reference to a tenant that can travel: in a background job's payload, a message, a cache key.
///
/// A `TenantRef` is plain data and grants nothing. A worker that receives one turns it back into a
/// `TenantCtx` through the registry (`Tenancy::resolve(&tenant_ref)`), which checks again that the
/// tenant exists and is active: a job queued before a tenant was suspended fails instead of
/// writing into a suspended tenant.
///
/// ```
/// use tenancy_core::{TenantId, TenantRef};
/// let r = TenantRef::new(TenantId::new_v4());
/// let json = serde_json::to_string(&r).unwrap();
/// assert_eq!(serde_json::from_str::<TenantRef>(&json).unwrap(), r);
/// // Cache keys should carry the tenant so that two tenants never share an entry.
/// assert!(r.cache_key("dashboard").starts_with("tenant:"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TenantRef {
    tenant_id: TenantId,
}

impl TenantRef {
    /// A reference to the tenant with this id.
    pub const fn new(tenant_id: TenantId) -> Self {
        Self { tenant_id }
    }

    /// The id of the tenant referred to.
    pub const fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    /// A cache key namespaced by this tenant: `tenant:<uuid>:<key>`.
    ///
    /// Keys built this way cannot collide across tenants, whatever `key` holds.
    pub fn cache_key(&self, key: &str) -> String {
        format!("tenant:{}:{key}", self.tenant_id)
    }
}

impl fmt::Display for TenantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.tenant_id, f)
    }
}
