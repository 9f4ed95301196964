use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// A fake sysfs root in a temporary directory.
pub(crate) struct FakeSysfs {
    dir: tempfile::TempDir,
}

/// One device to add.
pub(crate) struct Dev<'a> {
    pub bdf: &'a str,
    pub ids: (u16, u16),
    pub driver: Option<&'a str>,
    pub group: Option<u32>,
    pub numa: i32,
    pub bridge: bool,
}

impl<'a> Dev<'a> {
    /// A 1014:0625 function bound to `driver` in group `group`.
    pub(crate) fn card(bdf: &'a str, driver: Option<&'a str>, group: Option<u32>) -> Self {
        Dev {
            bdf,
            ids: (0x1014, 0x0625),
            driver,
            group,
            numa: 0,
            bridge: false,
        }
    }
}

impl FakeSysfs {
    pub(crate) fn new() -> FakeSysfs {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("bus/pci/devices")).unwrap();
        fs::write(dir.path().join("bus/pci/drivers_probe"), "").unwrap();
        FakeSysfs { dir }
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The real (non-symlink) directory of `bdf`.
    pub(crate) fn dev_dir(&self, bdf: &str) -> PathBuf {
        self.root().join("devices/pci0000:00").join(bdf)
    }

    /// Creates the driver's directory (the module is "loaded").
    pub(crate) fn load_driver(&self, name: &str) -> PathBuf {
        let d = self.root().join("bus/pci/drivers").join(name);
        fs::create_dir_all(&d).unwrap();
        for f in ["bind", "unbind"] {
            if !d.join(f).exists() {
                fs::write(d.join(f), "").unwrap();
            }
        }
        d
    }

    pub(crate) fn add(&self, d: Dev<'_>) -> &FakeSysfs {
        let dev = self.dev_dir(d.bdf);
        fs::create_dir_all(&dev).unwrap();
        fs::write(dev.join("vendor"), format!("{:#06x}\n", d.ids.0)).unwrap();
        fs::write(dev.join("device"), format!("{:#06x}\n", d.ids.1)).unwrap();
        let class = if d.bridge { 0x060400 } else { 0x058000 };
        fs::write(dev.join("class"), format!("{class:#08x}\n")).unwrap();
        fs::write(dev.join("numa_node"), format!("{}\n", d.numa)).unwrap();
        fs::write(dev.join("driver_override"), "(null)\n").unwrap();
        symlink(&dev, self.root().join("bus/pci/devices").join(d.bdf)).unwrap();
        self.set_driver(d.bdf, d.driver);
        if let Some(g) = d.group {
            let gdir = self.root().join("kernel/iommu_groups").join(g.to_string());
            fs::create_dir_all(gdir.join("devices")).unwrap();
            symlink(&gdir, dev.join("iommu_group")).unwrap();
            symlink(&dev, gdir.join("devices").join(d.bdf)).unwrap();
        }
        self
    }

    /// Binds (or, for `None`, unbinds) `bdf` as the kernel would.
    pub(crate) fn set_driver(&self, bdf: &str, driver: Option<&str>) {
        let dev = self.dev_dir(bdf);
        let _ = fs::remove_file(dev.join("driver"));
        if let Some(name) = driver {
            let d = self.load_driver(name);
            symlink(&d, dev.join("driver")).unwrap();
        }
    }

    /// What was last written to `bdf`'s attribute `name`, trimmed.
    pub(crate) fn attr(&self, bdf: &str, name: &str) -> String {
        fs::read_to_string(self.dev_dir(bdf).join(name))
            .unwrap()
            .trim()
            .to_string()
    }
}
