//! A vfio-user client process for the cross-process tests: it connects to a simulator
//! server, starts a HEARTBEAT through the trapped registers (request block, then the
//! doorbell), prints `RANG <id>` and then waits on stdin (at most 30 s) so that the test
//! can kill -9 it in the middle of the command.
//!
//! Usage: `vfio-user-client ring SOCKET`

use std::io::{BufRead, Write};
use std::process::ExitCode;

use ocxlpmem::transport::vfio_user::VfioUserTransport;
use ocxlpmem::transport::{region, Transport};
use ocxlpmem_regs::command::{AreaLayout, CommandArea, Opcode, RequestHeader};
use ocxlpmem_regs::offsets;

fn read_u64(t: &VfioUserTransport, offset: u64) -> Result<u64, String> {
    let mut b = [0u8; 8];
    t.region_read(region::BAR0, offset, &mut b)
        .map_err(|e| format!("read {offset:#x}: {e}"))?;
    Ok(u64::from_le_bytes(b))
}

fn write_u64(t: &VfioUserTransport, offset: u64, v: u64) -> Result<(), String> {
    t.region_write(region::BAR0, offset, &v.to_le_bytes())
        .map_err(|e| format!("write {offset:#x}: {e}"))
}

fn ring(socket: &str) -> Result<(), String> {
    let t = VfioUserTransport::connect(socket).map_err(|e| e.to_string())?;
    let area = CommandArea::Admin;
    let layout = AreaLayout::decode(
        read_u64(&t, area.offsets_register())?,
        read_u64(&t, area.buffer_register())?,
    );
    // Not 1: a new owner's first command id must not match the stale response by chance.
    let id = 0x7777u16;
    let header = RequestHeader {
        opcode: Opcode::Heartbeat,
        id,
    };
    write_u64(&t, layout.request_offset, header.encode())?;
    for word in 1..8 {
        write_u64(&t, layout.request_offset + 8 * word, 0)?;
    }
    let hci = read_u64(&t, offsets::HCI)?;
    write_u64(&t, offsets::HCI, hci | area.doorbell())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "RANG {id}").map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    // Hold the connection open until killed (or the test closes stdin); bounded.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(std::time::Duration::from_secs(30));
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("ring"), Some(socket)) => ring(socket),
        _ => Err("usage: vfio-user-client ring SOCKET".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vfio-user-client: {e}");
            ExitCode::FAILURE
        }
    }
}
