//! A hostile Rust crate pushed with the real `git push` to a real `tessera serve`: its
//! `build.rs` and a proc-macro it uses try to read the platform's secrets and other
//! tenants' files, write where the server trusts what it finds, reach the network, fork a
//! thousand processes, write a 10 GiB file and leave a `setsid` daemon behind. Every
//! attempt is reported (one `PROBE` line each, also written to a report file in the
//! build's own target directory) and must have failed; after the push no process of the
//! build is alive.
//!
//! The crate has no crates.io dependency, so it builds in seconds. The suite runs the
//! server as the test's user; as root that is the case where builds switch to their own
//! uid. `hostile_builds_fail_with_a_non_root_server` runs the same crate against a server
//! started as the system user `tessera-test` (created when missing; needs root).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::git::{git, ok, stderr};

/// The crate's probes, shared by `build.rs` and the proc-macro (`include!`d by both).
/// `{…}` placeholders are filled in by [`probe_source`].
const PROBES: &str = r#"
#[allow(dead_code)]
mod probes {
    use std::io::Write;
    use std::time::Duration;

    pub const DATA_DIR: &str = "@DATA_DIR@";
    pub const MARKER: &str = "@MARKER@";
    pub const SERVER_CARGO_HOME: &str = "@SERVER_CARGO_HOME@";
    pub const SDK_DIR: &str = "@SDK_DIR@";
    pub const LISTENER: &str = "@LISTENER@";

    fn report(out: &mut Vec<String>, who: &str, what: &str, result: Result<String, String>) {
        out.push(match result {
            Ok(detail) => format!("PROBE {who} {what}: ESCAPED {detail}"),
            Err(error) => format!("PROBE {who} {what}: BLOCKED {error}"),
        });
    }

    fn read(path: &str) -> Result<String, String> {
        std::fs::read(path)
            .map(|b| format!("read {} bytes of {path}", b.len()))
            .map_err(|e| e.to_string())
    }

    fn write(dir: &str) -> Result<String, String> {
        let path = format!("{dir}/pwned-{MARKER}");
        std::fs::write(&path, b"pwned")
            .map(|()| format!("wrote {path}"))
            .map_err(|e| e.to_string())
    }

    fn connect(address: &str) -> Result<String, String> {
        let address = address.parse().map_err(|e: std::net::AddrParseError| e.to_string())?;
        std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))
            .map(|_| format!("connected to {address}"))
            .map_err(|e| e.to_string())
    }

    /// Files, secrets, caches and the network: what both the build script and the
    /// proc-macro try.
    pub fn common(who: &str) -> Vec<String> {
        let mut out = Vec::new();
        report(&mut out, who, "read secret.key", read(&format!("{DATA_DIR}/secret.key")));
        report(&mut out, who, "read the database", read(&format!("{DATA_DIR}/tessera.db")));
        // The sandbox makes the data dir's path to bind the build's own directories
        // under it; the real one holds the key and the database.
        report(&mut out, who, "list the data dir", match std::fs::read_dir(DATA_DIR) {
            Ok(dir) => {
                let names: Vec<String> = dir.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
                match names.iter().any(|n| n == "secret.key" || n == "tessera.db" || n == "git") {
                    true => Ok(format!("listed {names:?}")),
                    false => Err(format!("only {names:?}")),
                }
            }
            Err(e) => Err(e.to_string()),
        });
        report(&mut out, who, "read another tenant's repository",
            read(&format!("{DATA_DIR}/git/other/victim.git/HEAD")));
        report(&mut out, who, "read another tenant's target dir",
            read(&format!("{DATA_DIR}/builds/target/other/victim/artifact")));
        // The server's environment holds the marker: look in every process of this /proc.
        let mut seen = Vec::new();
        for entry in std::fs::read_dir("/proc").map(|d| d.flatten().collect::<Vec<_>>()).unwrap_or_default() {
            if let Ok(env) = std::fs::read(entry.path().join("environ")) {
                if String::from_utf8_lossy(&env).contains(&format!("SECRET={MARKER}")) {
                    seen.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        report(&mut out, who, "read the server's /proc/<pid>/environ", match seen.is_empty() {
            true => Err("no process with the server's environment is visible".into()),
            false => Ok(format!("found it in /proc/{}", seen.join(","))),
        });
        report(&mut out, who, "write the compiled-component cache",
            write(&format!("{DATA_DIR}/component-cache")));
        report(&mut out, who, "write the server's cargo registry",
            write(&format!("{SERVER_CARGO_HOME}/registry")));
        match std::env::var("CARGO_HOME") {
            Ok(home) => report(&mut out, who, "write the tenant's cargo home", write(&home)),
            Err(_) => report(&mut out, who, "write the tenant's cargo home", Err("no CARGO_HOME".into())),
        }
        report(&mut out, who, "write the SDK", write(SDK_DIR));
        report(&mut out, who, "connect to 127.0.0.1:5432", connect("127.0.0.1:5432"));
        report(&mut out, who, "connect to the test's listener", connect(LISTENER));
        out
    }

    /// Processes and files: what only the build script tries (once per build).
    pub fn heavy(who: &str, out_dir: &str) -> Vec<String> {
        let mut out = Vec::new();
        // A thousand processes at once.
        let mut children = Vec::new();
        let mut error = String::new();
        for _ in 0..1000 {
            match std::process::Command::new("sleep").arg("30").spawn() {
                Ok(child) => children.push(child),
                Err(e) => {
                    error = e.to_string();
                    break;
                }
            }
        }
        let forked = children.len();
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
        report(&mut out, who, "fork 1000 processes", match forked {
            1000 => Ok("forked all 1000".into()),
            n => Err(format!("forked {n}, then: {error}")),
        });
        // A 10 GiB file, watched: stopped here at 256 MiB if nothing else stops it.
        let big = format!("{out_dir}/big");
        let mut writer = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exec head -c 10737418240 /dev/zero > '{big}'"))
            .spawn()
            .expect("sh");
        let status = loop {
            if let Some(status) = writer.try_wait().expect("wait") {
                break Some(status);
            }
            if std::fs::metadata(&big).map(|m| m.len()).unwrap_or(0) > 256 << 20 {
                let _ = writer.kill();
                let _ = writer.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let size = std::fs::metadata(&big).map(|m| m.len()).unwrap_or(0);
        let _ = std::fs::remove_file(&big);
        report(&mut out, who, "write a 10 GiB file", match status {
            Some(status) if !status.success() => Err(format!("stopped at {size} bytes: {status}")),
            _ => Ok(format!("wrote {size} bytes unstopped")),
        });
        // A daemon in its own session, beating a heartbeat into the target directory.
        let beat = format!("{out_dir}/../../../../../heartbeat-{MARKER}");
        let started = std::process::Command::new("setsid")
            .arg("sh")
            .arg("-c")
            .arg(format!("while :; do echo . >> '{beat}'; sleep 0.1; done # {MARKER}"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        out.push(format!("PROBE {who} start a setsid daemon: INFO {:?}", started.map(|c| c.id())));
        std::thread::sleep(Duration::from_millis(300));
        out
    }

    /// Write `lines` to the report file (appending) and return them.
    pub fn save(report_file: &str, lines: &[String]) {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(report_file).expect("report");
        for line in lines {
            writeln!(file, "{line}").expect("write report");
        }
    }
}
"#;

/// [`PROBES`] with its placeholders filled in.
fn probe_source(data_dir: &Path, marker: &str, listener: &str) -> String {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo"));
    PROBES
        .replace("@DATA_DIR@", &data_dir.display().to_string())
        .replace("@MARKER@", marker)
        .replace("@SERVER_CARGO_HOME@", &cargo_home.display().to_string())
        .replace(
            "@SDK_DIR@",
            &std::fs::canonicalize(crate::support::repo_root().join("sdk"))
                .expect("sdk")
                .display()
                .to_string(),
        )
        .replace("@LISTENER@", listener)
}

/// Writes the hostile crate into `work`.
fn hostile_crate(work: &Path, probes: &str) {
    let write = |path: &str, text: &str| {
        let path = work.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write(
        "Cargo.toml",
        "[package]\nname = \"hostile\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nprobe-macro = { path = \"macro\" }\n\n[workspace]\nmembers = [\".\", \"macro\"]\n",
    );
    write("probes.rs", probes);
    write(
        "build.rs",
        r#"include!("probes.rs");
fn main() {
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR");
    let report = format!("{out_dir}/../../../../../probe-report.txt");
    let mut lines = probes::common("build.rs");
    lines.extend(probes::heavy("build.rs", &out_dir));
    lines.push("PROBE build.rs DONE".to_owned());
    probes::save(&report, &lines);
    for line in &lines {
        println!("cargo:warning={line}");
    }
    println!("cargo:rustc-env=PROBE_REPORT={report}");
}
"#,
    );
    write(
        "src/lib.rs",
        "probe_macro::probe!();\n\npub fn nothing() {}\n",
    );
    write(
        "macro/Cargo.toml",
        "[package]\nname = \"probe-macro\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\nproc-macro = true\n",
    );
    write(
        "macro/src/lib.rs",
        r#"include!("../../probes.rs");
use proc_macro::TokenStream;

/// Runs the probes inside rustc, saves them next to the build script's and fails the
/// build with them as the error.
#[proc_macro]
pub fn probe(_input: TokenStream) -> TokenStream {
    let mut lines = probes::common("macro");
    lines.push("PROBE macro DONE".to_owned());
    if let Ok(report) = std::env::var("PROBE_REPORT") {
        probes::save(&report, &lines);
    }
    format!("compile_error!({:?});", lines.join("\n")).parse().expect("tokens")
}
"#,
    );
    write("tessera.toml", "kind = \"rust\"\n");
    write(".gitignore", "/target\n");
}

/// A running `tessera serve`, killed on drop.
struct Server {
    child: std::process::Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            found.push(format!(
                "{}: {}",
                entry.file_name().to_string_lossy(),
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    found
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Runs a command, panicking with its stderr on failure; its stdout, trimmed.
fn run(command: &mut std::process::Command) -> String {
    let output = command.output().expect("runs");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The whole scenario against a server started by `server_command` (which gets the
/// data directory's config applied by the caller).
async fn push_the_hostile_crate(data_dir: &Path, tessera: &dyn Fn(&Path) -> std::process::Command) {
    let marker = format!("hostile{:016x}", rand::random::<u64>());
    std::fs::write(
        data_dir.join("config.toml"),
        "[builds]\nmax_file_mb = 64\nmax_processes = 256\ntime_limit_secs = 300\n",
    )
    .expect("config");
    let admin = |args: &[&str]| {
        run(tessera(data_dir)
            .env("TESSERA_CONFIG", data_dir.join("config.toml"))
            .arg("admin")
            .args(args))
    };
    admin(&["create-user", "alice@example.org"]);
    admin(&["create-tenant", "acme", "--owner", "alice@example.org"]);
    admin(&["create-user", "bob@example.org"]);
    admin(&["create-tenant", "other", "--owner", "bob@example.org"]);
    let token = admin(&["token", "create", "alice@example.org", "--tenant", "acme"]);
    let bob_token = admin(&["token", "create", "bob@example.org", "--tenant", "other"]);
    let (child, address) = crate::support::spawn_listening(
        tessera(data_dir)
            .env("TESSERA_CONFIG", data_dir.join("config.toml"))
            .env("TESSERA_TEST_SECRET", &marker)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let server = Server { child, address };

    // The victim tenant: a repository (a prebuilt app pushed by bob) and a target dir.
    let victim = tempfile::tempdir().expect("tempdir");
    let (home, work) = (victim.path().join("home"), victim.path().join("work"));
    std::fs::create_dir_all(&home).expect("home");
    std::fs::create_dir_all(&work).expect("work");
    ok(
        &home,
        &work,
        &["init", "--quiet", "--initial-branch", "main"],
    )
    .await;
    std::fs::write(
        work.join("app.wasm"),
        crate::support::guest_wasm("hello.wasm"),
    )
    .expect("wasm");
    std::fs::write(
        work.join("tessera.toml"),
        "kind = \"wasm\"\ncomponent = \"app.wasm\"\n",
    )
    .expect("toml");
    ok(&home, &work, &["add", "-A"]).await;
    ok(&home, &work, &["commit", "--quiet", "-m", "victim"]).await;
    let victim_url = format!(
        "http://git:{bob_token}@{}/git/other/victim.git",
        server.address
    );
    ok(&home, &work, &["push", "--quiet", &victim_url, "main"]).await;
    assert!(data_dir.join("git/other/victim.git/HEAD").is_file());
    let victim_target = data_dir.join("builds/target/other/victim");
    std::fs::create_dir_all(&victim_target).expect("victim target");
    std::fs::write(victim_target.join("artifact"), b"victim's build").expect("artifact");
    // Owned like the data dir (the server's user), as the server would have made them.
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(data_dir).expect("data dir");
        for path in [
            "builds",
            "builds/target",
            "builds/target/other",
            "builds/target/other/victim",
            "builds/target/other/victim/artifact",
        ] {
            std::os::unix::fs::chown(data_dir.join(path), Some(meta.uid()), Some(meta.gid()))
                .expect("chown");
        }
    }
    assert!(data_dir.join("secret.key").is_file() && data_dir.join("tessera.db").is_file());

    // A listener the build must not reach.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let listening = listener.local_addr().expect("address").to_string();

    let attacker = tempfile::tempdir().expect("tempdir");
    let (home, work) = (attacker.path().join("home"), attacker.path().join("work"));
    std::fs::create_dir_all(&home).expect("home");
    std::fs::create_dir_all(&work).expect("work");
    ok(
        &home,
        &work,
        &["init", "--quiet", "--initial-branch", "main"],
    )
    .await;
    hostile_crate(&work, &probe_source(data_dir, &marker, &listening));
    ok(&home, &work, &["add", "-A"]).await;
    ok(&home, &work, &["commit", "--quiet", "-m", "hostile"]).await;
    let url = format!("http://git:{token}@{}/git/acme/hostile.git", server.address);
    let started = Instant::now();
    let pushed = git(&home, &work, &["push", &url, "main"]).await;
    let log = stderr(&pushed);
    eprintln!("hostile push took {:?}", started.elapsed());
    assert!(
        !pushed.status.success(),
        "the proc-macro fails the build: {log}"
    );
    assert!(log.contains("sandboxed"), "{log}");

    // The report: both probes ran (else the test proves nothing), nothing escaped.
    let target = data_dir.join("builds/target/acme/hostile");
    let report_file = target.join("probe-report.txt");
    let report = std::fs::read_to_string(&report_file).unwrap_or_else(|e| {
        panic!(
            "no probe report at {}: {e}; the build never ran:\n{log}",
            report_file.display()
        )
    });
    eprintln!("{report}");
    assert!(report.contains("PROBE build.rs DONE"), "{report}\n{log}");
    assert!(report.contains("PROBE macro DONE"), "{report}\n{log}");
    let escaped: Vec<&str> = report.lines().filter(|l| l.contains(": ESCAPED")).collect();
    assert!(
        escaped.is_empty(),
        "escaped:\n{}\n\nfull report:\n{report}",
        escaped.join("\n")
    );
    for probe in [
        "read secret.key",
        "read the database",
        "read another tenant's repository",
        "read another tenant's target dir",
        "read the server's /proc/<pid>/environ",
        "write the compiled-component cache",
        "write the server's cargo registry",
        "write the tenant's cargo home",
        "write the SDK",
        "connect to 127.0.0.1:5432",
        "connect to the test's listener",
    ] {
        for who in ["build.rs", "macro"] {
            assert!(
                report.contains(&format!("PROBE {who} {probe}: BLOCKED")),
                "{who} {probe} not reported as blocked:\n{report}"
            );
        }
    }
    for probe in ["fork 1000 processes", "write a 10 GiB file"] {
        assert!(
            report.contains(&format!("PROBE build.rs {probe}: BLOCKED")),
            "{report}"
        );
    }
    // The push shows the build script's report and the proc-macro's.
    assert!(
        log.contains("PROBE build.rs read secret.key: BLOCKED"),
        "{log}"
    );
    assert!(log.contains("PROBE macro DONE"), "{log}");
    assert!(
        listener.accept().is_err(),
        "the build reached the test's listener"
    );

    // Nothing written where it tried, and no process of the build is alive.
    for dir in [
        data_dir.join("component-cache"),
        crate::support::repo_root().join("sdk"),
    ] {
        assert!(
            !dir.join(format!("pwned-{marker}")).exists(),
            "{}",
            dir.display()
        );
    }
    assert!(
        !data_dir
            .join(format!("builds/cargo/acme/pwned-{marker}"))
            .exists()
    );
    let left = processes_with(&marker)
        .into_iter()
        .filter(|p| !p.contains("TESSERA_TEST_SECRET"))
        .collect::<Vec<_>>();
    assert!(
        left.is_empty(),
        "processes of the build are alive: {left:?}"
    );
    let heartbeat = target.join(format!("heartbeat-{marker}"));
    assert!(file_len(&heartbeat) > 0, "the daemon never beat");
    let before = file_len(&heartbeat);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        file_len(&heartbeat),
        before,
        "the setsid daemon outlived the build"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_builds_fail_in_the_sandbox() {
    let data = tempfile::tempdir().expect("tempdir");
    // The server keeps its compiled components in its data dir (not the tests' shared
    // cache), so the build's attempt to write there aims at the real cache.
    push_the_hostile_crate(data.path(), &|dir| {
        let mut command = crate::support::tessera_command(dir);
        command.env_remove("TESSERA_COMPONENT_CACHE_DIR");
        command
    })
    .await;
}

/// The same crate against a server running as the system user `tessera-test` (created
/// when missing): its builds keep its uid inside a user namespace. Needs root to create
/// the user and start the server as it (`setpriv`); without root the test above already
/// is the non-root case, so this one returns early.
///
/// The toolchain lives under `/root` (mode 0700), which that user cannot enter: the test
/// gives the server a hard-linked copy of the toolchain's sysroot (same files, no extra
/// space) under `/var/tmp`, removed afterwards, first on its `PATH`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_builds_fail_with_a_non_root_server() {
    if platform::deploy::sandbox::current_uid() != Some(0) {
        eprintln!("skipped: already not root (hostile_builds_fail_in_the_sandbox covers it)");
        return;
    }
    const USER: &str = "tessera-test";
    let known = std::process::Command::new("id")
        .arg(USER)
        .output()
        .expect("id");
    if !known.status.success() {
        run(std::process::Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            USER,
        ]));
    }
    let uid: u32 = run(std::process::Command::new("id").args(["-u", USER]))
        .parse()
        .expect("uid");
    let gid: u32 = run(std::process::Command::new("id").args(["-g", USER]))
        .parse()
        .expect("gid");

    let sysroot = run(std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(crate::support::repo_root()));
    let sysroot = std::fs::canonicalize(sysroot).expect("sysroot");
    let copy = tempfile::Builder::new()
        .prefix("tessera-test-toolchain-")
        .tempdir_in("/var/tmp")
        .expect("toolchain dir");
    let toolchain = copy.path().join("toolchain");
    run(std::process::Command::new("cp")
        .arg("-al")
        .arg(&sysroot)
        .arg(&toolchain));
    std::os::unix::fs::chown(copy.path(), Some(uid), Some(gid)).expect("chown");

    let data = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::chown(data.path(), Some(uid), Some(gid)).expect("chown");
    let bin = toolchain.join("bin");
    let tessera = |data_dir: &Path| {
        let mut command = std::process::Command::new("setpriv");
        command
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
                "--",
                env!("CARGO_BIN_EXE_tessera"),
            ])
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("HOME", data_dir)
            .env("TESSERA_DATA_DIR", data_dir)
            .env(
                "TESSERA_FRONTEND_DIR",
                crate::support::repo_root().join("admin-ui/node_modules"),
            )
            .env("RUST_LOG", "warn");
        command
    };
    // The config file is written by the test (root) and read by the server.
    push_the_hostile_crate(data.path(), &tessera).await;
    let owner = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(
            data.path()
                .join("builds/target/acme/hostile/probe-report.txt"),
        )
        .expect("report")
        .uid()
    };
    assert_eq!(owner, uid, "the build ran as the server's own user");
}
