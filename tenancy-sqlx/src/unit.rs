//! [`TenantUnit`]: one tenant's unit of work, the only way a tenant's statement runs.
//!
//! Opening a unit ([`Scope::open`]) is where the checks that guard a tenant's statements live,
//! once: the context may still act (its tenant was not suspended, deleted or purged through this
//! process after it was resolved, and an impersonation has not expired), and its placement is
//! one this runtime serves. A unit exists only opened, so no statement can skip them; the model
//! check (the table's shape against the model's description) comes with the statements
//! ([`open`], [`TenantUnit::statements`]), the only way to a model's statement text.
//!
//! The unit also owns how its statements get a connection: the caller's transaction (a
//! `&mut TenantTx`), or, for a `&TenantCtx`, a unit of work of its own per statement on the
//! tenant's lane (with row-level security, a transaction that has the tenant set), safe to
//! cancel at any await (see `crate::conn`).

use std::any::TypeId;

use futures_util::future::{BoxFuture, FutureExt};
use futures_util::stream::{BoxStream, StreamExt};
use sqlx::postgres::{PgQueryResult, PgRow};
use sqlx::{PgConnection, SqlStr};
use tenancy_core::Home;
use tracing::Instrument;
use uuid::Uuid;

use crate::bind::TenantArgs;
use crate::conn::Conn;
use crate::conn::read::{Op, Query, query};
use crate::ctx::{TenantCtx, TenantTx};
use crate::model::{Model, ModelMeta};
use crate::runtime::{Lane, Runtime};
use crate::sql::ModelSql;
use crate::{Error, Result};

/// Seals [`Scope`]: a trait no other crate can name, so no other type can be a scope. Named
/// for what it means, since compile errors show its name.
mod issued {
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be a tenant scope: only `&TenantCtx` and `&mut TenantTx` are",
        label = "not issued by the tenant registry",
        note = "a scope carries a tenant the registry resolved or a Superuser impersonated"
    )]
    pub trait IssuedByTheRegistry {}
    impl IssuedByTheRegistry for &crate::ctx::TenantCtx {}
    impl IssuedByTheRegistry for &mut crate::ctx::TenantTx {}
}

/// Where a repository method runs: a `&TenantCtx` (a pooled connection, one statement) or a
/// `&mut TenantTx` (inside that transaction). Sealed: nothing else is a scope.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tenant scope",
    label = "this needs a `&TenantCtx` or a `&mut TenantTx`",
    note = "tenant-scoped rows are reached only through a `TenantCtx`, which the registry hands out \
            (`Tenancy::resolve_host`, `resolve_slug`, `resolve_id`, `resolve`), or a `TenantTx` begun from one"
)]
pub trait Scope<'s>: issued::IssuedByTheRegistry + Send {
    /// Opens a unit of work for the scope's tenant, checking that its context may still act and
    /// that its placement is served (see `unit.rs`). The only way to a `TenantUnit`.
    ///
    /// # Errors
    /// [`Error::ContextRevoked`](crate::Error::ContextRevoked),
    /// [`Error::Forbidden`](crate::Error::Forbidden) for an expired impersonation,
    /// [`Error::UnsupportedPlacement`](crate::Error::UnsupportedPlacement).
    #[doc(hidden)]
    fn open(self) -> Result<TenantUnit<'s>>;
}

impl<'s> Scope<'s> for &'s TenantCtx {
    fn open(self) -> Result<TenantUnit<'s>> {
        TenantUnit::open(self, None)
    }
}

impl<'s> Scope<'s> for &'s mut TenantTx {
    fn open(self) -> Result<TenantUnit<'s>> {
        TenantUnit::open(&self.ctx, Some(&mut *self.tx))
    }
}

/// Whether a statement only reads. A read on a pooled connection that needs a transaction
/// (row-level security, or `StatementMode::Unnamed`) runs in a read-only one, ended without a
/// round trip of its own (see `crate::conn::read`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// One tenant's unit of work, opened and checked (see the module docs): the tenant and the
/// connection its statements run on. Opaque outside this crate, and made only by
/// [`Scope::open`].
#[doc(hidden)]
pub struct TenantUnit<'s> {
    ctx: &'s TenantCtx,
    /// The caller's transaction; `None`: each statement takes a connection of its own.
    conn: Option<&'s mut PgConnection>,
}

/// Opens a unit for `scope` with the statements of `M`, checked against the table the tenant's
/// rows live in: what every repository method and `Select` starts with.
///
/// # Errors
/// As [`TenantUnit::open`] and [`TenantUnit::statements`].
pub(crate) async fn open<'s, M: Model>(
    scope: impl Scope<'s>,
) -> Result<(TenantUnit<'s>, &'static ModelSql)> {
    let mut unit = scope.open()?;
    let statements = unit.statements::<M>().await?;
    Ok((unit, statements))
}

impl<'s> TenantUnit<'s> {
    /// Opens a unit for `ctx`, on the caller's transaction `conn` if any. Refuses, before any
    /// SQL is built, a context that can no longer act (see `TenantCtx::check_live`) and
    /// placements this runtime does not serve.
    ///
    /// Every placement's statements are the same (the table named in the tenant's schema, or
    /// unqualified, the tenant bound); what the home changes is the connection they run on: an
    /// own-database tenant's is leased from its database's connections (`Runtime::tenant_conn`).
    ///
    /// # Errors
    /// [`Error::ContextRevoked`], [`Error::Forbidden`] (an expired impersonation),
    /// [`Error::UnsupportedPlacement`].
    pub(crate) fn open(ctx: &'s TenantCtx, conn: Option<&'s mut PgConnection>) -> Result<Self> {
        ctx.check_live()?;
        match ctx.home() {
            Home::SharedTable | Home::OwnSchema(_) => Ok(Self { ctx, conn }),
            Home::OwnDatabase { .. } | Home::ServerShared { .. } | Home::ServerSchema { .. } => {
                // Served only by a runtime that holds tenant databases' connections.
                ctx.runtime().databases()?;
                Ok(Self { ctx, conn })
            }
            other => Err(Error::UnsupportedPlacement(other.placement())),
        }
    }

    /// The tenant every statement is bound to.
    pub(crate) fn tenant(&self) -> Uuid {
        self.ctx.id().as_uuid()
    }

    /// The tenant's quoted schema; `None` on shared tables.
    pub(crate) fn schema(&self) -> Option<&'s str> {
        self.ctx.schema()
    }

    /// Whether the unit runs in a database other than the registry's (a tenant's own, or a
    /// server home: no registry there).
    pub(crate) fn own_database(&self) -> bool {
        self.ctx.home().database().is_some()
    }

    /// The database the unit runs in when it is not the registry's.
    pub(crate) fn database(&self) -> Option<&'s tenancy_core::home::DatabaseRef> {
        self.ctx.home().database()
    }

    pub(crate) fn runtime(&self) -> &'s Runtime {
        self.ctx.runtime()
    }

    /// The statements of `M`, once its table for this unit (the shared one, or the tenant's
    /// schema's) has passed the model check through this `Tenancy` (see `crate::verify`).
    pub(crate) async fn statements<M: Model>(&mut self) -> Result<&'static ModelSql> {
        self.statements_of(TypeId::of::<M>(), &M::META).await
    }

    /// As [`TenantUnit::statements`], for a model known by type id and description (raw SQL's
    /// declared models).
    pub(crate) async fn statements_of(
        &mut self,
        model: TypeId,
        meta: &'static ModelMeta,
    ) -> Result<&'static ModelSql> {
        let ctx = self.ctx;
        match self.check_model(model, meta).await {
            // A context resolved before its tenant left its own schema meets the old schema
            // renamed (its table missing) on its first check there: say that it moved.
            Err(e) if crate::moving::moved_away(ctx.runtime(), &e, ctx.id(), ctx.home()).await => {
                Err(Error::TenantMoved(ctx.id()))
            }
            out => out,
        }
    }

    async fn check_model(
        &mut self,
        model: TypeId,
        meta: &'static ModelMeta,
    ) -> Result<&'static ModelSql> {
        let schema = self.schema();
        // Many tenants' rows in the table: the registry's shared tables, a server home's.
        let shared = matches!(
            self.ctx.home(),
            Home::SharedTable | Home::ServerShared { .. }
        );
        let key = self.ctx.check_key();
        let rt = self.runtime();
        if self.conn.is_none() && self.ctx.home().database().is_some() {
            // The table is the tenant database's: checked on a connection to it.
            if rt.models.has(model, key) {
                return crate::sql::statements_of(model, meta).get(meta);
            }
            let ctx = self.ctx;
            return rt
                .with_conn_of(ctx.lane(), ctx.id(), async |conn| {
                    crate::verify::check_now(rt, Some(conn), model, meta, (schema, shared), key)
                        .await
                })
                .await;
        }
        crate::verify::checked(
            rt,
            self.conn.as_deref_mut(),
            model,
            meta,
            (schema, shared),
            key,
        )
        .await
    }

    /// Runs `f` on the unit's connection: the caller's transaction, or a pooled connection of
    /// the tenant's lane for one unit of work (see `Runtime::with_conn`). For statements of the
    /// crate's own that read no tenant rows (raw SQL's catalog checks).
    pub(crate) async fn with_conn<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<T> {
        match self.conn.as_deref_mut() {
            Some(conn) => f(conn).await,
            None => {
                let ctx = self.ctx;
                ctx.runtime().with_conn_of(ctx.lane(), ctx.id(), f).await
            }
        }
    }

    /// Runs `work` all-or-nothing: in the caller's transaction, or in one of the unit's own
    /// (committed if `work` succeeds, rolled back otherwise).
    pub(crate) async fn in_transaction<T>(
        &mut self,
        work: impl AsyncFnOnce(&mut TenantUnit<'_>) -> Result<T>,
    ) -> Result<T> {
        if self.conn.is_some() {
            return work(self).await;
        }
        let ctx = self.ctx;
        let mut tx = ctx.runtime().begin_for(ctx.lane(), ctx.id()).await?;
        let out = work(&mut TenantUnit {
            ctx,
            conn: Some(&mut tx),
        })
        .await;
        tx.end(out).await
    }

    /// A statement in the runtime's [`StatementMode`](crate::StatementMode). Its arguments end
    /// with the tenant, checked (see `crate::bind`): there is no way to run a tenant's statement
    /// with arguments that were not finished there.
    fn query(&self, sql: SqlStr, args: TenantArgs) -> Query {
        query(sql, args.into_inner(), self.runtime().persistent)
    }

    fn span(&self) -> tracing::Span {
        tracing::debug_span!("tenancy.statement", tenant = %self.ctx.id())
    }

    /// Runs the statement as `op` on the unit's connection: the caller's transaction, or a unit
    /// of work of its own on a pooled connection (see `Runtime::tenant_conn`; with row-level
    /// security, a transaction that has the tenant set), which is safe to cancel at any await
    /// (see `crate::conn`).
    ///
    /// On a pooled connection, a statement whose cached plan no longer fits its table (a
    /// migration changed it: "cached plan must not change result type") is prepared again and
    /// run once more. PostgreSQL refuses such a plan while binding, before executing anything,
    /// so nothing of the first attempt took effect (and its transaction, which the error
    /// aborted, is rolled back before the second). Inside a caller's transaction the error
    /// aborted the caller's work, so it is returned; there, the pools `TenancyBuilder::connect`
    /// built never lend a connection planned before a migration of this process (see
    /// `Runtime::schema_changed`).
    ///
    /// A read there that needs a transaction runs in a read-only one whose end costs no round
    /// trip (see `crate::conn::read`).
    async fn run<T>(
        &mut self,
        sql: SqlStr,
        args: TenantArgs,
        access: Access,
        op: Op<T>,
    ) -> Result<T> {
        let span = self.span();
        let persistent = self.runtime().persistent;
        let args = args.into_inner();
        let ctx = self.ctx;
        let out = async move {
            if let Some(conn) = self.conn.as_deref_mut() {
                return Ok(op(query(sql, args, persistent), conn).await?);
            }
            // Own-database tenants' leases go back to their budget only outside a transaction:
            // their reads keep the path below.
            if access == Access::Read
                && let Lane::Pool(pool) = ctx.lane()
                && let Some(begin) = ctx.runtime().read_begin(ctx.id())
            {
                return Conn::read(pool, begin, sql, args, persistent, op).await;
            }
            let mut conn = ctx.runtime().tenant_conn(ctx.lane(), ctx.id()).await?;
            let again = persistent.then(|| (sql.clone(), args.clone()));
            let mut out = op(query(sql, args, persistent), &mut conn)
                .await
                .map_err(Error::from);
            if let (Err(e), Some((sql, args))) = (&out, again)
                && crate::conn::is_stale_plan(e)
            {
                conn.replan().await?;
                out = op(query(sql, args, persistent), &mut conn)
                    .await
                    .map_err(Error::from);
            }
            conn.end(out).await
        }
        .instrument(span)
        .await;
        // The checks of a failed statement are boxed: they may open a connection, and their
        // futures inline would make every statement's as large (see `conn::acquire::borrow`).
        match out {
            // A context resolved before its tenant left its own schema finds the old schema
            // renamed: say that it moved (see `crate::moving`).
            Err(e)
                if Box::pin(crate::moving::moved_away(
                    ctx.runtime(),
                    &e,
                    ctx.id(),
                    ctx.home(),
                ))
                .await =>
            {
                Err(Error::TenantMoved(ctx.id()))
            }
            Err(Error::TenantMoved(id)) if id == ctx.id() && ctx.home().in_server_home() => {
                // Also inside the caller's transaction: aborted by the refusal, it holds no
                // lock any more (PostgreSQL releases them when the statement fails).
                Box::pin(crate::moving::heal_pending_line(
                    ctx.runtime(),
                    id,
                    ctx.home(),
                ))
                .await;
                Err(Error::TenantMoved(id))
            }
            out => out,
        }
    }

    /// Runs a statement that writes (or may), returning its rows.
    pub(crate) async fn fetch_all(&mut self, sql: SqlStr, args: TenantArgs) -> Result<Vec<PgRow>> {
        self.run(sql, args, Access::Write, |q, c| q.fetch_all(c).boxed())
            .await
    }

    /// Runs a statement that writes (or may), returning its first row if any.
    pub(crate) async fn fetch_optional(
        &mut self,
        sql: SqlStr,
        args: TenantArgs,
    ) -> Result<Option<PgRow>> {
        self.run(sql, args, Access::Write, |q, c| q.fetch_optional(c).boxed())
            .await
    }

    /// Runs a statement that writes (or may), returning its first row.
    pub(crate) async fn fetch_one(&mut self, sql: SqlStr, args: TenantArgs) -> Result<PgRow> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or(Error::RowNotFound)
    }

    /// Runs a statement that writes (or may).
    pub(crate) async fn execute(&mut self, sql: SqlStr, args: TenantArgs) -> Result<PgQueryResult> {
        self.run(sql, args, Access::Write, |q, c| q.execute(c).boxed())
            .await
    }

    /// Runs a statement that only reads (a `SELECT` without locking clauses, or raw SQL, which
    /// is one): all its rows. Where the unit needs a transaction of its own, it is read-only,
    /// so a statement that would write fails.
    pub(crate) async fn read_all(&mut self, sql: SqlStr, args: TenantArgs) -> Result<Vec<PgRow>> {
        self.run(sql, args, Access::Read, |q, c| q.fetch_all(c).boxed())
            .await
    }

    /// As [`TenantUnit::read_all`], each row decoded as `M` as it arrives, as hand-written
    /// `query_as` does: no row waits in memory for the last, so the connection's read buffer is
    /// reused rather than grown and copied while a page is held (BENCHMARKS.md, `list50`).
    pub(crate) async fn read_models<M: Model>(
        &mut self,
        sql: SqlStr,
        args: TenantArgs,
    ) -> Result<Vec<M>> {
        self.run(sql, args, Access::Read, decode_rows::<M>).await
    }

    /// As [`TenantUnit::read_all`]: the first row, if any.
    pub(crate) async fn read_optional(
        &mut self,
        sql: SqlStr,
        args: TenantArgs,
    ) -> Result<Option<PgRow>> {
        self.run(sql, args, Access::Read, |q, c| q.fetch_optional(c).boxed())
            .await
    }

    /// As [`TenantUnit::read_all`]: the first row.
    pub(crate) async fn read_one(&mut self, sql: SqlStr, args: TenantArgs) -> Result<PgRow> {
        self.read_optional(sql, args)
            .await?
            .ok_or(Error::RowNotFound)
    }

    /// Streams the statement's rows. On the caller's transaction, straight from it; otherwise
    /// on a unit of work of its own (see [`TenantUnit::run`]) that lives as long as the stream:
    /// the stream owns it, and dropping the stream before its end closes the connection.
    pub(crate) fn fetch(self, sql: SqlStr, args: TenantArgs) -> BoxStream<'s, Result<PgRow>> {
        let q = self.query(sql, args);
        let ctx = self.ctx;
        match self.conn {
            Some(conn) => q.fetch(conn).map(|r| r.map_err(Error::from)).boxed(),
            None => owned_stream(move |tx: Sender| async move {
                let mut conn = ctx.runtime().tenant_conn(ctx.lane(), ctx.id()).await?;
                let mut failed = false;
                {
                    let mut rows = q.fetch(&mut *conn);
                    while let Some(row) = rows.next().await {
                        failed |= row.is_err();
                        if tx.send(row.map_err(Error::from)).await.is_err() {
                            // The consumer is gone, the rows unread: `conn` is closed with
                            // its transaction (dropped without ending).
                            return Ok(());
                        }
                    }
                }
                // The stream already carries a failed statement's error.
                if failed {
                    conn.rollback().await
                } else {
                    conn.commit().await
                }
            }),
        }
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
            // The end is the channel's to tell: closed (the producer and its sender gone) and
            // empty. A `Pending` here may only mean the task's cooperative budget is spent
            // (tokio then wakes the task again), never that nothing is left.
            match self.rx.poll_recv(cx) {
                Poll::Ready(row) => return Poll::Ready(row),
                Poll::Pending => {}
            }
            let Some(driver) = self.driver.as_mut() else {
                return Poll::Pending;
            };
            match driver.as_mut().poll(cx) {
                // Done: its senders are dropped; read what it sent last, then the close.
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

/// The [`Op`] of [`TenantUnit::read_models`]: every row, decoded as `M` as it is read.
fn decode_rows<M: Model>(q: Query, conn: &mut PgConnection) -> BoxFuture<'_, sqlx::Result<Vec<M>>> {
    q.try_map(|row: PgRow| M::decode_row(&row))
        .fetch_all(conn)
        .boxed()
}
