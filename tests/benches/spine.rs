//! The spine benchmark: what one Dash callback costs inside the sandbox, from compiling the
//! component to a warm call, next to the very same callback code run natively.
//!
//! ```text
//! scripts/build-guests.sh hello sales-explorer
//! cargo bench -p tests --bench spine
//! ```
//!
//! It measures, on one thread:
//! * **compile**: `Sandbox::load` in a fresh sandbox (nothing cached, so wasmtime compiles the
//!   component), minus a second `load` of the same bytes that shares the compiled code;
//! * **instantiate**: a call on a fresh instance (`idle_instances_per_component = 0`, so
//!   every call instantiates) minus a warm call, for `hello`, whose app is trivial; and the
//!   cold call of the sales explorer, which also generates its 100,000 rows;
//! * **warm calls** of the sales explorer's `summary.children` and `revenue-chart.figure`
//!   callbacks in wasm, and of the chart natively through `sales_explorer::app()`; the
//!   wasm/native ratio is the sandbox's overhead on real work.
//!
//! Regions rotate through all eight, so no two consecutive calls compute the same thing.
//! Every wasm answer is checked against the native answer for the same request first.
//! `SPINE_SCALE` (default 1) multiplies the iteration counts.

use sandbox::{ArtifactSource, Component, LoadOptions, Outcome, Sandbox, SandboxConfig};
use serde_json::json;
use std::error::Error;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

type BenchResult<T = ()> = Result<T, Box<dyn Error>>;

const REGIONS: [&str; 8] = [
    "North",
    "South",
    "East",
    "West",
    "Central",
    "Northeast",
    "Southwest",
    "Pacific",
];

const SUMMARY: &str = "summary.children";
const CHART: &str = "revenue-chart.figure";
const GREETING: &str = "greeting.children";

fn summary_request(region: &str) -> String {
    json!({
        "outputs": [{"id": "summary", "property": "children"}],
        "inputs": [{"id": "region", "property": "value", "value": region}],
        "state": [],
        "changed_prop_ids": ["region.value"],
    })
    .to_string()
}

fn chart_request(region: &str) -> String {
    json!({
        "outputs": [{"id": "revenue-chart", "property": "figure"}],
        "inputs": [
            {"id": "region", "property": "value", "value": region},
            {"id": "year", "property": "value", "value": [2015, 2024]},
        ],
        "state": [],
        "changed_prop_ids": ["region.value"],
    })
    .to_string()
}

fn greeting_request(name: &str) -> String {
    json!({
        "outputs": [{"id": "greeting", "property": "children"}],
        "inputs": [{"id": "name", "property": "value", "value": name}],
        "state": [],
        "changed_prop_ids": ["name.value"],
    })
    .to_string()
}

/// The requests of one callback, one per region (or name), built before timing starts.
struct Requests {
    id: &'static str,
    bodies: Vec<String>,
}

impl Requests {
    fn regions(id: &'static str, build: fn(&str) -> String) -> Requests {
        Requests {
            id,
            bodies: REGIONS.iter().map(|region| build(region)).collect(),
        }
    }

    fn greetings() -> Requests {
        Requests {
            id: GREETING,
            bodies: [
                "Ada", "Grace", "Edsger", "Barbara", "Alan", "Frances", "Donald", "Niklaus",
            ]
            .iter()
            .map(|name| greeting_request(name))
            .collect(),
        }
    }

    fn body(&self, i: usize) -> &str {
        &self.bodies[i % self.bodies.len()]
    }
}

/// Where scripts/build-guests.sh leaves the components.
fn guest_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("wasm32-wasip2/guest")
}

fn read_guest(file: &str) -> BenchResult<Vec<u8>> {
    let path = guest_dir().join(file);
    std::fs::read(&path).map_err(|e| {
        format!(
            "cannot read {} ({e}); build the guests first: scripts/build-guests.sh hello sales-explorer",
            path.display()
        )
        .into()
    })
}

fn outputs(outcome: Outcome) -> BenchResult<String> {
    match outcome {
        Outcome::Outputs(json) => Ok(json),
        Outcome::PreventUpdate => Err("the callback answered PreventUpdate".into()),
    }
}

fn call(component: &Component, id: &str, body: &str) -> BenchResult<String> {
    outputs(component.call(id, body)?.outcome)
}

fn native(app: &sdk::App, id: &str, body: &str) -> BenchResult<String> {
    match app.run_callback(id, body)? {
        sdk::Outcome::Outputs(json) => Ok(json),
        sdk::Outcome::PreventUpdate => Err("the native callback answered PreventUpdate".into()),
    }
}

/// Sorted durations of one measurement.
struct Sample(Vec<Duration>);

impl Sample {
    fn collect(n: usize, mut run: impl FnMut(usize) -> BenchResult) -> BenchResult<Sample> {
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let started = Instant::now();
            run(i)?;
            times.push(started.elapsed());
        }
        times.sort();
        Ok(Sample(times))
    }

    fn percentile(&self, p: f64) -> Duration {
        // Nearest rank: the smallest value with at least p% of the sample at or below it.
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    fn p50(&self) -> Duration {
        self.percentile(50.0)
    }

    fn p99(&self) -> Duration {
        self.percentile(99.0)
    }
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.1} µs")
    }
}

/// `a - b`, or zero when noise makes b the larger.
fn minus(a: Duration, b: Duration) -> Duration {
    a.saturating_sub(b)
}

struct Table {
    rows: Vec<[String; 4]>,
}

impl Table {
    fn sample(&mut self, what: &str, s: &Sample) {
        self.rows.push([
            what.to_string(),
            s.0.len().to_string(),
            fmt(s.p50()),
            fmt(s.p99()),
        ]);
    }

    fn derived(&mut self, what: &str, value: String) {
        self.rows
            .push([what.to_string(), String::new(), value, String::new()]);
    }

    fn print(&self) {
        let head = ["measure", "n", "p50", "p99"];
        let width = self
            .rows
            .iter()
            .map(|r| r[0].chars().count())
            .chain([head[0].len()])
            .max()
            .unwrap_or(0);
        println!(
            "  {:<width$}  {:>6}  {:>10}  {:>10}",
            head[0], head[1], head[2], head[3]
        );
        for [what, n, p50, p99] in &self.rows {
            println!("  {what:<width$}  {n:>6}  {p50:>10}  {p99:>10}");
        }
    }
}

/// Loads `wasm` in `runs` fresh sandboxes: the cold load (compile + first instance + statics)
/// and a second load sharing the compiled code (first instance + statics only).
fn compile(wasm: &[u8], runs: usize) -> BenchResult<(Sample, Sample)> {
    let mut cold = Vec::new();
    let mut shared = Vec::new();
    for _ in 0..runs {
        let sandbox = Sandbox::new(SandboxConfig::default())?;
        let started = Instant::now();
        let first = sandbox.load(wasm, LoadOptions::default())?;
        cold.push(started.elapsed());
        if first.artifact_source() != ArtifactSource::Compiled {
            return Err("a fresh sandbox did not compile the component".into());
        }
        let started = Instant::now();
        let second = sandbox.load(wasm, LoadOptions::default())?;
        shared.push(started.elapsed());
        if second.artifact_source() != ArtifactSource::Memory {
            return Err("the second load did not share the compiled code".into());
        }
        drop((first, second));
    }
    cold.sort();
    shared.sort();
    Ok((Sample(cold), Sample(shared)))
}

fn main() -> BenchResult {
    // `cargo bench` passes --bench; there are no other options.
    let scale: usize = std::env::var("SPINE_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&s| s > 0)
        .unwrap_or(1);
    let sales_wasm = read_guest("sales_explorer.wasm")?;
    let hello_wasm = read_guest("hello.wasm")?;

    let summaries = Requests::regions(SUMMARY, summary_request);
    let charts = Requests::regions(CHART, chart_request);
    let greetings = Requests::greetings();

    let warm_sandbox = Sandbox::new(SandboxConfig::default())?;
    let sales = warm_sandbox.load(&sales_wasm, LoadOptions::default())?;
    let hello = warm_sandbox.load(&hello_wasm, LoadOptions::default())?;
    let native_sales = sales_explorer::app();
    let native_hello = hello::app();

    // Correctness first: the sandbox must answer exactly what the same code answers natively.
    for requests in [&summaries, &charts] {
        for body in &requests.bodies {
            let wasm = call(&sales, requests.id, body)?;
            let here = native(&native_sales, requests.id, body)?;
            if wasm != here {
                return Err(format!(
                    "{} answers differently in wasm and natively for {body}:\n wasm:   {:.200}\n native: {:.200}",
                    requests.id, wasm, here
                )
                .into());
            }
        }
    }
    let pacific = call(&sales, SUMMARY, &summary_request("Pacific"))?;
    if !pacific.contains("Pacific: ") {
        return Err(format!("unexpected summary for Pacific: {pacific}").into());
    }

    println!(
        "\nspine: sales_explorer.wasm {} KiB, hello.wasm {} KiB; one thread; times per operation",
        sales_wasm.len() / 1024,
        hello_wasm.len() / 1024
    );
    let mut table = Table { rows: Vec::new() };

    // Compile and load.
    let (sales_cold, sales_shared) = compile(&sales_wasm, 3 * scale)?;
    table.sample(
        "sales_explorer: load, cold (compile + instantiate + statics)",
        &sales_cold,
    );
    table.sample("sales_explorer: load, compiled code shared", &sales_shared);
    table.derived(
        "  => compile sales_explorer.wasm (p50 difference)",
        fmt(minus(sales_cold.p50(), sales_shared.p50())),
    );
    let (hello_cold, hello_shared) = compile(&hello_wasm, 3 * scale)?;
    table.sample("hello: load, cold", &hello_cold);
    table.sample("hello: load, compiled code shared", &hello_shared);
    table.derived(
        "  => compile hello.wasm (p50 difference)",
        fmt(minus(hello_cold.p50(), hello_shared.p50())),
    );

    // Fresh instances: with no idle instance kept, every call instantiates.
    let fresh_sandbox = Sandbox::new(SandboxConfig {
        idle_instances_per_component: 0,
        ..SandboxConfig::default()
    })?;
    let fresh_hello = fresh_sandbox.load(&hello_wasm, LoadOptions::default())?;
    let fresh_sales = fresh_sandbox.load(&sales_wasm, LoadOptions::default())?;
    for i in 0..5 {
        call(&fresh_hello, GREETING, greetings.body(i))?;
    }
    let hello_fresh = Sample::collect(200 * scale, |i| {
        black_box(call(&fresh_hello, GREETING, greetings.body(i))?);
        Ok(())
    })?;
    for i in 0..20 {
        call(&hello, GREETING, greetings.body(i))?;
    }
    let hello_warm = Sample::collect(2000 * scale, |i| {
        black_box(call(&hello, GREETING, greetings.body(i))?);
        Ok(())
    })?;
    table.sample("hello: call on a fresh instance", &hello_fresh);
    table.sample("hello: call on a warm instance", &hello_warm);
    table.derived(
        "  => instantiate (fresh - warm, p50)",
        fmt(minus(hello_fresh.p50(), hello_warm.p50())),
    );
    let sales_fresh = Sample::collect(20 * scale, |i| {
        black_box(call(&fresh_sales, SUMMARY, summaries.body(i))?);
        Ok(())
    })?;
    table.sample(
        "sales_explorer: summary on a fresh instance (+100k rows)",
        &sales_fresh,
    );

    // Warm calls in wasm.
    for i in 0..50 {
        call(&sales, SUMMARY, summaries.body(i))?;
        call(&sales, CHART, charts.body(i))?;
    }
    let summary_wasm = Sample::collect(5000 * scale, |i| {
        black_box(call(&sales, SUMMARY, summaries.body(i))?);
        Ok(())
    })?;
    let chart_wasm = Sample::collect(400 * scale, |i| {
        black_box(call(&sales, CHART, charts.body(i))?);
        Ok(())
    })?;
    table.sample("summary.children, warm (wasm)", &summary_wasm);
    table.sample("revenue-chart.figure, warm (wasm)", &chart_wasm);

    // The same callbacks natively.
    for i in 0..50 {
        native(&native_sales, SUMMARY, summaries.body(i))?;
        native(&native_sales, CHART, charts.body(i))?;
        native(&native_hello, GREETING, greetings.body(i))?;
    }
    let summary_native = Sample::collect(5000 * scale, |i| {
        black_box(native(&native_sales, SUMMARY, summaries.body(i))?);
        Ok(())
    })?;
    let chart_native = Sample::collect(400 * scale, |i| {
        black_box(native(&native_sales, CHART, charts.body(i))?);
        Ok(())
    })?;
    table.sample("summary.children (native)", &summary_native);
    table.sample("revenue-chart.figure (native)", &chart_native);
    let ratio = |wasm: &Sample, native: &Sample| {
        format!(
            "{:.2}x",
            wasm.p50().as_secs_f64() / native.p50().as_secs_f64().max(1e-9)
        )
    };
    table.derived(
        "  => chart wasm/native (p50 ratio)",
        ratio(&chart_wasm, &chart_native),
    );
    table.derived(
        "  => summary wasm/native (p50 ratio)",
        ratio(&summary_wasm, &summary_native),
    );
    table.print();
    Ok(())
}
