//! The request edge for [axum](https://docs.rs/axum) 0.8 (feature `axum`): a layer that
//! resolves the tenant once per request, and extractors that hand it to handlers.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use tenancy_sqlx::axum::TenantLayer;
//! use tenancy_sqlx::{Tenancy, TenantCtx};
//!
//! async fn whoami(ctx: TenantCtx) -> String {
//!     ctx.slug().to_owned()
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let tenancy = Tenancy::connect("postgres://postgres@127.0.0.1/app").await?;
//! let routes: Router = Router::new().route("/whoami", get(whoami));
//! // Around the router, not inside it (`Router::layer`): a path prefix is stripped before
//! // routing. `acme.spinners.example` is tenant `acme`.
//! let app = TenantLayer::subdomain(tenancy, "spinners.example")?.around(routes);
//! # let _ = app; Ok(()) }
//! ```
//!
//! What a request gets when it finds no tenant to act for (the bodies name no tenant):
//!
//! | cause | status |
//! |---|---|
//! | malformed host, subdomain, slug or header | 400 |
//! | no such tenant | 404 |
//! | suspended or deleted tenant | 404, or 403 with [`TenantLayer::unavailable_status`] |
//! | no user set by the application's authentication ([`TenantLayer::require_member`]) | 401 |
//! | the user is not a member | 403 |
//! | the registry failed | 500, with the cause logged (`tracing::error!`); never another tenant |
//!
//! Each request runs in a `tracing` span `tenant` with the fields `tenant.id` and
//! `tenant.slug`, so every statement the handler runs logs under its tenant.

mod extract;
mod layer;

pub use extract::{Authorized, MemberOf, Needs, Rejection, Role};
pub use layer::{Resolve, TenantLayer, TenantService, UserId};
