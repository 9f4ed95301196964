//! Device selection: the embedded simulated card (`--sim`, memory in an image file with
//! a sidecar identity file) and the kernel char device (`--kernel`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ocxlpmem::device::{Card, CardOptions, MmioLocation};
use ocxlpmem::media::bar::BarWindow;
use ocxlpmem::transport::sim::SimTransport;
use ocxlpmem::transport::vfio::VfioTransport;
use ocxlpmem::transport::vfio_user::VfioUserTransport;
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

/// The serial a sim image's sidecar records, if it has one.
pub fn sidecar_serial(image: &Path) -> Option<u64> {
    let bytes = std::fs::read(sidecar_path(image)).ok()?;
    serde_json::from_slice::<Sidecar>(&bytes)
        .ok()
        .map(|s| s.serial)
}

fn sidecar_path(image: &Path) -> PathBuf {
    let mut s = image.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// What a [`CardDevice`] is reached through.
pub enum Kind {
    /// The embedded simulated card.
    Sim {
        /// Its image file.
        image: PathBuf,
        /// Its identity.
        identity: Sidecar,
    },
    /// A real card through the kernel's vfio-pci.
    Vfio {
        /// Its PCI address.
        bdf: String,
    },
    /// A card served over vfio-user (`ocxlpmem-sim serve`).
    VfioUser {
        /// The socket.
        socket: PathBuf,
    },
}

/// A card that is up, whatever carries it.
pub struct CardDevice {
    /// The card.
    pub card: Arc<Card>,
    /// How it is reached.
    pub kind: Kind,
}

impl CardDevice {
    /// The admin command handle.
    pub fn admin(&self) -> &Admin {
        self.card.admin()
    }

    /// What the card is (for messages): the image, the BDF or the socket.
    pub fn source(&self) -> String {
        match &self.kind {
            Kind::Sim { image, .. } => image.display().to_string(),
            Kind::Vfio { bdf } => bdf.clone(),
            Kind::VfioUser { socket } => socket.display().to_string(),
        }
    }

    /// The media window of the card: BAR 4 where the transport has it (the simulated
    /// card, locally or over vfio-user).
    pub fn media(&self) -> CtlResult<BarWindow> {
        BarWindow::open(self.card.transport().as_ref()).map_err(|e| {
            CtlError::new(exit::UNSUPPORTED, format!("no media window on {}: {e}", self.source()))
                .hint("on POWER9 the card's memory is not a BAR: it is reached through a device-dax or /dev/mem window")
        })
    }
}

/// Bring-up options from the command line.
pub fn card_options(
    ready_timeout: Option<Duration>,
    mmio: Option<MmioLocation>,
    strict: bool,
) -> CardOptions {
    CardOptions {
        ready_timeout,
        mmio_location: mmio,
        require_ready: strict,
        // The `heartbeat` command does its own; a diagnostic tool must open a card whose
        // heartbeat fails.
        heartbeat: false,
        ..CardOptions::default()
    }
}

/// Opens a card over kernel VFIO.
pub fn open_vfio(bdf: &str, opts: &CardOptions) -> CtlResult<CardDevice> {
    let t = VfioTransport::open(bdf).map_err(CtlError::from)?;
    let card = Arc::new(Card::open(Arc::new(t), opts)?);
    Ok(CardDevice {
        card,
        kind: Kind::Vfio {
            bdf: bdf.to_string(),
        },
    })
}

/// Opens a card served over vfio-user.
pub fn open_vfio_user(socket: &Path, opts: &CardOptions) -> CtlResult<CardDevice> {
    let t = VfioUserTransport::connect(socket).map_err(|e| {
        CtlError::new(exit::NOT_FOUND, e.to_string())
            .hint("start the server with `ocxlpmem-sim serve --socket PATH`")
    })?;
    let card = Arc::new(Card::open(Arc::new(t), opts)?);
    Ok(CardDevice {
        card,
        kind: Kind::VfioUser {
            socket: socket.to_path_buf(),
        },
    })
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
}

fn identity(opts: &SimOptions, image: &Path) -> CtlResult<(Sidecar, bool)> {
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
            Ok((id, false))
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
            Ok((id, true))
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

/// Opens (creating on first use) the simulated card and brings it up.
pub fn open_sim(opts: &SimOptions, card_opts: &CardOptions) -> CtlResult<CardDevice> {
    let image = match &opts.image {
        Some(p) => p.clone(),
        None => default_image()?,
    };
    let (id, created) = identity(opts, &image)?;
    let cfg = SimConfig {
        serial: id.serial,
        lpc_size: id.lpc_size,
        image: Some(image.clone()),
        mmap_command_areas: true,
        ..SimConfig::default()
    };
    let sim = SimCard::new(cfg).map_err(|e| {
        if created {
            // A card that never came to be leaves nothing behind.
            let _ = std::fs::remove_file(sidecar_path(&image));
            let _ = std::fs::remove_file(&image);
        }
        CtlError::new(exit::FAILED, format!("cannot start the simulated card on {}: {e}", image.display()))
            .hint("check --sim-size (a power of two, at least 32M) or delete the image and its .json sidecar")
    })?;
    for f in &opts.faults {
        sim.inject(fault(f)?);
    }
    for i in 0..opts.error_logs {
        sim.push_error_log(ocxlpmem_sim::ErrorLogEntry {
            log_type: 0,
            action_flags: 1 << 23,
            program_reference_code: 0x1000 + i,
            data: vec![0xEE; 16],
        });
    }
    let card = Arc::new(Card::open(Arc::new(SimTransport::new(sim)), card_opts)?);
    Ok(CardDevice {
        card,
        kind: Kind::Sim {
            image,
            identity: id,
        },
    })
}
