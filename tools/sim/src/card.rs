//! [`SimCard`]: the card's VFIO-shaped front end (regions 0 = BAR 0, 4 = BAR 4, 7 =
//! config space), its lifecycle and the firmware thread that runs it.
//!
//! Lock order: `state`, then `hw.poison`. `config` is never held with either. The
//! register file is lock-free ([`crate::regfile`]): host register accesses take no lock
//! (except a CHIC of CDA, which discards the dump under `state`); the firmware thread
//! holds `state` while servicing; control calls (reset, inject, ...) hold it briefly.

use std::ops::Range;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use ocxlpmem_regs::offsets::REGISTER_FILE_SIZE;

use crate::cfgspace::{self, ConfigSpace, CONFIG_SIZE};
use crate::clock::SimClock;
use crate::config::SimConfig;
use crate::counters::{bump, Counters, SimCounters};
use crate::errlog::ErrorLogEntry;
use crate::error::SimError;
use crate::faults::Fault;
use crate::memory::{Bar0Memory, LpcMemory};
use crate::mmio::SimMmio;
use crate::regfile::{Regs, WriteEffect};
use crate::state::{Hw, State};

/// VFIO region index of BAR 0 (global MMIO).
pub const REGION_BAR0: u32 = 0;
/// VFIO region index of BAR 4 (LPC memory).
pub const REGION_BAR4: u32 = 4;
/// VFIO region index of config space.
pub const REGION_CONFIG: u32 = 7;

/// One region of the card as VFIO would describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRegion {
    /// VFIO region index.
    pub index: u32,
    /// Size in bytes.
    pub size: u64,
    /// Trapped reads allowed.
    pub readable: bool,
    /// Trapped writes allowed.
    pub writable: bool,
    /// `(offset, size)` areas that may be mmap-ed through [`SimCard::region_fd`].
    pub mmap_areas: Vec<(u64, u64)>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub hw: Hw,
    pub state: Mutex<State>,
    pub config: Mutex<ConfigSpace>,
    pub removed: AtomicBool,
    pub stop: AtomicBool,
    /// The firmware thread is about to park (or parked): a doorbell must unpark it.
    pub sleeping: crate::regfile::Padded<AtomicBool>,
    bar0_size: u64,
    bar0_areas: Vec<(u64, u64)>,
    /// Command blocks and data buffers: the parts of BAR 0 backed by memory.
    segments: Vec<(u64, u64)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not wedge the card: the state stays usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    pub fn service(&self) -> Option<Duration> {
        let now = self.hw.clock.now();
        lock(&self.state).service(&self.hw, now)
    }

    fn ring(&self) {
        self.hw.regs.hci.rung.fetch_add(1, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            self.hw.clock.wake();
        }
    }

    fn in_segment(&self, offset: u64) -> bool {
        self.segments
            .iter()
            .any(|&(o, l)| offset >= o && offset - o < l)
    }
}

#[derive(Debug)]
struct Handle {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// A simulated card. Clones share the card; it (and its firmware thread) lives until
/// the last clone (or [`SimMmio`]) is dropped.
#[derive(Debug, Clone)]
pub struct SimCard {
    h: Arc<Handle>,
}

fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| u64::try_from(p).ok())
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096)
}

/// The page-aligned parts of the command blocks and buffers outside the register page.
fn mmap_areas(segments: &[(u64, u64)], page: u64) -> Vec<(u64, u64)> {
    let first = REGISTER_FILE_SIZE.div_ceil(page) * page;
    let mut v: Vec<(u64, u64)> = segments
        .iter()
        .filter_map(|&(o, l)| {
            let start = o.div_ceil(page).saturating_mul(page).max(first);
            let end = (o + l) / page * page;
            (start < end).then(|| (start, end - start))
        })
        .collect();
    v.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (o, l) in v {
        match merged.last_mut() {
            Some((mo, ml)) if *mo + *ml == o => *ml += l,
            _ => merged.push((o, l)),
        }
    }
    merged
}

impl SimCard {
    /// Builds a card and starts its firmware; readiness runs from now (CRDY after
    /// `crdy_delay`, then MA after `ma_delay`).
    pub fn new(cfg: SimConfig) -> Result<SimCard, SimError> {
        cfg.validate()?;
        let lpc = match &cfg.image {
            Some(p) => LpcMemory::image(p, cfg.lpc_size)?,
            None => LpcMemory::anonymous(cfg.lpc_size)?,
        };
        let bar0_size = cfgspace::bar0_size(&cfg);
        let bar0 = Bar0Memory::new(bar0_size)?;
        let mut segments = Vec::new();
        for a in [cfg.layout.admin, cfg.layout.near_storage] {
            segments.push((a.request_offset, 64));
            segments.push((a.response_offset, 64));
            segments.push((a.data_offset, a.data_size));
        }
        let bar0_areas = if cfg.mmap_command_areas {
            mmap_areas(&segments, page_size())
        } else {
            Vec::new()
        };
        let clock = SimClock::new(cfg.clock);
        let regs = Regs::default();
        regs.reset(clock.now());
        let state = State::new();
        let config = ConfigSpace::new(&cfg);
        let inner = Arc::new(Inner {
            hw: Hw {
                cfg,
                clock,
                bar0,
                lpc,
                counters: Counters::default(),
                regs,
                poison: Mutex::new(Vec::new()),
            },
            state: Mutex::new(state),
            config: Mutex::new(config),
            removed: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sleeping: crate::regfile::Padded(AtomicBool::new(false)),
            bar0_size,
            bar0_areas,
            segments,
        });
        let fw = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("ocxlpmem-sim-fw".into())
            .spawn(move || crate::firmware::run(fw))
            .map_err(|source| SimError::Io {
                op: "spawning the firmware thread",
                path: None,
                source,
            })?;
        inner.hw.clock.set_waker(thread.thread().clone());
        Ok(SimCard {
            h: Arc::new(Handle {
                inner,
                thread: Some(thread),
            }),
        })
    }

    fn inner(&self) -> &Inner {
        &self.h.inner
    }

    /// The configuration the card was built with.
    pub fn config(&self) -> &SimConfig {
        &self.inner().hw.cfg
    }

    /// The AFU descriptor the card presents through the AFU-information window.
    pub fn afu_descriptor(&self) -> ocxlpmem_regs::AfuDescriptor {
        cfgspace::afu_descriptor(self.config())
    }

    /// True when the host has set the AFU-control DVSEC's enable bit.
    pub fn afu_enabled(&self) -> bool {
        lock(&self.inner().config).afu_enabled()
    }

    /// Reads config space (any width; bounds-checked).
    pub fn config_read(&self, offset: u64, buf: &mut [u8]) -> Result<(), SimError> {
        let i = self.inner();
        bump(&i.hw.counters.config_reads, 1);
        let r = lock(&i.config).read(offset, buf);
        if r.is_ok() && i.removed.load(Ordering::Acquire) {
            buf.fill(0xFF);
        }
        r
    }

    /// Writes config space (only writable bits change).
    pub fn config_write(&self, offset: u64, data: &[u8]) -> Result<(), SimError> {
        let i = self.inner();
        bump(&i.hw.counters.config_writes, 1);
        if i.removed.load(Ordering::Acquire) {
            let end = offset.checked_add(data.len() as u64);
            return match end {
                Some(e) if e <= CONFIG_SIZE as u64 => Ok(()),
                _ => Err(SimError::OutOfBounds {
                    region: REGION_CONFIG,
                    offset,
                    len: data.len() as u64,
                    size: CONFIG_SIZE as u64,
                }),
            };
        }
        lock(&i.config).write(offset, data)
    }

    /// Describes region `index` (0, 4 or 7); `None` for regions the card lacks.
    pub fn region(&self, index: u32) -> Option<SimRegion> {
        let i = self.inner();
        let (size, mmap_areas) = match index {
            REGION_BAR0 => (i.bar0_size, i.bar0_areas.clone()),
            REGION_BAR4 => (i.hw.lpc.size(), vec![(0, i.hw.lpc.size())]),
            REGION_CONFIG => (CONFIG_SIZE as u64, Vec::new()),
            _ => return None,
        };
        Some(SimRegion {
            index,
            size,
            readable: true,
            writable: true,
            mmap_areas,
        })
    }

    /// The descriptor to mmap a region's mmap areas from, and the file offset of the
    /// region's start. `None` for regions with nothing mmap-able.
    pub fn region_fd(&self, index: u32) -> Option<(BorrowedFd<'_>, u64)> {
        let i = self.inner();
        match index {
            REGION_BAR0 if !i.bar0_areas.is_empty() => Some((i.hw.bar0.fd(), 0)),
            REGION_BAR4 => Some((i.hw.lpc.fd(), 0)),
            _ => None,
        }
    }

    fn bounds(&self, region: u32, offset: u64, len: usize, size: u64) -> Result<(), SimError> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= size => Ok(()),
            _ => Err(SimError::OutOfBounds {
                region,
                offset,
                len: len as u64,
                size,
            }),
        }
    }

    /// A trapped read of region `index`. Register accesses must be 8 bytes wide (or a
    /// multiple) and 8-byte aligned; LPC reads of poisoned ranges fail.
    pub fn region_read(&self, index: u32, offset: u64, buf: &mut [u8]) -> Result<(), SimError> {
        let i = self.inner();
        match index {
            REGION_BAR0 => {
                self.bounds(index, offset, buf.len(), i.bar0_size)?;
                if buf.is_empty() {
                    return Ok(());
                }
                if offset < REGISTER_FILE_SIZE {
                    self.check_register_access(offset, buf.len())?;
                    for (n, chunk) in buf.chunks_mut(8).enumerate() {
                        let w = self.bar0_read_word(offset + 8 * n as u64);
                        chunk.copy_from_slice(&w.to_le_bytes());
                    }
                    return Ok(());
                }
                bump(&i.hw.counters.command_area_accesses, 1);
                if i.removed.load(Ordering::Acquire) {
                    buf.fill(0xFF);
                    return Ok(());
                }
                buf.fill(0);
                let end = offset + buf.len() as u64;
                for &(so, sl) in &i.segments {
                    let (a, b) = (so.max(offset), (so + sl).min(end));
                    if a < b {
                        let dst = &mut buf[(a - offset) as usize..(b - offset) as usize];
                        i.hw.bar0.read_bytes(a, dst);
                    }
                }
                Ok(())
            }
            REGION_BAR4 => {
                self.bounds(index, offset, buf.len(), i.hw.lpc.size())?;
                if i.removed.load(Ordering::Acquire) {
                    buf.fill(0xFF);
                    return Ok(());
                }
                let end = offset + buf.len() as u64;
                let hit = lock(&i.hw.poison)
                    .iter()
                    .filter(|r| r.start < end && offset < r.end)
                    .map(|r| r.start.max(offset))
                    .min();
                if let Some(p) = hit {
                    return Err(SimError::Poisoned { offset: p });
                }
                bump(&i.hw.counters.lpc_reads, 1);
                bump(&i.hw.counters.lpc_bytes_read, buf.len() as u64);
                i.hw.lpc.read(offset, buf)
            }
            REGION_CONFIG => self.config_read(offset, buf),
            _ => Err(SimError::NoSuchRegion { index }),
        }
    }

    /// A trapped write of region `index` (same rules as [`SimCard::region_read`]; holes
    /// ignore writes).
    pub fn region_write(&self, index: u32, offset: u64, data: &[u8]) -> Result<(), SimError> {
        let i = self.inner();
        match index {
            REGION_BAR0 => {
                self.bounds(index, offset, data.len(), i.bar0_size)?;
                if data.is_empty() {
                    return Ok(());
                }
                if offset < REGISTER_FILE_SIZE {
                    self.check_register_access(offset, data.len())?;
                    for (n, chunk) in data.chunks(8).enumerate() {
                        let mut w = [0u8; 8];
                        w.copy_from_slice(chunk);
                        self.bar0_write_word(offset + 8 * n as u64, u64::from_le_bytes(w));
                    }
                    return Ok(());
                }
                bump(&i.hw.counters.command_area_accesses, 1);
                if i.removed.load(Ordering::Acquire) {
                    return Ok(());
                }
                let end = offset + data.len() as u64;
                for &(so, sl) in &i.segments {
                    let (a, b) = (so.max(offset), (so + sl).min(end));
                    if a < b {
                        let src = &data[(a - offset) as usize..(b - offset) as usize];
                        i.hw.bar0.write_bytes(a, src);
                    }
                }
                Ok(())
            }
            REGION_BAR4 => {
                self.bounds(index, offset, data.len(), i.hw.lpc.size())?;
                if i.removed.load(Ordering::Acquire) {
                    return Ok(());
                }
                bump(&i.hw.counters.lpc_writes, 1);
                bump(&i.hw.counters.lpc_bytes_written, data.len() as u64);
                i.hw.lpc.write(offset, data)
            }
            REGION_CONFIG => self.config_write(offset, data),
            _ => Err(SimError::NoSuchRegion { index }),
        }
    }

    fn check_register_access(&self, offset: u64, len: usize) -> Result<(), SimError> {
        if !offset.is_multiple_of(8) || !len.is_multiple_of(8) {
            bump(&self.inner().hw.counters.refused_accesses, 1);
            return Err(SimError::Misaligned {
                offset,
                len: len as u64,
            });
        }
        Ok(())
    }

    /// One aligned word of BAR 0 (the caller checked alignment and bounds).
    pub(crate) fn bar0_read_word(&self, offset: u64) -> u64 {
        let i = self.inner();
        if i.removed.load(Ordering::Acquire) {
            return u64::MAX;
        }
        if offset < REGISTER_FILE_SIZE {
            bump(&i.hw.counters.register_reads, 1);
            return i.hw.regs.read(&i.hw.cfg, || i.hw.clock.now(), offset);
        }
        bump(&i.hw.counters.command_area_accesses, 1);
        if i.in_segment(offset) {
            i.hw.bar0.read_u64(offset)
        } else {
            0
        }
    }

    /// One aligned word store to BAR 0 (the caller checked alignment and bounds).
    pub(crate) fn bar0_write_word(&self, offset: u64, value: u64) {
        let i = self.inner();
        if i.removed.load(Ordering::Acquire) {
            return;
        }
        if offset < REGISTER_FILE_SIZE {
            bump(&i.hw.counters.register_writes, 1);
            match i.hw.regs.write(offset, value) {
                WriteEffect::None => {}
                WriteEffect::Doorbell => {
                    bump(&i.hw.counters.doorbells, 1);
                    i.ring();
                }
                WriteEffect::DiscardDump => {
                    // The host declared the dump stale: it goes with its indicator.
                    lock(&i.state).dump = None;
                    i.hw.regs.unpost(ocxlpmem_regs::Chi::CDA);
                }
            }
            return;
        }
        bump(&i.hw.counters.command_area_accesses, 1);
        if i.in_segment(offset) {
            i.hw.bar0.write_u64(offset, value);
        }
    }

    /// Controller reset (spec §10): CHI and HCI clear, readiness runs again, in-flight
    /// commands and a pending dump are discarded; error logs and LPC memory are kept.
    pub fn reset(&self) {
        let i = self.inner();
        let now = i.hw.clock.now();
        {
            let mut st = lock(&i.state);
            st.reset(&i.hw, now);
            st.publish(&i.hw);
        }
        bump(&i.hw.counters.resets, 1);
        i.ring();
    }

    /// The global MMIO as an [`ocxlpmem_regs::Mmio`], every access trapped.
    pub fn mmio(&self) -> SimMmio {
        SimMmio { card: self.clone() }
    }

    /// The card's clock.
    pub fn clock(&self) -> &SimClock {
        &self.inner().hw.clock
    }

    fn add_fault(&self, fault: Fault, once: bool) {
        let i = self.inner();
        {
            let mut st = lock(&i.state);
            match fault {
                Fault::StaleAcra => st.make_stale_acra(&i.hw),
                Fault::StaleDumpPending => st.make_stale_dump(&i.hw),
                Fault::SurpriseRemoval => {
                    i.removed.store(true, Ordering::Release);
                    st.faults.add(fault, false);
                }
                _ => st.faults.add(fault, once),
            }
            st.publish(&i.hw);
        }
        i.ring();
    }

    /// Injects a fault, active until [`SimCard::clear_faults`].
    pub fn inject(&self, fault: Fault) {
        self.add_fault(fault, false);
    }

    /// Injects a fault for the next matching command only (fatal states: entered when
    /// the next command is taken, so it is never answered).
    pub fn inject_once(&self, fault: Fault) {
        self.add_fault(fault, true);
    }

    /// Clears every fault: the device is back, readiness follows its timers, commands
    /// held by a timeout or a fatal state complete.
    pub fn clear_faults(&self) {
        let i = self.inner();
        i.removed.store(false, Ordering::Release);
        let now = i.hw.clock.now();
        {
            let mut st = lock(&i.state);
            st.clear_faults(now);
            st.publish(&i.hw);
        }
        i.ring();
    }

    /// Marks an LPC byte range as poisoned (clamped to the LPC size; empty ranges are
    /// ignored). Trapped reads touching it fail with [`SimError::Poisoned`].
    pub fn poison(&self, range: Range<u64>) {
        let size = self.inner().hw.lpc.size();
        let r = range.start.min(size)..range.end.min(size);
        if r.start >= r.end {
            return;
        }
        let mut p = lock(&self.inner().hw.poison);
        p.push(r);
        p.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<u64>> = Vec::with_capacity(p.len());
        for r in p.drain(..) {
            match merged.last_mut() {
                Some(m) if r.start <= m.end => m.end = m.end.max(r.end),
                _ => merged.push(r),
            }
        }
        *p = merged;
    }

    /// The poisoned LPC ranges, sorted and merged.
    pub fn bad_ranges(&self) -> Vec<Range<u64>> {
        lock(&self.inner().hw.poison).clone()
    }

    /// What the card has seen so far.
    pub fn counters(&self) -> SimCounters {
        self.inner().hw.counters.snapshot()
    }

    /// Queues an error log (CHI.ELA sets); returns the log identifier it was given.
    pub fn push_error_log(&self, entry: ErrorLogEntry) -> u32 {
        let i = self.inner();
        let now = i.hw.clock.now();
        let id = {
            let mut st = lock(&i.state);
            let id = st.push_log(&i.hw, now, entry);
            st.publish(&i.hw);
            id
        };
        i.ring();
        id
    }

    /// Number of error logs queued.
    pub fn error_log_count(&self) -> usize {
        lock(&self.inner().state).errlog.len()
    }

    /// The firmware image received so far through FW_UPDATE.
    pub fn firmware_image(&self) -> Vec<u8> {
        lock(&self.inner().state).fw_image.clone()
    }

    /// The dump available to the host (CHI.CDA set), if any.
    pub fn current_dump(&self) -> Option<Vec<u8>> {
        lock(&self.inner().state).dump.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::mmap_areas;

    #[test]
    fn mmap_areas_are_whole_pages_outside_the_register_page() {
        let page = 0x1000;
        // Blocks in the register page and a buffer shorter than a page: nothing.
        assert!(mmap_areas(&[(0x400, 64), (0x800, 0x100), (0x1010, 0x800)], page).is_empty());
        // Adjacent buffers merge; a partial page at either end is left out.
        assert_eq!(
            mmap_areas(
                &[(0x1000, 0x8000), (0x9000, 0x1000), (0xB008, 0x2000)],
                page
            ),
            vec![(0x1000, 0x9000), (0xC000, 0x1000)]
        );
    }
}
