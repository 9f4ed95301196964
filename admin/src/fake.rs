//! A scripted card for unit tests of the send path: it answers a doorbell synchronously
//! inside the HCI write, with the W1 semantics of §1, and records every request block.
//! (The simulator is the full model; this fake only makes the protocol steps visible.)

use ocxlpmem_regs::{offsets, Chi, Hci, Mmio, MmioError, RequestHeader, ResponseHeader, Status};
use ocxlpmem_regs::{CommandArea, VecMmio};
use std::collections::VecDeque;
use std::sync::Mutex;

pub(crate) const ADMIN_REQ: u64 = 0x400;
pub(crate) const ADMIN_RSP: u64 = 0x440;
pub(crate) const ADMIN_DATA: u64 = 0x1000;
pub(crate) const ADMIN_DATA_SIZE: u64 = 0x8000;
pub(crate) const NS_REQ: u64 = 0x500;
pub(crate) const NS_RSP: u64 = 0x540;
pub(crate) const NS_DATA: u64 = 0x9000;
pub(crate) const NS_DATA_SIZE: u64 = 0x1000;

/// A request the fake saw: its 8 words and HCI at the time of the doorbell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) area: CommandArea,
    pub(crate) words: [u64; 8],
    pub(crate) hci: u64,
}

/// How the fake answers.
#[derive(Debug, Default)]
pub(crate) struct Script {
    /// Statuses for the next commands (SUCCESS once empty).
    pub(crate) statuses: VecDeque<u8>,
    /// Echo `id + echo_skew` instead of the id.
    pub(crate) echo_skew: u16,
    /// Do not answer (a command that times out).
    pub(crate) silent: bool,
    /// Answer first with this stale id; the real answer follows the acknowledgement.
    pub(crate) late_first: Option<u16>,
    /// Bytes put into the data buffer on every answer.
    pub(crate) payload: Option<Vec<u8>>,
    /// Response words +0x20..+0x38 (near-storage).
    pub(crate) words: [u64; 4],
    /// Fail the next write at this offset with an I/O error.
    pub(crate) fail_write_at: Option<u64>,
}

pub(crate) struct FakeCard {
    pub(crate) mem: VecMmio,
    pub(crate) seen: Mutex<Vec<Seen>>,
    pub(crate) script: Mutex<Script>,
    /// An answer posted when the host acknowledges the current one.
    after_ack: Mutex<Option<(CommandArea, u64)>>,
}

impl FakeCard {
    pub(crate) fn new() -> Self {
        let mem = VecMmio::new(0x10000);
        let put = |o, v| mem.write_u64(o, v).unwrap();
        put(offsets::CHI, Chi::CRDY | Chi::MA);
        put(offsets::ACMA_CREQO, (ADMIN_REQ << 32) | ADMIN_RSP);
        put(offsets::ACMA_CDBO, (ADMIN_DATA << 32) | ADMIN_DATA_SIZE);
        put(offsets::NSCMA_CREQO, (NS_REQ << 32) | NS_RSP);
        put(offsets::NSCMA_CDBO, (NS_DATA << 32) | NS_DATA_SIZE);
        put(offsets::CCAP1, 0x10_0000);
        Self {
            mem,
            seen: Mutex::new(Vec::new()),
            script: Mutex::new(Script::default()),
            after_ack: Mutex::new(None),
        }
    }

    pub(crate) fn chi(&self) -> u64 {
        self.mem.read_u64(offsets::CHI).unwrap()
    }

    pub(crate) fn set_chi(&self, v: u64) {
        self.mem.write_u64(offsets::CHI, v).unwrap();
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn post(&self, area: CommandArea, header: u64) {
        let rsp = match area {
            CommandArea::Admin => ADMIN_RSP,
            CommandArea::NearStorage => NS_RSP,
        };
        self.mem.write_u64(rsp, header).unwrap();
        let chi = self.chi();
        self.set_chi(chi | area.response_available());
    }

    fn execute(&self, area: CommandArea, hci: u64) {
        let (req, rsp, data) = match area {
            CommandArea::Admin => (ADMIN_REQ, ADMIN_RSP, ADMIN_DATA),
            CommandArea::NearStorage => (NS_REQ, NS_RSP, NS_DATA),
        };
        let mut words = [0u64; 8];
        for (i, w) in words.iter_mut().enumerate() {
            *w = self.mem.read_u64(req + 8 * i as u64).unwrap();
        }
        self.seen.lock().unwrap().push(Seen { area, words, hci });
        // The controller takes the request: the doorbell bit drops.
        let h = self.mem.read_u64(offsets::HCI).unwrap();
        self.mem
            .write_u64(offsets::HCI, h & !area.doorbell())
            .unwrap();
        let mut s = self.script.lock().unwrap();
        if s.silent {
            return;
        }
        let id = RequestHeader::decode(words[0]).id;
        let status = Status::from_u8(s.statuses.pop_front().unwrap_or(0));
        if let Some(p) = &s.payload {
            self.mem.write_bytes(data, p).unwrap();
        }
        for (i, w) in s.words.iter().enumerate() {
            self.mem.write_u64(rsp + 0x20 + 8 * i as u64, *w).unwrap();
        }
        let header = ResponseHeader {
            status,
            id: id.wrapping_add(s.echo_skew),
        }
        .encode();
        if let Some(old) = s.late_first.take() {
            *self.after_ack.lock().unwrap() = Some((area, header));
            self.post(
                area,
                ResponseHeader {
                    status: Status::Success,
                    id: old,
                }
                .encode(),
            );
        } else {
            self.post(area, header);
        }
    }
}

impl Mmio for FakeCard {
    fn size(&self) -> u64 {
        self.mem.size()
    }

    fn read_u64(&self, offset: u64) -> Result<u64, MmioError> {
        self.mem.read_u64(offset)
    }

    fn write_u64(&self, offset: u64, value: u64) -> Result<(), MmioError> {
        {
            let mut s = self.script.lock().unwrap();
            if s.fail_write_at == Some(offset) {
                s.fail_write_at = None;
                return Err(MmioError::Io {
                    offset,
                    source: std::io::Error::from_raw_os_error(libc_eio()),
                });
            }
        }
        match offset {
            offsets::CHIC => {
                self.set_chi(self.chi() & !value);
                if let Some((area, header)) = self.after_ack.lock().unwrap().take() {
                    self.post(area, header);
                }
                Ok(())
            }
            offsets::HCIC => {
                let h = self.mem.read_u64(offsets::HCI)?;
                self.mem.write_u64(offsets::HCI, h & !value)
            }
            offsets::HCI => {
                self.mem.write_u64(offsets::HCI, value)?;
                if value & Hci::ACRW != 0 {
                    self.execute(CommandArea::Admin, value);
                }
                if value & Hci::NSCRW != 0 {
                    self.execute(CommandArea::NearStorage, value);
                }
                Ok(())
            }
            _ => self.mem.write_u64(offset, value),
        }
    }
}

/// EIO without a libc dependency.
const fn libc_eio() -> i32 {
    5
}
