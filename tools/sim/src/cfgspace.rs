//! PCI config space of function 1 (spec §7, §10): identity, two 64-bit BARs with size
//! probing, a PCIe capability, and the extended capabilities DSN, DVSEC 0xF001 (function),
//! 0xF003 (AFU information window) and 0xF004 (AFU control).

use ocxlpmem_regs::config::{
    self as rc, afu_desc, dvsec, ext_cap_header, AfuDescriptor, DEVICE_ID, EXT_CAP_DSN,
    EXT_CAP_DVSEC, PMEM_AFU_NAME, VENDOR_ID,
};

use crate::config::SimConfig;
use crate::error::SimError;

/// Size of config space.
pub const CONFIG_SIZE: usize = 0x1000;
/// BAR 0 (global MMIO): 64-bit memory, non-prefetchable.
const BAR0: usize = 0x10;
const BAR0_FLAGS: u64 = 0x4;
/// BAR 4 (LPC memory): 64-bit memory, prefetchable.
const BAR4: usize = 0x20;
const BAR4_FLAGS: u64 = 0xC;
/// Where the capabilities sit (the model's choice; drivers walk the lists).
const PCIE_CAP: usize = 0x40;
const DSN_CAP: usize = 0x100;
const F001_CAP: usize = 0x110;
const F003_CAP: usize = 0x120;
const F004_CAP: usize = 0x140;

/// The config space of the simulated function.
#[derive(Debug)]
pub struct ConfigSpace {
    bytes: [u8; CONFIG_SIZE],
    wmask: [u8; CONFIG_SIZE],
    bar0_size: u64,
    bar4_size: u64,
    descriptor: [u32; afu_desc::DWORDS_1_1],
}

/// The AFU descriptor the card presents (template 1.1, spec §10).
pub fn afu_descriptor(cfg: &SimConfig) -> AfuDescriptor {
    AfuDescriptor {
        template_major: 1,
        template_minor: 1,
        template_length: afu_desc::LEN_1_1 as u16,
        name: PMEM_AFU_NAME.to_string(),
        afu_major: 1,
        afu_minor: 0,
        afuc_type: 0,
        afum_type: 1,
        profile: 0,
        global_mmio_bar: 0,
        global_mmio_offset: 0,
        global_mmio_size: u32::try_from(cfg.layout.mmio_size).unwrap_or(u32::MAX),
        pp_mmio_bar: 0,
        pp_mmio_offset: 0,
        pp_mmio_stride: 0,
        mem_size_log2: cfg.lpc_size.trailing_zeros() as u8,
        lpc_offset: 0,
        wwid: cfg.wwid,
        lpc_size: cfg.lpc_size,
    }
}

/// BAR 0's size: the global MMIO size rounded up to a power of two.
pub fn bar0_size(cfg: &SimConfig) -> u64 {
    cfg.layout.mmio_size.next_power_of_two().max(0x1000)
}

impl ConfigSpace {
    /// Builds the config space of a card configured by `cfg` (already validated).
    pub fn new(cfg: &SimConfig) -> Self {
        let mut s = ConfigSpace {
            bytes: [0; CONFIG_SIZE],
            wmask: [0; CONFIG_SIZE],
            bar0_size: bar0_size(cfg),
            bar4_size: cfg.lpc_size,
            descriptor: afu_descriptor(cfg).encode_1_1(),
        };
        s.put16(rc::pci::VENDOR as usize, VENDOR_ID);
        s.put16(rc::pci::DEVICE as usize, DEVICE_ID);
        // Status: capability list present.
        s.put16(rc::pci::STATUS as usize, 0x0010);
        // Class 0x12 (processing accelerator), revision 0.
        s.put32(rc::pci::REVISION_CLASS as usize, 0x1200_0000);
        // Header type 0, multi-function (function 0 configures the link).
        s.bytes[0x0E] = 0x80;
        s.put64(BAR0, BAR0_FLAGS);
        s.put64(BAR4, BAR4_FLAGS);
        s.put16(0x2C, VENDOR_ID);
        s.put16(0x2E, DEVICE_ID);
        s.bytes[0x34] = PCIE_CAP as u8;
        // PCIe capability v2, endpoint; the last in the list.
        s.put16(PCIE_CAP, 0x0010);
        s.put16(PCIE_CAP + 2, 0x0002);
        s.put32(DSN_CAP, ext_cap_header(EXT_CAP_DSN, 1, F001_CAP as u16));
        s.put32(DSN_CAP + rc::DSN_LOW as usize, cfg.serial as u32);
        s.put32(DSN_CAP + rc::DSN_HIGH as usize, (cfg.serial >> 32) as u32);
        s.dvsec(
            F001_CAP,
            F003_CAP,
            dvsec::ID_FUNCTION,
            dvsec::function::LENGTH,
        );
        // AFU present, max AFU index 0; the DVSEC id shares the dword (bits 15:0).
        s.put32(
            F001_CAP + dvsec::function::AFU_PRESENT as usize,
            dvsec::function::AFU_PRESENT_BIT | u32::from(dvsec::ID_FUNCTION),
        );
        s.dvsec(
            F003_CAP,
            F004_CAP,
            dvsec::ID_AFU_INFO,
            dvsec::afu_info::LENGTH,
        );
        s.dvsec(
            F004_CAP,
            0,
            dvsec::ID_AFU_CONTROL,
            dvsec::afu_control::LENGTH,
        );
        // Writable bits.
        s.mask(rc::pci::COMMAND as usize, &[0x46, 0x05]);
        s.mask(0x3C, &[0xFF]);
        s.mask(BAR0, &[0xFF; 8]);
        s.mask(BAR4, &[0xFF; 8]);
        s.mask(F001_CAP + dvsec::function::ACTAG as usize, &[0xFF; 4]);
        s.mask(F003_CAP + dvsec::afu_info::AFU_INDEX as usize, &[0xFF]);
        s.mask(F003_CAP + dvsec::afu_info::OFFSET as usize, &[0xFF; 4]);
        s.mask(F004_CAP + dvsec::afu_control::AFU_INDEX as usize, &[0xFF]);
        s.mask(
            F004_CAP + dvsec::afu_control::ENABLE as usize,
            &[dvsec::afu_control::ENABLE_BIT],
        );
        s
    }

    fn dvsec(&mut self, at: usize, next: usize, id: u16, len: u16) {
        self.put32(at, ext_cap_header(EXT_CAP_DVSEC, 1, next as u16));
        self.put32(
            at + dvsec::HEADER1 as usize,
            dvsec::header1(VENDOR_ID, 0, len),
        );
        self.put16(at + dvsec::HEADER2 as usize, id);
    }

    fn mask(&mut self, at: usize, m: &[u8]) {
        self.wmask[at..at + m.len()].copy_from_slice(m);
    }

    fn put16(&mut self, at: usize, v: u16) {
        self.bytes[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn put32(&mut self, at: usize, v: u32) {
        self.bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn put64(&mut self, at: usize, v: u64) {
        self.bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    fn get32(&self, at: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.bytes[at..at + 4]);
        u32::from_le_bytes(b)
    }

    fn get64(&self, at: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.bytes[at..at + 8]);
        u64::from_le_bytes(b)
    }

    fn range(offset: u64, len: usize) -> Result<std::ops::Range<usize>, SimError> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= CONFIG_SIZE as u64 => Ok(offset as usize..end as usize),
            _ => Err(SimError::OutOfBounds {
                region: 7,
                offset,
                len: len as u64,
                size: CONFIG_SIZE as u64,
            }),
        }
    }

    /// Reads any bytes of config space.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), SimError> {
        let r = Self::range(offset, buf.len())?;
        buf.copy_from_slice(&self.bytes[r]);
        Ok(())
    }

    /// Writes config space: only writable bits change; a BAR keeps its size bits 0 (so
    /// writing all ones reads back the size mask); a write of the AFU-information offset
    /// register latches the descriptor dword and sets the data-valid bit.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), SimError> {
        let r = Self::range(offset, data.len())?;
        for (i, &v) in r.clone().zip(data) {
            let m = self.wmask[i];
            self.bytes[i] = (self.bytes[i] & !m) | (v & m);
        }
        let touches = |at: usize, len: usize| r.start < at + len && at < r.end;
        if touches(BAR0, 8) {
            let v = self.get64(BAR0) & !(self.bar0_size - 1) & !0xF;
            self.put64(BAR0, v | BAR0_FLAGS);
        }
        if touches(BAR4, 8) {
            let v = self.get64(BAR4) & !(self.bar4_size - 1) & !0xF;
            self.put64(BAR4, v | BAR4_FLAGS);
        }
        let off_reg = F003_CAP + dvsec::afu_info::OFFSET as usize;
        if touches(off_reg, 4) {
            let off = self.get32(off_reg) & !dvsec::afu_info::DATA_VALID;
            let index = self.bytes[F003_CAP + dvsec::afu_info::AFU_INDEX as usize];
            let data = if index == 0 && off.is_multiple_of(4) {
                self.descriptor.get(off as usize / 4).copied().unwrap_or(0)
            } else {
                0
            };
            self.put32(F003_CAP + dvsec::afu_info::DATA as usize, data);
            self.put32(off_reg, off | dvsec::afu_info::DATA_VALID);
        }
        Ok(())
    }

    /// True when the AFU-control DVSEC's enable bit is set.
    pub fn afu_enabled(&self) -> bool {
        self.bytes[F004_CAP + dvsec::afu_control::ENABLE as usize] & dvsec::afu_control::ENABLE_BIT
            != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_size_probe_reads_back_the_size_mask() {
        let mut c = ConfigSpace::new(&SimConfig::default());
        c.write(0x10, &[0xFF; 8]).unwrap();
        let mut b = [0u8; 8];
        c.read(0x10, &mut b).unwrap();
        assert_eq!(u64::from_le_bytes(b), !(0x10000u64 - 1) | 0x4);
        c.write(0x20, &0xFFFF_FFFFu32.to_le_bytes()).unwrap();
        c.write(0x24, &0xFFFF_FFFFu32.to_le_bytes()).unwrap();
        c.read(0x20, &mut b).unwrap();
        assert_eq!(u64::from_le_bytes(b), !((256u64 << 20) - 1) | 0xC);
    }

    #[test]
    fn read_only_bytes_ignore_writes_and_bounds_are_checked() {
        let mut c = ConfigSpace::new(&SimConfig::default());
        c.write(0, &[0; 4]).unwrap();
        let mut b = [0u8; 4];
        c.read(0, &mut b).unwrap();
        assert_eq!(b, [0x14, 0x10, 0x25, 0x06]);
        assert!(c.read(0xFFE, &mut b).is_err());
        assert!(c.write(u64::MAX, &b).is_err());
        assert!(c.read(0x1000, &mut []).is_ok());
    }
}
