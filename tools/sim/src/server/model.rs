//! What the vfio-user server needs from a device: its regions, trapped accesses, reset and
//! IRQ counts. [`crate::SimCard`] implements it; the seam keeps the protocol code testable
//! against a tiny fake.

use std::os::fd::BorrowedFd;

/// One region of the device as the server describes it (VFIO region numbering).
#[derive(Debug, Clone)]
pub struct RegionDesc<'a> {
    /// Size in bytes (0 = absent).
    pub size: u64,
    /// Trapped reads allowed.
    pub read: bool,
    /// Trapped writes allowed.
    pub write: bool,
    /// mmap-able `(offset, size)` areas inside the region; sent as a sparse-mmap capability.
    pub mmap_areas: Vec<(u64, u64)>,
    /// The descriptor to mmap the areas through, and the file offset of the region start.
    pub fd: Option<(BorrowedFd<'a>, u64)>,
}

impl RegionDesc<'_> {
    /// An absent region.
    pub fn absent() -> Self {
        RegionDesc {
            size: 0,
            read: false,
            write: false,
            mmap_areas: Vec::new(),
            fd: None,
        }
    }
}

/// A device the server can serve. Errors are errno values sent back in the error reply.
pub trait DeviceModel {
    /// Number of regions (9 for a PCI function: BAR0-5, ROM, config, VGA).
    fn num_regions(&self) -> u32 {
        9
    }
    /// Describes region `index` (< `num_regions`).
    fn region(&self, index: u32) -> RegionDesc<'_>;
    /// Number of vectors of IRQ index `index` (INTx 0, MSI 1, MSI-X 2, ERR 3, REQ 4).
    fn irq_count(&self, index: u32) -> u32;
    /// Trapped read (config space is region 7).
    fn read(&self, index: u32, offset: u64, buf: &mut [u8]) -> Result<(), i32>;
    /// Trapped write.
    fn write(&self, index: u32, offset: u64, data: &[u8]) -> Result<(), i32>;
    /// Device reset.
    fn reset(&self) -> Result<(), i32>;
}
