//! Rust builds on `git push` (issue 6) with the real `git` client and real `cargo`: the
//! sales explorer's source is built and served, a change goes live, a compiler error
//! rejects the push with rustc's message, builds over their time or size limit are
//! refused, pushes queue (per app and for a build slot), and a `tessera serve` killed with
//! SIGKILL in the middle of a build comes back with the previous version live. A project
//! made by `tessera new` pushes as it is.
//!
//! The sales-explorer builds share one cargo target directory under the workspace's
//! `target/` (kept between runs, so only the first run pays the cold build).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use platform::config::BuildsConfig;
use platform::ids::Slug;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::git::{git, ok, stderr};
use crate::support::{TestApp, guest_wasm, repo_root};

/// The warm cargo target directory shared by these tests (and kept between runs).
fn shared_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("tessera-push-builds")
}

/// The time limit of the tests that build the sales explorer: on a fresh checkout its
/// dependencies build from nothing, beside the rest of the suite on two cores, which can
/// take longer than the default 600 s (the limit itself is tested below with 6 s).
const COLD_BUILD_SECS: u64 = 1800;

/// The per-tenant cargo homes of these tests, kept between runs like the target dir (the
/// registry's paths are part of cargo's fingerprints, so a fresh one would rebuild all).
fn shared_cargo_dir() -> PathBuf {
    shared_target_dir().with_file_name("tessera-push-cargo")
}

/// A platform with tenant `acme`, an author and their token, served on a real socket.
struct Served {
    app: TestApp,
    address: SocketAddr,
    token: String,
}

impl Served {
    async fn start(builds: BuildsConfig) -> Served {
        let (app, address, token) = crate::git::serve_acme(builds).await;
        Served {
            app,
            address,
            token,
        }
    }

    /// A platform whose Rust builds share the warm target dir and cargo homes of these
    /// tests, with the cold build's time limit.
    async fn start_warm() -> Served {
        Served::start(BuildsConfig {
            time_limit_secs: COLD_BUILD_SECS,
            target_dir: Some(shared_target_dir()),
            cargo_dir: Some(shared_cargo_dir()),
            ..BuildsConfig::default()
        })
        .await
    }

    fn url(&self, app: &str) -> String {
        format!(
            "http://git:{}@{}/git/acme/{app}.git",
            self.token, self.address
        )
    }

    async fn live(&self, app: &str) -> Option<i64> {
        self.app
            .state
            .store
            .live_version(
                &Slug::parse("acme").expect("slug"),
                &Slug::parse(app).expect("slug"),
            )
            .await
            .expect("query")
            .map(|v| v.number)
    }
}

/// A scratch directory with a git HOME and a repository `work` on `main`.
struct Repo {
    scratch: tempfile::TempDir,
}

impl Repo {
    async fn new() -> Repo {
        let scratch = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(scratch.path().join("home")).expect("home");
        std::fs::create_dir_all(scratch.path().join("work")).expect("work");
        let repo = Repo { scratch };
        ok(
            &repo.home(),
            &repo.work(),
            &["init", "--quiet", "--initial-branch", "main"],
        )
        .await;
        repo
    }

    fn home(&self) -> PathBuf {
        self.scratch.path().join("home")
    }

    fn work(&self) -> PathBuf {
        self.scratch.path().join("work")
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.work().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    async fn commit(&self, message: &str) {
        ok(&self.home(), &self.work(), &["add", "-A"]).await;
        ok(
            &self.home(),
            &self.work(),
            &["commit", "--quiet", "-m", message],
        )
        .await;
    }

    /// `git push url main`: success and git's stderr (the `remote:` lines).
    async fn push(&self, url: &str) -> (bool, String) {
        let output = git(&self.home(), &self.work(), &["push", url, "main"]).await;
        (output.status.success(), stderr(&output))
    }

    /// Start `git push url main` in the background, returning once a `remote:` line
    /// containing `wait_for` arrived; the handle gives the outcome.
    async fn push_in_background(
        &self,
        url: &str,
        wait_for: &str,
    ) -> tokio::task::JoinHandle<(bool, String)> {
        let mut child = tokio::process::Command::new("git")
            .args(["push", url, "main"])
            .current_dir(self.work())
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.home())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("git push starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut seen = String::new();
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("no {wait_for:?} in time; so far:\n{seen}"))
                .expect("read")
                .unwrap_or_else(|| panic!("git push ended before {wait_for:?}:\n{seen}"));
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(wait_for) {
                break;
            }
        }
        tokio::spawn(async move {
            let mut rest = String::new();
            lines
                .into_inner()
                .read_to_string(&mut rest)
                .await
                .expect("read");
            seen.push_str(&rest);
            let status = child.wait().await.expect("wait");
            (status.success(), seen)
        })
    }
}

/// The sales explorer as an author's own repository: its sources, a standalone
/// Cargo.toml naming the SDK as `sdk = "0.1"` (the server patches in its SDK), the
/// workspace's Cargo.lock (the versions the SDK is tested with) and a tessera.toml.
fn sales_explorer_repo(repo: &Repo, app: &str) {
    let example = repo_root().join("examples/sales-explorer/src");
    for file in ["lib.rs", "data.rs", "report.rs", "source.rs"] {
        let text = std::fs::read_to_string(example.join(file)).expect("example source");
        repo.write(&format!("src/{file}"), &text);
    }
    repo.write(
        "Cargo.toml",
        r#"[package]
name = "sales-explorer"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
sdk = { version = "0.1", features = ["frame"] }
serde_json = { version = "1.0.145", features = ["preserve_order"] }
plotly = { version = "=0.14.1", default-features = false }

# An author's choice that shortens the cold build (Arrow and Parquet at opt-level 3 are
# the largest CPU cost of this suite on a fresh checkout); what is tested is the push.
[profile.release]
opt-level = 1
"#,
    );
    let lock = std::fs::read_to_string(repo_root().join("Cargo.lock")).expect("Cargo.lock");
    repo.write("Cargo.lock", &lock);
    repo.write(".gitignore", "/target\n");
    repo.write(
        "tessera.toml",
        &format!("name = \"{app}\"\nkind = \"rust\"\nvisibility = \"public\"\n"),
    );
}

fn set_title(repo: &Repo, title: &str) {
    let path = repo.work().join("src/lib.rs");
    let text = std::fs::read_to_string(&path).expect("lib.rs");
    let needle = "html::h2().children(\"";
    let start = text.find(needle).expect("the title") + needle.len();
    let end = start + text[start..].find('"').expect("closing quote");
    let text = format!("{}{title}{}", &text[..start], &text[end..]);
    std::fs::write(path, text).expect("write");
}

async fn layout(app: &TestApp, name: &str) -> String {
    let reply = app.get(&format!("/apps/acme/{name}/_dash-layout")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_pushes_are_built_served_and_refused_with_the_compilers_error() {
    let served = Served::start_warm().await;
    let url = served.url("sales");
    let repo = Repo::new().await;
    sales_explorer_repo(&repo, "sales");
    repo.commit("sales explorer").await;

    // A new app from a Rust crate: cargo's lines stream back, then it is live.
    let started = Instant::now();
    let (pushed, log) = repo.push(&url).await;
    assert!(pushed, "{log}");
    eprintln!(
        "push-to-live (Rust, shared target dir): {:?}",
        started.elapsed()
    );
    assert!(
        log.contains("remote: tessera: cargo build --release --target wasm32-wasip2"),
        "{log}"
    );
    assert!(log.contains("Finished `release` profile"), "{log}");
    assert!(
        log.contains("remote: tessera: deployed version 1 of acme/sales"),
        "{log}"
    );
    assert_eq!(served.live("sales").await, Some(1));
    assert!(
        layout(&served.app, "sales")
            .await
            .contains("Sales explorer")
    );
    let reply = served
        .app
        .post_json(
            "/apps/acme/sales/_dash-update-component",
            json!({
                "output": "summary.children",
                "outputs": {"id": "summary", "property": "children"},
                "inputs": [{"id": "region", "property": "value", "value": "West"}],
                "changedPropIds": ["region.value"]
            })
            .to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(
        reply.json()["response"]["summary"]["children"].is_string(),
        "{}",
        reply.text()
    );

    // A change: rebuilt (warm) and served.
    set_title(&repo, "Sales explorer, second edition");
    repo.commit("retitle").await;
    let (pushed, log) = repo.push(&url).await;
    assert!(pushed, "{log}");
    assert!(log.contains("Compiling sales-explorer"), "{log}");
    assert!(log.contains("deployed version 2"), "{log}");
    assert!(
        layout(&served.app, "sales")
            .await
            .contains("second edition")
    );

    // A compiler error: the push is refused with rustc's message; version 2 still serves.
    let lib = std::fs::read_to_string(repo.work().join("src/lib.rs")).expect("lib.rs");
    repo.write("src/lib.rs", &format!("{lib}\nfn broken( {{\n"));
    repo.commit("broken").await;
    let (pushed, log) = repo.push(&url).await;
    assert!(!pushed, "{log}");
    assert!(log.contains("remote: error"), "{log}");
    assert!(log.contains("src/lib.rs"), "{log}");
    assert!(log.contains("the build failed"), "{log}");
    assert!(
        log.contains("push rejected; the live version is unchanged"),
        "{log}"
    );
    assert_eq!(served.live("sales").await, Some(2));
    assert!(
        layout(&served.app, "sales")
            .await
            .contains("second edition")
    );

    // Two pushes to one app at once: the second waits for the first, then is refused
    // because the branch moved under it; the branch and the live version agree.
    ok(
        &repo.home(),
        &repo.work(),
        &["reset", "--quiet", "--hard", "HEAD~1"],
    )
    .await;
    let other = Repo::new().await;
    ok(
        &other.home(),
        other.scratch.path(),
        &["clone", "--quiet", &url, "other"],
    )
    .await;
    let other_work = other.scratch.path().join("other");
    set_title(&repo, "Third edition");
    repo.commit("third").await;
    let lib = other_work.join("src/lib.rs");
    let text = std::fs::read_to_string(&lib).expect("lib.rs");
    std::fs::write(&lib, text.replace("second edition", "fourth edition")).expect("write");
    for args in [
        &["add", "-A"][..],
        &["commit", "--quiet", "-m", "fourth"][..],
    ] {
        ok(&other.home(), &other_work, args).await;
    }
    let first = repo
        .push_in_background(&url, "Compiling sales-explorer")
        .await;
    let second = git(&other.home(), &other_work, &["push", &url, "main"]).await;
    let (first_ok, first_log) = first.await.expect("first push");
    let second_log = stderr(&second);
    assert!(first_ok, "{first_log}");
    assert!(first_log.contains("deployed version 3"), "{first_log}");
    assert!(!second.status.success(), "{second_log}");
    assert!(
        second_log.contains("queued behind another push to this app"),
        "{second_log}"
    );
    assert!(
        second_log.contains("main moved while this push waited"),
        "{second_log}"
    );
    assert_eq!(served.live("sales").await, Some(3));
    assert!(layout(&served.app, "sales").await.contains("Third edition"));
    let head = ok(&repo.home(), &repo.work(), &["rev-parse", "HEAD"]).await;
    let remote = ok(&repo.home(), &repo.work(), &["ls-remote", &url, "main"]).await;
    assert!(
        String::from_utf8_lossy(&remote.stdout)
            .starts_with(String::from_utf8_lossy(&head.stdout).trim()),
        "the branch is the deployed commit"
    );
}

/// `tessera new NAME` in an empty folder, as an author runs it: the project's folder.
pub(crate) fn tessera_new(parent: &Path, home: &Path, args: &[&str]) -> PathBuf {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("new")
        .args(args)
        .current_dir(parent)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("tessera new runs");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("Next:"), "{said}");
    let work = parent.join(args[0]);
    assert!(work.join(".git").is_dir(), "a git repository: {said}");
    work
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_project_made_by_tessera_new_pushes_as_it_is() {
    let served = Served::start_warm().await;
    let scratch = tempfile::tempdir().expect("tempdir");
    let home = scratch.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    // Named `sales` to build in the warm target dir of the sales explorer's tests (one per
    // tenant and app), as a second push to an app would.
    let work = tessera_new(scratch.path(), &home, &["sales"]);
    ok(&home, &work, &["add", "-A"]).await;
    ok(&home, &work, &["commit", "--quiet", "-m", "First version"]).await;
    let pushed = git(&home, &work, &["push", &served.url("sales"), "main"]).await;
    let log = stderr(&pushed);
    assert!(pushed.status.success(), "{log}");
    assert!(log.contains("deployed version 1 of acme/sales"), "{log}");
    // Visible to the tenant's members (the template's default): asked as the author.
    let page = served
        .app
        .get_with_token("/apps/acme/sales/_dash-layout", &served.token)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("Sales"), "{}", page.text());
    let reply = served
        .app
        .post_json_with_token(
            "/apps/acme/sales/_dash-update-component",
            json!({
                "output": "greeting.children",
                "outputs": {"id": "greeting", "property": "children"},
                "inputs": [{"id": "name", "property": "value", "value": "Ada"}],
                "changedPropIds": ["name.value"]
            })
            .to_string(),
            &served.token,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json()["response"]["greeting"]["children"],
        "Hello, Ada!"
    );
    // The folder is taken now: a second `tessera new` there changes nothing.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["new", "sales"])
        .current_dir(scratch.path())
        .output()
        .expect("tessera new runs");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists and is not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

/// Copies the example folder `name` (as `cp -r` would, without a `target/`) into `to`.
fn copy_example(name: &str, to: &Path) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read the example") {
            let entry = entry.expect("entry");
            let (from, to) = (entry.path(), to.join(entry.file_name()));
            if entry.file_type().expect("type").is_dir() {
                if entry.file_name() != "target" {
                    copy(&from, &to);
                }
            } else {
                std::fs::copy(&from, &to).expect("copy");
            }
        }
    }
    copy(&repo_root().join("examples").join(name), to);
}

/// Whether a manifest (or a part of one) takes a key from its workspace.
fn inherits(value: &toml::Value) -> bool {
    match value {
        toml::Value::Table(table) => table
            .iter()
            .any(|(key, value)| key == "workspace" || inherits(value)),
        toml::Value::Array(items) => items.iter().any(inherits),
        _ => false,
    }
}

/// Every example is a crate of its own, as an author's repository is: copied out of this
/// repository, its manifest needs nothing from the workspace and its own `Cargo.lock`
/// holds every version cargo needs (`--locked` fails otherwise; cargo may download a crate
/// to read its manifest, never pick a version), with the SDK patched in as the build
/// server does. A stale lock names the script that rewrites it.
#[test]
fn every_example_folder_is_a_crate_of_its_own_with_a_current_lock() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut examples = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("examples")).expect("examples/") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8");
        if !repo_root()
            .join("examples")
            .join(&name)
            .join("Cargo.toml")
            .exists()
        {
            continue;
        }
        let copy = scratch.path().join(&name);
        copy_example(&name, &copy);
        let manifest: toml::Table = toml::from_str(
            &std::fs::read_to_string(copy.join("tessera.toml")).expect("a tessera.toml"),
        )
        .expect("tessera.toml parses");
        assert_eq!(manifest["kind"].as_str(), Some("rust"), "examples/{name}");
        assert!(
            manifest.get("name").is_none(),
            "examples/{name}/tessera.toml names an app: the folder would push only as that one"
        );
        let cargo_toml: toml::Table =
            toml::from_str(&std::fs::read_to_string(copy.join("Cargo.toml")).expect("Cargo.toml"))
                .expect("Cargo.toml parses");
        assert!(
            !inherits(&toml::Value::Table(cargo_toml)),
            "examples/{name}/Cargo.toml inherits from the workspace (`workspace = true`)"
        );
        let tree = std::process::Command::new("cargo")
            .args(["tree", "--locked", "--quiet", "-e", "normal"])
            .args(["--target", "wasm32-wasip2", "--config"])
            .arg(format!(
                "patch.crates-io.sdk.path={:?}",
                repo_root().join("sdk").display().to_string()
            ))
            .current_dir(&copy)
            .output()
            .expect("cargo runs");
        assert!(
            tree.status.success(),
            "examples/{name} does not resolve on its own (a stale Cargo.lock: run scripts/example-locks.sh {name}):\n{}",
            String::from_utf8_lossy(&tree.stderr)
        );
        assert!(
            String::from_utf8_lossy(&tree.stdout).contains("sdk v0.1.0"),
            "examples/{name} uses the SDK"
        );
        examples.push(name);
    }
    examples.sort();
    assert!(examples.len() >= 8, "{examples:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_example_folder_pushes_as_it_is() {
    let served = Served::start_warm().await;
    let repo = Repo::new().await;
    copy_example("hello", &repo.work());
    repo.commit("The hello example, copied").await;
    // Pushed as `sales`: the app's name comes from the URL (the example names none), and
    // this one builds in the warm target dir of the other `sales` pushes.
    let (pushed, log) = repo.push(&served.url("sales")).await;
    assert!(pushed, "{log}");
    assert!(log.contains("deployed version 1 of acme/sales"), "{log}");
    let layout = served
        .app
        .get_with_token("/apps/acme/sales/_dash-layout", &served.token)
        .await;
    assert_eq!(layout.status, StatusCode::OK, "{}", layout.text());
    // The same example built in this repository (scripts/build-guests.sh) serves the same.
    served.app.deploy("acme", "hello", "hello.wasm").await;
    let built = served
        .app
        .get_with_token("/apps/acme/hello/_dash-layout", &served.token)
        .await;
    assert!(
        layout.text().contains(r#""id":"greeting""#),
        "{}",
        layout.text()
    );
    assert_eq!(
        layout.json(),
        built.json(),
        "the pushed example serves the layout the example's own code makes"
    );
}

/// A crate without dependencies whose build script sleeps for `sleep_secs`.
fn slow_crate(repo: &Repo, name: &str, sleep_secs: u64) {
    repo.write(
        "Cargo.toml",
        &format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n"
        ),
    );
    repo.write(
        "build.rs",
        &format!(
            "fn main() {{ std::thread::sleep(std::time::Duration::from_secs({sleep_secs})); }}\n"
        ),
    );
    repo.write("src/lib.rs", "pub fn nothing() {}\n");
    repo.write("tessera.toml", "kind = \"rust\"\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_over_their_limits_are_killed_or_refused_and_wait_for_a_slot() {
    let served = Served::start(BuildsConfig {
        target_dir: Some(shared_target_dir()),
        cargo_dir: Some(shared_cargo_dir()),
        time_limit_secs: 6,
        max_wasm_mb: 1,
        max_parallel: 1,
        ..BuildsConfig::default()
    })
    .await;

    // A build script that would run for 10 minutes.
    let slow = Repo::new().await;
    slow_crate(&slow, "slow", 600);
    slow.commit("slow").await;
    // A component with 3 MiB of data: over the 1 MiB size limit.
    let big = Repo::new().await;
    big.write(
        "Cargo.toml",
        "[package]\nname = \"big\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n",
    );
    big.write(
        "src/lib.rs",
        "static BIG: [u8; 3 << 20] = [7; 3 << 20];\n\n#[unsafe(no_mangle)]\npub extern \"C\" fn big(i: usize) -> u8 {\n    BIG[i % BIG.len()]\n}\n",
    );
    big.write("tessera.toml", "kind = \"rust\"\n");
    big.commit("big").await;

    let started = Instant::now();
    let slow_push = slow
        .push_in_background(&served.url("slow"), "Compiling slow")
        .await;
    // One slot: the second app's build waits for it.
    let (pushed, big_log) = big.push(&served.url("big")).await;
    let (slow_ok, slow_log) = slow_push.await.expect("slow push");
    let elapsed = started.elapsed();

    assert!(!slow_ok, "{slow_log}");
    assert!(
        slow_log.contains("ran over its time limit of 6 s"),
        "{slow_log}"
    );
    assert!(
        slow_log.contains("killed with all its processes"),
        "{slow_log}"
    );
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    assert!(!pushed, "{big_log}");
    assert!(big_log.contains("queued: 1 builds running"), "{big_log}");
    assert!(
        big_log.contains("more than the 1048576-byte maximum"),
        "{big_log}"
    );
    assert!(big_log.contains("max_wasm_mb = 1"), "{big_log}");
    assert_eq!(served.live("slow").await, None);
    assert_eq!(served.live("big").await, None);
    // No build process of the killed build is left.
    let left = std::process::Command::new("pgrep")
        .args(["-f", "build-script-build"])
        .output()
        .expect("pgrep");
    let pids = String::from_utf8_lossy(&left.stdout);
    for pid in pids.split_whitespace() {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        assert!(
            !exe.starts_with(shared_target_dir().join("acme/slow")),
            "the slow build script still runs as {pid}"
        );
    }
}

/// The memory limit (`prlimit --as`) holds for every build process: a build script that
/// asks for 3 GiB under a 2 GiB limit fails, and the push names the limit. Without the
/// limit the same request succeeds (Linux overcommits an untouched allocation), so this
/// fails if the limit is not applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_over_its_memory_limit_is_refused_naming_the_limit() {
    let served = Served::start(BuildsConfig {
        target_dir: Some(shared_target_dir()),
        cargo_dir: Some(shared_cargo_dir()),
        memory_mb: 2048,
        time_limit_secs: COLD_BUILD_SECS,
        ..BuildsConfig::default()
    })
    .await;
    let hungry = Repo::new().await;
    hungry.write(
        "Cargo.toml",
        "[package]\nname = \"hungry\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n",
    );
    hungry.write(
        "build.rs",
        "fn main() {\n    let wanted: Vec<u8> = Vec::with_capacity(3 << 30);\n    std::hint::black_box(&wanted);\n}\n",
    );
    hungry.write("src/lib.rs", "pub fn nothing() {}\n");
    hungry.write("tessera.toml", "kind = \"rust\"\n");
    hungry.commit("hungry").await;
    let (pushed, log) = hungry.push(&served.url("hungry")).await;
    assert!(!pushed, "{log}");
    assert!(
        log.contains("memory allocation of 3221225472 bytes failed"),
        "{log}"
    );
    assert!(
        log.contains("may use 2048 MiB of address space, [builds] memory_mb"),
        "{log}"
    );
    assert_eq!(served.live("hungry").await, None);
}

/// A running `tessera serve`, killed on drop.
struct Server {
    child: std::process::Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tessera(data_dir: &Path) -> std::process::Command {
    let mut command = crate::support::tessera_command(data_dir);
    // Must not reach builds: they get an empty environment plus an allowlist.
    command.env("TESSERA_TEST_SECRET", "hunter2");
    command
}

fn admin_cli(data_dir: &Path, args: &[&str]) -> String {
    let output = tessera(data_dir)
        .arg("admin")
        .args(args)
        .output()
        .expect("tessera admin");
    assert!(
        output.status.success(),
        "tessera admin {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn start_server(data_dir: &Path) -> Server {
    let (child, address) = crate::support::spawn_listening(
        tessera(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    Server { child, address }
}

/// One HTTP/1.1 GET over a fresh connection: the status and the body.
async fn get(address: &str, path: &str) -> (u16, String) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                crate::support::host_for(address, path)
            )
            .as_bytes(),
        )
        .await
        .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
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

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_build_comes_back_with_the_previous_version() {
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path();
    admin_cli(data_dir, &["create-user", "alice@example.org"]);
    admin_cli(
        data_dir,
        &["create-tenant", "acme", "--owner", "alice@example.org"],
    );
    let token = admin_cli(
        data_dir,
        &["token", "create", "alice@example.org", "--tenant", "acme"],
    );
    let mut server = start_server(data_dir);
    let url = |address: &str| format!("http://git:{token}@{address}/git/acme/sales.git");

    // Version 1: a prebuilt component.
    let repo = Repo::new().await;
    std::fs::write(repo.work().join("app.wasm"), guest_wasm("hello.wasm")).expect("write");
    repo.write(
        "tessera.toml",
        "kind = \"wasm\"\ncomponent = \"app.wasm\"\nvisibility = \"public\"\n",
    );
    repo.commit("hello").await;
    let (pushed, log) = repo.push(&url(&server.address)).await;
    assert!(pushed, "{log}");
    assert!(log.contains("deployed version 1"), "{log}");

    // A Rust build whose build script records its environment, then beats a heartbeat
    // for two minutes, both in the app's target directory (the one place outside its
    // working directory the sandbox lets it write).
    let marks = data_dir.join("builds/target/acme/sales");
    let env_file = marks.join("env");
    let heartbeat = marks.join("heartbeat");
    std::fs::remove_file(repo.work().join("app.wasm")).expect("rm");
    slow_crate(&repo, "slow", 0);
    repo.write(
        "build.rs",
        &format!(
            r#"use std::io::Write;
fn main() {{
    let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{{k}}={{v}}")).collect();
    std::fs::write({env:?}, env.join("\n")).unwrap();
    for _ in 0..600 {{
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open({beat:?}).unwrap();
        f.write_all(b".").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
    }}
}}
"#,
            env = env_file.display().to_string(),
            beat = heartbeat.display().to_string(),
        ),
    );
    repo.commit("slow").await;
    let push = repo
        .push_in_background(&url(&server.address), "Compiling slow")
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while file_len(&heartbeat) < 3 {
        assert!(Instant::now() < deadline, "the build script never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old_pid = server.child.id();
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("wait");
    let (pushed, log) = push.await.expect("push");
    assert!(!pushed, "the push of a killed server cannot succeed: {log}");

    // The build ran without the server's environment.
    let env = std::fs::read_to_string(&env_file).expect("env file");
    assert!(!env.contains("hunter2"), "{env}");
    assert!(!env.contains("TESSERA_"), "{env}");
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");

    // The sandbox dies with the server (bwrap's --die-with-parent and its PID
    // namespace): the orphaned build stops at once, before any restart.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped = file_len(&heartbeat);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        file_len(&heartbeat),
        stopped,
        "the orphaned build still runs"
    );
    let server = start_server(data_dir);
    assert!(
        !data_dir.join(format!("builds/work/{old_pid}")).exists(),
        "the killed server's working directory is left"
    );
    assert!(!data_dir.join(format!("builds/running/{old_pid}")).exists());

    // The previous version serves.
    let (status, body) = get(&server.address, "/apps/acme/sales/_dash-layout").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello"), "{body}");

    // And the next push works.
    std::fs::remove_file(repo.work().join("build.rs")).expect("rm");
    std::fs::remove_file(repo.work().join("Cargo.toml")).expect("rm");
    std::fs::remove_dir_all(repo.work().join("src")).expect("rm");
    std::fs::write(
        repo.work().join("app.wasm"),
        guest_wasm("sales_explorer.wasm"),
    )
    .expect("write");
    repo.write(
        "tessera.toml",
        "kind = \"wasm\"\ncomponent = \"app.wasm\"\nvisibility = \"public\"\n",
    );
    repo.commit("sales").await;
    let (pushed, log) = repo.push(&url(&server.address)).await;
    assert!(pushed, "{log}");
    assert!(log.contains("deployed version 2"), "{log}");
    // A running server picks up a new live version within its one-second refresh.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = get(&server.address, "/apps/acme/sales/_dash-layout").await;
        assert_eq!(status, 200, "{body}");
        if body.contains("Sales explorer") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "version 2 is not served 5 s after its push: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
