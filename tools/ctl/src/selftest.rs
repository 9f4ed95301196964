//! `selftest`: the hardware-in-the-loop suite. Non-destructive by default; destructive
//! steps only with `--destructive`. With no card present it skips (exit 77) and says why.
//! CI runs the same suite against `--sim`, so it cannot rot.

use std::sync::Arc;

use ocxlpmem::device::discovery;
use ocxlpmem::media::MediaWindow;
use ocxlpmem::nvdimm::{NamespaceSpec, MIN_NAMESPACE_SIZE};
use ocxlpmem_regs::abi::LABEL_AREA_SIZE;
use serde_json::json;

use crate::commands::{bus_for_card, info_card, open, Dev};
use crate::output::{emit, exit, CtlError, CtlResult};
use crate::target::{CardDevice, Kind};
use crate::Cli;

fn skip(cli: &Cli, why: String) -> CtlResult<i32> {
    eprintln!("ocxlpmem-ctl: selftest skipped: {why}");
    emit(
        cli.format,
        &json!({ "skipped": true, "reason": why, "steps": [] }),
    )?;
    Ok(exit::SKIPPED)
}

/// One step's outcome.
enum Outcome {
    Pass(serde_json::Value),
    Skip(String),
    Fail(String),
}

impl From<CtlResult<serde_json::Value>> for Outcome {
    fn from(r: CtlResult<serde_json::Value>) -> Self {
        match r {
            Ok(v) => Outcome::Pass(v),
            Err(e) => Outcome::Fail(match e.hint {
                Some(h) => format!("{} ({h})", e.message),
                None => e.message,
            }),
        }
    }
}

#[derive(Default)]
struct Steps {
    list: Vec<serde_json::Value>,
    failed: usize,
    skipped: usize,
}

impl Steps {
    fn record(&mut self, name: &str, o: impl Into<Outcome>) {
        let v = match o.into() {
            Outcome::Pass(d) => json!({ "step": name, "result": "pass", "detail": d }),
            Outcome::Skip(why) => {
                self.skipped += 1;
                json!({ "step": name, "result": "skip", "detail": why })
            }
            Outcome::Fail(why) => {
                self.failed += 1;
                json!({ "step": name, "result": "fail", "detail": why })
            }
        };
        self.list.push(v);
    }
}

/// Runs the suite; exit 0 all passed (skipped steps allowed), 1 a step failed, 77 skipped.
pub fn run(cli: &Cli, destructive: bool) -> CtlResult<i32> {
    let mut a = cli.device.clone();
    let selected = a.sim
        || a.sim_image.is_some()
        || a.kernel.is_some()
        || a.vfio_user.is_some()
        || a.bdf.is_some()
        || a.index.is_some();
    let mut steps = Steps::default();
    // On a real host: what sysfs shows, and the first card when none was named.
    if !a.sim && a.sim_image.is_none() && a.vfio_user.is_none() && a.kernel.is_none() {
        let found = match discovery::scan(&a.sysfs_root) {
            Ok(f) => f,
            Err(e) => return skip(cli, format!("cannot scan sysfs: {e}")),
        };
        let pmem: Vec<&discovery::Function> = found
            .cards
            .iter()
            .filter_map(|c| c.pmem_function())
            .collect();
        if let Some(b) = &a.bdf {
            if !pmem.iter().any(|f| f.bdf.to_string() == *b) {
                return skip(cli, format!("no pmem function {b} on this host"));
            }
        }
        if pmem.is_empty() {
            return skip(
                cli,
                "no OpenCAPI pmem card (1014:0625) on this host; pass --sim to run against the simulator".into(),
            );
        }
        if !selected {
            a.bdf = Some(pmem[0].bdf.to_string());
        }
        let bdf = a.bdf.clone().unwrap_or_default();
        steps.record(
            "sysfs_discovery",
            bdf.parse::<discovery::Bdf>()
                .map_err(|e| e.to_string())
                .and_then(|b| found.usable_through_vfio(&b).map_err(|e| e.to_string()))
                .map(|f| Outcome::Pass(json!(f)))
                .unwrap_or_else(Outcome::Fail),
        );
    }
    if let Some(k) = &a.kernel {
        if !k.exists() {
            return skip(
                cli,
                format!("{} does not exist (no kernel driver)", k.display()),
            );
        }
    }
    let dev = match open(&a, true) {
        Ok(d) => d,
        Err(e) if e.code == exit::UNSUPPORTED => return skip(cli, e.message),
        Err(e) => {
            steps.record("bring_up", Outcome::from(Err(e)));
            return finish(cli, destructive, steps);
        }
    };
    let Dev::Card(s) = &dev else {
        return skip(
            cli,
            "selftest needs admin access (--sim, --bdf, --vfio-user); the kernel ABI lacks heartbeat".into(),
        );
    };
    card_steps(s, &a, destructive, &mut steps);
    finish(cli, destructive, steps)
}

fn finish(cli: &Cli, destructive: bool, steps: Steps) -> CtlResult<i32> {
    let passed = steps.list.len() - steps.failed - steps.skipped;
    let summary = json!({
        "skipped": false,
        "destructive": destructive,
        "passed": passed,
        "failed": steps.failed,
        "skipped_steps": steps.skipped,
        "steps": steps.list,
    });
    emit(cli.format, &summary)?;
    Ok(if steps.failed == 0 {
        exit::OK
    } else {
        exit::FAILED
    })
}

fn card_steps(s: &CardDevice, a: &crate::DeviceArgs, destructive: bool, steps: &mut Steps) {
    let admin = s.admin();
    steps.record("bring_up", Outcome::from(info_card(s)));
    steps.record(
        "readiness",
        Outcome::from(admin.read_chi().map_err(CtlError::from).and_then(|c| {
            if c.is_ready() {
                Ok(json!(c.names()))
            } else {
                Err(CtlError::new(
                    exit::FAILED,
                    format!("not ready: {:?}", c.names()),
                ))
            }
        })),
    );
    steps.record(
        "heartbeat",
        Outcome::from(
            admin
                .heartbeat()
                .map(|_| json!("ok"))
                .map_err(CtlError::from),
        ),
    );
    steps.record(
        "error_log_drain",
        Outcome::from(
            admin
                .error_log_all()
                .map(|e| json!(e.len()))
                .map_err(CtlError::from),
        ),
    );
    steps.record(
        "statistics",
        Outcome::from(admin.stats().map(|x| json!(x)).map_err(CtlError::from)),
    );
    steps.record(
        "smart",
        Outcome::from(
            admin
                .smart()
                .map(|x| json!(x.len()))
                .map_err(CtlError::from),
        ),
    );
    steps.record(
        "health",
        Outcome::from(admin.health().map(|h| json!(h)).map_err(CtlError::from)),
    );
    // The memory: only where a media window exists (BAR 4 on the simulator, --media on a
    // real card).
    let no_window = matches!(s.kind, Kind::Vfio { .. }) && a.media.is_none();
    if no_window {
        let why = "no media window: pass --media devdax:/dev/daxX.Y (or devmem:ADDR) to check labels and memory";
        steps.record("labels_read_only", Outcome::Skip(why.into()));
        steps.record("media_read", Outcome::Skip(why.into()));
    } else {
        match bus_for_card(s, a) {
            Err(e) => {
                steps.record("labels_read_only", Outcome::from(Err(e)));
            }
            Ok(bus) => {
                steps.record(
                    "labels_read_only",
                    Outcome::from(
                        bus.label_summary()
                            .and_then(|l| {
                                Ok(json!({ "labels": l, "namespaces": bus.namespaces()? }))
                            })
                            .map_err(CtlError::from),
                    ),
                );
                if let Some(w) = bus.region().window() {
                    steps.record("media_read", media_read(w));
                }
                if destructive {
                    steps.record("namespace_cycle", namespace_cycle(&bus));
                }
            }
        }
    }
    if destructive {
        let mut sink = Vec::new();
        steps.record(
            "controller_dump",
            Outcome::from(
                admin
                    .dump(&mut sink, &mut |_| {})
                    .map(|n| json!(n))
                    .map_err(CtlError::from),
            ),
        );
    }
}

/// Reads the first page after the label area.
fn media_read(w: &Arc<dyn MediaWindow>) -> Outcome {
    let mut buf = vec![0u8; 4096];
    if w.len() < LABEL_AREA_SIZE + buf.len() as u64 {
        return Outcome::Fail(format!("{} is no larger than the label area", w.describe()));
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
    Outcome::Pass(json!({ "bytes": buf.len(), "window": w.describe() }))
}

/// Destructive: a scratch namespace in free space (never touching existing ones): create,
/// write a pattern, persist, read it back, destroy.
fn namespace_cycle(bus: &ocxlpmem::nvdimm::Bus) -> Outcome {
    let cap = match bus.capacity() {
        Ok(c) => c,
        Err(e) => return Outcome::from(Err(e.into())),
    };
    if bus.region().is_label_less() {
        return Outcome::Skip("label-less region (serial 0)".into());
    }
    if bus.label_summary().is_ok_and(|l| l.state != "labels") {
        return Outcome::Skip("labels not initialised (ocxlpmem-ctl init-labels)".into());
    }
    if cap.largest_free_extent < MIN_NAMESPACE_SIZE {
        return Outcome::Skip("no 16 MiB of free space for a scratch namespace".into());
    }
    let run = || -> CtlResult<serde_json::Value> {
        let ns = bus.create_namespace(&NamespaceSpec {
            size: Some(MIN_NAMESPACE_SIZE),
            name: "ocxlpmem-selftest".into(),
            ..NamespaceSpec::default()
        })?;
        let (w, range) = bus.namespace_range(ns.uuid)?;
        let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
        // SAFETY: `range` lies inside the window (namespace_range checks the label
        // against the region) and is at least 16 MiB; nothing else uses this scratch
        // namespace, created just now.
        let back = unsafe {
            let p = w.base().as_ptr().add(range.start as usize);
            ocxlpmem::pmem::memcpy(p, pattern.as_ptr(), pattern.len(), Default::default());
            let mut back = vec![0u8; pattern.len()];
            std::ptr::copy_nonoverlapping(p, back.as_mut_ptr(), back.len());
            back
        };
        w.sync(range.start..range.start + pattern.len() as u64)
            .map_err(|e| CtlError::new(exit::DEVICE, format!("persisting: {e}")))?;
        bus.destroy_namespace(ns.uuid)?;
        if back != pattern {
            return Err(CtlError::new(
                exit::FAILED,
                "the pattern read back differs from what was written",
            ));
        }
        Ok(json!({ "namespace": ns.uuid, "offset": ns.offset, "bytes": pattern.len() }))
    };
    Outcome::from(run())
}
