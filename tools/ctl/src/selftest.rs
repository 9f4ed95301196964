//! `selftest`: the hardware-in-the-loop suite. Non-destructive by default; destructive
//! steps only with `--destructive`. With no card present it skips (exit 77) and says why.
//! CI runs the same suite against `--sim`, so it cannot rot.

use std::path::Path;

use serde_json::json;

use crate::commands::{info_sim, open, Dev};
use crate::output::{emit, exit, CtlError, CtlResult};
use crate::Cli;

fn pci_card_present() -> Option<String> {
    let dir = std::fs::read_dir("/sys/bus/pci/devices").ok()?;
    for e in dir.flatten() {
        let read = |f: &str| std::fs::read_to_string(e.path().join(f)).unwrap_or_default();
        if read("vendor").trim() == "0x1014" && read("device").trim() == "0x0625" {
            return Some(e.file_name().to_string_lossy().into_owned());
        }
    }
    None
}

fn skip(cli: &Cli, why: String) -> CtlResult<i32> {
    eprintln!("ocxlpmem-ctl: selftest skipped: {why}");
    emit(
        cli.format,
        &json!({ "skipped": true, "reason": why, "steps": [] }),
    )?;
    Ok(exit::SKIPPED)
}

/// Runs the suite; exit 0 all passed, 1 a step failed, 77 skipped.
pub fn run(cli: &Cli, destructive: bool) -> CtlResult<i32> {
    let a = &cli.device;
    let selected = a.sim || a.sim_image.is_some() || a.kernel.is_some();
    if !selected {
        if let Some(bdf) = &a.bdf {
            if !Path::new("/sys/bus/pci/devices").join(bdf).exists() {
                return skip(cli, format!("no PCI device {bdf} on this host"));
            }
        } else if pci_card_present().is_none() {
            return skip(cli, "no OpenCAPI pmem card (1014:0625) on this host; pass --sim to run against the simulator".into());
        }
    }
    if let Some(k) = &a.kernel {
        if !k.exists() {
            return skip(
                cli,
                format!("{} does not exist (no kernel driver)", k.display()),
            );
        }
    }
    let dev = match open(a) {
        Ok(d) => d,
        Err(e) if e.code == exit::UNSUPPORTED => return skip(cli, e.message),
        Err(e) => return Err(e),
    };
    let Dev::Sim(s) = &dev else {
        return skip(
            cli,
            "selftest needs admin access (--sim or --bdf); the kernel ABI lacks heartbeat".into(),
        );
    };
    let mut steps = Vec::new();
    let mut failed = 0;
    let mut step = |name: &str, r: Result<serde_json::Value, CtlError>| {
        let ok = r.is_ok();
        failed += usize::from(!ok);
        steps.push(match r {
            Ok(v) => json!({ "step": name, "result": "pass", "detail": v }),
            Err(e) => json!({ "step": name, "result": "fail", "detail": e.message }),
        });
    };
    step("discovery", info_sim(s));
    step(
        "readiness",
        s.admin.read_chi().map_err(CtlError::from).and_then(|c| {
            if c.is_ready() {
                Ok(json!(c.names()))
            } else {
                Err(CtlError::new(
                    exit::FAILED,
                    format!("not ready: {:?}", c.names()),
                ))
            }
        }),
    );
    step(
        "heartbeat",
        s.admin.heartbeat().map(|_| json!("ok")).map_err(Into::into),
    );
    step(
        "error_log_drain",
        s.admin
            .error_log_all()
            .map(|e| json!(e.len()))
            .map_err(Into::into),
    );
    step(
        "statistics",
        s.admin.stats().map(|x| json!(x)).map_err(Into::into),
    );
    step(
        "smart",
        s.admin.smart().map(|x| json!(x.len())).map_err(Into::into),
    );
    let mut lab = vec![0u8; 4096];
    step(
        "labels_read_only",
        s.card
            .region_read(ocxlpmem_sim::REGION_BAR4, 0, &mut lab)
            .map(|_| json!({ "index_signature": lab.starts_with(b"NAMESPACE_INDEX") }))
            .map_err(|e| CtlError::new(exit::FAILED, e.to_string())),
    );
    let mut media = vec![0u8; 4096];
    step(
        "media_read",
        s.card
            .region_read(
                ocxlpmem_sim::REGION_BAR4,
                ocxlpmem_regs::abi::LABEL_AREA_SIZE,
                &mut media,
            )
            .map(|_| json!({ "bytes": media.len() }))
            .map_err(|e| CtlError::new(exit::FAILED, e.to_string())),
    );
    if destructive {
        let mut sink = Vec::new();
        step(
            "controller_dump",
            s.admin
                .dump(&mut sink, &mut |_| {})
                .map(|n| json!(n))
                .map_err(Into::into),
        );
    }
    let summary = json!({ "skipped": false, "destructive": destructive, "passed": steps.len() - failed, "failed": failed, "steps": steps });
    emit(cli.format, &summary)?;
    Ok(if failed == 0 { exit::OK } else { exit::FAILED })
}
