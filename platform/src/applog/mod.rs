//! The apps' own log lines (`host.log`, stdout, stderr of a guest) on their way to the
//! server's log, bounded per app.
//!
//! The sandbox already caps what one call keeps ([`sandbox::Limits::log_bytes`], each line
//! paying [`sandbox::LINE_COST`]); this caps what an app writes per second across all its
//! calls, so a tenant's many chatty callbacks cannot fill the server's disk or hold up the
//! others. Lines are handed to a writer thread through a bounded queue: a request never
//! waits for the log, and when the writer falls behind lines are dropped and counted rather
//! than queued without end. Lines of heavy apps (whose calls run as long calls, and of
//! background jobs) have their own queue and writer, which runs where long calls run
//! ([`sandbox::LongWork`]: the idle class, the long calls' cores), so writing them takes no
//! ordinary core and their flood cannot crowd the other apps' lines out of the queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use sandbox::{LINE_COST, LogLine, LongWork};

pub mod shared;
pub use shared::{LogFeed, SharedLog, Tail, TailError};

/// How much one app may log, refilled continuously (a token bucket per app).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Lines per second, sustained.
    pub lines_per_sec: u32,
    /// Bytes per second, sustained (each line counts its text plus [`LINE_COST`]).
    pub bytes_per_sec: u32,
    /// How many seconds' worth an idle app may spend at once.
    pub burst_secs: u32,
}

impl Default for Rate {
    fn default() -> Self {
        Rate {
            lines_per_sec: 200,
            bytes_per_sec: 64 << 10,
            burst_secs: 5,
        }
    }
}

/// Lines the writer thread may have waiting before new ones are dropped.
const QUEUE_LINES: usize = 8192;

/// The origin of a batch of lines.
#[derive(Clone, Debug)]
pub struct Source {
    /// Tenant slug.
    pub tenant: String,
    /// App slug.
    pub app: String,
    /// The version that ran.
    pub version: i64,
    /// The background job, when the lines come from one.
    pub job: Option<String>,
    /// The HTTP request whose callback wrote them (`X-Request-Id`).
    pub request_id: Option<String>,
    /// Written for a heavy app or a background job: by the long-work writer.
    pub heavy: bool,
    /// The replicas' shared feed the lines also go to (with Redis).
    pub shared: Option<Arc<SharedLog>>,
}

enum Entry {
    Line(Arc<Source>, LogLine),
    /// Lines of an app refused by its rate since the last note.
    Dropped(Arc<Source>, u64),
}

#[derive(Debug)]
struct Bucket {
    lines: f64,
    bytes: f64,
    refilled: Instant,
    /// Refused since the last note written for this app.
    refused: u64,
    noted: Instant,
}

/// An app's latest lines kept in memory for its page: this many per app…
pub const RECENT_LINES: usize = 50;
/// …each cut to this many characters…
pub const RECENT_LINE_CHARS: usize = 400;
/// …for at most this many apps (the least recently written go first): about 10 MB at most.
pub const RECENT_APPS: usize = 512;

/// One line as the app's page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecentLine {
    /// When this server received it (Unix ms).
    pub at: i64,
    /// The version that wrote it.
    pub version: i64,
    /// `stdout`, `stderr`, `log <level>`, `error` (a failed callback, with its error id) or
    /// `platform` (a note about dropped lines).
    pub stream: String,
    /// The text, cut to [`RECENT_LINE_CHARS`].
    pub message: String,
    /// The request whose callback wrote it, if any.
    pub request_id: Option<String>,
    /// Where it stands in its feed: ask for lines after it to get newer ones.
    pub cursor: String,
}

/// An app's kept lines, each with its number in this process.
type KeptLines = std::collections::VecDeque<(u64, RecentLine)>;

#[derive(Default)]
struct Recent {
    /// Per app: when it last wrote (in `writes`) and its lines.
    apps: HashMap<(String, String), (u64, KeptLines)>,
    writes: u64,
    /// The number of the last line kept (this process's cursor).
    lines: u64,
}

/// The per-app limiter and the queues to the writer threads. Clones share them.
#[derive(Clone)]
pub struct AppLog {
    rate: Rate,
    buckets: Arc<Mutex<HashMap<(String, String), Bucket>>>,
    queue: SyncSender<Entry>,
    /// To the writer of heavy apps' lines ([`Source::heavy`]).
    heavy_queue: SyncSender<Entry>,
    /// Lines dropped because the writer was behind (all apps).
    overflowed: Arc<AtomicU64>,
    /// The latest admitted lines of recently active apps.
    recent: Arc<Mutex<Recent>>,
}

impl AppLog {
    /// A log with its own writer threads, which emit every line as a `tracing` event under
    /// the target `tessera::app_log`: one for ordinary apps, one for heavy apps that runs
    /// as `long_work` (without it, an ordinary thread).
    pub fn start(rate: Rate, long_work: Option<&LongWork>) -> AppLog {
        AppLog::start_named(rate, long_work, [WRITER, HEAVY_WRITER])
    }

    /// [`AppLog::start`] with writer threads named `[ordinary, heavy]`.
    fn start_named(rate: Rate, long_work: Option<&LongWork>, names: [&str; 2]) -> AppLog {
        let [name, heavy_name] = names;
        let (queue, receiver) = sync_channel(QUEUE_LINES);
        let (heavy_queue, heavy_receiver) = sync_channel(QUEUE_LINES);
        let started = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || write_lines(receiver))
            .map(drop);
        let heavy_started = match long_work {
            Some(long_work) => long_work
                .spawn(heavy_name, move || write_lines(heavy_receiver))
                .map(drop),
            None => std::thread::Builder::new()
                .name(heavy_name.into())
                .spawn(move || write_lines(heavy_receiver))
                .map(drop),
        };
        for error in [started.err(), heavy_started.err()].into_iter().flatten() {
            tracing::error!(%error, "cannot start an app log writer");
        }
        AppLog::with_queues(rate, queue, heavy_queue)
    }

    fn with_queues(rate: Rate, queue: SyncSender<Entry>, heavy_queue: SyncSender<Entry>) -> AppLog {
        AppLog {
            rate,
            buckets: Arc::default(),
            queue,
            heavy_queue,
            overflowed: Arc::default(),
            recent: Arc::default(),
        }
    }

    /// Hands `lines` to the writer, as far as the app's rate allows. Never blocks.
    pub fn write(&self, source: Source, lines: Vec<LogLine>) {
        self.write_at(source, lines, Instant::now());
    }

    fn write_at(&self, source: Source, lines: Vec<LogLine>, now: Instant) {
        if lines.is_empty() {
            return;
        }
        let source = Arc::new(source);
        let (kept, note) = self.admit(&source, lines, now);
        let added = self.remember(&source, &kept, note);
        if let Some(shared) = &source.shared {
            shared.publish(&source.tenant, &source.app, added);
        }
        let queue = if source.heavy {
            &self.heavy_queue
        } else {
            &self.queue
        };
        for line in kept {
            self.send(queue, Entry::Line(source.clone(), line));
        }
        if let Some(refused) = note {
            self.send(queue, Entry::Dropped(source, refused));
        }
    }

    /// The lines within the app's rate, and the count of refused lines to report now (at
    /// most one note per app a second).
    fn admit(
        &self,
        source: &Source,
        lines: Vec<LogLine>,
        now: Instant,
    ) -> (Vec<LogLine>, Option<u64>) {
        let rate = self.rate;
        let burst = f64::from(rate.burst_secs.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        // Idle apps' buckets are full again: forget them rather than keep one per app ever seen.
        if buckets.len() > 4096 {
            let full = Duration::from_secs(u64::from(rate.burst_secs.max(1)));
            buckets.retain(|_, b| now.duration_since(b.refilled) < full || b.refused > 0);
        }
        let bucket = buckets
            .entry((source.tenant.clone(), source.app.clone()))
            .or_insert_with(|| Bucket {
                lines: f64::from(rate.lines_per_sec) * burst,
                bytes: f64::from(rate.bytes_per_sec) * burst,
                refilled: now,
                refused: 0,
                noted: now,
            });
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.refilled = now;
        bucket.lines = (bucket.lines + elapsed * f64::from(rate.lines_per_sec))
            .min(f64::from(rate.lines_per_sec) * burst);
        bucket.bytes = (bucket.bytes + elapsed * f64::from(rate.bytes_per_sec))
            .min(f64::from(rate.bytes_per_sec) * burst);
        let mut kept = Vec::new();
        for line in lines {
            let cost = (line.message.len() + LINE_COST) as f64;
            if bucket.lines >= 1.0 && bucket.bytes >= cost {
                bucket.lines -= 1.0;
                bucket.bytes -= cost;
                kept.push(line);
            } else {
                bucket.refused += 1;
            }
        }
        let note =
            if bucket.refused > 0 && now.duration_since(bucket.noted) >= Duration::from_secs(1) {
                bucket.noted = now;
                Some(std::mem::take(&mut bucket.refused))
            } else {
                None
            };
        (kept, note)
    }

    fn send(&self, queue: &SyncSender<Entry>, entry: Entry) {
        match queue.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let before = self.overflowed.fetch_add(1, Ordering::Relaxed);
                // One warning per 10,000 dropped lines, from the caller's thread.
                if before.is_multiple_of(10_000) {
                    tracing::warn!(
                        dropped = before + 1,
                        "the app log writer is behind; app log lines were dropped"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Keep the admitted lines (and a note of refused ones) for the app's page; returns
    /// the lines as kept (for the shared feed).
    fn remember(&self, source: &Source, kept: &[LogLine], refused: Option<u64>) -> Vec<RecentLine> {
        let start = kept.len().saturating_sub(RECENT_LINES);
        let mut added: Vec<(String, &str)> = kept[start..]
            .iter()
            .map(|kept| {
                let stream = match kept.stream {
                    sandbox::LogStream::Stdout => "stdout".to_owned(),
                    sandbox::LogStream::Stderr => "stderr".to_owned(),
                    sandbox::LogStream::Host(level) => format!("log {level:?}").to_lowercase(),
                };
                (stream, kept.message.as_str())
            })
            .collect();
        let note =
            refused.map(|refused| format!("{refused} lines over the app's log rate were dropped"));
        if let Some(note) = &note {
            added.push(("platform".into(), note));
        }
        self.keep(source, added)
    }

    /// Add `(stream, message)` lines to the app's latest lines, numbered.
    fn keep(&self, source: &Source, lines: Vec<(String, &str)>) -> Vec<RecentLine> {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.writes += 1;
        let writes = recent.writes;
        let key = (source.tenant.clone(), source.app.clone());
        if !recent.apps.contains_key(&key) && recent.apps.len() >= RECENT_APPS {
            let stalest = recent
                .apps
                .iter()
                .min_by_key(|(_, (written, _))| *written)
                .map(|(key, _)| key.clone());
            if let Some(stalest) = stalest {
                recent.apps.remove(&stalest);
            }
        }
        let mut number = recent.lines;
        let added: Vec<(u64, RecentLine)> = lines
            .into_iter()
            .map(|(stream, message)| {
                number += 1;
                let line = RecentLine {
                    at,
                    version: source.version,
                    stream,
                    message: message.chars().take(RECENT_LINE_CHARS).collect(),
                    request_id: source.request_id.clone(),
                    cursor: number.to_string(),
                };
                (number, line)
            })
            .collect();
        recent.lines = number;
        let (written, kept) = recent.apps.entry(key).or_default();
        *written = writes;
        kept.extend(added.iter().cloned());
        while kept.len() > RECENT_LINES {
            kept.pop_front();
        }
        added.into_iter().map(|(_, line)| line).collect()
    }

    /// Note that a callback of the app failed (its error id ties the line to what the
    /// viewer was told), within the app's log rate; the failure itself is logged by the
    /// caller, so this only reaches the app's page and the shared feed.
    pub fn record_failure(&self, source: Source, message: &str) {
        let line = LogLine {
            stream: sandbox::LogStream::Stderr,
            message: message.to_owned(),
        };
        let (kept, _) = self.admit(&source, vec![line], Instant::now());
        if kept.is_empty() {
            return;
        }
        let added = self.keep(&source, vec![("error".into(), message)]);
        if let Some(shared) = &source.shared {
            shared.publish(&source.tenant, &source.app, added);
        }
    }

    /// The latest lines of `tenant/app` this server received, oldest first.
    pub fn recent(&self, tenant: &str, app: &str) -> Vec<RecentLine> {
        self.tail(tenant, app, None, RECENT_LINES).lines
    }

    /// The lines of `tenant/app` this server kept after line `after`, at most `limit`,
    /// oldest first (without `after`, the latest `limit`). A cursor beyond the last line
    /// (from before a restart) starts over.
    pub fn tail(&self, tenant: &str, app: &str, after: Option<u64>, limit: usize) -> Tail {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let after = after.filter(|&after| after <= recent.lines);
        let kept = recent.apps.get(&(tenant.to_owned(), app.to_owned()));
        let lines: Vec<RecentLine> = match (kept, after) {
            (None, _) => Vec::new(),
            (Some((_, kept)), Some(after)) => kept
                .iter()
                .filter(|(number, _)| *number > after)
                .take(limit)
                .map(|(_, line)| line.clone())
                .collect(),
            (Some((_, kept)), None) => kept
                .iter()
                .skip(kept.len().saturating_sub(limit))
                .map(|(_, line)| line.clone())
                .collect(),
        };
        let next = lines
            .last()
            .map(|line| line.cursor.clone())
            .unwrap_or_else(|| after.unwrap_or(0).to_string());
        Tail {
            lines,
            next,
            shared: false,
        }
    }

    /// Lines dropped so far because the writer was behind.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }
}

/// Names of the writer threads.
const WRITER: &str = "tessera-app-log";
const HEAVY_WRITER: &str = "app-log-heavy";

static LOG: OnceLock<AppLog> = OnceLock::new();

/// Starts the process's app log with the default [`Rate`], its heavy apps' lines written as
/// `long_work` (the sandbox's). Only the first start counts; call it before serving.
pub fn init(long_work: &LongWork) {
    LOG.get_or_init(|| AppLog::start(Rate::default(), Some(long_work)));
}

/// The process's app log, started with the default [`Rate`] on first use if [`init`] was
/// not called (then heavy lines are written by an ordinary thread). Logging is
/// process-wide (like the `tracing` subscriber it feeds), so this is a global rather than
/// a field threaded through every caller.
pub fn global() -> &'static AppLog {
    LOG.get_or_init(|| AppLog::start(Rate::default(), None))
}

fn write_lines(receiver: Receiver<Entry>) {
    for entry in receiver {
        match entry {
            Entry::Line(source, line) => {
                let Source {
                    tenant,
                    app,
                    version,
                    job,
                    request_id,
                    heavy: _,
                    shared: _,
                } = &*source;
                let job = job.as_deref().unwrap_or("");
                let request_id = request_id.as_deref().unwrap_or("");
                tracing::info!(target: "tessera::app_log", %tenant, %app, version, job, request_id, stream = ?line.stream, "{}", line.message);
            }
            Entry::Dropped(source, refused) => {
                let Source { tenant, app, .. } = &*source;
                tracing::warn!(target: "tessera::app_log", %tenant, %app, refused, "app log lines over the app's rate were dropped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox::LogStream;

    fn source(app: &str) -> Source {
        Source {
            tenant: "acme".into(),
            app: app.into(),
            version: 1,
            job: None,
            request_id: None,
            heavy: false,
            shared: None,
        }
    }

    fn lines(n: usize, text: &str) -> Vec<LogLine> {
        (0..n)
            .map(|_| LogLine {
                stream: LogStream::Stdout,
                message: text.to_owned(),
            })
            .collect()
    }

    fn queued(receiver: &Receiver<Entry>) -> (usize, u64) {
        let (mut written, mut refused) = (0, 0);
        while let Ok(entry) = receiver.try_recv() {
            match entry {
                Entry::Line(..) => written += 1,
                Entry::Dropped(_, n) => refused += n,
            }
        }
        (written, refused)
    }

    const RATE: Rate = Rate {
        lines_per_sec: 10,
        bytes_per_sec: 10_000,
        burst_secs: 2,
    };

    #[test]
    fn an_app_gets_its_burst_then_its_rate() {
        let (queue, receiver) = sync_channel(1000);
        let log = AppLog::with_queues(RATE, queue, sync_channel(0).0);
        let start = Instant::now();
        // Empty lines cost too: the burst is 20 lines whatever their length.
        log.write_at(source("chatty"), lines(100, ""), start);
        assert_eq!(queued(&receiver), (20, 0));
        // A second later: ten more lines, and one note for everything refused so far.
        log.write_at(
            source("chatty"),
            lines(100, ""),
            start + Duration::from_secs(1),
        );
        assert_eq!(queued(&receiver), (10, 170));
        // Another app has its own bucket.
        log.write_at(
            source("quiet"),
            lines(5, "hello"),
            start + Duration::from_secs(1),
        );
        assert_eq!(queued(&receiver), (5, 0));
    }

    #[test]
    fn bytes_are_limited_as_well_as_lines() {
        let (queue, receiver) = sync_channel(1000);
        let log = AppLog::with_queues(RATE, queue, sync_channel(0).0);
        let start = Instant::now();
        // 20,000 bytes of burst: three 8,000-byte lines do not fit, two do.
        log.write_at(source("big"), lines(3, &"x".repeat(8_000)), start);
        assert_eq!(queued(&receiver).0, 2);
    }

    #[test]
    fn the_tail_follows_a_cursor_and_keeps_the_latest_lines() {
        let (queue, _receiver) = sync_channel(1000);
        let log = AppLog::with_queues(RATE, queue, sync_channel(0).0);
        let now = Instant::now();
        let empty = log.tail("acme", "tailed", None, 10);
        assert!(empty.lines.is_empty());
        log.write_at(source("tailed"), lines(3, "first"), now);
        let first = log.tail("acme", "tailed", None, 10);
        assert_eq!(first.lines.len(), 3);
        assert_eq!(first.next, first.lines[2].cursor);
        // Nothing new after the cursor, then exactly the new lines, oldest first.
        let cursor: u64 = first.next.parse().expect("a number");
        assert!(
            log.tail("acme", "tailed", Some(cursor), 10)
                .lines
                .is_empty()
        );
        log.write_at(source("tailed"), lines(2, "second"), now);
        log.record_failure(source("tailed"), "callback out failed (error id e1)");
        let newer = log.tail("acme", "tailed", Some(cursor), 10);
        let got: Vec<_> = newer
            .lines
            .iter()
            .map(|l| (l.stream.as_str(), l.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("stdout", "second"),
                ("stdout", "second"),
                ("error", "callback out failed (error id e1)")
            ]
        );
        // A limit takes the oldest after the cursor (the client catches up in steps)…
        let step = log.tail("acme", "tailed", Some(cursor), 1);
        assert_eq!(step.lines[0].message, "second");
        // …and without a cursor the latest.
        let latest = log.tail("acme", "tailed", None, 1);
        assert_eq!(latest.lines[0].stream, "error");
        // Other apps' lines are not in this app's tail; a cursor from before a restart
        // (beyond the last line) starts over.
        assert!(log.tail("acme", "other", None, 10).lines.is_empty());
        assert_eq!(
            log.tail("acme", "tailed", Some(u64::MAX), 10).lines.len(),
            6
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let (queue, receiver) = sync_channel(3);
        let log = AppLog::with_queues(RATE, queue, sync_channel(0).0);
        log.write_at(source("a"), lines(10, "x"), Instant::now());
        assert_eq!(log.overflowed(), 7);
        assert_eq!(queued(&receiver), (3, 0));
    }

    #[test]
    fn heavy_apps_lines_have_their_own_queue() {
        let (queue, receiver) = sync_channel(1000);
        let (heavy_queue, heavy_receiver) = sync_channel(5);
        let log = AppLog::with_queues(RATE, queue, heavy_queue);
        let now = Instant::now();
        let heavy = Source {
            heavy: true,
            ..source("hog")
        };
        // The heavy app's flood fills its own queue only…
        log.write_at(heavy, lines(20, "x"), now);
        assert_eq!(queued(&heavy_receiver), (5, 0));
        assert_eq!(log.overflowed(), 15);
        // …and the other apps' lines still go through.
        log.write_at(source("light"), lines(3, "y"), now);
        assert_eq!(queued(&receiver), (3, 0));
        assert_eq!(queued(&heavy_receiver), (0, 0));
    }

    /// The policy of this process's thread named `name`, read from `/proc` and the kernel.
    #[cfg(target_os = "linux")]
    fn thread_policy(name: &str) -> Option<i32> {
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let task = task.ok()?;
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() == name {
                let tid: libc::pid_t = task.file_name().to_str()?.parse().ok()?;
                // SAFETY: `tid` names a thread of this process; a gone thread gives -1.
                return Some(unsafe { libc::sched_getscheduler(tid) });
            }
        }
        None
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_heavy_writer_runs_as_long_work_and_the_other_does_not() {
        let sandbox = sandbox::Sandbox::new(sandbox::SandboxConfig {
            max_instances: 1,
            ..sandbox::SandboxConfig::default()
        })
        .expect("sandbox");
        let long_work = sandbox.long_work();
        // Whether this process can demote threads at all (root or RLIMIT_NICE 20).
        let demotes = long_work.enter().demoted();
        let names = ["test-log", "test-log-heavy"];
        let log = AppLog::start_named(RATE, Some(&long_work), names);
        let heavy = Source {
            heavy: true,
            ..source("hog")
        };
        log.write(heavy, lines(1, "from a heavy app"));
        let expected = if demotes {
            libc::SCHED_IDLE
        } else {
            libc::SCHED_OTHER
        };
        // Both writers are up once they show in /proc (threads start asynchronously), and
        // the heavy one is named before it moves itself to the idle class: wait for that.
        let limit = Instant::now() + Duration::from_secs(10);
        let (mut ordinary, mut demoted) = (None, None);
        while (ordinary.is_none() || demoted != Some(expected)) && Instant::now() < limit {
            ordinary = thread_policy(names[0]);
            demoted = thread_policy(names[1]);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(ordinary, Some(libc::SCHED_OTHER));
        assert_eq!(demoted, Some(expected));
    }
}
