//! Aggregates over a report's rows, per tenant and overall: [`Agg`].
//!
//! Each tenant's part is computed by the database (`count`, `sum`, `min`, `max`, and for `avg`
//! the sum and the count), and the overall value is merged from the parts in Rust, so that the
//! overall average is the true average over every row, not an average of averages.

use std::cmp::Ordering;
use std::marker::PhantomData;

use sqlx::postgres::PgRow;
use sqlx::{Decode, Postgres, Row, Type};
use tenancy_core::TenantId;

use crate::column::Column;
use crate::{Error, Result};

mod sealed {
    pub trait Sealed {}
}

/// An aggregate of a report, typed by the model `M` it reads and its kind `K` ([`Count`],
/// [`Sum`], [`Avg`], [`Min`], [`Max`]), which fixes the type of its values.
///
/// ```
#[doc = doc_setup!(", pub note: Option<String>")]
/// # fn main() {
/// use tenancy::Agg;
///
/// let spins = Agg::<Spin, _>::count();       // i64
/// let total = Agg::sum(Spin::DURATION);       // i64: integer sums are exact
/// let mean = Agg::avg(Spin::DURATION);        // Option<f64>: None without rows
/// let shortest = Agg::min(Spin::DURATION);    // Option<i32>
/// let last_note = Agg::max(Spin::NOTE);       // Option<String>, compared byte-wise
/// # }
/// ```
pub struct Agg<M, K> {
    pub(crate) col: Option<usize>,
    /// Compare with `COLLATE "C"` (text min and max).
    pub(crate) text: bool,
    _marker: PhantomData<fn() -> (M, K)>,
}

impl<M, K> Clone for Agg<M, K> {
    fn clone(&self) -> Self {
        Self {
            col: self.col,
            text: self.text,
            _marker: PhantomData,
        }
    }
}

impl<M, K: AggKind> std::fmt::Debug for Agg<M, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agg")
            .field("kind", &K::NAME)
            .field("col", &self.col)
            .finish()
    }
}

impl<M, K> Agg<M, K> {
    fn on(col: Option<usize>, text: bool) -> Self {
        Self {
            col,
            text,
            _marker: PhantomData,
        }
    }
}

impl<M> Agg<M, Count> {
    /// The number of matching rows (`count(*)`): per tenant (0 for a tenant without any) and in
    /// all.
    ///
    /// ```
    #[doc = doc_setup!()]
    /// # async fn demo(su: &tenancy::Superuser) -> tenancy::Result<()> {
    /// use tenancy::Agg;
    /// let long = Spin::repo()
    ///     .report()
    ///     .filter(Spin::DURATION.gt(120))
    ///     .aggregate(Agg::count())
    ///     .fetch(su)
    ///     .await?;
    /// println!("{} long spins in all", long.overall);
    /// # Ok(()) }
    /// # fn main() {}
    /// ```
    pub fn count() -> Self {
        Self::on(None, false)
    }
}

impl<M, T: Numeric> Agg<M, Sum<T>> {
    /// The sum of a numeric column over the matching rows (NULLs skipped; 0 without any):
    /// `i64` for integer columns (exact; an overflow is an error), `f64` for floats.
    ///
    /// ```
    #[doc = doc_setup!()]
    /// # async fn demo(su: &tenancy::Superuser) -> tenancy::Result<()> {
    /// let seconds = Spin::repo().report().aggregate(tenancy::Agg::sum(Spin::DURATION)).fetch(su).await?;
    /// let total: i64 = seconds.overall;
    /// # Ok(()) }
    /// # fn main() {}
    /// ```
    pub fn sum<W>(column: Column<M, T, W>) -> Self {
        Self::on(Some(column.index()), false)
    }
}

impl<M, T: Numeric> Agg<M, Avg<T>> {
    /// The average of a numeric column over the matching rows (NULLs skipped), as `f64`;
    /// `None` where there is no value. The overall average is the sum over all tenants divided
    /// by the count over all tenants: the true average, weighted by each tenant's rows.
    ///
    /// ```
    #[doc = doc_setup!()]
    /// # async fn demo(su: &tenancy::Superuser) -> tenancy::Result<()> {
    /// // The seed's "average spin duration per customer".
    /// let avg = Spin::repo().report().aggregate(tenancy::Agg::avg(Spin::DURATION)).fetch(su).await?;
    /// for (tenant, mean) in &avg.per_tenant {
    ///     println!("{tenant}: {mean:?}");
    /// }
    /// println!("everyone: {:?}", avg.overall);
    /// # Ok(()) }
    /// # fn main() {}
    /// ```
    pub fn avg<W>(column: Column<M, T, W>) -> Self {
        Self::on(Some(column.index()), false)
    }
}

impl<M, T: Orderable> Agg<M, Min<T>> {
    /// The least value of a column over the matching rows (NULLs skipped; `None` without any).
    /// Text is compared byte-wise (`COLLATE "C"`), as report orderings are.
    ///
    /// ```
    #[doc = doc_setup!()]
    /// # async fn demo(su: &tenancy::Superuser) -> tenancy::Result<()> {
    /// let min = Spin::repo().report().aggregate(tenancy::Agg::min(Spin::DURATION)).fetch(su).await?;
    /// let shortest: Option<i32> = min.overall;
    /// # Ok(()) }
    /// # fn main() {}
    /// ```
    pub fn min<W>(column: Column<M, T, W>) -> Self {
        Self::on(Some(column.index()), T::TEXT)
    }
}

impl<M, T: Orderable> Agg<M, Max<T>> {
    /// The greatest value of a column over the matching rows (NULLs skipped; `None` without
    /// any). Text is compared byte-wise (`COLLATE "C"`); for floats NaN is the greatest, as in
    /// PostgreSQL.
    ///
    /// ```
    #[doc = doc_setup!()]
    /// # async fn demo(su: &tenancy::Superuser) -> tenancy::Result<()> {
    /// let max = Spin::repo().report().aggregate(tenancy::Agg::max(Spin::DURATION)).fetch(su).await?;
    /// let longest: Option<i32> = max.overall;
    /// # Ok(()) }
    /// # fn main() {}
    /// ```
    pub fn max<W>(column: Column<M, T, W>) -> Self {
        Self::on(Some(column.index()), T::TEXT)
    }
}

/// What an aggregate computes; implemented by [`Count`], [`Sum`], [`Avg`], [`Min`], [`Max`].
/// Sealed.
///
/// ```
/// use tenancy_sqlx::{AggKind, Avg, Count};
/// fn output_of<K: AggKind>() -> &'static str { std::any::type_name::<K::Output>() }
/// assert_eq!(output_of::<Count>(), "i64");
/// assert_eq!(output_of::<Avg<i32>>(), "core::option::Option<f64>");
/// ```
pub trait AggKind: sealed::Sealed + Send + Sync + 'static {
    /// What one tenant contributes, merged across tenants.
    #[doc(hidden)]
    type Partial: Clone + Send + 'static;
    /// The value per tenant and overall.
    type Output;
    /// The SQL function's name, for audit records and debugging.
    #[doc(hidden)]
    const NAME: &'static str;
    /// The select-list expressions of one tenant's part; `col` is the quoted column.
    #[doc(hidden)]
    fn exprs(col: Option<&str>, text: bool) -> String;
    /// Reads a tenant's part from `row`, starting at column `at`.
    #[doc(hidden)]
    fn read(row: &PgRow, at: usize) -> Result<Self::Partial>;
    /// The part of a tenant without matching rows.
    #[doc(hidden)]
    fn empty() -> Self::Partial;
    /// Two parts as one.
    #[doc(hidden)]
    fn merge(a: Self::Partial, b: Self::Partial) -> Result<Self::Partial>;
    /// The value of a part.
    #[doc(hidden)]
    fn finish(part: &Self::Partial) -> Self::Output;
}

/// Column types an aggregate can sum and average: `i16`, `i32`, `i64`, `f32`, `f64`, and their
/// `Option`s. Sealed.
///
/// ```
/// fn summable<T: tenancy_sqlx::Numeric>() {}
/// summable::<i32>();
/// summable::<Option<f64>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a numeric column type",
    label = "`Agg::sum` and `Agg::avg` take a column of `i16`, `i32`, `i64`, `f32`, `f64` or an `Option` of one"
)]
pub trait Numeric: sealed::Sealed + Send + Sync + 'static {
    /// The type of its sums: `i64` for integers, `f64` for floats.
    type Total: Total;
}

/// The type of a sum: `i64` (exact) or `f64`. Sealed.
///
/// ```
/// fn total<T: tenancy_sqlx::Total>() {}
/// total::<i64>();
/// total::<f64>();
/// ```
pub trait Total:
    sealed::Sealed
    + Copy
    + Default
    + PartialEq
    + std::fmt::Debug
    + for<'r> Decode<'r, Postgres>
    + Type<Postgres>
    + Send
    + Sync
    + 'static
{
    /// The SQL type sums are cast to.
    #[doc(hidden)]
    const CAST: &'static str;
    /// `a + b`, or `None` on overflow.
    #[doc(hidden)]
    fn add(a: Self, b: Self) -> Option<Self>;
    /// As a float, for averages.
    #[doc(hidden)]
    fn to_f64(self) -> f64;
}

impl sealed::Sealed for i64 {}
impl Total for i64 {
    const CAST: &'static str = "int8";
    fn add(a: Self, b: Self) -> Option<Self> {
        a.checked_add(b)
    }
    #[allow(clippy::cast_precision_loss)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl sealed::Sealed for f64 {}
impl Total for f64 {
    const CAST: &'static str = "float8";
    fn add(a: Self, b: Self) -> Option<Self> {
        Some(a + b)
    }
    fn to_f64(self) -> f64 {
        self
    }
}

/// Column types whose least and greatest values an aggregate can find: integers, floats, text,
/// dates and times, and their `Option`s. Sealed.
///
/// ```
/// fn orderable<T: tenancy_sqlx::Orderable>() {}
/// orderable::<String>();
/// orderable::<Option<time::OffsetDateTime>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a column type `Agg::min` and `Agg::max` can compare",
    label = "they take integers, floats, text, dates and times, or an `Option` of one"
)]
pub trait Orderable: sealed::Sealed + Send + Sync + 'static {
    /// The value, without the `Option` of a nullable column.
    type Value: for<'r> Decode<'r, Postgres>
        + Type<Postgres>
        + Clone
        + std::fmt::Debug
        + Send
        + Sync
        + 'static;
    /// Text, compared byte-wise.
    #[doc(hidden)]
    const TEXT: bool;
    /// PostgreSQL's order on the values.
    #[doc(hidden)]
    fn cmp(a: &Self::Value, b: &Self::Value) -> Ordering;
}

macro_rules! numeric {
    ($($t:ty => $total:ty),* $(,)?) => {$(
        impl sealed::Sealed for Option<$t> {}
        impl Numeric for $t { type Total = $total; }
        impl Numeric for Option<$t> { type Total = $total; }
    )*};
}
impl sealed::Sealed for i16 {}
impl sealed::Sealed for i32 {}
impl sealed::Sealed for f32 {}
numeric!(i16 => i64, i32 => i64, i64 => i64, f32 => f64, f64 => f64);

macro_rules! orderable {
    (text: $text:expr, cmp: $cmp:expr, $($t:ty),* $(,)?) => {$(
        impl Orderable for $t {
            type Value = $t;
            const TEXT: bool = $text;
            fn cmp(a: &$t, b: &$t) -> Ordering { ($cmp)(a, b) }
        }
        impl Orderable for Option<$t> {
            type Value = $t;
            const TEXT: bool = $text;
            fn cmp(a: &$t, b: &$t) -> Ordering { ($cmp)(a, b) }
        }
    )*};
}
impl sealed::Sealed for String {}
impl sealed::Sealed for Option<String> {}
impl sealed::Sealed for time::OffsetDateTime {}
impl sealed::Sealed for Option<time::OffsetDateTime> {}
impl sealed::Sealed for time::PrimitiveDateTime {}
impl sealed::Sealed for Option<time::PrimitiveDateTime> {}
impl sealed::Sealed for time::Date {}
impl sealed::Sealed for Option<time::Date> {}
impl sealed::Sealed for time::Time {}
impl sealed::Sealed for Option<time::Time> {}
orderable!(text: false, cmp: Ord::cmp, i16, i32, i64, time::OffsetDateTime, time::PrimitiveDateTime, time::Date, time::Time);
orderable!(text: true, cmp: |a: &String, b: &String| a.as_bytes().cmp(b.as_bytes()), String);
orderable!(text: false, cmp: |a: &f32, b: &f32| super::merge::cmp_float(f64::from(*a), f64::from(*b)), f32);
orderable!(text: false, cmp: |a: &f64, b: &f64| super::merge::cmp_float(*a, *b), f64);

fn column<'a>(col: Option<&'a str>, kind: &str) -> &'a str {
    // Constructors of every kind but `Count` take a column.
    col.unwrap_or_else(|| unreachable!("{kind} is built with a column"))
}

fn get<'r, T: Decode<'r, Postgres> + Type<Postgres>>(row: &'r PgRow, at: usize) -> Result<T> {
    Ok(row.try_get(at)?)
}

/// `count(*)`: an `i64`.
///
/// ```
#[doc = doc_setup!()]
/// # fn main() {
/// use tenancy::{Agg, Count};
/// let agg: Agg<Spin, Count> = Agg::<Spin, _>::count();
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Count;
impl sealed::Sealed for Count {}
impl AggKind for Count {
    type Partial = i64;
    type Output = i64;
    const NAME: &'static str = "count";
    fn exprs(_: Option<&str>, _: bool) -> String {
        "count(*)".to_owned()
    }
    fn read(row: &PgRow, at: usize) -> Result<i64> {
        get(row, at)
    }
    fn empty() -> i64 {
        0
    }
    fn merge(a: i64, b: i64) -> Result<i64> {
        Ok(a + b)
    }
    fn finish(part: &i64) -> i64 {
        *part
    }
}

fn overflow() -> Error {
    crate::ReportError::SumOverflow.into()
}

/// `sum(column)`: an `i64` for integer columns, an `f64` for float columns.
///
/// ```
#[doc = doc_setup!()]
/// # fn main() {
/// use tenancy::{Agg, Sum};
/// let agg: Agg<Spin, Sum<i32>> = Agg::sum(Spin::DURATION);
/// # }
/// ```
pub struct Sum<T>(PhantomData<fn() -> T>);
impl<T> sealed::Sealed for Sum<T> {}
impl<T: Numeric> AggKind for Sum<T> {
    type Partial = T::Total;
    type Output = T::Total;
    const NAME: &'static str = "sum";
    fn exprs(col: Option<&str>, _: bool) -> String {
        let col = column(col, "sum");
        format!("COALESCE(sum({col}), 0)::{}", T::Total::CAST)
    }
    fn read(row: &PgRow, at: usize) -> Result<T::Total> {
        get(row, at)
    }
    fn empty() -> T::Total {
        T::Total::default()
    }
    fn merge(a: T::Total, b: T::Total) -> Result<T::Total> {
        T::Total::add(a, b).ok_or_else(overflow)
    }
    fn finish(part: &T::Total) -> T::Total {
        *part
    }
}

/// `avg(column)`: an `Option<f64>`, from the sum and the count of each tenant.
///
/// ```
#[doc = doc_setup!()]
/// # fn main() {
/// use tenancy::{Agg, Avg};
/// let agg: Agg<Spin, Avg<i32>> = Agg::avg(Spin::DURATION);
/// # }
/// ```
pub struct Avg<T>(PhantomData<fn() -> T>);
impl<T> sealed::Sealed for Avg<T> {}
impl<T: Numeric> AggKind for Avg<T> {
    type Partial = (T::Total, i64);
    type Output = Option<f64>;
    const NAME: &'static str = "avg";
    fn exprs(col: Option<&str>, _: bool) -> String {
        let col = column(col, "avg");
        format!("COALESCE(sum({col}), 0)::{}, count({col})", T::Total::CAST)
    }
    fn read(row: &PgRow, at: usize) -> Result<(T::Total, i64)> {
        Ok((get(row, at)?, get(row, at + 1)?))
    }
    fn empty() -> (T::Total, i64) {
        (T::Total::default(), 0)
    }
    fn merge(a: (T::Total, i64), b: (T::Total, i64)) -> Result<(T::Total, i64)> {
        Ok((T::Total::add(a.0, b.0).ok_or_else(overflow)?, a.1 + b.1))
    }
    #[allow(clippy::cast_precision_loss)]
    fn finish(part: &(T::Total, i64)) -> Option<f64> {
        (part.1 > 0).then(|| part.0.to_f64() / part.1 as f64)
    }
}

/// The [`AggKind`] of [`Min`] or [`Max`]: the SQL function `$f`, and in the merge, the part
/// that compares `$keep` to the other wins.
macro_rules! extreme {
    ($kind:ident, $f:literal, $keep:expr) => {
        impl<T: Orderable> AggKind for $kind<T> {
            type Partial = Option<T::Value>;
            type Output = Option<T::Value>;
            const NAME: &'static str = $f;
            fn exprs(col: Option<&str>, text: bool) -> String {
                extreme_sql($f, col, text)
            }
            fn read(row: &PgRow, at: usize) -> Result<Option<T::Value>> {
                get(row, at)
            }
            fn empty() -> Option<T::Value> {
                None
            }
            fn merge(a: Option<T::Value>, b: Option<T::Value>) -> Result<Option<T::Value>> {
                Ok(match (a, b) {
                    (Some(a), Some(b)) => Some(if T::cmp(&b, &a) == $keep { b } else { a }),
                    (a, b) => a.or(b),
                })
            }
            fn finish(part: &Option<T::Value>) -> Option<T::Value> {
                part.clone()
            }
        }
    };
}

fn extreme_sql(f: &str, col: Option<&str>, text: bool) -> String {
    let col = column(col, f);
    if text {
        format!("{f}({col} COLLATE \"C\")")
    } else {
        format!("{f}({col})")
    }
}

/// `min(column)`: an `Option` of the column's value.
///
/// ```
#[doc = doc_setup!()]
/// # fn main() {
/// use tenancy::{Agg, Min};
/// let agg: Agg<Spin, Min<i32>> = Agg::min(Spin::DURATION);
/// # }
/// ```
pub struct Min<T>(PhantomData<fn() -> T>);
impl<T> sealed::Sealed for Min<T> {}
extreme!(Min, "min", Ordering::Less);

/// `max(column)`: an `Option` of the column's value.
///
/// ```
#[doc = doc_setup!()]
/// # fn main() {
/// use tenancy::{Agg, Max};
/// let agg: Agg<Spin, Max<i32>> = Agg::max(Spin::DURATION);
/// # }
/// ```
pub struct Max<T>(PhantomData<fn() -> T>);
impl<T> sealed::Sealed for Max<T> {}
extreme!(Max, "max", Ordering::Greater);

/// The result of an aggregate report: one value per tenant the report covered (in tenant id
/// order, tenants without matching rows included), and the value over all of them.
///
/// ```
#[doc = doc_setup!()]
/// # async fn demo(su: &tenancy::Superuser, acme: tenancy::TenantId) -> tenancy::Result<()> {
/// let avg = Spin::repo().report().aggregate(tenancy::Agg::avg(Spin::DURATION)).fetch(su).await?;
/// let acme_avg: Option<f64> = avg.tenant(acme).copied().flatten();
/// let overall: Option<f64> = avg.overall;
/// # Ok(()) }
/// # fn main() {}
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Aggregated<V> {
    /// Each covered tenant's value, by tenant id.
    pub per_tenant: Vec<(TenantId, V)>,
    /// The value over every covered tenant's rows.
    pub overall: V,
}

impl<V> Aggregated<V> {
    /// The value of one tenant, if the report covered it.
    ///
    /// ```
    #[doc = doc_setup!()]
    /// # async fn demo(su: &tenancy::Superuser, acme: tenancy::TenantId) -> tenancy::Result<()> {
    /// let counts = Spin::repo().report().aggregate(tenancy::Agg::count()).fetch(su).await?;
    /// assert!(counts.tenant(acme).is_some_and(|n| *n >= 0));
    /// # Ok(()) }
    /// # fn main() {}
    /// ```
    pub fn tenant(&self, id: TenantId) -> Option<&V> {
        self.per_tenant
            .binary_search_by_key(&id, |(t, _)| *t)
            .ok()
            .map(|i| &self.per_tenant[i].1)
    }
}
