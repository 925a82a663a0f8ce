//! A tenant's display name: free text, with the few rules that keep it printable.

use std::fmt;

use crate::ValidationError;

/// The longest display name, in characters.
pub const MAX_NAME_LEN: usize = 200;

/// A tenant's display name ("Acme Corp"): trimmed, 1 to 200 characters, no control characters.
///
/// ```
/// use tenancy_core::TenantName;
///
/// assert_eq!(TenantName::parse("  Acme Corp ")?.as_str(), "Acme Corp");
/// assert!(TenantName::parse("   ").is_err());
/// assert!(TenantName::parse("Acme\u{7}").is_err());
/// # Ok::<(), tenancy_core::ValidationError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TenantName(String);

impl TenantName {
    /// Trims `input` and checks it.
    ///
    /// # Errors
    /// [`ValidationError::Name`] naming the rule broken.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let fail = |reason| {
            Err(ValidationError::Name {
                input: input.to_owned(),
                reason,
            })
        };
        let name = input.trim();
        if name.is_empty() {
            return fail("must not be empty");
        }
        if name.chars().count() > MAX_NAME_LEN {
            return fail("must be at most 200 characters");
        }
        if name.chars().any(char::is_control) {
            return fail("must not contain control characters");
        }
        Ok(Self(name.to_owned()))
    }

    /// The trimmed name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_counts_characters_not_bytes() {
        assert!(TenantName::parse(&"é".repeat(MAX_NAME_LEN)).is_ok());
        assert!(TenantName::parse(&"e".repeat(MAX_NAME_LEN + 1)).is_err());
    }
}
