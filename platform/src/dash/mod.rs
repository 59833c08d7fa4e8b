//! Dash's HTTP protocol, without HTTP: what the index page holds, how a
//! `_dash-update-component` body is checked against the app's dependencies, what the
//! component is asked, and how its answer becomes Dash's response body.
//!
//! Nothing here touches axum, the database or wasmtime; [`crate::http::dash`] wires it up.

pub mod background;
pub mod clientside;
pub mod dependencies;
pub mod graph;
pub mod index;
pub mod layout;
pub mod pattern;
pub mod update;
pub mod ws;

/// A request that does not fit the app: always the client's fault (4xx).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// The body is not a `_dash-update-component` request.
    #[error("malformed update request: {0}")]
    Malformed(String),
    /// No callback of this app has this output.
    #[error("the app has no callback with output {0:?}")]
    UnknownCallback(String),
    /// Inputs, state or outputs differ from the callback's declaration.
    #[error("{0}")]
    Mismatch(String),
    /// The callback runs in the browser; the server never runs it.
    #[error("callback {0:?} is a clientside callback: the browser runs it, not the server")]
    Clientside(String),
}

impl ProtocolError {
    /// Stable machine-readable code for JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_request",
            Self::UnknownCallback(_) => "unknown_callback",
            Self::Mismatch(_) => "request_mismatch",
            Self::Clientside(_) => "clientside_callback",
        }
    }
}
