//! The `devmem` media window backend: a physical address range `[addr, addr + len)`
//! mapped through `/dev/mem` (spec §8), the address and size given by the user or the
//! platform.
//!
//! `/dev/mem` is opened without `O_SYNC`: with it the kernel maps the range uncached on
//! some architectures, and the card's LPC memory is ordinary cache-coherent memory. Stores
//! are then made persistent by flushing cache lines ([`Granularity::CacheLine`]). Where the
//! kernel maps a range it does not know as RAM uncached anyway (POWER does), the flush is
//! harmless and the closing fence still orders the stores.
//!
//! Mapping needs root (`CAP_SYS_RAWIO`); with `CONFIG_STRICT_DEVMEM` the kernel also
//! refuses ranges it considers System RAM or claimed by a driver, unless booted with
//! `iomem=relaxed`.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use super::file::{check_lpc_size, io_err, page_size, Mapping, WindowError};
use super::{Granularity, MediaKind, MediaWindow};

/// The physical-memory device.
pub const DEV_MEM: &str = "/dev/mem";

/// A physical address range mapped through `/dev/mem`.
#[derive(Debug)]
pub struct DevMemWindow {
    path: PathBuf,
    phys: u64,
    map: Mapping,
    _file: File,
}

impl DevMemWindow {
    /// Maps `len` bytes of physical memory at `phys_addr` through `/dev/mem`. Both must be
    /// page aligned; `len` must equal `lpc_size` when that is given.
    pub fn open(
        phys_addr: u64,
        len: u64,
        lpc_size: Option<u64>,
    ) -> Result<DevMemWindow, WindowError> {
        Self::open_at(DEV_MEM, phys_addr, len, lpc_size)
    }

    /// As [`DevMemWindow::open`], through the memory device at `path` (tests give a file).
    pub fn open_at(
        path: impl AsRef<Path>,
        phys_addr: u64,
        len: u64,
        lpc_size: Option<u64>,
    ) -> Result<DevMemWindow, WindowError> {
        let path = path.as_ref();
        let page = page_size();
        for (what, value) in [("physical address", phys_addr), ("length", len)] {
            if !value.is_multiple_of(page) {
                return Err(WindowError::Unaligned {
                    what,
                    value,
                    alignment: page,
                });
            }
        }
        if let Some(expected) = lpc_size.filter(|&e| e != len) {
            return Err(WindowError::SizeMismatch {
                path: path.to_path_buf(),
                expected,
                actual: len,
                fix: "give the card's lpc_size as the length (`ocxlpmem-ctl info` shows it)",
            });
        }
        let n = check_lpc_size(len)?;
        // Offsets of /dev/mem are signed (off_t): the range must end below 2^63.
        if phys_addr
            .checked_add(len)
            .is_none_or(|end| end > i64::MAX as u64)
        {
            return Err(WindowError::OutOfRange {
                path: path.to_path_buf(),
                offset: phys_addr,
                len,
                size: i64::MAX as u64,
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| classify(path, "open", e))?;
        let map = Mapping::new(&file, n, phys_addr, libc::MAP_SHARED)
            .map_err(|e| classify(path, "mmap", e))?;
        Ok(DevMemWindow {
            path: path.to_path_buf(),
            phys: phys_addr,
            map,
            _file: file,
        })
    }

    /// The physical address of the window's first byte.
    pub fn phys_addr(&self) -> u64 {
        self.phys
    }
}

/// Turns an open or mmap failure into the error that names the fix.
fn classify(path: &Path, op: &'static str, e: io::Error) -> WindowError {
    if e.kind() == io::ErrorKind::PermissionDenied {
        return WindowError::PermissionDenied {
            path: path.to_path_buf(),
            op,
            hint: "mapping /dev/mem needs root (CAP_SYS_RAWIO). As root, a kernel built with \
                   CONFIG_STRICT_DEVMEM still refuses ranges it counts as System RAM or \
                   claimed by a driver: check /proc/iomem, or boot with iomem=relaxed \
                   (CONFIG_IO_STRICT_DEVMEM), or use a device-dax device instead"
                .into(),
        };
    }
    io_err(path, op)(e)
}

impl MediaWindow for DevMemWindow {
    fn kind(&self) -> MediaKind {
        MediaKind::DevMem
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
        format!(
            "{} physical {:#x}..{:#x} ({} MiB)",
            self.path.display(),
            self.phys,
            self.phys + self.map.len() as u64,
            self.map.len() >> 20
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::LABEL_AREA_SIZE;
    use super::*;
    use std::os::unix::fs::FileExt;

    const MIB: u64 = 1 << 20;
    const LEN: u64 = LABEL_AREA_SIZE + 16 * MIB;
    const PHYS: u64 = 64 * MIB;

    /// A sparse regular file standing in for /dev/mem, covering [0, PHYS + LEN).
    fn fake_mem() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("mem");
        File::create(&p).unwrap().set_len(PHYS + LEN).unwrap();
        (t, p)
    }

    #[test]
    fn maps_the_range_at_its_physical_offset() {
        let (_t, p) = fake_mem();
        let f = File::options().read(true).write(true).open(&p).unwrap();
        f.write_all_at(&[0x11, 0x22], PHYS).unwrap();
        let w = DevMemWindow::open_at(&p, PHYS, LEN, Some(LEN)).unwrap();
        assert_eq!(
            (w.len(), w.phys_addr(), w.kind()),
            (LEN, PHYS, MediaKind::DevMem)
        );
        assert_eq!(w.granularity(), Granularity::CacheLine);
        // SAFETY: offsets 0, 1 and LEN - 1 are inside the LEN-byte mapping.
        unsafe {
            assert_eq!(w.base().as_ptr().read_volatile(), 0x11);
            assert_eq!(w.base().as_ptr().add(1).read_volatile(), 0x22);
            w.base().as_ptr().add(LEN as usize - 1).write_volatile(0x99);
        }
        w.sync(LEN - 1..LEN).unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, PHYS + LEN - 1).unwrap();
        assert_eq!(b[0], 0x99);
        assert!(w.sync(0..LEN + 1).is_err());
        assert!(
            w.describe().contains("physical 0x4000000..0x6000000"),
            "{}",
            w.describe()
        );
    }

    #[test]
    fn unaligned_address_and_length_are_rejected_before_opening() {
        let missing = Path::new("/nonexistent/mem");
        let e = DevMemWindow::open_at(missing, PHYS + 512, LEN, None).unwrap_err();
        assert!(
            matches!(e, WindowError::Unaligned { what: "physical address", value, .. } if value == PHYS + 512),
            "{e}"
        );
        let e = DevMemWindow::open_at(missing, PHYS, LEN + 512, None).unwrap_err();
        assert!(
            matches!(e, WindowError::Unaligned { what: "length", .. }),
            "{e}"
        );
        assert!(e.to_string().contains("not aligned to"), "{e}");
    }

    #[test]
    fn length_must_match_lpc_size_and_exceed_the_label_area() {
        let (_t, p) = fake_mem();
        let e = DevMemWindow::open_at(&p, PHYS, LEN, Some(LEN * 2)).unwrap_err();
        assert!(
            matches!(e, WindowError::SizeMismatch { actual: LEN, .. }),
            "{e}"
        );
        let e = DevMemWindow::open_at(&p, PHYS, LABEL_AREA_SIZE, None).unwrap_err();
        assert!(matches!(e, WindowError::BadLpcSize { .. }), "{e}");
    }

    #[test]
    fn a_range_past_the_signed_offset_limit_is_out_of_range() {
        let (_t, p) = fake_mem();
        let page = page_size();
        let top = (i64::MAX as u64 / page) * page;
        let e = DevMemWindow::open_at(&p, top, LEN, None).unwrap_err();
        assert!(matches!(e, WindowError::OutOfRange { .. }), "{e}");
    }

    #[test]
    fn permission_denied_hints_at_root_and_strict_devmem() {
        let e = classify(
            Path::new(DEV_MEM),
            "mmap",
            io::Error::from_raw_os_error(libc::EPERM),
        );
        let m = e.to_string();
        assert!(
            matches!(e, WindowError::PermissionDenied { op: "mmap", .. }),
            "{m}"
        );
        for want in ["/dev/mem", "root", "CONFIG_STRICT_DEVMEM", "iomem=relaxed"] {
            assert!(m.contains(want), "missing {want}: {m}");
        }
        let e = classify(
            Path::new(DEV_MEM),
            "open",
            io::Error::from_raw_os_error(libc::EACCES),
        );
        assert!(
            matches!(e, WindowError::PermissionDenied { op: "open", .. }),
            "{e}"
        );
        let e = classify(
            Path::new(DEV_MEM),
            "open",
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert!(matches!(e, WindowError::Io { op: "open", .. }), "{e}");
    }

    #[test]
    fn missing_device_names_the_path() {
        let e = DevMemWindow::open_at("/nonexistent/mem", PHYS, LEN, None).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("/nonexistent/mem") && m.contains("open"), "{m}");
    }
}
