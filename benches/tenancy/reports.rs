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

/// `ROW_10000`: the newest 100 long spins over every own-schema tenant, a few rounds. No naive
/// `UNION ALL` beside it: one statement over 10,000 schemas needs a lock per table and index,
/// more than the server's lock table holds by default.
pub async fn run_all(b: &mut Bench, w: &World) {
    if !b.wants(ROW_10000) {
        return;
    }
    let su = w
        .tenancy
        .superuser("bench", "report over every tenant")
        .await
        .expect("superuser");
    let report = async || {
        Spin::repo()
            .report()
            .tenants(&w.ids)
            .filter(Spin::DURATION.gt(120))
            .order_by(Spin::CREATED_AT.desc())
            .limit(100)
            .fetch_all(&su)
            .await
            .expect("report over every tenant")
    };
    assert_eq!(report().await.len(), 100, "the report found 100 spins");
    let mut ms = Vec::new();
    for _ in 0..if b.cfg.quick { 2 } else { 5 } {
        let t = Instant::now();
        std::hint::black_box(report().await);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let lo = ms.iter().copied().fold(f64::INFINITY, f64::min);
    b.add_value(
        ROW_10000,
        median(&ms),
        "ms",
        None,
        &format!(
            "median of {} (min {lo:.0}); {} schemas, newest first, default batching",
            ms.len(),
            w.ids.len()
        ),
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
