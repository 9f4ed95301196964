//! Every command of spec §3, executed by the firmware on the data buffer's bytes.

use std::time::Duration;

use ocxlpmem_regs::payload::{params as pp, smart, stats as st};
use ocxlpmem_regs::{AreaLayout, Ccap0, CommandArea, Opcode, PayloadHeader, PayloadId, Status};

use crate::config::SimConfig;
use crate::errlog::ErrorLogEntry;
use crate::faults::CommandFaults;
use crate::state::{Hw, Outcome, State};

/// Size of the controller memory FW_DEBUG reads and writes.
pub const DEBUG_MEMORY_SIZE: usize = 0x1_0000;
/// Largest firmware image FW_UPDATE accepts.
pub const FW_IMAGE_MAX: u64 = 16 << 20;
/// LPC page size used for Secure Erase's page counts.
pub const ERASE_PAGE: u64 = 4096;
/// The first bytes of every controller dump.
pub const DUMP_MAGIC: &[u8; 16] = b"OCXLPMEM SIMDUMP";

/// The controller memory at power-on: byte i = i & 0xFF.
pub(crate) fn initial_debug_memory() -> Vec<u8> {
    (0..DEBUG_MEMORY_SIZE).map(|i| i as u8).collect()
}

/// The bytes of dump number `seq`: the magic, the sequence and serial, then a pattern.
pub fn dump_contents(cfg: &SimConfig, seq: u32) -> Vec<u8> {
    let len = cfg.effective_dump_size() as usize;
    let mut d: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seq) as u8)
        .collect();
    let mut head = DUMP_MAGIC.to_vec();
    head.extend_from_slice(&u64::from(seq).to_le_bytes());
    head.extend_from_slice(&cfg.serial.to_le_bytes());
    let n = head.len().min(len);
    d[..n].copy_from_slice(&head[..n]);
    d
}

/// The type-0x04 health & performance log a CHPD request queues.
pub(crate) fn health_log(cfg: &SimConfig, hw: &Hw, now: Duration) -> ErrorLogEntry {
    let c = hw.counters.snapshot();
    let mut data = Vec::new();
    for w in [
        u64::from(cfg.temperature_c),
        u64::from(cfg.life_remaining_pct),
        now.as_secs(),
        c.lpc_reads,
        c.lpc_writes,
    ] {
        data.extend_from_slice(&w.to_le_bytes());
    }
    ErrorLogEntry {
        log_type: ocxlpmem_regs::payload::error_log::TYPE_HEALTH_PERFORMANCE,
        action_flags: 0,
        program_reference_code: 0x0000_0004,
        data,
    }
}

fn words(ws: &[u64]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Writes a payload into the data buffer; false when it does not fit.
fn put(hw: &Hw, layout: AreaLayout, bytes: &[u8]) -> bool {
    if bytes.len() as u64 > layout.data_size {
        return false;
    }
    hw.bar0.write_bytes(layout.data_offset, bytes);
    true
}

fn put_or_fail(hw: &Hw, layout: AreaLayout, bytes: &[u8]) -> Outcome {
    if put(hw, layout, bytes) {
        Outcome::status(Status::Success)
    } else {
        // The payload does not fit the data buffer.
        Outcome::status(Status::Fail)
    }
}

/// Executes one command taken from `area`.
pub(crate) fn execute(
    s: &mut State,
    hw: &Hw,
    area: CommandArea,
    opcode: Opcode,
    params: &[u64; 7],
    now: Duration,
) -> Outcome {
    let layout = hw.cfg.layout.area(area);
    if opcode.area() != area || matches!(opcode, Opcode::Unknown(_)) {
        return Outcome::status(Status::BadOpcode);
    }
    match opcode {
        Opcode::Heartbeat => Outcome::status(Status::Success),
        Opcode::Shutdown => {
            // After SHUTDOWN the memory is unavailable until the next reset.
            s.shut_down = true;
            Outcome::status(Status::Success)
        }
        Opcode::FwUpdate => fw_update(s, hw, layout, params[0]),
        Opcode::FwDebug => fw_debug(s, hw, layout, params),
        Opcode::ErrorLog => match s.errlog.pop_front() {
            // ERRLOG with ELA = 0: FAIL, no payload (§10).
            None => Outcome::status(Status::Fail),
            Some(q) => put_or_fail(hw, layout, &q.payload(layout.data_size)),
        },
        Opcode::Smart => put_or_fail(hw, layout, &smart_payload(&hw.cfg, now)),
        Opcode::ControllerStats => put_or_fail(hw, layout, &stats_payload(&hw.cfg, hw, s, now)),
        Opcode::ControllerDump => dump_chunk(s, hw, layout, params[0]),
        Opcode::CommandCaps => {
            // Simulator format (§3.10 leaves it open): a 256-bit map of supported opcodes.
            let mut map = [0u8; 32];
            for op in Opcode::ALL {
                let v = op.as_u8();
                map[usize::from(v / 8)] |= 1 << (v % 8);
            }
            put_or_fail(hw, layout, &map)
        }
        Opcode::SecureErase => secure_erase(hw, now),
        Opcode::Unknown(_) => Outcome::status(Status::BadOpcode),
    }
}

fn fw_update(s: &mut State, hw: &Hw, layout: AreaLayout, p: u64) -> Outcome {
    let (offset, size) = pp::split_offset_size(p);
    let (offset, size) = (u64::from(offset), u64::from(size));
    let max_block = pp::FW_UPDATE_MAX_BLOCK.min(layout.data_size);
    let in_order = offset == 0 || offset == s.fw_image.len() as u64;
    if size == 0
        || !size.is_multiple_of(8)
        || size > max_block
        || !offset.is_multiple_of(8)
        || !in_order
        || offset + size > FW_IMAGE_MAX
    {
        return Outcome::status(Status::BadRequestParm);
    }
    if offset == 0 {
        s.fw_image.clear();
    }
    let mut block = vec![0u8; size as usize];
    hw.bar0.read_bytes(layout.data_offset, &mut block);
    s.fw_image.extend_from_slice(&block);
    Outcome::status(Status::Success)
}

fn fw_debug(s: &mut State, hw: &Hw, layout: AreaLayout, p: &[u64; 7]) -> Outcome {
    if hw.regs.hci() & ocxlpmem_regs::Hci::FDE == 0 {
        return Outcome::status(Status::DebugBlocked);
    }
    let (action, function) = pp::split_fw_debug(p[0]);
    let (addr, len) = (p[1], p[2]);
    let mem_range = || {
        let end = addr.checked_add(len)?;
        (end <= DEBUG_MEMORY_SIZE as u64 && len <= layout.data_size)
            .then_some(addr as usize..end as usize)
    };
    let mut out = Outcome::status(Status::Success);
    match action {
        pp::FW_DEBUG_READ_MEMORY => match mem_range() {
            Some(r) => {
                hw.bar0.write_bytes(layout.data_offset, &s.debug_memory[r]);
                out.words[0] = len;
            }
            None => return Outcome::status(Status::BadRequestParm),
        },
        pp::FW_DEBUG_WRITE_MEMORY => match mem_range() {
            Some(r) => {
                let mut b = vec![0u8; r.len()];
                hw.bar0.read_bytes(layout.data_offset, &mut b);
                s.debug_memory[r].copy_from_slice(&b);
            }
            None => return Outcome::status(Status::BadRequestParm),
        },
        pp::FW_DEBUG_ENABLE_FUNCTION => {
            s.debug_functions.insert(function);
        }
        pp::FW_DEBUG_DISABLE_FUNCTION => {
            s.debug_functions.remove(&function);
        }
        pp::FW_DEBUG_GET_PERSISTENT_LOG => {
            let text = format!(
                "SIM persistent error log: {} queued, next id {}\n",
                s.errlog.len(),
                s.next_log_id
            );
            let n = text.len().min(layout.data_size as usize);
            hw.bar0
                .write_bytes(layout.data_offset, &text.as_bytes()[..n]);
            out.words[0] = n as u64;
        }
        _ => return Outcome::status(Status::BadRequestParm),
    }
    out
}

fn smart_payload(cfg: &SimConfig, now: Duration) -> Vec<u8> {
    let hours = cfg.power_on_hours.saturating_add(now.as_secs() / 3600);
    let attrs = [
        smart::Attribute {
            id: smart::ID_POWER_ON_HOURS,
            flags: 0x0032,
            current: 100,
            threshold: 0,
            worst: 100,
            raw: hours,
        },
        smart::Attribute {
            id: smart::ID_TEMPERATURE,
            flags: 0x0022,
            current: 100u8.saturating_sub(cfg.temperature_c / 2),
            threshold: 10,
            worst: 100u8.saturating_sub(cfg.temperature_c / 2),
            raw: u64::from(cfg.temperature_c),
        },
        smart::Attribute {
            id: smart::ID_LIFE_REMAINING,
            flags: 0x0013,
            current: cfg.life_remaining_pct,
            threshold: 10,
            worst: cfg.life_remaining_pct,
            raw: u64::from(cfg.life_remaining_pct),
        },
    ];
    let mut w = vec![PayloadHeader::encode(
        PayloadId::Smart,
        attrs.len() as u64 * smart::ATTRIBUTE_SIZE,
    )];
    for a in attrs {
        w.extend_from_slice(&a.encode());
    }
    words(&w)
}

fn stats_payload(cfg: &SimConfig, hw: &Hw, s: &State, now: Duration) -> Vec<u8> {
    let c = hw.counters.snapshot();
    let latency = u64::from(Ccap0(cfg.ccap0).read_latency_ns());
    let secs32 = |d: Duration| u64::from(u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
    let mut p = vec![0u8; st::TOTAL as usize];
    let mut set = |off: u64, v: u64| {
        let o = off as usize;
        p[o..o + 8].copy_from_slice(&v.to_le_bytes());
    };
    set(
        0,
        PayloadHeader::encode(PayloadId::ControllerStats, st::LENGTH),
    );
    set(
        st::BLOCK1_HEADER,
        st::block_header(st::BLOCK1_ID, st::BLOCK1_LENGTH),
    );
    set(
        st::RESET,
        (u64::from(s.reset_count) << 32) | secs32(now.saturating_sub(hw.regs.boot())),
    );
    set(
        st::UPTIME_LIFE,
        (secs32(now) << 32) | u64::from(cfg.life_remaining_pct),
    );
    set(
        st::BLOCK2_HEADER,
        st::block_header(st::BLOCK2_ID, st::BLOCK2_LENGTH),
    );
    set(st::CRITICAL_RESOURCE, 0);
    set(st::HOST_LOAD_COUNT, c.lpc_reads);
    set(st::HOST_STORE_COUNT, c.lpc_writes);
    set(st::HOST_LOAD_DURATION, c.lpc_reads.saturating_mul(latency));
    set(
        st::HOST_STORE_DURATION,
        c.lpc_writes.saturating_mul(latency),
    );
    set(st::MEDIA_READ_COUNT, c.lpc_reads);
    set(st::MEDIA_WRITE_COUNT, c.lpc_writes);
    set(st::MEDIA_READ_DURATION, c.lpc_reads.saturating_mul(latency));
    set(
        st::MEDIA_WRITE_DURATION,
        c.lpc_writes.saturating_mul(latency),
    );
    p
}

fn dump_chunk(s: &State, hw: &Hw, layout: AreaLayout, p: u64) -> Outcome {
    let (offset, chunk) = pp::split_offset_size(p);
    let (offset, chunk) = (u64::from(offset), u64::from(chunk));
    let max = layout.data_size.saturating_sub(8).min(pp::DUMP_MAX_CHUNK);
    if chunk == 0 || !chunk.is_multiple_of(8) || chunk > max || !offset.is_multiple_of(8) {
        return Outcome::status(Status::BadRequestParm);
    }
    let Some(dump) = &s.dump else {
        // No dump available (never requested, collected, or discarded).
        return Outcome::status(Status::Fail);
    };
    let start = (offset as usize).min(dump.len());
    let end = start.saturating_add(chunk as usize).min(dump.len());
    let bytes = &dump[start..end];
    let mut out = PayloadHeader::encode(PayloadId::ControllerDump, bytes.len() as u64)
        .to_le_bytes()
        .to_vec();
    out.extend_from_slice(bytes);
    put_or_fail(hw, layout, &out)
}

fn secure_erase(hw: &Hw, now: Duration) -> Outcome {
    let (_, ma) = hw.regs.readiness(&hw.cfg, || now);
    if !ma {
        return Outcome::status(Status::MemUnavailable);
    }
    if hw.lpc.erase().is_err() {
        return Outcome::status(Status::Fail);
    }
    let pages = hw.lpc.size() / ERASE_PAGE;
    let defective = {
        let poison = hw.poison.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<u64> = poison
            .iter()
            .flat_map(|r| (r.start / ERASE_PAGE)..r.end.div_ceil(ERASE_PAGE))
            .collect();
        v.sort_unstable();
        v.dedup();
        v.len() as u64
    };
    let accessible = pages.saturating_sub(defective);
    let mut out = Outcome::status(Status::Success);
    // Response +0x20..+0x38 (§3.11): words 3..6 of the +0x08.. array.
    out.words[3] = accessible;
    out.words[4] = accessible;
    out.words[5] = defective;
    out.words[6] = defective;
    out
}

/// Applies the malformed-payload faults to the payload header just written.
pub(crate) fn corrupt_payload(hw: &Hw, layout: AreaLayout, opcode: Opcode, f: &CommandFaults) {
    let id = match opcode {
        Opcode::ErrorLog => PayloadId::ErrorLog,
        Opcode::Smart => PayloadId::Smart,
        Opcode::ControllerStats => PayloadId::ControllerStats,
        Opcode::ControllerDump => PayloadId::ControllerDump,
        _ => return,
    };
    let mut w = hw.bar0.read_u64(layout.data_offset);
    if f.bad_payload_id {
        w = (w & 0x0000_FFFF_FFFF_FFFF) | (0x5858u64 << 48);
    }
    if let Some(len) = f.payload_length {
        let mask = (1u64 << id.length_bits()) - 1;
        w = (w & !mask) | (len & mask);
    }
    hw.bar0.write_u64(layout.data_offset, w);
}
