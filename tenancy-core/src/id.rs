use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ValidationError;

/// The identity of a tenant: a uuid, as stored in the registry and in every `tenant_id` column.
///
/// A `TenantId` names a tenant; it grants nothing. Anyone can build one (from a URL, a job
/// payload, a log line), which is why no repository accepts it: reaching a tenant's rows takes
/// a `TenantCtx`, which only the registry hands out, and only for an active tenant.
///
/// ```
/// use tenancy_core::TenantId;
/// let id: TenantId = "6f1c1c1e-3b7a-4c39-9a43-4b0cdd0f5a11".parse()?;
/// assert_eq!(id.to_string(), "6f1c1c1e-3b7a-4c39-9a43-4b0cdd0f5a11");
/// # Ok::<(), tenancy_core::ValidationError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(Uuid);

impl TenantId {
    /// Wraps a uuid. This makes a name, not a capability.
    pub const fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// A new random (version 4) id, for a tenant about to be created.
    pub fn new_v4() -> Self {
        Self(Uuid::new_v4())
    }

    /// The uuid inside.
    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for TenantId {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| ValidationError::TenantId {
                input: s.to_owned(),
            })
    }
}

impl From<Uuid> for TenantId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl From<TenantId> for Uuid {
    fn from(id: TenantId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text_and_json() {
        let id = TenantId::new_v4();
        assert_eq!(id.to_string().parse::<TenantId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<TenantId>(&json).unwrap(), id);
    }

    #[test]
    fn rejects_non_uuid_text() {
        let err = "acme".parse::<TenantId>().unwrap_err();
        assert_eq!(
            err,
            ValidationError::TenantId {
                input: "acme".into()
            }
        );
    }
}
