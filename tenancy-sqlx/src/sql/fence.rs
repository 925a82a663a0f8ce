//! The write fence's call, as it goes into every repository write (see `crate::moving` for the
//! design): one function call per statement, evaluated once before the statement writes
//! anything. In an insert it is the first row's tenant value, a plain call (Citus refuses a
//! subquery in `INSERT ... VALUES`, and evaluates a function there on the coordinator before it
//! routes the row); in an `UPDATE` or `DELETE` it is a scalar subquery (an init plan), so that
//! it runs once before any row is read rather than once per row.

/// Open and close the tenant's placeholder where a statement built once takes its tenant
/// through the fence; the placement fills the fence in when the statement runs (see
/// `PlacedSql`).
pub(crate) const FENCE_OPEN: char = '\u{3}';
pub(crate) const FENCE_CLOSE: char = '\u{4}';

/// The fence's place in a statement built once, around the tenant's placeholder `tenant`.
pub(crate) fn marked(tenant: &str) -> String {
    format!("{FENCE_OPEN}{tenant}{FENCE_CLOSE}")
}

/// The quoted schema the own-database placement's statements name in the tenant's database.
/// There the fence is the tenant database's own `tenancy.write_fence` (see
/// `databases::provision::FENCE_DDL`), which checks the database's identity row rather than a
/// registry. No own-schema tenant has it (`public` is not a schema tenancy creates).
const OWN_DATABASE_SCHEMA: &str = "\"public\"";

/// The arguments naming the home a write is going to, after the tenant: the placement and the
/// schema as the registry records them. `schema` is the tenant's quoted schema (validated: only
/// lowercase letters, digits and `_`, so it is a safe literal once unquoted); `None` on shared
/// tables.
fn home_args(schema: Option<&str>) -> String {
    match schema {
        None => "'shared_table', NULL::text".to_owned(),
        Some(OWN_DATABASE_SCHEMA) => "'own_database', NULL::text".to_owned(),
        Some(quoted) => format!("'own_schema', '{}'", quoted.trim_matches('"')),
    }
}

/// The tenant (`tenant` is its placeholder) through the fence, as a value: an insert's first
/// row puts it in the tenant column's place. A plain call, never a subquery (see above).
pub(crate) fn value(tenant: &str, schema: Option<&str>) -> String {
    format!("tenancy.write_fence({tenant}, {})", home_args(schema))
}

/// The fence as a condition, for an `UPDATE` or `DELETE`: a constant one (a scalar subquery),
/// which PostgreSQL checks once before reading any row.
pub(crate) fn guard(tenant: &str, schema: Option<&str>) -> String {
    format!("(SELECT {}) IS NOT NULL", value(tenant, schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_names_the_home_as_the_registry_spells_it() {
        assert_eq!(
            guard("$3", None),
            "(SELECT tenancy.write_fence($3, 'shared_table', NULL::text)) IS NOT NULL"
        );
        assert_eq!(
            value("$2", Some(r#""t_acme""#)),
            "tenancy.write_fence($2, 'own_schema', 't_acme')"
        );
        assert_eq!(
            value("$2", Some(OWN_DATABASE_SCHEMA)),
            "tenancy.write_fence($2, 'own_database', NULL::text)"
        );
        // Citus refuses a subquery in `INSERT ... VALUES` ("subqueries are not supported
        // within INSERT queries"): an insert's fence is a plain call.
        for schema in [None, Some(r#""t_acme""#), Some(OWN_DATABASE_SCHEMA)] {
            assert!(!value("$2", schema).contains("SELECT"));
        }
        assert_eq!(
            guard("$2", Some(OWN_DATABASE_SCHEMA)),
            "(SELECT tenancy.write_fence($2, 'own_database', NULL::text)) IS NOT NULL"
        );
    }

    #[test]
    fn the_unfenced_schema_is_the_one_tenant_databases_use() {
        assert_eq!(
            tenancy_core::ident::quote(tenancy_core::home::TENANT_DATABASE_SCHEMA),
            OWN_DATABASE_SCHEMA
        );
    }
}
