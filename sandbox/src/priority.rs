//! Background priority for long calls. A guest that has run for a whole tick is moved to
//! the kernel's `SCHED_IDLE` class for the rest of its call, so that any ordinary thread
//! (a short callback of another tenant, the HTTP workers, the database driver) takes the
//! core from it at once instead of waiting for the scheduler's next time slice. The CPU
//! share between long calls is still the [`Scheduler`](crate::scheduler)'s: they take
//! their own run slots, handed out by virtual time like the others.
//!
//! Leaving `SCHED_IDLE` needs `CAP_SYS_NICE` (root has it) or an `RLIMIT_NICE` of at least
//! 20 (`LimitNICE=20` in systemd, `ulimit -e 20`). Without either a thread could not be
//! given back its priority, so nothing is demoted and long calls share the run slots of
//! short ones (see [`available`]).

/// A thread moved to `SCHED_IDLE`; [`Demoted::restore`] moves it back.
#[derive(Debug)]
pub(crate) struct Demoted {
    #[cfg(target_os = "linux")]
    tid: libc::pid_t,
}

/// Whether threads may be demoted and restored in this process (probed once).
pub(crate) fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        raise_nice_limit();
        let available =
            std::thread::spawn(|| demote_current_thread().is_some_and(Demoted::restore))
                .join()
                .unwrap_or(false);
        if available {
            tracing::info!("long guest calls run in the idle scheduling class");
        } else {
            tracing::warn!(
                "long guest calls cannot be moved to the idle scheduling class (needs CAP_SYS_NICE or RLIMIT_NICE 20): short calls may wait behind them"
            );
        }
        available
    })
}

/// Raises the soft `RLIMIT_NICE` to the hard one, which an operator may have set to 20
/// (enough to leave `SCHED_IDLE`) while leaving the soft one at 0.
#[cfg(target_os = "linux")]
fn raise_nice_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit to fill in and then to set.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NICE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NICE, &limit);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn raise_nice_limit() {}

/// Moves the calling thread to `SCHED_IDLE`; `None` if the kernel refused.
#[cfg(target_os = "linux")]
pub(crate) fn demote_current_thread() -> Option<Demoted> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread; `param` is a valid sched_param.
    let done = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0;
    // SAFETY: gettid has no preconditions.
    done.then(|| Demoted {
        tid: unsafe { libc::gettid() },
    })
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn demote_current_thread() -> Option<Demoted> {
    None
}

impl Demoted {
    /// Gives the thread its ordinary priority back. False if the kernel refused.
    #[cfg(target_os = "linux")]
    pub(crate) fn restore(self) -> bool {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `tid` is a thread of this process that is still in the call that demoted
        // it (the ticket that holds this value is dropped by that call).
        unsafe { libc::sched_setscheduler(self.tid, libc::SCHED_OTHER, &param) == 0 }
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn restore(self) -> bool {
        true
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn policy() -> i32 {
        // SAFETY: pid 0 names the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn a_demoted_thread_runs_at_idle_priority_until_restored() {
        if !available() {
            // Unprivileged without RLIMIT_NICE: the kernel must refuse the way back, which
            // is why nothing is demoted then.
            let demoted = demote_current_thread();
            let back = demoted.map(Demoted::restore);
            assert_ne!(back, Some(true));
            return;
        }
        let demoted = demote_current_thread().expect("demoted");
        assert_eq!(policy(), libc::SCHED_IDLE);
        assert!(demoted.restore());
        assert_eq!(policy(), libc::SCHED_OTHER);
    }
}
