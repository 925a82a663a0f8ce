//! A time-bounded cache of resolved tenants, so that resolving the tenant of every request
//! costs a hash lookup instead of a round trip.
//!
//! A concurrent cache (`quick_cache`: sharded, bounded, evicting the entries least worth
//! keeping one at a time when full) holds the contexts. A miss is loaded once however many
//! requests ask for the same key at the same moment: the first loads it, the others wait for
//! its result instead of each sending the same registry query (a burst after a deploy, or
//! after the entry expired, makes one query per key, not one per request). A load that fails,
//! finds no active tenant or is cancelled caches nothing, and the next waiter loads in turn.
//!
//! Only active tenants are cached. Lifecycle changes made through this process clear their
//! tenant's entries at once; changes made by another process (or another `Tenancy` in this one)
//! arrive as notifications (see `notify.rs`) and clear them within moments, with the
//! time-to-live as the fallback when a notification is missed.
//!
//! A lookup that read the registry before an invalidation must not cache what it read after it:
//! every invalidation bumps a generation, and an insert made with an older generation is dropped.
//! Inserts hold the `gate` shared and invalidations exclusive, so that no invalidation falls
//! between an insert's generation check and the insert; lookups never take it.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use quick_cache::sync::{Cache, DefaultLifecycle, PlaceholderGuard};
use quick_cache::{DefaultHashBuilder, UnitWeighter};
use tenancy_core::TenantId;

use crate::TenantCtx;
use crate::revoked::Revocations;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Id(TenantId),
    Slug(String),
    Host(String),
}

#[derive(Clone)]
struct Entry {
    ctx: TenantCtx,
    at: Instant,
}

type Guard<'c> = PlaceholderGuard<
    'c,
    Key,
    Entry,
    UnitWeighter,
    DefaultHashBuilder,
    DefaultLifecycle<Key, Entry>,
>;

/// What [`ResolveCache::lookup`] found.
pub(crate) enum Cached<'c> {
    Hit(TenantCtx),
    Miss(Miss<'c>),
}

/// A key to load: mint its context at [`Miss::generation`] and [`Miss::fill`] it. Dropped
/// unfilled, it caches nothing and lets the next waiting lookup load.
pub(crate) struct Miss<'c> {
    cache: &'c ResolveCache,
    guard: Option<Guard<'c>>,
    generation: u64,
}

impl Miss<'_> {
    /// The generation to mint the context at, read before the registry was queried.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Caches `ctx` (and hands it to the lookups waiting for it) unless an invalidation came
    /// after the generation was read: a suspension racing the lookup must not leave the
    /// pre-suspension row cached.
    pub(crate) fn fill(self, ctx: &TenantCtx) {
        let Some(guard) = self.guard else { return };
        let _gate = self.cache.gate.read().unwrap_or_else(|e| e.into_inner());
        // Under the gate that invalidations take exclusively: none can slip in between.
        if self.cache.revocations.generation() == self.generation {
            let _ = guard.insert(Entry {
                ctx: ctx.clone(),
                at: Instant::now(),
            });
        }
    }
}

pub(crate) struct ResolveCache {
    ttl: Duration,
    /// `None` when caching is off (a zero time-to-live or capacity): every lookup loads.
    entries: Option<Cache<Key, Entry>>,
    /// Taken shared by inserts and exclusively by invalidations (see the module's doc).
    gate: RwLock<()>,
    /// Shared with the runtime, which checks contexts against it; its generation is bumped,
    /// under the gate, by every invalidation.
    revocations: Arc<Revocations>,
}

impl ResolveCache {
    pub(crate) fn new(ttl: Duration, capacity: usize, revocations: Arc<Revocations>) -> Self {
        Self {
            ttl,
            entries: (!ttl.is_zero() && capacity > 0).then(|| Cache::new(capacity)),
            gate: RwLock::new(()),
            revocations,
        }
    }

    fn fresh(&self, entry: &Entry) -> bool {
        entry.at.elapsed() < self.ttl
    }

    #[cfg(test)]
    pub(crate) fn get(&self, key: &Key) -> Option<TenantCtx> {
        let entry = self.entries.as_ref()?.get(key)?;
        self.fresh(&entry).then_some(entry.ctx)
    }

    /// The cached context for `key`, or a [`Miss`] to fill. Concurrent lookups of a key that
    /// is missing wait here while the first one loads it: on its fill they return what it
    /// loaded; if it caches nothing (not found, not active, an error, a cancelled request) the
    /// next of them loads in turn.
    pub(crate) async fn lookup(&self, key: &Key) -> Cached<'_> {
        let Some(entries) = &self.entries else {
            return Cached::Miss(Miss {
                cache: self,
                guard: None,
                generation: self.generation(),
            });
        };
        loop {
            match entries.get_value_or_guard_async(key).await {
                Ok(entry) if self.fresh(&entry) => return Cached::Hit(entry.ctx),
                // Expired: make way for a load, unless another lookup already replaced it.
                Ok(_) => {
                    entries.remove_if(key, |e| !self.fresh(e));
                }
                Err(guard) => {
                    return Cached::Miss(Miss {
                        cache: self,
                        guard: Some(guard),
                        // Read before the caller queries the registry.
                        generation: self.generation(),
                    });
                }
            }
        }
    }

    /// The generation to pass to [`ResolveCache::insert`]; read it before querying the registry.
    pub(crate) fn generation(&self) -> u64 {
        self.revocations.generation()
    }

    /// Caches `ctx` unless an invalidation happened after `generation` was read.
    #[cfg(test)]
    pub(crate) fn insert(&self, key: Key, ctx: TenantCtx, generation: u64) {
        let Some(entries) = &self.entries else {
            return;
        };
        let _gate = self.gate.read().unwrap_or_else(|e| e.into_inner());
        if self.revocations.generation() == generation {
            entries.insert(
                key,
                Entry {
                    ctx,
                    at: Instant::now(),
                },
            );
        }
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
        let _gate = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let generation = self.revocations.bump();
        if let Some(entries) = &self.entries {
            entries.clear();
        }
        self.revocations.revoke_all_at(generation);
    }

    /// Forgets every entry that resolves to `tenant`.
    pub(crate) fn invalidate(&self, tenant: TenantId) {
        let _gate = self.gate.write().unwrap_or_else(|e| e.into_inner());
        self.revocations.bump();
        if let Some(entries) = &self.entries {
            entries.retain(|_, e| e.ctx.id() != tenant);
        }
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
            report_lanes: Vec::new(),
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

    /// Loads `key` as a resolution does: a lookup, then (on a miss) a slow registry read
    /// counted in `loads`, then the fill.
    async fn resolve(
        cache: &ResolveCache,
        key: &Key,
        id: TenantId,
        loads: &std::sync::atomic::AtomicUsize,
    ) -> TenantId {
        match cache.lookup(key).await {
            Cached::Hit(ctx) => ctx.id(),
            Cached::Miss(miss) => {
                loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                let ctx = ctx(id);
                miss.fill(&ctx);
                ctx.id()
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_of_one_key_load_it_once() {
        let cache = ResolveCache::new(Duration::from_secs(60), 10, Arc::default());
        let loads = std::sync::atomic::AtomicUsize::new(0);
        let id = TenantId::new_v4();
        let key = Key::Host("acme.example.com".into());
        let all =
            futures_util::future::join_all((0..16).map(|_| resolve(&cache, &key, id, &loads)))
                .await;
        assert!(all.iter().all(|&got| got == id));
        assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_miss_dropped_unfilled_lets_the_next_lookup_load() {
        let cache = ResolveCache::new(Duration::from_secs(60), 10, Arc::default());
        let key = Key::Slug("acme".into());
        // Not found, an error, a cancelled request: the miss is dropped, nothing is cached.
        let Cached::Miss(first) = cache.lookup(&key).await else {
            panic!("empty cache")
        };
        drop(first);
        let Cached::Miss(second) = cache.lookup(&key).await else {
            panic!("nothing was cached")
        };
        let id = TenantId::new_v4();
        second.fill(&ctx(id));
        assert!(matches!(cache.lookup(&key).await, Cached::Hit(c) if c.id() == id));
    }

    #[tokio::test]
    async fn a_fill_that_raced_an_invalidation_is_not_cached() {
        let cache = ResolveCache::new(Duration::from_secs(60), 10, Arc::default());
        let id = TenantId::new_v4();
        let key = Key::Id(id);
        let Cached::Miss(miss) = cache.lookup(&key).await else {
            panic!("empty cache")
        };
        // The registry row is read, then the tenant is suspended, then the fill comes.
        cache.revoke(id);
        miss.fill(&ctx(id));
        assert!(cache.get(&key).is_none());
    }

    #[tokio::test]
    async fn a_full_cache_evicts_some_entries_instead_of_clearing_all() {
        let capacity = 64;
        let cache = ResolveCache::new(Duration::from_secs(60), capacity, Arc::default());
        let ids: Vec<TenantId> = (0..capacity * 4).map(|_| TenantId::new_v4()).collect();
        for id in &ids {
            cache.insert(Key::Id(*id), ctx(*id), cache.generation());
        }
        let kept = ids
            .iter()
            .filter(|id| cache.get(&Key::Id(**id)).is_some())
            .count();
        assert!(kept <= capacity, "bounded: {kept} of {capacity}");
        assert!(
            kept >= capacity / 2,
            "evicted one at a time, not cleared: {kept}"
        );
        // The last one in is still there (a clear-all at capacity would have dropped it next).
        let last = *ids.last().unwrap();
        cache.insert(Key::Slug("one-more".into()), ctx(last), cache.generation());
        assert!(cache.get(&Key::Slug("one-more".into())).is_some());
    }
}
