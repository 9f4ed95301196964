//! The simulator's typed errors.

use std::io;
use std::path::PathBuf;

/// A refused host access or a card that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A [`crate::SimConfig`] field is out of range.
    #[error("invalid simulator configuration: {field}: {why}")]
    BadConfig {
        /// The field.
        field: &'static str,
        /// What is wrong and what is accepted.
        why: String,
    },
    /// A system call on the card's backing memory failed.
    #[error("{op}{}: {source}", path.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The image file, when there is one.
        path: Option<PathBuf>,
        /// The OS error, errno kept.
        #[source]
        source: io::Error,
    },
    /// The image file exists with a size other than the configured LPC size.
    #[error("LPC image {} is {found} bytes but lpc_size is {expected}; use lpc_size = {found} or another file", path.display())]
    ImageSizeMismatch {
        /// The image file.
        path: PathBuf,
        /// Its size.
        found: u64,
        /// The configured LPC size.
        expected: u64,
    },
    /// The region index does not exist (regions: 0 = BAR0, 4 = BAR4, 7 = config).
    #[error(
        "region {index} does not exist on the simulated card (0 = BAR0, 4 = BAR4, 7 = config)"
    )]
    NoSuchRegion {
        /// The index asked for.
        index: u32,
    },
    /// The access lies (partly) outside the region.
    #[error("access of {len} bytes at {offset:#x} is outside region {region} ({size:#x} bytes)")]
    OutOfBounds {
        /// Region index.
        region: u32,
        /// Offset of the access.
        offset: u64,
        /// Length of the access.
        len: u64,
        /// Size of the region.
        size: u64,
    },
    /// A register access that is not 8 bytes wide and 8-byte aligned (spec §10).
    #[error("register access of {len} bytes at {offset:#x} refused: registers take aligned 8-byte accesses only")]
    Misaligned {
        /// Offset of the access.
        offset: u64,
        /// Length of the access.
        len: u64,
    },
    /// A trapped read touched a poisoned LPC range.
    #[error("LPC memory at {offset:#x} is poisoned (media error)")]
    Poisoned {
        /// First poisoned LPC offset inside the access.
        offset: u64,
    },
}
