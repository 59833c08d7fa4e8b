//! Installing a Python app's `requirements.txt` (issue 18): the pinned pip, run by the
//! host's CPython inside the build sandbox, with the network (the package index) and no
//! way to run package code: only wheels (`--only-binary :all:`), only pure-Python ones
//! (`--platform any --abi none`), for the guest's Python version, resolved against the
//! packages the runtime already has (`{python_dir}/provided`: their constraints and
//! metadata-only wheels, which are dropped again). What pip unpacked is read back within
//! `[builds] python_packages_mb` and shipped in the version's bundle under `.site/`.
//!
//! This module writes the command line and reads the result; [`super::Builds`] runs it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::tree;

/// Where a Python app's installed packages live in its bundle (and at `/app/.site` in the
/// sandbox: a hidden folder, which a pushed folder never ships).
pub const SITE_PREFIX: &str = ".site";

/// Most files the installed packages of one app may have.
pub const MAX_FILES: usize = 20_000;

/// The folders of one install.
pub struct Install<'a> {
    /// The pinned pip wheel (run as `python3 {wheel}/pip`).
    pub pip_wheel: &'a Path,
    /// `{python_dir}/provided`: `constraints.txt` and the metadata-only wheels.
    pub provided: &'a Path,
    /// The requirements file pip reads (only checked requirement lines), from its working
    /// directory.
    pub requirements: &'a Path,
    /// Where pip unpacks the packages (`--target`), from its working directory.
    pub site: &'a Path,
    /// The tenant's download cache.
    pub cache: &'a Path,
    /// The package index (`[builds] python_index_url`).
    pub index_url: &'a str,
}

/// pip's arguments (after the interpreter) for `install`.
pub fn args(install: &Install<'_>) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![install.pip_wheel.join("pip").into()];
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&[
        "install",
        // No configuration file and no PIP_* variable is read.
        "--isolated",
        "--disable-pip-version-check",
        "--no-input",
        "--no-color",
        "--progress-bar",
        "off",
        "--root-user-action",
        "ignore",
        // Wheels only: no setup.py, no build backend, nothing of a package runs here.
        "--only-binary",
        ":all:",
        // Pure-Python wheels for the guest's interpreter, not for this host.
        "--platform",
        "any",
        "--implementation",
        "cp",
        "--abi",
        "none",
        "--python-version",
        crate::python::GUEST_PYTHON,
        // .pyc files would be the host's Python's, useless to the guest.
        "--no-compile",
        "--no-warn-script-location",
        "--index-url",
        install.index_url,
    ]);
    let provided = install.provided;
    for (flag, path) in [
        ("--find-links", provided.to_owned()),
        ("--constraint", provided.join("constraints.txt")),
        ("--cache-dir", install.cache.to_owned()),
        ("--target", install.site.to_owned()),
        ("--requirement", install.requirements.to_owned()),
    ] {
        args.push(flag.into());
        args.push(path.into());
    }
    args
}

/// What pip installed under `site`, as bundle files under [`SITE_PREFIX`]: the provided
/// packages' metadata-only folders and the scripts folder left out, `budget` held (a
/// link or a file past it refuses the install). Blocking.
pub fn read_installed(site: &Path, budget: tree::Budget) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut dropped: Vec<PathBuf> = vec![site.join("bin")];
    for entry in std::fs::read_dir(site).map_err(|e| format!("the installed packages: {e}"))? {
        let entry = entry.map_err(|e| format!("the installed packages: {e}"))?;
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with("+tessera.dist-info")
        {
            dropped.push(entry.path());
        }
    }
    for path in dropped {
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(_) => Ok(()),
        }
        .map_err(|e| format!("the installed packages: {}: {e}", path.display()))?;
    }
    let files = tree::read_dir(site, ".", budget).map_err(|e| match e {
        tree::Error::TooMuch(..) | tree::Error::TooLarge { .. } => format!(
            "the packages of requirements.txt are more than {} files or {} MiB unpacked \
             ([builds] python_packages_mb)",
            budget.files,
            budget.total >> 20
        ),
        other => format!("the installed packages were refused: {other}"),
    })?;
    Ok(files
        .into_iter()
        .map(|(path, bytes)| (format!("{SITE_PREFIX}/{path}"), bytes))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_runs_no_package_code_and_reads_only_what_it_is_given() {
        let install = Install {
            pip_wheel: Path::new("/py/pip/pip-26.3-py3-none-any.whl"),
            provided: Path::new("/py/provided"),
            requirements: Path::new("/work/requirements.txt"),
            site: Path::new("/work/site"),
            cache: Path::new("/cache/acme"),
            index_url: "https://pypi.org/simple",
        };
        let args: Vec<String> = args(&install)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = args.join(" ");
        assert!(line.starts_with("/py/pip/pip-26.3-py3-none-any.whl/pip install --isolated "));
        for part in [
            "--only-binary :all:",
            "--platform any",
            "--abi none",
            "--python-version 3.15",
            "--no-compile",
            "--index-url https://pypi.org/simple",
            "--constraint /py/provided/constraints.txt",
            "--find-links /py/provided",
            "--target /work/site",
            "--requirement /work/requirements.txt",
        ] {
            assert!(line.contains(part), "{part} missing from {line}");
        }
    }

    #[test]
    fn installed_packages_are_read_without_stubs_scripts_or_links_and_within_budget() {
        let dir = tempfile::tempdir().expect("tempdir");
        let site = dir.path();
        for folder in [
            "humanize",
            "humanize-4.17.0.dist-info",
            "pandas-3.0.6+tessera.dist-info",
            "bin",
        ] {
            std::fs::create_dir_all(site.join(folder)).expect("mkdir");
        }
        std::fs::write(site.join("humanize/__init__.py"), "X = 1\n").expect("write");
        std::fs::write(
            site.join("humanize-4.17.0.dist-info/METADATA"),
            "Name: humanize\n",
        )
        .expect("write");
        std::fs::write(site.join("pandas-3.0.6+tessera.dist-info/METADATA"), "stub")
            .expect("write");
        std::fs::write(site.join("bin/humanize"), "#!/usr/bin/python3").expect("write");
        let budget = tree::Budget {
            each: 1 << 10,
            total: 1 << 20,
            files: 10,
        };
        let files = read_installed(site, budget).expect("plain packages");
        let paths: Vec<_> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                ".site/humanize-4.17.0.dist-info/METADATA",
                ".site/humanize/__init__.py"
            ]
        );
        let tight = tree::Budget {
            each: 1 << 10,
            total: 1 << 20,
            files: 1,
        };
        let err = read_installed(site, tight).expect_err("two files past one");
        assert!(err.contains("python_packages_mb"), "{err}");
        std::os::unix::fs::symlink("/etc/passwd", site.join("humanize/passwd.py")).expect("ln");
        let err = read_installed(site, budget).expect_err("a link");
        assert!(err.contains("humanize/passwd.py"), "{err}");
    }
}
