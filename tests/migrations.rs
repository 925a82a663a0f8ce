//! Migrations that cannot escape: a tenant migration sees its own schema only, migration text
//! cannot end the transaction it runs in, and no migration leaves session state on a pooled
//! connection.

mod common;

use common::models::*;
use common::{SPINNER_SCHEMA, TestDb};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};
use tenancy::{
    Error, MigrateOptions, MigrationError, MigrationTarget, Migrations, NewTenant, Outcome,
    Placement, Tenancy,
};
use uuid::Uuid;

fn spinner_app(extra: &[(i64, &str, &str)]) -> Migrations {
    let mut list = vec![(1, "spinner app", SPINNER_SCHEMA)];
    list.extend_from_slice(extra);
    Migrations::from_static(&list).unwrap()
}

async fn tenancy_with(db: &TestDb, migrations: Migrations) -> Tenancy {
    Tenancy::builder()
        .max_connections(4)
        .tenant_migrations(migrations)
        .connect(&db.url)
        .await
        .unwrap()
}

async fn scalar_i64(db: &TestDb, sql: &str) -> i64 {
    let mut conn = db.connect().await;
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

async fn exists(db: &TestDb, relation: &str) -> bool {
    let mut conn = db.connect().await;
    sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
        .bind(relation)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// The outcome of tenant `slug`'s target in `report`.
fn outcome_of(report: &tenancy::MigrationReport, slug: &str) -> Outcome {
    report
        .outcomes
        .iter()
        .find(|(t, _)| matches!(t, MigrationTarget::Tenant { slug: s, .. } if s == slug))
        .map(|(_, o)| o.clone())
        .unwrap()
}

#[tokio::test]
async fn a_tenant_migration_never_reads_the_shared_table_for_a_missing_one() {
    let db = TestDb::new("mig_no_public_fallthrough").await;
    let tenancy = tenancy_with(&db, spinner_app(&[])).await;
    common::migrate_all(&tenancy).await;
    // A shared-table tenant with rows in public.spinners: what must never reach another tenant.
    let globex = common::create_tenants(&tenancy, &[("globex", Placement::SharedTable)]).await;
    Spinner::repo()
        .insert(
            &globex[0],
            &NewSpinner {
                id: Uuid::new_v4(),
                name: "globex-secret".into(),
                color: None,
            },
        )
        .await
        .unwrap();
    let own = common::create_tenants(
        &tenancy,
        &[
            ("acme", Placement::OwnSchema),
            ("initech", Placement::OwnSchema),
        ],
    )
    .await;
    db.exec("DROP TABLE t_acme.spinners CASCADE").await;

    let copy = "CREATE TABLE spinner_names AS SELECT tenant_id, name FROM spinners";
    let tenancy = tenancy_with(&db, spinner_app(&[(2, "copy names", copy)])).await;
    let su = tenancy.superuser("test", "migrate").await.unwrap();
    let report = tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    let outcome = |slug: &str| outcome_of(&report, slug);
    assert!(
        matches!(outcome("acme"), Outcome::Failed(e)
            if e.message.contains("spinners") && e.message.contains("tenant acme")
                && e.version == Some(2) && e.sqlstate.as_deref() == Some("42P01")),
        "{report:?}"
    );
    assert_eq!(outcome("initech"), Outcome::Applied(vec![2]));
    assert!(!exists(&db, "t_acme.spinner_names").await);
    let foreign = scalar_i64(
        &db,
        &format!(
            "SELECT count(*) FROM t_initech.spinner_names WHERE tenant_id <> '{}'",
            own[1].id()
        ),
    )
    .await;
    assert_eq!(foreign, 0, "another tenant's rows were copied in");
}

/// Migration texts that would end the transaction they run in, and the line that does it.
const ESCAPES: &[(&str, usize)] = &[
    (
        "CREATE TABLE esc_a (x int);\nCOMMIT;\nCREATE TABLE esc_b (x int);",
        2,
    ),
    (
        "create table esc_a (x int); commit work; create table esc_b (x int)",
        1,
    ),
    (
        "CREATE TABLE esc_a (x int);\n  /* done */ CoMmIt\n;CREATE TABLE esc_b (x int);",
        2,
    ),
    ("BEGIN;\nCREATE TABLE esc_b (x int);", 1),
    ("CREATE TABLE esc_a (x int);\n\nSTART TRANSACTION;", 3),
    (
        "CREATE TABLE esc_a (x int);\n-- finish\nEND;\nCREATE TABLE esc_b (x int);",
        3,
    ),
    (
        "CREATE TABLE esc_a (x int);\nROLLBACK;\nCREATE TABLE esc_b (x int);",
        2,
    ),
    (
        "CREATE TABLE esc_a (x int);\n\tabort\n;CREATE TABLE esc_b (x int);",
        2,
    ),
    ("CREATE TABLE esc_a (x int);\nPREPARE TRANSACTION 'tx1';", 2),
    ("COMMIT PREPARED 'tx1';", 1),
    ("SAVEPOINT s1;\nCREATE TABLE esc_b (x int);", 1),
    ("CREATE TABLE esc_a (x int);\nRELEASE SAVEPOINT s1;", 2),
    ("CREATE TABLE esc_a (x int);\nROLLBACK TO SAVEPOINT s1;", 2),
    ("CREATE TABLE esc_a (x int);\nCALL finish_up();", 2),
    (
        "CREATE TABLE esc_a (x int);\nDO $$ BEGIN\n  COMMIT;\nEND $$;\nCREATE TABLE esc_b (x int);",
        2,
    ),
];

/// A procedure that commits, so that `CALL finish_up()` would.
const COMMITTING_PROCEDURE: &str =
    "CREATE PROCEDURE public.finish_up() LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$";

async fn assert_nothing_escaped(db: &TestDb, schema: Option<&str>) {
    for t in ["esc_a", "esc_b", "public.esc_a", "public.esc_b"] {
        assert!(!exists(db, t).await, "{t} was created");
    }
    if let Some(schema) = schema {
        let n = scalar_i64(
            db,
            &format!("SELECT count(*) FROM pg_namespace WHERE nspname = '{schema}'"),
        )
        .await;
        assert_eq!(n, 0, "schema {schema} was left behind");
    }
}

#[tokio::test]
async fn create_tenant_refuses_a_migration_that_ends_its_transaction() {
    let db = TestDb::new("mig_escape_create").await;
    db.exec(COMMITTING_PROCEDURE).await;
    for (i, &(text, line)) in ESCAPES.iter().enumerate() {
        let tenancy = tenancy_with(&db, spinner_app(&[(2, "escape", text)])).await;
        let slug = format!("esc-{i}");
        let err = tenancy
            .create_tenant(NewTenant::new(&slug, "Escape").placement(Placement::OwnSchema))
            .await
            .unwrap_err();
        match &err {
            Error::MigrationRefused {
                file, line: got, ..
            } => {
                assert_eq!(file, "2_escape.sql", "{text:?}");
                assert_eq!(*got, line, "{text:?}: {err}");
            }
            other => panic!("{text:?}: expected MigrationRefused, got {other}"),
        }
        let rows = scalar_i64(
            &db,
            &format!("SELECT count(*) FROM tenancy.tenants WHERE slug = '{slug}'"),
        )
        .await;
        assert_eq!(rows, 0, "{text:?} left a registry row");
        assert_nothing_escaped(&db, Some(&format!("t_esc_{i}"))).await;
        tenancy.close().await;
    }
}

/// Text the check cannot read with certainty (a backslash in a `'...'` string) passes it: then
/// PostgreSQL itself must refuse the `COMMIT`.
const UNREADABLE_ESCAPE: &str =
    "CREATE TABLE esc_a (x text CHECK (x ~ '^\\d+$'));\nCOMMIT;\nCREATE TABLE esc_b (x int);";

#[tokio::test]
async fn a_commit_the_check_cannot_see_still_cannot_take_effect() {
    let db = TestDb::new("mig_escape_backstop").await;
    let tenancy = tenancy_with(&db, spinner_app(&[(2, "escape", UNREADABLE_ESCAPE)])).await;
    tenancy
        .create_tenant(NewTenant::new("acme", "Acme").placement(Placement::OwnSchema))
        .await
        .unwrap_err();
    assert_eq!(
        scalar_i64(&db, "SELECT count(*) FROM tenancy.tenants").await,
        0
    );
    assert_nothing_escaped(&db, Some("t_acme")).await;

    let su = tenancy.superuser("test", "migrate").await.unwrap();
    let report = tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    assert!(!report.is_success());
    assert_nothing_escaped(&db, None).await;

    let shared = Migrations::from_static(&[(1, "escape", UNREADABLE_ESCAPE)]).unwrap();
    let err = tenancy.migrate_shared(&su, &shared).await.unwrap_err();
    // PostgreSQL's refusal (feature_not_supported), for the global tables' migration 1.
    assert!(
        matches!(
            &err,
            Error::Migration(MigrationError::Failed { target, version: 1, .. })
                if **target == MigrationTarget::Global
        ),
        "{err:?}"
    );
    assert_eq!(err.sqlstate(), Some("0A000"), "{err:?}");
    assert_nothing_escaped(&db, None).await;
    assert_eq!(
        scalar_i64(&db, "SELECT count(*) FROM tenancy.global_migrations").await,
        0
    );
}

#[tokio::test]
async fn migrate_tenants_and_migrate_shared_refuse_transaction_control_before_running() {
    let db = TestDb::new("mig_escape_migrate").await;
    db.exec(COMMITTING_PROCEDURE).await;
    let tenancy = tenancy_with(&db, spinner_app(&[])).await;
    common::migrate_all(&tenancy).await;
    common::create_tenants(&tenancy, &[("acme", Placement::OwnSchema)]).await;
    for &(text, line) in ESCAPES {
        let tenancy = tenancy_with(&db, spinner_app(&[(2, "escape", text)])).await;
        let su = tenancy.superuser("test", "migrate").await.unwrap();
        let err = tenancy
            .migrate_tenants(&su, MigrateOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::MigrationRefused { line: l, .. } if *l == line),
            "{text:?}: {err}"
        );
        assert_nothing_escaped(&db, None).await;
        let behind = scalar_i64(
            &db,
            "SELECT count(*) FROM tenancy.shared_table_migrations WHERE version = 2",
        )
        .await;
        assert_eq!(behind, 0, "{text:?}");

        let shared = Migrations::from_static(&[(7, "shared escape", text)]).unwrap();
        let err = tenancy.migrate_shared(&su, &shared).await.unwrap_err();
        assert!(
            matches!(&err, Error::MigrationRefused { file, line: l, .. }
                if *l == line && file == "7_shared_escape.sql"),
            "{text:?}: {err}"
        );
        assert_nothing_escaped(&db, None).await;
        tenancy.close().await;
    }
    assert_eq!(
        scalar_i64(&db, "SELECT count(*) FROM tenancy.global_migrations").await,
        0
    );
}

#[test]
fn legitimate_migrations_pass_the_check() {
    // Words that only look like transaction control: a function body with BEGIN ... END, a
    // CASE ... END, a column named "commit", a BEGIN ATOMIC body, a rule with two actions.
    let text = r#"
        CREATE TABLE audit_trail (id int, "commit" text, ended boolean);
        CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.ended := CASE WHEN NEW.id > 0 THEN true ELSE false END;
            RETURN NEW;
        END $$;
        CREATE FUNCTION two() RETURNS int LANGUAGE sql
        BEGIN ATOMIC
            SELECT 1;
            SELECT 2;
        END;
        CREATE RULE r AS ON INSERT TO audit_trail DO ALSO (NOTIFY a; NOTIFY b);
        DO $$ BEGIN PERFORM 1; END $$;
        SELECT CASE WHEN true THEN 1 END;
    "#;
    let m = Migrations::from_static(&[(1, "fine", text)]).unwrap();
    m.check_runnable().unwrap();
}

/// The state a connection of `pool` carries: search path, SQL-level prepared statements,
/// channels listened to, session advisory locks held, temporary tables, role.
async fn session_state(pool: &PgPool) -> (String, i64, i64, i64, i64, bool) {
    let mut conn = pool.acquire().await.unwrap();
    let row = sqlx::raw_sql(
        "SELECT current_setting('search_path'), \
            (SELECT count(*) FROM pg_prepared_statements WHERE from_sql), \
            (SELECT count(*) FROM pg_listening_channels()), \
            (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), \
            (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()), \
            current_user = session_user",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
    )
}

const CLEAN: (&str, i64, i64, i64, i64, bool) = ("\"$user\", public", 0, 0, 0, 0, true);

/// A pg_dump-style header and every other kind of session state, in one migration.
const DIRTY: &str = "SELECT pg_catalog.set_config('search_path', '', false);\n\
    PREPARE leftover AS SELECT 1;\n\
    LISTEN leftover;\n\
    SELECT pg_advisory_lock(4242);\n\
    CREATE TEMP TABLE leftover (x int);\n\
    CREATE TABLE IF NOT EXISTS public.plans (id int);";

#[tokio::test]
async fn migrations_leave_no_session_state_on_pooled_connections() {
    let db = TestDb::new("mig_session_state").await;
    // One connection: whatever a migration leaves, the next borrower gets.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    let tenancy = Tenancy::builder()
        .tenant_migrations(spinner_app(&[(2, "dirty", DIRTY)]))
        .from_pool(pool.clone())
        .await
        .unwrap();
    let clean = async |after: &str| {
        let (path, prepared, listening, locks, temps, role) = session_state(&pool).await;
        assert_eq!(
            (path.as_str(), prepared, listening, locks, temps, role),
            CLEAN,
            "after {after}"
        );
    };
    common::migrate_all(&tenancy).await;
    clean("migrate_tenants").await;
    let ctxs = common::create_tenants(
        &tenancy,
        &[
            ("acme", Placement::OwnSchema),
            ("globex", Placement::SharedTable),
        ],
    )
    .await;
    clean("create_tenant").await;
    // Statements sqlx has prepared and cached on the connection ...
    for ctx in &ctxs {
        assert_eq!(Spinner::repo().count(ctx).await.unwrap(), 0);
    }
    let su = tenancy.superuser("test", "migrate").await.unwrap();
    let shared = Migrations::from_static(&[(1, "dirty", DIRTY)]).unwrap();
    tenancy.migrate_shared(&su, &shared).await.unwrap();
    clean("migrate_shared").await;
    // ... still work after the reset, and see what they saw before.
    for ctx in &ctxs {
        assert_eq!(Spinner::repo().count(ctx).await.unwrap(), 0);
    }
    // The session lock is not held by a connection someone else now owns.
    let free: bool = {
        let mut conn = db.connect().await;
        sqlx::query_scalar("SELECT pg_try_advisory_lock(4242)")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert!(free, "a migration's advisory lock outlived it");
}

/// Migration text is run a statement at a time (one `EXECUTE` each, for Citus: see
/// tests/citus.rs); what PostgreSQL would not split must stay whole, on the shared tables and in
/// a new tenant's schema alike, and text the splitter cannot read still runs, whole.
#[tokio::test]
async fn a_migration_runs_statement_by_statement_with_its_bodies_and_strings_intact() {
    let db = TestDb::new("mig_split").await;
    let tricky = "-- a comment; with a semicolon\n\
        CREATE TABLE notes (tenant_id uuid NOT NULL, body text DEFAULT 'a;b', \"odd;name\" int, \
                            PRIMARY KEY (tenant_id, body));\n\
        CREATE FUNCTION note_len(t text) RETURNS int LANGUAGE plpgsql IMMUTABLE \
            AS $f$ BEGIN RETURN length(t); END $f$;\n\
        CREATE FUNCTION two() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n\
        CREATE TABLE note_log (tenant_id uuid, body text);\n\
        CREATE RULE log_note AS ON INSERT TO notes \
            DO ALSO (INSERT INTO note_log VALUES (NEW.tenant_id, NEW.body); \
                     INSERT INTO note_log VALUES (NEW.tenant_id, 'twice'));;\n\
        /* an index; last */ CREATE INDEX notes_len ON notes (tenant_id, note_len(body)) -- end";
    // A backslash in a plain string: the splitter cannot be sure of it, so it runs whole.
    let unreadable = "CREATE TABLE marks (tenant_id uuid, m text DEFAULT 'x\\y'); \
                      CREATE INDEX marks_m ON marks (tenant_id, m)";
    let tenancy = tenancy_with(
        &db,
        spinner_app(&[(2, "tricky", tricky), (3, "unreadable", unreadable)]),
    )
    .await;
    common::migrate_all(&tenancy).await;
    common::create_tenants(&tenancy, &[("acme", Placement::OwnSchema)]).await;
    for schema in ["public", "t_acme"] {
        db.exec(&format!(
            "INSERT INTO {schema}.notes (tenant_id) VALUES (gen_random_uuid())"
        ))
        .await;
        let mut conn = db.connect().await;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT (SELECT body FROM {schema}.notes), {schema}.two(), \
                    (SELECT count(*) FROM {schema}.note_log), \
                    to_regclass('{schema}.notes_len') IS NOT NULL, \
                    to_regclass('{schema}.marks_m') IS NOT NULL, \
                    (SELECT column_default FROM information_schema.columns \
                     WHERE table_schema = '{schema}' AND table_name = 'marks' \
                       AND column_name = 'm')"
        )))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            row.get::<Option<String>, _>(0).as_deref(),
            Some("a;b"),
            "{schema}"
        );
        assert_eq!(
            row.get::<i32, _>(1),
            2,
            "{schema}: the whole BEGIN ATOMIC body"
        );
        assert_eq!(
            row.get::<i64, _>(2),
            2,
            "{schema}: both of the rule's actions"
        );
        assert!(
            row.get::<bool, _>(3),
            "{schema}: the last statement, after a comment"
        );
        assert!(
            row.get::<bool, _>(4),
            "{schema}: the unreadable migration ran"
        );
        assert_eq!(
            row.get::<Option<String>, _>(5).as_deref(),
            Some("'x\\y'::text"),
            "{schema}"
        );
    }
}

/// Migrations embedded with sqlx's `migrate!()` are the directory's: the same versions, SQL and
/// checksums, so tenants migrated from the files are current for the embedded set (and the
/// reverse). Down halves are left out; a `-- no-transaction` migration is refused, not run
/// outside its transaction.
#[tokio::test]
async fn migrations_embedded_with_sqlx_migrate_are_the_directorys() {
    use sqlx::migrate::Migrator;
    static TENANT: Migrator = sqlx::migrate!("tests/migrations/tenant");
    static REVERSIBLE: Migrator = sqlx::migrate!("tests/migrations/embedded/reversible");
    static NO_TX: Migrator = sqlx::migrate!("tests/migrations/embedded/no_transaction");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/migrations");
    let shape = |m: &Migrations| -> Vec<(i64, String, String, Vec<u8>)> {
        m.iter()
            .map(|m| {
                (
                    m.version,
                    m.description.clone(),
                    m.sql.clone(),
                    m.checksum.clone(),
                )
            })
            .collect()
    };
    let embedded = Migrations::from_migrator(&TENANT).unwrap();
    let files = Migrations::from_dir(format!("{dir}/tenant")).unwrap();
    assert!(!embedded.is_empty());
    assert_eq!(shape(&embedded), shape(&files));

    // Applied from the files; the embedded set finds every target current.
    let db = TestDb::new("mig_embedded").await;
    let tenancy = tenancy_with(&db, files).await;
    common::migrate_all(&tenancy).await;
    let tenants = common::create_tenants(
        &tenancy,
        &[
            ("acme", Placement::SharedTable),
            ("globex", Placement::OwnSchema),
        ],
    )
    .await;
    let tenancy = tenancy_with(&db, embedded).await;
    let su = tenancy
        .superuser("test", "embedded migrations")
        .await
        .unwrap();
    assert_eq!(tenancy.pending_migrations(&su).await.unwrap(), vec![]);
    let report = tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    assert!(
        report
            .outcomes
            .iter()
            .all(|(_, o)| matches!(o, Outcome::UpToDate)),
        "{report:?}"
    );
    for ctx in &tenants {
        let again = tenancy.resolve_slug(ctx.slug()).await.unwrap();
        common::add_spinner(&again, "embedded").await.unwrap();
    }

    // Reversible: the up halves only, in order.
    let reversible = Migrations::from_migrator(&REVERSIBLE).unwrap();
    let ups: Vec<(i64, &str)> = reversible
        .iter()
        .map(|m| (m.version, m.sql.trim()))
        .collect();
    assert_eq!(
        ups,
        [
            (
                1,
                "CREATE TABLE outbox (id bigserial PRIMARY KEY, topic text NOT NULL);"
            ),
            (
                2,
                "ALTER TABLE outbox ADD COLUMN sent boolean NOT NULL DEFAULT false;"
            ),
        ]
    );
    assert_eq!(
        shape(&reversible),
        shape(&Migrations::from_dir(format!("{dir}/embedded/reversible")).unwrap())
    );

    // No transaction: refused with its version, before anything could run.
    match Migrations::from_migrator(&NO_TX) {
        Err(Error::Migration(MigrationError::NoTransaction {
            version,
            description,
        })) => assert_eq!((version, description.as_str()), (1, "spins by duration")),
        other => panic!("a no-transaction migration was accepted: {other:?}"),
    }
}

/// Sessions ever opened on `db` (closed ones counted; the server counts a session when it
/// ends or reports), once no other session is on it.
async fn sessions_on(db: &TestDb) -> i64 {
    let mut conn = db.connect().await;
    let name = db.name.clone();
    tenancy::testing::eventually(
        "every other session on the database ended",
        std::time::Duration::from_secs(30),
        async || {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .unwrap()
                == 0
        },
    )
    .await;
    sqlx::query_scalar::<_, i64>("SELECT sessions FROM pg_stat_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// A run over many schemas borrows its connections again from target to target: each goes
/// back reset (no statement planned before the run's changes is left on it), so the pool lends
/// it on, although it was opened before the last change. Once, every applied target closed
/// its connection and opened a new one (2-3 ms each, most of a migration's time).
#[tokio::test]
async fn a_migration_run_reuses_its_connections_from_target_to_target() {
    let db = TestDb::new("mig_reuses_connections").await;
    let tenancy = tenancy_with(&db, spinner_app(&[])).await;
    common::migrate_all(&tenancy).await;
    let slugs: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
    let tenants: Vec<(&str, Placement)> = slugs
        .iter()
        .map(|s| (s.as_str(), Placement::OwnSchema))
        .collect();
    common::create_tenants(&tenancy, &tenants).await;
    tenancy.close().await;

    let before = sessions_on(&db).await;
    let column = "ALTER TABLE spinners ADD COLUMN weight int";
    let tenancy = tenancy_with(&db, spinner_app(&[(2, "weight", column)])).await;
    let su = tenancy.superuser("test", "migrate").await.unwrap();
    let report = tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    let applied = report
        .outcomes
        .iter()
        .filter(|(t, o)| {
            matches!(t, MigrationTarget::Tenant { .. }) && *o == Outcome::Applied(vec![2])
        })
        .count();
    assert_eq!(applied, 40, "{report:?}");
    // The pool's connections, still usable after the run: a repository call works.
    let t0 = tenancy.resolve_slug("t0").await.unwrap();
    assert_eq!(Spinner::repo().count(&t0).await.unwrap(), 0);
    tenancy.close().await;
    let opened = sessions_on(&db).await - before;
    // A pool of 4, the listener, the reading sessions of this test: a handful, not one a target.
    assert!(opened <= 12, "{opened} sessions opened for 40 targets");
}

/// A tenant schema's history is read with the migrator's rights: a view put in its place (by
/// whoever owns the schema), or row-level security on it, would run that owner's function as
/// the migrator. That target fails unread, the function never runs, the others migrate.
#[tokio::test]
async fn a_history_that_is_not_a_plain_table_fails_its_target_unread() {
    let db = TestDb::new("mig_history_view").await;
    let tenancy = tenancy_with(&db, spinner_app(&[])).await;
    common::migrate_all(&tenancy).await;
    common::create_tenants(
        &tenancy,
        &[
            ("acme", Placement::OwnSchema),
            ("initech", Placement::OwnSchema),
            ("hooli", Placement::OwnSchema),
        ],
    )
    .await;
    db.exec(
        "CREATE TABLE public.ran_as (who text); \
         CREATE FUNCTION public.spy_trigger() RETURNS trigger LANGUAGE plpgsql AS \
           'BEGIN INSERT INTO public.ran_as VALUES (current_user); RETURN NEW; END'; \
         CREATE TRIGGER spy BEFORE INSERT ON t_hooli.tenancy_migrations \
           FOR EACH ROW EXECUTE FUNCTION public.spy_trigger(); \
         CREATE FUNCTION public.spy() RETURNS boolean LANGUAGE sql VOLATILE AS \
           'INSERT INTO public.ran_as VALUES (current_user) RETURNING true'; \
         ALTER TABLE t_acme.tenancy_migrations RENAME TO real_history; \
         CREATE VIEW t_acme.tenancy_migrations AS SELECT * FROM t_acme.real_history WHERE public.spy()",
    )
    .await;
    let column = "ALTER TABLE spinners ADD COLUMN weight int";
    let tenancy = tenancy_with(&db, spinner_app(&[(2, "weight", column)])).await;
    let su = tenancy.superuser("test", "migrate").await.unwrap();
    let report = tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .unwrap();
    let outcome = |slug: &str| outcome_of(&report, slug);
    assert!(
        matches!(outcome("acme"), Outcome::Failed(e)
            if e.message.contains("is not the plain table tenancy keeps a migration history in")),
        "{report:?}"
    );
    // A plain table with a trigger of its owner's, which the history insert would fire.
    assert!(
        matches!(outcome("hooli"), Outcome::Failed(e)
            if e.message.contains("is not the plain table tenancy keeps a migration history in")),
        "{report:?}"
    );
    assert_eq!(outcome("initech"), Outcome::Applied(vec![2]));
    assert_eq!(
        scalar_i64(&db, "SELECT count(*) FROM public.ran_as").await,
        0
    );
    let weight = scalar_i64(
        &db,
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 't_acme.spinners'::regclass \
         AND attname = 'weight'",
    )
    .await;
    assert_eq!(weight, 0, "acme's migration ran");
}
