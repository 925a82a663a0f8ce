//! The SQL text of cross-tenant reports: one statement per batch of tenants (see
//! `crate::report`), the shared tables' `tenant = ANY($n)` or a `UNION ALL` of schemas, for rows
//! or for aggregates.

use sqlx::postgres::PgArguments;
use tenancy_core::TenantId;

use crate::column::{Filter, Order};
use crate::report::merge::SortKey;
use crate::report::plan::Batch;
use crate::sql::ModelSql;
use crate::sql::SqlBuf;
use crate::{Error, Result};

/// A statement's text and arguments. The filter is rendered first, so its values are
/// `$1..$f`; every branch of a `UNION ALL` refers to those same parameters.
struct Stmt {
    buf: SqlBuf,
    filter: Option<String>,
}

impl Stmt {
    fn new<M>(model_sql: &ModelSql, filter: &Filter<M>) -> Result<Self> {
        let mut buf = SqlBuf::new(String::new());
        let filter = if filter.is_all() {
            None
        } else {
            buf.filter(model_sql, filter)?;
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

    /// Binds the tenants a statement reads, last of what precedes them, after checking that
    /// what precedes is laid out as the server will read it (see `crate::bind`).
    fn tenants<T>(&mut self, value: T) -> Result<String>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        use sqlx::Arguments;
        crate::bind::bind_tenants(&mut self.buf.args, value)?;
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
            SortKey::Null => Err(crate::ReportError::NullBound.into()),
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
pub(crate) fn order_sql<M>(
    model_sql: &ModelSql,
    order: &[Order<M>],
    tail: &[&str],
) -> Result<String> {
    let mut out = String::new();
    for o in order {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(model_sql.col(o.col)?);
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
    pub(crate) model_sql: &'static ModelSql,
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

/// The statement for a part of a rows report. Columns: the model's, then the tenant column.
pub(crate) fn rows_sql<M>(
    shape: &RowsShape<'_, M>,
    part: Batch<'_>,
    bound: Option<Bound<'_>>,
) -> Result<(String, PgArguments)> {
    let model_sql = shape.model_sql;
    let mut s = Stmt::new(model_sql, shape.filter)?;
    let take = shape.take.map(|n| s.param(n)).transpose()?;
    if let (Some(bound), Some(first)) = (bound, shape.order.first())
        && !matches!(bound.key, SortKey::Null)
    {
        let mut col = model_sql.col(first.col)?.to_owned();
        if first.text {
            col.push_str(" COLLATE \"C\"");
        }
        let v = s.key(bound.key)?;
        s.and(&format!(
            "{col} {} {v}",
            if first.desc { ">=" } else { "<=" }
        ));
    }
    let total = order_sql(
        model_sql,
        shape.order,
        &[&model_sql.tenant, &model_sql.cols[model_sql.key]],
    )?;
    match part {
        Batch::Shared(tenants) | Batch::Home { tenants, .. } => {
            let ids: Vec<uuid::Uuid> = tenants.iter().map(TenantId::as_uuid).collect();
            let ids = s.tenants(ids)?;
            let (select, tenant) = (&model_sql.select_list, &model_sql.tenant);
            let table = shared_table(model_sql, part);
            s.push(&format!(
                "SELECT {select}, {tenant} FROM {table} WHERE {tenant} = ANY({ids})"
            ));
            s.push_filter();
            if let Some(take) = &take {
                s.push(&format!(" ORDER BY {total} LIMIT {take}"));
            }
        }
        Batch::Schemas(schemas) | Batch::Database { schemas, .. } => {
            let branch_order =
                order_sql(model_sql, shape.order, &[&model_sql.cols[model_sql.key]])?;
            let wrap = take.is_some() && schemas.len() > 1;
            if wrap {
                s.push("SELECT * FROM (");
            }
            for (n, (tenant, schema)) in schemas.iter().enumerate() {
                if n > 0 {
                    s.push(" UNION ALL ");
                }
                let id = s.tenants(tenant.as_uuid())?;
                if take.is_some() {
                    s.push("(");
                }
                s.push(&format!(
                    "SELECT {}, {} FROM {} WHERE {} = {id}",
                    model_sql.select_list,
                    model_sql.tenant,
                    model_sql.table_ref(Some(schema)),
                    model_sql.tenant
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

/// The statement for a part of an aggregate report. Columns: the tenant, then `exprs`'s.
pub(crate) fn aggregate_sql<M>(
    model_sql: &ModelSql,
    filter: &Filter<M>,
    exprs: &str,
    part: Batch<'_>,
) -> Result<(String, PgArguments)> {
    let mut s = Stmt::new(model_sql, filter)?;
    match part {
        Batch::Shared(tenants) | Batch::Home { tenants, .. } => {
            let ids: Vec<uuid::Uuid> = tenants.iter().map(TenantId::as_uuid).collect();
            let ids = s.tenants(ids)?;
            let tenant = &model_sql.tenant;
            let table = shared_table(model_sql, part);
            s.push(&format!(
                "SELECT {tenant}, {exprs} FROM {table} WHERE {tenant} = ANY({ids})"
            ));
            s.push_filter();
            s.push(&format!(" GROUP BY {tenant}"));
        }
        Batch::Schemas(schemas) | Batch::Database { schemas, .. } => {
            for (n, (tenant, schema)) in schemas.iter().enumerate() {
                if n > 0 {
                    s.push(" UNION ALL ");
                }
                let id = s.tenants(tenant.as_uuid())?;
                // Without GROUP BY an aggregate returns one row even when nothing matches.
                s.push(&format!(
                    "SELECT {id}, {exprs} FROM {} WHERE {} = {id}",
                    model_sql.table_ref(Some(schema)),
                    model_sql.tenant
                ));
                s.push_filter();
            }
        }
    }
    Ok(s.finish())
}

/// The table a statement over shared-table tenants reads: the registry's shared table (found
/// on the search path, as every statement finds it), or a server home's, in the schema its
/// statements name.
fn shared_table<'m>(model_sql: &'m ModelSql, part: Batch<'_>) -> std::borrow::Cow<'m, str> {
    match part {
        Batch::Home { .. } => model_sql.table_ref(Some(crate::report::plan::HOME_SCHEMA)),
        _ => std::borrow::Cow::Borrowed(&model_sql.table),
    }
}
