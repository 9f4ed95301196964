//! The `devdax` media window backend: a device-dax character device (`/dev/daxX.Y`) or a
//! file on a DAX filesystem (spec §8).
//!
//! Both map the persistent memory itself, with no page cache in between, so a store is
//! persistent once its cache line is flushed and drained ([`Granularity::CacheLine`]);
//! `sync` does that through [`crate::pmem::persist`].
//!
//! * Device-dax: the size and the alignment come from sysfs (`/sys/dev/char/MAJ:MIN/size`
//!   and `align`; kernels before 5.10 keep the alignment in the parent's
//!   `dax_region/align`). The kernel faults a device-dax mapping in `align`-sized pieces, so
//!   the mapping's offset and length must be multiples of it.
//! * DAX file: mapped with `MAP_SHARED_VALIDATE | MAP_SYNC`, which the kernel refuses
//!   (`EOPNOTSUPP`) unless the file really is on DAX: without `MAP_SYNC` a store could sit in
//!   the page cache, or the file's metadata could be unwritten, when the power goes.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use super::file::{check_lpc_size, io_err, page_size, Mapping, WindowError};
use super::{Granularity, MediaKind, MediaWindow};

/// Where sysfs is mounted on a real system.
const SYSFS_ROOT: &str = "/sys";

/// A device-dax device or a DAX-filesystem file, mapped.
#[derive(Debug)]
pub struct DaxWindow {
    path: PathBuf,
    kind: MediaKind,
    map: Mapping,
    offset: u64,
    align: u64,
    _file: File,
}

/// How to open a device-dax device: the builder behind [`DaxWindow::open_device`].
#[derive(Debug, Clone)]
pub struct DaxDevice {
    path: PathBuf,
    sysfs_root: PathBuf,
    offset: u64,
    lpc_size: Option<u64>,
    regular_file_stand_in: bool,
}

impl DaxDevice {
    /// The device at `path` (`/dev/daxX.Y`), mapped from offset 0 to its end, with sysfs at
    /// `/sys`.
    pub fn new(path: impl Into<PathBuf>) -> DaxDevice {
        DaxDevice {
            path: path.into(),
            sysfs_root: PathBuf::from(SYSFS_ROOT),
            offset: 0,
            lpc_size: None,
            regular_file_stand_in: false,
        }
    }

    /// Reads the device's attributes under this sysfs root instead of `/sys`.
    pub fn sysfs_root(mut self, root: impl Into<PathBuf>) -> DaxDevice {
        self.sysfs_root = root.into();
        self
    }

    /// Starts the window `offset` bytes into the device (a multiple of its alignment).
    pub fn offset(mut self, offset: u64) -> DaxDevice {
        self.offset = offset;
        self
    }

    /// Requires the window (device size minus offset) to be exactly `lpc_size` bytes.
    pub fn lpc_size(mut self, lpc_size: u64) -> DaxDevice {
        self.lpc_size = Some(lpc_size);
        self
    }

    /// Lets a regular file named like the device stand in for it, its attributes found
    /// under `<sysfs_root>/bus/dax/devices/<file name>` (tests only: a regular file is not
    /// persistent memory).
    #[cfg(test)]
    fn regular_file_stand_in(mut self) -> DaxDevice {
        self.regular_file_stand_in = true;
        self
    }

    /// The device's sysfs directory: by device number for a character device.
    fn sysfs_dir(&self, meta: &std::fs::Metadata) -> Result<PathBuf, WindowError> {
        let unsupported = |why: String| WindowError::Unsupported {
            path: self.path.clone(),
            why,
        };
        if meta.file_type().is_char_device() {
            let (maj, min) = (
                nix::sys::stat::major(meta.rdev()),
                nix::sys::stat::minor(meta.rdev()),
            );
            let dir = self.sysfs_root.join(format!("dev/char/{maj}:{min}"));
            if let Some(sub) = link_name(&dir.join("subsystem")).filter(|s| s != "dax") {
                return Err(unsupported(format!(
                    "character device {maj}:{min} belongs to the {sub} subsystem, not dax: \
                     it is not a device-dax device (those are /dev/daxX.Y)"
                )));
            }
            return Ok(dir);
        }
        if self.regular_file_stand_in && meta.is_file() {
            let name = self.path.file_name().unwrap_or_default();
            return Ok(self.sysfs_root.join("bus/dax/devices").join(name));
        }
        Err(unsupported(
            "not a character device: a device-dax device is /dev/daxX.Y; for a file on a \
             DAX filesystem use DaxWindow::open_file"
                .into(),
        ))
    }

    /// Opens and maps the device.
    pub fn open(self) -> Result<DaxWindow, WindowError> {
        let path = self.path.clone();
        let file = open_rw(&path)?;
        let meta = file.metadata().map_err(io_err(&path, "stat"))?;
        let dir = self.sysfs_dir(&meta)?;
        let size_path = dir.join("size");
        let size = read_u64(&size_path).ok_or_else(|| WindowError::Unsupported {
            path: path.clone(),
            why: format!(
                "{} cannot be read: not a device-dax device, or sysfs is elsewhere. \
                 Create one with `ndctl create-namespace --mode=devdax`",
                size_path.display()
            ),
        })?;
        let align = read_u64(&dir.join("align"))
            .or_else(|| read_u64(&dir.join("device/dax_region/align")))
            .filter(|&a| a > 0)
            .unwrap_or_else(|| {
                let p = page_size();
                tracing::warn!(
                    "{}: no align attribute under {}; assuming the page size {p:#x}",
                    path.display(),
                    dir.display()
                );
                p
            });
        if self.offset > size {
            return Err(WindowError::OutOfRange {
                path,
                offset: self.offset,
                len: 0,
                size,
            });
        }
        let len = size - self.offset;
        if let Some(expected) = self.lpc_size.filter(|&e| e != len) {
            return Err(WindowError::SizeMismatch {
                path,
                expected,
                actual: len,
                fix: "the device-dax device, past the offset, must be exactly lpc_size: \
                      recreate it (`ndctl create-namespace --mode=devdax --size=<lpc_size>`) \
                      or give the right offset",
            });
        }
        for (what, value) in [("device-dax offset", self.offset), ("window length", len)] {
            if !value.is_multiple_of(align) {
                return Err(WindowError::Unaligned {
                    what,
                    value,
                    alignment: align,
                });
            }
        }
        let n = check_lpc_size(len)?;
        let map = Mapping::new(&file, n, self.offset, libc::MAP_SHARED)
            .map_err(map_err(&path, "device-dax mapping"))?;
        Ok(DaxWindow {
            path,
            kind: MediaKind::DevDax,
            map,
            offset: self.offset,
            align,
            _file: file,
        })
    }
}

impl DaxWindow {
    /// Maps the whole device-dax device at `path` (`/dev/daxX.Y`), which must be exactly
    /// `lpc_size` bytes when that is given. [`DaxDevice`] has the other options.
    pub fn open_device(
        path: impl Into<PathBuf>,
        lpc_size: Option<u64>,
    ) -> Result<DaxWindow, WindowError> {
        let d = DaxDevice::new(path);
        match lpc_size {
            Some(n) => d.lpc_size(n),
            None => d,
        }
        .open()
    }

    /// Maps the whole of a file on a DAX filesystem with `MAP_SYNC`; its length must be
    /// exactly `lpc_size` when that is given.
    pub fn open_file(
        path: impl AsRef<Path>,
        lpc_size: Option<u64>,
    ) -> Result<DaxWindow, WindowError> {
        let path = path.as_ref();
        let file = open_rw(path)?;
        let meta = file.metadata().map_err(io_err(path, "stat"))?;
        if !meta.is_file() {
            return Err(WindowError::Unsupported {
                path: path.to_path_buf(),
                why: "not a regular file; use DaxWindow::open_device for /dev/daxX.Y".into(),
            });
        }
        let size = meta.len();
        if let Some(expected) = lpc_size.filter(|&e| e != size) {
            return Err(WindowError::SizeMismatch {
                path: path.to_path_buf(),
                expected,
                actual: size,
                fix: "make the file exactly lpc_size bytes (`fallocate -l <lpc_size> FILE` \
                      on the DAX filesystem)",
            });
        }
        let n = check_lpc_size(size)?;
        let map =
            Mapping::new(&file, n, 0, libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC).map_err(|e| {
                match e.raw_os_error() {
                    Some(libc::EOPNOTSUPP) => WindowError::Unsupported {
                        path: path.to_path_buf(),
                        why: "MAP_SYNC refused (EOPNOTSUPP): the file is not on a DAX filesystem \
                      (e.g. ext4 or xfs mounted with -o dax on a pmem device), so its stores \
                      would go through the page cache. Use a DAX mount, a device-dax device, \
                      or FileWindow (msync persistence) for a plain file"
                            .into(),
                    },
                    Some(libc::EINVAL) => WindowError::Unsupported {
                        path: path.to_path_buf(),
                        why:
                            "MAP_SHARED_VALIDATE | MAP_SYNC refused (EINVAL): the kernel predates \
                      MAP_SYNC (Linux 4.15); use a device-dax device instead"
                                .into(),
                    },
                    _ => map_err(path, "MAP_SYNC mapping")(e),
                }
            })?;
        Ok(DaxWindow {
            path: path.to_path_buf(),
            kind: MediaKind::DaxFile,
            map,
            offset: 0,
            align: page_size(),
            _file: file,
        })
    }

    /// The device or file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The alignment of the mapping (device-dax `align`, else the page size).
    pub fn align(&self) -> u64 {
        self.align
    }

    /// Where in the device the window starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl MediaWindow for DaxWindow {
    fn kind(&self) -> MediaKind {
        self.kind
    }
    fn len(&self) -> u64 {
        self.map.len() as u64
    }
    fn base(&self) -> NonNull<u8> {
        self.map.ptr()
    }
    fn granularity(&self) -> Granularity {
        Granularity::CacheLine
    }
    fn sync(&self, range: Range<u64>) -> io::Result<()> {
        self.map.persist(range)
    }
    fn describe(&self) -> String {
        match self.kind {
            MediaKind::DevDax => format!(
                "device-dax {} at offset {:#x} ({} MiB, align {:#x})",
                self.path.display(),
                self.offset,
                self.map.len() >> 20,
                self.align
            ),
            _ => format!(
                "DAX file {} ({} MiB, MAP_SYNC)",
                self.path.display(),
                self.map.len() >> 20
            ),
        }
    }
}

fn open_rw(path: &Path) -> Result<File, WindowError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| open_error(path, e))
}

fn open_error(path: &Path, e: io::Error) -> WindowError {
    match e.kind() {
        io::ErrorKind::PermissionDenied => WindowError::PermissionDenied {
            path: path.to_path_buf(),
            op: "open",
            hint: format!(
                "it must be readable and writable by this user: run as root, or give the \
                 user access (`chown $USER {}`, or a udev rule for /dev/dax*)",
                path.display()
            ),
        },
        _ => io_err(path, "open")(e),
    }
}

fn map_err(path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> WindowError {
    let path = path.to_path_buf();
    move |source| match source.kind() {
        io::ErrorKind::PermissionDenied => WindowError::PermissionDenied {
            path,
            op: "mmap",
            hint: format!("the kernel refused the {what}; the file must be opened read-write"),
        },
        _ => WindowError::Io {
            path,
            op: "mmap",
            source,
        },
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn link_name(path: &Path) -> Option<String> {
    let t = std::fs::read_link(path).ok()?;
    t.file_name().map(|n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests;
