//! Outbound HTTP, small and blocking like Python's `requests`: [`get`] a URL, or build a
//! [`Request`] with a method, headers and a body, and read the [`Response`]'s status,
//! headers and body (as bytes, [`Response::text`] or [`Response::json`]).
//!
//! ```no_run
//! #[derive(serde::Deserialize)]
//! struct Rate {
//!     currency: String,
//!     rate: f64,
//! }
//!
//! let rates: Vec<Rate> = sdk::http::get("https://api.example.com/rates")?.json()?;
//! let created = sdk::http::Request::new("POST", "https://api.example.com/orders")
//!     .header("content-type", "application/json")
//!     .body(r#"{"sku": "A-1"}"#)
//!     .send()?;
//! assert_eq!(created.status(), 201);
//! # let _ = rates;
//! # Ok::<(), sdk::http::Error>(())
//! ```
//!
//! Requests go through `wasi:http/outgoing-handler`, so the platform decides where they
//! may go: only to the hosts on the app's allowlist (the setting `TESSERA_OUTBOUND_HOSTS`,
//! `tessera apps outbound … allow https://api.example.com`), never to loopback, private or
//! cloud-metadata addresses (checked after DNS), under a timeout, a response-size cap and a
//! cap on requests per callback call. A refusal is [`Error::Refused`] and a line in the
//! app's log naming the rule. An app that never calls this module does not import
//! `wasi:http` at all.
//!
//! Natively (`cargo test` of an app) there is no platform to send through: [`Request::send`]
//! answers [`Error::Transport`] saying so.

use std::fmt;
use std::time::Duration;

/// Why a request gave no response. Each case carries a message for the author; the
/// `wasi:http` error code, when there is one, is named in it (`HttpRequestDenied`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The platform did not send the request: the host is not on the app's allowlist, it
    /// resolves to a loopback, private or metadata address, or the callback reached its
    /// cap on requests. The app's log says which rule refused it.
    Refused(String),
    /// No answer in time: DNS, connecting, the first byte, a pause between bytes, or the
    /// callback's deadline.
    Timeout(String),
    /// The response (its body or headers) is over the platform's size cap.
    TooLarge(String),
    /// The server's TLS certificate was not accepted (an unknown authority, a certificate
    /// for another name, expired), or the TLS handshake failed.
    Tls(String),
    /// The request itself is malformed: not an `http://` or `https://` URL, a bad method
    /// or header.
    InvalidRequest(String),
    /// Anything else between here and the server: DNS found nothing, the connection was
    /// refused or reset, the server broke the protocol.
    Transport(String),
    /// [`Response::json`] could not decode the body.
    Decode(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, message) = match self {
            Error::Refused(m) => ("refused by the platform's outbound policy", m),
            Error::Timeout(m) => ("timed out", m),
            Error::TooLarge(m) => ("response too large", m),
            Error::Tls(m) => ("TLS failed", m),
            Error::InvalidRequest(m) => ("invalid request", m),
            Error::Transport(m) => ("transport error", m),
            Error::Decode(m) => ("could not decode the response", m),
        };
        write!(f, "http: {what}: {message}")
    }
}

impl std::error::Error for Error {}

/// `GET url`, without extra headers.
///
/// # Errors
///
/// See [`Error`]: a refusal, a timeout, a response over the cap, a TLS or transport
/// failure. A response with any status (404, 500) is a [`Response`], not an error.
pub fn get(url: &str) -> Result<Response, Error> {
    Request::new("GET", url).send()
}

/// An HTTP request to build and [`send`](Request::send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
}

impl Request {
    /// A request with `method` (`GET`, `POST`, … or any token) to `url` (`http://` or
    /// `https://`, with an optional port, path and query; a `#fragment` is dropped).
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    /// Adds a header (repeat the call to send a name twice).
    #[must_use]
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Request {
        self.headers
            .push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    /// Sets the body (none by default).
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON, with `content-type: application/json`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] when `value` cannot be serialized.
    pub fn json<T: serde::Serialize>(self, value: &T) -> Result<Request, Error> {
        let body =
            serde_json::to_vec(value).map_err(|e| Error::InvalidRequest(format!("body: {e}")))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Waits at most `timeout` to connect, for the first byte and between two bytes. The
    /// platform's own timeout and the callback's deadline still apply (the shorter wins).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request and reads the whole response.
    ///
    /// # Errors
    ///
    /// See [`Error`].
    pub fn send(self) -> Result<Response, Error> {
        let target = Target::parse(&self.url)?;
        if self.method.is_empty()
            || !self
                .method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return Err(Error::InvalidRequest(format!(
                "`{}` is not an HTTP method",
                self.method
            )));
        }
        #[cfg(target_arch = "wasm32")]
        return wasm::send(&self, &target);
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = target;
            Err(Error::Transport(
                "outbound HTTP is only available inside Tessera".to_owned(),
            ))
        }
    }
}

/// An HTTP response: status, headers and the whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// A response (for tests of code that handles one).
    pub fn new(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Response {
        Response {
            status,
            headers,
            body,
        }
    }

    /// The status code (200, 404, …).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Every header in the order received, names in lowercase; values that are not UTF-8
    /// are decoded lossily.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    /// The body, taken out of the response.
    pub fn into_bytes(self) -> Vec<u8> {
        self.body
    }

    /// The body as text (invalid UTF-8 replaced by U+FFFD, as `requests` does).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded from JSON.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] naming what did not fit.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Decode(e.to_string()))
    }
}

/// The parts of a URL `wasi:http` takes separately.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    https: bool,
    authority: String,
    path_with_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, Error> {
        let bad = |why: &str| Error::InvalidRequest(format!("URL `{url}`: {why}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("it must start with http:// or https://"))?;
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return Err(bad("only http and https are supported"));
        };
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.is_empty() {
            return Err(bad("the host is missing"));
        }
        if authority.contains('@') {
            return Err(bad(
                "credentials in the URL are not supported (send a header)",
            ));
        }
        if authority.contains(|c: char| c.is_whitespace() || c.is_control()) || path.contains(' ') {
            return Err(bad("it contains a space or a control character"));
        }
        let path_with_query = match path.chars().next() {
            None => "/".to_owned(),
            Some('?') => format!("/{path}"),
            Some(_) => path.to_owned(),
        };
        Ok(Target {
            https,
            authority: authority.to_owned(),
            path_with_query,
        })
    }
}

/// The request through `wasi:http` (the bindings generated in `export`).
#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::{Error, Request, Response, Target};
    use crate::export::bindings::wasi::http::outgoing_handler;
    use crate::export::bindings::wasi::http::types::{
        ErrorCode, Fields, IncomingResponse, Method, OutgoingBody, OutgoingRequest, RequestOptions,
        Scheme,
    };
    use crate::export::bindings::wasi::io::poll::poll;
    use crate::export::bindings::wasi::io::streams::{InputStream, OutputStream, StreamError};

    pub(super) fn send(request: &Request, target: &Target) -> Result<Response, Error> {
        let mut headers = request.headers.clone();
        // A known length rather than chunked encoding, which some servers refuse (as
        // `requests` does); the host checks the body written against it.
        let sends_body =
            !request.body.is_empty() || matches!(request.method.as_str(), "POST" | "PUT" | "PATCH");
        if sends_body
            && !headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        {
            headers.push((
                "content-length".to_owned(),
                request.body.len().to_string().into_bytes(),
            ));
        }
        let headers = Fields::from_list(&headers)
            .map_err(|e| Error::InvalidRequest(format!("headers: {e:?}")))?;
        let outgoing = OutgoingRequest::new(headers);
        let method = match request.method.as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "CONNECT" => Method::Connect,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_owned()),
        };
        let invalid = |what: &str| Error::InvalidRequest(format!("{what} refused"));
        outgoing
            .set_method(&method)
            .map_err(|()| invalid("method"))?;
        let scheme = if target.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme"))?;
        outgoing
            .set_authority(Some(&target.authority))
            .map_err(|()| invalid("host"))?;
        outgoing
            .set_path_with_query(Some(&target.path_with_query))
            .map_err(|()| invalid("path"))?;
        let options = request.timeout.map(|timeout| {
            let options = RequestOptions::new();
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            // The host caps each at its own timeout; an error only means "not supported".
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            let _ = options.set_between_bytes_timeout(Some(nanos));
            options
        });
        let body = outgoing.body().map_err(|()| invalid("body"))?;
        // Sent first, then the body is streamed: a body larger than the host's buffer
        // cannot wait for a request that has not started.
        let future = outgoing_handler::handle(outgoing, options).map_err(from_code)?;
        if !request.body.is_empty() {
            let stream = body.write().map_err(|()| invalid("body"))?;
            write_all(&stream, &request.body)?;
        }
        // A failed finish (fewer bytes written than announced) aborts the request; the
        // response then fails too, and the finish's error says more.
        let finished = OutgoingBody::finish(body, None);
        let response: IncomingResponse = loop {
            if let Some(ready) = future.get() {
                let ready = ready
                    .map_err(|()| Error::Transport("the response was taken twice".to_owned()))?;
                break ready.map_err(|code| from_code(finished.err().unwrap_or(code)))?;
            }
            poll(&[&future.subscribe()]);
        };
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| {
                (
                    name.to_ascii_lowercase(),
                    String::from_utf8_lossy(&value).into_owned(),
                )
            })
            .collect();
        let incoming = response
            .consume()
            .map_err(|()| Error::Transport("the body was taken twice".to_owned()))?;
        let body = {
            let stream = incoming
                .stream()
                .map_err(|()| Error::Transport("the body was taken twice".to_owned()))?;
            read_all(&stream)?
        };
        Ok(Response::new(status, headers, body))
    }

    /// Writes the request body. The stream closing early is no error here: the request
    /// ended (refused, or the server answered without reading it all), and the response or
    /// its error says how.
    fn write_all(stream: &OutputStream, mut bytes: &[u8]) -> Result<(), Error> {
        let result = (|| {
            while !bytes.is_empty() {
                let room = stream.check_write()?;
                if room == 0 {
                    poll(&[&stream.subscribe()]);
                    continue;
                }
                let n = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
                stream.write(&bytes[..n])?;
                bytes = &bytes[n..];
            }
            stream.flush()?;
            // Wait until the flush is done.
            while stream.check_write()? == 0 {
                poll(&[&stream.subscribe()]);
            }
            Ok(())
        })();
        match result {
            Ok(()) | Err(StreamError::Closed) => Ok(()),
            Err(StreamError::LastOperationFailed(e)) => Err(from_stream_error(&e)),
        }
    }

    fn read_all(stream: &InputStream) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::new();
        loop {
            match stream.read(64 << 10) {
                Ok(chunk) if chunk.is_empty() => {
                    poll(&[&stream.subscribe()]);
                }
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => return Ok(bytes),
                Err(StreamError::LastOperationFailed(e)) => return Err(from_stream_error(&e)),
            }
        }
    }

    /// A failed body read: the `wasi:http` code when the host attached one, else its text.
    fn from_stream_error(error: &crate::export::bindings::wasi::io::error::Error) -> Error {
        if let Some(code) = crate::export::bindings::wasi::http::types::http_error_code(error) {
            return from_code(code);
        }
        let text = error.to_debug_string();
        let lower = text.to_ascii_lowercase();
        if lower.contains("size exceeds limit") {
            Error::TooLarge(text)
        } else if lower.contains("timeout") || lower.contains("timed out") {
            Error::Timeout(text)
        } else {
            Error::Transport(text)
        }
    }

    fn from_code(code: ErrorCode) -> Error {
        let text = format!("{code:?}");
        match code {
            ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => {
                Error::Refused(text)
            }
            ErrorCode::DnsTimeout
            | ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::HttpResponseTimeout => Error::Timeout(text),
            ErrorCode::HttpResponseBodySize(_)
            | ErrorCode::HttpResponseHeaderSectionSize(_)
            | ErrorCode::HttpResponseHeaderSize(_)
            | ErrorCode::HttpResponseTrailerSectionSize(_)
            | ErrorCode::HttpResponseTrailerSize(_) => Error::TooLarge(text),
            ErrorCode::TlsCertificateError
            | ErrorCode::TlsProtocolError
            | ErrorCode::TlsAlertReceived(_) => Error::Tls(text),
            ErrorCode::HttpRequestMethodInvalid
            | ErrorCode::HttpRequestUriInvalid
            | ErrorCode::HttpRequestUriTooLong
            | ErrorCode::HttpRequestHeaderSectionSize(_)
            | ErrorCode::HttpRequestHeaderSize(_) => Error::InvalidRequest(text),
            _ => Error::Transport(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_what_wasi_http_takes() {
        let t = Target::parse("https://api.example.com:8443/v1/rates?day=1#top").expect("ok");
        assert!(t.https);
        assert_eq!(t.authority, "api.example.com:8443");
        assert_eq!(t.path_with_query, "/v1/rates?day=1");
        let t = Target::parse("HTTP://[::1]:9000").expect("ok");
        assert!(!t.https);
        assert_eq!(t.authority, "[::1]:9000");
        assert_eq!(t.path_with_query, "/");
        assert_eq!(
            Target::parse("http://h?q=1").expect("ok").path_with_query,
            "/?q=1"
        );
        for (url, why) in [
            ("api.example.com/x", "must start with"),
            ("ftp://h/x", "only http and https"),
            ("https:///x", "host is missing"),
            ("https://user:pw@h/x", "credentials"),
            ("https://h/a b", "space"),
        ] {
            match Target::parse(url) {
                Err(Error::InvalidRequest(m)) => {
                    assert!(m.contains(why) && m.contains(url), "{url}: {m}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn sending_natively_says_where_it_works_and_checks_the_request_first() {
        match get("https://api.example.com/") {
            Err(Error::Transport(m)) => assert!(m.contains("inside Tessera"), "{m}"),
            other => panic!("{other:?}"),
        }
        match Request::new("GE T", "https://h/").send() {
            Err(Error::InvalidRequest(m)) => assert!(m.contains("GE T"), "{m}"),
            other => panic!("{other:?}"),
        }
        match get("not a url") {
            Err(Error::InvalidRequest(_)) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn responses_read_as_text_json_and_headers() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Rate {
            rate: f64,
        }
        let response = Response::new(
            200,
            vec![("content-type".to_owned(), "application/json".to_owned())],
            br#"{"rate": 1.5}"#.to_vec(),
        );
        assert!(response.ok());
        assert_eq!(response.header("Content-Type"), Some("application/json"));
        assert_eq!(response.json::<Rate>(), Ok(Rate { rate: 1.5 }));
        assert_eq!(response.text(), r#"{"rate": 1.5}"#);
        let bad = Response::new(500, Vec::new(), vec![0xff, b'x']);
        assert!(!bad.ok());
        assert_eq!(bad.text(), "\u{fffd}x");
        match bad.json::<Rate>() {
            Err(Error::Decode(_)) => {}
            other => panic!("{other:?}"),
        }
        let error = Error::Refused("HttpRequestDenied".to_owned()).to_string();
        assert!(error.contains("refused") && error.contains("HttpRequestDenied"));
        let request = Request::new("POST", "http://h/")
            .json(&serde_json::json!({"a": 1}))
            .expect("serializes");
        assert_eq!(request.body, br#"{"a":1}"#);
        assert_eq!(
            request.headers,
            vec![("content-type".to_owned(), b"application/json".to_vec())]
        );
    }
}
