//! Logging to the app's log on the platform.
//!
//! In a component every line goes to the `host.log` import, where the platform attaches
//! tenant, app and request ids and caps the volume. Natively (tests, benchmarks) lines go
//! to standard error so `cargo test` shows them. Nothing here buffers or formats beyond
//! the message itself.

/// How severe a log line is; mirrors the WIT world's `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Diagnostics for the author.
    Debug,
    /// Normal events.
    Info,
    /// Something unexpected that the app survived.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    /// The lowercase name used in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Append `message` to the app's log at `level`.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::export::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{}] {message}", level.as_str());
}

/// Log at [`Level::Trace`].
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Log at [`Level::Debug`].
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Log at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Log at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Log at [`Level::Error`].
pub fn error(message: &str) {
    log(Level::Error, message);
}
