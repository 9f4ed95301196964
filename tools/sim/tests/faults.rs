//! Every fault kind of DESIGN.md, seen through raw register accesses.

mod common;

use std::time::Duration;

use common::*;
use ocxlpmem_regs::CommandArea::{Admin, NearStorage};
use ocxlpmem_regs::{offsets as o, Chi, Hci, Mmio};
use ocxlpmem_sim::{Fault, SimConfig};

/// Rings the admin doorbell for a heartbeat with `id` without waiting for the answer.
fn ring(card: &ocxlpmem_sim::SimCard, op: u64, id: u64) {
    let l = layout(card, Admin);
    write(card, l.request_offset, op | id << 16);
    write(card, o::HCI, read(card, o::HCI) | Hci::ACRW);
}

#[test]
fn command_timeout_is_taken_but_never_answered_until_cleared() {
    let card = ready_card();
    card.inject(Fault::CommandTimeout {
        area: Admin,
        opcode: Some(0),
    });
    ring(&card, 0, 1);
    wait_hci(&card, "ACRW taken", |h| h & Hci::ACRW == 0);
    card.clock().advance(Duration::from_secs(100));
    assert_eq!(chi(&card) & Chi::ACRA, 0);
    card.clear_faults();
    wait_chi(&card, "late response", |c| c & Chi::ACRA != 0);
    ack(&card, Admin);
    // Other opcodes were never affected.
    card.inject(Fault::CommandTimeout {
        area: Admin,
        opcode: Some(0),
    });
    assert_eq!(command(&card, Admin, 0x05, 2, &[]), 0);
}

#[test]
fn command_delay_completes_after_the_simulated_delay() {
    let card = ready_card();
    card.inject(Fault::CommandDelay {
        area: Admin,
        delay: Duration::from_millis(500),
    });
    ring(&card, 0, 1);
    wait_hci(&card, "ACRW taken", |h| h & Hci::ACRW == 0);
    card.clock().advance(Duration::from_millis(499));
    assert_eq!(chi(&card) & Chi::ACRA, 0);
    card.clock().advance(Duration::from_millis(1));
    wait_chi(&card, "delayed response", |c| c & Chi::ACRA != 0);
    assert_eq!(read(&card, layout(&card, Admin).response_offset), 1 << 16);
}

#[test]
fn wrong_id_is_echoed() {
    let card = ready_card();
    card.inject_once(Fault::WrongId { area: Admin });
    let rsp = send(&card, Admin, 0, 7, &[]);
    ack(&card, Admin);
    assert_ne!((rsp >> 16) & 0xFFFF, 7);
    assert_eq!(
        command(&card, Admin, 0, 8, &[]),
        0,
        "once: the next is right"
    );
}

#[test]
fn any_status_can_be_returned() {
    let card = ready_card();
    for status in [0x21u8, 0x52, 0x99, 0xFF] {
        card.inject_once(Fault::Status {
            area: NearStorage,
            opcode: None,
            status,
        });
        assert_eq!(command(&card, NearStorage, 0x20, 1, &[]), status);
    }
    card.inject(Fault::Status {
        area: Admin,
        opcode: Some(0x05),
        status: 0x20,
    });
    assert_eq!(command(&card, Admin, 0x05, 1, &[]), 0x20);
    assert_eq!(command(&card, Admin, 0x05, 2, &[]), 0x20);
    assert_eq!(command(&card, Admin, 0x00, 3, &[]), 0);
    // An error status has no effect: the error log is not popped.
    card.push_error_log(Default::default());
    card.inject_once(Fault::Status {
        area: Admin,
        opcode: Some(0x04),
        status: 0x51,
    });
    assert_eq!(command(&card, Admin, 0x04, 4, &[]), 0x51);
    assert_eq!(card.error_log_count(), 1);
}

#[test]
fn never_ready_and_memory_never_available() {
    let card = manual_card(SimConfig::default());
    card.inject(Fault::NeverReady);
    card.clock().advance(Duration::from_secs(60));
    assert_eq!(chi(&card) & (Chi::CRDY | Chi::MA), 0);
    card.clear_faults();
    assert!(Chi(chi(&card)).is_ready());

    let card = manual_card(SimConfig::default());
    card.inject(Fault::MemoryNeverAvailable);
    card.clock().advance(Duration::from_secs(60));
    assert_eq!(chi(&card) & (Chi::CRDY | Chi::MA), Chi::CRDY);
}

#[test]
fn readiness_drops() {
    let card = ready_card();
    card.inject(Fault::ReadyDrops);
    assert_eq!(chi(&card) & (Chi::CRDY | Chi::MA), 0);
    card.reset();
    card.clock().advance(Duration::from_secs(1));
    assert_eq!(chi(&card) & (Chi::CRDY | Chi::MA), 0, "persistent");
    card.clear_faults();
    assert!(Chi(chi(&card)).is_ready());
}

#[test]
fn fatal_states_stop_the_firmware() {
    for (fault, bit) in [
        (Fault::FirmwareFatal, Chi::CFFS),
        (Fault::HardwareFatal, Chi::CHFS),
    ] {
        let card = ready_card();
        card.inject(fault);
        assert_ne!(chi(&card) & bit, 0);
        ring(&card, 0, 1);
        // The doorbell is never taken.
        card.clock().advance(Duration::from_secs(1));
        assert_eq!(read(&card, o::HCI) & Hci::ACRW, Hci::ACRW);
        card.clear_faults();
        wait_chi(&card, "answer after recovery", |c| c & Chi::ACRA != 0);
        assert_eq!(chi(&card) & bit, 0);
    }
}

#[test]
fn fatal_state_mid_operation() {
    let card = ready_card();
    // Once: the controller dies holding the next command.
    card.inject_once(Fault::FirmwareFatal);
    ring(&card, 0, 1);
    wait_chi(&card, "CFFS", |c| c & Chi::CFFS != 0);
    assert_eq!(read(&card, o::HCI) & Hci::ACRW, 0, "taken");
    assert_eq!(chi(&card) & Chi::ACRA, 0, "never answered");
    // A reset brings it back.
    card.reset();
    card.clock().advance(Duration::from_secs(1));
    assert_eq!(chi(&card) & Chi::CFFS, 0);
    assert_eq!(command(&card, Admin, 0, 2, &[]), 0);
    // A delayed command overtaken by a hardware fatal state.
    card.inject(Fault::CommandDelay {
        area: Admin,
        delay: Duration::from_millis(10),
    });
    ring(&card, 0, 3);
    wait_hci(&card, "ACRW taken", |h| h & Hci::ACRW == 0);
    card.inject(Fault::HardwareFatal);
    card.clock().advance(Duration::from_secs(1));
    assert_eq!(chi(&card) & (Chi::ACRA | Chi::CHFS), Chi::CHFS);
}

#[test]
fn dump_that_never_completes() {
    let card = ready_card();
    card.inject(Fault::DumpNeverCompletes);
    write(&card, o::HCI, Hci::CD);
    assert_eq!(command(&card, Admin, 0, 1, &[]), 0, "firmware is alive");
    assert_eq!(read(&card, o::HCI) & Hci::CD, Hci::CD);
    assert_eq!(chi(&card) & Chi::CDA, 0);
    card.clear_faults();
    wait_hci(&card, "CD cleared", |h| h & Hci::CD == 0);
    assert_ne!(chi(&card) & Chi::CDA, 0);
}

#[test]
fn stale_acra_at_open() {
    let card = ready_card();
    card.inject(Fault::StaleAcra);
    assert_ne!(chi(&card) & Chi::ACRA, 0);
    let rsp = read(&card, layout(&card, Admin).response_offset);
    assert_eq!((rsp >> 16) & 0xFFFF, 0xDEAD);
    // §2.4 step 2: the host clears it, then works normally.
    ack(&card, Admin);
    assert_eq!(chi(&card) & Chi::ACRA, 0);
    assert_eq!(command(&card, Admin, 0, 1, &[]), 0);
}

#[test]
fn stale_dump_pending_at_open() {
    let card = ready_card();
    card.inject(Fault::StaleDumpPending);
    assert_ne!(chi(&card) & Chi::CDA, 0);
    assert!(card.current_dump().is_some());
    // The host frees it.
    write(&card, o::HCI, Hci::CDC);
    wait_hci(&card, "CDC cleared", |h| h & Hci::CDC == 0);
    assert_eq!(chi(&card) & Chi::CDA, 0);
    // A CD request left pending.
    card.inject(Fault::DumpNeverCompletes);
    card.inject(Fault::StaleDumpPending);
    assert_eq!(read(&card, o::HCI) & Hci::CD, Hci::CD);
    // Clearing a stale CDA with CHIC discards the dump.
    card.clear_faults();
    wait_chi(&card, "CDA", |c| c & Chi::CDA != 0);
    write(&card, o::CHIC, Chi::CDA);
    assert_eq!(card.current_dump(), None);
}

#[test]
fn malformed_payloads() {
    let card = ready_card();
    card.inject_once(Fault::BadPayloadId { opcode: 0x05 });
    assert_eq!(command(&card, Admin, 0x05, 1, &[]), 0);
    assert_eq!(word(&data(&card, Admin, 8), 0) >> 48, 0x5858);
    card.inject(Fault::PayloadLength {
        opcode: 0x06,
        length: 0xFFFF_0000,
    });
    assert_eq!(command(&card, Admin, 0x06, 2, &[]), 0);
    let h = word(&data(&card, Admin, 8), 0);
    assert_eq!(h >> 48, 0x4353);
    assert_eq!(h & 0xFFFF_FFFF, 0xFFFF_0000);
    card.push_error_log(Default::default());
    card.inject(Fault::PayloadLength {
        opcode: 0x04,
        length: 0x9000,
    });
    assert_eq!(command(&card, Admin, 0x04, 3, &[]), 0);
    assert_eq!(word(&data(&card, Admin, 8), 0) & 0xFFFF, 0x9000);
}

#[test]
fn surprise_removal_reads_all_ones_and_drops_writes() {
    let card = ready_card();
    card.region_write(4, 0, b"data").unwrap();
    card.inject(Fault::SurpriseRemoval);
    assert!(Chi(chi(&card)).is_all_ones());
    assert_eq!(read(&card, o::CCAP0), u64::MAX);
    assert_eq!(read(&card, 0x1000), u64::MAX);
    let mut b = [0u8; 4];
    card.config_read(0, &mut b).unwrap();
    assert_eq!(b, [0xFF; 4]);
    card.region_read(4, 0, &mut b).unwrap();
    assert_eq!(b, [0xFF; 4]);
    card.region_write(4, 0, b"gone").unwrap();
    write(&card, o::CHIE, Chi::DEFINED);
    card.mmio().write_u64(o::HCI, Hci::ACRW).unwrap();
    card.clear_faults();
    card.region_read(4, 0, &mut b).unwrap();
    assert_eq!(&b, b"data");
    assert_eq!(read(&card, o::CHIE), 0);
    assert_eq!(read(&card, o::HCI), 0);
}
