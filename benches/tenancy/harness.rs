//! The measuring: configuration from the environment, side-by-side comparisons in interleaved
//! rounds, the results table and `target/bench/results.json`.
//!
//! A row is one name in the JSON. A comparison row (`compare`, `add_ratio`) records the ratio
//! of the contenders' median throughputs (or times) under its name, the median of the
//! per-round ratios under `<name>.paired`, each contender's median under `<name>.<label>` and,
//! for operations, the client's CPU time per operation under `<name>.<label>_client_cpu` and,
//! with the server on this machine, its processes' under `<name>.<label>_server_cpu` and the
//! 8 KiB pages they read from the operating system (files not in PostgreSQL's buffers) under
//! `<name>.<label>_server_reads`; the interquartile range of the per-round ratios under `<name>.paired_q1` and `<name>.paired_q3`.
//! A row with a goal records it as `<name>.goal_min` or `<name>.goal_max`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Whether an environment variable is set to a true value (`1`, `true`, `yes`); `None` if unset.
pub fn env_flag(name: &str) -> Option<bool> {
    let v = std::env::var(name).ok()?;
    Some(matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    ))
}

/// What the run measures and how hard.
pub struct Config {
    /// `TENANCY_BENCH_QUICK=1`: fewer, shorter rounds and less data.
    pub quick: bool,
    /// Recorded rounds per contender.
    pub rounds: usize,
    /// Target length of one contender's round, in seconds.
    pub round_secs: f64,
    /// Substrings from the command line (`cargo bench --bench tenancy -- lookup insert`): only
    /// rows whose name contains one of them run. Empty: every row.
    pub filter: Vec<String>,
}

impl Config {
    pub fn from_env() -> Self {
        let quick = env_flag("TENANCY_BENCH_QUICK").unwrap_or(false);
        // `cargo bench` passes `--bench` to harness-less targets: ignore flags.
        let filter = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .collect();
        let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok());
        Self {
            quick,
            rounds: number("TENANCY_BENCH_ROUNDS")
                .map_or(if quick { 4 } else { 40 }, |n| n.max(1.0) as usize),
            round_secs: number("TENANCY_BENCH_ROUND_SECS").unwrap_or(if quick {
                0.03
            } else {
                0.1
            }),
            filter,
        }
    }
}

/// A goal from issue 5, checked in the table.
#[derive(Clone, Copy)]
pub enum Goal {
    AtLeast(f64),
    AtMost(f64),
}

impl Goal {
    fn met(self, v: f64) -> bool {
        match self {
            Goal::AtLeast(g) => v >= g,
            Goal::AtMost(g) => v <= g,
        }
    }

    fn show(self) -> String {
        match self {
            Goal::AtLeast(g) => format!(">= {g}"),
            Goal::AtMost(g) => format!("<= {g}"),
        }
    }
}

/// A side-by-side row: `a` divided by `b`.
pub struct Compare {
    pub name: &'static str,
    /// Label of the measured contender (the numerator), e.g. `repo`.
    pub a: &'static str,
    /// Label of the reference (the denominator), e.g. `raw`.
    pub b: &'static str,
    /// Concurrent tasks sharing the operations of a round.
    pub concurrency: usize,
    pub goal: Option<Goal>,
}

/// What a comparison's samples are.
#[derive(Clone, Copy)]
pub enum Samples {
    /// Throughput per round; the ratio is a's median over b's.
    OpsPerSec,
    /// Duration per round, in seconds; the ratio is a's median over b's.
    Seconds,
}

impl Samples {
    fn unit(self) -> &'static str {
        match self {
            Samples::OpsPerSec => "ops/s",
            Samples::Seconds => "s",
        }
    }

    fn show(self, v: f64) -> String {
        match self {
            Samples::OpsPerSec => format!("{v:.0} ops/s"),
            Samples::Seconds => format!("{v:.2} s"),
        }
    }
}

struct Record {
    name: String,
    value: f64,
    unit: &'static str,
}

struct Line {
    name: String,
    value: String,
    goal: String,
    detail: String,
}

/// The run: rows measured so far, printed as they come and once more as a table at the end.
pub struct Bench {
    pub cfg: Config,
    records: Vec<Record>,
    lines: Vec<Line>,
}

impl Bench {
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            records: Vec::new(),
            lines: Vec::new(),
        }
    }

    /// Whether the command line selects this row.
    pub fn wants(&self, name: &str) -> bool {
        self.cfg.filter.is_empty() || self.cfg.filter.iter().any(|f| name.contains(f.as_str()))
    }

    /// Notes a row that did not run, and why.
    pub fn skip(&mut self, name: &str, why: &str) {
        eprintln!("{name:<40} skipped: {why}");
        self.lines.push(Line {
            name: name.to_owned(),
            value: "-".into(),
            goal: String::new(),
            detail: format!("skipped: {why}"),
        });
    }

    /// Measures `a` against `b` side by side: after a calibration and a warm-up, `rounds` rounds
    /// of the same `n` operations each, alternating which contender goes first, so that whatever
    /// else the machine does hits both alike. Each operation gets its index; both contenders see
    /// the same indices in a round.
    ///
    /// Returns the row's ratio, or `None` if the command line does not select it.
    pub async fn compare<A, FA, B, FB>(&mut self, spec: Compare, a: A, b: B) -> Option<f64>
    where
        A: Fn(u64) -> FA + Clone + Send + Sync + 'static,
        FA: Future<Output = ()> + Send + 'static,
        B: Fn(u64) -> FB + Clone + Send + Sync + 'static,
        FB: Future<Output = ()> + Send + 'static,
    {
        if !self.wants(spec.name) {
            return None;
        }
        let c = spec.concurrency;
        let mut next = 0;
        // Calibrate: a round of each contender should last about `round_secs`. Grow the probe
        // until both contenders' probes last half of that, so that start-up costs and one slow
        // operation do not skew the estimate.
        let mut n = 4 * c as u64;
        let n = loop {
            let (ta, _) = round(&a, next, n, c).await;
            let (tb, _) = round(&b, next, n, c).await;
            next += n;
            let secs = n as f64 / ta + n as f64 / tb;
            if secs >= self.cfg.round_secs / 2.0 {
                let rate = 2.0 * n as f64 / secs;
                break ((rate * self.cfg.round_secs) as u64)
                    .max(n)
                    .next_multiple_of(c as u64);
            }
            n *= 4;
        };
        // Warm up at that size, not recorded; if this larger sample runs faster (a probe of a
        // few writes can catch one slow commit), lengthen the rounds to match.
        let (ta, _) = round(&a, next, n, c).await;
        let (tb, _) = round(&b, next, n, c).await;
        next += n;
        let rate = 2.0 / (1.0 / ta + 1.0 / tb);
        let n = ((rate * self.cfg.round_secs) as u64)
            .max(n)
            .next_multiple_of(c as u64);
        let (mut sa, mut sb) = (Vec::new(), Vec::new());
        let (mut ca, mut cb) = (Vec::new(), Vec::new());
        for r in 0..self.cfg.rounds {
            // A then B in even rounds, B then A in odd ones.
            for is_a in [r % 2 == 0, r % 2 == 1] {
                let (ops, cpu) = if is_a {
                    round(&a, next, n, c).await
                } else {
                    round(&b, next, n, c).await
                };
                let (s, cs) = if is_a {
                    (&mut sa, &mut ca)
                } else {
                    (&mut sb, &mut cb)
                };
                s.push(ops);
                cs.extend(cpu);
            }
            next += n;
        }
        let mut detail = format!("{n} ops/round, {c} task{}", if c == 1 { "" } else { "s" });
        // CPU time per operation, of this process (the client) and of the server's processes:
        // what each side costs, which the load of the machine moves far less than throughput.
        // Where both share the machine's cores, their sum is what a saturated run divides.
        let cpu = (ca.len() == sa.len() && cb.len() == sb.len()).then(|| {
            let side = |v: &[Use], f: fn(&Use) -> Option<f64>| {
                let v: Option<Vec<f64>> = v.iter().map(f).collect();
                v.map(|v| median(&v))
            };
            let parts: [(&str, Measure); 3] = [
                ("client_cpu", |x| Some(x.client_us)),
                ("server_cpu", |x| Some(x.server_us)),
                ("server_reads", |x| x.server_reads),
            ];
            parts
                .into_iter()
                .filter_map(|(what, f)| Some((what, side(&ca, f)?, side(&cb, f)?)))
                .collect::<Vec<_>>()
        });
        for (what, ua, ub) in cpu.iter().flatten() {
            detail.push_str(&match *what {
                "server_reads" => format!(
                    "; server pages read {} {ua:.2}/op, {} {ub:.2}/op",
                    spec.a, spec.b
                ),
                _ => format!(
                    "; {} CPU {} {ua:.1} us/op, {} {ub:.1} us/op",
                    what.trim_end_matches("_cpu"),
                    spec.a,
                    spec.b
                ),
            });
        }
        let ratio = self.add_ratio(&spec, &sa, &sb, Samples::OpsPerSec, &detail);
        for (what, ua, ub) in cpu.iter().flatten() {
            for (label, v) in [(spec.a, *ua), (spec.b, *ub)] {
                self.records.push(Record {
                    name: format!("{}.{label}_{what}", spec.name),
                    value: v,
                    unit: if *what == "server_reads" {
                        "pages/op"
                    } else {
                        "us/op"
                    },
                });
            }
        }
        Some(ratio)
    }

    /// Records a comparison from per-round samples (see [`Samples`]), taken in alternation;
    /// returns the ratio of the medians.
    pub fn add_ratio(
        &mut self,
        spec: &Compare,
        sa: &[f64],
        sb: &[f64],
        samples: Samples,
        detail: &str,
    ) -> f64 {
        let (ma, mb) = (median(sa), median(sb));
        let ratio = ma / mb;
        // How much the machine moved under the pairs of rounds: the middle half of the
        // per-round ratios.
        let per_round: Vec<f64> = sa.iter().zip(sb).map(|(x, y)| x / y).collect();
        let (lo, hi) = (quantile(&per_round, 0.25), quantile(&per_round, 0.75));
        let goal = spec.goal.map_or_else(String::new, |g| {
            format!(
                "{} {}",
                g.show(),
                if g.met(ratio) { "met" } else { "MISSED" }
            )
        });
        let detail = format!(
            "{} {}, {} {}; per-round ratio median {:.3}, IQR {lo:.3}..{hi:.3} ({} x {detail})",
            spec.a,
            samples.show(ma),
            spec.b,
            samples.show(mb),
            median(&per_round),
            sa.len(),
        );
        eprintln!("{:<40} {ratio:>7.3}  {goal:<14} {detail}", spec.name);
        self.lines.push(Line {
            name: spec.name.to_owned(),
            value: format!("{ratio:.3}"),
            goal,
            detail,
        });
        self.records.push(Record {
            name: spec.name.to_owned(),
            value: ratio,
            unit: "ratio",
        });
        self.records.push(Record {
            name: format!("{}.paired", spec.name),
            value: median(&per_round),
            unit: "ratio",
        });
        // The spread and the goal, for the charts (`charts.rs`).
        for (what, v) in [("paired_q1", lo), ("paired_q3", hi)] {
            self.records.push(Record {
                name: format!("{}.{what}", spec.name),
                value: v,
                unit: "ratio",
            });
        }
        self.push_goal(spec.name, spec.goal, "ratio");
        for (label, v) in [(spec.a, ma), (spec.b, mb)] {
            self.records.push(Record {
                name: format!("{}.{label}", spec.name),
                value: v,
                unit: samples.unit(),
            });
        }
        ratio
    }

    /// Records a row that is an absolute figure (milliseconds per tenant, MiB) rather than a
    /// ratio, checked against its goal in the table.
    pub fn add_value(
        &mut self,
        name: &str,
        value: f64,
        unit: &'static str,
        goal: Option<Goal>,
        detail: &str,
    ) {
        self.push_goal(name, goal, unit);
        let goal = goal.map_or_else(String::new, |g| {
            format!(
                "{} {}",
                g.show(),
                if g.met(value) { "met" } else { "MISSED" }
            )
        });
        let shown = format!("{value:.2}");
        let detail = format!("{unit}; {detail}");
        eprintln!("{name:<40} {shown:>7}  {goal:<14} {detail}");
        self.lines.push(Line {
            name: name.to_owned(),
            value: shown,
            goal,
            detail,
        });
        self.records.push(Record {
            name: name.to_owned(),
            value,
            unit,
        });
    }

    /// Records a row's goal as `<row>.goal_min` (at least) or `<row>.goal_max` (at most).
    fn push_goal(&mut self, name: &str, goal: Option<Goal>, unit: &'static str) {
        let (what, value) = match goal {
            Some(Goal::AtLeast(g)) => ("goal_min", g),
            Some(Goal::AtMost(g)) => ("goal_max", g),
            None => return,
        };
        self.records.push(Record {
            name: format!("{name}.{what}"),
            value,
            unit,
        });
    }

    /// Records a figure that belongs to a row (`<row>.<what>`) in the JSON only.
    pub fn add_detail(&mut self, name: String, value: f64, unit: &'static str) {
        self.records.push(Record { name, value, unit });
    }

    /// Prints the table and writes `target/bench/results.json`.
    pub fn finish(self) {
        let out_dir = bench_dir();
        std::fs::create_dir_all(&out_dir).expect("create target/bench");
        // One object a line, keys in the documented order (serde_json's maps sort them).
        let objects: Vec<String> = self
            .records
            .iter()
            .map(|r| {
                format!(
                    "  {{\"name\": {}, \"value\": {}, \"unit\": {}}}",
                    serde_json::to_string(&r.name).expect("a JSON string"),
                    serde_json::to_string(&r.value).expect("a JSON number"),
                    serde_json::to_string(&r.unit).expect("a JSON string"),
                )
            })
            .collect();
        let path = out_dir.join("results.json");
        std::fs::write(&path, format!("[\n{}\n]\n", objects.join(",\n")))
            .expect("write results.json");

        println!();
        println!("{:<40} {:>7}  {:<14} detail", "row", "value", "goal");
        println!("{}", "-".repeat(110));
        for l in &self.lines {
            println!("{:<40} {:>7}  {:<14} {}", l.name, l.value, l.goal, l.detail);
        }
        println!();
        println!("wrote {}", path.display());
        // Charts of this run beside it; `TENANCY_BENCH_CHARTS_FROM` redraws committed ones.
        match crate::charts::draw_file(&path, &out_dir.join("charts")) {
            Ok(written) => {
                for chart in written {
                    println!("wrote {}", chart.display());
                }
            }
            Err(e) => eprintln!("charts not drawn: {e}"),
        }
    }
}

/// `target/bench` of the workspace.
pub fn bench_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench")
}

/// Reads one figure out of a round's [`Use`], if the round has it.
type Measure = fn(&Use) -> Option<f64>;

/// What one operation cost each side, on average over a round.
#[derive(Clone, Copy)]
struct Use {
    /// This process's CPU time, microseconds.
    client_us: f64,
    /// The server's processes' CPU time, microseconds.
    server_us: f64,
    /// 8 KiB pages the server's processes read from the operating system, if known.
    server_reads: Option<f64>,
}

/// Runs operations `start..start + n` on `tasks` spawned tasks (operation `i` on task
/// `i % tasks`); returns operations per second and, where the platform tells, what an
/// operation cost the client and the server.
async fn round<F, Fut>(op: &F, start: u64, n: u64, tasks: usize) -> (f64, Option<Use>)
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let cpu = process_cpu_ns().zip(server_use());
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    // Each task takes the next operation when it is free, as a server's workers take the next
    // request: split in fixed shares instead, a task whose operations queue (on a busy
    // connection lane, say) would hold the round open while the others idle.
    let taken = Arc::new(AtomicU64::new(0));
    for _ in 0..tasks {
        let (op, taken) = (op.clone(), taken.clone());
        set.spawn(async move {
            loop {
                let i = taken.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                op(start + i).await;
            }
        });
    }
    while let Some(done) = set.join_next().await {
        if let Err(e) = done {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    let ops = n as f64 / t.elapsed().as_secs_f64();
    let per_op = |before: u64, after: u64| after.saturating_sub(before) as f64 / n as f64;
    let cpu = cpu.zip(process_cpu_ns().zip(server_use())).map(
        |((client, server), (client2, server2))| Use {
            client_us: per_op(client, client2) / 1e3,
            server_us: per_op(server.cpu_ns, server2.cpu_ns) / 1e3,
            server_reads: server
                .read_bytes
                .zip(server2.read_bytes)
                .map(|(before, after)| per_op(before, after) / 8192.0),
        },
    );
    (ops, cpu)
}

/// What the PostgreSQL server's processes on this machine have used so far.
#[derive(Clone, Copy)]
struct ServerUse {
    /// CPU time run, nanoseconds.
    cpu_ns: u64,
    /// Bytes read with `read`/`pread` (`rchar` of `/proc/<pid>/io`): data files outside
    /// PostgreSQL's buffers, read through the OS page cache. The client's socket is read with
    /// `recv`, which this does not count. `None` if a process's was not readable (it is the
    /// server user's and root's only).
    read_bytes: Option<u64>,
}

/// What every process named `postgres` on this machine has used (backends, and the background
/// ones, whose share is small beside a round's statements); `None` when none is visible (a
/// server elsewhere).
fn server_use() -> Option<ServerUse> {
    let mut total = ServerUse {
        cpu_ns: 0,
        read_bytes: Some(0),
    };
    let mut seen = false;
    for entry in std::fs::read_dir("/proc").ok()? {
        let Ok(entry) = entry else { continue };
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        // A backend may exit between the listing and the reads: count what can be read.
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != "postgres" {
            continue;
        }
        if let Some(ns) = std::fs::read_to_string(entry.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            total.cpu_ns += ns;
            seen = true;
        }
        let bytes = std::fs::read_to_string(entry.path().join("io"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("rchar:"))?
                    .trim()
                    .parse::<u64>()
                    .ok()
            });
        total.read_bytes = total.read_bytes.zip(bytes).map(|(t, b)| t + b);
    }
    seen.then_some(total)
}

/// CPU time this process's threads have run, in nanoseconds (Linux: the first field of each
/// thread's `schedstat`); `None` elsewhere.
fn process_cpu_ns() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let task = task.ok()?;
        // A thread may end between the listing and the read: count what can be read.
        if let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) {
            total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

pub fn median(xs: &[f64]) -> f64 {
    quantile(xs, 0.5)
}

/// The `q` quantile, interpolated between the nearest samples.
fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    match v.get(i + 1) {
        Some(next) => v[i] + (next - v[i]) * frac,
        None => v[i],
    }
}

/// A deterministic spread of operation indices over `len` items (splitmix64), so that
/// consecutive operations touch unrelated rows and both contenders touch the same ones.
pub fn pick(i: u64, len: usize) -> usize {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % len as u64) as usize
}
