//! The one send path (spec §2.4), shared by the admin and the near-storage areas.
//!
//! Every command in this crate goes through [`Admin::send`]; the steps below carry the
//! spec's numbers so the code can be read against §2.4 line by line.

use crate::admin::Admin;
use crate::error::{AdminError, ProtocolError};
use crate::table::{CommandSpec, Output};
use crate::wait::poll_until;
use ocxlpmem_regs::command::{next_command_id, param_offset};
use ocxlpmem_regs::{offsets, AreaLayout, Chi, CommandArea, PayloadHeader, RequestHeader};
use ocxlpmem_regs::{ResponseHeader, Status};
use std::sync::atomic::{fence, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// At most this many timed-out ids are remembered; their late responses are acknowledged
/// and skipped instead of being taken for the current command's answer.
const MAX_LATE: usize = 8;

/// One command area: where its blocks are, and the state its lock protects.
#[derive(Debug)]
pub(crate) struct Channel {
    pub(crate) area: CommandArea,
    pub(crate) layout: AreaLayout,
    state: Mutex<ChannelState>,
}

#[derive(Debug, Default)]
struct ChannelState {
    /// The last command id issued (the counter of §2.2; the first command gets 1).
    last_id: u16,
    /// Ids of commands whose response never arrived (timeout, transport error).
    late: Vec<u16>,
    /// Request words `n..=7` are known to hold 0, because this handle wrote them and the
    /// host is the request block's only writer (VFIO gives one process the device). `None`
    /// until the first command, after a failed write, and after a reset
    /// ([`Admin::forget_request_words`]). Saves rewriting zeros on every command (§2.4
    /// step 4 is about what the words hold, not about how often they are stored).
    zero_from: Option<u64>,
}

impl ChannelState {
    fn remember_late(&mut self, id: u16) {
        if self.late.len() >= MAX_LATE {
            self.late.remove(0);
        }
        self.late.push(id);
    }

    fn forget_late(&mut self, id: u16) -> bool {
        let before = self.late.len();
        self.late.retain(|&l| l != id);
        self.late.len() != before
    }
}

impl Channel {
    /// Forgets what the request words hold (the next command writes all of them).
    pub(crate) fn forget_request_words(&self) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .zero_from = None;
    }

    pub(crate) fn new(area: CommandArea, layout: AreaLayout) -> Self {
        Self {
            area,
            layout,
            state: Mutex::new(ChannelState::default()),
        }
    }
}

/// What a completed command gives back besides the bytes copied into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Completion {
    /// The command id issued (and echoed).
    pub(crate) id: u16,
    /// Bytes copied into the caller's buffer (payload header included for payloads).
    pub(crate) len: usize,
    /// Response words +0x20..+0x38 when the table asks for them (Secure Erase).
    pub(crate) words: [u64; 4],
}

impl Admin {
    /// Sends one command through its area and waits for the answer (§2.4).
    ///
    /// `params` are the words at +0x08.. (exactly `spec.param_words` of them), `input`
    /// goes into the data buffer, and at most `min(out.len(), data_size, device length)`
    /// bytes of output are copied into `out`.
    pub(crate) fn send(
        &self,
        spec: &CommandSpec,
        params: &[u64],
        input: &[u8],
        out: &mut [u8],
    ) -> Result<Completion, AdminError> {
        let op = spec.opcode;
        let chan = self.channel(op.area())?;
        let layout = chan.layout;
        if params.len() != usize::from(spec.param_words) {
            return Err(AdminError::InvalidArgument {
                opcode: op,
                reason: format!(
                    "{} parameter words given, {} used",
                    params.len(),
                    spec.param_words
                ),
            });
        }
        if (!spec.input && !input.is_empty()) || input.len() as u64 > layout.data_size {
            return Err(AdminError::InvalidArgument {
                opcode: op,
                reason: format!(
                    "{} input bytes do not fit (data buffer {:#x} bytes, input allowed: {})",
                    input.len(),
                    layout.data_size,
                    spec.input
                ),
            });
        }
        let timeout = self.options().timeout_for(op, spec.timeout);
        let rsp_bit = chan.area.response_available();
        let mmio = self.mmio();

        // 1. Take the area's lock. A panic elsewhere while holding it leaves nothing
        //    half-done that step 2 would not clean up, so a poisoned lock is taken over.
        let mut st = chan.state.lock().unwrap_or_else(|e| e.into_inner());

        // 2. A stale response (a process that died, a timed-out command) is cleared first,
        //    and a fatal or vanished controller is reported before anything is written.
        let chi = self.read_chi()?;
        if chi.is_fatal() {
            return Err(AdminError::Fatal {
                chi: chi.bits(),
                firmware: chi.cffs(),
                hardware: chi.chfs(),
            });
        }
        if chi.bits() & rsp_bit != 0 {
            let stale = mmio
                .read_u64(layout.response_offset)
                .map_err(AdminError::transport("reading a stale response header"))?;
            st.forget_late(ResponseHeader::decode(stale).id);
            tracing::debug!(area = chan.area.name(), stale, "clearing a stale response");
            self.ack(chan.area)?;
            let cleared = poll_until(
                &self.options().poll,
                self.options().stale_clear_timeout,
                || Ok((self.read_chi()?.bits() & rsp_bit == 0).then_some(())),
            )?;
            if let Err(waited) = cleared {
                return Err(AdminError::WaitTimeout {
                    what: "a stale command response to clear",
                    register: offsets::CHI,
                    waited,
                    last: self.read_chi()?.bits(),
                });
            }
        }

        // 3. Parameters into request +0x08.., input data into the data buffer.
        let id = next_command_id(st.last_id);
        st.last_id = id;
        let known_zero_from = st.zero_from.take().unwrap_or(8);
        for (i, &p) in params.iter().enumerate() {
            mmio.write_u64(layout.request_offset + param_offset(i as u64 + 1), p)
                .map_err(AdminError::transport("writing request parameters"))?;
        }
        if !input.is_empty() {
            mmio.write_bytes(layout.data_offset, input)
                .map_err(AdminError::transport("writing input data"))?;
        }

        // 4. The header, then zero every request word the command does not use.
        let header = RequestHeader { opcode: op, id }.encode();
        mmio.write_u64(layout.request_offset, header)
            .map_err(AdminError::transport("writing the request header"))?;
        let first_unused = u64::from(spec.param_words) + 1;
        for n in first_unused..known_zero_from.clamp(first_unused, 8) {
            mmio.write_u64(layout.request_offset + param_offset(n), 0)
                .map_err(AdminError::transport("zeroing unused request words"))?;
        }
        st.zero_from = Some(first_unused);

        // 5. Barrier, so the request is visible before the doorbell, then ring it. From
        //    here on the device may answer at any time: any exit without an acknowledged
        //    response remembers the id, so its late answer is recognised and acked.
        fence(Ordering::SeqCst);
        if let Err(e) = self.set_hci(chan.area.doorbell()) {
            st.remember_late(id);
            return Err(e);
        }

        // 6. Wait for the response bit, bounded by the command's timeout and re-checked
        //    once after the deadline. A late answer to an earlier, timed-out command is
        //    acknowledged and skipped.
        let start = Instant::now();
        let rsp = loop {
            let remaining = timeout.saturating_sub(start.elapsed());
            let waited = poll_until(&self.options().poll, remaining, || {
                let chi = self.read_chi()?;
                if chi.bits() & rsp_bit != 0 {
                    return Ok(Some(()));
                }
                if chi.is_fatal() {
                    return Err(AdminError::Fatal {
                        chi: chi.bits(),
                        firmware: chi.cffs(),
                        hardware: chi.chfs(),
                    });
                }
                Ok(None)
            });
            match waited {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    st.remember_late(id);
                    let last_chi = self.read_chi().map(Chi::bits).unwrap_or(u64::MAX);
                    return Err(AdminError::Timeout {
                        opcode: op,
                        waited: start.elapsed(),
                        last_chi,
                    });
                }
                Err(e) => {
                    st.remember_late(id);
                    return Err(e);
                }
            }
            // 7. The echoed id must be the one issued.
            let word = match mmio.read_u64(layout.response_offset) {
                Ok(w) => w,
                Err(e) => {
                    // The response stays unacknowledged; step 2 of the next command clears it.
                    st.remember_late(id);
                    return Err(AdminError::transport("reading the response header")(e));
                }
            };
            let rsp = ResponseHeader::decode(word);
            if rsp.id != id && st.forget_late(rsp.id) {
                tracing::debug!(late = rsp.id, current = id, "acknowledging a late response");
                self.ack(chan.area)?;
                // Our answer may have been posted between the header read and the ack
                // (which then cleared its ACRA too): the header tells.
                let again = mmio
                    .read_u64(layout.response_offset)
                    .map(ResponseHeader::decode)
                    .map_err(AdminError::transport("re-reading the response header"))?;
                if again.id == id {
                    break again;
                }
                continue;
            }
            break rsp;
        };

        // 8. On success, copy out at most min(caller, data_size, device length) bytes.
        let result = if rsp.id != id {
            // Our own answer may still come: remember it so it is not taken for another's.
            st.remember_late(id);
            Err(AdminError::Protocol {
                opcode: op,
                kind: ProtocolError::IdMismatch {
                    expected: id,
                    seen: rsp.id,
                },
            })
        } else if rsp.status != Status::Success {
            Err(AdminError::Status {
                opcode: op,
                status: rsp.status,
            })
        } else {
            self.copy_out(spec, &layout, out).and_then(|len| {
                let mut words = [0u64; 4];
                if spec.response_words {
                    for (i, w) in words.iter_mut().enumerate() {
                        *w = mmio
                            .read_u64(layout.response_offset + 0x20 + 8 * i as u64)
                            .map_err(AdminError::transport("reading response words"))?;
                    }
                }
                Ok(Completion { id, len, words })
            })
        };

        // 9. Acknowledge on every path; an ack failure is reported only when nothing
        //    else went wrong (step 2 of the next command clears what is left).
        let acked = self.ack(chan.area);
        // 10. The lock is released when `st` drops.
        drop(st);
        match (result, acked) {
            (Ok(c), Ok(())) => Ok(c),
            (Ok(_), Err(e)) => Err(e),
            (Err(e), ack) => {
                if let Err(a) = ack {
                    tracing::warn!(error = %a, "acknowledging a failed command failed");
                }
                Err(e)
            }
        }
    }

    /// Step 8: copies the output the table describes into `out`.
    fn copy_out(
        &self,
        spec: &CommandSpec,
        layout: &AreaLayout,
        out: &mut [u8],
    ) -> Result<usize, AdminError> {
        let mmio = self.mmio();
        let op = spec.opcode;
        match spec.output {
            Output::None => Ok(0),
            Output::Raw => {
                let n = out
                    .len()
                    .min(usize::try_from(layout.data_size).unwrap_or(usize::MAX));
                let dst = out.get_mut(..n).unwrap_or_default();
                mmio.read_bytes(layout.data_offset, dst)
                    .map_err(AdminError::transport("reading output data"))?;
                Ok(n)
            }
            Output::Payload(pid) => {
                let word = mmio
                    .read_u64(layout.data_offset)
                    .map_err(AdminError::transport("reading the payload header"))?;
                let h = PayloadHeader::decode(word, pid);
                if h.id != pid.code() {
                    return Err(AdminError::Protocol {
                        opcode: op,
                        kind: ProtocolError::WrongPayloadId {
                            expected: pid,
                            seen: h.id_text(),
                            seen_code: h.id,
                        },
                    });
                }
                let limit = layout.data_size.saturating_sub(8);
                if h.length > limit {
                    return Err(AdminError::Protocol {
                        opcode: op,
                        kind: ProtocolError::LengthBeyondBuffer {
                            what: "payload length",
                            length: h.length,
                            limit,
                        },
                    });
                }
                let total = usize::try_from(8 + h.length).unwrap_or(usize::MAX);
                let n = out.len().min(total);
                let head = word.to_le_bytes();
                let k = n.min(8);
                if let (Some(dst), Some(src)) = (out.get_mut(..k), head.get(..k)) {
                    dst.copy_from_slice(src);
                }
                if n > 8 {
                    let rest = out.get_mut(8..n).unwrap_or_default();
                    mmio.read_bytes(layout.data_offset + 8, rest)
                        .map_err(AdminError::transport("reading payload data"))?;
                }
                Ok(n)
            }
        }
    }

    /// Step 9: acknowledges the area's response (CHIC, W1: only the bit meant).
    fn ack(&self, area: CommandArea) -> Result<(), AdminError> {
        self.mmio()
            .write_u64(offsets::CHIC, area.response_available())
            .map_err(AdminError::transport("acknowledging the response (CHIC)"))
    }
}
