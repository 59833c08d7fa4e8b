//! Props streamed while a WebSocket callback runs (Dash's `set_props` over its socket).
//!
//! In a component each update goes to the `host.stream-props` import, which sends it to the
//! browser at once when the call came over a WebSocket and answers `false` otherwise.
//! Natively nothing streams unless a unit test asked to `capture` the updates.
//!
//! [`read`] is the other direction (Dash's `get_prop`): the `host.get-props` import asks
//! the page of the call's connection for props and waits for its answer.

#[cfg(not(target_arch = "wasm32"))]
thread_local! {
    static CAPTURED: std::cell::RefCell<Option<Vec<(String, String)>>> =
        const { std::cell::RefCell::new(None) };
}

/// Send `props` (a JSON dictionary) of the component `id` now: `Ok(true)` when it went
/// out, `Ok(false)` when the call has nowhere to stream to, an error past the call's bounds.
#[cfg(target_arch = "wasm32")]
pub(crate) fn send(id: &str, props: &str) -> Result<bool, String> {
    crate::export::stream_props(id, props)
}

/// Read `properties` of the component `id` from the page: the JSON dictionary it holds,
/// `Ok(None)` when the call has no page to ask.
#[cfg(target_arch = "wasm32")]
pub(crate) fn read(id: &str, properties: &[String]) -> Result<Option<String>, String> {
    crate::export::get_props(id, properties)
}

/// Natively there is no page to ask.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn read(_id: &str, _properties: &[String]) -> Result<Option<String>, String> {
    Ok(None)
}

/// Natively: kept when a test asked to `capture` them, else nowhere to stream to.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn send(id: &str, props: &str) -> Result<bool, String> {
    CAPTURED.with(|captured| match captured.borrow_mut().as_mut() {
        Some(updates) => {
            updates.push((id.to_owned(), props.to_owned()));
            Ok(true)
        }
        None => Ok(false),
    })
}

/// From now on, keep this thread's updates as if they had been streamed (native builds
/// only, for tests); [`take`] returns them.
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) fn capture() {
    CAPTURED.with(|captured| *captured.borrow_mut() = Some(Vec::new()));
}

/// The updates captured on this thread since `capture`, which stops capturing.
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) fn take() -> Vec<(String, String)> {
    CAPTURED.with(|captured| captured.borrow_mut().take().unwrap_or_default())
}
