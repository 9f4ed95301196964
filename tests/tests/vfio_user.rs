//! The vfio-user seam across processes: the real `ocxlpmem-sim serve` in a child process,
//! the driver's `VfioUserTransport` in this one (and in a helper child that gets killed).

mod vfio_user_support;

use std::io::ErrorKind;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use ocxlpmem::transport::{region, Transport, TransportError};
use ocxlpmem_regs::command::{
    AreaLayout, CommandArea, Opcode, RequestHeader, ResponseHeader, Status,
};
use ocxlpmem_regs::config::{self, dvsec};
use ocxlpmem_regs::indicators::{Chi, Hci};
use ocxlpmem_regs::offsets;
use vfio_user_support::{reg, set_reg, wait_chi, RingingClient, SimServer};

fn cfg_u16(t: &dyn Transport, offset: u64) -> u16 {
    let mut b = [0u8; 2];
    t.config_read(offset, &mut b).expect("config read");
    u16::from_le_bytes(b)
}

fn cfg_u32(t: &dyn Transport, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    t.config_read(offset, &mut b).expect("config read");
    u32::from_le_bytes(b)
}

/// Walks the extended capabilities: (capability id, offset) for each, DVSECs with their id.
fn extended_caps(t: &dyn Transport) -> Vec<(u16, Option<u16>, u64)> {
    let mut out = Vec::new();
    let mut at = config::pci::EXTENDED_START;
    while at != 0 && out.len() < 64 {
        let (id, _version, next) = config::split_ext_cap_header(cfg_u32(t, at));
        if id == 0 {
            break;
        }
        let dvsec_id = (id == config::EXT_CAP_DVSEC).then(|| cfg_u16(t, at + dvsec::HEADER2));
        out.push((id, dvsec_id, at));
        at = u64::from(next);
    }
    out
}

fn admin_layout(t: &dyn Transport) -> AreaLayout {
    let area = CommandArea::Admin;
    AreaLayout::decode(
        reg(t, area.offsets_register()),
        reg(t, area.buffer_register()),
    )
}

/// Issues HEARTBEAT with `id` through the trapped registers (spec §2.4 steps 3-5).
fn ring_heartbeat(t: &dyn Transport, id: u16) -> AreaLayout {
    let l = admin_layout(t);
    set_reg(
        t,
        l.request_offset,
        RequestHeader {
            opcode: Opcode::Heartbeat,
            id,
        }
        .encode(),
    );
    for word in 1..8 {
        set_reg(t, l.request_offset + 8 * word, 0);
    }
    let hci = reg(t, offsets::HCI);
    set_reg(t, offsets::HCI, hci | Hci::ACRW);
    l
}

#[test]
fn config_space_is_function_1_of_the_ibm_card_with_its_dvsecs_and_serial() {
    let srv = SimServer::start(&["--serial", "0x1234abcd5678"]);
    let t = srv.connect();
    assert_eq!(cfg_u16(&t, config::pci::VENDOR), config::VENDOR_ID);
    assert_eq!(cfg_u16(&t, config::pci::DEVICE), config::DEVICE_ID);
    let caps = extended_caps(&t);
    for want in [
        dvsec::ID_FUNCTION,
        dvsec::ID_AFU_INFO,
        dvsec::ID_AFU_CONTROL,
    ] {
        assert!(
            caps.iter().any(|&(_, d, _)| d == Some(want)),
            "DVSEC {want:#x} missing from {caps:x?}"
        );
    }
    let &(_, _, dsn) = caps
        .iter()
        .find(|&&(id, _, _)| id == config::EXT_CAP_DSN)
        .expect("a Device Serial Number capability");
    let serial = u64::from(cfg_u32(&t, dsn + config::DSN_LOW))
        | u64::from(cfg_u32(&t, dsn + config::DSN_HIGH)) << 32;
    assert_eq!(serial, 0x1234_abcd_5678);
}

#[test]
fn trapped_registers_give_ccap0_fwver_and_readiness() {
    let srv = SimServer::start(&[]);
    let t = srv.connect();
    let ccap0 = reg(&t, offsets::CCAP0);
    // Spec §10 defaults: revision 0x0010, read latency 300 ns, 2 s + 2 s timeouts.
    assert_eq!(ccap0 & 0xFFFF, 0x0010);
    assert_eq!(ccap0 >> 32 & 0xFFFF, 300);
    assert_eq!((ccap0 >> 48 & 0xF, ccap0 >> 52 & 0xF), (2, 2));
    let fwver = reg(&t, offsets::FWVER).to_le_bytes();
    assert!(
        fwver.iter().all(|b| b.is_ascii_graphic() || *b == b' '),
        "{fwver:?}"
    );
    let chi = wait_chi(&t, Chi::CRDY | Chi::MA);
    assert_eq!(
        chi & (Chi::CRDY | Chi::MA),
        Chi::CRDY | Chi::MA,
        "CHI {chi:#x}"
    );
    assert_eq!(chi & (Chi::CFFS | Chi::CHFS), 0);
}

#[test]
fn raw_heartbeat_through_the_registers_completes() {
    let srv = SimServer::start(&[]);
    let t = srv.connect();
    wait_chi(&t, Chi::CRDY | Chi::MA);
    let l = ring_heartbeat(&t, 1);
    let chi = wait_chi(&t, Chi::ACRA);
    assert_ne!(chi & Chi::ACRA, 0, "no response: CHI {chi:#x}");
    let rsp = ResponseHeader::decode(reg(&t, l.response_offset));
    assert_eq!((rsp.status, rsp.id), (Status::Success, 1));
    // The controller consumed the doorbell; acknowledging clears ACRA.
    assert_eq!(reg(&t, offsets::HCI) & Hci::ACRW, 0);
    set_reg(&t, offsets::CHIC, Chi::ACRA);
    assert_eq!(reg(&t, offsets::CHI) & Chi::ACRA, 0);
}

#[test]
fn lpc_memory_mapping_and_trapped_reads_see_the_same_bytes() {
    let srv = SimServer::start(&["--lpc-size", "32M"]);
    let t = srv.connect();
    let info = t.region_info(region::BAR4).expect("BAR4 info");
    assert_eq!(info.size, 32 << 20);
    assert!(info.is_mappable(0, info.size), "{info:?}");
    let at = 16u64 << 20; // just past the label area
    let map = t.map_region(region::BAR4, at, 0x10000).expect("mmap BAR4");
    let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    // SAFETY: the mapping is 0x10000 bytes long, shared and writable; nothing else in
    // this process touches it.
    unsafe {
        std::ptr::copy_nonoverlapping(pattern.as_ptr(), map.as_ptr().as_ptr(), pattern.len())
    };
    let mut back = vec![0u8; pattern.len()];
    t.region_read(region::BAR4, at, &mut back)
        .expect("trapped read of LPC memory");
    assert_eq!(back, pattern);
    // And the other way: a trapped write shows up in the mapping.
    t.region_write(region::BAR4, at + 0x8000, b"through the socket")
        .expect("trapped write");
    let mut seen = [0u8; 18];
    // SAFETY: offset 0x8000 + 18 lies inside the 0x10000-byte mapping.
    unsafe {
        std::ptr::copy_nonoverlapping(map.as_ptr().as_ptr().add(0x8000), seen.as_mut_ptr(), 18)
    };
    assert_eq!(&seen, b"through the socket");
}

#[test]
fn lpc_memory_outlives_a_client() {
    let srv = SimServer::start(&["--lpc-size", "32M"]);
    {
        let t = srv.connect();
        t.region_write(region::BAR4, 0x1000, b"kept")
            .expect("write");
    }
    let t = srv.connect();
    let mut b = [0u8; 4];
    t.region_read(region::BAR4, 0x1000, &mut b).expect("read");
    assert_eq!(&b, b"kept");
}

#[test]
fn lpc_image_outlives_the_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let image = dir.path().join("lpc.img");
    let image_arg = image.to_str().expect("utf-8 path");
    let mut first = SimServer::start(&["--lpc-size", "32M", "--image", image_arg]);
    first
        .connect()
        .region_write(region::BAR4, 0x20_0000, b"persistent")
        .expect("write LPC memory");
    assert!(first.signal_and_wait(Signal::SIGTERM).success());
    let second = SimServer::start(&["--lpc-size", "32M", "--image", image_arg]);
    let mut b = [0u8; 10];
    second
        .connect()
        .region_read(region::BAR4, 0x20_0000, &mut b)
        .expect("read LPC memory");
    assert_eq!(&b, b"persistent");
}

#[test]
fn bad_configuration_is_a_clear_error_and_exit_status_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vfio-user-sim-server"))
        .arg("serve")
        .arg("--socket")
        .arg(dir.path().join("s.sock"))
        .args(["--lpc-size", "3M", "--timeout", "5"])
        .output()
        .expect("run the server");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lpc_size"),
        "{out:?}"
    );
    assert!(!dir.path().join("s.sock").exists());
}

#[test]
fn register_file_is_trapped_and_command_areas_mappable_on_request() {
    let srv = SimServer::start(&["--mmap-command-areas"]);
    let t = srv.connect();
    let info = t.region_info(region::BAR0).expect("BAR0 info");
    let l = admin_layout(&t);
    assert!(
        !info.is_mappable(0, offsets::REGISTER_FILE_SIZE),
        "{info:?}"
    );
    assert!(
        info.is_mappable(l.data_offset, l.data_size),
        "{info:?} {l:?}"
    );
    assert!(matches!(
        t.map_region(region::BAR0, 0, 0x1000),
        Err(TransportError::NotMappable { .. })
    ));
    let map = t
        .map_region(region::BAR0, l.data_offset, l.data_size)
        .expect("map the data buffer");
    assert_eq!(map.len() as u64, l.data_size);
}

#[test]
fn command_areas_are_trapped_by_default() {
    let srv = SimServer::start(&[]);
    let t = srv.connect();
    let l = admin_layout(&t);
    let info = t.region_info(region::BAR0).expect("BAR0 info");
    assert!(!info.is_mappable(l.data_offset, 8), "{info:?}");
}

#[test]
fn refused_register_access_is_an_error_with_einval_and_the_link_survives() {
    let srv = SimServer::start(&[]);
    let t = srv.connect();
    let mut four = [0u8; 4];
    match t.region_read(region::BAR0, offsets::CCAP0, &mut four) {
        Err(TransportError::Io { source, .. }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EINVAL))
        }
        other => panic!("a 4-byte register read must be refused, got {other:?}"),
    }
    match t.region_write(region::BAR0, offsets::CHIE + 4, &[0u8; 8]) {
        Err(TransportError::Io { source, .. }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EINVAL))
        }
        other => panic!("a misaligned register write must be refused, got {other:?}"),
    }
    // The stream stayed in step.
    assert_eq!(reg(&t, offsets::CCAP0) & 0xFFFF, 0x0010);
}

#[test]
fn accesses_outside_a_region_fail_before_reaching_the_server() {
    let srv = SimServer::start(&[]);
    let t = srv.connect();
    let size = t.region_info(region::BAR0).expect("BAR0").size;
    let mut b = [0u8; 8];
    assert!(matches!(
        t.region_read(region::BAR0, size, &mut b),
        Err(TransportError::OutOfBounds { .. })
    ));
    assert!(matches!(
        t.region_read(region::BAR2, 0, &mut b),
        Err(TransportError::NoSuchRegion { index: 2, .. })
    ));
}

#[test]
fn irq_info_and_reset_are_offered() {
    let srv = SimServer::start(&[]);
    let t = srv.connect();
    let msix = t.irq_info(2).expect("MSI-X info");
    assert_eq!(
        msix.count, 0,
        "the card has no interrupts under VFIO (spec §4)"
    );
    assert!(t.resettable());
    // No vectors: detaching is fine, attaching one is refused by the server.
    t.set_irq_eventfds(2, &[]).expect("detach MSI-X eventfds");
    let efd: std::os::fd::OwnedFd = nix::sys::eventfd::EventFd::new().expect("eventfd").into();
    match t.set_irq_eventfds(2, &[efd]) {
        Err(TransportError::Io { source, .. }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EINVAL))
        }
        other => panic!("expected EINVAL, got {other:?}"),
    }
    // A reset is a controller reset: a posted response (ACRA) is discarded.
    wait_chi(&t, Chi::CRDY | Chi::MA);
    ring_heartbeat(&t, 1);
    assert_ne!(wait_chi(&t, Chi::ACRA) & Chi::ACRA, 0);
    t.reset().expect("reset");
    assert_eq!(reg(&t, offsets::CHI) & Chi::ACRA, 0);
    let chi = wait_chi(&t, Chi::CRDY | Chi::MA);
    assert_eq!(
        chi & (Chi::CRDY | Chi::MA),
        Chi::CRDY | Chi::MA,
        "not ready again after reset"
    );
}

#[test]
fn client_killed_mid_command_leaves_a_stale_acra_for_the_next_client() {
    let srv = SimServer::start(&[]);
    {
        let t = srv.connect();
        wait_chi(&t, Chi::CRDY | Chi::MA);
    }
    let client = RingingClient::start(srv.socket());
    let id = client.id;
    let status = client.kill9();
    assert!(!status.success());
    // A new client finds the dead one's response still posted (spec §10) and recovers it
    // (spec §2.4 step 2).
    let t = srv.connect();
    let chi = wait_chi(&t, Chi::ACRA);
    assert_ne!(
        chi & Chi::ACRA,
        0,
        "stale ACRA expected, CHI {chi:#x}\n{}",
        srv.log()
    );
    let rsp = ResponseHeader::decode(reg(&t, admin_layout(&t).response_offset));
    assert_eq!(rsp.id, id, "the posted response is the dead client's");
    set_reg(&t, offsets::CHIC, Chi::ACRA);
    assert_eq!(reg(&t, offsets::CHI) & Chi::ACRA, 0);
    // And the card still works.
    ring_heartbeat(&t, id.wrapping_add(1));
    assert_ne!(wait_chi(&t, Chi::ACRA) & Chi::ACRA, 0);
}

#[test]
fn admin_send_path_across_processes_recovers_a_dead_clients_response() {
    let srv = SimServer::start(&[]);
    {
        let t = srv.connect();
        wait_chi(&t, Chi::CRDY | Chi::MA);
    }
    let killed = RingingClient::start(srv.socket());
    assert!(!killed.kill9().success());
    // spec §2.4 step 2: the next owner clears the stale response and its command works.
    let t: std::sync::Arc<dyn Transport> = std::sync::Arc::new(srv.connect());
    let location = ocxlpmem::device::MmioLocation {
        bar: 0,
        offset: 0,
        size: t.region_info(region::BAR0).unwrap().size,
    };
    let mmio = std::sync::Arc::new(ocxlpmem::device::GlobalMmio::new(
        std::sync::Arc::clone(&t),
        location,
        false,
    ));
    let admin = ocxlpmem_admin::Admin::new(mmio).expect("admin over vfio-user");
    admin.heartbeat().expect("heartbeat after a dead client");
    admin.heartbeat().expect("a second heartbeat");
    assert_eq!(reg(t.as_ref(), offsets::CHI) & Chi::ACRA, 0);
}

#[test]
fn killed_server_is_reported_gone_never_a_hang() {
    let mut srv = SimServer::start(&[]);
    let t = srv.connect();
    reg(&t, offsets::CHI);
    let status = srv.signal_and_wait(Signal::SIGKILL);
    assert!(!status.success());
    let mut b = [0u8; 8];
    for _ in 0..2 {
        match t.region_read(region::BAR0, offsets::CHI, &mut b) {
            Err(TransportError::Gone { .. }) => {}
            other => panic!("expected Gone, got {other:?}"),
        }
    }
    assert!(matches!(t.reset(), Err(TransportError::Gone { .. })));
}

#[test]
fn hung_server_is_reported_gone_after_the_socket_timeout() {
    let srv = SimServer::start(&[]);
    let t = srv.connect_with_timeout(Duration::from_millis(200));
    reg(&t, offsets::CHI);
    kill(srv.pid(), Signal::SIGSTOP).expect("stop the server");
    let mut b = [0u8; 8];
    let r = t.region_read(region::BAR0, offsets::CHI, &mut b);
    kill(srv.pid(), Signal::SIGCONT).expect("continue the server");
    match r {
        Err(TransportError::Gone { detail, .. }) => {
            assert!(detail.contains("hung or gone"), "{detail}")
        }
        other => panic!("expected Gone, got {other:?}"),
    }
    // The connection is not reused after it lost step, even though the server woke up.
    assert!(matches!(
        t.region_read(region::BAR0, offsets::CHI, &mut b),
        Err(TransportError::Gone { .. })
    ));
}

#[test]
fn one_connection_serves_many_threads() {
    let srv = SimServer::start(&[]);
    let t = srv.connect();
    let want = reg(&t, offsets::CCAP0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..100 {
                    assert_eq!(reg(&t, offsets::CCAP0), want);
                }
            });
        }
    });
}

#[test]
fn clients_are_served_one_at_a_time() {
    let srv = SimServer::start(&[]);
    let first = srv.connect();
    let second = ocxlpmem::transport::vfio_user::VfioUserTransport::connect_with(
        srv.socket(),
        ocxlpmem::transport::vfio_user::VfioUserOptions {
            timeout: Duration::from_millis(200),
        },
    );
    match second {
        Err(TransportError::Gone { detail, .. }) => {
            assert!(detail.contains("another client"), "{detail}")
        }
        other => panic!("expected the second client to wait and give up, got {other:?}"),
    }
    reg(&first, offsets::CCAP0);
    drop(first);
    reg(&srv.connect(), offsets::CCAP0);
}

#[test]
fn sigterm_stops_the_server_cleanly_and_removes_the_socket() {
    let mut srv = SimServer::start(&[]);
    let _connected = srv.connect();
    let status = srv.signal_and_wait(Signal::SIGTERM);
    assert!(status.success(), "{status}\n{}", srv.log());
    assert!(!srv.socket().exists());
}

#[test]
fn idle_server_exits_by_itself() {
    let mut srv = SimServer::start(&["--timeout", "0.2"]);
    let status = srv
        .wait_exit(Duration::from_secs(10))
        .expect("the idle server exits");
    assert!(status.success(), "{status}\n{}", srv.log());
    assert!(!srv.socket().exists());
}

#[test]
fn a_second_server_on_a_live_socket_is_refused() {
    let srv = SimServer::start(&[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vfio-user-sim-server"))
        .arg("serve")
        .arg("--socket")
        .arg(srv.socket())
        .args(["--timeout", "5"])
        .output()
        .expect("run a second server");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{out:?}"
    );
    // The first one is unharmed.
    reg(&srv.connect(), offsets::CCAP0);
}

#[test]
fn connecting_to_nothing_is_an_io_error_naming_the_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.sock");
    match ocxlpmem::transport::vfio_user::VfioUserTransport::connect(&path) {
        Err(TransportError::Io { op, source }) => {
            assert_eq!(source.kind(), ErrorKind::NotFound);
            assert!(op.contains("absent.sock"), "{op}");
        }
        other => panic!("expected an Io error, got {other:?}"),
    }
}
