//! Type-erased values to bind: what filters, assignments and cursors carry.

use std::fmt;
use std::sync::Arc;

use sqlx::error::BoxDynError;
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, Encode, Postgres, Type};

/// A value that can be bound to a PostgreSQL statement. Implemented for every sqlx-encodable type.
pub trait BindValue: Send + Sync + 'static {
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
        args.add(self)
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
