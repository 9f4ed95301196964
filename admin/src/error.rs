//! Errors of the admin protocol, kept apart by cause (STYLE.md: device status is not a
//! transport error; a protocol error says what was expected and what was seen).

use ocxlpmem_regs::command::LayoutError;
use ocxlpmem_regs::{CommandArea, MmioError, Opcode, Status};
use std::time::Duration;

/// Everything an admin operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A register access failed below the protocol (the transport under the mapping).
    #[error("MMIO access failed while {during}: {source}")]
    Transport {
        /// What the send path was doing.
        during: &'static str,
        /// The access error (offset and errno kept).
        #[source]
        source: MmioError,
    },
    /// The command did not complete within its timeout (re-checked once at the deadline).
    #[error(
        "{opcode} did not complete within {waited:?} (CHI last read {last_chi:#x}); \
         lengthen the timeout with AdminOptions if the card is known to be slow"
    )]
    Timeout {
        /// The command.
        opcode: Opcode,
        /// How long the send path waited.
        waited: Duration,
        /// The last CHI value seen.
        last_chi: u64,
    },
    /// A wait for a register bit that is not a command completion ran out.
    #[error("timed out after {waited:?} waiting for {what} (register {register:#x} last read {last:#x})")]
    WaitTimeout {
        /// What was awaited, in words.
        what: &'static str,
        /// The register polled.
        register: u64,
        /// How long.
        waited: Duration,
        /// The last value read.
        last: u64,
    },
    /// The device completed the command with a status other than SUCCESS.
    #[error("{opcode} failed with device status {status}")]
    Status {
        /// The command.
        opcode: Opcode,
        /// The status (its Display gives name, number and meaning).
        status: Status,
    },
    /// The device answered something the protocol does not allow.
    #[error("protocol error in {opcode}: {kind}")]
    Protocol {
        /// The command.
        opcode: Opcode,
        /// What was expected and what was seen.
        kind: ProtocolError,
    },
    /// The controller is in a fatal state (CHI.CFFS or CHI.CHFS): commands are refused.
    #[error(
        "controller is in a fatal state (CHI {chi:#x}: firmware fatal {firmware}, hardware fatal \
         {hardware}); take a controller dump and read the error log, then reset the card"
    )]
    Fatal {
        /// The CHI value that showed it.
        chi: u64,
        /// CFFS was set.
        firmware: bool,
        /// CHFS was set.
        hardware: bool,
    },
    /// A read returned all ones: the device is gone (surprise removal) or EEH-frozen.
    #[error(
        "device gone: read of {offset:#x} returned all ones (surprise removal or EEH freeze); \
         check the PCI link and reopen the card"
    )]
    Gone {
        /// The offset whose read returned all ones.
        offset: u64,
    },
    /// A command area's registers describe an unusable layout (§2.1).
    #[error("{} command area layout is invalid: {source}", area.name())]
    Layout {
        /// Which area.
        area: CommandArea,
        /// Why.
        #[source]
        source: LayoutError,
    },
    /// The card reports no near-storage command area (its registers read 0).
    #[error("the card has no near-storage command area (0x120/0x128 read 0)")]
    NoNearStorageArea,
    /// The caller passed something the command cannot take.
    #[error("invalid argument to {opcode}: {reason}")]
    InvalidArgument {
        /// The command.
        opcode: Opcode,
        /// Why.
        reason: String,
    },
    /// Writing dump bytes to the caller's writer failed.
    #[error("writing the controller dump at dump offset {offset:#x} failed: {source}")]
    Write {
        /// Dump offset of the chunk that could not be written.
        offset: u64,
        /// The writer's error.
        #[source]
        source: std::io::Error,
    },
    /// Secure Erase completed but did not erase every page it attempted (§3.11).
    #[error(
        "secure erase incomplete: accessible {}/{} pages, defective {}/{} pages erased",
        .0.accessible_erased, .0.accessible_attempted, .0.defective_erased, .0.defective_attempted
    )]
    EraseIncomplete(crate::erase::SecureEraseReport),
    /// Setting up the event monitor failed.
    #[error("event monitor setup failed: {what}: {errno}")]
    Monitor {
        /// What failed.
        what: &'static str,
        /// The errno.
        errno: nix::errno::Errno,
    },
}

impl AdminError {
    /// The device status, when the error is one.
    pub fn status(&self) -> Option<Status> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn transport(during: &'static str) -> impl FnOnce(MmioError) -> Self {
        move |source| Self::Transport { during, source }
    }
}

/// The kinds of protocol error: what the driver expected and what the device gave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The response echoed another command's id (a stale or foreign response).
    #[error("response echoed command id {seen}, expected {expected}")]
    IdMismatch {
        /// The id issued.
        expected: u16,
        /// The id echoed.
        seen: u16,
    },
    /// The payload header carried another identifier.
    #[error("payload identifier {seen:?} ({seen_code:#06x}), expected {expected}")]
    WrongPayloadId {
        /// The identifier expected.
        expected: ocxlpmem_regs::PayloadId,
        /// The identifier as text.
        seen: String,
        /// Its value.
        seen_code: u16,
    },
    /// A length field claims more bytes than the buffer (or the request) allows.
    #[error("{what} of {length:#x} bytes exceeds the limit of {limit:#x} bytes")]
    LengthBeyondBuffer {
        /// Which length.
        what: &'static str,
        /// The length the device reported.
        length: u64,
        /// The largest length allowed.
        limit: u64,
    },
    /// A length field is below the minimum the layout needs.
    #[error("{what} of {length:#x} bytes is below the minimum of {minimum:#x} bytes")]
    LengthTooShort {
        /// Which length.
        what: &'static str,
        /// The length the device reported.
        length: u64,
        /// The smallest length allowed.
        minimum: u64,
    },
    /// A field does not have the value the layout requires.
    #[error("{what}: expected {expected:#x}, seen {seen:#x}")]
    BadField {
        /// Which field.
        what: &'static str,
        /// The value required.
        expected: u64,
        /// The value found.
        seen: u64,
    },
}
