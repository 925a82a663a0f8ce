//! A move from a tenant's own database on one server to a new database of its own on another:
//! the move into a database ([`to_database`](super::to_database)) and the move out of one
//! ([`from_database`](super::from_database)) at once.
//!
//! 1. in the registry transaction: the tenant's row locked, the target server checked (the
//!    caller), and the provisioning lock on the new database's name, so that no
//!    `cleanup_orphans` or other move takes it meanwhile;
//! 2. before anything is made, the target server is checked not to be the source's under
//!    another key: the new database is named after the tenant, like the old one, so there
//!    the two would be one ([`Error::MoveRefused`]). A database of that name on the target
//!    server that is not the source is what an earlier run of this move left when it was cut
//!    off before its switch: it is dropped, unless it says it is another tenant's, a
//!    registry row names it on that server, or the source is sealed and the copy, filled,
//!    holds other rows than the source (a registry restored to before a switch: the copy has
//!    been the tenant's home since). Then the move is refused and the copy kept;
//! 3. the new database is made as provisioning makes one, unregistered, and told whose it is;
//! 4. on the old database, its identity row locked and its fence raised (each waiting at
//!    most the lock wait for the tenant's writes in flight); the migration histories of both
//!    compared (`history`); every table streamed
//!    parents first into a transaction on the new database and verified (the same count and
//!    checksum on both sides); the new database's transaction commits, then the old one is
//!    **sealed** (`moved_at`) and commits;
//! 5. the registry switches to the new database and server, and records the old database
//!    with its server in `tenancy.old_copies` (the caller audits, notifies and commits; then
//!    it closes the connections the old server's budget keeps to the tenant).
//!
//! What a failure leaves: before the seal, the tenant on its old database, writable, and
//! nothing else but, if the move was cut off after step 3 rather than failing, the new
//! database, unregistered. `cleanup_orphans` drops it (a registry row names its name on the
//! old server only, and `databases::probe` tells the two apart), as does the next run of the
//! move, which starts over. After the seal the cleanup keeps it (see `Databases::kept`). After the seal and before the switch commits, the tenant
//! is sealed on its old database with every row, its writes refused with the retryable
//! `TenantMoved`, until the move is run again, which finishes it (reading the sealed copy).
//! The old database is kept, sealed, until `purge_old_copy` drops it on its server.

use sqlx::{Connection, PgConnection, PgPool};
use tenancy_core::home::{Home, TENANT_DATABASE_SCHEMA};
use tenancy_core::{Placement, TenantId};

use super::from_database::{copy_and_seal, lock_identity, source_name, source_schema};
use super::{
    Leaving, MoveOptions, Moved, MovedTable, across, contents, raise_fence, switch,
    within_lock_wait,
};
use crate::databases::name::DatabaseName;
use crate::databases::probe::There;
use crate::databases::{Databases, provision};
use crate::migrate::Migrations;
use crate::{Error, Result};

/// Moves tenant `id` from its database (`leaving`) into a new one on server `server` (listed
/// and mapped, not the tenant's), inside the registry transaction `tx` (see the module docs).
pub(super) async fn run(
    tx: &mut PgConnection,
    (databases, pool): (&Databases, &PgPool),
    id: TenantId,
    (leaving, server): (&Leaving, &str),
    migrations: &Migrations,
    options: &MoveOptions,
) -> Result<Moved> {
    let source = source_name(leaving)?;
    crate::rls::act_for(tx, id).await?;
    let name = databases.name_for(id);
    provision::lock_name(tx, &name).await?;
    clear_the_way(
        tx,
        (databases, pool),
        id,
        (leaving, server),
        (&source, &name),
        options,
    )
    .await?;
    let made = databases
        .create_unregistered(pool, server, (id, leaving.slug.as_str()), migrations)
        .await
        .map_err(|e| match e {
            Error::Provision(detail) => Error::MoveRefused { id, reason: detail },
            other => other,
        })?;
    let target = Home::of(Placement::OwnDatabase, None, Some(made.as_str()))
        .map_err(|u| Error::UnsupportedPlacement(u.placement))?;
    let tables = match fill(databases, (server, &made), id, leaving, options).await {
        Ok(tables) => tables,
        Err(e) => {
            // The source is whole (sealed or not, a rerun reads it): the new database goes.
            if let Err(dropped) = databases.drop_database(pool, id, (server, &made)).await {
                tracing::warn!(tenant = %id, database = %made, server, error = %dropped,
                    "dropping the database of a failed move failed; the next move drops it");
            }
            return Err(e);
        }
    };
    switch(
        tx,
        id,
        leaving,
        &target,
        (server, Some(made.as_str())),
        tables,
        options,
    )
    .await
}

/// Step 2 of the module docs: refuses a target server that holds the tenant's database
/// `source` itself (the source's server under another key) or a database named `name` that
/// says it is another tenant's, and drops one that a cut-off run of this move left. Which it
/// is, the source tells (see `databases::probe`).
async fn clear_the_way(
    tx: &mut PgConnection,
    (databases, pool): (&Databases, &PgPool),
    id: TenantId,
    (leaving, server): (&Leaving, &str),
    (source, name): (&DatabaseName, &DatabaseName),
    options: &MoveOptions,
) -> Result<()> {
    let (there, sealed) = databases
        .probe(
            id,
            (&leaving.server, source),
            (server, name),
            async |c: &mut PgConnection| {
                within_lock_wait(c, id, options.lock_wait, async |c| {
                    lock_identity(c, id, source).await
                })
                .await
            },
        )
        .await?;
    match there {
        There::Missing => return Ok(()),
        There::Leftover => {}
        There::Another(owners) => {
            return Err(Error::MoveRefused {
                id,
                reason: format!(
                    "server {server} holds a database named {name} that says it is another \
                     tenant's ({owners:?}); it is kept and nothing was changed"
                ),
            });
        }
        There::Same => {
            return Err(Error::MoveRefused {
                id,
                reason: format!(
                    "servers {} and {server} are one PostgreSQL server (database {source} is \
                     there under both keys), and the new database would take the old one's \
                     name; nothing was changed",
                    leaving.server
                ),
            });
        }
    }
    // Never one a registry row names on that server (a restore gone wrong could leave one):
    // refused, as the orphan cleanup keeps it, rather than dropped.
    let registered: bool = crate::sql::admin_scalar(crate::registry::store::DATABASE_REGISTERED_ON)
        .bind(name.as_str())
        .bind(server)
        .fetch_one(&mut *tx)
        .await?;
    if registered {
        return Err(Error::MoveRefused {
            id,
            reason: format!(
                "server {server} holds a database named {name} that the registry records; \
                 nothing was changed"
            ),
        });
    }
    if sealed == Some(true) {
        refuse_writes_the_source_lacks(
            databases,
            id,
            (&leaving.server, source, source_schema(leaving)),
            (server, name),
            options.lock_wait,
        )
        .await?;
    }
    tracing::info!(tenant = %id, database = %name, server,
        "dropping the database a cut-off move of the tenant left");
    databases.drop_database(pool, id, (server, name)).await
}

/// Next to a sealed source, a copy on the target is what a run cut off between its seal and
/// its switch left: the source's rows exactly, since the source took no write after its seal
/// and the copy was no one's home; or, cut off during its fill, nothing. Unless the registry
/// was restored to before that switch: then the copy has been the tenant's home since, and may
/// hold writes the stale source lacks, which dropping it would lose. So a copy holding any of
/// the tenant's rows goes only if it holds what the source holds (see `contents`), and then
/// sealed first, so that no write of a context still routed to it lands between the
/// comparison and the drop; else the move is refused and the copy kept, for an operator to
/// see which is the tenant's home.
async fn refuse_writes_the_source_lacks(
    databases: &Databases,
    id: TenantId,
    (here, source, source_schema): (&str, &DatabaseName, &str),
    (there, name): (&str, &DatabaseName),
    wait: std::time::Duration,
) -> Result<()> {
    let mut conn = databases.connect(there, name).await?;
    let out = async {
        // Half made (cut off between `CREATE DATABASE` and its stamp): no identity table, so
        // never anyone's home. Asked first, since the fence's check names the table and, where
        // not even the schema exists, fails rather than answering.
        if !provision::has_identity(&mut conn).await? {
            return Ok(());
        }
        provision::ensure_fence(&mut conn, provision::FENCE_DDL).await?;
        let mut copy = conn.begin().await?;
        across::same_text(&mut copy).await?;
        crate::rls::act_for(&mut copy, id).await?;
        // Its writers drained and held off, as a move holds off its source's.
        match within_lock_wait(&mut copy, id, wait, async |c| {
            lock_identity(c, id, name).await
        })
        .await
        {
            // Not stamped for the tenant (the probe refused another's): never its home.
            Err(Error::WrongDatabase { .. }) => return Ok(()),
            other => other?,
        };
        raise_fence(&mut copy, id, wait).await?;
        let of_copy = contents::shapes(&mut copy, id, TENANT_DATABASE_SCHEMA).await?;
        if contents::rows(&mut copy, id, &of_copy).await? == 0 {
            return Ok(());
        }
        let mut held = databases.connect(here, source).await?;
        let differs = async {
            let mut sealed = held.begin().await?;
            across::same_text(&mut sealed).await?;
            crate::rls::act_for(&mut sealed, id).await?;
            let of_source = contents::shapes(&mut sealed, id, source_schema).await?;
            contents::first_difference(id, (&mut sealed, &of_source), (&mut copy, &of_copy)).await
        }
        .await;
        let _ = held.close().await;
        let Some(d) = differs? else {
            // The same rows: sealed, so that nothing is written to it before it goes.
            crate::sql::admin_query("UPDATE tenancy.tenants SET moved_at = now() WHERE id = $1")
                .bind(id.as_uuid())
                .execute(&mut *copy)
                .await?;
            copy.commit().await?;
            return Ok(());
        };
        Err(Error::MoveRefused {
            id,
            reason: format!(
                "server {there} holds a database named {name}, left by an earlier run of this \
                 move, whose rows differ from the sealed source's ({}: {} rows in {source} on \
                 server {here}, {} in the copy): it may have taken writes as the tenant's home \
                 after a switch the registry no longer records (restored from a backup?). It \
                 is kept and nothing was changed: if it is the tenant's home, point the \
                 registry at it; if not (a migration that changed rows ran on one side only), \
                 drop it and run the move again",
                d.table, d.source_rows, d.copy_rows
            ),
        })
    }
    .await;
    let _ = conn.close().await;
    out
}

/// Step 4 of the module docs: the new database `database` on `server` filled from the old one,
/// verified and committed, then the old one sealed.
async fn fill(
    databases: &Databases,
    (server, database): (&str, &DatabaseName),
    id: TenantId,
    leaving: &Leaving,
    options: &MoveOptions,
) -> Result<Vec<MovedTable>> {
    let mut conn = databases.connect(server, database).await?;
    let out = async {
        // A plain transaction, which `copy_and_seal` commits before it seals the source.
        sqlx::raw_sql("BEGIN").execute(&mut conn).await?;
        crate::rls::act_for(&mut conn, id).await?;
        copy_and_seal(
            databases,
            id,
            leaving,
            (
                &mut conn,
                Some(TENANT_DATABASE_SCHEMA),
                Placement::OwnDatabase,
            ),
            options,
            (true, None),
        )
        .await
    }
    .await;
    let _ = conn.close().await;
    out
}
