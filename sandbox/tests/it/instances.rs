//! The instance policy: warm reuse within one component only, never after a failure,
//! recycling after N calls, bounded idle pools, one instance per concurrent call.
//!
//! `count.children` returns how many calls the serving instance has answered, which shows
//! whether an instance was reused (2, 3, …) or fresh (1).

use crate::support::{
    REQUEST, assert_ok_call, call_err, count, limits, load_hostile, sandbox, test_config,
};
use sandbox::{Error, Limits, Sandbox, SandboxConfig};
use std::time::Duration;

#[test]
fn warm_instance_is_reused_for_the_same_component() {
    let sandbox = sandbox();
    let component = load_hostile(&sandbox, limits());
    // The instance that answered the load-time calls is kept warm for the first call.
    assert_eq!(component.idle_instances(), 1);
    assert_eq!(count(&component), 1);
    assert_eq!(count(&component), 2);
    assert_eq!(count(&component), 3);
}

#[test]
fn warm_instances_are_never_shared_between_components() {
    let sandbox = sandbox();
    let first = load_hostile(&sandbox, limits());
    let second = load_hostile(&sandbox, limits());
    assert_eq!(count(&first), 1);
    assert_eq!(count(&first), 2);
    // Same bytes, same sandbox, same limits: still its own instances.
    assert_eq!(count(&second), 1);
    assert_eq!(count(&first), 3);
}

#[test]
fn trapped_instance_is_not_reused() {
    let config = SandboxConfig {
        idle_instances_per_component: 1,
        ..test_config()
    };
    let sandbox = Sandbox::new(config).expect("sandbox");
    let component = load_hostile(&sandbox, limits());
    assert_eq!(count(&component), 1);
    assert_eq!(count(&component), 2);
    let failure = call_err(&component, "panic.children");
    assert!(matches!(failure.error, Error::Panic { .. }));
    assert_eq!(
        component.idle_instances(),
        0,
        "the trapped instance was kept"
    );
    // A reused trapped instance would fail with "cannot enter component instance"; a fresh
    // one answers, and counts from one again.
    assert_eq!(count(&component), 1);
}

#[test]
fn instance_after_a_limit_is_not_reused() {
    let sandbox = sandbox();
    let component = load_hostile(
        &sandbox,
        Limits {
            deadline: Duration::from_millis(200),
            ..limits()
        },
    );
    assert_eq!(count(&component), 1);
    let failure = call_err(&component, "spin.children");
    assert!(matches!(failure.error, Error::Deadline { .. }));
    assert_eq!(count(&component), 1);
}

#[test]
fn guest_error_keeps_the_instance() {
    let sandbox = sandbox();
    let component = load_hostile(&sandbox, limits());
    assert_eq!(count(&component), 1);
    let failure = call_err(&component, "fail.children");
    assert!(matches!(failure.error, Error::Callback { .. }));
    assert_eq!(count(&component), 3);
}

#[test]
fn instance_is_recycled_after_max_calls() {
    let config = SandboxConfig {
        max_calls_per_instance: 3,
        ..test_config()
    };
    let sandbox = Sandbox::new(config).expect("sandbox");
    let component = load_hostile(&sandbox, limits());
    assert_eq!(count(&component), 1);
    assert_eq!(count(&component), 2);
    assert_eq!(count(&component), 3);
    assert_eq!(count(&component), 1);
}

#[test]
fn idle_pool_is_bounded_per_component() {
    let config = SandboxConfig {
        idle_instances_per_component: 2,
        ..test_config()
    };
    let sandbox = Sandbox::new(config).expect("sandbox");
    let component = load_hostile(&sandbox, limits());
    // Six overlapping calls need six instances; only two may stay idle afterwards.
    let barrier = std::sync::Barrier::new(6);
    std::thread::scope(|scope| {
        for _ in 0..6 {
            scope.spawn(|| {
                barrier.wait();
                component.call("nap.children", REQUEST).expect("nap");
            });
        }
    });
    assert_eq!(component.idle_instances(), 2);
}

#[test]
fn concurrent_calls_each_get_their_own_instance() {
    let sandbox = sandbox();
    let spinning = load_hostile(
        &sandbox,
        Limits {
            deadline: Duration::from_millis(500),
            ..limits()
        },
    );
    let component = load_hostile(&sandbox, limits());
    std::thread::scope(|scope| {
        let spinner = scope.spawn(|| call_err(&spinning, "spin.children").error);
        let workers: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    for _ in 0..20 {
                        assert_ok_call(&component);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker");
        }
        let error = spinner.join().expect("spinner");
        assert!(matches!(error, Error::Deadline { .. }), "{error:?}");
    });
}

#[test]
fn component_outlives_its_sandbox_handle() {
    let component = {
        let sandbox = sandbox();
        load_hostile(
            &sandbox,
            Limits {
                deadline: Duration::from_millis(200),
                ..limits()
            },
        )
    };
    assert_ok_call(&component);
    // The deadline still fires: the ticker lives as long as the component.
    let failure = call_err(&component, "spin.children");
    assert!(matches!(failure.error, Error::Deadline { .. }));
}
