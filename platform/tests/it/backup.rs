//! `tessera backup` → a fresh data directory and database → `tessera restore` → the app
//! serves the same answers, on SQLite and on PostgreSQL, with the real binary: a component,
//! its assets and data folder, a secret setting (sealed: the key file must come along), a
//! git repository and a tenant's SQLite data source.

use std::path::Path;
use std::process::Stdio;

use platform::store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::support::{
    guest_wasm, host_for, hostile_request, reaching_apps, repo_root, spawn_listening,
    tessera_command,
};

const SECRET: &str = "backup-secret-3f9a";

/// Compiling a component on a loaded 2-core machine may pass the default 60 s.
fn config_file(data: &Path) -> std::path::PathBuf {
    let path = data.with_extension("toml");
    std::fs::write(&path, "[limits]\ncompile_secs = 900\n").expect("config file");
    path
}

fn run(data: &Path, database: &str, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = tessera_command(data)
        .env("TESSERA_DATABASE_URL", database)
        .env("TESSERA_CONFIG", config_file(data))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tessera");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// What a client sees of the apps: the probe's settings (the secret unsealed), the
/// multi-page app's asset and the report builder's layout (its data folder).
async fn answers(data: &Path, database: &str) -> Vec<Value> {
    let (mut child, address) = spawn_listening(
        tessera_command(data)
            .env("TESSERA_DATABASE_URL", database)
            .env("TESSERA_CONFIG", config_file(data))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped()),
    );
    let client = reaching_apps(reqwest::Client::builder(), &address, &["acme"])
        .build()
        .expect("client");
    let update = "/apps/acme/probe/_dash-update-component";
    let settings: Value = client
        .post(format!("http://{}{update}", host_for(&address, update)))
        .header("content-type", "application/json")
        .body(hostile_request("settings"))
        .send()
        .await
        .expect("settings")
        .json()
        .await
        .expect("JSON");
    let mut seen = vec![settings["response"]["settings"]["children"].clone()];
    for path in [
        "/apps/acme/pages/_dash-layout",
        "/apps/acme/reports/_dash-layout",
        "/apps/acme/pages/assets/style.css",
    ] {
        let reply = client
            .get(format!("http://{}{path}", host_for(&address, path)))
            .send()
            .await
            .expect("get");
        let status = reply.status().as_u16();
        let body = reply.text().await.expect("body");
        seen.push(json!({"path": path, "status": status, "body": body}));
    }
    child.kill().expect("stop");
    child.wait().expect("reap");
    seen
}

fn guest_path(file: &str) -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("wasm32-wasip2/guest")
        .join(file)
}

async fn round_trip(source_db: TestDatabase, fresh_db: TestDatabase) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, restored, folder) = (
        dir.path().join("data"),
        dir.path().join("restored"),
        dir.path().join("backup"),
    );
    std::fs::create_dir_all(&data).expect("data dir");
    let db = source_db.url.as_str();
    let wasm = data.join("hostile.wasm");
    std::fs::write(&wasm, guest_wasm("guest_hostile.wasm")).expect("write");
    let examples = repo_root().join("examples");
    for args in [
        vec![
            "deploy",
            "acme/probe",
            wasm.to_str().expect("utf-8"),
            "--visibility",
            "public",
        ],
        vec![
            "deploy",
            "acme/pages",
            guest_path("multi_page.wasm").to_str().expect("utf-8"),
            "--assets",
            examples.join("multi-page/assets").to_str().expect("utf-8"),
            "--visibility",
            "public",
        ],
        vec![
            "deploy",
            "acme/reports",
            guest_path("report_builder.wasm").to_str().expect("utf-8"),
            "--data",
            examples
                .join("report-builder/data")
                .to_str()
                .expect("utf-8"),
            "--visibility",
            "public",
        ],
        vec!["apps", "settings", "set", "acme/probe", "REGION=eu-west"],
    ] {
        let (ok, text) = run(&data, db, &args, "");
        assert!(ok, "{args:?}: {text}");
    }
    let (ok, text) = run(
        &data,
        db,
        &[
            "apps",
            "settings",
            "set",
            "--secret",
            "acme/probe",
            "API_KEY",
        ],
        &format!("{SECRET}\n"),
    );
    assert!(ok, "{text}");
    // A repository and a tenant's SQLite source: files only this data directory has.
    let repo = data.join("git/acme/probe.git");
    std::fs::create_dir_all(&repo).expect("repo dir");
    assert!(
        std::process::Command::new("git")
            .args(["init", "--bare", "--quiet"])
            .arg(&repo)
            .status()
            .expect("git init")
            .success()
    );
    std::fs::create_dir_all(data.join("sources/acme")).expect("sources");
    std::fs::write(data.join("sources/acme/shop.db"), b"not really sqlite").expect("source");

    let before = answers(&data, db).await;
    assert_eq!(before[0]["API_KEY"], SECRET, "{before:?}");
    assert!(
        before[1..].iter().all(|a| a["status"] == 200),
        "{before:#?}"
    );

    let (ok, text) = run(&data, db, &["backup", folder.to_str().expect("utf-8")], "");
    assert!(ok && text.contains("backed up"), "{text}");
    // A second backup into the same folder is refused: backups are never overwritten.
    let (ok, text) = run(&data, db, &["backup", folder.to_str().expect("utf-8")], "");
    assert!(!ok && text.contains("not empty"), "{text}");

    // A new machine: a fresh data directory and an empty database.
    std::fs::create_dir_all(&restored).expect("restored dir");
    let fresh = fresh_db.url.as_str();
    let (ok, text) = run(
        &restored,
        fresh,
        &["restore", folder.to_str().expect("utf-8")],
        "",
    );
    assert!(ok && text.contains("restored"), "{text}");
    assert!(restored.join("git/acme/probe.git/HEAD").is_file());
    assert_eq!(
        std::fs::read(restored.join("sources/acme/shop.db")).expect("source"),
        b"not really sqlite"
    );
    let after = answers(&restored, fresh).await;
    assert_eq!(before, after);

    // The restored database goes on: a new version gets the next number.
    let (ok, text) = run(
        &restored,
        fresh,
        &[
            "deploy",
            "acme/probe",
            guest_path("multi_page.wasm").to_str().expect("utf-8"),
        ],
        "",
    );
    assert!(ok && text.contains("version 2"), "{text}");
    // Restoring into a database that has rows is refused, and changes nothing.
    let (ok, text) = run(
        &restored,
        fresh,
        &["restore", folder.to_str().expect("utf-8")],
        "",
    );
    assert!(!ok && text.contains("not empty"), "{text}");
}

#[tokio::test]
async fn backup_then_restore_serves_the_same_answers_on_sqlite() {
    round_trip(
        TestDatabase::sqlite().expect("sqlite"),
        TestDatabase::sqlite().expect("sqlite"),
    )
    .await;
}

#[tokio::test]
async fn backup_then_restore_serves_the_same_answers_on_postgres() {
    let (Some(source), Some(fresh)) = (
        TestDatabase::postgres().await.expect("postgres"),
        TestDatabase::postgres().await.expect("postgres"),
    ) else {
        return;
    };
    round_trip(source, fresh).await;
}
