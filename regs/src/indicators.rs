//! The indicator registers CHI (§1.1) and HCI (§1.2) as value types.
//!
//! CHIC, CHIE and CHIEC use the CHI bit positions; HCIC uses the HCI positions. The
//! `*_MASK`-style associated constants are what the driver writes to the W1 registers
//! (only the mask it means, never a read-modify-write: §1 Decision).

use bitfield::bitfield;

bitfield! {
    /// Controller→Host Indicator (§1.1), read at [`crate::offsets::CHI`].
    ///
    /// A read of all ones is never a status: it means the device is gone or frozen
    /// ([`Chi::is_all_ones`]).
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Chi(u64);
    impl Debug;
    /// Bit 0, ACRA: Admin Command Response Available.
    pub acra, set_acra: 0;
    /// Bit 1, NSCRA: Near-Storage Command Response Available.
    pub nscra, set_nscra: 1;
    /// Bit 4, CRDY: Controller Ready.
    pub crdy, set_crdy: 4;
    /// Bit 5, CFFS: Controller Firmware Fatal State.
    pub cffs, set_cffs: 5;
    /// Bit 6, MA: Memory Available.
    pub ma, set_ma: 6;
    /// Bit 7, ELA: Error Log Available (at least one error log is queued).
    pub ela, set_ela: 7;
    /// Bit 8, CDA: Controller Dump Available.
    pub cda, set_cda: 8;
    /// Bit 9, CHFS: Controller Hardware Fatal State.
    pub chfs, set_chfs: 9;
}

impl Chi {
    /// Admin Command Response Available.
    pub const ACRA: u64 = 1 << 0;
    /// Near-Storage Command Response Available.
    pub const NSCRA: u64 = 1 << 1;
    /// Controller Ready.
    pub const CRDY: u64 = 1 << 4;
    /// Controller Firmware Fatal State.
    pub const CFFS: u64 = 1 << 5;
    /// Memory Available.
    pub const MA: u64 = 1 << 6;
    /// Error Log Available.
    pub const ELA: u64 = 1 << 7;
    /// Controller Dump Available.
    pub const CDA: u64 = 1 << 8;
    /// Controller Hardware Fatal State.
    pub const CHFS: u64 = 1 << 9;
    /// Every defined bit (0x3F3). Bits 2-3 and 10-63 are reserved and read 0.
    pub const DEFINED: u64 = 0x3F3;
    /// The value a read returns when the device is gone (master abort) or EEH-frozen.
    pub const ALL_ONES: u64 = u64::MAX;

    /// The raw register value.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// True when the read returned all ones: the device is gone or frozen, not a status.
    pub const fn is_all_ones(self) -> bool {
        self.0 == Self::ALL_ONES
    }

    /// True when CRDY and MA are both set: the card is usable (§1.4).
    pub fn is_ready(self) -> bool {
        self.crdy() && self.ma()
    }

    /// True when the controller is in a fatal state (CFFS or CHFS, §1.4).
    pub fn is_fatal(self) -> bool {
        self.cffs() || self.chfs()
    }

    /// Bits set that the spec reserves (should read 0 on a healthy card).
    pub const fn reserved_bits(self) -> u64 {
        self.0 & !Self::DEFINED
    }

    /// Names of the defined bits that are set, in bit order.
    pub fn names(self) -> Vec<&'static str> {
        CHI_BITS
            .iter()
            .filter(|(mask, _)| self.0 & mask != 0)
            .map(|(_, name)| *name)
            .collect()
    }
}

/// CHI bits with their spec names, in bit order.
pub const CHI_BITS: [(u64, &str); 8] = [
    (Chi::ACRA, "ACRA"),
    (Chi::NSCRA, "NSCRA"),
    (Chi::CRDY, "CRDY"),
    (Chi::CFFS, "CFFS"),
    (Chi::MA, "MA"),
    (Chi::ELA, "ELA"),
    (Chi::CDA, "CDA"),
    (Chi::CHFS, "CHFS"),
];

bitfield! {
    /// Host→Controller Indicator (§1.2), at [`crate::offsets::HCI`]. The host sets bits;
    /// the controller clears a bit once it has consumed the request.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Hci(u64);
    impl Debug;
    /// Bit 0, ACRW: Admin Command Request Waiting (the admin doorbell).
    pub acrw, set_acrw: 0;
    /// Bit 1, NSCRW: Near-Storage Command Request Waiting.
    pub nscrw, set_nscrw: 1;
    /// Bit 2, AR: AFU Reset (defined, never used by the Linux driver).
    pub ar, set_ar: 2;
    /// Bit 3, FDE: Firmware Debug Enable.
    pub fde, set_fde: 3;
    /// Bit 4, CD: Controller Dump request.
    pub cd, set_cd: 4;
    /// Bit 5, CDC: Controller Dump Collected.
    pub cdc, set_cdc: 5;
    /// Bit 6, CHPD: request Controller Health & Performance Data.
    pub chpd, set_chpd: 6;
}

impl Hci {
    /// Admin Command Request Waiting.
    pub const ACRW: u64 = 1 << 0;
    /// Near-Storage Command Request Waiting.
    pub const NSCRW: u64 = 1 << 1;
    /// AFU Reset.
    pub const AR: u64 = 1 << 2;
    /// Firmware Debug Enable.
    pub const FDE: u64 = 1 << 3;
    /// Controller Dump request.
    pub const CD: u64 = 1 << 4;
    /// Controller Dump Collected.
    pub const CDC: u64 = 1 << 5;
    /// Request Controller Health & Performance Data.
    pub const CHPD: u64 = 1 << 6;
    /// Every defined bit.
    pub const DEFINED: u64 = 0x7F;

    /// The raw register value.
    pub const fn bits(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi_bit_positions_match_spec_table_1_1() {
        let cases: [(u64, u32); 8] = [
            (Chi::ACRA, 0),
            (Chi::NSCRA, 1),
            (Chi::CRDY, 4),
            (Chi::CFFS, 5),
            (Chi::MA, 6),
            (Chi::ELA, 7),
            (Chi::CDA, 8),
            (Chi::CHFS, 9),
        ];
        for (mask, bit) in cases {
            assert_eq!(mask, 1u64 << bit);
        }
        let all = cases.iter().fold(0, |acc, (m, _)| acc | m);
        assert_eq!(all, Chi::DEFINED);
        assert_eq!(Chi::DEFINED, 0x3F3);
    }

    #[test]
    fn chi_accessors_read_their_own_bit() {
        let c = Chi(Chi::ACRA | Chi::MA | Chi::CHFS);
        assert!(c.acra() && c.ma() && c.chfs());
        assert!(!c.nscra() && !c.crdy() && !c.cffs() && !c.ela() && !c.cda());
        let mut d = Chi(0);
        d.set_ela(true);
        d.set_cda(true);
        assert_eq!(d.bits(), Chi::ELA | Chi::CDA);
        assert_eq!(d.names(), ["ELA", "CDA"]);
    }

    #[test]
    fn chi_reserved_bits_are_2_3_and_10_up() {
        assert_eq!(Chi(0b1100).reserved_bits(), 0b1100);
        assert_eq!(Chi(1 << 10).reserved_bits(), 1 << 10);
        assert_eq!(Chi(Chi::DEFINED).reserved_bits(), 0);
    }

    #[test]
    fn all_ones_chi_is_surprise_removal_not_a_status() {
        let c = Chi(u64::MAX);
        assert!(c.is_all_ones());
        assert!(!Chi(Chi::DEFINED).is_all_ones());
    }

    #[test]
    fn readiness_needs_crdy_and_ma() {
        assert!(!Chi(Chi::CRDY).is_ready());
        assert!(!Chi(Chi::MA).is_ready());
        assert!(Chi(Chi::CRDY | Chi::MA).is_ready());
        assert!(Chi(Chi::CFFS).is_fatal());
        assert!(Chi(Chi::CHFS).is_fatal());
        assert!(!Chi(Chi::CRDY | Chi::MA | Chi::ELA).is_fatal());
    }

    #[test]
    fn hci_bit_positions_match_spec_table_1_2() {
        let cases: [(u64, u32); 7] = [
            (Hci::ACRW, 0),
            (Hci::NSCRW, 1),
            (Hci::AR, 2),
            (Hci::FDE, 3),
            (Hci::CD, 4),
            (Hci::CDC, 5),
            (Hci::CHPD, 6),
        ];
        for (mask, bit) in cases {
            assert_eq!(mask, 1u64 << bit);
        }
        let h = Hci(Hci::FDE | Hci::CHPD);
        assert!(h.fde() && h.chpd() && !h.acrw() && !h.cd());
        assert_eq!(Hci::DEFINED, 0x7F);
    }
}
