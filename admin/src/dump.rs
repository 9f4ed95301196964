//! Controller dump (§3.8): request, chunked fetch (resumable at any offset), complete.

use crate::admin::Admin;
use crate::error::{AdminError, ProtocolError};
use crate::table;
use crate::wait::poll_until;
use ocxlpmem_regs::payload::params;
use ocxlpmem_regs::{offsets, Chi, Hci, Opcode};
use std::io::Write;

/// Progress of a dump fetch, given to the caller's callback after every chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpProgress {
    /// Dump bytes fetched so far (the next chunk's offset).
    pub offset: u64,
    /// CCAP1's maximum dump size (the dump is at most this long; 0 if the card says 0).
    pub max_size: u64,
}

impl Admin {
    /// Collects a whole dump: request, fetch from offset 0 to the end into `writer`
    /// (calling `progress` after each chunk), complete. Returns the dump's length.
    /// If a fetch fails, the dump is left pending so [`Admin::dump_resume`] can continue
    /// at the offset reached (reported by the last progress call).
    pub fn dump(
        &self,
        writer: &mut dyn Write,
        progress: &mut dyn FnMut(DumpProgress),
    ) -> Result<u64, AdminError> {
        let _g = self.dump_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.dump_request_locked()?;
        let len = self.dump_resume_locked(0, writer, progress)?;
        self.dump_complete_locked()?;
        Ok(len)
    }

    /// §3.8 step 1: clears a stale CDA, sets HCI.CD and waits (bounded by
    /// [`crate::AdminOptions::dump_timeout`]) until the controller clears CD and sets CDA.
    pub fn dump_request(&self) -> Result<(), AdminError> {
        let _g = self.dump_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.dump_request_locked()
    }

    /// §3.8 step 2 for one chunk: fetches dump bytes at `offset` (8-byte aligned) into
    /// `buf`, at most min(buf, data_size - 8, 0xFFF8) bytes. Returns the bytes fetched;
    /// 0 means the end of the dump.
    pub fn dump_fetch(&self, offset: u64, buf: &mut [u8]) -> Result<usize, AdminError> {
        let _g = self.dump_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.dump_fetch_locked(offset, buf)
    }

    /// Fetches from `offset` to the end of a dump already requested (CHI.CDA set),
    /// without completing it. Returns the end offset (the dump's length).
    pub fn dump_resume(
        &self,
        offset: u64,
        writer: &mut dyn Write,
        progress: &mut dyn FnMut(DumpProgress),
    ) -> Result<u64, AdminError> {
        let _g = self.dump_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.dump_resume_locked(offset, writer, progress)
    }

    /// §3.8 step 3: sets HCI.CDC and waits (bounded) for the controller to drop CDA.
    pub fn dump_complete(&self) -> Result<(), AdminError> {
        let _g = self.dump_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.dump_complete_locked()
    }

    fn dump_request_locked(&self) -> Result<(), AdminError> {
        self.clear_chi(Chi::CDA)?;
        self.set_hci(Hci::CD)?;
        let ready = poll_until(&self.options().poll, self.options().dump_timeout, || {
            let hci = self.read_hci()?;
            if hci & Hci::CD != 0 {
                return Ok(None);
            }
            Ok(self.read_chi()?.cda().then_some(()))
        })?;
        ready.map_err(|waited| AdminError::WaitTimeout {
            what: "the controller dump to be ready (HCI.CD cleared, CHI.CDA set)",
            register: offsets::HCI,
            waited,
            last: self.read_hci().unwrap_or(u64::MAX),
        })
    }

    fn dump_complete_locked(&self) -> Result<(), AdminError> {
        self.set_hci(Hci::CDC)?;
        let freed = poll_until(&self.options().poll, self.options().dump_timeout, || {
            Ok((!self.read_chi()?.cda()).then_some(()))
        })?;
        freed.map_err(|waited| AdminError::WaitTimeout {
            what: "the controller to free the dump (CHI.CDA to drop after HCI.CDC)",
            register: offsets::CHI,
            waited,
            last: self.read_chi().map(Chi::bits).unwrap_or(u64::MAX),
        })
    }

    fn dump_fetch_locked(&self, offset: u64, buf: &mut [u8]) -> Result<usize, AdminError> {
        let op = Opcode::ControllerDump;
        let limit = self
            .admin
            .layout
            .data_size
            .saturating_sub(8)
            .min(params::DUMP_MAX_CHUNK)
            .min(buf.len() as u64);
        let chunk = limit & !7;
        let off32 = u32::try_from(offset)
            .ok()
            .filter(|_| offset.is_multiple_of(8));
        let (Some(off32), true) = (off32, chunk >= 8) else {
            return Err(AdminError::InvalidArgument {
                opcode: op,
                reason: format!(
                    "dump offset {offset:#x} must be 8-byte aligned and below 4 GiB, and the \
                     buffer ({} bytes) must hold at least 8",
                    buf.len()
                ),
            });
        };
        if self.max_dump_size != 0 && offset >= self.max_dump_size {
            // Nothing can lie past CCAP1's maximum: that is the end.
            return Ok(0);
        }
        // chunk <= 0xFFF8, so it fits both u32 and usize.
        let mut tmp = vec![0u8; 8 + chunk as usize];
        let param = params::dump_chunk(off32, chunk as u32);
        let c = self.send(&table::CONTROLLER_DUMP, &[param], &[], &mut tmp)?;
        let got = c.len.saturating_sub(8) as u64;
        let header = tmp.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok());
        let reported = header.map_or(0, |h| u64::from_le_bytes(h) & 0xFFFF);
        if reported > chunk {
            return Err(AdminError::Protocol {
                opcode: op,
                kind: ProtocolError::LengthBeyondBuffer {
                    what: "dump chunk length",
                    length: reported,
                    limit: chunk,
                },
            });
        }
        if self.max_dump_size != 0 && offset + reported > self.max_dump_size {
            return Err(AdminError::Protocol {
                opcode: op,
                kind: ProtocolError::LengthBeyondBuffer {
                    what: "dump end offset (CCAP1 maximum dump size)",
                    length: offset + reported,
                    limit: self.max_dump_size,
                },
            });
        }
        let n = usize::try_from(got.min(reported)).unwrap_or(0);
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), tmp.get(8..8 + n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }

    fn dump_resume_locked(
        &self,
        mut offset: u64,
        writer: &mut dyn Write,
        progress: &mut dyn FnMut(DumpProgress),
    ) -> Result<u64, AdminError> {
        let chunk = usize::try_from(
            self.admin
                .layout
                .data_size
                .saturating_sub(8)
                .min(params::DUMP_MAX_CHUNK),
        )
        .unwrap_or(0);
        let mut buf = vec![0u8; chunk];
        loop {
            let n = self.dump_fetch_locked(offset, &mut buf)?;
            if n == 0 {
                return Ok(offset);
            }
            let bytes = buf.get(..n).unwrap_or_default();
            writer
                .write_all(bytes)
                .map_err(|source| AdminError::Write { offset, source })?;
            offset += n as u64;
            progress(DumpProgress {
                offset,
                max_size: self.max_dump_size,
            });
            if n % 8 != 0 {
                // A short, unaligned chunk can only be the last one; the next offset
                // would be unaligned, so stop here.
                return Ok(offset);
            }
        }
    }
}
