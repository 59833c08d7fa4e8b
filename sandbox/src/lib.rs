//! Tessera's callback sandbox: compiles, caches, instantiates and calls dashboard
//! components under hard limits.
//!
//! A dashboard is a WebAssembly component of the world `tessera:dashboard/dashboard`
//! (see `wit/` at the repository root). This crate is the only place that touches wasmtime:
//! the platform hands it component bytes and callback requests, and gets back JSON text,
//! log lines and typed errors.
//!
//! ```no_run
//! use sandbox::{LoadOptions, Sandbox, SandboxConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sandbox = Sandbox::new(SandboxConfig::default())?;
//! let wasm = std::fs::read("app.wasm")?;
//! let app = sandbox.load(&wasm, LoadOptions::default())?;
//! println!("{} has layout {}", app.info().title, app.layout_json());
//! let output = app.call("graph.figure", r#"{"inputs": [], "outputs": [], "state": []}"#)?;
//! # let _ = output;
//! # Ok(())
//! # }
//! ```
//!
//! # What a component is granted
//!
//! **Nothing by default.** Its imports are checked against an allowlist when it is loaded:
//! the `tessera:dashboard/host` interface plus the WASI interfaces a language's standard
//! library links against (cli, io, clocks, random, filesystem), and `wasi:http`'s client,
//! whose requests go only where the app's [`OutboundPolicy`] allows ([`LoadOptions::outbound`];
//! by default nowhere): hosts on its allowlist, at public addresses checked after DNS.
//! Anything else, sockets above all, is refused with [`Error::ForbiddenImport`] before it
//! can run. The linker does not even define the refused interfaces. The WASI context has an empty
//! environment, no arguments, empty stdin and no sockets; stdout and stderr are captured
//! into the call's log lines, bounded by [`Limits::log_bytes`]. The app's own data folder,
//! if [`LoadOptions::data_dir`] names one, is visible read-only at `/data` and through the
//! `read-data` host function; nothing else of the host file system is.
//!
//! # Limits
//!
//! Every call, and the calls made while loading, runs under [`Limits`]: a wall-clock
//! deadline enforced by epoch interruption (a ticker thread advances the engine's epoch
//! every [`SandboxConfig::epoch_tick`]), a cap on the sum of the instance's linear memories
//! and tables (each table element counted as 8 bytes, a pointer, which is what a filled
//! table costs the host), a cap on the size of each string the component returns, and a
//! cap on captured log output.
//!
//! Host-side copies are checked before they are made: a callback's output or error
//! message, or the info, layout or dependency list read at load, longer than
//! [`Limits::output_bytes`] is refused while it is still in guest memory (its declared length is compared with the cap during the lift), and the strings
//! passed to `host.log`, `report-progress`, `setting` and `read-data` are read in place,
//! copying only the part the log budget or the output cap keeps. A guest returning or
//! logging 100 MiB thus never makes the host allocate 100 MiB. (A guest declaring UTF-16
//! strings has them decoded into a copy of at most three times the cap.) A guest that sleeps through WASI clocks is woken at its deadline, so it cannot
//! hold a thread longer than a guest that spins.
//!
//! # Instance policy
//!
//! * **An instance belongs to exactly one [`Component`]**, that is one compiled app
//!   version loaded with one set of [`LoadOptions`]. A warm instance is reused only for
//!   calls on that same `Component`, never across components, and so never across apps
//!   or tenants. Loading the same bytes twice gives two `Component`s that share compiled
//!   code but never instances.
//! * **Concurrent calls each take their own instance**: an idle one if there is one, else
//!   a fresh one. An instance is never used by two calls at once.
//! * **After any error that is not the guest's own answer, the instance is dropped**: a
//!   trap, a panic, a deadline, the memory cap, an output over its cap. A guest that
//!   returns `err(...)` from `run-callback` has not trapped, so its instance is kept.
//! * An instance is dropped after [`SandboxConfig::max_calls_per_instance`] calls, so that
//!   slow leaks inside a guest are bounded.
//! * At most [`SandboxConfig::idle_instances_per_component`] idle instances are kept per
//!   component, at most [`SandboxConfig::idle_instances_per_tenant`] per tenant
//!   ([`Owner::tenant`]), and across the whole sandbox at most half of
//!   [`SandboxConfig::max_instances`], so that idle instances never starve fresh ones of
//!   pooling-allocator slots.
//! * An instance idle for [`SandboxConfig::idle_expiry`] is dropped by a reaper thread, so
//!   a component nobody calls gives its slots back.
//!
//! # The pool shared by quota
//!
//! The pooling allocator has fixed numbers of instance, memory and table slots, shared by
//! every tenant. Each instance (idle or in a call) is charged to its tenant in *pool
//! units*: one, or more when it needs more memories or tables than the pool holds per
//! instance on average (two memories, ten tables), so a tenant's components with eight
//! memories each cost four units an instance. A tenant holds at most
//! [`SandboxConfig::max_instances_per_tenant`] units (a quarter of the pool by default); a
//! fresh instance past that first drops the tenant's own longest-idle instances, and is
//! otherwise refused with [`Error::Capacity`] naming the limit. When the pool as a whole is
//! full, the longest-idle instances of any tenant are dropped and instantiation is tried
//! once more. So one tenant can neither fill the pool with its instances nor keep another
//! tenant's app from loading with idle ones.
//!
//! At load, a component whose instance would need more than 8 linear memories or 64
//! tables, or a table of more than 200,000 elements, is refused with
//! [`Error::InvalidComponent`] naming the limit and its value (more than 64 core instances
//! are refused by the pooling allocator, also naming its maximum).
//!
//! A warm instance keeps the guest's global state from one call to the next (that is what
//! makes it warm); callbacks must not rely on either seeing or not seeing it.
//!
//! # Threads
//!
//! [`Component::call`] and [`Sandbox::load`] block the calling thread for as long as the
//! guest runs (at most the deadline). Call them from a plain thread or from tokio's
//! `spawn_blocking`, never directly on an async task.

#![deny(missing_docs)]

mod bindings;
mod cache;
mod capabilities;
mod capture;
mod clock;
mod compiler;
mod component;
mod config;
mod dashboard;
mod data;
mod error;
mod host;
mod imports;
mod lift;
mod limiter;
mod outbound;
mod pool;
mod priority;
mod python;
mod sandbox;
mod scheduler;
mod settings;
mod state;

pub use cache::PruneReport;
pub use capabilities::{
    CallContext, Capabilities, MAX_CACHE_KEY_BYTES, MAX_CACHE_VALUE_BYTES, MAX_PARAM_TEXT_BYTES,
    MAX_QUERY_PARAMS, MAX_SOURCE_NAME_BYTES, MAX_SQL_BYTES, Param, QueryError, Viewer,
};
pub use capture::{LINE_COST, Level, LogLine, LogStream};
pub use compiler::compile_artifact;
pub use component::{
    AppInfo, ArtifactSource, CallOptions, CallOutput, Component, Outcome, instantiations,
};
pub use config::{
    Compiler, Limits, LoadOptions, MAX_COMPONENT_BYTES, MAX_DATA_READ_BYTES, MAX_REQUEST_BYTES,
    Owner, SandboxConfig,
};
pub use dashboard::Dashboard;
pub use error::{CallFailure, Error};
pub use outbound::{
    HostPattern, InvalidCa, MAX_ALLOWED_HOSTS, OutboundPolicy, PatternError, TlsRoots,
    forbidden_range,
};
pub use priority::{LongWork, LongWorkScope};
pub use python::{
    BootReport, PYTHON_BYTES_PER_UNIT, PythonApp, PythonDirs, PythonImage, PythonRuntime,
};
pub use sandbox::Sandbox;
pub use scheduler::{CpuState, Foreground};
pub use settings::{MIN_MASKED_SECRET_CHARS, Settings};
pub use state::{MAX_STREAMED_UPDATES, PageProps, ProgressSink, StreamSink};

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
