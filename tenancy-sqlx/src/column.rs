//! Typed column handles and what they build: filters, orderings and assignments.
//!
//! `#[tenant_scoped]` generates one handle per field as an associated constant (`Spin::DURATION`).
//! A handle is typed by its model and its Rust type, so a filter on another model's column, or
//! comparing a number column with a string, does not compile. Key and read-only columns get a
//! [`ReadOnly`] handle, which cannot be assigned. Handles are built only from the model's own
//! declaration ([`DeclaresColumn`]), so a user cannot make a `Writable` handle on a read-only
//! column.

use std::marker::PhantomData;
use std::ops::{BitAnd, BitOr, Not};

use sqlx::postgres::{PgHasArrayType, PgRow};
use sqlx::{Encode, Postgres, Type};

use crate::model::{ColumnMeta, ColumnType, Model};
use crate::value::{BindValue, Value};

/// Marks a column that whole-row and partial updates may write.
#[derive(Debug, Clone, Copy)]
pub struct Writable;

/// Marks a column no update may write: the key, and columns the database fills.
#[derive(Debug, Clone, Copy)]
pub struct ReadOnly;

/// Ties a handle to its model, value type and writability without owning any of them.
type Marker<M, T, W> = PhantomData<fn() -> (M, T, W)>;

/// A typed handle on column `index` of model `M`, holding values of type `T`.
pub struct Column<M, T, W = Writable> {
    index: usize,
    _marker: Marker<M, T, W>,
}

impl<M, T, W> Clone for Column<M, T, W> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M, T, W> Copy for Column<M, T, W> {}

impl<M, T, W> std::fmt::Debug for Column<M, T, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Column").field(&self.index).finish()
    }
}

/// Values a column can be compared with: anything sqlx can bind for PostgreSQL.
pub trait ColumnValue: BindValue {}
impl<T> ColumnValue for T where
    T: for<'q> Encode<'q, Postgres> + Type<Postgres> + Send + Sync + 'static
{
}

/// Declares column `I` of a model (its position among the persisted fields): the Rust type of
/// its values and whether updates may write it ([`Writable`]) or not ([`ReadOnly`]: the key, and
/// columns the database fills).
///
/// `#[tenant_scoped]` implements it once per column, and [`Column::declared`] is the only way to
/// a handle, so a handle has the type and writability its model declares: a `Writable` handle on
/// a read-only column cannot be built. Coherence keeps the declaration unique (a second
/// implementation for the same column conflicts with the generated one, and no other crate can
/// implement it for a model it does not own).
///
/// It is also how generated code decodes and binds a field: `Type: ColumnType` is checked once,
/// here, at the field's type, and the provided methods do the generic work in this crate, so a
/// model's generated bodies carry no sqlx trait bounds of their own.
#[diagnostic::on_unimplemented(
    message = "`{Self}` declares no column {I}",
    label = "not a column of `{Self}`",
    note = "column handles come from the model: use the constants `#[tenant_scoped]` generates on `{Self}`, one per column, named like its field in capitals"
)]
pub trait DeclaresColumn<const I: usize>: Model {
    /// The Rust type of the column's values.
    type Type: ColumnType;
    /// [`Writable`] or [`ReadOnly`].
    type Access;

    /// Decodes this column of `row` (by position, or by name when `names` is given).
    #[doc(hidden)]
    fn decode_column(
        row: &PgRow,
        names: Option<&'static [ColumnMeta]>,
    ) -> std::result::Result<Self::Type, sqlx::Error> {
        <Self::Type as ColumnType>::decode(row, names, I)
    }

    /// A field of this column, to bind or copy.
    #[doc(hidden)]
    fn column_ref(value: &Self::Type) -> &dyn ColumnType {
        value
    }
}

/// Decodes all `N` columns of a model in one call, into a tuple of their types. Generated code
/// decodes a row with one call to this rather than one per field, which is less for rustc to
/// check in each model; implemented for models of up to 32 columns (larger ones decode field by
/// field).
#[doc(hidden)]
pub trait DecodeColumns<const N: usize>: Model {
    /// `(<Self as DeclaresColumn<0>>::Type, ...)`.
    type Columns;

    /// Decodes the columns of `row` (by position, or by name when `names` is given).
    fn decode_columns(
        row: &PgRow,
        names: Option<&'static [ColumnMeta]>,
    ) -> std::result::Result<Self::Columns, sqlx::Error>;
}

macro_rules! decode_columns {
    ($($n:literal: $($i:tt),+;)+) => {$(
        impl<M: Model $(+ DeclaresColumn<$i>)+> DecodeColumns<$n> for M {
            type Columns = ($(<M as DeclaresColumn<$i>>::Type,)+);

            fn decode_columns(
                row: &PgRow,
                names: Option<&'static [ColumnMeta]>,
            ) -> std::result::Result<Self::Columns, sqlx::Error> {
                Ok(($(<M as DeclaresColumn<$i>>::decode_column(row, names)?,)+))
            }
        }
    )+};
}

/// Calls `$m!` with every arity the tuple impls cover: `n: 0, 1, ..., n-1;` for n in 1..=32.
/// One table for both `DecodeColumns` and `FieldRefs`, so their limits cannot drift apart.
macro_rules! for_each_arity {
    ($m:ident) => {
        $m! {
        1: 0;
        2: 0, 1;
        3: 0, 1, 2;
        4: 0, 1, 2, 3;
        5: 0, 1, 2, 3, 4;
        6: 0, 1, 2, 3, 4, 5;
        7: 0, 1, 2, 3, 4, 5, 6;
        8: 0, 1, 2, 3, 4, 5, 6, 7;
        9: 0, 1, 2, 3, 4, 5, 6, 7, 8;
        10: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9;
        11: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10;
        12: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11;
        13: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12;
        14: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13;
        15: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14;
        16: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15;
        17: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16;
        18: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17;
        19: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18;
        20: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19;
        21: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20;
        22: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21;
        23: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22;
        24: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23;
        25: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24;
        26: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25;
        27: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26;
        28: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27;
        29: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28;
        30: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29;
        31: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30;
        32: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31;
        }
    };
}

for_each_arity!(decode_columns);

/// A model's fields, as the columns they are: generated code hands over references to all `N`
/// fields in one call (for [`Model::column`]) rather than naming each column's declaration.
/// Implemented for models of up to 32 columns.
#[doc(hidden)]
pub trait FieldRefs<const N: usize>: Model {
    /// `(&<Self as DeclaresColumn<0>>::Type, ...)`.
    type Refs<'a>;

    /// The fields as column values, in column order.
    fn field_refs(refs: Self::Refs<'_>) -> [&dyn ColumnType; N];
}

macro_rules! field_refs {
    ($($n:literal: $($i:tt),+;)+) => {$(
        impl<M: Model $(+ DeclaresColumn<$i>)+> FieldRefs<$n> for M {
            type Refs<'a> = ($(&'a <M as DeclaresColumn<$i>>::Type,)+);

            fn field_refs(refs: Self::Refs<'_>) -> [&dyn ColumnType; $n] {
                [$(refs.$i),+]
            }
        }
    )+};
}

for_each_arity!(field_refs);

impl<M, T, W> Column<M, T, W> {
    /// The handle on column `I` of `M`, with the type and writability `M` declares for it.
    /// `#[tenant_scoped]` builds its handles with this.
    pub const fn declared<const I: usize>() -> Self
    where
        M: DeclaresColumn<I, Type = T, Access = W>,
    {
        Self {
            index: I,
            _marker: PhantomData,
        }
    }

    /// Position in the model's columns.
    pub const fn index(&self) -> usize {
        self.index
    }
}

impl<M: Model, T, W> Column<M, T, W> {
    /// The column's name in the table.
    pub fn name(&self) -> &'static str {
        M::META.columns.get(self.index).map_or("?", |c| c.name)
    }
}

impl<M, T: ColumnValue, W> Column<M, T, W> {
    fn cmp(&self, op: &'static str, value: impl Into<T>) -> Filter<M> {
        Filter::node(Node::Cmp {
            col: self.index,
            op,
            value: Value::new(value.into()),
        })
    }

    /// `column = value`. For a nullable column, compare with [`Column::is_null`] instead of `None`.
    pub fn eq(&self, value: impl Into<T>) -> Filter<M> {
        self.cmp("=", value)
    }
    /// `column <> value`.
    pub fn ne(&self, value: impl Into<T>) -> Filter<M> {
        self.cmp("<>", value)
    }
    /// `column < value`.
    pub fn lt(&self, value: impl Into<T>) -> Filter<M> {
        self.cmp("<", value)
    }
    /// `column <= value`.
    pub fn le(&self, value: impl Into<T>) -> Filter<M> {
        self.cmp("<=", value)
    }
    /// `column > value`.
    pub fn gt(&self, value: impl Into<T>) -> Filter<M> {
        self.cmp(">", value)
    }
    /// `column >= value`.
    pub fn ge(&self, value: impl Into<T>) -> Filter<M> {
        self.cmp(">=", value)
    }

    /// `column = ANY($n)`: one bound array, so the statement is the same whatever the list's
    /// length. An empty list matches nothing.
    pub fn is_in(&self, values: impl IntoIterator<Item = T>) -> Filter<M>
    where
        T: PgHasArrayType,
        Vec<T>: ColumnValue,
    {
        let values: Vec<T> = values.into_iter().collect();
        Filter::node(Node::Any {
            col: self.index,
            negated: false,
            value: Value::new(values),
        })
    }

    /// `NOT (column = ANY($n))`. An empty list matches everything.
    pub fn not_in(&self, values: impl IntoIterator<Item = T>) -> Filter<M>
    where
        T: PgHasArrayType,
        Vec<T>: ColumnValue,
    {
        let values: Vec<T> = values.into_iter().collect();
        Filter::node(Node::Any {
            col: self.index,
            negated: true,
            value: Value::new(values),
        })
    }

    /// Ascending order on this column.
    pub fn asc(&self) -> Order<M>
    where
        T: Type<Postgres>,
    {
        Order::new(self.index, false).text(is_text::<T>())
    }

    /// Descending order on this column.
    pub fn desc(&self) -> Order<M>
    where
        T: Type<Postgres>,
    {
        Order::new(self.index, true).text(is_text::<T>())
    }
}

/// Text columns (`String` and `Option<String>`).
pub trait TextColumn {}
impl TextColumn for String {}
impl TextColumn for Option<String> {}

impl<M, T: TextColumn, W> Column<M, T, W> {
    fn like_op(&self, op: &'static str, pattern: impl Into<String>) -> Filter<M> {
        Filter::node(Node::Cmp {
            col: self.index,
            op,
            value: Value::new(pattern.into()),
        })
    }

    /// `column LIKE pattern` (`%` and `_` are wildcards; escape them with `\`).
    pub fn like(&self, pattern: impl Into<String>) -> Filter<M> {
        self.like_op("LIKE", pattern)
    }

    /// `column ILIKE pattern`: case-insensitive [`Column::like`].
    pub fn ilike(&self, pattern: impl Into<String>) -> Filter<M> {
        self.like_op("ILIKE", pattern)
    }
}

impl<M, T, W> Column<M, Option<T>, W> {
    /// `column IS NULL`.
    pub fn is_null(&self) -> Filter<M> {
        Filter::node(Node::Null {
            col: self.index,
            negated: false,
        })
    }

    /// `column IS NOT NULL`.
    pub fn is_not_null(&self) -> Filter<M> {
        Filter::node(Node::Null {
            col: self.index,
            negated: true,
        })
    }
}

impl<M, T: ColumnValue> Column<M, T, Writable> {
    /// `column = value`, for [`Repo::update_columns`](crate::Repo::update_columns) and
    /// [`Repo::update_where`](crate::Repo::update_where).
    pub fn set(&self, value: impl Into<T>) -> Assignment<M> {
        Assignment {
            col: self.index,
            value: Value::new(value.into()),
            _model: PhantomData,
        }
    }
}

/// A condition on the rows of model `M`. Combine with `&`, `|`, `!` or [`Filter::and`],
/// [`Filter::or`], [`Filter::not`].
pub struct Filter<M> {
    node: Node,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for Filter<M> {
    fn clone(&self) -> Self {
        Self::node(self.node.clone())
    }
}

impl<M> std::fmt::Debug for Filter<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Filter").field(&self.node).finish()
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    True,
    Cmp {
        col: usize,
        op: &'static str,
        value: Value,
    },
    Any {
        col: usize,
        negated: bool,
        value: Value,
    },
    Null {
        col: usize,
        negated: bool,
    },
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

impl<M> Filter<M> {
    fn node(node: Node) -> Self {
        Self {
            node,
            _model: PhantomData,
        }
    }

    /// Matches every row (of the tenant).
    pub fn all() -> Self {
        Self::node(Node::True)
    }

    /// Both conditions.
    #[must_use]
    pub fn and(self, other: Self) -> Self {
        Self::node(match (self.node, other.node) {
            (Node::True, n) | (n, Node::True) => n,
            (Node::And(mut a), Node::And(b)) => {
                a.extend(b);
                Node::And(a)
            }
            (Node::And(mut a), n) => {
                a.push(n);
                Node::And(a)
            }
            (a, b) => Node::And(vec![a, b]),
        })
    }

    /// Either condition.
    #[must_use]
    pub fn or(self, other: Self) -> Self {
        Self::node(match (self.node, other.node) {
            (Node::Or(mut a), n) => {
                a.push(n);
                Node::Or(a)
            }
            (a, b) => Node::Or(vec![a, b]),
        })
    }

    /// The opposite condition. Like SQL, a row whose column is NULL matches neither a comparison
    /// nor its negation.
    #[allow(clippy::should_implement_trait)]
    #[must_use]
    pub fn not(self) -> Self {
        Self::node(Node::Not(Box::new(self.node)))
    }

    pub(crate) fn is_all(&self) -> bool {
        matches!(self.node, Node::True)
    }

    /// The condition, for `crate::sql` to render.
    pub(crate) fn condition(&self) -> &Node {
        &self.node
    }
}

impl<M> BitAnd for Filter<M> {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        self.and(rhs)
    }
}

impl<M> BitOr for Filter<M> {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.or(rhs)
    }
}

impl<M> Not for Filter<M> {
    type Output = Self;
    fn not(self) -> Self {
        Filter::not(self)
    }
}

/// Whether values of `T` are text, which cross-tenant reports compare byte-wise
/// (`COLLATE "C"`) so that the database and the merge in Rust agree on the order.
fn is_text<T: Type<Postgres>>() -> bool {
    use sqlx::TypeInfo;
    matches!(T::type_info().name(), "TEXT" | "VARCHAR" | "CHAR" | "NAME")
}

/// An ordering on a column of model `M`.
pub struct Order<M> {
    pub(crate) col: usize,
    pub(crate) desc: bool,
    /// The column holds text (see `is_text`).
    pub(crate) text: bool,
    _model: PhantomData<fn() -> M>,
}

impl<M> Order<M> {
    pub(crate) fn new(col: usize, desc: bool) -> Self {
        Self {
            col,
            desc,
            text: false,
            _model: PhantomData,
        }
    }

    fn text(mut self, text: bool) -> Self {
        self.text = text;
        self
    }
}

impl<M> Clone for Order<M> {
    fn clone(&self) -> Self {
        Self::new(self.col, self.desc).text(self.text)
    }
}

impl<M> std::fmt::Debug for Order<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Order({} {})",
            self.col,
            if self.desc { "DESC" } else { "ASC" }
        )
    }
}

/// `column = value` in an update, made by [`Column::set`].
pub struct Assignment<M> {
    pub(crate) col: usize,
    pub(crate) value: Value,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for Assignment<M> {
    fn clone(&self) -> Self {
        Self {
            col: self.col,
            value: self.value.clone(),
            _model: PhantomData,
        }
    }
}

impl<M> std::fmt::Debug for Assignment<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assignment")
            .field("col", &self.col)
            .finish_non_exhaustive()
    }
}
