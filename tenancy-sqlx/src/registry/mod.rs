//! The tenant registry: which tenants exist, where their rows live, which hosts they answer to.
//!
//! Resolution is the only way to mint a [`TenantCtx`]: it checks the tenant is active first.

pub(crate) mod cache;
pub(crate) mod notify;
pub(crate) mod schema;
pub(crate) mod store;

use std::sync::Arc;

use sqlx::Row;
use sqlx::postgres::PgRow;
use tenancy_core::{Home, Placement, Slug, TenantId, TenantRef, TenantStatus};
use time::OffsetDateTime;

use crate::ctx::Validity;
use crate::runtime::Runtime;
use crate::superuser::Audit;
use crate::{Error, Result, TenantCtx};

/// A tenant as recorded in the registry. Plain data: holding it grants nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
    pub created_at: OffsetDateTime,
    /// When it was soft-deleted, if it is.
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339::option"))]
    pub deleted_at: Option<OffsetDateTime>,
    /// The hosts it answers to, the primary one first.
    pub hosts: Vec<String>,
    /// Its schema, for the own-schema placement.
    pub schema: Option<String>,
    /// Its database, for the own-database placement.
    pub database: Option<String>,
    /// The key of the server its rows live on (`"primary"`: the registry's).
    pub server: String,
}

impl Tenant {
    /// A reference to this tenant, for a job payload.
    pub fn to_ref(&self) -> TenantRef {
        TenantRef::new(self.id)
    }
}

/// What [`Tenancy::create_tenant`](crate::Tenancy::create_tenant) needs.
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
    pub(crate) slug: String,
    pub(crate) name: String,
    pub(crate) placement: Placement,
    pub(crate) hosts: Vec<String>,
    pub(crate) server: Option<String>,
}

impl NewTenant {
    /// A tenant with this slug and display name, on shared tables, with no hosts yet.
    pub fn new(slug: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            slug: slug.into(),
            name: name.into(),
            placement: Placement::SharedTable,
            hosts: Vec::new(),
            server: None,
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

    /// The server the tenant lives on, by the key the handle maps
    /// ([`TenancyBuilder::server`](crate::TenancyBuilder::server)) and the registry lists
    /// ([`Tenancy::add_server`](crate::Tenancy::add_server)). Default: the primary server, the
    /// registry's. On another server an own-database tenant gets a database there; a
    /// shared-table tenant's rows go to that server's home database, and an own-schema
    /// tenant's schema is made in it (see the README's "Several servers").
    ///
    /// ```
    /// use tenancy_sqlx::{NewTenant, Placement};
    /// let t = NewTenant::new("acme", "Acme Corp")
    ///     .placement(Placement::OwnDatabase)
    ///     .server("eu-2");
    /// ```
    pub fn server(mut self, key: impl Into<String>) -> Self {
        self.server = Some(key.into());
        self
    }
}

const TENANT_COLUMNS: &str = "t.id, t.slug, t.name, t.placement, t.status, t.created_at, t.deleted_at, t.schema_name, \
     t.database_name, t.server, \
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
        database: row.try_get("database_name")?,
        server: row.try_get("server")?,
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

/// `SELECT` of the registry columns a context is minted from ([`mint_active`]), from the
/// tenant `t`. A macro, not a constant, so that `concat!` builds each statement at compile time.
macro_rules! select_ctx_columns {
    () => {
        "SELECT t.id, t.slug, t.name, t.placement, t.status, t.schema_name, t.database_name, t.server"
    };
}

/// The row of tenant `$1` to mint its context from.
pub(crate) const SQL_CTX_BY_ID: &str = concat!(
    select_ctx_columns!(),
    " FROM tenancy.tenants t WHERE t.id = $1"
);

/// The row of the tenant whose slug is `$1`.
pub(crate) const SQL_CTX_BY_SLUG: &str = concat!(
    select_ctx_columns!(),
    " FROM tenancy.tenants t WHERE t.slug = $1"
);

/// The row of the tenant that serves host `$1`.
pub(crate) const SQL_CTX_BY_HOST: &str = concat!(
    select_ctx_columns!(),
    " FROM tenancy.domains d JOIN tenancy.tenants t ON t.id = d.tenant_id WHERE d.host = $1"
);

/// The context of a registry row (`id`, `slug`, `name`, `placement`, `status`, `schema_name`,
/// `database_name`) of an active tenant; the typed refusal otherwise (see [`active`]).
pub(crate) fn mint_active(rt: &Arc<Runtime>, row: &PgRow, validity: Validity) -> Result<TenantCtx> {
    let (id, slug) = active(row)?;
    // A tenant on a server this handle cannot reach is refused here, not at its first
    // statement, and never served from another server.
    let home = home_of(row, rt.databases.as_ref())?;
    Ok(TenantCtx::mint(
        Arc::clone(rt),
        id,
        slug,
        row.try_get("name")?,
        home,
        validity,
    ))
}

/// Reads tenant `id`'s row in `tx` and mints its context if it is active: impersonation's
/// work, under a `Superuser`'s audit. A refusal (unknown, suspended, deleted tenant) is an
/// outcome to record, not a failure of the work: it comes back inside `Ok`, with the audit
/// row that records it as `tenant.impersonate.refused`, so that the row commits and the call
/// still fails.
pub(crate) async fn impersonation(
    tx: &mut sqlx::PgConnection,
    rt: &Arc<Runtime>,
    id: TenantId,
    validity: Validity,
) -> Result<(Result<TenantCtx>, Audit)> {
    let row = crate::sql::admin_query(SQL_CTX_BY_ID)
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
    let minted = match &row {
        None => Err(Error::TenantNotFound(crate::Lookup::Id(id))),
        Some(row) => mint_active(rt, row, validity),
    };
    match minted {
        Ok(ctx) => {
            let audit = Audit::of([id]).detail(ctx.slug());
            Ok((Ok(ctx), audit))
        }
        Err(
            refusal @ (Error::TenantNotFound(_)
            | Error::TenantSuspended { .. }
            | Error::TenantDeleted { .. }),
        ) => {
            let audit = Audit::of([id])
                .action("tenant.impersonate.refused")
                .detail(refusal.to_string());
            Ok((Err(refusal), audit))
        }
        Err(e) => Err(e),
    }
}

/// Where the tenant of a registry row (`placement`, `schema_name`, `database_name`, `server`)
/// lives, as the handle whose tenant databases are `databases` serves it:
/// [`Error::UnsupportedPlacement`] for a row that does not match its placement, or for a
/// tenant on another server of a handle without tenant databases; [`Error::UnknownServer`]
/// for a server the handle has no options for.
pub(crate) fn home_of(
    row: &PgRow,
    databases: Option<&crate::databases::Databases>,
) -> Result<Home> {
    let placement: Placement = row.try_get::<String, _>("placement")?.parse()?;
    let schema: Option<String> = row.try_get("schema_name")?;
    let database: Option<String> = row.try_get("database_name")?;
    let server: String = row.try_get("server")?;
    let home = Home::of(placement, schema.as_deref(), database.as_deref())
        .map_err(|u| Error::UnsupportedPlacement(u.placement))?;
    let primary = server == tenancy_core::home::PRIMARY_SERVER;
    if !primary && !databases.is_some_and(|d| d.knows(&server)) {
        return Err(Error::UnknownServer { server });
    }
    match (home, databases) {
        (Home::OwnDatabase { database, schema }, _) => Ok(Home::OwnDatabase {
            database: database.on_server(&server)?,
            schema,
        }),
        (other, _) if primary => Ok(other),
        (Home::SharedTable, Some(databases)) => Ok(databases.server_home(&server)?),
        (Home::OwnSchema(schema), Some(databases)) => Ok(databases.server_schema(&server, schema)?),
        (other, _) => Err(Error::UnsupportedPlacement(other.placement())),
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
pub(crate) fn map_unique(e: sqlx::Error, slug: &str, id: TenantId, host: Option<&str>) -> Error {
    let constraint = e
        .as_database_error()
        .filter(|d| d.is_unique_violation())
        .and_then(|d| d.constraint().map(str::to_owned));
    match constraint.as_deref().map(unsharded) {
        Some("tenants_slug_key") => Error::SlugTaken(slug.to_owned()),
        Some("tenants_pkey") => Error::TenantIdTaken(id),
        Some("domains_pkey") => Error::HostTaken(host.unwrap_or_default().to_owned()),
        Some("tenants_schema_name_key") => Error::SlugTaken(slug.to_owned()),
        _ => Error::Database(e),
    }
}

/// The registry constraint `name` stands for. On a Citus reference table the violation is
/// raised by a shard, whose constraints carry the shard's id (`tenants_slug_key_102008`).
fn unsharded(name: &str) -> &str {
    const REGISTRY: [&str; 4] = [
        "tenants_slug_key",
        "tenants_pkey",
        "domains_pkey",
        "tenants_schema_name_key",
    ];
    match name.rsplit_once('_') {
        Some((base, shard))
            if !shard.is_empty()
                && shard.bytes().all(|b| b.is_ascii_digit())
                && REGISTRY.contains(&base) =>
        {
            base
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::unsharded;

    #[test]
    fn a_shard_constraint_is_read_as_the_registry_constraint() {
        assert_eq!(unsharded("tenants_slug_key_102008"), "tenants_slug_key");
        assert_eq!(unsharded("domains_pkey_102009"), "domains_pkey");
        assert_eq!(unsharded("tenants_slug_key"), "tenants_slug_key");
        // Only registry names lose a suffix.
        assert_eq!(unsharded("spins_pkey_102009"), "spins_pkey_102009");
        assert_eq!(unsharded("tenants_slug_key_"), "tenants_slug_key_");
        assert_eq!(unsharded("tenants_slug_key_x1"), "tenants_slug_key_x1");
    }
}
