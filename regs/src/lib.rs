//! The device interface of IBM's OpenCAPI persistent-memory card as types.
//!
//! Everything here follows `spec/device.md`; section numbers in the docs refer to it.
//! The crate is pure: no I/O, no `unsafe`. Bytes meet the device in exactly one place,
//! the [`Mmio`] trait, whose methods speak little-endian 64-bit words.
#![warn(missing_docs)]

pub mod abi;
pub mod ccap;
pub mod command;
pub mod config;
pub mod indicators;
pub mod mmio;
pub mod offsets;
pub mod payload;

pub use ccap::{Ccap0, Ccap1};
pub use command::{AreaLayout, CommandArea, Opcode, RequestHeader, ResponseHeader, Status};
pub use config::{AfuDescriptor, AfuDescriptorError};
pub use indicators::{Chi, Hci};
pub use mmio::{Mmio, MmioError, VecMmio};
pub use payload::{PayloadHeader, PayloadId};
