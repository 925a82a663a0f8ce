//! The raw-SQL escape hatch: SQL that could reach rows outside the tenant is refused with
//! `Error::UnscopedSql` before anything is sent, and scoped SQL (placeholders, the caller's own
//! `WITH`, literals that merely contain `{spins}`) runs on the tenant's rows only.

mod common;

use common::models::*;
use common::{SPINNER_SCHEMA, TestDb};
use tenancy::{
    Error, MigrateOptions, Migrations, NewTenant, Placement, RefusalKind, Tenancy, TenantCtx,
};
use uuid::Uuid;

struct World {
    db: TestDb,
    a: TenantCtx,
    b: TenantCtx,
    /// A's spinner and spins.
    a_spinner: Spinner,
    a_spins: Vec<Spin>,
    b_spins: Vec<Spin>,
}

async fn seed(ctx: &TenantCtx, durations: &[i32]) -> (Spinner, Vec<Spin>) {
    let spinner = Spinner::repo()
        .insert(
            ctx,
            &NewSpinner {
                id: Uuid::new_v4(),
                name: "fidget".into(),
                color: None,
            },
        )
        .await
        .unwrap();
    let news: Vec<NewSpin> = durations
        .iter()
        .map(|&duration| NewSpin {
            id: Uuid::new_v4(),
            spinner_id: spinner.id,
            duration,
            note: None,
        })
        .collect();
    let spins = Spin::repo().insert_many(ctx, &news).await.unwrap();
    (spinner, spins)
}

async fn world(name: &str) -> World {
    let db = TestDb::new(name).await;
    let tenancy = db.tenancy().await;
    db.exec(SPINNER_SCHEMA).await;
    for slug in ["raw-a", "raw-b"] {
        tenancy
            .create_tenant(NewTenant::new(slug, slug))
            .await
            .unwrap();
    }
    let a = tenancy.resolve_slug("raw-a").await.unwrap();
    let b = tenancy.resolve_slug("raw-b").await.unwrap();
    let (a_spinner, a_spins) = seed(&a, &[10, 20, 30]).await;
    let (_, b_spins) = seed(&b, &[40, 50]).await;
    World {
        db,
        a,
        b,
        a_spinner,
        a_spins,
        b_spins,
    }
}

/// Rows per tenant in both tables, read around the library.
async fn table_counts(db: &TestDb) -> Vec<(String, Option<Uuid>, i64)> {
    let mut conn = db.connect().await;
    sqlx::query_as(
        "SELECT 'spinners', tenant_id, count(*) FROM spinners GROUP BY tenant_id \
         UNION ALL SELECT 'spins', tenant_id, count(*) FROM spins GROUP BY tenant_id \
         UNION ALL SELECT 'tenants', NULL::uuid, count(*) FROM tenancy.tenants \
         ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

/// Asserts a refusal of `kind` naming `name`, with a message that says so.
fn assert_refused<T: std::fmt::Debug>(
    sql: &str,
    r: tenancy::Result<T>,
    kind: RefusalKind,
    name: Option<&str>,
) {
    match r {
        Err(Error::UnscopedSql(refusal)) => {
            assert_eq!(refusal.kind(), kind, "{sql:?}: {refusal}");
            if let Some(name) = name {
                assert_eq!(refusal.name(), Some(name), "{sql:?}: {refusal}");
                assert!(refusal.to_string().contains(name), "{sql:?}: {refusal}");
            }
            assert!(!refusal.hint().is_empty());
        }
        other => panic!("{sql:?} was not refused as {kind:?}: {other:?}"),
    }
}

fn assert_unscoped<T: std::fmt::Debug>(sql: &str, r: tenancy::Result<T>) {
    assert!(
        matches!(r, Err(Error::UnscopedSql(_))),
        "{sql:?} was not refused as unscoped: {r:?}"
    );
}

#[tokio::test]
async fn unscoped_sql_is_refused() {
    let w = world("raw_refused").await;
    let before = table_counts(&w.db).await;
    let ctx = &w.b;

    // SQL without bound values, read as Spin, with Spinner declared too.
    let refused = [
        // the table by its bare name
        "SELECT * FROM spins",
        "SELECT * FROM SPINS",
        "SELECT * FROM Spins s WHERE s.duration > 0",
        "TABLE spins",
        // schema-qualified, quoted, both
        "SELECT * FROM public.spins",
        "SELECT * FROM \"public\".\"spins\"",
        "SELECT * FROM \"spins\"",
        "SELECT * FROM public . spins",
        // next to a placeholder
        "SELECT * FROM {spins} s, spins t",
        "SELECT * FROM {spins} UNION ALL SELECT * FROM spins",
        "SELECT * FROM {spins} s WHERE s.spinner_id IN (SELECT id FROM spinners)",
        "SELECT * FROM {spins} s WHERE EXISTS (SELECT 1 FROM ONLY spins)",
        "SELECT * FROM {spins} s JOIN public.\"spinners\" p ON p.id = s.spinner_id",
        "WITH x AS (SELECT * FROM spins) SELECT * FROM {spins}",
        // the registry
        "SELECT * FROM {spins}, tenancy.tenants",
        "SELECT * FROM {spins} s WHERE EXISTS (SELECT 1 FROM tenancy.domains)",
        "SELECT * FROM {spins} s WHERE EXISTS (SELECT 1 FROM \"tenancy\".\"tenants\")",
        "SELECT * FROM {spins} s WHERE EXISTS (SELECT 1 FROM TENANCY.audit_log)",
        "SELECT * FROM {spins} s WHERE EXISTS (SELECT 1 FROM tenancy . tenants)",
        // no placeholder at all
        "SELECT 1",
        "SELECT now()",
        "SELECT * FROM pg_class",
        // a parameter nobody bound
        "SELECT * FROM {spins} WHERE duration = $1",
        "SELECT * FROM {spins} WHERE duration = $0",
        // what the lexer cannot be sure of
        "SELECT * FROM {spins} WHERE note = 'unterminated",
        "SELECT * FROM {spins} /* unterminated",
        "SELECT * FROM {spins} WHERE note = U&'\\0073pins'",
        "SELECT * FROM {spins} s, U&\"\\0073pins\" t",
        "SELECT * FROM {spins} WHERE note = $$unterminated",
        "SELECT * FROM {spins} WHERE x = '{' } ",
        "SELECT * FROM {sp ins}",
        "SELECT * FROM {}",
    ];
    for sql in refused {
        let r = Spin::repo()
            .raw(sqlx::AssertSqlSafe(sql))
            .with::<Spinner>()
            .fetch_all(ctx)
            .await;
        assert_unscoped(sql, r);
        let r = Spin::repo()
            .raw_as::<(i64,)>(sqlx::AssertSqlSafe(sql))
            .with::<Spinner>()
            .fetch_optional(ctx)
            .await;
        assert_unscoped(sql, r);
    }

    // A model not declared with `.with` cannot be named by its placeholder.
    let sql = "SELECT s.* FROM {spins} s JOIN {spinners} p ON p.id = s.spinner_id";
    assert_unscoped(sql, Spin::repo().raw(sql).fetch_all(ctx).await);
    let sql = "SELECT * FROM {spinners}";
    assert_unscoped(sql, Spin::repo().raw(sql).fetch_all(ctx).await);
    assert_unscoped(sql, Spin::repo().raw_as::<(i64,)>(sql).fetch_one(ctx).await);
    // Once declared, its bare name is refused too.
    let sql = "SELECT s.* FROM {spins} s JOIN spinners p ON p.id = s.spinner_id";
    assert_unscoped(
        sql,
        Spin::repo().raw(sql).with::<Spinner>().fetch_all(ctx).await,
    );
    // The unknown placeholder of a table that is no model.
    let sql = "SELECT * FROM {spins} s, {gadgets} g";
    assert_unscoped(sql, Spin::repo().raw(sql).fetch_all(ctx).await);

    // Parameters past those bound: `$2` with one value, `$3` with two.
    let sql = "SELECT * FROM {spins} WHERE duration > $1 AND id = $2";
    assert_unscoped(sql, Spin::repo().raw(sql).bind(1).fetch_all(ctx).await);
    let sql = "SELECT * FROM {spins} WHERE duration > $1 AND duration < $3";
    assert_unscoped(
        sql,
        Spin::repo().raw(sql).bind(1).bind(2).fetch_all(ctx).await,
    );
    // ... which would otherwise be the tenant parameter: `$2` after one bound value.
    let sql = "SELECT * FROM {spins} WHERE tenant_id <> $2";
    assert_unscoped(sql, Spin::repo().raw(sql).bind(1).fetch_all(ctx).await);

    // Every way of running it refuses, the stream included.
    use futures_util::StreamExt;
    let sql = "SELECT * FROM spins";
    let streamed: Vec<_> = Spin::repo().raw(sql).fetch(ctx).collect().await;
    assert_eq!(streamed.len(), 1);
    assert!(matches!(streamed[0], Err(Error::UnscopedSql(_))));
    assert_unscoped(sql, Spin::repo().raw(sql).fetch_one(ctx).await);
    assert_unscoped(sql, Spin::repo().raw(sql).fetch_optional(ctx).await);
    let mut tx = ctx.begin().await.unwrap();
    assert_unscoped(sql, Spin::repo().raw(sql).fetch_all(&mut tx).await);
    // The transaction is still usable: the refusal sent nothing.
    assert_eq!(Spin::repo().count(&mut tx).await.unwrap(), 2);
    tx.rollback().await.unwrap();

    assert_eq!(table_counts(&w.db).await, before);
}

#[tokio::test]
async fn statements_that_write_are_refused_or_fail_and_change_nothing() {
    let w = world("raw_writes").await;
    let before = table_counts(&w.db).await;
    let ctx = &w.b;
    // Writing through a placeholder writes to a CTE, which PostgreSQL refuses; naming the table
    // is refused before that; several statements are refused by the extended protocol.
    for sql in [
        "DELETE FROM {spins}",
        "UPDATE {spins} SET duration = 0",
        "DELETE FROM spins",
        "WITH d AS (DELETE FROM spins RETURNING *) SELECT * FROM {spins}",
        "WITH d AS (DELETE FROM {spins} RETURNING *) SELECT * FROM d",
        "SELECT * FROM {spins}; DELETE FROM spins",
        "SELECT * FROM {spins}; DELETE FROM tenancy.domains",
        "SELECT * FROM {spins}; SELECT * FROM {spinners}",
        // only a query can follow the placeholders' WITH
        "COPY (SELECT * FROM {spins}) TO STDOUT",
        "EXPLAIN ANALYZE DELETE FROM {spins}",
        "DO $$ BEGIN EXECUTE 'DELETE FROM spins'; END $$",
        "SELECT * FROM {spins}; DO $$ BEGIN EXECUTE 'DELETE FROM spins'; END $$",
        "CALL cleanup() -- {spins}",
        "INSERT INTO spins SELECT * FROM {spins}",
    ] {
        let r = Spin::repo()
            .raw(sqlx::AssertSqlSafe(sql))
            .with::<Spinner>()
            .fetch_all(ctx)
            .await;
        assert!(
            matches!(r, Err(Error::UnscopedSql(_) | Error::Database(_))),
            "{sql:?}: {r:?}"
        );
    }
    assert_eq!(table_counts(&w.db).await, before);
}

#[tokio::test]
async fn scoped_sql_is_accepted_and_reads_only_the_tenant() {
    let w = world("raw_accepted").await;
    let (a, b) = (&w.a, &w.b);
    let mut b_sorted = w.b_spins.clone();
    b_sorted.sort_by_key(|s| s.duration);

    // The caller's own WITH, in any case, RECURSIVE too: ours is spliced in front.
    for sql in [
        "WITH long AS (SELECT * FROM {spins} WHERE duration >= $1) SELECT * FROM long ORDER BY duration",
        "with long as (select * from {spins} where duration >= $1) select * from long order by duration",
        "With long As (Select * From {spins} Where duration >= $1) Select * From long Order By duration",
        "-- a comment first\nWITH long AS (SELECT * FROM {spins} WHERE duration >= $1) SELECT * FROM long ORDER BY duration",
        "WITH RECURSIVE long AS (SELECT * FROM {spins} WHERE duration >= $1) SELECT * FROM long ORDER BY duration",
        "WITH a AS (SELECT * FROM {spins}), long AS (SELECT * FROM a WHERE duration >= $1) \
         SELECT * FROM long ORDER BY duration",
        "SELECT * FROM (WITH long AS (SELECT * FROM {spins} WHERE duration >= $1) SELECT * FROM long) x \
         ORDER BY duration",
    ] {
        let rows = Spin::repo()
            .raw(sqlx::AssertSqlSafe(sql))
            .bind(0)
            .fetch_all(b)
            .await
            .unwrap_or_else(|e| panic!("{sql:?}: {e}"));
        assert_eq!(rows, b_sorted, "{sql:?}");
    }
    let (n,): (i64,) = Spin::repo()
        .raw_as(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) \
             SELECT count(*) FROM n, {spins}",
        )
        .fetch_one(a)
        .await
        .unwrap();
    assert_eq!(n, 3 * w.a_spins.len() as i64);

    // Literals, identifiers and comments that merely contain `{spins}` or `spins` are left alone.
    let (text, n): (String, i64) = Spin::repo()
        .raw_as("SELECT 'FROM spins {spins} tenancy.tenants' AS t, count(*) FROM {spins}")
        .fetch_one(a)
        .await
        .unwrap();
    assert_eq!(text, "FROM spins {spins} tenancy.tenants");
    assert_eq!(n, 3);
    for (sql, want) in [
        (
            "SELECT E'{spins} it''s \\' spins' AS t FROM {spins} LIMIT 1",
            "{spins} it's ' spins",
        ),
        (
            "SELECT $$ {spins} spins $$ AS t FROM {spins} LIMIT 1",
            " {spins} spins ",
        ),
        (
            "SELECT $x$ {spinners} $x$ AS t FROM {spins} LIMIT 1",
            " {spinners} ",
        ),
        ("SELECT 'a' -- FROM spins\n AS t FROM {spins} LIMIT 1", "a"),
        (
            "SELECT /* spins /* nested {spins} */ */ 'b' AS t FROM {spins} LIMIT 1",
            "b",
        ),
        (
            "SELECT 'it''s {spins}' AS t FROM {spins} LIMIT 1",
            "it's {spins}",
        ),
        (
            "SELECT s.note_text AS t FROM (SELECT 'spins_x' AS note_text) s, {spins} LIMIT 1",
            "spins_x",
        ),
        (
            "SELECT \"spins_total\" AS t FROM (SELECT 'q' AS spins_total) s, {spins} LIMIT 1",
            "q",
        ),
    ] {
        let (t,): (String,) = Spin::repo()
            .raw_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(a)
            .await
            .unwrap_or_else(|e| panic!("{sql:?}: {e}"));
        assert_eq!(t, want, "{sql:?}");
    }

    // A value that looks like SQL is bound, never spliced.
    let rows = Spin::repo()
        .raw("SELECT * FROM {spins} WHERE note = $1 OR duration = $2")
        .bind("x' OR 1=1 --")
        .bind(w.a_spins[0].duration)
        .fetch_all(a)
        .await
        .unwrap();
    assert_eq!(rows, vec![w.a_spins[0].clone()]);

    // The placeholder of a declared model, also repeated, also with the table as a column name
    // of the CTE: still the tenant's rows.
    let (n, m): (i64, i64) = Spin::repo()
        .raw_as(
            "SELECT (SELECT count(*) FROM {spins}), \
                    (SELECT count(*) FROM {spins} x JOIN {spinners} p ON p.id = x.spinner_id)",
        )
        .with::<Spinner>()
        .fetch_one(b)
        .await
        .unwrap();
    assert_eq!((n, m), (2, 2));
    // B naming A's spinner by key through a declared join: nothing.
    let rows = Spin::repo()
        .raw("SELECT s.* FROM {spins} s JOIN {spinners} p ON p.id = s.spinner_id WHERE p.id = $1")
        .with::<Spinner>()
        .bind(w.a_spinner.id)
        .fetch_all(b)
        .await
        .unwrap();
    assert!(rows.is_empty());
}

/// A tenant-scoped table of a model left out of `.with` used to be unrecognised, so its bare
/// name read every tenant's rows. The catalog knows it (it has the tenant column), so it is
/// refused like a declared one.
#[tokio::test]
async fn the_bare_name_of_an_undeclared_tenant_table_is_refused() {
    let w = world("raw_undeclared").await;
    let r = Spin::repo()
        .raw_as::<(i64,)>("SELECT count(*) FROM spinners WHERE EXISTS (SELECT 1 FROM {spins})")
        .fetch_one(&w.b)
        .await;
    assert!(
        matches!(r, Err(Error::UnscopedSql(_))),
        "accepted; B counted {:?} spinners, B has 1",
        r.map(|(n,)| n)
    );
    let sql = "SELECT s.* FROM {spins} s JOIN spinners p ON p.id = s.spinner_id";
    let r = Spin::repo().raw(sql).fetch_all(&w.b).await;
    assert!(matches!(r, Err(Error::UnscopedSql(_))), "accepted: {r:?}");
}

/// The check is lexical and skips string literals, so SQL text that PostgreSQL itself executes
/// (`query_to_xml`) used to reach the table unscoped. Such functions are refused by name.
#[tokio::test]
async fn sql_run_from_a_string_cannot_read_other_tenants() {
    let w = world("raw_dynamic").await;
    let r = Spin::repo()
        .raw_as::<(String, i64)>(
            "SELECT query_to_xml('SELECT id FROM spins', true, false, '')::text, \
                    (SELECT count(*) FROM {spins})",
        )
        .fetch_one(&w.b)
        .await;
    match r {
        Err(Error::UnscopedSql(_)) => {}
        Err(e) => panic!("refused, but not as unscoped SQL: {e}"),
        Ok((xml, _)) => {
            let leaked: Vec<Uuid> = w
                .a_spins
                .iter()
                .map(|s| s.id)
                .filter(|id| xml.contains(&id.to_string()))
                .collect();
            assert!(
                leaked.is_empty(),
                "B read {} of A's spins: {xml}",
                leaked.len()
            );
        }
    }
}

/// Runs `sql` for tenant `ctx`, read as `(i64,)` rows with no model declared but `Spin`,
/// expecting a refusal of `kind` naming `name`.
async fn refused_undeclared(ctx: &TenantCtx, sql: &str, kind: RefusalKind, name: Option<&str>) {
    let r = Spin::repo()
        .raw_as::<(i64,)>(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(ctx)
        .await;
    assert_refused(sql, r, kind, name);
}

/// B's count of its own spins through `sql` (a query of one `bigint`).
async fn count(ctx: &TenantCtx, sql: &str) -> i64 {
    let (n,): (i64,) = Spin::repo()
        .raw_as(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(ctx)
        .await
        .unwrap_or_else(|e| panic!("{sql:?}: {e}"));
    n
}

/// A table name of exactly 63 bytes, the most PostgreSQL keeps.
const LONG_TABLE: &str = "spin_archive_with_a_very_long_name_that_postgres_keeps_in_full_";

/// Tenant data the raw SQL does not declare, in every shape the catalog knows: tables with the
/// tenant column, views and materialized views over them (also one that drops the column), a
/// view of the registry, a sequence owned by a tenant table, an inheritance parent whose child
/// holds tenant rows, a table that references the registry under another column name, a table
/// created after the first raw query. Each holds A's rows; B's SQL naming it is refused.
#[tokio::test]
async fn undeclared_tenant_data_is_refused_in_every_shape() {
    let w = world("raw_shapes").await;
    let b = &w.b;
    // The catalog is asked at each query: B's first raw query runs before most of this exists.
    assert_eq!(count(b, "SELECT count(*) FROM {spins}").await, 2);
    w.db.exec(&format!(
        r#"
        CREATE VIEW spin_durations AS SELECT duration FROM spins;
        CREATE VIEW long_spins AS SELECT * FROM spin_durations WHERE duration > 15;
        CREATE MATERIALIZED VIEW spin_totals AS SELECT count(*) AS n FROM spins;
        CREATE VIEW tenant_slugs AS SELECT slug FROM tenancy.tenants;
        CREATE SEQUENCE spin_numbers OWNED BY spins.duration;
        CREATE TABLE events (id int);
        CREATE TABLE spin_events (tenant_id uuid NOT NULL) INHERITS (events);
        INSERT INTO spin_events SELECT 1, id FROM tenancy.tenants;
        CREATE TABLE memberships (org uuid NOT NULL REFERENCES tenancy.tenants (id), role text);
        INSERT INTO memberships SELECT id, 'owner' FROM tenancy.tenants;
        CREATE TABLE "{LONG_TABLE}" (tenant_id uuid NOT NULL, n int);
        INSERT INTO "{LONG_TABLE}" SELECT id, 1 FROM tenancy.tenants;
        CREATE TABLE plans (name text PRIMARY KEY);
        INSERT INTO plans VALUES ('free');
        "#
    ))
    .await;
    // Around the library, these do hold A's rows.
    let mut conn = w.db.connect().await;
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(all, 2);

    let tenant_table = RefusalKind::TenantTable;
    for (sql, name) in [
        // the bare name, in any spelling and position
        (
            "SELECT count(*) FROM spinners WHERE EXISTS (SELECT 1 FROM {spins})",
            "spinners",
        ),
        ("SELECT count(*) FROM SPINNERS, {spins}", "spinners"),
        ("SELECT count(*) FROM \"spinners\", {spins}", "spinners"),
        ("SELECT count(*) FROM public.spinners, {spins}", "spinners"),
        (
            "SELECT count(*) FROM \"public\" . \"spinners\", {spins}",
            "spinners",
        ),
        (
            "SELECT count(*) FROM (TABLE spinners) p, {spins}",
            "spinners",
        ),
        (
            "SELECT count(*) FROM {spins} s WHERE s.spinner_id IN (SELECT id FROM ONLY spinners)",
            "spinners",
        ),
        (
            "SELECT count(*) FROM {spins} -- a comment ends at a carriage return\r\
             UNION ALL SELECT count(*) FROM spinners",
            "spinners",
        ),
        // what reads it
        (
            "SELECT count(*) FROM spin_durations, {spins}",
            "spin_durations",
        ),
        ("SELECT count(*) FROM long_spins, {spins}", "long_spins"),
        ("SELECT n FROM spin_totals, {spins}", "spin_totals"),
        ("SELECT count(*) FROM tenant_slugs, {spins}", "tenant_slugs"),
        (
            "SELECT last_value FROM spin_numbers, {spins}",
            "spin_numbers",
        ),
        ("SELECT count(*) FROM events, {spins}", "events"),
        ("SELECT count(*) FROM spin_events, {spins}", "spin_events"),
        ("SELECT count(*) FROM memberships, {spins}", "memberships"),
    ] {
        refused_undeclared(b, sql, tenant_table, Some(name)).await;
    }
    // A longer name that PostgreSQL truncates to the 63-byte table.
    let sql = format!("SELECT count(*) FROM {LONG_TABLE}and_then_some, {{spins}}");
    refused_undeclared(b, &sql, tenant_table, Some(LONG_TABLE)).await;

    // A tenant table created after the queries above, also inside a transaction begun before.
    let mut tx = b.begin().await.unwrap();
    assert_eq!(
        Spin::repo()
            .raw_as::<(i64,)>("SELECT count(*) FROM {spins}")
            .fetch_one(&mut tx)
            .await
            .unwrap(),
        (2,)
    );
    w.db.exec(
        "CREATE TABLE gadgets (tenant_id uuid NOT NULL, id uuid); \
         INSERT INTO gadgets SELECT id, gen_random_uuid() FROM tenancy.tenants;",
    )
    .await;
    let sql = "SELECT count(*) FROM gadgets, {spins}";
    refused_undeclared(b, sql, tenant_table, Some("gadgets")).await;
    let r = Spin::repo().raw_as::<(i64,)>(sql).fetch_all(&mut tx).await;
    assert_refused(sql, r, tenant_table, Some("gadgets"));
    assert_eq!(Spin::repo().count(&mut tx).await.unwrap(), 2);
    tx.rollback().await.unwrap();

    // A table without tenant data is refused unless declared a global table; then it is read.
    let sql = "SELECT count(*) FROM {spins} s, plans p WHERE p.name = 'free'";
    refused_undeclared(b, sql, RefusalKind::Relation, Some("plans")).await;
    let tenancy = Tenancy::builder()
        .global_tables(["plans"])
        .connect(&w.db.url)
        .await
        .unwrap();
    let b = tenancy.resolve_slug("raw-b").await.unwrap();
    assert_eq!(count(&b, sql).await, 2);
}

/// Functions that run SQL given as text, read tables, schemas or the database by name, read
/// shared sequences or raw storage, change the session, or show other sessions; functions the
/// database defines (whose bodies the check cannot see, including an overload of a built-in);
/// functions of extensions that run SQL text. All refused by name.
#[tokio::test]
async fn functions_that_reach_around_the_placeholders_are_refused() {
    let w = world("raw_functions").await;
    let b = &w.b;
    w.db.exec(
        r#"
        CREATE SEQUENCE spin_numbers OWNED BY spins.duration;
        CREATE FUNCTION spin_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM spins';
        CREATE FUNCTION run_sql(q text) RETURNS bigint LANGUAGE plpgsql AS
            $$ DECLARE n bigint; BEGIN EXECUTE q INTO n; RETURN n; END $$;
        CREATE FUNCTION lower(n integer) RETURNS bigint LANGUAGE sql
            AS 'SELECT count(*) FROM spins';
        "#,
    )
    .await;
    // Around the library, the user functions do read every tenant's rows.
    let mut conn = w.db.connect().await;
    let all: i64 = sqlx::query_scalar("SELECT lower(1)")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(all, 5);

    let function = RefusalKind::Function;
    let q = "'SELECT * FROM spinners'";
    for (sql, name) in [
        (format!("SELECT count(*) FROM {{spins}} WHERE query_to_xml({q}, true, false, '') IS NOT NULL"), "query_to_xml"),
        (format!("SELECT count(*) FROM {{spins}} WHERE pg_catalog.QUERY_TO_XML({q}, true, false, '') IS NOT NULL"), "query_to_xml"),
        (format!("SELECT count(*) FROM {{spins}} WHERE \"query_to_xml\"({q}, true, false, '') IS NOT NULL"), "query_to_xml"),
        (format!("SELECT count(*) FROM {{spins}} WHERE query_to_xmlschema({q}, true, false, '') IS NOT NULL"), "query_to_xmlschema"),
        (format!("SELECT count(*) FROM {{spins}} WHERE query_to_xml_and_xmlschema({q}, true, false, '') IS NOT NULL"), "query_to_xml_and_xmlschema"),
        ("SELECT count(*) FROM {spins} WHERE cursor_to_xml('c', 10, true, false, '') IS NOT NULL".into(), "cursor_to_xml"),
        ("SELECT count(*) FROM {spins} WHERE table_to_xml('spinners'::regclass, true, false, '') IS NOT NULL".into(), "table_to_xml"),
        ("SELECT count(*) FROM {spins} WHERE table_to_xml_and_xmlschema('public.spinners', true, false, '') IS NOT NULL".into(), "table_to_xml_and_xmlschema"),
        ("SELECT count(*) FROM {spins} WHERE schema_to_xml('public', true, false, '') IS NOT NULL".into(), "schema_to_xml"),
        ("SELECT count(*) FROM {spins} WHERE database_to_xml(true, false, '') IS NOT NULL".into(), "database_to_xml"),
        ("SELECT count(*) FROM {spins}, ts_stat('SELECT to_tsvector(name) FROM spinners')".into(), "ts_stat"),
        ("SELECT currval('spin_numbers') FROM {spins}".into(), "currval"),
        ("SELECT nextval('spin_numbers') FROM {spins}".into(), "nextval"),
        ("SELECT count(*) FROM {spins} WHERE set_config('search_path', 'public', false) <> ''".into(), "set_config"),
        ("SELECT count(*) FROM {spins}, pg_stat_get_activity(NULL)".into(), "pg_stat_get_activity"),
        ("SELECT length(pg_read_file('postgresql.conf'))::bigint FROM {spins}".into(), "pg_read_file"),
        // defined in the database
        ("SELECT spin_count() FROM {spins}".into(), "spin_count"),
        ("SELECT public.spin_count() FROM {spins}".into(), "spin_count"),
        ("SELECT run_sql('SELECT count(*) FROM spins') FROM {spins}".into(), "run_sql"),
        ("SELECT run_sql($q$SELECT count(*) FROM spins$q$) FROM {spins}".into(), "run_sql"),
        // an overload of a built-in: lower(integer) resolves to the user's function
        ("SELECT lower(duration) FROM {spins}".into(), "lower"),
    ] {
        refused_undeclared(b, &sql, function, Some(name)).await;
    }
    for sql in [
        "SELECT count(*) FROM {spins}, pg_stats WHERE tablename = 'spinners'",
        "SELECT count(*) FROM {spins}, pg_catalog.pg_stats",
        "SELECT count(*) FROM {spins}, pg_stat_activity",
    ] {
        refused_undeclared(b, sql, RefusalKind::SystemView, None).await;
    }

    // Extensions, where the server has them: dblink and tablefunc run SQL text; pg_trgm does not.
    let try_extension = async |name: &str| {
        let mut conn = w.db.connect().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE EXTENSION IF NOT EXISTS {name}"
        )))
        .execute(&mut conn)
        .await
        .is_ok()
    };
    if try_extension("dblink").await {
        let sql = "SELECT count(*) FROM {spins}, \
                   dblink('dbname=' || current_database(), 'SELECT id FROM spins') AS t(id uuid)";
        refused_undeclared(b, sql, function, Some("dblink")).await;
    }
    if try_extension("tablefunc").await {
        let sql = "SELECT count(*) FROM {spins}, \
                   crosstab('SELECT name, name, name FROM spinners') AS t(a text, b text)";
        refused_undeclared(b, sql, function, Some("crosstab")).await;
    }
    if try_extension("pg_trgm").await {
        // Extensions' functions are not on the allow-list either.
        let sql = "SELECT count(*) FROM {spins} WHERE similarity(coalesce(note, ''), 'x') >= 0";
        refused_undeclared(b, sql, function, Some("similarity")).await;
    }
}

/// What the lexer could read differently from the server is refused, against a server that
/// reads it the dangerous way: `standard_conforming_strings = off` ends `'a\'` later than the
/// lexer would, so the text it took for a string would run.
#[tokio::test]
async fn sql_the_lexer_cannot_read_with_certainty_is_refused() {
    let w = world("raw_lexical").await;
    w.db.exec(&format!(
        "ALTER DATABASE \"{}\" SET standard_conforming_strings = off",
        w.db.name
    ))
    .await;
    let tenancy = w.db.tenancy().await;
    let b = tenancy.resolve_slug("raw-b").await.unwrap();
    let attack = "SELECT count(*) FROM {spins} WHERE note IS NULL OR note <> 'a\\' OR note <> ' \
                  UNION ALL SELECT count(*) FROM spinners --'";
    // Read as the server reads it, this counts every tenant's spinners.
    let mut conn = w.db.connect().await;
    let around: Vec<i64> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(attack.replace("{spins}", "spins")))
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(around, vec![5, 2]);
    refused_undeclared(&b, attack, RefusalKind::Lexical, None).await;
    // E'' strings mean the same whatever the setting.
    let sql = "SELECT count(*) FROM {spins} WHERE coalesce(note, E'\\\\') = E'\\\\'";
    assert_eq!(count(&b, sql).await, 2);

    for sql in [
        "SELECT count(*) FROM {spins}; SELECT count(*) FROM spinners",
        "SELECT count(*) FROM {spins}; DO $$ BEGIN PERFORM 1; END $$",
        "SELECT count(*) FROM {spins} s, U&\"\\0073pinners\" p",
        "SELECT count(*) FROM {spins} /* a /* nested */ comment left open",
        "SELECT count(*) FROM {spins} WHERE note = $x$ left open",
    ] {
        refused_undeclared(&b, sql, RefusalKind::Lexical, None).await;
    }
}

/// Own-schema tenants: another tenant's schema (by any spelling), a spare schema, and a table
/// that exists only in tenant schemas are refused; the own-schema tenant's bare names of shared
/// tables are refused too; placeholders read each tenant's own rows.
#[tokio::test]
async fn tenant_schemas_are_reached_only_through_placeholders() {
    let db = TestDb::new("raw_schemas").await;
    let tenancy = Tenancy::builder()
        .max_connections(5)
        .tenant_migrations(Migrations::from_static(&[(1, "spinner app", SPINNER_SCHEMA)]).unwrap())
        .connect(&db.url)
        .await
        .unwrap();
    let su = tenancy.superuser("test", "shared tables").await.unwrap();
    let report = tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    assert!(report.is_success(), "{report:?}");
    tenancy
        .create_tenant(NewTenant::new("acme", "Acme").placement(Placement::OwnSchema))
        .await
        .unwrap();
    tenancy
        .create_tenant(NewTenant::new("globex", "Globex"))
        .await
        .unwrap();
    assert_eq!(tenancy.warm_schemas(&su, 1).await.unwrap(), 1);
    let acme = tenancy.resolve_slug("acme").await.unwrap();
    let globex = tenancy.resolve_slug("globex").await.unwrap();
    seed(&acme, &[1, 2, 3]).await;
    seed(&globex, &[4, 5]).await;
    db.exec("CREATE TABLE t_acme.private_notes (body text); INSERT INTO t_acme.private_notes VALUES ('secret');")
        .await;
    let mut conn = db.connect().await;
    let spare: String = sqlx::query_scalar("SELECT name FROM tenancy.spare_schemas")
        .fetch_one(&mut conn)
        .await
        .unwrap();

    let schema = RefusalKind::TenantSchema;
    for sql in [
        "SELECT count(*) FROM t_acme.spinners, {spins}",
        "SELECT count(*) FROM \"t_acme\".\"spinners\", {spins}",
        "SELECT count(*) FROM T_ACME.spinners, {spins}",
        "SELECT count(*) FROM t_acme . spinners, {spins}",
        "SELECT count(*) FROM {spins} WHERE EXISTS (SELECT 1 FROM t_acme.private_notes)",
    ] {
        refused_undeclared(&globex, sql, schema, Some("t_acme")).await;
    }
    let sql = format!("SELECT count(*) FROM \"{spare}\".spinners, {{spins}}");
    refused_undeclared(&globex, &sql, schema, Some(&spare)).await;
    // Only in tenant schemas, named bare: still a tenant table.
    let sql = "SELECT count(*) FROM private_notes, {spins}";
    refused_undeclared(
        &globex,
        sql,
        RefusalKind::TenantTable,
        Some("private_notes"),
    )
    .await;
    // The own-schema tenant naming the shared tables.
    for sql in [
        "SELECT count(*) FROM spinners, {spins}",
        "SELECT count(*) FROM public.spinners, {spins}",
    ] {
        refused_undeclared(&acme, sql, RefusalKind::TenantTable, Some("spinners")).await;
    }
    refused_undeclared(
        &acme,
        "SELECT count(*) FROM public.spins",
        RefusalKind::DeclaredTable,
        Some("spins"),
    )
    .await;
    // Placeholders: each its own.
    assert_eq!(count(&acme, "SELECT count(*) FROM {spins}").await, 3);
    assert_eq!(count(&globex, "SELECT count(*) FROM {spins}").await, 2);
}

/// What the rules must not refuse: built-in functions (also those with key-word syntax),
/// aliases and CTEs with column lists, set-returning functions, window functions, tables that
/// hold no tenant data. Each reads only B's rows.
#[tokio::test]
async fn ordinary_sql_is_not_refused() {
    let w = world("raw_ordinary").await;
    w.db.exec("CREATE TABLE plans (name text PRIMARY KEY); INSERT INTO plans VALUES ('free');")
        .await;
    let tenancy = Tenancy::builder()
        .global_tables(["public.plans"])
        .connect(&w.db.url)
        .await
        .unwrap();
    let b = &tenancy.resolve_slug("raw-b").await.unwrap();
    for (sql, want) in [
        (
            "SELECT count(*) FROM {spins} s, plans p WHERE p.name = 'free'",
            2,
        ),
        (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2) \
             SELECT count(*) FROM n, {spins}",
            4,
        ),
        (
            "SELECT count(*) FROM {spins} s, generate_series(1, 3) AS g(i)",
            6,
        ),
        (
            "SELECT count(*) FROM {spins} s, LATERAL unnest(ARRAY[s.duration]) u(d)",
            2,
        ),
        (
            "SELECT sum(r)::bigint FROM (SELECT row_number() OVER (ORDER BY duration) AS r \
             FROM {spins}) x",
            3,
        ),
        (
            "SELECT count(*) FROM {spins} WHERE lower(coalesce(note, 'X')) = 'x' \
             AND position('a' IN 'abc') = 1 AND extract(year FROM created_at) > 2000 \
             AND CAST(duration AS numeric(10, 2)) > 0 AND trim(both ' ' FROM ' a ') = 'a' \
             AND now() IS NOT NULL AND current_date IS NOT NULL \
             AND jsonb_build_object('d', duration) ? 'd' AND row_to_json(ROW(id)) IS NOT NULL \
             AND format('%s', id) <> '' AND greatest(duration, 0) = duration",
            2,
        ),
        (
            "SELECT count(*) FILTER (WHERE duration > 45) FROM {spins}",
            1,
        ),
        (
            "SELECT (SELECT count(*) FROM {spins} x JOIN {spinners} p ON p.id = x.spinner_id) \
             FROM {spins} LIMIT 1",
            2,
        ),
    ] {
        let (n,): (i64,) = Spin::repo()
            .raw_as(sqlx::AssertSqlSafe(sql))
            .with::<Spinner>()
            .fetch_one(b)
            .await
            .unwrap_or_else(|e| panic!("{sql:?}: {e}"));
        assert_eq!(n, want, "{sql:?}");
    }
}

/// What outlives the statement on a pooled connection, or counts other tenants' rows, is
/// refused: `SELECT ... INTO` (a temporary table of B's rows stayed on the connection for A's
/// next query), session advisory locks (held for the next borrower), row counts and sequence
/// values in the statistics views, other tenants' schema names in `pg_prepared_statements`,
/// and out-of-line values in `pg_toast`.
#[tokio::test]
async fn sql_whose_effects_outlive_the_statement_is_refused() {
    let w = world("raw_outlive").await;
    let b = &w.b;
    for (sql, kind, name) in [
        (
            "SELECT s.duration AS d INTO TEMP leak FROM {spins} s",
            RefusalKind::SelectInto,
            "into",
        ),
        (
            "SELECT s.duration INTO public.leak FROM {spins} s",
            RefusalKind::SelectInto,
            "into",
        ),
        (
            "WITH x AS (SELECT duration FROM {spins}) SELECT * INTO UNLOGGED leak FROM x",
            RefusalKind::SelectInto,
            "into",
        ),
        (
            "SELECT count(*) FROM {spins} WHERE pg_try_advisory_lock(4242)",
            RefusalKind::Function,
            "pg_try_advisory_lock",
        ),
        (
            "SELECT pg_advisory_lock(1)::text::int8 FROM {spins}",
            RefusalKind::Function,
            "pg_advisory_lock",
        ),
        (
            "SELECT pg_sequence_last_value('spins_seq') FROM {spins}",
            RefusalKind::Function,
            "pg_sequence_last_value",
        ),
        (
            "SELECT last_value FROM pg_sequences, {spins}",
            RefusalKind::SystemView,
            "pg_sequences",
        ),
        (
            "SELECT n_live_tup FROM pg_stat_user_tables, {spins}",
            RefusalKind::SystemView,
            "pg_stat_user_tables",
        ),
        (
            "SELECT count(*) FROM pg_prepared_statements, {spins}",
            RefusalKind::SystemView,
            "pg_prepared_statements",
        ),
        (
            "SELECT count(*) FROM pg_toast.pg_toast_2619, {spins}",
            RefusalKind::SystemView,
            "pg_toast",
        ),
    ] {
        refused_undeclared(b, sql, kind, Some(name)).await;
    }
    // Nothing was created. Advisory locks, even transaction-level ones, are refused: their keys
    // are shared with every other tenant and with tenancy's own migration locks.
    let mut conn = w.db.connect().await;
    let leaks: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class WHERE relname = 'leak'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(leaks, 0);
    for lock in ["pg_advisory_xact_lock", "pg_try_advisory_xact_lock"] {
        refused_undeclared(
            b,
            &format!("SELECT count(*) FROM {{spins}} WHERE {lock}(7) IS NOT NULL OR true"),
            RefusalKind::Function,
            Some(lock),
        )
        .await;
    }
    // Raw SQL only reads: a data-modifying CTE is refused, whatever it writes.
    w.db.exec("CREATE TABLE plans (name text PRIMARY KEY)")
        .await;
    refused_undeclared(
        b,
        "WITH i AS (INSERT INTO plans VALUES ('free') RETURNING 1) \
         SELECT count(*) FROM i, {spins} LIMIT 1",
        RefusalKind::Statement,
        Some("INSERT"),
    )
    .await;
}

/// A view that reads a tenant table through a function of the database's own: the function's
/// body is not in the catalog's dependencies, so the view is refused for calling it.
#[tokio::test]
async fn a_view_over_a_user_function_is_refused() {
    let w = world("raw_view_fn").await;
    w.db.exec(
        "CREATE FUNCTION all_durations() RETURNS TABLE (d integer) LANGUAGE sql \
             AS 'SELECT duration FROM spins'; \
         CREATE VIEW durations_v AS SELECT * FROM all_durations(); \
         CREATE VIEW harmless_v AS SELECT lower('X') AS x;",
    )
    .await;
    refused_undeclared(
        &w.b,
        "SELECT count(*) FROM durations_v v, {spins} s",
        RefusalKind::TenantTable,
        Some("durations_v"),
    )
    .await;
    // A view over built-ins only is refused too: only placeholders and declared global tables
    // (plain tables) may be named.
    refused_undeclared(
        &w.b,
        "SELECT count(*) FROM harmless_v h, {spins} s",
        RefusalKind::Relation,
        Some("harmless_v"),
    )
    .await;
}

/// Seen passing the name-list check: a system view showing other sessions' cached statements,
/// a table named in a string (a `regclass` cast, `to_regclass`), a table whose tenant column is
/// renamed and has no foreign key to the registry, `SELECT 1into x` (PostgreSQL 14 reads it as
/// `SELECT 1 INTO x`). With the allow-list each is refused, naming what and why.
#[tokio::test]
async fn what_the_name_list_let_through_is_refused() {
    let w = world("raw_allow_list").await;
    let b = &w.b;
    w.db.exec(
        "CREATE TABLE notes (owner uuid NOT NULL, body text); \
         INSERT INTO notes SELECT id, 'note of ' || slug FROM tenancy.tenants; \
         CREATE TABLE plans (name text PRIMARY KEY, tenant_id uuid); \
         CREATE TABLE countries (code text PRIMARY KEY); \
         INSERT INTO countries VALUES ('nl'), ('fr'); \
         CREATE FUNCTION every_spin(anyelement) RETURNS bigint LANGUAGE sql \
             AS 'SELECT count(*) FROM spins';",
    )
    .await;
    for (sql, kind, name) in [
        (
            "SELECT count(*) FROM {spins}, pg_backend_memory_contexts",
            RefusalKind::SystemView,
            "pg_backend_memory_contexts",
        ),
        (
            "SELECT count(*) FROM {spins}, information_schema.tables",
            RefusalKind::SystemView,
            "information_schema",
        ),
        (
            "SELECT count(*) FROM {spins} WHERE 'spinners'::regclass IS NOT NULL",
            RefusalKind::Cast,
            "regclass",
        ),
        (
            "SELECT count(*) FROM {spins} WHERE to_regclass('spinners') IS NOT NULL",
            RefusalKind::Function,
            "to_regclass",
        ),
        (
            "SELECT count(*) FROM {spins} WHERE current_setting('search_path') <> ''",
            RefusalKind::Function,
            "current_setting",
        ),
        (
            "SELECT count(*) FROM notes, {spins}",
            RefusalKind::Relation,
            "notes",
        ),
        (
            "SELECT count(*) FROM {spins} s WHERE s.duration OPERATOR(public.=) 1",
            RefusalKind::Operator,
            "public.=",
        ),
        // `s.every_spin` is the call every_spin(s) (functional notation).
        (
            "SELECT s.every_spin FROM {spins} s",
            RefusalKind::Function,
            "every_spin",
        ),
        (
            "SELECT (s).every_spin FROM {spins} s",
            RefusalKind::Function,
            "every_spin",
        ),
    ] {
        refused_undeclared(b, sql, kind, Some(name)).await;
    }
    let r = Spin::repo()
        .raw_as::<(i64,)>("SELECT 1into x FROM {spins}")
        .fetch_all(b)
        .await;
    assert!(
        matches!(&r, Err(Error::UnscopedSql(r)) if matches!(r.kind(), RefusalKind::SelectInto | RefusalKind::Lexical)),
        "{r:?}"
    );

    // Declared global tables: read when they hold no tenant data, refused when they might.
    let tenancy = Tenancy::builder()
        .global_tables(["public.countries", "plans", "notes"])
        .connect(&w.db.url)
        .await
        .unwrap();
    let b = tenancy.resolve_slug("raw-b").await.unwrap();
    assert_eq!(
        count(&b, "SELECT count(*) FROM {spins}, countries").await,
        4
    );
    assert_eq!(
        count(
            &b,
            "SELECT count(*) FROM {spins}, public.countries c WHERE c.code = 'nl'"
        )
        .await,
        2
    );
    refused_undeclared(
        &b,
        "SELECT count(*) FROM {spins}, plans",
        RefusalKind::GlobalTable,
        Some("plans"),
    )
    .await;
    // `notes` has no column tenancy knows and no foreign key: declaring it is the
    // application's statement that it holds no tenant data.
    assert_eq!(
        count(
            &b,
            "SELECT count(*) FROM notes n, {spins} s WHERE n.owner = s.tenant_id"
        )
        .await,
        2
    );
}

/// PostgreSQL inlines the tenant's CTE and may evaluate the caller's predicate before the
/// tenant filter: a tenant without rows learned another tenant's note from a failing
/// `to_date`, and that it has a spin of duration 0 from a division by zero. Expressions that
/// are not leakproof now see the tenant's rows only.
#[tokio::test]
async fn expressions_never_see_other_tenants_rows() {
    let w = world("raw_fence").await;
    w.db.exec(&format!(
        // With statistics, a sequential scan of a small table evaluates the cheapest qual
        // first, and a call costs what the tenant filter costs.
        "UPDATE spins SET note = 'b-secret-note', duration = 0 WHERE tenant_id = '{}'; ANALYZE spins",
        w.b.id().as_uuid()
    ))
    .await;
    let tenancy = w.db.tenancy().await;
    tenancy
        .create_tenant(NewTenant::new("raw-c", "raw-c"))
        .await
        .unwrap();
    let c = tenancy.resolve_slug("raw-c").await.unwrap();
    for sql in [
        "SELECT count(*) FROM {spins} s WHERE to_date(s.note, 'YYYY-MM-DD') IS NULL",
        "SELECT count(*) FROM {spins} s WHERE (1 / s.duration) IS NULL",
        "SELECT count(*) FROM {spins} s WHERE s.note::int IS NULL",
        "SELECT count(*) FROM (SELECT 1 / duration AS q FROM {spins}) x WHERE x.q IS NULL",
    ] {
        let r = Spin::repo()
            .raw_as::<(i64,)>(sqlx::AssertSqlSafe(sql))
            .fetch_one(&c)
            .await;
        match r {
            Ok((n,)) => assert_eq!(n, 0, "{sql:?}"),
            Err(e) => panic!("{sql:?} saw another tenant's row: {e}"),
        }
    }
    // The function of the report is not on the allow-list at all.
    refused_undeclared(
        &c,
        "SELECT count(*) FROM {spins} s WHERE has_schema_privilege(s.note, 'USAGE')",
        RefusalKind::Function,
        Some("has_schema_privilege"),
    )
    .await;
}

/// The catalog's verdicts are kept for the resolution cache's time to live; without one, a
/// function created since the last query that shadows a built-in is refused at once.
#[tokio::test]
async fn catalog_verdicts_last_no_longer_than_the_cache() {
    let w = world("raw_verdicts").await;
    let tenancy = Tenancy::builder()
        .cache_ttl(std::time::Duration::ZERO)
        .connect(&w.db.url)
        .await
        .unwrap();
    let b = tenancy.resolve_slug("raw-b").await.unwrap();
    let sql = "SELECT count(*) FROM {spins} s WHERE lower(s.note) IS NULL";
    assert_eq!(count(&b, sql).await, 2);
    w.db.exec(
        "CREATE FUNCTION lower(n text, m integer DEFAULT 0) RETURNS text LANGUAGE sql \
         AS 'SELECT NULL::text'",
    )
    .await;
    refused_undeclared(&b, sql, RefusalKind::Function, Some("lower")).await;
}

/// A migration through the handle forgets the catalog's verdicts at once, whatever the cache's
/// time to live: a function it creates that shadows a built-in is refused on the next query,
/// not run on the verdict cached before it.
#[tokio::test]
async fn a_migration_through_the_handle_forgets_the_catalogs_verdicts() {
    let w = world("raw_verdicts_ddl").await;
    let tenancy = Tenancy::builder()
        .cache_ttl(std::time::Duration::from_secs(3600))
        .connect(&w.db.url)
        .await
        .unwrap();
    let b = tenancy.resolve_slug("raw-b").await.unwrap();
    let sql = "SELECT count(*) FROM {spins} s WHERE lower(s.note) IS NULL";
    assert_eq!(count(&b, sql).await, 2);
    assert_eq!(count(&b, sql).await, 2, "the verdict, cached");
    let su = tenancy.superuser("ops", "shadow a built-in").await.unwrap();
    let shadow = Migrations::from_static(&[(
        1,
        "shadow lower",
        "CREATE FUNCTION lower(n text, m integer DEFAULT 0) RETURNS text LANGUAGE sql \
         AS 'SELECT NULL::text'",
    )])
    .unwrap();
    assert_eq!(tenancy.migrate_shared(&su, &shadow).await.unwrap(), vec![1]);
    refused_undeclared(&b, sql, RefusalKind::Function, Some("lower")).await;
}
