//! JSON logs and request ids, on a real `tessera serve` (`TESSERA_LOG_FORMAT=json`): every
//! line of its log is one JSON object; a request's id (the caller's well-formed
//! `X-Request-Id`, else a new one) is answered in the response and follows the callback into
//! the guest's own log lines (`host.log`, stdout, stderr: the app log, written on its own
//! thread) and into the lines logged while the request runs.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    guest_wasm, host_for, hostile_request, reaching_apps, spawn_listening, tessera_command,
};

const UPDATE: &str = "/apps/acme/probe/_dash-update-component";

fn log_objects(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("read the log")
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
        })
        .collect()
}

#[tokio::test]
async fn json_logs_carry_the_request_id_into_the_app_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let wasm = data.join("hostile.wasm");
    std::fs::write(&wasm, guest_wasm("guest_hostile.wasm")).expect("write");
    let deployed = tessera_command(data)
        .args([
            "deploy",
            "acme/probe",
            wasm.to_str().expect("utf-8"),
            "--visibility",
            "public",
        ])
        .output()
        .expect("deploy");
    assert!(deployed.status.success(), "{deployed:?}");

    let log_path = data.join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let (mut child, address) = spawn_listening(
        tessera_command(data)
            .env("RUST_LOG", "info")
            .env("TESSERA_LOG_FORMAT", "json")
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log)),
    );
    let client = reaching_apps(reqwest::Client::builder(), &address, &["acme"])
        .build()
        .expect("client");
    let post = |callback: &str, id: Option<&str>| {
        let mut request = client
            .post(format!("http://{}{UPDATE}", host_for(&address, UPDATE)))
            .header("content-type", "application/json")
            .body(hostile_request(callback));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    let answered = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .expect("an X-Request-Id on the answer")
            .to_owned()
    };

    // The caller's id is kept and answered.
    let logged = post("log", Some("lb-7f3a.42:x_1"))
        .await
        .expect("log callback");
    assert_eq!(logged.status(), 200);
    assert_eq!(answered(&logged), "lb-7f3a.42:x_1");
    // A malformed one (spaces, quotes: a forged log field) is replaced by a new id.
    let replaced = post("log", Some("x\" level=\"error"))
        .await
        .expect("log callback");
    let new_id = answered(&replaced);
    assert!(
        new_id.len() == 32 && new_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{new_id}"
    );
    // None given: one is made, different each time; errors carry one too.
    let failed = post("fail", None).await.expect("fail callback");
    assert_eq!(failed.status(), 500);
    let failed_id = answered(&failed);
    assert!(failed_id.len() == 32 && failed_id != new_id, "{failed_id}");
    let platform_page = client
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(answered(&platform_page).len(), 32);

    // The app log is written on its own thread: wait for the lines.
    let deadline = Instant::now() + Duration::from_secs(10);
    let objects = loop {
        let objects = log_objects(&log_path);
        let guest_lines = objects
            .iter()
            .filter(|o| o["target"] == "tessera::app_log" && o["message"] == "hello from stderr")
            .count();
        let failure = objects.iter().any(|o| o["message"] == "callback failed");
        if guest_lines == 2 && failure {
            break objects;
        }
        assert!(
            Instant::now() < deadline,
            "app log lines missing: {objects:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.kill().expect("stop");
    child.wait().expect("reap");

    for (id, calls) in [("lb-7f3a.42:x_1", 1), (new_id.as_str(), 1)] {
        for message in [
            "hello from host.log",
            "hello from stdout",
            "hello from stderr",
        ] {
            let lines: Vec<&Value> = objects
                .iter()
                .filter(|o| o["message"] == message && o["request_id"] == id)
                .collect();
            assert_eq!(
                lines.len(),
                calls,
                "{message} with request_id {id}: {objects:#?}"
            );
            assert_eq!(lines[0]["tenant"], "acme");
            assert_eq!(lines[0]["app"], "probe");
        }
    }
    // A line logged while the request runs carries the id in its field and in its span.
    let failure = objects
        .iter()
        .find(|o| o["message"] == "callback failed")
        .expect("the failure line");
    assert_eq!(failure["request_id"], failed_id.as_str(), "{failure}");
    let spans = failure["spans"].as_array().expect("spans");
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "request" && s["request_id"] == failed_id.as_str()),
        "{failure}"
    );
    // The forged text never became a field of its own.
    assert!(
        !objects.iter().any(|o| o["level"] == "error"),
        "{objects:#?}"
    );
}
