//! The VFIO ioctls the driver needs, one safe wrapper per ioctl.
//!
//! Structures come from `vfio-bindings` 0.7.0 (the version `vfio_user` pins, so both speak
//! the same structs); ioctl numbers are computed with nix's macros from
//! `include/uapi/linux/vfio.h` (`_IO(';', 100 + n)`), never copied as constants. Every
//! wrapper returns [`SysError`], which keeps the errno and names the ioctl.
//!
//! * [`caps`]: the region-info capability chain (sparse mmap), parsed from bytes;
//! * [`ioctl`]: the wrappers themselves.

use std::io;

pub mod caps;
pub mod ioctl;

pub use caps::{parse_region_caps, CapChainError, RegionCap};
pub use ioctl::*;

/// A failed VFIO system call.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    /// The ioctl returned an error.
    #[error("{ioctl} ({what}): {source}")]
    Ioctl {
        /// The ioctl's name (`VFIO_GROUP_GET_STATUS`).
        ioctl: &'static str,
        /// What it was applied to ("region 4", "group fd", "container").
        what: String,
        /// The OS error, errno kept.
        #[source]
        source: io::Error,
    },
    /// The kernel's answer could not be used (a malformed capability chain, a size that
    /// does not fit).
    #[error("{ioctl} ({what}): unusable answer: {detail}")]
    BadAnswer {
        /// The ioctl's name.
        ioctl: &'static str,
        /// What it was applied to.
        what: String,
        /// What was wrong.
        detail: String,
    },
}

impl SysError {
    /// The errno of a failed ioctl, if that is what this is.
    pub fn errno(&self) -> Option<i32> {
        match self {
            SysError::Ioctl { source, .. } => source.raw_os_error(),
            SysError::BadAnswer { .. } => None,
        }
    }

    /// The ioctl's name.
    pub fn ioctl(&self) -> &'static str {
        match self {
            SysError::Ioctl { ioctl, .. } | SysError::BadAnswer { ioctl, .. } => ioctl,
        }
    }
}

/// Result of a VFIO system call.
pub type Result<T> = std::result::Result<T, SysError>;
