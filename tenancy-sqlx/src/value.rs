//! Type-erased values to bind: what filters, assignments and cursors carry.

use std::fmt;
use std::sync::Arc;

use sqlx::error::BoxDynError;
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, Encode, Postgres, Type};

/// A value that can be bound to a PostgreSQL statement. Implemented for every sqlx-encodable type.
pub trait BindValue: sealed::Encodable + Send + Sync + 'static {
    /// Adds this value to `args`.
    ///
    /// # Errors
    /// The encoder's error.
    fn bind(&self, args: &mut PgArguments) -> Result<(), BoxDynError>;
}

impl<T> BindValue for T
where
    T: for<'q> Encode<'q, Postgres> + Type<Postgres> + Send + Sync + 'static,
{
    fn bind(&self, args: &mut PgArguments) -> Result<(), BoxDynError> {
        // Through a buffer of its own: the encoder is the user's code (see `crate::bind`).
        args.add(crate::bind::Fenced(self))
    }
}

/// A shared, type-erased value.
#[derive(Clone)]
pub struct Value(pub(crate) Arc<dyn BindValue>);

impl Value {
    /// Erases the type of `v`.
    pub fn new<T: BindValue>(v: T) -> Self {
        Self(Arc::new(v))
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be customer data: never print them.
        f.write_str("Value(..)")
    }
}

/// Seals the traits that bind values ([`BindValue`], `ColumnType`, `ColumnValue`): they are
/// handed the statement's arguments, whose `$1` is the tenant, so no type may implement them
/// but through the blanket implementations, which add exactly one value with sqlx's encoder.
/// A private trait: nothing outside this crate can name it, let alone implement it.
pub(crate) mod sealed {
    use sqlx::{Encode, Postgres, Type};

    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be bound as a column value",
        label = "sqlx cannot encode `{Self}` for PostgreSQL",
        note = "values are bound through sqlx's `Encode` and `Type<Postgres>` (as `#[derive(sqlx::Type)]` implements them); tenancy's binding traits cannot be implemented by hand, since they see the tenant's argument"
    )]
    pub trait Encodable {}
    impl<T> Encodable for T where T: for<'q> Encode<'q, Postgres> + Type<Postgres> + ?Sized {}
}
