//! Dash's endpoints under `/apps/{tenant}/{app}/`, exactly as Dash serves them.
//!
//! Every handler resolves the live version first, so an unknown tenant or app is a 404
//! before anything else happens, and a request keeps one version for its whole life.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rand::Rng;
use tower_http::compression::CompressionLayer;

use crate::dash::{index, update};
use crate::error::ApiError;
use crate::ids::Slug;
use crate::runtime::LiveApp;
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
        .route("/apps/{tenant}/{app}/assets/{*path}", get(app_asset))
        .merge(suites)
}

/// Parse the path's names and find the live version; anything unknown is the same 404.
async fn live_app(state: &AppState, tenant: &str, app: &str) -> Result<Arc<LiveApp>, ApiError> {
    let (Ok(tenant), Ok(app)) = (Slug::parse(tenant), Slug::parse(app)) else {
        return Err(ApiError::app_not_found());
    };
    state
        .runtime
        .live(&tenant, &app)
        .await
        .map_err(|e| ApiError::internal("loading the app failed", &e))?
        .ok_or_else(ApiError::app_not_found)
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

async fn index_page(
    State(state): State<AppState>,
    Path((tenant, app)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let live = live_app(&state, &tenant, &app).await?;
    let prefix = format!("/apps/{tenant}/{app}/");
    let end_id: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    let html = index::render(
        &state.frontend,
        &prefix,
        &live.component.info().title,
        &end_id,
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
    Ok(json_response(live.component.layout_json().to_owned()))
}

async fn dependencies(
    State(state): State<AppState>,
    Path((tenant, app)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let live = live_app(&state, &tenant, &app).await?;
    Ok(json_response(live.component.dependencies_json().to_owned()))
}

/// Run one callback: check the body against the declared callback, call the component
/// in the sandbox on a blocking thread, and answer in Dash's shape (204 for
/// PreventUpdate). A failing callback is an error for this request only.
async fn update_component(
    State(state): State<AppState>,
    Path((tenant, app)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let live = live_app(&state, &tenant, &app).await?;
    // Held until the answer is built: the tenant's concurrent-callback quota.
    let _slot = state
        .runtime
        .callback_slots()
        .try_acquire(
            live.version.tenant_id,
            live.version.callback_quotas.max_concurrent,
        )
        .map_err(|e| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exceeded",
                e.to_string(),
            )
        })?;
    let checked = update::check(&live.dependencies, &body)?;
    let request_json = checked.guest_request_json();
    let callback_id = checked.callback.output.clone();
    let component = live.component.clone();
    let id_for_call = callback_id.clone();
    let result = tokio::task::spawn_blocking(move || component.call(&id_for_call, &request_json))
        .await
        .map_err(|e| ApiError::internal("the callback task failed", &e))?;
    let version = live.version.number;
    match result {
        Ok(output) => {
            write_app_log(&tenant, &app, version, &output.logs);
            match output.outcome {
                // Dash answers a callback without outputs as it answers PreventUpdate
                // (nothing to send back; `set_props` side updates do not exist yet).
                sandbox::Outcome::PreventUpdate => Ok(StatusCode::NO_CONTENT.into_response()),
                sandbox::Outcome::Outputs(_) if checked.callback.no_output => {
                    Ok(StatusCode::NO_CONTENT.into_response())
                }
                sandbox::Outcome::Outputs(answer) => {
                    let body = update::response_body(&checked.outputs, &answer).map_err(|e| {
                        tracing::warn!(%tenant, %app, version, callback = %callback_id, error = %e, "callback answer refused");
                        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "callback_bad_answer", e.to_string())
                    })?;
                    Ok(json_response(body))
                }
            }
        }
        Err(failure) => {
            write_app_log(&tenant, &app, version, &failure.logs);
            tracing::warn!(%tenant, %app, version, callback = %callback_id, error = %failure.error, "callback failed");
            Err(ApiError::from_callback(&failure.error))
        }
    }
}

/// The app's own log lines go to the platform log, tagged with the app.
fn write_app_log(tenant: &str, app: &str, version: i64, lines: &[sandbox::LogLine]) {
    for line in lines {
        tracing::info!(target: "tessera::app_log", %tenant, %app, version, stream = ?line.stream, "{}", line.message);
    }
}

/// The app's own `assets/` folder. Components deployed with `tessera deploy` carry no
/// assets yet, so after checking the app exists every path is a 404.
async fn app_asset(
    State(state): State<AppState>,
    Path((tenant, app, path)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    live_app(&state, &tenant, &app).await?;
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "asset_not_found",
        format!("the app has no asset {path:?}"),
    ))
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
