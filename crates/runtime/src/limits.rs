//! What one module instance may consume: fuel (instructions) and a wall-clock deadline per call,
//! linear memory, tables and instances. A module that exceeds a limit fails its call with a
//! distinct error; the host and the other modules carry on.

use std::time::Duration;

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// Default fuel per call: about a second of straight-line guest code.
pub const DEFAULT_FUEL_PER_CALL: u64 = 1_000_000_000;
/// Default wall-clock deadline per call.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
/// Default cap on each linear memory of an instance.
pub const DEFAULT_MEMORY_BYTES: usize = 64 << 20;

/// Per-instance limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Fuel given to each call (each export call, and instantiation plus `describe`); a call
    /// that uses it up fails with [`crate::RuntimeError::OutOfFuel`]. Fuel is deterministic:
    /// the same call on the same state stops at the same instruction. `None`: unmetered, and
    /// the engine compiles modules without fuel counting (faster; only the deadline, if any,
    /// then stops a loop).
    pub fuel_per_call: Option<u64>,
    /// Wall-clock time each call may run, enforced by epoch interruption (a ticker thread
    /// advances the engine's epoch every [`Limits::epoch_tick`]); a call past it fails with
    /// [`crate::RuntimeError::Interrupted`]. Time the guest spends inside host calls (a request
    /// to another module) counts too, but only guest code is interrupted. `None`: no deadline.
    pub deadline_per_call: Option<Duration>,
    /// Epoch ticker period: the deadline's resolution.
    pub epoch_tick: Duration,
    /// Cap on each linear memory, in bytes; growing past it fails (and the call fails with
    /// [`crate::RuntimeError::MemoryLimit`] if the guest then traps).
    pub memory_bytes: usize,
    /// Cap on the elements of each table.
    pub table_elements: usize,
    /// Core instances per component instance (the WASI adapter needs a few).
    pub instances: usize,
    /// Tables per component instance.
    pub tables: usize,
    /// Linear memories per component instance.
    pub memories: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel_per_call: Some(DEFAULT_FUEL_PER_CALL),
            deadline_per_call: Some(DEFAULT_DEADLINE),
            epoch_tick: Duration::from_millis(10),
            memory_bytes: DEFAULT_MEMORY_BYTES,
            table_elements: 100_000,
            instances: 32,
            tables: 32,
            memories: 8,
        }
    }
}

impl Limits {
    /// Epoch ticks until the deadline; `None` when there is no deadline. The ticker runs on its
    /// own phase, so the first tick after a call starts may come at once: one tick more than the
    /// deadline spans guarantees a call is never interrupted before its deadline (and at most one
    /// tick after it).
    pub(crate) fn deadline_ticks(&self) -> Option<u64> {
        let deadline = self.deadline_per_call?;
        let tick = self.epoch_tick.as_nanos().max(1);
        let ticks = deadline.as_nanos().div_ceil(tick).saturating_add(1);
        Some(u64::try_from(ticks).unwrap_or(u64::MAX))
    }
}

/// [`StoreLimits`] plus a record of whether a growth was refused, so a trap that follows a
/// refused growth (an allocator aborting) is reported as the memory limit it is.
pub(crate) struct Limiter {
    limits: StoreLimits,
    refused_growth: bool,
}

impl Limiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .table_elements(limits.table_elements)
                .instances(limits.instances)
                .tables(limits.tables)
                .memories(limits.memories)
                .build(),
            refused_growth: false,
        }
    }

    /// Whether a growth was refused since the last call to this function.
    pub(crate) fn take_refused_growth(&mut self) -> bool {
        std::mem::take(&mut self.refused_growth)
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if !allowed {
            self.refused_growth = true;
            tracing::debug!(current, desired, "memory growth refused");
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.table_growing(current, desired, maximum)?;
        if !allowed {
            self.refused_growth = true;
        }
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}
