//! The per-instance resource limiter.
//!
//! wasmtime's stock `StoreLimits` can trap on a refused `memory.grow`, but the trap it
//! raises is an opaque error string. This limiter records that it refused, so that the
//! call fails with [`Error::Memory`](crate::Error::Memory) naming the cap rather than with a
//! generic trap. It counts the sum of all linear memories of the instance, since one
//! instance may own several.

use wasmtime::ResourceLimiter;

/// Most core instances one component instance may create. Rust components need a handful;
/// CPython components, which link several core modules dynamically, a few dozen.
pub(crate) const MAX_CORE_INSTANCES: usize = 64;
/// Most tables per component instance.
pub(crate) const MAX_TABLES: usize = 64;
/// Most linear memories per component instance.
pub(crate) const MAX_MEMORIES: usize = 8;
/// Most elements in one table. CPython's function table needs tens of thousands.
pub(crate) const MAX_TABLE_ELEMENTS: usize = 200_000;

/// Limits one instance's memories and tables, and remembers whether the memory cap fired.
pub(crate) struct Limiter {
    memory_limit: usize,
    /// Bytes of linear memory granted so far, over all memories of the instance.
    memory_used: usize,
    /// The growth last granted, taken back if the growth then fails.
    memory_pending: usize,
    memory_exceeded: bool,
}

impl Limiter {
    pub(crate) fn new(memory_limit: usize) -> Limiter {
        Limiter {
            memory_limit,
            memory_used: 0,
            memory_pending: 0,
            memory_exceeded: false,
        }
    }

    /// Whether the memory cap refused a growth since the last [`Limiter::clear`].
    pub(crate) fn memory_exceeded(&self) -> bool {
        self.memory_exceeded
    }

    /// Forgets a refusal, at the start of a call.
    pub(crate) fn clear(&mut self) {
        self.memory_exceeded = false;
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let total = self.memory_used.saturating_add(growth);
        if total > self.memory_limit {
            self.memory_exceeded = true;
            // Trapping (rather than letting `memory.grow` return -1) stops the guest at the
            // allocation that crossed the cap, instead of letting its allocator abort with a
            // message that only reaches stderr.
            wasmtime::bail!(
                "linear memory would grow to {total} bytes, over the limit of {} bytes",
                self.memory_limit
            );
        }
        self.memory_used = total;
        self.memory_pending = growth;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The growth was granted above but did not happen (e.g. past the memory's declared
        // maximum), so it does not count; the guest sees `memory.grow` return -1.
        self.memory_used -= self.memory_pending;
        self.memory_pending = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_past_the_cap_traps_and_is_recorded() {
        let mut limiter = Limiter::new(3 << 16);
        assert!(limiter.memory_growing(0, 2 << 16, None).is_ok_and(|ok| ok));
        assert!(!limiter.memory_exceeded());
        assert!(limiter.memory_growing(2 << 16, 4 << 16, None).is_err());
        assert!(limiter.memory_exceeded());
        limiter.clear();
        assert!(!limiter.memory_exceeded());
    }

    #[test]
    fn the_cap_covers_all_memories_together() {
        let mut limiter = Limiter::new(3 << 16);
        assert!(limiter.memory_growing(0, 2 << 16, None).is_ok());
        // A second memory of two pages would bring the total to four.
        assert!(limiter.memory_growing(0, 2 << 16, None).is_err());
    }

    #[test]
    fn a_failed_growth_is_not_counted() {
        let mut limiter = Limiter::new(3 << 16);
        assert!(limiter.memory_growing(0, 2 << 16, None).is_ok());
        assert!(
            limiter
                .memory_grow_failed(wasmtime::format_err!("past maximum"))
                .is_ok()
        );
        assert!(limiter.memory_growing(0, 3 << 16, None).is_ok());
    }
}
