//! Export one tenant to a portable archive, and import an archive into a new or empty tenant.
//!
//! The archive is PostgreSQL's COPY text format, one section per table, without the tenant
//! column: it imports into a tenant of either placement, under another id. Export reads one
//! consistent snapshot; import runs in one transaction and verifies every table's row count, so
//! a failed import leaves the target tenant empty.

use futures_util::TryStreamExt;
use sqlx::{PgConnection, Row};
use tenancy_core::TenantId;

use crate::lifecycle::{TenantTable, tenant_tables_children_first};
use crate::{Error, Lookup, Result, Superuser, Tenancy};

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
    let row = crate::sql::admin_query("SELECT schema_name FROM tenancy.tenants WHERE id = $1")
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
    Ok(crate::sql::admin_scalar(
        "SELECT attname::text FROM pg_attribute \
         WHERE attrelid = $1::bigint::oid AND attnum > 0 AND NOT attisdropped \
           AND attgenerated = '' AND attname <> $2 ORDER BY attnum",
    )
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

impl Tenancy {
    /// Exports every row of one tenant (any status) from one consistent snapshot. Audited
    /// (`tenant.export`) before any row is read, so that no export goes unrecorded.
    ///
    /// # Errors
    /// [`Error::TenantNotFound`], [`Error::Database`].
    pub async fn export_tenant(&self, su: &Superuser, id: TenantId) -> Result<TenantArchive> {
        self.check_superuser(su)?;
        self.runtime()
            .with_conn(async |c| su.audit(c, "tenant.export", &[id], None).await)
            .await?;
        let mut tx = self.runtime().begin().await?;
        sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        crate::rls::act_for(&mut tx, self.runtime(), id).await?;
        let schema = placement_schema(&mut tx, id).await?;
        let mut tables = Vec::new();
        for table in tenant_tables_children_first(&mut tx, schema.as_deref())
            .await?
            .into_iter()
            .rev()
        {
            let columns = data_columns(&mut tx, &table).await?;
            let qualified = &table.name;
            // The uuid is formatted by us: no injection through it.
            let copy = format!(
                "COPY (SELECT {} FROM {qualified} WHERE {} = '{id}') TO STDOUT",
                column_list(&columns),
                table.column
            );
            let data: Vec<u8> = tx
                .copy_out_raw(&copy)
                .await?
                .try_fold(Vec::new(), |mut acc, chunk| async move {
                    acc.extend_from_slice(&chunk);
                    Ok(acc)
                })
                .await?;
            let rows = data.iter().filter(|&&b| b == b'\n').count() as u64;
            tables.push(ArchivedTable {
                name: bare_name(qualified).to_owned(),
                columns,
                rows,
                data,
            });
        }
        tx.commit().await?;
        Ok(TenantArchive { source: id, tables })
    }

    /// Imports an archive into tenant `into`, which must exist and have no rows. Every table of
    /// the archive must exist in the target's placement with the archived columns. One
    /// transaction; each table's row count is verified. Audited. Returns the rows imported.
    ///
    /// # Errors
    /// [`Error::Archive`] if the target is not empty, a table or column is missing, or a count
    /// does not match; [`Error::TenantNotFound`]; [`Error::Database`]. Nothing is imported then.
    pub async fn import_tenant(
        &self,
        su: &Superuser,
        archive: &TenantArchive,
        into: TenantId,
    ) -> Result<u64> {
        self.check_superuser(su)?;
        // COPY through a temporary table: the connection is reset afterwards.
        let mut tx = self.runtime().begin().await?;
        crate::sql::admin_query("SELECT 1 FROM tenancy.tenants WHERE id = $1 FOR UPDATE")
            .bind(into.as_uuid())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::TenantNotFound(Lookup::Id(into)))?;
        crate::rls::act_for(&mut tx, self.runtime(), into).await?;
        let schema = placement_schema(&mut tx, into).await?;
        let targets = tenant_tables_children_first(&mut tx, schema.as_deref()).await?;
        for target in &targets {
            let qualified = &target.name;
            let n: i64 = crate::sql::admin_scalar(crate::sql::text(format!(
                "SELECT count(*) FROM {qualified} WHERE {} = $1",
                target.column
            )))
            .bind(into.as_uuid())
            .fetch_one(&mut *tx)
            .await?;
            if n > 0 {
                return Err(Error::Archive(format!(
                    "tenant {into} is not empty: {qualified} has {n} row(s)"
                )));
            }
        }
        let mut total = 0;
        for (i, table) in archive.tables.iter().enumerate() {
            let target = targets
                .iter()
                .find(|t| bare_name(&t.name) == table.name)
                .ok_or_else(|| Error::Archive(format!("the target has no table {}", table.name)))?;
            let qualified = &target.name;
            let have = data_columns(&mut tx, target).await?;
            if let Some(missing) = table.columns.iter().find(|c| !have.contains(c)) {
                return Err(Error::Archive(format!(
                    "the target's {} has no column {missing}",
                    table.name
                )));
            }
            let cols = column_list(&table.columns);
            let staging = format!("tenancy_import_{i}");
            sqlx::raw_sql(crate::sql::text(format!(
                "CREATE TEMP TABLE {staging} ON COMMIT DROP AS SELECT {cols} FROM {qualified} WITH NO DATA"
            )))
            .execute(&mut *tx)
            .await?;
            let mut copy = tx
                .copy_in_raw(&format!("COPY {staging} ({cols}) FROM STDIN"))
                .await?;
            copy.send(table.data.as_slice()).await?;
            copy.finish().await?;
            let inserted = crate::sql::admin_query(crate::sql::text(format!(
                "INSERT INTO {qualified} ({}, {cols}) SELECT $1, {cols} FROM {staging}",
                target.column
            )))
            .bind(into.as_uuid())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted != table.rows {
                return Err(Error::Archive(format!(
                    "{}: the archive says {} rows, {inserted} were read",
                    table.name, table.rows
                )));
            }
            total += inserted;
        }
        let detail = format!("from {} ({total} rows)", archive.source);
        su.audit(&mut tx, "tenant.import", &[into], Some(&detail))
            .await?;
        tx.commit_and_reset().await?;
        Ok(total)
    }
}
