//! [`Select`]: the typed query builder on a model's rows.

use futures_util::stream::{BoxStream, StreamExt};
use sqlx::SqlStr;

use crate::bind::TenantArgs;
use crate::column::{Filter, Order};
use crate::criteria::Criteria;
use crate::model::Model;
use crate::sql::ModelSql;
use crate::sql::{SqlBuf, push_keyset};
use crate::unit::{TenantUnit, open};
use crate::value::Value;
use crate::{Error, Result, Scope};

/// A query on one tenant's rows of `M`, built from typed column handles:
///
/// ```ignore
/// let page = Spin::repo()
///     .query()
///     .filter(Spin::DURATION.gt(120) & Spin::SPINNER_ID.eq(spinner))
///     .order_by(Spin::CREATED_AT.desc())
///     .limit(50)
///     .fetch_all(&ctx)
///     .await?;
/// ```
///
/// Building needs no scope; every method that runs it takes one.
pub struct Select<M> {
    rows: Criteria<M>,
    after: Option<Vec<Option<Value>>>,
}

impl<M> Clone for Select<M> {
    fn clone(&self) -> Self {
        Self {
            rows: self.rows.clone(),
            after: self.after.clone(),
        }
    }
}

impl<M> std::fmt::Debug for Select<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.rows
            .debug_fields(&mut f.debug_struct("Select"))
            .field("after", &self.after.is_some())
            .finish()
    }
}

impl<M: Model> Select<M> {
    pub(crate) fn new() -> Self {
        Self {
            rows: Criteria::new(),
            after: None,
        }
    }

    /// Keeps the rows matching `filter` too (filters accumulate with AND).
    #[must_use]
    pub fn filter(mut self, filter: Filter<M>) -> Self {
        self.rows.and(filter);
        self
    }

    /// Orders by one more column (`Spin::CREATED_AT.desc()`), after those given before.
    ///
    /// Ties are broken by the key (in the direction of the last column given), so the order is
    /// total: pages taken with [`Select::limit`] and [`Select::after`] neither repeat nor skip
    /// rows that share the ordering columns' values.
    #[must_use]
    pub fn order_by(mut self, order: Order<M>) -> Self {
        self.rows.order.push(order);
        self
    }

    /// At most `n` rows. A limited query is ordered (by the key, if no order is given), so
    /// that which rows come back does not depend on the server's plan.
    ///
    /// `n` is written into the statement's text rather than bound, so that PostgreSQL can plan
    /// the statement once and reuse the plan (it replans a bound limit on every run). Each
    /// distinct `n` is therefore a prepared statement of its own: take page sizes from a small
    /// set, not from the request as given.
    #[must_use]
    pub fn limit(mut self, n: i64) -> Self {
        self.rows.limit = Some(n);
        self
    }

    /// Skips the first `n` rows. For deep pages, prefer [`Select::after`].
    #[must_use]
    pub fn offset(mut self, n: i64) -> Self {
        self.rows.offset = Some(n);
        self
    }

    /// Keyset pagination: only the rows that come after `row` in this query's order.
    ///
    /// Ordering is total (the key breaks ties, see [`Select::order_by`]; with no order given,
    /// pages are in key order), so no row is skipped or repeated between pages. Ordering
    /// columns must not hold NULLs.
    #[must_use]
    pub fn after(mut self, row: &M) -> Self {
        self.after = Some(
            (0..M::META.columns.len())
                .map(|i| crate::model::column_value(row, i))
                .collect(),
        );
        self
    }

    /// The ordering to run with: the user's, plus the key as a tie-breaker whenever there is an
    /// order or a page (limit, offset, cursor). Adding it only to cursor pages would order the
    /// first page differently from the next, and rows tied on the user's columns would be
    /// repeated or skipped. Only an unordered, unpaged query is left to the server's order.
    fn effective_order(&self) -> Vec<Order<M>> {
        let mut order = self.rows.order.clone();
        let key = M::META.key;
        let paged = self.after.is_some() || self.rows.paged();
        if (paged || !order.is_empty()) && !order.iter().any(|o| o.col == key) {
            let desc = order.last().is_some_and(|o| o.desc);
            order.push(Order::new(key, desc));
        }
        order
    }

    fn build(&self, model_sql: &ModelSql, schema: Option<&str>) -> Result<SqlBuf> {
        // `model_sql.select` ends in `WHERE <tenant> = ` and the tenant's mark: the tenant is bound
        // last, by `SqlBuf::finish`.
        let mut buf = SqlBuf::new(model_sql.select.text(schema));
        buf.and_filter(model_sql, &self.rows.filter)?;
        let order = self.effective_order();
        if let Some(values) = &self.after {
            push_keyset(&mut buf, model_sql, &order, values)?;
        }
        buf.order_by(model_sql, &order)?;
        if let Some(limit) = self.rows.limit {
            buf.limit(limit);
        }
        if let Some(offset) = self.rows.offset {
            buf.push(" OFFSET ");
            buf.bind(offset)?;
        }
        Ok(buf)
    }

    /// Opens a unit for `scope` and builds the statement for it.
    async fn prepare<'s>(
        &self,
        scope: impl Scope<'s>,
    ) -> Result<(TenantUnit<'s>, SqlStr, TenantArgs)> {
        let (unit, model_sql) = open::<M>(scope).await?;
        let (sql, args) = self
            .build(model_sql, unit.schema())?
            .finish(unit.tenant())?;
        Ok((unit, sql, args))
    }

    /// Runs the query; all matching rows.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn fetch_all<'s>(&self, scope: impl Scope<'s>) -> Result<Vec<M>> {
        let (mut unit, sql, args) = self.prepare(scope).await?;
        unit.read_models(sql, args).await
    }

    /// Runs the query; the first row, or `None`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn fetch_optional<'s>(&self, scope: impl Scope<'s>) -> Result<Option<M>> {
        let (mut unit, sql, args) = self.prepare(scope).await?;
        let row = unit.read_optional(sql, args).await?;
        row.map(|r| M::decode_row(&r).map_err(Error::from))
            .transpose()
    }

    /// Runs the query; the first row.
    ///
    /// # Errors
    /// [`Error::RowNotFound`] if there is none; [`Error::Database`].
    pub async fn fetch_one<'s>(&self, scope: impl Scope<'s>) -> Result<M> {
        self.fetch_optional(scope).await?.ok_or(Error::RowNotFound)
    }

    /// Runs the query and streams the rows as they arrive, without holding them all in memory.
    /// With a `&TenantCtx` the stream holds a pooled connection until it ends or is dropped.
    pub fn fetch<'s>(&self, scope: impl Scope<'s> + 's) -> BoxStream<'s, Result<M>> {
        // The statement is built inside the stream, after the model check (an await).
        let this = self.clone();
        futures_util::stream::once(async move { this.prepare(scope).await })
            .flat_map(|prepared| match prepared {
                Ok((unit, sql, args)) => unit
                    .fetch(sql, args)
                    .map(|r| r.and_then(|row| M::decode_row(&row).map_err(Error::from)))
                    .boxed(),
                Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
            })
            .boxed()
    }
}
