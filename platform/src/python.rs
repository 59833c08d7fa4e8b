//! Python dashboards (`kind = "python"`, issue 18; docs/python.md): the rules of a pushed
//! Python app folder, the bundle a version stores, and [`PythonHost`], which boots an app
//! at deploy and restores its instances when it is served.
//!
//! A version of a Python app is one blob in the version's `component` column, so it is
//! counted against the tenant's storage quota, pruned and rolled back like a component:
//! the app's `.py` files and the [`sandbox::PythonImage`] taken right after its imports and
//! warm-up. The deploy builds the *source bundle* (files only) from the pushed folder
//! ([`read_folder`]); the deployer boots it once ([`PythonHost::boot`], under the boot
//! deadline and the tenant's memory cap) and stores the *bundle* with its image. Serving
//! restores instances from the image ([`PythonHost::restore`]); no viewer waits for the
//! imports. Both kinds are told apart by the blob's first bytes ([`is_bundle`]): a
//! component starts with `\0asm`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// The first bytes of a Python app's blob (the `1` is the format's version).
const MAGIC: &[u8; 8] = b"TSPYAPP1";
/// Largest `.py` file of an app.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Largest sum of an app's `.py` files.
pub const MAX_TOTAL_BYTES: u64 = 16 << 20;
/// Most `.py` files in an app.
pub const MAX_FILES: usize = 2000;
/// Deepest folder of an app.
const MAX_DEPTH: usize = 16;
/// Bound on a bundle's header (the file list).
const MAX_HEADER: usize = 8 << 20;

/// Servers a Dash app's `requirements.txt` lists for its deployment elsewhere: Tessera
/// serves the app itself, so these are neither installed nor needed.
pub const SERVERS: &[&str] = &["gunicorn", "flask", "waitress", "uwsgi"];

/// What a Dash app lists for `DiskcacheManager`: Tessera runs background callbacks as its
/// own jobs, and the runtime has an in-memory `diskcache` for the manager's cache.
pub const JOB_MANAGERS: &[&str] = &["diskcache"];

/// The Python version of the interpreter (CPython for WASI): the one pip resolves for.
pub const GUEST_PYTHON: &str = "3.15";

/// Why a Python app was refused or cannot be served; the text is what its author sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pushed folder breaks a rule (no `app.py`, a link, a size, `requirements.txt`).
    #[error("{0}")]
    Folder(String),
    /// `app.py` ran past the boot deadline while it loaded.
    #[error(
        "app.py did not finish loading within the {secs} s limit ([builds] python_boot_secs): \
         its imports or top-level code run too long; the live version is unchanged"
    )]
    BootDeadline {
        /// The limit, in seconds.
        secs: u64,
    },
    /// `app.py` needed more memory than the cap while it loaded.
    #[error(
        "app.py needed more than the {mib} MiB memory limit while loading ([limits] memory_mb, \
         or the tenant's quota); the live version is unchanged"
    )]
    BootMemory {
        /// The cap, in MiB.
        mib: usize,
    },
    /// `app.py` failed to load: the Python traceback.
    #[error("{0}")]
    Load(String),
    /// The sandbox refused the app otherwise (its answers are unusable, a limit).
    #[error("{0}")]
    Refused(sandbox::Error),
    /// This server's interpreter is missing or does not load.
    #[error("Python apps are not available on this server: {0}")]
    Interpreter(String),
    /// The stored blob is damaged.
    #[error("the stored Python app is damaged: {0}")]
    Bundle(String),
    /// Writing the app's files for its instances failed.
    #[error("cannot lay out the Python app's files: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether the failure is the app's own (the same version fails the same way again).
    pub fn is_the_apps(&self) -> bool {
        !matches!(self, Error::Interpreter(_) | Error::Io(_))
    }
}

/// Whether a version's blob is a Python app (else it is a component).
pub fn is_bundle(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// An app's files (relative paths, `/`-separated) and, once booted, its memory image.
#[derive(Debug, Default, Clone)]
pub struct Bundle {
    /// The `.py` files, sorted by path.
    pub files: Vec<(String, Vec<u8>)>,
    /// [`sandbox::PythonImage::to_bytes`]; empty in a source bundle.
    pub image: Vec<u8>,
}

impl Bundle {
    /// The blob: magic, header length, header (JSON: paths and sizes), files, image.
    pub fn encode(&self) -> Vec<u8> {
        let header = serde_json::json!({
            "files": self.files.iter().map(|(path, bytes)| (path, bytes.len())).collect::<Vec<_>>(),
            "image": self.image.len(),
        })
        .to_string();
        let size: usize = self.files.iter().map(|(_, b)| b.len()).sum::<usize>() + self.image.len();
        let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + size);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        for (_, bytes) in &self.files {
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(&self.image);
        out
    }

    /// Reads a blob written by [`Bundle::encode`]; every size and path is checked.
    pub fn decode(bytes: &[u8]) -> Result<Bundle, Error> {
        let bad = |why: &str| Error::Bundle(why.to_owned());
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| bad("not a Python app"))?;
        let (len, rest) = rest.split_at_checked(4).ok_or_else(|| bad("truncated"))?;
        let len = u32::from_le_bytes(len.try_into().map_err(|_| bad("truncated"))?) as usize;
        if len > MAX_HEADER {
            return Err(bad("header too large"));
        }
        let (header, mut rest) = rest.split_at_checked(len).ok_or_else(|| bad("truncated"))?;
        let header: serde_json::Value =
            serde_json::from_slice(header).map_err(|e| Error::Bundle(format!("header: {e}")))?;
        let mut files = Vec::new();
        for entry in header["files"].as_array().ok_or_else(|| bad("files"))? {
            let path = entry[0].as_str().ok_or_else(|| bad("file path"))?;
            check_path(path).map_err(Error::Bundle)?;
            let size = entry[1].as_u64().ok_or_else(|| bad("file size"))? as usize;
            let (file, after) = rest
                .split_at_checked(size)
                .ok_or_else(|| bad("truncated"))?;
            files.push((path.to_owned(), file.to_vec()));
            rest = after;
        }
        let image_len = header["image"].as_u64().ok_or_else(|| bad("image size"))? as usize;
        if rest.len() != image_len {
            return Err(bad("the image's size does not match"));
        }
        Ok(Bundle {
            files,
            image: rest.to_vec(),
        })
    }

    /// The sha256 of the files alone (paths and bytes): the folder their instances see.
    fn files_sha256(&self) -> String {
        let mut digest = Sha256::new();
        for (path, bytes) in &self.files {
            digest.update(path.as_bytes());
            digest.update([0]);
            digest.update((bytes.len() as u64).to_le_bytes());
            digest.update(bytes);
        }
        hex::encode(digest.finalize())
    }
}

/// A relative path of plain names: no `..`, no `.`, no empty part, nothing absolute.
fn check_path(path: &str) -> Result<(), String> {
    let plain = !path.is_empty()
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\\'));
    if plain {
        Ok(())
    } else {
        Err(format!("{path:?} is not a plain relative path"))
    }
}

/// The source bundle of the app folder `root`: every `.py` file (hidden folders and
/// `__pycache__` skipped), `app.py` required at the top, links refused wherever they are,
/// sizes bounded while walking ([`read_requirements`] reads `requirements.txt`).
/// Blocking.
pub fn read_folder(root: &Path) -> Result<Bundle, Error> {
    let meta = std::fs::symlink_metadata(root.join("app.py"));
    match meta {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(Error::Folder(
                "app.py is a link: links are refused".to_owned(),
            ));
        }
        Ok(meta) if meta.is_file() => {}
        _ => {
            return Err(Error::Folder(
                "kind = \"python\" needs app.py at the root of the repository (the file that \
                 makes `app = Dash(__name__)`)"
                    .to_owned(),
            ));
        }
    }
    let mut files = Vec::new();
    let mut total = 0u64;
    walk(root, "", 0, &mut files, &mut total)?;
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Bundle {
        files,
        image: Vec::new(),
    })
}

fn walk(
    dir: &Path,
    prefix: &str,
    depth: usize,
    files: &mut Vec<(String, Vec<u8>)>,
    total: &mut u64,
) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::Folder(format!(
            "{prefix} is nested more than {MAX_DEPTH} folders deep"
        )));
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(Error::Folder(format!(
                "a file name in {prefix:?} is not UTF-8"
            )));
        };
        if name.starts_with('.') || name == "__pycache__" {
            continue;
        }
        let path = match prefix {
            "" => name.clone(),
            _ => format!("{prefix}/{name}"),
        };
        let meta = std::fs::symlink_metadata(entry.path())?;
        if meta.file_type().is_symlink() {
            return Err(Error::Folder(format!(
                "{path} is a link: a Python app's files must be plain files"
            )));
        }
        if meta.is_dir() {
            walk(&entry.path(), &path, depth + 1, files, total)?;
            continue;
        }
        if !meta.is_file() || !name.ends_with(".py") {
            continue;
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(Error::Folder(format!(
                "{path} is {} bytes, more than the {MAX_FILE_BYTES}-byte limit of a Python file",
                meta.len()
            )));
        }
        *total += meta.len();
        if *total > MAX_TOTAL_BYTES || files.len() >= MAX_FILES {
            return Err(Error::Folder(format!(
                "the app's .py files are more than {MAX_FILES} files or {} MiB together",
                MAX_TOTAL_BYTES >> 20
            )));
        }
        let bytes = std::fs::read(entry.path())?;
        if bytes.len() as u64 != meta.len() {
            return Err(Error::Folder(format!("{path} changed while it was read")));
        }
        files.push((path, bytes));
    }
    Ok(())
}

/// The platform's file in a booted app's folder (`/app/.tessera/app.json`): where the app
/// is served. Hidden, so a pushed folder never ships it.
const APP_CONFIG: &str = ".tessera/app.json";

/// Largest `requirements.txt`.
const MAX_REQUIREMENTS_BYTES: u64 = 64 << 10;
/// Most requirements in `requirements.txt`.
const MAX_REQUIREMENTS: usize = 200;

/// One line of a Python app's `requirements.txt`, checked (PEP 508).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The package's normalized name (`scikit-learn`, lower case, `-` for `_` and `.`).
    pub name: String,
    /// The requirement as pip is given it (its canonical form: name, extras, versions,
    /// markers; never an option, a URL or a path).
    pub line: String,
}

/// The requirements of the app folder `root` (none without a `requirements.txt`): each line
/// a package name with extras, version specifiers and markers. Options (`-r`, `-e`,
/// `--index-url`, `--hash`), URLs and paths are refused, so pip reads only what this
/// server tells it and nothing is built from source. Blocking.
pub fn read_requirements(root: &Path) -> Result<Vec<Requirement>, Error> {
    let path = root.join("requirements.txt");
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    if !meta.is_file() || meta.len() > MAX_REQUIREMENTS_BYTES {
        return Err(Error::Folder(format!(
            "requirements.txt must be a plain file of at most {} KiB",
            MAX_REQUIREMENTS_BYTES >> 10
        )));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|_| Error::Folder("requirements.txt is not UTF-8".to_owned()))?;
    parse_requirements(&text).map_err(Error::Folder)
}

/// [`read_requirements`]' rules for the text of a `requirements.txt`.
pub fn parse_requirements(text: &str) -> Result<Vec<Requirement>, String> {
    use std::str::FromStr;
    let mut out: Vec<Requirement> = Vec::new();
    for (number, raw) in text.lines().enumerate() {
        let number = number + 1;
        // pip's comments: `#` at the start or after whitespace.
        let line = match raw.find(" #").or_else(|| raw.find("\t#")) {
            Some(at) => &raw[..at],
            None if raw.trim_start().starts_with('#') => "",
            None => raw,
        }
        .trim();
        if line.is_empty() {
            continue;
        }
        let refuse = |why: &str| format!("requirements.txt line {number}: {line:?}: {why}");
        if line.starts_with('-') || line.contains(" -") || line.ends_with('\\') {
            return Err(refuse(
                "options (-r, -c, -e, --index-url, --hash, …) and continued lines are not \
                 supported: list one package per line, as `name[extras] >= version ; marker`",
            ));
        }
        // PEP 508's name rule, checked here: pep508_rs 0.9.2 panics on a name ending in
        // `.`, `_` or `-` followed by a space or `;` (konstin/pep508_rs#24, unreleased).
        let name: &str = line
            .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .next()
            .unwrap_or_default();
        if name.ends_with(['.', '_', '-']) {
            return Err(refuse(
                "not a package requirement: a package name ends with a letter or digit",
            ));
        }
        let requirement = pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(line)
            .map_err(|e| refuse(&format!("not a package requirement: {}", e.message)))?;
        if matches!(
            requirement.version_or_url,
            Some(pep508_rs::VersionOrUrl::Url(_))
        ) {
            return Err(refuse(
                "URLs and paths are not supported: packages come from the server's package \
                 index ([builds] python_index_url)",
            ));
        }
        let name = requirement.name.as_ref().to_owned();
        if out.iter().any(|known| known.name == name) {
            return Err(refuse(&format!("{name} is listed twice")));
        }
        if out.len() == MAX_REQUIREMENTS {
            return Err(refuse(&format!(
                "more than {MAX_REQUIREMENTS} requirements"
            )));
        }
        out.push(Requirement {
            name,
            line: requirement.to_string(),
        });
    }
    Ok(out)
}

/// The packages every Python app has (compiled into the interpreter, or in its site
/// folder, and Tessera's own `dash`), by normalized name, with their versions: the
/// constraints pip resolves a `requirements.txt` against (`scripts/wasi-python.sh` writes
/// them, with a metadata-only wheel for each, under `{python_dir}/provided`).
#[derive(Debug, Clone, Default)]
pub struct Provided {
    versions: std::collections::BTreeMap<String, String>,
}

impl Provided {
    /// The provided packages of the interpreter folder `python_dir`.
    pub fn read(python_dir: &Path) -> Result<Provided, Error> {
        let path = python_dir.join("provided").join("constraints.txt");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::Interpreter(format!(
                "{}: {e} (scripts/wasi-python.sh writes it)",
                path.display()
            ))
        })?;
        Ok(Provided::parse(&text))
    }

    /// `name==version+tessera` lines.
    fn parse(text: &str) -> Provided {
        let versions = text
            .lines()
            .filter_map(|line| line.split_once("=="))
            .map(|(name, version)| {
                let name = name.trim().to_ascii_lowercase().replace(['_', '.'], "-");
                let version = version.trim().trim_end_matches("+tessera").to_owned();
                (name, version)
            })
            .collect();
        Provided { versions }
    }

    /// The provided version of the package `name` (normalized).
    pub fn version(&self, name: &str) -> Option<&str> {
        self.versions.get(name).map(String::as_str)
    }
}

/// [`read_folder`] for a deploy without a build (`tessera deploy FOLDER`): a folder whose
/// `requirements.txt` needs packages the runtime does not provide is refused, naming them,
/// since only a push's build installs packages (in the build sandbox). Blocking.
pub fn read_folder_installing_nothing(root: &Path, python_dir: &Path) -> Result<Bundle, Error> {
    let requirements = read_requirements(root)?;
    if !requirements.is_empty() {
        let plan = plan_install(&requirements, &Provided::read(python_dir)?);
        if !plan.install.is_empty() {
            let names: Vec<_> = plan.install.iter().map(|r| r.line.as_str()).collect();
            return Err(Error::Folder(format!(
                "requirements.txt lists packages the runtime does not provide ({}): push the \
                 app with git, whose build installs them in the build sandbox",
                names.join(", ")
            )));
        }
    }
    read_folder(root)
}

/// What a push does with each requirement: what pip installs, and what it does not, with
/// the line its author sees about it.
#[derive(Debug, Default)]
pub struct InstallPlan {
    /// The requirements pip installs (with their dependencies).
    pub install: Vec<Requirement>,
    /// One line for each requirement that is not installed, and why.
    pub skipped: Vec<String>,
}

/// Splits `requirements`: servers are not needed, provided packages keep the runtime's
/// version (an author's pin of another version is said, not installed: the compiled-in
/// numpy cannot be replaced by a pure-Python one), the rest is for pip.
pub fn plan_install(requirements: &[Requirement], provided: &Provided) -> InstallPlan {
    let mut plan = InstallPlan::default();
    for requirement in requirements {
        if SERVERS.contains(&requirement.name.as_str()) {
            plan.skipped.push(format!(
                "{}: not needed, Tessera serves the app",
                requirement.line
            ));
        } else if JOB_MANAGERS.contains(&requirement.name.as_str()) {
            plan.skipped.push(format!(
                "{}: not needed, Tessera runs background callbacks (the runtime has an \
                 in-memory diskcache)",
                requirement.line
            ));
        } else if let Some(version) = provided.version(&requirement.name) {
            plan.skipped.push(format!(
                "{}: provided by the runtime ({} {version})",
                requirement.line, requirement.name
            ));
        } else {
            plan.install.push(requirement.clone());
        }
    }
    plan
}

/// The interpreter shared by every Python app of this server (compiled once, cached on
/// disk by its sha256), and where apps' files are laid out for their instances. Cheap to
/// clone.
#[derive(Clone)]
pub struct PythonHost {
    inner: Arc<HostInner>,
}

struct HostInner {
    interpreter_dir: PathBuf,
    runtime_dir: PathBuf,
    /// `{apps_dir}/{sha256 of the files}/`: one read-only copy per set of files.
    apps_dir: PathBuf,
    boot: Duration,
}

/// A compiled interpreter, or why it did not load.
type Loaded = Result<Arc<sandbox::PythonRuntime>, String>;

/// The interpreters of this process by their folder: every host (the server's, the
/// deployer of `tessera deploy`, the tests' platforms) shares one compile.
fn interpreters(dir: &Path) -> Arc<OnceLock<Loaded>> {
    static LOADED: std::sync::Mutex<Vec<(PathBuf, Arc<OnceLock<Loaded>>)>> =
        std::sync::Mutex::new(Vec::new());
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, once)) = loaded.iter().find(|(path, _)| path == dir) {
        return once.clone();
    }
    let once = Arc::new(OnceLock::new());
    loaded.push((dir.to_owned(), once.clone()));
    once
}

impl PythonHost {
    /// A host for `builds`' interpreter, laying out apps' files under `apps_dir`.
    pub fn new(builds: &crate::config::BuildsConfig, apps_dir: PathBuf) -> PythonHost {
        let (interpreter_dir, runtime_dir) = builds.python_dirs();
        PythonHost {
            inner: Arc::new(HostInner {
                interpreter_dir,
                runtime_dir,
                apps_dir,
                boot: Duration::from_secs(builds.python_boot_secs.max(1)),
            }),
        }
    }

    /// The boot deadline (`[builds] python_boot_secs`).
    pub fn boot_deadline(&self) -> Duration {
        self.inner.boot
    }

    /// The interpreter, compiled (or read from its cache) on first use. Blocking: the
    /// first compile of a new interpreter takes minutes.
    pub fn runtime(&self) -> Result<Arc<sandbox::PythonRuntime>, Error> {
        let inner = &*self.inner;
        interpreters(&inner.interpreter_dir)
            .get_or_init(|| {
                let wasm = inner.interpreter_dir.join("python.wasm");
                if !wasm.is_file() || !inner.runtime_dir.join("_tessera_runtime.py").is_file() {
                    return Err(format!(
                        "no interpreter at {} or no guest runtime at {} (scripts/wasi-python.sh \
                         installs the interpreter; [builds] python_dir, python_runtime_dir)",
                        inner.interpreter_dir.display(),
                        inner.runtime_dir.display()
                    ));
                }
                sandbox::PythonRuntime::load(&wasm, &inner.interpreter_dir.join("cache"))
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(Error::Interpreter)
    }

    /// Loads the interpreter (its compiled code from the cache, or a compile) on a thread of
    /// its own, when this server has one, so that no viewer of the first Python app waits
    /// for it (reading and checking the 278 MB artifact takes about half a second).
    pub fn load_in_background(&self) {
        if !self.inner.interpreter_dir.join("python.wasm").is_file() {
            return;
        }
        let host = self.clone();
        let spawned = std::thread::Builder::new()
            .name("python-interpreter".to_owned())
            .spawn(move || {
                if let Err(error) = host.runtime() {
                    tracing::warn!(%error, "the Python interpreter does not load");
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the thread that loads the Python interpreter");
        }
    }

    /// The folders an instance of the app with `bundle`'s files and the data folder `data`
    /// sees (its files written once per set of files, complete before they are used; an
    /// empty folder at `/data` when the version ships no data).
    fn dirs(&self, bundle: &Bundle, data: Option<PathBuf>) -> Result<sandbox::PythonDirs, Error> {
        let inner = &*self.inner;
        let data = match data {
            Some(data) => data,
            None => {
                let empty = inner.apps_dir.join(".no-data");
                std::fs::create_dir_all(&empty)?;
                empty
            }
        };
        let app = inner.apps_dir.join(bundle.files_sha256());
        if !app.is_dir() {
            std::fs::create_dir_all(&inner.apps_dir)?;
            let partial = tempfile::Builder::new()
                .prefix(".partial-")
                .tempdir_in(&inner.apps_dir)?;
            for (path, bytes) in &bundle.files {
                check_path(path).map_err(Error::Bundle)?;
                let to = partial.path().join(path);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&to, bytes)?;
            }
            let partial = partial.keep();
            if let Err(e) = std::fs::rename(&partial, &app) {
                // Another load laid the same files out meanwhile.
                let _ = std::fs::remove_dir_all(&partial);
                if !app.is_dir() {
                    return Err(e.into());
                }
            }
        }
        Ok(sandbox::PythonDirs {
            stdlib: inner.interpreter_dir.join("lib"),
            runtime: inner.runtime_dir.clone(),
            site: inner.interpreter_dir.join("site"),
            app,
            data,
        })
    }

    /// Boots the source bundle `source` once (its imports and warm-up under the boot
    /// deadline and `limits`' memory cap, its data folder `data` at `/data`, served under
    /// `pathname_prefix`) and returns the app with the blob to store: the files and the
    /// memory image. No settings, data sources or cache: the image is stored with the
    /// version and shared by every later value of them. Blocking.
    pub fn boot(
        &self,
        source: &[u8],
        limits: sandbox::Limits,
        data: Option<PathBuf>,
        pathname_prefix: &str,
    ) -> Result<(sandbox::PythonApp, Vec<u8>), Error> {
        let mut bundle = Bundle::decode(source)?;
        // Where the app is served is known while app.py loads, as Dash's
        // `requests_pathname_prefix` is (`get_relative_path`, `get_asset_url` in layouts):
        // `_tessera_boot` reads it from the app's folder.
        bundle.files.retain(|(path, _)| path != APP_CONFIG);
        let config = serde_json::json!({ "requests_pathname_prefix": pathname_prefix });
        bundle
            .files
            .push((APP_CONFIG.to_owned(), config.to_string().into_bytes()));
        bundle.files.sort_by(|a, b| a.0.cmp(&b.0));
        let runtime = self.runtime()?;
        let dirs = self.dirs(&bundle, data)?;
        let memory = limits.memory_bytes;
        let app = sandbox::PythonApp::load(runtime, dirs, limits, self.inner.boot).map_err(
            |e| match e {
                sandbox::Error::Deadline { .. } => Error::BootDeadline {
                    secs: self.inner.boot.as_secs(),
                },
                sandbox::Error::Memory { .. } => Error::BootMemory { mib: memory >> 20 },
                sandbox::Error::InvalidComponent { reason } => Error::Load(reason),
                other => Error::Refused(other),
            },
        )?;
        bundle.image = app.image().to_bytes().map_err(Error::Refused)?;
        Ok((app, bundle.encode()))
    }

    /// The stored app `blob` with a new instance restored from its image, under the
    /// load's limits, data folder, settings and capabilities, its turns run by `sandbox`'s
    /// scheduler for the load's owner. Blocking.
    pub fn restore(
        &self,
        blob: &[u8],
        options: sandbox::LoadOptions,
        sandbox: &sandbox::Sandbox,
    ) -> Result<sandbox::PythonApp, Error> {
        let started = std::time::Instant::now();
        let bundle = Bundle::decode(blob)?;
        if bundle.image.is_empty() {
            return Err(Error::Bundle("no memory image".to_owned()));
        }
        let runtime = self.runtime()?;
        let dirs = self.dirs(&bundle, options.data_dir)?;
        let decoded = started.elapsed();
        let image = sandbox::PythonImage::from_bytes(&bundle.image, &runtime)
            .map_err(|e| Error::Bundle(e.to_string()))?;
        let decompressed = started.elapsed();
        let app = sandbox::PythonApp::from_image(runtime, dirs, image, options.limits)
            .map_err(Error::Refused)?;
        tracing::debug!(
            decoded_ms = decoded.as_secs_f64() * 1e3,
            image_ms = (decompressed - decoded).as_secs_f64() * 1e3,
            restored_ms = (started.elapsed() - decompressed).as_secs_f64() * 1e3,
            instance = ?app.boot,
            "python app restored"
        );
        Ok(app.scheduled_by(sandbox, options.owner).granted(
            options.settings,
            options.capabilities,
            options.outbound,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_reads_back_and_damage_is_refused() {
        let bundle = Bundle {
            files: vec![
                ("app.py".to_owned(), b"print(1)".to_vec()),
                ("pkg/util.py".to_owned(), b"X = 2".to_vec()),
            ],
            image: b"IMAGE".to_vec(),
        };
        let blob = bundle.encode();
        assert!(is_bundle(&blob));
        assert!(!is_bundle(b"\0asm\x0d\0\x01\0"));
        let back = Bundle::decode(&blob).expect("decodes");
        assert_eq!(back.files, bundle.files);
        assert_eq!(back.image, b"IMAGE");
        assert!(Bundle::decode(&blob[..blob.len() - 1]).is_err());
        let evil = Bundle {
            files: vec![("../etc/passwd".to_owned(), Vec::new())],
            image: Vec::new(),
        };
        assert!(Bundle::decode(&evil.encode()).is_err());
    }

    #[test]
    fn a_folder_needs_app_py_and_refuses_links_and_large_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let err = read_folder(root).expect_err("no app.py");
        assert!(err.to_string().contains("needs app.py"), "{err}");
        std::fs::write(root.join("app.py"), "import dash\n").expect("write");
        std::fs::create_dir_all(root.join("lib/__pycache__")).expect("mkdir");
        std::fs::write(root.join("lib/util.py"), "X = 1\n").expect("write");
        std::fs::write(root.join("lib/__pycache__/util.pyc"), "junk").expect("write");
        std::fs::write(root.join("notes.txt"), "not shipped").expect("write");
        std::fs::write(root.join("requirements.txt"), "dash==4.4.1\n").expect("write");
        let bundle = read_folder(root).expect("a plain folder");
        let paths: Vec<_> = bundle.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["app.py", "lib/util.py"]);
        std::os::unix::fs::symlink("/etc/passwd", root.join("lib/passwd.py")).expect("ln");
        let err = read_folder(root).expect_err("a link");
        assert!(err.to_string().contains("lib/passwd.py is a link"), "{err}");
        std::fs::remove_file(root.join("lib/passwd.py")).expect("rm");
        std::fs::write(root.join("big.py"), vec![b'#'; MAX_FILE_BYTES as usize + 1])
            .expect("write");
        let err = read_folder(root).expect_err("too large");
        assert!(err.to_string().contains("big.py"), "{err}");
    }

    #[test]
    fn requirements_are_names_versions_and_markers_only() {
        let parsed = parse_requirements(
            "# the app's packages\n\
             Dash==4.4.1\n\
             pandas >= 2   # data\n\
             \n\
             Humanize[extra_a]>=4.0,<5 ; python_version >= '3.10'\n\
             scikit_learn\n\
             gunicorn\n",
        )
        .expect("plain requirements");
        let names: Vec<_> = parsed.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["dash", "pandas", "humanize", "scikit-learn", "gunicorn"]
        );
        // What pip reads is the canonical form, not the author's text.
        assert_eq!(
            parsed[2].line,
            "humanize[extra-a]>=4.0,<5 ; python_full_version >= '3.10'"
        );

        for (text, says) in [
            ("-r other.txt", "options"),
            ("--index-url https://evil.example/simple", "options"),
            ("-e git+https://evil.example/x.git#egg=x", "options"),
            ("requests==2.0 --hash=sha256:00", "options"),
            ("humanize>=4 \\", "continued"),
            (
                "x @ https://evil.example/x-1.0-py3-none-any.whl",
                "URLs and paths",
            ),
            ("x @ file:///etc/passwd", "URLs and paths"),
            ("./vendored/pkg", "not a package requirement"),
            ("/etc/passwd", "not a package requirement"),
            ("https://evil.example/x.whl", "not a package requirement"),
            ("pandas\nPandas>1", "listed twice"),
            ("x===", "not a package requirement"),
            // pep508_rs 0.9.2 panicked on these (found by the test below).
            ("a-- x", "ends with a letter or digit"),
            ("a_;python_version>'3'", "ends with a letter or digit"),
        ] {
            let err = parse_requirements(text).expect_err(text);
            assert!(err.contains(says), "{text:?}: {err}");
            assert!(err.starts_with("requirements.txt line "), "{err}");
        }
        let many: String = (0..=MAX_REQUIREMENTS).map(|i| format!("p{i}\n")).collect();
        assert!(
            parse_requirements(&many)
                .expect_err("too many")
                .contains("more than")
        );
    }

    /// Random lines of the characters that matter to pip's and PEP 508's grammars: the
    /// checker never panics, and whatever it accepts is a plain requirement whose canonical
    /// form reads back the same (so pip sees no option, URL or path).
    #[test]
    fn random_requirement_lines_never_panic_and_accepted_ones_are_plain() {
        const PIECES: &[&str] = &[
            "a",
            "pkg",
            "Dash",
            "_",
            "-",
            ".",
            "0",
            "1",
            "[",
            "]",
            ",",
            "x",
            "==",
            ">=",
            "<",
            "~=",
            "!=",
            "===",
            "*",
            " ",
            "\t",
            ";",
            "'",
            "\"",
            "@",
            "://",
            "/",
            "\\",
            "#",
            "--",
            "-e ",
            "python_version",
            "extra",
            " and ",
            " or ",
            "(",
            ")",
            "file:",
            "\u{0}",
            "é",
            "${HOME}",
            "%",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        let mut accepted = 0;
        for _ in 0..20_000 {
            let line: String = (0..1 + next(12))
                .map(|_| PIECES[next(PIECES.len())])
                .collect();
            let Ok(parsed) = parse_requirements(&line) else {
                continue;
            };
            for requirement in parsed {
                accepted += 1;
                let again = parse_requirements(&requirement.line)
                    .unwrap_or_else(|e| panic!("{line:?} → {:?}: {e}", requirement.line));
                assert_eq!(again.len(), 1, "{line:?}");
                assert_eq!(again[0], requirement, "{line:?}");
                assert!(!requirement.line.starts_with('-'), "{line:?}");
                assert!(!requirement.line.contains("://"), "{line:?}");
            }
        }
        assert!(
            accepted > 100,
            "only {accepted} lines were plain requirements"
        );
    }

    #[test]
    fn a_deploy_without_a_build_refuses_a_folder_that_needs_installs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (root, python_dir) = (dir.path().join("app"), dir.path().join("py"));
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::create_dir_all(python_dir.join("provided")).expect("mkdir");
        std::fs::write(
            python_dir.join("provided/constraints.txt"),
            "pandas==3.0.6+tessera\n",
        )
        .expect("write");
        std::fs::write(root.join("app.py"), "import dash\n").expect("write");
        std::fs::write(root.join("requirements.txt"), "pandas\n").expect("write");
        read_folder_installing_nothing(&root, &python_dir).expect("pandas is provided");
        std::fs::write(root.join("requirements.txt"), "pandas\nhumanize>=4\n").expect("write");
        let err = read_folder_installing_nothing(&root, &python_dir).expect_err("humanize");
        assert!(
            err.to_string()
                .contains("(humanize>=4): push the app with git"),
            "{err}"
        );
    }

    #[test]
    fn provided_packages_keep_their_version_and_servers_and_job_managers_are_skipped() {
        let provided = Provided::parse("numpy==2.5.2+tessera\nscikit_learn==1.9.1+tessera\n");
        let requirements =
            parse_requirements("numpy==2.4.6\nscikit-learn\ngunicorn\nhumanize>=4\ndiskcache\n")
                .expect("ok");
        let plan = plan_install(&requirements, &provided);
        let install: Vec<_> = plan.install.iter().map(|r| r.line.as_str()).collect();
        assert_eq!(install, ["humanize>=4"]);
        assert_eq!(
            plan.skipped,
            [
                "numpy==2.4.6: provided by the runtime (numpy 2.5.2)",
                "scikit-learn: provided by the runtime (scikit-learn 1.9.1)",
                "gunicorn: not needed, Tessera serves the app",
                "diskcache: not needed, Tessera runs background callbacks (the runtime has an \
                 in-memory diskcache)",
            ]
        );
    }
}
