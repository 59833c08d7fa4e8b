//! The WebSocket-viewers benchmark (issue 15): N viewers of the live-orders example hold
//! a `_dash-ws-callback` connection each to a real `tessera serve` and ask for one update a
//! second over it (the `stream-clock` WebSocket callback, as the page's button sends it).
//!
//! ```text
//! cargo build --release --workspace --bins && scripts/build-guests.sh live-orders
//! target/release/ws_viewers --viewers 1000 --seconds 30     # or scripts/bench-ws.sh
//! ```
//!
//! Reports the server's resident memory per open connection (after all are open, minus
//! before, the app already loaded by a warm-up viewer), the update latency (request sent →
//! answer received, p50/p99/max), the server's CPU time per second of the run, and the
//! failures (refused connections, error answers, answers that did not come within 10 s).
//! A benchmark, not a test: nothing is asserted and it is not run in CI; figures go to
//! docs/benchmarks.md.
//!
//! It raises its own open-file limit (inherited by the server it starts) to 2N + slack
//! when the hard limit allows (N + slack per process at least), opens the connections at
//! most [`CONNECTING`] at a time so the server's accept backlog is not overrun, drives
//! them from a two-thread runtime with small client buffers, and prints a few summary
//! lines whatever N is.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Handshakes in progress at once while the viewers connect.
const CONNECTING: usize = 64;

/// Open files the driver wants: two per viewer (its socket, and the server's, which
/// inherits the limit) plus what each process holds besides.
fn wanted_files(viewers: usize) -> u64 {
    2 * viewers as u64 + 1024
}

/// Open files each process cannot do without: the limit is per process, so one socket per
/// viewer plus slack.
fn needed_files(viewers: usize) -> u64 {
    viewers as u64 + 1024
}

/// Raises this process's soft open-file limit towards `wanted` (the server started from
/// here inherits it), as far as the hard limit allows, or fails when even `needed` is out
/// of reach.
fn raise_file_limit(wanted: u64, needed: u64) -> anyhow::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    ensure!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0,
        "getrlimit failed"
    );
    if limit.rlim_cur >= wanted {
        return Ok(());
    }
    ensure!(
        limit.rlim_max >= needed,
        "{needed} open files are needed per process but the hard limit is {} (raise it, e.g. ulimit -Hn)",
        limit.rlim_max
    );
    limit.rlim_cur = wanted.min(limit.rlim_max);
    // SAFETY: as above; the new soft limit is within the hard one.
    ensure!(
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0,
        "setrlimit failed"
    );
    Ok(())
}

/// Small client buffers: N viewers in one process must not cost N × 256 KiB.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 << 10)
        .write_buffer_size(0)
}

struct Options {
    viewers: usize,
    seconds: u64,
    tessera: PathBuf,
    component: PathBuf,
}

fn options() -> anyhow::Result<Options> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut options = Options {
        viewers: 100,
        seconds: 20,
        tessera: repo.join("target/release/tessera"),
        component: repo.join("target/wasm32-wasip2/guest/live_orders.wasm"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--viewers" => options.viewers = value.parse()?,
            "--seconds" => options.seconds = value.parse()?,
            "--tessera" => options.tessera = value.into(),
            "--component" => options.component = value.into(),
            other => bail!(
                "unknown flag {other} (--viewers N --seconds S --tessera PATH --component PATH)"
            ),
        }
    }
    ensure!(
        options.viewers > 0 && options.seconds > 0,
        "viewers and seconds must be positive"
    );
    Ok(options)
}

/// `(resident KiB, CPU ticks)` of a process.
fn usage(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("VmRSS")?
        .parse()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at `state`.
    let rest = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok((rss, ticks))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn request(request_id: &str, clicks: u64) -> String {
    json!({
        "type": "callback_request",
        "rendererId": "bench",
        "requestId": request_id,
        "payload": {
            "output": "stream-clock.children",
            "outputs": {"id": "stream-clock", "property": "children"},
            "inputs": [{"id": "stream-ping", "property": "n_clicks", "value": clicks}],
            "changedPropIds": ["stream-ping.n_clicks"],
        }
    })
    .to_string()
}

#[derive(Default)]
struct Counters {
    refused: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    answers: AtomicU64,
    /// What the answers that were not `ok` said (status and message), counted: the run
    /// prints them so a failure is explained, not only counted.
    not_ok: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Counters {
    fn not_ok(&self, answer: &Value) {
        let payload = &answer["payload"];
        let key = format!(
            "{}: {}",
            payload["status"].as_str().unwrap_or("(no status)"),
            payload["message"].as_str().unwrap_or("")
        );
        // Messages carry no request ids, so the map stays as small as the kinds of refusal.
        let mut not_ok = self.not_ok.lock().expect("counter lock");
        *not_ok.entry(key).or_default() += 1;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    raise_file_limit(wanted_files(options.viewers), needed_files(options.viewers))?;
    let data = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = data.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            // A generous compile limit: the benchmark often runs on a busy machine.
            "[limits]\nwebsocket_connections = {}\ncompile_secs = 600\n",
            options.viewers + 16
        ),
    )?;
    let deploy = Command::new(&options.tessera)
        .args(["deploy", "bench/live"])
        .arg(&options.component)
        .args(["--visibility", "public"])
        .env("TESSERA_DATA_DIR", data.path())
        .env("TESSERA_CONFIG", &config)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .with_context(|| format!("running {}", options.tessera.display()))?;
    ensure!(
        deploy.status.success(),
        "deploy failed: {}",
        // Bounded: only the end of what the deploy said.
        String::from_utf8_lossy(&deploy.stderr[deploy.stderr.len().saturating_sub(2000)..])
    );
    let mut server = Command::new(&options.tessera)
        .args(["serve", "--listen", &address.to_string()])
        .env("TESSERA_DATA_DIR", data.path())
        .env("TESSERA_CONFIG", &config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = server.id().context("pid")?;
    let started = Instant::now();
    while TcpStream::connect(address).await.is_err() {
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the server did not start"
        );
        if let Some(status) = server.try_wait()? {
            bail!("tessera serve exited ({status})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let host = format!("bench.localhost:{port}");
    let origin = format!("http://{host}");
    let url = format!("ws://{host}/apps/bench/live/_dash-ws-callback");

    let connect = |address: SocketAddr| {
        let url = url.clone();
        let origin = origin.clone();
        async move {
            let mut request = url.as_str().into_client_request()?;
            request.headers_mut().insert("origin", origin.parse()?);
            let stream = TcpStream::connect(address).await?;
            let (socket, _) =
                tokio_tungstenite::client_async_with_config(request, stream, Some(client_config()))
                    .await?;
            anyhow::Ok(socket)
        }
    };

    // Warm: one viewer's first request loads the app, outside the measured window.
    let mut warm = connect(address).await.context("the warm-up viewer")?;
    warm.send(Message::text(request("warm", 1))).await?;
    let warmed = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(Ok(Message::Text(text))) = warm.next().await {
            if text.as_str().contains(r#""requestId":"warm""#) {
                return true;
            }
        }
        false
    })
    .await;
    ensure!(
        matches!(warmed, Ok(true)),
        "the warm-up request got no answer"
    );
    warm.close(None).await.ok();
    drop(warm);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_before, _) = usage(pid)?;
    let counters = Arc::new(Counters::default());
    let connecting = Instant::now();
    let opened: Vec<_> = futures_util::stream::iter(0..options.viewers)
        .map(|_| connect(address))
        .buffer_unordered(CONNECTING)
        .collect()
        .await;
    let mut sockets = Vec::with_capacity(options.viewers);
    for socket in opened {
        match socket {
            Ok(socket) => sockets.push(socket),
            Err(_) => {
                counters.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let connect_seconds = connecting.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_open, ticks_before) = usage(pid)?;
    let open = sockets.len();
    println!(
        "ws_viewers: {open} of {} connections open in {connect_seconds:.1} s; server RSS {} KiB before, {} KiB with them",
        options.viewers, rss_before, rss_open
    );

    let run = Duration::from_secs(options.seconds);
    let run_started = Instant::now();
    let viewers = sockets.len();
    let mut tasks = Vec::with_capacity(viewers);
    for (index, mut socket) in sockets.into_iter().enumerate() {
        let counters = counters.clone();
        // Spread the viewers over the second, as independent pages are.
        let offset = Duration::from_micros(1_000_000 * index as u64 / viewers.max(1) as u64);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + offset,
                Duration::from_secs(1),
            );
            let mut n = 0u64;
            while run_started.elapsed() < run {
                tick.tick().await;
                n += 1;
                let id = format!("v{index}-{n}");
                let sent = Instant::now();
                if socket.send(Message::text(request(&id, n))).await.is_err() {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                let answer = tokio::time::timeout(Duration::from_secs(10), async {
                    while let Some(Ok(Message::Text(text))) = socket.next().await {
                        let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                            continue;
                        };
                        if value["requestId"] == id.as_str() {
                            return Some(value);
                        }
                    }
                    None
                })
                .await;
                match answer {
                    Ok(Some(value)) if value["payload"]["status"] == "ok" => {
                        latencies.push(sent.elapsed().as_micros() as u64);
                        counters.answers.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Some(value)) => {
                        counters.not_ok(&value);
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(None) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        counters.timeouts.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await?);
    }
    let wall = run_started.elapsed().as_secs_f64();
    let (_, ticks_after) = usage(pid)?;
    // The kernel's clock ticks are 100 a second on Linux.
    let cpu_seconds = (ticks_after - ticks_before) as f64 / 100.0;
    latencies.sort_unstable();
    let per_connection = (rss_open.saturating_sub(rss_before)) as f64 / open.max(1) as f64;
    println!(
        "ws_viewers: viewers={open} seconds={wall:.1} answers={} errors={} timeouts={} refused={}",
        counters.answers.load(Ordering::Relaxed),
        counters.errors.load(Ordering::Relaxed),
        counters.timeouts.load(Ordering::Relaxed),
        counters.refused.load(Ordering::Relaxed),
    );
    for (answer, count) in counters.not_ok.lock().expect("counter lock").iter() {
        println!("ws_viewers: {count} answers {answer}");
    }
    println!(
        "ws_viewers: memory per connection {per_connection:.1} KiB; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; server CPU {:.2} core-seconds per second ({:.0} %)",
        percentile(&latencies, 0.5) as f64 / 1000.0,
        percentile(&latencies, 0.99) as f64 / 1000.0,
        latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
        cpu_seconds / wall,
        100.0 * cpu_seconds / wall,
    );
    server.kill().await.ok();
    Ok(())
}
