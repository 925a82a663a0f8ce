//! The layer: finds the request's tenant (and member), or answers for the handler.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::axum::extract::Request;
use ::axum::http::{HeaderName, StatusCode, Uri, header};
use ::axum::response::{IntoResponse, Response};
use tenancy_core::{Hostname, Slug, ValidationError};
use tracing::Instrument;

use crate::{Error, Member, Result, Tenancy, TenantCtx};

/// The user the application's authentication found, as a request extension: set it before the
/// request reaches a [`TenantLayer`] with [`TenantLayer::require_member`] (an outer layer or
/// middleware). tenancy never authenticates; it checks this user's membership.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(pub String);

/// Where a [`TenantLayer`] finds the tenant.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Resolve {
    /// The first label of the host under a base domain: `acme.spinners.example` is slug `acme`.
    Subdomain(Hostname),
    /// The whole host, looked up in the registry's domains.
    Host,
    /// The path prefix `/t/{slug}`, removed before the inner service routes the rest.
    PathPrefix,
    /// A header holding the slug. **For internal callers only**: any client can set a header,
    /// so put this behind a gateway that strips it from outside requests.
    Header(HeaderName),
}

struct Config {
    tenancy: Tenancy,
    resolve: Resolve,
    unavailable: StatusCode,
    members: bool,
}

/// A tower layer that resolves the tenant of each request once, through the registry (cached),
/// and puts its [`TenantCtx`] (and, with [`TenantLayer::require_member`], its
/// [`Member`]) in the request's extensions for the extractors; or answers itself, without
/// calling the inner service, when there is no tenant to act for (see the [module
/// docs](crate::axum)).
///
/// Put it around the router (`layer.around(router)`), so that a path prefix is removed before
/// routing.
#[derive(Clone)]
pub struct TenantLayer {
    config: Arc<Config>,
}

impl TenantLayer {
    /// Resolves by the subdomain of `base` (`acme.spinners.example` with base
    /// `spinners.example` is the tenant with slug `acme`). A host outside `base`, `base` itself
    /// and deeper subdomains get 400, as does a request that names two hosts (see
    /// [`TenantLayer::host`]).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed base domain.
    pub fn subdomain(tenancy: Tenancy, base: &str) -> Result<Self> {
        Ok(Self::new(
            tenancy,
            Resolve::Subdomain(Hostname::parse(base)?),
        ))
    }

    /// Resolves by the whole host, through the registry's domains
    /// ([`Tenancy::resolve_host`]).
    ///
    /// The host is the request target's authority (HTTP/2's `:authority`, or an absolute-form
    /// HTTP/1.1 request line) or the `Host` header. A request whose `Host` names another host
    /// than its target, or that has two `Host` headers, gets 400: a proxy in front may have
    /// routed or filtered it by the other one.
    pub fn host(tenancy: Tenancy) -> Self {
        Self::new(tenancy, Resolve::Host)
    }

    /// Resolves by the path prefix `/t/{slug}`, and passes the rest of the path on
    /// (`/t/acme/spinners?x=1` reaches the router as `/spinners?x=1`). A path without the
    /// prefix gets 404.
    pub fn path_prefix(tenancy: Tenancy) -> Self {
        Self::new(tenancy, Resolve::PathPrefix)
    }

    /// Resolves by the slug in header `name`. For internal callers only (service to service,
    /// behind a gateway that strips the header from outside requests): whoever sets the header
    /// chooses the tenant. A request with the header twice gets 400.
    pub fn header(tenancy: Tenancy, name: HeaderName) -> Self {
        Self::new(tenancy, Resolve::Header(name))
    }

    fn new(tenancy: Tenancy, resolve: Resolve) -> Self {
        Self {
            config: Arc::new(Config {
                tenancy,
                resolve,
                unavailable: StatusCode::NOT_FOUND,
                members: false,
            }),
        }
    }

    /// The status for a suspended or deleted tenant: 404 (the default, as if it did not
    /// exist) or 403. Any other status is taken as 403.
    #[must_use]
    pub fn unavailable_status(mut self, status: StatusCode) -> Self {
        self.config_mut().unavailable = if status == StatusCode::NOT_FOUND {
            status
        } else {
            StatusCode::FORBIDDEN
        };
        self
    }

    /// Also requires the request's [`UserId`] (set by the application's authentication) to be
    /// a member of the tenant, read from the registry on every request: 401 without a user, 403
    /// for a non-member. Handlers then take [`MemberOf`](crate::axum::MemberOf) or
    /// [`Authorized`](crate::axum::Authorized).
    #[must_use]
    pub fn require_member(mut self) -> Self {
        self.config_mut().members = true;
        self
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::get_mut(&mut self.config).expect("configured before it is cloned")
    }

    /// Wraps `inner` (the router): the same as `tower::Layer::layer`.
    pub fn around<S>(&self, inner: S) -> TenantService<S> {
        TenantService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

impl<S> tower_layer::Layer<S> for TenantLayer {
    type Service = TenantService<S>;

    fn layer(&self, inner: S) -> TenantService<S> {
        self.around(inner)
    }
}

/// The service a [`TenantLayer`] makes.
#[derive(Clone)]
pub struct TenantService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> tower_service::Service<Request> for TenantService<S>
where
    S: tower_service::Service<Request, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The clone that was polled ready serves this request; the fresh one waits its turn.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        let span = tracing::info_span!(
            "tenant",
            tenant.id = tracing::field::Empty,
            tenant.slug = tracing::field::Empty
        );
        // Recorded through this handle, not `Span::current()`: not every subscriber tracks the
        // current span.
        let tagged = span.clone();
        Box::pin(
            async move {
                match admit(&config, &mut req).await {
                    Ok(ctx) => {
                        tagged.record("tenant.id", tracing::field::display(ctx.id()));
                        tagged.record("tenant.slug", ctx.slug());
                        req.extensions_mut().insert(ctx);
                        inner.call(req).await
                    }
                    Err(refusal) => Ok(refusal.into_response()),
                }
            }
            .instrument(span),
        )
    }
}

/// Why a request found no tenant to act for: a status and a body naming no tenant.
struct Refusal(StatusCode, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

/// Resolves the request's tenant (and member), puts the member in its extensions, and removes
/// a path prefix.
async fn admit(config: &Config, req: &mut Request) -> std::result::Result<TenantCtx, Refusal> {
    let tenancy = &config.tenancy;
    let resolved = match &config.resolve {
        Resolve::Subdomain(base) => match subdomain(req, base) {
            Ok(slug) => tenancy.resolve_slug(slug.as_str()).await,
            Err(e) => Err(Error::Invalid(e)),
        },
        Resolve::Host => match host(req) {
            Ok(host) => tenancy.resolve_host(host.as_str()).await,
            Err(e) => Err(Error::Invalid(e)),
        },
        Resolve::PathPrefix => {
            let Some((slug, rest)) = split_prefix(req.uri()) else {
                return Err(Refusal(StatusCode::NOT_FOUND, "no tenant in the path"));
            };
            let resolved = tenancy.resolve_slug(&slug).await;
            if resolved.is_ok() {
                *req.uri_mut() = rest;
            }
            resolved
        }
        Resolve::Header(name) => {
            // Two values are refused, not read first-wins: a proxy that appends its own header
            // to a client's would otherwise let the client's choose the tenant.
            let mut values = req.headers().get_all(name).iter();
            match (values.next(), values.next()) {
                (Some(slug), None) => match slug.to_str() {
                    Ok(slug) => tenancy.resolve_slug(slug).await,
                    Err(_) => return Err(Refusal(StatusCode::BAD_REQUEST, "invalid tenant")),
                },
                (None, _) => return Err(Refusal(StatusCode::BAD_REQUEST, "no tenant header")),
                (Some(_), Some(_)) => {
                    return Err(Refusal(StatusCode::BAD_REQUEST, "two tenant headers"));
                }
            }
        }
    };
    let ctx = resolved.map_err(|e| refusal(config, &e))?;
    if config.members {
        let Some(UserId(user)) = req.extensions().get::<UserId>().cloned() else {
            return Err(Refusal(StatusCode::UNAUTHORIZED, "not signed in"));
        };
        let member = tenancy
            .member(ctx.clone(), &user)
            .await
            .map_err(|e| refusal(config, &e))?;
        req.extensions_mut().insert::<Member>(member);
    }
    Ok(ctx)
}

/// The refusal for an error of resolution or of the membership check.
fn refusal(config: &Config, e: &Error) -> Refusal {
    match e {
        Error::Invalid(_) => Refusal(StatusCode::BAD_REQUEST, "invalid tenant"),
        Error::TenantNotFound(_) => Refusal(StatusCode::NOT_FOUND, "no such tenant"),
        Error::TenantSuspended { .. }
        | Error::TenantDeleted { .. }
        | Error::ContextRevoked { .. } => {
            if config.unavailable == StatusCode::NOT_FOUND {
                Refusal(StatusCode::NOT_FOUND, "no such tenant")
            } else {
                Refusal(StatusCode::FORBIDDEN, "this tenant is not available")
            }
        }
        Error::NotMember { .. } => Refusal(StatusCode::FORBIDDEN, "not a member of this tenant"),
        other => {
            tracing::error!(error = %other, "could not resolve the request's tenant");
            Refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// The request's host, from the one place that names it, or refused where two disagree.
///
/// The URI's authority (HTTP/2's `:authority`, or an HTTP/1.1 request line in absolute form)
/// is what HTTP says wins (RFC 9112 3.2.2, RFC 9113 8.3.1), while a proxy in front may route
/// or filter by either: a `Host` header that names another host is refused rather than
/// trusted, so the tenant resolved here is the one every hop saw. A second `Host` header is
/// refused too (RFC 9112 3.2: a request with more than one is malformed), not read first-wins.
fn host(req: &Request) -> std::result::Result<Hostname, ValidationError> {
    let refused = |input: String, reason| ValidationError::Host { input, reason };
    let mut headers = req.headers().get_all(header::HOST).iter();
    let header = match (headers.next(), headers.next()) {
        (Some(_), Some(_)) => return Err(refused(String::new(), "is given in two Host headers")),
        (Some(v), None) => Some(v.to_str().map_err(|_| {
            refused(
                String::from_utf8_lossy(v.as_bytes()).into(),
                "is not visible ASCII",
            )
        })?),
        (None, _) => None,
    };
    let authority = req.uri().authority().map(|a| a.as_str());
    match (authority, header) {
        (Some(authority), Some(header)) => {
            let (named, told) = (
                Hostname::from_request(authority)?,
                Hostname::from_request(header)?,
            );
            if named != told {
                return Err(refused(
                    header.to_owned(),
                    "differs from the host the request's target names",
                ));
            }
            Ok(named)
        }
        (Some(one), None) | (None, Some(one)) => Hostname::from_request(one),
        (None, None) => Hostname::from_request(""),
    }
}

/// The slug in the first label of a host directly under `base`.
fn subdomain(req: &Request, base: &Hostname) -> std::result::Result<Slug, ValidationError> {
    let host = host(req)?;
    let label = host
        .as_str()
        .strip_suffix(base.as_str())
        .and_then(|rest| rest.strip_suffix('.'))
        .filter(|label| !label.contains('.'))
        .unwrap_or("");
    Slug::parse(label)
}

/// `/t/{slug}/rest?q` as the slug and `/rest?q`.
fn split_prefix(uri: &Uri) -> Option<(String, Uri)> {
    let after = uri.path().strip_prefix("/t/")?;
    let (slug, rest) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, "/"),
    };
    let path_and_query = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    Some((slug.to_owned(), Uri::from_parts(parts).ok()?))
}
