//! The label storage area (LSA) access trait and its backends (spec labels.md, "How a
//! provider serves the label area").
//!
//! The trait is exactly what every provider offers: a size, a largest transfer, and reads
//! and writes at an offset. Chunking by `max_xfer` lives above it ([`read_exact`],
//! [`write_all`]) so the label code runs unchanged over the card's media window, a file,
//! memory, or a kernel nmem device (GET/SET_CONFIG_DATA).

use std::io;

mod file;
mod media;
mod mem;
mod recording;

pub use file::FileLsa;
pub use media::MediaLsa;
pub use mem::{MemLsa, SliceLsa};
pub use recording::{LsaOp, RecordingLsa};

/// Why a label-area transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum LsaError {
    /// The transfer reaches past the end of the label area.
    #[error("label area transfer [{offset:#x}, +{len:#x}) is outside the {size:#x}-byte area")]
    OutOfBounds {
        /// Start of the transfer.
        offset: u64,
        /// Length of the transfer.
        len: u64,
        /// Size of the label area.
        size: u64,
    },
    /// One transfer is longer than the backend's `max_xfer`.
    #[error("label area transfer of {len} bytes at {offset:#x} exceeds max_xfer {max_xfer}; use lsa::read_exact/write_all, which chunk")]
    TooLarge {
        /// Start of the transfer.
        offset: u64,
        /// Length asked for.
        len: u64,
        /// The backend's limit.
        max_xfer: u64,
    },
    /// The backend does not accept writes.
    #[error("label area {what} is read-only (write at {offset:#x})")]
    ReadOnly {
        /// Which backend.
        what: String,
        /// Where the write was aimed.
        offset: u64,
    },
    /// An I/O error from the backing object.
    #[error("label area {op} at {offset:#x} on {what}: {source}")]
    Io {
        /// "read", "write" or "sync".
        op: &'static str,
        /// Offset of the failed transfer.
        offset: u64,
        /// Which backend (path, window).
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The device refused the transfer (a status, a security lock, an injected fault).
    #[error("label area {op} at {offset:#x} refused by {what}: {reason}")]
    Device {
        /// "read" or "write".
        op: &'static str,
        /// Offset of the failed transfer.
        offset: u64,
        /// Which backend.
        what: String,
        /// What the device said.
        reason: String,
    },
}

/// A label storage area: `size()` bytes, transfers of at most `max_xfer()` bytes.
///
/// Object safe, shared between threads; implementations use interior mutability. A write
/// returns once the bytes are durable as far as the backend can make them (a media window
/// syncs the range, a file relies on the caller's `sync`).
pub trait Lsa: Send + Sync + std::fmt::Debug {
    /// Size of the label area in bytes.
    fn size(&self) -> u64;

    /// Largest single transfer in bytes (at least 1).
    fn max_xfer(&self) -> u64;

    /// Reads `buf.len()` bytes at `offset` (one transfer, at most `max_xfer`).
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), LsaError>;

    /// Writes `data` at `offset` (one transfer, at most `max_xfer`).
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), LsaError>;

    /// Human description for messages.
    fn describe(&self) -> String;
}

/// Checks that `[offset, offset + len)` lies inside an area of `size` bytes and that the
/// transfer respects `max_xfer`; the shared precondition of every backend.
pub fn check_transfer(offset: u64, len: usize, size: u64, max_xfer: u64) -> Result<(), LsaError> {
    let len = u64::try_from(len).unwrap_or(u64::MAX);
    let end = offset.checked_add(len);
    if end.is_none_or(|end| end > size) {
        return Err(LsaError::OutOfBounds { offset, len, size });
    }
    if len > max_xfer {
        return Err(LsaError::TooLarge {
            offset,
            len,
            max_xfer,
        });
    }
    Ok(())
}

/// The chunk size used for an LSA: `max_xfer`, at least 1, at most what fits a `usize`.
fn chunk_len(lsa: &dyn Lsa) -> usize {
    usize::try_from(lsa.max_xfer().max(1)).unwrap_or(usize::MAX)
}

/// Reads `buf.len()` bytes at `offset`, in transfers of at most `max_xfer` bytes.
pub fn read_exact(lsa: &dyn Lsa, offset: u64, buf: &mut [u8]) -> Result<(), LsaError> {
    // The bounds of the whole transfer; chunking below keeps each part under max_xfer.
    check_transfer(offset, buf.len(), lsa.size(), u64::MAX)?;
    let mut at = offset;
    for chunk in buf.chunks_mut(chunk_len(lsa)) {
        lsa.read(at, chunk)?;
        at += chunk.len() as u64;
    }
    Ok(())
}

/// Writes `data` at `offset`, in transfers of at most `max_xfer` bytes.
///
/// Not atomic across chunks (no provider is); the index protocol above makes a torn
/// write harmless.
pub fn write_all(lsa: &dyn Lsa, offset: u64, data: &[u8]) -> Result<(), LsaError> {
    check_transfer(offset, data.len(), lsa.size(), u64::MAX)?;
    let mut at = offset;
    for chunk in data.chunks(chunk_len(lsa)) {
        lsa.write(at, chunk)?;
        at += chunk.len() as u64;
    }
    Ok(())
}

/// Reads the whole label area into memory (chunked).
pub fn read_all(lsa: &dyn Lsa) -> Result<Vec<u8>, LsaError> {
    let size = usize::try_from(lsa.size()).map_err(|_| LsaError::OutOfBounds {
        offset: 0,
        len: lsa.size(),
        size: lsa.size(),
    })?;
    let mut buf = vec![0u8; size];
    read_exact(lsa, 0, &mut buf)?;
    Ok(buf)
}
