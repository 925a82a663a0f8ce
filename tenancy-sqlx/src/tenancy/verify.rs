//! The startup checks: a model's table shape, and row-level security's policy.

use std::any::TypeId;

use crate::model::Model;
use crate::rls::policy_sql;
use crate::superuser::Audit;
use crate::verify::check_now;
use crate::verify_deployment::{self, DeploymentReport};
use crate::{Result, Superuser, Tenancy};

impl Tenancy {
    /// Checks that `M`'s shared table exists with every model column, a `uuid NOT NULL` tenant
    /// column that is the table's tenant column (see the module docs), and keys, foreign keys and
    /// indexes that all lead with the tenant.
    ///
    /// The runtime runs this check itself before a model's first statement (and before its first
    /// statement in each tenant schema): calling it at startup only reports a bad table sooner.
    ///
    /// With [row-level security](crate::rls) on, also that the table and each of its partitions
    /// and inheritance children has tenancy's policy, enabled and forced, and no other
    /// permissive policy that would widen it (a problem with a child names the child).
    ///
    /// # Errors
    /// [`Error::TableShape`](crate::Error::TableShape) naming the table and listing every problem;
    /// [`Error::InvalidModel`](crate::Error::InvalidModel); [`Error::Database`](crate::Error::Database).
    pub async fn verify<M: Model>(&self) -> Result<()> {
        check_now(
            &self.rt,
            None,
            TypeId::of::<M>(),
            &M::META,
            (None, true),
            None,
        )
        .await?;
        Ok(())
    }
}

impl Tenancy {
    /// Puts tenancy's row-level security policy ([`policy_sql`]) on `M`'s shared table and on
    /// each of its partitions and inheritance children, in one transaction, audited
    /// (`rls.install`), then on its table in the home database of every other server that has
    /// shared-table tenants (one transaction there each; see `databases::home`). Idempotent.
    /// Own-schema and own-database tenants' tables get it from the tenant migrations: put
    /// `policy_sql(table, column)` there.
    ///
    /// Needs the table's owner (or a superuser) to run; the runtime setting is
    /// [`TenancyBuilder::row_level_security`](crate::TenancyBuilder::row_level_security).
    ///
    /// # Errors
    /// [`Error::InvalidModel`](crate::Error::InvalidModel), [`Error::TableShape`](crate::Error::TableShape) if the table fails the model check (so the
    /// policy would not be on the tenant's column), [`Error::Forbidden`](crate::Error::Forbidden) for a foreign or expired
    /// `su`, [`Error::Database`](crate::Error::Database) (e.g. not the owner).
    pub async fn install_row_level_security<M: Model>(&self, su: &Superuser) -> Result<()> {
        self.check_superuser(su)?;
        crate::verify::check_before_policy::<M>(&self.rt).await?;
        let sql = policy_sql(M::META.table, M::META.tenant_column)?;
        let homes: Vec<String> = self
            .rt
            .with_conn(async |c| {
                Ok(
                    crate::sql::admin_scalar(crate::registry::store::SERVER_HOMES)
                        .fetch_all(c)
                        .await?,
                )
            })
            .await?;
        su.audited(&self.rt, "rls.install", async |tx| {
            sqlx::raw_sql(crate::sql::text(sql.clone()))
                .execute(&mut *tx)
                .await?;
            let mut detail = M::META.table.to_owned();
            if !homes.is_empty() {
                detail = format!("{detail} (and in the homes of {})", homes.join(", "));
            }
            Ok(((), Audit::default().detail(detail)))
        })
        .await?;
        for server in &homes {
            let databases = self.rt.databases()?;
            databases
                .in_home(server, async |tx| {
                    // The policy goes on the tenant's column only: the table must pass the
                    // model check there first, as on the registry's server.
                    let problems =
                        crate::verify::shape_problems(tx, &M::META, Some("\"public\"")).await?;
                    if !problems.is_empty() {
                        return Err(crate::Error::TableShape(crate::ShapeReport {
                            table: format!("{} on server {server}", M::META.table),
                            problems,
                        }));
                    }
                    sqlx::raw_sql(crate::sql::text(sql.clone()))
                        .execute(&mut *tx)
                        .await?;
                    Ok(())
                })
                .await?;
        }
        // The policy changed what the tables' check finds.
        self.rt.models.forget();
        Ok(())
    }
}

impl Tenancy {
    /// Checks what can be checked without the application's model types: that every
    /// own-schema tenant's schema and migration history exist, that every spare schema exists,
    /// that every server home exists, is marked, has its history and lists its tenants, and the
    /// row-level security of every shared table that holds tenant rows, in the registry's
    /// database and in every server home (as
    /// [`Tenancy::verify`] checks it for a model's table with row-level security on). On a
    /// Citus cluster, also how Citus holds the registry's tables and those shared tables
    /// ([`DeploymentReport::citus`]: distributed by which column, colocation, reference
    /// tables) and what of that would hurt. Reads the catalog and the registry, no tenant's
    /// rows, so it takes no `Superuser`.
    ///
    /// Whether row-level security problems matter is the caller's policy: a deployment that
    /// does not use it has them all.
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy) -> tenancy_sqlx::Result<()> {
    /// let report = tenancy.verify_deployment().await?;
    /// for problem in &report.registry { eprintln!("registry: {problem}") }
    /// for table in report.row_level_security.iter().filter(|t| !t.problems.is_empty()) {
    ///     eprintln!("{table}");
    /// }
    /// if let Some(citus) = &report.citus {
    ///     for table in &citus.tables { println!("{table}") } // "spins: distributed by tenant_id, ..."
    ///     for problem in &citus.problems { eprintln!("citus: {problem}") }
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Database`](crate::Error::Database).
    pub async fn verify_deployment(&self) -> Result<DeploymentReport> {
        let mut report = self.rt.with_conn(verify_deployment::check).await?;
        verify_deployment::check_homes(&self.rt, &mut report).await?;
        Ok(report)
    }
}
