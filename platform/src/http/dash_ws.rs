//! `GET /apps/{tenant}/{app}/_dash-ws-callback`: Dash 4.4.1's WebSocket callbacks, as the
//! renderer's SharedWorker (`dash-ws-worker.js`) speaks them.
//!
//! The route sits behind the same access gate as `_dash-update-component` (an unknown
//! app, or one the principal may not view, is the same 404 before any upgrade). Before
//! upgrading, the handler also checks that the app has WebSocket callbacks, that the
//! `Origin` is the app's own apps origin (cross-site WebSocket hijacking) and that the
//! tenant is below its cap of open connections (`[limits] websocket_connections`). Each
//! `callback_request` then runs [`super::dash::ordinary_callback`], the HTTP route's own
//! function, on the app's live version of that moment (a deploy or rollback reaches open
//! sockets at their next callback), with a stream sink: the guest's `set_props` go out as `set_props` messages
//! while it runs, and a closed connection raises the call's cancellation flag, so the
//! guest (and its instance) stops within an epoch tick. Messages are read under
//! `[limits] websocket_message_kib` (a larger one closes the connection with 1009 and the
//! reason), heartbeats are answered, and a connection silent for
//! `[limits] websocket_idle_secs` is closed. A guest's `get-props` goes to the page as a
//! `get_props_request` and waits for its `get_props_response`. Every
//! `[limits] websocket_session_check_secs` the connection checks that what opened it (app
//! session, token) and the app's access still stand ([`crate::auth::standing`]), and
//! closes with 1008 once they do not.
//!
//! A connection is kept small while idle: tungstenite reads through a 4 KiB buffer instead
//! of its default 128 KiB, writes each frame out at once instead of gathering 128 KiB, and
//! nothing else is allocated until a message arrives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc as sync_mpsc};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use tokio::sync::mpsc;

use super::access::AppAuthor;
use super::dash::{Streaming, live_app, live_app_admitted, ordinary_callback};
use crate::auth::standing::{self, Credential, Standing};
use crate::cache::memo::Answer;
use crate::dash::ws::{self, CallbackResult, Inbound};
use crate::dash::{ProtocolError, update};
use crate::error::ApiError;
use crate::ids::Slug;
use crate::policy::Principal;
use crate::state::AppState;

/// Callbacks one connection may have running at once; a request past it is answered with
/// an error at once (the tenant's callback quota bounds all connections together).
const MAX_IN_FLIGHT: usize = 16;

/// Most messages sent as one batch.
const MAX_BATCH: usize = 256;
/// A batch stops gathering messages once it holds this many bytes (plus one message).
const MAX_BATCH_BYTES: usize = 64 << 10;

/// Bytes tungstenite reads from the socket at a time, allocated for every connection:
/// its default, 128 KiB, was most of an idle connection's memory. The renderer's messages
/// are small; a large one is read in several steps (and still bounded by the cap).
const READ_BUFFER_BYTES: usize = 4 << 10;
/// Frames are written out at once (the sender batches messages itself) rather than
/// gathered up to tungstenite's default 128 KiB.
const WRITE_BUFFER_BYTES: usize = 0;

/// `get_props_request`s of one connection waiting for the page's answer, by request id.
type PendingProps = Mutex<HashMap<String, sync_mpsc::SyncSender<String>>>;

/// What a connection needs to run callbacks.
struct Connection {
    state: AppState,
    tenant: String,
    app: String,
    principal: Principal,
    author: AppAuthor,
    /// Raised when the connection ends: every call of it stops.
    closed: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
    max_message: usize,
    idle: Duration,
    /// What opened the connection, checked again every `session_check`.
    credential: Credential,
    session_check: Duration,
    /// A callback came since the last check (the session is in use).
    active: AtomicBool,
    /// The page's answers awaited by running calls.
    pending_props: PendingProps,
    next_props_request: AtomicU64,
    /// Counted against the tenant's cap until the connection ends.
    _counted: ws::Connection,
}

/// The upgrade, after the gate and the checks above.
pub(super) async fn connect(
    State(state): State<AppState>,
    Path((tenant, app)): Path<(String, String)>,
    author: Option<Extension<AppAuthor>>,
    session: Option<Extension<tower_sessions::Session>>,
    principal: Principal,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let live = live_app(&state, &tenant, &app).await?;
    let app_wide = live.layout.websocket_callbacks;
    if !ws::uses_websocket(app_wide, &live.dependencies) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this app has no WebSocket callbacks",
        ));
    }
    let slug = Slug::parse(&tenant).map_err(|_| ApiError::app_not_found())?;
    let apps_origin = state.origins.apps_url(&slug);
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    ws::check_origin(origin, &apps_origin)
        .map_err(|why| ApiError::new(StatusCode::FORBIDDEN, "origin_refused", why))?;
    // What the gate authenticated, to check again while the connection lives.
    let credential = match &principal {
        Principal::Anonymous => Credential::Anonymous,
        Principal::Token(_) => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|token| Credential::Token(token.trim().to_owned()))
            .ok_or_else(ApiError::app_not_found)?,
        Principal::User(_) => session
            .and_then(|Extension(session)| session.id())
            .map(|id| Credential::AppSession {
                id,
                origin: apps_origin.clone(),
            })
            .ok_or_else(ApiError::app_not_found)?,
    };
    let limits = &state.config.limits;
    let counted = state
        .ws_connections
        .try_open(live.version.tenant_id, limits.websocket_connections)
        .map_err(|e| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exceeded",
                e.to_string(),
            )
        })?;
    let max_message = limits.websocket_message_kib.saturating_mul(1024).max(1024);
    // The largest frame the server writes: a callback's answer or streamed update (each
    // within the output cap) in its envelope, or a batch.
    let largest_outbound = (limits.output_mb << 20)
        .max(max_message)
        .saturating_add(MAX_BATCH_BYTES);
    let connection = Connection {
        tenant,
        app,
        principal,
        author: author.map_or(AppAuthor(false), |Extension(a)| a),
        closed: Arc::default(),
        in_flight: Arc::default(),
        max_message,
        idle: Duration::from_secs(limits.websocket_idle_secs.max(1)),
        credential,
        session_check: Duration::from_secs(limits.websocket_session_check_secs.max(1)),
        active: AtomicBool::new(false),
        pending_props: Mutex::default(),
        next_props_request: AtomicU64::new(0),
        _counted: counted,
        state,
    };
    // The transport refuses frames and messages past twice the cap without buffering
    // them; up to that, the connection reads them and closes with the reason.
    let transport_cap = max_message.saturating_mul(2);
    Ok(upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(largest_outbound.saturating_mul(2))
        .max_message_size(transport_cap)
        .max_frame_size(transport_cap)
        .on_upgrade(move |socket| serve(socket, connection)))
}

/// Why the server closes a connection.
fn close(code: u16, reason: String) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// The connection's life: read requests, send answers and streamed props in order.
async fn serve(mut socket: WebSocket, connection: Connection) {
    let connection = Arc::new(connection);
    let (outbound, mut queued) = mpsc::unbounded_channel::<String>();
    let idle = tokio::time::sleep(connection.idle);
    tokio::pin!(idle);
    let mut session_check = tokio::time::interval_at(
        tokio::time::Instant::now() + connection.session_check,
        connection.session_check,
    );
    session_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ending = loop {
        tokio::select! {
            message = socket.recv() => {
                let Some(Ok(message)) = message else { break None };
                idle.as_mut().reset(tokio::time::Instant::now() + connection.idle);
                let text = match message {
                    Message::Text(text) => text,
                    Message::Binary(bytes) if bytes.len() > connection.max_message => {
                        break Some(too_big(bytes.len(), connection.max_message));
                    }
                    Message::Binary(_) => {
                        break Some(close(ws::CLOSE_POLICY, "binary messages are not part of Dash's protocol".into()));
                    }
                    Message::Close(_) => break None,
                    // Pings are answered by the transport; pongs only count as activity.
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                if text.as_str().len() > connection.max_message {
                    break Some(too_big(text.as_str().len(), connection.max_message));
                }
                match ws::parse(text.as_str()) {
                    Ok(Inbound::Heartbeat) => {
                        let _ = outbound.send(ws::HEARTBEAT_ACK.to_owned());
                    }
                    Ok(Inbound::GetPropsResponse { request_id, payload }) => {
                        answer_props(&connection, &request_id, payload.get());
                    }
                    Ok(Inbound::Callback { renderer_id, request_id, payload }) => {
                        connection.active.store(true, Ordering::Relaxed);
                        start_callback(&connection, &outbound, renderer_id, request_id, payload);
                    }
                    Err(error) => break Some(close(ws::CLOSE_POLICY, error.to_string())),
                }
            }
            Some(first) = queued.recv() => {
                let mut bytes = first.len();
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                    match queued.try_recv() {
                        Ok(next) => {
                            bytes += next.len();
                            batch.push(next);
                        }
                        Err(_) => break,
                    }
                }
                if socket.send(Message::Text(ws::batch(&batch).into())).await.is_err() {
                    break None;
                }
            }
            () = &mut idle => {
                break Some(close(
                    ws::CLOSE_IDLE,
                    format!("no message for {} s", connection.idle.as_secs()),
                ));
            }
            _ = session_check.tick() => {
                if let Some(why) = ended(&connection).await {
                    break Some(close(ws::CLOSE_POLICY, why.to_owned()));
                }
            }
        }
    };
    // Every call of this connection stops at its next epoch tick; nothing more is sent,
    // and calls waiting for the page's props stop waiting.
    connection.closed.store(true, Ordering::Release);
    connection
        .pending_props
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    if let Some(frame) = ending {
        let _ = socket.send(frame).await;
    }
}

/// Why the connection may no longer serve callbacks, if it may not: its credential or
/// the app's access ended. A failed check (the store down) keeps the connection until the
/// next one.
async fn ended(connection: &Connection) -> Option<&'static str> {
    let (Ok(tenant), Ok(app)) = (
        Slug::parse(&connection.tenant),
        Slug::parse(&connection.app),
    ) else {
        return Some("the app is no longer available to this viewer");
    };
    let active = connection.active.swap(false, Ordering::Relaxed);
    match standing::check(
        &connection.state,
        &connection.credential,
        &tenant,
        &app,
        active,
    )
    .await
    {
        Ok(Standing::Stands) => None,
        Ok(Standing::Ended(why)) => Some(why),
        Err(error) => {
            tracing::warn!(%error, "checking a WebSocket connection's session failed");
            None
        }
    }
}

/// Hands the page's `get_props_response` to the call waiting for it; an answer nobody
/// waits for (the call ended) is dropped.
fn answer_props(connection: &Connection, request_id: &str, props: &str) {
    let waiting = connection
        .pending_props
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(request_id);
    if let Some(waiting) = waiting {
        let _ = waiting.try_send(props.to_owned());
    }
}

fn too_big(size: usize, cap: usize) -> Message {
    close(
        ws::CLOSE_TOO_BIG,
        format!("a message of {size} bytes is over this server's limit of {cap} bytes"),
    )
}

/// Run one `callback_request` on its own task; its answer (and what it streams) goes to
/// `outbound`.
fn start_callback(
    connection: &Arc<Connection>,
    outbound: &mpsc::UnboundedSender<String>,
    renderer_id: String,
    request_id: String,
    payload: Box<serde_json::value::RawValue>,
) {
    let running = connection.in_flight.fetch_add(1, Ordering::AcqRel);
    if running >= MAX_IN_FLIGHT {
        connection.in_flight.fetch_sub(1, Ordering::AcqRel);
        let _ = outbound.send(ws::callback_response(
            &renderer_id,
            &request_id,
            &CallbackResult::Error(format!(
                "this connection already runs {MAX_IN_FLIGHT} callbacks; retry when one has finished"
            )),
        ));
        return;
    }
    let connection = connection.clone();
    let outbound = outbound.clone();
    tokio::spawn(async move {
        let result = run(&connection, &outbound, &renderer_id, payload.get()).await;
        connection.in_flight.fetch_sub(1, Ordering::AcqRel);
        if !connection.closed.load(Ordering::Acquire) {
            let _ = outbound.send(ws::callback_response(&renderer_id, &request_id, &result));
        }
    });
}

/// One callback over the socket: the HTTP route's checks and run, and its answer.
async fn run(
    connection: &Arc<Connection>,
    outbound: &mpsc::UnboundedSender<String>,
    renderer_id: &str,
    payload: &str,
) -> CallbackResult {
    // The live version of each request, as over HTTP: a deploy or a rollback reaches open
    // sockets at their next callback, not when the page reconnects hours later. (The
    // connection took its admission turn when it opened; a turn per message would queue
    // a busy page's callbacks behind each other.)
    let live = match live_app_admitted(&connection.state, &connection.tenant, &connection.app).await
    {
        Ok(live) => live,
        Err(error) => return CallbackResult::Error(error.message),
    };
    let app_wide = live.layout.websocket_callbacks;
    let checked = match update::check(&live.dependencies, payload.as_bytes()) {
        Ok(checked) => checked,
        Err(error) => return CallbackResult::Error(error.to_string()),
    };
    if !ws::may_run_over_socket(app_wide, checked.callback) {
        return CallbackResult::Error(
            ProtocolError::Mismatch(format!(
                "callback {:?} came over the WebSocket but is not a WebSocket callback (and the app does not send every callback over it)",
                checked.callback.output
            ))
            .to_string(),
        );
    }
    let sink = {
        let outbound = outbound.clone();
        let renderer_id = renderer_id.to_owned();
        let closed = connection.closed.clone();
        Arc::new(move |id: String, props: String| {
            if !closed.load(Ordering::Acquire) {
                let _ = outbound.send(ws::set_props(&renderer_id, &id, &props));
            }
        }) as sandbox::StreamSink
    };
    // The page requests this call made, forgotten when it ends (answered or not).
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let page = {
        let connection = connection.clone();
        let outbound = outbound.clone();
        let renderer_id = renderer_id.to_owned();
        let asked = asked.clone();
        Arc::new(move |id: String, properties: Vec<String>| {
            let (answer, receiver) = sync_mpsc::sync_channel(1);
            if !connection.closed.load(Ordering::Acquire) {
                let n = connection
                    .next_props_request
                    .fetch_add(1, Ordering::Relaxed);
                let request_id = format!("tessera-props-{n}");
                let request = ws::get_props_request(&renderer_id, &request_id, &id, &properties);
                connection
                    .pending_props
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(request_id.clone(), answer);
                asked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(request_id);
                let _ = outbound.send(request);
            }
            // Closed: the answer's sender is gone, so the guest stops waiting at once.
            receiver
        }) as sandbox::PageProps
    };
    let streaming = Streaming {
        sink,
        page,
        cancel: connection.closed.clone(),
    };
    let result = ordinary_callback(
        &connection.state,
        &connection.tenant,
        &connection.app,
        &live,
        &checked,
        &connection.principal,
        connection.author,
        Some(streaming),
    )
    .await;
    let asked = std::mem::take(&mut *asked.lock().unwrap_or_else(|e| e.into_inner()));
    if !asked.is_empty() {
        let mut pending = connection
            .pending_props
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for request_id in &asked {
            pending.remove(request_id);
        }
    }
    match result {
        Ok(Answer::Json(body)) => CallbackResult::Ok(body),
        Ok(Answer::NoContent) => CallbackResult::PreventUpdate,
        Err(error) => CallbackResult::Error(error.message),
    }
}
