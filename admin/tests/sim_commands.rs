//! Every command and every kind of error against the simulator, each error triggered by
//! a simulator fault and followed by a command that succeeds.

use ocxlpmem_admin::{Admin, AdminError, AdminOptions, Destructive, Event, Monitor};
use ocxlpmem_admin::{MonitorOptions, ProtocolError};
use ocxlpmem_regs::{CommandArea, Mmio, Opcode, Status};
use ocxlpmem_sim::{ErrorLogEntry as SimLog, Fault, SimCard, SimConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn card() -> SimCard {
    SimCard::new(SimConfig {
        crdy_delay: Duration::ZERO,
        ma_delay: Duration::ZERO,
        ..SimConfig::default()
    })
    .unwrap()
}

fn open(card: &SimCard) -> Admin {
    let mmio: Arc<dyn Mmio> = Arc::new(card.mmio());
    let mut opts = AdminOptions::default().with_timeout_scale(0.05);
    opts.dump_timeout = Duration::from_millis(500);
    opts.fw_retry.initial_backoff = Duration::from_micros(10);
    Admin::with_options(mmio, opts).unwrap()
}

#[test]
fn heartbeat_smart_health_stats_caps() {
    let c = card();
    let a = open(&c);
    a.heartbeat().unwrap();
    let attrs = a.smart().unwrap();
    assert!(attrs.iter().any(|x| x.id == 0xC2));
    let h = a.health().unwrap();
    assert!(h.temperature_celsius.is_some());
    let s = a.stats().unwrap();
    let _ = s.host_load_count;
    let caps = a.cmd_caps().unwrap();
    assert!(!caps.is_empty());
}

#[test]
fn error_logs_drain_in_order_with_fields() {
    let c = card();
    let a = open(&c);
    for prc in [0x11, 0x22] {
        c.push_error_log(SimLog {
            log_type: 0,
            action_flags: 1 << 23,
            program_reference_code: prc,
            data: b"var".to_vec(),
        });
    }
    let all = a.error_log_all().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].program_reference_code, 0x11);
    assert_eq!(all[1].program_reference_code, 0x22);
    assert_eq!(all[0].actions, ["dump"]);
    assert_eq!(all[0].variable_data, b"var");
    assert!(a.error_log_next().unwrap().is_none());
}

#[test]
fn health_request_answers_with_a_type_4_log() {
    let c = card();
    let a = open(&c);
    a.request_health().unwrap();
    let w = a.wait_health_log(Duration::from_secs(5)).unwrap();
    assert!(w.health.is_health());
}

#[test]
fn dump_collects_and_resumes() {
    let c = card();
    let a = open(&c);
    let mut out = Vec::new();
    let mut calls = 0;
    let len = a.dump(&mut out, &mut |_| calls += 1).unwrap();
    assert_eq!(len as usize, out.len());
    assert!(len > 0 && calls > 0);
    // Resume: request, read it whole, then again from an offset; then complete.
    a.dump_request().unwrap();
    let mut full = Vec::new();
    let end = a.dump_resume(0, &mut full, &mut |_| {}).unwrap();
    let mut tail = Vec::new();
    assert_eq!(a.dump_resume(16, &mut tail, &mut |_| {}).unwrap(), end);
    assert!(tail[..] == full[16..], "resumed bytes differ");
    a.dump_complete().unwrap();
}

#[test]
fn dump_that_never_completes_is_a_bounded_wait() {
    let c = card();
    let a = open(&c);
    c.inject(Fault::DumpNeverCompletes);
    let e = a.dump(&mut Vec::new(), &mut |_| {}).unwrap_err();
    assert!(matches!(e, AdminError::WaitTimeout { .. }), "{e}");
    c.clear_faults();
    a.heartbeat().unwrap();
}

#[test]
fn timeout_then_next_command_succeeds() {
    let c = card();
    let a = open(&c);
    c.inject(Fault::CommandTimeout {
        area: CommandArea::Admin,
        opcode: None,
    });
    let e = a.heartbeat().unwrap_err();
    assert!(
        matches!(
            e,
            AdminError::Timeout {
                opcode: Opcode::Heartbeat,
                ..
            }
        ),
        "{e}"
    );
    c.clear_faults();
    a.heartbeat().unwrap();
    a.heartbeat().unwrap();
}

#[test]
fn status_then_next_command_succeeds() {
    let c = card();
    let a = open(&c);
    c.inject_once(Fault::Status {
        area: CommandArea::Admin,
        opcode: Some(0x05),
        status: 0x20,
    });
    let e = a.smart().unwrap_err();
    assert_eq!(e.status(), Some(Status::MemUnavailable));
    assert!(e.to_string().contains("MEM_UNAVAILABLE (0x20)"), "{e}");
    a.smart().unwrap();
}

#[test]
fn protocol_errors_then_next_command_succeeds() {
    let c = card();
    let a = open(&c);
    c.inject_once(Fault::WrongId {
        area: CommandArea::Admin,
    });
    let e = a.heartbeat().unwrap_err();
    assert!(
        matches!(e, AdminError::Protocol { kind: ProtocolError::IdMismatch { expected, seen }, .. } if seen == expected ^ 0x8000),
        "{e}"
    );
    a.heartbeat().unwrap();

    c.inject_once(Fault::BadPayloadId { opcode: 0x06 });
    let e = a.stats().unwrap_err();
    assert!(
        matches!(
            e,
            AdminError::Protocol {
                kind: ProtocolError::WrongPayloadId { .. },
                ..
            }
        ),
        "{e}"
    );
    a.stats().unwrap();

    c.inject_once(Fault::PayloadLength {
        opcode: 0x05,
        length: 0x10_0000,
    });
    let e = a.smart().unwrap_err();
    assert!(
        matches!(
            e,
            AdminError::Protocol {
                kind: ProtocolError::LengthBeyondBuffer { .. },
                ..
            }
        ),
        "{e}"
    );
    a.smart().unwrap();
}

#[test]
fn fatal_and_gone_then_next_command_succeeds() {
    let c = card();
    let a = open(&c);
    c.inject(Fault::FirmwareFatal);
    let e = a.heartbeat().unwrap_err();
    assert!(matches!(e, AdminError::Fatal { firmware: true, .. }), "{e}");
    c.clear_faults();
    a.heartbeat().unwrap();

    c.inject(Fault::HardwareFatal);
    assert!(matches!(
        a.heartbeat(),
        Err(AdminError::Fatal { hardware: true, .. })
    ));
    c.clear_faults();
    a.heartbeat().unwrap();

    c.inject(Fault::SurpriseRemoval);
    assert!(matches!(a.heartbeat(), Err(AdminError::Gone { .. })));
    c.clear_faults();
    a.heartbeat().unwrap();
}

#[test]
fn transport_error_then_next_command_succeeds() {
    let c = card();
    let a = open(&c);
    assert!(matches!(a.raw_read(0x3), Err(AdminError::Transport { .. })));
    a.heartbeat().unwrap();
}

#[test]
fn stale_acra_at_open_is_recovered() {
    let c = card();
    c.inject(Fault::StaleAcra);
    let a = open(&c);
    a.heartbeat().unwrap();
}

#[test]
fn destructive_commands_with_the_token() {
    let c = card();
    let a = open(&c);
    let t = Destructive::i_understand_this_can_destroy_data();
    let image: Vec<u8> = (0..0x9000u32).map(|i| i as u8).collect();
    c.inject_once(Fault::Status {
        area: CommandArea::Admin,
        opcode: Some(0x02),
        status: 0x21,
    });
    a.fw_update(&image, &t).unwrap();
    assert_eq!(c.firmware_image(), image);
    let r = a.secure_erase(&t).unwrap();
    assert!(r.is_complete());
}

#[test]
fn monitor_reports_faults_once_per_transition() {
    let c = card();
    let a = open(&c);
    let m = Monitor::for_admin(
        &a,
        MonitorOptions {
            interval: Duration::from_micros(500),
        },
    )
    .unwrap();
    let wait = Duration::from_secs(5);
    c.push_error_log(SimLog {
        log_type: 1,
        action_flags: 0,
        program_reference_code: 1,
        data: Vec::new(),
    });
    assert_eq!(m.events().recv_timeout(wait), Ok(Event::ErrorLogAvailable));
    c.inject(Fault::FirmwareFatal);
    assert_eq!(m.events().recv_timeout(wait), Ok(Event::FirmwareFatal));
    c.clear_faults();
    c.inject(Fault::SurpriseRemoval);
    assert_eq!(m.events().recv_timeout(wait), Ok(Event::DeviceGone));
    c.clear_faults();
    assert_eq!(m.events().recv_timeout(wait), Ok(Event::DeviceBack));
    c.inject(Fault::ReadyDrops);
    let deadline = Instant::now() + wait;
    loop {
        match m.events().recv_timeout(wait) {
            Ok(Event::ReadyLost { .. }) => break,
            Ok(_) if Instant::now() < deadline => continue,
            other => panic!("expected ReadyLost, got {other:?}"),
        }
    }
    assert!(m.take_signals().unwrap() >= 4);
}
