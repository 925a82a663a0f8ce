//! What one handle keeps for raw SQL: its settings and what it has learnt of the server. A
//! leaf, so that the runtime can hold it without importing the check.

/// A handle's raw-SQL settings and what it has learnt of the server.
#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    /// [`TenancyBuilder::global_tables`](crate::TenancyBuilder::global_tables).
    pub(crate) global_tables: Vec<String>,
    /// The servers (by key) whose major version was the grammar's at their first raw query (a
    /// major upgrade restarts a server, and the connections with it). Per server: a tenant
    /// database or home on another server may run another version.
    versions_checked: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The catalog's verdicts on what queries used, for as long as the resolution cache keeps
    /// a tenant: see `check.rs`.
    pub(crate) verdicts: Verdicts,
}

impl RawConfig {
    /// Whether server `server`'s version was found to be the grammar's.
    pub(crate) fn version_checked(&self, server: &str) -> bool {
        self.versions_checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(server)
    }

    /// Records that server `server`'s version is the grammar's.
    pub(crate) fn mark_version_checked(&self, server: &str) {
        self.versions_checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(server.to_owned());
    }

    pub(crate) fn new(global_tables: Vec<String>, ttl: std::time::Duration) -> Self {
        Self {
            global_tables,
            versions_checked: Default::default(),
            verdicts: Verdicts::new(ttl),
        }
    }
}

/// Verdicts on rewritten statements (the grammar's and the catalog's on what they use: functions,
/// operators, types, fields, global tables), kept for the resolution cache's time to live: a second round trip per raw
/// query costs more than the lookup it guards. What can change the verdict is DDL by the
/// application's own migrations (a function that shadows a built-in, a tenant column added to
/// a global table), never raw SQL, which only reads; it is seen within that time. Refusals are
/// not kept.
#[derive(Debug, Default)]
pub(crate) struct Verdicts {
    ttl: std::time::Duration,
    seen: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, bool)>>,
}

/// Verdicts kept at most; beyond, the oldest are dropped first.
const MAX_VERDICTS: usize = 1_024;

impl Verdicts {
    pub(crate) fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            seen: Default::default(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<bool> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, fence)| *fence)
    }

    /// Forgets every verdict: this handle's own migration may have changed what they rest on.
    pub(crate) fn clear(&self) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub(crate) fn put(&self, key: String, fence: bool) {
        if self.ttl.is_zero() {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_VERDICTS {
            let ttl = self.ttl;
            seen.retain(|_, (at, _)| at.elapsed() < ttl);
            if seen.len() >= MAX_VERDICTS {
                seen.clear();
            }
        }
        seen.insert(key, (std::time::Instant::now(), fence));
    }
}
