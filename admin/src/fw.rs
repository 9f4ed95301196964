//! FW_UPDATE (§3.3), in blocks with retry and backoff on BLOCKED_BG_TASK, and FW_DEBUG
//! (§3.4) framed by HCI.FDE.

use crate::admin::Admin;
use crate::destructive::Destructive;
use crate::error::AdminError;
use crate::table;
use ocxlpmem_regs::payload::params;
use ocxlpmem_regs::{Hci, Opcode, Status};

/// FW_DEBUG actions (§3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FwDebugAction {
    /// 0x01: read controller memory.
    ReadMemory,
    /// 0x02: write controller memory.
    WriteMemory,
    /// 0x03: enable a function.
    EnableFunction,
    /// 0x04: disable a function.
    DisableFunction,
    /// 0x05: get the persistent error log.
    GetPersistentErrorLog,
    /// Any other action value.
    Other(u8),
}

impl FwDebugAction {
    /// The wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::ReadMemory => params::FW_DEBUG_READ_MEMORY,
            Self::WriteMemory => params::FW_DEBUG_WRITE_MEMORY,
            Self::EnableFunction => params::FW_DEBUG_ENABLE_FUNCTION,
            Self::DisableFunction => params::FW_DEBUG_DISABLE_FUNCTION,
            Self::GetPersistentErrorLog => params::FW_DEBUG_GET_PERSISTENT_LOG,
            Self::Other(v) => v,
        }
    }
}

/// One FW_DEBUG command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FwDebugRequest<'a> {
    /// The action.
    pub action: FwDebugAction,
    /// The function code (param +0x08 bits 55:40).
    pub function_code: u16,
    /// Param +0x10.
    pub parameter1: u64,
    /// Param +0x18.
    pub parameter2: u64,
    /// Optional RAW input for the data buffer.
    pub input: &'a [u8],
}

impl FwDebugRequest<'_> {
    /// The three parameter words (+0x08, +0x10, +0x18).
    pub const fn params(&self) -> [u64; 3] {
        [
            params::fw_debug(self.action.as_u8(), self.function_code),
            self.parameter1,
            self.parameter2,
        ]
    }
}

impl Admin {
    /// Updates the firmware with `image` (length a non-zero multiple of 8, below 4 GiB).
    pub fn fw_update(&self, image: &[u8], token: &Destructive) -> Result<(), AdminError> {
        self.fw_update_with_progress(image, token, &mut |_, _| {})
    }

    /// As [`Admin::fw_update`], calling `progress(bytes_sent, image_len)` after each block.
    ///
    /// Blocks are min(32 KiB, data_size) bytes, sent in order. A block answered with
    /// BLOCKED_BG_TASK is retried after a backoff that doubles
    /// ([`crate::AdminOptions::fw_retry`]); other statuses end the update (0x51 argument
    /// invalid, 0x52 image invalid).
    pub fn fw_update_with_progress(
        &self,
        image: &[u8],
        _token: &Destructive,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), AdminError> {
        let op = Opcode::FwUpdate;
        let total = image.len() as u64;
        if total == 0 || !total.is_multiple_of(8) || u32::try_from(total).is_err() {
            return Err(AdminError::InvalidArgument {
                opcode: op,
                reason: format!(
                    "image of {total} bytes: must be a non-zero multiple of 8 below 4 GiB"
                ),
            });
        }
        let block = params::FW_UPDATE_MAX_BLOCK.min(self.admin.layout.data_size) & !7;
        let block = usize::try_from(block).unwrap_or(8).max(8);
        let policy = self.options().fw_retry;
        let mut sent = 0u64;
        for chunk in image.chunks(block) {
            // Both fit u32: the image is below 4 GiB and a block at most 32 KiB.
            let param = params::fw_update(sent as u32, chunk.len() as u32);
            let mut backoff = policy.initial_backoff;
            let mut attempt = 1;
            loop {
                match self.send(&table::FW_UPDATE, &[param], chunk, &mut []) {
                    Ok(_) => break,
                    Err(AdminError::Status {
                        status: Status::BlockedBgTask,
                        ..
                    }) if attempt < policy.attempts => {
                        tracing::debug!(
                            offset = sent,
                            attempt,
                            ?backoff,
                            "FW_UPDATE blocked, retrying"
                        );
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(policy.max_backoff);
                        attempt += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
            sent += chunk.len() as u64;
            progress(sent, total);
        }
        Ok(())
    }

    /// FW_DEBUG (§3.4): sets HCI.FDE, sends the command, copies at most
    /// min(out, data_size) RAW output bytes into `out`, and clears FDE through HCIC on
    /// every path. Returns the bytes copied.
    pub fn fw_debug(
        &self,
        req: &FwDebugRequest<'_>,
        out: &mut [u8],
        _token: &Destructive,
    ) -> Result<usize, AdminError> {
        self.set_hci(Hci::FDE)?;
        let r = self.send(&table::FW_DEBUG, &req.params(), req.input, out);
        let cleared = self.clear_hci(Hci::FDE);
        let c = r?;
        cleared?;
        Ok(c.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fw_debug_parameter_words() {
        let r = FwDebugRequest {
            action: FwDebugAction::GetPersistentErrorLog,
            function_code: 0x1234,
            parameter1: 7,
            parameter2: 9,
            input: &[],
        };
        assert_eq!(r.params(), [0x0512_3400_0000_0000, 7, 9]);
        assert_eq!(FwDebugAction::Other(0x42).as_u8(), 0x42);
        assert_eq!(FwDebugAction::ReadMemory.as_u8(), 1);
    }
}
