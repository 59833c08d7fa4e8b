//! Logging set-up (`tracing` to stderr, filtered by `RUST_LOG`, default `info`; text or
//! one JSON object per line) and request ids.
//!
//! Every HTTP request gets an id: the caller's `X-Request-Id` when it is well formed (a
//! load balancer's or a client's), else a new random one. It is answered in the response's
//! `X-Request-Id`, is a field of the request's span (so every line logged while the request
//! runs carries it), and is handed with a callback's log lines to the app log, which writes
//! them on its own thread.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, the event's fields
    /// flattened, and `spans` (the request's `request_id`, method and URI among them).
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("expected text or json (got {other:?})")),
        }
    }
}

/// Install the global subscriber. Safe to call more than once (later calls are ignored).
pub fn init() {
    init_with(LogFormat::Text);
}

/// [`init`] in the given format.
pub fn init_with(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
}

/// The header that carries a request's id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest id accepted from a caller.
const MAX_ID_LEN: usize = 128;

/// A request's id: printable, short, safe in a log line and a header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The caller's id when it is well formed: 1 to 128 ASCII letters, digits and
    /// `-_.:` (a UUID, a load balancer's hex id). Anything else — spaces, quotes, control
    /// characters, a line break meant to forge a log line — is not taken.
    pub fn from_caller(value: &str) -> Option<RequestId> {
        let ok = !value.is_empty()
            && value.len() <= MAX_ID_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        ok.then(|| RequestId(value.to_owned()))
    }

    /// A new random id (128 bits, hex).
    pub fn generate() -> RequestId {
        RequestId(hex::encode(rand::random::<[u8; 16]>()))
    }

    /// The caller's id if well formed, else a new one.
    pub fn from_header(value: Option<&str>) -> RequestId {
        value
            .and_then(RequestId::from_caller)
            .unwrap_or_else(RequestId::generate)
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

tokio::task_local! {
    static CURRENT: RequestId;
}

/// Run `future` as the request `id` ([`current`] answers it inside).
pub async fn with_request_id<F: Future>(id: RequestId, future: F) -> F::Output {
    CURRENT.scope(id, future).await
}

/// The id of the request this task serves, if any.
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_caller_id_is_kept_and_anything_else_replaced() {
        for kept in ["abc", "0f8e-12:ab.c_d", &"a".repeat(128)] {
            assert_eq!(RequestId::from_header(Some(kept)).as_str(), kept);
        }
        for refused in [
            "",
            "two words",
            "line\nforged",
            "quote\"",
            "é",
            &"a".repeat(129),
        ] {
            let id = RequestId::from_header(Some(refused));
            assert_ne!(id.as_str(), refused);
            assert_eq!(id.as_str().len(), 32, "{id}");
        }
        assert_ne!(RequestId::generate(), RequestId::generate());
    }

    #[test]
    fn log_formats_parse() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().is_err());
    }
}
