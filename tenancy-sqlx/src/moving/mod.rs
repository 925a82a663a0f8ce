//! Moving a tenant to another home ([`Tenancy::move_tenant`](crate::Tenancy::move_tenant)), and
//! the write fence that keeps its writes from being lost while it moves.
//!
//! # The move
//!
//! One transaction on the admin pool, in `READ COMMITTED` whatever the database's default:
//!
//! 1. lock the tenant's registry row (`FOR NO KEY UPDATE`: lifecycle changes wait, foreign key
//!    checks of the tenant's writes do not) and check it may move: active, not already on the
//!    target placement, no old copy of an earlier move in the way;
//! 2. build the target (an own schema from a spare or the tenant migrations; the shared tables
//!    exist and must hold none of the tenant's rows), and take the migration locks of both
//!    homes, so no migration changes a table under the copy;
//! 3. raise the **write fence** (below), waiting at most [`MoveOptions::lock_wait`] for writes
//!    in flight;
//! 4. compare both homes' migration histories ([`history`]: a move copies rows, not
//!    migrations, so a home behind or ahead of the new one is refused), then copy every table,
//!    parents before children (`INSERT ... SELECT`, one statement a table);
//! 5. verify each table: its row count and a checksum the server computes over a canonical
//!    text form of each row (`md5` of the row's columns in name order, as text), aggregated in
//!    primary-key order, on both sides; any difference rolls everything back;
//! 6. switch: the registry row names the new home, `tenancy.old_copies` where the old copy is
//!    (an old own schema is renamed `tenancy_old_<id>`, out of the way of new tenants' schemas),
//!    an audit row, and a notification that revokes contexts holding the old home;
//! 7. commit, which lowers the fence.
//!
//! A crashed or cancelled mover's transaction is rolled back by the server: the tenant stays on
//! its old copy, the fence (a transaction lock) falls with it, and a rerun starts over. The old
//! copy stays until [`Tenancy::purge_old_copy`](crate::Tenancy::purge_old_copy) (or the
//! tenant's [`purge`](crate::Tenancy::purge)) removes it.
//!
//! A move into a database of the tenant's own ([`to_database`]) follows the same steps with the
//! copy on a second connection: the new database is made and filled in a transaction of its
//! own, which commits before the registry switches; see there for what a failure leaves.
//!
//! - [`across`]: the copy of a table from one database to another (`COPY` streamed between
//!   the two connections).
//! - [`to_database`]: the move from the registry's database into a tenant database.
//! - [`from_database`]: the move out of a tenant database, whose own write fence (in the
//!   tenant database) is sealed before the registry switches.
//! - [`between`]: the move from a tenant database to a new one on another server, the two
//!   above at once.
//!
//! # The write fence
//!
//! Every repository write (insert, update, delete) calls `tenancy.write_fence(tenant, home)` in
//! its own statement, once, before it writes a row (`crate::sql::fence`). The function
//!
//! - takes the tenant's fence key, a transaction-level advisory lock, **shared**, without
//!   waiting (`pg_try_advisory_xact_lock_shared`). Writers do not block each other; the mover
//!   takes the key **exclusive**, so it waits for the writes in flight (a [`TenantTx`] holds
//!   the key from its first write to its end), and every later write queues behind it;
//! - only if that fails (a move holds or awaits the key), waits for it at most the server
//!   setting `tenancy.move_wait` (5 s unless set, for instance in the connection's options),
//!   then fails the write with [`Error::TenantMoving`](crate::Error::TenantMoving): retry;
//! - then, in a statement of its own, so with a snapshot taken after the key was held, checks
//!   that the registry still names the home the write is going to. A write that waited for a
//!   move that then committed, or one from a process whose cache or listener is behind, fails
//!   with [`Error::TenantMoved`](crate::Error::TenantMoved): nothing is ever written to the old
//!   copy after the switch. In `REPEATABLE READ` or `SERIALIZABLE` the snapshot is the
//!   transaction's, so the registry row is share-locked first: a move committed since fails
//!   the write with a serialization failure.
//!
//! The key is per tenant (`uuid_hash` of its id under a class of tenancy's own): other tenants'
//! writes never wait for a move. Reads take nothing: they see the old copy until the switch,
//! and a context resolved before the switch reads the old copy until its handle hears the
//! notification (an old own schema is renamed at the switch, so its reads fail and come back
//! as [`Error::TenantMoved`](crate::Error::TenantMoved)). Raw SQL cannot write.
//!
//! An own-database tenant's writes call the same function in its database, which holds no
//! registry: there the home check reads the database's identity row, which a move out of it
//! seals (see [`from_database`]).
//!
//! What it costs when no move runs: one PL/pgSQL call per write statement, an uncontended
//! advisory lock and a registry lookup by key, a few microseconds of server time (measured in
//! BENCHMARKS.md as `insert_repo_vs_raw`, whose raw side has no fence). Locking tables instead
//! would block every tenant on shared tables; a check of the registry without the lock, or in
//! the write's own snapshot, could miss a move that committed just after the write's snapshot.
//!
//! [`TenantTx`]: crate::TenantTx

use std::fmt;
use std::time::Duration;

use sqlx::{PgConnection, Row};
use tenancy_core::home::{Home, old_copy_schema};
use tenancy_core::{Placement, Slug, TenantId};

use crate::archive::{column_list, data_columns};
use crate::catalog;
use crate::databases::Databases;
use crate::lifecycle::{TenantTable, tenant_tables_children_first};
use crate::migrate::Migrations;
use crate::registry::store;
use crate::runtime::Runtime;
use crate::sql::fence::FENCE_CLASS;
use crate::{Error, Lookup, MigrationError, MigrationTarget, Result};

mod across;
mod between;
mod contents;
mod from_database;
mod history;
mod same_home;
pub(crate) mod to_database;
pub(crate) mod to_home;

/// How long [`Tenancy::move_tenant`](crate::Tenancy::move_tenant) waits for the tenant's writes
/// in flight by default.
pub const DEFAULT_MOVE_LOCK_WAIT: Duration = Duration::from_secs(10);

/// Options of [`Tenancy::move_tenant_with`](crate::Tenancy::move_tenant_with).
///
/// ```
/// use std::time::Duration;
/// use tenancy_sqlx::MoveOptions;
///
/// let options = MoveOptions::default().lock_wait(Duration::from_secs(2));
/// assert_eq!(options.get_lock_wait(), Duration::from_secs(2));
/// ```
#[derive(Clone)]
pub struct MoveOptions {
    lock_wait: Duration,
    server: Option<String>,
    unmanaged_shared_tables: bool,
    #[cfg(feature = "testing")]
    pub(crate) seams: Seams,
}

impl Default for MoveOptions {
    fn default() -> Self {
        Self {
            lock_wait: DEFAULT_MOVE_LOCK_WAIT,
            server: None,
            unmanaged_shared_tables: false,
            #[cfg(feature = "testing")]
            seams: Seams::default(),
        }
    }
}

impl fmt::Debug for MoveOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MoveOptions")
            .field("lock_wait", &self.lock_wait)
            .field("server", &self.server)
            .field("unmanaged_shared_tables", &self.unmanaged_shared_tables)
            .finish_non_exhaustive()
    }
}

impl MoveOptions {
    /// How long the move waits for the tenant's writes in flight (a transaction that wrote and
    /// has not ended) before it gives up with [`Error::MoveRefused`], having changed nothing.
    /// Meanwhile new writes of the tenant wait behind it. Default
    /// [`DEFAULT_MOVE_LOCK_WAIT`].
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// The wait set by [`MoveOptions::lock_wait`].
    pub fn get_lock_wait(&self) -> Duration {
        self.lock_wait
    }

    /// The server a move to [`Placement::OwnDatabase`] makes the tenant's database on: a key
    /// the handle maps ([`TenancyBuilder::server`](crate::TenancyBuilder::server)) and the
    /// registry lists. The primary server (the registry's) unless set. A move to another
    /// placement with a server set is refused ([`Error::MoveRefused`]): shared tables and own
    /// schemas live in the registry's database.
    ///
    /// A tenant that already has a database of its own moves to a new one on this server,
    /// which must be set and not be the tenant's server (else [`Error::MoveRefused`]), nor the
    /// same PostgreSQL server under another key (refused too: the new database would take the
    /// old one's name there). See
    /// [`Tenancy::move_tenant_with`](crate::Tenancy::move_tenant_with).
    ///
    /// ```
    /// use tenancy_sqlx::MoveOptions;
    ///
    /// let options = MoveOptions::default().server("eu-2");
    /// assert_eq!(options.get_server(), Some("eu-2"));
    /// assert_eq!(MoveOptions::default().get_server(), None);
    /// ```
    pub fn server(mut self, key: impl Into<String>) -> Self {
        self.server = Some(key.into());
        self
    }

    /// The server set by [`MoveOptions::server`], if any.
    pub fn get_server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// Says that the application migrates the shared tables itself, not through tenancy's
    /// tenant migrations: then tenancy's history of them is empty, and a move in or out of
    /// them does not compare it with the other home's (every move compares both homes'
    /// migration histories and refuses when they differ; see
    /// [`Tenancy::move_tenant_with`](crate::Tenancy::move_tenant_with)). A shared-table
    /// history that is not empty is compared all the same. Off by default: an empty history
    /// is as likely a lost one, and moving past it could leave a backfill unapplied.
    pub fn unmanaged_shared_tables(mut self) -> Self {
        self.unmanaged_shared_tables = true;
        self
    }

    /// Whether [`MoveOptions::unmanaged_shared_tables`] is set.
    pub fn get_unmanaged_shared_tables(&self) -> bool {
        self.unmanaged_shared_tables
    }

    /// Test seam: SQL run in the move's transaction after the copy and before verification
    /// (to tamper with a copied row and see the verification refuse it).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn after_copy_sql(mut self, sql: impl Into<String>) -> Self {
        self.seams.after_copy = Some(sql.into());
        self
    }

    /// Test seam: keeps the fence up this long after the copy, so that a test's writers meet
    /// it.
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn hold_fence(mut self, hold: Duration) -> Self {
        self.seams.hold = Some(hold);
        self
    }

    /// Test seam: a move into a database of its own waits this long after the new database
    /// committed and before the registry switches (so that a test can end it there, as a
    /// crash would).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn hold_before_switch(mut self, hold: Duration) -> Self {
        self.seams.before_switch = Some(hold);
        self
    }

    /// Test seam: a move into another server's home waits this long after the registry's
    /// switch committed and before it makes the tenant's line there live (as a process stalled
    /// there would).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn hold_after_switch(mut self, hold: Duration) -> Self {
        self.seams.after_switch = Some(hold);
        self
    }

    /// How long [`MoveOptions::hold_after_switch`] asks to wait (none without the seam).
    pub(crate) fn after_switch_hold(&self) -> Option<Duration> {
        #[cfg(feature = "testing")]
        return self.seams.after_switch;
        #[cfg(not(feature = "testing"))]
        None
    }
}

/// What the test seams of [`MoveOptions`] ask for.
#[cfg(feature = "testing")]
#[derive(Debug, Clone, Default)]
pub(crate) struct Seams {
    after_copy: Option<String>,
    hold: Option<Duration>,
    before_switch: Option<Duration>,
    after_switch: Option<Duration>,
}

/// Where a moved tenant's old copy is, until it is purged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OldCopy {
    /// The placement the tenant left.
    pub placement: Placement,
    /// The old copy's schema (`tenancy_old_<id>`), for an own schema; `None` for rows left in
    /// the shared tables.
    pub schema: Option<String>,
    /// The old copy's database, for an own database (kept under its name, its writes refused
    /// by its fence, until purged); `None` otherwise.
    pub database: Option<String>,
    /// The key of the server the old database is on (where
    /// [`Tenancy::purge_old_copy`](crate::Tenancy::purge_old_copy) drops it), or whose home
    /// database keeps the old rows of a shared-table tenant of that server; `None` otherwise.
    pub server: Option<String>,
}

/// One table a move copied, as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MovedTable {
    /// The table's name (unqualified).
    pub table: String,
    /// The rows copied, equal on both sides.
    pub rows: u64,
    /// The checksum both sides agreed on (hex md5).
    pub checksum: String,
}

/// What [`Tenancy::move_tenant`](crate::Tenancy::move_tenant) did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Moved {
    /// The tenant.
    pub id: TenantId,
    /// Where it lived.
    pub from: Placement,
    /// Where it lives now.
    pub to: Placement,
    /// Its new schema, on the own-schema placement.
    pub schema: Option<String>,
    /// Its new database, on the own-database placement.
    pub database: Option<String>,
    /// The key of the server it lives on now (`"primary"`, the registry's, but for a database
    /// made on another server).
    pub server: String,
    /// Where its old copy is kept until purged.
    pub old_copy: OldCopy,
    /// Every table copied, in copy order (parents first). Empty when [`Moved::resumed`].
    pub tables: Vec<MovedTable>,
    /// Whether this run found the copy made, verified and committed by an earlier run of the
    /// same move (inside one server's home, cut off before the registry's switch) and only
    /// switched the registry: [`Moved::tables`] is then empty, the rows having been copied and
    /// verified by that run.
    pub resumed: bool,
    /// `None` once the tenant's writes go to its new home. `Some(why)` when, after a move into
    /// another server's home, the tenant's line there could not be made live (that server
    /// unreachable right after the switch, say): the move is done and the tenant reads from
    /// its new home, but its writes are refused ([`Error::TenantMoved`](crate::Error), which is
    /// retryable) until the line is live: the first write refused makes it live once the
    /// server answers, as does [`Tenancy::cleanup_orphans`](crate::Tenancy::cleanup_orphans).
    pub writes_held: Option<String>,
}

impl Moved {
    /// Rows copied over every table.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// The tenant a move starts from, as [`prepare`] found and locked it.
pub(crate) struct Leaving {
    pub(crate) slug: Slug,
    pub(crate) placement: Placement,
    pub(crate) from: Home,
    /// The server of the tenant's home (its database's, for an own database).
    pub(crate) server: String,
}

/// The first steps of every move, in the registry transaction `tx`: `READ COMMITTED`, the
/// tenant's row locked, and the checks that it may move to `to` (active, not there already, no
/// old copy there). `server`: the server a move to a database of its own was asked to make it
/// on ([`MoveOptions::server`]); an own-database tenant may move to another one.
pub(crate) async fn prepare(
    tx: &mut PgConnection,
    databases: Option<&Databases>,
    id: TenantId,
    to: Placement,
    server: Option<&str>,
) -> Result<Leaving> {
    let refuse = |reason: String| Error::MoveRefused { id, reason };
    // The copy must see every write committed before the fence is up: a transaction snapshot
    // taken earlier (a database defaulting to REPEATABLE READ) would miss some.
    sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .execute(&mut *tx)
        .await?;
    let row = crate::sql::admin_query(store::TENANT_FOR_MOVE)
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::TenantNotFound(Lookup::Id(id)))?;
    let status: String = row.try_get("status")?;
    if status != "active" {
        return Err(Error::WrongStatus {
            id,
            status: status.parse()?,
            action: "move",
        });
    }
    let slug = Slug::parse(row.try_get::<&str, _>("slug")?)?;
    let placement: Placement = row.try_get::<&str, _>("placement")?.parse()?;
    let schema: Option<String> = row.try_get("schema_name")?;
    let database: Option<String> = row.try_get("database_name")?;
    let server_now: String = row.try_get("server")?;
    let from = match Home::of(placement, schema.as_deref(), database.as_deref())
        .map_err(|u| Error::UnsupportedPlacement(u.placement))?
    {
        // The shared tables of another server: its home (see `databases::home`).
        Home::SharedTable if server_now != crate::databases::PRIMARY_SERVER => databases
            .ok_or_else(|| Error::UnknownServer {
                server: server_now.clone(),
            })?
            .server_home(&server_now)?,
        // An own schema of another server: in its home too.
        Home::OwnSchema(schema) if server_now != crate::databases::PRIMARY_SERVER => databases
            .ok_or_else(|| Error::UnknownServer {
                server: server_now.clone(),
            })?
            .server_schema(&server_now, schema)?,
        other => other,
    };
    // The home of the target, when it is another server's: the tenant's line there is one
    // (see `databases::home`), so a move between its shared tables and an own schema there,
    // or into it while an old copy of the tenant is kept there, has no line to give the new
    // copy.
    let target_home =
        server.filter(|s| *s != crate::databases::PRIMARY_SERVER && to != Placement::OwnDatabase);

    // Between the shared tables of two servers (the registry's, another's home), or from an
    // own schema in another server's home to one in the registry's database: a move on one
    // placement. `server` names the target's (none: the registry's).
    let between_servers = to != Placement::OwnDatabase
        && placement == to
        && server.unwrap_or(crate::databases::PRIMARY_SERVER) != server_now;
    if placement == to && !between_servers {
        match server {
            // A database of its own on another server: `to_database` moves it there.
            Some(key) if to == Placement::OwnDatabase && key != server_now => {}
            Some(key) if to == Placement::OwnDatabase => {
                return Err(refuse(format!(
                    "it already lives in a database of its own on server {key}; name another \
                     server (MoveOptions::server) to move it there"
                )));
            }
            _ if server_now != crate::databases::PRIMARY_SERVER => {
                return Err(refuse(format!(
                    "it already lives on the {to} placement, on server {server_now}"
                )));
            }
            _ => return Err(refuse(format!("it already lives on the {to} placement"))),
        }
    }
    let olds = crate::sql::admin_query(store::OLD_COPIES_OF_TENANT)
        .bind(id.as_uuid())
        .fetch_all(&mut *tx)
        .await?;
    for old in &olds {
        let old_placement = old.try_get::<&str, _>("placement")?;
        let old_server: Option<String> = old.try_get("server")?;
        let old_database: Option<String> = old.try_get("database_name")?;
        if old_database.is_none()
            && let Some(home) = target_home
            && old_server.as_deref() == Some(home)
        {
            return Err(refuse(format!(
                "the old copy of an earlier move is in the home database of server {home}; \
                 purge it first (Tenancy::purge_old_copy)"
            )));
        }
        if old_placement == to.as_str() {
            return Err(refuse(format!(
                "the old copy of an earlier move is on the {to} placement; purge it first \
                 (Tenancy::purge_old_copy)"
            )));
        }
        // The place it leaves becomes an old copy of that placement, which the registry keeps
        // one of: refused now, before anything is made or sealed, rather than at the switch.
        if old_placement == placement.as_str() {
            return Err(refuse(format!(
                "the old copy of an earlier move is on the {placement} placement it would \
                 leave (a database on another server); purge it first (Tenancy::purge_old_copy)"
            )));
        }
    }
    Ok(Leaving {
        slug,
        placement,
        from,
        server: server_now,
    })
}

/// Moves tenant `id` to `to` (shared tables or an own schema) inside the caller's transaction
/// `tx` (see the module docs), from wherever it lives: from its own database through
/// [`from_database`], with `databases`. The caller audits, notifies and commits.
pub(crate) async fn run(
    tx: &mut PgConnection,
    databases: Option<&Databases>,
    id: TenantId,
    to: Placement,
    migrations: &Migrations,
    options: &MoveOptions,
) -> Result<Moved> {
    if let Some(server) = &options.server {
        return Err(Error::MoveRefused {
            id,
            reason: format!(
                "the {to} placement on server {server} is the registry's database: leave \
                 MoveOptions::server unset to move the tenant there"
            ),
        });
    }
    let leaving = prepare(tx, databases, id, to, None).await?;
    let target =
        Home::for_slug(to, &leaving.slug).map_err(|u| Error::UnsupportedPlacement(u.placement))?;
    if leaving.from.database().is_some() {
        let databases = databases.ok_or(Error::UnsupportedPlacement(Placement::OwnDatabase))?;
        return from_database::run(tx, databases, id, (&leaving, &target), migrations, options)
            .await;
    }
    crate::rls::act_for(tx, id).await?;
    for home in [&leaving.from, &target] {
        lock_migrations(tx, home).await?;
    }
    build(tx, id, &target, migrations).await?;
    raise_fence(tx, id, options.lock_wait).await?;
    let tables = copy_all(
        &mut Pair::One(tx),
        id,
        (leaving.from.schema_name(), target.schema_name()),
        to,
        options,
    )
    .await?;
    switch(
        tx,
        id,
        &leaving,
        &target,
        (crate::databases::PRIMARY_SERVER, None),
        tables,
        options,
    )
    .await
}

/// The connections a move reads its source on and writes its copy on: one transaction when
/// both homes are in the registry's database, two otherwise.
pub(crate) enum Pair<'a> {
    /// The registry transaction, for both.
    One(&'a mut PgConnection),
    /// The registry transaction (the source, behind the fence) and one on the new database.
    Two {
        source: &'a mut PgConnection,
        target: &'a mut PgConnection,
    },
}

impl Pair<'_> {
    fn source(&mut self) -> &mut PgConnection {
        match self {
            Self::One(c) => c,
            Self::Two { source, .. } => source,
        }
    }

    fn target(&mut self) -> &mut PgConnection {
        match self {
            Self::One(c) => c,
            Self::Two { target, .. } => target,
        }
    }
}

/// Copies every table of the tenant from the home whose schema is `schemas.0` (`None`: the
/// shared tables) to the one of `schemas.1`, parents first, and verifies each on both sides.
/// The fence must be up.
pub(crate) async fn copy_all(
    pair: &mut Pair<'_>,
    id: TenantId,
    (from_schema, to_schema): (Option<&str>, Option<&str>),
    to: Placement,
    options: &MoveOptions,
) -> Result<Vec<MovedTable>> {
    history::check_same(
        pair,
        id,
        (from_schema, to_schema),
        options.unmanaged_shared_tables,
    )
    .await?;
    let sources = tenant_tables_children_first(pair.source(), from_schema).await?;
    let targets = tenant_tables_children_first(pair.target(), to_schema).await?;
    refuse_split(id, &sources)?;
    refuse_split(id, &targets)?;
    let mut copied = Vec::new();
    // Parents first, as the target's foreign keys need.
    for target_table in targets.iter().rev() {
        let Some(source) = sources.iter().find(|s| s.relname == target_table.relname) else {
            continue;
        };
        if let Some(table) = copy_table(pair, id, source, target_table).await? {
            copied.push(table);
        }
    }
    // A source table with rows of the tenant and nowhere to go would be left behind.
    for source in &sources {
        let name = &source.relname;
        if !targets.iter().any(|t| t.relname == *name)
            && count(pair.source(), id, source).await? > 0
        {
            return Err(Error::MoveRefused {
                id,
                reason: format!(
                    "{} holds rows of the tenant and the {to} placement has no table {name}",
                    source.name
                ),
            });
        }
    }

    #[cfg(feature = "testing")]
    {
        if let Some(sql) = &options.seams.after_copy {
            sqlx::raw_sql(crate::sql::text(sql.clone()))
                .execute(pair.target())
                .await?;
        }
        if let Some(hold) = options.seams.hold {
            tokio::time::sleep(hold).await;
        }
    }
    #[cfg(not(feature = "testing"))]
    let _ = options;

    let mut tables = Vec::with_capacity(copied.len());
    for c in &copied {
        let (source_rows, source_sum) =
            checksum(pair.source(), id, &c.source, &c.columns, &c.order).await?;
        let (target_rows, target_sum) =
            checksum(pair.target(), id, &c.target, &c.columns, &c.order).await?;
        if source_rows != target_rows || source_sum != target_sum || source_rows != c.rows {
            return Err(Error::MoveVerification {
                id,
                table: c.name.clone(),
                detail: format!(
                    "{} copied; source {source_rows} rows, md5 {source_sum}; \
                     copy {target_rows} rows, md5 {target_sum}",
                    c.rows
                ),
            });
        }
        tables.push(MovedTable {
            table: c.name.clone(),
            rows: c.rows,
            checksum: source_sum,
        });
    }
    Ok(tables)
}

/// The switch, in the registry transaction `tx`: an old own schema renamed out of the way, the
/// registry row naming the new home (`database`: the server and database of an own-database
/// one), the old copy recorded. A test can hold the move just before it
/// (`MoveOptions::hold_before_switch`): every copy is made and, out of a database, sealed.
pub(crate) async fn switch(
    tx: &mut PgConnection,
    id: TenantId,
    leaving: &Leaving,
    target: &Home,
    (server, database): (&str, Option<&str>),
    tables: Vec<MovedTable>,
    options: &MoveOptions,
) -> Result<Moved> {
    #[cfg(feature = "testing")]
    if let Some(hold) = options.seams.before_switch {
        tokio::time::sleep(hold).await;
    }
    #[cfg(not(feature = "testing"))]
    let _ = options;
    // An own schema in the registry's database is renamed out of the way; one in another
    // server's home stays as it is, its line sealed there (see `from_database`).
    let old_schema = match &leaving.from {
        Home::OwnSchema(schema) => {
            let name = schema.name();
            let old = old_copy_schema(id);
            sqlx::raw_sql(crate::sql::text(format!(
                "ALTER SCHEMA {} RENAME TO {}",
                tenancy_core::ident::quote(name),
                tenancy_core::ident::quote(&old)
            )))
            .execute(&mut *tx)
            .await?;
            Some(old)
        }
        _ => None,
    };
    crate::sql::admin_query(store::TENANT_SET_HOME)
        .bind(id.as_uuid())
        .bind(target.placement().as_str())
        .bind(target.schema_name())
        .bind(database)
        .bind(server)
        .execute(&mut *tx)
        .await?;
    // An old database is recorded by name and server; old rows in another server's home by
    // that server alone (the home is not the tenant's to drop).
    let (old_database, old_server) = match &leaving.from {
        Home::OwnDatabase { database, .. } => (
            Some(database.as_str().to_owned()),
            Some(leaving.server.clone()),
        ),
        Home::ServerShared { .. } | Home::ServerSchema { .. } => {
            (None, Some(leaving.server.clone()))
        }
        _ => (None, None),
    };
    crate::sql::admin_query(store::OLD_COPY_INSERT)
        .bind(id.as_uuid())
        .bind(leaving.placement.as_str())
        .bind(old_schema.as_deref())
        .bind(old_database.as_deref())
        .bind(old_server.as_deref())
        .execute(&mut *tx)
        .await?;
    Ok(Moved {
        id,
        from: leaving.placement,
        to: target.placement(),
        schema: target.schema_name().map(str::to_owned),
        database: database.map(str::to_owned),
        server: server.to_owned(),
        old_copy: OldCopy {
            placement: leaving.placement,
            schema: old_schema,
            server: old_server,
            database: old_database,
        },
        tables,
        resumed: false,
        writes_held: None,
    })
}

/// Refuses, before anything is made, a target server this handle cannot reach or the registry
/// does not list (its foreign key would refuse the switch after the copy): read in the move's
/// registry transaction `tx`.
pub(crate) async fn check_target_server(
    tx: &mut PgConnection,
    databases: &Databases,
    server: &str,
) -> Result<()> {
    let listed: bool =
        crate::sql::admin_scalar("SELECT EXISTS (SELECT FROM tenancy.servers WHERE key = $1)")
            .bind(server)
            .fetch_one(&mut *tx)
            .await?;
    if !databases.knows(server) || !listed {
        return Err(Error::UnknownServer {
            server: server.to_owned(),
        });
    }
    Ok(())
}

/// Takes the migration lock of `home` (the one `migrate_tenants` takes for it), so that no
/// migration changes its tables while they are copied.
async fn lock_migrations(tx: &mut PgConnection, home: &Home) -> Result<()> {
    let key = match home.schema_name() {
        Some(name) => format!("schema:{name}"),
        None => "shared_tables".to_owned(),
    };
    crate::sql::admin_query(
        "SELECT pg_advisory_xact_lock(hashtext('tenancy.migrate'), hashtext($1))",
    )
    .bind(key)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Builds the target home: an own schema from a spare or the tenant migrations. The shared
/// tables exist already.
async fn build(
    tx: &mut PgConnection,
    id: TenantId,
    target: &Home,
    migrations: &Migrations,
) -> Result<()> {
    let Some(name) = target.schema_name() else {
        return Ok(());
    };
    let exists: bool = crate::sql::admin_scalar(catalog::SCHEMA_EXISTS)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
    if exists {
        return Err(Error::MoveRefused {
            id,
            reason: format!(
                "a schema named {name} exists already (another tenant's, or left over); \
                 rename or drop it first"
            ),
        });
    }
    if !crate::spare::take(tx, name, migrations).await? {
        let script = crate::migrate::fresh_schema_script(name, migrations);
        sqlx::raw_sql(crate::sql::text(script))
            .execute(&mut *tx)
            .await
            .map_err(|source| MigrationError::Provision {
                target: Box::new(MigrationTarget::Schema {
                    schema: name.to_owned(),
                }),
                source,
            })?;
    }
    Ok(())
}

/// Takes the tenant's fence key exclusive, waiting at most `wait` for the writes in flight.
async fn raise_fence(tx: &mut PgConnection, id: TenantId, wait: Duration) -> Result<()> {
    within_lock_wait(tx, id, wait, async |tx| {
        crate::sql::admin_query("SELECT pg_advisory_xact_lock($1, pg_catalog.uuid_hash($2))")
            .bind(FENCE_CLASS)
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;
        Ok(())
    })
    .await
}

/// Runs `lock` in the transaction `tx` with PostgreSQL's `lock_timeout` at `wait`: a lock that
/// the tenant's writes in flight hold longer is refused ([`Error::MoveRefused`], retryable)
/// rather than waited for without end, as every move's wait for writers is bounded.
pub(super) async fn within_lock_wait<T>(
    tx: &mut PgConnection,
    id: TenantId,
    wait: Duration,
    lock: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
) -> Result<T> {
    let ms = wait.as_millis().clamp(1, i32::MAX as u128);
    sqlx::raw_sql(crate::sql::text(format!("SET LOCAL lock_timeout = {ms}")))
        .execute(&mut *tx)
        .await?;
    let out = match lock(&mut *tx).await {
        Err(e) if e.sqlstate() == Some("55P03") => {
            return Err(Error::MoveRefused {
                id,
                reason: format!(
                    "writes of the tenant in flight held it longer than the lock wait ({wait:?}); \
                     nothing was changed"
                ),
            });
        }
        other => other?,
    };
    sqlx::raw_sql("SET LOCAL lock_timeout TO DEFAULT")
        .execute(&mut *tx)
        .await?;
    Ok(out)
}

/// A table copied, with what its verification needs.
struct Copied {
    name: String,
    source: TenantTable,
    target: TenantTable,
    /// The columns compared, in name order.
    columns: Vec<String>,
    /// The checksum's row order: the source's primary key, tenant column aside.
    order: Vec<String>,
    rows: u64,
}

/// Copies the tenant's rows of `source` into `target`; `None` when the source holds none.
async fn copy_table(
    pair: &mut Pair<'_>,
    id: TenantId,
    source: &TenantTable,
    target: &TenantTable,
) -> Result<Option<Copied>> {
    let name = source.relname.clone();
    let in_target = count(pair.target(), id, target).await?;
    if in_target > 0 {
        return Err(Error::MoveRefused {
            id,
            reason: format!(
                "{} already holds {in_target} row(s) of the tenant",
                target.name
            ),
        });
    }
    let mut columns = data_columns(pair.source(), source).await?;
    let have = data_columns(pair.target(), target).await?;
    if let Some(missing) = columns.iter().find(|c| !have.contains(c)) {
        if count(pair.source(), id, source).await? == 0 {
            return Ok(None);
        }
        return Err(Error::MoveRefused {
            id,
            reason: format!(
                "{} has no column {missing} to copy {name}'s into",
                target.name
            ),
        });
    }
    columns.sort();
    let rows = match pair {
        Pair::One(tx) => insert_select(tx, id, source, target, &columns).await?,
        Pair::Two {
            source: from,
            target: to,
        } => across::copy(from, to, id, (source, target), &columns).await?,
    };
    if rows == 0 {
        return Ok(None);
    }
    advance_sequences(pair.target(), target, &columns).await?;
    let order: Vec<String> = crate::sql::admin_scalar::<String>(catalog::PRIMARY_KEY_COLUMNS)
        .bind(source.oid)
        .fetch_all(pair.source())
        .await?
        .into_iter()
        .filter(|c| *c != source.column_name && columns.contains(c))
        .collect();
    Ok(Some(Copied {
        name,
        source: source.clone(),
        target: target.clone(),
        columns,
        order,
        rows,
    }))
}

/// Refuses tenant `id`'s move where a table of `tables` cannot be read with each row once
/// (see `lifecycle::split_inheritance`).
fn refuse_split(id: TenantId, tables: &[TenantTable]) -> Result<()> {
    match crate::lifecycle::split_inheritance(tables) {
        None => Ok(()),
        Some((table, outside)) => Err(Error::MoveRefused {
            id,
            reason: format!(
                "{table} has inheritance descendants both among the tenant's tables and outside \
                 them ({outside}); no reading of it reads each row once"
            ),
        }),
    }
}

/// The copy within one database: one statement.
async fn insert_select(
    tx: &mut PgConnection,
    id: TenantId,
    source: &TenantTable,
    target: &TenantTable,
    columns: &[String],
) -> Result<u64> {
    let list = column_list(columns);
    // OVERRIDING SYSTEM VALUE: identity columns keep the values they had.
    Ok(crate::sql::admin_query(crate::sql::text(format!(
        "INSERT INTO {} ({}, {list}) OVERRIDING SYSTEM VALUE SELECT {}, {list} FROM {} WHERE {} = $1",
        target.name, target.column, source.column, source.rows, source.column
    )))
    .bind(id.as_uuid())
    .execute(&mut *tx)
    .await?
    .rows_affected())
}

/// Moves the sequences behind `target`'s serial and identity columns past the values copied
/// in, so that the tenant's next insert does not draw a key it already holds (an own schema's
/// sequences start afresh; the shared tables' may be behind an old own schema's). Also run
/// after an archive's import, for the same reason.
pub(crate) async fn advance_sequences(
    tx: &mut PgConnection,
    target: &TenantTable,
    columns: &[String],
) -> Result<()> {
    for column in columns {
        let sequence: Option<String> = crate::sql::admin_scalar(catalog::COLUMN_SEQUENCE)
            .bind(&target.name)
            .bind(column)
            .fetch_one(&mut *tx)
            .await?;
        let Some(sequence) = sequence else { continue };
        // Only forward, and only an ascending sequence: when the imported or copied keys reach
        // the value it would give next (its `last_value` itself until it is first called, as
        // after a `RESTART`); no further than its maximum (keys past it were written by hand:
        // the sequence is spent, and says so on its next call rather than failing this one).
        // `sequence` is the catalog's own `regclass` text: quoted there.
        crate::sql::admin_query(crate::sql::text(format!(
            "SELECT pg_catalog.setval($1::regclass, LEAST(m, q.seqmax)) \
             FROM (SELECT max({})::bigint AS m FROM {}) s, pg_catalog.pg_sequence q, {sequence} v \
             WHERE q.seqrelid OPERATOR(pg_catalog.=) $1::regclass AND q.seqincrement > 0 \
               AND m::numeric >= CASE WHEN v.is_called \
                                      THEN v.last_value::numeric + q.seqincrement \
                                      ELSE v.last_value::numeric END",
            tenancy_core::ident::quote(column),
            target.name
        )))
        .bind(sequence)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The tenant's rows in `table`.
async fn count(tx: &mut PgConnection, id: TenantId, table: &TenantTable) -> Result<i64> {
    Ok(crate::sql::admin_scalar(crate::sql::text(format!(
        "SELECT count(*) FROM {} WHERE {} = $1",
        table.rows, table.column
    )))
    .bind(id.as_uuid())
    .fetch_one(&mut *tx)
    .await?)
}

/// The tenant's rows in `table` and their checksum: the md5 of each row's `columns` (in name
/// order) as text, concatenated in `order` (then by the row's text, for rows the key does not
/// order) and hashed again, all on the server.
async fn checksum(
    tx: &mut PgConnection,
    id: TenantId,
    table: &TenantTable,
    columns: &[String],
    order: &[String],
) -> Result<(u64, String)> {
    let row = format!("ROW({})::text", column_list(columns));
    let mut by = column_list(order);
    if !by.is_empty() {
        by.push_str(", ");
    }
    by.push_str(&row);
    let found = crate::sql::admin_query(crate::sql::text(format!(
        "SELECT count(*), COALESCE(md5(string_agg(md5({row}), '' ORDER BY {by})), '') \
         FROM {} WHERE {} = $1",
        table.rows, table.column
    )))
    .bind(id.as_uuid())
    .fetch_one(&mut *tx)
    .await?;
    let rows: i64 = found.try_get(0)?;
    Ok((u64::try_from(rows).unwrap_or(0), found.try_get(1)?))
}

/// After a statement of a context for `home` failed with [`Error::TenantMoved`]: when `home`
/// is in another server's home, the registry places the tenant in that very place and its line
/// there is still pending (a move into the home cut off between its switch and making the line
/// live: its caller dropped, its process killed), makes the line live. The retry that
/// `TenantMoved` asks for then succeeds, rather than every write failing until
/// `cleanup_orphans`. A move in flight is not waited for (nothing to make live then); one try
/// per tenant at a time. A stale context (its tenant gone elsewhere) costs one pooled registry
/// read, no connection to the home.
pub(crate) async fn heal_pending_line(rt: &Runtime, id: TenantId, home: &Home) {
    let (Some(database), Ok(databases)) = (
        home.database().filter(|_| home.in_server_home()),
        rt.databases(),
    ) else {
        return;
    };
    let Some(_one) = Healing::start(&databases.healing, id) else {
        return;
    };
    // A pooled read first: a stale context (its tenant elsewhere, or in another place of the
    // home) stops here, without a connection to the home.
    let placed = rt
        .with_conn(async |c| {
            Ok(
                sqlx::query_scalar::<_, Option<String>>(crate::databases::home::SQL_LIVES_HERE)
                    .persistent(false)
                    .bind(id.as_uuid())
                    .bind(database.server())
                    .fetch_optional(c)
                    .await?,
            )
        })
        .await;
    if !matches!(placed, Ok(Some(schema)) if schema.as_deref() == home.schema_name()) {
        return;
    }
    let place = (database.server(), Some(home.schema_name()));
    let out = databases.activate_line(&rt.pool, place, id, false).await;
    match out {
        Ok(true) => tracing::warn!(tenant = %id, server = database.server(),
            "made live the tenant's line that a move cut off after its switch left pending"),
        Ok(false) => {}
        Err(e) => tracing::warn!(tenant = %id, server = database.server(), error = %e,
            "could not check the tenant's line in its home after a refused write"),
    }
}

/// A tenant's entry in the set of heals under way, removed when dropped (also when the heal is
/// cancelled).
struct Healing<'a> {
    set: &'a std::sync::Mutex<std::collections::HashSet<TenantId>>,
    id: TenantId,
}

impl<'a> Healing<'a> {
    fn start(
        set: &'a std::sync::Mutex<std::collections::HashSet<TenantId>>,
        id: TenantId,
    ) -> Option<Self> {
        set.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id)
            .then_some(Self { set, id })
    }
}

impl Drop for Healing<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// Whether a statement of a context for `home` that failed with `e` failed because the
/// tenant moved away since the context was resolved (an old own schema is renamed at the
/// switch, or dropped with its old copy, so its statements no longer find their table): the
/// registry no longer places it in that schema on that server. Asked only after an
/// undefined-table error, or a model check that found the table missing ([`Error::TableShape`]),
/// on an own-schema context.
pub(crate) async fn moved_away(rt: &Runtime, e: &Error, id: TenantId, home: &Home) -> bool {
    // A model check's verdict that the table is missing (the schema renamed away), not a
    // table of the wrong shape, which is the application's to fix.
    let undefined_table = matches!(e, Error::Database(sqlx::Error::Database(db))
        if db.code().as_deref() == Some("42P01"))
        || matches!(e, Error::TableShape(report)
            if report.problems.iter().any(|p| p.starts_with(crate::verify::TABLE_MISSING)));
    let Some(schema) = home
        .schema_name()
        .filter(|_| undefined_table && home.placement() == Placement::OwnSchema)
    else {
        return false;
    };
    let server = home
        .database()
        .map_or(crate::databases::PRIMARY_SERVER, |d| d.server());
    let row = rt
        .with_conn(async |c| {
            Ok(crate::sql::admin_query(store::TENANT_HOME)
                .bind(id.as_uuid())
                .fetch_optional(c)
                .await?)
        })
        .await;
    match row {
        Ok(Some(row)) => {
            let now: Option<String> = row.try_get("schema_name").unwrap_or(None);
            let now_on: Option<String> = row.try_get("server").ok();
            if now.as_deref() != Some(schema) || now_on.as_deref() != Some(server) {
                return true;
            }
            // A move inside a server home renames the old schema when the home commits, before
            // the registry switches: the home's line says where the tenant went.
            let Some(databases) = rt.databases().ok().filter(|_| home.in_server_home()) else {
                return false;
            };
            let named = databases
                .in_home(server, async |tx| {
                    Ok(sqlx::query_scalar::<_, Option<String>>(
                        "SELECT schema_name FROM tenancy.tenants WHERE id = $1",
                    )
                    .persistent(false)
                    .bind(id.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await?)
                })
                .await;
            matches!(named, Ok(line) if line.as_ref().and_then(Option::as_deref) != Some(schema))
        }
        Ok(None) => true,
        Err(_) => false,
    }
}
