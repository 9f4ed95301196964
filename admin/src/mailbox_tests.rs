//! Unit tests of the send path (§2.4) against the scripted fake card.

use crate::fake::*;
use crate::{table, Admin, AdminError, AdminOptions, Destructive, ProtocolError};
use ocxlpmem_regs::payload::params;
use ocxlpmem_regs::{offsets, Chi, CommandArea, Hci, Mmio, Opcode, PayloadHeader, PayloadId};
use ocxlpmem_regs::{RequestHeader, Status};
use std::sync::Arc;
use std::time::Duration;

fn open() -> (Arc<FakeCard>, Admin) {
    let card = Arc::new(FakeCard::new());
    let opts = AdminOptions::default().with_timeout_scale(0.02);
    let admin = Admin::with_options(card.clone(), opts).unwrap();
    (card, admin)
}

fn garbage_request(card: &FakeCard) {
    for i in 0..8 {
        card.mem.write_u64(ADMIN_REQ + 8 * i, 0xDEAD_BEEF).unwrap();
    }
}

#[test]
fn discovery_follows_the_2_1_split() {
    let (_, admin) = open();
    let l = admin.admin_layout();
    assert_eq!(
        (l.request_offset, l.response_offset),
        (ADMIN_REQ, ADMIN_RSP)
    );
    assert_eq!((l.data_offset, l.data_size), (ADMIN_DATA, ADMIN_DATA_SIZE));
    let n = admin.near_storage_layout().unwrap();
    assert_eq!((n.request_offset, n.data_size), (NS_REQ, NS_DATA_SIZE));
    assert_eq!(admin.max_dump_size(), 0x10_0000);
}

#[test]
fn invalid_layouts_are_refused_and_a_zero_near_storage_area_is_absent() {
    let card = Arc::new(FakeCard::new());
    card.mem
        .write_u64(offsets::ACMA_CDBO, (0xF000 << 32) | 0x8000)
        .unwrap();
    let e = Admin::new(card).unwrap_err();
    assert!(
        matches!(
            e,
            AdminError::Layout {
                area: CommandArea::Admin,
                ..
            }
        ),
        "{e}"
    );

    let card = Arc::new(FakeCard::new());
    // The near-storage data buffer overlapping the admin one.
    card.mem
        .write_u64(offsets::NSCMA_CDBO, (0x2000 << 32) | 0x1000)
        .unwrap();
    let e = Admin::new(card).unwrap_err();
    assert!(
        matches!(
            e,
            AdminError::Layout {
                area: CommandArea::NearStorage,
                ..
            }
        ),
        "{e}"
    );

    let card = Arc::new(FakeCard::new());
    card.mem.write_u64(offsets::NSCMA_CREQO, 0).unwrap();
    card.mem.write_u64(offsets::NSCMA_CDBO, 0).unwrap();
    let admin = Admin::new(card).unwrap();
    let token = Destructive::i_understand_this_can_destroy_data();
    assert!(matches!(
        admin.secure_erase(&token),
        Err(AdminError::NoNearStorageArea)
    ));

    let card = Arc::new(FakeCard::new());
    card.set_chi(u64::MAX);
    assert!(matches!(Admin::new(card), Err(AdminError::Gone { .. })));
}

#[test]
fn request_block_has_header_params_and_zeroed_unused_words() {
    let (card, admin) = open();
    garbage_request(&card);
    let mut out = [0u8; 16];
    let _ = admin.send(
        &table::CONTROLLER_DUMP,
        &[params::dump_chunk(0x40, 8)],
        &[],
        &mut out,
    );
    garbage_request(&card);
    // Something else wrote the block (a reset): the next command must not trust it.
    admin.forget_request_words();
    admin.heartbeat().unwrap();
    let seen = card.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].words[0],
        RequestHeader {
            opcode: Opcode::ControllerDump,
            id: 1
        }
        .encode()
    );
    assert_eq!(seen[0].words[1], params::dump_chunk(0x40, 8));
    assert_eq!(&seen[0].words[2..], &[0; 6]);
    // Heartbeat: id 2 (incremented before each command), every parameter word zeroed.
    assert_eq!(seen[1].words[0], 0x0002_0000);
    assert_eq!(&seen[1].words[1..], &[0; 7]);
    assert!(seen.iter().all(|s| s.hci & Hci::ACRW != 0));
    // Acknowledged: ACRA is clear again.
    assert_eq!(card.chi() & Chi::ACRA, 0);
}

#[test]
fn unused_words_are_rezeroed_only_where_they_may_hold_something() {
    let (card, admin) = open();
    garbage_request(&card);
    admin.heartbeat().unwrap();
    // A one-parameter command, then a heartbeat: word 1 held the parameter and is zeroed.
    let mut out = [0u8; 16];
    let _ = admin.send(
        &table::CONTROLLER_DUMP,
        &[params::dump_chunk(0x40, 8)],
        &[],
        &mut out,
    );
    admin.heartbeat().unwrap();
    let seen = card.seen();
    assert_eq!(&seen[0].words[1..], &[0; 7]);
    assert_eq!(seen[1].words[1], params::dump_chunk(0x40, 8));
    assert_eq!(&seen[2].words[1..], &[0; 7]);
    // A write that fails mid-way leaves nothing trusted: after garbage, all are zeroed.
    card.script.lock().unwrap().fail_write_at = Some(ADMIN_REQ);
    assert!(admin.heartbeat().is_err());
    garbage_request(&card);
    admin.heartbeat().unwrap();
    let last = card.seen().pop().unwrap();
    assert_eq!(&last.words[1..], &[0; 7]);
}

#[test]
fn device_status_is_named_and_numbered_and_acknowledged() {
    let (card, admin) = open();
    card.script.lock().unwrap().statuses.push_back(0x21);
    let e = admin.heartbeat().unwrap_err();
    assert_eq!(e.status(), Some(Status::BlockedBgTask));
    let text = e.to_string();
    assert!(
        text.contains("BLOCKED_BG_TASK") && text.contains("0x21"),
        "{text}"
    );
    assert_eq!(card.chi() & Chi::ACRA, 0);
    card.script.lock().unwrap().statuses.push_back(0x99);
    let e = admin.heartbeat().unwrap_err();
    assert_eq!(e.status(), Some(Status::Unknown(0x99)));
    admin.heartbeat().unwrap();
}

#[test]
fn wrong_echoed_id_is_a_protocol_error_and_acknowledged() {
    let (card, admin) = open();
    card.script.lock().unwrap().echo_skew = 5;
    let e = admin.heartbeat().unwrap_err();
    match e {
        AdminError::Protocol {
            kind:
                ProtocolError::IdMismatch {
                    expected: 1,
                    seen: 6,
                },
            ..
        } => {}
        other => panic!("{other}"),
    }
    assert_eq!(card.chi() & Chi::ACRA, 0);
    card.script.lock().unwrap().echo_skew = 0;
    admin.heartbeat().unwrap();
}

#[test]
fn stale_response_is_cleared_before_the_next_command() {
    let (card, admin) = open();
    card.set_chi(card.chi() | Chi::ACRA);
    admin.heartbeat().unwrap();
    assert_eq!(card.seen().len(), 1);
    assert_eq!(card.chi() & Chi::ACRA, 0);
}

#[test]
fn timeout_then_the_late_response_is_acked_and_skipped() {
    let (card, admin) = open();
    card.script.lock().unwrap().silent = true;
    let e = admin.heartbeat().unwrap_err();
    assert!(
        matches!(e, AdminError::Timeout { opcode: Opcode::Heartbeat, waited, .. } if waited >= Duration::from_millis(2)),
        "{e}"
    );
    // The late answer to id 1 arrives during the next command: acked, skipped, and the
    // next command gets its own answer.
    {
        let mut s = card.script.lock().unwrap();
        s.silent = false;
        s.late_first = Some(1);
    }
    admin.heartbeat().unwrap();
    assert_eq!(card.chi() & Chi::ACRA, 0);
    admin.heartbeat().unwrap();
}

#[test]
fn fatal_and_gone_fail_at_once_and_the_next_command_succeeds() {
    let (card, admin) = open();
    let ready = card.chi();
    card.set_chi(ready | Chi::CFFS);
    assert!(matches!(
        admin.heartbeat(),
        Err(AdminError::Fatal {
            firmware: true,
            hardware: false,
            ..
        })
    ));
    card.set_chi(u64::MAX);
    assert!(matches!(
        admin.heartbeat(),
        Err(AdminError::Gone { offset: 0 })
    ));
    card.set_chi(ready);
    admin.heartbeat().unwrap();
    assert_eq!(card.seen().len(), 1);
}

#[test]
fn transport_error_keeps_the_access_and_the_next_command_succeeds() {
    let (card, admin) = open();
    card.script.lock().unwrap().fail_write_at = Some(offsets::HCI);
    let e = admin.heartbeat().unwrap_err();
    assert!(matches!(e, AdminError::Transport { .. }), "{e}");
    assert!(e.to_string().contains("0x20"), "{e}");
    admin.heartbeat().unwrap();
}

#[test]
fn copy_out_is_bounded_by_caller_and_device_length() {
    let (card, admin) = open();
    let mut p = PayloadHeader::encode(PayloadId::Smart, 32)
        .to_le_bytes()
        .to_vec();
    p.extend((0u8..32).collect::<Vec<_>>());
    p.extend([0xEE; 16]);
    card.script.lock().unwrap().payload = Some(p);
    let mut small = [0u8; 20];
    let c = admin.send(&table::SMART, &[0], &[], &mut small).unwrap();
    assert_eq!(c.len, 20);
    assert_eq!(&small[8..], &(0u8..12).collect::<Vec<_>>()[..]);
    let mut big = [0xAAu8; 64];
    let c = admin.send(&table::SMART, &[0], &[], &mut big).unwrap();
    assert_eq!(c.len, 40, "header + device length, not the caller's 64");
    assert_eq!(big[40], 0xAA);
}

#[test]
fn wrong_payload_id_and_length_beyond_buffer_are_protocol_errors() {
    let (card, admin) = open();
    let p = PayloadHeader::encode(PayloadId::ErrorLog, 0x40)
        .to_le_bytes()
        .to_vec();
    card.script.lock().unwrap().payload = Some(p);
    let e = admin.smart().unwrap_err();
    assert!(
        matches!(&e, AdminError::Protocol { kind: ProtocolError::WrongPayloadId { seen, .. }, .. } if seen == "EL"),
        "{e}"
    );
    let p = PayloadHeader::encode(PayloadId::Smart, ADMIN_DATA_SIZE)
        .to_le_bytes()
        .to_vec();
    card.script.lock().unwrap().payload = Some(p);
    let e = admin.smart().unwrap_err();
    assert!(
        matches!(
            e,
            AdminError::Protocol {
                kind: ProtocolError::LengthBeyondBuffer { limit: 0x7FF8, .. },
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(card.chi() & Chi::ACRA, 0);
    admin.heartbeat().unwrap();
}

#[test]
fn parameter_count_and_input_size_are_checked_before_anything_is_written() {
    let (card, admin) = open();
    assert!(matches!(
        admin.send(&table::SMART, &[], &[], &mut []),
        Err(AdminError::InvalidArgument { .. })
    ));
    assert!(matches!(
        admin.send(&table::HEARTBEAT, &[], &[1], &mut []),
        Err(AdminError::InvalidArgument { .. })
    ));
    assert!(card.seen().is_empty());
}

#[test]
fn secure_erase_uses_the_near_storage_area_and_checks_the_counts() {
    let (card, admin) = open();
    let token = Destructive::i_understand_this_can_destroy_data();
    card.script.lock().unwrap().words = [100, 100, 3, 3];
    let r = admin.secure_erase(&token).unwrap();
    assert_eq!((r.accessible_erased, r.defective_attempted), (100, 3));
    let seen = card.seen();
    assert_eq!(seen[0].area, CommandArea::NearStorage);
    assert_eq!(seen[0].words[0], 0x0001_0020);
    assert_eq!(card.chi() & Chi::NSCRA, 0);
    card.script.lock().unwrap().words = [100, 99, 3, 3];
    assert!(
        matches!(admin.secure_erase(&token), Err(AdminError::EraseIncomplete(r)) if r.accessible_attempted == 99)
    );
}

#[test]
fn fw_update_sends_blocks_in_order_and_retries_when_blocked() {
    let card = Arc::new(FakeCard::new());
    let mut opts = AdminOptions::default();
    opts.fw_retry.initial_backoff = Duration::from_micros(1);
    let admin = Admin::with_options(card.clone(), opts).unwrap();
    let token = Destructive::i_understand_this_can_destroy_data();
    card.script.lock().unwrap().statuses.extend([0x21, 0x21]);
    let image: Vec<u8> = (0..0x14000u32).map(|i| i as u8).collect();
    let mut calls = Vec::new();
    admin
        .fw_update_with_progress(&image, &token, &mut |sent, total| calls.push((sent, total)))
        .unwrap();
    let params: Vec<u64> = card.seen().iter().map(|s| s.words[1]).collect();
    assert_eq!(
        params,
        [
            params::fw_update(0, 0x8000),
            params::fw_update(0, 0x8000),
            params::fw_update(0, 0x8000),
            params::fw_update(0x8000, 0x8000),
            params::fw_update(0x10000, 0x4000),
        ]
    );
    assert_eq!(
        calls,
        [(0x8000, 0x14000), (0x10000, 0x14000), (0x14000, 0x14000)]
    );
    // The last block's bytes are in the data buffer, RAW.
    let mut tail = [0u8; 8];
    card.mem.read_bytes(ADMIN_DATA, &mut tail).unwrap();
    assert_eq!(&tail, &image[0x10000..0x10008]);
    assert!(matches!(
        admin.fw_update(&image[..12], &token),
        Err(AdminError::InvalidArgument { .. })
    ));
    card.script.lock().unwrap().statuses.push_back(0x52);
    let e = admin.fw_update(&image[..64], &token).unwrap_err();
    assert_eq!(e.status(), Some(Status::BadDataParm));
}

#[test]
fn fw_debug_is_framed_by_fde() {
    let (card, admin) = open();
    let token = Destructive::i_understand_this_can_destroy_data();
    card.script.lock().unwrap().payload = Some(b"debug-out".to_vec());
    let req = crate::FwDebugRequest {
        action: crate::FwDebugAction::ReadMemory,
        function_code: 2,
        parameter1: 0x1000,
        parameter2: 0x40,
        input: &[],
    };
    let mut out = [0u8; 9];
    assert_eq!(admin.fw_debug(&req, &mut out, &token).unwrap(), 9);
    assert_eq!(&out, b"debug-out");
    let seen = card.seen();
    assert!(seen[0].hci & Hci::FDE != 0, "FDE set before the command");
    assert_eq!(&seen[0].words[1..4], &req.params());
    assert_eq!(
        card.mem.read_u64(offsets::HCI).unwrap() & Hci::FDE,
        0,
        "FDE cleared after"
    );
    card.script.lock().unwrap().statuses.push_back(0x70);
    assert!(admin.fw_debug(&req, &mut out, &token).is_err());
    assert_eq!(
        card.mem.read_u64(offsets::HCI).unwrap() & Hci::FDE,
        0,
        "cleared on error too"
    );
}

#[test]
fn raw_access_and_cmd_caps() {
    let (card, admin) = open();
    let token = Destructive::i_understand_this_can_destroy_data();
    admin.raw_write(0x200, 0x1234, &token).unwrap();
    assert_eq!(admin.raw_read(0x200).unwrap(), 0x1234);
    assert!(matches!(
        admin.raw_read(0x201),
        Err(AdminError::Transport { .. })
    ));
    card.script.lock().unwrap().payload = Some(vec![7u8; 16]);
    let caps = admin.cmd_caps().unwrap();
    assert_eq!(caps.len(), crate::CMD_CAPS_LEN);
    assert_eq!(&caps[..16], &[7u8; 16]);
}

#[test]
fn doorbell_rmw_keeps_host_levels_and_never_rerings_consumed_requests() {
    let (card, admin) = open();
    // Pending as read: FDE (a host level) and CD/NSCRW (one-shot requests the controller
    // may consume between the read and the write).
    card.mem
        .write_u64(offsets::HCI, Hci::FDE | Hci::CD | Hci::NSCRW)
        .unwrap();
    admin.heartbeat().unwrap();
    assert_eq!(card.seen()[0].hci, Hci::FDE | Hci::ACRW);
}
