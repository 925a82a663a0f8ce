//! Extractors: the request's [`TenantCtx`], its member and their role.

use std::marker::PhantomData;
use std::str::FromStr;

use ::axum::extract::FromRequestParts;
use ::axum::http::StatusCode;
use ::axum::http::request::Parts;
use ::axum::response::{IntoResponse, Response};

use crate::{Member, TenantCtx};

/// An extractor's refusal: a status and a body naming no tenant.
#[derive(Debug)]
pub struct Rejection(StatusCode, &'static str);

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

/// A route that takes a tenant but is not behind the layer is the application's mistake: say
/// so in the log, not to the client.
fn not_layered(what: &'static str) -> Rejection {
    tracing::error!("{what} asked for by a handler that no TenantLayer serves");
    Rejection(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// The request's tenant, as the [`TenantLayer`](crate::axum::TenantLayer) resolved it.
impl<S: Send + Sync> FromRequestParts<S> for TenantCtx {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Rejection> {
        parts
            .extensions
            .get::<TenantCtx>()
            .cloned()
            .ok_or_else(|| not_layered("a TenantCtx"))
    }
}

/// The application's roles: parsed from the registry's text, and ordered by what they allow.
///
/// ```
/// use tenancy_sqlx::axum::Role;
///
/// #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
/// enum SpinRole { Viewer, Editor, Owner }
///
/// impl std::str::FromStr for SpinRole {
///     type Err = ();
///     fn from_str(s: &str) -> Result<Self, ()> {
///         match s { "viewer" => Ok(Self::Viewer), "editor" => Ok(Self::Editor),
///                   "owner" => Ok(Self::Owner), _ => Err(()) }
///     }
/// }
///
/// impl Role for SpinRole {
///     fn allows(&self, needed: &Self) -> bool { self >= needed } // an owner may edit
/// }
/// assert!(SpinRole::Owner.allows(&SpinRole::Editor));
/// ```
pub trait Role: FromStr + Clone + PartialEq + Send + Sync + 'static {
    /// Whether a member with this role may do what needs `needed`. Default: the same role.
    fn allows(&self, needed: &Self) -> bool {
        self == needed
    }
}

/// The request's member: their tenant's context, who they are and their role, read from the
/// registry for this request by a [`TenantLayer`](crate::axum::TenantLayer) with
/// [`require_member`](crate::axum::TenantLayer::require_member).
#[derive(Debug, Clone)]
pub struct MemberOf<R> {
    /// The proof of membership (context, user, role as recorded).
    pub member: Member,
    /// The role, as the application's type.
    pub role: R,
}

impl<R> MemberOf<R> {
    /// The tenant's context.
    pub fn ctx(&self) -> &TenantCtx {
        self.member.ctx()
    }

    /// The user.
    pub fn user(&self) -> &str {
        self.member.user()
    }
}

impl<R: Role, S: Send + Sync> FromRequestParts<S> for MemberOf<R> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Rejection> {
        let member = parts
            .extensions
            .get::<Member>()
            .cloned()
            .ok_or_else(|| not_layered("a member (TenantLayer::require_member)"))?;
        let Ok(role) = member.role().parse::<R>() else {
            tracing::error!(
                role = member.role(),
                user = member.user(),
                "a membership's role is not one of the application's roles"
            );
            return Err(Rejection(StatusCode::FORBIDDEN, "no role allows this"));
        };
        Ok(Self { member, role })
    }
}

/// A role a handler needs, named as a type: `Authorized<SpinRole, Owner>`.
pub trait Needs<R>: Send + Sync + 'static {
    /// The role needed.
    fn role() -> R;
}

/// A member whose role allows what `N` needs ([`Role::allows`]); 403 otherwise, before the
/// handler runs.
#[derive(Debug, Clone)]
pub struct Authorized<R, N> {
    /// The member.
    pub member: MemberOf<R>,
    needs: PhantomData<fn() -> N>,
}

impl<R, N> std::ops::Deref for Authorized<R, N> {
    type Target = MemberOf<R>;

    fn deref(&self) -> &MemberOf<R> {
        &self.member
    }
}

impl<R, N, S> FromRequestParts<S> for Authorized<R, N>
where
    R: Role,
    N: Needs<R>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Rejection> {
        let member = MemberOf::<R>::from_request_parts(parts, state).await?;
        if !member.role.allows(&N::role()) {
            return Err(Rejection(
                StatusCode::FORBIDDEN,
                "your role does not allow this",
            ));
        }
        Ok(Self {
            member,
            needs: PhantomData,
        })
    }
}
