//! Streamed export and import: a tenant larger than memory goes to and comes from a file (or
//! any byte stream) a chunk at a time.
//!
//! [`Tenancy::export_tenant`](crate::Tenancy::export_tenant) builds a whole [`TenantArchive`](crate::TenantArchive) in memory,
//! and its format writes each table's byte length before the table's data, so it cannot be
//! written before the data is all read. The streamed format (version 2) ends each table's data
//! with COPY's own end marker instead, a line `\.` (which no data line can be: COPY text escapes
//! every backslash), followed by the table's row count:
//!
//! ```text
//! tenancy-archive 2
//! source <uuid>
//! table <name> columns <a,b,c>
//! <rows in COPY text format, one per line>
//! \.
//! rows <n>
//! ...
//! end
//! ```
//!
//! [`Tenancy::import_tenant_from`](crate::Tenancy::import_tenant_from) reads both versions, streaming either.

use std::sync::Arc;

use futures_util::TryStreamExt;
use tenancy_core::TenantId;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use sqlx::PgConnection;

use crate::export::{bare_name, column_list, data_columns, placement_schema};
use crate::lifecycle::{TenantTable, tenant_tables_children_first};
use crate::registry::store;
use crate::runtime::Runtime;
use crate::{Error, Lookup, Result};

const MAGIC_V1: &str = "tenancy-archive 1";
const MAGIC_V2: &str = "tenancy-archive 2";
/// How many bytes of rows an import gathers before sending them to the server.
const SEND_CHUNK: usize = 256 * 1024;
/// How many bytes of rows an export copies between two progress reports.
const REPORT_EVERY: u64 = 256 * 1024;

/// Where a streamed export or import is, reported as the rows go by.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveProgress {
    /// The table being copied.
    pub table: String,
    /// Rows copied so far, all tables.
    pub rows: u64,
    /// Bytes of table data copied so far, all tables.
    pub bytes: u64,
}

/// What a streamed export or import copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveSummary {
    /// The tenant the archive was exported from.
    pub source: Option<TenantId>,
    /// Each table and its rows, in archive order (parents before children).
    pub tables: Vec<(String, u64)>,
    /// Rows, all tables.
    pub rows: u64,
    /// Bytes of table data, all tables.
    pub bytes: u64,
}

type ProgressFn = Arc<dyn Fn(&ArchiveProgress) + Send + Sync>;

/// Options for [`Tenancy::export_tenant_to`](crate::Tenancy::export_tenant_to) and
/// [`Tenancy::import_tenant_from`](crate::Tenancy::import_tenant_from).
#[derive(Clone, Default)]
#[must_use]
pub struct ArchiveOptions {
    on_progress: Option<ProgressFn>,
    replace: bool,
}

impl std::fmt::Debug for ArchiveOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveOptions")
            .field("replace", &self.replace)
            .finish_non_exhaustive()
    }
}

impl ArchiveOptions {
    /// Called as data goes by: when a table starts and ends, and every 256 KiB of rows.
    pub fn on_progress(mut self, f: impl Fn(&ArchiveProgress) + Send + Sync + 'static) -> Self {
        self.on_progress = Some(Arc::new(f));
        self
    }

    /// Import only: delete the target tenant's rows first, in the import's transaction, instead
    /// of refusing a tenant that has rows. A failed import then keeps the old rows.
    pub fn replace(mut self, replace: bool) -> Self {
        self.replace = replace;
        self
    }

    /// The audit action of an import with these options.
    pub(crate) fn import_action(&self) -> &'static str {
        if self.replace {
            "tenant.import_replace"
        } else {
            "tenant.import"
        }
    }

    fn report(&self, table: &str, rows: u64, bytes: u64) {
        if let Some(f) = &self.on_progress {
            f(&ArchiveProgress {
                table: table.to_owned(),
                rows,
                bytes,
            });
        }
    }
}

fn bad(what: impl Into<String>) -> Error {
    Error::Archive(what.into())
}

fn io(doing: &str, e: std::io::Error) -> Error {
    Error::Archive(format!("{doing}: {e}"))
}

/// Writes tenant `id`'s rows to `out` in the streamed format, read in `tx` (the caller's
/// consistent snapshot), a chunk of COPY data at a time.
pub(crate) async fn export_to<W>(
    tx: &mut PgConnection,
    rt: &Runtime,
    id: TenantId,
    out: &mut W,
    options: &ArchiveOptions,
) -> Result<ArchiveSummary>
where
    W: AsyncWrite + Unpin + Send + ?Sized,
{
    crate::rls::act_for(tx, rt, id).await?;
    let schema = placement_schema(tx, id).await?;
    let write = async |out: &mut W, bytes: &[u8]| {
        out.write_all(bytes)
            .await
            .map_err(|e| io("writing the archive", e))
    };
    write(out, format!("{MAGIC_V2}\nsource {id}\n").as_bytes()).await?;
    let mut summary = ArchiveSummary {
        source: Some(id),
        ..ArchiveSummary::default()
    };
    let tables = tenant_tables_children_first(&mut *tx, schema.as_deref()).await?;
    for table in tables.iter().rev() {
        let columns = data_columns(tx, table).await?;
        let name = bare_name(&table.name).to_owned();
        write(
            out,
            format!("table {name} columns {}\n", columns.join(",")).as_bytes(),
        )
        .await?;
        options.report(&name, summary.rows, summary.bytes);
        // The uuid is formatted by us: no injection through it.
        let copy = format!(
            "COPY (SELECT {} FROM {} WHERE {} = '{id}') TO STDOUT",
            column_list(&columns),
            table.name,
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
        write(out, format!("\\.\nrows {rows}\n").as_bytes()).await?;
        summary.tables.push((name, rows));
    }
    write(out, b"end\n").await?;
    out.flush()
        .await
        .map_err(|e| io("writing the archive", e))?;
    Ok(summary)
}

/// An archive's first two lines: its format version and the tenant it was exported from.
/// Read before any transaction begins, so that a file that is no archive costs no connection.
pub(crate) async fn read_header<R>(input: &mut R) -> Result<(u8, TenantId)>
where
    R: AsyncBufRead + Unpin + Send + ?Sized,
{
    let version = match read_line(input).await?.as_deref() {
        Some(MAGIC_V1) => 1,
        Some(MAGIC_V2) => 2,
        _ => return Err(bad("not a tenancy archive (or an unknown version)")),
    };
    let source = read_line(input)
        .await?
        .as_deref()
        .and_then(|l| l.strip_prefix("source "))
        .ok_or_else(|| bad("missing source"))?
        .parse::<TenantId>()?;
    Ok((version, source))
}

/// Reads the rest of an archive (after [`read_header`]) from `input` into tenant `into`, in
/// `tx`; with `replace`, deletes the tenant's rows first. Returns what was imported and the
/// audit detail line.
pub(crate) async fn import_from<R>(
    tx: &mut PgConnection,
    rt: &Runtime,
    (version, source): (u8, TenantId),
    input: &mut R,
    into: TenantId,
    options: &ArchiveOptions,
) -> Result<(ArchiveSummary, String)>
where
    R: AsyncBufRead + Unpin + Send + ?Sized,
{
    crate::sql::admin_query(store::TENANT_LOCK)
        .bind(into.as_uuid())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::TenantNotFound(Lookup::Id(into)))?;
    crate::rls::act_for(tx, rt, into).await?;
    let schema = placement_schema(tx, into).await?;
    let targets = tenant_tables_children_first(&mut *tx, schema.as_deref()).await?;
    let replaced = empty_target(tx, &targets, into, options.replace).await?;
    let mut summary = ArchiveSummary {
        source: Some(source),
        ..ArchiveSummary::default()
    };
    for i in 0.. {
        let header = read_line(input)
            .await?
            .ok_or_else(|| bad("truncated archive"))?;
        if header == "end" {
            break;
        }
        let section = Section::parse(&header, version)?;
        let target = targets
            .iter()
            .find(|t| bare_name(&t.name) == section.name)
            .ok_or_else(|| bad(format!("the target has no table {}", section.name)))?;
        let rows =
            import_table(tx, target, &section, i, into, input, options, &mut summary).await?;
        summary.tables.push((section.name, rows));
    }
    let detail = format!(
        "from {source} ({} rows{})",
        summary.rows,
        if options.replace {
            format!(", {replaced} rows replaced")
        } else {
            String::new()
        }
    );
    Ok((summary, detail))
}

/// Refuses a target with rows, or with `replace` deletes them (children first). Returns the
/// rows deleted.
async fn empty_target(
    tx: &mut PgConnection,
    targets: &[TenantTable],
    into: TenantId,
    replace: bool,
) -> Result<u64> {
    let mut deleted = 0;
    for target in targets {
        let qualified = &target.name;
        if replace {
            deleted += crate::sql::admin_query(crate::sql::text(format!(
                "DELETE FROM {qualified} WHERE {} = $1",
                target.column
            )))
            .bind(into.as_uuid())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            continue;
        }
        let n: i64 = crate::sql::admin_scalar(crate::sql::text(format!(
            "SELECT count(*) FROM {qualified} WHERE {} = $1",
            target.column
        )))
        .bind(into.as_uuid())
        .fetch_one(&mut *tx)
        .await?;
        if n > 0 {
            return Err(bad(format!(
                "tenant {into} is not empty: {qualified} has {n} row(s)"
            )));
        }
    }
    Ok(deleted)
}

/// One table's header.
struct Section {
    name: String,
    columns: Vec<String>,
    /// Version 1: the row count and byte length, given up front.
    sized: Option<(u64, usize)>,
}

impl Section {
    fn parse(header: &str, version: u8) -> Result<Self> {
        let words: Vec<&str> = header.split(' ').collect();
        let (name, columns, sized) = match (version, &words[..]) {
            (2, ["table", name, "columns", columns]) => (*name, *columns, None),
            (
                1,
                [
                    "table",
                    name,
                    "rows",
                    rows,
                    "bytes",
                    len,
                    "columns",
                    columns,
                ],
            ) => {
                let rows: u64 = rows.parse().map_err(|_| bad("malformed row count"))?;
                let len: usize = len.parse().map_err(|_| bad("malformed length"))?;
                (*name, *columns, Some((rows, len)))
            }
            _ => return Err(bad("malformed table header")),
        };
        tenancy_core::ident::validate(name)?;
        let columns: Vec<String> = columns.split(',').map(str::to_owned).collect();
        for c in &columns {
            tenancy_core::ident::validate(c)?;
        }
        Ok(Self {
            name: name.to_owned(),
            columns,
            sized,
        })
    }
}

/// Copies one table's rows from `input` into a staging table, then into the target under the
/// tenant `into`; checks the count the archive states. Returns the rows imported.
#[allow(clippy::too_many_arguments)]
async fn import_table<R>(
    tx: &mut PgConnection,
    target: &TenantTable,
    section: &Section,
    i: usize,
    into: TenantId,
    input: &mut R,
    options: &ArchiveOptions,
    summary: &mut ArchiveSummary,
) -> Result<u64>
where
    R: AsyncBufRead + Unpin + Send + ?Sized,
{
    let qualified = &target.name;
    let have = data_columns(tx, target).await?;
    if let Some(missing) = section.columns.iter().find(|c| !have.contains(c)) {
        return Err(bad(format!(
            "the target's {} has no column {missing}",
            section.name
        )));
    }
    let cols = column_list(&section.columns);
    let staging = format!("tenancy_import_{i}");
    sqlx::raw_sql(crate::sql::text(format!(
        "CREATE TEMP TABLE {staging} ON COMMIT DROP AS SELECT {cols} FROM {qualified} WITH NO DATA"
    )))
    .execute(&mut *tx)
    .await?;
    options.report(&section.name, summary.rows, summary.bytes);
    let mut copy = tx
        .copy_in_raw(&format!("COPY {staging} ({cols}) FROM STDIN"))
        .await?;
    let mut buf = Vec::with_capacity(SEND_CHUNK);
    let mut line = Vec::new();
    let mut rows = 0u64;
    let mut left = section.sized.map(|(_, len)| len);
    loop {
        line.clear();
        let n = match left {
            // Version 1: exactly `len` bytes of rows.
            Some(0) => break,
            Some(ref mut left) => {
                let n = (&mut *input)
                    .take(*left as u64)
                    .read_until(b'\n', &mut line)
                    .await
                    .map_err(|e| io("reading the archive", e))?;
                *left -= n;
                n
            }
            // Version 2: rows up to COPY's end marker.
            None => input
                .read_until(b'\n', &mut line)
                .await
                .map_err(|e| io("reading the archive", e))?,
        };
        if n == 0 || line.last() != Some(&b'\n') {
            return Err(bad("truncated table data"));
        }
        if left.is_none() && line == b"\\.\n" {
            break;
        }
        rows += 1;
        buf.extend_from_slice(&line);
        if buf.len() >= SEND_CHUNK {
            summary.bytes += buf.len() as u64;
            copy.send(buf.as_slice()).await?;
            buf.clear();
            options.report(&section.name, summary.rows + rows, summary.bytes);
        }
    }
    summary.bytes += buf.len() as u64;
    copy.send(buf.as_slice()).await?;
    copy.finish().await?;
    let stated = match section.sized {
        Some((stated, _)) => stated,
        None => read_line(input)
            .await?
            .as_deref()
            .and_then(|l| l.strip_prefix("rows "))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad(format!("{}: missing row count", section.name)))?,
    };
    let inserted = crate::sql::admin_query(crate::sql::text(format!(
        "INSERT INTO {qualified} ({}, {cols}) SELECT $1, {cols} FROM {staging}",
        target.column
    )))
    .bind(into.as_uuid())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted != stated || rows != stated {
        return Err(bad(format!(
            "{}: the archive says {stated} rows, {inserted} were read",
            section.name
        )));
    }
    summary.rows += inserted;
    options.report(&section.name, summary.rows, summary.bytes);
    Ok(inserted)
}

/// One header line, without its newline; `None` at the end of input.
async fn read_line<R>(input: &mut R) -> Result<Option<String>>
where
    R: AsyncBufRead + Unpin + Send + ?Sized,
{
    let mut line = Vec::new();
    // A header is short; a missing newline within 64 KiB is not an archive.
    let n = (&mut *input)
        .take(64 * 1024)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| io("reading the archive", e))?;
    if n == 0 {
        return Ok(None);
    }
    if line.pop() != Some(b'\n') {
        return Err(bad("truncated archive"));
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| bad("header is not UTF-8"))
}
