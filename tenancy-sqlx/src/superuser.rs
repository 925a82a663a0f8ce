//! The cross-tenant capability: [`Superuser`], acquired only through an audited call, and the
//! registry operations that need it: listing tenants, impersonation, the audit log itself.
//!
//! Acquisition goes through an optional policy ([`TenancyBuilder::superuser_policy`]) and may
//! expire ([`TenancyBuilder::superuser_ttl`]). Every acquisition, refusal and operation is a row
//! of `tenancy.audit_log`; [`Tenancy::audit_log`] reads them back.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{PgConnection, Row};
use tenancy_core::TenantId;
use time::OffsetDateTime;

use crate::ctx::Validity;
use crate::registry::{Tenant, sql_all_tenants, sql_tenant_by_id, tenant_from_row};
use crate::runtime::Runtime;
use crate::sql::SqlBuf;
use crate::{Error, Lookup, Result, Tenancy, TenancyBuilder, TenantCtx};

/// The capability for cross-tenant work: admin screens, reports, impersonation, lifecycle
/// changes.
///
/// Acquired only through [`Tenancy::superuser`], which records the actor and the reason in
/// `tenancy.audit_log` before returning it; every operation done with it is recorded there too,
/// under the acquisition's id ([`Superuser::grant_id`]). It cannot be built, defaulted,
/// deserialised, cloned, or derived from a [`TenantCtx`]:
///
/// ```compile_fail
/// # use tenancy_sqlx::{Superuser, TenantCtx};
/// fn escalate(ctx: TenantCtx) -> Superuser { Superuser::from(ctx) }
/// ```
///
/// With a time-to-live ([`TenancyBuilder::superuser_ttl`]) it expires: from then on every
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

    /// When it expires, if [`TenancyBuilder::superuser_ttl`] was set.
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

    /// The runtime it was acquired through.
    pub(crate) fn runtime(&self) -> &Arc<Runtime> {
        &self.inner.rt
    }

    /// Writes an audit record for an operation done with this capability, on `conn` so that it
    /// commits or rolls back with the operation itself.
    pub(crate) async fn audit(
        &self,
        conn: &mut PgConnection,
        action: &str,
        tenants: &[TenantId],
        detail: Option<&str>,
    ) -> Result<()> {
        let ids: Vec<uuid::Uuid> = tenants.iter().map(TenantId::as_uuid).collect();
        crate::sql::admin_query(
            "INSERT INTO tenancy.audit_log (actor, reason, action, tenant_ids, grant_id, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
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

/// A policy deciding who may acquire a [`Superuser`]: `Ok(())` allows, `Err(why)` refuses.
type Policy = Arc<dyn Fn(&str, &str) -> std::result::Result<(), String> + Send + Sync>;

/// How superusers are acquired: set on [`TenancyBuilder`], kept in the runtime.
#[derive(Clone, Default)]
pub(crate) struct SuperuserConfig {
    policy: Option<Policy>,
    ttl: Option<Duration>,
}

impl fmt::Debug for SuperuserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SuperuserConfig")
            .field("policy", &self.policy.as_ref().map(|_| "..."))
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl TenancyBuilder {
    /// A policy every [`Tenancy::superuser`] call must pass: it gets the actor and the reason,
    /// and returns `Ok(())` to allow or `Err(why)` to refuse. A refusal is written to the audit
    /// log (action `superuser.refused`, with `why` as the detail) and the caller gets
    /// [`Error::Forbidden`]. Default: everyone with a non-empty actor and reason is allowed.
    ///
    /// The policy runs in the acquiring task: keep it quick (an allow-list, a lookup in memory).
    ///
    /// ```no_run
    /// # async fn demo() -> tenancy_sqlx::Result<()> {
    /// use tenancy_sqlx::Tenancy;
    ///
    /// const ADMINS: &[&str] = &["ops@example.com", "oncall@example.com"];
    /// let tenancy = Tenancy::builder()
    ///     .superuser_policy(|actor, reason| {
    ///         if !ADMINS.contains(&actor) {
    ///             return Err(format!("{actor} is not an administrator"));
    ///         }
    ///         if !reason.contains('#') {
    ///             return Err("name the ticket (#1234) in the reason".into());
    ///         }
    ///         Ok(())
    ///     })
    ///     .connect("postgres://postgres@127.0.0.1/app")
    ///     .await?;
    /// assert!(tenancy.superuser("intern@example.com", "curious #1").await.is_err());
    /// # Ok(()) }
    /// ```
    pub fn superuser_policy(
        mut self,
        policy: impl Fn(&str, &str) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.superuser.policy = Some(Arc::new(policy));
        self
    }

    /// How long a [`Superuser`] stays valid after its acquisition. Once expired, every
    /// operation refuses it with [`Error::Forbidden`]; acquire (and so audit) a new one.
    /// Default: no expiry. The expiry is recorded in the acquisition's audit record.
    ///
    /// Operations already running when it expires finish; a [`TenantCtx`] obtained by
    /// [`Tenancy::impersonate`] expires with it (its statements then fail with
    /// [`Error::Forbidden`]).
    ///
    /// ```no_run
    /// # async fn demo() -> tenancy_sqlx::Result<()> {
    /// use std::time::Duration;
    /// use tenancy_sqlx::Tenancy;
    ///
    /// let tenancy = Tenancy::builder()
    ///     .superuser_ttl(Duration::from_secs(15 * 60))
    ///     .connect("postgres://postgres@127.0.0.1/app")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn superuser_ttl(mut self, ttl: Duration) -> Self {
        self.superuser.ttl = Some(ttl);
        self
    }
}

const MAX_AUDIT_TEXT: usize = 1000;

fn check_audit_text(what: &'static str, value: &str) -> Result<()> {
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

/// What [`Tenancy::audit_log`] lists. Every field narrows the result; the default lists the
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

/// The number of records [`Tenancy::audit_log`] returns when [`AuditQuery::limit`] is not set.
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
pub struct AuditRecord {
    /// The record's id; for an acquisition, the grant id that later records point to.
    pub id: i64,
    /// When it was written.
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

impl Tenancy {
    /// Acquires the cross-tenant capability. The actor and reason are written to
    /// `tenancy.audit_log` (action `superuser.acquire`) before the capability is returned; if
    /// the write fails, no capability.
    ///
    /// If a policy is set ([`TenancyBuilder::superuser_policy`]) it decides first; a refusal is
    /// written to the audit log as `superuser.refused`, with the policy's reason as the detail.
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy) -> tenancy_sqlx::Result<()> {
    /// let su = tenancy.superuser("ops@example.com", "ticket #4411").await?;
    /// let all = tenancy.list_tenants(&su).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Forbidden`] for an empty (or longer than 1,000 characters) actor or reason,
    /// which writes nothing, and for a refusal by the policy; [`Error::Database`].
    pub async fn superuser(&self, actor: &str, reason: &str) -> Result<Superuser> {
        check_audit_text("actor", actor)?;
        check_audit_text("reason", reason)?;
        let config = &self.rt.superuser;
        if let Some(policy) = &config.policy
            && let Err(why) = policy(actor, reason)
        {
            let q = crate::sql::admin_query(
                "INSERT INTO tenancy.audit_log (actor, reason, action, detail) \
                 VALUES ($1, $2, 'superuser.refused', $3)",
            )
            .bind(actor)
            .bind(reason)
            .bind(&why);
            // `with_conn`: behind PgBouncer the prepare and execute of an unnamed statement
            // must reach the same server connection.
            self.rt.with_conn(async |c| Ok(q.execute(c).await?)).await?;
            tracing::warn!(actor, reason, why = %why, "superuser refused");
            return Err(Error::Forbidden(format!(
                "superuser refused to {actor:?}: {why}"
            )));
        }
        let detail = config
            .ttl
            .map(|ttl| format!("expires after {:.3} s", ttl.as_secs_f64()));
        let q = crate::sql::admin_query(
            "INSERT INTO tenancy.audit_log (actor, reason, action, detail) \
             VALUES ($1, $2, 'superuser.acquire', $3) RETURNING id, at",
        )
        .bind(actor)
        .bind(reason)
        .bind(detail);
        let row = self
            .rt
            .with_conn(async |c| Ok(q.fetch_one(c).await?))
            .await?;
        tracing::warn!(actor, reason, "superuser acquired");
        Ok(Superuser {
            inner: Arc::new(SuperuserInner {
                grant_id: row.try_get("id")?,
                actor: actor.to_owned(),
                reason: reason.to_owned(),
                acquired_at: row.try_get("at")?,
                acquired: Instant::now(),
                ttl: config.ttl,
                rt: Arc::clone(&self.rt),
            }),
        })
    }

    /// Refuses a capability acquired through another `Tenancy` (another database), or expired.
    pub(crate) fn check_superuser(&self, su: &Superuser) -> Result<()> {
        if !Arc::ptr_eq(&su.inner.rt, &self.rt) {
            return Err(Error::Forbidden(
                "this Superuser was acquired through another Tenancy".into(),
            ));
        }
        su.check_active()
    }

    /// Every tenant in the registry, whatever its status, by slug. Audited (`tenants.list`,
    /// naming every tenant listed).
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy) -> tenancy_sqlx::Result<()> {
    /// let su = tenancy.superuser("ops@example.com", "monthly review").await?;
    /// let suspended = tenancy
    ///     .list_tenants(&su)
    ///     .await?
    ///     .into_iter()
    ///     .filter(|t| t.status == tenancy_sqlx::TenantStatus::Suspended)
    ///     .count();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Forbidden`] for an expired capability or one of another `Tenancy`;
    /// [`Error::Database`].
    pub async fn list_tenants(&self, su: &Superuser) -> Result<Vec<Tenant>> {
        self.check_superuser(su)?;
        let mut tx = self.rt.begin().await?;
        let rows = crate::sql::admin_query(sql_all_tenants())
            .fetch_all(&mut *tx)
            .await?;
        let tenants = rows
            .iter()
            .map(tenant_from_row)
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<TenantId> = tenants.iter().map(|t| t.id).collect();
        su.audit(&mut tx, "tenants.list", &ids, None).await?;
        tx.commit().await?;
        Ok(tenants)
    }

    /// One tenant's registry record, whatever its status. Audited (`tenant.read`).
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy, id: tenancy_sqlx::TenantId) -> tenancy_sqlx::Result<()> {
    /// let su = tenancy.superuser("ops@example.com", "ticket #4411").await?;
    /// let record = tenancy.tenant(&su, id).await?;
    /// println!("{} is {}", record.slug, record.status);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::TenantNotFound`], [`Error::Forbidden`], [`Error::Database`].
    pub async fn tenant(&self, su: &Superuser, id: TenantId) -> Result<Tenant> {
        self.check_superuser(su)?;
        let mut tx = self.rt.begin().await?;
        let row = crate::sql::admin_query(sql_tenant_by_id())
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::TenantNotFound(Lookup::Id(id)))?;
        su.audit(&mut tx, "tenant.read", &[id], None).await?;
        tx.commit().await?;
        tenant_from_row(&row)
    }

    /// Acts as one tenant: the [`TenantCtx`] of an active tenant, for support staff who need to
    /// see what a customer sees. Besides resolution, this is the only way to a `TenantCtx`.
    ///
    /// Audited as `tenant.impersonate` with the tenant's id, before the context is returned.
    /// A refused attempt (unknown, suspended or deleted tenant) is audited too, as
    /// `tenant.impersonate.refused` with the cause in the detail.
    ///
    /// The context reaches that tenant's rows and no other's, and ends with the Superuser's
    /// time-to-live, if it has one ([`TenancyBuilder::superuser_ttl`]): from then on its
    /// statements fail with [`Error::Forbidden`]. Drop it when done.
    ///
    /// ```no_run
    /// # use tenancy_sqlx::{Tenancy, TenantId};
    /// # async fn demo(tenancy: Tenancy, customer: TenantId) -> tenancy_sqlx::Result<()> {
    /// let su = tenancy.superuser("support@example.com", "ticket #4411: missing spins").await?;
    /// let ctx = tenancy.impersonate(&su, customer).await?;
    /// assert_eq!(ctx.id(), customer);
    /// // Spin::repo().query().fetch_all(&ctx).await? shows what the customer sees.
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::TenantNotFound`], [`Error::TenantSuspended`], [`Error::TenantDeleted`] (as
    /// resolution); [`Error::Forbidden`] for an expired capability or one of another `Tenancy`;
    /// [`Error::Database`].
    pub async fn impersonate(&self, su: &Superuser, id: TenantId) -> Result<TenantCtx> {
        self.check_superuser(su)?;
        // Read before the row, as resolution does: a suspension racing this call revokes it.
        let generation = self.rt.cache.generation();
        let mut tx = self.rt.begin().await?;
        let row = crate::sql::admin_query(crate::registry::SQL_CTX_BY_ID)
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
        let validity = Validity {
            generation,
            expires: su.inner.ttl.map(|ttl| su.inner.acquired + ttl),
        };
        let minted = match &row {
            None => Err(Error::TenantNotFound(Lookup::Id(id))),
            Some(row) => crate::registry::mint_active(&self.rt, row, validity),
        };
        let ctx = match minted {
            Ok(ctx) => ctx,
            Err(
                refusal @ (Error::TenantNotFound(_)
                | Error::TenantSuspended { .. }
                | Error::TenantDeleted { .. }),
            ) => {
                let detail = refusal.to_string();
                su.audit(&mut tx, "tenant.impersonate.refused", &[id], Some(&detail))
                    .await?;
                tx.commit().await?;
                return Err(refusal);
            }
            Err(e) => return Err(e),
        };
        su.audit(&mut tx, "tenant.impersonate", &[id], Some(ctx.slug()))
            .await?;
        tx.commit().await?;
        tracing::warn!(tenant = %id, slug = ctx.slug(), actor = su.actor(), "impersonating tenant");
        Ok(ctx)
    }

    /// The audit log, newest first: acquisitions, refusals and everything done with a
    /// [`Superuser`]. Reading it is itself audited (`audit.read`, with the query in the detail,
    /// and the tenant it was narrowed to, if any), after the read, so it does not list itself.
    ///
    /// ```no_run
    /// # use tenancy_sqlx::{AuditQuery, Tenancy, TenantId};
    /// # async fn demo(tenancy: Tenancy, customer: TenantId) -> tenancy_sqlx::Result<()> {
    /// let su = tenancy.superuser("security@example.com", "quarterly access review").await?;
    /// let who_looked = tenancy
    ///     .audit_log(&su, AuditQuery {
    ///         tenant: Some(customer),
    ///         since: Some(time::OffsetDateTime::now_utc() - time::Duration::days(90)),
    ///         ..AuditQuery::default()
    ///     })
    ///     .await?;
    /// for r in who_looked {
    ///     println!("{} {} {} because {:?}", r.at, r.actor, r.action, r.reason);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Forbidden`] for an expired capability or one of another `Tenancy`;
    /// [`Error::Database`].
    pub async fn audit_log(&self, su: &Superuser, query: AuditQuery) -> Result<Vec<AuditRecord>> {
        self.check_superuser(su)?;
        let mut buf = SqlBuf::new(
            "SELECT id, at, actor, reason, action, tenant_ids, grant_id, detail \
             FROM tenancy.audit_log WHERE TRUE",
        );
        let mut described = Vec::new();
        if let Some(actor) = &query.actor {
            buf.push(" AND actor = ");
            buf.bind(actor.as_str())?;
            described.push(format!("actor={actor:?}"));
        }
        if let Some(action) = &query.action {
            buf.push(" AND action = ");
            buf.bind(action.as_str())?;
            described.push(format!("action={action:?}"));
        }
        if let Some(tenant) = query.tenant {
            // Containment, so that the GIN index on tenant_ids serves it.
            buf.push(" AND tenant_ids @> ARRAY[");
            buf.bind(tenant.as_uuid())?;
            buf.push("]::uuid[]");
            described.push(format!("tenant={tenant}"));
        }
        if let Some(since) = query.since {
            buf.push(" AND at >= ");
            buf.bind(since)?;
            described.push(format!("since={since}"));
        }
        if let Some(grant) = query.grant_id {
            buf.push(" AND grant_id = ");
            buf.bind(grant)?;
            described.push(format!("grant_id={grant}"));
        }
        let limit = query.limit.unwrap_or(DEFAULT_AUDIT_LIMIT);
        buf.push(" ORDER BY at DESC, id DESC LIMIT ");
        buf.bind(i64::from(limit))?;
        described.push(format!("limit={limit}"));

        let mut tx = self.rt.begin().await?;
        let rows = sqlx::query_with(crate::sql::text(buf.sql), buf.args)
            .persistent(false)
            .fetch_all(&mut *tx)
            .await?;
        let records = rows
            .iter()
            .map(|r| {
                let ids: Vec<uuid::Uuid> = r.try_get("tenant_ids")?;
                Ok(AuditRecord {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    reason: r.try_get("reason")?,
                    action: r.try_get("action")?,
                    tenant_ids: ids.into_iter().map(TenantId::from_uuid).collect(),
                    grant_id: r.try_get("grant_id")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let tenants: Vec<TenantId> = query.tenant.into_iter().collect();
        su.audit(
            &mut tx,
            "audit.read",
            &tenants,
            Some(&format!(
                "{} records; {}",
                records.len(),
                described.join(" ")
            )),
        )
        .await?;
        tx.commit().await?;
        Ok(records)
    }
}
