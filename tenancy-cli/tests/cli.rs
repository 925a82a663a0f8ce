//! The `tenancy` command, run as a built binary against a real server: exit statuses, what it
//! prints (table and JSON), and what it changed in the database. Standard input is closed, as
//! in a script: nobody can confirm a prompt.

mod common;

use common::{TestDb, migrations_dir, path_str};
use serde_json::Value;

const SPINS: &str = "CREATE TABLE spins (
    tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id),
    id        integer NOT NULL,
    note      text,
    PRIMARY KEY (tenant_id, id)
);";

async fn audit_count(db: &TestDb, action: &str) -> i64 {
    db.scalar(&format!(
        "SELECT count(*) FROM tenancy.audit_log WHERE action = '{action}'"
    ))
    .await
}

async fn status(db: &TestDb, slug: &str) -> String {
    db.scalar(&format!(
        "SELECT status FROM tenancy.tenants WHERE slug = '{slug}'"
    ))
    .await
}

#[tokio::test]
async fn registry_install_and_the_lifecycle() {
    let db = TestDb::new("lifecycle").await;
    let out = db.tenancy(&["registry", "install"]).ok();
    assert!(out.contains("registry installed"), "{out}");
    let n: i64 = db
        .scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenancy'")
        .await;
    assert_eq!(n, 1);
    // Idempotent.
    db.tenancy(&["registry", "install"]).ok();

    let created = db
        .tenancy(&[
            "tenants",
            "create",
            "acme",
            "--name",
            "Acme Corp",
            "--host",
            "acme.example.com",
            "--json",
        ])
        .json();
    assert_eq!(created["slug"], "acme");
    assert_eq!(created["name"], "Acme Corp");
    assert_eq!(created["status"], "active");
    assert_eq!(created["hosts"], serde_json::json!(["acme.example.com"]));
    let id = created["id"].as_str().unwrap().to_owned();
    let in_db: String = db
        .scalar("SELECT id::text FROM tenancy.tenants WHERE slug = 'acme'")
        .await;
    assert_eq!(in_db, id);

    // The table lists it, aligned under headers.
    let table = db.tenancy(&["tenants", "list", "--reason", "check"]).ok();
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("ID  "), "{table}");
    let row = lines.next().unwrap();
    assert!(
        row.contains(&id) && row.contains("acme") && row.contains("active"),
        "{table}"
    );

    // Each move changes the registry and is audited with the actor and the reason.
    db.tenancy(&["tenants", "suspend", "acme", "--reason", "ticket 7"])
        .ok();
    assert_eq!(status(&db, "acme").await, "suspended");
    let (actor, reason): (String, String) = {
        let mut c = db.conn().await;
        sqlx::query_as(
            "SELECT actor, reason FROM tenancy.audit_log WHERE action = 'tenant.suspend'",
        )
        .fetch_one(&mut c)
        .await
        .unwrap()
    };
    assert_eq!((actor.as_str(), reason.as_str()), ("test-ops", "ticket 7"));
    // A suspended tenant is still found by slug.
    let shown = db
        .tenancy(&["tenants", "show", "acme", "--reason", "r", "--json"])
        .json();
    assert_eq!(shown["status"], "suspended");
    db.tenancy(&["tenants", "resume", "acme", "--reason", "r"])
        .ok();
    assert_eq!(status(&db, "acme").await, "active");
    db.tenancy(&["tenants", "delete", &id, "--reason", "r"])
        .ok();
    assert_eq!(status(&db, "acme").await, "deleted");
    db.tenancy(&["tenants", "restore", "acme", "--reason", "r"])
        .ok();
    assert_eq!(status(&db, "acme").await, "active");

    db.tenancy(&["tenants", "rename", "acme", "acme-two", "--reason", "r"])
        .ok();
    assert_eq!(status(&db, "acme-two").await, "active");
    db.tenancy(&[
        "tenants",
        "add-host",
        "acme-two",
        "two.example.com",
        "--reason",
        "r",
    ])
    .ok();
    db.tenancy(&[
        "tenants",
        "remove-host",
        "acme-two",
        "acme.example.com",
        "--reason",
        "r",
    ])
    .ok();
    let hosts: Vec<String> = {
        let mut c = db.conn().await;
        sqlx::query_scalar("SELECT host FROM tenancy.domains ORDER BY host")
            .fetch_all(&mut c)
            .await
            .unwrap()
    };
    assert_eq!(hosts, ["two.example.com"]);

    // The reason comes from the environment too.
    db.tenancy_env(
        &["tenants", "suspend", "acme-two"],
        &[("TENANCY_REASON", "from env")],
    )
    .ok();
    let reason: String = db
        .scalar(
            "SELECT reason FROM tenancy.audit_log WHERE action = 'tenant.suspend' \
             ORDER BY id DESC LIMIT 1",
        )
        .await;
    assert_eq!(reason, "from env");

    // List filters by status; JSON is an array of tenants.
    db.tenancy(&["tenants", "create", "beta"]).ok();
    let listed = db
        .tenancy(&[
            "tenants",
            "list",
            "--status",
            "suspended",
            "--reason",
            "r",
            "--json",
        ])
        .json();
    let slugs: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["acme-two"]);
}

#[tokio::test]
async fn hostile_input_is_refused_and_changes_nothing() {
    let db = TestDb::new("hostile").await;
    db.install();
    db.tenancy(&["tenants", "create", "acme"]).ok();
    let audit_before: i64 = db.scalar("SELECT count(*) FROM tenancy.audit_log").await;
    let tenants_before: i64 = db.scalar("SELECT count(*) FROM tenancy.tenants").await;

    // A malformed slug: usage error, no row.
    db.tenancy(&["tenants", "create", "Bad Slug!"])
        .fails(2, "invalid tenant slug");
    db.tenancy(&["tenants", "create", "admin"])
        .fails(2, "reserved");
    db.tenancy(&[
        "tenants",
        "suspend",
        "x'; DROP TABLE tenancy.tenants; --",
        "--reason",
        "r",
    ])
    .fails(2, "invalid tenant slug");
    // A taken slug: the work failed.
    db.tenancy(&["tenants", "create", "acme"]).fails(1, "taken");
    // An unknown tenant.
    db.tenancy(&["tenants", "suspend", "nobody", "--reason", "r"])
        .fails(1, "no tenant with slug \"nobody\"");
    db.tenancy(&[
        "tenants",
        "suspend",
        "00000000-0000-4000-8000-000000000000",
        "--reason",
        "r",
    ])
    .fails(1, "no tenant");
    // No reason, or an empty one: nothing is attempted.
    db.tenancy(&["tenants", "suspend", "acme"])
        .fails(2, "--reason");
    db.tenancy(&["tenants", "suspend", "acme", "--reason", "  "])
        .fails(2, "--reason");
    db.tenancy_env(
        &["tenants", "suspend", "acme", "--reason", "r"],
        &[("TENANCY_ACTOR", "")],
    )
    .fails(2, "--actor");
    // A move the status does not allow.
    db.tenancy(&["tenants", "resume", "acme", "--reason", "r"])
        .fails(1, "cannot resume");
    // Purge off a terminal without --yes: refused before anything, even the audit record.
    db.tenancy(&["tenants", "delete", "acme", "--reason", "r"])
        .ok();
    let audit_mid: i64 = db.scalar("SELECT count(*) FROM tenancy.audit_log").await;
    db.tenancy(&["tenants", "purge", "acme", "--reason", "r"])
        .fails(2, "without --yes");
    assert_eq!(status(&db, "acme").await, "deleted");
    let audit_after: i64 = db.scalar("SELECT count(*) FROM tenancy.audit_log").await;
    assert_eq!(audit_after, audit_mid, "a refused purge writes nothing");
    // Malformed --since.
    db.tenancy(&["audit", "--since", "yesterday", "--reason", "r"])
        .fails(2, "--since");
    // No database named.
    let run = common::Run(
        std::process::Command::new(env!("CARGO_BIN_EXE_tenancy"))
            .args(["tenants", "create", "zed"])
            .env_remove("DATABASE_URL")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap(),
    );
    run.fails(2, "DATABASE_URL");

    let tenants_after: i64 = db.scalar("SELECT count(*) FROM tenancy.tenants").await;
    assert_eq!(tenants_after, tenants_before);
    // Input refused before the work wrote nothing; the refused resume was attempted under an
    // acquired (audited) Superuser, then the delete.
    let written: Vec<String> = {
        let mut c = db.conn().await;
        sqlx::query_scalar("SELECT action FROM tenancy.audit_log WHERE id > $1 ORDER BY id")
            .bind(audit_before)
            .fetch_all(&mut c)
            .await
            .unwrap()
    };
    assert_eq!(
        written,
        [
            "superuser.acquire",
            "superuser.acquire",
            "tenant.soft_delete"
        ]
    );
    assert_eq!(audit_after, audit_before + 3);
}

#[tokio::test]
async fn without_a_registry_it_says_to_install_one() {
    let db = TestDb::new("noregistry").await;
    db.tenancy(&["tenants", "create", "acme"])
        .fails(1, "tenancy registry install");
    let n: i64 = db
        .scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenancy'")
        .await;
    assert_eq!(
        n, 0,
        "the command did not install the registry behind the user's back"
    );
}

#[tokio::test]
async fn purge_with_yes_deletes_the_tenants_rows() {
    let db = TestDb::new("purge").await;
    db.install();
    db.exec(SPINS).await;
    let a = db.tenancy(&["tenants", "create", "acme", "--json"]).json();
    let b = db.tenancy(&["tenants", "create", "beta", "--json"]).json();
    for (t, n) in [(&a, 3), (&b, 2)] {
        db.exec(&format!(
            "INSERT INTO spins SELECT '{}', g, 'x' FROM generate_series(1, {n}) g",
            t["id"].as_str().unwrap()
        ))
        .await;
    }
    // Only a soft-deleted tenant can be purged.
    db.tenancy(&["tenants", "purge", "acme", "--reason", "r", "--yes"])
        .fails(1, "cannot purge");
    db.tenancy(&["tenants", "delete", "acme", "--reason", "r"])
        .ok();
    let out = db
        .tenancy(&[
            "tenants", "purge", "acme", "--reason", "gdpr 12", "--yes", "--json",
        ])
        .json();
    assert_eq!(out["rows"][0]["rows"], 3);
    let left: i64 = db.scalar("SELECT count(*) FROM spins").await;
    assert_eq!(left, 2, "only acme's rows went");
    let purged: i64 = db
        .scalar(&format!(
            "SELECT count(*) FROM tenancy.purged_tenants WHERE id = '{}'",
            a["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(purged, 1);
    assert_eq!(audit_count(&db, "tenant.purge").await, 1);
}

#[tokio::test]
async fn migrations_with_a_failing_tenant() {
    let db = TestDb::new("migrate").await;
    db.install();
    let shared = migrations_dir(&[("1_plans.sql", "CREATE TABLE plans (id int PRIMARY KEY);")]);
    let out = db
        .tenancy(&[
            "migrate",
            "shared",
            path_str(shared.path()),
            "--reason",
            "release 1",
        ])
        .ok();
    assert!(out.contains("applied: [1]"), "{out}");
    let n: i64 = db.scalar("SELECT count(*) FROM plans").await;
    assert_eq!(n, 0);
    let again = db
        .tenancy(&[
            "migrate",
            "shared",
            path_str(shared.path()),
            "--reason",
            "release 1",
        ])
        .ok();
    assert!(again.contains("up to date"), "{again}");

    let tenant = migrations_dir(&[
        (
            "1_spins.sql",
            "CREATE TABLE spins (tenant_id uuid NOT NULL, id int NOT NULL, \
             PRIMARY KEY (tenant_id, id));",
        ),
        ("2_note.sql", "ALTER TABLE spins ADD COLUMN note text;"),
    ]);
    let dir = path_str(tenant.path());
    // Own-schema tenants built with the first migration only.
    let first = migrations_dir(&[(
        "1_spins.sql",
        "CREATE TABLE spins (tenant_id uuid NOT NULL, id int NOT NULL, \
         PRIMARY KEY (tenant_id, id));",
    )]);
    for slug in ["alpha", "bravo", "charlie"] {
        db.tenancy(&[
            "tenants",
            "create",
            slug,
            "--placement",
            "own-schema",
            "--migrations",
            path_str(first.path()),
        ])
        .ok();
    }
    // bravo's schema already has the column migration 2 adds: its migration fails.
    db.exec("ALTER TABLE t_bravo.spins ADD COLUMN note text;")
        .await;

    let pending = db
        .tenancy(&["migrate", "pending", dir, "--reason", "check", "--json"])
        .json();
    let targets: Vec<String> = pending
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap_or("(shared)").to_owned())
        .collect();
    assert_eq!(targets, ["(shared)", "alpha", "bravo", "charlie"]);
    assert_eq!(pending[1]["missing"], serde_json::json!([2]));
    db.tenancy(&["migrate", "pending", dir, "--check", "--reason", "check"])
        .fails(1, "behind");

    let run = db.tenancy(&[
        "migrate",
        "tenants",
        dir,
        "--parallel",
        "2",
        "--reason",
        "release 2",
    ]);
    run.fails(1, "1 of 4 target(s) failed");
    let out = run.stdout();
    assert!(
        out.contains("4 target(s): 3 migrated, 0 up to date, 1 failed"),
        "{out}"
    );
    assert!(
        out.contains("FAILED") && out.contains("tenant bravo (schema t_bravo)"),
        "{out}"
    );
    assert!(out.contains("already exists"), "the cause is shown:\n{out}");
    // Off a terminal, progress is plain lines on standard error.
    let err = run.stderr();
    assert!(
        err.lines()
            .any(|l| l.contains("done,") && l.contains("failed,") && l.contains("to go")),
        "{err}"
    );
    let applied: i64 = db
        .scalar("SELECT count(*) FROM t_charlie.tenancy_migrations")
        .await;
    assert_eq!(applied, 2);
    let bravo: i64 = db
        .scalar("SELECT count(*) FROM t_bravo.tenancy_migrations")
        .await;
    assert_eq!(bravo, 1, "the failed tenant was rolled back");

    // Fix bravo and run again: it resumes.
    db.exec("ALTER TABLE t_bravo.spins DROP COLUMN note;").await;
    let json = db
        .tenancy(&["migrate", "tenants", dir, "--reason", "release 2", "--json"])
        .json();
    assert_eq!(json["failed"], 0);
    assert_eq!(json["applied"], 1);
    // Each outcome is one object: the target's fields and the outcome's.
    let bravo = json["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["slug"] == "bravo")
        .unwrap();
    assert_eq!(bravo["target"], "tenant");
    assert_eq!(bravo["schema"], "t_bravo");
    assert_eq!(bravo["outcome"], "applied");
    assert_eq!(bravo["versions"], serde_json::json!([2]));
    assert!(bravo["id"].as_str().is_some(), "{bravo}");
    let pending = db
        .tenancy(&["migrate", "pending", dir, "--check", "--reason", "check"])
        .ok();
    assert!(
        pending.contains("every target is at the latest"),
        "{pending}"
    );

    // A missing directory is a usage error.
    db.tenancy(&["migrate", "tenants", "/nonexistent/dir", "--reason", "r"])
        .fails(2, "not a directory");
}

#[tokio::test]
async fn export_and_import_round_trip() {
    let db = TestDb::new("archive").await;
    db.install();
    db.exec(SPINS).await;
    let a = db.tenancy(&["tenants", "create", "acme", "--json"]).json();
    db.tenancy(&["tenants", "create", "beta"]).ok();
    db.tenancy(&["tenants", "create", "gamma"]).ok();
    db.exec(&format!(
        "INSERT INTO spins SELECT '{}', g, E'tab\\there, newline\\nthere, back\\\\slash ' || g \
         FROM generate_series(1, 500) g; \
         INSERT INTO spins SELECT id, 1, 'gamma' FROM tenancy.tenants WHERE slug = 'gamma';",
        a["id"].as_str().unwrap()
    ))
    .await;
    let dir = common::tempdir::Dir::new();
    let file = dir.file("acme.archive");

    // An unknown tenant: fails, and leaves no file.
    db.tenancy(&["tenants", "export", "nobody", "-o", &file, "--reason", "r"])
        .fails(1, "no tenant");
    assert!(!std::path::Path::new(&file).exists());
    assert!(!std::path::Path::new(&format!("{file}.partial")).exists());

    let run = db.tenancy(&[
        "tenants", "export", "acme", "-o", &file, "--reason", "backup",
    ]);
    let out = run.ok();
    assert!(out.contains("500 row(s)"), "{out}");
    assert!(
        run.stderr().contains("spins: started"),
        "plain progress:\n{}",
        run.stderr()
    );
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with("tenancy-archive 2\n")
    );
    assert_eq!(audit_count(&db, "tenant.export").await, 1);

    let json = db
        .tenancy(&[
            "tenants", "import", &file, "--into", "beta", "--reason", "copy", "--json",
        ])
        .json();
    assert_eq!(json["rows"], 500);
    let same: bool = db
        .scalar(
            "SELECT array_agg((spins.id, note) ORDER BY spins.id) FILTER (WHERE t.slug = 'acme') \
                  = array_agg((spins.id, note) ORDER BY spins.id) FILTER (WHERE t.slug = 'beta') \
             FROM spins JOIN tenancy.tenants t ON t.id = spins.tenant_id",
        )
        .await;
    assert!(
        same,
        "beta holds exactly acme's rows, tabs, newlines and backslashes too"
    );

    // Over data: refused without --replace, and --replace off a terminal needs --yes.
    db.tenancy(&[
        "tenants", "import", &file, "--into", "gamma", "--reason", "r",
    ])
    .fails(1, "not empty");
    db.tenancy(&[
        "tenants",
        "import",
        &file,
        "--into",
        "gamma",
        "--reason",
        "r",
        "--replace",
    ])
    .fails(2, "without --yes");
    let gamma: i64 = db
        .scalar(
            "SELECT count(*) FROM spins JOIN tenancy.tenants t ON t.id = tenant_id \
             WHERE t.slug = 'gamma' AND note = 'gamma'",
        )
        .await;
    assert_eq!(gamma, 1, "gamma unchanged");
    db.tenancy(&[
        "tenants",
        "import",
        &file,
        "--into",
        "gamma",
        "--reason",
        "r",
        "--replace",
        "--yes",
    ])
    .ok();
    let gamma: i64 = db
        .scalar(
            "SELECT count(*) FROM spins JOIN tenancy.tenants t ON t.id = tenant_id \
             WHERE t.slug = 'gamma'",
        )
        .await;
    assert_eq!(gamma, 500);
    assert_eq!(audit_count(&db, "tenant.import_replace").await, 1);

    // A truncated archive is refused, and the import leaves nothing.
    db.tenancy(&["tenants", "create", "delta"]).ok();
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.file("cut.archive");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    db.tenancy(&[
        "tenants", "import", &cut, "--into", "delta", "--reason", "r",
    ])
    .fails(1, "truncated");
    let delta: i64 = db
        .scalar(
            "SELECT count(*) FROM spins JOIN tenancy.tenants t ON t.id = tenant_id \
             WHERE t.slug = 'delta'",
        )
        .await;
    assert_eq!(delta, 0);
    let garbage = dir.file("garbage.archive");
    std::fs::write(&garbage, "hello\n").unwrap();
    db.tenancy(&[
        "tenants", "import", &garbage, "--into", "delta", "--reason", "r",
    ])
    .fails(1, "not a tenancy archive");
}

#[tokio::test]
async fn verify_spares_and_audit() {
    let db = TestDb::new("verify").await;
    db.install();
    db.exec(SPINS).await;
    let tenant = migrations_dir(&[(
        "1_things.sql",
        "CREATE TABLE things (tenant_id uuid NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));",
    )]);
    let dir = path_str(tenant.path());
    db.tenancy(&[
        "tenants",
        "create",
        "own",
        "--placement",
        "own-schema",
        "--migrations",
        dir,
    ])
    .ok();

    // Row-level security missing on spins: a note, or a failure with --require-rls.
    let checks = db.tenancy(&["verify", "--json"]).json();
    let status_of = |checks: &Value, name: &str| {
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .map(|c| c["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status_of(&checks, "registry").as_deref(), Some("ok"));
    assert_eq!(status_of(&checks, "schemas").as_deref(), Some("ok"));
    assert_eq!(
        status_of(&checks, "rls public.spins").as_deref(),
        Some("note")
    );
    db.tenancy(&["verify", "--require-rls"])
        .fails(1, "1 check(s) failed");
    db.exec(&tenancy::rls::policy_sql("spins", "tenant_id").unwrap())
        .await;
    let out = db.tenancy(&["verify", "--require-rls"]).ok();
    assert!(out.contains("rls public.spins  ok"), "{out}");

    // Migration state, with --migrations (a Superuser read, so it needs a reason).
    db.tenancy(&["verify", "--migrations", dir])
        .fails(2, "--reason");
    let run = db.tenancy(&["verify", "--migrations", dir, "--reason", "r"]);
    run.fails(1, "1 check(s) failed");
    assert!(
        run.stdout().contains("shared tables lacks [1]"),
        "{}",
        run.stdout()
    );
    db.tenancy(&["migrate", "tenants", dir, "--reason", "r"])
        .ok();
    db.tenancy(&["verify", "--migrations", dir, "--reason", "r"])
        .ok();

    // A tenant's schema gone: verify names it.
    db.exec("DROP SCHEMA t_own CASCADE").await;
    db.tenancy(&["verify"]).fails(1, "check(s) failed");
    let out = db.tenancy(&["verify"]).stdout();
    assert!(
        out.contains("tenant \"own\": schema \"t_own\" does not exist"),
        "{out}"
    );

    // Spares.
    let out = db
        .tenancy(&["spares", "warm", "2", "--migrations", dir, "--reason", "r"])
        .ok();
    assert!(out.contains("2 spare schema(s) built"), "{out}");
    let spares: i64 = db
        .scalar("SELECT count(*) FROM tenancy.spare_schemas")
        .await;
    assert_eq!(spares, 2);

    // The audit log, filtered by tenant and time; reading it is audited too.
    db.tenancy(&["tenants", "create", "acme"]).ok();
    db.tenancy(&["tenants", "suspend", "acme", "--reason", "ticket 9"])
        .ok();
    let log = db
        .tenancy(&[
            "audit", "--tenant", "acme", "--since", "1h", "--reason", "review", "--json",
        ])
        .json();
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["tenant.suspend"]);
    assert_eq!(log[0]["reason"], "ticket 9");
    assert_eq!(log[0]["actor"], "test-ops");
    let future = db
        .tenancy(&[
            "audit",
            "--since",
            "2999-01-01T00:00:00Z",
            "--reason",
            "review",
            "--json",
        ])
        .json();
    assert_eq!(future, serde_json::json!([]));
    assert!(audit_count(&db, "audit.read").await >= 2);
    let table = db
        .tenancy(&["audit", "--reason", "review", "--limit", "3"])
        .ok();
    assert_eq!(
        table.lines().count(),
        4,
        "a header and three records:\n{table}"
    );
}

/// `tenants move` and `purge-old-copy` between every placement, `create --placement
/// own-database`, and `servers add | list`; a refused move (its old copy in the way, histories
/// that differ) changes nothing and says why.
#[tokio::test]
async fn move_a_tenant_and_purge_its_old_copy() {
    let db = TestDb::new("moving").await;
    db.install();
    let migrations = migrations_dir(&[("1_spins.sql", SPINS)]);
    let dir = path_str(migrations.path());
    db.tenancy(&["migrate", "tenants", dir, "--reason", "r"])
        .ok();
    let a = db.tenancy(&["tenants", "create", "acme", "--json"]).json();
    let acme = a["id"].as_str().unwrap().to_owned();
    db.exec(&format!(
        "INSERT INTO spins SELECT '{acme}', g, 'x' FROM generate_series(1, 20) g"
    ))
    .await;
    let spins_of = |table: &str| format!("SELECT count(*) FROM {table} WHERE tenant_id = '{acme}'");

    let moved = db
        .tenancy(&[
            "tenants",
            "move",
            "acme",
            "--to",
            "own-schema",
            "--migrations",
            dir,
            "--reason",
            "bigger",
            "--json",
        ])
        .json();
    assert_eq!(
        (
            &moved["from"],
            &moved["to"],
            &moved["rows"],
            &moved["schema"]
        ),
        (
            &Value::from("shared_table"),
            &Value::from("own_schema"),
            &Value::from(20),
            &Value::from("t_acme")
        )
    );
    assert_eq!(moved["old_copy"]["placement"], "shared_table");
    let n: i64 = db.scalar(&spins_of("t_acme.spins")).await;
    assert_eq!(n, 20);
    // Back onto the placement of its old copy: refused until that is purged.
    db.tenancy(&["tenants", "move", "acme", "--to", "shared", "--reason", "r"])
        .fails(1, "purge it first");
    db.tenancy(&["tenants", "purge-old-copy", "acme", "--reason", "r"])
        .fails(2, "without --yes");
    let out = db
        .tenancy(&[
            "tenants",
            "purge-old-copy",
            "acme",
            "--reason",
            "r",
            "--yes",
        ])
        .ok();
    assert!(out.contains("deleted 20 row(s)"), "{out}");
    let n: i64 = db.scalar(&spins_of("public.spins")).await;
    assert_eq!(n, 0);

    // Into a database of its own, on the registry's server.
    let out = db
        .tenancy(&[
            "tenants",
            "move",
            "acme",
            "--to",
            "own-database",
            "--migrations",
            dir,
            "--lock-wait-ms",
            "2000",
            "--reason",
            "compliance",
        ])
        .ok();
    assert!(out.contains("20 row(s) in 1 table(s)"), "{out}");
    assert!(out.contains("old copy kept: schema tenancy_old_"), "{out}");
    let shown = db
        .tenancy(&["tenants", "show", "acme", "--reason", "r", "--json"])
        .json();
    assert_eq!(shown["placement"], "own_database");
    let database = shown["database"].as_str().unwrap().to_owned();
    // Without the migrations the new home would lack migration 1, which its home ran.
    db.tenancy(&[
        "tenants",
        "purge-old-copy",
        "acme",
        "--reason",
        "r",
        "--yes",
    ])
    .ok();
    db.tenancy(&[
        "tenants",
        "move",
        "acme",
        "--to",
        "own-schema",
        "--reason",
        "r",
    ])
    .fails(1, "has run migrations [1]");
    let shown = db
        .tenancy(&["tenants", "show", "acme", "--reason", "r", "--json"])
        .json();
    assert_eq!(shown["placement"], "own_database");

    // Out again, and the old database dropped.
    db.tenancy(&["tenants", "move", "acme", "--to", "shared", "--reason", "r"])
        .ok();
    let out = db
        .tenancy(&[
            "tenants",
            "purge-old-copy",
            "acme",
            "--reason",
            "r",
            "--yes",
        ])
        .ok();
    assert!(
        out.contains(&format!("dropped database {database}")),
        "{out}"
    );
    let n: i64 = db.scalar(&spins_of("public.spins")).await;
    assert_eq!(n, 20);
    let gone: i64 = db
        .scalar(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{database}'"
        ))
        .await;
    assert_eq!(gone, 0);
    assert_eq!(audit_count(&db, "tenant.move").await, 3);
    assert_eq!(audit_count(&db, "tenant.purge_old_copy").await, 3);

    // An own-database tenant from the start, purged with its database.
    let b = db
        .tenancy(&[
            "tenants",
            "create",
            "beta",
            "--placement",
            "own-database",
            "--migrations",
            dir,
            "--json",
        ])
        .json();
    let beta_db = b["database"].as_str().unwrap().to_owned();
    db.tenancy(&["tenants", "delete", "beta", "--reason", "r"])
        .ok();
    db.tenancy(&["tenants", "purge", "beta", "--reason", "r", "--yes"])
        .ok();
    let gone: i64 = db
        .scalar(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{beta_db}'"
        ))
        .await;
    assert_eq!(gone, 0);

    // Server keys: listed once, unmapped here; a malformed key changes nothing.
    let out = db
        .tenancy(&["servers", "add", "eu-2", "--reason", "r"])
        .ok();
    assert!(out.contains("server eu-2 added"), "{out}");
    let out = db
        .tenancy(&["servers", "add", "eu-2", "--reason", "r"])
        .ok();
    assert!(out.contains("listed already"), "{out}");
    db.tenancy(&["servers", "add", "EU 2", "--reason", "r"])
        .fails(2, "a server key is");
    let listed = db
        .tenancy(&["servers", "list", "--reason", "r", "--json"])
        .json();
    let keys: Vec<(&str, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["key"].as_str().unwrap(), s["mapped"].as_bool().unwrap()))
        .collect();
    assert_eq!(keys, [("eu-2", false), ("primary", true)]);
    // Forgetting asks (a handle that maps the server would drop what is forgotten); a key the
    // registry does not list, or a malformed one, is refused.
    let forget = |key: &str, yes: bool| {
        let mut args = vec![
            "tenants",
            "forget-old-copy",
            "acme",
            "--server",
            key,
            "--reason",
            "r",
        ];
        if yes {
            args.push("--yes");
        }
        db.tenancy(&args)
    };
    forget("eu-2", false).fails(2, "without --yes");
    let out = forget("eu-2", true).ok();
    assert!(out.contains("nothing was forgotten"), "{out}");
    forget("eu-9", true).fails(1, "server eu-9");
    forget("EU 9", true).fails(2, "--server");
    db.tenancy(&[
        "tenants",
        "move",
        "acme",
        "--to",
        "own-schema",
        "--server",
        "eu-2",
        "--reason",
        "r",
    ])
    .fails(2, "--server is for --to own-database or --to shared");
}
