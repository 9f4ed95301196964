//! A register-level software model of the OpenCAPI persistent-memory card, written from
//! `spec/device.md` (it depends on `ocxlpmem-regs` only, never on the driver).
//!
//! [`SimCard`] is the card: config space, BAR 0 (the global MMIO: a trapped register
//! file, command blocks and data buffers), BAR 4 (the LPC memory, memfd- or file-backed)
//! and a firmware thread that answers the admin and near-storage mailboxes. Tests drive
//! it through [`SimCard::mmio`] and [`SimCard::config_read`]; the driver's `sim`
//! transport and the vfio-user server ([`server`]) present it as a PCI function.
#![warn(missing_docs)]

mod card;
mod cfgspace;
mod clock;
pub mod commands;
pub mod config;
mod counters;
mod errlog;
mod error;
mod faults;
mod firmware;
mod memory;
mod mmio;
mod regfile;
pub mod server;
mod state;

pub use card::{SimCard, SimRegion, REGION_BAR0, REGION_BAR4, REGION_CONFIG};
pub use clock::SimClock;
pub use config::{ClockMode, SimConfig, SimLayout};
pub use counters::SimCounters;
pub use errlog::ErrorLogEntry;
pub use error::SimError;
pub use faults::Fault;
pub use firmware::SPIN as FIRMWARE_SPIN;
pub use mmio::SimMmio;
