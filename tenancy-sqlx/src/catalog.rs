//! Every statement the runtime runs on PostgreSQL's own catalog (`pg_catalog`), named for what
//! it reads, as `registry/store.rs` does for the registry's tables: the model check, the
//! row-level security check, the walk over the tables that hold tenant rows and the deployment
//! check read the server's description of a table through these, so that a change of catalog
//! (a new PostgreSQL version's columns) is made in one file. Raw SQL's own catalog round trip
//! stays with raw SQL, whose checks it serves.

/// The oid of a table named as `$1` (text, resolved as `to_regclass` does), or `NULL`.
pub(crate) const TABLE_OID: &str = "SELECT to_regclass($1)::oid";

/// The schema of the table with oid `$1`.
pub(crate) const TABLE_SCHEMA: &str = "SELECT n.nspname::text FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1";

/// Every live column of table `$1`: `name`, `ty` (as `format_type` spells it), `attnotnull`.
pub(crate) const TABLE_COLUMNS: &str = "SELECT attname::text AS name, format_type(atttypid, atttypmod) AS ty, attnotnull \
     FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped";

/// Table `$1`'s keys and constraints: p(rimary), u(nique), f(oreign), x (exclusion), with
/// their columns in order (`cols`), a foreign key's referenced columns (`fcols`), and whether
/// it references the registry's tenants (`to_registry`).
pub(crate) const TABLE_CONSTRAINTS: &str = "SELECT c.conname::text AS name, c.contype::text AS kind, \
            ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i) \
                  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) AS cols, \
            ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i) \
                  JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) AS fcols, \
            COALESCE(c.confrelid = to_regclass('tenancy.tenants'), false) AS to_registry \
     FROM pg_constraint c WHERE c.conrelid = $1 AND c.contype IN ('p', 'u', 'f', 'x') ORDER BY c.conname";

/// Table `$1`'s indexes that no constraint of its own stands behind: `name` and the column it
/// leads with (`first`, `NULL` for an expression). A foreign key of another table also records
/// the index it relies on in `conindid`, hence the match on `conrelid` too.
pub(crate) const TABLE_INDEXES_WITHOUT_CONSTRAINT: &str = "SELECT ci.relname::text AS name, \
            (SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[0]) AS first \
     FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid \
     WHERE i.indrelid = $1 AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid) \
     ORDER BY ci.relname";

/// The columns of table `$1` (an oid as `bigint`) but `$2` (its tenant column) and generated
/// columns, in table order: what an archive carries.
pub(crate) const DATA_COLUMNS: &str = "SELECT attname::text FROM pg_attribute \
     WHERE attrelid = $1::bigint::oid AND attnum > 0 AND NOT attisdropped \
       AND attgenerated = '' AND attname <> $2 ORDER BY attnum";

/// The primary key's columns of table `$1` (an oid as `bigint`), in key order: how a moved
/// table's checksum orders its rows.
pub(crate) const PRIMARY_KEY_COLUMNS: &str = "SELECT a.attname::text FROM pg_index i \
     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(n, ord) \
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n \
     WHERE i.indrelid = $1::bigint::oid AND i.indisprimary ORDER BY k.ord";

/// The sequence behind column `$2` of table `$1` (qualified, quoted), or `NULL`: the one it
/// owns (serial, identity), else, for an integer column (or a domain over one), the one its
/// default is exactly `nextval` of (an inheritance child's serial column draws from its
/// parent's sequence, which only the parent's column owns; a text column's `'INV-' ||
/// nextval(..)` is no key). Only a sequence in the table's own schema: one elsewhere (a
/// deployment's shared id sequence) serves others too, and is never moved for one tenant's
/// keys.
pub(crate) const COLUMN_SEQUENCE: &str = "SELECT (SELECT s.oid::regclass::text \
     FROM pg_catalog.pg_attribute a \
     JOIN pg_catalog.pg_class t ON t.oid = a.attrelid \
     CROSS JOIN LATERAL ( \
         SELECT pg_catalog.pg_get_serial_sequence($1, $2)::regclass AS seq \
         UNION ALL \
         SELECT d.refobjid::regclass FROM pg_catalog.pg_attrdef ad \
         JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::regclass \
              AND d.objid = ad.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass \
         JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid \
         WHERE ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
           AND pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) \
               = pg_catalog.format('nextval(%L::regclass)', d.refobjid::regclass) \
           AND COALESCE(NULLIF(ty.typbasetype, 0), ty.oid) IN \
               ('pg_catalog.int2'::regtype, 'pg_catalog.int4'::regtype, 'pg_catalog.int8'::regtype) \
     ) q \
     JOIN pg_catalog.pg_class s ON s.oid = q.seq AND s.relkind = 'S' \
          AND s.relnamespace = t.relnamespace \
     WHERE a.attrelid = $1::regclass AND a.attname = $2 AND NOT a.attisdropped \
     LIMIT 1)";

/// Whether a schema named `$1` exists.
pub(crate) const SCHEMA_EXISTS: &str =
    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)";

/// The tables that hold tenant rows, with `oid`, qualified `name`, unqualified `relname`,
/// tenant column (`col`) and whether it is a plain table (`plain`: not partitioned):
/// in schema `$1`, or without it in the search path outside the registry. A table holds tenant
/// rows when it has a `tenant_id` column or a one-column foreign key to `tenancy.tenants`.
pub(crate) const TENANT_TABLES: &str = "SELECT c.oid::bigint AS oid, format('%I.%I', n.nspname, c.relname) AS name, \
            c.relname::text AS relname, tc.col AS col, c.relkind = 'r' AS plain \
     FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     JOIN LATERAL ( \
         SELECT a.attname::text AS col, 0 AS pref FROM pg_attribute a \
         WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
         UNION ALL \
         SELECT a.attname::text, 1 FROM pg_constraint k \
         JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] \
         WHERE k.conrelid = c.oid AND k.contype = 'f' \
           AND k.confrelid = 'tenancy.tenants'::regclass AND cardinality(k.conkey) = 1 \
         ORDER BY pref LIMIT 1 \
     ) tc ON true \
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
       AND CASE WHEN $1::text IS NULL \
                THEN n.nspname = ANY (current_schemas(false)) AND n.nspname <> 'tenancy' \
                ELSE n.nspname = $1 END \
     ORDER BY 2";

/// The inheritance descendants, at every level, of the tables `$1` (oids as `bigint`):
/// (ancestor oid, descendant oid, the descendant qualified and quoted).
pub(crate) const INHERITANCE_DESCENDANTS: &str = "WITH RECURSIVE d (top, rel) AS ( \
         SELECT i.inhparent, i.inhrelid FROM pg_inherits i WHERE i.inhparent::bigint = ANY ($1) \
         UNION \
         SELECT d.top, i.inhrelid FROM d JOIN pg_inherits i ON i.inhparent = d.rel) \
     SELECT d.top::bigint, d.rel::bigint, format('%I.%I', n.nspname, c.relname) \
     FROM d JOIN pg_class c ON c.oid = d.rel JOIN pg_namespace n ON n.oid = c.relnamespace \
     ORDER BY 1, 3";

/// Every foreign key between two different tables, as (referencing oid, referenced oid).
pub(crate) const FOREIGN_KEY_EDGES: &str = "SELECT conrelid::bigint, confrelid::bigint FROM pg_constraint \
     WHERE contype = 'f' AND conrelid <> confrelid";

/// The current role and whether row-level security skips it (superuser, `BYPASSRLS`).
pub(crate) const ROLE_BYPASSES_RLS: &str = "SELECT rolname::text, rolsuper, rolbypassrls FROM pg_catalog.pg_roles \
     WHERE rolname = current_user";

/// Whether row-level security is enabled and forced on table `$1`.
pub(crate) const TABLE_RLS_FLAGS: &str =
    "SELECT relrowsecurity, relforcerowsecurity FROM pg_catalog.pg_class WHERE oid = $1";

/// Table `$1`'s policies, with their expressions as text.
pub(crate) const TABLE_POLICIES: &str = "SELECT polname::text AS name, polpermissive, polcmd::text AS cmd, \
            pg_catalog.pg_get_expr(polqual, polrelid) AS qual, \
            pg_catalog.pg_get_expr(polwithcheck, polrelid) AS check \
     FROM pg_catalog.pg_policy WHERE polrelid = $1 ORDER BY polname";

/// A query for every partition and inheritance child of `parent` (an expression of type
/// `regclass`), at any depth, as `regclass`. Text, not a statement: it is also written into
/// the policy's `DO` block.
pub(crate) fn descendants(parent: &str) -> String {
    format!(
        "WITH RECURSIVE tree(oid) AS ( \
             SELECT inhrelid FROM pg_catalog.pg_inherits WHERE inhparent = {parent} \
             UNION \
             SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.oid) \
         SELECT oid::regclass FROM tree"
    )
}

/// Each own-schema tenant (`slug`, `schema_name`) with whether its schema and its migration
/// history exist: the registry held against the catalog.
pub(crate) const OWN_SCHEMAS_PRESENT: &str = "SELECT t.slug, t.schema_name, \
            n.oid IS NOT NULL AS schema_exists, \
            to_regclass(format('%I.tenancy_migrations', t.schema_name)) IS NOT NULL \
              AS history_exists \
     FROM tenancy.tenants t \
     LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = t.schema_name \
     WHERE t.placement = 'own_schema' AND t.server = 'primary' ORDER BY t.slug";

/// The spare schemas the registry lists that the catalog does not have.
pub(crate) const SPARES_MISSING: &str = "SELECT s.name FROM tenancy.spare_schemas s \
     WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n \
                       WHERE n.nspname = s.name) ORDER BY 1";

/// The version of the Citus extension installed in this database; no row without it.
pub(crate) const CITUS_VERSION: &str =
    "SELECT extversion::text FROM pg_catalog.pg_extension WHERE extname = 'citus'";

/// Citus's active primary workers (the coordinator is group 0). Needs the extension.
pub(crate) const CITUS_ACTIVE_WORKERS: &str = "SELECT count(*) FROM pg_catalog.pg_dist_node \
     WHERE groupid <> 0 AND noderole = 'primary' AND isactive";

/// Every Citus table: `oid`, partition `method` (`h` hash, `n` none), `replication` (`t` a
/// reference table), `colocation` group, distribution `column` and `shards`. Needs the
/// extension.
pub(crate) const CITUS_TABLES: &str = "SELECT p.logicalrelid::oid::bigint AS oid, p.partmethod::text AS method, \
            p.repmodel::text AS replication, p.colocationid::bigint AS colocation, \
            CASE WHEN p.partmethod = 'h' \
                 THEN pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) END AS column, \
            (SELECT count(*) FROM pg_catalog.pg_dist_shard s \
             WHERE s.logicalrelid = p.logicalrelid) AS shards \
     FROM pg_catalog.pg_dist_partition p";

/// Whether this Citus knows schema-based sharding (12.0 and later).
pub(crate) const CITUS_HAS_SCHEMAS: &str =
    "SELECT to_regclass('pg_catalog.pg_dist_schema') IS NOT NULL";

/// The distributed schemas of schema-based sharding. Needs [`CITUS_HAS_SCHEMAS`].
pub(crate) const CITUS_DISTRIBUTED_SCHEMAS: &str =
    "SELECT schemaid::regnamespace::text FROM pg_catalog.pg_dist_schema ORDER BY 1";

/// The registry's tables (schema `tenancy`): `oid` and qualified `name`.
pub(crate) const REGISTRY_TABLES: &str = "SELECT c.oid::bigint AS oid, format('%I.%I', n.nspname, c.relname) AS name \
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = 'tenancy' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 2";
