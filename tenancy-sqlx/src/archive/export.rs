//! The one archive writer: a tenant's rows, a chunk of COPY data at a time, as version 2.

use futures_util::TryStreamExt;
use sqlx::PgConnection;
use tenancy_core::TenantId;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::format::{END, MAGIC_V2, Section, writing};
use super::tables::{column_list, data_columns, tenant_tables};
use super::{ArchiveOptions, ArchiveSummary};
use crate::Result;

/// How many bytes of rows an export copies between two progress reports.
const REPORT_EVERY: u64 = 256 * 1024;

/// Writes tenant `id`'s rows to `out`, read in `tx` (the caller's consistent snapshot): in the
/// registry's database, or, with `in_database` (the tenant's schema there), in an own-database
/// tenant's database.
pub(crate) async fn export_to<W>(
    tx: &mut PgConnection,
    id: TenantId,
    out: &mut W,
    options: &ArchiveOptions,
    in_database: Option<&str>,
) -> Result<ArchiveSummary>
where
    W: AsyncWrite + Unpin + Send + ?Sized,
{
    crate::rls::act_for(tx, id).await?;
    // Every table is keyed before a byte is written: a refusal leaves `out` untouched.
    let tables = tenant_tables(tx, id, in_database).await?;
    let keyed: Vec<_> = tables.iter().map(|k| k.table.clone()).collect();
    if let Some((table, outside)) = crate::lifecycle::split_inheritance(&keyed) {
        return Err(crate::ArchiveError::SplitInheritance { table, outside }.into());
    }
    let write = async |out: &mut W, bytes: &[u8]| out.write_all(bytes).await.map_err(writing);
    write(out, format!("{MAGIC_V2}\nsource {id}\n").as_bytes()).await?;
    let mut summary = ArchiveSummary {
        source: Some(id),
        ..ArchiveSummary::default()
    };
    for keyed in tables.into_iter().rev() {
        let table = &keyed.table;
        let section = Section::new(keyed.key, data_columns(tx, table).await?);
        let name = section.key.name.clone();
        write(out, section.header_line().as_bytes()).await?;
        options.report(&name, summary.rows, summary.bytes);
        // The uuid is formatted by us: no injection through it.
        let copy = format!(
            "COPY (SELECT {} FROM {} WHERE {} = '{id}') TO STDOUT",
            column_list(&section.columns),
            table.rows,
            table.column
        );
        let mut rows = 0u64;
        let mut reported = summary.bytes;
        let mut stream = tx.copy_out_raw(&copy).await?;
        // PostgreSQL sends a message per row: report per `REPORT_EVERY` bytes, not per row.
        while let Some(chunk) = stream.try_next().await? {
            let n = chunk.iter().filter(|&&b| b == b'\n').count() as u64;
            rows += n;
            summary.rows += n;
            summary.bytes += chunk.len() as u64;
            write(out, &chunk).await?;
            if summary.bytes - reported >= REPORT_EVERY {
                reported = summary.bytes;
                options.report(&name, summary.rows, summary.bytes);
            }
        }
        drop(stream);
        options.report(&name, summary.rows, summary.bytes);
        write(out, Section::trailer(rows).as_bytes()).await?;
        summary.tables.push((name, rows));
    }
    write(out, format!("{END}\n").as_bytes()).await?;
    out.flush().await.map_err(writing)?;
    Ok(summary)
}
