//! `tenancy tenants move | purge-old-copy | forget-old-copy`: moving a tenant while it serves,
//! and what its move kept where it lived before.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tenancy::{MoveOptions, Moved, OldCopy, Placement, Purged, TenantId};

use crate::cli::{One, PlacementArg};
use crate::confirm::confirm;
use crate::connect::{Connect, Who, tenancy, tenant_id};
use crate::fail::Fail;
use crate::output::Out;

/// The library's placement for the command line's.
pub fn placement(arg: PlacementArg) -> Placement {
    match arg {
        PlacementArg::Shared => Placement::SharedTable,
        PlacementArg::OwnSchema => Placement::OwnSchema,
        PlacementArg::OwnDatabase => Placement::OwnDatabase,
    }
}

/// What `tenants move` is asked.
pub struct MoveArgs<'a> {
    pub one: &'a One,
    pub to: PlacementArg,
    pub server: Option<String>,
    pub migrations: Option<&'a Path>,
    pub lock_wait_ms: Option<u64>,
    pub unmanaged_shared_tables: bool,
}

pub async fn move_tenant(url: &str, args: MoveArgs<'_>, out: &Out) -> Result<(), Fail> {
    if let Some(server) = &args.server {
        if matches!(args.to, PlacementArg::OwnSchema) {
            return Err(Fail::usage(
                "--server is for --to own-database or --to shared (that server's home): own \
                 schemas live in the registry's database",
            ));
        }
        super::servers::check_key(server)?;
    }
    let who = Who::from_args(&args.one.actor)?;
    let t = tenancy(
        url,
        Connect {
            migrations: args.migrations,
            ..Connect::default()
        },
    )
    .await?;
    let id = tenant_id(&t, &args.one.tenant).await?;
    let su = who.superuser(&t).await?;
    let mut options = MoveOptions::default();
    if let Some(server) = args.server {
        options = options.server(server);
    }
    if let Some(ms) = args.lock_wait_ms {
        options = options.lock_wait(Duration::from_millis(ms));
    }
    if args.unmanaged_shared_tables {
        options = options.unmanaged_shared_tables();
    }
    let moved = t
        .move_tenant_with(&su, id, placement(args.to), options)
        .await?;
    let mut text = format!(
        "moved {} from {} to {}{}: {} row(s) in {} table(s), each verified; old copy kept: {} \
         (remove it with `tenancy tenants purge-old-copy`)",
        moved.id,
        moved.from,
        moved.to,
        home(&moved),
        moved.rows(),
        moved.tables.len(),
        old_copy(&moved.old_copy),
    );
    if moved.resumed {
        text.push_str(
            "\nthe copy was made and verified by an earlier run of this move, cut off before \
             its switch; this run switched the registry",
        );
    }
    if let Some(why) = &moved.writes_held {
        text.push_str(&format!("\nwarning: {why}"));
    }
    out.line(&text, &moved_json(&moved));
    Ok(())
}

/// Checks who acts, connects, finds the tenant and asks `what(id)` (or takes `yes`), then
/// acquires the Superuser: a typo or a refusal leaves not even an audit record.
async fn confirmed(
    url: &str,
    one: &One,
    yes: bool,
    what: impl FnOnce(TenantId) -> String,
) -> Result<(tenancy::Tenancy, tenancy::Superuser, TenantId), Fail> {
    let who = Who::from_args(&one.actor)?;
    let t = tenancy(url, Connect::default()).await?;
    let id = tenant_id(&t, &one.tenant).await?;
    confirm(yes, &what(id), &one.tenant)?;
    let su = who.superuser(&t).await?;
    Ok((t, su, id))
}

pub async fn purge_old_copy(url: &str, one: &One, yes: bool, out: &Out) -> Result<(), Fail> {
    let (t, su, id) = confirmed(url, one, yes, |id| {
        format!(
            "remove what the last move of tenant {} ({id}) kept where it lived before",
            one.tenant
        )
    })
    .await?;
    let purged = t.purge_old_copy(&su, id).await?;
    let described: Vec<String> = purged.iter().map(purged_text).collect();
    let text = if described.is_empty() {
        format!("tenant {id} has no old copy; nothing was removed")
    } else {
        format!("removed the old copy of {id}: {}", described.join("; "))
    };
    let value = json!({
        "id": id.to_string(),
        "removed": purged.iter().map(purged_json).collect::<Vec<_>>(),
    });
    out.line(&text, &value);
    Ok(())
}

pub async fn forget_old_copy(
    url: &str,
    one: &One,
    server: &str,
    yes: bool,
    out: &Out,
) -> Result<(), Fail> {
    super::servers::check_key(server)?;
    // Forgotten, a database is a leftover to any handle that maps its server: asked, as a
    // purge is.
    let (t, su, id) = confirmed(url, one, yes, |id| {
        format!(
            "forget the old databases of tenant {} ({id}) on server {server} (a handle that \
             maps that server drops them when it connects)",
            one.tenant
        )
    })
    .await?;
    let forgotten = t.forget_old_copy(&su, id, server).await?;
    let text = if forgotten.is_empty() {
        format!("tenant {id} has no old database on server {server}; nothing was forgotten")
    } else {
        format!(
            "forgot {} on server {server} (not dropped)",
            forgotten.join(", ")
        )
    };
    out.line(
        &text,
        &json!({ "id": id.to_string(), "server": server, "forgotten": forgotten }),
    );
    Ok(())
}

/// Where the tenant lives now, after its placement: ` (schema t_acme)`, ` (database ... on eu-2)`.
fn home(moved: &Moved) -> String {
    match (&moved.schema, &moved.database) {
        (Some(schema), _) => format!(" (schema {schema})"),
        (None, Some(database)) => format!(" (database {database} on server {})", moved.server),
        (None, None) if moved.server != "primary" => {
            format!(" (the home of server {})", moved.server)
        }
        (None, None) => String::new(),
    }
}

fn old_copy(old: &OldCopy) -> String {
    match (&old.schema, &old.database) {
        (Some(schema), _) => format!("schema {schema}"),
        (None, Some(database)) => format!(
            "database {database} on server {}",
            old.server.as_deref().unwrap_or("primary")
        ),
        (None, None) => match old.server.as_deref() {
            Some(server) if server != "primary" => {
                format!("its rows in the home of server {server}")
            }
            _ => "its rows in the shared tables".to_owned(),
        },
    }
}

fn moved_json(moved: &Moved) -> Value {
    json!({
        "id": moved.id.to_string(),
        "from": moved.from.to_string(),
        "to": moved.to.to_string(),
        "schema": moved.schema,
        "database": moved.database,
        "server": moved.server,
        "rows": moved.rows(),
        "writes_held": moved.writes_held,
        "resumed": moved.resumed,
        "tables": moved.tables.iter().map(|t| json!({
            "table": t.table,
            "rows": t.rows,
            "checksum": t.checksum,
        })).collect::<Vec<_>>(),
        "old_copy": {
            "placement": moved.old_copy.placement.to_string(),
            "schema": moved.old_copy.schema,
            "database": moved.old_copy.database,
            "server": moved.old_copy.server,
        },
    })
}

fn purged_text(p: &Purged) -> String {
    match p {
        Purged::Schema(s) => format!("dropped schema {s}"),
        Purged::Database(d) => format!("dropped database {d}"),
        Purged::Rows(tables) => format!(
            "deleted {} row(s) from {} shared table(s)",
            tables.iter().map(|(_, n)| n).sum::<u64>(),
            tables.len()
        ),
        other => format!("removed {other:?}"),
    }
}

fn purged_json(p: &Purged) -> Value {
    match p {
        Purged::Schema(s) => json!({ "schema": s }),
        Purged::Database(d) => json!({ "database": d }),
        Purged::Rows(tables) => json!({
            "rows": tables.iter().map(|(t, n)| json!({ "table": t, "rows": n })).collect::<Vec<_>>(),
        }),
        other => json!({ "other": format!("{other:?}") }),
    }
}
