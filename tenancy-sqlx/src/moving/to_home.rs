//! A move into the home database of a server other than the registry's (see
//! `databases::home`), onto its shared tables or into an own schema there, from the registry's
//! database (its shared tables or an own schema), from a database of the tenant's own, or from
//! another server's home. An own schema is made with the tenant's line (step 3), at the latest
//! tenant migration, and the copy goes into it.
//!
//! The steps of a move into a database of its own, with the home in the new database's place:
//!
//! 1. in the registry transaction: the tenant's row locked and checked (`prepare`), the
//!    server known and listed, the home made if missing, and the tenant's line held against
//!    the cleanup (`home::lock_line`);
//! 2. a line the home still has for the tenant goes, with its rows (or its schema): the registry, locked above,
//!    names another home, so it is what a run cut off before its switch left (an old copy of
//!    an earlier move out of this home is refused by `prepare` instead);
//! 3. the tenant listed in the home (its line pending: the fence refuses writes through it
//!    until the registry places the tenant there, see `home::ACTIVATE`), then, in a transaction there (the home's migration lock
//!    taken, so no migration changes its tables under the copy), its rows copied and verified
//!    as any move's, the source fenced (the registry's fence, or a source database's seal), and
//!    that transaction committed;
//! 4. the registry switches and commits (the caller), then the line is made live (or, if that
//!    is cut off, by the next `cleanup_orphans`).
//!
//! A failure before the switch takes the tenant's line and rows out of the home again (the
//! source is whole: a sealed source database is read again by a rerun); a crash leaves them
//! for step 2 of the next run. After the switch a write of a context resolved before fails:
//! the registry's fence requires the registry's server (registry migration 10), an old own
//! schema is renamed, a source database is sealed.

use sqlx::{Connection, PgConnection, PgPool};
use tenancy_core::home::{Home, QuotedSchema, TENANT_DATABASE_SCHEMA};
use tenancy_core::{Placement, TenantId};

use super::from_database::{copy_and_seal, lock_database_migrations};
use super::{
    Leaving, MoveOptions, Moved, MovedTable, Pair, across, copy_all, lock_migrations, prepare,
    raise_fence, switch,
};
use crate::databases::Databases;
use crate::migrate::Migrations;
use crate::{Error, Result};

/// Moves tenant `id` into the home of server `options.server` (onto its shared tables, or
/// into an own schema there: `to`) inside the registry transaction `tx` (see the module
/// docs). The caller audits, notifies and commits.
pub(crate) async fn run(
    tx: &mut PgConnection,
    (databases, pool): (&Databases, &PgPool),
    (id, to): (TenantId, Placement),
    migrations: &Migrations,
    options: &MoveOptions,
) -> Result<Moved> {
    let Some(server) = options.server.as_deref() else {
        return Err(Error::MoveRefused {
            id,
            reason: "a move into another server's home names the server".to_owned(),
        });
    };
    let leaving = prepare(tx, Some(databases), id, to, Some(server)).await?;
    super::check_target_server(tx, databases, server).await?;
    // The shared tables there, or an own schema made there with the tenant's line.
    let target = match to {
        Placement::OwnSchema => {
            let schema = crate::registry::schema_for(&leaving.slug)?;
            databases.server_schema(server, QuotedSchema::new(&schema)?)?
        }
        _ => databases.server_home(server)?,
    };
    // A schema the move makes must not be another registry row's: the switch would refuse it
    // after the home committed (and, out of a sealed source, leave the tenant sealed).
    if let Some(schema) = target.schema_name() {
        let held: bool = crate::sql::admin_scalar(
            "SELECT EXISTS (SELECT FROM tenancy.tenants WHERE schema_name = $1 AND id <> $2)",
        )
        .bind(schema)
        .bind(id.as_uuid())
        .fetch_one(&mut *tx)
        .await?;
        if held {
            return Err(Error::MoveRefused {
                id,
                reason: format!("another tenant's schema is named {schema}"),
            });
        }
    }
    // From the other place in the same home: one database, one copy there.
    if leaving.from.in_server_home() && leaving.server == server {
        return super::same_home::run(tx, databases, id, (&leaving, &target), migrations, options)
            .await;
    }
    databases
        .ensure_server_home(pool, server, migrations)
        .await?;
    crate::databases::home::lock_line(tx, id).await?;
    let left = databases.leave_home(server, id).await?;
    if !matches!(&left, crate::Purged::Rows(rows) if rows.iter().all(|(_, n)| *n == 0)) {
        tracing::info!(tenant = %id, server, ?left,
            "removed what a cut-off move of the tenant left in the server's home");
    }
    let schema = target.schema_name().map(|s| (s, migrations));
    databases
        .enter_home(server, (id, leaving.slug.as_str()), schema, true)
        .await?;
    match fill(tx, databases, (server, &target), id, &leaving, options).await {
        Ok(tables) => switch(tx, id, &leaving, &target, (server, None), tables, options).await,
        Err(e) => {
            // Nothing is left half-made: the registry never named the home for the tenant.
            if let Err(left) = databases.leave_home(server, id).await {
                tracing::warn!(tenant = %id, server, error = %left,
                    "removing a failed move's copy from the server's home failed; the next \
                     move there removes it");
            }
            Err(e)
        }
    }
}

/// Step 3 of the module docs: the copy into the home, verified and committed there.
async fn fill(
    tx: &mut PgConnection,
    databases: &Databases,
    (server, target): (&str, &Home),
    id: TenantId,
    leaving: &Leaving,
    options: &MoveOptions,
) -> Result<Vec<MovedTable>> {
    // The schema the copy goes to in the home: the tenant's own, or the shared tables'.
    let (schema, to) = match target.schema_name() {
        Some(own) => (own, Placement::OwnSchema),
        None => (TENANT_DATABASE_SCHEMA, Placement::SharedTable),
    };
    let home = databases.server_home_name(server);
    let mut conn = databases.connect(server, &home).await?;
    let out = async {
        // A plain transaction: committed here, or by `copy_and_seal` before it seals a source
        // database.
        sqlx::raw_sql("BEGIN").execute(&mut conn).await?;
        crate::rls::act_for(&mut conn, id).await?;
        // The home's migration lock, so that no migration changes its tables under the copy:
        // taken after the source's (the registry's first, as every move takes it; two
        // databases' in one order, see `copy_and_seal`), so that moves the opposite ways never
        // wait for each other across servers.
        if leaving.from.database().is_some() {
            return copy_and_seal(
                databases,
                id,
                leaving,
                (&mut conn, Some(schema), to),
                options,
                (true, Some((server, &home))),
            )
            .await;
        }
        crate::rls::act_for(tx, id).await?;
        lock_migrations(tx, &leaving.from).await?;
        lock_database_migrations(&mut conn, schema).await?;
        across::same_text(tx).await?;
        across::same_text(&mut conn).await?;
        raise_fence(tx, id, options.lock_wait).await?;
        let tables = copy_all(
            &mut Pair::Two {
                source: tx,
                target: &mut conn,
            },
            id,
            (leaving.from.schema_name(), Some(schema)),
            to,
            options,
        )
        .await?;
        sqlx::raw_sql("COMMIT").execute(&mut conn).await?;
        Ok(tables)
    }
    .await;
    let _ = conn.close().await;
    out
}

/// Whether a move to `to` with `options` goes into another server's home: onto its shared
/// tables or into an own schema there.
pub(crate) fn wanted(to: Placement, options: &MoveOptions) -> bool {
    matches!(to, Placement::SharedTable | Placement::OwnSchema)
        && options
            .server
            .as_deref()
            .is_some_and(|s| s != crate::databases::PRIMARY_SERVER)
}
