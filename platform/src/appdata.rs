//! An app's data files: the `data/` folder of a push (or `tessera deploy --data DIR`),
//! stored with the version and handed to its guest read-only at `/data` and through
//! `host.read-data`.
//!
//! Rules here: which paths and sizes a data folder may have ([`check`]), reading one from a
//! tree someone else wrote ([`read_dir`]: no links, nothing but regular files and folders,
//! clean UTF-8 names, bounded while walking), the manifest's hash, and the on-disk copy a
//! server loads a version with ([`AppDataDirs`]). Storing is `store::datafiles`'s job.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::ids::TenantId;

/// Largest single data file: what `host.read-data` can hand a guest in one read.
pub const MAX_FILE_BYTES: u64 = sandbox::MAX_DATA_READ_BYTES as u64;
/// Largest total of one version's data files.
pub const MAX_TOTAL_BYTES: u64 = 128 << 20;
/// Most files one version may carry.
pub const MAX_FILES: usize = 1000;
/// Most folders a file may sit below the data folder (`a/b/c.csv` is 2).
pub const MAX_DEPTH: usize = 8;
/// Longest path of a file inside the data folder, in bytes.
pub const MAX_PATH_BYTES: usize = 255;
/// The folder of a pushed repository read when `tessera.toml` names none.
pub const DEFAULT_FOLDER: &str = "data";

/// Why a data folder was refused. Every variant names the file, as the pusher sees it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A path the folder cannot hold: empty segments, `.`/`..`, control characters, a
    /// backslash, too long or too deep.
    #[error("data file {path:?} is refused: {why}")]
    BadPath {
        /// The file.
        path: String,
        /// Which rule it breaks.
        why: String,
    },
    /// A name that is not valid UTF-8 (shown with replacement characters).
    #[error("data file {0:?} is refused: its name is not valid UTF-8")]
    NotUtf8(String),
    /// A symbolic link.
    #[error("data file {0:?} is a symbolic link; links are refused in a data folder")]
    Link(String),
    /// A device, socket, FIFO…
    #[error("data file {0:?} is not a regular file or folder")]
    NotAFile(String),
    /// One file is too large.
    #[error("data file {path:?} is {size} bytes, more than the {MAX_FILE_BYTES}-byte maximum")]
    FileTooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
    },
    /// Too many files.
    #[error(
        "the data folder has more than {MAX_FILES} files (refused at {0:?}); ship fewer, larger files"
    )]
    TooMany(String),
    /// All files together are too large.
    #[error(
        "the data folder is more than {MAX_TOTAL_BYTES} bytes (refused at {path:?}, {bytes} bytes so far)"
    )]
    TooMuch {
        /// The file that went over.
        path: String,
        /// The total with it.
        bytes: u64,
    },
    /// The same path twice, or a path that is both a file and a folder.
    #[error("data file {0:?} is given twice (or is both a file and a folder)")]
    Duplicate(String),
    /// The folder named in `tessera.toml` or on the command line does not exist.
    #[error("the data folder {0:?} does not exist")]
    Missing(String),
    /// Reading failed.
    #[error("cannot read data file {0:?}: {1}")]
    Io(String, String),
}

/// One data file about to be deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// Path inside the data folder, `/`-separated (`sales/2026.csv`).
    pub path: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

impl DataFile {
    /// What the version's manifest records about it.
    pub fn meta(&self) -> DataMeta {
        DataMeta {
            path: self.path.clone(),
            sha256: hex::encode(Sha256::digest(&self.bytes)),
            size: i64::try_from(self.bytes.len()).unwrap_or(i64::MAX),
        }
    }
}

/// One line of a version's data manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMeta {
    /// Path inside the data folder.
    pub path: String,
    /// Hex sha256 of its bytes (the blob's key within the tenant).
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
}

/// The hash naming a manifest (its files' paths and hashes, sorted by path), `None` for no
/// files. Two versions with the same files get the same hash, so they share one folder.
pub fn manifest_sha256(files: &[DataMeta]) -> Option<String> {
    if files.is_empty() {
        return None;
    }
    let mut sorted: Vec<&DataMeta> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut hash = Sha256::new();
    for file in sorted {
        // Paths hold no NUL or newline (check_path), so the encoding is unambiguous.
        hash.update(file.path.as_bytes());
        hash.update(b"\0");
        hash.update(file.sha256.as_bytes());
        hash.update(b"\n");
    }
    Some(hex::encode(hash.finalize()))
}

/// Check one path inside the data folder.
pub fn check_path(path: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Err(Error::BadPath {
            path: path.to_owned(),
            why: why.to_owned(),
        })
    };
    if path.is_empty() {
        return bad("the path is empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return bad(&format!("the path is longer than {MAX_PATH_BYTES} bytes"));
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return bad("control characters and backslashes are not allowed in names");
    }
    let segments: Vec<&str> = path.split('/').collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return bad("it must be a plain relative path (no empty, `.` or `..` segments)");
    }
    if segments.len() - 1 > MAX_DEPTH {
        return bad(&format!(
            "it is more than {MAX_DEPTH} folders deep inside the data folder"
        ));
    }
    Ok(())
}

/// Check a whole set: every path, sizes, count, duplicates (paths as given, in any order).
pub fn check(files: &[DataFile]) -> Result<(), Error> {
    let mut seen = BTreeSet::new();
    let mut total = 0u64;
    for (index, file) in files.iter().enumerate() {
        check_path(&file.path)?;
        if index >= MAX_FILES {
            return Err(Error::TooMany(file.path.clone()));
        }
        let size = file.bytes.len() as u64;
        if size > MAX_FILE_BYTES {
            return Err(Error::FileTooLarge {
                path: file.path.clone(),
                size,
            });
        }
        total = total.saturating_add(size);
        if total > MAX_TOTAL_BYTES {
            return Err(Error::TooMuch {
                path: file.path.clone(),
                bytes: total,
            });
        }
        if !seen.insert(file.path.as_str()) {
            return Err(Error::Duplicate(file.path.clone()));
        }
    }
    // A file whose path is a folder of another file cannot be laid out on disk.
    for path in &seen {
        let folder = format!("{path}/");
        if seen
            .range(folder.as_str()..)
            .next()
            .is_some_and(|next| next.starts_with(&folder))
        {
            return Err(Error::Duplicate((*path).to_owned()));
        }
    }
    Ok(())
}

/// Every file under the folder `relative` of `root` (a pushed checkout, or `/` … for the
/// CLI), named in errors as `relative/path`. Refused while walking, before reading on: a
/// link anywhere (the folder itself included), anything but a regular file or folder, a
/// name that is not UTF-8, and every rule of [`check`]. Sorted by path.
pub fn read_dir(root: &Path, relative: &str) -> Result<Vec<DataFile>, Error> {
    let dir = match relative {
        "" | "." => root.to_owned(),
        _ => crate::deploy::tree::resolve(root, relative).map_err(|e| tree_error(relative, e))?,
    };
    let meta =
        std::fs::symlink_metadata(&dir).map_err(|e| Error::Io(relative.into(), e.to_string()))?;
    if meta.file_type().is_symlink() {
        return Err(Error::Link(relative.to_owned()));
    }
    if !meta.is_dir() {
        return Err(Error::NotAFile(relative.to_owned()));
    }
    let mut walk = Walk {
        shown_root: match relative {
            "" | "." => String::new(),
            _ => format!("{}/", relative.trim_end_matches('/')),
        },
        files: Vec::new(),
        total: 0,
    };
    walk.folder(&dir, "", 0)?;
    let mut files = walk.files;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    check(&files)?;
    Ok(files)
}

fn tree_error(shown: &str, error: crate::deploy::tree::Error) -> Error {
    use crate::deploy::tree::Error as T;
    match error {
        T::Link(path) => Error::Link(path),
        T::Missing(path) => Error::Missing(path),
        T::NotAFile(path) => Error::NotAFile(path),
        T::TooLarge { path, size, .. } => Error::FileTooLarge { path, size },
        T::Outside(path) => Error::BadPath {
            path,
            why: "it must be a relative path inside the repository".to_owned(),
        },
        T::Io(path, why) => Error::Io(if path.is_empty() { shown.into() } else { path }, why),
        // Only `tree::read_dir` has a budget; this folder is walked here.
        too_much @ T::TooMuch(..) => Error::Io(shown.into(), too_much.to_string()),
    }
}

struct Walk {
    shown_root: String,
    files: Vec<DataFile>,
    total: u64,
}

impl Walk {
    fn folder(&mut self, dir: &Path, base: &str, depth: usize) -> Result<(), Error> {
        let shown_dir = format!("{}{base}", self.shown_root);
        let entries =
            std::fs::read_dir(dir).map_err(|e| Error::Io(shown_dir.clone(), e.to_string()))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::Io(shown_dir.clone(), e.to_string()))?;
            let name = match entry.file_name().into_string() {
                Ok(name) => name,
                Err(raw) => {
                    return Err(Error::NotUtf8(format!(
                        "{}{base}{}",
                        self.shown_root,
                        raw.to_string_lossy()
                    )));
                }
            };
            let path = format!("{base}{name}");
            let shown = format!("{}{path}", self.shown_root);
            // The entry's own type: `file_type` does not follow links.
            let kind = entry
                .file_type()
                .map_err(|e| Error::Io(shown.clone(), e.to_string()))?;
            if kind.is_symlink() {
                return Err(Error::Link(shown));
            }
            if kind.is_dir() {
                if depth >= MAX_DEPTH {
                    return Err(Error::BadPath {
                        path: shown,
                        why: format!(
                            "it is more than {MAX_DEPTH} folders deep inside the data folder"
                        ),
                    });
                }
                self.folder(&entry.path(), &format!("{path}/"), depth + 1)?;
                continue;
            }
            if !kind.is_file() {
                return Err(Error::NotAFile(shown));
            }
            check_path(&path).map_err(|e| match e {
                Error::BadPath { why, .. } => Error::BadPath {
                    path: shown.clone(),
                    why,
                },
                other => other,
            })?;
            if self.files.len() >= MAX_FILES {
                return Err(Error::TooMany(shown));
            }
            // O_NOFOLLOW and a regular-file check on the open file: a link swapped in
            // after the listing is refused too.
            let bytes =
                crate::deploy::tree::read_file(dir, &name, MAX_FILE_BYTES).map_err(|e| {
                    match tree_error(&shown, e) {
                        Error::Link(_) => Error::Link(shown.clone()),
                        Error::NotAFile(_) => Error::NotAFile(shown.clone()),
                        Error::FileTooLarge { size, .. } => Error::FileTooLarge {
                            path: shown.clone(),
                            size,
                        },
                        Error::Io(_, why) => Error::Io(shown.clone(), why),
                        other => other,
                    }
                })?;
            self.total = self.total.saturating_add(bytes.len() as u64);
            if self.total > MAX_TOTAL_BYTES {
                return Err(Error::TooMuch {
                    path: shown,
                    bytes: self.total,
                });
            }
            self.files.push(DataFile { path, bytes });
        }
        Ok(())
    }
}

/// Why a version's data folder could not be laid out on disk.
#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    /// Reading a blob failed.
    #[error("reading the data file {path:?} of the version: {source}")]
    Fetch {
        /// The file.
        path: String,
        /// Why.
        source: crate::store::Error,
    },
    /// The bytes read do not have the recorded hash.
    #[error("the stored data file {0:?} does not match its hash")]
    Corrupt(String),
    /// Writing failed.
    #[error("writing the app's data folder: {0}")]
    Io(#[from] std::io::Error),
}

/// Where [`AppDataDirs::materialize`] takes a file's bytes from.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    /// The files of a deploy, before they are stored.
    Deploy(&'a [DataFile]),
    /// The tenant's blobs in the database.
    Store(&'a crate::store::Store),
}

impl Source<'_> {
    async fn bytes(&self, tenant: TenantId, file: &DataMeta) -> Result<Vec<u8>, MaterializeError> {
        match self {
            Source::Deploy(files) => Ok(files
                .iter()
                .find(|f| f.path == file.path)
                .map(|f| f.bytes.clone())
                .unwrap_or_default()),
            Source::Store(store) => store
                .data_blob(tenant, &file.sha256)
                .await
                .map_err(|source| MaterializeError::Fetch {
                    path: file.path.clone(),
                    source,
                }),
        }
    }
}

/// The local copies of versions' data folders, under `{data_dir}/appdata`: one folder per
/// tenant and manifest hash (`{tenant}-{hash}`), written whole into a temporary folder and
/// renamed into place, files and folders read-only. Versions with the same files share it.
#[derive(Clone, Debug)]
pub struct AppDataDirs {
    root: PathBuf,
}

/// Prefix of folders being written.
const TEMP_PREFIX: &str = ".tmp-";

impl AppDataDirs {
    /// Copies kept under `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The name of the folder of `tenant`'s manifest `sha256`.
    pub fn folder_name(tenant: TenantId, sha256: &str) -> String {
        format!("{}-{sha256}", tenant.0)
    }

    /// The folder holding `files` (the manifest whose hash is `sha256`) for `tenant`,
    /// written first if this server has none: each file's bytes come from `source` and are
    /// checked against the recorded hash. Concurrent callers may both write; one rename
    /// wins and the other's copy is removed.
    pub async fn materialize(
        &self,
        tenant: TenantId,
        sha256: &str,
        files: &[DataMeta],
        source: Source<'_>,
    ) -> Result<PathBuf, MaterializeError> {
        let target = self.root.join(Self::folder_name(tenant, sha256));
        if tokio::fs::symlink_metadata(&target).await.is_ok() {
            return Ok(target);
        }
        tokio::fs::create_dir_all(&self.root).await?;
        let temp = self.root.join(format!(
            "{TEMP_PREFIX}{}-{:016x}",
            Self::folder_name(tenant, sha256),
            rand::random::<u64>()
        ));
        let written = async {
            tokio::fs::create_dir(&temp).await?;
            for file in files {
                // Recorded paths passed check_path at deploy; checked again, since the
                // path decides where we write.
                if check_path(&file.path).is_err() {
                    return Err(MaterializeError::Corrupt(file.path.clone()));
                }
                let bytes = source.bytes(tenant, file).await?;
                if hex::encode(Sha256::digest(&bytes)) != file.sha256 {
                    return Err(MaterializeError::Corrupt(file.path.clone()));
                }
                let full = temp.join(&file.path);
                if let Some(parent) = full.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                tokio::fs::write(&full, &bytes).await?;
            }
            let temp = temp.clone();
            tokio::task::spawn_blocking(move || set_read_only(&temp))
                .await
                .map_err(std::io::Error::other)??;
            Ok(())
        }
        .await;
        if let Err(e) = written {
            let _ = remove_tree(&temp).await;
            return Err(e);
        }
        match tokio::fs::rename(&temp, &target).await {
            Ok(()) => Ok(target),
            // Another load of the same folder won the race: use its copy.
            Err(_) if tokio::fs::symlink_metadata(&target).await.is_ok() => {
                let _ = remove_tree(&temp).await;
                Ok(target)
            }
            Err(e) => {
                let _ = remove_tree(&temp).await;
                Err(e.into())
            }
        }
    }

    /// Remove folders (and abandoned temporary ones) at least `min_age` old whose name is
    /// not in `keep` (from [`AppDataDirs::folder_name`]). Returns how many went.
    pub async fn sweep(
        &self,
        keep: &std::collections::HashSet<String>,
        min_age: Duration,
    ) -> std::io::Result<usize> {
        let mut entries = match tokio::fs::read_dir(&self.root).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut removed = 0;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if keep.contains(&name) {
                continue;
            }
            let old_enough = entry
                .metadata()
                .await
                .and_then(|m| m.modified())
                .ok()
                .and_then(|at| at.elapsed().ok())
                .is_some_and(|age| age >= min_age);
            if old_enough {
                remove_tree(&entry.path()).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Remove every folder of `tenant` (a deleted tenant), whatever its age. Returns how
    /// many went.
    pub async fn remove_tenant(&self, tenant: TenantId) -> std::io::Result<usize> {
        let mut entries = match tokio::fs::read_dir(&self.root).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        // `{tenant}-{hash}`: the dash ends the id, so tenant 1 never takes tenant 12's.
        let prefix = format!("{}-", tenant.0);
        let mut removed = 0;
        while let Some(entry) = entries.next_entry().await? {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                remove_tree(&entry.path()).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Files 0444 and folders 0555, deepest first.
fn set_read_only(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            set_read_only(&entry.path())?;
        } else if kind.is_file() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o444))?;
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555))
}

/// Remove a folder whose folders are read-only: make them writable again first (links
/// are never followed).
async fn remove_tree(dir: &Path) -> std::io::Result<()> {
    fn writable(dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                writable(&entry.path())?;
            }
        }
        Ok(())
    }
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        match std::fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => writable(&dir)?,
            Ok(_) => return std::fs::remove_file(&dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        std::fs::remove_dir_all(&dir)
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn file(path: &str, bytes: &[u8]) -> DataFile {
        DataFile {
            path: path.to_owned(),
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn paths_that_leave_the_folder_or_hide_tricks_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x.csv",
            "a/../x.csv",
            "a//x.csv",
            "./x.csv",
            "x.csv/",
            "a\\b.csv",
            "new\nline.csv",
            "nul\0.csv",
            &"a/".repeat(MAX_DEPTH + 1).to_string(),
            &"x".repeat(MAX_PATH_BYTES + 1),
        ] {
            assert!(
                matches!(check_path(bad), Err(Error::BadPath { .. })),
                "{bad:?}"
            );
        }
        let deep = format!("{}x.csv", "a/".repeat(MAX_DEPTH));
        assert_eq!(check_path(&deep), Ok(()));
        for good in [
            "sales.csv",
            "2026/q1 report.parquet",
            "é/données.csv",
            ".gitkeep",
        ] {
            assert_eq!(check_path(good), Ok(()), "{good}");
        }
    }

    /// Random paths over an alphabet of the tricky characters (bounded: 20,000 cases):
    /// whatever `check_path` accepts stays inside the folder when joined to it, and is
    /// written back unchanged by the manifest's encoding (no NUL, newline or backslash).
    #[test]
    fn accepted_paths_never_leave_the_folder() {
        use rand::{Rng, SeedableRng};
        const ALPHABET: &[&str] = &[
            "a", "b", ".", "..", "/", "\\", "\0", "\n", "é", " ", "~", ":",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let root = Path::new("/srv/appdata/1-x");
        let mut accepted = 0;
        for _ in 0..20_000 {
            let length = rng.random_range(0..12);
            let path: String = (0..length)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
                .collect();
            if check_path(&path).is_err() {
                continue;
            }
            accepted += 1;
            let joined = root.join(&path);
            assert!(joined.starts_with(root), "{path:?}");
            assert!(
                Path::new(&path)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))),
                "{path:?}"
            );
            assert!(!path.contains(['\0', '\n', '\\']), "{path:?}");
        }
        assert!(
            accepted > 1000,
            "the generator should reach valid paths too: {accepted}"
        );
    }

    #[test]
    fn sizes_counts_duplicates_and_file_folder_clashes_are_refused() {
        let big = file("big.csv", &vec![0; MAX_FILE_BYTES as usize + 1]);
        assert!(matches!(check(&[big]), Err(Error::FileTooLarge { .. })));
        let one = file("a.csv", b"1");
        assert_eq!(
            check(&[one.clone(), one]),
            Err(Error::Duplicate("a.csv".into()))
        );
        assert_eq!(
            check(&[file("a", b"1"), file("a/b.csv", b"2")]),
            Err(Error::Duplicate("a".into()))
        );
        let many: Vec<DataFile> = (0..=MAX_FILES)
            .map(|i| file(&format!("f{i}"), b""))
            .collect();
        assert!(matches!(check(&many), Err(Error::TooMany(_))));
        let half = MAX_FILE_BYTES as usize;
        let total: Vec<DataFile> = (0..5)
            .map(|i| file(&format!("f{i}"), &vec![0; half]))
            .collect();
        assert!(matches!(check(&total), Err(Error::TooMuch { .. })));
    }

    #[test]
    fn the_manifest_hash_ignores_order_and_sees_every_byte() {
        let a = [file("a.csv", b"1").meta(), file("b/c.csv", b"2").meta()];
        let b = [a[1].clone(), a[0].clone()];
        assert_eq!(manifest_sha256(&a), manifest_sha256(&b));
        let c = [file("a.csv", b"1").meta(), file("b/c.csv", b"3").meta()];
        assert_ne!(manifest_sha256(&a), manifest_sha256(&c));
        let renamed = [file("a.csv", b"1").meta(), file("b/d.csv", b"2").meta()];
        assert_ne!(manifest_sha256(&a), manifest_sha256(&renamed));
        assert_eq!(manifest_sha256(&[]), None);
    }

    #[test]
    fn a_folder_is_read_and_links_fifos_and_bad_names_are_refused_by_name() {
        let root = tempfile::tempdir().expect("tempdir");
        let repo = root.path().join("repo");
        std::fs::create_dir_all(repo.join("data/sub")).expect("mkdir");
        std::fs::write(root.path().join("secret.key"), b"key").expect("write");
        std::fs::write(repo.join("data/a.csv"), b"x,y\n1,2\n").expect("write");
        std::fs::write(repo.join("data/sub/b.txt"), b"beta").expect("write");
        let files = read_dir(&repo, "data").expect("plain folder");
        assert_eq!(
            files,
            vec![file("a.csv", b"x,y\n1,2\n"), file("sub/b.txt", b"beta")]
        );

        symlink("../../secret.key", repo.join("data/sub/key.csv")).expect("link");
        assert_eq!(
            read_dir(&repo, "data"),
            Err(Error::Link("data/sub/key.csv".into()))
        );
        std::fs::remove_file(repo.join("data/sub/key.csv")).expect("rm");
        // Even a link that stays inside the folder.
        symlink("a.csv", repo.join("data/inner.csv")).expect("link");
        assert_eq!(
            read_dir(&repo, "data"),
            Err(Error::Link("data/inner.csv".into()))
        );
        std::fs::remove_file(repo.join("data/inner.csv")).expect("rm");

        let fifo = repo.join("data/pipe");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("cstr");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert_eq!(
            read_dir(&repo, "data"),
            Err(Error::NotAFile("data/pipe".into()))
        );
        std::fs::remove_file(&fifo).expect("rm");

        use std::os::unix::ffi::OsStrExt;
        let bad = repo
            .join("data")
            .join(std::ffi::OsStr::from_bytes(b"bad\xff.csv"));
        std::fs::write(&bad, b"1").expect("write");
        assert!(
            matches!(read_dir(&repo, "data"), Err(Error::NotUtf8(name)) if name.starts_with("data/bad"))
        );
        std::fs::remove_file(&bad).expect("rm");

        let mut deep = repo.join("data");
        for _ in 0..=MAX_DEPTH {
            deep = deep.join("d");
        }
        std::fs::create_dir_all(&deep).expect("mkdir");
        assert!(matches!(
            read_dir(&repo, "data"),
            Err(Error::BadPath { .. })
        ));
        std::fs::remove_dir_all(repo.join("data/d")).expect("rm");

        // The folder itself a link.
        std::fs::rename(repo.join("data"), repo.join("real")).expect("mv");
        symlink("real", repo.join("data")).expect("link");
        assert_eq!(read_dir(&repo, "data"), Err(Error::Link("data".into())));
        assert_eq!(
            read_dir(&repo, "nothing"),
            Err(Error::Missing("nothing".into()))
        );
    }

    #[tokio::test]
    async fn a_manifest_is_materialized_read_only_once_and_swept_when_unused() {
        let root = tempfile::tempdir().expect("tempdir");
        let dirs = AppDataDirs::new(root.path().join("appdata"));
        let files = [file("a.csv", b"1,2"), file("sub/b.txt", b"beta")];
        let metas: Vec<DataMeta> = files.iter().map(DataFile::meta).collect();
        let hash = manifest_sha256(&metas).expect("hash");
        let dir = dirs
            .materialize(TenantId(7), &hash, &metas, Source::Deploy(&files))
            .await
            .expect("materialize");
        assert_eq!(std::fs::read(dir.join("sub/b.txt")).expect("read"), b"beta");
        // Modes, not writes: the tests may run as root, whom modes do not stop.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("a.csv")), 0o444);
        assert_eq!(mode(&dir.join("sub")), 0o555);
        assert_eq!(mode(&dir), 0o555);
        // A second load reads nothing: the source has no files, and the folder is kept.
        let again = dirs
            .materialize(TenantId(7), &hash, &metas, Source::Deploy(&[]))
            .await
            .expect("again");
        assert_eq!(again, dir);
        assert_eq!(std::fs::read(dir.join("a.csv")).expect("read"), b"1,2");

        // Bytes that do not match their hash are refused and leave nothing behind.
        let evil = [file("a.csv", b"evil"), file("sub/b.txt", b"beta")];
        let err = dirs
            .materialize(TenantId(8), &hash, &metas, Source::Deploy(&evil))
            .await
            .expect_err("corrupt");
        assert!(matches!(err, MaterializeError::Corrupt(_)), "{err:?}");
        let names: Vec<String> = std::fs::read_dir(root.path().join("appdata"))
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [AppDataDirs::folder_name(TenantId(7), &hash)]);

        let keep = std::collections::HashSet::from([AppDataDirs::folder_name(TenantId(7), &hash)]);
        assert_eq!(dirs.sweep(&keep, Duration::ZERO).await.expect("sweep"), 0);
        assert_eq!(
            dirs.sweep(&Default::default(), Duration::from_secs(3600))
                .await
                .expect("sweep"),
            0,
            "too young"
        );
        assert_eq!(
            dirs.sweep(&Default::default(), Duration::ZERO)
                .await
                .expect("sweep"),
            1
        );
        assert!(!dir.exists());
    }
}
