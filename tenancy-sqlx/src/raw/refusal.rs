//! [`RawSqlRefusal`]: why raw SQL was refused. A leaf, so that [`Error`](crate::Error) can carry
//! it without importing the check.

use std::fmt;

/// Why raw SQL was refused, in [`Error::UnscopedSql`](crate::Error::UnscopedSql). Nothing of the statement was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalKind {
    /// The SQL names a declared model's table instead of its `{table}` placeholder.
    DeclaredTable,
    /// The SQL names a tenant table of a model it did not declare, or a view, materialized view
    /// or sequence over a tenant table.
    TenantTable,
    /// The SQL names a tenant schema, or the registry schema `tenancy`.
    TenantSchema,
    /// The SQL calls a function that is not one of the allowed built-ins (those that read only
    /// their arguments), or one that a function defined in the database could shadow.
    Function,
    /// The SQL names a system catalog or view (`pg_*`, `information_schema`): they show every
    /// tenant's values, statements or counts.
    SystemView,
    /// A `{placeholder}` of a model not declared, or none at all.
    Placeholder,
    /// A `$n` with no bound value.
    Parameter,
    /// The SQL cannot be lexed with certainty (unterminated, `U&` escapes, a backslash in a
    /// `'...'` string, a second statement).
    Lexical,
    /// `SELECT ... INTO`: it creates a table (a temporary one outlives the statement on the
    /// pooled connection) holding the tenant's rows, outside any tenant's scope.
    SelectInto,
    /// The SQL names a relation that is neither a placeholder, a CTE, nor a global table
    /// declared with [`TenancyBuilder::global_tables`](crate::TenancyBuilder::global_tables).
    Relation,
    /// A declared global table that may hold tenant data: it has a tenant column, references
    /// the registry, is not a plain table, is in a tenant or system schema, or the name
    /// resolves elsewhere.
    GlobalTable,
    /// An operator that is not one of the allowed built-ins.
    Operator,
    /// A cast to a type that is not one of the allowed built-ins (the `reg*` types look names
    /// up in the catalog).
    Cast,
    /// A statement that is not a query (`INSERT`, `UPDATE`, `DELETE`, utility statements) or
    /// that locks rows (`FOR UPDATE`).
    Statement,
    /// SQL syntax the check does not allow (XML, `TABLESAMPLE`, `SEARCH`/`CYCLE` ...).
    Construct,
    /// The server is not the PostgreSQL version whose grammar the check reads SQL with.
    ServerVersion,
    /// A global write's table runs something the statement does not name that could write
    /// elsewhere: a trigger, a rule, a foreign key that cascades into the referencing table,
    /// or a default, constraint or policy calling a function defined in the database.
    WriteTarget,
}

/// Raw SQL refused by the escape hatch: which name, why, and what to write instead.
///
/// Its `Display` says all three; match on [`RawSqlRefusal::kind`] to handle a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSqlRefusal {
    kind: RefusalKind,
    name: Option<String>,
    reason: String,
    hint: String,
}

impl RawSqlRefusal {
    pub(crate) fn new(kind: RefusalKind, name: Option<&str>, reason: String, hint: &str) -> Self {
        Self {
            kind,
            name: name.map(str::to_owned),
            reason,
            hint: hint.to_owned(),
        }
    }

    /// The kind of refusal.
    pub fn kind(&self) -> RefusalKind {
        self.kind
    }

    /// The identifier, placeholder or parameter at fault, as the server would read it
    /// (unquoted names folded to lowercase), if one is.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Why the SQL could reach rows outside the tenant.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// What to write instead.
    pub fn hint(&self) -> &str {
        &self.hint
    }
}

impl fmt::Display for RawSqlRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.reason, self.hint)
    }
}
