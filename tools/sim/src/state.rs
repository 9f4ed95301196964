//! The controller's state: the register file (spec §1) and the firmware's view of the
//! command areas, dump, error-log queue and readiness. Everything here runs under the
//! card's state lock; the firmware thread and the host's trapped accesses share it.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Mutex;
use std::time::Duration;

use ocxlpmem_regs::{offsets as o, Chi, CommandArea, Hci, RequestHeader, ResponseHeader, Status};

use crate::clock::SimClock;
use crate::config::SimConfig;
use crate::counters::{bump, Counters};
use crate::errlog::{ErrorLogEntry, QueuedLog};
use crate::faults::{CommandFaults, Fault, FaultSet};
use crate::memory::{Bar0Memory, LpcMemory};

/// The parts of the card that need no state lock.
#[derive(Debug)]
pub(crate) struct Hw {
    pub cfg: SimConfig,
    pub clock: SimClock,
    pub bar0: Bar0Memory,
    pub lpc: LpcMemory,
    pub counters: Counters,
    /// Poisoned LPC ranges. Lock order: state, then poison.
    pub poison: Mutex<Vec<Range<u64>>>,
}

/// CHI bits the host can clear through CHIC (the others are levels the controller
/// derives from its state, so a CHIC write to them has no lasting effect).
const CHI_EVENTS: u64 = Chi::ACRA | Chi::NSCRA | Chi::CDA;

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
    chi_events: u64,
    chie: u64,
    pub hci: u64,
    ima: [u64; 4],
    /// Simulated time of the last power-on or reset.
    pub boot: Duration,
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
    pub fn new(now: Duration) -> Self {
        State {
            chi_events: 0,
            chie: 0,
            hci: 0,
            ima: [0; 4],
            boot: now,
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
    pub fn reset(&mut self, now: Duration) {
        self.chi_events = 0;
        self.chie = 0;
        self.hci = 0;
        self.ima = [0; 4];
        self.boot = now;
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

    /// CRDY and MA at `now`.
    pub fn readiness(&self, cfg: &SimConfig, now: Duration) -> (bool, bool) {
        if self.faults.has_any(Fault::ReadyDrops) || self.faults.has_any(Fault::NeverReady) {
            return (false, false);
        }
        let since = now.saturating_sub(self.boot);
        let crdy = since >= cfg.crdy_delay;
        let ma = crdy
            && !self.shut_down
            && !self.faults.has_any(Fault::MemoryNeverAvailable)
            && since >= cfg.crdy_delay.saturating_add(cfg.ma_delay);
        (crdy, ma)
    }

    /// The CHI value at `now`.
    pub fn chi(&self, cfg: &SimConfig, now: Duration) -> u64 {
        let (crdy, ma) = self.readiness(cfg, now);
        let mut v = self.chi_events | self.fatal_bits();
        if crdy {
            v |= Chi::CRDY;
        }
        if ma {
            v |= Chi::MA;
        }
        if !self.errlog.is_empty() {
            v |= Chi::ELA;
        }
        v & Chi::DEFINED
    }

    /// A trapped register read (offset 8-aligned, below the register file's end).
    pub fn read_register(&self, cfg: &SimConfig, now: Duration, offset: u64) -> u64 {
        let area = |a: ocxlpmem_regs::AreaLayout| a.encode();
        match offset {
            o::CHI => self.chi(cfg, now),
            o::CHIE => self.chie,
            o::HCI => self.hci,
            o::IMA0_OHP => self.ima[0],
            o::IMA0_CFP => self.ima[1],
            o::IMA1_OHP => self.ima[2],
            o::IMA1_CFP => self.ima[3],
            o::ACMA_CREQO => area(cfg.layout.admin).0,
            o::ACMA_CDBO => area(cfg.layout.admin).1,
            o::NSCMA_CREQO => area(cfg.layout.near_storage).0,
            o::NSCMA_CDBO => area(cfg.layout.near_storage).1,
            o::FWVER => u64::from_le_bytes(cfg.fwver),
            o::CCAP0 => cfg.ccap0,
            o::CCAP1 => cfg.ccap1,
            // CHIC, CHIEC, HCIC read 0 (§1 Decision); CSTS and holes read 0.
            _ => 0,
        }
    }

    /// A trapped register write. Returns true when the firmware must look (HCI changed).
    pub fn write_register(&mut self, offset: u64, value: u64) -> bool {
        match offset {
            o::CHIC => {
                self.chi_events &= !(value & CHI_EVENTS);
                if value & Chi::CDA != 0 {
                    // The host declared the dump stale: it is discarded with its indicator.
                    self.dump = None;
                }
                false
            }
            o::CHIE => {
                self.chie = value & Chi::DEFINED;
                false
            }
            o::CHIEC => {
                self.chie &= !value;
                false
            }
            o::HCI => {
                let set = value & Hci::DEFINED;
                self.hci |= set;
                set != 0
            }
            o::HCIC => {
                self.hci &= !value;
                false
            }
            o::IMA0_OHP => self.set_ima(0, value),
            o::IMA0_CFP => self.set_ima(1, value),
            o::IMA1_OHP => self.set_ima(2, value),
            o::IMA1_CFP => self.set_ima(3, value),
            // Read-only registers and holes ignore writes.
            _ => false,
        }
    }

    fn set_ima(&mut self, i: usize, v: u64) -> bool {
        if let Some(r) = self.ima.get_mut(i) {
            *r = v;
        }
        false
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
            timestamp: u64::try_from(now.saturating_sub(self.boot).as_nanos()).unwrap_or(u64::MAX),
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
        self.chi_events |= Chi::ACRA;
    }

    /// Stale state at open: an uncollected dump, or a pending CD request.
    pub fn make_stale_dump(&mut self, hw: &Hw) {
        if self.faults.has_any(Fault::DumpNeverCompletes) {
            self.hci |= Hci::CD;
        } else {
            self.produce_dump(hw);
        }
    }

    fn produce_dump(&mut self, hw: &Hw) {
        self.dump_seq = self.dump_seq.wrapping_add(1);
        self.dump = Some(crate::commands::dump_contents(&hw.cfg, self.dump_seq));
        self.chi_events |= Chi::CDA;
    }

    /// One pass of the firmware at `now`: completes due commands, takes doorbells and
    /// requests. Returns the next simulated time something is due, if any.
    pub fn service(&mut self, hw: &Hw, now: Duration) -> Option<Duration> {
        let (crdy, _) = self.readiness(&hw.cfg, now);
        if self.is_fatal() {
            return None;
        }
        if !crdy {
            // Doorbells wait for the controller; wake when CRDY is due.
            return Some(self.boot.saturating_add(hw.cfg.crdy_delay));
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
            if self.hci & area.doorbell() != 0 && self.in_flight[i].is_none() {
                self.take(hw, area, now);
                if self.is_fatal() {
                    return None;
                }
            }
        }
        if self.hci & Hci::CD != 0 && !self.faults.has_any(Fault::DumpNeverCompletes) {
            self.produce_dump(hw);
            self.hci &= !Hci::CD;
        }
        if self.hci & Hci::CDC != 0 {
            self.dump = None;
            self.chi_events &= !Chi::CDA;
            self.hci &= !Hci::CDC;
        }
        if self.hci & Hci::CHPD != 0 {
            let e = crate::commands::health_log(&hw.cfg, hw, now);
            self.push_log(hw, now, e);
            self.hci &= !Hci::CHPD;
        }
        if self.hci & Hci::AR != 0 {
            self.reset(now);
            bump(&hw.counters.resets, 1);
            return Some(self.boot.saturating_add(hw.cfg.crdy_delay));
        }
        self.in_flight.iter().flatten().filter_map(|f| f.due).min()
    }

    fn take(&mut self, hw: &Hw, area: CommandArea, now: Duration) {
        // ACRW/NSCRW clear when the request is taken, before the response (§10).
        self.hci &= !area.doorbell();
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
        self.chi_events |= area.response_available();
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
