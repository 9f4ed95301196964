//! Device selection: the embedded simulated card (`--sim`, memory in an image file with
//! a sidecar identity file) and the kernel char device (`--kernel`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ocxlpmem_admin::Admin;
use ocxlpmem_regs::CommandArea;
use ocxlpmem_sim::{Fault, SimCard, SimConfig};
use serde::{Deserialize, Serialize};

use crate::output::{exit, CtlError, CtlResult};

/// The identity of a simulated card, fixed when its image is created (`<image>.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sidecar {
    /// PCIe DSN, also the labels' interleave-set cookie.
    pub serial: u64,
    /// LPC memory size in bytes.
    pub lpc_size: u64,
}

/// Where the default image lives: `$XDG_STATE_HOME/ocxlpmem/sim.img`, else
/// `~/.local/state/ocxlpmem/sim.img`.
pub fn default_image() -> CtlResult<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(s) => PathBuf::from(s),
        None => {
            let home = std::env::var_os("HOME").ok_or_else(|| {
                CtlError::new(exit::USAGE, "neither XDG_STATE_HOME nor HOME is set")
                    .hint("pass --sim-image PATH")
            })?;
            PathBuf::from(home).join(".local/state")
        }
    };
    Ok(base.join("ocxlpmem").join("sim.img"))
}

fn sidecar_path(image: &Path) -> PathBuf {
    let mut s = image.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// An open simulated card with its admin handle.
pub struct SimDevice {
    /// The card.
    pub card: SimCard,
    /// The admin command handle.
    pub admin: Admin,
    /// Its image file.
    pub image: PathBuf,
    /// Its identity.
    pub identity: Sidecar,
}

/// Options of `--sim`.
pub struct SimOptions {
    /// `--sim-image`.
    pub image: Option<PathBuf>,
    /// `--sim-serial` (only at creation).
    pub serial: Option<u64>,
    /// `--sim-size` (only at creation).
    pub size: Option<u64>,
    /// `--sim-fault` (testing aid).
    pub faults: Vec<String>,
    /// `--sim-error-logs` (testing aid): queue this many error logs at open.
    pub error_logs: u32,
    /// Readiness bound.
    pub ready_timeout: Duration,
}

fn identity(opts: &SimOptions, image: &Path) -> CtlResult<Sidecar> {
    let side = sidecar_path(image);
    let defaults = SimConfig::default();
    match std::fs::read(&side) {
        Ok(bytes) => {
            let id: Sidecar = serde_json::from_slice(&bytes).map_err(|e| {
                CtlError::new(
                    exit::FAILED,
                    format!("{}: not a sim identity file: {e}", side.display()),
                )
                .hint("delete the image and its .json sidecar to start a new card")
            })?;
            for (what, asked, have) in [
                ("serial", opts.serial, id.serial),
                ("size", opts.size, id.lpc_size),
            ] {
                if let Some(a) = asked.filter(|a| *a != have) {
                    return Err(CtlError::new(
                        exit::USAGE,
                        format!("the card in {} was created with {what} {have:#x}, not {a:#x}", image.display()),
                    )
                    .hint("a card's identity is fixed at creation: use another --sim-image or delete this one"));
                }
            }
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = Sidecar {
                serial: opts.serial.unwrap_or(defaults.serial),
                lpc_size: opts.size.unwrap_or(defaults.lpc_size),
            };
            if let Some(dir) = image.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    CtlError::new(
                        exit::FAILED,
                        format!("cannot create {}: {e}", dir.display()),
                    )
                })?;
            }
            let json = serde_json::to_vec_pretty(&id)
                .map_err(|e| CtlError::new(exit::FAILED, e.to_string()))?;
            std::fs::write(&side, json).map_err(|e| {
                CtlError::new(
                    exit::FAILED,
                    format!("cannot write {}: {e}", side.display()),
                )
            })?;
            Ok(id)
        }
        Err(e) => Err(CtlError::new(
            exit::FAILED,
            format!("cannot read {}: {e}", side.display()),
        )),
    }
}

/// The fault names `--sim-fault` accepts (a testing aid, hidden from `--help`).
pub const FAULT_NAMES: [&str; 9] = [
    "command-timeout",
    "wrong-id",
    "status-fail",
    "never-ready",
    "firmware-fatal",
    "hardware-fatal",
    "surprise-removal",
    "bad-smart-payload",
    "dump-never-completes",
];

fn fault(name: &str) -> CtlResult<Fault> {
    let admin = CommandArea::Admin;
    Ok(match name {
        "command-timeout" => Fault::CommandTimeout {
            area: admin,
            opcode: None,
        },
        "wrong-id" => Fault::WrongId { area: admin },
        "status-fail" => Fault::Status {
            area: admin,
            opcode: None,
            status: 0xFF,
        },
        "never-ready" => Fault::NeverReady,
        "firmware-fatal" => Fault::FirmwareFatal,
        "hardware-fatal" => Fault::HardwareFatal,
        "surprise-removal" => Fault::SurpriseRemoval,
        "bad-smart-payload" => Fault::BadPayloadId { opcode: 0x05 },
        "dump-never-completes" => Fault::DumpNeverCompletes,
        other => {
            return Err(
                CtlError::new(exit::USAGE, format!("unknown --sim-fault {other:?}"))
                    .hint(format!("one of: {}", FAULT_NAMES.join(", "))),
            )
        }
    })
}

impl SimDevice {
    /// Opens (creating on first use) the simulated card and waits until it is ready.
    pub fn open(opts: &SimOptions) -> CtlResult<Self> {
        let image = match &opts.image {
            Some(p) => p.clone(),
            None => default_image()?,
        };
        let id = identity(opts, &image)?;
        let cfg = SimConfig {
            serial: id.serial,
            lpc_size: id.lpc_size,
            image: Some(image.clone()),
            ..SimConfig::default()
        };
        let card = SimCard::new(cfg).map_err(|e| {
            CtlError::new(exit::FAILED, format!("cannot start the simulated card on {}: {e}", image.display()))
                .hint("check --sim-size (a power of two, at least 32M) or delete the image and its .json sidecar")
        })?;
        for f in &opts.faults {
            card.inject(fault(f)?);
        }
        for i in 0..opts.error_logs {
            card.push_error_log(ocxlpmem_sim::ErrorLogEntry {
                log_type: 0,
                action_flags: 1 << 23,
                program_reference_code: 0x1000 + i,
                data: vec![0xEE; 16],
            });
        }
        let mmio: Arc<dyn ocxlpmem_regs::Mmio> = Arc::new(card.mmio());
        wait_ready(mmio.as_ref(), opts.ready_timeout)?;
        let admin = Admin::new(mmio)?;
        Ok(Self {
            card,
            admin,
            image,
            identity: id,
        })
    }
}

/// Waits (bounded, re-checking once at the deadline) until CHI shows CRDY and MA.
pub fn wait_ready(mmio: &dyn ocxlpmem_regs::Mmio, timeout: Duration) -> CtlResult<()> {
    use ocxlpmem_regs::Chi;
    let deadline = Instant::now() + timeout;
    loop {
        let late = Instant::now() >= deadline;
        let chi = mmio
            .read_u64(ocxlpmem_regs::offsets::CHI)
            .map_err(|e| CtlError::new(exit::DEVICE, format!("reading CHI: {e}")))?;
        if chi == Chi::ALL_ONES {
            return Err(CtlError::new(
                exit::DEVICE,
                "CHI reads all ones: the device is gone or frozen",
            )
            .hint("check that the card is present (lspci) and not EEH-frozen"));
        }
        let c = Chi(chi);
        if c.is_fatal() {
            return Err(CtlError::new(
                exit::DEVICE,
                format!(
                    "the card is in a fatal state (CHI {chi:#x}: {:?})",
                    c.names()
                ),
            )
            .hint("take a controller dump, then reset the card"));
        }
        if c.is_ready() {
            return Ok(());
        }
        if late {
            return Err(CtlError::new(
                exit::DEVICE,
                format!("the card did not become ready within {timeout:?} (CHI {chi:#x}: {:?}; needs CRDY and MA)", c.names()),
            )
            .hint("read the error log; raise --ready-timeout if the card is slow"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
