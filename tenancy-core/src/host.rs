use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// A validated, normalised host name, as a tenant's domain in the registry.
///
/// Normalisation lowercases and drops one trailing dot; [`Hostname::from_request`] also drops a
/// port, so that `Acme.Example.com:8443` from a `Host` header finds `acme.example.com`.
/// Rules (RFC 1123): at most 253 characters; labels of 1 to 63 ASCII letters, digits and
/// hyphens, not starting or ending with a hyphen. Internationalised names must be given in their
/// ASCII (punycode) form.
///
/// ```
/// use tenancy_core::Hostname;
/// assert_eq!(Hostname::parse("Acme.Example.COM.")?.as_str(), "acme.example.com");
/// assert_eq!(Hostname::from_request("acme.example.com:8080")?.as_str(), "acme.example.com");
/// assert!(Hostname::parse("acme..example.com").is_err());
/// # Ok::<(), tenancy_core::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Hostname(String);

impl Hostname {
    /// Validates and normalises a host name.
    ///
    /// # Errors
    /// [`ValidationError::Host`] naming the rule broken.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let fail = |reason| {
            Err(ValidationError::Host {
                input: input.to_owned(),
                reason,
            })
        };
        let name = input.strip_suffix('.').unwrap_or(input);
        if name.is_empty() {
            return fail("is empty");
        }
        if name.len() > 253 {
            return fail("must be at most 253 characters");
        }
        if !name.is_ascii() {
            return fail("must be ASCII (give internationalised names in punycode)");
        }
        let name = name.to_ascii_lowercase();
        for label in name.split('.') {
            if label.is_empty() {
                return fail("has an empty label");
            }
            if label.len() > 63 {
                return fail("has a label longer than 63 characters");
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return fail("may contain only letters, digits, hyphens and dots");
            }
            if label.starts_with('-') || label.ends_with('-') {
                return fail("has a label that starts or ends with a hyphen");
            }
        }
        Ok(Self(name))
    }

    /// Parses the value of an HTTP `Host` header (or the authority of a URL): as
    /// [`Hostname::parse`], after dropping a `:port`.
    ///
    /// # Errors
    /// [`ValidationError::Host`] for a malformed host or port.
    pub fn from_request(host_header: &str) -> Result<Self, ValidationError> {
        let host = match host_header.rsplit_once(':') {
            Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                host
            }
            Some(_) => {
                return Err(ValidationError::Host {
                    input: host_header.to_owned(),
                    reason: "has a malformed port",
                });
            }
            None => host_header,
        };
        Self::parse(host)
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Hostname {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for Hostname {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl AsRef<str> for Hostname {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(
            Hostname::parse("ACME.example.com").unwrap().as_str(),
            "acme.example.com"
        );
        assert_eq!(Hostname::parse("localhost.").unwrap().as_str(), "localhost");
        assert_eq!(
            Hostname::from_request("Acme.Example.com:443")
                .unwrap()
                .as_str(),
            "acme.example.com"
        );
    }

    #[test]
    fn refuses_malformed_hosts() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = ["abcdefghi"; 26].join(".");
        for bad in [
            "",
            ".",
            "acme..com",
            "-acme.com",
            "acme-.com",
            "acme_corp.com",
            "acme.com/evil",
            "acme com",
            "bücher.de",
            "[::1]",
            "acme.com;drop",
            &long_label,
            &long_name,
        ] {
            assert!(Hostname::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Hostname::from_request("acme.com:").is_err());
        assert!(Hostname::from_request("acme.com:80x").is_err());
    }
}
