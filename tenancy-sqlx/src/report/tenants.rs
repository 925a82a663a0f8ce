//! Which tenants a report covers: the registry read that finds them and the audit record that
//! names them, on one connection, before any tenant data is read.
//!
//! Its registry statement is the registry store's (`TENANTS_WITH_COLUMN_NOT_NULL`); this adds
//! the `WHERE` for the tenants asked for.

use std::fmt::Write;

use sqlx::Row;
use sqlx::postgres::PgRow;
use tenancy_core::home::DatabaseRef;
use tenancy_core::{Home, Placement, TenantId};

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
    /// `(tenant, quoted schema)`, grouped by report lane, each lane's sorted by tenant.
    pub(crate) schemas: Vec<(TenantId, String)>,
    /// Own-database tenants, sorted by tenant, each read in its database; and own-schema
    /// tenants of other servers, by home database (each home's sorted), read there.
    pub(crate) databases: Vec<OwnDatabase>,
    /// Shared-table tenants of other servers, by home database (in database order, each
    /// home's tenants sorted): each home read by one statement over its tenants.
    pub(crate) homes: Vec<HomeTenants>,
    /// Whether the column asked about is declared `NOT NULL` in the shared tables (false when
    /// unknown).
    pub(crate) not_null: bool,
}

impl Targets {
    /// The tables read outside the registry's database, for the model check: `(a tenant,
    /// database, schema, whether the database is a server home)`, one per own-database tenant
    /// and one per home.
    pub(crate) fn database_tables(&self) -> Vec<(TenantId, &DatabaseRef, &str, bool)> {
        let own = self.databases.iter().flat_map(|d| {
            d.tenants
                .iter()
                .map(|(t, schema)| (*t, &d.database, schema.as_str(), false))
        });
        let homes = self
            .homes
            .iter()
            .filter_map(|h| Some((*h.tenants.first()?, &h.database, HOME_SCHEMA, true)));
        own.chain(homes).collect()
    }
}

/// The quoted schema a server home's tables are in (`TENANT_DATABASE_SCHEMA`).
pub(crate) const HOME_SCHEMA: &str = "\"public\"";

/// The shared-table tenants a report reads in one server's home database.
#[derive(Debug)]
pub(crate) struct HomeTenants {
    pub(crate) database: DatabaseRef,
    /// Sorted.
    pub(crate) tenants: Vec<TenantId>,
}

impl Targets {
    /// Adds tenant `id`, a shared-table tenant of the home `database`.
    fn add_home_tenant(&mut self, database: DatabaseRef, id: TenantId) {
        match self.homes.iter_mut().find(|h| h.database == database) {
            Some(home) => home.tenants.push(id),
            None => self.homes.push(HomeTenants {
                database,
                tenants: vec![id],
            }),
        }
    }
}

/// The tenants a report reads in one database other than the registry's, each in a schema of
/// its own there: an own-database tenant, or the own-schema tenants of a server home.
#[derive(Debug)]
pub(crate) struct OwnDatabase {
    /// The tenants and the quoted schemas their tables are in, as a batch of schemas has them.
    pub(crate) tenants: Vec<(TenantId, String)>,
    pub(crate) database: DatabaseRef,
}

impl Targets {
    /// Adds tenant `id`, an own-schema tenant of the home `database` (its quoted `schema`).
    fn add_home_schema(&mut self, database: DatabaseRef, id: TenantId, schema: String) {
        // A home's database is never a tenant's own: the entry of that database is the home's.
        match self.databases.iter_mut().find(|d| d.database == database) {
            Some(home) => home.tenants.push((id, schema)),
            None => self.databases.push(OwnDatabase {
                tenants: vec![(id, schema)],
                database,
            }),
        }
    }
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
        let mut targets = targets(set, &rows, rt.databases.as_ref())?;
        super::plan::group_by_lane(rt, &mut targets.schemas);
        su.audit(conn, action, &targets.all, Some(detail)).await?;
        Ok(targets)
    })
    .await
}

fn targets(
    set: &TenantSet,
    rows: &[PgRow],
    rt_databases: Option<&crate::databases::Databases>,
) -> Result<Targets> {
    let mut out = Targets::default();
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        let (id, _) = crate::registry::active(row)?;
        if row.try_get::<Option<bool>, _>("not_null")? == Some(true) {
            out.not_null = true;
        }
        let home = crate::registry::home_of(row, rt_databases)?;
        found.push((id, home.placement(), home));
    }
    if let Some(ids) = &set.ids
        && let Some(missing) = ids
            .iter()
            .find(|id| !found.iter().any(|(f, _, _)| f == *id))
    {
        return Err(Error::TenantNotFound(Lookup::Id(*missing)));
    }
    found.sort_by_key(|(id, _, _)| *id);
    for (id, placement, home) in found {
        if set.placement.is_some_and(|p| p != placement) {
            continue;
        }
        match home {
            Home::SharedTable => out.shared.push(id),
            Home::OwnSchema(schema) => out.schemas.push((id, schema.as_sql().to_owned())),
            Home::OwnDatabase { database, schema } => out.databases.push(OwnDatabase {
                tenants: vec![(id, schema.as_sql().to_owned())],
                database,
            }),
            // Read in its server's home, with the other tenants of that home asked for, as the
            // registry's shared tables are read.
            Home::ServerShared { database, .. } => out.add_home_tenant(database, id),
            // An own schema in a server's home: read there with the home's other own-schema
            // tenants asked for, as the registry's schemas are read.
            Home::ServerSchema { database, schema } => {
                out.add_home_schema(database, id, schema.as_sql().to_owned());
            }
            other => return Err(Error::UnsupportedPlacement(other.placement())),
        }
        out.all.push(id);
    }
    Ok(out)
}
