//! Background callbacks through Dash's polling protocol: start, progress, result, cancel,
//! failing jobs and polls that do not belong to the app or the page.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Reply, TestApp, end_id};

const REPORT: &str = "/apps/demo/report-builder/_dash-update-component";

async fn report_app() -> TestApp {
    let app = TestApp::new().await;
    app.deploy("demo", "report-builder", "report_builder.wasm")
        .await;
    app.deploy("demo", "hello", "hello.wasm").await;
    app
}

/// The renderer's body for the build button; `fail_at` 0 never fails.
fn build_body(fail_at: u32) -> String {
    json!({
        "output": "status.children",
        "outputs": {"id": "status", "property": "children"},
        "inputs": [{"id": "build", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["build.n_clicks"],
        "parsedChangedPropsIds": ["build.n_clicks"],
        "state": [{"id": "fail-at", "property": "value", "value": fail_at}]
    })
    .to_string()
}

/// What the renderer re-posts while polling: the same body with values nulled.
fn poll_body() -> String {
    json!({
        "output": "status.children",
        "outputs": {"id": "status", "property": "children"},
        "inputs": [{"id": "build", "property": "n_clicks", "value": null}],
        "changedPropIds": ["build.n_clicks"],
        "parsedChangedPropsIds": ["build.n_clicks"],
        "state": [{"id": "fail-at", "property": "value", "value": null}]
    })
    .to_string()
}

/// The report builder's signed `endId` for page load `page`.
fn page(app: &TestApp, page: &str) -> String {
    end_id(app, "demo", "report-builder", page)
}

async fn start(app: &TestApp, page_load: &str, fail_at: u32) -> (String, Value) {
    let end_id = page(app, page_load);
    let reply = app
        .post_json(&format!("{REPORT}?endId={end_id}"), build_body(fail_at))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    let job = body["job"].as_str().expect("job handle").to_owned();
    (job, body)
}

async fn poll(app: &TestApp, page_load: &str, job: &str) -> Reply {
    let end_id = page(app, page_load);
    app.post_json(
        &format!("{REPORT}?endId={end_id}&cacheKey={job}&job={job}"),
        poll_body(),
    )
    .await
}

#[tokio::test]
async fn background_job_reports_progress_then_its_result() {
    let app = report_app().await;
    let (job, started) = start(&app, "page1", 0).await;
    assert_eq!(started["cacheKey"], job.as_str());
    assert!(started.get("multi").is_none(), "{started}");
    assert_eq!(
        started["cancel"],
        json!([{"id": "cancel", "property": "n_clicks"}])
    );
    assert_eq!(
        started["progressDefault"],
        json!({"bar.value": "0", "bar.max": "12"})
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut progress_seen = Vec::new();
    let answer = loop {
        assert!(Instant::now() < deadline, "the job never finished");
        let reply = poll(&app, "page1", &job).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let body = reply.json();
        assert_eq!(body["multi"], true);
        if let Some(value) = body["progress"]["bar.value"].as_str() {
            progress_seen.push(value.parse::<u32>().expect("a number"));
        }
        if body.get("response").is_some() {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    };
    assert_eq!(
        answer["response"],
        json!({"status": {"children": "Report 1 is ready: 12 sections."}})
    );
    assert!(
        progress_seen.len() >= 3 && progress_seen.windows(2).all(|w| w[0] < w[1]),
        "progress should advance, each report once: {progress_seen:?}"
    );
    // The answer is delivered once.
    let again = poll(&app, "page1", &job).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.error_code(), "job_not_found");
}

#[tokio::test]
async fn cancel_job_stops_the_job_and_the_next_poll_is_204() {
    let app = report_app().await;
    let (job, _) = start(&app, "page1", 0).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let cancel = json!({
        "output": "cancel.id",
        "outputs": {"id": "cancel", "property": "id"},
        "inputs": [{"id": "cancel", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["cancel.n_clicks"]
    });
    let reply = app
        .post_json(
            &format!("{REPORT}?endId={}&cancelJob={job}", page(&app, "page1")),
            cancel.to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let started = Instant::now();
    loop {
        let reply = poll(&app, "page1", &job).await;
        if reply.status == StatusCode::NO_CONTENT {
            break;
        }
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert!(
            reply.json().get("response").is_none(),
            "a cancelled job answered"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the job did not stop within 2 s of the cancel"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn failing_job_ends_in_error_and_the_queue_goes_on() {
    let app = report_app().await;
    let (failing, _) = start(&app, "page1", 2).await;
    let (good, _) = start(&app, "page1", 0).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut failed = false;
    let mut finished = false;
    while !(failed && finished) {
        assert!(Instant::now() < deadline, "jobs did not end");
        if !failed {
            let reply = poll(&app, "page1", &failing).await;
            if reply.status == StatusCode::INTERNAL_SERVER_ERROR {
                assert_eq!(reply.error_code(), "callback_failed");
                // An anonymous viewer gets the error id, not the guest's words.
                assert!(reply.text().contains("error id "), "{}", reply.text());
                assert!(!reply.text().contains("section 2"), "{}", reply.text());
                failed = true;
            }
        }
        if !finished {
            let reply = poll(&app, "page1", &good).await;
            finished = reply.json().get("response").is_some();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn poll_from_another_page_or_app_or_unknown_job_is_not_found() {
    let app = report_app().await;
    let (job, _) = start(&app, "page1", 0).await;
    let other_page = poll(&app, "page2", &job).await;
    assert_eq!(other_page.status, StatusCode::NOT_FOUND);
    assert_eq!(other_page.error_code(), "job_not_found");
    let unknown = poll(&app, "page1", "nosuchjob").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    // The same handle on another app: that app's callback is not a background one.
    let hello = app
        .post_json(
            &format!(
                "/apps/demo/hello/_dash-update-component?endId={}&cacheKey={job}&job={job}",
                end_id(&app, "demo", "hello", "page1")
            ),
            json!({
                "output": "greeting.children",
                "outputs": {"id": "greeting", "property": "children"},
                "inputs": [{"id": "name", "property": "value", "value": null}],
                "changedPropIds": []
            })
            .to_string(),
        )
        .await;
    assert_eq!(hello.status, StatusCode::BAD_REQUEST);
    assert_eq!(hello.error_code(), "not_background");
    // A cancel for this job sent to another page load leaves it alone.
    let reply = app
        .post_json(
            &format!("{REPORT}?endId={}&cancelJob={job}", page(&app, "page2")),
            json!({
                "output": "cancel.id",
                "outputs": {"id": "cancel", "property": "id"},
                "inputs": [{"id": "cancel", "property": "n_clicks", "value": 1}],
                "changedPropIds": ["cancel.n_clicks"]
            })
            .to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let still = poll(&app, "page1", &job).await;
    assert_eq!(still.status, StatusCode::OK, "{}", still.text());
}

#[tokio::test]
async fn background_callback_without_end_id_is_refused() {
    let app = report_app().await;
    let reply = app.post_json(REPORT, build_body(0)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "missing_end_id");
}

#[tokio::test]
async fn served_dependencies_are_dash_shaped() {
    let app = report_app().await;
    let deps = app
        .get("/apps/demo/report-builder/_dash-dependencies")
        .await
        .json();
    assert_eq!(deps[0]["background"], json!({"interval": 200}));
    assert_eq!(
        deps[0]["running"]["running"],
        json!({"build.disabled": true, "cancel.disabled": false})
    );
    assert!(deps[0].get("tessera_background").is_none(), "{}", deps[0]);
}

/// Two platforms (replicas) sharing one Redis: a job started on one is polled, and
/// cancelled, through the other.
#[tokio::test]
async fn job_started_on_one_replica_is_polled_and_cancelled_on_another_through_redis() {
    let one = TestApp::with_redis().await;
    one.deploy("demo", "report-builder", "report_builder.wasm")
        .await;
    // A replica: the same database and key (a page's endId is signed with it).
    let two = TestApp::replica_of(&one).await;
    let end_id = format!("redis-{}", std::process::id());
    let (job, _) = start(&one, &end_id, 0).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut progressed = false;
    let answer = loop {
        assert!(Instant::now() < deadline, "the job never finished");
        let reply = poll(&two, &end_id, &job).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let body = reply.json();
        progressed |= body["progress"]["bar.value"].is_string();
        if body.get("response").is_some() {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    };
    assert!(progressed, "replica two saw replica one's progress");
    assert_eq!(
        answer["response"]["status"]["children"],
        "Report 1 is ready: 12 sections."
    );
    // Cancel through replica two; replica one stops the job.
    let (job, _) = start(&one, &end_id, 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cancel = json!({
        "output": "cancel.id",
        "outputs": {"id": "cancel", "property": "id"},
        "inputs": [{"id": "cancel", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["cancel.n_clicks"]
    });
    let reply = two
        .post_json(
            &format!("{REPORT}?endId={}&cancelJob={job}", page(&two, &end_id)),
            cancel.to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let cancelled_at = Instant::now();
    loop {
        let reply = poll(&one, &end_id, &job).await;
        if reply.status == StatusCode::NO_CONTENT {
            break;
        }
        assert!(
            reply.json().get("response").is_none(),
            "a cancelled job answered"
        );
        assert!(
            cancelled_at.elapsed() < Duration::from_secs(2),
            "not stopped in 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
