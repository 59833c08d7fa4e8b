//! Time as the platform sees it, injectable so tests can pin it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in Unix milliseconds.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// The clock handed around in [`crate::state::AppState`].
pub type SharedClock = Arc<dyn Clock>;

/// The real clock moved by an adjustable offset: tests use it to jump ahead (an expired
/// token, a session past its timeout) while everything else keeps running in real time.
#[derive(Debug, Default)]
pub struct ShiftedClock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl ShiftedClock {
    /// Move this clock `ms` milliseconds further ahead of real time.
    pub fn advance(&self, ms: i64) {
        self.offset_ms
            .fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now_millis(&self) -> i64 {
        SystemClock
            .now_millis()
            .saturating_add(self.offset_ms.load(std::sync::atomic::Ordering::SeqCst))
    }
}
