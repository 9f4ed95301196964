//! The global MMIO area over a transport (spec §7): `global_mmio_size` bytes at
//! `global_mmio_offset` of BAR `global_mmio_bar`, every access bounds-checked.
//!
//! Parts of the area the transport lets us mmap are accessed with single volatile 64-bit
//! loads and stores (no system call: a VFIO BAR on real hardware, the simulator's data
//! buffers); the rest goes through trapped region reads and writes. Every store is
//! preceded by a full fence, so the stores to a request block are ordered before the
//! doorbell store that follows them, whichever path each one takes (spec §9: `sync` on
//! POWER).

use std::fmt;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use ocxlpmem_regs::mmio::check_access;
use ocxlpmem_regs::{Mmio, MmioError};

use crate::transport::{RegionMap, Transport, TransportError};

/// Where the global MMIO area is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MmioLocation {
    /// BAR index (0, 2 or 4).
    pub bar: u8,
    /// Offset of the area in the BAR.
    pub offset: u64,
    /// Size of the area in bytes.
    pub size: u64,
}

impl fmt::Display for MmioLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BAR {} + {:#x}, {:#x} bytes",
            self.bar, self.offset, self.size
        )
    }
}

impl std::str::FromStr for MmioLocation {
    type Err = String;

    /// Parses `BAR:OFFSET:SIZE` (numbers in decimal or 0x-hex), e.g. `0:0:0x10000`.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |t: &str| -> Result<u64, String> {
            let t = t.trim();
            match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(h) => u64::from_str_radix(h, 16),
                None => t.parse(),
            }
            .map_err(|e| format!("{t:?}: {e}"))
        };
        let [bar, offset, size] = parts[..] else {
            return Err(format!("{s:?}: expected BAR:OFFSET:SIZE, e.g. 0:0:0x10000"));
        };
        let bar = num(bar)?;
        if !matches!(bar, 0 | 2 | 4) {
            return Err(format!("BAR {bar}: the global MMIO BAR is 0, 2 or 4"));
        }
        Ok(MmioLocation {
            bar: bar as u8,
            offset: num(offset)?,
            size: num(size)?,
        })
    }
}

/// A mapped part of the area, in area-relative offsets.
struct Mapped {
    start: u64,
    end: u64,
    map: RegionMap,
}

/// [`Mmio`] over the global MMIO area of a card behind a transport.
pub struct GlobalMmio {
    transport: Arc<dyn Transport>,
    location: MmioLocation,
    mapped: Vec<Mapped>,
}

impl fmt::Debug for GlobalMmio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalMmio")
            .field("device", &self.transport.describe())
            .field("location", &self.location)
            .field(
                "mapped",
                &self
                    .mapped
                    .iter()
                    .map(|m| m.start..m.end)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

const PAGE: u64 = 4096;

impl GlobalMmio {
    /// The area at `location` of `transport`. With `map`, every page-aligned part of it
    /// that lies in an mmap-able area of the BAR is mapped (a part that fails to map stays
    /// trapped, with a debug log line); without, every access is trapped.
    ///
    /// The caller has checked that the area fits the BAR.
    pub fn new(transport: Arc<dyn Transport>, location: MmioLocation, map: bool) -> Self {
        let mut mapped = Vec::new();
        if map {
            let bar = u32::from(location.bar);
            let areas = transport
                .region_info(bar)
                .map(|i| i.mmap_areas)
                .unwrap_or_default();
            let (lo, hi) = (
                location.offset,
                location.offset.saturating_add(location.size),
            );
            for (off, len) in areas {
                let start = off.max(lo).next_multiple_of(PAGE);
                let end = off.saturating_add(len).min(hi) / PAGE * PAGE;
                if start >= end {
                    continue;
                }
                match transport.map_region(bar, start, end - start) {
                    Ok(map) => mapped.push(Mapped {
                        start: start - lo,
                        end: end - lo,
                        map,
                    }),
                    Err(e) => tracing::debug!(
                        device = transport.describe(),
                        start,
                        end,
                        error = %e,
                        "global MMIO part stays trapped"
                    ),
                }
            }
        }
        GlobalMmio {
            transport,
            location,
            mapped,
        }
    }

    /// Where the area is.
    pub fn location(&self) -> MmioLocation {
        self.location
    }

    /// The mapped parts, in area offsets.
    pub fn mapped_ranges(&self) -> Vec<std::ops::Range<u64>> {
        self.mapped.iter().map(|m| m.start..m.end).collect()
    }

    /// The transport underneath.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// The mapped address of `[offset, offset + len)` if it lies in one mapped part.
    fn mapped_at(&self, offset: u64, len: u64) -> Option<*mut u8> {
        let m = self
            .mapped
            .iter()
            .find(|m| offset >= m.start && offset + len <= m.end)?;
        // In bounds: `offset - m.start + len <= m.map.len()` by the find above.
        Some(
            m.map
                .as_ptr()
                .as_ptr()
                .wrapping_add((offset - m.start) as usize),
        )
    }

    fn io(offset: u64, e: TransportError) -> MmioError {
        MmioError::Io {
            offset,
            source: std::io::Error::other(e),
        }
    }
}

impl Mmio for GlobalMmio {
    fn size(&self) -> u64 {
        self.location.size
    }

    fn read_u64(&self, offset: u64) -> Result<u64, MmioError> {
        check_access(offset, 8, self.location.size, 8)?;
        if let Some(p) = self.mapped_at(offset, 8) {
            // SAFETY: `p` is 8 bytes inside a live shared mapping owned by `self` (see
            // `mapped_at`), 8-byte aligned because the mapping is page aligned and
            // `offset` is a multiple of 8; one volatile load is one device access.
            let raw = unsafe { std::ptr::read_volatile(p as *const u64) };
            return Ok(u64::from_le(raw));
        }
        let mut b = [0u8; 8];
        self.transport
            .region_read(
                u32::from(self.location.bar),
                self.location.offset + offset,
                &mut b,
            )
            .map_err(|e| Self::io(offset, e))?;
        Ok(u64::from_le_bytes(b))
    }

    fn write_u64(&self, offset: u64, value: u64) -> Result<(), MmioError> {
        check_access(offset, 8, self.location.size, 8)?;
        fence(Ordering::SeqCst);
        if let Some(p) = self.mapped_at(offset, 8) {
            // SAFETY: as in `read_u64`: 8 aligned bytes inside a live shared mapping.
            unsafe { std::ptr::write_volatile(p as *mut u64, value.to_le()) };
            return Ok(());
        }
        self.transport
            .region_write(
                u32::from(self.location.bar),
                self.location.offset + offset,
                &value.to_le_bytes(),
            )
            .map_err(|e| Self::io(offset, e))
    }

    fn read_bytes(&self, offset: u64, buf: &mut [u8]) -> Result<(), MmioError> {
        let words = (buf.len() as u64).div_ceil(8) * 8;
        check_access(offset, words, self.location.size, 8)?;
        if words == 0 {
            return Ok(());
        }
        if self.mapped_at(offset, words).is_some() {
            for (i, chunk) in buf.chunks_mut(8).enumerate() {
                let w = self.read_u64(offset + 8 * i as u64)?.to_le_bytes();
                chunk.copy_from_slice(&w[..chunk.len()]);
            }
            return Ok(());
        }
        // One trapped transfer instead of one per word (the kernel's vfio-pci and the
        // servers split an aligned transfer into 64-bit accesses themselves).
        let mut tmp = vec![0u8; words as usize];
        self.transport
            .region_read(
                u32::from(self.location.bar),
                self.location.offset + offset,
                &mut tmp,
            )
            .map_err(|e| Self::io(offset, e))?;
        buf.copy_from_slice(&tmp[..buf.len()]);
        Ok(())
    }

    fn write_bytes(&self, offset: u64, data: &[u8]) -> Result<(), MmioError> {
        let words = (data.len() as u64).div_ceil(8) * 8;
        check_access(offset, words, self.location.size, 8)?;
        if words == 0 {
            return Ok(());
        }
        if self.mapped_at(offset, words).is_some() {
            for (i, chunk) in data.chunks(8).enumerate() {
                let mut w = [0u8; 8];
                w[..chunk.len()].copy_from_slice(chunk);
                self.write_u64(offset + 8 * i as u64, u64::from_le_bytes(w))?;
            }
            return Ok(());
        }
        let mut tmp = vec![0u8; words as usize];
        tmp[..data.len()].copy_from_slice(data);
        fence(Ordering::SeqCst);
        self.transport
            .region_write(
                u32::from(self.location.bar),
                self.location.offset + offset,
                &tmp,
            )
            .map_err(|e| Self::io(offset, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_parses_and_refuses_bad_input() {
        assert_eq!(
            "0:0:0x10000".parse::<MmioLocation>(),
            Ok(MmioLocation {
                bar: 0,
                offset: 0,
                size: 0x10000
            })
        );
        assert_eq!(
            "2:0x2000000:65536".parse::<MmioLocation>().unwrap().offset,
            0x200_0000
        );
        assert!("1:0:0x1000".parse::<MmioLocation>().is_err());
        assert!("0:0".parse::<MmioLocation>().is_err());
        assert!("0:zz:1".parse::<MmioLocation>().is_err());
    }
}
