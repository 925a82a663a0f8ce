//! SQL identifiers: validation and quoting.
//!
//! Every identifier tenancy puts into SQL text (table, column and schema names) is validated
//! once and double-quoted every time. Validation refuses anything a quoted identifier could not
//! hold unambiguously, so quoting never has to escape.

use crate::ValidationError;

/// PostgreSQL truncates identifiers longer than this many bytes; we refuse them instead.
pub const MAX_IDENT_LEN: usize = 63;

/// Validates a table or column name: 1 to 63 ASCII letters, digits, `_` or `$`, not starting
/// with a digit or `$`.
///
/// Case is kept (names are always quoted), so a column renamed to `createdAt` works.
///
/// # Errors
/// [`ValidationError::Identifier`] naming the rule broken.
pub fn validate(name: &str) -> Result<&str, ValidationError> {
    let fail = |reason| {
        Err(ValidationError::Identifier {
            input: name.to_owned(),
            reason,
        })
    };
    let Some(first) = name.bytes().next() else {
        return fail("is empty");
    };
    if name.len() > MAX_IDENT_LEN {
        return fail("is longer than 63 bytes");
    }
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return fail("must start with a letter or an underscore");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
    {
        return fail("may contain only ASCII letters, digits, '_' and '$'");
    }
    Ok(name)
}

/// Validates a schema name that tenancy creates or drops: `^[a-z_][a-z0-9_]{0,62}$`, not
/// starting with `pg_` and not one of PostgreSQL's own schemas.
///
/// # Errors
/// [`ValidationError::Identifier`] naming the rule broken.
pub fn validate_schema(name: &str) -> Result<&str, ValidationError> {
    let fail = |reason| {
        Err(ValidationError::Identifier {
            input: name.to_owned(),
            reason,
        })
    };
    validate(name)?;
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return fail("a schema name may contain only lowercase letters, digits and '_'");
    }
    if name.starts_with("pg_") {
        return fail("must not start with pg_ (reserved by PostgreSQL)");
    }
    if matches!(name, "public" | "information_schema" | "tenancy") {
        return fail("is a reserved schema");
    }
    Ok(name)
}

/// Double-quotes an identifier for SQL text, doubling any embedded quote.
///
/// Validated identifiers never contain one; doubling is here so that quoting is correct on its
/// own, whatever it is given.
///
/// ```
/// assert_eq!(tenancy_core::ident::quote("spins"), "\"spins\"");
/// assert_eq!(tenancy_core::ident::quote("a\"b"), "\"a\"\"b\"");
/// ```
pub fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    push_quoted(&mut out, name);
    out
}

/// Appends the quoted identifier to `out`.
pub fn push_quoted(out: &mut String, name: &str) {
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_identifiers() {
        for ok in ["spins", "_x", "createdAt", "a$b", &"a".repeat(63)] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "$a",
            "a b",
            "a\"b",
            "a;b",
            "spins--",
            "é",
            &"a".repeat(64),
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn validates_schema_names() {
        assert!(validate_schema("t_acme").is_ok());
        for bad in ["T_acme", "pg_toast", "public", "tenancy", "t$x", "t-acme"] {
            assert!(validate_schema(bad).is_err(), "{bad:?}");
        }
    }
}
