//! Exporting a tenant to a [`TenantArchive`](crate::TenantArchive) and importing one.

use futures_util::TryStreamExt;
use tenancy_core::TenantId;

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
        self.rt
            .with_conn(async |c| su.audit(c, "tenant.export", &[id], None).await)
            .await?;
        let mut tx = self.rt.begin().await?;
        sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        crate::rls::act_for(&mut tx, &self.rt, id).await?;
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
        su.audited_and_reset(&self.rt, "tenant.import", async |tx| {
                crate::sql::admin_query("SELECT 1 FROM tenancy.tenants WHERE id = $1 FOR UPDATE")
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
}
