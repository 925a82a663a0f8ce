use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Where a tenant's rows live. Recorded per tenant in the registry, so one deployment can mix them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Placement {
    /// Shared tables with a `tenant_id` column; every statement binds the tenant. The default.
    SharedTable,
    /// The tenant's tables in a PostgreSQL schema of its own.
    OwnSchema,
    /// The tenant's tables in a database of its own.
    OwnDatabase,
}

impl Placement {
    /// The name stored in the registry.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::SharedTable => "shared_table",
            Self::OwnSchema => "own_schema",
            Self::OwnDatabase => "own_database",
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Placement {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "shared_table" => Ok(Self::SharedTable),
            "own_schema" => Ok(Self::OwnSchema),
            "own_database" => Ok(Self::OwnDatabase),
            _ => Err(ValidationError::Placement {
                input: s.to_owned(),
            }),
        }
    }
}

/// The lifecycle state of a tenant. Only an active tenant resolves to a `TenantCtx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TenantStatus {
    /// Serving requests.
    Active,
    /// Temporarily refused (unpaid invoice, abuse); data kept, resumable.
    Suspended,
    /// Soft-deleted: refused, data kept until purged, restorable.
    Deleted,
}

impl TenantStatus {
    /// The name stored in the registry.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deleted => "deleted",
        }
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TenantStatus {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            "deleted" => Ok(Self::Deleted),
            _ => Err(ValidationError::Status {
                input: s.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in [
            Placement::SharedTable,
            Placement::OwnSchema,
            Placement::OwnDatabase,
        ] {
            assert_eq!(p.as_str().parse::<Placement>().unwrap(), p);
        }
        for s in [
            TenantStatus::Active,
            TenantStatus::Suspended,
            TenantStatus::Deleted,
        ] {
            assert_eq!(s.as_str().parse::<TenantStatus>().unwrap(), s);
        }
        assert!("Shared".parse::<Placement>().is_err());
        assert!("ACTIVE".parse::<TenantStatus>().is_err());
    }
}
