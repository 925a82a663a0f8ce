//! Charts of a run, drawn as SVG by hand from `results.json` (no plotting crate: two charts of
//! lines, dots and text do not need one).
//!
//! - `ratios.svg`: every side-by-side ratio (unit `ratio`), a dot at the figure, a bar over the
//!   interquartile range of the per-round ratios, and the row's goal as a mark (green where
//!   met, orange where missed).
//! - `tenants.svg`: the own-schema rows against the number of tenants (log scale): lookup ratio
//!   to the shared-table floor, and backend memory per connection, each with its goal line.
//!
//! Rows are read by the names the harness gives them (`harness.rs`): `<row>`,
//! `<row>.paired_q1`, `<row>.paired_q3`, `<row>.goal_min`, `<row>.goal_max`; a row's tenant
//! count is the number after `schema` in its name.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One `{"name", "value", "unit"}` of `results.json`.
struct Record {
    name: String,
    value: f64,
    unit: String,
}

/// Reads `results` and writes the charts into `out_dir`; returns the files written.
pub fn draw_file(results: &Path, out_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let text = std::fs::read_to_string(results)
        .map_err(|e| format!("cannot read {}: {e}", results.display()))?;
    let records = parse(&text).map_err(|e| format!("{}: {e}", results.display()))?;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let mut written = Vec::new();
    for (file, svg) in [
        ("ratios.svg", ratios(&records)),
        ("tenants.svg", tenants(&records)),
    ] {
        let Some(svg) = svg else { continue };
        let path = out_dir.join(file);
        std::fs::write(&path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn parse(text: &str) -> Result<Vec<Record>, String> {
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("not a list of records: {e}"))?;
    rows.iter()
        .map(|r| {
            let field = |k: &str| r.get(k).ok_or_else(|| format!("a record without {k}: {r}"));
            Ok(Record {
                name: field("name")?
                    .as_str()
                    .ok_or("a name that is not a string")?
                    .to_owned(),
                value: field("value")?
                    .as_f64()
                    .ok_or("a value that is not a number")?,
                unit: field("unit")?
                    .as_str()
                    .ok_or("a unit that is not a string")?
                    .to_owned(),
            })
        })
        .collect()
}

/// A row with what the charts show of it.
struct Row<'a> {
    name: &'a str,
    value: f64,
    unit: &'a str,
    spread: Option<(f64, f64)>,
    goal: Option<Goal>,
}

#[derive(Clone, Copy)]
enum Goal {
    Min(f64),
    Max(f64),
}

impl Goal {
    fn value(self) -> f64 {
        match self {
            Goal::Min(g) | Goal::Max(g) => g,
        }
    }

    fn met(self, v: f64) -> bool {
        match self {
            Goal::Min(g) => v >= g,
            Goal::Max(g) => v <= g,
        }
    }

    fn label(self) -> String {
        match self {
            Goal::Min(g) => format!("≥ {g}"),
            Goal::Max(g) => format!("≤ {g}"),
        }
    }
}

/// The rows (names without a `.`), in the file's order, with their spread and goal.
fn rows(records: &[Record]) -> Vec<Row<'_>> {
    let details: BTreeMap<&str, f64> = records
        .iter()
        .filter(|r| r.name.contains('.'))
        .map(|r| (r.name.as_str(), r.value))
        .collect();
    let detail = |row: &str, what: &str| details.get(format!("{row}.{what}").as_str()).copied();
    records
        .iter()
        .filter(|r| !r.name.contains('.'))
        .map(|r| Row {
            name: &r.name,
            value: r.value,
            unit: &r.unit,
            spread: detail(&r.name, "paired_q1").zip(detail(&r.name, "paired_q3")),
            goal: detail(&r.name, "goal_min")
                .map(Goal::Min)
                .or_else(|| detail(&r.name, "goal_max").map(Goal::Max)),
        })
        .collect()
}

const MET: &str = "#2e8b57";
const MISSED: &str = "#e07020";
const NEUTRAL: &str = "#4a6fa5";
const GRID: &str = "#dddddd";
const FONT: &str =
    "font-family=\"ui-monospace, SFMono-Regular, Menlo, monospace\" font-size=\"11\"";

fn colour(row: &Row<'_>) -> &'static str {
    match row.goal {
        Some(g) if g.met(row.value) => MET,
        Some(_) => MISSED,
        None => NEUTRAL,
    }
}

/// Text safe inside SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn svg_open(out: &mut String, width: f64, height: f64, title: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" {FONT}>\n<title>{}</title>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        esc(title),
        esc(title)
    );
}

/// `ratios.svg`: one line per ratio row.
fn ratios(records: &[Record]) -> Option<String> {
    let rows: Vec<Row<'_>> = rows(records)
        .into_iter()
        .filter(|r| r.unit == "ratio")
        .collect();
    if rows.is_empty() {
        return None;
    }
    // The scale ends past 1 (the floor) and the goals; a spread beyond it is cut and marked.
    let top = rows
        .iter()
        .flat_map(|r| [r.value, r.goal.map_or(0.0, Goal::value)])
        .fold(1.2_f64, f64::max)
        .min(2.0);
    let top = (top * 5.0).ceil() / 5.0;
    let (label_w, plot_w, value_w, line_h) = (390.0, 330.0, 60.0, 20.0);
    let (x0, y0) = (label_w, 50.0);
    let width = label_w + plot_w + value_w;
    let height = y0 + line_h * rows.len() as f64 + 36.0;
    let x = |v: f64| x0 + plot_w * v.clamp(0.0, top) / top;
    let mut out = String::new();
    svg_open(
        &mut out,
        width,
        height,
        "Side by side: first contender over second (1.0 = the floor)",
    );
    // Grid every 0.2, the floor darker.
    let mut tick = 0.0;
    while tick <= top + 1e-9 {
        let (stroke, w) = if (tick - 1.0_f64).abs() < 1e-9 {
            ("#888888", 1.5)
        } else {
            (GRID, 1.0)
        };
        let _ = writeln!(
            out,
            "<line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{0:.1}\" y2=\"{2:.1}\" stroke=\"{stroke}\" stroke-width=\"{w}\"/>\
             <text x=\"{0:.1}\" y=\"{3:.1}\" text-anchor=\"middle\" fill=\"#666\">{tick:.1}</text>",
            x(tick),
            y0 - 8.0,
            y0 + line_h * rows.len() as f64,
            y0 - 12.0,
        );
        tick += 0.2;
    }
    for (i, row) in rows.iter().enumerate() {
        let y = y0 + line_h * (i as f64 + 0.5);
        let c = colour(row);
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x0 - 8.0,
            y + 4.0,
            esc(row.name)
        );
        if let Some((lo, hi)) = row.spread {
            let _ = writeln!(
                out,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{c}\" \
                 stroke-opacity=\"0.35\" stroke-width=\"7\" stroke-linecap=\"round\"/>",
                x(lo),
                x(hi)
            );
            if hi > top {
                let _ = writeln!(
                    out,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{c}\">to {hi:.2} ›</text>",
                    x(top),
                    y - 5.0
                );
            }
        }
        if let Some(goal) = row.goal {
            let _ = writeln!(
                out,
                "<line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{0:.1}\" y2=\"{2:.1}\" stroke=\"#c0392b\" \
                 stroke-width=\"2\" stroke-dasharray=\"3,2\"><title>goal {3}</title></line>",
                x(goal.value()),
                y - line_h * 0.45,
                y + line_h * 0.45,
                esc(&goal.label())
            );
        }
        let _ = writeln!(
            out,
            "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4.5\" fill=\"{c}\"><title>{} {:.3}</title></circle>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{c}\">{:.3}</text>",
            x(row.value),
            esc(row.name),
            row.value,
            x0 + plot_w + 14.0,
            y + 4.0,
            row.value
        );
    }
    legend(
        &mut out,
        y0 + line_h * rows.len() as f64 + 22.0,
        &[
            ("dot", "ratio of the medians: met its goal", MET),
            ("dot", "missed its goal", MISSED),
            ("dot", "no goal", NEUTRAL),
            ("bar", "per-round ratios, middle half", NEUTRAL),
            ("goal", "goal", "#c0392b"),
        ],
    );
    out.push_str("</svg>\n");
    Some(out)
}

/// A row of legend entries at height `y`.
fn legend(out: &mut String, y: f64, entries: &[(&str, &str, &str)]) {
    let mut x = 14.0;
    for (mark, text, c) in entries {
        match *mark {
            "dot" => {
                let _ = write!(
                    out,
                    "<circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"4.5\" fill=\"{c}\"/>",
                    y - 4.0
                );
            }
            "bar" => {
                let _ = write!(
                    out,
                    "<line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{2:.1}\" y2=\"{1:.1}\" stroke=\"{c}\" \
                     stroke-opacity=\"0.35\" stroke-width=\"7\" stroke-linecap=\"round\"/>",
                    x - 6.0,
                    y - 4.0,
                    x + 6.0
                );
            }
            _ => {
                let _ = write!(
                    out,
                    "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{c}\" \
                     stroke-width=\"2\" stroke-dasharray=\"3,2\"/>",
                    y - 12.0,
                    y + 3.0
                );
            }
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{y:.1}\">{}</text>",
            x + 10.0,
            esc(text)
        );
        x += 30.0 + 6.6 * text.chars().count() as f64;
    }
}

/// A row's tenant count (the number after `schema`) and its series (the name without it).
fn by_tenants(name: &str) -> Option<(f64, String)> {
    let at = name.find("schema")? + "schema".len();
    let digits = name[at..].bytes().take_while(u8::is_ascii_digit).count();
    let n: f64 = name[at..at + digits].parse().ok()?;
    // A cache sized to the tenant count (`_cap1100`, `_cap10100`) is one series.
    let rest: String = name[at + digits..]
        .split('_')
        .map(|part| match part.strip_prefix("cap") {
            Some(num) if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) => "cap",
            _ => part,
        })
        .collect::<Vec<_>>()
        .join("_");
    Some((n, format!("{}schema{rest}", &name[..at - "schema".len()])))
}

/// What a series is, in words; unknown series keep their name.
fn series_label(series: &str) -> String {
    match series {
        "lookup_schema_vs_shared_raw" => "one connection, statement cache 1,024".into(),
        "lookup_schema_vs_shared_raw_cap" => "cache holding every tenant".into(),
        "lookup_schema_vs_shared_same_data_raw" => "floor holding the same rows".into(),
        "lookup_schema_lanes16_c16_vs_shared_raw_c16" => "16 lanes of 1 vs a pool of 16".into(),
        "lookup_schema_lanes8x2_c16_vs_shared_raw_c16" => "8 lanes of 2 vs a pool of 16".into(),
        "backend_mib_per_conn_schema" => "one connection, cache 1,024".into(),
        "backend_mib_per_conn_schema_cap" => "cache holding every tenant".into(),
        "backend_mib_per_conn_schema_lanes16" => "largest of 16 lanes".into(),
        "backend_mib_per_conn_schema_lanes8x2" => "largest of 8 lanes of 2".into(),
        other => other.into(),
    }
}

/// The same kind of series has the same colour in both panels.
fn series_colour(series: &str) -> &'static str {
    if series.contains("lanes8x2") {
        "#27ae60"
    } else if series.contains("lanes") {
        "#16a085"
    } else if series.ends_with("_cap") {
        "#8e44ad"
    } else if series.contains("same_data") {
        "#d35400"
    } else if series.starts_with("lookup_schema_vs") || series == "backend_mib_per_conn_schema" {
        "#4a6fa5"
    } else {
        "#7f8c8d"
    }
}

/// One line of a panel: the rows of one kind, by tenant count.
struct Series {
    /// The rows' name with the tenant count taken out (`lookup_schema_vs_shared_raw`).
    key: String,
    /// (tenants, value), by tenant count.
    points: Vec<(f64, f64)>,
    goal: Option<Goal>,
}

/// `tenants.svg`: lookup ratio and backend memory against the number of own-schema tenants.
fn tenants(records: &[Record]) -> Option<String> {
    let rows = rows(records);
    let panel = |prefix: &str| -> Vec<Series> {
        let mut series: BTreeMap<String, Series> = BTreeMap::new();
        for row in rows.iter().filter(|r| r.name.starts_with(prefix)) {
            if let Some((n, key)) = by_tenants(row.name) {
                let entry = series.entry(key.clone()).or_insert_with(|| Series {
                    key,
                    points: Vec::new(),
                    goal: None,
                });
                entry.points.push((n, row.value));
                entry.goal = entry.goal.or(row.goal);
            }
        }
        series
            .into_values()
            .map(|mut s| {
                s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
                s
            })
            .collect()
    };
    let lookups = panel("lookup_schema");
    let memory = panel("backend_mib_per_conn_schema");
    if lookups.is_empty() && memory.is_empty() {
        return None;
    }
    // One tenant axis for both panels, a decade either side of the data.
    let counts: Vec<f64> = lookups
        .iter()
        .chain(&memory)
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let lo = counts
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .log10()
        .floor();
    let hi = counts.iter().copied().fold(1.0, f64::max).log10().ceil();
    let decades = (lo, if hi > lo { hi } else { lo + 1.0 });
    let (pw, ph, gap) = (340.0, 240.0, 130.0);
    let width = 60.0 + 2.0 * pw + gap + 60.0;
    let legend_rows = lookups.len().max(memory.len()) as f64;
    let height = 60.0 + ph + 56.0 + 16.0 * legend_rows + 10.0;
    let mut out = String::new();
    svg_open(
        &mut out,
        width,
        height,
        "Own-schema tenants: what the count costs",
    );
    plot(
        &mut out,
        (60.0, 60.0, pw, ph),
        decades,
        "lookup ratio to the shared-table floor",
        &lookups,
        false,
    );
    plot(
        &mut out,
        (60.0 + pw + gap, 60.0, pw, ph),
        decades,
        "backend memory per connection (MiB, log scale)",
        &memory,
        true,
    );
    out.push_str("</svg>\n");
    Some(out)
}

/// One panel: x the tenant count on a log scale, y from zero; goals as dashed lines.
fn plot(
    out: &mut String,
    (left, top, w, h): (f64, f64, f64, f64),
    (xmin, xmax): (f64, f64),
    title: &str,
    series: &[Series],
    log_y: bool,
) {
    let _ = writeln!(
        out,
        "<text x=\"{left:.1}\" y=\"{:.1}\" font-weight=\"bold\">{}</text>",
        top - 12.0,
        esc(title)
    );
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1).chain(s.goal.map(Goal::value)))
        .collect();
    if ys.is_empty() {
        return;
    }
    let px = |n: f64| left + w * (n.log10() - xmin) / (xmax - xmin);
    // Memory spans decades: log scale from 10 MiB; ratios: linear from 0 to past 1.
    let ymax_data = ys.iter().copied().fold(0.0, f64::max);
    let (ylo, yhi) = if log_y {
        (1.0, (ymax_data * 1.2).log10().ceil())
    } else {
        (0.0, ((ymax_data.max(1.0) * 1.1) * 5.0).ceil() / 5.0)
    };
    let py = |v: f64| {
        let t = if log_y {
            (v.max(10.0).log10() - ylo) / (yhi - ylo)
        } else {
            (v - ylo) / (yhi - ylo)
        };
        top + h - h * t
    };
    // Axes and grid.
    let mut decade = xmin;
    while decade <= xmax + 1e-9 {
        let n = 10f64.powf(decade);
        let _ = writeln!(
            out,
            "<line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{0:.1}\" y2=\"{2:.1}\" stroke=\"{GRID}\"/>\
             <text x=\"{0:.1}\" y=\"{3:.1}\" text-anchor=\"middle\" fill=\"#666\">{4}</text>",
            px(n),
            top,
            top + h,
            top + h + 16.0,
            thousands(n)
        );
        decade += 1.0;
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#666\">tenants (log scale)</text>",
        left + w / 2.0,
        top + h + 32.0
    );
    let yticks: Vec<f64> = if log_y {
        (ylo as i32..=yhi as i32)
            .flat_map(|d| {
                let base = 10f64.powi(d);
                [base, 2.5 * base, 5.0 * base]
            })
            .filter(|v| *v <= 10f64.powf(yhi) + 1e-9)
            .collect()
    } else {
        (0..=((yhi / 0.2).round() as i32))
            .map(|i| f64::from(i) * 0.2)
            .collect()
    };
    for v in yticks {
        let _ = writeln!(
            out,
            "<line x1=\"{left:.1}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"{GRID}\"/>\
             <text x=\"{2:.1}\" y=\"{3:.1}\" text-anchor=\"end\" fill=\"#666\">{4}</text>",
            py(v),
            left + w,
            left - 6.0,
            py(v) + 4.0,
            if log_y {
                thousands(v)
            } else {
                format!("{v:.1}")
            }
        );
    }
    // One goal line per distinct goal.
    let mut goals: Vec<Goal> = series.iter().filter_map(|s| s.goal).collect();
    goals.dedup_by(|a, b| (a.value() - b.value()).abs() < 1e-9);
    for goal in goals {
        let _ = writeln!(
            out,
            "<line x1=\"{left:.1}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#c0392b\" \
             stroke-width=\"1.5\" stroke-dasharray=\"5,3\"/>\
             <text x=\"{2:.1}\" y=\"{3:.1}\" fill=\"#c0392b\">goal {4}</text>",
            py(goal.value()),
            left + w,
            left + 4.0,
            py(goal.value()) + 14.0,
            esc(&goal.label())
        );
    }
    // Series: lines through their points, each point labelled with its value; a label that
    // would sit on another at the same count moves down a line.
    let mut placed: Vec<(f64, f64)> = Vec::new();
    for (i, Series { key, points, .. }) in series.iter().enumerate() {
        let c = series_colour(key);
        let path: Vec<String> = points
            .iter()
            .map(|(n, v)| format!("{:.1},{:.1}", px(*n), py(*v)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"/>",
            path.join(" ")
        );
        for (n, v) in points {
            let shown = if log_y && *v >= 100.0 {
                format!("{v:.0}")
            } else if log_y {
                format!("{v:.1}")
            } else {
                format!("{v:.3}")
            };
            let mut label_y = py(*v) - 6.0;
            while placed
                .iter()
                .any(|(lx, ly)| (lx - px(*n)).abs() < 1.0 && (ly - label_y).abs() < 12.0)
            {
                label_y += 12.0;
            }
            placed.push((px(*n), label_y));
            let _ = writeln!(
                out,
                "<circle cx=\"{0:.1}\" cy=\"{1:.1}\" r=\"4\" fill=\"{c}\"><title>{2} at {3}: {4}</title></circle>\
                 <text x=\"{5:.1}\" y=\"{6:.1}\" fill=\"{c}\">{4}</text>",
                px(*n),
                py(*v),
                esc(key),
                thousands(*n),
                shown,
                px(*n) + 6.0,
                label_y
            );
        }
        let ly = top + h + 52.0 + 16.0 * i as f64;
        let _ = writeln!(
            out,
            "<line x1=\"{left:.1}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"{c}\" stroke-width=\"2\"/>\
             <text x=\"{2:.1}\" y=\"{3:.1}\">{4}</text>",
            ly - 4.0,
            left + 18.0,
            left + 24.0,
            ly,
            esc(&series_label(key))
        );
    }
}

/// `10000` as `10,000`.
fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n);
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
