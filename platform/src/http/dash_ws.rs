//! `GET /apps/{tenant}/{app}/_dash-ws-callback`: Dash 4.4.1's WebSocket callbacks, as the
//! renderer's SharedWorker (`dash-ws-worker.js`) speaks them.
//!
//! The route sits behind the same access gate as `_dash-update-component` (an unknown
//! app, or one the principal may not view, is the same 404 before any upgrade). Before
//! upgrading, the handler also checks that the app has WebSocket callbacks, that the
//! `Origin` is the app's own apps origin (cross-site WebSocket hijacking) and that the
//! tenant is below its cap of open connections (`[limits] websocket_connections`). Each
//! `callback_request` then runs [`super::dash::ordinary_callback`], the HTTP route's own
//! function, with a stream sink: the guest's `set_props` go out as `set_props` messages
//! while it runs, and a closed connection raises the call's cancellation flag, so the
//! guest (and its instance) stops within an epoch tick. Messages are read under
//! `[limits] websocket_message_kib` (a larger one closes the connection with 1009 and the
//! reason), heartbeats are answered, and a connection silent for
//! `[limits] websocket_idle_secs` is closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use tokio::sync::mpsc;

use super::access::AppAuthor;
use super::dash::{Streaming, live_app, ordinary_callback};
use crate::cache::memo::Answer;
use crate::dash::ws::{self, CallbackResult, Inbound};
use crate::dash::{ProtocolError, update};
use crate::error::ApiError;
use crate::ids::Slug;
use crate::policy::Principal;
use crate::runtime::LiveApp;
use crate::state::AppState;

/// Callbacks one connection may have running at once; a request past it is answered with
/// an error at once (the tenant's callback quota bounds all connections together).
const MAX_IN_FLIGHT: usize = 16;

/// Most messages sent as one batch.
const MAX_BATCH: usize = 256;

/// What a connection needs to run callbacks.
struct Connection {
    state: AppState,
    tenant: String,
    app: String,
    live: Arc<LiveApp>,
    principal: Principal,
    author: AppAuthor,
    /// Raised when the connection ends: every call of it stops.
    closed: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
    max_message: usize,
    idle: Duration,
    /// Counted against the tenant's cap until the connection ends.
    _counted: ws::Connection,
}

/// The upgrade, after the gate and the checks above.
pub(super) async fn connect(
    State(state): State<AppState>,
    Path((tenant, app)): Path<(String, String)>,
    author: Option<Extension<AppAuthor>>,
    principal: Principal,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let live = live_app(&state, &tenant, &app).await?;
    if !live.dependencies.uses_websocket() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this app has no WebSocket callbacks",
        ));
    }
    let slug = Slug::parse(&tenant).map_err(|_| ApiError::app_not_found())?;
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    ws::check_origin(origin, &state.origins.apps_url(&slug))
        .map_err(|why| ApiError::new(StatusCode::FORBIDDEN, "origin_refused", why))?;
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
    let connection = Connection {
        tenant,
        app,
        live,
        principal,
        author: author.map_or(AppAuthor(false), |Extension(a)| a),
        closed: Arc::default(),
        in_flight: Arc::default(),
        max_message,
        idle: Duration::from_secs(limits.websocket_idle_secs.max(1)),
        _counted: counted,
        state,
    };
    // The transport refuses frames and messages past twice the cap without buffering
    // them; up to that, the connection reads them and closes with the reason.
    let transport_cap = max_message.saturating_mul(2);
    Ok(upgrade
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
                    Ok(Inbound::GetPropsResponse) => {}
                    Ok(Inbound::Callback { renderer_id, request_id, payload }) => {
                        start_callback(&connection, &outbound, renderer_id, request_id, payload);
                    }
                    Err(error) => break Some(close(ws::CLOSE_POLICY, error.to_string())),
                }
            }
            Some(first) = queued.recv() => {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queued.try_recv() {
                        Ok(next) => batch.push(next),
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
        }
    };
    // Every call of this connection stops at its next epoch tick; nothing more is sent.
    connection.closed.store(true, Ordering::Release);
    if let Some(frame) = ending {
        let _ = socket.send(frame).await;
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
    connection: &Connection,
    outbound: &mpsc::UnboundedSender<String>,
    renderer_id: &str,
    payload: &str,
) -> CallbackResult {
    let live = &connection.live;
    let checked = match update::check(&live.dependencies, payload.as_bytes()) {
        Ok(checked) => checked,
        Err(error) => return CallbackResult::Error(error.to_string()),
    };
    if !checked.callback.websocket {
        return CallbackResult::Error(
            ProtocolError::Mismatch(format!(
                "callback {:?} came over the WebSocket but is not a WebSocket callback",
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
    let streaming = Streaming {
        sink,
        cancel: connection.closed.clone(),
    };
    match ordinary_callback(
        &connection.state,
        &connection.tenant,
        &connection.app,
        live,
        &checked,
        &connection.principal,
        connection.author,
        Some(streaming),
    )
    .await
    {
        Ok(Answer::Json(body)) => CallbackResult::Ok(body),
        Ok(Answer::NoContent) => CallbackResult::PreventUpdate,
        Err(error) => CallbackResult::Error(error.message),
    }
}
