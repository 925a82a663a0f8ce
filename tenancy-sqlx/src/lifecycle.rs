//! Tenant lifecycle: creation, suspend, resume, soft delete, restore, purge, rename, hosts. Each needs a
//! [`Superuser`] and is audited in the same transaction as the change; each clears the
//! resolution cache for the tenant, so this handle sees the change at once, and notifies every
//! other handle on commit (see `registry/notify.rs`).

use sqlx::{PgConnection, Row};
use tenancy_core::{
    Hostname, Placement, Slug, TenantId, TenantName, TenantStatus, ValidationError,
};

use crate::catalog;
use crate::databases::PRIMARY_SERVER;
use crate::registry::notify::{self, Change};
use crate::registry::store;
use crate::registry::{
    NewTenant, Tenant, map_unique, schema_for, sql_tenant_by_id, tenant_from_row,
};
use crate::runtime::Runtime;
use crate::{Error, Lookup, MigrationError, MigrationTarget, Migrations, Result};

/// The lifecycle moves, with the states each may start from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Move {
    Suspend,
    Resume,
    SoftDelete,
    Restore,
}

impl Move {
    pub(crate) fn action(self) -> &'static str {
        match self {
            Self::Suspend => "tenant.suspend",
            Self::Resume => "tenant.resume",
            Self::SoftDelete => "tenant.soft_delete",
            Self::Restore => "tenant.restore",
        }
    }
    pub(crate) fn from(self) -> &'static [&'static str] {
        match self {
            Self::Suspend => &["active"],
            Self::Resume => &["suspended"],
            Self::SoftDelete => &["active", "suspended"],
            Self::Restore => &["deleted"],
        }
    }
    /// What the move tells every handle: a tenant that stops acting takes its held contexts
    /// with it.
    pub(crate) fn change(self) -> Change {
        match self {
            Self::Suspend | Self::SoftDelete => Change::Revoke,
            Self::Resume | Self::Restore => Change::Forget,
        }
    }
    pub(crate) fn to(self) -> TenantStatus {
        match self {
            Self::Suspend => TenantStatus::Suspended,
            Self::Resume | Self::Restore => TenantStatus::Active,
            Self::SoftDelete => TenantStatus::Deleted,
        }
    }
}

/// What [`Tenancy::purge`](crate::Tenancy::purge) removed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Purged {
    /// The tenant's schema, dropped with everything in it.
    Schema(String),
    /// Rows deleted from each shared table, `(table, rows)`.
    Rows(Vec<(String, u64)>),
    /// The tenant's own database, dropped.
    Database(String),
}

/// Moves tenant `id` as `mv` says, in `tx`, from a status the move starts from, and notifies
/// every handle on commit. Returns the tenant as moved.
pub(crate) async fn move_status(
    tx: &mut PgConnection,
    origin: uuid::Uuid,
    id: TenantId,
    mv: Move,
) -> Result<Tenant> {
    let status: Option<String> = crate::sql::admin_scalar(store::TENANT_STATUS_FOR_UPDATE)
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
    let status = status.ok_or(Error::TenantNotFound(Lookup::Id(id)))?;
    if !mv.from().contains(&status.as_str()) {
        return Err(Error::WrongStatus {
            id,
            status: status.parse()?,
            action: mv.action().trim_start_matches("tenant."),
        });
    }
    // Two statements, not a `CASE` around `now()`: Citus refuses that on a reference table
    // (see registry/store.rs).
    match mv.to() {
        TenantStatus::Deleted => {
            crate::sql::admin_query(store::TENANT_SET_DELETED)
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await?
        }
        to => {
            crate::sql::admin_query(store::TENANT_SET_LIVE_STATUS)
                .bind(id.as_uuid())
                .bind(to.as_str())
                .execute(&mut *tx)
                .await?
        }
    };
    notify::send(&mut *tx, origin, mv.change(), id).await?;
    tenant_by_id(tx, id).await
}

/// Purges soft-deleted tenant `id` in `tx`: drops its schema, or deletes its rows from every
/// shared table (children first), then its registry row, and records it as purged; notifies
/// every handle on commit. An own-database tenant's database is left to the caller to drop
/// after the commit ([`Purged::Database`]), on the server whose key comes back with it; one on
/// a server this handle cannot reach is refused ([`Error::UnknownServer`]) before anything is
/// deleted, so that no database is left without its row.
pub(crate) async fn purge(
    tx: &mut PgConnection,
    rt: &Runtime,
    id: TenantId,
) -> Result<(Purged, String)> {
    let row = crate::sql::admin_query(store::TENANT_STATUS_AND_SCHEMA_FOR_UPDATE)
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::TenantNotFound(Lookup::Id(id)))?;
    let status: String = row.try_get("status")?;
    if status != "deleted" {
        return Err(Error::WrongStatus {
            id,
            status: status.parse()?,
            action: "purge",
        });
    }
    let schema: Option<String> = row.try_get("schema_name")?;
    let database: Option<String> = row.try_get("database_name")?;
    let server: String = row.try_get("server")?;
    let current = match (&schema, &database) {
        (Some(_), _) => Placement::OwnSchema,
        (None, Some(_)) => Placement::OwnDatabase,
        (None, None) => Placement::SharedTable,
    };
    let in_home = current != Placement::OwnDatabase && server != crate::databases::PRIMARY_SERVER;
    let schema_here = schema.clone();
    let purged = match (schema, database) {
        // Dropped by the caller once this transaction has removed the registry row: a
        // database cannot be dropped inside a transaction.
        (None, Some(database)) => {
            if !rt.databases()?.knows(&server) {
                return Err(Error::UnknownServer { server });
            }
            // Before the registry row goes: a database that is not the tenant's (a row edited to
            // name another's, or databases swapped) is neither dropped nor left for the cleanup.
            let name = crate::databases::name::DatabaseName::parse(&database)?;
            rt.databases()?.check_identity(id, (&server, &name)).await?;
            Purged::Database(database)
        }
        // Another server's home (its shared tables, or a schema there): below, once
        // everything else that can refuse has.
        _ if in_home => {
            if !rt.databases()?.knows(&server) {
                return Err(Error::UnknownServer { server });
            }
            Purged::Rows(Vec::new())
        }
        (schema, _) => remove_copy(tx, id, schema).await?,
    };
    // A moved tenant's old copy goes with it (and the registry row it hangs on). An old
    // database, no longer named by any row, is left to `cleanup_orphans` (every connect runs it).
    purge_old_copies(tx, rt.databases.as_ref(), id, (current, &server)).await?;
    // A tenant of another server's home: its rows and its line there go in a transaction of
    // that server's (see `databases::home`), committed before the registry row goes here, and
    // last, so that nothing above refuses after they are gone. A failure in between leaves the
    // row, deleted and with nothing left in the home: purging it again finishes.
    let purged = if in_home {
        rt.databases()?
            .purge_from_home(&server, id, schema_here.as_deref())
            .await?
    } else {
        purged
    };
    crate::sql::admin_query(store::TENANT_DELETE)
        .bind(id.as_uuid())
        .execute(&mut *tx)
        .await?;
    crate::sql::admin_query(store::PURGED_INSERT)
        .bind(id.as_uuid())
        .execute(&mut *tx)
        .await?;
    notify::send(&mut *tx, rt.origin, Change::Revoke, id).await?;
    Ok((purged, server))
}

/// Removes one copy of tenant `id`'s rows: `schema` dropped with everything in it, or, without
/// one, the tenant's rows deleted from every shared table (children first).
async fn remove_copy(
    tx: &mut PgConnection,
    id: TenantId,
    schema: Option<String>,
) -> Result<Purged> {
    Ok(match schema {
        Some(schema) => {
            tenancy_core::ident::validate_schema(&schema)?;
            sqlx::raw_sql(crate::sql::text(format!(
                "DROP SCHEMA {} CASCADE",
                tenancy_core::ident::quote(&schema)
            )))
            .execute(&mut *tx)
            .await?;
            Purged::Schema(schema)
        }
        None => {
            crate::rls::act_for(tx, id).await?;
            let mut deleted = Vec::new();
            for table in tenant_tables_children_first(tx, None).await? {
                let done = crate::sql::admin_query(crate::sql::text(format!(
                    "DELETE FROM {} WHERE {} = $1",
                    table.name, table.column
                )))
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await?;
                deleted.push((table.name, done.rows_affected()));
            }
            Purged::Rows(deleted)
        }
    })
}

/// Removes tenant `id`'s old copies (see `crate::moving`) inside `tx`: an old schema is
/// dropped, old rows in the shared tables deleted (in another server's home, through
/// `databases`, in a transaction there, only where the move sealed the tenant's line), an old
/// database's record removed. `current` is the placement the tenant lives on now and the key
/// of its server: its rows are never touched (an old copy on the placement it lives on is one
/// on another server, left by a move between servers). Returns what was purged, and the old
/// databases (server, name), which a database cannot be dropped in a transaction:
/// `purge_old_copy` drops each before `tx` commits, a tenant's purge leaves them to
/// `cleanup_orphans` (no row names them then).
pub(crate) async fn purge_old_copies(
    tx: &mut PgConnection,
    homes: Option<&crate::databases::Databases>,
    id: TenantId,
    (current, current_server): (Placement, &str),
) -> Result<(Vec<Purged>, Vec<(String, String)>)> {
    let olds = crate::sql::admin_query(store::OLD_COPIES_OF_TENANT)
        .bind(id.as_uuid())
        .fetch_all(&mut *tx)
        .await?;
    let mut purged = Vec::with_capacity(olds.len());
    let mut databases = Vec::new();
    for old in olds {
        let placement: Placement = old.try_get::<&str, _>("placement")?.parse()?;
        let server: Option<String> = old.try_get("server")?;
        // On another server than the tenant's (an old copy recorded without one is on the
        // registry's): an old database, or old rows in the shared tables of the registry's
        // server or of another's home.
        let elsewhere = server.as_deref().unwrap_or(PRIMARY_SERVER) != current_server;
        if placement == current && !elsewhere {
            return Err(Error::MoveRefused {
                id,
                reason: format!(
                    "the registry records an old copy on the {placement} placement the tenant \
                     lives on; not purging live rows"
                ),
            });
        }
        let database: Option<String> = old.try_get("database_name")?;
        purged.push(match database {
            Some(database) => {
                databases.push((
                    server.unwrap_or_else(|| PRIMARY_SERVER.to_owned()),
                    database.clone(),
                ));
                Purged::Database(database)
            }
            None => match server.as_deref() {
                Some(home) if home != PRIMARY_SERVER => {
                    let homes = homes.ok_or_else(|| Error::UnknownServer {
                        server: home.to_owned(),
                    })?;
                    let schema: Option<String> = old.try_get("schema_name")?;
                    homes
                        .purge_old_home_copy(home, id, Some((placement, schema.as_deref())))
                        .await?
                }
                _ => remove_copy(tx, id, old.try_get("schema_name")?).await?,
            },
        });
        crate::sql::admin_query(store::OLD_COPY_DELETE)
            .bind(id.as_uuid())
            .bind(placement.as_str())
            .execute(&mut *tx)
            .await?;
    }
    Ok((purged, databases))
}

/// A change to how tenant `id` resolves (its slug, its hosts), in `tx`: locks its row, runs
/// `change`, notifies every handle on commit. Returns the tenant as changed.
pub(crate) async fn change_resolution(
    tx: &mut PgConnection,
    origin: uuid::Uuid,
    id: TenantId,
    change: impl AsyncFnOnce(&mut PgConnection) -> Result<()>,
) -> Result<Tenant> {
    crate::sql::admin_scalar::<uuid::Uuid>(store::TENANT_LOCK)
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::TenantNotFound(Lookup::Id(id)))?;
    change(&mut *tx).await?;
    notify::send(&mut *tx, origin, Change::Forget, id).await?;
    tenant_by_id(tx, id).await
}

/// Sets tenant `id`'s slug.
pub(crate) async fn set_slug(tx: &mut PgConnection, id: TenantId, slug: &Slug) -> Result<()> {
    crate::sql::admin_query(store::TENANT_SET_SLUG)
        .bind(id.as_uuid())
        .bind(slug.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_to(e, Error::SlugTaken(slug.as_str().to_owned())))?;
    Ok(())
}

/// Adds `host` to tenant `id`, as its primary host if `primary`.
pub(crate) async fn add_host(
    tx: &mut PgConnection,
    id: TenantId,
    host: &Hostname,
    primary: bool,
) -> Result<()> {
    if primary {
        crate::sql::admin_query(store::DOMAINS_CLEAR_PRIMARY)
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;
    }
    // Read first, then a plain insert: Citus refuses a subquery in `INSERT ... VALUES` on a
    // reference table. The tenant's row lock holds the answer (see the query).
    let has_primary: bool = crate::sql::admin_scalar(store::TENANT_HAS_PRIMARY_HOST)
        .bind(id.as_uuid())
        .fetch_one(&mut *tx)
        .await?;
    crate::sql::admin_query(store::DOMAIN_INSERT)
        .bind(host.as_str())
        .bind(id.as_uuid())
        .bind(!has_primary)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_to(e, Error::HostTaken(host.as_str().to_owned())))?;
    Ok(())
}

/// Removes `host` from tenant `id`; the first remaining host (by name) becomes primary if it
/// was.
pub(crate) async fn remove_host(
    tx: &mut PgConnection,
    id: TenantId,
    host: &Hostname,
) -> Result<()> {
    let removed = crate::sql::admin_query(store::DOMAIN_DELETE)
        .bind(host.as_str())
        .bind(id.as_uuid())
        .execute(&mut *tx)
        .await?;
    if removed.rows_affected() == 0 {
        return Err(Error::TenantNotFound(Lookup::Host(
            host.as_str().to_owned(),
        )));
    }
    crate::sql::admin_query(store::DOMAINS_ELECT_PRIMARY)
        .bind(id.as_uuid())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn tenant_by_id(tx: &mut PgConnection, id: TenantId) -> Result<Tenant> {
    let row = crate::sql::admin_query(sql_tenant_by_id())
        .bind(id.as_uuid())
        .fetch_one(&mut *tx)
        .await?;
    tenant_from_row(&row)
}

/// `typed` for a unique violation, the database error otherwise.
pub(crate) fn unique_to(e: sqlx::Error, typed: Error) -> Error {
    if e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
    {
        typed
    } else {
        Error::Database(e)
    }
}

/// A table holding a tenant's rows, and the column that says whose.
#[derive(Debug, Clone)]
pub(crate) struct TenantTable {
    pub(crate) oid: i64,
    /// Schema-qualified and quoted.
    pub(crate) name: String,
    /// Where its rows are read and counted (writes name the table): `ONLY` and its name for a
    /// plain table whose inheritance descendants are all tenant tables of the same listing
    /// (each read as itself: through the parent too, their rows would be read twice); its name
    /// otherwise (a partitioned table's rows are its partitions'; descendants outside the
    /// listing have their rows read with the parent's, as the parent's, rather than not at all).
    pub(crate) rows: String,
    /// Set when no way of reading it reads each row once (a copy refuses it: see
    /// [`split_inheritance`]), with a descendant outside the listing: some of its descendants
    /// are in the listing and some are not, at any level, or an outside descendant is also
    /// another listed table's, read through there too.
    pub(crate) split_inheritance: Option<String>,
    /// Its name in its schema, unquoted, as the catalog spells it.
    pub(crate) relname: String,
    /// Quoted: `"tenant_id"`, or the column of its one-column foreign key to the registry.
    pub(crate) column: String,
    /// The column's name, unquoted.
    pub(crate) column_name: String,
}

/// The tables holding a tenant's rows, each listed before the tables it references, so deleting
/// in this order never trips a foreign key (and inserting in the reverse order never does
/// either). With `schema`, the tables of that tenant schema; without, the shared tables in the
/// search path, outside the registry. A table holds tenant rows when it has a `tenant_id`
/// column or a one-column foreign key to `tenancy.tenants` (a model's renamed tenant column).
pub(crate) async fn tenant_tables_children_first(
    conn: &mut sqlx::PgConnection,
    schema: Option<&str>,
) -> Result<Vec<TenantTable>> {
    let tables = crate::sql::admin_query(catalog::TENANT_TABLES)
        .bind(schema)
        .fetch_all(&mut *conn)
        .await?;
    let edges: Vec<(i64, i64)> = crate::sql::admin_query(catalog::FOREIGN_KEY_EDGES)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_>>()?;
    let mut pending: Vec<TenantTable> = tables
        .iter()
        .map(|r| {
            let column_name: String = r.try_get("col")?;
            let name: String = r.try_get("name")?;
            Ok(TenantTable {
                oid: r.try_get("oid")?,
                rows: if r.try_get("plain")? {
                    format!("ONLY {name}")
                } else {
                    name.clone()
                },
                split_inheritance: None,
                name,
                relname: r.try_get("relname")?,
                column: tenancy_core::ident::quote(&column_name),
                column_name,
            })
        })
        .collect::<Result<_>>()?;
    let oids: Vec<i64> = pending.iter().map(|t| t.oid).collect();
    let descendants: Vec<(i64, i64, String)> =
        crate::sql::admin_query(catalog::INHERITANCE_DESCENDANTS)
            .bind(&oids)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_>>()?;
    // Descendants outside the listing, by the listed tables read through to them.
    let mut through: Vec<(i64, &str, i64)> = Vec::new();
    for table in &mut pending {
        let mine = descendants.iter().filter(|(top, ..)| *top == table.oid);
        let (listed, outside): (Vec<_>, Vec<_>) = mine.partition(|(_, d, _)| oids.contains(d));
        match (listed.is_empty(), outside.first()) {
            // Every descendant is read as itself, or there is none.
            (_, None) => {}
            // Outside descendants only: read through, their rows go with its own.
            (true, Some(_)) => {
                table.rows = table.name.clone();
                through.extend(outside.iter().map(|(_, d, n)| (*d, n.as_str(), table.oid)));
            }
            // Some at any level listed, some not (a listed grandchild under an outside
            // child, say): read through, the listed ones twice; alone, the others never.
            (false, Some((_, _, name))) => table.split_inheritance = Some(name.clone()),
        }
    }
    // An outside descendant of two listed tables read through (a child of both, by multiple
    // inheritance) would be read once for each.
    for (i, (d, name, _)) in through.iter().enumerate() {
        if let Some((.., second)) = through[i + 1..].iter().find(|(o, ..)| o == d)
            && let Some(table) = pending.iter_mut().find(|t| t.oid == *second)
        {
            table.split_inheritance = Some((*name).to_owned());
        }
    }
    // Repeatedly take a table no remaining table references; a cycle falls back to name order.
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let referenced = |oid: i64, pending: &[TenantTable]| {
            edges
                .iter()
                .any(|&(child, parent)| parent == oid && pending.iter().any(|t| t.oid == child))
        };
        let pick = pending
            .iter()
            .position(|t| !referenced(t.oid, &pending))
            .unwrap_or(0);
        ordered.push(pending.remove(pick));
    }
    Ok(ordered)
}

/// The first table that cannot be read whole, each row once, and its child outside the
/// listing: a table with inheritance children both among the tenant tables and outside them.
/// A copy (an export, a move) refuses it.
pub(crate) fn split_inheritance(tables: &[TenantTable]) -> Option<(String, String)> {
    tables
        .iter()
        .find_map(|t| Some((t.name.clone(), t.split_inheritance.clone()?)))
}

/// A tenant to create, its input checked: what `create_tenant` and `create_tenant_with_id`
/// write, in one transaction, under an id they choose.
pub(crate) struct Creation {
    slug: Slug,
    name: String,
    hosts: Vec<Hostname>,
    placement: Placement,
    /// The own-schema tenant's schema.
    schema: Option<String>,
    /// The key of the server its rows go to.
    server: String,
}

impl Creation {
    /// Whether the tenant gets a database of its own (created outside the registry's
    /// transaction: see `databases::provision`).
    pub(crate) fn own_database(&self) -> bool {
        self.placement == Placement::OwnDatabase
    }

    /// Whether the tenant goes to the home database of a server other than the registry's
    /// (see `databases::home`): its shared tables there, or an own schema there.
    pub(crate) fn in_server_home(&self) -> bool {
        self.placement != Placement::OwnDatabase && self.server != crate::databases::PRIMARY_SERVER
    }
}

impl Creation {
    /// Validates the slug, name and hosts (a repeated host once), and for an own schema that
    /// the tenant migrations can run: before any connection is taken.
    pub(crate) fn check(new: NewTenant, migrations: &Migrations) -> Result<Self> {
        let slug = Slug::parse(&new.slug)?;
        let name = match TenantName::parse(&new.name) {
            Ok(name) => name.as_str().to_owned(),
            Err(ValidationError::Name { reason, .. }) => return Err(Error::InvalidName(reason)),
            Err(e) => return Err(e.into()),
        };
        let mut hosts: Vec<Hostname> = Vec::with_capacity(new.hosts.len());
        for host in &new.hosts {
            let host = Hostname::parse(host)?;
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        let schema = match new.placement {
            Placement::SharedTable | Placement::OwnDatabase => None,
            Placement::OwnSchema => Some(schema_for(&slug)?),
            other => return Err(Error::UnsupportedPlacement(other)),
        };
        let server = match new.server {
            None => crate::databases::PRIMARY_SERVER.to_owned(),
            Some(key) => {
                tenancy_core::home::validate_server_key(&key)?;
                key
            }
        };
        // Everything but the registry's shared tables runs the tenant migrations on creation
        // (another server's shared tables are brought up to date when a tenant enters them).
        if new.placement != Placement::SharedTable || server != crate::databases::PRIMARY_SERVER {
            migrations.check_runnable()?;
        }
        Ok(Self {
            slug,
            name,
            hosts,
            placement: new.placement,
            schema,
            server,
        })
    }

    pub(crate) fn slug(&self) -> &str {
        self.slug.as_str()
    }

    /// The key of the server the tenant goes to.
    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    /// Whether writing it runs the tenant migrations on the connection (which is then reset):
    /// an own schema in the registry's database.
    pub(crate) fn runs_migrations(&self) -> bool {
        self.schema.is_some() && self.server == crate::databases::PRIMARY_SERVER
    }

    /// The own schema the tenant gets (in the registry's database, or in its server's home).
    pub(crate) fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Writes the tenant, its domains and (own schema) its migrated schema in `tx`; `chosen`
    /// says `id` was given by the caller, so it may be a purged tenant's. `database` is an
    /// own-database tenant's database, already made.
    pub(crate) async fn write(
        &self,
        tx: &mut PgConnection,
        id: TenantId,
        chosen: bool,
        migrations: &Migrations,
        database: Option<&str>,
    ) -> Result<Tenant> {
        let slug = self.slug.as_str();
        // The schema this transaction builds: one in the registry's database (another server's
        // is built in its home before this runs, see `databases::home`).
        let build = self.schema.as_ref().filter(|_| self.runs_migrations());
        if build.is_some() {
            // Tenant migrations commonly reference the registry (`REFERENCES tenancy.tenants`),
            // and adding that foreign key locks the registry against inserts. Two creations that
            // each insert their row first, then build their schema, wait on each other: a
            // deadlock. Taking that lock first makes concurrent creations queue instead. Reads
            // (resolution) are not blocked.
            crate::sql::admin_query(store::LOCK_TENANTS_FOR_CREATION)
                .execute(&mut *tx)
                .await?;
        }
        crate::sql::admin_query(store::TENANT_INSERT)
            .bind(id.as_uuid())
            .bind(slug)
            .bind(&self.name)
            .bind(self.placement.as_str())
            .bind(self.schema.as_deref())
            .bind(database)
            .bind(&self.server)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                self.unknown_server(e)
                    .unwrap_or_else(|e| map_unique(e, slug, id, None))
            })?;
        // Only a chosen id can be a purged one (a new random v4 is not). After the insert: it
        // waits for a purge of this id still in flight, so this read sees that purge's tombstone.
        if chosen {
            let purged: bool = crate::sql::admin_scalar(store::TENANT_ID_WAS_PURGED)
                .bind(id.as_uuid())
                .fetch_one(&mut *tx)
                .await?;
            if purged {
                return Err(Error::TenantIdPurged(id));
            }
        }
        for (i, host) in self.hosts.iter().enumerate() {
            crate::sql::admin_query(store::DOMAIN_INSERT)
                .bind(host.as_str())
                .bind(id.as_uuid())
                .bind(i == 0)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_unique(e, slug, id, Some(host.as_str())))?;
        }
        if let Some(schema) = build {
            // The schema, its history and every tenant migration, in the same transaction as
            // the registry row: a failure leaves neither. A spare schema, built ahead by
            // `warm_schemas`, is renamed instead of built; either way one round trip when the
            // schema is at the latest migration.
            if !crate::spare::take(&mut *tx, schema, migrations).await? {
                let script = crate::migrate::fresh_schema_script(schema, migrations);
                sqlx::raw_sql(crate::sql::text(script))
                    .execute(&mut *tx)
                    .await
                    .map_err(|source| MigrationError::Provision {
                        target: Box::new(MigrationTarget::Tenant {
                            id,
                            slug: self.slug.as_str().to_owned(),
                            schema: schema.clone(),
                        }),
                        source,
                    })?;
            }
        }
        tenant_by_id(tx, id).await
    }

    /// The typed error for a creation that failed with `e`, once its transaction is gone. A
    /// unique violation names its constraint, and `write` maps it; Citus re-raises a worker's
    /// without the name, and then the registry says which value another tenant holds.
    pub(crate) async fn taken(&self, rt: &Runtime, id: TenantId, e: Error) -> Error {
        let Error::Database(db) = &e else {
            return e;
        };
        let unnamed = db
            .as_database_error()
            .is_some_and(|d| d.is_unique_violation() && d.constraint().is_none());
        if !unnamed {
            return e;
        }
        let hosts: Vec<&str> = self.hosts.iter().map(Hostname::as_str).collect();
        let found = rt
            .with_conn(async |conn| {
                let row = crate::sql::admin_query(store::TENANT_VALUES_TAKEN)
                    .bind(id.as_uuid())
                    .bind(self.slug.as_str())
                    .bind(self.schema.as_deref())
                    .bind(&hosts)
                    .fetch_one(conn)
                    .await?;
                Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
            })
            .await;
        match found {
            Ok((true, _, _)) => Error::TenantIdTaken(id),
            Ok((_, true, _)) => Error::SlugTaken(self.slug.as_str().to_owned()),
            Ok((_, _, Some(host))) => Error::HostTaken(host),
            _ => e,
        }
    }

    /// [`Error::UnknownServer`] for an insert refused because the registry does not list the
    /// tenant's server (the foreign key to `tenancy.servers`); the error back otherwise.
    fn unknown_server(&self, e: sqlx::Error) -> std::result::Result<Error, sqlx::Error> {
        let fk = e.as_database_error().is_some_and(|d| {
            d.is_foreign_key_violation() && d.constraint() == Some("tenants_server_fkey")
        });
        if fk {
            Ok(Error::UnknownServer {
                server: self.server.clone(),
            })
        } else {
            Err(e)
        }
    }

    /// The line a creation leaves in the log, once committed.
    pub(crate) fn log(&self, id: TenantId) {
        tracing::info!(tenant = %id, slug = self.slug.as_str(), placement = %self.placement, "created tenant");
    }
}
