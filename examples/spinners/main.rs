//! The seed's fidget-spinner tracker as an axum service: customers by subdomain, members with
//! roles, spinners and spins, and admin endpoints that act across customers through an audited
//! Superuser. `POST /dashboard` queues a job on apalis over Redis; a worker in the same process
//! recomputes the customer's dashboard into the cache (see `jobs.rs`).
//!
//! Run it with `scripts/pg cargo run --example spinners`: it works in a database of its own,
//! `tenancy_spinners`, and a job queue of its own on Redis (`REDIS_URL`, by default
//! `redis://127.0.0.1:6379`, keys `spinners:jobs:*`), both made afresh on every run, listens on
//! `127.0.0.1:3000` (`SPINNERS_PORT` to change it) and prints the requests to try. `*.localhost` names reach 127.0.0.1 in curl,
//! so `acme.spinners.localhost` is customer Acme.

mod app;
mod cache;
mod jobs;

use std::sync::Arc;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

const BASE: &str = "spinners.localhost";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spinners: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let url = fresh_database().await?;
    let tenancy = app::connect(&url).await?;
    app::seed(&tenancy, BASE).await?;
    let admin_token = std::env::var("SPINNERS_ADMIN_TOKEN")
        .unwrap_or_else(|_| uuid::Uuid::new_v4().simple().to_string());
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let cache = cache::Cache::connect(&redis_url)
        .await
        .map_err(|e| format!("cannot connect to Redis at {redis_url}: {e}"))?;
    let queue = jobs::Queue::connect(&redis_url, "spinners:jobs")
        .await
        .map_err(|e| format!("cannot connect to Redis at {redis_url}: {e}"))?;
    // Afresh, like the database: an earlier run's jobs name customers of a dropped database.
    queue.purge().await?;
    tokio::spawn(worker(tenancy.clone(), cache.clone(), queue.clone()));
    let router = app::router(
        app::App {
            tenancy,
            cache,
            queue,
            admin_token: admin_token.clone(),
        },
        BASE,
    )?;
    let port = std::env::var("SPINNERS_PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    let port = listener.local_addr()?.port();
    let acme = format!("http://acme.{BASE}:{port}");
    let globex = format!("http://globex.{BASE}:{port}");
    println!("spinners is listening on 127.0.0.1:{port}. Try:");
    println!(
        "  curl -H 'x-user: ann' {acme}/spinners -H 'content-type: application/json' -d '{{\"name\":\"Turbo\"}}'"
    );
    println!("  curl -H 'x-user: ann' {acme}/spinners");
    println!(
        "  curl -H 'x-user: ann' {acme}/spinners/<id>/spins -H 'content-type: application/json' -d '{{\"duration\":130}}'"
    );
    println!("  curl -H 'x-user: ann' {acme}/stats");
    println!(
        "  curl -X POST -H 'x-user: ann' {acme}/dashboard; curl -H 'x-user: ann' {acme}/dashboard   # a job fills the cache"
    );
    println!(
        "  curl -H 'x-user: vic' {acme}/spinners -d '{{\"name\":\"x\"}}' -H 'content-type: application/json'   # a viewer: 403"
    );
    println!(
        "  curl -H 'x-user: gus' {globex}/spinners                   # Globex, in its own schema"
    );
    println!(
        "  curl -H 'x-user: gus' {acme}/spinners                     # not Acme's member: 403"
    );
    println!(
        "  curl -H 'Authorization: Bearer {admin_token}' http://127.0.0.1:{port}/admin/long-spins"
    );
    println!(
        "  curl -X POST -H 'Authorization: Bearer {admin_token}' http://127.0.0.1:{port}/admin/customers/globex/suspend"
    );
    println!("(without curl's *.localhost support: add -H 'Host: acme.{BASE}' to a 127.0.0.1 URL)");
    axum::serve(listener, router).await?;
    Ok(())
}

/// The background worker: apalis runs the jobs, retries failed attempts and refuses those of
/// customers that cannot be served.
async fn worker(tenancy: tenancy::Tenancy, cache: cache::Cache, queue: jobs::Queue) {
    let work: jobs::Work = Arc::new(move |attempt: jobs::Attempt| {
        let cache = cache.clone();
        Box::pin(async move {
            let done = app::recompute_dashboard(&cache, &attempt.ctx, &attempt.task).await;
            let (job, number) = (&attempt.job, attempt.number);
            match &done {
                Ok(()) => println!("job {job} (attempt {number}): done"),
                Err(e) => eprintln!("job {job} (attempt {number}) failed, apalis retries it: {e}"),
            }
            done
        })
    });
    if let Err(e) = queue.run_worker("spinners-worker", tenancy, work).await {
        eprintln!("the job worker stopped: {e}");
    }
}

/// Drops and recreates `tenancy_spinners` on the server of `DATABASE_URL`, so the example can be
/// run again and again.
async fn fresh_database() -> Result<String, Box<dyn std::error::Error>> {
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let options: PgConnectOptions = admin.parse()?;
    let mut conn = PgConnection::connect_with(&options).await.map_err(|e| {
        format!(
            "cannot connect to PostgreSQL at {}:{}: {e}",
            options.get_host(),
            options.get_port()
        )
    })?;
    sqlx::raw_sql("DROP DATABASE IF EXISTS tenancy_spinners WITH (FORCE)")
        .execute(&mut conn)
        .await?;
    sqlx::raw_sql("CREATE DATABASE tenancy_spinners")
        .execute(&mut conn)
        .await?;
    let base = admin.split('?').next().unwrap_or(&admin);
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    Ok(format!("{server}/tenancy_spinners"))
}
