//! Why a cross-tenant report cannot run as asked.

/// A cross-tenant report cannot run as asked, as [`Error::Report`](crate::Error::Report)
/// carries it. Nothing was sent, or what was read is dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// `limit` was negative.
    #[error("limit must not be negative (got {0})")]
    NegativeLimit(i64),
    /// `offset` was negative.
    #[error("offset must not be negative (got {0})")]
    NegativeOffset(i64),
    /// The report orders by a column of a type whose values it cannot merge across tenants.
    #[error(
        "cannot order a report by column {column} of type {type_name}: reports order by \
         integers, floats, booleans, text, bytea, uuid, dates and times"
    )]
    UnorderableColumn {
        /// The column.
        column: String,
        /// Its PostgreSQL type, as the server names it.
        type_name: String,
    },
    /// A page's bound (the last row's ordering value) is NULL, which no comparison passes.
    #[error("a page cannot start after a NULL ordering value")]
    NullBound,
    /// An integer sum across tenants overflows `i64`.
    #[error("a sum overflows i64")]
    SumOverflow,
    /// Something else, said in words.
    #[error("{0}")]
    Other(String),
}

impl From<&str> for ReportError {
    fn from(what: &str) -> Self {
        Self::Other(what.to_owned())
    }
}
