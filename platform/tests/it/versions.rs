//! Versions (issue 6): rollback through the API and the CLI, keeping the last N versions,
//! the refusal of a force-push of unrelated history, version details, and switches of the
//! live version under load on a real `tessera serve` process with the real `git` client.
//!
//! Two visibly different versions of one app come from one build: `hello.wasm` greets
//! "Hello, …!", and [`howdy`] is the same component with that literal changed to
//! "Howdy, …!" (same length, so nothing else in the binary moves). Both are real
//! components that the sandbox validates and runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use platform::admin;
use platform::ids::Slug;
use platform::store::Change;
use serde_json::{Value, json};

use crate::support::{Reply, TestApp, guest_wasm, tessera_command as tessera};

pub(crate) fn op() -> Change<'static> {
    use platform::clock::Clock;
    Change {
        actor: "test",
        remote_addr: None,
        at: platform::clock::SystemClock.now_millis(),
    }
}

pub(crate) fn slug(s: &str) -> Slug {
    Slug::parse(s).expect("slug")
}

/// `hello.wasm` with its greeting changed from "Hello, " to "Howdy, ".
fn howdy() -> Vec<u8> {
    let mut bytes = guest_wasm("hello.wasm");
    let (from, to) = (b"Hello, ", b"Howdy, ");
    let at: Vec<usize> = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == &from[..])
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "hello.wasm should hold its greeting once");
    bytes[at[0]..at[0] + to.len()].copy_from_slice(to);
    bytes
}

const UPDATE: &str = "/apps/acme/sales/_dash-update-component";

/// The body Dash's front end posts when the `name` field changes.
fn greet_body(name: &str) -> String {
    json!({
        "output": "greeting.children",
        "outputs": {"id": "greeting", "property": "children"},
        "inputs": [{"id": "name", "property": "value", "value": name}],
        "changedPropIds": ["name.value"]
    })
    .to_string()
}

/// The greeting in an update answer.
fn greeting(answer: &Value) -> String {
    answer["response"]["greeting"]["children"]
        .as_str()
        .unwrap_or_else(|| panic!("no greeting in {answer}"))
        .to_owned()
}

/// What `component.call` of a held version answers for the greeting.
fn call_greeting(live: &platform::runtime::LiveApp, name: &str) -> String {
    let request = json!({
        "outputs": [{"id": "greeting", "property": "children"}],
        "inputs": [{"id": "name", "property": "value", "value": name}],
        "changed_prop_ids": ["name.value"],
    });
    let output = live
        .component
        .call("greeting.children", &request.to_string())
        .expect("the held version answers");
    match output.outcome {
        sandbox::Outcome::Outputs(json) => {
            let values: Vec<String> = serde_json::from_str(&json).expect("outputs");
            values[0].clone()
        }
        other => panic!("unexpected outcome {other:?}"),
    }
}

async fn deploy_bytes(app: &TestApp, bytes: Vec<u8>) -> i64 {
    app.state
        .deployer()
        .deploy(&slug("acme"), &slug("sales"), bytes, "test", op().at, false)
        .await
        .expect("deploy")
        .number
}

async fn served(app: &TestApp) -> String {
    let reply = app.post_json(UPDATE, greet_body("x")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    greeting(&reply.json())
}

pub(crate) async fn api(
    app: &TestApp,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if !body.is_empty() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    app.request(request.body(Body::from(body.to_owned())).expect("request"))
        .await
}

/// Tenant `acme` with an admin (alice), an author who is no collaborator (bob) and a
/// viewer (victor); their tokens, in that order.
pub(crate) async fn people(app: &TestApp) -> [String; 3] {
    let store = &app.state.store;
    store
        .ensure_tenant(&slug("acme"), op().at)
        .await
        .expect("tenant");
    let mut tokens = Vec::new();
    for (email, role) in [
        ("alice@example.org", "admin"),
        ("bob@example.org", "author"),
        ("victor@example.org", "viewer"),
    ] {
        admin::create_user(store, email, None, false, &op())
            .await
            .expect("user");
        admin::grant(store, email, "acme", role, &op())
            .await
            .expect("grant");
        let token = admin::create_token(store, email, "acme", None, 1, &op())
            .await
            .expect("token");
        tokens.push(token.token);
    }
    tokens.try_into().expect("three tokens")
}

#[tokio::test]
async fn rollback_through_the_api_switches_the_served_version_and_is_audited() {
    let app = TestApp::new().await;
    let [alice, bob, victor] = people(&app).await;
    assert_eq!(deploy_bytes(&app, guest_wasm("hello.wasm")).await, 1);
    assert_eq!(deploy_bytes(&app, howdy()).await, 2);
    assert_eq!(served(&app).await, "Howdy, x!");
    // A callback that started on version 2 holds it (an `Arc` from the runtime).
    let held = app
        .state
        .runtime
        .live(&slug("acme"), &slug("sales"))
        .await
        .expect("live")
        .expect("an app");
    assert_eq!(held.version.number, 2);

    let rollback = "/api/v1/tenants/acme/apps/sales/rollback";
    let refused = api(&app, "POST", rollback, None, "{}").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    for token in [&bob, &victor] {
        let refused = api(&app, "POST", rollback, Some(token), "{}").await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
        assert_eq!(refused.error_code(), "forbidden");
    }
    for (body, status, code, says) in [
        (r#"{"version": 0}"#, 400, "validation_failed", "1 or more"),
        (r#"{"verson": 1}"#, 400, "validation_failed", "verson"),
        (r#"{"version": 7}"#, 404, "not_found", "never deployed"),
    ] {
        let reply = api(&app, "POST", rollback, Some(&alice), body).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {}", reply.text());
        assert_eq!(reply.error_code(), code, "{body}");
        assert!(reply.text().contains(says), "{body}: {}", reply.text());
    }
    assert_eq!(served(&app).await, "Howdy, x!", "refusals change nothing");

    // `{}`: back to the version before the live one.
    let done = api(&app, "POST", rollback, Some(&alice), "{}").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let body = done.json();
    assert_eq!(
        (body["number"].as_i64(), body["live"].as_bool()),
        (Some(1), Some(true))
    );
    // The callback in flight finishes on its version; new requests get the old one back
    // once the runtime's one-second cache has expired.
    assert_eq!(call_greeting(&held, "y"), "Howdy, y!");
    tokio::time::sleep(platform::runtime::Runtime::REFRESH + Duration::from_millis(100)).await;
    assert_eq!(served(&app).await, "Hello, x!");

    // There is nothing older than version 1; rolling "back" to 2 goes forward again.
    let none = api(&app, "POST", rollback, Some(&alice), "{}").await;
    assert_eq!(none.status, StatusCode::CONFLICT, "{}", none.text());
    assert!(none.text().contains("nothing older"), "{}", none.text());
    let forward = api(&app, "POST", rollback, Some(&alice), r#"{"version": 2}"#).await;
    assert_eq!(forward.status, StatusCode::OK, "{}", forward.text());
    let again = api(&app, "POST", rollback, Some(&alice), r#"{"version": 2}"#).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "the live version again is a no-op"
    );

    let versions = api(
        &app,
        "GET",
        "/api/v1/tenants/acme/apps/sales/versions",
        Some(&victor),
        "",
    )
    .await;
    let versions = versions.json();
    let live: Vec<i64> = versions
        .as_array()
        .expect("list")
        .iter()
        .filter(|v| v["live"] == json!(true))
        .map(|v| v["number"].as_i64().expect("number"))
        .collect();
    assert_eq!(live, [2]);

    let audit = api(
        &app,
        "GET",
        "/api/v1/tenants/acme/audit?action=app.rollback",
        Some(&alice),
        "",
    )
    .await;
    let entries = audit.json()["items"].as_array().expect("items").clone();
    let moves: Vec<(i64, i64)> = entries
        .iter()
        .map(|e| {
            assert!(
                e["actor"].as_str().expect("actor").starts_with("token:"),
                "{e}"
            );
            (
                e["detail"]["from"].as_i64().expect("from"),
                e["detail"]["to"].as_i64().expect("to"),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [(1, 2), (2, 1)],
        "one audit row per switch, none for no-ops"
    );
}

#[tokio::test]
async fn keep_versions_prunes_old_versions_even_one_a_callback_still_holds() {
    let app = TestApp::keeping_versions(2).await;
    let [alice, _, _] = people(&app).await;
    let hello = guest_wasm("hello.wasm");
    assert_eq!(deploy_bytes(&app, hello.clone()).await, 1);
    let held = app
        .state
        .runtime
        .live(&slug("acme"), &slug("sales"))
        .await
        .expect("live")
        .expect("an app");
    for expected in 2..=5 {
        let bytes = if expected % 2 == 0 {
            howdy()
        } else {
            hello.clone()
        };
        assert_eq!(deploy_bytes(&app, bytes).await, expected);
        let versions = api(
            &app,
            "GET",
            "/api/v1/tenants/acme/apps/sales/versions",
            Some(&alice),
            "",
        )
        .await;
        assert_eq!(
            versions.json().as_array().expect("list").len(),
            2,
            "after {expected}"
        );
    }
    // Version 1 is gone from the database, yet a callback that started on it finishes.
    assert_eq!(held.version.number, 1);
    assert_eq!(call_greeting(&held, "z"), "Hello, z!");

    let rollback = "/api/v1/tenants/acme/apps/sales/rollback";
    let pruned = api(&app, "POST", rollback, Some(&alice), r#"{"version": 1}"#).await;
    assert_eq!(pruned.status, StatusCode::NOT_FOUND, "{}", pruned.text());
    let text = pruned.text();
    assert!(
        text.contains("version 1 of acme/sales is not kept")
            && text.contains("pruned")
            && text.contains("4 to 5"),
        "{text}"
    );
    let back = api(&app, "POST", rollback, Some(&alice), "{}").await;
    assert_eq!(back.json()["number"], json!(4));
    tokio::time::sleep(platform::runtime::Runtime::REFRESH + Duration::from_millis(100)).await;
    assert_eq!(served(&app).await, "Howdy, x!");
    // The next publish prunes version 4 although it was live a moment ago: only the new,
    // live version and the newest before it are kept.
    assert_eq!(deploy_bytes(&app, hello.clone()).await, 6);
    let versions = api(
        &app,
        "GET",
        "/api/v1/tenants/acme/apps/sales/versions",
        Some(&alice),
        "",
    )
    .await;
    let numbers: Vec<i64> = versions
        .json()
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v["number"].as_i64().expect("number"))
        .collect();
    assert_eq!(numbers, [6, 5]);
}

#[tokio::test]
async fn the_compiled_cache_forgets_components_that_no_kept_version_uses() {
    use sha2::Digest;
    let app = TestApp::keeping_versions(1)
        .await
        .with_own_component_cache()
        .await;
    let cache = app.state.config.cache_dir();
    let cached = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&cache)
            .expect("cache dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".cwasm"))
            .map(|name| name[..64].to_owned())
            .collect();
        names.sort();
        names
    };
    let hash = |bytes: &[u8]| hex::encode(sha2::Sha256::digest(bytes));
    let (hello, howdy) = (guest_wasm("hello.wasm"), howdy());
    assert_eq!(deploy_bytes(&app, hello.clone()).await, 1);
    assert_eq!(deploy_bytes(&app, howdy.clone()).await, 2);
    let mut both = vec![hash(&hello), hash(&howdy)];
    both.sort();
    assert_eq!(
        cached(),
        both,
        "each deploy compiled and cached its component"
    );

    // Fresh files stay under the server's minimum age, even unwanted ones.
    let runtime = &app.state.runtime;
    let report = runtime
        .prune_compiled_cache(platform::runtime::Runtime::CACHE_MIN_AGE)
        .await
        .expect("prune");
    assert_eq!(report.removed_files, 0);
    // Version 1 was pruned with the publish of version 2: its artifact goes now.
    let report = runtime
        .prune_compiled_cache(Duration::ZERO)
        .await
        .expect("prune");
    assert_eq!(
        (report.removed_files, report.kept_artifacts),
        (2, 1),
        "{report:?}"
    );
    assert_eq!(cached(), [hash(&howdy)]);
    assert_eq!(served(&app).await, "Howdy, x!");
}

// ---------------------------------------------------------------------------------------
// The real `git` client.

/// `git` in `dir` with a private HOME and no system configuration, never prompting.
async fn git(home: &Path, dir: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Alice")
        .env("GIT_AUTHOR_EMAIL", "alice@example.org")
        .env("GIT_COMMITTER_NAME", "Alice")
        .env("GIT_COMMITTER_EMAIL", "alice@example.org")
        .output()
        .await
        .expect("git runs")
}

async fn git_ok(home: &Path, dir: &Path, args: &[&str]) -> String {
    let output = git(home, dir, args).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "git {args:?} failed: {text}");
    text
}

/// A work tree with `tessera.toml` and `app.wasm`, one commit on `main`.
struct Repo {
    _scratch: tempfile::TempDir,
    home: PathBuf,
    work: PathBuf,
}

impl Repo {
    async fn new(component: &[u8]) -> Repo {
        let scratch = tempfile::tempdir().expect("tempdir");
        let home = scratch.path().join("home");
        let work = scratch.path().join("work");
        std::fs::create_dir_all(&home).expect("home");
        std::fs::create_dir_all(&work).expect("work");
        git_ok(
            &home,
            &work,
            &["init", "--quiet", "--initial-branch", "main"],
        )
        .await;
        std::fs::write(
            work.join("tessera.toml"),
            "kind = \"wasm\"\ncomponent = \"app.wasm\"\nvisibility = \"public\"\n",
        )
        .expect("manifest");
        std::fs::write(work.join("app.wasm"), component).expect("component");
        git_ok(&home, &work, &["add", "."]).await;
        git_ok(&home, &work, &["commit", "--quiet", "-m", "first"]).await;
        Repo {
            _scratch: scratch,
            home,
            work,
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        git_ok(&self.home, &self.work, args).await
    }

    async fn run(&self, args: &[&str]) -> Output {
        git(&self.home, &self.work, args).await
    }

    async fn commit(&self, component: &[u8], message: &str) {
        std::fs::write(self.work.join("app.wasm"), component).expect("component");
        self.ok(&["commit", "--quiet", "-am", message]).await;
    }

    async fn head(&self) -> String {
        self.ok(&["rev-parse", "HEAD"]).await.trim().to_owned()
    }
}

async fn serve_in_process(app: &TestApp) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let router = platform::http::router(app.state.clone());
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_force_push_of_unrelated_history_is_refused_and_an_amend_is_not() {
    let app = TestApp::new().await;
    let [alice, _, _] = people(&app).await;
    let address = serve_in_process(&app).await;
    let url = format!("http://git:{alice}@{address}/git/acme/sales.git");
    let live = || async {
        app.state
            .store
            .live_version(&slug("acme"), &slug("sales"))
            .await
            .expect("query")
            .map(|v| v.number)
    };

    let repo = Repo::new(&guest_wasm("hello.wasm")).await;
    std::fs::write(repo.work.join("README"), "sales\n").expect("readme");
    repo.ok(&["add", "README"]).await;
    repo.ok(&["commit", "--quiet", "-m", "readme"]).await;
    let log = repo.ok(&["push", &url, "main"]).await;
    assert!(log.contains("deployed version 1 of acme/sales"), "{log}");
    let first = repo.head().await;

    // Related history rewritten: the last commit amended, force-pushed. Accepted. (Amending
    // a repository's only commit would make a new root, which is unrelated history.)
    std::fs::write(repo.work.join("app.wasm"), howdy()).expect("component");
    repo.ok(&["commit", "--quiet", "--amend", "-am", "howdy instead"])
        .await;
    let amended = repo.head().await;
    let log = repo.ok(&["push", "--force", &url, "main"]).await;
    assert!(log.contains("deployed version 2 of acme/sales"), "{log}");
    assert!(log.contains("forced update"), "{log}");
    assert_eq!(live().await, Some(2));

    // A fresh history with no common ancestor: refused, and the ref and live version stay.
    repo.ok(&["checkout", "--quiet", "--orphan", "unrelated"])
        .await;
    repo.ok(&["commit", "--quiet", "-m", "a different project"])
        .await;
    let refused = repo.run(&["push", "--force", &url, "unrelated:main"]).await;
    let log = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success(), "{log}");
    assert!(
        log.contains("remote: tessera:")
            && log.contains("shares no history with the deployed main"),
        "{log}"
    );
    assert!(log.contains("live version is unchanged"), "{log}");
    assert_eq!(live().await, Some(2));
    let remote = repo.ok(&["ls-remote", &url, "refs/heads/main"]).await;
    assert!(remote.starts_with(&amended), "{remote}");

    // Version details: commit, author (the pusher), time, build log, content hash.
    let versions = api(
        &app,
        "GET",
        "/api/v1/tenants/acme/apps/sales/versions",
        Some(&alice),
        "",
    )
    .await;
    let versions = versions.json();
    let newest = &versions[0];
    assert_eq!(newest["number"], json!(2));
    assert_eq!(newest["commit"], json!(amended));
    assert_eq!(versions[1]["commit"], json!(first));
    let author = newest["author"].as_str().expect("author");
    assert!(author.starts_with("alice@example.org (token:"), "{author}");
    let build_log = newest["build_log"].as_str().expect("build log");
    assert!(
        build_log.contains(&format!("tessera: building {}", &amended[..12]))
            && build_log.contains("tessera: deployed version 2 of acme/sales"),
        "{build_log}"
    );
    use sha2::Digest;
    assert_eq!(
        newest["sha256"],
        json!(hex::encode(sha2::Sha256::digest(howdy())))
    );
    assert!(newest["created_at"].as_i64().expect("time") > 0);
}

// ---------------------------------------------------------------------------------------
// A real `tessera serve` process under load.

/// A running `tessera serve`, killed on drop.
struct Server {
    child: std::process::Child,
    address: String,
    data_dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let (child, address) = crate::support::spawn_listening(
        tessera(data_dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    Server {
        child,
        address,
        data_dir,
    }
}

/// One answer of the load generator.
struct Sample {
    /// When the request was sent, since the run started.
    sent: Duration,
    took: Duration,
    /// The HTTP status, or the transport error.
    status: Result<u16, String>,
    greeting: Option<String>,
}

/// `workers` tasks posting the greeting callback back to back until `stop` is raised.
fn load(
    address: &str,
    workers: usize,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Sample>>> {
    let client = crate::support::reaching_apps(reqwest::Client::builder(), address, &["acme"])
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    (0..workers)
        .map(|worker| {
            let (client, stop) = (client.clone(), stop.clone());
            let url = format!(
                "http://{}{UPDATE}",
                crate::support::host_for(address, UPDATE)
            );
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let sent = start.elapsed();
                    let began = Instant::now();
                    let result = client
                        .post(&url)
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(greet_body(&format!("w{worker}-{n}")))
                        .send()
                        .await;
                    let (status, greeting) = match result {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let text = response.text().await.unwrap_or_default();
                            let greeting =
                                serde_json::from_str::<Value>(&text).ok().and_then(|v| {
                                    v["response"]["greeting"]["children"]
                                        .as_str()
                                        .map(str::to_owned)
                                });
                            (Ok(status), greeting)
                        }
                        Err(e) => (Err(e.to_string()), None),
                    };
                    samples.push(Sample {
                        sent,
                        took: began.elapsed(),
                        status,
                        greeting,
                    });
                }
                samples
            })
        })
        .collect()
}

/// Check a load run around a switch made between `switch_started` and `switch_done`:
/// every request answered 200 with a greeting, from `before` until the switch began and
/// from `after` once the runtime's refresh (plus a margin for loading the component) has
/// passed. Returns a summary line with the figures.
fn check_switch(
    samples: &[Sample],
    switch_started: Duration,
    switch_done: Duration,
    before: &str,
    after: &str,
) -> String {
    let failures: Vec<String> = samples
        .iter()
        .filter(|s| s.status != Ok(200) || s.greeting.is_none())
        .map(|s| format!("at {:?}: {:?} {:?}", s.sent, s.status, s.greeting))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed:\n{}",
        failures.len(),
        samples.len(),
        failures.join("\n")
    );
    let settled = switch_done + Duration::from_secs(3);
    for s in samples {
        let greeting = s.greeting.as_deref().unwrap_or_default();
        if s.sent + s.took < switch_started {
            assert!(
                greeting.starts_with(before),
                "before the switch: {greeting}"
            );
        } else if s.sent > settled {
            assert!(
                greeting.starts_with(after),
                "at {:?}, after the switch: {greeting}",
                s.sent
            );
        } else {
            assert!(
                greeting.starts_with(before) || greeting.starts_with(after),
                "{greeting}"
            );
        }
    }
    let after_settled = samples.iter().filter(|s| s.sent > settled).count();
    assert!(
        after_settled > 10,
        "too few requests after the switch: {after_settled}"
    );
    let last_old = samples
        .iter()
        .filter(|s| s.greeting.as_deref().is_some_and(|g| g.starts_with(before)))
        .map(|s| s.sent + s.took)
        .max()
        .unwrap_or_default();
    let mut took: Vec<Duration> = samples.iter().map(|s| s.took).collect();
    took.sort();
    let pct = |p: usize| took[(took.len() * p / 100).min(took.len() - 1)];
    format!(
        "{} requests, 0 failed; switch took {:?}, last answer of the old version {:?} after it \
         ended; latency p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        switch_done - switch_started,
        last_old.saturating_sub(switch_done),
        pct(50),
        pct(99),
        took.last().copied().unwrap_or_default()
    )
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<Vec<Sample>>>) -> Vec<Sample> {
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.expect("load task"));
    }
    samples.sort_by_key(|s| s.sent);
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_and_rollbacks_under_load_fail_no_request() {
    let server = start_server();
    let url = format!(
        "sqlite://{}",
        server.data_dir.path().join("tessera.db").display()
    );
    let store = platform::store::Store::connect(&url).await.expect("store");
    store
        .ensure_tenant(&slug("acme"), op().at)
        .await
        .expect("tenant");
    admin::create_user(&store, "alice@example.org", None, false, &op())
        .await
        .expect("user");
    admin::grant(&store, "alice@example.org", "acme", "admin", &op())
        .await
        .expect("grant");
    let token = admin::create_token(&store, "alice@example.org", "acme", None, 1, &op())
        .await
        .expect("token")
        .token;
    let git_url = format!("http://git:{token}@{}/git/acme/sales.git", server.address);

    let repo = Repo::new(&guest_wasm("hello.wasm")).await;
    let log = repo.ok(&["push", &git_url, "main"]).await;
    assert!(log.contains("deployed version 1 of acme/sales"), "{log}");

    // A push of a new version while six clients keep calling the callback.
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&server.address, 6, start, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    repo.commit(&howdy(), "howdy").await;
    let switch_started = start.elapsed();
    let log = repo.ok(&["push", &git_url, "main"]).await;
    let switch_done = start.elapsed();
    assert!(log.contains("deployed version 2 of acme/sales"), "{log}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let samples = collect(tasks).await;
    let summary = check_switch(&samples, switch_started, switch_done, "Hello", "Howdy");
    eprintln!("zero-downtime push (hello → howdy): {summary}");

    // A rollback through the API under the same load.
    let client = reqwest::Client::new();
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&server.address, 6, start, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let switch_started = start.elapsed();
    let reply = client
        .post(format!(
            "http://{}/api/v1/tenants/acme/apps/sales/rollback",
            server.address
        ))
        .bearer_auth(&token)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{}")
        .send()
        .await
        .expect("rollback request");
    let switch_done = start.elapsed();
    let status = reply.status();
    let body = reply.text().await.expect("body");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"number\":1"), "{body}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let samples = collect(tasks).await;
    let summary = check_switch(&samples, switch_started, switch_done, "Howdy", "Hello");
    eprintln!("zero-downtime rollback (howdy → hello): {summary}");

    // The CLI shows the versions with their details and rolls forward again.
    let versions = tessera(server.data_dir.path())
        .args(["apps", "versions", "acme/sales"])
        .output()
        .expect("run tessera");
    let text = String::from_utf8_lossy(&versions.stdout);
    assert!(
        versions.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&versions.stderr)
    );
    let head = repo.head().await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[1].trim_start().starts_with("2 ") && lines[1].contains(&head[..12]),
        "{text}"
    );
    assert!(lines[1].contains("alice@example.org"), "{text}");
    assert!(lines[2].trim_start().starts_with("1  *"), "{text}");
    store.close().await;
}

#[test]
fn the_cli_rolls_back_and_keeps_the_configured_number_of_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let output = tessera(dir.path())
            .env("TESSERA_KEEP_VERSIONS", "2")
            .args(args)
            .output()
            .expect("run tessera");
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    let hello = dir.path().join("hello.wasm");
    let howdy_path = dir.path().join("howdy.wasm");
    std::fs::write(&hello, guest_wasm("hello.wasm")).expect("write");
    std::fs::write(&howdy_path, howdy()).expect("write");
    for (n, file) in [(1, &hello), (2, &howdy_path), (3, &hello)] {
        let (ok, text) = run(&["deploy", "acme/sales", file.to_str().expect("utf-8")]);
        assert!(ok && text.contains(&format!("version {n}")), "{text}");
    }
    let (ok, text) = run(&["apps", "versions", "acme/sales"]);
    assert!(ok, "{text}");
    let numbers: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(numbers, ["3", "2"], "{text}");

    let (ok, text) = run(&["apps", "rollback", "acme/sales", "--to", "1"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("version 1 of acme/sales is not kept")
            && text.contains("pruned")
            && text.contains("live version is unchanged"),
        "{text}"
    );
    let (ok, text) = run(&["apps", "rollback", "acme/sales"]);
    assert!(ok && text.contains("version 2 is live (was 3)"), "{text}");
    let (ok, text) = run(&["apps", "versions", "acme/sales"]);
    assert!(ok, "{text}");
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("2  *")),
        "{text}"
    );
    let (ok, text) = run(&["apps", "rollback", "acme/nope"]);
    assert!(!ok && text.contains("no app acme/nope"), "{text}");
    let (ok, text) = run(&["--keep-versions", "0", "apps", "versions", "acme/sales"]);
    assert!(!ok && text.contains("keep-versions"), "{text}");
}
