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
    /// a spare schema that is listed but gone. Empty when the registry keeps its promises.
    pub registry: Vec<String>,
    /// Every shared table holding tenant rows (a `tenant_id` column or a one-column foreign key
    /// to `tenancy.tenants`), with what is wrong with its row-level security policy and that of
    /// its partitions and children; `problems` is empty for a table that is fully covered.
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
