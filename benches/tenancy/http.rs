//! The request edge: a list endpoint behind the tenant layer and its extractor, against the same
//! endpoint written by hand (a host map loaded at start, hand-written sqlx), both served by axum
//! on loopback and called by 32 concurrent clients over kept-alive HTTP/1 connections.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tenancy::axum::TenantLayer;
use tenancy::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::harness::{Bench, Compare, Goal};
use crate::shared_table::{SCHEMA, Spin, SpinRow};

const DATABASE: &str = "tenancy_bench_http";
const ROW: &str = "http_list_c32_vs_raw_handler";
/// The measured tenant's host; a neighbour has rows in the same tables.
const HOST: &str = "measured.bench.test";
/// Connections of each side's pool.
const CONNECTIONS: u32 = 8;

/// What both endpoints answer: the tenant's 50 newest spins.
#[derive(Serialize)]
struct SpinOut {
    id: Uuid,
    spinner_id: Uuid,
    duration: i32,
    note: Option<String>,
    #[serde(skip)]
    _created_at: OffsetDateTime,
}

pub async fn run(b: &mut Bench, admin_url: &str) {
    if !b.wants(ROW) {
        return;
    }
    let url = crate::fresh_database(admin_url, DATABASE).await;
    let tenancy = Tenancy::builder()
        .max_connections(CONNECTIONS)
        .connect(&url)
        .await
        .expect("connect tenancy");
    seed(&tenancy, &url, b.cfg.quick).await;
    let pool = PgPoolOptions::new()
        .max_connections(CONNECTIONS)
        .connect(&url)
        .await
        .expect("connect the raw pool");
    // What a hand-written service does: the hosts, read once.
    let hosts: HashMap<String, Uuid> =
        sqlx::query_as("SELECT host, tenant_id FROM tenancy.domains")
            .fetch_all(&pool)
            .await
            .expect("read the hosts")
            .into_iter()
            .collect();

    let edge_routes = Router::new().route("/spins", get(edge_list));
    let edge = serve(TenantLayer::host(tenancy.clone()).around(edge_routes)).await;
    let raw_routes = Router::new()
        .route("/spins", get(raw_list))
        .with_state(Raw {
            pool: pool.clone(),
            hosts: Arc::new(hosts),
        });
    let raw = serve(raw_routes).await;

    let call = |client: Client| {
        move |_: u64| {
            let client = client.clone();
            async move { client.list().await }
        }
    };
    let spec = Compare {
        name: ROW,
        a: "edge",
        b: "raw",
        concurrency: 32,
        goal: Some(Goal::AtLeast(0.95)),
    };
    b.compare(spec, call(Client::new(edge.0)), call(Client::new(raw.0)))
        .await;

    edge.1.abort();
    raw.1.abort();
    tenancy.close().await;
    pool.close().await;
    crate::drop_database(admin_url, DATABASE).await;
}

/// The registry, the tables, the measured tenant and a neighbour, each with spins.
async fn seed(tenancy: &Tenancy, url: &str, quick: bool) {
    let spins: i32 = if quick { 1_000 } else { 5_000 };
    let pool = PgPool::connect(url).await.expect("connect");
    sqlx::raw_sql(SCHEMA)
        .execute(&pool)
        .await
        .expect("create the app's tables");
    for host in [HOST, "neighbour.bench.test"] {
        let slug = host.split('.').next().expect("a label");
        let t = tenancy
            .create_tenant(NewTenant::new(slug, slug).host(host))
            .await
            .expect("create tenant");
        sqlx::query(
            "WITH s AS (INSERT INTO spinners (tenant_id, id, name) \
                        VALUES ($1, gen_random_uuid(), 'turbo') RETURNING id) \
             INSERT INTO spins (tenant_id, spinner_id, duration, created_at) \
             SELECT $1, s.id, (random() * 300)::int, now() - make_interval(secs => g) \
             FROM s, generate_series(1, $2) g",
        )
        .bind(t.id.as_uuid())
        .bind(spins)
        .execute(&pool)
        .await
        .expect("insert spins");
    }
    sqlx::raw_sql("ANALYZE")
        .execute(&pool)
        .await
        .expect("analyze");
    pool.close().await;
}

async fn edge_list(ctx: TenantCtx) -> Result<Json<Vec<SpinOut>>, StatusCode> {
    let rows = Spin::repo()
        .query()
        .order_by(Spin::CREATED_AT.desc())
        .limit(50)
        .fetch_all(&ctx)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(Json(
        rows.into_iter()
            .map(|s| SpinOut {
                id: s.id,
                spinner_id: s.spinner_id,
                duration: s.duration,
                note: s.note,
                _created_at: s.created_at,
            })
            .collect(),
    ))
}

#[derive(Clone)]
struct Raw {
    pool: PgPool,
    hosts: Arc<HashMap<String, Uuid>>,
}

async fn raw_list(
    State(raw): State<Raw>,
    headers: HeaderMap,
) -> Result<Json<Vec<SpinOut>>, StatusCode> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or(StatusCode::BAD_REQUEST)?;
    let tenant = *raw.hosts.get(host).ok_or(StatusCode::NOT_FOUND)?;
    let rows: Vec<SpinRow> = sqlx::query_as(
        r#"SELECT "id", "spinner_id", "duration", "note", "created_at" FROM "spins" WHERE "tenant_id" = $1 ORDER BY "created_at" DESC, "id" DESC LIMIT 50"#,
    )
    .bind(tenant)
    .fetch_all(&raw.pool)
    .await
    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(Json(
        rows.into_iter()
            .map(|(id, spinner_id, duration, note, created_at)| SpinOut {
                id,
                spinner_id,
                duration,
                note,
                _created_at: created_at,
            })
            .collect(),
    ))
}

/// Serves `app` on a free loopback port.
async fn serve<S>(app: S) -> (SocketAddr, tokio::task::JoinHandle<()>)
where
    S: tower_service::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, axum::ServiceExt::into_make_service(app)).await;
    });
    (addr, task)
}

/// An HTTP/1 client keeping its connections open between requests, as a load generator does.
#[derive(Clone)]
struct Client {
    addr: SocketAddr,
    idle: Arc<Mutex<Vec<SendRequest<Body>>>>,
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            idle: Arc::default(),
        }
    }

    async fn list(&self) {
        let idle = self.idle.lock().expect("idle connections").pop();
        let mut sender = match idle {
            Some(sender) => sender,
            None => {
                let stream = tokio::net::TcpStream::connect(self.addr)
                    .await
                    .expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .expect("handshake");
                tokio::spawn(conn);
                sender
            }
        };
        sender.ready().await.expect("connection ready");
        let req = Request::get("/spins")
            .header(header::HOST, HOST)
            .body(Body::empty())
            .expect("request");
        let res = sender.send_request(req).await.expect("response");
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.into_body().collect().await.expect("body").to_bytes();
        black_box(body);
        self.idle.lock().expect("idle connections").push(sender);
    }
}
