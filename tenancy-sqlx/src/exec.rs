//! Running a statement in a tenant's scope: on the caller's transaction, or on a pooled
//! connection for one statement.

use futures_util::stream::{BoxStream, StreamExt};
use sqlx::postgres::{PgArguments, PgQueryResult, PgRow};
use sqlx::{Postgres, SqlStr};
use tenancy_core::Placement;
use tracing::Instrument;
use uuid::Uuid;

use crate::bind::TenantArgs;
use crate::ctx::Exec;
use crate::{Error, Result};

type Query = sqlx::query::Query<'static, Postgres, PgArguments>;

fn query(sql: SqlStr, args: PgArguments, persistent: bool) -> Query {
    sqlx::query_with(sql, args).persistent(persistent)
}

/// Runs the statement `$sql`, `$args` as `.$op(connection)` on the scope's connection: the
/// caller's transaction, or a unit of work of its own on a pooled connection (see
/// `Runtime::tenant_conn`; with row-level security, a transaction that has the tenant set),
/// which is safe to cancel at any await (see `crate::conn`). A macro because the two
/// connections are different executor types and the operations return different types.
///
/// On a pooled connection, a statement whose cached plan no longer fits its table (a migration
/// changed it: "cached plan must not change result type") is prepared again and run once more.
/// PostgreSQL refuses such a plan while binding, before executing anything, so nothing of the
/// first attempt took effect (and its transaction, which the error aborted, is rolled back
/// before the second). Inside a caller's transaction the error aborted the caller's work, so
/// it is returned; there, the pools `TenancyBuilder::connect` built never lend a connection
/// planned before a migration of this process (see `Runtime::schema_changed`).
macro_rules! on_conn {
    ($exec:expr, $sql:expr, $args:expr, $op:ident) => {{
        let (exec, sql, args) = ($exec, $sql, TenantArgs::into_inner($args));
        async move {
            let persistent = exec.ctx.runtime().persistent;
            match exec.conn {
                Some(conn) => Ok(query(sql, args, persistent).$op(conn).await?),
                None => {
                    let rt = exec.ctx.runtime();
                    let mut conn = rt.tenant_conn(exec.ctx.pool(), exec.ctx.id()).await?;
                    let again = persistent.then(|| (sql.clone(), args.clone()));
                    let mut out = query(sql, args, persistent)
                        .$op(&mut *conn)
                        .await
                        .map_err(Error::from);
                    if let (Err(e), Some((sql, args))) = (&out, again) {
                        if crate::conn::is_stale_plan(e) {
                            conn.replan().await?;
                            out = query(sql, args, persistent)
                                .$op(&mut *conn)
                                .await
                                .map_err(Error::from);
                        }
                    }
                    conn.end(out).await
                }
            }
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

    /// A statement in the runtime's [`StatementMode`](crate::StatementMode). Its arguments end
    /// with the tenant, checked (see `crate::bind`): there is no way to run a tenant's statement
    /// with arguments that were not finished there.
    pub(crate) fn query(&self, sql: SqlStr, args: TenantArgs) -> Query {
        query(sql, args.into_inner(), self.ctx.runtime().persistent)
    }

    fn span(&self) -> tracing::Span {
        tracing::debug_span!("tenancy.statement", tenant = %self.ctx.id())
    }

    pub(crate) async fn fetch_all(self, sql: SqlStr, args: TenantArgs) -> Result<Vec<PgRow>> {
        let span = self.span();
        on_conn!(self, sql, args, fetch_all).instrument(span).await
    }

    pub(crate) async fn fetch_optional(
        self,
        sql: SqlStr,
        args: TenantArgs,
    ) -> Result<Option<PgRow>> {
        let span = self.span();
        on_conn!(self, sql, args, fetch_optional)
            .instrument(span)
            .await
    }

    pub(crate) async fn fetch_one(self, sql: SqlStr, args: TenantArgs) -> Result<PgRow> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or(Error::RowNotFound)
    }

    pub(crate) async fn execute(self, sql: SqlStr, args: TenantArgs) -> Result<PgQueryResult> {
        let span = self.span();
        on_conn!(self, sql, args, execute).instrument(span).await
    }

    pub(crate) fn fetch(self, sql: SqlStr, args: TenantArgs) -> BoxStream<'s, Result<PgRow>> {
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
                            // The consumer is gone, the rows unread: `conn` is closed with
                            // its transaction (dropped without ending).
                            return Ok(());
                        }
                    }
                }
                conn.commit().await
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
