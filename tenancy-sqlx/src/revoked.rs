//! Which contexts may no longer act: the generations at which tenants were revoked.
//!
//! Every context records the generation it was minted at; a suspension, deletion or purge
//! revokes its tenant at a later generation, and a lost notification channel revokes every
//! tenant at once. The resolution cache (`registry/cache.rs`) bumps the same generation on every
//! invalidation, so that a lookup that read the registry before one is not cached after it.
//! Kept apart from the cache because contexts check it on every unit of work, while only the
//! handle resolves.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tenancy_core::TenantId;

#[derive(Debug, Default)]
pub(crate) struct Revocations {
    /// Bumped by every invalidation of the resolution cache (under its lock) and revocation.
    generation: AtomicU64,
    /// The generation at which each tenant was last revoked (suspended, deleted, purged):
    /// contexts minted before it are refused.
    revoked: Mutex<HashMap<TenantId, u64>>,
    /// The generation of the last revocation of every tenant (a lost notification channel):
    /// contexts minted before it are refused, whatever their tenant.
    revoked_all: AtomicU64,
    /// Per tenant, this handle's own revocations against the notifications they sent: positive,
    /// revocations it applied after their commit whose notification has not arrived yet;
    /// negative, notifications that arrived first. See [`Revocations::own_notice_heard`].
    own: Mutex<HashMap<TenantId, i64>>,
}

impl Revocations {
    /// The current generation: a context minted now records it.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Moves to the next generation and returns it.
    pub(crate) fn bump(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Refuses every context of `tenant` minted before now; `invalidate` runs under the lock,
    /// after the revocation is decided and before it is recorded (it bumps the generation).
    pub(crate) fn revoke(&self, tenant: TenantId, invalidate: impl FnOnce()) {
        let mut revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        invalidate();
        revoked.insert(tenant, self.generation());
    }

    /// Refuses every context minted at or before `generation`, whatever its tenant.
    ///
    /// Also forgets the own-notice counts (see [`Revocations::own_notice_heard`]): a lost
    /// channel may have lost the notices they wait for, and a count left over would make the
    /// listener skip a later notice that must apply.
    pub(crate) fn revoke_all_at(&self, generation: u64) {
        self.revoked_all.fetch_max(generation, Ordering::AcqRel);
        self.own.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Whether a context of `tenant` minted at `generation` has been revoked since. One atomic
    /// load when nothing changed since; a map lookup otherwise.
    pub(crate) fn is_revoked(&self, tenant: TenantId, generation: u64) -> bool {
        if self.generation() == generation {
            return false;
        }
        if self.revoked_all.load(Ordering::Acquire) > generation {
            return true;
        }
        let revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        revoked.get(&tenant).is_some_and(|&at| at > generation)
    }

    /// Records that this handle, after the commit of a change it notified, revoked `tenant`
    /// itself: its own notification, when it arrives, is then not applied a second time.
    pub(crate) fn own_revocation_applied(&self, tenant: TenantId) {
        self.count_own(tenant, 1);
    }

    /// Whether this handle's own revocation notification for `tenant`, just heard, must be
    /// applied. Not when the sender already applied it after its commit: applied late, it
    /// would refuse a context resolved correctly after the change (a move's caller resolving
    /// the tenant in its new home). Applied when the sender never got there (cancelled after
    /// the COMMIT went out), which is what the notification is for.
    pub(crate) fn own_notice_heard(&self, tenant: TenantId) -> bool {
        self.count_own(tenant, -1) <= 0
    }

    /// Adds `delta` to `tenant`'s own count and returns the count before it.
    fn count_own(&self, tenant: TenantId, delta: i64) -> i64 {
        let mut own = self.own.lock().unwrap_or_else(|e| e.into_inner());
        let before = own.get(&tenant).copied().unwrap_or(0);
        if before + delta == 0 {
            own.remove(&tenant);
        } else {
            own.insert(tenant, before + delta);
        }
        before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::from_uuid(uuid::Uuid::new_v4())
    }

    #[test]
    fn an_own_notice_applied_first_is_skipped_once_and_only_once() {
        let r = Revocations::default();
        let t = tenant();
        r.own_revocation_applied(t);
        assert!(
            !r.own_notice_heard(t),
            "the notice of a revocation already applied"
        );
        assert!(
            r.own_notice_heard(t),
            "a second notice has no revocation applied before it"
        );
    }

    #[test]
    fn an_own_notice_heard_before_its_revocation_is_applied_and_settles_the_count() {
        let r = Revocations::default();
        let t = tenant();
        assert!(r.own_notice_heard(t));
        r.own_revocation_applied(t);
        assert!(
            r.own.lock().unwrap().is_empty(),
            "the two settled each other"
        );
    }

    #[test]
    fn losing_the_channel_forgets_the_counts_so_a_later_own_notice_applies() {
        let r = Revocations::default();
        let t = tenant();
        // Applied after its commit; its notice is then lost with the channel.
        r.own_revocation_applied(t);
        r.revoke_all_at(r.bump());
        // A later change whose caller was cancelled after its COMMIT: only the notice revokes.
        assert!(
            r.own_notice_heard(t),
            "a leftover count would skip this notice"
        );
    }

    #[test]
    fn counts_are_per_tenant() {
        let r = Revocations::default();
        let (a, b) = (tenant(), tenant());
        r.own_revocation_applied(a);
        assert!(r.own_notice_heard(b));
        assert!(!r.own_notice_heard(a));
    }
}
