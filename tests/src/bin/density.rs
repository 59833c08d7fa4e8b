//! Density (issue 16): many apps deployed on one host, through the real deploy path
//! (`tessera deploy` of a prebuilt component, one process per deploy, as an operator or a CI
//! job runs it), while a real `tessera serve` runs on the same data directory.
//!
//! ```text
//! scripts/bench-density.sh --scale small     # 200 apps, about a minute
//! scripts/bench-density.sh                   # --scale full: 10,000 apps
//! density --apps 2000 --variants 20 --report-only
//! ```
//!
//! The apps are spread over tenants of `--per-tenant` apps (100: the default `max_apps`
//! quota), each app the hello example or, with `--variants V`, one of V copies of it that
//! differ by a custom section (so V distinct component hashes: V compilations, V
//! artifacts). Measured:
//!
//! - the wall time of each of the first 10 and the last 10 deploys (run one at a time; the
//!   ones between run `--jobs` at a time);
//! - the server's resident memory (`VmRSS`) when empty, idle after the deploys, after the
//!   sampled first callbacks, and again after a restart on the full database;
//! - the first callback of never-used apps (`--sample` of them, spread over the whole
//!   range, one at a time): the latency of the app's very first request, a greeting
//!   callback, which loads the app; then its second (warm) callback;
//! - the database's and the compiled-artifact cache's size on disk.
//!
//! Verdict (without `--report-only`): every deploy and every sampled callback succeeded and
//! the idle server's resident memory stayed within the issue's 1 GiB. Latencies and the
//! deploy-time ratio are printed, never asserted. The run refuses to start when the
//! database it would write (each tenant's components once, a few KiB per app) would leave
//! less than 15 GiB free, and stops deploying after `--max-minutes` (60; the full scale's
//! 10,000 deploys take about 25 minutes at the 7 per second of a loaded 2-core machine).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ::tests::server::{Failure, Logs, Tessera, error_code, free_port, percentile, rss_mib};
use anyhow::{Context, bail, ensure};
use tokio::process::Child;

/// Kept of the server's log over the run; the rest is counted.
const LOG_CAP_BYTES: u64 = 16 << 20;
/// The issue's target for the idle server's resident memory with 10,000 apps.
const IDLE_RSS_TARGET_MIB: u64 = 1024;
/// Free space the run must leave on the disk it writes to.
const KEEP_FREE_BYTES: u64 = 15 << 30;
/// Deploys timed one at a time at each end.
const TIMED: usize = 10;
/// How long the server is left alone before its idle memory is read.
const SETTLE: Duration = Duration::from_secs(3);

#[derive(Clone, Debug)]
struct Options {
    apps: usize,
    per_tenant: usize,
    variants: usize,
    sample: usize,
    jobs: usize,
    max_minutes: u64,
    report_only: bool,
    keep: bool,
    tessera: PathBuf,
    guests: PathBuf,
}

fn parse_options() -> anyhow::Result<Options> {
    let (_, target) = ::tests::server::repo_and_target()?;
    let mut options = Options {
        apps: 200,
        per_tenant: 100,
        variants: 1,
        sample: 50,
        jobs: 2,
        max_minutes: 60,
        report_only: false,
        keep: false,
        tessera: target.join("release/tessera"),
        guests: target.join("wasm32-wasip2/guest"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        let number = |text: String| -> anyhow::Result<usize> {
            text.parse()
                .with_context(|| format!("{text:?} is not a number"))
        };
        match arg.as_str() {
            "--scale" => match value()?.as_str() {
                "small" => {
                    options.apps = 200;
                    options.sample = 50;
                }
                "full" => {
                    options.apps = 10_000;
                    options.sample = 200;
                }
                other => bail!("--scale is small or full, not {other:?}"),
            },
            "--apps" => options.apps = number(value()?)?,
            "--per-tenant" => options.per_tenant = number(value()?)?,
            "--variants" => options.variants = number(value()?)?,
            "--sample" => options.sample = number(value()?)?,
            "--jobs" => options.jobs = number(value()?)?,
            "--max-minutes" => options.max_minutes = number(value()?)? as u64,
            "--report-only" => options.report_only = true,
            "--keep" => options.keep = true,
            "--tessera" => options.tessera = value()?.into(),
            "--guests" => options.guests = value()?.into(),
            "-h" | "--help" => {
                println!(
                    "density [--scale small|full] [--apps N] [--per-tenant N] [--variants V] \
                     [--sample K] [--jobs J] [--max-minutes M] [--report-only] [--keep] \
                     [--tessera PATH] [--guests DIR]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    ensure!(
        options.apps >= 2 * TIMED,
        "--apps must be at least {}",
        2 * TIMED
    );
    ensure!(
        (1..=100).contains(&options.per_tenant),
        "--per-tenant is 1 to 100 (the default max_apps quota)"
    );
    ensure!(
        options.variants >= 1 && options.jobs >= 1 && options.sample >= 1,
        "--variants, --jobs and --sample are at least 1"
    );
    options.sample = options.sample.min(options.apps / 2);
    Ok(options)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    ensure!(
        options.tessera.exists(),
        "{} is missing: cargo build --release -p platform --bin tessera",
        options.tessera.display()
    );
    let hello_path = options.guests.join("hello.wasm");
    let hello = std::fs::read(&hello_path).with_context(|| {
        format!(
            "{} is missing: scripts/build-guests.sh hello",
            hello_path.display()
        )
    })?;
    let scratch = tempfile::Builder::new()
        .prefix("tessera-density.")
        .tempdir()?;
    let root = if options.keep {
        scratch.keep()
    } else {
        scratch.path().to_path_buf()
    };
    // The database holds each tenant's distinct components once and a few KiB per app:
    // refuse a run that would fill the disk.
    let tenants = options.apps.div_ceil(options.per_tenant) as u64;
    let per_tenant = options.variants.min(options.per_tenant) as u64;
    let needed =
        hello.len() as u64 * per_tenant * tenants + (16 << 10) * options.apps as u64 + (1 << 30);
    let free = free_bytes(&root)?;
    ensure!(
        free >= needed + KEEP_FREE_BYTES,
        "{} apps need about {} MiB on the disk of {}, which has {} MiB free: \
         it must keep {} MiB free",
        options.apps,
        needed >> 20,
        root.display(),
        free >> 20,
        KEEP_FREE_BYTES >> 20
    );
    let run = Arc::new(Run::set_up(&options, &root, &hello).await?);
    let report = run.clone().measure().await;
    run.logs_note();
    let report = report?;
    println!("{}", report.text);
    if report.failures.is_empty() {
        println!("density: every check passed");
        return Ok(());
    }
    for failure in &report.failures {
        println!("FAIL {failure}");
    }
    if options.report_only {
        println!(
            "density: {} checks failed (--report-only)",
            report.failures.len()
        );
        Ok(())
    } else {
        bail!("{} density checks failed", report.failures.len())
    }
}

/// Free bytes on the file system of `dir` (`df`, so no unsafe `statvfs` here).
fn free_bytes(dir: &Path) -> anyhow::Result<u64> {
    let output = std::process::Command::new("df")
        .args(["-Pk"])
        .arg(dir)
        .output()
        .context("running df")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let kib: u64 = text
        .lines()
        .nth(1)
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|field| field.parse().ok())
        .with_context(|| format!("df printed {text:?}"))?;
    Ok(kib << 10)
}

/// Bytes of the files under `path` (0 when missing).
fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| disk_usage(&entry.path()))
                .sum()
        })
        .unwrap_or(0)
}

/// `bytes` with a custom section appended that names `variant`: a valid component with
/// another hash (a custom section may end a component).
fn variant_of(component: &[u8], variant: usize) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"tessera-density-variant";
    let payload = variant.to_string();
    let mut body = Vec::new();
    leb128(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(payload.as_bytes());
    let mut out = component.to_vec();
    out.push(0);
    leb128(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Where app `index` lives.
fn place(options: &Options, index: usize) -> (String, String) {
    (
        format!("dense-{:03}", index / options.per_tenant),
        format!("app-{:03}", index % options.per_tenant),
    )
}

struct Run {
    options: Options,
    data: PathBuf,
    tessera: Tessera,
    logs: Arc<Logs>,
    /// The component file of each variant.
    components: Vec<String>,
}

/// A running server.
struct Server {
    child: Child,
    pid: u32,
    address: SocketAddr,
    client: reqwest::Client,
}

struct Report {
    text: String,
    failures: Vec<String>,
}

impl Run {
    async fn set_up(options: &Options, root: &Path, hello: &[u8]) -> anyhow::Result<Run> {
        let data = root.join("data");
        std::fs::create_dir_all(&data)?;
        let components_dir = root.join("components");
        std::fs::create_dir_all(&components_dir)?;
        let mut components = Vec::new();
        for variant in 0..options.variants {
            let path = components_dir.join(format!("hello-{variant}.wasm"));
            let bytes = match variant {
                0 => hello.to_vec(),
                n => variant_of(hello, n),
            };
            std::fs::write(&path, bytes)?;
            components.push(path.to_string_lossy().into_owned());
        }
        let run = Run {
            options: options.clone(),
            tessera: Tessera::new(&options.tessera, &data),
            data,
            logs: Logs::create(root.join("server.log"), LOG_CAP_BYTES).await?,
            components,
        };
        let owner = "owner@example.org";
        run.tessera.cli(&["admin", "create-user", owner]).await?;
        let tenants = options.apps.div_ceil(options.per_tenant);
        for tenant in 0..tenants {
            let (slug, _) = place(options, tenant * options.per_tenant);
            run.tessera
                .cli(&["admin", "create-tenant", &slug, "--owner", owner])
                .await?;
        }
        Ok(run)
    }

    fn logs_note(&self) {
        println!(
            "server log: {} bytes written, the first {} kept in {}",
            self.logs.written(),
            self.logs.cap(),
            self.logs.path.display()
        );
    }

    async fn serve(&self) -> anyhow::Result<Server> {
        let address: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let mut command = self.tessera.command();
        command
            .args(["serve", "--listen", &address.to_string()])
            .env("RUST_LOG", "warn");
        let child = Tessera::start(
            command,
            address,
            &self.logs,
            Duration::from_secs(60),
            "tessera serve",
        )
        .await?;
        let pid = child.id().context("the server has a pid")?;
        let tenants = self.options.apps.div_ceil(self.options.per_tenant);
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(4);
        for tenant in 0..tenants {
            let (slug, _) = place(&self.options, tenant * self.options.per_tenant);
            builder = builder.resolve(&format!("{slug}.localhost"), address);
        }
        Ok(Server {
            child,
            pid,
            address,
            client: builder.build()?,
        })
    }

    /// `tessera deploy` of app `index`; its wall time.
    async fn deploy(&self, index: usize) -> anyhow::Result<Duration> {
        let (tenant, app) = place(&self.options, index);
        let component = &self.components[index % self.components.len()];
        let started = Instant::now();
        self.tessera
            .cli(&[
                "deploy",
                &format!("{tenant}/{app}"),
                component,
                "--visibility",
                "public",
            ])
            .await?;
        Ok(started.elapsed())
    }

    /// Deploys `range` with `jobs` at a time, printing progress.
    async fn deploy_many(
        self: &Arc<Self>,
        range: std::ops::Range<usize>,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let next = Arc::new(AtomicUsize::new(range.start));
        let began = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..self.options.jobs {
            let (run, next, start, end) = (self.clone(), next.clone(), range.start, range.end);
            workers.push(tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= end {
                        return Ok::<(), anyhow::Error>(());
                    }
                    ensure!(
                        Instant::now() < deadline,
                        "deploying stopped at app {index}: over --max-minutes {}",
                        run.options.max_minutes
                    );
                    run.deploy(index).await?;
                    if (index + 1) % 500 == 0 {
                        let done = index + 1 - start;
                        println!(
                            "density: {} apps deployed ({:.1} deploys/s, load {})",
                            index + 1,
                            done as f64 / began.elapsed().as_secs_f64(),
                            ::tests::server::load_average()
                        );
                    }
                }
            }));
        }
        for worker in workers {
            worker.await??;
        }
        Ok(())
    }

    async fn measure(self: Arc<Self>) -> anyhow::Result<Report> {
        let run = self;
        let options = &run.options;
        let mut text = String::new();
        let mut failures = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(options.max_minutes * 60);

        let mut server = run.serve().await?;
        tokio::time::sleep(SETTLE).await;
        let rss_empty = rss_mib(server.pid);

        // The first ten, one at a time; the bulk; the last ten, one at a time.
        let began = Instant::now();
        let mut first = Vec::new();
        for index in 0..TIMED {
            first.push(run.deploy(index).await?);
        }
        run.deploy_many(TIMED..options.apps - TIMED, deadline)
            .await?;
        let mut last = Vec::new();
        for index in options.apps - TIMED..options.apps {
            last.push(run.deploy(index).await?);
        }
        let deploying = began.elapsed();

        tokio::time::sleep(SETTLE).await;
        let rss_deployed = rss_mib(server.pid);
        let spread = options.apps / options.sample;
        let sample_a: Vec<usize> = (0..options.sample).map(|j| j * spread).collect();
        let calls_a = first_callbacks(&run, &server, &sample_a).await;
        tokio::time::sleep(SETTLE).await;
        let rss_sampled = rss_mib(server.pid);
        ::tests::server::stop(&mut server.child, Duration::from_secs(10)).await;

        // A restart on the full database: nothing loaded, no compiled code in memory.
        let mut fresh = run.serve().await?;
        tokio::time::sleep(SETTLE).await;
        let rss_fresh = rss_mib(fresh.pid);
        let sample_b: Vec<usize> = (0..options.sample)
            .map(|j| (j * spread + spread / 2).min(options.apps - 1))
            .filter(|i| !sample_a.contains(i))
            .collect();
        let calls_b = first_callbacks(&run, &fresh, &sample_b).await;
        tokio::time::sleep(SETTLE).await;
        let rss_fresh_sampled = rss_mib(fresh.pid);
        // The home page's gallery as an anonymous visitor sees it (the public apps), and a
        // search that matches none of them.
        let mut pages = Vec::new();
        for path in ["/", "/?q=no-such-app"] {
            pages.push((path, home_page(&fresh, path).await));
        }
        ::tests::server::stop(&mut fresh.child, Duration::from_secs(10)).await;

        let database = disk_usage(&run.data.join("tessera.db"))
            + disk_usage(&run.data.join("tessera.db-wal"))
            + disk_usage(&run.data.join("tessera.db-shm"));
        let cache = disk_usage(&run.data.join("component-cache"));
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mean = |v: &[Duration]| v.iter().map(|d| ms(*d)).sum::<f64>() / v.len().max(1) as f64;
        let sorted = |v: &[Duration]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        let (first_sorted, last_sorted) = (sorted(&first), sorted(&last));
        let p = |v: &[Duration], q: f64| percentile(v, q).map_or(f64::NAN, ms);
        writeln!(
            text,
            "\ndensity: {} apps in {} tenants ({} per tenant), {} distinct components of {} bytes, \
             {} deploys at a time; load average at the end {}",
            options.apps,
            options.apps.div_ceil(options.per_tenant),
            options.per_tenant,
            options.variants,
            std::fs::metadata(&run.components[0]).map_or(0, |m| m.len()),
            options.jobs,
            ::tests::server::load_average()
        )?;
        writeln!(
            text,
            "| measure | value |\n|---|---|\n\
             | deploys, all | {:.0} s ({:.1} per second) |\n\
             | deploy, first {TIMED} (one at a time): mean / median | {:.0} ms / {:.0} ms |\n\
             | deploy, last {TIMED} (one at a time): mean / median | {:.0} ms / {:.0} ms |\n\
             | last / first (medians) | {:.2} |",
            deploying.as_secs_f64(),
            options.apps as f64 / deploying.as_secs_f64(),
            mean(&first),
            p(&first_sorted, 0.5),
            mean(&last),
            p(&last_sorted, 0.5),
            p(&last_sorted, 0.5) / p(&first_sorted, 0.5),
        )?;
        writeln!(
            text,
            "| server RSS: empty / after the deploys / after {} first callbacks | {rss_empty} / {rss_deployed} / {rss_sampled} MiB |\n\
             | server RSS after a restart: idle / after {} first callbacks | {rss_fresh} / {rss_fresh_sampled} MiB |",
            calls_a.first.len(),
            calls_b.first.len(),
        )?;
        for (label, calls) in [("up during the deploys", &calls_a), ("restarted", &calls_b)] {
            writeln!(
                text,
                "| first callback of a never-used app, server {label}: p50 / p99 / max ({} apps) | {:.2} / {:.2} / {:.2} ms |\n\
                 | its second callback: p50 / p99 | {:.2} / {:.2} ms |",
                calls.first.len(),
                p(&calls.first, 0.5),
                p(&calls.first, 0.99),
                calls.first.last().map_or(f64::NAN, |d| ms(*d)),
                p(&calls.warm, 0.5),
                p(&calls.warm, 0.99),
            )?;
        }
        for (path, (status, took)) in &pages {
            writeln!(
                text,
                "| `GET {path}` (home page, anonymous), median of 3 | {status}, {:.1} ms |",
                ms(*took)
            )?;
        }
        writeln!(
            text,
            "| on disk: database / compiled-artifact cache | {} MiB ({} KiB per app) / {} KiB |",
            database >> 20,
            (database >> 10) / options.apps as u64,
            cache >> 10
        )?;
        for calls in [&calls_a, &calls_b] {
            if !calls.errors.is_empty() {
                failures.push(format!(
                    "{} first callbacks failed: {}",
                    calls.errors.len(),
                    calls.errors.join("; ")
                ));
            }
        }
        for (when, rss) in [
            ("after the deploys", rss_deployed),
            ("after a restart", rss_fresh),
        ] {
            if rss > IDLE_RSS_TARGET_MIB {
                failures.push(format!(
                    "the idle server's resident memory {when} is {rss} MiB, over {IDLE_RSS_TARGET_MIB} MiB"
                ));
            }
        }
        Ok(Report { text, failures })
    }
}

/// The status of `GET path` on the platform origin and the median time of three.
async fn home_page(server: &Server, path: &str) -> (u16, Duration) {
    let url = format!("http://{}{path}", server.address);
    let mut times = Vec::new();
    let mut status = 0;
    for _ in 0..3 {
        let started = Instant::now();
        status = match server.client.get(&url).send().await {
            Ok(reply) => {
                let status = reply.status().as_u16();
                let _ = reply.bytes().await;
                status
            }
            Err(_) => 0,
        };
        times.push(started.elapsed());
    }
    times.sort();
    (status, times[1])
}

/// Latencies of the sampled apps' first and second callbacks (sorted), and the failures.
struct Calls {
    first: Vec<Duration>,
    warm: Vec<Duration>,
    errors: Vec<String>,
}

/// The first callback of each app of `sample` (none was ever used), one at a time, then
/// its second.
async fn first_callbacks(run: &Run, server: &Server, sample: &[usize]) -> Calls {
    let mut calls = Calls {
        first: Vec::new(),
        warm: Vec::new(),
        errors: Vec::new(),
    };
    for &index in sample {
        let (tenant, app) = place(&run.options, index);
        let url = format!(
            "http://{tenant}.localhost:{}/apps/{tenant}/{app}/_dash-update-component",
            server.address.port()
        );
        for round in 0..2 {
            let started = Instant::now();
            let outcome = ::tests::server::hello(&server.client, &url, "density").await;
            let took = started.elapsed();
            match outcome {
                Ok(()) if round == 0 => calls.first.push(took),
                Ok(()) => calls.warm.push(took),
                Err(failure) => {
                    let error = match failure {
                        Failure::Status(status, text) => format!("{status} {}", error_code(&text)),
                        Failure::Timeout => "timeout".to_owned(),
                        Failure::Connection(e) => format!("connection: {e}"),
                    };
                    if calls.errors.len() < 20 {
                        calls.errors.push(format!("{tenant}/{app}: {error}"));
                    }
                }
            }
        }
    }
    calls.first.sort();
    calls.warm.sort();
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variant_is_the_component_with_a_custom_section_at_the_end() {
        let component = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];
        let variant = variant_of(&component, 7);
        assert_eq!(&variant[..8], &component);
        // Section id 0 (custom), its size, the name's length and the name, the payload.
        let name = b"tessera-density-variant";
        assert_eq!(variant[8], 0);
        assert_eq!(usize::from(variant[9]), 1 + name.len() + 1);
        assert_eq!(usize::from(variant[10]), name.len());
        assert_eq!(&variant[11..11 + name.len()], name);
        assert_eq!(variant.last(), Some(&b'7'));
        assert_ne!(variant_of(&component, 1), variant_of(&component, 2));
    }

    #[test]
    fn apps_fill_tenants_in_order() {
        let options = Options {
            apps: 250,
            per_tenant: 100,
            variants: 1,
            sample: 10,
            jobs: 1,
            max_minutes: 1,
            report_only: true,
            keep: false,
            tessera: PathBuf::new(),
            guests: PathBuf::new(),
        };
        assert_eq!(place(&options, 0), ("dense-000".into(), "app-000".into()));
        assert_eq!(place(&options, 199), ("dense-001".into(), "app-099".into()));
        assert_eq!(place(&options, 249), ("dense-002".into(), "app-049".into()));
    }
}
