//! Provisioning a tenant database (issue 12), three ways, on the server of `DATABASE_URL`, with
//! the spinner app's two tenant migrations:
//!
//! - `provision_database_ms_per_tenant`: `CREATE DATABASE .. TEMPLATE` from a template kept at
//!   the latest migration (the default path);
//! - `provision_database_empty_ms_per_tenant`: `CREATE DATABASE`, then both migrations and their
//!   history in it;
//! - `provision_database_spare_ms_per_tenant`: `ALTER DATABASE .. RENAME` of a spare made ahead
//!   from the template (`spare_database_warm_ms_per_database`: making the spares, off the
//!   sign-up path);
//! - `drop_database_ms_per_tenant`: what purging one costs.
//!
//! Each way is the statement sequence of the runtime's own-database provisioning, replayed by
//! hand so that the three ways can alternate on one server (`databases.rs` measures
//! `create_tenant` itself: `create_tenant_database_ms_per_tenant`): in a registry transaction
//! an advisory lock on the name, the database made on a second connection, the registry row
//! inserted, commit. In alternating rounds (the order
//! rotates), medians over rounds of the milliseconds per tenant.
//!
//! The tenant migrations reference `tenancy.tenants (id)`, as one set of migrations for every
//! placement does; a tenant database gets a stand-in table of that name first (see the
//! report of issue 12 for the design question it raises).

use std::time::Instant;

use sqlx::{Connection, PgConnection};
use tenancy::Migrations;
use uuid::Uuid;

use crate::harness::{Bench, median};
use crate::own_schema::migrations;

/// The registry stand-in: a database holding the rows a provisioning inserts.
const REGISTRY: &str = "tenancy_bench_dbreg";
/// Every database this bench makes starts with this (dropped at the start and the end).
const PREFIX: &str = "tenancy_bench_db_";

const TEMPLATE_ROW: &str = "provision_database_ms_per_tenant";
const EMPTY_ROW: &str = "provision_database_empty_ms_per_tenant";
const SPARE_ROW: &str = "provision_database_spare_ms_per_tenant";
const WARM_ROW: &str = "spare_database_warm_ms_per_database";
const DROP_ROW: &str = "drop_database_ms_per_tenant";

/// A tenant database's base, before the tenant migrations: the history table, and the
/// registry's table of tenants that the migrations' foreign keys name.
const BASE: &str = "CREATE SCHEMA tenancy;
CREATE TABLE tenancy.tenants (id uuid PRIMARY KEY);
CREATE TABLE public.tenancy_migrations (
     version     bigint PRIMARY KEY,
     description text NOT NULL,
     checksum    bytea NOT NULL,
     applied_at  timestamptz NOT NULL DEFAULT now()
);";

#[derive(Clone, Copy, PartialEq)]
enum Way {
    Template,
    Empty,
    Spare,
}

pub async fn run(b: &mut Bench, admin_url: &str) {
    if ![TEMPLATE_ROW, EMPTY_ROW, SPARE_ROW, WARM_ROW, DROP_ROW]
        .iter()
        .any(|r| b.wants(r))
    {
        return;
    }
    let mut server = crate::common::admin_conn().await;
    drop_ours(&mut server).await;
    let registry_url = crate::fresh_database(admin_url, REGISTRY).await;
    let mut registry = PgConnection::connect(&registry_url)
        .await
        .expect("registry");
    sql(
        &mut registry,
        "CREATE TABLE registered (tenant uuid PRIMARY KEY, database text NOT NULL)".into(),
    )
    .await;
    let m = migrations(2);
    let template = format!("{PREFIX}template");
    sql(&mut server, format!("CREATE DATABASE \"{template}\"")).await;
    migrate(&tenancy::testing::database_url(&template), &m).await;

    let (rounds, per_round) = if b.cfg.quick { (2, 3) } else { (6, 5) };
    let ways = [Way::Template, Way::Empty, Way::Spare];
    let (mut tpl, mut empty, mut spare, mut warm, mut dropped) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut made = Vec::new();
    for r in 0..rounds {
        for k in 0..ways.len() {
            let way = ways[(r + k) % ways.len()];
            let mut spares = Vec::new();
            if way == Way::Spare {
                let t = Instant::now();
                for _ in 0..per_round {
                    let name = format!(
                        "{PREFIX}spare_{}",
                        &Uuid::new_v4().simple().to_string()[..16]
                    );
                    sql(
                        &mut server,
                        format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
                    )
                    .await;
                    spares.push(name);
                }
                warm.push(ms_per(t, per_round));
            }
            let t = Instant::now();
            for _ in 0..per_round {
                let tenant = Uuid::new_v4();
                let name = format!("{PREFIX}{}", tenant.simple());
                let mut tx = registry.begin().await.expect("begin");
                sqlx::query(
                    "SELECT pg_advisory_xact_lock(hashtext('tenancy.database'), hashtext($1))",
                )
                .bind(&name)
                .execute(&mut *tx)
                .await
                .expect("lock");
                match way {
                    Way::Template => {
                        sql(
                            &mut server,
                            format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
                        )
                        .await;
                    }
                    Way::Empty => {
                        sql(&mut server, format!("CREATE DATABASE \"{name}\"")).await;
                        migrate(&tenancy::testing::database_url(&name), &m).await;
                    }
                    Way::Spare => {
                        let from = spares.pop().expect("a spare per tenant");
                        sql(
                            &mut server,
                            format!("ALTER DATABASE \"{from}\" RENAME TO \"{name}\""),
                        )
                        .await;
                    }
                }
                sqlx::query("INSERT INTO registered VALUES ($1, $2)")
                    .bind(tenant)
                    .bind(&name)
                    .execute(&mut *tx)
                    .await
                    .expect("register");
                tx.commit().await.expect("commit");
                made.push(name);
            }
            let per = ms_per(t, per_round);
            match way {
                Way::Template => tpl.push(per),
                Way::Empty => empty.push(per),
                Way::Spare => spare.push(per),
            }
        }
        // Purging: dropping this round's databases (not timed with the creations).
        let t = Instant::now();
        let n = made.len();
        for name in made.drain(..) {
            sql(
                &mut server,
                format!("DROP DATABASE \"{name}\" WITH (FORCE)"),
            )
            .await;
        }
        dropped.push(ms_per(t, n));
    }
    let detail = |what: &str, xs: &[f64]| {
        format!(
            "{what}; median of {rounds} rounds of {per_round} (min {:.1}, max {:.1})",
            xs.iter().copied().fold(f64::INFINITY, f64::min),
            xs.iter().copied().fold(0.0, f64::max),
        )
    };
    let rows = [
        (
            TEMPLATE_ROW,
            &tpl,
            "CREATE DATABASE .. TEMPLATE (template at the latest migration) + registry row",
        ),
        (
            EMPTY_ROW,
            &empty,
            "CREATE DATABASE, both migrations and their history in it, + registry row",
        ),
        (
            SPARE_ROW,
            &spare,
            "ALTER DATABASE .. RENAME of a spare + registry row (spares made beforehand)",
        ),
        (
            WARM_ROW,
            &warm,
            "CREATE DATABASE .. TEMPLATE per spare, off the sign-up path",
        ),
        (DROP_ROW, &dropped, "DROP DATABASE .. WITH (FORCE)"),
    ];
    for (name, xs, what) in rows {
        if b.wants(name) {
            b.add_value(name, median(xs), "ms", None, &detail(what, xs));
        }
    }
    let (tpl, empty, spare) = (median(&tpl), median(&empty), median(&spare));
    eprintln!(
        "tenant database from the template: {:.2}x the empty + migrations time; from a spare: {:.3}x the template time",
        tpl / empty,
        spare / tpl
    );
    b.add_detail(format!("{TEMPLATE_ROW}.vs_empty"), tpl / empty, "ratio");
    b.add_detail(format!("{SPARE_ROW}.vs_template"), spare / tpl, "ratio");

    drop(registry);
    drop_ours(&mut server).await;
    crate::drop_database(admin_url, REGISTRY).await;
}

fn ms_per(t: Instant, n: usize) -> f64 {
    t.elapsed().as_secs_f64() * 1e3 / n as f64
}

async fn sql(conn: &mut PgConnection, text: String) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(text.clone()))
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{e}\nwhile running: {text}"));
}

/// The base and every migration with its history row, in one transaction, as the runtime
/// migrates a new tenant database.
async fn migrate(url: &str, m: &Migrations) {
    let mut conn = PgConnection::connect(url)
        .await
        .expect("connect to the new database");
    let mut tx = conn.begin().await.expect("begin");
    sql(&mut tx, BASE.to_owned()).await;
    for mig in m.iter() {
        sql(&mut tx, mig.sql.clone()).await;
        sqlx::query("INSERT INTO public.tenancy_migrations (version, description, checksum) VALUES ($1, $2, $3)")
            .bind(mig.version)
            .bind(&mig.description)
            .bind(&mig.checksum)
            .execute(&mut *tx)
            .await
            .expect("history");
    }
    tx.commit().await.expect("commit");
    conn.close().await.expect("close");
}

/// Drops every database this bench made (a previous run's too).
async fn drop_ours(server: &mut PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(PREFIX)
            .fetch_all(&mut *server)
            .await
            .expect("list databases");
    for name in names {
        sql(
            server,
            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        )
        .await;
    }
}
