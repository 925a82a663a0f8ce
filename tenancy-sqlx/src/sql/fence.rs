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

/// The write fence's class key, `hashtext('tenancy.write_fence')`: the first half of the key a
/// move takes exclusive and a write takes shared (the tenant's `uuid_hash` is the second). The
/// functions below spell it as [`fence_class!`]; a test keeps the two equal.
pub(crate) const FENCE_CLASS: i32 = -1_682_971_418;

/// [`FENCE_CLASS`] as SQL text, for the functions' `concat!`.
macro_rules! fence_class {
    () => {
        "-1682971418"
    };
}

/// The body both waiting functions share: `lock` (a statement after `PERFORM`) run under a
/// `lock_timeout` of `tenancy.move_wait` (5 s by default), restored afterwards; a lock not had
/// in time fails the write with TM001.
macro_rules! fence_wait_body {
    ($lock:expr) => {
        concat!(
            "
DECLARE
    saved text := pg_catalog.current_setting('lock_timeout');
    wait  text := COALESCE(pg_catalog.current_setting('tenancy.move_wait', true), '');
BEGIN
    IF wait OPERATOR(pg_catalog.=) '' THEN
        wait := '5s';
    END IF;
    PERFORM pg_catalog.set_config('lock_timeout', wait, true);
    BEGIN
        PERFORM ",
            $lock,
            ";
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION 'tenant % is being moved: its write waited % and was not applied; retry', p_tenant, wait
            USING ERRCODE = 'TM001', DETAIL = p_tenant::text;
    END;
    PERFORM pg_catalog.set_config('lock_timeout', saved, true);
END
"
        )
    };
}

/// The write fence's three functions, as the registry (its migration 8) and every tenant
/// database (`databases::provision::FENCE_DDL`) make them: one text, so that the two fences
/// never drift apart. What differs is given: `create` (`CREATE` or `CREATE OR REPLACE`), the
/// row-locking function's `security` (`SECURITY DEFINER ` in the registry, whose role may not
/// read its tenants otherwise), and `write_fence`'s comment on the row it locks and the
/// condition under which the home `p_placement`/`p_schema` is not the tenant's (`home_gone`).
/// The text must stay as it is: registry migrations are never edited, and a move compares a
/// tenant database's functions with this text (`provision::foreign_fence`).
macro_rules! fence_functions {
    (
        create: $create:literal,
        security: $security:literal,
        row_comment: $row_comment:literal,
        home_gone: $home_gone:literal $(,)?
    ) => {
        concat!(
            $create,
            " FUNCTION tenancy.write_fence_wait(p_tenant uuid) RETURNS void
LANGUAGE plpgsql AS $fn$",
            $crate::sql::fence::fence_wait_body!(concat!(
                "pg_catalog.pg_advisory_xact_lock_shared(",
                $crate::sql::fence::fence_class!(),
                ", pg_catalog.uuid_hash(p_tenant))"
            )),
            "$fn$;

",
            $create,
            " FUNCTION tenancy.write_fence_serial(p_tenant uuid) RETURNS void
LANGUAGE plpgsql ",
            $security,
            "SET search_path = pg_catalog, pg_temp AS $fn$",
            $crate::sql::fence::fence_wait_body!(
                "1 FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) p_tenant FOR SHARE"
            ),
            "$fn$;

",
            $create,
            " FUNCTION tenancy.write_fence(p_tenant uuid, p_placement text, p_schema text) RETURNS uuid
LANGUAGE plpgsql AS $fn$
BEGIN
",
            $row_comment,
            "
    IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed' THEN
        PERFORM tenancy.write_fence_serial(p_tenant);
    END IF;
    IF NOT pg_catalog.pg_try_advisory_xact_lock_shared(",
            $crate::sql::fence::fence_class!(),
            ", pg_catalog.uuid_hash(p_tenant)) THEN
        PERFORM tenancy.write_fence_wait(p_tenant);
    END IF;
    IF ",
            $home_gone,
            " THEN
        RAISE EXCEPTION 'tenant % no longer lives where this write was going (it moved, or is gone); resolve it again', p_tenant
            USING ERRCODE = 'TM002', DETAIL = p_tenant::text;
    END IF;
    RETURN p_tenant;
END
$fn$;
"
        )
    };
}

pub(crate) use {fence_class, fence_functions, fence_wait_body};

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
    fn the_functions_spell_the_class_key_as_it_is() {
        assert_eq!(fence_class!(), FENCE_CLASS.to_string());
    }

    #[test]
    fn the_unfenced_schema_is_the_one_tenant_databases_use() {
        assert_eq!(
            tenancy_core::ident::quote(tenancy_core::home::TENANT_DATABASE_SCHEMA),
            OWN_DATABASE_SCHEMA
        );
    }
}
