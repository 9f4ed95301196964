//! Media windows: where the card's persistent memory is (spec §8).
//!
//! On POWER9 the LPC memory is not a PCI BAR; the platform places it in the physical
//! address space and the driver reaches it through a window: a device-dax device or DAX
//! file, a `/dev/mem` range, the simulator's BAR 4, or a plain file. Every window is one
//! mapping of `lpc_size` bytes whose first [`LABEL_AREA_SIZE`] bytes are the label area.

use std::fmt;
use std::io;
use std::ops::Range;
use std::ptr::NonNull;

pub use ocxlpmem_regs::abi::LABEL_AREA_SIZE;

/// What backs a media window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// A device BAR mapped through a transport (the simulator's BAR 4).
    Bar,
    /// A device-dax character device (`/dev/daxX.Y`).
    DevDax,
    /// A file on a DAX filesystem, mapped with `MAP_SYNC`.
    DaxFile,
    /// A physical address range mapped through `/dev/mem`.
    DevMem,
    /// A plain file (page cache; persistence through `msync`).
    File,
}

/// The store granularity a mapping guarantees (libpmem2's terms, spec/pmem.md §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Granularity {
    /// Stores are persistent once visible (eADR-like): only ordering is needed.
    Byte,
    /// CPU cache flushes make stores persistent.
    CacheLine,
    /// Only `msync` of whole pages makes stores persistent.
    Page,
}

/// One mapping of the card's memory.
///
/// The mapping stays valid while the window lives; dropping the window unmaps it.
/// Implementations must be safe to share between threads: concurrent stores to the same
/// bytes are the caller's business, as with any shared memory.
pub trait MediaWindow: Send + Sync + fmt::Debug {
    /// What backs the window.
    fn kind(&self) -> MediaKind;

    /// Length of the mapping in bytes (the card's LPC size).
    fn len(&self) -> u64;

    /// True when the window has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Start of the mapping; `len()` bytes from here are readable and writable.
    fn base(&self) -> NonNull<u8>;

    /// The granularity a store to this window can be made persistent at.
    fn granularity(&self) -> Granularity;

    /// Makes `range` durable the page-granular way (`msync(MS_SYNC)`); a no-op for windows
    /// whose granularity is finer than [`Granularity::Page`] may still flush the page cache.
    fn sync(&self, range: Range<u64>) -> io::Result<()>;

    /// Known bad (poisoned) byte ranges of the window, sorted and not overlapping.
    fn bad_ranges(&self) -> Vec<Range<u64>> {
        Vec::new()
    }

    /// Human description for messages (path, BAR, physical address).
    fn describe(&self) -> String;
}

/// Checks that `range` (offsets in a mapping of `len` bytes) is ordered and inside it: the
/// precondition of every window's `sync`.
pub(crate) fn check_sync_range(range: &Range<u64>, len: u64) -> io::Result<()> {
    if range.start > range.end || range.end > len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("sync range {range:?} is outside the {len:#x}-byte window"),
        ));
    }
    Ok(())
}

pub mod bar;
pub mod devdax;
pub mod devmem;
pub mod file;
pub mod spec;
