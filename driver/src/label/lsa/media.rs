//! The card's label area: the first 16 MiB of a media window (spec device.md §6).

use std::ops::Range;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use super::{check_transfer, Lsa, LsaError};
use crate::media::{MediaWindow, LABEL_AREA_SIZE};

/// The label area at the start of a media window: `min(16 MiB, window length)` bytes.
///
/// Reads and writes copy through the window's base pointer; every write is followed by a
/// fence and the window's `sync` of the written range, so a write has left the CPU's
/// store buffers and (for page-granular windows) the page cache when it returns.
#[derive(Debug, Clone)]
pub struct MediaLsa {
    window: Arc<dyn MediaWindow>,
    size: u64,
}

impl MediaLsa {
    /// The label area of `window`.
    pub fn new(window: Arc<dyn MediaWindow>) -> Self {
        let size = window.len().min(LABEL_AREA_SIZE);
        Self { window, size }
    }

    /// The window this area lives in.
    pub fn window(&self) -> &Arc<dyn MediaWindow> {
        &self.window
    }

    fn range(offset: u64, len: usize) -> Range<u64> {
        offset..offset + len as u64
    }
}

impl Lsa for MediaLsa {
    fn size(&self) -> u64 {
        self.size
    }

    fn max_xfer(&self) -> u64 {
        // The ocxl-pmem kernel driver served PAGE_SIZE; a mapping has no real limit, but
        // page-sized transfers keep each sync small.
        64 << 10
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), LsaError> {
        check_transfer(offset, buf.len(), self.size, self.max_xfer())?;
        // SAFETY: check_transfer proved [offset, offset + len) lies inside the first
        // `size` <= window.len() bytes of the mapping, which stays mapped while
        // `self.window` lives; `buf` is a distinct Rust allocation, so no overlap.
        unsafe {
            let src = self.window.base().as_ptr().add(offset as usize);
            std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len());
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), LsaError> {
        check_transfer(offset, data.len(), self.size, self.max_xfer())?;
        // SAFETY: as in `read`: the destination range is inside the live mapping and
        // does not overlap `data`. Concurrent writers are excluded by the caller (the
        // Dimm's label lock), as the trait documents.
        unsafe {
            let dst = self.window.base().as_ptr().add(offset as usize);
            std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len());
        }
        fence(Ordering::SeqCst);
        self.window
            .sync(Self::range(offset, data.len()))
            .map_err(|source| LsaError::Io {
                op: "sync",
                offset,
                what: self.describe(),
                source,
            })
    }

    fn describe(&self) -> String {
        format!("label area of {}", self.window.describe())
    }
}
