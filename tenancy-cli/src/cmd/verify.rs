//! `tenancy verify`: what can be checked without the application's model types.
//!
//! - registry: installed and at this build's version (connecting refuses otherwise);
//! - schemas: every own-schema tenant's schema and migration history exist, every listed spare
//!   schema exists;
//! - row-level security: each shared table holding tenant rows has tenancy's policy, enabled
//!   and forced, on it and its partitions (a note unless `--require-rls`);
//! - citus (with the extension installed): how Citus holds the registry's tables and the shared
//!   tables; fails on the registry distributed, a shared table distributed by another column
//!   than its tenant column, or shared tables in different colocation groups;
//! - migrations (with `--migrations DIR`): no target is behind.
//!
//! A model's table shape needs the model (`Tenancy::verify::<M>()` in the application).

use serde_json::{Value, json};

use crate::cli::VerifyArgs;
use crate::connect::{Connect, Who, builder};
use crate::fail::Fail;
use crate::output::Out;

struct Check {
    name: String,
    status: &'static str,
    detail: String,
}

pub async fn run(url: &str, args: VerifyArgs, out: &Out) -> Result<(), Fail> {
    let who = Who::maybe(&args.actor)?;
    let mut checks = Vec::new();
    let builder = builder(Connect {
        migrations: args.migrations.as_deref(),
        ..Connect::default()
    })?;
    let t = match builder.connect(url).await {
        Ok(t) => {
            checks.push(Check {
                name: "registry".into(),
                status: "ok",
                detail: "installed, current version".into(),
            });
            Some(t)
        }
        // Missing or behind: a finding, reported with the others, not an error.
        Err(e @ tenancy::Error::RegistryNotInstalled(_)) => {
            checks.push(Check {
                name: "registry".into(),
                status: "fail",
                detail: format!("{e} (run `tenancy registry install`)"),
            });
            None
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(t) = &t {
        let report = t.verify_deployment().await?;
        checks.push(Check {
            name: "schemas".into(),
            status: if report.registry.is_empty() {
                "ok"
            } else {
                "fail"
            },
            detail: if report.registry.is_empty() {
                "every own-schema tenant's schema and history, every spare".into()
            } else {
                report.registry.join("; ")
            },
        });
        for table in &report.row_level_security {
            let ok = table.problems.is_empty();
            checks.push(Check {
                name: format!("rls {}", table.table),
                status: match (ok, args.require_rls) {
                    (true, _) => "ok",
                    (false, true) => "fail",
                    (false, false) => "note",
                },
                detail: if ok {
                    "policy enabled and forced, partitions covered".into()
                } else {
                    table.problems.join("; ")
                },
            });
        }
        if let Some(citus) = &report.citus {
            checks.push(Check {
                name: "citus".into(),
                status: if citus.problems.is_empty() {
                    "ok"
                } else {
                    "fail"
                },
                detail: if citus.problems.is_empty() {
                    format!(
                        "Citus {}, {} workers; {}",
                        citus.version,
                        citus.workers,
                        citus
                            .tables
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    )
                } else {
                    citus.problems.join("; ")
                },
            });
        }
        if args.migrations.is_some() {
            let who = who.ok_or_else(|| Fail::usage("--migrations needs --reason"))?;
            let su = who.superuser(t).await?;
            let pending = t.pending_migrations(&su).await?;
            checks.push(Check {
                name: "migrations".into(),
                status: if pending.is_empty() { "ok" } else { "fail" },
                detail: if pending.is_empty() {
                    "every target at the latest".into()
                } else {
                    pending
                        .iter()
                        .map(|(t, v)| format!("{t} lacks {v:?}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                },
            });
        }
    }
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| vec![c.name.clone(), c.status.to_owned(), c.detail.clone()])
        .collect();
    let value = Value::Array(
        checks
            .iter()
            .map(|c| json!({ "check": c.name, "status": c.status, "detail": c.detail }))
            .collect(),
    );
    out.table(&["CHECK", "STATUS", "DETAIL"], &rows, &value);
    let failed = checks.iter().filter(|c| c.status == "fail").count();
    if failed > 0 {
        return Err(Fail::failed(format!("{failed} check(s) failed")));
    }
    Ok(())
}
