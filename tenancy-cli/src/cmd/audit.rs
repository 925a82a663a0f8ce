//! `tenancy audit`: the audit log, newest first. Reading it is audited too (`audit.read`).

use tenancy::AuditQuery;
use time::OffsetDateTime;

use crate::cli::AuditArgs;
use crate::connect::{Connect, Who, tenancy, tenant_id};
use crate::fail::Fail;
use crate::output::{Out, time};

pub async fn run(url: &str, args: AuditArgs, out: &Out) -> Result<(), Fail> {
    let who = Who::from_args(&args.actor)?;
    let since = args
        .since
        .as_deref()
        .map(|s| crate::since::parse(s, OffsetDateTime::now_utc()))
        .transpose()?;
    let t = tenancy(url, Connect::default()).await?;
    let tenant = match &args.tenant {
        Some(name) => Some(tenant_id(&t, name).await?),
        None => None,
    };
    let su = who.superuser(&t).await?;
    let query = AuditQuery {
        tenant,
        since,
        actor: args.by,
        action: args.action,
        limit: Some(args.limit),
        ..AuditQuery::default()
    };
    let records = t.audit_log(&su, query).await?;
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                time(r.at),
                r.actor.clone(),
                r.action.clone(),
                r.tenant_ids
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                r.reason.clone(),
                r.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let value = crate::output::json_of(&records);
    out.table(
        &["ID", "AT", "ACTOR", "ACTION", "TENANTS", "REASON", "DETAIL"],
        &rows,
        &value,
    );
    Ok(())
}
