//! Every limit fires on a guest that tries to get past it, with an error naming the limit,
//! and the sandbox keeps serving other components afterwards.

use crate::support::{
    REQUEST, assert_ok_call, call_err, hostile_wasm, limits, load_hostile, sandbox, variant,
};
use sandbox::{Error, Limits, LoadOptions, LogStream, Outcome};
use std::time::{Duration, Instant};

#[test]
fn infinite_loop_stops_at_the_deadline() {
    let sandbox = sandbox();
    let deadline = Duration::from_millis(300);
    let component = load_hostile(
        &sandbox,
        Limits {
            deadline,
            ..limits()
        },
    );
    let started = Instant::now();
    let failure = call_err(&component, "spin.children");
    let elapsed = started.elapsed();
    match failure.error {
        Error::Deadline { limit } => assert_eq!(limit, deadline),
        other => panic!("expected Deadline, got {other:?}"),
    }
    assert!(failure.error.is_limit());
    assert!(
        failure.error.to_string().contains("300ms deadline"),
        "{}",
        failure.error
    );
    assert!(
        elapsed >= deadline - Duration::from_millis(20),
        "stopped too early: {elapsed:?}"
    );
    assert!(elapsed < 2 * deadline, "stopped too late: {elapsed:?}");
}

#[test]
fn sleeping_guest_is_woken_and_stopped_at_the_deadline() {
    let sandbox = sandbox();
    let deadline = Duration::from_millis(300);
    let component = load_hostile(
        &sandbox,
        Limits {
            deadline,
            ..limits()
        },
    );
    let started = Instant::now();
    let failure = call_err(&component, "sleep.children");
    let elapsed = started.elapsed();
    assert!(
        matches!(failure.error, Error::Deadline { .. }),
        "expected Deadline, got {:?}",
        failure.error
    );
    assert!(elapsed < 2 * deadline, "stopped too late: {elapsed:?}");
}

#[test]
fn unbounded_allocation_stops_at_the_memory_cap() {
    let sandbox = sandbox();
    let cap = 32 << 20;
    let component = load_hostile(
        &sandbox,
        Limits {
            memory_bytes: cap,
            ..limits()
        },
    );
    let failure = call_err(&component, "hog.children");
    match failure.error {
        Error::Memory { limit } => assert_eq!(limit, cap),
        other => panic!("expected Memory, got {other:?}"),
    }
    assert!(failure.error.is_limit());
    assert!(
        failure.error.to_string().contains("32 MiB"),
        "{}",
        failure.error
    );
}

#[test]
fn huge_output_stops_at_the_output_cap() {
    let sandbox = sandbox();
    let cap = 8 << 20;
    let component = load_hostile(
        &sandbox,
        Limits {
            output_bytes: cap,
            ..limits()
        },
    );
    let failure = call_err(&component, "flood.children");
    match failure.error {
        Error::OutputTooLarge { size, limit } => {
            assert_eq!(limit, cap);
            assert!(size > 20 << 20, "size {size}");
        }
        other => panic!("expected OutputTooLarge, got {other:?}"),
    }
    assert!(failure.error.is_limit());
}

#[test]
fn oversized_request_is_refused_before_the_guest_runs() {
    let sandbox = sandbox();
    let component = load_hostile(&sandbox, limits());
    let request = "x".repeat(sandbox::MAX_REQUEST_BYTES + 1);
    let failure = match component.call("echo.children", &request) {
        Ok(_) => panic!("an oversized request was accepted"),
        Err(failure) => failure,
    };
    assert!(
        matches!(failure.error, Error::InputTooLarge { .. }),
        "{:?}",
        failure.error
    );
    // A request under the cap goes through unchanged.
    let output = component.call("echo.children", REQUEST).expect("echo");
    assert_eq!(output.outcome, Outcome::Outputs(REQUEST.to_string()));
}

#[test]
fn panic_is_a_panic_error_carrying_the_message() {
    let sandbox = sandbox();
    let component = load_hostile(&sandbox, limits());
    let failure = call_err(&component, "panic.children");
    match &failure.error {
        Error::Panic { message } => assert!(
            message.contains("the hostile guest panics on purpose"),
            "message: {message}"
        ),
        other => panic!("expected Panic, got {other:?}"),
    }
    assert!(!failure.error.is_limit());
    // The raw panic output is still handed back as log lines.
    assert!(
        failure
            .logs
            .iter()
            .any(|line| line.stream == LogStream::Stderr && line.message.contains("panicked at")),
        "logs: {:?}",
        failure.logs
    );
}

#[test]
fn chatty_stdout_is_truncated_but_the_call_succeeds() {
    let sandbox = sandbox();
    let log_bytes = 64 << 10;
    let component = load_hostile(
        &sandbox,
        Limits {
            log_bytes,
            ..limits()
        },
    );
    let output = component
        .call("chatty.children", REQUEST)
        .unwrap_or_else(|failure| panic!("chatty failed: {failure}"));
    assert_eq!(
        output.outcome,
        Outcome::Outputs(r#"["chatty done"]"#.to_string())
    );
    let (stdout, notes): (Vec<_>, Vec<_>) = output
        .logs
        .iter()
        .partition(|line| line.stream == LogStream::Stdout);
    let captured: usize = stdout.iter().map(|line| line.message.len() + 1).sum();
    assert!(captured <= log_bytes, "captured {captured} bytes");
    assert!(captured > log_bytes / 2, "captured only {captured} bytes");
    assert_eq!(stdout[0].message, "c".repeat(63));
    assert_eq!(notes.len(), 1, "one truncation note: {notes:?}");
    assert!(notes[0].message.contains("dropped"), "{notes:?}");
}

/// `host.log("")` in a loop until the deadline: empty lines count against the line cap, so
/// the call keeps at most `log_bytes / LINE_COST` of them and the host's copy stays bounded.
#[test]
fn empty_log_lines_use_up_the_log_budget() {
    let sandbox = sandbox();
    let log_bytes = 16 << 10;
    let component = load_hostile(
        &sandbox,
        Limits {
            log_bytes,
            deadline: Duration::from_millis(300),
            ..limits()
        },
    );
    let failure = call_err(&component, "mute.children");
    assert_eq!(variant(&failure.error), "Deadline", "{}", failure.error);
    let empty = failure
        .logs
        .iter()
        .filter(|line| line.message.is_empty())
        .count();
    assert_eq!(
        empty,
        log_bytes / sandbox::LINE_COST,
        "{} lines",
        failure.logs.len()
    );
    let note = failure.logs.last().expect("a truncation note");
    assert!(note.message.contains("lines"), "{note:?}");
}

#[test]
fn host_log_stdout_and_stderr_lines_are_returned() {
    let sandbox = sandbox();
    let component = load_hostile(&sandbox, limits());
    let output = component.call("log.children", REQUEST).expect("log call");
    let lines: Vec<(LogStream, &str)> = output
        .logs
        .iter()
        .map(|line| (line.stream, line.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (LogStream::Host(sandbox::Level::Info), "hello from host.log"),
            (LogStream::Stdout, "hello from stdout"),
            (LogStream::Stderr, "hello from stderr"),
        ]
    );
}

#[test]
fn guest_errors_exit_and_stack_overflow_are_reported_as_such() {
    let sandbox = sandbox();
    let component = load_hostile(&sandbox, limits());
    match call_err(&component, "fail.children").error {
        Error::Callback { message } => assert_eq!(message, "the hostile guest refuses politely"),
        other => panic!("expected Callback, got {other:?}"),
    }
    match call_err(&component, "invalid.children").error {
        Error::InvalidInput { message } => assert_eq!(message, "the hostile guest wanted a number"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    match call_err(&component, "exit.children").error {
        // WASI 0.2's `exit` only tells success from failure, so status 3 arrives as 1.
        Error::Trap { message } => assert!(message.contains("exited with status 1"), "{message}"),
        other => panic!("expected Trap, got {other:?}"),
    }
    // Rust keeps large frames on a shadow stack in linear memory, so unbounded recursion
    // ends either in wasm's own stack check or in an access below address zero.
    match call_err(&component, "recurse.children").error {
        Error::Trap { message } => assert!(message.starts_with("wasm trap:"), "{message}"),
        other => panic!("expected Trap, got {other:?}"),
    }
    let output = component
        .call("prevent.children", REQUEST)
        .expect("prevent");
    assert_eq!(output.outcome, Outcome::PreventUpdate);
}

/// After each hostile callback, an ordinary call on another component of the same sandbox
/// (the same bytes under other limits, so it shares compiled code but no instance) works.
#[test]
fn ordinary_call_on_another_component_succeeds_after_each_hostile_call() {
    let sandbox = sandbox();
    let hostile_limits = Limits {
        // Long enough that `flood` reaches its output cap first even on a loaded machine
        // (at 300 ms it once hit the deadline beside three busy test threads).
        deadline: Duration::from_millis(1500),
        memory_bytes: 32 << 20,
        output_bytes: 1 << 20,
        log_bytes: 4 << 10,
    };
    let cases = [
        ("spin.children", "Deadline"),
        ("sleep.children", "Deadline"),
        ("hog.children", "Memory"),
        ("flood.children", "OutputTooLarge"),
        ("panic.children", "Panic"),
        ("exit.children", "Trap"),
        ("recurse.children", "Trap"),
        ("fail.children", "Callback"),
    ];
    let hostile = load_hostile(&sandbox, hostile_limits);
    let ordinary = load_hostile(&sandbox, limits());
    for (callback, expected) in cases {
        let failure = call_err(&hostile, callback);
        assert_eq!(
            variant(&failure.error),
            expected,
            "{callback}: {}",
            failure.error
        );
        assert_ok_call(&ordinary);
    }
    // The chatty guest does not fail at all, and neither does anyone after it.
    hostile
        .call("chatty.children", crate::support::REQUEST)
        .expect("chatty succeeds");
    assert_ok_call(&ordinary);
    // And the hostile component itself recovers with fresh instances.
    assert_ok_call(&hostile);
}

#[test]
fn limits_above_the_sandbox_ceiling_are_refused() {
    let sandbox = sandbox();
    let result = sandbox.load(
        hostile_wasm(),
        LoadOptions {
            limits: Limits {
                memory_bytes: 512 << 20,
                ..limits()
            },
            data_dir: None,
            ..LoadOptions::default()
        },
    );
    match result {
        Err(Error::InvalidLimits { reason }) => assert!(reason.contains("max_memory_bytes")),
        Err(other) => panic!("expected InvalidLimits, got {other:?}"),
        Ok(_) => panic!("limits above the pool ceiling were accepted"),
    }
}

/// With bounds checked in code, a pool slot keeps its pages mapped between instances: the
/// limits still fire, and the instance that takes the slot after a memory bomb starts
/// clean (a fresh memory, counted from zero against the cap).
#[test]
fn explicitly_bounds_checked_memories_keep_every_limit_across_reused_slots() {
    let sandbox = sandbox::Sandbox::new(sandbox::SandboxConfig {
        explicit_bounds_checks: true,
        ..crate::support::test_config()
    })
    .expect("sandbox starts");
    let cap = 32 << 20;
    let component = load_hostile(
        &sandbox,
        Limits {
            memory_bytes: cap,
            ..limits()
        },
    );
    for _ in 0..3 {
        // Each bomb runs in the slot the last one left read-write up to the cap.
        let failure = call_err(&component, "hog.children");
        assert!(
            matches!(failure.error, Error::Memory { limit } if limit == cap),
            "expected Memory, got {:?}",
            failure.error
        );
        assert_ok_call(&component);
    }
    let failure = call_err(&component, "recurse.children");
    assert!(
        !matches!(failure.error, Error::Memory { .. }),
        "{:?}",
        failure.error
    );
    let failure = call_err(&component, "flood.children");
    assert!(
        matches!(failure.error, Error::OutputTooLarge { .. }),
        "{:?}",
        failure.error
    );
    assert_ok_call(&component);
}

/// After a call stopped at a limit the app is heavy, and the host work that follows its
/// calls runs where its calls run (the idle class) for as long as the scope lasts.
#[cfg(target_os = "linux")]
#[test]
fn host_work_for_a_heavy_app_runs_in_the_idle_class() {
    let sandbox = sandbox();
    let component = load_hostile(
        &sandbox,
        Limits {
            memory_bytes: 32 << 20,
            ..limits()
        },
    );
    let policy = || {
        // SAFETY: pid 0 names the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    };
    assert!(!component.is_heavy(), "nothing ran yet");
    assert!(component.long_work_if_heavy().is_none());
    call_err(&component, "hog.children");
    let demotes = sandbox.long_work().enter().demoted();
    assert_eq!(component.is_heavy(), demotes);
    if !demotes {
        // Without the idle class nothing is heavy and nothing moves.
        assert!(component.long_work_if_heavy().is_none());
        return;
    }
    let scope = component.long_work_if_heavy().expect("a heavy app");
    assert!(scope.demoted());
    assert_eq!(policy(), libc::SCHED_IDLE);
    drop(scope);
    assert_eq!(policy(), libc::SCHED_OTHER);
}
