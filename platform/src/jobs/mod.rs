//! The job queue behind Dash's background callbacks.
//!
//! A job is one background-callback run: it is accepted by a replica, runs there on a
//! blocking thread under its own (longer) deadline, reports progress through the sandbox's
//! progress sink, and ends `done`, `failed` or `cancelled`. Its record (owner, state,
//! latest progress, answer) lives in a [`JobStore`]: in this process by default, in Redis
//! when `TESSERA_REDIS_URL` is set, so that any replica can answer the renderer's polls
//! and take its cancel requests. The replica running a job looks at the store's cancel
//! flag every [`CANCEL_POLL`] and stops the sandbox call when it is raised.
//!
//! This module knows nothing of HTTP or of Dash's wire format: [`crate::http::dash`]
//! decides when to start, poll and cancel, and [`crate::dash::background`] shapes answers.

mod memory;
mod redis;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

pub use self::memory::MemoryJobs;
pub use self::redis::RedisJobs;

/// How often a running job looks at its cancel flag in the store.
pub const CANCEL_POLL: Duration = Duration::from_millis(100);

/// How long a job record is kept after its last change (a page that stops polling leaves
/// its answer behind; this bounds how long).
pub const RECORD_TTL: Duration = Duration::from_secs(3600);

/// Who a job belongs to: a poll or cancel must come from the same app and page load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Tenant slug.
    pub tenant: String,
    /// App slug.
    pub app: String,
    /// The page load's `endId` (`_dash-config.end_id`).
    pub end_id: String,
}

/// Where a job is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Accepted, waiting for a worker slot.
    Queued,
    /// The guest is running.
    Running,
    /// Finished: the guest's JSON array of outputs, or `None` for `PreventUpdate`.
    Done {
        /// The outputs.
        outputs: Option<String>,
    },
    /// Failed: the HTTP status, code and message the poll answers with.
    Failed {
        /// HTTP status.
        status: u16,
        /// Machine-readable code.
        code: String,
        /// What went wrong, for anyone who may view the app.
        message: String,
        /// The guest's own words, for the app's authors only.
        #[serde(default)]
        detail: Option<String>,
    },
    /// Stopped by a cancel request.
    Cancelled,
}

impl JobState {
    /// Whether the job has ended.
    pub fn is_final(&self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// A job's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Random id, the renderer's `job` (and `cacheKey`).
    pub id: String,
    /// Who may poll and cancel it.
    pub owner: Owner,
    /// The app version it runs on.
    pub version: i64,
    /// The callback id (its dependency's `output`).
    pub callback: String,
    /// Where it is.
    #[serde(flatten)]
    pub state: JobState,
}

/// Errors of the job store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// A stored record does not parse.
    #[error("bad job record: {0}")]
    Record(#[from] serde_json::Error),
}

/// The result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where job records, progress and cancel flags live.
#[derive(Clone)]
pub enum JobStore {
    /// This process only.
    Memory(Arc<MemoryJobs>),
    /// Shared by every replica through Redis.
    Redis(RedisJobs),
}

impl JobStore {
    /// Store or replace a record.
    pub async fn put(&self, job: &Job) -> Result<()> {
        match self {
            JobStore::Memory(store) => {
                store.put(job);
                Ok(())
            }
            JobStore::Redis(store) => store.put(job).await,
        }
    }

    /// A record by id.
    pub async fn get(&self, id: &str) -> Result<Option<Job>> {
        match self {
            JobStore::Memory(store) => Ok(store.get(id)),
            JobStore::Redis(store) => store.get(id).await,
        }
    }

    /// Forget a job (after its answer was delivered).
    pub async fn remove(&self, id: &str) -> Result<()> {
        match self {
            JobStore::Memory(store) => {
                store.remove(id);
                Ok(())
            }
            JobStore::Redis(store) => store.remove(id).await,
        }
    }

    /// The latest progress report (a JSON array), if any.
    pub async fn progress(&self, id: &str) -> Result<Option<String>> {
        match self {
            JobStore::Memory(store) => Ok(store.progress(id)),
            JobStore::Redis(store) => store.progress(id).await,
        }
    }

    /// Record a progress report.
    pub async fn set_progress(&self, id: &str, json: &str) -> Result<()> {
        match self {
            JobStore::Memory(store) => {
                store.set_progress(id, json);
                Ok(())
            }
            JobStore::Redis(store) => store.set_progress(id, json).await,
        }
    }

    /// Raise the cancel flag.
    pub async fn request_cancel(&self, id: &str) -> Result<()> {
        match self {
            JobStore::Memory(store) => {
                store.request_cancel(id);
                Ok(())
            }
            JobStore::Redis(store) => store.request_cancel(id).await,
        }
    }

    /// Whether the cancel flag is raised.
    pub async fn cancel_requested(&self, id: &str) -> Result<bool> {
        match self {
            JobStore::Memory(store) => Ok(store.cancel_requested(id)),
            JobStore::Redis(store) => store.cancel_requested(id).await,
        }
    }
}

/// What a job runs: the component, the callback and the request the guest gets.
pub struct Work {
    /// The app version's component.
    pub component: sandbox::Component,
    /// The guest's `run-callback` request JSON.
    pub request_json: String,
}

/// The queue: a store plus this replica's worker slots.
pub struct Jobs {
    store: JobStore,
    deadline: Duration,
    slots: Arc<Semaphore>,
}

impl Jobs {
    /// A queue over `store` running at most `workers` jobs at once on this replica, each
    /// under `deadline`.
    pub fn new(store: JobStore, deadline: Duration, workers: usize) -> Self {
        Self {
            store,
            deadline,
            slots: Arc::new(Semaphore::new(workers.max(1))),
        }
    }

    /// The store.
    pub fn store(&self) -> &JobStore {
        &self.store
    }

    /// Accept a job and start it in the background; returns its id.
    pub async fn start(
        &self,
        owner: Owner,
        version: i64,
        callback: String,
        work: Work,
    ) -> Result<String> {
        let id: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        let job = Job {
            id: id.clone(),
            owner,
            version,
            callback,
            state: JobState::Queued,
        };
        self.store.put(&job).await?;
        let runner = Runner {
            store: self.store.clone(),
            deadline: self.deadline,
            slots: self.slots.clone(),
        };
        tokio::spawn(async move {
            let id = job.id.clone();
            if let Err(error) = runner.run(job, work).await {
                tracing::error!(job = %id, %error, "background job bookkeeping failed");
            }
        });
        Ok(id)
    }

    /// The job `id` if it exists and belongs to `owner`.
    pub async fn find(&self, owner: &Owner, id: &str) -> Result<Option<Job>> {
        Ok(self.store.get(id).await?.filter(|job| &job.owner == owner))
    }

    /// Ask the job `id` to stop, if it exists and belongs to `owner`; unknown ids are
    /// ignored, as Dash ignores handles it did not sign.
    pub async fn cancel(&self, owner: &Owner, id: &str) -> Result<bool> {
        match self.find(owner, id).await? {
            Some(job) if !job.state.is_final() => {
                self.store.request_cancel(id).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// What a spawned job task needs.
struct Runner {
    store: JobStore,
    deadline: Duration,
    slots: Arc<Semaphore>,
}

impl Runner {
    async fn run(self, mut job: Job, work: Work) -> Result<()> {
        let Ok(_permit) = self.slots.clone().acquire_owned().await else {
            return Ok(());
        };
        if self.store.cancel_requested(&job.id).await? {
            job.state = JobState::Cancelled;
            return self.store.put(&job).await;
        }
        job.state = JobState::Running;
        self.store.put(&job).await?;

        let cancel = Arc::new(AtomicBool::new(false));
        // Progress arrives on the blocking thread; a task writes it to the store.
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let writer = {
            let store = self.store.clone();
            let id = job.id.clone();
            tokio::spawn(async move {
                while let Some(mut json) = progress_rx.recv().await {
                    // Only the latest report matters.
                    while let Ok(newer) = progress_rx.try_recv() {
                        json = newer;
                    }
                    if let Err(error) = store.set_progress(&id, &json).await {
                        tracing::warn!(job = %id, %error, "storing progress failed");
                    }
                }
            })
        };
        let watcher = {
            let store = self.store.clone();
            let id = job.id.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(CANCEL_POLL).await;
                    match store.cancel_requested(&id).await {
                        Ok(true) => {
                            cancel.store(true, Ordering::Relaxed);
                            return;
                        }
                        Ok(false) => {}
                        Err(error) => {
                            tracing::warn!(job = %id, %error, "reading the cancel flag failed")
                        }
                    }
                }
            })
        };
        let options = sandbox::CallOptions {
            deadline: Some(self.deadline),
            cancel: Some(cancel),
            progress: Some(Arc::new(move |json: String| {
                // The receiver lives until the call returns; a send can only fail after.
                let _ = progress_tx.send(json);
            })),
        };
        let callback = job.callback.clone();
        let Work {
            component,
            request_json,
        } = work;
        let result = tokio::task::spawn_blocking(move || {
            component.call_with(&callback, &request_json, options)
        })
        .await;
        watcher.abort();
        // The sink was dropped with the call, so the writer ends once it has drained.
        let _ = writer.await;
        job.state = match result {
            Ok(Ok(output)) => {
                log_lines(&job, &output.logs);
                match output.outcome {
                    sandbox::Outcome::Outputs(json) => JobState::Done {
                        outputs: Some(json),
                    },
                    sandbox::Outcome::PreventUpdate => JobState::Done { outputs: None },
                }
            }
            Ok(Err(failure)) => {
                log_lines(&job, &failure.logs);
                if matches!(failure.error, sandbox::Error::Cancelled) {
                    tracing::info!(job = %job.id, "background job cancelled");
                    JobState::Cancelled
                } else {
                    let error_id = crate::error::new_error_id();
                    tracing::warn!(target: "tessera::app_log", tenant = %job.owner.tenant, app = %job.owner.app, version = job.version, job = %job.id, %error_id, error = %failure.error, "background job failed");
                    let error =
                        crate::error::ApiError::from_callback(&failure.error, &error_id, false);
                    let detail =
                        crate::error::ApiError::from_callback(&failure.error, &error_id, true);
                    JobState::Failed {
                        status: error.status.as_u16(),
                        code: error.code.to_owned(),
                        message: error.message,
                        detail: Some(detail.message),
                    }
                }
            }
            Err(join) => JobState::Failed {
                status: 500,
                code: "job_failed".to_owned(),
                message: format!("the job's task failed: {join}"),
                detail: None,
            },
        };
        self.store.put(&job).await
    }
}

fn log_lines(job: &Job, lines: &[sandbox::LogLine]) {
    let source = crate::applog::Source {
        tenant: job.owner.tenant.to_string(),
        app: job.owner.app.to_string(),
        version: job.version,
        job: Some(job.id.to_string()),
    };
    crate::applog::global().write(source, lines.to_vec());
}
