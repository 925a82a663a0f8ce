//! The fidget-spinner tracker as a service: its models, its routes and its set-up. `main.rs`
//! runs it; `tests/spinners_http.rs` starts the same service and talks HTTP to it.

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tenancy::axum::{Authorized, MemberOf, Needs, Role, TenantLayer, UserId};
use tenancy::prelude::*;
use tenancy::{MigrateOptions, Migrations};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::cache::Cache;
use crate::jobs::{Job, Queue, Task};

/// A customer's fidget spinner.
#[tenant_scoped(table = "spinners")]
#[derive(Debug, Clone, Serialize)]
pub struct Spinner {
    /// The key.
    #[tenancy(id)]
    pub id: Uuid,
    /// Unique per customer.
    pub name: String,
    /// Filled by the database.
    #[tenancy(read_only)]
    #[serde(skip)] // ordering only; left out to keep the demo's dependencies lean
    pub created_at: OffsetDateTime,
}

/// One spin of a spinner.
#[tenant_scoped(table = "spins")]
#[derive(Debug, Clone, Serialize)]
pub struct Spin {
    /// The key.
    #[tenancy(id)]
    pub id: Uuid,
    /// The spinner spun.
    pub spinner_id: Uuid,
    /// Seconds.
    pub duration: i32,
    /// Filled by the database.
    #[tenancy(read_only)]
    #[serde(skip)] // ordering only; left out to keep the demo's dependencies lean
    pub created_at: OffsetDateTime,
}

/// The tenant migration: the shared tables and every own-schema customer's schema get it.
const SCHEMA: &str = "
CREATE TABLE spinners (
    tenant_id  uuid NOT NULL REFERENCES tenancy.tenants (id),
    id         uuid NOT NULL,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
CREATE TABLE spins (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    spinner_id uuid NOT NULL,
    duration   integer NOT NULL CHECK (duration >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, spinner_id) REFERENCES spinners (tenant_id, id)
);
CREATE INDEX spinners_recent ON spinners (tenant_id, created_at DESC);
CREATE INDEX spins_recent ON spins (tenant_id, spinner_id, created_at DESC);
";

/// The only actor the Superuser policy admits: the admin endpoints act as it.
const ADMIN_ACTOR: &str = "spinners-admin";

/// What a member may do, in order: a viewer reads, an editor also writes, an owner does all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpinRole {
    /// Reads.
    Viewer,
    /// Reads and writes.
    Editor,
    /// Everything.
    Owner,
}

impl std::str::FromStr for SpinRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "editor" => Ok(Self::Editor),
            "owner" => Ok(Self::Owner),
            other => Err(format!("no role {other:?}")),
        }
    }
}

impl Role for SpinRole {
    fn allows(&self, needed: &Self) -> bool {
        self >= needed
    }
}

/// Handlers that write take `Authorized<SpinRole, Writer>`.
pub struct Writer;
impl Needs<SpinRole> for Writer {
    fn role() -> SpinRole {
        SpinRole::Editor
    }
}

/// The service's state: the registry handle, the cache, the job queue, the admin credential.
#[derive(Clone)]
pub struct App {
    /// The tenancy handle.
    pub tenancy: Tenancy,
    /// The customers' cache on Redis.
    pub cache: Cache,
    /// Background jobs.
    pub queue: Queue,
    /// The bearer token of the admin endpoints.
    pub admin_token: String,
}

/// Connects to `url`, creates the tables (shared and per schema) and checks their shape.
pub async fn connect(url: &str) -> Result<Tenancy, tenancy::Error> {
    let tenancy = Tenancy::builder()
        .tenant_migrations(Migrations::from_static(&[(
            1,
            "spinners and spins",
            SCHEMA,
        )])?)
        // Only the admin endpoints acquire a Superuser, after checking their credential.
        .superuser_policy(|actor, _| {
            if actor == ADMIN_ACTOR || actor == "setup" {
                Ok(())
            } else {
                Err(format!("{actor} may not act across customers"))
            }
        })
        .connect(url)
        .await?;
    let su = tenancy
        .superuser("setup", "create the spinner tables")
        .await?;
    let report = tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await?;
    if let Some((target, why)) = report.failed().next() {
        return Err(tenancy::MigrationError::Other(format!("{target}: {why}")).into());
    }
    tenancy.verify::<Spinner>().await?;
    tenancy.verify::<Spin>().await?;
    Ok(tenancy)
}

/// Two customers, one on the shared tables and one in its own schema, and their members:
/// `(slug, user, role)` rows as `seed` made them.
pub async fn seed(tenancy: &Tenancy, base: &str) -> Result<(), tenancy::Error> {
    let su = tenancy
        .superuser("setup", "seed the demo customers")
        .await?;
    for (slug, name, placement) in [
        ("acme", "Acme Spinners", Placement::SharedTable),
        ("globex", "Globex Whirl", Placement::OwnSchema),
    ] {
        let t = tenancy
            .create_tenant(
                NewTenant::new(slug, name)
                    .placement(placement)
                    .host(format!("{slug}.{base}")),
            )
            .await?;
        for (user, role) in MEMBERS.iter().filter(|m| m.0 == slug).map(|m| (m.1, m.2)) {
            tenancy.add_member(&su, t.id, user, role).await?;
        }
    }
    Ok(())
}

/// `(customer, user, role)`: who may use which customer's spinners.
pub const MEMBERS: &[(&str, &str, &str)] = &[
    ("acme", "ann", "owner"),
    ("acme", "vic", "viewer"),
    ("globex", "gus", "editor"),
];

/// The whole service: the customers' routes behind the tenant layer (by subdomain of `base`,
/// members only), and the admin routes beside them.
pub fn router(app: App, base: &str) -> Result<Router, tenancy::Error> {
    let customer = Router::new()
        .route("/spinners", get(list_spinners).post(create_spinner))
        .route("/spinners/{id}/spins", get(list_spins).post(create_spin))
        .route("/stats", get(stats))
        .route("/dashboard", get(dashboard).post(refresh_dashboard))
        .with_state(app.clone());
    let customer = TenantLayer::subdomain(app.tenancy.clone(), base)?
        .unavailable_status(StatusCode::FORBIDDEN)
        .require_member()
        .around(customer);
    let admin = Router::new()
        .route("/long-spins", get(long_spins))
        .route("/customers/{slug}/suspend", post(suspend))
        .route("/customers/{slug}/purge", post(purge))
        .with_state(app);
    Ok(Router::new()
        .nest("/admin", admin)
        .fallback_service(customer)
        .layer(middleware::from_fn(authenticate)))
}

/// The application's authentication, reduced to a header for the demo: a real service checks a
/// session or a token here. The tenant layer only reads the user it sets.
async fn authenticate(mut req: Request, next: Next) -> Response {
    let user = req
        .headers()
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(user) = user {
        req.extensions_mut().insert(UserId(user));
    }
    next.run(req).await
}

/// A failure the client cannot fix: logged, and answered without detail.
struct Internal(tenancy::Error);

impl IntoResponse for Internal {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "request failed");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
    }
}

type Answer<T> = Result<T, Response>;

fn internal(e: tenancy::Error) -> Response {
    Internal(e).into_response()
}

/// `?after=<id>&limit=<n>`: keyset pages.
#[derive(Deserialize)]
struct Page {
    after: Option<Uuid>,
    limit: Option<i64>,
}

impl Page {
    fn limit(&self) -> i64 {
        self.limit.unwrap_or(20).clamp(1, 100)
    }
}

/// A page of rows and the cursor of the next one.
#[derive(Serialize)]
struct Paged<T> {
    items: Vec<T>,
    next: Option<Uuid>,
}

fn paged<T>(items: Vec<T>, limit: i64, id: impl Fn(&T) -> Uuid) -> Paged<T> {
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(&id))
        .flatten();
    Paged { items, next }
}

async fn list_spinners(
    m: MemberOf<SpinRole>,
    Query(page): Query<Page>,
) -> Answer<Json<Paged<Spinner>>> {
    let ctx = m.ctx();
    let mut q = Spinner::repo()
        .query()
        .order_by(Spinner::CREATED_AT.desc())
        .limit(page.limit());
    if let Some(after) = page.after {
        let Some(row) = Spinner::repo().get(ctx, after).await.map_err(internal)? else {
            return Err((StatusCode::BAD_REQUEST, "unknown cursor").into_response());
        };
        q = q.after(&row);
    }
    let items = q.fetch_all(ctx).await.map_err(internal)?;
    Ok(Json(paged(items, page.limit(), |s| s.id)))
}

#[derive(Deserialize)]
struct NewSpinnerBody {
    name: String,
}

async fn create_spinner(
    m: Authorized<SpinRole, Writer>,
    Json(body): Json<NewSpinnerBody>,
) -> Answer<(StatusCode, Json<Spinner>)> {
    let new = NewSpinner {
        id: Uuid::new_v4(),
        name: body.name,
    };
    match Spinner::repo().insert(m.ctx(), &new).await {
        Ok(s) => Ok((StatusCode::CREATED, Json(s))),
        Err(tenancy::Error::Database(e))
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation()) =>
        {
            Err((StatusCode::CONFLICT, "a spinner with this name exists").into_response())
        }
        Err(e) => Err(internal(e)),
    }
}

async fn list_spins(
    m: MemberOf<SpinRole>,
    Path(spinner): Path<Uuid>,
    Query(page): Query<Page>,
) -> Answer<Json<Paged<Spin>>> {
    let ctx = m.ctx();
    let mut q = Spin::repo()
        .query()
        .filter(Spin::SPINNER_ID.eq(spinner))
        .order_by(Spin::CREATED_AT.desc())
        .limit(page.limit());
    if let Some(after) = page.after {
        let Some(row) = Spin::repo().get(ctx, after).await.map_err(internal)? else {
            return Err((StatusCode::BAD_REQUEST, "unknown cursor").into_response());
        };
        q = q.after(&row);
    }
    let items = q.fetch_all(ctx).await.map_err(internal)?;
    Ok(Json(paged(items, page.limit(), |s| s.id)))
}

#[derive(Deserialize)]
struct NewSpinBody {
    duration: i32,
}

async fn create_spin(
    m: Authorized<SpinRole, Writer>,
    Path(spinner): Path<Uuid>,
    Json(body): Json<NewSpinBody>,
) -> Answer<(StatusCode, Json<Spin>)> {
    let ctx = m.ctx();
    // Another customer's spinner id is no spinner here.
    if !Spinner::repo()
        .exists(ctx, spinner)
        .await
        .map_err(internal)?
    {
        return Err((StatusCode::NOT_FOUND, "no such spinner").into_response());
    }
    let new = NewSpin {
        id: Uuid::new_v4(),
        spinner_id: spinner,
        duration: body.duration,
    };
    let spin = Spin::repo().insert(ctx, &new).await.map_err(internal)?;
    Ok((StatusCode::CREATED, Json(spin)))
}

/// The seed's view: the average spin duration per spinner.
#[derive(Serialize)]
struct SpinnerStats {
    spinner_id: Uuid,
    name: String,
    spins: i64,
    average: Option<f64>,
}

/// The average spin duration per spinner, from the tenant's rows only.
async fn spinner_stats(ctx: &TenantCtx) -> Result<Vec<SpinnerStats>, tenancy::Error> {
    let rows = Spinner::repo()
        .raw_as::<(Uuid, String, i64, Option<f64>)>(
            // Aliases too must not reuse a table's name (`AS spins` is refused).
            "SELECT p.id AS spinner_id, p.name, count(s.id) AS spin_count, \
                    avg(s.duration)::float8 AS average \
             FROM {spinners} p LEFT JOIN {spins} s ON s.spinner_id = p.id \
             GROUP BY p.id, p.name ORDER BY p.name",
        )
        .with::<Spin>()
        .fetch_all(ctx)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(spinner_id, name, spins, average)| SpinnerStats {
            spinner_id,
            name,
            spins,
            average,
        })
        .collect())
}

async fn stats(m: MemberOf<SpinRole>) -> Answer<Json<Vec<SpinnerStats>>> {
    Ok(Json(spinner_stats(m.ctx()).await.map_err(internal)?))
}

/// The job's work: the stats, computed in the background, into the customer's cache entry.
pub async fn recompute_dashboard(
    cache: &Cache,
    ctx: &TenantCtx,
    task: &Task,
) -> Result<(), String> {
    match task {
        Task::Dashboard => {
            let stats = spinner_stats(ctx).await.map_err(|e| e.to_string())?;
            let json = serde_json::to_string(&stats).map_err(|e| e.to_string())?;
            cache
                .put(ctx, "dashboard", &json, 300)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

/// The dashboard as the last job computed it; 404 until one has.
async fn dashboard(State(app): State<App>, m: MemberOf<SpinRole>) -> Answer<Response> {
    match app.cache.get(m.ctx(), "dashboard").await {
        Ok(Some(json)) => Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response()),
        Ok(None) => {
            Err((StatusCode::NOT_FOUND, "not computed yet: POST /dashboard").into_response())
        }
        Err(e) => {
            tracing::error!(error = %e, "the cache failed");
            Err((StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response())
        }
    }
}

/// Queues the dashboard's recomputation for this customer: 202 with `{"job": "<id>"}`.
async fn refresh_dashboard(State(app): State<App>, m: MemberOf<SpinRole>) -> Answer<Response> {
    let job = Job {
        tenant: m.ctx().to_ref(),
        task: Task::Dashboard,
    };
    match app.queue.enqueue(job).await {
        Ok(id) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "job": id.to_string() })),
        )
            .into_response()),
        Err(e) => {
            tracing::error!(error = %e, "the job queue failed");
            Err((StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response())
        }
    }
}

/// The admin endpoints' own credential: `Authorization: Bearer <token>`; 401 without it.
fn check_admin(app: &App, headers: &HeaderMap) -> Result<(), (StatusCode, &'static str)> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given == Some(app.admin_token.as_str()) {
        Ok(())
    } else {
        Err((StatusCode::UNAUTHORIZED, "admin credential required"))
    }
}

/// A spin of the cross-customer report, tagged with its customer.
#[derive(Serialize)]
struct TaggedSpin {
    customer: String,
    #[serde(flatten)]
    spin: Spin,
}

/// Every customer's spins over 120 s, through an audited Superuser.
async fn long_spins(State(app): State<App>, headers: HeaderMap) -> Answer<Json<Vec<TaggedSpin>>> {
    check_admin(&app, &headers).map_err(IntoResponse::into_response)?;
    let su = app
        .tenancy
        .superuser(ADMIN_ACTOR, "cross-customer report: spins over 120 s")
        .await
        .map_err(internal)?;
    let spins = Spin::repo()
        .report()
        .filter(Spin::DURATION.gt(120))
        .order_by(Spin::DURATION.desc())
        .limit(1000)
        .fetch_all(&su)
        .await
        .map_err(internal)?;
    let slugs: std::collections::HashMap<TenantId, String> = app
        .tenancy
        .list_tenants(&su)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|t| (t.id, t.slug))
        .collect();
    Ok(Json(
        spins
            .into_iter()
            .map(|(tenant, spin)| TaggedSpin {
                customer: slugs.get(&tenant).cloned().unwrap_or_default(),
                spin,
            })
            .collect(),
    ))
}

/// Suspends a customer: its members' next requests are refused.
async fn suspend(
    State(app): State<App>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Answer<StatusCode> {
    check_admin(&app, &headers).map_err(IntoResponse::into_response)?;
    let su = app
        .tenancy
        .superuser(ADMIN_ACTOR, &format!("suspend customer {slug}"))
        .await
        .map_err(internal)?;
    let tenants = app.tenancy.list_tenants(&su).await.map_err(internal)?;
    let Some(t) = tenants.into_iter().find(|t| t.slug == slug) else {
        return Err((StatusCode::NOT_FOUND, "no such customer").into_response());
    };
    match app.tenancy.suspend(&su, t.id).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(tenancy::Error::WrongStatus { .. }) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(internal(e)),
    }
}

/// Closes a customer for good: soft-deletes it (if it is not already), purges its rows and
/// registry entry, then its cache keys (found by the prefix of `cache_key`).
async fn purge(
    State(app): State<App>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Answer<Json<serde_json::Value>> {
    check_admin(&app, &headers).map_err(IntoResponse::into_response)?;
    let su = app
        .tenancy
        .superuser(ADMIN_ACTOR, &format!("purge customer {slug}"))
        .await
        .map_err(internal)?;
    let tenants = app.tenancy.list_tenants(&su).await.map_err(internal)?;
    let Some(t) = tenants.into_iter().find(|t| t.slug == slug) else {
        return Err((StatusCode::NOT_FOUND, "no such customer").into_response());
    };
    match app.tenancy.soft_delete(&su, t.id).await {
        Ok(_) | Err(tenancy::Error::WrongStatus { .. }) => {}
        Err(e) => return Err(internal(e)),
    }
    app.tenancy.purge(&su, t.id).await.map_err(internal)?;
    let keys = app.cache.purge(t.to_ref()).await.map_err(|e| {
        tracing::error!(error = %e, "purging the cache failed");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
    })?;
    Ok(Json(
        serde_json::json!({ "purged": slug, "cache_keys": keys }),
    ))
}
