//! What the move tests share: tenants filled with spinners and spins, reads past the library,
//! and a writer that writes throughout a move and records what was acknowledged.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tenancy::{Error, NewTenant, Placement, Tenancy, TenantCtx, TenantId};
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
