//! The `tessera:dashboard/host` interface, at 0.1.0 and 0.2.0: what the platform grants a
//! dashboard beyond WASI. Every function is cheap and bounded; none can block for long,
//! because epoch interruption cannot stop a guest while it is inside a host call (the
//! blocking ones, `data` and `cache`, are in `capabilities`). 0.2.0 has the same four
//! functions plus `viewer`.
//! `setting` reads the values handed over at load time.
//! `report-progress` hands the report to the sink the caller supplied for this call
//! ([`crate::CallOptions::progress`]) and returns at once; so does 0.2.0's `stream-props`
//! with [`crate::CallOptions::stream`] (a WebSocket callback's connection). 0.2.0's
//! `get-props` asks that connection's page for props ([`crate::CallOptions::page`]) and
//! waits for the answer like a capability: without its core, at most until the call's
//! deadline or cancellation.
//!
//! The functions are defined by hand rather than through the generated `Host` trait so
//! that every string argument arrives as a [`WasmStr`], still in guest memory: its length
//! is checked against the log budget or the output cap before any of it is copied, so a
//! guest passing 100 MiB costs the host nothing. (For UTF-8 guests reading it is free; a
//! UTF-16 guest's string is decoded into a copy, bounded by its own memory cap.)

use crate::bindings::{host, v0_2};
use crate::capture::Level;
use crate::data;
use crate::state::State;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, WasmList, WasmStr};

/// The host interface's names in the linker, one per WIT version.
const HOST_INTERFACES: &[&str] = &[
    "tessera:dashboard/host@0.1.0",
    "tessera:dashboard/host@0.2.0",
];

/// What `host.viewer` (and a Python app's `tessera.viewer()`) answers in a memoized call.
pub(crate) const MEMOIZED_VIEWER: &str = "this callback is memoized: its answer is shared between viewers, so it cannot depend on who is viewing";

/// Longest path `read-data` looks at; longer ones are refused without being copied (the
/// refusal would otherwise quote them).
const MAX_DATA_PATH_BYTES: usize = 4096;

/// Longest component id `get-props` sends to the page.
const MAX_GET_PROPS_ID_BYTES: usize = 4096;
/// Most prop names one `get-props` asks for.
const MAX_GET_PROPS_NAMES: usize = 64;
/// Longest prop name `get-props` sends.
const MAX_GET_PROPS_NAME_BYTES: usize = 256;

/// Defines `tessera:dashboard/host` in `linker`.
///
/// Each function borrows the guest's string and the instance's state side by side (both
/// shared: the log sink and the progress sink lock inside), so nothing is copied before the
/// state has said how much it keeps.
pub(crate) fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    for interface in HOST_INTERFACES {
        add_common(linker, interface)?;
    }
    let mut host = linker.instance(HOST_INTERFACES[1])?;
    host.func_wrap("viewer", |store: StoreContextMut<'_, State>, ()| {
        let state = store.data();
        if state.memoized {
            return Ok((Err(MEMOIZED_VIEWER.to_string()),));
        }
        let viewer =
            state
                .viewer
                .clone()
                .map(|viewer| v0_2::tessera::dashboard::host::ViewerInfo {
                    user_id: viewer.user_id,
                    email: viewer.email,
                    groups: viewer.groups,
                });
        Ok((Ok(viewer),))
    })?;
    host.func_wrap(
        "stream-props",
        |store: StoreContextMut<'_, State>, (id, props): (WasmStr, WasmStr)| {
            // Both strings are borrowed from guest memory; the state copies them only
            // once they are within the call's streaming bounds.
            let id = id.to_str(&store)?;
            let props = props.to_str(&store)?;
            Ok((store.data().stream_props(&id, &props),))
        },
    )?;
    host.func_wrap(
        "get-props",
        |store: StoreContextMut<'_, State>, (id, names): (WasmStr, WasmList<WasmStr>)| {
            Ok((get_props(store, &id, &names)?,))
        },
    )?;
    Ok(())
}

/// `host.get-props`: arguments checked in guest memory, the request handed to the call's
/// page, then its answer awaited without the core. `None` when the call has no page (it
/// did not come over a WebSocket).
fn get_props(
    mut store: StoreContextMut<'_, State>,
    id: &WasmStr,
    names: &WasmList<WasmStr>,
) -> wasmtime::Result<Result<Option<String>, String>> {
    let Some(page) = store.data().page.clone() else {
        return Ok(Ok(None));
    };
    if let Some(why) = names_over_bounds(names.len()) {
        return Ok(Err(why));
    }
    let id = id.to_str(&store)?;
    if let Some(why) = id_over_bounds(id.len()) {
        return Ok(Err(why));
    }
    let id = id.into_owned();
    let mut raw = Vec::with_capacity(names.len());
    for name in names.iter(&mut store)? {
        raw.push(name?);
    }
    let mut properties = Vec::with_capacity(raw.len());
    for name in raw {
        let name = name.to_str(&store)?;
        if let Some(why) = name_over_bounds(name.len()) {
            return Ok(Err(why));
        }
        properties.push(name.into_owned());
    }
    let answer = page(id, properties);
    // Run on this thread: the wait itself stops at the deadline or the cancellation.
    let answer = crate::capabilities::blocking(store, true, move |call| {
        wait_for_page(&answer, call).map(Some)
    })?;
    Ok(answer)
}

/// Why a `get-props` request for `count` prop names is over the host's bounds, if it is.
pub(crate) fn names_over_bounds(count: usize) -> Option<String> {
    (count > MAX_GET_PROPS_NAMES)
        .then(|| format!("{count} prop names, over the limit of {MAX_GET_PROPS_NAMES}"))
}

/// Why a `get-props` request's component id of `len` bytes is over the bounds, if it is.
pub(crate) fn id_over_bounds(len: usize) -> Option<String> {
    (len > MAX_GET_PROPS_ID_BYTES).then(|| {
        format!("the component id is {len} bytes, over the limit of {MAX_GET_PROPS_ID_BYTES}")
    })
}

/// Why a `get-props` prop name of `len` bytes is over the bounds, if it is.
pub(crate) fn name_over_bounds(len: usize) -> Option<String> {
    (len > MAX_GET_PROPS_NAME_BYTES).then(|| {
        format!("a prop name is {len} bytes, over the limit of {MAX_GET_PROPS_NAME_BYTES}")
    })
}

/// The page's answer (within the call's answer cap), or an error once the call is over
/// (which the caller turns into the call's deadline or cancellation) or the connection
/// closed. Run without the call's core.
pub(crate) fn wait_for_page(
    answer: &Receiver<String>,
    call: &crate::capabilities::CallContext,
) -> Result<String, String> {
    loop {
        let wait = crate::capabilities::CANCEL_CHECK.min(call.remaining());
        match answer.recv_timeout(wait) {
            Ok(props) if props.len() > call.max_answer_bytes => {
                return Err(format!(
                    "the page's answer is {} bytes, over this call's limit of {}",
                    props.len(),
                    call.max_answer_bytes
                ));
            }
            Ok(props) => return Ok(props),
            Err(RecvTimeoutError::Timeout) if call.over() => {
                return Err("the call ended while waiting for the page".to_string());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err("the page's connection closed before it answered".to_string());
            }
        }
    }
}

/// The functions `host` has at every version. The `level` enum is the same at both
/// (wasmtime checks an enum by its case names), so 0.1.0's type serves 0.2.0 too.
fn add_common(linker: &mut Linker<State>, interface: &str) -> wasmtime::Result<()> {
    let mut host = linker.instance(interface)?;
    host.func_wrap(
        "log",
        |store: StoreContextMut<'_, State>, (level, message): (host::Level, WasmStr)| {
            let level = match level {
                host::Level::Trace => Level::Trace,
                host::Level::Debug => Level::Debug,
                host::Level::Info => Level::Info,
                host::Level::Warn => Level::Warn,
                host::Level::Error => Level::Error,
            };
            let text = message.to_str(&store)?;
            store.data().logs.host(level, &text);
            Ok(())
        },
    )?;
    host.func_wrap(
        "report-progress",
        |store: StoreContextMut<'_, State>, (json,): (WasmStr,)| {
            let text = json.to_str(&store)?;
            store.data().report_progress(&text);
            Ok(())
        },
    )?;
    host.func_wrap(
        "setting",
        |store: StoreContextMut<'_, State>, (name,): (WasmStr,)| {
            let name = name.to_str(&store)?;
            Ok((store.data().settings.get(&name).map(str::to_owned),))
        },
    )?;
    host.func_wrap(
        "read-data",
        |store: StoreContextMut<'_, State>, (path,): (WasmStr,)| {
            let path = path.to_str(&store)?;
            if path.len() > MAX_DATA_PATH_BYTES {
                return Ok((Err(format!(
                    "the path is {} bytes, over the limit of {MAX_DATA_PATH_BYTES}",
                    path.len()
                )),));
            }
            let state = store.data();
            Ok((data::read(state.data_dir.as_deref(), &path, state.read_cap),))
        },
    )?;
    Ok(())
}
