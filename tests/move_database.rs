//! Moving a tenant into a database of its own (`Tenancy::move_tenant` to
//! `Placement::OwnDatabase`), against the real server: the copy across connections and its
//! verification, the switch, the old copy and its purge, the writes that go on throughout,
//! and what a crash between the new database's commit and the switch leaves (a database that
//! `cleanup_orphans` drops, never a registered one).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::models::*;
use common::moving::*;
use sqlx::{Connection, PgConnection};
use tenancy::testing::{TestSetup, TestTenancy};
use tenancy::{Error, Migrations, MoveOptions, NewTenant, Placement, Purged, Tenancy, TenantId};

/// The registry's row for tenant `id`: placement, schema, database, server.
async fn registry_row(
    conn: &mut PgConnection,
    id: TenantId,
) -> (String, Option<String>, Option<String>, String) {
    sqlx::query_as(
        "SELECT placement, schema_name, database_name, server FROM tenancy.tenants WHERE id = $1",
    )
    .bind(id.as_uuid())
    .fetch_one(conn)
    .await
    .unwrap()
}

#[tenancy::test(migrations = "tests/migrations")]
async fn tenants_move_from_shared_tables_and_own_schemas_into_databases_of_their_own(
    t: TestTenancy,
) {
    let tenancy = t.tenancy().clone();
    let a = tenant(&tenancy, "acme", Placement::SharedTable).await;
    let i = tenant(&tenancy, "initech", Placement::OwnSchema).await;
    let g = tenant(&tenancy, "globex", Placement::SharedTable).await;
    fill(&a, 50).await;
    fill(&i, 20).await;
    fill(&g, 7).await;
    let mut conn = t.connect().await;
    let a_before = spin_ids(&mut conn, "public.spins", a.id()).await;
    let i_before = spin_ids(&mut conn, "t_initech.spins", i.id()).await;
    let su = tenancy
        .superuser("ops", "ticket #12: databases")
        .await
        .unwrap();

    let moved = tenancy
        .move_tenant(&su, a.id(), Placement::OwnDatabase)
        .await
        .unwrap();
    assert_eq!(
        (
            moved.from,
            moved.to,
            moved.schema.as_deref(),
            moved.server.as_str()
        ),
        (
            Placement::SharedTable,
            Placement::OwnDatabase,
            None,
            "primary"
        )
    );
    let a_db = moved.database.clone().expect("the new database");
    let names: Vec<&str> = moved.tables.iter().map(|m| m.table.as_str()).collect();
    assert_eq!(names, ["spinners", "spins"], "parents first");
    assert_eq!(moved.rows(), 51);
    assert!(moved.tables.iter().all(|m| m.checksum.len() == 32));
    assert_eq!(
        registry_row(&mut conn, a.id()).await,
        (
            "own_database".into(),
            None,
            Some(a_db.clone()),
            "primary".into()
        )
    );

    // Every row came across, its foreign keys holding, in a database that says whose it is.
    let mut a_conn = connect_to(&a_db).await;
    assert_eq!(
        spin_ids(&mut a_conn, "public.spins", a.id()).await,
        a_before
    );
    let joined: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM public.spins s JOIN public.spinners p \
         ON (p.tenant_id, p.id) = (s.tenant_id, s.spinner_id)",
    )
    .fetch_one(&mut a_conn)
    .await
    .unwrap();
    assert_eq!(joined, 50);
    let owner: uuid::Uuid = sqlx::query_scalar("SELECT id FROM tenancy.tenants")
        .fetch_one(&mut a_conn)
        .await
        .unwrap();
    assert_eq!(owner, a.id().as_uuid());

    // The context of before the move is revoked or refused; a fresh one serves the new copy.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stale_write = Spin::repo()
        .insert(&a, &new_spin(uuid::Uuid::nil(), 1))
        .await;
    assert!(
        matches!(
            stale_write,
            Err(Error::ContextRevoked { .. } | Error::TenantMoved(_))
        ),
        "{stale_write:?}"
    );
    let a = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(a.placement(), Placement::OwnDatabase);
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 50);
    let spinner = Spinner::repo().query().fetch_all(&a).await.unwrap();
    let after = Spin::repo()
        .insert(&a, &new_spin(spinner[0].id, 99))
        .await
        .unwrap();
    assert!(
        spin_ids(&mut a_conn, "public.spins", a.id())
            .await
            .contains(&after.id)
    );
    assert!(
        !spin_ids(&mut conn, "public.spins", a.id())
            .await
            .contains(&after.id)
    );

    // Audited, with where the tenant went.
    let detail: String = sqlx::query_scalar(
        "SELECT detail FROM tenancy.audit_log WHERE action = 'tenant.move' AND $1 = ANY (tenant_ids)",
    )
    .bind(a.id().as_uuid())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(detail.contains(&a_db), "{detail}");

    // The own-schema tenant moves too; its schema is kept, renamed, until purged.
    let moved = tenancy
        .move_tenant(&su, i.id(), Placement::OwnDatabase)
        .await
        .unwrap();
    let i_db = moved.database.clone().unwrap();
    let old = format!("tenancy_old_{}", i.id().as_uuid().simple());
    assert_eq!(moved.old_copy.schema.as_deref(), Some(old.as_str()));
    let mut i_conn = connect_to(&i_db).await;
    assert_eq!(
        spin_ids(&mut i_conn, "public.spins", i.id()).await,
        i_before
    );
    assert_eq!(
        spin_ids(&mut conn, &format!("{old}.spins"), i.id()).await,
        i_before
    );

    // The old copies stay until purged; then only the other tenants' rows are left.
    assert_eq!(spin_ids(&mut conn, "public.spins", a.id()).await, a_before);
    let purged = tenancy.purge_old_copy(&su, a.id()).await.unwrap();
    assert!(matches!(&purged[..], [Purged::Rows(_)]), "{purged:?}");
    assert!(spin_ids(&mut conn, "public.spins", a.id()).await.is_empty());
    tenancy.purge_old_copy(&su, i.id()).await.unwrap();
    let schemas: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
        .bind(&old)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(schemas, 0);
    assert_eq!(spin_ids(&mut conn, "public.spins", g.id()).await.len(), 7);
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 51);

    // Both new homes are registered: the cleanup of leftovers keeps them.
    let dropped = tenancy.cleanup_orphans(&su).await.unwrap();
    assert!(dropped.is_empty(), "{dropped:?}");
    let mut expect = vec![a_db, i_db];
    expect.sort();
    assert_eq!(registry_databases(&mut conn).await, expect);
    a_conn.close().await.unwrap();
    i_conn.close().await.unwrap();
}

/// A table of the app's own with an identity key and values whose text depends on session
/// settings (time zones, floats, intervals, bytes): they must cross as they were.
const TICKETS: &str = "CREATE TABLE tickets (
    tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id),
    n         bigint GENERATED ALWAYS AS IDENTITY,
    at        timestamptz NOT NULL,
    day       date,
    amount    numeric(14, 4),
    ratio     double precision,
    doc       jsonb,
    raw       bytea,
    span      interval,
    tags      text[],
    PRIMARY KEY (tenant_id, n)
);";

#[test]
fn identity_values_and_every_type_come_across_and_keys_go_on() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let migrations = Migrations::from_static(&[
            (1, "spinner app", common::SPINNER_SCHEMA),
            (2, "tickets", TICKETS),
        ])
        .unwrap();
        let (_db, t) = TestSetup::new("move_db_types")
            .tenant_migrations(migrations)
            .tenant("acme", Placement::SharedTable)
            .tenant("globex", Placement::SharedTable)
            .create()
            .await
            .unwrap();
        let tenancy = t.tenancy().clone();
        let (a, g) = (t.tenant("acme").id(), t.tenant("globex").id());
        // Written in a time zone and with float settings of their own.
        t.exec(&format!(
            "SET TimeZone = 'Asia/Kolkata'; SET extra_float_digits = 0; \
             INSERT INTO tickets (tenant_id, at, day, amount, ratio, doc, raw, span, tags) \
             SELECT '{a}', now() - i * interval '1 day 3 hours', current_date - i, i / 7.0, \
                    1.0 / (i + 3), jsonb_build_object('i', i, 's', repeat('é', i)), \
                    decode(md5(i::text), 'hex'), make_interval(secs => i * 1.5), \
                    ARRAY['a\"b', NULL, 'c,d'] \
             FROM generate_series(1, 5) i; \
             INSERT INTO tickets (tenant_id, at) SELECT '{g}', now() FROM generate_series(1, 3);"
        ))
        .await;
        let rows = "SELECT string_agg(t::text, '|' ORDER BY n) FROM \
                    (SELECT n, at, day, amount, ratio, doc, raw, span, tags FROM tickets \
                     WHERE tenant_id = $1) t";
        let mut conn = t.connect().await;
        sqlx::raw_sql("SET TimeZone = 'UTC'; SET extra_float_digits = 3")
            .execute(&mut conn)
            .await
            .unwrap();
        let before: String = sqlx::query_scalar(rows)
            .bind(a.as_uuid())
            .fetch_one(&mut conn)
            .await
            .unwrap();

        let su = tenancy.superuser("ops", "types").await.unwrap();
        let moved = tenancy
            .move_tenant(&su, a, Placement::OwnDatabase)
            .await
            .unwrap();
        assert!(
            moved
                .tables
                .iter()
                .any(|m| m.table == "tickets" && m.rows == 5),
            "{moved:?}"
        );
        let mut a_conn = connect_to(moved.database.as_deref().unwrap()).await;
        sqlx::raw_sql("SET TimeZone = 'UTC'; SET extra_float_digits = 3")
            .execute(&mut a_conn)
            .await
            .unwrap();
        let after: String = sqlx::query_scalar(rows)
            .bind(a.as_uuid())
            .fetch_one(&mut a_conn)
            .await
            .unwrap();
        assert_eq!(after, before);
        // The identity goes on from the copied keys (it would draw 1 and collide otherwise).
        let n: i64 = sqlx::query_scalar(
            "INSERT INTO tickets (tenant_id, at) VALUES ($1, now()) RETURNING n",
        )
        .bind(a.as_uuid())
        .fetch_one(&mut a_conn)
        .await
        .unwrap();
        assert_eq!(n, 6);
        a_conn.close().await.unwrap();
        tenancy.close().await;
    });
}

#[tenancy::test(migrations = "tests/migrations")]
async fn moves_into_a_database_that_cannot_be_done_are_refused_and_make_nothing(t: TestTenancy) {
    let tenancy = t.tenancy().clone();
    let a = tenant(&tenancy, "acme", Placement::SharedTable).await;
    fill(&a, 5).await;
    let su = tenancy.superuser("ops", "refusals").await.unwrap();
    let mut conn = t.connect().await;

    // A server the handle does not map.
    let unknown = tenancy
        .move_tenant_with(
            &su,
            a.id(),
            Placement::OwnDatabase,
            MoveOptions::default().server("nowhere"),
        )
        .await;
    assert!(
        matches!(&unknown, Err(Error::UnknownServer { server }) if server == "nowhere"),
        "{unknown:?}"
    );
    // A server is only for a database.
    let schema = tenancy
        .move_tenant_with(
            &su,
            a.id(),
            Placement::OwnSchema,
            MoveOptions::default().server("primary"),
        )
        .await;
    assert!(
        matches!(schema, Err(Error::MoveRefused { .. })),
        "{schema:?}"
    );
    // A tenant on its own database is there already (another server is not a move yet).
    let own = tenancy
        .create_tenant(NewTenant::new("hooli", "Hooli").placement(Placement::OwnDatabase))
        .await
        .unwrap();
    let again = tenancy
        .move_tenant(&su, own.id, Placement::OwnDatabase)
        .await;
    assert!(
        matches!(&again, Err(Error::MoveRefused { reason, .. }) if reason.contains("already lives")),
        "{again:?}"
    );
    assert_eq!(
        registry_row(&mut conn, a.id()).await.0,
        "shared_table".to_owned()
    );
    assert_eq!(registry_databases(&mut conn).await.len(), 1, "hooli's only");
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 5);
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_database_left_between_its_commit_and_the_switch_is_dropped_by_the_cleanup(
    t: TestTenancy,
) {
    let tenancy = t.tenancy().clone();
    let a = tenant(&tenancy, "acme", Placement::SharedTable).await;
    let s = fill(&a, 10).await;
    let own = tenancy
        .create_tenant(NewTenant::new("hooli", "Hooli").placement(Placement::OwnDatabase))
        .await
        .unwrap();
    let own_db = own.database.clone().unwrap();
    let su = Arc::new(tenancy.superuser("ops", "crash").await.unwrap());
    let mut conn = t.connect().await;

    // The mover stops after the new database committed; its registry backend dies there.
    let mover = spawn_move(
        &tenancy,
        &su,
        a.id(),
        Placement::OwnDatabase,
        MoveOptions::default().hold_before_switch(Duration::from_secs(30)),
    );
    let mut leftover = None;
    tenancy::testing::eventually(
        "the new database committed its copy",
        Duration::from_secs(30),
        async || {
            for name in registry_databases(&mut conn).await {
                if name == own_db {
                    continue;
                }
                let mut c = connect_to(&name).await;
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM public.spins")
                    .fetch_one(&mut c)
                    .await
                    .unwrap_or(0);
                c.close().await.unwrap();
                if n == 10 {
                    leftover = Some(name);
                    return true;
                }
            }
            false
        },
    )
    .await;
    let leftover = leftover.unwrap();
    let pid = mover_pid(&mut conn).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(mover.await.unwrap().is_err());

    // The tenant is whole on its old home, writable; the registry names no new home.
    assert_eq!(
        registry_row(&mut conn, a.id()).await,
        ("shared_table".into(), None, None, "primary".into())
    );
    Spin::repo().insert(&a, &new_spin(s.id, 1)).await.unwrap();
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 11);
    // A rerun finds the leftover in its way and says how to clear it.
    let blocked = tenancy
        .move_tenant(&su, a.id(), Placement::OwnDatabase)
        .await;
    assert!(
        matches!(&blocked, Err(Error::MoveRefused { reason, .. }) if reason.contains("cleanup_orphans")),
        "{blocked:?}"
    );
    assert!(registry_databases(&mut conn).await.contains(&leftover));

    // The cleanup drops the leftover, and never the registered home of another tenant.
    let dropped = tenancy.cleanup_orphans(&su).await.unwrap();
    assert_eq!(dropped, [leftover]);
    assert_eq!(
        registry_databases(&mut conn).await,
        std::slice::from_ref(&own_db)
    );
    let hooli = tenancy.resolve_slug("hooli").await.unwrap();
    assert_eq!(Spin::repo().count(&hooli).await.unwrap(), 0);

    // Then the move runs through, and its database is kept by the next cleanup.
    let moved = tenancy
        .move_tenant(&su, a.id(), Placement::OwnDatabase)
        .await
        .unwrap();
    assert_eq!(moved.rows(), 12);
    assert!(tenancy.cleanup_orphans(&su).await.unwrap().is_empty());
    assert_eq!(registry_databases(&mut conn).await.len(), 2);
}

/// The ids of tenant `id`'s spins in `table`, in database `database` (`None`: the registry's).
async fn ids_in(
    t: &TestTenancy,
    database: Option<&str>,
    table: &str,
    id: TenantId,
) -> std::collections::BTreeSet<uuid::Uuid> {
    let mut conn = match database {
        Some(name) => connect_to(name).await,
        None => t.connect().await,
    };
    let ids = spin_ids(&mut conn, table, id).await;
    conn.close().await.unwrap();
    ids
}

#[tenancy::test(migrations = "tests/migrations")]
async fn own_database_tenants_move_out_to_shared_tables_and_own_schemas(t: TestTenancy) {
    let tenancy = t.tenancy().clone();
    let h = tenant(&tenancy, "hooli", Placement::OwnDatabase).await;
    let p = tenant(&tenancy, "piper", Placement::OwnDatabase).await;
    let g = tenant(&tenancy, "globex", Placement::SharedTable).await;
    fill(&h, 40).await;
    fill(&p, 15).await;
    fill(&g, 3).await;
    let mut conn = t.connect().await;
    let (h_db, p_db) = (
        registry_row(&mut conn, h.id()).await.2.unwrap(),
        registry_row(&mut conn, p.id()).await.2.unwrap(),
    );
    let h_before = ids_in(&t, Some(&h_db), "public.spins", h.id()).await;
    let p_before = ids_in(&t, Some(&p_db), "public.spins", p.id()).await;
    let su = tenancy.superuser("ops", "out of databases").await.unwrap();

    let moved = tenancy
        .move_tenant(&su, h.id(), Placement::SharedTable)
        .await
        .unwrap();
    assert_eq!(
        (moved.from, moved.to, moved.rows()),
        (Placement::OwnDatabase, Placement::SharedTable, 41)
    );
    assert_eq!(moved.old_copy.database.as_deref(), Some(h_db.as_str()));
    assert_eq!(
        registry_row(&mut conn, h.id()).await,
        ("shared_table".into(), None, None, "primary".into())
    );
    assert_eq!(ids_in(&t, None, "public.spins", h.id()).await, h_before);
    // The old database is kept, sealed, and the cleanup of leftovers leaves it.
    assert!(sealed(&h_db).await);
    assert_eq!(
        ids_in(&t, Some(&h_db), "public.spins", h.id()).await,
        h_before
    );
    assert!(tenancy.cleanup_orphans(&su).await.unwrap().is_empty());
    // A context of before the move cannot write to it: the seal refuses.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spinner = Spinner::repo().query().fetch_all(&h).await;
    let stale = Spin::repo()
        .insert(&h, &new_spin(uuid::Uuid::nil(), 1))
        .await;
    assert!(
        matches!(
            stale,
            Err(Error::ContextRevoked { .. } | Error::TenantMoved(_))
        ),
        "{stale:?} {spinner:?}"
    );
    let h = tenancy.resolve_slug("hooli").await.unwrap();
    assert_eq!(h.placement(), Placement::SharedTable);
    assert_eq!(Spin::repo().count(&h).await.unwrap(), 40);

    let moved = tenancy
        .move_tenant(&su, p.id(), Placement::OwnSchema)
        .await
        .unwrap();
    assert_eq!(moved.schema.as_deref(), Some("t_piper"));
    assert_eq!(ids_in(&t, None, "t_piper.spins", p.id()).await, p_before);
    let joined: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM t_piper.spins s JOIN t_piper.spinners x \
         ON (x.tenant_id, x.id) = (s.tenant_id, s.spinner_id)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(joined, 15);
    let detail: String = sqlx::query_scalar(
        "SELECT detail FROM tenancy.audit_log WHERE action = 'tenant.move' AND $1 = ANY (tenant_ids)",
    )
    .bind(p.id().as_uuid())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(detail.contains(&p_db), "{detail}");

    // Purging the old copies drops the old databases, and nothing else.
    for (id, db) in [(h.id(), &h_db), (p.id(), &p_db)] {
        let purged = tenancy.purge_old_copy(&su, id).await.unwrap();
        assert_eq!(purged, [Purged::Database(db.clone())]);
    }
    assert!(registry_databases(&mut conn).await.is_empty());
    assert_eq!(Spin::repo().count(&h).await.unwrap(), 40);
    let p = tenancy.resolve_slug("piper").await.unwrap();
    assert_eq!(Spin::repo().count(&p).await.unwrap(), 15);
    assert_eq!(ids_in(&t, None, "public.spins", g.id()).await.len(), 3);
}

/// Moves acme from `from` to `to` while two handles write to it (and one to globex), then
/// checks that every acknowledged write is in the new copy and the old holds only what was
/// copied, and that a handle whose cache is behind cannot write to the old copy.
async fn move_under_writers(t: &TestTenancy, from: Placement, to: Placement) {
    let tenancy = t.tenancy().clone();
    let second = Tenancy::builder()
        .max_connections(4)
        .tenant_migrations(Migrations::from_dir("tests/migrations/tenant").unwrap())
        .connect(t.url())
        .await
        .unwrap();
    let behind = Tenancy::builder()
        .max_connections(2)
        .listen_for_changes(false)
        .tenant_migrations(Migrations::from_dir("tests/migrations/tenant").unwrap())
        .connect(t.url())
        .await
        .unwrap();
    let mut load = UnderWriters::start(&tenancy, &second, &behind, from, (1000, 20)).await;
    let (a, b, counter_a) = (load.a.clone(), load.b.clone(), load.counter_a);
    let mut conn = t.connect().await;
    let old_db = registry_row(&mut conn, a.id()).await.2;
    let (moved, acked) = load.move_to(&tenancy, to).await;
    let late = load.stale_writes_are_refused().await;

    let new_db = moved.database.as_deref();
    let new_copy = ids_in(t, new_db, "public.spins", a.id()).await;
    let old_copy = ids_in(t, old_db.as_deref(), "public.spins", a.id()).await;
    let (a_writers, b_writer) = (&acked[..2], &acked[2]);
    nothing_acknowledged_is_lost(a_writers, &moved, &new_copy, &old_copy, late.id);
    assert!(
        new_copy.len() > old_copy.len(),
        "writes went on in the new home"
    );
    let mut new_conn = match new_db {
        Some(name) => connect_to(name).await,
        None => t.connect().await,
    };
    let counter: i32 = sqlx::query_scalar("SELECT duration FROM public.spins WHERE id = $1")
        .bind(counter_a)
        .fetch_one(&mut new_conn)
        .await
        .unwrap();
    let last: Vec<i32> = a_writers.iter().filter_map(|w| w.counter).collect();
    assert!(last.contains(&counter), "{counter} not among {last:?}");
    assert_eq!(b_writer.refused, 0, "{b_writer:?}");
    let b_rows = spin_ids(&mut conn, "public.spins", b.id()).await;
    assert_eq!(b_rows.len(), 21 + b_writer.ids.len());
    new_conn.close().await.unwrap();
    second.close().await;
    behind.close().await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn every_write_acknowledged_during_a_move_into_a_database_is_in_it(t: TestTenancy) {
    move_under_writers(&t, Placement::SharedTable, Placement::OwnDatabase).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn every_write_acknowledged_during_a_move_out_of_a_database_is_in_the_new_home(
    t: TestTenancy,
) {
    move_under_writers(&t, Placement::OwnDatabase, Placement::SharedTable).await;
}

#[tenancy::test(migrations = "tests/migrations")]
async fn a_move_out_of_a_database_cut_off_after_its_seal_is_finished_by_a_rerun(t: TestTenancy) {
    let tenancy = t.tenancy().clone();
    let a = tenant(&tenancy, "acme", Placement::OwnDatabase).await;
    let s = fill(&a, 10).await;
    let su = Arc::new(
        tenancy
            .superuser("ops", "crash after the seal")
            .await
            .unwrap(),
    );
    let mut conn = t.connect().await;
    let db = registry_row(&mut conn, a.id()).await.2.unwrap();

    let mover = spawn_move(
        &tenancy,
        &su,
        a.id(),
        Placement::OwnSchema,
        MoveOptions::default().hold_before_switch(Duration::from_secs(30)),
    );
    let db_name = db.clone();
    tenancy::testing::eventually(
        "the move sealed the old copy",
        Duration::from_secs(30),
        async || sealed(&db_name).await,
    )
    .await;
    // The registry transaction dies between the seal and the switch.
    let pid: i32 = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND state = 'idle in transaction' AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(mover.await.unwrap().is_err());

    // Sealed on its old home: the rows are whole there, writes are refused as retryable.
    assert_eq!(registry_row(&mut conn, a.id()).await.0, "own_database");
    let fresh = tenancy.resolve_slug("acme").await.unwrap();
    assert_eq!(Spin::repo().count(&fresh).await.unwrap(), 10);
    let refused = Spin::repo().insert(&fresh, &new_spin(s.id, 1)).await;
    assert!(
        matches!(&refused, Err(e @ Error::TenantMoved(_)) if e.is_retryable()),
        "{refused:?}"
    );
    // Running the move again finishes it, with every row.
    let moved = tenancy
        .move_tenant(&su, a.id(), Placement::OwnSchema)
        .await
        .unwrap();
    assert_eq!(moved.rows(), 11);
    let a = tenancy.resolve_slug("acme").await.unwrap();
    Spin::repo().insert(&a, &new_spin(s.id, 2)).await.unwrap();
    assert_eq!(Spin::repo().count(&a).await.unwrap(), 11);
}

/// HOLDS: a migration of an own-database tenant's database in flight when a move out of it
/// begins (its backfill writes past the write fence) holds the move back until it commits,
/// and its change is in the new home. The move takes the migrations' lock in the tenant
/// database before it copies; without it the move copied the rows the backfill had not yet
/// committed, and the backfill landed in the sealed old copy only.
#[tenancy::test(migrations = "tests/migrations")]
async fn a_move_out_of_a_database_waits_for_a_migration_of_it_and_keeps_its_backfill(
    t: TestTenancy,
) {
    let tenancy = t.tenancy().clone();
    let a = tenant(&tenancy, "acme", Placement::OwnDatabase).await;
    fill(&a, 5).await;
    let su = Arc::new(
        tenancy
            .superuser("ops", "migration and move")
            .await
            .unwrap(),
    );
    let mut conn = t.connect().await;
    let db: String = sqlx::query_scalar("SELECT database_name FROM tenancy.tenants WHERE id = $1")
        .bind(a.id().as_uuid())
        .fetch_one(&mut conn)
        .await
        .unwrap();
    // A migration as `migrate_tenants` runs one: its lock taken, a backfill not yet committed.
    let mut migration = connect_to(&db).await;
    sqlx::raw_sql(
        "BEGIN; \
         SELECT pg_advisory_xact_lock(hashtext('tenancy.migrate'), hashtext('schema:public')); \
         UPDATE public.spins SET duration = duration + 1000",
    )
    .execute(&mut migration)
    .await
    .unwrap();
    let mover = spawn_move(
        &tenancy,
        &su,
        a.id(),
        Placement::SharedTable,
        MoveOptions::default(),
    );
    let mut watch = connect_to(&db).await;
    wait_for_an_advisory_lock_waiter(&mut watch, "the move waits for the migration").await;
    assert!(!mover.is_finished());
    sqlx::raw_sql("COMMIT")
        .execute(&mut migration)
        .await
        .unwrap();
    assert_eq!(mover.await.unwrap().unwrap().rows(), 6);
    let durations: Vec<i32> =
        sqlx::query_scalar("SELECT duration FROM public.spins WHERE tenant_id = $1 ORDER BY 1")
            .bind(a.id().as_uuid())
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(durations, [1000, 1001, 1002, 1003, 1004]);
}
