//! [`TenantArchive`]: an archive held in memory, for the calls that take and return one. It is
//! the streamed format's bytes, read by the same reader and written as the same sections.

use futures_util::FutureExt;
use tenancy_core::TenantId;

use super::format::{
    ArchiveReader, END, END_OF_DATA, MAGIC_V2, Section, SectionKey, SectionKind, malformed,
};
use crate::Result;

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
    /// The rows, in COPY text format, each ending with a newline.
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
    /// The archive as bytes, to write to a file: the format
    /// [`Tenancy::export_tenant_to`](crate::Tenancy::export_tenant_to) streams (version 2).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{MAGIC_V2}\nsource {}\n", self.source).into_bytes();
        for t in &self.tables {
            let section = Section::new(
                SectionKey {
                    kind: SectionKind::Table,
                    name: t.name.clone(),
                },
                t.columns.clone(),
            );
            out.extend(section.header_line().into_bytes());
            out.extend(&t.data);
            out.extend(Section::trailer(t.rows).into_bytes());
        }
        out.extend(format!("{END}\n").into_bytes());
        out
    }

    /// Reads an archive of either version: [`TenantArchive::to_bytes`]' or
    /// [`Tenancy::export_tenant_to`](crate::Tenancy::export_tenant_to)'s, or a version 1
    /// archive of an earlier release.
    ///
    /// # Errors
    /// [`Error::Archive`](crate::Error::Archive) for anything malformed or truncated,
    /// [`Error::Invalid`](crate::Error::Invalid) for a table or column name that is not an
    /// identifier.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        // The streamed reader, on a slice: every read is ready at once, so one poll finishes.
        read(bytes)
            .now_or_never()
            .unwrap_or_else(|| Err(malformed(None, "an in-memory read did not complete")))
    }

    /// Refuses data that would not read back as the rows it holds: each table's rows must end
    /// with a newline, and none may be COPY's end marker. What [`TenantArchive::from_bytes`]
    /// returns always passes; this guards an archive edited by hand.
    pub(crate) fn check_data(&self) -> Result<()> {
        for t in &self.tables {
            let ends_in_newline = t.data.last().is_none_or(|&b| b == b'\n');
            let has_marker = t
                .data
                .split_inclusive(|&b| b == b'\n')
                .any(|line| line == END_OF_DATA);
            if !ends_in_newline || has_marker {
                return Err(malformed(
                    Some(&t.name),
                    "the data is not rows of COPY text, each ending in a newline",
                ));
            }
        }
        Ok(())
    }
}

async fn read(mut bytes: &[u8]) -> Result<TenantArchive> {
    let mut archive = ArchiveReader::open(&mut bytes).await?;
    let mut tables = Vec::new();
    let mut line = Vec::new();
    while let Some(mut section) = archive.next_section().await? {
        let mut data = Vec::new();
        while archive.next_row(&mut section, &mut line).await? {
            data.extend_from_slice(&line);
        }
        let rows = archive.stated_rows(&section).await?;
        tables.push(ArchivedTable {
            name: section.key.name,
            columns: section.columns,
            rows,
            data,
        });
    }
    Ok(TenantArchive {
        source: archive.source(),
        tables,
    })
}
