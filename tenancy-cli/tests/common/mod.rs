//! Support for the command line's tests: a database per test, and the built binary run
//! against it with no terminal (standard input closed), as a script or CI job would run it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use sqlx::PgConnection;
use tenancy::testing::TestDatabase;

/// An empty database of its own (`tenancy::testing`'s, on the same server as every test),
/// dropped when the test ends (also on panic).
pub struct TestDb {
    pub name: String,
    pub url: String,
    db: TestDatabase,
}

impl TestDb {
    pub async fn new(test: &str) -> Self {
        let db = TestDatabase::create(&format!("cli_{test}"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            name: db.name().to_owned(),
            url: db.url().to_owned(),
            db,
        }
    }

    pub async fn conn(&self) -> PgConnection {
        self.db.connect().await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs SQL (several statements allowed).
    pub async fn exec(&self, sql: &str) {
        self.db.exec(sql).await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// One value of a query.
    pub async fn scalar<T>(&self, sql: &str) -> T
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
    {
        let mut conn = self.conn().await;
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}\nwhile running:\n{sql}"))
    }

    /// Runs `tenancy ARGS` against this database as actor `test-ops`.
    pub fn tenancy(&self, args: &[&str]) -> Run {
        self.tenancy_env(args, &[])
    }

    pub fn tenancy_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenancy"));
        cmd.args(args)
            .env("DATABASE_URL", &self.url)
            .env("TENANCY_ACTOR", "test-ops")
            .env_remove("TENANCY_REASON")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run(cmd.output().expect("run the tenancy binary"))
    }

    /// `registry install`, asserted to succeed.
    pub fn install(&self) {
        self.tenancy(&["registry", "install"]).ok();
    }
}

/// A finished run of the binary.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().expect("exited, not killed")
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Asserts exit status 0; returns standard output.
    #[track_caller]
    pub fn ok(&self) -> String {
        assert_eq!(
            self.code(),
            0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self.stdout()
    }
    /// Asserts exit status `code` and that standard error contains `needle`.
    #[track_caller]
    pub fn fails(&self, code: i32, needle: &str) {
        assert_eq!(
            self.code(),
            code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr()
        );
    }
    /// Standard output as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: not JSON:\n{out}"))
    }
}

/// Writes migration files into a fresh directory under the target's temporary folder.
pub fn migrations_dir(files: &[(&str, &str)]) -> tempdir::Dir {
    let dir = tempdir::Dir::new();
    for (name, sql) in files {
        std::fs::write(dir.path().join(name), sql).expect("write migration");
    }
    dir
}

pub mod tempdir {
    use std::path::{Path, PathBuf};

    /// A directory removed on drop.
    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Self {
            let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("cli-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&path).expect("create temp dir");
            Self(path)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
        pub fn file(&self, name: &str) -> String {
            self.0.join(name).to_string_lossy().into_owned()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
