//! A move between the shared tables and an own schema of one server's home (see
//! `databases::home`): both copies are in the same database, so the copy runs in one
//! transaction there, as a move inside the registry's database does, and the tenant's line
//! switches with it.
//!
//! 1. in the registry transaction: the tenant's row locked and checked (`prepare`);
//! 2. in a transaction on the home: both schemas' migration locks, the tenant's line locked
//!    (it must still name the place the tenant leaves), the fence key taken exclusive (writes
//!    in flight finish, new ones wait), the target built (a new own schema, at the latest
//!    tenant migration), every table copied and verified, and the line changed to name the
//!    target: from the commit, a write of a context resolved for the old place fails
//!    (`TenantMoved`), as the home's fence reads the line;
//! 3. the registry switches and commits (the caller), recording the old copy (the rows left in
//!    the home's shared tables, or the old schema, renamed after the tenant's id in step 2 as
//!    the registry's old schemas are) for `purge_old_copy`.
//!
//! A failure before 2 commits changes nothing. A crash between 2 and 3 leaves the line naming
//! the target while the registry names the source: the tenant's writes are refused (its
//! contexts resolve to the source, which the line no longer names) until the move runs again,
//! which finds the copy made and only switches the registry.

use sqlx::PgConnection;
use tenancy_core::TenantId;
use tenancy_core::home::{Home, TENANT_DATABASE_SCHEMA};

use super::from_database::{lock_database_migrations, source_schema};
use super::{
    Leaving, MoveOptions, Moved, MovedTable, Pair, across, copy_all, raise_fence, switch,
    within_lock_wait,
};
use crate::databases::Databases;
use crate::migrate::Migrations;
use crate::registry::store;
use crate::{Error, Result};

/// Moves tenant `id` from where it lives in server `server`'s home (`leaving`) to `target`,
/// another place in that home, inside the registry transaction `tx` (see the module docs).
/// The caller audits, notifies and commits.
pub(super) async fn run(
    tx: &mut PgConnection,
    databases: &Databases,
    id: TenantId,
    (leaving, target): (&Leaving, &Home),
    migrations: &Migrations,
    options: &MoveOptions,
) -> Result<Moved> {
    let server = leaving.server.as_str();
    let from = source_schema(leaving).to_owned();
    let to_schema = target.schema_name();
    let to = to_schema.unwrap_or(TENANT_DATABASE_SCHEMA).to_owned();
    // The old schema, which no line names once the line moves on, is renamed after the tenant
    // (as the registry's old schemas are): out of the way of a new tenant's schema of the same
    // name, and never one a later tenant could own.
    let old_schema = leaving
        .from
        .schema_name()
        .map(|_| tenancy_core::home::old_copy_schema(id));
    let tables = databases
        .in_home(server, async |home| {
            // Both schemas' migration locks, in one order.
            let (first, second) = if from < to {
                (&from, &to)
            } else {
                (&to, &from)
            };
            lock_database_migrations(&mut *home, first).await?;
            lock_database_migrations(&mut *home, second).await?;
            let line: Option<Option<String>> =
                within_lock_wait(&mut *home, id, options.lock_wait, async |c| {
                    // A line still pending (a move into this home cut off after its switch)
                    // is the tenant's live one: the registry, locked by this move, places it
                    // here.
                    crate::databases::home::make_live(c, id, leaving.from.schema_name()).await?;
                    Ok(sqlx::query_scalar(
                        "SELECT schema_name FROM tenancy.tenants \
                         WHERE id = $1 AND moved_at IS NULL FOR NO KEY UPDATE",
                    )
                    .persistent(false)
                    .bind(id.as_uuid())
                    .fetch_optional(c)
                    .await?)
                })
                .await?;
            match line {
                // A run cut off after its commit here: the copy is made; the registry is next.
                Some(named) if named.as_deref() == to_schema => {
                    return Ok((Vec::new(), None, true));
                }
                // The same, into an own schema named after the slug the tenant had then.
                Some(Some(named))
                    if to_schema.is_some() && leaving.from.schema_name().is_none() =>
                {
                    return Ok((Vec::new(), Some(named), true));
                }
                Some(named) if named.as_deref() == leaving.from.schema_name() => {}
                other => {
                    return Err(Error::MoveRefused {
                        id,
                        reason: format!(
                            "its line in the home database of server {server} names {other:?}, \
                             not the place the registry says it lives ({:?})",
                            leaving.from.schema_name()
                        ),
                    });
                }
            }
            raise_fence(&mut *home, id, options.lock_wait).await?;
            if let Some(schema) = to_schema {
                let script = crate::migrate::fresh_schema_script(schema, migrations);
                sqlx::raw_sql(crate::sql::text(script))
                    .execute(&mut *home)
                    .await
                    .map_err(|e| {
                        if e.as_database_error()
                            .is_some_and(|d| d.code().as_deref() == Some("42P06"))
                        {
                            return Error::MoveRefused {
                                id,
                                reason: format!(
                                    "schema {schema} is in the home database of server {server} \
                                     already: left as it is"
                                ),
                            };
                        }
                        Error::Database(e)
                    })?;
            }
            across::same_text(&mut *home).await?;
            crate::rls::act_for(&mut *home, id).await?;
            let tables: Vec<MovedTable> = copy_all(
                &mut Pair::One(&mut *home),
                id,
                (Some(from.as_str()), Some(to.as_str())),
                target.placement(),
                options,
            )
            .await?;
            sqlx::query("UPDATE tenancy.tenants SET schema_name = $2 WHERE id = $1")
                .persistent(false)
                .bind(id.as_uuid())
                .bind(to_schema)
                .execute(&mut *home)
                .await?;
            if let (Some(from), Some(old)) = (leaving.from.schema_name(), &old_schema) {
                sqlx::raw_sql(crate::sql::text(format!(
                    "ALTER SCHEMA {} RENAME TO {}",
                    tenancy_core::ident::quote(from),
                    tenancy_core::ident::quote(old)
                )))
                .execute(&mut *home)
                .await?;
            }
            Ok((tables, None, false))
        })
        .await?;
    let (tables, adopted, resumed) = tables;
    let adopted = match adopted {
        Some(schema) => {
            Some(databases.server_schema(server, tenancy_core::home::QuotedSchema::new(&schema)?)?)
        }
        None => None,
    };
    let target = adopted.as_ref().unwrap_or(target);
    let mut moved = switch(tx, id, leaving, target, (server, None), tables, options).await?;
    moved.resumed = resumed;
    if let Some(name) = old_schema {
        crate::sql::admin_query(store::OLD_COPY_SCHEMA_SET)
            .bind(id.as_uuid())
            .bind(leaving.placement.as_str())
            .bind(&name)
            .execute(&mut *tx)
            .await?;
        moved.old_copy.schema = Some(name);
    }
    Ok(moved)
}
