//! Command areas, request/response headers, opcodes, status codes and timeouts (§2).

use crate::indicators::{Chi, Hci};
use crate::offsets;
use std::fmt;
use std::time::Duration;

/// The two command areas of the card (§2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandArea {
    /// The admin command area (ACMA at 0x100/0x108).
    Admin,
    /// The near-storage command area (NSCMA at 0x120/0x128).
    NearStorage,
}

impl CommandArea {
    /// Offset of the register holding the request and response block offsets.
    pub const fn offsets_register(self) -> u64 {
        match self {
            Self::Admin => offsets::ACMA_CREQO,
            Self::NearStorage => offsets::NSCMA_CREQO,
        }
    }

    /// Offset of the register holding the data buffer offset and size.
    pub const fn buffer_register(self) -> u64 {
        match self {
            Self::Admin => offsets::ACMA_CDBO,
            Self::NearStorage => offsets::NSCMA_CDBO,
        }
    }

    /// The HCI doorbell bit of this area (ACRW or NSCRW).
    pub const fn doorbell(self) -> u64 {
        match self {
            Self::Admin => Hci::ACRW,
            Self::NearStorage => Hci::NSCRW,
        }
    }

    /// The CHI response-available bit of this area (ACRA or NSCRA); also its CHIC bit.
    pub const fn response_available(self) -> u64 {
        match self {
            Self::Admin => Chi::ACRA,
            Self::NearStorage => Chi::NSCRA,
        }
    }

    /// Human name of the area.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::NearStorage => "near-storage",
        }
    }
}

/// Where a command area's blocks live, decoded from its two registers (§2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AreaLayout {
    /// Offset of the 64-byte request block in the global MMIO area.
    pub request_offset: u64,
    /// Offset of the 64-byte response block.
    pub response_offset: u64,
    /// Offset of the data buffer.
    pub data_offset: u64,
    /// Size of the data buffer in bytes.
    pub data_size: u64,
}

/// Why an area layout read from the device cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A block or the buffer is not 8-byte aligned.
    #[error("{what} at {offset:#x} is not 8-byte aligned")]
    Misaligned {
        /// Which block.
        what: &'static str,
        /// Its offset.
        offset: u64,
    },
    /// A block or the buffer does not lie inside the global MMIO area.
    #[error(
        "{what} at {offset:#x} (+{len:#x}) lies outside the {mmio_size:#x}-byte global MMIO area"
    )]
    OutOfBounds {
        /// Which block.
        what: &'static str,
        /// Its offset.
        offset: u64,
        /// Its length.
        len: u64,
        /// Size of the global MMIO area.
        mmio_size: u64,
    },
    /// The data buffer is too small to hold even a payload header.
    #[error("data buffer of {size} bytes is too small (need at least 16)")]
    BufferTooSmall {
        /// Its size.
        size: u64,
    },
    /// Two of the area's blocks overlap each other or the register file.
    #[error("{a} and {b} overlap")]
    Overlap {
        /// One block.
        a: &'static str,
        /// The other.
        b: &'static str,
    },
}

impl AreaLayout {
    /// Decodes the two register values: `offsets` = request (63:32) | response (31:0),
    /// `buffer` = data offset (63:32) | data size (31:0). (§2.1 Decision: this split.)
    pub const fn decode(offsets: u64, buffer: u64) -> Self {
        Self {
            request_offset: offsets >> 32,
            response_offset: offsets & 0xFFFF_FFFF,
            data_offset: buffer >> 32,
            data_size: buffer & 0xFFFF_FFFF,
        }
    }

    /// The two register values that describe this layout.
    pub const fn encode(&self) -> (u64, u64) {
        (
            (self.request_offset << 32) | (self.response_offset & 0xFFFF_FFFF),
            (self.data_offset << 32) | (self.data_size & 0xFFFF_FFFF),
        )
    }

    /// Checks the layout against a global MMIO area of `mmio_size` bytes: every block
    /// 8-byte aligned, inside the area, clear of the register file and of each other.
    pub fn validate(&self, mmio_size: u64) -> Result<(), LayoutError> {
        let blocks = [
            ("request block", self.request_offset, offsets::BLOCK_SIZE),
            ("response block", self.response_offset, offsets::BLOCK_SIZE),
            ("data buffer", self.data_offset, self.data_size),
        ];
        if self.data_size < 16 {
            return Err(LayoutError::BufferTooSmall {
                size: self.data_size,
            });
        }
        for (what, offset, len) in blocks {
            if !offset.is_multiple_of(8) || !len.is_multiple_of(8) {
                return Err(LayoutError::Misaligned { what, offset });
            }
            match offset.checked_add(len) {
                Some(end) if end <= mmio_size => {}
                _ => {
                    return Err(LayoutError::OutOfBounds {
                        what,
                        offset,
                        len,
                        mmio_size,
                    })
                }
            }
            if offset < offsets::REGISTER_FILE_SIZE {
                return Err(LayoutError::Overlap {
                    a: what,
                    b: "register file",
                });
            }
        }
        for (i, (a, ao, al)) in blocks.iter().enumerate() {
            for (b, bo, bl) in &blocks[i + 1..] {
                if ao < &(bo + bl) && bo < &(ao + al) {
                    return Err(LayoutError::Overlap { a, b });
                }
            }
        }
        Ok(())
    }
}

/// Admin and near-storage opcodes (§2.6). Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// 0x00 HEARTBEAT.
    Heartbeat,
    /// 0x01 SHUTDOWN.
    Shutdown,
    /// 0x02 FW_UPDATE (one block).
    FwUpdate,
    /// 0x03 FW_DEBUG.
    FwDebug,
    /// 0x04 ERRLOG: read one error log entry.
    ErrorLog,
    /// 0x05 SMART.
    Smart,
    /// 0x06 CONTROLLER_STATS.
    ControllerStats,
    /// 0x07 CONTROLLER_DUMP: fetch one chunk.
    ControllerDump,
    /// 0x08 CMD_CAPS.
    CommandCaps,
    /// 0x20 SECURE_ERASE (near-storage area).
    SecureErase,
    /// Any other value.
    Unknown(u8),
}

impl Opcode {
    /// Every known opcode.
    pub const ALL: [Opcode; 10] = [
        Self::Heartbeat,
        Self::Shutdown,
        Self::FwUpdate,
        Self::FwDebug,
        Self::ErrorLog,
        Self::Smart,
        Self::ControllerStats,
        Self::ControllerDump,
        Self::CommandCaps,
        Self::SecureErase,
    ];

    /// Decodes a wire value.
    pub const fn from_u8(v: u8) -> Self {
        match v {
            0x00 => Self::Heartbeat,
            0x01 => Self::Shutdown,
            0x02 => Self::FwUpdate,
            0x03 => Self::FwDebug,
            0x04 => Self::ErrorLog,
            0x05 => Self::Smart,
            0x06 => Self::ControllerStats,
            0x07 => Self::ControllerDump,
            0x08 => Self::CommandCaps,
            0x20 => Self::SecureErase,
            other => Self::Unknown(other),
        }
    }

    /// The wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Heartbeat => 0x00,
            Self::Shutdown => 0x01,
            Self::FwUpdate => 0x02,
            Self::FwDebug => 0x03,
            Self::ErrorLog => 0x04,
            Self::Smart => 0x05,
            Self::ControllerStats => 0x06,
            Self::ControllerDump => 0x07,
            Self::CommandCaps => 0x08,
            Self::SecureErase => 0x20,
            Self::Unknown(v) => v,
        }
    }

    /// The spec's name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Heartbeat => "HEARTBEAT",
            Self::Shutdown => "SHUTDOWN",
            Self::FwUpdate => "FW_UPDATE",
            Self::FwDebug => "FW_DEBUG",
            Self::ErrorLog => "ERRLOG",
            Self::Smart => "SMART",
            Self::ControllerStats => "CONTROLLER_STATS",
            Self::ControllerDump => "CONTROLLER_DUMP",
            Self::CommandCaps => "CMD_CAPS",
            Self::SecureErase => "SECURE_ERASE",
            Self::Unknown(_) => "UNKNOWN",
        }
    }

    /// Which area the command is sent through.
    pub const fn area(self) -> CommandArea {
        match self {
            Self::SecureErase => CommandArea::NearStorage,
            _ => CommandArea::Admin,
        }
    }

    /// The default timeout of §2.6 (FW_UPDATE: per block). Unknown opcodes get 1 s.
    pub const fn default_timeout(self) -> Duration {
        match self {
            Self::Heartbeat | Self::Smart | Self::ControllerStats | Self::CommandCaps => {
                Duration::from_millis(100)
            }
            Self::Shutdown | Self::ControllerDump => Duration::from_secs(1),
            Self::FwUpdate => Duration::from_secs(16),
            Self::FwDebug | Self::ErrorLog => Duration::from_secs(2),
            Self::SecureErase => Duration::from_secs(60),
            Self::Unknown(_) => Duration::from_secs(1),
        }
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#04x})", self.name(), self.as_u8())
    }
}

/// Response status codes (§2.5). Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 0x00.
    Success,
    /// 0x20: persistent memory unavailable.
    MemUnavailable,
    /// 0x21: blocked by a background task, retry later.
    BlockedBgTask,
    /// 0x50: bad opcode.
    BadOpcode,
    /// 0x51: bad request parameter.
    BadRequestParm,
    /// 0x52: bad data parameter.
    BadDataParm,
    /// 0x70: debug action blocked.
    DebugBlocked,
    /// 0xFF: failed.
    Fail,
    /// Any other value.
    Unknown(u8),
}

impl Status {
    /// Every known status.
    pub const ALL: [Status; 8] = [
        Self::Success,
        Self::MemUnavailable,
        Self::BlockedBgTask,
        Self::BadOpcode,
        Self::BadRequestParm,
        Self::BadDataParm,
        Self::DebugBlocked,
        Self::Fail,
    ];

    /// Decodes a wire value.
    pub const fn from_u8(v: u8) -> Self {
        match v {
            0x00 => Self::Success,
            0x20 => Self::MemUnavailable,
            0x21 => Self::BlockedBgTask,
            0x50 => Self::BadOpcode,
            0x51 => Self::BadRequestParm,
            0x52 => Self::BadDataParm,
            0x70 => Self::DebugBlocked,
            0xFF => Self::Fail,
            other => Self::Unknown(other),
        }
    }

    /// The wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Success => 0x00,
            Self::MemUnavailable => 0x20,
            Self::BlockedBgTask => 0x21,
            Self::BadOpcode => 0x50,
            Self::BadRequestParm => 0x51,
            Self::BadDataParm => 0x52,
            Self::DebugBlocked => 0x70,
            Self::Fail => 0xFF,
            Self::Unknown(v) => v,
        }
    }

    /// The spec's name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::MemUnavailable => "MEM_UNAVAILABLE",
            Self::BlockedBgTask => "BLOCKED_BG_TASK",
            Self::BadOpcode => "BAD_OPCODE",
            Self::BadRequestParm => "BAD_REQUEST_PARM",
            Self::BadDataParm => "BAD_DATA_PARM",
            Self::DebugBlocked => "DEBUG_BLOCKED",
            Self::Fail => "FAIL",
            Self::Unknown(_) => "UNKNOWN",
        }
    }

    /// What the status means, for error messages.
    pub const fn description(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::MemUnavailable => "persistent memory unavailable",
            Self::BlockedBgTask => "blocked by a background task, retry later",
            Self::BadOpcode => "the controller does not know this opcode",
            Self::BadRequestParm => "bad request parameter",
            Self::BadDataParm => "bad data parameter",
            Self::DebugBlocked => "debug action blocked",
            Self::Fail => "the command failed",
            Self::Unknown(_) => "status code not in the specification",
        }
    }

    /// True for 0x00.
    pub const fn is_success(self) -> bool {
        matches!(self, Self::Success)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({:#04x}): {}",
            self.name(),
            self.as_u8(),
            self.description()
        )
    }
}

/// The request header word (§2.2): bits 7:0 opcode, bits 31:16 command id, others 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestHeader {
    /// The opcode.
    pub opcode: Opcode,
    /// The command id (a per-area 16-bit counter, first id 1).
    pub id: u16,
}

impl RequestHeader {
    /// The header word.
    pub const fn encode(self) -> u64 {
        (self.opcode.as_u8() as u64) | ((self.id as u64) << 16)
    }

    /// Decodes a header word; bits outside the two fields are ignored.
    pub const fn decode(word: u64) -> Self {
        Self {
            opcode: Opcode::from_u8((word & 0xFF) as u8),
            id: ((word >> 16) & 0xFFFF) as u16,
        }
    }
}

/// The response header word (§2.3): bits 7:0 status, bits 31:16 echoed command id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseHeader {
    /// The status.
    pub status: Status,
    /// The echoed command id.
    pub id: u16,
}

impl ResponseHeader {
    /// The header word.
    pub const fn encode(self) -> u64 {
        (self.status.as_u8() as u64) | ((self.id as u64) << 16)
    }

    /// Decodes a header word.
    pub const fn decode(word: u64) -> Self {
        Self {
            status: Status::from_u8((word & 0xFF) as u8),
            id: ((word >> 16) & 0xFFFF) as u16,
        }
    }
}

/// The next command id after `id`: a 16-bit counter, incremented before each command
/// (first id 1), wrapping (§2.2).
pub const fn next_command_id(id: u16) -> u16 {
    id.wrapping_add(1)
}

/// Offset of parameter word `n` (1..=7) inside a request block: +0x08 × n.
pub const fn param_offset(n: u64) -> u64 {
    8 * n
}

/// Secure Erase response words (§3.11), offsets inside the response block.
pub mod secure_erase {
    /// Accessible pages erased.
    pub const ACCESSIBLE_ERASED: u64 = 0x20;
    /// Accessible pages attempted.
    pub const ACCESSIBLE_ATTEMPTED: u64 = 0x28;
    /// Defective pages erased.
    pub const DEFECTIVE_ERASED: u64 = 0x30;
    /// Defective pages attempted.
    pub const DEFECTIVE_ATTEMPTED: u64 = 0x38;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_match_spec_table_2_6() {
        let table = [
            (Opcode::Heartbeat, 0x00, 100),
            (Opcode::Shutdown, 0x01, 1000),
            (Opcode::FwUpdate, 0x02, 16000),
            (Opcode::FwDebug, 0x03, 2000),
            (Opcode::ErrorLog, 0x04, 2000),
            (Opcode::Smart, 0x05, 100),
            (Opcode::ControllerStats, 0x06, 100),
            (Opcode::ControllerDump, 0x07, 1000),
            (Opcode::CommandCaps, 0x08, 100),
            (Opcode::SecureErase, 0x20, 60000),
        ];
        for (op, v, ms) in table {
            assert_eq!(op.as_u8(), v);
            assert_eq!(Opcode::from_u8(v), op);
            assert_eq!(op.default_timeout(), Duration::from_millis(ms), "{op}");
        }
        assert_eq!(Opcode::SecureErase.area(), CommandArea::NearStorage);
        assert_eq!(Opcode::Smart.area(), CommandArea::Admin);
    }

    #[test]
    fn unknown_opcode_and_status_keep_their_value() {
        assert_eq!(Opcode::from_u8(0x42), Opcode::Unknown(0x42));
        assert_eq!(Opcode::Unknown(0x42).as_u8(), 0x42);
        assert_eq!(Status::from_u8(0x99), Status::Unknown(0x99));
        assert_eq!(Status::Unknown(0x99).as_u8(), 0x99);
        assert!(Status::Unknown(0x99).to_string().contains("0x99"));
        for v in 0..=255u8 {
            assert_eq!(Opcode::from_u8(v).as_u8(), v);
            assert_eq!(Status::from_u8(v).as_u8(), v);
        }
    }

    #[test]
    fn status_codes_match_spec_table_2_5() {
        let table = [
            (Status::Success, 0x00, "SUCCESS"),
            (Status::MemUnavailable, 0x20, "MEM_UNAVAILABLE"),
            (Status::BlockedBgTask, 0x21, "BLOCKED_BG_TASK"),
            (Status::BadOpcode, 0x50, "BAD_OPCODE"),
            (Status::BadRequestParm, 0x51, "BAD_REQUEST_PARM"),
            (Status::BadDataParm, 0x52, "BAD_DATA_PARM"),
            (Status::DebugBlocked, 0x70, "DEBUG_BLOCKED"),
            (Status::Fail, 0xFF, "FAIL"),
        ];
        for (s, v, name) in table {
            assert_eq!(s.as_u8(), v);
            assert_eq!(Status::from_u8(v), s);
            assert_eq!(s.name(), name);
        }
        assert!(Status::Success.is_success());
        assert!(!Status::Fail.is_success());
    }

    #[test]
    fn request_header_layout() {
        let h = RequestHeader {
            opcode: Opcode::ControllerDump,
            id: 0xBEEF,
        };
        assert_eq!(h.encode(), 0xBEEF_0007);
        assert_eq!(RequestHeader::decode(0xBEEF_0007), h);
        // Bits 15:8 and 63:32 are not part of the header.
        assert_eq!(RequestHeader::decode(0xFFFF_FFFF_BEEF_FF07), h);
    }

    #[test]
    fn response_header_layout() {
        let h = ResponseHeader::decode(0x0001_0051);
        assert_eq!(h.status, Status::BadRequestParm);
        assert_eq!(h.id, 1);
        assert_eq!(h.encode(), 0x0001_0051);
    }

    #[test]
    fn command_ids_start_at_one_and_wrap() {
        assert_eq!(next_command_id(0), 1);
        assert_eq!(next_command_id(0xFFFF), 0);
        assert_eq!(param_offset(1), 0x08);
        assert_eq!(param_offset(7), 0x38);
    }

    #[test]
    fn area_layout_split_decision() {
        // §2.1 Decision: request offset in bits 63:32, response in 31:0.
        let l = AreaLayout::decode(0x0000_0400_0000_0440, 0x0000_1000_0000_8000);
        assert_eq!(l.request_offset, 0x400);
        assert_eq!(l.response_offset, 0x440);
        assert_eq!(l.data_offset, 0x1000);
        assert_eq!(l.data_size, 0x8000);
        assert_eq!(l.encode(), (0x0000_0400_0000_0440, 0x0000_1000_0000_8000));
        assert_eq!(l.validate(0x10000), Ok(()));
    }

    #[test]
    fn area_layout_validation() {
        let good = AreaLayout::decode(0x0400_0000_0440, 0x1000_0000_8000);
        let mut l = good;
        l.request_offset = 0x404;
        assert!(matches!(
            l.validate(0x10000),
            Err(LayoutError::Misaligned { .. })
        ));
        let mut l = good;
        l.data_size = 0xF000 + 8;
        assert!(matches!(
            l.validate(0x10000),
            Err(LayoutError::OutOfBounds { .. })
        ));
        let mut l = good;
        l.response_offset = 0x420;
        assert!(matches!(
            l.validate(0x10000),
            Err(LayoutError::Overlap { .. })
        ));
        let mut l = good;
        l.request_offset = 0x100;
        assert!(matches!(
            l.validate(0x10000),
            Err(LayoutError::Overlap { .. })
        ));
        let mut l = good;
        l.data_offset = u64::from(u32::MAX) & !7;
        assert!(matches!(
            l.validate(0x10000),
            Err(LayoutError::OutOfBounds { .. })
        ));
        let mut l = good;
        l.data_size = 8;
        assert!(matches!(
            l.validate(0x10000),
            Err(LayoutError::BufferTooSmall { .. })
        ));
    }

    #[test]
    fn areas_use_their_own_bits() {
        assert_eq!(CommandArea::Admin.doorbell(), Hci::ACRW);
        assert_eq!(CommandArea::NearStorage.doorbell(), Hci::NSCRW);
        assert_eq!(CommandArea::Admin.response_available(), Chi::ACRA);
        assert_eq!(CommandArea::NearStorage.response_available(), Chi::NSCRA);
        assert_eq!(CommandArea::NearStorage.offsets_register(), 0x120);
        assert_eq!(CommandArea::NearStorage.buffer_register(), 0x128);
    }

    #[test]
    fn secure_erase_response_words() {
        assert_eq!(secure_erase::ACCESSIBLE_ERASED, 0x20);
        assert_eq!(secure_erase::ACCESSIBLE_ATTEMPTED, 0x28);
        assert_eq!(secure_erase::DEFECTIVE_ERASED, 0x30);
        assert_eq!(secure_erase::DEFECTIVE_ATTEMPTED, 0x38);
    }
}
