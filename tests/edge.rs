//! The axum edge: the layer resolves each request's tenant by subdomain, host, path prefix or
//! header, refuses with the documented statuses (never another tenant, never its name), and with
//! `require_member` lets only members through, with their role checked where a handler asks.

mod common;

use std::convert::Infallible;
use std::future::poll_fn;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::Response;
use axum::routing::get;
use common::TestDb;
use http_body_util::BodyExt;
use tenancy::axum::{Authorized, MemberOf, Needs, Role, TenantLayer, UserId};
use tenancy::{NewTenant, Tenancy, TenantCtx};
use tower_service::Service;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TeamRole {
    Viewer,
    Owner,
}

impl std::str::FromStr for TeamRole {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "owner" => Ok(Self::Owner),
            _ => Err(()),
        }
    }
}

impl Role for TeamRole {
    fn allows(&self, needed: &Self) -> bool {
        self >= needed
    }
}

struct OwnerOnly;
impl Needs<TeamRole> for OwnerOnly {
    fn role() -> TeamRole {
        TeamRole::Owner
    }
}

fn routes() -> Router {
    Router::new()
        .route("/whoami", get(async |ctx: TenantCtx| ctx.slug().to_owned()))
        .route(
            "/me",
            get(async |m: MemberOf<TeamRole>| {
                format!("{} {} {:?}", m.ctx().slug(), m.user(), m.role)
            }),
        )
        .route(
            "/owners",
            get(async |m: Authorized<TeamRole, OwnerOnly>| format!("owner {}", m.user())),
        )
}

/// Sends one request through `app`: `(status, body)`.
async fn send<S>(app: &mut S, req: Request<Body>) -> (StatusCode, String)
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    poll_fn(|cx| app.poll_ready(cx)).await.unwrap();
    let res = app.call(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn get_host(host: &str, path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", host)
        .body(Body::empty())
        .unwrap()
}

fn as_user(mut req: Request<Body>, user: &str) -> Request<Body> {
    req.extensions_mut().insert(UserId(user.to_owned()));
    req
}

/// Two tenants: `acme` ("Acme Corp", host `shop.acme.test`) and `globex` ("Globex Inc").
async fn two_tenants(db: &TestDb) -> Tenancy {
    let tenancy = db.tenancy().await;
    for (slug, name, host) in [
        ("acme", "Acme Corp", "shop.acme.test"),
        ("globex", "Globex Inc", "shop.globex.test"),
    ] {
        tenancy
            .create_tenant(NewTenant::new(slug, name).host(host))
            .await
            .unwrap();
    }
    tenancy
}

#[tokio::test]
async fn subdomain_resolves_each_tenant_and_refuses_the_rest() {
    let db = TestDb::new("edge_subdomain").await;
    let tenancy = two_tenants(&db).await;
    let mut app = TenantLayer::subdomain(tenancy, "spinners.example")
        .unwrap()
        .around(routes());

    let ok = send(&mut app, get_host("acme.spinners.example", "/whoami")).await;
    assert_eq!(ok, (StatusCode::OK, "acme".to_owned()));
    let ok = send(
        &mut app,
        get_host("Globex.Spinners.Example:8080", "/whoami"),
    )
    .await;
    assert_eq!(ok, (StatusCode::OK, "globex".to_owned()));

    let (status, _) = send(&mut app, get_host("initech.spinners.example", "/whoami")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for bad in [
        "spinners.example",          // the base itself
        "a.acme.spinners.example",   // deeper than one label
        "acme.evil.example",         // outside the base
        "acmespinners.example",      // a suffix match that is not a subdomain
        "bad_host.spinners.example", // not a host
        "admin.spinners.example",    // a reserved slug
    ] {
        let (status, body) = send(&mut app, get_host(bad, "/whoami")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(!body.contains("acme") && !body.contains("Acme"), "{body}");
    }
    let (status, _) = send(
        &mut app,
        Request::get("/whoami").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no host at all");
}

#[tokio::test]
async fn host_path_prefix_and_header_each_find_their_tenant() {
    let db = TestDb::new("edge_modes").await;
    let tenancy = two_tenants(&db).await;

    let mut by_host = TenantLayer::host(tenancy.clone()).around(routes());
    assert_eq!(
        send(&mut by_host, get_host("SHOP.globex.test:443", "/whoami")).await,
        (StatusCode::OK, "globex".to_owned())
    );
    let (status, _) = send(&mut by_host, get_host("shop.initech.test", "/whoami")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let mut by_path = TenantLayer::path_prefix(tenancy.clone()).around(routes());
    let req = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    assert_eq!(
        send(&mut by_path, req("/t/acme/whoami?x=1")).await,
        (StatusCode::OK, "acme".to_owned())
    );
    assert_eq!(
        send(&mut by_path, req("/t/globex/whoami")).await.1,
        "globex"
    );
    assert_eq!(
        send(&mut by_path, req("/t/initech/whoami")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&mut by_path, req("/whoami")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&mut by_path, req("/t/Bad!/whoami")).await.0,
        StatusCode::BAD_REQUEST
    );
    // The prefix is gone before routing: `/t/acme/t/globex/whoami` is not globex's.
    assert_eq!(
        send(&mut by_path, req("/t/acme/t/globex/whoami")).await.0,
        StatusCode::NOT_FOUND
    );

    let name = HeaderName::from_static("x-tenant");
    let mut by_header = TenantLayer::header(tenancy, name).around(routes());
    let with = |slug: &str| {
        Request::get("/whoami")
            .header("x-tenant", slug)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(send(&mut by_header, with("globex")).await.1, "globex");
    assert_eq!(
        send(&mut by_header, with("initech")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&mut by_header, with("x y")).await.0,
        StatusCode::BAD_REQUEST
    );
    let bare = Request::get("/whoami").body(Body::empty()).unwrap();
    assert_eq!(send(&mut by_header, bare).await.0, StatusCode::BAD_REQUEST);
}

/// A request names its host in its target (HTTP/2's `:authority`, an absolute-form request
/// line) or in `Host`. Where those disagree, or `Host` comes twice, a proxy in front may have
/// routed or filtered by the other one: the layer refuses rather than pick one.
#[tokio::test]
async fn a_request_that_names_two_hosts_is_refused_not_resolved_by_either() {
    let db = TestDb::new("edge_two_hosts").await;
    let tenancy = two_tenants(&db).await;
    let absolute = |target: &str, hosts: &[&str]| {
        let mut req = Request::get(target);
        for host in hosts {
            req = req.header("host", *host);
        }
        req.body(Body::empty()).unwrap()
    };
    let mut by_sub = TenantLayer::subdomain(tenancy.clone(), "spinners.example")
        .unwrap()
        .around(routes());
    let mut by_host = TenantLayer::host(tenancy.clone()).around(routes());

    // One host named, in either place, or in both alike (case and port aside): resolved.
    for (sub, target, hosts, slug) in [
        (true, "http://acme.spinners.example/whoami", &[][..], "acme"),
        (
            true,
            "http://acme.spinners.example/whoami",
            &["ACME.spinners.example:80"][..],
            "acme",
        ),
        (false, "https://shop.globex.test/whoami", &[][..], "globex"),
        (
            false,
            "https://shop.globex.test:443/whoami",
            &["shop.globex.test"][..],
            "globex",
        ),
    ] {
        let app = if sub { &mut by_sub } else { &mut by_host };
        let got = send(app, absolute(target, hosts)).await;
        assert_eq!(got, (StatusCode::OK, slug.to_owned()), "{target} {hosts:?}");
    }
    // Two hosts: refused, naming neither tenant.
    for (sub, target, hosts) in [
        (
            true,
            "http://acme.spinners.example/whoami",
            &["globex.spinners.example"][..],
        ),
        (
            true,
            "/whoami",
            &["acme.spinners.example", "globex.spinners.example"][..],
        ),
        (
            true,
            "/whoami",
            &["acme.spinners.example", "acme.spinners.example"][..],
        ),
        (
            false,
            "http://shop.acme.test/whoami",
            &["shop.globex.test"][..],
        ),
        (
            false,
            "/whoami",
            &["shop.globex.test", "shop.acme.test"][..],
        ),
    ] {
        let app = if sub { &mut by_sub } else { &mut by_host };
        let (status, body) = send(app, absolute(target, hosts)).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{target} {hosts:?}: {body}"
        );
        let body = body.to_lowercase();
        assert!(!body.contains("acme") && !body.contains("globex"), "{body}");
    }

    // The header placement: a second value (a proxy appending to a client's) is refused too.
    let mut by_header =
        TenantLayer::header(tenancy, HeaderName::from_static("x-tenant")).around(routes());
    let twice = Request::get("/whoami")
        .header("x-tenant", "acme")
        .header("x-tenant", "globex")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&mut by_header, twice).await.0, StatusCode::BAD_REQUEST);
    let once = Request::get("/whoami")
        .header("x-tenant", "globex")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&mut by_header, once).await.1, "globex");
}

#[tokio::test]
async fn suspended_and_deleted_tenants_get_the_configured_status_without_their_name() {
    let db = TestDb::new("edge_unavailable").await;
    let tenancy = two_tenants(&db).await;
    let su = tenancy.superuser("ops", "test").await.unwrap();
    let acme = tenancy.resolve_slug("acme").await.unwrap().id();
    let globex = tenancy.resolve_slug("globex").await.unwrap().id();

    let mut hidden = TenantLayer::host(tenancy.clone()).around(routes());
    let mut forbidden = TenantLayer::host(tenancy.clone())
        .unavailable_status(StatusCode::FORBIDDEN)
        .around(routes());
    // Resolved (and cached) while active, then suspended: the next request is refused.
    assert_eq!(
        send(&mut hidden, get_host("shop.acme.test", "/whoami"))
            .await
            .0,
        StatusCode::OK
    );
    tenancy.suspend(&su, acme).await.unwrap();
    tenancy.soft_delete(&su, globex).await.unwrap();

    for host in ["shop.acme.test", "shop.globex.test"] {
        let (status, body) = send(&mut hidden, get_host(host, "/whoami")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{host}");
        let (status, body403) = send(&mut forbidden, get_host(host, "/whoami")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{host}");
        for body in [body, body403] {
            for name in ["acme", "Acme", "globex", "Globex"] {
                assert!(!body.contains(name), "{body}");
            }
        }
    }
}

#[tokio::test]
async fn a_registry_failure_is_a_500_never_another_tenant() {
    let db = TestDb::new("edge_registry_error").await;
    let tenancy = two_tenants(&db).await;
    let mut app = TenantLayer::host(tenancy).around(routes());
    // Nothing cached for acme yet; the registry's domains vanish under the application.
    db.exec("ALTER TABLE tenancy.domains RENAME TO domains_gone")
        .await;
    let (status, body) = send(&mut app, get_host("shop.acme.test", "/whoami")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, "internal error");
}

#[tokio::test]
async fn a_handler_outside_the_layer_gets_a_500_not_a_tenant() {
    let mut app = routes();
    let (status, _) = send(&mut app, get_host("shop.acme.test", "/whoami")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn only_members_pass_and_roles_are_checked_where_a_handler_asks() {
    let db = TestDb::new("edge_members").await;
    let tenancy = two_tenants(&db).await;
    let su = tenancy.superuser("ops", "onboarding").await.unwrap();
    let acme = tenancy.resolve_slug("acme").await.unwrap().id();
    let globex = tenancy.resolve_slug("globex").await.unwrap().id();
    tenancy.add_member(&su, acme, "ann", "owner").await.unwrap();
    tenancy
        .add_member(&su, acme, "bob", "viewer")
        .await
        .unwrap();
    tenancy
        .add_member(&su, globex, "bob", "owner")
        .await
        .unwrap();

    let mut app = TenantLayer::host(tenancy.clone())
        .require_member()
        .around(routes());
    let acme_as = |user: &str, path: &str| as_user(get_host("shop.acme.test", path), user);

    assert_eq!(
        send(&mut app, get_host("shop.acme.test", "/me")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&mut app, acme_as("eve", "/me")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&mut app, acme_as("eve", "/whoami")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&mut app, acme_as("ann", "/me")).await.1,
        "acme ann Owner"
    );
    assert_eq!(
        send(&mut app, acme_as("bob", "/me")).await.1,
        "acme bob Viewer"
    );
    // Bob owns globex, not acme: the role is the tenant's, not the user's.
    assert_eq!(
        send(&mut app, acme_as("bob", "/owners")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&mut app, acme_as("ann", "/owners")).await.1,
        "owner ann"
    );
    let globex_bob = as_user(get_host("shop.globex.test", "/owners"), "bob");
    assert_eq!(send(&mut app, globex_bob).await.1, "owner bob");

    // A rename keeps the membership; a removal refuses the user's next request.
    tenancy.rename_slug(&su, acme, "acme-two").await.unwrap();
    assert_eq!(
        send(&mut app, acme_as("ann", "/me")).await.1,
        "acme-two ann Owner"
    );
    assert!(tenancy.remove_member(&su, acme, "ann").await.unwrap());
    assert_eq!(
        send(&mut app, acme_as("ann", "/me")).await.0,
        StatusCode::FORBIDDEN
    );
    assert!(!tenancy.remove_member(&su, acme, "ann").await.unwrap());

    let members = tenancy.members(&su, acme).await.unwrap();
    let listed: Vec<(&str, &str)> = members
        .iter()
        .map(|m| (m.user.as_str(), m.role.as_str()))
        .collect();
    assert_eq!(listed, [("bob", "viewer")]);

    // Every management call is in the audit log, under the Superuser's grant.
    let mut conn = db.connect().await;
    let actions: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT action, detail FROM tenancy.audit_log \
         WHERE action LIKE 'membership.%' AND grant_id = $1 ORDER BY id",
    )
    .bind(su.grant_id())
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let expected = [
        ("membership.add", Some("ann=owner")),
        ("membership.add", Some("bob=viewer")),
        ("membership.add", Some("bob=owner")),
        ("membership.remove", Some("ann")),
        ("membership.remove", Some("ann")),
        ("membership.list", None),
    ];
    let actions: Vec<(&str, Option<&str>)> = actions
        .iter()
        .map(|(a, d)| (a.as_str(), d.as_deref()))
        .collect();
    assert_eq!(actions, expected);
}

#[tokio::test]
async fn resolve_member_checks_the_user_and_unknown_tenants_are_refused() {
    let db = TestDb::new("edge_resolve_member").await;
    let tenancy = two_tenants(&db).await;
    let su = tenancy.superuser("ops", "onboarding").await.unwrap();
    let acme = tenancy.resolve_slug("acme").await.unwrap().id();
    tenancy.add_member(&su, acme, "ann", "owner").await.unwrap();

    let member = tenancy
        .resolve_member("ann", "shop.acme.test")
        .await
        .unwrap();
    assert_eq!(
        (member.ctx().id(), member.user(), member.role()),
        (acme, "ann", "owner")
    );
    assert!(matches!(
        tenancy.resolve_member("ann", "shop.globex.test").await,
        Err(tenancy::Error::NotMember { .. })
    ));
    assert!(matches!(
        tenancy
            .add_member(&su, tenancy::TenantId::new_v4(), "ann", "owner")
            .await,
        Err(tenancy::Error::TenantNotFound(_))
    ));
}

/// Collects, per span, the fields recorded on it, and for each event the span it ran in.
#[derive(Default)]
struct Spans {
    next: std::sync::atomic::AtomicU64,
    fields: std::sync::Mutex<Vec<(u64, String, String)>>,
    entered: std::sync::Mutex<Vec<u64>>,
    events: std::sync::Mutex<Vec<Option<u64>>>,
}

struct Fields<'a>(u64, &'a std::sync::Mutex<Vec<(u64, String, String)>>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        let row = (self.0, field.name().to_owned(), value.to_owned());
        self.1.lock().unwrap().push(row);
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl tracing::Subscriber for Spans {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        span.record(&mut Fields(id, &self.fields));
        tracing::span::Id::from_u64(id)
    }
    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(span.into_u64(), &self.fields));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {
        let current = self.entered.lock().unwrap().last().copied();
        self.events.lock().unwrap().push(current);
    }
    fn enter(&self, span: &tracing::span::Id) {
        self.entered.lock().unwrap().push(span.into_u64());
    }
    fn exit(&self, _: &tracing::span::Id) {
        self.entered.lock().unwrap().pop();
    }
}

#[tokio::test]
async fn each_request_runs_in_a_span_with_its_tenant() {
    let db = TestDb::new("edge_span").await;
    let tenancy = two_tenants(&db).await;
    let acme = tenancy.resolve_slug("acme").await.unwrap().id();
    let routes = Router::new().route(
        "/log",
        get(async |ctx: TenantCtx| {
            tracing::info!("handling");
            ctx.slug().to_owned()
        }),
    );
    let mut app = TenantLayer::host(tenancy).around(routes);
    let spans = std::sync::Arc::new(Spans::default());
    let dispatch = tracing::Dispatch::from(std::sync::Arc::clone(&spans));
    let _guard = tracing::dispatcher::set_default(&dispatch);
    let (status, _) = send(&mut app, get_host("shop.acme.test", "/log")).await;
    assert_eq!(status, StatusCode::OK);

    let events = spans.events.lock().unwrap().clone();
    let fields = spans.fields.lock().unwrap().clone();
    // The handler's event ran inside a span that carries acme's id and slug.
    let in_tenant = events.iter().flatten().any(|&span| {
        let has = |name: &str, value: &str| {
            fields
                .iter()
                .any(|(s, n, v)| *s == span && n == name && v == value)
        };
        has("tenant.id", &acme.to_string()) && has("tenant.slug", "acme")
    });
    assert!(in_tenant, "events {events:?}, fields {fields:?}");
}
