//! The per-instance resource limiter.
//!
//! wasmtime's stock `StoreLimits` can trap on a refused `memory.grow`, but the trap it
//! raises is an opaque error string. This limiter records that it refused, so that the
//! call fails with [`Error::Memory`](crate::Error::Memory) naming the cap rather than with a
//! generic trap. It counts the sum of all linear memories of the instance, since one
//! instance may own several, plus its tables at [`TABLE_ELEMENT_BYTES`] per element:
//! a filled table is host memory the guest chose to take, like a grown memory.
//!
//! [`check_component`] refuses, at load, a component with more memories or tables than an
//! instance may have, naming the limit, before anything is instantiated.

use crate::{Error, Result};
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
/// Bytes one table element is counted as against the memory cap: wasmtime stores a
/// `funcref` element as one pointer (8 bytes on 64-bit hosts) and a GC reference in 4, so
/// 8 is what a filled table really costs the host, and what the pooling allocator reserves
/// per element. 64 tables × 200,000 elements would otherwise be 100 MiB outside the cap.
pub(crate) const TABLE_ELEMENT_BYTES: usize = 8;

/// What an instance of a component needs of the pool, as counted at load.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Needs {
    /// Linear memories over all its core instances.
    pub(crate) memories: usize,
    /// Tables over all its core instances.
    pub(crate) tables: usize,
}

/// Refuses a component whose instances would need more memories or tables than
/// [`MAX_MEMORIES`] and [`MAX_TABLES`], or a table larger than [`MAX_TABLE_ELEMENTS`], with
/// a message naming the limit. (Core instances, [`MAX_CORE_INSTANCES`], are counted by the
/// pooling allocator when the component is compiled or loaded from the cache, and by this
/// limiter at instantiation.)
pub(crate) fn check_component(component: &wasmtime::component::Component) -> Result<Needs> {
    let Some(resources) = component.resources_required() else {
        return Err(Error::InvalidComponent {
            reason: "it instantiates imported core modules, which the sandbox cannot count"
                .to_string(),
        });
    };
    let needs = Needs {
        memories: resources.num_memories as usize,
        tables: resources.num_tables as usize,
    };
    let over = |what: &str, count: usize, limit: usize| Error::InvalidComponent {
        reason: format!(
            "an instance of it needs {count} {what}, over the limit of {limit} {what} per component"
        ),
    };
    if needs.memories > MAX_MEMORIES {
        return Err(over("linear memories", needs.memories, MAX_MEMORIES));
    }
    if needs.tables > MAX_TABLES {
        return Err(over("tables", needs.tables, MAX_TABLES));
    }
    if let Some(elements) = resources.max_initial_table_size
        && elements > MAX_TABLE_ELEMENTS as u64
    {
        return Err(Error::InvalidComponent {
            reason: format!(
                "it has a table of {elements} elements, over the limit of {MAX_TABLE_ELEMENTS} elements per table"
            ),
        });
    }
    Ok(needs)
}

/// Limits one instance's memories and tables, and remembers whether the memory cap fired.
pub(crate) struct Limiter {
    memory_limit: usize,
    /// Bytes of linear memory granted so far, over all memories of the instance.
    memory_used: usize,
    /// The memory growth last granted, taken back if the growth then fails.
    memory_pending: usize,
    /// The table growth last granted (in bytes), likewise.
    table_pending: usize,
    memory_exceeded: bool,
}

impl Limiter {
    pub(crate) fn new(memory_limit: usize) -> Limiter {
        Limiter {
            memory_limit,
            memory_used: 0,
            memory_pending: 0,
            table_pending: 0,
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

    /// Grants `growth` more bytes under the cap, or records the refusal and fails.
    fn grant(&mut self, growth: usize, what: &str) -> wasmtime::Result<()> {
        let total = self.memory_used.saturating_add(growth);
        if total > self.memory_limit {
            self.memory_exceeded = true;
            // Trapping (rather than letting the growth return -1) stops the guest at the
            // allocation that crossed the cap, instead of letting its allocator abort with
            // a message that only reaches stderr.
            wasmtime::bail!(
                "{what} would bring the instance to {total} bytes, over the limit of {} bytes",
                self.memory_limit
            );
        }
        self.memory_used = total;
        Ok(())
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
        self.grant(growth, "growing a linear memory")?;
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
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        let growth = desired
            .saturating_sub(current)
            .saturating_mul(TABLE_ELEMENT_BYTES);
        self.grant(growth, "growing a table")?;
        self.table_pending = growth;
        Ok(true)
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_used -= self.table_pending;
        self.table_pending = 0;
        Ok(())
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
    fn tables_count_against_the_memory_cap() {
        let mut limiter = Limiter::new(2 << 16);
        // 8,192 elements of 8 bytes: one page.
        assert!(limiter.memory_growing(0, 1 << 16, None).is_ok());
        assert!(limiter.table_growing(0, 8_192, None).is_ok_and(|ok| ok));
        assert!(limiter.table_growing(8_192, 8_193, None).is_err());
        assert!(limiter.memory_exceeded());
        // A refused table growth is taken back.
        let mut limiter = Limiter::new(2 << 16);
        assert!(limiter.table_growing(0, 8_192, None).is_ok());
        assert!(
            limiter
                .table_grow_failed(wasmtime::format_err!("past maximum"))
                .is_ok()
        );
        assert!(limiter.memory_growing(0, 2 << 16, None).is_ok());
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
