//! In-memory label areas: an owned one for tests and tools, and a read-only view over a
//! byte slice (the pure-function entry point for parsing an image).

use std::sync::Mutex;

use super::{check_transfer, Lsa, LsaError};

/// An owned, writable label area in memory.
#[derive(Debug)]
pub struct MemLsa {
    bytes: Mutex<Vec<u8>>,
    max_xfer: u64,
}

impl MemLsa {
    /// A zero-filled area of `size` bytes with no transfer limit.
    pub fn new(size: usize) -> Self {
        Self::from_bytes(vec![0; size])
    }

    /// An area holding `bytes`, with no transfer limit.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self {
            bytes: Mutex::new(bytes),
            max_xfer: u64::MAX,
        }
    }

    /// Limits single transfers to `max_xfer` bytes (papr_scm serves 8, nfit_test 4 KiB).
    pub fn with_max_xfer(mut self, max_xfer: u64) -> Self {
        self.max_xfer = max_xfer.max(1);
        self
    }

    /// A copy of the current contents.
    pub fn snapshot(&self) -> Vec<u8> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // A panic while holding the lock cannot leave the bytes half-updated in a way
        // that matters more than a torn device write, which the format tolerates.
        self.bytes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Lsa for MemLsa {
    fn size(&self) -> u64 {
        self.lock().len() as u64
    }

    fn max_xfer(&self) -> u64 {
        self.max_xfer
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), LsaError> {
        let bytes = self.lock();
        check_transfer(offset, buf.len(), bytes.len() as u64, self.max_xfer)?;
        let start = offset as usize;
        if let Some(src) = bytes.get(start..start + buf.len()) {
            buf.copy_from_slice(src);
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), LsaError> {
        let mut bytes = self.lock();
        check_transfer(offset, data.len(), bytes.len() as u64, self.max_xfer)?;
        let start = offset as usize;
        if let Some(dst) = bytes.get_mut(start..start + data.len()) {
            dst.copy_from_slice(data);
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("memory label area ({} bytes)", self.lock().len())
    }
}

/// A read-only label area over borrowed bytes (a dump, a fuzz input).
#[derive(Debug, Clone, Copy)]
pub struct SliceLsa<'a> {
    bytes: &'a [u8],
}

impl<'a> SliceLsa<'a> {
    /// Views `bytes` as a label area.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }
}

impl Lsa for SliceLsa<'_> {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn max_xfer(&self) -> u64 {
        u64::MAX
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), LsaError> {
        check_transfer(offset, buf.len(), self.size(), u64::MAX)?;
        let start = offset as usize;
        if let Some(src) = self.bytes.get(start..start + buf.len()) {
            buf.copy_from_slice(src);
        }
        Ok(())
    }

    fn write(&self, offset: u64, _data: &[u8]) -> Result<(), LsaError> {
        Err(LsaError::ReadOnly {
            what: self.describe(),
            offset,
        })
    }

    fn describe(&self) -> String {
        format!("label image ({} bytes, read-only)", self.bytes.len())
    }
}
