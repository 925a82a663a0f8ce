//! Global writes (`TenantTx::write_global`): the application's own global tables written in a
//! tenant's transaction, committed and rolled back with the tenant's change, and every way to
//! reach a tenant table (or anything that could write one) through that path refused before
//! anything is sent.

mod common;

use common::models::*;
use tenancy::testing::TestTenancy;
use tenancy::{Error, RefusalKind, Tenancy, TenantCtx, TenantTx};
use uuid::Uuid;

/// The application's global tables, and the traps an adversary would write through.
const GLOBALS: &str = r#"
CREATE TABLE outbox (
    id     bigserial PRIMARY KEY,
    tenant uuid,
    topic  text NOT NULL UNIQUE,
    sent   boolean NOT NULL DEFAULT false,
    at     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);
INSERT INTO countries VALUES ('nl', 'Netherlands'), ('fr', 'France');
CREATE SCHEMA other;
CREATE TABLE other.outbox (id bigserial PRIMARY KEY, topic text);
-- Functions that write a tenant table.
CREATE FUNCTION wipe() RETURNS text LANGUAGE sql AS 'DELETE FROM spins; SELECT ''wiped''';
CREATE FUNCTION wipe_trigger() RETURNS trigger LANGUAGE plpgsql
    AS 'BEGIN DELETE FROM spins; RETURN NEW; END';
CREATE TABLE trig_log (topic text);
CREATE TRIGGER wipe BEFORE INSERT ON trig_log FOR EACH ROW EXECUTE FUNCTION wipe_trigger();
CREATE TABLE ruled (topic text);
CREATE RULE wipe AS ON INSERT TO ruled DO ALSO DELETE FROM spins;
CREATE TABLE plans (code text PRIMARY KEY);
INSERT INTO plans VALUES ('pro');
CREATE TABLE subscriptions (
    tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id),
    plan      text NOT NULL REFERENCES plans ON DELETE CASCADE,
    PRIMARY KEY (tenant_id, plan)
);
CREATE TABLE defaulted (topic text, why text DEFAULT wipe());
CREATE DOMAIN checked_text AS text CHECK (VALUE <> wipe());
CREATE TABLE domained (topic checked_text);
CREATE TABLE parted (n integer) PARTITION BY RANGE (n);
CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (0) TO (100);
CREATE TRIGGER wipe BEFORE INSERT ON parted_low FOR EACH ROW EXECUTE FUNCTION wipe_trigger();
CREATE VIEW spins_view AS SELECT * FROM spins;
"#;

const DECLARED: [&str; 10] = [
    "outbox",
    "countries",
    "trig_log",
    "ruled",
    "plans",
    "defaulted",
    "domained",
    "parted",
    "spins_view",
    "spinners_alias",
];

/// A handle that declares the global tables, on the test's database, and its tenants.
async fn declared(t: &TestTenancy) -> (Tenancy, TenantCtx, TenantCtx) {
    t.exec(GLOBALS).await;
    let tenancy = Tenancy::builder()
        .global_tables(DECLARED)
        .connect(t.url())
        .await
        .unwrap();
    let acme = tenancy.resolve_slug("acme").await.unwrap();
    let globex = tenancy.resolve_slug("globex").await.unwrap();
    for ctx in [&acme, &globex] {
        let spinner = common::add_spinner(ctx, "fidget").await.unwrap();
        Spin::repo()
            .insert(
                ctx,
                &NewSpin {
                    id: Uuid::new_v4(),
                    spinner_id: spinner.id,
                    duration: 30,
                    note: None,
                },
            )
            .await
            .unwrap();
    }
    (tenancy, acme, globex)
}

fn spinner(name: &str) -> NewSpinner {
    NewSpinner {
        id: Uuid::new_v4(),
        name: name.into(),
        color: None,
    }
}

/// Every row of the tenant tables (shared and globex's schema) and of the outbox, read around
/// the library: what a refused write must leave as it was.
async fn snapshot(t: &TestTenancy) -> Vec<String> {
    let mut conn = t.connect().await;
    sqlx::query_scalar(
        "SELECT 'spins ' || tenant_id || ' ' || id FROM spins \
         UNION ALL SELECT 'spinners ' || tenant_id || ' ' || name FROM spinners \
         UNION ALL SELECT 'globex spins ' || id FROM t_globex.spins \
         UNION ALL SELECT 'subscriptions ' || tenant_id || ' ' || plan FROM subscriptions \
         UNION ALL SELECT 'outbox ' || topic FROM outbox \
         UNION ALL SELECT 'plans ' || code FROM plans \
         ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

async fn outbox_topics(t: &TestTenancy) -> Vec<String> {
    let mut conn = t.connect().await;
    sqlx::query_scalar("SELECT topic FROM outbox ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

async fn refused(tx: &mut TenantTx, sql: &'static str, kind: RefusalKind) {
    match tx.write_global(sql).execute().await {
        Err(Error::UnscopedSql(r)) => assert_eq!(r.kind(), kind, "{sql:?}: {r}"),
        other => panic!("{sql:?} was not refused: {other:?}"),
    }
}

#[tenancy::test(
    migrations = "tests/migrations",
    tenants(acme = "shared", globex = "schema")
)]
async fn a_global_write_commits_and_rolls_back_with_the_tenants_change(t: TestTenancy) {
    let (_tenancy, acme, globex) = declared(&t).await;

    // Committed: both the tenant's row and the outbox row.
    let mut tx = acme.begin().await.unwrap();
    let made = Spinner::repo()
        .insert(&mut tx, &spinner("committed"))
        .await
        .unwrap();
    let written = tx
        .write_global("INSERT INTO outbox (tenant, topic) VALUES ($1, $2)")
        .bind(acme.id().as_uuid())
        .bind("spinner.committed")
        .execute()
        .await
        .unwrap();
    assert_eq!(written, 1);
    tx.commit().await.unwrap();
    assert!(Spinner::repo().get(&acme, made.id).await.unwrap().is_some());
    assert_eq!(outbox_topics(&t).await, ["spinner.committed"]);

    // Rolled back, dropped, or aborted by a failing statement: neither.
    let before = snapshot(&t).await;
    let mut tx = acme.begin().await.unwrap();
    Spinner::repo()
        .insert(&mut tx, &spinner("rolled-back"))
        .await
        .unwrap();
    tx.write_global("INSERT INTO outbox (topic) VALUES ('rolled.back')")
        .execute()
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    {
        let mut tx = globex.begin().await.unwrap();
        Spinner::repo()
            .insert(&mut tx, &spinner("dropped"))
            .await
            .unwrap();
        tx.write_global("INSERT INTO outbox (topic) VALUES ('dropped')")
            .execute()
            .await
            .unwrap();
    }
    let mut tx = acme.begin().await.unwrap();
    Spinner::repo()
        .insert(&mut tx, &spinner("aborted"))
        .await
        .unwrap();
    let dup = tx
        .write_global("INSERT INTO outbox (topic) VALUES ($1)")
        .bind("spinner.committed")
        .execute()
        .await;
    assert!(
        matches!(&dup, Err(e) if e.sqlstate() == Some("23505")),
        "{dup:?}"
    );
    assert!(matches!(tx.commit().await, Err(Error::TransactionAborted)));
    assert_eq!(snapshot(&t).await, before);

    // UPDATE and DELETE, reading a declared global table, count the rows they wrote; an
    // own-schema tenant writes the same shared table.
    let mut tx = globex.begin().await.unwrap();
    let inserted = tx
        .write_global("INSERT INTO outbox (topic) SELECT 'country.' || code FROM countries")
        .execute()
        .await
        .unwrap();
    assert_eq!(inserted, 2);
    let updated = tx
        .write_global(
            "UPDATE outbox o SET sent = true FROM countries c \
             WHERE o.topic = 'country.' || c.code AND c.name = $1",
        )
        .bind("France")
        .execute()
        .await
        .unwrap();
    assert_eq!(updated, 1);
    let upserted = tx
        .write_global(
            "INSERT INTO outbox (topic) VALUES ('country.nl') \
             ON CONFLICT (topic) DO UPDATE SET sent = NOT outbox.sent",
        )
        .execute()
        .await
        .unwrap();
    assert_eq!(upserted, 1);
    let deleted = tx
        .write_global("DELETE FROM outbox WHERE sent /* ; DELETE FROM spins */")
        .execute()
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    tx.commit().await.unwrap();
    assert_eq!(outbox_topics(&t).await, ["spinner.committed"]);
    assert_eq!(snapshot(&t).await, before);
}

#[tenancy::test(
    migrations = "tests/migrations",
    tenants(acme = "shared", globex = "schema")
)]
async fn every_way_to_a_tenant_table_through_a_global_write_is_refused(t: TestTenancy) {
    let (tenancy, acme, globex) = declared(&t).await;
    // The own-schema tenant's schema holds a table named like the global one.
    t.exec("CREATE TABLE t_globex.outbox (id bigserial PRIMARY KEY, topic text)")
        .await;
    let before = snapshot(&t).await;
    for ctx in [&acme, &globex] {
        let mut tx = ctx.begin().await.unwrap();
        for (sql, kind) in [
            // Tenant tables, however spelled.
            (
                "INSERT INTO spins (tenant_id, spinner_id, duration) SELECT tenant_id, id, 1 FROM spinners",
                RefusalKind::TenantTable,
            ),
            ("DELETE FROM public.spins", RefusalKind::TenantTable),
            ("DELETE FROM ONLY \"spins\"", RefusalKind::TenantTable),
            ("UPDATE SPINNERS SET name = 'x'", RefusalKind::TenantTable),
            ("DELETE FROM t_globex.spins", RefusalKind::TenantSchema),
            (
                "INSERT INTO t_globex.outbox (topic) VALUES ('x')",
                RefusalKind::GlobalTable,
            ),
            ("DELETE FROM \"SPINS\"", RefusalKind::Relation),
            ("DELETE FROM subscriptions", RefusalKind::TenantTable),
            // A CTE named like a tenant table does not hide the table PostgreSQL writes.
            (
                "WITH spins AS (SELECT 1) DELETE FROM spins",
                RefusalKind::TenantTable,
            ),
            // Reading a tenant table into the global one.
            (
                "INSERT INTO outbox (topic) SELECT note FROM spins",
                RefusalKind::TenantTable,
            ),
            (
                "INSERT INTO outbox (topic) VALUES ((SELECT name FROM spinners LIMIT 1))",
                RefusalKind::TenantTable,
            ),
            (
                "UPDATE outbox SET topic = s.note FROM spins s",
                RefusalKind::TenantTable,
            ),
            (
                "DELETE FROM outbox USING spinners p WHERE p.name = outbox.topic",
                RefusalKind::TenantTable,
            ),
            (
                "INSERT INTO outbox (topic) VALUES ('x') ON CONFLICT (topic) DO UPDATE SET topic = (SELECT name FROM spinners LIMIT 1)",
                RefusalKind::TenantTable,
            ),
            (
                "INSERT INTO outbox (topic) SELECT note FROM {spins}",
                RefusalKind::Placeholder,
            ),
            (
                "INSERT INTO outbox (topic) SELECT note FROM spins_view",
                RefusalKind::GlobalTable,
            ),
            // Data-modifying CTEs, and statements that are not one plain write.
            (
                "WITH d AS (DELETE FROM spins RETURNING note) INSERT INTO outbox (topic) SELECT note FROM d",
                RefusalKind::Statement,
            ),
            (
                "WITH d AS (UPDATE outbox SET sent = true RETURNING topic) INSERT INTO outbox (topic) SELECT topic FROM d",
                RefusalKind::Statement,
            ),
            (
                "INSERT INTO outbox (topic) VALUES ('x'); DELETE FROM spins",
                RefusalKind::Lexical,
            ),
            (
                "INSERT INTO outbox (topic) VALUES ('x') RETURNING (SELECT count(*) FROM spins)",
                RefusalKind::Construct,
            ),
            (
                "MERGE INTO spins s USING countries c ON false WHEN NOT MATCHED THEN DO NOTHING",
                RefusalKind::Statement,
            ),
            ("SET search_path = t_globex, public", RefusalKind::Statement),
            (
                "SELECT set_config('search_path', 't_globex', true)",
                RefusalKind::Statement,
            ),
            ("COPY spins FROM STDIN", RefusalKind::Statement),
            (
                "DO $$ BEGIN DELETE FROM spins; END $$",
                RefusalKind::Statement,
            ),
            ("TRUNCATE spins", RefusalKind::Statement),
            ("EXPLAIN ANALYZE DELETE FROM spins", RefusalKind::Statement),
            ("NOTIFY tenancy_registry, 'forged'", RefusalKind::Statement),
            (
                "CREATE TABLE outbox2 AS SELECT * FROM spins",
                RefusalKind::Statement,
            ),
            // Functions that could write elsewhere, or read the search path.
            (
                "INSERT INTO outbox (topic) VALUES (wipe())",
                RefusalKind::Function,
            ),
            (
                "INSERT INTO outbox (topic) VALUES (public.wipe())",
                RefusalKind::Function,
            ),
            (
                "INSERT INTO outbox (topic) VALUES (set_config('search_path', 't_globex', true))",
                RefusalKind::Function,
            ),
            (
                "INSERT INTO outbox (topic) VALUES (pg_notify('tenancy_registry', 'forged')::text)",
                RefusalKind::Function,
            ),
            (
                "INSERT INTO outbox (id, topic) VALUES (nextval('outbox_id_seq'), 'x')",
                RefusalKind::Function,
            ),
            // The registry and the system catalogs.
            (
                "UPDATE tenancy.tenants SET status = 'active'",
                RefusalKind::TenantSchema,
            ),
            ("DELETE FROM pg_catalog.pg_class", RefusalKind::SystemView),
            (
                "INSERT INTO pg_temp.outbox (topic) VALUES ('x')",
                RefusalKind::SystemView,
            ),
            // A declared name reached through another schema is another table.
            (
                "INSERT INTO other.outbox (topic) VALUES ('x')",
                RefusalKind::GlobalTable,
            ),
            // Declared, but a view over a tenant table, or missing.
            ("DELETE FROM spins_view", RefusalKind::GlobalTable),
            ("DELETE FROM spinners_alias", RefusalKind::GlobalTable),
            // Declared tables that run something the statement does not show.
            (
                "INSERT INTO trig_log VALUES ('x')",
                RefusalKind::WriteTarget,
            ),
            ("INSERT INTO ruled VALUES ('x')", RefusalKind::WriteTarget),
            ("DELETE FROM plans", RefusalKind::WriteTarget),
            (
                "INSERT INTO defaulted (topic) VALUES ('x')",
                RefusalKind::WriteTarget,
            ),
            (
                "INSERT INTO domained VALUES ('x')",
                RefusalKind::WriteTarget,
            ),
            ("INSERT INTO parted VALUES (1)", RefusalKind::WriteTarget),
            // What the lexer cannot read one way.
            (
                "INSERT INTO outbox (topic) VALUES (U&'\\0078')",
                RefusalKind::Lexical,
            ),
            (
                "INSERT INTO outbox (topic) VALUES ('\\'); DELETE FROM spins; --')",
                RefusalKind::Lexical,
            ),
            (
                "INSERT INTO outbox (topic) VALUES ($1)",
                RefusalKind::Parameter,
            ),
        ] {
            refused(&mut tx, sql, kind).await;
        }
        // Nothing was sent: the transaction is not aborted, and commits nothing.
        tx.commit().await.unwrap();
    }
    assert_eq!(snapshot(&t).await, before);

    // A tenant table declared global by mistake is still refused: it has a tenant column.
    let mistaken = Tenancy::builder()
        .global_tables(["spins", "t_globex.outbox"])
        .connect(t.url())
        .await
        .unwrap();
    for slug in ["acme", "globex"] {
        let ctx = mistaken.resolve_slug(slug).await.unwrap();
        let mut tx = ctx.begin().await.unwrap();
        refused(&mut tx, "DELETE FROM spins", RefusalKind::GlobalTable).await;
        refused(
            &mut tx,
            "DELETE FROM t_globex.outbox",
            RefusalKind::GlobalTable,
        )
        .await;
        tx.commit().await.unwrap();
    }
    assert_eq!(snapshot(&t).await, before);
    drop(tenancy);
}

/// The own-schema tenant's write reaches the shared global table, never the table of the same
/// name in its own schema: no search path names a tenant schema.
#[tenancy::test(
    migrations = "tests/migrations",
    tenants(acme = "shared", globex = "schema")
)]
async fn an_own_schema_tenant_writes_the_shared_global_table(t: TestTenancy) {
    let (_tenancy, _acme, globex) = declared(&t).await;
    t.exec("CREATE TABLE t_globex.outbox (id bigserial PRIMARY KEY, topic text)")
        .await;
    let mut tx = globex.begin().await.unwrap();
    tx.write_global("INSERT INTO outbox (topic) VALUES ('globex')")
        .execute()
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(outbox_topics(&t).await, ["globex"]);
    let mut conn = t.connect().await;
    let own: i64 = sqlx::query_scalar("SELECT count(*) FROM t_globex.outbox")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(own, 0);
}

/// An accepted statement's verdict lasts no longer than the cache: a trigger added since is
/// refused at once without one, and a refusal is never kept.
#[tenancy::test(
    migrations = "tests/migrations",
    tenants(acme = "shared", globex = "schema")
)]
async fn a_trigger_added_later_is_refused(t: TestTenancy) {
    let (_tenancy, _, _) = declared(&t).await;
    let tenancy = Tenancy::builder()
        .global_tables(DECLARED)
        .cache_ttl(std::time::Duration::ZERO)
        .connect(t.url())
        .await
        .unwrap();
    let acme = tenancy.resolve_slug("acme").await.unwrap();
    let sql = "INSERT INTO outbox (topic) VALUES ($1)";
    let mut tx = acme.begin().await.unwrap();
    tx.write_global(sql).bind("one").execute().await.unwrap();
    tx.commit().await.unwrap();
    t.exec(
        "CREATE TRIGGER wipe BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION wipe_trigger()",
    )
    .await;
    let before = snapshot(&t).await;
    let mut tx = acme.begin().await.unwrap();
    match tx.write_global(sql).bind("two").execute().await {
        Err(Error::UnscopedSql(r)) => {
            assert_eq!(r.kind(), RefusalKind::WriteTarget);
            assert!(r.reason().contains("wipe"), "{r}");
        }
        other => panic!("not refused: {other:?}"),
    }
    tx.commit().await.unwrap();
    assert_eq!(snapshot(&t).await, before);
    assert_eq!(outbox_topics(&t).await, ["one"]);
}

/// What a declared global table runs or is beyond what the statement names, each a way to a
/// tenant's rows that the statement's own check cannot see: a built-in default that runs SQL
/// text, an index expression, an operator or a domain nested in another, a sequence of a
/// tenant, an inheritance parent in a tenant's schema, a partition in one. A table that runs
/// only what raw SQL may call is still written.
#[tenancy::test(
    migrations = "tests/migrations",
    tenants(acme = "shared", globex = "schema")
)]
async fn what_a_global_table_runs_is_judged_as_raw_sql_calls(t: TestTenancy) {
    t.exec(GLOBALS).await;
    t.exec(
        r#"
CREATE TABLE t_globex.outbox (id bigserial PRIMARY KEY, topic text);
CREATE SEQUENCE t_globex.counter;
-- query_to_xml is a built-in: it runs its SQL text, here reading another tenant's rows.
CREATE TABLE xml_leak (
    topic text,
    leak  text DEFAULT query_to_xml('SELECT id FROM t_globex.spins', false, false, '')::text
);
CREATE TABLE config_leak (topic text, why text DEFAULT set_config('search_path', 't_globex', true));
-- An immutable function may still call a volatile one, which writes.
CREATE FUNCTION wipe_immutably(text) RETURNS text LANGUAGE plpgsql IMMUTABLE
    AS 'BEGIN RETURN wipe(); END';
CREATE TABLE indexed (topic text);
CREATE INDEX indexed_wipe ON indexed ((wipe_immutably(topic)));
CREATE TABLE predicated (topic text);
CREATE UNIQUE INDEX predicated_wipe ON predicated (topic) WHERE wipe_immutably(topic) IS NOT NULL;
-- An operator of the database calls its function; the dependency is on the operator.
CREATE FUNCTION wipe_eq(text, text) RETURNS boolean LANGUAGE sql
    AS 'DELETE FROM spins; SELECT $1 = $2';
CREATE OPERATOR === (LEFTARG = text, RIGHTARG = text, FUNCTION = wipe_eq);
CREATE TABLE operated (topic text CHECK (topic === topic));
-- A domain over the checked domain, in an array: the inner domain's check runs.
CREATE DOMAIN deeper_text AS checked_text;
CREATE TABLE deep_domained (topics deeper_text[]);
-- An overload of an allowed built-in, defined in the database.
CREATE FUNCTION lower(integer) RETURNS text LANGUAGE sql AS 'DELETE FROM spins; SELECT ''x''';
CREATE TABLE overloaded (topic text, low text DEFAULT lower(1));
-- A default advancing a tenant's sequence.
CREATE TABLE sequenced (topic text, n bigint DEFAULT nextval('t_globex.counter'));
-- Its rows are read as the own-schema tenant's.
CREATE TABLE inheriting () INHERITS (t_globex.outbox);
-- A partitioned table with a partition in the tenant's schema.
CREATE TABLE routed (n integer, topic text) PARTITION BY LIST (n);
CREATE TABLE t_globex.routed_one PARTITION OF routed FOR VALUES IN (1);
-- A view over a global table whose INSTEAD OF trigger writes a tenant table.
CREATE VIEW instead AS SELECT topic FROM outbox;
CREATE TRIGGER wipe INSTEAD OF INSERT ON instead FOR EACH ROW EXECUTE FUNCTION wipe_trigger();
-- A foreign key looks its key up, and locks it, in a tenant's table: whether another
-- tenant holds a row, learnt from whether the write fails.
CREATE TABLE probe (t uuid, s uuid, FOREIGN KEY (t, s) REFERENCES t_globex.spins (tenant_id, id));
CREATE TABLE probe_shared (t uuid, s uuid, FOREIGN KEY (t, s) REFERENCES spins (tenant_id, id));
-- A global key referenced from tenants' tables: changing or removing it looks it up in every
-- tenant's rows, past their policies (whether another tenant uses it, learnt from a failure).
CREATE TABLE tiers (code text PRIMARY KEY, label text);
INSERT INTO tiers VALUES ('gold'), ('free');
CREATE TABLE t_globex.orders (tier text REFERENCES tiers ON DELETE RESTRICT);
INSERT INTO t_globex.orders VALUES ('gold');
CREATE TABLE levels (code text PRIMARY KEY);
INSERT INTO levels VALUES ('gold');
CREATE TABLE leveled (tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id), level text REFERENCES levels);
-- A partition key's function, an operator class's support function: run on every row.
CREATE FUNCTION spykey(text) RETURNS text LANGUAGE plpgsql IMMUTABLE
    AS 'BEGIN PERFORM count(*) FROM t_globex.spins; RETURN $1; END';
CREATE TABLE keyed (x text) PARTITION BY LIST (spykey(x));
CREATE TABLE keyed_a PARTITION OF keyed FOR VALUES IN ('a');
CREATE FUNCTION spycmp(text, text) RETURNS int LANGUAGE plpgsql IMMUTABLE
    AS 'BEGIN PERFORM count(*) FROM t_globex.spins; RETURN bttextcmp($1, $2); END';
CREATE OPERATOR CLASS spy_ops FOR TYPE text USING btree AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
    FUNCTION 1 spycmp(text, text);
CREATE TABLE noted (body text);
CREATE UNIQUE INDEX noted_u ON noted (body spy_ops);
-- Partitioned global tables on both sides of a key: judged as their trees, and written.
CREATE TABLE regions (id int PRIMARY KEY) PARTITION BY RANGE (id);
CREATE TABLE regions_1 PARTITION OF regions FOR VALUES FROM (0) TO (100);
INSERT INTO regions VALUES (1), (2);
CREATE TABLE regional (region int REFERENCES regions) PARTITION BY RANGE (region);
CREATE TABLE regional_1 PARTITION OF regional FOR VALUES FROM (0) TO (100);
-- A policy's subquery reads another tenant's table.
CREATE TABLE policed (topic text);
ALTER TABLE policed ENABLE ROW LEVEL SECURITY;
CREATE POLICY peek ON policed USING (EXISTS (SELECT FROM t_globex.spins));
-- Only what raw SQL may call, and a key into a declared global table: written.
CREATE TABLE fine (
    id    bigserial PRIMARY KEY,
    country text REFERENCES countries,
    topic text NOT NULL CHECK (length(topic) < 100),
    low   text GENERATED ALWAYS AS (lower(topic)) STORED,
    n     numeric DEFAULT 1::numeric,
    ref   uuid DEFAULT gen_random_uuid(),
    at    timestamptz DEFAULT now()
);
CREATE UNIQUE INDEX fine_low ON fine (lower(topic)) WHERE length(topic) > 0;
"#,
    )
    .await;
    let tenancy = Tenancy::builder()
        .global_tables([
            "xml_leak",
            "config_leak",
            "indexed",
            "predicated",
            "operated",
            "deep_domained",
            "overloaded",
            "sequenced",
            "inheriting",
            "routed",
            "instead",
            "probe",
            "probe_shared",
            "policed",
            "countries",
            "fine",
            "tiers",
            "levels",
            "keyed",
            "noted",
            "regions",
            "regional",
        ])
        .connect(t.url())
        .await
        .unwrap();
    let acme = tenancy.resolve_slug("acme").await.unwrap();
    let globex = tenancy.resolve_slug("globex").await.unwrap();
    let spinner = common::add_spinner(&globex, "fidget").await.unwrap();
    Spin::repo()
        .insert(
            &globex,
            &NewSpin {
                id: Uuid::new_v4(),
                spinner_id: spinner.id,
                duration: 30,
                note: None,
            },
        )
        .await
        .unwrap();
    let written = async || -> Vec<String> {
        let mut conn = t.connect().await;
        sqlx::query_scalar(
            "SELECT 'xml_leak ' || topic FROM xml_leak \
             UNION ALL SELECT 'config_leak ' || topic FROM config_leak \
             UNION ALL SELECT 'indexed ' || topic FROM indexed \
             UNION ALL SELECT 'predicated ' || topic FROM predicated \
             UNION ALL SELECT 'operated ' || topic FROM operated \
             UNION ALL SELECT 'deep_domained ' || topics::text FROM deep_domained \
             UNION ALL SELECT 'overloaded ' || topic FROM overloaded \
             UNION ALL SELECT 'sequenced ' || topic FROM sequenced \
             UNION ALL SELECT 'globex outbox ' || topic FROM t_globex.outbox \
             UNION ALL SELECT 'routed ' || topic FROM routed \
             UNION ALL SELECT 'fine ' || low || ' ' || country FROM fine \
             UNION ALL SELECT 'probe ' || count(*) FROM probe \
             UNION ALL SELECT 'probe_shared ' || count(*) FROM probe_shared \
             UNION ALL SELECT 'policed ' || count(*) FROM policed \
             UNION ALL SELECT 'counter ' || last_value || is_called FROM t_globex.counter \
             UNION ALL SELECT 'globex spins ' || count(*) FROM t_globex.spins \
             UNION ALL SELECT 'tiers ' || code || ' ' || coalesce(label, '-') FROM tiers \
             UNION ALL SELECT 'levels ' || code FROM levels \
             UNION ALL SELECT 'keyed ' || x FROM keyed \
             UNION ALL SELECT 'noted ' || body FROM noted \
             UNION ALL SELECT 'regions ' || id FROM regions \
             UNION ALL SELECT 'regional ' || region FROM regional \
             ORDER BY 1",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap()
    };
    let before = written().await;
    for ctx in [&acme, &globex] {
        let mut tx = ctx.begin().await.unwrap();
        for (sql, kind, culprit) in [
            (
                "INSERT INTO xml_leak (topic) VALUES ('x')",
                RefusalKind::WriteTarget,
                "query_to_xml",
            ),
            (
                "INSERT INTO indexed VALUES ('x')",
                RefusalKind::WriteTarget,
                "wipe_immutably",
            ),
            (
                "UPDATE predicated SET topic = 'y'",
                RefusalKind::WriteTarget,
                "wipe_immutably",
            ),
            (
                "INSERT INTO operated VALUES ('x')",
                RefusalKind::WriteTarget,
                "===",
            ),
            (
                "INSERT INTO deep_domained VALUES (ARRAY['x'])",
                RefusalKind::WriteTarget,
                "checked_text",
            ),
            (
                "INSERT INTO overloaded (topic) VALUES ('x')",
                RefusalKind::WriteTarget,
                "lower(integer)",
            ),
            (
                "INSERT INTO sequenced (topic) VALUES ('x')",
                RefusalKind::WriteTarget,
                "t_globex.counter",
            ),
            (
                "INSERT INTO inheriting (topic) VALUES ('forged')",
                RefusalKind::WriteTarget,
                "t_globex.outbox",
            ),
            (
                "INSERT INTO routed VALUES (1, 'x')",
                RefusalKind::GlobalTable,
                "partition tree",
            ),
            (
                "INSERT INTO instead VALUES ('x')",
                RefusalKind::GlobalTable,
                "not a table",
            ),
            (
                "INSERT INTO probe VALUES (NULL, NULL)",
                RefusalKind::TenantSchema,
                "t_globex",
            ),
            (
                "INSERT INTO probe_shared VALUES (NULL, NULL)",
                RefusalKind::TenantTable,
                "spins",
            ),
            (
                "INSERT INTO policed VALUES ('x')",
                RefusalKind::TenantSchema,
                "t_globex",
            ),
            (
                "DELETE FROM tiers WHERE code = 'gold'",
                RefusalKind::TenantSchema,
                "t_globex",
            ),
            (
                "UPDATE tiers SET code = 'platinum' WHERE code = 'gold'",
                RefusalKind::TenantSchema,
                "t_globex",
            ),
            (
                "INSERT INTO tiers VALUES ('gold') ON CONFLICT (code) DO UPDATE SET code = 'x'",
                RefusalKind::TenantSchema,
                "t_globex",
            ),
            ("DELETE FROM levels", RefusalKind::TenantTable, "leveled"),
            (
                "INSERT INTO keyed VALUES ('a')",
                RefusalKind::WriteTarget,
                "spykey",
            ),
            (
                "INSERT INTO noted VALUES ('x')",
                RefusalKind::WriteTarget,
                "spy_ops",
            ),
            // Last: without the check it leaves the search path on the tenant's schema.
            (
                "INSERT INTO config_leak (topic) VALUES ('x')",
                RefusalKind::WriteTarget,
                "set_config",
            ),
        ] {
            match tx.write_global(sql).execute().await {
                Err(Error::UnscopedSql(r)) => {
                    assert_eq!(r.kind(), kind, "{sql:?}: {r}");
                    assert!(r.reason().contains(culprit), "{sql:?}: {r}");
                }
                other => panic!("{sql:?} was not refused: {other:?}"),
            }
        }
        // Nothing was sent: the transaction commits, having written nothing.
        tx.commit().await.unwrap();
    }
    assert_eq!(written().await, before);

    let mut tx = acme.begin().await.unwrap();
    let n = tx
        .write_global("INSERT INTO fine (topic, country) VALUES ($1, 'nl')")
        .bind("Fine")
        .execute()
        .await
        .unwrap();
    assert_eq!(n, 1);
    // A new key changes no row that references one: written.
    let n = tx
        .write_global("INSERT INTO tiers VALUES ($1) ON CONFLICT DO NOTHING")
        .bind("silver")
        .execute()
        .await
        .unwrap();
    assert_eq!(n, 1);
    // An UPDATE that leaves the keys alone looks up no referencing row: written.
    let n = tx
        .write_global("UPDATE tiers SET label = $1 WHERE code = 'gold'")
        .bind("top")
        .execute()
        .await
        .unwrap();
    assert_eq!(n, 1);
    // Partitioned global tables on both sides of a key: each judged as its tree.
    for (sql, rows) in [
        ("INSERT INTO regional VALUES (1)", 1),
        ("DELETE FROM regions WHERE id = 2", 1),
    ] {
        assert_eq!(tx.write_global(sql).execute().await.unwrap(), rows, "{sql}");
    }
    tx.commit().await.unwrap();
    let mut after: Vec<String> = before
        .iter()
        .filter(|r| *r != "tiers gold -" && *r != "regions 2")
        .cloned()
        .collect();
    after.push("tiers gold top".to_owned());
    after.push("regional 1".to_owned());
    after.push("fine fine nl".to_owned());
    after.push("tiers silver -".to_owned());
    after.sort();
    assert_eq!(written().await, after);
}

/// An own-database tenant reads and writes the global table of its own database, and a
/// verdict is the catalog's of one database: a name accepted there (where the table holds only
/// that tenant's rows) is judged anew in the shared database, where the table of that name has
/// every tenant's rows.
#[tenancy::test(
    migrations = "tests/migrations",
    tenants(acme = "database", globex = "shared")
)]
async fn an_own_database_tenant_reads_and_writes_its_own_global_table(t: TestTenancy) {
    t.exec(
        "CREATE TABLE settings (tenant_id uuid, secret text); \
         INSERT INTO settings VALUES (gen_random_uuid(), 'another tenant''s secret')",
    )
    .await;
    let acme = t.tenant("acme");
    let own = acme.home().database().expect("an own database").as_str();
    let own_url = t
        .url()
        .replace(&format!("/{}", t.database()), &format!("/{own}"));
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&own_url)
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE public.settings (secret text); INSERT INTO settings VALUES ('own')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    // Declared global by mistake: in the shared database it has a tenant column.
    let tenancy = Tenancy::builder()
        .global_tables(["settings"])
        .connect(t.url())
        .await
        .unwrap();
    let acme = tenancy.resolve_slug("acme").await.unwrap();
    let globex = tenancy.resolve_slug("globex").await.unwrap();
    let sql = "SELECT count(*) FROM settings LEFT JOIN {spins} s ON false";
    let read = async |ctx: &TenantCtx| Spin::repo().raw_as::<(i64,)>(sql).fetch_one(ctx).await;
    assert_eq!(read(&acme).await.unwrap(), (1,));
    // In its database, its tenant tables are still named only through placeholders.
    match Spin::repo()
        .raw_as::<(i64,)>("SELECT count(*) FROM spinners LEFT JOIN {spins} s ON false")
        .fetch_one(&acme)
        .await
    {
        Err(Error::UnscopedSql(r)) => assert_eq!(r.kind(), RefusalKind::TenantTable, "{r}"),
        other => panic!("a tenant table was read unfenced: {other:?}"),
    }
    match read(&globex).await {
        Err(Error::UnscopedSql(r)) => assert_eq!(r.kind(), RefusalKind::GlobalTable, "{r}"),
        other => panic!("the shared table was read: {other:?}"),
    }
    // The same for a global write, whose verdict names the database.
    let write = "DELETE FROM settings WHERE secret = 'none'";
    let mut tx = acme.begin().await.unwrap();
    assert_eq!(tx.write_global(write).execute().await.unwrap(), 0);
    tx.commit().await.unwrap();
    let mut tx = globex.begin().await.unwrap();
    match tx.write_global(write).execute().await {
        Err(Error::UnscopedSql(r)) => assert_eq!(r.kind(), RefusalKind::GlobalTable, "{r}"),
        other => panic!("the shared table was written: {other:?}"),
    }
    tx.commit().await.unwrap();
}
