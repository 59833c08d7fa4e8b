//! The WebSocket differential: one conversation over `_dash-ws-callback`, held with Tessera
//! (the live-orders example and the memo guest, real sockets) and with their Python twins
//! on real `dash` 4.4.1's FastAPI backend (tests/differential/python/ws_apps.py, driven by
//! `run_ws.py` with the same steps and the same driver). Every message either side sends
//! must be the same once batches are unpacked and what cannot be equal is normalized: the
//! ids a server makes up (`get_props_request`'s `requestId`) and the clock readings in the
//! answers. Where Tessera differs on purpose the test says so and checks both sides. The
//! Python twins themselves, deployed unchanged on Tessera as `kind = "python"`, hold the
//! same conversations.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{TestApp, python_dash};
use crate::websocket::{Socket, open_live, open_memo, orders_request, serve, unbatched};

/// A step: send `send`, answer `get_props_request`s from `page`, stop at the
/// `callback_response` to `until` (or at the first message of type `until`).
fn step(send: Value, until: &str, page: Value) -> Value {
    json!({"send": send, "until": until, "page": page})
}

/// A `callback_request` for the single-output callback writing `output.children`,
/// triggered by `input` (`id.property`) with `value`.
fn request(request_id: &str, output: &str, input: &str, value: Value) -> Value {
    let (id, property) = input.split_once('.').expect("id.property");
    json!({
        "type": "callback_request",
        "rendererId": "r1",
        "requestId": request_id,
        "payload": {
            "output": format!("{output}.children"),
            "outputs": {"id": output, "property": "children"},
            "inputs": [{"id": id, "property": property, "value": value}],
            "changedPropIds": [input],
        }
    })
}

fn answer_for(request: &Value, page: &Value) -> Value {
    let held = &page[request["payload"]["componentId"]
        .as_str()
        .unwrap_or_default()];
    let props: serde_json::Map<String, Value> = request["payload"]["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|name| {
            let name = name.as_str()?;
            Some((name.to_owned(), held.get(name)?.clone()))
        })
        .collect();
    json!({
        "type": "get_props_response",
        "rendererId": request["rendererId"],
        "requestId": request["requestId"],
        "payload": props,
    })
}

fn step_done(message: &Value, until: &str) -> bool {
    if message["type"] == "callback_response" {
        return message["requestId"] == until;
    }
    message["type"] == until
}

/// `run_ws.py`'s driver, in Rust: what the server sent during each step.
async fn converse(socket: &mut Socket, steps: &[Value]) -> Vec<Vec<Value>> {
    let mut transcript = Vec::new();
    for step in steps {
        let mut seen = Vec::new();
        socket
            .send(Message::text(step["send"].to_string()))
            .await
            .expect("send");
        let until = step["until"].as_str().expect("until");
        let mut done = false;
        while !done {
            let frame = tokio::time::timeout(std::time::Duration::from_secs(30), socket.next())
                .await
                .expect("a message within 30 s");
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map_or(1005, |f| u16::from(f.code));
                    seen.push(json!({ "closed": code }));
                    transcript.push(seen);
                    return transcript;
                }
                other => panic!("unexpected frame {other:?}"),
            };
            for message in unbatched(text.as_str()) {
                if message["type"] == "get_props_request" {
                    let reply = answer_for(&message, &step["page"]);
                    socket
                        .send(Message::text(reply.to_string()))
                        .await
                        .expect("send");
                }
                done = done || step_done(&message, until);
                seen.push(message);
            }
        }
        transcript.push(seen);
    }
    transcript
}

/// The same steps with the Python twin `app` on dash 4.4.1.
fn python_converse(app: &str, steps: &[Value]) -> Vec<Vec<Value>> {
    let transcript = python_dash("run_ws.py", &json!({"app": app, "steps": steps}));
    serde_json::from_value(transcript).expect("a transcript")
}

/// A clock reading's digits, each run of them as one `#`: `server clock 16:35:48.878 UTC`
/// and `a @1733…` (the memo guest's nanoseconds) compare by shape.
fn without_clock(text: &str) -> String {
    if !(text.starts_with("server clock ") || text.contains(" @")) {
        return text.to_owned();
    }
    let mut shape = String::with_capacity(text.len());
    for c in text.chars() {
        if !c.is_ascii_digit() {
            shape.push(c);
        } else if !shape.ends_with('#') {
            shape.push('#');
        }
    }
    shape
}

/// What may differ and must not matter: made-up request ids, clock readings, numbers'
/// formatting (Python writes `3.0` where Rust may write `3`); key order never counts.
fn normalized(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut map: serde_json::Map<String, Value> = map
                .iter()
                .map(|(key, value)| (key.clone(), normalized(value)))
                .collect();
            if map.get("type") == Some(&json!("get_props_request")) {
                map.insert("requestId".into(), json!("<made up>"));
            }
            Value::Object(map)
        }
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        Value::String(text) => Value::String(without_clock(text)),
        Value::Number(n) => json!(n.as_f64()),
        other => other.clone(),
    }
}

/// Each step's messages equal once normalized; a failure shows the first that differs.
fn assert_same(tessera: &[Vec<Value>], python: &[Vec<Value>]) {
    assert_eq!(tessera.len(), python.len(), "steps answered");
    for (n, (ours, theirs)) in tessera.iter().zip(python).enumerate() {
        let ours: Vec<Value> = ours.iter().map(normalized).collect();
        let theirs: Vec<Value> = theirs.iter().map(normalized).collect();
        if let Some(at) = (0..ours.len().max(theirs.len())).find(|&i| ours.get(i) != theirs.get(i))
        {
            panic!(
                "step {n}, message {at} of {}/{}: Tessera sent\n{}\ndash 4.4.1 sent\n{}",
                ours.len(),
                theirs.len(),
                ours.get(at).map_or("nothing".into(), Value::to_string),
                theirs.get(at).map_or("nothing".into(), Value::to_string),
            );
        }
    }
}

fn click(request_id: &str, output: &str, button: &str) -> Value {
    request(request_id, output, &format!("{button}.n_clicks"), json!(1))
}

/// Per-callback WebSocket mode (the live-orders app): a heartbeat, a clock, 100 streamed
/// Patch ticks, `get_props` from a page that holds the feed and from one that lacks it.
fn live_steps() -> Vec<Value> {
    let three_ticks = json!({"stream-feed": {"children": [
        {"props": {"children": "tick 1"}, "type": "Li", "namespace": "dash_html_components"},
        {"props": {"children": "tick 2"}, "type": "Li", "namespace": "dash_html_components"},
        {"props": {"children": "tick 3"}, "type": "Li", "namespace": "dash_html_components"},
    ]}});
    vec![
        step(json!({"type": "heartbeat"}), "heartbeat_ack", json!({})),
        step(
            click("r1-1", "stream-clock", "stream-ping"),
            "r1-1",
            json!({}),
        ),
        step(
            click("r1-2", "stream-status", "stream-start"),
            "r1-2",
            json!({}),
        ),
        step(
            click("r1-3", "stream-count", "stream-ask"),
            "r1-3",
            three_ticks,
        ),
        step(
            click("r1-4", "stream-count", "stream-ask"),
            "r1-4",
            json!({}),
        ),
    ]
}

/// The live-orders conversation held with Tessera (`ours`) and with Dash must be the same;
/// the comparison can fail: the streamed ticks are all there, in order, on both sides.
fn assert_live_transcripts(ours: &[Vec<Value>], theirs: &[Vec<Value>]) {
    for transcript in [ours, theirs] {
        let ticks = &transcript[2];
        assert_eq!(ticks.len(), 101, "{ticks:?}");
        assert_eq!(
            ticks[99]["payload"]["props"]["children"]["operations"][0]["params"]["value"]["props"]
                ["children"],
            "tick 100"
        );
        assert_eq!(
            transcript[3].last().expect("an answer")["payload"]["data"]["response"]["stream-count"]
                ["children"],
            "the page shows 3 ticks"
        );
    }
    assert_same(ours, theirs);
}

/// App-wide mode (`websocket_callbacks=True`, the memo app): ordinary callbacks answer
/// over the socket, PreventUpdate is `prevent_update`, a failure is an `error` answer.
fn memo_steps() -> Vec<Value> {
    vec![
        step(
            request("r1-1", "plain", "in.value", json!("over the socket")),
            "r1-1",
            json!({}),
        ),
        step(
            request("r1-2", "plain", "in.value", json!("prevent")),
            "r1-2",
            json!({}),
        ),
        step(
            request("r1-3", "memo", "in.value", json!("big:12")),
            "r1-3",
            json!({}),
        ),
        step(
            request("r1-4", "plain", "in.value", json!("fail")),
            "r1-4",
            json!({}),
        ),
    ]
}

/// The memo conversation held with Tessera and with Dash: the same but for the failure.
fn assert_memo_transcripts(mut ours: Vec<Vec<Value>>, mut theirs: Vec<Vec<Value>>) {
    assert_eq!(theirs[1][0]["payload"], json!({"status": "prevent_update"}));
    // On purpose: Dash sends the exception's text to whoever drives the page; Tessera
    // sends a viewer a generic message (the author reads the text in the app's log).
    let (our_failure, their_failure) = (ours.pop().expect("step"), theirs.pop().expect("step"));
    assert_eq!(their_failure[0]["payload"]["message"], "asked to fail");
    assert_eq!(our_failure.len(), 1, "{our_failure:?}");
    assert_eq!(our_failure[0]["payload"]["status"], "error");
    assert!(
        !our_failure[0]["payload"]["message"]
            .as_str()
            .expect("a message")
            .contains("asked to fail"),
        "{our_failure:?}"
    );
    assert_same(&ours, &theirs);
}

/// Holds the live-orders and memo conversations with acme/live and acme/memo of `app`
/// and with Dash, and compares them.
async fn hold_both_conversations(app: &TestApp) {
    let address = serve(app).await;
    let mut socket = open_live(app, address).await;
    let ours = converse(&mut socket, &live_steps()).await;
    assert_live_transcripts(&ours, &python_converse("live_orders", &live_steps()));
    let mut socket = open_memo(app, address).await;
    let ours = converse(&mut socket, &memo_steps()).await;
    assert_memo_transcripts(ours, python_converse("memo", &memo_steps()));
}

#[tokio::test]
async fn a_socket_conversation_matches_python_dash_message_for_message() {
    let app = TestApp::new().await;
    app.deploy("acme", "live", "live_orders.wasm").await;
    app.deploy("acme", "memo", "guest_memo.wasm").await;
    hold_both_conversations(&app).await;
}

/// The Python twins, unchanged, as Tessera Python apps: `set_props` streams each prop over
/// the socket while the callback runs (a Patch per tick), an `async def` callback awaits
/// `ctx.websocket.get_prop` from the page, and app-wide mode comes from
/// `Dash(websocket_callbacks=True)`; the conversations are Dash's, message for message.
#[tokio::test]
async fn the_python_twins_on_tessera_hold_the_same_conversations() {
    let app = TestApp::new().await;
    let twins = include_str!("../../../tests/differential/python/ws_apps.py");
    for (name, factory) in [("live", "live_orders"), ("memo", "memo")] {
        let app_py = format!("from ws_apps import {factory}\n\napp = {factory}()\n");
        app.state
            .deployer()
            .deploy(
                &platform::ids::Slug::parse("acme").expect("slug"),
                &platform::ids::Slug::parse(name).expect("slug"),
                crate::python_apps::bundle(&[("app.py", &app_py), ("ws_apps.py", twins)]),
                "test",
                1,
                false,
            )
            .await
            .expect("the twin deploys");
    }
    hold_both_conversations(&app).await;
}

/// On purpose: a callback that is not a WebSocket callback, sent over the socket, makes
/// Dash's handler raise (`WebSocketCallbackError`) and the connection ends, with every
/// callback in flight on it; Tessera answers that one request with an error and keeps
/// serving the page's other callbacks.
#[tokio::test]
async fn a_callback_not_meant_for_the_socket_is_refused_without_ending_the_connection() {
    let app = TestApp::new().await;
    app.deploy("acme", "live", "live_orders.wasm").await;
    let address = serve(&app).await;
    let steps = vec![
        step(orders_request("r1-1"), "r1-1", json!({})),
        step(
            click("r1-2", "stream-clock", "stream-ping"),
            "r1-2",
            json!({}),
        ),
    ];
    let theirs = python_converse("live_orders", &steps);
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert!(theirs[0][0].get("closed").is_some(), "{theirs:?}");

    let mut socket = open_live(&app, address).await;
    let ours = converse(&mut socket, &steps).await;
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert_eq!(ours[0][0]["payload"]["status"], "error", "{ours:?}");
    assert_eq!(ours[1][0]["payload"]["status"], "ok", "{ours:?}");
}
