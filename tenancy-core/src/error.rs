use thiserror::Error;

/// Why a string a user gave (a slug, a host, an identifier) was refused.
///
/// Each variant carries the offending input so that the message can be shown as is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A tenant slug broke one of the rules of [`Slug`](crate::Slug).
    #[error("invalid tenant slug {input:?}: {reason}")]
    Slug {
        /// What was given.
        input: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// A host name broke one of the rules of [`Hostname`](crate::Hostname).
    #[error("invalid host name {input:?}: {reason}")]
    Host {
        /// What was given.
        input: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// An SQL identifier (a table, column or schema name) broke one of the rules of
    /// [`ident::validate`](crate::ident::validate).
    #[error("invalid SQL identifier {input:?}: {reason}")]
    Identifier {
        /// What was given.
        input: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// A tenant's display name broke one of the rules of [`TenantName`](crate::TenantName).
    #[error("invalid tenant name {input:?}: {reason}")]
    Name {
        /// What was given.
        input: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// A string that should hold a tenant id is not a uuid.
    #[error("invalid tenant id {input:?}: not a uuid")]
    TenantId {
        /// What was given.
        input: String,
    },
    /// A placement name is not one of `shared_table`, `own_schema`, `own_database`.
    #[error("unknown placement {input:?}: expected shared_table, own_schema or own_database")]
    Placement {
        /// What was given.
        input: String,
    },
    /// A status name is not one of `active`, `suspended`, `deleted`.
    #[error("unknown tenant status {input:?}: expected active, suspended or deleted")]
    Status {
        /// What was given.
        input: String,
    },
}
