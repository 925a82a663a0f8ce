//! A tenant's rows out of and into the database, as a portable archive: PostgreSQL's COPY text
//! format, one section per table, without the tenant column, so that it imports into a tenant
//! of either placement under another id. Export reads one consistent snapshot; import runs in
//! one transaction and verifies every table's row count, so a failed import leaves the target
//! as it was.
//!
//! There is one writer ([`export::export_to`]) and one reader ([`format::ArchiveReader`]),
//! both streamed a chunk at a time; the in-memory [`TenantArchive`] is the same bytes, held.
//! The format written is version 2:
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
//! Each section's rows end with COPY's own end marker, a line `\.` (which no data line can be:
//! COPY text escapes every backslash), so a section is written as it is read. Version 1 (read,
//! no longer written) stated each section's row count and byte length in its header instead:
//! `table <name> rows <n> bytes <len> columns <a,b,c>`, then exactly `len` bytes of rows.
//!
//! A section is matched to a table of the target by its key, its kind and the table's name in
//! its schema ([`format::SectionKey`]); an archive names each key once, and a target with two
//! tables of one name (in two schemas of the search path) is refused rather than guessed at.

mod export;
mod format;
mod import;
mod memory;
mod tables;

use std::sync::Arc;

use tenancy_core::TenantId;

pub(crate) use export::export_to;
pub(crate) use format::ArchiveReader;
pub(crate) use import::import_from;
// A move copies the same columns an archive carries.
pub use memory::{ArchivedTable, TenantArchive};
pub(crate) use tables::{column_list, data_columns};

/// Where a streamed export or import is, reported as the rows go by.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ArchiveSummary {
    /// The tenant the archive was exported from.
    pub source: Option<TenantId>,
    /// Each table and its rows, in archive order (parents before children). Serialised as
    /// `[{"table": ..., "rows": ...}]`.
    #[cfg_attr(feature = "serde", serde(with = "crate::records::table_rows"))]
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
