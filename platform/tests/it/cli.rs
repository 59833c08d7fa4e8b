//! The `tessera` binary itself: `deploy` from the command line and `serve` stopping
//! cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{guest_wasm, repo_root};

fn tessera(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command
        .env_remove("TESSERA_DATABASE_URL")
        .env_remove("TESSERA_CONFIG")
        .env("TESSERA_DATA_DIR", data_dir)
        .env(
            "TESSERA_FRONTEND_DIR",
            repo_root().join("admin-ui/node_modules"),
        )
        .env("RUST_LOG", "warn");
    command
}

#[test]
fn deploy_accepts_a_component_and_refuses_garbage_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hello = dir.path().join("hello.wasm");
    std::fs::write(&hello, guest_wasm("hello.wasm")).expect("write component");
    let ok = tessera(dir.path())
        .args(["deploy", "demo/hello"])
        .arg(&hello)
        .output()
        .expect("run tessera");
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("deployed demo/hello version 1"), "{stdout}");

    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm garbage").expect("write garbage");
    let refused = tessera(dir.path())
        .args(["deploy", "demo/hello"])
        .arg(&garbage)
        .output()
        .expect("run tessera");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("refused") && stderr.contains("live version is unchanged"),
        "{stderr}"
    );

    for (target, why) in [
        ("demo", "tenant/app"),
        ("demo/Bad_Name", "not a valid name"),
    ] {
        let bad = tessera(dir.path())
            .args(["deploy", target])
            .arg(&hello)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert!(
            !bad.status.success() && stderr.contains(why),
            "{target}: {stderr}"
        );
    }

    // A second good deploy is version 2: the refused one left no trace.
    let again = tessera(dir.path())
        .args(["deploy", "demo/hello"])
        .arg(&hello)
        .output()
        .expect("run tessera");
    assert!(String::from_utf8_lossy(&again.stdout).contains("version 2"));
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = tessera(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tessera");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let started = Instant::now();
    let address = loop {
        let line = lines
            .next()
            .expect("tessera exited before listening")
            .expect("read line");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim_end_matches('/').to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no listening line"
        );
    };
    let health = std::net::TcpStream::connect(&address);
    assert!(health.is_ok(), "nothing listens on {address}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            assert!(exit.success(), "tessera exited with {exit}");
            break;
        }
        assert!(Instant::now() < deadline, "tessera ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
