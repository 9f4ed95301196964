//! Errors of discovery-independent bring-up: config space, the AFU descriptor, the global
//! MMIO area and readiness.

use std::time::Duration;

use ocxlpmem_admin::{AdminError, ErrorLogEntry};
use ocxlpmem_regs::config::AfuDescriptorError;

use crate::transport::TransportError;

/// Why a card could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The transport failed.
    #[error("{what} on {device}: {source}")]
    Transport {
        /// What was being done.
        what: String,
        /// The transport's description.
        device: String,
        /// The transport error.
        #[source]
        source: TransportError,
    },
    /// The function is not an IBM OpenCAPI persistent-memory card.
    #[error("{device} is {vendor:04x}:{device_id:04x}, not an OpenCAPI persistent-memory card (1014:0625)")]
    NotACard {
        /// The transport's description.
        device: String,
        /// Vendor id read.
        vendor: u16,
        /// Device id read.
        device_id: u16,
    },
    /// Config space reads all ones: the function is gone or frozen.
    #[error("config space of {device} reads all ones: the device is gone or frozen (EEH)")]
    ConfigGone {
        /// The transport's description.
        device: String,
    },
    /// The extended capability list is malformed (a loop or a pointer out of range).
    #[error("the extended capability list of {device} is malformed at {offset:#x}: {why}")]
    BadCapabilityList {
        /// The transport's description.
        device: String,
        /// Where the walk stopped.
        offset: u64,
        /// What was wrong.
        why: &'static str,
    },
    /// No OpenCAPI DVSEC is visible: an old vfio-pci hides them.
    #[error(
        "{device} shows no OpenCAPI DVSEC (extended capability 0x23, vendor 0x1014) in its \
         config space: vfio-pci hides DVSECs on kernels without \"vfio/pci: Add DVSEC PCI \
         Extended Config Capability\" (2022), so the AFU descriptor cannot be read"
    )]
    DvsecHidden {
        /// The transport's description.
        device: String,
    },
    /// One DVSEC the card must have is missing.
    #[error("{device} has no {name} DVSEC ({id:#06x})")]
    MissingDvsec {
        /// The transport's description.
        device: String,
        /// DVSEC name.
        name: &'static str,
        /// DVSEC id.
        id: u16,
    },
    /// The function DVSEC says no AFU is present.
    #[error("{device}: the function DVSEC says no AFU is present (dword {dword:#010x})")]
    NoAfu {
        /// The transport's description.
        device: String,
        /// The dword read.
        dword: u32,
    },
    /// The AFU-information window never set its data-valid bit.
    #[error(
        "{device}: the AFU information window did not return descriptor offset {offset:#x} \
         within {timeout:?} (data-valid bit 31 of DVSEC+0x0C never set)"
    )]
    AfuInfoTimeout {
        /// The transport's description.
        device: String,
        /// Descriptor offset asked for.
        offset: u32,
        /// The bound.
        timeout: Duration,
    },
    /// The AFU descriptor does not decode.
    #[error("{device}: bad AFU descriptor: {source}")]
    BadDescriptor {
        /// The transport's description.
        device: String,
        /// The decode error.
        #[source]
        source: AfuDescriptorError,
    },
    /// The AFU is not the pmem AFU.
    #[error("{device}: AFU 0 is {name:?}, not the persistent-memory AFU \"IBM,SCM\"")]
    WrongAfu {
        /// The transport's description.
        device: String,
        /// The name the descriptor carries.
        name: String,
    },
    /// The global MMIO area does not fit its BAR.
    #[error(
        "{device}: global MMIO {size:#x} bytes at BAR {bar} + {offset:#x} does not fit the \
         BAR ({bar_size:#x} bytes){why}"
    )]
    BadMmioLocation {
        /// The transport's description.
        device: String,
        /// BAR index.
        bar: u8,
        /// Offset in the BAR.
        offset: u64,
        /// Size of the area.
        size: u64,
        /// Size of the BAR.
        bar_size: u64,
        /// Extra explanation ("" or ": ...").
        why: String,
    },
    /// CHI reads all ones: the device is gone, or frozen by EEH on POWER.
    #[error(
        "CHI of {device} reads all ones: the device is gone (surprise removal) or frozen by EEH"
    )]
    Gone {
        /// The transport's description.
        device: String,
    },
    /// The controller is in a fatal state.
    #[error("{device} is in a fatal state: CHI {chi:#x} ({}){}", names.join(" "), log_text(log))]
    Fatal {
        /// The transport's description.
        device: String,
        /// CHI as read.
        chi: u64,
        /// Names of the set CHI bits.
        names: Vec<&'static str>,
        /// The error log, if one could be read.
        log: Vec<ErrorLogEntry>,
    },
    /// CRDY & MA did not both come up in time.
    #[error(
        "{device} did not become ready within {waited:?}: {missing} never set (CHI {chi:#x}: {}){}",
        names.join(" "), log_text(log)
    )]
    NotReady {
        /// The transport's description.
        device: String,
        /// Which bit(s) are missing ("CRDY", "MA", "CRDY and MA").
        missing: &'static str,
        /// CHI at the deadline.
        chi: u64,
        /// Names of the set CHI bits.
        names: Vec<&'static str>,
        /// How long was waited.
        waited: Duration,
        /// The error log, if CHI.ELA was set and it could be read.
        log: Vec<ErrorLogEntry>,
    },
    /// An admin operation failed during bring-up.
    #[error("{what} on {device}: {source}")]
    Admin {
        /// What was being done.
        what: &'static str,
        /// The transport's description.
        device: String,
        /// The admin error.
        #[source]
        source: AdminError,
    },
}

fn log_text(log: &[ErrorLogEntry]) -> String {
    if log.is_empty() {
        return String::new();
    }
    let mut s = format!("; error log ({} entries):", log.len());
    for e in log {
        s.push_str(&format!(
            " [type {:#x} PRC {:#x}]",
            e.log_type, e.program_reference_code
        ));
    }
    s
}

impl DeviceError {
    /// The suggested fix, where there is one.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            DeviceError::DvsecHidden { .. } => {
                "use a newer kernel, or give the global MMIO location yourself \
                 (CardOptions::mmio_location, ocxlpmem-ctl --mmio BAR:OFFSET:SIZE)"
            }
            DeviceError::Gone { .. } | DeviceError::ConfigGone { .. } => {
                "check that the card is present (lspci); on POWER check EEH \
                 (ocxlpmem-ctl eeh) and recover the PE"
            }
            DeviceError::Fatal { .. } => "take a controller dump, then reset the card",
            DeviceError::NotReady { .. } => {
                "read the error log (ocxlpmem-ctl errlog); raise the readiness timeout if the \
                 card is slow"
            }
            DeviceError::NotACard { .. } => "pick function 1 of a 1014:0625 card",
            _ => return None,
        })
    }
}
