//! Controller capability registers CCAP0 and CCAP1 (§1.3).

use bitfield::bitfield;
use std::time::Duration;

bitfield! {
    /// Controller capabilities 0, at [`crate::offsets::CCAP0`].
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Ccap0(u64);
    impl Debug;
    /// Bits 15:0: revision (major = bits 15:4, minor = bits 3:0).
    pub u16, revision, set_revision: 15, 0;
    /// Bits 15:4: major revision.
    pub u16, revision_major, _: 15, 4;
    /// Bits 3:0: minor revision.
    pub u8, revision_minor, _: 3, 0;
    /// Bits 47:32: nominal latency of an unassisted media read, in ns.
    pub u16, read_latency_ns, set_read_latency_ns: 47, 32;
    /// Bits 51:48: worst-case wait for CHI.CRDY after reset, in seconds.
    pub u8, readiness_timeout_s, set_readiness_timeout_s: 51, 48;
    /// Bits 55:52: worst-case wait for CHI.MA after reset, in seconds (§1.3 Decision: 4 bits).
    pub u8, memory_available_timeout_s, set_memory_available_timeout_s: 55, 52;
}

impl Ccap0 {
    /// The raw register value.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// The total readiness budget of §1.4: readiness timeout + memory-available timeout.
    pub fn readiness_budget(self) -> Duration {
        Duration::from_secs(
            u64::from(self.readiness_timeout_s()) + u64::from(self.memory_available_timeout_s()),
        )
    }

    /// Read latency as a [`Duration`].
    pub fn read_latency(self) -> Duration {
        Duration::from_nanos(u64::from(self.read_latency_ns()))
    }
}

bitfield! {
    /// Controller capabilities 1, at [`crate::offsets::CCAP1`].
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Ccap1(u64);
    impl Debug;
    /// Bits 31:0: maximum controller dump size, in bytes.
    pub u32, max_dump_size, set_max_dump_size: 31, 0;
}

impl Ccap1 {
    /// The raw register value.
    pub const fn bits(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ccap0_field_ranges_match_spec_table_1_3() {
        // One field at a time, all ones, to pin both ends of each range.
        let mut c = Ccap0(0);
        c.set_revision(0xFFFF);
        assert_eq!(c.bits(), 0xFFFF);
        let mut c = Ccap0(0);
        c.set_read_latency_ns(0xFFFF);
        assert_eq!(c.bits(), 0xFFFF << 32);
        let mut c = Ccap0(0);
        c.set_readiness_timeout_s(0xF);
        assert_eq!(c.bits(), 0xF << 48);
        let mut c = Ccap0(0);
        c.set_memory_available_timeout_s(0xF);
        assert_eq!(c.bits(), 0xF << 52);
    }

    #[test]
    fn memory_available_timeout_is_four_bits_decision() {
        // §1.3 Decision: bits 55:52 only; bits 59:56 (kept by the Linux driver) are reserved.
        let c = Ccap0(0xFF << 52);
        assert_eq!(c.memory_available_timeout_s(), 0xF);
        let c = Ccap0(0xF << 56);
        assert_eq!(c.memory_available_timeout_s(), 0);
    }

    #[test]
    fn revision_splits_major_and_minor() {
        let c = Ccap0(0x0010);
        assert_eq!(c.revision_major(), 1);
        assert_eq!(c.revision_minor(), 0);
        let c = Ccap0(0x0123);
        assert_eq!(c.revision_major(), 0x12);
        assert_eq!(c.revision_minor(), 3);
    }

    #[test]
    fn readiness_budget_adds_both_timeouts() {
        let mut c = Ccap0(0);
        c.set_readiness_timeout_s(2);
        c.set_memory_available_timeout_s(3);
        c.set_read_latency_ns(300);
        assert_eq!(c.readiness_budget(), Duration::from_secs(5));
        assert_eq!(c.read_latency(), Duration::from_nanos(300));
    }

    #[test]
    fn ccap1_dump_size_is_low_32_bits() {
        let c = Ccap1(0xDEAD_BEEF_0010_0000);
        assert_eq!(c.max_dump_size(), 0x0010_0000);
    }
}
