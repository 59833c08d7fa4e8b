//! Many apps on one host (issue 16): a never-used app's first request finds its compiled
//! code by hash, and a loaded app nobody uses is dropped. The benchmark is
//! `scripts/bench-density.sh` (tests/src/bin/density.rs).

use std::time::Duration;

use axum::http::StatusCode;
use platform::runtime::Runtime;
use serde_json::json;

use crate::support::TestApp;

fn greet_body(name: &str) -> String {
    json!({
        "output": "greeting.children",
        "outputs": {"id": "greeting", "property": "children"},
        "inputs": [{"id": "name", "property": "value", "value": name}],
        "changedPropIds": ["name.value"]
    })
    .to_string()
}

async fn greet(app: &TestApp, tenant: &str, name: &str) {
    let reply = app
        .post_json(
            &format!("/apps/{tenant}/{name}/_dash-update-component"),
            greet_body(name),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(
        reply.text().contains(&format!("Hello, {name}!")),
        "{}",
        reply.text()
    );
}

#[tokio::test]
async fn never_used_apps_load_by_hash_without_reading_their_component() {
    let app = TestApp::new().await.with_own_component_cache().await;
    let names = ["one", "two", "three", "four"];
    for name in names {
        app.deploy("dense", name, "hello.wasm").await;
    }
    let runtime = &app.state.runtime;
    let (loads, reads) = (runtime.loads_started(), runtime.component_reads());

    // The deploys compiled the component into the disk cache: the first load finds it
    // there, the others share its code in memory. No load reads the component.
    greet(&app, "dense", "one").await;
    greet(&app, "dense", "two").await;
    assert_eq!(
        runtime.loads_started(),
        loads + 2,
        "each app is loaded once"
    );
    assert_eq!(
        runtime.component_reads(),
        reads,
        "the compiled code was found by the version's hash"
    );

    // Without the artifact on disk and with no app of that code loaded, the load reads
    // the component from the store and compiles it, once; the next app shares that code.
    let cleared = runtime
        .sandbox()
        .prune_disk_cache(|_| false, Duration::ZERO)
        .expect("prune");
    assert!(cleared.removed_files > 0, "{cleared:?}");
    let other = TestApp::replica_of(&app).await;
    let (loads, reads) = (
        other.state.runtime.loads_started(),
        other.state.runtime.component_reads(),
    );
    greet(&other, "dense", "three").await;
    greet(&other, "dense", "four").await;
    assert_eq!(other.state.runtime.loads_started(), loads + 2);
    assert_eq!(
        other.state.runtime.component_reads(),
        reads + 1,
        "one read: the code of the first load is shared with the second"
    );
}

fn slug(s: &str) -> platform::ids::Slug {
    platform::ids::Slug::parse(s).expect("slug")
}

#[tokio::test]
async fn a_loaded_app_idle_past_the_limit_is_dropped_when_another_loads() {
    let app = TestApp::new().await;
    for name in ["one", "two"] {
        app.deploy("dense", name, "hello.wasm").await;
    }
    let runtime = |idle: Duration| {
        Runtime::new(
            app.state.runtime.sandbox().clone(),
            app.state.store.clone(),
            app.state.secrets.clone(),
            app.state.config.limits.to_sandbox(),
        )
        .with_idle_drop(idle)
    };
    let (tenant, one, two) = (slug("dense"), slug("one"), slug("two"));

    // Every entry is idle past a zero limit: loading "two" drops "one".
    let forgetful = runtime(Duration::ZERO);
    let held = forgetful
        .live(&tenant, &one)
        .await
        .expect("loads")
        .expect("live");
    assert_eq!(forgetful.loaded_apps(), 1);
    forgetful
        .live(&tenant, &two)
        .await
        .expect("loads")
        .expect("live");
    assert_eq!(forgetful.loaded_apps(), 1, "the idle app was dropped");
    // A request holding the dropped version still has it; the next request loads again.
    assert_eq!(held.version.number, 1);
    forgetful
        .live(&tenant, &one)
        .await
        .expect("loads")
        .expect("live");
    assert_eq!(forgetful.loads_started(), 3);

    // The server's limit keeps apps used within it.
    let server = runtime(Runtime::IDLE_DROP);
    server
        .live(&tenant, &one)
        .await
        .expect("loads")
        .expect("live");
    server
        .live(&tenant, &two)
        .await
        .expect("loads")
        .expect("live");
    server
        .live(&tenant, &one)
        .await
        .expect("cached")
        .expect("live");
    assert_eq!(server.loaded_apps(), 2);
    assert_eq!(server.loads_started(), 2);
}
