//! Host-side bindings of the `tessera:dashboard/dashboard` world, one module per WIT
//! version, generated from the WIT at the repository root. This is the only module that
//! runs `bindgen!`; the generated types stay inside the crate and the public API restates
//! what it needs of them.
//!
//! The host functions themselves are defined by hand (`host`, `capabilities`); the
//! bindings give their record and variant types and the `DashboardPre` that type-checks a
//! component's `app` export against its version.

/// `tessera:dashboard@0.1.0`: what every component built before 0.2.0 links against.
pub(crate) mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/dashboard@0.1.0",
        world: "tessera:dashboard/dashboard",
    });
}

/// `tessera:dashboard@0.2.0`: 0.1.0 plus `host.viewer`, `data`, `cache` and
/// `wasi:http/outgoing-handler`. The WASI packages it names (vendored in the world's
/// `deps/`) are the ones wasmtime-wasi and wasmtime-wasi-http already bind, so they are
/// reused rather than generated again: the linker defines them through `outbound.rs`.
pub(crate) mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/dashboard@0.2.0",
        world: "tessera:dashboard/dashboard",
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

pub(crate) use v0_1::tessera::dashboard::host;
