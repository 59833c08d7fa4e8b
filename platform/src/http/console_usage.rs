//! The app page's usage section (who may deploy the app): the figures as a table (no
//! script needed) and, drawn by our `/ui/static/usage.js` with plotly.js (the pinned
//! `plotly.js-dist-min` the apps origin serves to dcc's Graph, here from the platform's
//! origin so `script-src 'self'` holds), four charts of the same series, which the page
//! carries as JSON in a `<script type="application/json">`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::console::Routes;
use crate::error::ApiError;
use crate::manage::Refusal;
use crate::policy::Principal;
use crate::state::AppState;
use crate::usage::{self, AppUsage, UsagePoint, Window};

/// How many of the latest non-empty steps the table lists.
const TABLE_ROWS: usize = 15;

const USAGE_SCRIPT: &str = include_str!("../../../admin-ui/static/usage.js");

pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .get("/ui/static/usage.js", usage_script)
        .get("/ui/static/plotly.min.js", plotly_script)
}

fn script(body: impl Into<Body>, cache: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body.into(),
    )
        .into_response()
}

async fn usage_script() -> Response {
    script(USAGE_SCRIPT, "public, max-age=300")
}

/// plotly.js from the installed front end (the file the apps origin serves as
/// `plotly/package_data/plotly.min.js`), no second copy.
async fn plotly_script(State(state): State<AppState>) -> Result<Response, ApiError> {
    let asset = state
        .frontend
        .asset("plotly/package_data/plotly.min.js")
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "asset_not_found",
                "plotly.js is not installed",
            )
        })?;
    let bytes = tokio::fs::read(&asset.path)
        .await
        .map_err(|e| ApiError::internal("reading plotly.js failed", &e))?;
    Ok(script(bytes, "public, max-age=3600"))
}

/// One row of the table.
pub(super) struct UsageRowView {
    pub when: String,
    pub callbacks: u64,
    pub errors: u64,
    pub limit_hits: u64,
    pub hit_ratio: String,
    pub p50: String,
    pub p99: String,
}

/// The usage section as the template shows it.
pub(super) struct UsageView {
    /// (name, label, whether it is the one shown).
    pub windows: Vec<(&'static str, &'static str, bool)>,
    /// `1 minute`, `5 minutes`, `15 minutes`.
    pub step: String,
    /// The latest non-empty steps, newest first.
    pub rows: Vec<UsageRowView>,
    /// The whole window.
    pub totals: UsageRowView,
    /// The series as JSON for the charts, `<`, `>` and `&` escaped (it cannot end the
    /// script element it is in).
    pub json: String,
}

fn row(point: &UsagePoint, when: String) -> UsageRowView {
    let ms = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| format!("{v:.1}"));
    UsageRowView {
        when,
        callbacks: point.callbacks,
        errors: point.errors,
        limit_hits: point.limit_hits,
        hit_ratio: point
            .cache_hit_ratio
            .map_or_else(|| "—".to_owned(), |r| format!("{:.0} %", r * 100.0)),
        p50: ms(point.p50_ms),
        p99: ms(point.p99_ms),
    }
}

fn clock_time(millis: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(millis / 1000)
        .map(|t| format!("{:02}:{:02}", t.hour(), t.minute()))
        .unwrap_or_default()
}

/// JSON that may stand inside a `<script>` element: no `<`, `>` or `&` left (each is
/// written as its `\u` escape, which a JSON parser reads back as the same character).
pub(super) fn script_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "null".to_owned())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The section of `tenant/app` over `window` (the window `?window=` named; anything else
/// is the last hour).
pub(super) async fn view(
    state: &AppState,
    principal: &Principal,
    app: (&str, &str),
    window: Option<&str>,
) -> Result<UsageView, Refusal> {
    let window = window
        .and_then(|w| Window::parse(w).ok())
        .unwrap_or_default();
    let found: AppUsage = usage::app_usage(state, principal, app, window).await?;
    let rows = found
        .points
        .iter()
        .rev()
        .filter(|p| p.callbacks > 0 || p.cache_hits + p.cache_misses > 0)
        .take(TABLE_ROWS)
        .map(|p| row(p, format!("{} UTC", clock_time(p.at))))
        .collect();
    let step = match found.step_minutes {
        1 => "1 minute".to_owned(),
        n => format!("{n} minutes"),
    };
    Ok(UsageView {
        windows: Window::ALL
            .iter()
            .map(|w| {
                let label = match w {
                    Window::Hour => "Last hour",
                    Window::SixHours => "Last 6 hours",
                    Window::Day => "Last 24 hours",
                };
                (w.name(), label, *w == window)
            })
            .collect(),
        step,
        totals: row(&found.totals, "Total".to_owned()),
        rows,
        json: script_json(&found),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn script_json_cannot_end_its_element() {
        let json = super::script_json(&serde_json::json!({"a": "</script><!-- & >"}));
        assert!(!json.contains('<') && !json.contains('>') && !json.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&json).expect("still JSON");
        assert_eq!(back["a"], "</script><!-- & >");
    }
}
