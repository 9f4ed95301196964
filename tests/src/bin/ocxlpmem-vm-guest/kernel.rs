//! The guest kernel's PCI view through sysfs: finding the card and binding it to vfio-pci
//! the way an administrator would (`driver_override`, then `drivers_probe`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A PCI function found in sysfs.
#[derive(Debug, Clone)]
pub struct PciFunction {
    /// `0000:00:04.1`.
    pub bdf: String,
    /// Vendor and device id.
    pub id: (u16, u16),
    /// The driver it is bound to, if any.
    pub driver: Option<String>,
    /// Its IOMMU group number, if it has one.
    pub group: Option<u32>,
}

impl PciFunction {
    /// The function number (the digit after the dot).
    pub fn function(&self) -> Option<u8> {
        self.bdf.rsplit('.').next()?.parse().ok()
    }
}

fn sys_dir(bdf: &str) -> PathBuf {
    Path::new("/sys/bus/pci/devices").join(bdf)
}

fn read_hex_u16(path: &Path) -> io::Result<u16> {
    let s = fs::read_to_string(path)?;
    u16::from_str_radix(s.trim().trim_start_matches("0x"), 16).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

fn link_name(path: &Path) -> Option<String> {
    let target = fs::read_link(path).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// Reads one function's state from sysfs.
pub fn function(bdf: &str) -> io::Result<PciFunction> {
    let d = sys_dir(bdf);
    Ok(PciFunction {
        bdf: bdf.to_string(),
        id: (
            read_hex_u16(&d.join("vendor"))?,
            read_hex_u16(&d.join("device"))?,
        ),
        driver: link_name(&d.join("driver")),
        group: link_name(&d.join("iommu_group")).and_then(|g| g.parse().ok()),
    })
}

/// Every PCI function in sysfs, sorted by address.
pub fn scan() -> io::Result<Vec<PciFunction>> {
    let mut out = Vec::new();
    for e in fs::read_dir("/sys/bus/pci/devices")? {
        let name = e?.file_name().to_string_lossy().into_owned();
        out.push(function(&name)?);
    }
    out.sort_by(|a, b| a.bdf.cmp(&b.bdf));
    Ok(out)
}

/// Binds `bdf` to vfio-pci through `driver_override` and `drivers_probe`, and waits
/// (bounded) for its group's `/dev/vfio/N`.
pub fn bind_vfio_pci(bdf: &str) -> Result<PciFunction, String> {
    let d = sys_dir(bdf);
    let f = function(bdf).map_err(|e| format!("{bdf}: {e}"))?;
    if f.driver.as_deref() == Some("vfio-pci") {
        return Ok(f);
    }
    if f.driver.is_some() {
        fs::write(d.join("driver/unbind"), bdf).map_err(|e| format!("unbind {bdf}: {e}"))?;
    }
    fs::write(d.join("driver_override"), "vfio-pci")
        .map_err(|e| format!("driver_override: {e}"))?;
    fs::write("/sys/bus/pci/drivers_probe", bdf).map_err(|e| format!("drivers_probe: {e}"))?;
    let f = function(bdf).map_err(|e| format!("{bdf}: {e}"))?;
    if f.driver.as_deref() != Some("vfio-pci") {
        return Err(format!(
            "{bdf} is bound to {:?} after drivers_probe",
            f.driver
        ));
    }
    let group = f.group.ok_or_else(|| format!("{bdf} has no iommu_group"))?;
    let node = format!("/dev/vfio/{group}");
    if !wait_for(Duration::from_secs(2), || Path::new(&node).exists()) {
        return Err(format!("{node} did not appear within 2 s"));
    }
    Ok(f)
}

/// Polls `ready` every millisecond until it holds or `limit` passes (checked once more at
/// the deadline); returns whether it held.
pub fn wait_for(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if ready() {
            return true;
        }
        if t0.elapsed() >= limit {
            return ready();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
