//! Exporting a tenant to a [`TenantArchive`](crate::TenantArchive), or streamed to a file, and
//! importing either: one writer and one reader (`archive/`), the in-memory calls on a buffer.

use tenancy_core::TenantId;
use tokio::io::{AsyncBufRead, AsyncWrite};

use tenancy_core::home::TENANT_DATABASE_SCHEMA;

use crate::archive::{self, ArchiveOptions, ArchiveReader, ArchiveSummary, TenantArchive};
use crate::databases::name::DatabaseName;
use crate::superuser::Audit;
use crate::{Error, Lookup, Result, Superuser, Tenancy};

impl Tenancy {
    /// Exports every row of one tenant (any status) from one consistent snapshot. Audited
    /// (`tenant.export`) before any row is read, so that no export goes unrecorded.
    ///
    /// # Errors
    /// [`Error::TenantNotFound`](crate::Error::TenantNotFound),
    /// [`Error::Database`](crate::Error::Database), [`Error::Archive`](crate::Error::Archive)
    /// when two of the tenant's tables share a name (an archive names tables without their
    /// schema), or a table has inheritance descendants both among the tenant's tables and
    /// outside them ([`ArchiveError::SplitInheritance`](crate::ArchiveError::SplitInheritance):
    /// no reading of it reads each row once).
    pub async fn export_tenant(&self, su: &Superuser, id: TenantId) -> Result<TenantArchive> {
        let mut bytes = Vec::new();
        self.export_tenant_to(su, id, &mut bytes, ArchiveOptions::default())
            .await?;
        TenantArchive::from_bytes(&bytes)
    }

    /// Imports an archive into tenant `into`, which must exist and have no rows. Every table of
    /// the archive must exist in the target's placement with the archived columns. One
    /// transaction; each table's row count is verified. Audited. Returns the rows imported.
    ///
    /// # Errors
    /// [`Error::Archive`](crate::Error::Archive) if the target is not empty, a table or column
    /// is missing, a count does not match, or a table's data is not rows of COPY text;
    /// [`Error::TenantNotFound`](crate::Error::TenantNotFound);
    /// [`Error::Database`](crate::Error::Database). Nothing is imported then.
    pub async fn import_tenant(
        &self,
        su: &Superuser,
        archive: &TenantArchive,
        into: TenantId,
    ) -> Result<u64> {
        archive.check_data()?;
        let bytes = archive.to_bytes();
        let summary = self
            .import_tenant_from(su, &mut bytes.as_slice(), into, ArchiveOptions::default())
            .await?;
        Ok(summary.rows)
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
    /// [`Error::TenantNotFound`](crate::Error::TenantNotFound), [`Error::Database`](crate::Error::Database), [`Error::Archive`](crate::Error::Archive) when `out` fails, and as
    /// [`Tenancy::export_tenant`].
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
        if let Some((server, database, schema, _)) = self.database_of(id).await? {
            // Audited before any row is read, as below; the rows are in the tenant's database (or
            // its server's home).
            self.check_superuser(su)?;
            self.rt
                .with_conn(async |c| su.audit(c, "tenant.export", &[id], None).await)
                .await?;
            return self
                .rt
                .databases()?
                .in_database(id, (&server, &database), true, async |tx| {
                    archive::export_to(tx, id, out, &options, Some(&schema)).await
                })
                .await;
        }
        su.audited_snapshot(&self.rt, "tenant.export", &[id], async |tx| {
            archive::export_to(tx, id, out, &options, None).await
        })
        .await
    }

    /// The server, database and schema of tenant `id` when its rows are not in the registry's
    /// database: its own database, or that of its server's home (a shared-table tenant of
    /// another server, whose rows are found by its tenant column as in the registry's shared
    /// tables, or an own-schema tenant there, in its schema), and whether that home is the
    /// tenant's own (its database, or its schema there), not shared tables.
    async fn database_of(
        &self,
        id: TenantId,
    ) -> Result<Option<(String, DatabaseName, String, bool)>> {
        let row = self
            .rt
            .with_conn(async |c| {
                Ok(
                    crate::sql::admin_query(crate::registry::store::TENANT_SCHEMA)
                        .bind(id.as_uuid())
                        .fetch_optional(c)
                        .await?,
                )
            })
            .await?
            .ok_or(Error::TenantNotFound(Lookup::Id(id)))?;
        let database: Option<String> = sqlx::Row::try_get(&row, "database_name")?;
        let schema: Option<String> = sqlx::Row::try_get(&row, "schema_name")?;
        let server: String = sqlx::Row::try_get(&row, "server")?;
        let in_database = TENANT_DATABASE_SCHEMA.to_owned();
        match (database, schema) {
            (Some(d), _) => Ok(Some((server, DatabaseName::parse(&d)?, in_database, true))),
            (None, schema) if server != crate::databases::PRIMARY_SERVER => {
                let home = self.rt.databases()?.server_home_name(&server);
                let (schema, own) = match schema {
                    Some(schema) => (
                        tenancy_core::ident::validate_schema(&schema)?.to_owned(),
                        true,
                    ),
                    None => (in_database, false),
                };
                Ok(Some((server, home, schema, own)))
            }
            _ => Ok(None),
        }
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
    /// [`Error::Archive`](crate::Error::Archive) for a malformed or truncated archive, a target that is not empty
    /// (without `replace`), a missing table or column, or a count that does not match;
    /// [`Error::TenantNotFound`](crate::Error::TenantNotFound); [`Error::Database`](crate::Error::Database). Nothing is imported or deleted then.
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
        // Before reading the input; `audited_and_reset` checks again, for the time it took.
        self.check_superuser(su)?;
        let mut reader = ArchiveReader::open(input).await?;
        let action = options.import_action();
        if let Some((server, database, schema, own)) = self.database_of(into).await? {
            // The rows go to the tenant's database, in one transaction there; the audit row,
            // in the registry, is written first, so that no import goes unrecorded.
            su.audited(&self.rt, action, async |_| {
                let detail = format!("into database {database} on server {server}");
                Ok(((), Audit::of([into]).detail(detail)))
            })
            .await?;
            return self
                .rt
                .databases()?
                .in_database(into, (&server, &database), false, async |tx| {
                    let (summary, _) =
                        archive::import_from(tx, &mut reader, into, &options, Some((&schema, own)))
                            .await?;
                    Ok(summary)
                })
                .await;
        }
        // COPY through temporary tables: the connection is reset afterwards.
        su.audited_and_reset(&self.rt, action, async |tx| {
            let (summary, detail) =
                archive::import_from(tx, &mut reader, into, &options, None).await?;
            Ok((summary, Audit::of([into]).detail(detail)))
        })
        .await
    }
}
