//! Reading files of the app's data folder for the `read-data` host function.
//!
//! The guest names a path relative to the data folder. It is refused if it is absolute,
//! contains `..`, or resolves (through symlinks) to anything outside the folder. Error
//! messages go back to the guest, so they never contain host paths.

use std::io::Read;
use std::path::{Component, Path};

/// Reads `path` inside `root`, which must already be canonical, refusing files larger
/// than `cap` bytes.
pub(crate) fn read(root: Option<&Path>, path: &str, cap: usize) -> Result<Vec<u8>, String> {
    let Some(root) = root else {
        return Err("this app has no data folder".to_string());
    };
    if path.is_empty() {
        return Err("the path is empty".to_string());
    }
    let relative = Path::new(path);
    for part in relative.components() {
        match part {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!("`{path}`: `..` is not allowed in data paths"));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "`{path}`: data paths are relative to the data folder"
                ));
            }
        }
    }
    // The syntactic check above cannot see symlinks: resolve the path and check that it
    // still lies inside the (canonical) root.
    let resolved = root
        .join(relative)
        .canonicalize()
        .map_err(|e| describe(path, &e))?;
    if !resolved.starts_with(root) {
        return Err(format!("`{path}` leads outside the data folder"));
    }
    let file = std::fs::File::open(&resolved).map_err(|e| describe(path, &e))?;
    let metadata = file.metadata().map_err(|e| describe(path, &e))?;
    if !metadata.is_file() {
        return Err(format!("`{path}` is not a file"));
    }
    let too_large = || format!("`{path}` is larger than the {cap}-byte limit of read-data");
    if metadata.len() > cap as u64 {
        return Err(too_large());
    }
    // Read at most one byte past the cap, in case the file grew since `metadata`.
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(cap as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| describe(path, &e))?;
    if bytes.len() > cap {
        return Err(too_large());
    }
    Ok(bytes)
}

/// An I/O error in the guest's terms: the kind of failure and the guest's own path.
fn describe(path: &str, error: &std::io::Error) -> String {
    let what = match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => "is a directory".to_string(),
        kind => kind.to_string(),
    };
    format!("`{path}`: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::write(root.join("a.txt"), "alpha").expect("write");
        std::fs::write(root.join("sub/b.txt"), "beta").expect("write");
        std::fs::write(dir.path().join("secret.txt"), "secret").expect("write");
        let root = root.canonicalize().expect("canonical");
        (dir, root)
    }

    #[test]
    fn reads_files_inside_the_folder() {
        let (_dir, root) = folder();
        assert_eq!(read(Some(&root), "a.txt", 100), Ok(b"alpha".to_vec()));
        assert_eq!(read(Some(&root), "./sub/b.txt", 100), Ok(b"beta".to_vec()));
    }

    #[test]
    fn refuses_parent_and_absolute_paths() {
        let (_dir, root) = folder();
        let err = read(Some(&root), "../secret.txt", 100).expect_err("escape");
        assert!(err.contains("`..`"), "{err}");
        let err = read(Some(&root), "sub/../a.txt", 100).expect_err("dotdot");
        assert!(err.contains("`..`"), "{err}");
        let absolute = root.join("a.txt");
        let err = read(Some(&root), &absolute.to_string_lossy(), 100).expect_err("absolute");
        assert!(err.contains("relative"), "{err}");
        assert!(read(Some(&root), "", 100).is_err());
    }

    #[test]
    fn refuses_symlinks_that_leave_the_folder() {
        let (dir, root) = folder();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link"))
            .expect("symlink");
        let err = read(Some(&root), "link", 100).expect_err("symlink escape");
        assert!(err.contains("outside"), "{err}");
        assert!(
            !err.contains(&*dir.path().to_string_lossy()),
            "leaks host path: {err}"
        );
    }

    #[test]
    fn refuses_files_over_the_cap_and_directories() {
        let (_dir, root) = folder();
        let err = read(Some(&root), "a.txt", 4).expect_err("over cap");
        assert!(err.contains("4-byte"), "{err}");
        assert!(read(Some(&root), "sub", 100).is_err());
        assert!(read(Some(&root), "missing.txt", 100).is_err());
        assert!(read(None, "a.txt", 100).is_err());
    }
}
