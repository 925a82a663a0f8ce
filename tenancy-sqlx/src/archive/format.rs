//! The archive's text: its magic lines, its section headers and the one reader of both versions.
//!
//! Every archive is read here, streamed or in memory, version 1 or 2, so a section header has one
//! parser and a section one key ([`SectionKey`]: its kind and its name, never a name guessed from
//! quoted SQL).

use std::collections::HashSet;
use std::fmt;

use tenancy_core::TenantId;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

use crate::{ArchiveError, Error, Result};

/// The first line of a version 1 archive (sized sections: the in-memory API of 0.1).
const MAGIC_V1: &str = "tenancy-archive 1";
/// The first line of a version 2 archive (streamed sections), the one written.
pub(crate) const MAGIC_V2: &str = "tenancy-archive 2";
/// The line after the last section.
pub(crate) const END: &str = "end";
/// COPY's own end of data: no data line can be it, COPY text escapes every backslash.
pub(crate) const END_OF_DATA: &[u8] = b"\\.\n";
/// A header is short; a missing newline within this many bytes is not an archive.
const MAX_HEADER: u64 = 64 * 1024;
/// The longest row read: PostgreSQL allocates no more for one (`MaxAllocSize`), so no archive
/// it wrote holds a longer one, and a stream without newlines is refused at this length rather
/// than held in memory to its end.
const MAX_ROW: u64 = (1 << 30) - 1;

/// A malformed part of the archive, in `table`'s section if it is in one.
pub(crate) fn malformed(table: Option<&str>, what: impl Into<String>) -> Error {
    ArchiveError::Malformed {
        table: table.map(str::to_owned),
        what: what.into(),
    }
    .into()
}

/// The archive ends early, in `table`'s rows if it is in them.
pub(crate) fn truncated(table: Option<&str>) -> Error {
    ArchiveError::Truncated {
        table: table.map(str::to_owned),
    }
    .into()
}

pub(crate) fn reading(source: std::io::Error) -> Error {
    ArchiveError::Io {
        writing: false,
        source,
    }
    .into()
}

pub(crate) fn writing(source: std::io::Error) -> Error {
    ArchiveError::Io {
        writing: true,
        source,
    }
    .into()
}

/// The archive format versions read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// Each section states its row count and byte length before its rows.
    Sized,
    /// Each section's rows end with COPY's end marker, then a line `rows <n>`.
    Streamed,
}

/// What a section holds. One kind today; another (own-database objects, say) is a variant, and
/// its sections are never matched to a table of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SectionKind {
    /// A table's rows, without the tenant column.
    Table,
}

impl SectionKind {
    fn word(self) -> &'static str {
        match self {
            Self::Table => "table",
        }
    }

    fn parse(word: &str) -> Result<Self> {
        match word {
            "table" => Ok(Self::Table),
            other => Err(malformed(None, format!("unknown section kind {other:?}"))),
        }
    }
}

/// What a section is matched by, on import, and must be unique by, in an archive: its kind and
/// its name (a table's unqualified name, as the catalog spells it, a valid identifier).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SectionKey {
    pub(crate) kind: SectionKind,
    pub(crate) name: String,
}

impl SectionKey {
    /// A table's key; refuses a name the header could not hold unambiguously.
    pub(crate) fn table(name: &str) -> Result<Self> {
        tenancy_core::ident::validate(name)?;
        Ok(Self {
            kind: SectionKind::Table,
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for SectionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.word(), self.name)
    }
}

/// One section's header, and where its reader is in it.
#[derive(Debug)]
pub(crate) struct Section {
    pub(crate) key: SectionKey,
    /// The data's columns, in order, without the tenant column.
    pub(crate) columns: Vec<String>,
    /// Version 1: the stated row count, and the bytes of rows not read yet.
    sized: Option<(u64, usize)>,
}

impl Section {
    pub(crate) fn new(key: SectionKey, columns: Vec<String>) -> Self {
        Self {
            key,
            columns,
            sized: None,
        }
    }

    /// The header line a version 2 archive writes for this section.
    pub(crate) fn header_line(&self) -> String {
        format!("{} columns {}\n", self.key, self.columns.join(","))
    }

    /// The line that follows a section's rows in version 2.
    pub(crate) fn trailer(rows: u64) -> String {
        format!("\\.\nrows {rows}\n")
    }

    fn parse(header: &str, version: Version) -> Result<Self> {
        let words: Vec<&str> = header.split(' ').collect();
        let (kind, name, columns, sized) = match (version, &words[..]) {
            (Version::Streamed, [kind, name, "columns", columns]) => (kind, name, columns, None),
            (Version::Sized, [kind, name, "rows", rows, "bytes", len, "columns", columns]) => {
                let rows: u64 = rows
                    .parse()
                    .map_err(|_| malformed(Some(name), "row count"))?;
                let len: usize = len.parse().map_err(|_| malformed(Some(name), "length"))?;
                (kind, name, columns, Some((rows, len)))
            }
            _ => return Err(malformed(None, "section header")),
        };
        let kind = SectionKind::parse(kind)?;
        tenancy_core::ident::validate(name)?;
        let columns: Vec<String> = columns.split(',').map(str::to_owned).collect();
        for c in &columns {
            tenancy_core::ident::validate(c)?;
        }
        Ok(Self {
            key: SectionKey {
                kind,
                name: (*name).to_owned(),
            },
            columns,
            sized,
        })
    }
}

/// Reads an archive of either version from `input`, a section at a time and a row at a time,
/// so that memory stays bounded by one row whatever the archive's size.
pub(crate) struct ArchiveReader<'i, R: ?Sized> {
    input: &'i mut R,
    version: Version,
    source: TenantId,
    seen: HashSet<SectionKey>,
}

impl<'i, R> ArchiveReader<'i, R>
where
    R: AsyncBufRead + Unpin + Send + ?Sized,
{
    /// Reads the archive's first two lines: its version and the tenant it was exported from.
    pub(crate) async fn open(input: &'i mut R) -> Result<Self> {
        let version = match read_line(&mut *input).await?.as_deref() {
            Some(MAGIC_V1) => Version::Sized,
            Some(MAGIC_V2) => Version::Streamed,
            _ => return Err(ArchiveError::NotAnArchive.into()),
        };
        let source = read_line(&mut *input)
            .await?
            .as_deref()
            .and_then(|l| l.strip_prefix("source "))
            .ok_or_else(|| malformed(None, "missing source"))?
            .parse::<TenantId>()?;
        Ok(Self {
            input,
            version,
            source,
            seen: HashSet::new(),
        })
    }

    /// The tenant the archive was exported from.
    pub(crate) fn source(&self) -> TenantId {
        self.source
    }

    /// The next section's header, or `None` after the last. A section whose key came before is
    /// refused: its rows would land twice.
    pub(crate) async fn next_section(&mut self) -> Result<Option<Section>> {
        let header = read_line(&mut *self.input)
            .await?
            .ok_or_else(|| truncated(None))?;
        if header == END {
            return Ok(None);
        }
        let section = Section::parse(&header, self.version)?;
        if !self.seen.insert(section.key.clone()) {
            return Err(malformed(
                Some(&section.key.name),
                format!("{} appears twice", section.key),
            ));
        }
        Ok(Some(section))
    }

    /// Reads the section's next row, with its newline, into `line` (cleared first); `false`
    /// after its last row.
    pub(crate) async fn next_row(
        &mut self,
        section: &mut Section,
        line: &mut Vec<u8>,
    ) -> Result<bool> {
        line.clear();
        let limit = match &section.sized {
            Some((_, 0)) => return Ok(false),
            Some((_, left)) => MAX_ROW.min(*left as u64),
            None => MAX_ROW,
        };
        let n = (&mut *self.input)
            .take(limit)
            .read_until(b'\n', line)
            .await
            .map_err(reading)?;
        if let Some((_, left)) = &mut section.sized {
            *left -= n;
        }
        if n as u64 == MAX_ROW && line.last() != Some(&b'\n') {
            return Err(malformed(
                Some(&section.key.name),
                "a row longer than PostgreSQL's 1 GiB",
            ));
        }
        if n == 0 || line.last() != Some(&b'\n') {
            return Err(truncated(Some(&section.key.name)));
        }
        Ok(section.sized.is_some() || line != END_OF_DATA)
    }

    /// The row count the archive states for `section`, read after its last row.
    pub(crate) async fn stated_rows(&mut self, section: &Section) -> Result<u64> {
        match section.sized {
            Some((rows, _)) => Ok(rows),
            None => read_line(&mut *self.input)
                .await?
                .as_deref()
                .and_then(|l| l.strip_prefix("rows "))
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| malformed(Some(&section.key.name), "missing row count")),
        }
    }
}

/// One header line, without its newline; `None` at the end of input.
async fn read_line<R>(input: &mut R) -> Result<Option<String>>
where
    R: AsyncBufRead + Unpin + Send + ?Sized,
{
    let mut line = Vec::new();
    let n = (&mut *input)
        .take(MAX_HEADER)
        .read_until(b'\n', &mut line)
        .await
        .map_err(reading)?;
    if n == 0 {
        return Ok(None);
    }
    if line.pop() != Some(b'\n') {
        return Err(truncated(None));
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| malformed(None, "header is not UTF-8"))
}
