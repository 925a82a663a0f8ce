//! Provisioning (issue 3), in the database `tenancy_bench_provision`: `create_tenant` for the
//! two-migration spinner app, 200 own-schema tenants each way, through a handle with
//! `TenancyBuilder`'s defaults, one tenant at a time (the latency a sign-up waits).
//!
//! - `provision_ms_per_tenant`: cold, no spare schema: the schema, its history and both
//!   migrations in the creation's transaction.
//! - `provision_template_ms_per_tenant`: from a spare schema built ahead by `warm_schemas`
//!   (renamed in the creation's transaction).
//! - `spare_warm_ms_per_schema`: what building those spares cost, off the sign-up path.
//! - `provision_shared_ms_per_tenant`: a shared-table tenant, for reference.
//! - `provision_raw_ddl_ms_per_tenant`: the cold path's DDL alone, hand-written: the schema, a
//!   history table and both migrations with their history rows, as one simple query in one
//!   transaction on a plain connection; the floor no provisioning of that schema goes under.
//!   `provision_ms_per_tenant.vs_raw_ddl` is that over the cold time (1.0: tenancy adds
//!   nothing to PostgreSQL's DDL).
//!
//! In alternating rounds of 20 tenants each way (cold first in even rounds, from spares first in
//! odd ones); each round's spares are warmed just before its template batch, and none is left
//! when a cold batch runs. The figures are medians over rounds of the milliseconds per tenant.

use std::time::Instant;

use sqlx::{Connection, PgConnection};
use tenancy::MigrateOptions;
use tenancy::prelude::*;

use crate::harness::{Bench, Goal, median};
use crate::own_schema::migrations;

const DATABASE: &str = "tenancy_bench_provision";

/// Issue 5: "provisioning <= 5 ms per tenant".
const GOAL: Goal = Goal::AtMost(5.0);

const COLD: &str = "provision_ms_per_tenant";
const TEMPLATE: &str = "provision_template_ms_per_tenant";
const WARM: &str = "spare_warm_ms_per_schema";
const SHARED: &str = "provision_shared_ms_per_tenant";
const RAW_DDL: &str = "provision_raw_ddl_ms_per_tenant";

pub async fn run(b: &mut Bench, admin: &str) {
    if ![COLD, TEMPLATE, WARM, SHARED, RAW_DDL]
        .iter()
        .any(|r| b.wants(r))
    {
        return;
    }
    let url = crate::fresh_database(admin, DATABASE).await;
    let tenancy = Tenancy::builder()
        .tenant_migrations(migrations(2))
        .connect(&url)
        .await
        .expect("connect tenancy (creates the registry)");
    let su = tenancy
        .superuser("bench", "create the shared tables")
        .await
        .expect("superuser");
    let report = tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .expect("migrate the shared tables");
    assert!(report.is_success(), "{report:?}");
    let mut conn = PgConnection::connect(&url).await.expect("connect");

    let (rounds, per_round) = if b.cfg.quick { (2, 10) } else { (10, 20) };
    let mut next = 0;
    let mut batch = async |placement: Placement| {
        let t = Instant::now();
        for _ in 0..per_round {
            let slug = format!("p{next:05}");
            next += 1;
            tenancy
                .create_tenant(NewTenant::new(&slug, &slug).placement(placement))
                .await
                .expect("create tenant");
        }
        t.elapsed().as_secs_f64() * 1e3 / per_round as f64
    };
    let (mut cold, mut template, mut warm, mut shared) = (vec![], vec![], vec![], vec![]);
    let mut raw = vec![];
    let ddl = migrations(2);
    for r in 0..rounds {
        for cold_turn in [r % 2 == 0, r % 2 == 1] {
            if cold_turn {
                assert_eq!(spares(&mut conn).await, 0, "no spare for a cold batch");
                cold.push(batch(Placement::OwnSchema).await);
                let t = Instant::now();
                for i in 0..per_round {
                    let script = raw_ddl(&format!("raw_{r}_{i}"), &ddl);
                    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
                        .execute(&mut conn)
                        .await
                        .expect("the raw DDL");
                }
                raw.push(t.elapsed().as_secs_f64() * 1e3 / per_round as f64);
            } else {
                let t = Instant::now();
                let built = tenancy
                    .warm_schemas(&su, per_round)
                    .await
                    .expect("warm_schemas");
                warm.push(t.elapsed().as_secs_f64() * 1e3 / per_round as f64);
                assert_eq!(built, per_round);
                template.push(batch(Placement::OwnSchema).await);
                assert_eq!(spares(&mut conn).await, 0, "every spare was taken");
            }
        }
        shared.push(batch(Placement::SharedTable).await);
    }
    let detail = |what: &str, xs: &[f64]| {
        format!(
            "{what}; median of {rounds} rounds of {per_round} (min {:.2}, max {:.2})",
            xs.iter().copied().fold(f64::INFINITY, f64::min),
            xs.iter().copied().fold(0.0, f64::max),
        )
    };
    let rows = [
        (
            COLD,
            &cold,
            Some(GOAL),
            "create_tenant, own schema, both migrations run",
        ),
        (
            TEMPLATE,
            &template,
            Some(GOAL),
            "create_tenant, own schema, a warm spare renamed (spares warmed beforehand: spare_warm_ms_per_schema)",
        ),
        (
            WARM,
            &warm,
            None,
            "warm_schemas(n) / n, off the sign-up path",
        ),
        (SHARED, &shared, None, "create_tenant, shared tables"),
        (
            RAW_DDL,
            &raw,
            None,
            "the cold path's DDL hand-written, one simple query a schema",
        ),
    ];
    for (name, xs, goal, what) in rows {
        if b.wants(name) {
            b.add_value(name, median(xs), "ms", goal, &detail(what, xs));
        }
    }
    let (cold, template) = (median(&cold), median(&template));
    eprintln!(
        "provisioning from a spare: {:.2}x the cold time",
        template / cold
    );
    b.add_detail(format!("{TEMPLATE}.vs_cold"), template / cold, "ratio");
    let raw = median(&raw);
    eprintln!(
        "the cold path's DDL alone: {:.2}x the cold time",
        raw / cold
    );
    b.add_detail(format!("{COLD}.vs_raw_ddl"), raw / cold, "ratio");

    tenancy.close().await;
    drop(conn);
    crate::drop_database(admin, DATABASE).await;
}

/// What a cold provisioning of schema `schema` asks of PostgreSQL, written by hand: the schema,
/// a history table, each migration and its history row, in one transaction.
fn raw_ddl(schema: &str, migrations: &tenancy::Migrations) -> String {
    let mut script = format!(
        "BEGIN; CREATE SCHEMA {schema}; CREATE TABLE {schema}.tenancy_migrations (\
         version bigint PRIMARY KEY, description text NOT NULL, checksum bytea NOT NULL, \
         applied_at timestamptz NOT NULL DEFAULT now()); SET LOCAL search_path TO {schema};\n"
    );
    for m in migrations.iter() {
        script.push_str(&format!(
            "{};\nINSERT INTO {schema}.tenancy_migrations (version, description, checksum) \
             VALUES ({}, 'm', '\\x00');\n",
            m.sql, m.version
        ));
    }
    script.push_str("COMMIT;");
    script
}

async fn spares(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tenancy.spare_schemas")
        .fetch_one(conn)
        .await
        .expect("count spares")
}
