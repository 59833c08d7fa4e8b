//! How a callback stops short of producing outputs.
//!
//! A handler returns [`Error`]: Dash's `PreventUpdate`, an input that does not fit (the
//! viewer's or the request's fault), or a failure of the callback itself (the author's
//! fault). [`App::run_callback`](crate::App::run_callback) turns `PreventUpdate` into an
//! [`Outcome`](crate::Outcome) and the other two into [`CallbackError`], the
//! `callback-error` variant of the WIT world, so the platform can answer with a 4xx or a
//! callback error accordingly.

use std::fmt;

/// The result of a callback handler; `T` is whatever the handler returns on success.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Dash's `PreventUpdate`: return `Err(PreventUpdate.into())` (or use `?` on it) to leave
/// every output as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreventUpdate;

/// Why a callback handler did not produce outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Leave every output unchanged (Dash's `PreventUpdate`).
    PreventUpdate,
    /// An input or state value has the wrong type or shape. Shown to the viewer as a
    /// bad request; [`Context::input`](crate::Context::input) produces it on a type mismatch.
    InvalidInput(String),
    /// The callback itself failed; the message is shown as a callback error.
    Failed(String),
}

impl Error {
    /// An [`Error::InvalidInput`] with this message.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }

    /// An [`Error::Failed`] with this message.
    pub fn failed(message: impl Into<String>) -> Self {
        Error::Failed(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::PreventUpdate => f.write_str("update prevented"),
            Error::InvalidInput(message) => write!(f, "invalid input: {message}"),
            Error::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

impl From<PreventUpdate> for Error {
    fn from(_: PreventUpdate) -> Self {
        Error::PreventUpdate
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::Failed(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::Failed(message.to_owned())
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::Failed(error.to_string())
    }
}

impl From<crate::sql::QueryError> for Error {
    fn from(error: crate::sql::QueryError) -> Self {
        Error::Failed(error.to_string())
    }
}

impl From<crate::cache::CacheError> for Error {
    fn from(error: crate::cache::CacheError) -> Self {
        Error::Failed(error.to_string())
    }
}

impl From<crate::viewer::ViewerError> for Error {
    fn from(error: crate::viewer::ViewerError) -> Self {
        Error::Failed(error.to_string())
    }
}

impl From<crate::data::ReadError> for Error {
    fn from(error: crate::data::ReadError) -> Self {
        Error::Failed(error.to_string())
    }
}

impl From<crate::http::Error> for Error {
    fn from(error: crate::http::Error) -> Self {
        Error::Failed(error.to_string())
    }
}

/// Why [`App::run_callback`](crate::App::run_callback) returned no outcome; mirrors the
/// WIT world's `callback-error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackError {
    /// The request did not fit the callback: unknown callback, malformed request, or an
    /// input or state value of the wrong type or shape.
    InvalidInput(String),
    /// The callback itself failed (the author's error).
    Failed(String),
}

impl CallbackError {
    /// A handler's error that is not `PreventUpdate` (the caller answers that one).
    pub(crate) fn from_handler(error: Error) -> Self {
        match error {
            Error::InvalidInput(message) => CallbackError::InvalidInput(message),
            Error::Failed(message) => CallbackError::Failed(message),
            Error::PreventUpdate => CallbackError::Failed("update prevented".into()),
        }
    }

    /// The message, whichever the kind.
    pub fn message(&self) -> &str {
        match self {
            CallbackError::InvalidInput(message) | CallbackError::Failed(message) => message,
        }
    }
}

impl fmt::Display for CallbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallbackError::InvalidInput(message) => write!(f, "invalid input: {message}"),
            CallbackError::Failed(message) => write!(f, "callback failed: {message}"),
        }
    }
}

impl std::error::Error for CallbackError {}
