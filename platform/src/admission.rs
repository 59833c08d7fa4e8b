//! Fair admission on the apps origin. A request's host work before any guest runs (the
//! access check, finding the live version: database reads) waits for a turn; at most
//! `turns` of them run at once, and a freed turn goes to the tenants with waiting requests
//! in round robin. A tenant whose clients flood the server with requests that fail fast
//! (a remembered load failure, a 429) then gets every other turn, not the whole server:
//! the other tenants' requests wait for one turn at most instead of queueing behind the
//! flood in the runtime's and the database pool's first-come queues.
//!
//! While a request holds a turn it also marks the sandbox's foreground
//! ([`sandbox::Sandbox::foreground`]): long guest calls are parked meanwhile, so a light
//! request's host work does not share the cores with a neighbour's background spinning.
//!
//! A turn never covers what may take long (reading a request body, loading an app,
//! running a guest), so a tenant cannot hold turns by being slow; guest CPU is shared by
//! the sandbox's scheduler instead.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// The turns and the tenants waiting for one.
pub struct Admission {
    turns: usize,
    state: Mutex<Queue>,
    /// Whose foreground a turn marks.
    sandbox: Option<sandbox::Sandbox>,
}

#[derive(Default)]
struct Queue {
    in_use: usize,
    /// Tenants with waiting requests, in the order they are served.
    order: VecDeque<String>,
    /// Each tenant's waiting requests, oldest first.
    waiting: HashMap<String, VecDeque<oneshot::Sender<()>>>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("turns", &self.turns)
            .finish_non_exhaustive()
    }
}

/// A request's turn; dropping it hands the turn to the next tenant in line.
#[must_use = "the turn ends when this is dropped"]
pub struct Turn {
    admission: Arc<Admission>,
    /// Ends after the turn is handed over (a field drops after `Drop::drop`).
    _foreground: Option<sandbox::Foreground>,
}

impl Admission {
    /// Turns per core: the host work is mostly waiting on the database.
    pub const TURNS_PER_CORE: usize = 4;

    /// At most `turns` requests' host work at once.
    pub fn new(turns: usize) -> Arc<Admission> {
        Admission::build(turns, None)
    }

    /// [`Admission::TURNS_PER_CORE`] turns per core of this machine, each marking
    /// `sandbox`'s foreground while it is held.
    pub fn for_this_machine(sandbox: sandbox::Sandbox) -> Arc<Admission> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Admission::build(cores * Admission::TURNS_PER_CORE, Some(sandbox))
    }

    fn build(turns: usize, sandbox: Option<sandbox::Sandbox>) -> Arc<Admission> {
        Arc::new(Admission {
            turns: turns.max(1),
            state: Mutex::new(Queue::default()),
            sandbox,
        })
    }

    fn turn(self: &Arc<Self>) -> Turn {
        Turn {
            admission: self.clone(),
            _foreground: self.sandbox.as_ref().map(sandbox::Sandbox::foreground),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Every update is a few collection operations that do not panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a turn of `tenant` (the tenant's name as the request gave it).
    pub async fn enter(self: &Arc<Self>, tenant: &str) -> Turn {
        let receiver = {
            let mut queue = self.queue();
            if queue.in_use < self.turns && queue.order.is_empty() {
                queue.in_use += 1;
                drop(queue);
                return self.turn();
            }
            let (sender, receiver) = oneshot::channel();
            let line = queue.waiting.entry(tenant.to_owned()).or_default();
            line.push_back(sender);
            if line.len() == 1 {
                queue.order.push_back(tenant.to_owned());
            }
            receiver
        };
        let mut waiting = Waiting {
            admission: self.clone(),
            receiver: Some(receiver),
        };
        let receiver = waiting.receiver.as_mut().expect("set above");
        // The sender is only dropped after a send (the turn is ours) or with the whole
        // admission, which this request holds an `Arc` of.
        let _ = receiver.await;
        waiting.receiver = None;
        self.turn()
    }

    /// Hands a freed turn to the next tenant in line, or frees it.
    fn hand_over(&self) {
        let mut queue = self.queue();
        while let Some(tenant) = queue.order.pop_front() {
            let Some(line) = queue.waiting.get_mut(&tenant) else {
                continue;
            };
            let next = line.pop_front();
            if line.is_empty() {
                queue.waiting.remove(&tenant);
            } else {
                queue.order.push_back(tenant);
            }
            // A waiter that went away (its request was dropped) refuses the turn.
            if next.is_some_and(|sender| sender.send(()).is_ok()) {
                return;
            }
        }
        queue.in_use -= 1;
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.admission.hand_over();
    }
}

/// A request waiting for its turn; if it goes away after being handed one, the turn is
/// passed on.
struct Waiting {
    admission: Arc<Admission>,
    receiver: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut receiver) = self.receiver.take() {
            receiver.close();
            if receiver.try_recv().is_ok() {
                self.admission.hand_over();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_freed_turn_goes_to_the_next_tenant_in_line_not_to_the_flood() {
        let admission = Admission::new(1);
        let first = admission.enter("flood").await;
        let (done, mut served) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for tenant in ["flood", "flood", "flood", "quiet"] {
            let (admission, done) = (admission.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let turn = admission.enter(tenant).await;
                done.send(tenant).expect("receiver");
                drop(turn);
            }));
            // Queue them in this order.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(first);
        for task in tasks {
            task.await.expect("task");
        }
        let order: Vec<_> = std::iter::from_fn(|| served.try_recv().ok()).collect();
        assert_eq!(order, ["flood", "quiet", "flood", "flood"]);
        assert_eq!(admission.queue().in_use, 0);
    }

    #[tokio::test]
    async fn a_turn_marks_the_sandboxs_foreground_while_held() {
        let sandbox = sandbox::Sandbox::new(sandbox::SandboxConfig {
            max_instances: 1,
            ..sandbox::SandboxConfig::default()
        })
        .expect("sandbox");
        let admission = Admission::build(1, Some(sandbox.clone()));
        let first = admission.enter("a").await;
        assert_eq!(sandbox.cpu_state().foreground, 1);
        let waiter = {
            let admission = admission.clone();
            tokio::spawn(async move { admission.enter("b").await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Waiting for a turn is not foreground work yet.
        assert_eq!(sandbox.cpu_state().foreground, 1);
        drop(first);
        let second = waiter.await.expect("task");
        assert_eq!(sandbox.cpu_state().foreground, 1);
        drop(second);
        assert_eq!(sandbox.cpu_state().foreground, 0);
    }

    #[tokio::test]
    async fn a_waiter_that_goes_away_does_not_take_a_turn_with_it() {
        let admission = Admission::new(1);
        let first = admission.enter("a").await;
        let gone = {
            let admission = admission.clone();
            tokio::spawn(async move { admission.enter("b").await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        gone.abort();
        let _ = gone.await;
        drop(first);
        let again = tokio::time::timeout(Duration::from_secs(1), admission.enter("c")).await;
        assert!(again.is_ok(), "the turn was lost");
        drop(again);
        assert_eq!(admission.queue().in_use, 0);
        assert!(admission.queue().waiting.is_empty());
    }
}
