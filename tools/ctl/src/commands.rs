//! The subcommands: open the selected device, fetch, emit.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ocxlpmem::label::lsa::{read_all, write_all, Lsa, MediaLsa};
use ocxlpmem::media::MediaWindow;

use ocxlpmem_admin::{Destructive, Event, Monitor, MonitorOptions};
use ocxlpmem_ioctl::{Client, IoctlDevice, KernelDevice};
use ocxlpmem_regs::abi::LABEL_AREA_SIZE;
use serde_json::json;

use crate::output::{emit, exit, CtlError, CtlResult};
use crate::target::{
    card_options, open_sim, open_vfio, open_vfio_user, CardDevice, Kind, SimOptions,
};
use crate::{Cli, Command, DeviceArgs};

/// An opened device.
pub enum Dev {
    /// A card brought up by this driver (simulated, vfio, vfio-user).
    Card(Box<CardDevice>),
    /// The kernel driver's char device.
    Kernel(Client<KernelDevice>),
}

/// Opens the device `args` selects. `strict` bring-up fails on a card that is not ready;
/// diagnostic commands open without it, to read the log or a dump of a broken card.
pub fn open(args: &DeviceArgs, strict: bool) -> CtlResult<Dev> {
    if let Some(k) = &args.kernel {
        return Ok(Dev::Kernel(Client::open(k)?));
    }
    let opts = card_options(args.ready_timeout(), args.mmio, strict);
    if args.sim || args.sim_image.is_some() {
        let o = SimOptions {
            image: args.sim_image.clone(),
            serial: args.sim_serial,
            size: args.sim_size,
            faults: args.sim_fault.clone(),
            error_logs: args.sim_error_logs,
        };
        return Ok(Dev::Card(Box::new(open_sim(&o, &opts)?)));
    }
    if let Some(bdf) = &args.bdf {
        return Ok(Dev::Card(Box::new(open_vfio(bdf, &opts)?)));
    }
    if let Some(socket) = &args.vfio_user {
        return Ok(Dev::Card(Box::new(open_vfio_user(socket, &opts)?)));
    }
    if args.index.is_some() {
        return Err(CtlError::new(
            exit::UNSUPPORTED,
            "--index needs card discovery, which is not wired into this build of ocxlpmem-ctl yet",
        )
        .hint("select the card with --bdf BDF (function 1, bound to vfio-pci)"));
    }
    Err(CtlError::new(exit::USAGE, "no device selected").hint(
        "pass --sim (simulated card), --bdf BDF (vfio-pci), --vfio-user SOCKET or --kernel /dev/ocxlpmemN",
    ))
}

fn kernel_unsupported(what: &str) -> CtlError {
    CtlError::new(
        exit::UNSUPPORTED,
        format!("{what} is not part of the kernel driver's ioctl ABI"),
    )
    .hint("drive the card through vfio instead (--bdf)")
}

fn need_unsafe(args: &DeviceArgs, what: &str) -> CtlResult<Destructive> {
    if !args.allow_unsafe {
        return Err(CtlError::new(
            exit::REFUSED,
            format!("{what} can break the card or destroy data"),
        )
        .hint("add --unsafe if you mean it"));
    }
    Ok(Destructive::i_understand_this_can_destroy_data())
}

/// Runs the command; returns the exit code.
pub fn run(cli: &Cli) -> CtlResult<i32> {
    let f = cli.format;
    let a = &cli.device;
    match &cli.command {
        Command::Selftest { destructive } => return crate::selftest::run(cli, *destructive),
        Command::ReadLabels {
            file: Some(p),
            output_file,
        } => return read_labels_file(f, p, output_file.as_deref()),
        Command::ZeroLabels { file: Some(p) } => return zero_file(f, p),
        Command::WriteLabels {
            file: Some(p),
            input,
        } => return write_file(f, p, input),
        _ => {}
    }
    let strict = !matches!(
        cli.command,
        Command::ErrorLog
            | Command::ControllerDump { .. }
            | Command::Monitor { .. }
            | Command::MmioRead { .. }
            | Command::MmioWrite { .. }
    );
    let dev = open(a, strict)?;
    match (&cli.command, &dev) {
        (
            Command::List {
                dimms,
                regions,
                serial,
            },
            Dev::Card(s),
        ) => emit(f, &list_card(s, *dimms, *regions, *serial)?)?,
        (Command::List { .. } | Command::Info, Dev::Kernel(c)) => emit(
            f,
            &json!({ "kernel_device": c.device().describe(), "event_flags": c.event_check()? }),
        )?,
        (Command::Info, Dev::Card(s)) => emit(f, &info_card(s)?)?,
        (Command::Heartbeat, Dev::Card(s)) => {
            let t = Instant::now();
            s.admin().heartbeat()?;
            emit(
                f,
                &json!({ "heartbeat": "ok", "round_trip_us": t.elapsed().as_micros() as u64 }),
            )?
        }
        (Command::Health, Dev::Card(s)) => emit(f, &s.admin().health()?)?,
        (Command::Smart, Dev::Card(s)) => emit(f, &json!({ "attributes": s.admin().smart()? }))?,
        (Command::Smart, Dev::Kernel(c)) => {
            let v: Vec<_> = c
                .smart()?
                .iter()
                .map(|x| json!({ "id": x.id, "name": x.name(), "current": x.current, "threshold": x.threshold, "worst": x.worst, "raw": x.raw }))
                .collect();
            emit(f, &json!({ "attributes": v }))?
        }
        (Command::ErrorLog, Dev::Card(s)) => {
            let e = s.admin().error_log_all()?;
            emit(f, &json!({ "count": e.len(), "entries": e }))?
        }
        (Command::ErrorLog, Dev::Kernel(c)) => {
            let v: Vec<_> = c
                .error_log_all(4096)?
                .iter()
                .map(|(l, d)| json!({ "log_id": l.log_identifier, "program_reference_code": l.program_reference_code, "log_type": l.error_log_type, "action_flags": l.action_flags, "power_on_seconds": l.power_on_seconds, "timestamp": l.timestamp, "fw_revision": l.fw_revision_text(), "variable_data": d }))
                .collect();
            emit(f, &json!({ "count": v.len(), "entries": v }))?
        }
        (Command::Stats, Dev::Card(s)) => emit(f, &s.admin().stats()?)?,
        (Command::Stats, Dev::Kernel(c)) => {
            let s = c.controller_stats()?;
            emit(
                f,
                &json!({ "reset_count": s.reset_count, "seconds_since_reset": s.reset_uptime, "power_on_uptime_seconds": s.power_on_uptime, "life_remaining_percent": s.life_remaining, "media_read_count": s.media_read_count, "media_write_count": s.media_write_count }),
            )?
        }
        (Command::RequestHealth, Dev::Card(s)) => {
            s.admin().request_health()?;
            emit(f, &json!({ "requested": true }))?
        }
        (Command::RequestHealth, Dev::Kernel(c)) => {
            c.request_health()?;
            emit(f, &json!({ "requested": true }))?
        }
        (Command::ControllerDump { file }, Dev::Card(s)) => {
            let bytes = dump_to_file(s.admin(), file)?;
            emit(f, &json!({ "file": file, "bytes": bytes }))?
        }
        (Command::ControllerDump { file }, Dev::Kernel(c)) => {
            let d = c.read_dump(1 << 30, |_| {})?;
            std::fs::write(file, &d)
                .map_err(|e| CtlError::new(exit::FAILED, format!("{}: {e}", file.display())))?;
            emit(f, &json!({ "file": file, "bytes": d.len() }))?
        }
        (Command::Monitor { count, timeout }, Dev::Card(s)) => {
            monitor(s.admin(), *count, *timeout)?
        }
        (Command::Monitor { count, timeout }, Dev::Kernel(c)) => {
            monitor_kernel(c, *count, *timeout)?
        }
        (Command::ReadLabels { output_file, .. }, Dev::Card(s)) => {
            let buf = sim_labels(s)?;
            labels_out(f, &buf, output_file.as_deref(), &s.source())?
        }
        (Command::ZeroLabels { .. }, Dev::Card(s)) => {
            write_sim_labels(s, &vec![0u8; LABEL_AREA_SIZE as usize])?;
            emit(f, &json!({ "zeroed_bytes": LABEL_AREA_SIZE }))?
        }
        (Command::WriteLabels { input, .. }, Dev::Card(s)) => {
            let data = read_input(input)?;
            write_sim_labels(s, &data)?;
            emit(f, &json!({ "written_bytes": data.len() }))?
        }
        (Command::MmioRead { offset }, Dev::Card(s)) => {
            need_unsafe(a, "mmio-read")?;
            let v = s.admin().raw_read(*offset)?;
            emit(
                f,
                &json!({ "offset": offset, "value": v, "value_hex": format!("{v:#018x}") }),
            )?
        }
        (Command::MmioRead { offset }, Dev::Kernel(c)) => {
            need_unsafe(a, "mmio-read")?;
            let v = c.mmio_read(*offset)?;
            emit(
                f,
                &json!({ "offset": offset, "value": v, "value_hex": format!("{v:#018x}") }),
            )?
        }
        (Command::MmioWrite { offset, value }, Dev::Card(s)) => {
            let t = need_unsafe(a, "mmio-write")?;
            s.admin().raw_write(*offset, *value, &t)?;
            emit(f, &json!({ "offset": offset, "written": value }))?
        }
        (Command::MmioWrite { offset, value }, Dev::Kernel(c)) => {
            need_unsafe(a, "mmio-write")?;
            c.mmio_write(*offset, *value)?;
            emit(f, &json!({ "offset": offset, "written": value }))?
        }
        (
            Command::FwDebug {
                action,
                function_code,
                param1,
                param2,
                out_size,
            },
            Dev::Card(s),
        ) => {
            let t = need_unsafe(a, "fw-debug")?;
            let bad = |w: &str| CtlError::new(exit::USAGE, format!("--{w} is out of range"));
            let req = ocxlpmem_admin::FwDebugRequest {
                action: ocxlpmem_admin::FwDebugAction::Other(
                    u8::try_from(*action).map_err(|_| bad("action"))?,
                ),
                function_code: u16::try_from(*function_code).map_err(|_| bad("function-code"))?,
                parameter1: *param1,
                parameter2: *param2,
                input: &[],
            };
            let mut out = vec![
                0u8;
                usize::try_from(*out_size)
                    .map_err(|_| bad("out-size"))?
                    .min(1 << 20)
            ];
            let n = s.admin().fw_debug(&req, &mut out, &t)?;
            out.truncate(n);
            emit(f, &json!({ "bytes": n, "data": out }))?
        }
        (Command::FwUpdate { image }, Dev::Card(s)) => {
            let t = need_unsafe(a, "fw-update")?;
            let data = read_input(image)?;
            s.admin().fw_update(&data, &t)?;
            emit(f, &json!({ "updated": true, "bytes": data.len() }))?
        }
        (Command::Shutdown, Dev::Card(s)) => {
            let t = need_unsafe(a, "shutdown")?;
            s.admin().shutdown(&t)?;
            emit(f, &json!({ "shutdown": true }))?
        }
        (Command::Shutdown, Dev::Kernel(c)) => {
            need_unsafe(a, "shutdown")?;
            c.shutdown()?;
            emit(f, &json!({ "shutdown": true }))?
        }
        (Command::SecureErase, Dev::Card(s)) => {
            let t = need_unsafe(a, "secure-erase")?;
            emit(f, &s.admin().secure_erase(&t)?)?
        }
        (cmd, Dev::Kernel(_)) => return Err(kernel_unsupported(&format!("{cmd:?}"))),
        (Command::Selftest { .. }, _) => unreachable_selftest()?,
    }
    Ok(exit::OK)
}

fn unreachable_selftest() -> CtlResult<()> {
    Err(CtlError::new(
        exit::FAILED,
        "selftest is dispatched before a device is opened",
    ))
}

/// `list` on one card: the card, its DIMM and its pmem region after the label area.
fn list_card(
    s: &CardDevice,
    dimms: bool,
    regions: bool,
    serial: Option<u64>,
) -> CtlResult<serde_json::Value> {
    let info = s.card.info();
    if serial.is_some_and(|n| n != info.serial) {
        return Ok(json!([]));
    }
    let lpc_size = lpc_size(s);
    let mut c = info_card(s)?;
    if dimms {
        c["dimms"] =
            json!([{ "dev": "nmem0", "serial": info.serial, "label_area_size": LABEL_AREA_SIZE }]);
    }
    if regions {
        c["regions"] = json!([{
            "dev": "region0",
            "offset": LABEL_AREA_SIZE,
            "size": lpc_size.map(|l| l.saturating_sub(LABEL_AREA_SIZE)),
            "interleave_set_cookie": info.serial,
            "label_less": info.serial == 0,
        }]);
    }
    Ok(json!([c]))
}

fn lpc_size(s: &CardDevice) -> Option<u64> {
    match &s.kind {
        Kind::Sim { identity, .. } => Some(identity.lpc_size),
        _ => s.card.info().lpc_size,
    }
}

/// Identity and state of a card: what bring-up learned plus CHI now.
pub fn info_card(s: &CardDevice) -> CtlResult<serde_json::Value> {
    let chi = s.admin().read_chi()?;
    let mut v = s.card.info().to_json();
    let lpc = lpc_size(s);
    let (kind, source) = match &s.kind {
        Kind::Sim { image, .. } => ("sim", json!({ "image": image })),
        Kind::Vfio { bdf } => ("vfio", json!({ "bdf": bdf })),
        Kind::VfioUser { socket } => ("vfio-user", json!({ "socket": socket })),
    };
    v["kind"] = json!(kind);
    if let (Some(o), Some(src)) = (v.as_object_mut(), source.as_object()) {
        o.extend(src.clone());
    }
    v["serial_hex"] = json!(format!("{:#x}", s.card.info().serial));
    v["lpc_size"] = json!(lpc);
    v["label_area_size"] = json!(LABEL_AREA_SIZE);
    v["region_size"] = json!(lpc.map(|l| l.saturating_sub(LABEL_AREA_SIZE)));
    v["chi"] = json!(chi.bits());
    v["chi_bits"] = json!(chi.names());
    v["ready"] = json!(chi.is_ready());
    v["max_dump_size"] = json!(s.admin().max_dump_size());
    Ok(v)
}

fn dump_to_file(admin: &ocxlpmem_admin::Admin, path: &Path) -> CtlResult<u64> {
    let mut file = std::fs::File::create(path).map_err(|e| {
        CtlError::new(
            exit::FAILED,
            format!("cannot create {}: {e}", path.display()),
        )
    })?;
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(admin.max_dump_size())
    } else {
        indicatif::ProgressBar::hidden()
    };
    let n = admin.dump(&mut file, &mut |p| bar.set_position(p.offset))?;
    bar.finish_and_clear();
    file.flush()
        .map_err(|e| CtlError::new(exit::FAILED, format!("writing {}: {e}", path.display())))?;
    Ok(n)
}

fn event_json(e: &Event) -> serde_json::Value {
    let (name, extra) = match e {
        Event::ErrorLogAvailable => ("error_log_available", json!(null)),
        Event::DumpAvailable => ("dump_available", json!(null)),
        Event::FirmwareFatal => ("firmware_fatal", json!(null)),
        Event::HardwareFatal => ("hardware_fatal", json!(null)),
        Event::ReadyLost { chi } => ("ready_lost", json!(chi)),
        Event::ReadyRestored => ("ready_restored", json!(null)),
        Event::DeviceGone => ("device_gone", json!(null)),
        Event::DeviceBack => ("device_back", json!(null)),
        Event::AccessFailed { error } => ("access_failed", json!(error)),
    };
    json!({ "timestamp_ms": now_ms(), "event": name, "detail": extra })
}

fn monitor(
    admin: &ocxlpmem_admin::Admin,
    count: Option<usize>,
    timeout: Option<u64>,
) -> CtlResult<()> {
    let m = Monitor::for_admin(admin, MonitorOptions::default())?;
    let deadline = timeout.map(|t| Instant::now() + Duration::from_millis(t));
    let mut seen = 0usize;
    while count.is_none_or(|c| seen < c) {
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        match m.events().recv_timeout(wait) {
            Ok(e) => {
                println!("{}", event_json(&e));
                seen += 1;
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if deadline.is_some() {
                    break;
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err(CtlError::new(exit::DEVICE, "the monitor thread stopped"))
            }
        }
    }
    Ok(())
}

/// Names of the ABI event flags (spec §4) that rose from `old` to `new`.
fn risen_flags(old: u64, new: u64) -> Vec<&'static str> {
    use ocxlpmem_regs::abi::event;
    [
        (event::ERROR_LOG_AVAILABLE, "error_log_available"),
        (event::DUMP_AVAILABLE, "dump_available"),
        (event::FIRMWARE_FATAL, "firmware_fatal"),
        (event::HARDWARE_FATAL, "hardware_fatal"),
    ]
    .iter()
    .filter(|(bit, _)| old & bit == 0 && new & bit != 0)
    .map(|&(_, n)| n)
    .collect()
}

/// `monitor` over the kernel ABI: polls EVENT_CHECK (no eventfd needed) every 10 ms.
fn monitor_kernel(
    c: &Client<KernelDevice>,
    count: Option<usize>,
    timeout: Option<u64>,
) -> CtlResult<()> {
    let deadline = timeout.map(|t| Instant::now() + Duration::from_millis(t));
    let (mut last, mut seen) = (0u64, 0usize);
    loop {
        let now = c.event_check()?;
        for name in risen_flags(last, now) {
            println!(
                "{}",
                json!({ "timestamp_ms": now_ms(), "event": name, "detail": null })
            );
            seen += 1;
            if count.is_some_and(|n| seen >= n) {
                return Ok(());
            }
        }
        last = now;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn label_area(s: &CardDevice) -> CtlResult<MediaLsa> {
    let w: Arc<dyn MediaWindow> = Arc::new(s.media()?);
    Ok(MediaLsa::new(w))
}

fn lsa_error(e: ocxlpmem::label::lsa::LsaError) -> CtlError {
    CtlError::new(exit::DEVICE, format!("label area: {e}"))
}

fn sim_labels(s: &CardDevice) -> CtlResult<Vec<u8>> {
    read_all(&label_area(s)?).map_err(lsa_error)
}

fn write_sim_labels(s: &CardDevice, data: &[u8]) -> CtlResult<()> {
    let lsa = label_area(s)?;
    if data.len() as u64 > lsa.size() {
        return Err(CtlError::new(
            exit::USAGE,
            format!(
                "{} bytes do not fit the {}-byte label area",
                data.len(),
                lsa.size()
            ),
        ));
    }
    write_all(&lsa, 0, data).map_err(lsa_error)
}

fn read_input(p: &Path) -> CtlResult<Vec<u8>> {
    std::fs::read(p).map_err(|e| {
        CtlError::new(exit::NOT_FOUND, format!("cannot read {}: {e}", p.display()))
            .hint("pass an existing label-area image with -i")
    })
}

/// The summary read-labels prints (the raw bytes go to `-O`).
fn labels_out(
    f: crate::output::Format,
    buf: &[u8],
    out: Option<&Path>,
    source: &str,
) -> CtlResult<()> {
    if let Some(o) = out {
        std::fs::write(o, buf).map_err(|e| {
            CtlError::new(exit::FAILED, format!("cannot write {}: {e}", o.display()))
        })?;
    }
    let sig = |off: usize| buf.get(off..off + 15) == Some(&b"NAMESPACE_INDEX"[..]);
    let index: Vec<_> = [0usize, 256]
        .iter()
        .map(|&o| json!({ "offset": o, "signature_present": sig(o) }))
        .collect();
    emit(
        f,
        &json!({ "dev": source, "size": buf.len(), "output_file": out, "index": index, "all_zero": buf.iter().all(|&b| b == 0) }),
    )
}

fn read_labels_file(f: crate::output::Format, p: &Path, out: Option<&Path>) -> CtlResult<i32> {
    let buf = read_input(p)?;
    labels_out(f, &buf, out, &p.display().to_string())?;
    Ok(exit::OK)
}

fn zero_file(f: crate::output::Format, p: &Path) -> CtlResult<i32> {
    let len = std::fs::metadata(p)
        .map_err(|e| CtlError::new(exit::NOT_FOUND, format!("{}: {e}", p.display())))?
        .len();
    std::fs::write(p, vec![0u8; len as usize])
        .map_err(|e| CtlError::new(exit::FAILED, format!("{}: {e}", p.display())))?;
    emit(f, &json!({ "zeroed_bytes": len }))?;
    Ok(exit::OK)
}

fn write_file(f: crate::output::Format, p: &Path, input: &Path) -> CtlResult<i32> {
    let data = read_input(input)?;
    std::fs::write(p, &data)
        .map_err(|e| CtlError::new(exit::FAILED, format!("{}: {e}", p.display())))?;
    emit(f, &json!({ "written_bytes": data.len() }))?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rising_event_flags_are_reported() {
        assert_eq!(
            risen_flags(0, 0b0011),
            ["error_log_available", "dump_available"]
        );
        assert!(risen_flags(0b0011, 0b0001).is_empty());
        assert_eq!(
            risen_flags(0b0010, 0b1110),
            ["firmware_fatal", "hardware_fatal"]
        );
    }
}
