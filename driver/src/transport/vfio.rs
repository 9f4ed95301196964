//! The kernel VFIO transport (legacy container/group API).
//!
//! Opening a function: find its IOMMU group in sysfs, open the container
//! (`/dev/vfio/vfio`) and the group (`/dev/vfio/N`), check that the group is viable,
//! attach it, give the container the best IOMMU type it offers ([`IommuType::PREFERENCE`]),
//! then get the device fd and describe its regions. Trapped accesses are `pread`/`pwrite`
//! on the device fd at the region's offset; mappings are `mmap` of the same fd.
//!
//! The choices and error messages are plain functions ([`iommu::choose`],
//! [`error::classify_open`], [`group::lookup`], [`region_from_raw`]) so they are tested
//! without VFIO; the VM tier runs the whole path against a real kernel. From a guest:
//! `VfioTransport::open("0000:00:05.0")`, then `device::Card::open`.

pub mod error;
pub mod group;
pub mod iommu;

pub use error::VfioError;
pub use group::{GroupInfo, GroupMember};
pub use iommu::IommuType;

use super::{
    EehState, IrqInfo, RegionFlags, RegionInfo, RegionMap, Result, Transport, TransportError,
};
use crate::sys::{self, caps::sparse_areas, RegionInfoRaw};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use vfio_bindings::bindings::vfio::{
    VFIO_EEH, VFIO_EEH_PE_CONFIGURE, VFIO_EEH_PE_GET_STATE, VFIO_EEH_PE_RESET_DEACTIVATE,
    VFIO_EEH_PE_RESET_HOT, VFIO_EEH_PE_STATE_NORMAL, VFIO_EEH_PE_STATE_RESET,
    VFIO_EEH_PE_STATE_STOPPED, VFIO_EEH_PE_STATE_STOPPED_DMA, VFIO_EEH_PE_UNFREEZE_DMA,
    VFIO_EEH_PE_UNFREEZE_IO, VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ,
    VFIO_REGION_INFO_FLAG_WRITE,
};

/// Where the kernel's files are (parameters so tests can point at fake trees).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfioPaths {
    /// The sysfs mount point (`/sys`).
    pub sysfs: PathBuf,
    /// The VFIO device directory (`/dev/vfio`).
    pub dev_vfio: PathBuf,
}

impl Default for VfioPaths {
    fn default() -> Self {
        VfioPaths {
            sysfs: PathBuf::from("/sys"),
            dev_vfio: PathBuf::from("/dev/vfio"),
        }
    }
}

/// A region as the kernel describes it, plus where it lives in the device fd.
#[derive(Debug, Clone)]
struct Region {
    info: RegionInfo,
    fd_offset: u64,
}

/// A PCI function opened through kernel VFIO.
#[derive(Debug)]
pub struct VfioTransport {
    bdf: String,
    group: GroupInfo,
    group_path: PathBuf,
    iommu: IommuType,
    eeh: bool,
    regions: Vec<Option<Region>>,
    // Drop order matters: the device fd goes first, then the group, then the container.
    device: File,
    group_fd: OwnedFd,
    container: OwnedFd,
}

/// Converts the kernel's region description to the transport's. With the mmap flag and no
/// sparse capability the whole region is one area; areas that do not lie inside the
/// region, or are empty, are dropped (they could never be mapped safely).
pub fn region_from_raw(raw: &RegionInfoRaw) -> RegionInfo {
    let flags = RegionFlags {
        read: raw.flags & VFIO_REGION_INFO_FLAG_READ != 0,
        write: raw.flags & VFIO_REGION_INFO_FLAG_WRITE != 0,
        mmap: raw.flags & VFIO_REGION_INFO_FLAG_MMAP != 0,
    };
    let mmap_areas = match (flags.mmap, sparse_areas(&raw.caps)) {
        (false, _) => Vec::new(),
        (true, Some(areas)) => areas
            .iter()
            .copied()
            .filter(|&(o, s)| s > 0 && o.checked_add(s).is_some_and(|e| e <= raw.size))
            .collect(),
        (true, None) if raw.size > 0 => vec![(0, raw.size)],
        (true, None) => Vec::new(),
    };
    RegionInfo {
        index: raw.index,
        size: raw.size,
        flags,
        mmap_areas,
    }
}

/// Maps a `VFIO_EEH_PE_GET_STATE` answer to [`EehState`].
pub fn eeh_state_from_raw(state: i32) -> EehState {
    match u32::try_from(state) {
        Ok(VFIO_EEH_PE_STATE_NORMAL) => EehState::Normal,
        // Either MMIO and DMA or only DMA are stopped: the PE is frozen.
        Ok(VFIO_EEH_PE_STATE_STOPPED) | Ok(VFIO_EEH_PE_STATE_STOPPED_DMA) => EehState::Frozen,
        Ok(VFIO_EEH_PE_STATE_RESET) => EehState::Unavailable,
        _ => EehState::Unavailable,
    }
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

impl VfioTransport {
    /// Opens `bdf` ("0000:01:00.1") with the kernel's usual paths.
    pub fn open(bdf: &str) -> std::result::Result<Self, VfioError> {
        Self::open_with(bdf, &VfioPaths::default())
    }

    /// Opens `bdf` with the sysfs and `/dev/vfio` locations given.
    pub fn open_with(bdf: &str, paths: &VfioPaths) -> std::result::Result<Self, VfioError> {
        let group = group::lookup(&paths.sysfs, bdf)?;
        let cpath = paths.dev_vfio.join("vfio");
        let container: OwnedFd = match open_rw(&cpath) {
            Ok(f) => f.into(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(VfioError::VfioMissing { path: cpath })
            }
            Err(e) => return Err(error::classify_open(&cpath, e)),
        };
        let version = sys::get_api_version(container.as_fd())?;
        if version != vfio_bindings::bindings::vfio::VFIO_API_VERSION as i32 {
            return Err(VfioError::ApiVersion { got: version });
        }
        let group_path = group.dev_path(&paths.dev_vfio);
        let group_fd: OwnedFd = match open_rw(&group_path) {
            Ok(f) => f.into(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(VfioError::NotBoundToVfio {
                    bdf: bdf.to_string(),
                    driver: group::bound_driver(&paths.sysfs, bdf),
                    path: group_path,
                })
            }
            Err(e) => return Err(error::classify_open(&group_path, e)),
        };
        let status = sys::group_get_status(group_fd.as_fd())?;
        if !status.viable {
            return Err(VfioError::NotViable {
                group: group.number,
                blockers: group.blockers(bdf),
            });
        }
        if !status.container_set {
            sys::group_set_container(group_fd.as_fd(), container.as_fd())?;
        }
        let iommu = iommu::choose(|t| sys::check_extension(container.as_fd(), t.extension()))
            .ok_or(VfioError::NoIommuType)?;
        sys::set_iommu(container.as_fd(), iommu.extension())?;
        if iommu.needs_enable() {
            sys::iommu_enable(container.as_fd())?;
        }
        if iommu.is_spapr() {
            // Informational: the pmem use needs no DMA, but the window says the IOMMU works.
            if let Ok(info) = sys::spapr_tce_get_info(container.as_fd()) {
                tracing::debug!(?info, "sPAPR TCE IOMMU");
            }
        }
        let eeh = iommu.is_spapr() && sys::check_extension(container.as_fd(), VFIO_EEH)?;
        let device = File::from(sys::group_get_device_fd(group_fd.as_fd(), bdf)?);
        let dinfo = sys::device_get_info(device.as_fd())?;
        let regions = (0..dinfo.num_regions.min(super::region::COUNT))
            .map(|i| {
                // Absent regions (no VGA, no ROM) answer EINVAL: keep them as None.
                sys::device_get_region_info(device.as_fd(), i)
                    .ok()
                    .map(|raw| Region {
                        info: region_from_raw(&raw),
                        fd_offset: raw.offset,
                    })
            })
            .collect();
        tracing::info!(
            bdf,
            group = group.number,
            iommu = iommu.name(),
            eeh,
            "opened through VFIO"
        );
        Ok(VfioTransport {
            bdf: bdf.to_string(),
            group,
            group_path,
            iommu,
            eeh,
            regions,
            device,
            group_fd,
            container,
        })
    }

    /// The function's PCI address.
    pub fn bdf(&self) -> &str {
        &self.bdf
    }

    /// The IOMMU type the container was given.
    pub fn iommu_type(&self) -> IommuType {
        self.iommu
    }

    /// The IOMMU group and its members.
    pub fn group(&self) -> &GroupInfo {
        &self.group
    }

    /// The group's character device.
    pub fn group_path(&self) -> &Path {
        &self.group_path
    }

    /// The group fd (for a second device of the same group).
    pub fn group_fd(&self) -> BorrowedFd<'_> {
        self.group_fd.as_fd()
    }

    /// The device fd.
    pub fn device_fd(&self) -> BorrowedFd<'_> {
        self.device.as_fd()
    }

    fn region(&self, index: u32) -> Result<&Region> {
        self.regions
            .get(index as usize)
            .and_then(|r| r.as_ref())
            .filter(|r| r.info.size > 0)
            .ok_or_else(|| TransportError::NoSuchRegion {
                index,
                device: self.describe(),
            })
    }

    fn checked(&self, index: u32, offset: u64, len: usize) -> Result<u64> {
        let r = self.region(index)?;
        let len = len as u64;
        match offset.checked_add(len) {
            Some(end) if end <= r.info.size => Ok(r.fd_offset + offset),
            _ => Err(TransportError::OutOfBounds {
                index,
                offset,
                len,
                size: r.info.size,
            }),
        }
    }

    fn eeh_op(&self, op: u32) -> Result<i32> {
        sys::eeh_pe_op(self.container.as_fd(), op).map_err(|e| TransportError::Io {
            op: format!("VFIO_EEH_PE_OP {op} on {}", self.bdf),
            source: io::Error::from_raw_os_error(e.errno().unwrap_or(libc::EIO)),
        })
    }
}

fn sys_err(e: sys::SysError) -> TransportError {
    let op = e.to_string();
    let source = match e.errno() {
        Some(n) => io::Error::from_raw_os_error(n),
        None => io::Error::other(e.to_string()),
    };
    TransportError::Io { op, source }
}

impl Transport for VfioTransport {
    fn describe(&self) -> String {
        format!(
            "vfio {} (group {}, {})",
            self.bdf,
            self.group.number,
            self.iommu.name()
        )
    }

    fn config_read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.region_read(super::region::CONFIG, offset, buf)
    }

    fn config_write(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.region_write(super::region::CONFIG, offset, data)
    }

    fn region_info(&self, index: u32) -> Result<RegionInfo> {
        Ok(self.region(index)?.info.clone())
    }

    fn region_read(&self, index: u32, offset: u64, buf: &mut [u8]) -> Result<()> {
        let at = self.checked(index, offset, buf.len())?;
        self.device
            .read_exact_at(buf, at)
            .map_err(|source| TransportError::Io {
                op: format!("pread region {index} at {offset:#x} of {}", self.bdf),
                source,
            })
    }

    fn region_write(&self, index: u32, offset: u64, data: &[u8]) -> Result<()> {
        let at = self.checked(index, offset, data.len())?;
        self.device
            .write_all_at(data, at)
            .map_err(|source| TransportError::Io {
                op: format!("pwrite region {index} at {offset:#x} of {}", self.bdf),
                source,
            })
    }

    fn map_region(&self, index: u32, offset: u64, len: u64) -> Result<RegionMap> {
        let r = self.region(index)?;
        let refuse = |why: &str| TransportError::NotMappable {
            index,
            offset,
            len,
            why: why.to_string(),
        };
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|p| u64::try_from(p).ok())
            .unwrap_or(4096);
        if !offset.is_multiple_of(page) {
            return Err(refuse("offset is not page aligned"));
        }
        RegionMap::map_file(
            self.device.as_fd(),
            r.fd_offset,
            &r.info,
            offset,
            len,
            &self.bdf.to_string(),
        )
    }

    fn irq_info(&self, index: u32) -> Result<IrqInfo> {
        let i = sys::device_get_irq_info(self.device.as_fd(), index).map_err(sys_err)?;
        Ok(IrqInfo {
            index,
            count: i.count,
            eventfd: i.eventfd(),
        })
    }

    fn set_irq_eventfds(&self, index: u32, fds: &[OwnedFd]) -> Result<()> {
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        sys::device_set_irq_eventfds(self.device.as_fd(), index, &raw).map_err(sys_err)
    }

    fn reset(&self) -> Result<()> {
        sys::device_reset(self.device.as_fd()).map_err(sys_err)
    }

    fn eeh_state(&self) -> Result<EehState> {
        if !self.eeh {
            return Ok(EehState::NotSupported);
        }
        Ok(eeh_state_from_raw(self.eeh_op(VFIO_EEH_PE_GET_STATE)?))
    }

    fn eeh_recover(&self) -> Result<()> {
        if !self.eeh {
            return Err(TransportError::Unsupported {
                op: "EEH recovery",
                device: self.describe(),
            });
        }
        // First the cheap way: let MMIO and DMA through again.
        self.eeh_op(VFIO_EEH_PE_UNFREEZE_IO)?;
        self.eeh_op(VFIO_EEH_PE_UNFREEZE_DMA)?;
        if self.eeh_state()? == EehState::Normal {
            return Ok(());
        }
        // Then a hot reset of the PE and a reconfiguration of its BARs.
        self.eeh_op(VFIO_EEH_PE_RESET_HOT)?;
        self.eeh_op(VFIO_EEH_PE_RESET_DEACTIVATE)?;
        self.eeh_op(VFIO_EEH_PE_CONFIGURE)?;
        match self.eeh_state()? {
            EehState::Normal => Ok(()),
            other => Err(TransportError::Gone {
                device: self.describe(),
                detail: format!("PE still {other:?} after unfreeze and hot reset"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::group::fake::add_device;
    use super::*;
    use crate::sys::RegionCap;

    fn raw(flags: u32, size: u64, caps: Vec<RegionCap>) -> RegionInfoRaw {
        RegionInfoRaw {
            index: 0,
            flags,
            size,
            offset: 0,
            caps,
        }
    }

    const RW: u32 = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;

    #[test]
    fn mmap_without_sparse_cap_is_the_whole_region() {
        let r = region_from_raw(&raw(RW | VFIO_REGION_INFO_FLAG_MMAP, 0x10000, vec![]));
        assert_eq!(r.mmap_areas, vec![(0, 0x10000)]);
        assert!(r.flags.read && r.flags.write && r.flags.mmap);
    }

    #[test]
    fn sparse_areas_outside_the_region_are_dropped() {
        let caps = vec![RegionCap::SparseMmap(vec![
            (0x1000, 0x8000),
            (0xF000, 0x2000),
            (0x9000, 0),
            (u64::MAX, 2),
        ])];
        let r = region_from_raw(&raw(RW | VFIO_REGION_INFO_FLAG_MMAP, 0x10000, caps));
        assert_eq!(r.mmap_areas, vec![(0x1000, 0x8000)]);
    }

    #[test]
    fn no_mmap_flag_means_no_areas() {
        let caps = vec![RegionCap::SparseMmap(vec![(0, 0x1000)])];
        let r = region_from_raw(&raw(RW, 0x10000, caps));
        assert!(r.mmap_areas.is_empty() && !r.flags.mmap);
    }

    #[test]
    fn eeh_states() {
        assert_eq!(eeh_state_from_raw(0), EehState::Normal);
        assert_eq!(eeh_state_from_raw(2), EehState::Frozen);
        assert_eq!(eeh_state_from_raw(4), EehState::Frozen);
        assert_eq!(eeh_state_from_raw(1), EehState::Unavailable);
        assert_eq!(eeh_state_from_raw(5), EehState::Unavailable);
        assert_eq!(eeh_state_from_raw(-1), EehState::Unavailable);
    }

    fn fake_paths(t: &Path) -> VfioPaths {
        let p = VfioPaths {
            sysfs: t.join("sys"),
            dev_vfio: t.join("dev/vfio"),
        };
        std::fs::create_dir_all(&p.dev_vfio).unwrap();
        p
    }

    /// Fake paths with one card, 0000:01:00.1, bound to vfio-pci in IOMMU group 7.
    fn bound_card(t: &Path) -> VfioPaths {
        let p = fake_paths(t);
        add_device(
            &p.sysfs,
            "0000:01:00.1",
            (0x1014, 0x0625),
            Some("vfio-pci"),
            Some(7),
        );
        p
    }

    #[test]
    fn open_without_vfio_module_says_modprobe() {
        let t = tempfile::tempdir().unwrap();
        let p = bound_card(t.path());
        let e = VfioTransport::open_with("0000:01:00.1", &p).unwrap_err();
        assert!(matches!(e, VfioError::VfioMissing { .. }), "{e:?}");
        assert!(e.to_string().contains("modprobe vfio-pci"), "{e}");
    }

    #[test]
    fn a_container_that_is_not_vfio_fails_with_the_ioctl_name() {
        let t = tempfile::tempdir().unwrap();
        let p = bound_card(t.path());
        std::fs::write(p.dev_vfio.join("vfio"), "").unwrap();
        let e = VfioTransport::open_with("0000:01:00.1", &p).unwrap_err();
        match e {
            VfioError::Sys(s) => {
                assert_eq!(s.ioctl(), "VFIO_GET_API_VERSION");
                assert_eq!(s.errno(), Some(libc::ENOTTY));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn open_of_unknown_device_says_not_found() {
        let t = tempfile::tempdir().unwrap();
        let p = fake_paths(t.path());
        let e = VfioTransport::open_with("0000:01:00.1", &p).unwrap_err();
        assert!(matches!(e, VfioError::DeviceNotFound { .. }));
        assert!(e.to_string().contains("ocxlpmem-ctl list"));
    }
}
