//! PCI identity, config-space capabilities and the AFU descriptor (§7).

/// IBM's PCI vendor id.
pub const VENDOR_ID: u16 = 0x1014;
/// The card's PCI device id.
pub const DEVICE_ID: u16 = 0x0625;
/// The function that carries the pmem AFU (AFU index 0). Function 0 configures the link.
pub const PMEM_FUNCTION: u8 = 1;
/// The AFU index of the pmem AFU.
pub const PMEM_AFU_INDEX: u8 = 0;
/// The AFU name of the pmem AFU.
pub const PMEM_AFU_NAME: &str = "IBM,SCM";

/// Standard config-space offsets used here.
pub mod pci {
    /// Vendor id (u16).
    pub const VENDOR: u64 = 0x00;
    /// Device id (u16).
    pub const DEVICE: u64 = 0x02;
    /// Command register (u16).
    pub const COMMAND: u64 = 0x04;
    /// Command register: memory space enable.
    pub const COMMAND_MEMORY: u16 = 1 << 1;
    /// Command register: bus master enable.
    pub const COMMAND_MASTER: u16 = 1 << 2;
    /// Status register (u16).
    pub const STATUS: u64 = 0x06;
    /// Revision id (u8) and class code (3 bytes).
    pub const REVISION_CLASS: u64 = 0x08;
    /// First BAR.
    pub const BAR0: u64 = 0x10;
    /// Start of extended config space.
    pub const EXTENDED_START: u64 = 0x100;
    /// Size of extended config space.
    pub const CONFIG_SIZE: u64 = 0x1000;
}

/// PCIe extended capability id of the Device Serial Number capability.
pub const EXT_CAP_DSN: u16 = 0x0003;
/// PCIe extended capability id of a Designated Vendor-Specific capability.
pub const EXT_CAP_DVSEC: u16 = 0x0023;
/// DSN capability: low u32 of the serial at cap+0x4.
pub const DSN_LOW: u64 = 0x4;
/// DSN capability: high u32 of the serial at cap+0x8.
pub const DSN_HIGH: u64 = 0x8;

/// Decodes an extended capability header dword into (id, version, next offset).
pub const fn split_ext_cap_header(dword: u32) -> (u16, u8, u16) {
    (
        (dword & 0xFFFF) as u16,
        ((dword >> 16) & 0xF) as u8,
        ((dword >> 20) & 0xFFC) as u16,
    )
}

/// Builds an extended capability header dword.
pub const fn ext_cap_header(id: u16, version: u8, next: u16) -> u32 {
    (id as u32) | (((version & 0xF) as u32) << 16) | (((next & 0xFFC) as u32) << 20)
}

/// DVSEC layout (§7): vendor and id fields, and the OpenCAPI DVSEC ids.
pub mod dvsec {
    /// DVSEC header 1: bits 15:0 vendor, 19:16 revision, 31:20 length.
    pub const HEADER1: u64 = 0x4;
    /// DVSEC header 2: bits 15:0 DVSEC id.
    pub const HEADER2: u64 = 0x8;
    /// DVSEC id 0xF000: Transport Layer (function 0).
    pub const ID_TRANSPORT: u16 = 0xF000;
    /// DVSEC id 0xF001: Function.
    pub const ID_FUNCTION: u16 = 0xF001;
    /// DVSEC id 0xF003: AFU Information.
    pub const ID_AFU_INFO: u16 = 0xF003;
    /// DVSEC id 0xF004: AFU Control.
    pub const ID_AFU_CONTROL: u16 = 0xF004;
    /// DVSEC id 0xF0F0: IBM vendor (function 0).
    pub const ID_VENDOR: u16 = 0xF0F0;

    /// Splits header 1 into (vendor, revision, length).
    pub const fn split_header1(dword: u32) -> (u16, u8, u16) {
        (
            (dword & 0xFFFF) as u16,
            ((dword >> 16) & 0xF) as u8,
            (dword >> 20) as u16,
        )
    }

    /// Builds header 1.
    pub const fn header1(vendor: u16, revision: u8, length: u16) -> u32 {
        (vendor as u32) | (((revision & 0xF) as u32) << 16) | (((length & 0xFFF) as u32) << 20)
    }

    /// Function DVSEC (0xF001) fields.
    pub mod function {
        /// +0x08 u32: bit 31 AFU present, bits 29:24 max AFU index (shares the dword with
        /// the DVSEC id in bits 15:0).
        pub const AFU_PRESENT: u64 = 0x08;
        /// Bit 31 of the +0x08 dword.
        pub const AFU_PRESENT_BIT: u32 = 1 << 31;
        /// Bits 29:24 of the +0x08 dword: the highest AFU index.
        pub const fn max_afu_index(dword: u32) -> u8 {
            ((dword >> 24) & 0x3F) as u8
        }
        /// +0x0C: acTag configuration.
        pub const ACTAG: u64 = 0x0C;
        /// Length the DVSEC header must cover.
        pub const LENGTH: u16 = 0x10;
    }

    /// AFU Information DVSEC (0xF003) fields: the descriptor window.
    pub mod afu_info {
        /// +0x0A u8: AFU index select.
        pub const AFU_INDEX: u64 = 0x0A;
        /// +0x0C u32: descriptor offset; bit 31 = data valid (written 0, set by hardware).
        pub const OFFSET: u64 = 0x0C;
        /// Bit 31 of [`OFFSET`].
        pub const DATA_VALID: u32 = 1 << 31;
        /// +0x10 u32: the descriptor dword at the selected offset.
        pub const DATA: u64 = 0x10;
        /// Length the DVSEC header must cover.
        pub const LENGTH: u16 = 0x14;
        /// Wait for the data-valid bit at most this long (§7).
        pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
    }

    /// AFU Control DVSEC (0xF004) fields.
    pub mod afu_control {
        /// +0x0A u8: AFU index.
        pub const AFU_INDEX: u64 = 0x0A;
        /// +0x0F bit 0: AFU enable.
        pub const ENABLE: u64 = 0x0F;
        /// Bit 0 of [`ENABLE`].
        pub const ENABLE_BIT: u8 = 1;
        /// Length the DVSEC header must cover.
        pub const LENGTH: u16 = 0x10;
    }
}

/// AFU descriptor offsets (§7), read one u32 at a time through the AFU-information window.
pub mod afu_desc {
    /// Bits 31:16 template length, 15:8 major, 7:0 minor.
    pub const TEMPLATE: u64 = 0x00;
    /// AFU name, 24 chars, each u32 little-endian.
    pub const NAME: u64 = 0x04;
    /// Length of the name in bytes.
    pub const NAME_LEN: usize = 24;
    /// 31:24 AFU major, 23:16 AFU minor, 15:14 AFUC type, 13:12 AFUM type, 7:0 profile.
    pub const VERSION: u64 = 0x1C;
    /// Global MMIO: bits 2:0 BAR, bits 31:16 offset bits 31:16.
    pub const GLOBAL_MMIO_BAR: u64 = 0x20;
    /// Global MMIO offset bits 63:32.
    pub const GLOBAL_MMIO_OFFSET_HIGH: u64 = 0x24;
    /// Global MMIO size.
    pub const GLOBAL_MMIO_SIZE: u64 = 0x28;
    /// Per-process MMIO BAR + offset low.
    pub const PP_MMIO_BAR: u64 = 0x30;
    /// Per-process MMIO offset high.
    pub const PP_MMIO_OFFSET_HIGH: u64 = 0x34;
    /// Per-process MMIO stride.
    pub const PP_MMIO_STRIDE: u64 = 0x38;
    /// Bits 7:0: log2(total device memory size); 0 = none.
    pub const MEM_SIZE: u64 = 0x3C;
    /// LPC memory offset, low dword.
    pub const LPC_OFFSET_LOW: u64 = 0x40;
    /// LPC memory offset, high dword.
    pub const LPC_OFFSET_HIGH: u64 = 0x44;
    /// WWID, 16 bytes.
    pub const WWID: u64 = 0x48;
    /// LPC memory size, low dword (template >= 1.1).
    pub const LPC_SIZE_LOW: u64 = 0x58;
    /// LPC memory size, high dword.
    pub const LPC_SIZE_HIGH: u64 = 0x5C;
    /// Length of a template 1.0 descriptor.
    pub const LEN_1_0: usize = 0x58;
    /// Length of a template 1.1 descriptor.
    pub const LEN_1_1: usize = 0x60;
    /// Number of dwords of a template 1.1 descriptor.
    pub const DWORDS_1_1: usize = LEN_1_1 / 4;
}

/// Why a raw AFU descriptor cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AfuDescriptorError {
    /// Fewer dwords than the template needs.
    #[error("AFU descriptor has {got} bytes, template {major}.{minor} needs {need}")]
    TooShort {
        /// Bytes given.
        got: usize,
        /// Bytes needed.
        need: usize,
        /// Template major.
        major: u8,
        /// Template minor.
        minor: u8,
    },
    /// A template version this driver does not know.
    #[error(
        "unsupported AFU descriptor template {major}.{minor} (length {length:#x}); known: 1.0, 1.1"
    )]
    UnsupportedTemplate {
        /// Template major.
        major: u8,
        /// Template minor.
        minor: u8,
        /// Template length field.
        length: u16,
    },
    /// The global MMIO BAR field is not 0, 2 or 4.
    #[error("AFU descriptor names BAR {bar} for global MMIO; only 0, 2 and 4 (64-bit BAR pairs) are valid")]
    BadBar {
        /// The BAR field.
        bar: u8,
    },
}

/// A decoded AFU descriptor (template 1.0 or 1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfuDescriptor {
    /// Template major version.
    pub template_major: u8,
    /// Template minor version.
    pub template_minor: u8,
    /// Template length field.
    pub template_length: u16,
    /// AFU name, NULs stripped (non-UTF-8 bytes replaced).
    pub name: String,
    /// AFU major version.
    pub afu_major: u8,
    /// AFU minor version.
    pub afu_minor: u8,
    /// AFUC type (bits 15:14).
    pub afuc_type: u8,
    /// AFUM type (bits 13:12).
    pub afum_type: u8,
    /// Profile (bits 7:0).
    pub profile: u8,
    /// BAR index (0, 2 or 4) holding the global MMIO area.
    pub global_mmio_bar: u8,
    /// Offset of the global MMIO area in that BAR.
    pub global_mmio_offset: u64,
    /// Size of the global MMIO area.
    pub global_mmio_size: u32,
    /// Per-process MMIO BAR.
    pub pp_mmio_bar: u8,
    /// Per-process MMIO offset.
    pub pp_mmio_offset: u64,
    /// Per-process MMIO stride.
    pub pp_mmio_stride: u32,
    /// log2 of the total device memory size (0 = none).
    pub mem_size_log2: u8,
    /// LPC memory offset.
    pub lpc_offset: u64,
    /// WWID bytes.
    pub wwid: [u8; 16],
    /// LPC memory size (template 1.1 field, or the total size for 1.0).
    pub lpc_size: u64,
}

impl AfuDescriptor {
    /// Decodes a descriptor from its raw dwords (dword `i` = descriptor offset `4 * i`).
    pub fn decode(dwords: &[u32]) -> Result<Self, AfuDescriptorError> {
        let d = |off: u64| dwords.get((off / 4) as usize).copied().unwrap_or(0);
        let have = dwords.len() * 4;
        let template = d(afu_desc::TEMPLATE);
        if dwords.is_empty() {
            return Err(AfuDescriptorError::TooShort {
                got: 0,
                need: afu_desc::LEN_1_0,
                major: 0,
                minor: 0,
            });
        }
        let length = (template >> 16) as u16;
        let major = (template >> 8) as u8;
        let minor = template as u8;
        let need = match (major, minor) {
            (1, 0) => afu_desc::LEN_1_0,
            (1, 1) => afu_desc::LEN_1_1,
            _ => {
                return Err(AfuDescriptorError::UnsupportedTemplate {
                    major,
                    minor,
                    length,
                })
            }
        };
        if have < need {
            return Err(AfuDescriptorError::TooShort {
                got: have,
                need,
                major,
                minor,
            });
        }
        let mut name_bytes = Vec::with_capacity(afu_desc::NAME_LEN);
        for i in 0..(afu_desc::NAME_LEN as u64 / 4) {
            name_bytes.extend_from_slice(&d(afu_desc::NAME + 4 * i).to_le_bytes());
        }
        let end = name_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_bytes.len());
        let name = String::from_utf8_lossy(&name_bytes[..end]).into_owned();
        let version = d(afu_desc::VERSION);
        let gm = d(afu_desc::GLOBAL_MMIO_BAR);
        let bar = (gm & 0x7) as u8;
        if !matches!(bar, 0 | 2 | 4) {
            return Err(AfuDescriptorError::BadBar { bar });
        }
        let pp = d(afu_desc::PP_MMIO_BAR);
        let mut wwid = [0u8; 16];
        for i in 0..4u64 {
            wwid[(4 * i) as usize..(4 * i + 4) as usize]
                .copy_from_slice(&d(afu_desc::WWID + 4 * i).to_le_bytes());
        }
        let mem_size_log2 = d(afu_desc::MEM_SIZE) as u8;
        let lpc_size = if minor >= 1 {
            u64::from(d(afu_desc::LPC_SIZE_LOW)) | (u64::from(d(afu_desc::LPC_SIZE_HIGH)) << 32)
        } else if mem_size_log2 == 0 || mem_size_log2 >= 64 {
            0
        } else {
            1u64 << mem_size_log2
        };
        Ok(Self {
            template_major: major,
            template_minor: minor,
            template_length: length,
            name,
            afu_major: (version >> 24) as u8,
            afu_minor: (version >> 16) as u8,
            afuc_type: ((version >> 14) & 3) as u8,
            afum_type: ((version >> 12) & 3) as u8,
            profile: version as u8,
            global_mmio_bar: bar,
            global_mmio_offset: u64::from(gm & 0xFFFF_0000)
                | (u64::from(d(afu_desc::GLOBAL_MMIO_OFFSET_HIGH)) << 32),
            global_mmio_size: d(afu_desc::GLOBAL_MMIO_SIZE),
            pp_mmio_bar: (pp & 0x7) as u8,
            pp_mmio_offset: u64::from(pp & 0xFFFF_0000)
                | (u64::from(d(afu_desc::PP_MMIO_OFFSET_HIGH)) << 32),
            pp_mmio_stride: d(afu_desc::PP_MMIO_STRIDE),
            mem_size_log2,
            lpc_offset: u64::from(d(afu_desc::LPC_OFFSET_LOW))
                | (u64::from(d(afu_desc::LPC_OFFSET_HIGH)) << 32),
            wwid,
            lpc_size,
        })
    }

    /// Encodes a template 1.1 descriptor (the simulator's; also used by tests).
    pub fn encode_1_1(&self) -> [u32; afu_desc::DWORDS_1_1] {
        let mut out = [0u32; afu_desc::DWORDS_1_1];
        let mut put = |off: u64, v: u32| out[(off / 4) as usize] = v;
        put(
            afu_desc::TEMPLATE,
            ((afu_desc::LEN_1_1 as u32) << 16) | (1 << 8) | 1,
        );
        let mut name = [0u8; afu_desc::NAME_LEN];
        let n = self.name.len().min(afu_desc::NAME_LEN);
        name[..n].copy_from_slice(&self.name.as_bytes()[..n]);
        for (i, c) in name.chunks(4).enumerate() {
            put(
                afu_desc::NAME + 4 * i as u64,
                u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            );
        }
        put(
            afu_desc::VERSION,
            (u32::from(self.afu_major) << 24)
                | (u32::from(self.afu_minor) << 16)
                | (u32::from(self.afuc_type & 3) << 14)
                | (u32::from(self.afum_type & 3) << 12)
                | u32::from(self.profile),
        );
        put(
            afu_desc::GLOBAL_MMIO_BAR,
            (self.global_mmio_offset as u32 & 0xFFFF_0000) | u32::from(self.global_mmio_bar & 7),
        );
        put(
            afu_desc::GLOBAL_MMIO_OFFSET_HIGH,
            (self.global_mmio_offset >> 32) as u32,
        );
        put(afu_desc::GLOBAL_MMIO_SIZE, self.global_mmio_size);
        put(
            afu_desc::PP_MMIO_BAR,
            (self.pp_mmio_offset as u32 & 0xFFFF_0000) | u32::from(self.pp_mmio_bar & 7),
        );
        put(
            afu_desc::PP_MMIO_OFFSET_HIGH,
            (self.pp_mmio_offset >> 32) as u32,
        );
        put(afu_desc::PP_MMIO_STRIDE, self.pp_mmio_stride);
        put(afu_desc::MEM_SIZE, u32::from(self.mem_size_log2));
        put(afu_desc::LPC_OFFSET_LOW, self.lpc_offset as u32);
        put(afu_desc::LPC_OFFSET_HIGH, (self.lpc_offset >> 32) as u32);
        for (i, c) in self.wwid.chunks(4).enumerate() {
            put(
                afu_desc::WWID + 4 * i as u64,
                u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            );
        }
        put(afu_desc::LPC_SIZE_LOW, self.lpc_size as u32);
        put(afu_desc::LPC_SIZE_HIGH, (self.lpc_size >> 32) as u32);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AfuDescriptor {
        AfuDescriptor {
            template_major: 1,
            template_minor: 1,
            template_length: 0x60,
            name: PMEM_AFU_NAME.to_string(),
            afu_major: 2,
            afu_minor: 3,
            afuc_type: 1,
            afum_type: 2,
            profile: 0x11,
            global_mmio_bar: 0,
            global_mmio_offset: 0x1_0002_0000,
            global_mmio_size: 0x10000,
            pp_mmio_bar: 2,
            pp_mmio_offset: 0x30000,
            pp_mmio_stride: 0x1000,
            mem_size_log2: 28,
            lpc_offset: 0x2_0000_0000,
            wwid: *b"0123456789ABCDEF",
            lpc_size: 256 << 20,
        }
    }

    #[test]
    fn ids_and_capability_numbers() {
        assert_eq!(VENDOR_ID, 0x1014);
        assert_eq!(DEVICE_ID, 0x0625);
        assert_eq!(PMEM_FUNCTION, 1);
        assert_eq!(EXT_CAP_DVSEC, 0x0023);
        assert_eq!(EXT_CAP_DSN, 0x0003);
        assert_eq!((DSN_LOW, DSN_HIGH), (4, 8));
        assert_eq!(dvsec::HEADER1, 4);
        assert_eq!(dvsec::HEADER2, 8);
        assert_eq!(
            [
                dvsec::ID_TRANSPORT,
                dvsec::ID_FUNCTION,
                dvsec::ID_AFU_INFO,
                dvsec::ID_AFU_CONTROL,
                dvsec::ID_VENDOR
            ],
            [0xF000, 0xF001, 0xF003, 0xF004, 0xF0F0]
        );
    }

    #[test]
    fn dvsec_field_offsets_match_spec_table_7() {
        assert_eq!(dvsec::function::AFU_PRESENT, 0x08);
        assert_eq!(dvsec::function::ACTAG, 0x0C);
        assert_eq!(dvsec::function::max_afu_index(0xBF00_F001), 0x3F);
        assert_eq!(dvsec::afu_info::AFU_INDEX, 0x0A);
        assert_eq!(dvsec::afu_info::OFFSET, 0x0C);
        assert_eq!(dvsec::afu_info::DATA_VALID, 0x8000_0000);
        assert_eq!(dvsec::afu_info::DATA, 0x10);
        assert_eq!(dvsec::afu_control::AFU_INDEX, 0x0A);
        assert_eq!(dvsec::afu_control::ENABLE, 0x0F);
        assert_eq!(dvsec::afu_info::TIMEOUT.as_secs(), 3);
    }

    #[test]
    fn ext_cap_header_round_trip() {
        let h = ext_cap_header(EXT_CAP_DVSEC, 1, 0x140);
        assert_eq!(split_ext_cap_header(h), (EXT_CAP_DVSEC, 1, 0x140));
        let h1 = dvsec::header1(VENDOR_ID, 0, 0x14);
        assert_eq!(dvsec::split_header1(h1), (VENDOR_ID, 0, 0x14));
    }

    #[test]
    fn afu_descriptor_offsets_match_spec_table_7() {
        use afu_desc::*;
        let t = [
            (TEMPLATE, 0x00),
            (NAME, 0x04),
            (VERSION, 0x1C),
            (GLOBAL_MMIO_BAR, 0x20),
            (GLOBAL_MMIO_OFFSET_HIGH, 0x24),
            (GLOBAL_MMIO_SIZE, 0x28),
            (PP_MMIO_BAR, 0x30),
            (PP_MMIO_OFFSET_HIGH, 0x34),
            (PP_MMIO_STRIDE, 0x38),
            (MEM_SIZE, 0x3C),
            (LPC_OFFSET_LOW, 0x40),
            (LPC_OFFSET_HIGH, 0x44),
            (WWID, 0x48),
            (LPC_SIZE_LOW, 0x58),
            (LPC_SIZE_HIGH, 0x5C),
        ];
        for (got, want) in t {
            assert_eq!(got, want);
        }
        assert_eq!((LEN_1_0, LEN_1_1), (0x58, 0x60));
    }

    #[test]
    fn afu_descriptor_1_1_round_trip() {
        let d = sample();
        let raw = d.encode_1_1();
        assert_eq!(raw[0], 0x0060_0101);
        // "IBM," little-endian in the first name dword.
        assert_eq!(raw[1], u32::from_le_bytes(*b"IBM,"));
        assert_eq!(raw[0x20 / 4], 0x0002_0000);
        assert_eq!(raw[0x24 / 4], 1);
        assert_eq!(AfuDescriptor::decode(&raw), Ok(d));
    }

    #[test]
    fn afu_descriptor_1_0_uses_total_memory_size() {
        let mut raw = sample().encode_1_1().to_vec();
        raw[0] = 0x0058_0100;
        raw.truncate(0x58 / 4);
        let d = AfuDescriptor::decode(&raw).unwrap();
        assert_eq!((d.template_major, d.template_minor), (1, 0));
        assert_eq!(d.lpc_size, 1 << 28);
        assert_eq!(d.name, "IBM,SCM");
    }

    #[test]
    fn afu_descriptor_rejects_bad_input_without_panicking() {
        assert!(matches!(
            AfuDescriptor::decode(&[]),
            Err(AfuDescriptorError::TooShort { .. })
        ));
        assert!(matches!(
            AfuDescriptor::decode(&[0x0060_0101, 0]),
            Err(AfuDescriptorError::TooShort { .. })
        ));
        assert!(matches!(
            AfuDescriptor::decode(&[0x0060_0203; 24]),
            Err(AfuDescriptorError::UnsupportedTemplate {
                major: 2,
                minor: 3,
                ..
            })
        ));
        let mut raw = sample().encode_1_1();
        raw[0x20 / 4] = 3;
        assert_eq!(
            AfuDescriptor::decode(&raw),
            Err(AfuDescriptorError::BadBar { bar: 3 })
        );
        // Arbitrary bytes in the name are tolerated.
        let mut raw = sample().encode_1_1();
        raw[1] = 0xFFFF_FFFF;
        assert!(AfuDescriptor::decode(&raw).is_ok());
    }
}
