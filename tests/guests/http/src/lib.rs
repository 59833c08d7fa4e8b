//! A dashboard component that fetches URLs through the standard `wasi:http` client.
//!
//! Callbacks (the URL is the first input's `value`):
//! * `fetch` (also `fetch.children`, declared for the platform): one GET; answers `["<status> <body bytes> <body text, first 200 bytes>"]`, or
//!   fails with the `wasi:http` error code (e.g. `HttpRequestDenied`).
//! * `fetch-many`: GETs the URL `count` times (second input), stopping at the first error;
//!   answers `["<n> ok"]` or fails naming how many succeeded and the error.
//!
//! Waits go through `wasi:io/poll` (`poll` on one pollable), as an async runtime would.

wit_bindgen::generate!({
    path: "../../../wit/dashboard@0.1.0",
    world: "tessera:dashboard/dashboard",
});

use exports::tessera::dashboard::app::{AppInfo, CallbackError, Guest, Outcome};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, IncomingResponse, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

struct Http;

impl Guest for Http {
    fn info() -> AppInfo {
        AppInfo {
            title: "http".to_string(),
            sdk_version: "guest-http".to_string(),
        }
    }

    fn layout() -> String {
        r#"{"type":"Div","namespace":"dash_html_components","props":{"children":"http"}}"#
            .to_string()
    }

    /// One callback the platform serves: `fetch.children` from `url.value`.
    fn dependencies() -> String {
        r#"[{"output":"fetch.children","inputs":[{"id":"url","property":"value"}],"state":[],"clientside_function":null,"prevent_initial_call":true,"background":null,"dynamic_creator":false,"no_output":false,"optional":false,"hidden":null,"websocket":false,"persistent":false}]"#
            .to_string()
    }

    fn run_callback(id: String, request: String) -> Result<Outcome, CallbackError> {
        let request: serde_json::Value = serde_json::from_str(&request)
            .map_err(|e| CallbackError::InvalidInput(e.to_string()))?;
        let input = |i: usize| request["inputs"][i]["value"].clone();
        let url = input(0)
            .as_str()
            .ok_or_else(|| CallbackError::InvalidInput("no URL".to_string()))?
            .to_string();
        match id.as_str() {
            "fetch" | "fetch.children" => {
                let (status, body) = fetch(&url).map_err(CallbackError::Failed)?;
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                let answer = format!("{status} {} {text}", body.len());
                Ok(Outcome::Outputs(serde_json::json!([answer]).to_string()))
            }
            "fetch-many" => {
                let count = input(1).as_u64().unwrap_or(1);
                for done in 0..count {
                    if let Err(e) = fetch(&url) {
                        return Err(CallbackError::Failed(format!("after {done} ok: {e}")));
                    }
                }
                Ok(Outcome::Outputs(
                    serde_json::json!([format!("{count} ok")]).to_string(),
                ))
            }
            other => Err(CallbackError::InvalidInput(format!("no callback {other}"))),
        }
    }
}

/// GETs `url`; the status and the whole body, or the error code as text.
fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("not a URL: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    request.set_scheme(Some(&scheme)).map_err(|()| "scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "path")?;
    let future = outgoing_handler::handle(request, None).map_err(code)?;
    let response: IncomingResponse = loop {
        if let Some(ready) = future.get() {
            break ready
                .map_err(|()| "response taken twice".to_string())?
                .map_err(code)?;
        }
        wasip2::io::poll::poll(&[&future.subscribe()]);
    };
    let status = response.status();
    let body = response.consume().map_err(|()| "body taken twice")?;
    let stream = body.stream().map_err(|()| "stream taken twice")?;
    let mut bytes = Vec::new();
    loop {
        match stream.read(64 << 10) {
            Ok(chunk) if chunk.is_empty() => {
                wasip2::io::poll::poll(&[&stream.subscribe()]);
            }
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(match wasip2::http::types::http_error_code(&e) {
                    Some(c) => code(c),
                    None => e.to_debug_string(),
                });
            }
        }
    }
    Ok((status, bytes))
}

fn code(error: ErrorCode) -> String {
    format!("{error:?}")
}

export!(Http);
