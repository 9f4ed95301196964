//! The IOMMU group of a PCI function, read from sysfs (the mount point is a parameter so
//! tests build fake trees).

use super::error::VfioError;
use std::fs;
use std::path::{Path, PathBuf};

/// Drivers a group member may be bound to without making the group unusable (the kernel's
/// rule: VFIO drivers, `pci-stub`, or no driver at all).
pub fn driver_keeps_group_viable(driver: Option<&str>) -> bool {
    match driver {
        None => true,
        Some(d) => d.starts_with("vfio") || d == "pci-stub",
    }
}

/// One device of an IOMMU group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// PCI address ("0000:01:00.0").
    pub bdf: String,
    /// The bound driver, if any.
    pub driver: Option<String>,
}

impl GroupMember {
    /// True when this member lets the group be used through VFIO.
    pub fn is_viable(&self) -> bool {
        driver_keeps_group_viable(self.driver.as_deref())
    }
}

/// A function's IOMMU group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Group number (the name of `/sys/kernel/iommu_groups/N`).
    pub number: u32,
    /// True for a fake group of the kernel's no-IOMMU mode (`/dev/vfio/noiommu-N`).
    pub noiommu: bool,
    /// Every device of the group, the function itself included, sorted by address.
    pub members: Vec<GroupMember>,
}

impl GroupInfo {
    /// The members other than `bdf` that keep the group from being viable.
    pub fn blockers(&self, bdf: &str) -> Vec<GroupMember> {
        self.members
            .iter()
            .filter(|m| m.bdf != bdf && !m.is_viable())
            .cloned()
            .collect()
    }

    /// The group's character device under `dev_vfio` (`/dev/vfio`).
    pub fn dev_path(&self, dev_vfio: &Path) -> PathBuf {
        if self.noiommu {
            dev_vfio.join(format!("noiommu-{}", self.number))
        } else {
            dev_vfio.join(self.number.to_string())
        }
    }
}

/// The sysfs directory of a PCI function.
pub fn device_dir(sysfs: &Path, bdf: &str) -> PathBuf {
    sysfs.join("bus/pci/devices").join(bdf)
}

/// The name of the last component a symlink points to (`driver`, `iommu_group`).
pub fn link_name(path: &Path) -> Option<String> {
    let target = fs::read_link(path).ok()?;
    target.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// The driver bound to `bdf`, if any.
pub fn bound_driver(sysfs: &Path, bdf: &str) -> Option<String> {
    link_name(&device_dir(sysfs, bdf).join("driver"))
}

/// Looks up the IOMMU group of `bdf` and its members.
pub fn lookup(sysfs: &Path, bdf: &str) -> Result<GroupInfo, VfioError> {
    let dir = device_dir(sysfs, bdf);
    if !dir.exists() {
        return Err(VfioError::DeviceNotFound {
            bdf: bdf.to_string(),
            path: dir,
        });
    }
    let number = link_name(&dir.join("iommu_group"))
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| VfioError::NoIommuGroup {
            bdf: bdf.to_string(),
        })?;
    let gdir = sysfs.join("kernel/iommu_groups").join(number.to_string());
    let noiommu = fs::read_to_string(gdir.join("name"))
        .map(|n| n.trim() == "vfio-noiommu")
        .unwrap_or(false);
    let mut members: Vec<GroupMember> = fs::read_dir(gdir.join("devices"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .map(|m| GroupMember {
                    driver: bound_driver(sysfs, &m),
                    bdf: m,
                })
                .collect()
        })
        .unwrap_or_default();
    if !members.iter().any(|m| m.bdf == bdf) {
        members.push(GroupMember {
            bdf: bdf.to_string(),
            driver: bound_driver(sysfs, bdf),
        });
    }
    members.sort_by(|a, b| a.bdf.cmp(&b.bdf));
    Ok(GroupInfo {
        number,
        noiommu,
        members,
    })
}

/// Fake sysfs trees for tests (shared with the device module's tests).
#[cfg(test)]
pub(crate) mod fake {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    /// Adds a PCI function `bdf` with ids, bound to `driver`, in IOMMU group `group`.
    pub(crate) fn add_device(
        sysfs: &Path,
        bdf: &str,
        ids: (u16, u16),
        driver: Option<&str>,
        group: Option<u32>,
    ) {
        let dev = sysfs.join("devices/pci0000:00").join(bdf);
        fs::create_dir_all(&dev).unwrap();
        fs::write(dev.join("vendor"), format!("{:#06x}\n", ids.0)).unwrap();
        fs::write(dev.join("device"), format!("{:#06x}\n", ids.1)).unwrap();
        fs::write(dev.join("numa_node"), "0\n").unwrap();
        fs::write(dev.join("driver_override"), "(null)\n").unwrap();
        let bus = sysfs.join("bus/pci/devices");
        fs::create_dir_all(&bus).unwrap();
        symlink(&dev, bus.join(bdf)).unwrap();
        if let Some(d) = driver {
            set_driver(sysfs, bdf, Some(d));
        }
        if let Some(g) = group {
            let gdir = sysfs.join("kernel/iommu_groups").join(g.to_string());
            fs::create_dir_all(gdir.join("devices")).unwrap();
            symlink(&gdir, dev.join("iommu_group")).unwrap();
            symlink(&dev, gdir.join("devices").join(bdf)).unwrap();
        }
    }

    /// Rebinds (or unbinds, for `None`) `bdf` in the fake tree, as the kernel would.
    pub(crate) fn set_driver(sysfs: &Path, bdf: &str, driver: Option<&str>) {
        let dev = sysfs.join("bus/pci/devices").join(bdf);
        let _ = fs::remove_file(dev.join("driver"));
        if let Some(d) = driver {
            let ddir = sysfs.join("bus/pci/drivers").join(d);
            fs::create_dir_all(&ddir).unwrap();
            symlink(&ddir, dev.join("driver")).unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::add_device;
    use super::*;

    #[test]
    fn group_members_and_their_drivers() {
        let t = tempfile::tempdir().unwrap();
        let s = t.path();
        add_device(
            s,
            "0000:01:00.1",
            (0x1014, 0x0625),
            Some("vfio-pci"),
            Some(7),
        );
        add_device(s, "0000:01:00.0", (0x1014, 0x0625), Some("ocxl"), Some(7));
        add_device(s, "0000:02:00.0", (0x8086, 0x1234), None, Some(8));
        let g = lookup(s, "0000:01:00.1").unwrap();
        assert_eq!(g.number, 7);
        assert!(!g.noiommu);
        assert_eq!(g.members.len(), 2);
        assert_eq!(g.members[0].driver.as_deref(), Some("ocxl"));
        let b = g.blockers("0000:01:00.1");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].bdf, "0000:01:00.0");
        assert_eq!(g.dev_path(Path::new("/dev/vfio")), Path::new("/dev/vfio/7"));
    }

    #[test]
    fn missing_device_and_missing_group_are_distinct_errors() {
        let t = tempfile::tempdir().unwrap();
        let s = t.path();
        assert!(matches!(
            lookup(s, "0000:09:00.1"),
            Err(VfioError::DeviceNotFound { .. })
        ));
        add_device(s, "0000:01:00.1", (0x1014, 0x0625), None, None);
        let e = lookup(s, "0000:01:00.1").unwrap_err();
        assert!(matches!(e, VfioError::NoIommuGroup { .. }));
        assert!(e.to_string().contains("enable_unsafe_noiommu_mode"), "{e}");
    }

    #[test]
    fn noiommu_group_uses_its_own_device_name() {
        let t = tempfile::tempdir().unwrap();
        let s = t.path();
        add_device(
            s,
            "0000:01:00.1",
            (0x1014, 0x0625),
            Some("vfio-pci"),
            Some(3),
        );
        fs::write(s.join("kernel/iommu_groups/3/name"), "vfio-noiommu\n").unwrap();
        let g = lookup(s, "0000:01:00.1").unwrap();
        assert!(g.noiommu);
        assert_eq!(
            g.dev_path(Path::new("/dev/vfio")),
            Path::new("/dev/vfio/noiommu-3")
        );
    }

    #[test]
    fn viability_rule() {
        assert!(driver_keeps_group_viable(None));
        assert!(driver_keeps_group_viable(Some("vfio-pci")));
        assert!(driver_keeps_group_viable(Some("pci-stub")));
        assert!(!driver_keeps_group_viable(Some("ocxl")));
        assert!(!driver_keeps_group_viable(Some("nvme")));
    }
}
