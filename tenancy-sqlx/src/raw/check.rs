//! The catalog's part of the check, in one round trip on the scope's connection (its verdict
//! kept for the resolution cache's time to live, see `Verdicts` in `config.rs`): the server's version (at
//! the first raw query), the declared global tables the SQL names, functions, operators and
//! types that a definition outside `pg_catalog` could shadow, and whether any function or
//! operator is not leakproof (then the tenant's rows are fenced). A relation that is not a
//! declared global table is refused after asking the catalog why, to say so precisely.

use sqlx::PgConnection;
use sqlx::postgres::types::Oid;

use super::parse::{Named, Uses};
use super::{RawSqlRefusal, RefusalKind};
use crate::Result;
use crate::unit::TenantUnit;

/// The PostgreSQL major version whose grammar `pg_query` was built from (pg_query 0.8 wraps
/// PostgreSQL 15's parser). Another server may read the same text differently (PostgreSQL 14
/// reads `SELECT 1into x` as `SELECT 1 INTO x`; 15 refuses it), so raw SQL refuses it.
pub(super) const GRAMMAR_MAJOR: i64 = 15;

const USES: &str = include_str!("uses.sql");
const CLASSIFY: &str = include_str!("classify.sql");

/// One refused relation or schema, as `classify.sql` reports it.
type Fact = (String, String, String, String, String);

/// What the catalog allows: whether the tenant's rows must be fenced, or a refusal.
pub(super) struct Verdict {
    pub(super) fence: bool,
}

fn quoted(n: &Named) -> String {
    let mut out = String::new();
    if let Some(s) = &n.schema {
        tenancy_core::ident::push_quoted(&mut out, s);
        out.push('.');
    }
    tenancy_core::ident::push_quoted(&mut out, &n.name);
    out
}

/// A declared global table's name (`countries`, `public.plans`) as the catalog reads it.
fn declared(name: &str) -> Named {
    match name.split_once('.') {
        Some((schema, name)) => Named {
            schema: Some(schema.to_owned()),
            name: name.to_owned(),
        },
        None => Named {
            schema: None,
            name: name.to_owned(),
        },
    }
}

/// Refuses what the SQL names outside the placeholders unless the catalog allows it, and says
/// whether to fence. The verdict is kept under `key`, if given (a caller with checks of its own
/// after this one keeps it itself, once they pass). `tables` are the placeholders' tables (quoted, maybe qualified), in the
/// rewrite's order; `globals` the builder's global tables.
pub(super) async fn catalog(
    unit: &mut TenantUnit<'_>,
    key: Option<String>,
    uses: &Uses,
    tables: &[String],
    tenant_columns: &[String],
    params: &[Option<Oid>],
) -> Result<Verdict> {
    let config = &unit.runtime().raw;
    let server = unit
        .database()
        .map_or(tenancy_core::home::PRIMARY_SERVER, |d| d.server());
    let version_checked = config.version_checked(server);
    let globals: Vec<Named> = config.global_tables.iter().map(|g| declared(g)).collect();
    let unknown: Vec<&Named> = uses
        .relations
        .iter()
        .filter(|r| !globals.iter().any(|g| g.name == r.name))
        .collect();
    if !unknown.is_empty() {
        let mut names: Vec<String> = Vec::new();
        for n in &unknown {
            for s in n.schema.iter().chain([&n.name]) {
                if !names.contains(s) {
                    names.push(s.clone());
                }
            }
        }
        let classify = for_database(CLASSIFY, unit.own_database());
        let facts: Vec<Fact> = fetch(unit, async |conn: &mut PgConnection, persistent| {
            Ok(sqlx::query_as::<_, Fact>(crate::sql::text(classify))
                .bind(&names)
                .bind(tenant_columns)
                .persistent(persistent)
                .fetch_all(conn)
                .await?)
        })
        .await?;
        let first = names
            .iter()
            .find_map(|n| facts.iter().find(|f| &f.1 == n))
            .or(facts.first());
        return Err(match first {
            Some(fact) => refusal(fact),
            None => undeclared(&unknown[0].name),
        }
        .into());
    }

    let relations: Vec<String> = uses.relations.iter().map(quoted).collect();
    let declared: Vec<String> = globals.iter().map(quoted).collect();
    let typed = &uses.typed_operators;
    let ops: Vec<&str> = typed.iter().map(|t| t.op.as_str()).collect();
    let tbls: Vec<&str> = typed.iter().map(|t| tables[t.relation].as_str()).collect();
    let cols: Vec<&str> = typed.iter().map(|t| t.column.as_str()).collect();
    let lefts: Vec<bool> = typed.iter().map(|t| t.left).collect();
    // The type each parameter was bound with; 0 (no type's oid) where sqlx knows the type by
    // name alone or `$n` names no bound value: no operator takes it, so it fences.
    let param_types: Vec<Option<Oid>> = typed
        .iter()
        .map(|t| {
            t.param.map(|n| {
                usize::try_from(n)
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|i| params.get(i).copied().flatten())
                    .unwrap_or(Oid(0))
            })
        })
        .collect();
    let wanted = |branch: &str| match branch {
        "version" => !version_checked,
        "relation" => !relations.is_empty(),
        "shadowed_functions" | "leaky_functions" => !uses.functions.is_empty(),
        "shadowed_operators" => !uses.operators.is_empty(),
        "shadowed_types" => !uses.types.is_empty(),
        "leaky_operators" => !uses.untyped_operators.is_empty(),
        "leaky_typed" => !typed.is_empty(),
        _ => !uses.fields.is_empty(),
    };
    let query = for_database(USES, unit.own_database())
        .split("-- @branch ")
        .skip(1)
        .filter_map(|b| b.split_once('\n'))
        .filter(|(name, _)| wanted(name))
        .map(|(_, sql)| sql.trim())
        .collect::<Vec<_>>()
        .join("\nUNION ALL\n");
    if query.is_empty() {
        if let Some(key) = key {
            config.verdicts.put(key, uses.casts_rows);
        }
        return Ok(Verdict {
            fence: uses.casts_rows,
        });
    }
    let rows: Vec<(String, String, Option<String>)> =
        fetch(unit, async |conn: &mut PgConnection, persistent| {
            Ok(sqlx::query_as(crate::sql::text(query))
                .bind(&relations)
                .bind(&declared)
                .bind(tenant_columns)
                .bind(&uses.functions)
                .bind(&uses.operators)
                .bind(&uses.types)
                .bind(&uses.untyped_operators)
                .bind(&ops)
                .bind(&tbls)
                .bind(&cols)
                .bind(&lefts)
                .bind(&uses.fields)
                .bind(&param_types)
                .persistent(persistent)
                .fetch_all(conn)
                .await?)
        })
        .await?;
    let mut fence = uses.casts_rows;
    for (kind, name, detail) in &rows {
        match (kind.as_str(), detail) {
            ("version", _) => {
                if let Some(refusal) = version_refusal(name) {
                    return Err(refusal.into());
                }
                unit.runtime().raw.mark_version_checked(server);
            }
            ("relation", Some(why)) => {
                let name = uses
                    .relations
                    .iter()
                    .find(|r| quoted(r) == *name)
                    .map_or(name.as_str(), |r| r.name.as_str());
                return Err(RawSqlRefusal::new(
                    RefusalKind::GlobalTable,
                    Some(name),
                    format!("the SQL names {name:?}, which {why}"),
                    "declare global tables with TenancyBuilder::global_tables (tables without \
                     a tenant column or a foreign key to the registry); reach tenant tables \
                     through {table} placeholders",
                )
                .into());
            }
            ("shadowed", Some(what)) => {
                return Err(RawSqlRefusal::new(
                    RefusalKind::Function,
                    Some(name),
                    format!(
                        "the SQL uses {name:?}, and the database defines {what} on the search \
                         path, which PostgreSQL may pick instead of the built-in; tenancy cannot \
                         see what its body reads"
                    ),
                    "qualify the built-in (pg_catalog.name), or compute it in the application",
                )
                .into());
            }
            ("fieldcall", _) if !super::allow::FUNCTIONS.contains(&name.as_str()) => {
                return Err(RawSqlRefusal::new(
                    RefusalKind::Function,
                    Some(name),
                    format!(
                        "the SQL writes x.{name}, which PostgreSQL reads as the call {name}(x) \
                         where x has no column {name:?}; {name} is not one of the built-in \
                         functions raw SQL may call"
                    ),
                    "name a column that exists, or compute it in the application",
                )
                .into());
            }
            ("leaky" | "fieldcall", _) => fence = true,
            _ => {}
        }
    }
    if let Some(key) = key {
        unit.runtime().raw.verdicts.put(key, fence);
    }
    Ok(Verdict { fence })
}

/// The check's SQL for the unit's database. The predicates between `/*registry*/` and
/// `/*end registry*/` read the registry's tenant and spare schemas; a tenant's own database
/// has no registry (the server would refuse the check) and no other tenant's schema, so there
/// they are left out and its schemas are judged by the rest.
fn for_database(sql: &str, own_database: bool) -> String {
    const START: &str = "/*registry*/";
    const END: &str = "/*end registry*/";
    if !own_database {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(START) {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let end = after.find(END).map_or(after.len(), |e| e + END.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The refusal for a server (`server_version_num`) of another major version than the grammar.
fn version_refusal(num: &str) -> Option<RawSqlRefusal> {
    let major = num.parse::<i64>().ok().map(|n| n / 10_000);
    (major != Some(GRAMMAR_MAJOR)).then(|| {
        let shown = major.map_or_else(|| "unknown".to_owned(), |m| m.to_string());
        RawSqlRefusal::new(
            RefusalKind::ServerVersion,
            Some(num),
            format!(
                "the server is PostgreSQL {shown} (server_version_num {num}), but the check reads \
                 SQL with PostgreSQL {GRAMMAR_MAJOR}'s grammar, and another version may read the \
                 same text differently"
            ),
            "run raw SQL against PostgreSQL 15, or use the repository",
        )
    })
}

/// Runs `f` on the unit's connection: the transaction's, or the tenant's lane (with
/// connection lanes, the registry's small pool would otherwise carry every raw query's check).
async fn fetch<T>(
    unit: &mut TenantUnit<'_>,
    f: impl AsyncFnOnce(&mut PgConnection, bool) -> Result<T>,
) -> Result<T> {
    let persistent = unit.runtime().persistent;
    unit.with_conn(async |conn: &mut PgConnection| f(conn, persistent).await)
        .await
}

fn undeclared(name: &str) -> RawSqlRefusal {
    RawSqlRefusal::new(
        RefusalKind::Relation,
        Some(name),
        format!(
            "the SQL names {name:?}, which is neither a placeholder nor a declared global table"
        ),
        "name tenant tables with {table} placeholders (declare their models with \
         .with::<Model>()), and declare tables every tenant shares with \
         TenancyBuilder::global_tables",
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_own_database_check_reads_no_registry_table() {
        for sql in [USES, CLASSIFY] {
            assert!(sql.contains("spare_schemas"));
            assert_eq!(for_database(sql, false), sql);
            let own = for_database(sql, true);
            assert!(!own.contains("spare_schemas"), "{own}");
            assert!(!own.contains("schema_name"), "{own}");
            // Only the marked predicates go: every other line is kept.
            assert!(own.contains("starts_with"), "{own}");
            assert!(own.contains("'tenancy.tenants'::regclass"), "{own}");
        }
    }

    #[test]
    fn only_the_grammars_major_version_is_accepted() {
        assert!(version_refusal("150004").is_none());
        assert!(version_refusal("150000").is_none());
        for num in ["140011", "130000", "160002", "180000", "x"] {
            let r = version_refusal(num).expect("refused");
            assert_eq!(r.kind(), RefusalKind::ServerVersion, "{num}");
            assert!(r.reason().contains(num), "{r}");
        }
    }
}
