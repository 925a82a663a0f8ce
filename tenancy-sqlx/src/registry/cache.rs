//! A small time-bounded cache of resolved tenants, so that resolving the tenant of every request
//! costs a hash lookup instead of a round trip.
//!
//! Only active tenants are cached. Lifecycle changes made through this process clear the cache at
//! once; changes made by another process (or another `Tenancy` in this one) arrive as
//! notifications (see `notify.rs`) and clear it within moments, with the time-to-live as the
//! fallback when a notification is missed.
//!
//! A lookup that read the registry before an invalidation must not cache what it read after it:
//! every invalidation bumps a generation, and an insert made with an older generation is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tenancy_core::TenantId;

use crate::TenantCtx;
use crate::revoked::Revocations;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Id(TenantId),
    Slug(String),
    Host(String),
}

pub(crate) struct ResolveCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<Key, (TenantCtx, Instant)>>,
    /// Shared with the runtime, which checks contexts against it; its generation is bumped,
    /// under the `entries` lock, by every invalidation.
    revocations: Arc<Revocations>,
}

impl ResolveCache {
    pub(crate) fn new(ttl: Duration, capacity: usize, revocations: Arc<Revocations>) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
            revocations,
        }
    }

    pub(crate) fn get(&self, key: &Key) -> Option<TenantCtx> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some((ctx, at)) if at.elapsed() < self.ttl => Some(ctx.clone()),
            _ => None,
        }
    }

    /// The generation to pass to [`ResolveCache::insert`]; read it before querying the registry.
    pub(crate) fn generation(&self) -> u64 {
        self.revocations.generation()
    }

    /// Caches `ctx` unless an invalidation happened after `generation` was read.
    pub(crate) fn insert(&self, key: Key, ctx: TenantCtx, generation: u64) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Checked under the lock that invalidations take, so none can slip in between.
        if self.revocations.generation() != generation {
            return;
        }
        if entries.len() >= self.capacity {
            // Drop what has expired; if the cache is still full, start over rather than keep an
            // LRU's bookkeeping on every hit.
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (ctx, Instant::now()));
    }

    /// Forgets `tenant`, and refuses from now on every context of it minted before: a status
    /// change that stops the tenant's resolution stops its held contexts too.
    pub(crate) fn revoke(&self, tenant: TenantId) {
        self.revocations.revoke(tenant, || self.invalidate(tenant));
    }

    /// Whether a context of `tenant` minted at `generation` has been revoked since (see
    /// [`Revocations::is_revoked`]).
    #[cfg(test)]
    pub(crate) fn is_revoked(&self, tenant: TenantId, generation: u64) -> bool {
        self.revocations.is_revoked(tenant, generation)
    }

    /// Forgets every entry and refuses every context minted before now: for when changes may
    /// have been missed (the notification connection was lost), so any tenant may have stopped.
    pub(crate) fn revoke_all(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.revocations.bump();
        entries.clear();
        self.revocations.revoke_all_at(generation);
    }

    /// Forgets every entry that resolves to `tenant`.
    pub(crate) fn invalidate(&self, tenant: TenantId) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.revocations.bump();
        entries.retain(|_, (ctx, _)| ctx.id() != tenant);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::runtime::Runtime;
    use sqlx::postgres::PgPoolOptions;

    fn ctx(id: TenantId) -> TenantCtx {
        // A lazy pool never connects: these tests only need a token to cache.
        let pool = PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .expect("a lazy pool");
        let rt = Arc::new(Runtime {
            lanes: vec![pool.clone()],
            pool,
            revocations: Arc::default(),
            persistent: true,
            rls: false,
            origin: uuid::Uuid::nil(),
            epoch: Arc::new(crate::conn::SchemaEpoch::new()),
            models: crate::checked::Checked::default(),
            raw: Default::default(),
            databases: None,
        });
        TenantCtx::mint(
            rt,
            id,
            "acme".into(),
            "Acme".into(),
            tenancy_core::Home::SharedTable,
            crate::ctx::Validity {
                generation: 0,
                expires: None,
            },
        )
    }

    #[tokio::test]
    async fn a_lookup_that_raced_an_invalidation_is_not_cached() {
        let cache = ResolveCache::new(Duration::from_secs(60), 10, Arc::default());
        let id = TenantId::new_v4();
        let key = Key::Id(id);

        // A resolve reads the generation, then the registry row (still active) ...
        let generation = cache.generation();
        // ... meanwhile the tenant is suspended and the cache invalidated ...
        cache.invalidate(id);
        // ... and the resolve caches what it read: dropped, or the suspension would not hold.
        cache.insert(key.clone(), ctx(id), generation);
        assert!(cache.get(&key).is_none());

        // A lookup that started after the invalidation is cached as usual.
        cache.insert(key.clone(), ctx(id), cache.generation());
        assert_eq!(cache.get(&key).map(|c| c.id()), Some(id));
    }

    #[test]
    fn revocation_stops_contexts_minted_before_it_only() {
        let cache = ResolveCache::new(Duration::from_secs(60), 10, Arc::default());
        let (a, b) = (TenantId::new_v4(), TenantId::new_v4());
        let before = cache.generation();
        assert!(!cache.is_revoked(a, before));
        cache.invalidate(b); // a host change of another tenant: nothing revoked
        assert!(!cache.is_revoked(a, before));
        cache.revoke(a);
        assert!(cache.is_revoked(a, before), "minted before the suspension");
        assert!(!cache.is_revoked(b, before), "another tenant");
        assert!(
            !cache.is_revoked(a, cache.generation()),
            "resolved after it"
        );
    }

    #[tokio::test]
    async fn revoking_all_forgets_every_entry_and_stops_every_earlier_context() {
        let cache = ResolveCache::new(Duration::from_secs(60), 10, Arc::default());
        let (a, b) = (TenantId::new_v4(), TenantId::new_v4());
        let before = cache.generation();
        cache.insert(Key::Id(a), ctx(a), before);
        cache.insert(Key::Id(b), ctx(b), before);
        cache.revoke_all();
        assert!(cache.get(&Key::Id(a)).is_none());
        assert!(cache.get(&Key::Id(b)).is_none());
        assert!(cache.is_revoked(a, before) && cache.is_revoked(b, before));
        let after = cache.generation();
        assert!(!cache.is_revoked(a, after) && !cache.is_revoked(b, after));
    }

    #[tokio::test]
    async fn invalidation_forgets_every_key_of_the_tenant_only() {
        let cache = ResolveCache::new(Duration::from_secs(60), 10, Arc::default());
        let (a, b) = (TenantId::new_v4(), TenantId::new_v4());
        let g = cache.generation();
        cache.insert(Key::Id(a), ctx(a), g);
        cache.insert(Key::Slug("acme".into()), ctx(a), g);
        cache.insert(Key::Id(b), ctx(b), g);
        cache.invalidate(a);
        assert!(cache.get(&Key::Id(a)).is_none());
        assert!(cache.get(&Key::Slug("acme".into())).is_none());
        assert_eq!(cache.get(&Key::Id(b)).map(|c| c.id()), Some(b));
    }
}
