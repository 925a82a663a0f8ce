//! Why a tenant archive could not be written or read, or does not fit its target.

use tenancy_core::TenantId;

/// A tenant archive could not be written or read, or does not fit the tenant it is imported
/// into, as [`Error::Archive`](crate::Error::Archive) carries it: which tenant, which table
/// (the archive's section), what failed. An import that fails keeps nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The input is not a tenancy archive, or of a version this one cannot read.
    #[error("not a tenancy archive (or an unknown version)")]
    NotAnArchive,
    /// A header line or a table's data is malformed: `what` says which part.
    #[error("malformed archive{}: {what}", table.as_ref().map(|t| format!(" (table {t})")).unwrap_or_default())]
    Malformed {
        /// The table whose section it is in, if it got that far.
        table: Option<String>,
        /// What is malformed.
        what: String,
    },
    /// The archive ends before its `end` line.
    #[error("truncated archive{}", table.as_ref().map(|t| format!(": table {t}'s data is cut off")).unwrap_or_default())]
    Truncated {
        /// The table whose data is cut off, if it is in one.
        table: Option<String>,
    },
    /// Reading or writing the archive failed.
    #[error("{} the archive: {source}", if *writing { "writing" } else { "reading" })]
    Io {
        /// True when writing (export), false when reading (import).
        writing: bool,
        /// Why.
        source: std::io::Error,
    },
    /// The target tenant has rows, and the import does not replace them.
    #[error("tenant {tenant} is not empty: {table} has {rows} row(s)")]
    NotEmpty {
        /// The target tenant.
        tenant: TenantId,
        /// A table with its rows.
        table: String,
        /// How many.
        rows: i64,
    },
    /// The archive has a table the target tenant's placement does not.
    #[error("the target tenant {tenant} has no table {table}")]
    NoTable {
        /// The target tenant.
        tenant: TenantId,
        /// The archive's table.
        table: String,
    },
    /// The archive has a column the target's table does not.
    #[error("the target's {table} has no column {column}")]
    NoColumn {
        /// The target tenant.
        tenant: TenantId,
        /// The table.
        table: String,
        /// The archive's column.
        column: String,
    },
    /// Two of the tenant's tables have the same name in different schemas: an archive names
    /// tables without their schema, so it could not tell them apart.
    #[error(
        "two tables hold tenant rows under the name {name:?} ({first} and {second}); an archive \
         names tables without their schema"
    )]
    SameName {
        /// The name they share.
        name: String,
        /// One, qualified.
        first: String,
        /// The other, qualified.
        second: String,
    },
    /// A table has inheritance descendants both among the tenant's tables and outside them (or
    /// one outside that another tenant table has too): read through it, some rows are read
    /// twice; read alone, others not at all.
    #[error(
        "{table} has inheritance descendants both among the tenant's tables and outside them \
         ({outside}); no reading of it reads each row once"
    )]
    SplitInheritance {
        /// The parent, qualified.
        table: String,
        /// A child outside the tenant's tables, qualified.
        outside: String,
    },
    /// A table's row count, as the archive states it, differs from the rows read.
    #[error("{table}: the archive says {stated} rows, {read} were read")]
    RowCount {
        /// The table.
        table: String,
        /// The count the archive states.
        stated: u64,
        /// The rows read (or inserted).
        read: u64,
    },
}
