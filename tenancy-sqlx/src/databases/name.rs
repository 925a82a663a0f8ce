//! The names of the databases tenancy creates.
//!
//! A tenant's database is named after its id, `tenancy_db_<32 hex digits>`, so that no caller's
//! text ever reaches a database name, two tenants can never be given the same one, and a
//! database left behind by a crash can be traced to its tenant (see
//! `provision::cleanup_orphans`). Spares are
//! `tenancy_spare_db_<32 hex digits>` (a random id) until one is claimed and renamed.

use std::fmt;

use tenancy_core::{TenantId, ValidationError};
use uuid::Uuid;

/// What every tenant database's name starts with. Reserved: a database so named that the
/// registry does not know is taken for a crash's leftover and dropped by the cleanup.
pub(crate) const TENANT_PREFIX: &str = "tenancy_db_";
/// What every spare database's name starts with.
pub(crate) const SPARE_PREFIX: &str = "tenancy_spare_db_";

/// A database name tenancy may put in SQL text: validated once, quoted every time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DatabaseName(String);

impl DatabaseName {
    /// The database of `tenant`.
    pub(crate) fn for_tenant(tenant: TenantId) -> Self {
        Self(format!("{TENANT_PREFIX}{}", Uuid::from(tenant).simple()))
    }

    /// A new spare database's name.
    pub(crate) fn new_spare() -> Self {
        Self(format!("{SPARE_PREFIX}{}", Uuid::new_v4().simple()))
    }

    /// A name recorded elsewhere (the registry, the application's configuration for the
    /// template): checked like every identifier tenancy writes (`tenancy_core::ident`), and
    /// refused if it is one of PostgreSQL's own databases.
    pub(crate) fn parse(name: &str) -> Result<Self, ValidationError> {
        tenancy_core::ident::validate(name)?;
        if matches!(name, "postgres" | "template0" | "template1") {
            return Err(ValidationError::Identifier {
                input: name.to_owned(),
                reason: "is one of PostgreSQL's own databases",
            });
        }
        Ok(Self(name.to_owned()))
    }

    /// The tenant whose database this is, if it is named like one.
    pub(crate) fn tenant(&self) -> Option<TenantId> {
        let hex = self.0.strip_prefix(TENANT_PREFIX)?;
        // `simple()` form only: 32 lowercase hex digits, so that one tenant has one name.
        if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        Uuid::parse_str(hex).ok().map(TenantId::from)
    }

    /// The bare name, for `PgConnectOptions::database` and bound parameters.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The name quoted for SQL text.
    pub(crate) fn quoted(&self) -> String {
        tenancy_core::ident::quote(&self.0)
    }
}

impl fmt::Display for DatabaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_database_name_round_trips_to_its_tenant() {
        let id = TenantId::new_v4();
        let name = DatabaseName::for_tenant(id);
        assert!(name.as_str().len() <= tenancy_core::ident::MAX_IDENT_LEN);
        assert_eq!(name.tenant(), Some(id));
        assert_eq!(DatabaseName::parse(name.as_str()).unwrap(), name);
        assert_eq!(DatabaseName::new_spare().tenant(), None);
        assert_eq!(
            DatabaseName::parse("tenancy_db_ABC").unwrap().tenant(),
            None
        );
    }

    #[test]
    fn names_that_are_not_identifiers_are_refused() {
        for bad in [
            "",
            "a b",
            "x\"; DROP DATABASE y; --",
            "1abc",
            "postgres",
            "template1",
        ] {
            assert!(DatabaseName::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(DatabaseName::parse(&"a".repeat(64)).is_err());
    }
}
