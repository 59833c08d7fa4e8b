//! Usage of each app per minute, for the console's charts and `GET …/apps/{app}/usage`:
//! callbacks run in the sandbox (HTTP, WebSocket and background jobs), failures, sandbox
//! limit hits, shared-cache hits and misses, and the callbacks' latency as a histogram.
//!
//! Counted where the `tessera_` metrics are ([`crate::observe`]): [`Usage::callback`] next to
//! `observe::callback` (`http::dash`'s `run_callback`, which WebSocket callbacks run too) and
//! at the end of a job (`jobs`), [`Usage::cache_lookup`] in [`crate::cache::Cache::get`]
//! (a guest's `cache.get` and memoized callbacks' lookups, scoped to their app).
//!
//! Each process keeps its counts in memory by (tenant, app, minute), at most
//! [`MAX_APPS_PER_MINUTE`] apps a minute and [`MAX_PENDING_MINUTES`] minutes (more are
//! counted into nothing, noted once in the log), so no tenant can grow the server's memory
//! without end. [`Usage::flush`] adds them to `app_usage` about once a minute
//! ([`spawn_flushing`], and once more at a graceful stop); replicas sharing a database each
//! add their own, so the stored rows are the sum. [`app_usage`] merges the stored minutes
//! with this process's unflushed ones, so the current minute shows at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::clock::SharedClock;
use crate::ids::{AppId, TenantId};
use crate::manage::Refusal;
use crate::policy::{Action, Principal};
use crate::state::AppState;
use crate::store::{Store, UsageRow};

/// Upper bounds of the latency buckets, in ms (the callback part of
/// [`crate::observe`]'s buckets, up to 60 s); one more bucket counts the rest.
pub const BOUNDS_MS: [f64; BUCKETS - 1] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0,
    30_000.0, 60_000.0,
];
/// How many latency buckets (the last one without an upper bound).
pub const BUCKETS: usize = 16;
/// Distinct apps counted per minute in one process; later ones are not counted.
pub const MAX_APPS_PER_MINUTE: usize = 10_000;
/// Minutes kept in memory while the database does not take them; older ones are dropped.
pub const MAX_PENDING_MINUTES: usize = 5;
/// How long stored minutes are kept.
pub const RETENTION_MS: i64 = 8 * 24 * 60 * MINUTE_MS;
/// How often a process adds its counts to the database.
pub const FLUSH_EVERY: Duration = Duration::from_secs(60);
const MINUTE_MS: i64 = 60_000;

/// What was counted for one app in one minute (or summed over several).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Callbacks run in the sandbox (jobs included), whatever their outcome.
    pub callbacks: u64,
    /// Of them, those that failed (the author's error, a trap or limit, invalid input).
    pub errors: u64,
    /// Of the failures, those stopped by a sandbox limit: deadline, memory, output size.
    pub limit_hits: u64,
    /// Shared-cache lookups answered.
    pub cache_hits: u64,
    /// Shared-cache lookups not answered.
    pub cache_misses: u64,
    /// The callbacks' total duration, µs.
    pub latency_sum_us: u64,
    /// The callbacks by duration: `buckets[i]` counts those up to `BOUNDS_MS[i]` (and over
    /// the previous bound), the last those over 60 s.
    pub buckets: [u64; BUCKETS],
}

impl Counts {
    /// Add `other` to these.
    pub fn add(&mut self, other: &Counts) {
        self.callbacks += other.callbacks;
        self.errors += other.errors;
        self.limit_hits += other.limit_hits;
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
        self.latency_sum_us += other.latency_sum_us;
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
    }

    /// Take `other` (counted earlier into these) out again.
    fn subtract(&mut self, other: &Counts) {
        self.callbacks = self.callbacks.saturating_sub(other.callbacks);
        self.errors = self.errors.saturating_sub(other.errors);
        self.limit_hits = self.limit_hits.saturating_sub(other.limit_hits);
        self.cache_hits = self.cache_hits.saturating_sub(other.cache_hits);
        self.cache_misses = self.cache_misses.saturating_sub(other.cache_misses);
        self.latency_sum_us = self.latency_sum_us.saturating_sub(other.latency_sum_us);
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine = mine.saturating_sub(theirs);
        }
    }

    fn is_empty(&self) -> bool {
        *self == Counts::default()
    }

    /// Count one callback that ran for `elapsed` with `outcome` ([`crate::observe`]'s
    /// label: `ok`, `prevent_update`, `cancelled`, or a failure).
    pub fn count_callback(&mut self, outcome: &str, elapsed: Duration) {
        self.callbacks += 1;
        if !matches!(outcome, "ok" | "prevent_update" | "cancelled") {
            self.errors += 1;
        }
        if matches!(outcome, "deadline" | "memory" | "output") {
            self.limit_hits += 1;
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us = self.latency_sum_us.saturating_add(micros);
        let ms = elapsed.as_secs_f64() * 1000.0;
        let bucket = BOUNDS_MS
            .iter()
            .position(|&bound| ms <= bound)
            .unwrap_or(BUCKETS - 1);
        self.buckets[bucket] += 1;
    }

    /// The `q` quantile (0 to 1) of the latency in ms, interpolated linearly within its
    /// bucket as Prometheus' `histogram_quantile` does (the first bucket from 0; in the
    /// last, unbounded bucket: the highest bound). `None` without callbacks.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &count) in self.buckets.iter().enumerate() {
            if count > 0 && (below + count) as f64 >= rank {
                let Some(&upper) = BOUNDS_MS.get(i) else {
                    return Some(BOUNDS_MS[BUCKETS - 2]);
                };
                let lower = if i == 0 { 0.0 } else { BOUNDS_MS[i - 1] };
                let within = ((rank - below as f64) / count as f64).clamp(0.0, 1.0);
                return Some(lower + (upper - lower) * within);
            }
            below += count;
        }
        Some(BOUNDS_MS[BUCKETS - 2])
    }

    /// Hits over lookups, `None` without lookups.
    pub fn cache_hit_ratio(&self) -> Option<f64> {
        let lookups = self.cache_hits + self.cache_misses;
        (lookups > 0).then(|| self.cache_hits as f64 / lookups as f64)
    }
}

/// Counts by minute (start, Unix ms), then by app.
type Minutes = BTreeMap<i64, HashMap<(TenantId, AppId), Counts>>;

/// One process's counts not yet added to the database.
pub struct Usage {
    clock: SharedClock,
    pending: Mutex<Minutes>,
    /// Counts that found no room (bounds), since the start.
    dropped: AtomicU64,
    /// Whether the first drop was logged.
    noted: AtomicBool,
}

impl Usage {
    /// Nothing counted yet; minutes by `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            pending: Mutex::default(),
            dropped: AtomicU64::new(0),
            noted: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Minutes> {
        // Every critical section is plain arithmetic; a panic cannot leave it half done.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn minute_now(&self) -> i64 {
        self.clock.now_millis().div_euclid(MINUTE_MS) * MINUTE_MS
    }

    /// Count into `app`'s current minute, within the bounds.
    fn count(&self, tenant: TenantId, app: AppId, counting: impl FnOnce(&mut Counts)) {
        // App 0: a deploy's check instance, no app's usage.
        if app.0 == 0 {
            return;
        }
        let minute = self.minute_now();
        let mut pending = self.lock();
        if !pending.contains_key(&minute) && pending.len() >= MAX_PENDING_MINUTES {
            match pending.keys().next().copied() {
                Some(oldest) if oldest < minute => {
                    let lost = pending.remove(&oldest).map_or(0, |apps| apps.len());
                    self.dropped(lost as u64, "minutes the database did not take");
                }
                // A clock that went back: count into nothing rather than grow.
                _ => return self.dropped(1, "a minute before the pending ones"),
            }
        }
        let apps = pending.entry(minute).or_default();
        let key = (tenant, app);
        if !apps.contains_key(&key) && apps.len() >= MAX_APPS_PER_MINUTE {
            return self.dropped(1, "more apps in a minute than counted");
        }
        counting(apps.entry(key).or_default());
    }

    fn dropped(&self, n: u64, why: &'static str) {
        let total = self.dropped.fetch_add(n, Ordering::Relaxed) + n;
        if !self.noted.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                why,
                total,
                "app usage not counted (noted once; see the bounds in usage.rs)"
            );
        }
    }

    /// Counts that found no room since the start.
    pub fn dropped_counts(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// One callback of `app` ran for `elapsed` with `outcome` (see
    /// [`Counts::count_callback`]).
    pub fn callback(&self, tenant: TenantId, app: AppId, outcome: &str, elapsed: Duration) {
        self.count(tenant, app, |c| c.count_callback(outcome, elapsed));
    }

    /// A shared-cache lookup of `app` was a hit or a miss.
    pub fn cache_lookup(&self, tenant: TenantId, app: AppId, hit: bool) {
        self.count(tenant, app, |c| match hit {
            true => c.cache_hits += 1,
            false => c.cache_misses += 1,
        });
    }

    /// This process's unflushed counts of `app` from `since` (Unix ms), by minute.
    pub fn pending(&self, tenant: TenantId, app: AppId, since: i64) -> Vec<(i64, Counts)> {
        self.lock()
            .range(since..)
            .filter_map(|(minute, apps)| apps.get(&(tenant, app)).map(|c| (*minute, *c)))
            .collect()
    }

    /// Add the unflushed counts to the database and prune the minutes older than
    /// [`RETENTION_MS`]. The counts stay visible in memory while they are written and are
    /// taken out only after the commit; if the write fails they stay for the next flush.
    pub async fn flush(&self, store: &Store) -> crate::store::Result<u64> {
        let snapshot = self.lock().clone();
        let rows: Vec<UsageRow> = snapshot
            .iter()
            .flat_map(|(&minute, apps)| {
                apps.iter().map(move |(&(tenant, app), &counts)| UsageRow {
                    tenant,
                    app,
                    minute,
                    counts,
                })
            })
            .collect();
        let prune_before = self.clock.now_millis() - RETENTION_MS;
        let (written, pruned) = store.add_app_usage(&rows, prune_before).await?;
        if pruned > 0 {
            tracing::debug!(pruned, "pruned app usage older than the retention");
        }
        let mut pending = self.lock();
        for (minute, apps) in &snapshot {
            let Some(now) = pending.get_mut(minute) else {
                continue;
            };
            for (key, flushed) in apps {
                if let Some(counts) = now.get_mut(key) {
                    counts.subtract(flushed);
                    if counts.is_empty() {
                        now.remove(key);
                    }
                }
            }
            if now.is_empty() {
                pending.remove(minute);
            }
        }
        Ok(written)
    }
}

/// Flush `state`'s usage every [`FLUSH_EVERY`] (a failure is logged; the counts wait).
pub fn spawn_flushing(state: AppState) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(FLUSH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            if let Err(error) = state.usage.flush(&state.store).await {
                tracing::warn!(%error, "adding app usage to the database failed");
            }
        }
    });
}

/// The time span of a usage answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Window {
    /// The last hour, by minute.
    #[default]
    Hour,
    /// The last six hours, by five minutes.
    SixHours,
    /// The last day, by fifteen minutes.
    Day,
}

impl Window {
    /// Every window, in the console's order.
    pub const ALL: [Window; 3] = [Window::Hour, Window::SixHours, Window::Day];

    /// `1h`, `6h`, `24h`.
    pub fn name(self) -> &'static str {
        match self {
            Window::Hour => "1h",
            Window::SixHours => "6h",
            Window::Day => "24h",
        }
    }

    /// The window named `name` (`1h`, `6h`, `24h`).
    pub fn parse(name: &str) -> Result<Self, Refusal> {
        Window::ALL
            .into_iter()
            .find(|w| w.name() == name)
            .ok_or_else(|| Refusal::Invalid(format!("window must be 1h, 6h or 24h, got {name:?}")))
    }

    /// Minutes per point.
    pub fn step_minutes(self) -> i64 {
        match self {
            Window::Hour => 1,
            Window::SixHours => 5,
            Window::Day => 15,
        }
    }

    /// Points in the series.
    pub fn points(self) -> i64 {
        match self {
            Window::Hour => 60,
            Window::SixHours => 72,
            Window::Day => 96,
        }
    }
}

/// One point of a usage series: the counts of a step (one or more minutes).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UsagePoint {
    /// The step's start, Unix ms.
    pub at: i64,
    /// Callbacks run in it.
    pub callbacks: u64,
    /// Of them, failures.
    pub errors: u64,
    /// Of the failures, sandbox limit hits.
    pub limit_hits: u64,
    /// Shared-cache hits.
    pub cache_hits: u64,
    /// Shared-cache misses.
    pub cache_misses: u64,
    /// Hits over lookups (`None` without lookups).
    pub cache_hit_ratio: Option<f64>,
    /// Median latency, ms (`None` without callbacks).
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, ms (`None` without callbacks).
    pub p99_ms: Option<f64>,
    /// Mean latency, ms (`None` without callbacks).
    pub mean_ms: Option<f64>,
}

impl UsagePoint {
    /// The point of `counts` at `at`.
    pub fn of(at: i64, counts: &Counts) -> Self {
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        Self {
            at,
            callbacks: counts.callbacks,
            errors: counts.errors,
            limit_hits: counts.limit_hits,
            cache_hits: counts.cache_hits,
            cache_misses: counts.cache_misses,
            cache_hit_ratio: counts.cache_hit_ratio().map(round),
            p50_ms: counts.latency_quantile_ms(0.5).map(round),
            p99_ms: counts.latency_quantile_ms(0.99).map(round),
            mean_ms: (counts.callbacks > 0)
                .then(|| round(counts.latency_sum_us as f64 / 1000.0 / counts.callbacks as f64)),
        }
    }
}

/// One app's usage over a window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AppUsage {
    /// The window.
    pub window: &'static str,
    /// Minutes per point.
    pub step_minutes: i64,
    /// The points, oldest first, every step of the window (empty ones too); the last holds
    /// the current minute.
    pub points: Vec<UsagePoint>,
    /// The whole window in one.
    pub totals: UsagePoint,
}

/// The start (Unix ms) of `window`'s first step when `now` is in its last.
pub fn window_start(window: Window, now: i64) -> i64 {
    let step = window.step_minutes() * MINUTE_MS;
    now.div_euclid(step) * step - (window.points() - 1) * step
}

/// Sum `minutes` (start, counts; any order, repeats added) into `window`'s steps ending
/// with the step that holds `now` (Unix ms).
pub fn series(window: Window, now: i64, minutes: &[(i64, Counts)]) -> AppUsage {
    let step = window.step_minutes() * MINUTE_MS;
    let first = window_start(window, now);
    let last = first + (window.points() - 1) * step;
    let mut steps = vec![Counts::default(); window.points() as usize];
    let mut total = Counts::default();
    for (minute, counts) in minutes {
        if *minute < first || *minute >= last + step {
            continue;
        }
        let i = ((minute - first) / step) as usize;
        steps[i].add(counts);
        total.add(counts);
    }
    AppUsage {
        window: window.name(),
        step_minutes: window.step_minutes(),
        points: steps
            .iter()
            .enumerate()
            .map(|(i, counts)| UsagePoint::of(first + i as i64 * step, counts))
            .collect(),
        totals: UsagePoint::of(first, &total),
    }
}

/// The usage of `tenant/app` over `window`, for who may deploy it (the app page's rule):
/// the stored minutes and this process's unflushed ones.
pub async fn app_usage(
    state: &AppState,
    principal: &Principal,
    app: (&str, &str),
    window: Window,
) -> Result<AppUsage, Refusal> {
    let (tenant, access) = crate::manage::app_for(state, principal, app, Action::DeployApp).await?;
    let now = state.clock.now_millis();
    let since = window_start(window, now);
    let mut minutes = state
        .store
        .app_usage(tenant.id, access.app_id, since)
        .await?;
    minutes.extend(state.usage.pending(tenant.id, access.app_id, since));
    Ok(series(window, now, &minutes))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicI64;

    use super::*;
    use crate::clock::Clock;

    /// A clock that moves only when told.
    struct Fixed(AtomicI64);

    impl Fixed {
        fn advance(&self, ms: i64) {
            self.0.fetch_add(ms, Ordering::SeqCst);
        }
    }

    impl Clock for Fixed {
        fn now_millis(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn with(buckets: &[(usize, u64)]) -> Counts {
        let mut counts = Counts::default();
        for &(i, n) in buckets {
            counts.buckets[i] = n;
        }
        counts
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_as_prometheus_does() {
        assert_eq!(Counts::default().latency_quantile_ms(0.5), None);
        // 10 calls in (5, 10] ms: the median is halfway.
        let counts = with(&[(3, 10)]);
        assert!(close(counts.latency_quantile_ms(0.5), 7.5));
        assert!(close(counts.latency_quantile_ms(0.99), 9.95));
        // The first bucket starts at 0.
        assert!(close(with(&[(0, 4)]).latency_quantile_ms(0.5), 0.5));
        // 90 fast and 10 slow: p50 among the fast ones, p99 among the slow ones.
        let counts = with(&[(1, 90), (9, 10)]);
        assert!(close(
            counts.latency_quantile_ms(0.5),
            1.0 + 1.5 * (50.0 / 90.0)
        ));
        assert!(close(counts.latency_quantile_ms(0.99), 500.0 + 500.0 * 0.9));
        // Empty buckets between are skipped; the unbounded one answers the highest bound.
        assert!(close(with(&[(15, 3)]).latency_quantile_ms(0.5), 60_000.0));
    }

    #[test]
    fn callbacks_fall_into_their_buckets_and_outcomes() {
        let mut counts = Counts::default();
        counts.count_callback("ok", Duration::from_micros(800));
        counts.count_callback("prevent_update", Duration::from_millis(1));
        counts.count_callback("error", Duration::from_millis(3));
        counts.count_callback("deadline", Duration::from_secs(2));
        counts.count_callback("memory", Duration::from_secs(120));
        counts.count_callback("cancelled", Duration::from_millis(30));
        assert_eq!(counts.callbacks, 6);
        assert_eq!(counts.errors, 3);
        assert_eq!(counts.limit_hits, 2);
        assert_eq!(counts.buckets[0], 2, "{:?}", counts.buckets);
        assert_eq!(counts.buckets[2], 1);
        assert_eq!(counts.buckets[5], 1);
        assert_eq!(counts.buckets[10], 1);
        assert_eq!(counts.buckets[15], 1);
        assert_eq!(
            counts.latency_sum_us,
            800 + 1_000 + 3_000 + 2_000_000 + 120_000_000 + 30_000
        );
    }

    #[test]
    fn merging_adds_every_counter_and_bucket() {
        let mut a = with(&[(2, 5), (7, 1)]);
        a.callbacks = 6;
        a.cache_hits = 3;
        let mut b = with(&[(2, 1), (15, 2)]);
        b.callbacks = 3;
        b.errors = 2;
        b.cache_misses = 1;
        a.add(&b);
        assert_eq!(a.callbacks, 9);
        assert_eq!(a.errors, 2);
        assert_eq!(a.buckets[2], 6);
        assert_eq!(a.buckets[7], 1);
        assert_eq!(a.buckets[15], 2);
        assert!(close(a.cache_hit_ratio(), 0.75));
        a.subtract(&b);
        assert_eq!(a.callbacks, 6);
        assert_eq!(a.buckets[15], 0);
        assert_eq!(Counts::default().cache_hit_ratio(), None);
    }

    #[test]
    fn at_most_so_many_apps_a_minute_are_counted() {
        let clock = Arc::new(Fixed(AtomicI64::new(1_000 * MINUTE_MS + 30_000)));
        let usage = Usage::new(clock.clone());
        for app in 1..=(MAX_APPS_PER_MINUTE as i64 + 5) {
            usage.callback(TenantId(1), AppId(app), "ok", Duration::from_millis(1));
        }
        assert_eq!(
            usage.lock().values().map(HashMap::len).sum::<usize>(),
            MAX_APPS_PER_MINUTE
        );
        assert_eq!(usage.dropped_counts(), 5);
        // An app already counted still counts.
        usage.callback(TenantId(1), AppId(1), "ok", Duration::from_millis(1));
        assert_eq!(usage.pending(TenantId(1), AppId(1), 0)[0].1.callbacks, 2);
        // App 0 (a deploy's check instance) is nobody's usage.
        usage.cache_lookup(TenantId(1), AppId(0), true);
        assert_eq!(usage.dropped_counts(), 5);
        // Minutes the database does not take are bounded too: the oldest goes.
        for _ in 0..MAX_PENDING_MINUTES {
            clock.advance(MINUTE_MS);
            usage.cache_lookup(TenantId(1), AppId(2), true);
        }
        assert_eq!(usage.lock().len(), MAX_PENDING_MINUTES);
        assert!(usage.pending(TenantId(1), AppId(1), 0).is_empty());
    }

    #[test]
    fn minutes_roll_up_into_the_window_steps() {
        // 4 min 42 s into an hour: a 5- and a 15-minute step start at the hour.
        let now = 1_000 * 60 * MINUTE_MS + 4 * MINUTE_MS + 42_000;
        let minute = |back: i64| now.div_euclid(MINUTE_MS) * MINUTE_MS - back * MINUTE_MS;
        let calls = |n: u64| {
            let mut c = with(&[(4, n)]);
            c.callbacks = n;
            c
        };
        let minutes = vec![
            (minute(0), calls(1)),
            (minute(0), calls(2)), // another source of the same minute
            (minute(3), calls(4)),
            (minute(59), calls(8)),
            (minute(60), calls(16)),     // outside the hour
            (minute(7 * 60), calls(32)), // outside six hours
        ];
        let hour = series(Window::Hour, now, &minutes);
        assert_eq!(hour.points.len(), 60);
        assert_eq!(hour.points[59].at, minute(0));
        assert_eq!(hour.points[59].callbacks, 3);
        assert_eq!(hour.points[56].callbacks, 4);
        assert_eq!(hour.points[0].callbacks, 8);
        assert_eq!(hour.totals.callbacks, 15);
        assert_eq!(hour.points[1].p50_ms, None);
        assert!(close(hour.points[59].p50_ms, 17.5));

        let six = series(Window::SixHours, now, &minutes);
        assert_eq!((six.points.len(), six.step_minutes), (72, 5));
        // Minutes 0 and 3 back share the five-minute step that began at the hour.
        assert_eq!(six.points[71].callbacks, 7);
        assert_eq!(six.points[71].at % (5 * MINUTE_MS), 0);
        assert_eq!(six.totals.callbacks, 31);

        let day = series(Window::Day, now, &minutes);
        assert_eq!((day.points.len(), day.step_minutes), (96, 15));
        assert_eq!(day.totals.callbacks, 63);
        assert_eq!(day.points[95].callbacks, 7);
    }
}
