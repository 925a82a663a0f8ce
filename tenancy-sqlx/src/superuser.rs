//! The cross-tenant capability: [`Superuser`], acquired only through an audited call, and the
//! registry operations that need it: listing tenants, impersonation, the audit log itself.
//!
//! Acquisition goes through an optional policy ([`TenancyBuilder::superuser_policy`]) and may
//! expire ([`TenancyBuilder::superuser_ttl`](crate::TenancyBuilder::superuser_ttl)). Every acquisition, refusal and operation is a row
//! of `tenancy.audit_log`; [`Tenancy::audit_log`](crate::Tenancy::audit_log) reads them back.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgConnection;
use tenancy_core::TenantId;
use time::OffsetDateTime;

use crate::registry::store;
use crate::runtime::Runtime;
use crate::{Error, Result};

/// The capability for cross-tenant work: admin screens, reports, impersonation, lifecycle
/// changes.
///
/// Acquired only through [`Tenancy::superuser`](crate::Tenancy::superuser), which records the actor and the reason in
/// `tenancy.audit_log` before returning it; every operation done with it is recorded there too,
/// under the acquisition's id ([`Superuser::grant_id`]). It cannot be built, defaulted,
/// deserialised, cloned, or derived from a [`TenantCtx`](crate::TenantCtx):
///
/// ```compile_fail
/// # use tenancy_sqlx::{Superuser, TenantCtx};
/// fn escalate(ctx: TenantCtx) -> Superuser { Superuser::from(ctx) }
/// ```
///
/// With a time-to-live ([`TenancyBuilder::superuser_ttl`](crate::TenancyBuilder::superuser_ttl)) it expires: from then on every
/// operation refuses it with [`Error::Forbidden`], and a new one must be acquired (and audited).
///
/// ```no_run
/// # async fn demo(tenancy: tenancy_sqlx::Tenancy) -> tenancy_sqlx::Result<()> {
/// let su = tenancy.superuser("ops@example.com", "ticket #4411").await?;
/// for tenant in tenancy.list_tenants(&su).await? {
///     println!("{} {} {}", tenant.slug, tenant.placement, tenant.status);
/// }
/// # Ok(()) }
/// ```
pub struct Superuser {
    inner: Arc<SuperuserInner>,
}

struct SuperuserInner {
    grant_id: i64,
    actor: String,
    reason: String,
    acquired_at: OffsetDateTime,
    /// Monotonic, for the time-to-live: wall-clock changes neither shorten nor extend it.
    acquired: Instant,
    ttl: Option<Duration>,
    rt: Arc<Runtime>,
}

impl Superuser {
    /// Who acquired it.
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy) -> tenancy_sqlx::Result<()> {
    /// let su = tenancy.superuser("ops@example.com", "ticket #4411").await?;
    /// assert_eq!(su.actor(), "ops@example.com");
    /// # Ok(()) }
    /// ```
    pub fn actor(&self) -> &str {
        &self.inner.actor
    }

    /// Why.
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy) -> tenancy_sqlx::Result<()> {
    /// let su = tenancy.superuser("ops@example.com", "ticket #4411").await?;
    /// assert_eq!(su.reason(), "ticket #4411");
    /// # Ok(()) }
    /// ```
    pub fn reason(&self) -> &str {
        &self.inner.reason
    }

    /// When, as recorded by the database in the acquisition's audit record.
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy) -> tenancy_sqlx::Result<()> {
    /// let su = tenancy.superuser("ops@example.com", "ticket #4411").await?;
    /// println!("acquired at {}", su.acquired_at());
    /// # Ok(()) }
    /// ```
    pub fn acquired_at(&self) -> OffsetDateTime {
        self.inner.acquired_at
    }

    /// The id of the acquisition's audit record; every later record made with this capability
    /// points to it (`grant_id`), so [`AuditQuery::grant_id`] lists everything done under it.
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy) -> tenancy_sqlx::Result<()> {
    /// use tenancy_sqlx::AuditQuery;
    /// let su = tenancy.superuser("ops@example.com", "ticket #4411").await?;
    /// let done = tenancy
    ///     .audit_log(&su, AuditQuery { grant_id: Some(su.grant_id()), ..AuditQuery::default() })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn grant_id(&self) -> i64 {
        self.inner.grant_id
    }

    /// When it expires, if [`TenancyBuilder::superuser_ttl`](crate::TenancyBuilder::superuser_ttl) was set.
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy) -> tenancy_sqlx::Result<()> {
    /// let su = tenancy.superuser("ops@example.com", "ticket #4411").await?;
    /// if let Some(at) = su.expires_at() {
    ///     println!("valid until {at}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.inner.ttl.map(|ttl| self.inner.acquired_at + ttl)
    }

    /// Whether its time-to-live has run out. An expired capability is refused by every
    /// operation; acquire a new one.
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy) -> tenancy_sqlx::Result<()> {
    /// let mut su = tenancy.superuser("ops@example.com", "nightly report").await?;
    /// if su.is_expired() {
    ///     su = tenancy.superuser("ops@example.com", "nightly report").await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn is_expired(&self) -> bool {
        self.inner
            .ttl
            .is_some_and(|ttl| self.inner.acquired.elapsed() >= ttl)
    }

    /// Refuses an expired capability.
    pub(crate) fn check_active(&self) -> Result<()> {
        if self.is_expired() {
            tracing::warn!(
                actor = %self.inner.actor,
                grant_id = self.inner.grant_id,
                "expired superuser refused"
            );
            let at = self
                .expires_at()
                .map_or_else(String::new, |at| format!(" at {at}"));
            return Err(Error::Forbidden(format!(
                "this Superuser (grant {}, {:?}) expired{at}; acquire a new one",
                self.inner.grant_id, self.inner.actor
            )));
        }
        Ok(())
    }

    /// A grant just written to the audit log (see `Tenancy::superuser`).
    pub(crate) fn grant(
        grant_id: i64,
        actor: &str,
        reason: &str,
        acquired_at: OffsetDateTime,
        ttl: Option<Duration>,
        rt: Arc<Runtime>,
    ) -> Self {
        Self {
            inner: Arc::new(SuperuserInner {
                grant_id,
                actor: actor.to_owned(),
                reason: reason.to_owned(),
                acquired_at,
                acquired: Instant::now(),
                ttl,
                rt,
            }),
        }
    }

    /// When this grant stops acting, on this process's clock; `None` without a time-to-live.
    pub(crate) fn expires(&self) -> Option<Instant> {
        self.inner.ttl.map(|ttl| self.inner.acquired + ttl)
    }

    /// The runtime it was acquired through.
    pub(crate) fn runtime(&self) -> &Arc<Runtime> {
        &self.inner.rt
    }

    /// Refuses this capability on a handle it was not acquired through (another database), or
    /// once it expired.
    pub(crate) fn check_for(&self, rt: &Arc<Runtime>) -> Result<()> {
        if !Arc::ptr_eq(&self.inner.rt, rt) {
            return Err(Error::Forbidden(
                "this Superuser was acquired through another Tenancy".into(),
            ));
        }
        self.check_active()
    }

    /// The one way an admin change is written: checks this capability against the handle's
    /// runtime `rt`, begins a transaction on the admin pool, runs `work` in it, writes the
    /// audit row `work` returns (action `action`) in the same transaction, and commits. Any
    /// error rolls back the work with its audit row, so a change cannot commit unaudited nor an
    /// audit row claim a change that did not happen.
    ///
    /// `work` says what to record ([`Audit`]) because what it touched is often known only once
    /// it ran (the tenants listed, the rows purged). What must follow the commit (clearing the
    /// resolution cache) follows the call.
    pub(crate) async fn audited<T>(
        &self,
        rt: &Arc<Runtime>,
        action: &str,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<(T, Audit)>,
    ) -> Result<T> {
        self.audited_then(rt, action, false, work).await
    }

    /// [`Superuser::audited`] for work that ran DDL or migration text: the connection's session
    /// is reset after the commit (see `Conn::commit_and_reset`).
    pub(crate) async fn audited_and_reset<T>(
        &self,
        rt: &Arc<Runtime>,
        action: &str,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<(T, Audit)>,
    ) -> Result<T> {
        self.audited_then(rt, action, true, work).await
    }

    /// [`Superuser::audited`] or [`Superuser::audited_and_reset`], as `reset` says: for work
    /// that runs DDL only on some paths (a tenant created in its own schema or in shared tables).
    pub(crate) async fn audited_then<T>(
        &self,
        rt: &Arc<Runtime>,
        action: &str,
        reset: bool,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<(T, Audit)>,
    ) -> Result<T> {
        self.check_for(rt)?;
        let mut tx = rt.begin().await?;
        let (out, audit) = work(&mut tx).await?;
        self.audit(
            &mut tx,
            audit.action.unwrap_or(action),
            &audit.tenants,
            audit.detail.as_deref(),
        )
        .await?;
        if reset {
            tx.commit_and_reset().await?;
        } else {
            tx.commit().await?;
        }
        Ok(out)
    }

    /// The one way audited work that commits in many transactions of its own is recorded
    /// (migrating every tenant, each in its transaction): checks this capability against `rt`,
    /// runs `work`, then writes the audit row `work` returns (action `action`), with what
    /// happened, on a connection of its own. Work that fails is recorded too, with its error
    /// as the detail (naming no tenant: it may have failed before it knew them). A single transaction cannot hold both the work and its
    /// outcome here; what [`Superuser::audited`] guarantees for one transaction, this gives for
    /// work that returns: a future dropped half-way records nothing.
    pub(crate) async fn audited_outcome<T>(
        &self,
        rt: &Arc<Runtime>,
        action: &str,
        work: impl AsyncFnOnce() -> Result<(T, Audit)>,
    ) -> Result<T> {
        self.check_for(rt)?;
        let (out, audit) = match work().await {
            Ok(done) => done,
            Err(e) => {
                let detail = format!("failed: {e}");
                rt.with_conn(async |c| self.audit(c, action, &[], Some(&detail)).await)
                    .await?;
                return Err(e);
            }
        };
        rt.with_conn(async |c| {
            self.audit(
                c,
                audit.action.unwrap_or(action),
                &audit.tenants,
                audit.detail.as_deref(),
            )
            .await
        })
        .await?;
        Ok(out)
    }

    /// The one way an audited read is done: checks this capability against `rt`, writes the
    /// audit row (action `action`, naming `tenants`) first, on a connection of its own, so that
    /// the read is on record even if it fails half-way, then runs `read` in one consistent,
    /// read-only snapshot (`REPEATABLE READ, READ ONLY`), which cannot hold the audit row.
    pub(crate) async fn audited_snapshot<T>(
        &self,
        rt: &Arc<Runtime>,
        action: &str,
        tenants: &[TenantId],
        read: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<T> {
        self.check_for(rt)?;
        rt.with_conn(async |c| self.audit(c, action, tenants, None).await)
            .await?;
        let mut tx = rt.begin().await?;
        sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let out = read(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Writes an audit record for an operation done with this capability, on `conn` so that it
    /// commits or rolls back with the operation itself. Prefer [`Superuser::audited`], which
    /// cannot forget it; this is for the work that must audit before its transaction ends
    /// (an export audits before it reads) or on a connection of its own.
    pub(crate) async fn audit(
        &self,
        conn: &mut PgConnection,
        action: &str,
        tenants: &[TenantId],
        detail: Option<&str>,
    ) -> Result<()> {
        let ids: Vec<uuid::Uuid> = tenants.iter().map(TenantId::as_uuid).collect();
        crate::sql::admin_query(store::AUDIT_INSERT)
            .bind(&self.inner.actor)
            .bind(&self.inner.reason)
            .bind(action)
            .bind(ids)
            .bind(self.inner.grant_id)
            .bind(detail)
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// What an audited change records besides its action and the capability's actor and reason.
#[derive(Debug, Default)]
pub(crate) struct Audit {
    /// The tenants it touched (none for work on the registry as a whole).
    pub(crate) tenants: Vec<TenantId>,
    /// A line for whoever reads the log.
    pub(crate) detail: Option<String>,
    /// The action recorded instead of the call's, when the outcome decides it (a refused
    /// impersonation is recorded as such, and commits while the call fails).
    pub(crate) action: Option<&'static str>,
}

impl Audit {
    /// A record naming `tenants`.
    pub(crate) fn of(tenants: impl Into<Vec<TenantId>>) -> Self {
        Self {
            tenants: tenants.into(),
            ..Self::default()
        }
    }

    /// Recorded as `action` instead of the call's.
    pub(crate) fn action(mut self, action: &'static str) -> Self {
        self.action = Some(action);
        self
    }

    /// With a detail line.
    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl fmt::Debug for Superuser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Superuser")
            .field("actor", &self.inner.actor)
            .field("reason", &self.inner.reason)
            .field("grant_id", &self.inner.grant_id)
            .field("ttl", &self.inner.ttl)
            .finish_non_exhaustive()
    }
}

const MAX_AUDIT_TEXT: usize = 1000;

pub(crate) fn check_audit_text(what: &'static str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::Forbidden(format!(
            "a superuser needs a non-empty {what}"
        )));
    }
    if value.chars().count() > MAX_AUDIT_TEXT {
        return Err(Error::Forbidden(format!(
            "a superuser's {what} must be at most {MAX_AUDIT_TEXT} characters"
        )));
    }
    Ok(())
}

/// What [`Tenancy::audit_log`](crate::Tenancy::audit_log) lists. Every field narrows the result; the default lists the
/// newest 1,000 records of any kind.
///
/// ```
/// use tenancy_sqlx::{AuditQuery, TenantId};
///
/// let tenant = TenantId::new_v4();
/// let q = AuditQuery {
///     action: Some("tenant.impersonate".into()),
///     tenant: Some(tenant),
///     limit: Some(50),
///     ..AuditQuery::default()
/// };
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct AuditQuery {
    /// Only records of this actor.
    pub actor: Option<String>,
    /// Only records of this action (exactly): `superuser.acquire`, `superuser.refused`,
    /// `tenants.list`, `tenant.read`, `tenant.impersonate`, `tenant.impersonate.refused`,
    /// `report.rows`, `report.aggregate`, `audit.read`, `tenant.suspend`, ...
    pub action: Option<String>,
    /// Only records that name this tenant.
    pub tenant: Option<TenantId>,
    /// Only records made at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only records made under this acquisition ([`Superuser::grant_id`]).
    pub grant_id: Option<i64>,
    /// At most this many records (default 1,000).
    pub limit: Option<u32>,
}

/// The number of records [`Tenancy::audit_log`](crate::Tenancy::audit_log) returns when [`AuditQuery::limit`] is not set.
///
/// ```
/// assert_eq!(tenancy_sqlx::DEFAULT_AUDIT_LIMIT, 1_000);
/// ```
pub const DEFAULT_AUDIT_LIMIT: u32 = 1_000;

/// One row of `tenancy.audit_log`: who did what, why, to which tenants, when, and under which
/// acquisition. Plain data.
///
/// ```no_run
/// # async fn demo(tenancy: tenancy_sqlx::Tenancy, su: tenancy_sqlx::Superuser) -> tenancy_sqlx::Result<()> {
/// use tenancy_sqlx::AuditQuery;
/// for r in tenancy.audit_log(&su, AuditQuery::default()).await? {
///     println!("{} {} {} ({}) on {:?}", r.at, r.actor, r.action, r.reason, r.tenant_ids);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AuditRecord {
    /// The record's id; for an acquisition, the grant id that later records point to.
    pub id: i64,
    /// When it was written.
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
    pub at: OffsetDateTime,
    /// Who.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// What: `superuser.acquire`, `report.rows`, `tenant.suspend`, ...
    pub action: String,
    /// The tenants it concerned (empty for an acquisition).
    pub tenant_ids: Vec<TenantId>,
    /// The acquisition it was done under (`None` for acquisitions and refusals).
    pub grant_id: Option<i64>,
    /// More about it: a report's query (never its bound values), a refusal's reason, ...
    pub detail: Option<String>,
}
