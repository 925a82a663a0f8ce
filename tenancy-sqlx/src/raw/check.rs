//! What raw SQL may name: the fixed lists (functions that run SQL text or read tables by name,
//! system views that show other tenants' values), and the catalog check that finds tenant
//! tables, views over them, tenant schemas and user-defined functions among the identifiers.

use sqlx::PgConnection;

use super::{RawSqlRefusal, RefusalKind};
use crate::Result;
use crate::ctx::Exec;

/// PostgreSQL functions that run SQL given as text, or read a whole table, schema or database
/// given by name: the text (`'SELECT * FROM spins'`, `'spins'::regclass`) is a string the lexer
/// does not look into.
const RUNS_SQL: &[&str] = &[
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "table_to_xml",
    "table_to_xmlschema",
    "table_to_xml_and_xmlschema",
    "schema_to_xml",
    "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema",
    "database_to_xml",
    "database_to_xmlschema",
    "database_to_xml_and_xmlschema",
    "ts_stat",
    "ts_rewrite",
];

/// PostgreSQL functions that read raw storage (data files, WAL) holding every tenant's rows.
const RAW_STORAGE: &[&str] = &[
    "pg_read_file",
    "pg_read_binary_file",
    "lo_import",
    "pg_logical_slot_get_changes",
    "pg_logical_slot_peek_changes",
    "pg_logical_slot_get_binary_changes",
    "pg_logical_slot_peek_binary_changes",
];

/// Extensions whose functions run SQL given as text (`dblink`, `tablefunc`'s `crosstab`,
/// `xml2`'s `xpath_table`), read tables by name or raw storage (`pageinspect`, `pgstattuple`,
/// `pg_walinspect` ...), or reach other databases and files. Other extensions' functions are
/// allowed: they are vetted code installed by an administrator.
pub(super) const DENIED_EXTENSIONS: &[&str] = &[
    "dblink",
    "postgres_fdw",
    "file_fdw",
    "tablefunc",
    "xml2",
    "pageinspect",
    "pg_walinspect",
    "pg_surgery",
    "pgrowlocks",
    "pgstattuple",
    "pg_visibility",
    "pg_freespacemap",
    "pg_buffercache",
    "pg_prewarm",
    "amcheck",
    "adminpack",
    "pg_stat_statements",
];

/// Sequences are shared by every tenant of a table: their values count the other tenants' rows.
const SEQUENCES: &[&str] = &[
    "nextval",
    "currval",
    "setval",
    "lastval",
    "pg_sequence_last_value",
];

/// Session-level advisory locks: held on the pooled connection after the statement, for
/// whichever tenant borrows it next (the transaction-level `pg_advisory_xact_lock*` are fine).
const SESSION_LOCKS: &[&str] = &[
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
];

/// Settings that change how later SQL on the same pooled connection is read or resolved
/// (`search_path`, `standard_conforming_strings`, `row_security`).
const SETTINGS: &[&str] = &["set_config"];

/// Other sessions' statements, which may carry other tenants' values.
const ACTIVITY: &[&str] = &[
    "pg_stat_get_activity",
    "pg_stat_get_backend_activity",
    "pg_stat_statements",
];

/// System views and tables that show other tenants' values: planner statistics (most common
/// values, histograms) and other sessions' statements.
const SYSTEM_RELATIONS: &[&str] = &[
    "pg_stats",
    "pg_stats_ext",
    "pg_stats_ext_exprs",
    "pg_statistic",
    "pg_statistic_ext_data",
    "pg_stat_activity",
    "pg_stat_statements",
    // Row counts and last sequence values: how many rows the other tenants have.
    "pg_sequences",
    "pg_stat_user_tables",
    "pg_stat_all_tables",
    "pg_stat_xact_user_tables",
    "pg_stat_xact_all_tables",
    "pg_statio_user_tables",
    "pg_statio_all_tables",
    // The pooled connection's statements name other own-schema tenants' schemas.
    "pg_prepared_statements",
    // Out-of-line values of every tenant's rows (readable by superusers).
    "pg_toast",
];

/// The refusal for an identifier on the fixed lists, whatever its position (a call, `x.f`
/// functional notation, a column that happens to share the name: refused all the same).
pub(super) fn fixed(name: &str) -> Option<RawSqlRefusal> {
    let function = |why: &str, hint: &str| {
        Some(RawSqlRefusal::new(
            RefusalKind::Function,
            Some(name),
            format!("the SQL names the function {name:?}, which {why}"),
            hint,
        ))
    };
    if RUNS_SQL.contains(&name) || name.starts_with("dblink") {
        return function(
            "runs SQL given as text or reads tables by name, where tenancy cannot see them",
            "write the query itself, naming tenant tables with {table} placeholders",
        );
    }
    if RAW_STORAGE.contains(&name) {
        return function(
            "reads files or the write-ahead log, which hold every tenant's rows",
            "read tenant rows through {table} placeholders",
        );
    }
    if SEQUENCES.contains(&name) {
        return function(
            "reads or moves a sequence that every tenant shares",
            "let the database fill the column, or bind the value",
        );
    }
    if SESSION_LOCKS.contains(&name) {
        return function(
            "takes or releases a session-level lock that outlives the statement on a pooled \
             connection",
            "use the transaction-level pg_advisory_xact_lock inside a TenantTx",
        );
    }
    if SETTINGS.contains(&name) {
        return function(
            "changes settings of a pooled connection that other tenants use next",
            "set what you need in the connection options, not from tenant SQL",
        );
    }
    if name == "pg_settings" {
        // `UPDATE pg_settings` runs `set_config` through the view's rule.
        return Some(RawSqlRefusal::new(
            RefusalKind::SystemView,
            Some(name),
            "the SQL names \"pg_settings\", whose UPDATE changes settings of a pooled \
             connection that other tenants use next"
                .into(),
            "read a setting with current_setting(); set what you need in the connection options",
        ));
    }
    if ACTIVITY.contains(&name) {
        return function(
            "shows other sessions' statements",
            "read activity through a superuser connection, not tenant SQL",
        );
    }
    if SYSTEM_RELATIONS.contains(&name) {
        return Some(RawSqlRefusal::new(
            RefusalKind::SystemView,
            Some(name),
            format!(
                "the SQL names {name:?}, which shows values or statements of every tenant \
                 (planner statistics, other sessions' queries)"
            ),
            "read it through a superuser connection, not tenant SQL",
        ));
    }
    None
}

/// The catalog query: see `facts.sql`.
const FACTS: &str = include_str!("facts.sql");

/// One refused name, as the catalog query reports it.
type Fact = (String, String, String, String, String);

/// Asks the catalog about `names` (every identifier of the SQL, in order of first use): the
/// first that is a tenant table (or a view, materialized view or sequence over one, or a table
/// whose inheritance children are), a tenant schema, or a function defined in the database
/// becomes the refusal, and so does a function of one of [`DENIED_EXTENSIONS`]. `tenant_columns` are the tenant columns of the declared models (and
/// `tenant_id`).
///
/// Runs on the scope's connection: a transaction's own DDL is seen. One round trip; nothing is
/// cached, so a table created a moment ago is known.
pub(super) async fn catalog(
    exec: &mut Exec<'_>,
    names: &[String],
    tenant_columns: &[String],
) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let rt = exec.ctx.runtime();
    let persistent = rt.persistent;
    let query = || {
        sqlx::query_as::<_, Fact>(FACTS)
            .bind(names)
            .bind(tenant_columns)
            .bind(DENIED_EXTENSIONS)
            .persistent(persistent)
    };
    let facts: Vec<Fact> = match exec.conn.as_deref_mut() {
        Some(conn) => query().fetch_all(conn).await?,
        // The tenant's lane, like the statement that follows: with connection lanes, the
        // registry's small pool would otherwise carry every raw query's check.
        None => {
            rt.with_conn_of(exec.ctx.pool(), async |conn: &mut PgConnection| {
                Ok(query().fetch_all(conn).await?)
            })
            .await?
        }
    };
    let first = names
        .iter()
        .find_map(|n| facts.iter().find(|f| &f.1 == n))
        .or(facts.first());
    match first {
        None => Ok(()),
        Some(fact) => Err(refusal(fact).into()),
    }
}

fn refusal((kind, name, subject, culprit, why): &Fact) -> RawSqlRefusal {
    match kind.as_str() {
        "schema" => RawSqlRefusal::new(
            RefusalKind::TenantSchema,
            Some(name),
            format!("the SQL names {name:?}, the {subject}, which {why}"),
            "a tenant's tables are reached only through {table} placeholders, which read the \
             schema of the scope's tenant",
        ),
        "function" => RawSqlRefusal::new(
            RefusalKind::Function,
            Some(name),
            format!(
                "the SQL names {name:?}: the {subject} {why}, so tenancy cannot see which \
                 tables it reads"
            ),
            "write the SQL it runs into the query, naming tenant tables with {table} placeholders",
        ),
        _ => {
            let through = if subject.ends_with(culprit.as_str()) {
                String::new()
            } else {
                format!(" reads {culprit}, which")
            };
            RawSqlRefusal::new(
                RefusalKind::TenantTable,
                Some(name),
                format!(
                    "the SQL names {name:?}: the {subject}{through} {why}, so it holds every \
                     tenant's rows"
                ),
                "declare the table's model with .with::<Model>() and write {table}; read views \
                 and sequences over tenant tables through the tables' placeholders instead",
            )
        }
    }
}
