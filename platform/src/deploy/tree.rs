//! Reading files out of a tree someone else wrote (a pushed checkout, a build's target
//! directory, a `tessera deploy --assets` folder): every read goes through [`read_file`]
//! or [`read_dir`], which refuse symbolic links on every component of the path and paths
//! that leave the tree, so a link to `secret.key` or `/proc/self/environ` is never read.
//!
//! Rules only for paths and links; what the files mean is the caller's business.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// Why a file of the tree was not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// An absolute path, `..` or an empty path.
    #[error("{0} must be a relative path inside the repository (no `..`, not absolute)")]
    Outside(String),
    /// A symbolic link on the way to, or at, the file.
    #[error("{0} is a symbolic link; links are refused in what a push ships")]
    Link(String),
    /// Not there.
    #[error("{0} does not exist")]
    Missing(String),
    /// A directory where a file was expected, a device, a socket, …
    #[error("{0} is not a regular file")]
    NotAFile(String),
    /// Over the caller's size limit.
    #[error("{path} is {size} bytes, more than the {limit}-byte maximum")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// More files or bytes together than the caller's budget.
    #[error("{0} holds more than {files} files or {bytes} bytes together", files = .1.files, bytes = .1.total)]
    TooMuch(String, Budget),
    /// Any other I/O error.
    #[error("{0}: {1}")]
    Io(String, String),
}

/// What [`read_dir`] reads at most: each file, all files together, how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Bytes of one file.
    pub each: u64,
    /// Bytes of all files together.
    pub total: u64,
    /// Files.
    pub files: usize,
}

/// `relative` under `root`, each component checked: a plain name that is not a link.
/// Returns the full path (whose last component may not exist yet: [`Error::Missing`]).
pub fn resolve(root: &Path, relative: &str) -> Result<PathBuf, Error> {
    let path = Path::new(relative);
    let mut parts = path
        .components()
        .filter(|c| *c != Component::CurDir)
        .peekable();
    if parts.peek().is_none() {
        return Err(Error::Outside(relative.to_owned()));
    }
    let mut full = root.to_owned();
    let mut shown = String::new();
    for part in parts {
        let Component::Normal(name) = part else {
            return Err(Error::Outside(relative.to_owned()));
        };
        full.push(name);
        if !shown.is_empty() {
            shown.push('/');
        }
        shown.push_str(&name.to_string_lossy());
        match std::fs::symlink_metadata(&full) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(Error::Link(shown)),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Missing(shown));
            }
            Err(e) => return Err(Error::Io(shown, e.to_string())),
        }
    }
    Ok(full)
}

/// The bytes of the regular file `relative` under `root`, at most `limit` of them. The
/// last component is opened with `O_NOFOLLOW`, so a link swapped in after the check is
/// refused too.
pub fn read_file(root: &Path, relative: &str, limit: u64) -> Result<Vec<u8>, Error> {
    let full = resolve(root, relative)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&full)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Error::Link(relative.to_owned()),
            _ => Error::Io(relative.to_owned(), e.to_string()),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| Error::Io(relative.to_owned(), e.to_string()))?;
    if !meta.is_file() {
        return Err(Error::NotAFile(relative.to_owned()));
    }
    if meta.len() > limit {
        return Err(Error::TooLarge {
            path: relative.to_owned(),
            size: meta.len(),
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Io(relative.to_owned(), e.to_string()))?;
    if bytes.len() as u64 > limit {
        return Err(Error::TooLarge {
            path: relative.to_owned(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Every regular file under the directory `relative` of `root` (recursively), as paths
/// relative to that directory and their bytes, within `budget` (the reading stops at the
/// first file past it). A link anywhere (the directory itself, a subdirectory, a file) is
/// refused, named by its path from `root`.
pub fn read_dir(
    root: &Path,
    relative: &str,
    budget: Budget,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let dir = match relative {
        "" | "." => root.to_owned(),
        _ => resolve(root, relative)?,
    };
    let meta = std::fs::symlink_metadata(&dir)
        .map_err(|e| Error::Io(relative.to_owned(), e.to_string()))?;
    if meta.file_type().is_symlink() {
        return Err(Error::Link(relative.to_owned()));
    }
    let mut out = Vec::new();
    let mut left = budget.total;
    walk(&dir, relative, "", budget, &mut left, &mut out)?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn walk(
    dir: &Path,
    shown: &str,
    base: &str,
    budget: Budget,
    left: &mut u64,
    out: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Io(shown.to_owned(), e.to_string()))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::Io(shown.to_owned(), e.to_string()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = match base {
            "" => name.clone(),
            _ => format!("{base}/{name}"),
        };
        let full_shown = match shown {
            "" | "." => path.clone(),
            _ => format!("{shown}/{path}"),
        };
        // The entry's own type: `file_type` does not follow links.
        let kind = entry
            .file_type()
            .map_err(|e| Error::Io(full_shown.clone(), e.to_string()))?;
        if kind.is_symlink() {
            return Err(Error::Link(full_shown));
        }
        if kind.is_dir() {
            walk(&entry.path(), shown, &path, budget, left, out)?;
        } else {
            if out.len() == budget.files {
                return Err(Error::TooMuch(shown.to_owned(), budget));
            }
            let bytes = read_file(dir, &name, budget.each).map_err(|e| match e {
                Error::Link(_) => Error::Link(full_shown.clone()),
                Error::NotAFile(_) => Error::NotAFile(full_shown.clone()),
                Error::TooLarge { size, limit, .. } => Error::TooLarge {
                    path: full_shown.clone(),
                    size,
                    limit,
                },
                other => other,
            })?;
            *left = left
                .checked_sub(bytes.len() as u64)
                .ok_or_else(|| Error::TooMuch(shown.to_owned(), budget))?;
            out.push((path, bytes));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("repo/assets/css")).expect("mkdir");
        std::fs::write(root.path().join("secret.key"), b"key").expect("write");
        std::fs::write(root.path().join("repo/tessera.toml"), b"kind = \"wasm\"").expect("write");
        std::fs::write(root.path().join("repo/assets/css/a.css"), b"a{}").expect("write");
        root
    }

    #[test]
    fn plain_files_are_read_and_paths_out_of_the_tree_refused() {
        let root = tree();
        let repo = root.path().join("repo");
        assert_eq!(
            read_file(&repo, "tessera.toml", 100).expect("read"),
            b"kind = \"wasm\""
        );
        assert_eq!(
            read_file(&repo, "./assets/css/a.css", 100).expect("read"),
            b"a{}"
        );
        for bad in [
            "../secret.key",
            "/etc/passwd",
            "",
            "assets/../../secret.key",
        ] {
            assert!(
                matches!(read_file(&repo, bad, 100), Err(Error::Outside(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            read_file(&repo, "assets", 100),
            Err(Error::NotAFile(_))
        ));
        assert!(matches!(
            read_file(&repo, "nope", 100),
            Err(Error::Missing(_))
        ));
        assert!(matches!(
            read_file(&repo, "tessera.toml", 3),
            Err(Error::TooLarge { .. })
        ));
    }

    const BUDGET: Budget = Budget {
        each: 1 << 20,
        total: 4 << 20,
        files: 100,
    };

    #[test]
    fn a_folder_is_read_within_its_budget() {
        let root = tree();
        let repo = root.path().join("repo");
        std::fs::write(repo.join("assets/b.txt"), b"12345").expect("write");
        let read = |total, files| {
            read_dir(
                &repo,
                "assets",
                Budget {
                    each: 8,
                    total,
                    files,
                },
            )
        };
        assert_eq!(read(8, 2).expect("within").len(), 2);
        assert!(
            matches!(read(7, 2), Err(Error::TooMuch(..))),
            "bytes together"
        );
        let err = read(8, 1).expect_err("files");
        assert_eq!(
            err.to_string(),
            "assets holds more than 1 files or 8 bytes together"
        );
    }

    #[test]
    fn links_anywhere_on_the_path_are_refused_and_named() {
        let root = tree();
        let repo = root.path().join("repo");
        symlink("../secret.key", repo.join("tessera-link.toml")).expect("link");
        symlink("/proc/self/environ", repo.join("assets/env.txt")).expect("link");
        symlink("css", repo.join("assets/styles")).expect("link");
        symlink("tessera.toml", repo.join("inner.toml")).expect("link");
        let refused = |path: &str| read_file(&repo, path, 1 << 20).expect_err(path);
        assert_eq!(
            refused("tessera-link.toml"),
            Error::Link("tessera-link.toml".into())
        );
        assert_eq!(
            refused("assets/env.txt"),
            Error::Link("assets/env.txt".into())
        );
        assert_eq!(
            refused("assets/styles/a.css"),
            Error::Link("assets/styles".into())
        );
        // Even a link that stays inside the tree.
        assert_eq!(refused("inner.toml"), Error::Link("inner.toml".into()));
        assert_eq!(
            read_dir(&repo, "assets", BUDGET).expect_err("a link in the folder"),
            Error::Link("assets/env.txt".into())
        );
        std::fs::remove_file(repo.join("assets/env.txt")).expect("rm");
        assert_eq!(
            read_dir(&repo, "assets", BUDGET).expect_err("a linked folder"),
            Error::Link("assets/styles".into())
        );
        std::fs::remove_file(repo.join("assets/styles")).expect("rm");
        let files = read_dir(&repo, "assets", BUDGET).expect("plain folder");
        assert_eq!(files, vec![("css/a.css".to_owned(), b"a{}".to_vec())]);
        symlink(repo.join("assets"), repo.join("linked-assets")).expect("link");
        assert_eq!(
            read_dir(&repo, "linked-assets", BUDGET).expect_err("the folder is a link"),
            Error::Link("linked-assets".into())
        );
    }
}
