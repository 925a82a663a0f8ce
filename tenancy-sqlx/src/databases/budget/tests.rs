//! The budget against a real server, which is the judge of what is open: the budget connects
//! as a role whose `CONNECTION LIMIT` is the budget, so a connection past it is refused by the
//! server itself.
//!
//! Why not sample `pg_stat_activity`: one scan of it copies each backend's entry in turn, not
//! all at once, so it can list a backend that was about to exit and the one that replaced it,
//! and count one over a budget that was never exceeded. The role's limit is checked at each
//! connection's start against the server's list of processes, under its lock, and a closing
//! backend leaves that list before it hangs up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tenancy_core::TenantId;

use super::*;
use crate::databases::testing::{Dropped, admin, backends, databases, server_options, unique};
use crate::testing::{cancel_at, eventually};

/// Each tenant database holds its tenant's number, so a task can tell whose connection it got.
const WHOAMI: &str = "CREATE TABLE whoami (n int NOT NULL); INSERT INTO whoami VALUES ({i});";

struct World {
    _dropped: Dropped,
    /// Declared after the databases: dropped once they are, as the grants live in them.
    _role: DroppedRole,
    dbs: Vec<DatabaseName>,
    tenants: Vec<TenantId>,
    budget: ServerBudget,
}

async fn world(test: &str, n: usize, cfg: BudgetConfig) -> World {
    let prefix = unique(test);
    let dropped = Dropped {
        prefix: prefix.clone(),
    };
    let dbs = databases(&prefix, n, WHOAMI).await;
    let tenants: Vec<TenantId> = (0..n).map(|_| TenantId::new_v4()).collect();
    let role = DroppedRole {
        name: format!("{prefix}_role"),
    };
    crate::databases::testing::exec(
        &mut admin().await,
        format!(
            "CREATE ROLE {} LOGIN CONNECTION LIMIT {}",
            role.name, cfg.budget
        ),
    )
    .await;
    // Each database says whose it is, as a provisioned one does, with its write fence made
    // here (the role may read, not create).
    for (db, tenant) in dbs.iter().zip(&tenants) {
        let mut conn = PgConnection::connect_with(&server_options().database(db.as_str()))
            .await
            .unwrap();
        crate::databases::testing::exec(
            &mut conn,
            format!(
                "{} {} INSERT INTO tenancy.tenants (id, slug) VALUES ('{}', 'x'); \
                 GRANT USAGE ON SCHEMA tenancy TO {role}; \
                 GRANT SELECT ON ALL TABLES IN SCHEMA tenancy, public TO {role};",
                crate::databases::provision::IDENTITY_DDL,
                crate::databases::provision::FENCE_DDL,
                tenant.as_uuid(),
                role = role.name,
            ),
        )
        .await;
        conn.close().await.unwrap();
    }
    let options = server_options().username(&role.name);
    let world = World {
        _dropped: dropped,
        _role: role,
        dbs,
        tenants,
        budget: ServerBudget::new("server2", options, cfg),
    };
    // `close` returns before the server's backend has exited: wait until the setup
    // connections are gone.
    world.settled().await;
    world
}

impl World {
    async fn acquire(&self, i: usize) -> Result<Lease, BudgetError> {
        self.budget.acquire(self.tenants[i], &self.dbs[i]).await
    }

    /// Whose database the lease is connected to, and its backend.
    async fn who(lease: &mut Lease) -> (i32, i32) {
        sqlx::query_as("SELECT (SELECT n FROM whoami), pg_backend_pid()")
            .fetch_one(&mut **lease)
            .await
            .unwrap()
    }

    async fn settled(&self) {
        let mut admin = admin().await;
        eventually(
            "the budget's count and the server's agree",
            Duration::from_secs(20),
            async || {
                backends(&mut admin, &self.dbs).await as usize == self.budget.open_connections()
            },
        )
        .await;
    }
}

async fn alive(pid: i32) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1)")
        .bind(pid)
        .fetch_one(&mut admin().await)
        .await
        .unwrap()
}

/// The test's login role, dropped when the test ends (also when it panics).
struct DroppedRole {
    name: String,
}

impl Drop for DroppedRole {
    fn drop(&mut self) {
        let sql = format!("DROP ROLE IF EXISTS {}", self.name);
        crate::testing::on_own_runtime(async move {
            if let Ok(mut conn) = PgConnection::connect_with(&server_options()).await {
                let _ = sqlx::raw_sql(crate::sql::text(sql))
                    .execute(&mut conn)
                    .await;
            }
        });
    }
}

/// The most leases held at once, counted by the tasks themselves: shows that a test loaded the
/// budget.
#[derive(Default)]
struct Held {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Held {
    fn take(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
    }

    fn give(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A tiny deterministic generator, so a failing run can be replayed.
fn next(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

#[tokio::test]
async fn a_database_that_says_it_is_another_tenants_is_refused_and_its_slot_freed() {
    let w = world("budget_identity", 2, BudgetConfig::new(2, 2)).await;
    // Tenant 0 asks for tenant 1's database (a swapped name, a wrong registry row).
    match w.budget.acquire(w.tenants[0], &w.dbs[1]).await {
        Err(BudgetError::WrongDatabase { tenant, found, .. }) => {
            assert_eq!(tenant, w.tenants[0]);
            assert_eq!(found, w.tenants[1].as_uuid().to_string());
        }
        Err(e) => panic!("expected WrongDatabase, got {e}"),
        Ok(_) => panic!("tenant 0 was handed tenant 1's database"),
    }
    w.settled().await;
    assert_eq!(w.budget.open_connections(), 0);
    // Its own database serves it.
    let mut lease = w.acquire(0).await.unwrap();
    assert_eq!(World::who(&mut lease).await.0, 0);
    lease.release();
}

#[tokio::test]
async fn many_tasks_over_many_tenant_databases_never_exceed_the_budget() {
    const BUDGET: usize = 5;
    let w = Arc::new(
        world(
            "budget_load",
            12,
            BudgetConfig::new(BUDGET, 3).acquire_timeout(Duration::from_secs(60)),
        )
        .await,
    );
    let held = Arc::new(Held::default());
    let mut tasks = Vec::new();
    for task in 0..40u64 {
        let (w, held) = (w.clone(), held.clone());
        tasks.push(tokio::spawn(async move {
            let mut seed = task + 1;
            for _ in 0..15 {
                let i = (next(&mut seed) % w.tenants.len() as u64) as usize;
                // Past the budget, the server refuses the connection: this fails.
                let mut lease = w.acquire(i).await.expect("a connection within the wait");
                held.take();
                assert_eq!(lease.tenant(), w.tenants[i]);
                let (n, _) = World::who(&mut lease).await;
                assert_eq!(
                    n as usize, i,
                    "tenant {i} was handed tenant {n}'s connection"
                );
                sqlx::query("SELECT pg_sleep(0.002)")
                    .execute(&mut *lease)
                    .await
                    .unwrap();
                held.give();
                // One lease in five is dropped rather than released: the closing path.
                if next(&mut seed).is_multiple_of(5) {
                    drop(lease);
                } else {
                    lease.release();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    w.settled().await;
    // The test loaded the budget (it can fail): several connections were open at once.
    let most = held.most.load(Ordering::SeqCst);
    assert!(most >= 3, "only {most} leases were ever held at once");
    assert!(w.budget.open_connections() <= BUDGET);
    w.budget.close_idle().await;
    w.settled().await;
    assert_eq!(w.budget.open_connections(), 0);
}

#[tokio::test]
async fn a_tenant_gets_only_its_own_connections_and_the_least_recent_idle_pool_goes() {
    let w = world("budget_own", 3, BudgetConfig::new(2, 2)).await;
    let mut a = w.acquire(0).await.unwrap();
    let (n, pid_a) = World::who(&mut a).await;
    assert_eq!(n, 0);
    a.release();
    // B finds A's idle connection in the budget but never gets it.
    let mut b = w.acquire(1).await.unwrap();
    let (n, pid_b) = World::who(&mut b).await;
    assert_eq!(n, 1);
    assert_ne!(pid_a, pid_b);
    b.release();
    // A again: its own idle connection, reused.
    let mut a = w.acquire(0).await.unwrap();
    assert_eq!(World::who(&mut a).await, (0, pid_a));
    a.release();
    // The budget is full (A and B idle): C takes the slot of the least recently used, B.
    let mut c = w.acquire(2).await.unwrap();
    assert_eq!(World::who(&mut c).await.0, 2);
    // B's backend was gone before C's connection was opened, not moments later.
    assert!(!alive(pid_b).await, "B's evicted backend still runs");
    assert!(
        alive(pid_a).await,
        "A's pool was evicted though B's was older"
    );
    c.release();
    w.settled().await;
    assert_eq!(w.budget.open_connections(), 2);
}

#[tokio::test]
async fn a_pool_with_work_keeps_its_connections_while_an_idle_one_can_go() {
    let w = world("budget_work", 5, BudgetConfig::new(3, 2)).await;
    // A: one connection at work, one idle.
    let mut a1 = w.acquire(0).await.unwrap();
    let mut a2 = w.acquire(0).await.unwrap();
    let (_, pid_a1) = World::who(&mut a1).await;
    let (_, pid_a2) = World::who(&mut a2).await;
    a1.release();
    // B: one idle connection, used after A's (so A is the least recently used).
    let mut b = w.acquire(1).await.unwrap();
    let (_, pid_b) = World::who(&mut b).await;
    b.release();
    // C: the budget is full; B has no work, so B's pool goes although A is older.
    let mut c = w.acquire(2).await.unwrap();
    let (_, pid_c) = World::who(&mut c).await;
    assert!(
        !alive(pid_b).await,
        "B's idle pool should have been evicted"
    );
    assert!(
        alive(pid_a1).await,
        "A's idle connection went while A had work"
    );
    c.release();
    // D: C has no work, A has: C's pool goes.
    let mut d = w.acquire(3).await.unwrap();
    assert!(
        !alive(pid_c).await,
        "C's idle pool should have been evicted"
    );
    assert!(alive(pid_a1).await);
    // E, with D at work: only A has an idle connection, and A has work; rather than wait, the
    // idle one goes and the one at work stays.
    let mut e = w.acquire(4).await.unwrap();
    assert_eq!(World::who(&mut e).await.0, 4);
    assert!(
        !alive(pid_a1).await,
        "A's idle connection should have been taken"
    );
    assert_eq!(
        World::who(&mut a2).await,
        (0, pid_a2),
        "A's work lost its connection"
    );
    assert_eq!(World::who(&mut d).await.0, 3);
    for l in [a2, d, e] {
        l.release();
    }
}

#[tokio::test]
async fn overload_gives_a_typed_error_after_the_bounded_wait_and_a_release_serves_a_waiter() {
    let w = Arc::new(
        world(
            "budget_busy",
            3,
            BudgetConfig::new(2, 1).acquire_timeout(Duration::from_millis(300)),
        )
        .await,
    );
    let a = w.acquire(0).await.unwrap();
    let b = w.acquire(1).await.unwrap();
    // Both connections at work: C waits, then gets the typed error.
    match w.acquire(2).await {
        Err(BudgetError::ServerBusy { budget, waited, .. }) => {
            assert_eq!(budget, 2);
            assert!(waited >= Duration::from_millis(300));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("C got a connection past the budget"),
    }
    // A at its share (one connection): a second acquire for A waits on A, not on the server.
    match w.acquire(0).await {
        Err(BudgetError::TenantBusy { tenant, .. }) => assert_eq!(tenant, w.tenants[0]),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("A got more than its share"),
    }
    // A waiter is served when a connection is released during its wait: A's idle pool (no
    // work) is evicted for C.
    let waiter = {
        let w = w.clone();
        tokio::spawn(async move {
            let mut c = w.acquire(2).await?;
            let who = World::who(&mut c).await;
            c.release();
            Ok::<_, BudgetError>(who)
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.release();
    // The waiter's own wait is 300 ms from its call; the release came after 50.
    let (n, _) = waiter.await.unwrap().expect("the waiter was served");
    assert_eq!(n, 2);
    b.release();
    w.settled().await;
    assert!(w.budget.open_connections() <= 2);
}

#[tokio::test]
async fn cancelled_acquires_and_dropped_leases_leak_no_connection() {
    const BUDGET: usize = 3;
    let w = world(
        "budget_cancel",
        6,
        BudgetConfig::new(BUDGET, 2).acquire_timeout(Duration::from_secs(20)),
    )
    .await;
    let mut seed = 7;
    let mut held = Vec::new();
    for k in 1..=8 {
        for i in 0..w.tenants.len() {
            // Cancel the acquire at its k-th pending poll.
            match cancel_at(k, w.acquire(i)).await {
                None => {}
                // Past the budget, the server refuses the connection: this fails.
                Some(Err(e)) => panic!("acquire failed: {e}"),
                Some(Ok(mut lease)) => match next(&mut seed) % 3 {
                    0 => lease.release(),
                    // Cancelled mid-statement: the connection's state is unknown; dropped.
                    1 => {
                        let sleep = sqlx::query("SELECT pg_sleep(0.05)").execute(&mut *lease);
                        assert!(cancel_at(1, sleep).await.is_none());
                        drop(lease);
                    }
                    // Held across the next acquires, so some of them wait for a slot.
                    _ => held.push(lease),
                },
            }
            if held.len() >= 2 {
                held.remove(0).release();
            }
        }
    }
    for lease in held {
        lease.release();
    }
    w.settled().await;
    assert!(w.budget.open_connections() <= BUDGET);
    // No slot leaked: three tenants at once still get a connection each.
    let (x, y, z) = tokio::join!(w.acquire(0), w.acquire(1), w.acquire(2));
    let mut leases = [x.unwrap(), y.unwrap(), z.unwrap()];
    for (i, lease) in leases.iter_mut().enumerate() {
        assert_eq!(World::who(lease).await.0 as usize, i);
    }
    drop(leases);
    w.settled().await;
    w.budget.close_idle().await;
    w.settled().await;
    assert_eq!(w.budget.open_connections(), 0);
}

/// A home tenant's share of its home's connections comes back whatever ends its acquire (a
/// cancellation at any await, a lease dropped or released): afterwards the tenant holds its
/// whole share at once and no more, and work across the home (no member) is served beside it.
#[tokio::test]
async fn a_home_tenants_share_comes_back_whatever_ends_its_acquire() {
    const SHARE: usize = 2;
    let w = world(
        "budget_home_share",
        1,
        BudgetConfig::new(4, SHARE).acquire_timeout(Duration::from_secs(1)),
    )
    .await;
    // The database becomes server2's home: the mark its connections are checked for.
    let mut conn = PgConnection::connect_with(&server_options().database(w.dbs[0].as_str()))
        .await
        .unwrap();
    crate::databases::testing::exec(
        &mut conn,
        format!(
            "DROP INDEX IF EXISTS tenancy.tenants_one_row; {} \
             COMMENT ON TABLE tenancy.tenants IS '{SERVER_HOME_MARK}server2'",
            crate::databases::home::HOME_FENCE_DDL
        ),
    )
    .await;
    conn.close().await.unwrap();
    w.settled().await;
    let key = TenantId::new_v4();
    let member = w.tenants[0];
    let home = &w.dbs[0];
    let mut finished = 0;
    for k in 1..=16 {
        match cancel_at(k, w.budget.acquire_in_home(key, Some(member), home)).await {
            None => {}
            Some(Err(e)) => panic!("acquire failed: {e}"),
            Some(Ok(lease)) => {
                finished += 1;
                if k % 2 == 0 {
                    lease.release();
                } else {
                    drop(lease);
                }
            }
        }
    }
    assert!(finished > 0, "no acquire finished within 16 polls");
    w.settled().await;
    let held = [
        w.budget.acquire_in_home(key, Some(member), home).await,
        w.budget.acquire_in_home(key, Some(member), home).await,
    ];
    let held: Vec<Lease> = held
        .into_iter()
        .map(|l| l.expect("the tenant's whole share, none leaked"))
        .collect();
    match w.budget.acquire_in_home(key, Some(member), home).await {
        Err(BudgetError::TenantBusy { tenant, .. }) => assert_eq!(tenant, member),
        Err(e) => panic!("expected TenantBusy, got {e}"),
        Ok(_) => panic!("the tenant held more than its share of {SHARE}"),
    }
    let across = w
        .budget
        .acquire_in_home(key, None, home)
        .await
        .expect("work across the home takes no share");
    across.release();
    for lease in held {
        lease.release();
    }
    w.budget.close_idle().await;
    w.settled().await;
    assert_eq!(w.budget.open_connections(), 0);
}
