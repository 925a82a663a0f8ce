//! A move copies rows, not migrations: the new home is built at the mover's latest tenant
//! migrations (an own schema from a spare or the migrations, a database from the template),
//! or is the shared tables at theirs. Rows copied from a home that is behind (a tenant
//! migration that failed there, or has not run yet) would land in a home whose history says
//! that migration ran, so its backfill would never run on them; rows from a home that is
//! ahead would land in tables that lack its changes. So a move goes ahead only when both
//! histories record the same migrations with the same checksums.
//!
//! Shared tables with no history at all may be the application's own (made by its own
//! migrations, not tenancy's tenant migrations), or tenancy's with the history lost: only the
//! application can tell, with `MoveOptions::unmanaged_shared_tables`, and then the move does
//! not compare them and goes ahead as the copy's column checks allow. An own schema or
//! database always has a history, tenancy made it.

use std::collections::BTreeMap;

use sqlx::{PgConnection, Row};
use tenancy_core::TenantId;

use super::Pair;
use crate::{Error, Result};

/// Refuses the move of tenant `id` ([`Error::MoveRefused`]) unless the migration history of
/// its home in schema `from` (`None`: the shared tables) and of the new home in schema `to`
/// record the same versions with the same checksums. Both homes' migration locks are held.
/// `unmanaged_shared`: an empty shared-table history is the application's own tables (see the
/// module docs), not compared.
pub(super) async fn check_same(
    pair: &mut Pair<'_>,
    id: TenantId,
    (from, to): (Option<&str>, Option<&str>),
    unmanaged_shared: bool,
) -> Result<()> {
    let source = read(pair.source(), id, from).await?;
    let target = read(pair.target(), id, to).await?;
    let shared_empty = (from.is_none() && source.is_empty()) || (to.is_none() && target.is_empty());
    if source == target || (unmanaged_shared && shared_empty) {
        return Ok(());
    }
    let behind: Vec<i64> = target
        .keys()
        .filter(|v| !source.contains_key(v))
        .copied()
        .collect();
    let ahead: Vec<i64> = source
        .keys()
        .filter(|v| !target.contains_key(v))
        .copied()
        .collect();
    let changed: Vec<i64> = source
        .iter()
        .filter(|(v, sum)| target.get(v).is_some_and(|t| t != *sum))
        .map(|(v, _)| *v)
        .collect();
    let mut differences = Vec::new();
    if !behind.is_empty() {
        differences.push(format!(
            "its home has not run migrations {behind:?} that the new home has (run \
             `migrate_tenants` for it, or fix the failing migration, first)"
        ));
    }
    if !ahead.is_empty() {
        differences.push(format!(
            "its home has run migrations {ahead:?} that the new home has not (migrate the \
             new placement first, with these migrations in this handle's tenant migrations)"
        ));
    }
    if !changed.is_empty() {
        differences.push(format!(
            "migrations {changed:?} ran with other text in its home than in the new home"
        ));
    }
    if shared_empty {
        differences.push(
            "tenancy has no history of the shared tables: if the application migrates them \
             itself, say so with MoveOptions::unmanaged_shared_tables"
                .to_owned(),
        );
    }
    Err(Error::MoveRefused {
        id,
        reason: format!(
            "a move copies rows, not migrations: {}; nothing was changed",
            differences.join("; ")
        ),
    })
}

/// The history of the home in schema `schema` (`None`: the shared tables), version to
/// checksum; empty where there is no history table (no migration ever ran there).
async fn read(
    conn: &mut PgConnection,
    id: TenantId,
    schema: Option<&str>,
) -> Result<BTreeMap<i64, Vec<u8>>> {
    let table = match schema {
        Some(schema) => format!("{}.tenancy_migrations", tenancy_core::ident::quote(schema)),
        None => "tenancy.shared_table_migrations".to_owned(),
    };
    // Read only if it is as tenancy makes it: a view, a row-security policy or a column type
    // there (whoever owns the schema may make one) would run its owner's functions with the
    // mover's rights. Locked before it is looked at, so that it cannot change in between.
    let exists: bool = crate::sql::admin_scalar("SELECT pg_catalog.to_regclass($1) IS NOT NULL")
        .bind(&table)
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(BTreeMap::new());
    }
    crate::sql::admin_query(crate::sql::text(format!(
        "LOCK TABLE {table} IN ACCESS SHARE MODE"
    )))
    .execute(&mut *conn)
    .await?;
    let (kind, rls, foreign): (String, bool, bool) =
        crate::sql::admin_query_as(crate::sql::text(format!(
            "SELECT c.relkind::text, c.relrowsecurity, {} FROM pg_catalog.pg_class c \
             WHERE c.oid = pg_catalog.to_regclass($1)",
            crate::migrate::foreign_history("pg_catalog.to_regclass($1)")
        )))
        .bind(&table)
        .fetch_one(&mut *conn)
        .await?;
    if foreign {
        return Err(Error::MoveRefused {
            id,
            reason: format!(
                "{table} is not the plain table tenancy keeps a migration history in \
                 (relation kind {kind}{}; or a trigger, rule, check, default, index or column \
                 type of its owner's); nothing was read and nothing was changed",
                if rls { ", with row-level security" } else { "" }
            ),
        });
    }
    let rows = crate::sql::admin_query(crate::sql::text(format!(
        "SELECT version, checksum FROM {table}"
    )))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("version")?, row.try_get("checksum")?)))
        .collect()
}
