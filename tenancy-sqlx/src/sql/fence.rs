//! The write fence's call, as it goes into every repository write (see `crate::moving` for the
//! design): one function call per statement, evaluated once (an init plan) before the
//! statement writes anything.

/// Marks where a statement built once names the home its fence checks; the placement fills it
/// in when the statement runs (see `PlacedSql`).
pub(crate) const HOME_MARK: char = '\u{3}';

/// The arguments naming the home a write is going to, after the tenant: the placement and the
/// schema as the registry records them. `schema` is the tenant's quoted schema (validated: only
/// lowercase letters, digits and `_`, so it is a safe literal once unquoted); `None` on shared
/// tables.
pub(crate) fn home_args(schema: Option<&str>) -> String {
    match schema {
        None => "'shared_table', NULL::text".to_owned(),
        Some(quoted) => format!("'own_schema', '{}'", quoted.trim_matches('"')),
    }
}

/// The fence as a value: the tenant (`tenant` is its placeholder), once the fence let the
/// write through. For an insert's first row, in the tenant column's place.
pub(crate) fn value(tenant: &str, home: &str) -> String {
    format!("(SELECT tenancy.write_fence({tenant}, {home}))")
}

/// The fence as a condition, for an `UPDATE` or `DELETE`: a constant one, which PostgreSQL
/// checks once before reading any row.
pub(crate) fn guard(tenant: &str, home: &str) -> String {
    format!("{} IS NOT NULL", value(tenant, home))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_home_is_the_registry_spelling_of_the_placement() {
        assert_eq!(home_args(None), "'shared_table', NULL::text");
        assert_eq!(home_args(Some(r#""t_acme""#)), "'own_schema', 't_acme'");
        assert_eq!(
            guard("$3", &home_args(None)),
            "(SELECT tenancy.write_fence($3, 'shared_table', NULL::text)) IS NOT NULL"
        );
    }
}
