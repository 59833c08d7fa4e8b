//! The instance pool shared by quota: idle instances expire, each tenant holds at most its
//! share of the pool, a full pool gives way to a new app, and components needing more
//! memories than an instance may have are refused at load naming the limit.

use crate::support::{REQUEST, assert_ok_call, count, hostile_wasm, limits, test_config};
use sandbox::{CallOptions, Component, Error, LoadOptions, Owner, Sandbox, SandboxConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn owned_by(tenant: i64) -> LoadOptions {
    LoadOptions {
        limits: limits(),
        owner: Owner {
            tenant,
            app: 1,
            weight: Owner::DEFAULT_WEIGHT,
        },
        ..LoadOptions::default()
    }
}

fn load(sandbox: &Sandbox, tenant: i64) -> Component {
    sandbox
        .load(hostile_wasm(), owned_by(tenant))
        .expect("the hostile guest loads")
}

/// Waits (at most 30 s) until `done`, polling; fails the test with `what` otherwise.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `calls` calls of `sleep.children` on `component`, each holding an instance until
/// `cancel` is raised.
fn sleepers<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    component: &'scope Component,
    calls: usize,
    cancel: &Arc<AtomicBool>,
) -> Vec<std::thread::ScopedJoinHandle<'scope, Error>> {
    (0..calls)
        .map(|_| {
            let options = CallOptions {
                cancel: Some(cancel.clone()),
                deadline: Some(Duration::from_secs(60)),
                ..CallOptions::default()
            };
            scope.spawn(
                move || match component.call_with("sleep.children", REQUEST, options) {
                    Ok(_) => panic!("the sleeper woke up"),
                    Err(failure) => failure.error,
                },
            )
        })
        .collect()
}

#[test]
fn an_idle_instance_is_dropped_after_the_expiry() {
    let sandbox = Sandbox::new(SandboxConfig {
        idle_expiry: Duration::from_millis(200),
        ..test_config()
    })
    .expect("sandbox");
    let component = load(&sandbox, 7);
    assert_eq!(count(&component), 1);
    assert_eq!(component.idle_instances(), 1);
    assert_eq!(sandbox.tenant_pool_units(7), 1);
    // Nobody calls: the reaper drops the instance and the tenant's units come back (the
    // units a moment after the instance leaves the idle list: the reaper drops it outside
    // the list's lock).
    wait_until("the idle instance was never dropped", || {
        component.idle_instances() == 0
    });
    wait_until("the tenant's units never came back", || {
        sandbox.tenant_pool_units(7) == 0
    });
    // The component still answers, on a fresh instance.
    assert_eq!(count(&component), 1);
}

#[test]
fn a_tenant_at_its_cap_cannot_keep_another_tenant_from_loading_or_calling() {
    let sandbox = Sandbox::new(SandboxConfig {
        max_instances: 8,
        max_instances_per_tenant: 4,
        ..test_config()
    })
    .expect("sandbox");
    let hog = load(&sandbox, 1);
    let cancel = Arc::new(AtomicBool::new(false));
    std::thread::scope(|scope| {
        let sleeping = sleepers(scope, &hog, 4, &cancel);
        wait_until("the four calls never held four units", || {
            sandbox.tenant_pool_units(1) == 4
        });
        // The tenant's fifth instance is refused, naming the cap, for a call and a load.
        let refused = match hog.call("ok.children", REQUEST) {
            Ok(_) => panic!("a fifth instance was granted"),
            Err(failure) => failure.error,
        };
        assert!(matches!(refused, Error::Capacity { .. }), "{refused:?}");
        assert!(
            refused.to_string().contains("max_instances_per_tenant"),
            "{refused}"
        );
        match sandbox.load(hostile_wasm(), owned_by(1)) {
            Err(Error::Capacity { message }) => assert!(message.contains("4 pool units")),
            other => panic!("expected Capacity, got {:?}", other.map(|_| ())),
        }
        // Another tenant loads and calls as if nothing happened.
        let other = load(&sandbox, 2);
        assert_ok_call(&other);
        assert_ok_call(&load(&sandbox, 2));
        cancel.store(true, Ordering::Relaxed);
        for sleeper in sleeping {
            let error = sleeper.join().expect("sleeper");
            assert!(matches!(error, Error::Cancelled), "{error:?}");
        }
    });
    // Cancelled calls drop their instances: every unit is back.
    assert_eq!(sandbox.tenant_pool_units(1), 0);
}

#[test]
fn a_full_pool_gives_way_to_a_new_app_by_dropping_the_longest_idle_instance() {
    let sandbox = Sandbox::new(SandboxConfig {
        max_instances: 4,
        max_instances_per_tenant: 2,
        ..test_config()
    })
    .expect("sandbox");
    // Two idle instances of tenant 1 (as many as the sandbox keeps idle: half the pool)
    // and two busy ones of tenant 3: all four slots are taken.
    let oldest = load(&sandbox, 1);
    let newer = load(&sandbox, 1);
    let busy = load(&sandbox, 3);
    let cancel = Arc::new(AtomicBool::new(false));
    std::thread::scope(|scope| {
        let sleeping = sleepers(scope, &busy, 2, &cancel);
        wait_until("tenant 3 never held two units", || {
            sandbox.tenant_pool_units(3) == 2
        });
        assert_eq!(oldest.idle_instances() + newer.idle_instances(), 2);
        let fresh = sandbox
            .load(hostile_wasm(), owned_by(2))
            .expect("a new app loads although the pool was full");
        assert_ok_call(&fresh);
        assert_eq!(
            oldest.idle_instances(),
            0,
            "the longest-idle instance gave way"
        );
        assert_eq!(newer.idle_instances(), 1);
        cancel.store(true, Ordering::Relaxed);
        for sleeper in sleeping {
            sleeper.join().expect("sleeper");
        }
    });
}

/// A component of `instances` core instances of a module with one page of memory (and
/// nothing else: the memory check comes before the export check).
fn memories(instances: usize) -> Vec<u8> {
    let mut text = String::from("(component (core module $m (memory 1))");
    for _ in 0..instances {
        text.push_str(" (core instance (instantiate $m))");
    }
    text.push(')');
    wat::parse_str(&text).expect("valid component text")
}

#[test]
fn a_component_with_too_many_memories_is_refused_naming_the_limit() {
    let sandbox = Sandbox::new(test_config()).expect("sandbox");
    match sandbox.load(&memories(9), LoadOptions::default()) {
        Err(Error::InvalidComponent { reason }) => assert!(
            reason.contains("9 linear memories, over the limit of 8"),
            "{reason}"
        ),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    // Eight pass the memory check (and are then refused for lacking the dashboard export).
    match sandbox.load(&memories(8), LoadOptions::default()) {
        Err(Error::InvalidComponent { reason }) => {
            assert!(reason.contains("does not export"), "{reason}")
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_component_with_too_many_core_instances_is_refused_naming_the_limit() {
    let sandbox = Sandbox::new(test_config()).expect("sandbox");
    let text = format!(
        "(component (core module $m) {})",
        " (core instance (instantiate $m))".repeat(65)
    );
    let wasm = wat::parse_str(&text).expect("valid component text");
    match sandbox.load(&wasm, LoadOptions::default()) {
        Err(Error::InvalidComponent { reason }) => {
            assert!(reason.contains("65 core module instances"), "{reason}");
            assert!(reason.contains("maximum of 64"), "{reason}");
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}
