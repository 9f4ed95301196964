//! Errors of opening a function through kernel VFIO, each with its fix.

use super::group::GroupMember;
use crate::sys::SysError;
use std::fmt::Write as _;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why a function could not be opened through VFIO.
#[derive(Debug, thiserror::Error)]
pub enum VfioError {
    /// No such PCI function in sysfs.
    #[error("no PCI function {bdf} ({} does not exist); list the cards with `ocxlpmem-ctl list`", path.display())]
    DeviceNotFound {
        /// The address asked for.
        bdf: String,
        /// The sysfs path looked at.
        path: PathBuf,
    },
    /// The function has no IOMMU group: the IOMMU is off.
    #[error(
        "{bdf} has no IOMMU group: the IOMMU is disabled. Fix: boot with the IOMMU on \
         (intel_iommu=on or amd_iommu=on; always on for POWER), or, without isolation, \
         `modprobe vfio enable_unsafe_noiommu_mode=1`"
    )]
    NoIommuGroup {
        /// The address.
        bdf: String,
    },
    /// `/dev/vfio/vfio` is missing.
    #[error("{} does not exist: VFIO is not loaded. Fix: `modprobe vfio-pci`", path.display())]
    VfioMissing {
        /// The container path.
        path: PathBuf,
    },
    /// The group's character device is missing: the function is not bound to vfio-pci.
    #[error(
        "{} does not exist: {bdf} is bound to {}, not vfio-pci. Fix: `ocxlpmem-ctl bind {bdf}` \
         (or: echo vfio-pci > /sys/bus/pci/devices/{bdf}/driver_override, unbind, and write \
         {bdf} to /sys/bus/pci/drivers_probe)",
        path.display(),
        driver.as_deref().unwrap_or("no driver")
    )]
    NotBoundToVfio {
        /// The address.
        bdf: String,
        /// The driver it is bound to.
        driver: Option<String>,
        /// The group device that was expected.
        path: PathBuf,
    },
    /// Opening a VFIO file was refused.
    #[error("permission denied opening {} ({owner}). Fix: run as root, or give your user the group file (`chown $USER {}`)", path.display(), path.display())]
    PermissionDenied {
        /// The file.
        path: PathBuf,
        /// Its owner and mode, as "owner root:root mode 0600".
        owner: String,
    },
    /// Another process holds the group.
    #[error("{} is busy: another process (a VM, another ocxlpmem) holds the group. Fix: stop it (`fuser -v {}` shows it)", path.display(), path.display())]
    Busy {
        /// The group file.
        path: PathBuf,
    },
    /// Some other device of the group is bound to a host driver.
    #[error("IOMMU group {group} is not viable: {}", describe_blockers(blockers))]
    NotViable {
        /// Group number.
        group: u32,
        /// The members that block it.
        blockers: Vec<GroupMember>,
    },
    /// The kernel speaks another VFIO API version.
    #[error("VFIO API version {got}, this driver speaks version 0")]
    ApiVersion {
        /// The version reported.
        got: i32,
    },
    /// The container offers none of the IOMMU types this driver can use.
    #[error(
        "the VFIO container supports none of Type1v2, Type1, sPAPR TCE v2, sPAPR TCE, no-IOMMU. \
         Fix: `modprobe vfio_iommu_type1` (x86/arm) or `modprobe vfio_iommu_spapr_tce` (POWER)"
    )]
    NoIommuType,
    /// Opening a file failed for another reason.
    #[error("opening {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A VFIO ioctl failed.
    #[error(transparent)]
    Sys(#[from] SysError),
}

fn describe_blockers(blockers: &[GroupMember]) -> String {
    let mut s = String::from("other devices in it are bound to host drivers: ");
    for (i, m) in blockers.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(
            s,
            "{} ({})",
            m.bdf,
            m.driver.as_deref().unwrap_or("no driver")
        );
    }
    s.push_str(". Fix: bind each of them to vfio-pci too (`ocxlpmem-ctl bind <bdf>`), or move the card to a slot with its own group");
    s
}

/// Turns the failure to open `path` into the error that names the fix.
pub fn classify_open(path: &Path, e: io::Error) -> VfioError {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => VfioError::PermissionDenied {
            path: path.to_path_buf(),
            owner: describe_owner(path),
        },
        Some(libc::EBUSY) => VfioError::Busy {
            path: path.to_path_buf(),
        },
        _ => VfioError::Open {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// "owner alice:kvm mode 0660" for `path` (numbers when the names are unknown).
pub fn describe_owner(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!(
            "owner {}:{} mode {:04o}",
            name_of(Path::new("/etc/passwd"), m.uid()),
            name_of(Path::new("/etc/group"), m.gid()),
            m.mode() & 0o7777
        ),
        Err(e) => format!("owner unknown: {e}"),
    }
}

/// The name of numeric id `id` in a passwd- or group-format file, else the number.
pub fn name_of(db: &Path, id: u32) -> String {
    std::fs::read_to_string(db)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut f = line.split(':');
                let name = f.next()?;
                let _pw = f.next()?;
                (f.next()?.parse::<u32>().ok()? == id).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eacces_names_the_file_and_its_owner() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("7");
        std::fs::write(&p, "").unwrap();
        let e = classify_open(&p, io::Error::from_raw_os_error(libc::EACCES));
        let msg = e.to_string();
        assert!(matches!(e, VfioError::PermissionDenied { .. }));
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert!(msg.contains("owner ") && msg.contains("mode 0"), "{msg}");
        assert!(msg.contains("run as root"), "{msg}");
    }

    #[test]
    fn ebusy_says_another_process_holds_it() {
        let e = classify_open(
            Path::new("/dev/vfio/7"),
            io::Error::from_raw_os_error(libc::EBUSY),
        );
        assert!(matches!(e, VfioError::Busy { .. }));
        assert!(e.to_string().contains("another process"), "{e}");
    }

    #[test]
    fn other_errno_is_kept() {
        let e = classify_open(Path::new("/x"), io::Error::from_raw_os_error(libc::EIO));
        match e {
            VfioError::Open { source, .. } => assert_eq!(source.raw_os_error(), Some(libc::EIO)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn not_viable_lists_the_other_members_and_the_fix() {
        let e = VfioError::NotViable {
            group: 7,
            blockers: vec![
                GroupMember {
                    bdf: "0000:01:00.0".into(),
                    driver: Some("ocxl".into()),
                },
                GroupMember {
                    bdf: "0000:01:00.2".into(),
                    driver: Some("nvme".into()),
                },
            ],
        };
        let m = e.to_string();
        assert!(
            m.contains("0000:01:00.0 (ocxl)") && m.contains("0000:01:00.2 (nvme)"),
            "{m}"
        );
        assert!(m.contains("bind each of them to vfio-pci"), "{m}");
    }

    #[test]
    fn ids_resolve_through_passwd_format_files() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("passwd");
        std::fs::write(
            &p,
            "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/a:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(name_of(&p, 1000), "alice");
        assert_eq!(name_of(&p, 4242), "4242");
        assert_eq!(name_of(&t.path().join("missing"), 5), "5");
    }
}
