//! Traffic the model sees, counted without locks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of what the card has seen since it was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimCounters {
    /// Commands taken, per opcode (both areas; unknown opcodes too).
    pub commands: BTreeMap<u8, u64>,
    /// Trapped register reads (offsets below 0x300).
    pub register_reads: u64,
    /// Trapped register writes.
    pub register_writes: u64,
    /// Register accesses refused (wrong width or alignment).
    pub refused_accesses: u64,
    /// Trapped accesses of command blocks and data buffers.
    pub command_area_accesses: u64,
    /// Config-space reads.
    pub config_reads: u64,
    /// Config-space writes.
    pub config_writes: u64,
    /// Trapped LPC (BAR 4) reads.
    pub lpc_reads: u64,
    /// Trapped LPC writes.
    pub lpc_writes: u64,
    /// Bytes read through trapped LPC reads.
    pub lpc_bytes_read: u64,
    /// Bytes written through trapped LPC writes.
    pub lpc_bytes_written: u64,
    /// HCI writes that set at least one bit (doorbells and requests).
    pub doorbells: u64,
    /// Controller resets (reset() and HCI.AR).
    pub resets: u64,
}

/// The live counters.
#[derive(Debug)]
pub struct Counters {
    pub(crate) commands: [AtomicU64; 256],
    pub(crate) register_reads: AtomicU64,
    pub(crate) register_writes: AtomicU64,
    pub(crate) refused_accesses: AtomicU64,
    pub(crate) command_area_accesses: AtomicU64,
    pub(crate) config_reads: AtomicU64,
    pub(crate) config_writes: AtomicU64,
    pub(crate) lpc_reads: AtomicU64,
    pub(crate) lpc_writes: AtomicU64,
    pub(crate) lpc_bytes_read: AtomicU64,
    pub(crate) lpc_bytes_written: AtomicU64,
    pub(crate) doorbells: AtomicU64,
    pub(crate) resets: AtomicU64,
}

/// Adds `n` to a counter.
pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            commands: std::array::from_fn(|_| AtomicU64::new(0)),
            register_reads: AtomicU64::new(0),
            register_writes: AtomicU64::new(0),
            refused_accesses: AtomicU64::new(0),
            command_area_accesses: AtomicU64::new(0),
            config_reads: AtomicU64::new(0),
            config_writes: AtomicU64::new(0),
            lpc_reads: AtomicU64::new(0),
            lpc_writes: AtomicU64::new(0),
            lpc_bytes_read: AtomicU64::new(0),
            lpc_bytes_written: AtomicU64::new(0),
            doorbells: AtomicU64::new(0),
            resets: AtomicU64::new(0),
        }
    }
}

impl Counters {
    /// Counts one command with `opcode`.
    pub fn command(&self, opcode: u8) {
        bump(&self.commands[usize::from(opcode)], 1);
    }

    /// A consistent-enough snapshot (each counter read once).
    pub fn snapshot(&self) -> SimCounters {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SimCounters {
            commands: self
                .commands
                .iter()
                .enumerate()
                .filter_map(|(op, c)| {
                    let n = g(c);
                    (n > 0).then_some((op as u8, n))
                })
                .collect(),
            register_reads: g(&self.register_reads),
            register_writes: g(&self.register_writes),
            refused_accesses: g(&self.refused_accesses),
            command_area_accesses: g(&self.command_area_accesses),
            config_reads: g(&self.config_reads),
            config_writes: g(&self.config_writes),
            lpc_reads: g(&self.lpc_reads),
            lpc_writes: g(&self.lpc_writes),
            lpc_bytes_read: g(&self.lpc_bytes_read),
            lpc_bytes_written: g(&self.lpc_bytes_written),
            doorbells: g(&self.doorbells),
            resets: g(&self.resets),
        }
    }
}
