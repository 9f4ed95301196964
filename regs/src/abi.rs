//! Constants of the proposed kernel driver's ABI (§4, §5) and of the ndctl label
//! commands. The structures and the ioctl number encoding live in `ocxlpmem-ioctl`.

/// ioctl magic of `/dev/ocxlpmem<N>`.
pub const IOCTL_MAGIC: u8 = 0xCA;

/// ioctl numbers (the `nr` field), with the size of their argument (0 = none).
pub mod nr {
    /// ERROR_LOG, _IOWR, error_log.
    pub const ERROR_LOG: u8 = 0x30;
    /// CONTROLLER_DUMP, _IO.
    pub const CONTROLLER_DUMP: u8 = 0x31;
    /// CONTROLLER_DUMP_DATA, _IOWR, controller_dump_data.
    pub const CONTROLLER_DUMP_DATA: u8 = 0x32;
    /// CONTROLLER_DUMP_COMPLETE, _IO.
    pub const CONTROLLER_DUMP_COMPLETE: u8 = 0x33;
    /// CONTROLLER_STATS, _IO (sic: it still writes a controller_stats).
    pub const CONTROLLER_STATS: u8 = 0x34;
    /// EVENTFD, _IOW, eventfd.
    pub const EVENTFD: u8 = 0x35;
    /// EVENT_CHECK, _IOR, u64.
    pub const EVENT_CHECK: u8 = 0x36;
    /// REQUEST_HEALTH, _IO.
    pub const REQUEST_HEALTH: u8 = 0x37;
    /// FWDEBUG (debug), _IOWR, fwdebug.
    pub const FWDEBUG: u8 = 0xF0;
    /// MMIO_WRITE (debug), _IOW, mmio.
    pub const MMIO_WRITE: u8 = 0xF1;
    /// MMIO_READ (debug), _IOWR, mmio.
    pub const MMIO_READ: u8 = 0xF2;
    /// SHUTDOWN (debug), _IO.
    pub const SHUTDOWN: u8 = 0xF3;
}

/// Sizes of the ABI structures (§5).
pub mod size {
    /// struct error_log.
    pub const ERROR_LOG: usize = 88;
    /// struct controller_dump_data.
    pub const CONTROLLER_DUMP_DATA: usize = 80;
    /// struct controller_stats.
    pub const CONTROLLER_STATS: usize = 104;
    /// struct eventfd.
    pub const EVENTFD: usize = 8;
    /// u64 event flags.
    pub const EVENT_CHECK: usize = 8;
    /// struct fwdebug.
    pub const FWDEBUG: usize = 32;
    /// struct mmio.
    pub const MMIO: usize = 16;
}

/// Event flag bits reported by EVENT_CHECK (§4).
pub mod event {
    /// Bit 0: controller dump available.
    pub const DUMP_AVAILABLE: u64 = 1 << 0;
    /// Bit 1: error log available.
    pub const ERROR_LOG_AVAILABLE: u64 = 1 << 1;
    /// Bit 2: hardware fatal.
    pub const HARDWARE_FATAL: u64 = 1 << 2;
    /// Bit 3: firmware fatal.
    pub const FIRMWARE_FATAL: u64 = 1 << 3;
}

/// ndctl per-DIMM commands (uapi `linux/ndctl.h`) used for the label area and SMART.
pub mod nd {
    /// ioctl type of `/dev/nmemN`.
    pub const IOCTL_TYPE: u8 = b'N';
    /// ND_CMD_SMART.
    pub const CMD_SMART: u8 = 1;
    /// ND_CMD_GET_CONFIG_SIZE.
    pub const CMD_GET_CONFIG_SIZE: u8 = 4;
    /// ND_CMD_GET_CONFIG_DATA.
    pub const CMD_GET_CONFIG_DATA: u8 = 5;
    /// ND_CMD_SET_CONFIG_DATA.
    pub const CMD_SET_CONFIG_DATA: u8 = 6;
    /// ND_CMD_CALL.
    pub const CMD_CALL: u8 = 10;
    /// The family the ocxlpmem driver used for ND_CMD_CALL.
    pub const CALL_FAMILY_OCXL: u64 = 6;
    /// ND_CMD_CALL command 1 of that family: SMART.
    pub const CALL_SMART: u64 = 1;
    /// ND_CONFIG_LOCKED status.
    pub const CONFIG_LOCKED: u32 = 1;
    /// Size of the label area the driver serves.
    pub const CONFIG_SIZE: u32 = 16 << 20;
}

/// Size of the label (metadata) area carved from the start of LPC memory (§6).
pub const LABEL_AREA_SIZE: u64 = 16 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_spec_table_5() {
        assert_eq!(IOCTL_MAGIC, 0xCA);
        let t = [
            (nr::ERROR_LOG, 0x30),
            (nr::CONTROLLER_DUMP, 0x31),
            (nr::CONTROLLER_DUMP_DATA, 0x32),
            (nr::CONTROLLER_DUMP_COMPLETE, 0x33),
            (nr::CONTROLLER_STATS, 0x34),
            (nr::EVENTFD, 0x35),
            (nr::EVENT_CHECK, 0x36),
            (nr::REQUEST_HEALTH, 0x37),
            (nr::FWDEBUG, 0xF0),
            (nr::MMIO_WRITE, 0xF1),
            (nr::MMIO_READ, 0xF2),
            (nr::SHUTDOWN, 0xF3),
        ];
        for (got, want) in t {
            assert_eq!(got, want);
        }
        assert_eq!(size::ERROR_LOG, 88);
        assert_eq!(size::CONTROLLER_DUMP_DATA, 80);
        assert_eq!(size::CONTROLLER_STATS, 104);
        assert_eq!(size::FWDEBUG, 32);
        assert_eq!(size::MMIO, 16);
    }

    #[test]
    fn event_flags_match_spec_section_4() {
        assert_eq!(event::DUMP_AVAILABLE, 1);
        assert_eq!(event::ERROR_LOG_AVAILABLE, 2);
        assert_eq!(event::HARDWARE_FATAL, 4);
        assert_eq!(event::FIRMWARE_FATAL, 8);
    }

    #[test]
    fn label_area_is_first_16_mib() {
        assert_eq!(LABEL_AREA_SIZE, 0x100_0000);
        assert_eq!(u64::from(nd::CONFIG_SIZE), LABEL_AREA_SIZE);
    }
}
