//! A register-level software model of the OpenCAPI persistent-memory card, written from
//! `spec/device.md` (it depends on `ocxlpmem-regs` only, never on the driver).
#![warn(missing_docs)]
