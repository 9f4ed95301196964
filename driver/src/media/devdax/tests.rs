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
