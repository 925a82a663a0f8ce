//! The one archive importer: sections read by [`ArchiveReader`], each copied into a staging
//! table, then into its target under the new tenant, its row count checked.

use sqlx::PgConnection;
use tenancy_core::TenantId;
use tokio::io::AsyncBufRead;

use super::format::{ArchiveReader, Section};
use super::tables::{KeyedTable, column_list, data_columns, tenant_tables};
use super::{ArchiveOptions, ArchiveSummary};
use crate::registry::store;
use crate::{ArchiveError, Error, Lookup, Result};

/// How many bytes of rows an import gathers before sending them to the server.
const SEND_CHUNK: usize = 256 * 1024;

/// Reads the rest of an archive (opened before the transaction, so that a file that is no
/// archive costs no connection) into tenant `into`, in `tx`; with `replace`, deletes the
/// tenant's rows first. Returns what was imported and the audit detail line. With
/// `in_database`, `tx` is on the database of the tenant's home other than the registry's, its
/// tables in that schema (the tenant's row locked there is its identity row), and whether that
/// home is the tenant's own (its database, or its schema there) rather than shared tables.
pub(crate) async fn import_from<R>(
    tx: &mut PgConnection,
    archive: &mut ArchiveReader<'_, R>,
    into: TenantId,
    options: &ArchiveOptions,
    in_database: Option<(&str, bool)>,
) -> Result<(ArchiveSummary, String)>
where
    R: AsyncBufRead + Unpin + Send + ?Sized,
{
    crate::sql::admin_query(store::TENANT_LOCK)
        .bind(into.as_uuid())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::TenantNotFound(Lookup::Id(into)))?;
    if let Some((schema, _)) = in_database {
        // The tenant database's write fence, after its identity row (the order a mover takes
        // them in): a move out waits for the import, and an import that meets a move's seal
        // is refused as moved instead of filling the copy the tenant is leaving. (In the
        // registry the row lock above already orders an import with a move.)
        let fence = crate::sql::fence::value("$1", Some(&tenancy_core::ident::quote(schema)));
        crate::sql::admin_query(crate::sql::text(format!("SELECT {fence}")))
            .bind(into.as_uuid())
            .execute(&mut *tx)
            .await?;
    }
    crate::rls::act_for(tx, into).await?;
    let targets = tenant_tables(tx, into, in_database.map(|(schema, _)| schema)).await?;
    // The tenant's own sequences (its schema's, its database's) go on past the keys imported;
    // a shared table's sequence serves every tenant, and an archive is input: a key near the
    // end of its range would stop every tenant's inserts. On shared tables, whose keys lead
    // with the tenant, its next insert may meet a key it imported: a unique violation of its
    // own. (Only sequences in the table's own schema are ever moved: `catalog::COLUMN_SEQUENCE`.)
    let own_sequences = match in_database {
        Some((_, own)) => own,
        None => {
            let row = crate::sql::admin_query(store::TENANT_SCHEMA)
                .bind(into.as_uuid())
                .fetch_one(&mut *tx)
                .await?;
            sqlx::Row::try_get::<Option<String>, _>(&row, "schema_name")?.is_some()
        }
    };
    let replaced = empty_target(tx, &targets, into, options.replace).await?;
    let source = archive.source();
    let mut summary = ArchiveSummary {
        source: Some(source),
        ..ArchiveSummary::default()
    };
    let mut i = 0;
    while let Some(mut section) = archive.next_section().await? {
        let target = targets
            .iter()
            .find(|t| t.key == section.key)
            .ok_or_else(|| ArchiveError::NoTable {
                tenant: into,
                table: section.key.name.clone(),
            })?;
        let rows = import_table(
            tx,
            target,
            &mut section,
            (i, own_sequences),
            into,
            archive,
            options,
            &mut summary,
        )
        .await?;
        summary.tables.push((section.key.name, rows));
        i += 1;
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
    targets: &[KeyedTable],
    into: TenantId,
    replace: bool,
) -> Result<u64> {
    let mut deleted = 0;
    for KeyedTable { table, .. } in targets {
        let qualified = &table.name;
        if replace {
            deleted += crate::sql::admin_query(crate::sql::text(format!(
                "DELETE FROM {qualified} WHERE {} = $1",
                table.column
            )))
            .bind(into.as_uuid())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            continue;
        }
        let n: i64 = crate::sql::admin_scalar(crate::sql::text(format!(
            "SELECT count(*) FROM {qualified} WHERE {} = $1",
            table.column
        )))
        .bind(into.as_uuid())
        .fetch_one(&mut *tx)
        .await?;
        if n > 0 {
            return Err(ArchiveError::NotEmpty {
                tenant: into,
                table: qualified.clone(),
                rows: n,
            }
            .into());
        }
    }
    Ok(deleted)
}

/// Copies one section's rows into a staging table (the `i`th), then into the target under the
/// tenant `into`; checks the count the archive states; with `advance`, moves the sequences
/// behind the target's columns past the keys imported. Returns the rows imported.
#[allow(clippy::too_many_arguments)]
async fn import_table<R>(
    tx: &mut PgConnection,
    target: &KeyedTable,
    section: &mut Section,
    (i, advance): (usize, bool),
    into: TenantId,
    archive: &mut ArchiveReader<'_, R>,
    options: &ArchiveOptions,
    summary: &mut ArchiveSummary,
) -> Result<u64>
where
    R: AsyncBufRead + Unpin + Send + ?Sized,
{
    let name = section.key.name.clone();
    let qualified = &target.table.name;
    let have = data_columns(tx, &target.table).await?;
    if let Some(missing) = section.columns.iter().find(|c| !have.contains(c)) {
        return Err(ArchiveError::NoColumn {
            tenant: into,
            table: name,
            column: missing.clone(),
        }
        .into());
    }
    let cols = column_list(&section.columns);
    let staging = format!("tenancy_import_{i}");
    sqlx::raw_sql(crate::sql::text(format!(
        "CREATE TEMP TABLE {staging} ON COMMIT DROP AS SELECT {cols} FROM {qualified} WITH NO DATA"
    )))
    .execute(&mut *tx)
    .await?;
    options.report(&name, summary.rows, summary.bytes);
    let mut copy = tx
        .copy_in_raw(&format!("COPY {staging} ({cols}) FROM STDIN"))
        .await?;
    let mut buf = Vec::with_capacity(SEND_CHUNK);
    let mut line = Vec::new();
    let mut rows = 0u64;
    while archive.next_row(section, &mut line).await? {
        rows += 1;
        buf.extend_from_slice(&line);
        if buf.len() >= SEND_CHUNK {
            summary.bytes += buf.len() as u64;
            copy.send(buf.as_slice()).await?;
            buf.clear();
            options.report(&name, summary.rows + rows, summary.bytes);
        }
    }
    summary.bytes += buf.len() as u64;
    copy.send(buf.as_slice()).await?;
    copy.finish().await?;
    let stated = archive.stated_rows(section).await?;
    // OVERRIDING SYSTEM VALUE: identity columns keep the archived values (without it an
    // identity column refuses them, and no archive of such a table could be restored).
    let inserted = crate::sql::admin_query(crate::sql::text(format!(
        "INSERT INTO {qualified} ({}, {cols}) OVERRIDING SYSTEM VALUE SELECT $1, {cols} FROM {staging}",
        target.table.column
    )))
    .bind(into.as_uuid())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted != stated || rows != stated {
        return Err(ArchiveError::RowCount {
            table: name,
            stated,
            read: if rows == stated { inserted } else { rows },
        }
        .into());
    }
    // The sequences behind serial and identity columns move past the keys imported: the
    // tenant's next insert must not draw one it already holds.
    if advance && inserted > 0 {
        crate::moving::advance_sequences(tx, &target.table, &section.columns).await?;
    }
    summary.rows += inserted;
    options.report(&name, summary.rows, summary.bytes);
    Ok(inserted)
}
