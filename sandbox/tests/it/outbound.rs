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
    mut socket: tokio::net::TcpStream,
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
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    match path.as_str() {
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

fn request(url: &str, count: u64) -> String {
    serde_json::json!({
        "outputs": [],
        "inputs": [{"id": "url", "property": "value", "value": url}, {"id": "n", "property": "value", "value": count}],
        "state": [],
    })
    .to_string()
}

fn fetch(component: &Component, url: &str) -> Result<String, CallFailure> {
    fetch_as(component, "fetch", url, 1)
}

fn fetch_as(
    component: &Component,
    callback: &str,
    url: &str,
    count: u64,
) -> Result<String, CallFailure> {
    match component.call(callback, &request(url, count)) {
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
        fetch_as(&component, "fetch-many", &url, 4).expect("4 requests are within the cap"),
        "4 ok"
    );
    let (message, logs) = guest_error(fetch_as(&component, "fetch-many", &url, 6), &url);
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
        fetch_as(&component, "fetch-many", &url, 4).expect("a fresh count"),
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
