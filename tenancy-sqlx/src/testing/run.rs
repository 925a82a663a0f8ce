//! The runner behind `#[tenancy::test]`: a runtime, the setup, the body, and what is left after.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use super::{SetupError, TestSetup, TestTenancy};

/// How a test body reports failure besides panicking: `()` never does, a `Result` does with
/// its `Err`.
pub trait TestOutcome {
    /// `Some(why)` if the test failed.
    fn failure(&self) -> Option<String>;
}

impl TestOutcome for () {
    fn failure(&self) -> Option<String> {
        None
    }
}

impl<T, E: std::fmt::Debug> TestOutcome for Result<T, E> {
    fn failure(&self) -> Option<String> {
        self.as_ref()
            .err()
            .map(|e| format!("the test returned Err({e:?})"))
    }
}

/// The runtime a test body runs on, as `#[tokio::test]` names them.
#[derive(Debug, Clone, Copy)]
pub enum Flavor {
    /// One thread: the default.
    CurrentThread,
    /// A thread pool, of this many workers (`None`: tokio's default).
    MultiThread(Option<usize>),
}

impl Flavor {
    fn runtime(self) -> tokio::runtime::Runtime {
        let mut builder = match self {
            Self::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            Self::MultiThread(workers) => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                if let Some(n) = workers {
                    b.worker_threads(n);
                }
                b
            }
        };
        builder
            .enable_all()
            .build()
            .expect("tenancy::test: cannot start a tokio runtime")
    }
}

/// Checks at compile time that `body` is what [`run`] takes; never called.
pub fn check_body<F, Fut>(_body: F)
where
    F: FnOnce(TestTenancy) -> Fut,
    Fut: Future,
    Fut::Output: TestOutcome,
{
}

/// Sets up the test's database, runs `body` on it, then drops the database if the test passed
/// or keeps it (printing its name) if the test failed.
///
/// # Panics
/// When the setup fails (saying which step and why), and when the test fails: with the body's
/// own panic, or with the `Err` it returned.
pub fn run<F, Fut>(flavor: Flavor, setup: Result<TestSetup, SetupError>, body: F)
where
    F: FnOnce(TestTenancy) -> Fut,
    Fut: Future,
    Fut::Output: TestOutcome,
{
    let setup = setup.unwrap_or_else(|e| panic!("tenancy::test: {e}"));
    let rt = flavor.runtime();
    let (db, t) = rt
        .block_on(setup.create())
        .unwrap_or_else(|e| panic!("tenancy::test {}: {e}", setup.test));
    let handle = t.tenancy.clone();
    let url = t.url.clone();
    let outcome = catch_unwind(AssertUnwindSafe(|| rt.block_on(body(t))));
    let failure = match &outcome {
        Ok(out) => out.failure(),
        Err(_) => Some(String::new()),
    };
    rt.block_on(handle.close());
    if failure.is_none() {
        if let Err(e) = rt.block_on(db.drop_now()) {
            eprintln!("tenancy::test {}: {e}", setup.test);
        }
    } else {
        let name = db.keep();
        eprintln!(
            "tenancy::test {}: failed; its database {name} is kept for inspection ({url}); \
             drop it with DROP DATABASE \"{name}\"",
            setup.test
        );
    }
    match (outcome, failure) {
        (Err(panic), _) => resume_unwind(panic),
        (Ok(_), Some(why)) => panic!("{why}"),
        (Ok(_), None) => {}
    }
}
