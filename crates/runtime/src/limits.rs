//! What one module instance may consume: fuel (instructions) and a wall-clock deadline per call,
//! linear memory, tables and instances. A module that exceeds a limit fails its call with a
//! distinct error; the host and the other modules carry on. The limits an operator sets are
//! bounded here ([`LimitSetting`]), so a typo cannot take the machine.

use std::ops::RangeInclusive;
use std::time::Duration;

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// Default fuel per call: about a second of straight-line guest code.
pub const DEFAULT_FUEL_PER_CALL: u64 = 1_000_000_000;
/// Default wall-clock deadline per call.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
/// Default cap on each linear memory of an instance, MiB.
pub const DEFAULT_MEMORY_MIB: u64 = 64;
/// Default cap on each linear memory of an instance, bytes.
pub const DEFAULT_MEMORY_BYTES: usize = 64 << 20;

/// Least fuel per call an operator may set: a call with none cannot run an instruction.
pub const MIN_FUEL_PER_CALL: u64 = 1;
/// Most fuel per call an operator may set: 10^12, a thousand times the default, about a quarter
/// of an hour of straight-line guest code in one call.
pub const MAX_FUEL_PER_CALL: u64 = 1_000_000_000_000;
/// Smallest linear memory cap an operator may set, MiB.
pub const MIN_MEMORY_MIB: u64 = 1;
/// Largest linear memory cap an operator may set, MiB: 4 GiB is all a wasm32 memory can
/// address (65,536 pages of 64 KiB), so a larger cap would limit nothing.
pub const MAX_MEMORY_MIB: u64 = 4096;
/// Shortest wall-clock deadline per call an operator may set, ms.
pub const MIN_DEADLINE_MS: u64 = 1;
/// Longest wall-clock deadline per call an operator may set, ms: one hour (the default is 10 s).
pub const MAX_DEADLINE_MS: u64 = 3_600_000;

/// A limit an operator sets (a `teemesh run` flag, a key of a node's `[limits]`), with the range
/// it must fall in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSetting {
    /// Fuel per call, [`MIN_FUEL_PER_CALL`] to [`MAX_FUEL_PER_CALL`].
    FuelPerCall,
    /// Linear memory cap, MiB, [`MIN_MEMORY_MIB`] to [`MAX_MEMORY_MIB`].
    MemoryMib,
    /// Wall-clock deadline per call, ms, [`MIN_DEADLINE_MS`] to [`MAX_DEADLINE_MS`].
    DeadlineMs,
}

impl LimitSetting {
    /// The values allowed.
    pub const fn range(self) -> RangeInclusive<u64> {
        match self {
            Self::FuelPerCall => MIN_FUEL_PER_CALL..=MAX_FUEL_PER_CALL,
            Self::MemoryMib => MIN_MEMORY_MIB..=MAX_MEMORY_MIB,
            Self::DeadlineMs => MIN_DEADLINE_MS..=MAX_DEADLINE_MS,
        }
    }

    /// The unit values are given in (with its leading space), or nothing.
    pub const fn unit(self) -> &'static str {
        match self {
            Self::FuelPerCall => "",
            Self::MemoryMib => " MiB",
            Self::DeadlineMs => " ms",
        }
    }

    /// Why the range ends where it does.
    const fn why(self) -> &'static str {
        match self {
            Self::FuelPerCall => "10^12 is about a quarter of an hour of guest code per call",
            Self::MemoryMib => "4096 MiB is all a wasm32 memory can address",
            Self::DeadlineMs => "at most an hour per call",
        }
    }

    /// `value` if it is in [`LimitSetting::range`].
    pub fn check(self, value: u64) -> Result<u64, LimitOutOfRange> {
        if self.range().contains(&value) {
            Ok(value)
        } else {
            Err(LimitOutOfRange {
                setting: self,
                value,
            })
        }
    }
}

/// An operator-set limit outside its range. The message names the value and the range; the
/// caller names the flag or the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value}{unit} is out of range: expected {min} to {max}{unit} ({why})",
    unit = .setting.unit(),
    min = .setting.range().start(),
    max = .setting.range().end(),
    why = .setting.why()
)]
pub struct LimitOutOfRange {
    /// Which limit.
    pub setting: LimitSetting,
    /// The value refused.
    pub value: u64,
}

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
    /// The default limits with an operator's fuel and deadline per call and memory cap, each
    /// checked against its [`LimitSetting`] range: what `teemesh run` and a node's `[limits]`
    /// run modules under.
    pub fn from_settings(
        fuel_per_call: u64,
        memory_mib: u64,
        deadline_ms: u64,
    ) -> Result<Self, LimitOutOfRange> {
        let fuel_per_call = LimitSetting::FuelPerCall.check(fuel_per_call)?;
        let memory_mib = LimitSetting::MemoryMib.check(memory_mib)?;
        let deadline_ms = LimitSetting::DeadlineMs.check(deadline_ms)?;
        Ok(Self {
            fuel_per_call: Some(fuel_per_call),
            deadline_per_call: Some(Duration::from_millis(deadline_ms)),
            memory_bytes: memory_bytes_of_mib(memory_mib),
            ..Self::default()
        })
    }

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

/// `mib` in bytes; on a 32-bit host 4096 MiB saturates to the whole address space.
pub fn memory_bytes_of_mib(mib: u64) -> usize {
    usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_at_both_ends_of_their_range() {
        for (setting, min, max) in [
            (
                LimitSetting::FuelPerCall,
                MIN_FUEL_PER_CALL,
                MAX_FUEL_PER_CALL,
            ),
            (LimitSetting::MemoryMib, MIN_MEMORY_MIB, MAX_MEMORY_MIB),
            (LimitSetting::DeadlineMs, MIN_DEADLINE_MS, MAX_DEADLINE_MS),
        ] {
            assert_eq!(setting.check(min), Ok(min));
            assert_eq!(setting.check(max), Ok(max));
            for refused in [0, max + 1, u64::MAX] {
                assert_eq!(
                    setting.check(refused),
                    Err(LimitOutOfRange {
                        setting,
                        value: refused
                    })
                );
            }
        }
        assert_eq!(MIN_FUEL_PER_CALL, 1);
        assert_eq!(MIN_MEMORY_MIB, 1);
        assert_eq!(MIN_DEADLINE_MS, 1);
    }

    #[test]
    fn the_message_names_the_value_and_the_range() {
        let err = LimitSetting::MemoryMib.check(999_999_999).unwrap_err();
        assert_eq!(
            err.to_string(),
            "999999999 MiB is out of range: expected 1 to 4096 MiB (4096 MiB is all a wasm32 memory can address)"
        );
        let err = LimitSetting::FuelPerCall.check(0).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("0 is out of range: expected 1 to 1000000000000 ("),
            "{err}"
        );
    }

    #[test]
    fn from_settings_builds_the_limits_or_names_the_setting() {
        let limits = Limits::from_settings(5, 4096, 250).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(limits.fuel_per_call, Some(5));
        assert_eq!(limits.memory_bytes, memory_bytes_of_mib(4096));
        assert_eq!(limits.deadline_per_call, Some(Duration::from_millis(250)));
        assert_eq!(limits.table_elements, Limits::default().table_elements);
        let defaults = Limits::from_settings(
            DEFAULT_FUEL_PER_CALL,
            DEFAULT_MEMORY_MIB,
            DEFAULT_DEADLINE.as_millis() as u64,
        );
        assert_eq!(defaults, Ok(Limits::default()));
        assert_eq!(
            Limits::from_settings(1, 4097, 1).map_err(|e| e.setting),
            Err(LimitSetting::MemoryMib)
        );
        assert_eq!(
            Limits::from_settings(MAX_FUEL_PER_CALL + 1, 1, 1).map_err(|e| e.setting),
            Err(LimitSetting::FuelPerCall)
        );
        assert_eq!(
            Limits::from_settings(1, 1, MAX_DEADLINE_MS + 1).map_err(|e| e.setting),
            Err(LimitSetting::DeadlineMs)
        );
    }
}
