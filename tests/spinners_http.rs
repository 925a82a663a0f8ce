//! The spinner example as a running service, over HTTP: two customers (one on the shared tables,
//! one in its own schema) told apart by the Host header, members and roles, the admin report
//! through an audited Superuser, a suspension, and the dashboard's jobs through a real apalis
//! worker on Redis (retries, refusals, two customers' jobs interleaved).

#[path = "../examples/spinners/app.rs"]
#[allow(dead_code)]
mod app;
#[path = "../examples/spinners/cache.rs"]
mod cache;
mod common;
#[path = "../examples/spinners/jobs.rs"]
mod jobs;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use apalis::prelude::{Status, TaskId};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::TestDb;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

const BASE: &str = "spinners.test";
const ADMIN_TOKEN: &str = "let-me-in";
const REDIS: &str = "redis://127.0.0.1:6379";

/// A running service on a free port of its own database, with a job queue of its own on Redis.
/// Its worker is started by the test (`start_worker`), after it has queued what it wants: jobs
/// wait in Redis until a worker comes.
struct Service {
    addr: SocketAddr,
    db: TestDb,
    tenancy: tenancy::Tenancy,
    cache: cache::Cache,
    queue: jobs::Queue,
    attempts: Arc<Attempts>,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What the test's worker saw: every attempt's job and tenant; and which first attempts it
/// fails: those of the jobs in `fail_first`, and, with `fail_every_third`, every third first
/// attempt it runs (for jobs it takes as soon as they are queued). `failed` names the jobs
/// whose first attempt it failed.
#[derive(Default)]
struct Attempts {
    seen: Mutex<Vec<(String, usize, tenancy::TenantId)>>,
    fail_first: Mutex<HashSet<String>>,
    fail_every_third: AtomicBool,
    /// Jobs whose customer the worker suspends during their first attempt (which then fails).
    suspend_during_first: Mutex<HashSet<String>>,
    first_attempts: AtomicUsize,
    failed: Mutex<HashSet<String>>,
}

impl Attempts {
    /// Whether to fail this first attempt of `job` (and then remember it did).
    fn fails(&self, job: &str) -> bool {
        let nth = self.first_attempts.fetch_add(1, Ordering::SeqCst) + 1;
        let fail = self.fail_first.lock().unwrap().contains(job)
            || (self.fail_every_third.load(Ordering::SeqCst) && nth.is_multiple_of(3));
        if fail {
            self.failed.lock().unwrap().insert(job.to_owned());
        }
        fail
    }

    /// The attempts of `job`: `(attempt number, tenant it ran as)`.
    fn of(&self, job: &str) -> Vec<(usize, tenancy::TenantId)> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(j, _, _)| j == job)
            .map(|(_, n, t)| (*n, *t))
            .collect()
    }
}

impl Service {
    async fn start(test: &str) -> Self {
        let db = TestDb::new(test).await;
        let tenancy = app::connect(&db.url).await.unwrap();
        app::seed(&tenancy, BASE).await.unwrap();
        let cache = cache::Cache::connect(REDIS).await.unwrap();
        // A queue per run: tests sharing the Redis never take each other's jobs.
        let name = format!("spinners-test:{test}:{}", uuid::Uuid::new_v4().simple());
        let queue = jobs::Queue::connect(REDIS, &name).await.unwrap();
        let router = app::router(
            app::App {
                tenancy: tenancy.clone(),
                cache: cache.clone(),
                queue: queue.clone(),
                admin_token: ADMIN_TOKEN.to_owned(),
            },
            BASE,
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            addr,
            db,
            tenancy,
            cache,
            queue,
            attempts: Arc::default(),
            worker: Mutex::default(),
        }
    }

    /// Starts an apalis worker on the service's queue doing the service's work (the dashboard),
    /// but failing the first attempts that `attempts` says; every attempt is recorded with the
    /// tenant it ran as.
    fn start_worker(&self) {
        let (cache, attempts) = (self.cache.clone(), self.attempts.clone());
        let tenancy = self.tenancy.clone();
        let work: jobs::Work = Arc::new(move |attempt: jobs::Attempt| {
            let (cache, attempts, tenancy) = (cache.clone(), attempts.clone(), tenancy.clone());
            Box::pin(async move {
                let tenant = attempt.ctx.id();
                attempts
                    .seen
                    .lock()
                    .unwrap()
                    .push((attempt.job.clone(), attempt.number, tenant));
                let suspend = attempts
                    .suspend_during_first
                    .lock()
                    .unwrap()
                    .contains(&attempt.job);
                if attempt.number == 1 && suspend {
                    let su = tenancy.superuser("spinners-admin", "test").await.unwrap();
                    tenancy.suspend(&su, tenant).await.unwrap();
                    return Err("injected failure, after a suspension".to_owned());
                }
                if attempt.number == 1 && attempts.fails(&attempt.job) {
                    return Err("injected failure".to_owned());
                }
                app::recompute_dashboard(&cache, &attempt.ctx, &attempt.task).await
            })
        });
        let (queue, tenancy) = (self.queue.clone(), self.tenancy.clone());
        let worker = tokio::spawn(async move {
            queue
                .run_worker("test-worker", tenancy, work)
                .await
                .expect("the worker failed");
        });
        *self.worker.lock().unwrap() = Some(worker);
    }

    /// Stops the worker and removes the queue's keys from Redis.
    async fn finish(self) {
        let worker = self.worker.lock().unwrap().take();
        if let Some(worker) = worker {
            worker.abort();
            let _ = worker.await;
        }
        self.queue.purge().await.unwrap();
    }

    /// Asks for `slug`'s dashboard as its member `user`; returns the queued job's id.
    async fn queue_dashboard(&self, user: &str, slug: &str) -> String {
        let (status, body) = self
            .member(user, slug, Method::POST, "/dashboard", None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["job"].as_str().unwrap().to_owned()
    }

    /// Waits for the jobs to finish; their outcomes in the same order.
    async fn wait(&self, jobs: &[&str]) -> Vec<jobs::Outcome> {
        let ids: Vec<TaskId> = jobs.iter().map(|j| TaskId::from_string(*j)).collect();
        // A guard against a hang, not a speed check: the jobs take milliseconds.
        let limit = std::time::Duration::from_secs(120);
        tokio::time::timeout(limit, self.queue.wait(&ids))
            .await
            .expect("the jobs did not finish")
            .unwrap()
    }

    /// One request on a connection of its own: `(status, body as JSON, or as a string)`.
    async fn send(
        &self,
        method: Method,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = match body {
            Some(body) => req
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = sender.send_request(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// As customer `slug`'s member `user`.
    async fn member(
        &self,
        user: &str,
        slug: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let host = format!("{slug}.{BASE}");
        self.send(method, &host, path, &[("x-user", user)], body)
            .await
    }

    async fn create_spinner(&self, user: &str, slug: &str, name: &str) -> String {
        let (status, body) = self
            .member(
                user,
                slug,
                Method::POST,
                "/spinners",
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    async fn spin(&self, user: &str, slug: &str, spinner: &str, duration: i32) -> StatusCode {
        let path = format!("/spinners/{spinner}/spins");
        let body = Some(json!({ "duration": duration }));
        self.member(user, slug, Method::POST, &path, body).await.0
    }

    async fn admin(&self, method: Method, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        self.send(method, "127.0.0.1", path, &headers, None).await
    }
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn each_customer_sees_and_writes_only_its_own_spinners() {
    let svc = Service::start("http_isolation").await;
    let acme_turbo = svc.create_spinner("ann", "acme", "Turbo").await;
    // The same name in the other customer (its own schema) is another spinner.
    let globex_turbo = svc.create_spinner("gus", "globex", "Turbo").await;
    svc.create_spinner("gus", "globex", "Orbit").await;
    assert_ne!(acme_turbo, globex_turbo);

    let (_, acme) = svc
        .member("ann", "acme", Method::GET, "/spinners", None)
        .await;
    assert_eq!(names(&acme), ["Turbo"]);
    assert_eq!(acme["items"][0]["id"], acme_turbo.as_str());
    let (_, globex) = svc
        .member("gus", "globex", Method::GET, "/spinners", None)
        .await;
    assert_eq!(names(&globex), ["Orbit", "Turbo"]);

    // A write aimed at the other customer's spinner finds no such spinner.
    assert_eq!(
        svc.spin("gus", "globex", &acme_turbo, 500).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        svc.spin("ann", "acme", &globex_turbo, 500).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        svc.spin("ann", "acme", &acme_turbo, 130).await,
        StatusCode::CREATED
    );
    assert_eq!(
        svc.spin("ann", "acme", &acme_turbo, 90).await,
        StatusCode::CREATED
    );
    assert_eq!(
        svc.spin("gus", "globex", &globex_turbo, 60).await,
        StatusCode::CREATED
    );

    let (_, stats) = svc.member("ann", "acme", Method::GET, "/stats", None).await;
    assert_eq!(
        stats,
        json!([{ "spinner_id": acme_turbo, "name": "Turbo", "spins": 2, "average": 110.0 }])
    );
    let (_, stats) = svc
        .member("gus", "globex", Method::GET, "/stats", None)
        .await;
    let rows: Vec<(&str, i64)> = stats
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["spins"].as_i64().unwrap()))
        .collect();
    assert_eq!(rows, [("Orbit", 0), ("Turbo", 1)]);

    let path = format!("/spinners/{globex_turbo}/spins");
    let (status, spins) = svc.member("ann", "acme", Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        spins["items"],
        json!([]),
        "Acme reads none of Globex's spins"
    );
}

#[tokio::test]
async fn keyset_pages_cover_every_spinner_once() {
    let svc = Service::start("http_pages").await;
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(svc.create_spinner("ann", "acme", &format!("s{i}")).await);
    }
    svc.create_spinner("gus", "globex", "elsewhere").await;
    let (mut seen, mut path) = (Vec::new(), "/spinners?limit=3".to_owned());
    loop {
        let (status, page) = svc.member("ann", "acme", Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for s in page["items"].as_array().unwrap() {
            seen.push(s["id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => path = format!("/spinners?limit=3&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    seen.sort();
    made.sort();
    assert_eq!(seen, made);
}

#[tokio::test]
async fn members_roles_and_hosts_are_checked() {
    let svc = Service::start("http_members").await;
    let get = Method::GET;
    // A viewer reads but does not write; a member of another customer is no member here.
    assert_eq!(
        svc.member("vic", "acme", get.clone(), "/spinners", None)
            .await
            .0,
        StatusCode::OK
    );
    let body = Some(json!({ "name": "Nope" }));
    let (status, _) = svc
        .member("vic", "acme", Method::POST, "/spinners", body)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = svc
        .member("gus", "acme", get.clone(), "/spinners", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!body.to_string().contains("Acme"), "{body}");
    let (status, _) = svc
        .send(get.clone(), "acme.spinners.test", "/spinners", &[], None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = svc
        .member("ann", "initech", get.clone(), "/spinners", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = svc
        .send(
            get,
            "bad_host.spinners.test",
            "/spinners",
            &[("x-user", "ann")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_admin_report_needs_its_credential_tags_customers_and_is_audited() {
    let svc = Service::start("http_admin").await;
    let acme = svc.create_spinner("ann", "acme", "Turbo").await;
    let globex = svc.create_spinner("gus", "globex", "Orbit").await;
    svc.spin("ann", "acme", &acme, 130).await;
    svc.spin("ann", "acme", &acme, 100).await;
    svc.spin("gus", "globex", &globex, 200).await;

    for token in [None, Some("guess")] {
        let (status, _) = svc.admin(Method::GET, "/admin/long-spins", token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let mut conn = svc.db.connect().await;
    let acquisitions = async |conn: &mut sqlx::PgConnection| -> Vec<(String, String)> {
        sqlx::query_as(
            "SELECT actor, reason FROM tenancy.audit_log WHERE action = 'superuser.acquire' \
             AND actor <> 'setup' ORDER BY id",
        )
        .fetch_all(conn)
        .await
        .unwrap()
    };
    assert_eq!(
        acquisitions(&mut conn).await,
        [],
        "no credential, no Superuser"
    );

    let (status, rows) = svc
        .admin(Method::GET, "/admin/long-spins", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    let tagged: Vec<(&str, i64)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["customer"].as_str().unwrap(),
                r["duration"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(tagged, [("globex", 200), ("acme", 130)]);
    assert_eq!(
        acquisitions(&mut conn).await,
        [(
            "spinners-admin".to_owned(),
            "cross-customer report: spins over 120 s".to_owned()
        )]
    );
    let reports: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tenancy.audit_log WHERE action = 'report.rows' \
         AND actor = 'spinners-admin'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(reports, 1);
}

#[tokio::test]
async fn a_suspended_customer_is_refused_and_the_other_serves_on() {
    let svc = Service::start("http_suspend").await;
    let get = Method::GET;
    assert_eq!(
        svc.member("ann", "acme", get.clone(), "/spinners", None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, _) = svc
        .admin(Method::POST, "/admin/customers/acme/suspend", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        svc.member("ann", "acme", get.clone(), "/spinners", None)
            .await
            .0,
        StatusCode::OK
    );

    let (status, _) = svc
        .admin(
            Method::POST,
            "/admin/customers/acme/suspend",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = svc
        .member("ann", "acme", get.clone(), "/spinners", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!body.to_string().contains("acme"), "{body}");
    let (status, _) = svc.member("gus", "globex", get, "/spinners", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// The dashboard the last job computed for `slug`: the names of its spinners.
async fn dashboard_names(svc: &Service, user: &str, slug: &str) -> Vec<String> {
    let (status, board) = svc
        .member(user, slug, Method::GET, "/dashboard", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{board}");
    board
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_job_runs_as_its_customer_after_a_retry_too() {
    let svc = Service::start("http_jobs").await;
    svc.create_spinner("ann", "acme", "Turbo").await;
    svc.create_spinner("gus", "globex", "Orbit").await;
    let acme = svc.tenancy.resolve_slug("acme").await.unwrap().id();
    let globex = svc.tenancy.resolve_slug("globex").await.unwrap().id();
    let (status, _) = svc
        .member("ann", "acme", Method::GET, "/dashboard", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing computed yet");

    let acme_job = svc.queue_dashboard("ann", "acme").await;
    let globex_job = svc.queue_dashboard("gus", "globex").await;
    svc.attempts
        .fail_first
        .lock()
        .unwrap()
        .insert(acme_job.clone());
    svc.start_worker();

    let outcomes = svc.wait(&[&acme_job, &globex_job]).await;
    assert_eq!(
        outcomes,
        [
            jobs::Outcome {
                status: Status::Done,
                attempts: 2,
                error: None
            },
            jobs::Outcome {
                status: Status::Done,
                attempts: 1,
                error: None
            },
        ]
    );
    // The retry is apalis' (its policy ran the job again), and it ran as acme again.
    assert_eq!(svc.attempts.of(&acme_job), [(1, acme), (2, acme)]);
    assert_eq!(svc.attempts.of(&globex_job), [(1, globex)]);
    assert_eq!(dashboard_names(&svc, "ann", "acme").await, ["Turbo"]);
    assert_eq!(dashboard_names(&svc, "gus", "globex").await, ["Orbit"]);
    svc.finish().await;
}

#[tokio::test]
async fn a_suspended_customers_job_is_refused_and_not_retried() {
    let svc = Service::start("http_job_refused").await;
    svc.create_spinner("gus", "globex", "Orbit").await;
    let refused_job = svc.queue_dashboard("ann", "acme").await;
    let (status, _) = svc
        .admin(
            Method::POST,
            "/admin/customers/acme/suspend",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Queued after the refused one: when it is done, the worker has been past the refused job.
    let globex_job = svc.queue_dashboard("gus", "globex").await;
    svc.start_worker();

    let outcomes = svc.wait(&[&refused_job, &globex_job]).await;
    assert_eq!(outcomes[0].status, Status::Killed, "{outcomes:?}");
    assert_eq!(
        outcomes[0].attempts, 1,
        "the retry policy did not run it again"
    );
    let error = outcomes[0].error.as_deref().unwrap();
    assert!(error.contains("refused"), "{error}");
    assert!(error.contains("suspended"), "{error}");
    assert_eq!(outcomes[1].status, Status::Done);
    assert!(
        svc.attempts.of(&refused_job).is_empty(),
        "the work never ran for the suspended customer"
    );
    assert_eq!(svc.attempts.of(&globex_job).len(), 1);
    let id = TaskId::from_string(refused_job.as_str());
    assert!(
        !svc.queue.is_scheduled(&id).await.unwrap(),
        "Redis does not hold the refused job for a later run"
    );
    // The customer's dashboard was never computed: it is not served either way.
    let (status, _) = svc
        .member("ann", "acme", Method::GET, "/dashboard", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    svc.finish().await;
}

#[tokio::test]
async fn a_customer_suspended_between_attempts_is_refused_at_the_retry() {
    let svc = Service::start("http_job_suspended_between").await;
    let acme = svc.tenancy.resolve_slug("acme").await.unwrap().id();
    let job = svc.queue_dashboard("ann", "acme").await;
    svc.attempts
        .suspend_during_first
        .lock()
        .unwrap()
        .insert(job.clone());
    svc.start_worker();

    let outcome = svc.wait(&[&job]).await.remove(0);
    // The retry resolved the customer again (nothing kept from the first attempt) and found it
    // suspended: refused, and not retried further.
    assert_eq!(outcome.status, Status::Killed, "{outcome:?}");
    assert_eq!(outcome.attempts, 2);
    let error = outcome.error.as_deref().unwrap();
    assert!(error.contains("suspended"), "{error}");
    assert_eq!(
        svc.attempts.of(&job),
        [(1, acme)],
        "the retry never ran the work"
    );
    assert!(
        !svc.queue
            .is_scheduled(&TaskId::from_string(job.as_str()))
            .await
            .unwrap()
    );
    svc.finish().await;
}

#[tokio::test]
async fn interleaved_jobs_of_two_customers_each_run_as_their_own() {
    let svc = Service::start("http_jobs_interleaved").await;
    svc.create_spinner("ann", "acme", "Turbo").await;
    svc.create_spinner("ann", "acme", "Zoom").await;
    svc.create_spinner("gus", "globex", "Orbit").await;
    let acme = svc.tenancy.resolve_slug("acme").await.unwrap().id();
    let globex = svc.tenancy.resolve_slug("globex").await.unwrap().id();

    // This time the worker is already running when the jobs come, and it fails every third
    // first attempt, so retries interleave with the other customer's jobs too.
    svc.attempts.fail_every_third.store(true, Ordering::SeqCst);
    svc.start_worker();
    let mut queued = Vec::new();
    for _ in 0..4 {
        for (user, slug, tenant) in [("ann", "acme", acme), ("gus", "globex", globex)] {
            queued.push((svc.queue_dashboard(user, slug).await, tenant));
        }
    }

    let ids: Vec<&str> = queued.iter().map(|(job, _)| job.as_str()).collect();
    let outcomes = svc.wait(&ids).await;
    let failed = svc.attempts.failed.lock().unwrap().clone();
    assert!(
        failed.len() >= 2,
        "8 first attempts, every third failed: {failed:?}"
    );
    for ((job, tenant), outcome) in queued.iter().zip(&outcomes) {
        let runs = if failed.contains(job) { 2 } else { 1 };
        assert_eq!(outcome.status, Status::Done, "{job}: {outcome:?}");
        assert_eq!(outcome.attempts, runs, "{job}");
        let expected: Vec<_> = (1..=runs).map(|n| (n, *tenant)).collect();
        assert_eq!(
            svc.attempts.of(job),
            expected,
            "{job} ran as its customer only"
        );
    }
    let seen = svc.attempts.seen.lock().unwrap().len();
    assert_eq!(seen, queued.len() + failed.len());
    assert_eq!(
        dashboard_names(&svc, "ann", "acme").await,
        ["Turbo", "Zoom"]
    );
    assert_eq!(dashboard_names(&svc, "gus", "globex").await, ["Orbit"]);
    svc.finish().await;
}

#[tokio::test]
async fn cache_entries_are_per_customer_and_purge_removes_a_customers_keys() {
    let svc = Service::start("http_cache").await;
    let acme = svc.tenancy.resolve_slug("acme").await.unwrap();
    let globex = svc.tenancy.resolve_slug("globex").await.unwrap();
    for (ctx, value) in [(&acme, "a"), (&globex, "g")] {
        svc.cache.put(ctx, "dashboard", value, 60).await.unwrap();
        svc.cache.put(ctx, "other", value, 60).await.unwrap();
    }
    assert_eq!(
        svc.cache.get(&acme, "dashboard").await.unwrap().as_deref(),
        Some("a")
    );
    assert_eq!(
        svc.cache
            .get(&globex, "dashboard")
            .await
            .unwrap()
            .as_deref(),
        Some("g")
    );

    let path = "/admin/customers/acme/purge";
    assert_eq!(
        svc.admin(Method::POST, path, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        svc.cache.get(&acme, "other").await.unwrap().as_deref(),
        Some("a")
    );
    let (status, body) = svc.admin(Method::POST, path, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cache_keys"], 2);
    assert!(matches!(
        svc.tenancy.resolve_id(acme.id()).await,
        Err(tenancy::Error::TenantNotFound(_))
    ));
    assert_eq!(
        svc.cache.purge(acme.to_ref()).await.unwrap(),
        0,
        "none left"
    );
    assert_eq!(
        svc.cache
            .get(&globex, "dashboard")
            .await
            .unwrap()
            .as_deref(),
        Some("g")
    );
    assert_eq!(
        svc.cache.get(&globex, "other").await.unwrap().as_deref(),
        Some("g")
    );
}
