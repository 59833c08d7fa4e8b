//! What the benchmark drivers (`noisy`, `lb`, `density`) share to run the real `tessera`:
//! its command line on a data directory, a `tessera serve` started and waited for, the
//! children's output kept up to a cap, the hello example's light callback, and the
//! figures of a process read from `/proc`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// The repository's root and the cargo target directory the drivers find `tessera` and
/// the guests in.
pub fn repo_and_target() -> anyhow::Result<(PathBuf, PathBuf)> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the tests crate is in the repository")?
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"));
    Ok((repo, target))
}

/// The `tessera` binary with the environment every command of a run gets (its data
/// directory, database, key…).
#[derive(Clone, Debug)]
pub struct Tessera {
    /// The binary.
    pub binary: PathBuf,
    /// Variables set on every command.
    pub env: Vec<(String, OsString)>,
}

impl Tessera {
    /// `binary` with `TESSERA_DATA_DIR` set to `data`.
    pub fn new(binary: &Path, data: &Path) -> Tessera {
        Tessera {
            binary: binary.to_path_buf(),
            env: vec![("TESSERA_DATA_DIR".to_owned(), data.into())],
        }
    }

    /// Adds a variable to every command.
    pub fn with_env(mut self, name: &str, value: impl Into<OsString>) -> Tessera {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// A command of this binary with the run's environment and no standard input.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command.stdin(Stdio::null());
        command
    }

    /// Runs `tessera ARGS` (warnings only in its log); its standard output, or an error
    /// with its standard error.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self
            .command()
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .await
            .with_context(|| format!("running {}", self.binary.display()))?;
        ensure!(
            output.status.success(),
            "tessera {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Starts `command` (a `tessera serve` made by [`Tessera::command`]) with its output
    /// going to `logs`, and waits up to `within` until `address` answers `/healthz` with 200.
    pub async fn start(
        mut command: Command,
        address: SocketAddr,
        logs: &Arc<Logs>,
        within: Duration,
        name: &str,
    ) -> anyhow::Result<Child> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        logs.attach(&mut child);
        let deadline = Instant::now() + within;
        loop {
            if get_status(address, "/healthz").await == Some(200) {
                return Ok(child);
            }
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited ({status}):\n{}", logs.tail(30));
            }
            ensure!(
                Instant::now() < deadline,
                "{name} does not answer http://{address}/healthz:\n{}",
                logs.tail(30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// SIGTERM, then SIGKILL if the process is still there after `grace`.
pub async fn stop(child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// A free port on the loopback interface (free when asked; the caller binds it soon).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The status of a GET on `address` (Host: the address), or `None` if it did not answer
/// within 5 s. Plain TCP, so no client pool keeps a connection to a replica that is gone.
pub async fn get_status(address: SocketAddr, path: &str) -> Option<u16> {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = vec![0u8; 64];
        let n = stream.read(&mut head).await.ok()?;
        let text = String::from_utf8_lossy(&head[..n]).into_owned();
        text.split(' ').nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
}

/// The output of every child of a run in one file, kept up to a cap; the rest is counted.
pub struct Logs {
    /// The file.
    pub path: PathBuf,
    cap: u64,
    written: AtomicU64,
    file: tokio::sync::Mutex<tokio::fs::File>,
}

impl Logs {
    /// A new (truncated) log file at `path` keeping at most `cap` bytes.
    pub async fn create(path: PathBuf, cap: u64) -> anyhow::Result<Arc<Logs>> {
        let file = tokio::fs::File::create(&path)
            .await
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Arc::new(Logs {
            path,
            cap,
            written: AtomicU64::new(0),
            file: tokio::sync::Mutex::new(file),
        }))
    }

    /// Bytes the children wrote so far (kept or not).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// The cap on what is kept.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Copies `from` into the file until it ends.
    pub async fn drain(self: Arc<Self>, mut from: impl tokio::io::AsyncRead + Unpin) {
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            let n = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let before = self.written.fetch_add(n as u64, Ordering::Relaxed);
            if before < self.cap {
                let keep = (self.cap - before).min(n as u64) as usize;
                let _ = self.file.lock().await.write_all(&buffer[..keep]).await;
            }
        }
    }

    /// Drains the child's standard output and error into the file.
    pub fn attach(self: &Arc<Self>, child: &mut Child) {
        if let Some(out) = child.stdout.take() {
            tokio::spawn(self.clone().drain(out));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(self.clone().drain(err));
        }
    }

    /// The last `lines` lines kept, for an error message.
    pub fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// The renderer's body for the hello example's greeting callback with `name` typed in.
pub fn hello_body(name: &str) -> String {
    json!({
        "output": "greeting.children",
        "outputs": {"id": "greeting", "property": "children"},
        "inputs": [{"id": "name", "property": "value", "value": name}],
        "changedPropIds": ["name.value"],
        "parsedChangedPropsIds": ["name.value"],
    })
    .to_string()
}

/// Why a light callback did not come back as expected.
#[derive(Debug)]
pub enum Failure {
    /// An answer, but not a 200 greeting: its status and its body (or why it was unreadable).
    Status(u16, String),
    /// The client's timeout passed.
    Timeout,
    /// No answer: the connection failed.
    Connection(String),
}

/// Posts the hello example's greeting callback with `name` to `url` (an app's
/// `_dash-update-component`); `Ok` when it answered 200 with the greeting.
pub async fn hello(client: &reqwest::Client, url: &str, name: &str) -> Result<(), Failure> {
    let reply = client
        .post(url)
        .header("Content-Type", "application/json")
        .body(hello_body(name))
        .send()
        .await;
    match reply {
        Ok(reply) => {
            let status = reply.status().as_u16();
            match reply.text().await {
                Ok(text) if status == 200 && text.contains(&format!("Hello, {name}!")) => Ok(()),
                Ok(text) => Err(Failure::Status(status, text)),
                Err(e) => Err(Failure::Status(status, format!("(body: {e})"))),
            }
        }
        Err(e) if e.is_timeout() => Err(Failure::Timeout),
        Err(e) => Err(Failure::Connection(e.to_string())),
    }
}

/// The `error.code` of an error body, or a short description of a body without one.
pub fn error_code(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(body) => match body["error"]["code"].as_str() {
            Some(code) => code.to_owned(),
            None => "(no error code)".to_owned(),
        },
        Err(_) => "(not JSON)".to_owned(),
    }
}

/// The value at rank `p` (0..=1, nearest rank) of `sorted`.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let index = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
    Some(sorted[index])
}

/// `VmHWM` (peak resident set) of a process, in MiB.
pub fn peak_rss_mib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:") >> 10
}

/// `VmRSS` (resident set) of a process, in MiB.
pub fn rss_mib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:") >> 10
}

/// A `kB` field of `/proc/PID/status` (0 when unreadable).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix(field)
                    .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// User plus system CPU time of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The fields after the command name (which may hold spaces) in parentheses.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
    field(11) + field(12)
}

/// The load average over the last minute (`/proc/loadavg`), for reports.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| {
            let fields: Vec<&str> = text.split_whitespace().take(3).collect();
            (fields.len() == 3).then(|| fields.join(" "))
        })
        .unwrap_or_else(|| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_taken_by_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&sorted, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&sorted, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn error_codes_are_read_from_the_error_shape() {
        assert_eq!(
            error_code(r#"{"error": {"code": "quota_exceeded", "message": "x"}}"#),
            "quota_exceeded"
        );
        assert_eq!(error_code("{}"), "(no error code)");
        assert_eq!(error_code("<html>"), "(not JSON)");
    }
}
