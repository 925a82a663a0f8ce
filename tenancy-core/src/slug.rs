use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Slugs that would be confusing or dangerous as a tenant's name in a URL or a schema name.
const RESERVED: &[&str] = &[
    "admin",
    "api",
    "app",
    "default",
    "information_schema",
    "postgres",
    "public",
    "root",
    "static",
    "system",
    "template0",
    "template1",
    "tenancy",
    "www",
];

/// The longest slug: leaves room for a schema prefix within PostgreSQL's 63-byte identifiers and
/// fits in one DNS label.
pub const MAX_SLUG_LEN: usize = 48;

/// A validated tenant slug: the short name used in URLs, subdomains and (with the own-schema
/// placement) schema names.
///
/// Rules: 2 to 48 characters; lowercase ASCII letters, digits and single hyphens; starts with a
/// letter, ends with a letter or digit; not a reserved word (`admin`, `public`, `www`, ...) and
/// not starting with `pg`. Uppercase is refused rather than folded, so two slugs can never collide
/// after case folding.
///
/// ```
/// use tenancy_core::Slug;
/// assert_eq!(Slug::parse("acme-corp")?.as_str(), "acme-corp");
/// assert!(Slug::parse("Acme").is_err());
/// assert!(Slug::parse("acme; drop table tenants").is_err());
/// # Ok::<(), tenancy_core::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    /// Checks `input` against the slug rules.
    ///
    /// # Errors
    /// [`ValidationError::Slug`] naming the first rule broken.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let fail = |reason| {
            Err(ValidationError::Slug {
                input: input.to_owned(),
                reason,
            })
        };
        if input.len() < 2 {
            return fail("must be at least 2 characters");
        }
        if input.len() > MAX_SLUG_LEN {
            return fail("must be at most 48 characters");
        }
        if !input
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return fail("may contain only lowercase ASCII letters, digits and hyphens");
        }
        if !input.as_bytes()[0].is_ascii_lowercase() {
            return fail("must start with a letter");
        }
        if input.ends_with('-') {
            return fail("must not end with a hyphen");
        }
        if input.contains("--") {
            return fail("must not contain two hyphens in a row");
        }
        if input.starts_with("pg") {
            return fail("must not start with \"pg\" (reserved by PostgreSQL)");
        }
        if RESERVED.contains(&input) {
            return fail("is a reserved name");
        }
        Ok(Self(input.to_owned()))
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Slug {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for Slug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl AsRef<str> for Slug {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_slugs() {
        for ok in ["ab", "acme", "acme-corp", "a1", "x9-y8-z7", &"a".repeat(48)] {
            assert_eq!(Slug::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_hostile_and_malformed_slugs() {
        let bad = [
            "",
            "a",
            "Acme",
            "ACME",
            "acme_corp",
            "acme corp",
            "acme;drop table x",
            "acme'--",
            "\"acme\"",
            "1acme",
            "-acme",
            "acme-",
            "ac--me",
            "pg_catalog",
            "pgacme",
            "public",
            "tenancy",
            "www",
            "acmé",
            "acme\0",
            "acme\n",
            &"a".repeat(49),
        ];
        for input in bad {
            assert!(Slug::parse(input).is_err(), "{input:?} was accepted");
        }
    }

    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<Slug>("\"acme\"").is_ok());
        assert!(serde_json::from_str::<Slug>("\"Robert'); DROP\"").is_err());
    }
}
