-- What writing a global table runs that the statement does not name (see write.rs):
-- $1 the table as the statement names it (quoted, maybe qualified); $2 the built-in functions
-- raw SQL may call (allow.rs); $3 the columns the statement may change in rows already there
-- (NULL: it removes rows, so every key). Rows: ('runs', table, what) for the first finding, and
-- ('reads', schema, name) for each table writing it reads besides its own; none when nothing
-- is found or the name does not resolve.
--
-- Every table of its partition tree counts: rows are routed to partitions, whose triggers
-- and defaults run too. Functions are judged as raw SQL's own calls are: a built-in that
-- allow.rs lists (or a cast to a type it lists, or nextval of a sequence the tree owns);
-- any other could write anything, or run SQL text (query_to_xml reads any table). Operators
-- outside pg_catalog call functions of the database. Types are followed through domains,
-- arrays and composites, whose domains' constraints run on every value written.
WITH RECURSIVE target AS (SELECT pg_catalog.to_regclass($1) AS oid),
tree AS (
    SELECT oid FROM target WHERE oid IS NOT NULL
  UNION
    SELECT t.relid
    FROM target
    CROSS JOIN LATERAL pg_catalog.pg_partition_tree(
        COALESCE(pg_catalog.pg_partition_root(target.oid), target.oid)) t
),
types (rel, typ) AS (
    SELECT t.attrelid, t.atttypid
    FROM pg_catalog.pg_attribute t
    WHERE t.attrelid IN (SELECT oid FROM tree) AND t.attnum > 0 AND NOT t.attisdropped
  UNION
    SELECT types.rel, x.typ
    FROM types
    JOIN pg_catalog.pg_type y ON y.oid = types.typ
    CROSS JOIN LATERAL (
        SELECT y.typbasetype WHERE y.typbasetype <> 0
      UNION ALL
        SELECT y.typelem WHERE y.typelem <> 0
      UNION ALL
        SELECT a.atttypid FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = y.typrelid AND y.typrelid <> 0 AND a.attnum > 0
          AND NOT a.attisdropped
    ) x (typ)
),
-- Defaults and generated columns, check constraints, indexes (their expressions and
-- predicates run on every row written) and policies of the tree's tables, and the
-- constraints of the domains its columns' types reach: each depends on what it calls.
runs (rel, classid, objid, what, expr) AS (
    SELECT a.adrelid, 'pg_catalog.pg_attrdef'::regclass, a.oid,
           pg_catalog.format('the default of %s.%I', a.adrelid::regclass,
                             (SELECT t.attname FROM pg_catalog.pg_attribute t
                              WHERE t.attrelid = a.adrelid AND t.attnum = a.adnum)),
           a.adbin::text
    FROM pg_catalog.pg_attrdef a WHERE a.adrelid IN (SELECT oid FROM tree)
  UNION ALL
    SELECT c.conrelid, 'pg_catalog.pg_constraint'::regclass, c.oid,
           pg_catalog.format('the constraint %I', c.conname), c.conbin::text
    FROM pg_catalog.pg_constraint c WHERE c.conrelid IN (SELECT oid FROM tree)
  UNION ALL
    SELECT i.indrelid, 'pg_catalog.pg_class'::regclass, i.indexrelid,
           pg_catalog.format('the index %s', i.indexrelid::regclass),
           pg_catalog.concat(i.indexprs::text, i.indpred::text)
    FROM pg_catalog.pg_index i WHERE i.indrelid IN (SELECT oid FROM tree)
  UNION ALL
    SELECT p.polrelid, 'pg_catalog.pg_policy'::regclass, p.oid,
           pg_catalog.format('the policy %I', p.polname),
           pg_catalog.concat(p.polqual::text, p.polwithcheck::text)
    FROM pg_catalog.pg_policy p WHERE p.polrelid IN (SELECT oid FROM tree)
  UNION ALL
    -- A partition key's expressions run on every row routed.
    SELECT p.partrelid, 'pg_catalog.pg_class'::regclass, p.partrelid,
           pg_catalog.format('the partition key of %s', p.partrelid::regclass),
           p.partexprs::text
    FROM pg_catalog.pg_partitioned_table p WHERE p.partrelid IN (SELECT oid FROM tree)
  UNION ALL
    SELECT types.rel, 'pg_catalog.pg_constraint'::regclass, c.oid,
           pg_catalog.format('the constraint %I of the domain %s', c.conname, c.contypid::regtype),
           c.conbin::text
    FROM types JOIN pg_catalog.pg_constraint c ON c.contypid = types.typ
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
    -- An operator class of the database's calls its support functions on every key an index
    -- (a unique or exclusion constraint's too) or a partition key compares.
    SELECT x.rel, pg_catalog.format('the operator class %s.%I of %s',
                                    oc.opcnamespace::regnamespace, oc.opcname, x.what)
    FROM (
        SELECT i.indrelid, i.indclass::oid[], pg_catalog.format('the index %s', i.indexrelid::regclass)
        FROM pg_catalog.pg_index i WHERE i.indrelid IN (SELECT oid FROM tree)
      UNION ALL
        SELECT p.partrelid, p.partclass::oid[],
               pg_catalog.format('the partition key of %s', p.partrelid::regclass)
        FROM pg_catalog.pg_partitioned_table p WHERE p.partrelid IN (SELECT oid FROM tree)
    ) x (rel, classes, what)
    CROSS JOIN LATERAL pg_catalog.unnest(x.classes) u (opc)
    JOIN pg_catalog.pg_opclass oc ON oc.oid = u.opc
    WHERE oc.opcnamespace <> 'pg_catalog'::regnamespace
  UNION ALL
    -- A table that inherits from another adds its rows to every read of that parent.
    SELECT i.inhrelid,
           pg_catalog.format('an insert into the rows of its inheritance parent %s',
                             i.inhparent::regclass)
    FROM pg_catalog.pg_inherits i
    WHERE i.inhrelid IN (SELECT oid FROM tree) AND i.inhparent NOT IN (SELECT oid FROM tree)
  UNION ALL
    SELECT o.rel, pg_catalog.format('the function %s, which %s calls', d.refobjid::regprocedure, o.what)
    FROM runs o
    JOIN pg_catalog.pg_depend d
      ON d.classid = o.classid AND d.objid = o.objid
     AND d.refclassid = 'pg_catalog.pg_proc'::regclass
    JOIN pg_catalog.pg_proc f ON f.oid = d.refobjid
    WHERE f.pronamespace <> 'pg_catalog'::regnamespace
       OR NOT (f.proname = ANY ($2::name[]) OR f.proname = 'nextval')
  UNION ALL
    -- The server records no dependency on a built-in: the expression's own calls name them.
    SELECT o.rel, pg_catalog.format('the function %s, which %s calls', f.oid::regprocedure, o.what)
    FROM runs o
    CROSS JOIN LATERAL pg_catalog.regexp_matches(o.expr, ':funcid (\d+)', 'g') m (id)
    JOIN pg_catalog.pg_proc f ON f.oid = m.id[1]::oid
    WHERE f.pronamespace <> 'pg_catalog'::regnamespace
       OR NOT (f.proname = ANY ($2::name[]) OR f.proname = 'nextval')
  UNION ALL
    SELECT o.rel, pg_catalog.format('the operator %s, which %s calls', d.refobjid::regoperator, o.what)
    FROM runs o
    JOIN pg_catalog.pg_depend d
      ON d.classid = o.classid AND d.objid = o.objid
     AND d.refclassid = 'pg_catalog.pg_operator'::regclass
    JOIN pg_catalog.pg_operator p ON p.oid = d.refobjid
    WHERE p.oprnamespace <> 'pg_catalog'::regnamespace
  UNION ALL
    -- nextval advances a sequence: only one a table of the tree owns (a serial column's).
    SELECT o.rel, pg_catalog.format('the sequence %s, which %s advances', s.oid::regclass, o.what)
    FROM runs o
    JOIN pg_catalog.pg_depend d
      ON d.classid = o.classid AND d.objid = o.objid
     AND d.refclassid = 'pg_catalog.pg_class'::regclass
    JOIN pg_catalog.pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
    WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend w
                      WHERE w.classid = 'pg_catalog.pg_class'::regclass AND w.objid = s.oid
                        AND w.refclassid = 'pg_catalog.pg_class'::regclass
                        AND w.refobjid IN (SELECT oid FROM tree) AND w.deptype IN ('a', 'i'))
)
SELECT 'runs', rel::regclass::text, what FROM (SELECT * FROM found LIMIT 1) f
UNION ALL
-- What writing it reads: the tables its foreign keys reference (a row's key is looked up, and
-- locked, there), the tables whose foreign keys reference it when a row changes or goes, and
-- the tables its expressions name (a policy's subquery). Judged as the
-- tables a statement names are (check.rs), so a tenant's table is refused. Only relations that
-- hold rows: a key's index is its table's, and sequences are judged above.
SELECT DISTINCT 'reads', n.nspname::text, c.relname::text
FROM (
  -- A partition is judged as its tree, from the root (PostgreSQL copies a foreign key to every
  -- partition of either side).
  SELECT COALESCE(pg_catalog.pg_partition_root(x.oid), x.oid) FROM (
    SELECT k.confrelid FROM pg_catalog.pg_constraint k
    WHERE k.contype = 'f' AND k.conrelid IN (SELECT oid FROM tree)
  UNION
    -- A changed or removed key is looked up in the tables referencing it, every row of them,
    -- past their policies: whether the write fails tells whether another tenant uses the key.
    -- (a key unchanged is not looked up: an UPDATE of other columns reads nothing there).
    SELECT k.conrelid FROM pg_catalog.pg_constraint k
    WHERE k.contype = 'f' AND k.confrelid IN (SELECT oid FROM tree)
      AND ($3::text[] IS NULL OR EXISTS (
          SELECT FROM pg_catalog.pg_attribute a
          WHERE a.attrelid = k.confrelid AND a.attnum = ANY (k.confkey)
            AND (a.attname = ANY ($3::text[])
                 OR (a.attgenerated <> '' AND pg_catalog.cardinality($3::text[]) > 0))))
  UNION
    SELECT d.refobjid FROM runs o
    JOIN pg_catalog.pg_depend d
      ON d.classid = o.classid AND d.objid = o.objid
     AND d.refclassid = 'pg_catalog.pg_class'::regclass
  ) x (oid)
) r (oid)
JOIN pg_catalog.pg_class c ON c.oid = r.oid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE r.oid NOT IN (SELECT oid FROM tree) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
