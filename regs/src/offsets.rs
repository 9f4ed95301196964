//! Global MMIO register offsets (spec §1).
//!
//! All offsets are relative to the start of the global MMIO area (§7) and every access is
//! one aligned little-endian 64-bit load or store.

/// Controller→Host Indicator (R): status and event bits, see [`crate::Chi`].
pub const CHI: u64 = 0x000;
/// CHI Clear (W1): writing 1 to a bit clears that bit of CHI. Reads back 0.
pub const CHIC: u64 = 0x008;
/// CHI interrupt Enable (RW).
pub const CHIE: u64 = 0x010;
/// CHI Enable Clear (W1): writing 1 disables that bit in CHIE. Reads back 0.
pub const CHIEC: u64 = 0x018;
/// Host→Controller Indicator (R / W1): doorbells and requests, see [`crate::Hci`].
pub const HCI: u64 = 0x020;
/// HCI Clear (W1): the host withdraws a bit it set. Reads back 0.
pub const HCIC: u64 = 0x028;
/// Interrupt 0 message address ("object handle").
pub const IMA0_OHP: u64 = 0x040;
/// Interrupt 0 companion value (always 0).
pub const IMA0_CFP: u64 = 0x048;
/// Interrupt 1 message address.
pub const IMA1_OHP: u64 = 0x050;
/// Interrupt 1 companion value (always 0).
pub const IMA1_CFP: u64 = 0x058;
/// Admin command area: request offset (bits 63:32) and response offset (bits 31:0).
pub const ACMA_CREQO: u64 = 0x100;
/// Admin command area: data buffer offset (bits 63:32) and size (bits 31:0).
pub const ACMA_CDBO: u64 = 0x108;
/// Near-storage command area: request and response offsets.
pub const NSCMA_CREQO: u64 = 0x120;
/// Near-storage command area: data buffer offset and size.
pub const NSCMA_CDBO: u64 = 0x128;
/// Controller status; contents unknown, never interpreted.
pub const CSTS: u64 = 0x140;
/// Firmware version: 8 ASCII bytes in address order (RAW).
pub const FWVER: u64 = 0x148;
/// Controller capabilities 0, see [`crate::Ccap0`].
pub const CCAP0: u64 = 0x160;
/// Controller capabilities 1, see [`crate::Ccap1`].
pub const CCAP1: u64 = 0x168;

/// The register file is at least this many bytes; unlisted offsets below it read 0.
pub const REGISTER_FILE_SIZE: u64 = 0x300;

/// Size of a request or a response block (8 words).
pub const BLOCK_SIZE: u64 = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_offsets_match_spec_table_1() {
        let table = [
            (CHI, 0x000),
            (CHIC, 0x008),
            (CHIE, 0x010),
            (CHIEC, 0x018),
            (HCI, 0x020),
            (HCIC, 0x028),
            (IMA0_OHP, 0x040),
            (IMA0_CFP, 0x048),
            (IMA1_OHP, 0x050),
            (IMA1_CFP, 0x058),
            (ACMA_CREQO, 0x100),
            (ACMA_CDBO, 0x108),
            (NSCMA_CREQO, 0x120),
            (NSCMA_CDBO, 0x128),
            (CSTS, 0x140),
            (FWVER, 0x148),
            (CCAP0, 0x160),
            (CCAP1, 0x168),
        ];
        for (got, want) in table {
            assert_eq!(got, want);
            assert_eq!(got % 8, 0, "every register is 8-byte aligned");
            assert!(got < REGISTER_FILE_SIZE);
        }
        assert_eq!(REGISTER_FILE_SIZE, 0x300);
        assert_eq!(BLOCK_SIZE, 64);
    }
}
