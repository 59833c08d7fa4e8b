//! The apps' own log lines (`host.log`, stdout, stderr of a guest) on their way to the
//! server's log, bounded per app.
//!
//! The sandbox already caps what one call keeps ([`sandbox::Limits::log_bytes`], each line
//! paying [`sandbox::LINE_COST`]); this caps what an app writes per second across all its
//! calls, so a tenant's many chatty callbacks cannot fill the server's disk or hold up the
//! others. Lines are handed to one writer thread through a bounded queue: a request never
//! waits for the log, and when the writer falls behind lines are dropped and counted rather
//! than queued without end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use sandbox::{LINE_COST, LogLine};

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
    /// `stdout`, `stderr`, `log` or `platform` (a note about dropped lines).
    pub stream: String,
    /// The text, cut to [`RECENT_LINE_CHARS`].
    pub message: String,
    /// The request whose callback wrote it, if any.
    pub request_id: Option<String>,
}

#[derive(Default)]
struct Recent {
    apps: HashMap<(String, String), (u64, std::collections::VecDeque<RecentLine>)>,
    writes: u64,
}

/// The per-app limiter and the queue to the writer thread. Clones share both.
#[derive(Clone)]
pub struct AppLog {
    rate: Rate,
    buckets: Arc<Mutex<HashMap<(String, String), Bucket>>>,
    queue: SyncSender<Entry>,
    /// Lines dropped because the writer was behind (all apps).
    overflowed: Arc<AtomicU64>,
    /// The latest admitted lines of recently active apps.
    recent: Arc<Mutex<Recent>>,
}

impl AppLog {
    /// A log with its own writer thread, which emits every line as a `tracing` event under
    /// the target `tessera::app_log`.
    pub fn start(rate: Rate) -> AppLog {
        let (queue, receiver) = sync_channel(QUEUE_LINES);
        std::thread::Builder::new()
            .name("tessera-app-log".into())
            .spawn(move || write_lines(receiver))
            .map(drop)
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the app log writer"));
        AppLog::with_queue(rate, queue)
    }

    fn with_queue(rate: Rate, queue: SyncSender<Entry>) -> AppLog {
        AppLog {
            rate,
            buckets: Arc::default(),
            queue,
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
        self.remember(&source, &kept, note);
        for line in kept {
            self.send(Entry::Line(source.clone(), line));
        }
        if let Some(refused) = note {
            self.send(Entry::Dropped(source, refused));
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

    fn send(&self, entry: Entry) {
        match self.queue.try_send(entry) {
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

    /// Keep the admitted lines (and a note of refused ones) for the app's page.
    fn remember(&self, source: &Source, kept: &[LogLine], refused: Option<u64>) {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let line = |stream: String, message: &str| RecentLine {
            at,
            version: source.version,
            stream,
            message: message.chars().take(RECENT_LINE_CHARS).collect(),
            request_id: source.request_id.clone(),
        };
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
        let (written, lines) = recent.apps.entry(key).or_default();
        *written = writes;
        let start = kept.len().saturating_sub(RECENT_LINES);
        for kept in &kept[start..] {
            let stream = match kept.stream {
                sandbox::LogStream::Stdout => "stdout".to_owned(),
                sandbox::LogStream::Stderr => "stderr".to_owned(),
                sandbox::LogStream::Host(level) => format!("log {level:?}").to_lowercase(),
            };
            lines.push_back(line(stream, &kept.message));
        }
        if let Some(refused) = refused {
            let note = format!("{refused} lines over the app's log rate were dropped");
            lines.push_back(line("platform".into(), &note));
        }
        while lines.len() > RECENT_LINES {
            lines.pop_front();
        }
    }

    /// The latest lines of `tenant/app` this server received, oldest first.
    pub fn recent(&self, tenant: &str, app: &str) -> Vec<RecentLine> {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent
            .apps
            .get(&(tenant.to_owned(), app.to_owned()))
            .map(|(_, lines)| lines.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Lines dropped so far because the writer was behind.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }
}

/// The process's app log, started with the default [`Rate`] on first use. Logging is
/// process-wide (like the `tracing` subscriber it feeds), so this is a global rather than
/// a field threaded through every caller.
pub fn global() -> &'static AppLog {
    static LOG: OnceLock<AppLog> = OnceLock::new();
    LOG.get_or_init(|| AppLog::start(Rate::default()))
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
        let log = AppLog::with_queue(RATE, queue);
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
        let log = AppLog::with_queue(RATE, queue);
        let start = Instant::now();
        // 20,000 bytes of burst: three 8,000-byte lines do not fit, two do.
        log.write_at(source("big"), lines(3, &"x".repeat(8_000)), start);
        assert_eq!(queued(&receiver).0, 2);
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let (queue, receiver) = sync_channel(3);
        let log = AppLog::with_queue(RATE, queue);
        log.write_at(source("a"), lines(10, "x"), Instant::now());
        assert_eq!(log.overflowed(), 7);
        assert_eq!(queued(&receiver), (3, 0));
    }
}
