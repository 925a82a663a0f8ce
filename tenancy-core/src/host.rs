use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

#[cfg(feature = "idna")]
mod idn;

/// A validated, normalised host name, as a tenant's domain in the registry.
///
/// Normalisation lowercases and drops one trailing dot; [`Hostname::from_request`] also drops a
/// port, so that `Acme.Example.com:8443` from a `Host` header finds `acme.example.com`.
/// Rules (RFC 1123), on the ASCII form: at most 253 characters; labels of 1 to 63 ASCII
/// letters, digits and hyphens, not starting or ending with a hyphen.
///
/// International names (IDNA, UTS 46) are accepted in either form and kept in the ASCII
/// (punycode) form that DNS and `Host` headers carry, so both spellings are one name:
/// `bücher.example` and `xn--bcher-kva.example` find the same tenant. A label that mixes
/// scripts (a Latin `paypal` with a Cyrillic `а`) is refused in either form, as are labels
/// separated by a full stop other than `.` (`。`, `．`). [`Hostname::to_unicode`] gives the
/// form to show people. (This needs the crate feature `idna`, on by default; without it,
/// international names are refused.)
///
/// ```
/// use tenancy_core::Hostname;
/// assert_eq!(Hostname::parse("Acme.Example.COM.")?.as_str(), "acme.example.com");
/// assert_eq!(Hostname::from_request("acme.example.com:8080")?.as_str(), "acme.example.com");
/// assert!(Hostname::parse("acme..example.com").is_err());
///
/// # if cfg!(feature = "idna") {
/// let idn = Hostname::parse("Bücher.example")?;
/// assert_eq!(idn.as_str(), "xn--bcher-kva.example");
/// assert_eq!(idn, Hostname::parse("xn--bcher-kva.example")?);
/// assert_eq!(idn.to_unicode(), "bücher.example");
/// assert!(Hostname::parse("p\u{0430}ypal.example").is_err()); // Cyrillic а among Latin
/// # }
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
        // Said here, before any mapping, so that each mistake is named rather than reported
        // as an IDNA failure: the ASCII characters a host may hold, and what separates labels.
        if name.chars().any(|c| LOOKALIKE_DOTS.contains(&c)) {
            return fail("separates labels with a full stop other than '.'");
        }
        if !name
            .chars()
            .all(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return fail("may contain only letters, digits, hyphens and dots");
        }
        if name.split('.').any(str::is_empty) {
            return fail("has an empty label");
        }
        let name = if name.is_ascii() {
            name.to_ascii_lowercase()
        } else {
            match to_ascii(name) {
                Ok(ascii) => ascii,
                Err(reason) => return fail(reason),
            }
        };
        if name.len() > 253 {
            return fail("must be at most 253 characters");
        }
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
            if label.starts_with("xn--")
                && let Err(reason) = check_punycode_label(label)
            {
                return fail(reason);
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

    /// The normalised name, in ASCII: international labels in punycode (`xn--bcher-kva.example`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name to show people: punycode labels decoded (`bücher.example`); ASCII names as
    /// they are.
    ///
    /// ```
    /// use tenancy_core::Hostname;
    /// # if cfg!(feature = "idna") {
    /// assert_eq!(Hostname::parse("xn--bcher-kva.example")?.to_unicode(), "bücher.example");
    /// # }
    /// # Ok::<(), tenancy_core::ValidationError>(())
    /// ```
    pub fn to_unicode(&self) -> String {
        if self.0.split('.').any(|label| label.starts_with("xn--")) {
            to_unicode(&self.0)
        } else {
            self.0.clone()
        }
    }
}

/// Characters UTS 46 would read as a label separator. A name typed with one is refused rather
/// than mapped: an operator who meant a dot can type one, and a separator nobody sees as one
/// has no business in a tenant's domain.
const LOOKALIKE_DOTS: [char; 3] = ['\u{3002}', '\u{FF0E}', '\u{FF61}'];

#[cfg(feature = "idna")]
use idn::{check_label as check_punycode_label, to_ascii, to_unicode};

#[cfg(not(feature = "idna"))]
fn to_ascii(_: &str) -> Result<String, &'static str> {
    Err("must be ASCII (international names need tenancy-core's `idna` feature)")
}

#[cfg(not(feature = "idna"))]
fn check_punycode_label(_: &str) -> Result<(), &'static str> {
    Err("has a punycode label (international names need tenancy-core's `idna` feature)")
}

#[cfg(not(feature = "idna"))]
fn to_unicode(ascii: &str) -> String {
    ascii.to_owned()
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

    /// A name whose punycode form is `label` plus `.example`: the punycode form of hostile
    /// Unicode, to show that it is refused in either spelling.
    #[cfg(feature = "idna")]
    fn punycode(unicode: &str) -> String {
        idna::domain_to_ascii(unicode).expect("idna encodes it")
    }

    #[cfg(feature = "idna")]
    #[test]
    fn international_names_are_one_name_in_either_form() {
        let ascii = "xn--bcher-kva.example";
        for spelling in [
            "bücher.example",
            "Bücher.Example",
            "BÜCHER.EXAMPLE",
            "bücher.example.",
            "xn--bcher-kva.example",
            "XN--BCHER-KVA.example",
        ] {
            let host = Hostname::parse(spelling).unwrap_or_else(|e| panic!("{spelling}: {e}"));
            assert_eq!(host.as_str(), ascii, "{spelling:?}");
            assert_eq!(host.to_unicode(), "bücher.example", "{spelling:?}");
        }
        assert_eq!(
            Hostname::from_request("bücher.example:8443")
                .unwrap()
                .as_str(),
            ascii
        );
        // Scripts written together, and single scripts other than Latin.
        for (unicode, shown) in [
            ("例え.テスト", "例え.テスト"),
            ("한국어.example", "한국어.example"),
            ("παράδειγμα.example", "παράδειγμα.example"),
            ("ПРИМЕР.рф", "пример.рф"),
            ("münchen-2.example", "münchen-2.example"),
        ] {
            let host = Hostname::parse(unicode).unwrap_or_else(|e| panic!("{unicode}: {e}"));
            assert!(host.as_str().is_ascii(), "{unicode:?} kept as {host}");
            assert_eq!(host.to_unicode(), shown);
            assert_eq!(Hostname::parse(host.as_str()).unwrap(), host, "{unicode:?}");
        }
        // ASCII names are shown as they are.
        assert_eq!(
            Hostname::parse("acme.example").unwrap().to_unicode(),
            "acme.example"
        );
    }

    #[cfg(feature = "idna")]
    #[test]
    fn refuses_hostile_international_names() {
        let reason = |input: &str| match Hostname::parse(input) {
            Ok(host) => panic!("{input:?} was accepted as {host}"),
            Err(ValidationError::Host { reason, .. }) => reason,
            Err(other) => panic!("{input:?}: not a host error: {other}"),
        };
        let mixed = "mixes scripts in one label (a look-alike of another name?)";
        // A Cyrillic а in a Latin name; a Greek ο; Cyrillic beside Latin words. Each refused
        // in its Unicode and its punycode spelling.
        for hostile in [
            "p\u{0430}ypal.example",
            "g\u{03BF}ogle.example",
            "bank-\u{0431}.example",
        ] {
            assert_eq!(reason(hostile), mixed, "{hostile:?}");
            let encoded = punycode(hostile);
            assert!(encoded.starts_with("xn--"), "{encoded}");
            assert_eq!(reason(&encoded), mixed, "{encoded:?}");
        }
        // Full stops that are not '.'.
        for dot in [
            "bücher\u{3002}example",
            "bücher\u{FF0E}example",
            "acme\u{FF61}example",
        ] {
            assert_eq!(
                reason(dot),
                "separates labels with a full stop other than '.'",
                "{dot:?}"
            );
        }
        // Empty labels, whatever the script.
        for empty in [
            "bücher..example",
            ".bücher.example",
            "bücher.example..",
            "ü..",
        ] {
            assert_eq!(reason(empty), "has an empty label", "{empty:?}");
        }
        // Overlong: a label of 62 characters whose punycode form passes 63; a name whose ASCII
        // form passes 253.
        let label = "üa".repeat(31);
        assert!(label.chars().count() <= 63);
        assert_eq!(
            reason(&format!("{label}.example")),
            "has a label longer than 63 characters"
        );
        let long = ["bücher-eins"; 17].join(".");
        assert!(long.chars().count() <= 253);
        assert_eq!(reason(&long), "must be at most 253 characters");
        // ASCII that a host may not hold, beside Unicode.
        for bad in ["bücher_x.example", "bücher.example/evil", "bü cher.example"] {
            assert_eq!(
                reason(bad),
                "may contain only letters, digits, hyphens and dots",
                "{bad:?}"
            );
        }
        // Characters IDNA forbids (a no-break space), and symbols UTS 46 lets through but IDNA
        // 2008 does not (a fraction slash that reads as '/', an emoji), in either spelling.
        assert_eq!(
            reason("b\u{00A0}cher.example"),
            "is not a valid internationalised name (IDNA, UTS 46)"
        );
        let symbol = "holds a symbol or punctuation that IDNA 2008 does not allow (a look-alike?)";
        for hostile in ["bücher\u{2044}x.example", "\u{1F4A9}.example"] {
            assert_eq!(reason(hostile), symbol, "{hostile:?}");
            assert_eq!(reason(&punycode(hostile)), symbol, "{hostile:?}");
        }
        assert!(reason("xn--bcher-kva-.example").contains("hyphen"));
        assert!(reason("xn--abc.example").contains("punycode"));
    }
}
