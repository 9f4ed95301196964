//! What a simulated card looks like: [`SimConfig`] and its defaults (spec §10).

use ocxlpmem_regs::{AreaLayout, Ccap0, Ccap1};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::SimError;

/// Smallest LPC memory size the model accepts (spec §10).
pub const MIN_LPC_SIZE: u64 = 32 << 20;
/// Default LPC memory size (spec §10).
pub const DEFAULT_LPC_SIZE: u64 = 256 << 20;
/// Largest dump the model produces, whatever CCAP1 says.
pub const MAX_DUMP_SIZE: u64 = 16 << 20;
/// Size of the label area at the start of LPC memory (spec §6).
pub const LABEL_AREA_SIZE: u64 = 16 << 20;

/// How simulated time passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClockMode {
    /// Wall time (plus whatever [`crate::SimClock::advance`] adds).
    #[default]
    Real,
    /// Time moves only through [`crate::SimClock::advance`]: tests never sleep.
    Manual,
}

/// Where the command blocks live in the global MMIO area (spec §2.1, §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimLayout {
    /// Admin command area.
    pub admin: AreaLayout,
    /// Near-storage command area.
    pub near_storage: AreaLayout,
    /// Size of the global MMIO area (the AFU descriptor's global MMIO size).
    pub mmio_size: u64,
}

impl Default for SimLayout {
    /// The layout of spec §10.
    fn default() -> Self {
        SimLayout {
            admin: AreaLayout {
                request_offset: 0x400,
                response_offset: 0x440,
                data_offset: 0x1000,
                data_size: 0x8000,
            },
            near_storage: AreaLayout {
                request_offset: 0x500,
                response_offset: 0x540,
                data_offset: 0x9000,
                data_size: 0x1000,
            },
            mmio_size: 0x10000,
        }
    }
}

impl SimLayout {
    /// Checks that both areas are valid (aligned, inside the area, clear of the register
    /// file) and do not overlap each other.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |why: String| SimError::BadConfig {
            field: "layout",
            why,
        };
        if self.mmio_size < 0x1000 || self.mmio_size > u64::from(u32::MAX) {
            return Err(bad(format!(
                "mmio_size {:#x} must be in 0x1000..=0xFFFFFFFF",
                self.mmio_size
            )));
        }
        if !self.mmio_size.is_multiple_of(0x1000) {
            return Err(bad(format!(
                "mmio_size {:#x} must be a multiple of 4 KiB",
                self.mmio_size
            )));
        }
        for (name, a) in [("admin", self.admin), ("near-storage", self.near_storage)] {
            a.validate(self.mmio_size)
                .map_err(|e| bad(format!("{name} area: {e}")))?;
        }
        let blocks = |a: &AreaLayout| {
            [
                (a.request_offset, 64),
                (a.response_offset, 64),
                (a.data_offset, a.data_size),
            ]
        };
        for (ao, al) in blocks(&self.admin) {
            for (bo, bl) in blocks(&self.near_storage) {
                if ao < bo + bl && bo < ao + al {
                    return Err(bad(format!(
                        "admin block {ao:#x}+{al:#x} overlaps near-storage block {bo:#x}+{bl:#x}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The layout of one area.
    pub fn area(&self, area: ocxlpmem_regs::CommandArea) -> AreaLayout {
        match area {
            ocxlpmem_regs::CommandArea::Admin => self.admin,
            ocxlpmem_regs::CommandArea::NearStorage => self.near_storage,
        }
    }
}

/// Everything that makes one simulated card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// PCIe Device Serial Number (the interleave-set cookie); 0 only when a test asks.
    pub serial: u64,
    /// LPC memory size: a power of two, at least 32 MiB.
    pub lpc_size: u64,
    /// Back LPC memory by this file (created if absent; an existing file must be
    /// exactly `lpc_size` bytes) instead of an anonymous memfd.
    pub image: Option<PathBuf>,
    /// Command areas and global MMIO size.
    pub layout: SimLayout,
    /// Raw CCAP0 value.
    pub ccap0: u64,
    /// Raw CCAP1 value (bits 31:0 bound the controller dump).
    pub ccap1: u64,
    /// FWVER: 8 ASCII bytes in address order.
    pub fwver: [u8; 8],
    /// Time from power-on / reset to CHI.CRDY.
    pub crdy_delay: Duration,
    /// Time from CHI.CRDY to CHI.MA.
    pub ma_delay: Duration,
    /// Real or manual time.
    pub clock: ClockMode,
    /// Offer the data buffers (the page-aligned parts of command areas outside the
    /// register page) as mmap-able sparse areas of BAR 0.
    pub mmap_command_areas: bool,
    /// The AFU descriptor's WWID (also in every error log).
    pub wwid: [u8; 16],
    /// Size of the controller dump a CD request produces (capped by CCAP1).
    pub dump_size: u64,
    /// SMART 0xC2 raw value and the thermal reading (degrees Celsius).
    pub temperature_c: u8,
    /// SMART 0xCA raw value and the stats' life remaining (percent).
    pub life_remaining_pct: u8,
    /// Power-on hours at creation (SMART 0x09 adds simulated time to it).
    pub power_on_hours: u64,
}

/// CCAP0 of spec §10: revision 1.0, read latency 300 ns, 2 s + 2 s readiness timeouts.
pub fn default_ccap0() -> u64 {
    let mut c = Ccap0(0);
    c.set_revision(0x0010);
    c.set_read_latency_ns(300);
    c.set_readiness_timeout_s(2);
    c.set_memory_available_timeout_s(2);
    c.bits()
}

/// CCAP1 of spec §10: maximum dump size 1 MiB.
pub fn default_ccap1() -> u64 {
    let mut c = Ccap1(0);
    c.set_max_dump_size(1 << 20);
    c.bits()
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            serial: 0x5349_4D00_0000_0001,
            lpc_size: DEFAULT_LPC_SIZE,
            image: None,
            layout: SimLayout::default(),
            ccap0: default_ccap0(),
            ccap1: default_ccap1(),
            fwver: *b"SIM 1.0 ",
            crdy_delay: Duration::from_millis(1),
            ma_delay: Duration::from_millis(1),
            clock: ClockMode::Real,
            mmap_command_areas: false,
            wwid: *b"OCXLPMEM-SIM-001",
            dump_size: 0x1_2340,
            temperature_c: 40,
            life_remaining_pct: 100,
            power_on_hours: 1234,
        }
    }
}

impl SimConfig {
    /// Checks every field; the error names the field and what is accepted.
    pub fn validate(&self) -> Result<(), SimError> {
        if !self.lpc_size.is_power_of_two() || self.lpc_size < MIN_LPC_SIZE {
            return Err(SimError::BadConfig {
                field: "lpc_size",
                why: format!(
                    "{:#x} must be a power of two of at least 32 MiB",
                    self.lpc_size
                ),
            });
        }
        if !self
            .fwver
            .iter()
            .all(|b| b.is_ascii_graphic() || *b == b' ')
        {
            return Err(SimError::BadConfig {
                field: "fwver",
                why: "must be 8 printable ASCII bytes, space-padded".into(),
            });
        }
        self.layout.validate()
    }

    /// The dump size actually produced: `dump_size` capped by CCAP1's maximum and by
    /// [`MAX_DUMP_SIZE`] (the model keeps the dump in memory).
    pub fn effective_dump_size(&self) -> u64 {
        self.dump_size
            .min(u64::from(Ccap1(self.ccap1).max_dump_size()))
            .min(MAX_DUMP_SIZE)
    }
}
