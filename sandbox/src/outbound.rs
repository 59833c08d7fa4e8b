//! Outbound HTTP: `wasi:http/outgoing-handler` for the hosts on an app's allowlist, and only
//! to public addresses.
//!
//! A request passes, in order: the allowlist ([`HostPattern`], Spin's
//! `allowed_outbound_hosts` syntax) on scheme, host and port; the per-call request cap; then
//! the host name is resolved here and the request is refused if *any* address it resolves
//! to is not public ([`forbidden_range`]) unless the operator allowed private addresses.
//! The connection goes to exactly the addresses that were checked (never resolved again, so
//! a DNS answer cannot change between the check and the connect), with TLS (rustls, the
//! webpki roots plus any the operator added ([`TlsRoots`]), SNI = the host name) for
//! `https`. Every wait ends by the call's deadline; the response body is cut at
//! [`OutboundPolicy::max_response_bytes`].
//!
//! Refusals are `ErrorCode::HttpRequestDenied` for the guest and a line in the app's log
//! naming the rule (the URL's scheme, host and port only: never its path or query, which
//! may carry a key).

use crate::capture::{Level, LogSink};
use crate::scheduler::Ticket;
use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::{Pin, pin};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::io::poll as async_poll;
use wasmtime_wasi::p2::bindings::sync::io::poll as sync_poll;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Most host patterns one app may list.
pub const MAX_ALLOWED_HOSTS: usize = 64;

/// What an app may reach over HTTP. The default reaches nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Where requests may go; empty refuses every request.
    pub allowed_hosts: Vec<HostPattern>,
    /// Let requests reach loopback, private, link-local and other non-public addresses
    /// (an operator's choice, for a private network; never an app's).
    pub allow_private: bool,
    /// Longest a request may take to connect, to send its first response byte, and
    /// between two response bytes; never past the call's deadline either.
    pub timeout: Duration,
    /// Largest response body; a longer one fails the read with `HttpResponseBodySize`.
    pub max_response_bytes: u64,
    /// Most requests one callback call may start.
    pub max_requests_per_call: u32,
    /// The certificate authorities `https` requests trust.
    pub tls_roots: TlsRoots,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        OutboundPolicy {
            allowed_hosts: Vec::new(),
            allow_private: false,
            timeout: Duration::from_secs(10),
            max_response_bytes: 4 << 20,
            max_requests_per_call: 16,
            tls_roots: TlsRoots::webpki(),
        }
    }
}

impl OutboundPolicy {
    /// Parses `patterns` (see [`HostPattern`]) into an allowlist, naming the first bad one.
    pub fn parse_hosts<S: AsRef<str>>(patterns: &[S]) -> Result<Vec<HostPattern>, PatternError> {
        if patterns.len() > MAX_ALLOWED_HOSTS {
            return Err(PatternError(format!(
                "{} outbound hosts listed, over the limit of {MAX_ALLOWED_HOSTS}",
                patterns.len()
            )));
        }
        patterns.iter().map(|p| p.as_ref().parse()).collect()
    }

    /// The first allowlist entry `scheme://host:port` matches, if any.
    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.allowed_hosts
            .iter()
            .any(|pattern| pattern.matches(scheme, host, port))
    }
}

/// A malformed allowlist entry, with a message saying what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternError(pub String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PatternError {}

/// One allowlist entry, in Spin's `allowed_outbound_hosts` syntax: `scheme://host[:port]`.
///
/// The scheme (`http` or `https`) is required. The host is a DNS name, an IPv4 address or
/// a bracketed IPv6 address; `*.example.com` matches any name *under* example.com (not
/// example.com itself), and the wildcard may only be the whole leftmost label. The port
/// defaults to the scheme's (80, 443); `:*` allows any port. Nothing may follow the port
/// but an optional `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    https: bool,
    host: HostMatch,
    /// `None` for any port.
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostMatch {
    /// This name or address exactly (lowercase, IPv6 without brackets).
    Exact(String),
    /// Any name ending in `.` + this suffix.
    Under(String),
}

impl FromStr for HostPattern {
    type Err = PatternError;

    fn from_str(text: &str) -> Result<HostPattern, PatternError> {
        let bad = |why: &str| PatternError(format!("outbound host `{text}`: {why}"));
        let text_trimmed = text.trim();
        let Some((scheme, rest)) = text_trimmed.split_once("://") else {
            return Err(bad("a scheme is required, as in https://api.example.com"));
        };
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(bad("the scheme must be http or https")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad(
                "only scheme, host and port are allowed (no path, query or user)",
            ));
        }
        let (host, port) = split_host_port(rest).map_err(|why| bad(&why))?;
        let port = match port {
            None => Some(if https { 443 } else { 80 }),
            Some("*") => None,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => Some(port),
                _ => return Err(bad("the port must be a number from 1 to 65535, or *")),
            },
        };
        let host = host.to_ascii_lowercase();
        let host = if let Some(suffix) = host.strip_prefix("*.") {
            check_dns_name(suffix).map_err(|why| bad(&why))?;
            if !suffix.contains('.') {
                return Err(bad(
                    "a wildcard must be followed by at least two labels (*.example.com)",
                ));
            }
            HostMatch::Under(suffix.to_string())
        } else if host.contains('*') {
            return Err(bad(
                "a wildcard may only be the whole leftmost label (*.example.com)",
            ));
        } else if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            let ip: Ipv6Addr = v6.parse().map_err(|_| bad("not an IPv6 address"))?;
            HostMatch::Exact(ip.to_string())
        } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
            HostMatch::Exact(ip.to_string())
        } else {
            check_dns_name(&host).map_err(|why| bad(&why))?;
            HostMatch::Exact(host)
        };
        Ok(HostPattern { https, host, port })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.https { "https://" } else { "http://" })?;
        match &self.host {
            HostMatch::Exact(host) if host.contains(':') => write!(f, "[{host}]")?,
            HostMatch::Exact(host) => f.write_str(host)?,
            HostMatch::Under(suffix) => write!(f, "*.{suffix}")?,
        }
        match self.port {
            None => f.write_str(":*"),
            Some(443) if self.https => Ok(()),
            Some(80) if !self.https => Ok(()),
            Some(port) => write!(f, ":{port}"),
        }
    }
}

impl HostPattern {
    /// Whether a request to `scheme://host:port` (host lowercase, IPv6 unbracketed) matches.
    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = if self.https {
            scheme == "https"
        } else {
            scheme == "http"
        };
        let host_ok = match &self.host {
            HostMatch::Exact(exact) => exact == host,
            HostMatch::Under(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        };
        scheme_ok && host_ok && self.port.is_none_or(|p| p == port)
    }
}

/// Splits `host[:port]` / `[v6][:port]`.
fn split_host_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if text.starts_with('[') {
        let end = text.find(']').ok_or("an IPv6 address needs a closing ]")?;
        let (host, rest) = text.split_at(end + 1);
        return match rest {
            "" => Ok((host, None)),
            _ => match rest.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err("unexpected text after the IPv6 address".to_string()),
            },
        };
    }
    match text.split_once(':') {
        Some((host, port)) if !port.contains(':') => Ok((host, Some(port))),
        Some(_) => Err("an IPv6 address must be in brackets".to_string()),
        None => Ok((text, None)),
    }
}

/// Checks a lowercase DNS name: labels of letters, digits and `-`, 1 to 63 bytes each.
fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the host is empty".to_string());
    }
    if name.len() > 253 {
        return Err("the host name is longer than 253 bytes".to_string());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(format!("`{label}` is not a valid host name label"));
        }
    }
    Ok(())
}

/// Why `ip` is not a public unicast address, or `None` if it is.
///
/// IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96,
/// 6to4) are judged by that address; Teredo and the local NAT64 prefix are refused whole.
pub fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let reason = match (a, b, c) {
        (0, _, _) => "unspecified (0.0.0.0/8)",
        (127, _, _) => "loopback (127.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (169, 254, _) => "link-local (169.254.0.0/16, cloud metadata)",
        (100, 64..=127, _) => "shared CGNAT (100.64.0.0/10)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (192, 88, 99) => "6to4 relay anycast (192.88.99.0/24)",
        (224..=239, _, _) => "multicast (224.0.0.0/4)",
        (240..=255, _, _) if ip == Ipv4Addr::BROADCAST => "broadcast",
        (240..=255, _, _) => "reserved (240.0.0.0/4)",
        _ => return None,
    };
    Some(reason)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded_v4 =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if ip.is_unspecified() {
        return Some("unspecified (::)");
    }
    if ip.is_loopback() {
        return Some("loopback (::1)");
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (the deprecated compatible form).
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return forbidden_v4(embedded_v4(s[6], s[7])).or(if s[5] == 0 {
            Some("IPv4-compatible (::/96, deprecated)")
        } else {
            None
        });
    }
    // NAT64 well-known prefix 64:ff9b::/96 reaches the embedded IPv4 address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(embedded_v4(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some("local-use NAT64 (64:ff9b:1::/48)");
    }
    // 6to4 2002:AABB:CCDD::/48 reaches AA.BB.CC.DD.
    if s[0] == 0x2002 {
        return forbidden_v4(embedded_v4(s[1], s[2]));
    }
    let reason = match s[0] {
        0x0100 if s[1..4] == [0, 0, 0] => "discard-only (100::/64)",
        0xfc00..=0xfdff => "unique local (fc00::/7, includes fd00:ec2::254 metadata)",
        0xfe80..=0xfebf => "link-local (fe80::/10)",
        0xfec0..=0xfeff => "site-local (fec0::/10, deprecated)",
        0xff00..=0xffff => "multicast (ff00::/8)",
        0x2001 if s[1] == 0x0db8 => "documentation (2001:db8::/32)",
        0x2001 if s[1] < 0x0200 => "IETF special purpose (2001::/23: Teredo, benchmarking, ORCHID)",
        0x3fff if s[1] < 0x1000 => "documentation (3fff::/20)",
        _ => return None,
    };
    Some(reason)
}

/// The certificate authorities an app's `https` requests trust: the webpki roots (Mozilla's
/// list, as wasmtime-wasi-http's own sender uses) and any the operator added
/// (`[outbound] ca_file`: a company's internal CA). Built once and shared by every app.
#[derive(Clone)]
pub struct TlsRoots {
    config: Arc<rustls::ClientConfig>,
    /// How many certificates the operator added, for `Debug`.
    added: usize,
}

impl TlsRoots {
    /// The webpki roots alone (the default).
    pub fn webpki() -> TlsRoots {
        static WEBPKI: OnceLock<TlsRoots> = OnceLock::new();
        WEBPKI
            .get_or_init(|| TlsRoots {
                config: client_config(webpki_store()),
                added: 0,
            })
            .clone()
    }

    /// The webpki roots and every certificate in `pem` (one or more `CERTIFICATE` blocks).
    ///
    /// # Errors
    ///
    /// When `pem` holds no certificate, a block that does not parse, or a certificate that
    /// cannot be a trust anchor; the message says which.
    pub fn with_pem(pem: &[u8]) -> Result<TlsRoots, InvalidCa> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut store = webpki_store();
        let mut added = 0;
        for (index, certificate) in CertificateDer::pem_slice_iter(pem).enumerate() {
            let certificate =
                certificate.map_err(|e| InvalidCa(format!("certificate {}: {e}", index + 1)))?;
            store
                .add(certificate)
                .map_err(|e| InvalidCa(format!("certificate {}: {e}", index + 1)))?;
            added += 1;
        }
        if added == 0 {
            return Err(InvalidCa("no PEM CERTIFICATE block found".to_string()));
        }
        Ok(TlsRoots {
            config: client_config(store),
            added,
        })
    }
}

impl PartialEq for TlsRoots {
    fn eq(&self, other: &TlsRoots) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for TlsRoots {}

impl fmt::Debug for TlsRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TlsRoots(webpki + {} added)", self.added)
    }
}

/// A CA file that cannot be trusted, with a message saying why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidCa(pub String);

impl fmt::Display for InvalidCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidCa {}

fn webpki_store() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    }
}

/// The rustls client configuration over `roots`, the ring provider named explicitly so
/// that no process-wide default is needed.
fn client_config(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("the ring provider supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// What the guest is told about a failed TLS handshake: a certificate that was not
/// accepted is `TLS-certificate-error`, anything else `TLS-protocol-error`. The cause
/// itself goes to the app's log.
fn tls_error(error: &std::io::Error) -> HttpError {
    let certificate = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)));
    if certificate {
        HttpError::TlsCertificateError
    } else {
        HttpError::TlsProtocolError
    }
}

/// The `wasi:http` hooks of one instance: the app's policy and the call in progress.
pub(crate) struct Outbound {
    policy: Arc<OutboundPolicy>,
    logs: LogSink,
    /// Requests started during the call in progress.
    requests: u32,
    /// The call's deadline: no wait of a request lasts past it.
    deadline: Option<Instant>,
}

impl Outbound {
    pub(crate) fn new(policy: Arc<OutboundPolicy>, logs: LogSink) -> Outbound {
        Outbound {
            policy,
            logs,
            requests: 0,
            deadline: None,
        }
    }

    /// Starts a new call: a fresh request count, its deadline.
    pub(crate) fn begin_call(&mut self, deadline: Instant) {
        self.requests = 0;
        self.deadline = Some(deadline);
    }

    fn deny(&self, what: &str, why: &str) -> HttpError {
        self.logs.host(
            Level::Warn,
            &format!("outbound request to {what} refused: {why}"),
        );
        HttpError::HttpRequestDenied
    }

    /// The synchronous half of a request: allowlist and request cap. Returns where to go.
    fn admit(&mut self, uri: &http::Uri) -> Result<Target, HttpError> {
        let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
        let Some(authority) = uri.authority() else {
            return Err(HttpError::HttpRequestUriInvalid);
        };
        let https = match scheme.as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(self.deny(&format!("{scheme}://…"), "only http and https")),
        };
        let host = authority.host().to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host).to_string();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .map_or(host.clone(), str::to_string);
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let shown = if host.contains(':') {
            format!("{scheme}://[{host}]:{port}")
        } else {
            format!("{scheme}://{host}:{port}")
        };
        if !self.policy.allows(&scheme, &host, port) {
            return Err(self.deny(&shown, "not on the app's outbound allowlist"));
        }
        if self.requests >= self.policy.max_requests_per_call {
            return Err(self.deny(
                &shown,
                &format!(
                    "over the cap of {} requests per call",
                    self.policy.max_requests_per_call
                ),
            ));
        }
        self.requests += 1;
        Ok(Target {
            https,
            host,
            port,
            shown,
        })
    }
}

/// What a request of a guest that is not a component (a Python app's `tessera.fetch`)
/// comes back with: the response's head and its whole body, read within the caps.
pub(crate) type Fetched = Result<(http::response::Parts, Bytes), HttpError>;

impl Outbound {
    /// A request of a guest that reaches HTTP through the host rather than `wasi:http`:
    /// admitted now (allowlist, the call's request cap), then sent and its body read by
    /// the returned future, with the same address checks, timeouts and body cap as a
    /// component's request. Run the future in wasmtime-wasi's runtime (`in_tokio`).
    pub(crate) fn fetch(
        &mut self,
        request: http::Request<WasiBody>,
    ) -> Result<impl Future<Output = Fetched> + Send + 'static, HttpError> {
        let target = self.admit(request.uri())?;
        let policy = self.policy.clone();
        let logs = self.logs.clone();
        let deadline = self
            .deadline
            .unwrap_or_else(|| Instant::now() + policy.timeout);
        Ok(async move {
            let timeouts = Timeouts {
                connect: policy.timeout,
                first_byte: policy.timeout,
                between_bytes: policy.timeout,
                deadline: tokio::time::Instant::from_std(deadline),
            };
            let (response, io) = send(request, target, &policy, &logs, timeouts).await?;
            // The connection is driven beside the body's reading, as wasi:http does.
            let driver = tokio::spawn(Box::into_pin(io));
            let (head, body) = response.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes());
            driver.abort();
            Ok((head, body?))
        })
    }
}

/// Where an admitted request goes.
struct Target {
    https: bool,
    host: String,
    port: u16,
    /// `scheme://host:port`, for log lines.
    shown: String,
}

/// What is left of a request once its response has arrived: driving the connection.
type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

/// A sent request: its response and the connection's future.
type Sent = Result<(http::Response<WasiBody>, IoFuture), HttpError>;

type SendFuture = Box<dyn Future<Output = Sent> + Send>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: IoFuture,
    ) -> SendFuture {
        drop(fut);
        let target = self.admit(request.uri());
        let policy = self.policy.clone();
        let logs = self.logs.clone();
        // Outside a call (never the case) a request gets the policy's timeout alone.
        let deadline = self
            .deadline
            .unwrap_or_else(|| Instant::now() + policy.timeout);
        Box::new(async move {
            let target = target?;
            let deadline = tokio::time::Instant::from_std(deadline);
            // The guest may ask for shorter timeouts, never longer ones.
            let pick =
                |asked: Option<Duration>| asked.map_or(policy.timeout, |a| a.min(policy.timeout));
            let timeouts = Timeouts {
                connect: pick(options.and_then(|o| o.connect_timeout)),
                first_byte: pick(options.and_then(|o| o.first_byte_timeout)),
                between_bytes: pick(options.and_then(|o| o.between_bytes_timeout)),
                deadline,
            };
            send(request, target, &policy, &logs, timeouts).await
        })
    }
}

#[derive(Clone, Copy)]
struct Timeouts {
    connect: Duration,
    first_byte: Duration,
    between_bytes: Duration,
    deadline: tokio::time::Instant,
}

impl Timeouts {
    /// `timeout`, but ending no later than the deadline.
    fn until(&self, timeout: Duration) -> tokio::time::Instant {
        (tokio::time::Instant::now() + timeout).min(self.deadline)
    }
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T> Stream for T where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin + 'static
{
}

/// Resolves, checks every address, connects to a checked one and sends the request:
/// wasmtime-wasi-http's `default_send_request`, with a pre-resolved address.
async fn send(
    mut request: http::Request<WasiBody>,
    target: Target,
    policy: &OutboundPolicy,
    logs: &LogSink,
    timeouts: Timeouts,
) -> Sent {
    let deny = |why: String| {
        logs.host(
            Level::Warn,
            &format!("outbound request to {} refused: {why}", target.shown),
        );
        HttpError::HttpRequestDenied
    };
    let addresses: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => {
            let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
            match tokio::time::timeout_at(timeouts.until(timeouts.connect), lookup).await {
                Err(_) => return Err(HttpError::DnsTimeout),
                Ok(Err(_)) => {
                    return Err(HttpError::DnsError {
                        rcode: Some("name not resolved".to_string()),
                        info_code: None,
                    });
                }
                // Bounded: a name with hundreds of addresses is refused rather than tried.
                Ok(Ok(found)) => found.take(32).collect(),
            }
        }
    };
    if addresses.is_empty() {
        return Err(HttpError::DestinationNotFound);
    }
    if !policy.allow_private {
        for address in &addresses {
            if let Some(range) = forbidden_range(address.ip()) {
                return Err(deny(format!(
                    "it resolves to {}, a {range} address (private addresses are not allowed)",
                    address.ip()
                )));
            }
        }
    }
    // Connect to the checked addresses, in order: the name is never resolved again.
    let connect_by = timeouts.until(timeouts.connect);
    let mut stream = None;
    let mut last_error = None;
    for address in &addresses {
        match tokio::time::timeout_at(connect_by, TcpStream::connect(address)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => last_error = Some(e),
            Err(_) => return Err(HttpError::ConnectionTimeout),
        }
    }
    let stream = match (stream, last_error) {
        (Some(stream), _) => stream,
        (None, Some(e)) => return Err(HttpError::Connect(e)),
        (None, None) => return Err(HttpError::ConnectionRefused),
    };
    let stream: Box<dyn Stream> = if target.https {
        let name = match target.host.parse::<IpAddr>() {
            Ok(ip) => rustls::pki_types::ServerName::from(ip),
            Err(_) => rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(HttpError::InvalidDnsNameError)?,
        };
        let connector = tokio_rustls::TlsConnector::from(policy.tls_roots.config.clone());
        match tokio::time::timeout_at(connect_by, connector.connect(name, stream)).await {
            Ok(Ok(tls)) => Box::new(tls),
            Ok(Err(e)) => {
                logs.host(
                    Level::Warn,
                    &format!("outbound request to {} failed: TLS: {e}", target.shown),
                );
                return Err(tls_error(&e));
            }
            Err(_) => return Err(HttpError::ConnectionTimeout),
        }
    } else {
        Box::new(stream)
    };
    let (mut sender, conn) = tokio::time::timeout_at(
        connect_by,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;

    // The request line carries only the path: scheme and authority are for proxies.
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(request.uri().path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;

    let first_byte_by = timeouts.until(timeouts.first_byte);
    let mut response = pin!(async {
        tokio::time::timeout_at(first_byte_by, sender.send_request(request))
            .await
            .map_err(|_| HttpError::ConnectionReadTimeout)?
            .map_err(HttpError::from)
    });
    let mut conn = Some(conn);
    // Wait for the response while driving the connection, as the default sender does.
    let response = std::future::poll_fn(|cx| match response.as_mut().poll(cx) {
        Poll::Ready(result) => Poll::Ready(result),
        Poll::Pending => {
            let Some(c) = conn.as_mut() else {
                return Poll::Pending;
            };
            let result = ready!(Pin::new(c).poll(cx));
            conn = None;
            match result {
                Ok(()) => response.as_mut().poll(cx),
                Err(e) => Poll::Ready(Err(HttpError::from(e))),
            }
        }
    })
    .await?;
    let cap = policy.max_response_bytes;
    if let Some(length) = http_body::Body::size_hint(response.body()).exact()
        && length > cap
    {
        return Err(HttpError::HttpResponseBodySize(Some(length)));
    }
    let deadline = timeouts.deadline;
    let response = response.map(|incoming| {
        BoundedBody {
            incoming,
            seen: 0,
            cap,
            between_bytes: timeouts.between_bytes,
            idle: Box::pin(tokio::time::sleep_until(
                timeouts.until(timeouts.between_bytes),
            )),
            deadline,
        }
        .boxed_unsync()
    });
    let io: IoFuture = Box::new(async move {
        let Some(conn) = conn else {
            return Ok(());
        };
        // The connection task ends with the call at the latest.
        match tokio::time::timeout_at(deadline, conn).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(HttpError::from(e)),
            Err(_) => Err(HttpError::HttpResponseTimeout),
        }
    });
    Ok((response, io))
}

/// A response body cut at the byte cap, the between-bytes timeout and the call's deadline.
struct BoundedBody {
    incoming: hyper::body::Incoming,
    seen: u64,
    cap: u64,
    between_bytes: Duration,
    /// When the wait for the next frame times out.
    idle: Pin<Box<tokio::time::Sleep>>,
    deadline: tokio::time::Instant,
}

impl Body for BoundedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.seen > this.cap {
                        return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(
                            this.seen,
                        )))));
                    }
                }
                let next = (tokio::time::Instant::now() + this.between_bytes).min(this.deadline);
                this.idle.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(HttpError::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(this.idle.as_mut().poll(cx));
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

/// [`HasData`] for `wasi:io/poll` waits that give the call's core up while they block.
pub(crate) struct YieldingPoll;

impl HasData for YieldingPoll {
    type Data<'a> = PollView<'a>;
}

/// What a yielding poll needs: the resource table and the call's claim on a core.
pub(crate) struct PollView<'a> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) cpu: Option<&'a Arc<Ticket>>,
    pub(crate) deadline: Option<Instant>,
}

impl PollView<'_> {
    /// Runs a wait: if it is not over at the first look, the call's core is given up until
    /// it is (a guest waiting for a response costs no CPU and must not keep another
    /// tenant's call from running), then taken back.
    fn wait<T>(
        cpu: Option<&Arc<Ticket>>,
        deadline: Option<Instant>,
        wait: impl Future<Output = T>,
    ) -> T {
        wasmtime_wasi::runtime::in_tokio(async {
            let mut wait = pin!(wait);
            let first = std::future::poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx))).await;
            if let Poll::Ready(done) = first {
                return done;
            }
            let ticket = cpu.zip(deadline);
            if let Some((ticket, _)) = ticket {
                ticket.release();
            }
            let done = wait.await;
            if let Some((ticket, deadline)) = ticket {
                // Refused only at the deadline or on cancellation, which the next epoch
                // check turns into the call's failure (as after a sleep).
                let _ = ticket.acquire(deadline);
            }
            done
        })
    }
}

impl sync_poll::Host for PollView<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        let (cpu, deadline) = (self.cpu, self.deadline);
        Self::wait(cpu, deadline, async_poll::Host::poll(self.table, pollables))
    }
}

impl sync_poll::HostPollable for PollView<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        sync_poll::HostPollable::ready(self.table, pollable)
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        let (cpu, deadline) = (self.cpu, self.deadline);
        Self::wait(
            cpu,
            deadline,
            async_poll::HostPollable::block(self.table, pollable),
        )
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        sync_poll::HostPollable::drop(self.table, pollable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> HostPattern {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn patterns_parse_in_spin_syntax() {
        let p = pattern("https://api.example.com");
        assert!(p.matches("https", "api.example.com", 443));
        assert!(!p.matches("http", "api.example.com", 80));
        assert!(!p.matches("https", "api.example.com", 8443));
        assert!(!p.matches("https", "evil.api.example.com", 443));
        assert!(!p.matches("https", "api.example.com.evil.net", 443));

        let p = pattern("https://*.example.com");
        assert!(p.matches("https", "a.example.com", 443));
        assert!(p.matches("https", "a.b.example.com", 443));
        assert!(!p.matches("https", "example.com", 443));
        assert!(!p.matches("https", "evilexample.com", 443));
        assert!(!p.matches("https", ".example.com", 443));

        let p = pattern("http://host:8080");
        assert!(p.matches("http", "host", 8080));
        assert!(!p.matches("http", "host", 80));

        let p = pattern("HTTP://Host.Example.COM:*/");
        assert!(p.matches("http", "host.example.com", 1));
        assert_eq!(p.to_string(), "http://host.example.com:*");

        let p = pattern("http://[::1]:9000");
        assert!(p.matches("http", "::1", 9000));
        assert_eq!(p.to_string(), "http://[::1]:9000");
        assert!(pattern("http://127.0.0.1:8080").matches("http", "127.0.0.1", 8080));
        assert_eq!(
            pattern("https://a.example.com:443").to_string(),
            "https://a.example.com"
        );
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        for (text, why) in [
            ("api.example.com", "scheme is required"),
            ("ftp://api.example.com", "http or https"),
            ("https://", "empty"),
            ("https://api.*.com", "leftmost"),
            ("https://a*.example.com", "leftmost"),
            ("https://*", "leftmost"),
            ("https://*.com", "two labels"),
            ("https://api.example.com/path", "no path"),
            ("https://api.example.com?q=1", "no path"),
            ("https://user@api.example.com", "no path"),
            ("https://api.example.com:0", "port"),
            ("https://api.example.com:99999", "port"),
            ("https://api.example.com:http", "port"),
            ("https://ex_ample.com", "label"),
            ("https://-bad.example.com", "label"),
            ("http://::1", "brackets"),
            ("http://[::1", "closing"),
            ("http://[not-v6]", "IPv6"),
        ] {
            let error = text.parse::<HostPattern>().expect_err(text).0;
            assert!(error.contains(why), "{text}: {error}");
            assert!(
                error.contains(text),
                "{text}: the message names it: {error}"
            );
        }
        let too_many: Vec<String> = (0..=MAX_ALLOWED_HOSTS)
            .map(|i| format!("https://h{i}.example.com"))
            .collect();
        assert!(OutboundPolicy::parse_hosts(&too_many).is_err());
    }

    #[test]
    fn non_public_addresses_are_classified() {
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::8.8.8.8",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "2001:2::1",
            "3fff::1",
            "100::1",
        ] {
            let ip: IpAddr = text.parse().expect(text);
            assert!(forbidden_range(ip).is_some(), "{text} must be refused");
        }
        for text in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "192.169.0.1",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            let ip: IpAddr = text.parse().expect(text);
            assert_eq!(forbidden_range(ip), None, "{text} is public");
        }
    }
}
