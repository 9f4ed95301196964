//! Discovery (sysfs) and binding to vfio-pci, then bring-up of a card behind a transport: config space (DVSECs, the AFU descriptor through
//! the AFU-information window, the serial number), the bounds-checked global MMIO area,
//! CCAP/FWVER, the readiness wait, fatal-state and device-gone detection, and recovery of
//! what a previous owner left behind (spec §1.4, §7, §9).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use ocxlpmem::device::{Card, CardOptions};
//! use ocxlpmem::transport::vfio::VfioTransport;
//!
//! let transport = Arc::new(VfioTransport::open("0000:01:00.1")?);
//! let card = Card::open(transport, &CardOptions::default())?;
//! println!("serial {:#x}, firmware {}", card.info().serial, card.info().fw_version);
//! card.admin().heartbeat()?;
//! # Ok(()) }
//! ```

pub mod bind;
mod card;
pub mod config;
pub mod discovery;
mod error;
pub mod mmio;
pub mod ready;

pub use card::{Card, CardInfo, CardOptions, Recovery, SerialSource, DEFAULT_READY_BUDGET};
pub use error::DeviceError;
pub use mmio::{GlobalMmio, MmioLocation};

#[cfg(all(test, feature = "sim"))]
mod tests;
