//! Operations endpoints: `/readyz` (both origins, for load balancers) and `/metrics`
//! (platform origin, bearer token of `[metrics] token`). `/healthz` (liveness) is `home`'s.

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::error::ApiError;
use crate::observe::{self, Readiness, Snapshot};
use crate::state::AppState;

/// `/readyz` alone, for the apps origin.
pub fn readiness_router() -> Router<AppState> {
    Router::new().route("/readyz", get(ready))
}

/// `/readyz` and `/metrics`, for the platform origin.
pub fn router() -> Router<AppState> {
    readiness_router().route("/metrics", get(metrics))
}

/// 200 when the database answers (`degraded`, still 200, when a configured Redis does not:
/// every replica bypasses the cache alike); 503 naming the database when it does not, and
/// 503 `draining` from SIGTERM on, so load balancers stop sending before the listener
/// closes.
async fn ready(State(state): State<AppState>) -> Response {
    if state.drain.draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "draining"})),
        )
            .into_response();
    }
    let readiness = Readiness::check(&state.store, &state.cache).await;
    let status = if readiness.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |up: bool| if up { "ok" } else { "unavailable" };
    let overall = match readiness.degraded() {
        true => "degraded",
        false => word(readiness.ready()),
    };
    let mut body = json!({
        "status": overall,
        "database": word(readiness.database),
    });
    if let Some(redis) = readiness.redis {
        body["redis"] = json!(word(redis));
    }
    (status, axum::Json(body)).into_response()
}

/// The metrics, for the configured token only; anyone else gets the empty 404 of a route
/// that does not exist (tenant and app names are in the labels).
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !observe::scrape_allowed(state.config.metrics.token.as_deref(), authorization) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let snapshot = Snapshot {
        pool: state.store.pool_size(),
        redis_up: state.cache.redis_up().await,
    };
    match observe::render(&snapshot) {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics_unavailable",
            "another metrics recorder is installed in this process",
        )
        .into_response(),
    }
}

/// Settles the request's id ([`crate::telemetry::RequestId`]): the caller's well-formed
/// `X-Request-Id` or a new one, written back into the request (for [`request_span`]),
/// current for the handler's task and answered in the response.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    use crate::telemetry::{REQUEST_ID_HEADER, RequestId, with_request_id};
    let id = RequestId::from_header(
        request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    // Only ASCII letters, digits and `-_.:`: always a valid header value.
    let value = HeaderValue::from_str(id.as_str()).expect("a request id is a header value");
    request
        .headers_mut()
        .insert(REQUEST_ID_HEADER, value.clone());
    let mut response = with_request_id(id, next.run(request)).await;
    response.headers_mut().insert(REQUEST_ID_HEADER, value);
    response
}

/// The span of one request: method, path (never the query: it may carry a one-time code)
/// and the request id settled by [`request_id`].
pub fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request
        .headers()
        .get(crate::telemetry::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
    )
}

/// Counts every request by its route template (never the raw path) and status.
pub async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    observe::http_request(&route, response.status().as_u16(), started.elapsed());
    response
}
