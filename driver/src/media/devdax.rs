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
mod tests {
    use super::super::LABEL_AREA_SIZE;
    use super::*;
    use std::fs;
    use std::os::unix::fs::FileExt;

    const MIB: u64 = 1 << 20;
    const SIZE: u64 = LABEL_AREA_SIZE + 16 * MIB;

    /// A regular file `dax0.0` of `size` bytes and a fake sysfs with its attributes.
    struct FakeDax {
        dir: tempfile::TempDir,
    }

    impl FakeDax {
        fn new(size: u64, align: Option<u64>) -> FakeDax {
            let dir = tempfile::tempdir().unwrap();
            let f = File::create(dir.path().join("dax0.0")).unwrap();
            f.set_len(size).unwrap();
            let attrs = dir.path().join("sys/bus/dax/devices/dax0.0");
            fs::create_dir_all(&attrs).unwrap();
            fs::write(attrs.join("size"), format!("{size}\n")).unwrap();
            if let Some(a) = align {
                fs::write(attrs.join("align"), format!("{a}\n")).unwrap();
            }
            FakeDax { dir }
        }
        fn dev(&self) -> PathBuf {
            self.dir.path().join("dax0.0")
        }
        fn attrs(&self) -> PathBuf {
            self.dir.path().join("sys/bus/dax/devices/dax0.0")
        }
        fn device(&self) -> DaxDevice {
            DaxDevice::new(self.dev())
                .sysfs_root(self.dir.path().join("sys"))
                .regular_file_stand_in()
        }
    }

    #[test]
    fn device_dax_maps_its_whole_size_and_syncs_by_cache_line() {
        let d = FakeDax::new(SIZE, Some(2 * MIB));
        let w = d.device().lpc_size(SIZE).open().unwrap();
        assert_eq!(
            (w.len(), w.kind(), w.align()),
            (SIZE, MediaKind::DevDax, 2 * MIB)
        );
        assert_eq!(w.granularity(), Granularity::CacheLine);
        let at = LABEL_AREA_SIZE + 100;
        // SAFETY: `at` is inside the SIZE-byte mapping.
        unsafe { w.base().as_ptr().add(at as usize).write_volatile(0x77) };
        w.sync(at..at + 1).unwrap();
        let mut b = [0u8; 1];
        File::open(d.dev())
            .unwrap()
            .read_exact_at(&mut b, at)
            .unwrap();
        assert_eq!(b[0], 0x77);
        assert!(w.sync(SIZE - 1..SIZE + 1).is_err());
        assert!(w.describe().contains("align 0x200000"), "{}", w.describe());
    }

    #[test]
    fn device_dax_offset_maps_the_tail_of_the_device() {
        let d = FakeDax::new(SIZE + 2 * MIB, Some(2 * MIB));
        File::options()
            .write(true)
            .open(d.dev())
            .unwrap()
            .write_all_at(&[0xab], 2 * MIB)
            .unwrap();
        let w = d.device().offset(2 * MIB).lpc_size(SIZE).open().unwrap();
        assert_eq!((w.len(), w.offset()), (SIZE, 2 * MIB));
        // SAFETY: offset 0 is inside the mapping.
        assert_eq!(unsafe { w.base().as_ptr().read_volatile() }, 0xab);
        let e = d.device().offset(SIZE + 4 * MIB).open().unwrap_err();
        assert!(matches!(e, WindowError::OutOfRange { .. }), "{e}");
    }

    #[test]
    fn device_dax_size_mismatch_names_both_sizes_and_the_fix() {
        let d = FakeDax::new(SIZE, Some(2 * MIB));
        let e = d.device().lpc_size(SIZE + 2 * MIB).open().unwrap_err();
        assert!(
            matches!(e, WindowError::SizeMismatch { expected, actual: SIZE, .. } if expected == SIZE + 2 * MIB),
            "{e}"
        );
        assert!(e.to_string().contains("ndctl create-namespace"), "{e}");
    }

    #[test]
    fn device_dax_offset_and_length_must_be_multiples_of_align() {
        let d = FakeDax::new(SIZE + 2 * MIB, Some(2 * MIB));
        let e = d.device().offset(4096).open().unwrap_err();
        assert!(
            matches!(e, WindowError::Unaligned { what: "device-dax offset", value: 4096, alignment } if alignment == 2 * MIB),
            "{e}"
        );
        let d = FakeDax::new(SIZE + 64 * 1024, Some(2 * MIB));
        let e = d.device().open().unwrap_err();
        assert!(
            matches!(
                e,
                WindowError::Unaligned {
                    what: "window length",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn device_dax_no_larger_than_the_label_area_is_rejected() {
        let d = FakeDax::new(LABEL_AREA_SIZE, Some(2 * MIB));
        let e = d.device().open().unwrap_err();
        assert!(matches!(e, WindowError::BadLpcSize { .. }), "{e}");
        assert!(e.to_string().contains("16 MiB label area"), "{e}");
    }

    #[test]
    fn device_dax_alignment_falls_back_to_the_dax_region_then_the_page() {
        let d = FakeDax::new(SIZE, None);
        let region = d.attrs().join("device/dax_region");
        fs::create_dir_all(&region).unwrap();
        fs::write(region.join("align"), "1073741824\n").unwrap();
        let e = d.device().open().unwrap_err();
        assert!(
            matches!(
                e,
                WindowError::Unaligned {
                    alignment: 0x4000_0000,
                    ..
                }
            ),
            "{e}"
        );
        fs::remove_file(region.join("align")).unwrap();
        assert_eq!(d.device().open().unwrap().align(), page_size());
    }

    #[test]
    fn device_without_sysfs_attributes_is_not_device_dax() {
        let d = FakeDax::new(SIZE, None);
        fs::remove_dir_all(d.attrs()).unwrap();
        let e = d.device().open().unwrap_err();
        assert!(matches!(e, WindowError::Unsupported { .. }), "{e}");
        assert!(e.to_string().contains("--mode=devdax"), "{e}");
    }

    #[test]
    fn a_regular_file_is_refused_without_the_test_stand_in() {
        let d = FakeDax::new(SIZE, Some(2 * MIB));
        let e = DaxWindow::open_device(d.dev(), None).unwrap_err();
        assert!(e.to_string().contains("not a character device"), "{e}");
    }

    #[test]
    fn character_devices_are_looked_up_by_device_number() {
        // /dev/null is 1:3; a fake sysfs gives it device-dax attributes.
        let t = tempfile::tempdir().unwrap();
        let attrs = t.path().join("dev/char/1:3");
        fs::create_dir_all(&attrs).unwrap();
        fs::write(attrs.join("size"), format!("{SIZE}\n")).unwrap();
        fs::write(attrs.join("align"), format!("{}\n", 2 * MIB)).unwrap();
        let dev = || DaxDevice::new("/dev/null").sysfs_root(t.path());
        let e = dev().lpc_size(SIZE * 2).open().unwrap_err();
        assert!(
            matches!(e, WindowError::SizeMismatch { actual: SIZE, .. }),
            "the size must come from dev/char/1:3: {e}"
        );
        // /dev/null cannot be mapped: the error keeps the errno and says mmap.
        let e = dev().open().unwrap_err();
        match &e {
            WindowError::Io {
                op: "mmap", source, ..
            } => {
                assert_eq!(source.raw_os_error(), Some(libc::ENODEV), "{e}")
            }
            other => panic!("{other}"),
        }
        // A character device of another subsystem is named as such.
        std::os::unix::fs::symlink(t.path().join("class/mem"), attrs.join("subsystem")).unwrap();
        let e = dev().open().unwrap_err();
        assert!(
            e.to_string().contains("belongs to the mem subsystem"),
            "{e}"
        );
    }

    #[test]
    fn permission_errors_name_the_fix() {
        let p = Path::new("/dev/dax0.0");
        let e = open_error(p, io::Error::from_raw_os_error(libc::EACCES));
        let m = e.to_string();
        assert!(
            matches!(e, WindowError::PermissionDenied { op: "open", .. }),
            "{m}"
        );
        assert!(
            m.contains("run as root") && m.contains("chown $USER /dev/dax0.0"),
            "{m}"
        );
        let e = map_err(p, "device-dax mapping")(io::Error::from_raw_os_error(libc::EACCES));
        assert!(
            matches!(e, WindowError::PermissionDenied { op: "mmap", .. }),
            "{e}"
        );
        let e = open_error(p, io::Error::from_raw_os_error(libc::ENXIO));
        assert!(matches!(e, WindowError::Io { op: "open", .. }), "{e}");
    }

    /// A directory on tmpfs when there is one (MAP_SYNC is refused there, as on any
    /// filesystem without DAX).
    fn non_dax_dir() -> tempfile::TempDir {
        tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap())
    }

    #[test]
    fn dax_file_on_a_non_dax_filesystem_is_refused_by_map_sync() {
        let t = non_dax_dir();
        let p = t.path().join("media");
        File::create(&p).unwrap().set_len(SIZE).unwrap();
        let e = DaxWindow::open_file(&p, Some(SIZE)).unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, WindowError::Unsupported { .. }), "{m}");
        assert!(
            m.contains("MAP_SYNC refused (EOPNOTSUPP)") && m.contains("not on a DAX filesystem"),
            "{m}"
        );
        assert!(m.contains("FileWindow"), "{m}");
    }

    #[test]
    fn dax_file_size_checks_come_before_the_mapping() {
        let t = non_dax_dir();
        let p = t.path().join("media");
        File::create(&p).unwrap().set_len(SIZE).unwrap();
        let e = DaxWindow::open_file(&p, Some(SIZE + 4096)).unwrap_err();
        assert!(matches!(e, WindowError::SizeMismatch { .. }), "{e}");
        assert!(e.to_string().contains("fallocate"), "{e}");
        File::create(&p).unwrap().set_len(LABEL_AREA_SIZE).unwrap();
        let e = DaxWindow::open_file(&p, None).unwrap_err();
        assert!(matches!(e, WindowError::BadLpcSize { .. }), "{e}");
        File::create(&p).unwrap().set_len(SIZE + 1).unwrap();
        let e = DaxWindow::open_file(&p, None).unwrap_err();
        assert!(
            matches!(
                e,
                WindowError::Unaligned {
                    what: "lpc_size",
                    ..
                }
            ),
            "{e}"
        );
        let e = DaxWindow::open_file(t.path(), None).unwrap_err();
        match e {
            WindowError::Io {
                op: "open", source, ..
            } => {
                assert_eq!(source.raw_os_error(), Some(libc::EISDIR))
            }
            other => panic!("{other}"),
        }
    }
}
