//! The subcommands: open the selected device, fetch, emit.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ocxlpmem::label::lsa::write_all;
use ocxlpmem::media::MediaWindow;
use ocxlpmem::nvdimm::{Bus, NamespaceSpec};

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
    if let Some(n) = args.index {
        let found = ocxlpmem::device::discovery::scan(&args.sysfs_root)
            .map_err(|e| CtlError::new(exit::FAILED, e.to_string()))?;
        let pmem: Vec<String> = found
            .cards
            .iter()
            .filter_map(|c| c.pmem_function())
            .map(|f| f.bdf.to_string())
            .collect();
        let bdf = pmem.get(n).ok_or_else(|| {
            CtlError::new(
                exit::NOT_FOUND,
                format!(
                    "there is no card {n}: {} card(s) with a pmem function found{}",
                    pmem.len(),
                    if pmem.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", pmem.join(", "))
                    }
                ),
            )
            .hint("`ocxlpmem-ctl list` shows the cards sysfs knows")
        })?;
        return Ok(Dev::Card(Box::new(open_vfio(bdf, &opts)?)));
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
        Command::Bind { bdfs, force } => return bind(f, a, bdfs, *force),
        Command::Unbind { bdf } => return unbind(f, a, bdf),
        Command::List {
            dimms,
            regions,
            namespaces,
            serial,
        } if !device_selected(a) => {
            return list_discovered(f, a, *dimms || *regions || *namespaces, *serial)
        }
        _ => {}
    }
    if let Some(file) = label_file(&cli.command) {
        let bus = crate::ns::bus_for_file(file, a.cookie, a.region_size)?;
        emit(
            f,
            &label_command(&cli.command, &bus, &file.display().to_string())?,
        )?;
        return Ok(exit::OK);
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
                namespaces,
                serial,
            },
            Dev::Card(s),
        ) => {
            let mut v = list_card(s, *dimms, *serial)?;
            if (*regions || *namespaces) && v.as_array().is_some_and(|a| !a.is_empty()) {
                let bus = bus_for_card(s, a)?;
                let parts = crate::ns::list_parts(&bus, *regions, *namespaces)?;
                if let (Some(card), Some(p)) = (v[0].as_object_mut(), parts.as_object()) {
                    card.extend(p.clone());
                }
            }
            emit(f, &v)?
        }
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
        (
            Command::ReadLabels { .. }
            | Command::ZeroLabels { .. }
            | Command::WriteLabels { .. }
            | Command::InitLabels { .. }
            | Command::CheckLabels { .. }
            | Command::CreateNamespace { .. }
            | Command::DestroyNamespace { .. },
            Dev::Card(s),
        ) => {
            let bus = bus_for_card(s, a)?;
            emit(f, &label_command(&cli.command, &bus, bus.dimm().dev())?)?
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
        (Command::Bind { .. } | Command::Unbind { .. }, _) => {
            return Err(CtlError::new(
                exit::FAILED,
                "bind and unbind are dispatched before a device is opened",
            ))
        }
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

/// `list` on one card: the card and (with -D) its DIMM.
fn list_card(s: &CardDevice, dimms: bool, serial: Option<u64>) -> CtlResult<serde_json::Value> {
    let info = s.card.info();
    if serial.is_some_and(|n| n != info.serial) {
        return Ok(json!([]));
    }
    let mut c = info_card(s)?;
    if dimms {
        c["dimms"] = json!([{
            "dev": "nmem0",
            "serial": info.serial,
            "fw_version": info.fw_version,
            "label_area_size": LABEL_AREA_SIZE,
        }]);
    }
    Ok(json!([c]))
}

/// True when the command line names a device (otherwise `list` scans sysfs).
fn device_selected(a: &DeviceArgs) -> bool {
    a.sim
        || a.sim_image.is_some()
        || a.bdf.is_some()
        || a.index.is_some()
        || a.vfio_user.is_some()
        || a.kernel.is_some()
}

/// `list` without a device: the cards sysfs shows, with their functions' bindings.
fn list_discovered(
    f: crate::output::Format,
    a: &DeviceArgs,
    detail: bool,
    serial: Option<u64>,
) -> CtlResult<i32> {
    let found = ocxlpmem::device::discovery::scan(&a.sysfs_root)
        .map_err(|e| CtlError::new(exit::FAILED, e.to_string()))?;
    if detail || serial.is_some() {
        eprintln!("note: dimms, regions, namespaces and serials need the card opened: add --bdf BDF or --index N");
    }
    let v = serde_json::to_value(&found).map_err(|e| CtlError::new(exit::FAILED, e.to_string()))?;
    emit(f, &v["cards"])?;
    for w in &found.warnings {
        eprintln!("warning: {w}");
    }
    Ok(exit::OK)
}

/// The card's bus: its label area and region through the card's media window (BAR 4 on
/// the simulator, `--media` for a card reached over kernel VFIO).
pub fn bus_for_card(s: &CardDevice, a: &DeviceArgs) -> CtlResult<Bus> {
    let w: Arc<dyn MediaWindow> =
        match &a.media {
            Some(spec) => Arc::from(spec.open(s.card.info().lpc_size).map_err(|e| {
                CtlError::new(exit::DEVICE, format!("opening the media window: {e}"))
            })?),
            None => Arc::new(s.media()?),
        };
    Ok(Bus::from_card(0, Arc::clone(&s.card), w)?)
}

/// The `--file` of a label command, if it has one.
fn label_file(c: &Command) -> Option<&Path> {
    match c {
        Command::ReadLabels { file, .. }
        | Command::ZeroLabels { file }
        | Command::WriteLabels { file, .. }
        | Command::InitLabels { file, .. }
        | Command::CheckLabels { file }
        | Command::CreateNamespace { file, .. }
        | Command::DestroyNamespace { file, .. } => file.as_deref(),
        _ => None,
    }
}

/// A label or namespace command on `bus` (a card's or an image's).
fn label_command(c: &Command, bus: &Bus, dev: &str) -> CtlResult<serde_json::Value> {
    let lsa = bus.dimm().lsa();
    match c {
        Command::ReadLabels { output_file, .. } => {
            crate::ns::read_labels(lsa.as_ref(), dev, output_file.as_deref())
        }
        Command::ZeroLabels { .. } => crate::ns::zero_labels(bus),
        Command::WriteLabels { input, .. } => {
            let data = read_input(input)?;
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
            write_all(lsa.as_ref(), 0, &data)
                .map_err(|e| CtlError::new(exit::DEVICE, format!("label area: {e}")))?;
            Ok(json!({ "written_bytes": data.len() }))
        }
        Command::InitLabels { version, force, .. } => crate::ns::init_labels(bus, version, *force),
        Command::CheckLabels { .. } => crate::ns::check_labels(bus),
        Command::CreateNamespace {
            size,
            name,
            uuid,
            align,
            ..
        } => crate::ns::create(
            bus,
            &NamespaceSpec {
                size: *size,
                name: name.clone(),
                uuid: *uuid,
                align: *align,
            },
        ),
        Command::DestroyNamespace { namespace, .. } => crate::ns::destroy(bus, namespace),
        _ => Err(CtlError::new(exit::FAILED, "not a label command")),
    }
}

fn bind(f: crate::output::Format, a: &DeviceArgs, bdfs: &[String], force: bool) -> CtlResult<i32> {
    use ocxlpmem::device::bind::{BindOptions, Binder};
    use ocxlpmem::device::discovery::Bdf;
    let bdfs: Vec<Bdf> = bdfs
        .iter()
        .map(|b| {
            b.parse()
                .map_err(|e| CtlError::new(exit::USAGE, format!("{e}")))
        })
        .collect::<CtlResult<_>>()?;
    let records = Binder::new(&a.sysfs_root)
        .bind_vfio(
            &bdfs,
            BindOptions {
                take_from_other_driver: force,
            },
        )
        .map_err(bind_error)?;
    emit(f, &json!({ "bound": records }))?;
    Ok(exit::OK)
}

fn unbind(f: crate::output::Format, a: &DeviceArgs, bdf: &str) -> CtlResult<i32> {
    use ocxlpmem::device::bind::Binder;
    let bdf: ocxlpmem::device::discovery::Bdf = bdf
        .parse()
        .map_err(|e| CtlError::new(exit::USAGE, format!("{e}")))?;
    let previous = Binder::new(&a.sysfs_root)
        .unbind(&bdf)
        .map_err(bind_error)?;
    emit(f, &json!({ "bdf": bdf, "unbound_from": previous }))?;
    Ok(exit::OK)
}

fn bind_error(e: ocxlpmem::device::bind::BindError) -> CtlError {
    use ocxlpmem::device::bind::BindError as B;
    let code = match &e {
        B::PermissionDenied { .. } => exit::REFUSED,
        B::NotFound { .. } => exit::NOT_FOUND,
        _ => exit::FAILED,
    };
    CtlError::new(code, e.to_string())
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

fn read_input(p: &Path) -> CtlResult<Vec<u8>> {
    std::fs::read(p).map_err(|e| {
        CtlError::new(exit::NOT_FOUND, format!("cannot read {}: {e}", p.display()))
            .hint("pass an existing label-area image with -i")
    })
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
