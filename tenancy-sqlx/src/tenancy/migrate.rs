//! Running the global and tenant migrations.

use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use sqlx::Row;
use tenancy_core::TenantId;

use crate::migrate::*;
use crate::registry::store;
use crate::superuser::Audit;
use crate::{Result, Superuser, Tenancy};

impl Tenancy {
    /// Runs the app's shared (global) migrations once, all pending in one transaction, with
    /// history in `tenancy.global_migrations`. Returns the versions applied.
    ///
    /// Shared migrations may change every tenant's rows (they run past row-level security), so
    /// this takes a [`Superuser`] and is audited (`shared.migrate`, naming the versions
    /// applied) in the migrations' own transaction.
    ///
    /// # Errors
    /// [`Error::MigrationRefused`](crate::Error::MigrationRefused) for text that would end the
    /// transaction, before anything runs; [`Error::Migration`](crate::Error::Migration) naming
    /// the migration that failed (nothing of this run is kept); [`Error::Forbidden`](crate::Error::Forbidden)
    /// for an expired `su` or one of another `Tenancy`.
    pub async fn migrate_shared(
        &self,
        su: &Superuser,
        migrations: &Migrations,
    ) -> Result<Vec<i64>> {
        self.check_superuser(su)?;
        migrations.check_runnable()?;
        let done = su
            .audited_and_reset(&self.rt, "shared.migrate", async |tx| {
                let done = apply(tx, &Target::Global, migrations).await?;
                let audit = Audit::default().detail(format!("applied {done:?}"));
                Ok((done, audit))
            })
            .await?;
        if !done.is_empty() {
            self.rt.schema_changed();
        }
        Ok(done)
    }

    /// Brings every tenant to the latest tenant migration: the shared tables once, then every
    /// own-schema tenant's schema (suspended and soft-deleted ones too, so they can come back).
    ///
    /// Each target migrates in its own transaction, `parallelism` at a time. A failure rolls
    /// that target back, is reported, and does not stop the others; running again resumes
    /// where this run left off. Audited.
    ///
    /// # Errors
    /// [`Error::MigrationRefused`](crate::Error::MigrationRefused) for text that would end the
    /// transaction, before anything runs; [`Error::Database`](crate::Error::Database) if the
    /// tenant list cannot be read; per-target failures are in the report, not errors.
    pub async fn migrate_tenants(
        &self,
        su: &Superuser,
        options: MigrateOptions,
    ) -> Result<MigrationReport> {
        self.check_superuser(su)?;
        self.handle.tenant_migrations.check_runnable()?;
        let migrations = Arc::clone(&self.handle.tenant_migrations);
        let targets = self.migration_targets().await?;
        let ids: Vec<TenantId> = targets
            .iter()
            .filter_map(|t| match t {
                MigrationTarget::Tenant { id, .. } => Some(*id),
                MigrationTarget::SharedTables | MigrationTarget::Spare { .. } => None,
            })
            .collect();
        self.rt
            .with_conn(async |conn| su.audit(conn, "tenants.migrate", &ids, None).await)
            .await?;
        let total = targets.len();
        let mut report = MigrationReport::default();
        let (mut done, mut failed) = (0, 0);
        let mut runs = stream::iter(targets)
            .map(|target| {
                let migrations = Arc::clone(&migrations);
                async move {
                    let outcome = match self.migrate_target(&target, &migrations).await {
                        Ok(v) if v.is_empty() => Outcome::UpToDate,
                        Ok(v) => Outcome::Applied(v),
                        Err(e) => Outcome::Failed(e.to_string()),
                    };
                    (target, outcome)
                }
            })
            .buffer_unordered(options.parallelism);
        while let Some((target, outcome)) = runs.next().await {
            if let Outcome::Applied(_) = &outcome {
                self.rt.schema_changed();
            }
            if let Outcome::Failed(e) = &outcome {
                failed += 1;
                tracing::error!(%target, error = %e, "tenant migration failed");
            } else {
                done += 1;
            }
            if let Some(f) = &options.on_progress {
                f(&Progress {
                    done,
                    failed,
                    remaining: total - done - failed,
                    last: (target.clone(), outcome.clone()),
                });
            }
            report.outcomes.push((target, outcome));
        }
        Ok(report)
    }

    /// The targets not at the latest tenant migration, with the versions each lacks. Audited
    /// (`tenants.pending_migrations`, naming the lagging tenants).
    ///
    /// Reads the histories a few hundred schemas per statement, so that checking 10,000
    /// tenants takes tens of round trips, not 10,000.
    ///
    /// # Errors
    /// [`Error::Database`](crate::Error::Database), for instance if a schema has lost its
    /// history table.
    pub async fn pending_migrations(
        &self,
        su: &Superuser,
    ) -> Result<Vec<(MigrationTarget, Vec<i64>)>> {
        self.check_superuser(su)?;
        let migrations = &self.handle.tenant_migrations;
        let targets = self.migration_targets().await?;
        let mut out = Vec::new();
        for batch in targets.chunks(PENDING_BATCH) {
            let sql = batch
                .iter()
                .enumerate()
                .map(|(i, target)| {
                    let history = match target {
                        MigrationTarget::SharedTables => {
                            "tenancy.shared_table_migrations".to_owned()
                        }
                        MigrationTarget::Tenant { schema, .. }
                        | MigrationTarget::Spare { schema } => {
                            format!("{}.tenancy_migrations", tenancy_core::ident::quote(schema))
                        }
                    };
                    format!("SELECT {i}::int4 AS target, version FROM {history}")
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            let q = crate::sql::admin_query(crate::sql::text(sql));
            let rows = self
                .rt
                .with_conn(async |c| Ok(q.fetch_all(c).await?))
                .await?;
            let mut applied = vec![Vec::new(); batch.len()];
            for row in rows {
                let target: i32 = row.try_get("target")?;
                let version: i64 = row.try_get("version")?;
                if let Some(versions) = usize::try_from(target)
                    .ok()
                    .and_then(|t| applied.get_mut(t))
                {
                    versions.push(version);
                }
            }
            for (target, applied) in batch.iter().zip(applied) {
                let missing: Vec<i64> = migrations
                    .iter()
                    .map(|m| m.version)
                    .filter(|v| !applied.contains(v))
                    .collect();
                if !missing.is_empty() {
                    out.push((target.clone(), missing));
                }
            }
        }
        let lagging: Vec<TenantId> = out
            .iter()
            .filter_map(|(t, _)| match t {
                MigrationTarget::Tenant { id, .. } => Some(*id),
                MigrationTarget::SharedTables | MigrationTarget::Spare { .. } => None,
            })
            .collect();
        let detail = format!("{} targets behind", out.len());
        self.rt
            .with_conn(async |conn| {
                su.audit(conn, "tenants.pending_migrations", &lagging, Some(&detail))
                    .await
            })
            .await?;
        Ok(out)
    }

    async fn migration_targets(&self) -> Result<Vec<MigrationTarget>> {
        let rows = crate::sql::admin_query(store::OWN_SCHEMA_TENANTS);
        let rows = self
            .rt
            .with_conn(async |c| Ok(rows.fetch_all(c).await?))
            .await?;
        let mut targets = vec![MigrationTarget::SharedTables];
        for r in rows {
            targets.push(MigrationTarget::Tenant {
                id: TenantId::from_uuid(r.try_get("id")?),
                slug: r.try_get("slug")?,
                schema: r.try_get("schema_name")?,
            });
        }
        let spares: Vec<String> = self
            .rt
            .with_conn(async |c| {
                Ok(crate::sql::admin_scalar(store::SPARES_ALL)
                    .fetch_all(c)
                    .await?)
            })
            .await?;
        targets.extend(
            spares
                .into_iter()
                .map(|schema| MigrationTarget::Spare { schema }),
        );
        Ok(targets)
    }

    async fn migrate_target(
        &self,
        target: &MigrationTarget,
        migrations: &Migrations,
    ) -> Result<Vec<i64>> {
        let mut tx = self.rt.begin().await?;
        if let MigrationTarget::Spare { schema } = target {
            // A provisioning may be taking this spare right now (it holds the row): its
            // rename and migration would race ours under another schema name. Skip a spare
            // that is taken or gone; `take` brings it up to date itself.
            let still_spare: Option<String> = crate::sql::admin_scalar(store::SPARE_LOCK_IF_FREE)
                .bind(schema)
                .fetch_optional(&mut *tx)
                .await?;
            if still_spare.is_none() {
                // Nothing ran: the connection goes back as it is, not closed.
                tx.rollback().await?;
                return Ok(Vec::new());
            }
        }
        let target = match target {
            MigrationTarget::SharedTables => Target::SharedTables,
            MigrationTarget::Tenant { schema, .. } | MigrationTarget::Spare { schema } => {
                Target::Schema(schema.clone())
            }
        };
        let done = apply(&mut tx, &target, migrations).await?;
        tx.commit_and_reset().await?;
        Ok(done)
    }
}
