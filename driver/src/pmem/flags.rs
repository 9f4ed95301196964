//! Flags of the copy functions, with libpmem2's names and meaning (`PMEM2_F_MEM_*`,
//! spec/pmem.md §6.1).

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// Flags for [`memcpy`](super::memcpy) and friends; combine with `|`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u32);

impl Flags {
    /// No flag: copy, flush and drain (the data is persistent on return).
    pub const NONE: Flags = Flags(0);
    /// Skip the final drain; the caller calls `drain` later (`PMEM2_F_MEM_NODRAIN`).
    pub const NODRAIN: Flags = Flags(1 << 0);
    /// Use non-temporal stores whatever the size (`PMEM2_F_MEM_NONTEMPORAL`).
    pub const NONTEMPORAL: Flags = Flags(1 << 1);
    /// Use normal (temporal) stores plus cache flushes whatever the size
    /// (`PMEM2_F_MEM_TEMPORAL`).
    pub const TEMPORAL: Flags = Flags(1 << 2);
    /// Write-combining hint: like NONTEMPORAL (`PMEM2_F_MEM_WC`).
    pub const WC: Flags = Flags(1 << 3);
    /// Write-back hint: like TEMPORAL (`PMEM2_F_MEM_WB`).
    pub const WB: Flags = Flags(1 << 4);
    /// Do not flush and do not drain: a plain copy (`PMEM2_F_MEM_NOFLUSH`, which implies
    /// NODRAIN).
    pub const NOFLUSH: Flags = Flags(1 << 5);

    const ALL: [(Flags, &'static str); 6] = [
        (Flags::NODRAIN, "NODRAIN"),
        (Flags::NONTEMPORAL, "NONTEMPORAL"),
        (Flags::TEMPORAL, "TEMPORAL"),
        (Flags::WC, "WC"),
        (Flags::WB, "WB"),
        (Flags::NOFLUSH, "NOFLUSH"),
    ];

    /// True when every flag of `other` is set in `self`.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The raw bits (stable only within this crate's version).
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether a copy of `len` bytes uses non-temporal stores, given the CPU's threshold
    /// (`None`: the CPU has no non-temporal stores or they are disabled). Explicit flags win
    /// over the size rule; TEMPORAL/WB win over NONTEMPORAL/WC when both are given, since a
    /// temporal copy followed by flushes is correct either way.
    pub(crate) fn use_nontemporal(self, len: usize, threshold: Option<usize>) -> bool {
        let Some(threshold) = threshold else {
            return false;
        };
        if self.contains(Flags::TEMPORAL) || self.contains(Flags::WB) {
            return false;
        }
        self.contains(Flags::NONTEMPORAL) || self.contains(Flags::WC) || len >= threshold
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Flags::ALL
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, n)| *n)
            .collect();
        if names.is_empty() {
            f.write_str("Flags(NONE)")
        } else {
            write!(f, "Flags({})", names.join(" | "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_rule_applies_at_and_above_the_threshold() {
        assert!(!Flags::NONE.use_nontemporal(255, Some(256)));
        assert!(Flags::NONE.use_nontemporal(256, Some(256)));
        assert!(!Flags::NONE.use_nontemporal(1 << 20, None));
    }

    #[test]
    fn explicit_flags_override_the_size_rule() {
        assert!(Flags::NONTEMPORAL.use_nontemporal(8, Some(256)));
        assert!(Flags::WC.use_nontemporal(8, Some(256)));
        assert!(!Flags::TEMPORAL.use_nontemporal(1 << 20, Some(256)));
        assert!(!Flags::WB.use_nontemporal(1 << 20, Some(256)));
        assert!(!(Flags::WB | Flags::WC).use_nontemporal(1 << 20, Some(256)));
    }

    #[test]
    fn debug_names_every_flag() {
        let f = Flags::NODRAIN | Flags::NOFLUSH;
        assert_eq!(format!("{f:?}"), "Flags(NODRAIN | NOFLUSH)");
        assert_eq!(format!("{:?}", Flags::NONE), "Flags(NONE)");
        assert!(f.contains(Flags::NODRAIN) && !f.contains(Flags::WC));
    }
}
