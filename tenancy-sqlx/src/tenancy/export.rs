//! Exporting a tenant to a [`TenantArchive`](crate::TenantArchive), or streamed to a file, and
//! importing either.

use futures_util::TryStreamExt;
use tenancy_core::TenantId;
use tokio::io::{AsyncBufRead, AsyncWrite};

use crate::archive_stream::{self, ArchiveOptions, ArchiveSummary};
use crate::registry::store;

use crate::export::*;
use crate::lifecycle::tenant_tables_children_first;
use crate::superuser::Audit;
use crate::{Error, Lookup, Result, Superuser, Tenancy};

impl Tenancy {
    /// Exports every row of one tenant (any status) from one consistent snapshot. Audited
    /// (`tenant.export`) before any row is read, so that no export goes unrecorded.
    ///
    /// # Errors
    /// [`Error::TenantNotFound`], [`Error::Database`].
    pub async fn export_tenant(&self, su: &Superuser, id: TenantId) -> Result<TenantArchive> {
        self.check_superuser(su)?;
        su.audited_snapshot(&self.rt, "tenant.export", &[id], async |tx| {
            crate::rls::act_for(tx, &self.rt, id).await?;
            let schema = placement_schema(tx, id).await?;
            let mut tables = Vec::new();
            for table in tenant_tables_children_first(&mut *tx, schema.as_deref())
                .await?
                .into_iter()
                .rev()
            {
                let columns = data_columns(tx, &table).await?;
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
            Ok(TenantArchive { source: id, tables })
        })
        .await
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
        su.audited_and_reset(&self.rt, "tenant.import", async |tx| {
                crate::sql::admin_query(store::TENANT_LOCK)
                    .bind(into.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(Error::TenantNotFound(Lookup::Id(into)))?;
                crate::rls::act_for(tx, &self.rt, into).await?;
                let schema = placement_schema(tx, into).await?;
                let targets = tenant_tables_children_first(tx, schema.as_deref()).await?;
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
                    let have = data_columns(tx, target).await?;
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
            Ok((total, Audit::of([into]).detail(detail)))
        })
        .await
    }

    /// Exports every row of one tenant (any status), from one consistent snapshot, to `out`,
    /// written as it is read: memory stays bounded by a chunk of COPY data, whatever the
    /// tenant's size. Audited (`tenant.export`) before any row is read. The format is described
    /// in this module's source; [`Tenancy::import_tenant_from`] reads it.
    ///
    /// `out` is flushed, not shut down. If this fails, what was written is a truncated archive
    /// (no `end` line) that import refuses; write to a temporary file and rename it on success.
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy, id: tenancy_sqlx::TenantId) -> tenancy_sqlx::Result<()> {
    /// use tenancy_sqlx::ArchiveOptions;
    /// let su = tenancy.superuser("ops@example.com", "ticket #4411 backup").await?;
    /// let mut file = tokio::fs::File::create("acme.archive").await.expect("create");
    /// let summary = tenancy.export_tenant_to(&su, id, &mut file, ArchiveOptions::default()).await?;
    /// println!("{} rows", summary.rows);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::TenantNotFound`], [`Error::Database`], [`Error::Archive`] when `out` fails.
    pub async fn export_tenant_to<W>(
        &self,
        su: &Superuser,
        id: TenantId,
        out: &mut W,
        options: ArchiveOptions,
    ) -> Result<ArchiveSummary>
    where
        W: AsyncWrite + Unpin + Send + ?Sized,
    {
        self.check_superuser(su)?;
        su.audited_snapshot(&self.rt, "tenant.export", &[id], async |tx| {
            archive_stream::export_to(tx, &self.rt, id, out, &options).await
        })
        .await
    }

    /// Imports an archive read from `input` (either version: [`Tenancy::export_tenant_to`]'s
    /// or [`TenantArchive::to_bytes`](crate::TenantArchive::to_bytes)'), a chunk at a time,
    /// into tenant `into`. The tenant must exist; it must have no rows, unless
    /// [`ArchiveOptions::replace`] is set, which deletes its rows first in the same
    /// transaction. One transaction; each table's row count is verified against the archive.
    /// Audited (`tenant.import`, or `tenant.import_replace`).
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy, into: tenancy_sqlx::TenantId) -> tenancy_sqlx::Result<()> {
    /// use tenancy_sqlx::ArchiveOptions;
    /// let su = tenancy.superuser("ops@example.com", "ticket #4411 restore").await?;
    /// let file = tokio::fs::File::open("acme.archive").await.expect("open");
    /// let mut input = tokio::io::BufReader::new(file);
    /// tenancy.import_tenant_from(&su, &mut input, into, ArchiveOptions::default()).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Archive`] for a malformed or truncated archive, a target that is not empty
    /// (without `replace`), a missing table or column, or a count that does not match;
    /// [`Error::TenantNotFound`]; [`Error::Database`]. Nothing is imported or deleted then.
    pub async fn import_tenant_from<R>(
        &self,
        su: &Superuser,
        input: &mut R,
        into: TenantId,
        options: ArchiveOptions,
    ) -> Result<ArchiveSummary>
    where
        R: AsyncBufRead + Unpin + Send + ?Sized,
    {
        self.check_superuser(su)?;
        let header = archive_stream::read_header(input).await?;
        let action = options.import_action();
        // COPY through temporary tables: the connection is reset afterwards.
        su.audited_and_reset(&self.rt, action, async |tx| {
            let (summary, detail) =
                archive_stream::import_from(tx, &self.rt, header, input, into, &options).await?;
            Ok((summary, Audit::of([into]).detail(detail)))
        })
        .await
    }
}
