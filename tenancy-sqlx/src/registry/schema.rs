//! The registry's own migrations: the `tenancy` schema, kept apart from the application's.
//!
//! Applied in one transaction under an advisory lock, so that several processes starting at once
//! neither race nor half-apply. A start first reads the registry's version and changes nothing
//! when it is current, so a role that may not create schemas (the application's, in a
//! least-privilege setup) starts once the registry is installed. History lives in `tenancy.registry_migrations`, never in the
//! application's `_sqlx_migrations`.

use sqlx::PgPool;

use crate::{Error, Result};

/// `(version, description, sql)`, in order. Append only: never edit a released migration.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "tenant registry, domains and audit log",
        r#"
CREATE TABLE tenancy.tenants (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL,
    name        text NOT NULL,
    placement   text NOT NULL
                CHECK (placement IN ('shared_table', 'own_schema', 'own_database')),
    schema_name text,
    status      text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'suspended', 'deleted')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    CONSTRAINT tenants_slug_key UNIQUE (slug),
    CONSTRAINT tenants_schema_name_key UNIQUE (schema_name),
    CONSTRAINT tenants_slug_format CHECK (slug ~ '^[a-z][a-z0-9-]*[a-z0-9]$'),
    CONSTRAINT tenants_deleted_at CHECK ((status = 'deleted') = (deleted_at IS NOT NULL))
);

CREATE TABLE tenancy.domains (
    host       text PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    is_primary boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX domains_tenant_idx ON tenancy.domains (tenant_id);
CREATE UNIQUE INDEX domains_one_primary_idx ON tenancy.domains (tenant_id) WHERE is_primary;

CREATE TABLE tenancy.audit_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor      text NOT NULL,
    reason     text NOT NULL,
    action     text NOT NULL,
    tenant_ids uuid[] NOT NULL DEFAULT '{}',
    grant_id   bigint REFERENCES tenancy.audit_log (id),
    detail     text
);
CREATE INDEX audit_log_at_idx ON tenancy.audit_log (at);
"#,
    ),
    (
        2,
        "migration histories",
        r#"
CREATE TABLE tenancy.global_migrations (
    version     bigint PRIMARY KEY,
    description text NOT NULL,
    checksum    bytea NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE tenancy.shared_table_migrations (LIKE tenancy.global_migrations INCLUDING ALL);
"#,
    ),
    (
        3,
        "spare schemas",
        r#"
CREATE TABLE tenancy.spare_schemas (
    name       text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
"#,
    ),
    (
        4,
        "audit log indexes",
        // The audit query narrows by tenant (`tenant_ids @> ARRAY[..]`, which a GIN index
        // serves; `= ANY(tenant_ids)` would not) and by actor, newest first.
        r#"
CREATE INDEX audit_log_tenant_ids_idx ON tenancy.audit_log USING gin (tenant_ids);
CREATE INDEX audit_log_actor_at_idx ON tenancy.audit_log (actor, at);
"#,
    ),
    (
        5,
        "purged tenant ids",
        // Written in purge's transaction; creation refuses these ids, so a process that still
        // holds one (a job payload, a stale cache) never reaches another tenant with it.
        r#"
CREATE TABLE tenancy.purged_tenants (
    id        uuid PRIMARY KEY,
    purged_at timestamptz NOT NULL DEFAULT now()
);
"#,
    ),
    (
        6,
        "memberships",
        // Keyed by the tenant's id, never its slug or host, so renames keep them; removed with
        // the tenant's registry row at purge. The user is the application's id, as text.
        r#"
CREATE TABLE tenancy.memberships (
    tenant_id  uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    user_id    text NOT NULL CHECK (user_id <> ''),
    role       text NOT NULL CHECK (role <> ''),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user_idx ON tenancy.memberships (user_id);
"#,
    ),
    (
        7,
        "own databases and servers",
        // A server is named by a key the application maps to connect options: no URL or
        // credential is stored. Every tenant names its server (the primary one, where the
        // registry lives, by default). The tag names this registry's databases on every server
        // (`tenancy_<tag>_...`), so two registries sharing a server never take each other's
        // databases for leftovers. A row's placement, schema and database agree.
        r#"
CREATE TABLE tenancy.servers (
    key        text PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9-]{0,31}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenancy.servers (key) VALUES ('primary');
CREATE TABLE tenancy.deployment (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    tag text NOT NULL CHECK (tag ~ '^[a-z0-9]{1,12}$')
);
INSERT INTO tenancy.deployment (tag) VALUES (substr(md5(gen_random_uuid()::text), 1, 12));
ALTER TABLE tenancy.tenants
    ADD COLUMN server text NOT NULL DEFAULT 'primary' REFERENCES tenancy.servers (key),
    ADD COLUMN database_name text,
    ADD CONSTRAINT tenants_database_name_key UNIQUE (database_name),
    ADD CONSTRAINT tenants_placement_home CHECK (
        (placement = 'shared_table' AND schema_name IS NULL AND database_name IS NULL)
        OR (placement = 'own_schema' AND schema_name IS NOT NULL AND database_name IS NULL)
        OR (placement = 'own_database' AND schema_name IS NULL AND database_name IS NOT NULL)
    );
"#,
    ),
    (
        8,
        "moves: old copies and the write fence",
        // The write fence (see `moving.rs`): every repository write calls `write_fence` in its
        // own statement. The fast path takes the tenant's fence key shared without waiting;
        // while a move holds it (or waits for it) the write waits `tenancy.move_wait` (5 s by
        // default) in `write_fence_wait`, then fails with TM001. The home check runs in a
        // statement of its own, after the key is held, so that its snapshot sees a move that
        // committed while the write waited; a write for a home the tenant left fails with
        // TM002. In REPEATABLE READ and SERIALIZABLE the snapshot is the transaction's, so the
        // registry row is share-locked first (before the key, the order a mover takes them in,
        // waiting at most `tenancy.move_wait`): a move committed since fails the write (40001).
        // The class key is hashtext('tenancy.write_fence'). The functions are the tenant
        // databases' too (`sql::fence::fence_functions`); the text they make here is the text
        // this migration was released with.
        MIGRATION_8,
    ),
    (
        9,
        "moves out of a tenant database: where an old database is kept",
        // A tenant that moves out of its own database leaves it as the old copy, on its
        // server, until `purge_old_copy` drops it; `cleanup_orphans` keeps it meanwhile.
        // One change a statement, constraints named as PostgreSQL names them inline: on a
        // Citus registry `old_copies` is a Citus table (it references the reference table of
        // tenants), and Citus refuses `ADD CONSTRAINT` beside other subcommands and a
        // constraint inside `ADD COLUMN`. The table comes out as one `ALTER TABLE` made it.
        r#"
ALTER TABLE tenancy.old_copies ADD COLUMN database_name text;
ALTER TABLE tenancy.old_copies ADD COLUMN server text;
ALTER TABLE tenancy.old_copies
    ADD CONSTRAINT old_copies_database_name_key UNIQUE (database_name);
ALTER TABLE tenancy.old_copies
    ADD CONSTRAINT old_copies_server_fkey FOREIGN KEY (server) REFERENCES tenancy.servers (key);
ALTER TABLE tenancy.old_copies
    ADD CONSTRAINT old_copies_database CHECK (
        (placement = 'own_database') = (database_name IS NOT NULL AND server IS NOT NULL)
    );
"#,
    ),
    (
        10,
        "the write fence names the registry's server",
        // Shared-table tenants may live on another server's home database, whose own fence
        // guards their writes there. A write that reaches the registry's database is for a
        // tenant of the registry's server: a tenant moved onto another server's shared tables
        // (same placement, no schema) must not pass the fence here on a stale context.
        MIGRATION_10,
    ),
];

/// Migration 8's text: the old copies' table and the write fence's functions, which tenant
/// databases share (`sql::fence::fence_functions`). Not formatted: rustfmt would re-indent the
/// lines of its SQL, and a released migration's text never changes.
#[rustfmt::skip]
const MIGRATION_8: &str = concat!(
    "
CREATE TABLE tenancy.old_copies (
    tenant_id   uuid NOT NULL REFERENCES tenancy.tenants (id),
    placement   text NOT NULL
                CHECK (placement IN ('shared_table', 'own_schema', 'own_database')),
    schema_name text UNIQUE,
    moved_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, placement)
);

",
    crate::sql::fence::fence_functions!(
        create: "CREATE",
        security: "SECURITY DEFINER ",
        row_comment: "    -- The registry row before the fence key: a mover locks them in that order, so a write
    -- that took the key first and then waited for the row would deadlock with it.",
        home_gone: "NOT EXISTS (
        SELECT FROM tenancy.tenants t
        WHERE t.id OPERATOR(pg_catalog.=) p_tenant
          AND t.placement OPERATOR(pg_catalog.=) p_placement
          AND COALESCE(t.schema_name, '') OPERATOR(pg_catalog.=) COALESCE(p_schema, '')
    )",
    )
);

/// Migration 10's text: the write fence's functions again, the home check also requiring the
/// registry's server (see the migration's note). Not formatted, as migration 8.
#[rustfmt::skip]
const MIGRATION_10: &str = crate::sql::fence::fence_functions!(
    create: "CREATE OR REPLACE",
    security: "SECURITY DEFINER ",
    row_comment: "    -- The registry row before the fence key: a mover locks them in that order, so a write
    -- that took the key first and then waited for the row would deadlock with it.",
    home_gone: "NOT EXISTS (
        SELECT FROM tenancy.tenants t
        WHERE t.id OPERATOR(pg_catalog.=) p_tenant
          AND t.placement OPERATOR(pg_catalog.=) p_placement
          AND COALESCE(t.schema_name, '') OPERATOR(pg_catalog.=) COALESCE(p_schema, '')
          AND t.server OPERATOR(pg_catalog.=) 'primary'
    )",
);

/// The version the registry must be at for this version of the runtime.
fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Makes sure the registry is current: reads its version, and only when it is missing or behind
/// migrates it (if `install`) or says so ([`Error::RegistryNotInstalled`]).
pub(crate) async fn ensure(pool: &PgPool, install: bool) -> Result<()> {
    let version: Option<i32> = crate::conn::Conn::with(pool, async |conn| {
        crate::sql::in_own_tx(conn, async |c| {
            // Two reads: a statement naming a missing table fails to parse whatever its branches.
            let exists: bool = crate::sql::admin_scalar(
                "SELECT to_regclass('tenancy.registry_migrations') IS NOT NULL",
            )
            .fetch_one(&mut *c)
            .await?;
            if !exists {
                return Ok::<_, Error>(None);
            }
            Ok(
                crate::sql::admin_scalar("SELECT max(version) FROM tenancy.registry_migrations")
                    .fetch_one(&mut *c)
                    .await?,
            )
        })
        .await
    })
    .await?;
    match version {
        Some(v) if v >= latest() => Ok(()),
        _ if install => migrate(pool).await,
        None => Err(Error::RegistryNotInstalled(
            "not installed in this database".into(),
        )),
        Some(v) => Err(Error::RegistryNotInstalled(format!(
            "at version {v}, and this version of tenancy needs version {}",
            latest()
        ))),
    }
}

/// Brings the registry schema to the latest version.
async fn migrate(pool: &PgPool) -> Result<()> {
    let mut tx = crate::conn::Conn::begin(pool, sqlx::SqlStr::from_static("BEGIN")).await?;
    // Serialises concurrent starters; released at commit or rollback.
    crate::sql::admin_query(
        "SELECT pg_advisory_xact_lock(hashtext('tenancy.registry_migrations'))",
    )
    .execute(&mut *tx)
    .await?;
    let has_schema: bool =
        crate::sql::admin_scalar("SELECT to_regnamespace('tenancy') IS NOT NULL")
            .fetch_one(&mut *tx)
            .await?;
    if !has_schema {
        // Citus's schema-based sharding, when on, makes every new schema a distributed schema
        // and its tables single-shard tables on some worker; the registry belongs with the
        // coordinator's metadata (reference tables at most), so it is off for this
        // transaction. A server without Citus does not know the setting: nothing to turn off.
        crate::sql::admin_query(
            "SELECT pg_catalog.set_config('citus.enable_schema_based_sharding', 'off', true) \
             WHERE pg_catalog.current_setting('citus.enable_schema_based_sharding', true) \
             IS NOT NULL",
        )
        .execute(&mut *tx)
        .await?;
        // Only when missing: creating a schema needs CREATE on the database, which the owner of
        // an existing `tenancy` schema may not have.
        sqlx::raw_sql("CREATE SCHEMA tenancy")
            .execute(&mut *tx)
            .await?;
    }
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS tenancy.registry_migrations (
             version     integer PRIMARY KEY,
             description text NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now()
         );",
    )
    .execute(&mut *tx)
    .await?;
    let applied: Vec<i32> = crate::sql::admin_scalar(
        "SELECT version FROM tenancy.registry_migrations ORDER BY version",
    )
    .fetch_all(&mut *tx)
    .await?;
    for &(version, description, sql) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        // A statement at a time: Citus sends some DDL on a reference table (an index) to its
        // workers as the text it arrived in, which must then hold it alone (see
        // `raw/split.rs`).
        for statement in crate::raw::split::split(sql).unwrap_or_else(|| vec![sql]) {
            sqlx::raw_sql(statement).execute(&mut *tx).await?;
        }
        crate::sql::admin_query(
            "INSERT INTO tenancy.registry_migrations (version, description) VALUES ($1, $2)",
        )
        .bind(version)
        .bind(description)
        .execute(&mut *tx)
        .await?;
        tracing::info!(version, description, "applied tenancy registry migration");
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    fn sha256(text: &str) -> String {
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The write fence's functions are assembled from one source (`sql::fence`); what that
    /// makes must stay the text released: registries applied migration 8 as it was, and a move
    /// takes a tenant database whose function bodies differ from `FENCE_DDL` for a foreign
    /// fence, so an edit here would flag every database already made.
    #[test]
    fn the_fence_texts_are_the_released_ones() {
        let (version, _, migration) = super::MIGRATIONS[7];
        assert_eq!(version, 8);
        assert_eq!(
            sha256(migration),
            "755996d4745972c31f2369d12f8b2814162aa1eec1a66bf7bfb14c7b22a9271e"
        );
        assert_eq!(
            sha256(crate::databases::provision::FENCE_DDL),
            "673c53185ad57ff00a53da30ee781d77634a1b8269ceba3456468b31c6a719f4"
        );
    }
}
