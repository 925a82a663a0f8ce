//! The tenant registry: which tenants exist, where their rows live, which hosts they answer to.
//!
//! Resolution is the only way to mint a [`TenantCtx`]: it checks the tenant is active first.

pub(crate) mod cache;
pub(crate) mod notify;
pub(crate) mod schema;

use std::sync::Arc;

use sqlx::Row;
use sqlx::postgres::PgRow;
use tenancy_core::{
    Hostname, Placement, Slug, TenantId, TenantName, TenantRef, TenantStatus, ValidationError,
};
use time::OffsetDateTime;

use crate::ctx::Validity;
use crate::runtime::Runtime;
use crate::{Error, Lookup, Result, Superuser, Tenancy, TenantCtx};
use cache::Key;

/// A tenant as recorded in the registry. Plain data: holding it grants nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tenant {
    /// The tenant's id.
    pub id: TenantId,
    /// Its slug (see [`Slug`]).
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// Where its rows live.
    pub placement: Placement,
    /// Active, suspended or deleted.
    pub status: TenantStatus,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was soft-deleted, if it is.
    pub deleted_at: Option<OffsetDateTime>,
    /// The hosts it answers to, the primary one first.
    pub hosts: Vec<String>,
    /// Its schema, for the own-schema placement.
    pub schema: Option<String>,
}

impl Tenant {
    /// A reference to this tenant, for a job payload.
    pub fn to_ref(&self) -> TenantRef {
        TenantRef::new(self.id)
    }
}

/// What [`Tenancy::create_tenant`] needs.
///
/// ```
/// use tenancy_sqlx::NewTenant;
/// let t = NewTenant::new("acme", "Acme Corp")
///     .host("acme.example.com")      // the first host is the primary one
///     .host("app.acme.com");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct NewTenant {
    slug: String,
    name: String,
    placement: Placement,
    hosts: Vec<String>,
}

impl NewTenant {
    /// A tenant with this slug and display name, on shared tables, with no hosts yet.
    pub fn new(slug: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            slug: slug.into(),
            name: name.into(),
            placement: Placement::SharedTable,
            hosts: Vec::new(),
        }
    }

    /// Adds a host the tenant answers to. The first one added is its primary host.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.hosts.push(host.into());
        self
    }

    /// Where the tenant's rows live. Default: [`Placement::SharedTable`].
    pub fn placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }
}

const TENANT_COLUMNS: &str = "t.id, t.slug, t.name, t.placement, t.status, t.created_at, t.deleted_at, t.schema_name, \
     COALESCE((SELECT array_agg(d.host ORDER BY d.is_primary DESC, d.host) \
               FROM tenancy.domains d WHERE d.tenant_id = t.id), '{}') AS hosts";

pub(crate) fn tenant_from_row(row: &PgRow) -> Result<Tenant> {
    let placement: String = row.try_get("placement")?;
    let status: String = row.try_get("status")?;
    Ok(Tenant {
        id: TenantId::from_uuid(row.try_get("id")?),
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        placement: placement.parse()?,
        status: status.parse()?,
        created_at: row.try_get("created_at")?,
        deleted_at: row.try_get("deleted_at")?,
        hosts: row.try_get("hosts")?,
        schema: row.try_get("schema_name")?,
    })
}

/// The id and slug of a registry row (`id`, `slug`, `status`) of an active tenant; for a
/// suspended or deleted one, the typed refusal every way to a tenant's rows gives.
pub(crate) fn active(row: &PgRow) -> Result<(TenantId, String)> {
    let id = TenantId::from_uuid(row.try_get("id")?);
    let slug: String = row.try_get("slug")?;
    let status: String = row.try_get("status")?;
    match status.parse::<TenantStatus>()? {
        TenantStatus::Active => Ok((id, slug)),
        TenantStatus::Suspended => Err(Error::TenantSuspended { id, slug }),
        _ => Err(Error::TenantDeleted { id, slug }),
    }
}

/// The registry columns a context is minted from ([`mint_active`]), from the tenant `t`.
macro_rules! ctx_row {
    () => {
        "SELECT t.id, t.slug, t.name, t.placement, t.status, t.schema_name"
    };
}

/// The row of tenant `$1` to mint its context from.
pub(crate) const SQL_CTX_BY_ID: &str =
    concat!(ctx_row!(), " FROM tenancy.tenants t WHERE t.id = $1");

/// The context of a registry row (`id`, `slug`, `name`, `placement`, `status`, `schema_name`)
/// of an active tenant; the typed refusal otherwise (see [`active`]).
pub(crate) fn mint_active(rt: &Arc<Runtime>, row: &PgRow, validity: Validity) -> Result<TenantCtx> {
    let (id, slug) = active(row)?;
    let placement: String = row.try_get("placement")?;
    let schema: Option<String> = row.try_get("schema_name")?;
    Ok(TenantCtx::mint(
        Arc::clone(rt),
        id,
        slug,
        row.try_get("name")?,
        placement.parse()?,
        schema.as_deref(),
        validity,
    ))
}

impl Tenancy {
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

    /// The cache's context for `key`, or the registry's: one round trip on a miss.
    async fn resolve_key(&self, key: Key) -> Result<TenantCtx> {
        if let Some(ctx) = self.rt.cache.get(&key) {
            return Ok(ctx);
        }
        // Read before the row: see `admit`.
        let generation = self.rt.cache.generation();
        let q = match &key {
            Key::Id(id) => crate::sql::admin_query(SQL_CTX_BY_ID).bind(id.as_uuid()),
            Key::Slug(slug) => crate::sql::admin_query(concat!(
                ctx_row!(),
                " FROM tenancy.tenants t WHERE t.slug = $1"
            ))
            .bind(slug.clone()),
            Key::Host(host) => crate::sql::admin_query(concat!(
                ctx_row!(),
                " FROM tenancy.domains d JOIN tenancy.tenants t ON t.id = d.tenant_id \
                 WHERE d.host = $1"
            ))
            .bind(host.clone()),
        };
        let row = self
            .rt
            .with_conn(async |c| Ok(q.fetch_optional(c).await?))
            .await?;
        self.admit(key, generation, row)
    }

    /// Turns a reference from a job payload back into a context, checking again that the tenant
    /// exists and is active.
    ///
    /// # Errors
    /// As [`Tenancy::resolve_id`].
    pub async fn resolve(&self, tenant: &TenantRef) -> Result<TenantCtx> {
        self.resolve_id(tenant.tenant_id()).await
    }

    /// Mints a context for a registry row if, and only if, the tenant is active, and caches it
    /// unless the cache was invalidated since `generation` was read (before the row was): a
    /// suspension racing this lookup must not leave the pre-suspension row cached.
    fn admit(&self, key: Key, generation: u64, row: Option<PgRow>) -> Result<TenantCtx> {
        let row = row.ok_or_else(|| {
            Error::TenantNotFound(match &key {
                Key::Id(id) => Lookup::Id(*id),
                Key::Slug(slug) => Lookup::Slug(slug.clone()),
                Key::Host(host) => Lookup::Host(host.clone()),
            })
        })?;
        let ctx = mint_active(
            &self.rt,
            &row,
            Validity {
                generation,
                expires: None,
            },
        )?;
        self.rt.cache.insert(key, ctx.clone(), generation);
        Ok(ctx)
    }

    /// Creates a tenant under a new random id: validates the slug, name and hosts, then writes
    /// the tenant and its domains in one transaction (an own-schema tenant's schema and tenant
    /// migrations too). On any error nothing is written.
    ///
    /// Returns the registry record; resolve it to act for the tenant.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed slug or host, [`Error::InvalidName`],
    /// [`Error::SlugTaken`], [`Error::HostTaken`],
    /// [`Error::UnsupportedPlacement`] for a placement this version cannot provision,
    /// [`Error::MigrationRefused`] for a tenant migration that would end its transaction,
    /// [`Error::Migration`].
    pub async fn create_tenant(&self, new: NewTenant) -> Result<Tenant> {
        self.create(new, None).await
    }

    /// As [`Tenancy::create_tenant`], under the id given (when bringing tenants in from another
    /// system). An id decides which rows a tenant reaches, so choosing one takes a
    /// [`Superuser`]; audited (`tenant.create_with_id`) in the creation's transaction.
    ///
    /// # Errors
    /// As [`Tenancy::create_tenant`]; [`Error::TenantIdTaken`]; [`Error::TenantIdPurged`] for
    /// the id of a purged tenant (ids are never reused); [`Error::Forbidden`] for an expired
    /// `su` or one of another `Tenancy`.
    pub async fn create_tenant_with_id(
        &self,
        su: &Superuser,
        new: NewTenant,
        id: TenantId,
    ) -> Result<Tenant> {
        self.check_superuser(su)?;
        self.create(new, Some((su, id))).await
    }

    async fn create(
        &self,
        new: NewTenant,
        chosen: Option<(&Superuser, TenantId)>,
    ) -> Result<Tenant> {
        let slug = Slug::parse(&new.slug)?;
        let name = match TenantName::parse(&new.name) {
            Ok(name) => name,
            Err(ValidationError::Name { reason, .. }) => return Err(Error::InvalidName(reason)),
            Err(e) => return Err(e.into()),
        };
        let name = name.as_str();
        let mut hosts: Vec<Hostname> = Vec::with_capacity(new.hosts.len());
        for host in &new.hosts {
            let host = Hostname::parse(host)?;
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        let schema = match new.placement {
            Placement::SharedTable => None,
            Placement::OwnSchema => Some(schema_for(&slug)?),
            other => return Err(Error::UnsupportedPlacement(other)),
        };
        let id = chosen.map_or_else(TenantId::new_v4, |(_, id)| id);
        if schema.is_some() {
            // Before anything runs.
            self.rt.tenant_migrations.check_runnable()?;
        }

        let mut tx = self.rt.begin().await?;
        if schema.is_some() {
            // Tenant migrations commonly reference the registry (`REFERENCES tenancy.tenants`),
            // and adding that foreign key locks the registry against inserts. Two creations that
            // each insert their row first, then build their schema, wait on each other: a
            // deadlock. Taking that lock first makes concurrent creations queue instead. Reads
            // (resolution) are not blocked.
            crate::sql::admin_query("LOCK TABLE tenancy.tenants IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
        }
        crate::sql::admin_query(
            "INSERT INTO tenancy.tenants (id, slug, name, placement, schema_name) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.as_uuid())
        .bind(slug.as_str())
        .bind(name)
        .bind(new.placement.as_str())
        .bind(schema.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, slug.as_str(), id, None))?;
        // Only a chosen id can be a purged one (a new random v4 is not). After the insert: it
        // waits for a purge of this id still in flight, so this read sees that purge's tombstone.
        if chosen.is_some() {
            let purged: bool = crate::sql::admin_scalar(
                "SELECT EXISTS (SELECT 1 FROM tenancy.purged_tenants WHERE id = $1)",
            )
            .bind(id.as_uuid())
            .fetch_one(&mut *tx)
            .await?;
            if purged {
                return Err(Error::TenantIdPurged(id));
            }
        }
        for (i, host) in hosts.iter().enumerate() {
            crate::sql::admin_query(
                "INSERT INTO tenancy.domains (host, tenant_id, is_primary) VALUES ($1, $2, $3)",
            )
            .bind(host.as_str())
            .bind(id.as_uuid())
            .bind(i == 0)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_unique(e, slug.as_str(), id, Some(host.as_str())))?;
        }
        if let Some(schema) = &schema {
            // The schema, its history and every tenant migration, in the same transaction as
            // the registry row: a failure leaves neither. A spare schema, built ahead by
            // `warm_schemas`, is renamed instead of built; either way one round trip when the
            // schema is at the latest migration.
            if !crate::spare::take(&mut tx, schema, &self.rt.tenant_migrations).await? {
                let script =
                    crate::migrate::fresh_schema_script(schema, &self.rt.tenant_migrations);
                sqlx::raw_sql(crate::sql::text(script))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        Error::Migration(format!("provisioning schema {schema} failed: {e}"))
                    })?;
            }
        }
        let row = crate::sql::admin_query(sql_tenant_by_id())
            .bind(id.as_uuid())
            .fetch_one(&mut *tx)
            .await?;
        let tenant = tenant_from_row(&row)?;
        if let Some((su, _)) = chosen {
            su.audit(&mut tx, "tenant.create_with_id", &[id], Some(slug.as_str()))
                .await?;
        }
        if schema.is_some() {
            // The tenant migrations ran on this connection.
            tx.commit_and_reset().await?;
        } else {
            tx.commit().await?;
        }
        tracing::info!(tenant = %id, slug = slug.as_str(), placement = %new.placement, "created tenant");
        Ok(tenant)
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.rt
    }
}

/// The schema of an own-schema tenant (see [`tenancy_core::home::tenant_schema`]).
pub(crate) fn schema_for(slug: &Slug) -> Result<String> {
    Ok(tenancy_core::home::tenant_schema(slug)?)
}

pub(crate) fn sql_tenant_by_id() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| format!("SELECT {TENANT_COLUMNS} FROM tenancy.tenants t WHERE t.id = $1"))
}

pub(crate) fn sql_all_tenants() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| format!("SELECT {TENANT_COLUMNS} FROM tenancy.tenants t ORDER BY t.slug"))
}

/// Turns unique violations on the registry into the typed errors callers match on.
fn map_unique(e: sqlx::Error, slug: &str, id: TenantId, host: Option<&str>) -> Error {
    let constraint = e
        .as_database_error()
        .filter(|d| d.is_unique_violation())
        .and_then(|d| d.constraint().map(str::to_owned));
    match constraint.as_deref() {
        Some("tenants_slug_key") => Error::SlugTaken(slug.to_owned()),
        Some("tenants_pkey") => Error::TenantIdTaken(id),
        Some("domains_pkey") => Error::HostTaken(host.unwrap_or_default().to_owned()),
        Some("tenants_schema_name_key") => Error::SlugTaken(slug.to_owned()),
        _ => Error::Database(e),
    }
}
