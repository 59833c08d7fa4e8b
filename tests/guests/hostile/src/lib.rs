//! A deliberately misbehaving dashboard component for the sandbox tests.
//!
//! Each callback id provokes one failure the host must contain: an endless loop, unbounded
//! allocation, a huge result, a panic, a flood of output, attempts to read outside `/data`,
//! a sleep longer than any deadline, a secret written to every log. A few well-behaved callbacks (`ok`, `count`, `echo`,
//! `fail`, `invalid`, `prevent`) let the tests check that the host recovers afterwards.
//!
//! It talks to the host through bindings generated straight from the WIT world rather than
//! through the SDK, so that these fixtures do not move when the SDK does.

wit_bindgen::generate!({
    path: "../../../wit/dashboard@0.1.0",
    world: "tessera:dashboard/dashboard",
});

use exports::tessera::dashboard::app::{AppInfo, CallbackError, Guest, Outcome};
use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use tessera::dashboard::host::{self, Level};

/// Calls answered by this instance so far; lets tests see whether an instance was reused.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// The callbacks this guest answers, by output component id.
const CALLBACKS: &[&str] = &[
    "ok", "count", "echo", "prevent", "fail", "invalid", "log", "spin", "hog", "flood", "panic",
    "chatty", "read", "sleep", "nap", "exit", "recurse", "settings", "leak", "mute", "bgspin",
    "bgok", "bgecho", "dataread",
];

struct Hostile;

impl Guest for Hostile {
    fn info() -> AppInfo {
        AppInfo {
            title: "hostile".to_string(),
            sdk_version: "guest-hostile".to_string(),
        }
    }

    fn layout() -> String {
        r#"{"type":"Div","namespace":"dash_html_components","props":{"id":"root","children":"hostile"}}"#
            .to_string()
    }

    /// Every callback is declared, each fired by the `go` button, so the platform's
    /// tests can reach them through `_dash-update-component` too; those named `bg…` are
    /// background callbacks. With the app setting `SPIN_IN_DEPENDENCIES` set, this spins
    /// instead (a load-time spin that a deploy without the setting does not see).
    fn dependencies() -> String {
        if host::setting("SPIN_IN_DEPENDENCIES").is_some() {
            spin();
        }
        let entries: Vec<String> = CALLBACKS
            .iter()
            .map(|name| {
                let background = match name.starts_with("bg") {
                    true => r#"{"interval":100}"#,
                    false => "null",
                };
                format!(
                    r#"{{"output":"{name}.children","inputs":[{{"id":"go","property":"n_clicks"}}],"state":[],"clientside_function":null,"prevent_initial_call":true,"background":{background},"dynamic_creator":false,"no_output":false,"optional":false,"hidden":null,"websocket":false,"persistent":false}}"#
                )
            })
            .collect();
        format!("[{}]", entries.join(","))
    }

    fn run_callback(id: String, request: String) -> Result<Outcome, CallbackError> {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        match id.as_str() {
            "ok.children" => Ok(Outcome::Outputs(r#"["ok"]"#.to_string())),
            "count.children" => Ok(Outcome::Outputs(format!("[{calls}]"))),
            "echo.children" => Ok(Outcome::Outputs(request)),
            "prevent.children" => Ok(Outcome::PreventUpdate),
            "fail.children" => Err(CallbackError::Failed(
                "the hostile guest refuses politely".to_string(),
            )),
            "invalid.children" => Err(CallbackError::InvalidInput(
                "the hostile guest wanted a number".to_string(),
            )),
            "log.children" => {
                host::log(Level::Info, "hello from host.log");
                println!("hello from stdout");
                eprintln!("hello from stderr");
                Ok(Outcome::Outputs(r#"["logged"]"#.to_string()))
            }
            "spin.children" | "bgspin.children" => spin(),
            "bgok.children" => Ok(Outcome::Outputs(r#"["ok"]"#.to_string())),
            "bgecho.children" => Ok(Outcome::Outputs(format!("[{}]", json_string(&request)))),
            "hog.children" => hog(),
            "flood.children" => Ok(Outcome::Outputs(flood(flood_mib()))),
            "panic.children" => panic!("the hostile guest panics on purpose"),
            "chatty.children" => {
                chatty();
                Ok(Outcome::Outputs(r#"["chatty done"]"#.to_string()))
            }
            "read.children" => Ok(Outcome::Outputs(read_attempts())),
            // The same attempts as one output value, as the platform serves it.
            "dataread.children" => Ok(Outcome::Outputs(format!("[{}]", read_attempts()))),
            // Empty log lines until the deadline: each must cost the call's log budget.
            "mute.children" => loop {
                host::log(Level::Info, "");
            },
            "sleep.children" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(Outcome::Outputs(r#"["woke up"]"#.to_string()))
            }
            "nap.children" => {
                std::thread::sleep(std::time::Duration::from_millis(100));
                Ok(Outcome::Outputs(r#"["nap"]"#.to_string()))
            }
            // Not in `CALLBACKS` (the sandbox tests call them directly): 20 MiB handed to
            // the host in one log line and in one progress report.
            "shout.children" => {
                host::log(Level::Info, &"x".repeat(20 << 20));
                Ok(Outcome::Outputs(r#"["shouted"]"#.to_string()))
            }
            "boast.children" => {
                host::report_progress(&format!("[\"{}\"]", "x".repeat(20 << 20)));
                Ok(Outcome::Outputs(r#"["boasted"]"#.to_string()))
            }
            // Not in `CALLBACKS` either: spins forever, reporting how far it got every
            // 100,000 rounds, so a test can see whether a long call makes progress.
            "tick.children" => tick(),
            "exit.children" => std::process::exit(3),
            "recurse.children" => Ok(Outcome::Outputs(format!("[{}]", recurse(1)))),
            "settings.children" => Ok(Outcome::Outputs(settings())),
            "leak.children" => {
                // Everything an author could do wrong with a secret, in one callback.
                let key = host::setting("API_KEY").unwrap_or_default();
                host::log(Level::Warn, &format!("host.log sees API_KEY={key}"));
                println!("stdout sees API_KEY={key}");
                eprintln!("stderr sees API_KEY={key}");
                Err(CallbackError::Failed(format!("failing with API_KEY={key}")))
            }
            other => Err(CallbackError::Failed(format!("unknown callback {other}"))),
        }
    }
}

/// `[{"REGION": …, "API_KEY": …, "MISSING": …}]`: what `host.setting` answers for three
/// names, `null` for an unset one.
fn settings() -> String {
    let fields: Vec<String> = ["REGION", "API_KEY", "MISSING"]
        .iter()
        .map(|name| {
            let value = host::setting(name).map_or("null".to_string(), |v| json_string(&v));
            format!("\"{name}\":{value}")
        })
        .collect();
    format!("[{{{}}}]", fields.join(","))
}

/// Loops forever doing work the optimiser cannot remove.
fn spin() -> ! {
    let mut x: u64 = 1;
    loop {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Spins like [`spin`], with a progress report (the rounds done) every 100,000 rounds.
fn tick() -> ! {
    let mut x: u64 = 1;
    let mut rounds: u64 = 0;
    loop {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        rounds += 1;
        if rounds.is_multiple_of(100_000) {
            host::report_progress(&format!("[{rounds}]"));
        }
    }
}

/// Allocates 1 MiB blocks forever and writes to every page so the memory is really used.
fn hog() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        blocks.push(black_box(block));
    }
}

/// The size of `flood`'s answer: 20 MiB, or the app setting `FLOOD_MIB` (the
/// noisy-neighbour suite asks for 100 MiB, within a 128 MiB memory cap).
fn flood_mib() -> usize {
    host::setting("FLOOD_MIB")
        .and_then(|mib| mib.parse().ok())
        .unwrap_or(20)
}

/// A JSON array holding one string of `mib` MiB.
fn flood(mib: usize) -> String {
    let mut out = String::with_capacity((mib << 20) + 8);
    out.push_str("[\"");
    out.extend(std::iter::repeat_n('x', mib << 20));
    out.push_str("\"]");
    out
}

/// Writes 1 MiB to stdout in 64-byte lines.
fn chatty() {
    let line = format!("{}\n", "c".repeat(63));
    let mut stdout = std::io::stdout().lock();
    for _ in 0..(1 << 20) / 64 {
        // A host that refuses output must not make the guest fail, so errors are ignored
        // here exactly as `println!` would not be allowed to ignore them.
        let _ = stdout.write_all(line.as_bytes());
    }
    let _ = stdout.flush();
}

/// Recursion with a frame the optimiser cannot fold, to exhaust the wasm stack.
#[expect(unconditional_recursion, reason = "overflowing the stack is the point")]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    recurse(depth + 1) + frame[black_box(3)]
}

/// Reads data files through both routes and tries to escape `/data` through both.
///
/// Returns a JSON object mapping each attempt to `{"ok": "<contents>"}` or
/// `{"err": "<message>"}` so the test can assert on every route separately.
fn read_attempts() -> String {
    let host_paths = [
        "hello.txt",
        "sub/nested.txt",
        "../secret.txt",
        "sub/../../secret.txt",
        "/etc/hostname",
        "escape-link",
        "",
    ];
    let fs_paths = [
        "/data/hello.txt",
        "/data/sub/nested.txt",
        "/data/../secret.txt",
        "/data/escape-link",
        "/etc/hostname",
    ];
    let mut fields = Vec::new();
    for path in host_paths {
        let result =
            host::read_data(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        fields.push(entry(&format!("host:{path}"), result));
    }
    for path in fs_paths {
        let result = std::fs::read_to_string(path).map_err(|e| e.to_string());
        fields.push(entry(&format!("fs:{path}"), result));
    }
    let written =
        std::fs::write("/data/new.txt", "should not be written").map_err(|e| e.to_string());
    fields.push(entry(
        "fs-write:/data/new.txt",
        written.map(|()| String::new()),
    ));
    format!("{{{}}}", fields.join(","))
}

fn entry(key: &str, result: Result<String, String>) -> String {
    let value = match result {
        Ok(text) => format!("{{\"ok\":{}}}", json_string(&text)),
        Err(message) => format!("{{\"err\":{}}}", json_string(&message)),
    };
    format!("{}:{}", json_string(key), value)
}

/// A minimal JSON string encoder, to keep this fixture free of dependencies.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

export!(Hostile);
