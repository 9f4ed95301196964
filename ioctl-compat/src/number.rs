//! ioctl number encoding (`_IO/_IOR/_IOW/_IOWR`), computed for both the generic Linux
//! layout and the powerpc one, and the command table of spec §5.
//!
//! Numbers are computed, never copied: [`Encoding::NATIVE`] picks the layout of the
//! architecture this crate is built for, and the tests pin both layouts to the values the
//! spec lists.

use ocxlpmem_regs::abi::{self, nd, nr};

/// Direction of an ioctl's argument transfer, as the `_IOC` macros name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// `_IO`: no argument transfer.
    None,
    /// `_IOR`: the kernel writes the argument (user reads).
    Read,
    /// `_IOW`: the kernel reads the argument (user writes).
    Write,
    /// `_IOWR`: both.
    ReadWrite,
}

/// An `_IOC` bit layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// asm-generic (x86, arm64, riscv, s390, ...): nr 8 bits, type 8, size 14, dir 2 with
    /// NONE = 0, WRITE = 1, READ = 2.
    Generic,
    /// powerpc (and mips, sparc, alpha): size 13 bits, dir 3 with NONE = 1, READ = 2,
    /// WRITE = 4.
    PowerPc,
}

impl Encoding {
    /// The layout of the architecture this crate was built for.
    #[cfg(any(
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    ))]
    pub const NATIVE: Encoding = Encoding::PowerPc;
    /// The layout of the architecture this crate was built for.
    #[cfg(not(any(
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    )))]
    pub const NATIVE: Encoding = Encoding::Generic;

    /// Largest argument size the size field can hold.
    pub const fn max_size(self) -> usize {
        match self {
            Encoding::Generic => (1 << 14) - 1,
            Encoding::PowerPc => (1 << 13) - 1,
        }
    }

    const fn dir_shift(self) -> u32 {
        match self {
            Encoding::Generic => 30,
            Encoding::PowerPc => 29,
        }
    }

    const fn dir_bits(self, dir: Dir) -> u32 {
        match (self, dir) {
            (Encoding::Generic, Dir::None) => 0,
            (Encoding::Generic, Dir::Write) => 1,
            (Encoding::Generic, Dir::Read) => 2,
            (Encoding::Generic, Dir::ReadWrite) => 3,
            (Encoding::PowerPc, Dir::None) => 1,
            (Encoding::PowerPc, Dir::Read) => 2,
            (Encoding::PowerPc, Dir::Write) => 4,
            (Encoding::PowerPc, Dir::ReadWrite) => 6,
        }
    }

    /// `_IOC(dir, ty, nr, size)` in this layout. `size` is masked to the size field (callers
    /// use sizes of fixed structures, all far below the limit; a test pins that).
    pub const fn ioc(self, dir: Dir, ty: u8, nr: u8, size: usize) -> u32 {
        let size = (size & self.max_size()) as u32;
        (self.dir_bits(dir) << self.dir_shift()) | (size << 16) | ((ty as u32) << 8) | nr as u32
    }

    /// Splits a number back into (direction, type, nr, size); `None` when the direction
    /// bits are not a valid combination for this layout.
    pub const fn decode(self, request: u32) -> Option<(Dir, u8, u8, usize)> {
        let dir = match (self, request >> self.dir_shift()) {
            (Encoding::Generic, 0) | (Encoding::PowerPc, 1) => Dir::None,
            (Encoding::Generic, 1) | (Encoding::PowerPc, 4) => Dir::Write,
            (Encoding::Generic, 2) | (Encoding::PowerPc, 2) => Dir::Read,
            (Encoding::Generic, 3) | (Encoding::PowerPc, 6) => Dir::ReadWrite,
            _ => return None,
        };
        let size = ((request >> 16) as usize) & self.max_size();
        Some((dir, (request >> 8) as u8, request as u8, size))
    }
}

/// One ioctl of the ABI: its name, type byte, nr, direction and encoded argument size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IoctlDef {
    /// The name of the ioctl in the proposed driver (without the prefix).
    pub name: &'static str,
    /// The ioctl type ("magic") byte.
    pub ty: u8,
    /// The command number.
    pub nr: u8,
    /// Direction as the driver declared it.
    pub dir: Dir,
    /// Size encoded in the number (0 for `_IO`, even where an argument is used).
    pub size: usize,
    /// Bytes the argument actually occupies (CONTROLLER_STATS is `_IO` but writes 104).
    pub arg_size: usize,
    /// Debug-only ioctl of the proposed driver (0xF0..).
    pub debug: bool,
}

impl IoctlDef {
    /// The request number in `enc`.
    pub const fn request_in(&self, enc: Encoding) -> u32 {
        enc.ioc(self.dir, self.ty, self.nr, self.size)
    }

    /// The request number for the build's architecture.
    pub const fn request(&self) -> u32 {
        self.request_in(Encoding::NATIVE)
    }
}

const fn card(name: &'static str, nr: u8, dir: Dir, size: usize, arg_size: usize) -> IoctlDef {
    IoctlDef {
        name,
        ty: abi::IOCTL_MAGIC,
        nr,
        dir,
        size,
        arg_size,
        debug: nr >= 0xF0,
    }
}

/// The `/dev/ocxlpmem<N>` ioctls of spec §5.
pub mod card {
    use super::*;
    use ocxlpmem_regs::abi::size;

    /// ERROR_LOG: `_IOWR(0xCA, 0x30, struct error_log)`.
    pub const ERROR_LOG: IoctlDef = card(
        "ERROR_LOG",
        nr::ERROR_LOG,
        Dir::ReadWrite,
        size::ERROR_LOG,
        size::ERROR_LOG,
    );
    /// CONTROLLER_DUMP: `_IO(0xCA, 0x31)`.
    pub const CONTROLLER_DUMP: IoctlDef =
        card("CONTROLLER_DUMP", nr::CONTROLLER_DUMP, Dir::None, 0, 0);
    /// CONTROLLER_DUMP_DATA: `_IOWR(0xCA, 0x32, struct controller_dump_data)`.
    pub const CONTROLLER_DUMP_DATA: IoctlDef = card(
        "CONTROLLER_DUMP_DATA",
        nr::CONTROLLER_DUMP_DATA,
        Dir::ReadWrite,
        size::CONTROLLER_DUMP_DATA,
        size::CONTROLLER_DUMP_DATA,
    );
    /// CONTROLLER_DUMP_COMPLETE: `_IO(0xCA, 0x33)`.
    pub const CONTROLLER_DUMP_COMPLETE: IoctlDef = card(
        "CONTROLLER_DUMP_COMPLETE",
        nr::CONTROLLER_DUMP_COMPLETE,
        Dir::None,
        0,
        0,
    );
    /// CONTROLLER_STATS: `_IO(0xCA, 0x34)` (sic) writing a `struct controller_stats`.
    pub const CONTROLLER_STATS: IoctlDef = card(
        "CONTROLLER_STATS",
        nr::CONTROLLER_STATS,
        Dir::None,
        0,
        size::CONTROLLER_STATS,
    );
    /// EVENTFD: `_IOW(0xCA, 0x35, struct eventfd)`.
    pub const EVENTFD: IoctlDef = card(
        "EVENTFD",
        nr::EVENTFD,
        Dir::Write,
        size::EVENTFD,
        size::EVENTFD,
    );
    /// EVENT_CHECK: `_IOR(0xCA, 0x36, u64)`.
    pub const EVENT_CHECK: IoctlDef = card(
        "EVENT_CHECK",
        nr::EVENT_CHECK,
        Dir::Read,
        size::EVENT_CHECK,
        size::EVENT_CHECK,
    );
    /// REQUEST_HEALTH: `_IO(0xCA, 0x37)`.
    pub const REQUEST_HEALTH: IoctlDef =
        card("REQUEST_HEALTH", nr::REQUEST_HEALTH, Dir::None, 0, 0);
    /// FWDEBUG (debug): `_IOWR(0xCA, 0xF0, struct fwdebug)`.
    pub const FWDEBUG: IoctlDef = card(
        "FWDEBUG",
        nr::FWDEBUG,
        Dir::ReadWrite,
        size::FWDEBUG,
        size::FWDEBUG,
    );
    /// MMIO_WRITE (debug): `_IOW(0xCA, 0xF1, struct mmio)`.
    pub const MMIO_WRITE: IoctlDef = card(
        "MMIO_WRITE",
        nr::MMIO_WRITE,
        Dir::Write,
        size::MMIO,
        size::MMIO,
    );
    /// MMIO_READ (debug): `_IOWR(0xCA, 0xF2, struct mmio)`.
    pub const MMIO_READ: IoctlDef = card(
        "MMIO_READ",
        nr::MMIO_READ,
        Dir::ReadWrite,
        size::MMIO,
        size::MMIO,
    );
    /// SHUTDOWN (debug): `_IO(0xCA, 0xF3)`.
    pub const SHUTDOWN: IoctlDef = card("SHUTDOWN", nr::SHUTDOWN, Dir::None, 0, 0);

    /// Every ioctl of the char device.
    pub const ALL: [IoctlDef; 12] = [
        ERROR_LOG,
        CONTROLLER_DUMP,
        CONTROLLER_DUMP_DATA,
        CONTROLLER_DUMP_COMPLETE,
        CONTROLLER_STATS,
        EVENTFD,
        EVENT_CHECK,
        REQUEST_HEALTH,
        FWDEBUG,
        MMIO_WRITE,
        MMIO_READ,
        SHUTDOWN,
    ];
}

const fn ndctl(name: &'static str, nr: u8, size: usize) -> IoctlDef {
    IoctlDef {
        name,
        ty: nd::IOCTL_TYPE,
        nr,
        dir: Dir::ReadWrite,
        size,
        arg_size: size,
        debug: false,
    }
}

/// The per-DIMM ndctl ioctls (`linux/ndctl.h`) this driver serves: all `_IOWR('N', ...)`
/// sized by their fixed header (the data follows the header in the same buffer).
pub mod ndctl {
    use super::*;
    use crate::nd::{
        CMD_PKG_SIZE, GET_CONFIG_DATA_HDR_SIZE, GET_CONFIG_SIZE_SIZE, SET_CONFIG_HDR_SIZE,
    };

    /// ND_IOCTL_GET_CONFIG_SIZE.
    pub const GET_CONFIG_SIZE: IoctlDef = ndctl(
        "GET_CONFIG_SIZE",
        nd::CMD_GET_CONFIG_SIZE,
        GET_CONFIG_SIZE_SIZE,
    );
    /// ND_IOCTL_GET_CONFIG_DATA.
    pub const GET_CONFIG_DATA: IoctlDef = ndctl(
        "GET_CONFIG_DATA",
        nd::CMD_GET_CONFIG_DATA,
        GET_CONFIG_DATA_HDR_SIZE,
    );
    /// ND_IOCTL_SET_CONFIG_DATA.
    pub const SET_CONFIG_DATA: IoctlDef = ndctl(
        "SET_CONFIG_DATA",
        nd::CMD_SET_CONFIG_DATA,
        SET_CONFIG_HDR_SIZE,
    );
    /// ND_IOCTL_CALL.
    pub const CALL: IoctlDef = ndctl("CALL", nd::CMD_CALL, CMD_PKG_SIZE);

    /// Every ndctl ioctl served.
    pub const ALL: [IoctlDef; 4] = [GET_CONFIG_SIZE, GET_CONFIG_DATA, SET_CONFIG_DATA, CALL];
}

/// Finds the ioctl a request number stands for, in `enc`.
pub fn lookup(request: u32, enc: Encoding) -> Option<IoctlDef> {
    card::ALL
        .iter()
        .chain(ndctl::ALL.iter())
        .find(|d| d.request_in(enc) == request)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_encoding_gives_the_spec_examples() {
        let g = Encoding::Generic;
        assert_eq!(card::ERROR_LOG.request_in(g), 0xC058_CA30);
        assert_eq!(card::EVENTFD.request_in(g), 0x4008_CA35);
        assert_eq!(card::EVENT_CHECK.request_in(g), 0x8008_CA36);
        assert_eq!(card::CONTROLLER_DUMP.request_in(g), 0x0000_CA31);
    }

    #[test]
    fn powerpc_encoding_gives_the_spec_examples() {
        let p = Encoding::PowerPc;
        assert_eq!(card::EVENTFD.request_in(p), 0x8008_CA35);
        assert_eq!(card::EVENT_CHECK.request_in(p), 0x4008_CA36);
        assert_eq!(card::CONTROLLER_DUMP.request_in(p), 0x2000_CA31);
        assert_eq!(card::ERROR_LOG.request_in(p), 0xC058_CA30);
    }

    #[test]
    // The macros' type is c_ulong or c_int depending on the target and libc.
    #[allow(clippy::useless_conversion)]
    fn native_encoding_matches_the_libc_macros_of_this_target() {
        // nix computes the numbers from the target's own _IOC layout.
        let e = Encoding::NATIVE;
        assert_eq!(
            u64::from(card::ERROR_LOG.request_in(e)),
            u64::try_from(nix::request_code_readwrite!(0xCA, 0x30, 88)).unwrap()
        );
        assert_eq!(
            u64::from(card::EVENTFD.request_in(e)),
            u64::try_from(nix::request_code_write!(0xCA, 0x35, 8)).unwrap()
        );
        assert_eq!(
            u64::from(card::EVENT_CHECK.request_in(e)),
            u64::try_from(nix::request_code_read!(0xCA, 0x36, 8)).unwrap()
        );
        assert_eq!(
            u64::from(card::SHUTDOWN.request_in(e)),
            u64::try_from(nix::request_code_none!(0xCA, 0xF3)).unwrap()
        );
    }

    #[test]
    fn ndctl_numbers_match_linux_uapi() {
        // ND_IOCTL_GET_CONFIG_SIZE = _IOWR('N', 4, 12 bytes) etc. (generic layout).
        let g = Encoding::Generic;
        assert_eq!(ndctl::GET_CONFIG_SIZE.request_in(g), 0xC00C_4E04);
        assert_eq!(ndctl::GET_CONFIG_DATA.request_in(g), 0xC00C_4E05);
        assert_eq!(ndctl::SET_CONFIG_DATA.request_in(g), 0xC008_4E06);
        assert_eq!(ndctl::CALL.request_in(g), 0xC040_4E0A);
    }

    #[test]
    fn every_number_decodes_back_and_is_unique() {
        for enc in [Encoding::Generic, Encoding::PowerPc] {
            let all: Vec<IoctlDef> = card::ALL.iter().chain(ndctl::ALL.iter()).copied().collect();
            for d in &all {
                assert!(d.size <= enc.max_size());
                let r = d.request_in(enc);
                assert_eq!(enc.decode(r), Some((d.dir, d.ty, d.nr, d.size)));
                assert_eq!(lookup(r, enc), Some(*d));
            }
            let mut numbers: Vec<u32> = all.iter().map(|d| d.request_in(enc)).collect();
            numbers.sort_unstable();
            numbers.dedup();
            assert_eq!(numbers.len(), all.len());
        }
    }

    #[test]
    fn invalid_direction_bits_do_not_decode() {
        assert_eq!(Encoding::PowerPc.decode(0x0000_CA31), None);
        assert_eq!(Encoding::PowerPc.decode(0xE000_CA31), None);
        assert!(lookup(0xDEAD_BEEF, Encoding::Generic).is_none());
    }

    #[test]
    fn debug_ioctls_are_marked() {
        let debug: Vec<&str> = card::ALL
            .iter()
            .filter(|d| d.debug)
            .map(|d| d.name)
            .collect();
        assert_eq!(debug, ["FWDEBUG", "MMIO_WRITE", "MMIO_READ", "SHUTDOWN"]);
    }
}
