//! Shared test helpers: finding the guest components, sandboxes sized for tests, and a
//! data folder fixture.

use sandbox::{Component, Error, Limits, LoadOptions, Outcome, Sandbox, SandboxConfig};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The directory cargo builds into: `$CARGO_TARGET_DIR` if set (relative to the workspace
/// root, where cargo runs), else `<workspace>/target`.
fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the sandbox crate lives inside the workspace")
        .to_path_buf();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

/// The bytes of a guest component built with the `guest` profile.
pub fn guest(file: &str) -> Vec<u8> {
    let path = target_dir().join("wasm32-wasip2").join("guest").join(file);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the test guest {} ({e}).\n\
             Build the test guests first:  scripts/build-guests.sh guest-hostile guest-sockets guest-v0-1 guest-capable",
            path.display()
        )
    })
}

/// The hostile guest (see tests/guests/hostile).
pub fn hostile_wasm() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| guest("guest_hostile.wasm"))
}

/// The guest that tries to open a TCP connection (see tests/guests/sockets).
pub fn sockets_wasm() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| guest("guest_sockets.wasm"))
}

/// The 0.2.0 guest that uses `host.viewer`, `data` and `cache` (see tests/guests/capable).
pub fn capable_wasm() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| guest("guest_capable.wasm"))
}

/// The guest built for 0.1.0 with its own bindings (see tests/guests/v0_1).
pub fn v0_1_wasm() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| guest("guest_v0_1.wasm"))
}

/// A sandbox small enough that many tests can each have one at the same time.
pub fn test_config() -> SandboxConfig {
    SandboxConfig {
        max_instances: 16,
        max_memory_bytes: 256 << 20,
        ..SandboxConfig::default()
    }
}

pub fn sandbox() -> Sandbox {
    Sandbox::new(test_config()).expect("sandbox starts")
}

/// Limits for most tests: the defaults with a deadline short enough to keep the suite fast
/// and long enough not to fire on a busy two-core machine.
pub fn limits() -> Limits {
    Limits {
        deadline: Duration::from_secs(5),
        ..Limits::default()
    }
}

pub fn load_hostile(sandbox: &Sandbox, limits: Limits) -> Component {
    sandbox
        .load(
            hostile_wasm(),
            LoadOptions {
                limits,
                data_dir: None,
                ..LoadOptions::default()
            },
        )
        .expect("the hostile guest loads")
}

/// The request a Dash front end would send for a callback without inputs.
pub const REQUEST: &str = r#"{"outputs":[],"inputs":[],"state":[],"changed_prop_ids":[]}"#;

/// Calls `ok.children` and checks its answer.
pub fn assert_ok_call(component: &Component) {
    match component.call("ok.children", REQUEST) {
        Ok(output) => assert_eq!(output.outcome, Outcome::Outputs(r#"["ok"]"#.to_string())),
        Err(failure) => panic!("ok.children failed: {failure} (logs: {:?})", failure.logs),
    }
}

/// Calls `count.children`: how many calls the serving instance has answered, this one
/// included.
pub fn count(component: &Component) -> u64 {
    match component.call("count.children", REQUEST) {
        Ok(sandbox::CallOutput {
            outcome: Outcome::Outputs(json),
            ..
        }) => {
            let values: Vec<u64> = serde_json::from_str(&json).expect("count is a JSON array");
            values[0]
        }
        Ok(other) => panic!("unexpected outcome {:?}", other.outcome),
        Err(failure) => panic!("count.children failed: {failure}"),
    }
}

/// The error of a call that must fail.
///
/// The call runs on its own thread under a watchdog, so that a limit that does not fire
/// fails the test instead of hanging the suite.
pub fn call_err(component: &Component, callback: &str) -> sandbox::CallFailure {
    const WATCHDOG: Duration = Duration::from_secs(30);
    let (done, result) = std::sync::mpsc::channel();
    let component = component.clone();
    let id = callback.to_string();
    std::thread::spawn(move || {
        // The receiver may be gone if the watchdog already failed the test.
        let _ = done.send(component.call(&id, REQUEST));
    });
    match result.recv_timeout(WATCHDOG) {
        Ok(Ok(output)) => panic!("{callback} unexpectedly succeeded: {:?}", output.outcome),
        Ok(Err(failure)) => failure,
        Err(_) => panic!("{callback} was not stopped within {WATCHDOG:?}"),
    }
}

/// Short description of an error variant, for assertion messages.
pub fn variant(error: &Error) -> &'static str {
    match error {
        Error::Deadline { .. } => "Deadline",
        Error::Memory { .. } => "Memory",
        Error::OutputTooLarge { .. } => "OutputTooLarge",
        Error::InputTooLarge { .. } => "InputTooLarge",
        Error::Panic { .. } => "Panic",
        Error::Callback { .. } => "Callback",
        Error::InvalidInput { .. } => "InvalidInput",
        Error::Trap { .. } => "Trap",
        Error::ForbiddenImport { .. } => "ForbiddenImport",
        Error::InvalidComponent { .. } => "InvalidComponent",
        Error::InvalidLimits { .. } => "InvalidLimits",
        Error::Capacity { .. } => "Capacity",
        Error::Io { .. } => "Io",
        Error::Engine { .. } => "Engine",
        Error::Cancelled => "Cancelled",
    }
}
