//! Export one tenant to a portable archive, and import an archive into a new or empty tenant.
//!
//! The archive is PostgreSQL's COPY text format, one section per table, without the tenant
//! column: it imports into a tenant of either placement, under another id. Export reads one
//! consistent snapshot; import runs in one transaction and verifies every table's row count, so
//! a failed import leaves the target tenant empty.

use sqlx::{PgConnection, Row};
use tenancy_core::TenantId;

use crate::catalog;
use crate::lifecycle::TenantTable;
use crate::registry::store;
use crate::{Error, Lookup, Result};

const MAGIC: &str = "tenancy-archive 1";

/// One table of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchivedTable {
    /// The table's name, unqualified.
    pub name: String,
    /// Its columns, without the tenant column, in the data's order.
    pub columns: Vec<String>,
    /// How many rows the data holds.
    pub rows: u64,
    /// The rows, in COPY text format.
    pub data: Vec<u8>,
}

/// A tenant's rows, portable between databases, placements and tenant ids.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantArchive {
    /// The tenant it was exported from.
    pub source: TenantId,
    /// Its tables, parents before children (the order to insert in).
    pub tables: Vec<ArchivedTable>,
}

impl TenantArchive {
    /// The archive as bytes, to write to a file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{MAGIC}\nsource {}\n", self.source).into_bytes();
        for t in &self.tables {
            out.extend(
                format!(
                    "table {} rows {} bytes {} columns {}\n",
                    t.name,
                    t.rows,
                    t.data.len(),
                    t.columns.join(",")
                )
                .into_bytes(),
            );
            out.extend(&t.data);
        }
        out.extend(b"end\n");
        out
    }

    /// Reads an archive written by [`TenantArchive::to_bytes`].
    ///
    /// # Errors
    /// [`Error::Archive`] for anything malformed or truncated, [`Error::Invalid`] for a table
    /// or column name that is not an identifier.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader(bytes);
        if r.line()? != MAGIC {
            return Err(bad("not a tenancy archive (or an unknown version)"));
        }
        let source = r
            .line()?
            .strip_prefix("source ")
            .ok_or_else(|| bad("missing source"))?
            .parse::<TenantId>()?;
        let mut tables = Vec::new();
        loop {
            let header = r.line()?;
            if header == "end" {
                break;
            }
            let words: Vec<&str> = header.split(' ').collect();
            let [
                "table",
                name,
                "rows",
                rows,
                "bytes",
                len,
                "columns",
                columns,
            ] = words[..]
            else {
                return Err(bad("malformed table header"));
            };
            tenancy_core::ident::validate(name)?;
            let columns: Vec<String> = columns.split(',').map(str::to_owned).collect();
            for c in &columns {
                tenancy_core::ident::validate(c)?;
            }
            let len: usize = len.parse().map_err(|_| bad("malformed length"))?;
            let rows: u64 = rows.parse().map_err(|_| bad("malformed row count"))?;
            tables.push(ArchivedTable {
                name: name.to_owned(),
                columns,
                rows,
                data: r.take(len)?.to_vec(),
            });
        }
        Ok(Self { source, tables })
    }
}

fn bad(what: &str) -> Error {
    Error::Archive(what.to_owned())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn line(&mut self) -> Result<String> {
        let end = self
            .0
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("truncated archive"))?;
        let line = std::str::from_utf8(&self.0[..end]).map_err(|_| bad("header is not UTF-8"))?;
        self.0 = &self.0[end + 1..];
        Ok(line.to_owned())
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        if self.0.len() < len {
            return Err(bad("truncated table data"));
        }
        let (head, tail) = self.0.split_at(len);
        self.0 = tail;
        Ok(head)
    }
}

/// The tenant's schema (own-schema placement), or `None` for shared tables.
pub(crate) async fn placement_schema(
    conn: &mut PgConnection,
    id: TenantId,
) -> Result<Option<String>> {
    let row = crate::sql::admin_query(store::TENANT_SCHEMA)
        .bind(id.as_uuid())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::TenantNotFound(Lookup::Id(id)))?;
    Ok(row.try_get("schema_name")?)
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

pub(crate) fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| tenancy_core::ident::quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `"schema"."table"` -> `table`, as the archive names tables.
pub(crate) fn bare_name(qualified: &str) -> &str {
    qualified
        .rsplit('.')
        .next()
        .unwrap_or(qualified)
        .trim_matches('"')
}
