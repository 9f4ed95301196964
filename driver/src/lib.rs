//! `ocxlpmem`: a userspace driver for IBM's OpenCAPI persistent-memory cards.
//!
//! Layers, bottom up (see `DESIGN.md` in the project's shared folder):
//! * [`sys`]: the VFIO ioctls, one safe wrapper each;
//! * [`transport`]: "a PCI function I can talk to" (kernel VFIO, vfio-user, the
//!   in-process simulator);
//! * [`device`]: discovery, binding, config space, bring-up and readiness;
//! * [`media`]: where the persistent memory is (the media window);
//! * [`label`] and [`nvdimm`]: the namespace label format and the bus / dimm / region /
//!   namespace model;
//! * [`pmem`]: mapping a namespace and the persistence primitives.
#![warn(missing_docs)]

pub mod device;
pub mod label;
pub mod media;
pub mod nvdimm;
pub mod pmem;
pub mod sys;
pub mod transport;
