//! Errors of the pmem mapping.

use std::io;
use std::ops::Range;

use crate::media::file::WindowError;
use crate::media::Granularity;

/// What went wrong in a pmem operation; every variant names the offset involved.
#[derive(Debug, thiserror::Error)]
pub enum PmemError {
    /// The requested bytes are not inside the mapping.
    #[error("range {offset:#x}+{len:#x} is outside the mapping of {map_len:#x} bytes")]
    OutOfRange {
        /// Offset in the mapping.
        offset: u64,
        /// Length asked for.
        len: u64,
        /// Length of the mapping.
        map_len: u64,
    },
    /// The range to map is not inside the window.
    #[error("range {range:?} is outside {window} ({window_len:#x} bytes)")]
    RangeOutsideWindow {
        /// The range asked for.
        range: Range<u64>,
        /// Length of the window.
        window_len: u64,
        /// The window.
        window: String,
    },
    /// The window cannot give the store granularity the caller requires.
    #[error("{window} offers {available:?} granularity but {required:?} is required; use a DAX/devdax window or accept a coarser granularity")]
    GranularityNotSupported {
        /// What the caller required.
        required: Granularity,
        /// What the window offers.
        available: Granularity,
        /// The window.
        window: String,
    },
    /// A read touched a known bad block or hit a machine-check / SIGBUS.
    #[error("poisoned media at mapping offset {offset:#x} (window offset {window_offset:#x}) in {window}")]
    Poisoned {
        /// First bad offset in the mapping.
        offset: u64,
        /// The same byte as a window offset.
        window_offset: u64,
        /// The window.
        window: String,
    },
    /// An offset is not aligned as the operation requires.
    #[error("offset {offset:#x} is not aligned to {alignment} bytes")]
    Misaligned {
        /// The offset.
        offset: u64,
        /// Required alignment.
        alignment: u64,
    },
    /// msync (PAGE granularity persist) or the deep-flush hook failed.
    #[error("{op} of window range {range:?} failed: {source}")]
    Sync {
        /// "msync" or "deep flush".
        op: &'static str,
        /// Window range.
        range: Range<u64>,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Neither `process_vm_readv` nor `/proc/self/mem` can be used, so a read cannot be
    /// made safe against poisoned media.
    #[error("poison-aware read at mapping offset {offset:#x} impossible: process_vm_readv and /proc/self/mem are both refused ({source}); allow one of them (seccomp profile, mounted /proc)")]
    CheckedReadUnavailable {
        /// Offset of the read in the mapping.
        offset: u64,
        /// The OS error of the last attempt.
        #[source]
        source: io::Error,
    },
    /// The media window behind the mapping could not be opened.
    #[error(transparent)]
    Window(#[from] WindowError),
}
