//! Background jobs on a PostgreSQL table, the Celery of the seed in a few lines.
//!
//! A job's payload carries a `TenantRef`, never a context: the worker resolves it through the
//! registry before each attempt, so a job of a suspended, deleted or purged customer is refused
//! (and not retried), and nothing about the tenant is ambient in the worker (no task-local, no
//! default tenant). Failures of the work itself are retried, a bounded number of times.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tenancy::{Tenancy, TenantCtx, TenantRef};

/// The queue's table: global (not a tenant table), the tenant is inside the payload.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id         bigserial PRIMARY KEY,
    payload    text NOT NULL,
    status     text NOT NULL DEFAULT 'queued'
               CHECK (status IN ('queued', 'done', 'refused', 'failed')),
    attempts   integer NOT NULL DEFAULT 0,
    run_after  timestamptz NOT NULL DEFAULT now(),
    last_error text
);
CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (run_after) WHERE status = 'queued';
";

/// What a job does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Task {
    /// Recompute the customer's dashboard into the cache.
    Dashboard,
}

/// A job: the customer it acts for, as a reference, and the task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// Turned back into a context by the worker, through the registry.
    pub tenant: TenantRef,
    /// What to do.
    pub task: Task,
}

/// What became of the job a worker took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The task ran.
    Done,
    /// The task failed; it runs again after the back-off.
    Retry(String),
    /// The customer cannot be served (unknown, suspended, deleted): not retried.
    Refused(String),
    /// The task failed its last attempt.
    Failed(String),
}

/// The queue, on the application's database.
#[derive(Clone)]
pub struct Queue {
    pool: PgPool,
    max_attempts: i32,
    backoff: Duration,
}

impl Queue {
    /// Creates the table if missing. A job gets three attempts, `backoff` apart.
    pub async fn setup(pool: PgPool, backoff: Duration) -> sqlx::Result<Self> {
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(Self {
            pool,
            max_attempts: 3,
            backoff,
        })
    }

    /// Queues a job; returns its id.
    pub async fn enqueue(&self, job: &Job) -> sqlx::Result<i64> {
        let payload = serde_json::to_string(job).map_err(|e| sqlx::Error::Encode(e.into()))?;
        sqlx::query_scalar("INSERT INTO jobs (payload) VALUES ($1) RETURNING id")
            .bind(payload)
            .fetch_one(&self.pool)
            .await
    }

    /// Takes the next due job (skipping those other workers hold), resolves its customer and
    /// runs `work` with that customer's context. `None` when no job is due.
    pub async fn work_one(
        &self,
        tenancy: &Tenancy,
        work: impl AsyncFnOnce(&TenantCtx, &Task) -> Result<(), String>,
    ) -> sqlx::Result<Option<(i64, Outcome)>> {
        let mut tx = self.pool.begin().await?;
        let Some((id, payload, attempts)): Option<(i64, String, i32)> = sqlx::query_as(
            "SELECT id, payload, attempts FROM jobs WHERE status = 'queued' AND run_after <= now() \
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let attempt = attempts + 1;
        let outcome = match serde_json::from_str::<Job>(&payload) {
            Err(e) => Outcome::Failed(format!("unreadable payload: {e}")),
            Ok(job) => match tenancy.resolve(&job.tenant).await {
                Err(e) if e.is_tenant_unavailable() => Outcome::Refused(e.to_string()),
                Err(e) => self.after_failure(attempt, e.to_string()),
                Ok(ctx) => match work(&ctx, &job.task).await {
                    Ok(()) => Outcome::Done,
                    Err(e) => self.after_failure(attempt, e),
                },
            },
        };
        let (status, error) = match &outcome {
            Outcome::Done => ("done", None),
            Outcome::Retry(e) => ("queued", Some(e)),
            Outcome::Refused(e) => ("refused", Some(e)),
            Outcome::Failed(e) => ("failed", Some(e)),
        };
        sqlx::query(
            "UPDATE jobs SET status = $2, attempts = $3, last_error = $4, \
             run_after = now() + make_interval(secs => $5) WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(attempt)
        .bind(error)
        .bind(self.backoff.as_secs_f64())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some((id, outcome)))
    }

    fn after_failure(&self, attempt: i32, error: String) -> Outcome {
        if attempt < self.max_attempts {
            Outcome::Retry(error)
        } else {
            Outcome::Failed(error)
        }
    }
}
