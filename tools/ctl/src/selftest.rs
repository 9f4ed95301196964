//! `selftest`: the hardware-in-the-loop suite. Non-destructive by default; destructive
//! steps only with `--destructive`. With no card present it skips (exit 77) and says why.
//! CI runs the same suite against `--sim`, so it cannot rot.

use std::path::Path;

use serde_json::json;

use std::sync::Arc;

use ocxlpmem::label::lsa::{read_exact, MediaLsa};
use ocxlpmem::media::MediaWindow;
use ocxlpmem_regs::abi::LABEL_AREA_SIZE;

use crate::commands::{info_card, open, Dev};
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
    let dev = match open(a, true) {
        Ok(d) => d,
        Err(e) if e.code == exit::UNSUPPORTED => return skip(cli, e.message),
        Err(e) => return Err(e),
    };
    let Dev::Card(s) = &dev else {
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
    step("discovery", info_card(s));
    step(
        "readiness",
        s.admin().read_chi().map_err(CtlError::from).and_then(|c| {
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
        s.admin()
            .heartbeat()
            .map(|_| json!("ok"))
            .map_err(Into::into),
    );
    step(
        "error_log_drain",
        s.admin()
            .error_log_all()
            .map(|e| json!(e.len()))
            .map_err(Into::into),
    );
    step(
        "statistics",
        s.admin().stats().map(|x| json!(x)).map_err(Into::into),
    );
    step(
        "smart",
        s.admin()
            .smart()
            .map(|x| json!(x.len()))
            .map_err(Into::into),
    );
    let media = s.media().map(|w| Arc::new(w) as Arc<dyn MediaWindow>);
    let no_media = |e: &CtlError| CtlError::new(e.code, e.message.clone());
    step(
        "labels_read_only",
        media.as_ref().map_err(no_media).and_then(|w| {
            let lsa = MediaLsa::new(Arc::clone(w));
            let mut lab = vec![0u8; 4096];
            read_exact(&lsa, 0, &mut lab)
                .map_err(|e| CtlError::new(exit::FAILED, e.to_string()))?;
            Ok(json!({ "index_signature": lab.starts_with(b"NAMESPACE_INDEX") }))
        }),
    );
    step(
        "media_read",
        media.as_ref().map_err(no_media).and_then(|w| {
            let mut buf = vec![0u8; 4096];
            if w.len() < LABEL_AREA_SIZE + buf.len() as u64 {
                return Err(CtlError::new(
                    exit::FAILED,
                    format!("{} is no larger than the label area", w.describe()),
                ));
            }
            // SAFETY: the window maps w.len() bytes, checked to cover
            // [LABEL_AREA_SIZE, LABEL_AREA_SIZE + 4096); `buf` is a distinct allocation.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    w.base().as_ptr().add(LABEL_AREA_SIZE as usize),
                    buf.as_mut_ptr(),
                    buf.len(),
                )
            };
            Ok(json!({ "bytes": buf.len(), "window": w.describe() }))
        }),
    );
    if destructive {
        let mut sink = Vec::new();
        step(
            "controller_dump",
            s.admin()
                .dump(&mut sink, &mut |_| {})
                .map(|n| json!(n))
                .map_err(Into::into),
        );
    }
    let summary = json!({ "skipped": false, "destructive": destructive, "passed": steps.len() - failed, "failed": failed, "steps": steps });
    emit(cli.format, &summary)?;
    Ok(if failed == 0 { exit::OK } else { exit::FAILED })
}
