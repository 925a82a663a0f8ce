//! Errors keep their cause: the server's error is reachable through `source()`, its SQLSTATE
//! through `Error::sqlstate`, whichever variant wraps it.

mod common;

use std::error::Error as _;

use common::models::*;
use tenancy::testing::TestTenancy;
use tenancy::{ArchiveError, ArchiveOptions, Error, MigrationError, MigrationTarget, Migrations};
use uuid::Uuid;

/// Every error in the chain below `err`, top first.
fn chain<'e>(
    err: &'e (dyn std::error::Error + 'static),
) -> Vec<&'e (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |&e| e.source()).collect()
}

#[tenancy::test(migrations = "tests/migrations", tenants(acme = "shared"))]
async fn a_refused_statement_keeps_the_sqlx_error_and_its_sqlstate(t: TestTenancy) {
    let acme = t.tenant("acme");
    let spinner = NewSpinner {
        id: Uuid::new_v4(),
        name: "twice".into(),
        color: None,
    };
    Spinner::repo().insert(acme, &spinner).await.unwrap();
    let err = Spinner::repo().insert(acme, &spinner).await.unwrap_err();
    assert!(
        matches!(&err, Error::Database(sqlx::Error::Database(_))),
        "{err:?}"
    );
    assert_eq!(err.sqlstate(), Some("23505"));
    // The sqlx::Error itself, not a string of it: a caller can read the constraint.
    let source = err
        .source()
        .and_then(|e| e.downcast_ref::<sqlx::Error>())
        .expect("the sqlx error as source");
    let db = source.as_database_error().expect("a server error");
    assert_eq!(db.constraint(), Some("spinners_pkey"));
    // Printing the top error alone still says why.
    assert!(err.to_string().contains("duplicate key"), "{err}");
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_failed_migration_names_its_version_and_keeps_the_server_error(t: TestTenancy) {
    let tenancy = t.tenancy();
    let su = tenancy.superuser("test", "errors").await.unwrap();
    let shared = Migrations::from_static(&[
        (1, "outbox", "CREATE TABLE outbox (id bigint PRIMARY KEY)"),
        (2, "broken", "ALTER TABLE no_such_table ADD COLUMN x int"),
    ])
    .unwrap();
    let err = tenancy.migrate_shared(&su, &shared).await.unwrap_err();
    let Error::Migration(MigrationError::Failed {
        target, version, ..
    }) = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((&**target, *version), (&MigrationTarget::Global, 2));
    assert_eq!(err.sqlstate(), Some("42P01"));
    let chain = chain(&err);
    assert!(chain[1].downcast_ref::<MigrationError>().is_some());
    let sqlx_error = chain
        .iter()
        .find_map(|e| e.downcast_ref::<sqlx::Error>())
        .expect("the sqlx error in the chain");
    assert!(
        sqlx_error.to_string().contains("no_such_table"),
        "{sqlx_error}"
    );
    // Rolled back: migration 1, which ran before, was not kept either.
    let mut conn = t.connect().await;
    let outbox: Option<String> = sqlx::query_scalar("SELECT to_regclass('outbox')::text")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(outbox, None);
}

#[test]
fn errors_refused_before_the_server_have_no_sqlstate() {
    let err = Migrations::from_static(&[(3, "a", "SELECT 1"), (3, "b", "SELECT 2")]).unwrap_err();
    assert!(matches!(
        &err,
        Error::Migration(MigrationError::DuplicateVersion { version: 3 })
    ));
    assert_eq!(err.sqlstate(), None);
    assert_eq!(
        err.to_string(),
        "migration error: two migrations have version 3"
    );
}

/// A reader whose disk is gone.
struct Broken;

impl tokio::io::AsyncRead for Broken {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Err(std::io::Error::other("disk gone")))
    }
}

#[tenancy::test(migrations = "tests/migrations", tenants(acme = "shared"))]
async fn an_archive_that_cannot_be_read_keeps_the_io_error(t: TestTenancy) {
    let tenancy = t.tenancy();
    let su = tenancy.superuser("test", "errors").await.unwrap();
    let mut input = tokio::io::BufReader::new(Broken);
    let err = tenancy
        .import_tenant_from(
            &su,
            &mut input,
            t.tenant("acme").id(),
            ArchiveOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Archive(ArchiveError::Io { writing: false, .. })
        ),
        "{err:?}"
    );
    let io = chain(&err)
        .into_iter()
        .find_map(|e| e.downcast_ref::<std::io::Error>())
        .expect("the io::Error in the chain");
    assert_eq!(io.to_string(), "disk gone");
    assert_eq!(err.sqlstate(), None);
}

#[tenancy::test(migrations = "tests/migrations", tenants(acme = "shared"))]
async fn an_archive_for_a_table_the_target_lacks_names_tenant_and_table(t: TestTenancy) {
    let tenancy = t.tenancy();
    let su = tenancy.superuser("test", "errors").await.unwrap();
    let acme = t.tenant("acme").id();
    let archive = format!(
        "tenancy-archive 2\nsource {acme}\ntable no_such_table columns id\n\\.\nrows 0\nend\n"
    );
    let err = tenancy
        .import_tenant_from(
            &su,
            &mut archive.as_bytes(),
            acme,
            ArchiveOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Archive(ArchiveError::NoTable { tenant, table })
            if *tenant == acme && table == "no_such_table"),
        "{err:?}"
    );
}
