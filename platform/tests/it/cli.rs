//! The `tessera` binary itself: `deploy` from the command line, `serve` stopping
//! cleanly on SIGTERM, and `dev` following a folder.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{guest_wasm, tessera_command as tessera};

#[test]
fn compiled_components_go_where_the_component_cache_dir_says() {
    use sha2::Digest;
    let dir = tempfile::tempdir().expect("tempdir");
    let hello = dir.path().join("hello.wasm");
    let bytes = guest_wasm("hello.wasm");
    std::fs::write(&hello, &bytes).expect("write component");
    let elsewhere = dir.path().join("elsewhere");
    let ok = tessera(dir.path())
        .env("TESSERA_COMPONENT_CACHE_DIR", &elsewhere)
        .args(["deploy", "demo/hello"])
        .arg(&hello)
        .output()
        .expect("run tessera");
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    let artifacts = |folder: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(folder)
            .map(|entries| {
                entries
                    .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .filter(|name| name.ends_with(".cwasm"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    let cached = artifacts(&elsewhere);
    assert!(
        cached.iter().any(|name| name.starts_with(&sha)),
        "no artifact of the component in {}: {cached:?}",
        elsewhere.display()
    );
    assert_eq!(
        artifacts(&dir.path().join("component-cache")),
        Vec::<String>::new(),
        "nothing compiled into the data dir's default cache"
    );
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

/// Run `tessera` with `args` (and `stdin`), returning (success, stdout, stderr).
fn run(data_dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut child = tessera(data_dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tessera");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run and require success; returns stdout.
fn ok(data_dir: &std::path::Path, args: &[&str]) -> String {
    let (success, stdout, stderr) = run(data_dir, args, None);
    assert!(success, "tessera {args:?} failed:\n{stdout}{stderr}");
    stdout
}

/// A running `tessera serve` on an ephemeral port: (process, address, stdout before the
/// listening line).
fn serve(data_dir: &std::path::Path) -> (std::process::Child, String, String) {
    let mut child = tessera(data_dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tessera");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut before = String::new();
    let address = loop {
        let line = lines
            .next()
            .expect("tessera exited before listening")
            .expect("read line");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim_end_matches('/').to_owned();
        }
        before.push_str(&line);
        before.push('\n');
    };
    (child, address, before)
}

/// The status of `GET path` over a real socket, with an optional bearer token.
fn http_status(address: &str, path: &str, token: Option<&str>) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n",
        crate::support::host_for(address, path)
    )
    .expect("write request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

fn stop(mut child: std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[test]
fn admin_commands_use_the_documented_spellings_and_refuse_bad_input_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (success, stdout, stderr) = run(
        d,
        &[
            "admin",
            "create-user",
            "Alice@Example.org",
            "--password-stdin",
            "--superadmin",
        ],
        Some("a long enough password\n"),
    );
    assert!(success, "{stdout}{stderr}");
    assert_eq!(stdout, "created superadmin alice@example.org\n");
    let (success, _, stderr) = run(
        d,
        &[
            "admin",
            "create-user",
            "bob@example.org",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(
        !success && stderr.contains("12 to 1024 characters"),
        "{stderr}"
    );
    ok(d, &["admin", "create-user", "bob@example.org"]);
    let one_time = ok(d, &["admin", "reset-password", "bob@example.org"]);
    assert_eq!(
        one_time.trim().len(),
        24,
        "only the password on stdout: {one_time:?}"
    );
    let (success, stdout, stderr) = run(
        d,
        &[
            "admin",
            "reset-password",
            "bob@example.org",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(
        !success && stdout.is_empty() && stderr.contains("12 to 1024 characters"),
        "{stdout}{stderr}"
    );
    let (success, _, stderr) = run(d, &["admin", "reset-password", "nobody@example.org"], None);
    assert!(
        !success && stderr.contains("no user nobody@example.org"),
        "{stderr}"
    );
    let (success, _, stderr) = run(d, &["admin", "create-user", "BOB@example.org"], None);
    assert!(
        !success && stderr.contains("user \"bob@example.org\" already exists"),
        "{stderr}"
    );

    assert_eq!(
        ok(
            d,
            &["admin", "create-tenant", "acme", "--name", "Acme Corp"]
        ),
        "created tenant acme (Acme Corp)\n"
    );
    let (success, stdout, stderr) = run(d, &["admin", "create-tenant", "acme"], None);
    assert!(!success && stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("tenant \"acme\" already exists"),
        "{stderr}"
    );
    for (slug, why) in [
        ("admin", "reserved"),
        ("Acme", "not a valid slug"),
        ("a_b", "not a valid slug"),
    ] {
        let (success, _, stderr) = run(d, &["admin", "create-tenant", slug], None);
        assert!(!success && stderr.contains(why), "{slug}: {stderr}");
    }

    assert_eq!(
        ok(d, &["admin", "grant", "bob@example.org", "acme", "author"]),
        "bob@example.org is now author in acme\n"
    );
    assert!(
        ok(d, &["admin", "grant", "bob@example.org", "acme", "viewer"]).contains("(was author)")
    );
    let (success, _, stderr) = run(
        d,
        &["admin", "grant", "bob@example.org", "acme", "boss"],
        None,
    );
    assert!(!success && stderr.contains("not a role"), "{stderr}");
    let (success, _, stderr) = run(
        d,
        &["admin", "grant", "nobody@example.org", "acme", "viewer"],
        None,
    );
    assert!(
        !success && stderr.contains("no user nobody@example.org"),
        "{stderr}"
    );

    // The token alone on stdout; a viewer cannot get an admin token.
    let (success, stdout, stderr) = run(
        d,
        &[
            "admin",
            "token",
            "create",
            "bob@example.org",
            "--tenant",
            "acme",
        ],
        None,
    );
    assert!(success, "{stderr}");
    let token = stdout.strip_suffix('\n').expect("one line");
    assert!(
        !token.contains('\n') && token.starts_with("tsr_") && token.len() == 57,
        "{stdout:?}"
    );
    assert!(stderr.contains("created token"), "{stderr}");
    let (success, stdout, stderr) = run(
        d,
        &[
            "admin",
            "token",
            "create",
            "bob@example.org",
            "--tenant",
            "acme",
            "--role",
            "admin",
            "--expires-in-days",
            "7",
        ],
        None,
    );
    assert!(
        !success && stdout.is_empty() && stderr.contains("cannot be admin"),
        "{stderr}"
    );
    let (success, _, stderr) = run(
        d,
        &[
            "admin",
            "token",
            "create",
            "bob@example.org",
            "--tenant",
            "acme",
            "--expires-in-days",
            "0",
        ],
        None,
    );
    assert!(!success && stderr.contains("expires-in-days"), "{stderr}");

    let id = &token[4..16];
    assert_eq!(
        ok(d, &["admin", "token", "revoke", id]),
        format!("revoked token {id}\n")
    );
    assert!(ok(d, &["admin", "token", "revoke", id]).contains("already revoked"));
    let (success, _, stderr) = run(d, &["admin", "token", "revoke", "nosuchtoken0"], None);
    assert!(!success && stderr.contains("no token"), "{stderr}");
}

#[tokio::test]
async fn every_admin_change_is_audited_and_a_failed_create_tenant_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (success, _, stderr) = run(
        d,
        &[
            "admin",
            "create-tenant",
            "acme",
            "--owner",
            "ghost@example.org",
        ],
        None,
    );
    assert!(
        !success && stderr.contains("no user ghost@example.org"),
        "{stderr}"
    );
    ok(d, &["admin", "create-user", "carol@example.org"]);
    ok(
        d,
        &[
            "admin",
            "create-tenant",
            "acme",
            "--owner",
            "carol@example.org",
        ],
    );
    ok(
        d,
        &[
            "admin",
            "token",
            "create",
            "carol@example.org",
            "--tenant",
            "acme",
        ],
    );

    let url = format!("sqlite://{}", d.join("tessera.db").display());
    let store = platform::store::Store::connect(&url).await.expect("store");
    let actions: Vec<_> = store
        .platform_audit_entries(None, 50)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| {
            assert!(e.actor.starts_with("cli:"), "{e:?}");
            e.action
        })
        .collect();
    assert_eq!(
        actions,
        [
            "token.create",
            "membership.grant",
            "tenant.create",
            "user.create"
        ]
    );
    let acme = platform::ids::Slug::parse("acme").expect("slug");
    let tenant = store.tenant_by_slug(&acme).await.expect("q").expect("acme");
    assert_eq!(tenant.name, "acme");
}

#[test]
fn tokens_work_only_in_their_tenant_and_stop_when_revoked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let hello = d.join("hello.wasm");
    std::fs::write(&hello, guest_wasm("hello.wasm")).expect("write component");
    // `a` and `b` public (`b` restricted below); `c` as `tessera deploy` creates apps by
    // default: visible to its tenant's members only.
    for (tenant, visibility) in [("a", "public"), ("b", "public"), ("c", "")] {
        ok(d, &["admin", "create-tenant", tenant]);
        let target = format!("{tenant}/hello");
        let mut args = vec!["deploy", &target, hello.to_str().expect("utf-8")];
        if !visibility.is_empty() {
            args.extend(["--visibility", visibility]);
        }
        ok(d, &args);
    }
    ok(d, &["admin", "set-visibility", "b/hello", "restricted"]);
    ok(d, &["admin", "create-user", "ann@example.org"]);
    ok(d, &["admin", "grant", "ann@example.org", "a", "owner"]);
    ok(d, &["admin", "create-user", "ben@example.org"]);
    ok(d, &["admin", "grant", "ben@example.org", "b", "admin"]);
    let for_a = ok(
        d,
        &[
            "admin",
            "token",
            "create",
            "ann@example.org",
            "--tenant",
            "a",
        ],
    );
    let for_b = ok(
        d,
        &[
            "admin",
            "token",
            "create",
            "ben@example.org",
            "--tenant",
            "b",
        ],
    );
    let (for_a, for_b) = (for_a.trim(), for_b.trim());

    let (server, address, first_output) = serve(d);
    // Users existed already, so no first-start superadmin was made.
    assert!(
        !first_output.contains("one-time password"),
        "{first_output}"
    );
    assert_eq!(http_status(&address, "/apps/a/hello/", None), 200);
    // Anonymous: sent to sign in (issue 5); the Dash endpoints stay a 404.
    assert_eq!(http_status(&address, "/apps/b/hello/", None), 303);
    assert_eq!(
        http_status(&address, "/apps/b/hello/_dash-layout", None),
        404
    );
    assert_eq!(http_status(&address, "/apps/b/hello/", Some(for_a)), 404);
    assert_eq!(
        http_status(&address, "/apps/b/hello/_dash-layout", Some(for_a)),
        404
    );
    assert_eq!(http_status(&address, "/apps/b/hello/", Some(for_b)), 200);
    assert_eq!(http_status(&address, "/apps/c/hello/", None), 303);
    assert_eq!(http_status(&address, "/apps/c/hello/", Some(for_a)), 404);
    ok(d, &["admin", "token", "revoke", &for_b[4..16]]);
    assert_eq!(http_status(&address, "/apps/b/hello/", Some(for_b)), 401);
    stop(server);
}

#[test]
fn first_start_creates_one_superadmin_and_shows_its_password_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _, output) = serve(dir.path());
    stop(server);
    assert!(
        output.contains("created the superadmin admin@localhost"),
        "{output}"
    );
    let password = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("one-time password: "))
        .expect("password line");
    assert_eq!(password.len(), 24);
    let (server, _, again) = serve(dir.path());
    stop(server);
    assert!(!again.contains("one-time password"), "{again}");
    let (success, _, stderr) = run(
        dir.path(),
        &["admin", "create-user", "admin@LOCALHOST"],
        None,
    );
    assert!(!success && stderr.contains("already exists"), "{stderr}");
}

/// GET `path` from `tessera dev` at `port` on the `dev` tenant's apps origin: (status,
/// body). Plain HTTP/1.1 over a socket, so no resolver needs to know `dev.localhost`.
fn dev_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: dev.localhost:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read");
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// `tessera dev` on a folder holding a prebuilt component (`kind = "wasm"`, so no compiler
/// runs): the first version goes live, replacing the file deploys the new one and changes
/// the reload hash the page polls, a file that is no component leaves the last good
/// version serving under the failure's banner; and it refuses a non-loopback address and a
/// folder without `tessera.toml`.
#[test]
fn dev_serves_a_folder_redeploys_it_on_change_and_shows_a_failure() {
    let data = tempfile::tempdir().expect("tempdir");
    let project = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        project.path().join("tessera.toml"),
        "kind = \"wasm\"\ncomponent = \"app.wasm\"\n",
    )
    .expect("write");
    std::fs::write(project.path().join("app.wasm"), guest_wasm("hello.wasm")).expect("write");

    let (refused_ok, _, refused) = run(
        data.path(),
        &[
            "dev",
            "--listen",
            "0.0.0.0:0",
            &project.path().display().to_string(),
        ],
        None,
    );
    assert!(
        !refused_ok && refused.contains("loopback only"),
        "{refused}"
    );
    let empty = tempfile::tempdir().expect("tempdir");
    let (empty_ok, _, said) = run(
        data.path(),
        &[
            "dev",
            "--listen",
            "127.0.0.1:0",
            &empty.path().display().to_string(),
        ],
        None,
    );
    assert!(!empty_ok && said.contains("has no tessera.toml"), "{said}");

    let mut child = tessera(data.path())
        .args(["dev", "--listen", "127.0.0.1:0", "--name", "hello"])
        .arg(project.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tessera dev");
    // Both streams into one channel of lines (the build's lines go to stderr).
    let (lines, said) = std::sync::mpsc::channel::<String>();
    for stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let mut transcript = String::new();
    let mut wait_for = |needle: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match said.recv_timeout(left) {
                Ok(line) => {
                    transcript.push_str(&line);
                    transcript.push('\n');
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("tessera dev never said {needle:?}:\n{transcript}"),
            }
        }
    };
    let serving = wait_for("tessera dev: serving");
    let port: u16 = serving
        .split("http://dev.localhost:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|port| port.parse().ok())
        .expect("the address");
    wait_for("version 1 of dev/hello live");
    let (status, first) = dev_get(port, "/apps/dev/hello/_reload-hash");
    assert_eq!(status, 200, "{first}");
    let (_, layout) = dev_get(port, "/apps/dev/hello/_dash-layout");
    assert!(layout.contains(r#""greeting""#), "{layout}");

    std::fs::write(
        project.path().join("app.wasm"),
        guest_wasm("dash_features.wasm"),
    )
    .expect("write");
    wait_for("version 2 of dev/hello live");
    let (_, second) = dev_get(port, "/apps/dev/hello/_reload-hash");
    assert_ne!(first, second, "the page must see the new version");
    let (_, layout) = dev_get(port, "/apps/dev/hello/_dash-layout");
    assert!(!layout.contains(r#""greeting""#), "{layout}");

    std::fs::write(project.path().join("app.wasm"), b"not a component").expect("write");
    wait_for("the page shows the error");
    let (_, third) = dev_get(port, "/apps/dev/hello/_reload-hash");
    assert_ne!(second, third);
    let (status, page) = dev_get(port, "/apps/dev/hello/");
    assert_eq!(status, 200);
    assert!(page.contains(r#"<pre id="_tessera-dev-error""#), "{page}");
    let (_, still) = dev_get(port, "/apps/dev/hello/_dash-layout");
    assert_eq!(still, layout, "the last good version keeps serving");

    child.kill().expect("kill");
    child.wait().expect("wait");
}
