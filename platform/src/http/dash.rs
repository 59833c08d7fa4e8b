//! Dash's endpoints under `/apps/{tenant}/{app}/`, exactly as Dash serves them.
//!
//! Every handler resolves the live version first, so an unknown tenant or app is a 404
//! before anything else happens, and a request keeps one version for its whole life.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rand::Rng;
use tower_http::compression::CompressionLayer;

use super::access::AppAuthor;
use crate::cache::memo::Answer;
use crate::dash::background::{self, BackgroundQuery};
use crate::dash::dependencies::Background;
use crate::dash::{index, update};
use crate::error::ApiError;
use crate::ids::Slug;
use crate::jobs::{self, JobState, Owner, Work};
use crate::policy::Principal;
use crate::quota;
use crate::runtime::{self, LiveApp};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    let suites = Router::new()
        .route(
            "/apps/{tenant}/{app}/_dash-component-suites/{*path}",
            get(component_suite),
        )
        // The bundles are large text (plotly.js is 4.7 MB); gzip cuts them by ~70 %.
        .layer(CompressionLayer::new());
    Router::new()
        .route("/apps/{tenant}/{app}", get(add_trailing_slash))
        .route("/apps/{tenant}/{app}/", get(index_page))
        .route("/apps/{tenant}/{app}/_dash-layout", get(layout))
        .route("/apps/{tenant}/{app}/_dash-dependencies", get(dependencies))
        .route(
            "/apps/{tenant}/{app}/_dash-update-component",
            post(update_component),
        )
        .route(
            "/apps/{tenant}/{app}/_dash-ws-callback",
            get(super::dash_ws::connect),
        )
        .route("/apps/{tenant}/{app}/_reload-hash", get(reload_hash))
        .route("/apps/{tenant}/{app}/assets/{*path}", get(app_asset))
        // Any other path under the app is a page of a multi-page app: the index page, so
        // deep links and reloads work (the page-routing callback picks the page).
        .route("/apps/{tenant}/{app}/{*page}", get(page_path))
        .merge(suites)
        .layer(middleware::from_fn(hold_refusals))
}

/// Sends a refusal only after [`quota::REFUSAL_DELAY`], whichever handler made it: a quota
/// refusal, or an app's remembered load failure (answered without running anything, so a
/// client retrying in a loop would otherwise cost the server a request each time).
async fn hold_refusals(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let remembered_failure = response
        .extensions()
        .get::<crate::error::ErrorCode>()
        .is_some_and(|code| code.0 == APP_LOAD_FAILED);
    if response.status() == StatusCode::TOO_MANY_REQUESTS || remembered_failure {
        tokio::time::sleep(quota::REFUSAL_DELAY).await;
    }
    response
}

/// The code of an app whose load failed (and is remembered until its next version).
const APP_LOAD_FAILED: &str = "app_load_failed";

/// Parse the path's names and find the live version; anything unknown is the same 404.
pub(super) async fn live_app(
    state: &AppState,
    tenant: &str,
    app: &str,
) -> Result<Arc<LiveApp>, ApiError> {
    find_live(state, tenant, app, true).await
}

/// [`live_app`] for a callback on a connection that was admitted when it opened (a
/// WebSocket): the live version of this moment, without taking an admission turn again.
pub(super) async fn live_app_admitted(
    state: &AppState,
    tenant: &str,
    app: &str,
) -> Result<Arc<LiveApp>, ApiError> {
    find_live(state, tenant, app, false).await
}

async fn find_live(
    state: &AppState,
    tenant: &str,
    app: &str,
    admit: bool,
) -> Result<Arc<LiveApp>, ApiError> {
    let (Ok(tenant), Ok(app)) = (Slug::parse(tenant), Slug::parse(app)) else {
        return Err(ApiError::app_not_found());
    };
    let turn = match admit {
        true => Some(state.admission.enter(tenant.as_str()).await),
        false => None,
    };
    state
        .runtime
        .live_in_turn(&tenant, &app, turn)
        .await
        .map_err(live_error)?
        .ok_or_else(ApiError::app_not_found)
}

fn live_error(error: runtime::Error) -> ApiError {
    match error {
        // Loading runs guest code, so it waits for one of the tenant's callback slots.
        runtime::Error::Busy(busy) => too_many(&busy),
        // Logged once by the load; a remembered failure must not log per request.
        runtime::Error::Failed(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            APP_LOAD_FAILED,
            "loading the app failed; the server log has the details",
        ),
        e => ApiError::internal("loading the app failed", &e),
    }
}

/// One of the tenant's concurrent-callback slots, held until the answer is built; a 429
/// when the tenant already runs its quota of callbacks.
fn callback_slot(state: &AppState, live: &LiveApp) -> Result<quota::Slot, ApiError> {
    state
        .runtime
        .callback_slots()
        .try_acquire(
            live.version.tenant_id,
            live.version.callback_quotas.max_concurrent,
        )
        .map_err(|e| too_many(&e))
}

/// 429 `quota_exceeded`: the tenant is at one of its quotas; retrying later may work.
fn too_many(why: &dyn std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "quota_exceeded",
        why.to_string(),
    )
}

fn json_response(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

async fn add_trailing_slash(Path((tenant, app)): Path<(String, String)>) -> Response {
    match (Slug::parse(&tenant), Slug::parse(&app)) {
        (Ok(tenant), Ok(app)) => {
            Redirect::permanent(&format!("/apps/{tenant}/{app}/")).into_response()
        }
        _ => ApiError::app_not_found().into_response(),
    }
}

/// A path under the app that is not one of Dash's own: the index page. Paths whose first
/// segment starts with `_` (Dash's reserved `_dash-…`, `_reload-hash`, …) are not pages.
async fn page_path(
    State(state): State<AppState>,
    Path((tenant, app, page)): Path<(String, String, String)>,
    author: Option<Extension<AppAuthor>>,
) -> Result<Response, ApiError> {
    if page.starts_with('_') {
        live_app(&state, &tenant, &app).await?;
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{page:?} is reserved for Dash's own endpoints"),
        ));
    }
    index_page(State(state), Path((tenant, app)), author).await
}

/// Dash's hot-reload poll: only `tessera dev` has one (elsewhere the path is reserved).
async fn reload_hash(
    State(state): State<AppState>,
    Path((tenant, app)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    match crate::dev::session_for(&state, &tenant, &app) {
        Some(dev) => Ok(axum::Json(dev.reload_hash()).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "\"_reload-hash\" is reserved for Dash's own endpoints".to_owned(),
        )),
    }
}

/// The index page. The app's authors get Dash's dev tools UI, which shows their callbacks'
/// errors (the answer's message carries the details only for them).
async fn index_page(
    State(state): State<AppState>,
    Path((tenant, app)): Path<(String, String)>,
    author: Option<Extension<AppAuthor>>,
) -> Result<Response, ApiError> {
    let live = live_app(&state, &tenant, &app).await?;
    let prefix = format!("/apps/{tenant}/{app}/");
    let token: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    let end_id = crate::dash::background::sign_end_id(&state.secrets, &tenant, &app, &token);
    let assets = crate::assets::index_assets(&live.assets);
    let extras = index::AppExtras {
        css: assets.css.iter().map(|a| a.url(&prefix)).collect(),
        scripts: assets.js.iter().map(|a| a.url(&prefix)).collect(),
        favicon: assets.favicon.map(|a| a.url(&prefix)),
        inline_scripts: &live.inline_scripts,
        validation_layout: live.layout.validation.as_ref(),
        dev_tools: author.is_some_and(|Extension(AppAuthor(author))| author),
        websocket_worker: crate::dash::ws::uses_websocket(
            live.layout.websocket_callbacks,
            &live.dependencies,
        )
        .then(|| state.frontend.ws_worker_url()),
        websocket_callbacks: live.layout.websocket_callbacks,
        dev: crate::dev::session_for(&state, &tenant, &app).map(|dev| dev.page()),
    };
    let html = index::render_with(
        &state.frontend,
        &prefix,
        &live.component.info().title,
        &end_id,
        &extras,
    );
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
        Html(html),
    )
        .into_response())
}

async fn layout(
    State(state): State<AppState>,
    Path((tenant, app)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let live = live_app(&state, &tenant, &app).await?;
    Ok(json_response(live.layout.served_json.clone()))
}

async fn dependencies(
    State(state): State<AppState>,
    Path((tenant, app)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let live = live_app(&state, &tenant, &app).await?;
    Ok(json_response(live.dependencies_json.clone()))
}

/// Run one callback: check the body against the declared callback, call the component
/// in the sandbox on a blocking thread, and answer in Dash's shape (204 for
/// PreventUpdate). A failing callback is an error for this request only.
async fn update_component(
    State(state): State<AppState>,
    Path((tenant, app)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    author: Option<Extension<AppAuthor>>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !update::is_json_content_type(content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a callback request must be sent with Content-Type: application/json",
        ));
    }
    let author = author.map_or(AppAuthor(false), |Extension(a)| a);
    let live = live_app(&state, &tenant, &app).await?;
    let checked = update::check(&live.dependencies, &body)?;
    let query = BackgroundQuery::from_pairs(query);
    // The renderer echoes its page's `endId` on every callback request; one this platform
    // did not sign for this app (forged, or another app's page) reaches no job.
    if let Some(end_id) = &query.end_id
        && !crate::dash::background::end_id_is_signed(&state.secrets, &tenant, &app, end_id)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_end_id",
            "the endId query parameter is not one this app's page was given: reload the page",
        ));
    }
    let owner = query.end_id.as_ref().map(|end_id| Owner {
        tenant: tenant.clone(),
        app: app.clone(),
        end_id: end_id.clone(),
    });
    // Cancel requests ride on any callback's request (Dash's cancel callbacks).
    if let Some(owner) = &owner {
        for job in query.cancel_jobs.iter().chain(&query.old_jobs) {
            state
                .jobs
                .cancel(owner, job)
                .await
                .map_err(|e| ApiError::internal("cancelling a job failed", &e))?;
        }
    }
    if let Some(spec) = &checked.callback.background {
        let _slot = callback_slot(&state, &live)?;
        let owner = owner.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_end_id",
                "a background callback needs the page's endId query parameter",
            )
        })?;
        return match &query.job {
            Some(job) => poll_job(&state, &owner, job, &checked, spec, author).await,
            None => start_job(&state, &live, owner, &checked, spec).await,
        };
    }
    if query.job.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "not_background",
            format!(
                "callback {:?} is not a background callback and has no jobs",
                checked.callback.output
            ),
        ));
    }
    let answer = ordinary_callback(
        &state, &tenant, &app, &live, &checked, &principal, author, None,
    )
    .await?;
    Ok(match answer {
        Answer::Json(body) => json_response(body),
        Answer::NoContent => no_content(),
    })
}

/// Where a callback that came over the page's WebSocket streams its `set_props`, and the
/// flag that stops it when the connection closes.
pub(super) struct Streaming {
    pub sink: sandbox::StreamSink,
    /// Reads props from that page (`host.get-props`).
    pub page: sandbox::PageProps,
    pub cancel: Arc<std::sync::atomic::AtomicBool>,
}

/// Run an ordinary (not background) callback request that passed [`update::check`], over
/// HTTP or the WebSocket alike: the viewer, the memo, one of the tenant's callback slots,
/// the sandbox. A memoized callback never streams: its answer is shared, so its
/// `set_props` travel in the answer.
#[expect(
    clippy::too_many_arguments,
    reason = "the request's parts, as both routes extract them"
)]
pub(super) async fn ordinary_callback(
    state: &AppState,
    tenant: &str,
    app: &str,
    live: &LiveApp,
    checked: &update::CheckedUpdate<'_>,
    principal: &Principal,
    author: AppAuthor,
    streaming: Option<Streaming>,
) -> Result<Answer, ApiError> {
    let request_json = checked.guest_request_json_at(&format!("/apps/{tenant}/{app}/"));
    let viewer = if crate::viewer::needed(&live.component, checked.callback.memoize.is_some()) {
        let _turn = state.admission.enter(tenant).await;
        crate::viewer::for_call(
            &state.store,
            &live.component,
            live.version.tenant_id,
            principal,
        )
        .await
        .map_err(|e| ApiError::internal("looking up the viewer failed", &e))?
    } else {
        None
    };
    state
        .memo
        .run(
            &state.cache,
            &live.version,
            checked.callback,
            &request_json,
            |memoized| {
                let (stream, page, cancel) = match &streaming {
                    Some(streaming) if !memoized => (
                        Some(streaming.sink.clone()),
                        Some(streaming.page.clone()),
                        Some(streaming.cancel.clone()),
                    ),
                    _ => (None, None, None),
                };
                let options = sandbox::CallOptions {
                    viewer: if memoized { None } else { viewer },
                    memoized,
                    stream,
                    page,
                    cancel,
                    ..sandbox::CallOptions::default()
                };
                let (state, tenant, app, live, checked, request_json) =
                    (state, tenant, app, live, checked, &request_json);
                async move {
                    // Taken only when the guest is to run: a memo hit answers without
                    // one, so memoized answers are served while the tenant is at its
                    // quota of running callbacks.
                    let _slot = callback_slot(state, live).map_err(RunError::Api)?;
                    run_callback(state, (tenant, app), live, checked, request_json, options).await
                }
            },
        )
        .await
        .map_err(|e| match e {
            RunError::Api(e) => e,
            RunError::Callback {
                error,
                error_id,
                log_tail,
            } => {
                let error = ApiError::from_callback(&error, &error_id, author.0);
                if author.0 {
                    error.with_log_tail(&log_tail)
                } else {
                    error
                }
            }
        })
}

/// Why a callback run gave no answer; the same for every request that shared the run
/// (memoized callbacks), so the viewer's own detail is added only by each request.
#[derive(Clone)]
enum RunError {
    Api(ApiError),
    Callback {
        error: Arc<sandbox::Error>,
        error_id: String,
        /// The guest's last log lines, for the app's authors.
        log_tail: Arc<[sandbox::LogLine]>,
    },
}

/// Run the callback in the sandbox and turn its outcome into Dash's answer: the body, 204
/// for PreventUpdate and callbacks without outputs, or the error.
async fn run_callback(
    state: &AppState,
    (tenant, app): (&str, &str),
    live: &LiveApp,
    checked: &update::CheckedUpdate<'_>,
    request_json: &str,
    options: sandbox::CallOptions,
) -> Result<Answer, RunError> {
    let (app_log, usage) = (&state.app_log, &state.usage);
    let callback_id = checked.callback.output.clone();
    let component = live.component.clone();
    let id_for_call = callback_id.clone();
    let request_json = request_json.to_owned();
    let started = std::time::Instant::now();
    // The sandbox's own log lines during the call belong to this request (its id).
    let span = tracing::Span::current();
    let version = live.version.number;
    let mut log_source = app_log_source(app_log, tenant, app, version);
    let outputs = checked.outputs.clone();
    let no_output = checked.callback.no_output;
    let (result, body) = tokio::task::spawn_blocking(move || {
        span.in_scope(|| {
            let mut result = crate::capabilities::on_guest_thread(|| {
                component.call_with(&id_for_call, &request_json, options)
            });
            // The host work that follows a heavy app's call (its log lines, reading its
            // answer) runs where its calls run: the idle class, the long calls' cores.
            let long = component.long_work_if_heavy();
            log_source.heavy = long.is_some();
            let body = match &mut result {
                Ok(output) => {
                    let lines = std::mem::take(&mut output.logs);
                    crate::applog::global().write(log_source, lines);
                    match &output.outcome {
                        sandbox::Outcome::Outputs(answer) => {
                            Some(update::answer_body(&outputs, no_output, answer))
                        }
                        sandbox::Outcome::PreventUpdate => None,
                    }
                }
                Err(failure) => {
                    crate::applog::global().write(log_source, failure.logs.clone());
                    None
                }
            };
            drop(long);
            (result, body)
        })
    })
    .await
    .map_err(|e| RunError::Api(ApiError::internal("the callback task failed", &e)))?;
    let outcome = match &result {
        Ok(output) if matches!(output.outcome, sandbox::Outcome::PreventUpdate) => "prevent_update",
        Ok(_) => "ok",
        Err(failure) => {
            let (outcome, trapped) = crate::observe::failure_outcome(&failure.error);
            if trapped {
                crate::observe::sandbox_trap(outcome);
            }
            outcome
        }
    };
    let elapsed = started.elapsed();
    crate::observe::callback(tenant, app, outcome, elapsed);
    usage.callback(
        live.version.tenant_id,
        live.version.app_id,
        outcome,
        elapsed,
    );
    match result {
        Ok(_) => {
            match body {
                None => Ok(Answer::NoContent),
                Some(body) => {
                    let body = body.map_err(|e| {
                        tracing::warn!(%tenant, %app, version, callback = %callback_id, error = %e, "callback answer refused");
                        RunError::Api(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "callback_bad_answer", e.to_string()))
                    })?;
                    // None: no outputs and no side updates, answered as Dash does (204).
                    Ok(body.map_or(Answer::NoContent, Answer::Json))
                }
            }
        }
        Err(failure) => {
            let tail = failure
                .logs
                .len()
                .saturating_sub(crate::error::LOG_TAIL_LINES);
            let log_tail: Arc<[sandbox::LogLine]> = failure.logs[tail..].into();
            let error_id = crate::error::new_error_id();
            tracing::warn!(target: "tessera::app_log", %tenant, %app, version, callback = %callback_id, %error_id, request_id = %crate::telemetry::current().map(|id| id.to_string()).unwrap_or_default(), error = %failure.error, "callback failed");
            crate::applog::global().record_failure(
                app_log_source(app_log, tenant, app, version),
                &format!(
                    "callback {callback_id} failed (error id {error_id}): {}",
                    failure.error
                ),
            );
            Err(RunError::Callback {
                error: Arc::new(failure.error),
                error_id,
                log_tail,
            })
        }
    }
}

/// Accept a background callback's run as a job and answer with its handles.
async fn start_job(
    state: &AppState,
    live: &LiveApp,
    owner: Owner,
    checked: &update::CheckedUpdate<'_>,
    spec: &Background,
) -> Result<Response, ApiError> {
    let work = Work {
        component: live.component.clone(),
        request_json: checked
            .guest_request_json_at(&format!("/apps/{}/{}/", owner.tenant, owner.app)),
        usage: Some((
            state.usage.clone(),
            live.version.tenant_id,
            live.version.app_id,
        )),
    };
    let job = state
        .jobs
        .start(
            owner,
            live.version.number,
            checked.callback.output.clone(),
            work,
            &live.version.callback_quotas,
        )
        .await
        .map_err(|e| match e {
            jobs::Error::Refused(refused) => too_many(&refused),
            e => ApiError::internal("starting a background job failed", &e),
        })?;
    Ok(json_response(background::started_body(&job, spec)))
}

/// Answer the renderer's poll for `job`: progress while it runs, the outputs (or 204, or
/// its error) once it ended. A job of another app or page load does not exist.
async fn poll_job(
    state: &AppState,
    owner: &Owner,
    id: &str,
    checked: &update::CheckedUpdate<'_>,
    spec: &Background,
    author: AppAuthor,
) -> Result<Response, ApiError> {
    let internal = |e: jobs::Error| ApiError::internal("reading a background job failed", &e);
    let (job, progress) = state
        .jobs
        .poll(owner, id, &checked.callback.output)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "job_not_found",
                format!("no background job {id:?} for this callback and page"),
            )
        })?;
    let progress = progress.and_then(|report| background::progress_object(spec, &report));
    if !job.state.is_final() {
        return Ok(json_response(background::pending_body(progress)));
    }
    match job.state {
        JobState::Done {
            outputs: Some(answer),
        } => {
            let body = update::answer_body(&checked.outputs, checked.callback.no_output, &answer)
                .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "callback_bad_answer",
                    e.to_string(),
                )
            })?;
            Ok(match body {
                Some(body) => json_response(with_progress(&body, progress)),
                None => no_content(),
            })
        }
        JobState::Failed {
            status,
            code,
            message,
            detail,
        } => {
            let message = match detail {
                Some(detail) if author.0 => detail,
                _ => message,
            };
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = serde_json::json!({"error": {"code": code, "message": message}});
            Ok((status, axum::Json(body)).into_response())
        }
        // Cancelled, PreventUpdate or no outputs: nothing to change, as Dash answers.
        _ => Ok(no_content()),
    }
}

/// Dash's empty answer (PreventUpdate, nothing to change): 204 with the `Content-Type`
/// Flask gives it.
fn no_content() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(update::EMPTY_ANSWER_CONTENT_TYPE),
        )],
    )
        .into_response()
}

/// Add the last progress to a final answer, as Dash does.
fn with_progress(body: &str, progress: Option<serde_json::Value>) -> String {
    let Some(progress) = progress else {
        return body.to_owned();
    };
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(body) {
        Ok(mut map) => {
            map.insert("progress".into(), progress);
            serde_json::Value::Object(map).to_string()
        }
        Err(_) => body.to_owned(),
    }
}

/// Where a callback's own log lines go in the platform log: tagged with the app and the
/// request (read here, on the request's task), within the app's rate.
fn app_log_source(
    feed: &crate::applog::LogFeed,
    tenant: &str,
    app: &str,
    version: i64,
) -> crate::applog::Source {
    crate::applog::Source {
        tenant: tenant.to_owned(),
        app: app.to_owned(),
        version,
        job: None,
        request_id: crate::telemetry::current().map(|id| id.to_string()),
        heavy: false,
        shared: feed.publisher(),
    }
}

/// A file of the live version's `assets/` folder. With the current fingerprint in `?m=`
/// it may be cached for good; without it (or with an old one), for a short while only.
async fn app_asset(
    State(state): State<AppState>,
    Path((tenant, app, path)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let live = live_app(&state, &tenant, &app).await?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "asset_not_found",
            format!("the app has no asset {path:?}"),
        )
    };
    if let Err(e) = crate::assets::check_path(&path) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_asset_path",
            e.to_string(),
        ));
    }
    let meta = live
        .assets
        .iter()
        .find(|a| a.path == path)
        .ok_or_else(not_found)?;
    let content_type = crate::assets::content_type(&path).ok_or_else(not_found)?;
    let bytes = state
        .store
        .version_asset(live.version.app_id, live.version.version_id, &path)
        .await
        .map_err(|e| ApiError::internal("reading an asset failed", &e))?
        .ok_or_else(not_found)?;
    let cache = if query.get("m").map(String::as_str) == Some(meta.fingerprint()) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}

async fn component_suite(
    State(state): State<AppState>,
    Path((tenant, app, path)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    if Slug::parse(&tenant).is_err() || Slug::parse(&app).is_err() {
        return Err(ApiError::app_not_found());
    }
    let asset = state.frontend.asset(&path).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "asset_not_found",
            format!("no front-end file {path:?}"),
        )
    })?;
    let bytes = tokio::fs::read(&asset.path)
        .await
        .map_err(|e| ApiError::internal("reading a front-end file failed", &e))?;
    let cache = if asset.fingerprinted {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=3600"
    };
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        Body::from(bytes),
    )
        .into_response())
}
