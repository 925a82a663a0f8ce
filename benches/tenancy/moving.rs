//! Moving a tenant (issue 12), in the database `tenancy_bench_move`: a tenant of 10,000 spins
//! (and 20 spinners) moved from the shared tables to its own schema and back, in alternating
//! rounds, with a neighbour of 3,000 spins on the shared tables; the old copy is purged between
//! moves (not timed).
//!
//! - `move_tenant_ms_per_1000_rows`: the median over moves of `move_tenant`'s wall time per
//!   1,000 rows moved: building the target (the own schema from the tenant migrations), the
//!   fence, the copy, the per-table verification (count and checksum on both sides) and the
//!   switch, in one transaction. The tenant's writes wait (or fail with `TenantMoving`) for as
//!   long as the fence is up, which is most of it.

use std::time::Instant;

use sqlx::{Connection, PgConnection};
use tenancy::MigrateOptions;
use tenancy::prelude::*;

use crate::harness::{Bench, median};
use crate::own_schema::migrations;

const DATABASE: &str = "tenancy_bench_move";
const ROW: &str = "move_tenant_ms_per_1000_rows";

pub async fn run(b: &mut Bench, admin: &str) {
    if !b.wants(ROW) {
        return;
    }
    let url = crate::fresh_database(admin, DATABASE).await;
    let tenancy = Tenancy::builder()
        .tenant_migrations(migrations(2))
        .connect(&url)
        .await
        .expect("connect tenancy (creates the registry)");
    let su = tenancy
        .superuser("bench", "move tenants")
        .await
        .expect("superuser");
    let report = tenancy
        .migrate_tenants(&su, MigrateOptions::default())
        .await
        .expect("migrate the shared tables");
    assert!(report.is_success(), "{report:?}");
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    let spins = if b.cfg.quick { 2_000 } else { 10_000 };
    let mut moving = None;
    for (slug, n) in [("moving", spins), ("neighbour", 3_000)] {
        let t = tenancy
            .create_tenant(NewTenant::new(slug, slug))
            .await
            .expect("create tenant");
        moving.get_or_insert(t.id);
        crate::shared_table::seed_spins(&mut conn, t.id.as_uuid(), n).await;
    }
    let id = moving.expect("the moved tenant");
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(&mut conn)
        .await
        .expect("vacuum analyze");

    let moves = if b.cfg.quick { 2 } else { 8 };
    let mut per_1000 = Vec::with_capacity(moves);
    let mut rows = 0;
    for i in 0..moves {
        let to = if i % 2 == 0 {
            Placement::OwnSchema
        } else {
            Placement::SharedTable
        };
        let t = Instant::now();
        let moved = tenancy.move_tenant(&su, id, to).await.expect("move");
        let ms = t.elapsed().as_secs_f64() * 1e3;
        rows = moved.rows();
        per_1000.push(ms / (rows as f64 / 1_000.0));
        tenancy
            .purge_old_copy(&su, id)
            .await
            .expect("purge the old copy");
    }
    let detail = format!(
        "move_tenant of {rows} rows (2 tables), shared tables <-> own schema alternately; median of \
         {moves} moves (min {:.2}, max {:.2})",
        per_1000.iter().copied().fold(f64::INFINITY, f64::min),
        per_1000.iter().copied().fold(0.0, f64::max),
    );
    b.add_value(ROW, median(&per_1000), "ms", None, &detail);

    tenancy.close().await;
    drop(conn);
    crate::drop_database(admin, DATABASE).await;
}
