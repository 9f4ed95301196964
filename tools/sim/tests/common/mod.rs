//! Helpers for the simulator tests: raw register reads and writes only, as a driver
//! would do them from the spec (no driver code).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use ocxlpmem_regs::{offsets as o, AreaLayout, Chi, CommandArea, Mmio, Opcode, RequestHeader};
use ocxlpmem_sim::{ClockMode, SimCard, SimConfig, SimMmio};

/// Bound for waiting on the firmware thread (never reached by a healthy model).
pub const WAIT: Duration = Duration::from_secs(5);

/// A manual-clock card (32 MiB) made ready by advancing its clock.
pub fn ready_card() -> SimCard {
    let card = manual_card(SimConfig::default());
    card.clock().advance(Duration::from_millis(10));
    assert!(Chi(chi(&card)).is_ready());
    card
}

/// A manual-clock card with a 32 MiB LPC memory built from `cfg`.
pub fn manual_card(mut cfg: SimConfig) -> SimCard {
    cfg.clock = ClockMode::Manual;
    cfg.lpc_size = 32 << 20;
    SimCard::new(cfg).expect("card")
}

pub fn chi(card: &SimCard) -> u64 {
    card.mmio().read_u64(o::CHI).expect("CHI")
}

pub fn read(card: &SimCard, off: u64) -> u64 {
    card.mmio().read_u64(off).expect("read")
}

pub fn write(card: &SimCard, off: u64, v: u64) {
    card.mmio().write_u64(off, v).expect("write")
}

/// The area layout as read from the registers (§2.1).
pub fn layout(card: &SimCard, area: CommandArea) -> AreaLayout {
    AreaLayout::decode(
        read(card, area.offsets_register()),
        read(card, area.buffer_register()),
    )
}

/// Polls until `f(CHI)` holds; panics after [`WAIT`] (a model bug, not a timing test).
pub fn wait_chi(card: &SimCard, what: &str, f: impl Fn(u64) -> bool) -> u64 {
    let end = Instant::now() + WAIT;
    loop {
        let c = chi(card);
        if f(c) {
            return c;
        }
        assert!(Instant::now() < end, "waiting for {what}: CHI = {c:#x}");
        std::thread::yield_now();
    }
}

/// Polls until `f(HCI)` holds.
pub fn wait_hci(card: &SimCard, what: &str, f: impl Fn(u64) -> bool) -> u64 {
    let end = Instant::now() + WAIT;
    loop {
        let h = read(card, o::HCI);
        if f(h) {
            return h;
        }
        assert!(Instant::now() < end, "waiting for {what}: HCI = {h:#x}");
        std::thread::yield_now();
    }
}

/// Sends one command (§2.4 steps 3-6) and returns the response header word; does not
/// acknowledge.
pub fn send(card: &SimCard, area: CommandArea, op: u8, id: u16, params: &[u64]) -> u64 {
    let l = layout(card, area);
    let m = card.mmio();
    for n in 0..7u64 {
        let p = params.get(n as usize).copied().unwrap_or(0);
        m.write_u64(l.request_offset + 8 * (n + 1), p).unwrap();
    }
    let h = RequestHeader {
        opcode: Opcode::from_u8(op),
        id,
    };
    m.write_u64(l.request_offset, h.encode()).unwrap();
    let hci = m.read_u64(o::HCI).unwrap();
    m.write_u64(o::HCI, hci | area.doorbell()).unwrap();
    wait_chi(card, "response available", |c| {
        c & area.response_available() != 0
    });
    m.read_u64(l.response_offset).unwrap()
}

/// Acknowledges a response (§2.4 step 9).
pub fn ack(card: &SimCard, area: CommandArea) {
    write(card, o::CHIC, area.response_available());
}

/// Sends, checks the echoed id, acknowledges; returns the status byte.
pub fn command(card: &SimCard, area: CommandArea, op: u8, id: u16, params: &[u64]) -> u8 {
    let rsp = send(card, area, op, id, params);
    ack(card, area);
    assert_eq!((rsp >> 16) & 0xFFFF, u64::from(id), "echoed id");
    (rsp & 0xFF) as u8
}

/// The data buffer's first `len` bytes.
pub fn data(card: &SimCard, area: CommandArea, len: usize) -> Vec<u8> {
    let l = layout(card, area);
    let mut b = vec![0u8; len];
    card.mmio().read_bytes(l.data_offset, &mut b).unwrap();
    b
}

/// Little-endian word `n` of a byte buffer.
pub fn word(b: &[u8], off: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(w)
}

pub fn mmio(card: &SimCard) -> SimMmio {
    card.mmio()
}
