//! A move from the registry's database (the shared tables or an own schema) into a database of
//! the tenant's own, on the primary server or another one the handle maps.
//!
//! The registry transaction holds the tenant's row and, once the copy starts, its write fence,
//! as in every move (see the parent module). The copy crosses to a second connection, on the
//! new database:
//!
//! 1. in the registry transaction, the provisioning lock on the new database's name, so that
//!    `cleanup_orphans` takes the database for no leftover while the move runs;
//! 2. the database is made as provisioning makes one (a spare, the template, or empty and
//!    migrated), and told whose it is;
//! 3. the fence goes up; each table is streamed parents first out of the registry transaction
//!    into a transaction on the new database, then verified by the same count and checksum
//!    computed on both sides;
//! 4. the new database's transaction commits, then the registry switches (the caller audits,
//!    notifies and commits).
//!
//! Any failure before 4 drops the new database: nothing is left half-made. A crash or a
//! cancellation between the two commits leaves a database the registry names as no one's: the
//! lock of 1 fell with the registry transaction, so `cleanup_orphans` drops it. Writes to the
//! old home wait behind the fence and then fail with `TenantMoved`; none lands on the old copy
//! after the switch, which is kept until `purge_old_copy`.

use sqlx::{Connection, PgConnection, PgPool};
use tenancy_core::home::Home;
use tenancy_core::{Placement, TenantId};

use super::{
    MoveOptions, Moved, Pair, across, copy_all, lock_migrations, prepare, raise_fence, switch,
};
use crate::databases::name::DatabaseName;
use crate::databases::{Databases, PRIMARY_SERVER, provision};
use crate::migrate::Migrations;
use crate::{Error, Result};

/// Moves tenant `id` into a database of its own on the server `options` name, inside the
/// registry transaction `tx` (see the module docs). The caller audits, notifies and commits.
pub(crate) async fn run(
    tx: &mut PgConnection,
    (databases, pool): (&Databases, &PgPool),
    id: TenantId,
    migrations: &Migrations,
    options: &MoveOptions,
) -> Result<Moved> {
    let server = options.server.as_deref().unwrap_or(PRIMARY_SERVER);
    let leaving = prepare(
        tx,
        Some(databases),
        id,
        Placement::OwnDatabase,
        options.server.as_deref(),
    )
    .await?;
    // Before anything is made.
    super::check_target_server(tx, databases, server).await?;
    if leaving.from.database().is_some() {
        // From its own database on another server.
        return super::between::run(
            tx,
            (databases, pool),
            id,
            (&leaving, server),
            migrations,
            options,
        )
        .await;
    }
    crate::rls::act_for(tx, id).await?;
    lock_migrations(tx, &leaving.from).await?;
    let name = databases.name_for(id);
    provision::lock_name(tx, &name).await?;
    let made = databases
        .create_unregistered(pool, server, (id, leaving.slug.as_str()), migrations)
        .await
        .map_err(|e| match e {
            Error::Provision(detail) => Error::MoveRefused {
                id,
                reason: format!(
                    "{detail} (a leftover of a move that crashed is dropped by \
                     Tenancy::cleanup_orphans)"
                ),
            },
            other => other,
        })?;
    let target = Home::of(Placement::OwnDatabase, None, Some(made.as_str()))
        .map_err(|u| Error::UnsupportedPlacement(u.placement))?;
    match fill(tx, databases, (server, &made), id, &leaving, options).await {
        Ok(tables) => {
            // From here a failure leaves the committed database to `cleanup_orphans`: the
            // registry transaction's outcome (so whether it names the database) is the
            // server's to decide.
            switch(
                tx,
                id,
                &leaving,
                &target,
                (server, Some(made.as_str())),
                tables,
                options,
            )
            .await
        }
        Err(e) => {
            // Nothing is left half-made: the new database goes (the registry never named it).
            if let Err(dropped) = databases.drop_database(pool, id, (server, &made)).await {
                tracing::warn!(tenant = %id, database = %made, error = %dropped,
                    "dropping the database of a failed move failed; cleanup_orphans drops it");
            }
            Err(e)
        }
    }
}

/// Steps 3 and 4 of the module docs up to the new database's commit: the fence, the copy, its
/// verification.
async fn fill(
    tx: &mut PgConnection,
    databases: &Databases,
    (server, database): (&str, &DatabaseName),
    id: TenantId,
    leaving: &super::Leaving,
    options: &MoveOptions,
) -> Result<Vec<super::MovedTable>> {
    let mut conn = databases.connect(server, database).await?;
    let out = async {
        let mut target = conn.begin().await?;
        across::same_text(tx).await?;
        across::same_text(&mut target).await?;
        crate::rls::act_for(&mut target, id).await?;
        raise_fence(tx, id, options.lock_wait).await?;
        let tables = copy_all(
            &mut Pair::Two {
                source: tx,
                target: &mut target,
            },
            id,
            (
                leaving.from.schema_name(),
                Some(tenancy_core::home::TENANT_DATABASE_SCHEMA),
            ),
            Placement::OwnDatabase,
            options,
        )
        .await?;
        target.commit().await?;
        Ok(tables)
    }
    .await;
    let _ = conn.close().await;
    out
}
