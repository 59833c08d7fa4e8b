//! Outbound HTTP through `wasi:http`: the guest `guest-http` fetches URLs from a real HTTP
//! server this test starts on the loopback interface. Only the operator's `allow_private`
//! lets a request reach it; everything else (off the allowlist, loopback and private
//! addresses, a name resolving to 127.0.0.1) is refused before any connection is made.
//! Nothing here leaves the machine.

use crate::support::{limits, test_config, variant};
use sandbox::{CallFailure, Component, Error, LoadOptions, OutboundPolicy, Sandbox};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn http_wasm() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| crate::support::guest("guest_http.wasm"))
}

/// A small HTTP/1.1 server on 127.0.0.1, on its own runtime thread. Paths:
/// `/hello` answers a short text; `/big` 1 MiB with a Content-Length; `/stream` 1 MiB
/// without one (the body ends when the connection closes); `/trickle` sends its headers
/// and then one byte every 200 ms, forever; `/silent` never answers.
struct TestServer {
    port: u16,
    requests: Arc<AtomicUsize>,
}

/// The server most tests share.
fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(start_server)
}

/// A server of its own, for a test that counts the requests reaching it.
fn start_server() -> TestServer {
    {
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("test server runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind the test server");
                tx.send(listener.local_addr().expect("address").port())
                    .expect("report the port");
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        continue;
                    };
                    let counted = counted.clone();
                    tokio::spawn(async move {
                        let _ = serve(socket, counted).await;
                    });
                }
            });
        });
        let port = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("test server starts");
        TestServer { port, requests }
    }
}

async fn serve(
    mut socket: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    counted: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buffer).await?;
        if n == 0 || head.len() > 16 << 10 {
            return Ok(());
        }
        head.extend_from_slice(&buffer[..n]);
    }
    counted.fetch_add(1, Ordering::SeqCst);
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head")
        + 4;
    let mut body = head.split_off(end);
    let head = String::from_utf8_lossy(&head);
    let header = |name: &str| {
        head.lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    match path.as_str() {
        "/echo" => {
            // The request's body (Content-Length, at most 64 KiB) and its test header back.
            let length: usize = header("content-length").map_or(0, |l| l.parse().unwrap_or(0));
            while body.len() < length.min(64 << 10) {
                let n = socket.read(&mut buffer).await?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&buffer[..n]);
            }
            let echo = header("x-tessera-test").unwrap_or_default();
            let response = format!(
                "HTTP/1.1 201 Created\r\ncontent-length: {}\r\nx-echo: {echo}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            socket.write_all(response.as_bytes()).await?;
            socket.write_all(&body).await?;
        }
        "/hello" => {
            let body = "hello from the test server";
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(response.as_bytes()).await?;
        }
        "/big" | "/stream" => {
            let body = vec![b'x'; 1 << 20];
            let head = if path == "/big" {
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                )
            } else {
                "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_string()
            };
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(&body).await?;
        }
        "/trickle" => {
            socket
                .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
                .await?;
            loop {
                socket.write_all(b"x").await?;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        "/silent" => {
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
        _ => {
            socket
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await?;
        }
    }
    socket.shutdown().await
}

fn policy(hosts: &[&str], allow_private: bool) -> OutboundPolicy {
    OutboundPolicy {
        allowed_hosts: OutboundPolicy::parse_hosts(hosts).expect("valid patterns"),
        allow_private,
        timeout: Duration::from_secs(2),
        max_response_bytes: 64 << 10,
        max_requests_per_call: 4,
        tls_roots: sandbox::TlsRoots::webpki(),
    }
}

fn load(sandbox: &Sandbox, outbound: OutboundPolicy) -> Component {
    sandbox
        .load(
            http_wasm(),
            LoadOptions {
                limits: limits(),
                outbound,
                ..LoadOptions::default()
            },
        )
        .expect("the http guest loads")
}

/// A request for the guest's callback `callback`: `fetch.children` and `kind.children` take
/// the URL, `many.children` the URL and a count.
fn request(callback: &str, url: &str, count: u64) -> String {
    let mut inputs = vec![serde_json::json!({"id": "url", "property": "value", "value": url})];
    if callback == "many.children" {
        inputs.push(serde_json::json!({"id": "n", "property": "value", "value": count}));
    }
    serde_json::json!({"outputs": [], "inputs": inputs, "state": []}).to_string()
}

fn fetch(component: &Component, url: &str) -> Result<String, CallFailure> {
    fetch_as(component, "fetch.children", url, 1)
}

fn fetch_as(
    component: &Component,
    callback: &str,
    url: &str,
    count: u64,
) -> Result<String, CallFailure> {
    match component.call(callback, &request(callback, url, count)) {
        Ok(output) => match output.outcome {
            sandbox::Outcome::Outputs(json) => {
                let values: Vec<String> = serde_json::from_str(&json).expect("a JSON array");
                Ok(values[0].clone())
            }
            other => panic!("unexpected outcome {other:?}"),
        },
        Err(failure) => Err(failure),
    }
}

/// Which `sdk::http::Error` case fetching `url` ended in, and its text (`kind.children`),
/// or `ok …` and the summary.
fn kind(component: &Component, url: &str) -> String {
    fetch_as(component, "kind.children", url, 1).expect("kind.children answers")
}

/// The guest's error text, for a call that must fail inside the guest.
fn guest_error(result: Result<String, CallFailure>, url: &str) -> (String, String) {
    match result {
        Ok(answer) => panic!("{url} was fetched ({answer}) but must be refused"),
        Err(CallFailure {
            error: Error::Callback { message },
            logs,
        }) => {
            let logs = logs
                .iter()
                .map(|l| l.message.clone())
                .collect::<Vec<_>>()
                .join("\n");
            (message, logs)
        }
        Err(other) => panic!(
            "{url}: expected the guest's error, got {} ({})",
            variant(&other.error),
            other.error
        ),
    }
}

#[test]
fn allowed_host_answers_when_the_operator_allows_private_addresses() {
    let server = server();
    let sandbox = Sandbox::new(test_config()).expect("sandbox");
    let base = format!("http://127.0.0.1:{}", server.port);
    let component = load(&sandbox, policy(&[&base], true));
    let answer = fetch(&component, &format!("{base}/hello")).expect("the fetch works");
    assert_eq!(answer, "200 26 hello from the test server");
}

#[test]
fn the_same_server_is_refused_when_private_addresses_are_not_allowed() {
    let server = &start_server();
    let sandbox = Sandbox::new(test_config()).expect("sandbox");
    let before = server.requests.load(Ordering::SeqCst);
    let port = server.port;
    // Each host is on the allowlist: the address check alone refuses it.
    for url in [
        format!("http://127.0.0.1:{port}/hello"),
        format!("http://localhost:{port}/hello"),
        format!("http://[::1]:{port}/hello"),
        format!("http://[::ffff:127.0.0.1]:{port}/hello"),
        format!("http://0.0.0.0:{port}/hello"),
        format!("http://10.0.0.1:{port}/hello"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[fd00:ec2::254]/latest/meta-data/".to_string(),
    ] {
        let (scheme_host, _) = url.rsplit_once('/').expect("a path");
        let origin = scheme_host
            .trim_end_matches("/latest/meta-data")
            .to_string();
        let component = load(&sandbox, policy(&[&origin], false));
        let (message, logs) = guest_error(fetch(&component, &url), &url);
        assert!(message.contains("HttpRequestDenied"), "{url}: {message}");
        assert!(
            logs.contains("refused") && logs.contains("private addresses are not allowed"),
            "{url}: the app's log names the rule: {logs}"
        );
        assert!(
            !logs.contains("/hello") && !logs.contains("meta-data"),
            "{url}: the log shows no path: {logs}"
        );
    }
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        before,
        "no refused request reached the server"
    );
}

#[test]
fn a_dns_name_resolving_to_loopback_is_refused_after_resolution() {
    let server = server();
    let sandbox = Sandbox::new(test_config()).expect("sandbox");
    // `localhost` is on the allowlist and resolves (through /etc/hosts) to 127.0.0.1 or
    // ::1: the check after DNS refuses it, naming the address.
    let origin = format!("http://localhost:{}", server.port);
    let component = load(&sandbox, policy(&[&origin], false));
    let (message, logs) = guest_error(fetch(&component, &format!("{origin}/hello")), &origin);
    assert!(message.contains("HttpRequestDenied"), "{message}");
    assert!(
        logs.contains("it resolves to 127.0.0.1") || logs.contains("it resolves to ::1"),
        "{logs}"
    );
}

#[test]
fn hosts_off_the_allowlist_are_refused() {
    let server = server();
    let sandbox = Sandbox::new(test_config()).expect("sandbox");
    let port = server.port;
    let component = load(
        &sandbox,
        policy(
            &[&format!("http://127.0.0.1:{port}"), "https://*.example.com"],
            true,
        ),
    );
    for url in [
        // Another port, another scheme, another host of the same machine.
        format!("http://127.0.0.1:{}/hello", port.wrapping_add(1).max(1)),
        format!("https://127.0.0.1:{port}/hello"),
        format!("http://localhost:{port}/hello"),
        "https://example.com/".to_string(),
        "http://api.example.com/".to_string(),
        "https://example.com.evil.test/".to_string(),
    ] {
        let (message, logs) = guest_error(fetch(&component, &url), &url);
        assert!(message.contains("HttpRequestDenied"), "{url}: {message}");
        assert!(
            logs.contains("not on the app's outbound allowlist"),
            "{url}: {logs}"
        );
    }
    // The default policy reaches nothing at all.
    let closed = load(&sandbox, OutboundPolicy::default());
    let url = format!("http://127.0.0.1:{port}/hello");
    let (message, _) = guest_error(fetch(&closed, &url), &url);
    assert!(message.contains("HttpRequestDenied"), "{message}");
}

#[test]
fn the_response_cap_fires() {
    let server = server();
    let sandbox = Sandbox::new(test_config()).expect("sandbox");
    let base = format!("http://127.0.0.1:{}", server.port);
    let component = load(&sandbox, policy(&[&base], true));
    // Announced by Content-Length: refused before the body is read.
    let url = format!("{base}/big");
    let (message, _) = guest_error(fetch(&component, &url), &url);
    assert!(message.contains("HttpResponseBodySize"), "{message}");
    // Not announced: cut while it streams.
    let url = format!("{base}/stream");
    let (message, _) = guest_error(fetch(&component, &url), &url);
    assert!(
        message.contains("body size exceeds limit") && !message.contains("1048576"),
        "{message}"
    );
}

#[test]
fn a_server_that_never_answers_times_out() {
    let server = server();
    let sandbox = Sandbox::new(test_config()).expect("sandbox");
    let base = format!("http://127.0.0.1:{}", server.port);
    let component = load(&sandbox, policy(&[&base], true));
    let started = Instant::now();
    let url = format!("{base}/silent");
    let (message, _) = guest_error(fetch(&component, &url), &url);
    assert!(message.contains("ConnectionReadTimeout"), "{message}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "the 2 s timeout fired after {took:?}"
    );
}

#[test]
fn waits_never_outlast_the_call_deadline() {
    let server = server();
    let sandbox = Sandbox::new(test_config()).expect("sandbox");
    let base = format!("http://127.0.0.1:{}", server.port);
    let outbound = OutboundPolicy {
        timeout: Duration::from_secs(60),
        ..policy(&[&base], true)
    };
    let component = sandbox
        .load(
            http_wasm(),
            LoadOptions {
                limits: sandbox::Limits {
                    deadline: Duration::from_secs(2),
                    ..limits()
                },
                outbound,
                ..LoadOptions::default()
            },
        )
        .expect("loads");
    // A silent server and one that trickles a byte every 200 ms (never idle long enough
    // for a between-bytes timeout): both end at the 2 s deadline, not after 60 s.
    for path in ["/silent", "/trickle"] {
        let started = Instant::now();
        let result = fetch(&component, &format!("{base}{path}"));
        let took = started.elapsed();
        assert!(result.is_err(), "{path} cannot succeed");
        assert!(
            took < Duration::from_secs(4),
            "{path}: the call took {took:?}, past its 2 s deadline"
        );
    }
}

#[test]
fn the_requests_per_call_cap_fires_and_resets_each_call() {
    let server = server();
    let sandbox = Sandbox::new(test_config()).expect("sandbox");
    let base = format!("http://127.0.0.1:{}", server.port);
    let component = load(&sandbox, policy(&[&base], true));
    let url = format!("{base}/hello");
    assert_eq!(
        fetch_as(&component, "many.children", &url, 4).expect("4 requests are within the cap"),
        "4 ok"
    );
    let (message, logs) = guest_error(fetch_as(&component, "many.children", &url, 6), &url);
    assert!(
        message.starts_with("after 4 ok: ") && message.contains("HttpRequestDenied"),
        "{message}"
    );
    assert!(
        logs.contains("over the cap of 4 requests per call"),
        "{logs}"
    );
    // The next call starts a fresh count (on the same warm instance).
    assert_eq!(
        fetch_as(&component, "many.children", &url, 4).expect("a fresh count"),
        "4 ok"
    );
}

#[test]
fn a_guest_waiting_for_a_response_leaves_the_core_to_others() {
    let server = server();
    // One core for everybody: a waiting guest that held it would block the other tenant.
    let sandbox = Sandbox::new(sandbox::SandboxConfig {
        cpu_slots: 1,
        ..test_config()
    })
    .expect("sandbox");
    let base = format!("http://127.0.0.1:{}", server.port);
    let waiting = load(&sandbox, policy(&[&base], true));
    let other = sandbox
        .load(
            crate::support::hostile_wasm(),
            LoadOptions {
                limits: limits(),
                owner: sandbox::Owner {
                    tenant: 2,
                    app: 2,
                    weight: sandbox::Owner::DEFAULT_WEIGHT,
                },
                ..LoadOptions::default()
            },
        )
        .expect("loads");
    let url = format!("{base}/silent");
    let waiter = std::thread::spawn(move || fetch(&waiting, &url));
    // Let the request start and block.
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    crate::support::assert_ok_call(&other);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1000),
        "the other tenant's call waited {took:?} behind an HTTP wait"
    );
    assert!(waiter.join().expect("joins").is_err());
}

#[test]
fn a_post_with_headers_and_a_json_body_round_trips() {
    let server = server();
    let sandbox = Sandbox::new(test_config()).expect("sandbox");
    let base = format!("http://127.0.0.1:{}", server.port);
    let component = load(&sandbox, policy(&[&base], true));
    let request = serde_json::json!({
        "outputs": [],
        "inputs": [
            {"id": "url", "property": "value", "value": format!("{base}/echo")},
            {"id": "payload", "property": "value", "value": {"sku": "A-1", "n": 3}},
        ],
        "state": [],
    })
    .to_string();
    let output = component
        .call("post.children", &request)
        .expect("the post works");
    let sandbox::Outcome::Outputs(json) = output.outcome else {
        panic!("unexpected outcome {:?}", output.outcome);
    };
    let values: Vec<String> = serde_json::from_str(&json).expect("a JSON array");
    // Status, the header the guest sent (echoed back), the body decoded by `.json()`.
    let (head, echoed) = values[0].split_once(" {").expect("status, header, JSON");
    assert_eq!(head, "201 sent by the guest");
    let echoed: serde_json::Value = serde_json::from_str(&format!("{{{echoed}")).expect("JSON");
    assert_eq!(echoed, serde_json::json!({"sku": "A-1", "n": 3}));
}

#[test]
fn failures_reach_the_author_as_the_sdk_error_cases() {
    let server = server();
    let sandbox = Sandbox::new(test_config()).expect("sandbox");
    let base = format!("http://127.0.0.1:{}", server.port);
    let component = load(&sandbox, policy(&[&base], true));
    let refused = kind(&component, "https://elsewhere.example.com/");
    assert!(
        refused.starts_with("refused http: refused by the platform's outbound policy")
            && refused.contains("HttpRequestDenied"),
        "{refused}"
    );
    for path in ["/big", "/stream"] {
        let answer = kind(&component, &format!("{base}{path}"));
        assert!(answer.starts_with("too-large "), "{path}: {answer}");
    }
    let answer = kind(&component, &format!("{base}/hello"));
    assert_eq!(answer, "ok 200 26 hello from the test server");
    let closed = load(&sandbox, OutboundPolicy::default());
    let answer = kind(&closed, &format!("{base}/hello"));
    assert!(answer.starts_with("refused "), "{answer}");
    let private = load(&sandbox, policy(&[&base], false));
    let answer = kind(&private, &format!("{base}/hello"));
    assert!(answer.starts_with("refused "), "{answer}");
}

/// A throwaway certificate authority made at test time, and server certificates it signs.
struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().expect("CA key");
        TestCa {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A TLS server configuration presenting a certificate for `names`, signed by this CA.
    fn server_config(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = rcgen::CertificateParams::new(names).expect("params");
        let key = rcgen::KeyPair::generate().expect("server key");
        let certificate = params.signed_by(&key, &self.issuer).expect("signed");
        let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![certificate.der().clone()], key_der)
        .expect("server certificate");
        Arc::new(config)
    }
}

/// An HTTPS server on 127.0.0.1 with `config` (the same paths as the HTTP one); its port
/// and the count of requests that got past the handshake.
fn start_tls_server(config: Arc<rustls::ServerConfig>) -> (u16, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("TLS server runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the TLS server");
            tx.send(listener.local_addr().expect("address").port())
                .expect("report the port");
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, counted) = (acceptor.clone(), counted.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(socket).await {
                        let _ = serve(tls, counted).await;
                    }
                });
            }
        });
    });
    let port = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("TLS server starts");
    (port, requests)
}

/// The policy of the HTTPS tests: `https://localhost:port` and `https://127.0.0.1:port`
/// listed, loopback allowed (the operator's switch), `roots` trusted.
fn tls_policy(port: u16, roots: sandbox::TlsRoots) -> OutboundPolicy {
    OutboundPolicy {
        tls_roots: roots,
        ..policy(
            &[
                &format!("https://localhost:{port}"),
                &format!("https://127.0.0.1:{port}"),
            ],
            true,
        )
    }
}

#[test]
fn https_works_with_a_trusted_ca_and_fails_clearly_otherwise() {
    let sandbox = Sandbox::new(test_config()).expect("sandbox");
    let ca = TestCa::new("Tessera test CA");
    let (port, requests) = start_tls_server(ca.server_config(&["localhost"]));
    let trusting = sandbox::TlsRoots::with_pem(ca.pem().as_bytes()).expect("the CA parses");

    // Trusted CA, the name the certificate is for: the GET works.
    let component = load(&sandbox, tls_policy(port, trusting.clone()));
    let answer = fetch(&component, &format!("https://localhost:{port}/hello"))
        .expect("HTTPS with the trusted CA works");
    assert_eq!(answer, "200 26 hello from the test server");
    assert_eq!(requests.load(Ordering::SeqCst), 1);

    // The same server reached by an address the certificate does not name.
    let url = format!("https://127.0.0.1:{port}/hello");
    let (message, logs) = guest_error(fetch(&component, &url), &url);
    assert!(
        message.contains("TLS failed") && message.contains("TlsCertificateError"),
        "{message}"
    );
    assert!(
        logs.contains("TLS") && logs.contains("not valid for name"),
        "the app's log names the cause: {logs}"
    );

    // The default roots (webpki) do not know the test CA.
    let webpki = load(&sandbox, tls_policy(port, sandbox::TlsRoots::webpki()));
    let url = format!("https://localhost:{port}/hello");
    let (message, logs) = guest_error(fetch(&webpki, &url), &url);
    assert!(message.contains("TlsCertificateError"), "{message}");
    assert!(logs.contains("UnknownIssuer"), "{logs}");

    // A server whose certificate another (untrusted) CA signed, for the right name.
    let stranger = TestCa::new("Some other CA");
    let (other_port, other_requests) = start_tls_server(stranger.server_config(&["localhost"]));
    let component = load(&sandbox, tls_policy(other_port, trusting));
    let url = format!("https://localhost:{other_port}/hello");
    let (message, logs) = guest_error(fetch(&component, &url), &url);
    assert!(message.contains("TlsCertificateError"), "{message}");
    assert!(logs.contains("UnknownIssuer"), "{logs}");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "no refused request was served"
    );
    assert_eq!(other_requests.load(Ordering::SeqCst), 0);
}

#[test]
fn a_ca_file_without_a_certificate_is_refused() {
    for (pem, why) in [
        ("", "no PEM CERTIFICATE block"),
        ("not a certificate at all", "no PEM CERTIFICATE block"),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "certificate 1",
        ),
    ] {
        let error = sandbox::TlsRoots::with_pem(pem.as_bytes()).expect_err(pem);
        assert!(error.0.contains(why), "{pem:?}: {error}");
    }
}

#[test]
fn only_a_component_that_sends_requests_imports_wasi_http() {
    // All built for the 0.2.0 world, which offers wasi:http: the SDK's hello (no HTTP),
    // the capable guest (its own bindings, no HTTP), the 0.1.0 guest; and the http guest.
    let sandbox = Sandbox::new(test_config()).expect("sandbox");
    for (file, sends) in [
        ("hello.wasm", false),
        ("guest_capable.wasm", false),
        ("guest_v0_1.wasm", false),
        ("guest_http.wasm", true),
    ] {
        let component = sandbox
            .load(
                &crate::support::guest(file),
                LoadOptions {
                    limits: limits(),
                    ..LoadOptions::default()
                },
            )
            .unwrap_or_else(|e| panic!("{file} loads with no outbound grant: {e}"));
        assert_eq!(component.sends_http(), sends, "{file}");
    }
}
