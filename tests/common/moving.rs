//! What the move tests share: tenants filled with spinners and spins, reads past the library,
//! and a writer that writes throughout a move and records what was acknowledged.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use tenancy::{
    Error, MoveOptions, Moved, NewTenant, Placement, Superuser, Tenancy, TenantCtx, TenantId,
};
use uuid::Uuid;

use super::models::*;

pub async fn tenant(tenancy: &Tenancy, slug: &str, placement: Placement) -> TenantCtx {
    tenancy
        .create_tenant(NewTenant::new(slug, slug).placement(placement))
        .await
        .unwrap();
    tenancy.resolve_slug(slug).await.unwrap()
}

pub async fn spinner(ctx: &TenantCtx, name: &str) -> Spinner {
    Spinner::repo()
        .insert(
            ctx,
            &NewSpinner {
                id: Uuid::new_v4(),
                name: name.into(),
                color: Some("red".into()),
            },
        )
        .await
        .unwrap()
}

pub fn new_spin(spinner: Uuid, duration: i32) -> NewSpin {
    NewSpin {
        id: Uuid::new_v4(),
        spinner_id: spinner,
        duration,
        note: Some(format!("spin {duration} 'quoted' \\ é")),
    }
}

/// Fills a tenant with a spinner and `n` spins.
pub async fn fill(ctx: &TenantCtx, n: usize) -> Spinner {
    let s = spinner(ctx, "main").await;
    let news: Vec<NewSpin> = (0..n).map(|i| new_spin(s.id, i as i32)).collect();
    Spin::repo().insert_many(ctx, &news).await.unwrap();
    s
}

/// The ids of tenant `id`'s spins in `table` (qualified), read past the library.
pub async fn spin_ids(conn: &mut PgConnection, table: &str, id: TenantId) -> BTreeSet<Uuid> {
    sqlx::query_scalar::<_, Uuid>(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM {table} WHERE tenant_id = $1"
    )))
    .bind(id.as_uuid())
    .fetch_all(conn)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// What one writer did: the ids of the spins whose insert was acknowledged.
#[derive(Debug, Default)]
pub struct Acked {
    pub ids: Vec<Uuid>,
    /// The last duration an acknowledged update gave the counter spin.
    pub counter: Option<i32>,
    /// Writes refused with a move's typed error (and retried).
    pub refused: usize,
}

/// Writes `a`'s spins until `stop`, through `tenancy`: in turn a context's insert, an insert and
/// an update in a transaction, and a raw SQL read; refused writes are retried after resolving
/// again. Every insert that returned `Ok` is recorded.
pub async fn writer(
    tenancy: Tenancy,
    slug: &'static str,
    spinner: Uuid,
    counter: Uuid,
    stop: Arc<AtomicBool>,
) -> Acked {
    let mut acked = Acked::default();
    let mut ctx = tenancy.resolve_slug(slug).await.unwrap();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let new = new_spin(spinner, i);
        let out: tenancy::Result<()> = async {
            if i % 2 == 0 {
                Spin::repo().insert(&ctx, &new).await?;
                acked.ids.push(new.id);
            } else {
                let mut tx = ctx.begin().await?;
                Spin::repo().insert(&mut tx, &new).await?;
                Spin::repo()
                    .update_columns(&mut tx, counter, [Spin::DURATION.set(i)])
                    .await?
                    .expect("the counter spin exists");
                tx.commit().await?;
                acked.ids.push(new.id);
                acked.counter = Some(i);
            }
            let (n,): (i64,) = Spin::repo()
                .raw_as("SELECT count(*) FROM {spins}")
                .fetch_one(&ctx)
                .await?;
            assert!(n > 0);
            Ok(())
        }
        .await;
        match out {
            Ok(()) => {}
            Err(
                e @ (Error::TenantMoving(_)
                | Error::TenantMoved(_)
                | Error::ContextRevoked { .. }
                | Error::TransactionAborted),
            ) => {
                acked.refused += 1;
                if !matches!(e, Error::TenantMoving(_)) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ctx = tenancy.resolve_slug(slug).await.unwrap();
                }
            }
            Err(e) => panic!("writer {slug}: {e}"),
        }
    }
    acked
}

/// A connection to database `name` on the test server.
pub async fn connect_to(name: &str) -> PgConnection {
    PgConnection::connect(&tenancy::testing::database_url(name))
        .await
        .unwrap_or_else(|e| panic!("connect to {name}: {e}"))
}

/// The tenant databases on the server named like this registry's (its tag's prefix), spares
/// and templates aside.
pub async fn registry_databases(registry: &mut PgConnection) -> Vec<String> {
    let tag: String = sqlx::query_scalar("SELECT tag FROM tenancy.deployment")
        .fetch_one(&mut *registry)
        .await
        .unwrap();
    let mut admin = super::admin_conn().await;
    sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1) \
         AND datname !~ '_(template|spare|build)_' ORDER BY 1",
    )
    .bind(format!("tenancy_{tag}_"))
    .fetch_all(&mut admin)
    .await
    .unwrap()
}

/// Two tenants written to throughout a move of the first: acme (moving) and globex (on the
/// shared tables), each filled and with a counter spin that the writers update, and a context
/// of acme resolved before the move by a handle that never hears of it.
pub struct UnderWriters {
    pub a: TenantCtx,
    pub b: TenantCtx,
    pub spinner_a: Uuid,
    pub counter_a: Uuid,
    /// Acme's context from the handle whose cache is behind.
    pub stale: TenantCtx,
    stop: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<Acked>>,
}

impl UnderWriters {
    /// Creates acme on `from` with `rows.0` spins and globex with `rows.1`, and starts three
    /// writers: two on acme (through `tenancy` and `second`), one on globex (through `second`).
    /// `behind` resolves the stale context.
    pub async fn start(
        tenancy: &Tenancy,
        second: &Tenancy,
        behind: &Tenancy,
        from: Placement,
        rows: (usize, usize),
    ) -> Self {
        let a = tenant(tenancy, "acme", from).await;
        let b = tenant(tenancy, "globex", Placement::SharedTable).await;
        let sa = fill(&a, rows.0).await;
        let sb = fill(&b, rows.1).await;
        let counter_a = Spin::repo()
            .insert(&a, &new_spin(sa.id, 0))
            .await
            .unwrap()
            .id;
        let counter_b = Spin::repo()
            .insert(&b, &new_spin(sb.id, 0))
            .await
            .unwrap()
            .id;
        let stale = behind.resolve_slug("acme").await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writers = vec![
            tokio::spawn(writer(
                tenancy.clone(),
                "acme",
                sa.id,
                counter_a,
                stop.clone(),
            )),
            tokio::spawn(writer(
                second.clone(),
                "acme",
                sa.id,
                counter_a,
                stop.clone(),
            )),
            tokio::spawn(writer(
                second.clone(),
                "globex",
                sb.id,
                counter_b,
                stop.clone(),
            )),
        ];
        Self {
            a,
            b,
            spinner_a: sa.id,
            counter_a,
            stale,
            stop,
            writers,
        }
    }

    /// Lets the writers write, moves acme to `to` (its fence held a while, so that writes meet
    /// it), lets them go on against the new home, then stops them: what the move did and each
    /// writer's record (acme's two first, then globex's).
    pub async fn move_to(&mut self, tenancy: &Tenancy, to: Placement) -> (Moved, Vec<Acked>) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let su = tenancy.superuser("ops", "move under load").await.unwrap();
        let moved = tenancy
            .move_tenant_with(
                &su,
                self.a.id(),
                to,
                MoveOptions::default().hold_fence(Duration::from_millis(300)),
            )
            .await
            .unwrap();
        // The writers go on against the new home for a while.
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.stop.store(true, Ordering::Relaxed);
        let mut acked = Vec::new();
        for w in self.writers.drain(..) {
            acked.push(w.await.unwrap());
        }
        (moved, acked)
    }

    /// The stale context still holds the old home: its writes are refused as moved. Returns
    /// the spin it tried to insert.
    pub async fn stale_writes_are_refused(&self) -> NewSpin {
        let late = new_spin(self.spinner_a, -1);
        let refused = Spin::repo().insert(&self.stale, &late).await;
        assert!(matches!(refused, Err(Error::TenantMoved(_))), "{refused:?}");
        let refused = Spin::repo().delete(&self.stale, self.counter_a).await;
        assert!(matches!(refused, Err(Error::TenantMoved(_))), "{refused:?}");
        late
    }
}

/// What a move under [`UnderWriters`] must leave: every write acknowledged to acme's writers
/// (`a_writers`) is in the new copy, they met the move, and the old copy holds exactly what was
/// copied (`moved`: its spins and the spinner), none of it missing from the new one and not
/// the stale context's `late` spin.
pub fn nothing_acknowledged_is_lost(
    a_writers: &[Acked],
    moved: &Moved,
    new_copy: &BTreeSet<Uuid>,
    old_copy: &BTreeSet<Uuid>,
    late: Uuid,
) {
    acknowledged_writes_are_in_the_new_copy(a_writers, moved, new_copy, old_copy);
    assert!(!old_copy.contains(&late) && !new_copy.contains(&late));
}

/// Every write acknowledged to `writers` is in the new copy, they met the move, and the old
/// copy holds exactly what was copied (`moved`: its spins and the spinner), all of it in the
/// new one.
pub fn acknowledged_writes_are_in_the_new_copy(
    writers: &[Acked],
    moved: &Moved,
    new_copy: &BTreeSet<Uuid>,
    old_copy: &BTreeSet<Uuid>,
) {
    for w in writers {
        assert!(!w.ids.is_empty(), "{w:?}");
        for id in &w.ids {
            assert!(
                new_copy.contains(id),
                "an acknowledged write is missing: {id}"
            );
        }
    }
    assert!(
        writers.iter().map(|w| w.refused).sum::<usize>() > 0,
        "the writers met the move"
    );
    // Nothing reached the old copy after the switch: it holds exactly what was copied.
    assert_eq!(
        old_copy.len() as u64 + 1,
        moved.rows(),
        "spins plus the spinner"
    );
    assert!(old_copy.is_subset(new_copy));
}

/// Moves tenant `id` to `to` with `options` on a task of its own, for a test that acts while
/// the move runs.
pub fn spawn_move(
    tenancy: &Tenancy,
    su: &Arc<Superuser>,
    id: TenantId,
    to: Placement,
    options: MoveOptions,
) -> tokio::task::JoinHandle<tenancy::Result<Moved>> {
    let (tenancy, su) = (tenancy.clone(), su.clone());
    tokio::spawn(async move { tenancy.move_tenant_with(&su, id, to, options).await })
}

/// The fence's class key as `pg_locks` shows it (`hashtext('tenancy.write_fence')` as an oid).
pub const FENCE_CLASS_OID: i64 = 2_611_995_878;

/// Finds the backend holding a tenant's fence exclusive in this test's database: a mover
/// (tests run side by side, each mover in its own database).
pub async fn mover_pid(conn: &mut PgConnection) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ExclusiveLock' \
         AND granted AND classid = $1::bigint::oid \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .bind(FENCE_CLASS_OID)
    .fetch_optional(conn)
    .await
    .unwrap()
}

/// Waits (30 s at most) for a mover to raise its fence; returns its backend.
pub async fn wait_for_mover(conn: &mut PgConnection) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(pid) = mover_pid(conn).await {
            return pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the mover never raised its fence"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the tenant database `name` is sealed by a move out of it.
pub async fn sealed(name: &str) -> bool {
    let mut conn = connect_to(name).await;
    let moved: bool = sqlx::query_scalar("SELECT moved_at IS NOT NULL FROM tenancy.tenants")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    moved
}

/// Waits (30 s at most) until a session of `conn`'s database waits for an advisory lock: a
/// move or purge held back by a lock the test holds.
pub async fn wait_for_an_advisory_lock_waiter(conn: &mut PgConnection, what: &str) {
    tenancy::testing::eventually(what, Duration::from_secs(30), async || {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap()
    })
    .await;
}
