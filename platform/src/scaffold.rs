//! `tessera new`: a dashboard project that pushes as it is. A Rust crate naming the SDK as
//! `sdk = "0.1"` (the server patches in its own) with a `Cargo.lock` pinning the versions
//! this Tessera is built and tested with, or a Python `app.py` written against Dash; each
//! with its `tessera.toml` and `.gitignore`, in a new folder that becomes a git repository
//! on `main` when `git` is at hand.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::ids::Slug;

/// The workspace's lock: the versions the SDK is tested with.
const WORKSPACE_LOCK: &str = include_str!("../../Cargo.lock");

const RUST_CARGO_TOML: &str = include_str!("../templates/new/rust/Cargo.toml.in");
const RUST_LIB: &str = include_str!("../templates/new/rust/src/lib.rs");
const RUST_MANIFEST: &str = include_str!("../templates/new/rust/tessera.toml");
const RUST_GITIGNORE: &str = include_str!("../templates/new/rust/gitignore");
const PYTHON_APP: &str = include_str!("../templates/new/python/app.py");
const PYTHON_MANIFEST: &str = include_str!("../templates/new/python/tessera.toml");
const PYTHON_REQUIREMENTS: &str = include_str!("../templates/new/python/requirements.txt");
const PYTHON_GITIGNORE: &str = include_str!("../templates/new/python/gitignore");

/// The crates a new Rust project depends on directly (its `Cargo.toml`).
const RUST_DEPENDENCIES: [&str; 2] = ["sdk", "serde_json"];

/// Package names cargo refuses or that would collide with the project's own dependencies.
const RESERVED_CRATE_NAMES: [&str; 7] = [
    "sdk",
    "serde-json",
    "test",
    "core",
    "std",
    "alloc",
    "proc-macro",
];

/// What the project is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Rust,
    Python,
}

/// Why no project was made (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{0:?} cannot name an app: use lowercase letters, digits and '-' (at most 63, not at either end)"
    )]
    InvalidName(String),
    #[error("{0:?} cannot name a Rust crate: {1}")]
    InvalidCrateName(String, &'static str),
    #[error("{} already exists and is not empty", .0.display())]
    NotEmpty(PathBuf),
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the workspace's Cargo.lock does not parse: {0}")]
    Lock(String),
}

/// A project's files, by path relative to its folder.
pub fn files(name: &str, kind: Kind) -> Result<Vec<(&'static str, String)>, Error> {
    let slug = Slug::parse(name).map_err(|_| Error::InvalidName(name.to_owned()))?;
    let name = slug.as_str();
    let title = title_of(name);
    let fill = |template: &str| template.replace("{name}", name).replace("{title}", &title);
    Ok(match kind {
        Kind::Rust => {
            if name.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(Error::InvalidCrateName(
                    name.to_owned(),
                    "a package name may not start with a digit",
                ));
            }
            if RESERVED_CRATE_NAMES.contains(&name) {
                return Err(Error::InvalidCrateName(
                    name.to_owned(),
                    "the name is taken by Rust or by the project's own dependencies",
                ));
            }
            vec![
                ("Cargo.toml", fill(RUST_CARGO_TOML)),
                ("Cargo.lock", pinned_lock(WORKSPACE_LOCK, name)?),
                ("src/lib.rs", fill(RUST_LIB)),
                ("tessera.toml", fill(RUST_MANIFEST)),
                (".gitignore", RUST_GITIGNORE.to_owned()),
            ]
        }
        Kind::Python => vec![
            ("app.py", fill(PYTHON_APP)),
            ("requirements.txt", PYTHON_REQUIREMENTS.to_owned()),
            ("tessera.toml", fill(PYTHON_MANIFEST)),
            (".gitignore", PYTHON_GITIGNORE.to_owned()),
        ],
    })
}

/// Writes the project `name` into `dir` (made if missing; refused if it has anything in
/// it) and returns the paths written.
pub fn create(dir: &Path, name: &str, kind: Kind) -> Result<Vec<PathBuf>, Error> {
    let files = files(name, kind)?;
    let occupied = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied || (dir.exists() && !dir.is_dir()) {
        return Err(Error::NotEmpty(dir.to_owned()));
    }
    let mut written = Vec::with_capacity(files.len());
    for (relative, text) in files {
        let path = dir.join(relative);
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, text)
        };
        write().map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// "sales-explorer" → "Sales explorer".
fn title_of(name: &str) -> String {
    let spaced = name.replace('-', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// One `[[package]]` of a lock file: its identity, its dependencies as cargo wrote them
/// (`name`, `name version` or `name version (source)`), and its text as written.
struct LockedPackage<'a> {
    name: String,
    version: String,
    dependencies: Vec<String>,
    text: &'a str,
}

/// The lock of a new project `name`: the packages of `workspace_lock` that the project's
/// dependencies reach, in cargo's own order and format, and the project itself.
fn pinned_lock(workspace_lock: &str, name: &str) -> Result<String, Error> {
    const MARK: &str = "[[package]]";
    let start = workspace_lock
        .find(MARK)
        .ok_or_else(|| Error::Lock("no [[package]]".to_owned()))?;
    let header = &workspace_lock[..start];
    let mut packages = Vec::new();
    for chunk in workspace_lock[start..].split(MARK).skip(1) {
        #[derive(serde::Deserialize)]
        struct Fields {
            name: String,
            version: String,
            #[serde(default)]
            dependencies: Vec<String>,
        }
        let fields: Fields = toml::from_str(chunk).map_err(|e| Error::Lock(e.to_string()))?;
        packages.push(LockedPackage {
            name: fields.name,
            version: fields.version,
            dependencies: fields.dependencies,
            text: chunk,
        });
    }
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, package) in packages.iter().enumerate() {
        by_name.entry(&package.name).or_default().push(index);
    }
    // A dependency names its package alone when only one version is locked, else with
    // its version (and its source, which the name and version already decide here).
    let resolve = |dependency: &str| -> Result<usize, Error> {
        let mut parts = dependency.split_whitespace();
        let dep_name = parts.next().unwrap_or_default();
        let version = parts.next();
        let candidates = by_name.get(dep_name).map(Vec::as_slice).unwrap_or_default();
        candidates
            .iter()
            .copied()
            .find(|&i| version.is_none_or(|v| packages[i].version == v))
            .filter(|_| version.is_some() || candidates.len() == 1)
            .ok_or_else(|| Error::Lock(format!("{dependency:?} is not locked")))
    };
    let mut kept = BTreeSet::new();
    let mut stack = RUST_DEPENDENCIES
        .iter()
        .map(|dependency| resolve(dependency))
        .collect::<Result<Vec<_>, _>>()?;
    while let Some(index) = stack.pop() {
        if kept.insert(index) {
            for dependency in &packages[index].dependencies {
                stack.push(resolve(dependency)?);
            }
        }
    }
    let project = format!(
        "\nname = \"{name}\"\nversion = \"0.1.0\"\ndependencies = [\n{}]\n\n",
        RUST_DEPENDENCIES
            .iter()
            .map(|dependency| format!(" \"{dependency}\",\n"))
            .collect::<String>()
    );
    let mut lock = header.to_owned();
    let mut project_written = false;
    for index in kept {
        let package = &packages[index];
        if !project_written && package.name.as_str() > name {
            lock.push_str(MARK);
            lock.push_str(&project);
            project_written = true;
        }
        lock.push_str(MARK);
        lock.push_str(package.text);
    }
    if !project_written {
        lock.push_str(MARK);
        lock.push_str(&project);
    }
    Ok(lock.trim_end().to_owned() + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_of_a_new_crate_holds_what_its_dependencies_reach_and_nothing_of_the_server() {
        let lock = pinned_lock(WORKSPACE_LOCK, "my-app").expect("lock");
        #[derive(serde::Deserialize)]
        struct Lock {
            version: u32,
            package: Vec<Package>,
        }
        #[derive(serde::Deserialize)]
        struct Package {
            name: String,
            #[serde(default)]
            dependencies: Vec<String>,
        }
        let parsed: Lock = toml::from_str(&lock).expect("a lock file");
        assert_eq!(parsed.version, 4);
        let names: BTreeSet<&str> = parsed.package.iter().map(|p| p.name.as_str()).collect();
        for wanted in ["my-app", "sdk", "serde_json", "plotly", "wit-bindgen"] {
            assert!(names.contains(wanted), "{wanted} missing from {names:?}");
        }
        // The server's own crates are not an author's dependencies.
        for unwanted in ["platform", "sandbox", "wasmtime", "axum", "sqlx", "reqwest"] {
            assert!(!names.contains(unwanted), "{unwanted} in {names:?}");
        }
        // Every dependency written is a package of the lock (cargo would refuse it else).
        for package in &parsed.package {
            for dependency in &package.dependencies {
                let dep_name = dependency.split_whitespace().next().expect("a name");
                assert!(names.contains(dep_name), "{dependency} of {}", package.name);
            }
        }
        // Packages keep cargo's order (by name), the project among them.
        let order: Vec<&str> = parsed.package.iter().map(|p| p.name.as_str()).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(order, sorted);
    }

    #[test]
    fn a_lock_naming_a_package_it_does_not_hold_is_an_error() {
        let broken = "version = 4\n\n[[package]]\nname = \"sdk\"\nversion = \"0.1.0\"\ndependencies = [\n \"missing\",\n]\n\n[[package]]\nname = \"serde_json\"\nversion = \"1.0.0\"\n";
        let error = pinned_lock(broken, "x").expect_err("refused");
        assert!(
            error.to_string().contains("\"missing\" is not locked"),
            "{error}"
        );
    }

    #[test]
    fn names_are_checked_and_an_occupied_folder_is_left_alone() {
        let scratch = tempfile::tempdir().expect("tempdir");
        for bad in ["Sales", "sales_explorer", "-x", ""] {
            let error = create(&scratch.path().join("p"), bad, Kind::Python).expect_err(bad);
            assert!(matches!(error, Error::InvalidName(_)), "{bad}: {error}");
        }
        for bad in ["2024-report", "sdk", "test"] {
            let error = create(&scratch.path().join("p"), bad, Kind::Rust).expect_err(bad);
            assert!(
                matches!(error, Error::InvalidCrateName(..)),
                "{bad}: {error}"
            );
        }
        // Python apps may start with a digit: only cargo minds.
        create(&scratch.path().join("q"), "2024-report", Kind::Python).expect("python");
        assert!(!scratch.path().join("p").exists(), "nothing written");

        let occupied = scratch.path().join("occupied");
        std::fs::create_dir(&occupied).expect("mkdir");
        std::fs::write(occupied.join("keep.txt"), "mine").expect("write");
        let error = create(&occupied, "sales", Kind::Rust).expect_err("occupied");
        assert!(matches!(error, Error::NotEmpty(_)), "{error}");
        assert_eq!(
            std::fs::read_dir(&occupied).expect("read").count(),
            1,
            "nothing added"
        );
    }

    #[test]
    fn a_project_is_filled_in_with_its_name_and_title() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let dir = scratch.path().join("sales-report");
        let written = create(&dir, "sales-report", Kind::Rust).expect("created");
        assert_eq!(written.len(), 5);
        let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
        assert!(cargo.contains("name = \"sales-report\""), "{cargo}");
        let manifest = std::fs::read_to_string(dir.join("tessera.toml")).expect("manifest");
        assert!(manifest.contains("title = \"Sales report\""), "{manifest}");
        assert!(manifest.contains("kind = \"rust\""), "{manifest}");
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).expect("lib.rs");
        assert!(lib.contains("App::new(\"Sales report\")"), "{lib}");
        assert!(!lib.contains("{name}") && !lib.contains("{title}"), "{lib}");

        let dir = scratch.path().join("py");
        create(&dir, "py", Kind::Python).expect("created");
        let app = std::fs::read_to_string(dir.join("app.py")).expect("app.py");
        assert!(app.contains("html.H1(\"Py\")"), "{app}");
        let manifest = std::fs::read_to_string(dir.join("tessera.toml")).expect("manifest");
        assert!(manifest.contains("kind = \"python\""), "{manifest}");
    }
}
