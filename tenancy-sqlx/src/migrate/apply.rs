//! Applying migrations to one target (the shared tables, or one tenant's schema), all pending
//! migrations in one transaction: a failure leaves the target exactly as it was.

use std::fmt::Write;

use sqlx::{PgConnection, Row};

use super::{MigrationTarget, Migrations};
use crate::runtime::ALL_TENANTS_SETTING;
use crate::{MigrationError, Result};

/// Where tenant migrations run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// The shared tables (found through the search path), history in
    /// `tenancy.shared_table_migrations`.
    SharedTables,
    /// A tenant's schema (validated name), history in `"<schema>".tenancy_migrations`.
    Schema(String),
    /// The app's global tables, history in `tenancy.global_migrations`.
    Global,
}

impl Target {
    fn history(&self) -> String {
        match self {
            Self::SharedTables => "tenancy.shared_table_migrations".into(),
            Self::Global => "tenancy.global_migrations".into(),
            Self::Schema(s) => format!("{}.tenancy_migrations", tenancy_core::ident::quote(s)),
        }
    }

    /// How errors name it, when the caller does not say which tenant it is.
    fn public(&self) -> MigrationTarget {
        match self {
            Self::SharedTables => MigrationTarget::SharedTables,
            Self::Global => MigrationTarget::Global,
            Self::Schema(schema) => MigrationTarget::Schema {
                schema: schema.clone(),
            },
        }
    }

    fn lock_key(&self) -> String {
        match self {
            Self::SharedTables => "shared_tables".into(),
            Self::Global => "global".into(),
            Self::Schema(s) => format!("schema:{s}"),
        }
    }
}

/// The history table's definition, for a new schema.
fn history_ddl(schema: &str) -> String {
    format!(
        "CREATE TABLE {}.tenancy_migrations (
             version     bigint PRIMARY KEY,
             description text NOT NULL,
             checksum    bytea NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now()
         )",
        tenancy_core::ident::quote(schema)
    )
}

/// One script that creates `schema` with its history and applies every migration to it, for a
/// schema no one else can see yet (created in the caller's transaction): one round trip, and no
/// lock or history to read.
pub(crate) fn fresh_schema_script(schema: &str, migrations: &Migrations) -> String {
    let quoted = tenancy_core::ident::quote(schema);
    let history = Target::Schema(schema.to_owned()).history();
    let mut script = format!(
        "CREATE SCHEMA {quoted};\n{};\n{};\n",
        history_ddl(schema),
        search_path(schema)
    );
    for m in migrations.iter() {
        let _ = write!(
            script,
            "{};\nINSERT INTO {history} (version, description, checksum) VALUES ({}, {}, '\\x{}'::bytea);\n",
            guarded(&m.sql),
            m.version,
            literal(&m.description),
            hex(&m.checksum)
        );
    }
    // Leave the search path as the transaction found it for the statements that follow.
    script.push_str("SET LOCAL search_path TO DEFAULT;");
    script
}

/// A tenant migration sees its own schema (and, implicitly, `pg_catalog`) and nothing else: a
/// table missing from the schema is an error, never another schema's table of that name.
fn search_path(schema: &str) -> String {
    format!(
        "SET LOCAL search_path TO {}",
        tenancy_core::ident::quote(schema)
    )
}

/// Migration text as one `DO` block that runs it with PL/pgSQL's `EXECUTE`: PostgreSQL refuses
/// transaction control there ("EXECUTE of transaction commands is not implemented"), and a
/// procedure or nested `DO` it calls runs atomically, inside the caller's transaction, so it
/// cannot commit either. This, not [`Migrations::check_runnable`], is what keeps a migration in
/// its transaction. The dollar-quote tags are chosen so that the text contains neither.
///
/// One `EXECUTE` per statement (`raw/split.rs`), in order: Citus propagates some
/// DDL (`CREATE INDEX`, `DROP INDEX`) to its workers as the text the statement arrived in, which
/// must then hold that statement alone. Text the splitter cannot read with certainty runs whole,
/// as one `EXECUTE`.
fn guarded(sql: &str) -> String {
    let mut n = 0u32;
    let (outer, inner) = loop {
        let outer = format!("$tenancy_do_{n}$");
        let inner = format!("$tenancy_sql_{n}$");
        if !sql.contains(&outer) && !sql.contains(&inner) {
            break (outer, inner);
        }
        n += 1;
    };
    let mut block = format!("DO {outer} BEGIN");
    for statement in crate::raw::split::split(sql).unwrap_or_else(|| vec![sql]) {
        let _ = write!(block, " EXECUTE {inner}{statement}\n{inner};");
    }
    let _ = write!(block, " END {outer}");
    block
}

/// A condition true when the relation `oid` (an SQL expression of type `regclass`) is not a
/// migration history as tenancy makes one: a plain table without row security, rules, check
/// constraints or triggers of the database's (Citus gives its tables a truncate trigger of
/// its own, in `pg_catalog`), with no default but `now()`, no index expression, predicate or
/// operator class outside `pg_catalog`, and columns of built-in types only. Anything else runs
/// code its owner chose (a view's or policy's functions on a read, a trigger's or default's on
/// the history insert, a type's output function) with the rights of whoever reads or writes it:
/// the migrator, or a mover.
pub(crate) fn foreign_history(oid: &str) -> String {
    format!(
        "(EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) {oid} \
           AND (c.relkind OPERATOR(pg_catalog.<>) 'r' OR c.relrowsecurity \
                OR c.relhasrules OR c.relchecks OPERATOR(pg_catalog.>) 0)) \
         OR EXISTS (SELECT FROM pg_catalog.pg_trigger g \
           JOIN pg_catalog.pg_proc f ON f.oid OPERATOR(pg_catalog.=) g.tgfoid \
           WHERE g.tgrelid OPERATOR(pg_catalog.=) {oid} AND NOT g.tgisinternal \
             AND f.pronamespace OPERATOR(pg_catalog.<>) 'pg_catalog'::pg_catalog.regnamespace) \
         OR EXISTS (SELECT FROM pg_catalog.pg_attrdef d WHERE d.adrelid OPERATOR(pg_catalog.=) {oid} \
           AND pg_catalog.pg_get_expr(d.adbin, d.adrelid) OPERATOR(pg_catalog.<>) 'now()') \
         OR EXISTS (SELECT FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) {oid} \
           AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL OR EXISTS ( \
             SELECT FROM pg_catalog.unnest(i.indclass::pg_catalog.oid[]) o (opc) \
             JOIN pg_catalog.pg_opclass k ON k.oid OPERATOR(pg_catalog.=) o.opc \
             WHERE k.opcnamespace OPERATOR(pg_catalog.<>) 'pg_catalog'::pg_catalog.regnamespace))) \
         OR EXISTS (SELECT FROM pg_catalog.pg_attribute a \
           JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid \
           WHERE a.attrelid OPERATOR(pg_catalog.=) {oid} AND a.attnum OPERATOR(pg_catalog.>) 0 \
             AND NOT a.attisdropped \
             AND t.typnamespace OPERATOR(pg_catalog.<>) 'pg_catalog'::pg_catalog.regnamespace))"
    )
}

/// Locks a tenant schema's history `table` and refuses it unless it is as tenancy makes it
/// ([`foreign_history`]): the migrator reads it and inserts into it with its own rights.
/// Locked first, so that it cannot change between the check and the read.
fn plain_history(table: &str) -> String {
    format!(
        "LOCK TABLE {table} IN ACCESS SHARE MODE; \
         DO $tenancy_history$ BEGIN IF {} THEN \
         RAISE EXCEPTION USING ERRCODE = '42809', MESSAGE = {}; \
         END IF; END $tenancy_history$;",
        foreign_history(&format!("{}::pg_catalog.regclass", literal(table))),
        literal(&format!(
            "{table} is not the plain table tenancy keeps a migration history in (a view, row \
             security, a trigger, rule, check, default, index or column type of its owner's on \
             it): nothing was read or run"
        ))
    )
}

/// A SQL string literal (for values we control: versions, descriptions, checksums).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Applies the pending migrations to `target` inside the caller's transaction `conn`. Returns
/// the versions applied. Takes a transaction-scoped advisory lock per target, so two migrators
/// never apply the same target at once, and sets the search path for the transaction only.
pub(crate) async fn apply(
    conn: &mut PgConnection,
    target: &Target,
    migrations: &Migrations,
) -> Result<Vec<i64>> {
    // Migrations span tenants by design (a backfill updates every tenant's rows): past
    // row-level security with `tenancy.all_tenants`, for this transaction only (see rls.rs).
    let mut setup = format!(
        "SELECT pg_advisory_xact_lock(hashtext('tenancy.migrate'), hashtext({})); \
         SELECT pg_catalog.set_config('{ALL_TENANTS_SETTING}', 'on', true);",
        literal(&target.lock_key())
    );
    if let Target::Schema(schema) = target {
        setup.push_str(&plain_history(&target.history()));
        let _ = write!(setup, "{};", search_path(schema));
    }
    sqlx::raw_sql(crate::sql::text(setup))
        .execute(&mut *conn)
        .await?;
    let history = target.history();
    let applied = crate::sql::admin_query(crate::sql::text(format!(
        "SELECT version, checksum FROM {history}"
    )))
    .fetch_all(&mut *conn)
    .await?;
    let mut done = Vec::new();
    for m in migrations.iter() {
        if let Some(row) = applied.iter().find(|r| r.get::<i64, _>(0) == m.version) {
            let checksum: Vec<u8> = row.try_get(1)?;
            if checksum != m.checksum {
                return Err(MigrationError::Changed {
                    target: Box::new(target.public()),
                    version: m.version,
                }
                .into());
            }
            continue;
        }
        // The migration and its history row in one round trip.
        let script = format!(
            "{};\nINSERT INTO {history} (version, description, checksum) VALUES ({}, {}, '\\x{}'::bytea)",
            guarded(&m.sql),
            m.version,
            literal(&m.description),
            hex(&m.checksum)
        );
        sqlx::raw_sql(crate::sql::text(script))
            .execute(&mut *conn)
            .await
            .map_err(|source| MigrationError::Failed {
                target: Box::new(target.public()),
                version: m.version,
                source,
            })?;
        done.push(m.version);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::guarded;

    #[test]
    fn each_statement_runs_in_an_execute_of_its_own() {
        assert_eq!(
            guarded("CREATE TABLE t (a int);\nCREATE INDEX ON t (a);"),
            "DO $tenancy_do_0$ BEGIN \
             EXECUTE $tenancy_sql_0$CREATE TABLE t (a int)\n$tenancy_sql_0$; \
             EXECUTE $tenancy_sql_0$CREATE INDEX ON t (a)\n$tenancy_sql_0$; \
             END $tenancy_do_0$"
        );
        // Unreadable text runs whole, as before; tags the text holds are skipped.
        assert_eq!(
            guarded("SELECT '\\', '$tenancy_sql_0$'"),
            "DO $tenancy_do_1$ BEGIN \
             EXECUTE $tenancy_sql_1$SELECT '\\', '$tenancy_sql_0$'\n$tenancy_sql_1$; \
             END $tenancy_do_1$"
        );
    }
}
