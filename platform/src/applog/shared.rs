//! An app's latest log lines as every replica sees them: with Redis configured, each
//! replica adds the lines it admitted to one stream per app (`XADD … MAXLEN ~`), so the
//! app's page and `GET …/apps/{app}/logs` show all of them whichever replica answers (the
//! load balancer has no sticky sessions). Without Redis there is one server and its memory
//! ([`super::AppLog::recent`]) is the feed.
//!
//! Bounded: a stream keeps about [`SHARED_LINES`] lines (each cut to
//! [`super::RECENT_LINE_CHARS`]) and expires a day after its last line, lines reach it
//! only within the app's log rate, and they are sent by one thread per server through a
//! bounded queue (a slow Redis drops lines and counts them; a request never waits).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::RecentLine;

/// Lines a stream keeps (about: Redis trims whole nodes).
pub const SHARED_LINES: usize = 200;
/// A stream nobody writes to is gone after a day.
const KEEP_SECS: i64 = 86_400;
/// Lines waiting for the sender before new ones are dropped.
const QUEUE_LINES: usize = 8192;
/// Lines sent in one round trip.
const BATCH_LINES: usize = 512;
/// The most lines one read returns.
pub const MAX_TAIL_LINES: usize = 500;

/// Where the app log's latest lines are read from.
#[derive(Clone, Debug)]
pub enum LogFeed {
    /// This server's memory (one server, no Redis).
    Local,
    /// The replicas' shared streams.
    Shared(Arc<SharedLog>),
}

/// Lines after a cursor, oldest first, and the cursor to ask with next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tail {
    /// The lines.
    pub lines: Vec<RecentLine>,
    /// Give this as `after` to get only newer lines.
    pub next: String,
    /// The lines come from every replica (Redis), not this server alone.
    pub shared: bool,
}

/// Why the feed could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// The cursor is not one this feed hands out.
    #[error("{0:?} is not a log cursor (give the `next` of an earlier answer)")]
    BadCursor(String),
    /// Redis did not answer.
    #[error("reading the shared app log failed: {0}")]
    Unavailable(String),
}

impl LogFeed {
    /// The shared feed on the Redis at `url`, its keys under `namespace` (the
    /// installation's, as the cache's). Starts the thread that sends the lines.
    pub async fn connect_redis(url: &str, namespace: &str) -> anyhow::Result<LogFeed> {
        let timeout = Duration::from_millis(1000);
        let client = redis::Client::open(url).context("parsing the Redis URL")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let reader = ConnectionManager::new_with_config(client.clone(), config).await?;
        let (queue, receiver) = sync_channel(QUEUE_LINES);
        let shared = Arc::new(SharedLog {
            namespace: namespace.to_owned(),
            queue,
            reader,
            timeout,
            dropped: AtomicU64::new(0),
        });
        let sender = Arc::downgrade(&shared);
        let prefix = shared.namespace.clone();
        std::thread::Builder::new()
            .name("app-log-shared".into())
            .spawn(move || send_lines(&client, &prefix, &receiver, timeout, &sender))
            .context("starting the shared app log's sender")?;
        Ok(LogFeed::Shared(shared))
    }

    /// Where a writer of lines should also send them (`None`: memory only).
    pub fn publisher(&self) -> Option<Arc<SharedLog>> {
        match self {
            LogFeed::Local => None,
            LogFeed::Shared(shared) => Some(shared.clone()),
        }
    }

    /// The lines of `tenant/app` after `after` (the `next` of an earlier tail), at most
    /// `limit`, oldest first; without `after`, the latest `limit` lines.
    pub async fn tail(
        &self,
        tenant: &str,
        app: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Tail, TailError> {
        let limit = limit.clamp(1, MAX_TAIL_LINES);
        match self {
            LogFeed::Local => {
                let after = after
                    .map(|c| c.parse::<u64>().map_err(|_| TailError::BadCursor(c.into())))
                    .transpose()?;
                Ok(super::global().tail(tenant, app, after, limit))
            }
            LogFeed::Shared(shared) => shared.tail(tenant, app, after, limit).await,
        }
    }
}

/// The replicas' shared streams (see the module).
pub struct SharedLog {
    namespace: String,
    queue: SyncSender<(String, RecentLine)>,
    reader: ConnectionManager,
    timeout: Duration,
    /// Lines not sent: the queue was full or Redis failed.
    dropped: AtomicU64,
}

impl std::fmt::Debug for SharedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLog")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

fn stream_key(namespace: &str, tenant: &str, app: &str) -> String {
    format!("{namespace}:applog:{tenant}/{app}")
}

/// `1733467200000-3`: a stream entry's id, the only cursor this feed accepts.
fn is_entry_id(cursor: &str) -> bool {
    cursor.split_once('-').is_some_and(|(ms, seq)| {
        [ms, seq]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

impl SharedLog {
    /// Queue `lines` of `tenant/app` for the streams. Never blocks.
    pub(super) fn publish(&self, tenant: &str, app: &str, lines: Vec<RecentLine>) {
        let key = format!("{tenant}/{app}");
        for line in lines {
            match self.queue.try_send((key.clone(), line)) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Lines that never reached Redis.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    async fn tail(
        &self,
        tenant: &str,
        app: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Tail, TailError> {
        if let Some(cursor) = after
            && !is_entry_id(cursor)
        {
            return Err(TailError::BadCursor(cursor.into()));
        }
        let key = stream_key(&self.namespace, tenant, app);
        let cmd = match after {
            Some(cursor) => {
                let mut cmd = redis::cmd("XRANGE");
                cmd.arg(&key).arg(format!("({cursor}")).arg("+");
                cmd
            }
            None => {
                let mut cmd = redis::cmd("XREVRANGE");
                cmd.arg(&key).arg("+").arg("-");
                cmd
            }
        };
        let mut cmd = cmd;
        cmd.arg("COUNT").arg(limit);
        let mut connection = self.reader.clone();
        let entries: Vec<(String, Vec<String>)> =
            match tokio::time::timeout(self.timeout, cmd.query_async(&mut connection)).await {
                Ok(Ok(entries)) => entries,
                Ok(Err(e)) => return Err(TailError::Unavailable(e.to_string())),
                Err(_) => {
                    return Err(TailError::Unavailable(
                        "Redis did not answer in time".into(),
                    ));
                }
            };
        let mut lines: Vec<RecentLine> = entries.into_iter().map(entry_line).collect();
        if after.is_none() {
            lines.reverse();
        }
        let next = lines
            .last()
            .map(|l| l.cursor.clone())
            .or_else(|| after.map(str::to_owned))
            .unwrap_or_else(|| "0-0".to_owned());
        Ok(Tail {
            lines,
            next,
            shared: true,
        })
    }
}

/// A stream entry as a line (fields it lacks are empty).
fn entry_line((id, fields): (String, Vec<String>)) -> RecentLine {
    let mut line = RecentLine {
        at: 0,
        version: 0,
        stream: String::new(),
        message: String::new(),
        request_id: None,
        cursor: id,
    };
    for pair in fields.chunks_exact(2) {
        let value = &pair[1];
        match pair[0].as_str() {
            "at" => line.at = value.parse().unwrap_or(0),
            "version" => line.version = value.parse().unwrap_or(0),
            "stream" => line.stream.clone_from(value),
            "message" => line.message.clone_from(value),
            "request_id" if !value.is_empty() => line.request_id = Some(value.clone()),
            _ => {}
        }
    }
    line
}

/// The sender thread: batches of queued lines, one pipeline each, until the feed is gone.
fn send_lines(
    client: &redis::Client,
    namespace: &str,
    receiver: &Receiver<(String, RecentLine)>,
    timeout: Duration,
    feed: &std::sync::Weak<SharedLog>,
) {
    let mut connection: Option<redis::Connection> = None;
    let mut warned: Option<Instant> = None;
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH_LINES {
            match receiver.try_recv() {
                Ok(line) => batch.push(line),
                Err(_) => break,
            }
        }
        let mut pipe = redis::pipe();
        let mut keys = BTreeSet::new();
        for (app, line) in &batch {
            let key = format!("{namespace}:applog:{app}");
            pipe.cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(SHARED_LINES)
                .arg("*")
                .arg("at")
                .arg(line.at)
                .arg("version")
                .arg(line.version)
                .arg("stream")
                .arg(&line.stream)
                .arg("message")
                .arg(&line.message)
                .arg("request_id")
                .arg(line.request_id.as_deref().unwrap_or(""))
                .ignore();
            keys.insert(key);
        }
        for key in keys {
            pipe.cmd("EXPIRE").arg(key).arg(KEEP_SECS).ignore();
        }
        if connection.is_none() {
            connection = client
                .get_connection_with_timeout(timeout)
                .and_then(|c| {
                    c.set_read_timeout(Some(timeout))?;
                    c.set_write_timeout(Some(timeout))?;
                    Ok(c)
                })
                .ok();
        }
        let sent = connection
            .as_mut()
            .map(|c| pipe.query::<()>(c).map_err(|e| e.to_string()))
            .unwrap_or_else(|| Err("cannot connect".into()));
        if let Err(error) = sent {
            connection = None;
            let Some(feed) = feed.upgrade() else { return };
            let before = feed
                .dropped
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            // One warning a minute while Redis fails.
            if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                warned = Some(Instant::now());
                tracing::warn!(%error, dropped = before + batch.len() as u64, "sending app log lines to Redis failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stream_entry_ids_are_cursors() {
        for good in ["0-0", "1733467200000-3"] {
            assert!(is_entry_id(good), "{good}");
        }
        for bad in [
            "", "-", "12", "12-", "-3", "1-2-3", "a-1", "1 -1", "(1-1", "+", "-",
        ] {
            assert!(!is_entry_id(bad), "{bad}");
        }
    }

    #[test]
    fn an_entry_reads_back_as_the_line_it_was() {
        let fields = [
            "at",
            "5",
            "version",
            "3",
            "stream",
            "stderr",
            "message",
            "boom",
            "request_id",
            "",
        ]
        .map(str::to_owned)
        .to_vec();
        let line = entry_line(("9-1".into(), fields));
        assert_eq!(
            line,
            RecentLine {
                at: 5,
                version: 3,
                stream: "stderr".into(),
                message: "boom".into(),
                request_id: None,
                cursor: "9-1".into(),
            }
        );
    }
}
