//! The vfio-user client transport (a UNIX socket to a vfio-user server such as
//! `ocxlpmem-sim serve`).
//!
//! The protocol is written here rather than taken from the `vfio_user` crate's client,
//! which ignores the error flag of REGION_READ/WRITE replies, inverts `resettable()`,
//! asserts (panics) on malformed replies and has no timeouts. Here every reply is checked
//! (id, command, size, error flag), an error reply becomes an error carrying the server's
//! errno, and a server that dies or hangs becomes [`TransportError::Gone`] within one
//! socket timeout.

mod socket;
mod wire;

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use vfio_bindings::bindings::vfio::{
    VFIO_DEVICE_FLAGS_PCI, VFIO_DEVICE_FLAGS_RESET, VFIO_IRQ_INFO_EVENTFD,
    VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE,
    VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};

use self::socket::{CallError, Conn, Reply};
use self::wire::{cmd, Reader, Writer};
use super::{
    region, IrqInfo, RegionFlags, RegionInfo, RegionMap, Result, Transport, TransportError,
};

/// Protocol version this client speaks (vfio-user 0.1).
const VERSION: (u16, u16) = (0, 1);
/// Transfer size assumed when the server does not name one (the protocol's default).
const DEFAULT_MAX_XFER: u32 = 1 << 20;
/// Most region-info bytes (fixed part and capabilities) the client asks for.
const MAX_REGION_INFO: u32 = 0x1000;
/// Most regions / IRQ indexes accepted from DEVICE_GET_INFO (VFIO PCI has 9 and 5).
const MAX_INDEXES: u32 = 64;

/// How to connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VfioUserOptions {
    /// Bound on every socket read and write: a server silent for longer is reported gone.
    pub timeout: Duration,
}

impl Default for VfioUserOptions {
    fn default() -> Self {
        VfioUserOptions {
            timeout: Duration::from_secs(5),
        }
    }
}

/// One region as negotiated: what the server said, and the descriptor to mmap it through.
#[derive(Debug)]
struct RegionEntry {
    info: RegionInfo,
    fd: Option<OwnedFd>,
    /// Offset of the region's start in `fd`.
    file_offset: u64,
}

/// A PCI function served over vfio-user.
#[derive(Debug)]
pub struct VfioUserTransport {
    path: PathBuf,
    conn: Mutex<Conn>,
    device_flags: u32,
    num_irqs: u32,
    max_xfer: u32,
    server_version: (u16, u16),
    regions: Vec<RegionEntry>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conn")
    }
}

impl VfioUserTransport {
    /// Connects to the server at `path` with the default options.
    pub fn connect(path: impl AsRef<Path>) -> Result<Self> {
        Self::connect_with(path, VfioUserOptions::default())
    }

    /// Connects to the server at `path`, negotiates the version, and reads the device and
    /// region information (sparse-mmap areas and mmap descriptors included).
    pub fn connect_with(path: impl AsRef<Path>, options: VfioUserOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let stream = UnixStream::connect(&path).map_err(|source| TransportError::Io {
            op: format!(
                "connecting to the vfio-user socket {} (is `ocxlpmem-sim serve --socket {}` running?)",
                path.display(),
                path.display()
            ),
            source,
        })?;
        let conn = Conn::new(stream, options.timeout).map_err(|source| TransportError::Io {
            op: format!("setting timeouts on {}", path.display()),
            source,
        })?;
        let mut t = VfioUserTransport {
            path,
            conn: Mutex::new(conn),
            device_flags: 0,
            num_irqs: 0,
            max_xfer: DEFAULT_MAX_XFER,
            server_version: (0, 0),
            regions: Vec::new(),
        };
        t.negotiate_version().map_err(|e| match e {
            // A server serves one client at a time: a silent VERSION most often means
            // another client holds it.
            TransportError::Gone { device, detail } => TransportError::Gone {
                device,
                detail: format!("{detail} (a vfio-user server serves one client at a time: is another client connected?)"),
            },
            other => other,
        })?;
        let num_regions = t.get_device_info()?;
        for index in 0..num_regions {
            let entry = t.get_region_info(index)?;
            t.regions.push(entry);
        }
        tracing::debug!(
            path = %t.path.display(),
            version = ?t.server_version,
            regions = t.regions.len(),
            irqs = t.num_irqs,
            "vfio-user connected"
        );
        Ok(t)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The protocol version the server answered with (major, minor).
    pub fn server_version(&self) -> (u16, u16) {
        self.server_version
    }

    /// Whether the server offers DEVICE_RESET (`VFIO_DEVICE_FLAGS_RESET`).
    pub fn resettable(&self) -> bool {
        self.device_flags & VFIO_DEVICE_FLAGS_RESET != 0
    }

    /// Largest transfer of one REGION_READ/WRITE message; longer accesses are split.
    pub fn max_transfer(&self) -> u32 {
        self.max_xfer
    }

    fn lock(&self) -> MutexGuard<'_, Conn> {
        // A panic while holding the lock cannot leave the stream half-written in a way the
        // Conn does not know about (it marks itself broken first), so keep going.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn call(
        &self,
        command: u16,
        op: impl Fn() -> String,
        body: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> Result<Reply> {
        self.lock()
            .call(command, body, fds)
            .map_err(|e| self.error(op(), e))
    }

    fn call_init(&mut self, command: u16, op: &str, body: &[u8]) -> Result<Reply> {
        let r = self
            .conn
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .call(command, body, &[]);
        r.map_err(|e| self.error(op.to_string(), e))
    }

    fn error(&self, op: String, e: CallError) -> TransportError {
        match e {
            CallError::Gone(detail) => TransportError::Gone {
                device: self.describe(),
                detail: format!("{op}: {detail}"),
            },
            CallError::Refused(0) => TransportError::Protocol {
                op,
                detail: "error reply without an errno".into(),
            },
            CallError::Refused(errno) => TransportError::Io {
                op: format!("{op} (error reply from the vfio-user server)"),
                source: io::Error::from_raw_os_error(errno),
            },
            CallError::Protocol(detail) => TransportError::Protocol { op, detail },
        }
    }

    fn negotiate_version(&mut self) -> Result<()> {
        let caps = format!(
            r#"{{"capabilities":{{"max_msg_fds":8,"max_data_xfer_size":{DEFAULT_MAX_XFER}}}}}"#
        );
        // The capabilities are a NUL-terminated JSON string.
        let body = Writer::default()
            .u16(VERSION.0)
            .u16(VERSION.1)
            .bytes(caps.as_bytes())
            .bytes(&[0])
            .0;
        let reply = self.call_init(cmd::VERSION, "VERSION", &body)?;
        let r = Reader(&reply.body);
        let (major, minor) = match (r.u16(0), r.u16(2)) {
            (Some(a), Some(b)) => (a, b),
            _ => {
                return Err(TransportError::Protocol {
                    op: "VERSION".into(),
                    detail: format!("reply of {} bytes has no version", reply.body.len()),
                })
            }
        };
        if major != VERSION.0 {
            return Err(TransportError::Protocol {
                op: "VERSION".into(),
                detail: format!(
                    "server speaks vfio-user {major}.{minor}; this client speaks {}.{}",
                    VERSION.0, VERSION.1
                ),
            });
        }
        self.server_version = (major, minor);
        let json = reply.body.get(4..).unwrap_or(&[]);
        let json = json.split(|&b| b == 0).next().unwrap_or(&[]);
        if !json.is_empty() {
            let value: serde_json::Value =
                serde_json::from_slice(json).map_err(|e| TransportError::Protocol {
                    op: "VERSION".into(),
                    detail: format!("server capabilities are not JSON: {e}"),
                })?;
            if let Some(x) = value
                .pointer("/capabilities/max_data_xfer_size")
                .and_then(serde_json::Value::as_u64)
            {
                // Keep the smaller of ours and theirs, and never 0.
                self.max_xfer = u32::try_from(x)
                    .unwrap_or(u32::MAX)
                    .clamp(8, DEFAULT_MAX_XFER);
            }
        }
        Ok(())
    }

    /// Reads the device flags and IRQ count; returns the number of regions.
    fn get_device_info(&mut self) -> Result<u32> {
        let body = Writer::default().u32(16).u32(0).u32(0).u32(0).0;
        let reply = self.call_init(cmd::DEVICE_GET_INFO, "DEVICE_GET_INFO", &body)?;
        let r = Reader(&reply.body);
        let (flags, num_regions, num_irqs) = match (r.u32(4), r.u32(8), r.u32(12)) {
            (Some(f), Some(n), Some(i)) => (f, n, i),
            _ => {
                return Err(TransportError::Protocol {
                    op: "DEVICE_GET_INFO".into(),
                    detail: format!("reply of {} bytes is too short", reply.body.len()),
                })
            }
        };
        if flags & VFIO_DEVICE_FLAGS_PCI == 0 {
            return Err(TransportError::Protocol {
                op: "DEVICE_GET_INFO".into(),
                detail: format!("the device is not a PCI device (flags {flags:#x})"),
            });
        }
        if num_regions > MAX_INDEXES || num_irqs > MAX_INDEXES {
            return Err(TransportError::Protocol {
                op: "DEVICE_GET_INFO".into(),
                detail: format!(
                    "{num_regions} regions and {num_irqs} IRQ indexes is not a PCI function"
                ),
            });
        }
        self.device_flags = flags;
        self.num_irqs = num_irqs;
        Ok(num_regions)
    }

    fn get_region_info(&mut self, index: u32) -> Result<RegionEntry> {
        let op = format!("DEVICE_GET_REGION_INFO region {index}");
        let mut argsz = 0x200;
        let (info, fds) = loop {
            let body = Writer::default()
                .u32(argsz)
                .u32(0)
                .u32(index)
                .u32(0)
                .u64(0)
                .u64(0)
                .0;
            let reply = self.call_init(cmd::DEVICE_GET_REGION_INFO, &op, &body)?;
            let info = wire::parse_region_info(&reply.body).map_err(|detail| {
                TransportError::Protocol {
                    op: op.clone(),
                    detail,
                }
            })?;
            // The server wants a bigger buffer for the capabilities: ask again, once.
            if info.argsz > argsz && info.argsz <= MAX_REGION_INFO && argsz < MAX_REGION_INFO {
                argsz = info.argsz;
                continue;
            }
            break (info, reply.fds);
        };
        if info.index != index {
            return Err(TransportError::Protocol {
                op,
                detail: format!("the reply describes region {}", info.index),
            });
        }
        let fd = fds.into_iter().next();
        let mut mmap = info.flags & VFIO_REGION_INFO_FLAG_MMAP != 0;
        if mmap && fd.is_none() {
            tracing::warn!(
                region = index,
                "vfio-user server says the region is mmap-able but sent no fd"
            );
            mmap = false;
        }
        let areas = match info.sparse {
            Some(areas) => areas,
            None if mmap => vec![(0, info.size)],
            None => Vec::new(),
        };
        if let Some(&(o, s)) = areas
            .iter()
            .find(|&&(o, s)| o.checked_add(s).is_none_or(|end| end > info.size))
        {
            return Err(TransportError::Protocol {
                op,
                detail: format!(
                    "mmap area {o:#x}+{s:#x} lies outside the {:#x}-byte region",
                    info.size
                ),
            });
        }
        Ok(RegionEntry {
            info: RegionInfo {
                index,
                size: info.size,
                flags: RegionFlags {
                    read: info.flags & VFIO_REGION_INFO_FLAG_READ != 0,
                    write: info.flags & VFIO_REGION_INFO_FLAG_WRITE != 0,
                    mmap,
                },
                mmap_areas: if mmap { areas } else { Vec::new() },
            },
            fd: if mmap { fd } else { None },
            file_offset: info.offset,
        })
    }

    fn entry(&self, index: u32) -> Result<&RegionEntry> {
        self.regions
            .get(index as usize)
            .filter(|e| e.info.size > 0)
            .ok_or_else(|| TransportError::NoSuchRegion {
                index,
                device: self.describe(),
            })
    }

    fn check_bounds(&self, index: u32, offset: u64, len: usize) -> Result<()> {
        let size = self.entry(index)?.info.size;
        let len = len as u64;
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(TransportError::OutOfBounds {
                index,
                offset,
                len,
                size,
            });
        }
        Ok(())
    }

    fn read(&self, index: u32, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check_bounds(index, offset, buf.len())?;
        let mut at = offset;
        for chunk in buf.chunks_mut(self.max_xfer as usize) {
            let count = chunk.len() as u32;
            let body = Writer::default().u64(at).u32(index).u32(count).0;
            let op = || format!("REGION_READ region {index} offset {at:#x} count {count}");
            let reply = self.call(cmd::REGION_READ, op, &body, &[])?;
            let data = reply
                .body
                .get(16..)
                .filter(|d| d.len() == chunk.len())
                .ok_or_else(|| TransportError::Protocol {
                    op: op(),
                    detail: format!(
                        "reply carries {} bytes, expected {} + 16",
                        reply.body.len(),
                        count
                    ),
                })?;
            chunk.copy_from_slice(data);
            at += u64::from(count);
        }
        Ok(())
    }

    fn write(&self, index: u32, offset: u64, data: &[u8]) -> Result<()> {
        self.check_bounds(index, offset, data.len())?;
        let mut at = offset;
        for chunk in data.chunks(self.max_xfer as usize) {
            let count = chunk.len() as u32;
            let body = Writer::default()
                .u64(at)
                .u32(index)
                .u32(count)
                .bytes(chunk)
                .0;
            let op = || format!("REGION_WRITE region {index} offset {at:#x} count {count}");
            self.call(cmd::REGION_WRITE, op, &body, &[])?;
            at += u64::from(count);
        }
        Ok(())
    }
}

impl Transport for VfioUserTransport {
    fn describe(&self) -> String {
        format!("vfio-user {}", self.path.display())
    }

    fn config_read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.read(region::CONFIG, offset, buf)
    }

    fn config_write(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.write(region::CONFIG, offset, data)
    }

    fn region_info(&self, index: u32) -> Result<RegionInfo> {
        self.regions
            .get(index as usize)
            .map(|e| e.info.clone())
            .ok_or_else(|| TransportError::NoSuchRegion {
                index,
                device: self.describe(),
            })
    }

    fn region_read(&self, index: u32, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.read(index, offset, buf)
    }

    fn region_write(&self, index: u32, offset: u64, data: &[u8]) -> Result<()> {
        self.write(index, offset, data)
    }

    fn map_region(&self, index: u32, offset: u64, len: u64) -> Result<RegionMap> {
        let entry = self.entry(index)?;
        let not = |why: String| TransportError::NotMappable {
            index,
            offset,
            len,
            why,
        };
        let fd = entry
            .fd
            .as_ref()
            .ok_or_else(|| not("the server sent no descriptor".into()))?;
        RegionMap::map_file(
            fd.as_fd(),
            entry.file_offset,
            &entry.info,
            offset,
            len,
            &self.describe(),
        )
    }

    fn irq_info(&self, index: u32) -> Result<IrqInfo> {
        let body = Writer::default().u32(16).u32(0).u32(index).u32(0).0;
        let op = || format!("GET_IRQ_INFO index {index}");
        let reply = self.call(cmd::GET_IRQ_INFO, op, &body, &[])?;
        let r = Reader(&reply.body);
        match (r.u32(4), r.u32(8), r.u32(12)) {
            (Some(flags), Some(got), Some(count)) if got == index => Ok(IrqInfo {
                index,
                count,
                eventfd: flags & VFIO_IRQ_INFO_EVENTFD != 0,
            }),
            _ => Err(TransportError::Protocol {
                op: op(),
                detail: format!("malformed reply of {} bytes", reply.body.len()),
            }),
        }
    }

    fn set_irq_eventfds(&self, index: u32, fds: &[OwnedFd]) -> Result<()> {
        let count = u32::try_from(fds.len()).map_err(|_| TransportError::Protocol {
            op: "SET_IRQS".into(),
            detail: "too many eventfds".into(),
        })?;
        let data = if fds.is_empty() {
            VFIO_IRQ_SET_DATA_NONE
        } else {
            VFIO_IRQ_SET_DATA_EVENTFD
        };
        let body = Writer::default()
            .u32(20)
            .u32(data | VFIO_IRQ_SET_ACTION_TRIGGER)
            .u32(index)
            .u32(0)
            .u32(count)
            .0;
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        let op = || format!("SET_IRQS index {index} with {count} eventfds");
        self.call(cmd::SET_IRQS, op, &body, &borrowed).map(|_| ())
    }

    fn reset(&self) -> Result<()> {
        if !self.resettable() {
            return Err(TransportError::Unsupported {
                op: "DEVICE_RESET",
                device: self.describe(),
            });
        }
        self.call(cmd::DEVICE_RESET, || "DEVICE_RESET".into(), &[], &[])
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests;
