//! A client of the kernel ABI: `/dev/ocxlpmem<N>` (and, for the label area and SMART,
//! the ndctl commands on `/dev/nmem<N>`), so the tool works on a host that runs the
//! proposed kernel driver.
//!
//! The syscall is behind [`IoctlDevice`]: [`KernelDevice`] issues real ioctls and
//! [`Loopback`] hands them to a [`Dispatcher`] in the same process, which is how the
//! encoding is tested without the kernel driver.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use ocxlpmem_regs::payload::smart::Attribute;

use crate::abi::{ControllerDumpData, ControllerStats, ErrorLog, Eventfd, FwDebug, MmioArg};
use crate::dispatch::{Backend, Dispatcher, SliceMemory};
use crate::nd;
use crate::number::{card, ndctl, IoctlDef};

/// A device that takes ioctls.
pub trait IoctlDevice {
    /// Issues `request` with the argument bytes `arg`. `buffer` is the one caller buffer
    /// the argument may point at (error data, dump chunk, fw-debug data).
    ///
    /// # Safety
    /// Every address inside `arg` (its `buf_ptr`/`buf` field) must be 0 or point into
    /// `buffer`, with the size field not larger than what remains of `buffer` from there:
    /// a kernel device writes through those addresses.
    unsafe fn ioctl(
        &self,
        request: u32,
        arg: &mut [u8],
        buffer: Option<&mut [u8]>,
    ) -> Result<i32, Errno>;

    /// A description for messages.
    fn describe(&self) -> String;
}

/// The kernel driver's char device.
#[derive(Debug)]
pub struct KernelDevice {
    file: File,
    path: PathBuf,
}

impl KernelDevice {
    /// Opens `path` read-write.
    pub fn open(path: &Path) -> Result<Self, ClientError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| ClientError::Open {
                path: path.to_path_buf(),
                hint: open_hint(&e),
                source: e,
            })?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }
}

fn open_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            "no such device: is the ocxlpmem kernel driver loaded? (this tool can also drive the card itself through vfio: use --bdf)"
        }
        std::io::ErrorKind::PermissionDenied => "permission denied: run as root or get access to the device node",
        _ => "check the device path",
    }
}

impl IoctlDevice for KernelDevice {
    unsafe fn ioctl(
        &self,
        request: u32,
        arg: &mut [u8],
        _buffer: Option<&mut [u8]>,
    ) -> Result<i32, Errno> {
        let ptr = if arg.is_empty() {
            std::ptr::null_mut()
        } else {
            arg.as_mut_ptr()
        };
        // SAFETY: `ptr` is null or points to `arg.len()` writable bytes, at least the
        // argument size of `request` (the client sizes them from the same table); any
        // address inside the argument points into `_buffer`, borrowed mutably for the call,
        // as this function's contract requires of the caller.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), request as _, ptr) };
        if rc < 0 {
            Err(Errno::last())
        } else {
            Ok(rc)
        }
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// The ABI served in-process by a [`Dispatcher`] (tests, and a no-kernel fallback).
pub struct Loopback<B> {
    dispatcher: Dispatcher<B>,
}

impl<B: Backend> Loopback<B> {
    /// Serves ioctls from `dispatcher`.
    pub fn new(dispatcher: Dispatcher<B>) -> Self {
        Self { dispatcher }
    }

    /// The dispatcher behind it.
    pub fn dispatcher(&self) -> &Dispatcher<B> {
        &self.dispatcher
    }
}

impl<B: Backend> IoctlDevice for Loopback<B> {
    unsafe fn ioctl(
        &self,
        request: u32,
        arg: &mut [u8],
        buffer: Option<&mut [u8]>,
    ) -> Result<i32, Errno> {
        // The caller's memory is exactly the buffer it passed, at its real address, so the
        // addresses the client wrote into the argument are checked as a kernel would.
        let mut mem = match buffer {
            Some(b) => SliceMemory::new(b.as_ptr() as u64, b),
            None => SliceMemory::empty(),
        };
        self.dispatcher.ioctl(request, arg, &mut mem)
    }

    fn describe(&self) -> String {
        "in-process ioctl dispatcher".to_string()
    }
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The device node could not be opened.
    #[error("cannot open {path}: {source}; {hint}")]
    Open {
        /// The node.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
        /// What to do.
        hint: &'static str,
    },
    /// An ioctl failed.
    #[error("ioctl {name} ({request:#010x}) on {device} failed: {errno} ({desc}){hint}", desc = errno.desc())]
    Ioctl {
        /// The ioctl's name.
        name: &'static str,
        /// The request number.
        request: u32,
        /// The device.
        device: String,
        /// The errno.
        errno: Errno,
        /// What to do, when known (starts with "; ").
        hint: &'static str,
    },
    /// The reply did not make sense.
    #[error("ioctl {name} on {device}: {detail}")]
    BadReply {
        /// The ioctl's name.
        name: &'static str,
        /// The device.
        device: String,
        /// What was wrong.
        detail: String,
    },
}

fn errno_hint(def: &IoctlDef, errno: Errno) -> &'static str {
    match errno {
        Errno::ENOTTY | Errno::EINVAL if def.debug => {
            "; debug ioctls need a kernel driver built with debug support"
        }
        Errno::EPERM | Errno::EACCES => "; run as root",
        Errno::EBUSY => "; another user holds the device or the operation is in progress",
        Errno::ETIMEDOUT => "; the card did not answer in time: check `health` and the error log",
        _ => "",
    }
}

/// Typed calls on an [`IoctlDevice`].
pub struct Client<D> {
    dev: D,
}

impl Client<KernelDevice> {
    /// Opens the kernel char device at `path`.
    pub fn open(path: &Path) -> Result<Self, ClientError> {
        Ok(Self::new(KernelDevice::open(path)?))
    }
}

/// Largest dump chunk one CONTROLLER_DUMP_DATA moves (the u16 size field, 8-aligned).
pub const MAX_DUMP_CHUNK: usize = 0xFFF8;

impl<D: IoctlDevice> Client<D> {
    /// A client over `dev`.
    pub fn new(dev: D) -> Self {
        Self { dev }
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    fn call(
        &self,
        def: IoctlDef,
        arg: &mut [u8],
        buffer: Option<&mut [u8]>,
    ) -> Result<i32, ClientError> {
        // SAFETY: every caller below puts into `arg` only addresses of `buffer` (or 0) with
        // a size field no larger than `buffer`, which is what the contract asks.
        unsafe { self.dev.ioctl(def.request(), arg, buffer) }.map_err(|errno| ClientError::Ioctl {
            name: def.name,
            request: def.request(),
            device: self.dev.describe(),
            errno,
            hint: errno_hint(&def, errno),
        })
    }

    /// Reads one error log entry and up to `max_data` bytes of its variable data;
    /// `None` when there are no more entries.
    pub fn error_log(&self, max_data: u16) -> Result<Option<(ErrorLog, Vec<u8>)>, ClientError> {
        let size = max_data & !7;
        let mut buf = vec![0u8; usize::from(size)];
        let req = ErrorLog {
            buf_size: size,
            buf_ptr: buf.as_mut_ptr() as u64,
            ..ErrorLog::default()
        };
        let mut arg = req.to_bytes();
        self.call(card::ERROR_LOG, &mut arg, Some(&mut buf))?;
        let out = ErrorLog::from_bytes(&arg);
        if out.buf_size == 0 {
            return Ok(None);
        }
        let n = usize::from(out.buf_size.saturating_sub(0x40)).min(buf.len());
        buf.truncate(n);
        Ok(Some((out, buf)))
    }

    /// Drains the error log (at most `limit` entries, so a card that never empties its
    /// queue cannot hold the caller forever).
    pub fn error_log_all(&self, limit: usize) -> Result<Vec<(ErrorLog, Vec<u8>)>, ClientError> {
        let mut all = Vec::new();
        while all.len() < limit {
            match self.error_log(0x1000)? {
                Some(e) => all.push(e),
                None => break,
            }
        }
        Ok(all)
    }

    /// Requests a controller dump.
    pub fn controller_dump(&self) -> Result<(), ClientError> {
        self.call(card::CONTROLLER_DUMP, &mut [], None).map(drop)
    }

    /// Fetches dump bytes at `offset` into `buf` (whose length is rounded down to a
    /// multiple of 8 and capped at [`MAX_DUMP_CHUNK`]); returns the count, 0 at the end.
    pub fn controller_dump_data(&self, offset: u32, buf: &mut [u8]) -> Result<usize, ClientError> {
        let size = buf.len().min(MAX_DUMP_CHUNK) & !7;
        let chunk = buf.get_mut(..size).unwrap_or_default();
        let req = ControllerDumpData {
            buf_ptr: chunk.as_mut_ptr() as u64,
            buf_size: size as u16,
            offset,
            ..ControllerDumpData::default()
        };
        let mut arg = req.to_bytes();
        self.call(card::CONTROLLER_DUMP_DATA, &mut arg, Some(chunk))?;
        let n = usize::from(ControllerDumpData::from_bytes(&arg).buf_size);
        if n > size {
            return Err(ClientError::BadReply {
                name: card::CONTROLLER_DUMP_DATA.name,
                device: self.dev.describe(),
                detail: format!("returned {n} bytes for a {size}-byte buffer"),
            });
        }
        Ok(n)
    }

    /// Marks the dump collected.
    pub fn controller_dump_complete(&self) -> Result<(), ClientError> {
        self.call(card::CONTROLLER_DUMP_COMPLETE, &mut [], None)
            .map(drop)
    }

    /// Takes a whole dump (request, fetch until the end or `max` bytes, complete),
    /// calling `progress(bytes so far)` after each chunk.
    pub fn read_dump(
        &self,
        max: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<u8>, ClientError> {
        self.controller_dump()?;
        let mut out = Vec::new();
        let mut chunk = vec![0u8; MAX_DUMP_CHUNK];
        while out.len() < max {
            let offset = u32::try_from(out.len()).unwrap_or(u32::MAX);
            let n = self.controller_dump_data(offset, &mut chunk)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(chunk.get(..n).unwrap_or_default());
            progress(out.len());
        }
        self.controller_dump_complete()?;
        Ok(out)
    }

    /// Reads the controller statistics.
    pub fn controller_stats(&self) -> Result<ControllerStats, ClientError> {
        let mut arg = [0u8; ControllerStats::SIZE];
        self.call(card::CONTROLLER_STATS, &mut arg, None)?;
        Ok(ControllerStats::from_bytes(&arg))
    }

    /// Registers `fd` (an eventfd) for card events.
    pub fn register_eventfd(&self, fd: BorrowedFd<'_>) -> Result<(), ClientError> {
        let mut arg = Eventfd {
            eventfd: fd.as_raw_fd(),
            reserved: 0,
        }
        .to_bytes();
        self.call(card::EVENTFD, &mut arg, None).map(drop)
    }

    /// The pending event flags.
    pub fn event_check(&self) -> Result<u64, ClientError> {
        let mut arg = [0u8; 8];
        self.call(card::EVENT_CHECK, &mut arg, None)?;
        Ok(u64::from_ne_bytes(arg))
    }

    /// Requests a health & performance log.
    pub fn request_health(&self) -> Result<(), ClientError> {
        self.call(card::REQUEST_HEALTH, &mut [], None).map(drop)
    }

    /// Runs a firmware debug action with `data` as input and output.
    pub fn fw_debug(
        &self,
        action: u16,
        function_code: u16,
        p1: u64,
        p2: u64,
        data: &mut [u8],
    ) -> Result<(), ClientError> {
        let size = data.len().min(u16::MAX as usize);
        let chunk = data.get_mut(..size).unwrap_or_default();
        let req = FwDebug {
            debug_parameter_1: p1,
            debug_parameter_2: p2,
            buf: if size == 0 {
                0
            } else {
                chunk.as_mut_ptr() as u64
            },
            debug_action: action,
            function_code,
            buf_size: size as u16,
            reserved: 0,
        };
        let mut arg = req.to_bytes();
        self.call(card::FWDEBUG, &mut arg, Some(chunk)).map(drop)
    }

    /// Reads a global MMIO register (debug).
    pub fn mmio_read(&self, address: u64) -> Result<u64, ClientError> {
        let mut arg = MmioArg { address, val: 0 }.to_bytes();
        self.call(card::MMIO_READ, &mut arg, None)?;
        Ok(MmioArg::from_bytes(&arg).val)
    }

    /// Writes a global MMIO register (debug).
    pub fn mmio_write(&self, address: u64, val: u64) -> Result<(), ClientError> {
        let mut arg = MmioArg { address, val }.to_bytes();
        self.call(card::MMIO_WRITE, &mut arg, None).map(drop)
    }

    /// Shuts the controller down (debug).
    pub fn shutdown(&self) -> Result<(), ClientError> {
        self.call(card::SHUTDOWN, &mut [], None).map(drop)
    }

    fn nd_status(&self, def: IoctlDef, status: u32) -> Result<(), ClientError> {
        if status == 0 {
            return Ok(());
        }
        Err(ClientError::BadReply {
            name: def.name,
            device: self.dev.describe(),
            detail: if status == ocxlpmem_regs::abi::nd::CONFIG_LOCKED {
                "the label area is locked (ND_CONFIG_LOCKED)".to_string()
            } else {
                format!("command status {status}")
            },
        })
    }

    /// The label area's size and maximum transfer.
    pub fn config_size(&self) -> Result<nd::ConfigSize, ClientError> {
        let mut arg = [0u8; nd::GET_CONFIG_SIZE_SIZE];
        self.call(ndctl::GET_CONFIG_SIZE, &mut arg, None)?;
        let c = nd::ConfigSize::from_bytes(&arg).unwrap_or_default();
        self.nd_status(ndctl::GET_CONFIG_SIZE, c.status)?;
        Ok(c)
    }

    /// Reads `buf.len()` label-area bytes at `offset`, in `max_xfer` chunks.
    pub fn read_config(&self, offset: u32, buf: &mut [u8]) -> Result<(), ClientError> {
        let max = self.config_size()?.max_xfer.max(1) as usize;
        for (i, chunk) in buf.chunks_mut(max).enumerate() {
            let off = offset.saturating_add(u32::try_from(i * max).unwrap_or(u32::MAX));
            let mut arg = nd::get_config_data_arg(off, chunk.len() as u32);
            self.call(ndctl::GET_CONFIG_DATA, &mut arg, None)?;
            let (status, data) = nd::get_config_data_reply(&arg).unwrap_or((u32::MAX, &[]));
            self.nd_status(ndctl::GET_CONFIG_DATA, status)?;
            chunk.copy_from_slice(data.get(..chunk.len()).unwrap_or_default());
        }
        Ok(())
    }

    /// Writes `data` to the label area at `offset`, in `max_xfer` chunks.
    pub fn write_config(&self, offset: u32, data: &[u8]) -> Result<(), ClientError> {
        let max = self.config_size()?.max_xfer.max(1) as usize;
        for (i, chunk) in data.chunks(max).enumerate() {
            let off = offset.saturating_add(u32::try_from(i * max).unwrap_or(u32::MAX));
            let mut arg = nd::set_config_data_arg(off, chunk).unwrap_or_default();
            self.call(ndctl::SET_CONFIG_DATA, &mut arg, None)?;
            let status = nd::set_config_data_status(&arg).unwrap_or(u32::MAX);
            self.nd_status(ndctl::SET_CONFIG_DATA, status)?;
        }
        Ok(())
    }

    /// Reads the SMART attributes through ND_CMD_CALL (family 6, command 1).
    pub fn smart(&self) -> Result<Vec<Attribute>, ClientError> {
        const ROOM: usize = 64;
        let pkg = nd::CmdPkg::smart(ROOM);
        let mut arg = vec![0u8; nd::CMD_PKG_SIZE + pkg.size_out as usize];
        pkg.write_to(&mut arg);
        self.call(ndctl::CALL, &mut arg, None)?;
        Ok(nd::decode_smart(
            arg.get(nd::CMD_PKG_SIZE..).unwrap_or_default(),
        ))
    }
}
