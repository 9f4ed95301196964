//! Every command of spec §3, byte by byte, through raw register accesses.

mod common;

use common::*;
use ocxlpmem_regs::CommandArea::{Admin, NearStorage};

#[test]
fn heartbeat_succeeds_and_echoes_the_id() {
    let card = ready_card();
    assert_eq!(command(&card, Admin, 0x00, 1, &[]), 0x00);
    assert_eq!(command(&card, Admin, 0x00, 0xFFFF, &[]), 0x00);
    assert_eq!(card.counters().commands.get(&0), Some(&2));
    // Acknowledged: ACRA reads 0 again.
    assert_eq!(chi(&card) & 1, 0);
}

#[test]
fn unknown_opcode_is_bad_opcode() {
    let card = ready_card();
    assert_eq!(command(&card, Admin, 0x42, 3, &[]), 0x50);
    // Secure Erase belongs to the near-storage area.
    assert_eq!(command(&card, Admin, 0x20, 4, &[]), 0x50);
    assert_eq!(command(&card, NearStorage, 0x00, 5, &[]), 0x50);
}
