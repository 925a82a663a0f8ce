//! Cross-tenant reports: [`Report`], the one way to read many tenants' rows, behind a
//! [`Superuser`] and audited.
//!
//! A report has the typed filters and orderings of a per-tenant [`Select`](crate::Select), plus
//! the set of tenants it covers. Rows come back tagged with their tenant; equal keys in
//! different tenants stay distinct rows. See [`Report`] for how it runs.

mod agg;
pub(crate) mod merge;
pub(crate) mod plan;
mod tenants;

use std::borrow::Borrow;
use std::marker::PhantomData;

use sqlx::Row;
use tenancy_core::{Placement, TenantId};

pub use agg::{Agg, AggKind, Aggregated, Avg, Count, Max, Min, Numeric, Orderable, Sum, Total};
pub use plan::PROBE_SCHEMAS;

use crate::column::{Filter, Order};
use crate::criteria::Criteria;
use crate::model::Model;
use crate::sql::ModelSql;
use crate::sql::SqlBuf;
use crate::sql::report::{self as sql, Bound, RowsShape};
use crate::{Error, Repo, ReportError, Result, Superuser};
use merge::{RankedRow, cmp_ranked, sort_key};
use tenants::TenantSet;

/// Schemas read by one statement of a report at most, unless [`Report::batch_size`] says
/// otherwise.
///
/// ```
/// assert_eq!(tenancy_sqlx::DEFAULT_REPORT_BATCH, 100);
/// ```
pub const DEFAULT_REPORT_BATCH: usize = 100;

/// Statements of a report in flight at once unless [`Report::concurrency`] says otherwise.
///
/// Each statement keeps one server core busy; two leave the server room for its other work.
/// On a 2-core server, 2 was faster than 4 (the top 100 over 200 schemas: 11 ms against 13
/// newest first, 17 against 24 longest first).
///
/// ```
/// assert_eq!(tenancy_sqlx::DEFAULT_REPORT_CONCURRENCY, 2);
/// ```
pub const DEFAULT_REPORT_CONCURRENCY: usize = 2;

/// Reports over at most this many own-schema tenants keep their statements prepared on the
/// connections that ran them, unless [`Report::cache_statements`] says otherwise.
///
/// ```
/// assert_eq!(tenancy_sqlx::AUTO_CACHE_MAX_SCHEMAS, 256);
/// ```
pub const AUTO_CACHE_MAX_SCHEMAS: usize = 256;

impl<M: Model> Repo<M> {
    /// A report across tenants: the rows of `M` of every active tenant (or of some), with the
    /// typed filters and orderings of [`Repo::query`], or aggregates per tenant and overall.
    /// Building it needs nothing; running it needs a [`Superuser`], and is audited.
    ///
    /// ```
    #[doc = doc_setup!()]
    /// # async fn demo(su: &tenancy::Superuser) -> tenancy::Result<()> {
    /// let top: Vec<(tenancy::TenantId, Spin)> = Spin::repo()
    ///     .report()
    ///     .filter(Spin::DURATION.gt(120))
    ///     .order_by(Spin::DURATION.desc())
    ///     .limit(100)
    ///     .fetch_all(su)
    ///     .await?;
    /// # Ok(()) }
    /// # fn main() {}
    /// ```
    pub fn report(&self) -> Report<M> {
        Report::new()
    }
}

/// A query across tenants, made by [`Repo::report`] and run with a [`Superuser`].
///
/// ```
#[doc = doc_setup!()]
/// # async fn demo(tenancy: tenancy::Tenancy) -> tenancy::Result<()> {
/// use tenancy::{Agg, Placement};
///
/// let su = tenancy.superuser("analyst@example.com", "weekly usage report").await?;
/// // The 100 longest spins of every active tenant on its own schema.
/// let top = Spin::repo()
///     .report()
///     .placement(Placement::OwnSchema)
///     .filter(Spin::DURATION.gt(120))
///     .order_by(Spin::DURATION.desc())
///     .limit(100)
///     .fetch_all(&su)
///     .await?;
/// for (tenant, spin) in &top {
///     println!("{tenant} {} {}", spin.id, spin.duration);
/// }
/// // The average spin duration per customer, and over every spin.
/// let avg = Spin::repo().report().aggregate(Agg::avg(Spin::DURATION)).fetch(&su).await?;
/// # Ok(()) }
/// # fn main() {}
/// ```
///
/// # What it covers
///
/// Every active tenant by default; [`Report::tenants`] narrows it to a list and
/// [`Report::placement`] to a placement. Suspended and deleted tenants are never read: listing
/// one is an error ([`Error::TenantSuspended`], [`Error::TenantDeleted`]), as is listing an
/// unknown id ([`Error::TenantNotFound`]), so a report never silently covers less than asked.
///
/// # Order
///
/// Rows are ordered by the [`Report::order_by`] columns, then by tenant id, then by key (both
/// ascending), so the order is total and pages never overlap. NULLs sort as in PostgreSQL
/// (after values ascending, before them descending), and text is compared byte-wise
/// (`COLLATE "C"`), the same in every tenant whatever the database's collation. Reports order by
/// integer, float, boolean, text, bytea, uuid, date and time columns; another type is
/// [`Error::Report`].
///
/// # How it runs
///
/// The tenants on shared tables are read by one statement, `tenant = ANY($n)` over exactly the
/// covered tenants. Tenants in their own schemas are read by `UNION ALL` statements of at most
/// [`Report::batch_size`] schemas, each branch tagged with its tenant, with the ordering and
/// `limit + offset` pushed into every branch; [`Report::concurrency`] statements run at once,
/// each in its own transaction, so a report over 10,000 schemas holds the locks of a few
/// batches at a time, never of all. The rows are then merged in Rust and the offset and limit
/// applied. Statements do not share a snapshot: a report is not a consistent cut across
/// tenants written to while it runs.
///
/// With an ordering and a limit, a first statement reads [`PROBE_SCHEMAS`] schemas alone: the
/// `limit + offset`-th best of its rows bounds the first ordering column
/// (`col >= $n` descending, `col <= $n` ascending) in every statement after it, so they sort
/// only rows that can make the result, and an index `(tenant_id, col)` serves the bound. (A
/// descending bound is used only on a column declared `NOT NULL`: NULLs sort first.) Ordering
/// by a column no such index covers reads every matching row of every covered tenant.
/// Statements over schemas stay prepared on their connections for small reports
/// ([`Report::cache_statements`]).
///
/// Statements over own schemas run on the handle's report lanes
/// ([`TenancyBuilder::report_connections`](crate::TenancyBuilder::report_connections)): each
/// schema on the same connection from one report to the next, whose catalog caches already
/// hold its tables, and each batch holds the schemas of one lane.
///
/// # Audit
///
/// Each run writes one record to the audit log before reading any tenant data: the
/// superuser's actor and reason, action `report.rows` (or `report.aggregate`), the ids of every
/// tenant covered, and the query (the model's table, the filter with placeholders, never its
/// values, the ordering, limit and offset) as the detail.
pub struct Report<M> {
    rows: Criteria<M>,
    set: TenantSet,
    batch: usize,
    concurrency: usize,
    cache: Option<bool>,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for Report<M> {
    fn clone(&self) -> Self {
        Self {
            rows: self.rows.clone(),
            set: self.set.clone(),
            batch: self.batch,
            concurrency: self.concurrency,
            cache: self.cache,
            _model: PhantomData,
        }
    }
}

impl<M> std::fmt::Debug for Report<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.rows
            .debug_fields(&mut f.debug_struct("Report"))
            .field("tenants", &self.set)
            .field("batch_size", &self.batch)
            .field("concurrency", &self.concurrency)
            .field("cache_statements", &self.cache)
            .finish()
    }
}

impl<M: Model> Report<M> {
    pub(crate) fn new() -> Self {
        Self {
            rows: Criteria::new(),
            set: TenantSet::default(),
            batch: DEFAULT_REPORT_BATCH,
            concurrency: DEFAULT_REPORT_CONCURRENCY,
            cache: None,
            _model: PhantomData,
        }
    }

    /// Keeps the rows matching `filter` too (filters accumulate with AND), in every tenant.
    ///
    /// ```
    #[doc = doc_setup!()]
    /// let long = Spin::repo().report().filter(Spin::DURATION.gt(120) & Spin::DURATION.lt(600));
    /// ```
    #[must_use]
    pub fn filter(mut self, filter: Filter<M>) -> Self {
        self.rows.and(filter);
        self
    }

    /// Orders by one more column, after those given before. Ties are broken by tenant id, then
    /// by key.
    ///
    /// ```
    #[doc = doc_setup!()]
    /// let longest_first = Spin::repo().report().order_by(Spin::DURATION.desc());
    /// ```
    #[must_use]
    pub fn order_by(mut self, order: Order<M>) -> Self {
        self.rows.order.push(order);
        self
    }

    /// At most `n` rows in all (not per tenant).
    ///
    /// ```
    #[doc = doc_setup!()]
    /// let top = Spin::repo().report().order_by(Spin::DURATION.desc()).limit(100);
    /// ```
    #[must_use]
    pub fn limit(mut self, n: i64) -> Self {
        self.rows.limit = Some(n);
        self
    }

    /// Skips the first `n` rows of the merged result. Every statement reads `limit + offset`
    /// rows, so deep pages cost more.
    ///
    /// ```
    #[doc = doc_setup!()]
    /// let page_3 = Spin::repo().report().order_by(Spin::DURATION.desc()).limit(50).offset(100);
    /// ```
    #[must_use]
    pub fn offset(mut self, n: i64) -> Self {
        self.rows.offset = Some(n);
        self
    }

    /// Covers only these tenants (each must be active) instead of every active tenant.
    ///
    /// ```
    #[doc = doc_setup!()]
    /// # fn demo(acme: tenancy::TenantId, globex: tenancy::TenantId) {
    /// let two = Spin::repo().report().tenants(&[acme, globex]);
    /// # }
    /// ```
    #[must_use]
    pub fn tenants<I>(mut self, ids: I) -> Self
    where
        I: IntoIterator,
        I::Item: Borrow<TenantId>,
    {
        let mut ids: Vec<TenantId> = ids.into_iter().map(|id| *id.borrow()).collect();
        ids.sort_unstable();
        ids.dedup();
        self.set.ids = Some(ids);
        self
    }

    /// Covers only the tenants with this placement.
    ///
    /// ```
    #[doc = doc_setup!()]
    /// let in_schemas = Spin::repo().report().placement(tenancy::Placement::OwnSchema);
    /// ```
    #[must_use]
    pub fn placement(mut self, placement: Placement) -> Self {
        self.set.placement = Some(placement);
        self
    }

    /// How many own-schema tenants one statement reads at most (default
    /// [`DEFAULT_REPORT_BATCH`]); without report lanes, fewer when that spreads the schemas
    /// over [`Report::concurrency`] statements. Each statement locks its tenants' tables and indexes until it
    /// ends; keep `batch_size * concurrency * (1 + indexes per table)` well under the server's
    /// lock table (`max_locks_per_transaction * max_connections`).
    ///
    /// ```
    #[doc = doc_setup!()]
    /// let gentle = Spin::repo().report().batch_size(50).concurrency(2);
    /// ```
    #[must_use]
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// How many statements run at once (default [`DEFAULT_REPORT_CONCURRENCY`]), each on its
    /// own pooled connection; also bounded by the pool's size, and for own schemas by the
    /// handle's report lanes (one statement per lane at a time:
    /// [`TenancyBuilder::report_connections`](crate::TenancyBuilder::report_connections)).
    /// More helps a large report only on a server with idle cores to run them.
    ///
    /// ```
    #[doc = doc_setup!()]
    /// let one_at_a_time = Spin::repo().report().concurrency(1);
    /// ```
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Whether the statements over own-schema tenants stay prepared on the connections that
    /// ran them. Their text names the schemas of a batch, so a cached statement is reused only
    /// by the same report over the same tenants, and it keeps a plan of its whole batch in the
    /// server: about 26 KB per schema on each connection that ran it. It saves parsing and
    /// planning, a third to a half of a repeated report's time. Default: cached when the report
    /// covers at most [`AUTO_CACHE_MAX_SCHEMAS`] own-schema tenants, and never in
    /// [`StatementMode::Unnamed`](crate::StatementMode::Unnamed).
    ///
    /// ```
    #[doc = doc_setup!()]
    /// let one_off = Spin::repo().report().cache_statements(false);
    /// ```
    #[must_use]
    pub fn cache_statements(mut self, cache: bool) -> Self {
        self.cache = Some(cache);
        self
    }

    fn cache_for(&self, schemas: usize) -> bool {
        self.cache.unwrap_or(schemas <= AUTO_CACHE_MAX_SCHEMAS)
    }

    /// An aggregate over the matching rows, per tenant and overall. The ordering, limit and
    /// offset do not apply to it; the filter and the tenants do.
    ///
    /// ```
    #[doc = doc_setup!()]
    /// # async fn demo(su: &tenancy::Superuser) -> tenancy::Result<()> {
    /// let avg = Spin::repo()
    ///     .report()
    ///     .filter(Spin::DURATION.gt(0))
    ///     .aggregate(tenancy::Agg::avg(Spin::DURATION))
    ///     .fetch(su)
    ///     .await?;
    /// # Ok(()) }
    /// # fn main() {}
    /// ```
    pub fn aggregate<K: AggKind>(&self, agg: Agg<M, K>) -> ReportAggregate<M, K> {
        ReportAggregate {
            report: self.clone(),
            agg,
        }
    }

    fn check(&self) -> Result<()> {
        if let Some(n) = self.rows.limit.filter(|&n| n < 0) {
            return Err(Error::Report(ReportError::NegativeLimit(n)));
        }
        if let Some(n) = self.rows.offset.filter(|&n| n < 0) {
            return Err(Error::Report(ReportError::NegativeOffset(n)));
        }
        Ok(())
    }

    /// The audit record's detail: the query without its values.
    fn describe(&self, model_sql: &ModelSql, what: &str) -> Result<String> {
        let mut out = format!("{what} of {} from {}", M::META.name, model_sql.table);
        if !self.rows.filter.is_all() {
            let mut buf = SqlBuf::new(" WHERE ");
            buf.filter(model_sql, &self.rows.filter)?;
            out.push_str(&buf.sql);
        }
        Ok(out)
    }

    fn describe_rows(&self, model_sql: &ModelSql) -> Result<String> {
        let mut out = self.describe(model_sql, "rows")?;
        if !self.rows.order.is_empty() {
            out.push_str(" ORDER BY ");
            out.push_str(&sql::order_sql(model_sql, &self.rows.order, &[])?);
        }
        if let Some(n) = self.rows.limit {
            out.push_str(&format!(" LIMIT {n}"));
        }
        if let Some(n) = self.rows.offset {
            out.push_str(&format!(" OFFSET {n}"));
        }
        out.push_str(&format!("; {}", self.set.describe()));
        Ok(out)
    }

    /// Runs the report: the matching rows of every covered tenant, each with its tenant, in the
    /// report's order, after `offset` and at most `limit` of them. Audited before any tenant
    /// data is read.
    ///
    /// ```
    #[doc = doc_setup!()]
    /// # async fn demo(su: &tenancy::Superuser) -> tenancy::Result<()> {
    /// let rows = Spin::repo().report().order_by(Spin::DURATION.desc()).limit(10).fetch_all(su).await?;
    /// for (tenant, spin) in rows {
    ///     println!("{tenant}: {}", spin.duration);
    /// }
    /// # Ok(()) }
    /// # fn main() {}
    /// ```
    ///
    /// # Errors
    /// [`Error::Forbidden`] for an expired [`Superuser`]; [`Error::TenantNotFound`],
    /// [`Error::TenantSuspended`], [`Error::TenantDeleted`] for a listed tenant that cannot be
    /// read; [`Error::ServerBusy`] if an own-database tenant's database has no connection free;
    /// [`Error::Report`] for a negative limit or offset, or an ordering column of a type
    /// reports cannot merge; [`Error::InvalidModel`]; [`Error::Database`]. On error no rows are
    /// returned (the audit record stays).
    pub async fn fetch_all(&self, su: &Superuser) -> Result<Vec<(TenantId, M)>> {
        self.check()?;
        let model_sql = crate::sql::statements::<M>()?;
        let detail = self.describe_rows(model_sql)?;
        // A descending bound needs the first ordering column to be NOT NULL (see `Bound`).
        let first = self
            .rows
            .order
            .first()
            .filter(|o| o.desc && self.rows.limit.is_some())
            .and_then(|o| M::META.columns.get(o.col))
            .map(|c| (model_sql.table.as_str(), c.name));
        let targets =
            tenants::resolve_and_audit(su, &self.set, "report.rows", &detail, first).await?;
        if targets.all.is_empty() || self.rows.limit == Some(0) {
            return Ok(Vec::new());
        }
        crate::verify::check_report::<M>(
            su.runtime(),
            !targets.shared.is_empty(),
            &targets.schemas,
            &targets.database_tables(),
        )
        .await?;
        let offset = usize::try_from(self.rows.offset.unwrap_or(0)).unwrap_or(usize::MAX);
        let shape = RowsShape {
            model_sql,
            filter: &self.rows.filter,
            order: &self.rows.order,
            take: self
                .rows
                .limit
                .map(|n| n.saturating_add(self.rows.offset.unwrap_or(0))),
        };
        let rt = su.runtime();
        let cache = self.cache_for(targets.schemas.len());
        let columns = model_sql.cols.len();
        let desc: Vec<bool> = self.rows.order.iter().map(|o| o.desc).collect();
        let run = |part, bound: Option<Bound<'_>>| {
            let sql = sql::rows_sql(&shape, part, bound);
            async move {
                let rows = plan::run(rt, part, cache, sql?).await?;
                rows.iter()
                    .map(|row| self.ranked(model_sql, row, columns))
                    .collect::<Result<Vec<_>>>()
            }
        };
        // With an ordering and a limit, a few schemas first: the `limit + offset`-th best of
        // their rows bounds what every other statement has to sort.
        let (probe, batches) = match shape.take {
            Some(_) if !self.rows.order.is_empty() => {
                plan::batches_with_probe(rt, &targets, self.batch, self.concurrency)
            }
            _ => (
                None,
                plan::batches(rt, &targets, self.batch, self.concurrency),
            ),
        };
        let mut hits: Vec<RankedRow<M>> = match probe {
            Some(part) => run(part, None).await?,
            None => Vec::new(),
        };
        let bound = shape
            .take
            .and_then(|k| usize::try_from(k).ok())
            .filter(|_| !desc.first().copied().unwrap_or(false) || targets.not_null)
            .and_then(|k| kth_first_key(&mut hits, k, &desc));
        let more = plan::run_all(rt, batches, self.concurrency, |part| {
            run(part, bound.as_ref().map(|key| Bound { key }))
        })
        .await?;
        hits.extend(more);
        hits.sort_unstable_by(|a, b| cmp_ranked(a, b, &desc));
        let limit = self
            .rows
            .limit
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        Ok(hits
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|h| (h.tenant, h.row))
            .collect())
    }

    fn ranked(
        &self,
        model_sql: &ModelSql,
        row: &sqlx::postgres::PgRow,
        columns: usize,
    ) -> Result<RankedRow<M>> {
        let keys = self
            .rows
            .order
            .iter()
            .map(|o| sort_key(row, o.col, &model_sql.cols[o.col]))
            .collect::<Result<Vec<_>>>()?;
        let tenant = TenantId::from_uuid(row.try_get(columns)?);
        let row = M::decode_row(row)?;
        Ok(RankedRow {
            keys,
            tenant,
            id: row.key(),
            row,
        })
    }
}

/// The first ordering key of the `k`-th best of `hits` (reordering them), if there are that
/// many and it is not NULL.
fn kth_first_key<M>(hits: &mut [RankedRow<M>], k: usize, desc: &[bool]) -> Option<merge::SortKey> {
    if k == 0 || hits.len() < k {
        return None;
    }
    let (_, kth, _) = hits.select_nth_unstable_by(k - 1, |a, b| cmp_ranked(a, b, desc));
    kth.keys
        .first()
        .filter(|key| !matches!(key, merge::SortKey::Null))
        .cloned()
}

/// An aggregate report, made by [`Report::aggregate`] and run with [`ReportAggregate::fetch`].
///
/// ```
#[doc = doc_setup!()]
/// # async fn demo(su: &tenancy::Superuser) -> tenancy::Result<()> {
/// let per_customer = Spin::repo().report().aggregate(tenancy::Agg::count()).fetch(su).await?;
/// # Ok(()) }
/// # fn main() {}
/// ```
pub struct ReportAggregate<M, K> {
    report: Report<M>,
    agg: Agg<M, K>,
}

impl<M, K: AggKind> std::fmt::Debug for ReportAggregate<M, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportAggregate")
            .field("report", &self.report)
            .field("agg", &self.agg)
            .finish()
    }
}

impl<M: Model, K: AggKind> ReportAggregate<M, K> {
    /// Runs the aggregate: one value per covered tenant (tenants without matching rows
    /// included, as 0 or `None`), in tenant id order, and the value over all of them. Audited
    /// (`report.aggregate`) before any tenant data is read.
    ///
    /// ```
    #[doc = doc_setup!()]
    /// # async fn demo(su: &tenancy::Superuser) -> tenancy::Result<()> {
    /// let avg = Spin::repo().report().aggregate(tenancy::Agg::avg(Spin::DURATION)).fetch(su).await?;
    /// println!("{:?} over {} tenants", avg.overall, avg.per_tenant.len());
    /// # Ok(()) }
    /// # fn main() {}
    /// ```
    ///
    /// # Errors
    /// As [`Report::fetch_all`]; [`Error::Report`] if an integer sum overflows `i64`.
    pub async fn fetch(&self, su: &Superuser) -> Result<Aggregated<K::Output>> {
        let report = &self.report;
        let model_sql = crate::sql::statements::<M>()?;
        let col = match self.agg.col {
            Some(c) => Some(model_sql.col(c)?),
            None => None,
        };
        let exprs = K::exprs(col, self.agg.text);
        let what = format!("{}({})", K::NAME, col.unwrap_or("*"));
        let detail = format!(
            "{}; {}",
            report.describe(model_sql, &what)?,
            report.set.describe()
        );
        let targets =
            tenants::resolve_and_audit(su, &report.set, "report.aggregate", &detail, None).await?;
        let rt = su.runtime();
        crate::verify::check_report::<M>(
            rt,
            !targets.shared.is_empty(),
            &targets.schemas,
            &targets.database_tables(),
        )
        .await?;
        let cache = report.cache_for(targets.schemas.len());
        let batches = plan::batches(rt, &targets, report.batch, report.concurrency);
        let exprs = &exprs;
        let parts: Vec<(TenantId, K::Partial)> =
            plan::run_all(rt, batches, report.concurrency, |part| async move {
                let sql = sql::aggregate_sql(model_sql, &report.rows.filter, exprs, part)?;
                let rows = plan::run(rt, part, cache, sql).await?;
                rows.iter()
                    .map(|row| Ok((TenantId::from_uuid(row.try_get(0)?), K::read(row, 1)?)))
                    .collect::<Result<Vec<_>>>()
            })
            .await?;
        // Every covered tenant has a part: shared-table tenants without rows have no group.
        let mut by_tenant: std::collections::HashMap<TenantId, K::Partial> =
            parts.into_iter().collect();
        let mut per_tenant = Vec::with_capacity(targets.all.len());
        let mut overall = K::empty();
        for id in &targets.all {
            let part = by_tenant.remove(id).unwrap_or_else(K::empty);
            overall = K::merge(overall, part.clone())?;
            per_tenant.push((*id, K::finish(&part)));
        }
        Ok(Aggregated {
            per_tenant,
            overall: K::finish(&overall),
        })
    }
}
