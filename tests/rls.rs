//! Row-level security as a runtime backstop: PostgreSQL confines SQL to the tenant tenancy set,
//! and to nothing where none is set, while every library path keeps working.
//!
//! PostgreSQL superusers skip every policy, so each test runs the application as a role of its
//! own (not a superuser, not BYPASSRLS), the owner of the test database and of the tables its
//! migrations create; the policy is forced, so the owner is held to it too.

mod common;

use std::time::Duration;

use common::models::*;
use common::{Rls, SPINNER_SCHEMA};
use futures_util::{FutureExt, StreamExt};
use sqlx::{Connection, PgConnection, Row};
use tenancy::{
    Agg, Error, MigrateOptions, Migrations, NewTenant, Placement, Tenancy, TenantCtx, rls,
};
use uuid::Uuid;

/// The spinner tables with the policy on each, as one tenant migration.
fn migrations() -> Migrations {
    migrations_with(true)
}

fn migrations_with(policy: bool) -> Migrations {
    if !policy {
        return Migrations::from_static(&[(1, "spinner app", SPINNER_SCHEMA)]).unwrap();
    }
    common::spinner_rls_migrations()
}

struct World {
    rls: Rls,
    tenancy: Tenancy,
    a: TenantCtx,
    b: TenantCtx,
    c: TenantCtx,
}

async fn world(test: &str) -> World {
    world_with(test, true).await
}

/// Without `rls`, neither the policy nor the runtime setting: the baseline.
async fn world_with(test: &str, rls_on: bool) -> World {
    let rls = Rls::new(test).await;
    let pool = rls.app_pool(5).await;
    let tenancy = Tenancy::builder()
        .row_level_security(rls_on)
        .tenant_migrations(migrations_with(rls_on))
        .from_pool(pool)
        .await
        .expect("connect as the application role");
    common::migrate_all(&tenancy).await;
    let [a, b, c]: [TenantCtx; 3] = common::create_tenants(
        &tenancy,
        &[
            ("tenant-a", Placement::SharedTable),
            ("tenant-b", Placement::SharedTable),
            ("tenant-c", Placement::OwnSchema),
        ],
    )
    .await
    .try_into()
    .unwrap();
    World {
        rls,
        tenancy,
        a,
        b,
        c,
    }
}

async fn seed(ctx: &TenantCtx, spinners: usize, spins_each: i32) -> Vec<Spinner> {
    let mut out = Vec::new();
    for i in 0..spinners {
        let s = Spinner::repo()
            .insert(
                ctx,
                &NewSpinner {
                    id: Uuid::new_v4(),
                    name: format!("{}-{i}-{}", ctx.slug(), Uuid::new_v4()),
                    color: None,
                },
            )
            .await
            .unwrap();
        let news: Vec<NewSpin> = (0..spins_each)
            .map(|d| NewSpin {
                id: Uuid::new_v4(),
                spinner_id: s.id,
                duration: d,
                note: None,
            })
            .collect();
        Spin::repo().insert_many(ctx, &news).await.unwrap();
        out.push(s);
    }
    out
}

async fn setting(conn: &mut PgConnection) -> Option<String> {
    sqlx::query_scalar("SELECT NULLIF(current_setting('tenancy.tenant_id', true), '')")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn roles_that_bypass_rls_are_refused_at_connect() {
    let rls = Rls::new("rls_refuse").await;
    // The test server's own user is a superuser.
    let err = Tenancy::builder()
        .row_level_security(true)
        .connect(&rls.db.url)
        .await
        .expect_err("a superuser must be refused");
    assert!(
        matches!(&err, Error::RowLevelSecurity(m) if m.contains("superuser")),
        "{err}"
    );
    // BYPASSRLS is refused too.
    rls.db
        .exec(&format!("ALTER ROLE {} BYPASSRLS", rls.role()))
        .await;
    let err = Tenancy::builder()
        .row_level_security(true)
        .from_pool(rls.app_pool(1).await)
        .await
        .expect_err("BYPASSRLS must be refused");
    assert!(err.to_string().contains("BYPASSRLS"), "{err}");
    // Refused before anything was created.
    let mut conn = rls.db.connect().await;
    let registry: Option<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname = 'tenancy'")
            .fetch_optional(&mut conn)
            .await
            .unwrap();
    assert_eq!(registry, None);
    // Off, nothing changes: the superuser connects.
    Tenancy::builder().connect(&rls.db.url).await.unwrap();
}

#[tokio::test]
async fn hand_written_sql_sees_only_the_tenant_set_and_nothing_without_one() {
    let w = world("rls_hand").await;
    seed(&w.a, 2, 3).await;
    seed(&w.b, 1, 4).await;
    let mut conn = w.rls.app_conn().await;

    // No tenant set: no rows, and writes refused.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM spins")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let refused = sqlx::query(
        "INSERT INTO spinners (tenant_id, id, name) VALUES ($1, gen_random_uuid(), 'x')",
    )
    .bind(w.a.id().as_uuid())
    .execute(&mut conn)
    .await
    .expect_err("an insert without a tenant set must be refused");
    assert!(
        refused.to_string().contains("row-level security"),
        "{refused}"
    );

    // What tenancy does at BEGIN: tenant A for this transaction. A query that forgot the
    // tenant reads A's rows only, and cannot write B's.
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('tenancy.tenant_id', $1, true)")
        .bind(w.a.id().as_uuid().to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let tenants: Vec<Uuid> = sqlx::query_scalar("SELECT tenant_id FROM spins")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(tenants.len(), 6);
    assert!(tenants.iter().all(|t| *t == w.a.id().as_uuid()));
    let updated = sqlx::query("UPDATE spins SET duration = 0")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(updated, 6);
    let cross = sqlx::query(
        "INSERT INTO spinners (tenant_id, id, name) VALUES ($1, gen_random_uuid(), 'x')",
    )
    .bind(w.b.id().as_uuid())
    .execute(&mut *tx)
    .await;
    assert!(cross.is_err(), "writing B's row as A must be refused");
    tx.rollback().await.unwrap();

    // Gone with the transaction.
    assert_eq!(setting(&mut conn).await, None);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM spins")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

/// A tenant table whose tenant column the library does not know (and with no foreign key to the
/// registry), declared a global table by mistake, passes the raw-SQL check. The policy still
/// confines the query.
#[tokio::test]
async fn backstop_catches_a_leak_the_library_did_not_prevent() {
    let w = world("rls_leak").await;
    seed(&w.a, 1, 1).await;
    w.rls
        .db
        .exec(&format!(
            "SET ROLE {}; CREATE TABLE ledger (org uuid NOT NULL, amount int NOT NULL); {}",
            w.rls.role(),
            rls::policy_sql("ledger", "org").unwrap()
        ))
        .await;
    let mut admin = w.rls.db.connect().await; // a superuser: bypasses RLS, to seed both tenants
    for (t, n) in [(w.a.id(), 2), (w.b.id(), 5)] {
        for _ in 0..n {
            sqlx::query("INSERT INTO ledger VALUES ($1, 10)")
                .bind(t.as_uuid())
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }
    let leak = "SELECT (SELECT count(*) FROM ledger) FROM {spins} LIMIT 1";
    // Raw SQL names only placeholders and declared global tables: refused as it stands.
    let r = Spin::repo().raw_as::<(i64,)>(leak).fetch_one(&w.a).await;
    assert!(matches!(r, Err(Error::UnscopedSql(_))), "{r:?}");
    // An application that declares the tenant table global by mistake (its tenant column is
    // one the library does not know, and it has no foreign key to the registry): the policy
    // still confines the query.
    let mistaken = Tenancy::builder()
        .row_level_security(true)
        .global_tables(["ledger"])
        .from_pool(w.rls.app_pool(2).await)
        .await
        .unwrap();
    let a = mistaken.resolve_slug("tenant-a").await.unwrap();
    let (n,): (i64,) = Spin::repo().raw_as(leak).fetch_one(&a).await.unwrap();
    assert_eq!(n, 2, "the backstop confines the unscoped read to tenant A");
    let mut tx = a.begin().await.unwrap();
    let (n,): (i64,) = Spin::repo().raw_as(leak).fetch_one(&mut tx).await.unwrap();
    assert_eq!(n, 2);
    tx.commit().await.unwrap();

    // Raw SQL cannot lift the backstop: `set_config` and `pg_settings` are refused.
    for sql in [
        "SELECT set_config('tenancy.all_tenants', 'on', true) FROM {spins}",
        "WITH x AS (SELECT 1 FROM {spins}) UPDATE pg_settings SET setting = 'on' \
         WHERE name = 'tenancy.all_tenants'",
    ] {
        let err = Spin::repo()
            .raw_as::<(String,)>(sql)
            .fetch_all(&w.a)
            .await
            .expect_err(sql);
        assert!(matches!(err, Error::UnscopedSql(_)), "{sql}: {err}");
    }
}

#[tokio::test]
async fn every_repository_operation_works_and_stays_isolated() {
    let w = world("rls_repo").await;
    for (ctx, other) in [(&w.a, &w.b), (&w.b, &w.a), (&w.c, &w.a)] {
        let repo = Spin::repo();
        let spinners = seed(ctx, 2, 5).await;
        let s = &spinners[0];
        assert_eq!(
            Spinner::repo().get(ctx, s.id).await.unwrap().as_ref(),
            Some(s)
        );
        assert_eq!(Spinner::repo().get(other, s.id).await.unwrap(), None);
        let ids: Vec<Uuid> = spinners.iter().map(|s| s.id).collect();
        assert_eq!(Spinner::repo().get_many(ctx, &ids).await.unwrap().len(), 2);
        assert!(Spinner::repo().exists(ctx, s.id).await.unwrap());
        assert!(!Spinner::repo().exists(other, s.id).await.unwrap());

        let mut renamed = s.clone();
        renamed.color = Some("red".into());
        assert_eq!(
            Spinner::repo().update(ctx, &renamed).await.unwrap(),
            Some(renamed.clone())
        );
        assert_eq!(Spinner::repo().update(other, &renamed).await.unwrap(), None);
        let spin = repo
            .query()
            .filter(Spin::SPINNER_ID.eq(s.id) & Spin::DURATION.eq(4))
            .fetch_one(ctx)
            .await
            .unwrap();
        let set = repo
            .update_columns(ctx, spin.id, [Spin::DURATION.set(99)])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(set.duration, 99);
        assert_eq!(
            repo.update_where(
                ctx,
                Spin::DURATION.lt(2),
                [Spin::NOTE.set(Some("short".into()))]
            )
            .await
            .unwrap(),
            4
        );
        assert_eq!(
            repo.count_where(ctx, Spin::NOTE.is_not_null())
                .await
                .unwrap(),
            4
        );
        assert!(repo.exists_where(ctx, Spin::DURATION.eq(99)).await.unwrap());

        // Streams hold their transaction until the last row.
        let streamed: Vec<Spin> = repo.query().fetch(ctx).map(|r| r.unwrap()).collect().await;
        assert_eq!(streamed.len(), 10);
        let raw: Vec<Spin> = repo
            .raw("SELECT * FROM {spins} WHERE duration >= $1")
            .bind(3)
            .fetch(ctx)
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(raw.len(), 4); // 3, 99 and 3, 4

        // A transaction: the tenant set once, at BEGIN.
        let mut tx = ctx.begin().await.unwrap();
        assert!(repo.delete(&mut tx, spin.id).await.unwrap());
        assert_eq!(repo.count(&mut tx).await.unwrap(), 9);
        let in_tx: Vec<Spin> = repo
            .query()
            .fetch(&mut tx)
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(in_tx.len(), 9);
        tx.commit().await.unwrap();
        assert_eq!(
            repo.delete_where(ctx, Spin::DURATION.ge(4)).await.unwrap(),
            1
        );
        assert_eq!(repo.count(ctx).await.unwrap(), 8);
        assert!(!repo.delete(other, s.id).await.unwrap());
    }
    // insert_many past one statement's parameters: chunks in one transaction with the tenant.
    let s = &seed(&w.a, 1, 0).await[0];
    let many: Vec<NewSpin> = (0..16_500)
        .map(|d| NewSpin {
            id: Uuid::new_v4(),
            spinner_id: s.id,
            duration: d,
            note: None,
        })
        .collect();
    assert_eq!(
        Spin::repo().insert_many(&w.a, &many).await.unwrap().len(),
        16_500
    );
    assert_eq!(Spin::repo().count(&w.a).await.unwrap(), 8 + 16_500);
    assert_eq!(Spin::repo().count(&w.b).await.unwrap(), 8);
    assert_eq!(Spin::repo().count(&w.c).await.unwrap(), 8);
}

#[tokio::test]
async fn cross_tenant_work_passes_the_policy() {
    let w = world("rls_admin").await;
    seed(&w.a, 1, 3).await;
    seed(&w.b, 1, 4).await;
    seed(&w.c, 1, 5).await;
    let t = &w.tenancy;
    let su = t.superuser("test", "cross-tenant").await.unwrap();

    let rows = Spin::repo().report().fetch_all(&su).await.unwrap();
    assert_eq!(rows.len(), 12);
    let counts = Spin::repo()
        .report()
        .aggregate(Agg::count())
        .fetch(&su)
        .await
        .unwrap();
    assert_eq!(counts.overall, 12);

    // Migrations backfill every tenant's rows.
    let mut list = migrations();
    list = Migrations::from_list(
        list.iter()
            .cloned()
            .chain([tenancy::Migration::new(
                3,
                "backfill",
                "UPDATE spins SET note = 'backfilled' WHERE note IS NULL",
            )])
            .collect(),
    )
    .unwrap();
    let t2 = Tenancy::builder()
        .row_level_security(true)
        .tenant_migrations(list)
        .from_pool(w.rls.app_pool(2).await)
        .await
        .unwrap();
    let su2 = t2.superuser("test", "backfill").await.unwrap();
    assert!(
        t2.migrate_tenants(&su2, MigrateOptions::default())
            .await
            .unwrap()
            .is_success()
    );
    for ctx in [&w.a, &w.b, &w.c] {
        assert_eq!(
            Spin::repo()
                .count_where(ctx, Spin::NOTE.eq(Some("backfilled".into())))
                .await
                .unwrap(),
            Spin::repo().count(ctx).await.unwrap()
        );
    }

    // Export A, import into a new empty tenant, purge B.
    let archive = t.export_tenant(&su, w.a.id()).await.unwrap();
    let d = t
        .create_tenant(NewTenant::new("tenant-d", "d"))
        .await
        .unwrap();
    assert_eq!(t.import_tenant(&su, &archive, d.id).await.unwrap(), 4);
    let d = t.resolve_slug("tenant-d").await.unwrap();
    assert_eq!(Spin::repo().count(&d).await.unwrap(), 3);
    t.soft_delete(&su, w.b.id()).await.unwrap();
    t.purge(&su, w.b.id()).await.unwrap();
    let left = Spin::repo().report().fetch_all(&su).await.unwrap();
    assert_eq!(left.len(), 3 + 5 + 3);
}

#[tokio::test]
async fn verify_reports_a_table_without_the_policy_and_install_is_idempotent() {
    let w = world("rls_verify").await;
    let t = &w.tenancy;
    t.verify::<Spin>().await.unwrap();
    t.verify::<Spinner>().await.unwrap();
    let mut owner = w.rls.app_conn().await;
    sqlx::raw_sql(
        "DROP POLICY tenancy_isolation ON spinners; \
         ALTER TABLE spinners NO FORCE ROW LEVEL SECURITY; \
         CREATE POLICY extra ON spinners USING (true)",
    )
    .execute(&mut owner)
    .await
    .unwrap();
    let err = t.verify::<Spinner>().await.expect_err("no policy");
    let msg = err.to_string();
    assert!(msg.contains("no policy \"tenancy_isolation\""), "{msg}");
    assert!(msg.contains("not forced"), "{msg}");
    assert!(msg.contains("permissive policy \"extra\""), "{msg}");
    // Off, verify checks the shape only.
    Tenancy::builder()
        .from_pool(w.rls.app_pool(1).await)
        .await
        .unwrap()
        .verify::<Spinner>()
        .await
        .unwrap();

    sqlx::raw_sql("DROP POLICY extra ON spinners")
        .execute(&mut owner)
        .await
        .unwrap();
    let su = t.superuser("test", "install").await.unwrap();
    t.install_row_level_security::<Spinner>(&su).await.unwrap();
    t.install_row_level_security::<Spinner>(&su).await.unwrap();
    t.verify::<Spinner>().await.unwrap();
}

/// The spinner app (`SPINNER_SCHEMA`) with `spins` partitioned by tenant: two hash partitions.
fn partitioned_spins() -> String {
    let spins_end = "ON DELETE CASCADE\n);";
    assert_eq!(
        SPINNER_SCHEMA.matches(spins_end).count(),
        1,
        "spins ends the schema's one cascade"
    );
    let schema = SPINNER_SCHEMA.replace(
        spins_end,
        "ON DELETE CASCADE\n) PARTITION BY HASH (tenant_id);",
    );
    format!(
        "{schema}\n\
         CREATE TABLE spins_p0 PARTITION OF spins FOR VALUES WITH (MODULUS 2, REMAINDER 0);\n\
         CREATE TABLE spins_p1 PARTITION OF spins FOR VALUES WITH (MODULUS 2, REMAINDER 1);\n"
    )
}

/// Rows of each partition a plain connection of the application role sees, with `tenant` set
/// (or none).
async fn partition_rows(conn: &mut PgConnection, tenant: Option<Uuid>) -> Vec<(Uuid, i64)> {
    let mut tx = conn.begin().await.unwrap();
    if let Some(t) = tenant {
        sqlx::query("SELECT set_config('tenancy.tenant_id', $1, true)")
            .bind(t.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let rows = sqlx::query_as(
        "SELECT tenant_id, count(*) FROM (SELECT tenant_id FROM spins_p0 UNION ALL \
         SELECT tenant_id FROM spins_p1) s GROUP BY tenant_id ORDER BY tenant_id",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    rows
}

#[tokio::test]
async fn partitions_are_covered_by_the_policy_and_checked_by_verify() {
    let rls = Rls::new("rls_partitions").await;
    let policies = format!(
        "{}{}",
        rls::policy_sql("spinners", "tenant_id").unwrap(),
        rls::policy_sql("spins", "tenant_id").unwrap()
    );
    let tenancy = Tenancy::builder()
        .row_level_security(true)
        .tenant_migrations(
            Migrations::from_list(vec![
                tenancy::Migration::new(1, "partitioned spinner app", partitioned_spins()),
                tenancy::Migration::new(2, "row-level security", policies),
            ])
            .unwrap(),
        )
        .from_pool(rls.app_pool(3).await)
        .await
        .unwrap();
    common::migrate_all(&tenancy).await;
    let ctxs = common::create_tenants(
        &tenancy,
        &[
            ("tenant-a", Placement::SharedTable),
            ("tenant-b", Placement::SharedTable),
            ("tenant-c", Placement::SharedTable),
        ],
    )
    .await;
    for ctx in &ctxs {
        seed(ctx, 1, 3).await;
    }

    // Straight at the partitions, around the library: no tenant set, no rows; a tenant set,
    // its rows only, wherever they are.
    let mut conn = rls.app_conn().await;
    assert_eq!(partition_rows(&mut conn, None).await, vec![]);
    for ctx in &ctxs {
        let id = ctx.id().as_uuid();
        assert_eq!(partition_rows(&mut conn, Some(id)).await, vec![(id, 3)]);
    }
    tenancy.verify::<Spin>().await.unwrap();

    // A partition without the policy is named by verify, and install puts it back.
    sqlx::raw_sql("DROP POLICY tenancy_isolation ON spins_p1")
        .execute(&mut conn)
        .await
        .unwrap();
    let msg = tenancy.verify::<Spin>().await.unwrap_err().to_string();
    assert!(
        msg.contains("\"spins_p1\"") && msg.contains("no policy"),
        "{msg}"
    );
    assert!(!msg.contains("spins_p0"), "{msg}");
    let su = tenancy.superuser("test", "install").await.unwrap();
    tenancy
        .install_row_level_security::<Spin>(&su)
        .await
        .unwrap();
    tenancy.verify::<Spin>().await.unwrap();

    // A partition created later, with the parent's policy SQL run again in its migration.
    let later = format!(
        "DROP TABLE spins_p1; \
         CREATE TABLE spins_p1 PARTITION OF spins FOR VALUES WITH (MODULUS 2, REMAINDER 1); {}",
        rls::policy_sql("spins", "tenant_id").unwrap()
    );
    let shared = Migrations::from_static(&[(1, "new partition", &later)]).unwrap();
    tenancy.migrate_shared(&su, &shared).await.unwrap();
    tenancy.verify::<Spin>().await.unwrap();
    seed(&ctxs[0], 1, 2).await;
    assert_eq!(partition_rows(&mut conn, None).await, vec![]);
}

/// One connection: whatever happens to a unit of work, the next borrower finds no tenant.
#[tokio::test]
async fn a_pooled_connection_carries_no_tenant_to_the_next_borrower() {
    let w = world("rls_pool").await;
    seed(&w.a, 1, 3).await;
    let pool = w.rls.app_pool(1).await;
    let t = Tenancy::builder()
        .row_level_security(true)
        .from_pool(pool.clone())
        .await
        .unwrap();
    let a = t.resolve_slug("tenant-a").await.unwrap();
    let clean = async |what: &str| {
        let mut conn = pool.acquire().await.unwrap();
        // One simple-query message: outside a transaction it starts its own, whose start
        // (`now()`) is the message's; inside one left open, an earlier one.
        let open: bool = sqlx::raw_sql("SELECT now() <> statement_timestamp()")
            .fetch_one(&mut *conn)
            .await
            .unwrap()
            .get(0);
        assert!(!open, "a transaction left open after {what}");
        assert_eq!(setting(&mut conn).await, None, "after {what}");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM spins")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(n, 0, "after {what}");
    };

    assert_eq!(Spin::repo().count(&a).await.unwrap(), 3);
    clean("a statement").await;
    // Reads end their read-only transaction with a rollback sent with the pool's next use.
    let all = Spin::repo().query().fetch_all(&a).await.unwrap();
    assert_eq!(all.len(), 3);
    clean("a query").await;
    let one = Spin::repo().get(&a, all[0].id).await.unwrap();
    assert_eq!(one.as_ref(), Some(&all[0]));
    clean("a lookup").await;
    let failed = Spin::repo()
        .raw_as::<(i32,)>("SELECT s.duration / 0 FROM {spins} s")
        .fetch_all(&a)
        .await;
    assert!(
        matches!(&failed, Err(Error::Database(_))),
        "division by zero: {failed:?}"
    );
    clean("a read the server refused").await;
    // A write right after a read, on the same connection, commits.
    let mut kept = all[0].clone();
    kept.duration = 99;
    Spin::repo().update(&a, &kept).await.unwrap();
    clean("a write after a read").await;
    assert_eq!(
        Spin::repo()
            .get(&a, kept.id)
            .await
            .unwrap()
            .map(|s| s.duration),
        Some(99)
    );
    let mut tx = a.begin().await.unwrap();
    Spin::repo().count(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    clean("a commit").await;
    let mut tx = a.begin().await.unwrap();
    Spin::repo().count(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();
    clean("a rollback").await;
    let mut tx = a.begin().await.unwrap();
    Spin::repo().count(&mut tx).await.unwrap();
    drop(tx);
    clean("a dropped transaction").await;

    // Cancelled mid-statement, on a pooled connection and in a transaction.
    let slow = "SELECT count(*) FROM {spins}, pg_sleep(0.3)";
    let cancelled = tokio::time::timeout(
        Duration::from_millis(50),
        Spin::repo().raw_as::<(i64,)>(slow).fetch_one(&a),
    )
    .await;
    assert!(cancelled.is_err());
    clean("a cancelled statement").await;
    let cancelled = tokio::time::timeout(Duration::from_millis(50), async {
        let mut tx = a.begin().await.unwrap();
        Spin::repo().raw_as::<(i64,)>(slow).fetch_one(&mut tx).await
    })
    .await;
    assert!(cancelled.is_err());
    clean("a cancelled transaction").await;

    // A stream dropped after its first row, and one never polled.
    let mut rows = Spin::repo().query().fetch(&a);
    rows.next().await.unwrap().unwrap();
    drop(rows);
    clean("a dropped stream").await;
    let never = Spin::repo().query().fetch(&a);
    drop(never);
    clean("a stream never polled").await;
    // Polled once (the connection taken, BEGIN on its way), then dropped.
    let _ = Spin::repo().count(&a).now_or_never();
    clean("a future dropped after one poll").await;
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 3);
}

/// A read whose prepared statement a change of the table made stale (`SELECT *` after a column
/// was added, by SQL the handle did not see) is prepared again and run once more in a new
/// transaction with the tenant set, and the connection is left clean.
#[tokio::test]
async fn a_read_whose_cached_plan_went_stale_runs_again_with_the_tenant_set() {
    let w = world("rls_replan").await;
    seed(&w.a, 1, 2).await;
    seed(&w.b, 1, 1).await;
    let pool = w.rls.app_pool(1).await;
    let t = Tenancy::builder()
        .row_level_security(true)
        .from_pool(pool.clone())
        .await
        .unwrap();
    let a = t.resolve_slug("tenant-a").await.unwrap();
    let select = || Spin::repo().raw("SELECT s.* FROM {spins} s ORDER BY s.id");
    let ids = |rows: Vec<Spin>| rows.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let before = ids(select().fetch_all(&a).await.unwrap());
    assert_eq!(before.len(), 2);
    sqlx::raw_sql("ALTER TABLE spins ADD COLUMN extra int NOT NULL DEFAULT 7")
        .execute(&mut w.rls.app_conn().await)
        .await
        .unwrap();
    let again = ids(select().fetch_all(&a).await.unwrap());
    assert_eq!(again, before, "the tenant's rows, after preparing again");
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(setting(&mut conn).await, None);
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM spins")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(seen, 0, "no tenant left set on the connection");
}

/// A lookup with row-level security on and off, side by side:
/// `scripts/pg cargo test --release --test rls -- --ignored --nocapture lookup_cost`.
#[tokio::test]
#[ignore = "benchmark"]
async fn lookup_cost() {
    let mut ctxs = Vec::new();
    let mut worlds = Vec::new();
    for on in [false, true] {
        let w = world_with(if on { "rls_bench_on" } else { "rls_bench_off" }, on).await;
        let s = &seed(&w.a, 1, 50).await[0];
        seed(&w.b, 1, 50).await;
        let t = Tenancy::builder()
            .row_level_security(on)
            .from_pool(w.rls.app_pool(1).await)
            .await
            .unwrap();
        let ctx = t.resolve_slug("tenant-a").await.unwrap();
        let ids: Vec<Uuid> = Spin::repo()
            .query()
            .filter(Spin::SPINNER_ID.eq(s.id))
            .fetch_all(&ctx)
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids.len(), 50);
        ctxs.push((if on { "on" } else { "off" }, ctx, ids));
        worlds.push(w);
    }
    let n = 4_000;
    let mut results = Vec::new();
    for round in 0..3 {
        for (name, ctx, ids) in &ctxs {
            let started = std::time::Instant::now();
            for i in 0..n {
                let got = Spin::repo().get(ctx, ids[i % ids.len()]).await.unwrap();
                assert!(got.is_some());
            }
            let single = started.elapsed();
            let started = std::time::Instant::now();
            let mut tx = ctx.begin().await.unwrap();
            for i in 0..n {
                Spin::repo().get(&mut tx, ids[i % ids.len()]).await.unwrap();
            }
            tx.commit().await.unwrap();
            let in_tx = started.elapsed();
            let started = std::time::Instant::now();
            for _ in 0..n / 10 {
                let mut tx = ctx.begin().await.unwrap();
                Spin::repo().get(&mut tx, ids[0]).await.unwrap();
                tx.commit().await.unwrap();
            }
            let tx_each = started.elapsed() * 10;
            if round > 0 {
                results.push((name, single, in_tx, tx_each));
            }
        }
    }
    for (name, single, in_tx, tx_each) in &results {
        println!(
            "rls {name}: get on &ctx {:.1} us, get in a TenantTx {:.1} us, begin+get+commit {:.1} us",
            single.as_secs_f64() * 1e6 / n as f64,
            in_tx.as_secs_f64() * 1e6 / n as f64,
            tx_each.as_secs_f64() * 1e6 / n as f64,
        );
    }
}
