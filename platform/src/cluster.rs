//! Replicas in a cluster: the web replica's forwarding of `/git/` to a builder, the drain
//! flag that turns `/readyz` to 503 on SIGTERM, and the gate that then closes the listener
//! without resetting a connection a load balancer already opened.
//!
//! A web replica keeps no repository: every `/git/` request (smart HTTP, fetch and push)
//! goes as it came to `[cluster] builder_url`, both bodies streamed, so a load balancer
//! needs no special route. The builder authenticates and authorizes it as if the client
//! had reached it directly; this side only bounds what it carries (bodies, time, requests
//! at once).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use futures_util::{Stream, StreamExt};
use tokio::sync::Semaphore;

use crate::config::Config;

/// Whether this replica is shutting down: `/readyz` answers 503 from the moment SIGTERM
/// arrives, while requests are still served.
#[derive(Debug, Default)]
pub struct Drain(AtomicBool);

impl Drain {
    /// From now on, not ready.
    pub fn start(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether SIGTERM arrived.
    pub fn draining(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The listener's side of a drain. Closing a listening socket resets every connection the
/// kernel completed but the server had not accepted yet; a balancer that had already sent a
/// request on one (nginx, whose checks are passive, keeps sending until a connection fails)
/// sees it reset after sending, and does not retry a POST there: a 502. So the listener is
/// closed in two steps: first new connections are held off (a socket filter drops bare SYNs,
/// so the client's connect waits and retries its SYN), while handshakes already under way
/// complete and every connection the kernel holds is accepted and served; after
/// [`ListenerGate::SETTLE`] the listener closes, and the clients' retried SYNs are refused:
/// a connection that never opened, which every balancer retries on another replica.
pub struct ListenerGate {
    /// A second descriptor of the listening socket (the filter is the socket's, whichever
    /// descriptor sets it); dropped when the gate closes, before the server drops its own.
    socket: Option<socket2::Socket>,
}

/// Classic BPF, run on every packet reaching the listening socket (from the TCP header on):
/// drop segments with SYN set and ACK clear (new connections), keep the rest (the final ACK
/// of a handshake under way, and data).
const REFUSE_NEW_CONNECTIONS: [(u16, u8, u8, u32); 5] = [
    // ldb [13]: the TCP flags byte.
    (0x30, 0, 0, 13),
    // and #(SYN | ACK)
    (0x54, 0, 0, 0x12),
    // jeq #SYN: drop, else keep
    (0x15, 0, 1, 0x02),
    // ret #0: drop
    (0x06, 0, 0, 0),
    // ret #-1: keep the whole segment
    (0x06, 0, 0, u32::MAX),
];

impl ListenerGate {
    /// How long the listener keeps accepting after new connections are held off: longer
    /// than a handshake under way takes to complete and the server takes to accept what the
    /// kernel holds and to read the requests on it.
    pub const SETTLE: Duration = Duration::from_millis(500);

    /// The gate of `listener`; without a second descriptor (out of descriptors), a gate that
    /// only waits.
    pub fn of<L: std::os::fd::AsFd>(listener: &L) -> Self {
        let socket = socket2::SockRef::from(listener)
            .try_clone()
            .map_err(|error| tracing::warn!(%error, "the drain cannot hold off new connections"))
            .ok();
        Self { socket }
    }

    /// Hold off new connections; those the kernel completed are still accepted.
    pub fn refuse_new_connections(&self) -> std::io::Result<()> {
        let Some(socket) = &self.socket else {
            return Err(std::io::Error::other("no descriptor of the listener"));
        };
        let program = REFUSE_NEW_CONNECTIONS
            .map(|(code, jt, jf, k)| socket2::SockFilter::new(code, jt, jf, k));
        socket.attach_filter(&program)
    }

    /// Hold off new connections, let the server accept what the kernel holds for
    /// [`ListenerGate::SETTLE`], and give the listener back to be closed.
    pub async fn close(self) {
        if let Err(error) = self.refuse_new_connections() {
            tracing::warn!(%error, "the drain cannot hold off new connections");
        }
        tokio::time::sleep(Self::SETTLE).await;
        drop(self.socket);
    }
}

/// Request headers a git client's request carries to the builder; everything else (Host,
/// hop-by-hop headers, cookies) stays here.
const REQUEST_HEADERS: [HeaderName; 8] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::CONTENT_LENGTH,
    header::ACCEPT,
    header::ACCEPT_ENCODING,
    header::USER_AGENT,
    header::PRAGMA,
];

/// Hop-by-hop headers of the builder's answer, which are this connection's business.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
];

/// Why a forward failed before the builder answered.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The path has dot segments (`..`, `.`, encoded or not): resolved by the client, they
    /// would reach another route of the builder.
    #[error("repository not found")]
    NotGit,
    /// `forward_limit` requests are in flight already.
    #[error("too many git requests are being forwarded to the builder: try again shortly")]
    Busy,
    /// The builder did not answer (down, refused, timed out).
    #[error("the builder does not answer: try again shortly")]
    Unreachable(#[source] reqwest::Error),
}

/// The builder's answer: status, headers (hop-by-hop removed) and its streamed body,
/// cut off past the response bound.
pub struct Forwarded {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>,
}

/// Forwards `/git/` requests of a web replica to its builder.
pub struct Forwarder {
    client: reqwest::Client,
    builder_url: String,
    in_flight: Arc<Semaphore>,
    max_request_bytes: u64,
    max_response_bytes: u64,
}

impl Forwarder {
    /// The forwarder of a web replica; `None` for a replica that builds itself.
    pub fn for_config(config: &Config) -> anyhow::Result<Option<Forwarder>> {
        if config.cluster.role.builds() {
            return Ok(None);
        }
        let Some(builder_url) = config.cluster.builder_url.clone() else {
            anyhow::bail!("role web needs [cluster] builder_url");
        };
        // A push's answer streams its build log until the build ends: the whole exchange
        // may last as long as a build may, plus the time to receive and publish.
        let total = Duration::from_secs(config.builds.time_limit_secs.saturating_add(300));
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(total)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let max_push = config.builds.max_push_mb << 20;
        Ok(Some(Forwarder {
            client,
            builder_url,
            in_flight: Arc::new(Semaphore::new(config.cluster.forward_limit)),
            // The builder reads up to four times its push limit before it answers 413 (so
            // the client sees the answer); past that nothing is worth carrying.
            max_request_bytes: max_push.saturating_mul(4),
            // A clone is at most the tenant's repositories; an answer to a push is its log.
            max_response_bytes: (config.builds.repo_quota_mb << 20).saturating_add(max_push),
        }))
    }

    /// The builder this replica forwards to.
    pub fn builder_url(&self) -> &str {
        &self.builder_url
    }

    /// Send one request (`path_and_query` under `/git/`) to the builder, its body streamed
    /// and counted; the answer comes back as soon as its head arrives.
    pub async fn forward<S>(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: S,
    ) -> Result<Forwarded, ForwardError>
    where
        S: Stream<Item = Result<Bytes, axum::Error>> + Send + 'static,
    {
        if !plain_git_path(path_and_query) {
            return Err(ForwardError::NotGit);
        }
        let permit = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| ForwardError::Busy)?;
        let mut outgoing = HeaderMap::new();
        for name in REQUEST_HEADERS {
            for value in headers.get_all(&name) {
                outgoing.append(name.clone(), value.clone());
            }
        }
        if let Some(protocol) = headers.get("git-protocol") {
            outgoing.insert(HeaderName::from_static("git-protocol"), protocol.clone());
        }
        let limit = self.max_request_bytes;
        let mut sent: u64 = 0;
        let counted = body.map(move |chunk| {
            let chunk = chunk.map_err(std::io::Error::other)?;
            sent = sent.saturating_add(chunk.len() as u64);
            if sent > limit {
                return Err(std::io::Error::other(
                    "the push is larger than this replica forwards",
                ));
            }
            Ok(chunk)
        });
        let url = format!("{}{path_and_query}", self.builder_url);
        let bodiless = method == Method::GET || method == Method::HEAD;
        let mut request = self.client.request(method, url).headers(outgoing);
        if !bodiless {
            request = request.body(reqwest::Body::wrap_stream(counted));
        }
        let response = request.send().await.map_err(ForwardError::Unreachable)?;
        let status = response.status();
        let mut headers = response.headers().clone();
        for name in HOP_BY_HOP {
            headers.remove(name);
        }
        let limit = self.max_response_bytes;
        let mut received: u64 = 0;
        let body = response.bytes_stream().map(move |chunk| {
            // The slot is held until the answer is fully carried (or dropped).
            let _held = &permit;
            let chunk = chunk.map_err(std::io::Error::other)?;
            received = received.saturating_add(chunk.len() as u64);
            if received > limit {
                return Err(std::io::Error::other(
                    "the builder's answer is larger than this replica forwards",
                ));
            }
            Ok(chunk)
        });
        Ok(Forwarded {
            status,
            headers,
            body: Box::pin(body),
        })
    }
}

/// Whether `path_and_query` is under `/git/` with no dot segment: nothing the URL parser
/// would resolve to a path outside `/git/` on the builder.
fn plain_git_path(path_and_query: &str) -> bool {
    let path = path_and_query.split('?').next().unwrap_or_default();
    let lower = path.to_ascii_lowercase();
    path.starts_with("/git/")
        && !lower.contains("%2e")
        && !lower.contains('\\')
        && path
            .split('/')
            .all(|segment| segment != "." && segment != "..")
}

#[cfg(test)]
mod tests {
    use super::{ListenerGate, plain_git_path};
    use std::io::{Read, Write};
    use std::time::Duration;

    /// The gate holds off a new connection (its connect does not complete), still hands the
    /// server a connection the kernel had completed (with the request it carries), and once
    /// closed the waiting client is refused, never reset after connecting.
    #[test]
    fn the_gate_holds_off_new_connections_and_keeps_completed_ones() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let mut early = std::net::TcpStream::connect(address).expect("completed by the kernel");
        early.write_all(b"ping").expect("send");
        let gate = ListenerGate::of(&listener);
        gate.refuse_new_connections().expect("filter attached");
        let late = std::net::TcpStream::connect_timeout(&address, Duration::from_millis(300));
        assert_eq!(
            late.as_ref().map_err(std::io::Error::kind).err(),
            Some(std::io::ErrorKind::TimedOut),
            "a new connection completed behind the gate: {late:?}"
        );
        let (mut accepted, _) = listener
            .accept()
            .expect("the completed connection is accepted");
        let mut ping = [0; 4];
        accepted.read_exact(&mut ping).expect("its request arrives");
        assert_eq!(&ping, b"ping");
        accepted.write_all(b"pong").expect("answer");
        let mut pong = [0; 4];
        early.read_exact(&mut pong).expect("the answer arrives");
        assert_eq!(&pong, b"pong");
        // A client waiting behind the gate: refused once the listener is closed (its SYN is
        // retried after about a second).
        let waiting = std::thread::spawn(move || {
            std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5))
                .map_err(|e| e.kind())
        });
        std::thread::sleep(Duration::from_millis(100));
        drop(gate);
        drop(listener);
        assert_eq!(
            waiting.join().expect("thread").err(),
            Some(std::io::ErrorKind::ConnectionRefused)
        );
    }

    #[test]
    fn only_plain_git_paths_are_forwarded() {
        assert!(plain_git_path(
            "/git/acme/sales.git/info/refs?service=git-receive-pack"
        ));
        assert!(plain_git_path("/git/acme/sales.git/git-upload-pack"));
        for escape in [
            "/git/acme/sales.git/../../../metrics",
            "/git/acme/./sales.git/info/refs",
            "/git/acme/sales.git/%2e%2e/%2E%2E/api/v1/tenants",
            "/git/acme/sales.git/..",
            "/git/a/b/..\\..\\metrics",
            "/api/v1/tenants",
        ] {
            assert!(!plain_git_path(escape), "{escape}");
        }
    }
}
