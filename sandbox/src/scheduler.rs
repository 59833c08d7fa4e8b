//! A CPU share per tenant: the [`Scheduler`] lets at most `slots` guests run at once (one
//! per core) and hands the cores out fairly, first between tenants in proportion to their
//! weight, then between the apps of a tenant.
//!
//! Every call runs on its own blocking thread; what the scheduler bounds is how many of those
//! threads run guest code. A call takes a run slot before it instantiates or enters the guest
//! ([`Scheduler::enter`]), and gives it up when it ends, when it sleeps and at an epoch tick
//! where a waiting call deserves the core more ([`Ticket::checkpoint`], called from the
//! store's epoch callback). A thread without a slot is parked and costs no CPU. This is
//! cooperative scheduling with a preemption point at every epoch tick: a guest cannot hold
//! a core past a tick while others wait, because wasmtime calls the epoch callback from
//! inside any running loop.
//!
//! Fairness is virtual time, as in Linux's CFS: each tenant (and each app within it) accrues
//! the CPU time its calls held, divided by its weight; a free slot goes to the waiting call
//! whose tenant, then app, has the least virtual time, oldest call first within an app. A
//! tenant that was idle comes back at the least virtual time of the busy tenants minus a
//! small credit, so it is served at once but cannot bank idle time. When a call must wait
//! the scheduler advances the engine's epoch at once, so running guests reach their
//! preemption point within microseconds instead of at the next tick.
//!
//! A call that has held a core for [`LONG_AFTER`] becomes a long call: its thread moves to
//! the kernel's idle class ([`crate::priority`]) and it takes a slot among the long calls'
//! own `slots`, shared by the same virtual times. Short calls then never wait behind long
//! ones: neither for a slot nor for the core, which the kernel gives to an ordinary thread
//! the moment it wakes. Where threads cannot be demoted, long calls keep the short calls'
//! slots.

use crate::config::Owner;
use crate::priority::Demoted;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};
use wasmtime::Engine;

/// Virtual-time credit of a tenant or app that becomes busy again: enough to run a short
/// callback before the tenant that kept the cores busy gets them back.
const WAKE_CREDIT: Duration = Duration::from_millis(20);

/// Least time a call holds its slot before another call of the same tenant may take it.
/// Between tenants there is no such grace: the less-served tenant goes first at once.
const MIN_SLICE: Duration = Duration::from_millis(10);

/// CPU time after which a call is a long call (one tick: a light callback never gets there).
const LONG_AFTER: Duration = Duration::from_millis(10);

/// How often a parked call looks at its cancellation flag.
const CANCEL_CHECK: Duration = Duration::from_millis(50);

/// Sleeps shorter than this keep their slot (giving it up would cost more than it frees).
pub(crate) const MIN_YIELDING_SLEEP: Duration = Duration::from_millis(1);

/// How long a long call runs when the starvation bound lets it past a busy foreground.
const ALLOWANCE: Duration = Duration::from_millis(10);

/// How long an app stays heavy after one of its calls ran long or hit a resource limit:
/// meanwhile its new calls start as long calls (idle class, long slots) instead of taking
/// an ordinary core for their first tick. Longer than the gap between the calls of a
/// client that keeps a hostile callback going.
const HEAVY_FOR: Duration = Duration::from_secs(2);

/// Heavy apps remembered at most (the oldest marks are forgotten first).
const MAX_HEAVY_APPS: usize = 4096;

/// The run slots and the accounts of every tenant with calls.
pub(crate) struct Scheduler {
    slots: usize,
    /// Whether long calls move to the idle class and their own slots.
    demote: bool,
    /// The starvation bound of long calls parked behind the foreground; `None`: long calls
    /// are never parked for it.
    park: Option<Duration>,
    /// Advanced when a call starts waiting, so that running guests check in at once.
    engine: Engine,
    /// The cores long calls are moved to with the idle class (`None`: all of them).
    long_cores: Option<crate::priority::LongCallCores>,
    state: Mutex<Queue>,
}

/// Short calls and long calls each have `slots` run slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Short = 0,
    Long = 1,
}

#[derive(Default)]
struct Queue {
    /// Slots held, per [`Class`].
    running: [usize; 2],
    /// Calls waiting for a slot.
    waiting: Vec<Waiter>,
    tenants: HashMap<i64, Account>,
    /// Orders calls of one app (oldest first).
    next_seq: u64,
    /// Short calls holding or waiting for a slot, plus [`Foreground`] marks.
    foreground: usize,
    /// Since when long calls have been held back by the foreground with none running.
    parked_since: Option<Instant>,
    /// The long call (its `seq`) running past a busy foreground on the starvation bound.
    allowance: Option<u64>,
    /// Apps (tenant, app) whose calls start as long calls, until when ([`HEAVY_FOR`]).
    heavy: HashMap<(i64, i64), Instant>,
    /// Calls started as long calls, for [`CpuState::started_long`].
    started_long: u64,
}

/// Whether a long call may take a free long slot now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Open,
    /// Only as the starvation bound's allowance.
    Allowance,
    Closed,
}

/// What a tenant (or an app) has been given, in weighted nanoseconds.
#[derive(Default)]
struct Account {
    vtime: u128,
    /// Calls running or waiting.
    busy: usize,
    apps: HashMap<i64, AppAccount>,
}

#[derive(Default)]
struct AppAccount {
    vtime: u128,
    busy: usize,
}

struct Waiter {
    class: Class,
    owner: Owner,
    seq: u64,
    thread: Thread,
    granted: Arc<AtomicBool>,
}

/// What the scheduler is doing, for monitoring and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuState {
    /// Short calls holding a run slot.
    pub short_running: usize,
    /// Long calls holding a run slot.
    pub long_running: usize,
    /// Calls waiting for a slot (long calls parked behind the foreground included).
    pub waiting: usize,
    /// Short calls holding or waiting for a slot, plus [`Foreground`] marks.
    pub foreground: usize,
    /// Calls that started as long calls because their app was heavy (since start-up).
    pub started_long: u64,
}

/// Why a call could not get a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The call's deadline passed while it waited.
    Deadline,
    /// The call was cancelled while it waited.
    Cancelled,
}

impl Scheduler {
    pub(crate) fn new(
        slots: usize,
        engine: Engine,
        park: Option<Duration>,
        spared_cores: usize,
    ) -> Arc<Scheduler> {
        let demote = crate::priority::available();
        let mut scheduler = Scheduler::with_demotion(slots, engine, demote, park);
        if demote {
            let cores = crate::priority::LongCallCores::sparing(spared_cores);
            if let Some(cores) = &cores {
                tracing::info!(
                    long_call_cores = cores.count(),
                    spared_cores,
                    "long guest calls keep off the spared cores"
                );
            }
            Arc::get_mut(&mut scheduler)
                .expect("a scheduler just made is not shared")
                .long_cores = cores;
        }
        scheduler
    }

    fn with_demotion(
        slots: usize,
        engine: Engine,
        demote: bool,
        park: Option<Duration>,
    ) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            slots: slots.max(1),
            demote,
            // Without the idle class there are no long calls to park.
            park: park.filter(|_| demote),
            long_cores: None,
            engine,
            state: Mutex::new(Queue::default()),
        })
    }

    /// Counts and slots, as of now.
    pub(crate) fn state(&self) -> CpuState {
        let queue = self.queue();
        CpuState {
            short_running: queue.running[Class::Short as usize],
            long_running: queue.running[Class::Long as usize],
            waiting: queue.waiting.len(),
            foreground: queue.foreground,
            started_long: queue.started_long,
        }
    }

    /// Marks foreground work until the mark is dropped: long calls are parked meanwhile.
    pub(crate) fn foreground(self: &Arc<Self>) -> Foreground {
        self.foreground_up(&mut self.queue());
        Foreground {
            scheduler: self.clone(),
        }
    }

    /// One more foreground activity; the first stops running long calls at once.
    fn foreground_up(&self, queue: &mut Queue) {
        queue.foreground += 1;
        if queue.foreground == 1 && self.park.is_some() && queue.running[Class::Long as usize] > 0 {
            // Running long calls look at the gate at their next epoch check: now.
            self.engine.increment_epoch();
        }
    }

    /// One foreground activity less; the last lets the parked long calls run.
    fn foreground_down(&self, queue: &mut Queue) {
        queue.foreground = queue.foreground.saturating_sub(1);
        if queue.foreground > 0 || self.park.is_none() {
            return;
        }
        queue.parked_since = None;
        queue.allowance = None;
        while queue.running[Class::Long as usize] < self.slots {
            let Some(index) = queue.best_waiter(Class::Long) else {
                break;
            };
            queue.running[Class::Long as usize] += 1;
            let waiter = queue.waiting.swap_remove(index);
            waiter.granted.store(true, Ordering::Release);
            waiter.thread.unpark();
        }
    }

    /// Whether long calls may take a free slot at `now`.
    fn gate(&self, queue: &Queue, now: Instant) -> Gate {
        let Some(bound) = self.park else {
            return Gate::Open;
        };
        if queue.foreground == 0 {
            Gate::Open
        } else if queue.allowance.is_none()
            && queue
                .parked_since
                .is_some_and(|since| now.duration_since(since) >= bound)
        {
            Gate::Allowance
        } else {
            Gate::Closed
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while the lock is held; a poisoned lock still holds valid counts.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where host work done for long calls runs: their class and cores.
    pub(crate) fn long_work(&self) -> crate::priority::LongWork {
        crate::priority::LongWork::new(self.demote, self.long_cores.clone())
    }

    /// Whether calls of `owner`'s app start as long calls now (its calls ran long or hit a
    /// limit within [`HEAVY_FOR`]).
    pub(crate) fn is_heavy(&self, owner: Owner) -> bool {
        self.demote && self.queue().is_heavy(owner, Instant::now())
    }

    /// Starts a call of `owner`: waits (parked) for a run slot until `deadline`.
    #[cfg(test)]
    pub(crate) fn enter(
        self: &Arc<Self>,
        owner: Owner,
        deadline: Instant,
        cancel: Option<Arc<AtomicBool>>,
    ) -> Result<Ticket, Refused> {
        self.enter_as(owner, deadline, cancel, false)
    }

    /// Starts a call of `owner`: waits (parked) for a run slot until `deadline`. `long`: the
    /// call is long by nature (a background job) and starts as a long call whether or not
    /// its app is heavy.
    pub(crate) fn enter_as(
        self: &Arc<Self>,
        owner: Owner,
        deadline: Instant,
        cancel: Option<Arc<AtomicBool>>,
        long: bool,
    ) -> Result<Ticket, Refused> {
        let (seq, heavy) = {
            let mut queue = self.queue();
            queue.next_seq += 1;
            let seq = queue.next_seq;
            queue.activate(owner);
            let heavy = self.demote && (long || queue.is_heavy(owner, Instant::now()));
            queue.started_long += u64::from(heavy);
            (seq, heavy)
        };
        let mut hold = Hold::default();
        if heavy {
            // Its app's calls ran long a moment ago: this one starts where they ended, so
            // that even its first tick (and its instantiation) leaves the cores to others.
            hold.class = Class::Long;
            hold.demoted = crate::priority::demote_current_thread(self.long_cores.as_ref());
        }
        let ticket = Ticket {
            scheduler: self.clone(),
            owner,
            seq,
            cancel,
            hold: Mutex::new(hold),
        };
        ticket.acquire(deadline)?;
        Ok(ticket)
    }

    /// Gives a freed slot of `class` to the most deserving waiter, or frees it. A long slot
    /// is only freed while the foreground holds long calls back.
    fn hand_over(&self, queue: &mut Queue, class: Class) {
        let waiter = match class {
            Class::Long if self.gate(queue, Instant::now()) != Gate::Open => None,
            _ => queue.best_waiter(class),
        };
        match waiter {
            Some(index) => {
                let waiter = queue.waiting.swap_remove(index);
                waiter.granted.store(true, Ordering::Release);
                waiter.thread.unpark();
            }
            None => queue.running[class as usize] -= 1,
        }
    }
}

impl Queue {
    /// Whether calls of `owner`'s app start as long calls at `now`.
    fn is_heavy(&self, owner: Owner, now: Instant) -> bool {
        self.heavy
            .get(&(owner.tenant, owner.app))
            .is_some_and(|until| now < *until)
    }

    /// Makes `owner`'s app heavy for [`HEAVY_FOR`] from `now`.
    fn mark_heavy(&mut self, owner: Owner, now: Instant) {
        if self.heavy.len() >= MAX_HEAVY_APPS {
            self.heavy.retain(|_, until| now < *until);
            if self.heavy.len() >= MAX_HEAVY_APPS {
                // Every mark is live: forget them all rather than grow (a tenant with
                // thousands of heavy apps only loses the head start of its next calls).
                self.heavy.clear();
            }
        }
        self.heavy
            .insert((owner.tenant, owner.app), now + HEAVY_FOR);
    }

    /// The least virtual time among busy tenants other than `except`.
    fn least_busy_vtime(&self, except: i64) -> Option<u128> {
        self.tenants
            .iter()
            .filter(|(id, account)| **id != except && account.busy > 0)
            .map(|(_, account)| account.vtime)
            .min()
    }

    /// Counts one more call of `owner`; a tenant or app that was idle starts near the
    /// least-served busy one.
    fn activate(&mut self, owner: Owner) {
        let floor = self.least_busy_vtime(owner.tenant);
        let tenant = self.tenants.entry(owner.tenant).or_default();
        if tenant.busy == 0
            && let Some(floor) = floor
        {
            tenant.vtime = tenant
                .vtime
                .max(floor.saturating_sub(weighted(WAKE_CREDIT, owner.weight)));
        }
        tenant.busy += 1;
        let app_floor = tenant
            .apps
            .iter()
            .filter(|(id, app)| **id != owner.app && app.busy > 0)
            .map(|(_, app)| app.vtime)
            .min();
        let app = tenant.apps.entry(owner.app).or_default();
        if app.busy == 0
            && let Some(floor) = app_floor
        {
            app.vtime = app.vtime.max(floor.saturating_sub(WAKE_CREDIT.as_nanos()));
        }
        app.busy += 1;
    }

    /// Counts one call of `owner` less; forgets accounts that no longer matter.
    fn deactivate(&mut self, owner: Owner) {
        let floor = self.least_busy_vtime(owner.tenant);
        let Some(tenant) = self.tenants.get_mut(&owner.tenant) else {
            return;
        };
        tenant.busy = tenant.busy.saturating_sub(1);
        let idle_app = tenant.apps.get_mut(&owner.app).and_then(|app| {
            app.busy = app.busy.saturating_sub(1);
            (app.busy == 0).then_some(app.vtime)
        });
        if let Some(vtime) = idle_app {
            // An idle app comes back at the least busy app's time anyway, unless it is
            // ahead of one; only then is its account worth keeping.
            let ahead = tenant
                .apps
                .values()
                .any(|other| other.busy > 0 && other.vtime < vtime);
            if !ahead {
                tenant.apps.remove(&owner.app);
            }
        }
        if tenant.busy == 0 && floor.is_none_or(|floor| tenant.vtime <= floor) {
            self.tenants.remove(&owner.tenant);
        }
    }

    /// Adds `used` of CPU to the accounts of `owner`.
    fn charge(&mut self, owner: Owner, used: Duration) {
        let tenant = self.tenants.entry(owner.tenant).or_default();
        tenant.vtime += weighted(used, owner.weight);
        tenant.apps.entry(owner.app).or_default().vtime += used.as_nanos();
    }

    /// Sort key of a call: tenant time, app time, age.
    fn key(&self, owner: Owner, seq: u64) -> (u128, u128, u64) {
        let tenant = self.tenants.get(&owner.tenant);
        let app = tenant.and_then(|t| t.apps.get(&owner.app));
        (
            tenant.map_or(0, |t| t.vtime),
            app.map_or(0, |a| a.vtime),
            seq,
        )
    }

    fn best_waiter(&self, class: Class) -> Option<usize> {
        (0..self.waiting.len())
            .filter(|&i| self.waiting[i].class == class)
            .min_by_key(|&i| {
                let waiter = &self.waiting[i];
                self.key(waiter.owner, waiter.seq)
            })
    }

    /// Whether the call of `owner` that has held its slot for `held` should give it to the
    /// best waiter.
    fn should_yield(&self, owner: Owner, class: Class, held: Duration) -> Option<usize> {
        let best = self.best_waiter(class)?;
        let waiter = &self.waiting[best];
        let (mine, theirs) = (
            self.key(owner, u64::MAX),
            self.key(waiter.owner, waiter.seq),
        );
        let yields = if waiter.owner.tenant != owner.tenant {
            theirs.0 < mine.0
        } else if waiter.owner.app != owner.app {
            held >= MIN_SLICE && theirs.1 < mine.1
        } else {
            // Calls of one app run to completion in arrival order: round robin would
            // only make them all finish late.
            false
        };
        yields.then_some(best)
    }
}

/// `used` divided by the weight, in nanoseconds at the default weight.
fn weighted(used: Duration, weight: u32) -> u128 {
    used.as_nanos() * u128::from(Owner::DEFAULT_WEIGHT) / u128::from(weight.max(1))
}

/// One call's claim on the scheduler. Holds a run slot while the guest runs; dropping it
/// gives the slot back and closes the call's account.
pub(crate) struct Ticket {
    scheduler: Arc<Scheduler>,
    owner: Owner,
    seq: u64,
    cancel: Option<Arc<AtomicBool>>,
    hold: Mutex<Hold>,
}

/// Where a call stands with its slot.
struct Hold {
    /// Since when the slot is held; `None` while the call waits or sleeps.
    since: Option<Instant>,
    /// CPU time held so far.
    used: Duration,
    class: Class,
    /// The call's thread, while it runs in the idle class.
    demoted: Option<Demoted>,
    /// Whether the call counts in [`Queue::foreground`] (a short call holding or waiting
    /// for a slot).
    foreground: bool,
    /// Until when a long call runs past a busy foreground (the starvation bound's turn).
    allowance_until: Option<Instant>,
}

impl Default for Hold {
    fn default() -> Self {
        Hold {
            since: None,
            used: Duration::ZERO,
            class: Class::Short,
            demoted: None,
            foreground: false,
            allowance_until: None,
        }
    }
}

/// Marks foreground work (see [`Scheduler::foreground`]) until dropped.
#[must_use = "the mark ends when this is dropped"]
pub struct Foreground {
    scheduler: Arc<Scheduler>,
}

impl std::fmt::Debug for Foreground {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Foreground").finish_non_exhaustive()
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        self.scheduler.foreground_down(&mut self.scheduler.queue());
    }
}

impl Ticket {
    fn hold(&self) -> MutexGuard<'_, Hold> {
        self.hold.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    }

    /// Takes a slot, waiting (parked) until one is granted, `deadline` passes or the call
    /// is cancelled. Does nothing if the slot is already held.
    pub(crate) fn acquire(&self, deadline: Instant) -> Result<(), Refused> {
        let mut hold = self.hold();
        if hold.since.is_some() {
            return Ok(());
        }
        let class = hold.class;
        let scheduler = &*self.scheduler;
        let granted = Arc::new(AtomicBool::new(false));
        let mut queued = false;
        loop {
            let mut queue = scheduler.queue();
            let now = Instant::now();
            if class == Class::Short && !hold.foreground {
                hold.foreground = true;
                scheduler.foreground_up(&mut queue);
            }
            if granted.load(Ordering::Acquire) {
                // A slot handed over by another call, maybe as the starvation bound's turn.
                if queue.allowance == Some(self.seq) {
                    hold.allowance_until = Some(now + ALLOWANCE);
                }
                hold.since = Some(now);
                return Ok(());
            }
            let gate = match class {
                Class::Short => Gate::Open,
                Class::Long => scheduler.gate(&queue, now),
            };
            if queue.running[class as usize] < scheduler.slots && gate != Gate::Closed {
                // A free slot: the best waiter of the class takes it (this call, or the one
                // this call wakes when the gate let it through on the starvation bound).
                let best = queue.best_waiter(class);
                let mine = best.is_none_or(|i| Arc::ptr_eq(&queue.waiting[i].granted, &granted));
                if mine {
                    if let Some(index) = best {
                        queue.waiting.swap_remove(index);
                    }
                    queue.running[class as usize] += 1;
                    if gate == Gate::Allowance {
                        queue.allowance = Some(self.seq);
                        queue.parked_since = None;
                        hold.allowance_until = Some(now + ALLOWANCE);
                    }
                    hold.since = Some(now);
                    return Ok(());
                }
                if let Some(index) = best {
                    let waiter = queue.waiting.swap_remove(index);
                    queue.running[class as usize] += 1;
                    if gate == Gate::Allowance {
                        queue.allowance = Some(waiter.seq);
                        queue.parked_since = None;
                    }
                    waiter.granted.store(true, Ordering::Release);
                    waiter.thread.unpark();
                }
            }
            if gate == Gate::Closed && queue.running[class as usize] == 0 {
                queue.parked_since.get_or_insert(now);
            }
            let refused = if self.cancelled() {
                Some(Refused::Cancelled)
            } else if now >= deadline {
                Some(Refused::Deadline)
            } else {
                None
            };
            if let Some(refused) = refused {
                queue.waiting.retain(|w| !Arc::ptr_eq(&w.granted, &granted));
                if hold.foreground {
                    hold.foreground = false;
                    scheduler.foreground_down(&mut queue);
                }
                return Err(refused);
            }
            if !queued {
                queue.waiting.push(Waiter {
                    class,
                    owner: self.owner,
                    seq: self.seq,
                    thread: std::thread::current(),
                    granted: granted.clone(),
                });
                queued = true;
                if gate != Gate::Closed {
                    // Waiting for a slot, not for the foreground: running guests look at
                    // the queue at their next epoch check, which this makes now.
                    scheduler.engine.increment_epoch();
                }
            }
            let mut wait = deadline.saturating_duration_since(now);
            if self.cancel.is_some() {
                wait = wait.min(CANCEL_CHECK);
            }
            if class == Class::Long
                && queue.foreground > 0
                && let Some(bound) = scheduler.park
            {
                // Parked behind the foreground: wake when the starvation bound may let a
                // long call through.
                let due = queue.parked_since.map_or(bound, |since| {
                    (since + bound).saturating_duration_since(now)
                });
                wait = wait.min(due.max(Duration::from_millis(1)));
            }
            drop(queue);
            std::thread::park_timeout(wait);
        }
    }

    /// Gives the slot up (the guest sleeps or the call ends); its time is charged.
    pub(crate) fn release(&self) {
        let mut hold = self.hold();
        let scheduler = &*self.scheduler;
        let mut queue = scheduler.queue();
        if hold.foreground {
            hold.foreground = false;
            scheduler.foreground_down(&mut queue);
        }
        let Some(since) = hold.since.take() else {
            return;
        };
        let used = since.elapsed();
        hold.used += used;
        queue.charge(self.owner, used);
        if hold.allowance_until.take().is_some() && queue.allowance == Some(self.seq) {
            queue.allowance = None;
        }
        scheduler.hand_over(&mut queue, hold.class);
    }

    /// The preemption point, at every epoch tick: charges the time used and gives the slot
    /// to a waiting call that deserves it more, then waits for a slot again. A short call
    /// that has used [`LONG_AFTER`] moves to the idle class and waits for a long call's
    /// slot. A long call stops here while the foreground is busy (see the module's
    /// documentation). A call without a slot (after a sleep whose wake-up was not its own)
    /// takes one here.
    pub(crate) fn checkpoint(&self, deadline: Instant) -> Result<(), Refused> {
        {
            let mut hold = self.hold();
            if let Some(since) = hold.since {
                let scheduler = &*self.scheduler;
                let now = Instant::now();
                let slice = now.duration_since(since);
                hold.used += slice;
                let mut queue = scheduler.queue();
                queue.charge(self.owner, slice);
                hold.since = Some(now);
                if scheduler.demote && hold.class == Class::Short && hold.used >= LONG_AFTER {
                    queue.mark_heavy(self.owner, now);
                    scheduler.hand_over(&mut queue, Class::Short);
                    if hold.foreground {
                        hold.foreground = false;
                        scheduler.foreground_down(&mut queue);
                    }
                    drop(queue);
                    hold.since = None;
                    hold.class = Class::Long;
                    hold.demoted =
                        crate::priority::demote_current_thread(self.scheduler.long_cores.as_ref());
                } else if hold.class == Class::Long && self.parks(&queue, &hold, now) {
                    if queue.allowance == Some(self.seq) {
                        // Its turn is over: the bound starts again.
                        queue.allowance = None;
                        queue.parked_since = Some(now);
                    }
                    hold.allowance_until = None;
                    hold.since = None;
                    scheduler.hand_over(&mut queue, Class::Long);
                } else {
                    let class = hold.class;
                    let Some(best) = queue.should_yield(self.owner, class, slice) else {
                        return Ok(());
                    };
                    let waiter = queue.waiting.swap_remove(best);
                    waiter.granted.store(true, Ordering::Release);
                    waiter.thread.unpark();
                    // The slot went straight to the waiter (`running` is unchanged); this
                    // call now waits for one.
                    hold.since = None;
                }
            }
        }
        self.acquire(deadline)
    }

    /// Makes the call's app heavy (see [`HEAVY_FOR`]): the call hit a resource limit, so
    /// its app's next calls start as long calls even if this one ended before its first tick
    /// (a memory bomb reaches its cap in a few milliseconds).
    pub(crate) fn mark_heavy(&self) {
        if self.scheduler.demote {
            self.scheduler
                .queue()
                .mark_heavy(self.owner, Instant::now());
        }
    }

    /// Whether this long call, holding a slot, must stop for the foreground at `now`.
    fn parks(&self, queue: &Queue, hold: &Hold, now: Instant) -> bool {
        if self.scheduler.gate(queue, now) == Gate::Open {
            return false;
        }
        let on_allowance = queue.allowance == Some(self.seq)
            && hold.allowance_until.is_some_and(|until| now < until);
        !on_allowance
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.release();
        let long = self.scheduler.demote && self.hold().used >= LONG_AFTER;
        let mut queue = self.scheduler.queue();
        if long {
            // The mark lasts from the end of the app's last long call; a call that started
            // long but ended quickly does not renew it.
            queue.mark_heavy(self.owner, Instant::now());
        }
        queue.deactivate(self.owner);
        drop(queue);
        if let Some(demoted) = self.hold().demoted.take() {
            // Checked to work at start-up (`priority::available`); the thread goes on to
            // other calls and must not keep the idle class.
            let restored = demoted.restore();
            debug_assert!(restored, "a demoted thread kept the idle class");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn owner(tenant: i64, app: i64) -> Owner {
        Owner {
            tenant,
            app,
            weight: Owner::DEFAULT_WEIGHT,
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[test]
    fn a_waiting_tenant_takes_the_slot_from_a_busy_one_at_the_next_checkpoint() {
        let scheduler = Scheduler::with_demotion(1, Engine::default(), false, None);
        let busy = scheduler.enter(owner(1, 1), far(), None).expect("slot");
        std::thread::sleep(Duration::from_millis(30));
        let got = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (scheduler, got) = (scheduler.clone(), got.clone());
            std::thread::spawn(move || {
                let ticket = scheduler.enter(owner(2, 1), far(), None).expect("slot");
                got.store(true, Ordering::SeqCst);
                drop(ticket);
            })
        };
        // Wait until the second call is queued.
        while scheduler.queue().waiting.is_empty() {
            std::thread::yield_now();
        }
        assert!(!got.load(Ordering::SeqCst));
        // Tenant 1 has used 30 ms, tenant 2 nothing: the checkpoint gives the slot away and
        // waits for it to come back.
        busy.checkpoint(far()).expect("slot again");
        waiter.join().expect("waiter");
        assert!(got.load(Ordering::SeqCst));
        assert_eq!(scheduler.queue().running[0], 1);
        drop(busy);
        assert_eq!(scheduler.queue().running[0], 0);
        assert!(scheduler.queue().tenants.is_empty());
    }

    #[test]
    fn calls_of_one_app_keep_their_slot() {
        let scheduler = Scheduler::with_demotion(1, Engine::default(), false, None);
        let first = scheduler.enter(owner(1, 1), far(), None).expect("slot");
        let second = {
            let scheduler = scheduler.clone();
            std::thread::spawn(move || scheduler.enter(owner(1, 1), far(), None).map(drop))
        };
        while scheduler.queue().waiting.is_empty() {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(20));
        first.checkpoint(far()).expect("kept");
        assert_eq!(
            scheduler.queue().waiting.len(),
            1,
            "no hand-over within an app"
        );
        drop(first);
        second
            .join()
            .expect("thread")
            .expect("slot after the first ended");
    }

    #[test]
    fn a_waiter_gives_up_at_its_deadline_and_when_cancelled() {
        let scheduler = Scheduler::with_demotion(1, Engine::default(), false, None);
        let _busy = scheduler.enter(owner(1, 1), far(), None).expect("slot");
        let soon = Instant::now() + Duration::from_millis(30);
        let refused = scheduler.enter(owner(2, 1), soon, None).err();
        assert_eq!(refused, Some(Refused::Deadline));
        let cancel = Arc::new(AtomicBool::new(true));
        let refused = scheduler.enter(owner(2, 1), far(), Some(cancel)).err();
        assert_eq!(refused, Some(Refused::Cancelled));
        assert!(scheduler.queue().waiting.is_empty());
        assert_eq!(scheduler.queue().running[0], 1);
    }

    #[test]
    fn a_short_call_does_not_wait_behind_long_calls() {
        let scheduler = Scheduler::with_demotion(1, Engine::default(), true, None);
        let long = scheduler.enter(owner(1, 1), far(), None).expect("slot");
        std::thread::sleep(LONG_AFTER + Duration::from_millis(5));
        long.checkpoint(far()).expect("a long call's slot");
        assert_eq!(long.hold().class, Class::Long);
        assert_eq!(scheduler.queue().running, [0, 1]);
        // Another long call of the same tenant waits for the long slot…
        let queued = {
            let scheduler = scheduler.clone();
            std::thread::spawn(move || {
                let ticket = scheduler.enter(owner(1, 2), far(), None).expect("slot");
                std::thread::sleep(LONG_AFTER + Duration::from_millis(5));
                ticket.checkpoint(far()).map(|()| ticket.hold().class)
            })
        };
        while scheduler.queue().waiting.is_empty() {
            std::thread::yield_now();
        }
        // …while a short call of another tenant runs at once.
        let short = scheduler
            .enter(owner(2, 1), Instant::now() + Duration::from_millis(1), None)
            .expect("a short call's slot without waiting");
        drop(short);
        drop(long);
        assert_eq!(queued.join().expect("thread"), Ok(Class::Long));
        assert_eq!(scheduler.queue().running, [0, 0]);
    }

    #[test]
    fn after_a_long_call_its_apps_next_calls_start_long_and_other_apps_do_not() {
        let scheduler = Scheduler::with_demotion(1, Engine::default(), true, None);
        let first = scheduler.enter(owner(1, 1), far(), None).expect("slot");
        assert_eq!(first.hold().class, Class::Short);
        std::thread::sleep(LONG_AFTER + Duration::from_millis(5));
        first.checkpoint(far()).expect("a long call's slot");
        drop(first);
        // The same app's next call takes a long slot at once, never a short one…
        let next = scheduler.enter(owner(1, 1), far(), None).expect("slot");
        assert_eq!(next.hold().class, Class::Long);
        assert_eq!(scheduler.queue().running, [0, 1]);
        assert_eq!(
            scheduler.state().foreground,
            0,
            "a heavy start is no foreground"
        );
        // …while another app of the tenant, and another tenant, start as short calls.
        for other in [owner(1, 2), owner(2, 1)] {
            let ticket = scheduler.enter(other, far(), None).expect("slot");
            assert_eq!(ticket.hold().class, Class::Short);
        }
        drop(next);
        assert_eq!(scheduler.state().started_long, 1);
        assert_eq!(scheduler.queue().running, [0, 0]);
    }

    #[test]
    fn a_call_stopped_at_a_limit_makes_its_app_heavy_and_the_mark_wears_off() {
        let scheduler = Scheduler::with_demotion(1, Engine::default(), true, None);
        let hog = scheduler.enter(owner(1, 1), far(), None).expect("slot");
        hog.mark_heavy();
        drop(hog);
        let next = scheduler.enter(owner(1, 1), far(), None).expect("slot");
        assert_eq!(next.hold().class, Class::Long);
        drop(next);
        // A mark in the past (as if HEAVY_FOR had gone by) no longer counts.
        let past = Instant::now() - Duration::from_millis(1);
        scheduler.queue().heavy.insert((1, 1), past);
        let later = scheduler.enter(owner(1, 1), far(), None).expect("slot");
        assert_eq!(later.hold().class, Class::Short);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_call_long_by_nature_starts_long_in_the_idle_class_without_a_heavy_mark() {
        let demote = crate::priority::available();
        let scheduler = Scheduler::with_demotion(1, Engine::default(), demote, None);
        let job = std::thread::spawn({
            let scheduler = scheduler.clone();
            move || {
                let ticket = scheduler
                    .enter_as(owner(1, 1), far(), None, true)
                    .expect("slot");
                // SAFETY: pid 0 names the calling thread.
                let policy = unsafe { libc::sched_getscheduler(0) };
                let class = ticket.hold().class;
                drop(ticket);
                // SAFETY: as above.
                let after = unsafe { libc::sched_getscheduler(0) };
                (class, policy, after)
            }
        })
        .join()
        .expect("thread");
        if demote {
            assert_eq!(job, (Class::Long, libc::SCHED_IDLE, libc::SCHED_OTHER));
            assert_eq!(scheduler.state().started_long, 1);
        } else {
            assert_eq!(job, (Class::Short, libc::SCHED_OTHER, libc::SCHED_OTHER));
        }
        // The app was not made heavy by it: an ordinary call of it starts short.
        assert!(!scheduler.is_heavy(owner(1, 1)));
        let next = scheduler.enter(owner(1, 1), far(), None).expect("slot");
        assert_eq!(next.hold().class, Class::Short);
    }

    #[test]
    fn without_demotion_nothing_starts_long() {
        let scheduler = Scheduler::with_demotion(1, Engine::default(), false, None);
        let hog = scheduler.enter(owner(1, 1), far(), None).expect("slot");
        hog.mark_heavy();
        drop(hog);
        let next = scheduler.enter(owner(1, 1), far(), None).expect("slot");
        assert_eq!(next.hold().class, Class::Short);
        assert_eq!(scheduler.state().started_long, 0);
    }

    #[test]
    fn heavy_marks_are_bounded() {
        let mut queue = Queue::default();
        let now = Instant::now();
        for app in 0..(MAX_HEAVY_APPS as i64 + 10) {
            queue.mark_heavy(owner(1, app), now);
        }
        assert!(queue.heavy.len() <= MAX_HEAVY_APPS);
        assert!(queue.is_heavy(owner(1, MAX_HEAVY_APPS as i64 + 9), now));
    }

    /// A call made long (class and slot), then checking in until `stop`; counts its
    /// checkpoints in `rounds`.
    fn long_call(
        scheduler: &Arc<Scheduler>,
        rounds: &Arc<AtomicU64>,
        stop: &Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<Result<(), Refused>> {
        let (scheduler, rounds, stop) = (scheduler.clone(), rounds.clone(), stop.clone());
        std::thread::spawn(move || {
            let ticket = scheduler.enter(owner(1, 1), far(), None)?;
            std::thread::sleep(LONG_AFTER + Duration::from_millis(5));
            ticket.checkpoint(far())?;
            assert_eq!(ticket.hold().class, Class::Long);
            while !stop.load(Ordering::SeqCst) {
                ticket.checkpoint(far())?;
                rounds.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        })
    }

    fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
        let limit = Instant::now() + Duration::from_secs(30);
        while !condition() {
            assert!(Instant::now() < limit, "never saw: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_short_call_parks_long_calls_until_it_ends() {
        let hour = Duration::from_secs(3600);
        let scheduler = Scheduler::with_demotion(1, Engine::default(), true, Some(hour));
        let (rounds, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let long = long_call(&scheduler, &rounds, &stop);
        wait_for("the long call running", || {
            rounds.load(Ordering::SeqCst) > 0
        });
        let short = scheduler.enter(owner(2, 1), far(), None).expect("slot");
        wait_for("the long call parked", || {
            scheduler.queue().running == [1, 0]
        });
        let parked_at = rounds.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(rounds.load(Ordering::SeqCst), parked_at);
        // Sleeping, the short call is no longer foreground.
        short.release();
        wait_for("the long call resumed", || {
            rounds.load(Ordering::SeqCst) > parked_at
        });
        short.acquire(far()).expect("slot again");
        wait_for("parked again", || scheduler.queue().running == [1, 0]);
        drop(short);
        stop.store(true, Ordering::SeqCst);
        long.join()
            .expect("thread")
            .expect("the long call ends normally");
        let queue = scheduler.queue();
        assert_eq!((queue.running, queue.foreground), ([0, 0], 0));
        assert!(queue.waiting.is_empty() && queue.allowance.is_none());
    }

    #[test]
    fn the_starvation_bound_lets_one_long_call_through_a_busy_foreground() {
        let bound = Duration::from_millis(20);
        let scheduler = Scheduler::with_demotion(2, Engine::default(), true, Some(bound));
        let stop = Arc::new(AtomicBool::new(false));
        let rounds: Vec<Arc<AtomicU64>> = (0..2).map(|_| Arc::default()).collect();
        let longs: Vec<_> = rounds
            .iter()
            .map(|r| long_call(&scheduler, r, &stop))
            .collect();
        let total = || rounds.iter().map(|r| r.load(Ordering::SeqCst)).sum::<u64>();
        wait_for("both long calls running", || {
            rounds.iter().all(|r| r.load(Ordering::SeqCst) > 0)
        });
        let mark = scheduler.foreground();
        wait_for("both parked", || scheduler.queue().running[1] == 0);
        let parked_at = total();
        wait_for("progress under a busy foreground", || {
            total() > parked_at + 20
        });
        // Never more than one long call past the foreground at once.
        assert!(scheduler.queue().running[1] <= 1);
        drop(mark);
        stop.store(true, Ordering::SeqCst);
        for long in longs {
            long.join().expect("thread").expect("ends normally");
        }
        assert_eq!(scheduler.queue().running, [0, 0]);
    }

    #[test]
    fn a_parked_long_call_is_refused_at_its_deadline() {
        let hour = Duration::from_secs(3600);
        let scheduler = Scheduler::with_demotion(1, Engine::default(), true, Some(hour));
        let ticket = scheduler.enter(owner(1, 1), far(), None).expect("slot");
        std::thread::sleep(LONG_AFTER + Duration::from_millis(5));
        let soon = Instant::now() + Duration::from_millis(50);
        ticket.checkpoint(soon).expect("a long slot");
        let _mark = scheduler.foreground();
        assert_eq!(ticket.checkpoint(soon), Err(Refused::Deadline));
        drop(ticket);
        let queue = scheduler.queue();
        assert_eq!((queue.running, queue.waiting.len()), ([0, 0], 0));
    }

    /// Two tenants keep one slot busy with calls that check in every millisecond; the
    /// heavier weight gets about twice the CPU.
    #[test]
    fn cpu_is_shared_in_proportion_to_weight() {
        let scheduler = Scheduler::with_demotion(1, Engine::default(), false, None);
        let used: Vec<Arc<AtomicU64>> = (0..2).map(|_| Arc::default()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = [(1, 100), (2, 200)]
            .into_iter()
            .enumerate()
            .flat_map(|(index, (tenant, weight))| {
                (0..2).map({
                    let (scheduler, used, stop) =
                        (scheduler.clone(), used[index].clone(), stop.clone());
                    move |_| {
                        let (scheduler, used, stop) =
                            (scheduler.clone(), used.clone(), stop.clone());
                        std::thread::spawn(move || {
                            let owner = Owner {
                                tenant,
                                app: 1,
                                weight,
                            };
                            let ticket = scheduler.enter(owner, far(), None).expect("slot");
                            while !stop.load(Ordering::Relaxed) {
                                let start = Instant::now();
                                while start.elapsed() < Duration::from_millis(1) {}
                                used.fetch_add(1, Ordering::Relaxed);
                                ticket.checkpoint(far()).expect("slot");
                            }
                        })
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(600));
        stop.store(true, Ordering::Relaxed);
        for thread in threads {
            thread.join().expect("thread");
        }
        let (light, heavy) = (
            used[0].load(Ordering::Relaxed) as f64,
            used[1].load(Ordering::Relaxed) as f64,
        );
        let ratio = heavy / light.max(1.0);
        assert!(
            (1.4..2.8).contains(&ratio),
            "weight 200 got {heavy} ms against {light} ms for weight 100"
        );
    }
}
