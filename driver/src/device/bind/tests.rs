use super::super::discovery::fake::{Dev, FakeSysfs};
use super::*;
use std::fs;
use std::sync::Mutex;

/// Stands in for the kernel on a fake tree: records every write, stores it in the
/// plain file, and reacts as the PCI core would (unbind removes the `driver` link;
/// drivers_probe binds to the override's driver when it is loaded; drivers/X/bind
/// binds to X). `fail` makes writes to paths ending so fail with an errno;
/// `refuse` lists drivers whose probe fails.
struct FakeKernel {
    root: PathBuf,
    log: Mutex<Vec<(String, String)>>,
    fail: Option<(&'static str, i32)>,
    refuse: Vec<&'static str>,
}

impl FakeKernel {
    fn new(s: &FakeSysfs) -> FakeKernel {
        FakeKernel {
            root: s.root().to_path_buf(),
            log: Mutex::new(Vec::new()),
            fail: None,
            refuse: Vec::new(),
        }
    }

    fn log(&self) -> Vec<(String, String)> {
        self.log.lock().unwrap().clone()
    }

    fn bind(&self, bdf: &str, driver: &str) {
        let ddir = self.root.join("bus/pci/drivers").join(driver);
        if !ddir.is_dir() || self.refuse.contains(&driver) {
            return;
        }
        let link = self.root.join("bus/pci/devices").join(bdf).join("driver");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(ddir, link).unwrap();
    }
}

impl SysfsWriter for FakeKernel {
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let rel = path.strip_prefix(&self.root).unwrap().display().to_string();
        if let Some((suffix, errno)) = self.fail {
            if rel.ends_with(suffix) {
                return Err(io::Error::from_raw_os_error(errno));
            }
        }
        self.log
            .lock()
            .unwrap()
            .push((rel.clone(), value.to_string()));
        fs::write(path, value)?;
        let v = value.trim();
        let dev = self.root.join("bus/pci/devices").join(v);
        if rel.ends_with("/unbind") {
            let _ = fs::remove_file(dev.join("driver"));
        } else if rel == "bus/pci/drivers_probe" {
            let o = fs::read_to_string(dev.join("driver_override")).unwrap();
            if !o.trim().is_empty() && o.trim() != "(null)" {
                self.bind(v, o.trim());
            }
        } else if let Some(d) = rel
            .strip_prefix("bus/pci/drivers/")
            .and_then(|r| r.strip_suffix("/bind"))
        {
            self.bind(v, d);
        }
        Ok(())
    }
}

fn bdf(s: &str) -> Bdf {
    s.parse().unwrap()
}

fn binder<'k>(s: &FakeSysfs, k: &'k FakeKernel) -> Binder<&'k FakeKernel> {
    Binder::with_writer(s.root(), k).settle_timeout(Duration::from_millis(20))
}

const FORCE: BindOptions = BindOptions {
    take_from_other_driver: true,
};

fn card_on_ocxl() -> FakeSysfs {
    let s = FakeSysfs::new();
    s.add(Dev::card("0000:01:00.1", Some("ocxl"), Some(5)));
    s.load_driver("vfio-pci");
    s
}

#[test]
fn bind_unbinds_overrides_probes_and_verifies_in_that_order() {
    let s = card_on_ocxl();
    let k = FakeKernel::new(&s);
    let r = binder(&s, &k)
        .bind_vfio(&[bdf("0000:01:00.1")], FORCE)
        .unwrap();
    assert_eq!(
        k.log(),
        [
            (
                "bus/pci/devices/0000:01:00.1/driver/unbind".into(),
                "0000:01:00.1".into()
            ),
            (
                "bus/pci/devices/0000:01:00.1/driver_override".into(),
                "vfio-pci".into()
            ),
            ("bus/pci/drivers_probe".into(), "0000:01:00.1".into()),
        ]
    );
    assert_eq!(
        r,
        [BindRecord {
            bdf: bdf("0000:01:00.1"),
            previous_driver: Some("ocxl".into()),
            previous_override: None,
            changed: true,
        }]
    );
    let d = discovery::scan(s.root()).unwrap();
    assert_eq!(d.cards[0].functions[0].binding, discovery::Binding::VfioPci);
    d.usable_through_vfio(&bdf("0000:01:00.1")).unwrap();
}

#[test]
fn restore_gives_the_function_back_to_its_previous_driver() {
    let s = card_on_ocxl();
    let k = FakeKernel::new(&s);
    let b = binder(&s, &k);
    let r = b.bind_vfio(&[bdf("0000:01:00.1")], FORCE).unwrap();
    k.log.lock().unwrap().clear();
    let json = serde_json::to_string(&r[0]).unwrap();
    let record: BindRecord = serde_json::from_str(&json).unwrap();
    b.restore(&record).unwrap();
    assert_eq!(
        k.log(),
        [
            (
                "bus/pci/devices/0000:01:00.1/driver/unbind".into(),
                "0000:01:00.1".into()
            ),
            (
                "bus/pci/devices/0000:01:00.1/driver_override".into(),
                "\n".into()
            ),
            ("bus/pci/drivers/ocxl/bind".into(), "0000:01:00.1".into()),
        ]
    );
    assert_eq!(s.attr("0000:01:00.1", "driver_override"), "");
    let d = discovery::scan(s.root()).unwrap();
    assert_eq!(d.cards[0].functions[0].driver.as_deref(), Some("ocxl"));
}

#[test]
fn already_bound_is_a_no_op_and_restore_of_it_too() {
    let s = FakeSysfs::new();
    s.add(Dev::card("0000:01:00.1", Some("vfio-pci"), Some(5)));
    let k = FakeKernel::new(&s);
    let b = binder(&s, &k);
    let r = b
        .bind_vfio(&[bdf("0000:01:00.1")], BindOptions::default())
        .unwrap();
    assert!(!r[0].changed);
    b.restore(&r[0]).unwrap();
    assert!(k.log().is_empty(), "{:?}", k.log());
}

#[test]
fn unbound_function_is_bound_without_an_unbind_and_restored_to_no_driver() {
    let s = FakeSysfs::new();
    s.add(Dev::card("0000:01:00.1", None, Some(5)));
    s.load_driver("vfio-pci");
    fs::write(
        s.dev_dir("0000:01:00.1").join("driver_override"),
        "pci-stub\n",
    )
    .unwrap();
    let k = FakeKernel::new(&s);
    let b = binder(&s, &k);
    let r = b
        .bind_vfio(&[bdf("0000:01:00.1")], BindOptions::default())
        .unwrap();
    assert_eq!(k.log().len(), 2, "{:?}", k.log());
    assert_eq!(r[0].previous_override.as_deref(), Some("pci-stub"));
    b.restore(&r[0]).unwrap();
    assert_eq!(s.attr("0000:01:00.1", "driver_override"), "pci-stub");
    assert_eq!(b.driver_of(&bdf("0000:01:00.1")), None);
}

#[test]
fn not_found_lists_the_cards_that_exist() {
    let s = card_on_ocxl();
    let k = FakeKernel::new(&s);
    let e = binder(&s, &k)
        .bind_vfio(&[bdf("0000:07:00.1")], FORCE)
        .unwrap_err();
    assert!(matches!(e, BindError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("found: 0000:01:00.1"), "{e}");
    assert!(k.log().is_empty());
}

#[test]
fn vfio_pci_not_loaded_says_modprobe() {
    let s = FakeSysfs::new();
    s.add(Dev::card("0000:01:00.1", None, Some(5)));
    let k = FakeKernel::new(&s);
    let e = binder(&s, &k)
        .bind_vfio(&[bdf("0000:01:00.1")], FORCE)
        .unwrap_err();
    assert!(matches!(e, BindError::VfioPciNotLoaded { .. }), "{e}");
    assert!(e.to_string().contains("`modprobe vfio-pci`"), "{e}");
    assert!(k.log().is_empty());
}

#[test]
fn another_driver_is_not_displaced_without_force_and_the_commands_are_given() {
    let s = card_on_ocxl();
    let k = FakeKernel::new(&s);
    let e = binder(&s, &k)
        .bind_vfio(&[bdf("0000:01:00.1")], BindOptions::default())
        .unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, BindError::BoundToOtherDriver { .. }), "{m}");
    let dev = s.root().join("bus/pci/devices/0000:01:00.1");
    assert!(m.contains("bound to ocxl") && m.contains("--force"), "{m}");
    assert!(
        m.contains(&format!(
            "echo 0000:01:00.1 > {}/driver/unbind",
            dev.display()
        )),
        "{m}"
    );
    assert!(k.log().is_empty());
    assert_eq!(s.attr("0000:01:00.1", "driver_override"), "(null)");
}

#[test]
fn group_not_viable_names_the_others_unless_they_are_bound_too() {
    let s = FakeSysfs::new();
    s.add(Dev::card("0000:01:00.1", None, Some(5)))
        .add(Dev::card("0000:01:00.0", Some("ocxl"), Some(5)))
        .add(Dev {
            bridge: true,
            ids: (0x1014, 0x04c1),
            ..Dev::card("0000:00:00.0", Some("pcieport"), Some(5))
        });
    s.load_driver("vfio-pci");
    let k = FakeKernel::new(&s);
    let b = binder(&s, &k);
    let e = b.bind_vfio(&[bdf("0000:01:00.1")], FORCE).unwrap_err();
    let m = e.to_string();
    assert!(
        matches!(e, BindError::GroupNotViable { group: 5, .. }),
        "{m}"
    );
    assert!(
        m.contains("0000:01:00.0 (ocxl)") && !m.contains("pcieport"),
        "{m}"
    );
    assert!(
        m.contains("ocxlpmem-ctl bind 0000:01:00.1 0000:01:00.0"),
        "{m}"
    );
    assert!(k.log().is_empty());
    let r = b
        .bind_vfio(&[bdf("0000:01:00.1"), bdf("0000:01:00.0")], FORCE)
        .unwrap();
    assert_eq!(r.len(), 2);
    let d = discovery::scan(s.root()).unwrap();
    assert!(d
        .functions()
        .all(|f| f.binding == discovery::Binding::VfioPci));
    d.usable_through_vfio(&bdf("0000:01:00.1")).unwrap();
}

#[test]
fn no_iommu_group_is_refused_unless_noiommu_mode_is_on() {
    let s = FakeSysfs::new();
    s.add(Dev::card("0000:01:00.1", None, None));
    s.load_driver("vfio-pci");
    let k = FakeKernel::new(&s);
    let b = binder(&s, &k);
    let e = b
        .bind_vfio(&[bdf("0000:01:00.1")], BindOptions::default())
        .unwrap_err();
    assert!(matches!(e, BindError::NoIommuGroup { .. }), "{e}");
    assert!(
        e.to_string().contains("enable_unsafe_noiommu_mode=1"),
        "{e}"
    );
    assert!(k.log().is_empty());
    let p = s.root().join("module/vfio/parameters");
    fs::create_dir_all(&p).unwrap();
    fs::write(p.join("enable_unsafe_noiommu_mode"), "Y\n").unwrap();
    b.bind_vfio(&[bdf("0000:01:00.1")], BindOptions::default())
        .unwrap();
    assert_eq!(
        b.driver_of(&bdf("0000:01:00.1")).as_deref(),
        Some("vfio-pci")
    );
}

#[test]
fn permission_denied_says_root_is_needed() {
    let s = card_on_ocxl();
    let mut k = FakeKernel::new(&s);
    k.fail = Some(("driver/unbind", libc::EACCES));
    let e = binder(&s, &k)
        .bind_vfio(&[bdf("0000:01:00.1")], FORCE)
        .unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, BindError::PermissionDenied { .. }), "{m}");
    assert!(
        m.contains("needs root") && m.contains("driver/unbind") && m.contains("owner "),
        "{m}"
    );
}

#[test]
fn other_write_errors_keep_the_errno_and_the_value() {
    let s = card_on_ocxl();
    let mut k = FakeKernel::new(&s);
    k.fail = Some(("drivers_probe", libc::ENODEV));
    let e = binder(&s, &k)
        .bind_vfio(&[bdf("0000:01:00.1")], FORCE)
        .unwrap_err();
    match e {
        BindError::Write { source, value, .. } => {
            assert_eq!(source.raw_os_error(), Some(libc::ENODEV));
            assert_eq!(value, "0000:01:00.1");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_probe_that_does_not_bind_is_reported_with_what_is_bound() {
    let s = card_on_ocxl();
    let mut k = FakeKernel::new(&s);
    k.refuse = vec!["vfio-pci"];
    let e = binder(&s, &k)
        .bind_vfio(&[bdf("0000:01:00.1")], FORCE)
        .unwrap_err();
    let m = e.to_string();
    assert!(
        matches!(&e, BindError::BindFailed { found: None, expected, .. } if expected == "vfio-pci"),
        "{m}"
    );
    assert!(m.contains("dmesg"), "{m}");
}

#[test]
fn kernel_without_driver_override_is_named() {
    let s = card_on_ocxl();
    fs::remove_file(s.dev_dir("0000:01:00.1").join("driver_override")).unwrap();
    let k = FakeKernel::new(&s);
    let e = binder(&s, &k)
        .bind_vfio(&[bdf("0000:01:00.1")], FORCE)
        .unwrap_err();
    assert!(matches!(e, BindError::NoDriverOverride { .. }), "{e}");
    assert!(e.to_string().contains("new_id"), "{e}");
    assert!(k.log().is_empty());
}

#[test]
fn restore_to_an_unloaded_driver_says_modprobe_and_changes_nothing() {
    let s = card_on_ocxl();
    let k = FakeKernel::new(&s);
    let b = binder(&s, &k);
    let r = b.bind_vfio(&[bdf("0000:01:00.1")], FORCE).unwrap();
    fs::remove_dir_all(s.root().join("bus/pci/drivers/ocxl")).unwrap();
    k.log.lock().unwrap().clear();
    let e = b.restore(&r[0]).unwrap_err();
    assert!(matches!(e, BindError::DriverNotLoaded { .. }), "{e}");
    assert!(e.to_string().contains("`modprobe ocxl`"), "{e}");
    assert!(k.log().is_empty());
    assert_eq!(
        b.driver_of(&bdf("0000:01:00.1")).as_deref(),
        Some("vfio-pci")
    );
}

#[test]
fn unbind_returns_the_previous_driver() {
    let s = card_on_ocxl();
    let k = FakeKernel::new(&s);
    let b = binder(&s, &k);
    assert_eq!(
        b.unbind(&bdf("0000:01:00.1")).unwrap().as_deref(),
        Some("ocxl")
    );
    assert_eq!(b.unbind(&bdf("0000:01:00.1")).unwrap(), None);
    assert_eq!(k.log().len(), 1);
}

#[test]
fn kernel_writer_writes_existing_attributes_and_never_creates_them() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("driver_override");
    fs::write(&p, "(null)\n").unwrap();
    KernelSysfs.write(&p, "vfio-pci").unwrap();
    assert_eq!(fs::read_to_string(&p).unwrap(), "vfio-pci");
    let e = KernelSysfs
        .write(&t.path().join("missing"), "x")
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    assert!(!t.path().join("missing").exists());
}
