//! Readiness on a manual clock (spec §1.4, §10) and controller reset.

mod common;

use std::time::Duration;

use common::*;
use ocxlpmem_regs::{offsets as o, Chi, CommandArea, Hci};
use ocxlpmem_sim::{ErrorLogEntry, SimConfig};

fn slow() -> SimConfig {
    SimConfig {
        crdy_delay: Duration::from_millis(100),
        ma_delay: Duration::from_millis(50),
        ..SimConfig::default()
    }
}

#[test]
fn crdy_then_ma_after_the_configured_delays() {
    let card = manual_card(slow());
    assert_eq!(chi(&card), 0);
    card.clock().advance(Duration::from_millis(99));
    assert_eq!(chi(&card) & (Chi::CRDY | Chi::MA), 0);
    card.clock().advance(Duration::from_millis(1));
    assert_eq!(chi(&card) & (Chi::CRDY | Chi::MA), Chi::CRDY);
    card.clock().advance(Duration::from_millis(49));
    assert_eq!(chi(&card) & Chi::MA, 0);
    card.clock().advance(Duration::from_millis(1));
    assert!(Chi(chi(&card)).is_ready());
}

#[test]
fn a_doorbell_before_crdy_is_taken_once_ready() {
    let card = manual_card(slow());
    let l = layout(&card, CommandArea::Admin);
    write(&card, l.request_offset, 0x0007_0000);
    write(&card, o::HCI, Hci::ACRW);
    assert_eq!(read(&card, o::HCI), Hci::ACRW);
    card.clock().advance(Duration::from_millis(100));
    wait_chi(&card, "ACRA", |c| c & Chi::ACRA != 0);
    assert_eq!(read(&card, l.response_offset), 0x0007_0000);
}

#[test]
fn reset_clears_chi_reruns_readiness_keeps_logs_and_memory() {
    let card = manual_card(slow());
    card.clock().advance(Duration::from_secs(1));
    card.region_write(4, 0x10, b"kept").unwrap();
    card.push_error_log(ErrorLogEntry::default());
    write(&card, o::CHIE, Chi::DEFINED);
    write(&card, o::HCI, Hci::CD);
    wait_chi(&card, "CDA", |c| c & Chi::CDA != 0);
    send(&card, CommandArea::Admin, 0, 1, &[]);
    write(&card, o::HCI, Hci::FDE);
    card.reset();
    // Only ELA (the kept log) survives; readiness restarts.
    assert_eq!(chi(&card), Chi::ELA);
    assert_eq!(read(&card, o::HCI), 0);
    assert_eq!(read(&card, o::CHIE), 0);
    assert_eq!(card.current_dump(), None, "pending dump discarded");
    card.clock().advance(Duration::from_millis(150));
    assert_eq!(chi(&card), Chi::ELA | Chi::CRDY | Chi::MA);
    let mut b = [0u8; 4];
    card.region_read(4, 0x10, &mut b).unwrap();
    assert_eq!(&b, b"kept");
    assert_eq!(card.error_log_count(), 1);
    assert_eq!(card.counters().resets, 1);
    // Ids restart: id 1 again is fine.
    assert_eq!(command(&card, CommandArea::Admin, 0, 1, &[]), 0);
}

#[test]
fn afu_reset_bit_resets_the_controller() {
    let card = manual_card(slow());
    card.clock().advance(Duration::from_secs(1));
    // Seen ready first, so readiness is settled for this boot and the reset must undo it.
    assert!(Chi(chi(&card)).is_ready());
    write(&card, o::HCI, Hci::AR);
    wait_hci(&card, "AR cleared", |h| h & Hci::AR == 0);
    assert_eq!(chi(&card) & Chi::CRDY, 0);
    card.clock().advance(Duration::from_millis(150));
    assert!(Chi(chi(&card)).is_ready());
}

#[test]
fn real_clock_becomes_ready_on_its_own() {
    let card = ocxlpmem_sim::SimCard::new(SimConfig {
        lpc_size: 32 << 20,
        ..SimConfig::default()
    })
    .unwrap();
    wait_chi(&card, "ready", |c| Chi(c).is_ready());
    assert_eq!(command(&card, CommandArea::Admin, 0, 1, &[]), 0);
}

#[test]
fn the_card_lives_until_the_last_clone_drops() {
    let card = ready_card();
    let m = card.mmio();
    let clone = card.clone();
    drop(card);
    assert_eq!(command(&clone, CommandArea::Admin, 0, 1, &[]), 0);
    drop(clone);
    use ocxlpmem_regs::Mmio;
    assert!(Chi(m.read_u64(o::CHI).unwrap()).is_ready());
}
