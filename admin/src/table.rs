//! The one table of commands (spec §2.6 and §3): opcode, default timeout, how many
//! parameter words the request uses, and which payload the data buffer answers with.
//!
//! Every command goes through [`crate::mailbox`]'s one send path with its entry from
//! here, so the unused-word zeroing of §2.4 step 4 and the payload checks of §3 follow
//! from the table instead of being repeated per command.

use ocxlpmem_regs::{Opcode, PayloadId};
use std::time::Duration;

/// What the data buffer holds after a successful command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Nothing is read back.
    None,
    /// A payload with a 64-bit header (§3): identifier checked, length bounded by the buffer.
    Payload(PayloadId),
    /// RAW bytes of unknown length: at most min(caller, data_size) are copied.
    Raw,
}

/// One row of the command table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// The opcode (its area follows from it, §2.6).
    pub opcode: Opcode,
    /// Default timeout of §2.6 (FW_UPDATE: per block).
    pub timeout: Duration,
    /// Parameter words the request uses at +0x08 onwards (0..=7); the rest are zeroed.
    pub param_words: u8,
    /// Whether input bytes go into the data buffer.
    pub input: bool,
    /// What the data buffer answers with.
    pub output: Output,
    /// Whether the response block's command-specific words are read (Secure Erase).
    pub response_words: bool,
}

const fn row(
    opcode: Opcode,
    param_words: u8,
    input: bool,
    output: Output,
    response_words: bool,
) -> CommandSpec {
    CommandSpec {
        opcode,
        timeout: opcode.default_timeout(),
        param_words,
        input,
        output,
        response_words,
    }
}

/// §3.1: no parameters, no data.
pub const HEARTBEAT: CommandSpec = row(Opcode::Heartbeat, 0, false, Output::None, false);
/// §3.2: no parameters, no data.
pub const SHUTDOWN: CommandSpec = row(Opcode::Shutdown, 0, false, Output::None, false);
/// §3.3: +0x08 = offset << 32 | block size; block bytes RAW in the data buffer.
pub const FW_UPDATE: CommandSpec = row(Opcode::FwUpdate, 1, true, Output::None, false);
/// §3.4: +0x08 action/function, +0x10 parameter 1, +0x18 parameter 2; RAW in and out.
pub const FW_DEBUG: CommandSpec = row(Opcode::FwDebug, 3, true, Output::Raw, false);
/// §3.5: no parameters; one "EL" entry.
pub const ERRLOG: CommandSpec = row(
    Opcode::ErrorLog,
    0,
    false,
    Output::Payload(PayloadId::ErrorLog),
    false,
);
/// §3.6: +0x08 = 0; "SM" attributes.
pub const SMART: CommandSpec = row(
    Opcode::Smart,
    1,
    false,
    Output::Payload(PayloadId::Smart),
    false,
);
/// §3.7: +0x08 = 0; "CS" statistics.
pub const CONTROLLER_STATS: CommandSpec = row(
    Opcode::ControllerStats,
    1,
    false,
    Output::Payload(PayloadId::ControllerStats),
    false,
);
/// §3.8 step 2: +0x08 = offset << 32 | chunk size; "CD" chunk.
pub const CONTROLLER_DUMP: CommandSpec = row(
    Opcode::ControllerDump,
    1,
    false,
    Output::Payload(PayloadId::ControllerDump),
    false,
);
/// §3.10: no parameters; format unknown, RAW.
pub const CMD_CAPS: CommandSpec = row(Opcode::CommandCaps, 0, false, Output::Raw, false);
/// §3.11 (near-storage area): no parameters; page counts in the response block.
pub const SECURE_ERASE: CommandSpec = row(Opcode::SecureErase, 0, false, Output::None, true);

/// The command table, in opcode order.
pub const COMMANDS: [CommandSpec; 10] = [
    HEARTBEAT,
    SHUTDOWN,
    FW_UPDATE,
    FW_DEBUG,
    ERRLOG,
    SMART,
    CONTROLLER_STATS,
    CONTROLLER_DUMP,
    CMD_CAPS,
    SECURE_ERASE,
];

/// The table row of `opcode`; `None` for opcodes the table does not know.
pub fn spec(opcode: Opcode) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.opcode == opcode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocxlpmem_regs::CommandArea;

    #[test]
    fn table_covers_every_known_opcode_once() {
        for op in Opcode::ALL {
            let n = COMMANDS.iter().filter(|c| c.opcode == op).count();
            assert_eq!(n, 1, "{op}");
        }
        assert!(spec(Opcode::Unknown(0x42)).is_none());
    }

    #[test]
    fn timeouts_are_the_spec_defaults() {
        for c in COMMANDS {
            assert_eq!(c.timeout, c.opcode.default_timeout(), "{}", c.opcode);
        }
        assert_eq!(
            spec(Opcode::Heartbeat).map(|c| c.timeout),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            spec(Opcode::SecureErase).map(|c| c.timeout),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn parameter_words_follow_section_3() {
        let words = |op| spec(op).map(|c| c.param_words);
        assert_eq!(words(Opcode::Heartbeat), Some(0));
        assert_eq!(words(Opcode::FwUpdate), Some(1));
        assert_eq!(words(Opcode::FwDebug), Some(3));
        assert_eq!(words(Opcode::Smart), Some(1));
        assert_eq!(words(Opcode::ControllerStats), Some(1));
        assert_eq!(words(Opcode::ControllerDump), Some(1));
        for c in COMMANDS {
            assert!(c.param_words <= 7);
        }
    }

    #[test]
    fn payload_ids_follow_section_3() {
        let out = |op| spec(op).map(|c| c.output);
        assert_eq!(
            out(Opcode::ErrorLog),
            Some(Output::Payload(PayloadId::ErrorLog))
        );
        assert_eq!(out(Opcode::Smart), Some(Output::Payload(PayloadId::Smart)));
        assert_eq!(
            out(Opcode::ControllerStats),
            Some(Output::Payload(PayloadId::ControllerStats))
        );
        assert_eq!(
            out(Opcode::ControllerDump),
            Some(Output::Payload(PayloadId::ControllerDump))
        );
        assert_eq!(out(Opcode::CommandCaps), Some(Output::Raw));
        assert_eq!(out(Opcode::Heartbeat), Some(Output::None));
        // Only Secure Erase reads response words, and only it uses the near-storage area.
        for c in COMMANDS {
            assert_eq!(c.response_words, c.opcode == Opcode::SecureErase);
            assert_eq!(
                c.opcode.area() == CommandArea::NearStorage,
                c.opcode == Opcode::SecureErase
            );
        }
    }
}
