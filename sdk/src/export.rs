//! The component side: WIT bindings and the glue behind [`export_app!`](crate::export_app).
//!
//! This is the only module that generates bindings from `wit/`. It exists on `wasm32`
//! only; everything else in the crate is plain Rust that also builds natively. It must not
//! hold app logic: each function converts between WIT types and [`App`] calls.

use crate::app::{App, Outcome};
use crate::error::CallbackError;
use crate::log::Level;

/// Bindings for the `tessera:dashboard` world, generated from the WIT at the repo root.
#[expect(
    missing_docs,
    reason = "generated code; the WIT file documents the contract, not every generated item"
)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/dashboard@0.2.0",
        world: "tessera:dashboard/dashboard@0.2.0",
        // The export macro is invoked from the author's crate through `export_app!`.
        pub_export_macro: true,
        default_bindings_module: "sdk::__private::bindings",
        // wasi:http and the WASI packages it names (for `http`); a component imports only
        // the functions it calls, so an app without HTTP imports none of them.
        generate_all,
    });
}

use bindings::exports::tessera::dashboard::app;
use bindings::tessera::dashboard::{cache, data, host};

pub use app::{
    AppInfo as WitInfo, CallbackError as WitCallbackError, Guest, Outcome as WitOutcome,
};

/// `info` for the WIT export.
pub fn info(app: &App) -> WitInfo {
    let info = app.info();
    WitInfo {
        title: info.title,
        sdk_version: info.sdk_version,
    }
}

/// `run-callback` for the WIT export.
pub fn run_callback(app: &App, id: &str, request: &str) -> Result<WitOutcome, WitCallbackError> {
    match app.run_callback(id, request) {
        Ok(Outcome::Outputs(json)) => Ok(WitOutcome::Outputs(json)),
        Ok(Outcome::PreventUpdate) => Ok(WitOutcome::PreventUpdate),
        Err(CallbackError::InvalidInput(message)) => Err(WitCallbackError::InvalidInput(message)),
        Err(CallbackError::Failed(message)) => Err(WitCallbackError::Failed(message)),
    }
}

/// Send a log line to the host.
pub(crate) fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => host::Level::Trace,
        Level::Debug => host::Level::Debug,
        Level::Info => host::Level::Info,
        Level::Warn => host::Level::Warn,
        Level::Error => host::Level::Error,
    };
    host::log(level, message);
}

/// Ask the host for a data file.
pub(crate) fn read_data(path: &str) -> Result<Vec<u8>, String> {
    host::read_data(path)
}

/// Ask the host for one of the app's settings.
pub(crate) fn setting(name: &str) -> Option<String> {
    host::setting(name)
}

/// Send a background callback's progress report to the host.
pub(crate) fn report_progress(json: &str) {
    host::report_progress(json);
}

/// Stream props of component `id` to the browser now (`Ok(false)`: no connection).
pub(crate) fn stream_props(id: &str, props: &str) -> Result<bool, String> {
    host::stream_props(id, props)
}

/// Read props of component `id` from the page (`Ok(None)`: no connection).
pub(crate) fn get_props(id: &str, properties: &[String]) -> Result<Option<String>, String> {
    host::get_props(id, properties)
}

/// Ask the host who is viewing.
pub(crate) fn viewer() -> Result<Option<crate::viewer::Viewer>, String> {
    Ok(host::viewer()?.map(|viewer| crate::viewer::Viewer {
        user_id: viewer.user_id,
        email: viewer.email,
        groups: viewer.groups,
    }))
}

/// Run a query on a data source.
pub(crate) fn query(
    source: &str,
    sql: &str,
    params: &[crate::sql::Param],
) -> Result<Vec<u8>, crate::sql::QueryError> {
    use crate::sql::{Param, QueryError};
    let params: Vec<data::Param> = params
        .iter()
        .map(|param| match param {
            Param::Null => data::Param::Null,
            Param::Boolean(b) => data::Param::Boolean(*b),
            Param::Integer(i) => data::Param::Integer(*i),
            Param::Float(f) => data::Param::Float(*f),
            Param::Text(t) => data::Param::Text(t.clone()),
        })
        .collect();
    data::query(source, sql, &params).map_err(|error| match error {
        data::QueryError::NotGranted(m) => QueryError::NotGranted(m),
        data::QueryError::Refused(m) => QueryError::Refused(m),
        data::QueryError::Limit(m) => QueryError::Limit(m),
        data::QueryError::Failed(m) => QueryError::Failed(m),
        data::QueryError::Unavailable(m) => QueryError::Unavailable(m),
    })
}

/// The cache's `get`.
pub(crate) fn cache_get(key: &str) -> Result<Option<Vec<u8>>, String> {
    cache::get(key)
}

/// The cache's `set`.
pub(crate) fn cache_set(key: &str, value: &[u8], ttl_seconds: u32) -> Result<(), String> {
    cache::set(key, value, ttl_seconds)
}

/// The cache's `delete`.
pub(crate) fn cache_delete(key: &str) -> Result<(), String> {
    cache::delete(key)
}
