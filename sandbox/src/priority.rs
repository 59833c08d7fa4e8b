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
//!
//! A long call may also be kept off some cores ([`LongCallCores`]): with one core spared on
//! a two-core host, a light call that wakes up finds that core free instead of having to
//! take a core from a spinning guest (the kernel's preemption of an idle-class thread is
//! quick, but the woken thread still meets that core's caches as the guest left them).
//!
//! Host work done on behalf of a long call runs the same way ([`LongWork`]): a scope that
//! demotes the current thread (the platform's handling of a heavy app's answer), threads
//! that run demoted for good (the app log's writer of heavy apps' lines), and calls long by
//! nature (background jobs) that start in the idle class.

/// Host work done for long calls, run where they run: in the idle class and, with spared
/// cores, on the long calls' cores. A long call's own thread is demoted by its ticket; this
/// is for the work done for such a call elsewhere or after its ticket is gone (the app
/// log's lines of a heavy app, the platform's handling of its answer) and for work that is
/// long by nature. Cheap to clone; does nothing where threads cannot be demoted.
#[derive(Clone, Debug)]
pub struct LongWork {
    /// Whether threads may be demoted (see [`available`]).
    demote: bool,
    cores: Option<LongCallCores>,
}

impl LongWork {
    pub(crate) fn new(demote: bool, cores: Option<LongCallCores>) -> LongWork {
        LongWork { demote, cores }
    }

    /// Moves the calling thread where long calls run until the returned scope is dropped.
    /// A thread already in the idle class (a long call's, or a long-work thread) is left
    /// as it is, and so is it when the scope ends.
    pub fn enter(&self) -> LongWorkScope {
        let demoted = if self.demote && !current_thread_is_idle() {
            demote_current_thread(self.cores.as_ref())
        } else {
            None
        };
        LongWorkScope {
            demoted,
            _this_thread: std::marker::PhantomData,
        }
    }

    /// Starts a thread that runs `work` wholly as long work (a small pool of such threads
    /// is what work is handed to when the thread that has it must stay ordinary).
    pub fn spawn<T: Send + 'static>(
        &self,
        name: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<T>> {
        let this = self.clone();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let _scope = this.enter();
                work()
            })
    }
}

/// The calling thread's time as long work (see [`LongWork::enter`]); dropping it gives the
/// thread its class and cores back. Not `Send`: it belongs to the thread it demoted.
#[derive(Debug)]
#[must_use = "the thread is restored when the scope is dropped"]
pub struct LongWorkScope {
    demoted: Option<Demoted>,
    _this_thread: std::marker::PhantomData<*const ()>,
}

impl LongWorkScope {
    /// Whether this scope moved its thread (false where threads cannot be demoted, or when
    /// the thread already ran as long work).
    pub fn demoted(&self) -> bool {
        self.demoted.is_some()
    }
}

impl Drop for LongWorkScope {
    fn drop(&mut self) {
        if let Some(demoted) = self.demoted.take() {
            let restored = demoted.restore();
            debug_assert!(restored, "a thread kept the idle class after long work");
        }
    }
}

/// Whether the calling thread is in the idle class.
#[cfg(target_os = "linux")]
fn current_thread_is_idle() -> bool {
    // SAFETY: pid 0 names the calling thread.
    unsafe { libc::sched_getscheduler(0) == libc::SCHED_IDLE }
}

#[cfg(not(target_os = "linux"))]
fn current_thread_is_idle() -> bool {
    false
}

/// A thread moved to `SCHED_IDLE`; [`Demoted::restore`] moves it back.
#[derive(Debug)]
pub(crate) struct Demoted {
    #[cfg(target_os = "linux")]
    tid: libc::pid_t,
    /// The cores the thread could use before, when a long call's cores were set.
    #[cfg(target_os = "linux")]
    cores_before: Option<Box<libc::cpu_set_t>>,
}

/// The cores long calls run on: the process's cores but the first `spared` ones (in the
/// process's affinity mask). `None` when nothing is spared or nothing would be left.
#[derive(Clone)]
pub(crate) struct LongCallCores {
    #[cfg(target_os = "linux")]
    set: Box<libc::cpu_set_t>,
    count: usize,
}

impl std::fmt::Debug for LongCallCores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LongCallCores({} cores)", self.count)
    }
}

impl LongCallCores {
    /// Long calls' cores when `spared` cores are kept for everything else.
    #[cfg(target_os = "linux")]
    pub(crate) fn sparing(spared: usize) -> Option<LongCallCores> {
        if spared == 0 {
            return None;
        }
        let process = current_cores()?;
        // SAFETY: an all-zero cpu_set_t is the empty set.
        let mut set: Box<libc::cpu_set_t> = Box::new(unsafe { std::mem::zeroed() });
        let mut seen = 0;
        let mut count = 0;
        for cpu in 0..libc::CPU_SETSIZE as usize {
            // SAFETY: `cpu` is below CPU_SETSIZE.
            if unsafe { libc::CPU_ISSET(cpu, &process) } {
                seen += 1;
                if seen > spared {
                    // SAFETY: as above.
                    unsafe { libc::CPU_SET(cpu, &mut set) };
                    count += 1;
                }
            }
        }
        (count > 0).then_some(LongCallCores { set, count })
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn sparing(_spared: usize) -> Option<LongCallCores> {
        None
    }

    /// How many cores long calls may use.
    pub(crate) fn count(&self) -> usize {
        self.count
    }
}

/// The calling thread's affinity mask.
#[cfg(target_os = "linux")]
fn current_cores() -> Option<libc::cpu_set_t> {
    // SAFETY: an all-zero cpu_set_t is valid to fill in; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        (libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0)
            .then_some(set)
    }
}

/// Whether threads may be demoted and restored in this process (probed once).
pub(crate) fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        raise_nice_limit();
        let available =
            std::thread::spawn(|| demote_current_thread(None).is_some_and(Demoted::restore))
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

/// Moves the calling thread to `SCHED_IDLE` and, when given, onto the long calls' cores;
/// `None` if the kernel refused the class.
#[cfg(target_os = "linux")]
pub(crate) fn demote_current_thread(cores: Option<&LongCallCores>) -> Option<Demoted> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread; `param` is a valid sched_param.
    let done = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0;
    if !done {
        return None;
    }
    let cores_before = cores.and_then(|cores| {
        let before = current_cores()?;
        // SAFETY: pid 0 names the calling thread; `cores.set` is a valid cpu_set_t.
        let moved = unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &*cores.set)
        } == 0;
        moved.then(|| Box::new(before))
    });
    Some(Demoted {
        // SAFETY: gettid has no preconditions.
        tid: unsafe { libc::gettid() },
        cores_before,
    })
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn demote_current_thread(_cores: Option<&LongCallCores>) -> Option<Demoted> {
    None
}

impl Demoted {
    /// Gives the thread its ordinary priority back. False if the kernel refused.
    #[cfg(target_os = "linux")]
    pub(crate) fn restore(self) -> bool {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `tid` is a thread of this process that is still in the call that demoted
        // it (the ticket that holds this value is dropped by that call); `before` is a
        // valid cpu_set_t.
        unsafe {
            let cores_back = self.cores_before.as_ref().is_none_or(|before| {
                libc::sched_setaffinity(self.tid, std::mem::size_of::<libc::cpu_set_t>(), &**before)
                    == 0
            });
            libc::sched_setscheduler(self.tid, libc::SCHED_OTHER, &param) == 0 && cores_back
        }
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
            let demoted = demote_current_thread(None);
            let back = demoted.map(Demoted::restore);
            assert_ne!(back, Some(true));
            return;
        }
        let demoted = demote_current_thread(None).expect("demoted");
        assert_eq!(policy(), libc::SCHED_IDLE);
        assert!(demoted.restore());
        assert_eq!(policy(), libc::SCHED_OTHER);
    }

    fn core_count() -> usize {
        let set = current_cores().expect("affinity");
        // SAFETY: an initialized cpu_set_t.
        unsafe { libc::CPU_COUNT(&set) as usize }
    }

    #[test]
    fn long_work_runs_in_the_idle_class_on_the_long_calls_cores_for_its_scope() {
        let all = core_count();
        if all < 2 || !available() {
            // Nothing can be demoted: the scope says so and changes nothing.
            let scope = LongWork::new(false, None).enter();
            assert!(!scope.demoted());
            assert_eq!(policy(), libc::SCHED_OTHER);
            return;
        }
        let work = LongWork::new(true, LongCallCores::sparing(1));
        {
            let scope = work.enter();
            assert!(scope.demoted());
            assert_eq!((policy(), core_count()), (libc::SCHED_IDLE, all - 1));
            // Nested: the inner scope finds the thread demoted and leaves it so.
            let inner = work.enter();
            assert!(!inner.demoted());
            drop(inner);
            assert_eq!((policy(), core_count()), (libc::SCHED_IDLE, all - 1));
        }
        assert_eq!((policy(), core_count()), (libc::SCHED_OTHER, all));
        // A long-work thread runs its whole life that way.
        let seen = work
            .spawn("long-work-test", || (policy(), core_count()))
            .expect("thread")
            .join()
            .expect("joined");
        assert_eq!(seen, (libc::SCHED_IDLE, all - 1));
        // Without demotion a scope is a no-op.
        let off = LongWork::new(false, LongCallCores::sparing(1));
        assert!(!off.enter().demoted());
        assert_eq!(policy(), libc::SCHED_OTHER);
    }

    #[test]
    fn a_demoted_thread_leaves_the_spared_cores_until_restored() {
        let all = core_count();
        assert!(
            LongCallCores::sparing(0).is_none(),
            "nothing spared, nothing set"
        );
        assert!(
            LongCallCores::sparing(all).is_none(),
            "no core would be left for long calls"
        );
        if all < 2 || !available() {
            return;
        }
        let cores = LongCallCores::sparing(1).expect("cores for long calls");
        assert_eq!(cores.count(), all - 1);
        let demoted = demote_current_thread(Some(&cores)).expect("demoted");
        assert_eq!(core_count(), all - 1);
        assert!(demoted.restore());
        assert_eq!(core_count(), all);
        assert_eq!(policy(), libc::SCHED_OTHER);
    }
}
