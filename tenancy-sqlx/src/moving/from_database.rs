//! A move out of a tenant's own database, or out of another server's home database (a
//! shared-table tenant there, see `databases::home`), to the shared tables or an own schema in
//! the registry's database. In a home the tenant's line in `tenancy.tenants` is its identity
//! row: locked and sealed as an own database's, and the copy reads its rows alone (every
//! statement of the copy and the checks names the tenant).
//!
//! Writes to the tenant database go through that database's own write fence (see
//! `databases::provision::FENCE_DDL`), which checks its identity row. The move:
//!
//! 1. in the registry transaction: the tenant's row locked, the target built (as any move);
//! 2. in a transaction on the tenant database: its identity row locked (`FOR NO KEY UPDATE`:
//!    a `REPEATABLE READ` writer share-locks it before the fence key, so the two never wait
//!    for each other crosswise), then the fence key taken exclusive there, each waiting at
//!    most the lock wait for the writes in flight;
//! 3. both homes' migration histories compared (a move copies rows, not migrations: see
//!    `history`), then every table streamed parents first into the registry transaction, and
//!    verified;
//! 4. the identity row **sealed** (`moved_at`) and the tenant database's transaction
//!    committed: from here no write lands in the old copy, a waiting or stale one fails with
//!    `TenantMoved`;
//! 5. the registry switches and commits (the caller).
//!
//! A failure or crash before 4 rolls both transactions back: nothing changed. Between 4 and 5
//! the tenant is sealed on its old home, its rows whole there, its writes refused as moved
//! (retryable): running the move again finishes it (the source is read as it was sealed).
//! The old database is kept, sealed, under its name and recorded in `tenancy.old_copies`
//! until `purge_old_copy` drops it.

use sqlx::{Connection, PgConnection};
use tenancy_core::home::{Home, TENANT_DATABASE_SCHEMA};
use tenancy_core::{Placement, TenantId};

use super::{
    Leaving, MoveOptions, Moved, MovedTable, Pair, across, build, copy_all, lock_migrations,
    raise_fence, switch, within_lock_wait,
};
use crate::databases::name::DatabaseName;
use crate::databases::{Databases, provision};
use crate::migrate::Migrations;
use crate::{Error, Result};

/// Moves tenant `id` from its database (`leaving`) to `target` inside the registry
/// transaction `tx` (see the module docs). The caller audits, notifies and commits.
pub(super) async fn run(
    tx: &mut PgConnection,
    databases: &Databases,
    id: TenantId,
    (leaving, target): (&Leaving, &Home),
    migrations: &Migrations,
    options: &MoveOptions,
) -> Result<Moved> {
    crate::rls::act_for(tx, id).await?;
    lock_migrations(tx, target).await?;
    build(tx, id, target, migrations).await?;
    let tables = copy_and_seal(
        databases,
        id,
        leaving,
        (&mut *tx, target.schema_name(), target.placement()),
        options,
        (false, None),
    )
    .await?;
    switch(
        tx,
        id,
        leaving,
        target,
        (crate::databases::PRIMARY_SERVER, None),
        tables,
        options,
    )
    .await
}

/// The schema the tenant's tables are in, in the database `leaving` lives in: its own schema
/// in a server's home, else the tenant database's (`public`).
pub(super) fn source_schema(leaving: &Leaving) -> &str {
    match &leaving.from {
        Home::ServerSchema { schema, .. } => schema.name(),
        _ => TENANT_DATABASE_SCHEMA,
    }
}

/// The name of the database `leaving` lives in.
pub(super) fn source_name(leaving: &Leaving) -> Result<DatabaseName> {
    let source = leaving
        .from
        .database()
        .ok_or(Error::UnsupportedPlacement(leaving.placement))?;
    Ok(DatabaseName::parse(source.as_str())?)
}

/// Locks tenant `id`'s identity row in the transaction `source` on its database `name`
/// (`FOR NO KEY UPDATE`: see the module docs); [`Error::WrongDatabase`] if there is none.
/// Returns whether a run of the move cut off before its switch sealed it already (the fence,
/// installed before this, brings the column).
pub(super) async fn lock_identity(
    source: &mut PgConnection,
    id: TenantId,
    name: &DatabaseName,
) -> Result<bool> {
    let sealed: Option<bool> = crate::sql::admin_scalar(
        "SELECT moved_at IS NOT NULL FROM tenancy.tenants WHERE id = $1 FOR NO KEY UPDATE",
    )
    .bind(id.as_uuid())
    .fetch_optional(&mut *source)
    .await?;
    sealed.ok_or_else(|| Error::WrongDatabase {
        tenant: id,
        database: name.as_str().to_owned(),
        found: "no identity row of the tenant".to_owned(),
    })
}

/// Steps 2 to 4 of the module docs: on the tenant's database (`leaving`), the identity row
/// locked and the fence raised; every table copied into `target` (a transaction on the
/// connection given, acting for the tenant, whose home's tables are in schema `to.1` of
/// placement `to.2`) and verified; the source sealed and committed. With `commit_target`
/// the target's transaction (begun with a plain `BEGIN`) commits before the seal, so that a
/// sealed source always has a committed copy: the move between two tenant databases.
///
/// `target_lock`: the target's server and database, when the target is a database others
/// migrate (a server home), whose migration lock is taken on `target` too. The two databases'
/// locks are taken in one order whatever the move's direction (server key, then name), so
/// that two moves the opposite ways between the same two homes never wait for each other
/// across servers, where no deadlock detector sees them.
pub(super) async fn copy_and_seal(
    databases: &Databases,
    id: TenantId,
    leaving: &Leaving,
    (target, to_schema, to): (&mut PgConnection, Option<&str>, Placement),
    options: &MoveOptions,
    (commit_target, target_lock): (bool, Option<(&str, &DatabaseName)>),
) -> Result<Vec<MovedTable>> {
    let name = source_name(leaving)?;
    let mut conn = databases.connect(&leaving.server, &name).await?;
    let tables = async {
        // A fence changed by hand may have let writes by, and would let more: refuse rather
        // than copy around them (see `provision::foreign_fence`).
        let ours = if leaving.from.in_server_home() {
            crate::databases::home::HOME_FENCE_DDL
        } else {
            provision::FENCE_DDL
        };
        if let Some(function) = provision::foreign_fence(&mut conn, ours).await? {
            return Err(Error::MoveRefused {
                id,
                reason: format!(
                    "{function} in database {name} is not the write fence tenancy installs, so \
                     writes to it may not have been fenced; drop it (the move installs the \
                     fence again) once no write is in flight, and move again"
                ),
            });
        }
        // Before the fence is raised, so that writers find it (a database of an older version).
        provision::ensure_fence(&mut conn, ours).await?;
        let mut source = conn.begin().await?;
        // A migration of the tenant database runs under this lock and writes past the fence (a
        // backfill): wait for one in flight, and hold the next off until the seal, so that none
        // changes rows once they are copied (its change would stay in the sealed copy only).
        let target_first = target_lock.is_some_and(|(server, target_name)| {
            (server, target_name.as_str()) < (leaving.server.as_str(), name.as_str())
        });
        let target_schema = to_schema.unwrap_or(TENANT_DATABASE_SCHEMA);
        if target_first {
            lock_database_migrations(&mut *target, target_schema).await?;
        }
        lock_database_migrations(&mut source, source_schema(leaving)).await?;
        if target_lock.is_some() && !target_first {
            lock_database_migrations(&mut *target, target_schema).await?;
        }
        let home = leaving.from.in_server_home();
        let place = leaving.from.schema_name();
        let sealed = within_lock_wait(&mut source, id, options.lock_wait, async |c| {
            if home {
                // A line still pending (a move into this home cut off after its switch) is the
                // tenant's live one: the registry, locked by this move, places it here.
                crate::databases::home::make_live(c, id, place).await?;
            }
            lock_identity(c, id, &name).await
        })
        .await?;
        across::same_text(&mut *target).await?;
        across::same_text(&mut source).await?;
        crate::rls::act_for(&mut source, id).await?;
        raise_fence(&mut source, id, options.lock_wait).await?;
        let tables = copy_all(
            &mut Pair::Two {
                source: &mut source,
                target: &mut *target,
            },
            id,
            (Some(source_schema(leaving)), to_schema),
            to,
            options,
        )
        .await
        .map_err(|e| match e {
            // A rerun of a move cut off after its seal: the tenant's writes stay refused until
            // one finishes, which the operator must know to act on the refusal.
            Error::MoveRefused { id, reason } if sealed => Error::MoveRefused {
                id,
                reason: format!(
                    "{reason}. The tenant is sealed in database {name} by an earlier run of \
                     this move, cut off before its switch: its writes are refused until a run \
                     finishes it"
                ),
            },
            other => other,
        })?;
        if commit_target {
            sqlx::raw_sql("COMMIT").execute(&mut *target).await?;
        }
        // The seal: committed before the switch, so that no write is acknowledged by the old
        // copy once the registry names the new one.
        crate::sql::admin_query("UPDATE tenancy.tenants SET moved_at = now() WHERE id = $1")
            .bind(id.as_uuid())
            .execute(&mut *source)
            .await?;
        source.commit().await?;
        Ok(tables)
    }
    .await;
    let _ = conn.close().await;
    tables
}

/// Takes the migration lock of `schema` in the tenant database (or server home) `conn` is on,
/// in its transaction: the lock `migrate_tenants` takes for that schema there (`public`, or
/// an own schema in a home).
pub(super) async fn lock_database_migrations(conn: &mut PgConnection, schema: &str) -> Result<()> {
    crate::sql::admin_query(
        "SELECT pg_advisory_xact_lock(hashtext('tenancy.migrate'), hashtext($1))",
    )
    .bind(format!("schema:{schema}"))
    .execute(conn)
    .await?;
    Ok(())
}
