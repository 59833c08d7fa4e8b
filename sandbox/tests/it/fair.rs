//! The CPU is shared by tenant, not by call: one tenant's calls spinning (or sleeping) on
//! every core do not make another tenant's calls wait for them.
//!
//! The properties are orderings, not timings: a light call that had to wait for a free core
//! would finish after the first spinning call ends at its deadline.

use crate::support::{
    REQUEST, assert_ok_call, call_err, hostile_wasm, limits, test_config, variant,
};
use sandbox::{Limits, LoadOptions, Outcome, Owner, Sandbox, SandboxConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SLOTS: usize = 2;

fn two_core_sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        cpu_slots: SLOTS,
        ..test_config()
    })
    .expect("sandbox starts")
}

fn load(sandbox: &Sandbox, tenant: i64, limits: Limits) -> sandbox::Component {
    sandbox
        .load(
            hostile_wasm(),
            LoadOptions {
                limits,
                owner: Owner {
                    tenant,
                    app: 1,
                    weight: Owner::DEFAULT_WEIGHT,
                },
                ..LoadOptions::default()
            },
        )
        .expect("the hostile guest loads")
}

/// Starts `calls` calls of `callback` on `component`, each on its own thread; returns the
/// threads and a counter of calls that have ended.
fn flood(
    component: &sandbox::Component,
    callback: &'static str,
    calls: usize,
) -> (Vec<std::thread::JoinHandle<String>>, Arc<AtomicUsize>) {
    let ended = Arc::new(AtomicUsize::new(0));
    let threads = (0..calls)
        .map(|_| {
            let (component, ended) = (component.clone(), ended.clone());
            std::thread::spawn(move || {
                let result = component.call(callback, REQUEST);
                ended.fetch_add(1, Ordering::SeqCst);
                match result {
                    Ok(output) => format!("ok {:?}", output.outcome),
                    Err(failure) => variant(&failure.error).to_string(),
                }
            })
        })
        .collect();
    (threads, ended)
}

/// Runs light calls of another tenant while `callback` floods; all must succeed before
/// any flooding call ends.
fn light_calls_pass_a_flood_of(callback: &'static str) {
    let sandbox = two_core_sandbox();
    let noisy_limits = Limits {
        deadline: Duration::from_secs(4),
        ..limits()
    };
    let noisy = load(&sandbox, 1, noisy_limits);
    let quiet = load(&sandbox, 2, limits());
    let (threads, ended) = flood(&noisy, callback, SLOTS * 4);
    // Let the flood take every core (setup, not a measurement).
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    for _ in 0..20 {
        let output = quiet.call("ok.children", REQUEST).expect("the light call");
        assert_eq!(output.outcome, Outcome::Outputs(r#"["ok"]"#.to_string()));
    }
    let light = started.elapsed();
    assert_eq!(
        ended.load(Ordering::SeqCst),
        0,
        "20 light calls took {light:?}: they waited until the {callback} calls ended"
    );
    for thread in threads {
        let outcome = thread.join().expect("flood thread");
        assert_eq!(outcome, "Deadline", "{callback}");
    }
}

#[test]
fn spinning_on_every_core_does_not_hold_another_tenants_calls() {
    light_calls_pass_a_flood_of("spin.children");
}

#[test]
fn sleeping_calls_give_their_core_back() {
    light_calls_pass_a_flood_of("sleep.children");
}

/// Calls that wait for a core still end at their deadline: a tenant with more calls than
/// cores gets deadline errors, not a hang.
#[test]
fn calls_waiting_for_a_core_end_at_their_deadline() {
    let sandbox = two_core_sandbox();
    let noisy = load(
        &sandbox,
        1,
        Limits {
            deadline: Duration::from_secs(1),
            ..limits()
        },
    );
    let (threads, _) = flood(&noisy, "spin.children", SLOTS * 3);
    for thread in threads {
        assert_eq!(thread.join().expect("flood thread"), "Deadline");
    }
}

/// An app whose call hit its memory cap starts its next calls as long calls (idle class,
/// long slots), so a memory bomb restarting in a loop never takes an ordinary core; the
/// tenant's other apps and other tenants start as usual. Counted, not timed.
#[test]
fn after_a_call_at_its_cap_the_apps_next_calls_start_as_long_calls() {
    let sandbox = two_core_sandbox();
    let load_app = |app: i64| {
        sandbox
            .load(
                hostile_wasm(),
                LoadOptions {
                    limits: Limits {
                        memory_bytes: 32 << 20,
                        ..limits()
                    },
                    owner: Owner {
                        tenant: 1,
                        app,
                        weight: Owner::DEFAULT_WEIGHT,
                    },
                    ..LoadOptions::default()
                },
            )
            .expect("the hostile guest loads")
    };
    let (bomb, other) = (load_app(1), load_app(2));
    let elsewhere = load(&sandbox, 2, limits());
    assert_ok_call(&bomb);
    assert_eq!(sandbox.cpu_state().started_long, 0);
    assert_eq!(variant(&call_err(&bomb, "hog.children").error), "Memory");
    assert_ok_call(&other);
    assert_ok_call(&elsewhere);
    assert_eq!(
        sandbox.cpu_state().started_long,
        0,
        "other apps start short"
    );
    assert_ok_call(&bomb);
    assert_eq!(
        sandbox.cpu_state().started_long,
        1,
        "the bomb's app starts long"
    );
    let state = sandbox.cpu_state();
    assert_eq!((state.short_running, state.long_running), (0, 0));
}
