//! Every statement the handle runs on the registry's own tables (`tenancy.*`) outside
//! resolution, named for what it does, so that the registry's schema and the SQL that reads and
//! writes it can be read (and changed) side by side. Resolution's statements are in `mod.rs`,
//! the schema itself in `schema.rs`.
//!
//! The registry's tables may be Citus reference tables (see the README's Citus section), and
//! Citus refuses some forms on them that PostgreSQL takes: a function that is not `IMMUTABLE`
//! (`now()`) inside `CASE` or `COALESCE` or in `ON CONFLICT ... DO UPDATE SET`, and a subquery in
//! `INSERT ... VALUES`. The writes here avoid them; tests/citus.rs runs each on a cluster.

pub(crate) const MEMBER_ROLE: &str =
    "SELECT role FROM tenancy.memberships WHERE tenant_id = $1 AND user_id = $2";

pub(crate) const MEMBERSHIP_UPSERT: &str = "INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES ($1, $2, $3) \
     ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = EXCLUDED.role, \
     created_at = EXCLUDED.created_at \
     RETURNING tenant_id, user_id, role, created_at";

pub(crate) const MEMBERSHIP_DELETE: &str =
    "DELETE FROM tenancy.memberships WHERE tenant_id = $1 AND user_id = $2";

pub(crate) const MEMBERSHIPS_OF_TENANT: &str = "SELECT tenant_id, user_id, role, created_at FROM tenancy.memberships \
     WHERE tenant_id = $1 ORDER BY user_id";

pub(crate) const AUDIT_SUPERUSER_REFUSED: &str = "INSERT INTO tenancy.audit_log (actor, reason, action, detail) \
     VALUES ($1, $2, 'superuser.refused', $3)";

pub(crate) const AUDIT_SUPERUSER_ACQUIRED: &str = "INSERT INTO tenancy.audit_log (actor, reason, action, detail) \
     VALUES ($1, $2, 'superuser.acquire', $3) RETURNING id, at";

pub(crate) const AUDIT_INSERT: &str = "INSERT INTO tenancy.audit_log (actor, reason, action, tenant_ids, grant_id, detail) \
     VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) const LOCK_TENANTS_FOR_CREATION: &str =
    "LOCK TABLE tenancy.tenants IN SHARE ROW EXCLUSIVE MODE";

pub(crate) const TENANT_INSERT: &str = "INSERT INTO tenancy.tenants (id, slug, name, placement, schema_name, database_name, server) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Whether another tenant holds id `$1`, slug `$2` (or its schema `$3`), and the first of hosts
/// `$4` that one holds: which value of a failed creation was taken, when the server's error does
/// not say.
pub(crate) const TENANT_VALUES_TAKEN: &str = "SELECT \
     EXISTS (SELECT 1 FROM tenancy.tenants WHERE id = $1), \
     EXISTS (SELECT 1 FROM tenancy.tenants WHERE slug = $2 OR schema_name = $3), \
     (SELECT host FROM tenancy.domains WHERE host = ANY ($4) ORDER BY host LIMIT 1)";

pub(crate) const TENANT_ID_WAS_PURGED: &str =
    "SELECT EXISTS (SELECT 1 FROM tenancy.purged_tenants WHERE id = $1)";

pub(crate) const DOMAIN_INSERT: &str =
    "INSERT INTO tenancy.domains (host, tenant_id, is_primary) VALUES ($1, $2, $3)";

pub(crate) const TENANT_STATUS_FOR_UPDATE: &str =
    "SELECT status FROM tenancy.tenants WHERE id = $1 FOR UPDATE";

/// Soft-deletes tenant `$1`: the status and the time, which the table's check ties together.
pub(crate) const TENANT_SET_DELETED: &str =
    "UPDATE tenancy.tenants SET status = 'deleted', deleted_at = now() WHERE id = $1";

/// Sets tenant `$1`'s status to `$2`, one that is not `deleted` (suspended, active).
pub(crate) const TENANT_SET_LIVE_STATUS: &str =
    "UPDATE tenancy.tenants SET status = $2, deleted_at = NULL WHERE id = $1";

pub(crate) const TENANT_STATUS_AND_SCHEMA_FOR_UPDATE: &str = "SELECT status, schema_name, database_name, server FROM tenancy.tenants WHERE id = $1 FOR UPDATE";

/// This registry's tag, which its databases' names carry (see `databases::name`).
pub(crate) const DEPLOYMENT_TAG: &str = "SELECT tag FROM tenancy.deployment";

/// The servers on which a registry row (a tenant's home or an old copy) names database `$1`.
pub(crate) const DATABASE_SERVERS: &str = "SELECT coalesce(array_agg(DISTINCT server), '{}') FROM ( \
     SELECT server FROM tenancy.tenants WHERE database_name = $1 \
     UNION ALL SELECT server FROM tenancy.old_copies WHERE database_name = $1) s";

/// Whether a registry row (a tenant's home or an old copy) names database `$1` on server `$2`.
pub(crate) const DATABASE_REGISTERED_ON: &str = "SELECT EXISTS (SELECT 1 FROM tenancy.tenants \
     WHERE database_name = $1 AND server = $2) \
     OR EXISTS (SELECT 1 FROM tenancy.old_copies WHERE database_name = $1 AND server = $2)";

/// Own-database tenants, for migrations.
pub(crate) const OWN_DATABASE_TENANTS: &str = "SELECT id, slug, database_name, server FROM tenancy.tenants \
     WHERE placement = 'own_database' ORDER BY slug";

/// The servers other than the registry's that have shared-table tenants (of any status): each
/// has a home database to migrate.
pub(crate) const SERVER_HOMES: &str = "SELECT DISTINCT server FROM tenancy.tenants \
     WHERE placement IN ('shared_table', 'own_schema') AND server <> 'primary' ORDER BY server";

pub(crate) const TENANT_DELETE: &str = "DELETE FROM tenancy.tenants WHERE id = $1";

pub(crate) const PURGED_INSERT: &str = "INSERT INTO tenancy.purged_tenants (id) VALUES ($1)";

pub(crate) const TENANT_SET_SLUG: &str = "UPDATE tenancy.tenants SET slug = $2 WHERE id = $1";

pub(crate) const DOMAINS_CLEAR_PRIMARY: &str =
    "UPDATE tenancy.domains SET is_primary = false WHERE tenant_id = $1";

/// Whether tenant `$1` has a primary host. Read under the tenant's row lock, which every change
/// to its hosts takes, so the answer holds until the insert that follows it.
pub(crate) const TENANT_HAS_PRIMARY_HOST: &str =
    "SELECT EXISTS (SELECT 1 FROM tenancy.domains WHERE tenant_id = $1 AND is_primary)";

pub(crate) const DOMAIN_DELETE: &str =
    "DELETE FROM tenancy.domains WHERE host = $1 AND tenant_id = $2";

pub(crate) const DOMAINS_ELECT_PRIMARY: &str = "UPDATE tenancy.domains SET is_primary = true WHERE host = ( \
     SELECT host FROM tenancy.domains WHERE tenant_id = $1 ORDER BY host LIMIT 1) \
     AND NOT EXISTS (SELECT 1 FROM tenancy.domains WHERE tenant_id = $1 AND is_primary)";

pub(crate) const TENANT_LOCK: &str = "SELECT id FROM tenancy.tenants WHERE id = $1 FOR UPDATE";

pub(crate) const SPARES_COUNT: &str = "SELECT count(*) FROM tenancy.spare_schemas";

pub(crate) const SPARE_INSERT: &str = "INSERT INTO tenancy.spare_schemas (name) VALUES ($1)";

pub(crate) const SPARE_DELETE: &str = "DELETE FROM tenancy.spare_schemas WHERE name = $1";

pub(crate) const SPARES_ALL: &str = "SELECT name FROM tenancy.spare_schemas ORDER BY name";

/// Skips a spare that a provisioning holds (or that is gone).
pub(crate) const SPARE_LOCK_IF_FREE: &str =
    "SELECT name FROM tenancy.spare_schemas WHERE name = $1 FOR UPDATE SKIP LOCKED";

/// Takes the oldest spare no one else is taking, behind a savepoint (`tenancy_take_spare`) that
/// rides with it in one round trip, so that a failed adoption can give the spare back.
pub(crate) const SPARE_TAKE_OLDEST: &str = "SAVEPOINT tenancy_take_spare; \
     DELETE FROM tenancy.spare_schemas WHERE name = ( \
         SELECT name FROM tenancy.spare_schemas ORDER BY created_at, name \
         LIMIT 1 FOR UPDATE SKIP LOCKED) \
     RETURNING name";

pub(crate) const TENANT_SCHEMA: &str =
    "SELECT schema_name, database_name, server FROM tenancy.tenants WHERE id = $1";

pub(crate) const OWN_SCHEMA_TENANTS: &str = "SELECT id, slug, schema_name, server FROM tenancy.tenants \
     WHERE placement = 'own_schema' AND schema_name IS NOT NULL ORDER BY slug";

/// The head of a report's tenant resolution (the caller adds its `WHERE`): each tenant with
/// whether column `$2` of table `$1` is declared `NOT NULL` (`NULL` without such a column).
pub(crate) const TENANTS_WITH_COLUMN_NOT_NULL: &str = "SELECT id, slug, status, placement, schema_name, database_name, server, \
     (SELECT a.attnotnull FROM pg_attribute a WHERE a.attrelid = to_regclass($1) \
      AND a.attname = $2 AND NOT a.attisdropped) AS not_null \
     FROM tenancy.tenants ";

/// The head of an audit log read (the caller adds its filters with `AND`).
pub(crate) const AUDIT_LOG_FILTERED: &str = "SELECT id, at, actor, reason, action, tenant_ids, grant_id, detail \
     FROM tenancy.audit_log WHERE TRUE";

/// A tenant's status and home, its row locked against other changes for a move; writes of the
/// tenant (foreign key checks' `FOR KEY SHARE`) are not blocked.
pub(crate) const TENANT_FOR_MOVE: &str = "SELECT slug, status, placement, schema_name, database_name, server \
     FROM tenancy.tenants WHERE id = $1 FOR NO KEY UPDATE";

/// Tenant `$1`'s registry row share-locked, for `purge_old_copy`: a move (`FOR NO KEY UPDATE`)
/// waits, while writers, whose fence share-locks the row in `REPEATABLE READ`, do not wait for
/// the purge's drop of a database.
pub(crate) const TENANT_FOR_PURGE: &str = "SELECT placement, database_name, server \
     FROM tenancy.tenants WHERE id = $1 FOR SHARE";

/// A tenant's home, for a statement that failed on a table its context expected.
pub(crate) const TENANT_HOME: &str =
    "SELECT placement, schema_name, server FROM tenancy.tenants WHERE id = $1";

/// The switch of a move: the tenant's new home (placement, schema, database, server).
pub(crate) const TENANT_SET_HOME: &str = "UPDATE tenancy.tenants \
     SET placement = $2, schema_name = $3, database_name = $4, server = $5 WHERE id = $1";

pub(crate) const OLD_COPY_INSERT: &str = "INSERT INTO tenancy.old_copies \
     (tenant_id, placement, schema_name, database_name, server) VALUES ($1, $2, $3, $4, $5)";

pub(crate) const OLD_COPIES_OF_TENANT: &str = "SELECT placement, schema_name, database_name, server \
     FROM tenancy.old_copies \
     WHERE tenant_id = $1 ORDER BY placement FOR UPDATE";

/// Removes the records of tenant `$1`'s old copies on server `$2` (old databases, old rows or
/// schemas in its home); returns what each was.
pub(crate) const OLD_DATABASES_FORGET: &str = "DELETE FROM tenancy.old_copies \
     WHERE tenant_id = $1 AND server = $2 \
     RETURNING COALESCE(database_name, \
         CASE placement WHEN 'shared_table' THEN 'shared rows' ELSE 'an own schema' END \
         || ' in the home of server ' || server)";

/// Names the old schema of tenant `$1`'s old copy on placement `$2`: `$3`, an own schema a
/// move between the places of one server home left there (no line names it any more).
pub(crate) const OLD_COPY_SCHEMA_SET: &str = "UPDATE tenancy.old_copies SET schema_name = $3 \
     WHERE tenant_id = $1 AND placement = $2";

pub(crate) const OLD_COPY_DELETE: &str =
    "DELETE FROM tenancy.old_copies WHERE tenant_id = $1 AND placement = $2";
