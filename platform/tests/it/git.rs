//! `git push` deploys with the real `git` client against a served platform: prebuilt
//! components go live, a broken push is rejected with its reason in git's output while the
//! previous version keeps serving, and tokens are checked (viewer, revoked).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use axum::http::StatusCode;
use platform::admin;
use platform::ids::Slug;
use platform::store::Change;

use crate::support::{TestApp, guest_wasm};

fn op() -> Change<'static> {
    use platform::clock::Clock;
    Change {
        actor: "test",
        remote_addr: None,
        at: platform::clock::SystemClock.now_millis(),
    }
}

/// Run `git` in `dir` with a throwaway HOME and no system config, never prompting.
pub async fn git(home: &Path, dir: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.org")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.org")
        .output()
        .await
        .expect("git runs")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub async fn ok(home: &Path, dir: &Path, args: &[&str]) -> Output {
    let output = git(home, dir, args).await;
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        stderr(&output)
    );
    output
}

async fn live_number(app: &TestApp) -> Option<(i64, String)> {
    app.state
        .store
        .live_version(
            &Slug::parse("acme").expect("slug"),
            &Slug::parse("sales").expect("slug"),
        )
        .await
        .expect("query")
        .map(|v| (v.number, v.sha256))
}

fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_deploys_prebuilt_components_and_rejects_bad_pushes() {
    let app = TestApp::new().await;
    let store = &app.state.store;
    store
        .ensure_tenant(&Slug::parse("acme").expect("slug"), op().at)
        .await
        .expect("tenant");
    for (email, role) in [
        ("alice@example.org", "author"),
        ("victor@example.org", "viewer"),
    ] {
        admin::create_user(store, email, None, false, &op())
            .await
            .expect("user");
        admin::grant(store, email, "acme", role, &op())
            .await
            .expect("grant");
    }
    let token = |email: &'static str| {
        let store = store.clone();
        async move {
            admin::create_token(&store, email, "acme", None, 1, &op())
                .await
                .expect("token")
        }
    };
    let alice = token("alice@example.org").await.token;
    let victor = token("victor@example.org").await.token;
    let revoked = token("alice@example.org").await;
    admin::revoke_token(store, &revoked.public_id, &op())
        .await
        .expect("revoke");

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
    let url = |token: &str| format!("http://git:{token}@{address}/git/acme/sales.git");

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
    let hello = guest_wasm("hello.wasm");
    std::fs::write(work.join("app.wasm"), &hello).expect("write");
    std::fs::write(
        work.join("tessera.toml"),
        "name = \"sales\"\nkind = \"wasm\"\ncomponent = \"app.wasm\"\n",
    )
    .expect("write");
    ok(&home, &work, &["add", "."]).await;
    ok(&home, &work, &["commit", "--quiet", "-m", "hello"]).await;

    // A new app name: created by the first successful push of an author.
    let started = std::time::Instant::now();
    let pushed = ok(&home, &work, &["push", &url(&alice), "main"]).await;
    let log = stderr(&pushed);
    eprintln!(
        "push-to-live (prebuilt hello.wasm): {:?}",
        started.elapsed()
    );
    assert!(
        log.contains("remote: tessera: deployed version 1 of acme/sales"),
        "{log}"
    );
    assert_eq!(live_number(&app).await, Some((1, sha(&hello))));
    assert_eq!(app.get("/apps/acme/sales/").await.status, StatusCode::OK);

    // A second commit: a new version, served.
    let sales = guest_wasm("sales_explorer.wasm");
    std::fs::write(work.join("app.wasm"), &sales).expect("write");
    ok(
        &home,
        &work,
        &["commit", "--quiet", "-am", "sales explorer"],
    )
    .await;
    let log = stderr(&ok(&home, &work, &["push", &url(&alice), "main"]).await);
    assert!(log.contains("remote: tessera: deployed version 2"), "{log}");
    assert_eq!(live_number(&app).await, Some((2, sha(&sales))));
    let head = ok(&home, &work, &["rev-parse", "HEAD"]).await;
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let recorded = store
        .version_commit(
            &Slug::parse("acme").expect("slug"),
            &Slug::parse("sales").expect("slug"),
            2,
        )
        .await
        .expect("query");
    assert_eq!(recorded.as_deref(), Some(head.as_str()));
    let page = app.get("/apps/acme/sales/_dash-layout").await;
    assert_eq!(page.status, StatusCode::OK);

    // No tessera.toml: rejected with the reason, version 2 still live.
    ok(&home, &work, &["rm", "--quiet", "tessera.toml"]).await;
    ok(&home, &work, &["commit", "--quiet", "-m", "oops"]).await;
    let refused = git(&home, &work, &["push", &url(&alice), "main"]).await;
    let log = stderr(&refused);
    assert!(!refused.status.success(), "{log}");
    assert!(
        log.contains("remote: tessera: tessera.toml is missing"),
        "{log}"
    );
    assert!(log.contains("pre-receive hook declined"), "{log}");
    assert_eq!(live_number(&app).await, Some((2, sha(&sales))));

    // A forbidden component (a guest importing sockets): rejected by validation.
    std::fs::write(
        work.join("tessera.toml"),
        "kind = \"wasm\"\ncomponent = \"app.wasm\"\n",
    )
    .expect("write");
    std::fs::write(work.join("app.wasm"), guest_wasm("guest_sockets.wasm")).expect("write");
    ok(&home, &work, &["add", "."]).await;
    ok(&home, &work, &["commit", "--quiet", "-m", "sockets"]).await;
    let refused = git(&home, &work, &["push", &url(&alice), "main"]).await;
    let log = stderr(&refused);
    assert!(!refused.status.success(), "{log}");
    assert!(log.contains("failed validation"), "{log}");
    assert_eq!(live_number(&app).await, Some((2, sha(&sales))));

    // An unknown build kind.
    std::fs::write(work.join("tessera.toml"), "kind = \"docker\"\n").expect("write");
    ok(&home, &work, &["commit", "--quiet", "-am", "docker"]).await;
    let refused = git(&home, &work, &["push", &url(&alice), "main"]).await;
    let log = stderr(&refused);
    assert!(!refused.status.success(), "{log}");
    assert!(log.contains("unknown build kind \"docker\""), "{log}");

    // A viewer may fetch but not push; a revoked token may do neither.
    let refused = git(&home, &work, &["push", &url(&victor), "main"]).await;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("403"), "{}", stderr(&refused));
    let refused = git(&home, &work, &["push", &url(&revoked.token), "main"]).await;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("Authentication failed"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(live_number(&app).await, Some((2, sha(&sales))));

    // The repository holds what is live: clone it with the viewer's token.
    ok(
        &home,
        scratch.path(),
        &["clone", "--quiet", &url(&victor), "clone"],
    )
    .await;
    let cloned = std::fs::read(scratch.path().join("clone/app.wasm")).expect("cloned");
    assert_eq!(sha(&cloned), sha(&sales));
    let refused = git(
        &home,
        scratch.path(),
        &["clone", "--quiet", &url(&revoked.token), "clone2"],
    )
    .await;
    assert!(!refused.status.success());
}

/// The push lock of an app holds across replicas sharing the database (and the data
/// directory): a push on the second waits, says why, and goes on once the first is done.
#[tokio::test]
async fn replicas_take_turns_with_the_push_lock_of_one_app() {
    use platform::build::Log;
    use platform::store::testing::TestDatabase;
    for db in TestDatabase::all().await.expect("databases") {
        let first = TestApp::on(db).await;
        let second = TestApp::replica_of(&first).await.state;
        let slug = |s: &str| Slug::parse(s).expect("slug");
        let (log, _first_lines) = Log::new(64);
        let held = first
            .state
            .builds
            .lock_app(&slug("acme"), &slug("sales"), &log)
            .await
            .expect("the first push takes the lock");

        let (log, mut lines) = Log::new(64);
        let waiter = tokio::spawn({
            let second = second.clone();
            async move {
                let lock = second
                    .builds
                    .lock_app(&slug("acme"), &slug("sales"), &log)
                    .await
                    .expect("the second push takes the lock in the end");
                (std::time::Instant::now(), lock)
            }
        });
        let said = tokio::time::timeout(Duration::from_secs(10), lines.recv())
            .await
            .expect("the waiting push says so")
            .expect("a line");
        assert!(
            said.contains("queued behind another push to this app on another server"),
            "{said}"
        );
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(
            !waiter.is_finished(),
            "the second push must wait for the first"
        );

        // Another app is not held up.
        let (log, _other_lines) = Log::new(64);
        tokio::time::timeout(
            Duration::from_secs(5),
            second.builds.lock_app(&slug("acme"), &slug("other"), &log),
        )
        .await
        .expect("another app's lock is free")
        .expect("taken");

        let released = std::time::Instant::now();
        drop(held);
        let (acquired, _lock) = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the second push goes on after the first")
            .expect("task");
        assert!(acquired >= released);
    }
}
