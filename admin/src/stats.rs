//! CONTROLLER_STATS (§3.7): every id and length validated, then decoded.

use crate::admin::Admin;
use crate::error::{AdminError, ProtocolError};
use crate::table;
use ocxlpmem_regs::payload::stats as cs;
use ocxlpmem_regs::{Opcode, PayloadHeader, PayloadId};
use serde::Serialize;

/// The controller statistics (§3.7). Durations are cumulative nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ControllerStats {
    /// Bits 63:32 of +0x10.
    pub reset_count: u32,
    /// Bits 31:0 of +0x10.
    pub seconds_since_reset: u32,
    /// Bits 63:32 of +0x18.
    pub power_on_uptime_seconds: u32,
    /// Bits 7:0 of +0x18.
    pub life_remaining_percent: u8,
    /// Bits 7:0 of +0x50.
    pub critical_resource_utilisation_percent: u8,
    /// +0x58.
    pub host_load_count: u64,
    /// +0x60.
    pub host_store_count: u64,
    /// +0x68.
    pub host_load_duration_ns: u64,
    /// +0x70.
    pub host_store_duration_ns: u64,
    /// +0x98.
    pub media_read_count: u64,
    /// +0xA0.
    pub media_write_count: u64,
    /// +0xA8.
    pub media_read_duration_ns: u64,
    /// +0xB0.
    pub media_write_duration_ns: u64,
    /// +0xD8.
    pub cache_read_hit_count: u64,
    /// +0xE0.
    pub cache_write_hit_count: u64,
    /// +0xE8.
    pub fast_write_count: u64,
}

impl ControllerStats {
    /// Decodes a "CS" payload (header included), checking in order: identifier, total
    /// length (0x140), then each block's id and length.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let word = |off: u64| -> u64 {
            let at = usize::try_from(off).unwrap_or(usize::MAX);
            bytes
                .get(at..at.saturating_add(8))
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_le_bytes)
        };
        let h = PayloadHeader::decode(word(0), PayloadId::ControllerStats);
        if h.id != PayloadId::ControllerStats.code() {
            return Err(ProtocolError::WrongPayloadId {
                expected: PayloadId::ControllerStats,
                seen: h.id_text(),
                seen_code: h.id,
            });
        }
        if h.length != cs::LENGTH {
            return Err(ProtocolError::BadField {
                what: "statistics payload length",
                expected: cs::LENGTH,
                seen: h.length,
            });
        }
        if (bytes.len() as u64) < cs::TOTAL {
            return Err(ProtocolError::LengthBeyondBuffer {
                what: "statistics payload length",
                length: cs::LENGTH,
                limit: (bytes.len() as u64).saturating_sub(8),
            });
        }
        for (what_id, what_len, off, id, len) in [
            (
                "statistics block 1 id",
                "statistics block 1 length",
                cs::BLOCK1_HEADER,
                cs::BLOCK1_ID,
                cs::BLOCK1_LENGTH,
            ),
            (
                "statistics block 2 id",
                "statistics block 2 length",
                cs::BLOCK2_HEADER,
                cs::BLOCK2_ID,
                cs::BLOCK2_LENGTH,
            ),
        ] {
            let (seen_id, seen_len) = cs::split_block_header(word(off));
            if seen_id != id {
                return Err(ProtocolError::BadField {
                    what: what_id,
                    expected: u64::from(id),
                    seen: u64::from(seen_id),
                });
            }
            if seen_len != len {
                return Err(ProtocolError::BadField {
                    what: what_len,
                    expected: u64::from(len),
                    seen: u64::from(seen_len),
                });
            }
        }
        let reset = word(cs::RESET);
        let uptime = word(cs::UPTIME_LIFE);
        Ok(Self {
            reset_count: (reset >> 32) as u32,
            seconds_since_reset: reset as u32,
            power_on_uptime_seconds: (uptime >> 32) as u32,
            life_remaining_percent: uptime as u8,
            critical_resource_utilisation_percent: word(cs::CRITICAL_RESOURCE) as u8,
            host_load_count: word(cs::HOST_LOAD_COUNT),
            host_store_count: word(cs::HOST_STORE_COUNT),
            host_load_duration_ns: word(cs::HOST_LOAD_DURATION),
            host_store_duration_ns: word(cs::HOST_STORE_DURATION),
            media_read_count: word(cs::MEDIA_READ_COUNT),
            media_write_count: word(cs::MEDIA_WRITE_COUNT),
            media_read_duration_ns: word(cs::MEDIA_READ_DURATION),
            media_write_duration_ns: word(cs::MEDIA_WRITE_DURATION),
            cache_read_hit_count: word(cs::CACHE_READ_HIT_COUNT),
            cache_write_hit_count: word(cs::CACHE_WRITE_HIT_COUNT),
            fast_write_count: word(cs::FAST_WRITE_COUNT),
        })
    }
}

impl Admin {
    /// CONTROLLER_STATS (§3.7), validated and decoded.
    pub fn stats(&self) -> Result<ControllerStats, AdminError> {
        let mut buf = [0u8; cs::TOTAL as usize];
        let c = self.send(&table::CONTROLLER_STATS, &[0], &[], &mut buf)?;
        ControllerStats::decode(buf.get(..c.len).unwrap_or_default()).map_err(|kind| {
            AdminError::Protocol {
                opcode: Opcode::ControllerStats,
                kind,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> Vec<u8> {
        let mut b = vec![0u8; cs::TOTAL as usize];
        let mut put = |off: u64, v: u64| {
            let at = off as usize;
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        };
        put(
            0,
            PayloadHeader::encode(PayloadId::ControllerStats, cs::LENGTH),
        );
        put(
            cs::BLOCK1_HEADER,
            cs::block_header(cs::BLOCK1_ID, cs::BLOCK1_LENGTH),
        );
        put(
            cs::BLOCK2_HEADER,
            cs::block_header(cs::BLOCK2_ID, cs::BLOCK2_LENGTH),
        );
        put(cs::RESET, (3 << 32) | 600);
        put(cs::UPTIME_LIFE, (7200 << 32) | 97);
        put(cs::CRITICAL_RESOURCE, 12);
        put(cs::HOST_LOAD_COUNT, 1);
        put(cs::HOST_STORE_COUNT, 2);
        put(cs::HOST_LOAD_DURATION, 3);
        put(cs::HOST_STORE_DURATION, 4);
        put(cs::MEDIA_READ_COUNT, 5);
        put(cs::MEDIA_WRITE_COUNT, 6);
        put(cs::MEDIA_READ_DURATION, 7);
        put(cs::MEDIA_WRITE_DURATION, 8);
        put(cs::CACHE_READ_HIT_COUNT, 9);
        put(cs::CACHE_WRITE_HIT_COUNT, 10);
        put(cs::FAST_WRITE_COUNT, 11);
        b
    }

    #[test]
    fn decodes_every_field_at_its_offset() {
        let s = ControllerStats::decode(&payload()).unwrap();
        assert_eq!((s.reset_count, s.seconds_since_reset), (3, 600));
        assert_eq!(
            (s.power_on_uptime_seconds, s.life_remaining_percent),
            (7200, 97)
        );
        assert_eq!(s.critical_resource_utilisation_percent, 12);
        let all = [
            s.host_load_count,
            s.host_store_count,
            s.host_load_duration_ns,
            s.host_store_duration_ns,
            s.media_read_count,
            s.media_write_count,
            s.media_read_duration_ns,
            s.media_write_duration_ns,
            s.cache_read_hit_count,
            s.cache_write_hit_count,
            s.fast_write_count,
        ];
        assert_eq!(all, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    }

    #[test]
    fn every_id_and_length_is_checked() {
        let cases: [(u64, u64, &str); 5] = [
            (
                0,
                PayloadHeader::encode(PayloadId::ControllerStats, 0x138),
                "statistics payload length",
            ),
            (
                cs::BLOCK1_HEADER,
                cs::block_header(9, cs::BLOCK1_LENGTH),
                "statistics block 1 id",
            ),
            (
                cs::BLOCK1_HEADER,
                cs::block_header(cs::BLOCK1_ID, 0x30),
                "statistics block 1 length",
            ),
            (
                cs::BLOCK2_HEADER,
                cs::block_header(1, cs::BLOCK2_LENGTH),
                "statistics block 2 id",
            ),
            (
                cs::BLOCK2_HEADER,
                cs::block_header(cs::BLOCK2_ID, 0xF0),
                "statistics block 2 length",
            ),
        ];
        for (off, v, what) in cases {
            let mut b = payload();
            b[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
            match ControllerStats::decode(&b) {
                Err(ProtocolError::BadField { what: w, .. }) => assert_eq!(w, what),
                other => panic!("{what}: {other:?}"),
            }
        }
        let mut b = payload();
        b[..8].copy_from_slice(&PayloadHeader::encode(PayloadId::Smart, cs::LENGTH).to_le_bytes());
        assert!(matches!(
            ControllerStats::decode(&b),
            Err(ProtocolError::WrongPayloadId { .. })
        ));
        let b = payload();
        assert!(matches!(
            ControllerStats::decode(&b[..0x100]),
            Err(ProtocolError::LengthBeyondBuffer { .. })
        ));
    }
}
