//! Configuration: one [`SandboxConfig`] per process, one [`LoadOptions`] (with its
//! [`Limits`]) per loaded component.
//!
//! Plain data only; the values are checked where they are used.

use crate::capabilities::Capabilities;
use crate::outbound::OutboundPolicy;
use crate::settings::Settings;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Largest component the sandbox will look at. Bigger input is refused before any parsing,
/// because compilation cost grows with size and compilation is outside wasmtime's
/// denial-of-service guarantees. A CPython component with plotly is about 33 MiB.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// Largest request (callback id plus request JSON) passed to a guest. The host copies the
/// request into guest memory, and host-side copies are not counted by the memory limit.
pub const MAX_REQUEST_BYTES: usize = 16 << 20;

/// Largest file that `read-data` returns in one piece (it is further capped by
/// [`Limits::memory_bytes`], since the guest could not hold more). Bigger files can still
/// be streamed through WASI at `/data`, where the guest reads into its own memory.
pub const MAX_DATA_READ_BYTES: usize = 32 << 20;

/// Process-wide settings of a [`Sandbox`](crate::Sandbox).
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Directory for compiled artifacts, keyed by component hash, wasmtime version and
    /// engine configuration. `None` keeps compiled code in memory only.
    ///
    /// Artifacts are machine code that the sandbox maps and runs: the directory must be
    /// writable only by the platform. Damaged entries are detected (each has a digest
    /// beside it) and recompiled, but a deliberately forged entry with a matching digest
    /// would run unchecked.
    pub cache_dir: Option<PathBuf>,
    /// Instance slots of the pooling allocator: the most component instances (warm or in a
    /// call) that can exist at once. Each slot reserves address space, not memory: two
    /// linear-memory slots of 4 GiB plus guards, so about 8 TiB for the default 1000
    /// (x86-64 user space has 128 TiB). Should the reservation fail, the sandbox falls back
    /// to allocating instances on demand, with the same limits.
    pub max_instances: u32,
    /// Ceiling of one linear memory in the pool. Every [`Limits::memory_bytes`] must be at
    /// most this.
    pub max_memory_bytes: usize,
    /// Idle (warm) instances kept per component.
    pub idle_instances_per_component: usize,
    /// Idle instances kept per tenant ([`Owner::tenant`]), over all its components.
    pub idle_instances_per_tenant: usize,
    /// Pool units one tenant's instances (idle and in a call) may hold at once; at most
    /// `max_instances` (a larger value counts as `max_instances`). An instance costs one
    /// unit, or more if it needs more of the pool's memory or table slots than an
    /// average instance (see the crate documentation). An instance over the cap is refused
    /// with [`Error::Capacity`](crate::Error::Capacity) naming it, so one tenant can never
    /// take all slots.
    pub max_instances_per_tenant: u32,
    /// How long an instance may stay idle before it is dropped (checked by a reaper thread
    /// a few times per period), so that components nobody calls give back their slots.
    pub idle_expiry: Duration,
    /// Calls after which a warm instance is retired and replaced by a fresh one.
    pub max_calls_per_instance: u64,
    /// Period of the epoch ticker, the granularity of every deadline and the longest a
    /// guest runs before the CPU scheduler may hand its core to another tenant.
    pub epoch_tick: Duration,
    /// Guests that may run at once, shared fairly between tenants by their weight (see
    /// [`Owner`]). Calls beyond it wait, parked, for a core. Defaults to the number of
    /// cores.
    pub cpu_slots: usize,
    /// Park long calls (those in the idle class) while short calls or
    /// [`Sandbox::foreground`](crate::Sandbox::foreground) marks are active, so that a
    /// light call does not share the machine's caches and memory bandwidth with them. The
    /// value is the starvation bound: after long calls have been held back this long, one
    /// of them runs for a tick before they are held again. `None` never parks them.
    pub park_long_calls: Option<Duration>,
    /// Cores long calls (those in the idle class) never run on, so that a light call always
    /// finds one without a guest on it; 0 lets long calls use every core. Ignored when it
    /// would leave long calls no core, or when calls cannot be moved to the idle class.
    pub spared_cores: usize,
    /// Compile guests with explicit bounds checks instead of guard pages. Each memory
    /// access then costs a compare, but a pool slot keeps its read-write pages between
    /// instances: growing a memory into pages the slot's earlier instance used needs no
    /// `mprotect`, and starting an instance no `mprotect` back, so a tenant's memory bombs
    /// take the process's memory-map lock far less often (docs/design-notes.md). Compiled
    /// code differs, so artifacts cached under the other setting are compiled again.
    pub explicit_bounds_checks: bool,
    /// Compile new components in a separate process under a time and memory limit. `None`
    /// compiles in this process, without a limit: only for tests and trusted components.
    pub compiler: Option<Compiler>,
}

/// A separate process that compiles one component: it is run as
/// `prlimit --as=<memory> --cpu=<time> -- <program> <args…> <component.wasm> <artifact>`
/// and must write the artifact with [`compile_artifact`](crate::compile_artifact). A
/// component whose compilation runs over a limit is refused naming it, and compiling it is
/// not tried again by this process.
#[derive(Clone, Debug)]
pub struct Compiler {
    /// The program (the platform runs its own executable).
    pub program: PathBuf,
    /// Arguments before the two paths (e.g. a subcommand).
    pub args: Vec<String>,
    /// Wall-clock limit of one compilation.
    pub time_limit: Duration,
    /// Address-space limit of the compiling process.
    pub memory_bytes: u64,
}

impl SandboxConfig {
    /// The memory reservation of bounds-checked memories ([`Self::explicit_bounds_checks`]):
    /// the pool's memory size, which the pooling allocator requires at least.
    pub(crate) fn bounds_checked_reservation(&self) -> Option<u64> {
        self.explicit_bounds_checks
            .then_some(self.max_memory_bytes as u64)
    }

    /// The starvation bound we measured parked long calls with ([`SandboxConfig::park_long_calls`], off by default):
    /// five ticks, so that long calls get at least a sixth of a core under a foreground
    /// that never rests.
    pub const DEFAULT_PARK_BOUND: Duration = Duration::from_millis(50);
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            cache_dir: None,
            max_instances: 1000,
            max_memory_bytes: 1 << 30,
            idle_instances_per_component: 4,
            idle_instances_per_tenant: 64,
            max_instances_per_tenant: 250,
            idle_expiry: Duration::from_secs(5 * 60),
            max_calls_per_instance: 10_000,
            epoch_tick: Duration::from_millis(10),
            cpu_slots: std::thread::available_parallelism().map_or(1, |n| n.get()),
            // Off: parking measured worse than the idle class alone (docs/benchmarks.md).
            park_long_calls: None,
            spared_cores: 0,
            explicit_bounds_checks: false,
            compiler: None,
        }
    }
}

/// Hard limits on one component's calls.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Wall-clock budget of one call (and of each call made while loading). The guest is
    /// stopped between this and one epoch tick later. At most one day.
    pub deadline: Duration,
    /// Cap on the sum of the instance's linear memories.
    pub memory_bytes: usize,
    /// Cap on each string the component returns: callback outputs, error messages, the
    /// layout and the dependency list.
    pub output_bytes: usize,
    /// Cap on captured stdout, stderr and `host.log` text per call, in total. Output past
    /// the cap is dropped silently (a final log line says so); it never fails the call.
    pub log_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(5),
            memory_bytes: 128 << 20,
            output_bytes: 8 << 20,
            log_bytes: 64 << 10,
        }
    }
}

/// How to load one component.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// Limits for every call on the component.
    pub limits: Limits,
    /// The app's data folder, visible read-only at `/data` and through `read-data`.
    /// `None` grants no files at all.
    pub data_dir: Option<PathBuf>,
    /// The app's settings and secrets, read by the guest through `host.setting`.
    pub settings: Settings,
    /// Who the component's calls are charged to: CPU time, instance slots.
    pub owner: Owner,
    /// The app's data sources and cache (the 0.2.0 `data` and `cache` imports), for the
    /// tenant and app of `owner`. `None`: `query` answers `unavailable` and the cache an
    /// error, "not available on this server".
    pub capabilities: Option<Arc<dyn Capabilities>>,
    /// Where the app may send HTTP requests (`wasi:http`); the default reaches nothing.
    pub outbound: OutboundPolicy,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("limits", &self.limits)
            .field("data_dir", &self.data_dir)
            .field("settings", &self.settings)
            .field("owner", &self.owner)
            .field("capabilities", &self.capabilities.is_some())
            .field("outbound", &self.outbound)
            .finish()
    }
}

/// The tenant and app a component belongs to, as opaque numbers, and the tenant's share.
///
/// The sandbox knows nothing of tenants beyond this: calls of different owners compete for
/// the CPU and the instance pool fairly, in proportion to `weight`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The tenant (the platform's tenant id).
    pub tenant: i64,
    /// The app within the tenant; `0` for a component not yet an app (a deploy's check).
    pub app: i64,
    /// The tenant's CPU weight: a tenant of weight 200 gets twice the CPU of one of 100
    /// when both want more than their share.
    pub weight: u32,
}

impl Owner {
    /// The weight of a tenant with no particular share.
    pub const DEFAULT_WEIGHT: u32 = 100;
}

impl Default for Owner {
    fn default() -> Self {
        Owner {
            tenant: 0,
            app: 0,
            weight: Owner::DEFAULT_WEIGHT,
        }
    }
}
