//! Long calls (past one tick of CPU, in the idle class) are parked while the foreground is
//! busy, and the starvation bound still lets them through.
//!
//! The properties are about progress, not timings: the guest's `tick` callback reports how
//! many rounds it has spun, and a parked call's thread cannot report anything. The waits
//! below poll for a state (with a generous limit), they never assert a duration.

use crate::support::{REQUEST, hostile_wasm, test_config, variant};
use sandbox::{CallOptions, Limits, LoadOptions, Owner, ProgressSink, Sandbox, SandboxConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A parking bound no test reaches: long calls stay parked while the foreground is busy.
const NEVER: Duration = Duration::from_secs(3600);

fn sandbox_parking(bound: Option<Duration>) -> Sandbox {
    Sandbox::new(SandboxConfig {
        cpu_slots: 2,
        park_long_calls: bound,
        ..test_config()
    })
    .expect("sandbox starts")
}

/// The `tick` callback running on its own thread, with the rounds it has reported.
struct LongCall {
    rounds: Arc<AtomicU64>,
    cancel: Arc<AtomicBool>,
    thread: JoinHandle<&'static str>,
}

impl LongCall {
    fn start(sandbox: &Sandbox, deadline: Duration) -> LongCall {
        let component = sandbox
            .load(
                hostile_wasm(),
                LoadOptions {
                    limits: Limits {
                        deadline,
                        ..Limits::default()
                    },
                    owner: Owner {
                        tenant: 1,
                        app: 1,
                        weight: Owner::DEFAULT_WEIGHT,
                    },
                    ..LoadOptions::default()
                },
            )
            .expect("the hostile guest loads");
        let rounds = Arc::new(AtomicU64::new(0));
        let cancel = Arc::new(AtomicBool::new(false));
        let sink: ProgressSink = {
            let rounds = rounds.clone();
            Arc::new(move |json: String| {
                let reported: Vec<u64> = serde_json::from_str(&json).expect("[rounds]");
                rounds.store(reported[0], Ordering::SeqCst);
            })
        };
        let options = CallOptions {
            cancel: Some(cancel.clone()),
            progress: Some(sink),
            ..CallOptions::default()
        };
        let thread = std::thread::spawn(move || {
            match component.call_with("tick.children", REQUEST, options) {
                Ok(_) => "Ok",
                Err(failure) => variant(&failure.error),
            }
        });
        LongCall {
            rounds,
            cancel,
            thread,
        }
    }

    fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::SeqCst)
    }

    /// Cancels the call; its outcome.
    fn stop(self) -> &'static str {
        self.cancel.store(true, Ordering::SeqCst);
        self.thread.join().expect("the long call's thread")
    }
}

/// Polls `condition` until it holds; fails naming `what` after 30 s (a stuck mechanism,
/// not a slow machine).
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let limit = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < limit, "never saw: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until `call` runs as a long call (idle class, long slot) and has reported rounds.
fn wait_until_long(sandbox: &Sandbox, call: &LongCall) {
    wait_until(
        "the tick call running as a long call (needs CAP_SYS_NICE or RLIMIT_NICE 20)",
        || sandbox.cpu_state().long_running == 1 && call.rounds() > 0,
    );
}

#[test]
fn a_long_call_makes_no_progress_while_the_foreground_is_busy() {
    let sandbox = sandbox_parking(Some(NEVER));
    let call = LongCall::start(&sandbox, Duration::from_secs(60));
    wait_until_long(&sandbox, &call);
    let mark = sandbox.foreground();
    wait_until("the long call parked", || {
        let state = sandbox.cpu_state();
        state.long_running == 0 && state.waiting == 1
    });
    let parked_at = call.rounds();
    // However long this takes, a parked thread reports nothing.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(call.rounds(), parked_at, "the long call ran while parked");
    assert_eq!(sandbox.cpu_state().long_running, 0);
    drop(mark);
    wait_until("the long call resumed", || call.rounds() > parked_at);
    assert_eq!(call.stop(), "Cancelled");
    assert_eq!(sandbox.cpu_state(), sandbox::CpuState::default());
}

#[test]
fn the_starvation_bound_lets_a_parked_long_call_progress() {
    let sandbox = sandbox_parking(Some(Duration::from_millis(20)));
    let call = LongCall::start(&sandbox, Duration::from_secs(60));
    wait_until_long(&sandbox, &call);
    let mark = sandbox.foreground();
    wait_until("the long call parked", || {
        sandbox.cpu_state().long_running == 0
    });
    let parked_at = call.rounds();
    // The foreground never rests, yet the call gets its turns.
    wait_until("progress under a busy foreground", || {
        call.rounds() > parked_at + 1_000_000
    });
    assert_eq!(sandbox.cpu_state().foreground, 1);
    drop(mark);
    assert_eq!(call.stop(), "Cancelled");
}

#[test]
fn a_parked_long_call_still_ends_at_its_deadline() {
    let sandbox = sandbox_parking(Some(NEVER));
    let call = LongCall::start(&sandbox, Duration::from_secs(2));
    wait_until_long(&sandbox, &call);
    let _mark = sandbox.foreground();
    let outcome = call.thread.join().expect("the long call's thread");
    assert_eq!(outcome, "Deadline");
    let state = sandbox.cpu_state();
    assert_eq!((state.long_running, state.waiting), (0, 0));
}

#[test]
fn without_parking_a_long_call_runs_beside_the_foreground() {
    let sandbox = sandbox_parking(None);
    let call = LongCall::start(&sandbox, Duration::from_secs(60));
    wait_until_long(&sandbox, &call);
    let mark = sandbox.foreground();
    let marked_at = call.rounds();
    wait_until("progress beside the foreground", || {
        call.rounds() > marked_at + 1_000_000
    });
    assert_eq!(sandbox.cpu_state().long_running, 1);
    drop(mark);
    assert_eq!(call.stop(), "Cancelled");
}
