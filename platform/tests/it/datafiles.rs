//! Data files shipped with a version (issue 14): a pushed `data/` folder reaches the guest
//! at `/data` and through `read-data` (copied from the database, not from the push), a
//! push that changes only code stores no new blob, a symbolic link in `data/` is refused by
//! name with the live version untouched, a folder over the storage quota is refused with
//! nothing lost, pruned versions take their blobs with them, and `tessera deploy --data`.
//! On SQLite and PostgreSQL (`TESSERA_TEST_POSTGRES_URL`).

use std::net::SocketAddr;
use std::path::Path;

use axum::http::StatusCode;
use platform::admin;
use platform::appdata::DataFile;
use platform::deploy::Shipped;
use platform::ids::Slug;
use platform::store::testing::TestDatabase;
use platform::store::{Change, Quotas};
use serde_json::Value;

use crate::git::{git, ok, stderr};
use crate::support::{TestApp, guest_wasm, hostile_request, tessera_command};

fn op() -> Change<'static> {
    use platform::clock::Clock;
    Change {
        actor: "test",
        remote_addr: None,
        at: platform::clock::SystemClock.now_millis(),
    }
}

fn slug(s: &str) -> Slug {
    Slug::parse(s).expect("slug")
}

/// `app` served on a socket, with tenant `acme` and an author's token.
async fn serve_acme(app: &TestApp) -> (SocketAddr, String) {
    let store = &app.state.store;
    store
        .ensure_tenant(&slug("acme"), op().at)
        .await
        .expect("tenant");
    admin::create_user(store, "alice@example.org", None, false, &op())
        .await
        .expect("user");
    admin::grant(store, "alice@example.org", "acme", "author", &op())
        .await
        .expect("grant");
    let token = admin::create_token(store, "alice@example.org", "acme", None, 1, &op())
        .await
        .expect("token")
        .token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let router = platform::http::router(app.state.clone());
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    (address, token)
}

/// What the hostile guest's `read` callback saw: each attempt's `{"ok"}` or `{"err"}`.
async fn guest_reads(app: &TestApp, tenant: &str, name: &str) -> Value {
    let reply = app
        .post_json(
            &format!("/apps/{tenant}/{name}/_dash-update-component"),
            hostile_request("dataread"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()["response"]["dataread"]["children"].clone()
}

/// The hostile guest with a custom section appended: other code, same behaviour.
fn hostile_variant(note: &[u8]) -> Vec<u8> {
    let mut wasm = guest_wasm("guest_hostile.wasm");
    let name = b"note";
    let size = u8::try_from(1 + name.len() + note.len()).expect("small");
    wasm.extend([0, size, u8::try_from(name.len()).expect("small")]);
    wasm.extend(name);
    wasm.extend(note);
    wasm
}

/// Remove the server's local copies of data folders, so the next load must copy them
/// from the database (they are read-only: make them writable first).
fn forget_local_copies(data_dir: &Path) {
    fn writable(dir: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for entry in std::fs::read_dir(dir).expect("ls").flatten() {
            if entry.file_type().expect("type").is_dir() {
                writable(&entry.path());
            }
        }
    }
    let root = data_dir.join("appdata");
    if root.exists() {
        writable(&root);
        std::fs::remove_dir_all(&root).expect("rm appdata");
    }
}

async fn live_number(app: &TestApp, name: &str) -> i64 {
    app.state
        .store
        .live_version(&slug("acme"), &slug(name))
        .await
        .expect("query")
        .expect("live")
        .number
}

async fn usage(app: &TestApp, tenant: &str) -> (i64, i64) {
    let tenant = app
        .state
        .store
        .tenant_by_slug(&slug(tenant))
        .await
        .expect("query")
        .expect("tenant");
    app.state.store.data_usage(tenant.id).await.expect("usage")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_data_folder_reaches_the_guest_and_unchanged_files_add_no_blob() {
    use std::os::unix::fs::symlink;
    for db in TestDatabase::all().await.expect("databases") {
        let backend = db.backend;
        let app = TestApp::on(db).await;
        let (address, token) = serve_acme(&app).await;
        let url = format!("http://git:{token}@{address}/git/acme/files.git");
        let scratch = tempfile::tempdir().expect("tempdir");
        let (home, work) = (scratch.path().join("home"), scratch.path().join("work"));
        std::fs::create_dir_all(&home).expect("home");
        std::fs::create_dir_all(work.join("data/sub")).expect("work");
        ok(
            &home,
            &work,
            &["init", "--quiet", "--initial-branch", "main"],
        )
        .await;
        std::fs::write(
            work.join("tessera.toml"),
            "kind = \"wasm\"\ncomponent = \"app.wasm\"\nvisibility = \"public\"\n",
        )
        .expect("toml");
        std::fs::write(work.join("app.wasm"), hostile_variant(b"1")).expect("wasm");
        std::fs::write(work.join("data/hello.txt"), "hello from data/").expect("data");
        std::fs::write(work.join("data/sub/nested.txt"), "nested").expect("data");
        ok(&home, &work, &["add", "-A"]).await;
        ok(&home, &work, &["commit", "--quiet", "-m", "with data"]).await;
        let log = stderr(&ok(&home, &work, &["push", &url, "main"]).await);
        assert!(
            log.contains("data folder data/: 2 files, 22 bytes"),
            "{log}"
        );
        assert!(log.contains("deployed version 1"), "{log}");
        assert_eq!(usage(&app, "acme").await, (2, 22), "{backend:?}");

        // The server's copy is gone: loading the version again (the push loaded it once,
        // as a server that has not served it yet would) copies the folder from the
        // database.
        forget_local_copies(&app.state.config.data_dir);
        app.state
            .runtime
            .preload(&slug("acme"), &slug("files"))
            .await
            .expect("the version loads again");
        let seen = guest_reads(&app, "acme", "files").await;
        assert_eq!(seen["host:hello.txt"]["ok"], "hello from data/", "{seen}");
        assert_eq!(seen["host:sub/nested.txt"]["ok"], "nested", "{seen}");
        assert_eq!(
            seen["fs:/data/hello.txt"]["ok"], "hello from data/",
            "{seen}"
        );
        assert_eq!(seen["fs:/data/sub/nested.txt"]["ok"], "nested", "{seen}");
        for escape in [
            "host:../secret.txt",
            "fs:/data/../secret.txt",
            "fs:/etc/hostname",
        ] {
            assert!(seen[escape]["err"].is_string(), "{escape}: {seen}");
        }
        assert!(seen["fs-write:/data/new.txt"]["err"].is_string(), "{seen}");

        // Only the code changes: a new version, no new blob.
        std::fs::write(work.join("app.wasm"), hostile_variant(b"2")).expect("wasm");
        ok(&home, &work, &["commit", "--quiet", "-am", "code only"]).await;
        let log = stderr(&ok(&home, &work, &["push", &url, "main"]).await);
        assert!(log.contains("deployed version 2"), "{log}");
        assert_eq!(
            usage(&app, "acme").await,
            (2, 22),
            "{backend:?}: no new blob"
        );
        let seen = guest_reads(&app, "acme", "files").await;
        assert_eq!(seen["host:hello.txt"]["ok"], "hello from data/", "{seen}");

        // One file changes: one new blob; the guest reads the new bytes.
        std::fs::write(work.join("data/hello.txt"), "hello again").expect("data");
        ok(&home, &work, &["commit", "--quiet", "-am", "new data"]).await;
        let log = stderr(&ok(&home, &work, &["push", &url, "main"]).await);
        assert!(log.contains("deployed version 3"), "{log}");
        assert_eq!(usage(&app, "acme").await, (3, 22 + 11), "{backend:?}");
        // Within a second every server loads the new version (Runtime::REFRESH).
        tokio::time::sleep(platform::runtime::Runtime::REFRESH).await;
        let seen = guest_reads(&app, "acme", "files").await;
        assert_eq!(seen["host:hello.txt"]["ok"], "hello again", "{seen}");

        // A link in data/ (to the platform's key, or inside the folder): refused by
        // name, nothing stored, version 3 still serving.
        let key = app.state.config.data_dir.join("secret.key");
        for (link, target) in [
            ("data/sub/key.csv", key.to_string_lossy().into_owned()),
            ("data/inner.txt", "hello.txt".to_owned()),
        ] {
            symlink(&target, work.join(link)).expect("link");
            ok(&home, &work, &["add", "-A"]).await;
            ok(&home, &work, &["commit", "--quiet", "-m", "a link"]).await;
            let refused = git(&home, &work, &["push", &url, "main"]).await;
            let log = stderr(&refused);
            assert!(!refused.status.success(), "{log}");
            assert!(
                log.contains(&format!("data file \"{link}\" is a symbolic link")),
                "{link}: {log}"
            );
            assert_eq!(live_number(&app, "files").await, 3, "{backend:?}");
            assert_eq!(usage(&app, "acme").await, (3, 33));
            std::fs::remove_file(work.join(link)).expect("rm");
            ok(&home, &work, &["add", "-A"]).await;
            ok(&home, &work, &["commit", "--quiet", "-m", "no link"]).await;
        }
        let seen = guest_reads(&app, "acme", "files").await;
        assert_eq!(seen["host:hello.txt"]["ok"], "hello again", "{seen}");
    }
}

fn files(list: &[(&str, &[u8])]) -> Vec<DataFile> {
    list.iter()
        .map(|(path, bytes)| DataFile {
            path: (*path).to_owned(),
            bytes: bytes.to_vec(),
        })
        .collect()
}

async fn deploy_files(
    app: &TestApp,
    tenant: &str,
    name: &str,
    component: Vec<u8>,
    data: Vec<DataFile>,
) -> Result<platform::deploy::Deployed, String> {
    let shipped = Shipped {
        assets: Vec::new(),
        data,
    };
    app.state
        .deployer()
        .deploy_with_files(
            &slug(tenant),
            &slug(name),
            component,
            shipped,
            "test",
            1,
            false,
        )
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_data_folder_over_the_storage_quota_is_refused_and_nothing_is_lost() {
    for db in TestDatabase::all().await.expect("databases") {
        let backend = db.backend;
        let app = TestApp::on(db).await;
        let wasm = hostile_variant(b"q");
        let size = i64::try_from(wasm.len()).expect("size");
        let tenant = admin::create_tenant(&app.state.store, "tight", None, None, &op())
            .await
            .expect("tenant");
        // Room for two components and a few KiB of data.
        let quotas = Quotas {
            max_version_storage_bytes: 2 * size + 4096,
            ..Quotas::DEFAULT
        };
        app.state
            .store
            .set_quotas(tenant.id, &quotas, &op())
            .await
            .expect("quotas");
        deploy_files(
            &app,
            "tight",
            "reader",
            wasm.clone(),
            files(&[("hello.txt", b"small")]),
        )
        .await
        .expect("the first version fits");
        let big = vec![b'x'; 8192];
        let refused = deploy_files(
            &app,
            "tight",
            "reader",
            hostile_variant(b"r"),
            files(&[("hello.txt", b"small"), ("big.csv", &big)]),
        )
        .await
        .expect_err("over the quota");
        assert!(
            refused.contains("over its quota") && refused.contains("8192 bytes of new data files"),
            "{backend:?}: {refused}"
        );
        assert_eq!(
            usage(&app, "tight").await,
            (1, 5),
            "{backend:?}: nothing stored"
        );
        let live = app
            .state
            .store
            .live_version(&slug("tight"), &slug("reader"))
            .await
            .expect("q")
            .expect("live");
        assert_eq!(live.number, 1);
        let seen = guest_reads(&app, "tight", "reader").await;
        assert_eq!(seen["host:hello.txt"]["ok"], "small", "{seen}");

        // The same bytes a second time are not new: a version sharing them fits.
        deploy_files(
            &app,
            "tight",
            "reader",
            hostile_variant(b"s"),
            files(&[("again.txt", b"small")]),
        )
        .await
        .expect("shared blob fits");
        assert_eq!(usage(&app, "tight").await, (1, 5), "{backend:?}");
    }
}

#[tokio::test]
async fn pruned_versions_take_their_unshared_blobs_with_them() {
    let app = TestApp::keeping_versions(2).await;
    let deploy = |note: &'static [u8], data: Vec<DataFile>| {
        let app = &app;
        async move {
            deploy_files(app, "acme", "reader", hostile_variant(note), data)
                .await
                .expect("deploy")
        }
    };
    deploy(
        b"1",
        files(&[("shared.txt", b"shared"), ("one.txt", b"one")]),
    )
    .await;
    deploy(
        b"2",
        files(&[("shared.txt", b"shared"), ("two.txt", b"two")]),
    )
    .await;
    assert_eq!(usage(&app, "acme").await, (3, 12));
    // Version 1 is pruned: its own blob goes, the shared one stays.
    deploy(b"3", files(&[("shared.txt", b"shared")])).await;
    assert_eq!(usage(&app, "acme").await, (2, 9));
    deploy(b"4", Vec::new()).await;
    assert_eq!(
        usage(&app, "acme").await,
        (1, 6),
        "version 3 still ships shared.txt"
    );
    deploy(b"5", Vec::new()).await;
    assert_eq!(usage(&app, "acme").await, (0, 0));
    // The copies on disk no version uses are swept.
    let removed = app
        .state
        .runtime
        .sweep_app_data(std::time::Duration::ZERO)
        .await
        .expect("sweep");
    assert!(removed >= 3, "{removed}");
}

#[tokio::test]
async fn tessera_deploy_ships_a_data_folder_and_refuses_a_link_in_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("server");
    std::fs::create_dir_all(&data_dir).expect("mkdir");
    let wasm = dir.path().join("hostile.wasm");
    std::fs::write(&wasm, guest_wasm("guest_hostile.wasm")).expect("write");
    let folder = dir.path().join("my-data");
    std::fs::create_dir_all(folder.join("sub")).expect("mkdir");
    std::fs::write(folder.join("hello.txt"), "from the CLI").expect("write");
    std::fs::write(folder.join("sub/nested.txt"), "nested").expect("write");
    let run = |extra: &[&str]| {
        let mut command = tessera_command(&data_dir);
        command.args(["deploy", "acme/cli", wasm.to_str().expect("utf-8")]);
        command.args(extra);
        let output = command.output().expect("tessera runs");
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    let (deployed, text) = run(&["--data", folder.to_str().expect("utf-8")]);
    assert!(deployed, "{text}");
    assert!(text.contains("version 1"), "{text}");

    symlink_in(&folder);
    let (deployed, text) = run(&["--data", folder.to_str().expect("utf-8")]);
    assert!(!deployed, "{text}");
    assert!(text.contains("\"escape.txt\" is a symbolic link"), "{text}");

    let url = format!("sqlite://{}", data_dir.join("tessera.db").display());
    let store = platform::store::Store::connect(&url).await.expect("store");
    let live = store
        .live_version(&slug("acme"), &slug("cli"))
        .await
        .expect("q")
        .expect("live");
    assert_eq!(live.number, 1, "the refused deploy changed nothing");
    let manifest = store
        .version_data(live.app_id, live.version_id)
        .await
        .expect("manifest");
    let paths: Vec<&str> = manifest.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(paths, ["hello.txt", "sub/nested.txt"]);
    let blob = store
        .data_blob(live.tenant_id, &manifest[0].sha256)
        .await
        .expect("blob");
    assert_eq!(blob, b"from the CLI");
    store.close().await;
}

fn symlink_in(folder: &Path) {
    std::os::unix::fs::symlink("/etc/passwd", folder.join("escape.txt")).expect("link");
}

/// The report builder example reads `data/sales.csv` with the SDK's `Frame` inside the
/// sandbox: deployed as the demo deploys it, its summary callback answers with the CSV's
/// revenue grouped by region.
#[tokio::test]
async fn the_report_builder_summarises_its_shipped_csv_in_the_sandbox() {
    let app = TestApp::new().await;
    let folder = crate::support::repo_root().join("examples/report-builder/data");
    let data = platform::appdata::read_dir(&folder, ".").expect("the example's data folder");
    deploy_files(
        &app,
        "demo",
        "report-builder",
        guest_wasm("report_builder.wasm"),
        data,
    )
    .await
    .expect("deploy");
    let body = serde_json::json!({
        "output": "..sales-chart.figure...sales-table.data..",
        "outputs": [
            {"id": "sales-chart", "property": "figure"},
            {"id": "sales-table", "property": "data"}
        ],
        "inputs": [{"id": "dimension", "property": "value", "value": "region"}],
        "changedPropIds": ["dimension.value"]
    });
    let reply = app
        .post_json(
            "/apps/demo/report-builder/_dash-update-component",
            body.to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let answer = reply.json();
    let rows = answer["response"]["sales-table"]["data"]
        .as_array()
        .expect("table rows")
        .clone();
    assert_eq!(rows.len(), 4, "{answer}");
    let csv = std::fs::read_to_string(folder.join("sales.csv")).expect("csv");
    let expected: f64 = csv
        .lines()
        .skip(1)
        .map(|line| {
            line.rsplit(',')
                .next()
                .expect("revenue")
                .parse::<f64>()
                .expect("number")
        })
        .sum();
    let total: f64 = rows
        .iter()
        .map(|row| row["revenue_sum"].as_f64().expect("revenue"))
        .sum();
    assert!((total - expected).abs() < 1e-6, "{total} vs {expected}");
    let bars = &answer["response"]["sales-chart"]["figure"]["data"][0]["x"];
    assert_eq!(bars.as_array().map(Vec::len), Some(4), "{answer}");
}
