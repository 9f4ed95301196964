//! Random host traffic, in any order, never panics the model.

use std::time::Duration;

use ocxlpmem_regs::{CommandArea, Mmio};
use ocxlpmem_sim::{ClockMode, Fault, SimCard, SimConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[derive(Debug, Clone)]
enum Op {
    Read(u32, u64, usize),
    Write(u32, u64, Vec<u8>),
    Word(u64, u64),
    Reset,
    Advance(u64),
    Fault(u8),
    Clear,
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..0x400,
        0u64..0x11000,
        any::<u64>(),
        (0u64..0x2000).prop_map(|o| o * 8)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let region = prop_oneof![Just(0u32), Just(4), Just(7), any::<u32>()];
    prop_oneof![
        (region.clone(), offset(), 0usize..80).prop_map(|(r, o, l)| Op::Read(r, o, l)),
        (
            region,
            offset(),
            proptest::collection::vec(any::<u8>(), 0..80)
        )
            .prop_map(|(r, o, d)| Op::Write(r, o, d)),
        (prop_oneof![0u64..0x300, offset()], any::<u64>()).prop_map(|(o, v)| Op::Word(o, v)),
        Just(Op::Reset),
        (0u64..2_000_000).prop_map(Op::Advance),
        any::<u8>().prop_map(Op::Fault),
        Just(Op::Clear),
    ]
}

fn fault(n: u8) -> Fault {
    let area = if n & 1 == 0 {
        CommandArea::Admin
    } else {
        CommandArea::NearStorage
    };
    match n % 12 {
        0 => Fault::CommandTimeout { area, opcode: None },
        1 => Fault::CommandDelay {
            area,
            delay: Duration::from_micros(u64::from(n)),
        },
        2 => Fault::WrongId { area },
        3 => Fault::Status {
            area,
            opcode: Some(n),
            status: n,
        },
        4 => Fault::ReadyDrops,
        5 => Fault::FirmwareFatal,
        6 => Fault::DumpNeverCompletes,
        7 => Fault::StaleAcra,
        8 => Fault::StaleDumpPending,
        9 => Fault::BadPayloadId { opcode: n % 9 },
        10 => Fault::PayloadLength {
            opcode: n % 9,
            length: u64::from(n) << 8,
        },
        _ => Fault::SurpriseRemoval,
    }
}

#[test]
fn random_register_traffic_never_panics() {
    let card = SimCard::new(SimConfig {
        lpc_size: 32 << 20,
        clock: ClockMode::Manual,
        ..SimConfig::default()
    })
    .unwrap();
    card.clock().advance(Duration::from_secs(1));
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 1..64), |ops| {
            let m = card.mmio();
            for op in ops {
                match op {
                    Op::Read(r, o, l) => {
                        let mut b = vec![0u8; l];
                        let _ = card.region_read(r, o, &mut b);
                        let _ = card.config_read(o, &mut b);
                    }
                    Op::Write(r, o, d) => {
                        let _ = card.region_write(r, o, &d);
                        let _ = card.config_write(o, &d);
                    }
                    Op::Word(o, v) => {
                        let _ = m.write_u64(o, v);
                        let _ = m.read_u64(o);
                        let _ = m.read_bytes(o, &mut [0u8; 24]);
                    }
                    Op::Reset => card.reset(),
                    Op::Advance(us) => card.clock().advance(Duration::from_micros(us)),
                    Op::Fault(n) if n & 0x80 != 0 => card.inject_once(fault(n)),
                    Op::Fault(n) => card.inject(fault(n)),
                    Op::Clear => card.clear_faults(),
                }
            }
            let _ = card.counters();
            let _ = card.bad_ranges();
            Ok(())
        })
        .unwrap();
    // Still a working card afterwards.
    card.clear_faults();
    card.reset();
    card.clock().advance(Duration::from_secs(1));
    let chi = card.mmio().read_u64(0).unwrap();
    assert_eq!(chi & 0x50, 0x50, "CHI = {chi:#x}");
}
