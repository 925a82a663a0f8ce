//! Export one tenant and import it into another (another placement, another id): the same
//! rows, verified counts, and nothing half-imported on error.

mod common;

use common::models::*;
use tenancy::testing::TestTenancy;
use tenancy::{ArchiveError, Error, NewTenant, TenantArchive, TenantCtx};
use uuid::Uuid;

async fn snapshot(ctx: &TenantCtx) -> (Vec<Spinner>, Vec<Spin>) {
    let spinners = Spinner::repo()
        .query()
        .order_by(Spinner::ID.asc())
        .fetch_all(ctx)
        .await
        .unwrap();
    let spins = Spin::repo()
        .query()
        .order_by(Spin::ID.asc())
        .fetch_all(ctx)
        .await
        .unwrap();
    (spinners, spins)
}

#[tenancy::test(
    migrations = "tests/migrations",
    tenants(source = "shared", other = "shared", copy = "schema", back = "shared")
)]
async fn export_then_import_gives_the_same_rows(t: TestTenancy) {
    let tenancy = t.tenancy().clone();
    let source = tenancy.resolve_slug("source").await.unwrap();
    let other = tenancy.resolve_slug("other").await.unwrap();
    let awkward = [
        "plain",
        "tab\there",
        "new\nline",
        "back\\slash",
        "quote'\"",
        "ünïcödé ✓",
        "\\N",
    ];
    for (i, name) in awkward.iter().enumerate() {
        let color = (i % 2 == 0).then(|| format!("c{i}"));
        let s = Spinner::repo()
            .insert(
                &source,
                &NewSpinner {
                    id: Uuid::new_v4(),
                    name: (*name).into(),
                    color,
                },
            )
            .await
            .unwrap();
        for d in 0..3 {
            let note = (d == 1).then(|| "a\r\nnote".to_owned());
            Spin::repo()
                .insert(
                    &source,
                    &NewSpin {
                        id: Uuid::new_v4(),
                        spinner_id: s.id,
                        duration: d,
                        note,
                    },
                )
                .await
                .unwrap();
        }
    }
    Spinner::repo()
        .insert(
            &other,
            &NewSpinner {
                id: Uuid::new_v4(),
                name: "not exported".into(),
                color: None,
            },
        )
        .await
        .unwrap();

    let su = tenancy
        .superuser("ops", "move acme to its own schema")
        .await
        .unwrap();
    let archive = tenancy.export_tenant(&su, source.id()).await.unwrap();
    let names: Vec<(&str, u64)> = archive
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t.rows))
        .collect();
    assert_eq!(
        names,
        [("spinners", 7), ("spins", 21)],
        "parents first, only the source's rows"
    );
    let bytes = archive.to_bytes();
    let archive = TenantArchive::from_bytes(&bytes).unwrap();

    let copy = tenancy.resolve_slug("copy").await.unwrap();
    assert_eq!(
        tenancy
            .import_tenant(&su, &archive, copy.id())
            .await
            .unwrap(),
        28
    );
    assert_eq!(snapshot(&copy).await, snapshot(&source).await);
    // And back from the schema into a shared-table tenant.
    let back = tenancy.resolve_slug("back").await.unwrap();
    let again = tenancy.export_tenant(&su, copy.id()).await.unwrap();
    tenancy.import_tenant(&su, &again, back.id()).await.unwrap();
    assert_eq!(snapshot(&back).await, snapshot(&source).await);
    assert_eq!(Spinner::repo().count(&other).await.unwrap(), 1);

    // Importing into a tenant that has rows is refused, and changes nothing.
    let err = tenancy
        .import_tenant(&su, &archive, other.id())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Archive(ArchiveError::NotEmpty { tenant, table, rows: 1 })
            if *tenant == other.id() && table.contains("spinners")),
        "{err:?}"
    );
    assert_eq!(Spinner::repo().count(&other).await.unwrap(), 1);
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_corrupt_archive_imports_nothing(t: TestTenancy) {
    let tenancy = t.tenancy().clone();
    tenancy
        .create_tenant(NewTenant::new("source", "S"))
        .await
        .unwrap();
    tenancy
        .create_tenant(NewTenant::new("target", "T"))
        .await
        .unwrap();
    let source = tenancy.resolve_slug("source").await.unwrap();
    let target = tenancy.resolve_slug("target").await.unwrap();
    for i in 0..5 {
        Spinner::repo()
            .insert(
                &source,
                &NewSpinner {
                    id: Uuid::new_v4(),
                    name: format!("s{i}"),
                    color: None,
                },
            )
            .await
            .unwrap();
    }
    let su = tenancy.superuser("ops", "test").await.unwrap();
    let bytes = tenancy
        .export_tenant(&su, source.id())
        .await
        .unwrap()
        .to_bytes();

    assert!(matches!(
        TenantArchive::from_bytes(&bytes[..bytes.len() - 10]),
        Err(Error::Archive(ArchiveError::Truncated { .. }))
    ));
    // Cut inside the spinners' rows: the error names that table.
    let header = bytes
        .windows(15)
        .position(|w| w == b"table spinners ")
        .unwrap();
    let rows = header + bytes[header..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let cut = TenantArchive::from_bytes(&bytes[..rows + 3]).unwrap_err();
    assert!(
        matches!(&cut, Error::Archive(ArchiveError::Truncated { table: Some(t) }) if t == "spinners"),
        "{cut:?}"
    );
    assert!(matches!(
        TenantArchive::from_bytes(b"hello"),
        Err(Error::Archive(ArchiveError::Truncated { table: None }))
    ));
    assert!(matches!(
        TenantArchive::from_bytes(b"hello\n"),
        Err(Error::Archive(ArchiveError::NotAnArchive))
    ));
    let hostile = String::from_utf8(bytes.clone())
        .unwrap()
        .replace("table spinners", "table spinners;drop");
    assert!(TenantArchive::from_bytes(hostile.as_bytes()).is_err());

    // A row count that does not match the data: refused, the target stays empty.
    let mut archive = TenantArchive::from_bytes(&bytes).unwrap();
    let spinners = archive
        .tables
        .iter_mut()
        .find(|t| t.name == "spinners")
        .unwrap();
    spinners.rows += 1;
    assert!(matches!(
        tenancy.import_tenant(&su, &archive, target.id()).await,
        Err(Error::Archive(ArchiveError::RowCount { table, stated: 6, read: 5 })) if table == "spinners"
    ));
    assert_eq!(Spinner::repo().count(&target).await.unwrap(), 0);
    // Data that is not valid COPY text: refused, the target stays empty.
    let mut archive = TenantArchive::from_bytes(&bytes).unwrap();
    let spinners = archive
        .tables
        .iter_mut()
        .find(|t| t.name == "spinners")
        .unwrap();
    spinners.data = b"not-a-uuid\tx\t\\N\t2020-01-01\n".to_vec();
    spinners.rows = 1;
    assert!(matches!(
        tenancy.import_tenant(&su, &archive, target.id()).await,
        Err(Error::Database(_))
    ));
    assert_eq!(Spinner::repo().count(&target).await.unwrap(), 0);
}

/// A section is its kind and its table's name: a section of a kind this release does not know
/// is refused, even when a table bears its name, and a section named twice is refused rather
/// than imported twice. Nothing is imported either way.
#[tenancy::test(
    migrations = "tests/migrations",
    tenants(source = "shared", target = "schema")
)]
async fn sections_are_matched_by_kind_and_name(t: TestTenancy) {
    let tenancy = t.tenancy().clone();
    let source = t.tenant("source");
    let target = t.tenant("target");
    common::add_spinner(source, "one").await.unwrap();
    let su = tenancy.superuser("ops", "test").await.unwrap();
    let archive = tenancy.export_tenant(&su, source.id()).await.unwrap();
    let text = String::from_utf8(archive.to_bytes()).unwrap();
    assert!(
        text.starts_with("tenancy-archive 2\n"),
        "the current format"
    );

    let other_kind = text.replace("table spinners columns", "sequence spinners columns");
    let err = TenantArchive::from_bytes(other_kind.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("unknown section kind"), "{err}");
    let err = tenancy
        .import_tenant_from(
            &su,
            &mut other_kind.as_bytes(),
            target.id(),
            tenancy::ArchiveOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Archive(_)), "{err:?}");

    // The spinners section again, in place of the (empty) spins one.
    let start = text.find("table spinners").unwrap();
    let end = text.find("table spins ").unwrap();
    let twice = format!("{}{}end\n", &text[..end], &text[start..end]);
    let err = TenantArchive::from_bytes(twice.as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("table spinners appears twice"),
        "{err}"
    );
    let err = tenancy
        .import_tenant_from(
            &su,
            &mut twice.as_bytes(),
            target.id(),
            tenancy::ArchiveOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("table spinners appears twice"),
        "{err}"
    );
    assert_eq!(Spinner::repo().count(target).await.unwrap(), 0);
}

/// A table is named in its section as the catalog names it, never by cutting its quoted,
/// qualified name at a dot: a shared table named `odd.spins` is not a second `spins`. Its name
/// cannot be carried in a section header, so the export is refused and nothing is written.
#[tenancy::test(migrations = "tests/migrations", tenants(source = "shared"))]
async fn a_table_name_with_a_dot_is_not_taken_for_another(t: TestTenancy) {
    t.exec(
        r#"CREATE TABLE "odd.spins" (
               tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id),
               id        integer NOT NULL,
               PRIMARY KEY (tenant_id, id))"#,
    )
    .await;
    let tenancy = t.tenancy().clone();
    let su = tenancy.superuser("ops", "test").await.unwrap();
    let err = tenancy
        .export_tenant(&su, t.tenant("source").id())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid(_)) && err.to_string().contains("odd.spins"),
        "{err:?}"
    );
    let mut out = Vec::new();
    let err = tenancy
        .export_tenant_to(
            &su,
            t.tenant("source").id(),
            &mut out,
            tenancy::ArchiveOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    assert!(out.is_empty(), "nothing written before the refusal");
}

/// An archive edited in memory so that a table's data is not whole rows is refused before any
/// row is sent, and the target stays empty.
#[tenancy::test(
    migrations = "tests/migrations",
    tenants(source = "shared", target = "shared")
)]
async fn an_edited_archive_whose_rows_do_not_end_is_refused(t: TestTenancy) {
    let tenancy = t.tenancy().clone();
    let su = tenancy.superuser("ops", "test").await.unwrap();
    let mut archive = tenancy
        .export_tenant(&su, t.tenant("source").id())
        .await
        .unwrap();
    let spinners = archive
        .tables
        .iter_mut()
        .find(|t| t.name == "spinners")
        .unwrap();
    spinners.data = format!("{}\tx\t\\N\t2020-01-01\n\\.\n", Uuid::new_v4()).into_bytes();
    spinners.rows = 1;
    let err = tenancy
        .import_tenant(&su, &archive, t.tenant("target").id())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Archive(_)), "{err:?}");
    assert_eq!(Spinner::repo().count(t.tenant("target")).await.unwrap(), 0);
}

/// The app's own tables beside the spinners: an identity key, a serial one, and a table with
/// a serial key and an inheritance child whose name sorts before it (both tenant tables, each
/// with rows of its own; the child draws from the parent's sequence, which only the parent's
/// column owns).
const KEYED: &str = "
CREATE TABLE tickets (
    tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id),
    n         bigint GENERATED ALWAYS AS IDENTITY,
    title     text NOT NULL,
    PRIMARY KEY (tenant_id, n)
);
CREATE TABLE labels (
    tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id),
    n         serial,
    PRIMARY KEY (tenant_id, n)
);
CREATE TABLE notes (
    tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id),
    n         serial,
    body      text NOT NULL
);
CREATE TABLE archived_notes (archived smallint NOT NULL) INHERITS (notes);
CREATE SEQUENCE IF NOT EXISTS public.global_ids;
CREATE SEQUENCE invoice_numbers;
CREATE TABLE invoices (
    tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id),
    code      text NOT NULL DEFAULT 'INV-' || nextval('invoice_numbers'),
    g         bigint NOT NULL DEFAULT nextval('public.global_ids')
);
CREATE DOMAIN stamp_no AS bigint;
CREATE SEQUENCE stamps_seq AS integer MAXVALUE 100;
CREATE TABLE stamps (
    tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id),
    n         stamp_no NOT NULL DEFAULT nextval('stamps_seq'),
    PRIMARY KEY (tenant_id, n)
);";

/// One value of `sql`, run on `conn`.
async fn one(conn: &mut sqlx::PgConnection, sql: String) -> String {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(conn)
        .await
        .unwrap()
}

/// An archive of tables with identity and serial keys restores into a schema whose sequences
/// start afresh: the keys come across as they were, and the next insert draws past them (also
/// in an inheritance child, whose sequence is its parent's). An inheritance child's rows come
/// across once, in the child (not also through its parent). On shared tables the import does
/// not move the sequences, which every tenant draws from: an archive's key near the end of a
/// sequence's range would stop every tenant's inserts.
#[test]
fn identity_serial_and_inherited_tables_restore_whole_and_keys_go_on() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let migrations = tenancy::Migrations::from_static(&[
            (1, "spinner app", common::SPINNER_SCHEMA),
            (2, "keyed", KEYED),
        ])
        .unwrap();
        let (_db, t) = tenancy::testing::TestSetup::new("export_keyed")
            .tenant_migrations(migrations)
            .tenant("source", tenancy::Placement::SharedTable)
            .tenant("target", tenancy::Placement::OwnSchema)
            .tenant("neighbour", tenancy::Placement::SharedTable)
            .create()
            .await
            .unwrap();
        let tenancy = t.tenancy().clone();
        let (source, target) = (t.tenant("source").id(), t.tenant("target").id());
        let neighbour = t.tenant("neighbour").id();
        // Keys far past the shared sequences (explicit values do not move them).
        t.exec(&format!(
            "INSERT INTO tickets (tenant_id, title) SELECT '{source}', 't' || i FROM generate_series(1, 5) i;
             INSERT INTO labels (tenant_id, n) SELECT '{source}', i * 1000 FROM generate_series(1, 4) i;
             INSERT INTO notes (tenant_id, n, body) VALUES ('{source}', 1, 'a'), ('{source}', 2, 'b');
             INSERT INTO archived_notes (tenant_id, n, body, archived) VALUES ('{source}', 500, 'c', 1);
             INSERT INTO invoices (tenant_id, code, g) VALUES ('{source}', 'INV-77', 9000);
             INSERT INTO stamps (tenant_id, n) VALUES ('{source}', 7), ('{source}', 5000);"
        ))
        .await;
        let su = tenancy.superuser("ops", "restore").await.unwrap();
        let archive = tenancy.export_tenant(&su, source).await.unwrap();
        let rows = |name: &str| archive.tables.iter().find(|t| t.name == name).unwrap().rows;
        assert_eq!(
            (rows("notes"), rows("archived_notes")),
            (2, 1),
            "{:?}",
            archive.tables
        );
        let mut conn = t.connect().await;
        let schema: String =
            sqlx::query_scalar("SELECT schema_name FROM tenancy.tenants WHERE id = $1")
                .bind(target.as_uuid())
                .fetch_one(&mut conn)
                .await
                .unwrap();
        let s = format!("\"{schema}\"");
        // A sequence restarted past the keys (not called since): left where it is, not set
        // back to them. A sequence outside the schema, which every tenant's default draws
        // from, is never moved; nor is one behind a text column's default.
        t.exec(&format!("ALTER SEQUENCE {s}.labels_n_seq RESTART WITH 10000"))
            .await;
        let global = "SELECT last_value::text FROM public.global_ids";
        let global_before = one(&mut conn, global.into()).await;
        tenancy.import_tenant(&su, &archive, target).await.unwrap();
        assert_eq!(one(&mut conn, global.into()).await, global_before);
        assert_eq!(
            one(&mut conn, format!("SELECT code || ' ' || g FROM {s}.invoices")).await,
            "INV-77 9000"
        );
        // A key typed as a domain over an integer goes on too; keys past the sequence's
        // maximum (written by hand) leave it spent, not the import failed.
        assert_eq!(
            one(&mut conn, format!("SELECT last_value || ' ' || is_called FROM {s}.stamps_seq")).await,
            "100 true"
        );
        assert_eq!(
            one(&mut conn, format!("SELECT string_agg(n || ':' || title, ',' ORDER BY n) FROM {s}.tickets")).await,
            "1:t1,2:t2,3:t3,4:t4,5:t5"
        );
        assert_eq!(
            one(&mut conn, format!("SELECT string_agg(body, ',' ORDER BY body) FROM {s}.notes")).await,
            "a,b,c",
            "the child's row once"
        );
        assert_eq!(
            one(&mut conn, format!("SELECT string_agg(body, ',' ORDER BY body) FROM ONLY {s}.notes")).await,
            "a,b"
        );
        // The schema's own sequences were at 1: each goes on past the keys imported.
        for (table, columns, values, next) in [
            ("tickets", "title", "'new'", "6"),
            ("labels", "tenant_id", "DEFAULT", "10000"),
            ("archived_notes", "body, archived", "'d', 1", "501"),
            ("notes", "body", "'e'", "502"),
        ] {
            let values = values.replace("DEFAULT", &format!("'{target}'"));
            let columns = if table == "labels" { String::new() } else { format!(", {columns}") };
            let values = if table == "labels" { String::new() } else { format!(", {values}") };
            let drawn = one(
                &mut conn,
                format!(
                    "WITH i AS (INSERT INTO {s}.{table} (tenant_id{columns}) \
                     VALUES ('{target}'{values}) RETURNING n) SELECT n::text FROM i"
                ),
            )
            .await;
            assert_eq!(drawn, next, "{table}");
        }
        // Into shared tables: the rows come, the shared sequences stay where they were.
        let at = one(&mut conn, "SELECT last_value::text FROM labels_n_seq".into()).await;
        tenancy.import_tenant(&su, &archive, neighbour).await.unwrap();
        assert_eq!(
            one(&mut conn, format!("SELECT count(*)::text FROM labels WHERE tenant_id = '{neighbour}'")).await,
            "4"
        );
        assert_eq!(
            one(&mut conn, "SELECT last_value::text FROM labels_n_seq".into()).await,
            at
        );
        tenancy.close().await;
    });
}

/// Inheritance children both among the tenant's tables and outside them (here in a schema
/// off the search path), at any level, or an outside child of two tenant tables: no reading
/// reads each row once, so export and move refuse, naming the outside table, and change
/// nothing. A parent whose descendants are all outside is read through: their rows go with
/// the parent's, none left behind.
#[test]
fn a_parent_with_children_in_and_outside_the_tenant_tables_is_refused_whole() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        const SPLIT: &str = "
            CREATE TABLE notes (tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id), body text NOT NULL);
            CREATE TABLE pinned_notes (pinned smallint NOT NULL) INHERITS (notes);
            CREATE TABLE logs (tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id), line text NOT NULL);
            CREATE SCHEMA IF NOT EXISTS attic;
            CREATE TABLE IF NOT EXISTS attic.old_notes () INHERITS (notes);
            CREATE TABLE IF NOT EXISTS attic.old_logs () INHERITS (logs);";
        let migrations = tenancy::Migrations::from_static(&[
            (1, "spinner app", common::SPINNER_SCHEMA),
            (2, "split", SPLIT),
        ])
        .unwrap();
        let (_db, t) = tenancy::testing::TestSetup::new("export_split")
            .tenant_migrations(migrations)
            .tenant("acme", tenancy::Placement::SharedTable)
            .create()
            .await
            .unwrap();
        let tenancy = t.tenancy().clone();
        let a = t.tenant("acme").id();
        t.exec(&format!(
            "INSERT INTO notes (tenant_id, body) VALUES ('{a}', 'a');
             INSERT INTO pinned_notes (tenant_id, body, pinned) VALUES ('{a}', 'b', 1);
             INSERT INTO attic.old_notes (tenant_id, body) VALUES ('{a}', 'c');
             INSERT INTO logs (tenant_id, line) VALUES ('{a}', 'x');
             INSERT INTO attic.old_logs (tenant_id, line) VALUES ('{a}', 'y');"
        ))
        .await;
        let su = tenancy.superuser("ops", "split").await.unwrap();
        let err = tenancy.export_tenant(&su, a).await.unwrap_err();
        assert!(
            matches!(&err, Error::Archive(ArchiveError::SplitInheritance { table, outside })
                if table.ends_with(".notes") && outside == "attic.old_notes"),
            "{err:?}"
        );
        let err = tenancy
            .move_tenant(&su, a, tenancy::Placement::OwnSchema)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::MoveRefused { reason, .. } if reason.contains("attic.old_notes")),
            "{err:?}"
        );
        let mut conn = t.connect().await;
        assert_eq!(
            one(&mut conn, "SELECT placement FROM tenancy.tenants WHERE slug = 'acme'".into()).await,
            "shared_table"
        );
        assert_eq!(
            one(&mut conn, "SELECT string_agg(body, ',' ORDER BY body) FROM notes".into()).await,
            "a,b,c"
        );
        // With the split parent gone, the outside-only one is read through: nothing is lost.
        t.exec("DROP TABLE attic.old_notes").await;
        let archive = tenancy.export_tenant(&su, a).await.unwrap();
        let logs = archive.tables.iter().find(|t| t.name == "logs").unwrap();
        assert_eq!(logs.rows, 2, "{logs:?}");
        // A tenant table under an outside child (a grandchild of `logs`): split again.
        t.exec("CREATE TABLE older_logs () INHERITS (attic.old_logs)")
            .await;
        let err = tenancy.export_tenant(&su, a).await.unwrap_err();
        assert!(
            matches!(&err, Error::Archive(ArchiveError::SplitInheritance { table, outside })
                if table.ends_with(".logs") && outside == "attic.old_logs"),
            "{err:?}"
        );
        t.exec("DROP TABLE older_logs").await;
        // An outside child of two tenant tables (multiple inheritance): each parent read
        // through would read its rows.
        t.exec(&format!(
            "CREATE TABLE tags (tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id), tag text);
             CREATE TABLE attic.dual () INHERITS (logs, tags);
             INSERT INTO attic.dual (tenant_id, line, tag) VALUES ('{a}', 'z', 'z');"
        ))
        .await;
        let err = tenancy.export_tenant(&su, a).await.unwrap_err();
        assert!(
            matches!(&err, Error::Archive(ArchiveError::SplitInheritance { outside, .. })
                if outside == "attic.dual"),
            "{err:?}"
        );
        let err = tenancy
            .move_tenant(&su, a, tenancy::Placement::OwnSchema)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::MoveRefused { reason, .. } if reason.contains("attic.dual")),
            "{err:?}"
        );
        tenancy.close().await;
    });
}

/// A stream that never ends its row is refused once the row is longer than PostgreSQL could
/// have written, not read into memory to its end; and nothing is imported.
#[tenancy::test(
    migrations = "tests/migrations",
    tenants(source = "shared", target = "shared")
)]
async fn a_row_that_never_ends_is_refused_at_postgres_length(t: TestTenancy) {
    use tokio::io::AsyncReadExt;
    let tenancy = t.tenancy().clone();
    let su = tenancy.superuser("ops", "test").await.unwrap();
    let head = format!(
        "tenancy-archive 2\nsource {}\ntable spinners columns id,name,color,created_at\n",
        t.tenant("source").id()
    );
    // 1.5 GiB without a newline, made as it is read.
    let endless = head.as_bytes().chain(tokio::io::repeat(b'x').take(3 << 29));
    let mut input = tokio::io::BufReader::with_capacity(1 << 20, endless);
    let err = tenancy
        .import_tenant_from(
            &su,
            &mut input,
            t.tenant("target").id(),
            tenancy::ArchiveOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("1 GiB"), "{err}");
    assert_eq!(Spinner::repo().count(t.tenant("target")).await.unwrap(), 0);
}
