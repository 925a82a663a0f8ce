//! Background jobs on apalis with its Redis backend, the Celery of the seed in a few lines.
//!
//! A job's payload carries a `TenantRef`, never a context: the worker resolves it through the
//! registry at the start of every attempt, so a job of a suspended, deleted or purged customer
//! is refused, and nothing about the tenant is ambient in the worker (no task-local, no default
//! tenant: the context is a value made inside the attempt and handed to the work).
//!
//! Retries are apalis' own: its retry policy runs a failed attempt again (the payload, and so
//! the tenant, is the job's, not the worker's). A refusal is apalis' `AbortError`, the typed
//! "do not retry": the policy stops, and the Redis backend files the job as killed instead of
//! scheduling it again.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{
    AbortError, BackendExt, BoxDynError, Data, RetryPolicy, Status, TaskBuilder, TaskId, TaskSink,
    WaitForCompletion, WorkerBuilder, WorkerBuilderExt, WorkerError,
};
use apalis_redis::{Config, RedisStorage};
use serde::{Deserialize, Serialize};
use tenancy::{Tenancy, TenantCtx, TenantRef};

/// How many times a failed attempt runs again before the job is given up.
pub const RETRIES: usize = 2;

/// How often an idle worker looks for new jobs. Without it, an apalis-redis worker that found
/// the queue empty looks again only on its heartbeat (every 30 s by default).
pub const POLL: Duration = Duration::from_millis(200);

/// What a job does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Task {
    /// Recompute the customer's dashboard into the cache.
    Dashboard,
}

/// A job: the customer it acts for, as a reference, and the task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// Turned back into a context by the worker, through the registry, at every attempt.
    pub tenant: TenantRef,
    /// What to do.
    pub task: Task,
}

/// The job's customer cannot be served (unknown, suspended, deleted, purged). The worker
/// returns it inside an `AbortError`, so it is never retried.
#[derive(Debug)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// One attempt of a job, as the work sees it: the context is a value made for this attempt
/// from the payload's `TenantRef`, not something the worker or the task carries around.
pub struct Attempt {
    /// The job's id (as `enqueue` returned it).
    pub job: String,
    /// 1 for the first attempt, 2 for the first retry, and so on.
    pub number: usize,
    /// The job's customer, resolved through the registry for this attempt.
    pub ctx: TenantCtx,
    /// What to do.
    pub task: Task,
}

/// The work a job does once its customer is resolved. An `Err` is retried by the policy.
pub type Work =
    Arc<dyn Fn(Attempt) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// What the worker needs besides the payload; shared by every job, and tenant-free.
#[derive(Clone)]
struct Deps {
    tenancy: Tenancy,
    work: Work,
}

/// What became of a job, as the Redis backend recorded it.
#[allow(dead_code)] // read by the HTTP test
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `Done`, `Killed` (refused: not retried) or `Failed`.
    pub status: Status,
    /// How many attempts ran.
    pub attempts: usize,
    /// The error of the last attempt, if it failed.
    pub error: Option<String>,
}

/// The queue: one apalis Redis storage, named so that two services (or two tests) sharing a
/// Redis never take each other's jobs.
#[derive(Clone)]
pub struct Queue {
    storage: RedisStorage<Job>,
}

impl Queue {
    /// Connects to Redis at `url` (`redis://127.0.0.1:6379`); `name` is the queue's key prefix.
    pub async fn connect(url: &str, name: &str) -> Result<Self, apalis_redis::RedisError> {
        let conn = apalis_redis::connect(url).await?;
        let storage = RedisStorage::new(conn).with_config(Config::default().queue(name));
        Ok(Self { storage })
    }

    /// Queues a job; returns its id.
    pub async fn enqueue(&self, job: Job) -> Result<TaskId, BoxDynError> {
        // Our own id (a uuid, kept as text by apalis), so the caller knows the job it queued.
        let id = TaskId::from_string(uuid::Uuid::new_v4().to_string());
        let task = TaskBuilder::new(job).task_id(id.clone()).build();
        self.storage.clone().push_task(task).await?;
        Ok(id)
    }

    /// Waits until every job of `ids` has finished an attempt for good (done, refused, or
    /// failed after the policy's retries) and returns their outcomes in the order of `ids`.
    #[allow(dead_code)] // the HTTP test waits on jobs; the service does not
    pub async fn wait(&self, ids: &[TaskId]) -> Result<Vec<Outcome>, BoxDynError> {
        let mut storage = self.storage.clone();
        let mut outcomes: Vec<Option<Outcome>> = vec![None; ids.len()];
        loop {
            let pending: Vec<TaskId> = ids
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| o.is_none())
                .map(|(id, _)| id.clone())
                .collect();
            if pending.is_empty() {
                break;
            }
            let results: Vec<apalis::prelude::TaskResult<()>> =
                storage.check_status(pending).await?;
            for result in results {
                // The backend reads a job's status, then its result, in two steps: a job that
                // finishes in between reads as still running, with its result. Only a final
                // status counts; the next round reads it again.
                if !matches!(
                    result.status,
                    Status::Done | Status::Killed | Status::Failed
                ) {
                    continue;
                }
                let done = result.task_id.to_string();
                if let Some(i) = ids.iter().position(|id| id.to_string() == done) {
                    outcomes[i] = Some(Outcome {
                        status: result.status,
                        attempts: result.attempt,
                        error: result.result.err(),
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// Whether the Redis backend holds `id` for a later run (its scheduled set).
    #[allow(dead_code)] // the HTTP test's; the service does not ask
    pub async fn is_scheduled(&self, id: &TaskId) -> redis::RedisResult<bool> {
        let key = self.storage.get_config().scheduled_jobs_set();
        let mut conn = self.storage.clone().get_connection().clone();
        let score: Option<f64> =
            redis::AsyncCommands::zscore(&mut conn, key, id.to_string()).await?;
        Ok(score.is_some())
    }

    /// Deletes every key of this queue from Redis (its jobs, their results, its workers'
    /// registrations): a fresh start. Returns how many keys were removed.
    pub async fn purge(&self) -> redis::RedisResult<usize> {
        let mut conn = self.storage.clone().get_connection().clone();
        // Queue names here are made of letters, digits, `-`, `_` and `:`: no glob characters.
        let pattern = format!("{}:*", self.storage.get_config().queue);
        let keys: Vec<String> = {
            let mut iter: redis::AsyncIter<String> =
                redis::AsyncCommands::scan_match(&mut conn, &pattern).await?;
            let mut keys = Vec::new();
            while let Some(key) = iter.next_item().await {
                keys.push(key?);
            }
            keys
        };
        if keys.is_empty() {
            return Ok(0);
        }
        redis::AsyncCommands::del(&mut conn, &keys).await
    }

    /// Runs a worker named `name` on this queue until it fails: it resolves each job's
    /// customer and runs `work` as that customer, retrying failed attempts [`RETRIES`] times,
    /// and looks for new jobs every [`POLL`] while idle.
    pub async fn run_worker(
        &self,
        name: &str,
        tenancy: Tenancy,
        work: Work,
    ) -> Result<(), WorkerError> {
        WorkerBuilder::new(name)
            .backend(self.storage.clone().poll_with_interval(POLL))
            .data(Deps { tenancy, work })
            .retry(RetryPolicy::retries(RETRIES))
            .build(run_job)
            .run()
            .await
    }
}

/// One attempt of one job: the customer is resolved here, from the payload, every time.
async fn run_job(
    job: Job,
    id: TaskId,
    attempt: apalis::prelude::Attempt,
    deps: Data<Deps>,
) -> Result<(), BoxDynError> {
    let ctx = match deps.tenancy.resolve(&job.tenant).await {
        // The customer cannot be served: give up for good, whatever the retry policy allows.
        Err(e) if e.is_tenant_unavailable() => {
            tracing::warn!(error = %e, "a job's customer cannot be served: refused, not retried");
            return Err(AbortError::new(Refused(e.to_string())).into());
        }
        // The registry itself failed: that may pass, so the attempt is retried.
        Err(e) => return Err(e.into()),
        Ok(ctx) => ctx,
    };
    let attempt = Attempt {
        job: id.to_string(),
        number: attempt.current(),
        ctx,
        task: job.task,
    };
    (deps.work)(attempt).await.map_err(Into::into)
}
