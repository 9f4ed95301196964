//! Error log entries and their "EL" payload (spec §3.5).

use ocxlpmem_regs::payload::error_log as el;
use ocxlpmem_regs::{PayloadHeader, PayloadId};

/// An error log a test (or the model) queues on the card.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorLogEntry {
    /// Log type (0x00 general .. 0x04 health & performance).
    pub log_type: u8,
    /// Action flags (24 bits; meaningful for type 0x00).
    pub action_flags: u32,
    /// Program reference code.
    pub program_reference_code: u32,
    /// Variable error data (truncated to what fits the data buffer when read).
    pub data: Vec<u8>,
}

/// An entry as queued: the controller stamped it with an id, times, WWID and firmware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueuedLog {
    pub id: u32,
    pub entry: ErrorLogEntry,
    pub power_on_seconds: u32,
    pub timestamp: u64,
    pub wwid: [u8; 16],
    pub fw_revision: [u8; 8],
}

impl QueuedLog {
    /// The payload bytes (header included) for a data buffer of `data_size` bytes: the
    /// variable data is cut so that 8 + L fits the buffer and L fits 16 bits.
    pub fn payload(&self, data_size: u64) -> Vec<u8> {
        let room = data_size
            .saturating_sub(8 + el::MIN_LENGTH)
            .min(0xFFFF - el::MIN_LENGTH) as usize;
        let var = &self.entry.data[..self.entry.data.len().min(room)];
        let length = el::MIN_LENGTH + var.len() as u64;
        let mut p = Vec::with_capacity(8 + length as usize);
        let mut word = |w: u64| p.extend_from_slice(&w.to_le_bytes());
        word(PayloadHeader::encode(PayloadId::ErrorLog, length));
        word((u64::from(self.id) << 32) | u64::from(self.entry.program_reference_code));
        word(el::type_flags(
            self.entry.log_type,
            self.entry.action_flags,
            self.power_on_seconds,
        ));
        word(self.timestamp);
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.wwid[..8]);
        word(u64::from_le_bytes(w));
        w.copy_from_slice(&self.wwid[8..]);
        word(u64::from_le_bytes(w));
        p.extend_from_slice(&self.fw_revision);
        p.extend_from_slice(&[0u8; 16]);
        p.extend_from_slice(var);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_layout_and_truncation() {
        let q = QueuedLog {
            id: 7,
            entry: ErrorLogEntry {
                log_type: 3,
                action_flags: el::ACTION_DUMP,
                program_reference_code: 0xABCD,
                data: vec![0x5A; 100],
            },
            power_on_seconds: 9,
            timestamp: 11,
            wwid: *b"0123456789abcdef",
            fw_revision: *b"SIM 1.0 ",
        };
        let p = q.payload(0x8000);
        assert_eq!(p.len(), 8 + 0x40 + 100);
        assert_eq!(&p[6..8], &[0x4C, 0x45]);
        assert_eq!(p[0x30..0x38], *b"SIM 1.0 ");
        assert_eq!(p[0x48], 0x5A);
        // A 0x60-byte buffer leaves room for 0x18 bytes of variable data.
        let p = q.payload(0x60);
        assert_eq!(p.len(), 0x60);
        assert_eq!(u16::from_le_bytes([p[0], p[1]]), 0x58);
    }
}
