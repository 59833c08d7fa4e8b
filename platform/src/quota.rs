//! Per-tenant quotas that are enforced while apps run: how many callbacks a tenant may
//! have in flight at once, and the sandbox limits its callbacks run under (the tenant's
//! values, never above the platform's). The stored quotas are in [`crate::store::Quotas`];
//! app-count and storage quotas are checked when a version is stored.
//!
//! Nothing here does I/O or knows HTTP.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ids::TenantId;
use crate::store::CallbackQuotas;

/// How long a refusal over a tenant's quota (callbacks, loads, jobs: the 429
/// `quota_exceeded`) is held before it is sent. A client that retries at once, as a hostile
/// tenant's loop does, then costs the server a timer per 250 ms instead of a full request
/// (session, access check, live version) per round trip: measured with the noisy-neighbour
/// suite, the refusal loop of 8 spare clients was 800 requests a second at the ordinary
/// priority the light tenant runs at. The Dash front end does not retry a failed callback,
/// so a viewer only sees its error a quarter second later. (HAProxy calls this a tarpit.)
pub const REFUSAL_DELAY: Duration = Duration::from_millis(250);

/// Counts the callbacks in flight per tenant.
#[derive(Default)]
pub struct CallbackSlots {
    running: Mutex<HashMap<TenantId, Arc<AtomicI64>>>,
}

/// One running callback; the slot is freed when this is dropped.
#[derive(Debug)]
pub struct Slot(Arc<AtomicI64>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The tenant already runs as many callbacks as its quota allows.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the tenant already runs {max} callbacks at once, its quota; retry when one has finished")]
pub struct TooManyCallbacks {
    /// The quota.
    pub max: i64,
}

impl CallbackSlots {
    /// Take a slot for a callback of `tenant`, or refuse at once when `max` are running.
    pub fn try_acquire(&self, tenant: TenantId, max: i64) -> Result<Slot, TooManyCallbacks> {
        let counter = {
            // A poisoned lock only means a panic elsewhere; the map is still valid.
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.entry(tenant).or_default().clone()
        };
        let before = counter.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(counter);
        if before >= max {
            // Dropping the slot gives the increment back.
            return Err(TooManyCallbacks { max });
        }
        Ok(slot)
    }
}

/// The sandbox owner of a component of `app` in `tenant`: whom its calls are charged to,
/// with the tenant's CPU weight.
pub fn owner(tenant: TenantId, app: i64, quotas: &CallbackQuotas) -> sandbox::Owner {
    sandbox::Owner {
        tenant: tenant.0,
        app,
        weight: u32::try_from(quotas.cpu_weight.clamp(1, 10_000))
            .unwrap_or(sandbox::Owner::DEFAULT_WEIGHT),
    }
}

/// The deadline of one background job of a tenant: its job-deadline quota, never above
/// the platform's job deadline.
pub fn job_deadline(platform: Duration, quotas: &CallbackQuotas) -> Duration {
    let quota =
        Duration::from_millis(u64::try_from(quotas.job_deadline_ms.max(1)).unwrap_or(u64::MAX));
    quota.min(platform)
}

/// The limits a tenant's callbacks run under: its quotas, capped by the platform's.
pub fn tenant_limits(platform: &sandbox::Limits, quotas: &CallbackQuotas) -> sandbox::Limits {
    let memory = usize::try_from(quotas.memory_mb.max(1))
        .unwrap_or(usize::MAX)
        .saturating_mul(1 << 20);
    let deadline =
        Duration::from_millis(u64::try_from(quotas.deadline_ms.max(1)).unwrap_or(u64::MAX));
    sandbox::Limits {
        memory_bytes: memory.min(platform.memory_bytes),
        deadline: deadline.min(platform.deadline),
        ..platform.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_refuse_past_the_quota_and_come_back_when_dropped() {
        let slots = CallbackSlots::default();
        let (a, b) = (TenantId(1), TenantId(2));
        let first = slots.try_acquire(a, 2).expect("first");
        let second = slots.try_acquire(a, 2).expect("second");
        assert_eq!(
            slots.try_acquire(a, 2).expect_err("third"),
            TooManyCallbacks { max: 2 }
        );
        // Another tenant is not affected.
        let _other = slots.try_acquire(b, 1).expect("other tenant");
        drop(first);
        let _again = slots.try_acquire(a, 2).expect("a slot was freed");
        drop(second);
    }

    #[test]
    fn tenant_limits_never_exceed_the_platform() {
        let platform = sandbox::Limits::default();
        let low = tenant_limits(
            &platform,
            &CallbackQuotas {
                memory_mb: 16,
                deadline_ms: 250,
                ..crate::store::Quotas::DEFAULT.callback()
            },
        );
        assert_eq!(low.memory_bytes, 16 << 20);
        assert_eq!(low.deadline, Duration::from_millis(250));
        let high = tenant_limits(
            &platform,
            &CallbackQuotas {
                memory_mb: 1 << 20,
                deadline_ms: 86_400_000,
                ..crate::store::Quotas::DEFAULT.callback()
            },
        );
        assert_eq!(high.memory_bytes, platform.memory_bytes);
        assert_eq!(high.deadline, platform.deadline);
        assert_eq!(high.output_bytes, platform.output_bytes);
    }

    #[test]
    fn job_deadline_is_the_tenants_below_the_platforms() {
        let platform = Duration::from_secs(600);
        let quotas = |job_deadline_ms| CallbackQuotas {
            job_deadline_ms,
            ..crate::store::Quotas::DEFAULT.callback()
        };
        assert_eq!(
            job_deadline(platform, &quotas(30_000)),
            Duration::from_secs(30)
        );
        assert_eq!(job_deadline(platform, &quotas(86_400_000)), platform);
    }

    #[test]
    fn owner_carries_the_tenants_weight_within_range() {
        let quotas = |cpu_weight| CallbackQuotas {
            cpu_weight,
            ..crate::store::Quotas::DEFAULT.callback()
        };
        assert_eq!(owner(TenantId(3), 7, &quotas(250)).weight, 250);
        assert_eq!(owner(TenantId(3), 7, &quotas(0)).weight, 1);
        assert_eq!(owner(TenantId(3), 7, &quotas(1_000_000)).weight, 10_000);
    }
}
