//! `tenancy servers ...`: the server keys the registry lists. Connect options never enter the
//! registry: each run maps keys to URLs from `TENANCY_SERVERS`.

use serde_json::{Value, json};

use crate::cli::ServersCmd;
use crate::connect::{Connect, Who, tenancy};
use crate::fail::Fail;
use crate::output::{Out, time};

/// A malformed server key is a usage error, found before anything connects or is audited.
pub fn check_key(key: &str) -> Result<(), Fail> {
    tenancy::validate_server_key(key).map_err(|e| Fail::usage(format!("--server: {e}")))?;
    Ok(())
}

pub async fn run(url: &str, cmd: ServersCmd, out: &Out) -> Result<(), Fail> {
    match cmd {
        ServersCmd::Add { key, actor } => {
            tenancy::validate_server_key(&key).map_err(|e| Fail::usage(e.to_string()))?;
            let who = Who::from_args(&actor)?;
            let t = tenancy(url, Connect::default()).await?;
            let su = who.superuser(&t).await?;
            let added = t.add_server(&su, &key).await?;
            let text = if added {
                format!("server {key} added")
            } else {
                format!("server {key} was listed already; nothing changed")
            };
            out.line(&text, &json!({ "key": key, "added": added }));
            Ok(())
        }
        ServersCmd::List { actor } => {
            let who = Who::from_args(&actor)?;
            let t = tenancy(url, Connect::default()).await?;
            let su = who.superuser(&t).await?;
            let servers = t.list_servers(&su).await?;
            let rows: Vec<Vec<String>> = servers
                .iter()
                .map(|s| {
                    vec![
                        s.key.clone(),
                        s.tenants.to_string(),
                        if s.mapped { "yes" } else { "no" }.to_owned(),
                        time(s.created_at),
                    ]
                })
                .collect();
            let value = Value::Array(
                servers
                    .iter()
                    .map(|s| {
                        json!({
                            "key": s.key,
                            "tenants": s.tenants,
                            "mapped": s.mapped,
                            "created_at": time(s.created_at),
                        })
                    })
                    .collect(),
            );
            out.table(&["KEY", "TENANTS", "MAPPED", "ADDED"], &rows, &value);
            Ok(())
        }
    }
}
