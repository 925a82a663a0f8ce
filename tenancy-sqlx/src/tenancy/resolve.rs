//! The two ways a [`TenantCtx`] is minted, side by side: resolution through the registry (by
//! id, slug, host or reference; cached) and audited impersonation by a [`Superuser`].

use sqlx::postgres::PgRow;
use tenancy_core::{Hostname, Slug, TenantId, TenantRef};

use crate::ctx::Validity;
use crate::registry::cache::{Cached, Key};
use crate::registry::*;
use crate::{Error, Lookup, Result, Superuser, Tenancy, TenantCtx};

impl Tenancy {
    /// Acts as one tenant: the [`TenantCtx`] of an active tenant, for support staff who need to
    /// see what a customer sees. Besides resolution, this is the only way to a `TenantCtx`.
    ///
    /// Audited as `tenant.impersonate` with the tenant's id, before the context is returned.
    /// A refused attempt (unknown, suspended or deleted tenant) is audited too, as
    /// `tenant.impersonate.refused` with the cause in the detail.
    ///
    /// The context reaches that tenant's rows and no other's, and ends with the Superuser's
    /// time-to-live, if it has one ([`TenancyBuilder::superuser_ttl`](crate::TenancyBuilder::superuser_ttl)): from then on its
    /// statements fail with [`Error::Forbidden`]. Drop it when done.
    ///
    /// ```no_run
    /// # use tenancy_sqlx::{Tenancy, TenantId};
    /// # async fn demo(tenancy: Tenancy, customer: TenantId) -> tenancy_sqlx::Result<()> {
    /// let su = tenancy.superuser("support@example.com", "ticket #4411: missing spins").await?;
    /// let ctx = tenancy.impersonate(&su, customer).await?;
    /// assert_eq!(ctx.id(), customer);
    /// // Spin::repo().query().fetch_all(&ctx).await? shows what the customer sees.
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::TenantNotFound`], [`Error::TenantSuspended`], [`Error::TenantDeleted`] (as
    /// resolution); [`Error::Forbidden`] for an expired capability or one of another `Tenancy`;
    /// [`Error::Database`].
    pub async fn impersonate(&self, su: &Superuser, id: TenantId) -> Result<TenantCtx> {
        // Read before the row, as resolution does: a suspension racing this call revokes it.
        let validity = Validity {
            generation: self.handle.cache.generation(),
            expires: su.expires(),
        };
        let ctx = su
            .audited(&self.rt, "tenant.impersonate", async |tx| {
                crate::registry::impersonation(tx, &self.rt, id, validity).await
            })
            .await??;
        tracing::warn!(tenant = %id, slug = ctx.slug(), actor = su.actor(), "impersonating tenant");
        Ok(ctx)
    }

    /// Resolves an active tenant by id.
    ///
    /// # Errors
    /// [`Error::TenantNotFound`], [`Error::TenantSuspended`], [`Error::TenantDeleted`].
    pub async fn resolve_id(&self, id: TenantId) -> Result<TenantCtx> {
        self.resolve_key(Key::Id(id)).await
    }

    /// Resolves an active tenant by slug. A string that is not a valid slug is refused before
    /// any query is sent.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed slug; otherwise as [`Tenancy::resolve_id`].
    pub async fn resolve_slug(&self, slug: &str) -> Result<TenantCtx> {
        let slug = Slug::parse(slug)?;
        self.resolve_key(Key::Slug(slug.as_str().to_owned())).await
    }

    /// Resolves an active tenant by the host of a request, as found in the `Host` header: case
    /// and a port are ignored (`Acme.Example.com:443` finds `acme.example.com`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed host; otherwise as [`Tenancy::resolve_id`].
    pub async fn resolve_host(&self, host: &str) -> Result<TenantCtx> {
        let host = Hostname::from_request(host)?;
        self.resolve_key(Key::Host(host.as_str().to_owned())).await
    }

    /// The cache's context for `key`, or the registry's: one round trip on a miss, shared by
    /// the lookups of the same key that miss at the same time.
    async fn resolve_key(&self, key: Key) -> Result<TenantCtx> {
        let miss = match self.handle.cache.lookup(&key).await {
            Cached::Hit(ctx) => return Ok(ctx),
            Cached::Miss(miss) => miss,
        };
        let q = match &key {
            Key::Id(id) => crate::sql::admin_query(SQL_CTX_BY_ID).bind(id.as_uuid()),
            Key::Slug(slug) => crate::sql::admin_query(SQL_CTX_BY_SLUG).bind(slug.clone()),
            Key::Host(host) => crate::sql::admin_query(SQL_CTX_BY_HOST).bind(host.clone()),
        };
        let row = self
            .rt
            .with_conn(async |c| Ok(q.fetch_optional(c).await?))
            .await?;
        let ctx = self.mint(key, miss.generation(), row)?;
        miss.fill(&ctx);
        Ok(ctx)
    }

    /// Turns a reference from a job payload back into a context, checking again that the tenant
    /// exists and is active.
    ///
    /// # Errors
    /// As [`Tenancy::resolve_id`].
    pub async fn resolve(&self, tenant: &TenantRef) -> Result<TenantCtx> {
        self.resolve_id(tenant.tenant_id()).await
    }

    /// Mints a context for a registry row if, and only if, the tenant is active.
    fn mint(&self, key: Key, generation: u64, row: Option<PgRow>) -> Result<TenantCtx> {
        let row = row.ok_or_else(|| {
            Error::TenantNotFound(match &key {
                Key::Id(id) => Lookup::Id(*id),
                Key::Slug(slug) => Lookup::Slug(slug.clone()),
                Key::Host(host) => Lookup::Host(host.clone()),
            })
        })?;
        mint_active(
            &self.rt,
            &row,
            Validity {
                generation,
                expires: None,
            },
        )
    }
}
