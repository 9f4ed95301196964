//! Bring-up end to end over vfio-user, with the simulator in another process: the
//! driver's `device::Card` and the CLI, a dead client's command recovered by the next
//! owner, and a server killed under an open card.

mod vfio_user_support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use nix::sys::signal::Signal;
use ocxlpmem::device::{Card, CardOptions, Recovery};
use ocxlpmem::label::lsa::{read_exact, MediaLsa};
use ocxlpmem::media::bar::BarWindow;
use ocxlpmem::media::MediaWindow;
use ocxlpmem::transport::Transport;
use ocxlpmem_regs::{offsets, Chi, Mmio};
use vfio_user_support::{RingingClient, SimServer};

fn open(srv: &SimServer) -> Card {
    let t: Arc<dyn Transport> = Arc::new(srv.connect());
    Card::open(t, &CardOptions::default()).unwrap_or_else(|e| panic!("{e}\n{}", srv.log()))
}

#[test]
fn bring_up_over_vfio_user_reads_the_card_from_its_config_space() {
    let srv = SimServer::start(&["--serial", "0x5151", "--mmap-command-areas"]);
    let card = open(&srv);
    let info = card.info();
    assert_eq!(info.serial, 0x5151);
    assert_eq!(info.afu.as_ref().unwrap().name, "IBM,SCM");
    assert!(info.ready.is_some());
    assert!(
        !info.mmio_mapped.is_empty(),
        "the data buffers come as mmap-able areas over vfio-user"
    );
    card.admin().heartbeat().unwrap();
    card.admin().stats().unwrap();
    // The media window over the same transport: the label area reads through the mapping.
    let w: Arc<dyn MediaWindow> = Arc::new(BarWindow::open(card.transport().as_ref()).unwrap());
    assert_eq!(Some(w.len()), info.lpc_size);
    let lsa = MediaLsa::new(w);
    let mut buf = [0u8; 256];
    read_exact(&lsa, 0, &mut buf).unwrap();
}

#[test]
fn a_driver_killed_mid_command_is_recovered_by_the_next_bring_up() {
    let srv = SimServer::start(&[]);
    drop(open(&srv));
    let client = RingingClient::start(srv.socket());
    assert!(!client.kill9().success());
    let card = open(&srv);
    assert!(
        card.info()
            .recovered
            .contains(&Recovery::StaleResponse { area: "admin" }),
        "{:?}",
        card.info().recovered
    );
    assert_eq!(card.mmio().read_u64(offsets::CHI).unwrap() & Chi::ACRA, 0);
    card.admin().heartbeat().unwrap();
}

#[test]
fn a_server_killed_under_an_open_card_is_reported_never_a_hang() {
    let mut srv = SimServer::start(&[]);
    let card = open(&srv);
    assert!(!srv.signal_and_wait(Signal::SIGKILL).success());
    let e = card.admin().heartbeat().unwrap_err();
    let text = e.to_string();
    assert!(text.contains("gone") || text.contains("closed"), "{text}");
    // A new bring-up on the dead socket fails to connect, naming it.
    let e = ocxlpmem::transport::vfio_user::VfioUserTransport::connect(srv.socket())
        .unwrap_err()
        .to_string();
    assert!(e.contains("sim.sock"), "{e}");
}

/// The CLI binary, beside this test's own executable in the target directory.
fn ctl() -> PathBuf {
    let mut p = std::env::current_exe().expect("test executable");
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p.join("ocxlpmem-ctl")
}

#[test]
fn the_cli_drives_a_card_over_vfio_user() {
    let bin = ctl();
    if !bin.exists() {
        panic!(
            "{} is not built: run the workspace's tests (scripts/test)",
            bin.display()
        );
    }
    let srv = SimServer::start(&["--serial", "0x77"]);
    let run = |args: &[&str]| {
        let o = Command::new(&bin)
            .arg("--vfio-user")
            .arg(srv.socket())
            .args(["-o", "json"])
            .args(args)
            .output()
            .expect("run ocxlpmem-ctl");
        assert!(
            o.status.success(),
            "{args:?}: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            srv.log()
        );
        serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("JSON output")
    };
    let info = run(&["info"]);
    assert_eq!(info["kind"], "vfio-user");
    assert_eq!(info["serial"], 0x77);
    assert_eq!(info["afu"]["name"], "IBM,SCM");
    assert_eq!(run(&["heartbeat"])["heartbeat"], "ok");
    assert!(run(&["stats"])["reset_count"].is_number());
    assert_eq!(run(&["read-labels"])["size"], 16 << 20);
}
