//! WIT 0.2.0 in the sandbox: `host.viewer`, `data.query` and `cache` reach the
//! [`Capabilities`] given at load, oversized arguments are refused before they are copied,
//! a blocking capability call gives its core away and never outlives its call's deadline
//! or cancellation, and a component built for 0.1.0 runs beside a 0.2.0 one.
//!
//! `Recorder` is a test implementation of the sandbox's own seam (the trait the platform
//! implements), not a stand-in for a database: what it answers is what the guest must
//! receive.

use crate::alloc_watch::largest_allocation_during;
use crate::support::{capable_wasm, limits, sandbox, test_config, v0_1_wasm};
use sandbox::{
    CallContext, CallFailure, CallOptions, CallOutput, Capabilities, Component, Error, Limits,
    LoadOptions, Outcome, Owner, Param, QueryError, Sandbox, SandboxConfig, Settings, Viewer,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Answers from fixed rules and counts what it was asked.
#[derive(Default)]
struct Recorder {
    /// Host calls that reached the trait.
    calls: AtomicUsize,
    /// How long the `slow` source takes, ignoring the call's deadline on purpose: the
    /// sandbox must stop waiting by itself.
    slow: Duration,
    /// Values per (tenant, app, key).
    cache: Mutex<HashMap<(i64, i64, String), Vec<u8>>>,
    /// The context of the last call.
    last: Mutex<Option<CallContext>>,
}

impl Recorder {
    fn slow(slow: Duration) -> Arc<Recorder> {
        Arc::new(Recorder {
            slow,
            ..Recorder::default()
        })
    }

    fn note(&self, call: &CallContext) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.last.lock().expect("lock") = Some(call.clone());
    }
}

impl Capabilities for Recorder {
    fn query(
        &self,
        call: &CallContext,
        source: &str,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<u8>, QueryError> {
        self.note(call);
        match source {
            "main" => Ok(format!("{source}|{sql}|{params:?}").into_bytes()),
            "slow" => {
                std::thread::sleep(self.slow);
                Ok(b"slow".to_vec())
            }
            "huge" => Ok(vec![b'x'; call.max_answer_bytes + 1]),
            // The thread the capability runs on.
            "where" => Ok(std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .as_bytes()
                .to_vec()),
            "broken" => Err(QueryError::Failed(
                "relation \"nope\" does not exist".into(),
            )),
            other => Err(QueryError::NotGranted(format!("no source named {other}"))),
        }
    }

    fn cache_get(&self, call: &CallContext, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.note(call);
        let cache = self.cache.lock().expect("lock");
        Ok(cache
            .get(&(call.owner.tenant, call.owner.app, key.to_string()))
            .cloned())
    }

    fn cache_set(
        &self,
        call: &CallContext,
        key: &str,
        value: &[u8],
        _ttl: Duration,
    ) -> Result<(), String> {
        self.note(call);
        let mut cache = self.cache.lock().expect("lock");
        cache.insert(
            (call.owner.tenant, call.owner.app, key.to_string()),
            value.to_vec(),
        );
        Ok(())
    }

    fn cache_delete(&self, call: &CallContext, key: &str) -> Result<(), String> {
        self.note(call);
        let mut cache = self.cache.lock().expect("lock");
        cache.remove(&(call.owner.tenant, call.owner.app, key.to_string()));
        Ok(())
    }
}

/// A [`Recorder`] run on the guest's own thread (`runs_on_caller`), keeping the contract
/// that comes with it: its slow source stops by itself at the call's deadline or its
/// cancellation.
struct OnCaller(Arc<Recorder>);

impl Capabilities for OnCaller {
    fn query(
        &self,
        call: &CallContext,
        source: &str,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<u8>, QueryError> {
        if source != "slow" {
            return self.0.query(call, source, sql, params);
        }
        self.0.note(call);
        let until = Instant::now() + self.0.slow;
        while Instant::now() < until {
            if call.cancelled() || call.remaining().is_zero() {
                return Err(QueryError::Limit("stopped".into()));
            }
            std::thread::sleep(Duration::from_millis(10).min(call.remaining()));
        }
        Ok(b"slow".to_vec())
    }

    fn cache_get(&self, call: &CallContext, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.cache_get(call, key)
    }

    fn cache_set(
        &self,
        call: &CallContext,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), String> {
        self.0.cache_set(call, key, value, ttl)
    }

    fn cache_delete(&self, call: &CallContext, key: &str) -> Result<(), String> {
        self.0.cache_delete(call, key)
    }

    fn runs_on_caller(&self) -> bool {
        true
    }
}

fn owner(tenant: i64, app: i64) -> Owner {
    Owner {
        tenant,
        app,
        ..Owner::default()
    }
}

fn load_capable(
    sandbox: &Sandbox,
    owner: Owner,
    limits: Limits,
    capabilities: Option<Arc<dyn Capabilities>>,
) -> Component {
    sandbox
        .load(
            capable_wasm(),
            LoadOptions {
                limits,
                owner,
                capabilities,
                ..LoadOptions::default()
            },
        )
        .expect("the 0.2.0 guest loads")
}

fn request(arg: Value) -> String {
    json!({"outputs": [], "inputs": [{"id": "go", "property": "value", "value": arg}], "state": []})
        .to_string()
}

/// Calls `callback` with `arg` on its own thread under a watchdog, so that a blocking host
/// call that is not stopped fails the test instead of hanging the suite.
fn call(
    component: &Component,
    callback: &str,
    arg: Value,
    options: CallOptions,
) -> Result<CallOutput, CallFailure> {
    const WATCHDOG: Duration = Duration::from_secs(30);
    let (done, result) = std::sync::mpsc::channel();
    let component = component.clone();
    let id = callback.to_string();
    std::thread::spawn(move || {
        let _ = done.send(component.call_with(&id, &request(arg), options));
    });
    result
        .recv_timeout(WATCHDOG)
        .unwrap_or_else(|_| panic!("{callback} did not end within {WATCHDOG:?}"))
}

/// The one output of a call that must succeed.
fn answer(component: &Component, callback: &str, arg: Value, options: CallOptions) -> Value {
    match call(component, callback, arg, options) {
        Ok(CallOutput {
            outcome: Outcome::Outputs(json),
            ..
        }) => {
            let mut values: Vec<Value> = serde_json::from_str(&json).expect("a JSON array");
            values.remove(0)
        }
        Ok(other) => panic!("{callback}: unexpected outcome {:?}", other.outcome),
        Err(failure) => panic!("{callback} failed: {failure} (logs: {:?})", failure.logs),
    }
}

fn plain(component: &Component, callback: &str, arg: Value) -> Value {
    answer(component, callback, arg, CallOptions::default())
}

#[test]
fn the_guest_receives_what_the_capabilities_answer() {
    let sandbox = sandbox();
    let recorder = Arc::new(Recorder::default());
    let capabilities: Arc<dyn Capabilities> = recorder.clone();
    let component = load_capable(&sandbox, owner(1, 2), limits(), Some(capabilities.clone()));

    let got = plain(
        &component,
        "query.children",
        json!({"source": "main", "sql": "select $1, $2", "params": [7, "ünï", null, true, 1.5]}),
    );
    assert_eq!(
        got["ok"],
        r#"main|select $1, $2|[Integer(7), Text("ünï"), Null, Boolean(true), Float(1.5)]"#,
        "{got}"
    );
    let last = recorder.last.lock().expect("lock").clone().expect("called");
    assert_eq!((last.owner.tenant, last.owner.app), (1, 2));
    assert!(last.deadline > Instant::now() - Duration::from_secs(10));

    for (source, kind) in [("elsewhere", "not-granted"), ("broken", "failed")] {
        let got = plain(
            &component,
            "query.children",
            json!({"source": source, "sql": "select 1"}),
        );
        assert_eq!(got["err"]["kind"], kind, "{got}");
    }
    // An answer over the call's answer cap never reaches the guest.
    let got = plain(
        &component,
        "query.children",
        json!({"source": "huge", "sql": "select 1"}),
    );
    assert_eq!(got["err"]["kind"], "limit", "{got}");
    assert!(
        got["err"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("over this call's limit")),
        "{got}"
    );

    // The cache, through the owner the component was loaded with.
    let cache = |component: &Component, arg: Value| plain(component, "cache.children", arg);
    assert_eq!(
        cache(
            &component,
            json!({"op": "set", "key": "k", "value": "v1", "ttl": 30})
        ),
        json!({"ok": null})
    );
    assert_eq!(
        cache(&component, json!({"op": "get", "key": "k"})),
        json!({"ok": "v1"})
    );
    let other_app = load_capable(&sandbox, owner(1, 3), limits(), Some(capabilities));
    assert_eq!(
        cache(&other_app, json!({"op": "get", "key": "k"})),
        json!({"ok": null}),
        "another app's component asks under its own owner"
    );
    assert_eq!(
        cache(&component, json!({"op": "delete", "key": "k"})),
        json!({"ok": null})
    );
    assert_eq!(
        cache(&component, json!({"op": "get", "key": "k"})),
        json!({"ok": null})
    );
    let got = cache(
        &component,
        json!({"op": "set", "key": "k", "value": "v", "ttl": 0}),
    );
    assert_eq!(
        got["err"]["kind"], "cache",
        "a zero time-to-live is refused: {got}"
    );
}

#[test]
fn without_capabilities_the_data_sources_and_the_cache_are_unavailable() {
    let sandbox = sandbox();
    let component = load_capable(&sandbox, owner(1, 2), limits(), None);
    let got = plain(
        &component,
        "query.children",
        json!({"source": "main", "sql": "select 1"}),
    );
    assert_eq!(
        got,
        json!({"err": {"kind": "unavailable", "message": "data sources are not available on this server"}})
    );
    let got = plain(
        &component,
        "cache.children",
        json!({"op": "get", "key": "k"}),
    );
    assert_eq!(
        got,
        json!({"err": {"kind": "cache", "message": "the cache is not available on this server"}})
    );
}

#[test]
fn oversized_arguments_are_refused_without_a_host_copy() {
    let sandbox = sandbox();
    let recorder = Arc::new(Recorder::default());
    let component = load_capable(&sandbox, owner(1, 2), limits(), Some(recorder.clone()));
    const MIB: u64 = 1 << 20;
    let cases = [
        ("bigsql.children", 20 * MIB, "refused"),
        ("bigsource.children", 20 * MIB, "refused"),
        ("bigparams.children", 2 * MIB, "refused"),
        ("manyparams.children", 100_000, "refused"),
        ("bigkey.children", 20 * MIB, "cache"),
        ("bigvalue.children", 20 * MIB, "cache"),
    ];
    for (callback, bytes, kind) in cases {
        let (got, largest) = largest_allocation_during(|| {
            component.call_with(
                callback,
                &request(json!({"bytes": bytes})),
                CallOptions::default(),
            )
        });
        let got = match got {
            Ok(CallOutput {
                outcome: Outcome::Outputs(json),
                ..
            }) => serde_json::from_str::<Value>(&json).expect("JSON")[0].clone(),
            other => panic!("{callback}: {:?}", other.map(|o| o.outcome)),
        };
        assert_eq!(got["err"]["kind"], kind, "{callback}: {got}");
        assert!(
            got["err"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("over the limit")),
            "{callback}: {got}"
        );
        // Far below the guest's argument; far above anything else a call allocates.
        assert!(
            largest < (MIB as usize) / 2,
            "{callback}: the host allocated {largest} bytes at once for a refused argument"
        );
    }
    assert_eq!(
        recorder.calls.load(Ordering::SeqCst),
        0,
        "no refused argument reached the capabilities"
    );
}

#[test]
fn a_blocking_capability_call_gives_its_core_to_another_tenant() {
    // One core: while the first tenant's guest waits for its (slow) query, the second
    // tenant's short call must run.
    let sandbox = Sandbox::new(SandboxConfig {
        cpu_slots: 1,
        ..test_config()
    })
    .expect("sandbox starts");
    let slow = Duration::from_millis(1500);
    let waiting = load_capable(&sandbox, owner(1, 1), limits(), Some(Recorder::slow(slow)));
    let quick = load_capable(&sandbox, owner(2, 1), limits(), None);
    let started = Instant::now();
    let slow_call = {
        let waiting = waiting.clone();
        std::thread::spawn(move || {
            let got = plain(
                &waiting,
                "query.children",
                json!({"source": "slow", "sql": "select pg_sleep(1.5)"}),
            );
            (got, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(plain(&quick, "ok.children", json!(null)), json!("ok"));
    let quick_done = started.elapsed();
    let (got, slow_done) = slow_call.join().expect("the slow call's thread");
    assert_eq!(got["ok"], "slow", "{got}");
    assert!(
        quick_done < Duration::from_millis(1200),
        "the short call waited {quick_done:?}: the waiting call kept the core"
    );
    assert!(
        slow_done >= slow,
        "the slow call ended at {slow_done:?}, before its query"
    );
}

#[test]
fn the_deadline_interrupts_a_blocking_capability_call() {
    let sandbox = sandbox();
    let component = load_capable(
        &sandbox,
        owner(1, 1),
        Limits {
            deadline: Duration::from_millis(300),
            ..limits()
        },
        Some(Recorder::slow(Duration::from_secs(10))),
    );
    let started = Instant::now();
    let failure = call(
        &component,
        "query.children",
        json!({"source": "slow", "sql": "select 1"}),
        CallOptions::default(),
    )
    .expect_err("a query past the deadline fails the call");
    let elapsed = started.elapsed();
    assert!(
        matches!(failure.error, Error::Deadline { .. }),
        "{:?}",
        failure.error
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "stopped late: {elapsed:?}"
    );
    assert_eq!(component.idle_instances(), 0, "the instance is dropped");
    // The component goes on serving.
    assert_eq!(plain(&component, "ok.children", json!(null)), json!("ok"));
}

#[test]
fn cancelling_interrupts_a_blocking_capability_call() {
    let sandbox = sandbox();
    let component = load_capable(
        &sandbox,
        owner(1, 1),
        limits(),
        Some(Recorder::slow(Duration::from_secs(10))),
    );
    let flag = Arc::new(AtomicBool::new(false));
    {
        let flag = flag.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            flag.store(true, Ordering::Relaxed);
        });
    }
    let started = Instant::now();
    let failure = call(
        &component,
        "query.children",
        json!({"source": "slow", "sql": "select 1"}),
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
        "{:?}",
        failure.error
    );
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2),
        "stopped at {elapsed:?}"
    );
}

/// A capability that may run on the caller runs on the guest's own thread (no helper
/// thread), still gives the call's core away while it waits, and a call past its deadline
/// or cancelled still fails as stopped.
#[test]
fn a_capability_run_on_the_guest_thread_gives_its_core_away_and_ends_with_the_call() {
    let where_ = json!({"source": "where", "sql": "select 1"});
    let plain_sandbox = sandbox();
    let on_helper = load_capable(
        &plain_sandbox,
        owner(1, 1),
        limits(),
        Some(Arc::new(Recorder::default())),
    );
    assert_eq!(
        plain(&on_helper, "query.children", where_.clone())["ok"],
        "tessera-host-call"
    );
    let sandbox = Sandbox::new(SandboxConfig {
        cpu_slots: 1,
        ..test_config()
    })
    .expect("sandbox starts");
    let on_caller = |deadline: Duration, slow: Duration| {
        load_capable(
            &sandbox,
            owner(1, 1),
            Limits {
                deadline,
                ..limits()
            },
            Some(Arc::new(OnCaller(Recorder::slow(slow)))),
        )
    };
    let inline = on_caller(Duration::from_secs(10), Duration::from_millis(1500));
    let got = plain(&inline, "query.children", where_);
    assert!(
        got["ok"].is_string() && got["ok"] != "tessera-host-call",
        "{got}"
    );
    let got = plain(
        &inline,
        "cache.children",
        json!({"op": "set", "key": "k", "value": "v", "ttl": 30}),
    );
    assert_eq!(got, json!({"ok": null}));

    // One core: while the slow query waits on the guest's thread, another tenant runs.
    let quick = load_capable(&sandbox, owner(2, 1), limits(), None);
    let slow_call = {
        let inline = inline.clone();
        std::thread::spawn(move || {
            let got = plain(
                &inline,
                "query.children",
                json!({"source": "slow", "sql": "select 1"}),
            );
            (got, Instant::now())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(plain(&quick, "ok.children", json!(null)), json!("ok"));
    let quick_done = Instant::now();
    let (got, slow_done) = slow_call.join().expect("the slow call's thread");
    assert_eq!(got["ok"], "slow", "{got}");
    assert!(
        quick_done < slow_done,
        "the short call ended after the slow one: the waiting call kept the core"
    );

    // Past the deadline: the call fails as stopped, the component goes on serving.
    let late = on_caller(Duration::from_millis(300), Duration::from_secs(10));
    let failure = call(
        &late,
        "query.children",
        json!({"source": "slow", "sql": "select 1"}),
        CallOptions::default(),
    )
    .expect_err("a query past the deadline fails the call");
    assert!(
        matches!(failure.error, Error::Deadline { .. }),
        "{:?}",
        failure.error
    );
    assert_eq!(plain(&late, "ok.children", json!(null)), json!("ok"));

    // Cancelled: the same.
    let flag = Arc::new(AtomicBool::new(false));
    {
        let flag = flag.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            flag.store(true, Ordering::Relaxed);
        });
    }
    let cancelled = on_caller(Duration::from_secs(60), Duration::from_secs(10));
    let failure = call(
        &cancelled,
        "query.children",
        json!({"source": "slow", "sql": "select 1"}),
        CallOptions {
            deadline: Some(Duration::from_secs(60)),
            cancel: Some(flag),
            ..CallOptions::default()
        },
    )
    .expect_err("a cancelled call fails");
    assert!(
        matches!(failure.error, Error::Cancelled),
        "{:?}",
        failure.error
    );
}

#[test]
fn viewer_answers_the_calls_viewer_and_refuses_in_a_memoized_call() {
    let sandbox = sandbox();
    let recorder = Arc::new(Recorder::default());
    let component = load_capable(&sandbox, owner(1, 1), limits(), Some(recorder.clone()));
    let viewer = Viewer {
        user_id: "42".to_string(),
        email: Some("ada@example.org".to_string()),
        groups: vec!["analysts".to_string(), "sales".to_string()],
    };
    let with = |viewer: Option<Viewer>, memoized: bool| CallOptions {
        viewer,
        memoized,
        ..CallOptions::default()
    };
    assert_eq!(
        answer(
            &component,
            "viewer.children",
            json!(null),
            with(Some(viewer.clone()), false)
        ),
        json!({"ok": {"user_id": "42", "email": "ada@example.org", "groups": ["analysts", "sales"]}})
    );
    // The next call on the same (warm) instance has no viewer: nothing is left over.
    assert_eq!(
        answer(
            &component,
            "viewer.children",
            json!(null),
            with(None, false)
        ),
        json!({"ok": null})
    );
    let got = answer(
        &component,
        "viewer.children",
        json!(null),
        with(Some(viewer.clone()), true),
    );
    assert_eq!(got["err"]["kind"], "viewer", "{got}");
    assert!(
        got["err"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("memoized")),
        "{got}"
    );
    // The capabilities see the call's viewer and whether it is memoized.
    answer(
        &component,
        "query.children",
        json!({"source": "main", "sql": "select 1"}),
        with(Some(viewer.clone()), false),
    );
    let last = recorder.last.lock().expect("lock").clone().expect("called");
    assert_eq!(last.viewer, Some(viewer));
    assert!(!last.memoized);
    answer(
        &component,
        "query.children",
        json!({"source": "main", "sql": "select 1"}),
        with(None, true),
    );
    let last = recorder.last.lock().expect("lock").clone().expect("called");
    assert_eq!(last.viewer, None);
    assert!(last.memoized);
}

#[test]
fn a_component_built_for_0_1_0_runs_beside_a_0_2_0_component() {
    let sandbox = sandbox();
    let old = sandbox
        .load(
            v0_1_wasm(),
            LoadOptions {
                limits: limits(),
                settings: Settings::new([("REGION".to_string(), "eu".to_string(), false)]),
                owner: owner(1, 1),
                ..LoadOptions::default()
            },
        )
        .expect("the 0.1.0 guest loads");
    let new = load_capable(
        &sandbox,
        owner(1, 2),
        limits(),
        Some(Arc::new(Recorder::default())),
    );
    assert_eq!(old.info().title, "built for 0.1.0");
    assert_eq!(new.info().title, "capable");
    assert!(
        !old.sees_viewer(),
        "a 0.1.0 component cannot ask who is viewing"
    );
    assert!(new.sees_viewer());
    for _ in 0..2 {
        let output = old
            .call("hello.children", r#"{"outputs":[],"inputs":[],"state":[]}"#)
            .expect("the 0.1.0 callback runs");
        assert_eq!(
            output.outcome,
            Outcome::Outputs(r#"["hello from 0.1.0, region eu"]"#.to_string())
        );
        assert!(
            output
                .logs
                .iter()
                .any(|line| line.message == "hello from a 0.1.0 component"),
            "{:?}",
            output.logs
        );
        assert_eq!(
            plain(
                &new,
                "query.children",
                json!({"source": "main", "sql": "select 1"})
            )["ok"],
            "main|select 1|[]"
        );
    }
}

#[test]
fn streamed_props_reach_the_sink_in_order_within_the_calls_bounds() {
    let sandbox = sandbox();
    let component = load_capable(
        &sandbox,
        owner(1, 1),
        Limits {
            output_bytes: 64 << 10,
            ..limits()
        },
        None,
    );
    let received = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let streaming = || {
        let received = received.clone();
        CallOptions {
            stream: Some(Arc::new(move |id: String, props: String| {
                received.lock().expect("lock").push((id, props));
            })),
            ..CallOptions::default()
        }
    };
    // Without a sink nothing is sent: the guest is told so.
    assert_eq!(
        plain(
            &component,
            "stream.children",
            json!({"count": 3, "bytes": 4})
        ),
        json!({"ok": {"sent": 0, "error": null}})
    );
    assert_eq!(
        answer(
            &component,
            "stream.children",
            json!({"count": 3, "bytes": 4}),
            streaming()
        ),
        json!({"ok": {"sent": 3, "error": null}})
    );
    assert_eq!(
        received.lock().expect("lock").clone(),
        vec![("feed".to_string(), r#"{"children":"pppp"}"#.to_string()); 3]
    );
    // Bytes count over the whole call against the output cap (64 KiB here): an update of
    // 1,019 bytes (the id `feed` and `{"children":"…"}` around 1,000 bytes) fits 64 times,
    // the 65th is refused before it is copied out.
    received.lock().expect("lock").clear();
    let over = answer(
        &component,
        "stream.children",
        json!({"count": 1000, "bytes": 1000}),
        streaming(),
    );
    assert_eq!(over["ok"]["sent"], json!(64), "{over}");
    assert!(
        over["ok"]["error"]
            .as_str()
            .is_some_and(|m| m.contains("output cap")),
        "{over}"
    );
    assert_eq!(received.lock().expect("lock").len(), 64);
    // The count bound: 10,000 updates a call, however small (each still counts ~19 bytes,
    // so this runs with an output cap the bytes do not reach first).
    let roomy = load_capable(
        &sandbox,
        owner(1, 2),
        Limits {
            output_bytes: 8 << 20,
            ..limits()
        },
        None,
    );
    let many = answer(
        &roomy,
        "stream.children",
        json!({"count": sandbox::MAX_STREAMED_UPDATES + 5, "bytes": 0}),
        CallOptions {
            stream: Some(Arc::new(|_: String, _: String| {})),
            ..CallOptions::default()
        },
    );
    assert_eq!(
        many["ok"]["sent"],
        json!(sandbox::MAX_STREAMED_UPDATES),
        "{many}"
    );
    assert!(
        many["ok"]["error"]
            .as_str()
            .is_some_and(|m| m.contains("10000 updates")),
        "{many}"
    );
    // Props must be a JSON dictionary; a refused update is not sent.
    received.lock().expect("lock").clear();
    for bad in ["[1]", "{not json", "\"text\""] {
        let refused = answer(
            &component,
            "stream.children",
            json!({"raw": bad}),
            streaming(),
        );
        assert!(
            refused["err"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("dictionary")),
            "{bad}: {refused}"
        );
    }
    assert!(received.lock().expect("lock").is_empty());
    // A fresh call starts with fresh bounds.
    assert_eq!(
        answer(
            &component,
            "stream.children",
            json!({"count": 2, "bytes": 1}),
            streaming()
        ),
        json!({"ok": {"sent": 2, "error": null}})
    );
}
