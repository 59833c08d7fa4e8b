//! The platform's side of the guest capabilities of WIT 0.2.0: `data.query` runs on the
//! tenant's data sources ([`crate::datasources`]) and `cache` on the shared cache
//! ([`crate::cache`]), each for the app that owns the component and nobody else.
//!
//! The sandbox calls these with the call's CPU ticket given back, so they may block on the
//! server's runtime (`Handle::block_on`) until the domain function answers, the call's
//! deadline passes or the call is cancelled ([`until_over`]). They run on the guest's own
//! thread when the platform runs that guest from a blocking-pool thread
//! ([`on_guest_thread`]: no hop to another thread per host call), else on the sandbox's
//! helper thread (never a tokio worker).

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sandbox::{CallContext, QueryError};
use tokio::runtime::Handle;

use crate::cache::{Cache, CacheScope};
use crate::datasources::{self, DataSources, QueryContext};
use crate::ids::{AppId, TenantId, UserId};

/// What every app's guest may reach, scoped per call to the component's owner.
pub struct PlatformCapabilities {
    datasources: Arc<DataSources>,
    cache: Arc<Cache>,
    runtime: Handle,
}

impl PlatformCapabilities {
    /// Capabilities backed by `datasources` and `cache`, run on `runtime`.
    pub fn new(datasources: Arc<DataSources>, cache: Arc<Cache>, runtime: Handle) -> Self {
        Self {
            datasources,
            cache,
            runtime,
        }
    }
}

impl PlatformCapabilities {
    /// The cache quota of `tenant`'s guests (its `cache_bytes`).
    pub fn set_cache_quota(&self, tenant: TenantId, bytes: i64) {
        self.cache.set_tenant_quota(tenant, bytes);
    }
}

thread_local! {
    /// Whether this thread runs a guest for the platform outside the runtime's workers
    /// ([`on_guest_thread`]), so its host calls may block it on the runtime.
    static GUEST_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `call` (a sandbox call: load, layout, callback) with this thread marked as one
/// whose guest's data and cache calls may block it on the runtime, rather than hop to the
/// sandbox's helper thread. Only for a thread that is not a runtime's worker (the
/// closure of a `spawn_blocking`): `Handle::block_on` would panic on a worker.
pub fn on_guest_thread<T>(call: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GUEST_THREAD.with(|marked| marked.set(self.0));
        }
    }
    let _restore = Restore(GUEST_THREAD.with(|marked| marked.replace(true)));
    call()
}

/// How often work waiting on the runtime looks at its call's cancellation flag.
const CANCEL_CHECK: Duration = Duration::from_millis(50);

/// Runs `work` on `runtime` from this thread (not a worker) until it answers, `deadline`
/// passes or `cancelled` says so (asked every [`CANCEL_CHECK`]); `None` in the last two
/// cases, with `work` dropped (a query's connection is then closed, `datasources::exec`).
fn until_over<F: Future>(
    runtime: &Handle,
    deadline: std::time::Instant,
    cancelled: impl Fn() -> bool,
    work: F,
) -> Option<F::Output> {
    // The timers are made inside the runtime: they need its driver.
    runtime.block_on(async {
        let watch = async {
            while !cancelled() {
                tokio::time::sleep(CANCEL_CHECK).await;
            }
        };
        tokio::select! {
            biased;
            answer = work => Some(answer),
            () = tokio::time::sleep_until(deadline.into()) => None,
            () = watch => None,
        }
    })
}

fn owner_ids(call: &CallContext) -> (TenantId, AppId) {
    (TenantId(call.owner.tenant), AppId(call.owner.app))
}

/// The cache namespace of the component's app. A deploy's check instance (app 0) gets a
/// namespace of its own that no app shares.
fn scope(call: &CallContext) -> CacheScope {
    let (tenant, app) = owner_ids(call);
    CacheScope { tenant, app }
}

/// The viewer a query may see: none in a memoized call, whose answer is shared between
/// viewers, so row-level security then sees an anonymous viewer.
fn query_viewer(call: &CallContext) -> Option<datasources::Viewer> {
    if call.memoized {
        return None;
    }
    let viewer = call.viewer.as_ref()?;
    Some(datasources::Viewer {
        user_id: UserId(viewer.user_id.parse().ok()?),
        email: viewer.email.clone().unwrap_or_default(),
        groups: viewer.groups.clone(),
    })
}

fn query_param(param: &sandbox::Param) -> datasources::Param {
    match param {
        sandbox::Param::Null => datasources::Param::Null,
        sandbox::Param::Boolean(b) => datasources::Param::Bool(*b),
        sandbox::Param::Integer(i) => datasources::Param::Int(*i),
        sandbox::Param::Float(f) => datasources::Param::Float(*f),
        sandbox::Param::Text(t) => datasources::Param::Text(t.clone()),
    }
}

fn query_error(error: datasources::QueryError) -> QueryError {
    match error {
        datasources::QueryError::NotGranted(m) => QueryError::NotGranted(m),
        datasources::QueryError::Refused(m) => QueryError::Refused(m),
        datasources::QueryError::Limit(m) => QueryError::Limit(m),
        datasources::QueryError::Failed(m) => QueryError::Failed(m),
        datasources::QueryError::Unavailable(m) => QueryError::Unavailable(m),
    }
}

impl sandbox::Capabilities for PlatformCapabilities {
    fn query(
        &self,
        call: &CallContext,
        source: &str,
        sql: &str,
        params: &[sandbox::Param],
    ) -> Result<Vec<u8>, QueryError> {
        let (tenant, app) = owner_ids(call);
        let context = QueryContext {
            tenant,
            app,
            viewer: query_viewer(call),
        };
        let params: Vec<datasources::Param> = params.iter().map(query_param).collect();
        let query = self
            .datasources
            .query(context, source, sql, &params, call.deadline.into());
        let output = self
            .until_over(call, query)
            .ok_or_else(|| {
                // The sandbox fails the call as stopped: this sentence is not seen.
                QueryError::Limit("the callback ended before the query answered".into())
            })?
            .map_err(query_error)?;
        // The sandbox refuses an answer over `call.max_answer_bytes` before the guest sees it.
        Ok(output.arrow_ipc)
    }

    fn cache_get(&self, call: &CallContext, key: &str) -> Result<Option<Vec<u8>>, String> {
        let get = self.cache.get(scope(call), key);
        match self.until_over(call, get) {
            Some(result) => result.map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    fn cache_set(
        &self,
        call: &CallContext,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), String> {
        let set = self.cache.set(scope(call), key, value, ttl);
        match self.until_over(call, set) {
            Some(result) => result.map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    fn cache_delete(&self, call: &CallContext, key: &str) -> Result<(), String> {
        let delete = self.cache.delete(scope(call), key);
        match self.until_over(call, delete) {
            Some(result) => result.map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    fn runs_on_caller(&self) -> bool {
        GUEST_THREAD.with(Cell::get)
    }
}

impl PlatformCapabilities {
    /// `work` on the server's runtime until it answers or `call` is over.
    fn until_over<F: Future>(&self, call: &CallContext, work: F) -> Option<F::Output> {
        until_over(&self.runtime, call.deadline, || call.cancelled(), work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// On a blocking-pool thread marked by `on_guest_thread`, work blocks on the runtime
    /// until it answers, its deadline passes or it is cancelled; the mark ends with the
    /// call and is never on a worker.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn work_on_a_guest_thread_ends_at_its_answer_its_deadline_or_its_cancellation() {
        assert!(
            !GUEST_THREAD.with(Cell::get),
            "a worker is not a guest thread"
        );
        let runtime = Handle::current();
        let far = || std::time::Instant::now() + Duration::from_secs(60);
        let outcome = tokio::task::spawn_blocking(move || {
            let marked = on_guest_thread(|| {
                let marked = GUEST_THREAD.with(Cell::get);
                let answered = until_over(&runtime, far(), || false, async {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    7
                });
                let soon = std::time::Instant::now() + Duration::from_millis(50);
                let past_deadline =
                    until_over(&runtime, soon, || false, std::future::pending::<()>());
                let looks = AtomicUsize::new(0);
                let cancelled = until_over(
                    &runtime,
                    far(),
                    || looks.fetch_add(1, Ordering::Relaxed) >= 2,
                    std::future::pending::<()>(),
                );
                (
                    marked,
                    answered,
                    past_deadline,
                    cancelled,
                    looks.into_inner(),
                )
            });
            (marked, GUEST_THREAD.with(Cell::get))
        })
        .await
        .expect("the blocking task");
        let ((marked, answered, past_deadline, cancelled, looks), after) = outcome;
        assert!(marked && !after, "marked only during the call");
        assert_eq!(answered, Some(7));
        assert_eq!(past_deadline, None);
        assert_eq!(cancelled, None);
        assert_eq!(looks, 3, "stopped at the look that saw the cancellation");
    }
}
