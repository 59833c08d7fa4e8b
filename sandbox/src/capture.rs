//! Log capture: the guest's stdout, stderr and `host.log` lines, bounded per call.
//!
//! wasmtime-wasi's stock `MemoryOutputPipe` traps the guest once it is full, which would
//! turn a chatty `println!` into a failed callback. This sink instead accepts every write
//! and silently drops what is past the call's byte budget, then says so in one final line.
//! It must never block and never fail a write.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much of stderr is kept, independently of the log budget, to recover a panic message
/// even when the guest had already used up its log budget before panicking.
const STDERR_TAIL_BYTES: usize = 8 << 10;

/// A call keeps at most `log_bytes / LINE_COST` lines (at least one), whatever their
/// length: each line costs the host a [`LogLine`] and the server's log a record even when
/// its text is empty. Without this cap a guest calling `host.log("")` in a loop could fill
/// the host's memory and the server's log while never touching the byte budget.
pub const LINE_COST: usize = 64;

/// Bytes a guest may write per `check-write` permit. The sink accepts any amount, so this
/// only sets the chunk size of the guest's blocking writes.
const WRITE_PERMIT: usize = 1 << 20;

/// Severity of a `host.log` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal information.
    Info,
    /// Something unexpected that did not stop the callback.
    Warn,
    /// A failure.
    Error,
}

/// Where a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogStream {
    /// The guest called `host.log` with this level. The sandbox itself also reports a
    /// truncated log this way, at [`Level::Warn`].
    Host(Level),
    /// A line the guest wrote to stdout.
    Stdout,
    /// A line the guest wrote to stderr.
    Stderr,
}

/// One line of a call's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// Where the line came from.
    pub stream: LogStream,
    /// The text, without its line ending; invalid UTF-8 is replaced.
    pub message: String,
}

/// Which of the guest's output pipes a write went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pipe {
    Stdout,
    Stderr,
}

/// The shared, bounded log of one instance; reset at the start of every call.
#[derive(Clone)]
pub(crate) struct LogSink(Arc<Mutex<LogBuffer>>);

#[derive(Default)]
struct LogBuffer {
    /// Byte budget of the current call.
    limit: usize,
    /// Bytes accepted so far in the current call.
    used: usize,
    /// Bytes dropped because the budget was used up.
    dropped: usize,
    /// Lines dropped because the call already kept its most lines ([`LINE_COST`]).
    dropped_lines: usize,
    lines: Vec<LogLine>,
    /// Unterminated last line of each pipe.
    stdout_partial: Vec<u8>,
    stderr_partial: Vec<u8>,
    /// The last bytes written to stderr this call, whether or not they fit the budget.
    stderr_tail: Vec<u8>,
}

impl LogSink {
    /// An empty sink with a budget of `limit` bytes.
    pub(crate) fn new(limit: usize) -> LogSink {
        let sink = LogSink(Arc::default());
        sink.reset(limit);
        sink
    }

    fn lock(&self) -> MutexGuard<'_, LogBuffer> {
        // A panic while holding the lock can only come from an allocation failure in this
        // module; the buffer is still consistent enough to keep logging.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets everything and starts a new call with a budget of `limit` bytes.
    pub(crate) fn reset(&self, limit: usize) {
        *self.lock() = LogBuffer {
            limit,
            ..LogBuffer::default()
        };
    }

    /// Records bytes the guest wrote to one of its pipes.
    pub(crate) fn write(&self, pipe: Pipe, bytes: &[u8]) {
        let mut buffer = self.lock();
        if pipe == Pipe::Stderr {
            let tail = &mut buffer.stderr_tail;
            tail.extend_from_slice(&bytes[bytes.len().saturating_sub(STDERR_TAIL_BYTES)..]);
            // Trim only when the tail has doubled, so that trimming stays amortised O(1).
            if tail.len() > 2 * STDERR_TAIL_BYTES {
                let excess = tail.len() - STDERR_TAIL_BYTES;
                tail.drain(..excess);
            }
        }
        let room = buffer.limit - buffer.used;
        let accepted = bytes.len().min(room);
        buffer.used += accepted;
        buffer.dropped += bytes.len() - accepted;
        if accepted == 0 {
            return;
        }
        let (stream, partial) = match pipe {
            Pipe::Stdout => (
                LogStream::Stdout,
                std::mem::take(&mut buffer.stdout_partial),
            ),
            Pipe::Stderr => (
                LogStream::Stderr,
                std::mem::take(&mut buffer.stderr_partial),
            ),
        };
        let mut partial = partial;
        let start = partial.len();
        partial.extend_from_slice(&bytes[..accepted]);
        // Only the new bytes can hold a line end, so only they are searched: a guest that
        // writes one byte at a time must not make each write scan the whole partial line.
        if let Some(last) = partial[start..].iter().rposition(|b| *b == b'\n') {
            let complete: Vec<u8> = partial.drain(..=start + last).collect();
            for line in complete[..complete.len() - 1].split(|b| *b == b'\n') {
                buffer.push(line_of(stream, line));
            }
        }
        match pipe {
            Pipe::Stdout => buffer.stdout_partial = partial,
            Pipe::Stderr => buffer.stderr_partial = partial,
        }
    }

    /// Records a `host.log` line, truncated to what is left of the budget. Only the part
    /// kept is copied: `message` may be a guest's string of any length, still in its memory.
    pub(crate) fn host(&self, level: Level, message: &str) {
        let mut buffer = self.lock();
        let room = buffer.limit - buffer.used;
        let mut cut = message.len().min(room);
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        buffer.dropped += message.len() - cut;
        buffer.used += cut;
        if cut > 0 || room > 0 {
            buffer.push(LogLine {
                stream: LogStream::Host(level),
                message: message[..cut].to_owned(),
            });
        }
    }

    /// Ends the call: returns its lines, including unterminated last lines and a note if
    /// anything was dropped.
    pub(crate) fn take(&self) -> Vec<LogLine> {
        let mut buffer = self.lock();
        let stdout = std::mem::take(&mut buffer.stdout_partial);
        if !stdout.is_empty() {
            buffer.push(line_of(LogStream::Stdout, &stdout));
        }
        let stderr = std::mem::take(&mut buffer.stderr_partial);
        if !stderr.is_empty() {
            buffer.push(line_of(LogStream::Stderr, &stderr));
        }
        if buffer.dropped > 0 || buffer.dropped_lines > 0 {
            let note = format!(
                "log output past the {}-byte limit was dropped ({} bytes, {} lines; at most {} lines are kept)",
                buffer.limit,
                buffer.dropped,
                buffer.dropped_lines,
                buffer.max_lines()
            );
            buffer.lines.push(LogLine {
                stream: LogStream::Host(Level::Warn),
                message: note,
            });
            buffer.dropped = 0;
            buffer.dropped_lines = 0;
        }
        std::mem::take(&mut buffer.lines)
    }

    /// The last few KiB the guest wrote to stderr during this call, budget or not.
    pub(crate) fn stderr_tail(&self) -> String {
        String::from_utf8_lossy(&self.lock().stderr_tail).into_owned()
    }

    /// A WASI stdout or stderr that writes into this sink.
    pub(crate) fn stream(&self, pipe: Pipe) -> CaptureStream {
        CaptureStream {
            sink: self.clone(),
            pipe,
        }
    }
}

impl LogBuffer {
    fn max_lines(&self) -> usize {
        (self.limit / LINE_COST).max(1)
    }

    /// Keeps `line` (its text already counted) unless the call kept its most lines.
    fn push(&mut self, line: LogLine) {
        if self.lines.len() >= self.max_lines() {
            self.dropped_lines += 1;
            self.dropped += line.message.len();
            return;
        }
        self.lines.push(line);
    }
}

fn line_of(stream: LogStream, bytes: &[u8]) -> LogLine {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    LogLine {
        stream,
        message: String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The guest's view of one captured pipe: always ready, never full, never failing.
#[derive(Clone)]
pub(crate) struct CaptureStream {
    sink: LogSink,
    pipe: Pipe,
}

#[wasmtime_wasi::async_trait]
impl Pollable for CaptureStream {
    async fn ready(&mut self) {}
}

impl OutputStream for CaptureStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.sink.write(self.pipe, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl tokio::io::AsyncWrite for CaptureStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.sink.write(self.pipe, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CaptureStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CaptureStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(lines: &[LogLine]) -> Vec<(LogStream, &str)> {
        lines
            .iter()
            .map(|line| (line.stream, line.message.as_str()))
            .collect()
    }

    #[test]
    fn writes_are_split_into_lines_per_pipe() {
        let sink = LogSink::new(1024);
        sink.write(Pipe::Stdout, b"one\ntw");
        sink.write(Pipe::Stderr, b"err\r\n");
        sink.write(Pipe::Stdout, b"o\nthree");
        sink.host(Level::Info, "hi");
        let lines = sink.take();
        assert_eq!(
            messages(&lines),
            vec![
                (LogStream::Stdout, "one"),
                (LogStream::Stderr, "err"),
                (LogStream::Stdout, "two"),
                (LogStream::Host(Level::Info), "hi"),
                (LogStream::Stdout, "three"),
            ]
        );
    }

    #[test]
    fn output_past_the_budget_is_dropped_with_a_note() {
        let sink = LogSink::new(10);
        sink.write(Pipe::Stdout, b"0123456789abcdef\n");
        sink.host(Level::Warn, "more");
        let lines = sink.take();
        assert_eq!(lines[0].message, "0123456789");
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[1].stream, LogStream::Host(Level::Warn));
        assert!(lines[1].message.contains("11 bytes"), "{lines:?}");
        let total: usize = lines[..1].iter().map(|l| l.message.len()).sum();
        assert!(total <= 10);
    }

    #[test]
    fn host_lines_are_cut_on_a_char_boundary() {
        let sink = LogSink::new(5);
        sink.host(Level::Info, "ééé");
        let lines = sink.take();
        assert_eq!(lines[0].message, "éé");
    }

    #[test]
    fn stderr_tail_survives_an_exhausted_budget() {
        let sink = LogSink::new(4);
        sink.write(Pipe::Stdout, b"filler\n");
        sink.write(Pipe::Stderr, b"thread panicked at x:\nboom\n");
        assert!(sink.stderr_tail().contains("boom"));
        let big = vec![b'x'; 3 * STDERR_TAIL_BYTES];
        sink.write(Pipe::Stderr, &big);
        sink.write(Pipe::Stderr, b"last words");
        let tail = sink.stderr_tail();
        assert!(tail.len() <= 2 * STDERR_TAIL_BYTES);
        assert!(tail.ends_with("last words"));
    }

    #[test]
    fn empty_lines_count_against_the_line_cap() {
        let budget = 64 << 10;
        let sink = LogSink::new(budget);
        for _ in 0..1_000_000 {
            sink.host(Level::Info, "");
        }
        let lines = sink.take();
        // At most budget / LINE_COST lines are kept; the rest is counted in one note.
        assert_eq!(lines.len(), budget / LINE_COST + 1);
        let note = &lines.last().expect("a note").message;
        let dropped: usize = note
            .split(", ")
            .nth(1)
            .and_then(|part| part.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("the note counts the dropped lines");
        assert_eq!(dropped + lines.len() - 1, 1_000_000, "{note}");
        // Empty lines on stdout: the same cap.
        sink.reset(budget);
        sink.write(Pipe::Stdout, &[b'\n'; 100_000]);
        assert_eq!(sink.take().len(), budget / LINE_COST + 1);
    }

    #[test]
    fn reset_starts_a_new_budget() {
        let sink = LogSink::new(3);
        sink.write(Pipe::Stdout, b"abcdef\n");
        let _ = sink.take();
        sink.reset(4);
        sink.write(Pipe::Stdout, b"xyz\n");
        assert_eq!(messages(&sink.take()), vec![(LogStream::Stdout, "xyz")]);
    }
}
