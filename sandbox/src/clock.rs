//! `wasi:clocks/monotonic-clock` with sleeps that end at the call's deadline.
//!
//! Epoch interruption only stops a guest that is running wasm code; a guest blocked in a
//! host call (here: `poll` on a clock pollable, which is what `std::thread::sleep` does) is
//! not interrupted and would hold its thread for as long as it asked to sleep. This clock
//! shortens every sleep so that it ends no later than the current call's deadline, and
//! records that it did: the call then fails with a deadline error even if the guest manages
//! to return before the expired epoch deadline stops it.

use crate::scheduler::{MIN_YIELDING_SLEEP, Ticket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

/// [`HasData`] marker for the deadline-aware clock.
pub(crate) struct DeadlineClock;

impl HasData for DeadlineClock {
    type Data<'a> = ClockView<'a>;
}

/// What the clock needs from the store: the resource table for its pollables, the
/// instance's time origin and the deadline of the call in progress.
pub(crate) struct ClockView<'a> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) origin: Instant,
    pub(crate) deadline: Option<Instant>,
    /// Set when a sleep was cut short by the deadline.
    pub(crate) cut_short: &'a Arc<AtomicBool>,
    /// The call's cancellation flag: a sleep also ends soon after it is raised.
    pub(crate) cancel: Option<&'a Arc<AtomicBool>>,
    /// The call's claim on a core, given up while it sleeps.
    pub(crate) cpu: Option<&'a Arc<Ticket>>,
}

impl ClockView<'_> {
    /// A pollable that becomes ready after `duration`, or at the deadline if that is sooner.
    fn sleep(&mut self, duration: Duration) -> wasmtime::Result<Resource<DynPollable>> {
        let now = Instant::now();
        let wanted = now.checked_add(duration);
        let (until, cut) = match (wanted, self.deadline) {
            (Some(wanted), Some(deadline)) if wanted <= deadline => (Some(wanted), false),
            (_, Some(deadline)) => (Some(deadline), true),
            // Without a deadline (never the case during a call) an unrepresentable instant
            // is "never", as in wasmtime-wasi's own clock.
            (wanted, None) => (wanted, false),
        };
        let yields = until.is_none_or(|until| until >= now + MIN_YIELDING_SLEEP);
        let sleep = Sleep {
            cpu: match (self.cpu, self.deadline) {
                (Some(ticket), Some(deadline)) if yields => Some((ticket.clone(), deadline)),
                _ => None,
            },
            until: until.map(tokio::time::Instant::from_std),
            cut_short: cut.then(|| self.cut_short.clone()),
            cancel: self.cancel.cloned(),
            woken: self.cut_short.clone(),
        };
        let resource = self.table.push(sleep)?;
        subscribe(self.table, resource)
    }
}

impl monotonic_clock::Host for ClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        // Nanoseconds since the instance started: u64 nanoseconds last 584 years.
        Ok(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(1)
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let now = self.now()?;
        self.sleep(Duration::from_nanos(when.saturating_sub(now)))
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.sleep(Duration::from_nanos(duration))
    }
}

/// A clock pollable: ready at `until`, or never.
struct Sleep {
    /// The call's claim on a core, and its deadline: the core is free while the guest
    /// sleeps (a sleeping guest must not keep another tenant waiting).
    cpu: Option<(Arc<Ticket>, std::time::Instant)>,
    until: Option<tokio::time::Instant>,
    /// The flag to raise when this sleep ends, if it was shortened to the deadline.
    cut_short: Option<Arc<AtomicBool>>,
    /// The call's cancellation flag, checked every [`CANCEL_CHECK`] while sleeping.
    cancel: Option<Arc<AtomicBool>>,
    /// Raised when a cancellation ended the sleep early (the call then fails).
    woken: Arc<AtomicBool>,
}

/// How often a sleeping cancellable call looks at its cancellation flag.
const CANCEL_CHECK: Duration = Duration::from_millis(50);

#[wasmtime_wasi::async_trait]
impl Pollable for Sleep {
    async fn ready(&mut self) {
        if let Some((ticket, _)) = &self.cpu {
            ticket.release();
        }
        self.wait().await;
        if let Some((ticket, deadline)) = &self.cpu {
            // Blocks this (the call's own) thread until a core is free. Refused only at the
            // deadline or on cancellation, which the next epoch check turns into the
            // call's failure.
            let _ = ticket.acquire(*deadline);
        }
    }
}

impl Sleep {
    async fn wait(&mut self) {
        if let Some(cancel) = &self.cancel {
            // A cancellable call sleeps in short steps so that a cancel wakes it soon.
            loop {
                if cancel.load(Ordering::Relaxed) {
                    self.woken.store(true, Ordering::Relaxed);
                    return;
                }
                let step = tokio::time::Instant::now() + CANCEL_CHECK;
                match self.until {
                    Some(until) if until <= step => break,
                    _ => tokio::time::sleep_until(step).await,
                }
            }
        }
        match self.until {
            Some(until) => tokio::time::sleep_until(until).await,
            None => std::future::pending().await,
        }
        if let Some(flag) = &self.cut_short {
            flag.store(true, Ordering::Relaxed);
        }
    }
}
