//! Memberships: which users may act for a tenant, with which role.

use tenancy_core::TenantId;

use crate::membership::*;
use crate::registry::store;
use crate::superuser::Audit;
use crate::{Error, Lookup, Result, Superuser, Tenancy, TenantCtx};

impl Tenancy {
    /// Resolves the tenant of a request's host, then checks that `user` (authenticated by the
    /// application) is one of its members. Two round trips at most: the host's tenant is cached,
    /// the membership never is.
    ///
    /// ```no_run
    /// # async fn demo(tenancy: tenancy_sqlx::Tenancy) -> tenancy_sqlx::Result<()> {
    /// let member = tenancy.resolve_member("user-42", "acme.spinners.example").await?;
    /// if member.role() == "owner" { /* ... */ }
    /// let ctx = member.ctx();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Tenancy::resolve_host`], and [`Error::NotMember`] when the user is not a member.
    pub async fn resolve_member(&self, user: &str, host: &str) -> Result<Member> {
        let ctx = self.resolve_host(host).await?;
        self.member(ctx, user).await
    }

    /// Checks that `user` is a member of the context's tenant and returns the proof, with the
    /// role. Reads the registry every time.
    ///
    /// # Errors
    /// [`Error::NotMember`]; [`Error::ContextRevoked`] for a context that may act no more;
    /// [`Error::Forbidden`] for a context resolved through another `Tenancy` (another
    /// database's registry could name the same tenant id with other members); [`Error::Database`].
    pub async fn member(&self, ctx: TenantCtx, user: &str) -> Result<Member> {
        if !std::ptr::eq(ctx.runtime(), &*self.rt) {
            return Err(Error::Forbidden(
                "this TenantCtx was resolved through another Tenancy".into(),
            ));
        }
        ctx.check_live()?;
        let role: Option<String> = self
            .rt
            .with_conn(async |c| {
                Ok(crate::sql::admin_scalar(store::MEMBER_ROLE)
                    .bind(ctx.id().as_uuid())
                    .bind(user)
                    .fetch_optional(c)
                    .await?)
            })
            .await?;
        match role {
            Some(role) => Ok(Member {
                ctx,
                user: user.to_owned(),
                role,
            }),
            None => Err(Error::NotMember {
                user: user.to_owned(),
                id: ctx.id(),
            }),
        }
    }

    /// Makes `user` a member of the tenant with `role`, or changes their role. Audited
    /// (`membership.add`, with `user=role` as the detail), in the same transaction.
    ///
    /// # Errors
    /// [`Error::TenantNotFound`]; [`Error::Forbidden`] for an expired capability;
    /// [`Error::InvalidName`] for an empty user or role; [`Error::Database`].
    pub async fn add_member(
        &self,
        su: &Superuser,
        tenant: TenantId,
        user: &str,
        role: &str,
    ) -> Result<Membership> {
        if user.is_empty() || role.is_empty() {
            return Err(Error::InvalidName(
                "a member's user and role must not be empty",
            ));
        }
        let row = su
            .audited(&self.rt, "membership.add", async |tx| {
                let row = crate::sql::admin_query(store::MEMBERSHIP_UPSERT)
                    .bind(tenant.as_uuid())
                    .bind(user)
                    .bind(role)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| match e.as_database_error() {
                        Some(d) if d.is_foreign_key_violation() => {
                            Error::TenantNotFound(Lookup::Id(tenant))
                        }
                        _ => Error::Database(e),
                    })?;
                Ok((row, Audit::of([tenant]).detail(format!("{user}={role}"))))
            })
            .await?;
        membership_from_row(&row)
    }

    /// Ends `user`'s membership of the tenant; their next check ([`Tenancy::member`]) fails.
    /// Audited (`membership.remove`, with the user as the detail). Returns whether there was one.
    ///
    /// # Errors
    /// [`Error::Forbidden`] for an expired capability; [`Error::Database`].
    pub async fn remove_member(
        &self,
        su: &Superuser,
        tenant: TenantId,
        user: &str,
    ) -> Result<bool> {
        su.audited(&self.rt, "membership.remove", async |tx| {
            let removed = crate::sql::admin_query(store::MEMBERSHIP_DELETE)
                .bind(tenant.as_uuid())
                .bind(user)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            Ok((removed, Audit::of([tenant]).detail(user)))
        })
        .await
    }

    /// The tenant's members, by user id. Audited (`membership.list`).
    ///
    /// # Errors
    /// [`Error::Forbidden`] for an expired capability; [`Error::Database`].
    pub async fn members(&self, su: &Superuser, tenant: TenantId) -> Result<Vec<Membership>> {
        let rows = su
            .audited(&self.rt, "membership.list", async |tx| {
                let rows = crate::sql::admin_query(store::MEMBERSHIPS_OF_TENANT)
                    .bind(tenant.as_uuid())
                    .fetch_all(&mut *tx)
                    .await?;
                Ok((rows, Audit::of([tenant])))
            })
            .await?;
        rows.iter().map(membership_from_row).collect()
    }
}
