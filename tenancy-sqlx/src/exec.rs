//! Running a statement in a tenant's scope: on the caller's transaction, or on a pooled
//! connection for one statement.

use futures_util::stream::{BoxStream, StreamExt};
use sqlx::postgres::{PgArguments, PgQueryResult, PgRow};
use sqlx::{Postgres, SqlStr};
use tenancy_core::Placement;
use uuid::Uuid;

use crate::ctx::Exec;
use crate::{Error, Result};

type Query = sqlx::query::Query<'static, Postgres, PgArguments>;

fn query(sql: SqlStr, args: PgArguments) -> Query {
    sqlx::query_with(sql, args)
}

impl<'s> Exec<'s> {
    /// The tenant every statement is bound to.
    pub(crate) fn tenant(&self) -> Uuid {
        self.ctx.id().as_uuid()
    }

    /// Refuses placements this runtime does not serve yet, before any SQL is built.
    pub(crate) fn check_placement(&self) -> Result<()> {
        match (self.ctx.placement(), self.ctx.schema()) {
            (Placement::SharedTable, None) | (Placement::OwnSchema, Some(_)) => Ok(()),
            (other, _) => Err(Error::UnsupportedPlacement(other)),
        }
    }

    /// The tenant's quoted schema; `None` on shared tables.
    pub(crate) fn schema(&self) -> Option<&'s str> {
        self.ctx.schema()
    }

    pub(crate) async fn fetch_all(self, sql: SqlStr, args: PgArguments) -> Result<Vec<PgRow>> {
        let q = query(sql, args);
        Ok(match self.conn {
            Some(conn) => q.fetch_all(conn).await?,
            None => q.fetch_all(&self.ctx.runtime().pool).await?,
        })
    }

    pub(crate) async fn fetch_optional(
        self,
        sql: SqlStr,
        args: PgArguments,
    ) -> Result<Option<PgRow>> {
        let q = query(sql, args);
        Ok(match self.conn {
            Some(conn) => q.fetch_optional(conn).await?,
            None => q.fetch_optional(&self.ctx.runtime().pool).await?,
        })
    }

    pub(crate) async fn fetch_one(self, sql: SqlStr, args: PgArguments) -> Result<PgRow> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or(Error::RowNotFound)
    }

    pub(crate) async fn execute(self, sql: SqlStr, args: PgArguments) -> Result<PgQueryResult> {
        let q = query(sql, args);
        Ok(match self.conn {
            Some(conn) => q.execute(conn).await?,
            None => q.execute(&self.ctx.runtime().pool).await?,
        })
    }

    pub(crate) fn fetch(self, sql: SqlStr, args: PgArguments) -> BoxStream<'s, Result<PgRow>> {
        let q = query(sql, args);
        let rows = match self.conn {
            Some(conn) => q.fetch(conn),
            None => q.fetch(&self.ctx.runtime().pool),
        };
        rows.map(|r| r.map_err(Error::from)).boxed()
    }
}
