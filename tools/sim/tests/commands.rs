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

use ocxlpmem_regs::payload::{error_log as el, params, smart, stats as st};
use ocxlpmem_regs::{offsets as o, Chi, Hci, Mmio};
use ocxlpmem_sim::ErrorLogEntry;

fn log(t: u8, data: &[u8]) -> ErrorLogEntry {
    ErrorLogEntry {
        log_type: t,
        action_flags: el::ACTION_DUMP,
        program_reference_code: 0x1234_5678,
        data: data.to_vec(),
    }
}

#[test]
fn errlog_pops_one_entry_per_command_and_ela_follows_the_queue() {
    let card = ready_card();
    assert_eq!(chi(&card) & Chi::ELA, 0);
    let id1 = card.push_error_log(log(0, b"first entry!"));
    let id2 = card.push_error_log(log(3, &[]));
    assert_ne!(id1, id2);
    assert_ne!(chi(&card) & Chi::ELA, 0);

    assert_eq!(command(&card, Admin, 0x04, 1, &[]), 0);
    let d = data(&card, Admin, 0x48 + 12);
    let h = word(&d, 0);
    assert_eq!(h >> 48, 0x454C, "EL");
    assert_eq!(h & 0xFFFF, 0x40 + 12, "L = fixed 0x40 + variable data");
    assert_eq!(el::split_ids(word(&d, 0x08)), (id1, 0x1234_5678));
    let (t, flags, _secs) = el::split_type_flags(word(&d, 0x10));
    assert_eq!((t, flags), (0, el::ACTION_DUMP));
    let wwid = card.config().wwid;
    assert_eq!(&d[0x20..0x30], &wwid);
    assert_eq!(&d[0x30..0x38], b"SIM 1.0 ");
    assert_eq!(&d[0x38..0x48], &[0u8; 16], "reserved");
    assert_eq!(&d[0x48..], b"first entry!");
    // One entry left: ELA stays set.
    assert_ne!(chi(&card) & Chi::ELA, 0);

    assert_eq!(command(&card, Admin, 0x04, 2, &[]), 0);
    let d = data(&card, Admin, 0x48);
    assert_eq!(word(&d, 0) & 0xFFFF, 0x40);
    assert_eq!(el::split_type_flags(word(&d, 0x10)).0, 3);
    assert_eq!(chi(&card) & Chi::ELA, 0, "queue empty: ELA drops");
    // §10: ERRLOG with ELA = 0 is FAIL with no payload.
    assert_eq!(command(&card, Admin, 0x04, 3, &[]), 0xFF);
}

#[test]
fn smart_returns_the_three_attributes() {
    let card = ready_card();
    assert_eq!(command(&card, Admin, 0x05, 1, &[0]), 0);
    let d = data(&card, Admin, 8 + 48);
    let h = word(&d, 0);
    assert_eq!(h >> 48, 0x534D, "SM");
    assert_eq!(h & 0xFFFF_FFFF, 48);
    let attrs: Vec<_> = (0..3)
        .map(|i| smart::Attribute::decode(word(&d, 8 + 16 * i), word(&d, 16 + 16 * i)))
        .collect();
    let cfg = card.config();
    assert_eq!(attrs[0].id, smart::ID_POWER_ON_HOURS);
    assert_eq!(attrs[0].raw, cfg.power_on_hours);
    assert_eq!(attrs[1].id, smart::ID_TEMPERATURE);
    assert_eq!(attrs[1].raw, u64::from(cfg.temperature_c));
    assert_eq!(attrs[2].id, smart::ID_LIFE_REMAINING);
    assert_eq!(attrs[2].raw, u64::from(cfg.life_remaining_pct));
}

#[test]
fn controller_stats_layout_and_real_traffic() {
    let card = ready_card();
    let mut b = [0u8; 64];
    for _ in 0..3 {
        card.region_read(4, 0x1000, &mut b).unwrap();
    }
    card.region_write(4, 0x2000, &b).unwrap();
    card.reset();
    card.clock().advance(std::time::Duration::from_secs(10));
    assert_eq!(command(&card, Admin, 0x06, 1, &[0]), 0);
    let d = data(&card, Admin, st::TOTAL as usize);
    assert_eq!(word(&d, 0), 0x4353_0000_0000_0140);
    assert_eq!(
        st::split_block_header(word(&d, 0x08)),
        (st::BLOCK1_ID, st::BLOCK1_LENGTH)
    );
    assert_eq!(
        st::split_block_header(word(&d, 0x48)),
        (st::BLOCK2_ID, st::BLOCK2_LENGTH)
    );
    assert_eq!(word(&d, 0x10) >> 32, 1, "one reset");
    assert_eq!(word(&d, 0x10) & 0xFFFF_FFFF, 10, "seconds since reset");
    assert_eq!(word(&d, 0x18) & 0xFF, 100, "life remaining");
    assert_eq!(word(&d, st::HOST_LOAD_COUNT as usize), 3);
    assert_eq!(word(&d, st::HOST_STORE_COUNT as usize), 1);
    assert_eq!(word(&d, st::HOST_LOAD_DURATION as usize), 3 * 300);
}

fn dump_chunk(card: &ocxlpmem_sim::SimCard, id: u16, off: u32, size: u32) -> (u8, Vec<u8>) {
    let s = command(card, Admin, 0x07, id, &[params::dump_chunk(off, size)]);
    let d = data(card, Admin, 8 + size as usize);
    (s, d)
}

#[test]
fn controller_dump_three_steps() {
    let card = ready_card();
    // No dump yet: a fetch fails.
    assert_eq!(dump_chunk(&card, 1, 0, 0x100).0, 0xFF);
    // Step 1: CD, cleared by the controller when ready; CDA set.
    write(&card, o::HCI, read(&card, o::HCI) | Hci::CD);
    wait_hci(&card, "CD cleared", |h| h & Hci::CD == 0);
    assert_ne!(chi(&card) & Chi::CDA, 0);
    // Step 2: chunks up to the end (length 0).
    let total = card.config().dump_size as usize;
    let mut got = Vec::new();
    let mut id = 2;
    loop {
        let (s, d) = dump_chunk(&card, id, got.len() as u32, 0x7FF8);
        id += 1;
        assert_eq!(s, 0);
        assert_eq!(word(&d, 0) >> 48, 0x4344, "CD");
        let n = (word(&d, 0) & 0xFFFF) as usize;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&d[8..8 + n]);
        assert!(got.len() <= total);
    }
    assert_eq!(got.len(), total);
    assert_eq!(Some(got.clone()), card.current_dump());
    assert!(got.len() as u64 <= card.config().ccap1 & 0xFFFF_FFFF);
    // Any 8-aligned offset, any order, many times.
    let (s, d) = dump_chunk(&card, id, 0x18, 16);
    assert_eq!(s, 0);
    assert_eq!(&d[8..24], &got[0x18..0x28]);
    // Bad chunks: unaligned size or offset, zero, larger than min(data_size-8, 0xFFF8).
    assert_eq!(dump_chunk(&card, 90, 0, 12).0, 0x51);
    assert_eq!(dump_chunk(&card, 91, 4, 16).0, 0x51);
    assert_eq!(dump_chunk(&card, 92, 0, 0).0, 0x51);
    assert_eq!(
        command(&card, Admin, 0x07, 93, &[params::dump_chunk(0, 0x8000)]),
        0x51
    );
    // Step 3: CDC frees the dump, CDA drops, CDC clears.
    write(&card, o::HCI, read(&card, o::HCI) | Hci::CDC);
    wait_hci(&card, "CDC cleared", |h| h & Hci::CDC == 0);
    assert_eq!(chi(&card) & Chi::CDA, 0);
    assert_eq!(dump_chunk(&card, 94, 0, 0x100).0, 0xFF);
}

#[test]
fn health_request_queues_a_type_4_log() {
    let card = ready_card();
    write(&card, o::HCI, Hci::CHPD);
    wait_hci(&card, "CHPD cleared", |h| h & Hci::CHPD == 0);
    assert_ne!(chi(&card) & Chi::ELA, 0);
    assert_eq!(command(&card, Admin, 0x04, 1, &[]), 0);
    let d = data(&card, Admin, 0x48);
    assert_eq!(
        el::split_type_flags(word(&d, 0x10)).0,
        el::TYPE_HEALTH_PERFORMANCE
    );
}

#[test]
fn command_caps_is_a_bitmap_of_opcodes() {
    let card = ready_card();
    assert_eq!(command(&card, Admin, 0x08, 1, &[]), 0);
    let d = data(&card, Admin, 32);
    assert_eq!(d[0], 0xFF, "opcodes 0x00-0x07");
    assert_eq!(d[1], 0x01, "opcode 0x08");
    assert_eq!(d[4], 0x01, "opcode 0x20");
}

#[test]
fn fw_update_takes_blocks_in_order() {
    let card = ready_card();
    let l = layout(&card, Admin);
    let image: Vec<u8> = (0..0x9000u32).map(|i| (i * 7) as u8).collect();
    let mut id = 1;
    for (n, block) in image.chunks(0x8000).enumerate() {
        mmio(&card).write_bytes(l.data_offset, block).unwrap();
        let p = params::fw_update((n * 0x8000) as u32, block.len() as u32);
        assert_eq!(command(&card, Admin, 0x02, id, &[p]), 0);
        id += 1;
    }
    assert_eq!(card.firmware_image(), image);
    // Out of order, unaligned, too large, empty: BAD_REQUEST_PARM.
    for p in [
        params::fw_update(0x20000, 8),
        params::fw_update(0, 12),
        params::fw_update(0, 0x8008),
        params::fw_update(0, 0),
    ] {
        assert_eq!(command(&card, Admin, 0x02, id, &[p]), 0x51, "{p:#x}");
        id += 1;
    }
}

#[test]
fn fw_debug_needs_fde_and_reads_and_writes_controller_memory() {
    let card = ready_card();
    let l = layout(&card, Admin);
    let read_mem = params::fw_debug(params::FW_DEBUG_READ_MEMORY, 0);
    assert_eq!(command(&card, Admin, 0x03, 1, &[read_mem, 0x10, 16]), 0x70);
    write(&card, o::HCI, Hci::FDE);
    assert_eq!(command(&card, Admin, 0x03, 2, &[read_mem, 0x10, 16]), 0);
    let expect: Vec<u8> = (0x10u8..0x20).collect();
    assert_eq!(data(&card, Admin, 16), expect);
    // Write, then read back.
    mmio(&card).write_bytes(l.data_offset, b"patched!").unwrap();
    let write_mem = params::fw_debug(params::FW_DEBUG_WRITE_MEMORY, 0);
    assert_eq!(command(&card, Admin, 0x03, 3, &[write_mem, 0x100, 8]), 0);
    mmio(&card).write_bytes(l.data_offset, &[0; 8]).unwrap();
    assert_eq!(command(&card, Admin, 0x03, 4, &[read_mem, 0x100, 8]), 0);
    assert_eq!(data(&card, Admin, 8), b"patched!");
    // Out of range and unknown actions.
    assert_eq!(
        command(&card, Admin, 0x03, 5, &[read_mem, u64::MAX, 8]),
        0x51
    );
    assert_eq!(
        command(&card, Admin, 0x03, 6, &[params::fw_debug(9, 0)]),
        0x51
    );
    let enable = params::fw_debug(params::FW_DEBUG_ENABLE_FUNCTION, 7);
    assert_eq!(command(&card, Admin, 0x03, 7, &[enable]), 0);
    let plog = params::fw_debug(params::FW_DEBUG_GET_PERSISTENT_LOG, 0);
    assert_eq!(command(&card, Admin, 0x03, 8, &[plog]), 0);
    assert_eq!(&data(&card, Admin, 3), b"SIM");
    // FDE stays until the host clears it through HCIC.
    assert_ne!(read(&card, o::HCI) & Hci::FDE, 0);
    write(&card, o::HCIC, Hci::FDE);
    assert_eq!(read(&card, o::HCI) & Hci::FDE, 0);
}

#[test]
fn secure_erase_zeroes_lpc_and_reports_pages() {
    let card = ready_card();
    card.region_write(4, 0x100_0000, b"user data").unwrap();
    card.poison(0x5000..0x5001);
    let rsp = send(&card, NearStorage, 0x20, 1, &[]);
    let l = layout(&card, NearStorage);
    let w = |off: u64| read(&card, l.response_offset + off);
    let (ae, aa, de, da) = (w(0x20), w(0x28), w(0x30), w(0x38));
    ack(&card, NearStorage);
    assert_eq!(rsp & 0xFF, 0);
    assert_eq!((rsp >> 16) & 0xFFFF, 1);
    assert_eq!(chi(&card) & Chi::NSCRA, 0);
    let pages = (32u64 << 20) / 4096;
    assert_eq!((ae, aa, de, da), (pages - 1, pages - 1, 1, 1));
    let mut b = [0xAAu8; 9];
    card.region_read(4, 0x100_0000, &mut b).unwrap();
    assert_eq!(b, [0; 9]);
}

#[test]
fn shutdown_succeeds_and_memory_becomes_unavailable() {
    let card = ready_card();
    assert_eq!(command(&card, Admin, 0x01, 1, &[]), 0);
    assert_eq!(chi(&card) & Chi::MA, 0);
    assert_eq!(
        command(&card, NearStorage, 0x20, 2, &[]),
        0x20,
        "MEM_UNAVAILABLE"
    );
    card.reset();
    card.clock().advance(std::time::Duration::from_millis(10));
    assert_ne!(chi(&card) & Chi::MA, 0);
}

#[test]
fn doorbell_is_cleared_when_the_request_is_taken() {
    let card = ready_card();
    send(&card, Admin, 0x00, 1, &[]);
    assert_eq!(read(&card, o::HCI) & Hci::ACRW, 0);
    // ACRA stays set until acknowledged, however long nobody looks.
    assert_ne!(chi(&card) & Chi::ACRA, 0);
    assert_ne!(chi(&card) & Chi::ACRA, 0);
    ack(&card, Admin);
    assert_eq!(chi(&card) & Chi::ACRA, 0);
}
