//! A small time-bounded cache of resolved tenants, so that resolving the tenant of every request
//! costs a hash lookup instead of a round trip.
//!
//! Only active tenants are cached. Lifecycle changes made through this process clear the cache at
//! once; changes made by another process are seen within the time-to-live.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tenancy_core::TenantId;

use crate::TenantCtx;

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
}

impl ResolveCache {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
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

    pub(crate) fn insert(&self, key: Key, ctx: TenantCtx) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
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

    /// Forgets every entry that resolves to `tenant`.
    pub(crate) fn invalidate(&self, tenant: TenantId) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (ctx, _)| ctx.id() != tenant);
    }
}
