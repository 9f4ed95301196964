//! The register file (spec §1, §10) and config space (§7), through raw accesses.

mod common;

use std::time::Duration;

use common::*;
use ocxlpmem_regs::config::{self as rc, dvsec, split_ext_cap_header};
use ocxlpmem_regs::{offsets as o, AfuDescriptor, Ccap0, Chi, CommandArea, Hci, Mmio, MmioError};
use ocxlpmem_sim::{SimConfig, SimError, SimLayout};

#[test]
fn clear_registers_read_zero_and_chie_is_rw() {
    let card = ready_card();
    for r in [o::CHIC, o::CHIEC, o::HCIC] {
        write(&card, r, u64::MAX);
        assert_eq!(read(&card, r), 0, "{r:#x}");
    }
    write(&card, o::CHIE, u64::MAX);
    assert_eq!(read(&card, o::CHIE), Chi::DEFINED, "reserved bits read 0");
    write(&card, o::CHIEC, Chi::ELA | Chi::CDA);
    assert_eq!(read(&card, o::CHIE), Chi::DEFINED & !(Chi::ELA | Chi::CDA));
    write(&card, o::IMA0_OHP, 0x1234);
    assert_eq!(read(&card, o::IMA0_OHP), 0x1234);
}

#[test]
fn chi_is_read_only_and_chic_clears_only_event_bits() {
    let card = ready_card();
    let before = chi(&card);
    write(&card, o::CHI, 0);
    assert_eq!(chi(&card), before);
    send(&card, CommandArea::Admin, 0, 1, &[]);
    // Writing 1 to CRDY/MA in CHIC has no effect: they are levels.
    write(&card, o::CHIC, Chi::CRDY | Chi::MA);
    assert_eq!(chi(&card), before | Chi::ACRA);
    write(&card, o::CHIC, Chi::ACRA);
    assert_eq!(chi(&card), before);
    assert_eq!(chi(&card) & !Chi::DEFINED, 0);
}

#[test]
fn hci_sets_bits_and_hcic_withdraws_them() {
    let card = manual_card(SimConfig::default());
    // Not ready: the firmware takes nothing, so the bits stay as the host set them.
    write(&card, o::HCI, Hci::FDE | Hci::AR << 8);
    assert_eq!(read(&card, o::HCI), Hci::FDE, "reserved bits dropped");
    write(&card, o::HCI, Hci::ACRW);
    assert_eq!(read(&card, o::HCI), Hci::FDE | Hci::ACRW, "writes OR in");
    write(&card, o::HCIC, Hci::ACRW);
    assert_eq!(read(&card, o::HCI), Hci::FDE);
}

#[test]
fn identity_registers_follow_the_configuration() {
    let cfg = SimConfig {
        layout: SimLayout {
            admin: ocxlpmem_regs::AreaLayout {
                request_offset: 0x3000,
                response_offset: 0x2000,
                data_offset: 0x8000,
                data_size: 0x4000,
            },
            near_storage: ocxlpmem_regs::AreaLayout {
                request_offset: 0x1000,
                response_offset: 0x1040,
                data_offset: 0x10000,
                data_size: 0x100,
            },
            mmio_size: 0x20000,
        },
        fwver: *b"TEST 2.3",
        ..SimConfig::default()
    };
    let card = manual_card(cfg);
    assert_eq!(read(&card, o::ACMA_CREQO), 0x3000 << 32 | 0x2000);
    assert_eq!(read(&card, o::ACMA_CDBO), 0x8000 << 32 | 0x4000);
    assert_eq!(read(&card, o::NSCMA_CREQO), 0x1000 << 32 | 0x1040);
    assert_eq!(read(&card, o::NSCMA_CDBO), 0x10000 << 32 | 0x100);
    assert_eq!(read(&card, o::FWVER).to_le_bytes(), *b"TEST 2.3");
    assert_eq!(card.mmio().size(), 0x20000);
    // Commands work at the moved offsets.
    card.clock().advance(Duration::from_secs(1));
    assert_eq!(command(&card, CommandArea::Admin, 0, 1, &[]), 0);
    assert_eq!(command(&card, CommandArea::NearStorage, 0x20, 1, &[]), 0);
}

#[test]
fn default_capabilities_match_spec_10() {
    let card = ready_card();
    let c = Ccap0(read(&card, o::CCAP0));
    assert_eq!(c.revision(), 0x0010);
    assert_eq!(c.read_latency_ns(), 300);
    assert_eq!(c.readiness_timeout_s(), 2);
    assert_eq!(c.memory_available_timeout_s(), 2);
    assert_eq!(read(&card, o::CCAP1) & 0xFFFF_FFFF, 1 << 20);
    assert_eq!(read(&card, o::CSTS), 0);
    assert_eq!(read(&card, o::FWVER).to_le_bytes(), *b"SIM 1.0 ");
}

#[test]
fn holes_read_zero_and_ignore_writes() {
    let card = ready_card();
    for off in [
        0x030, 0x060, 0x110, 0x150, 0x2F8, 0x300, 0x600, 0xF000, 0xFFF8,
    ] {
        write(&card, off, u64::MAX);
        assert_eq!(read(&card, off), 0, "{off:#x}");
    }
}

#[test]
fn bad_register_accesses_are_refused_with_typed_errors() {
    let card = ready_card();
    let m = card.mmio();
    assert!(matches!(m.read_u64(4), Err(MmioError::Misaligned { .. })));
    assert!(matches!(
        m.read_u64(0x10000),
        Err(MmioError::OutOfBounds { .. })
    ));
    assert!(matches!(
        m.write_u64(u64::MAX - 7, 0),
        Err(MmioError::OutOfBounds { .. })
    ));
    let mut b4 = [0u8; 4];
    assert!(matches!(
        card.region_read(0, 0, &mut b4),
        Err(SimError::Misaligned { offset: 0, len: 4 })
    ));
    assert!(matches!(
        card.region_write(0, 0x21, &[0; 8]),
        Err(SimError::Misaligned { .. })
    ));
    assert!(matches!(
        card.region_read(0, u64::MAX, &mut b4),
        Err(SimError::OutOfBounds { region: 0, .. })
    ));
    assert!(matches!(
        card.region_read(2, 0, &mut b4),
        Err(SimError::NoSuchRegion { index: 2 })
    ));
    assert!(card.counters().refused_accesses >= 2);
    // Command areas take any width.
    card.region_write(0, 0x1003, b"xyz").unwrap();
    card.region_read(0, 0x1003, &mut b4[..3]).unwrap();
    assert_eq!(&b4[..3], b"xyz");
}

fn cfg32(card: &ocxlpmem_sim::SimCard, off: u64) -> u32 {
    let mut b = [0u8; 4];
    card.config_read(off, &mut b).unwrap();
    u32::from_le_bytes(b)
}

fn cfgw32(card: &ocxlpmem_sim::SimCard, off: u64, v: u32) {
    card.config_write(off, &v.to_le_bytes()).unwrap();
}

/// Walks the extended capability list: (id, offset).
fn ext_caps(card: &ocxlpmem_sim::SimCard) -> Vec<(u16, u64)> {
    let mut v = Vec::new();
    let mut at = rc::pci::EXTENDED_START;
    while at != 0 && v.len() < 64 {
        let (id, _ver, next) = split_ext_cap_header(cfg32(card, at));
        v.push((id, at));
        at = u64::from(next);
    }
    v
}

fn find_dvsec(card: &ocxlpmem_sim::SimCard, want: u16) -> u64 {
    for (id, at) in ext_caps(card) {
        if id == rc::EXT_CAP_DVSEC && (cfg32(card, at + dvsec::HEADER2) & 0xFFFF) as u16 == want {
            let (vendor, _, len) = dvsec::split_header1(cfg32(card, at + dvsec::HEADER1));
            assert_eq!(vendor, 0x1014);
            assert!(len >= 0x10, "DVSEC {want:#x} length {len:#x}");
            return at;
        }
    }
    panic!("DVSEC {want:#x} not found");
}

#[test]
fn config_space_identity_and_capabilities() {
    let card = ready_card();
    assert_eq!(cfg32(&card, 0), 0x0625_1014);
    assert_ne!(cfg32(&card, 4) >> 16 & 0x10, 0, "capability list");
    let ids: Vec<u16> = ext_caps(&card).iter().map(|c| c.0).collect();
    assert!(ids.contains(&rc::EXT_CAP_DSN));
    let f001 = find_dvsec(&card, dvsec::ID_FUNCTION);
    let w = cfg32(&card, f001 + dvsec::function::AFU_PRESENT);
    assert_ne!(w & dvsec::function::AFU_PRESENT_BIT, 0);
    assert_eq!(dvsec::function::max_afu_index(w), 0);
    find_dvsec(&card, dvsec::ID_AFU_CONTROL);
    // DSN.
    let dsn = ext_caps(&card)
        .into_iter()
        .find(|c| c.0 == rc::EXT_CAP_DSN)
        .unwrap()
        .1;
    let serial = u64::from(cfg32(&card, dsn + 4)) | u64::from(cfg32(&card, dsn + 8)) << 32;
    assert_eq!(serial, card.config().serial);
    assert_ne!(serial, 0);
}

#[test]
fn afu_descriptor_through_the_information_window() {
    let card = ready_card();
    let f003 = find_dvsec(&card, dvsec::ID_AFU_INFO);
    card.config_write(f003 + dvsec::afu_info::AFU_INDEX, &[0])
        .unwrap();
    let mut dwords = Vec::new();
    for i in 0..0x60 / 4 {
        cfgw32(&card, f003 + dvsec::afu_info::OFFSET, i * 4);
        let off = cfg32(&card, f003 + dvsec::afu_info::OFFSET);
        assert_ne!(off & dvsec::afu_info::DATA_VALID, 0, "data valid");
        assert_eq!(off & !dvsec::afu_info::DATA_VALID, i * 4);
        dwords.push(cfg32(&card, f003 + dvsec::afu_info::DATA));
    }
    let d = AfuDescriptor::decode(&dwords).unwrap();
    assert_eq!(
        (d.template_major, d.template_minor, d.template_length),
        (1, 1, 0x60)
    );
    assert_eq!(d.name, "IBM,SCM");
    assert_eq!((d.global_mmio_bar, d.global_mmio_offset), (0, 0));
    assert_eq!(u64::from(d.global_mmio_size), 0x10000);
    assert_eq!(d.lpc_size, 32 << 20);
    assert_eq!(d.wwid, card.config().wwid);
    assert_eq!(d, card.afu_descriptor());
}

#[test]
fn bars_probe_their_sizes() {
    let card = ready_card();
    for (bar, size, flags) in [(0x10u64, 0x10000u64, 0x4u64), (0x20, 32 << 20, 0xC)] {
        cfgw32(&card, bar, u32::MAX);
        cfgw32(&card, bar + 4, u32::MAX);
        let v = u64::from(cfg32(&card, bar)) | u64::from(cfg32(&card, bar + 4)) << 32;
        assert_eq!(v, !(size - 1) | flags, "BAR at {bar:#x}");
        cfgw32(&card, bar, 0x1234_5000);
        assert_eq!(
            u64::from(cfg32(&card, bar)),
            (0x1234_5000 & !(size - 1)) | flags
        );
    }
    assert_eq!(card.region(0).unwrap().size, 0x10000);
    assert_eq!(card.region(4).unwrap().size, 32 << 20);
}

#[test]
fn config_bounds_are_checked_and_afu_enable_is_writable() {
    let card = ready_card();
    let mut b = [0u8; 8];
    assert!(card.config_read(0xFFC, &mut b).is_err());
    assert!(card.config_write(u64::MAX, &b).is_err());
    let f004 = find_dvsec(&card, dvsec::ID_AFU_CONTROL);
    assert!(!card.afu_enabled());
    card.config_write(f004 + dvsec::afu_control::ENABLE, &[0xFF])
        .unwrap();
    assert!(card.afu_enabled());
    let mut e = [0u8];
    card.config_read(f004 + dvsec::afu_control::ENABLE, &mut e)
        .unwrap();
    assert_eq!(e[0], 1, "only bit 0 is writable");
}

#[test]
fn serial_zero_only_when_asked() {
    let card = manual_card(SimConfig {
        serial: 0,
        ..SimConfig::default()
    });
    assert_eq!(cfg32(&card, 0x104), 0);
}

#[test]
fn bad_configurations_are_refused() {
    for cfg in [
        SimConfig {
            lpc_size: 16 << 20,
            ..SimConfig::default()
        },
        SimConfig {
            lpc_size: (32 << 20) + 4096,
            ..SimConfig::default()
        },
        SimConfig {
            fwver: *b"bad\0\0\0\0\0",
            ..SimConfig::default()
        },
    ] {
        assert!(matches!(
            ocxlpmem_sim::SimCard::new(cfg),
            Err(SimError::BadConfig { .. })
        ));
    }
    let mut cfg = SimConfig::default();
    cfg.layout.near_storage.data_offset = 0x1000;
    assert!(matches!(
        ocxlpmem_sim::SimCard::new(cfg),
        Err(SimError::BadConfig { .. })
    ));
}
