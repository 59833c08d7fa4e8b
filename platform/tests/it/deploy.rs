//! Deploys: a refused component leaves the live version serving.

use axum::http::StatusCode;
use platform::deploy::Error as DeployError;
use platform::ids::Slug;

use crate::support::{TestApp, guest_wasm};

async fn live_number(app: &TestApp) -> Option<i64> {
    let tenant = Slug::parse("demo").expect("slug");
    let name = Slug::parse("hello").expect("slug");
    app.state
        .store
        .live_version(&tenant, &name)
        .await
        .expect("query")
        .map(|v| v.number)
}

async fn try_deploy(app: &TestApp, bytes: Vec<u8>) -> Result<(), DeployError> {
    let tenant = Slug::parse("demo").expect("slug");
    let name = Slug::parse("hello").expect("slug");
    app.state
        .deployer()
        .deploy(&tenant, &name, bytes, "test", 2, false)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn refused_components_leave_the_live_version_serving() {
    let app = TestApp::new().await;
    app.deploy("demo", "hello", "hello.wasm").await;
    assert_eq!(live_number(&app).await, Some(1));

    let not_wasm = try_deploy(&app, b"definitely not a component".to_vec()).await;
    assert!(
        matches!(not_wasm, Err(DeployError::Refused(_))),
        "{not_wasm:?}"
    );

    let sockets = try_deploy(&app, guest_wasm("guest_sockets.wasm")).await;
    let message = format!("{}", sockets.as_ref().expect_err("sockets refused"));
    assert!(message.contains("wasi:sockets"), "{message}");

    let mut config_limited = app.state.deployer();
    config_limited.max_component_bytes = 1024;
    let tenant = Slug::parse("demo").expect("slug");
    let name = Slug::parse("hello").expect("slug");
    let too_big = config_limited
        .deploy(&tenant, &name, guest_wasm("hello.wasm"), "test", 3, false)
        .await;
    assert!(
        matches!(too_big, Err(DeployError::TooLarge { .. })),
        "{too_big:?}"
    );

    assert_eq!(live_number(&app).await, Some(1), "the live version moved");
    let reply = app.get("/apps/demo/hello/_dash-layout").await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn a_new_version_is_served_after_a_deploy() {
    let app = TestApp::new().await;
    app.deploy("demo", "hello", "hello.wasm").await;
    assert!(
        app.get("/apps/demo/hello/")
            .await
            .text()
            .contains("<title>Hello</title>")
    );
    // Replace hello with the sales explorer under the same name: after the refresh
    // interval the new version is what the app serves.
    app.deploy("demo", "hello", "sales_explorer.wasm").await;
    assert_eq!(live_number(&app).await, Some(2));
    tokio::time::sleep(platform::runtime::Runtime::REFRESH).await;
    assert!(
        app.get("/apps/demo/hello/")
            .await
            .text()
            .contains("<title>Sales explorer</title>")
    );
}
