//! Which tenants a report covers, and the statements that read them.
//!
//! Shared-table tenants are read by one statement (`tenant = ANY($n)` over exactly the chosen
//! tenants); own-schema tenants by `UNION ALL` statements of at most `batch` schemas each, every
//! branch tagged with its tenant, with the ordering and the limit pushed into each branch. Each
//! statement runs on its own (its own implicit transaction), so the locks one holds are released
//! before the next: 10,000 schemas never sit in the lock table at once.

use std::fmt::Write;

use sqlx::Row;
use sqlx::postgres::{PgArguments, PgRow};
use tenancy_core::{Placement, TenantId};

use crate::column::{Filter, Order, col_name};
use crate::model::Built;
use crate::runtime::Runtime;
use crate::sql::SqlBuf;
use crate::{Error, Lookup, Result, Superuser};

use super::merge::SortKey;

/// The tenants a report was asked to cover.
#[derive(Debug, Clone, Default)]
pub(crate) struct TenantSet {
    /// An explicit list (sorted, without duplicates), or every active tenant.
    pub(crate) ids: Option<Vec<TenantId>>,
    pub(crate) placement: Option<Placement>,
}

impl TenantSet {
    pub(crate) fn describe(&self) -> String {
        let mut out = match &self.ids {
            Some(ids) => format!("{} listed tenants", ids.len()),
            None => "all active tenants".to_owned(),
        };
        if let Some(p) = self.placement {
            let _ = write!(out, " on {p}");
        }
        out
    }
}

/// The tenants a report reads, by placement.
#[derive(Debug, Default)]
pub(crate) struct Targets {
    /// Every tenant read, sorted.
    pub(crate) all: Vec<TenantId>,
    pub(crate) shared: Vec<TenantId>,
    /// `(tenant, quoted schema)`, sorted by tenant.
    pub(crate) schemas: Vec<(TenantId, String)>,
    /// Whether the column asked about is declared `NOT NULL` in the shared tables (false when
    /// unknown).
    pub(crate) not_null: bool,
}

/// Finds the tenants of `set` and audits the report under `su`, on one connection, before any
/// tenant data is read. Only active tenants are read: a listed tenant that is unknown,
/// suspended or deleted is an error, as it would be for resolution.
///
/// `column`, a (quoted table, column) of the shared tables, asks in the same round trip whether
/// that column is declared `NOT NULL` ([`Targets::not_null`]).
pub(crate) async fn resolve_and_audit(
    su: &Superuser,
    set: &TenantSet,
    action: &str,
    detail: &str,
    column: Option<(&str, &str)>,
) -> Result<Targets> {
    su.check_active()?;
    let rt: &Runtime = su.runtime();
    const HEAD: &str = "SELECT id, slug, status, placement, schema_name, \
         (SELECT a.attnotnull FROM pg_attribute a WHERE a.attrelid = to_regclass($1) \
          AND a.attname = $2 AND NOT a.attisdropped) AS not_null \
         FROM tenancy.tenants ";
    static BY_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static ACTIVE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let (table, name) = column.unzip();
    let query = match &set.ids {
        Some(ids) => {
            let ids: Vec<uuid::Uuid> = ids.iter().map(TenantId::as_uuid).collect();
            let sql = BY_ID.get_or_init(|| format!("{HEAD}WHERE id = ANY($3)"));
            crate::sql::admin_query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(table)
                .bind(name)
                .bind(ids)
        }
        None => {
            let sql = ACTIVE.get_or_init(|| format!("{HEAD}WHERE status = 'active'"));
            crate::sql::admin_query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(table)
                .bind(name)
        }
    };
    rt.with_conn(async |conn| {
        let rows = query.fetch_all(&mut *conn).await?;
        let targets = targets(set, &rows)?;
        su.audit(conn, action, &targets.all, Some(detail)).await?;
        Ok(targets)
    })
    .await
}

fn targets(set: &TenantSet, rows: &[PgRow]) -> Result<Targets> {
    let mut out = Targets::default();
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        let (id, _) = crate::registry::active(row)?;
        if row.try_get::<Option<bool>, _>("not_null")? == Some(true) {
            out.not_null = true;
        }
        let placement: Placement = row.try_get::<String, _>("placement")?.parse()?;
        let schema: Option<String> = row.try_get("schema_name")?;
        found.push((id, placement, schema));
    }
    if let Some(ids) = &set.ids
        && let Some(missing) = ids
            .iter()
            .find(|id| !found.iter().any(|(f, _, _)| f == *id))
    {
        return Err(Error::TenantNotFound(Lookup::Id(*missing)));
    }
    found.sort_by_key(|(id, _, _)| *id);
    for (id, placement, schema) in found {
        if set.placement.is_some_and(|p| p != placement) {
            continue;
        }
        match (placement, schema) {
            (Placement::SharedTable, _) => out.shared.push(id),
            (Placement::OwnSchema, Some(schema)) => {
                out.schemas.push((id, tenancy_core::ident::quote(&schema)))
            }
            (other, _) => return Err(Error::UnsupportedPlacement(other)),
        }
        out.all.push(id);
    }
    Ok(out)
}

/// One statement of a report: the shared tables for some tenants, or a batch of schemas.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Job<'a> {
    Shared(&'a [TenantId]),
    Schemas(&'a [(TenantId, String)]),
}

/// The statements that cover `targets`: one for the shared tables, and the schemas in batches
/// of at most `batch`, smaller when that spreads them over `concurrency` statements (200
/// schemas at 4 at once: 4 batches of 50, not 2 of 100 and 2 idle connections).
pub(crate) fn jobs(targets: &Targets, batch: usize, concurrency: usize) -> Vec<Job<'_>> {
    schema_jobs(&targets.shared, &targets.schemas, batch, concurrency)
}

fn schema_jobs<'a>(
    shared: &'a [TenantId],
    schemas: &'a [(TenantId, String)],
    batch: usize,
    concurrency: usize,
) -> Vec<Job<'a>> {
    let spread = schemas.len().div_ceil(concurrency.max(1));
    let per = batch.min(spread).max(1);
    let mut jobs = Vec::with_capacity(1 + schemas.len().div_ceil(per));
    if !shared.is_empty() {
        jobs.push(Job::Shared(shared));
    }
    jobs.extend(schemas.chunks(per).map(Job::Schemas));
    jobs
}

/// Own-schema tenants a report with an ordering and a limit reads first, alone, to bound what
/// the statements after it sort (see [`Report`](crate::Report)); fewer if
/// [`Report::batch_size`](crate::Report::batch_size) is smaller.
///
/// ```
/// assert_eq!(tenancy_sqlx::PROBE_SCHEMAS, 8);
/// ```
pub const PROBE_SCHEMAS: usize = 8;

/// As [`jobs`], with a first statement over a few schemas to run before the others (when
/// there are more schemas than that): its rows bound what the others need to sort.
pub(crate) fn jobs_with_probe(
    targets: &Targets,
    batch: usize,
    concurrency: usize,
) -> (Option<Job<'_>>, Vec<Job<'_>>) {
    let probe = PROBE_SCHEMAS.min(batch).max(1);
    if targets.schemas.len() <= probe {
        return (None, jobs(targets, batch, concurrency));
    }
    let (first, rest) = targets.schemas.split_at(probe);
    (
        Some(Job::Schemas(first)),
        schema_jobs(&targets.shared, rest, batch, concurrency),
    )
}

/// A statement's text and arguments. The filter is rendered first, so its values are
/// `$1..$f`; every branch of a `UNION ALL` refers to those same parameters.
struct Stmt {
    buf: SqlBuf,
    filter: Option<String>,
}

impl Stmt {
    fn new<M>(st: &Built, filter: &Filter<M>) -> Result<Self> {
        let mut buf = SqlBuf::new(String::new());
        let filter = if filter.is_all() {
            None
        } else {
            filter.render(&st.cols, &mut buf)?;
            Some(std::mem::take(&mut buf.sql))
        };
        Ok(Self { buf, filter })
    }

    /// Binds a value without writing it, returning its placeholder.
    fn param<'q, T>(&mut self, value: T) -> Result<String>
    where
        T: sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        use sqlx::Arguments;
        self.buf.args.add(value).map_err(Error::Encode)?;
        Ok(format!("${}", self.buf.args.len()))
    }

    fn push(&mut self, s: &str) -> &mut Self {
        self.buf.push(s);
        self
    }

    /// Adds a condition to the filter every branch repeats.
    fn and(&mut self, cond: &str) {
        self.filter = Some(match self.filter.take() {
            Some(f) => format!("{f} AND {cond}"),
            None => cond.to_owned(),
        });
    }

    /// Binds a sort key (never NULL) with its own type, which PostgreSQL compares with the
    /// column's (`int4 >= int8`, `varchar >= text` ...).
    fn key(&mut self, key: &SortKey) -> Result<String> {
        match key {
            SortKey::Int(v) => self.param(*v),
            SortKey::Float(v) => self.param(*v),
            SortKey::Bool(v) => self.param(*v),
            SortKey::Text(v) => self.param(v.as_str()),
            SortKey::Bytes(v) => self.param(v.as_slice()),
            SortKey::Uuid(v) => self.param(*v),
            SortKey::Timestamp(v) => self.param(*v),
            SortKey::TimestampTz(v) => self.param(*v),
            SortKey::Date(v) => self.param(*v),
            SortKey::Time(v) => self.param(*v),
            SortKey::Null => Err(Error::Report("a NULL bound".into())),
        }
    }

    fn push_filter(&mut self) {
        if let Some(f) = &self.filter {
            self.buf.sql.push_str(" AND ");
            self.buf.sql.push_str(f);
        }
    }

    fn finish(self) -> (String, PgArguments) {
        (self.buf.sql, self.buf.args)
    }
}

/// `"duration" DESC, "name" COLLATE "C" ASC, ...` and then `tail` ascending.
pub(crate) fn order_sql<M>(st: &Built, order: &[Order<M>], tail: &[&str]) -> Result<String> {
    let mut out = String::new();
    for o in order {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(col_name(&st.cols, o.col)?);
        if o.text {
            out.push_str(" COLLATE \"C\"");
        }
        out.push_str(if o.desc { " DESC" } else { " ASC" });
    }
    for t in tail {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(t);
        out.push_str(" ASC");
    }
    Ok(out)
}

/// What a rows statement needs besides the tenants.
pub(crate) struct RowsShape<'a, M> {
    pub(crate) st: &'static Built,
    pub(crate) filter: &'a Filter<M>,
    pub(crate) order: &'a [Order<M>],
    /// Rows each statement (and each branch) returns at most: limit + offset.
    pub(crate) take: Option<i64>,
}

/// A bound on the first ordering column, learnt from rows already read: `take` rows are known
/// whose first column is `key` or better, so a row strictly worse on that column cannot make
/// the result and the statements read after need not sort it. Ties are kept.
///
/// It is a plain range (`col >= $n`, `col <= $n`) so that an index on the column serves it.
/// Descending, NULLs come first and would need `OR col IS NULL`, which no index range covers
/// (and which cached generic plans turn into a scan of every row): so a descending bound is
/// only used on a column declared `NOT NULL`.
pub(crate) struct Bound<'a> {
    pub(crate) key: &'a SortKey,
}

/// The statement for a job of a rows report. Columns: the model's, then the tenant column.
pub(crate) fn rows_sql<M>(
    shape: &RowsShape<'_, M>,
    job: Job<'_>,
    bound: Option<Bound<'_>>,
) -> Result<(String, PgArguments)> {
    let st = shape.st;
    let mut s = Stmt::new(st, shape.filter)?;
    let take = shape.take.map(|n| s.param(n)).transpose()?;
    if let (Some(bound), Some(first)) = (bound, shape.order.first())
        && !matches!(bound.key, SortKey::Null)
    {
        let mut col = col_name(&st.cols, first.col)?.to_owned();
        if first.text {
            col.push_str(" COLLATE \"C\"");
        }
        let v = s.key(bound.key)?;
        s.and(&format!(
            "{col} {} {v}",
            if first.desc { ">=" } else { "<=" }
        ));
    }
    let total = order_sql(st, shape.order, &[&st.tenant, &st.cols[st.key]])?;
    match job {
        Job::Shared(tenants) => {
            let ids: Vec<uuid::Uuid> = tenants.iter().map(TenantId::as_uuid).collect();
            let ids = s.param(ids)?;
            let (select, tenant, table) = (&st.select_list, &st.tenant, &st.table);
            s.push(&format!(
                "SELECT {select}, {tenant} FROM {table} WHERE {tenant} = ANY({ids})"
            ));
            s.push_filter();
            if let Some(take) = &take {
                s.push(&format!(" ORDER BY {total} LIMIT {take}"));
            }
        }
        Job::Schemas(schemas) => {
            let branch_order = order_sql(st, shape.order, &[&st.cols[st.key]])?;
            let wrap = take.is_some() && schemas.len() > 1;
            if wrap {
                s.push("SELECT * FROM (");
            }
            for (n, (tenant, schema)) in schemas.iter().enumerate() {
                if n > 0 {
                    s.push(" UNION ALL ");
                }
                let id = s.param(tenant.as_uuid())?;
                if take.is_some() {
                    s.push("(");
                }
                s.push(&format!(
                    "SELECT {}, {} FROM {} WHERE {} = {id}",
                    st.select_list,
                    st.tenant,
                    st.table_ref(Some(schema)),
                    st.tenant
                ));
                s.push_filter();
                if let Some(take) = &take {
                    s.push(&format!(" ORDER BY {branch_order} LIMIT {take})"));
                }
            }
            if let (true, Some(take)) = (wrap, &take) {
                s.push(&format!(") AS r ORDER BY {total} LIMIT {take}"));
            }
        }
    }
    Ok(s.finish())
}

/// The statement for a job of an aggregate report. Columns: the tenant, then `exprs`'s.
pub(crate) fn aggregate_sql<M>(
    st: &Built,
    filter: &Filter<M>,
    exprs: &str,
    job: Job<'_>,
) -> Result<(String, PgArguments)> {
    let mut s = Stmt::new(st, filter)?;
    match job {
        Job::Shared(tenants) => {
            let ids: Vec<uuid::Uuid> = tenants.iter().map(TenantId::as_uuid).collect();
            let ids = s.param(ids)?;
            let (tenant, table) = (&st.tenant, &st.table);
            s.push(&format!(
                "SELECT {tenant}, {exprs} FROM {table} WHERE {tenant} = ANY({ids})"
            ));
            s.push_filter();
            s.push(&format!(" GROUP BY {tenant}"));
        }
        Job::Schemas(schemas) => {
            for (n, (tenant, schema)) in schemas.iter().enumerate() {
                if n > 0 {
                    s.push(" UNION ALL ");
                }
                let id = s.param(tenant.as_uuid())?;
                // Without GROUP BY an aggregate returns one row even when nothing matches.
                s.push(&format!(
                    "SELECT {id}, {exprs} FROM {} WHERE {} = {id}",
                    st.table_ref(Some(schema)),
                    st.tenant
                ));
                s.push_filter();
            }
        }
    }
    Ok(s.finish())
}

/// Runs one statement of a report on a pooled connection. The shared-table statement is
/// prepared and cached as repository statements are (its text does not depend on the
/// tenants); statements over schemas only when `cache_schemas` says so: their text names the
/// schemas, and each cached one holds a plan of its whole batch on the connection.
pub(crate) async fn run(
    rt: &Runtime,
    job: Job<'_>,
    cache_schemas: bool,
    (sql, args): (String, PgArguments),
) -> Result<Vec<PgRow>> {
    use tracing::Instrument;
    let (persistent, span) = match job {
        Job::Shared(t) => (
            rt.persistent,
            tracing::debug_span!("tenancy.report", shared_tenants = t.len()),
        ),
        Job::Schemas(s) => (
            rt.persistent && cache_schemas,
            tracing::debug_span!("tenancy.report", schemas = s.len()),
        ),
    };
    let q = sqlx::query_with(crate::sql::text(sql), args).persistent(persistent);
    // Across tenants by design: past row-level security with `tenancy.all_tenants` (see rls.rs).
    rt.with_all_tenants(async |c| Ok(q.fetch_all(c).await?))
        .instrument(span)
        .await
}
