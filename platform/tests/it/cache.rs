//! The shared cache and platform memoization (issue 14): isolation between apps and
//! tenants, TTL, per-tenant quota eviction, Redis going away, and memoized callbacks — in
//! process and through a real Redis (`TESSERA_TEST_REDIS_URL`, plus servers these tests
//! start and kill themselves).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::cache::{Cache, CacheError, CacheLimits, CacheScope};
use platform::ids::{AppId, TenantId};
use platform::runtime::Runtime;
use serde_json::{Value, json};

use crate::support::TestApp;

fn op() -> platform::store::Change<'static> {
    use platform::clock::Clock;
    platform::store::Change {
        actor: "test",
        remote_addr: None,
        at: platform::clock::SystemClock.now_millis(),
    }
}

fn shared_redis_url() -> String {
    std::env::var("TESSERA_TEST_REDIS_URL").expect(
        "TESSERA_TEST_REDIS_URL is not set: start Redis and export it (scripts/test.sh does)",
    )
}

/// A namespace no other test run shares on the shared Redis.
fn fresh_namespace() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A `redis-server` of this test on a free port, killed on drop.
pub(crate) struct OwnRedis {
    child: Option<Child>,
    pub(crate) url: String,
}

impl OwnRedis {
    pub(crate) fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("address")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child: Some(child),
            url: format!("redis://127.0.0.1:{port}"),
        }
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn scope(tenant: i64, app: i64) -> CacheScope {
    CacheScope {
        tenant: TenantId(tenant),
        app: AppId(app),
    }
}

/// The two backends: this process, and the shared Redis under a fresh namespace.
async fn backends(limits: CacheLimits) -> Vec<Cache> {
    let redis = Cache::connect_redis(&shared_redis_url(), &fresh_namespace(), limits.clone())
        .await
        .expect("the test Redis answers");
    vec![Cache::in_process(limits), redis]
}

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn the_same_key_of_another_app_or_tenant_is_another_entry() {
    for cache in backends(CacheLimits::default()).await {
        let backend = cache.backend_name();
        cache
            .set(scope(1, 1), "k", b"one", MINUTE)
            .await
            .expect("set");
        cache
            .set(scope(1, 2), "k", b"two", MINUTE)
            .await
            .expect("set");
        cache
            .set(scope(2, 1), "k", b"three", MINUTE)
            .await
            .expect("set");
        // A key spelling another scope's name reaches nothing of it.
        cache
            .set(scope(1, 1), "}:a2:k", b"forged", MINUTE)
            .await
            .expect("set");
        let get = |s| {
            let cache = &cache;
            async move { cache.get(s, "k").await.expect("get") }
        };
        assert_eq!(
            get(scope(1, 1)).await.as_deref(),
            Some(&b"one"[..]),
            "{backend}"
        );
        assert_eq!(
            get(scope(1, 2)).await.as_deref(),
            Some(&b"two"[..]),
            "{backend}"
        );
        assert_eq!(
            get(scope(2, 1)).await.as_deref(),
            Some(&b"three"[..]),
            "{backend}"
        );
        assert_eq!(get(scope(2, 2)).await, None, "{backend}");
        cache.delete(scope(1, 1), "k").await.expect("delete");
        assert_eq!(get(scope(1, 1)).await, None, "{backend}");
        assert_eq!(
            get(scope(1, 2)).await.as_deref(),
            Some(&b"two"[..]),
            "{backend}"
        );
        assert_eq!(
            get(scope(2, 1)).await.as_deref(),
            Some(&b"three"[..]),
            "{backend}"
        );
        // Overwriting replaces.
        cache
            .set(scope(1, 2), "k", b"2", MINUTE)
            .await
            .expect("set");
        assert_eq!(
            get(scope(1, 2)).await.as_deref(),
            Some(&b"2"[..]),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    for cache in backends(CacheLimits::default()).await {
        let backend = cache.backend_name();
        let s = scope(5, 1);
        cache
            .set(s, "short", b"v", Duration::from_millis(200))
            .await
            .expect("set");
        cache.set(s, "long", b"v", MINUTE).await.expect("set");
        assert!(
            cache.get(s, "short").await.expect("get").is_some(),
            "{backend}"
        );
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(cache.get(s, "short").await.expect("get"), None, "{backend}");
        assert!(
            cache.get(s, "long").await.expect("get").is_some(),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn quota_eviction_keeps_a_tenant_under_its_quota_and_spares_other_tenants() {
    const QUOTA: u64 = 20_000;
    for cache in backends(CacheLimits::default()).await {
        let backend = cache.backend_name();
        let (greedy, other) = (TenantId(7), TenantId(8));
        cache.set_tenant_quota(greedy, QUOTA as i64);
        cache.set_tenant_quota(other, QUOTA as i64);
        cache
            .set(scope(8, 1), "mine", &[1; 5_000], MINUTE)
            .await
            .expect("set");
        for i in 0..100u64 {
            // Later writes expire later, so the oldest go first in both backends; key i
            // lives in app 1 + i % 3 (k0 and k99 in app 1).
            let ttl = MINUTE + Duration::from_millis(i * 10);
            cache
                .set(
                    scope(7, 1 + i as i64 % 3),
                    &format!("k{i}"),
                    &[0; 1_000],
                    ttl,
                )
                .await
                .expect("set");
            let used = cache.tenant_usage(greedy).await;
            assert!(
                used <= QUOTA,
                "{backend}: {used} bytes over the quota after write {i}"
            );
        }
        assert!(
            cache.tenant_usage(greedy).await > QUOTA / 2,
            "{backend}: the quota is used"
        );
        let newest = cache.get(scope(7, 1), "k99").await.expect("get");
        assert!(newest.is_some(), "{backend}: the newest entry is kept");
        let oldest = cache.get(scope(7, 1), "k0").await.expect("get");
        assert_eq!(oldest, None, "{backend}: the oldest entry was evicted");
        let kept = cache.get(scope(8, 1), "mine").await.expect("get");
        assert_eq!(
            kept.as_deref(),
            Some(&[1; 5_000][..]),
            "{backend}: another tenant's entry stays"
        );
        // An entry larger than the whole quota is a clear error, and evicts nothing.
        cache.set_tenant_quota(greedy, 1_000);
        assert!(matches!(
            cache.set(scope(7, 1), "huge", &[0; 2_000], MINUTE).await,
            Err(CacheError::OverQuota { quota: 1_000, .. })
        ));
    }
}

#[tokio::test]
async fn redis_stopped_makes_gets_miss_and_sets_skip_without_an_error() {
    let mut redis = OwnRedis::start();
    let limits = CacheLimits {
        redis_timeout: Duration::from_millis(200),
        ..CacheLimits::default()
    };
    let cache = Cache::connect_redis(&redis.url, &fresh_namespace(), limits)
        .await
        .expect("connects");
    let s = scope(1, 1);
    cache.set(s, "k", b"v", MINUTE).await.expect("set");
    assert_eq!(
        cache.get(s, "k").await.expect("get").as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(cache.unavailable_count(), 0);

    redis.kill();
    let started = Instant::now();
    assert_eq!(cache.get(s, "k").await, Ok(None), "a miss, not an error");
    assert_eq!(cache.set(s, "k2", b"v", MINUTE).await, Ok(()), "skipped");
    assert_eq!(cache.delete(s, "k").await, Ok(()), "skipped");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "each call gives up quickly ({:?})",
        started.elapsed()
    );
    assert!(
        cache.unavailable_count() >= 3,
        "the counter rises: {}",
        cache.unavailable_count()
    );
    // The caller's own mistakes are still errors.
    assert!(matches!(
        cache.set(s, "", b"v", MINUTE).await,
        Err(CacheError::BadKey { .. })
    ));
}

// --- Memoization -------------------------------------------------------------------------

const MEMO: &str = "/apps/demo/memo/_dash-update-component";

fn body(callback: &str, input: &str) -> String {
    json!({
        "output": format!("{callback}.children"),
        "outputs": {"id": callback, "property": "children"},
        "inputs": [{"id": "in", "property": "value", "value": input}],
        "changedPropIds": ["in.value"],
        "state": []
    })
    .to_string()
}

/// The answer's text, which carries the time the guest computed it.
async fn answer(app: &TestApp, callback: &str, input: &str) -> String {
    let reply = app.post_json(MEMO, body(callback, input)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let json: Value = reply.json();
    json["response"][callback]["children"]
        .as_str()
        .unwrap_or_else(|| panic!("no answer in {json}"))
        .to_owned()
}

#[tokio::test]
async fn a_repeated_memoized_request_does_not_run_the_guest_and_another_input_does() {
    let app = TestApp::new().await;
    app.deploy("demo", "memo", "guest_memo.wasm").await;
    let served = app.get("/apps/demo/memo/_dash-dependencies").await.text();
    assert!(!served.contains("tessera_memoize"), "{served}");

    let first = answer(&app, "memo", "a").await;
    assert!(first.starts_with("a @"), "{first}");
    assert_eq!(
        answer(&app, "memo", "a").await,
        first,
        "answered from the cache"
    );
    assert_eq!(app.state.memo.stats().runs, 1);
    assert_eq!(app.state.memo.stats().hits, 1);
    let other = answer(&app, "memo", "b").await;
    assert!(other.starts_with("b @"), "{other}");
    assert_eq!(
        app.state.memo.stats().runs,
        2,
        "another input runs the guest"
    );
    // The same request to a callback that is not memoized runs every time.
    assert_ne!(
        answer(&app, "plain", "a").await,
        answer(&app, "plain", "a").await
    );

    // Errors and PreventUpdate are not kept: each request runs the guest again.
    for _ in 0..2 {
        let failed = app.post_json(MEMO, body("memo", "fail")).await;
        assert_eq!(failed.status, 500, "{}", failed.text());
        let prevented = app.post_json(MEMO, body("memo", "prevent")).await;
        assert_eq!(prevented.status, 204);
    }
    assert_eq!(app.state.memo.stats().runs, 6);

    // A short TTL runs again once it has passed.
    let brief = answer(&app, "brief", "a").await;
    assert_eq!(answer(&app, "brief", "a").await, brief);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_ne!(
        answer(&app, "brief", "a").await,
        brief,
        "expired after 300 ms"
    );
}

#[tokio::test]
async fn a_memoized_answer_larger_than_the_tenants_quota_is_served_but_not_kept() {
    let app = TestApp::new().await;
    app.deploy("demo", "memo", "guest_memo.wasm").await;
    let tenant = app
        .state
        .store
        .tenant_by_slug(&platform::ids::Slug::parse("demo").expect("slug"))
        .await
        .expect("store")
        .expect("tenant");
    let quotas = platform::store::Quotas {
        cache_bytes: 10_000,
        ..tenant.quotas.clone()
    };
    app.state
        .store
        .set_quotas(tenant.id, &quotas, &op())
        .await
        .expect("quotas");
    tokio::time::sleep(Runtime::REFRESH + Duration::from_millis(100)).await;
    for _ in 0..2 {
        assert_eq!(answer(&app, "memo", "big:20000").await.len(), 20_000);
    }
    assert_eq!(app.state.memo.stats().runs, 2, "over the quota: not stored");
    answer(&app, "memo", "big:2000").await;
    answer(&app, "memo", "big:2000").await;
    assert_eq!(app.state.memo.stats().runs, 3, "under the quota: stored");
    assert!(app.state.cache.tenant_usage(tenant.id).await <= 10_000);
}

/// A memo hit answers without one of the tenant's callback slots: with every slot taken,
/// a memoized answer is still a 200, while a request that must run the guest is a 429.
#[tokio::test]
async fn a_memo_hit_answers_while_the_tenants_callback_slots_are_all_taken() {
    let app = TestApp::new().await;
    app.deploy("demo", "memo", "guest_memo.wasm").await;
    let first = answer(&app, "memo", "a").await;
    let tenant = app
        .state
        .store
        .tenant_by_slug(&platform::ids::Slug::parse("demo").expect("slug"))
        .await
        .expect("store")
        .expect("tenant");
    let max = tenant.quotas.max_concurrent_callbacks;
    let slots = app.state.runtime.callback_slots();
    let taken: Vec<_> = (0..max)
        .map(|_| slots.try_acquire(tenant.id, max).expect("a free slot"))
        .collect();
    assert!(slots.try_acquire(tenant.id, max).is_err(), "all taken");

    assert_eq!(answer(&app, "memo", "a").await, first, "a hit, served");
    let miss = app.post_json(MEMO, body("memo", "b")).await;
    assert_eq!(miss.status, 429, "{}", miss.text());
    let plain = app.post_json(MEMO, body("plain", "a")).await;
    assert_eq!(plain.status, 429, "{}", plain.text());
    assert_eq!(app.state.memo.stats().hits, 1);

    drop(taken);
    assert!(answer(&app, "memo", "b").await.starts_with("b @"));
}

#[tokio::test]
async fn concurrent_identical_requests_run_the_guest_once() {
    let app = Arc::new(TestApp::new().await);
    app.deploy("demo", "memo", "guest_memo.wasm").await;
    let mut requests = Vec::new();
    for _ in 0..8 {
        let app = app.clone();
        requests.push(tokio::spawn(
            async move { answer(&app, "memo", "same").await },
        ));
    }
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.expect("task"));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(app.state.memo.stats().runs, 1, "single flight");
}

#[tokio::test]
async fn a_deploy_changes_the_memoized_answer_at_once() {
    let app = TestApp::with_redis().await;
    app.deploy("demo", "memo", "guest_memo.wasm").await;
    let before = answer(&app, "memo", "a").await;
    assert_eq!(answer(&app, "memo", "a").await, before);
    app.deploy("demo", "memo", "guest_memo.wasm").await;
    // The runtime switches to the new version within REFRESH; from then on, no old answer.
    tokio::time::sleep(Runtime::REFRESH + Duration::from_millis(100)).await;
    let after = answer(&app, "memo", "a").await;
    assert_ne!(
        after, before,
        "a new version does not see the old version's answers"
    );
    assert_eq!(answer(&app, "memo", "a").await, after);
}

#[tokio::test]
async fn two_replicas_share_memoized_answers_through_redis() {
    let one = TestApp::with_redis().await;
    one.deploy("demo", "memo", "guest_memo.wasm").await;
    let two = TestApp::replica_of(&one).await;
    assert_eq!(two.state.cache.backend_name(), "redis");
    let first = answer(&one, "memo", "shared").await;
    assert_eq!(answer(&two, "memo", "shared").await, first);
    assert_eq!(
        two.state.memo.stats().runs,
        0,
        "replica two never ran the guest"
    );
    assert_eq!(two.state.memo.stats().hits, 1);
}

#[tokio::test]
async fn redis_killed_during_a_burst_of_memoized_requests_fails_no_request() {
    let mut redis = OwnRedis::start();
    let app = Arc::new(TestApp::with_redis_url(redis.url.clone()).await);
    app.deploy("demo", "memo", "guest_memo.wasm").await;
    let burst = |round: usize| {
        let app = app.clone();
        async move {
            let mut requests = Vec::new();
            // Within the tenant's 32 concurrent callbacks.
            for i in 0..16 {
                let app = app.clone();
                requests.push(tokio::spawn(async move {
                    let input = format!("k{}", (round * 16 + i) % 7);
                    app.post_json(MEMO, body("memo", &input)).await.status
                }));
            }
            let mut statuses = Vec::new();
            for request in requests {
                statuses.push(request.await.expect("task"));
            }
            statuses
        }
    };
    for _ in 0..2 {
        let before = burst(0).await;
        assert!(before.iter().all(|s| *s == 200), "{before:?}");
    }
    assert!(app.state.memo.stats().runs <= 7, "one run per input");
    assert!(
        app.state.memo.stats().hits > 0,
        "the cache served before the kill"
    );

    let during = tokio::spawn(burst(1));
    tokio::time::sleep(Duration::from_millis(5)).await;
    redis.kill();
    let during = during.await.expect("burst");
    let after = burst(2).await;
    for statuses in [during, after] {
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    assert!(
        app.state.cache.unavailable_count() > 0,
        "the bypass was counted"
    );
}
