//! Dash's WebSocket callbacks (`_dash-ws-callback`) over a real socket: a callback answers
//! and streams its `set_props` while it runs, and the endpoint refuses what the HTTP route
//! refuses (no access, another tenant's app) plus what only a socket can attempt (another
//! origin, connections past the tenant's cap, a message over the size cap). A callback reads
//! props from the page (`get_props_request` / `get_props_response`); an app in app-wide
//! mode runs its ordinary callbacks over the socket; a socket whose session ends is closed;
//! an open socket runs whatever version is live when each callback comes.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use platform::config::LimitsConfig;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::support::{TestApp, apps_host};

/// The live-orders example: two WebSocket callbacks (`stream-status`, which streams 100
/// ticks, and `stream-clock`) beside its ordinary ones.
const LIVE: &str = "live_orders.wasm";

/// Serves `app`'s router on a loopback port.
pub(crate) async fn serve(app: &TestApp) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let router = platform::http::router(app.state.clone())
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    address
}

pub(crate) type Socket = WebSocketStream<TcpStream>;

/// Opens `path`'s socket at `address` with the `Host` of `host_tenant`'s apps origin and
/// `origin` (none: no header); a refusal before the upgrade is its HTTP status.
async fn open(
    app: &TestApp,
    address: SocketAddr,
    host_tenant: &str,
    path: &str,
    origin: Option<&str>,
) -> Result<Socket, u16> {
    open_with(app, address, host_tenant, path, origin, None).await
}

/// [`open`] with the browser's `Cookie` header.
async fn open_with(
    app: &TestApp,
    address: SocketAddr,
    host_tenant: &str,
    path: &str,
    origin: Option<&str>,
    cookie: Option<&str>,
) -> Result<Socket, u16> {
    let host = apps_host(&app.state, &format!("/apps/{host_tenant}/x/")).expect("apps host");
    let mut request = format!("ws://{host}{path}")
        .into_client_request()
        .expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("origin"));
    }
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert("cookie", cookie.parse().expect("cookie"));
    }
    let stream = TcpStream::connect(address).await.expect("connect");
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("the handshake failed: {other}"),
    }
}

/// The apps origin of `tenant`, as a browser on it sends `Origin`.
fn origin_of(app: &TestApp, tenant: &str) -> String {
    app.state
        .origins
        .apps_url(&platform::ids::Slug::parse(tenant).expect("slug"))
}

const ENDPOINT: &str = "/apps/acme/live/_dash-ws-callback";

pub(crate) async fn open_live(app: &TestApp, address: SocketAddr) -> Socket {
    open(
        app,
        address,
        "acme",
        ENDPOINT,
        Some(&origin_of(app, "acme")),
    )
    .await
    .expect("the socket opens")
}

/// A `callback_request` for the live-orders example's ordinary three-output callback,
/// which is not a WebSocket callback.
pub(crate) fn orders_request(request_id: &str) -> Value {
    json!({
        "type": "callback_request", "rendererId": "r1", "requestId": request_id,
        "payload": {
            "output": "..orders-count.children...orders-chart.figure...orders-stamp.children..",
            "outputs": [{"id": "orders-count", "property": "children"},
                        {"id": "orders-chart", "property": "figure"},
                        {"id": "orders-stamp", "property": "children"}],
            "inputs": [{"id": "window", "property": "data", "value": 1}],
            "changedPropIds": ["window.data"]
        }
    })
}

/// The messages of one frame: Dash's server batches several into a JSON array.
pub(crate) fn unbatched(text: &str) -> Vec<Value> {
    match serde_json::from_str(text).expect("JSON") {
        Value::Array(messages) => messages,
        one => vec![one],
    }
}

/// A socket to the memo guest deployed as `acme/memo` (app-wide WebSocket mode).
pub(crate) async fn open_memo(app: &TestApp, address: SocketAddr) -> Socket {
    open(
        app,
        address,
        "acme",
        "/apps/acme/memo/_dash-ws-callback",
        Some(&origin_of(app, "acme")),
    )
    .await
    .expect("the socket opens")
}

/// A `callback_request` as the renderer's worker sends it: a click on `button` for the
/// single-output callback writing `output.children`.
fn click(request_id: &str, output: &str, button: &str) -> Message {
    Message::text(
        json!({
            "type": "callback_request",
            "rendererId": "r1",
            "requestId": request_id,
            "payload": {
                "output": format!("{output}.children"),
                "outputs": {"id": output, "property": "children"},
                "inputs": [{"id": button, "property": "n_clicks", "value": 1}],
                "changedPropIds": [format!("{button}.n_clicks")],
            }
        })
        .to_string(),
    )
}

/// Reads messages (single or batched) until the `callback_response` to `request_id`;
/// returns it with the `set_props` messages that came before it.
async fn until_answer(socket: &mut Socket, request_id: &str) -> (Value, Vec<Value>) {
    let mut pushed = Vec::new();
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(30), socket.next())
            .await
            .expect("an answer within 30 s")
            .expect("the socket stays open")
            .expect("a frame");
        let text = match frame {
            Message::Text(text) => text,
            other => panic!("unexpected frame {other:?}"),
        };
        for message in unbatched(text.as_str()) {
            match message["type"].as_str() {
                Some("set_props") => pushed.push(message),
                Some("callback_response") if message["requestId"] == request_id => {
                    return (message, pushed);
                }
                _ => panic!("unexpected message {message}"),
            }
        }
    }
}

/// The close frame the server ends the connection with.
async fn close_frame(socket: &mut Socket) -> (u16, String) {
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("closed within 10 s")
        {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.as_str().to_owned());
            }
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_callback_answers_over_the_socket_and_streams_while_it_runs() {
    let app = TestApp::new().await;
    app.deploy("acme", "live", LIVE).await;
    // The index page advertises the endpoint and the worker, as Dash does.
    let page = app.get("/apps/acme/live/").await.text();
    assert!(
        page.contains(r#""url":"/apps/acme/live/_dash-ws-callback""#),
        "{page}"
    );
    assert!(page.contains("dash-ws-worker.v"), "{page}");
    let address = serve(&app).await;
    let mut socket = open_live(&app, address).await;

    socket
        .send(Message::text(r#"{"type":"heartbeat"}"#))
        .await
        .expect("send");
    let ack = socket.next().await.expect("open").expect("frame");
    assert_eq!(ack, Message::text(r#"{"type":"heartbeat_ack"}"#));

    socket
        .send(click("r1-1", "stream-clock", "stream-ping"))
        .await
        .expect("send");
    let (answer, pushed) = until_answer(&mut socket, "r1-1").await;
    assert!(pushed.is_empty(), "{pushed:?}");
    assert_eq!(answer["rendererId"], "r1");
    assert_eq!(answer["payload"]["status"], "ok", "{answer}");
    let clock = answer["payload"]["data"]["response"]["stream-clock"]["children"]
        .as_str()
        .expect("the clock");
    assert!(clock.starts_with("server clock "), "{clock}");

    socket
        .send(click("r1-2", "stream-status", "stream-start"))
        .await
        .expect("send");
    let (answer, pushed) = until_answer(&mut socket, "r1-2").await;
    assert_eq!(
        answer["payload"]["data"]["response"]["stream-status"]["children"],
        "streamed 100 ticks"
    );
    // Every tick came as its own set_props before the answer, in order, and none is left
    // for the answer's side update.
    assert_eq!(pushed.len(), 100);
    for (n, message) in pushed.iter().enumerate() {
        assert_eq!(message["rendererId"], "r1");
        assert_eq!(message["payload"]["componentId"], "stream-feed");
        let patch = &message["payload"]["props"]["children"];
        assert_eq!(patch["operations"][0]["operation"], "Append");
        assert_eq!(
            patch["operations"][0]["params"]["value"]["props"]["children"],
            format!("tick {}", n + 1)
        );
    }
    assert!(
        answer["payload"]["data"].get("sideUpdate").is_none(),
        "{answer}"
    );

    // A callback that is not a WebSocket callback is refused over the socket, unrun.
    socket
        .send(Message::text(orders_request("r1-3").to_string()))
        .await
        .expect("send");
    let (answer, _) = until_answer(&mut socket, "r1-3").await;
    assert_eq!(answer["payload"]["status"], "error");
    assert!(
        answer["payload"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not a WebSocket callback")),
        "{answer}"
    );
}

/// The `stream-clock` click's answer on `socket`.
async fn clock_answer(socket: &mut Socket, request_id: &str) -> Value {
    socket
        .send(click(request_id, "stream-clock", "stream-ping"))
        .await
        .expect("send");
    until_answer(socket, request_id).await.0
}

#[tokio::test]
async fn an_open_socket_runs_the_live_version_after_a_deploy_and_a_rollback() {
    let app = TestApp::new().await;
    app.deploy("acme", "live", LIVE).await;
    let address = serve(&app).await;
    let mut socket = open_live(&app, address).await;
    let answer = clock_answer(&mut socket, "r1-1").await;
    assert_eq!(answer["payload"]["status"], "ok", "{answer}");

    // A version without the callback goes live: the open socket's next click reaches it
    // (and is refused as that version would refuse it), not the version it opened on.
    app.deploy("acme", "live", "hello.wasm").await;
    let answer = clock_answer(&mut socket, "r1-2").await;
    assert_eq!(answer["payload"]["status"], "error", "{answer}");

    // Back to a version with it (the author's rollback): the same socket answers again.
    app.deploy("acme", "live", LIVE).await;
    let answer = clock_answer(&mut socket, "r1-3").await;
    assert_eq!(answer["payload"]["status"], "ok", "{answer}");
    assert!(
        answer["payload"]["data"]["response"]["stream-clock"]["children"]
            .as_str()
            .is_some_and(|clock| clock.starts_with("server clock ")),
        "{answer}"
    );
}

#[tokio::test]
async fn sockets_are_refused_without_access_from_other_origins_and_past_the_cap() {
    let app = TestApp::with_limits(LimitsConfig {
        websocket_connections: 2,
        ..Default::default()
    })
    .await;
    app.deploy("acme", "live", LIVE).await;
    app.deploy("acme", "private", LIVE).await;
    app.deploy("beta", "live", LIVE).await;
    app.deploy("acme", "hello", "hello.wasm").await;
    let op = platform::store::Change {
        actor: "test",
        remote_addr: None,
        at: 0,
    };
    platform::admin::set_visibility(&app.state.store, "acme/private", "tenant", &op)
        .await
        .expect("visibility");
    let address = serve(&app).await;
    let acme = origin_of(&app, "acme");

    // No session: a private app's socket is the same 404 as its other Dash routes.
    let private = "/apps/acme/private/_dash-ws-callback";
    assert_eq!(
        open(&app, address, "acme", private, Some(&acme))
            .await
            .err(),
        Some(404)
    );
    // Another tenant's app through this tenant's origin: 404, as over HTTP.
    let other = "/apps/beta/live/_dash-ws-callback";
    assert_eq!(
        open(&app, address, "acme", other, Some(&acme)).await.err(),
        Some(404)
    );
    // A page of another origin (another tenant's) cannot open this app's socket.
    let beta = origin_of(&app, "beta");
    assert_eq!(
        open(&app, address, "acme", ENDPOINT, Some(&beta))
            .await
            .err(),
        Some(403)
    );
    assert_eq!(
        open(&app, address, "acme", ENDPOINT, None).await.err(),
        Some(403)
    );
    // An app without WebSocket callbacks has no endpoint.
    let hello = "/apps/acme/hello/_dash-ws-callback";
    assert_eq!(
        open(&app, address, "acme", hello, Some(&acme)).await.err(),
        Some(404)
    );

    // Two connections per tenant here; the third waits until one closes.
    let first = open_live(&app, address).await;
    let _second = open_live(&app, address).await;
    assert_eq!(
        open(&app, address, "acme", ENDPOINT, Some(&acme))
            .await
            .err(),
        Some(429)
    );
    // Another tenant is not affected.
    let beta_socket = open(&app, address, "beta", other, Some(&beta)).await;
    assert!(beta_socket.is_ok());
    drop(first);
    let mut reopened = None;
    for _ in 0..100 {
        if let Ok(socket) = open(&app, address, "acme", ENDPOINT, Some(&acme)).await {
            reopened = Some(socket);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        reopened.is_some(),
        "the closed connection's place was never given back"
    );
}

#[tokio::test]
async fn an_oversize_or_foreign_message_closes_the_connection_with_the_reason() {
    let app = TestApp::with_limits(LimitsConfig {
        websocket_message_kib: 1,
        ..Default::default()
    })
    .await;
    app.deploy("acme", "live", LIVE).await;
    let address = serve(&app).await;

    let mut socket = open_live(&app, address).await;
    socket
        .send(click("r1-1", "stream-clock", "stream-ping"))
        .await
        .expect("send");
    let (answer, _) = until_answer(&mut socket, "r1-1").await;
    assert_eq!(answer["payload"]["status"], "ok", "{answer}");
    let oversize = format!(r#"{{"type":"heartbeat","pad":"{}"}}"#, "x".repeat(1500));
    socket.send(Message::text(oversize)).await.expect("send");
    let (code, reason) = close_frame(&mut socket).await;
    assert_eq!(code, 1009);
    assert!(
        reason.contains("over this server's limit of 1024 bytes"),
        "{reason}"
    );

    let mut socket = open_live(&app, address).await;
    socket
        .send(Message::text(r#"{"type":"subscribe"}"#))
        .await
        .expect("send");
    let (code, reason) = close_frame(&mut socket).await;
    assert_eq!(code, 1008);
    assert!(reason.contains("unknown message type"), "{reason}");
}

/// Reads messages until the `callback_response` to `request_id`, answering each
/// `get_props_request` with `answer(request)` as the page would (`None`: leave it
/// unanswered). Returns the answer and the requests seen.
async fn until_answer_asked(
    socket: &mut Socket,
    request_id: &str,
    answer: impl Fn(&Value) -> Option<Value>,
) -> (Value, Vec<Value>) {
    let mut asked = Vec::new();
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(30), socket.next())
            .await
            .expect("an answer within 30 s")
            .expect("the socket stays open")
            .expect("a frame");
        let Message::Text(text) = frame else {
            panic!("unexpected frame {frame:?}");
        };
        for message in unbatched(text.as_str()) {
            match message["type"].as_str() {
                Some("get_props_request") => {
                    if let Some(reply) = answer(&message) {
                        socket
                            .send(Message::text(reply.to_string()))
                            .await
                            .expect("send");
                    }
                    asked.push(message);
                }
                Some("callback_response") if message["requestId"] == request_id => {
                    return (message, asked);
                }
                _ => panic!("unexpected message {message}"),
            }
        }
    }
}

#[tokio::test]
async fn a_callback_reads_props_from_the_page_over_the_socket() {
    // A short deadline: the page that never answers below costs the test this long.
    let app = TestApp::with_limits(LimitsConfig {
        deadline_ms: 2_000,
        ..Default::default()
    })
    .await;
    app.deploy("acme", "live", LIVE).await;
    let address = serve(&app).await;
    let mut socket = open_live(&app, address).await;

    // The page holds three ticks: the callback asks for the feed and counts them.
    socket
        .send(click("r1-1", "stream-count", "stream-ask"))
        .await
        .expect("send");
    let (answer, asked) = until_answer_asked(&mut socket, "r1-1", |request| {
        Some(json!({
            "type": "get_props_response",
            "rendererId": request["rendererId"],
            "requestId": request["requestId"],
            "payload": {"children": [{"props": {"children": "tick 1"}}, {"props": {"children": "tick 2"}}, {"props": {"children": "tick 3"}}]},
        }))
    })
    .await;
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0]["rendererId"], "r1");
    assert_eq!(
        asked[0]["payload"],
        json!({"componentId": "stream-feed", "properties": ["children"]})
    );
    assert_eq!(answer["payload"]["status"], "ok", "{answer}");
    assert_eq!(
        answer["payload"]["data"]["response"]["stream-count"]["children"],
        "the page shows 3 ticks"
    );

    // An answer to a request nobody made is ignored; a page without the component
    // answers `{}`, as the renderer does.
    socket
        .send(Message::text(
            json!({"type": "get_props_response", "rendererId": "r1", "requestId": "forged", "payload": {"children": [1]}})
                .to_string(),
        ))
        .await
        .expect("send");
    socket
        .send(click("r1-2", "stream-count", "stream-ask"))
        .await
        .expect("send");
    let (answer, asked) = until_answer_asked(&mut socket, "r1-2", |request| {
        Some(json!({"type": "get_props_response", "rendererId": "r1",
                    "requestId": request["requestId"], "payload": {}}))
    })
    .await;
    assert_eq!(asked.len(), 1);
    assert_eq!(
        answer["payload"]["data"]["response"]["stream-count"]["children"],
        "the page shows 0 ticks"
    );

    // A page that never answers: the call waits at most until its deadline and fails
    // like any call past it; the connection goes on serving.
    socket
        .send(click("r1-3", "stream-count", "stream-ask"))
        .await
        .expect("send");
    let (answer, asked) = until_answer_asked(&mut socket, "r1-3", |_| None).await;
    assert_eq!(asked.len(), 1);
    assert_eq!(answer["payload"]["status"], "error", "{answer}");
    socket
        .send(click("r1-4", "stream-clock", "stream-ping"))
        .await
        .expect("send");
    let (answer, _) = until_answer(&mut socket, "r1-4").await;
    assert_eq!(answer["payload"]["status"], "ok", "{answer}");
}

#[tokio::test]
async fn app_wide_websocket_callbacks_answer_ordinary_callbacks_over_the_socket() {
    let app = TestApp::new().await;
    app.deploy("acme", "memo", "guest_memo.wasm").await;
    app.deploy("acme", "live", LIVE).await;
    // `_dash-config` says so as Dash 4.4.1 does: `enabled` is the app-wide flag.
    let page = app.get("/apps/acme/memo/").await.text();
    assert!(page.contains(r#""enabled":true"#), "{page}");
    assert!(
        page.contains(r#""url":"/apps/acme/memo/_dash-ws-callback""#),
        "{page}"
    );
    let dependencies = app.get("/apps/acme/memo/_dash-dependencies").await.json();
    assert!(
        dependencies
            .as_array()
            .expect("a list")
            .iter()
            .all(|d| d["websocket"] == json!(false)),
        "{dependencies}"
    );
    let layout = app.get("/apps/acme/memo/_dash-layout").await.text();
    assert!(!layout.contains("tessera_websocket_callbacks"), "{layout}");
    let live = app.get("/apps/acme/live/").await.text();
    assert!(live.contains(r#""enabled":false"#), "{live}");

    let address = serve(&app).await;
    let mut socket = open_memo(&app, address).await;
    // `plain` is an ordinary callback, not marked `websocket`.
    socket
        .send(Message::text(
            json!({
                "type": "callback_request", "rendererId": "r1", "requestId": "r1-1",
                "payload": {
                    "output": "plain.children",
                    "outputs": {"id": "plain", "property": "children"},
                    "inputs": [{"id": "in", "property": "value", "value": "over the socket"}],
                    "changedPropIds": ["in.value"]
                }
            })
            .to_string(),
        ))
        .await
        .expect("send");
    let (answer, _) = until_answer(&mut socket, "r1-1").await;
    assert_eq!(answer["payload"]["status"], "ok", "{answer}");
    let plain = answer["payload"]["data"]["response"]["plain"]["children"]
        .as_str()
        .expect("the answer");
    assert!(plain.starts_with("over the socket @"), "{plain}");
}

#[tokio::test]
async fn a_socket_whose_session_ends_is_closed_with_a_policy_code() {
    use crate::sessions::{Browser, PASSWORD, csrf_of, op};
    let app = TestApp::with_limits(LimitsConfig {
        websocket_session_check_secs: 1,
        ..Default::default()
    })
    .await;
    app.deploy("acme", "live", LIVE).await;
    let store = &app.state.store;
    for email in ["bob@example.org", "carl@example.org"] {
        platform::admin::create_user(store, email, Some(PASSWORD), false, &op())
            .await
            .expect("user");
        platform::admin::grant(store, email, "acme", "viewer", &op())
            .await
            .expect("grant");
    }
    platform::admin::set_visibility(store, "acme/live", "tenant", &op())
        .await
        .expect("visibility");
    let address = serve(&app).await;
    let acme = origin_of(&app, "acme");
    let host = apps_host(&app.state, "/apps/acme/x/").expect("apps host");

    // Bob signs in and opens the app: his app session opens the socket.
    let mut bob = Browser::new(&app);
    bob.sign_in("bob@example.org", PASSWORD, "/").await;
    assert_eq!(bob.get("/apps/acme/live/").await.status, 200);
    let cookie = bob.cookies_for(&host).expect("an app session");
    let mut socket = open_with(&app, address, "acme", ENDPOINT, Some(&acme), Some(&cookie))
        .await
        .expect("the socket opens");
    socket
        .send(click("r1-1", "stream-clock", "stream-ping"))
        .await
        .expect("send");
    let (answer, _) = until_answer(&mut socket, "r1-1").await;
    assert_eq!(answer["payload"]["status"], "ok", "{answer}");
    // Carl's socket stays open throughout: only the session that ended is closed.
    let mut carl = Browser::new(&app);
    carl.sign_in("carl@example.org", PASSWORD, "/").await;
    assert_eq!(carl.get("/apps/acme/live/").await.status, 200);
    let carl_cookie = carl.cookies_for(&host).expect("an app session");
    let mut carl_socket = open_with(
        &app,
        address,
        "acme",
        ENDPOINT,
        Some(&acme),
        Some(&carl_cookie),
    )
    .await
    .expect("the socket opens");

    // Bob signs out on the platform: his socket closes with 1008 at the next check.
    let csrf = csrf_of(&bob.get("/account/password").await.text());
    assert_eq!(
        bob.post_form("/logout", &[("csrf", &csrf)]).await.status,
        303
    );
    let (code, reason) = close_frame(&mut socket).await;
    assert_eq!(code, 1008);
    assert_eq!(reason, "the session ended");
    // Replaying the cookie opens nothing.
    assert_eq!(
        open_with(&app, address, "acme", ENDPOINT, Some(&acme), Some(&cookie))
            .await
            .err(),
        Some(404)
    );

    // Carl still gets answers; when the app becomes private to its team-less owners his
    // access ends, and so does his socket.
    carl_socket
        .send(click("r1-2", "stream-clock", "stream-ping"))
        .await
        .expect("send");
    let (answer, _) = until_answer(&mut carl_socket, "r1-2").await;
    assert_eq!(answer["payload"]["status"], "ok", "{answer}");
    platform::admin::set_visibility(store, "acme/live", "restricted", &op())
        .await
        .expect("restricted");
    let (code, reason) = close_frame(&mut carl_socket).await;
    assert_eq!(code, 1008);
    assert_eq!(reason, "the app is no longer available to this viewer");
}
