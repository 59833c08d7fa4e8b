//! Fair sharing (issue 12), platform side: load-time guest calls under the tenant's
//! callback slots (one load per version at a time, failures remembered), background jobs
//! under the tenant's quota (caps, deadline, fair worker slots, unpolled answers dropped,
//! an answer byte cap), the tenant's CPU weight as a quota, and JSON-only callback posts.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use platform::admin;
use platform::config::JobsConfig;
use platform::ids::Slug;
use platform::jobs::JobState;
use platform::runtime::Runtime;
use platform::store::{Change, Quotas, SettingWrite};
use serde_json::json;

use crate::support::{Reply, TestApp, end_id as signed_end_id, hostile_request, request_on};

fn op() -> Change<'static> {
    Change {
        actor: "test",
        remote_addr: None,
        at: 1,
    }
}

fn slug(s: &str) -> Slug {
    Slug::parse(s).expect("slug")
}

async fn tenant_with(app: &TestApp, slug: &str, quotas: Quotas) {
    let tenant = admin::create_tenant(&app.state.store, slug, None, None, &op())
        .await
        .expect("tenant");
    app.state
        .store
        .set_quotas(tenant.id, &quotas, &op())
        .await
        .expect("quotas");
}

/// `count` GETs of `uri` at once, each in its own task.
async fn gets(app: &TestApp, uri: &str, count: usize) -> Vec<Reply> {
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let state = app.state.clone();
            let uri = uri.to_owned();
            tokio::spawn(async move {
                let request = Request::get(uri).body(Body::empty()).expect("request");
                request_on(&state, request).await
            })
        })
        .collect();
    let mut replies = Vec::with_capacity(count);
    for task in tasks {
        replies.push(task.await.expect("request task"));
    }
    replies
}

/// Waits (polling, at most `what`'s 20 s) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 20 s");
}

fn update_uri(tenant: &str, app: &str) -> String {
    format!("/apps/{tenant}/{app}/_dash-update-component")
}

/// Start the hostile guest's background callback `callback` for page load `page`.
async fn start_job(app: &TestApp, tenant: &str, name: &str, callback: &str, page: &str) -> Reply {
    let end_id = signed_end_id(app, tenant, name, page);
    app.post_json(
        &format!("{}?endId={end_id}", update_uri(tenant, name)),
        hostile_request(callback),
    )
    .await
}

fn job_of(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()["job"].as_str().expect("job handle").to_owned()
}

async fn poll_job(
    app: &TestApp,
    tenant: &str,
    name: &str,
    callback: &str,
    page: &str,
    job: &str,
) -> Reply {
    let end_id = signed_end_id(app, tenant, name, page);
    app.post_json(
        &format!(
            "{}?endId={end_id}&cacheKey={job}&job={job}",
            update_uri(tenant, name)
        ),
        hostile_request(callback),
    )
    .await
}

/// Poll like the renderer until the job's answer is not "still running".
async fn poll_to_end(
    app: &TestApp,
    tenant: &str,
    name: &str,
    callback: &str,
    end_id: &str,
    job: &str,
) -> Reply {
    for _ in 0..200 {
        let reply = poll_job(app, tenant, name, callback, end_id, job).await;
        if reply.status != StatusCode::OK || reply.json().get("response").is_some() {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {job} did not end within 20 s");
}

async fn job_state(app: &TestApp, id: &str) -> Option<JobState> {
    app.state
        .jobs
        .store()
        .get(id)
        .await
        .expect("job store")
        .map(|job| job.state)
}

#[tokio::test]
async fn a_spinning_load_runs_once_takes_the_tenants_slots_and_its_failure_is_remembered() {
    let app = TestApp::new().await;
    tenant_with(
        &app,
        "evil",
        Quotas {
            max_concurrent_callbacks: 4,
            callback_deadline_ms: 1500,
            ..Quotas::DEFAULT
        },
    )
    .await;
    // Deployed without the setting: the deploy's own load passes.
    app.deploy("evil", "hostile", "guest_hostile.wasm").await;
    let layout = "/apps/evil/hostile/_dash-layout";
    assert_eq!(app.get(layout).await.status, StatusCode::OK);
    let access = make_loads_spin(&app).await;
    // The cached version is trusted for REFRESH; after it, the next request loads again.
    tokio::time::sleep(Runtime::REFRESH).await;
    let runtime = &app.state.runtime;
    let loads_before = runtime.loads_started();

    // One request starts the load; 19 more arrive while it spins.
    let (first, others) = tokio::join!(app.get(layout), async {
        until("the load to start", || runtime.loads_in_flight() == 1).await;
        gets(&app, layout, 19).await
    });
    assert_eq!(
        runtime.loads_started(),
        loads_before + 1,
        "one load for 20 requests"
    );
    assert_eq!(
        first.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        first.text()
    );
    let refused: Vec<&Reply> = others
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    let waited = others
        .iter()
        .filter(|r| r.status == StatusCode::INTERNAL_SERVER_ERROR)
        .count();
    // The load holds one of the 4 slots, each waiter one more: 3 wait, 16 are refused.
    assert_eq!(
        (waited, refused.len()),
        (3, 16),
        "statuses: {:?}",
        others.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(refused.iter().all(|r| r.error_code() == "quota_exceeded"));

    // A second wave is answered from the remembered failure: no load, no slot taken, and
    // held like a quota refusal so that a client retrying in a loop costs little.
    let sent = Instant::now();
    let second = gets(&app, layout, 20).await;
    assert!(
        sent.elapsed() >= platform::quota::REFUSAL_DELAY,
        "answered after {:?}",
        sent.elapsed()
    );
    assert!(
        second.iter().all(|r| r.error_code() == "app_load_failed"),
        "{:?}",
        second.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(
        runtime.loads_started(),
        loads_before + 1,
        "the guest did not run again"
    );
    let error = match runtime.live(&slug("evil"), &slug("hostile")).await {
        Err(error) => error.to_string(),
        Ok(_) => panic!("the spinning load must fail"),
    };
    assert!(error.contains("1500ms deadline"), "{error}");

    // A change of settings is a new version to load: it loads (and serves) again.
    app.state
        .store
        .unset_app_settings(
            access.tenant_id,
            access.app_id,
            &["SPIN_IN_DEPENDENCIES"],
            &op(),
        )
        .await
        .expect("unset");
    assert_eq!(app.get(layout).await.status, StatusCode::OK);
    assert_eq!(runtime.loads_started(), loads_before + 2);
}

#[tokio::test]
async fn jobs_over_the_app_or_tenant_cap_get_429_and_run_under_the_tenants_deadline() {
    let app = TestApp::new().await;
    tenant_with(
        &app,
        "busy",
        Quotas {
            max_jobs: 2,
            job_deadline_ms: 300,
            ..Quotas::DEFAULT
        },
    )
    .await;
    app.deploy("busy", "one", "guest_hostile.wasm").await;
    app.deploy("busy", "two", "guest_hostile.wasm").await;
    let first = job_of(&start_job(&app, "busy", "one", "bgspin", "p1").await);
    let same_app = start_job(&app, "busy", "one", "bgspin", "p1").await;
    assert_eq!(
        same_app.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        same_app.text()
    );
    assert_eq!(same_app.error_code(), "quota_exceeded");
    assert!(
        same_app
            .text()
            .contains("the app already has 1 background jobs"),
        "{}",
        same_app.text()
    );
    job_of(&start_job(&app, "busy", "two", "bgspin", "p2").await);
    let tenant = start_job(&app, "busy", "two", "bgspin", "p2").await;
    assert_eq!(
        tenant.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        tenant.text()
    );
    assert!(
        tenant
            .text()
            .contains("the tenant already has 2 background jobs"),
        "{}",
        tenant.text()
    );

    // The spinning job stops at the tenant's 300 ms, not the platform's 10 minutes.
    let end = poll_to_end(&app, "busy", "one", "bgspin", "p1", &first).await;
    assert_eq!(end.error_code(), "callback_deadline", "{}", end.text());
    // Its slot is free again.
    job_of(&start_job(&app, "busy", "one", "bgok", "p1").await);
}

#[tokio::test]
async fn a_flood_of_jobs_from_one_tenant_does_not_hold_back_another_tenants_job() {
    // Two workers; one tenant may take one of them (all but one, the default).
    let app = TestApp::with_jobs(JobsConfig {
        workers: 2,
        ..JobsConfig::default()
    })
    .await;
    tenant_with(
        &app,
        "flood",
        Quotas {
            max_jobs: 12,
            job_deadline_ms: 1000,
            ..Quotas::DEFAULT
        },
    )
    .await;
    app.deploy("flood", "spinner", "guest_hostile.wasm").await;
    app.deploy("calm", "light", "guest_hostile.wasm").await;
    let mut flood = Vec::new();
    for _ in 0..5 {
        flood.push(job_of(
            &start_job(&app, "flood", "spinner", "bgspin", "f").await,
        ));
    }
    let calm = job_of(&start_job(&app, "calm", "light", "bgok", "c").await);
    let answer = poll_to_end(&app, "calm", "light", "bgok", "c", &calm).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        answer.json()["response"],
        json!({"bgok": {"children": "ok"}})
    );
    // The other tenant's job ran while the flood still waited: at most one of the flood's
    // jobs can have run and ended meanwhile (one worker, 1 s each), so three or more are
    // still queued. In one queue of two workers, it would have waited for four of them.
    let mut queued = 0;
    for id in &flood {
        if job_state(&app, id).await == Some(JobState::Queued) {
            queued += 1;
        }
    }
    assert!(queued >= 3, "{queued} of the flood's 5 jobs still queued");
}

#[tokio::test]
async fn answers_nobody_collects_are_dropped_and_jobs_nobody_polls_are_cancelled() {
    let app = TestApp::with_jobs(JobsConfig {
        unpolled_secs: 1,
        ..JobsConfig::default()
    })
    .await;
    tenant_with(
        &app,
        "acme",
        Quotas {
            job_deadline_ms: 2_500,
            ..Quotas::DEFAULT
        },
    )
    .await;
    app.deploy("acme", "hostile", "guest_hostile.wasm").await;
    let jobs = &app.state.jobs;

    // A finished answer nobody polls for is dropped, and counted.
    let done = job_of(&start_job(&app, "acme", "hostile", "bgok", "gone").await);
    until("the answer to be dropped", || {
        jobs.stats().dropped_answers == 1
    })
    .await;
    assert_eq!(job_state(&app, &done).await, None);
    let late = poll_job(&app, "acme", "hostile", "bgok", "gone", &done).await;
    assert_eq!(late.error_code(), "job_not_found", "{}", late.text());

    // A running job whose page stopped polling is cancelled, and counted.
    let spinning = job_of(&start_job(&app, "acme", "hostile", "bgspin", "gone").await);
    until("the job to be cancelled", || {
        jobs.stats().cancelled_unpolled == 1
    })
    .await;
    assert_eq!(job_state(&app, &spinning).await, None);

    // A job whose page keeps polling runs on past the window, to its own deadline.
    let polled = job_of(&start_job(&app, "acme", "hostile", "bgspin", "here").await);
    let end = poll_to_end(&app, "acme", "hostile", "bgspin", "here", &polled).await;
    assert_eq!(end.error_code(), "callback_deadline", "{}", end.text());
    assert_eq!(jobs.stats().cancelled_unpolled, 1);
}

/// The `bgecho` request with an input of `size` bytes (the answer carries it back).
fn echo_request(size: usize) -> String {
    json!({
        "output": "bgecho.children",
        "outputs": {"id": "bgecho", "property": "children"},
        "inputs": [{"id": "go", "property": "n_clicks", "value": "x".repeat(size)}],
        "changedPropIds": ["go.n_clicks"]
    })
    .to_string()
}

#[tokio::test]
async fn answers_past_the_tenants_byte_cap_become_429_errors() {
    let app = TestApp::with_jobs(JobsConfig {
        tenant_answers_kib: 4,
        ..JobsConfig::default()
    })
    .await;
    app.deploy("acme", "hostile", "guest_hostile.wasm").await;
    let end_id = signed_end_id(&app, "acme", "hostile", "p");
    let uri = format!("{}?endId={end_id}", update_uri("acme", "hostile"));
    let start = |size| {
        let uri = uri.clone();
        let app = &app;
        async move { job_of(&app.post_json(&uri, echo_request(size)).await) }
    };
    let poll = |job: String| {
        let (app, end_id) = (&app, &end_id);
        async move {
            for _ in 0..200 {
                let reply = app
                    .post_json(
                        &format!(
                            "{}?endId={end_id}&cacheKey={job}&job={job}",
                            update_uri("acme", "hostile")
                        ),
                        echo_request(0),
                    )
                    .await;
                if reply.status != StatusCode::OK || reply.json().get("response").is_some() {
                    return reply;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("job {job} did not end");
        }
    };
    // Two answers of ~3 KiB: the first is held, the second does not fit beside it.
    let first = start(3_000).await;
    until_state_final(&app, &first).await;
    let second = start(3_000).await;
    until_state_final(&app, &second).await;
    let refused = poll(second).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text()
    );
    assert_eq!(refused.error_code(), "quota_exceeded");
    let kept = poll(first).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.text());
    // Collected, it no longer counts: the next answer fits again.
    let third = start(3_000).await;
    let answer = poll(third).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

async fn until_state_final(app: &TestApp, id: &str) {
    for _ in 0..400 {
        if job_state(app, id)
            .await
            .is_some_and(|state| state.is_final())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} did not end within 20 s");
}

#[tokio::test]
async fn a_callback_post_must_be_json() {
    let app = TestApp::new().await;
    app.deploy("acme", "hostile", "guest_hostile.wasm").await;
    let uri = update_uri("acme", "hostile");
    let post = |content_type: Option<&'static str>| {
        let mut request = Request::post(uri.as_str());
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        app.request(
            request
                .body(Body::from(hostile_request("ok")))
                .expect("request"),
        )
    };
    for refused in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let reply = post(refused).await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{refused:?}: {}",
            reply.text()
        );
        assert_eq!(reply.error_code(), "unsupported_media_type");
    }
    let accepted = post(Some("application/json; charset=utf-8")).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text());
}

#[tokio::test]
async fn the_cpu_weight_and_job_quotas_are_set_by_superadmins_and_reach_the_live_app() {
    let app = TestApp::new().await;
    app.deploy("acme", "hello", "hello.wasm").await;
    let root = admin::create_user(&app.state.store, "root@example.org", None, true, &op())
        .await
        .expect("superadmin");
    let principal = platform::policy::Principal::User(platform::policy::UserPrincipal {
        id: root.id,
        superadmin: true,
        memberships: Vec::new(),
    });
    let patch = |body: serde_json::Value| {
        let mut request = Request::patch("/api/v1/tenants/acme")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        request.extensions_mut().insert(principal.clone());
        app.request(request)
    };
    let base = json!({
        "max_apps": 100,
        "max_concurrent_callbacks": 32,
        "callback_memory_mb": 128,
        "callback_deadline_ms": 5000,
        "max_version_storage_bytes": 1_073_741_824_i64,
    });
    let mut quotas = base.clone();
    quotas["cpu_weight"] = json!(250);
    quotas["max_jobs"] = json!(4);
    let set = patch(json!({"quotas": quotas})).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    assert_eq!(set.json()["quotas"]["cpu_weight"], 250);
    // Left out: unchanged (a client of the five older quotas does not reset them).
    let kept = patch(json!({"quotas": base})).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.text());
    assert_eq!(kept.json()["quotas"]["cpu_weight"], 250);
    assert_eq!(kept.json()["quotas"]["max_jobs"], 4);
    assert_eq!(kept.json()["quotas"]["job_deadline_ms"], 600_000);
    let mut heavy = base.clone();
    heavy["cpu_weight"] = json!(10_001);
    let refused = patch(json!({"quotas": heavy})).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    assert!(refused.text().contains("cpu_weight"), "{}", refused.text());
    // The live app is loaded again with the new quotas.
    tokio::time::sleep(Runtime::REFRESH).await;
    let live = app
        .state
        .runtime
        .live(&slug("acme"), &slug("hello"))
        .await
        .expect("live")
        .expect("app");
    assert_eq!(live.version.callback_quotas.cpu_weight, 250);
    assert_eq!(live.version.callback_quotas.max_jobs, 4);
}

#[tokio::test]
async fn a_deploys_validation_load_runs_under_the_tenants_deadline() {
    let app = TestApp::new().await;
    tenant_with(
        &app,
        "evil",
        Quotas {
            callback_deadline_ms: 300,
            ..Quotas::DEFAULT
        },
    )
    .await;
    app.deploy("evil", "hostile", "guest_hostile.wasm").await;
    make_loads_spin(&app).await;
    // The validation instance sees the settings, so it spins: stopped at the tenant's
    // 300 ms, not the platform's 5 s.
    let refused = app
        .state
        .deployer()
        .deploy(
            &slug("evil"),
            &slug("hostile"),
            crate::support::guest_wasm("guest_hostile.wasm"),
            "test",
            2,
            false,
        )
        .await
        .expect_err("the validation load spins");
    assert!(refused.to_string().contains("300ms deadline"), "{refused}");
}

/// Sets `SPIN_IN_DEPENDENCIES` on `evil/hostile`: every later load of it spins in
/// `dependencies()` until its deadline. Returns the app's ids.
async fn make_loads_spin(app: &TestApp) -> platform::store::AppAccess {
    let store = &app.state.store;
    let access = store
        .app_access(&slug("evil"), &slug("hostile"), None)
        .await
        .expect("query")
        .expect("app");
    store
        .set_app_settings(
            access.tenant_id,
            access.app_id,
            &[SettingWrite {
                name: "SPIN_IN_DEPENDENCIES",
                secret: false,
                stored_value: "1".to_owned(),
            }],
            10,
            &op(),
        )
        .await
        .expect("setting");
    access
}
