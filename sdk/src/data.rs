//! Read-only access to the data files bundled with the app.
//!
//! In a component, [`read`] asks the platform through the `host.read-data` import; the
//! platform resolves the path inside the app's own data folder and nowhere else. Natively
//! the files come from the folder named by the `TESSERA_DATA_DIR` environment variable, so
//! tests read the same files; without it, reading fails. Paths are checked the same way
//! on both sides so a test catches a path the platform would refuse.

use std::fmt;
use std::path::{Component, Path};

/// The environment variable naming the data folder when running natively.
pub const DATA_DIR_VAR: &str = "TESSERA_DATA_DIR";

/// Why a data file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    path: String,
    reason: String,
}

impl ReadError {
    fn new(path: &str, reason: impl Into<String>) -> Self {
        ReadError {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    /// The path that was asked for.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read data file `{}`: {}", self.path, self.reason)
    }
}

impl std::error::Error for ReadError {}

/// The bytes of the data file at `path`, relative to the app's data folder.
///
/// # Errors
///
/// If the path is absolute or leaves the folder (`..`), if the file does not exist, or
/// (natively) if `TESSERA_DATA_DIR` is not set.
pub fn read(path: &str) -> Result<Vec<u8>, ReadError> {
    check(path)?;
    read_checked(path)
}

/// Refuse paths that are empty, absolute or climb out of the data folder.
fn check(path: &str) -> Result<(), ReadError> {
    if path.is_empty() {
        return Err(ReadError::new(path, "the path is empty"));
    }
    for part in Path::new(path).components() {
        match part {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(ReadError::new(path, "the path must not contain `..`"));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ReadError::new(
                    path,
                    "the path must be relative to the data folder",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(target_arch = "wasm32")]
fn read_checked(path: &str) -> Result<Vec<u8>, ReadError> {
    crate::export::read_data(path).map_err(|reason| ReadError::new(path, reason))
}

#[cfg(not(target_arch = "wasm32"))]
fn read_checked(path: &str) -> Result<Vec<u8>, ReadError> {
    let Some(dir) = std::env::var_os(DATA_DIR_VAR) else {
        return Err(ReadError::new(
            path,
            format!("{DATA_DIR_VAR} is not set (natively, it names the data folder)"),
        ));
    };
    std::fs::read(Path::new(&dir).join(path))
        .map_err(|error| ReadError::new(path, error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_leaving_the_data_folder_are_refused() {
        for path in ["", "/etc/passwd", "../secret", "a/../../b"] {
            assert!(read(path).is_err(), "{path:?} should be refused");
        }
        assert_eq!(
            read("../x").map_err(|e| e.to_string()),
            Err("cannot read data file `../x`: the path must not contain `..`".into())
        );
    }

    #[test]
    fn relative_paths_are_accepted() {
        assert!(check("sales.csv").is_ok());
        assert!(check("./nested/file.json").is_ok());
    }
}
