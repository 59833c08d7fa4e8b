//! The one error type at the HTTP edge: a status, a stable code and a message, rendered
//! as `{"error": {"code", "message"}}`. Internal details are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::dash::ProtocolError;

/// An error answered to a client.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// No such app (also what a viewer without access will get, so it leaks nothing).
    pub fn app_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "app_not_found", "no such app")
    }

    /// No such `what` (also what a principal who may not see it gets).
    pub fn not_found(what: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} {name:?}"),
        )
    }

    /// A 503 `tenant_suspended`: the tenant's routes while a superadmin keeps it suspended.
    pub fn tenant_suspended() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "tenant_suspended",
            TENANT_SUSPENDED,
        )
    }

    /// A value in the request is invalid.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation_failed", message)
    }

    /// Anything the client cannot act on: logged with its cause, answered generically.
    pub fn internal(context: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{context}; the server log has the details"),
        )
    }

    /// A callback that did not produce outputs, mapped from the sandbox's verdict. What the
    /// guest said (a panic message and its source line, its own error text, a trap) is
    /// shown only to the app's authors (`detail`); viewers get the error id, which the app
    /// log line carries with the detail.
    pub fn from_callback(error: &sandbox::Error, error_id: &str, detail: bool) -> Self {
        use sandbox::Error as E;
        let (status, code, from_guest) = match error {
            // The guest telling the client what was wrong with its input: for the client.
            E::InvalidInput { .. } => (StatusCode::BAD_REQUEST, "invalid_input", false),
            E::Deadline { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "callback_deadline",
                false,
            ),
            E::Memory { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "callback_memory", false),
            E::OutputTooLarge { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "callback_output_too_large",
                false,
            ),
            E::Panic { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "callback_panicked", true),
            E::Callback { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "callback_failed", true),
            E::Trap { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "callback_trapped", true),
            // The tenant holds its share of the instance pool (or the pool is full of
            // calls in progress): retry later, as with the callback quota.
            E::Capacity { .. } => (StatusCode::TOO_MANY_REQUESTS, "sandbox_capacity", false),
            other => return Self::internal("the sandbox failed", other),
        };
        let message = if detail || !from_guest {
            format!("{error} (error id {error_id})")
        } else {
            format!(
                "the callback failed (error id {error_id}); the app's authors find the details in its log"
            )
        };
        Self::new(status, code, message)
    }

    /// The last lines the guest logged before it failed, appended to the message: for the
    /// app's authors only (the sandbox has already masked the app's secrets in them).
    pub fn with_log_tail(mut self, lines: &[sandbox::LogLine]) -> Self {
        let start = lines.len().saturating_sub(LOG_TAIL_LINES);
        if start == lines.len() {
            return self;
        }
        self.message.push_str("\nlast lines of the callback's log:");
        for line in &lines[start..] {
            let text: String = line.message.chars().take(LOG_TAIL_CHARS).collect();
            self.message.push_str("\n  ");
            self.message.push_str(&text);
        }
        self
    }
}

/// How many of a failed callback's log lines its authors see with the error.
pub const LOG_TAIL_LINES: usize = 20;
/// How much of each line.
const LOG_TAIL_CHARS: usize = 500;

/// A short random id that ties an error a viewer sees to the log line with its details.
pub fn new_error_id() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(10)
        .map(|b| char::from(b).to_ascii_lowercase())
        .collect()
}

impl From<ProtocolError> for ApiError {
    fn from(error: ProtocolError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error.code(), error.to_string())
    }
}

/// The stable code of an error answer, kept on the response for middleware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

/// What every route of a suspended tenant says (JSON, HTML page or git's plain text).
pub const TENANT_SUSPENDED: &str = "this tenant is suspended: its apps, pushes and API tokens \
     are unavailable until a platform administrator resumes it";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}
