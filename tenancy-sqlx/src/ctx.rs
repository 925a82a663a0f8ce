//! The tenant capability: [`TenantCtx`] and scoped transactions ([`TenantTx`]). What opens a
//! unit of work on them, the sealed [`Scope`](crate::Scope), lives with the unit (`unit.rs`).

use std::fmt;
use std::sync::Arc;

use tenancy_core::{Home, Placement, TenantId, TenantRef};

use crate::Result;
use crate::conn::Conn;
use crate::runtime::{Lane, Runtime};

/// Proof that its holder acts for one active tenant.
///
/// A `TenantCtx` has no public constructor, no public fields, no `Default`, no `Deserialize`
/// and no conversion from a [`TenantId`], a uuid, a [`TenantRef`] or a
/// [`Superuser`](crate::Superuser). The only ways to get one are resolving an active tenant
/// through the registry ([`Tenancy::resolve_id`](crate::Tenancy::resolve_id),
/// [`resolve_slug`](crate::Tenancy::resolve_slug), [`resolve_host`](crate::Tenancy::resolve_host),
/// [`resolve`](crate::Tenancy::resolve)) and, the only other way, impersonation:
/// [`Tenancy::impersonate`](crate::Tenancy::impersonate), which takes a
/// [`Superuser`](crate::Superuser) and records the impersonation in the audit log.
///
/// Every repository method takes a `&TenantCtx` (or a [`TenantTx`] begun from one), so a query
/// that forgets the tenant does not compile:
///
/// ```compile_fail
/// # use tenancy_sqlx::TenantCtx;
/// # use tenancy_core::TenantId;
/// let ctx = TenantCtx::from(TenantId::new_v4()); // no such conversion
/// ```
///
/// Clone, `Send` and `Sync`: a clone is the same authority, for the same tenant.
#[derive(Clone)]
pub struct TenantCtx {
    inner: Arc<CtxInner>,
}

struct CtxInner {
    id: TenantId,
    slug: String,
    name: String,
    /// Where its rows live, resolved once from the registry row.
    home: Home,
    /// What the model check remembers a passed table under (see `crate::checked`): the quoted
    /// schema, and for a database of its own, the database too.
    check_key: Option<String>,
    rt: Arc<Runtime>,
    validity: Validity,
}

/// How long a context may act.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Validity {
    /// The resolution cache's generation when the registry row was read (read before it): a
    /// revocation of the tenant after it refuses the context.
    pub(crate) generation: u64,
    /// For an impersonation, when the impersonating `Superuser` expires.
    pub(crate) expires: Option<std::time::Instant>,
}

impl TenantCtx {
    /// Mints a token. Only the registry (and an audited impersonation) calls this, after
    /// checking the tenant is active.
    pub(crate) fn mint(
        rt: Arc<Runtime>,
        id: TenantId,
        slug: String,
        name: String,
        home: Home,
        validity: Validity,
    ) -> Self {
        let check_key = match &home {
            Home::OwnDatabase { database, schema }
            | Home::ServerShared { database, schema }
            | Home::ServerSchema { database, schema } => {
                Some(crate::checked::database_key(database, schema.as_sql()))
            }
            other => other.schema().map(str::to_owned),
        };
        Self {
            inner: Arc::new(CtxInner {
                id,
                slug,
                name,
                home,
                check_key,
                rt,
                validity,
            }),
        }
    }

    /// Refuses a context that can no longer act: its tenant was suspended, deleted or purged
    /// through this process after it was resolved, or the impersonation it came from expired.
    pub(crate) fn check_live(&self) -> Result<()> {
        let inner = &self.inner;
        if inner
            .rt
            .revocations
            .is_revoked(inner.id, inner.validity.generation)
        {
            return Err(crate::Error::ContextRevoked {
                id: inner.id,
                slug: inner.slug.clone(),
            });
        }
        if inner
            .validity
            .expires
            .is_some_and(|at| std::time::Instant::now() >= at)
        {
            return Err(crate::Error::Forbidden(format!(
                "the impersonation of tenant {:?} ended with its Superuser's time-to-live",
                inner.slug
            )));
        }
        Ok(())
    }

    /// The tenant's id.
    pub fn id(&self) -> TenantId {
        self.inner.id
    }

    /// The tenant's slug.
    pub fn slug(&self) -> &str {
        &self.inner.slug
    }

    /// The tenant's display name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Where the tenant's rows live.
    pub fn placement(&self) -> Placement {
        self.inner.home.placement()
    }

    /// Where the tenant's rows live: the shared tables, its schema, or its database.
    pub fn home(&self) -> &Home {
        &self.inner.home
    }

    /// A plain reference to this tenant, to put in a job payload. Turning it back into a
    /// `TenantCtx` goes through the registry again.
    pub fn to_ref(&self) -> TenantRef {
        TenantRef::new(self.inner.id)
    }

    /// A cache key namespaced by this tenant (see [`TenantRef::cache_key`]).
    pub fn cache_key(&self, key: &str) -> String {
        self.to_ref().cache_key(key)
    }

    /// Begins a transaction for this tenant. Pass `&mut tx` wherever a repository method asks
    /// for a scope; [`TenantTx::commit`] to keep the work. A dropped transaction rolls back.
    ///
    /// With [row-level security](crate::rls) on, the tenant is set for the transaction
    /// (transaction-locally) in the same round trip as its `BEGIN`.
    ///
    /// Safe to cancel: if this future is dropped before it returns (its `BEGIN` in flight),
    /// the connection is closed, not returned to the pool, so no transaction or tenant setting
    /// of this call reaches another borrower.
    ///
    /// # Errors
    /// [`Error::ContextRevoked`](crate::Error::ContextRevoked) and
    /// [`Error::Forbidden`](crate::Error::Forbidden) for a context that can no longer act (as
    /// every statement of it: its tenant suspended, deleted or purged since it was resolved, or
    /// its impersonation expired), before a connection is taken;
    /// [`Error::Database`](crate::Error::Database) if no connection can be had.
    pub async fn begin(&self) -> Result<TenantTx> {
        self.check_live()?;
        let tx = self.runtime().begin_for(self.lane(), self.id()).await?;
        Ok(TenantTx {
            ctx: self.clone(),
            tx,
        })
    }

    /// Where this tenant's statements get their connection: its lane of the pool, or its
    /// database's connections under the server's budget.
    pub(crate) fn lane(&self) -> Lane<'_> {
        match self.inner.home.database() {
            Some(database) => Lane::Database(database),
            None => Lane::Pool(self.inner.rt.lane(self.inner.id)),
        }
    }

    /// The tenant's quoted schema: its own, or the one in its database; `None` on shared tables.
    pub(crate) fn schema(&self) -> Option<&str> {
        self.inner.home.schema()
    }

    /// What the model check remembers this tenant's tables under.
    pub(crate) fn check_key(&self) -> Option<&str> {
        self.inner.check_key.as_deref()
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.inner.rt
    }
}

impl fmt::Debug for TenantCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantCtx")
            .field("id", &self.inner.id)
            .field("slug", &self.inner.slug)
            .field("placement", &self.inner.home.placement())
            .finish_non_exhaustive()
    }
}

/// A transaction that belongs to one tenant.
///
/// Begun with [`TenantCtx::begin`]; every repository method accepts `&mut TenantTx` in place of
/// a `&TenantCtx`.
///
/// Only [`commit`](TenantTx::commit) keeps the work. Dropping the transaction any other way
/// (an early return, a panic, the cancellation of a future that holds it or of a statement
/// running on it, or of `commit` itself before it returns) closes its connection instead of
/// returning it to the pool: the server rolls the transaction back, and no transaction, tenant
/// setting or half-read reply reaches the next borrower. [`rollback`](TenantTx::rollback)
/// rolls back and keeps the connection pooled.
pub struct TenantTx {
    pub(crate) ctx: TenantCtx,
    pub(crate) tx: Conn,
}

impl TenantTx {
    /// The tenant this transaction belongs to.
    pub fn ctx(&self) -> &TenantCtx {
        &self.ctx
    }

    /// Commits.
    ///
    /// # Errors
    /// [`Error::TransactionAborted`](crate::Error::TransactionAborted) if a statement in the
    /// transaction failed (PostgreSQL then keeps none of its work, even where the caller went
    /// on after the error); [`Error::Database`](crate::Error::Database) if the commit fails. In
    /// both cases the work is lost.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await
    }

    /// Rolls back.
    ///
    /// # Errors
    /// [`Error::Database`](crate::Error::Database) if the server cannot be told; the work is
    /// rolled back all the same when the connection closes.
    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await
    }
}

impl fmt::Debug for TenantTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantTx")
            .field("tenant", &self.ctx.id())
            .finish_non_exhaustive()
    }
}
