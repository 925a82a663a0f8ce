//! Migrating every tenant: the targets (the shared tables, each other server's home database,
//! each own-schema tenant's schema, each spare, each own-database tenant's database), each run in its own transaction, several
//! at a time; and which lag behind.

use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use sqlx::Row;
use tenancy_core::TenantId;

use super::{
    MigrateOptions, MigrationFailure, MigrationReport, MigrationTarget, Migrations, Outcome,
    PENDING_BATCH, Progress, Target, apply,
};
use crate::Result;
use crate::registry::store;
use crate::runtime::Runtime;

/// Every target of the tenant migrations: the shared tables, then each own-schema tenant, then
/// each spare schema.
pub(crate) async fn targets(rt: &Runtime) -> Result<Vec<MigrationTarget>> {
    let rows = crate::sql::admin_query(store::OWN_SCHEMA_TENANTS);
    let rows = rt.with_conn(async |c| Ok(rows.fetch_all(c).await?)).await?;
    let mut targets = vec![MigrationTarget::SharedTables];
    let homes: Vec<String> = rt
        .with_conn(async |c| {
            Ok(crate::sql::admin_scalar(store::SERVER_HOMES)
                .fetch_all(c)
                .await?)
        })
        .await?;
    targets.extend(
        homes
            .into_iter()
            .map(|server| MigrationTarget::ServerHome { server }),
    );
    for r in rows {
        let (id, slug, schema) = (
            TenantId::from_uuid(r.try_get("id")?),
            r.try_get("slug")?,
            r.try_get("schema_name")?,
        );
        let server: String = r.try_get("server")?;
        targets.push(if server == crate::databases::PRIMARY_SERVER {
            MigrationTarget::Tenant { id, slug, schema }
        } else {
            MigrationTarget::ServerSchema {
                id,
                slug,
                schema,
                server,
            }
        });
    }
    let spares: Vec<String> = rt
        .with_conn(async |c| {
            Ok(crate::sql::admin_scalar(store::SPARES_ALL)
                .fetch_all(c)
                .await?)
        })
        .await?;
    targets.extend(
        spares
            .into_iter()
            .map(|schema| MigrationTarget::Spare { schema }),
    );
    let rows = crate::sql::admin_query(store::OWN_DATABASE_TENANTS);
    let rows = rt.with_conn(async |c| Ok(rows.fetch_all(c).await?)).await?;
    for r in rows {
        targets.push(MigrationTarget::Database {
            id: TenantId::from_uuid(r.try_get("id")?),
            slug: r.try_get("slug")?,
            database: r.try_get("database_name")?,
            server: r.try_get("server")?,
        });
    }
    Ok(targets)
}

/// The tenants among `targets`, for an audit row.
pub(crate) fn tenant_ids<'t>(
    targets: impl IntoIterator<Item = &'t MigrationTarget>,
) -> Vec<TenantId> {
    targets
        .into_iter()
        .filter_map(MigrationTarget::tenant)
        .collect()
}

/// Runs `migrations` on every target, `options.parallelism` at a time, each in its own
/// transaction; a failure is reported and does not stop the others.
pub(crate) async fn run_all(
    rt: &Runtime,
    targets: Vec<MigrationTarget>,
    migrations: &Arc<Migrations>,
    options: &MigrateOptions,
) -> MigrationReport {
    let total = targets.len();
    let mut report = MigrationReport::default();
    let (mut done, mut failed) = (0, 0);
    let mut runs = stream::iter(targets)
        .map(|target| {
            let migrations = Arc::clone(migrations);
            async move {
                let outcome = match run_one(rt, &target, &migrations).await {
                    Ok(v) if v.is_empty() => Outcome::UpToDate,
                    Ok(v) => Outcome::Applied(v),
                    Err(e) => Outcome::Failed(MigrationFailure::of(&e)),
                };
                (target, outcome)
            }
        })
        .buffer_unordered(options.parallelism);
    // The servers own-database tenants are on: each keeps its own template.
    let mut servers = std::collections::BTreeSet::new();
    while let Some((target, outcome)) = runs.next().await {
        if let MigrationTarget::Database { server, .. } = &target {
            servers.insert(server.clone());
        }
        if let Outcome::Applied(_) = &outcome {
            rt.schema_changed();
        }
        if let Outcome::Failed(e) = &outcome {
            failed += 1;
            tracing::error!(%target, error = %e, "tenant migration failed");
        } else {
            done += 1;
        }
        if let Some(f) = &options.on_progress {
            f(&Progress {
                done,
                failed,
                remaining: total - done - failed,
                last: (target.clone(), outcome.clone()),
            });
        }
        report.outcomes.push((target, outcome));
    }
    for server in servers {
        // New own-database tenants copy it: never left behind the tenants' databases. A
        // failure here only costs creations on that server the slower empty path.
        let made = match rt.databases() {
            Ok(d) => d
                .ensure_template(&rt.pool, &server, migrations)
                .await
                .map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = made {
            tracing::warn!(%server, error = %e, "building the tenant database template failed");
        }
    }
    report
}

/// What a run did, as its audit row records it.
pub(crate) fn outcome_line(report: &MigrationReport) -> String {
    let (mut applied, mut current, mut failed) = (0, 0, 0);
    for (_, outcome) in &report.outcomes {
        match outcome {
            Outcome::Applied(_) => applied += 1,
            Outcome::UpToDate => current += 1,
            Outcome::Failed(_) => failed += 1,
        }
    }
    format!("{applied} applied, {current} up to date, {failed} failed")
}

async fn run_one(
    rt: &Runtime,
    target: &MigrationTarget,
    migrations: &Migrations,
) -> Result<Vec<i64>> {
    let (schema_target, spare) = match target {
        MigrationTarget::Database {
            id,
            database,
            server,
            ..
        } => {
            return run_in_database(rt, *id, (server, database), migrations).await;
        }
        MigrationTarget::ServerHome { server } => {
            return rt.databases()?.migrate_home(server, migrations).await;
        }
        MigrationTarget::ServerSchema { server, schema, .. } => {
            return rt
                .databases()?
                .migrate_home_schema(server, schema, migrations)
                .await
                .map_err(|e| match e {
                    crate::Error::Migration(m) => crate::Error::Migration(m.at(target)),
                    other => other,
                });
        }
        MigrationTarget::SharedTables => (Target::SharedTables, None),
        MigrationTarget::Global => (Target::Global, None),
        MigrationTarget::Tenant { schema, .. } | MigrationTarget::Schema { schema } => {
            (Target::Schema(schema.clone()), None)
        }
        MigrationTarget::Spare { schema } => (Target::Schema(schema.clone()), Some(schema)),
    };
    let mut tx = rt.begin().await?;
    if let Some(schema) = spare {
        // A provisioning may be taking this spare right now (it holds the row): its
        // rename and migration would race ours under another schema name. Skip a spare
        // that is taken or gone; `take` brings it up to date itself.
        let still_spare: Option<String> = crate::sql::admin_scalar(store::SPARE_LOCK_IF_FREE)
            .bind(schema)
            .fetch_optional(&mut *tx)
            .await?;
        if still_spare.is_none() {
            // Nothing ran: the connection goes back as it is, not closed.
            tx.rollback().await?;
            return Ok(Vec::new());
        }
    }
    // Errors name the tenant, which `apply` knows only by its schema.
    let done = apply(&mut tx, &schema_target, migrations)
        .await
        .map_err(|e| match e {
            crate::Error::Migration(m) => crate::Error::Migration(m.at(target)),
            other => other,
        })?;
    tx.commit_and_reset().await?;
    Ok(done)
}

/// An own-database tenant's pending migrations, in its database (checked to be the tenant's),
/// in one transaction, on a connection of its own that is closed afterwards (it ran
/// caller-supplied SQL, and is not one of the budget's).
async fn run_in_database(
    rt: &Runtime,
    tenant: TenantId,
    (server, database): (&str, &str),
    migrations: &Migrations,
) -> Result<Vec<i64>> {
    let name = crate::databases::name::DatabaseName::parse(database)?;
    rt.databases()?
        .in_database(tenant, (server, &name), false, async |tx| {
            apply(
                tx,
                &Target::Schema(tenancy_core::home::TENANT_DATABASE_SCHEMA.to_owned()),
                migrations,
            )
            .await
        })
        .await
}

/// The versions applied in an own-database tenant's database (checked to be the tenant's).
async fn applied_in_database(
    rt: &Runtime,
    tenant: TenantId,
    (server, database): (&str, &str),
) -> Result<Vec<i64>> {
    let name = crate::databases::name::DatabaseName::parse(database)?;
    rt.databases()?
        .in_database(tenant, (server, &name), false, async |tx| {
            Ok(
                crate::sql::admin_scalar("SELECT version FROM public.tenancy_migrations")
                    .fetch_all(tx)
                    .await?,
            )
        })
        .await
}

/// The targets not at the latest of `migrations`, with the versions each lacks, reading the
/// histories a few hundred schemas per statement, so that checking 10,000 tenants takes tens
/// of round trips, not 10,000.
pub(crate) async fn pending(
    rt: &Runtime,
    targets: &[MigrationTarget],
    migrations: &Migrations,
) -> Result<Vec<(MigrationTarget, Vec<i64>)>> {
    let mut out = Vec::new();
    let missing = |applied: &[i64]| -> Vec<i64> {
        migrations
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect()
    };
    // A database's history is read on a connection to it; the others' in batches.
    let mut in_this_database = Vec::with_capacity(targets.len());
    let mut in_homes: std::collections::BTreeMap<&str, Vec<&MigrationTarget>> =
        std::collections::BTreeMap::new();
    for target in targets {
        match (target, history_table(target)) {
            (
                MigrationTarget::Database {
                    id,
                    database,
                    server,
                    ..
                },
                _,
            ) => {
                let lacking = missing(&applied_in_database(rt, *id, (server, database)).await?);
                if !lacking.is_empty() {
                    out.push((target.clone(), lacking));
                }
            }
            // Read below, each home's on one connection.
            (MigrationTarget::ServerSchema { server, .. }, _) => {
                in_homes.entry(server.as_str()).or_default().push(target);
            }
            (MigrationTarget::ServerHome { server }, _) => {
                let lacking = missing(&rt.databases()?.applied_in_home(server).await?);
                if !lacking.is_empty() {
                    out.push((target.clone(), lacking));
                }
            }
            (_, Some(history)) => in_this_database.push((target, history)),
            (_, None) => {}
        }
    }
    for (server, targets) in in_homes {
        let schemas: Vec<&str> = targets
            .iter()
            .filter_map(|t| match t {
                MigrationTarget::ServerSchema { schema, .. } => Some(schema.as_str()),
                _ => None,
            })
            .collect();
        let applied = rt
            .databases()?
            .applied_in_home_schemas(server, &schemas)
            .await?;
        for (target, applied) in targets.into_iter().zip(applied) {
            let lacking = missing(&applied);
            if !lacking.is_empty() {
                out.push((target.clone(), lacking));
            }
        }
    }
    for batch in in_this_database.chunks(PENDING_BATCH) {
        let sql = batch
            .iter()
            .enumerate()
            .map(|(i, (_, history))| format!("SELECT {i}::int4 AS target, version FROM {history}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let q = crate::sql::admin_query(crate::sql::text(sql));
        let rows = rt.with_conn(async |c| Ok(q.fetch_all(c).await?)).await?;
        let mut applied = vec![Vec::new(); batch.len()];
        for row in rows {
            let target: i32 = row.try_get("target")?;
            let version: i64 = row.try_get("version")?;
            if let Some(versions) = usize::try_from(target)
                .ok()
                .and_then(|t| applied.get_mut(t))
            {
                versions.push(version);
            }
        }
        for ((target, _), applied) in batch.iter().zip(applied) {
            let lacking = missing(&applied);
            if !lacking.is_empty() {
                out.push(((*target).clone(), lacking));
            }
        }
    }
    Ok(out)
}

/// The history table of a target in the registry's database; `None` for a tenant database.
fn history_table(target: &MigrationTarget) -> Option<String> {
    match target {
        MigrationTarget::SharedTables | MigrationTarget::Global => {
            Some("tenancy.shared_table_migrations".to_owned())
        }
        MigrationTarget::Tenant { schema, .. }
        | MigrationTarget::Spare { schema }
        | MigrationTarget::Schema { schema } => Some(format!(
            "{}.tenancy_migrations",
            tenancy_core::ident::quote(schema)
        )),
        MigrationTarget::Database { .. }
        | MigrationTarget::ServerHome { .. }
        | MigrationTarget::ServerSchema { .. } => None,
    }
}
