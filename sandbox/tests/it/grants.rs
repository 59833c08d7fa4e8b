//! What a component is granted: no network, no files but its own data folder (read-only),
//! and nothing at all if the bytes are not a dashboard component.

use crate::support::{REQUEST, hostile_wasm, limits, sandbox, sockets_wasm};
use sandbox::{Error, LoadOptions, Outcome};
use serde_json::Value;
use std::path::Path;

#[test]
fn component_importing_sockets_is_refused_at_load_naming_the_import() {
    let sandbox = sandbox();
    match sandbox.load(sockets_wasm(), LoadOptions::default()) {
        Err(Error::ForbiddenImport { import }) => {
            assert!(import.starts_with("wasi:sockets/"), "import: {import}");
            assert!(import.contains('@'), "the full, versioned name: {import}");
        }
        Err(other) => panic!("expected ForbiddenImport, got {other:?}"),
        Ok(_) => panic!("a component importing wasi:sockets was loaded"),
    }
}

#[test]
fn bytes_that_are_not_a_component_are_refused() {
    let sandbox = sandbox();
    let core_module = b"\0asm\x01\0\0\0";
    let truncated = &hostile_wasm()[..hostile_wasm().len() / 2];
    let cases: [(&str, &[u8]); 4] = [
        ("text", b"this is not wasm at all"),
        ("empty", b""),
        ("core module", core_module),
        ("truncated component", truncated),
    ];
    for (what, bytes) in cases {
        match sandbox.load(bytes, LoadOptions::default()) {
            Err(Error::InvalidComponent { reason }) => assert!(!reason.is_empty(), "{what}"),
            Err(other) => panic!("{what}: expected InvalidComponent, got {other:?}"),
            Ok(_) => panic!("{what} was loaded as a component"),
        }
    }
}

/// A data folder with two files, a secret beside it and a symlink pointing at the secret.
fn data_fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("sub")).expect("mkdir");
    std::fs::write(data.join("hello.txt"), "hello from the data folder").expect("write");
    std::fs::write(data.join("sub/nested.txt"), "nested file").expect("write");
    std::fs::write(dir.path().join("secret.txt"), "TOP SECRET").expect("write");
    std::os::unix::fs::symlink(Path::new("../secret.txt"), data.join("escape-link"))
        .expect("symlink");
    (dir, data)
}

/// Runs `read.children` and returns its report: attempt → `{"ok": ...}` or `{"err": ...}`.
fn read_report(data_dir: Option<std::path::PathBuf>) -> serde_json::Map<String, Value> {
    let sandbox = sandbox();
    let component = sandbox
        .load(
            hostile_wasm(),
            LoadOptions {
                limits: limits(),
                data_dir,
                ..LoadOptions::default()
            },
        )
        .expect("loads");
    let output = component
        .call("read.children", REQUEST)
        .unwrap_or_else(|failure| panic!("read.children failed: {failure}"));
    let Outcome::Outputs(json) = output.outcome else {
        panic!("read.children prevented the update");
    };
    assert!(!json.contains("TOP SECRET"), "the secret leaked: {json}");
    match serde_json::from_str(&json) {
        Ok(Value::Object(map)) => map,
        other => panic!("read.children returned {other:?}"),
    }
}

fn ok_text<'a>(report: &'a serde_json::Map<String, Value>, key: &str) -> &'a str {
    report[key]["ok"]
        .as_str()
        .unwrap_or_else(|| panic!("{key} should have succeeded: {}", report[key]))
}

fn assert_refused(report: &serde_json::Map<String, Value>, key: &str) {
    assert!(
        report[key].get("err").is_some(),
        "{key} should have been refused: {}",
        report[key]
    );
}

#[test]
fn data_reads_work_inside_data_and_escapes_are_refused() {
    let (_dir, data) = data_fixture();
    let report = read_report(Some(data));

    assert_eq!(
        ok_text(&report, "host:hello.txt"),
        "hello from the data folder"
    );
    assert_eq!(ok_text(&report, "host:sub/nested.txt"), "nested file");
    assert_eq!(
        ok_text(&report, "fs:/data/hello.txt"),
        "hello from the data folder"
    );
    assert_eq!(ok_text(&report, "fs:/data/sub/nested.txt"), "nested file");

    for key in [
        "host:../secret.txt",
        "host:sub/../../secret.txt",
        "host:/etc/hostname",
        "host:escape-link",
        "host:",
        "fs:/data/../secret.txt",
        "fs:/data/escape-link",
        "fs:/etc/hostname",
        "fs-write:/data/new.txt",
    ] {
        assert_refused(&report, key);
    }
    let message = report["host:../secret.txt"]["err"].as_str().unwrap_or("");
    assert!(message.contains(".."), "{message}");
}

#[test]
fn data_reads_are_refused_without_a_data_folder() {
    let report = read_report(None);
    assert_refused(&report, "host:hello.txt");
    assert_refused(&report, "fs:/data/hello.txt");
}

#[test]
fn missing_data_folder_is_an_error_at_load() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().expect("tempdir");
    let result = sandbox.load(
        hostile_wasm(),
        LoadOptions {
            limits: limits(),
            data_dir: Some(dir.path().join("does-not-exist")),
            ..LoadOptions::default()
        },
    );
    assert!(
        matches!(result, Err(Error::Io { .. })),
        "expected Io error, got {:?}",
        result.err()
    );
}

fn load_with_settings(settings: sandbox::Settings) -> sandbox::Component {
    sandbox()
        .load(
            hostile_wasm(),
            LoadOptions {
                limits: limits(),
                settings,
                ..LoadOptions::default()
            },
        )
        .expect("loads")
}

fn secret_settings() -> sandbox::Settings {
    sandbox::Settings::new([
        ("REGION".to_string(), "eu \"west\"".to_string(), false),
        (
            "API_KEY".to_string(),
            "sk-live-0123456789".to_string(),
            true,
        ),
    ])
}

#[test]
fn the_guest_reads_its_settings_and_secrets_through_the_host_import() {
    let component = load_with_settings(secret_settings());
    let output = component
        .call("settings.children", REQUEST)
        .unwrap_or_else(|failure| panic!("settings.children failed: {failure}"));
    let sandbox::Outcome::Outputs(json) = output.outcome else {
        panic!("expected outputs, got {:?}", output.outcome);
    };
    let values: Value = serde_json::from_str(&json).expect("outputs are JSON");
    assert_eq!(
        values,
        serde_json::json!([{"REGION": "eu \"west\"", "API_KEY": "sk-live-0123456789", "MISSING": null}])
    );

    // Without settings, every name is unset.
    let bare = load_with_settings(sandbox::Settings::default());
    let output = bare.call("settings.children", REQUEST).expect("runs");
    assert_eq!(
        output.outcome,
        sandbox::Outcome::Outputs(r#"[{"REGION":null,"API_KEY":null,"MISSING":null}]"#.into())
    );
}

#[test]
fn secrets_are_masked_in_every_log_stream_and_in_the_error_message() {
    let component = load_with_settings(secret_settings());
    let failure = match component.call("leak.children", REQUEST) {
        Ok(output) => panic!("leak.children should fail, got {:?}", output.outcome),
        Err(failure) => failure,
    };
    let message = failure.error.to_string();
    assert!(
        message.contains("failing with API_KEY=[secret API_KEY]"),
        "{message}"
    );
    let streams: Vec<_> = failure.logs.iter().map(|line| line.stream).collect();
    assert_eq!(
        streams,
        [
            sandbox::LogStream::Host(sandbox::Level::Warn),
            sandbox::LogStream::Stdout,
            sandbox::LogStream::Stderr
        ],
        "{:?}",
        failure.logs
    );
    for line in &failure.logs {
        assert!(
            line.message.ends_with("sees API_KEY=[secret API_KEY]"),
            "{line:?}"
        );
    }
    let everything = format!("{message} {:?} {:?}", failure.logs, failure.error);
    assert!(!everything.contains("sk-live"), "{everything}");
}
