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
/// connection (see `Runtime::with_conn`; with row-level security, `Runtime::with_tenant_conn`
/// wraps it in a transaction that has the tenant set). A macro because the two connections are
/// different executor types.
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
                        .with_tenant_conn(exec.ctx.pool(), exec.ctx.id(), async |conn| {
                            Ok(q.$op(conn).await?)
                        })
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

    /// Refuses, before any SQL is built, a context that can no longer act (see
    /// `TenantCtx::check_live`) and placements this runtime does not serve yet.
    pub(crate) fn check_placement(&self) -> Result<()> {
        self.ctx.check_live()?;
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
        if self.conn.is_none() && rt.rls && rt.persistent {
            // Row-level security needs the rows read inside a transaction that has the tenant
            // set, and that transaction must live as long as the stream: a stream that owns it.
            let q = self.query(sql, args);
            let ctx = self.ctx;
            return owned_stream(move |tx: Sender| async move {
                let mut conn = ctx.runtime().begin_for(ctx.pool(), ctx.id()).await?;
                {
                    let mut rows = q.fetch(&mut *conn);
                    while let Some(row) = rows.next().await {
                        if tx.send(row.map_err(Error::from)).await.is_err() {
                            // The stream was dropped: the transaction rolls back with `conn`.
                            return Ok(());
                        }
                    }
                }
                conn.commit().await?;
                Ok(())
            });
        }
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

type Sender = tokio::sync::mpsc::Sender<Result<PgRow>>;

/// A stream of the rows a future produces into a channel: the future owns what the rows borrow
/// (a transaction), which a plain stream adapter cannot. The future is polled by the stream
/// itself, in the consumer's task (nothing is spawned): dropping the stream drops the future
/// and with it the transaction, which rolls back.
fn owned_stream<'s, F>(produce: impl FnOnce(Sender) -> F) -> BoxStream<'s, Result<PgRow>>
where
    F: Future<Output = Result<()>> + Send + 's,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let rows = produce(tx.clone());
    let driver = async move {
        if let Err(e) = rows.await {
            // After the rows it sent; ignored if the stream is gone.
            let _ = tx.send(Err(e)).await;
        }
    };
    OwnedStream {
        driver: Some(Box::pin(driver)),
        rx,
    }
    .boxed()
}

struct OwnedStream<'s> {
    driver: Option<futures_util::future::BoxFuture<'s, ()>>,
    rx: tokio::sync::mpsc::Receiver<Result<PgRow>>,
}

impl futures_util::Stream for OwnedStream<'_> {
    type Item = Result<PgRow>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        loop {
            if let Poll::Ready(Some(row)) = self.rx.poll_recv(cx) {
                return Poll::Ready(Some(row));
            }
            let Some(driver) = self.driver.as_mut() else {
                // The producer is done and everything it sent was read.
                return Poll::Ready(None);
            };
            match driver.as_mut().poll(cx) {
                // Done: read what it sent last, then end.
                Poll::Ready(()) => self.driver = None,
                // Waiting (on the server, or on a full channel), maybe after sending rows.
                Poll::Pending => {
                    return match self.rx.poll_recv(cx) {
                        Poll::Ready(Some(row)) => Poll::Ready(Some(row)),
                        _ => Poll::Pending,
                    };
                }
            }
        }
    }
}
