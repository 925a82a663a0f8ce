//! `tenancy migrate shared|tenants|pending`.

use std::sync::Arc;

use serde_json::{Value, json};
use tenancy::{MigrateOptions, MigrationFailure, MigrationTarget, Outcome};

use crate::cli::MigrateCmd;
use crate::connect::{Connect, Who, migrations, tenancy};
use crate::fail::Fail;
use crate::output::{Out, json_of};
use crate::progress::Counter;

pub async fn run(url: &str, cmd: MigrateCmd, out: &Out) -> Result<(), Fail> {
    match cmd {
        MigrateCmd::Shared { dir, actor } => {
            let who = Who::from_args(&actor)?;
            let m = migrations(&dir)?;
            let t = tenancy(url, Connect::default()).await?;
            let su = who.superuser(&t).await?;
            let applied = t.migrate_shared(&su, &m).await?;
            let text = if applied.is_empty() {
                "shared migrations: up to date".to_owned()
            } else {
                format!("shared migrations applied: {applied:?}")
            };
            out.line(&text, &json!({ "applied": applied }));
            Ok(())
        }
        MigrateCmd::Tenants {
            dir,
            parallel,
            actor,
        } => {
            let who = Who::from_args(&actor)?;
            let t = tenancy(
                url,
                Connect {
                    migrations: Some(&dir),
                    // One connection per target at once, and one for the registry.
                    connections: Some(parallel + 1),
                },
            )
            .await?;
            let su = who.superuser(&t).await?;
            // The total is known only once the library lists the targets: the bar learns it
            // from the first report (done + failed + remaining).
            let counter: Arc<std::sync::OnceLock<Counter>> = Arc::default();
            let c = Arc::clone(&counter);
            let options = MigrateOptions::default()
                .parallelism(parallel as usize)
                .on_progress(move |p| {
                    let total = (p.done + p.failed + p.remaining) as u64;
                    let counter = c.get_or_init(|| Counter::new(total));
                    let (target, outcome) = &p.last;
                    counter.update(
                        p.done as u64,
                        p.failed as u64,
                        p.remaining as u64,
                        &format!("{target}: {}", outcome_text(outcome)),
                    );
                });
            let report = t.migrate_tenants(&su, options).await?;
            if let Some(c) = counter.get() {
                c.finish();
            }
            let failed: Vec<(&MigrationTarget, &MigrationFailure)> = report.failed().collect();
            let applied = report
                .outcomes
                .iter()
                .filter(|(_, o)| matches!(o, Outcome::Applied(_)))
                .count();
            let total = report.outcomes.len();
            if out.is_json() {
                let mut value = json_of(&report);
                if let Value::Object(v) = &mut value {
                    v.insert("targets".into(), json!(total));
                    v.insert("applied".into(), json!(applied));
                    v.insert("failed".into(), json!(failed.len()));
                }
                out.line("", &value);
            } else {
                println!(
                    "{total} target(s): {applied} migrated, {} up to date, {} failed",
                    total - applied - failed.len(),
                    failed.len()
                );
                if !failed.is_empty() {
                    let rows: Vec<Vec<String>> = failed
                        .iter()
                        .map(|(t, why)| vec![t.to_string(), why.to_string()])
                        .collect();
                    print!("{}", crate::output::render(&["FAILED", "CAUSE"], &rows));
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(Fail::failed(format!(
                    "{} of {total} target(s) failed to migrate (rolled back; run again to resume)",
                    failed.len()
                )))
            }
        }
        MigrateCmd::Pending { dir, check, actor } => {
            let who = Who::from_args(&actor)?;
            let t = tenancy(
                url,
                Connect {
                    migrations: Some(&dir),
                    ..Connect::default()
                },
            )
            .await?;
            let su = who.superuser(&t).await?;
            let pending = t.pending_migrations(&su).await?;
            let rows: Vec<Vec<String>> = pending
                .iter()
                .map(|(t, v)| vec![t.to_string(), versions(v)])
                .collect();
            let value: Vec<Value> = pending
                .iter()
                .map(|(t, v)| {
                    let mut target = json_of(t);
                    target["missing"] = json!(v);
                    target
                })
                .collect();
            if rows.is_empty() && !out.is_json() {
                println!("every target is at the latest migration");
            } else {
                out.table(&["TARGET", "MISSING"], &rows, &Value::Array(value));
            }
            if check && !pending.is_empty() {
                return Err(Fail::failed(format!("{} target(s) behind", pending.len())));
            }
            Ok(())
        }
    }
}

fn versions(v: &[i64]) -> String {
    v.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Applied(v) => format!("applied {}", versions(v)),
        Outcome::UpToDate => "up to date".to_owned(),
        Outcome::Failed(why) => format!("failed: {why}"),
        _ => "unknown outcome".to_owned(),
    }
}
