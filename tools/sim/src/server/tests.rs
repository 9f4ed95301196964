//! Protocol tests of the server against a small fake device, with a hand-written client
//! (raw messages), so the server's answers to malformed input are pinned.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use super::wire::{cmd, flags, Body, Fields, Header, HEADER_SIZE};
use super::*;

/// BAR0: 0x100 bytes of 8-byte registers; config: 0x100 bytes; BAR4: 0x2000 bytes of a
/// file, the second page mmap-able; everything else absent.
struct Fake {
    regs: Mutex<[u64; 32]>,
    resets: Mutex<u32>,
    memory: std::fs::File,
}

impl Fake {
    fn new() -> Self {
        Fake {
            regs: Mutex::new([0; 32]),
            resets: Mutex::new(0),
            memory: tempfile::tempfile().expect("temporary file"),
        }
    }
}

impl DeviceModel for Fake {
    fn region(&self, index: u32) -> RegionDesc<'_> {
        match index {
            4 => RegionDesc {
                size: 0x2000,
                read: true,
                write: true,
                mmap_areas: vec![(0x1000, 0x1000)],
                fd: Some((self.memory.as_fd(), 0)),
            },
            0 | 7 => RegionDesc {
                size: 0x100,
                read: true,
                write: true,
                mmap_areas: Vec::new(),
                fd: None,
            },
            _ => RegionDesc::absent(),
        }
    }
    fn irq_count(&self, _index: u32) -> u32 {
        0
    }
    fn read(&self, index: u32, offset: u64, buf: &mut [u8]) -> Result<(), i32> {
        if index == 7 {
            buf.fill(0x5A);
            return Ok(());
        }
        if buf.len() != 8 || !offset.is_multiple_of(8) || offset >= 0x100 {
            return Err(libc::EINVAL);
        }
        let regs = self.regs.lock().map_err(|_| libc::EIO)?;
        let v = regs.get((offset / 8) as usize).ok_or(libc::EINVAL)?;
        buf.copy_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn write(&self, index: u32, offset: u64, data: &[u8]) -> Result<(), i32> {
        let bytes: [u8; 8] = data.try_into().map_err(|_| libc::EINVAL)?;
        if index != 0 || !offset.is_multiple_of(8) {
            return Err(libc::EINVAL);
        }
        let mut regs = self.regs.lock().map_err(|_| libc::EIO)?;
        *regs.get_mut((offset / 8) as usize).ok_or(libc::EINVAL)? = u64::from_le_bytes(bytes);
        Ok(())
    }
    fn reset(&self) -> Result<(), i32> {
        *self.resets.lock().map_err(|_| libc::EIO)? += 1;
        Ok(())
    }
}

/// A server on a temporary socket, run on a thread until the returned stop fd is written.
struct Running {
    dir: tempfile::TempDir,
    stop: OwnedFd,
    thread: Option<thread::JoinHandle<Result<ServeEnd, ServerError>>>,
}

impl Running {
    fn start(idle: Option<Duration>) -> Running {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s.sock");
        let server = Server::bind(&path).expect("bind");
        let stop = nix::sys::eventfd::EventFd::new().expect("eventfd");
        let stop_owned: OwnedFd = stop.into();
        let stop_for_thread = stop_owned.try_clone().expect("dup");
        let thread = thread::spawn(move || {
            let fake = Fake::new();
            server.run(&fake, stop_for_thread.as_fd(), idle)
        });
        Running {
            dir,
            stop: stop_owned,
            thread: Some(thread),
        }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("s.sock")
    }

    fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(self.path()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s
    }

    fn stop(mut self) -> Result<ServeEnd, ServerError> {
        let mut f = std::fs::File::from(self.stop.try_clone().expect("dup"));
        f.write_all(&1u64.to_ne_bytes()).expect("signal stop");
        self.thread
            .take()
            .expect("thread")
            .join()
            .expect("server thread")
    }
}

/// Connects and negotiates the version, as every client must first.
fn negotiated(srv: &Running) -> UnixStream {
    let mut s = srv.connect();
    let (r, _) = call(
        &mut s,
        0,
        cmd::VERSION,
        &Body::default().u16(0).u16(1).bytes(b"{}\0").0,
    );
    assert_eq!(r.flags, flags::REPLY);
    s
}

/// Sends a command and returns (reply header, reply body).
fn call(s: &mut UnixStream, id: u16, command: u16, body: &[u8]) -> (Header, Vec<u8>) {
    let h = Header {
        id,
        command,
        size: (HEADER_SIZE + body.len()) as u32,
        flags: flags::COMMAND,
        error: 0,
    };
    s.write_all(&h.encode()).expect("send header");
    s.write_all(body).expect("send body");
    let mut raw = [0u8; HEADER_SIZE];
    s.read_exact(&mut raw).expect("reply header");
    let r = Header::decode(&raw);
    let mut b = vec![0u8; r.size as usize - HEADER_SIZE];
    s.read_exact(&mut b).expect("reply body");
    (r, b)
}

fn access(offset: u64, region: u32, count: u32) -> Body {
    Body::default().u64(offset).u32(region).u32(count)
}

#[test]
fn refused_register_access_is_an_error_reply_with_einval() {
    let srv = Running::start(None);
    let mut s = negotiated(&srv);
    let (r, _) = call(&mut s, 1, cmd::REGION_READ, &access(4, 0, 4).0);
    assert_eq!(
        (r.id, r.flags & flags::ERROR != 0, r.error),
        (1, true, libc::EINVAL as u32)
    );
    // The stream is still in step: a valid read works next.
    let (r, b) = call(&mut s, 2, cmd::REGION_READ, &access(8, 0, 8).0);
    assert_eq!((r.id, r.flags, b.len()), (2, flags::REPLY, 24));
    drop(s);
    assert_eq!(srv.stop().ok(), Some(ServeEnd::Stopped));
}

#[test]
fn write_to_a_region_that_does_not_exist_keeps_the_stream_in_step() {
    let srv = Running::start(None);
    let mut s = negotiated(&srv);
    let (r, _) = call(&mut s, 1, cmd::REGION_WRITE, &access(0, 99, 8).u64(7).0);
    assert_eq!(r.error, libc::EINVAL as u32);
    let (r, _) = call(&mut s, 2, cmd::REGION_WRITE, &access(0x10, 0, 8).u64(7).0);
    assert_eq!((r.id, r.flags), (2, flags::REPLY));
    let (_, b) = call(&mut s, 3, cmd::REGION_READ, &access(0x10, 0, 8).0);
    assert_eq!(Fields(&b).u64(16), Some(7));
    drop(s);
    assert!(srv.stop().is_ok());
}

#[test]
fn no_reply_write_is_applied_without_a_reply() {
    let srv = Running::start(None);
    let mut s = negotiated(&srv);
    let body = access(0x18, 0, 8).u64(0x55).0;
    let h = Header {
        id: 1,
        command: cmd::REGION_WRITE,
        size: (HEADER_SIZE + body.len()) as u32,
        flags: flags::COMMAND | flags::NO_REPLY,
        error: 0,
    };
    s.write_all(&h.encode()).expect("header");
    s.write_all(&body).expect("body");
    // The next reply on the stream answers the read, not the write.
    let (r, b) = call(&mut s, 2, cmd::REGION_READ, &access(0x18, 0, 8).0);
    assert_eq!((r.id, Fields(&b).u64(16)), (2, Some(0x55)));
    drop(s);
    assert!(srv.stop().is_ok());
}

#[test]
fn version_without_nul_is_answered_not_a_panic() {
    let srv = Running::start(None);
    let mut s = srv.connect();
    let (r, b) = call(
        &mut s,
        0,
        cmd::VERSION,
        &Body::default().u16(0).u16(1).bytes(b"{}").0,
    );
    assert_eq!(r.flags, flags::REPLY);
    assert_eq!((Fields(&b).u16(0), Fields(&b).u16(2)), (Some(0), Some(1)));
    assert_eq!(b.last(), Some(&0), "the reply's JSON is NUL-terminated");
    drop(s);
    assert!(srv.stop().is_ok());
}

#[test]
fn commands_before_version_are_refused() {
    let srv = Running::start(None);
    let mut s = srv.connect();
    let (r, _) = call(&mut s, 1, cmd::REGION_READ, &access(8, 0, 8).0);
    assert_eq!(r.error, libc::EINVAL as u32);
    drop(s);
    assert!(srv.stop().is_ok());
}

#[test]
fn unknown_command_is_refused_with_enotsup() {
    let srv = Running::start(None);
    let mut s = negotiated(&srv);
    let (r, _) = call(&mut s, 5, 0x77, &[]);
    assert_eq!(r.error, libc::ENOTSUP as u32);
    drop(s);
    assert!(srv.stop().is_ok());
}

#[test]
fn impossible_message_size_is_refused_and_only_that_client_dropped() {
    let srv = Running::start(None);
    let mut s = negotiated(&srv);
    let h = Header {
        id: 9,
        command: cmd::REGION_WRITE,
        size: u32::MAX,
        flags: flags::COMMAND,
        error: 0,
    };
    s.write_all(&h.encode()).expect("header");
    let mut raw = [0u8; HEADER_SIZE];
    s.read_exact(&mut raw).expect("error reply");
    let r = Header::decode(&raw);
    assert_eq!((r.id, r.error), (9, libc::EINVAL as u32));
    // The server hung up on it (the body could not be skipped) ...
    assert_eq!(s.read(&mut raw).ok(), Some(0));
    // ... and serves the next client.
    let mut s = negotiated(&srv);
    let (r, _) = call(&mut s, 1, cmd::REGION_READ, &access(0, 0, 8).0);
    assert_eq!(r.flags, flags::REPLY);
    drop(s);
    assert!(srv.stop().is_ok());
}

#[test]
fn set_irqs_beyond_the_vectors_is_refused_and_disable_accepted() {
    let srv = Running::start(None);
    let mut s = negotiated(&srv);
    // DATA_NONE | ACTION_TRIGGER, MSI-X, start 0, count 0: disable all.
    let none = Body::default().u32(20).u32(1 | 32).u32(2).u32(0).u32(0);
    let (r, _) = call(&mut s, 1, cmd::SET_IRQS, &none.0);
    assert_eq!(r.flags, flags::REPLY);
    // DATA_EVENTFD for one vector the device does not have (and no fd sent).
    let one = Body::default().u32(20).u32(4 | 32).u32(2).u32(0).u32(1);
    let (r, _) = call(&mut s, 2, cmd::SET_IRQS, &one.0);
    assert_eq!(r.error, libc::EINVAL as u32);
    let (r, b) = call(
        &mut s,
        3,
        cmd::GET_IRQ_INFO,
        &Body::default().u32(16).u32(0).u32(2).u32(0).0,
    );
    assert_eq!((r.flags, Fields(&b).u32(12)), (flags::REPLY, Some(0)));
    drop(s);
    assert!(srv.stop().is_ok());
}

#[test]
fn client_dying_mid_message_does_not_end_the_server() {
    let srv = Running::start(None);
    {
        let mut s = negotiated(&srv);
        // A header announcing 100 body bytes, then only 3 of them, then the client is gone.
        let h = Header {
            id: 1,
            command: cmd::REGION_WRITE,
            size: 116,
            flags: flags::COMMAND,
            error: 0,
        };
        s.write_all(&h.encode()).expect("header");
        s.write_all(&[1, 2, 3]).expect("part of the body");
    }
    let mut s = negotiated(&srv);
    call(&mut s, 1, cmd::REGION_WRITE, &access(0, 0, 8).u64(0xAB).0);
    let (_, b) = call(&mut s, 2, cmd::REGION_READ, &access(0, 0, 8).0);
    assert_eq!(Fields(&b).u64(16), Some(0xAB));
    let (r, _) = call(&mut s, 3, cmd::DEVICE_RESET, &[]);
    assert_eq!(r.flags, flags::REPLY);
    drop(s);
    assert!(srv.stop().is_ok());
}

#[test]
fn idle_server_exits_and_removes_its_socket() {
    let mut srv = Running::start(Some(Duration::from_millis(50)));
    let path = srv.path();
    let result = srv.thread.take().expect("thread").join().expect("join");
    assert_eq!(result.ok(), Some(ServeEnd::Idle));
    // The Server was dropped with the thread: its socket is gone.
    assert!(!path.exists());
}

#[test]
fn bind_refuses_a_live_socket_and_a_regular_file() {
    let srv = Running::start(None);
    assert!(matches!(
        Server::bind(srv.path()),
        Err(ServerError::InUse { .. })
    ));
    let file = srv.dir.path().join("plain");
    std::fs::write(&file, b"x").expect("write");
    assert!(matches!(
        Server::bind(&file),
        Err(ServerError::NotASocket { .. })
    ));
    assert!(srv.stop().is_ok());
}

#[test]
fn bind_replaces_a_stale_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("stale.sock");
    let l = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    drop(l); // the file stays, nobody listens
    let server = Server::bind(&path).expect("stale socket replaced");
    assert!(UnixStream::connect(server.path()).is_ok());
}

/// Asks for region 4's info with `argsz`; returns (argsz, flags, cap_offset, body length).
fn region4_info(s: &mut UnixStream, argsz: u32) -> (u32, u32, u32, usize) {
    let (r, body) = call(
        s,
        7,
        cmd::DEVICE_GET_REGION_INFO,
        &Body::default()
            .u32(argsz)
            .u32(0)
            .u32(4)
            .u32(0)
            .u64(0)
            .u64(0)
            .0,
    );
    assert_eq!(r.flags & flags::ERROR, 0, "error reply {}", r.error);
    let f = Fields(&body);
    (
        f.u32(0).expect("argsz"),
        f.u32(4).expect("flags"),
        f.u32(12).expect("cap_offset"),
        body.len(),
    )
}

#[test]
fn region_info_sets_caps_only_when_the_capability_is_sent() {
    // QEMU's vfio-user-pci refuses a reply with the CAPS flag and no capability offset
    // ("failed to get region 4 info: Invalid argument"); it asks with argsz 32 first.
    let srv = Running::start(None);
    let mut s = negotiated(&srv);
    let (needed, flags_small, cap_small, len_small) = region4_info(&mut s, 32);
    // Header (32) + sparse cap header (16) + one area (16).
    assert_eq!(needed, 64);
    assert_eq!(flags_small & 0x4, 0x4, "MMAP is always reported");
    assert_eq!(flags_small & 0x8, 0, "no CAPS flag without the capability");
    assert_eq!((cap_small, len_small), (0, 32));
    let (argsz, flags_big, cap_big, len_big) = region4_info(&mut s, needed);
    assert_eq!(argsz, needed);
    assert_eq!(flags_big & 0xC, 0xC, "MMAP and CAPS with the capability");
    assert_eq!((cap_big, len_big), (32, needed as usize));
    drop(s);
    assert_eq!(srv.stop().expect("server"), ServeEnd::Stopped);
}
