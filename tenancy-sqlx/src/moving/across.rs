//! The copy of one table between two databases: `COPY ... TO STDOUT` on the source's
//! connection streamed, chunk by chunk, into `COPY ... FROM STDIN` on the target's, so a large
//! tenant never sits whole in this process's memory. Values travel in PostgreSQL's text form, which both ends
//! read and write alike once their sessions agree on it ([`same_text`]).

use futures_util::StreamExt;
use sqlx::PgConnection;
use tenancy_core::TenantId;

use crate::archive::column_list;
use crate::lifecycle::TenantTable;
use crate::{Error, Result};

/// The settings that decide how values print as text, set alike in the source's and the
/// target's transactions: the copy and the checksums compare text, and a time zone or a float
/// precision differing between two connections would print one value two ways.
const SAME_TEXT: &str = "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; \
     SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 3; \
     SET LOCAL bytea_output = 'hex'";

/// Sets [`SAME_TEXT`] in the transaction on `conn`.
pub(super) async fn same_text(conn: &mut PgConnection) -> Result<()> {
    sqlx::raw_sql(SAME_TEXT).execute(conn).await?;
    Ok(())
}

/// Copies tenant `id`'s rows of `tables.0` (on `from`) into `tables.1` (on `to`): its tenant
/// column and `columns`. Returns the rows written.
///
/// The rows land in a temporary table first, then go in with one `INSERT ... SELECT`:
/// `COPY FROM` into a table under row-level security is refused, and the insert keeps identity
/// values (`OVERRIDING SYSTEM VALUE`) and passes the policies as the tenant.
pub(super) async fn copy(
    from: &mut PgConnection,
    to: &mut PgConnection,
    id: TenantId,
    (source, target): (&TenantTable, &TenantTable),
    columns: &[String],
) -> Result<u64> {
    let list = column_list(columns);
    let column = &target.column;
    sqlx::raw_sql(crate::sql::text(format!(
        "DROP TABLE IF EXISTS pg_temp.tenancy_move; \
         CREATE TEMPORARY TABLE tenancy_move ON COMMIT DROP AS \
         SELECT {column}, {list} FROM {} WITH NO DATA",
        target.name
    )))
    .execute(&mut *to)
    .await?;
    // COPY takes no parameters; a uuid's text is hex digits and hyphens only.
    let out = format!(
        "COPY (SELECT {}, {list} FROM {} WHERE {} = '{}'::uuid) TO STDOUT",
        source.column,
        source.rows,
        source.column,
        id.as_uuid()
    );
    let mut sink = to
        .copy_in_raw(&format!(
            "COPY pg_temp.tenancy_move ({column}, {list}) FROM STDIN"
        ))
        .await?;
    let mut chunks = from.copy_out_raw(&out).await?;
    while let Some(chunk) = chunks.next().await {
        let sent = match chunk {
            Ok(bytes) => sink.send(bytes).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            drop(chunks);
            // The target's transaction is abandoned with its database; say why in its log.
            let _ = sink.abort(format!("the copy's source failed: {e}")).await;
            return Err(Error::from(e));
        }
    }
    sink.finish().await?;
    Ok(crate::sql::admin_query(crate::sql::text(format!(
        "INSERT INTO {} ({column}, {list}) OVERRIDING SYSTEM VALUE \
         SELECT {column}, {list} FROM pg_temp.tenancy_move",
        target.name
    )))
    .execute(&mut *to)
    .await?
    .rows_affected())
}
