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
//! Jobs run under their tenant's quota ([`crate::store::CallbackQuotas`]): at most
//! `max_jobs` queued or running per tenant and half of that per app (at least one), else the
//! start is [`Refused`]; each under the tenant's job deadline, never above the platform's.
//! The replica's worker slots are shared fairly: each tenant has its own queue; a free
//! worker takes the next job of the tenant running the fewest (round robin among equals),
//! and one tenant runs at most [`JobsOptions::tenant_workers`] jobs at once (one fewer than
//! the workers by default), so a flood from one tenant does not hold back another tenant's
//! job. Nobody's page waits for ever: a job whose page has not polled
//! for [`JobsOptions::unpolled`] is cancelled (queued or running), and a finished answer
//! nobody collects within that time is dropped; both are counted ([`Jobs::stats`]) and
//! logged. The answers this replica holds for a tenant count towards
//! [`JobsOptions::tenant_answer_bytes`]; an answer past it is replaced by a 429 error.
//!
//! This module knows nothing of HTTP or of Dash's wire format: [`crate::http::dash`]
//! decides when to start, poll and cancel, and [`crate::dash::background`] shapes answers.

mod memory;
mod redis;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::store::CallbackQuotas;

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
    /// The tenant or the app is at its cap of queued and running jobs.
    #[error(transparent)]
    Refused(#[from] Refused),
}

/// Why a job was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    /// The tenant's quota.
    #[error(
        "the tenant already has {max} background jobs queued or running, its quota; retry when one has finished"
    )]
    Tenant {
        /// The tenant's `max_jobs`.
        max: usize,
    },
    /// The app's share of the tenant's quota.
    #[error(
        "the app already has {max} background jobs queued or running (half of its tenant's quota of {tenant_max}); retry when one has finished"
    )]
    App {
        /// The app's cap.
        max: usize,
        /// The tenant's `max_jobs`.
        tenant_max: usize,
    },
}

/// Jobs one app may have queued or running: half its tenant's quota, at least one.
pub fn app_cap(tenant_max: usize) -> usize {
    (tenant_max / 2).max(1)
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

    /// The latest progress report (a JSON array) not taken yet, taken: a poll reports a
    /// progress once, as Dash's managers delete it when they read it.
    pub async fn take_progress(&self, id: &str) -> Result<Option<String>> {
        match self {
            JobStore::Memory(store) => Ok(store.take_progress(id)),
            JobStore::Redis(store) => store.take_progress(id).await,
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

    /// Note that the job's page asked about it now; the mark lasts `window`.
    pub async fn touch(&self, id: &str, window: Duration) -> Result<()> {
        match self {
            JobStore::Memory(store) => {
                store.touch(id);
                Ok(())
            }
            JobStore::Redis(store) => store.touch(id, window).await,
        }
    }

    /// Whether the job's page asked about it within the last `window` (the same window
    /// [`JobStore::touch`] was given).
    pub async fn polled_within(&self, id: &str, window: Duration) -> Result<bool> {
        match self {
            JobStore::Memory(store) => Ok(store.polled_within(id, window)),
            JobStore::Redis(store) => store.polled(id).await,
        }
    }
}

/// What a job runs: the component, the callback and the request the guest gets.
pub struct Work {
    /// The app version's component.
    pub component: sandbox::Dashboard,
    /// The guest's `run-callback` request JSON.
    pub request_json: String,
    /// Where the job's run is counted: the platform's usage and the app's ids.
    pub usage: Option<(
        Arc<crate::usage::Usage>,
        crate::ids::TenantId,
        crate::ids::AppId,
    )>,
}

/// How the queue of one replica runs jobs.
#[derive(Clone, Debug)]
pub struct JobsOptions {
    /// The platform's deadline of one job; a tenant's own job deadline may only be lower.
    pub deadline: Duration,
    /// Jobs running at once on this replica.
    pub workers: usize,
    /// Jobs of one tenant running at once on this replica (at most `workers`).
    pub tenant_workers: usize,
    /// A job whose page has not polled for this long is cancelled, and a finished answer
    /// nobody collected within it is dropped.
    pub unpolled: Duration,
    /// Bytes of finished answers this replica holds for one tenant, waiting to be
    /// collected.
    pub tenant_answer_bytes: usize,
}

impl JobsOptions {
    /// One tenant's share of `workers` when not configured: all but one (at least one),
    /// so that another tenant's job always finds a worker while one tenant floods.
    pub fn default_tenant_workers(workers: usize) -> usize {
        workers.saturating_sub(1).max(1)
    }
}

/// What the queue dropped because nobody was looking, since the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobStats {
    /// Finished answers dropped because their page never collected them.
    pub dropped_answers: u64,
    /// Queued or running jobs cancelled because their page stopped polling.
    pub cancelled_unpolled: u64,
}

/// The queue: a store plus this replica's worker slots.
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    store: JobStore,
    options: JobsOptions,
    /// Where jobs' log lines are shared with the other replicas (with Redis).
    app_log: crate::applog::LogFeed,
    book: Mutex<Book>,
    dropped_answers: AtomicU64,
    cancelled_unpolled: AtomicU64,
}

/// A job accepted and waiting for a worker.
struct Queued {
    job: Job,
    work: Work,
    deadline: Duration,
}

/// One tenant's jobs on this replica.
#[derive(Default)]
struct TenantBook {
    /// Queued plus running.
    active: usize,
    running: usize,
    /// Queued plus running, per app.
    apps: HashMap<String, usize>,
    queue: VecDeque<Queued>,
    /// Bytes of finished answers held, waiting to be collected.
    answer_bytes: usize,
}

/// This replica's view of its jobs.
#[derive(Default)]
struct Book {
    running: usize,
    tenants: HashMap<String, TenantBook>,
    /// Tenants with queued jobs, in the order they are served next.
    ring: VecDeque<String>,
    /// Finished jobs whose answers this replica holds: job id → (tenant, bytes, since).
    answers: HashMap<String, (String, usize, Instant)>,
}

impl Book {
    /// Forget the answer of job `id`, if this replica held it.
    fn release_answer(&mut self, id: &str) {
        if let Some((tenant, bytes, _)) = self.answers.remove(id)
            && let Some(book) = self.tenants.get_mut(&tenant)
        {
            book.answer_bytes = book.answer_bytes.saturating_sub(bytes);
            self.forget_idle(&tenant);
        }
    }

    /// Drop a tenant's entry once it holds nothing, so the map stays small.
    fn forget_idle(&mut self, tenant: &str) {
        if let Some(book) = self.tenants.get(tenant)
            && book.active == 0
            && book.answer_bytes == 0
        {
            self.tenants.remove(tenant);
        }
    }
}

/// The bytes an ended job's record holds in memory, roughly: what its answer carries.
fn answer_size(state: &JobState) -> usize {
    const RECORD: usize = 256;
    RECORD
        + match state {
            JobState::Done { outputs } => outputs.as_ref().map_or(0, String::len),
            JobState::Failed {
                message, detail, ..
            } => message.len() + detail.as_ref().map_or(0, String::len),
            _ => 0,
        }
}

fn lock(book: &Mutex<Book>) -> MutexGuard<'_, Book> {
    // Every critical section is plain bookkeeping; a panic cannot leave it half done.
    book.lock().unwrap_or_else(|e| e.into_inner())
}

impl Jobs {
    /// A queue over `store` running jobs as `options` say. Inside a Tokio runtime, it also
    /// starts the sweeper that drops answers nobody collects (until the queue is dropped).
    pub fn new(store: JobStore, mut options: JobsOptions, app_log: crate::applog::LogFeed) -> Self {
        options.workers = options.workers.max(1);
        options.tenant_workers = options.tenant_workers.clamp(1, options.workers);
        let inner = Arc::new(Inner {
            store,
            options,
            app_log,
            book: Mutex::default(),
            dropped_answers: AtomicU64::new(0),
            cancelled_unpolled: AtomicU64::new(0),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(Arc::downgrade(&inner)));
        }
        Self { inner }
    }

    /// The store.
    pub fn store(&self) -> &JobStore {
        &self.inner.store
    }

    /// What was dropped or cancelled because nobody polled, since the start.
    pub fn stats(&self) -> JobStats {
        JobStats {
            dropped_answers: self.inner.dropped_answers.load(Ordering::Relaxed),
            cancelled_unpolled: self.inner.cancelled_unpolled.load(Ordering::Relaxed),
        }
    }

    /// Accept a job under its tenant's `quotas` and queue it; returns its id, or
    /// [`Error::Refused`] when the tenant or the app is at its cap.
    pub async fn start(
        &self,
        owner: Owner,
        version: i64,
        callback: String,
        work: Work,
        quotas: &CallbackQuotas,
    ) -> Result<String> {
        let inner = &self.inner;
        let tenant_max = usize::try_from(quotas.max_jobs.max(1)).unwrap_or(usize::MAX);
        {
            let mut book = lock(&inner.book);
            let tenant = book.tenants.entry(owner.tenant.clone()).or_default();
            let app_max = app_cap(tenant_max);
            let refused = if tenant.active >= tenant_max {
                Some(Refused::Tenant { max: tenant_max })
            } else if tenant.apps.get(&owner.app).copied().unwrap_or(0) >= app_max {
                Some(Refused::App {
                    max: app_max,
                    tenant_max,
                })
            } else {
                None
            };
            if let Some(refused) = refused {
                book.forget_idle(&owner.tenant);
                return Err(refused.into());
            }
            tenant.active += 1;
            *tenant.apps.entry(owner.app.clone()).or_default() += 1;
        }
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
        let stored = async {
            inner.store.put(&job).await?;
            // The start is the page's first sign of life.
            inner.store.touch(&job.id, inner.options.unpolled).await
        }
        .await;
        if let Err(error) = stored {
            inner.leave(&job, false);
            return Err(error);
        }
        crate::observe::job("started");
        let deadline = crate::quota::job_deadline(inner.options.deadline, quotas);
        {
            let mut book = lock(&inner.book);
            let tenant = job.owner.tenant.clone();
            let Book { tenants, ring, .. } = &mut *book;
            tenants
                .entry(tenant.clone())
                .or_default()
                .queue
                .push_back(Queued {
                    job,
                    work,
                    deadline,
                });
            if !ring.contains(&tenant) {
                ring.push_back(tenant);
            }
        }
        Inner::dispatch(inner);
        Ok(id)
    }

    /// The job `id` if it exists and belongs to `owner`.
    pub async fn find(&self, owner: &Owner, id: &str) -> Result<Option<Job>> {
        Ok(self
            .inner
            .store
            .get(id)
            .await?
            .filter(|job| &job.owner == owner))
    }

    /// A poll of the job `id` of `owner` and `callback`: the job and its latest progress
    /// report, `None` if there is no such job. The poll keeps the job alive; a job that has
    /// ended is handed over once (its record is removed), as Dash's managers drop a
    /// result once read.
    pub async fn poll(
        &self,
        owner: &Owner,
        id: &str,
        callback: &str,
    ) -> Result<Option<(Job, Option<String>)>> {
        let store = &self.inner.store;
        let Some(job) = self
            .find(owner, id)
            .await?
            .filter(|job| job.callback == callback)
        else {
            return Ok(None);
        };
        store.touch(id, self.inner.options.unpolled).await?;
        let progress = store.take_progress(id).await?;
        if job.state.is_final() {
            store.remove(id).await?;
            lock(&self.inner.book).release_answer(id);
        }
        Ok(Some((job, progress)))
    }

    /// Ask the job `id` to stop, if it exists and belongs to `owner`; unknown ids are
    /// ignored, as Dash ignores handles it did not sign.
    pub async fn cancel(&self, owner: &Owner, id: &str) -> Result<bool> {
        match self.find(owner, id).await? {
            Some(job) if !job.state.is_final() => {
                self.inner.store.request_cancel(id).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl Inner {
    /// Start queued jobs while workers are free: tenants in turn, each below its share.
    fn dispatch(self: &Arc<Self>) {
        let mut starting = Vec::new();
        {
            let mut book = lock(&self.book);
            let Book {
                running,
                tenants,
                ring,
                ..
            } = &mut *book;
            while *running < self.options.workers {
                // The tenant running the fewest jobs goes first (the earliest in the ring
                // among equals): a tenant that just arrived is not served after one that
                // already holds workers.
                let Some(position) = ring
                    .iter()
                    .enumerate()
                    .filter_map(|(position, tenant)| {
                        let running = tenants.get(tenant)?.running;
                        (running < self.options.tenant_workers).then_some((running, position))
                    })
                    .min()
                    .map(|(_, position)| position)
                else {
                    break;
                };
                let Some(tenant) = ring.remove(position) else {
                    break;
                };
                let Some(book) = tenants.get_mut(&tenant) else {
                    continue;
                };
                let Some(queued) = book.queue.pop_front() else {
                    continue;
                };
                book.running += 1;
                *running += 1;
                if !book.queue.is_empty() {
                    // Served last next time round.
                    ring.push_back(tenant);
                }
                starting.push(queued);
            }
        }
        for queued in starting {
            let inner = self.clone();
            tokio::spawn(async move {
                let id = queued.job.id.clone();
                if let Err(error) = inner.clone().run(queued).await {
                    tracing::error!(job = %id, %error, "background job bookkeeping failed");
                }
            });
        }
    }

    /// Take `job` off the books (it ended or was never queued); `ran`: it held a worker.
    fn leave(&self, job: &Job, ran: bool) {
        let mut book = lock(&self.book);
        if ran {
            book.running = book.running.saturating_sub(1);
        }
        if let Some(tenant) = book.tenants.get_mut(&job.owner.tenant) {
            if ran {
                tenant.running = tenant.running.saturating_sub(1);
            }
            tenant.active = tenant.active.saturating_sub(1);
            if let Some(count) = tenant.apps.get_mut(&job.owner.app) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    tenant.apps.remove(&job.owner.app);
                }
            }
        }
        book.forget_idle(&job.owner.tenant);
    }

    /// Keep `job`'s ended state in the tenant's answer budget, or replace it by a 429
    /// error when the budget is spent.
    fn hold_answer(&self, job: &mut Job) {
        let mut book = lock(&self.book);
        let Book {
            tenants, answers, ..
        } = &mut *book;
        let tenant = tenants.entry(job.owner.tenant.clone()).or_default();
        let cap = self.options.tenant_answer_bytes;
        let mut size = answer_size(&job.state);
        if tenant.answer_bytes.saturating_add(size) > cap {
            tracing::warn!(tenant = %job.owner.tenant, app = %job.owner.app, job = %job.id, size, held = tenant.answer_bytes, cap, "background answer dropped: the tenant's answers waiting to be collected are at their cap");
            job.state = JobState::Failed {
                status: 429,
                code: "quota_exceeded".to_owned(),
                message: format!(
                    "the answer ({size} bytes) was dropped: the tenant's background answers waiting to be collected already hold {} of its {cap} bytes",
                    tenant.answer_bytes
                ),
                detail: None,
            };
            size = answer_size(&job.state);
        }
        tenant.answer_bytes += size;
        answers.insert(
            job.id.clone(),
            (job.owner.tenant.clone(), size, Instant::now()),
        );
    }

    /// Run one dispatched job to its end, then free its worker for the next.
    async fn run(self: Arc<Self>, queued: Queued) -> Result<()> {
        let Queued {
            mut job,
            work,
            deadline,
        } = queued;
        let result = self.execute(&mut job, work, deadline).await;
        self.leave(&job, true);
        Inner::dispatch(&self);
        result
    }

    /// A job whose page went away: nobody will read its answer.
    async fn abandon(&self, job: &mut Job) -> Result<()> {
        job.state = JobState::Cancelled;
        let total = self.cancelled_unpolled.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(tenant = %job.owner.tenant, app = %job.owner.app, job = %job.id, total, "background job cancelled: its page stopped polling");
        self.store.remove(&job.id).await
    }

    async fn execute(&self, job: &mut Job, work: Work, deadline: Duration) -> Result<()> {
        let window = self.options.unpolled;
        if self.store.cancel_requested(&job.id).await? {
            job.state = JobState::Cancelled;
            self.hold_answer(job);
            return self.store.put(job).await;
        }
        if !self.store.polled_within(&job.id, window).await? {
            return self.abandon(job).await;
        }
        job.state = JobState::Running;
        self.store.put(job).await?;

        let cancel = Arc::new(AtomicBool::new(false));
        let abandoned = Arc::new(AtomicBool::new(false));
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
            let abandoned = abandoned.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(CANCEL_POLL).await;
                    let (requested, polled) = match (
                        store.cancel_requested(&id).await,
                        store.polled_within(&id, window).await,
                    ) {
                        (Ok(requested), Ok(polled)) => (requested, polled),
                        (Err(error), _) | (_, Err(error)) => {
                            tracing::warn!(job = %id, %error, "reading the cancel flag failed");
                            continue;
                        }
                    };
                    if !polled {
                        abandoned.store(true, Ordering::Relaxed);
                    }
                    if requested || !polled {
                        cancel.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            })
        };
        let options = sandbox::CallOptions {
            deadline: Some(deadline),
            cancel: Some(cancel),
            progress: Some(Arc::new(move |json: String| {
                // The receiver lives until the call returns; a send can only fail after.
                let _ = progress_tx.send(json);
            })),
            // A job outlives its request: it runs without a viewer (`host.viewer` is none).
            // A job is long by nature: it runs as a long call from its first instruction
            // (the idle class, the long calls' cores), so a flood of jobs costs no
            // ordinary core.
            long: true,
            ..sandbox::CallOptions::default()
        };
        let callback = job.callback.clone();
        let Work {
            component,
            request_json,
            usage,
        } = work;
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            crate::capabilities::on_guest_thread(|| {
                component.call_with(&callback, &request_json, options)
            })
        })
        .await;
        watcher.abort();
        if let Some((usage, tenant, app)) = usage {
            let outcome = match &result {
                Ok(Ok(_)) => "ok",
                Ok(Err(failure)) => crate::observe::failure_outcome(&failure.error).0,
                Err(_) => "host",
            };
            usage.callback(tenant, app, outcome, started.elapsed());
        }
        // The sink was dropped with the call, so the writer ends once it has drained.
        let _ = writer.await;
        job.state = match result {
            Ok(Ok(output)) => {
                log_lines(&self.app_log, job, &output.logs);
                match output.outcome {
                    sandbox::Outcome::Outputs(json) => JobState::Done {
                        outputs: Some(json),
                    },
                    sandbox::Outcome::PreventUpdate => JobState::Done { outputs: None },
                }
            }
            Ok(Err(failure)) => {
                log_lines(&self.app_log, job, &failure.logs);
                if matches!(failure.error, sandbox::Error::Cancelled) {
                    tracing::info!(job = %job.id, "background job cancelled");
                    JobState::Cancelled
                } else {
                    let error_id = crate::error::new_error_id();
                    tracing::warn!(target: "tessera::app_log", tenant = %job.owner.tenant, app = %job.owner.app, version = job.version, job = %job.id, %error_id, error = %failure.error, "background job failed");
                    crate::applog::global().record_failure(
                        job_log_source(&self.app_log, job),
                        &format!(
                            "background callback {} failed (error id {error_id}): {}",
                            job.callback, failure.error
                        ),
                    );
                    let error =
                        crate::error::ApiError::from_callback(&failure.error, &error_id, false);
                    let detail =
                        crate::error::ApiError::from_callback(&failure.error, &error_id, true)
                            .with_log_tail(&failure.logs);
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
        crate::observe::job(match &job.state {
            JobState::Done { .. } => "ok",
            JobState::Cancelled => "cancelled",
            _ => "failed",
        });
        if abandoned.load(Ordering::Relaxed) {
            return self.abandon(job).await;
        }
        self.hold_answer(job);
        self.store.put(job).await
    }

    /// Drop the answers this replica holds that nobody collected within the window, and
    /// forget those collected through another replica.
    async fn sweep_once(&self) -> Result<()> {
        // Only answers held for a whole window can have gone unpolled for one: a job
        // running without polls is cancelled, so its page polled within the window before
        // it ended. That keeps the store's work to the answers that are due.
        let window = self.options.unpolled;
        let held: Vec<String> = lock(&self.book)
            .answers
            .iter()
            .filter(|(_, (_, _, since))| since.elapsed() >= window)
            .map(|(id, _)| id.clone())
            .collect();
        let mut dropped = 0;
        for id in held {
            if self.store.get(&id).await?.is_some() {
                if self.store.polled_within(&id, window).await? {
                    continue;
                }
                self.store.remove(&id).await?;
                dropped += 1;
            }
            lock(&self.book).release_answer(&id);
        }
        if dropped > 0 {
            let total = self.dropped_answers.fetch_add(dropped, Ordering::Relaxed) + dropped;
            tracing::info!(
                dropped,
                total,
                "dropped background answers nobody collected"
            );
        }
        Ok(())
    }
}

/// Sweep now and then until the queue is dropped.
async fn sweep(inner: Weak<Inner>) {
    loop {
        let Some(period) = inner.upgrade().map(|inner| {
            (inner.options.unpolled / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
        }) else {
            return;
        };
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if let Err(error) = inner.sweep_once().await {
            tracing::warn!(%error, "sweeping background answers failed");
        }
    }
}

fn log_lines(feed: &crate::applog::LogFeed, job: &Job, lines: &[sandbox::LogLine]) {
    let source = job_log_source(feed, job);
    crate::applog::global().write(source, lines.to_vec());
}

fn job_log_source(feed: &crate::applog::LogFeed, job: &Job) -> crate::applog::Source {
    crate::applog::Source {
        tenant: job.owner.tenant.to_string(),
        app: job.owner.app.to_string(),
        version: job.version,
        job: Some(job.id.to_string()),
        // A job outlives the request that started it: its id is what ties the lines.
        request_id: None,
        // Written by the long-work writer, as the job ran.
        heavy: true,
        shared: feed.publisher(),
    }
}
