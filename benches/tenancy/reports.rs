//! Cross-tenant reports (issue 4) over the own-schema tenants of `own_schema.rs`: the top 100
//! spins longer than 120 over 200 and over 1,000 schemas of 1,000 spins each, newest first and
//! longest first, through the report builder (`Spin::repo().report()`), with a `Superuser` of a
//! handle with `TenancyBuilder`'s defaults and the report's defaults.
//!
//! Side by side, in alternating rounds, the naive way (django-tenants'): one `UNION ALL` of
//! every schema's table, filtered, ordered and limited by PostgreSQL, sent unprepared (parsed
//! and planned on every run, as a client interpolating its parameters would). Both must return
//! the same rows.

use std::time::Instant;

use sqlx::{Connection, PgConnection};
use tenancy::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::harness::{Bench, Goal, median};
use crate::own_schema::World;
use crate::shared_table::Spin;

/// Issue 5: "report top-100 over 200 schemas <= 18 ms".
const GOAL_200: Goal = Goal::AtMost(18.0);

/// `(schemas, newest first, longest first)`.
const ROWS: &[(usize, &str, &str)] = &[
    (200, "report_top100_200_ms", "report_top100_200_longest_ms"),
    (
        1_000,
        "report_top100_1000_ms",
        "report_top100_1000_longest_ms",
    ),
];

/// Whether the command line selects any row of this group.
pub fn wanted(b: &Bench) -> bool {
    ROWS.iter().any(|&(_, n, l)| b.wants(n) || b.wants(l))
}

/// Issue 4: "a report that completes over 10,000 tenants" (the opt-in 10,000-tenant world).
pub const ROW_10000: &str = "report_top100_10000_ms";

/// Issue 15: "report_top100_10000_ms <= 1 s".
const GOAL_10000: Goal = Goal::AtMost(1000.0);

/// `ROW_10000`: the newest 100 long spins over every own-schema tenant, a few rounds, through
/// the world's handle (`TenancyBuilder`'s defaults: two report lanes), in alternation with the
/// same report through a handle without report lanes (`report_connections(0)`: every batch on
/// any connection of the pool, as before issue 15), recorded as `<row>.pool_ms` and
/// `<row>.vs_pool`. No naive `UNION ALL` beside it: one statement over 10,000 schemas needs a
/// lock per table and index, more than the server's lock table holds by default.
pub async fn run_all(b: &mut Bench, w: &World) {
    if !b.wants(ROW_10000) {
        return;
    }
    let pooled = Tenancy::builder()
        .report_connections(0)
        .connect(&w.url)
        .await
        .expect("connect a handle without report lanes");
    let handles = [&w.tenancy, &pooled];
    let mut sus = Vec::new();
    for tenancy in handles {
        sus.push(
            tenancy
                .superuser("bench", "report over every tenant")
                .await
                .expect("superuser"),
        );
    }
    let report = async |su: &Superuser| {
        Spin::repo()
            .report()
            .tenants(&w.ids)
            .filter(Spin::DURATION.gt(120))
            .order_by(Spin::CREATED_AT.desc())
            .limit(100)
            .fetch_all(su)
            .await
            .expect("report over every tenant")
    };
    for su in &sus {
        assert_eq!(report(su).await.len(), 100, "the report found 100 spins");
    }
    let (mut lanes, mut pool) = (Vec::new(), Vec::new());
    for r in 0..if b.cfg.quick { 2 } else { 7 } {
        for lanes_turn in [r % 2 == 0, r % 2 == 1] {
            let t = Instant::now();
            std::hint::black_box(report(&sus[usize::from(!lanes_turn)]).await);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if lanes_turn { &mut lanes } else { &mut pool }.push(ms);
        }
    }
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (ms, pool_ms) = (median(&lanes), median(&pool));
    let paired: Vec<f64> = lanes.iter().zip(&pool).map(|(a, b)| a / b).collect();
    b.add_value(
        ROW_10000,
        ms,
        "ms",
        Some(GOAL_10000),
        &format!(
            "median of {} (min {:.0}); {} schemas, newest first, default batching; without \
             report lanes {pool_ms:.0} ms (min {:.0}), lanes/pool {:.3} (paired {:.3})",
            lanes.len(),
            min(&lanes),
            w.ids.len(),
            min(&pool),
            ms / pool_ms,
            median(&paired),
        ),
    );
    b.add_detail(format!("{ROW_10000}.pool_ms"), pool_ms, "ms");
    b.add_detail(format!("{ROW_10000}.vs_pool"), ms / pool_ms, "ratio");
    b.add_detail(
        format!("{ROW_10000}.vs_pool.paired"),
        median(&paired),
        "ratio",
    );
}

/// What the naive statement returns: the tenant and the spin.
type NaiveRow = (Uuid, Uuid, Uuid, i32, Option<String>, OffsetDateTime);

pub async fn run(b: &mut Bench, w: &World) {
    let su = w
        .tenancy
        .superuser("bench", "report rows of issue 5")
        .await
        .expect("superuser");
    let mut conn = PgConnection::connect(&w.url).await.expect("connect");
    let rounds = if b.cfg.quick { 3 } else { 15 };
    for &(schemas, newest, longest) in ROWS {
        let schemas = schemas.min(w.ids.len());
        for (name, by_duration) in [(newest, false), (longest, true)] {
            if !b.wants(name) {
                continue;
            }
            let goal = (schemas == 200).then_some(GOAL_200);
            one(
                b,
                w,
                &su,
                &mut conn,
                name,
                schemas,
                by_duration,
                rounds,
                goal,
            )
            .await;
        }
    }
}

/// One row: `rounds` alternating rounds (report then naive, naive then report ...) after
/// unrecorded runs of each: the first checks that both return the same rows; the report runs
/// five times, so that the pool's connections have prepared its statements (reports over up to
/// 256 schemas keep them), as they have in a process that reports repeatedly.
#[allow(clippy::too_many_arguments)]
async fn one(
    b: &mut Bench,
    w: &World,
    su: &Superuser,
    conn: &mut PgConnection,
    name: &str,
    schemas: usize,
    by_duration: bool,
    rounds: usize,
    goal: Option<Goal>,
) {
    let ids = &w.ids[..schemas];
    let report = async || {
        let order = if by_duration {
            Spin::DURATION.desc()
        } else {
            Spin::CREATED_AT.desc()
        };
        Spin::repo()
            .report()
            .tenants(ids)
            .filter(Spin::DURATION.gt(120))
            .order_by(order)
            .limit(100)
            .fetch_all(su)
            .await
            .expect("report")
    };
    let branches: Vec<String> = w.schemas[..schemas]
        .iter()
        .map(|s| {
            format!(
                "SELECT tenant_id, id, spinner_id, duration, note, created_at FROM \"{s}\".spins"
            )
        })
        .collect();
    let column = if by_duration {
        "duration"
    } else {
        "created_at"
    };
    let naive_sql = format!(
        "SELECT tenant_id, id, spinner_id, duration, note, created_at FROM ({}) s \
         WHERE duration > 120 ORDER BY {column} DESC, tenant_id, id LIMIT 100",
        branches.join(" UNION ALL ")
    );
    let mut naive = async || -> Vec<NaiveRow> {
        sqlx::query_as(sqlx::AssertSqlSafe(naive_sql.clone()))
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .expect("naive UNION ALL")
    };

    let ours: Vec<(Uuid, Uuid)> = report()
        .await
        .iter()
        .map(|(t, s)| (t.as_uuid(), s.id))
        .collect();
    let theirs: Vec<(Uuid, Uuid)> = naive().await.iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(ours.len(), 100, "{name}: the report found 100 spins");
    assert_eq!(
        ours, theirs,
        "{name}: the report and the naive UNION ALL differ"
    );

    let (mut sr, mut sn) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        for report_turn in [r % 2 == 0, r % 2 == 1] {
            let t = Instant::now();
            if report_turn {
                std::hint::black_box(report().await);
                sr.push(t.elapsed().as_secs_f64() * 1e3);
            } else {
                std::hint::black_box(naive().await);
                sn.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let (ms, naive_ms) = (median(&sr), median(&sn));
    let paired: Vec<f64> = sr.iter().zip(&sn).map(|(a, b)| a / b).collect();
    let (lo, hi) = (
        sr.iter().copied().fold(f64::INFINITY, f64::min),
        sr.iter().copied().fold(0.0, f64::max),
    );
    b.add_value(
        name,
        ms,
        "ms",
        goal,
        &format!(
            "median of {rounds} (min {lo:.1}, max {hi:.1}); {schemas} schemas x {} spins, {} \
             first; naive UNION ALL {naive_ms:.1} ms, report/naive {:.3} (paired {:.3})",
            w.spins,
            if by_duration { "longest" } else { "newest" },
            ms / naive_ms,
            median(&paired),
        ),
    );
    b.add_detail(format!("{name}.naive_ms"), naive_ms, "ms");
    b.add_detail(format!("{name}.vs_naive"), ms / naive_ms, "ratio");
    b.add_detail(format!("{name}.vs_naive.paired"), median(&paired), "ratio");
}
