//! Running the global and tenant migrations.

use crate::migrate::tenants;
use crate::migrate::*;
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
    /// where this run left off. Audited (`tenants.migrate`) when the run ends, naming the
    /// tenants and what happened (`"3 applied, 1 up to date, 0 failed"`); a run that fails
    /// before migrating anything is recorded with its error.
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
        let migrations = &self.handle.tenant_migrations;
        su.audited_outcome(&self.rt, "tenants.migrate", async || {
            migrations.check_runnable()?;
            let targets = tenants::targets(&self.rt).await?;
            let ids = tenants::tenant_ids(&targets);
            let report = tenants::run_all(&self.rt, targets, migrations, &options).await;
            let audit = Audit::of(ids).detail(tenants::outcome_line(&report));
            Ok((report, audit))
        })
        .await
    }

    /// The targets not at the latest tenant migration, with the versions each lacks. Audited
    /// (`tenants.pending_migrations`, naming the lagging tenants) once read.
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
        su.audited_outcome(&self.rt, "tenants.pending_migrations", async || {
            let targets = tenants::targets(&self.rt).await?;
            let out = tenants::pending(&self.rt, &targets, &self.handle.tenant_migrations).await?;
            let lagging = tenants::tenant_ids(out.iter().map(|(t, _)| t));
            let audit = Audit::of(lagging).detail(format!("{} targets behind", out.len()));
            Ok((out, audit))
        })
        .await
    }
}
