//! ERRLOG (§3.5): decoding one entry, draining the queue, and the health & performance
//! request (§3.9) whose answer arrives as a type-0x04 entry.

use crate::admin::Admin;
use crate::error::{AdminError, ProtocolError};
use crate::table;
use crate::wait::poll_until;
use ocxlpmem_regs::payload::error_log as el;
use ocxlpmem_regs::{Hci, Opcode, PayloadHeader, PayloadId, Status};
use serde::Serialize;
use std::time::Duration;

/// Upper bound on entries one [`Admin::error_log_all`] drains, so a card whose ELA never
/// drops cannot keep the caller forever.
pub const MAX_DRAIN: usize = 4096;

/// Largest EL payload: the length field is 16 bits (§3.5).
const MAX_ENTRY_BYTES: u64 = 8 + 0xFFFF;

/// One decoded error log entry (§3.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorLogEntry {
    /// Bits 63:32 of +0x08.
    pub log_id: u32,
    /// Bits 31:0 of +0x08: program reference code.
    pub program_reference_code: u32,
    /// Bits 63:56 of +0x10.
    pub log_type: u8,
    /// The type's name (`general`, `predictive_failure`, ..., `unknown`).
    pub log_type_name: &'static str,
    /// Bits 55:32 of +0x10 (meaningful only for type 0x00).
    pub action_flags: u32,
    /// Names of the known action flags set (`reset`, `check_firmware`, `replace`, `dump`).
    pub actions: Vec<&'static str>,
    /// Bits 31:0 of +0x10: power-on seconds at the time of the error.
    pub power_on_seconds: u32,
    /// +0x18: timestamp relative to the current IPL (opaque).
    pub timestamp: u64,
    /// WWID words 0 and 1 (+0x20, +0x28).
    pub wwid: [u64; 2],
    /// Firmware revision, 8 RAW bytes (+0x30).
    pub fw_revision: [u8; 8],
    /// Variable error data (L - 0x40 bytes at +0x48).
    pub variable_data: Vec<u8>,
}

impl ErrorLogEntry {
    /// The WWID as 32 hex digits: word 0, then word 1.
    pub fn wwid_hex(&self) -> String {
        format!("{:016x}{:016x}", self.wwid[0], self.wwid[1])
    }

    /// The firmware revision as text (non-printable bytes shown as '.', trailing
    /// spaces and NULs trimmed).
    pub fn fw_revision_text(&self) -> String {
        let s: String = self
            .fw_revision
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        s.trim_end_matches([' ', '.']).to_string()
    }

    /// True for a health & performance entry (type 0x04, §3.9).
    pub fn is_health(&self) -> bool {
        self.log_type == el::TYPE_HEALTH_PERFORMANCE
    }

    /// Decodes an entry from the data-buffer bytes (header included). The header must be
    /// "EL", its length at least 0x40 and within `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let word = |off: u64| -> u64 {
            let at = usize::try_from(off).unwrap_or(usize::MAX);
            bytes
                .get(at..at.saturating_add(8))
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_le_bytes)
        };
        let h = PayloadHeader::decode(word(el::HEADER), PayloadId::ErrorLog);
        if h.id != PayloadId::ErrorLog.code() {
            return Err(ProtocolError::WrongPayloadId {
                expected: PayloadId::ErrorLog,
                seen: h.id_text(),
                seen_code: h.id,
            });
        }
        if h.length < el::MIN_LENGTH {
            return Err(ProtocolError::LengthTooShort {
                what: "error log length",
                length: h.length,
                minimum: el::MIN_LENGTH,
            });
        }
        let have = (bytes.len() as u64).saturating_sub(8);
        if h.length > have {
            return Err(ProtocolError::LengthBeyondBuffer {
                what: "error log length",
                length: h.length,
                limit: have,
            });
        }
        let (log_id, program_reference_code) = el::split_ids(word(el::IDS));
        let (log_type, action_flags, power_on_seconds) = el::split_type_flags(word(el::TYPE_FLAGS));
        let actions = [
            (el::ACTION_RESET, "reset"),
            (el::ACTION_CHKFW, "check_firmware"),
            (el::ACTION_REPLACE, "replace"),
            (el::ACTION_DUMP, "dump"),
        ]
        .iter()
        .filter(|(bit, _)| action_flags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
        // Bounded above: 8 + length <= bytes.len().
        let end = usize::try_from(8 + h.length).unwrap_or(usize::MAX);
        let var_start = usize::try_from(el::VARIABLE_DATA).unwrap_or(usize::MAX);
        let variable_data = bytes.get(var_start..end).unwrap_or_default().to_vec();
        Ok(Self {
            log_id,
            program_reference_code,
            log_type,
            log_type_name: el::type_name(log_type),
            action_flags,
            actions,
            power_on_seconds,
            timestamp: word(el::TIMESTAMP),
            wwid: [word(el::WWID0), word(el::WWID1)],
            fw_revision: word(el::FW_REVISION).to_le_bytes(),
            variable_data,
        })
    }
}

/// What [`Admin::wait_health_log`] found: the health entry and any other entries that
/// had to be popped on the way (they are not lost).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthLogWait {
    /// The type-0x04 entry.
    pub health: ErrorLogEntry,
    /// Entries of other types popped before it, in queue order.
    pub drained: Vec<ErrorLogEntry>,
}

impl Admin {
    /// Pops one error log entry, or `None` when CHI.ELA says the queue is empty.
    pub fn error_log_next(&self) -> Result<Option<ErrorLogEntry>, AdminError> {
        let _g = self.errlog_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.pop_error_log()
    }

    /// Drains every queued entry (at most [`MAX_DRAIN`]), oldest first.
    pub fn error_log_all(&self) -> Result<Vec<ErrorLogEntry>, AdminError> {
        let _g = self.errlog_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = Vec::new();
        while all.len() < MAX_DRAIN {
            match self.pop_error_log()? {
                Some(e) => all.push(e),
                None => break,
            }
        }
        Ok(all)
    }

    /// Asks the controller for health & performance data (§3.9: sets HCI.CHPD). The
    /// answer arrives later as a type-0x04 error log entry: see [`Admin::wait_health_log`].
    pub fn request_health(&self) -> Result<(), AdminError> {
        self.set_hci(Hci::CHPD)
    }

    /// Waits up to `timeout` for a type-0x04 entry, popping the queue as entries arrive.
    pub fn wait_health_log(&self, timeout: Duration) -> Result<HealthLogWait, AdminError> {
        let _g = self.errlog_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut drained = Vec::new();
        let found = poll_until(&self.options().poll, timeout, || {
            while let Some(e) = self.pop_error_log()? {
                if e.is_health() {
                    return Ok(Some(e));
                }
                drained.push(e);
            }
            Ok(None)
        })?;
        match found {
            Ok(health) => Ok(HealthLogWait { health, drained }),
            Err(waited) => {
                for e in &drained {
                    tracing::warn!(
                        log_id = e.log_id,
                        log_type = e.log_type,
                        "error log popped while waiting for health data"
                    );
                }
                Err(AdminError::WaitTimeout {
                    what: "a health & performance error log (type 0x04)",
                    register: ocxlpmem_regs::offsets::CHI,
                    waited,
                    last: self.read_chi()?.bits(),
                })
            }
        }
    }

    /// Pops one entry; the caller holds `errlog_lock`.
    fn pop_error_log(&self) -> Result<Option<ErrorLogEntry>, AdminError> {
        if !self.read_chi()?.ela() {
            return Ok(None);
        }
        let cap = self.admin.layout.data_size.min(MAX_ENTRY_BYTES);
        let mut buf = vec![0u8; usize::try_from(cap).unwrap_or(0)];
        match self.send(&table::ERRLOG, &[], &[], &mut buf) {
            Ok(c) => {
                buf.truncate(c.len);
                ErrorLogEntry::decode(&buf)
                    .map(Some)
                    .map_err(|kind| AdminError::Protocol {
                        opcode: Opcode::ErrorLog,
                        kind,
                    })
            }
            // The queue emptied between the ELA check and the command (§10: FAIL when
            // ELA = 0): nothing to read, not an error.
            Err(AdminError::Status {
                status: Status::Fail,
                ..
            }) if !self.read_chi()?.ela() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_bytes(var: &[u8]) -> Vec<u8> {
        let l = el::MIN_LENGTH + var.len() as u64;
        let mut b = Vec::new();
        let words = [
            PayloadHeader::encode(PayloadId::ErrorLog, l),
            0x0000_0042_0000_BEEF,
            el::type_flags(0x00, el::ACTION_DUMP | el::ACTION_RESET, 3600),
            0x1234,
            0x0011_2233_4455_6677,
            0x8899_AABB_CCDD_EEFF,
            u64::from_le_bytes(*b"FW 1.2  "),
            0,
            0,
        ];
        for w in words {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(var);
        b
    }

    #[test]
    fn decodes_every_fixed_field_and_the_variable_data() {
        let e = ErrorLogEntry::decode(&entry_bytes(b"variable!")).unwrap();
        assert_eq!(e.log_id, 0x42);
        assert_eq!(e.program_reference_code, 0xBEEF);
        assert_eq!(e.log_type, 0);
        assert_eq!(e.log_type_name, "general");
        assert_eq!(e.actions, ["reset", "dump"]);
        assert_eq!(e.power_on_seconds, 3600);
        assert_eq!(e.timestamp, 0x1234);
        assert_eq!(e.wwid_hex(), "00112233445566778899aabbccddeeff");
        assert_eq!(e.fw_revision_text(), "FW 1.2");
        assert_eq!(e.variable_data, b"variable!");
        assert!(!e.is_health());
    }

    #[test]
    fn length_below_the_fixed_fields_is_a_protocol_error() {
        let mut b = entry_bytes(&[]);
        b[..8].copy_from_slice(&PayloadHeader::encode(PayloadId::ErrorLog, 0x38).to_le_bytes());
        assert!(matches!(
            ErrorLogEntry::decode(&b),
            Err(ProtocolError::LengthTooShort { length: 0x38, .. })
        ));
    }

    #[test]
    fn length_past_the_bytes_is_a_protocol_error_not_an_over_read() {
        let mut b = entry_bytes(&[1, 2, 3]);
        b[..8].copy_from_slice(&PayloadHeader::encode(PayloadId::ErrorLog, 0x100).to_le_bytes());
        assert!(matches!(
            ErrorLogEntry::decode(&b),
            Err(ProtocolError::LengthBeyondBuffer { length: 0x100, .. })
        ));
        assert!(ErrorLogEntry::decode(&[]).is_err());
    }

    #[test]
    fn wrong_identifier_is_a_protocol_error() {
        let mut b = entry_bytes(&[]);
        b[..8].copy_from_slice(&PayloadHeader::encode(PayloadId::Smart, 0x40).to_le_bytes());
        assert!(matches!(
            ErrorLogEntry::decode(&b),
            Err(ProtocolError::WrongPayloadId {
                seen_code: 0x534D,
                ..
            })
        ));
    }
}
