//! Two real `tessera serve` processes behind no load balancer, sharing one database and one
//! Redis: what one replica starts, the other can answer. This is the production shape
//! (several replicas, shared PostgreSQL/SQLite and Redis), with real processes and sockets:
//! background jobs and browser sessions cross from one process to the other.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::support::guest_wasm;

const REPORT: &str = "/apps/demo/report-builder/_dash-update-component";

/// The key both replica processes share (as every replica of a platform must): 32 bytes,
/// base64.
const SECRET_KEY: [u8; 32] = *b"tessera-replicas-test-shared-key";

/// The report builder's `endId` for page load `page`, as either replica signs it.
fn signed_end_id(page: &str) -> String {
    let secrets = platform::secretbox::SecretBox::from_key(&SECRET_KEY);
    platform::dash::background::sign_end_id(&secrets, "demo", "report-builder", page)
}

/// A running `tessera serve`, killed on drop.
struct Replica {
    child: Child,
    address: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_url() -> String {
    std::env::var("TESSERA_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!(
            "TESSERA_TEST_REDIS_URL is not set: run scripts/test.sh, which starts or finds Redis"
        )
    })
}

fn tessera(data_dir: &std::path::Path, database_url: &str) -> Command {
    let mut command = crate::support::tessera_command(data_dir);
    command
        .env("TESSERA_DATABASE_URL", database_url)
        .env("TESSERA_REDIS_URL", redis_url())
        .env("TESSERA_SECRET_KEY", STANDARD.encode(SECRET_KEY));
    command
}

fn start_replica(data_dir: &std::path::Path, database_url: &str) -> Replica {
    start_replica_keyed(data_dir, database_url, &STANDARD.encode(SECRET_KEY))
}

/// A replica with the secret key `key` (base64).
fn start_replica_keyed(data_dir: &std::path::Path, database_url: &str, key: &str) -> Replica {
    let (child, address) = crate::support::spawn_listening(
        tessera(data_dir, database_url)
            .env("TESSERA_SECRET_KEY", key)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    Replica { child, address }
}

/// One HTTP/1.1 request over a fresh connection with `headers` (each ending in `\r\n`);
/// returns the status and the body.
fn exchange(replica: &Replica, head: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(&replica.address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "{head} {path} HTTP/1.1\r\nHost: {}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        crate::support::host_for(&replica.address, path),
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// One JSON POST; the status and the body.
fn post(replica: &Replica, path: &str, body: &str) -> (u16, String) {
    exchange(
        replica,
        "POST",
        path,
        "Content-Type: application/json\r\n",
        body,
    )
}

fn build_body() -> String {
    json!({
        "output": "status.children",
        "outputs": {"id": "status", "property": "children"},
        "inputs": [{"id": "build", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["build.n_clicks"],
        "state": [{"id": "fail-at", "property": "value", "value": 0}]
    })
    .to_string()
}

fn poll_body() -> String {
    json!({
        "output": "status.children",
        "outputs": {"id": "status", "property": "children"},
        "inputs": [{"id": "build", "property": "n_clicks", "value": null}],
        "changedPropIds": ["build.n_clicks"],
        "state": [{"id": "fail-at", "property": "value", "value": null}]
    })
    .to_string()
}

#[test]
fn a_job_started_on_one_replica_process_finishes_and_cancels_through_the_other() {
    let shared = tempfile::tempdir().expect("tempdir");
    let database_url = format!("sqlite://{}", shared.path().join("tessera.db").display());
    let component = shared.path().join("report_builder.wasm");
    std::fs::write(&component, guest_wasm("report_builder.wasm")).expect("write component");
    let deployed = tessera(&shared.path().join("cli"), &database_url)
        .args(["deploy", "demo/report-builder"])
        .arg(&component)
        .args(["--visibility", "public"])
        .output()
        .expect("run tessera deploy");
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    // Started one after the other: the first creates the superadmin, the second finds it.
    let one = start_replica(&shared.path().join("one"), &database_url);
    let two = start_replica(&shared.path().join("two"), &database_url);
    let end_id = signed_end_id(&format!("replicas-{}", std::process::id()));

    let (status, started) = post(&one, &format!("{REPORT}?endId={end_id}"), &build_body());
    assert_eq!(status, 200, "{started}");
    let started: Value = serde_json::from_str(&started).expect("json");
    let job = started["job"].as_str().expect("job handle").to_owned();

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut progressed = false;
    let answer = loop {
        assert!(Instant::now() < deadline, "the job never finished");
        let (status, body) = post(
            &two,
            &format!("{REPORT}?endId={end_id}&cacheKey={job}&job={job}"),
            &poll_body(),
        );
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).expect("json");
        progressed |= body["progress"]["bar.value"].is_string();
        if body.get("response").is_some() {
            break body;
        }
        std::thread::sleep(Duration::from_millis(150));
    };
    assert!(progressed, "replica two relayed replica one's progress");
    assert_eq!(
        answer["response"]["status"]["children"],
        "Report 1 is ready: 12 sections."
    );

    // A second job on replica one, cancelled through replica two.
    let (_, started) = post(&one, &format!("{REPORT}?endId={end_id}"), &build_body());
    let started: Value = serde_json::from_str(&started).expect("json");
    let job = started["job"].as_str().expect("job handle").to_owned();
    std::thread::sleep(Duration::from_millis(500));
    let cancel = json!({
        "output": "cancel.id",
        "outputs": {"id": "cancel", "property": "id"},
        "inputs": [{"id": "cancel", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["cancel.n_clicks"]
    });
    let (status, body) = post(
        &two,
        &format!("{REPORT}?endId={end_id}&cancelJob={job}"),
        &cancel.to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let cancelled_at = Instant::now();
    loop {
        let (status, body) = post(
            &one,
            &format!("{REPORT}?endId={end_id}&cacheKey={job}&job={job}"),
            &poll_body(),
        );
        if status == 204 {
            break;
        }
        assert!(
            !body.contains("\"response\""),
            "a cancelled job answered: {body}"
        );
        assert!(
            cancelled_at.elapsed() < Duration::from_secs(3),
            "replica one did not stop the job within 3 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request over a fresh connection: status, `Set-Cookie` values, body.
fn request(
    replica: &Replica,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> (u16, Vec<String>, String) {
    let mut stream = TcpStream::connect(&replica.address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        crate::support::host_for(&replica.address, path)
    );
    if let Some(cookie) = cookie {
        head.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    let body = form.unwrap_or_default();
    if form.is_some() {
        head.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    write!(stream, "{head}\r\n{body}").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let cookies = head
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie").then(|| {
                value
                    .trim()
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
        })
        .collect();
    (status, cookies, body.to_owned())
}

fn csrf_in(html: &str) -> String {
    let after = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no CSRF field in {html}"));
    after.split('"').next().expect("value").to_owned()
}

#[test]
fn a_session_signed_in_on_one_replica_process_works_and_ends_on_the_other() {
    const PASSWORD: &str = "correct horse battery";
    let shared = tempfile::tempdir().expect("tempdir");
    let database_url = format!("sqlite://{}", shared.path().join("tessera.db").display());
    let mut created = tessera(&shared.path().join("cli"), &database_url)
        .args([
            "admin",
            "create-user",
            "bob@example.org",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tessera admin");
    writeln!(created.stdin.take().expect("stdin"), "{PASSWORD}").expect("password");
    let created = created.wait_with_output().expect("wait");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let one = start_replica(&shared.path().join("one"), &database_url);
    let two = start_replica(&shared.path().join("two"), &database_url);

    let (status, cookies, page) = request(&one, "GET", "/login", None, None);
    assert_eq!(status, 200);
    let anonymous = cookies.first().expect("a session cookie").clone();
    let form = format!(
        "csrf={}&email=bob%40example.org&password={}&next=%2Faccount%2Fpassword",
        csrf_in(&page),
        PASSWORD.replace(' ', "+")
    );
    let (status, cookies, body) = request(&one, "POST", "/login", Some(&anonymous), Some(&form));
    assert_eq!(status, 303, "{body}");
    let signed_in = cookies.first().expect("a rotated session cookie").clone();
    assert_ne!(signed_in, anonymous, "the id is rotated at sign-in");

    let (status, _, page) = request(&two, "GET", "/account/password", Some(&signed_in), None);
    assert_eq!(status, 200, "the session works on the other process");
    let (status, _, _) = request(
        &two,
        "POST",
        "/logout",
        Some(&signed_in),
        Some(&format!("csrf={}", csrf_in(&page))),
    );
    assert_eq!(status, 303);
    for replica in [&one, &two] {
        let (status, _, _) = request(replica, "GET", "/account/password", Some(&signed_in), None);
        assert_eq!(status, 303, "signed out on both processes");
    }
}

/// The memo test guest's `memo.children` request for `input` (memoized for 60 s).
fn memo_body(callback: &str, input: &str) -> String {
    json!({
        "output": format!("{callback}.children"),
        "outputs": {"id": callback, "property": "children"},
        "inputs": [{"id": "in", "property": "value", "value": input}],
        "changedPropIds": ["in.value"],
        "state": []
    })
    .to_string()
}

#[test]
fn a_memoized_answer_computed_by_one_replica_process_is_served_by_the_other() {
    use base64::Engine;
    const MEMO: &str = "/apps/demo/memo/_dash-update-component";
    let shared = tempfile::tempdir().expect("tempdir");
    let database_url = format!("sqlite://{}", shared.path().join("tessera.db").display());
    // Replicas share the secret key (as they must); a fresh one per run keeps this run's
    // cache namespace apart from earlier runs on the same Redis.
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let component = shared.path().join("guest_memo.wasm");
    std::fs::write(&component, guest_wasm("guest_memo.wasm")).expect("write component");
    let deployed = tessera(&shared.path().join("cli"), &database_url)
        .env("TESSERA_SECRET_KEY", &key)
        .args(["deploy", "demo/memo"])
        .arg(&component)
        .args(["--visibility", "public"])
        .output()
        .expect("run tessera deploy");
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    let start = |name: &str| start_replica_keyed(&shared.path().join(name), &database_url, &key);
    let one = start("one");
    let two = start("two");
    let answer = |replica: &Replica, callback: &str| {
        let (status, body) = post(replica, MEMO, &memo_body(callback, "across"));
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).expect("json");
        body["response"][callback]["children"]
            .as_str()
            .expect("an answer")
            .to_owned()
    };
    // The guest stamps each answer with the time it computed it.
    let computed = answer(&one, "memo");
    assert_eq!(
        answer(&two, "memo"),
        computed,
        "replica two served replica one's answer"
    );
    assert_ne!(
        answer(&one, "plain"),
        answer(&two, "plain"),
        "without memoization each run is its own"
    );
}

/// One GET with a bearer token; the status and the JSON body.
fn get_with_token(replica: &Replica, path: &str, token: &str) -> (u16, Value) {
    let (status, body) = exchange(
        replica,
        "GET",
        path,
        &format!("Authorization: Bearer {token}\r\n"),
        "",
    );
    // Chunked answers: the JSON object is between the first `{` and the last `}`.
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(start), Some(end)) => &body[start..=end],
        _ => "null",
    };
    (
        status,
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

#[test]
fn an_app_log_written_on_one_replica_process_is_followed_through_the_other() {
    const PROBE: &str = "/apps/acme/probe/_dash-update-component";
    const LOGS: &str = "/api/v1/tenants/acme/apps/probe/logs";
    let shared = tempfile::tempdir().expect("tempdir");
    let database_url = format!("sqlite://{}", shared.path().join("tessera.db").display());
    // A fresh key per run: this run's streams are apart from earlier runs' on this Redis.
    let key = STANDARD.encode(rand::random::<[u8; 32]>());
    let cli = shared.path().join("cli");
    let run = |args: &[&str]| {
        let output = tessera(&cli, &database_url)
            .env("TESSERA_SECRET_KEY", &key)
            .args(args)
            .output()
            .expect("run tessera");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let component = shared.path().join("guest_hostile.wasm");
    std::fs::write(&component, guest_wasm("guest_hostile.wasm")).expect("write component");
    run(&["admin", "create-user", "ada@example.org"]);
    run(&[
        "admin",
        "create-tenant",
        "acme",
        "--owner",
        "ada@example.org",
    ]);
    run(&[
        "deploy",
        "acme/probe",
        component.to_str().expect("utf-8"),
        "--visibility",
        "public",
    ]);
    let token = run(&[
        "admin",
        "token",
        "create",
        "ada@example.org",
        "--tenant",
        "acme",
    ]);
    let start = |name: &str| start_replica_keyed(&shared.path().join(name), &database_url, &key);
    let one = start("one");
    let two = start("two");
    let (status, before) = get_with_token(&two, LOGS, &token);
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["shared"], true, "{before}");
    let cursor = before["next"].as_str().expect("a cursor").to_owned();
    // The guest writes on replica one; replica two answers its lines (sent on their own
    // thread: wait for them a little).
    let (status, body) = post(&one, PROBE, &crate::support::hostile_request("log"));
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&one, PROBE, &crate::support::hostile_request("fail"));
    assert_eq!(status, 500, "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let (status, page) = get_with_token(&two, &format!("{LOGS}?after={cursor}"), &token);
        assert_eq!(status, 200, "{page}");
        let lines = page["lines"].as_array().expect("lines").clone();
        if lines.len() >= 4 || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let streams: Vec<&str> = lines.iter().filter_map(|l| l["stream"].as_str()).collect();
    assert!(
        streams.contains(&"stdout") && streams.contains(&"error"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("hello from stdout"))),
        "{lines:?}"
    );
    // The author's command line reads the same feed through replica two's API.
    let printed = run(&[
        "apps",
        "logs",
        "acme/probe",
        "--server",
        &format!("http://{}", two.address),
        "--token",
        &token,
    ]);
    assert!(
        printed.contains("hello from stdout") && printed.contains("callback fail.children failed"),
        "{printed}"
    );
    // A flood stays bounded: the app's rate admits a burst, its stream keeps about
    // SHARED_LINES (Redis trims whole nodes of 100 entries).
    let most = platform::applog::shared::SHARED_LINES + 100;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Each call keeps only its own log budget's worth: call until the stream is full.
        let (status, body) = post(&one, PROBE, &crate::support::hostile_request("chatty"));
        assert_eq!(status, 200, "{body}");
        let (status, page) = get_with_token(&two, &format!("{LOGS}?limit=500"), &token);
        assert_eq!(status, 200, "{page}");
        let kept = page["lines"].as_array().expect("lines").len();
        assert!(kept <= most, "the stream kept {kept} lines");
        if kept >= platform::applog::shared::SHARED_LINES {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the flood never reached the stream ({kept} lines)"
        );
    }
    // As many lines again as the stream keeps: still about SHARED_LINES, the newest ones.
    let (_, full) = get_with_token(&two, &format!("{LOGS}?limit=1"), &token);
    for _ in 0..15 {
        let (status, body) = post(&one, PROBE, &crate::support::hostile_request("chatty"));
        assert_eq!(status, 200, "{body}");
    }
    std::thread::sleep(Duration::from_millis(500));
    let (_, page) = get_with_token(&two, &format!("{LOGS}?limit=500"), &token);
    let kept = page["lines"].as_array().expect("lines").len();
    assert!(kept <= most, "the stream kept {kept} lines");
    assert_ne!(page["next"], full["next"], "newer lines came in");
    // A bad token is refused, and said so.
    let refused = tessera(&cli, &database_url)
        .args(["apps", "logs", "acme/probe", "--server"])
        .arg(format!("http://{}", two.address))
        .args(["--token", "tsr_nope_nope"])
        .output()
        .expect("run tessera");
    assert!(!refused.status.success());
}
