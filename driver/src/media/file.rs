//! The `file` media window backend: a plain file mapped shared (spec §8, "tests and
//! development").
//!
//! Stores land in the page cache; only `msync` makes them durable, so the window's
//! granularity is [`Granularity::Page`]. The owned mapping type and the size checks here
//! are shared with the `devdax` and `devmem` backends.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use super::{Granularity, MediaKind, MediaWindow, LABEL_AREA_SIZE};

/// Why a file-backed (or device-backed) window could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// Opening or inspecting the backing object failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file or device.
        path: PathBuf,
        /// What was being done ("open", "stat", "mmap", ...).
        op: &'static str,
        /// The OS error (errno).
        #[source]
        source: io::Error,
    },
    /// The backing object's size is not the card's LPC size.
    #[error(
        "{path}: size is {actual} bytes but the window must be lpc_size = {expected} bytes; {fix}"
    )]
    SizeMismatch {
        /// The file or device.
        path: PathBuf,
        /// lpc_size asked for.
        expected: u64,
        /// What the object has.
        actual: u64,
        /// How to fix it.
        fix: &'static str,
    },
    /// lpc_size cannot hold the 16 MiB label area, or does not fit this address space.
    #[error("lpc_size {lpc_size:#x} is invalid: {why}")]
    BadLpcSize {
        /// The size given.
        lpc_size: u64,
        /// What is wrong with it.
        why: &'static str,
    },
    /// An address or size is not aligned as the mapping requires.
    #[error("{what} {value:#x} is not aligned to {alignment:#x} bytes")]
    Unaligned {
        /// Which value ("physical address", "lpc_size", ...).
        what: &'static str,
        /// The value.
        value: u64,
        /// The required alignment.
        alignment: u64,
    },
    /// The object cannot be used as this kind of window.
    #[error("{path}: {why}")]
    Unsupported {
        /// The file or device.
        path: PathBuf,
        /// Why, and what to use instead.
        why: String,
    },
    /// Opening or mapping the object was refused.
    #[error("{path}: {op}: permission denied; {hint}")]
    PermissionDenied {
        /// The file or device.
        path: PathBuf,
        /// What was refused ("open", "mmap").
        op: &'static str,
        /// What to do about it.
        hint: String,
    },
    /// The asked-for range does not lie inside the object.
    #[error("{path}: range {offset:#x}+{len:#x} is outside its {size:#x} bytes")]
    OutOfRange {
        /// The file or device.
        path: PathBuf,
        /// Start of the range.
        offset: u64,
        /// Length of the range.
        len: u64,
        /// Size of the object.
        size: u64,
    },
    /// The transport under a BAR window failed.
    #[error(transparent)]
    Transport(#[from] crate::transport::TransportError),
}

/// The system page size (msync and mmap granularity).
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// Checks that lpc_size can be a media window: it is larger than the label area (a window
/// of only the label area has no room for a namespace), is page aligned and fits a
/// `usize`. Returns it as `usize`.
pub(crate) fn check_lpc_size(lpc_size: u64) -> Result<usize, WindowError> {
    if lpc_size <= LABEL_AREA_SIZE {
        return Err(WindowError::BadLpcSize {
            lpc_size,
            why: "not larger than the 16 MiB label area at the start of every window",
        });
    }
    let page = page_size();
    if !lpc_size.is_multiple_of(page) {
        return Err(WindowError::Unaligned {
            what: "lpc_size",
            value: lpc_size,
            alignment: page,
        });
    }
    usize::try_from(lpc_size).map_err(|_| WindowError::BadLpcSize {
        lpc_size,
        why: "larger than this process's address space",
    })
}

/// An owned shared mapping; `Drop` unmaps it.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; the raw pointer is only a
// handle to it, so moving or sharing the handle between threads is sound (concurrent stores
// to the same bytes are the users' business, as the MediaWindow contract says).
unsafe impl Send for Mapping {}
// SAFETY: see the Send impl; &Mapping hands out only the pointer and length.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` at `offset`, readable and writable, with `flags`
    /// (`MAP_SHARED` or `MAP_SHARED_VALIDATE | MAP_SYNC`).
    pub(crate) fn new(
        fd: &impl AsRawFd,
        len: usize,
        offset: u64,
        flags: libc::c_int,
    ) -> io::Result<Mapping> {
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL) cannot alias any Rust
        // object; the fd is valid for the duration of the call; errors are checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd.as_raw_fd(),
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Mapping { ptr, len })
    }

    /// Start of the mapping.
    pub(crate) fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// `msync(MS_SYNC)` of the pages covering `range` (offsets in the mapping).
    pub(crate) fn msync(&self, range: Range<u64>) -> io::Result<()> {
        let len = self.len as u64;
        super::check_sync_range(&range, len)?;
        if range.is_empty() {
            return Ok(());
        }
        let page = page_size();
        let start = range.start - range.start % page;
        let end = range.end.div_ceil(page).saturating_mul(page).min(len);
        let (start, n) = (start as usize, (end - start) as usize);
        // SAFETY: [start, start + n) lies inside the live mapping (checked above) and
        // starts on a page boundary as msync requires.
        let rc = unsafe { libc::msync(self.ptr.as_ptr().add(start).cast(), n, libc::MS_SYNC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Mapping {
    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Flushes the CPU cache lines covering `range` (offsets in the mapping) and waits for
    /// them to drain ([`crate::pmem::persist`]): the persistence step of cache-line
    /// granular windows.
    pub(crate) fn persist(&self, range: Range<u64>) -> io::Result<()> {
        super::check_sync_range(&range, self.len as u64)?;
        let (start, n) = (range.start as usize, (range.end - range.start) as usize);
        // SAFETY: [start, start + n) lies inside the live mapping (checked above).
        unsafe { crate::pmem::persist(self.ptr.as_ptr().add(start), n) };
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe a mapping this value created and nobody else unmaps;
        // after drop no handle to it remains.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Sorts and merges byte ranges, dropping empty ones and clipping them to `len`.
pub(crate) fn normalize_ranges(mut ranges: Vec<Range<u64>>, len: u64) -> Vec<Range<u64>> {
    ranges.retain(|r| r.start < r.end && r.start < len);
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        let r = r.start..r.end.min(len);
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

pub(crate) fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> WindowError {
    let path = path.to_path_buf();
    move |source| WindowError::Io { path, op, source }
}

/// A plain file mapped shared: PAGE granularity, persistence through `msync`.
#[derive(Debug)]
pub struct FileWindow {
    path: PathBuf,
    map: Mapping,
    len: u64,
    bad: Vec<Range<u64>>,
    _file: File,
}

impl FileWindow {
    /// Opens an existing file whose length must be exactly `lpc_size`.
    pub fn open(path: impl AsRef<Path>, lpc_size: u64) -> Result<FileWindow, WindowError> {
        let path = path.as_ref();
        let n = check_lpc_size(lpc_size)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err(path, "open"))?;
        let actual = file.metadata().map_err(io_err(path, "stat"))?.len();
        if actual != lpc_size {
            return Err(WindowError::SizeMismatch {
                path: path.to_path_buf(),
                expected: lpc_size,
                actual,
                fix: "resize it (`truncate -s <lpc_size> FILE`) or use FileWindow::create",
            });
        }
        Self::map(path, file, n)
    }

    /// Creates (or resizes) the file to exactly `lpc_size` bytes (sparse) and maps it.
    pub fn create(path: impl AsRef<Path>, lpc_size: u64) -> Result<FileWindow, WindowError> {
        let path = path.as_ref();
        let n = check_lpc_size(lpc_size)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err(path, "open"))?;
        file.set_len(lpc_size).map_err(io_err(path, "ftruncate"))?;
        Self::map(path, file, n)
    }

    /// Opens or creates a file of exactly `len` bytes with no label area (applications
    /// mapping a plain file with `PmemMap::from_file`, benchmarks): `len` must be a
    /// non-zero multiple of the page size. A missing or empty file is created with that
    /// size (sparse); an existing file of another size is refused, never truncated.
    pub fn open_or_create_unlabeled(
        path: impl AsRef<Path>,
        len: u64,
    ) -> Result<FileWindow, WindowError> {
        let path = path.as_ref();
        let page = page_size();
        if len == 0 {
            return Err(WindowError::BadLpcSize {
                lpc_size: len,
                why: "a mapping needs at least one page",
            });
        }
        if !len.is_multiple_of(page) {
            return Err(WindowError::Unaligned {
                what: "file length",
                value: len,
                alignment: page,
            });
        }
        let n = usize::try_from(len).map_err(|_| WindowError::BadLpcSize {
            lpc_size: len,
            why: "larger than this process's address space",
        })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err(path, "open"))?;
        let actual = file.metadata().map_err(io_err(path, "stat"))?.len();
        if actual == 0 {
            file.set_len(len).map_err(io_err(path, "ftruncate"))?;
        } else if actual != len {
            return Err(WindowError::SizeMismatch {
                path: path.to_path_buf(),
                expected: len,
                actual,
                fix: "open it with its own length, or remove it to start afresh",
            });
        }
        Self::map(path, file, n)
    }

    fn map(path: &Path, file: File, n: usize) -> Result<FileWindow, WindowError> {
        let meta = file.metadata().map_err(io_err(path, "stat"))?;
        if !meta.is_file() {
            return Err(WindowError::Unsupported {
                path: path.to_path_buf(),
                why: "not a regular file; use DaxWindow::open_device for a device-dax \
                      device or DevMemWindow for /dev/mem"
                    .into(),
            });
        }
        let map = Mapping::new(&file, n, 0, libc::MAP_SHARED).map_err(io_err(path, "mmap"))?;
        Ok(FileWindow {
            path: path.to_path_buf(),
            map,
            len: n as u64,
            bad: Vec::new(),
            _file: file,
        })
    }

    /// Declares known bad byte ranges (for tests, or when the platform reports bad blocks
    /// elsewhere); they are sorted, merged and clipped to the window.
    pub fn with_bad_ranges(mut self, ranges: Vec<Range<u64>>) -> FileWindow {
        self.bad = normalize_ranges(ranges, self.len);
        self
    }

    /// The backing file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl MediaWindow for FileWindow {
    fn kind(&self) -> MediaKind {
        MediaKind::File
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn base(&self) -> NonNull<u8> {
        self.map.ptr()
    }
    fn granularity(&self) -> Granularity {
        Granularity::Page
    }
    fn sync(&self, range: Range<u64>) -> io::Result<()> {
        self.map.msync(range)
    }
    fn bad_ranges(&self) -> Vec<Range<u64>> {
        self.bad.clone()
    }
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = LABEL_AREA_SIZE + (4 << 20);

    #[test]
    fn create_maps_lpc_size_bytes_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("media");
        let w = FileWindow::create(&p, SIZE).unwrap();
        assert_eq!(w.len(), SIZE);
        assert_eq!(w.kind(), MediaKind::File);
        assert_eq!(w.granularity(), Granularity::Page);
        // SAFETY: offset LABEL_AREA_SIZE is inside the SIZE-byte mapping.
        unsafe { w.base().as_ptr().add(LABEL_AREA_SIZE as usize).write(0x5a) };
        w.sync(LABEL_AREA_SIZE..LABEL_AREA_SIZE + 1).unwrap();
        drop(w);
        let w = FileWindow::open(&p, SIZE).unwrap();
        // SAFETY: as above.
        let b = unsafe { w.base().as_ptr().add(LABEL_AREA_SIZE as usize).read() };
        assert_eq!(b, 0x5a);
    }

    #[test]
    fn open_with_wrong_size_names_both_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("media");
        std::fs::File::create(&p)
            .unwrap()
            .set_len(SIZE - 4096)
            .unwrap();
        let e = FileWindow::open(&p, SIZE).unwrap_err();
        assert!(
            matches!(e, WindowError::SizeMismatch { expected: SIZE, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("truncate"), "{e}");
    }

    #[test]
    fn lpc_size_smaller_than_label_area_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let e = FileWindow::create(dir.path().join("m"), 1 << 20).unwrap_err();
        assert!(matches!(e, WindowError::BadLpcSize { .. }), "{e}");
        let e = FileWindow::create(dir.path().join("m"), LABEL_AREA_SIZE).unwrap_err();
        assert!(matches!(e, WindowError::BadLpcSize { .. }), "{e}");
        let e = FileWindow::create(dir.path().join("m"), SIZE + 1).unwrap_err();
        assert!(matches!(e, WindowError::Unaligned { .. }), "{e}");
    }

    #[test]
    fn missing_file_error_names_path_and_op() {
        let e = FileWindow::open("/nonexistent/ocxlpmem-media", SIZE).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("/nonexistent/ocxlpmem-media") && s.contains("open"),
            "{s}"
        );
    }

    #[test]
    fn sync_rejects_ranges_outside_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let w = FileWindow::create(dir.path().join("m"), SIZE).unwrap();
        assert!(w.sync(SIZE - 1..SIZE + 1).is_err());
        w.sync(0..SIZE).unwrap();
    }

    #[test]
    fn unlabeled_file_is_created_at_any_page_multiple_and_never_resized() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app");
        let two = 2 * page_size();
        let w = FileWindow::open_or_create_unlabeled(&p, two).unwrap();
        assert_eq!(w.len(), two);
        drop(w);
        assert_eq!(
            FileWindow::open_or_create_unlabeled(&p, two).unwrap().len(),
            two
        );
        let e = FileWindow::open_or_create_unlabeled(&p, 2 * two).unwrap_err();
        assert!(
            matches!(e, WindowError::SizeMismatch { actual, .. } if actual == two),
            "{e}"
        );
        assert_eq!(std::fs::metadata(&p).unwrap().len(), two);
        let e = FileWindow::open_or_create_unlabeled(dir.path().join("b"), 100).unwrap_err();
        assert!(matches!(e, WindowError::Unaligned { .. }), "{e}");
    }

    #[test]
    fn bad_ranges_are_sorted_merged_and_clipped() {
        let r = normalize_ranges(vec![10..20, 0..5, 15..30, 40..40, 90..200], 100);
        assert_eq!(r, vec![0..5, 10..30, 90..100]);
    }
}
