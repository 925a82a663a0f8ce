//! Running a statement in a tenant's scope: on the caller's transaction, or on a pooled
//! connection for one statement.

use futures_util::stream::{BoxStream, StreamExt};
use sqlx::postgres::{PgArguments, PgQueryResult, PgRow};
use sqlx::{Postgres, SqlStr};
use tenancy_core::Placement;
use tracing::Instrument;
use uuid::Uuid;

use crate::ctx::Exec;
use crate::{Error, Result};

type Query = sqlx::query::Query<'static, Postgres, PgArguments>;

fn query(sql: SqlStr, args: PgArguments, persistent: bool) -> Query {
    sqlx::query_with(sql, args).persistent(persistent)
}

/// Runs `$q.$op(connection)` on the scope's connection: the caller's transaction, or a pooled
/// connection (see `Runtime::with_conn`). A macro because the two connections are different
/// executor types.
macro_rules! on_conn {
    ($exec:expr, $q:expr, $op:ident) => {{
        let q = $q;
        let exec = $exec;
        async move {
            Ok(match exec.conn {
                Some(conn) => q.$op(conn).await?,
                None => {
                    exec.ctx
                        .runtime()
                        .with_conn_of(exec.ctx.pool(), async |conn| Ok(q.$op(conn).await?))
                        .await?
                }
            })
        }
    }};
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

    /// A statement in the runtime's [`StatementMode`](crate::StatementMode).
    pub(crate) fn query(&self, sql: SqlStr, args: PgArguments) -> Query {
        query(sql, args, self.ctx.runtime().persistent)
    }

    fn span(&self) -> tracing::Span {
        tracing::debug_span!("tenancy.statement", tenant = %self.ctx.id())
    }

    pub(crate) async fn fetch_all(self, sql: SqlStr, args: PgArguments) -> Result<Vec<PgRow>> {
        let span = self.span();
        on_conn!(self, self.query(sql, args), fetch_all)
            .instrument(span)
            .await
    }

    pub(crate) async fn fetch_optional(
        self,
        sql: SqlStr,
        args: PgArguments,
    ) -> Result<Option<PgRow>> {
        let span = self.span();
        on_conn!(self, self.query(sql, args), fetch_optional)
            .instrument(span)
            .await
    }

    pub(crate) async fn fetch_one(self, sql: SqlStr, args: PgArguments) -> Result<PgRow> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or(Error::RowNotFound)
    }

    pub(crate) async fn execute(self, sql: SqlStr, args: PgArguments) -> Result<PgQueryResult> {
        let span = self.span();
        on_conn!(self, self.query(sql, args), execute)
            .instrument(span)
            .await
    }

    pub(crate) fn fetch(self, sql: SqlStr, args: PgArguments) -> BoxStream<'s, Result<PgRow>> {
        let rt = self.ctx.runtime();
        if self.conn.is_none() && !rt.persistent {
            // Unnamed statements on a pooled connection need a transaction around both round
            // trips (see `Runtime::with_conn`), which a borrowed stream cannot carry out of
            // here: read the rows, then stream them.
            return futures_util::stream::once(self.fetch_all(sql, args))
                .flat_map(|rows| match rows {
                    Ok(rows) => futures_util::stream::iter(rows.into_iter().map(Ok)).boxed(),
                    Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
                })
                .boxed();
        }
        let q = self.query(sql, args);
        let rows = match self.conn {
            Some(conn) => q.fetch(conn),
            None => q.fetch(self.ctx.pool()),
        };
        rows.map(|r| r.map_err(Error::from)).boxed()
    }
}
