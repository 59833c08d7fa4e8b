//! The sandbox's error type, and the failure of one call (error plus the logs it produced).
//!
//! Messages name the limit or the offending import so that they can be shown to an app's
//! author as they are; they never contain host paths.

use crate::capture::LogLine;
use std::fmt;
use std::time::Duration;

/// Everything that can go wrong while loading or calling a component.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// The guest ran past its wall-clock budget and was interrupted.
    #[error("callback exceeded its {} deadline", human_duration(*limit))]
    Deadline {
        /// The deadline that was exceeded.
        limit: Duration,
    },
    /// The guest tried to grow its linear memory past the cap.
    #[error("callback exceeded its memory limit of {}", human_bytes(*limit))]
    Memory {
        /// The memory cap, in bytes.
        limit: usize,
    },
    /// The guest returned a string (outputs, error message, layout or dependencies) larger
    /// than the output cap.
    #[error(
        "callback output of {} exceeds its limit of {}",
        human_bytes(*size),
        human_bytes(*limit)
    )]
    OutputTooLarge {
        /// Size of the returned string, in bytes.
        size: usize,
        /// The output cap, in bytes.
        limit: usize,
    },
    /// The request was too large to hand to the guest; the guest did not run.
    #[error(
        "callback request of {} exceeds its limit of {}",
        human_bytes(*size),
        human_bytes(*limit)
    )]
    InputTooLarge {
        /// Size of the callback id plus request JSON, in bytes.
        size: usize,
        /// The request cap, in bytes.
        limit: usize,
    },
    /// The guest panicked. Rust guests built with `panic = "abort"` trap after printing the
    /// panic to stderr; the message is recovered from there.
    #[error("callback panicked: {message}")]
    Panic {
        /// The panic message, as the guest printed it.
        message: String,
    },
    /// The guest's `run-callback` returned `err(failed(...))`: the author's own error.
    #[error("callback failed: {message}")]
    Callback {
        /// The guest's message.
        message: String,
    },
    /// The guest's `run-callback` returned `err(invalid-input(...))`: the request did not
    /// fit the callback (an input of the wrong type or shape).
    #[error("callback rejected its input: {message}")]
    InvalidInput {
        /// The guest's message.
        message: String,
    },
    /// The call was cancelled through [`CallOptions::cancel`](crate::CallOptions::cancel)
    /// and stopped; its instance was dropped.
    #[error("callback was cancelled")]
    Cancelled,
    /// Any other trap: an `unreachable`, a stack overflow, a call to `exit`, ….
    #[error("callback trapped: {message}")]
    Trap {
        /// What wasmtime reported.
        message: String,
    },
    /// The component imports an interface the sandbox does not grant.
    #[error("component imports `{import}`, which the sandbox does not grant")]
    ForbiddenImport {
        /// The full import name, with its version, e.g. `wasi:sockets/tcp@0.2.6`.
        import: String,
    },
    /// The bytes are not a dashboard component: not a component at all, too large, the
    /// wrong world, bad layout or dependencies JSON, and so on.
    #[error("not a valid dashboard component: {reason}")]
    InvalidComponent {
        /// Why the component was refused.
        reason: String,
    },
    /// The [`Limits`](crate::Limits) or [`SandboxConfig`](crate::SandboxConfig) cannot be
    /// honoured.
    #[error("invalid sandbox limits: {reason}")]
    InvalidLimits {
        /// What is wrong with them.
        reason: String,
    },
    /// Every pooling-allocator slot is in use; try again later or raise
    /// [`SandboxConfig::max_instances`](crate::SandboxConfig::max_instances).
    #[error("no free sandbox instance slot: {message}")]
    Capacity {
        /// What wasmtime reported.
        message: String,
    },
    /// A file-system operation of the host failed (the cache directory, the data folder).
    #[error("{context}: {source}")]
    Io {
        /// What the sandbox was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// wasmtime failed in a way that is not the guest's fault (engine creation, linking).
    #[error("wasmtime error: {message}")]
    Engine {
        /// What wasmtime reported, with its cause chain.
        message: String,
    },
}

impl Error {
    /// Whether a sandbox limit stopped the guest: the deadline, the memory cap or the
    /// output cap.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Error::Deadline { .. } | Error::Memory { .. } | Error::OutputTooLarge { .. }
        )
    }

    /// An engine error from a wasmtime error, keeping its cause chain in the message.
    pub(crate) fn engine(error: &wasmtime::Error) -> Error {
        Error::Engine {
            message: format!("{error:#}"),
        }
    }
}

/// A failed call: the error, plus whatever the guest logged before it failed, so that the
/// platform can still show those lines to the app's author.
#[derive(Debug)]
pub struct CallFailure {
    /// What went wrong.
    pub error: Error,
    /// Log lines captured before the failure.
    pub logs: Vec<LogLine>,
}

impl CallFailure {
    /// A failure that happened before the guest produced any log line.
    pub(crate) fn without_logs(error: Error) -> CallFailure {
        CallFailure {
            error,
            logs: Vec::new(),
        }
    }
}

impl fmt::Display for CallFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for CallFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<CallFailure> for Error {
    fn from(failure: CallFailure) -> Error {
        failure.error
    }
}

/// `5s`, `300ms`, or `1.5s`: the shortest exact rendering for messages.
pub(crate) fn human_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else if duration.as_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{duration:?}")
    }
}

/// `128 MiB`, `64 KiB` or `1234 bytes`: exact, in the largest unit that divides evenly.
pub(crate) fn human_bytes(bytes: usize) -> String {
    const KIB: usize = 1 << 10;
    const MIB: usize = 1 << 20;
    const GIB: usize = 1 << 30;
    match bytes {
        0 => "0 bytes".to_string(),
        b if b.is_multiple_of(GIB) => format!("{} GiB", b / GIB),
        b if b.is_multiple_of(MIB) => format!("{} MiB", b / MIB),
        b if b.is_multiple_of(KIB) => format!("{} KiB", b / KIB),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_message_names_the_limit() {
        let error = Error::Deadline {
            limit: Duration::from_secs(5),
        };
        assert_eq!(error.to_string(), "callback exceeded its 5s deadline");
        let error = Error::Deadline {
            limit: Duration::from_millis(300),
        };
        assert_eq!(error.to_string(), "callback exceeded its 300ms deadline");
    }

    #[test]
    fn memory_and_output_messages_name_the_limit() {
        let error = Error::Memory { limit: 128 << 20 };
        assert_eq!(
            error.to_string(),
            "callback exceeded its memory limit of 128 MiB"
        );
        let error = Error::OutputTooLarge {
            size: 20 << 20,
            limit: 8 << 20,
        };
        assert_eq!(
            error.to_string(),
            "callback output of 20 MiB exceeds its limit of 8 MiB"
        );
        assert_eq!(human_bytes(1234), "1234 bytes");
    }

    #[test]
    fn only_deadline_memory_and_output_are_limits() {
        assert!(
            Error::Deadline {
                limit: Duration::from_secs(1)
            }
            .is_limit()
        );
        assert!(Error::Memory { limit: 1 }.is_limit());
        assert!(Error::OutputTooLarge { size: 2, limit: 1 }.is_limit());
        assert!(
            !Error::Trap {
                message: String::new()
            }
            .is_limit()
        );
        assert!(!Error::InputTooLarge { size: 2, limit: 1 }.is_limit());
    }
}
