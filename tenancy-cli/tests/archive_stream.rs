//! The library's streamed export, which `tenancy tenants export` uses: rows leave as they are
//! read, so a tenant larger than memory exports. And both archive versions import.

mod common;

use common::TestDb;
use tenancy::{ArchiveOptions, NewTenant, Tenancy, TenantArchive};
use tokio::io::{AsyncReadExt, BufReader};

const SPINS: &str = "CREATE TABLE spins (
    tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id),
    id        integer NOT NULL,
    note      text,
    PRIMARY KEY (tenant_id, id)
);";

async fn connect(db: &TestDb) -> Tenancy {
    Tenancy::builder()
        .listen_for_changes(false)
        .connect(&db.url)
        .await
        .expect("connect")
}

/// About 48 MB of rows, far more than the pipe (64 KiB) and the sockets between the server and
/// the export can hold. After the test has read only the first 64 KiB, the server must still be
/// running the COPY: an export that gathered a table in memory before writing would have
/// finished reading it by the time its first byte came out.
#[tokio::test]
async fn export_writes_rows_while_the_server_is_still_sending_them() {
    const ROWS: i64 = 120_000;
    let db = TestDb::new("stream").await;
    let tenancy = connect(&db).await;
    db.exec(SPINS).await;
    let acme = tenancy
        .create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    db.exec(&format!(
        "INSERT INTO spins SELECT '{}', g, repeat('x', 400) FROM generate_series(1, {ROWS}) g",
        acme.id
    ))
    .await;
    let su = tenancy.superuser("test", "stream").await.unwrap();

    let (mut writer, mut reader) = tokio::io::duplex(64 * 1024);
    let export = tokio::spawn(async move {
        let summary = tenancy
            .export_tenant_to(&su, acme.id, &mut writer, ArchiveOptions::default())
            .await;
        drop(writer);
        summary
    });
    let mut first = vec![0u8; 64 * 1024];
    reader.read_exact(&mut first).await.unwrap();
    assert!(first.starts_with(b"tenancy-archive 2\n"));

    let copying: i64 = db
        .scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND state = 'active' \
               AND query LIKE 'COPY (SELECT%'",
        )
        .await;
    assert_eq!(
        copying, 1,
        "the server is still sending the rows being written"
    );
    assert!(!export.is_finished());

    let rest = tokio::io::copy(&mut reader, &mut tokio::io::sink())
        .await
        .unwrap();
    let summary = export.await.unwrap().unwrap();
    assert_eq!(summary.rows, ROWS as u64);
    assert_eq!(summary.tables, [("spins".to_owned(), ROWS as u64)]);
    assert!(rest + first.len() as u64 > summary.bytes);
}

/// A version 1 archive, as the in-memory API of an earlier release wrote it: each table's row
/// count and byte length in its header, before its rows.
fn version_one(archive: &TenantArchive) -> Vec<u8> {
    let mut out = format!("tenancy-archive 1\nsource {}\n", archive.source).into_bytes();
    for t in &archive.tables {
        out.extend(
            format!(
                "table {} rows {} bytes {} columns {}\n",
                t.name,
                t.rows,
                t.data.len(),
                t.columns.join(",")
            )
            .into_bytes(),
        );
        out.extend(&t.data);
    }
    out.extend(b"end\n");
    out
}

/// Archives of the in-memory API of earlier releases (version 1) import through the streamed
/// import too, and read back in memory as the same archive.
#[tokio::test]
async fn version_one_archives_import_streamed() {
    let db = TestDb::new("v1").await;
    let tenancy = connect(&db).await;
    db.exec(SPINS).await;
    let a = tenancy
        .create_tenant(NewTenant::new("acme", "Acme"))
        .await
        .unwrap();
    let b = tenancy
        .create_tenant(NewTenant::new("beta", "Beta"))
        .await
        .unwrap();
    db.exec(&format!(
        "INSERT INTO spins SELECT '{}', g, E'a\\tb\\\\c' || g FROM generate_series(1, 1000) g",
        a.id
    ))
    .await;
    let su = tenancy.superuser("test", "v1").await.unwrap();
    let archive = tenancy.export_tenant(&su, a.id).await.unwrap();
    let bytes = version_one(&archive);
    assert!(bytes.starts_with(b"tenancy-archive 1\n"));
    assert_eq!(TenantArchive::from_bytes(&bytes).unwrap(), archive);
    let mut input = BufReader::new(bytes.as_slice());
    let summary = tenancy
        .import_tenant_from(&su, &mut input, b.id, ArchiveOptions::default())
        .await
        .unwrap();
    assert_eq!(summary.rows, 1000);
    assert_eq!(summary.source, Some(a.id));
    let same: bool = db
        .scalar(&format!(
            "SELECT array_agg((id, note) ORDER BY id) FILTER (WHERE tenant_id = '{}') \
                  = array_agg((id, note) ORDER BY id) FILTER (WHERE tenant_id = '{}') FROM spins",
            a.id, b.id
        ))
        .await;
    assert!(same);

    // A stated count that does not match the rows: refused, nothing kept.
    let c = tenancy
        .create_tenant(NewTenant::new("gamma", "Gamma"))
        .await
        .unwrap();
    let mut out = Vec::new();
    tenancy
        .export_tenant_to(&su, a.id, &mut out, ArchiveOptions::default())
        .await
        .unwrap();
    let lied = String::from_utf8(out)
        .unwrap()
        .replace("rows 1000\n", "rows 999\n");
    let err = tenancy
        .import_tenant_from(&su, &mut lied.as_bytes(), c.id, ArchiveOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("the archive says 999 rows"),
        "{err}"
    );
    assert!(
        matches!(&err, tenancy::Error::Archive(tenancy::ArchiveError::RowCount {
            table, stated: 999, read: 1000
        }) if table == "spins"),
        "{err:?}"
    );
    let n: i64 = db
        .scalar(&format!(
            "SELECT count(*) FROM spins WHERE tenant_id = '{}'",
            c.id
        ))
        .await;
    assert_eq!(n, 0);
}

/// The streamed calls' futures are `Send` (as every future of the crate), so they run in a
/// spawned task; never run, only compiled.
#[allow(dead_code)]
fn futures_are_send(t: Tenancy, su: tenancy::Superuser, id: tenancy::TenantId) {
    tokio::spawn(async move {
        let mut out = Vec::new();
        t.export_tenant_to(&su, id, &mut out, ArchiveOptions::default())
            .await?;
        let mut input = out.as_slice();
        t.import_tenant_from(&su, &mut input, id, ArchiveOptions::default().replace(true))
            .await?;
        t.verify_deployment().await
    });
}
