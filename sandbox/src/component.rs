//! A loaded [`Component`]: its static facts, its pool of warm instances and
//! [`Component::call`], which runs one callback under the component's limits.
//!
//! This module owns the instance lifecycle described in the crate documentation and the
//! mapping of traps to [`Error`] variants. It never shares an instance between two
//! components, and never returns an instance that failed to the pool.

use crate::capabilities::{Capabilities, Viewer};
use crate::capture::LogLine;
use crate::config::{Limits, LoadOptions, MAX_REQUEST_BYTES, Owner};
use crate::error::CallFailure;
use crate::lift::{self, RawCallbackError, RawOutcome};
use crate::pool::{IdleInstances, Lease};
use crate::sandbox::{Compiled, SandboxInner};
use crate::scheduler::{Refused, Ticket};
use crate::settings::Settings;
use crate::state::{PageProps, ProgressSink, State, StreamSink};
use crate::{Error, Result};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use wasmtime::{PoolConcurrencyLimitError, Store, Trap, UpdateDeadline};
use wasmtime_wasi::I32Exit;

/// Where the compiled code of a component came from when it was loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArtifactSource {
    /// Compiled from the component bytes by this load.
    Compiled,
    /// Read from the on-disk cache of compiled artifacts.
    DiskCache,
    /// Shared with an identical component already loaded in this sandbox.
    Memory,
}

/// Facts about an app that do not change while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppInfo {
    /// The page title (Dash's `app.title`).
    pub title: String,
    /// Version of the SDK or toolchain that built the component.
    pub sdk_version: String,
}

/// What a successful callback produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A JSON array with one value per requested output.
    Outputs(String),
    /// Dash's `PreventUpdate`: nothing changes in the browser.
    PreventUpdate,
}

/// A successful call.
#[derive(Debug)]
pub struct CallOutput {
    /// What the callback produced.
    pub outcome: Outcome,
    /// Lines the guest logged during the call, at most [`Limits::log_bytes`] in total.
    pub logs: Vec<LogLine>,
    /// Wall time of the call, instantiation included when it needed a fresh instance.
    pub duration: Duration,
}

/// Per-call options beyond the component's [`Limits`]: what a background job needs.
#[derive(Clone, Default)]
pub struct CallOptions {
    /// A deadline for this call instead of [`Limits::deadline`] (a background job's is
    /// longer). At most one day.
    pub deadline: Option<Duration>,
    /// Raise this flag (from any thread) to stop the call: a running guest is interrupted
    /// at the next epoch tick and a sleeping one within 50 ms; the call then fails with
    /// [`Error::Cancelled`] and its instance is dropped.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Receives the guest's `report-progress` JSON, on the calling thread, while the call
    /// runs. Without a sink, reports are dropped.
    pub progress: Option<ProgressSink>,
    /// Receives the guest's `stream-props` updates (WIT 0.2.0), on the calling thread and
    /// in order, while the call runs: a WebSocket callback's connection. Without a sink
    /// the guest is told nothing can be streamed (it then answers side updates as usual).
    pub stream: Option<StreamSink>,
    /// Asks the page of that connection for props (`host.get-props`, WIT 0.2.0), waiting
    /// for its answer at most until the call's deadline or cancellation. Without it the
    /// guest is told there is no page to ask.
    pub page: Option<PageProps>,
    /// The signed-in viewer of the request, answered by `host.viewer` (0.2.0) and handed
    /// to the capabilities. `None` for an anonymous viewer.
    pub viewer: Option<Viewer>,
    /// The answer will be shared between viewers (memoized): `host.viewer` then answers an
    /// error, so the answer cannot depend on who asked.
    pub memoized: bool,
    /// The call is long by nature (a background job): it runs as a long call from its
    /// first instruction, in the idle class and on the long calls' cores, instantiation
    /// included, instead of taking an ordinary core for its first tick.
    pub long: bool,
}

impl std::fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallOptions")
            .field("deadline", &self.deadline)
            .field("cancel", &self.cancel)
            .field("progress", &self.progress.is_some())
            .field("stream", &self.stream.is_some())
            .field("page", &self.page.is_some())
            .field("viewer", &self.viewer)
            .field("memoized", &self.memoized)
            .field("long", &self.long)
            .finish()
    }
}

/// A loaded dashboard component: one app version under one set of limits.
///
/// Cheap to clone (an `Arc` inside), `Send` and `Sync`: any number of threads may call it
/// at once, each call on its own instance.
#[derive(Clone)]
pub struct Component {
    inner: Arc<ComponentInner>,
}

struct ComponentInner {
    /// Keeps the engine and its epoch ticker alive for as long as the component can be
    /// called, even if every `Sandbox` handle has been dropped.
    sandbox: Arc<SandboxInner>,
    compiled: Arc<Compiled>,
    sha256: String,
    source: ArtifactSource,
    info: AppInfo,
    layout: String,
    dependencies: String,
    limits: Limits,
    data_dir: Option<Arc<Path>>,
    /// What `host.setting` answers; its secrets are masked in logs and error messages.
    settings: Settings,
    /// Whose CPU share the calls use, and who the instances are charged to.
    owner: Owner,
    /// The app's data sources and cache, if granted.
    capabilities: Option<Arc<dyn Capabilities>>,
    /// Where the app's `wasi:http` requests may go.
    outbound: Arc<crate::outbound::OutboundPolicy>,
    /// Idle instances, longest idle first.
    idle: Mutex<Vec<Instance>>,
}

/// One instance of the component in its own store.
struct Instance {
    store: Store<State>,
    /// The component instance, whose `app` exports `lift` calls.
    handle: wasmtime::component::Instance,
    calls: u64,
    /// Its hold on the pool, charged to the owner's tenant (set by `fresh_instance`).
    lease: Option<Lease>,
}

/// Loads a compiled component: instantiates it once and reads its static facts.
pub(crate) fn load(
    sandbox: Arc<SandboxInner>,
    compiled: Arc<Compiled>,
    sha256: String,
    source: ArtifactSource,
    options: LoadOptions,
) -> Result<Component> {
    let LoadOptions {
        limits,
        data_dir,
        settings,
        owner,
        capabilities,
        outbound,
    } = options;
    let outbound = Arc::new(outbound);
    let data_dir = match data_dir {
        Some(dir) => Some(canonical_dir(&dir)?),
        None => None,
    };
    let inner = ComponentInner {
        sandbox,
        compiled,
        sha256,
        source,
        info: AppInfo {
            title: String::new(),
            sdk_version: String::new(),
        },
        layout: String::new(),
        dependencies: String::new(),
        limits,
        data_dir,
        settings,
        owner,
        capabilities,
        outbound,
        idle: Mutex::new(Vec::new()),
    };
    let mut inner = inner;
    // Instantiating and the three reads each get the deadline; the core is held for all.
    let ticket = inner.enter(Instant::now() + inner.limits.deadline * 2, None, false)?;
    let mut instance = inner
        .fresh_instance(&ticket)
        .map_err(|e| inner.settings.redact_error(e))?;
    let statics = inner.read_statics(&mut instance, &ticket);
    instance.store.data_mut().cpu = None;
    drop(ticket);
    (inner.info, inner.layout, inner.dependencies) =
        statics.map_err(|e| inner.settings.redact_error(e))?;
    // The instance is healthy; keep it for the first call.
    inner.release(instance);
    let inner = Arc::new(inner);
    let weak: std::sync::Weak<dyn IdleInstances> = Arc::downgrade(&inner) as _;
    inner.sandbox.pool.register(weak);
    Ok(Component { inner })
}

/// Guest instances created in this process (for the platform's metrics).
static INSTANTIATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many guest instances this process has created, every sandbox together.
pub fn instantiations() -> u64 {
    INSTANTIATIONS.load(std::sync::atomic::Ordering::Relaxed)
}

impl Component {
    /// Hex SHA-256 of the component bytes.
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }

    /// The app's title and build facts.
    pub fn info(&self) -> &AppInfo {
        &self.inner.info
    }

    /// The layout, a JSON component tree (checked to be JSON at load).
    pub fn layout_json(&self) -> &str {
        &self.inner.layout
    }

    /// The callback dependencies, a JSON array (checked at load).
    pub fn dependencies_json(&self) -> &str {
        &self.inner.dependencies
    }

    /// Where this component's compiled code came from.
    pub fn artifact_source(&self) -> ArtifactSource {
        self.inner.source
    }

    /// The limits every call of this component runs under.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Whether its calls can learn who is viewing ([`CallOptions::viewer`]): it imports
    /// `host.viewer` (WIT 0.2.0) or `data`. For other components a caller need not look the
    /// viewer up.
    pub fn sees_viewer(&self) -> bool {
        self.inner.compiled.sees_viewer
    }

    /// Whether it can send HTTP requests at all (it imports `wasi:http/outgoing-handler`);
    /// whether any request goes out is then the app's [`crate::OutboundPolicy`].
    pub fn sends_http(&self) -> bool {
        self.inner.compiled.sends_http
    }

    /// Whether this component's app is heavy now: one of its calls ran long or was stopped
    /// at a limit a moment ago, so its new calls start as long calls (the idle class and,
    /// with spared cores, the long calls' cores). Host work done for such an app's calls
    /// should run the same way ([`Component::long_work_if_heavy`]).
    pub fn is_heavy(&self) -> bool {
        self.inner.sandbox.scheduler.is_heavy(self.inner.owner)
    }

    /// Moves the calling thread where long calls run for the returned scope if the app is
    /// heavy ([`Component::is_heavy`]): for the host work that follows a heavy call on its
    /// thread (the platform's handling of its answer and log lines). `None` otherwise.
    pub fn long_work_if_heavy(&self) -> Option<crate::LongWorkScope> {
        self.is_heavy()
            .then(|| self.inner.sandbox.scheduler.long_work().enter())
    }

    /// Number of idle (warm) instances this component holds right now.
    pub fn idle_instances(&self) -> usize {
        self.inner.idle().len()
    }

    /// Runs the callback `callback_id` on `request_json`. Blocking.
    ///
    /// Takes an idle instance of this component, or instantiates a fresh one, and calls
    /// `run-callback` under the component's [`Limits`]. On success, and when the guest
    /// itself returns an error, the instance goes back to the idle pool (within the pool's
    /// bounds); after any other failure it is dropped.
    pub fn call(&self, callback_id: &str, request_json: &str) -> Result<CallOutput, CallFailure> {
        self.call_with(callback_id, request_json, CallOptions::default())
    }

    /// [`Component::call`] with a deadline of its own, a cancellation flag and a progress
    /// sink; see [`CallOptions`]. Blocking.
    pub fn call_with(
        &self,
        callback_id: &str,
        request_json: &str,
        options: CallOptions,
    ) -> Result<CallOutput, CallFailure> {
        let started = Instant::now();
        let inner = &*self.inner;
        let size = callback_id.len() + request_json.len();
        if size > MAX_REQUEST_BYTES {
            return Err(CallFailure::without_logs(Error::InputTooLarge {
                size,
                limit: MAX_REQUEST_BYTES,
            }));
        }
        let deadline = options.deadline.unwrap_or(inner.limits.deadline);
        if deadline > Duration::from_secs(24 * 3600) {
            return Err(CallFailure::without_logs(Error::InvalidLimits {
                reason: "a call deadline must be at most one day".to_string(),
            }));
        }
        // Waiting for a core counts against the deadline: the viewer waits either way.
        let ticket = inner
            .enter(started + deadline, options.cancel.clone(), options.long)
            .map_err(CallFailure::without_logs)?;
        let mut instance = match inner.take_idle() {
            Some(instance) => instance,
            None => inner
                .fresh_instance(&ticket)
                .map_err(|e| CallFailure::without_logs(inner.settings.redact_error(e)))?,
        };
        inner.begin_with(&mut instance, &ticket, started + deadline, options);
        let limit = inner.limits.output_bytes;
        let result = lift::run_callback(
            &mut instance.store,
            &instance.handle,
            &inner.compiled.exports,
            callback_id,
            request_json,
            limit,
        );
        instance.calls += 1;
        let cancelled = instance.store.data().cancelled();
        {
            let state = instance.store.data_mut();
            state.cancel = None;
            state.progress = None;
            state.set_stream(None, None);
            state.cpu = None;
            state.viewer = None;
            state.memoized = false;
        }
        // The ticket lives until the instance is back in the pool or dropped: tearing down
        // a failed instance (unmapping a memory at its cap) is the call's own work, done in
        // its scheduling class and on its slot, not at ordinary priority after it.
        let logs = inner
            .settings
            .redact_logs(instance.store.data().logs.take());
        // A guest whose sleep was cut short at the deadline has overrun it, whatever it
        // managed to return afterwards.
        let result = match result {
            Ok(_) if instance.store.data().slept_past_deadline() || cancelled => {
                Err(wasmtime::Error::from(Trap::Interrupt))
            }
            result => result,
        };
        // Strings over the cap were not copied (`lift`); here they become the error.
        let result = match result {
            Ok(Ok(RawOutcome::Outputs(json))) => json.into_string(limit).map(Outcome::Outputs),
            Ok(Ok(RawOutcome::PreventUpdate)) => Ok(Outcome::PreventUpdate),
            Ok(Err(RawCallbackError::Failed(message))) => match message.into_string(limit) {
                Ok(message) => Err(Error::Callback { message }),
                Err(too_large) => Err(too_large),
            },
            Ok(Err(RawCallbackError::InvalidInput(message))) => match message.into_string(limit) {
                Ok(message) => Err(Error::InvalidInput { message }),
                Err(too_large) => Err(too_large),
            },
            Err(_) if cancelled => Err(Error::Cancelled),
            Err(trap) => Err(inner.classify(&trap, instance.store.data())),
        };
        match result {
            Ok(outcome) => {
                inner.release(instance);
                drop(ticket);
                Ok(CallOutput {
                    outcome,
                    logs,
                    duration: started.elapsed(),
                })
            }
            Err(error) => {
                if error.is_limit() {
                    ticket.mark_heavy();
                }
                // The guest's own error is an answer, not a failure of the instance.
                if matches!(error, Error::Callback { .. } | Error::InvalidInput { .. }) {
                    inner.release(instance);
                } else {
                    tracing::debug!(sha256 = %inner.sha256, %error, "dropping failed instance");
                    drop(instance);
                }
                drop(ticket);
                Err(CallFailure {
                    error: inner.settings.redact_error(error),
                    logs,
                })
            }
        }
    }
}

impl ComponentInner {
    fn idle(&self) -> MutexGuard<'_, Vec<Instance>> {
        // The lock only guards push and pop; a panic elsewhere cannot leave it inconsistent.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a core for a call of this component that must start by `deadline`;
    /// `long`: a call long by nature ([`CallOptions::long`]).
    fn enter(
        &self,
        deadline: Instant,
        cancel: Option<Arc<AtomicBool>>,
        long: bool,
    ) -> Result<Arc<Ticket>> {
        let scheduler = &self.sandbox.scheduler;
        match scheduler.enter_as(self.owner, deadline, cancel, long) {
            Ok(ticket) => Ok(Arc::new(ticket)),
            Err(Refused::Deadline) => Err(Error::Deadline {
                limit: self.limits.deadline,
            }),
            Err(Refused::Cancelled) => Err(Error::Cancelled),
        }
    }

    /// A fresh instance in a fresh store, made on the core `ticket` holds.
    fn instantiate(&self, ticket: &Arc<Ticket>) -> Result<Instance> {
        INSTANTIATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let state = State::new(
            &self.limits,
            self.data_dir.as_ref(),
            &self.settings,
            self.owner,
            self.capabilities.as_ref(),
            &self.outbound,
        )?;
        let mut store = Store::new(&self.sandbox.engine, state);
        store.limiter(|state| &mut state.limiter);
        // Every epoch tick looks at the deadline, the cancellation flag and the CPU
        // scheduler (which may park the call while another tenant's runs).
        store.epoch_deadline_callback(|context| {
            let state = context.data();
            let deadline = state.deadline();
            if state.cancelled() || deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(wasmtime::Error::from(Trap::Interrupt));
            }
            if let (Some(ticket), Some(deadline)) = (&state.cpu, deadline)
                && ticket.checkpoint(deadline).is_err()
            {
                return Err(wasmtime::Error::from(Trap::Interrupt));
            }
            Ok(UpdateDeadline::Continue(1))
        });
        store.set_epoch_deadline(1);
        // Instantiation runs guest code (start functions), so it gets a deadline too.
        let state = store.data_mut();
        state.set_deadline(Instant::now() + self.limits.deadline);
        state.cpu = Some(ticket.clone());
        match self.compiled.pre.instantiate(&mut store) {
            Ok(handle) => Ok(Instance {
                store,
                handle,
                calls: 0,
                lease: None,
            }),
            Err(error) => Err(self.classify(&error, store.data())),
        }
    }

    /// A fresh instance charged to the owner's tenant, made on the core `ticket` holds. A
    /// tenant at its cap first gives up its own longest-idle instances (of any of its
    /// components); a pool at capacity gives up the longest-idle instances of any tenant,
    /// and instantiation is tried once more.
    fn fresh_instance(&self, ticket: &Arc<Ticket>) -> Result<Instance> {
        let pool = &self.sandbox.pool;
        let tenant = self.owner.tenant;
        let units = self.compiled.units;
        let lease = match pool.admit(tenant, units) {
            Ok(lease) => lease,
            Err(refused) => {
                if pool.evict_oldest(units, |owner| owner == tenant) == 0 {
                    return Err(refused);
                }
                pool.admit(tenant, units)?
            }
        };
        let mut instance = match self.instantiate(ticket) {
            Err(Error::Capacity { .. }) if pool.evict_oldest(units, |_| true) > 0 => {
                self.instantiate(ticket)?
            }
            other => other?,
        };
        instance.lease = Some(lease);
        Ok(instance)
    }

    /// Prepares an instance for one call that must end by `deadline`: the call's core, a
    /// fresh log budget and memory flag.
    fn begin(&self, instance: &mut Instance, ticket: &Arc<Ticket>, deadline: Instant) {
        instance.store.set_epoch_deadline(1);
        let state = instance.store.data_mut();
        state.set_deadline(deadline);
        state.cpu = Some(ticket.clone());
        state.limiter.clear();
        state.logs.reset(self.limits.log_bytes);
    }

    /// Prepares an instance for one call with [`CallOptions`]: also its cancellation flag
    /// and progress sink.
    fn begin_with(
        &self,
        instance: &mut Instance,
        ticket: &Arc<Ticket>,
        deadline: Instant,
        options: CallOptions,
    ) {
        self.begin(instance, ticket, deadline);
        let state = instance.store.data_mut();
        state.cancel = options.cancel;
        state.progress = options.progress;
        state.set_stream(options.stream, options.page);
        state.viewer = options.viewer;
        state.memoized = options.memoized;
    }

    /// Calls `info`, `layout` and `dependencies` (under one deadline) and checks them.
    fn read_statics(
        &self,
        instance: &mut Instance,
        ticket: &Arc<Ticket>,
    ) -> Result<(AppInfo, String, String)> {
        self.begin(instance, ticket, Instant::now() + self.limits.deadline);
        let limit = self.limits.output_bytes;
        let store = &mut instance.store;
        // Strings over the output cap are not copied (`lift`).
        let result = lift::statics(store, &instance.handle, &self.compiled.exports, limit);
        let result = match result {
            Ok(_) if store.data().slept_past_deadline() => {
                Err(wasmtime::Error::from(Trap::Interrupt))
            }
            result => result,
        };
        for line in store.data().logs.take() {
            tracing::debug!(sha256 = %self.sha256, stream = ?line.stream, message = %line.message, "guest log while loading");
        }
        let (info, layout, dependencies) = result.map_err(|e| self.classify(&e, store.data()))?;
        let title = info.title.into_string(limit)?;
        let sdk_version = info.sdk_version.into_string(limit)?;
        let layout = layout.into_string(limit)?;
        let dependencies = dependencies.into_string(limit)?;
        let size = title.len() + sdk_version.len();
        if size > limit {
            return Err(Error::OutputTooLarge { size, limit });
        }
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&layout) {
            return Err(Error::InvalidComponent {
                reason: format!("its layout is not JSON: {e}"),
            });
        }
        match serde_json::from_str::<serde_json::Value>(&dependencies) {
            Ok(serde_json::Value::Array(_)) => {}
            Ok(_) => {
                return Err(Error::InvalidComponent {
                    reason: "its dependencies are not a JSON array".to_string(),
                });
            }
            Err(e) => {
                return Err(Error::InvalidComponent {
                    reason: format!("its dependencies are not JSON: {e}"),
                });
            }
        }
        let info = AppInfo { title, sdk_version };
        Ok((info, layout, dependencies))
    }

    /// An idle instance, most recently used first (its memory is most likely still hot).
    fn take_idle(&self) -> Option<Instance> {
        let mut instance = self.idle().pop()?;
        if let Some(lease) = &mut instance.lease {
            lease.unpark();
        }
        Some(instance)
    }

    /// Returns a healthy instance to the idle pool, or drops it if it has served its
    /// calls or the pool (this component's, its tenant's or the sandbox's) is full.
    fn release(&self, mut instance: Instance) {
        if instance.calls >= self.sandbox.config.max_calls_per_instance {
            return;
        }
        let mut idle = self.idle();
        if idle.len() >= self.sandbox.config.idle_instances_per_component {
            return;
        }
        if instance.lease.as_mut().is_some_and(Lease::park) {
            idle.push(instance);
        }
    }

    /// Turns a wasmtime failure into the error the author should see.
    fn classify(&self, error: &wasmtime::Error, state: &State) -> Error {
        if state.limiter.memory_exceeded() {
            return Error::Memory {
                limit: self.limits.memory_bytes,
            };
        }
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) || state.slept_past_deadline() {
            return Error::Deadline {
                limit: self.limits.deadline,
            };
        }
        if let Some(message) = panic_message(&state.logs.stderr_tail()) {
            return Error::Panic { message };
        }
        if let Some(exit) = error.downcast_ref::<I32Exit>() {
            return Error::Trap {
                message: format!("the guest exited with status {}", exit.0),
            };
        }
        if error.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
            return Error::Capacity {
                message: format!("{error:#}"),
            };
        }
        let message = match error.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => format!("{error:#}"),
        };
        Error::Trap { message }
    }
}

impl IdleInstances for ComponentInner {
    fn tenant(&self) -> i64 {
        self.owner.tenant
    }

    fn oldest_idle(&self) -> Option<Instant> {
        self.idle().first()?.lease.as_ref()?.idle_since()
    }

    fn drop_oldest_idle(&self) -> usize {
        let mut idle = self.idle();
        if idle.is_empty() {
            return 0;
        }
        let oldest = idle.remove(0);
        drop(idle);
        oldest.lease.as_ref().map_or(1, Lease::units)
    }

    fn drop_idle_before(&self, cutoff: Instant) -> usize {
        let mut idle = self.idle();
        let expired = idle
            .iter()
            .take_while(|instance| {
                instance
                    .lease
                    .as_ref()
                    .and_then(Lease::idle_since)
                    .is_some_and(|since| since < cutoff)
            })
            .count();
        let dropped: Vec<Instance> = idle.drain(..expired).collect();
        // Stores are dropped outside the lock: a call may be waiting for an instance.
        drop(idle);
        dropped.len()
    }
}

/// The canonical path of an app's data folder, which must exist and be a directory.
fn canonical_dir(dir: &Path) -> Result<Arc<Path>> {
    let context = || format!("app data folder {}", dir.display());
    let canonical = dir.canonicalize().map_err(|source| Error::Io {
        context: context(),
        source,
    })?;
    if !canonical.is_dir() {
        return Err(Error::Io {
            context: context(),
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    Ok(Arc::from(canonical))
}

/// The message of the last Rust panic printed on stderr, with its location.
///
/// Rust prints `thread '…' panicked at src/lib.rs:1:2:` followed by the message on the
/// next lines and then a `note: run with RUST_BACKTRACE=1` line (before Rust 1.73 the
/// message came first, on the same line, in quotes).
fn panic_message(stderr: &str) -> Option<String> {
    const MARKER: &str = "panicked at ";
    let start = stderr.rfind(MARKER)? + MARKER.len();
    let mut lines = stderr[start..].lines();
    let head = lines.next()?.trim();
    let Some(location) = head.strip_suffix(':') else {
        return Some(head.to_string());
    };
    let message = lines
        .take_while(|line| !line.starts_with("note: "))
        .collect::<Vec<_>>()
        .join("\n");
    let message = message.trim();
    if message.is_empty() {
        Some(format!("panic at {location}"))
    } else {
        Some(format!("{message} (at {location})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_message_is_recovered_from_stderr() {
        let stderr = "noise\nthread '<unnamed>' panicked at src/lib.rs:63:40:\nboom: it broke\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("boom: it broke (at src/lib.rs:63:40)")
        );
        let old = "thread 'main' panicked at 'boom', src/main.rs:2:5\n";
        assert_eq!(
            panic_message(old).as_deref(),
            Some("'boom', src/main.rs:2:5")
        );
        assert_eq!(panic_message("all fine\n"), None);
    }

    #[test]
    fn component_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Component>();
        assert_send_sync::<crate::Sandbox>();
    }
}
