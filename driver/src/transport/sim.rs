//! The in-process simulator as a transport (cargo feature `sim`).
//!
//! [`SimTransport`] puts the VFIO-shaped front end of an [`ocxlpmem_sim::SimCard`] behind
//! [`Transport`], so everything above the transport layer runs unchanged against the
//! simulated card: trapped accesses call the card's register file directly, and mmap-able
//! areas are mapped from the card's memory file, as a VFIO device fd would be.

use std::io;
use std::os::fd::OwnedFd;

use ocxlpmem_sim::{SimCard, SimError};

use super::{IrqInfo, RegionFlags, RegionInfo, RegionMap, Result, Transport, TransportError};

/// A simulated card reached in process.
#[derive(Debug, Clone)]
pub struct SimTransport {
    card: SimCard,
}

impl SimTransport {
    /// A transport over `card` (the card stays shared with its other clones, so tests can
    /// inject faults and advance its clock while the driver talks to it).
    pub fn new(card: SimCard) -> SimTransport {
        SimTransport { card }
    }

    /// The card behind the transport.
    pub fn card(&self) -> &SimCard {
        &self.card
    }

    fn error(&self, op: String, e: SimError) -> TransportError {
        match e {
            SimError::NoSuchRegion { index } => TransportError::NoSuchRegion {
                index,
                device: self.describe(),
            },
            SimError::OutOfBounds {
                region,
                offset,
                len,
                size,
            } => TransportError::OutOfBounds {
                index: region,
                offset,
                len,
                size,
            },
            // What the kernel and the vfio-user server answer a refused access with.
            other => TransportError::Io {
                op,
                source: io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
            },
        }
    }
}

impl Transport for SimTransport {
    fn describe(&self) -> String {
        format!("sim serial {:#x}", self.card.config().serial)
    }

    fn config_read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.card
            .config_read(offset, buf)
            .map_err(|e| self.error(format!("config read at {offset:#x}"), e))
    }

    fn config_write(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.card
            .config_write(offset, data)
            .map_err(|e| self.error(format!("config write at {offset:#x}"), e))
    }

    fn region_info(&self, index: u32) -> Result<RegionInfo> {
        let r = self
            .card
            .region(index)
            .ok_or_else(|| TransportError::NoSuchRegion {
                index,
                device: self.describe(),
            })?;
        Ok(RegionInfo {
            index,
            size: r.size,
            flags: RegionFlags {
                read: r.readable,
                write: r.writable,
                mmap: !r.mmap_areas.is_empty(),
            },
            mmap_areas: r.mmap_areas,
        })
    }

    fn region_read(&self, index: u32, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.card
            .region_read(index, offset, buf)
            .map_err(|e| self.error(format!("region {index} read at {offset:#x}"), e))
    }

    fn region_write(&self, index: u32, offset: u64, data: &[u8]) -> Result<()> {
        self.card
            .region_write(index, offset, data)
            .map_err(|e| self.error(format!("region {index} write at {offset:#x}"), e))
    }

    fn map_region(&self, index: u32, offset: u64, len: u64) -> Result<RegionMap> {
        let info = self.region_info(index)?;
        let not_mappable = |why: &str| TransportError::NotMappable {
            index,
            offset,
            len,
            why: why.to_string(),
        };
        let (fd, base) = self
            .card
            .region_fd(index)
            .ok_or_else(|| not_mappable("the region has no backing file"))?;
        RegionMap::map_file(fd, base, &info, offset, len, &self.describe())
    }

    fn irq_info(&self, index: u32) -> Result<IrqInfo> {
        // The card signals nothing by interrupt (spec §4): every index has no vectors.
        Ok(IrqInfo {
            index,
            count: 0,
            eventfd: false,
        })
    }

    fn set_irq_eventfds(&self, _index: u32, fds: &[OwnedFd]) -> Result<()> {
        if fds.is_empty() {
            return Ok(());
        }
        Err(TransportError::Unsupported {
            op: "interrupt eventfds",
            device: self.describe(),
        })
    }

    fn reset(&self) -> Result<()> {
        self.card.reset();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::region;
    use ocxlpmem_sim::SimConfig;

    fn transport() -> SimTransport {
        let cfg = SimConfig {
            serial: 0x1234,
            ..SimConfig::default()
        };
        SimTransport::new(SimCard::new(cfg).unwrap())
    }

    #[test]
    fn config_space_shows_the_card_ids() {
        let t = transport();
        let mut id = [0u8; 4];
        t.config_read(0, &mut id).unwrap();
        assert_eq!(u16::from_le_bytes([id[0], id[1]]), 0x1014);
        assert_eq!(u16::from_le_bytes([id[2], id[3]]), 0x0625);
        assert_eq!(t.describe(), "sim serial 0x1234");
    }

    #[test]
    fn lpc_memory_mapping_and_trapped_access_see_the_same_bytes() {
        let t = transport();
        let info = t.region_info(region::BAR4).unwrap();
        assert!(info.flags.mmap && info.size >= 32 << 20, "{info:?}");
        let map = t.map_region(region::BAR4, 0x10_0000, 4096).unwrap();
        // SAFETY: the mapping is 4096 bytes long and alive.
        unsafe { map.as_ptr().as_ptr().add(8).write_volatile(0x5a) };
        let mut b = [0u8; 1];
        t.region_read(region::BAR4, 0x10_0008, &mut b).unwrap();
        assert_eq!(b[0], 0x5a);
    }

    #[test]
    fn bad_accesses_are_typed_errors() {
        let t = transport();
        assert!(matches!(
            t.region_info(3),
            Err(TransportError::NoSuchRegion { index: 3, .. })
        ));
        let size = t.region_info(region::BAR4).unwrap().size;
        let mut b = [0u8; 8];
        assert!(matches!(
            t.region_read(region::BAR4, size - 4, &mut b),
            Err(TransportError::OutOfBounds { index: 4, .. })
        ));
        assert!(matches!(
            t.map_region(region::BAR4, size, 4096),
            Err(TransportError::NotMappable { .. })
        ));
        assert!(t.set_irq_eventfds(2, &[]).is_ok());
    }
}
