//! `git push` deploys with the real `git` client against a served platform: prebuilt
//! components go live, a broken push is rejected with its reason in git's output while the
//! previous version keeps serving, and tokens are checked (viewer, revoked); symlinks,
//! oversized pushes, a full repository quota and pushes creating no app leave nothing.

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
        "name = \"sales\"\nkind = \"wasm\"\ncomponent = \"app.wasm\"\nvisibility = \"public\"\n",
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

    // A viewer may neither push nor fetch (the source is the deployers'); a revoked
    // token may do neither.
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

    let refused = git(
        &home,
        scratch.path(),
        &["clone", "--quiet", &url(&victor), "clone-viewer"],
    )
    .await;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("you may not fetch this app's source"),
        "{}",
        stderr(&refused)
    );
    // The repository holds what is live: clone it with the author's token (who created
    // the app, so may deploy it).
    ok(
        &home,
        scratch.path(),
        &["clone", "--quiet", &url(&alice), "clone"],
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
    use platform::deploy::Log;
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

/// Writes one case's files into a work tree.
type MakeTree<'a> = Box<dyn Fn(&Path) + 'a>;

/// Where a built guest component lies.
fn guest_path(file: &str) -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::support::repo_root().join("target"))
        .join("wasm32-wasip2/guest")
        .join(file)
}

/// A platform with tenant `acme`, an author's token, served on a socket.
pub(crate) async fn serve_acme(
    builds: platform::config::BuildsConfig,
) -> (TestApp, SocketAddr, String) {
    let app = TestApp::with_builds(builds).await;
    let store = &app.state.store;
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
    let token = admin::create_token(store, "alice@example.org", "acme", None, 1, &op())
        .await
        .expect("token")
        .token;
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
    (app, address, token)
}

/// A scratch repository on `main`: (scratch, home, work).
pub(crate) async fn scratch_repo() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
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
    (scratch, home, work)
}

async fn app_visibility(app: &TestApp, name: &str) -> Option<platform::tenancy::Visibility> {
    app.state
        .store
        .app_access(
            &Slug::parse("acme").expect("slug"),
            &Slug::parse(name).expect("slug"),
            None,
        )
        .await
        .expect("query")
        .map(|access| access.visibility)
}

/// Symbolic links in a pushed tree are refused, naming the link, and never read: a
/// `tessera.toml` linking to the platform key, an asset linking to the key or to
/// `/proc/self/environ`, a component that is a link, an assets folder that is a link.
/// Each refused first push leaves neither an app nor a repository. A plain push then
/// creates the app visible to its tenant only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_symlinks_are_refused_naming_the_path_and_new_apps_are_tenant_visible() {
    use std::os::unix::fs::symlink;
    let (app, address, token) = serve_acme(Default::default()).await;
    let key = std::fs::read(app.state.config.data_dir.join("secret.key")).expect("key file");
    let key_text = String::from_utf8_lossy(&key).trim().to_owned();
    let url = format!("http://git:{token}@{address}/git/acme/links.git");
    let repo_dir = app.state.config.data_dir.join("git/acme/links.git");
    let hello = guest_wasm("hello.wasm");
    let (_scratch, home, work) = scratch_repo().await;
    let secret = app.state.config.data_dir.join("secret.key");

    let cases: Vec<(&str, MakeTree<'_>)> = vec![
        (
            "tessera.toml is a symbolic link",
            Box::new(|work: &Path| {
                // From the checkout ({data_dir}/builds/work/{pid}/{push}/src) to the key.
                symlink("../../../../../secret.key", work.join("tessera.toml")).expect("link");
            }),
        ),
        (
            "assets/x.txt is a symbolic link",
            Box::new(|work: &Path| {
                std::fs::write(
                    work.join("tessera.toml"),
                    "kind = \"wasm\"\ncomponent = \"app.wasm\"\nassets = \"assets\"\n",
                )
                .expect("toml");
                std::fs::write(work.join("app.wasm"), &hello).expect("wasm");
                std::fs::create_dir_all(work.join("assets")).expect("assets");
                symlink(&secret, work.join("assets/x.txt")).expect("link");
                symlink("/proc/self/environ", work.join("assets/y.txt")).expect("link");
            }),
        ),
        (
            "app.wasm is a symbolic link",
            Box::new(|work: &Path| {
                std::fs::write(
                    work.join("tessera.toml"),
                    "kind = \"wasm\"\ncomponent = \"app.wasm\"\n",
                )
                .expect("toml");
                symlink(guest_path("hello.wasm"), work.join("app.wasm")).expect("link");
            }),
        ),
        (
            "assets is a symbolic link",
            Box::new(|work: &Path| {
                std::fs::write(
                    work.join("tessera.toml"),
                    "kind = \"wasm\"\ncomponent = \"app.wasm\"\nassets = \"assets\"\n",
                )
                .expect("toml");
                std::fs::write(work.join("app.wasm"), &hello).expect("wasm");
                std::fs::create_dir_all(work.join("real")).expect("dir");
                std::fs::write(work.join("real/site.css"), "body{}").expect("css");
                symlink("real", work.join("assets")).expect("link");
            }),
        ),
    ];
    for (message, make) in cases {
        for entry in std::fs::read_dir(&work).expect("work").flatten() {
            if entry.file_name() != ".git" {
                let path = entry.path();
                match std::fs::symlink_metadata(&path).expect("meta").is_dir() {
                    true => std::fs::remove_dir_all(&path).expect("rm"),
                    false => std::fs::remove_file(&path).expect("rm"),
                }
            }
        }
        make(&work);
        ok(&home, &work, &["add", "-A"]).await;
        ok(&home, &work, &["commit", "--quiet", "-m", message]).await;
        let refused = git(&home, &work, &["push", &url, "main"]).await;
        let log = stderr(&refused);
        assert!(!refused.status.success(), "{message}: {log}");
        assert!(log.contains(message), "expected {message:?} in:\n{log}");
        assert!(!log.contains(&key_text), "the key leaked: {log}");
        assert_eq!(app_visibility(&app, "links").await, None, "{message}");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while repo_dir.exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !repo_dir.exists(),
            "{message}: the refused push left a repository"
        );
    }

    // Without links: deployed, visible to the tenant's members (not public).
    std::fs::remove_file(work.join("assets")).expect("rm");
    std::fs::rename(work.join("real"), work.join("assets")).expect("mv");
    ok(&home, &work, &["add", "-A"]).await;
    ok(&home, &work, &["commit", "--quiet", "-m", "plain"]).await;
    let pushed = ok(&home, &work, &["push", &url, "main"]).await;
    assert!(
        stderr(&pushed).contains("deployed version 1"),
        "{}",
        stderr(&pushed)
    );
    assert_eq!(
        app_visibility(&app, "links").await,
        Some(platform::tenancy::Visibility::Tenant)
    );
    assert_ne!(
        app.get("/apps/acme/links/_dash-layout").await.status,
        StatusCode::OK
    );
    assert!(repo_dir.join("HEAD").is_file());
}

/// `git push` of a new app that does not deploy `main` is refused and keeps nothing; a
/// push larger than `[builds] max_push_mb` is refused before git sees it; a tenant whose
/// repositories are over `[builds] repo_quota_mb` cannot push, and git shows why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_bounded_and_ghost_apps_keep_no_repository() {
    let (app, address, token) = serve_acme(platform::config::BuildsConfig {
        max_push_mb: 1,
        repo_quota_mb: 2,
        ..Default::default()
    })
    .await;
    let git_root = app.state.config.data_dir.join("git/acme");
    let url = |name: &str| format!("http://git:{token}@{address}/git/acme/{name}.git");
    let wait_gone = |dir: std::path::PathBuf| async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while dir.exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        !dir.exists()
    };

    // Another branch to an app that does not exist: refused, nothing kept.
    let (_scratch, home, work) = scratch_repo().await;
    std::fs::write(work.join("README"), "ghost").expect("write");
    ok(&home, &work, &["add", "-A"]).await;
    ok(&home, &work, &["commit", "--quiet", "-m", "ghost"]).await;
    let refused = git(&home, &work, &["push", &url("ghost"), "main:side"]).await;
    let log = stderr(&refused);
    assert!(!refused.status.success(), "{log}");
    assert!(
        log.contains("its first push must deploy the main branch"),
        "{log}"
    );
    assert!(
        wait_gone(git_root.join("ghost.git")).await,
        "the ghost's repository is kept"
    );

    // 3 MiB of random bytes (incompressible): over the 1 MiB push limit.
    let noise: Vec<u8> = (0..3 << 20).map(|_| rand::random::<u8>()).collect();
    std::fs::write(work.join("noise.bin"), &noise).expect("write");
    ok(&home, &work, &["add", "-A"]).await;
    ok(&home, &work, &["commit", "--quiet", "-m", "noise"]).await;
    let refused = git(&home, &work, &["push", &url("ghost"), "main"]).await;
    let log = stderr(&refused);
    assert!(!refused.status.success(), "{log}");
    assert!(log.contains("413"), "{log}");
    assert!(
        wait_gone(git_root.join("ghost.git")).await,
        "the refused push kept a repository"
    );
    // The refusal says why to a client that shows bodies.
    let reply = reqwest::Client::new()
        .post(format!(
            "http://{address}/git/acme/ghost.git/git-receive-pack"
        ))
        .basic_auth("git", Some(&token))
        .header("content-type", "application/x-git-receive-pack-request")
        .body(noise.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(reply.status().as_u16(), 413);
    let text = reply.text().await.expect("text");
    assert!(text.contains("[builds] max_push_mb"), "{text}");

    // Over the tenant's repository quota: refused at the first request, with the reason
    // shown by git.
    std::fs::create_dir_all(git_root.join("big.git")).expect("mkdir");
    std::fs::write(git_root.join("big.git/filler"), vec![0u8; 3 << 20]).expect("filler");
    ok(&home, &work, &["reset", "--quiet", "--hard", "HEAD~1"]).await;
    std::fs::write(work.join("app.wasm"), guest_wasm("hello.wasm")).expect("wasm");
    std::fs::write(
        work.join("tessera.toml"),
        "kind = \"wasm\"\ncomponent = \"app.wasm\"\n",
    )
    .expect("toml");
    ok(&home, &work, &["add", "-A"]).await;
    ok(&home, &work, &["commit", "--quiet", "-m", "hello"]).await;
    let refused = git(&home, &work, &["push", &url("hello"), "main"]).await;
    let log = stderr(&refused);
    assert!(!refused.status.success(), "{log}");
    assert!(log.contains("[builds] repo_quota_mb"), "{log}");
    assert!(wait_gone(git_root.join("hello.git")).await);
    // Room again: the same push deploys.
    std::fs::remove_dir_all(git_root.join("big.git")).expect("rm");
    let pushed = ok(&home, &work, &["push", &url("hello"), "main"]).await;
    assert!(
        stderr(&pushed).contains("deployed version 1"),
        "{}",
        stderr(&pushed)
    );
}

/// A crafted tree holding both a symlink `a` (to a directory outside) and a file `a/b`:
/// the checkout (`git read-tree -u`) never writes through the link, so nothing appears
/// outside the working directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_never_writes_through_a_pushed_symlink() {
    let (app, address, token) = serve_acme(Default::default()).await;
    let outside = tempfile::tempdir().expect("outside");
    let (_scratch, home, work) = scratch_repo().await;
    let hash = |args: &[&str], input: String| {
        let (home, work) = (home.clone(), work.clone());
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        async move {
            use tokio::io::AsyncWriteExt;
            let mut child = tokio::process::Command::new("git")
                .args(&args)
                .current_dir(&work)
                .env("HOME", &home)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.org")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.org")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("git");
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(input.as_bytes()).await.expect("write");
            drop(stdin);
            let output = child.wait_with_output().await.expect("git");
            assert!(output.status.success(), "git {args:?}");
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        }
    };
    let link = hash(
        &["hash-object", "-w", "--stdin"],
        outside.path().display().to_string(),
    )
    .await;
    let blob = hash(&["hash-object", "-w", "--stdin"], "pwned\n".into()).await;
    let manifest = hash(
        &["hash-object", "-w", "--stdin"],
        "kind = \"wasm\"\ncomponent = \"a/b\"\n".into(),
    )
    .await;
    let sub = hash(&["mktree"], format!("100644 blob {blob}\tb\n")).await;
    let tree = hash(
        &["mktree"],
        format!(
            "120000 blob {link}\ta\n040000 tree {sub}\ta\n100644 blob {manifest}\ttessera.toml\n"
        ),
    )
    .await;
    let commit = hash(
        &["commit-tree", &tree, "-m", "through a link"],
        String::new(),
    )
    .await;
    let url = format!("http://git:{token}@{address}/git/acme/through.git");
    let refused = git(
        &home,
        &work,
        &["push", &url, &format!("{commit}:refs/heads/main")],
    )
    .await;
    assert!(!refused.status.success(), "{}", stderr(&refused));
    let written: Vec<_> = std::fs::read_dir(outside.path())
        .expect("outside")
        .flatten()
        .collect();
    assert!(
        written.is_empty(),
        "the checkout wrote outside: {written:?}"
    );
    assert!(app.state.config.data_dir.join("builds").exists());
}
