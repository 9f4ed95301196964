//! Backing memory of the card: the command-area memory of BAR 0 (a memfd mapped into
//! the model) and the LPC memory of BAR 4 (a memfd or an image file, reached with
//! pread/pwrite so the model itself never maps it).
//!
//! All `unsafe` of the crate lives in [`Bar0Memory`]'s accessors. The memory may be
//! mapped by clients too (sparse mmap areas), so every access is atomic: a concurrent
//! writer elsewhere is hardware-like behaviour, never undefined behaviour here.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use memmap2::{MmapOptions, MmapRaw};
use nix::fcntl::{fallocate, FallocateFlags};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

use crate::error::SimError;

fn io(op: &'static str, path: Option<&Path>, source: std::io::Error) -> SimError {
    SimError::Io {
        op,
        path: path.map(Path::to_path_buf),
        source,
    }
}

fn memfd(name: &std::ffi::CStr, size: u64) -> Result<File, SimError> {
    let fd = memfd_create(name, MemFdCreateFlag::MFD_CLOEXEC)
        .map_err(|e| io("memfd_create", None, e.into()))?;
    let file = File::from(fd);
    file.set_len(size)
        .map_err(|e| io("ftruncate of the memfd", None, e))?;
    Ok(file)
}

/// BAR 0's memory: command blocks and data buffers. Registers are not stored here.
#[derive(Debug)]
pub struct Bar0Memory {
    file: File,
    map: MmapRaw,
    len: u64,
}

impl Bar0Memory {
    /// A zeroed memfd of `len` bytes (a multiple of 8), mapped shared.
    pub fn new(len: u64) -> Result<Self, SimError> {
        let file = memfd(c"ocxlpmem-sim-bar0", len)?;
        let ulen = usize::try_from(len).map_err(|_| SimError::BadConfig {
            field: "layout",
            why: "BAR 0 does not fit the address space".into(),
        })?;
        let map = MmapOptions::new()
            .len(ulen)
            .map_raw(&file)
            .map_err(|e| io("mmap of BAR 0 memory", None, e))?;
        Ok(Bar0Memory { file, map, len })
    }

    /// The memfd, for clients that map the sparse areas.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    fn word(&self, offset: u64) -> Option<&AtomicU64> {
        if !offset.is_multiple_of(8) || offset.checked_add(8)? > self.len {
            return None;
        }
        // SAFETY: offset + 8 <= len, the mapping is len bytes long, page aligned (so the
        // pointer is 8-byte aligned as offset is), and lives as long as &self. Other
        // mappings of the memfd only ever see atomic or hardware-like accesses from here.
        Some(unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().add(offset as usize).cast()) })
    }

    fn byte(&self, offset: u64) -> Option<&AtomicU8> {
        if offset >= self.len {
            return None;
        }
        // SAFETY: offset < len, inside the live mapping; AtomicU8 needs no alignment.
        Some(unsafe { AtomicU8::from_ptr(self.map.as_mut_ptr().add(offset as usize)) })
    }

    /// The little-endian word at `offset` (0 when out of range or misaligned).
    pub fn read_u64(&self, offset: u64) -> u64 {
        self.word(offset)
            .map(|w| u64::from_le(w.load(Ordering::Acquire)))
            .unwrap_or(0)
    }

    /// Stores a little-endian word at `offset` (ignored when out of range or misaligned).
    pub fn write_u64(&self, offset: u64, value: u64) {
        if let Some(w) = self.word(offset) {
            w.store(value.to_le(), Ordering::Release);
        }
    }

    /// Copies bytes out; bytes beyond the end read 0.
    pub fn read_bytes(&self, offset: u64, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = offset
                .checked_add(i as u64)
                .and_then(|o| self.byte(o))
                .map(|a| a.load(Ordering::Acquire))
                .unwrap_or(0);
        }
    }

    /// Copies bytes in; bytes beyond the end are dropped.
    pub fn write_bytes(&self, offset: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            if let Some(a) = offset.checked_add(i as u64).and_then(|o| self.byte(o)) {
                a.store(*b, Ordering::Release);
            }
        }
    }
}

/// The LPC memory (BAR 4): a memfd or an image file of exactly `size` bytes.
#[derive(Debug)]
pub struct LpcMemory {
    file: File,
    size: u64,
}

impl LpcMemory {
    /// An anonymous zeroed memfd.
    pub fn anonymous(size: u64) -> Result<Self, SimError> {
        Ok(LpcMemory {
            file: memfd(c"ocxlpmem-sim-lpc", size)?,
            size,
        })
    }

    /// The image file at `path`: created (zeroed) when absent or empty; an existing
    /// file of another size is refused, never truncated.
    pub fn image(path: &Path, size: u64) -> Result<Self, SimError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io("opening the LPC image", Some(path), e))?;
        let found = file
            .metadata()
            .map_err(|e| io("reading the LPC image's size", Some(path), e))?
            .len();
        if found == 0 {
            file.set_len(size)
                .map_err(|e| io("sizing the LPC image", Some(path), e))?;
        } else if found != size {
            return Err(SimError::ImageSizeMismatch {
                path: path.to_path_buf(),
                found,
                expected: size,
            });
        }
        Ok(LpcMemory { file, size })
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The descriptor to mmap (offset 0 = LPC offset 0).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    fn check(&self, offset: u64, len: usize) -> Result<(), SimError> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(SimError::OutOfBounds {
                region: 4,
                offset,
                len: len as u64,
                size: self.size,
            }),
        }
    }

    /// Reads `buf.len()` bytes at `offset` (bounds-checked).
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), SimError> {
        self.check(offset, buf.len())?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| io("reading LPC memory", None, e))
    }

    /// Writes `data` at `offset` (bounds-checked).
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), SimError> {
        self.check(offset, data.len())?;
        self.file
            .write_all_at(data, offset)
            .map_err(|e| io("writing LPC memory", None, e))
    }

    /// Zeroes all of it: punches a hole (mappings see zeros at once); where the file
    /// system cannot, writes zeros.
    pub fn erase(&self) -> Result<(), SimError> {
        let punched = fallocate(
            self.file.as_raw_fd(),
            FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
            0,
            i64::try_from(self.size).unwrap_or(i64::MAX),
        );
        if punched.is_ok() {
            return Ok(());
        }
        let zeros = vec![0u8; 1 << 20];
        let mut off = 0;
        while off < self.size {
            let n = (self.size - off).min(zeros.len() as u64) as usize;
            self.write(off, &zeros[..n])?;
            off += n as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar0_memory_words_and_bytes_are_bounded() {
        let m = Bar0Memory::new(0x1000).unwrap();
        m.write_u64(8, 0x1122_3344_5566_7788);
        assert_eq!(m.read_u64(8), 0x1122_3344_5566_7788);
        let mut b = [0u8; 3];
        m.read_bytes(8, &mut b);
        assert_eq!(b, [0x88, 0x77, 0x66]);
        // Out of range and misaligned accesses are harmless.
        m.write_u64(0x1000, 1);
        m.write_u64(3, 1);
        assert_eq!(m.read_u64(0x1000), 0);
        assert_eq!(m.read_u64(u64::MAX - 7), 0);
        m.write_bytes(u64::MAX, &[1, 2]);
    }

    #[test]
    fn lpc_memory_refuses_out_of_range_and_erases() {
        let l = LpcMemory::anonymous(1 << 20).unwrap();
        l.write(100, b"abc").unwrap();
        let mut b = [0u8; 3];
        l.read(100, &mut b).unwrap();
        assert_eq!(&b, b"abc");
        assert!(matches!(
            l.read(u64::MAX, &mut b),
            Err(SimError::OutOfBounds { .. })
        ));
        assert!(l.write((1 << 20) - 2, b"abc").is_err());
        l.erase().unwrap();
        l.read(100, &mut b).unwrap();
        assert_eq!(b, [0; 3]);
    }
}
