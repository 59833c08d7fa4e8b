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
//! library links against (cli, io, clocks, random, filesystem). Anything else, sockets and
//! HTTP above all, is refused with [`Error::ForbiddenImport`] before it can run. The
//! linker does not even define the refused interfaces. The WASI context has an empty
//! environment, no arguments, empty stdin and no network; stdout and stderr are captured
//! into the call's log lines, bounded by [`Limits::log_bytes`]. The app's own data folder,
//! if [`LoadOptions::data_dir`] names one, is visible read-only at `/data` and through the
//! `read-data` host function; nothing else of the host file system is.
//!
//! # Limits
//!
//! Every call, and the calls made while loading, runs under [`Limits`]: a wall-clock
//! deadline enforced by epoch interruption (a ticker thread advances the engine's epoch
//! every [`SandboxConfig::epoch_tick`]), a cap on the sum of the instance's linear memories,
//! a cap on the size of each string the component returns, and a cap on captured log
//! output. A guest that sleeps through WASI clocks is woken at its deadline, so it cannot
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
//!   component, and across the whole sandbox at most half of
//!   [`SandboxConfig::max_instances`], so that idle instances never starve fresh ones of
//!   pooling-allocator slots.
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
mod capture;
mod clock;
mod compiler;
mod component;
mod config;
mod data;
mod error;
mod host;
mod imports;
mod limiter;
mod sandbox;
mod scheduler;
mod settings;
mod state;

pub use cache::PruneReport;
pub use capture::{LINE_COST, Level, LogLine, LogStream};
pub use compiler::compile_artifact;
pub use component::{AppInfo, ArtifactSource, CallOptions, CallOutput, Component, Outcome};
pub use config::{
    Compiler, Limits, LoadOptions, MAX_COMPONENT_BYTES, MAX_DATA_READ_BYTES, MAX_REQUEST_BYTES,
    Owner, SandboxConfig,
};
pub use error::{CallFailure, Error};
pub use sandbox::Sandbox;
pub use settings::{MIN_MASKED_SECRET_CHARS, Settings};
pub use state::ProgressSink;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
