//! Which tenants a report covers: the registry read that finds them and the audit record that
//! names them, on one connection, before any tenant data is read.
//!
//! Its registry statement is the registry store's (`TENANTS_WITH_COLUMN_NOT_NULL`); this adds
//! the `WHERE` for the tenants asked for.

use std::fmt::Write;

use sqlx::Row;
use sqlx::postgres::PgRow;
use tenancy_core::{Placement, TenantId};

use crate::registry::store;
use crate::runtime::Runtime;
use crate::{Error, Lookup, Result, Superuser};

/// The tenants a report was asked to cover.
#[derive(Debug, Clone, Default)]
pub(crate) struct TenantSet {
    /// An explicit list (sorted, without duplicates), or every active tenant.
    pub(crate) ids: Option<Vec<TenantId>>,
    pub(crate) placement: Option<Placement>,
}

impl TenantSet {
    pub(crate) fn describe(&self) -> String {
        let mut out = match &self.ids {
            Some(ids) => format!("{} listed tenants", ids.len()),
            None => "all active tenants".to_owned(),
        };
        if let Some(p) = self.placement {
            let _ = write!(out, " on {p}");
        }
        out
    }
}

/// The tenants a report reads, by placement.
#[derive(Debug, Default)]
pub(crate) struct Targets {
    /// Every tenant read, sorted.
    pub(crate) all: Vec<TenantId>,
    pub(crate) shared: Vec<TenantId>,
    /// `(tenant, quoted schema)`, sorted by tenant.
    pub(crate) schemas: Vec<(TenantId, String)>,
    /// Whether the column asked about is declared `NOT NULL` in the shared tables (false when
    /// unknown).
    pub(crate) not_null: bool,
}

/// Finds the tenants of `set` and audits the report under `su`, on one connection, before any
/// tenant data is read. Only active tenants are read: a listed tenant that is unknown,
/// suspended or deleted is an error, as it would be for resolution.
///
/// `column`, a (quoted table, column) of the shared tables, asks in the same round trip whether
/// that column is declared `NOT NULL` ([`Targets::not_null`]).
pub(crate) async fn resolve_and_audit(
    su: &Superuser,
    set: &TenantSet,
    action: &str,
    detail: &str,
    column: Option<(&str, &str)>,
) -> Result<Targets> {
    su.check_active()?;
    let rt: &Runtime = su.runtime();
    const HEAD: &str = store::TENANTS_WITH_COLUMN_NOT_NULL;
    static BY_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static ACTIVE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let (table, name) = column.unzip();
    let query = match &set.ids {
        Some(ids) => {
            let ids: Vec<uuid::Uuid> = ids.iter().map(TenantId::as_uuid).collect();
            let sql = BY_ID.get_or_init(|| format!("{HEAD}WHERE id = ANY($3)"));
            crate::sql::admin_query(sqlx::SqlStr::from_static(sql.as_str()))
                .bind(table)
                .bind(name)
                .bind(ids)
        }
        None => {
            let sql = ACTIVE.get_or_init(|| format!("{HEAD}WHERE status = 'active'"));
            crate::sql::admin_query(sqlx::SqlStr::from_static(sql.as_str()))
                .bind(table)
                .bind(name)
        }
    };
    rt.with_conn(async |conn| {
        let rows = query.fetch_all(&mut *conn).await?;
        let targets = targets(set, &rows)?;
        su.audit(conn, action, &targets.all, Some(detail)).await?;
        Ok(targets)
    })
    .await
}

fn targets(set: &TenantSet, rows: &[PgRow]) -> Result<Targets> {
    let mut out = Targets::default();
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        let (id, _) = crate::registry::active(row)?;
        if row.try_get::<Option<bool>, _>("not_null")? == Some(true) {
            out.not_null = true;
        }
        let placement: Placement = row.try_get::<String, _>("placement")?.parse()?;
        let schema: Option<String> = row.try_get("schema_name")?;
        found.push((id, placement, schema));
    }
    if let Some(ids) = &set.ids
        && let Some(missing) = ids
            .iter()
            .find(|id| !found.iter().any(|(f, _, _)| f == *id))
    {
        return Err(Error::TenantNotFound(Lookup::Id(*missing)));
    }
    found.sort_by_key(|(id, _, _)| *id);
    for (id, placement, schema) in found {
        if set.placement.is_some_and(|p| p != placement) {
            continue;
        }
        match (placement, schema) {
            (Placement::SharedTable, _) => out.shared.push(id),
            (Placement::OwnSchema, Some(schema)) => {
                out.schemas.push((id, tenancy_core::ident::quote(&schema)))
            }
            (other, _) => return Err(Error::UnsupportedPlacement(other)),
        }
        out.all.push(id);
    }
    Ok(out)
}
