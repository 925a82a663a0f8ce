//! Server homes: where the shared-table tenants of a server other than the registry's live.
//!
//! On the registry's server the shared tables are the registry database's. Another server has
//! no registry, so its shared-table tenants get one database there, its home
//! (`tenancy_<tag>_home_<key>`, see `Naming::server_home`), made like an own database (the
//! tenant migrations in `public`, with their history; `tenancy.tenants` and the write fence),
//! except that its `tenancy.tenants` lists every tenant placed there and says whose home it is
//! (`budget::SERVER_HOME_MARK`, the table's comment). Each table holds several tenants' rows,
//! told apart by the tenant column as on the registry's server; every statement binds the
//! tenant, and a connection is lent for a tenant only once the database said it is the home
//! of the server the registry names and lists the tenant (`budget::identity`).
//!
//! The order, as for an own database: the home exists (made under a build name, then renamed,
//! so that a half-made one is never used) and lists the tenant before the registry row is
//! written; a purge removes the tenant's rows and its line in the home before the registry row
//! goes. A crash in between leaves a line without a registry row and without rows, which no
//! context can reach (resolution reads the registry) and [`Databases::cleanup_home`] removes
//! (`cleanup_orphans` runs it).

use sqlx::{Connection, PgConnection, PgPool};
use tenancy_core::TenantId;

use super::budget::SERVER_HOME_MARK;
use super::name::DatabaseName;
use super::{Databases, exists, provision, run};
use crate::lifecycle::Purged;
use crate::migrate::{Migrations, Target, apply};
use crate::{Error, Result};

/// What makes a tenant database (just migrated, no tenant yet) a server's home: more than one
/// tenant, a line saying where in the home each one lives (`schema_name`: its own schema, or
/// NULL for the shared tables in `public`), the home's write fence ([`HOME_FENCE_DDL`]), and
/// the mark. The key is a validated server key (letters, digits, `-`): safe as a literal.
fn home_ddl(server: &str) -> String {
    format!(
        "DROP INDEX IF EXISTS tenancy.tenants_one_row; \
         {HOME_FENCE_DDL} \
         COMMENT ON TABLE tenancy.tenants IS '{SERVER_HOME_MARK}{server}'"
    )
}

/// The write fence of a server home: an own database's (`provision::FENCE_DDL`), except that
/// the home a write goes to must be the one the tenant's line names. A write to the shared
/// tables (`public`, fenced as `'own_database'`, see `sql::fence`) passes only for a line
/// without a schema, one to an own schema only for the line naming that schema: a context
/// resolved for one stay of the tenant in the home never writes through a later stay's line
/// of the other kind. Not formatted: a move compares the functions with this text.
#[rustfmt::skip]
pub(crate) const HOME_FENCE_DDL: &str = concat!(
    "
ALTER TABLE tenancy.tenants ADD COLUMN IF NOT EXISTS moved_at timestamptz;
ALTER TABLE tenancy.tenants ADD COLUMN IF NOT EXISTS schema_name text UNIQUE;

",
    crate::sql::fence::fence_functions!(
    create: "CREATE OR REPLACE",
    security: "",
    row_comment: "    -- The tenant's line before the fence key: a mover locks them in that order.",
    home_gone: "NOT EXISTS (
        SELECT FROM tenancy.tenants t
        WHERE t.id OPERATOR(pg_catalog.=) p_tenant AND t.moved_at IS NULL
          AND CASE p_placement
                WHEN 'own_database' THEN t.schema_name IS NULL
                WHEN 'own_schema' THEN t.schema_name OPERATOR(pg_catalog.=) p_schema
                ELSE false
              END
    )",
    )
);

/// The mark a home's `tenancy.tenants` carries, read on `conn`.
async fn mark(conn: &mut PgConnection) -> Result<Option<String>> {
    Ok(crate::sql::in_own_tx(conn, async |c| {
        sqlx::query_scalar(
            "SELECT pg_catalog.obj_description(to_regclass('tenancy.tenants'), 'pg_class')",
        )
        .persistent(false)
        .fetch_one(c)
        .await
    })
    .await?)
}

impl Databases {
    /// The home database of server `server`, made at the latest of `migrations` (the tenant
    /// migrations) if it does not exist. Idempotent; two callers racing make it once.
    ///
    /// # Errors
    /// [`Error::UnknownServer`]; [`Error::Migration`] when a tenant migration fails there (a
    /// new home is then dropped); [`Error::WrongDatabase`] when a database of the home's name
    /// is not marked as that server's home; [`Error::Database`].
    pub(crate) async fn ensure_server_home(
        &self,
        pool: &PgPool,
        server: &str,
        migrations: &Migrations,
    ) -> Result<DatabaseName> {
        let home = self.naming.server_home(server);
        let options = self.server(server)?.options.clone();
        self.with_admin(pool, server, async |admin| {
            if exists(&mut *admin, &home).await? {
                return Ok(());
            }
            let build = self.naming.template_build();
            // Its name's lock, held in a registry transaction until the build is renamed: the
            // cleanup drops a build no one holds, never this one.
            let mut hold =
                crate::conn::Conn::begin(pool, sqlx::SqlStr::from_static("BEGIN")).await?;
            provision::lock_name(&mut hold, &build).await?;
            run(&mut *admin, format!("CREATE DATABASE {}", build.quoted())).await?;
            let made = async {
                provision::migrate(&options, &build, migrations).await?;
                let mut conn =
                    PgConnection::connect_with(&options.clone().database(build.as_str())).await?;
                let marked = sqlx::raw_sql(crate::sql::text(home_ddl(server)))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
                marked?;
                provision::end_sessions(&mut *admin, &build).await?;
                Ok::<(), Error>(())
            }
            .await;
            let renamed = match made {
                Ok(()) => {
                    run(
                        &mut *admin,
                        format!(
                            "ALTER DATABASE {} RENAME TO {}",
                            build.quoted(),
                            home.quoted()
                        ),
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = renamed {
                provision::drop_database(&mut *admin, &build)
                    .await
                    .map_err(|e| Error::Provision(e.to_string()))?;
                // Another process made the same home meanwhile: that one serves.
                if !exists(&mut *admin, &home).await? {
                    return Err(e);
                }
            }
            hold.commit().await?;
            Ok(())
        })
        .await?;
        // An existing home is left as it is: as the registry's shared tables, it is migrated
        // by `migrate_tenants` (one creation never runs a deploy's migrations on every tenant
        // of the server).
        Ok(home)
    }

    /// Runs `work` in one transaction on a direct connection to server `server`'s home
    /// (outside the budget: admin work), committed if it succeeds; the connection is closed
    /// afterwards. The database must carry the mark of that server's home.
    ///
    /// # Errors
    /// [`Error::WrongDatabase`] for a database not marked as that home (no tenant named);
    /// [`Error::UnknownServer`]; what `work` returns.
    pub(crate) async fn in_home<T>(
        &self,
        server: &str,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<T> {
        let home = self.naming.server_home(server);
        let mut conn = self.connect(server, &home).await?;
        let out = async {
            let expected = format!("{SERVER_HOME_MARK}{server}");
            let found = mark(&mut conn).await?;
            if found.as_deref() != Some(expected.as_str()) {
                return Err(Error::Provision(format!(
                    "database {home} on server {server} is not marked as that server's home \
                     (its tenancy.tenants says {found:?}): left as it is"
                )));
            }
            let mut tx = conn.begin().await?;
            let out = work(&mut tx).await?;
            tx.commit().await?;
            Ok(out)
        }
        .await;
        let _ = conn.close().await;
        out
    }

    /// Lists `tenant` in server `server`'s home (made by [`Databases::ensure_server_home`]):
    /// before its registry row is written, so that no row names a home that does not list it.
    /// With `schema` (the schema's name and the tenant migrations), the tenant's own schema is
    /// made there in the same transaction, its history and every migration with it: the line
    /// and the schema come together or not at all. The caller holds [`lock_line`] in the
    /// registry transaction that writes the row, from before this call until it commits, so
    /// that the cleanup does not take the line for a crash's leftover meanwhile.
    ///
    /// # Errors
    /// As [`Databases::in_home`]; [`Error::TenantIdTaken`] when the home lists the id already;
    /// [`Error::SlugTaken`] when a line there names the schema already; [`Error::Provision`]
    /// when a schema of that name is there already without a line;
    /// [`Error::Migration`] when a tenant migration fails in the new schema.
    pub(crate) async fn enter_home(
        &self,
        server: &str,
        (tenant, slug): (TenantId, &str),
        schema: Option<(&str, &Migrations)>,
        pending: bool,
    ) -> Result<()> {
        self.in_home(server, async |tx| {
            if schema.is_some() {
                // The tenant migrations commonly reference the lines (`REFERENCES
                // tenancy.tenants`), and adding that key locks them against inserts: two
                // creations that each insert their line, then build their schema, would wait on
                // each other. Taken first, creations queue instead; writers are not blocked.
                sqlx::query("LOCK TABLE tenancy.tenants IN SHARE ROW EXCLUSIVE MODE")
                    .persistent(false)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO tenancy.tenants (id, slug, schema_name, moved_at) \
                 VALUES ($1, $2, $3, CASE WHEN $4 THEN '-infinity'::timestamptz END)",
            )
            .persistent(false)
            .bind(tenant.as_uuid())
            .bind(slug)
            .bind(schema.map(|(name, _)| name))
            .bind(pending)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                let taken = e
                    .as_database_error()
                    .filter(|d| d.is_unique_violation())
                    .map(|d| d.constraint() == Some("tenants_schema_name_key"));
                match taken {
                    // The schema name comes from the slug: another line holds it (a
                    // tenant of that slug, or its old copy awaiting purge).
                    Some(true) => Error::SlugTaken(slug.to_owned()),
                    Some(false) => Error::TenantIdTaken(tenant),
                    None => Error::Database(e),
                }
            })?;
            let Some((name, migrations)) = schema else {
                return Ok(());
            };
            tenancy_core::ident::validate_schema(name)?;
            let script = crate::migrate::fresh_schema_script(name, migrations);
            sqlx::raw_sql(crate::sql::text(script))
                .execute(&mut *tx)
                .await
                .map_err(|source| {
                    if source
                        .as_database_error()
                        .is_some_and(|d| d.code().as_deref() == Some("42P06"))
                    {
                        return Error::Provision(format!(
                            "schema {name} is already in the home database of server {server}, \
                             with no line for it: left as it is, the tenant not made"
                        ));
                    }
                    crate::error::MigrationError::Provision {
                        target: Box::new(crate::migrate::MigrationTarget::ServerSchema {
                            id: tenant,
                            slug: slug.to_owned(),
                            schema: name.to_owned(),
                            server: server.to_owned(),
                        }),
                        source,
                    }
                    .into()
                })?;
            Ok(())
        })
        .await
    }

    /// Makes tenant `id`'s pending line in server `server`'s home live (see [`ACTIVATE`]) if
    /// the registry places the tenant there (in schema `place`, when given: `None` for the
    /// shared tables); returns whether a line went live.
    ///
    /// The registry's row is read `FOR SHARE` in a transaction held until the home's update
    /// commits. A move locks the row (`FOR NO KEY UPDATE`) from its start to its switch and
    /// writes its pending line in between, so none is in flight while this runs: the line
    /// made live is the one of the stay the registry records, never the pending line of a later
    /// move back into this home before that move's switch (which a late caller, a mover stalled
    /// after its commit or a cleanup that read the registry earlier, would otherwise open to a
    /// context of the earlier stay). The home is connected to first, so that the registry's row
    /// is not held while a server is slow to answer.
    ///
    /// `wait`: whether to wait for a move in flight; without, a row a move holds is taken for
    /// one not placed here (nothing to do), and the home's line is waited for 5 seconds at
    /// most.
    ///
    /// # Errors
    /// As [`Databases::in_home`]; [`Error::Database`] on the registry.
    pub(crate) async fn activate_line(
        &self,
        pool: &PgPool,
        (server, place): (&str, Option<Option<&str>>),
        id: TenantId,
        wait: bool,
    ) -> Result<bool> {
        let (live, registry) = self
            .in_home(server, async |home| {
                // READ COMMITTED whatever the registry's default: a row read after waiting for
                // a move is its committed version, not a serialization failure.
                let mut registry = crate::conn::Conn::begin(
                    pool,
                    sqlx::SqlStr::from_static("BEGIN ISOLATION LEVEL READ COMMITTED"),
                )
                .await?;
                let sql = if wait {
                    SQL_LIVES_HERE_LOCKED
                } else {
                    SQL_LIVES_HERE_UNLESS_LOCKED
                };
                let found: Option<Option<String>> = sqlx::query_scalar(sql)
                    .persistent(false)
                    .bind(id.as_uuid())
                    .bind(server)
                    .fetch_optional(&mut *registry)
                    .await?;
                let schema = match (found, place) {
                    (Some(schema), None) => Some(schema),
                    (Some(schema), Some(want)) if schema.as_deref() == want => Some(schema),
                    _ => None,
                };
                let Some(schema) = schema else {
                    registry.rollback().await?;
                    return Ok((false, None));
                };
                if !wait {
                    sqlx::query("SET LOCAL lock_timeout = '5s'")
                        .persistent(false)
                        .execute(&mut *home)
                        .await?;
                }
                let live = make_live(&mut *home, id, schema.as_deref()).await?;
                Ok((live, Some(registry)))
            })
            .await?;
        // The home committed first: the registry's row was held until the line was live.
        if let Some(registry) = registry {
            registry.commit().await?;
        }
        Ok(live)
    }

    /// Removes the lines of server `server`'s home that the registry keeps no rows for (no
    /// tenant living there, no old copy recorded there) and no creation or move in flight
    /// holds ([`lock_line`]): a crash's leftovers between listing a tenant and registering it
    /// (they hold no rows: nothing could write them), and sealed old copies whose record was
    /// forgotten (`forget_old_copy`). A line of a registered tenant that is not sealed is kept
    /// (a move into the home cut off before its switch: the next run of the move removes it).
    /// A pending line of a tenant the registry places here (a move cut off after its switch)
    /// is made live ([`Databases::activate_line`]). Returns the tenants removed.
    ///
    /// # Errors
    /// As [`Databases::in_home`]; [`Error::Database`] on the registry.
    pub(crate) async fn cleanup_home(&self, pool: &PgPool, server: &str) -> Result<Vec<TenantId>> {
        let mut removed = Vec::new();
        let listed = self.home_tenants(server).await?;
        if listed.is_empty() {
            return Ok(removed);
        }
        let ids: Vec<uuid::Uuid> = listed.iter().map(TenantId::as_uuid).collect();
        // One registry read for all lines; each unregistered one is looked at again under its
        // lock below.
        let registered: Vec<uuid::Uuid> = crate::conn::Conn::with(pool, async |c| {
            Ok(sqlx::query_scalar(SQL_KEPT_HERE)
                .persistent(false)
                .bind(&ids)
                .bind(server)
                .fetch_all(c)
                .await?)
        })
        .await?;
        // Pending lines of tenants the registry now places here: a move that committed and was
        // cut off before it made the line live. Each is looked at again under the registry's
        // lock (a move back into the home may have begun since the read above).
        // A move in flight is not waited for (its line is pending until its switch, and its
        // own activation follows it): this runs at every handle's start.
        let pending = self.pending_lines(server).await?;
        for tenant in pending {
            self.activate_line(pool, (server, None), tenant, false)
                .await?;
        }
        for tenant in listed
            .into_iter()
            .filter(|t| !registered.contains(&t.as_uuid()))
        {
            let mut tx = crate::conn::Conn::begin(pool, sqlx::SqlStr::from_static("BEGIN")).await?;
            let free: bool = sqlx::query_scalar(
                "SELECT pg_try_advisory_xact_lock(hashtext('tenancy.home_line'), \
                 pg_catalog.uuid_hash($1))",
            )
            .persistent(false)
            .bind(tenant.as_uuid())
            .fetch_one(&mut *tx)
            .await?;
            let registered: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT FROM tenancy.tenants WHERE id = $1)")
                    .persistent(false)
                    .bind(tenant.as_uuid())
                    .fetch_one(&mut *tx)
                    .await?;
            let kept: Option<uuid::Uuid> = sqlx::query_scalar(SQL_KEPT_HERE)
                .persistent(false)
                .bind(vec![tenant.as_uuid()])
                .bind(server)
                .fetch_optional(&mut *tx)
                .await?;
            if free && kept.is_none() {
                if !registered {
                    self.leave_home(server, tenant).await?;
                    removed.push(tenant);
                } else if self.sealed_line(server, tenant).await? {
                    // Registered elsewhere, and sealed here by a move out whose old-copy
                    // record was forgotten (`forget_old_copy`): no one's home, nothing kept.
                    self.purge_old_home_copy(server, tenant, None).await?;
                    removed.push(tenant);
                }
            }
            tx.commit().await?;
        }
        Ok(removed)
    }

    /// Removes `tenant` from server `server`'s home, in one transaction there: waits for its
    /// writes in flight (the write fence's key, taken exclusive, so none lands meanwhile),
    /// drops its own schema there (a line naming one) or deletes its rows from every shared
    /// table there, children first, then its line (so that a write of a context resolved before
    /// fails with `TM002` once it gets the key). Returns what was removed. A home that does not
    /// exist, or no longer lists the tenant, leaves nothing to remove but rows in its shared
    /// tables.
    ///
    /// # Errors
    /// As [`Databases::in_home`]; [`Error::Database`].
    pub(crate) async fn leave_home(&self, server: &str, tenant: TenantId) -> Result<Purged> {
        self.remove_from_home(server, tenant, Removal::Live(None))
            .await
    }

    /// [`Databases::leave_home`] for a purge, which the registry says where in the home the
    /// tenant lives: `schema`, its own schema there, or `None` for the shared tables. A line
    /// that says otherwise is refused (edited by hand, it could name another schema to drop),
    /// and a missing line does not hide the schema: it is dropped all the same.
    ///
    /// # Errors
    /// As [`Databases::leave_home`]; [`Error::Provision`] for a line that names another place.
    pub(crate) async fn purge_from_home(
        &self,
        server: &str,
        tenant: TenantId,
        schema: Option<&str>,
    ) -> Result<Purged> {
        self.remove_from_home(server, tenant, Removal::Live(Some(schema)))
            .await
    }

    /// [`Databases::leave_home`] for the old copy a move left in the home: out of the home
    /// (the tenant's line sealed: its place goes with the line), or, with `old` (the old
    /// copy's placement and schema as the registry records them), between the shared tables
    /// and an own schema of this home (the line, live, names the other place: only the old
    /// place goes). Anything else is refused: a live line's place serves the tenant.
    ///
    /// # Errors
    /// As [`Databases::leave_home`]; [`Error::MoveRefused`] for a live place.
    pub(crate) async fn purge_old_home_copy(
        &self,
        server: &str,
        tenant: TenantId,
        old: Option<(tenancy_core::Placement, Option<&str>)>,
    ) -> Result<Purged> {
        self.remove_from_home(server, tenant, Removal::Old(old))
            .await
    }

    async fn remove_from_home(
        &self,
        server: &str,
        tenant: TenantId,
        removal: Removal<'_>,
    ) -> Result<Purged> {
        if let Removal::Old(old) = removal {
            return self.remove_old_place(server, tenant, old).await;
        }
        let Removal::Live(expected) = removal else {
            unreachable!("matched above")
        };
        self.in_home(server, async |tx| {
            lock_fence_key(tx, tenant).await?;
            let line = line_of(tx, tenant, "FOR UPDATE").await?;
            let named = line.map(|(_, schema)| schema);
            let schema = match (expected, named) {
                (None, named) => named.flatten(),
                (Some(registry), None) => registry.map(str::to_owned),
                (Some(registry), Some(named)) if registry == named.as_deref() => named,
                (Some(registry), Some(named)) => {
                    return Err(Error::Provision(format!(
                        "the line of tenant {tenant} in the home database of server {server} \
                         names schema {named:?}, the registry {registry:?}: left as it is"
                    )));
                }
            };
            let purged = match schema {
                Some(schema) => drop_tenant_schema(tx, (server, tenant), &schema).await?,
                None => delete_shared_rows(tx, tenant).await?,
            };
            // Last: the tables may reference it. Writers wait for this transaction on the
            // fence's key, then find no line and fail.
            delete_line(tx, tenant).await?;
            Ok(purged)
        })
        .await
    }

    /// Removes an old copy of `tenant` from the home, as the registry records it (`old`: its
    /// placement and schema; `None` from the cleanup, for a sealed line whose record is gone):
    ///
    /// - an old schema a move inside the home renamed after the tenant (the record names it):
    ///   dropped, the line left to the tenant's place;
    /// - old rows in the shared tables: deleted, and the line with them when a move out sealed
    ///   it and it names no schema (one that names a schema is that schema's old copy);
    /// - an own schema a move out of the home left (sealed line naming it): dropped, with the
    ///   line.
    ///
    /// A live line's place is never removed. Removing the other place of a live line takes no
    /// write fence (the tenant's writes go on) and holds the line shared only.
    async fn remove_old_place(
        &self,
        server: &str,
        tenant: TenantId,
        old: Option<(tenancy_core::Placement, Option<&str>)>,
    ) -> Result<Purged> {
        let refuse = |what: &str| Error::MoveRefused {
            id: tenant,
            reason: format!(
                "its line in the home database of server {server} is not sealed by a move and \
                 names {what}: the rows there are live; not purging them"
            ),
        };
        self.in_home(server, async |tx| {
            if let Some((_, Some(schema))) = old {
                // Only the schema named after this tenant, whatever a record says.
                if schema != tenancy_core::home::old_copy_schema(tenant) {
                    return Err(Error::Provision(format!(
                        "the old copy of tenant {tenant} in the home database of server \
                         {server} is recorded as schema {schema}, which is not its old \
                         schema: left as it is"
                    )));
                }
                sqlx::raw_sql(crate::sql::text(format!(
                    "DROP SCHEMA IF EXISTS {} CASCADE",
                    tenancy_core::ident::quote(schema)
                )))
                .execute(&mut *tx)
                .await?;
                return Ok(Purged::Schema(schema.to_owned()));
            }
            let peek = line_of(tx, tenant, "").await?;
            let live = peek.as_ref().is_some_and(|(sealed, _)| !sealed);
            if live {
                let line = line_of(tx, tenant, "FOR SHARE").await?;
                return match (old, line) {
                    (Some((tenancy_core::Placement::SharedTable, _)), Some((false, Some(_)))) => {
                        delete_shared_rows(tx, tenant).await
                    }
                    (_, Some((false, named))) => Err(refuse(&format!("{named:?}"))),
                    // Sealed or gone meanwhile: the next purge looks again.
                    _ => Err(refuse("a place that changed meanwhile")),
                };
            }
            lock_fence_key(tx, tenant).await?;
            let line = line_of(tx, tenant, "FOR UPDATE").await?;
            let named = match line {
                Some((false, named)) => return Err(refuse(&format!("{named:?}"))),
                Some((true, named)) => named,
                None => None,
            };
            let purged = match (old, named) {
                // Old shared rows; a line naming a schema is that schema's old copy's.
                (Some((tenancy_core::Placement::SharedTable, _)), Some(_)) => {
                    return delete_shared_rows(tx, tenant).await;
                }
                (_, Some(schema)) => drop_tenant_schema(tx, (server, tenant), &schema).await?,
                (_, None) => delete_shared_rows(tx, tenant).await?,
            };
            delete_line(tx, tenant).await?;
            Ok(purged)
        })
        .await
    }

    /// The tenants server `server`'s home lists (none when it has no home).
    ///
    /// # Errors
    /// As [`Databases::in_home`].
    pub(crate) async fn home_tenants(&self, server: &str) -> Result<Vec<TenantId>> {
        if !self.home_exists(server).await? {
            return Ok(Vec::new());
        }
        self.in_home(server, async |tx| {
            let ids: Vec<uuid::Uuid> =
                sqlx::query_scalar("SELECT id FROM tenancy.tenants ORDER BY id")
                    .persistent(false)
                    .fetch_all(&mut *tx)
                    .await?;
            Ok(ids.into_iter().map(TenantId::from_uuid).collect())
        })
        .await
    }

    /// Whether server `server`'s home database exists (it is made with the first tenant there).
    ///
    /// # Errors
    /// [`Error::UnknownServer`]; [`Error::Database`] reaching the server.
    pub(crate) async fn home_exists(&self, server: &str) -> Result<bool> {
        let home = self.naming.server_home(server);
        self.with_direct_admin(server, async |admin| exists(admin, &home).await)
            .await
    }

    /// The tenants whose lines in server `server`'s home are pending (see [`ACTIVATE`]).
    async fn pending_lines(&self, server: &str) -> Result<Vec<TenantId>> {
        self.in_home(server, async |tx| {
            let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
                "SELECT id FROM tenancy.tenants WHERE moved_at = '-infinity'::timestamptz",
            )
            .persistent(false)
            .fetch_all(&mut *tx)
            .await?;
            Ok(ids.into_iter().map(TenantId::from_uuid).collect())
        })
        .await
    }

    /// Whether server `server`'s home holds a line of `tenant` that a move out sealed.
    async fn sealed_line(&self, server: &str, tenant: TenantId) -> Result<bool> {
        self.in_home(server, async |tx| {
            let sealed: Option<bool> = sqlx::query_scalar(
                "SELECT moved_at IS NOT NULL FROM tenancy.tenants WHERE id = $1",
            )
            .persistent(false)
            .bind(tenant.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
            Ok(sealed == Some(true))
        })
        .await
    }

    /// The versions applied in server `server`'s home (its shared tables).
    ///
    /// # Errors
    /// As [`Databases::in_home`].
    pub(crate) async fn applied_in_home(&self, server: &str) -> Result<Vec<i64>> {
        self.applied_in(server, "public.tenancy_migrations".to_owned())
            .await
    }

    /// The versions applied in each of `schemas` of server `server`'s home (own-schema
    /// tenants' there), in order: on one connection, a few hundred histories per statement.
    ///
    /// # Errors
    /// As [`Databases::in_home`]; [`Error::Invalid`] for a schema name that is not one.
    pub(crate) async fn applied_in_home_schemas(
        &self,
        server: &str,
        schemas: &[&str],
    ) -> Result<Vec<Vec<i64>>> {
        let mut histories = Vec::with_capacity(schemas.len());
        for schema in schemas {
            tenancy_core::ident::validate_schema(schema)?;
            histories.push(format!(
                "{}.tenancy_migrations",
                tenancy_core::ident::quote(schema)
            ));
        }
        self.in_home(server, async |tx| {
            let mut applied = vec![Vec::new(); histories.len()];
            for (chunk, batch) in histories.chunks(crate::migrate::PENDING_BATCH).enumerate() {
                let at = chunk * crate::migrate::PENDING_BATCH;
                let sql = batch
                    .iter()
                    .enumerate()
                    .map(|(i, h)| format!("SELECT {}::int4, version FROM {h}", at + i))
                    .collect::<Vec<_>>()
                    .join(" UNION ALL ");
                let rows: Vec<(i32, i64)> = sqlx::query_as(crate::sql::text(sql))
                    .persistent(false)
                    .fetch_all(&mut *tx)
                    .await?;
                for (target, version) in rows {
                    if let Some(v) = usize::try_from(target)
                        .ok()
                        .and_then(|t| applied.get_mut(t))
                    {
                        v.push(version);
                    }
                }
            }
            Ok(applied)
        })
        .await
    }

    async fn applied_in(&self, server: &str, history: String) -> Result<Vec<i64>> {
        self.in_home(server, async |tx| {
            Ok(
                crate::sql::admin_scalar(crate::sql::text(format!(
                    "SELECT version FROM {history}"
                )))
                .fetch_all(tx)
                .await?,
            )
        })
        .await
    }

    /// Runs the pending tenant `migrations` in schema `schema` of server `server`'s home (an
    /// own-schema tenant's there), in one transaction, under the schema's migration lock.
    ///
    /// # Errors
    /// As [`Databases::in_home`]; [`Error::Migration`].
    pub(crate) async fn migrate_home_schema(
        &self,
        server: &str,
        schema: &str,
        migrations: &Migrations,
    ) -> Result<Vec<i64>> {
        tenancy_core::ident::validate_schema(schema)?;
        self.in_home(server, async |tx| {
            apply(tx, &Target::Schema(schema.to_owned()), migrations).await
        })
        .await
    }

    /// Runs the pending tenant `migrations` in server `server`'s home, in one transaction.
    ///
    /// # Errors
    /// As [`Databases::in_home`]; [`Error::Migration`].
    pub(crate) async fn migrate_home(
        &self,
        server: &str,
        migrations: &Migrations,
    ) -> Result<Vec<i64>> {
        self.in_home(server, async |tx| {
            apply(tx, &Target::Schema(public()), migrations).await
        })
        .await
    }
}

/// Of the tenants `$1`, those whose rows a server home (of server `$2`) keeps for the
/// registry: living there, or an old copy recorded there.
pub(crate) const SQL_KEPT_HERE: &str = "SELECT id FROM tenancy.tenants \
     WHERE id = ANY($1) AND placement IN ('shared_table', 'own_schema') AND server = $2 \
     UNION SELECT tenant_id FROM tenancy.old_copies \
     WHERE tenant_id = ANY($1) AND placement IN ('shared_table', 'own_schema') AND server = $2";

/// The statement of the `SQL_LIVES_HERE` family, as a literal for `concat!`.
macro_rules! lives_here {
    () => {
        "SELECT schema_name FROM tenancy.tenants WHERE id = $1 AND server = $2 \
         AND placement IN ('shared_table', 'own_schema') AND database_name IS NULL"
    };
}

/// Tenant `$1`'s schema if it lives in the home of server `$2`, its registry row locked against
/// moves (see [`Databases::activate_line`]).
const SQL_LIVES_HERE_LOCKED: &str = concat!(lives_here!(), " FOR SHARE");

/// [`SQL_LIVES_HERE_LOCKED`], no row when a move holds it.
const SQL_LIVES_HERE_UNLESS_LOCKED: &str = concat!(lives_here!(), " FOR SHARE SKIP LOCKED");

/// [`SQL_LIVES_HERE_LOCKED`] without the lock: a cheap first look (see
/// `crate::moving::heal_pending_line`).
pub(crate) const SQL_LIVES_HERE: &str = lives_here!();

/// Makes tenant `$1`'s pending line live. A move into the home writes the tenant's
/// line pending (sealed at `-infinity`) before the registry places the tenant there: the fence
/// refuses writes through it as through a sealed one, so that a context left from an earlier
/// stay of the tenant in this place cannot write into the copy the move is making (which a
/// failed move would take back). The move makes it live after the registry's commit
/// ([`Databases::activate_line`]), or the cleanup does.
const ACTIVATE: &str = "UPDATE tenancy.tenants SET moved_at = NULL \
     WHERE id = $1 AND moved_at = '-infinity'::timestamptz \
       AND schema_name IS NOT DISTINCT FROM $2";

/// Runs [`ACTIVATE`] for tenant `id`'s line naming `schema` (`None`: the shared tables) on
/// `tx`, a transaction on its home: only for a caller that holds the tenant's registry row and
/// found it placing the tenant there.
pub(crate) async fn make_live(
    tx: &mut PgConnection,
    id: TenantId,
    schema: Option<&str>,
) -> Result<bool> {
    let done = sqlx::query(ACTIVATE)
        .persistent(false)
        .bind(id.as_uuid())
        .bind(schema)
        .execute(tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// What a removal from a home takes (see [`Databases::leave_home`] and
/// [`Databases::purge_old_home_copy`]).
enum Removal<'a> {
    /// The tenant's copy: where its line says, or, given, where the registry says.
    Live(Option<Option<&'a str>>),
    /// An old copy: a sealed line's place, or the recorded old place of a live line.
    Old(Option<(tenancy_core::Placement, Option<&'a str>)>),
}

/// Takes tenant `tenant`'s write-fence key exclusive in `tx`: its writes in flight finish
/// first, and new ones wait for the transaction.
async fn lock_fence_key(tx: &mut PgConnection, tenant: TenantId) -> Result<()> {
    sqlx::query("SELECT pg_catalog.pg_advisory_xact_lock($1, pg_catalog.uuid_hash($2))")
        .persistent(false)
        .bind(crate::sql::fence::FENCE_CLASS)
        .bind(tenant.as_uuid())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Tenant `tenant`'s line in the home `tx` is on: whether it is sealed, and the schema it
/// names; read with `lock` (a row-lock clause, or none).
async fn line_of(
    tx: &mut PgConnection,
    tenant: TenantId,
    lock: &str,
) -> Result<Option<(bool, Option<String>)>> {
    Ok(sqlx::query_as(crate::sql::text(format!(
        "SELECT moved_at IS NOT NULL, schema_name FROM tenancy.tenants WHERE id = $1 {lock}"
    )))
    .persistent(false)
    .bind(tenant.as_uuid())
    .fetch_optional(&mut *tx)
    .await?)
}

async fn delete_line(tx: &mut PgConnection, tenant: TenantId) -> Result<()> {
    sqlx::query("DELETE FROM tenancy.tenants WHERE id = $1")
        .persistent(false)
        .bind(tenant.as_uuid())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Deletes tenant `tenant`'s rows from the shared tables of the home `tx` is on, children
/// first, past row-level security for the tenant.
async fn delete_shared_rows(tx: &mut PgConnection, tenant: TenantId) -> Result<Purged> {
    crate::rls::act_for(tx, tenant).await?;
    let mut deleted = Vec::new();
    // The tables statements name (`public`), whatever the role's search_path.
    let tables = crate::lifecycle::tenant_tables_children_first(tx, Some(&public())).await?;
    for table in tables {
        let done = crate::sql::admin_query(crate::sql::text(format!(
            "DELETE FROM {} WHERE {} = $1",
            table.name, table.column
        )))
        .bind(tenant.as_uuid())
        .execute(&mut *tx)
        .await?;
        deleted.push((table.name, done.rows_affected()));
    }
    Ok(Purged::Rows(deleted))
}

/// Drops `schema`, a tenant's schema, from the home `tx` is on: only a `t_` schema, whatever a
/// line or record says.
async fn drop_tenant_schema(
    tx: &mut PgConnection,
    (server, tenant): (&str, TenantId),
    schema: &str,
) -> Result<Purged> {
    tenancy_core::ident::validate_schema(schema)?;
    if !schema.starts_with(tenancy_core::home::TENANT_SCHEMA_PREFIX) {
        return Err(Error::Provision(format!(
            "tenant {tenant}'s copy in the home database of server {server} is said to be \
             schema {schema}, which is no tenant's: left as it is"
        )));
    }
    sqlx::raw_sql(crate::sql::text(format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        tenancy_core::ident::quote(schema)
    )))
    .execute(&mut *tx)
    .await?;
    Ok(Purged::Schema(schema.to_owned()))
}

/// Holds tenant `id`'s line in a server home against the cleanup ([`Databases::cleanup_home`])
/// until the registry transaction `tx` ends.
pub(crate) async fn lock_line(tx: &mut PgConnection, id: TenantId) -> Result<()> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext('tenancy.home_line'), pg_catalog.uuid_hash($1))",
    )
    .persistent(false)
    .bind(id.as_uuid())
    .execute(tx)
    .await?;
    Ok(())
}

fn public() -> String {
    tenancy_core::home::TENANT_DATABASE_SCHEMA.to_owned()
}
