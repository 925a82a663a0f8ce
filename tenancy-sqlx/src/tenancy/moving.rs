//! Moving a tenant to another placement, and purging the old copy a move keeps.

use tenancy_core::{Placement, TenantId};

use crate::databases::PRIMARY_SERVER;
use crate::lifecycle::Purged;
use crate::moving::{MoveOptions, Moved, OldCopy};
use crate::registry::notify::{self, Change};
use crate::registry::store;
use crate::superuser::Audit;
use crate::{Error, Lookup, Result, Superuser, Tenancy};

impl Tenancy {
    /// Moves an active tenant's rows to another placement (shared tables to its own schema, or
    /// back), with [`MoveOptions::default`]. See [`Tenancy::move_tenant_with`].
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy, id: tenancy_sqlx::TenantId) -> tenancy_sqlx::Result<()> {
    /// use tenancy_sqlx::Placement;
    /// let su = tenancy.superuser("ops@example.com", "ticket #4411: acme wants isolation").await?;
    /// let moved = tenancy.move_tenant(&su, id, Placement::OwnSchema).await?;
    /// println!("{} rows moved to {:?}; old copy at {:?}", moved.rows(), moved.schema, moved.old_copy);
    /// // Later, once satisfied:
    /// tenancy.purge_old_copy(&su, id).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Tenancy::move_tenant_with`].
    pub async fn move_tenant(&self, su: &Superuser, id: TenantId, to: Placement) -> Result<Moved> {
        self.move_tenant_with(su, id, to, MoveOptions::default())
            .await
    }

    /// Moves an active tenant's rows to placement `to`: builds the target,
    /// stops the tenant's writes (they wait, or fail with the retryable
    /// [`Error::TenantMoving`]), copies every table, verifies each (row count and a checksum
    /// the server computes over every row), switches the registry to the new home, and keeps
    /// the old copy until [`Tenancy::purge_old_copy`]. Audited (`tenant.move`) in the same
    /// transaction. See the module `moving.rs` for the design of the write fence.
    ///
    /// Reads of the tenant go on throughout and see the old copy until the switch. Contexts
    /// resolved before the switch, in this process or another, are revoked
    /// ([`Error::ContextRevoked`]) when the change's notification reaches their handle; a write
    /// of one that gets to the server first fails with [`Error::TenantMoved`]. No write is
    /// applied to the old copy after the switch, and none acknowledged before it is missing
    /// from the new one.
    ///
    /// Within the registry's database (shared tables, own schemas) it is one transaction. Into
    /// a database of the tenant's own (on the server [`MoveOptions::server`] names), the new
    /// database is filled and committed before the registry switches; out of one, the old
    /// database is sealed by its own fence before the registry switches (see the module
    /// `moving.rs`). An own-database tenant moves to a new database on another server with
    /// `to` [`Placement::OwnDatabase`] and [`MoveOptions::server`] naming that server: the new
    /// database commits, then the old one is sealed, then the registry switches; the old
    /// database is kept on its server ([`OldCopy::server`](crate::OldCopy::server)) until
    /// [`Tenancy::purge_old_copy`], and the old server's pooled connections to the tenant are
    /// closed.
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy, id: tenancy_sqlx::TenantId) -> tenancy_sqlx::Result<()> {
    /// use tenancy_sqlx::{MoveOptions, Placement};
    /// let su = tenancy.superuser("ops@example.com", "ticket #4413: acme to eu-3").await?;
    /// let options = MoveOptions::default().server("eu-3");
    /// let moved = tenancy.move_tenant_with(&su, id, Placement::OwnDatabase, options).await?;
    /// assert_eq!(moved.server, "eu-3");
    /// // The old database stays, sealed, on its server until:
    /// tenancy.purge_old_copy(&su, id).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// If this fails, is cancelled, or its process dies, nothing changed: the tenant stays
    /// where it was, writable, and the move can be run again. Two windows are the exception:
    /// cut off between a new database's commit and the switch, the move leaves that database
    /// behind, unregistered, for [`Tenancy::cleanup_orphans`] (a rerun refuses until then);
    /// cut off between the seal of an old database and the switch, the tenant stays on its
    /// old home with every row and its writes fail with [`Error::TenantMoved`] until the move
    /// is run again, which finishes it. A move between two servers' databases cut off after its
    /// new database was made (not failing: a failure drops it) leaves that database on the
    /// target server, which [`Tenancy::cleanup_orphans`] drops (the registry names the
    /// database of its name on the old server only), as does the next run of the move; cut
    /// off after its seal, the cleanup keeps it and the rerun replaces it. Into another
    /// server's home, the tenant's line there goes live after the switch, in a task that a
    /// cancelled caller does not stop; a move whose process died before it did leaves the
    /// tenant's first write refused with the retryable [`Error::TenantMoved`], which makes the
    /// line live (so does [`Tenancy::cleanup_orphans`]). [`Moved::writes_held`] says when the
    /// line could not be made live.
    ///
    /// # Errors
    /// [`Error::TenantNotFound`]; [`Error::WrongStatus`] for a suspended or deleted tenant;
    /// [`Error::MoveRefused`] when the tenant is on `to` already, an old copy of an earlier move
    /// is there, the target's tables lack a table or column the tenant's rows need, a schema of
    /// the target's name exists, the two homes' migration histories differ (a move copies
    /// rows, not migrations: run [`Tenancy::migrate_tenants`] first), or writes in flight held
    /// the tenant longer than [`MoveOptions::lock_wait`], or a table has inheritance
    /// descendants both among the tenant's tables and outside them (no reading of it reads
    /// each row once); for an own-database tenant moved to
    /// [`Placement::OwnDatabase`], also when no [`MoveOptions::server`] is set, when it names
    /// the tenant's server or another key of the same PostgreSQL server, or when that server
    /// holds a database of the new one's name that is another tenant's or that the registry
    /// records; [`Error::MoveVerification`] when a copy does not match its
    /// source; [`Error::UnsupportedPlacement`] for a placement this version cannot move to
    /// (or an own-database tenant on a handle without databases); [`Error::UnknownServer`]
    /// for a target server the handle does not map or the registry does not list;
    /// [`Error::WrongDatabase`] for an own database without the tenant's identity row;
    /// [`Error::MigrationRefused`], [`Error::Migration`] building an own schema;
    /// [`Error::Forbidden`] for an expired `su` or one of another `Tenancy`.
    pub async fn move_tenant_with(
        &self,
        su: &Superuser,
        id: TenantId,
        to: Placement,
        options: MoveOptions,
    ) -> Result<Moved> {
        self.check_superuser(su)?;
        if to != Placement::SharedTable {
            // Before anything runs.
            self.handle.tenant_migrations.check_runnable()?;
        }
        let databases = match to {
            Placement::OwnDatabase => Some(self.rt.databases()?),
            // A handle without own-database support has no tenant there to move out.
            _ => self.rt.databases().ok(),
        };
        let migrations = &self.handle.tenant_migrations;
        // The tenant migrations may run on the connection: reset after the commit.
        let mut moved = su
            .audited_and_reset(&self.rt, "tenant.move", async |tx| {
                let moved = match databases.filter(|_| to == Placement::OwnDatabase) {
                    _ if crate::moving::to_home::wanted(to, &options) => {
                        crate::moving::to_home::run(
                            tx,
                            (self.rt.databases()?, &self.rt.pool),
                            (id, to),
                            migrations,
                            &options,
                        )
                        .await?
                    }
                    Some(databases) => {
                        crate::moving::to_database::run(
                            tx,
                            (databases, &self.rt.pool),
                            id,
                            migrations,
                            &options,
                        )
                        .await?
                    }
                    None => crate::moving::run(tx, databases, id, to, migrations, &options).await?,
                };
                notify::send(&mut *tx, self.rt.origin, Change::Revoke, id).await?;
                let detail = format!(
                    "{} -> {}{}: {} rows in {} tables; old copy kept ({})",
                    moved.from,
                    moved.to,
                    match (&moved.schema, &moved.database) {
                        (Some(schema), _) => format!(" ({schema})"),
                        (None, Some(database)) => format!(" ({}/{database})", moved.server),
                        (None, None) => String::new(),
                    },
                    moved.rows(),
                    moved.tables.len(),
                    match &moved.old_copy {
                        OldCopy {
                            schema: Some(schema),
                            ..
                        } => schema.clone(),
                        OldCopy {
                            database: Some(database),
                            server,
                            ..
                        } => match server.as_deref() {
                            Some(server) if server != PRIMARY_SERVER => {
                                format!("{server}/{database}")
                            }
                            _ => database.clone(),
                        },
                        OldCopy {
                            server: Some(server),
                            placement,
                            ..
                        } if *placement != Placement::SharedTable => {
                            format!("an own schema in the home of server {server}")
                        }
                        OldCopy {
                            server: Some(server),
                            ..
                        } => format!("shared rows in the home of server {server}"),
                        _ => "shared rows".to_owned(),
                    },
                );
                Ok((moved, Audit::of([id]).detail(detail)))
            })
            .await?;
        // Contexts of this handle hold the old home: they stop (the notification does the
        // same for other handles, and this one's, should this line not be reached).
        self.revoke_after_commit(id);
        // Into another server's home: its line there was written pending, and goes live now
        // that the registry places the tenant there.
        if moved.server != PRIMARY_SERVER && moved.database.is_none() {
            let task = tokio::spawn(activate_after_switch(
                self.rt.clone(),
                moved.server.clone(),
                id,
                options.after_switch_hold(),
            ));
            let outcome = match task.await {
                Ok(outcome) => outcome,
                Err(e) => Err(e.to_string()),
            };
            if let Err(why) = outcome {
                let held = format!(
                    "the tenant's line in the home of server {} is still pending ({why}): its \
                     writes are refused until it goes live, which its first write refused \
                     (retryable) or Tenancy::cleanup_orphans does",
                    moved.server
                );
                tracing::error!(tenant = %id, "{held}");
                moved.writes_held = Some(held);
            }
        }
        // Out of a database of its own: the connections the old server's budget keeps to the
        // tenant reach the sealed old copy, and count against that budget; none serves it
        // again. (A home's connections are its tenants' together and stay; a context still
        // routed there can read the sealed old rows, and its writes fail at the fence.)
        if let Some(server) = &moved.old_copy.server
            && let Ok(databases) = self.rt.databases()
        {
            databases.forget(server, id).await;
        }
        tracing::warn!(tenant = %id, actor = su.actor(), from = %moved.from, to = %moved.to, rows = moved.rows(), "tenant moved");
        Ok(moved)
    }

    /// Removes what a move kept of a tenant where it lived before: the old schema is dropped,
    /// the old rows deleted from the shared tables (children first), or the old database
    /// dropped (only one that says it is the tenant's and that the move sealed; the drop
    /// happens before the registry forgets it, under the lock a move back onto that server
    /// takes, so a crash leaves the record of a database that is gone, which a rerun clears).
    /// The rows where the tenant lives now are never touched. Audited
    /// (`tenant.purge_old_copy`). Returns what was removed: nothing when no old copy is kept.
    ///
    /// # Errors
    /// [`Error::TenantNotFound`]; [`Error::Forbidden`] for an expired `su` or one of another
    /// `Tenancy`; [`Error::WrongDatabase`] for a recorded old database that is not a sealed
    /// copy of the tenant (nothing is removed); [`Error::UnknownServer`] for an old database
    /// on a server this handle does not map.
    pub async fn purge_old_copy(&self, su: &Superuser, id: TenantId) -> Result<Vec<Purged>> {
        self.check_superuser(su)?;
        su.audited(&self.rt, "tenant.purge_old_copy", async |tx| {
            // No move starts or switches meanwhile, and the tenant's writes go on.
            let row = crate::sql::admin_query(store::TENANT_FOR_PURGE)
                .bind(id.as_uuid())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(Error::TenantNotFound(Lookup::Id(id)))?;
            let current: Placement = sqlx::Row::try_get::<&str, _>(&row, "placement")?.parse()?;
            let server: String = sqlx::Row::try_get(&row, "server")?;
            let home = sqlx::Row::try_get::<Option<&str>, _>(&row, "database_name")?
                .map(crate::databases::name::DatabaseName::parse)
                .transpose()?;
            let (purged, databases) = crate::lifecycle::purge_old_copies(
                tx,
                self.rt.databases.as_ref(),
                id,
                (current, &server),
            )
            .await?;
            // Dropped before the commit: see the docs above.
            for (old_server, name) in databases {
                let database = crate::databases::name::DatabaseName::parse(&name)?;
                crate::databases::provision::lock_name(tx, &database).await?;
                self.rt
                    .databases()?
                    .drop_old_copy(
                        id,
                        (&old_server, &database),
                        home.as_ref().map(|h| (server.as_str(), h)),
                    )
                    .await?;
            }
            let detail = format!("{purged:?}");
            Ok((purged, Audit::of([id]).detail(detail)))
        })
        .await
    }

    /// Forgets the old databases a move of tenant `id` kept on server `server` (and the old
    /// rows it kept in that server's home), without dropping them: for a server that is gone
    /// (decommissioned, its key no longer mapped),
    /// where [`Tenancy::purge_old_copy`] cannot reach them and fails with
    /// [`Error::UnknownServer`], while their record refuses every move that would leave an
    /// old database again. Only for a server this handle does not map: one it maps is purged
    /// instead. What is forgotten is no longer the registry's: should the server come back, a
    /// handle that maps it drops it as a leftover when it connects ([`Tenancy::cleanup_orphans`]
    /// runs then), unless it cannot tell it from the tenant's home. Audited (`tenant.forget_old_copy`). Returns the names of
    /// the databases forgotten.
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy, id: tenancy_sqlx::TenantId) -> tenancy_sqlx::Result<()> {
    /// let su = tenancy.superuser("ops@example.com", "eu-1 was decommissioned").await?;
    /// let forgotten = tenancy.forget_old_copy(&su, id, "eu-1").await?;
    /// println!("no longer recorded: {forgotten:?}");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::MoveRefused`] when this handle maps `server`; [`Error::UnknownServer`] for a
    /// key the registry does not list; [`Error::Invalid`] for a malformed one;
    /// [`Error::TenantNotFound`];
    /// [`Error::Forbidden`] for an expired `su` or one of another `Tenancy`.
    pub async fn forget_old_copy(
        &self,
        su: &Superuser,
        id: TenantId,
        server: &str,
    ) -> Result<Vec<String>> {
        self.check_superuser(su)?;
        if self.rt.databases().is_ok_and(|d| d.knows(server)) {
            return Err(Error::MoveRefused {
                id,
                reason: format!(
                    "this handle maps server {server}: purge_old_copy drops what is kept there \
                     (forget_old_copy is for a server that is gone, which the handle does not map)"
                ),
            });
        }
        tenancy_core::home::validate_server_key(server)?;
        su.audited(&self.rt, "tenant.forget_old_copy", async |tx| {
            crate::sql::admin_query(store::TENANT_FOR_MOVE)
                .bind(id.as_uuid())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(Error::TenantNotFound(Lookup::Id(id)))?;
            let listed: bool = crate::sql::admin_scalar(
                "SELECT EXISTS (SELECT FROM tenancy.servers WHERE key = $1)",
            )
            .bind(server)
            .fetch_one(&mut *tx)
            .await?;
            if !listed {
                return Err(Error::UnknownServer {
                    server: server.to_owned(),
                });
            }
            let forgotten: Vec<String> = crate::sql::admin_scalar(store::OLD_DATABASES_FORGET)
                .bind(id.as_uuid())
                .bind(server)
                .fetch_all(&mut *tx)
                .await?;
            let detail = format!("forgot {forgotten:?} on server {server}, not dropped");
            Ok((forgotten, Audit::of([id]).detail(detail)))
        })
        .await
    }
}

/// Makes tenant `id`'s line in server `server`'s home live after a move's switch
/// ([`Databases::activate_line`](crate::databases::Databases::activate_line)). Run in a task of
/// its own, so that a caller dropped after the registry's commit (a cancelled request) does
/// not leave the tenant's writes refused; tried again over a few seconds, as the home's server
/// may blink. `hold`: a test seam's wait first.
async fn activate_after_switch(
    rt: std::sync::Arc<crate::runtime::Runtime>,
    server: String,
    id: TenantId,
    hold: Option<std::time::Duration>,
) -> std::result::Result<(), String> {
    if let Some(hold) = hold {
        tokio::time::sleep(hold).await;
    }
    let databases = rt.databases().map_err(|e| e.to_string())?;
    let mut last = String::new();
    for pause_ms in [0, 100, 400, 1_500, 4_000] {
        tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
        match databases
            .activate_line(&rt.pool, (&server, None), id, true)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) => {
                tracing::warn!(tenant = %id, server, error = %e,
                    "making the tenant's line in its new home live failed; trying again");
                last = e.to_string();
            }
        }
    }
    Err(last)
}
