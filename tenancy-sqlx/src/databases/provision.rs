//! Creating a tenant's database, and registering it atomically.
//!
//! Three ways to a database at the latest tenant migration (measured in the benchmark's
//! `provision_database_ms_per_tenant` rows):
//! - [`Source::Template`]: `CREATE DATABASE .. TEMPLATE`, from a template database kept at the
//!   latest tenant migration ([`ensure_template`]);
//! - [`Source::Empty`]: `CREATE DATABASE`, then every tenant migration in it;
//! - [`Source::Spare`]: `ALTER DATABASE .. RENAME` of a spare made ahead from the template
//!   ([`warm_spares`]), falling back to the template when none is left.
//!
//! `CREATE DATABASE` cannot run in a transaction, and the database and the registry may live on
//! two servers, so creation and registration cannot commit together. [`provision`] orders them so
//! that every failure is undone or recognisable:
//! 1. in a registry transaction, a transaction-level advisory lock on the database's name;
//! 2. the database is created on the tenant's server (a migration failing on the empty path
//!    drops it again);
//! 3. the caller's registration runs in the same registry transaction, which commits; if it
//!    fails, the database is dropped.
//!
//! A crash between 2 and 3 ends the registry transaction (so the lock) and leaves a database
//! named like a tenant's that the registry does not know. [`cleanup_orphans`], run at start or by
//! hand, drops exactly those: it takes the same lock (a provisioning in flight holds it, so its
//! database is never taken for a leftover) and asks the registry.
//!
//! The template must have no session connected while a database is made from it (PostgreSQL
//! waits up to 5 s, then refuses): never pool connections to it; migrate it at deploy time.

use futures_util::future::BoxFuture;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tenancy_core::TenantId;

use super::name::{DatabaseName, Naming};
use crate::migrate::{Migrations, Target, apply};

#[cfg(test)]
mod tests;

/// Why a tenant database was not provisioned. In each case the registry has no row for it and
/// no database made by this call is left.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProvisionError {
    /// A database of that name already exists on the server: not made by this call, so it is
    /// left alone.
    #[error("a database named {0} already exists on the server; it was left as it is")]
    DatabaseExists(DatabaseName),
    /// A tenant migration failed in the new database, which was dropped.
    #[error("tenant migration failed in {database}; the database was dropped: {cause}")]
    Migration {
        /// The database that was made and dropped.
        database: DatabaseName,
        /// The migration's error.
        cause: crate::Error,
    },
    /// The registration failed; the database was dropped.
    #[error("registering {database} failed; the database was dropped: {cause}")]
    Register {
        /// The database that was made and dropped.
        database: DatabaseName,
        /// The registration's error.
        cause: crate::Error,
    },
    /// The new database could not be told whose it is; it was dropped.
    #[error("recording tenant {tenant} in {database} failed; the database was dropped: {cause}")]
    Identity {
        /// The database that was made and dropped.
        database: DatabaseName,
        /// The tenant it was made for.
        tenant: TenantId,
        /// What failed.
        cause: sqlx::Error,
    },
    /// The registry failed while the cleanup asked it about a database.
    #[error("the registry failed: {0}")]
    Registry(crate::Error),
    /// The server or the registry failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Where a tenant's database comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// A copy of the template, kept at the latest tenant migration (the handle takes spares
    /// first, falling back to the template: [`Source::Spare`]).
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "the handle provisions through `Spare`")
    )]
    Template(&'a DatabaseName),
    /// An empty database in which every tenant migration then runs.
    Empty(&'a Migrations),
    /// A spare made from the template at `version` by [`warm_spares`], renamed; the template
    /// when none is left.
    Spare {
        /// The template, for when no spare is left.
        template: &'a DatabaseName,
        /// The latest tenant migration's version (spares made at another are not taken).
        version: i64,
    },
}

/// How a database was made, for measurement and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Made {
    /// Copied from the template.
    Template,
    /// Created empty and migrated.
    Migrated,
    /// A spare, renamed.
    Spare,
}

/// The history table of a tenant database: the same shape as an own-schema tenant's, in
/// `public`, so that `migrate::apply` serves both.
const HISTORY_DDL: &str = "CREATE TABLE IF NOT EXISTS public.tenancy_migrations (
     version     bigint PRIMARY KEY,
     description text NOT NULL,
     checksum    bytea NOT NULL,
     applied_at  timestamptz NOT NULL DEFAULT now()
 )";

/// What makes a database say whose it is: a `tenancy` schema with a one-row `tenancy.tenants`
/// (the tenant's id and slug), in every tenant database, the template and the spares (empty
/// there until provisioning fills it). Tenant migrations that reference `tenancy.tenants (id)`
/// work unchanged, and every connection to a tenant's database checks the row before serving
/// the tenant (`budget`), so a renamed or swapped database never serves another tenant.
pub(crate) const IDENTITY_DDL: &str = "CREATE SCHEMA IF NOT EXISTS tenancy; \
     CREATE TABLE IF NOT EXISTS tenancy.tenants (id uuid PRIMARY KEY, slug text NOT NULL); \
     CREATE UNIQUE INDEX IF NOT EXISTS tenants_one_row ON tenancy.tenants ((true));";

/// The write fence inside a tenant database (see `crate::moving`): the registry's functions
/// (`sql::fence::fence_functions`), with the same fence key and errors, checking the
/// database's identity row instead of the registry's row. A move out of the database seals the row (`moved_at`) in the
/// transaction that holds the key exclusive, so that a write that waited for the move, or one
/// of a context resolved before it, fails with TM002 and never lands in the old copy. Made
/// with every database (template, spares, the empty path) and added to a database made by an
/// older version when a connection to it is first opened (`budget`): idempotent. Not
/// formatted: rustfmt would re-indent the lines of its SQL, which a move compares.
#[rustfmt::skip]
pub(crate) const FENCE_DDL: &str = concat!(
    "
ALTER TABLE tenancy.tenants ADD COLUMN IF NOT EXISTS moved_at timestamptz;

",
    crate::sql::fence::fence_functions!(
        create: "CREATE OR REPLACE",
        security: "",
        row_comment: "    -- The identity row before the fence key: a mover locks them in that order.",
        home_gone: "p_placement OPERATOR(pg_catalog.<>) 'own_database' OR NOT EXISTS (
        SELECT FROM tenancy.tenants t
        WHERE t.id OPERATOR(pg_catalog.=) p_tenant AND t.moved_at IS NULL
    )",
    )
);

/// The fence functions [`FENCE_DDL`] makes, in its order, each with its signature.
const FENCE_FUNCTIONS: [&str; 3] = [
    "tenancy.write_fence_wait(uuid)",
    "tenancy.write_fence_serial(uuid)",
    "tenancy.write_fence(uuid,text,text)",
];

/// The body `ddl` ([`FENCE_DDL`], or a server home's `HOME_FENCE_DDL`) gives each of
/// [`FENCE_FUNCTIONS`], as `pg_proc.prosrc` keeps it.
pub(crate) fn fence_bodies(
    ddl: &'static str,
) -> impl Iterator<Item = (&'static str, &'static str)> {
    FENCE_FUNCTIONS
        .into_iter()
        .zip(ddl.split("$fn$").skip(1).step_by(2))
}

/// Whether the database `conn` is on has tenancy's identity table (`tenancy.tenants`): a
/// database cut off between its `CREATE DATABASE` and [`stamp`] may lack even the schema.
pub(crate) async fn has_identity(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Row;
    // No arguments: one simple query, no transaction around it (see `crate::sql::in_own_tx`).
    sqlx::raw_sql("SELECT pg_catalog.to_regclass('tenancy.tenants') IS NOT NULL")
        .fetch_one(conn)
        .await?
        .try_get(0)
}

/// The first fence function in the tenant database `conn` is on that is not as `ddl` makes it
/// ([`FENCE_DDL`] in an own database, `databases::home::HOME_FENCE_DDL` in a server home: a
/// body, language or signature changed by hand, or a second function of its name), by its
/// name; `None` if every one there is tenancy's. A missing one is no finding:
/// [`ensure_fence`] adds it, and no write got past it while it was missing.
///
/// Why a move checks: a fence replaced by one that always passes lets a write of a context
/// resolved before the move into the old copy, during the copy or after the seal, and be
/// acknowledged there while the tenant's rows live on elsewhere.
pub(crate) async fn foreign_fence(
    conn: &mut PgConnection,
    ddl: &'static str,
) -> Result<Option<String>, sqlx::Error> {
    let found: Vec<(String, String, String, bool)> = crate::sql::in_own_tx(conn, async |c| {
        sqlx::query_as(
            "SELECT p.proname::text, p.oid::regprocedure::text, p.prosrc, \
                    l.lanname = 'plpgsql' AND NOT p.prosecdef AND p.prorettype = \
                    (CASE p.proname WHEN 'write_fence' THEN 'uuid' ELSE 'void' END)::regtype \
             FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang \
             WHERE p.pronamespace = to_regnamespace('tenancy') \
               AND p.proname IN ('write_fence', 'write_fence_wait', 'write_fence_serial') \
             ORDER BY 2",
        )
        .persistent(false)
        .fetch_all(c)
        .await
    })
    .await?;
    for (name, signature, body, plain) in found {
        let ours = fence_bodies(ddl).any(|(sig, expected)| sig == signature && expected == body);
        if !ours || !plain {
            return Ok(Some(format!("tenancy.{name}")));
        }
    }
    Ok(None)
}

/// Adds the write fence to the tenant database `conn` is on when it lacks it (a database made
/// by an older version, a function dropped by hand): `ddl`, the fence of its kind
/// ([`FENCE_DDL`] for an own database, `databases::home::HOME_FENCE_DDL` for a server home).
/// Returns whether it had to.
pub(crate) async fn ensure_fence(
    conn: &mut PgConnection,
    ddl: &'static str,
) -> Result<bool, sqlx::Error> {
    // The columns the fence reads: a home's lines also say where in the home each tenant
    // lives (a home made before they did gets the column and the home's fence here).
    let columns: &[&str] = if ddl == FENCE_DDL {
        &["moved_at"]
    } else {
        &["moved_at", "schema_name"]
    };
    // Outside any transaction (see `crate::sql::in_own_tx`).
    let present: bool = crate::sql::in_own_tx(conn, async |c| {
        sqlx::query_scalar(
            "SELECT to_regprocedure('tenancy.write_fence(uuid, text, text)') IS NOT NULL \
             AND to_regprocedure('tenancy.write_fence_wait(uuid)') IS NOT NULL \
             AND to_regprocedure('tenancy.write_fence_serial(uuid)') IS NOT NULL \
             AND (SELECT count(*) FROM pg_attribute WHERE attrelid = 'tenancy.tenants'::regclass \
                  AND attname = ANY($1) AND NOT attisdropped) = cardinality($1)",
        )
        .persistent(false)
        .bind(columns)
        .fetch_one(c)
        .await
    })
    .await?;
    if present {
        return Ok(false);
    }
    sqlx::raw_sql(ddl).execute(&mut *conn).await?;
    Ok(true)
}

/// Creates `tenant`'s database on the server of `server` (a connection to its maintenance
/// database; `options` reach the same server), records in it whose it is (the tenant's id and
/// slug; see [`IDENTITY_DDL`]) and registers it with `register`, run in a registry transaction on
/// `registry` that commits only if the database exists. See the module documentation for the
/// order and what a crash leaves.
///
/// # Errors
/// [`ProvisionError`]: whatever fails, this call leaves no registry row and no database it made.
/// A failed commit of the registry transaction is the one unknown outcome: the database is
/// then kept, and [`cleanup_orphans`] drops it if the registry does not have the row.
pub(crate) async fn provision(
    registry: &mut PgConnection,
    server: &mut PgConnection,
    options: &PgConnectOptions,
    naming: &Naming,
    (tenant, slug): (TenantId, &str),
    source: Source<'_>,
    register: impl AsyncFnOnce(&mut PgConnection) -> crate::Result<()>,
) -> Result<(DatabaseName, Made), ProvisionError> {
    let database = naming.tenant(tenant);
    let mut tx = registry.begin().await?;
    lock_name(&mut tx, &database).await?;
    let made = create(server, options, naming, &database, source).await?;
    if let Err(cause) = stamp(options, &database, tenant, slug).await {
        drop(tx);
        drop_database(server, &database).await?;
        return Err(ProvisionError::Identity {
            database,
            tenant,
            cause,
        });
    }
    if let Err(cause) = register(&mut *tx).await {
        drop(tx);
        drop_database(server, &database).await?;
        return Err(ProvisionError::Register { database, cause });
    }
    tx.commit().await?;
    Ok((database, made))
}

/// Step 1 of [`provision`]: the transaction-level lock on `database`'s name, in the registry
/// transaction `tx`, which tells [`cleanup_orphans`] that the database is being made (by a
/// provisioning, a move into it, or a template's build) and is no leftover.
pub(crate) async fn lock_name(
    tx: &mut PgConnection,
    database: &DatabaseName,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('tenancy.database'), hashtext($1))")
        .persistent(false)
        .bind(database.as_str())
        .execute(tx)
        .await?;
    Ok(())
}

/// Step 2 of [`provision`]: the database, made from `source`. On the empty path a failed
/// migration drops it again.
pub(crate) async fn create(
    server: &mut PgConnection,
    options: &PgConnectOptions,
    naming: &Naming,
    database: &DatabaseName,
    source: Source<'_>,
) -> Result<Made, ProvisionError> {
    match source {
        Source::Template(template) => {
            from_template(server, database, template).await?;
            Ok(Made::Template)
        }
        Source::Spare { template, version } => {
            if claim_spare(server, naming, database, version).await? {
                return Ok(Made::Spare);
            }
            from_template(server, database, template).await?;
            Ok(Made::Template)
        }
        Source::Empty(migrations) => {
            run(server, format!("CREATE DATABASE {}", database.quoted()))
                .await
                .map_err(|e| taken(e, database))?;
            if let Err(cause) = migrate(options, database, migrations).await {
                drop_database(server, database).await?;
                return Err(ProvisionError::Migration {
                    database: database.clone(),
                    cause,
                });
            }
            Ok(Made::Migrated)
        }
    }
}

async fn from_template(
    server: &mut PgConnection,
    database: &DatabaseName,
    template: &DatabaseName,
) -> Result<(), ProvisionError> {
    run(
        server,
        format!(
            "CREATE DATABASE {} TEMPLATE {}",
            database.quoted(),
            template.quoted()
        ),
    )
    .await
    .map_err(|e| taken(e, database))
}

/// Renames one of the spares made at `version` to `database`. `false` when none is left. Two
/// callers racing for one spare: the rename succeeds for one, the other finds it gone and tries
/// the next.
async fn claim_spare(
    server: &mut PgConnection,
    naming: &Naming,
    database: &DatabaseName,
    version: i64,
) -> Result<bool, ProvisionError> {
    let spares: Vec<String> = crate::sql::in_own_tx(&mut *server, async |c| {
        sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname",
        )
        .persistent(false)
        .bind(naming.spare_prefix(version))
        .fetch_all(c)
        .await
    })
    .await?;
    for spare in spares {
        let Ok(spare) = DatabaseName::parse(&spare) else {
            continue;
        };
        let renamed = run(
            server,
            format!(
                "ALTER DATABASE {} RENAME TO {}",
                spare.quoted(),
                database.quoted()
            ),
        )
        .await;
        match renamed {
            Ok(()) => return Ok(true),
            // Taken by another caller (gone), or someone is connected to it: the next one.
            Err(e) if is(&e, "3D000") || is(&e, "55006") => continue,
            Err(e) => return Err(taken(e, database)),
        }
    }
    Ok(false)
}

/// Makes `n` spares from the template at tenant migration `version`, after dropping spares made
/// at any other version (they would need migrating). Returns the spares made.
pub(crate) async fn warm_spares(
    server: &mut PgConnection,
    naming: &Naming,
    template: &DatabaseName,
    version: i64,
    n: usize,
) -> Result<Vec<DatabaseName>, ProvisionError> {
    let current = naming.spare_prefix(version);
    let stale: Vec<String> = crate::sql::in_own_tx(&mut *server, async |c| {
        sqlx::query_scalar(
            "SELECT datname FROM pg_database \
         WHERE starts_with(datname, $1 || 'spare_v') AND NOT starts_with(datname, $2)",
        )
        .persistent(false)
        .bind(naming.prefix())
        .bind(&current)
        .fetch_all(c)
        .await
    })
    .await?;
    for name in stale {
        if let Ok(name) = DatabaseName::parse(&name) {
            drop_database(server, &name).await?;
        }
    }
    let mut made = Vec::with_capacity(n);
    for _ in 0..n {
        let spare = naming.new_spare(version);
        from_template(server, &spare, template).await?;
        made.push(spare);
    }
    Ok(made)
}

/// Creates the template database if it is missing, and brings it to the latest tenant
/// migration. Run it at deploy time, after the tenant migrations change: while it runs, no
/// database can be made from the template.
///
/// # Errors
/// [`ProvisionError::Migration`] if a migration fails (the template keeps its previous
/// migrations: they run in one transaction).
///
/// The handle builds its templates with `Databases::ensure_template` instead, under a new name
/// per set of migrations, so that a half-migrated template is never copied; this one, which
/// migrates in place, serves this module's tests.
#[cfg(test)]
pub(crate) async fn ensure_template(
    server: &mut PgConnection,
    options: &PgConnectOptions,
    template: &DatabaseName,
    migrations: &Migrations,
) -> Result<(), ProvisionError> {
    let exists: bool = crate::sql::in_own_tx(&mut *server, async |c| {
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
            .persistent(false)
            .bind(template.as_str())
            .fetch_one(c)
            .await
    })
    .await?;
    if !exists {
        match run(server, format!("CREATE DATABASE {}", template.quoted())).await {
            // Another process made it meanwhile: the same template.
            Err(e) if is(&e, "42P04") => {}
            other => other?,
        }
    }
    migrate(options, template, migrations)
        .await
        .map_err(|cause| ProvisionError::Migration {
            database: template.clone(),
            cause,
        })
}

/// What [`cleanup_orphans`] asks the registry: whether it keeps `tenant`'s `database`, in the
/// registry transaction `registry`. A trait with a boxed `Send` future rather than an async
/// closure: one that captures references would make the future of every `connect` (which
/// runs the cleanup) not provably `Send`.
pub(crate) trait Registered: Sync {
    fn keeps<'c>(
        &'c self,
        registry: &'c mut PgConnection,
        tenant: TenantId,
        database: &'c DatabaseName,
    ) -> BoxFuture<'c, crate::Result<bool>>;
}

/// Drops every database of this registry's naming that the registry does not know and that no
/// provisioning or move in flight holds: what a crash between creating a database and
/// registering it (or switching a tenant into it) left. `registered` answers, in a registry
/// transaction, whether the registry records the database as its tenant's. Returns the
/// databases dropped.
pub(crate) async fn cleanup_orphans(
    registry: &mut PgConnection,
    server: &mut PgConnection,
    naming: &Naming,
    registered: &impl Registered,
) -> Result<Vec<DatabaseName>, ProvisionError> {
    let names: Vec<String> = crate::sql::in_own_tx(&mut *server, async |c| {
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .persistent(false)
            .bind(naming.prefix())
            .fetch_all(c)
            .await
    })
    .await?;
    let mut dropped = Vec::new();
    for name in names {
        let Ok(database) = DatabaseName::parse(&name) else {
            continue;
        };
        // A tenant's database, or a template's build a crash or a cancellation left (a
        // build in progress holds its name's lock); spares and templates are kept.
        let tenant = naming.tenant_of(&database);
        if tenant.is_none() && !naming.is_build(&database) {
            continue;
        }
        let mut tx = registry.begin().await?;
        let free: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_xact_lock(hashtext('tenancy.database'), hashtext($1))",
        )
        .persistent(false)
        .bind(database.as_str())
        .fetch_one(&mut *tx)
        .await?;
        // Held: a provisioning is between creating and registering this database.
        if !free {
            continue;
        }
        let keep = match tenant {
            Some(tenant) => registered
                .keeps(&mut tx, tenant, &database)
                .await
                .map_err(ProvisionError::Registry)?,
            None => false,
        };
        if keep {
            continue;
        }
        // Listed before its lock was free: a template's build renamed meanwhile is gone, not
        // dropped, and is not reported as a leftover.
        let exists: bool = crate::sql::in_own_tx(&mut *server, async |c| {
            sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
                .persistent(false)
                .bind(database.as_str())
                .fetch_one(c)
                .await
        })
        .await?;
        if !exists {
            continue;
        }
        drop_database(server, &database).await?;
        tx.commit().await?;
        dropped.push(database);
    }
    Ok(dropped)
}

/// Drops `database`, whoever is connected to it.
pub(crate) async fn drop_database(
    server: &mut PgConnection,
    database: &DatabaseName,
) -> Result<(), ProvisionError> {
    run(
        server,
        format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", database.quoted()),
    )
    .await?;
    Ok(())
}

/// Ends every other session connected to `database`, waiting up to 5 s for each to exit. For a
/// database being built (a template) before it is renamed and copied, neither of which
/// PostgreSQL allows while a session is connected: a pooler in front of the server (PgBouncer)
/// keeps its server connections to a database after the client that opened them has closed.
pub(crate) async fn end_sessions(
    server: &mut PgConnection,
    database: &DatabaseName,
) -> Result<(), sqlx::Error> {
    crate::sql::in_own_tx(server, async |c| {
        sqlx::query(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .persistent(false)
        .bind(database.as_str())
        .execute(c)
        .await
    })
    .await?;
    Ok(())
}

/// Records in the new `database` whose it is (see [`IDENTITY_DDL`]).
pub(crate) async fn stamp(
    options: &PgConnectOptions,
    database: &DatabaseName,
    tenant: TenantId,
    slug: &str,
) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect_with(&options.clone().database(database.as_str())).await?;
    // The DDL too: a database made by an older version, or by hand, may lack the table.
    sqlx::raw_sql(IDENTITY_DDL).execute(&mut conn).await?;
    sqlx::raw_sql(FENCE_DDL).execute(&mut conn).await?;
    crate::sql::in_own_tx(&mut conn, async |c| {
        sqlx::query("INSERT INTO tenancy.tenants (id, slug) VALUES ($1, $2)")
            .persistent(false)
            .bind(tenant.as_uuid())
            .bind(slug)
            .execute(c)
            .await
    })
    .await?;
    conn.close().await
}

/// The tenant migrations in `database`, with its history, in one transaction.
pub(crate) async fn migrate(
    options: &PgConnectOptions,
    database: &DatabaseName,
    migrations: &Migrations,
) -> crate::Result<()> {
    let mut conn = PgConnection::connect_with(&options.clone().database(database.as_str())).await?;
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(IDENTITY_DDL).execute(&mut *tx).await?;
    sqlx::raw_sql(FENCE_DDL).execute(&mut *tx).await?;
    sqlx::raw_sql(HISTORY_DDL).execute(&mut *tx).await?;
    apply(&mut tx, &Target::Schema("public".to_owned()), migrations).await?;
    tx.commit().await?;
    // Closed, not kept: a session left on a template would block databases made from it.
    conn.close().await?;
    Ok(())
}

async fn run(server: &mut PgConnection, sql: String) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(crate::sql::text(sql))
        .execute(server)
        .await
        .map(|_| ())
}

/// Whether PostgreSQL refused with SQLSTATE `state`.
fn is(e: &sqlx::Error, state: &str) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some(state))
}

/// `duplicate_database` as [`ProvisionError::DatabaseExists`]; so is a unique violation on
/// `pg_database`, what a `CREATE DATABASE` gets when another one of the same name (say of a
/// cancelled caller whose backend has not yet noticed) committed while it waited.
fn taken(e: sqlx::Error, database: &DatabaseName) -> ProvisionError {
    if is(&e, "42P04") || is(&e, "23505") {
        ProvisionError::DatabaseExists(database.clone())
    } else {
        ProvisionError::Database(e)
    }
}
