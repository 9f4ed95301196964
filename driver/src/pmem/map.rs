//! [`PmemMap`]: a byte range of a media window that an application stores to and makes
//! persistent (spec/pmem.md §6.1, libpmem2's `pmem2_map`).
//!
//! The same type serves every window (BAR, devdax, `/dev/mem` range, DAX file, plain
//! file); what differs is the granularity the window guarantees, and with it what
//! "persist" does:
//!
//! | granularity | persist | flush | drain |
//! |---|---|---|---|
//! | `Page` (plain file) | `window.sync` (msync) | `window.sync` | nothing |
//! | `CacheLine` (BAR, devdax, DAX file) | flush + drain | per-line flush | fence |
//! | `Byte` (eADR-like) | drain | nothing | fence |
//!
//! On a CPU without a cache-flush instruction (the portable build) `CacheLine` persists
//! fall back to `window.sync`, the only thing left that can push lines out.

use std::ops::Range;
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::cpu::{CpuPersistence, FlushInstruction};
use super::error::PmemError;
use super::flags::Flags;
use super::poison::{self, ReadFault};
use super::{finish, ops};
use crate::media::file::FileWindow;
use crate::media::{Granularity, MediaWindow};

/// libpmem2's override of the detected granularity, honoured here too (read at each
/// [`PmemMap::new`], as libpmem2 reads it at each `pmem2_map_new`).
pub const FORCE_GRANULARITY_ENV: &str = "PMEM2_FORCE_GRANULARITY";

/// Parses a `PMEM2_FORCE_GRANULARITY` value (`BYTE`, `CACHE_LINE`, `PAGE`, any case).
pub fn parse_granularity(value: &str) -> Option<Granularity> {
    match value.trim().to_ascii_uppercase().as_str() {
        "BYTE" => Some(Granularity::Byte),
        "CACHE_LINE" | "CACHELINE" | "CL" => Some(Granularity::CacheLine),
        "PAGE" => Some(Granularity::Page),
        _ => None,
    }
}

/// A mapped range of a media window with persistence operations over sub-ranges.
///
/// Offsets in every method are relative to the start of the mapped range. The mapping
/// keeps its window alive. Stores from several threads to the same bytes are the caller's
/// business, as with any shared memory; that is why direct access is `unsafe`
/// ([`PmemMap::slice`]) while the copying methods take `&self`.
#[derive(Debug)]
pub struct PmemMap {
    window: Arc<dyn MediaWindow>,
    range: Range<u64>,
    ptr: NonNull<u8>,
    len: usize,
    granularity: Granularity,
}

// SAFETY: `ptr` points into the window's mapping, which is `Send + Sync` (the MediaWindow
// contract) and kept alive by the Arc held here; the handle adds no thread affinity.
unsafe impl Send for PmemMap {}
// SAFETY: as for Send; `&PmemMap` only hands out the pointer and copies through it, which
// the window contract allows from any thread.
unsafe impl Sync for PmemMap {}

impl PmemMap {
    /// Maps window bytes `range`. The start must be aligned to the CPU's cache line (64
    /// bytes on x86, 128 on POWER) so that flushing this mapping never writes back a line
    /// it shares with a neighbour; the range must lie inside the window. The granularity
    /// is the window's, unless `PMEM2_FORCE_GRANULARITY` says otherwise.
    pub fn new(window: Arc<dyn MediaWindow>, range: Range<u64>) -> Result<PmemMap, PmemError> {
        let window_len = window.len();
        if range.start > range.end || range.end > window_len {
            return Err(PmemError::RangeOutsideWindow {
                range,
                window_len,
                window: window.describe(),
            });
        }
        let align = CpuPersistence::get().cache_line() as u64;
        if !range.start.is_multiple_of(align) {
            return Err(PmemError::Misaligned {
                offset: range.start,
                alignment: align,
            });
        }
        // Both fit usize: the window maps window_len bytes in this address space.
        let (start, len) = (range.start as usize, (range.end - range.start) as usize);
        // SAFETY: start <= window_len, so the pointer stays inside (or one past) the
        // window's mapping.
        let ptr = unsafe { NonNull::new_unchecked(window.base().as_ptr().add(start)) };
        let forced = std::env::var(FORCE_GRANULARITY_ENV).ok().and_then(|v| {
            let g = parse_granularity(&v);
            if g.is_none() {
                tracing::warn!(
                    "ignoring {FORCE_GRANULARITY_ENV}={v:?}: not BYTE, CACHE_LINE or PAGE"
                );
            }
            g
        });
        let granularity = forced.unwrap_or_else(|| window.granularity());
        Ok(PmemMap {
            window,
            range,
            ptr,
            len,
            granularity,
        })
    }

    /// Maps the whole of a plain file of `len` bytes (created if missing or empty, never
    /// resized): PAGE granularity, persistence through msync. For applications and
    /// benchmarks that keep their data in a file rather than on a namespace.
    pub fn from_file(path: impl AsRef<Path>, len: u64) -> Result<PmemMap, PmemError> {
        let window = FileWindow::open_or_create_unlabeled(path, len)?;
        PmemMap::new(Arc::new(window), 0..len)
    }

    /// Fails unless the mapping guarantees `required` or finer (libpmem2's
    /// `pmem2_config_set_required_store_granularity`).
    pub fn with_required_granularity(self, required: Granularity) -> Result<PmemMap, PmemError> {
        if self.granularity > required {
            return Err(PmemError::GranularityNotSupported {
                required,
                available: self.granularity,
                window: self.window.describe(),
            });
        }
        Ok(self)
    }

    /// Treats the mapping as having granularity `g` whatever the window says — what
    /// `PMEM2_FORCE_GRANULARITY` does, for tests and benchmarks on memory that only
    /// emulates pmem (a tmpfs file). Claiming a finer granularity than the hardware has
    /// loses durability on power failure.
    pub fn force_granularity(mut self, g: Granularity) -> PmemMap {
        self.granularity = g;
        self
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the mapping has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Start of the mapping; `len()` bytes from here are readable and writable while the
    /// mapping lives.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The window behind the mapping.
    pub fn window(&self) -> &Arc<dyn MediaWindow> {
        &self.window
    }

    /// The mapped range, in window offsets.
    pub fn window_range(&self) -> Range<u64> {
        self.range.clone()
    }

    /// The store granularity this mapping guarantees.
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }

    /// Whether CPU-side persistence works here (CACHE_LINE or BYTE granularity), i.e.
    /// whether `persist` is cheap instructions rather than msync (libpmem's
    /// `pmem_is_pmem`).
    pub fn is_pmem(&self) -> bool {
        self.granularity != Granularity::Page
    }

    /// The bytes `[offset, offset + len)` as a slice.
    ///
    /// # Safety
    /// Nobody stores to those bytes while the slice lives (not this process, not another
    /// mapping of the same media), and none of them is poisoned (see [`PmemMap::read`]).
    pub unsafe fn slice(&self, offset: usize, len: usize) -> Result<&[u8], PmemError> {
        self.check(offset, len)?;
        // SAFETY: inside the mapping (checked); the caller's contract rules out writers.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset), len) })
    }

    /// The bytes `[offset, offset + len)` as a mutable slice; persist them afterwards.
    ///
    /// # Safety
    /// No other reference to those bytes exists while the slice lives, and nobody else
    /// accesses them.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut(&self, offset: usize, len: usize) -> Result<&mut [u8], PmemError> {
        self.check(offset, len)?;
        // SAFETY: inside the mapping (checked); exclusivity is the caller's contract.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(offset), len) })
    }

    /// Writes back `[offset, offset + len)` toward the persistence domain without
    /// waiting (pair with [`PmemMap::drain`]).
    pub fn flush(&self, offset: usize, len: usize) -> Result<(), PmemError> {
        self.check(offset, len)?;
        self.flush_unchecked(offset, len)
    }

    /// Waits for earlier flushes and non-temporal stores (nothing to wait for at PAGE
    /// granularity, where `flush` is already synchronous).
    #[inline]
    pub fn drain(&self) {
        if self.granularity != Granularity::Page {
            super::drain();
        }
    }

    /// Makes `[offset, offset + len)` persistent: flush then drain.
    #[inline]
    pub fn persist(&self, offset: usize, len: usize) -> Result<(), PmemError> {
        self.check(offset, len)?;
        self.flush_unchecked(offset, len)?;
        self.drain();
        Ok(())
    }

    /// Persists `[offset, offset + len)` and then asks the window to push it as far as it
    /// can (libpmem2's `pmem2_deep_flush`), here `window.sync`: msync for files, a full
    /// flush for the BAR, the window's own deep-flush for devdax.
    ///
    /// Why only that: which persistence domain the OpenCAPI card guarantees — whether a
    /// CPU flush plus fence reaches media, or a device-side flush is needed — is not
    /// documented (spec/pmem.md §6.3). When it is known, the device step goes here.
    pub fn deep_flush(&self, offset: usize, len: usize) -> Result<(), PmemError> {
        self.check(offset, len)?;
        if self.granularity != Granularity::Page {
            self.flush_unchecked(offset, len)?;
            super::drain();
        }
        self.sync(offset, len, "deep flush")
    }

    /// Copies `src` to `offset` and makes it persistent as `flags` ask (by default:
    /// persistent on return). At PAGE granularity the copy is followed by msync unless
    /// NOFLUSH (msync has no separate drain, so NODRAIN alone still syncs).
    #[inline]
    pub fn memcpy(&self, offset: usize, src: &[u8], flags: Flags) -> Result<(), PmemError> {
        self.check(offset, src.len())?;
        // SAFETY: the destination lies inside the mapping (checked); `src` is a valid
        // slice; ops::copy allows overlap should `src` alias the mapping.
        unsafe { self.copy_raw(offset, src.as_ptr(), src.len(), flags) }
    }

    /// Moves `len` bytes inside the mapping from `src_offset` to `dst_offset` (the ranges
    /// may overlap), persistent as `flags` ask.
    pub fn memmove(
        &self,
        dst_offset: usize,
        src_offset: usize,
        len: usize,
        flags: Flags,
    ) -> Result<(), PmemError> {
        self.check(dst_offset, len)?;
        self.check(src_offset, len)?;
        // SAFETY: both ranges lie inside the mapping (checked); overlap is allowed.
        unsafe { self.copy_raw(dst_offset, self.ptr.as_ptr().add(src_offset), len, flags) }
    }

    /// Fills `len` bytes at `offset` with `byte`, persistent as `flags` ask.
    pub fn memset(
        &self,
        offset: usize,
        byte: u8,
        len: usize,
        flags: Flags,
    ) -> Result<(), PmemError> {
        self.check(offset, len)?;
        let cpu = CpuPersistence::get();
        // SAFETY: inside the mapping (checked).
        let dst = unsafe { self.ptr.as_ptr().add(offset) };
        match self.mode(cpu) {
            Mode::Lines => {
                // SAFETY: dst is valid for len bytes.
                unsafe { super::memset(dst, byte, len, flags) };
                Ok(())
            }
            Mode::Fence { lines } => {
                let lines = lines && !flags.contains(Flags::NOFLUSH);
                // SAFETY: dst is valid for len bytes.
                unsafe { ops::fill(cpu, dst, byte, len, flags, lines) };
                finish(cpu, flags);
                Ok(())
            }
            Mode::Sync => {
                // SAFETY: dst is valid for len bytes.
                unsafe { ptr::write_bytes(dst, byte, len) };
                self.sync_unless_noflush(offset, len, flags)
            }
        }
    }

    /// An 8-byte store at an 8-aligned `offset`, single-copy atomic (the unit PMDK relies
    /// on for failure atomicity, e.g. a log's tail pointer); not persisted — call
    /// [`PmemMap::persist`] after it.
    pub fn store_u64(&self, offset: usize, value: u64) -> Result<(), PmemError> {
        self.check(offset, 8)?;
        let addr = self.ptr.as_ptr() as usize + offset;
        if !addr.is_multiple_of(8) {
            return Err(PmemError::Misaligned {
                offset: offset as u64,
                alignment: 8,
            });
        }
        // SAFETY: the 8 bytes lie inside the mapping (checked) and are 8-aligned, as
        // AtomicU64 needs; other accesses to them are atomic or the caller's business.
        unsafe { AtomicU64::from_ptr(addr as *mut u64).store(value, Ordering::Release) };
        Ok(())
    }

    /// Reads `buf.len()` bytes at `offset` without ever dying of SIGBUS: known bad ranges
    /// of the window are checked first, then the copy is made by the kernel, so that a
    /// page that cannot be read (hwpoison, a file page past EOF) is an error naming its
    /// offset. Costs a system call; use [`PmemMap::slice`] where speed matters and the
    /// media is known good.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), PmemError> {
        self.check(offset, buf.len())?;
        if let Some(first) = self.first_bad(offset, buf.len()) {
            return Err(self.poisoned(first));
        }
        // SAFETY: inside the mapping (checked); the pointer is only handed to the kernel.
        let src = unsafe { self.ptr.as_ptr().add(offset) };
        match poison::checked_copy(src, buf) {
            Ok(()) => Ok(()),
            Err(ReadFault::At(k)) => Err(self.poisoned(offset + k)),
            Err(ReadFault::Unavailable(source)) => Err(PmemError::CheckedReadUnavailable {
                offset: offset as u64,
                source,
            }),
        }
    }

    /// The window's known bad ranges that fall in this mapping, in mapping offsets.
    pub fn bad_ranges(&self) -> Vec<Range<u64>> {
        let (s, e) = (self.range.start, self.range.end);
        self.window
            .bad_ranges()
            .into_iter()
            .filter(|r| r.start < e && r.end > s)
            .map(|r| r.start.max(s) - s..r.end.min(e) - s)
            .collect()
    }

    fn first_bad(&self, offset: usize, len: usize) -> Option<usize> {
        let s = offset as u64;
        let e = s + len as u64;
        self.bad_ranges()
            .into_iter()
            .find(|r| r.start < e && r.end > s)
            .map(|r| r.start.max(s) as usize)
    }

    fn poisoned(&self, offset: usize) -> PmemError {
        PmemError::Poisoned {
            offset: offset as u64,
            window_offset: self.range.start + offset as u64,
            window: self.window.describe(),
        }
    }

    #[inline]
    fn check(&self, offset: usize, len: usize) -> Result<(), PmemError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(PmemError::OutOfRange {
                offset: offset as u64,
                len: len as u64,
                map_len: self.len as u64,
            }),
        }
    }

    #[inline]
    fn mode(&self, cpu: &CpuPersistence) -> Mode {
        match self.granularity {
            Granularity::Page => Mode::Sync,
            Granularity::CacheLine if cpu.flush_instruction() == FlushInstruction::None => {
                Mode::Sync
            }
            Granularity::CacheLine => Mode::Lines,
            // PMEM_NO_FLUSH=0 asks for flushes even where the platform does not need them.
            Granularity::Byte => Mode::Fence {
                lines: cpu.no_flush_override() == Some(false),
            },
        }
    }

    #[inline]
    fn flush_unchecked(&self, offset: usize, len: usize) -> Result<(), PmemError> {
        let cpu = CpuPersistence::get();
        match self.mode(cpu) {
            Mode::Sync => self.sync(offset, len, "msync"),
            Mode::Lines | Mode::Fence { lines: true } => {
                // SAFETY: the caller checked that the range lies inside the mapping.
                unsafe { ops::flush(cpu, self.ptr.as_ptr().add(offset), len) };
                Ok(())
            }
            Mode::Fence { lines: false } => Ok(()),
        }
    }

    fn sync(&self, offset: usize, len: usize, op: &'static str) -> Result<(), PmemError> {
        let range = self.range.start + offset as u64..self.range.start + (offset + len) as u64;
        self.window
            .sync(range.clone())
            .map_err(|source| PmemError::Sync { op, range, source })
    }

    fn sync_unless_noflush(
        &self,
        offset: usize,
        len: usize,
        flags: Flags,
    ) -> Result<(), PmemError> {
        if flags.contains(Flags::NOFLUSH) {
            return Ok(());
        }
        self.sync(offset, len, "msync")
    }

    /// # Safety
    /// `[offset, offset + len)` lies inside the mapping and `src` is valid for `len`
    /// bytes (it may overlap the destination).
    #[inline]
    unsafe fn copy_raw(
        &self,
        offset: usize,
        src: *const u8,
        len: usize,
        flags: Flags,
    ) -> Result<(), PmemError> {
        let cpu = CpuPersistence::get();
        // SAFETY: the caller's contract.
        let dst = unsafe { self.ptr.as_ptr().add(offset) };
        match self.mode(cpu) {
            Mode::Lines => {
                // SAFETY: the caller's contract.
                unsafe { super::memcpy(dst, src, len, flags) };
                Ok(())
            }
            Mode::Fence { lines } => {
                let lines = lines && !flags.contains(Flags::NOFLUSH);
                // SAFETY: the caller's contract.
                unsafe { ops::copy(cpu, dst, src, len, flags, lines) };
                finish(cpu, flags);
                Ok(())
            }
            Mode::Sync => {
                // Non-temporal stores buy nothing when msync writes the pages back.
                // SAFETY: the caller's contract; ptr::copy allows overlap.
                unsafe { ptr::copy(src, dst, len) };
                self.sync_unless_noflush(offset, len, flags)
            }
        }
    }
}

/// How stores become persistent on this mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Cache-line flushes and a fence (CACHE_LINE).
    Lines,
    /// The fence only; flushes too when `lines` (BYTE).
    Fence { lines: bool },
    /// The window's msync (PAGE, or CACHE_LINE without a flush instruction).
    Sync,
}

#[cfg(test)]
#[path = "map_tests.rs"]
mod tests;
