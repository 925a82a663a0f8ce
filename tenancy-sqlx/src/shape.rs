//! [`ShapeReport`]: what the model check (`verify.rs`) found wrong with a table. Apart from the
//! check so that [`Error`](crate::Error) can carry it without importing the check.

use std::fmt;

/// What [`Tenancy::verify`](crate::Tenancy::verify) found wrong with one table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShapeReport {
    /// The table.
    pub table: String,
    /// One line per problem.
    pub problems: Vec<String>,
}

impl fmt::Display for ShapeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "table {:?} is not shaped for tenant isolation:",
            self.table
        )?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}
