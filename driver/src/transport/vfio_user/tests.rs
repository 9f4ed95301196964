//! The client against a scripted server that misbehaves on purpose: error replies,
//! wrong ids, short replies, a non-PCI or non-resettable device, a foreign version. The
//! well-behaved server (the simulator) is tested across processes in the tests crate.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use super::wire::{cmd, flags, Header, Writer, HEADER_SIZE};
use super::*;

/// What the scripted device says in DEVICE_GET_INFO.
#[derive(Clone, Copy)]
struct Device {
    flags: u32,
    major: u16,
}

const PCI_RESET: Device = Device { flags: 3, major: 0 };

struct Scripted {
    _dir: tempfile::TempDir,
    path: PathBuf,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_msg(s: &mut UnixStream) -> Option<(Header, Vec<u8>)> {
    let mut raw = [0u8; HEADER_SIZE];
    s.read_exact(&mut raw).ok()?;
    let h = Header::decode(&raw);
    let mut body = vec![0u8; (h.size as usize).checked_sub(HEADER_SIZE)?];
    s.read_exact(&mut body).ok()?;
    Some((h, body))
}

fn send(s: &mut UnixStream, to: &Header, body: &[u8], flags_: u32, errno: u32) {
    let h = Header {
        id: to.id,
        command: to.command,
        size: (HEADER_SIZE + body.len()) as u32,
        flags: flags_,
        error: errno,
    };
    let _ = s.write_all(&h.encode());
    let _ = s.write_all(body);
}

/// Answers the connect sequence (VERSION, DEVICE_GET_INFO, 9 region infos: region 0 is
/// 0x100 bytes of trapped registers, the rest absent), then runs `script`.
fn serve(device: Device, script: impl FnOnce(&mut UnixStream) + Send + 'static) -> Scripted {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let thread = thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        while let Some((h, body)) = read_msg(&mut s) {
            let reply = match h.command {
                cmd::VERSION => Writer::default().u16(device.major).u16(0).bytes(b"{}\0").0,
                cmd::DEVICE_GET_INFO => Writer::default().u32(16).u32(device.flags).u32(9).u32(5).0,
                cmd::DEVICE_GET_REGION_INFO => {
                    let index = wire::Reader(&body).u32(8).unwrap_or(0);
                    let size = if index == 0 { 0x100 } else { 0 };
                    let last = index == 8;
                    let b = Writer::default()
                        .u32(32)
                        .u32(3)
                        .u32(index)
                        .u32(0)
                        .u64(size)
                        .u64(0)
                        .0;
                    send(&mut s, &h, &b, flags::REPLY, 0);
                    if last {
                        break;
                    }
                    continue;
                }
                _ => return,
            };
            send(&mut s, &h, &reply, flags::REPLY, 0);
            if h.command == cmd::DEVICE_GET_INFO && device.flags & 2 == 0 {
                return;
            }
        }
        script(&mut s);
    });
    Scripted {
        _dir: dir,
        path,
        thread: Some(thread),
    }
}

fn connect(s: &Scripted) -> Result<VfioUserTransport> {
    VfioUserTransport::connect_with(
        &s.path,
        VfioUserOptions {
            timeout: Duration::from_secs(5),
        },
    )
}

#[test]
fn region_write_error_reply_is_an_error_with_the_errno() {
    let srv = serve(PCI_RESET, |s| {
        if let Some((h, _)) = read_msg(s) {
            send(s, &h, &[], flags::REPLY | flags::ERROR, libc::EINVAL as u32);
        }
    });
    let t = connect(&srv).expect("connect");
    match t.region_write(region::BAR0, 0, &[0u8; 8]) {
        Err(TransportError::Io { source, op }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EINVAL));
            assert!(op.contains("REGION_WRITE"), "{op}");
        }
        other => panic!("expected the error reply as an error, got {other:?}"),
    }
}

#[test]
fn error_flag_without_errno_is_still_an_error() {
    let srv = serve(PCI_RESET, |s| {
        if let Some((h, _)) = read_msg(s) {
            send(s, &h, &[], flags::REPLY | flags::ERROR, 0);
        }
    });
    let t = connect(&srv).expect("connect");
    let mut b = [0u8; 8];
    assert!(matches!(
        t.region_read(region::BAR0, 0, &mut b),
        Err(TransportError::Protocol { .. })
    ));
}

#[test]
fn reply_to_another_message_breaks_the_connection_for_good() {
    let srv = serve(PCI_RESET, |s| {
        if let Some((mut h, _)) = read_msg(s) {
            h.id = h.id.wrapping_add(5);
            send(s, &h, &[0u8; 24], flags::REPLY, 0);
        }
    });
    let t = connect(&srv).expect("connect");
    let mut b = [0u8; 8];
    assert!(matches!(
        t.region_read(region::BAR0, 0, &mut b),
        Err(TransportError::Protocol { .. })
    ));
    assert!(matches!(
        t.region_read(region::BAR0, 0, &mut b),
        Err(TransportError::Gone { .. })
    ));
}

#[test]
fn short_read_reply_is_a_protocol_error() {
    let srv = serve(PCI_RESET, |s| {
        if let Some((h, body)) = read_msg(s) {
            // The access echo, but 4 data bytes where 8 were asked for.
            let b = Writer::default().bytes(&body).bytes(&[1, 2, 3, 4]).0;
            send(s, &h, &b, flags::REPLY, 0);
        }
    });
    let t = connect(&srv).expect("connect");
    let mut b = [0u8; 8];
    assert!(matches!(
        t.region_read(region::BAR0, 0, &mut b),
        Err(TransportError::Protocol { .. })
    ));
}

#[test]
fn server_that_disappears_mid_reply_is_gone() {
    let srv = serve(PCI_RESET, |s| {
        if let Some((h, _)) = read_msg(s) {
            let full = Header {
                id: h.id,
                command: h.command,
                size: 40,
                flags: flags::REPLY,
                error: 0,
            };
            let _ = s.write_all(&full.encode());
            let _ = s.write_all(&[0u8; 5]);
        }
    });
    let t = connect(&srv).expect("connect");
    let mut b = [0u8; 8];
    assert!(matches!(
        t.region_read(region::BAR0, 0, &mut b),
        Err(TransportError::Gone { .. })
    ));
}

#[test]
fn a_device_without_the_reset_flag_is_not_resettable() {
    let srv = serve(Device { flags: 2, major: 0 }, |_| {});
    let t = connect(&srv).expect("connect");
    assert!(!t.resettable());
    assert!(matches!(t.reset(), Err(TransportError::Unsupported { .. })));
}

#[test]
fn a_device_that_is_not_pci_is_refused() {
    let srv = serve(Device { flags: 1, major: 0 }, |_| {});
    assert!(matches!(
        connect(&srv),
        Err(TransportError::Protocol { .. })
    ));
}

#[test]
fn a_foreign_major_version_is_refused() {
    let srv = serve(Device { flags: 3, major: 1 }, |_| {});
    match connect(&srv) {
        Err(TransportError::Protocol { detail, .. }) => assert!(detail.contains("1.0"), "{detail}"),
        other => panic!("expected a version mismatch, got {other:?}"),
    }
}

#[test]
fn absent_regions_are_described_but_not_accessible() {
    let srv = serve(PCI_RESET, |_| {});
    let t = connect(&srv).expect("connect");
    assert_eq!(t.region_info(region::BAR4).map(|r| r.size).ok(), Some(0));
    assert!(matches!(
        t.region_info(42),
        Err(TransportError::NoSuchRegion { .. })
    ));
    let mut b = [0u8; 8];
    assert!(matches!(
        t.region_read(region::BAR4, 0, &mut b),
        Err(TransportError::NoSuchRegion { .. })
    ));
    assert!(matches!(
        t.region_read(region::BAR0, 0xFC, &mut b),
        Err(TransportError::OutOfBounds { .. })
    ));
}
