//! Replicas behind a real load balancer (issue 16): three `tessera serve` web replicas and a
//! builder on one PostgreSQL database and one Redis, behind HAProxy or nginx run with the
//! shipped `deploy/haproxy.cfg` / `deploy/nginx.conf` (only their ports swapped), under a
//! steady callback load while
//!
//! 1. a replica is SIGKILLed and restarted,
//! 2. another is drained (SIGTERM: `/readyz` turns 503, in-flight requests finish) and
//!    restarted as an upgrade,
//! 3. an app is pushed with `git push` through the load balancer (a web replica forwards
//!    it to the builder) and its new version must serve on every web replica,
//! 4. Redis is stopped for a while, then started again.
//!
//! ```text
//! scripts/bench-lb.sh --scale small     # what scripts/test.sh runs (both balancers)
//! scripts/bench-lb.sh                   # --scale full: the documented benchmark
//! lb --lb haproxy --scale full --report-only
//! ```
//!
//! Verdict (without `--report-only`): no failed request but those in flight at the kill
//! (started before it, answered after it); memoized answers are shared across replicas
//! through Redis before the outage and again after it (cache hits resume); the pushed
//! version serves through every web replica. Rates and latencies are printed, never asserted.
//! Needs `TESSERA_TEST_POSTGRES_URL` (a fresh database is made and dropped), `redis-server`
//! (its own, on a free port: the run stops it), `haproxy`, `nginx`, `git`, `psql`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::tests::server::{Failure, Logs, Tessera, free_port, get_status};
use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// Shared by every replica (sessions and sealed secrets must open on each); base64 of 32
/// bytes, for this run only.
const SECRET_KEY: &str = "dGVzc2VyYS1sYi1iZW5jaC1zaGFyZWQta2V5LTMyYiE=";
/// Kept of all logs (replicas, balancer, Redis) together; the rest is counted.
const LOG_CAP_BYTES: u64 = 16 << 20;
/// `/readyz` answers 503 this long after SIGTERM before the listener closes: above the
/// balancer's check (`inter 1s fall 2`).
const DRAIN_SECS: u64 = 3;
/// Most request records kept (a full run stays well below).
const MAX_RECORDS: usize = 2_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Balancer {
    Haproxy,
    Nginx,
}

#[derive(Clone, Copy, Debug)]
struct Plan {
    clients: usize,
    /// Load before the first event and after each.
    settle: Duration,
    /// How long Redis stays stopped.
    redis_down: Duration,
}

impl Plan {
    fn of(full: bool) -> Plan {
        match full {
            false => Plan {
                clients: 8,
                settle: Duration::from_secs(3),
                redis_down: Duration::from_secs(3),
            },
            true => Plan {
                clients: 32,
                settle: Duration::from_secs(10),
                redis_down: Duration::from_secs(10),
            },
        }
    }
}

struct Options {
    balancers: Vec<Balancer>,
    full: bool,
    report_only: bool,
    tessera: PathBuf,
    guests: PathBuf,
    repo: PathBuf,
}

fn parse_options() -> anyhow::Result<Options> {
    let (repo, target) = ::tests::server::repo_and_target()?;
    let mut options = Options {
        balancers: vec![Balancer::Haproxy, Balancer::Nginx],
        full: true,
        report_only: false,
        tessera: target.join("release/tessera"),
        guests: target.join("wasm32-wasip2/guest"),
        repo,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--scale" => {
                options.full = match value()?.as_str() {
                    "small" => false,
                    "full" => true,
                    other => bail!("--scale is small or full, not {other:?}"),
                }
            }
            "--lb" => {
                options.balancers = match value()?.as_str() {
                    "haproxy" => vec![Balancer::Haproxy],
                    "nginx" => vec![Balancer::Nginx],
                    "both" => vec![Balancer::Haproxy, Balancer::Nginx],
                    other => bail!("--lb is haproxy, nginx or both, not {other:?}"),
                }
            }
            "--report-only" => options.report_only = true,
            "--tessera" => options.tessera = value()?.into(),
            "--guests" => options.guests = value()?.into(),
            "-h" | "--help" => {
                println!(
                    "lb [--lb haproxy|nginx|both] [--scale small|full] [--report-only] [--tessera PATH] [--guests DIR]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(options)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    let postgres = std::env::var("TESSERA_TEST_POSTGRES_URL").context(
        "TESSERA_TEST_POSTGRES_URL is not set: the replicas share a PostgreSQL database",
    )?;
    for tool in ["redis-server", "haproxy", "nginx", "git", "psql"] {
        ensure!(
            which(tool).is_some(),
            "{tool} is not installed (scripts/setup.sh --test installs it)"
        );
    }
    ensure!(
        options.tessera.exists(),
        "{} is missing: cargo build --release -p platform --bin tessera",
        options.tessera.display()
    );
    let plan = Plan::of(options.full);
    let mut failures = Vec::new();
    let mut reports = Vec::new();
    for &balancer in &options.balancers {
        let scratch = tempfile::Builder::new().prefix("tessera-lb.").tempdir()?;
        let run = Run::set_up(&options, &postgres, balancer, scratch.path()).await?;
        let outcome = run.exercise(plan).await;
        run.tear_down().await;
        let report = outcome?;
        println!("{}", report.text);
        failures.extend(report.failures.iter().map(|f| format!("{balancer:?}: {f}")));
        reports.push(report);
    }
    if failures.is_empty() {
        println!("lb: every check passed");
        return Ok(());
    }
    for failure in &failures {
        println!("FAIL {failure}");
    }
    if options.report_only {
        println!("lb: {} checks failed (--report-only)", failures.len());
        Ok(())
    } else {
        bail!("{} load-balancer checks failed", failures.len())
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(tool))
        .find(|path| path.is_file())
}

/// One replica: its port, data directory and (while it runs) its process.
struct Replica {
    name: &'static str,
    port: u16,
    role: &'static str,
    data: PathBuf,
    child: Option<Child>,
}

/// Everything one balancer's run starts.
struct Run {
    balancer: Balancer,
    root: PathBuf,
    tessera: Tessera,
    guests: PathBuf,
    postgres_admin: String,
    database: String,
    redis_port: u16,
    redis: Mutex<Option<Child>>,
    lb_port: u16,
    lb: Option<Child>,
    replicas: tokio::sync::Mutex<Vec<Replica>>,
    builder: Replica,
    logs: Arc<Logs>,
    token: String,
}

impl Run {
    async fn set_up(
        options: &Options,
        postgres: &str,
        balancer: Balancer,
        root: &Path,
    ) -> anyhow::Result<Run> {
        let database = format!("tessera_lb_{}_{:?}", std::process::id(), balancer).to_lowercase();
        let (base, _) = postgres
            .rsplit_once('/')
            .context("TESSERA_TEST_POSTGRES_URL ends in a database name")?;
        let database_url = format!("{base}/{database}");
        psql(postgres, &format!("create database {database}")).await?;
        let logs = Logs::create(root.join("run.log"), LOG_CAP_BYTES).await?;
        let lb_port = free_port()?;
        let replica = |name: &'static str, role: &'static str| -> anyhow::Result<Replica> {
            Ok(Replica {
                name,
                port: free_port()?,
                role,
                data: root.join(name),
                child: None,
            })
        };
        let replicas = vec![
            replica("web1", "web")?,
            replica("web2", "web")?,
            replica("web3", "web")?,
        ];
        let mut run = Run {
            balancer,
            root: root.to_path_buf(),
            tessera: Tessera::new(&options.tessera, &root.join("cli"))
                .with_env("TESSERA_DATABASE_URL", &database_url)
                .with_env("TESSERA_SECRET_KEY", SECRET_KEY),
            guests: options.guests.clone(),
            postgres_admin: postgres.to_owned(),
            database,
            redis_port: free_port()?,
            redis: Mutex::new(None),
            lb_port,
            lb: None,
            replicas: tokio::sync::Mutex::new(replicas),
            builder: replica("builder", "builder")?,
            logs,
            token: String::new(),
        };
        run.start_redis()?;
        run.cli(&["admin", "create-user", "ops@example.org"])
            .await?;
        run.cli(&[
            "admin",
            "create-tenant",
            "demo",
            "--owner",
            "ops@example.org",
        ])
        .await?;
        run.token = run
            .cli(&[
                "admin",
                "token",
                "create",
                "ops@example.org",
                "--tenant",
                "demo",
            ])
            .await?
            .trim()
            .to_owned();
        for (app, file) in [("hello", "hello.wasm"), ("memo", "guest_memo.wasm")] {
            let path = run.guests.join(file);
            ensure!(
                path.exists(),
                "{} is missing: scripts/build-guests.sh hello guest-memo",
                path.display()
            );
            run.cli(&[
                "deploy",
                &format!("demo/{app}"),
                &path.to_string_lossy(),
                "--visibility",
                "public",
            ])
            .await?;
        }
        let mut builder = std::mem::replace(&mut run.builder, replica("builder", "builder")?);
        run.start(&mut builder).await?;
        run.builder = builder;
        let mut replicas = std::mem::take(&mut *run.replicas.lock().await);
        for replica in &mut replicas {
            run.start(replica).await?;
        }
        *run.replicas.lock().await = replicas;
        run.start_balancer(&options.repo).await?;
        Ok(run)
    }

    /// `tessera` on the shared database; its standard output.
    async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        self.tessera.cli(args).await
    }

    fn start_redis(&self) -> anyhow::Result<()> {
        let dir = self.root.join("redis");
        std::fs::create_dir_all(&dir)?;
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &self.redis_port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server")?;
        self.logs.attach(&mut child);
        *self.redis.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        // Redis is up within milliseconds; wait until it accepts connections.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.redis_port)).is_err() {
            ensure!(Instant::now() < deadline, "redis-server does not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    async fn stop_redis(&self) {
        let child = self.redis.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Start `replica` and wait until it answers `/healthz` itself.
    async fn start(&self, replica: &mut Replica) -> anyhow::Result<()> {
        std::fs::create_dir_all(&replica.data)?;
        let mut command = self.tessera.command();
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{}", replica.port)])
            .args(["--role", replica.role])
            .env("TESSERA_DATA_DIR", &replica.data)
            .env(
                "TESSERA_REDIS_URL",
                format!("redis://127.0.0.1:{}", self.redis_port),
            )
            .env(
                "TESSERA_PUBLIC_URL",
                format!("http://127.0.0.1:{}", self.lb_port),
            )
            .env("TESSERA_DRAIN_SECS", DRAIN_SECS.to_string())
            .env("TESSERA_BUILDS_SANDBOX", "none")
            .env("RUST_LOG", "warn");
        if replica.role == "web" {
            command.env(
                "TESSERA_BUILDER_URL",
                format!("http://127.0.0.1:{}", self.builder.port),
            );
        }
        let address: SocketAddr = ([127, 0, 0, 1], replica.port).into();
        let child = Tessera::start(
            command,
            address,
            &self.logs,
            Duration::from_secs(60),
            replica.name,
        )
        .await?;
        replica.child = Some(child);
        Ok(())
    }

    async fn start_balancer(&mut self, repo: &Path) -> anyhow::Result<()> {
        let ports: Vec<u16> = self.replicas.lock().await.iter().map(|r| r.port).collect();
        let (file, listen) = match self.balancer {
            Balancer::Haproxy => ("deploy/haproxy.cfg", "127.0.0.1:8088"),
            Balancer::Nginx => ("deploy/nginx.conf", "127.0.0.1:8089"),
        };
        let mut config =
            std::fs::read_to_string(repo.join(file)).with_context(|| format!("reading {file}"))?;
        ensure!(
            config.contains(listen),
            "{file} no longer listens on {listen}"
        );
        config = config.replace(listen, &format!("127.0.0.1:{}", self.lb_port));
        for (index, port) in ports.iter().enumerate() {
            let shipped = format!("127.0.0.1:{}", 8101 + index);
            ensure!(config.contains(&shipped), "{file} has no server {shipped}");
            config = config.replace(&shipped, &format!("127.0.0.1:{port}"));
        }
        let dir = self.root.join("lb");
        std::fs::create_dir_all(dir.join("logs"))?;
        let path = dir.join(Path::new(file).file_name().context("file name")?);
        std::fs::write(&path, config)?;
        let mut command = match self.balancer {
            Balancer::Haproxy => {
                let mut command = Command::new(which("haproxy").context("haproxy")?);
                command.arg("-f").arg(&path).arg("-db");
                command
            }
            Balancer::Nginx => {
                let mut command = Command::new(which("nginx").context("nginx")?);
                command
                    .arg("-p")
                    .arg(&dir)
                    .arg("-c")
                    .arg(&path)
                    .args(["-g", "daemon off;"]);
                command
            }
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the balancer")?;
        self.logs.attach(&mut child);
        self.lb = Some(child);
        // Every replica in rotation (HAProxy: `rise 2` checks a second apart).
        let address: SocketAddr = ([127, 0, 0, 1], self.lb_port).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while get_status(address, "/readyz").await != Some(200) {
            ensure!(
                Instant::now() < deadline,
                "the balancer does not answer:\n{}",
                self.logs.tail(30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok(())
    }

    async fn tear_down(mut self) {
        if let Some(mut lb) = self.lb.take() {
            let _ = lb.kill().await;
        }
        for replica in self.replicas.lock().await.iter_mut() {
            if let Some(mut child) = replica.child.take() {
                let _ = child.kill().await;
            }
        }
        if let Some(mut child) = self.builder.child.take() {
            let _ = child.kill().await;
        }
        self.stop_redis().await;
        if let Err(e) = psql(
            &self.postgres_admin,
            &format!("drop database if exists {} with (force)", self.database),
        )
        .await
        {
            eprintln!("lb: dropping {}: {e:#}", self.database);
        }
    }

    fn client(&self) -> anyhow::Result<reqwest::Client> {
        let address: SocketAddr = ([127, 0, 0, 1], self.lb_port).into();
        Ok(reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .resolve("demo.localhost", address)
            .build()?)
    }

    fn url(&self, app: &str) -> String {
        format!(
            "http://demo.localhost:{}/apps/demo/{app}/_dash-update-component",
            self.lb_port
        )
    }

    /// The timeline under load; the report.
    async fn exercise(&self, plan: Plan) -> anyhow::Result<Report> {
        let client = self.client()?;
        let mut failures = Vec::new();
        // Memoized answers are shared through Redis before anything happens.
        if !self
            .memo_shared(&client, "before", Duration::from_secs(5))
            .await?
        {
            failures.push(
                "memoized answers were not shared across replicas before the outage".to_owned(),
            );
        }
        let load = Load::start(client.clone(), self.url("hello"), plan.clients);
        let mut events = Events::default();
        tokio::time::sleep(plan.settle).await;

        // 1. SIGKILL one replica, restart it.
        // The kill is a window, from the signal to the moment the process is gone: a request
        // that overlaps it may have reached the dying process, so it was in flight.
        let (signalled_at, killed_at) = {
            let mut replicas = self.replicas.lock().await;
            let replica = &mut replicas[0];
            let mut child = replica.child.take().context("web1 runs")?;
            let signalled_at = load.now();
            child.start_kill()?;
            let _ = child.wait().await;
            (signalled_at, load.now())
        };
        events.push("web1 SIGKILLed", killed_at);
        tokio::time::sleep(Duration::from_secs(1)).await;
        {
            let mut replicas = self.replicas.lock().await;
            self.start(&mut replicas[0]).await?;
        }
        events.push("web1 restarted", load.now());
        tokio::time::sleep(plan.settle).await;

        // 2. Drain another (SIGTERM), then start it again: an upgrade.
        {
            let mut replicas = self.replicas.lock().await;
            let replica = &mut replicas[1];
            let mut child = replica.child.take().context("web2 runs")?;
            events.push("web2 SIGTERM (drain)", load.now());
            let pid = child.id().context("pid")?;
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            let status = tokio::time::timeout(Duration::from_secs(DRAIN_SECS + 20), child.wait())
                .await
                .context("web2 did not stop after draining")??;
            if !status.success() {
                failures.push(format!("web2 exited with {status} after SIGTERM"));
            }
            events.push("web2 stopped", load.now());
            self.start(&mut replicas[1]).await?;
            events.push("web2 upgraded (restarted)", load.now());
        }
        tokio::time::sleep(plan.settle).await;

        // 3. A push through the balancer reaches the builder; every web replica serves it.
        let pushed = self.push(&client).await;
        events.push("git push through the balancer", load.now());
        match pushed {
            Ok(()) => {}
            Err(e) => failures.push(format!("push through the balancer: {e:#}")),
        }

        // 4. Redis stopped, then started again.
        tokio::time::sleep(plan.settle).await;
        events.push("Redis stopped", load.now());
        self.stop_redis().await;
        tokio::time::sleep(plan.redis_down).await;
        self.start_redis()?;
        events.push("Redis started", load.now());
        if !self
            .memo_shared(&client, "after", Duration::from_secs(15))
            .await?
        {
            failures
                .push("memoized answers were not shared again after Redis came back".to_owned());
        }
        tokio::time::sleep(plan.settle).await;
        let records = load.stop().await;

        let mut text = String::new();
        let summary = Summary::of(&records, signalled_at, killed_at);
        writeln!(
            text,
            "\n{:?}: {} clients, {} requests in {:.1} s ({:.0} req/s), p50 {:.2} ms, p99 {:.2} ms",
            self.balancer,
            plan.clients,
            summary.total,
            summary.seconds,
            summary.total as f64 / summary.seconds.max(0.001),
            summary.p50_ms,
            summary.p99_ms
        )?;
        for (name, at) in &events.0 {
            writeln!(text, "  {:>6.2} s  {name}", at.as_secs_f64())?;
        }
        writeln!(
            text,
            "  failed: {} in flight at the kill (of {} in flight then), {} other",
            summary.at_kill, summary.in_flight_at_kill, summary.other
        )?;
        for (error, count) in summary.other_errors.iter().take(20) {
            writeln!(text, "    {count} x {error}")?;
        }
        if summary.other > 0 {
            failures.push(format!(
                "{} requests failed beyond those in flight at the kill",
                summary.other
            ));
        }
        writeln!(
            text,
            "  logs: {} bytes written, the first {} kept in {}",
            self.logs.written(),
            LOG_CAP_BYTES,
            self.logs.path.display()
        )?;
        Ok(Report { text, failures })
    }

    /// Whether a memoized answer computed on one replica is served by the others: the
    /// same input sent six times through the balancer (round robin) comes back with the
    /// stamp of its first run. Retried with fresh inputs until `within` passes (Redis
    /// reconnecting).
    async fn memo_shared(
        &self,
        client: &reqwest::Client,
        label: &str,
        within: Duration,
    ) -> anyhow::Result<bool> {
        let deadline = Instant::now() + within;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let input = format!("{label}-{attempt}-{}", std::process::id());
            let mut stamps = Vec::new();
            for _ in 0..6 {
                stamps.push(self.memo(client, &input).await?);
            }
            if stamps.iter().all(|s| s == &stamps[0]) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                eprintln!("lb: memo {label}: {stamps:?}");
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn memo(&self, client: &reqwest::Client, input: &str) -> anyhow::Result<String> {
        let body = json!({
            "output": "memo.children",
            "outputs": {"id": "memo", "property": "children"},
            "inputs": [{"id": "in", "property": "value", "value": input}],
            "changedPropIds": ["in.value"],
            "state": []
        });
        let reply = client.post(self.url("memo")).json(&body).send().await?;
        let status = reply.status();
        let text = reply.text().await?;
        ensure!(status.is_success(), "memo callback: {status} {text}");
        let json: Value = serde_json::from_str(&text)?;
        json["response"]["memo"]["children"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no answer in {text}"))
    }

    /// `git push` of the memo guest as `demo/pushed` through the balancer, then its layout
    /// from every web replica directly.
    async fn push(&self, client: &reqwest::Client) -> anyhow::Result<()> {
        let work = self.root.join("push");
        let home = self.root.join("home");
        std::fs::create_dir_all(&work)?;
        std::fs::create_dir_all(&home)?;
        std::fs::copy(self.guests.join("guest_memo.wasm"), work.join("app.wasm"))?;
        std::fs::write(
            work.join("tessera.toml"),
            "name = \"pushed\"\nkind = \"wasm\"\ncomponent = \"app.wasm\"\nvisibility = \"public\"\n",
        )?;
        let url = format!(
            "http://git:{}@127.0.0.1:{}/git/demo/pushed.git",
            self.token, self.lb_port
        );
        for args in [
            &["init", "--quiet", "--initial-branch", "main"][..],
            &["add", "."],
            &["commit", "--quiet", "-m", "pushed"],
            &["push", &url, "main"],
        ] {
            let output = Command::new("git")
                .args(args)
                .current_dir(&work)
                .env("HOME", &home)
                .env("XDG_CONFIG_HOME", &home)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_TERMINAL_PROMPT", "0")
                .env("GIT_AUTHOR_NAME", "Ops")
                .env("GIT_AUTHOR_EMAIL", "ops@example.org")
                .env("GIT_COMMITTER_NAME", "Ops")
                .env("GIT_COMMITTER_EMAIL", "ops@example.org")
                .output()
                .await?;
            ensure!(
                output.status.success(),
                "git {}: {}",
                args[0],
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let ports: Vec<u16> = self.replicas.lock().await.iter().map(|r| r.port).collect();
        for port in ports {
            let address: SocketAddr = ([127, 0, 0, 1], port).into();
            let url = format!("http://demo.localhost:{port}/apps/demo/pushed/_dash-layout");
            let direct = reqwest::Client::builder()
                .resolve("demo.localhost", address)
                .timeout(Duration::from_secs(10))
                .build()?;
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let status = direct.get(&url).send().await.map(|r| r.status().as_u16());
                if let Ok(200) = status {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "the pushed app does not serve on 127.0.0.1:{port}: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let _ = client;
        Ok(())
    }
}

async fn psql(url: &str, statement: &str) -> anyhow::Result<()> {
    let output = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", statement])
        .stdin(Stdio::null())
        .output()
        .await
        .context("running psql")?;
    ensure!(
        output.status.success(),
        "psql {statement:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[derive(Default)]
struct Events(Vec<(&'static str, Duration)>);

impl Events {
    fn push(&mut self, name: &'static str, at: Duration) {
        self.0.push((name, at));
    }
}

/// One request: when it started and ended (since the load began), and its error if any.
struct Record {
    start: Duration,
    end: Duration,
    error: Option<String>,
}

/// `clients` loops sending the hello example's light callback through the balancer.
struct Load {
    began: Instant,
    stop: Arc<AtomicBool>,
    records: Arc<Mutex<Vec<Record>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(client: reqwest::Client, url: String, clients: usize) -> Load {
        let began = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let records: Arc<Mutex<Vec<Record>>> = Arc::default();
        let tasks = (0..clients)
            .map(|_| {
                let (client, url) = (client.clone(), url.clone());
                let (stop, records) = (stop.clone(), records.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let start = began.elapsed();
                        let error = match ::tests::server::hello(&client, &url, "lb").await {
                            Ok(()) => None,
                            Err(Failure::Status(status, text)) => Some(format!(
                                "{status} {}",
                                text.chars().take(120).collect::<String>()
                            )),
                            Err(Failure::Timeout) => Some("timeout".to_owned()),
                            Err(Failure::Connection(e)) => Some(format!("connection: {e}")),
                        };
                        let end = began.elapsed();
                        let mut records = records.lock().unwrap_or_else(|e| e.into_inner());
                        if records.len() < MAX_RECORDS {
                            records.push(Record { start, end, error });
                        }
                    }
                })
            })
            .collect();
        Load {
            began,
            stop,
            records,
            tasks,
        }
    }

    fn now(&self) -> Duration {
        self.began.elapsed()
    }

    async fn stop(self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        std::mem::take(&mut *self.records.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct Summary {
    total: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    in_flight_at_kill: usize,
    at_kill: usize,
    other: usize,
    other_errors: std::collections::BTreeMap<String, usize>,
}

impl Summary {
    fn of(records: &[Record], signalled_at: Duration, gone_at: Duration) -> Summary {
        let spans_kill = |r: &Record| r.start <= gone_at && r.end >= signalled_at;
        let mut latencies: Vec<Duration> = records.iter().map(|r| r.end - r.start).collect();
        latencies.sort();
        let percentile = |p: f64| {
            ::tests::server::percentile(&latencies, p).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        let mut other_errors = std::collections::BTreeMap::new();
        let mut at_kill = 0;
        let mut other = 0;
        for record in records {
            let Some(error) = &record.error else { continue };
            if spans_kill(record) {
                at_kill += 1;
            } else {
                other += 1;
                *other_errors
                    .entry(format!("{error} (at {:.2} s)", record.start.as_secs_f64()))
                    .or_default() += 1;
            }
        }
        Summary {
            total: records.len(),
            seconds: records
                .iter()
                .map(|r| r.end)
                .max()
                .unwrap_or_default()
                .as_secs_f64(),
            p50_ms: percentile(0.5),
            p99_ms: percentile(0.99),
            in_flight_at_kill: records.iter().filter(|r| spans_kill(r)).count(),
            at_kill,
            other,
            other_errors,
        }
    }
}

struct Report {
    text: String,
    failures: Vec<String>,
}
