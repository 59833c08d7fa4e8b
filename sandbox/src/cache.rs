//! The on-disk cache of compiled components.
//!
//! An entry is the output of `Component::serialize` in `<key>.cwasm` plus the SHA-256 of
//! that file in `<key>.cwasm.sha256`. The key is the SHA-256 of the component bytes, the
//! wasmtime version and a digest of the engine configuration, so that an artifact is only
//! ever loaded by an engine that would have produced it. Files are written to a temporary
//! name and renamed into place, so readers never see a partial file. Any problem with an
//! entry (missing, truncated, flipped bits, made by another engine) is a cache miss: the
//! component is compiled again and the entry rewritten.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The wasmtime release this crate is pinned to (`=48.0.8` in Cargo.toml). It only makes
/// file names readable: the engine digest also covers the real version, so a stale value
/// here could never make an artifact load in the wrong engine.
const WASMTIME_VERSION: &str = "48.0.8";

/// Bumped when the layout of cache entries changes.
const FORMAT: u32 = 1;

/// A cache directory bound to one engine configuration.
pub(crate) struct DiskCache {
    dir: PathBuf,
    /// Hex digest of the engine's compatibility hash, shortened.
    engine_tag: String,
}

impl DiskCache {
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> DiskCache {
        let mut hasher = Sha256Hasher(Sha256::new());
        FORMAT.hash(&mut hasher);
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let digest = hex::encode(hasher.0.finalize());
        DiskCache {
            dir,
            engine_tag: digest[..16].to_string(),
        }
    }

    /// Where the artifact of the component with this SHA-256 lives.
    pub(crate) fn artifact_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!(
            "{sha256}-wasmtime{WASMTIME_VERSION}-{}.cwasm",
            self.engine_tag
        ))
    }

    fn digest_path(artifact: &Path) -> PathBuf {
        let mut name = artifact.as_os_str().to_owned();
        name.push(".sha256");
        PathBuf::from(name)
    }

    /// The cached compilation of the component with this SHA-256, if a sound one exists.
    pub(crate) fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.artifact_path(sha256);
        let expected = std::fs::read_to_string(Self::digest_path(&path)).ok()?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable cached artifact");
                return None;
            }
        };
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != expected.trim() {
            tracing::warn!(path = %path.display(), "cached artifact does not match its digest; recompiling");
            return None;
        }
        drop(bytes);
        // SAFETY: `deserialize_file` trusts the file to be wasmtime's own output for this
        // engine, since it maps the machine code inside and runs it. That holds here: only
        // this module writes to the cache directory, always via rename of a complete file,
        // the file name binds the artifact to this engine's configuration and wasmtime
        // version, and the file's bytes were just checked against the digest written with
        // them, so a damaged or half-written file is refused above instead of executed.
        // The directory must not be writable by anyone the platform does not trust; that
        // is stated on `SandboxConfig::cache_dir`.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "cached artifact refused; recompiling");
                None
            }
        }
    }

    /// Stores a compiled component. Failure is logged, not returned: the cache only saves
    /// time.
    pub(crate) fn store(&self, sha256: &str, component: &Component) {
        if let Err(e) = self.try_store(sha256, component) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write compiled artifact to the cache");
        }
    }

    fn try_store(&self, sha256: &str, component: &Component) -> std::io::Result<()> {
        let bytes = component
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        let path = self.artifact_path(sha256);
        let digest = hex::encode(Sha256::digest(&bytes));
        // The artifact goes first: a reader that finds the new digest next to an old
        // artifact (or the reverse) sees a mismatch and recompiles, which is safe.
        write_atomically(&path, &bytes)?;
        write_atomically(&Self::digest_path(&path), digest.as_bytes())
    }
}

/// What a pruning of the disk cache did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Files removed (artifacts, their digests and stray temporary files).
    pub removed_files: usize,
    /// Their total size.
    pub removed_bytes: u64,
    /// Artifacts kept.
    pub kept_artifacts: usize,
}

impl DiskCache {
    /// Removes the cache files older than `min_age` that `keep` does not want: artifacts of
    /// components whose SHA-256 it refuses, artifacts of other engines (another wasmtime
    /// version or configuration: never loadable by this one), and temporary files left by
    /// a killed writer. Files younger than `min_age` stay, so a component compiled by a
    /// deploy that is not published yet keeps its artifact. Removing a file another process
    /// has mapped is safe on Unix: the mapping keeps the data.
    pub(crate) fn prune(
        &self,
        keep: &dyn Fn(&str) -> bool,
        min_age: std::time::Duration,
    ) -> std::io::Result<PruneReport> {
        let mut report = PruneReport::default();
        let now = std::time::SystemTime::now();
        let suffix = format!("-wasmtime{WASMTIME_VERSION}-{}.cwasm", self.engine_tag);
        for entry in std::fs::read_dir(&self.dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let artifact = name.strip_suffix(".sha256").unwrap_or(&name);
            let wanted = artifact.strip_suffix(&suffix).is_some_and(keep);
            if wanted {
                if name.ends_with(".cwasm") {
                    report.kept_artifacts += 1;
                }
                continue;
            }
            let old_enough = meta
                .modified()
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age >= min_age);
            if !old_enough {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    report.removed_files += 1;
                    report.removed_bytes += meta.len();
                }
                // Another replica pruning the same directory got there first.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}

/// Writes `bytes` to a unique temporary file beside `path`, then renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".{}.{unique}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let result = std::fs::File::create(&tmp)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        // Best effort: a leftover temporary file is harmless, only untidy.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Feeds `Hash` output into SHA-256, so that the engine digest is stable across runs and
/// processes (std's `DefaultHasher` is only stable within one build).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Never called: the digest is read from the inner state instead.
        0
    }
}
