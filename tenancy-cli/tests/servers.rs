//! The command line on a deployment whose own-database tenants live on another server:
//! `TENANCY_SERVERS` maps the key to a URL; without it, the tenant is reported failed, not
//! looked for elsewhere. Needs `TENANCY_SERVER2_URL` (scripts/pg-servers); without it the test
//! says so and returns, unless `CI` is set.

mod common;

use common::{TestDb, migrations_dir, path_str};
use tenancy::{Migrations, NewTenant, Placement, Tenancy};

const SPINS: &str = "CREATE TABLE spins (id integer PRIMARY KEY);";

#[tokio::test]
async fn migrate_reaches_tenants_on_another_server_only_when_it_is_mapped() {
    let Ok(two) = std::env::var("TENANCY_SERVER2_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "TENANCY_SERVER2_URL is not set, and CI is: run under scripts/pg-servers"
        );
        eprintln!("SKIPPED: TENANCY_SERVER2_URL is not set (run under scripts/pg-servers)");
        return;
    };
    let db = TestDb::new("servers").await;
    db.install();
    let v1 = migrations_dir(&[("1_spins.sql", SPINS)]);
    let v2 = migrations_dir(&[
        ("1_spins.sql", SPINS),
        ("2_note.sql", "ALTER TABLE spins ADD COLUMN note text;"),
    ]);
    let tenancy = Tenancy::builder()
        .listen_for_changes(false)
        .tenant_migrations(Migrations::from_dir(v1.path()).unwrap())
        .server("s2", two.parse().unwrap())
        .connect(&db.url)
        .await
        .unwrap();
    let su = tenancy.superuser("test", "setup").await.unwrap();
    tenancy.add_server(&su, "s2").await.unwrap();
    let far = tenancy
        .create_tenant(
            NewTenant::new("far", "Far")
                .placement(Placement::OwnDatabase)
                .server("s2"),
        )
        .await
        .unwrap();
    tenancy.close().await;
    let dir = path_str(v2.path());

    // Unmapped: the tenant fails with the server named; nothing is applied anywhere.
    let run = db.tenancy(&["migrate", "tenants", dir, "--reason", "release 2"]);
    run.fails(1, "1 of 2 target(s) failed");
    assert!(
        run.stderr().contains("server s2 is not known"),
        "{}",
        run.stderr()
    );
    // Mapped: migrated in its database on s2.
    let mapped = format!("s2={two}");
    let out = db
        .tenancy_env(
            &["migrate", "tenants", dir, "--reason", "release 2"],
            &[("TENANCY_SERVERS", &mapped)],
        )
        .ok();
    assert!(out.contains("1 migrated, 1 up to date, 0 failed"), "{out}");
    let database = far.database.unwrap();
    let (base, _) = two.rsplit_once('/').unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&format!("{base}/{database}"))
        .await
        .unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM public.tenancy_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(applied, 2);
    drop(conn);
    // A malformed mapping is a usage error that does not echo the URL.
    let bad = db.tenancy_env(
        &["migrate", "tenants", dir, "--reason", "r"],
        &[("TENANCY_SERVERS", "s2=mysql://u:secret@h/db")],
    );
    bad.fails(2, "not a PostgreSQL URL");
    assert!(!bad.stderr().contains("secret"));
    // A shared-table tenant moved onto s2's shared tables (its home there, made by the move
    // from the migrations given), and the old rows purged.
    let near = {
        let t = Tenancy::builder()
            .listen_for_changes(false)
            .connect(&db.url)
            .await
            .unwrap();
        let near = t
            .create_tenant(NewTenant::new("near", "Near"))
            .await
            .unwrap();
        t.close().await;
        near
    };
    let out = db
        .tenancy_env(
            &[
                "tenants",
                "move",
                "near",
                "--to",
                "shared",
                "--server",
                "s2",
                "--migrations",
                dir,
                "--reason",
                "rebalance",
            ],
            &[("TENANCY_SERVERS", &mapped)],
        )
        .ok();
    assert!(out.contains("the home of server s2"), "{out}");
    let out = db
        .tenancy_env(
            &[
                "tenants",
                "purge-old-copy",
                "near",
                "--yes",
                "--reason",
                "rebalance",
            ],
            &[("TENANCY_SERVERS", &mapped)],
        )
        .ok();
    assert!(out.contains(&near.id.to_string()), "{out}");
    // The tenant's database goes with the registry's tenants: purge it through the library.
    let tenancy = Tenancy::builder()
        .listen_for_changes(false)
        .server("s2", two.parse().unwrap())
        .connect(&db.url)
        .await
        .unwrap();
    let su = tenancy.superuser("test", "teardown").await.unwrap();
    for id in [far.id, near.id] {
        tenancy.soft_delete(&su, id).await.unwrap();
        tenancy.purge(&su, id).await.unwrap();
    }
    tenancy.close().await;
    // And s2's home with it (named after this registry, as its tenant databases are).
    let tag: String = sqlx::query_scalar("SELECT tag FROM tenancy.deployment")
        .fetch_one(
            &mut <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&two)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS tenancy_{tag}_home_s2 WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}
