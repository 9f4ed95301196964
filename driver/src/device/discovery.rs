//! Finding the cards: a scan of sysfs for PCI functions 1014:0625 (spec/device.md §7).
//!
//! The sysfs mount point is a parameter ([`DEFAULT_SYSFS_ROOT`] on a real system) so tests
//! run on fake trees. The scan reads only: `bus/pci/devices/*/{vendor,device,class,
//! numa_node,driver_override}`, the `driver` and `iommu_group` symlinks, and
//! `kernel/iommu_groups/N/devices/*`. Nothing is written here; binding is in
//! [`super::bind`].
//!
//! Group viability follows the kernel's rule (the comment above `vfio_dev_viable` in the
//! VFIO core, and "vfio: Whitelist PCI bridges", 2015): a group can be used through VFIO
//! when every device in it is driver-less, bound to a VFIO driver, bound to `pci-stub`, or
//! is a PCI interconnect device (a bridge: header type other than 0, whatever its driver,
//! usually `pcieport`). Newer kernels express the same rule as "every bound driver manages
//! its own DMA" (`driver_managed_dma`), which vfio-pci, its variant drivers, pci-stub and
//! pcieport set. See [`member_keeps_group_viable`].

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where sysfs is mounted on a real system.
pub const DEFAULT_SYSFS_ROOT: &str = "/sys";
/// IBM's PCI vendor id.
pub const VENDOR_IBM: u16 = 0x1014;
/// The OpenCAPI persistent-memory card's PCI device id.
pub const DEVICE_OCXL_PMEM: u16 = 0x0625;
/// The function that carries the pmem AFU (AFU index 0), spec §7.
pub const PMEM_FUNCTION: u8 = 1;
/// The function that configures the OpenCAPI link.
pub const LINK_FUNCTION: u8 = 0;

/// A PCI address, `domain:bus:device.function` ("0000:01:00.1").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    /// PCI domain (segment). Usually 16 bits; some host bridges (VMD) use more.
    pub domain: u32,
    /// Bus number.
    pub bus: u8,
    /// Device (slot) number, 0..=31.
    pub device: u8,
    /// Function number, 0..=7.
    pub function: u8,
}

impl Bdf {
    /// The card this function belongs to: the same address without the function.
    pub fn slot(&self) -> Slot {
        Slot {
            domain: self.domain,
            bus: self.bus,
            device: self.device,
        }
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

/// A string that is not a PCI address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a PCI address; expected domain:bus:device.function, e.g. 0000:01:00.1")]
pub struct BdfParseError {
    /// What was given.
    pub text: String,
}

impl FromStr for Bdf {
    type Err = BdfParseError;

    /// Parses `DDDD:BB:DD.F`, or `BB:DD.F` (domain 0) as `lspci` prints it.
    fn from_str(s: &str) -> Result<Bdf, BdfParseError> {
        let err = || BdfParseError {
            text: s.to_string(),
        };
        let (head, function) = s.rsplit_once('.').ok_or_else(err)?;
        let mut parts: Vec<&str> = head.split(':').collect();
        if parts.len() == 2 {
            parts.insert(0, "0");
        }
        let [domain, bus, device] = parts[..] else {
            return Err(err());
        };
        let hex = |t: &str, max_digits: usize| {
            (!t.is_empty() && t.len() <= max_digits && t.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u32::from_str_radix(t, 16).ok())
                .flatten()
        };
        let domain = hex(domain, 8).ok_or_else(err)?;
        let bus = hex(bus, 2).ok_or_else(err)? as u8;
        let device = hex(device, 2).filter(|&d| d < 32).ok_or_else(err)? as u8;
        let function = hex(function, 1).filter(|&f| f < 8).ok_or_else(err)? as u8;
        Ok(Bdf {
            domain,
            bus,
            device,
            function,
        })
    }
}

impl Serialize for Bdf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Bdf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bdf, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A card: `domain:bus:device`, all its functions share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    /// PCI domain.
    pub domain: u32,
    /// Bus number.
    pub bus: u8,
    /// Device number.
    pub device: u8,
}

impl Slot {
    /// The address of function `function` of this card.
    pub fn function(&self, function: u8) -> Bdf {
        Bdf {
            domain: self.domain,
            bus: self.bus,
            device: self.device,
            function,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}",
            self.domain, self.bus, self.device
        )
    }
}

impl Serialize for Slot {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Which kind of driver a function is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Binding {
    /// `vfio-pci`: this driver can open it.
    VfioPci,
    /// The kernel's OpenCAPI driver (`ocxl`).
    Ocxl,
    /// Some other driver (named in [`Function::driver`]).
    Other,
    /// No driver.
    None,
}

impl Binding {
    /// Classifies a driver name (from the `driver` symlink).
    pub fn of(driver: Option<&str>) -> Binding {
        match driver {
            None => Binding::None,
            Some("vfio-pci") => Binding::VfioPci,
            Some("ocxl") => Binding::Ocxl,
            Some(_) => Binding::Other,
        }
    }
}

/// True when a device bound to `driver` (and a bridge or not) lets its IOMMU group be used
/// through VFIO: the kernel's rule, see the module documentation.
pub fn member_keeps_group_viable(driver: Option<&str>, is_bridge: bool) -> bool {
    is_bridge
        || match driver {
            None => true,
            Some(d) => d == "pci-stub" || is_vfio_driver(d),
        }
}

/// vfio-pci and its variant drivers (`mlx5_vfio_pci`, `hisi_acc_vfio_pci`, ...), and other
/// VFIO bus drivers (`vfio-platform`, `vfio-fsl-mc`).
fn is_vfio_driver(d: &str) -> bool {
    d.starts_with("vfio") || d.ends_with("vfio_pci") || d.ends_with("vfio-pci")
}

/// A device in an IOMMU group other than the function itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupPeer {
    /// Its device name under `iommu_groups/N/devices` (a PCI address for PCI devices).
    pub name: String,
    /// Its bound driver.
    pub driver: Option<String>,
    /// True for a PCI bridge (header type 1 or 2), which never blocks viability.
    pub is_bridge: bool,
    /// True when this device lets the group be used (see [`member_keeps_group_viable`]).
    pub keeps_group_viable: bool,
}

/// A function's IOMMU group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IommuGroup {
    /// The group number (`/dev/vfio/N`).
    pub number: u32,
    /// True for the kernel's unsafe no-IOMMU mode (`/dev/vfio/noiommu-N`).
    pub noiommu: bool,
    /// The other devices of the group, sorted by name.
    pub peers: Vec<GroupPeer>,
    /// True when every peer keeps the group viable, so the group can be opened through
    /// VFIO once this function is bound to vfio-pci (its own binding is
    /// [`Function::binding`]).
    pub viable: bool,
}

impl IommuGroup {
    /// The peers that make the group unusable.
    pub fn blockers(&self) -> impl Iterator<Item = &GroupPeer> {
        self.peers.iter().filter(|p| !p.keeps_group_viable)
    }
}

/// One PCI function of a card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Function {
    /// Its address.
    pub bdf: Bdf,
    /// Its function number (also in `bdf`).
    pub function: u8,
    /// The bound driver's name, from the `driver` symlink.
    pub driver: Option<String>,
    /// The kind of the bound driver.
    pub binding: Binding,
    /// `driver_override`, unless unset (`(null)`) or unsupported by the kernel.
    pub driver_override: Option<String>,
    /// The IOMMU group; `None` when the IOMMU is off.
    pub iommu_group: Option<IommuGroup>,
    /// NUMA node; `None` when the platform reports none (-1) or the file is missing.
    pub numa_node: Option<u32>,
    /// True for the function that carries the pmem AFU (function 1).
    pub carries_pmem_afu: bool,
}

/// One card: the functions at one `domain:bus:device`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Card {
    /// `domain:bus:device`.
    pub slot: Slot,
    /// Its functions, by function number.
    pub functions: Vec<Function>,
}

impl Card {
    /// Function 1, which carries the pmem AFU, when it is there.
    pub fn pmem_function(&self) -> Option<&Function> {
        self.functions.iter().find(|f| f.function == PMEM_FUNCTION)
    }
}

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Discovery {
    /// The sysfs root scanned.
    pub sysfs_root: PathBuf,
    /// The cards, by address.
    pub cards: Vec<Card>,
    /// Things that looked wrong but did not stop the scan (also logged with `tracing`).
    pub warnings: Vec<String>,
}

impl Discovery {
    /// Every function of every card.
    pub fn functions(&self) -> impl Iterator<Item = &Function> {
        self.cards.iter().flat_map(|c| c.functions.iter())
    }

    /// The function at `bdf`, or an error that lists what was found.
    pub fn function(&self, bdf: &Bdf) -> Result<&Function, DiscoveryError> {
        self.functions()
            .find(|f| f.bdf == *bdf)
            .ok_or_else(|| DiscoveryError::NotFound {
                bdf: *bdf,
                sysfs_root: self.sysfs_root.clone(),
                found: self.functions().map(|f| f.bdf).collect(),
            })
    }

    /// The pmem function (function 1) of the only card, or of the card at `slot`.
    pub fn pmem_function(&self, slot: Option<Slot>) -> Result<&Function, DiscoveryError> {
        let found = || self.functions().map(|f| f.bdf).collect::<Vec<_>>();
        let cards: Vec<&Card> = self
            .cards
            .iter()
            .filter(|c| slot.is_none_or(|s| c.slot == s))
            .collect();
        match cards[..] {
            [card] => card
                .pmem_function()
                .ok_or_else(|| DiscoveryError::NotFound {
                    bdf: card.slot.function(PMEM_FUNCTION),
                    sysfs_root: self.sysfs_root.clone(),
                    found: found(),
                }),
            [] => Err(match slot {
                Some(s) => DiscoveryError::NotFound {
                    bdf: s.function(PMEM_FUNCTION),
                    sysfs_root: self.sysfs_root.clone(),
                    found: found(),
                },
                None => DiscoveryError::NoCard {
                    sysfs_root: self.sysfs_root.clone(),
                },
            }),
            _ => Err(DiscoveryError::Ambiguous {
                cards: cards.iter().map(|c| c.slot).collect(),
            }),
        }
    }

    /// The function at `bdf`, required to be bound to vfio-pci in a viable group: the check
    /// to make before opening it through kernel VFIO.
    pub fn usable_through_vfio(&self, bdf: &Bdf) -> Result<&Function, DiscoveryError> {
        let f = self.function(bdf)?;
        if f.binding != Binding::VfioPci {
            return Err(DiscoveryError::WrongDriver {
                bdf: *bdf,
                driver: f.driver.clone(),
                commands: bind_commands(&self.sysfs_root, bdf, f.driver.as_deref()),
            });
        }
        match &f.iommu_group {
            None => Err(DiscoveryError::NoIommuGroup { bdf: *bdf }),
            Some(g) if !g.viable => Err(DiscoveryError::GroupNotViable {
                group: g.number,
                blockers: describe_peers(g.blockers()),
            }),
            Some(_) => Ok(f),
        }
    }
}

/// "0000:00:01.0 (nvme), 0000:00:01.1 (no driver)".
pub(crate) fn describe_peers<'a>(peers: impl Iterator<Item = &'a GroupPeer>) -> String {
    peers
        .map(|p| {
            format!(
                "{} ({})",
                p.name,
                p.driver.as_deref().unwrap_or("no driver")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The shell commands that bind `bdf` to vfio-pci through `driver_override`.
pub fn bind_commands(root: &Path, bdf: &Bdf, current: Option<&str>) -> String {
    let dev = root.join("bus/pci/devices").join(bdf.to_string());
    let mut lines = vec!["modprobe vfio-pci".to_string()];
    if current.is_some() {
        lines.push(format!(
            "echo {bdf} > {}",
            dev.join("driver/unbind").display()
        ));
    }
    lines.push(format!(
        "echo vfio-pci > {}",
        dev.join("driver_override").display()
    ));
    lines.push(format!(
        "echo {bdf} > {}",
        root.join("bus/pci/drivers_probe").display()
    ));
    lines.join("; ")
}

/// Why a scan or a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// sysfs has no PCI bus directory.
    #[error(
        "{} cannot be read ({source}): sysfs is not mounted there, or this system has no PCI. \
         Fix: mount sysfs (`mount -t sysfs sysfs /sys`) or give the right sysfs root",
        path.display()
    )]
    NoPciBus {
        /// `<root>/bus/pci/devices`.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No such function among the cards found.
    #[error(
        "no OpenCAPI pmem function {bdf} (1014:0625) under {}; found: {}",
        sysfs_root.display(), list_found(found)
    )]
    NotFound {
        /// What was asked for.
        bdf: Bdf,
        /// The sysfs root scanned.
        sysfs_root: PathBuf,
        /// Every 1014:0625 function found.
        found: Vec<Bdf>,
    },
    /// No card at all.
    #[error(
        "no OpenCAPI pmem card (1014:0625) under {}: is it seated and powered? \
         (`lspci -d 1014:0625`)",
        sysfs_root.display()
    )]
    NoCard {
        /// The sysfs root scanned.
        sysfs_root: PathBuf,
    },
    /// More than one card and none chosen.
    #[error("{} cards found ({}); choose one by address", cards.len(), cards.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "))]
    Ambiguous {
        /// The cards.
        cards: Vec<Slot>,
    },
    /// The function is not bound to vfio-pci.
    #[error(
        "{bdf} is bound to {}, not vfio-pci. Fix: `ocxlpmem-ctl bind {bdf}`, or as root: {commands}",
        driver.as_deref().unwrap_or("no driver")
    )]
    WrongDriver {
        /// The function.
        bdf: Bdf,
        /// Its driver.
        driver: Option<String>,
        /// The shell commands that bind it.
        commands: String,
    },
    /// The function has no IOMMU group.
    #[error(
        "{bdf} has no IOMMU group: the IOMMU is disabled. Fix: boot with the IOMMU on \
         (intel_iommu=on or amd_iommu=on; always on for POWER), or, without isolation, \
         `modprobe vfio enable_unsafe_noiommu_mode=1`"
    )]
    NoIommuGroup {
        /// The function.
        bdf: Bdf,
    },
    /// Other devices of the group are bound to host drivers.
    #[error(
        "IOMMU group {group} is not viable: other devices in it are bound to host drivers: \
         {blockers}. Fix: bind each of them to vfio-pci too (`ocxlpmem-ctl bind <bdf>`), or \
         unbind them, or move the card to a slot with its own group"
    )]
    GroupNotViable {
        /// Group number.
        group: u32,
        /// The blocking devices and their drivers.
        blockers: String,
    },
}

fn list_found(found: &[Bdf]) -> String {
    if found.is_empty() {
        "none (is the card seated and powered? `lspci -d 1014:0625`)".to_string()
    } else {
        found
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Reads a sysfs attribute, trimmed.
pub(crate) fn read_attr(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Parses a sysfs hex id ("0x1014").
fn parse_hex_id(s: &str) -> Option<u16> {
    u16::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok()
}

/// The last path component a symlink points to (`driver`, `iommu_group`).
pub(crate) fn link_name(path: &Path) -> Option<String> {
    let target = fs::read_link(path).ok()?;
    target.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// True when the device at `dir` is a PCI bridge: header type 1 (PCI-PCI) or 2 (CardBus),
/// from config space byte 0x0E (readable by anyone), else from the class code.
pub(crate) fn is_bridge(dir: &Path) -> bool {
    if let Ok(cfg) = fs::read(dir.join("config")) {
        if let Some(&h) = cfg.get(0x0e) {
            return h & 0x7f != 0;
        }
    }
    read_attr(&dir.join("class"))
        .and_then(|c| u32::from_str_radix(c.strip_prefix("0x").unwrap_or(&c), 16).ok())
        .is_some_and(|c| matches!(c >> 8, 0x0604 | 0x0607 | 0x0609))
}

/// Reads function `bdf`'s IOMMU group from sysfs.
pub(crate) fn read_group(root: &Path, dir: &Path, bdf: &Bdf) -> Option<IommuGroup> {
    let number: u32 = link_name(&dir.join("iommu_group"))?.parse().ok()?;
    let gdir = root.join("kernel/iommu_groups").join(number.to_string());
    let noiommu = read_attr(&gdir.join("name")).is_some_and(|n| n == "vfio-noiommu");
    let me = bdf.to_string();
    let mut peers: Vec<GroupPeer> = fs::read_dir(gdir.join("devices"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| *n != me)
                .map(|name| {
                    let pdir = gdir.join("devices").join(&name);
                    let driver = link_name(&pdir.join("driver"));
                    let is_bridge = is_bridge(&pdir);
                    GroupPeer {
                        keeps_group_viable: member_keeps_group_viable(driver.as_deref(), is_bridge),
                        name,
                        driver,
                        is_bridge,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    Some(IommuGroup {
        number,
        noiommu,
        viable: peers.iter().all(|p| p.keeps_group_viable),
        peers,
    })
}

/// Scans `<root>/bus/pci/devices` for 1014:0625 functions and groups them into cards.
pub fn scan(root: impl AsRef<Path>) -> Result<Discovery, DiscoveryError> {
    let root = root.as_ref();
    let devices = root.join("bus/pci/devices");
    let rd = fs::read_dir(&devices).map_err(|source| DiscoveryError::NoPciBus {
        path: devices.clone(),
        source,
    })?;
    let mut warnings = Vec::new();
    let mut warn = |w: String| {
        tracing::warn!("{w}");
        warnings.push(w);
    };
    let mut cards: BTreeMap<Slot, Vec<Function>> = BTreeMap::new();
    for entry in rd.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let dir = devices.join(&name);
        let ids = (
            read_attr(&dir.join("vendor"))
                .as_deref()
                .and_then(parse_hex_id),
            read_attr(&dir.join("device"))
                .as_deref()
                .and_then(parse_hex_id),
        );
        match ids {
            (Some(VENDOR_IBM), Some(DEVICE_OCXL_PMEM)) => {}
            (Some(_), Some(_)) => continue,
            _ => {
                warn(format!(
                    "{}: vendor/device ids unreadable; skipped",
                    dir.display()
                ));
                continue;
            }
        }
        let Ok(bdf) = name.parse::<Bdf>() else {
            warn(format!(
                "{}: a 1014:0625 device whose name is not a PCI address; skipped",
                dir.display()
            ));
            continue;
        };
        let driver = link_name(&dir.join("driver"));
        let driver_override = read_attr(&dir.join("driver_override")).filter(|o| o != "(null)");
        let iommu_group = read_group(root, &dir, &bdf);
        let numa_node = read_attr(&dir.join("numa_node")).and_then(|n| n.parse::<u32>().ok());
        if iommu_group.is_none() {
            warn(format!(
                "{bdf}: no IOMMU group (the IOMMU is off); it cannot be used through VFIO"
            ));
        }
        if let (Some(o), Some(d)) = (&driver_override, &driver) {
            if o != d {
                warn(format!(
                    "{bdf}: driver_override is {o} but it is bound to {d}; the override \
                     takes effect at the next probe"
                ));
            }
        }
        cards.entry(bdf.slot()).or_default().push(Function {
            function: bdf.function,
            binding: Binding::of(driver.as_deref()),
            carries_pmem_afu: bdf.function == PMEM_FUNCTION,
            bdf,
            driver,
            driver_override,
            iommu_group,
            numa_node,
        });
    }
    let mut out = Vec::with_capacity(cards.len());
    for (slot, mut functions) in cards {
        functions.sort_by_key(|f| f.function);
        if !functions.iter().any(|f| f.function == PMEM_FUNCTION) {
            warn(format!(
                "card {slot}: no function 1, which carries the pmem AFU (spec §7); found \
                 function(s) {}",
                list_functions(&functions)
            ));
        }
        for f in functions.iter().filter(|f| f.function > PMEM_FUNCTION) {
            warn(format!(
                "{}: unexpected function {} on an OpenCAPI pmem card (only 0 = link and \
                 1 = pmem AFU are known); ignored by this driver",
                f.bdf, f.function
            ));
        }
        out.push(Card { slot, functions });
    }
    Ok(Discovery {
        sysfs_root: root.to_path_buf(),
        cards: out,
        warnings,
    })
}

fn list_functions(functions: &[Function]) -> String {
    functions
        .iter()
        .map(|f| f.function.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fake sysfs trees for tests of discovery and binding.
#[cfg(test)]
pub(crate) mod fake;

#[cfg(test)]
mod tests;
