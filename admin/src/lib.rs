//! The admin mailbox protocol (spec §2) and every admin command (spec §3) of the
//! OpenCAPI persistent-memory card, over any [`ocxlpmem_regs::Mmio`].
//!
//! [`Admin`] discovers the admin and near-storage command areas, sends every command
//! through one send path ([`table`] + `mailbox`, spec §2.4 step by step) and decodes the
//! answers into typed values. [`Monitor`] polls CHI and turns its transitions into
//! [`Event`]s on a channel and an eventfd. Destructive operations take a [`Destructive`]
//! token.
#![warn(missing_docs)]

mod admin;
mod destructive;
mod dump;
pub mod erase;
pub mod errlog;
mod error;
mod fw;
mod mailbox;
mod monitor;
mod options;
pub mod smart;
pub mod stats;
pub mod table;
mod wait;

pub use admin::{Admin, CMD_CAPS_LEN, HCI_HOST_LEVELS};
pub use destructive::Destructive;
pub use dump::DumpProgress;
pub use erase::SecureEraseReport;
pub use errlog::{ErrorLogEntry, HealthLogWait};
pub use error::{AdminError, ProtocolError};
pub use fw::{FwDebugAction, FwDebugRequest};
pub use monitor::{Event, Monitor, MonitorOptions};
pub use options::{AdminOptions, PollStrategy, RetryPolicy};
pub use smart::{Health, HealthState, SmartAttribute};
pub use stats::ControllerStats;

/// The handle is shared between threads (pinned at compile time).
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Admin>();
    assert_send_sync::<Monitor>();
};

#[cfg(test)]
mod fake;
#[cfg(test)]
mod mailbox_tests;
