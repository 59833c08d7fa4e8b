//! Host-side bindings of the `tessera:dashboard/dashboard` world, generated from the WIT
//! at the repository root. This is the only module that runs `bindgen!`; the generated
//! types stay inside the crate and the public API restates what it needs of them.

wasmtime::component::bindgen!({
    path: "../wit/dashboard@0.1.0",
    world: "tessera:dashboard/dashboard",
});

pub(crate) use tessera::dashboard::host;
