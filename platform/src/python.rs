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
const MAX_HEADER: usize = 1 << 20;

/// The packages a Python app gets without installing anything: `requirements.txt` may
/// list these (and servers the platform replaces), nothing else yet.
pub const PROVIDED: &[&str] = &[
    "dash", "plotly", "pandas", "numpy", "scipy", "narwhals", "gunicorn", "flask",
];

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
/// sizes bounded while walking; `requirements.txt` may list only [`PROVIDED`] packages.
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
    check_requirements(root)?;
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

/// `requirements.txt`, if there is one, may list only packages every Python app has.
fn check_requirements(root: &Path) -> Result<(), Error> {
    let path = root.join("requirements.txt");
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if !meta.is_file() || meta.len() > 64 << 10 {
        return Err(Error::Folder(
            "requirements.txt must be a plain file of at most 64 KiB".to_owned(),
        ));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|_| Error::Folder("requirements.txt is not UTF-8".to_owned()))?;
    let mut missing = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('-') {
            return Err(Error::Folder(format!(
                "requirements.txt: {line:?}: options are not supported"
            )));
        }
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect::<String>()
            .to_ascii_lowercase()
            .replace('_', "-");
        if !PROVIDED.contains(&name.as_str()) {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Folder(format!(
        "requirements.txt lists {}: installing packages is not supported yet; a Python app \
         gets {} (Tessera's own dash)",
        missing.join(", "),
        PROVIDED[..5].join(", ")
    )))
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
    /// deadline and `limits`' memory cap, its data folder `data` at `/data`) and returns
    /// the app with the blob to store: the files and the memory image. No settings, data
    /// sources or cache: the image is stored with the version and shared by every later
    /// value of them. Blocking.
    pub fn boot(
        &self,
        source: &[u8],
        limits: sandbox::Limits,
        data: Option<PathBuf>,
    ) -> Result<(sandbox::PythonApp, Vec<u8>), Error> {
        let mut bundle = Bundle::decode(source)?;
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
        Ok(app
            .scheduled_by(sandbox, options.owner)
            .granted(options.settings, options.capabilities))
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
    fn a_folder_needs_app_py_and_refuses_links_and_unknown_requirements() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let err = read_folder(root).expect_err("no app.py");
        assert!(err.to_string().contains("needs app.py"), "{err}");
        std::fs::write(root.join("app.py"), "import dash\n").expect("write");
        std::fs::create_dir_all(root.join("lib/__pycache__")).expect("mkdir");
        std::fs::write(root.join("lib/util.py"), "X = 1\n").expect("write");
        std::fs::write(root.join("lib/__pycache__/util.pyc"), "junk").expect("write");
        std::fs::write(root.join("notes.txt"), "not shipped").expect("write");
        std::fs::write(
            root.join("requirements.txt"),
            "dash==4.4.1\npandas>=2 # data\n",
        )
        .expect("write");
        let bundle = read_folder(root).expect("a plain folder");
        let paths: Vec<_> = bundle.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["app.py", "lib/util.py"]);
        std::fs::write(root.join("requirements.txt"), "dash\nrequests==2\n").expect("write");
        let err = read_folder(root).expect_err("requests is not provided");
        assert!(err.to_string().contains("requests"), "{err}");
        std::fs::remove_file(root.join("requirements.txt")).expect("rm");
        std::os::unix::fs::symlink("/etc/passwd", root.join("lib/passwd.py")).expect("ln");
        let err = read_folder(root).expect_err("a link");
        assert!(err.to_string().contains("lib/passwd.py is a link"), "{err}");
        std::fs::remove_file(root.join("lib/passwd.py")).expect("rm");
        std::fs::write(root.join("big.py"), vec![b'#'; MAX_FILE_BYTES as usize + 1])
            .expect("write");
        let err = read_folder(root).expect_err("too large");
        assert!(err.to_string().contains("big.py"), "{err}");
    }
}
