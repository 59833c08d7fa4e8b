//! `deploy/Dockerfile`'s documented commands, run without Docker: the test reads the
//! runtime stage (ENV, ENTRYPOINT, CMD, HEALTHCHECK, USER, VOLUME, the COPY lines) and the
//! `docker run` lines of its header, lays out a temporary directory as the image's file
//! system would be (each COPY source linked at its destination), and runs the same
//! `tessera` binary the image ships with exactly that environment and those arguments:
//! the server starts, `/readyz` answers 200, the HEALTHCHECK command passes (and fails once
//! the server is gone), the demo serves its apps and `migrate` reports the schema.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{reaching_apps, repo_root, spawn_listening};

/// What the runtime stage of the Dockerfile says.
#[derive(Debug, Default)]
struct Image {
    env: BTreeMap<String, String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    healthcheck: Vec<String>,
    /// (sources, destination) of each `COPY --from=build`.
    copies: Vec<(Vec<String>, String)>,
    user: String,
    created_users: Vec<String>,
    volume: String,
    exposed: String,
    /// Arguments after the image name of each documented `docker run`.
    documented: Vec<Vec<String>>,
    /// The stage a plain `docker build` produces.
    last_from: String,
}

fn json_array(text: &str, what: &str) -> Vec<String> {
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{what} must be a JSON array ({e}): {text}"))
}

fn parse(dockerfile: &str) -> Image {
    let mut image = Image::default();
    // The documented commands: `#   docker run [options] tessera [args]`.
    for line in dockerfile.lines() {
        let Some(run) = line
            .trim_start_matches('#')
            .trim()
            .strip_prefix("docker run ")
        else {
            continue;
        };
        let words: Vec<&str> = run.split_whitespace().collect();
        let mut i = 0;
        while i < words.len() && words[i].starts_with('-') {
            // Options that take a value: -p, -v, -e, --ulimit, --name.
            i += if words[i].contains('=') { 1 } else { 2 };
        }
        assert_eq!(words.get(i), Some(&"tessera"), "image name in: {line}");
        image
            .documented
            .push(words[i + 1..].iter().map(|w| (*w).to_owned()).collect());
    }
    // Instructions, continuation lines joined, comments dropped.
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stage = String::new();
    for instruction in instructions {
        let (keyword, rest) = instruction
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((instruction.trim(), ""));
        let rest = rest.trim();
        if keyword == "FROM" {
            let words: Vec<&str> = rest.split_whitespace().collect();
            stage = match words.as_slice() {
                [_, "AS", name] => (*name).to_owned(),
                _ => String::new(),
            };
            image.last_from = words[0].to_owned();
            continue;
        }
        if stage != "runtime" {
            continue;
        }
        match keyword {
            "ENV" => {
                for pair in rest.split_whitespace() {
                    let (key, value) = pair.split_once('=').expect("ENV KEY=VALUE");
                    image.env.insert(key.to_owned(), value.to_owned());
                }
            }
            "ENTRYPOINT" => image.entrypoint = json_array(rest, "ENTRYPOINT"),
            "CMD" => image.cmd = json_array(rest, "CMD"),
            "HEALTHCHECK" => {
                let (_, command) = rest.split_once("CMD ").expect("HEALTHCHECK … CMD [..]");
                image.healthcheck = json_array(command, "HEALTHCHECK CMD");
            }
            "USER" => image.user = rest.to_owned(),
            "VOLUME" => image.volume = rest.to_owned(),
            "EXPOSE" => image.exposed = rest.to_owned(),
            "RUN" => {
                // `useradd [options] NAME`: the last word before the next `&&`.
                if let Some((_, tail)) = rest.split_once("useradd ") {
                    let name = tail
                        .split("&&")
                        .next()
                        .and_then(|c| c.split_whitespace().last());
                    image.created_users.extend(name.map(str::to_owned));
                }
            }
            "COPY" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                if words.first() == Some(&"--from=build") {
                    let (dest, sources) = words[1..].split_last().expect("COPY SRC… DEST");
                    image.copies.push((
                        sources.iter().map(|s| (*s).to_owned()).collect(),
                        (*dest).to_owned(),
                    ));
                }
            }
            _ => {}
        }
    }
    image
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Where a path of the build stage (`/src/…`, the checkout) is in this checkout.
fn build_path(source: &str) -> PathBuf {
    let relative = source
        .strip_prefix("/src/")
        .unwrap_or_else(|| panic!("COPY source outside /src: {source}"));
    match relative.strip_prefix("target/") {
        Some(built) => target_dir().join(built),
        None => repo_root().join(relative),
    }
}

/// The image's file system under `root`: each COPY source linked at its destination.
fn lay_out(image: &Image, root: &Path) {
    for (sources, dest) in &image.copies {
        let into_dir = dest.ends_with('/') || sources.len() > 1;
        for source in sources {
            let from = build_path(source);
            assert!(
                from.exists(),
                "{} (COPY {source}) is missing: build with `cargo build --release --workspace` and scripts/build-guests.sh",
                from.display()
            );
            let to = if into_dir {
                root.join(dest.trim_start_matches('/'))
                    .join(from.file_name().expect("file name"))
            } else {
                root.join(dest.trim_start_matches('/'))
            };
            std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
            std::os::unix::fs::symlink(&from, &to).expect("link");
        }
    }
}

/// The image's ENV with absolute paths moved under `root` and the exposed port replaced.
fn environment(image: &Image, root: &Path, port: u16) -> BTreeMap<String, String> {
    let exposed = format!(":{}", image.exposed);
    image
        .env
        .iter()
        .map(|(key, value)| {
            let value = value.replace(&exposed, &format!(":{port}"));
            let value = if value.starts_with('/') {
                root.join(value.trim_start_matches('/'))
                    .display()
                    .to_string()
            } else {
                value
            };
            (key.clone(), value)
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The container's command line `args` (CMD when empty) on the image's entry point.
fn container(
    image: &Image,
    root: &Path,
    env: &BTreeMap<String, String>,
    args: &[String],
) -> Command {
    let program = root.join(image.entrypoint[0].trim_start_matches('/'));
    let mut command = Command::new(program);
    let args = if args.is_empty() {
        image.cmd.as_slice()
    } else {
        args
    };
    command
        .args(&image.entrypoint[1..])
        .args(args)
        // A container sees only the image's environment.
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &env["TESSERA_DATA_DIR"])
        .env("RUST_LOG", "warn")
        .envs(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

fn healthcheck(image: &Image, env: &BTreeMap<String, String>) -> bool {
    Command::new(&image.healthcheck[0])
        .args(&image.healthcheck[1..])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run the HEALTHCHECK command")
        .success()
}

#[test]
fn the_dockerfile_says_what_the_test_runs() {
    let text = std::fs::read_to_string(repo_root().join("deploy/Dockerfile")).expect("Dockerfile");
    let image = parse(&text);
    assert_eq!(
        image.last_from, "runtime",
        "a plain build gives the runtime stage"
    );
    assert_eq!(image.entrypoint, ["/usr/local/bin/tessera"]);
    assert_eq!(image.cmd, ["serve"]);
    assert!(
        image.healthcheck.iter().any(|w| w.contains("/readyz")),
        "{:?}",
        image.healthcheck
    );
    assert!(
        image.user != "root" && image.created_users.contains(&image.user),
        "runs as a user it creates: {image:?}"
    );
    assert_eq!(image.volume, image.env["TESSERA_DATA_DIR"]);
    assert!(
        text.contains("bubblewrap") && text.contains(" git "),
        "builds need bubblewrap and git in the image"
    );
    for documented in [&["serve", "--demo"][..], &["migrate"][..], &[][..]] {
        assert!(
            image.documented.iter().any(|d| d == documented),
            "documented: {:?}",
            image.documented
        );
    }
}

#[tokio::test]
async fn the_images_documented_commands_run_with_the_same_binary() {
    let text = std::fs::read_to_string(repo_root().join("deploy/Dockerfile")).expect("Dockerfile");
    let image = parse(&text);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    lay_out(&image, root);
    // The binary the image runs is the one this test suite was built with.
    let shipped = root.join(image.entrypoint[0].trim_start_matches('/'));
    assert_eq!(
        std::fs::canonicalize(&shipped).expect("entry point"),
        std::fs::canonicalize(env!("CARGO_BIN_EXE_tessera")).expect("tessera binary")
    );
    let port = free_port();
    let env = environment(&image, root, port);
    // The volume: owned by the image's user, created by `useradd --create-home`.
    std::fs::create_dir_all(&env["TESSERA_DATA_DIR"]).expect("volume");

    for args in &image.documented {
        let documented = format!("docker run … tessera {}", args.join(" "));
        if args.first().map(String::as_str) == Some("migrate") {
            let output = container(&image, root, &env, args)
                .output()
                .expect("run migrate");
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success(), "{documented}: {stdout}");
            assert!(stdout.contains("schema version"), "{documented}: {stdout}");
            continue;
        }
        let (mut child, address) = spawn_listening(&mut container(&image, root, &env, args));
        assert!(
            address.ends_with(&format!(":{port}")),
            "{documented} listens on {address}"
        );
        let loopback = format!("127.0.0.1:{port}");
        let client = reaching_apps(reqwest::Client::builder(), &loopback, &["demo"])
            .resolve("localhost", loopback.parse().expect("address"))
            .build()
            .expect("client");
        let ready = client
            .get(format!("http://localhost:{port}/readyz"))
            .send()
            .await
            .expect("readyz");
        assert_eq!(ready.status(), 200, "{documented}: /readyz");
        assert!(healthcheck(&image, &env), "{documented}: HEALTHCHECK fails");
        if args.iter().any(|a| a == "--demo") {
            for app in ["hello", "sales-explorer", "multi-page"] {
                let layout = client
                    .get(format!(
                        "http://demo.localhost:{port}/apps/demo/{app}/_dash-layout"
                    ))
                    .send()
                    .await
                    .expect("layout");
                assert_eq!(layout.status(), 200, "{documented}: {app}'s layout");
            }
        }
        child.kill().expect("stop the server");
        child.wait().expect("reap the server");
        // The HEALTHCHECK is a real check: with the server gone it fails.
        assert!(
            !healthcheck(&image, &env),
            "{documented}: HEALTHCHECK passes with no server"
        );
    }
}
