//! The simulated card as a [`DeviceModel`]: its VFIO-shaped front end, unchanged.

use tracing::debug;

use super::model::{DeviceModel, RegionDesc};
use crate::{SimCard, SimError};

/// VFIO region index of config space.
const CONFIG: u32 = 7;
/// Size of PCIe config space, used when the card does not describe region 7 itself.
const CONFIG_SIZE: u64 = 0x1000;

/// The errno an error reply carries: EINVAL for accesses the card refuses (wrong width or
/// alignment, outside a region, no such region), EIO for media errors (poisoned LPC
/// ranges) and failures of the backing memory.
fn errno(op: &str, index: u32, offset: u64, len: usize, e: &SimError) -> i32 {
    debug!(op, index, offset, len, error = %e, "access refused");
    match e {
        SimError::Poisoned { .. } => libc::EIO,
        SimError::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
        _ => libc::EINVAL,
    }
}

impl DeviceModel for SimCard {
    fn region(&self, index: u32) -> RegionDesc<'_> {
        match SimCard::region(self, index) {
            Some(r) => RegionDesc {
                size: r.size,
                read: r.readable,
                write: r.writable,
                mmap_areas: r.mmap_areas.clone(),
                fd: SimCard::region_fd(self, index),
            },
            None if index == CONFIG => RegionDesc {
                size: CONFIG_SIZE,
                read: true,
                write: true,
                mmap_areas: Vec::new(),
                fd: None,
            },
            None => RegionDesc::absent(),
        }
    }

    fn irq_count(&self, _index: u32) -> u32 {
        // Under VFIO the card's interrupts are unavailable (spec §4): no vectors.
        0
    }

    fn read(&self, index: u32, offset: u64, buf: &mut [u8]) -> Result<(), i32> {
        let r = if index == CONFIG {
            self.config_read(offset, buf)
        } else {
            self.region_read(index, offset, buf)
        };
        r.map_err(|e| errno("read", index, offset, buf.len(), &e))
    }

    fn write(&self, index: u32, offset: u64, data: &[u8]) -> Result<(), i32> {
        let r = if index == CONFIG {
            self.config_write(offset, data)
        } else {
            self.region_write(index, offset, data)
        };
        r.map_err(|e| errno("write", index, offset, data.len(), &e))
    }

    fn reset(&self) -> Result<(), i32> {
        SimCard::reset(self);
        Ok(())
    }
}
