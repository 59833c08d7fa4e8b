//! Metrics in Prometheus' text format (`GET /metrics` on the platform origin).
//!
//! Names are `tessera_`-prefixed with their unit (`_seconds`, `_total`). Label values are
//! bounded: HTTP routes are the router's templates (`/apps/{tenant}/{app}/_dash-layout`),
//! never raw paths; callbacks carry `tenant` and `app` for the first
//! [`MAX_APP_LABELS`] apps this process served, every later one is counted as
//! `tenant="other", app="other"`. Tenant and app names are not public, so the endpoint
//! answers only a bearer token the operator configured ([`scrape_allowed`]).
//!
//! The recorder is process-wide (the `metrics` facade): every [`crate::state::App`] in a
//! process records into the same registry. Without [`install`], recording is a no-op.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// How many (tenant, app) pairs get labels of their own; the rest are "other".
pub const MAX_APP_LABELS: usize = 100;

/// Histogram buckets, in seconds: a millisecond callback to a ten-minute build.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 600.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static APP_LABELS: OnceLock<Mutex<HashSet<(String, String)>>> = OnceLock::new();

/// Install the process-wide recorder (once; later calls return the same handle). `None`
/// when another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .expect("the bucket list is not empty");
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "tessera_http_requests_total",
        "HTTP requests by route template and status"
    );
    describe_histogram!(
        "tessera_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request duration by route template"
    );
    describe_counter!(
        "tessera_callbacks_total",
        "Dash callbacks run in the sandbox by tenant, app and outcome"
    );
    describe_histogram!(
        "tessera_callback_duration_seconds",
        Unit::Seconds,
        "Dash callback duration in the sandbox"
    );
    describe_counter!(
        "tessera_sandbox_instantiations_total",
        "Guest instances created"
    );
    describe_counter!(
        "tessera_sandbox_traps_total",
        "Guest calls stopped by a limit or a trap, by kind"
    );
    describe_counter!("tessera_builds_total", "Builds of pushed apps by outcome");
    describe_histogram!(
        "tessera_build_duration_seconds",
        Unit::Seconds,
        "Build duration of pushed apps"
    );
    describe_counter!(
        "tessera_jobs_total",
        "Background callbacks by event (started, ok, failed)"
    );
    describe_counter!(
        "tessera_cache_hits_total",
        "Lookups answered from a cache, by cache"
    );
    describe_counter!(
        "tessera_cache_misses_total",
        "Lookups a cache could not answer, by cache"
    );
    describe_gauge!(
        "tessera_db_pool_connections",
        "Open database connections of this replica"
    );
    describe_gauge!(
        "tessera_db_pool_idle_connections",
        "Idle database connections of this replica"
    );
    describe_gauge!(
        "tessera_redis_up",
        "1 when Redis answered the last scrape's ping, 0 when not (absent without Redis)"
    );
}

/// Whether a scrape with `authorization` (the request's header) may read the metrics:
/// only with the configured token; with none configured, nobody may.
pub fn scrape_allowed(token: Option<&str>, authorization: Option<&str>) -> bool {
    let (Some(token), Some(given)) = (token, authorization.and_then(|h| h.strip_prefix("Bearer ")))
    else {
        return false;
    };
    subtle::ConstantTimeEq::ct_eq(token.as_bytes(), given.trim().as_bytes()).into()
}

/// The gauges read at scrape time.
pub struct Snapshot {
    /// The pool's open and idle connections.
    pub pool: (u32, usize),
    /// `Some(up)` when Redis is configured.
    pub redis_up: Option<bool>,
}

/// What `/readyz` reports: the database, and Redis when configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// The database answered.
    pub database: bool,
    /// `Some(answered)` when Redis is configured.
    pub redis: Option<bool>,
}

impl Readiness {
    /// Ask the database and Redis (both at once).
    pub async fn check(store: &crate::store::Store, cache: &crate::cache::Cache) -> Self {
        let (database, redis) = tokio::join!(store.ping(), cache.redis_up());
        if let Err(error) = &database {
            tracing::warn!(%error, "readiness: the database does not answer");
        }
        Self {
            database: database.is_ok(),
            redis,
        }
    }

    /// Whether this replica should get traffic: the database answers. Redis being down
    /// degrades every replica alike (the cache is bypassed), so it never takes one out of
    /// rotation: a load balancer would otherwise take them all out at once.
    pub fn ready(&self) -> bool {
        self.database
    }

    /// Ready, but Redis (configured) does not answer.
    pub fn degraded(&self) -> bool {
        self.database && self.redis == Some(false)
    }
}

/// The text a scrape gets: `snapshot`'s gauges and everything recorded so far. `None`
/// without a recorder.
pub fn render(snapshot: &Snapshot) -> Option<String> {
    let handle = HANDLE.get()?.as_ref()?;
    metrics::gauge!("tessera_db_pool_connections").set(f64::from(snapshot.pool.0));
    metrics::gauge!("tessera_db_pool_idle_connections").set(snapshot.pool.1 as f64);
    if let Some(up) = snapshot.redis_up {
        metrics::gauge!("tessera_redis_up").set(if up { 1.0 } else { 0.0 });
    }
    metrics::counter!("tessera_sandbox_instantiations_total").absolute(sandbox::instantiations());
    Some(handle.render())
}

/// One HTTP request answered on `route` (a template, or "unmatched").
pub fn http_request(route: &str, status: u16, elapsed: Duration) {
    let route = route.to_owned();
    metrics::counter!("tessera_http_requests_total", "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("tessera_http_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
}

/// The labels `tenant/app` is counted under: its own for the first [`MAX_APP_LABELS`]
/// apps, "other" after.
fn app_labels(tenant: &str, app: &str) -> (String, String) {
    let known = APP_LABELS.get_or_init(Mutex::default);
    let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
    let pair = (tenant.to_owned(), app.to_owned());
    if known.contains(&pair) {
        return pair;
    }
    if known.len() < MAX_APP_LABELS {
        known.insert(pair.clone());
        return pair;
    }
    ("other".to_owned(), "other".to_owned())
}

/// One callback of `tenant/app` ran in the sandbox for `elapsed`; `outcome` is `ok`,
/// `prevent_update`, `error` (the author's), `invalid_input` or a trap kind.
pub fn callback(tenant: &str, app: &str, outcome: &'static str, elapsed: Duration) {
    let (tenant, app) = app_labels(tenant, app);
    metrics::counter!("tessera_callbacks_total", "tenant" => tenant.clone(), "app" => app.clone(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("tessera_callback_duration_seconds", "tenant" => tenant, "app" => app)
        .record(elapsed.as_secs_f64());
}

/// The outcome label of a failed call, and whether it is a trap (counted by kind too).
pub fn failure_outcome(error: &sandbox::Error) -> (&'static str, bool) {
    use sandbox::Error as E;
    match error {
        E::Callback { .. } => ("error", false),
        E::InvalidInput { .. } => ("invalid_input", false),
        E::Cancelled => ("cancelled", false),
        E::Deadline { .. } => ("deadline", true),
        E::Memory { .. } => ("memory", true),
        E::OutputTooLarge { .. } | E::InputTooLarge { .. } => ("output", true),
        E::Panic { .. } => ("panic", true),
        E::Trap { .. } => ("trap", true),
        _ => ("host", false),
    }
}

/// A guest call stopped by a limit or a trap of `kind`.
pub fn sandbox_trap(kind: &'static str) {
    metrics::counter!("tessera_sandbox_traps_total", "kind" => kind).increment(1);
}

/// A build of a push ended with `outcome` (`ok` or `failed`) after `elapsed`.
pub fn build(outcome: &'static str, elapsed: Duration) {
    metrics::counter!("tessera_builds_total", "outcome" => outcome).increment(1);
    metrics::histogram!("tessera_build_duration_seconds").record(elapsed.as_secs_f64());
}

/// A background callback `event`: `started`, `ok` or `failed`.
pub fn job(event: &'static str) {
    metrics::counter!("tessera_jobs_total", "event" => event).increment(1);
}

/// A lookup in `cache` (`access`, `live_app`, `shared`) was a hit or a miss.
pub fn cache_lookup(cache: &'static str, hit: bool) {
    if hit {
        metrics::counter!("tessera_cache_hits_total", "cache" => cache).increment(1);
    } else {
        metrics::counter!("tessera_cache_misses_total", "cache" => cache).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scraping_needs_the_configured_token() {
        assert!(!scrape_allowed(None, None));
        assert!(!scrape_allowed(None, Some("Bearer anything")));
        assert!(!scrape_allowed(Some("s3cret"), None));
        assert!(!scrape_allowed(Some("s3cret"), Some("Bearer s3cre")));
        assert!(!scrape_allowed(Some("s3cret"), Some("Basic s3cret")));
        assert!(scrape_allowed(Some("s3cret"), Some("Bearer s3cret")));
    }

    #[test]
    fn app_labels_are_bounded() {
        for n in 0..MAX_APP_LABELS + 10 {
            let _ = app_labels("bounded", &format!("app-{n}"));
        }
        let known = APP_LABELS.get().expect("set").lock().expect("lock").len();
        assert!(known <= MAX_APP_LABELS, "{known} labels kept");
        assert_eq!(
            app_labels("bounded", "one-more"),
            ("other".to_owned(), "other".to_owned())
        );
    }
}
