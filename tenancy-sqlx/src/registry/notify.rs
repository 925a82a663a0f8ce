//! Registry changes reach every [`Tenancy`](crate::Tenancy) handle, in this process and in
//! others, through PostgreSQL's `LISTEN`/`NOTIFY`.
//!
//! A change that stops a tenant (suspension, deletion, purge) or changes how it resolves (slug,
//! hosts, resumption) queues a notification in its own transaction, so it is sent on commit and
//! never for a rollback. Each handle runs a listener task on a connection of its own (a pooled
//! connection would be handed to other work and miss notifications) that drops the tenant from
//! the resolution cache and, for a stop, revokes the contexts resolved before it.
//!
//! Notifications sent while the listener is disconnected are lost, so after reconnecting it
//! revokes everything resolved before: any tenant may have stopped meanwhile. The cache's
//! time-to-live bounds what a handle whose listener cannot reconnect serves.

use std::sync::{Mutex, Weak};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tenancy_core::TenantId;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Result;
use crate::runtime::Runtime;

/// The channel the registry owns. Notifications are per database, like the registry.
const CHANNEL: &str = "tenancy_registry";

/// The `application_name` of the listener's connection, to find it in `pg_stat_activity`.
pub(crate) const APPLICATION_NAME: &str = "tenancy registry listener";

/// What a registry change means for other handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// The tenant stopped (suspended, deleted, purged): forget it and refuse its held contexts.
    Revoke,
    /// The tenant resolves differently (slug, hosts, resumed): forget it.
    Forget,
}

impl Change {
    fn word(self) -> &'static str {
        match self {
            Self::Revoke => "revoke",
            Self::Forget => "forget",
        }
    }
}

/// Queues the notification of `change` to `tenant` in the caller's transaction: PostgreSQL
/// sends it on commit. `origin` names the sending handle, for whoever reads the channel; the
/// sender applies its own notification too (see `apply`).
pub(crate) async fn send(
    tx: &mut sqlx::PgConnection,
    origin: uuid::Uuid,
    change: Change,
    tenant: TenantId,
) -> Result<()> {
    crate::sql::admin_query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(format!("{} {tenant} {origin}", change.word()))
        .execute(tx)
        .await?;
    Ok(())
}

/// A payload's change, tenant and origin; `None` for one this version does not know.
fn parse(payload: &str) -> Option<(Change, TenantId, uuid::Uuid)> {
    let mut words = payload.split(' ');
    let change = match words.next()? {
        "revoke" => Change::Revoke,
        "forget" => Change::Forget,
        _ => return None,
    };
    let tenant = TenantId::from_uuid(words.next()?.parse().ok()?);
    let origin = words.next()?.parse().ok()?;
    words.next().is_none().then_some((change, tenant, origin))
}

/// The listener task of one handle. Dropping the last clone of the handle (which owns this)
/// stops it; so does [`Listener::stop`].
pub(crate) struct Listener {
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Listener {
    /// Connects and listens before returning, so that no change committed after the handle is
    /// built goes unseen; then hands the connection to a task.
    ///
    /// # Errors
    /// [`Error::Connect`](crate::Error::Connect) if the listener's server cannot be reached.
    pub(crate) async fn start(
        options: PgConnectOptions,
        timeout: Duration,
        rt: Weak<Runtime>,
    ) -> Result<Self> {
        let options = options.application_name(APPLICATION_NAME);
        // The listener runs no tenant's statement: its search_path does not matter.
        crate::runtime::probe(&options, timeout, false).await?;
        // A pool of one connection, only for PgListener's reconnection; pinged before reuse so
        // that a terminated backend is replaced rather than handed back.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(true)
            .connect_lazy_with(options);
        let listener = listen(&pool).await?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(listener, pool, rt, stopped));
        Ok(Self {
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Stops the task and waits until it has closed its connection.
    pub(crate) async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

async fn listen(pool: &sqlx::PgPool) -> Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Its own pool: nobody closes it but this task.
    listener.ignore_pool_close_event(true);
    // A lost connection returns `None` at once, so that the task revokes before listening again.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

async fn run(
    listener: PgListener,
    pool: sqlx::PgPool,
    rt: Weak<Runtime>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut listener = Some(listener);
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(current) = listener.as_mut() else {
            tokio::select! {
                _ = stopped.changed() => break,
                relistened = listen(&pool) => match relistened {
                    Ok(l) => {
                        listener = Some(l);
                        backoff = Duration::from_millis(50);
                        // Whatever was sent while disconnected is lost.
                        let Some(rt) = rt.upgrade() else { break };
                        rt.cache.revoke_all();
                        tracing::warn!("tenancy registry listener reconnected; revoked every context resolved before");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "tenancy registry listener cannot reconnect; retrying");
                        tokio::select! {
                            _ = stopped.changed() => break,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                },
            }
            continue;
        };
        tokio::select! {
            _ = stopped.changed() => break,
            received = current.try_recv() => match received {
                Ok(Some(n)) => {
                    let Some(rt) = rt.upgrade() else { break };
                    apply(&rt, n.payload());
                }
                Ok(None) | Err(_) => {
                    tracing::warn!("tenancy registry listener lost its connection; reconnecting");
                    listener = None;
                }
            },
        }
    }
    drop(listener);
    pool.close().await;
}

fn apply(rt: &Runtime, payload: &str) {
    // The sending handle's own notifications are applied too: a change whose caller was
    // cancelled after its COMMIT went out never ran its own cache update, and a resolution that
    // raced the change may have cached the tenant as active. Applying twice is harmless.
    match parse(payload) {
        Some((Change::Revoke, tenant, _)) => rt.cache.revoke(tenant),
        Some((Change::Forget, tenant, _)) => rt.cache.invalidate(tenant),
        None => {
            // A newer version's notification: the safe reading is that anything changed.
            tracing::warn!(
                payload,
                "unknown tenancy registry notification; revoking every context"
            );
            rt.cache.revoke_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_unknown_ones_are_refused() {
        let (t, o) = (TenantId::new_v4(), uuid::Uuid::new_v4());
        for change in [Change::Revoke, Change::Forget] {
            let payload = format!("{} {t} {o}", change.word());
            assert_eq!(parse(&payload), Some((change, t, o)));
        }
        assert_eq!(parse(&format!("rename {t} {o}")), None);
        assert_eq!(parse(&format!("revoke {t}")), None);
        assert_eq!(parse(&format!("revoke {t} {o} more")), None);
        assert_eq!(parse("revoke not-a-uuid x"), None);
    }
}
