//! `tenancy tenants ...`: creation, listing and the lifecycle. Every move but `create` takes
//! an audited `Superuser`; the library writes the audit record in the move's transaction.

use serde_json::{Value, json};
use tenancy::{NewTenant, Purged, Tenant, TenantId, TenantStatus};

use crate::cli::{One, StatusArg, TenantsCmd};
use crate::confirm::confirm;
use crate::connect::{Connect, Who, tenancy, tenant_id};
use crate::fail::Fail;
use crate::output::{Out, TENANT_HEADERS, json_of, tenant_row, time};

pub async fn run(url: &str, cmd: TenantsCmd, out: &Out) -> Result<(), Fail> {
    match cmd {
        TenantsCmd::Create {
            slug,
            name,
            hosts,
            placement,
            server,
            migrations,
            id,
            actor,
        } => {
            let who = Who::maybe(&actor)?;
            let id = id
                .map(|id| {
                    id.parse::<TenantId>()
                        .map_err(|e| Fail::usage(format!("--id: {e}")))
                })
                .transpose()?;
            let mut new = NewTenant::new(&slug, name.as_deref().unwrap_or(&slug))
                .placement(super::moving::placement(placement));
            if let Some(server) = server {
                super::servers::check_key(&server)?;
                new = new.server(server);
            }
            for h in &hosts {
                new = new.host(h);
            }
            let t = tenancy(
                url,
                Connect {
                    migrations: migrations.as_deref(),
                    ..Connect::default()
                },
            )
            .await?;
            let created = match (id, who) {
                (Some(id), Some(who)) => {
                    let su = who.superuser(&t).await?;
                    t.create_tenant_with_id(&su, new, id).await?
                }
                (Some(_), None) => return Err(Fail::usage("--id needs --reason")),
                (None, _) => t.create_tenant(new).await?,
            };
            show(out, &created);
            Ok(())
        }
        TenantsCmd::List { status, actor } => {
            let who = Who::from_args(&actor)?;
            let t = tenancy(url, Connect::default()).await?;
            let su = who.superuser(&t).await?;
            let want = status.map(|s| match s {
                StatusArg::Active => TenantStatus::Active,
                StatusArg::Suspended => TenantStatus::Suspended,
                StatusArg::Deleted => TenantStatus::Deleted,
            });
            let all: Vec<Tenant> = t
                .list_tenants(&su)
                .await?
                .into_iter()
                .filter(|t| want.is_none_or(|s| t.status == s))
                .collect();
            let rows: Vec<Vec<String>> = all.iter().map(tenant_row).collect();
            let value = Value::Array(all.iter().map(json_of).collect());
            out.table(TENANT_HEADERS, &rows, &value);
            Ok(())
        }
        TenantsCmd::Show(one) => {
            let (t, su, id) = open(url, &one).await?;
            show(out, &t.tenant(&su, id).await?);
            Ok(())
        }
        TenantsCmd::Suspend(one) => {
            let (t, su, id) = open(url, &one).await?;
            show(out, &t.suspend(&su, id).await?);
            Ok(())
        }
        TenantsCmd::Resume(one) => {
            let (t, su, id) = open(url, &one).await?;
            show(out, &t.resume(&su, id).await?);
            Ok(())
        }
        TenantsCmd::Delete(one) => {
            let (t, su, id) = open(url, &one).await?;
            show(out, &t.soft_delete(&su, id).await?);
            Ok(())
        }
        TenantsCmd::Restore(one) => {
            let (t, su, id) = open(url, &one).await?;
            show(out, &t.restore(&su, id).await?);
            Ok(())
        }
        TenantsCmd::Purge { one, yes } => {
            let who = Who::from_args(&one.actor)?;
            let t = tenancy(url, Connect::default()).await?;
            let id = tenant_id(&t, &one.tenant).await?;
            // Asked before the Superuser, so a refusal leaves not even an audit record.
            confirm(
                yes,
                &format!("purge tenant {} ({id}): delete all its data", one.tenant),
                &one.tenant,
            )?;
            let su = who.superuser(&t).await?;
            let purged = t.purge(&su, id).await?;
            let (text, value) = match &purged {
                Purged::Schema(s) => (
                    format!("purged {id}: dropped schema {s}"),
                    json!({ "id": id.to_string(), "schema": s }),
                ),
                Purged::Rows(tables) => (
                    format!(
                        "purged {id}: deleted {} row(s) from {} table(s)",
                        tables.iter().map(|(_, n)| n).sum::<u64>(),
                        tables.len()
                    ),
                    json!({
                        "id": id.to_string(),
                        "rows": tables.iter().map(|(t, n)| json!({ "table": t, "rows": n })).collect::<Vec<_>>(),
                    }),
                ),
                _ => (format!("purged {id}"), json!({ "id": id.to_string() })),
            };
            out.line(&text, &value);
            Ok(())
        }
        TenantsCmd::Move {
            one,
            to,
            server,
            migrations,
            lock_wait_ms,
            unmanaged_shared_tables,
        } => {
            let args = super::moving::MoveArgs {
                one: &one,
                to,
                server,
                migrations: migrations.as_deref(),
                lock_wait_ms,
                unmanaged_shared_tables,
            };
            super::moving::move_tenant(url, args, out).await
        }
        TenantsCmd::PurgeOldCopy { one, yes } => {
            super::moving::purge_old_copy(url, &one, yes, out).await
        }
        TenantsCmd::ForgetOldCopy { one, server, yes } => {
            super::moving::forget_old_copy(url, &one, &server, yes, out).await
        }
        TenantsCmd::Rename { one, new_slug } => {
            let (t, su, id) = open(url, &one).await?;
            show(out, &t.rename_slug(&su, id, &new_slug).await?);
            Ok(())
        }
        TenantsCmd::AddHost { one, host, primary } => {
            let (t, su, id) = open(url, &one).await?;
            show(out, &t.add_host(&su, id, &host, primary).await?);
            Ok(())
        }
        TenantsCmd::RemoveHost { one, host } => {
            let (t, su, id) = open(url, &one).await?;
            show(out, &t.remove_host(&su, id, &host).await?);
            Ok(())
        }
        TenantsCmd::Export { one, output } => super::archive::export(url, &one, &output, out).await,
        TenantsCmd::Import {
            file,
            into,
            replace,
            yes,
            actor,
        } => super::archive::import(url, &file, &into, replace, yes, &actor, out).await,
    }
}

/// Checks who acts, connects, finds the tenant, then acquires the Superuser: an unknown or
/// malformed tenant fails before any audit record is written.
async fn open(
    url: &str,
    one: &One,
) -> Result<(tenancy::Tenancy, tenancy::Superuser, TenantId), Fail> {
    let who = Who::from_args(&one.actor)?;
    let t = tenancy(url, Connect::default()).await?;
    let id = tenant_id(&t, &one.tenant).await?;
    let su = who.superuser(&t).await?;
    Ok((t, su, id))
}

fn show(out: &Out, t: &Tenant) {
    let mut rows = vec![
        vec!["id".to_owned(), t.id.to_string()],
        vec!["slug".to_owned(), t.slug.clone()],
        vec!["name".to_owned(), t.name.clone()],
        vec!["placement".to_owned(), t.placement.to_string()],
        vec!["status".to_owned(), t.status.to_string()],
        vec!["created".to_owned(), time(t.created_at)],
        vec!["hosts".to_owned(), t.hosts.join(",")],
    ];
    if let Some(at) = t.deleted_at {
        rows.push(vec!["deleted".to_owned(), time(at)]);
    }
    if let Some(s) = &t.schema {
        rows.push(vec!["schema".to_owned(), s.clone()]);
    }
    if let Some(d) = &t.database {
        rows.push(vec!["database".to_owned(), d.clone()]);
        rows.push(vec!["server".to_owned(), t.server.clone()]);
    }
    out.table(&["FIELD", "VALUE"], &rows, &json_of(t));
}
