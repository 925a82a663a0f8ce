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
//!
//! A listener can be connected and still hear nothing: its `LISTEN` ran on a server connection
//! PgBouncer lends to others, or its address names another database (notifications are per
//! database). So after every `LISTEN` it sends a hello of its own through the handle's pool and
//! counts as listening only once that exact hello comes back.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tenancy_core::TenantId;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Result;
use crate::registry::cache::ResolveCache;
use crate::revoked::Revocations;

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

/// What one notification on the channel says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Notice {
    /// A listener proving that it hears the channel (see `hear_hello`): nothing changed.
    Hello(uuid::Uuid),
    /// A change, its tenant and the handle that made it.
    Change(Change, TenantId, uuid::Uuid),
}

/// A payload's meaning; `None` for one this version does not know.
fn parse(payload: &str) -> Option<Notice> {
    let mut words = payload.split(' ');
    let notice = match words.next()? {
        "hello" => Notice::Hello(words.next()?.parse().ok()?),
        word => {
            let change = match word {
                "revoke" => Change::Revoke,
                "forget" => Change::Forget,
                _ => return None,
            };
            let tenant = TenantId::from_uuid(words.next()?.parse().ok()?);
            Notice::Change(change, tenant, words.next()?.parse().ok()?)
        }
    };
    words.next().is_none().then_some(notice)
}

/// The longest wait for a listener's own hello: a server that answers at all delivers it in
/// moments, and `connect` should not hang for the whole acquire timeout on a listener that
/// will never hear it.
const HELLO_WAIT: Duration = Duration::from_secs(3);

/// Sends a hello with a fresh nonce through `pool` (the handle's own, so the way every change
/// is sent) and waits up to `timeout` for it on `listener`, applying whatever else arrives
/// meanwhile. `Ok(false)` if it never arrives.
async fn hear_hello(
    listener: &mut PgListener,
    pool: &sqlx::PgPool,
    cache: &ResolveCache,
    own: &Own,
    timeout: Duration,
) -> Result<bool> {
    let nonce = uuid::Uuid::new_v4();
    // One simple query, outside any transaction: the channel is a constant and the payload a
    // uuid of ours, so nothing needs binding (see `crate::sql::in_own_tx` for why that matters
    // behind PgBouncer).
    let sent = sqlx::raw_sql(crate::sql::text(format!(
        "SELECT pg_notify('{CHANNEL}', 'hello {nonce}')"
    )))
    .execute(pool)
    .await;
    match sent {
        Ok(_) => {}
        // Behind a pooler in transaction mode the server connection that ran `LISTEN` may be
        // lent to the pool, and the hello delivered there, to a connection that expects no
        // notification: the proof that the listener does not hear.
        Err(sqlx::Error::Protocol(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let heard = tokio::time::timeout(timeout, async {
        loop {
            match listener.try_recv().await? {
                Some(n) if parse(n.payload()) == Some(Notice::Hello(nonce)) => return Ok(true),
                Some(n) => apply(cache, own, n.payload()),
                // The connection was lost: this listener hears nothing now.
                None => return Ok(false),
            }
        }
    })
    .await;
    heard.unwrap_or(Ok(false))
}

/// The listener task of one handle. Dropping the last clone of the handle (which owns this)
/// stops it; so does [`Listener::stop`].
pub(crate) struct Listener {
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Listener {
    /// Connects, listens and hears its own hello before returning, so that no change committed
    /// after the handle is built goes unseen; then hands the connection to a task.
    ///
    /// # Errors
    /// [`Error::Connect`](crate::Error::Connect) if the listener's server cannot be reached;
    /// [`Error::NotificationsUnheard`](crate::Error::NotificationsUnheard) if a notification
    /// sent through the handle's pool does not reach the listener.
    pub(crate) async fn start(
        options: PgConnectOptions,
        timeout: Duration,
        handle_pool: sqlx::PgPool,
        cache: &Arc<ResolveCache>,
        own: Own,
    ) -> Result<Self> {
        let options = options.application_name(APPLICATION_NAME);
        // The listener runs no tenant's statement: its search_path does not matter.
        crate::server::probe(&options, timeout, false).await?;
        let address = crate::server::address(&options);
        // A pool of one connection, only for PgListener's reconnection; pinged before reuse so
        // that a terminated backend is replaced rather than handed back.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(true)
            .connect_lazy_with(options);
        let mut listener = listen(&pool).await?;
        let wait = timeout.min(HELLO_WAIT);
        if !hear_hello(&mut listener, &handle_pool, cache, &own, wait).await? {
            // Behind a pooler, a server connection left listening would hand this channel's
            // notifications to whichever client it serves next.
            let _ = listener.unlisten_all().await;
            drop(listener);
            pool.close().await;
            return Err(crate::Error::NotificationsUnheard { listener: address });
        }
        let (stop, stopped) = watch::channel(false);
        let cache = Arc::downgrade(cache);
        let task = tokio::spawn(run(listener, pool, handle_pool, cache, own, wait, stopped));
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
    handle_pool: sqlx::PgPool,
    cache: Weak<ResolveCache>,
    own: Own,
    wait: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut listener = Some(listener);
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(current) = listener.as_mut() else {
            let Some(strong) = cache.upgrade() else { break };
            let relisten = async {
                let mut l = listen(&pool).await?;
                let heard = hear_hello(&mut l, &handle_pool, &strong, &own, wait).await?;
                Ok::<_, crate::Error>(heard.then_some(l))
            };
            tokio::select! {
                _ = stopped.changed() => break,
                relistened = relisten => match relistened {
                    Ok(Some(l)) => {
                        listener = Some(l);
                        backoff = Duration::from_millis(50);
                        // Whatever was sent while disconnected is lost.
                        strong.revoke_all();
                        tracing::warn!("tenancy registry listener reconnected; revoked every context resolved before");
                    }
                    failed => {
                        match failed {
                            Err(e) => tracing::warn!(error = %e, "tenancy registry listener cannot reconnect; retrying"),
                            // Still deaf: contexts resolved meanwhile are revoked once it hears.
                            _ => tracing::warn!("tenancy registry listener reconnected but does not hear its own notification; retrying"),
                        }
                        drop(strong);
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
                    let Some(cache) = cache.upgrade() else { break };
                    apply(&cache, &own, n.payload());
                }
                Ok(None) | Err(_) => {
                    tracing::warn!("tenancy registry listener lost its connection; reconnecting");
                    // Deaf until it hears its hello again: whatever stops meanwhile is unheard,
                    // so every context held now is refused at once, not after the reconnect.
                    let Some(cache) = cache.upgrade() else { break };
                    cache.revoke_all();
                    listener = None;
                }
            },
        }
    }
    drop(listener);
    pool.close().await;
}

/// Who this listener's handle is: its own notifications are matched against the changes it
/// applied itself (see `apply`).
pub(crate) struct Own {
    /// The handle's `origin`, as its notifications carry it.
    pub(crate) origin: uuid::Uuid,
    pub(crate) revocations: Arc<Revocations>,
}

fn apply(cache: &ResolveCache, own: &Own, payload: &str) {
    // The sending handle's own notifications are applied too: a change whose caller was
    // cancelled after its COMMIT went out never ran its own cache update, and a resolution that
    // raced the change may have cached the tenant as active. Applying twice is harmless.
    match parse(payload) {
        // Another listener proving it hears the channel.
        Some(Notice::Hello(_)) => {}
        // Unless the sender already applied it after its commit (see
        // `Revocations::own_notice_heard`): applied late, it would refuse a context resolved
        // correctly after the change.
        Some(Notice::Change(Change::Revoke, tenant, origin))
            if origin == own.origin && !own.revocations.own_notice_heard(tenant) => {}
        Some(Notice::Change(Change::Revoke, tenant, _)) => cache.revoke(tenant),
        Some(Notice::Change(Change::Forget, tenant, _)) => cache.invalidate(tenant),
        None => {
            // A newer version's notification: the safe reading is that anything changed.
            tracing::warn!(
                payload,
                "unknown tenancy registry notification; revoking every context"
            );
            cache.revoke_all();
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
            assert_eq!(parse(&payload), Some(Notice::Change(change, t, o)));
        }
        assert_eq!(parse(&format!("hello {o}")), Some(Notice::Hello(o)));
        assert_eq!(parse(&format!("hello {o} {o}")), None);
        assert_eq!(parse("hello"), None);
        assert_eq!(parse(&format!("rename {t} {o}")), None);
        assert_eq!(parse(&format!("revoke {t}")), None);
        assert_eq!(parse(&format!("revoke {t} {o} more")), None);
        assert_eq!(parse("revoke not-a-uuid x"), None);
    }
}
