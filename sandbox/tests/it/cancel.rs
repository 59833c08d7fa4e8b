//! Per-call options of background jobs: a call with its own (longer) deadline, cancelled
//! from another thread, stops whether the guest spins or sleeps, and its instance is freed.

use crate::support::{REQUEST, assert_ok_call, limits, load_hostile, sandbox};
use sandbox::{CallOptions, Error, Limits};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn cancel_after(flag: &Arc<AtomicBool>, after: Duration) {
    let flag = flag.clone();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        flag.store(true, Ordering::Relaxed);
    });
}

#[test]
fn cancel_stops_spinning_and_sleeping_calls_past_the_component_deadline() {
    let sandbox = sandbox();
    let component = load_hostile(
        &sandbox,
        Limits {
            deadline: Duration::from_millis(200),
            ..limits()
        },
    );
    for callback in ["spin.children", "sleep.children"] {
        let flag = Arc::new(AtomicBool::new(false));
        // Cancelled after 600 ms: past the component's 200 ms deadline, which the job's
        // own 60 s deadline replaces.
        cancel_after(&flag, Duration::from_millis(600));
        let started = Instant::now();
        let failure = component
            .call_with(
                callback,
                REQUEST,
                CallOptions {
                    deadline: Some(Duration::from_secs(60)),
                    cancel: Some(flag),
                    ..CallOptions::default()
                },
            )
            .expect_err("a cancelled call fails");
        let elapsed = started.elapsed();
        assert!(
            matches!(failure.error, Error::Cancelled),
            "{callback}: {:?}",
            failure.error
        );
        assert!(
            elapsed >= Duration::from_millis(550),
            "{callback} stopped early: {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_secs(2),
            "{callback} stopped late: {elapsed:?}"
        );
        assert_eq!(
            component.idle_instances(),
            0,
            "a cancelled instance is dropped"
        );
    }
    // The component goes on serving, with the ordinary deadline again.
    assert_ok_call(&component);
}

#[test]
fn call_deadline_option_replaces_the_component_deadline() {
    let sandbox = sandbox();
    let component = load_hostile(
        &sandbox,
        Limits {
            deadline: Duration::from_secs(30),
            ..limits()
        },
    );
    let started = Instant::now();
    let failure = component
        .call_with(
            "spin.children",
            REQUEST,
            CallOptions {
                deadline: Some(Duration::from_millis(300)),
                ..CallOptions::default()
            },
        )
        .expect_err("the spin is stopped");
    assert!(
        matches!(failure.error, Error::Deadline { .. }),
        "{:?}",
        failure.error
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}
