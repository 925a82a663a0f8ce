//! What `#[tenant_scoped]` generates an implementation of: a description of the model, and the
//! statements the runtime builds from it.
//!
//! Nothing here runs SQL, and nothing a model implements supplies SQL. A `Model` describes a
//! table ([`ModelMeta`]: names, which columns are inserted and updated, which is the key), hands
//! out its fields as [`ColumnType`] values and decodes rows. The runtime builds every statement
//! from the description (names validated and quoted), binds exactly the fields the statement was
//! built for, and binds the tenant itself, last (see `bind.rs`).
//!
//! # Who can implement `Model`
//!
//! Everything the attribute writes, a user can write: `#[doc(hidden)]` is not a boundary, and
//! neither is any trait the expansion implements. So the boundary is not who implements the
//! trait but what an implementation can do:
//!
//! - its description is a claim, checked against the database before the model's first
//!   statement through each `Tenancy` handle (`verify.rs`): the declared tenant column must be
//!   the table's tenant column, and no model column may be one;
//! - the statements are the runtime's, built from the checked description; the trait has no
//!   method that returns SQL or binds arguments, and a value that hands out more or fewer fields
//!   than the statement binds is refused.
//!
//! A hand-written implementation, even a copy of an expansion, therefore reaches only the
//! tenant's own rows of a table shaped for isolation, as a generated one does. The supertrait
//! [`TenantScoped`] adds no power: it turns a plain hand-written `impl Model` into a compile
//! error that says to use the attribute (`ui-tests/.../sealed/model-by-hand.rs`), which is all a
//! trait the attribute must be able to implement can do. A `const`-evaluated check of the
//! description was weighed and left out: it could check the description only against itself,
//! which `ModelSqlBuild::build` (in `crate::sql`) already does, at a compile cost in every model.

use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Decode, Encode, Postgres, Row, Type};
use uuid::Uuid;

use crate::value::{BindValue, Value};
use crate::{Error, Result};

/// A tenant-scoped model's table, as `#[tenant_scoped]` describes it.
#[derive(Debug)]
pub struct ModelMeta {
    /// The Rust type's name, for messages.
    pub name: &'static str,
    /// The table.
    pub table: &'static str,
    /// The column that holds the tenant id in shared tables (`tenant_id` unless renamed).
    pub tenant_column: &'static str,
    /// The persisted fields, in declaration order.
    pub columns: &'static [ColumnMeta],
    /// Index in `columns` of the uuid key.
    pub key: usize,
}

/// One persisted field of a model.
#[derive(Debug)]
pub struct ColumnMeta {
    /// The column's name in the table.
    pub name: &'static str,
    /// The Rust field's name.
    pub field: &'static str,
    /// Written by inserts (false for columns the database fills).
    pub insert: bool,
    /// Written by whole-row updates (false for the key and read-only columns).
    pub update: bool,
}

/// A tenant-scoped model. Implemented by `#[tenant_scoped]`; see the crate docs and the module
/// docs of `model.rs` for why a hand-written implementation is refused and harmless anyway.
///
/// The implementation is small on purpose (each model's is type-checked in the user's crate):
/// it decodes a row in one body and hands out its fields as [`ColumnType`] objects; binding,
/// cursor values and the choice of decoding by position or by name are provided here, once.
pub trait Model: TenantScoped + Sized + Send + Sync + Unpin + 'static {
    /// The insertable part of the model (`New<Model>`), without the columns the database fills.
    type New: NewModel<Model = Self>;

    /// The description of the table: a claim, checked against the database before the model's
    /// first statement (see [`Tenancy::verify`](crate::Tenancy::verify)).
    const META: ModelMeta;

    /// This row's key.
    fn key(&self) -> Uuid;

    /// Decodes a row: by position (`META.columns` order) when `names` is `None`, else by the
    /// names of `names` (the model's columns).
    #[doc(hidden)]
    fn decode(
        row: &PgRow,
        names: Option<&'static [ColumnMeta]>,
    ) -> std::result::Result<Self, sqlx::Error>;

    /// The field of column `index`, if there is one.
    #[doc(hidden)]
    fn column(&self, index: usize) -> Option<&dyn ColumnType>;

    /// Decodes a row whose columns are `META.columns`, in that order.
    #[doc(hidden)]
    fn decode_row(row: &PgRow) -> std::result::Result<Self, sqlx::Error> {
        Self::decode(row, None)
    }

    /// Decodes a row by column names (for raw SQL, whose column order is the user's).
    #[doc(hidden)]
    fn decode_named(row: &PgRow) -> std::result::Result<Self, sqlx::Error> {
        Self::decode(row, Some(Self::META.columns))
    }
}

/// Marks a type `#[tenant_scoped]` declared a model. It carries nothing: it turns a
/// hand-written `impl Model` into an error that says what to write instead. See the module docs
/// for why a hand-written implementation could do no harm anyway.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `#[tenant_scoped]` model",
    label = "`Model` is implemented by `#[tenant_scoped]`, not by hand",
    note = "declare the struct with `#[tenant_scoped(table = \"...\")]`; tenancy checks the description it generates against the database and builds every statement itself"
)]
pub trait TenantScoped {}

/// The insertable part of a model, generated as `New<Model>` by `#[tenant_scoped]`.
pub trait NewModel: Send + Sync {
    /// The model it inserts.
    type Model: Model;

    /// The `n`th insertable column's field (in `META.columns` order), if there is one.
    #[doc(hidden)]
    fn column(&self, n: usize) -> Option<&dyn ColumnType>;
}

// Binding is done here, not in provided trait methods: a hand-written `Model` could override
// those, and they receive the arguments that already hold the tenant as `$1`. The fields they
// bind are `ColumnType`s, a sealed trait whose only implementation binds one value.

/// Binds the field of column `index` of `row`.
pub(crate) fn bind_column<M: Model>(
    row: &M,
    index: usize,
    args: &mut PgArguments,
) -> std::result::Result<(), BoxDynError> {
    match row.column(index) {
        Some(field) => field.bind_to(args),
        None => Err("column index out of range".into()),
    }
}

/// A copy of the field of column `index` of `row` (for keyset cursors).
pub(crate) fn column_value<M: Model>(row: &M, index: usize) -> Option<Value> {
    row.column(index).map(ColumnType::to_value)
}

/// Binds the `width` insertable columns of `new`, in `META.columns` order: exactly that many,
/// the number the statement was built for.
pub(crate) fn bind_insert<N: NewModel>(
    new: &N,
    width: usize,
    args: &mut PgArguments,
) -> Result<()> {
    for n in 0..width {
        let field = new.column(n).ok_or_else(|| Error::InvalidModel {
            model: N::Model::META.name,
            reason: format!(
                "its insertable value has {n} fields; the model inserts {width} columns"
            ),
        })?;
        field.bind_to(args).map_err(Error::Encode)?;
    }
    if new.column(width).is_some() {
        return Err(Error::InvalidModel {
            model: N::Model::META.name,
            reason: format!(
                "its insertable value has more fields than the {width} columns the model inserts"
            ),
        });
    }
    Ok(())
}

/// A type a model's field can have: sqlx decodes it from and binds it to PostgreSQL, and it can
/// be copied into a keyset cursor. Implemented for every such type; mark a field that is not a
/// column `#[tenancy(skip)]`.
///
/// All the generic sqlx work on fields happens in this implementation, compiled once per field
/// type, rather than in each model's generated code.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the type of a column",
    label = "sqlx cannot decode, bind or copy `{Self}` for PostgreSQL",
    note = "a column's type implements sqlx's `Type<Postgres>`, `Decode` and `Encode` (as `#[derive(sqlx::Type)]` does) and `Clone`; mark a field that is not a column #[tenancy(skip)]"
)]
pub trait ColumnType: crate::value::sealed::Encodable + Send + Sync + 'static {
    /// Decodes column `index` of `row` (by position, or by `names[index].name`).
    #[doc(hidden)]
    fn decode(
        row: &PgRow,
        names: Option<&'static [ColumnMeta]>,
        index: usize,
    ) -> std::result::Result<Self, sqlx::Error>
    where
        Self: Sized;

    /// Adds this value to `args`.
    #[doc(hidden)]
    fn bind_to(&self, args: &mut PgArguments) -> std::result::Result<(), BoxDynError>;

    /// A shared copy of this value.
    #[doc(hidden)]
    fn to_value(&self) -> Value;
}

impl<T> ColumnType for T
where
    T: for<'r> Decode<'r, Postgres>
        + for<'q> Encode<'q, Postgres>
        + Type<Postgres>
        + Clone
        + Send
        + Sync
        + 'static,
{
    fn decode(
        row: &PgRow,
        names: Option<&'static [ColumnMeta]>,
        index: usize,
    ) -> std::result::Result<Self, sqlx::Error> {
        match names {
            None => row.try_get(index),
            Some(names) => match names.get(index) {
                Some(column) => row.try_get(column.name),
                None => Err(sqlx::Error::ColumnIndexOutOfBounds {
                    index,
                    len: names.len(),
                }),
            },
        }
    }

    fn bind_to(&self, args: &mut PgArguments) -> std::result::Result<(), BoxDynError> {
        BindValue::bind(self, args)
    }

    fn to_value(&self) -> Value {
        Value::new(self.clone())
    }
}
