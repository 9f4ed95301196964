//! The controller's state: the register file (spec §1) and the firmware's view of the
//! command areas, dump, error-log queue and readiness. Everything here runs under the
//! card's state lock; the firmware thread and the host's trapped accesses share it.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Mutex;
use std::time::Duration;

use ocxlpmem_regs::{Chi, CommandArea, Hci, RequestHeader, ResponseHeader, Status};

use crate::clock::SimClock;
use crate::config::SimConfig;
use crate::counters::{bump, Counters};
use crate::errlog::{ErrorLogEntry, QueuedLog};
use crate::faults::{CommandFaults, Fault, FaultSet};
use crate::memory::{Bar0Memory, LpcMemory};
use crate::regfile::{Regs, CRDY_BLOCKED, MA_BLOCKED};

/// The parts of the card that need no state lock.
#[derive(Debug)]
pub(crate) struct Hw {
    pub cfg: SimConfig,
    pub clock: SimClock,
    pub bar0: Bar0Memory,
    pub lpc: LpcMemory,
    pub counters: Counters,
    pub regs: Regs,
    /// Poisoned LPC ranges. Lock order: state, then poison.
    pub poison: Mutex<Vec<Range<u64>>>,
}

/// A command taken by the firmware and not answered yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InFlight {
    pub header: RequestHeader,
    pub params: [u64; 7],
    /// When it completes (simulated time); `None` = never (timeout fault).
    pub due: Option<Duration>,
    pub faults: CommandFaults,
}

/// What executing a command produced.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    pub status: Status,
    /// Response words +0x08..+0x38.
    pub words: [u64; 7],
}

impl Outcome {
    pub fn status(status: Status) -> Self {
        Outcome {
            status,
            words: [0; 7],
        }
    }
}

/// Maximum queued error logs; the oldest is dropped beyond it.
pub(crate) const ERRLOG_QUEUE_MAX: usize = 256;

#[derive(Debug)]
pub(crate) struct State {
    pub shut_down: bool,
    /// Fatal bits entered through a once-fault (cleared by reset or clear_faults).
    pub entered_fatal: u64,
    pub faults: FaultSet,
    pub in_flight: [Option<InFlight>; 2],
    pub errlog: VecDeque<QueuedLog>,
    pub next_log_id: u32,
    pub dump: Option<Vec<u8>>,
    pub dump_seq: u32,
    pub fw_image: Vec<u8>,
    pub debug_memory: Vec<u8>,
    pub debug_functions: std::collections::BTreeSet<u16>,
    pub reset_count: u32,
}

pub(crate) fn area_index(area: CommandArea) -> usize {
    match area {
        CommandArea::Admin => 0,
        CommandArea::NearStorage => 1,
    }
}

const AREAS: [CommandArea; 2] = [CommandArea::Admin, CommandArea::NearStorage];

impl State {
    pub fn new() -> Self {
        State {
            shut_down: false,
            entered_fatal: 0,
            faults: FaultSet::default(),
            in_flight: [None, None],
            errlog: VecDeque::new(),
            next_log_id: 1,
            dump: None,
            dump_seq: 0,
            fw_image: Vec::new(),
            debug_memory: crate::commands::initial_debug_memory(),
            debug_functions: Default::default(),
            reset_count: 0,
        }
    }

    /// Controller reset (spec §10): CHI and HCI clear, readiness runs again, in-flight
    /// commands and a pending dump are dropped; error logs and LPC memory are kept.
    pub fn reset(&mut self, hw: &Hw, now: Duration) {
        hw.regs.reset(now);
        self.shut_down = false;
        self.entered_fatal = 0;
        self.in_flight = [None, None];
        self.dump = None;
        self.reset_count = self.reset_count.saturating_add(1);
    }

    fn fatal_bits(&self) -> u64 {
        let mut f = self.entered_fatal;
        if self.faults.has(Fault::FirmwareFatal) {
            f |= Chi::CFFS;
        }
        if self.faults.has(Fault::HardwareFatal) {
            f |= Chi::CHFS;
        }
        f
    }

    /// True when the firmware has stopped (CFFS or CHFS).
    pub fn is_fatal(&self) -> bool {
        self.fatal_bits() != 0
    }

    /// Publishes the level bits the registers show (ELA, fatal bits, readiness blocks).
    pub fn publish(&self, hw: &Hw) {
        let mut v = self.fatal_bits();
        if !self.errlog.is_empty() {
            v |= Chi::ELA;
        }
        if self.faults.has_any(Fault::ReadyDrops) || self.faults.has_any(Fault::NeverReady) {
            v |= CRDY_BLOCKED;
        }
        if self.shut_down || self.faults.has_any(Fault::MemoryNeverAvailable) {
            v |= MA_BLOCKED;
        }
        // Store only on change: the host polls this line.
        if hw.regs.levels.load(std::sync::atomic::Ordering::Acquire) != v {
            hw.regs.levels.store(v, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Queues an error log (the oldest is dropped beyond [`ERRLOG_QUEUE_MAX`]).
    pub fn push_log(&mut self, hw: &Hw, now: Duration, e: ErrorLogEntry) -> u32 {
        let id = self.next_log_id;
        self.next_log_id = self.next_log_id.wrapping_add(1).max(1);
        if self.errlog.len() >= ERRLOG_QUEUE_MAX {
            self.errlog.pop_front();
        }
        self.errlog.push_back(QueuedLog {
            id,
            entry: e,
            power_on_seconds: u32::try_from(now.as_secs()).unwrap_or(u32::MAX),
            timestamp: u64::try_from(now.saturating_sub(hw.regs.boot()).as_nanos())
                .unwrap_or(u64::MAX),
            wwid: hw.cfg.wwid,
            fw_revision: hw.cfg.fwver,
        });
        id
    }

    /// Stale state at open: a response with id 0xDEAD and ACRA set.
    pub fn make_stale_acra(&mut self, hw: &Hw) {
        let rsp = hw.cfg.layout.admin.response_offset;
        hw.bar0.write_u64(
            rsp,
            ResponseHeader {
                status: Status::Success,
                id: 0xDEAD,
            }
            .encode(),
        );
        hw.regs.post(Chi::ACRA);
    }

    /// Stale state at open: an uncollected dump, or a pending CD request.
    pub fn make_stale_dump(&mut self, hw: &Hw) {
        if self.faults.has_any(Fault::DumpNeverCompletes) {
            hw.regs.request(Hci::CD);
        } else {
            self.produce_dump(hw);
        }
    }

    fn produce_dump(&mut self, hw: &Hw) {
        self.dump_seq = self.dump_seq.wrapping_add(1);
        self.dump = Some(crate::commands::dump_contents(&hw.cfg, self.dump_seq));
        hw.regs.post(Chi::CDA);
    }

    /// One pass of the firmware at `now`: completes due commands, takes doorbells and
    /// requests. Returns the next simulated time something is due, if any.
    pub fn service(&mut self, hw: &Hw, now: Duration) -> Option<Duration> {
        self.publish(hw);
        let next = self.service_inner(hw, now);
        self.publish(hw);
        next
    }

    fn service_inner(&mut self, hw: &Hw, now: Duration) -> Option<Duration> {
        let (crdy, _) = hw.regs.readiness(&hw.cfg, || now);
        if self.is_fatal() {
            return None;
        }
        if !crdy {
            // Doorbells wait for the controller; wake when CRDY is due.
            return Some(hw.regs.boot().saturating_add(hw.cfg.crdy_delay));
        }
        for area in AREAS {
            let i = area_index(area);
            if let Some(f) = self.in_flight[i] {
                if f.due.is_some_and(|d| d <= now) {
                    self.in_flight[i] = None;
                    self.complete(hw, area, f, now);
                }
            }
        }
        for area in AREAS {
            let i = area_index(area);
            if hw.regs.hci() & area.doorbell() != 0 && self.in_flight[i].is_none() {
                self.take(hw, area, now);
                if self.is_fatal() {
                    return None;
                }
            }
        }
        let hci = hw.regs.hci();
        if hci & Hci::CD != 0 && !self.faults.has_any(Fault::DumpNeverCompletes) {
            self.produce_dump(hw);
            hw.regs.consume(Hci::CD);
        }
        if hci & Hci::CDC != 0 {
            self.dump = None;
            hw.regs.unpost(Chi::CDA);
            hw.regs.consume(Hci::CDC);
        }
        if hci & Hci::CHPD != 0 {
            let e = crate::commands::health_log(&hw.cfg, hw, now);
            self.push_log(hw, now, e);
            self.publish(hw);
            hw.regs.consume(Hci::CHPD);
        }
        if hci & Hci::AR != 0 {
            self.reset(hw, now);
            self.publish(hw);
            bump(&hw.counters.resets, 1);
            return Some(hw.regs.boot().saturating_add(hw.cfg.crdy_delay));
        }
        self.in_flight.iter().flatten().filter_map(|f| f.due).min()
    }

    fn take(&mut self, hw: &Hw, area: CommandArea, now: Duration) {
        // ACRW/NSCRW clear when the request is taken, before the response (§10).
        hw.regs.consume(area.doorbell());
        let req = hw.cfg.layout.area(area).request_offset;
        let header = RequestHeader::decode(hw.bar0.read_u64(req));
        let mut params = [0u64; 7];
        for (n, p) in params.iter_mut().enumerate() {
            *p = hw.bar0.read_u64(req + 8 * (n as u64 + 1));
        }
        let opcode = header.opcode.as_u8();
        hw.counters.command(opcode);
        let faults = self.faults.take_command(area, opcode);
        if faults.fatal != 0 {
            // The controller dies with this command in hand: it is never answered.
            self.entered_fatal |= faults.fatal;
            self.in_flight[area_index(area)] = Some(InFlight {
                header,
                params,
                due: None,
                faults,
            });
            return;
        }
        let due = if faults.timeout {
            None
        } else {
            Some(now.saturating_add(faults.delay.unwrap_or_default()))
        };
        let f = InFlight {
            header,
            params,
            due,
            faults,
        };
        if due.is_some_and(|d| d <= now) {
            self.complete(hw, area, f, now);
        } else {
            self.in_flight[area_index(area)] = Some(f);
        }
    }

    fn complete(&mut self, hw: &Hw, area: CommandArea, f: InFlight, now: Duration) {
        let layout = hw.cfg.layout.area(area);
        let out = match f.faults.status {
            Some(s) => Outcome::status(Status::from_u8(s)),
            None => {
                let o = crate::commands::execute(self, hw, area, f.header.opcode, &f.params, now);
                if o.status.is_success() {
                    crate::commands::corrupt_payload(hw, layout, f.header.opcode, &f.faults);
                }
                o
            }
        };
        let id = if f.faults.wrong_id {
            f.header.id ^ 0x8000
        } else {
            f.header.id
        };
        for (n, w) in out.words.iter().enumerate() {
            hw.bar0
                .write_u64(layout.response_offset + 8 * (n as u64 + 1), *w);
        }
        hw.bar0.write_u64(
            layout.response_offset,
            ResponseHeader {
                status: out.status,
                id,
            }
            .encode(),
        );
        // Levels the command changed (ELA, MA) are visible before its response is.
        self.publish(hw);
        hw.regs.post(area.response_available());
    }

    /// Clears every fault; commands held by a timeout complete at the next pass.
    pub fn clear_faults(&mut self, now: Duration) {
        self.faults.clear();
        self.entered_fatal = 0;
        for f in self.in_flight.iter_mut().flatten() {
            if f.due.is_none() {
                f.due = Some(now);
                f.faults.timeout = false;
                f.faults.fatal = 0;
            }
        }
    }
}
