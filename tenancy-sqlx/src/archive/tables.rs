//! The tables an archive is read from and written to: a tenant's tables in its placement, each
//! under its section key, and the columns a section carries.

use sqlx::{PgConnection, Row};
use tenancy_core::TenantId;

use super::format::SectionKey;
use crate::catalog;
use crate::lifecycle::{TenantTable, tenant_tables_children_first};
use crate::registry::store;
use crate::{ArchiveError, Error, Lookup, Result};

/// A table of the tenant's placement, with the key its archive section has.
pub(crate) struct KeyedTable {
    pub(crate) key: SectionKey,
    pub(crate) table: TenantTable,
}

/// Tenant `id`'s tables, children first, each with its section key. Refuses a table whose name
/// an archive cannot carry, and two tables of one name (in two schemas of the search path):
/// a section names a table without its schema, so that it moves between placements.
///
/// `in_database` is the schema of an own-database tenant's tables when `conn` is a connection
/// to its database; otherwise the registry on `conn` says where the tenant's tables are.
pub(crate) async fn tenant_tables(
    conn: &mut PgConnection,
    id: TenantId,
    in_database: Option<&str>,
) -> Result<Vec<KeyedTable>> {
    let schema = match in_database {
        Some(schema) => Some(schema.to_owned()),
        None => {
            let row = crate::sql::admin_query(store::TENANT_SCHEMA)
                .bind(id.as_uuid())
                .fetch_optional(&mut *conn)
                .await?
                .ok_or(Error::TenantNotFound(Lookup::Id(id)))?;
            // An own-database tenant's rows are not in this database: reading the shared
            // tables for it would archive nothing and say nothing.
            if row.try_get::<Option<String>, _>("database_name")?.is_some() {
                return Err(Error::UnsupportedPlacement(
                    tenancy_core::Placement::OwnDatabase,
                ));
            }
            // Nor are those of a shared-table tenant on another server (its server's home).
            let server: String = row.try_get("server")?;
            if server != tenancy_core::home::PRIMARY_SERVER {
                return Err(Error::ServerHomeUnsupported {
                    tenant: id,
                    server,
                    action: "reading its tables for an archive",
                });
            }
            row.try_get("schema_name")?
        }
    };
    let tables = tenant_tables_children_first(conn, schema.as_deref()).await?;
    let mut keyed: Vec<KeyedTable> = Vec::with_capacity(tables.len());
    for table in tables {
        let key = SectionKey::table(&table.relname)?;
        if let Some(twin) = keyed.iter().find(|k| k.key == key) {
            return Err(ArchiveError::SameName {
                name: key.name,
                first: twin.table.name.clone(),
                second: table.name,
            }
            .into());
        }
        keyed.push(KeyedTable { key, table });
    }
    Ok(keyed)
}

/// The columns of a table but its tenant column and generated columns, in table order.
pub(crate) async fn data_columns(
    conn: &mut PgConnection,
    table: &TenantTable,
) -> Result<Vec<String>> {
    Ok(crate::sql::admin_scalar(catalog::DATA_COLUMNS)
        .bind(table.oid)
        .bind(&table.column_name)
        .fetch_all(&mut *conn)
        .await?)
}

/// Columns quoted and comma-separated, for SQL text.
pub(crate) fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| tenancy_core::ident::quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}
