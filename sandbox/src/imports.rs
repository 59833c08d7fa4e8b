//! What a dashboard component may import: the allowlist checked at load time, and the
//! linker that defines exactly those interfaces and nothing else.
//!
//! The two must agree. The allowlist gives a clear [`Error::ForbiddenImport`] naming the
//! import; the linker is the second wall: an interface it does not define (sockets, HTTP)
//! cannot be instantiated even if the allowlist were wrong.

use crate::clock::DeadlineClock;
use crate::state::State;
use crate::{Error, Result};
use wasmtime::Engine;
use wasmtime::component::{Component, HasData, Linker, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::random::WasiRandom;

/// The exports a dashboard may provide (exactly one of them), newest first: the `app`
/// interface of each WIT version the sandbox serves. A component built for 0.1.0 keeps
/// working unchanged beside those built for 0.2.0.
pub(crate) const APP_EXPORTS: &[&str] =
    &["tessera:dashboard/app@0.2.0", "tessera:dashboard/app@0.1.0"];

/// Interfaces a component may import, without their `@version`. These are Tessera's own
/// interfaces (`host` of every version; `data` and `cache` from 0.2.0, which the linker
/// defines only at that version), the WASI interfaces that standard libraries (Rust std,
/// CPython) link against even when the app never uses them, and `wasi:http`, whose requests
/// go through the app's outbound policy. Sockets are absent on purpose.
const ALLOWED_IMPORTS: &[&str] = &[
    "tessera:dashboard/host",
    "tessera:dashboard/data",
    "tessera:dashboard/cache",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    // Outbound HTTP, through the app's policy only (`outbound.rs`): the default policy
    // refuses every request.
    "wasi:http/outgoing-handler",
    "wasi:http/types",
];

/// Refuses a component that imports anything outside the allowlist, naming the first such
/// import, or that does not export the dashboard `app` interface.
pub(crate) fn check(engine: &Engine, component: &Component) -> Result<()> {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        let interface = name
            .split_once('@')
            .map_or(name, |(interface, _)| interface);
        if !ALLOWED_IMPORTS.contains(&interface) {
            return Err(Error::ForbiddenImport {
                import: name.to_string(),
            });
        }
    }
    if !ty
        .exports(engine)
        .any(|(name, _)| APP_EXPORTS.contains(&name))
    {
        let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
        return Err(Error::InvalidComponent {
            reason: format!(
                "it does not export `{}` (its exports: {})",
                APP_EXPORTS.join("` or `"),
                if exports.is_empty() {
                    "none".to_string()
                } else {
                    exports.join(", ")
                }
            ),
        });
    }
    Ok(())
}

/// Whether `component` can learn who is viewing: it imports `host` at 0.2.0 (`viewer`) or
/// `data` (whose queries the platform may filter by viewer). The platform looks the viewer
/// up only for such components.
pub(crate) fn sees_viewer(engine: &Engine, component: &Component) -> bool {
    component.component_type().imports(engine).any(|(name, _)| {
        name.starts_with("tessera:dashboard/host@0.2.")
            || name.starts_with("tessera:dashboard/data@")
    })
}

/// Whether `component` can send HTTP requests: it imports `wasi:http/outgoing-handler`
/// (any version). A component that never sends one does not import it, even when built
/// for a world that offers it.
pub(crate) fn sends_http(engine: &Engine, component: &Component) -> bool {
    component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.starts_with("wasi:http/outgoing-handler@"))
}

/// [`HasData`] for the `wasi:io` interfaces, which only need the resource table.
struct Io;

impl HasData for Io {
    type Data<'a> = &'a mut ResourceTable;
}

/// The one linker of a sandbox: the allowed WASI interfaces (synchronous flavour, so no
/// async support is needed in the engine) and Tessera's interfaces: `host` at 0.1.0 and
/// 0.2.0, `data` and `cache` at 0.2.0.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<State>> {
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sync};

    let mut linker = Linker::<State>::new(engine);
    let l = &mut linker;

    sync::io::error::add_to_linker::<State, Io>(l, State::table)?;
    // Waits give the call's core up (a guest waiting for a response costs no CPU).
    sync::io::poll::add_to_linker::<State, crate::outbound::YieldingPoll>(l, State::poll)?;
    sync::io::streams::add_to_linker::<State, Io>(l, State::table)?;

    clocks::wall_clock::add_to_linker::<State, WasiClocks>(l, State::clocks)?;
    // Tessera's own monotonic clock, whose sleeps end at the call's deadline.
    clocks::monotonic_clock::add_to_linker::<State, DeadlineClock>(l, State::clock)?;

    random::random::add_to_linker::<State, WasiRandom>(l, |s| s.ctx().ctx.random())?;
    random::insecure::add_to_linker::<State, WasiRandom>(l, |s| s.ctx().ctx.random())?;
    random::insecure_seed::add_to_linker::<State, WasiRandom>(l, |s| s.ctx().ctx.random())?;

    cli::exit::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::environment::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::stdin::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::stdout::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::stderr::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_input::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_output::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_stdin::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_stdout::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_stderr::add_to_linker::<State, WasiCli>(l, State::cli)?;

    filesystem::preopens::add_to_linker::<State, WasiFilesystem>(l, State::filesystem)?;
    sync::filesystem::types::add_to_linker::<State, WasiFilesystem>(l, State::filesystem)?;

    crate::host::add_to_linker(l)?;
    crate::capabilities::add_to_linker(l)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(l)?;
    Ok(linker)
}

#[cfg(test)]
mod tests {
    use super::ALLOWED_IMPORTS;

    #[test]
    fn allowlist_grants_no_sockets_and_http_only_through_the_policy() {
        for name in ALLOWED_IMPORTS {
            assert!(!name.starts_with("wasi:sockets"), "{name}");
            // HTTP is linked only through `outbound.rs`, whose hooks check the policy; the
            // incoming handler (serving HTTP) is never granted.
            assert!(
                !name.starts_with("wasi:http")
                    || matches!(*name, "wasi:http/outgoing-handler" | "wasi:http/types"),
                "{name}"
            );
            assert!(
                !name.contains('@'),
                "allowlist entries are unversioned: {name}"
            );
        }
        let default = crate::OutboundPolicy::default();
        assert!(default.allowed_hosts.is_empty() && !default.allow_private);
    }
}
