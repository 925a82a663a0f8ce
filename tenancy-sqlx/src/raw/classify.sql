-- Why the relations raw SQL names outside its placeholders are refused, to say so precisely:
-- $1 the names (schemas and relations, in order of use), $2 the tenant columns.
-- One row per tenant relation or schema among them: (kind, name, subject, culprit, why).
--
-- A relation is tenant data when it is in a tenant schema, has a tenant column, or references
-- tenancy.tenants; a view is also refused when it calls a function defined in the database; a view, materialized view or sequence is when what it reads (or belongs to)
-- is, transitively, or is the registry; a table is when one of its inheritance children is.
WITH RECURSIVE
reach (root, oid, depth) AS (
    SELECT c.oid, c.oid, 0
    FROM pg_catalog.pg_class c
    WHERE c.relname = ANY ($1::name[])
      AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace,
                                 'pg_toast'::regnamespace, 'tenancy'::regnamespace)
  UNION
    SELECT reach.root, x.dst, reach.depth + 1
    FROM reach CROSS JOIN LATERAL (
        SELECT d.refobjid
        FROM pg_catalog.pg_rewrite r
        JOIN pg_catalog.pg_depend d
          ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
        WHERE r.ev_class = reach.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass
          AND d.refobjid <> reach.oid
      UNION ALL
        SELECT d.refobjid
        FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = reach.oid
          AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i')
          AND d.refobjid <> reach.oid
      UNION ALL
        SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = reach.oid
    ) x (dst)
    WHERE reach.depth < 32
),
flagged AS (
    SELECT reach.root, reach.depth,
           pg_catalog.format('%I.%I', n.nspname, c.relname) AS culprit,
           CASE
               WHEN pg_catalog.starts_with(n.nspname::text, 't_')
                    /*registry*/
                    OR EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.schema_name = n.nspname)
                    OR EXISTS (SELECT 1 FROM tenancy.spare_schemas s WHERE s.name = n.nspname)
                    /*end registry*/
                   THEN pg_catalog.format('is in the tenant schema %I', n.nspname)
               WHEN n.nspname = 'tenancy' THEN 'is part of the tenant registry'
               WHEN tc.attname IS NOT NULL
                   THEN pg_catalog.format('has the tenant column %I', tc.attname)
               WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                            WHERE k.conrelid = c.oid AND k.contype = 'f'
                              AND k.confrelid = 'tenancy.tenants'::regclass)
                   THEN 'references tenancy.tenants'
               -- A view reading through a function of the database's own (not built in, not
               -- an extension's): what the function reads is not in pg_depend.
               WHEN c.relkind IN ('v', 'm') AND EXISTS (
                       SELECT 1
                       FROM pg_catalog.pg_rewrite r
                       JOIN pg_catalog.pg_depend d
                         ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
                       WHERE r.ev_class = c.oid
                         AND d.refclassid = 'pg_catalog.pg_proc'::regclass
                         AND d.refobjid >= 16384
                         AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                                         WHERE e.classid = 'pg_catalog.pg_proc'::regclass
                                           AND e.objid = d.refobjid AND e.deptype = 'e'))
                   THEN 'reads through a function defined in the database, whose body tenancy cannot see'
           END AS why
    FROM reach
    JOIN pg_catalog.pg_class c ON c.oid = reach.oid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN LATERAL (
        SELECT a.attname FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attname = ANY ($2::name[])
        LIMIT 1
    ) tc ON true
)
SELECT * FROM (
    SELECT DISTINCT ON (c.relname, f.root) 'relation'::text AS kind, c.relname::text AS name,
           pg_catalog.format('%s %I.%I',
                  CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                                 WHEN 'f' THEN 'foreign table' WHEN 'S' THEN 'sequence'
                                 ELSE 'table' END,
                  n.nspname, c.relname) AS subject,
           f.culprit, f.why
    FROM flagged f
    JOIN pg_catalog.pg_class c ON c.oid = f.root
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE f.why IS NOT NULL
    ORDER BY c.relname, f.root, f.depth
) relations
UNION ALL
SELECT 'schema', n.nspname::text, pg_catalog.format('schema %I', n.nspname), '',
       'is a tenant schema'
FROM pg_catalog.pg_namespace n
WHERE n.nspname = ANY ($1::name[])
  AND (pg_catalog.starts_with(n.nspname::text, 't_')
       /*registry*/
       OR EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.schema_name = n.nspname)
       OR EXISTS (SELECT 1 FROM tenancy.spare_schemas s WHERE s.name = n.nspname)
       /*end registry*/)
