//! The [`Sandbox`]: one wasmtime engine, one linker, the epoch ticker and the caches of
//! compiled components, shared by every component loaded through it.
//!
//! This module decides how code gets compiled and reused; what happens inside a call is
//! `component`'s business.

use crate::bindings::{v0_1, v0_2};
use crate::cache::{DiskCache, PruneReport};
use crate::component::{self, ArtifactSource, Component};
use crate::config::{LoadOptions, MAX_COMPONENT_BYTES, SandboxConfig};
use crate::imports;
use crate::lift::Exports;
use crate::limiter;
use crate::pool::{self, Pool, Reaper};
use crate::scheduler::{CpuState, Foreground, Scheduler};
use crate::state::State;
use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wasmtime::component::{InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// The entry point: compiles and loads dashboard components.
///
/// Cheap to clone (an `Arc` inside); all clones share one engine, one epoch ticker and one
/// cache of compiled code. The ticker thread stops when the last clone, and the last
/// [`Component`] loaded through it, are dropped.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<SandboxInner>,
}

/// What every component of a sandbox shares.
pub(crate) struct SandboxInner {
    pub(crate) engine: Engine,
    linker: Linker<State>,
    pub(crate) config: SandboxConfig,
    disk: Option<DiskCache>,
    /// Compiled components by SHA-256 of their bytes. Weak, so that code nobody uses any
    /// more is freed: the cache only shares code between live `Component`s.
    compiled: Mutex<HashMap<String, Weak<Compiled>>>,
    /// One lock per hash being compiled: a second load of the same new bytes waits for the
    /// first compilation instead of starting its own (compiling is the costliest thing a
    /// tenant can make the server do).
    compiling: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Components refused at compile or link time, by hash, with the reason. The refusal
    /// of the same bytes by the same engine is certain, so it is answered at once.
    refused: Mutex<HashMap<String, String>>,
    /// Who holds which instance slots; idle caps and expiry.
    pub(crate) pool: Arc<Pool>,
    /// Hands the cores to the calls of all components, fairly between tenants.
    pub(crate) scheduler: Arc<Scheduler>,
    /// Kept for its `Drop`, which stops the ticker thread.
    _ticker: Ticker,
    /// Kept for its `Drop`, which stops the thread dropping expired idle instances.
    _reaper: Reaper,
}

/// A compiled component, linked and type-checked, ready to instantiate.
pub(crate) struct Compiled {
    /// Linked against the sandbox's linker; its `app` export type-checked at load.
    pub(crate) pre: InstancePre<State>,
    /// The `app` exports, called through typed functions that check the size of the
    /// returned strings before copying them (`lift`).
    pub(crate) exports: Exports,
    /// Pool units one instance costs (`pool::units`).
    pub(crate) units: usize,
    /// Whether its calls can learn the viewer (`imports::sees_viewer`).
    pub(crate) sees_viewer: bool,
    /// Whether it imports `wasi:http/outgoing-handler` (`imports::sends_http`).
    pub(crate) sends_http: bool,
}

impl Sandbox {
    /// Creates the engine (pooling allocator, epoch interruption, copy-on-write memory
    /// images), the linker and the epoch ticker.
    pub fn new(config: SandboxConfig) -> Result<Sandbox> {
        if config.max_instances == 0 {
            return Err(Error::InvalidLimits {
                reason: "max_instances must be at least 1".to_string(),
            });
        }
        if config.epoch_tick.is_zero() {
            return Err(Error::InvalidLimits {
                reason: "epoch_tick must be longer than zero".to_string(),
            });
        }
        if config.max_instances_per_tenant == 0 || config.idle_expiry.is_zero() {
            return Err(Error::InvalidLimits {
                reason: "max_instances_per_tenant and idle_expiry must be above zero".to_string(),
            });
        }
        if config.max_memory_bytes < 1 << 16 {
            return Err(Error::InvalidLimits {
                reason: "max_memory_bytes must be at least one wasm page (64 KiB)".to_string(),
            });
        }
        let engine = engine(&config)?;
        let linker = imports::linker(&engine).map_err(|e| Error::engine(&e))?;
        let disk = match &config.cache_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                    context: format!("cannot create cache directory {}", dir.display()),
                    source,
                })?;
                Some(DiskCache::new(dir.clone(), &engine))
            }
            None => None,
        };
        let ticker = Ticker::start(engine.clone(), config.epoch_tick)?;
        let pool = Arc::new(Pool::new(&config));
        let reaper = Reaper::start(pool.clone())?;
        let scheduler = Scheduler::new(
            config.cpu_slots,
            engine.clone(),
            config.park_long_calls,
            config.spared_cores,
        );
        Ok(Sandbox {
            inner: Arc::new(SandboxInner {
                engine,
                linker,
                config,
                disk,
                compiled: Mutex::new(HashMap::new()),
                compiling: Mutex::new(HashMap::new()),
                refused: Mutex::new(HashMap::new()),
                pool,
                scheduler,
                _ticker: ticker,
                _reaper: reaper,
            }),
        })
    }

    /// The scheduler handing the cores to guest calls (Python apps' turns use it too).
    pub(crate) fn scheduler(&self) -> Arc<Scheduler> {
        self.inner.scheduler.clone()
    }

    /// The instance pool, which Python apps' instances are charged to as well.
    pub(crate) fn pool(&self) -> Arc<Pool> {
        self.inner.pool.clone()
    }

    /// Marks foreground work (a request's host work, such as the platform's admission turn)
    /// until the mark is dropped: like a short call, it parks long calls meanwhile (see
    /// [`SandboxConfig::park_long_calls`]). Cheap: a lock and a counter.
    pub fn foreground(&self) -> Foreground {
        self.inner.scheduler.foreground()
    }

    /// Where host work done for long calls runs (their class and cores): for work that is
    /// long by nature or done on a heavy app's behalf away from its call's thread.
    pub fn long_work(&self) -> crate::LongWork {
        self.inner.scheduler.long_work()
    }

    /// What the CPU scheduler is doing now: slots held by short and long calls, waiting
    /// calls and foreground activity.
    pub fn cpu_state(&self) -> CpuState {
        self.inner.scheduler.state()
    }

    /// Loads a dashboard component.
    ///
    /// Refuses input that is not a component or is larger than [`MAX_COMPONENT_BYTES`];
    /// compiles it once (or reuses the compiled code of an identical component loaded
    /// earlier, from memory or from the disk cache); refuses it if it imports anything not
    /// granted ([`Error::ForbiddenImport`]) or lacks the dashboard exports; then
    /// instantiates it once under `options.limits` to read its info, layout and
    /// dependencies, which must be JSON (an object-or-value and an array respectively).
    pub fn load(&self, wasm: &[u8], options: LoadOptions) -> Result<Component> {
        check_limits(&self.inner.config, &options)?;
        check_header(wasm)?;
        let sha256 = hex::encode(Sha256::digest(wasm));
        let Some((compiled, source)) = self.compiled(Some(wasm), &sha256)? else {
            unreachable!("with the bytes at hand the component is compiled when no copy is found")
        };
        component::load(self.inner.clone(), compiled, sha256, source, options)
    }

    /// Loads the component whose bytes have the SHA-256 `sha256` (lowercase hex) without
    /// those bytes, when its compiled code is at hand: shared with a loaded component of the
    /// same hash, or in the disk cache. `Ok(None)` when it is not: the caller then reads
    /// the bytes and calls [`Sandbox::load`]. Everything else is as in [`Sandbox::load`]
    /// (the checks of cached code, the load-time instance). The hash must be one the caller
    /// computed over bytes it accepted (a stored version's): the disk cache is trusted to
    /// hold that component's code, as it is by [`Sandbox::load`].
    pub fn load_cached(&self, sha256: &str, options: LoadOptions) -> Result<Option<Component>> {
        check_limits(&self.inner.config, &options)?;
        let is_hash = sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_hash {
            return Ok(None);
        }
        match self.compiled(None, sha256)? {
            Some((compiled, source)) => component::load(
                self.inner.clone(),
                compiled,
                sha256.to_string(),
                source,
                options,
            )
            .map(Some),
            None => Ok(None),
        }
    }

    /// Pool units the instances (idle and in a call) of `tenant`'s components hold right
    /// now, out of [`SandboxConfig::max_instances_per_tenant`].
    pub fn tenant_pool_units(&self, tenant: i64) -> usize {
        self.inner.pool.tenant_units(tenant)
    }

    /// Removes compiled artifacts that are no longer wanted from the disk cache: those of
    /// components for which `keep(sha256)` is false, those of other engines, and stray
    /// temporary files; only files at least `min_age` old. Without a disk cache, does
    /// nothing. Components already loaded are unaffected (their code is in memory).
    pub fn prune_disk_cache(
        &self,
        keep: impl Fn(&str) -> bool,
        min_age: Duration,
    ) -> Result<PruneReport> {
        let Some(disk) = &self.inner.disk else {
            return Ok(PruneReport::default());
        };
        disk.prune(&keep, min_age).map_err(|source| Error::Io {
            context: "cannot prune the compiled-component cache".to_string(),
            source,
        })
    }

    /// The compiled form of `wasm`: from memory, from disk, or freshly compiled, at most one
    /// compilation per hash at a time. Without `wasm`, `None` when neither memory nor disk
    /// has it.
    fn compiled(
        &self,
        wasm: Option<&[u8]>,
        sha256: &str,
    ) -> Result<Option<(Arc<Compiled>, ArtifactSource)>> {
        if let Some(found) = self.known(sha256)? {
            return Ok(Some((found, ArtifactSource::Memory)));
        }
        let gate = lock(&self.inner.compiling)
            .entry(sha256.to_string())
            .or_default()
            .clone();
        let result = {
            let _compiling = gate.lock().unwrap_or_else(PoisonError::into_inner);
            // Whoever held the gate before may have finished the work.
            match self.known(sha256) {
                Ok(Some(found)) => Ok(Some((found, ArtifactSource::Memory))),
                Ok(None) => self.compile(wasm, sha256),
                Err(refused) => Err(refused),
            }
        };
        let mut compiling = lock(&self.inner.compiling);
        if compiling
            .get(sha256)
            .is_some_and(|held| Arc::ptr_eq(held, &gate) && Arc::strong_count(held) <= 2)
        {
            compiling.remove(sha256);
        }
        result
    }

    /// The live compiled code of `sha256`, or its earlier refusal.
    fn known(&self, sha256: &str) -> Result<Option<Arc<Compiled>>> {
        if let Some(reason) = lock(&self.inner.refused).get(sha256) {
            return Err(Error::InvalidComponent {
                reason: format!("{reason} (refused before; the same bytes are not compiled again)"),
            });
        }
        Ok(lock(&self.inner.compiled)
            .get(sha256)
            .and_then(Weak::upgrade))
    }

    /// Compiles (or reads from disk), checks and links `wasm`; remembers a refusal.
    fn compile(
        &self,
        wasm: Option<&[u8]>,
        sha256: &str,
    ) -> Result<Option<(Arc<Compiled>, ArtifactSource)>> {
        let result = self.compile_unremembered(wasm, sha256);
        if let Err(error @ (Error::InvalidComponent { .. } | Error::ForbiddenImport { .. })) =
            &result
        {
            let mut refused = lock(&self.inner.refused);
            // Bounded: a tenant pushing endless distinct bad components only evicts memory.
            if refused.len() >= MAX_REMEMBERED_REFUSALS {
                refused.clear();
            }
            let reason = match error {
                Error::InvalidComponent { reason } => reason.clone(),
                other => other.to_string(),
            };
            refused.insert(sha256.to_string(), reason);
        }
        result
    }

    fn compile_unremembered(
        &self,
        wasm: Option<&[u8]>,
        sha256: &str,
    ) -> Result<Option<(Arc<Compiled>, ArtifactSource)>> {
        let inner = &self.inner;
        let started = Instant::now();
        let cached = inner
            .disk
            .as_ref()
            .and_then(|disk| disk.load(&inner.engine, sha256));
        let (component, source) = match (cached, wasm) {
            (Some(component), _) => (component, ArtifactSource::DiskCache),
            (None, None) => return Ok(None),
            (None, Some(wasm)) => {
                let component =
                    match &inner.config.compiler {
                        Some(compiler) => crate::compiler::compile_outside(
                            compiler,
                            &inner.engine,
                            inner.config.bounds_checked_reservation(),
                            wasm,
                        )?,
                        None => wasmtime::component::Component::new(&inner.engine, wasm).map_err(
                            |e| Error::InvalidComponent {
                                reason: format!("{e:#}"),
                            },
                        )?,
                    };
                (component, ArtifactSource::Compiled)
            }
        };
        // Both checks run on cached artifacts too: the allowlist or the limits may have
        // changed since the artifact was written.
        let needs = limiter::check_component(&component)?;
        imports::check(&inner.engine, &component)?;
        if source == ArtifactSource::Compiled
            && let Some(disk) = &inner.disk
        {
            disk.store(sha256, &component);
        }
        let pre =
            inner
                .linker
                .instantiate_pre(&component)
                .map_err(|e| Error::InvalidComponent {
                    reason: format!("{e:#}"),
                })?;
        let (exports, export) = Exports::find(&component)?;
        // The `app` export's types, checked against the WIT version it names.
        let checked = if export.ends_with("@0.1.0") {
            v0_1::DashboardPre::new(pre.clone()).map(drop)
        } else {
            v0_2::DashboardPre::new(pre.clone()).map(drop)
        };
        checked.map_err(|e| Error::InvalidComponent {
            reason: format!("{e:#}"),
        })?;
        tracing::debug!(sha256, ?source, elapsed = ?started.elapsed(), "component ready");

        let compiled = Arc::new(Compiled {
            pre,
            exports,
            units: pool::units(needs.memories, needs.tables),
            sees_viewer: imports::sees_viewer(&inner.engine, &component),
            sends_http: imports::sends_http(&inner.engine, &component),
        });
        let mut map = lock(&inner.compiled);
        map.retain(|_, weak| weak.strong_count() > 0);
        map.insert(sha256.to_string(), Arc::downgrade(&compiled));
        Ok(Some((compiled, source)))
    }
}

/// Refusals remembered at most (the map is emptied when full).
const MAX_REMEMBERED_REFUSALS: usize = 4096;

/// A mutex's contents; a panic while it was held leaves nothing half-done in these maps.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Longest deadline accepted in [`Limits`](crate::Limits).
const MAX_DEADLINE: Duration = Duration::from_secs(24 * 60 * 60);

/// Refuses limits the engine cannot honour.
fn check_limits(config: &SandboxConfig, options: &LoadOptions) -> Result<()> {
    let limits = &options.limits;
    if limits.memory_bytes > config.max_memory_bytes {
        return Err(Error::InvalidLimits {
            reason: format!(
                "memory_bytes ({}) is above the sandbox's max_memory_bytes ({})",
                limits.memory_bytes, config.max_memory_bytes
            ),
        });
    }
    // An upper bound keeps deadline arithmetic (instants, epoch ticks) far from overflow;
    // a dashboard callback has no business running for a day anyway.
    if limits.deadline.is_zero() || limits.deadline > MAX_DEADLINE {
        return Err(Error::InvalidLimits {
            reason: "the deadline must be longer than zero and at most one day".to_string(),
        });
    }
    Ok(())
}

/// Refuses oversized input and anything that is not a binary WebAssembly component,
/// cheaply and before the compiler sees it.
fn check_header(wasm: &[u8]) -> Result<()> {
    if wasm.len() > MAX_COMPONENT_BYTES {
        return Err(Error::InvalidComponent {
            reason: format!(
                "it is {} bytes, over the limit of {MAX_COMPONENT_BYTES} bytes",
                wasm.len()
            ),
        });
    }
    // A binary component starts with the wasm magic, a 16-bit version and a 16-bit layer
    // that is 1 for components (0 for core modules).
    match wasm.get(..8) {
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', _, _, 0, 0]) => Err(Error::InvalidComponent {
            reason: "it is a core WebAssembly module, not a component (build for wasm32-wasip2)"
                .to_string(),
        }),
        _ => Err(Error::InvalidComponent {
            reason: "it is not a WebAssembly binary".to_string(),
        }),
    }
}

/// The engine settings that decide what compiled code looks like. The compiling process
/// uses the same, so its artifacts load here. `bounds_checked_reservation`: see
/// [`SandboxConfig::explicit_bounds_checks`].
pub(crate) fn compile_settings(bounds_checked_reservation: Option<u64>) -> Config {
    let mut wasm_config = Config::new();
    wasm_config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        // Async component-model support costs every call (about 3 µs instead of 1.8 µs for
        // a trivial warm call) and dashboards do not need it.
        .concurrency_support(false);
    if let Some(reservation) = bounds_checked_reservation {
        // No guard pages and a reservation of just the pool's memory size (the pool needs
        // at least that): compiled code checks every access against the memory's current
        // length, so wasmtime may leave a pool slot's pages read-write between instances,
        // and a grow into pages that an earlier instance of the slot used needs no
        // `mprotect` (docs/design-notes.md).
        wasm_config
            .memory_guard_size(0)
            .memory_reservation(reservation)
            .guard_before_linear_memory(false);
    }
    wasm_config
}

/// Builds the one engine of a sandbox.
fn engine(config: &SandboxConfig) -> Result<Engine> {
    let mut wasm_config = compile_settings(config.bounds_checked_reservation());
    let n = config.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        // A Rust component has a few core instances and tables, CPython dozens; the pool
        // is sized for the average (tenants are charged by it: `pool::units`), the
        // per-component caps for the worst case. Memories and tables per component are
        // checked at load by `limiter::check_component`, whose refusal names our limit;
        // core instances cannot be counted from outside, so the pool checks those.
        .total_core_instances(n.saturating_mul(10))
        .total_tables(n.saturating_mul(pool::TABLES_PER_UNIT as u32))
        .total_memories(n.saturating_mul(pool::MEMORIES_PER_UNIT as u32))
        .max_core_instances_per_component(limiter::MAX_CORE_INSTANCES as u32)
        .table_elements(limiter::MAX_TABLE_ELEMENTS)
        .max_memory_size(config.max_memory_bytes);
    wasm_config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

    match Engine::new(&wasm_config) {
        Ok(engine) => Ok(engine),
        Err(pooling_error) => {
            // The pool reserves address space up front (slots × (memory size + guards));
            // a host with little virtual address space (ulimit -v, 32-bit) cannot give it.
            // Limits are enforced the same way without the pool, only instantiation is
            // slower, so fall back rather than refuse to start.
            tracing::warn!(
                error = %format!("{pooling_error:#}"),
                max_instances = n,
                "pooling allocator unavailable, falling back to on-demand allocation"
            );
            wasm_config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Engine::new(&wasm_config).map_err(|e| Error::engine(&e))
        }
    }
}

/// The thread that advances the engine's epoch, which is what makes deadlines fire.
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine, tick: std::time::Duration) -> Result<Ticker> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sandbox-epoch".to_string())
            .spawn(move || {
                // The sender is dropped (never used to send) when the sandbox goes away,
                // which ends the wait with `Disconnected`.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })
            .map_err(|source| Error::Io {
                context: "cannot start the epoch ticker thread".to_string(),
                source,
            })?;
        Ok(Ticker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The thread exits within one tick; a panic in it has nothing left to report.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_check_refuses_modules_and_junk() {
        let module = [0, b'a', b's', b'm', 1, 0, 0, 0];
        let component = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];
        assert!(check_header(&component).is_ok());
        let err = check_header(&module).expect_err("core module");
        assert!(err.to_string().contains("core WebAssembly module"), "{err}");
        assert!(check_header(b"hello world").is_err());
        assert!(check_header(b"").is_err());
        let huge = vec![0u8; MAX_COMPONENT_BYTES + 1];
        let err = check_header(&huge).expect_err("too large");
        assert!(err.to_string().contains("over the limit"), "{err}");
    }

    #[test]
    fn ticker_thread_stops_when_dropped() {
        let engine = Engine::default();
        let ticker =
            Ticker::start(engine, std::time::Duration::from_millis(1)).expect("ticker starts");
        let started = Instant::now();
        drop(ticker);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
