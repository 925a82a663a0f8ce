-- What the catalog says about the names one raw query uses, on the connection that runs it.
-- $1 text[]  relations named outside the placeholders, as written (quoted, maybe qualified)
-- $2 text[]  the declared global tables (quoted, maybe qualified)
-- $3 name[]  tenant columns          $4 name[] functions    $5 name[] operators
-- $6 name[]  cast types              $7 name[] operators whose operand types are unknown
-- $8 text[], $9 text[], $10 name[], $11 bool[]: operators on a placeholder's column and a
--            parameter or literal: operator, table (quoted), column, column on the left
-- $12 name[] the fields of `x.field` references (also calls, in functional notation)
-- $13 oid[]  per operator of $8: the type the parameter on its other side was bound with
--            (NULL for a literal, whose type the column's decides)
-- One row per finding: (kind, name, detail).
--   version:  the server's version number (always one row)
--   relation: a named relation that is not a declared global table without tenant data
--   shadowed: a function, operator or type of the SQL also defined outside pg_catalog on the
--             search path (resolution could pick it)
--   leaky:    a function or operator that is not leakproof: the tenant's rows are fenced
--   fieldcall: a built-in that `x.field` would call
-- Each branch below is sent only when its input is not empty (see check.rs): the planner's
-- time grows with the branches, and it plans the query anew for each call's arrays.
-- @branch version
SELECT 'version'::text AS kind, pg_catalog.current_setting('server_version_num') AS name,
       ''::text AS detail
-- @branch relation
SELECT 'relation', r.name, CASE
    WHEN r.oid IS NULL THEN 'does not exist'
    WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.unnest($2::text[]) g (name)
                     WHERE pg_catalog.to_regclass(g.name) = r.oid)
        THEN 'is not a declared global table'
    WHEN c.relkind NOT IN ('r', 'p') THEN 'is not a table'
    WHEN n.nspname IN ('pg_catalog', 'information_schema', 'pg_toast', 'tenancy')
         OR pg_catalog.starts_with(n.nspname::text, 't_')
         /*registry*/
         OR EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.schema_name = n.nspname)
         OR EXISTS (SELECT 1 FROM tenancy.spare_schemas s WHERE s.name = n.nspname)
         /*end registry*/
        THEN pg_catalog.format('is in the schema %I, which holds tenant or system data', n.nspname)
    WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                   AND a.attname = ANY ($3::name[]))
        THEN 'has a tenant column'
    WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                 WHERE k.conrelid = c.oid AND k.contype = 'f'
                   AND k.confrelid = 'tenancy.tenants'::regclass)
        THEN 'references tenancy.tenants'
    WHEN c.relkind = 'r' AND EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
                                     WHERE i.inhparent = c.oid)
        THEN 'has inheritance children, which a read of it includes'
    -- A read of a partitioned table reads its partitions; a partition's rows are its tree's.
    -- Every table of the tree (from its root) is judged as the named one is.
    WHEN EXISTS (SELECT 1
                 FROM pg_catalog.pg_partition_tree(
                          COALESCE(pg_catalog.pg_partition_root(c.oid), c.oid)) m
                 JOIN pg_catalog.pg_class mc ON mc.oid = m.relid
                 JOIN pg_catalog.pg_namespace mn ON mn.oid = mc.relnamespace
                 WHERE mc.oid <> c.oid
                   AND (mn.nspname IN ('pg_catalog', 'information_schema', 'pg_toast', 'tenancy')
                        OR pg_catalog.starts_with(mn.nspname::text, 't_')
                        /*registry*/
                        OR EXISTS (SELECT 1 FROM tenancy.tenants t
                                   WHERE t.schema_name = mn.nspname)
                        OR EXISTS (SELECT 1 FROM tenancy.spare_schemas s
                                   WHERE s.name = mn.nspname)
                        /*end registry*/
                        OR EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                                   WHERE a.attrelid = mc.oid AND a.attnum > 0
                                     AND NOT a.attisdropped AND a.attname = ANY ($3::name[]))
                        OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                                   WHERE k.conrelid = mc.oid AND k.contype = 'f'
                                     AND k.confrelid = 'tenancy.tenants'::regclass)))
        THEN 'is in a partition tree with a table of tenant or system data, which a read of it includes'
    END
FROM pg_catalog.unnest($1::text[]) AS r0 (name)
CROSS JOIN LATERAL (SELECT r0.name, pg_catalog.to_regclass(r0.name) AS oid) r
LEFT JOIN pg_catalog.pg_class c ON c.oid = r.oid
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
-- @branch shadowed_functions
SELECT 'shadowed', p.proname::text, pg_catalog.format('function %I.%I', n.nspname, p.proname)
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.proname = ANY ($4::name[]) AND n.nspname <> 'pg_catalog'
  AND n.nspname = ANY (pg_catalog.current_schemas(false))
-- @branch shadowed_operators
SELECT 'shadowed', o.oprname::text, pg_catalog.format('operator %I.%s', n.nspname, o.oprname)
FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
WHERE o.oprname = ANY ($5::name[]) AND n.nspname <> 'pg_catalog'
  AND n.nspname = ANY (pg_catalog.current_schemas(false))
-- @branch shadowed_types
SELECT 'shadowed', t.typname::text, pg_catalog.format('type %I.%I', n.nspname, t.typname)
FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE t.typname = ANY ($6::name[]) AND n.nspname <> 'pg_catalog'
  AND n.nspname = ANY (pg_catalog.current_schemas(false))
-- @branch leaky_functions
-- Aggregates and window functions run on the rows a scan returned, never inside it.
SELECT DISTINCT 'leaky', p.proname::text, 'function'
FROM pg_catalog.pg_proc p
WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY ($4::name[])
  AND NOT p.proleakproof AND p.prokind NOT IN ('a', 'w')
-- @branch leaky_operators
SELECT DISTINCT 'leaky', o.oprname::text, 'operator'
FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode
WHERE o.oprnamespace = 'pg_catalog'::regnamespace AND o.oprname = ANY ($7::name[])
  AND NOT p.proleakproof
-- @branch leaky_typed
-- The operator of the column's type: every built-in one of that name taking the column's type
-- on its side must be leakproof, and there must be one (else the server casts the column). A
-- parameter's type is the one it was bound with: the server picks the operator taking exactly
-- the column's type and it, and without one casts (int4 > numeric is numeric_gt, not
-- leakproof): fenced.
SELECT DISTINCT 'leaky', u.op, 'operator on ' || u.col
-- (multi-argument unnest is grammar, valid only unqualified in FROM)
FROM unnest($8::text[], $9::text[], $10::name[], $11::bool[], $13::oid[])
  AS u (op, tbl, col, lft, param)
LEFT JOIN pg_catalog.pg_attribute a
  ON a.attrelid = pg_catalog.to_regclass(u.tbl) AND a.attname = u.col AND NOT a.attisdropped
WHERE a.atttypid IS NULL
   OR u.param IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_operator o
                      WHERE o.oprname = u.op AND o.oprnamespace = 'pg_catalog'::regnamespace
                        AND CASE WHEN u.lft THEN o.oprleft = a.atttypid AND o.oprright = u.param
                                 ELSE o.oprleft = u.param AND o.oprright = a.atttypid END)
   OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_operator o
                  WHERE o.oprname = u.op AND o.oprnamespace = 'pg_catalog'::regnamespace
                    AND CASE WHEN u.lft THEN o.oprleft ELSE o.oprright END = a.atttypid)
   OR EXISTS (SELECT 1 FROM pg_catalog.pg_operator o
              JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode
              WHERE o.oprname = u.op AND o.oprnamespace = 'pg_catalog'::regnamespace
                AND CASE WHEN u.lft THEN o.oprleft ELSE o.oprright END = a.atttypid
                AND NOT p.proleakproof)
-- @branch shadowed_fields
-- `x.name` is also a call, name(x), when x has no column of that name (functional notation).
SELECT 'shadowed', p.proname::text,
       pg_catalog.format('function %I.%I, which x.%I calls', n.nspname, p.proname, p.proname)
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.proname = ANY ($12::name[]) AND n.nspname <> 'pg_catalog'
  AND n.nspname = ANY (pg_catalog.current_schemas(false))
-- @branch fieldcall
SELECT DISTINCT 'fieldcall', p.proname::text, ''
FROM pg_catalog.pg_proc p
WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY ($12::name[])
  AND p.pronargs = 1
  AND p.proargtypes[0] IN ('record'::regtype, 'anyelement'::regtype, '"any"'::regtype,
                           'anycompatible'::regtype, 'anynonarray'::regtype,
                           'anycompatiblenonarray'::regtype)
