//! Device data is untrusted: every decoder returns a value or a protocol error for any
//! bytes, never a panic or an over-read.

use ocxlpmem_admin::smart::decode_smart;
use ocxlpmem_admin::{ControllerStats, ErrorLogEntry};
use ocxlpmem_regs::{PayloadHeader, PayloadId};
use proptest::prelude::*;

/// Bytes starting with a correct header of `id` and an arbitrary length, so the
/// decoders get past the identifier check and exercise the length handling.
fn with_header(id: PayloadId, length: u64, mut rest: Vec<u8>) -> Vec<u8> {
    let mut b = PayloadHeader::encode(id, length).to_le_bytes().to_vec();
    b.append(&mut rest);
    b
}

proptest! {
    #[test]
    fn error_log_decoder_is_total(len in 0u64..0x2_0000, rest in proptest::collection::vec(any::<u8>(), 0..600)) {
        let b = with_header(PayloadId::ErrorLog, len, rest);
        if let Ok(e) = ErrorLogEntry::decode(&b) {
            prop_assert!(e.variable_data.len() as u64 + 0x48 <= b.len() as u64);
        }
    }

    #[test]
    fn smart_decoder_is_total(len in 0u64..0x1_0000_0000, rest in proptest::collection::vec(any::<u8>(), 0..600)) {
        let b = with_header(PayloadId::Smart, len, rest);
        if let Ok(a) = decode_smart(&b) {
            prop_assert!(8 + 16 * a.len() <= b.len());
        }
    }

    #[test]
    fn stats_decoder_is_total(len in 0u64..0x400, rest in proptest::collection::vec(any::<u8>(), 0..0x200)) {
        let b = with_header(PayloadId::ControllerStats, len, rest);
        let _ = ControllerStats::decode(&b);
    }

    #[test]
    fn decoders_take_any_bytes(b in proptest::collection::vec(any::<u8>(), 0..0x200)) {
        let _ = ErrorLogEntry::decode(&b);
        let _ = decode_smart(&b);
        let _ = ControllerStats::decode(&b);
    }
}
