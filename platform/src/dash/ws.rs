//! Dash 4.4.1's WebSocket callbacks without the socket: the `websocket` block of
//! `_dash-config`, the messages the renderer's worker (`dash-ws-worker.js`) and the server
//! exchange, the origin check and the per-tenant count of open connections.
//!
//! The worker sends `{"type": "callback_request", "rendererId", "requestId", "payload"}`,
//! whose payload is exactly the body of `_dash-update-component`, `get_props_response`
//! (`requestId` and `payload`: the props the page holds, by name) and
//! `{"type": "heartbeat"}`. The server answers `callback_response` (payload
//! `{"status": "ok", "data": <the HTTP answer's body>}`, `{"status": "prevent_update"}` or
//! `{"status": "error", "message"}`), `set_props` (`payload: {componentId, props}`),
//! which a callback streams while it runs, `get_props_request` (`requestId`,
//! `payload: {componentId, properties}`), by which a running callback reads props from
//! the page, and `{"type": "heartbeat_ack"}`; several messages may go out as one JSON
//! array (Dash batches within 5 ms).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::dependencies::{Callback, Dependencies};
use crate::ids::TenantId;

/// The endpoint's name under the app's prefix.
pub const ENDPOINT: &str = "_dash-ws-callback";

/// Dash's defaults, which the renderer's worker uses: it closes a connection that saw no
/// message for this long, and sends a heartbeat this often.
pub const INACTIVITY_TIMEOUT_MS: u64 = 300_000;
/// See [`INACTIVITY_TIMEOUT_MS`].
pub const HEARTBEAT_INTERVAL_MS: u64 = 30_000;

/// The answer to a heartbeat.
pub const HEARTBEAT_ACK: &str = r#"{"type":"heartbeat_ack"}"#;

/// The close code of a message over the size cap (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;
/// The close code of a message that is not the protocol's (RFC 6455 "policy violation").
pub const CLOSE_POLICY: u16 = 1008;
/// The close code of a connection silent past the idle timeout; the worker reconnects
/// after it (it does not after 1000 or 4001).
pub const CLOSE_IDLE: u16 = 4000;

/// The `websocket` block of `_dash-config` for an app served under `prefix` whose worker
/// script is at `worker_url` (under the prefix): the renderer opens `{prefix}_dash-ws-callback`
/// in a SharedWorker. `enabled` is Dash's app-wide `websocket_callbacks` (every callback
/// over the socket); without it only callbacks marked `websocket` use it.
pub fn config_block(prefix: &str, worker_url: &str, enabled: bool) -> Value {
    json!({
        "enabled": enabled,
        "url": format!("{prefix}{ENDPOINT}"),
        "worker_url": format!("{prefix}{worker_url}"),
        "inactivity_timeout": INACTIVITY_TIMEOUT_MS,
        "heartbeat_interval": HEARTBEAT_INTERVAL_MS,
    })
}

/// Whether an app has the `_dash-ws-callback` endpoint (and `_dash-config`'s `websocket`
/// block): app-wide WebSocket callbacks, or at least one callback marked `websocket`.
pub fn uses_websocket(app_wide: bool, dependencies: &Dependencies) -> bool {
    app_wide || dependencies.uses_websocket()
}

/// Whether `callback` may be run from a `callback_request` (Dash's
/// `validate_websocket_callback_request`): every callback when the app is in app-wide
/// mode, else only those marked `websocket`. Background callbacks poll over HTTP (the
/// renderer never sends them over the socket; their jobs live there).
pub fn may_run_over_socket(app_wide: bool, callback: &Callback) -> bool {
    callback.background.is_none() && (app_wide || callback.websocket)
}

/// Whether a WebSocket request's `Origin` is `expected`, the origin the app is served on
/// (browsers always send it; a page of another origin, another tenant's included, must not
/// drive a viewer's session: cross-site WebSocket hijacking).
pub fn check_origin(origin: Option<&str>, expected: &str) -> Result<(), &'static str> {
    match origin {
        None => Err("an Origin header is required"),
        Some(origin) if origin.trim_end_matches('/').eq_ignore_ascii_case(expected) => Ok(()),
        Some(_) => Err("this origin may not open the app's WebSocket"),
    }
}

/// A message from the renderer's worker.
#[derive(Debug)]
pub enum Inbound {
    /// Run a callback; `payload` is a `_dash-update-component` body.
    Callback {
        /// The page (tab) that asked.
        renderer_id: String,
        /// Echoed in the answer.
        request_id: String,
        /// The callback request, as the HTTP route receives it.
        payload: Box<RawValue>,
    },
    /// The browser's answer to a `get_props_request`.
    GetPropsResponse {
        /// The request's id, as the server sent it.
        request_id: String,
        /// The props the page holds, by name (`{}` when it has no such component).
        payload: Box<RawValue>,
    },
    /// Keep-alive; answered with [`HEARTBEAT_ACK`].
    Heartbeat,
}

/// Why a message was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// Not JSON, or not an object with a string `type`.
    #[error("the message is not a Dash WebSocket message: {0}")]
    Malformed(String),
    /// A `type` the renderer never sends.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawInbound<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    renderer_id: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default, borrow)]
    payload: Option<&'a RawValue>,
}

/// Parse one text message of the worker.
pub fn parse(text: &str) -> Result<Inbound, ProtocolError> {
    let raw: RawInbound<'_> =
        serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    match raw.kind {
        "callback_request" => {
            let (Some(renderer_id), Some(request_id), Some(payload)) =
                (raw.renderer_id, raw.request_id, raw.payload)
            else {
                return Err(ProtocolError::Malformed(
                    "a callback_request needs rendererId, requestId and payload".to_owned(),
                ));
            };
            Ok(Inbound::Callback {
                renderer_id,
                request_id,
                payload: payload.to_owned(),
            })
        }
        "get_props_response" => {
            let (Some(request_id), Some(payload)) = (raw.request_id, raw.payload) else {
                return Err(ProtocolError::Malformed(
                    "a get_props_response needs requestId and payload".to_owned(),
                ));
            };
            Ok(Inbound::GetPropsResponse {
                request_id,
                payload: payload.to_owned(),
            })
        }
        "heartbeat" => Ok(Inbound::Heartbeat),
        other => Err(ProtocolError::UnknownType(other.chars().take(64).collect())),
    }
}

/// How a callback that came over the socket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackResult {
    /// The HTTP route's 200 body (`{"multi": true, "response": …}`).
    Ok(String),
    /// The HTTP route's 204: nothing changes in the browser.
    PreventUpdate,
    /// The HTTP route's error, as the viewer may see it (its message).
    Error(String),
}

/// The `callback_response` message for `request_id` of `renderer_id`.
pub fn callback_response(renderer_id: &str, request_id: &str, result: &CallbackResult) -> String {
    let head = json!({
        "type": "callback_response",
        "rendererId": renderer_id,
        "requestId": request_id,
    })
    .to_string();
    let payload = match result {
        // The body is JSON we built; spliced in as it is rather than parsed again.
        CallbackResult::Ok(body) => format!(r#"{{"status":"ok","data":{body}}}"#),
        CallbackResult::PreventUpdate => r#"{"status":"prevent_update"}"#.to_owned(),
        CallbackResult::Error(message) => {
            json!({"status": "error", "message": message}).to_string()
        }
    };
    // `head` is `{…}`: open it again to add the payload.
    let mut message = head;
    message.pop();
    message.push_str(r#","payload":"#);
    message.push_str(&payload);
    message.push('}');
    message
}

/// The `set_props` message that streams `props` (a JSON dictionary the sandbox checked) of
/// `component_id` to `renderer_id`.
pub fn set_props(renderer_id: &str, component_id: &str, props: &str) -> String {
    let head = json!({
        "type": "set_props",
        "rendererId": renderer_id,
    })
    .to_string();
    let id = Value::String(component_id.to_owned()).to_string();
    let mut message = head;
    message.pop();
    message.push_str(r#","payload":{"componentId":"#);
    message.push_str(&id);
    message.push_str(r#","props":"#);
    message.push_str(props);
    message.push_str("}}");
    message
}

/// The `get_props_request` asking `renderer_id`'s page for `properties` of `component_id`
/// (as Dash stringifies ids); the page answers `get_props_response` with `request_id`.
pub fn get_props_request(
    renderer_id: &str,
    request_id: &str,
    component_id: &str,
    properties: &[String],
) -> String {
    json!({
        "type": "get_props_request",
        "rendererId": renderer_id,
        "requestId": request_id,
        "payload": {"componentId": component_id, "properties": properties},
    })
    .to_string()
}

/// Several messages as one frame, as Dash's sender batches them.
pub fn batch(messages: &[String]) -> String {
    match messages {
        [one] => one.clone(),
        many => format!("[{}]", many.join(",")),
    }
}

/// Open connections per tenant on this replica.
#[derive(Default)]
pub struct Connections {
    open: Mutex<HashMap<TenantId, Arc<AtomicUsize>>>,
}

/// One open connection, counted until it is dropped.
#[derive(Debug)]
pub struct Connection(Arc<AtomicUsize>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The tenant already holds its cap of open connections.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the tenant already holds {max} open WebSocket connections on this server, its limit")]
pub struct TooManyConnections {
    /// The cap.
    pub max: usize,
}

impl Connections {
    /// Count a new connection of `tenant`, or refuse it when `max` are open.
    pub fn try_open(&self, tenant: TenantId, max: usize) -> Result<Connection, TooManyConnections> {
        let counter = {
            // A poisoned lock only means a panic elsewhere; the map is still valid.
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            open.entry(tenant).or_default().clone()
        };
        let before = counter.fetch_add(1, Ordering::AcqRel);
        let connection = Connection(counter);
        if before >= max {
            // Dropping it gives the increment back.
            return Err(TooManyConnections { max });
        }
        Ok(connection)
    }

    /// Connections of `tenant` open now.
    pub fn open(&self, tenant: TenantId) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&tenant).map_or(0, |c| c.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_block_is_dashs() {
        let block = config_block(
            "/apps/a/b/",
            "_dash-component-suites/dash/dash-renderer/build/dash-ws-worker.v1m2.js",
            false,
        );
        assert_eq!(
            block,
            json!({
                "enabled": false,
                "url": "/apps/a/b/_dash-ws-callback",
                "worker_url": "/apps/a/b/_dash-component-suites/dash/dash-renderer/build/dash-ws-worker.v1m2.js",
                "inactivity_timeout": 300_000,
                "heartbeat_interval": 30_000,
            })
        );
    }

    #[test]
    fn messages_parse_and_answers_are_dashs_shape() {
        let request = r#"{"type":"callback_request","rendererId":"r1","requestId":"r1-1","payload":{"output":"o.children","inputs":[]}}"#;
        let Ok(Inbound::Callback {
            renderer_id,
            request_id,
            payload,
        }) = parse(request)
        else {
            panic!("a callback request");
        };
        assert_eq!((renderer_id.as_str(), request_id.as_str()), ("r1", "r1-1"));
        assert_eq!(payload.get(), r#"{"output":"o.children","inputs":[]}"#);
        assert!(matches!(
            parse(r#"{"type":"heartbeat"}"#),
            Ok(Inbound::Heartbeat)
        ));
        assert!(matches!(parse("[1]"), Err(ProtocolError::Malformed(_))));
        assert_eq!(
            parse(r#"{"type":"nope"}"#).expect_err("unknown"),
            ProtocolError::UnknownType("nope".into())
        );
        let answer = callback_response(
            "r1",
            "r1-1",
            &CallbackResult::Ok(r#"{"multi":true,"response":{}}"#.into()),
        );
        let answer: Value = serde_json::from_str(&answer).expect("JSON");
        assert_eq!(
            answer,
            json!({"type": "callback_response", "rendererId": "r1", "requestId": "r1-1",
                   "payload": {"status": "ok", "data": {"multi": true, "response": {}}}})
        );
        let failed: Value = serde_json::from_str(&callback_response(
            "r",
            "q",
            &CallbackResult::Error("a \"quoted\" failure".into()),
        ))
        .expect("JSON");
        assert_eq!(failed["payload"]["message"], "a \"quoted\" failure");
        let pushed: Value =
            serde_json::from_str(&set_props("r1", r#"{"i":1}"#, r#"{"children":2}"#))
                .expect("JSON");
        assert_eq!(
            pushed,
            json!({"type": "set_props", "rendererId": "r1",
                   "payload": {"componentId": "{\"i\":1}", "props": {"children": 2}}})
        );
        let asked: Value = serde_json::from_str(&get_props_request(
            "r1",
            "q1",
            "feed",
            &["children".to_owned()],
        ))
        .expect("JSON");
        assert_eq!(
            asked,
            json!({"type": "get_props_request", "rendererId": "r1", "requestId": "q1",
                   "payload": {"componentId": "feed", "properties": ["children"]}})
        );
        let Ok(Inbound::GetPropsResponse {
            request_id,
            payload,
        }) = parse(
            r#"{"type":"get_props_response","rendererId":"r1","requestId":"q1","payload":{"children":[1]}}"#,
        )
        else {
            panic!("a get_props response");
        };
        assert_eq!(
            (request_id.as_str(), payload.get()),
            ("q1", r#"{"children":[1]}"#)
        );
        assert!(matches!(
            parse(r#"{"type":"get_props_response","payload":{}}"#),
            Err(ProtocolError::Malformed(_))
        ));
        assert_eq!(batch(&["1".into()]), "1");
        assert_eq!(batch(&["1".into(), "2".into()]), "[1,2]");
    }

    #[test]
    fn app_wide_mode_opens_the_socket_to_every_callback_but_background_ones() {
        let deps = Dependencies::parse(
            r#"[{"output": "a.children", "inputs": [], "websocket": true},
                {"output": "b.children", "inputs": []},
                {"output": "c.children", "inputs": [], "background": {"interval": 1000}}]"#,
        )
        .expect("dependencies");
        let plain = Dependencies::parse(r#"[{"output": "b.children", "inputs": []}]"#)
            .expect("dependencies");
        assert!(uses_websocket(false, &deps));
        assert!(!uses_websocket(false, &plain));
        assert!(uses_websocket(true, &plain));
        let callback = |id: &str| deps.get(id).expect("declared");
        assert!(may_run_over_socket(false, callback("a.children")));
        assert!(!may_run_over_socket(false, callback("b.children")));
        assert!(may_run_over_socket(true, callback("b.children")));
        assert!(!may_run_over_socket(true, callback("c.children")));
    }

    #[test]
    fn origins_must_be_the_apps_own() {
        let apps = "http://acme.localhost:8080";
        assert_eq!(check_origin(Some(apps), apps), Ok(()));
        assert!(check_origin(None, apps).is_err());
        assert!(check_origin(Some("http://evil.localhost:8080"), apps).is_err());
        assert!(check_origin(Some("http://acme.localhost:8081"), apps).is_err());
        assert!(check_origin(Some("null"), apps).is_err());
    }

    #[test]
    fn connections_are_capped_per_tenant_and_given_back() {
        let connections = Connections::default();
        let (a, b) = (TenantId(1), TenantId(2));
        let first = connections.try_open(a, 2).expect("first");
        let _second = connections.try_open(a, 2).expect("second");
        assert_eq!(
            connections.try_open(a, 2).expect_err("third"),
            TooManyConnections { max: 2 }
        );
        assert_eq!(connections.open(a), 2);
        let _other = connections.try_open(b, 1).expect("another tenant");
        drop(first);
        assert_eq!(connections.open(a), 1);
        let _again = connections.try_open(a, 2).expect("given back");
    }
}
