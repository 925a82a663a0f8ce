//! [`Repo`]: every way to a model's rows, each demanding a tenant [`Scope`].

use std::marker::PhantomData;

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Arguments, Row};
use uuid::Uuid;

use crate::bind::{self, TenantArgs};
use crate::column::{Assignment, Filter};
use crate::model::Model;
use crate::query::Select;
use crate::raw::Raw;
use crate::sql::{Filtered, PlacedSql};
use crate::unit::{TenantUnit, open};
use crate::{Error, Result, Scope};

/// PostgreSQL's limit on bound parameters in one statement.
const MAX_PARAMS: usize = 65_535;

/// The repository of a `#[tenant_scoped]` model: `Spin::repo()`.
///
/// Every method takes a [`Scope`] (a `&TenantCtx` or a `&mut TenantTx`), binds that tenant into
/// every statement, and never touches another tenant's rows: a key that belongs to another
/// tenant behaves exactly like a key that does not exist.
pub struct Repo<M> {
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for Repo<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for Repo<M> {}

impl<M> std::fmt::Debug for Repo<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Repo")
    }
}

impl<M: Model> Default for Repo<M> {
    fn default() -> Self {
        Self::new()
    }
}

fn decode_all<M: Model>(rows: &[PgRow]) -> Result<Vec<M>> {
    rows.iter()
        .map(|r| M::decode_row(r).map_err(Error::from))
        .collect()
}

/// The arguments of a statement that reads a key as `$1`, with the tenant after it.
fn key_args(
    unit: &TenantUnit<'_>,
    key: impl sqlx::Encode<'static, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    tpl: &PlacedSql,
) -> Result<TenantArgs> {
    let mut args = PgArguments::default();
    args.add(key).map_err(Error::Encode)?;
    bind::finish(args, unit.tenant(), tpl.tenant)
}

impl<M: Model> Repo<M> {
    /// The repository of `M`. Holding it grants nothing: every method asks for a scope.
    pub const fn new() -> Self {
        Self {
            _model: PhantomData,
        }
    }

    /// The row with this key, or `None` if the tenant has no such row (also when another
    /// tenant does).
    ///
    /// # Errors
    /// [`Error::Database`] and decoding errors.
    pub async fn get<'s>(&self, scope: impl Scope<'s>, id: Uuid) -> Result<Option<M>> {
        let (mut unit, model_sql) = open::<M>(scope).await?;
        let args = key_args(&unit, id, &model_sql.get)?;
        let sql = model_sql.get.sql(unit.schema());
        let row = unit.read_optional(sql, args).await?;
        row.map(|r| M::decode_row(&r).map_err(Error::from))
            .transpose()
    }

    /// The tenant's rows among these keys, in no particular order; keys the tenant does not
    /// have are skipped.
    ///
    /// # Errors
    /// As [`Repo::get`].
    pub async fn get_many<'s>(&self, scope: impl Scope<'s>, ids: &[Uuid]) -> Result<Vec<M>> {
        let (mut unit, model_sql) = open::<M>(scope).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = PgArguments::default();
        args.add(ids).map_err(Error::Encode)?;
        let args = bind::finish(args, unit.tenant(), model_sql.get_many.tenant)?;
        let sql = model_sql.get_many.sql(unit.schema());
        unit.read_models(sql, args).await
    }

    /// Inserts one row for the tenant and returns it as stored (with the columns the database
    /// filled).
    ///
    /// # Errors
    /// [`Error::Database`], e.g. a unique violation.
    pub async fn insert<'s>(&self, scope: impl Scope<'s>, new: &M::New) -> Result<M> {
        let (mut unit, model_sql) = open::<M>(scope).await?;
        let mut args = PgArguments::default();
        crate::model::bind_insert(new, model_sql.insert_cols.len(), &mut args)?;
        let args = bind::finish(args, unit.tenant(), model_sql.insert_one.tenant)?;
        let sql = model_sql.insert_one.sql(unit.schema());
        let row = unit.fetch_one(sql, args).await?;
        Ok(M::decode_row(&row)?)
    }

    /// Inserts many rows for the tenant in one statement (several, in one transaction, past
    /// PostgreSQL's 65,535 parameters), and returns them as stored, in input order.
    ///
    /// # Errors
    /// [`Error::Database`]; on error no row is inserted.
    pub async fn insert_many<'s>(&self, scope: impl Scope<'s>, rows: &[M::New]) -> Result<Vec<M>> {
        let (mut unit, model_sql) = open::<M>(scope).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let width = model_sql.insert_cols.len();
        let per_statement = ((MAX_PARAMS - 1) / width.max(1)).max(1);
        if rows.len() <= per_statement {
            let (sql, args) = model_sql.insert_many(unit.schema(), unit.tenant(), rows)?;
            let out = unit.fetch_all(sql, args).await?;
            return decode_all(&out);
        }
        // Past one statement's parameters: keep it all-or-nothing with a transaction of our own
        // unless the caller already gave one.
        unit.in_transaction(async |unit| {
            let mut out = Vec::with_capacity(rows.len());
            for chunk in rows.chunks(per_statement) {
                let (sql, args) = model_sql.insert_many(unit.schema(), unit.tenant(), chunk)?;
                out.extend(decode_all::<M>(&unit.fetch_all(sql, args).await?)?);
            }
            Ok(out)
        })
        .await
    }

    /// Writes every writable field of `row` to the tenant's row with the same key; returns the
    /// row as stored, or `None` if the tenant has no row with that key.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn update<'s>(&self, scope: impl Scope<'s>, row: &M) -> Result<Option<M>> {
        let (mut unit, model_sql) = open::<M>(scope).await?;
        let mut args = PgArguments::default();
        args.add(row.key()).map_err(Error::Encode)?;
        for &i in &model_sql.update_cols {
            crate::model::bind_column(row, i, &mut args).map_err(Error::Encode)?;
        }
        let args = bind::finish(args, unit.tenant(), model_sql.update_row.tenant)?;
        let sql = model_sql.update_row.sql(unit.schema());
        let out = unit.fetch_optional(sql, args).await?;
        out.map(|r| M::decode_row(&r).map_err(Error::from))
            .transpose()
    }

    /// Sets some columns of the tenant's row with this key:
    /// `repo.update_columns(&ctx, id, [Spin::DURATION.set(90)])`. Returns the row as stored, or
    /// `None` if the tenant has no such row. With no assignments, this is [`Repo::get`].
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn update_columns<'s>(
        &self,
        scope: impl Scope<'s>,
        id: Uuid,
        assignments: impl IntoIterator<Item = Assignment<M>>,
    ) -> Result<Option<M>> {
        let assignments: Vec<Assignment<M>> = assignments.into_iter().collect();
        if assignments.is_empty() {
            return self.get(scope, id).await;
        }
        let (mut unit, model_sql) = open::<M>(scope).await?;
        let (sql, args) = model_sql
            .update_by_key(unit.schema(), &assignments, id)?
            .finish(unit.tenant())?;
        let out = unit.fetch_optional(sql, args).await?;
        out.map(|r| M::decode_row(&r).map_err(Error::from))
            .transpose()
    }

    /// Sets some columns on every row of the tenant that matches `filter`; returns how many.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn update_where<'s>(
        &self,
        scope: impl Scope<'s>,
        filter: Filter<M>,
        assignments: impl IntoIterator<Item = Assignment<M>>,
    ) -> Result<u64> {
        let assignments: Vec<Assignment<M>> = assignments.into_iter().collect();
        if assignments.is_empty() {
            return Ok(0);
        }
        let (mut unit, model_sql) = open::<M>(scope).await?;
        let (sql, args) = model_sql
            .update_where(unit.schema(), &assignments, &filter)?
            .finish(unit.tenant())?;
        Ok(unit.execute(sql, args).await?.rows_affected())
    }

    /// Deletes the tenant's row with this key; false if it had none.
    ///
    /// # Errors
    /// [`Error::Database`], e.g. a foreign key still pointing at the row.
    pub async fn delete<'s>(&self, scope: impl Scope<'s>, id: Uuid) -> Result<bool> {
        let (mut unit, model_sql) = open::<M>(scope).await?;
        let args = key_args(&unit, id, &model_sql.delete_one)?;
        let sql = model_sql.delete_one.sql(unit.schema());
        let done = unit.execute(sql, args).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes every row of the tenant that matches `filter`; returns how many.
    /// `Filter::all()` empties the tenant's table and touches no other tenant's rows.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn delete_where<'s>(&self, scope: impl Scope<'s>, filter: Filter<M>) -> Result<u64> {
        let (mut unit, model_sql) = open::<M>(scope).await?;
        let (sql, args) = model_sql
            .filtered(Filtered::Delete, unit.schema(), &filter)?
            .finish(unit.tenant())?;
        Ok(unit.execute(sql, args).await?.rows_affected())
    }

    /// How many rows the tenant has.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn count<'s>(&self, scope: impl Scope<'s>) -> Result<i64> {
        let (mut unit, model_sql) = open::<M>(scope).await?;
        let args = bind::finish(
            PgArguments::default(),
            unit.tenant(),
            model_sql.count_all.tenant,
        )?;
        let sql = model_sql.count_all.sql(unit.schema());
        let row = unit.read_one(sql, args).await?;
        Ok(row.try_get(0)?)
    }

    /// How many of the tenant's rows match `filter`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn count_where<'s>(&self, scope: impl Scope<'s>, filter: Filter<M>) -> Result<i64> {
        let (mut unit, model_sql) = open::<M>(scope).await?;
        let (sql, args) = model_sql
            .filtered(Filtered::Count, unit.schema(), &filter)?
            .finish(unit.tenant())?;
        let row = unit.read_one(sql, args).await?;
        Ok(row.try_get(0)?)
    }

    /// Whether the tenant has a row with this key.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn exists<'s>(&self, scope: impl Scope<'s>, id: Uuid) -> Result<bool> {
        let (mut unit, model_sql) = open::<M>(scope).await?;
        let args = key_args(&unit, id, &model_sql.exists_one)?;
        let sql = model_sql.exists_one.sql(unit.schema());
        let row = unit.read_one(sql, args).await?;
        Ok(row.try_get(0)?)
    }

    /// Whether any of the tenant's rows matches `filter`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn exists_where<'s>(&self, scope: impl Scope<'s>, filter: Filter<M>) -> Result<bool> {
        let (mut unit, model_sql) = open::<M>(scope).await?;
        let (sql, args) = model_sql
            .filtered(Filtered::Exists, unit.schema(), &filter)?
            .finish(unit.tenant())?;
        let row = unit.read_one(sql, args).await?;
        Ok(row.try_get(0)?)
    }

    /// A query on the tenant's rows: filters, ordering, limit and offset, keyset pagination,
    /// streaming. Building it needs no scope; running it does.
    pub fn query(&self) -> Select<M> {
        Select::new()
    }

    /// The raw-SQL escape hatch, still scoped: write `{table}` (the model's table name in
    /// braces) wherever the SQL reads the model's rows, and the tenant's rows are what it reads.
    /// See [`Raw`].
    pub fn raw(&self, sql: impl sqlx::SqlSafeStr) -> Raw<M, M> {
        Raw::for_model(sql.into_sql_str())
    }

    /// As [`Repo::raw`], decoding each row as `O` (a tuple, or any `sqlx::FromRow` type).
    pub fn raw_as<O>(&self, sql: impl sqlx::SqlSafeStr) -> Raw<M, O>
    where
        O: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin + 'static,
    {
        Raw::from_row(sql.into_sql_str())
    }
}
