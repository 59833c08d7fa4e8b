//! Replica roles (issue 16): two web replicas and a builder on one database, each serving
//! on a real loopback port. A `git push` to a web replica is forwarded to the builder, which
//! builds and publishes; the new version then serves on both web replicas, which never
//! write a repository. The builder serves nothing of apps; a web replica whose builder does
//! not answer says so; a replica turns `/readyz` to 503 on SIGTERM before it stops.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use platform::admin;
use platform::config::{Cli, Config, Role};
use platform::ids::Slug;
use platform::state::{App, AppState};
use platform::store::Change;
use platform::store::testing::TestDatabase;

use crate::git::{git, ok, stderr};
use crate::support::{TestApp, guest_wasm, request_on};

fn op() -> Change<'static> {
    use platform::clock::Clock;
    Change {
        actor: "test",
        remote_addr: None,
        at: platform::clock::SystemClock.now_millis(),
    }
}

/// Serve `state`'s router on a fresh loopback port.
async fn serve(state: AppState) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let router = platform::http::router(state);
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

/// A replica of `base`'s configuration (same database and secret key) in its own data
/// directory, with `role`.
async fn replica(
    base: &TestApp,
    dir: &std::path::Path,
    role: Role,
    builder: Option<String>,
) -> AppState {
    let mut config: Config = base.state.config.clone();
    config.data_dir = dir.to_path_buf();
    config.cluster.role = role;
    config.cluster.builder_url = builder;
    App::start(config).await.expect("replica starts")
}

/// One GET over a fresh connection, the path sent byte for byte; the whole answer.
async fn raw_get(address: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
}

async fn layout(state: &AppState) -> (StatusCode, Vec<u8>) {
    let reply = request_on(
        state,
        axum::http::Request::get("/apps/acme/sales/_dash-layout")
            .body(axum::body::Body::empty())
            .expect("request"),
    )
    .await;
    (reply.status, reply.body)
}

/// Wait (at most 10 s: the change counter is polled every 500 ms) until `state` serves
/// `expected` as the app's layout.
async fn serves(state: &AppState, expected: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = layout(state).await;
        if status == StatusCode::OK && body == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replica still serves {status} {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_through_a_web_replica_builds_on_the_builder_and_serves_on_every_web_replica() {
    for db in TestDatabase::all().await.expect("databases") {
        let backend = db.url.split(':').next().unwrap_or_default().to_owned();
        eprintln!("roles on {backend}");
        let base = TestApp::on(db).await;
        let store = &base.state.store;
        store
            .ensure_tenant(&Slug::parse("acme").expect("slug"), op().at)
            .await
            .expect("tenant");
        admin::create_user(store, "alice@example.org", None, false, &op())
            .await
            .expect("user");
        admin::grant(store, "alice@example.org", "acme", "author", &op())
            .await
            .expect("grant");
        let alice = admin::create_token(store, "alice@example.org", "acme", None, 1, &op())
            .await
            .expect("token")
            .token;

        let dirs = tempfile::tempdir().expect("tempdir");
        let builder_dir = dirs.path().join("builder");
        let builder = replica(&base, &builder_dir, Role::Builder, None).await;
        let builder_address = serve(builder.clone()).await;
        let builder_url = format!("http://{builder_address}");
        let web_dirs = [dirs.path().join("web-1"), dirs.path().join("web-2")];
        let mut webs = Vec::new();
        for dir in &web_dirs {
            let web = replica(&base, dir, Role::Web, Some(builder_url.clone())).await;
            let address = serve(web.clone()).await;
            webs.push((web, address));
        }
        let url = |address: SocketAddr, token: &str| {
            format!("http://git:{token}@{address}/git/acme/sales.git")
        };

        let scratch = tempfile::tempdir().expect("tempdir");
        let home = scratch.path().join("home");
        let work = scratch.path().join("work");
        std::fs::create_dir_all(&home).expect("home");
        std::fs::create_dir_all(&work).expect("work");
        ok(
            &home,
            &work,
            &["init", "--quiet", "--initial-branch", "main"],
        )
        .await;
        std::fs::write(work.join("app.wasm"), guest_wasm("hello.wasm")).expect("write");
        std::fs::write(
            work.join("tessera.toml"),
            "name = \"sales\"\nkind = \"wasm\"\ncomponent = \"app.wasm\"\nvisibility = \"public\"\n",
        )
        .expect("write");
        ok(&home, &work, &["add", "."]).await;
        ok(&home, &work, &["commit", "--quiet", "-m", "hello"]).await;

        // Pushed to web replica 1: the builder's log comes back through it.
        let log = stderr(&ok(&home, &work, &["push", &url(webs[0].1, &alice), "main"]).await);
        assert!(
            log.contains("remote: tessera: deployed version 1 of acme/sales"),
            "{log}"
        );
        let hello = layout(&base.state).await;
        assert_eq!(hello.0, StatusCode::OK);
        for (web, _) in &webs {
            serves(web, &hello.1).await;
        }

        // A second version pushed to web replica 2 serves on both within the poll.
        std::fs::write(work.join("app.wasm"), guest_wasm("sales_explorer.wasm")).expect("write");
        ok(
            &home,
            &work,
            &["commit", "--quiet", "-am", "sales explorer"],
        )
        .await;
        let log = stderr(&ok(&home, &work, &["push", &url(webs[1].1, &alice), "main"]).await);
        assert!(log.contains("remote: tessera: deployed version 2"), "{log}");
        let (fresh, _fresh_dir) = fresh_replica(&base).await;
        let sales = layout(&fresh).await;
        assert_eq!(sales.0, StatusCode::OK);
        assert_ne!(sales.1, hello.1, "version 2 has another layout");
        for (web, _) in &webs {
            serves(web, &sales.1).await;
        }

        // A clone (fetch) through a web replica streams the builder's repository.
        ok(
            &home,
            scratch.path(),
            &["clone", "--quiet", &url(webs[0].1, &alice), "clone"],
        )
        .await;
        assert_eq!(
            std::fs::read(scratch.path().join("clone/app.wasm")).expect("cloned"),
            guest_wasm("sales_explorer.wasm")
        );

        // The builder checks the credentials: a wrong token is refused through the web
        // replica as it would be directly (401 with the Basic challenge).
        let refused = git(
            &home,
            &work,
            &["push", &url(webs[0].1, "tsr_x_wrong"), "main"],
        )
        .await;
        assert!(!refused.status.success());
        assert!(
            stderr(&refused).contains("Authentication failed"),
            "{}",
            stderr(&refused)
        );

        // Dot segments would be resolved by the forwarding client into another route of
        // the builder (its metrics, say): not forwarded.
        // (A raw request: an HTTP client would resolve the dots itself.)
        let escape = raw_get(webs[0].1, "/git/acme/sales.git/../../../healthz").await;
        assert!(escape.starts_with("HTTP/1.1 404"), "{escape}");
        assert!(escape.contains("repository not found"), "{escape}");

        // Repositories live with the builder only; the web replicas never wrote one.
        assert!(builder_dir.join("git").join("acme").is_dir());
        for dir in &web_dirs {
            assert!(
                !dir.join("git").exists(),
                "{} has repositories",
                dir.display()
            );
            assert!(!dir.join("builds").exists(), "{} has builds", dir.display());
        }

        // The builder serves git, not apps, the API or the UI.
        let (status, _) = layout(&builder).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let reply = request_on(
            &builder,
            axum::http::Request::get("/api/v1/tenants")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert!(
            reply.text().contains("this replica is a builder"),
            "{}",
            reply.text()
        );

        // A web replica whose builder does not answer says so (502), and builds nothing.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let closed_url = format!("http://{}", closed.local_addr().expect("address"));
        drop(closed);
        let orphan_dir = dirs.path().join("web-orphan");
        let orphan = replica(&base, &orphan_dir, Role::Web, Some(closed_url)).await;
        let orphan_address = serve(orphan).await;
        let refused = git(
            &home,
            &work,
            &["push", &url(orphan_address, &alice), "main"],
        )
        .await;
        assert!(!refused.status.success());
        assert!(stderr(&refused).contains("502"), "{}", stderr(&refused));
        assert!(!orphan_dir.join("git").exists());
    }
}

/// A fresh replica (role all) on `base`'s database: what the database now publishes,
/// without any cache.
async fn fresh_replica(base: &TestApp) -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = replica(base, dir.path(), Role::All, None).await;
    (state, dir)
}

#[test]
fn a_web_replica_needs_a_builder_and_roles_parse() {
    use clap::Parser;
    let web = Cli::try_parse_from(["tessera", "serve", "--role", "web"]).expect("parses");
    let error = Config::load(&web).expect_err("no builder_url");
    assert!(error.to_string().contains("builder_url"), "{error}");
    assert!(Cli::try_parse_from(["tessera", "serve", "--role", "cook"]).is_err());
    let builder = Cli::try_parse_from(["tessera", "serve", "--role", "builder"]).expect("parses");
    let config = Config::load(&builder).expect("loads");
    assert_eq!(config.cluster.role, Role::Builder);
    let all = Cli::try_parse_from(["tessera", "serve"]).expect("parses");
    assert_eq!(Config::load(&all).expect("loads").cluster.role, Role::All);
}

/// SIGTERM to a real `tessera serve`: `/readyz` turns 503 (`draining`) at once while
/// `/healthz` still answers, then the process exits cleanly.
#[test]
fn sigterm_turns_readyz_to_503_before_the_server_stops() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, address) = crate::support::spawn_listening(
        crate::support::tessera_command(dir.path())
            .env("TESSERA_DRAIN_SECS", "2")
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null()),
    );
    let get = |path: &str| -> Option<(u16, String)> {
        let mut stream = std::net::TcpStream::connect(&address).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        Some((status, response))
    };
    assert_eq!(get("/readyz").map(|r| r.0), Some(200));
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(signalled.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let draining = loop {
        match get("/readyz") {
            Some((503, body)) => break body,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("/readyz never turned 503: {other:?}"),
        }
    };
    assert!(draining.contains("draining"), "{draining}");
    assert_eq!(
        get("/healthz").map(|r| r.0),
        Some(200),
        "still serving while draining"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop after draining"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
}
