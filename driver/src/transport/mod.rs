//! The transport trait ("a PCI function I can talk to") and its implementations.
//!
//! A transport gives the layers above it the VFIO device model, whatever carries it: the
//! kernel's vfio-pci, a vfio-user server over a UNIX socket, or the simulator in the same
//! process. Regions are numbered as VFIO numbers them ([`region`]); config space is region
//! [`region::CONFIG`] but has its own methods because every transport treats it specially.

#[cfg(feature = "sim")]
pub mod sim;
pub mod vfio;
pub mod vfio_user;

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

/// VFIO region indices of a PCI function (`VFIO_PCI_*_REGION_INDEX`).
pub mod region {
    /// BAR 0: the simulated card's global MMIO (the AFU descriptor says where it is).
    pub const BAR0: u32 = 0;
    /// BAR 2.
    pub const BAR2: u32 = 2;
    /// BAR 4: the simulated card's LPC memory.
    pub const BAR4: u32 = 4;
    /// The expansion ROM.
    pub const ROM: u32 = 6;
    /// PCI configuration space.
    pub const CONFIG: u32 = 7;
    /// Number of PCI regions.
    pub const COUNT: u32 = 9;
}

/// An error of a transport, with the operation it belongs to.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A system call or socket operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done ("VFIO_DEVICE_GET_REGION_INFO region 4", "REGION_READ").
        op: String,
        /// The OS error, errno kept.
        #[source]
        source: io::Error,
    },
    /// The region index does not exist on this device.
    #[error("region {index} does not exist on {device}")]
    NoSuchRegion {
        /// The region index asked for.
        index: u32,
        /// The device's description.
        device: String,
    },
    /// An access fell outside the region.
    #[error("access of {len} bytes at {offset:#x} is outside region {index} ({size:#x} bytes)")]
    OutOfBounds {
        /// Region index.
        index: u32,
        /// Offset of the access.
        offset: u64,
        /// Length of the access.
        len: u64,
        /// Size of the region.
        size: u64,
    },
    /// The region (or the asked-for part of it) cannot be memory-mapped.
    #[error("region {index} range {offset:#x}+{len:#x} cannot be mmap-ed: {why}")]
    NotMappable {
        /// Region index.
        index: u32,
        /// Offset asked for.
        offset: u64,
        /// Length asked for.
        len: u64,
        /// Why not (no mmap flag, outside the sparse areas, misaligned).
        why: String,
    },
    /// The transport does not offer this operation.
    #[error("{op} is not supported by {device}")]
    Unsupported {
        /// The operation.
        op: &'static str,
        /// The device's description.
        device: String,
    },
    /// The peer broke the protocol (vfio-user) or returned an error reply.
    #[error("{op}: peer replied with an error: {detail}")]
    Protocol {
        /// The request.
        op: String,
        /// What was wrong, errno included where the peer sent one.
        detail: String,
    },
    /// The device is gone: the server went away, or the function was removed.
    #[error("device {device} is gone: {detail}")]
    Gone {
        /// The device's description.
        device: String,
        /// What was seen.
        detail: String,
    },
}

/// Result of a transport operation.
pub type Result<T> = std::result::Result<T, TransportError>;

/// What a region allows (`VFIO_REGION_INFO_FLAG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegionFlags {
    /// Reads through the transport (trapped) are allowed.
    pub read: bool,
    /// Writes through the transport (trapped) are allowed.
    pub write: bool,
    /// Parts of the region may be mmap-ed ([`RegionInfo::mmap_areas`]).
    pub mmap: bool,
}

/// One region of the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    /// VFIO region index.
    pub index: u32,
    /// Size in bytes (0 = the region is absent).
    pub size: u64,
    /// Access flags.
    pub flags: RegionFlags,
    /// The mmap-able `(offset, size)` areas inside the region, from the sparse-mmap
    /// capability. When `flags.mmap` is set and the device sent no sparse capability, the
    /// transport reports the whole region as one area, so callers never special-case it.
    pub mmap_areas: Vec<(u64, u64)>,
}

impl RegionInfo {
    /// True when `[offset, offset + len)` lies inside one mmap-able area.
    pub fn is_mappable(&self, offset: u64, len: u64) -> bool {
        let Some(end) = offset.checked_add(len) else {
            return false;
        };
        self.flags.mmap
            && self
                .mmap_areas
                .iter()
                .any(|&(o, s)| offset >= o && o.checked_add(s).is_some_and(|e| end <= e))
    }
}

/// Interrupt index information (`VFIO_DEVICE_GET_IRQ_INFO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrqInfo {
    /// IRQ index (`VFIO_PCI_INTX_IRQ_INDEX` = 0, MSI = 1, MSI-X = 2, ...).
    pub index: u32,
    /// Number of vectors.
    pub count: u32,
    /// Whether eventfds can be attached (`VFIO_IRQ_INFO_EVENTFD`).
    pub eventfd: bool,
}

/// EEH state of the device's partitionable endpoint (POWER; spec §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EehState {
    /// The transport has no EEH (not POWER, or not a kernel transport).
    NotSupported,
    /// MMIO and DMA work.
    Normal,
    /// The PE is frozen: MMIO reads return all ones until it is unfrozen or reset.
    Frozen,
    /// The PE is unavailable (being reset, or permanently failed).
    Unavailable,
}

/// An owned memory mapping of part of a region; unmapped on drop.
pub struct RegionMap {
    ptr: NonNull<u8>,
    len: usize,
    // What keeps the mapping alive and unmaps it on drop.
    _owner: Box<dyn Send + Sync>,
}

impl RegionMap {
    /// Wraps a mapping of `len` bytes at `ptr`, kept alive (and unmapped on drop) by
    /// `owner` (for example a `memmap2::MmapRaw`).
    ///
    /// # Safety
    /// `ptr` must point to `len` bytes mapped readable and writable by this process, valid
    /// until `owner` is dropped and not unmapped by anything else before.
    pub unsafe fn from_raw(ptr: NonNull<u8>, len: usize, owner: Box<dyn Send + Sync>) -> Self {
        RegionMap {
            ptr,
            len,
            _owner: owner,
        }
    }

    /// Maps `len` bytes at `offset` of region `info` from the file `fd`, where the region
    /// starts at `file_offset` (a VFIO device fd, a vfio-user region fd, the simulator's
    /// memory file). Refuses ranges outside one mmap area and empty ranges; `device` names
    /// the device in errors.
    pub fn map_file(
        fd: BorrowedFd<'_>,
        file_offset: u64,
        info: &RegionInfo,
        offset: u64,
        len: u64,
        device: &str,
    ) -> Result<RegionMap> {
        let index = info.index;
        let refuse = |why: String| TransportError::NotMappable {
            index,
            offset,
            len,
            why,
        };
        if !info.is_mappable(offset, len) {
            return Err(refuse(format!(
                "outside the mmap areas {:x?} (or no mmap flag)",
                info.mmap_areas
            )));
        }
        let ulen =
            usize::try_from(len).map_err(|_| refuse("longer than the address space".into()))?;
        if ulen == 0 {
            return Err(refuse("an empty mapping".into()));
        }
        let at = file_offset
            .checked_add(offset)
            .ok_or_else(|| refuse("file offset overflows".into()))?;
        let map = memmap2::MmapOptions::new()
            .offset(at)
            .len(ulen)
            .map_raw(fd.as_raw_fd())
            .map_err(|source| TransportError::Io {
                op: format!(
                    "mmap of region {index} {offset:#x}+{len:#x} (file offset {at:#x}) of {device}"
                ),
                source,
            })?;
        let ptr = NonNull::new(map.as_mut_ptr())
            .ok_or_else(|| refuse("mmap returned a null pointer".into()))?;
        // SAFETY: `map` is a fresh shared read-write mapping of exactly `ulen` bytes at
        // `ptr`; it moves into the RegionMap, which unmaps it on drop, and nothing else
        // unmaps it.
        Ok(unsafe { RegionMap::from_raw(ptr, ulen, Box::new(map)) })
    }

    /// Start of the mapping.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the mapping has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for RegionMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegionMap")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .finish()
    }
}

// SAFETY: a RegionMap is a pointer to shared memory that lives as long as its owner (which
// is Send + Sync); it has no thread affinity, and accesses through it are the users' (raw,
// volatile) business as with any shared mapping.
unsafe impl Send for RegionMap {}
// SAFETY: as above; &RegionMap only hands out the pointer.
unsafe impl Sync for RegionMap {}

/// A PCI function the driver can talk to.
///
/// Every method is safe to call from many threads at once. Offsets are region offsets;
/// accesses outside a region fail with [`TransportError::OutOfBounds`].
pub trait Transport: Send + Sync + fmt::Debug {
    /// A short description for messages ("vfio 0000:01:00.1", "vfio-user /run/sim.sock",
    /// "sim serial 0x1234").
    fn describe(&self) -> String;

    /// Reads `buf.len()` bytes of config space at `offset`.
    fn config_read(&self, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// Writes `data` to config space at `offset`.
    fn config_write(&self, offset: u64, data: &[u8]) -> Result<()>;

    /// Describes region `index`.
    fn region_info(&self, index: u32) -> Result<RegionInfo>;

    /// Trapped read of `buf.len()` bytes of region `index` at `offset`.
    fn region_read(&self, index: u32, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// Trapped write of `data` to region `index` at `offset`.
    fn region_write(&self, index: u32, offset: u64, data: &[u8]) -> Result<()>;

    /// Maps `len` bytes of region `index` at `offset`, which must lie inside one mmap area.
    fn map_region(&self, index: u32, offset: u64, len: u64) -> Result<RegionMap>;

    /// Describes interrupt index `index`.
    fn irq_info(&self, index: u32) -> Result<IrqInfo>;

    /// Attaches `fds` as the eventfds of vectors `0..fds.len()` of IRQ `index`; an empty
    /// slice detaches them all.
    fn set_irq_eventfds(&self, index: u32, fds: &[OwnedFd]) -> Result<()>;

    /// Resets the function (`VFIO_DEVICE_RESET`); for the card, a controller reset.
    fn reset(&self) -> Result<()>;

    /// The EEH state of the function's PE (POWER only).
    fn eeh_state(&self) -> Result<EehState> {
        Ok(EehState::NotSupported)
    }

    /// Tries to recover a frozen PE: unfreeze MMIO, then reset if that is not enough.
    fn eeh_recover(&self) -> Result<()> {
        Err(TransportError::Unsupported {
            op: "EEH recovery",
            device: self.describe(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(mmap: bool, areas: Vec<(u64, u64)>) -> RegionInfo {
        RegionInfo {
            index: 0,
            size: 0x10000,
            flags: RegionFlags {
                read: true,
                write: true,
                mmap,
            },
            mmap_areas: areas,
        }
    }

    #[test]
    fn mappable_only_inside_one_area() {
        let r = info(true, vec![(0x1000, 0x8000), (0x9000, 0x1000)]);
        assert!(r.is_mappable(0x1000, 0x8000));
        assert!(r.is_mappable(0x9000, 0x1000));
        assert!(!r.is_mappable(0x0, 0x1000));
        // Spans two adjacent areas: not one mapping.
        assert!(!r.is_mappable(0x8000, 0x2000));
        assert!(!r.is_mappable(u64::MAX, 2));
    }

    #[test]
    fn no_mmap_flag_means_never_mappable() {
        let r = info(false, vec![(0, 0x10000)]);
        assert!(!r.is_mappable(0, 0x1000));
    }
}
