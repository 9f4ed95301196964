//! Bring-up of one card behind a transport: identity, config space, the AFU descriptor,
//! the global MMIO area, CCAP/FWVER, readiness, recovery of a previous owner's leftovers,
//! and a first heartbeat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ocxlpmem_admin::{Admin, AdminOptions, ErrorLogEntry};
use ocxlpmem_regs::config::{self, dvsec, pci};
use ocxlpmem_regs::{offsets, AfuDescriptor, Ccap0, Ccap1, Chi, Hci, Mmio};

use super::config::{
    dvsecs, ext_caps, find_dvsec, read_afu_descriptor, serial_number, ConfigSpace, SavedConfig,
    TransportConfig,
};
use super::error::DeviceError;
use super::mmio::{GlobalMmio, MmioLocation};
use super::ready::{missing, wait_ready, NotReady, Ready};
use crate::transport::Transport;

/// Options of [`Card::open`].
#[derive(Debug, Clone)]
pub struct CardOptions {
    /// Bound on the readiness wait; `None` uses CCAP0's readiness + memory-available
    /// timeouts (spec §1.4), or [`DEFAULT_READY_BUDGET`] when CCAP0 gives 0.
    pub ready_timeout: Option<Duration>,
    /// The global MMIO location, for when the AFU descriptor cannot be read (DVSECs hidden
    /// by an old vfio-pci). When the descriptor can be read it wins, with a warning if the
    /// two differ.
    pub mmio_location: Option<MmioLocation>,
    /// The LPC size, for when the AFU descriptor cannot be read.
    pub lpc_size: Option<u64>,
    /// Map the mmap-able parts of the global MMIO area (fewer system calls).
    pub map_mmio: bool,
    /// Bound on one AFU-information window read (spec §7: 3 s).
    pub afu_info_timeout: Duration,
    /// Function 0's config space, for the serial number fallback (spec §7).
    pub function0_config: Option<SavedConfig>,
    /// Options of the admin command handle.
    pub admin: AdminOptions,
    /// Clean up what a previous owner left (stale responses, an uncollected dump, FDE).
    pub recover: bool,
    /// Send a heartbeat once the card is ready.
    pub heartbeat: bool,
    /// Fail when the card does not become ready (or is in a fatal state). Without it, a
    /// diagnostic tool still gets the admin handle (to read the error log or take a dump
    /// of a broken card) and [`CardInfo::not_ready`] says what is wrong. A card that is
    /// gone fails either way.
    pub require_ready: bool,
}

/// The readiness bound used when CCAP0's timeouts read 0.
pub const DEFAULT_READY_BUDGET: Duration = Duration::from_secs(4);

impl Default for CardOptions {
    fn default() -> Self {
        CardOptions {
            ready_timeout: None,
            mmio_location: None,
            lpc_size: None,
            map_mmio: true,
            afu_info_timeout: dvsec::afu_info::TIMEOUT,
            function0_config: None,
            admin: AdminOptions::default(),
            recover: true,
            heartbeat: true,
            require_ready: true,
        }
    }
}

/// Where the serial number came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SerialSource {
    /// Function 1's Device Serial Number capability.
    Function1,
    /// Function 0's (function 1 has none).
    Function0,
    /// Neither function has one: the serial is 0 and labels have no usable cookie.
    None,
}

/// Something a previous owner left behind that bring-up cleaned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Recovery {
    /// A response nobody acknowledged (CHI.ACRA or NSCRA set at open); acknowledged.
    StaleResponse {
        /// "admin" or "near-storage".
        area: &'static str,
    },
    /// A controller dump nobody collected (CHI.CDA set); freed.
    UncollectedDump,
    /// A dump request still pending (HCI.CD set); left to finish (it can be fetched or
    /// freed later).
    PendingDumpRequest,
    /// Firmware debug left enabled (HCI.FDE); withdrawn.
    FirmwareDebugLeftOn,
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recovery::StaleResponse { area } => {
                write!(
                    f,
                    "acknowledged a stale {area} response left by a previous owner"
                )
            }
            Recovery::UncollectedDump => write!(f, "freed a controller dump nobody collected"),
            Recovery::PendingDumpRequest => {
                write!(f, "a controller dump request is still pending (left as is)")
            }
            Recovery::FirmwareDebugLeftOn => write!(f, "withdrew firmware debug enable (FDE)"),
        }
    }
}

/// What bring-up learned about a card.
#[derive(Debug, Clone)]
pub struct CardInfo {
    /// The transport's description.
    pub device: String,
    /// PCI vendor id.
    pub vendor_id: u16,
    /// PCI device id.
    pub device_id: u16,
    /// PCI revision.
    pub revision: u8,
    /// The serial number (the labels' interleave-set cookie).
    pub serial: u64,
    /// Where it came from.
    pub serial_source: SerialSource,
    /// The AFU descriptor (absent when the DVSECs are hidden and the location was given).
    pub afu: Option<AfuDescriptor>,
    /// Where the global MMIO area is.
    pub mmio: MmioLocation,
    /// The mapped parts of the global MMIO area.
    pub mmio_mapped: Vec<std::ops::Range<u64>>,
    /// LPC memory size, if known.
    pub lpc_size: Option<u64>,
    /// CCAP0.
    pub ccap0: Ccap0,
    /// CCAP1.
    pub ccap1: Ccap1,
    /// FWVER as text (8 ASCII bytes, trailing spaces kept off).
    pub fw_version: String,
    /// How readiness was reached (`None` when it was not: see `not_ready`).
    pub ready: Option<Ready>,
    /// Why the card is not ready, when [`CardOptions::require_ready`] was off.
    pub not_ready: Option<String>,
    /// What was cleaned up.
    pub recovered: Vec<Recovery>,
    /// Things worth telling a user that did not stop bring-up.
    pub warnings: Vec<String>,
}

impl CardInfo {
    /// The information as JSON (for `ocxlpmem-ctl --json`).
    pub fn to_json(&self) -> serde_json::Value {
        let afu = self.afu.as_ref().map(|a| {
            serde_json::json!({
                "name": a.name,
                "template": format!("{}.{}", a.template_major, a.template_minor),
                "version": format!("{}.{}", a.afu_major, a.afu_minor),
                "lpc_offset": a.lpc_offset,
                "wwid": a.wwid.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            })
        });
        serde_json::json!({
            "device": self.device,
            "vendor_id": format!("{:04x}", self.vendor_id),
            "device_id": format!("{:04x}", self.device_id),
            "revision": self.revision,
            "serial": self.serial,
            "serial_source": self.serial_source,
            "afu": afu,
            "global_mmio": self.mmio,
            "lpc_size": self.lpc_size,
            "ccap0": {
                "raw": format!("{:#x}", self.ccap0.bits()),
                "revision": format!("{}.{}", self.ccap0.revision_major(), self.ccap0.revision_minor()),
                "read_latency_ns": self.ccap0.read_latency_ns(),
                "readiness_timeout_s": self.ccap0.readiness_timeout_s(),
                "memory_available_timeout_s": self.ccap0.memory_available_timeout_s(),
            },
            "max_dump_size": self.ccap1.max_dump_size(),
            "fw_version": self.fw_version,
            "ready": self.ready.is_some(),
            "ready_after_us": self.ready.map(|r| r.waited.as_micros() as u64),
            "not_ready": self.not_ready,
            "recovered": self.recovered,
            "warnings": self.warnings,
        })
    }
}

/// A card that is up: config space parsed, global MMIO reachable, ready, admin handle open.
#[derive(Debug)]
pub struct Card {
    transport: Arc<dyn Transport>,
    mmio: Arc<GlobalMmio>,
    admin: Admin,
    info: CardInfo,
}

impl Card {
    /// Brings up the card behind `transport` (function 1 of a 1014:0625 card).
    pub fn open(transport: Arc<dyn Transport>, opts: &CardOptions) -> Result<Card, DeviceError> {
        let device = transport.describe();
        let cfg = TransportConfig(transport.as_ref());
        let mut warnings = Vec::new();

        // Identity.
        let vendor_id = cfg.read_u16(pci::VENDOR)?;
        let device_id = cfg.read_u16(pci::DEVICE)?;
        if vendor_id == u16::MAX && device_id == u16::MAX {
            return Err(DeviceError::ConfigGone { device });
        }
        if (vendor_id, device_id) != (config::VENDOR_ID, config::DEVICE_ID) {
            return Err(DeviceError::NotACard {
                device,
                vendor: vendor_id,
                device_id,
            });
        }
        let revision = cfg.read_u8(pci::REVISION_CLASS)?;
        let command = cfg.read_u16(pci::COMMAND)?;
        if command & pci::COMMAND_MEMORY == 0 {
            tracing::info!(%device, "enabling memory decoding (PCI command register)");
            cfg.write(pci::COMMAND, &(command | pci::COMMAND_MEMORY).to_le_bytes())?;
        }

        // Capabilities: DVSECs and the serial number.
        let caps = ext_caps(&cfg)?;
        let all = dvsecs(&cfg, &caps)?;
        // A serial of 0 is no serial (no usable cookie): fall back as if it were absent.
        let (serial, serial_source) = match serial_number(&cfg, &caps)?.filter(|s| *s != 0) {
            Some(s) => (s, SerialSource::Function1),
            None => match &opts.function0_config {
                Some(f0) => match serial_number(f0, &ext_caps(f0)?)?.filter(|s| *s != 0) {
                    Some(s) => (s, SerialSource::Function0),
                    None => (0, SerialSource::None),
                },
                None => (0, SerialSource::None),
            },
        };
        if serial == 0 {
            warnings.push(
                "the card has no serial number: its region is label-less (one raw namespace)"
                    .to_string(),
            );
        }

        // The AFU descriptor gives the global MMIO location and the LPC size.
        let afu = if all.is_empty() {
            if opts.mmio_location.is_none() {
                return Err(DeviceError::DvsecHidden { device });
            }
            warnings.push(
                "no OpenCAPI DVSEC visible (old vfio-pci?): using the global MMIO location given"
                    .to_string(),
            );
            None
        } else {
            Some(read_descriptor(&cfg, &all, opts)?)
        };
        let (location, lpc_size) = match (&afu, opts.mmio_location) {
            (Some(a), given) => {
                let found = MmioLocation {
                    bar: a.global_mmio_bar,
                    offset: a.global_mmio_offset,
                    size: u64::from(a.global_mmio_size),
                };
                if let Some(g) = given.filter(|g| *g != found) {
                    warnings.push(format!(
                        "ignoring the global MMIO location given ({g}): the AFU descriptor says {found}"
                    ));
                }
                (found, Some(a.lpc_size))
            }
            (None, Some(g)) => (g, opts.lpc_size),
            (None, None) => unreachable!("checked above"),
        };
        check_location(transport.as_ref(), location)?;
        let mmio = Arc::new(GlobalMmio::new(
            Arc::clone(&transport),
            location,
            opts.map_mmio,
        ));
        let read = |offset: u64, what: &'static str| {
            mmio.read_u64(offset).map_err(|e| DeviceError::Transport {
                what: format!("reading {what}"),
                device: device.clone(),
                source: crate::transport::TransportError::Io {
                    op: format!("global MMIO read at {offset:#x}"),
                    source: std::io::Error::other(e),
                },
            })
        };

        // Capabilities and firmware version; readiness.
        let chi = read(offsets::CHI, "CHI")?;
        if Chi(chi).is_all_ones() {
            return Err(DeviceError::Gone { device });
        }
        let ccap0 = Ccap0(read(offsets::CCAP0, "CCAP0")?);
        let ccap1 = Ccap1(read(offsets::CCAP1, "CCAP1")?);
        let fw_version = fw_text(read(offsets::FWVER, "FWVER")?);
        let budget = opts.ready_timeout.unwrap_or_else(|| {
            let b = ccap0.readiness_budget();
            if b.is_zero() {
                DEFAULT_READY_BUDGET
            } else {
                b
            }
        });
        let (ready, not_ready_why) = match wait_ready(mmio.as_ref(), budget) {
            Ok(r) => (Some(r), None),
            Err(NotReady::Gone) => return Err(DeviceError::Gone { device }),
            Err(e) => {
                // Reading the log drains it: only when the error that shows it is returned.
                let e = not_ready(e, &device, &mmio, opts, opts.require_ready);
                if opts.require_ready {
                    return Err(e);
                }
                tracing::warn!(%device, "continuing with a card that is not ready: {e}");
                (None, Some(e.to_string()))
            }
        };
        let usable = ready.is_some();

        // Leftovers of a previous owner, then the admin handle and a heartbeat.
        let recovered = if opts.recover && usable {
            recover_registers(mmio.as_ref(), &device)?
        } else {
            Vec::new()
        };
        let mmio_dyn: Arc<dyn Mmio> = mmio.clone();
        let admin = Admin::with_options(mmio_dyn, opts.admin.clone()).map_err(|source| {
            DeviceError::Admin {
                what: "opening the admin command areas",
                device: device.clone(),
                source,
            }
        })?;
        let mut recovered = recovered;
        if opts.recover && usable {
            let chi = admin.read_chi().map_err(|source| DeviceError::Admin {
                what: "reading CHI",
                device: device.clone(),
                source,
            })?;
            if chi.cda() {
                admin.dump_complete().map_err(|source| DeviceError::Admin {
                    what: "freeing a dump left by a previous owner",
                    device: device.clone(),
                    source,
                })?;
                recovered.push(Recovery::UncollectedDump);
            }
        }
        for r in &recovered {
            tracing::warn!(%device, "bring-up: {r}");
        }
        if opts.heartbeat && usable {
            admin.heartbeat().map_err(|source| DeviceError::Admin {
                what: "the bring-up heartbeat",
                device: device.clone(),
                source,
            })?;
        }
        for w in &warnings {
            tracing::warn!(%device, "{w}");
        }
        let info = CardInfo {
            device,
            vendor_id,
            device_id,
            revision,
            serial,
            serial_source,
            afu,
            mmio: location,
            mmio_mapped: mmio.mapped_ranges(),
            lpc_size,
            ccap0,
            ccap1,
            fw_version,
            ready,
            not_ready: not_ready_why,
            recovered,
            warnings,
        };
        Ok(Card {
            transport,
            mmio,
            admin,
            info,
        })
    }

    /// What bring-up learned.
    pub fn info(&self) -> &CardInfo {
        &self.info
    }

    /// The admin command handle.
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    /// The global MMIO area.
    pub fn mmio(&self) -> &Arc<GlobalMmio> {
        &self.mmio
    }

    /// The transport.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Resets the card (a controller reset) and waits for readiness again, bounded as at
    /// open.
    pub fn reset(&mut self, opts: &CardOptions) -> Result<Ready, DeviceError> {
        let device = self.info.device.clone();
        self.transport
            .reset()
            .map_err(|source| DeviceError::Transport {
                what: "resetting the card".into(),
                device: device.clone(),
                source,
            })?;
        let budget = opts
            .ready_timeout
            .unwrap_or_else(|| self.info.ccap0.readiness_budget().max(DEFAULT_READY_BUDGET));
        self.admin.forget_request_words();
        let ready = wait_ready(self.mmio.as_ref(), budget)
            .map_err(|e| not_ready(e, &device, &self.mmio, opts, true))?;
        self.info.ready = Some(ready);
        self.info.not_ready = None;
        Ok(ready)
    }
}

fn read_descriptor(
    cfg: &TransportConfig<'_>,
    all: &[super::config::Dvsec],
    opts: &CardOptions,
) -> Result<AfuDescriptor, DeviceError> {
    let function = find_dvsec(
        cfg,
        all,
        dvsec::ID_FUNCTION,
        "function",
        dvsec::function::LENGTH,
    )?;
    let word = cfg.read_u32(function.offset + dvsec::function::AFU_PRESENT)?;
    if word & dvsec::function::AFU_PRESENT_BIT == 0 {
        return Err(DeviceError::NoAfu {
            device: cfg.describe(),
            dword: word,
        });
    }
    let info = find_dvsec(
        cfg,
        all,
        dvsec::ID_AFU_INFO,
        "AFU information",
        dvsec::afu_info::LENGTH,
    )?;
    let afu = read_afu_descriptor(cfg, &info, config::PMEM_AFU_INDEX, opts.afu_info_timeout)?;
    if afu.name != config::PMEM_AFU_NAME {
        return Err(DeviceError::WrongAfu {
            device: cfg.describe(),
            name: afu.name,
        });
    }
    // Enable the AFU (AFU control DVSEC), as the kernel's ocxl core does.
    if let Ok(control) = find_dvsec(
        cfg,
        all,
        dvsec::ID_AFU_CONTROL,
        "AFU control",
        dvsec::afu_control::LENGTH,
    ) {
        cfg.write(
            control.offset + dvsec::afu_control::AFU_INDEX,
            &[config::PMEM_AFU_INDEX],
        )?;
        let at = control.offset + dvsec::afu_control::ENABLE;
        let v = cfg.read_u8(at)?;
        if v & dvsec::afu_control::ENABLE_BIT == 0 {
            cfg.write(at, &[v | dvsec::afu_control::ENABLE_BIT])?;
        }
    } else {
        tracing::warn!(
            device = cfg.describe(),
            "no AFU control DVSEC: AFU not enabled"
        );
    }
    Ok(afu)
}

/// The global MMIO area must fit its BAR and hold at least the register file.
fn check_location(t: &dyn Transport, loc: MmioLocation) -> Result<(), DeviceError> {
    let bar_size = t
        .region_info(u32::from(loc.bar))
        .map_err(|source| DeviceError::Transport {
            what: format!("describing BAR {}", loc.bar),
            device: t.describe(),
            source,
        })?
        .size;
    let bad = |why: &str| DeviceError::BadMmioLocation {
        device: t.describe(),
        bar: loc.bar,
        offset: loc.offset,
        size: loc.size,
        bar_size,
        why: why.to_string(),
    };
    match loc.offset.checked_add(loc.size) {
        Some(end) if end <= bar_size => {}
        _ => return Err(bad("")),
    }
    if loc.size < offsets::REGISTER_FILE_SIZE {
        return Err(bad(": smaller than the register file"));
    }
    if !loc.offset.is_multiple_of(8) {
        return Err(bad(": not 8-byte aligned"));
    }
    Ok(())
}

/// FWVER's 8 bytes as text: printable ASCII kept, the rest shown as '.', trailing spaces
/// and NULs trimmed.
fn fw_text(raw: u64) -> String {
    raw.to_le_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect::<String>()
        .trim_end_matches([' ', '.'])
        .to_string()
}

/// Acknowledges stale responses and withdraws FDE (spec §2.4 step 2 at open).
fn recover_registers(mmio: &dyn Mmio, device: &str) -> Result<Vec<Recovery>, DeviceError> {
    let io = |what: &str, e: ocxlpmem_regs::MmioError| DeviceError::Transport {
        what: what.to_string(),
        device: device.to_string(),
        source: crate::transport::TransportError::Io {
            op: "global MMIO access".into(),
            source: std::io::Error::other(e),
        },
    };
    let mut done = Vec::new();
    let chi = mmio
        .read_u64(offsets::CHI)
        .map_err(|e| io("reading CHI", e))?;
    for (bit, area) in [(Chi::ACRA, "admin"), (Chi::NSCRA, "near-storage")] {
        if chi & bit != 0 {
            mmio.write_u64(offsets::CHIC, bit)
                .map_err(|e| io("writing CHIC", e))?;
            let deadline = Instant::now() + Duration::from_millis(100);
            while mmio
                .read_u64(offsets::CHI)
                .map_err(|e| io("reading CHI", e))?
                & bit
                != 0
            {
                if Instant::now() >= deadline {
                    // The mailbox clears it again before its next command (§2.4 step 2).
                    tracing::warn!(device, area, "a stale response did not clear at once");
                    break;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
            done.push(Recovery::StaleResponse { area });
        }
    }
    let hci = mmio
        .read_u64(offsets::HCI)
        .map_err(|e| io("reading HCI", e))?;
    if hci & Hci::FDE != 0 {
        mmio.write_u64(offsets::HCIC, Hci::FDE)
            .map_err(|e| io("writing HCIC", e))?;
        done.push(Recovery::FirmwareDebugLeftOn);
    }
    if hci & Hci::CD != 0 {
        done.push(Recovery::PendingDumpRequest);
    }
    Ok(done)
}

/// Turns a failed readiness wait into the error a user sees, with the error log when
/// CHI.ELA says there is one.
fn not_ready(
    e: NotReady,
    device: &str,
    mmio: &Arc<GlobalMmio>,
    opts: &CardOptions,
    read_log: bool,
) -> DeviceError {
    // The log can only be read while the controller serves commands (CRDY set, not
    // fatal): a stopped firmware would make every read wait for its command timeout.
    let log = |chi: Chi| -> Vec<ErrorLogEntry> {
        if !read_log || chi.0 & Chi::ELA == 0 || chi.0 & Chi::CRDY == 0 || chi.is_fatal() {
            return Vec::new();
        }
        let m: Arc<dyn Mmio> = mmio.clone();
        match Admin::with_options(m, opts.admin.clone()).and_then(|a| a.error_log_all()) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(device, error = %e, "reading the error log of a card that is not ready");
                Vec::new()
            }
        }
    };
    match e {
        NotReady::Access(e) => DeviceError::Transport {
            what: "reading CHI".into(),
            device: device.to_string(),
            source: crate::transport::TransportError::Io {
                op: "global MMIO read".into(),
                source: std::io::Error::other(e),
            },
        },
        NotReady::Gone => DeviceError::Gone {
            device: device.to_string(),
        },
        NotReady::Fatal(chi) => DeviceError::Fatal {
            device: device.to_string(),
            chi: chi.0,
            names: chi.names(),
            log: log(chi),
        },
        NotReady::Timeout { chi, waited } => DeviceError::NotReady {
            device: device.to_string(),
            missing: missing(chi),
            chi: chi.0,
            names: chi.names(),
            waited,
            log: log(chi),
        },
    }
}
