//! The names of the databases tenancy creates.
//!
//! A tenant's database is named `tenancy_<tag>_<32 hex digits of the tenant id>`, so that no
//! caller's text ever reaches a database name, two tenants never get the same one, and a
//! database left behind by a crash can be traced to its tenant (see
//! `provision::cleanup_orphans`). The tag names the registry (one deployment): two
//! deployments sharing a server (staging and production, or parallel test runs) never take
//! each other's databases for leftovers. Spares are `tenancy_<tag>_spare_v<version>_<24 hex
//! digits>`: the tenant migration version they were made at, and a random part.

use std::fmt;

use tenancy_core::{TenantId, ValidationError};
use uuid::Uuid;

/// How one registry names its databases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Naming {
    /// `tenancy_<tag>_`.
    prefix: String,
}

impl Naming {
    /// The naming of the registry tagged `tag`: 1 to 12 lowercase letters and digits.
    pub(crate) fn new(tag: &str) -> Result<Self, ValidationError> {
        if tag.is_empty()
            || tag.len() > 12
            || !tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(ValidationError::Identifier {
                input: tag.to_owned(),
                reason: "a registry tag is 1 to 12 lowercase letters and digits",
            });
        }
        Ok(Self {
            prefix: format!("tenancy_{tag}_"),
        })
    }

    /// The database of `tenant`.
    pub(crate) fn tenant(&self, tenant: TenantId) -> DatabaseName {
        DatabaseName(format!("{}{}", self.prefix, Uuid::from(tenant).simple()))
    }

    /// What every database of this registry's tenants starts with (spares too).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// What the names of spares made at tenant migration `version` start with.
    pub(crate) fn spare_prefix(&self, version: i64) -> String {
        format!("{}spare_v{version}_", self.prefix)
    }

    /// A new spare's name, for a spare made at tenant migration `version`.
    pub(crate) fn new_spare(&self, version: i64) -> DatabaseName {
        let random = Uuid::new_v4().simple().to_string();
        DatabaseName(format!("{}{}", self.spare_prefix(version), &random[..24]))
    }

    /// The template for the tenant migrations whose fingerprint is `fingerprint` (see
    /// `Databases::fingerprint`): a template is never migrated in place, a new one is made under
    /// the new fingerprint, so one that exists is current.
    pub(crate) fn template(&self, fingerprint: i64) -> DatabaseName {
        DatabaseName(format!("{}template_v{fingerprint}", self.prefix))
    }

    /// What this registry's templates' names start with.
    pub(crate) fn template_prefix(&self) -> String {
        format!("{}template_v", self.prefix)
    }

    /// A name to build a template under before it is renamed to [`Naming::template`]: a
    /// half-built one is never taken for current.
    pub(crate) fn template_build(&self) -> DatabaseName {
        let random = Uuid::new_v4().simple().to_string();
        DatabaseName(format!("{}build_{}", self.prefix, &random[..24]))
    }

    /// The home database of server `server` (a validated key): where its shared-table tenants'
    /// rows live (see `tenancy_core::Home::ServerShared`). One per server and registry; a key's
    /// `-` becomes `_` (keys have no `_`, so two keys never share a name).
    pub(crate) fn server_home(&self, server: &str) -> DatabaseName {
        DatabaseName(format!("{}home_{}", self.prefix, server.replace('-', "_")))
    }

    /// Whether `name` is a server home database's name of this registry's
    /// ([`Naming::server_home`]), on whichever server.
    pub(crate) fn is_server_home(&self, name: &str) -> bool {
        name.strip_prefix(&self.prefix)
            .is_some_and(|rest| rest.starts_with("home_"))
    }

    /// Whether `name` is one of this registry's template builds ([`Naming::template_build`]).
    pub(crate) fn is_build(&self, name: &DatabaseName) -> bool {
        name.0
            .strip_prefix(&self.prefix)
            .is_some_and(|rest| rest.starts_with("build_"))
    }

    /// The tenant whose database `name` is, if it is named like one of this registry's.
    pub(crate) fn tenant_of(&self, name: &DatabaseName) -> Option<TenantId> {
        let hex = name.0.strip_prefix(&self.prefix)?;
        // `simple()` form only: 32 lowercase hex digits, so that one tenant has one name.
        if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        Uuid::parse_str(hex).ok().map(TenantId::from)
    }
}

/// A database name tenancy may put in SQL text: validated once, quoted every time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DatabaseName(String);

impl DatabaseName {
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
        let naming = Naming::new("ab12").unwrap();
        let id = TenantId::new_v4();
        let name = naming.tenant(id);
        assert!(name.as_str().len() <= tenancy_core::ident::MAX_IDENT_LEN);
        assert_eq!(naming.tenant_of(&name), Some(id));
        assert_eq!(DatabaseName::parse(name.as_str()).unwrap(), name);
        // Another registry's database, a spare, a name in another case: not this tenant's.
        assert_eq!(Naming::new("cd34").unwrap().tenant_of(&name), None);
        let spare = naming.new_spare(7);
        assert!(spare.as_str().len() <= tenancy_core::ident::MAX_IDENT_LEN);
        assert!(spare.as_str().starts_with(&naming.spare_prefix(7)));
        assert_eq!(naming.tenant_of(&spare), None);
        let upper = DatabaseName::parse(
            &name
                .as_str()
                .to_uppercase()
                .replace("TENANCY_AB12_", "tenancy_ab12_"),
        )
        .unwrap();
        assert_eq!(naming.tenant_of(&upper), None);
    }

    #[test]
    fn a_server_home_is_named_by_its_server_and_never_like_a_tenant() {
        let naming = Naming::new("abcdefghijkl").unwrap();
        let key = format!("a{}", "-z".repeat(15));
        let home = naming.server_home(&key);
        assert!(DatabaseName::parse(home.as_str()).is_ok());
        assert!(naming.is_server_home(home.as_str()));
        assert_eq!(naming.tenant_of(&home), None);
        assert_ne!(naming.server_home("eu-2"), naming.server_home("eu2"));
        assert!(!naming.is_server_home(naming.tenant(TenantId::new_v4()).as_str()));
        assert!(!Naming::new("other").unwrap().is_server_home(home.as_str()));
    }

    #[test]
    fn names_and_tags_that_are_not_identifiers_are_refused() {
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
        for bad in ["", "AB", "a_b", "abcdefghijklm", "a\"b"] {
            assert!(Naming::new(bad).is_err(), "tag {bad:?} was accepted");
        }
    }
}
