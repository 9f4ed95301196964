//! Data-buffer payloads (§3): the 64-bit payload header and the fixed layouts.
//!
//! A payload header is LE64 @data+0: bits 63:48 two ASCII characters (high byte first),
//! low bits the number of payload bytes after the header. The width of the length field
//! depends on the payload (EL and CD: bits 15:0; SM and CS: bits 31:0).

use std::fmt;

/// Payload identifiers (§3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadId {
    /// "EL" (0x454C): an error log entry (§3.5).
    ErrorLog,
    /// "SM" (0x534D): SMART attributes (§3.6).
    Smart,
    /// "CS" (0x4353): controller statistics (§3.7).
    ControllerStats,
    /// "CD" (0x4344): a controller dump chunk (§3.8).
    ControllerDump,
}

impl PayloadId {
    /// The 16-bit identifier value.
    pub const fn code(self) -> u16 {
        match self {
            Self::ErrorLog => 0x454C,
            Self::Smart => 0x534D,
            Self::ControllerStats => 0x4353,
            Self::ControllerDump => 0x4344,
        }
    }

    /// The two ASCII characters.
    pub const fn ascii(self) -> [u8; 2] {
        self.code().to_be_bytes()
    }

    /// Width in bits of the header's length field for this payload.
    pub const fn length_bits(self) -> u32 {
        match self {
            Self::ErrorLog | Self::ControllerDump => 16,
            Self::Smart | Self::ControllerStats => 32,
        }
    }
}

impl fmt::Display for PayloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b] = self.ascii();
        write!(f, "\"{}{}\"", a as char, b as char)
    }
}

/// A decoded payload header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadHeader {
    /// Bits 63:48: the identifier as found (may be wrong: compare with [`PayloadId::code`]).
    pub id: u16,
    /// The length field, decoded with the width the expected payload uses.
    pub length: u64,
}

impl PayloadHeader {
    /// Decodes a header word, reading the length with `expected`'s field width.
    pub const fn decode(word: u64, expected: PayloadId) -> Self {
        let mask = (1u64 << expected.length_bits()) - 1;
        Self {
            id: (word >> 48) as u16,
            length: word & mask,
        }
    }

    /// Encodes a header for `id` with `length` payload bytes (truncated to the field).
    pub const fn encode(id: PayloadId, length: u64) -> u64 {
        let mask = (1u64 << id.length_bits()) - 1;
        ((id.code() as u64) << 48) | (length & mask)
    }

    /// The identifier as two characters, for error messages (non-ASCII shown as '?').
    pub fn id_text(&self) -> String {
        self.id
            .to_be_bytes()
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
            .collect()
    }
}

/// Error log entry layout (§3.5), offsets from the start of the data buffer.
pub mod error_log {
    /// Header "EL"; bits 15:0 payload length L.
    pub const HEADER: u64 = 0x00;
    /// Bits 63:32 log identifier; bits 31:0 program reference code.
    pub const IDS: u64 = 0x08;
    /// Bits 63:56 log type; bits 55:32 action flags; bits 31:0 power-on seconds.
    pub const TYPE_FLAGS: u64 = 0x10;
    /// Timestamp relative to the current IPL.
    pub const TIMESTAMP: u64 = 0x18;
    /// WWID word 0.
    pub const WWID0: u64 = 0x20;
    /// WWID word 1.
    pub const WWID1: u64 = 0x28;
    /// Firmware revision, 8 RAW ASCII bytes.
    pub const FW_REVISION: u64 = 0x30;
    /// Start of the variable error data.
    pub const VARIABLE_DATA: u64 = 0x48;
    /// Fixed fields occupy 0x08..0x47, so L >= 0x40 (§3.5 Decision).
    pub const MIN_LENGTH: u64 = 0x40;

    /// Action flag bit 0: RESET.
    pub const ACTION_RESET: u32 = 1 << 0;
    /// Action flag bit 21: CHKFW (check firmware).
    pub const ACTION_CHKFW: u32 = 1 << 21;
    /// Action flag bit 22: REPLACE.
    pub const ACTION_REPLACE: u32 = 1 << 22;
    /// Action flag bit 23: DUMP (take a controller dump).
    pub const ACTION_DUMP: u32 = 1 << 23;

    /// Log type 0x00: general.
    pub const TYPE_GENERAL: u8 = 0x00;
    /// Log type 0x01: predictive failure.
    pub const TYPE_PREDICTIVE_FAILURE: u8 = 0x01;
    /// Log type 0x02: thermal warning.
    pub const TYPE_THERMAL_WARNING: u8 = 0x02;
    /// Log type 0x03: data loss.
    pub const TYPE_DATA_LOSS: u8 = 0x03;
    /// Log type 0x04: health & performance.
    pub const TYPE_HEALTH_PERFORMANCE: u8 = 0x04;

    /// Name of a log type.
    pub const fn type_name(t: u8) -> &'static str {
        match t {
            TYPE_GENERAL => "general",
            TYPE_PREDICTIVE_FAILURE => "predictive_failure",
            TYPE_THERMAL_WARNING => "thermal_warning",
            TYPE_DATA_LOSS => "data_loss",
            TYPE_HEALTH_PERFORMANCE => "health_performance",
            _ => "unknown",
        }
    }

    /// Splits the IDS word into (log identifier, program reference code).
    pub const fn split_ids(word: u64) -> (u32, u32) {
        ((word >> 32) as u32, word as u32)
    }

    /// Splits the TYPE_FLAGS word into (log type, action flags, power-on seconds).
    pub const fn split_type_flags(word: u64) -> (u8, u32, u32) {
        (
            (word >> 56) as u8,
            ((word >> 32) & 0xFF_FFFF) as u32,
            word as u32,
        )
    }

    /// Builds the TYPE_FLAGS word.
    pub const fn type_flags(log_type: u8, action_flags: u32, power_on_seconds: u32) -> u64 {
        ((log_type as u64) << 56)
            | (((action_flags & 0xFF_FFFF) as u64) << 32)
            | power_on_seconds as u64
    }
}

/// SMART layout (§3.6).
pub mod smart {
    /// Size of one attribute (two LE64 words).
    pub const ATTRIBUTE_SIZE: u64 = 16;
    /// Attribute id 0x09: power-on hours (raw = hours).
    pub const ID_POWER_ON_HOURS: u8 = 0x09;
    /// Attribute id 0xC2: temperature (raw = degrees Celsius).
    pub const ID_TEMPERATURE: u8 = 0xC2;
    /// Attribute id 0xCA: life remaining (raw = percent).
    pub const ID_LIFE_REMAINING: u8 = 0xCA;

    /// One SMART attribute.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Attribute {
        /// Bits 63:56 of word 0.
        pub id: u8,
        /// Bits 55:40.
        pub flags: u16,
        /// Bits 39:32: current (normalised) value.
        pub current: u8,
        /// Bits 31:24.
        pub threshold: u8,
        /// Bits 23:16.
        pub worst: u8,
        /// Word 1.
        pub raw: u64,
    }

    impl Attribute {
        /// Decodes the two words.
        pub const fn decode(word0: u64, word1: u64) -> Self {
            Self {
                id: (word0 >> 56) as u8,
                flags: (word0 >> 40) as u16,
                current: (word0 >> 32) as u8,
                threshold: (word0 >> 24) as u8,
                worst: (word0 >> 16) as u8,
                raw: word1,
            }
        }

        /// Encodes the two words.
        pub const fn encode(&self) -> [u64; 2] {
            [
                ((self.id as u64) << 56)
                    | ((self.flags as u64) << 40)
                    | ((self.current as u64) << 32)
                    | ((self.threshold as u64) << 24)
                    | ((self.worst as u64) << 16),
                self.raw,
            ]
        }

        /// Name of a known attribute id.
        pub const fn name(&self) -> &'static str {
            match self.id {
                ID_POWER_ON_HOURS => "power_on_hours",
                ID_TEMPERATURE => "temperature",
                ID_LIFE_REMAINING => "life_remaining",
                _ => "unknown",
            }
        }
    }
}

/// Controller statistics layout (§3.7), offsets from the start of the data buffer.
pub mod stats {
    /// Payload length in the "CS" header.
    pub const LENGTH: u64 = 0x140;
    /// Block 1 header: bits 63:56 id, bits 31:0 length.
    pub const BLOCK1_HEADER: u64 = 0x08;
    /// Block 1 id.
    pub const BLOCK1_ID: u8 = 0x01;
    /// Block 1 length.
    pub const BLOCK1_LENGTH: u32 = 0x38;
    /// Bits 63:32 reset count; bits 31:0 seconds since last reset.
    pub const RESET: u64 = 0x10;
    /// Bits 63:32 power-on uptime (s); bits 7:0 life remaining (%).
    pub const UPTIME_LIFE: u64 = 0x18;
    /// Block 2 header.
    pub const BLOCK2_HEADER: u64 = 0x48;
    /// Block 2 id.
    pub const BLOCK2_ID: u8 = 0x02;
    /// Block 2 length.
    pub const BLOCK2_LENGTH: u32 = 0xF8;
    /// Bits 7:0 critical resource utilisation (%).
    pub const CRITICAL_RESOURCE: u64 = 0x50;
    /// Host load count.
    pub const HOST_LOAD_COUNT: u64 = 0x58;
    /// Host store count.
    pub const HOST_STORE_COUNT: u64 = 0x60;
    /// Host load duration (ns, cumulative).
    pub const HOST_LOAD_DURATION: u64 = 0x68;
    /// Host store duration (ns, cumulative).
    pub const HOST_STORE_DURATION: u64 = 0x70;
    /// Media read count.
    pub const MEDIA_READ_COUNT: u64 = 0x98;
    /// Media write count.
    pub const MEDIA_WRITE_COUNT: u64 = 0xA0;
    /// Media read duration (ns, cumulative).
    pub const MEDIA_READ_DURATION: u64 = 0xA8;
    /// Media write duration (ns, cumulative).
    pub const MEDIA_WRITE_DURATION: u64 = 0xB0;
    /// Cache read hit count.
    pub const CACHE_READ_HIT_COUNT: u64 = 0xD8;
    /// Cache write hit count.
    pub const CACHE_WRITE_HIT_COUNT: u64 = 0xE0;
    /// Fast write count.
    pub const FAST_WRITE_COUNT: u64 = 0xE8;
    /// Total bytes of the payload including the header.
    pub const TOTAL: u64 = 8 + LENGTH;

    /// A block header word.
    pub const fn block_header(id: u8, length: u32) -> u64 {
        ((id as u64) << 56) | length as u64
    }

    /// Splits a block header into (id, length).
    pub const fn split_block_header(word: u64) -> (u8, u32) {
        ((word >> 56) as u8, word as u32)
    }
}

/// Parameter encodings of commands that take parameters (§3.3, §3.4, §3.8).
pub mod params {
    /// FW_UPDATE block size limit.
    pub const FW_UPDATE_MAX_BLOCK: u64 = 32 * 1024;
    /// Largest controller dump chunk the simulator conventions allow (§10).
    pub const DUMP_MAX_CHUNK: u64 = 0xFFF8;

    /// FW_UPDATE param +0x08: (offset_in_image << 32) | block_size.
    pub const fn fw_update(offset: u32, block_size: u32) -> u64 {
        ((offset as u64) << 32) | block_size as u64
    }

    /// CONTROLLER_DUMP param +0x08: (offset << 32) | chunk_size.
    pub const fn dump_chunk(offset: u32, chunk_size: u32) -> u64 {
        ((offset as u64) << 32) | chunk_size as u64
    }

    /// Splits an (offset << 32) | size word.
    pub const fn split_offset_size(word: u64) -> (u32, u32) {
        ((word >> 32) as u32, word as u32)
    }

    /// FW_DEBUG param +0x08: (action << 56) | (function_code << 40).
    pub const fn fw_debug(action: u8, function_code: u16) -> u64 {
        ((action as u64) << 56) | ((function_code as u64) << 40)
    }

    /// Splits FW_DEBUG param +0x08 into (action, function code).
    pub const fn split_fw_debug(word: u64) -> (u8, u16) {
        ((word >> 56) as u8, (word >> 40) as u16)
    }

    /// FW_DEBUG action 0x01: read controller memory.
    pub const FW_DEBUG_READ_MEMORY: u8 = 0x01;
    /// FW_DEBUG action 0x02: write controller memory.
    pub const FW_DEBUG_WRITE_MEMORY: u8 = 0x02;
    /// FW_DEBUG action 0x03: enable function.
    pub const FW_DEBUG_ENABLE_FUNCTION: u8 = 0x03;
    /// FW_DEBUG action 0x04: disable function.
    pub const FW_DEBUG_DISABLE_FUNCTION: u8 = 0x04;
    /// FW_DEBUG action 0x05: get persistent error log.
    pub const FW_DEBUG_GET_PERSISTENT_LOG: u8 = 0x05;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_identifiers_are_the_spec_ascii() {
        assert_eq!(PayloadId::ErrorLog.code(), 0x454C);
        assert_eq!(&PayloadId::ErrorLog.ascii(), b"EL");
        assert_eq!(PayloadId::Smart.code(), 0x534D);
        assert_eq!(&PayloadId::Smart.ascii(), b"SM");
        assert_eq!(PayloadId::ControllerStats.code(), 0x4353);
        assert_eq!(&PayloadId::ControllerStats.ascii(), b"CS");
        assert_eq!(PayloadId::ControllerDump.code(), 0x4344);
        assert_eq!(&PayloadId::ControllerDump.ascii(), b"CD");
        assert_eq!(PayloadId::Smart.to_string(), "\"SM\"");
    }

    #[test]
    fn length_field_width_per_payload() {
        // EL and CD: bits 15:0; SM and CS: bits 31:0.
        let w = (0x454Cu64 << 48) | 0xABCD_1234;
        assert_eq!(PayloadHeader::decode(w, PayloadId::ErrorLog).length, 0x1234);
        assert_eq!(
            PayloadHeader::decode(w, PayloadId::Smart).length,
            0xABCD_1234
        );
        let w = PayloadHeader::encode(PayloadId::ControllerStats, 0x140);
        assert_eq!(w, 0x4353_0000_0000_0140);
        let h = PayloadHeader::decode(w, PayloadId::ControllerStats);
        assert_eq!(h.id, PayloadId::ControllerStats.code());
        assert_eq!(h.id_text(), "CS");
        assert_eq!(
            PayloadHeader::decode(0xFF00 << 48, PayloadId::Smart).id_text(),
            "??"
        );
    }

    #[test]
    fn error_log_fixed_fields_decision() {
        assert_eq!(error_log::FW_REVISION, 0x30);
        assert_eq!(error_log::VARIABLE_DATA, 0x48);
        assert_eq!(error_log::MIN_LENGTH, 0x40);
        assert_eq!(error_log::VARIABLE_DATA - 8, error_log::MIN_LENGTH);
        let w = error_log::type_flags(0x04, error_log::ACTION_DUMP | error_log::ACTION_RESET, 77);
        assert_eq!(w, 0x0480_0001_0000_004D);
        assert_eq!(error_log::split_type_flags(w), (0x04, (1 << 23) | 1, 77));
        assert_eq!(
            error_log::split_ids(0x1111_2222_3333_4444),
            (0x1111_2222, 0x3333_4444)
        );
        assert_eq!(error_log::ACTION_CHKFW, 1 << 21);
        assert_eq!(error_log::ACTION_REPLACE, 1 << 22);
        assert_eq!(error_log::type_name(3), "data_loss");
        assert_eq!(error_log::type_name(9), "unknown");
    }

    #[test]
    fn smart_attribute_bit_ranges() {
        let a = smart::Attribute {
            id: 0xC2,
            flags: 0xBEEF,
            current: 0x64,
            threshold: 0x0A,
            worst: 0x50,
            raw: 41,
        };
        let [w0, w1] = a.encode();
        assert_eq!(w0, 0xC2BE_EF64_0A50_0000);
        assert_eq!(w1, 41);
        assert_eq!(smart::Attribute::decode(w0, w1), a);
        assert_eq!(a.name(), "temperature");
    }

    #[test]
    fn stats_offsets_match_spec_table_3_7() {
        use stats::*;
        assert_eq!(LENGTH, 0x140);
        assert_eq!(BLOCK1_HEADER, 0x08);
        assert_eq!(BLOCK1_LENGTH, 0x38);
        assert_eq!(BLOCK2_HEADER, 0x48);
        assert_eq!(BLOCK2_LENGTH, 0xF8);
        // Block 2 starts right after block 1 (header + 0x38 bytes + its own header word).
        assert_eq!(BLOCK1_HEADER + 8 + u64::from(BLOCK1_LENGTH), BLOCK2_HEADER);
        assert_eq!(BLOCK2_HEADER + 8 + u64::from(BLOCK2_LENGTH), TOTAL);
        let offs = [
            (RESET, 0x10),
            (UPTIME_LIFE, 0x18),
            (CRITICAL_RESOURCE, 0x50),
            (HOST_LOAD_COUNT, 0x58),
            (HOST_STORE_COUNT, 0x60),
            (HOST_LOAD_DURATION, 0x68),
            (HOST_STORE_DURATION, 0x70),
            (MEDIA_READ_COUNT, 0x98),
            (MEDIA_WRITE_COUNT, 0xA0),
            (MEDIA_READ_DURATION, 0xA8),
            (MEDIA_WRITE_DURATION, 0xB0),
            (CACHE_READ_HIT_COUNT, 0xD8),
            (CACHE_WRITE_HIT_COUNT, 0xE0),
            (FAST_WRITE_COUNT, 0xE8),
        ];
        for (got, want) in offs {
            assert_eq!(got, want);
        }
        assert_eq!(
            block_header(BLOCK2_ID, BLOCK2_LENGTH),
            0x0200_0000_0000_00F8
        );
        assert_eq!(split_block_header(0x0100_0000_0000_0038), (1, 0x38));
    }

    #[test]
    fn parameter_encodings() {
        assert_eq!(params::fw_update(0x8000, 0x8000), 0x0000_8000_0000_8000);
        assert_eq!(params::dump_chunk(0x10, 0x100), 0x0000_0010_0000_0100);
        assert_eq!(
            params::split_offset_size(0x0000_0010_0000_0100),
            (0x10, 0x100)
        );
        assert_eq!(params::fw_debug(0x05, 0x1234), 0x0512_3400_0000_0000);
        assert_eq!(params::split_fw_debug(0x0512_3400_0000_0000), (5, 0x1234));
        assert_eq!(params::FW_UPDATE_MAX_BLOCK, 32768);
    }
}
