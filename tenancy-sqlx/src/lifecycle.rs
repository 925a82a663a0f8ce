//! Tenant lifecycle: suspend, resume, soft delete, restore, purge, rename, hosts. Each needs a
//! [`Superuser`] and is audited in the same transaction as the change; each clears the
//! resolution cache for the tenant, so this handle sees the change at once, and notifies every
//! other handle on commit (see `registry/notify.rs`).

use sqlx::Row;
use tenancy_core::TenantStatus;

use crate::catalog;
use crate::{Error, Result};

/// The lifecycle moves, with the states each may start from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Move {
    Suspend,
    Resume,
    SoftDelete,
    Restore,
}

impl Move {
    pub(crate) fn action(self) -> &'static str {
        match self {
            Self::Suspend => "tenant.suspend",
            Self::Resume => "tenant.resume",
            Self::SoftDelete => "tenant.soft_delete",
            Self::Restore => "tenant.restore",
        }
    }
    pub(crate) fn from(self) -> &'static [&'static str] {
        match self {
            Self::Suspend => &["active"],
            Self::Resume => &["suspended"],
            Self::SoftDelete => &["active", "suspended"],
            Self::Restore => &["deleted"],
        }
    }
    pub(crate) fn to(self) -> TenantStatus {
        match self {
            Self::Suspend => TenantStatus::Suspended,
            Self::Resume | Self::Restore => TenantStatus::Active,
            Self::SoftDelete => TenantStatus::Deleted,
        }
    }
}

/// What [`Tenancy::purge`](crate::Tenancy::purge) removed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Purged {
    /// The tenant's schema, dropped with everything in it.
    Schema(String),
    /// Rows deleted from each shared table, `(table, rows)`.
    Rows(Vec<(String, u64)>),
}

/// `typed` for a unique violation, the database error otherwise.
pub(crate) fn unique_to(e: sqlx::Error, typed: Error) -> Error {
    if e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
    {
        typed
    } else {
        Error::Database(e)
    }
}

/// A table holding a tenant's rows, and the column that says whose.
#[derive(Debug, Clone)]
pub(crate) struct TenantTable {
    pub(crate) oid: i64,
    /// Schema-qualified and quoted.
    pub(crate) name: String,
    /// Its name in its schema, unquoted, as the catalog spells it.
    pub(crate) relname: String,
    /// Quoted: `"tenant_id"`, or the column of its one-column foreign key to the registry.
    pub(crate) column: String,
    /// The column's name, unquoted.
    pub(crate) column_name: String,
}

/// The tables holding a tenant's rows, each listed before the tables it references, so deleting
/// in this order never trips a foreign key (and inserting in the reverse order never does
/// either). With `schema`, the tables of that tenant schema; without, the shared tables in the
/// search path, outside the registry. A table holds tenant rows when it has a `tenant_id`
/// column or a one-column foreign key to `tenancy.tenants` (a model's renamed tenant column).
pub(crate) async fn tenant_tables_children_first(
    conn: &mut sqlx::PgConnection,
    schema: Option<&str>,
) -> Result<Vec<TenantTable>> {
    let tables = crate::sql::admin_query(catalog::TENANT_TABLES)
        .bind(schema)
        .fetch_all(&mut *conn)
        .await?;
    let edges: Vec<(i64, i64)> = crate::sql::admin_query(catalog::FOREIGN_KEY_EDGES)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_>>()?;
    let mut pending: Vec<TenantTable> = tables
        .iter()
        .map(|r| {
            let column_name: String = r.try_get("col")?;
            Ok(TenantTable {
                oid: r.try_get("oid")?,
                name: r.try_get("name")?,
                relname: r.try_get("relname")?,
                column: tenancy_core::ident::quote(&column_name),
                column_name,
            })
        })
        .collect::<Result<_>>()?;
    // Repeatedly take a table no remaining table references; a cycle falls back to name order.
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let referenced = |oid: i64, pending: &[TenantTable]| {
            edges
                .iter()
                .any(|&(child, parent)| parent == oid && pending.iter().any(|t| t.oid == child))
        };
        let pick = pending
            .iter()
            .position(|t| !referenced(t.oid, &pending))
            .unwrap_or(0);
        ordered.push(pending.remove(pick));
    }
    Ok(ordered)
}
