//! Many threads, mixed commands, random faults: no completion is lost, duplicated or
//! delivered to the wrong caller.

use ocxlpmem_admin::{Admin, AdminError, AdminOptions, ProtocolError};
use ocxlpmem_regs::{CommandArea, Mmio};
use ocxlpmem_sim::{ErrorLogEntry as SimLog, Fault, SimCard, SimConfig};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const THREADS: usize = 8;
const CALLS: usize = 1000;
const LOGS: u32 = 200;

/// xorshift64: deterministic per thread, no dependency.
fn next(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[derive(Default, Debug)]
struct Tally {
    /// Commands that reached the card, per opcode.
    sent: [u64; 9],
    /// Error log program reference codes this thread received.
    logs: Vec<u32>,
    /// ERRLOG answers rejected for a wrong id (the entry was popped for nobody).
    lost_logs: u64,
    /// Injected faults this thread met.
    errors: u64,
}

fn expected_error(e: &AdminError) -> bool {
    matches!(
        e,
        AdminError::Status { .. }
            | AdminError::Protocol {
                kind: ProtocolError::IdMismatch { .. } | ProtocolError::WrongPayloadId { .. },
                ..
            }
    )
}

#[test]
fn eight_threads_mixed_commands_random_faults() {
    let card = SimCard::new(SimConfig {
        crdy_delay: Duration::ZERO,
        ma_delay: Duration::ZERO,
        ..SimConfig::default()
    })
    .unwrap();
    let mmio: Arc<dyn Mmio> = Arc::new(card.mmio());
    let admin = Arc::new(Admin::with_options(mmio, AdminOptions::default()).unwrap());
    for prc in 1..=LOGS {
        card.push_error_log(SimLog {
            log_type: 0,
            action_flags: 0,
            program_reference_code: prc,
            data: prc.to_le_bytes().to_vec(),
        });
    }
    let base = card.counters().commands;
    let stop = Arc::new(AtomicBool::new(false));
    let chaos = {
        let (card, stop) = (card.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut s = 0x9E37_79B9_7F4A_7C15u64;
            while !stop.load(Ordering::Relaxed) {
                let f = match next(&mut s) % 5 {
                    0 => Fault::Status {
                        area: CommandArea::Admin,
                        opcode: None,
                        status: 0x21,
                    },
                    1 => Fault::WrongId {
                        area: CommandArea::Admin,
                    },
                    2 => Fault::CommandDelay {
                        area: CommandArea::Admin,
                        delay: Duration::from_micros(300),
                    },
                    3 => Fault::BadPayloadId { opcode: 0x05 },
                    _ => Fault::BadPayloadId { opcode: 0x06 },
                };
                card.inject_once(f);
                std::thread::sleep(Duration::from_micros(200 + next(&mut s) % 800));
            }
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let admin = Arc::clone(&admin);
            std::thread::spawn(move || {
                let mut s = 0x1234_5678 + t as u64 * 0x1_0001;
                let mut tally = Tally::default();
                for _ in 0..CALLS {
                    let (op, r): (usize, Result<(), AdminError>) = match next(&mut s) % 5 {
                        0 => (0, admin.heartbeat()),
                        1 => (
                            5,
                            admin.smart().map(|a| {
                                assert!(a.iter().any(|x| x.id == 0xC2), "SMART payload: {a:?}")
                            }),
                        ),
                        2 => (6, admin.stats().map(|_| ())),
                        3 => (8, admin.cmd_caps().map(|c| assert!(!c.is_empty()))),
                        _ => {
                            if !admin.read_chi().unwrap().ela() {
                                continue;
                            }
                            match admin.error_log_next() {
                                Ok(Some(e)) => {
                                    // The entry's variable data is its own code: an answer
                                    // meant for someone else would not match.
                                    assert_eq!(
                                        e.variable_data,
                                        e.program_reference_code.to_le_bytes()
                                    );
                                    tally.logs.push(e.program_reference_code);
                                    (4, Ok(()))
                                }
                                Ok(None) => continue,
                                Err(e) => {
                                    if matches!(
                                        e,
                                        AdminError::Protocol {
                                            kind: ProtocolError::IdMismatch { .. },
                                            ..
                                        }
                                    ) {
                                        tally.lost_logs += 1;
                                    }
                                    (4, Err(e))
                                }
                            }
                        }
                    };
                    if let Err(e) = &r {
                        assert!(expected_error(e), "thread {t}: unexpected error {e}");
                        tally.errors += 1;
                    }
                    tally.sent[op] += 1;
                }
                tally
            })
        })
        .collect();
    let tallies: Vec<Tally> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    chaos.join().unwrap();
    card.clear_faults();
    admin.heartbeat().unwrap();

    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    assert!(errors > 0, "the chaos thread's faults were never met");
    // No lost or duplicated commands: the card took exactly what the callers sent.
    let now = card.counters().commands;
    for op in [0u8, 5, 6, 8] {
        let sent: u64 = tallies.iter().map(|t| t.sent[usize::from(op)]).sum();
        let extra = u64::from(op == 0); // the final heartbeat
        let taken = now.get(&op).copied().unwrap_or(0) - base.get(&op).copied().unwrap_or(0);
        assert_eq!(taken, sent + extra, "opcode {op:#x}");
    }
    // No error log delivered twice; every one delivered once, except those whose answer
    // was rejected for a wrong id.
    let rest = admin.error_log_all().unwrap();
    let mut seen = BTreeSet::new();
    for prc in tallies
        .iter()
        .flat_map(|t| t.logs.iter())
        .chain(rest.iter().map(|e| &e.program_reference_code))
    {
        assert!(seen.insert(*prc), "error log {prc} delivered twice");
    }
    let lost: u64 = tallies.iter().map(|t| t.lost_logs).sum();
    assert_eq!(
        seen.len() as u64 + lost,
        u64::from(LOGS),
        "{lost} lost to wrong ids"
    );
}
