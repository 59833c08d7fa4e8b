//! A dashboard component of `tessera:dashboard@0.2.0` that drives the new imports for the
//! sandbox tests: `host.viewer`, `data.query`, `cache` and `host.stream-props`, with
//! well-formed and oversized arguments. Bindings come straight from the WIT (not the SDK), so the fixture does not
//! move when the SDK does.
//!
//! A callback's argument is the value of its first input (`request.inputs[0].value`); its
//! answer is a one-output JSON array describing what the host answered:
//! `{"ok": …}` or `{"err": {"kind": …, "message": …}}`.

wit_bindgen::generate!({
    path: "../../../wit/dashboard@0.2.0",
    world: "tessera:dashboard/dashboard",
    // The world imports wasi:http (and so wasi:io, wasi:clocks); this guest never calls
    // them, so the component imports none of them.
    generate_all,
});

use exports::tessera::dashboard::app::{AppInfo, CallbackError, Guest, Outcome};
use serde_json::{Value, json};
use tessera::dashboard::data::{self, Param, QueryError};
use tessera::dashboard::{cache, host};

struct Capable;

impl Guest for Capable {
    fn info() -> AppInfo {
        AppInfo {
            title: "capable".to_string(),
            sdk_version: "guest-capable".to_string(),
        }
    }

    fn layout() -> String {
        r#"{"type":"Div","namespace":"dash_html_components","props":{"id":"root","children":"0.2.0"}}"#
            .to_string()
    }

    /// The callbacks the platform's tests reach through `_dash-update-component`, each
    /// fired by the `go` button (the sandbox tests call the others directly).
    fn dependencies() -> String {
        let entries: Vec<Value> = ["ok", "viewer", "query", "cache"]
            .iter()
            .map(|name| {
                json!({
                    "output": format!("{name}.children"),
                    "inputs": [{"id": "go", "property": "n_clicks"}],
                    "state": [], "clientside_function": null, "prevent_initial_call": true,
                    "background": null, "dynamic_creator": false, "no_output": false,
                    "optional": false, "hidden": null, "websocket": false, "persistent": false,
                })
            })
            .collect();
        Value::Array(entries).to_string()
    }

    fn run_callback(id: String, request: String) -> Result<Outcome, CallbackError> {
        let request: Value = serde_json::from_str(&request)
            .map_err(|e| CallbackError::InvalidInput(e.to_string()))?;
        let arg = &request["inputs"][0]["value"];
        let answer = match id.as_str() {
            "ok.children" => json!("ok"),
            "viewer.children" => match host::viewer() {
                Ok(Some(viewer)) => json!({"ok": {
                    "user_id": viewer.user_id,
                    "email": viewer.email,
                    "groups": viewer.groups,
                }}),
                Ok(None) => json!({"ok": null}),
                Err(message) => json!({"err": {"kind": "viewer", "message": message}}),
            },
            "query.children" => {
                let params: Vec<Param> = arg["params"]
                    .as_array()
                    .map(|values| values.iter().map(param).collect())
                    .unwrap_or_default();
                query(
                    arg["source"].as_str().unwrap_or_default(),
                    arg["sql"].as_str().unwrap_or_default(),
                    &params,
                )
            }
            // Arguments of `arg.bytes` bytes, built in guest memory and handed to the host.
            "bigsql.children" => query("main", &"x".repeat(size(arg)), &[]),
            "bigsource.children" => query(&"s".repeat(size(arg)), "select 1", &[]),
            "bigparams.children" => {
                let params = vec![Param::Text("p".repeat(size(arg)))];
                query("main", "select $1", &params)
            }
            "manyparams.children" => {
                let params = vec![Param::Null; size(arg)];
                query("main", "select 1", &params)
            }
            "bigkey.children" => cache_answer(cache::get(&"k".repeat(size(arg))).map(|_| ())),
            "bigvalue.children" => cache_answer(cache::set("big", &vec![7u8; size(arg)], 60)),
            "cache.children" => {
                let key = arg["key"].as_str().unwrap_or_default();
                match arg["op"].as_str() {
                    Some("get") => match cache::get(key) {
                        Ok(value) => {
                            json!({"ok": value.map(|v| String::from_utf8_lossy(&v).into_owned())})
                        }
                        Err(message) => json!({"err": {"kind": "cache", "message": message}}),
                    },
                    Some("set") => {
                        let value = arg["value"].as_str().unwrap_or_default();
                        let ttl = arg["ttl"].as_u64().unwrap_or(60) as u32;
                        cache_answer(cache::set(key, value.as_bytes(), ttl))
                    }
                    Some("delete") => cache_answer(cache::delete(key)),
                    _ => return Err(CallbackError::InvalidInput("no op".to_string())),
                }
            }
            // `arg.count` updates of `arg.bytes` bytes each through `host.stream-props`
            // (`arg.raw`: this exact props text once instead); stops at the first error.
            "stream.children" => {
                if let Some(raw) = arg["raw"].as_str() {
                    match host::stream_props("feed", raw) {
                        Ok(sent) => json!({"ok": sent}),
                        Err(message) => json!({"err": {"kind": "stream", "message": message}}),
                    }
                } else {
                    let props = json!({"children": "p".repeat(size(arg))}).to_string();
                    let mut sent = 0;
                    let mut error = Value::Null;
                    for _ in 0..arg["count"].as_u64().unwrap_or(1) {
                        match host::stream_props("feed", &props) {
                            Ok(true) => sent += 1,
                            Ok(false) => break,
                            Err(message) => {
                                error = json!(message);
                                break;
                            }
                        }
                    }
                    json!({"ok": {"sent": sent, "error": error}})
                }
            }
            other => return Err(CallbackError::Failed(format!("unknown callback {other}"))),
        };
        Ok(Outcome::Outputs(json!([answer]).to_string()))
    }
}

fn size(arg: &Value) -> usize {
    arg["bytes"].as_u64().unwrap_or(0) as usize
}

fn param(value: &Value) -> Param {
    match value {
        Value::Null => Param::Null,
        Value::Bool(b) => Param::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Param::Integer(i),
            None => Param::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Param::Text(s.clone()),
        other => Param::Text(other.to_string()),
    }
}

/// The answer of a query: its bytes as (lossy) text, or the error's case and message.
fn query(source: &str, sql: &str, params: &[Param]) -> Value {
    match data::query(source, sql, params) {
        Ok(bytes) => json!({"ok": String::from_utf8_lossy(&bytes), "len": bytes.len()}),
        Err(error) => {
            let (kind, message) = match error {
                QueryError::NotGranted(m) => ("not-granted", m),
                QueryError::Refused(m) => ("refused", m),
                QueryError::Limit(m) => ("limit", m),
                QueryError::Failed(m) => ("failed", m),
                QueryError::Unavailable(m) => ("unavailable", m),
            };
            json!({"err": {"kind": kind, "message": message}})
        }
    }
}

fn cache_answer(result: Result<(), String>) -> Value {
    match result {
        Ok(()) => json!({"ok": null}),
        Err(message) => json!({"err": {"kind": "cache", "message": message}}),
    }
}

export!(Capable);
