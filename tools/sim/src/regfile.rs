//! The register file (spec §1) as lock-free atomics, so that the host's register
//! accesses never wait for the firmware: a doorbell and a CHI poll are one atomic
//! operation each, and a command round trip costs a few cache-line transfers.
//!
//! The firmware (under the state lock) publishes the level bits it owns (ELA, CFFS,
//! CHFS, and what blocks readiness) into `levels`; CRDY and MA are computed at read time
//! from the boot time and the configured delays, so a manual clock needs no thread to
//! make them appear.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ocxlpmem_regs::{offsets as o, Chi, Hci};

use crate::config::SimConfig;

/// CHI bits the host can clear through CHIC (the others are levels the controller
/// derives from its state, so a CHIC write to them has no lasting effect).
pub const CHI_EVENTS: u64 = Chi::ACRA | Chi::NSCRA | Chi::CDA;
/// `levels` flag: CRDY (and MA) held low (never-ready, readiness dropped).
pub const CRDY_BLOCKED: u64 = 1 << 62;
/// `levels` flag: MA held low (memory never available, after SHUTDOWN).
pub const MA_BLOCKED: u64 = 1 << 63;

/// What a register write asks of the card beyond the register itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteEffect {
    /// Nothing.
    None,
    /// HCI bits were set: wake the firmware.
    Doorbell,
    /// CHIC cleared CDA: the stale dump must be discarded (needs the state lock).
    DiscardDump,
}

/// A value alone on its cache line(s): the host and the firmware write different
/// registers, and sharing a line would make every poll miss.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Padded<T>(pub T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// HCI and the doorbell count the firmware waits on, on one line: a doorbell costs the
/// host one cache-line transfer instead of two, and the firmware finds HCI in the line
/// that woke it.
#[derive(Debug, Default)]
pub struct HciLine {
    /// The HCI register.
    pub bits: AtomicU64,
    /// Bumped by every doorbell, reset and clock move: the firmware's wake-up count.
    pub rung: AtomicU64,
}

/// The registers.
#[derive(Debug, Default)]
pub struct Regs {
    pub chi_events: Padded<AtomicU64>,
    pub hci: Padded<HciLine>,
    /// ELA | CFFS | CHFS | CRDY_BLOCKED | MA_BLOCKED, published by the state.
    pub levels: Padded<AtomicU64>,
    /// Simulated time of the last power-on or reset, in ns.
    pub boot_ns: AtomicU64,
    /// `boot_ns + 1` once both readiness delays of that boot have passed (0: not yet).
    /// Time only moves forward, so from then on CRDY and MA depend on the levels alone
    /// and a CHI read needs no clock read. (A later reset at the same `boot_ns` can only
    /// happen with zero delays, when readiness is immediate anyway.)
    pub settled: AtomicU64,
    pub chie: AtomicU64,
    pub ima: [AtomicU64; 4],
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Regs {
    /// Power-on / reset: every register clears and readiness restarts at `now`.
    pub fn reset(&self, now: Duration) {
        // Boot time first: whoever sees a cleared HCI also sees readiness restarted.
        self.settled.store(0, Ordering::SeqCst);
        self.boot_ns.store(ns(now), Ordering::SeqCst);
        for r in [&self.chi_events, &self.chie, &self.hci.bits] {
            r.store(0, Ordering::SeqCst);
        }
        for r in &self.ima {
            r.store(0, Ordering::SeqCst);
        }
    }

    /// Time of the last power-on or reset.
    pub fn boot(&self) -> Duration {
        Duration::from_nanos(self.boot_ns.load(Ordering::Acquire))
    }

    /// CRDY and MA at `now` (called only while the delays may still be running).
    pub fn readiness(&self, cfg: &SimConfig, now: impl FnOnce() -> Duration) -> (bool, bool) {
        let levels = self.levels.load(Ordering::Acquire);
        let boot = self.boot_ns.load(Ordering::Acquire);
        let full = cfg.crdy_delay.saturating_add(cfg.ma_delay);
        let since = if self.settled.load(Ordering::Acquire) == boot.wrapping_add(1) {
            full
        } else {
            let since = now().saturating_sub(Duration::from_nanos(boot));
            if since >= full {
                self.settled.store(boot.wrapping_add(1), Ordering::Release);
            }
            since
        };
        let crdy = levels & CRDY_BLOCKED == 0 && since >= cfg.crdy_delay;
        let ma = crdy && levels & MA_BLOCKED == 0 && since >= full;
        (crdy, ma)
    }

    /// The CHI value at `now`.
    pub fn chi(&self, cfg: &SimConfig, now: impl FnOnce() -> Duration) -> u64 {
        let (crdy, ma) = self.readiness(cfg, now);
        let mut v = self.chi_events.load(Ordering::Acquire)
            | (self.levels.load(Ordering::Acquire) & (Chi::ELA | Chi::CFFS | Chi::CHFS));
        if crdy {
            v |= Chi::CRDY;
        }
        if ma {
            v |= Chi::MA;
        }
        v & Chi::DEFINED
    }

    /// Sets CHI event bits (the firmware posting a response or a dump).
    pub fn post(&self, bits: u64) {
        self.chi_events
            .fetch_or(bits & CHI_EVENTS, Ordering::SeqCst);
    }

    /// Clears CHI event bits.
    pub fn unpost(&self, bits: u64) {
        self.chi_events.fetch_and(!bits, Ordering::SeqCst);
    }

    /// Current HCI.
    pub fn hci(&self) -> u64 {
        self.hci.bits.load(Ordering::Acquire)
    }

    /// The controller consumed HCI bits.
    pub fn consume(&self, bits: u64) {
        self.hci.bits.fetch_and(!bits, Ordering::SeqCst);
    }

    /// Sets HCI bits as the host would (used for injected stale state).
    pub fn request(&self, bits: u64) {
        self.hci
            .bits
            .fetch_or(bits & Hci::DEFINED, Ordering::SeqCst);
    }

    /// A trapped register read (offset 8-aligned, below the register file's end).
    pub fn read(&self, cfg: &SimConfig, now: impl FnOnce() -> Duration, offset: u64) -> u64 {
        let ld = |r: &AtomicU64| r.load(Ordering::Acquire);
        match offset {
            o::CHI => self.chi(cfg, now),
            o::CHIE => ld(&self.chie),
            o::HCI => ld(&self.hci.bits),
            o::IMA0_OHP => ld(&self.ima[0]),
            o::IMA0_CFP => ld(&self.ima[1]),
            o::IMA1_OHP => ld(&self.ima[2]),
            o::IMA1_CFP => ld(&self.ima[3]),
            o::ACMA_CREQO => cfg.layout.admin.encode().0,
            o::ACMA_CDBO => cfg.layout.admin.encode().1,
            o::NSCMA_CREQO => cfg.layout.near_storage.encode().0,
            o::NSCMA_CDBO => cfg.layout.near_storage.encode().1,
            o::FWVER => u64::from_le_bytes(cfg.fwver),
            o::CCAP0 => cfg.ccap0,
            o::CCAP1 => cfg.ccap1,
            // CHIC, CHIEC, HCIC read 0 (§1 Decision); CSTS and holes read 0.
            _ => 0,
        }
    }

    /// A trapped register write.
    pub fn write(&self, offset: u64, value: u64) -> WriteEffect {
        let st = |r: &AtomicU64, v: u64| r.store(v, Ordering::SeqCst);
        match offset {
            o::CHIC => {
                self.unpost(value & CHI_EVENTS);
                if value & Chi::CDA != 0 {
                    return WriteEffect::DiscardDump;
                }
            }
            o::CHIE => st(&self.chie, value & Chi::DEFINED),
            o::CHIEC => {
                self.chie.fetch_and(!value, Ordering::SeqCst);
            }
            o::HCI => {
                let set = value & Hci::DEFINED;
                if set != 0 {
                    self.hci.bits.fetch_or(set, Ordering::SeqCst);
                    return WriteEffect::Doorbell;
                }
            }
            o::HCIC => self.consume(value),
            o::IMA0_OHP => st(&self.ima[0], value),
            o::IMA0_CFP => st(&self.ima[1], value),
            o::IMA1_OHP => st(&self.ima[2], value),
            o::IMA1_CFP => st(&self.ima[3], value),
            // Read-only registers and holes ignore writes.
            _ => {}
        }
        WriteEffect::None
    }
}
