//! The raw-SQL escape hatch: SQL that could reach rows outside the tenant is refused with
//! `Error::UnscopedSql` before anything is sent, and scoped SQL (placeholders, the caller's own
//! `WITH`, literals that merely contain `{spins}`) runs on the tenant's rows only.

mod common;

use common::models::*;
use common::{SPINNER_SCHEMA, TestDb};
use tenancy::{Error, NewTenant, TenantCtx};
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

/// The escape hatch names only the tables of declared models; a tenant-scoped table of a model
/// left out of `.with` is not recognised, so its bare name reads every tenant's rows. The
/// module documentation says as much ("declare every tenant-scoped model the SQL reads"), but
/// the library knows which tables are tenant-scoped (they have the tenant column; `verify`
/// checks them), so it could refuse them too.
#[tokio::test]
#[ignore = "BUG (documented limitation): the bare name of a tenant-scoped table whose model is \
            not declared with .with() is accepted and reads every tenant's rows"]
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
/// (`query_to_xml`, and likewise `dblink`, or a user function with dynamic SQL) reaches the
/// table unscoped.
#[tokio::test]
#[ignore = "BUG: a table named inside a string passed to a function that runs SQL \
            (query_to_xml) is not seen by the lexer, and the query reads every tenant's rows"]
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
