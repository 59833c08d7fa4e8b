//! Compiled code is reused: within a sandbox from memory, across sandboxes (and processes)
//! from the cache directory; a damaged cache entry is compiled again, never trusted.

use crate::support::{assert_ok_call, hostile_wasm, limits, sandbox, test_config};
use sandbox::{ArtifactSource, LoadOptions, Sandbox, SandboxConfig};
use std::path::{Path, PathBuf};

fn cached_sandbox(dir: &Path) -> Sandbox {
    Sandbox::new(SandboxConfig {
        cache_dir: Some(dir.to_path_buf()),
        ..test_config()
    })
    .expect("sandbox")
}

fn load(sandbox: &Sandbox) -> sandbox::Component {
    sandbox
        .load(
            hostile_wasm(),
            LoadOptions {
                limits: limits(),
                data_dir: None,
                ..LoadOptions::default()
            },
        )
        .expect("loads")
}

/// The compiled artifacts in the cache directory.
fn artifacts(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("cache dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
        .collect();
    found.sort();
    found
}

#[test]
fn same_bytes_loaded_twice_share_compiled_code() {
    let sandbox = sandbox();
    let first = load(&sandbox);
    let second = load(&sandbox);
    assert_eq!(first.artifact_source(), ArtifactSource::Compiled);
    assert_eq!(second.artifact_source(), ArtifactSource::Memory);
    assert_eq!(first.sha256(), second.sha256());
    assert_ok_call(&second);
}

#[test]
fn compiled_cache_round_trip_loads_from_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = load(&cached_sandbox(dir.path()));
    assert_eq!(first.artifact_source(), ArtifactSource::Compiled);
    let written = artifacts(dir.path());
    assert_eq!(written.len(), 1, "{written:?}");
    let name = written[0]
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    assert!(name.starts_with(first.sha256()), "{name}");

    // A second sandbox (as after a restart) finds the artifact instead of compiling.
    let second = load(&cached_sandbox(dir.path()));
    assert_eq!(second.artifact_source(), ArtifactSource::DiskCache);
    assert_ok_call(&second);
    assert_eq!(second.info().title, "hostile");
}

#[test]
fn corrupted_cache_file_is_recompiled() {
    let dir = tempfile::tempdir().expect("tempdir");
    load(&cached_sandbox(dir.path()));
    let artifact = artifacts(dir.path()).remove(0);
    let original = std::fs::read(&artifact).expect("artifact");

    // Flip bytes in the middle of the file, where the machine code is: wasmtime itself
    // would not notice this, so the cache must.
    let mut damaged = original.clone();
    let middle = damaged.len() / 2;
    for byte in &mut damaged[middle..middle + 64] {
        *byte ^= 0xff;
    }
    std::fs::write(&artifact, &damaged).expect("damage");
    let reloaded = load(&cached_sandbox(dir.path()));
    assert_eq!(reloaded.artifact_source(), ArtifactSource::Compiled);
    assert_ok_call(&reloaded);
    assert_eq!(
        std::fs::read(&artifact).expect("rewritten"),
        original,
        "the entry was rewritten"
    );

    // A truncated file is refused as well.
    std::fs::write(&artifact, &original[..original.len() / 3]).expect("truncate");
    let reloaded = load(&cached_sandbox(dir.path()));
    assert_eq!(reloaded.artifact_source(), ArtifactSource::Compiled);
    assert_ok_call(&reloaded);

    // And the rewritten entry is used again.
    let again = load(&cached_sandbox(dir.path()));
    assert_eq!(again.artifact_source(), ArtifactSource::DiskCache);
}

#[test]
fn pruning_removes_unwanted_and_foreign_artifacts_and_keeps_wanted_and_young_ones() {
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = cached_sandbox(dir.path());
    let loaded = load(&sandbox);
    let sha256 = loaded.sha256().to_string();
    // Files of another engine (an older wasmtime) and a temporary file a killed writer
    // left behind.
    let foreign = dir
        .path()
        .join(format!("{sha256}-wasmtime1.0.0-0000000000000000.cwasm"));
    std::fs::write(&foreign, b"old engine").expect("write");
    let stray = dir.path().join("abc.cwasm.123.0.tmp");
    std::fs::write(&stray, b"partial").expect("write");

    // Young files survive any pruning.
    let report = sandbox
        .prune_disk_cache(|_| false, Duration::from_secs(3600))
        .expect("prune");
    assert_eq!(report.removed_files, 0, "{report:?}");

    // Wanted artifacts stay; everything else goes.
    let report = sandbox
        .prune_disk_cache(|hash| hash == sha256, Duration::ZERO)
        .expect("prune");
    assert_eq!(
        (report.removed_files, report.kept_artifacts),
        (2, 1),
        "{report:?}"
    );
    assert!(!foreign.exists() && !stray.exists());
    assert_eq!(artifacts(dir.path()).len(), 1);

    // Once nothing wants it, its artifact and digest go, and the loaded component still
    // runs on the code it has in memory.
    let report = sandbox
        .prune_disk_cache(|_| false, Duration::ZERO)
        .expect("prune");
    assert_eq!(
        (report.removed_files, report.kept_artifacts),
        (2, 0),
        "{report:?}"
    );
    assert!(std::fs::read_dir(dir.path()).expect("dir").next().is_none());
    assert_ok_call(&loaded);
    // The next load compiles again and writes a fresh entry.
    let again = load(&cached_sandbox(dir.path()));
    assert_eq!(again.artifact_source(), ArtifactSource::Compiled);
}

/// Concurrent first loads of the same new bytes compile them once: the others wait for
/// that compilation and share its code.
#[test]
fn concurrent_loads_of_new_bytes_compile_once() {
    let sandbox = sandbox();
    let start = std::sync::Arc::new(std::sync::Barrier::new(4));
    let loads: Vec<_> = (0..4)
        .map(|_| {
            let (sandbox, start) = (sandbox.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                load(&sandbox)
            })
        })
        .collect();
    let loaded: Vec<sandbox::Component> = loads
        .into_iter()
        .map(|load| load.join().expect("load thread"))
        .collect();
    let compiled = loaded
        .iter()
        .filter(|c| c.artifact_source() == ArtifactSource::Compiled)
        .count();
    assert_eq!(
        compiled,
        1,
        "{:?}",
        loaded
            .iter()
            .map(|c| c.artifact_source())
            .collect::<Vec<_>>()
    );
    assert_ok_call(&loaded[3]);
}

/// A component the compiler refused is refused again at once, with the same reason.
#[test]
fn a_refused_component_is_remembered() {
    let sandbox = sandbox();
    let mut junk = vec![0, b'a', b's', b'm', 0x0d, 0, 1, 0];
    junk.extend_from_slice(&[0xff; 64]);
    let options = || LoadOptions {
        limits: limits(),
        ..LoadOptions::default()
    };
    let first = match sandbox.load(&junk, options()) {
        Err(sandbox::Error::InvalidComponent { reason }) => reason,
        other => panic!(
            "expected InvalidComponent, got {:?}",
            other.map(|c| c.sha256().to_string())
        ),
    };
    match sandbox.load(&junk, options()) {
        Err(sandbox::Error::InvalidComponent { reason }) => {
            assert!(reason.starts_with(&first), "{reason}");
            assert!(reason.contains("refused before"), "{reason}");
        }
        other => panic!(
            "expected InvalidComponent, got {:?}",
            other.map(|c| c.sha256().to_string())
        ),
    }
    // Other bytes are not affected.
    assert_ok_call(&load(&sandbox));
}

#[test]
fn a_component_loads_by_its_hash_when_its_code_is_in_memory_or_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = || LoadOptions {
        limits: limits(),
        ..LoadOptions::default()
    };
    let sandbox = cached_sandbox(dir.path());
    let first = load(&sandbox);
    let sha256 = first.sha256().to_owned();

    // Shared with the loaded component of the same hash.
    let shared = sandbox
        .load_cached(&sha256, options())
        .expect("loads")
        .expect("its code is in memory");
    assert_eq!(shared.artifact_source(), ArtifactSource::Memory);
    assert_ok_call(&shared);
    drop((first, shared));

    // After a restart, from the artifact the first load wrote.
    let restarted = cached_sandbox(dir.path());
    let from_disk = restarted
        .load_cached(&sha256, options())
        .expect("loads")
        .expect("its artifact is on disk");
    assert_eq!(from_disk.artifact_source(), ArtifactSource::DiskCache);
    assert_eq!(from_disk.info().title, "hostile");
    assert_ok_call(&from_disk);

    // Nowhere at hand: the caller must bring the bytes.
    let empty = tempfile::tempdir().expect("tempdir");
    assert!(
        cached_sandbox(empty.path())
            .load_cached(&sha256, options())
            .expect("no error")
            .is_none()
    );
    // Not a hash (a path, upper case, empty): never looked up, on disk or elsewhere.
    for bad in [
        "../".repeat(22).as_str(),
        sha256.to_uppercase().as_str(),
        "",
    ] {
        assert!(
            restarted
                .load_cached(bad, options())
                .expect("no error")
                .is_none(),
            "{bad:?}"
        );
    }
}
