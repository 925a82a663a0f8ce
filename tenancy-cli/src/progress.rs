//! Progress on standard error: a bar on a terminal, plain lines otherwise (a CI log, a file),
//! so the same command reads well in both.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Counts of finished targets: done, failed and to go, with rate and ETA.
pub struct Counter {
    bar: Option<ProgressBar>,
    plain: Mutex<Plain>,
}

struct Plain {
    started: Instant,
}

impl Counter {
    /// `what` names the targets ("targets", "tables").
    pub fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} done, {msg}, {per_sec}, ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            plain: Mutex::new(Plain {
                started: Instant::now(),
            }),
        }
    }

    /// After each target: the running totals and a line on what just finished.
    pub fn update(&self, done: u64, failed: u64, remaining: u64, last: &str) {
        let finished = done + failed;
        match &self.bar {
            Some(bar) => {
                bar.set_position(finished);
                bar.set_message(format!("{failed} failed, {remaining} to go"));
                if last.contains("failed") {
                    bar.println(last);
                }
            }
            None => {
                let plain = self.plain.lock().unwrap_or_else(|e| e.into_inner());
                let secs = plain.started.elapsed().as_secs_f64().max(1e-3);
                let rate = finished as f64 / secs;
                let eta = if rate > 0.0 {
                    format!("{:.0}s", remaining as f64 / rate)
                } else {
                    "-".to_owned()
                };
                eprintln!(
                    "{done} done, {failed} failed, {remaining} to go ({rate:.1}/s, ETA {eta}): {last}"
                );
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Bytes and rows of an archive going by, against a known size when there is one.
pub struct Bytes {
    bar: Option<ProgressBar>,
    last_table: Mutex<String>,
}

impl Bytes {
    pub fn new(total: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let template = if total.is_some() {
                "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec}, ETA {eta}: {msg}"
            } else {
                "{spinner} {bytes} {binary_bytes_per_sec}: {msg}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            last_table: Mutex::new(String::new()),
        }
    }

    pub fn update(&self, table: &str, rows: u64, bytes: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(bytes);
                bar.set_message(format!("{table}, {rows} rows"));
            }
            None => {
                // Plain: one line per table, not per chunk.
                let mut last = self.last_table.lock().unwrap_or_else(|e| e.into_inner());
                if *last != table {
                    eprintln!("{table}: started ({rows} rows, {bytes} bytes so far)");
                    table.clone_into(&mut last);
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
