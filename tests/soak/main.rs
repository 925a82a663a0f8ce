//! The randomized fault soak: many tasks do random work for random tenants over both
//! placements while their calls are cancelled at random await points, panic inside
//! transactions, and lose their backends; then every row, every acknowledged write and every
//! pooled connection is checked (see `invariants`).
//!
//! Seeded and reproducible as far as the operations go (the interleaving is the scheduler's):
//! each run prints its seed, and `TENANCY_SOAK_SEED=<seed>` runs that sequence again. One test
//! per configuration runs a bounded round, sized in operations; the PgBouncer ones are ignored
//! by a plain `cargo test` and run by `scripts/test` through `scripts/pgbouncer`. The long
//! mode, `cargo test --test soak -- --ignored long --nocapture`, runs at least 100,000
//! operations and prints what RELIABILITY.md records.

#[path = "../common/mod.rs"]
mod common;

mod faults;
mod invariants;
mod ledger;
mod ops;
mod world;

use std::time::{Duration, Instant};

use faults::Rng;
use ledger::Ledger;
use world::{Config, Route, World};

/// `TENANCY_SOAK_SEED`, or a fresh one.
fn seed() -> u64 {
    match std::env::var("TENANCY_SOAK_SEED") {
        Ok(s) => s.trim().parse().expect("TENANCY_SOAK_SEED is a u64"),
        Err(_) => uuid::Uuid::new_v4().as_u64_pair().0,
    }
}

/// Keeps the panics the soak injects (`ops::PANIC`) out of the output; every other panic is
/// reported as usual.
fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&ops::PANIC) {
                report(info);
            }
        }));
    });
}

/// What one run did.
struct Summary {
    name: String,
    seed: u64,
    config: Config,
    ledger: Ledger,
    rows_checked: usize,
    duration: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let counts = self.ledger.counts();
        let sum = |prefix: &str| -> u64 {
            counts
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v)
                .sum()
        };
        writeln!(f, "soak {}: seed {}", self.name, self.seed)?;
        writeln!(f, "  configuration: {}", self.config)?;
        writeln!(
            f,
            "  operations: {} in {:.1} s; rows checked after the run: {}",
            sum("op."),
            self.duration.as_secs_f64(),
            self.rows_checked
        )?;
        writeln!(f, "  faults injected: {}", sum("fault."))?;
        for (k, v) in &counts {
            writeln!(f, "    {k}: {v}")?;
        }
        Ok(())
    }
}

/// Runs one configuration with a seed from the environment or a fresh one; fails with every
/// violation found and the seed that reruns it.
async fn soak(name: &str, config: Config) -> Summary {
    quiet_injected_panics();
    let seed = seed();
    println!(
        "soak {name}: seed {seed} ({config}); rerun: \
         TENANCY_SOAK_SEED={seed} cargo test --test soak {name}"
    );
    let started = Instant::now();
    let w = World::new(name, config).await;
    let ledger = Ledger::default();
    let mut rng = Rng::new(seed);
    let (kill, requests) = tokio::sync::mpsc::unbounded_channel();
    let tasks = futures_util::future::join_all(
        (0..config.tasks).map(|i| ops::task(&w, &ledger, rng.next(), i, kill.clone())),
    );
    drop(kill);
    let terminator = faults::terminator(&w.db, Rng::new(rng.next()), &ledger, requests);
    tokio::join!(tasks, terminator);
    invariants::connections(&w, &ledger).await;
    let rows_checked = invariants::rows(&w, &ledger).await;
    let summary = Summary {
        name: name.to_owned(),
        seed,
        config,
        ledger,
        rows_checked,
        duration: started.elapsed(),
    };
    println!("{summary}");
    let violations = summary.ledger.violations();
    assert!(
        violations.is_empty(),
        "soak {name} ({config}) broke the promise, seed {seed} \
         (rerun: TENANCY_SOAK_SEED={seed} cargo test --test soak {name}):\n  {}",
        violations.join("\n  ")
    );
    summary
}

#[tokio::test]
async fn direct_pool1_rls_off() {
    soak("direct_pool1_rls_off", Config::ci(Route::Direct, 1, false)).await;
}

#[tokio::test]
async fn direct_pool8_rls_off() {
    soak("direct_pool8_rls_off", Config::ci(Route::Direct, 8, false)).await;
}

#[tokio::test]
async fn direct_pool1_rls_on() {
    soak("direct_pool1_rls_on", Config::ci(Route::Direct, 1, true)).await;
}

#[tokio::test]
async fn direct_pool8_rls_on() {
    soak("direct_pool8_rls_on", Config::ci(Route::Direct, 8, true)).await;
}

#[tokio::test]
#[ignore = "needs PgBouncer: scripts/test runs it through scripts/pgbouncer"]
async fn pgbouncer_pool1_rls_off() {
    soak(
        "pgbouncer_pool1_rls_off",
        Config::ci(Route::PgBouncer, 1, false),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs PgBouncer: scripts/test runs it through scripts/pgbouncer"]
async fn pgbouncer_pool8_rls_on() {
    soak(
        "pgbouncer_pool8_rls_on",
        Config::ci(Route::PgBouncer, 8, true),
    )
    .await;
}

/// At least 100,000 operations: the four direct configurations, a quarter each (and the
/// PgBouncer ones too when run through `scripts/pgbouncer`). `TENANCY_SOAK_OPS` sets the
/// operations per configuration.
#[tokio::test]
#[ignore = "the long soak: cargo test --test soak -- --ignored long --nocapture"]
async fn long() {
    let per_config: usize = std::env::var("TENANCY_SOAK_OPS")
        .map(|s| s.parse().expect("TENANCY_SOAK_OPS is a number"))
        .unwrap_or(25_000);
    let mut routes = vec![Route::Direct];
    if std::env::var("TENANCY_TEST_PGBOUNCER_URL").is_ok() {
        routes.push(Route::PgBouncer);
    }
    let mut total = 0;
    for route in routes {
        for (pool, rls) in [(1, false), (8, false), (1, true), (8, true)] {
            let mut config = Config::ci(route, pool, rls);
            config.ops_per_task = per_config / config.tasks;
            let name = format!(
                "long_{route:?}_pool{pool}_rls_{}",
                if rls { "on" } else { "off" }
            );
            let summary = soak(&name.to_lowercase(), config).await;
            total += summary.config.ops();
        }
    }
    println!("soak long: {total} operations in all");
}
