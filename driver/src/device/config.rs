//! Config space (spec §7): the extended capability walk, the OpenCAPI DVSECs, the Device
//! Serial Number and the AFU descriptor read through the AFU-information window.
//!
//! Everything here goes through [`ConfigSpace`], so the same code parses a live function
//! (through its transport) and a saved copy of a config space (bytes from sysfs, used for
//! function 0's serial number fallback).

use std::time::{Duration, Instant};

use ocxlpmem_regs::config::{self, afu_desc, dvsec, pci};
use ocxlpmem_regs::AfuDescriptor;

use super::error::DeviceError;
use crate::transport::{Transport, TransportError};

/// Little-endian access to a config space.
pub trait ConfigSpace {
    /// A description for messages.
    fn describe(&self) -> String;
    /// Reads `buf.len()` bytes at `offset`.
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError>;
    /// Writes `data` at `offset`.
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), DeviceError>;

    /// Reads the u8 at `offset`.
    fn read_u8(&self, offset: u64) -> Result<u8, DeviceError> {
        let mut b = [0u8; 1];
        self.read(offset, &mut b)?;
        Ok(b[0])
    }
    /// Reads the little-endian u16 at `offset`.
    fn read_u16(&self, offset: u64) -> Result<u16, DeviceError> {
        let mut b = [0u8; 2];
        self.read(offset, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    /// Reads the little-endian u32 at `offset`.
    fn read_u32(&self, offset: u64) -> Result<u32, DeviceError> {
        let mut b = [0u8; 4];
        self.read(offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
}

/// A transport's config space.
pub struct TransportConfig<'a>(pub &'a dyn Transport);

impl ConfigSpace for TransportConfig<'_> {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        self.0
            .config_read(offset, buf)
            .map_err(|source| self.error(format!("reading config space at {offset:#x}"), source))
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), DeviceError> {
        self.0
            .config_write(offset, data)
            .map_err(|source| self.error(format!("writing config space at {offset:#x}"), source))
    }
}

impl TransportConfig<'_> {
    fn error(&self, what: String, source: TransportError) -> DeviceError {
        DeviceError::Transport {
            what,
            device: self.0.describe(),
            source,
        }
    }
}

/// A saved config space (read-only; reads past the end return zeros, as an unprivileged
/// read of sysfs `config` gives only the first 64 bytes).
#[derive(Debug, Clone)]
pub struct SavedConfig {
    /// Where the bytes came from.
    pub source: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl ConfigSpace for SavedConfig {
    fn describe(&self) -> String {
        self.source.clone()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .and_then(|o| self.bytes.get(o))
                .copied()
                .unwrap_or(0);
        }
        Ok(())
    }
    fn write(&self, offset: u64, _data: &[u8]) -> Result<(), DeviceError> {
        Err(DeviceError::Transport {
            what: format!("writing config space at {offset:#x}"),
            device: self.source.clone(),
            source: TransportError::Unsupported {
                op: "writing a saved config space",
                device: self.source.clone(),
            },
        })
    }
}

/// One extended capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtCap {
    /// Its offset in config space.
    pub offset: u64,
    /// Capability id.
    pub id: u16,
    /// Capability version.
    pub version: u8,
}

/// Walks the extended capability list from 0x100. The walk is bounded: a pointer below
/// 0x100, past the config space, unaligned, or back to a visited capability ends it with
/// an error, never a loop.
pub fn ext_caps(cfg: &dyn ConfigSpace) -> Result<Vec<ExtCap>, DeviceError> {
    let mut caps = Vec::new();
    let mut at = pci::EXTENDED_START;
    let bad = |offset, why| DeviceError::BadCapabilityList {
        device: cfg.describe(),
        offset,
        why,
    };
    loop {
        let header = cfg.read_u32(at)?;
        if header == u32::MAX {
            return Err(DeviceError::ConfigGone {
                device: cfg.describe(),
            });
        }
        if header == 0 {
            // No extended capabilities at all (or a saved copy that ends here).
            return Ok(caps);
        }
        let (id, version, next) = config::split_ext_cap_header(header);
        caps.push(ExtCap {
            offset: at,
            id,
            version,
        });
        let next = u64::from(next);
        if next == 0 {
            return Ok(caps);
        }
        if next < pci::EXTENDED_START || next + 4 > pci::CONFIG_SIZE {
            return Err(bad(at, "next pointer outside extended config space"));
        }
        if caps.iter().any(|c| c.offset == next) {
            return Err(bad(at, "next pointer loops back"));
        }
        at = next;
    }
}

/// One OpenCAPI DVSEC (vendor 0x1014).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dvsec {
    /// Its offset in config space.
    pub offset: u64,
    /// DVSEC id (0xF000..).
    pub id: u16,
    /// DVSEC revision.
    pub revision: u8,
    /// Length of the DVSEC in bytes (header included).
    pub length: u16,
}

/// The IBM DVSECs among `caps`.
pub fn dvsecs(cfg: &dyn ConfigSpace, caps: &[ExtCap]) -> Result<Vec<Dvsec>, DeviceError> {
    let mut out = Vec::new();
    for c in caps.iter().filter(|c| c.id == config::EXT_CAP_DVSEC) {
        let (vendor, revision, length) =
            dvsec::split_header1(cfg.read_u32(c.offset + dvsec::HEADER1)?);
        if vendor != config::VENDOR_ID {
            continue;
        }
        let id = cfg.read_u16(c.offset + dvsec::HEADER2)?;
        out.push(Dvsec {
            offset: c.offset,
            id,
            revision,
            length,
        });
    }
    Ok(out)
}

/// The Device Serial Number, if the function has the capability (0 is returned as is).
pub fn serial_number(cfg: &dyn ConfigSpace, caps: &[ExtCap]) -> Result<Option<u64>, DeviceError> {
    let Some(c) = caps.iter().find(|c| c.id == config::EXT_CAP_DSN) else {
        return Ok(None);
    };
    let low = cfg.read_u32(c.offset + config::DSN_LOW)?;
    let high = cfg.read_u32(c.offset + config::DSN_HIGH)?;
    Ok(Some(u64::from(high) << 32 | u64::from(low)))
}

/// Finds DVSEC `id` and checks that its length covers the fields used (`need` bytes).
pub fn find_dvsec(
    cfg: &dyn ConfigSpace,
    all: &[Dvsec],
    id: u16,
    name: &'static str,
    need: u16,
) -> Result<Dvsec, DeviceError> {
    let d = all
        .iter()
        .find(|d| d.id == id)
        .copied()
        .ok_or(DeviceError::MissingDvsec {
            device: cfg.describe(),
            name,
            id,
        })?;
    if d.length < need {
        return Err(DeviceError::BadCapabilityList {
            device: cfg.describe(),
            offset: d.offset,
            why: "DVSEC length does not cover the fields the spec defines",
        });
    }
    Ok(d)
}

/// Reads one dword of AFU `afu`'s descriptor through the AFU-information window: select
/// the AFU, write the offset with bit 31 clear, poll until bit 31 reads 1 (bounded by
/// `timeout`, re-checked once after the deadline), read the data.
pub fn read_afu_dword(
    cfg: &dyn ConfigSpace,
    info: &Dvsec,
    afu: u8,
    offset: u32,
    timeout: Duration,
) -> Result<u32, DeviceError> {
    cfg.write(info.offset + dvsec::afu_info::AFU_INDEX, &[afu])?;
    cfg.write(
        info.offset + dvsec::afu_info::OFFSET,
        &(offset & !dvsec::afu_info::DATA_VALID).to_le_bytes(),
    )?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(1);
    loop {
        let late = Instant::now() >= deadline;
        let v = cfg.read_u32(info.offset + dvsec::afu_info::OFFSET)?;
        if v == u32::MAX {
            return Err(DeviceError::ConfigGone {
                device: cfg.describe(),
            });
        }
        if v & dvsec::afu_info::DATA_VALID != 0 {
            return cfg.read_u32(info.offset + dvsec::afu_info::DATA);
        }
        if late {
            return Err(DeviceError::AfuInfoTimeout {
                device: cfg.describe(),
                offset,
                timeout,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(1));
    }
}

/// Reads and decodes AFU `afu`'s descriptor: dword 0 gives the template length, which
/// bounds the rest (at most the largest known template is read).
pub fn read_afu_descriptor(
    cfg: &dyn ConfigSpace,
    info: &Dvsec,
    afu: u8,
    timeout: Duration,
) -> Result<AfuDescriptor, DeviceError> {
    let first = read_afu_dword(cfg, info, afu, afu_desc::TEMPLATE as u32, timeout)?;
    let length = usize::from((first >> 16) as u16);
    let dwords = length.clamp(4, afu_desc::LEN_1_1).div_ceil(4);
    let mut raw = Vec::with_capacity(dwords);
    raw.push(first);
    for i in 1..dwords {
        raw.push(read_afu_dword(cfg, info, afu, (i * 4) as u32, timeout)?);
    }
    AfuDescriptor::decode(&raw).map_err(|source| DeviceError::BadDescriptor {
        device: cfg.describe(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocxlpmem_regs::config::ext_cap_header;

    fn saved(caps: &[(u64, u32)]) -> SavedConfig {
        let mut bytes = vec![0u8; 4096];
        for &(at, v) in caps {
            let at = at as usize;
            bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        SavedConfig {
            source: "test".into(),
            bytes,
        }
    }

    #[test]
    fn walks_the_list_and_finds_the_serial() {
        let cfg = saved(&[
            (0x100, ext_cap_header(0x0001, 1, 0x140)),
            (0x140, ext_cap_header(config::EXT_CAP_DSN, 1, 0)),
            (0x144, 0x89ab_cdef),
            (0x148, 0x0123_4567),
        ]);
        let caps = ext_caps(&cfg).unwrap();
        assert_eq!(caps.len(), 2);
        assert_eq!(caps[1].offset, 0x140);
        assert_eq!(
            serial_number(&cfg, &caps).unwrap(),
            Some(0x0123_4567_89ab_cdef)
        );
    }

    #[test]
    fn a_loop_or_wild_pointer_ends_the_walk_with_an_error() {
        let cfg = saved(&[
            (0x100, ext_cap_header(0x0001, 1, 0x140)),
            (0x140, ext_cap_header(0x0002, 1, 0x100)),
        ]);
        assert!(matches!(
            ext_caps(&cfg),
            Err(DeviceError::BadCapabilityList { offset: 0x140, .. })
        ));
        let cfg = saved(&[(0x100, ext_cap_header(0x0001, 1, 0x0c0))]);
        assert!(matches!(
            ext_caps(&cfg),
            Err(DeviceError::BadCapabilityList { offset: 0x100, .. })
        ));
        // The two low bits of the pointer are reserved: 0x142 means 0x140.
        let cfg = saved(&[
            (0x100, ext_cap_header(0x0001, 1, 0x140)),
            (0x140, ext_cap_header(0x0002, 1, 0) | (0x143 << 20)),
        ]);
        assert!(matches!(
            ext_caps(&cfg),
            Err(DeviceError::BadCapabilityList { offset: 0x140, .. })
        ));
    }

    #[test]
    fn empty_list_and_all_ones() {
        assert!(ext_caps(&saved(&[])).unwrap().is_empty());
        let cfg = saved(&[(0x100, u32::MAX)]);
        assert!(matches!(
            ext_caps(&cfg),
            Err(DeviceError::ConfigGone { .. })
        ));
    }

    #[test]
    fn short_saved_config_reads_zero_past_its_end() {
        let cfg = SavedConfig {
            source: "sysfs".into(),
            bytes: vec![0x14, 0x10, 0x25, 0x06],
        };
        assert_eq!(cfg.read_u32(0).unwrap(), 0x0625_1014);
        assert!(ext_caps(&cfg).unwrap().is_empty());
        assert_eq!(serial_number(&cfg, &[]).unwrap(), None);
    }

    #[test]
    fn dvsecs_of_other_vendors_are_skipped_and_lengths_checked() {
        let cfg = saved(&[
            (0x100, ext_cap_header(config::EXT_CAP_DVSEC, 1, 0x200)),
            (0x104, dvsec::header1(0x8086, 0, 0x20)),
            (0x108, u32::from(dvsec::ID_AFU_INFO)),
            (0x200, ext_cap_header(config::EXT_CAP_DVSEC, 1, 0)),
            (0x204, dvsec::header1(config::VENDOR_ID, 0, 0x0c)),
            (0x208, u32::from(dvsec::ID_AFU_INFO)),
        ]);
        let caps = ext_caps(&cfg).unwrap();
        let all = dvsecs(&cfg, &caps).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].offset, 0x200);
        let short = find_dvsec(
            &cfg,
            &all,
            dvsec::ID_AFU_INFO,
            "AFU information",
            dvsec::afu_info::LENGTH,
        );
        assert!(matches!(
            short,
            Err(DeviceError::BadCapabilityList { offset: 0x200, .. })
        ));
        assert!(matches!(
            find_dvsec(&cfg, &all, dvsec::ID_FUNCTION, "function", 0x10),
            Err(DeviceError::MissingDvsec { id: 0xF001, .. })
        ));
    }
}
