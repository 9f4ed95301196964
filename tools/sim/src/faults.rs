//! Fault injection: what can go wrong with a card, as data (DESIGN.md's list).
//!
//! [`crate::SimCard::inject`] makes a fault persistent until
//! [`crate::SimCard::clear_faults`]; [`crate::SimCard::inject_once`] makes a command fault
//! hit only the next matching command, and makes a fatal state start at the next command
//! the firmware takes (a fatal state mid-operation). Faults that are one-shot by nature
//! (stale state at open) act at once either way.

use ocxlpmem_regs::CommandArea;
use std::time::Duration;

/// One fault the simulated card can be told to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Commands on `area` (with `opcode`, or any) are taken but never complete; when the
    /// fault is cleared they complete.
    CommandTimeout {
        /// The command area.
        area: CommandArea,
        /// Only this opcode; `None` = every opcode.
        opcode: Option<u8>,
    },
    /// Commands on `area` complete `delay` (simulated time) after being taken.
    CommandDelay {
        /// The command area.
        area: CommandArea,
        /// The delay.
        delay: Duration,
    },
    /// Responses on `area` echo a wrong command id (id ^ 0x8000).
    WrongId {
        /// The command area.
        area: CommandArea,
    },
    /// Commands on `area` (with `opcode`, or any) complete with `status` and no effect.
    Status {
        /// The command area.
        area: CommandArea,
        /// Only this opcode; `None` = every opcode.
        opcode: Option<u8>,
        /// The status byte to return.
        status: u8,
    },
    /// CHI.CRDY (and so MA) never sets.
    NeverReady,
    /// CHI.CRDY sets, CHI.MA never does.
    MemoryNeverAvailable,
    /// CHI.CRDY and CHI.MA drop now (readiness lost) and stay down.
    ReadyDrops,
    /// CHI.CFFS: the firmware stops; commands and requests stay untaken or unanswered.
    FirmwareFatal,
    /// CHI.CHFS: as FirmwareFatal, for the hardware.
    HardwareFatal,
    /// HCI.CD is never cleared: the dump never becomes available.
    DumpNeverCompletes,
    /// Stale state at open: CHI.ACRA set with a stale admin response (id 0xDEAD).
    StaleAcra,
    /// Stale state at open: a previous owner's dump, uncollected (CDA set); with
    /// DumpNeverCompletes active, a CD request still pending instead.
    StaleDumpPending,
    /// Payloads of `opcode` carry the identifier "XX" instead of the right one.
    BadPayloadId {
        /// The opcode whose payload is corrupted.
        opcode: u8,
    },
    /// Payloads of `opcode` carry `length` in their header's length field.
    PayloadLength {
        /// The opcode whose payload is corrupted.
        opcode: u8,
        /// The length to report.
        length: u64,
    },
    /// The device is gone: every trapped read returns all ones, writes are dropped.
    SurpriseRemoval,
}

/// A fault and whether it is used up by its first match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Active {
    fault: Fault,
    once: bool,
}

/// The faults that shape one command, taken from the set when the command is taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandFaults {
    /// Never completes.
    pub timeout: bool,
    /// Completes after this delay.
    pub delay: Option<Duration>,
    /// Echo a wrong id.
    pub wrong_id: bool,
    /// Complete with this status instead of executing.
    pub status: Option<u8>,
    /// Corrupt the payload identifier.
    pub bad_payload_id: bool,
    /// Corrupt the payload length.
    pub payload_length: Option<u64>,
    /// The CHI fatal bit(s) this command sets when taken (once-fatal faults).
    pub fatal: u64,
}

/// The active faults.
#[derive(Debug, Default)]
pub struct FaultSet {
    active: Vec<Active>,
}

impl FaultSet {
    /// Adds a fault.
    pub fn add(&mut self, fault: Fault, once: bool) {
        // Bounded: the same fault twice is kept once.
        let a = Active { fault, once };
        if !self.active.contains(&a) {
            self.active.push(a);
        }
    }

    /// Removes every fault.
    pub fn clear(&mut self) {
        self.active.clear();
    }

    /// True when a persistent fault equal to `f` is active.
    pub fn has(&self, f: Fault) -> bool {
        self.active.iter().any(|a| a.fault == f && !a.once)
    }

    /// True when `f` is active in either mode.
    pub fn has_any(&self, f: Fault) -> bool {
        self.active.iter().any(|a| a.fault == f)
    }

    /// The faults that apply to a command with `opcode` taken on `area`; once-faults
    /// that match are used up.
    pub fn take_command(&mut self, area: CommandArea, opcode: u8) -> CommandFaults {
        use ocxlpmem_regs::Chi;
        let mut out = CommandFaults::default();
        let op_matches = |o: Option<u8>| o.is_none_or(|o| o == opcode);
        self.active.retain(|a| {
            let hit = match a.fault {
                Fault::CommandTimeout {
                    area: ar,
                    opcode: o,
                } if ar == area && op_matches(o) => {
                    out.timeout = true;
                    true
                }
                Fault::CommandDelay { area: ar, delay } if ar == area => {
                    out.delay = Some(delay);
                    true
                }
                Fault::WrongId { area: ar } if ar == area => {
                    out.wrong_id = true;
                    true
                }
                Fault::Status {
                    area: ar,
                    opcode: o,
                    status,
                } if ar == area && op_matches(o) => {
                    out.status = Some(status);
                    true
                }
                Fault::BadPayloadId { opcode: o } if o == opcode => {
                    out.bad_payload_id = true;
                    true
                }
                Fault::PayloadLength { opcode: o, length } if o == opcode => {
                    out.payload_length = Some(length);
                    true
                }
                Fault::FirmwareFatal if a.once => {
                    out.fatal |= Chi::CFFS;
                    true
                }
                Fault::HardwareFatal if a.once => {
                    out.fatal |= Chi::CHFS;
                    true
                }
                _ => false,
            };
            !(hit && a.once)
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_faults_hit_one_matching_command() {
        let mut f = FaultSet::default();
        f.add(
            Fault::Status {
                area: CommandArea::Admin,
                opcode: Some(5),
                status: 0x21,
            },
            true,
        );
        assert_eq!(f.take_command(CommandArea::Admin, 4).status, None);
        assert_eq!(f.take_command(CommandArea::NearStorage, 5).status, None);
        assert_eq!(f.take_command(CommandArea::Admin, 5).status, Some(0x21));
        assert_eq!(f.take_command(CommandArea::Admin, 5).status, None);
    }

    #[test]
    fn persistent_faults_stay() {
        let mut f = FaultSet::default();
        f.add(
            Fault::WrongId {
                area: CommandArea::Admin,
            },
            false,
        );
        f.add(
            Fault::WrongId {
                area: CommandArea::Admin,
            },
            false,
        );
        assert!(f.take_command(CommandArea::Admin, 0).wrong_id);
        assert!(f.take_command(CommandArea::Admin, 0).wrong_id);
        assert!(f.has(Fault::WrongId {
            area: CommandArea::Admin
        }));
        f.clear();
        assert!(!f.take_command(CommandArea::Admin, 0).wrong_id);
    }
}
