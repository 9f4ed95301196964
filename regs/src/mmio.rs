//! The one place bytes meet the device: 64-bit little-endian register access.
//!
//! Every implementation checks bounds and alignment and returns [`MmioError`] instead of
//! panicking. The value a method returns or takes is the little-endian interpretation of
//! the eight bytes at the offset, whatever the host's byte order, so RAW fields
//! (strings, dump bytes) come back in address order through [`u64::to_le_bytes`].

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// A failed register access.
#[derive(Debug, thiserror::Error)]
pub enum MmioError {
    /// The access lies (partly) outside the mapped area.
    #[error("MMIO access at offset {offset:#x} (+{len} bytes) is outside the {size:#x}-byte area")]
    OutOfBounds {
        /// Offset of the access.
        offset: u64,
        /// Length of the access in bytes.
        len: u64,
        /// Size of the area.
        size: u64,
    },
    /// The access is not aligned as the register file requires.
    #[error("MMIO access at offset {offset:#x} is not {alignment}-byte aligned")]
    Misaligned {
        /// Offset of the access.
        offset: u64,
        /// Required alignment in bytes.
        alignment: u64,
    },
    /// The transport under the mapping failed (a socket, a `pread`, an ioctl).
    #[error("MMIO access at offset {offset:#x} failed: {source}")]
    Io {
        /// Offset of the access.
        offset: u64,
        /// The underlying error, errno kept.
        #[source]
        source: io::Error,
    },
}

/// Checks that an access of `len` bytes at `offset` fits an area of `size` bytes and is
/// aligned to `alignment` (a power of two).
pub fn check_access(offset: u64, len: u64, size: u64, alignment: u64) -> Result<(), MmioError> {
    if alignment > 1 && !offset.is_multiple_of(alignment) {
        return Err(MmioError::Misaligned { offset, alignment });
    }
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(MmioError::OutOfBounds { offset, len, size }),
    }
}

/// A global-MMIO-like area reached with aligned 64-bit little-endian accesses.
///
/// Implementations: a mapped BAR (the driver), trapped region reads and writes (the
/// driver's transports), the simulator's register file, and [`VecMmio`] for tests.
pub trait Mmio: Send + Sync {
    /// Size of the area in bytes; every access must lie inside it.
    fn size(&self) -> u64;

    /// One aligned 64-bit load at `offset`, interpreted little-endian.
    fn read_u64(&self, offset: u64) -> Result<u64, MmioError>;

    /// One aligned 64-bit store of `value` (little-endian) at `offset`.
    fn write_u64(&self, offset: u64, value: u64) -> Result<(), MmioError>;

    /// Copies `buf.len()` RAW bytes from `offset` with 64-bit loads (so a data buffer is
    /// read the way the device expects). `offset` must be 8-byte aligned; a final partial
    /// word is read whole and truncated.
    fn read_bytes(&self, offset: u64, buf: &mut [u8]) -> Result<(), MmioError> {
        let len = buf.len() as u64;
        check_access(offset, len.div_ceil(8) * 8, self.size(), 8)?;
        for (i, chunk) in buf.chunks_mut(8).enumerate() {
            let word = self.read_u64(offset + 8 * i as u64)?.to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Ok(())
    }

    /// Copies `data` RAW to `offset` with 64-bit stores; a final partial word is padded
    /// with zeros. `offset` must be 8-byte aligned.
    fn write_bytes(&self, offset: u64, data: &[u8]) -> Result<(), MmioError> {
        let len = data.len() as u64;
        check_access(offset, len.div_ceil(8) * 8, self.size(), 8)?;
        for (i, chunk) in data.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(offset + 8 * i as u64, u64::from_le_bytes(word))?;
        }
        Ok(())
    }
}

impl<T: Mmio + ?Sized> Mmio for &T {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_u64(&self, offset: u64) -> Result<u64, MmioError> {
        (**self).read_u64(offset)
    }
    fn write_u64(&self, offset: u64, value: u64) -> Result<(), MmioError> {
        (**self).write_u64(offset, value)
    }
}

impl<T: Mmio + ?Sized> Mmio for std::sync::Arc<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_u64(&self, offset: u64) -> Result<u64, MmioError> {
        (**self).read_u64(offset)
    }
    fn write_u64(&self, offset: u64, value: u64) -> Result<(), MmioError> {
        (**self).write_u64(offset, value)
    }
}

impl<T: Mmio + ?Sized> Mmio for Box<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_u64(&self, offset: u64) -> Result<u64, MmioError> {
        (**self).read_u64(offset)
    }
    fn write_u64(&self, offset: u64, value: u64) -> Result<(), MmioError> {
        (**self).write_u64(offset, value)
    }
}

/// Plain memory with [`Mmio`] semantics: a stand-in for a BAR in unit tests. It has no
/// register behaviour (W1 registers are ordinary words here).
#[derive(Debug)]
pub struct VecMmio {
    words: Vec<AtomicU64>,
}

impl VecMmio {
    /// A zeroed area of `size` bytes, rounded up to whole words.
    pub fn new(size: u64) -> Self {
        let n = usize::try_from(size.div_ceil(8)).unwrap_or(usize::MAX);
        Self {
            words: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn index(&self, offset: u64) -> Result<usize, MmioError> {
        check_access(offset, 8, self.size(), 8)?;
        // In bounds, so it fits usize.
        Ok((offset / 8) as usize)
    }
}

impl Mmio for VecMmio {
    fn size(&self) -> u64 {
        self.words.len() as u64 * 8
    }

    fn read_u64(&self, offset: u64) -> Result<u64, MmioError> {
        let i = self.index(offset)?;
        Ok(self.words[i].load(Ordering::SeqCst))
    }

    fn write_u64(&self, offset: u64, value: u64) -> Result<(), MmioError> {
        let i = self.index(offset)?;
        self.words[i].store(value, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_bounds_is_a_typed_error_not_a_panic() {
        let m = VecMmio::new(0x100);
        assert!(matches!(
            m.read_u64(0x100),
            Err(MmioError::OutOfBounds { offset: 0x100, .. })
        ));
        assert!(matches!(
            m.write_u64(u64::MAX - 7, 1),
            Err(MmioError::OutOfBounds { .. })
        ));
        assert!(matches!(
            m.read_u64(u64::MAX),
            Err(MmioError::Misaligned { .. })
        ));
    }

    #[test]
    fn misaligned_is_a_typed_error() {
        let m = VecMmio::new(0x100);
        assert!(matches!(
            m.read_u64(4),
            Err(MmioError::Misaligned {
                offset: 4,
                alignment: 8
            })
        ));
        assert!(matches!(
            m.read_bytes(12, &mut [0; 8]),
            Err(MmioError::Misaligned { .. })
        ));
    }

    #[test]
    fn raw_bytes_keep_address_order() {
        let m = VecMmio::new(0x40);
        m.write_bytes(8, b"SIM 1.0 tail").unwrap();
        // Little-endian value of the first word is the bytes in address order.
        assert_eq!(m.read_u64(8).unwrap(), u64::from_le_bytes(*b"SIM 1.0 "));
        let mut back = [0u8; 12];
        m.read_bytes(8, &mut back).unwrap();
        assert_eq!(&back, b"SIM 1.0 tail");
        // The partial word was padded with zeros.
        assert_eq!(
            m.read_u64(16).unwrap(),
            u64::from_le_bytes(*b"tail\0\0\0\0")
        );
    }

    #[test]
    fn bulk_copy_is_bounds_checked_as_a_whole() {
        let m = VecMmio::new(0x10);
        assert!(matches!(
            m.write_bytes(8, &[1; 9]),
            Err(MmioError::OutOfBounds { .. })
        ));
        // Nothing was written before the check failed.
        assert_eq!(m.read_u64(8).unwrap(), 0);
    }
}
