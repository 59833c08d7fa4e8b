//! `tessera dev`: one dashboard served from its folder on the author's machine. The folder
//! goes through the same build as a `git push` (its `tessera.toml`: a Rust crate, an
//! `app.py`, a prebuilt component) and the same deploy, sandbox and Dash routes as on a
//! server; when a file changes it is built and deployed again. The page follows by itself
//! through Dash's own hot reload (`_dash-config.hot_reload`, which makes the renderer poll
//! `_reload-hash`), callback errors show in Dash's dev tools as for an app's authors, and a
//! build or load that fails shows its message above the last good version (or alone, when
//! none ever built).
//!
//! Only on loopback: whoever reaches the page is taken for the app's author (dev tools,
//! error details), which is right for the person at the keyboard and for nobody else.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};

use crate::ids::Slug;
use crate::state::AppState;

/// The tenant `tessera dev` serves its one app in.
pub const TENANT: &str = "dev";

/// How often the renderer asks for the reload hash (Dash's default is 3 s; a local page
/// can afford a quicker answer to a save) and how many failed asks it forgives.
pub const HOT_RELOAD_INTERVAL_MS: u64 = 1_000;
/// See [`HOT_RELOAD_INTERVAL_MS`].
pub const HOT_RELOAD_MAX_RETRY: u32 = 30;

/// How often the folder is looked at, and how long it must stay unchanged before a build
/// (an editor's save may be several writes).
const POLL: Duration = Duration::from_millis(250);
const SETTLE: Duration = Duration::from_millis(200);

/// Most files looked at in one pass; a folder past it is refused rather than scanned
/// forever (a project, not a home directory).
const MAX_WATCHED_FILES: usize = 20_000;

/// Longest build message kept for the page.
const MAX_MESSAGE: usize = 16 << 10;

/// The served app's state as the page sees it.
#[derive(Debug)]
pub struct DevSession {
    pub tenant: Slug,
    pub app: Slug,
    status: Mutex<Status>,
}

#[derive(Debug, Default)]
struct Status {
    /// Changes whenever what the page shows should change.
    generation: u64,
    /// The last build's or load's failure, when it failed.
    error: Option<String>,
}

/// What `_reload-hash` answers, in Dash's shape.
#[derive(Debug, serde::Serialize)]
pub struct ReloadHash {
    #[serde(rename = "reloadHash")]
    pub reload_hash: String,
    /// Always a full page reload: the index page itself carries what a build may change
    /// (inline clientside functions, assets, the WebSocket block, the error banner), which
    /// Dash's in-place reload would keep.
    pub hard: bool,
    pub packages: Vec<String>,
    pub files: Vec<String>,
}

impl DevSession {
    pub fn new(tenant: Slug, app: Slug) -> DevSession {
        DevSession {
            tenant,
            app,
            status: Mutex::default(),
        }
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `tenant/app` is the app this session serves.
    pub fn serves(&self, tenant: &str, app: &str) -> bool {
        self.tenant.as_str() == tenant && self.app.as_str() == app
    }

    pub fn reload_hash(&self) -> ReloadHash {
        ReloadHash {
            reload_hash: hash_of(self.status().generation),
            hard: true,
            packages: Vec::new(),
            files: Vec::new(),
        }
    }

    /// What the index page adds, read at once: the hash it is rendered at and the
    /// failure it shows.
    pub fn page(&self) -> crate::dash::index::DevPage {
        let status = self.status();
        crate::dash::index::DevPage {
            error: status.error.clone(),
            reload_hash: hash_of(status.generation),
        }
    }

    /// The last failure's message, while the folder does not build.
    pub fn error(&self) -> Option<String> {
        self.status().error.clone()
    }

    /// A new version is live: the page reloads and the failure, if any, is gone.
    pub fn deployed(&self) {
        let mut status = self.status();
        status.generation += 1;
        status.error = None;
    }

    /// A build or load failed with `message`: the page reloads to show it.
    pub fn failed(&self, message: String) {
        let mut status = self.status();
        status.generation += 1;
        status.error = Some(cut(message, MAX_MESSAGE));
    }
}

fn hash_of(generation: u64) -> String {
    format!("tessera-dev-{generation}")
}

/// The `tessera dev` session serving `tenant/app`, if this server is one and that is its
/// app (every other app of it is served as a server serves it).
pub fn session_for<'a>(
    state: &'a AppState,
    tenant: &str,
    app: &str,
) -> Option<&'a Arc<DevSession>> {
    state.dev.get().filter(|dev| dev.serves(tenant, app))
}

/// The page shown at the app's address while no version of it ever built: the failure,
/// and a reload every second until one does.
pub fn page_without_version(message: &str) -> String {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"UTF-8\"><meta http-equiv=\"refresh\" content=\"1\">\
         <title>tessera dev: not built</title></head><body>\
         <pre id=\"_tessera-dev-error\" style=\"{BANNER_STYLE}\">{escaped}</pre></body></html>\n"
    )
}

/// How the failure banner looks (inline: an app's CSS cannot be relied on).
pub const BANNER_STYLE: &str = "margin:0;padding:12px 16px;background:#fdecea;color:#611a15;\
border-bottom:2px solid #f44336;font:13px/1.4 monospace;white-space:pre-wrap;max-height:50vh;overflow:auto";

fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut start = text.len() - max;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text = format!("…{}", &text[start..]);
    }
    text
}

/// The app's name for a folder: `--name`, else the folder's own name made a slug.
pub fn app_name(dir: &Path, name: Option<&str>) -> anyhow::Result<Slug> {
    let raw = match name {
        Some(name) => name.to_owned(),
        None => {
            let dir = std::fs::canonicalize(dir)
                .with_context(|| format!("cannot open {}", dir.display()))?;
            let base = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut slug: String = base
                .to_ascii_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            while slug.contains("--") {
                slug = slug.replace("--", "-");
            }
            slug.trim_matches('-').chars().take(63).collect()
        }
    };
    Slug::parse(&raw).map_err(|_| {
        anyhow::anyhow!(
            "{raw:?} cannot name an app (lowercase letters, digits and '-'): pass --name"
        )
    })
}

/// Refuses an address other machines could reach: the page treats its visitor as the
/// app's author.
pub fn check_listen(listen: SocketAddr) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() {
        bail!(
            "tessera dev listens on loopback only (127.0.0.1 or ::1): whoever opens its page is \
             treated as the app's author (got {listen})"
        );
    }
    Ok(())
}

/// A folder's files as last seen: path → (modified, length). Build output and version
/// control are left out.
type Snapshot = BTreeMap<PathBuf, (SystemTime, u64)>;

/// Folders never looked into: build output, version control, caches, our own data.
const IGNORED_DIRS: [&str; 6] = [
    "target",
    ".git",
    ".tessera-dev",
    "__pycache__",
    "node_modules",
    ".venv",
];

fn snapshot(root: &Path) -> anyhow::Result<Snapshot> {
    let mut files = Snapshot::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if !IGNORED_DIRS.iter().any(|ignored| name == *ignored) {
                    pending.push(entry.path());
                }
                continue;
            }
            if let Ok(meta) = entry.metadata() {
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                files.insert(entry.path(), (modified, meta.len()));
            }
            if files.len() > MAX_WATCHED_FILES {
                bail!(
                    "{} holds more than {MAX_WATCHED_FILES} files outside target/ and .git/: run tessera dev in the project's folder",
                    root.display()
                );
            }
        }
    }
    Ok(files)
}

/// Builds `dir` as a push would and deploys it as the session's app; on failure the
/// session keeps the message and the live version stays.
async fn build_and_deploy(state: &AppState, session: &DevSession, dir: &Path) {
    let started = std::time::Instant::now();
    let (log, mut lines) = crate::deploy::Log::new(256);
    // The build's own lines (cargo's, the loader's) go to the terminal as they come.
    let printer = tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            eprint!("{line}");
        }
    });
    let result = deploy_once(state, session, dir, &log).await;
    let transcript = log.transcript();
    drop(log);
    let _ = printer.await;
    match result {
        Ok(summary) => {
            session.deployed();
            println!(
                "tessera dev: {summary} in {:.1} s; the page reloads",
                started.elapsed().as_secs_f64()
            );
        }
        Err(error) => {
            eprintln!("tessera dev: {error}");
            eprintln!("tessera dev: the page shows the error; the last good version keeps serving");
            // In the terminal's order: the build's lines, then what failed.
            let message = if transcript.trim().is_empty() {
                error
            } else {
                format!("{transcript}\n{error}")
            };
            session.failed(message);
        }
    }
}

async fn deploy_once(
    state: &AppState,
    session: &DevSession,
    dir: &Path,
    log: &crate::deploy::Log,
) -> Result<String, String> {
    let built = state
        .builds
        .build(&session.tenant, &session.app, dir, log)
        .await?;
    let files = crate::deploy::Shipped {
        assets: built.assets,
        data: built.data,
    };
    let mut deployer = state.deployer();
    deployer.new_app_visibility = crate::tenancy::Visibility::Public;
    let deployed = deployer
        .deploy_with_files(
            &session.tenant,
            &session.app,
            built.component,
            files,
            "tessera dev",
            state.clock.now_millis(),
            true,
        )
        .await
        .map_err(|e| format!("{} was refused: {e}", built.label))?;
    Ok(format!(
        "version {} of {}/{} live: {} ({} callbacks)",
        deployed.number, session.tenant, session.app, deployed.title, deployed.callbacks
    ))
}

/// The first build, then a build after every change of the folder, for ever.
pub async fn watch(state: AppState, session: Arc<DevSession>, dir: PathBuf) -> anyhow::Result<()> {
    let mut seen = snapshot(&dir)?;
    build_and_deploy(&state, &session, &dir).await;
    loop {
        tokio::time::sleep(POLL).await;
        let now = snapshot(&dir)?;
        if now == seen {
            continue;
        }
        // Wait for the writes to settle, then build what is there.
        let mut settled = now;
        loop {
            tokio::time::sleep(SETTLE).await;
            let again = snapshot(&dir)?;
            if again == settled {
                break;
            }
            settled = again;
        }
        let changed = changed_paths(&seen, &settled, &dir);
        println!("tessera dev: {changed} changed; building");
        seen = settled;
        build_and_deploy(&state, &session, &dir).await;
    }
}

/// "src/lib.rs" or "src/lib.rs and 2 more".
fn changed_paths(before: &Snapshot, after: &Snapshot, root: &Path) -> String {
    let mut changed = after
        .iter()
        .filter(|(path, stamp)| before.get(*path) != Some(stamp))
        .map(|(path, _)| path)
        .chain(before.keys().filter(|path| !after.contains_key(*path)));
    let first = changed
        .next()
        .map(|p| p.strip_prefix(root).unwrap_or(p).display().to_string())
        .unwrap_or_default();
    match changed.count() {
        0 => first,
        more => format!("{first} and {more} more"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_changes_with_each_outcome_and_the_error_clears_on_success() {
        let session = DevSession::new(
            Slug::parse("dev").expect("slug"),
            Slug::parse("app").expect("slug"),
        );
        let first = session.reload_hash().reload_hash;
        session.failed("boom".into());
        let second = session.reload_hash().reload_hash;
        assert_ne!(first, second);
        assert_eq!(session.error().as_deref(), Some("boom"));
        session.deployed();
        assert_ne!(session.reload_hash().reload_hash, second);
        assert_eq!(session.error(), None);
        assert!(session.serves("dev", "app"));
        assert!(!session.serves("dev", "other"));
    }

    #[test]
    fn only_loopback_is_accepted() {
        assert!(check_listen("127.0.0.1:8050".parse().expect("addr")).is_ok());
        assert!(check_listen("[::1]:8050".parse().expect("addr")).is_ok());
        assert!(check_listen("0.0.0.0:8050".parse().expect("addr")).is_err());
        assert!(check_listen("192.168.1.5:8050".parse().expect("addr")).is_err());
    }

    #[test]
    fn a_folder_name_becomes_the_app_name() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let dir = scratch.path().join("My Sales_Report");
        std::fs::create_dir(&dir).expect("mkdir");
        assert_eq!(
            app_name(&dir, None).expect("a name").as_str(),
            "my-sales-report"
        );
        assert_eq!(
            app_name(&dir, Some("live")).expect("a name").as_str(),
            "live"
        );
        assert!(app_name(&dir, Some("Not A Slug")).is_err());
    }

    #[test]
    fn the_snapshot_sees_edits_and_skips_build_output() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let root = scratch.path();
        std::fs::write(root.join("app.py"), "a").expect("write");
        std::fs::create_dir_all(root.join("target/debug")).expect("mkdir");
        std::fs::write(root.join("target/debug/x"), "x").expect("write");
        let before = snapshot(root).expect("snapshot");
        assert_eq!(before.len(), 1, "{before:?}");
        std::fs::write(root.join("target/debug/y"), "y").expect("write");
        assert_eq!(snapshot(root).expect("snapshot"), before);
        std::fs::write(root.join("app.py"), "ab").expect("write");
        let after = snapshot(root).expect("snapshot");
        assert_ne!(after, before);
        assert_eq!(changed_paths(&before, &after, root), "app.py");
    }

    #[test]
    fn the_page_without_a_version_escapes_the_message_and_reloads() {
        let page = page_without_version("error: <script>alert(1)</script> & more");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"),
            "{page}"
        );
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains(r#"http-equiv="refresh""#), "{page}");
    }

    #[test]
    fn long_messages_keep_their_end() {
        let text = format!("{}the end", "x".repeat(100));
        let kept = cut(text, 10);
        assert!(kept.ends_with("the end"));
        assert!(kept.len() <= 10 + "…".len());
    }
}
