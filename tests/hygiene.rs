//! Connection hygiene: no tenant state survives on a pooled connection. A pool of one
//! connection serves tenants in turn, and after a transaction that is dropped, fails, is
//! cancelled mid-statement, panics, or loses its backend, nothing is committed and the next
//! borrower (another tenant) gets a clean session: the default search path, no open
//! transaction, its own rows only.

mod common;

use std::time::{Duration, Instant};

use common::models::*;
use common::{SPINNER_SCHEMA, TestDb};
use tenancy::{Error, NewTenant, Scope, Tenancy, TenantCtx};
use uuid::Uuid;

struct World {
    db: TestDb,
    tenancy: Tenancy,
    a: TenantCtx,
    b: TenantCtx,
    a_spinner: Uuid,
    b_spinner: Uuid,
    /// The server's default `search_path`, from a connection of our own.
    default_path: String,
    /// The pool of one connection the tenancy runs on, to read its session's settings (raw SQL
    /// may not).
    one: sqlx::PgPool,
}

/// Two tenants, A with 3 spins and B with 2, served by a pool of ONE connection.
async fn world(name: &str) -> World {
    let db = TestDb::new(name).await;
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    let tenancy = Tenancy::builder().from_pool(one.clone()).await.unwrap();
    db.exec(SPINNER_SCHEMA).await;
    let mut spinners = Vec::new();
    for (slug, n) in [("hyg-a", 3), ("hyg-b", 2)] {
        tenancy
            .create_tenant(NewTenant::new(slug, slug))
            .await
            .unwrap();
        let ctx = tenancy.resolve_slug(slug).await.unwrap();
        let s = Spinner::repo()
            .insert(
                &ctx,
                &NewSpinner {
                    id: Uuid::new_v4(),
                    name: slug.into(),
                    color: None,
                },
            )
            .await
            .unwrap();
        for i in 0..n {
            Spin::repo()
                .insert(&ctx, &new_spin(s.id, i, slug))
                .await
                .unwrap();
        }
        spinners.push(s.id);
    }
    let a = tenancy.resolve_slug("hyg-a").await.unwrap();
    let b = tenancy.resolve_slug("hyg-b").await.unwrap();
    let mut conn = db.connect().await;
    let default_path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    World {
        db,
        tenancy,
        a,
        b,
        a_spinner: spinners[0],
        b_spinner: spinners[1],
        default_path,
        one,
    }
}

fn new_spin(spinner_id: Uuid, duration: i32, note: &str) -> NewSpin {
    NewSpin {
        id: Uuid::new_v4(),
        spinner_id,
        duration,
        note: Some(note.to_owned()),
    }
}

/// What a statement run in a scope sees of its session.
#[derive(Debug, PartialEq)]
struct Session {
    pid: i32,
    /// The session's search path, when the connection is not held by a transaction.
    search_path: Option<String>,
    /// The current transaction's id, if it has written anything.
    xid: Option<i64>,
    /// The spins the scope's tenant sees.
    spins: i64,
}

async fn probe<'s>(w: &World, scope: impl Scope<'s>) -> tenancy::Result<Session> {
    let (pid, spins): (i32, i64) = Spin::repo()
        .raw_as("SELECT pg_backend_pid(), (SELECT count(*) FROM {spins})")
        .fetch_one(scope)
        .await?;
    // Raw SQL reads no settings and no transaction ids: the server's view of the backend, and
    // the session itself when the one connection is free.
    let mut conn = w.db.connect().await;
    let xid: Option<i64> =
        sqlx::query_scalar("SELECT backend_xid::text::bigint FROM pg_stat_activity WHERE pid = $1")
            .bind(pid)
            .fetch_optional(&mut conn)
            .await
            .unwrap()
            .flatten();
    // The pool takes the connection back in the background; a transaction holds it longer.
    let free = tokio::time::timeout(Duration::from_secs(1), w.one.acquire()).await;
    let search_path = match free.ok().and_then(Result::ok) {
        Some(mut session) => Some(
            sqlx::query_scalar("SHOW search_path")
                .fetch_one(&mut *session)
                .await
                .unwrap(),
        ),
        None => None,
    };
    Ok(Session {
        pid,
        search_path,
        xid,
        spins,
    })
}

/// Committed spins per tenant, seen from a connection of our own.
async fn committed(db: &TestDb, ctx: &TenantCtx) -> Vec<(i32, Option<String>)> {
    let mut conn = db.connect().await;
    sqlx::query_as("SELECT duration, note FROM spins WHERE tenant_id = $1 ORDER BY duration, note")
        .bind(ctx.id().as_uuid())
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

/// The server's view of a backend: `(state, has an xid, in a transaction)`; waits for it to be
/// idle (the pool pings a returned connection in the background), up to a few seconds.
async fn backend_state(db: &TestDb, pid: i32) -> Option<(String, bool, bool)> {
    let mut conn = db.connect().await;
    let mut last = None;
    for _ in 0..50 {
        last = sqlx::query_as(
            "SELECT state, backend_xid IS NOT NULL, xact_start IS NOT NULL \
             FROM pg_stat_activity WHERE pid = $1",
        )
        .bind(pid)
        .fetch_optional(&mut conn)
        .await
        .unwrap();
        if matches!(&last, Some((s, _, _)) if s == "idle") || last.is_none() {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

/// The next borrower, tenant B, finds a clean session on the one connection: the default search
/// path, no transaction, its own rows; what it writes is committed at once; and the server sees
/// the backend idle, outside any transaction.
async fn assert_clean_for_b(w: &World, b_spins: i64) -> i32 {
    let s = probe(w, &w.b).await.unwrap();
    assert_eq!(
        s,
        Session {
            pid: s.pid,
            search_path: Some(w.default_path.clone()),
            xid: None,
            spins: b_spins,
        }
    );
    let row = Spin::repo()
        .insert(&w.b, &new_spin(w.b_spinner, 1000, "b after"))
        .await
        .unwrap();
    assert!(
        committed(&w.db, &w.b)
            .await
            .contains(&(1000, Some("b after".into()))),
        "B's write is not committed: it ran inside a transaction left open"
    );
    assert!(Spin::repo().delete(&w.b, row.id).await.unwrap());
    assert_eq!(
        backend_state(&w.db, s.pid).await,
        Some(("idle".into(), false, false)),
        "the pooled backend is not idle outside a transaction"
    );
    s.pid
}

#[tokio::test]
async fn one_connection_serves_tenants_in_turn() {
    let w = world("hyg_turns").await;
    let first = probe(&w, &w.a).await.unwrap();
    // Spins each tenant has: A, B.
    let mut expected = [3_i64, 2];
    for round in 0..3 {
        for who in [0, 1, 0] {
            let (ctx, spinner) = if who == 0 {
                (&w.a, w.a_spinner)
            } else {
                (&w.b, w.b_spinner)
            };
            let s = probe(&w, ctx).await.unwrap();
            assert_eq!(
                s,
                Session {
                    pid: first.pid,
                    search_path: Some(w.default_path.clone()),
                    xid: None,
                    spins: expected[who],
                },
                "round {round}, {}",
                ctx.slug()
            );
            let rows = Spin::repo().query().fetch_all(ctx).await.unwrap();
            assert_eq!(rows.len() as i64, expected[who]);
            assert!(
                rows.iter().all(|r| r.spinner_id == spinner),
                "{}: another tenant's row",
                ctx.slug()
            );
            // A committed transaction in turn, too.
            let mut tx = ctx.begin().await.unwrap();
            assert_eq!(probe(&w, &mut tx).await.unwrap().pid, first.pid);
            Spin::repo()
                .insert(&mut tx, &new_spin(spinner, 100 + round, ctx.slug()))
                .await
                .unwrap();
            let inside = probe(&w, &mut tx).await.unwrap();
            assert!(inside.xid.is_some());
            assert_eq!(inside.spins, expected[who] + 1);
            tx.commit().await.unwrap();
            expected[who] += 1;
        }
    }
    assert_eq!(expected, [9, 5]);
    assert_eq!(committed(&w.db, &w.a).await.len(), 9);
    assert_eq!(committed(&w.db, &w.b).await.len(), 5);
    assert_eq!(assert_clean_for_b(&w, 5).await, first.pid);
    let _ = &w.tenancy;
}

#[tokio::test]
async fn a_dropped_or_failed_transaction_leaves_nothing() {
    let w = world("hyg_dropped").await;
    let before_a = committed(&w.db, &w.a).await;

    // Dropped mid-way, with writes.
    {
        let mut tx = w.a.begin().await.unwrap();
        for i in 0..3 {
            Spin::repo()
                .insert(&mut tx, &new_spin(w.a_spinner, 500 + i, "uncommitted"))
                .await
                .unwrap();
        }
        let inside = probe(&w, &mut tx).await.unwrap();
        assert!(inside.xid.is_some());
        assert_eq!(inside.spins, 6);
    }
    assert_clean_for_b(&w, 2).await;
    assert_eq!(committed(&w.db, &w.a).await, before_a);

    // Failed (a foreign key violation aborts it), then dropped.
    {
        let mut tx = w.a.begin().await.unwrap();
        Spin::repo()
            .insert(&mut tx, &new_spin(w.a_spinner, 600, "before the error"))
            .await
            .unwrap();
        let e = Spin::repo()
            .insert(&mut tx, &new_spin(w.b_spinner, 601, "B's spinner"))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Database(_)), "{e:?}");
        // The transaction is aborted: everything else fails until it ends.
        assert!(matches!(probe(&w, &mut tx).await, Err(Error::Database(_))));
    }
    assert_clean_for_b(&w, 2).await;
    assert_eq!(committed(&w.db, &w.a).await, before_a);

    // Rolled back explicitly, then A again on the same connection.
    let mut tx = w.a.begin().await.unwrap();
    Spin::repo()
        .insert(&mut tx, &new_spin(w.a_spinner, 700, "rolled back"))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let s = probe(&w, &w.a).await.unwrap();
    assert_eq!((s.xid, s.spins), (None, 3));
    assert_eq!(committed(&w.db, &w.a).await, before_a);
    let _ = &w.tenancy;
}

/// A caller that goes on after a failed statement and commits must not be told `Ok`: the
/// server aborted the transaction at the failure, and a bare `COMMIT` answers `ROLLBACK`.
#[tokio::test]
async fn committing_after_a_failed_statement_is_an_error_not_a_silent_loss() {
    let w = world("hyg_commit_aborted").await;
    let before_a = committed(&w.db, &w.a).await;
    let mut tx = w.a.begin().await.unwrap();
    Spin::repo()
        .insert(
            &mut tx,
            &new_spin(w.a_spinner, 800, "acknowledged, then lost"),
        )
        .await
        .unwrap();
    // B's spinner is not A's: the foreign key refuses it, and PostgreSQL aborts the transaction.
    Spin::repo()
        .insert(&mut tx, &new_spin(w.b_spinner, 801, "refused"))
        .await
        .unwrap_err();
    let e = tx.commit().await.unwrap_err();
    assert!(matches!(e, Error::TransactionAborted), "{e:?}");
    assert_eq!(committed(&w.db, &w.a).await, before_a);
    // The connection was rolled back and kept: the next borrower finds it clean.
    assert_clean_for_b(&w, 2).await;

    // A clean transaction still commits.
    let mut tx = w.a.begin().await.unwrap();
    Spin::repo()
        .insert(&mut tx, &new_spin(w.a_spinner, 802, "kept"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(committed(&w.db, &w.a).await.len(), before_a.len() + 1);
}

#[tokio::test]
async fn a_cancelled_transaction_is_rolled_back_and_the_connection_reused() {
    let w = world("hyg_cancelled").await;
    let before_a = committed(&w.db, &w.a).await;
    let pid = probe(&w, &w.a).await.unwrap().pid;
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_millis(300), async {
        let mut tx = w.a.begin().await?;
        Spin::repo()
            .insert(&mut tx, &new_spin(w.a_spinner, 800, "cancelled"))
            .await?;
        let _: (String, i64) = Spin::repo()
            .raw_as("SELECT pg_sleep(2)::text, (SELECT count(*) FROM {spins})")
            .fetch_one(&mut tx)
            .await?;
        tx.commit().await
    })
    .await;
    assert!(r.is_err(), "the slow statement was not cancelled: {r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // The next borrower waits for the connection to be cleaned (the server finishes the sleep,
    // then the rollback), and gets a clean session on the same backend or a new one.
    let got = assert_clean_for_b(&w, 2).await;
    assert_eq!(
        committed(&w.db, &w.a).await,
        before_a,
        "the cancelled transaction committed"
    );
    if got == pid {
        assert_eq!(
            backend_state(&w.db, pid).await.map(|s| s.0),
            Some("idle".into())
        );
    }
    let s = probe(&w, &w.a).await.unwrap();
    assert_eq!((s.xid, s.spins), (None, 3));

    // Cancelled while waiting for the pool: the connection is not leaked.
    let mut tx = w.b.begin().await.unwrap();
    assert_eq!(probe(&w, &mut tx).await.unwrap().spins, 2);
    let waiting = tokio::time::timeout(Duration::from_millis(100), probe(&w, &w.a)).await;
    assert!(
        waiting.is_err(),
        "a second connection was handed out from a pool of one"
    );
    tx.rollback().await.unwrap();
    assert_eq!(probe(&w, &w.a).await.unwrap().spins, 3);
    let _ = &w.tenancy;
}

#[tokio::test]
async fn a_panic_while_holding_a_transaction_rolls_it_back() {
    let w = std::sync::Arc::new(world("hyg_panic").await);
    let before_a = committed(&w.db, &w.a).await;
    let a = w.a.clone();
    let spinner = w.a_spinner;
    let in_task = w.clone();
    let task = tokio::spawn(async move {
        let mut tx = a.begin().await.unwrap();
        Spin::repo()
            .insert(&mut tx, &new_spin(spinner, 900, "panicked"))
            .await
            .unwrap();
        assert!(probe(&in_task, &mut tx).await.unwrap().xid.is_some());
        panic!("deliberate panic while holding a TenantTx (expected in this test)");
    });
    let e = task.await.unwrap_err();
    assert!(e.is_panic());
    assert_clean_for_b(&w, 2).await;
    assert_eq!(
        committed(&w.db, &w.a).await,
        before_a,
        "the panicked transaction committed"
    );
    assert_eq!(probe(&w, &w.a).await.unwrap().spins, 3);
    let _ = &w.tenancy;
}

#[tokio::test]
async fn a_terminated_backend_fails_the_transaction_and_the_pool_recovers() {
    let w = world("hyg_terminated").await;
    let before_a = committed(&w.db, &w.a).await;
    let mut admin = w.db.connect().await;

    // Killed while A's transaction is open.
    let mut tx = w.a.begin().await.unwrap();
    Spin::repo()
        .insert(&mut tx, &new_spin(w.a_spinner, 950, "lost"))
        .await
        .unwrap();
    let pid = probe(&w, &mut tx).await.unwrap().pid;
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(killed);
    let r = Spin::repo()
        .insert(&mut tx, &new_spin(w.a_spinner, 951, "after the kill"))
        .await;
    assert!(matches!(r, Err(Error::Database(_))), "{r:?}");
    assert!(matches!(probe(&w, &mut tx).await, Err(Error::Database(_))));
    assert!(matches!(tx.commit().await, Err(Error::Database(_))));
    assert_eq!(committed(&w.db, &w.a).await, before_a);

    // The pool replaces the broken connection for the next tenant.
    let fresh = assert_clean_for_b(&w, 2).await;
    assert_ne!(fresh, pid);

    // Killed while idle in the pool: the next borrower gets a working connection.
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(fresh)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(killed);
    let s = probe(&w, &w.a).await.unwrap();
    assert_ne!(s.pid, fresh);
    assert_eq!(
        (s.xid, s.spins, s.search_path),
        (None, 3, Some(w.default_path.clone()))
    );
    assert_clean_for_b(&w, 2).await;
    assert_eq!(committed(&w.db, &w.a).await, before_a);
    let _ = &w.tenancy;
}

// ---- Cancellation at every await ---------------------------------------------------------------
//
// The tests above cancel at one chosen moment. Those below cancel a unit of work at each of its
// await points in turn: `cancel_at(k, ..)` drops the future at its k-th suspension, for k = 1, 2,
// ... until the future finishes first. After each cancellation the next borrower of the pool
// (SQL written around the library, on the same one-connection pool) must find no open
// transaction, no tenancy setting and the default search path, and another tenant's
// acknowledged write must survive whatever the cancelled unit later does.

use std::future::Future;
use std::pin::Pin;

use common::{Rls, cancel_at};
use futures_util::StreamExt;
use sqlx::PgPool;
use tenancy::{Migrations, Placement, StatementMode, Superuser, rls};

/// Two shared-table tenants, A (3 spins) and B (2), as the application role (not a superuser,
/// so row-level security applies when on), on a pool of ONE connection that the test also
/// borrows from directly.
struct Cancel {
    rls: Rls,
    pool: PgPool,
    tenancy: Tenancy,
    su: Superuser,
    a: TenantCtx,
    b: TenantCtx,
    a_spinner: Uuid,
    b_spinner: Uuid,
    default_path: String,
    rls_on: bool,
}

async fn cancel_world(test: &str, rls_on: bool) -> Cancel {
    cancel_world_in(test, rls_on, StatementMode::Cached).await
}

async fn cancel_world_in(test: &str, rls_on: bool, mode: StatementMode) -> Cancel {
    let rls = Rls::new(test).await;
    let pool = rls.app_pool(1).await;
    let mut list = vec![tenancy::Migration::new(1, "spinner app", SPINNER_SCHEMA)];
    if rls_on {
        let policies = format!(
            "{}{}",
            rls::policy_sql("spinners", "tenant_id").unwrap(),
            rls::policy_sql("spins", "tenant_id").unwrap()
        );
        list.push(tenancy::Migration::new(2, "row-level security", policies));
    }
    let tenancy = Tenancy::builder()
        .row_level_security(rls_on)
        .statement_mode(mode)
        .tenant_migrations(Migrations::from_list(list).unwrap())
        .from_pool(pool.clone())
        .await
        .unwrap();
    common::migrate_all(&tenancy).await;
    let ctxs = common::create_tenants(
        &tenancy,
        &[
            ("cancel-a", Placement::SharedTable),
            ("cancel-b", Placement::SharedTable),
        ],
    )
    .await;
    let mut spinners = Vec::new();
    for (ctx, n) in ctxs.iter().zip([3, 2]) {
        let s = Spinner::repo()
            .insert(
                ctx,
                &NewSpinner {
                    id: Uuid::new_v4(),
                    name: ctx.slug().into(),
                    color: None,
                },
            )
            .await
            .unwrap();
        for i in 0..n {
            Spin::repo()
                .insert(ctx, &new_spin(s.id, i, ctx.slug()))
                .await
                .unwrap();
        }
        spinners.push(s.id);
    }
    let default_path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(&mut rls.app_conn().await)
        .await
        .unwrap();
    let su = tenancy.superuser("test", "cancellation").await.unwrap();
    Cancel {
        rls,
        pool,
        tenancy,
        su,
        a: ctxs[0].clone(),
        b: ctxs[1].clone(),
        a_spinner: spinners[0],
        b_spinner: spinners[1],
        default_path,
        rls_on,
    }
}

/// What SQL written around the library sees on the next borrow from the pool.
#[derive(Debug, PartialEq)]
struct NextBorrower {
    in_transaction: bool,
    tenant_id: Option<String>,
    all_tenants: Option<String>,
    search_path: String,
    /// Spins visible without a tenant set: none with row-level security on, all 5 without.
    spins: i64,
}

async fn next_borrower(pool: &PgPool) -> NextBorrower {
    use sqlx::Row;
    let mut conn = pool.acquire().await.unwrap();
    // One simple-query message, so that outside a transaction the statement starts the
    // transaction it runs in (`now()` is the transaction's start, `statement_timestamp()` the
    // message's).
    let row = sqlx::raw_sql(
        "SELECT now() <> statement_timestamp(), \
                NULLIF(current_setting('tenancy.tenant_id', true), ''), \
                NULLIF(current_setting('tenancy.all_tenants', true), ''), \
                current_setting('search_path'), \
                (SELECT count(*) FROM spins WHERE note IN ('cancel-a', 'cancel-b'))",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    NextBorrower {
        in_transaction: row.get(0),
        tenant_id: row.get(1),
        all_tenants: row.get(2),
        search_path: row.get(3),
        spins: row.get(4),
    }
}

impl Cancel {
    /// The next borrower finds a clean session; then B writes through the library, A runs and
    /// rolls back a transaction on the same connection, and B's acknowledged write is still
    /// there, seen from a connection of our own.
    async fn assert_clean(&self, what: &str, k: usize) {
        assert_eq!(
            next_borrower(&self.pool).await,
            NextBorrower {
                in_transaction: false,
                tenant_id: None,
                all_tenants: None,
                search_path: self.default_path.clone(),
                spins: if self.rls_on { 0 } else { 5 },
            },
            "after cancelling {what} at its await #{k}"
        );
        let note = format!("b after {what} #{k}");
        let row = Spin::repo()
            .insert(&self.b, &new_spin(self.b_spinner, 2000, &note))
            .await
            .unwrap();
        let mut tx = self.a.begin().await.unwrap();
        Spin::repo()
            .insert(&mut tx, &new_spin(self.a_spinner, 2001, "a, rolled back"))
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        // As a superuser, past the policy: B's row, committed, still B's.
        let kept: Option<(Uuid, Option<String>)> =
            sqlx::query_as("SELECT tenant_id, note FROM spins WHERE id = $1")
                .bind(row.id)
                .fetch_optional(&mut self.rls.db.connect().await)
                .await
                .unwrap();
        assert_eq!(
            kept,
            Some((self.b.id().as_uuid(), Some(note))),
            "B's acknowledged write was lost after cancelling {what} at its await #{k}"
        );
        assert!(Spin::repo().delete(&self.b, row.id).await.unwrap());
    }
}

type Unit<'a> = Pin<Box<dyn Future<Output = tenancy::Result<()>> + Send + 'a>>;

/// The units of work the sweeps cancel.
const UNITS: [&str; 9] = [
    "begin",
    "a transaction",
    "a statement",
    "a read",
    "a read the server refuses",
    "a report",
    "an aggregate",
    "a stream",
    "a stream read in part",
];

fn unit<'a>(w: &'a Cancel, what: &str) -> Unit<'a> {
    let spin = new_spin(w.a_spinner, 3000, "a, cancelled");
    match what {
        "begin" => Box::pin(async move { w.a.begin().await?.commit().await }),
        "a transaction" => Box::pin(async move {
            let mut tx = w.a.begin().await?;
            Spin::repo().insert(&mut tx, &spin).await?;
            Spin::repo().count(&mut tx).await?;
            tx.commit().await
        }),
        "a statement" => Box::pin(async move { Spin::repo().insert(&w.a, &spin).await.map(drop) }),
        "a read" => Box::pin(async move { Spin::repo().query().fetch_all(&w.a).await.map(drop) }),
        // Division by zero: the server fails the statement after it began.
        "a read the server refuses" => Box::pin(async move {
            match Spin::repo()
                .raw_as::<(i32,)>("SELECT s.duration / 0 FROM {spins} s")
                .fetch_all(&w.a)
                .await
            {
                Err(Error::Database(_)) => Ok(()),
                other => panic!("expected division by zero: {other:?}"),
            }
        }),
        "a report" => {
            Box::pin(async move { Spin::repo().report().fetch_all(&w.su).await.map(drop) })
        }
        "an aggregate" => Box::pin(async move {
            Spin::repo()
                .report()
                .aggregate(tenancy::Agg::count())
                .fetch(&w.su)
                .await
                .map(drop)
        }),
        "a stream" => Box::pin(async move {
            let mut rows = Spin::repo().query().fetch(&w.a);
            while let Some(row) = rows.next().await {
                row?;
            }
            Ok(())
        }),
        "a stream read in part" => Box::pin(async move {
            let mut rows = Spin::repo().query().fetch(&w.a);
            rows.next().await.transpose()?;
            Ok(())
        }),
        other => unreachable!("no unit {other}"),
    }
}

/// Cancels `what` at its first await, then its second, and so on until it finishes first,
/// checking the connection after each.
async fn sweep(w: &Cancel, what: &str) {
    for k in 1..=500 {
        let done = cancel_at(k, unit(w, what)).await;
        w.assert_clean(what, k).await;
        if let Some(out) = done {
            out.unwrap();
            assert!(k > 1, "{what} never waited: nothing was cancelled");
            return;
        }
    }
    panic!("{what} did not finish within 500 awaits");
}

#[tokio::test]
async fn cancelling_any_unit_at_any_await_leaves_no_tenant_state_with_row_level_security() {
    let w = cancel_world("hyg_cancel_rls", true).await;
    for what in UNITS {
        sweep(&w, what).await;
    }
    let _ = &w.tenancy;
}

#[tokio::test]
async fn cancelling_any_unit_at_any_await_loses_no_other_tenants_write() {
    let w = cancel_world("hyg_cancel_plain", false).await;
    for what in UNITS {
        sweep(&w, what).await;
    }
    let _ = &w.tenancy;
}

/// Unnamed statements run in a transaction of their own (reads in a read-only one whose
/// rollback is queued): cancelled anywhere, it leaves nothing either.
#[tokio::test]
async fn cancelling_any_unit_at_any_await_leaves_nothing_with_unnamed_statements() {
    let w = cancel_world_in("hyg_cancel_unnamed", false, StatementMode::Unnamed).await;
    for what in UNITS {
        sweep(&w, what).await;
    }
    let _ = &w.tenancy;
}

// ---- Prepared statements after a migration ----------------------------------------------------

/// `SELECT s.*` for `ctx` on every connection of a pool of 4: with `in_tx`, once in a
/// transaction on each connection (four held at once); then eight times on `&TenantCtx`, all
/// at once.
async fn select_star_everywhere(ctx: &TenantCtx, in_tx: bool) -> Result<(), Error> {
    let select = || Spin::repo().raw("SELECT s.* FROM {spins} s ORDER BY s.duration");
    let mut txs = Vec::new();
    for _ in 0..if in_tx { 4 } else { 0 } {
        txs.push(ctx.begin().await?);
    }
    for tx in &mut txs {
        assert_eq!(select().fetch_all(tx).await?.len(), 1);
    }
    for tx in txs {
        tx.commit().await?;
    }
    let rows = futures_util::future::join_all((0..8).map(|_| select().fetch_all(ctx))).await;
    for r in rows {
        assert_eq!(r?.len(), 1);
    }
    Ok(())
}

#[tokio::test]
async fn a_migration_that_changes_a_table_does_not_break_warm_connections() {
    let db = TestDb::new("hyg_replan").await;
    let v1 = tenancy::Migration::new(1, "spinner app", SPINNER_SCHEMA);
    let v2 = tenancy::Migration::new(
        2,
        "a column",
        "ALTER TABLE spins ADD COLUMN extra int NOT NULL DEFAULT 7",
    );
    // Two handles, as two processes would have: the first knows only v1; the second runs v2.
    let old = Tenancy::builder()
        .max_connections(4)
        .tenant_migrations(Migrations::from_list(vec![v1.clone()]).unwrap())
        .connect(&db.url)
        .await
        .unwrap();
    common::migrate_all(&old).await;
    let ctxs = common::create_tenants(
        &old,
        &[
            ("replan-shared", Placement::SharedTable),
            ("replan-own", Placement::OwnSchema),
        ],
    )
    .await;
    for ctx in &ctxs {
        let s = Spinner::repo()
            .insert(
                ctx,
                &NewSpinner {
                    id: Uuid::new_v4(),
                    name: ctx.slug().into(),
                    color: None,
                },
            )
            .await
            .unwrap();
        Spin::repo()
            .insert(ctx, &new_spin(s.id, 1, ctx.slug()))
            .await
            .unwrap();
    }
    let new = Tenancy::builder()
        .max_connections(4)
        .tenant_migrations(Migrations::from_list(vec![v1, v2]).unwrap())
        .connect(&db.url)
        .await
        .unwrap();
    let mut both = Vec::new();
    for ctx in &ctxs {
        let again = new.resolve_id(ctx.id()).await.unwrap();
        // Warm: every connection of both pools has the statement prepared for the old shape.
        select_star_everywhere(ctx, true).await.unwrap();
        select_star_everywhere(&again, true).await.unwrap();
        both.push(again);
    }

    common::migrate_all(&new).await;

    for (ctx, again) in ctxs.iter().zip(&both) {
        // The migrating handle lends no connection planned before its migration.
        select_star_everywhere(again, true)
            .await
            .unwrap_or_else(|e| panic!("{} after the migration: {e}", again.slug()));
        // A handle that did not migrate prepares again a statement the server refuses, once.
        // (Inside a transaction the refusal aborts the caller's work, so it is returned.)
        select_star_everywhere(ctx, false)
            .await
            .unwrap_or_else(|e| panic!("{} on a warm connection: {e}", ctx.slug()));
    }
}

// ---- Connections lent without a ping -------------------------------------------------------------
//
// The pools `TenancyBuilder::connect` builds lend a connection to a unit that begins with its own
// `BEGIN` (row-level security, a `TenantTx`, admin work) without pinging it first: that `BEGIN`
// is the check, sent again on a replacement when the backend is gone. Each unit below meets the
// one connection's backend terminated while it sat idle in the pool.

/// A handle built by `connect` (not `from_pool`) as the application role, on ONE connection, with
/// tenant A's spinner and one spin; no listener, so that the role's only backend is the pool's.
async fn one_connection(test: &str, rls_on: bool, ping: bool) -> (Rls, Tenancy, TenantCtx, Uuid) {
    use sqlx::ConnectOptions;

    let rls = Rls::new(test).await;
    let mut list = vec![tenancy::Migration::new(1, "spinner app", SPINNER_SCHEMA)];
    if rls_on {
        let policies = format!(
            "{}{}",
            rls::policy_sql("spinners", "tenant_id").unwrap(),
            rls::policy_sql("spins", "tenant_id").unwrap()
        );
        list.push(tenancy::Migration::new(2, "row-level security", policies));
    }
    let tenancy = Tenancy::builder()
        .max_connections(1)
        .listen_for_changes(false)
        .row_level_security(rls_on)
        .test_before_acquire(ping)
        .tenant_migrations(Migrations::from_list(list).unwrap())
        .connect(rls.options().to_url_lossy().as_str())
        .await
        .unwrap();
    common::migrate_all(&tenancy).await;
    tenancy
        .create_tenant(NewTenant::new("lent-a", "lent-a"))
        .await
        .unwrap();
    let a = tenancy.resolve_slug("lent-a").await.unwrap();
    let spinner = common::add_spinner(&a, "lent-a").await.unwrap().id;
    Spin::repo()
        .insert(&a, &new_spin(spinner, 1, "before"))
        .await
        .unwrap();
    (rls, tenancy, a, spinner)
}

/// Terminates the pool's one backend once it is idle, and returns its pid.
async fn kill_idle(rls: &Rls) -> i32 {
    let mut admin = rls.db.connect().await;
    let pids: Vec<i32> =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND usename = $2")
            .bind(&rls.db.name)
            .bind(rls.role())
            .fetch_all(&mut admin)
            .await
            .unwrap();
    assert_eq!(pids.len(), 1, "one backend of the pool's: {pids:?}");
    // Idle on the server, and the pool's release check read, before the kill.
    assert_eq!(backend_state(&rls.db, pids[0]).await.unwrap().0, "idle");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(pids[0])
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(killed);
    pids[0]
}

/// The notes of the spins `ctx` sees, sorted: a read.
async fn notes(ctx: &TenantCtx) -> tenancy::Result<Vec<String>> {
    let mut notes: Vec<String> = Spin::repo()
        .query()
        .fetch_all(ctx)
        .await?
        .into_iter()
        .filter_map(|s| s.note)
        .collect();
    notes.sort();
    Ok(notes)
}

/// Every kind of unit that begins with its own `BEGIN`, each after its backend was killed idle,
/// with and without the pool's ping (which those units skip): each runs on a new backend, and
/// what it wrote is there.
#[tokio::test]
async fn units_that_begin_a_transaction_survive_a_backend_killed_idle() {
    for ping in [true, false] {
        let (rls, tenancy, a, spinner) =
            one_connection(&format!("hyg_lent_{ping}"), true, ping).await;

        // A read on a `&TenantCtx` (row-level security: `BEGIN READ ONLY` with the tenant).
        kill_idle(&rls).await;
        let read = notes(&a).await;
        assert_eq!(read.unwrap(), ["before"], "ping {ping}");

        // A write on a `&TenantCtx` (`BEGIN` with the tenant, the insert, `COMMIT`).
        kill_idle(&rls).await;
        Spin::repo()
            .insert(&a, &new_spin(spinner, 2, "ctx write"))
            .await
            .unwrap_or_else(|e| panic!("ping {ping}: a write after the kill: {e}"));

        // A `TenantTx`.
        kill_idle(&rls).await;
        let mut tx = a.begin().await.unwrap();
        Spin::repo()
            .insert(&mut tx, &new_spin(spinner, 3, "tx write"))
            .await
            .unwrap();
        tx.commit().await.unwrap();

        // Admin work (the registry's transaction).
        kill_idle(&rls).await;
        tenancy
            .create_tenant(NewTenant::new("lent-b", "lent-b"))
            .await
            .unwrap_or_else(|e| panic!("ping {ping}: create_tenant after the kill: {e}"));

        assert_eq!(
            notes(&a).await.unwrap(),
            ["before", "ctx write", "tx write"],
            "ping {ping}"
        );
        tenancy.close().await;
    }
}

/// Without row-level security a read sends no `BEGIN`: the pool's ping (on by default) is what
/// replaces a killed backend, and with the ping off the read fails instead, once. A `TenantTx`
/// recovers either way.
#[tokio::test]
async fn units_without_a_begin_are_pinged_unless_the_ping_is_off() {
    let (rls, tenancy, a, _) = one_connection("hyg_pinged", false, true).await;
    kill_idle(&rls).await;
    assert_eq!(notes(&a).await.unwrap(), ["before"]);
    tenancy.close().await;
    drop(rls);

    let (rls, tenancy, a, spinner) = one_connection("hyg_unpinged", false, false).await;
    kill_idle(&rls).await;
    let r = notes(&a).await;
    assert!(matches!(r, Err(Error::Database(_))), "{r:?}");
    assert_eq!(notes(&a).await.unwrap(), ["before"]);
    kill_idle(&rls).await;
    let mut tx = a.begin().await.unwrap();
    Spin::repo()
        .insert(&mut tx, &new_spin(spinner, 2, "tx write"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(notes(&a).await.unwrap(), ["before", "tx write"]);
    tenancy.close().await;
}
