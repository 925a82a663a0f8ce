//! Checks of a deployment that need no model types: what an operator's `tenancy verify` can
//! run from outside the application. [`Tenancy::verify`](crate::Tenancy::verify) checks a
//! model's table against the model; this checks the registry's promises and the row-level
//! security of every table that holds tenant rows, and, on a Citus cluster, how Citus holds
//! those tables and the registry's (`verify_citus.rs`).

use sqlx::postgres::types::Oid;
use sqlx::{PgConnection, Row};

use crate::catalog;
use crate::lifecycle::tenant_tables_children_first;
use crate::verify_citus::CitusReport;
use crate::{Result, ShapeReport};

/// What [`Tenancy::verify_deployment`](crate::Tenancy::verify_deployment) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeploymentReport {
    /// Registry problems: an own-schema tenant whose schema or migration history is missing,
    /// a spare schema that is listed but gone, a server home that is missing, unmarked, without
    /// its migration history, not listing a tenant the registry places there (or listing it
    /// sealed, pending, or elsewhere in the home), holding a tenant schema no line names and no old copy is
    /// recorded in, or on a server this handle does not map. Empty when the registry keeps its
    /// promises.
    pub registry: Vec<String>,
    /// Every shared table holding tenant rows (a `tenant_id` column or a one-column foreign key
    /// to `tenancy.tenants`), with what is wrong with its row-level security policy and that of
    /// its partitions and children; `problems` is empty for a table that is fully covered. A
    /// server home's tables are named `<server>:public.<table>`.
    pub row_level_security: Vec<ShapeReport>,
    /// With the Citus extension installed: which of the registry's tables and the shared tables
    /// are distributed, by which column, in which colocation group, and the problems of that.
    /// `None` without Citus.
    pub citus: Option<CitusReport>,
}

/// The checks of [`Tenancy::verify_deployment`](crate::Tenancy::verify_deployment), on `conn`.
pub(crate) async fn check(conn: &mut PgConnection) -> Result<DeploymentReport> {
    let mut report = DeploymentReport::default();
    let schemas = crate::sql::admin_query(catalog::OWN_SCHEMAS_PRESENT)
        .fetch_all(&mut *conn)
        .await?;
    for r in schemas {
        let slug: String = r.try_get("slug")?;
        let schema: Option<String> = r.try_get("schema_name")?;
        match schema {
            None => report
                .registry
                .push(format!("own-schema tenant {slug:?} has no schema recorded")),
            Some(s) if !r.try_get::<bool, _>("schema_exists")? => report
                .registry
                .push(format!("tenant {slug:?}: schema {s:?} does not exist")),
            Some(s) if !r.try_get::<bool, _>("history_exists")? => {
                report.registry.push(format!(
                    "tenant {slug:?}: schema {s:?} has no tenancy_migrations history"
                ));
            }
            Some(_) => {}
        }
    }
    let gone: Vec<String> = crate::sql::admin_scalar(catalog::SPARES_MISSING)
        .fetch_all(&mut *conn)
        .await?;
    for s in gone {
        report
            .registry
            .push(format!("spare schema {s:?} is listed but does not exist"));
    }
    let tables = tenant_tables_children_first(&mut *conn, None).await?;
    report.citus = crate::verify_citus::check(&mut *conn, &tables).await?;
    for table in tables {
        let oid = Oid(u32::try_from(table.oid).unwrap_or_default());
        let mut problems = crate::rls::policy_problems(&mut *conn, oid, &table.column_name).await?;
        problems
            .extend(crate::rls::descendant_problems(&mut *conn, oid, &table.column_name).await?);
        report.row_level_security.push(ShapeReport {
            table: table.name,
            problems,
        });
    }
    report
        .row_level_security
        .sort_by(|a, b| a.table.cmp(&b.table));
    Ok(report)
}

/// Each server the registry lists but its own, with its shared-table and own-schema tenants:
/// what its home must list (with the schema each line must name, NULL for the shared tables).
/// A server without tenants is there too: its home, once made, is checked all the same.
const HOME_TENANTS: &str = "SELECT s.key AS server, \
            coalesce(array_agg(t.id ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL), '{}') AS ids, \
            coalesce(array_agg(t.slug ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL), '{}') \
              AS slugs, \
            coalesce(array_agg(t.schema_name ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL), \
              '{}') AS schemas \
     FROM tenancy.servers s LEFT JOIN tenancy.tenants t ON t.server = s.key \
       AND t.placement IN ('shared_table', 'own_schema') \
     WHERE s.key <> 'primary' \
     GROUP BY s.key ORDER BY s.key";

/// The checks of each server home (see `databases::home`), added to `report`: on a direct
/// connection to each, its mark, its migration history, a line for every tenant the registry
/// places there, and the row-level security of its tables.
pub(crate) async fn check_homes(
    rt: &crate::runtime::Runtime,
    report: &mut DeploymentReport,
) -> Result<()> {
    let homes = rt
        .with_conn(async |c| Ok(crate::sql::admin_query(HOME_TENANTS).fetch_all(c).await?))
        .await?;
    // The old schemas the registry keeps in homes (a move between the shared tables and an
    // own schema of one home leaves one no line names).
    let kept: Vec<(String, String)> = rt
        .with_conn(async |c| {
            Ok(sqlx::query_as(
                "SELECT server, schema_name FROM tenancy.old_copies \
                 WHERE server IS NOT NULL AND schema_name IS NOT NULL AND database_name IS NULL",
            )
            .persistent(false)
            .fetch_all(c)
            .await?)
        })
        .await?;
    for home in homes {
        let server: String = home.try_get("server")?;
        let ids: Vec<uuid::Uuid> = home.try_get("ids")?;
        let slugs: Vec<String> = home.try_get("slugs")?;
        let schemas: Vec<Option<String>> = home.try_get("schemas")?;
        let Some(databases) = rt.databases.as_ref().filter(|d| d.knows(&server)) else {
            if !ids.is_empty() {
                report.registry.push(format!(
                    "server {server}: {} tenants live in its home, which this handle does not \
                     map; not checked",
                    ids.len()
                ));
            }
            continue;
        };
        // A server no tenant lives on may have no home yet (it is made with the first); one
        // that cannot be reached is reported, and the others still checked.
        if ids.is_empty() {
            match databases.home_exists(&server).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    report
                        .registry
                        .push(format!("server {server}: cannot be reached: {e}"));
                    continue;
                }
            }
        }
        let checked = databases
            .in_home(&server, async |tx| {
                let mut problems = Vec::new();
                let history: bool = crate::sql::admin_scalar(
                    "SELECT to_regclass('public.tenancy_migrations') IS NOT NULL",
                )
                .fetch_one(&mut *tx)
                .await?;
                if !history {
                    problems.push(format!(
                        "server {server}: its home has no tenancy_migrations history"
                    ));
                }
                // Each line with its state: live (NULL), pending (-infinity, see
                // `databases::home`), or sealed.
                let listed: Vec<(uuid::Uuid, Option<String>, Option<bool>)> = sqlx::query_as(
                    "SELECT id, schema_name, moved_at = '-infinity'::timestamptz \
                     FROM tenancy.tenants WHERE id = ANY($1)",
                )
                .persistent(false)
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?;
                for ((id, slug), schema) in ids.iter().zip(&slugs).zip(&schemas) {
                    let line = listed.iter().find(|(l, ..)| l == id);
                    match line {
                        None => problems.push(format!(
                            "tenant {slug:?}: the home of server {server} does not list it"
                        )),
                        Some((_, _, Some(true))) => problems.push(format!(
                            "tenant {slug:?}: its line in the home of server {server} is pending \
                             (a move cut off after its switch): its writes are refused until \
                             its first refused write or cleanup_orphans makes the line live"
                        )),
                        Some((_, _, Some(false))) => problems.push(format!(
                            "tenant {slug:?}: the home of server {server} lists it sealed"
                        )),
                        Some((_, found, None)) if found != schema => problems.push(format!(
                            "tenant {slug:?}: its line in the home of server {server} names \
                             schema {found:?}, the registry {schema:?}"
                        )),
                        Some(_) => {}
                    }
                    if let Some(schema) = schema {
                        let history =
                            format!("{}.tenancy_migrations", tenancy_core::ident::quote(schema));
                        let there: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                            .persistent(false)
                            .bind(&history)
                            .fetch_one(&mut *tx)
                            .await?;
                        if !there {
                            problems.push(format!(
                                "tenant {slug:?}: its schema {schema} in the home of server \
                                 {server} has no tenancy_migrations history"
                            ));
                        }
                    }
                }
                // Tenant schemas no line names and the registry keeps no old copy in: left by
                // something other than tenancy (its removals take line and schema together).
                let unnamed: Vec<String> = sqlx::query_scalar(
                    "SELECT nspname::text FROM pg_catalog.pg_namespace \
                     WHERE starts_with(nspname, $1) \
                       AND nspname NOT IN (SELECT schema_name FROM tenancy.tenants \
                                           WHERE schema_name IS NOT NULL) \
                     ORDER BY 1",
                )
                .persistent(false)
                .bind(tenancy_core::home::TENANT_SCHEMA_PREFIX)
                .fetch_all(&mut *tx)
                .await?;
                for schema in unnamed {
                    if !kept.iter().any(|(s, k)| *s == server && *k == schema) {
                        problems.push(format!(
                            "server {server}: schema {schema} in its home is no tenant's (no \
                             line names it, no old copy is recorded there)"
                        ));
                    }
                }
                let mut tables = Vec::new();
                let public = tenancy_core::home::TENANT_DATABASE_SCHEMA;
                for table in tenant_tables_children_first(&mut *tx, Some(public)).await? {
                    let oid = Oid(u32::try_from(table.oid).unwrap_or_default());
                    let mut found =
                        crate::rls::policy_problems(&mut *tx, oid, &table.column_name).await?;
                    found.extend(
                        crate::rls::descendant_problems(&mut *tx, oid, &table.column_name).await?,
                    );
                    tables.push(ShapeReport {
                        table: format!("{server}:{}", table.name),
                        problems: found,
                    });
                }
                Ok((problems, tables))
            })
            .await;
        match checked {
            Ok((problems, tables)) => {
                report.registry.extend(problems);
                report.row_level_security.extend(tables);
            }
            Err(e) => report
                .registry
                .push(format!("server {server}: its home cannot be checked: {e}")),
        }
    }
    report
        .row_level_security
        .sort_by(|a, b| a.table.cmp(&b.table));
    Ok(())
}
