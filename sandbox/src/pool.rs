//! The instance pool shared by quota: which tenant holds how many of the pooling
//! allocator's slots, idle instances capped per tenant and dropped after
//! [`SandboxConfig::idle_expiry`], and eviction of idle instances when a tenant or the
//! whole pool is at capacity.
//!
//! The pooling allocator has fixed totals per kind of slot: component instances
//! (`max_instances`), linear memories (two per instance on average), tables (ten per
//! instance on average). An instance is charged in *units*: one, or more when it needs
//! more memories or tables than the average instance, so that a tenant's cap bounds its
//! share of every kind of slot, not only the instance count. A tenant whose components
//! each hold eight memories thus reaches its cap after a quarter as many instances.
//!
//! Lock order: a component's idle list, then `Pool::usage`; `Pool::components` is only held
//! to copy the list out, never while taking another lock.

use crate::config::SandboxConfig;
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Linear memories and tables per pool slot, as the engine's pool is sized
/// (`sandbox::engine`): an instance needing more than these costs more than one unit.
pub(crate) const MEMORIES_PER_UNIT: usize = 2;
/// See [`MEMORIES_PER_UNIT`].
pub(crate) const TABLES_PER_UNIT: usize = 10;

/// Pool units an instance of a component with `memories` linear memories and `tables`
/// tables costs.
pub(crate) fn units(memories: usize, tables: usize) -> usize {
    memories
        .div_ceil(MEMORIES_PER_UNIT)
        .max(tables.div_ceil(TABLES_PER_UNIT))
        .max(1)
}

/// What the pool needs of a component that holds idle instances.
pub(crate) trait IdleInstances: Send + Sync {
    /// The tenant the component belongs to.
    fn tenant(&self) -> i64;
    /// When its longest-idle instance became idle.
    fn oldest_idle(&self) -> Option<Instant>;
    /// Drops its longest-idle instance; returns the pool units that freed (0 if it had
    /// no idle instance any more).
    fn drop_oldest_idle(&self) -> usize;
    /// Drops the instances idle since before `cutoff`; returns how many.
    fn drop_idle_before(&self, cutoff: Instant) -> usize;
}

/// The shared accounting of one sandbox's instances.
pub(crate) struct Pool {
    units_per_tenant: usize,
    idle_per_tenant: usize,
    idle_total_cap: usize,
    idle_expiry: Duration,
    usage: Mutex<Usage>,
    /// Every loaded component, for the reaper and for eviction.
    components: Mutex<Vec<Weak<dyn IdleInstances>>>,
}

#[derive(Default)]
struct Usage {
    /// Only tenants holding at least one instance have an entry.
    tenants: HashMap<i64, TenantUsage>,
    idle_total: usize,
}

#[derive(Default)]
struct TenantUsage {
    units: usize,
    idle: usize,
}

/// One instance's hold on the pool: its units stay charged to its tenant until it is
/// dropped. Knows whether the instance is idle and since when.
pub(crate) struct Lease {
    pool: Arc<Pool>,
    tenant: i64,
    units: usize,
    idle_since: Option<Instant>,
}

impl Pool {
    pub(crate) fn new(config: &SandboxConfig) -> Pool {
        let max_instances = config.max_instances as usize;
        Pool {
            units_per_tenant: (config.max_instances_per_tenant as usize).min(max_instances),
            idle_per_tenant: config.idle_instances_per_tenant,
            // Idle instances never take more than half the pool from fresh ones.
            idle_total_cap: (max_instances / 2).max(1),
            idle_expiry: config.idle_expiry,
            usage: Mutex::default(),
            components: Mutex::default(),
        }
    }

    /// Charges `units` to `tenant` for a new instance, or refuses when that would take the
    /// tenant over its cap.
    pub(crate) fn admit(self: &Arc<Self>, tenant: i64, units: usize) -> Result<Lease> {
        let mut usage = lock(&self.usage);
        let held = usage.tenants.get(&tenant).map_or(0, |t| t.units);
        if held + units > self.units_per_tenant {
            return Err(Error::Capacity {
                message: format!(
                    "the tenant's instances hold {held} of its {} pool units \
                     (max_instances_per_tenant) and another instance of this component needs {units}",
                    self.units_per_tenant
                ),
            });
        }
        usage.tenants.entry(tenant).or_default().units += units;
        Ok(Lease {
            pool: self.clone(),
            tenant,
            units,
            idle_since: None,
        })
    }

    /// Pool units `tenant`'s instances hold right now.
    pub(crate) fn tenant_units(&self, tenant: i64) -> usize {
        lock(&self.usage)
            .tenants
            .get(&tenant)
            .map_or(0, |t| t.units)
    }

    /// Makes `component` known to the reaper and to eviction.
    pub(crate) fn register(&self, component: Weak<dyn IdleInstances>) {
        let mut components = lock(&self.components);
        components.retain(|c| c.strong_count() > 0);
        components.push(component);
    }

    fn live_components(&self) -> Vec<Arc<dyn IdleInstances>> {
        lock(&self.components)
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Drops idle instances of components whose tenant passes `which`, longest-idle
    /// first, until they freed `units` pool units; returns the units freed.
    pub(crate) fn evict_oldest(&self, units: usize, which: impl Fn(i64) -> bool) -> usize {
        let components = self.live_components();
        let mut evicted = 0;
        // Bounded even if other threads keep taking the instances found here.
        for _ in 0..units.saturating_mul(4) + components.len() {
            if evicted >= units {
                break;
            }
            let oldest = components
                .iter()
                .filter(|c| which(c.tenant()))
                .filter_map(|c| c.oldest_idle().map(|since| (since, c)))
                .min_by_key(|(since, _)| *since);
            let Some((_, component)) = oldest else {
                break;
            };
            evicted += component.drop_oldest_idle();
        }
        evicted
    }

    /// Drops every instance idle for longer than the expiry; returns how many.
    pub(crate) fn expire(&self, now: Instant) -> usize {
        let Some(cutoff) = now.checked_sub(self.idle_expiry) else {
            return 0;
        };
        self.live_components()
            .iter()
            .map(|c| c.drop_idle_before(cutoff))
            .sum()
    }
}

impl Lease {
    /// Marks the instance idle, if its tenant and the sandbox may keep another idle one.
    pub(crate) fn park(&mut self) -> bool {
        if self.idle_since.is_some() {
            return true;
        }
        let pool = &self.pool;
        let mut usage = lock(&pool.usage);
        if usage.idle_total >= pool.idle_total_cap {
            return false;
        }
        let Some(tenant) = usage.tenants.get_mut(&self.tenant) else {
            return false;
        };
        if tenant.idle >= pool.idle_per_tenant {
            return false;
        }
        tenant.idle += 1;
        usage.idle_total += 1;
        self.idle_since = Some(Instant::now());
        true
    }

    /// Marks the instance busy again.
    pub(crate) fn unpark(&mut self) {
        if self.idle_since.take().is_some() {
            let mut usage = lock(&self.pool.usage);
            usage.idle_total -= 1;
            if let Some(tenant) = usage.tenants.get_mut(&self.tenant) {
                tenant.idle -= 1;
            }
        }
    }

    /// Pool units this lease holds.
    pub(crate) fn units(&self) -> usize {
        self.units
    }

    /// Since when the instance has been idle.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        self.idle_since
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.unpark();
        let mut usage = lock(&self.pool.usage);
        if let Some(tenant) = usage.tenants.get_mut(&self.tenant) {
            tenant.units -= self.units;
            if tenant.units == 0 {
                usage.tenants.remove(&self.tenant);
            }
        }
    }
}

/// A mutex's contents; every critical section here leaves the counters consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The thread that drops expired idle instances.
pub(crate) struct Reaper {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    pub(crate) fn start(pool: Arc<Pool>) -> Result<Reaper> {
        // Instances expire at most a quarter of the expiry late.
        let period =
            (pool.idle_expiry / 4).clamp(Duration::from_millis(10), Duration::from_secs(30));
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sandbox-reaper".to_string())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                    let dropped = pool.expire(Instant::now());
                    if dropped > 0 {
                        tracing::debug!(dropped, "expired idle instances dropped");
                    }
                }
            })
            .map_err(|source| Error::Io {
                context: "cannot start the idle-instance reaper thread".to_string(),
                source,
            })?;
        Ok(Reaper {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The reaper itself may hold the last reference to a component, and so to the
            // sandbox: it must not wait for itself. It exits at its next wake-up.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(units_per_tenant: u32, idle_per_tenant: usize) -> Arc<Pool> {
        Arc::new(Pool::new(&SandboxConfig {
            max_instances: 100,
            max_instances_per_tenant: units_per_tenant,
            idle_instances_per_tenant: idle_per_tenant,
            ..SandboxConfig::default()
        }))
    }

    #[test]
    fn units_follow_the_scarcest_slot() {
        assert_eq!(units(0, 0), 1);
        assert_eq!(units(1, 3), 1);
        assert_eq!(units(8, 3), 4);
        assert_eq!(units(1, 64), 7);
    }

    #[test]
    fn a_tenant_is_refused_past_its_units_naming_the_cap() {
        let pool = pool(4, 10);
        let first = pool.admit(1, 3).expect("within the cap");
        let refused = pool.admit(1, 2).err().expect("over the cap");
        assert!(
            refused.to_string().contains("max_instances_per_tenant"),
            "{refused}"
        );
        // Another tenant is not affected, and a dropped lease gives its units back.
        let _other = pool.admit(2, 4).expect("another tenant");
        drop(first);
        assert_eq!(pool.tenant_units(1), 0);
        assert!(pool.admit(1, 4).is_ok());
    }

    #[test]
    fn idle_instances_are_capped_per_tenant() {
        let pool = pool(10, 2);
        let mut leases: Vec<Lease> = (0..3).map(|_| pool.admit(1, 1).expect("admit")).collect();
        assert!(leases[0].park());
        assert!(leases[1].park());
        assert!(
            !leases[2].park(),
            "a third idle instance of the tenant was kept"
        );
        let mut other = pool.admit(2, 1).expect("admit");
        assert!(other.park(), "another tenant's idle cap is its own");
        leases[0].unpark();
        assert!(leases[2].park());
    }
}
