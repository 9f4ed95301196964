//! Binding a function to vfio-pci through `driver_override`, and giving it back.
//!
//! The sequence (the one `dpdk-devbind` and `driverctl` use, Linux >= 3.16):
//! 1. unbind from the current driver: write the address to `<dev>/driver/unbind`;
//! 2. write `vfio-pci` to `<dev>/driver_override`, so only vfio-pci may claim it;
//! 3. write the address to `<root>/bus/pci/drivers_probe`: the kernel probes it again;
//! 4. check that `<dev>/driver` now points at vfio-pci.
//!
//! Restoring clears (or puts back) the override and binds the previous driver through
//! `<root>/bus/pci/drivers/<driver>/bind`. Every write goes through [`SysfsWriter`], the
//! seam that lets tests stand in for the kernel on a fake tree.
//!
//! Caution: unbinding a function from vfio-pci while a process holds it open blocks in the
//! kernel until that process lets go (vfio-pci asks the holder to release the device).

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::discovery::{self, bind_commands, describe_peers, link_name, read_attr, Bdf};
use crate::transport::vfio::error::describe_owner;

/// The one place sysfs is written.
pub trait SysfsWriter {
    /// Writes `value` to the attribute at `path`, as `echo value > path` would.
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
}

impl<T: SysfsWriter + ?Sized> SysfsWriter for &T {
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        (**self).write(path, value)
    }
}

/// Writes to the real sysfs: open an existing attribute for writing (never create one),
/// write the value in one `write(2)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelSysfs;

impl SysfsWriter for KernelSysfs {
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)?;
        // sysfs takes one write per store; a short write would be an error from the kernel.
        let n = f.write(value.as_bytes())?;
        if n != value.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write ({n} of {} bytes)", value.len()),
            ));
        }
        Ok(())
    }
}

/// Choices for [`Binder::bind_vfio`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BindOptions {
    /// Unbind a function that a driver other than vfio-pci holds (it may be in use: an
    /// `ocxl` function may back a mounted filesystem). Off by default.
    pub take_from_other_driver: bool,
}

/// What a bind changed, so [`Binder::restore`] can undo it (also later, from another
/// process: it round-trips through JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindRecord {
    /// The function.
    pub bdf: Bdf,
    /// The driver it was bound to before.
    pub previous_driver: Option<String>,
    /// Its `driver_override` before (unset: `None`).
    pub previous_override: Option<String>,
    /// False when it was already bound to vfio-pci and nothing was written.
    pub changed: bool,
}

/// Why binding or restoring failed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Scanning sysfs failed.
    #[error(transparent)]
    Discovery(#[from] discovery::DiscoveryError),
    /// No such PCI device.
    #[error("no PCI device {bdf} ({} does not exist); OpenCAPI pmem functions found: {}", path.display(), list(found))]
    NotFound {
        /// The address asked for.
        bdf: Bdf,
        /// The sysfs directory looked for.
        path: PathBuf,
        /// The 1014:0625 functions that exist.
        found: Vec<Bdf>,
    },
    /// The vfio-pci driver is not registered.
    #[error("{} does not exist: the vfio-pci module is not loaded. Fix: `modprobe vfio-pci`", path.display())]
    VfioPciNotLoaded {
        /// `<root>/bus/pci/drivers/vfio-pci`.
        path: PathBuf,
    },
    /// Another driver holds the function and taking it was not asked for.
    #[error(
        "{bdf} is bound to {driver}, which may be using it. To take it over: \
         `ocxlpmem-ctl bind --force {bdf}`, or as root: {commands}"
    )]
    BoundToOtherDriver {
        /// The function.
        bdf: Bdf,
        /// Its driver.
        driver: String,
        /// The shell commands that bind it.
        commands: String,
    },
    /// Binding would leave the group unusable.
    #[error(
        "IOMMU group {group} of {bdf} is not viable: other devices in it are bound to host \
         drivers: {blockers}. Fix: bind them in the same call (`ocxlpmem-ctl bind {bdf} {}`), \
         or unbind them (`echo <bdf> > /sys/bus/pci/devices/<bdf>/driver/unbind`)",
        others.join(" ")
    )]
    GroupNotViable {
        /// The function asked for.
        bdf: Bdf,
        /// Its group.
        group: u32,
        /// The blocking devices and their drivers.
        blockers: String,
        /// The blocking devices' names.
        others: Vec<String>,
    },
    /// The function has no IOMMU group, so vfio-pci would refuse it.
    #[error(
        "{bdf} has no IOMMU group: the IOMMU is disabled, and vfio-pci refuses devices \
         without one. Fix: boot with the IOMMU on (intel_iommu=on or amd_iommu=on; always on \
         for POWER), or, without isolation, `modprobe vfio enable_unsafe_noiommu_mode=1`"
    )]
    NoIommuGroup {
        /// The function.
        bdf: Bdf,
    },
    /// A sysfs write was refused.
    #[error(
        "permission denied writing {} ({owner}): binding drivers needs root. Fix: run as root \
         (`sudo ocxlpmem-ctl bind ...`)",
        path.display()
    )]
    PermissionDenied {
        /// The attribute.
        path: PathBuf,
        /// Its owner and mode.
        owner: String,
    },
    /// The kernel has no `driver_override`.
    #[error("{} does not exist: this kernel has no driver_override (Linux >= 3.16 has it). Fix: use `echo 1014 0625 > /sys/bus/pci/drivers/vfio-pci/new_id` instead", path.display())]
    NoDriverOverride {
        /// The attribute looked for.
        path: PathBuf,
    },
    /// The driver to give the function back to is not loaded.
    #[error("{} does not exist: driver {driver} is not loaded. Fix: `modprobe {driver}`, then `ocxlpmem-ctl unbind {bdf}` again", path.display())]
    DriverNotLoaded {
        /// The function.
        bdf: Bdf,
        /// The driver.
        driver: String,
        /// `<root>/bus/pci/drivers/<driver>`.
        path: PathBuf,
    },
    /// The writes went through but the function did not end up on the driver.
    #[error(
        "{bdf} is bound to {} after the probe, not {expected}. The driver refused it: see \
         `dmesg | tail` (for vfio-pci: is the IOMMU on? is the device in a group?)",
        found.as_deref().unwrap_or("no driver")
    )]
    BindFailed {
        /// The function.
        bdf: Bdf,
        /// The driver it should be bound to.
        expected: String,
        /// What it is bound to.
        found: Option<String>,
    },
    /// Another write failed.
    #[error("writing {value:?} to {}: {source}", path.display())]
    Write {
        /// The attribute.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The OS error (errno).
        #[source]
        source: io::Error,
    },
}

fn list(found: &[Bdf]) -> String {
    if found.is_empty() {
        return "none".into();
    }
    found
        .iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Binds and unbinds PCI functions under one sysfs root.
#[derive(Debug, Clone)]
pub struct Binder<W = KernelSysfs> {
    root: PathBuf,
    writer: W,
    settle: Duration,
}

impl Binder<KernelSysfs> {
    /// A binder for the sysfs mounted at `root` (normally [`discovery::DEFAULT_SYSFS_ROOT`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Binder::with_writer(root, KernelSysfs)
    }
}

impl<W: SysfsWriter> Binder<W> {
    /// A binder whose writes go through `writer` (tests emulate the kernel with it).
    pub fn with_writer(root: impl Into<PathBuf>, writer: W) -> Self {
        Binder {
            root: root.into(),
            writer,
            settle: Duration::from_secs(1),
        }
    }

    /// How long to wait for the driver link to change after a probe (default 1 s;
    /// probing is synchronous for vfio-pci, so this only covers asynchronous probing).
    pub fn settle_timeout(mut self, d: Duration) -> Self {
        self.settle = d;
        self
    }

    fn dev_dir(&self, bdf: &Bdf) -> PathBuf {
        self.root.join("bus/pci/devices").join(bdf.to_string())
    }

    fn driver_of(&self, bdf: &Bdf) -> Option<String> {
        link_name(&self.dev_dir(bdf).join("driver"))
    }

    fn write(&self, path: PathBuf, value: &str) -> Result<(), BindError> {
        self.writer.write(&path, value).map_err(|source| {
            match (source.raw_os_error(), source.kind()) {
                (Some(libc::EACCES | libc::EPERM), _) | (_, io::ErrorKind::PermissionDenied) => {
                    BindError::PermissionDenied {
                        owner: describe_owner(&path),
                        path,
                    }
                }
                _ => BindError::Write {
                    path,
                    value: value.trim_end().to_string(),
                    source,
                },
            }
        })
    }

    /// Waits (bounded) until `bdf` is bound to `want`; re-checks once at the deadline.
    fn wait_for_driver(&self, bdf: &Bdf, want: Option<&str>) -> Result<(), BindError> {
        let deadline = Instant::now() + self.settle;
        loop {
            let now = self.driver_of(bdf);
            if now.as_deref() == want {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BindError::BindFailed {
                    bdf: *bdf,
                    expected: want.unwrap_or("no driver").to_string(),
                    found: now,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// True when VFIO's unsafe no-IOMMU mode is on: vfio-pci then makes a group itself.
    fn noiommu_enabled(&self) -> bool {
        read_attr(
            &self
                .root
                .join("module/vfio/parameters/enable_unsafe_noiommu_mode"),
        )
        .is_some_and(|v| v == "Y" || v == "1")
    }

    fn require_device(&self, bdf: &Bdf) -> Result<PathBuf, BindError> {
        let dir = self.dev_dir(bdf);
        if dir.exists() {
            return Ok(dir);
        }
        let found = discovery::scan(&self.root)
            .map(|d| d.functions().map(|f| f.bdf).collect())
            .unwrap_or_default();
        Err(BindError::NotFound {
            bdf: *bdf,
            path: dir,
            found,
        })
    }

    /// Binds every function of `bdfs` to vfio-pci. All checks come before any write:
    /// each exists, vfio-pci is loaded, none is held by another driver (unless
    /// `opts.take_from_other_driver`), and each group will be viable once `bdfs` are bound.
    /// Stops at the first failed write; functions bound before it stay bound.
    pub fn bind_vfio(&self, bdfs: &[Bdf], opts: BindOptions) -> Result<Vec<BindRecord>, BindError> {
        let vfio = self.root.join("bus/pci/drivers/vfio-pci");
        let mut dirs = Vec::with_capacity(bdfs.len());
        for bdf in bdfs {
            dirs.push(self.require_device(bdf)?);
        }
        if !vfio.is_dir() {
            return Err(BindError::VfioPciNotLoaded { path: vfio });
        }
        let names: Vec<String> = bdfs.iter().map(|b| b.to_string()).collect();
        for (bdf, dir) in bdfs.iter().zip(&dirs) {
            let driver = self.driver_of(bdf);
            if let Some(d) = driver.as_deref().filter(|d| *d != "vfio-pci") {
                if !opts.take_from_other_driver {
                    return Err(BindError::BoundToOtherDriver {
                        bdf: *bdf,
                        driver: d.to_string(),
                        commands: bind_commands(&self.root, bdf, Some(d)),
                    });
                }
            }
            if !dir.join("driver_override").exists() {
                return Err(BindError::NoDriverOverride {
                    path: dir.join("driver_override"),
                });
            }
            let group = discovery::read_group(&self.root, dir, bdf);
            if group.is_none() && !self.noiommu_enabled() {
                return Err(BindError::NoIommuGroup { bdf: *bdf });
            }
            if let Some(g) = group {
                let blockers: Vec<_> = g.blockers().filter(|p| !names.contains(&p.name)).collect();
                if !blockers.is_empty() {
                    return Err(BindError::GroupNotViable {
                        bdf: *bdf,
                        group: g.number,
                        blockers: describe_peers(blockers.iter().copied()),
                        others: blockers.iter().map(|p| p.name.clone()).collect(),
                    });
                }
            }
        }
        let mut records = Vec::with_capacity(bdfs.len());
        for (bdf, dir) in bdfs.iter().zip(&dirs) {
            let previous_driver = self.driver_of(bdf);
            let previous_override =
                read_attr(&dir.join("driver_override")).filter(|o| o != "(null)" && !o.is_empty());
            if previous_driver.as_deref() == Some("vfio-pci") {
                records.push(BindRecord {
                    bdf: *bdf,
                    previous_driver,
                    previous_override,
                    changed: false,
                });
                continue;
            }
            let name = bdf.to_string();
            if previous_driver.is_some() {
                self.write(dir.join("driver/unbind"), &name)?;
                self.wait_for_driver(bdf, None)?;
            }
            self.write(dir.join("driver_override"), "vfio-pci")?;
            self.write(self.root.join("bus/pci/drivers_probe"), &name)?;
            self.wait_for_driver(bdf, Some("vfio-pci"))?;
            tracing::info!(
                "{name}: bound to vfio-pci (was {})",
                previous_driver.as_deref().unwrap_or("unbound")
            );
            records.push(BindRecord {
                bdf: *bdf,
                previous_driver,
                previous_override,
                changed: true,
            });
        }
        Ok(records)
    }

    /// Unbinds `bdf` from whatever driver holds it; returns that driver. `driver_override`
    /// is left as it is.
    pub fn unbind(&self, bdf: &Bdf) -> Result<Option<String>, BindError> {
        let dir = self.require_device(bdf)?;
        let previous = self.driver_of(bdf);
        if previous.is_some() {
            self.write(dir.join("driver/unbind"), &bdf.to_string())?;
            self.wait_for_driver(bdf, None)?;
        }
        Ok(previous)
    }

    /// Undoes [`Binder::bind_vfio`] for one function: unbinds it, puts back its old
    /// `driver_override` (or clears it) and binds its previous driver, if it had one.
    pub fn restore(&self, record: &BindRecord) -> Result<(), BindError> {
        if !record.changed {
            return Ok(());
        }
        let bdf = &record.bdf;
        let dir = self.require_device(bdf)?;
        let driver_dir = record
            .previous_driver
            .as_ref()
            .map(|d| (d, self.root.join("bus/pci/drivers").join(d)));
        if let Some((d, p)) = &driver_dir {
            if !p.is_dir() {
                return Err(BindError::DriverNotLoaded {
                    bdf: *bdf,
                    driver: d.to_string(),
                    path: p.clone(),
                });
            }
        }
        self.unbind(bdf)?;
        // An empty write ("\n") clears the override.
        let value = record.previous_override.as_deref().unwrap_or("\n");
        self.write(dir.join("driver_override"), value)?;
        if let Some((d, p)) = driver_dir {
            self.write(p.join("bind"), &bdf.to_string())?;
            self.wait_for_driver(bdf, Some(d))?;
        }
        tracing::info!(
            "{bdf}: given back to {}",
            record.previous_driver.as_deref().unwrap_or("no driver")
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests;
