-- What writing a global table runs that the statement does not name (see write.rs):
-- $1 the table as the statement names it (quoted, maybe qualified). The first finding, as
-- (table, what); no row when nothing is found or the name does not resolve.
--
-- Every table of its partition tree counts: rows are routed to partitions, whose triggers
-- and defaults run too. Functions are judged by their schema: a function in pg_catalog is
-- the server's own; any other could write anything.
WITH target AS (SELECT pg_catalog.to_regclass($1) AS oid),
tree AS (
    SELECT oid FROM target WHERE oid IS NOT NULL
  UNION
    SELECT t.relid
    FROM target
    CROSS JOIN LATERAL pg_catalog.pg_partition_tree(
        COALESCE(pg_catalog.pg_partition_root(target.oid), target.oid)) t
),
found (rel, what) AS (
    SELECT g.tgrelid, pg_catalog.format('the trigger %I', g.tgname)
    FROM pg_catalog.pg_trigger g
    WHERE g.tgrelid IN (SELECT oid FROM tree) AND NOT g.tgisinternal
  UNION ALL
    SELECT r.ev_class, pg_catalog.format('the rule %I', r.rulename)
    FROM pg_catalog.pg_rewrite r
    WHERE r.ev_class IN (SELECT oid FROM tree)
  UNION ALL
    SELECT k.confrelid,
           pg_catalog.format('the foreign key %I of %s, whose action on %s writes %s',
                             k.conname, k.conrelid::regclass,
                             CASE WHEN k.confdeltype IN ('c', 'n', 'd') THEN 'DELETE'
                                  ELSE 'UPDATE' END,
                             k.conrelid::regclass)
    FROM pg_catalog.pg_constraint k
    WHERE k.contype = 'f' AND k.confrelid IN (SELECT oid FROM tree)
      AND (k.confdeltype IN ('c', 'n', 'd') OR k.confupdtype IN ('c', 'n', 'd'))
  UNION ALL
    -- Defaults and generated columns, check constraints and policies of the tree's tables,
    -- and the constraints of the domains its columns have: each depends on what it calls.
    SELECT o.rel, pg_catalog.format('the function %s, which %s calls', d.refobjid::regprocedure, o.what)
    FROM (
        SELECT a.adrelid, 'pg_catalog.pg_attrdef'::regclass, a.oid,
               pg_catalog.format('the default of %s.%I', a.adrelid::regclass,
                                 (SELECT t.attname FROM pg_catalog.pg_attribute t
                                  WHERE t.attrelid = a.adrelid AND t.attnum = a.adnum))
        FROM pg_catalog.pg_attrdef a WHERE a.adrelid IN (SELECT oid FROM tree)
      UNION ALL
        SELECT c.conrelid, 'pg_catalog.pg_constraint'::regclass, c.oid,
               pg_catalog.format('the constraint %I', c.conname)
        FROM pg_catalog.pg_constraint c WHERE c.conrelid IN (SELECT oid FROM tree)
      UNION ALL
        SELECT p.polrelid, 'pg_catalog.pg_policy'::regclass, p.oid,
               pg_catalog.format('the policy %I', p.polname)
        FROM pg_catalog.pg_policy p WHERE p.polrelid IN (SELECT oid FROM tree)
      UNION ALL
        SELECT t.attrelid, 'pg_catalog.pg_constraint'::regclass, c.oid,
               pg_catalog.format('the constraint %I of the domain %s', c.conname, c.contypid::regtype)
        FROM pg_catalog.pg_attribute t
        JOIN pg_catalog.pg_constraint c ON c.contypid = t.atttypid
        WHERE t.attrelid IN (SELECT oid FROM tree) AND t.attnum > 0 AND NOT t.attisdropped
    ) o (rel, classid, objid, what)
    JOIN pg_catalog.pg_depend d
      ON d.classid = o.classid AND d.objid = o.objid
     AND d.refclassid = 'pg_catalog.pg_proc'::regclass
    JOIN pg_catalog.pg_proc f ON f.oid = d.refobjid
    WHERE f.pronamespace <> 'pg_catalog'::regnamespace
)
SELECT rel::regclass::text, what FROM found LIMIT 1
