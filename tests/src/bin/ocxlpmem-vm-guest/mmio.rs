//! The global MMIO (BAR 0) as an [`Mmio`] for the admin crate, two ways:
//! * [`TrappedMmio`]: every register access is a `pread`/`pwrite` of the VFIO device fd
//!   (the driver's `Transport::region_read`/`region_write`);
//! * [`MappedMmio`]: BAR 0 mapped with `Transport::map_region`, every access one volatile
//!   64-bit load or store (what the card's host does on POWER9).

use std::ptr::NonNull;
use std::sync::Arc;

use ocxlpmem::transport::{region, RegionMap, Transport, TransportError};
use ocxlpmem_regs::mmio::{check_access, Mmio, MmioError};

fn io(offset: u64, e: TransportError) -> MmioError {
    MmioError::Io {
        offset,
        source: std::io::Error::other(e),
    }
}

/// BAR 0 through trapped transport accesses.
pub struct TrappedMmio {
    transport: Arc<dyn Transport>,
    size: u64,
}

impl TrappedMmio {
    /// The first `size` bytes of BAR 0 of `transport` (the global MMIO area).
    pub fn new(transport: Arc<dyn Transport>, size: u64) -> Self {
        TrappedMmio { transport, size }
    }
}

impl Mmio for TrappedMmio {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_u64(&self, offset: u64) -> Result<u64, MmioError> {
        check_access(offset, 8, self.size, 8)?;
        let mut b = [0u8; 8];
        self.transport
            .region_read(region::BAR0, offset, &mut b)
            .map_err(|e| io(offset, e))?;
        Ok(u64::from_le_bytes(b))
    }

    fn write_u64(&self, offset: u64, value: u64) -> Result<(), MmioError> {
        check_access(offset, 8, self.size, 8)?;
        self.transport
            .region_write(region::BAR0, offset, &value.to_le_bytes())
            .map_err(|e| io(offset, e))
    }
}

/// BAR 0 mapped into this process.
pub struct MappedMmio {
    map: RegionMap,
    size: u64,
}

impl MappedMmio {
    /// Maps the first `size` bytes of BAR 0 of `transport`.
    pub fn new(transport: &dyn Transport, size: u64) -> Result<Self, TransportError> {
        let map = transport.map_region(region::BAR0, 0, size)?;
        Ok(MappedMmio { map, size })
    }

    fn at(&self, offset: u64) -> Result<NonNull<u64>, MmioError> {
        check_access(offset, 8, self.size.min(self.map.len() as u64), 8)?;
        // SAFETY: `offset + 8 <= map.len()` was checked just above, so the pointer stays
        // inside the mapping; the base is page aligned and `offset` 8-byte aligned.
        Ok(unsafe { self.map.as_ptr().add(offset as usize) }.cast())
    }
}

impl Mmio for MappedMmio {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_u64(&self, offset: u64) -> Result<u64, MmioError> {
        let p = self.at(offset)?;
        // SAFETY: `p` is an aligned pointer into the live BAR mapping (checked by `at`);
        // a volatile load is one 64-bit access the device sees.
        Ok(u64::from_le(unsafe { p.as_ptr().read_volatile() }))
    }

    fn write_u64(&self, offset: u64, value: u64) -> Result<(), MmioError> {
        let p = self.at(offset)?;
        // SAFETY: as in `read_u64`, for one volatile 64-bit store.
        unsafe { p.as_ptr().write_volatile(value.to_le()) };
        Ok(())
    }
}
