//! A dispatcher that serves the kernel ABI (spec §5 and the ndctl commands) from this
//! driver: the same request numbers, argument layouts and errnos, validated the way the
//! proposed kernel driver validated them (sizes, reserved fields, buffer bounds).
//!
//! It is transport-agnostic: arguments arrive as bytes, the caller's buffers are reached
//! through [`UserMemory`] (the `copy_from_user`/`copy_to_user` of a real driver), and the
//! card is reached through the [`Backend`] trait (implemented on the driver's card in
//! [`crate::card_backend`]).
//!
//! Errno choices: an unknown request is `EINVAL`, as the proposed driver did (Linux
//! convention would be `ENOTTY`; [`Dispatcher::unknown_errno`] can switch it). A debug
//! ioctl while debug is disabled is `EPERM`. A short argument or a buffer outside the
//! caller's memory is `EFAULT`; a reserved field that is not zero is `EINVAL`.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use nix::errno::Errno;
use ocxlpmem_regs::abi::{event, nd as ndc, nr, IOCTL_MAGIC};
use ocxlpmem_regs::payload::smart::Attribute;

use crate::abi::{ControllerDumpData, ControllerStats, ErrorLog, Eventfd, FwDebug, MmioArg};
use crate::nd;
use crate::number::{Encoding, IoctlDef};

/// A failure of the card behind the dispatcher, with the errno the ABI reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail} ({errno})")]
pub struct BackendError {
    /// The errno returned to the caller.
    pub errno: Errno,
    /// What went wrong, for logs.
    pub detail: String,
}

impl BackendError {
    /// An error with `errno` and a description.
    pub fn new(errno: Errno, detail: impl Into<String>) -> Self {
        Self {
            errno,
            detail: detail.into(),
        }
    }
}

/// One error log entry as the backend returns it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorLogRecord {
    /// Log identifier.
    pub log_identifier: u32,
    /// Program reference code.
    pub program_reference_code: u32,
    /// Log type.
    pub log_type: u8,
    /// Action flags.
    pub action_flags: u32,
    /// Power-on seconds.
    pub power_on_seconds: u32,
    /// Timestamp.
    pub timestamp: u64,
    /// WWID words.
    pub wwid: [u64; 2],
    /// Firmware revision (8 RAW bytes).
    pub fw_revision: [u8; 8],
    /// Variable error data.
    pub data: Vec<u8>,
}

/// What the dispatcher needs from a card. Every method maps to one ioctl.
pub trait Backend: Send + Sync {
    /// Pops one error log entry; `None` when the queue is empty.
    fn error_log(&self) -> Result<Option<ErrorLogRecord>, BackendError>;
    /// Requests a controller dump and waits until it is available.
    fn controller_dump(&self) -> Result<(), BackendError>;
    /// Fetches dump bytes at `offset` into `buf`; returns the count (0 = end).
    fn controller_dump_data(&self, offset: u32, buf: &mut [u8]) -> Result<usize, BackendError>;
    /// Tells the card the dump was collected.
    fn controller_dump_complete(&self) -> Result<(), BackendError>;
    /// Reads the controller statistics.
    fn controller_stats(&self) -> Result<ControllerStats, BackendError>;
    /// The pending event flags ([`event`] bits).
    fn event_flags(&self) -> Result<u64, BackendError>;
    /// Requests a health & performance log.
    fn request_health(&self) -> Result<(), BackendError>;
    /// Runs a firmware debug action; `data` is the input and receives the output.
    fn fw_debug(&self, req: &FwDebug, data: &mut [u8]) -> Result<(), BackendError>;
    /// Reads a global MMIO register.
    fn mmio_read(&self, offset: u64) -> Result<u64, BackendError>;
    /// Writes a global MMIO register.
    fn mmio_write(&self, offset: u64, value: u64) -> Result<(), BackendError>;
    /// Shuts the controller down.
    fn shutdown(&self) -> Result<(), BackendError>;
    /// (label area size, max transfer).
    fn label_geometry(&self) -> (u32, u32);
    /// Reads label-area bytes.
    fn label_read(&self, offset: u32, buf: &mut [u8]) -> Result<(), BackendError>;
    /// Writes label-area bytes.
    fn label_write(&self, offset: u32, data: &[u8]) -> Result<(), BackendError>;
    /// Reads the SMART attributes.
    fn smart(&self) -> Result<Vec<Attribute>, BackendError>;
}

/// The caller's address space, as `copy_from_user`/`copy_to_user` see it.
pub trait UserMemory {
    /// Copies `buf.len()` bytes from the caller at `addr`; `EFAULT` when not mapped.
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Errno>;
    /// Copies `data` to the caller at `addr`; `EFAULT` when not mapped.
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), Errno>;
}

/// A caller whose only memory is one buffer at a known address (the buffer a client
/// passed with the call); every other address is `EFAULT`.
#[derive(Debug)]
pub struct SliceMemory<'a> {
    base: u64,
    bytes: &'a mut [u8],
}

impl<'a> SliceMemory<'a> {
    /// Memory made of `bytes` at address `base`.
    pub fn new(base: u64, bytes: &'a mut [u8]) -> Self {
        Self { base, bytes }
    }

    /// Memory that holds nothing.
    pub fn empty() -> SliceMemory<'static> {
        SliceMemory {
            base: 0,
            bytes: &mut [],
        }
    }

    fn range(&self, addr: u64, len: usize) -> Result<std::ops::Range<usize>, Errno> {
        let start = addr.checked_sub(self.base).ok_or(Errno::EFAULT)?;
        let start = usize::try_from(start).map_err(|_| Errno::EFAULT)?;
        let end = start.checked_add(len).ok_or(Errno::EFAULT)?;
        if end > self.bytes.len() {
            return Err(Errno::EFAULT);
        }
        Ok(start..end)
    }
}

impl UserMemory for SliceMemory<'_> {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        if buf.is_empty() {
            return Ok(());
        }
        let r = self.range(addr, buf.len())?;
        buf.copy_from_slice(self.bytes.get(r).ok_or(Errno::EFAULT)?);
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        if data.is_empty() {
            return Ok(());
        }
        let r = self.range(addr, data.len())?;
        self.bytes
            .get_mut(r)
            .ok_or(Errno::EFAULT)?
            .copy_from_slice(data);
        Ok(())
    }
}

/// Serves the ABI from a [`Backend`].
pub struct Dispatcher<B> {
    backend: B,
    encoding: Encoding,
    allow_debug: bool,
    unknown: Errno,
    eventfd: Mutex<Option<OwnedFd>>,
}

impl<B: Backend> Dispatcher<B> {
    /// A dispatcher for the build's encoding, debug ioctls disabled.
    pub fn new(backend: B) -> Self {
        Self {
            backend,
            encoding: Encoding::NATIVE,
            allow_debug: false,
            unknown: Errno::EINVAL,
            eventfd: Mutex::new(None),
        }
    }

    /// Decodes request numbers in `enc` instead of the native layout.
    pub fn with_encoding(mut self, enc: Encoding) -> Self {
        self.encoding = enc;
        self
    }

    /// Enables the debug ioctls (FWDEBUG, MMIO_READ/WRITE, SHUTDOWN).
    pub fn allow_debug(mut self, allow: bool) -> Self {
        self.allow_debug = allow;
        self
    }

    /// The errno of an unknown request (default `EINVAL`, as the proposed driver).
    pub fn unknown_errno(mut self, errno: Errno) -> Self {
        self.unknown = errno;
        self
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Serves one ioctl. `arg` is the argument as the caller laid it out (at least the
    /// argument's size; the ndctl commands carry their data inline after the header);
    /// `mem` reaches the buffers the argument points at. Returns the ioctl's return value.
    pub fn ioctl(
        &self,
        request: u32,
        arg: &mut [u8],
        mem: &mut dyn UserMemory,
    ) -> Result<i32, Errno> {
        let def = crate::number::lookup(request, self.encoding).ok_or(self.unknown)?;
        if def.debug && !self.allow_debug {
            return Err(Errno::EPERM);
        }
        if arg.len() < def.arg_size {
            return Err(Errno::EFAULT);
        }
        self.serve(def, arg, mem)?;
        Ok(0)
    }

    /// Checks the card's events and signals the registered eventfd if any is pending.
    /// Returns the flags seen.
    pub fn poll_events(&self) -> Result<u64, Errno> {
        let flags = self.backend.event_flags().map_err(|e| e.errno)?;
        if flags != 0 {
            let guard = self.eventfd.lock().map_err(|_| Errno::EIO)?;
            if let Some(fd) = guard.as_ref() {
                nix::unistd::write(fd, &1u64.to_ne_bytes())?;
            }
        }
        Ok(flags)
    }

    fn serve(&self, def: IoctlDef, arg: &mut [u8], mem: &mut dyn UserMemory) -> Result<(), Errno> {
        let b = &self.backend;
        let be = |e: BackendError| e.errno;
        match (def.ty, def.nr) {
            (IOCTL_MAGIC, nr::ERROR_LOG) => self.error_log(arg, mem),
            (IOCTL_MAGIC, nr::CONTROLLER_DUMP) => b.controller_dump().map_err(be),
            (IOCTL_MAGIC, nr::CONTROLLER_DUMP_DATA) => self.dump_data(arg, mem),
            (IOCTL_MAGIC, nr::CONTROLLER_DUMP_COMPLETE) => b.controller_dump_complete().map_err(be),
            (IOCTL_MAGIC, nr::CONTROLLER_STATS) => {
                let s = b.controller_stats().map_err(be)?;
                copy_into(arg, &s.to_bytes())
            }
            (IOCTL_MAGIC, nr::EVENTFD) => self.register_eventfd(arg),
            (IOCTL_MAGIC, nr::EVENT_CHECK) => {
                let f = b.event_flags().map_err(be)?;
                copy_into(arg, &f.to_ne_bytes())
            }
            (IOCTL_MAGIC, nr::REQUEST_HEALTH) => b.request_health().map_err(be),
            (IOCTL_MAGIC, nr::FWDEBUG) => self.fw_debug(arg, mem),
            (IOCTL_MAGIC, nr::MMIO_WRITE) => {
                let m = MmioArg::from_bytes(arg);
                b.mmio_write(m.address, m.val).map_err(be)
            }
            (IOCTL_MAGIC, nr::MMIO_READ) => {
                let mut m = MmioArg::from_bytes(arg);
                m.val = b.mmio_read(m.address).map_err(be)?;
                copy_into(arg, &m.to_bytes())
            }
            (IOCTL_MAGIC, nr::SHUTDOWN) => b.shutdown().map_err(be),
            (ndc::IOCTL_TYPE, ndc::CMD_GET_CONFIG_SIZE) => {
                let (size, max_xfer) = b.label_geometry();
                let c = nd::ConfigSize {
                    status: 0,
                    config_size: size,
                    max_xfer,
                };
                copy_into(arg, &c.to_bytes())
            }
            (ndc::IOCTL_TYPE, ndc::CMD_GET_CONFIG_DATA) => self.get_config_data(arg),
            (ndc::IOCTL_TYPE, ndc::CMD_SET_CONFIG_DATA) => self.set_config_data(arg),
            (ndc::IOCTL_TYPE, ndc::CMD_CALL) => self.call(arg),
            _ => Err(self.unknown),
        }
    }

    fn error_log(&self, arg: &mut [u8], mem: &mut dyn UserMemory) -> Result<(), Errno> {
        let input = ErrorLog::from_bytes(arg);
        if !input.reserved_clear() || !input.buf_size.is_multiple_of(8) {
            return Err(Errno::EINVAL);
        }
        let mut out = ErrorLog {
            buf_ptr: input.buf_ptr,
            ..ErrorLog::default()
        };
        if let Some(rec) = self.backend.error_log().map_err(|e| e.errno)? {
            let n = rec.data.len().min(usize::from(input.buf_size));
            mem.write(input.buf_ptr, rec.data.get(..n).unwrap_or_default())?;
            out.log_identifier = rec.log_identifier;
            out.program_reference_code = rec.program_reference_code;
            out.action_flags = rec.action_flags;
            out.power_on_seconds = rec.power_on_seconds;
            out.timestamp = rec.timestamp;
            out.wwid = rec.wwid;
            out.fw_revision[..8].copy_from_slice(&rec.fw_revision);
            out.error_log_type = rec.log_type;
            // The device's payload length L: fixed fields (0x40) plus the variable data.
            out.buf_size = u16::try_from(rec.data.len() + 0x40).unwrap_or(u16::MAX);
        }
        copy_into(arg, &out.to_bytes())
    }

    fn dump_data(&self, arg: &mut [u8], mem: &mut dyn UserMemory) -> Result<(), Errno> {
        let mut d = ControllerDumpData::from_bytes(arg);
        if !d.reserved_clear() || !d.buf_size.is_multiple_of(8) || !d.offset.is_multiple_of(8) {
            return Err(Errno::EINVAL);
        }
        let mut buf = vec![0u8; usize::from(d.buf_size)];
        let n = self
            .backend
            .controller_dump_data(d.offset, &mut buf)
            .map_err(|e| e.errno)?
            .min(buf.len());
        mem.write(d.buf_ptr, buf.get(..n).unwrap_or_default())?;
        d.buf_size = u16::try_from(n).map_err(|_| Errno::EIO)?;
        copy_into(arg, &d.to_bytes())
    }

    fn register_eventfd(&self, arg: &[u8]) -> Result<(), Errno> {
        let e = Eventfd::from_bytes(arg);
        if e.reserved != 0 || e.eventfd < 0 {
            return Err(Errno::EINVAL);
        }
        let mut guard = self.eventfd.lock().map_err(|_| Errno::EIO)?;
        if guard.is_some() {
            return Err(Errno::EBUSY);
        }
        // Keep our own reference: the caller may close its descriptor.
        let raw: RawFd = nix::fcntl::fcntl(e.eventfd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(0))?;
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) just returned `raw` as a new descriptor that
        // nothing else owns; wrapping it hands its ownership (and the close) to OwnedFd.
        *guard = Some(unsafe { OwnedFd::from_raw_fd(raw) });
        Ok(())
    }

    fn fw_debug(&self, arg: &mut [u8], mem: &mut dyn UserMemory) -> Result<(), Errno> {
        let f = FwDebug::from_bytes(arg);
        if f.reserved != 0 || (f.buf == 0 && f.buf_size != 0) {
            return Err(Errno::EINVAL);
        }
        let mut data = vec![0u8; usize::from(f.buf_size)];
        if f.buf_size != 0 {
            mem.read(f.buf, &mut data)?;
        }
        self.backend.fw_debug(&f, &mut data).map_err(|e| e.errno)?;
        if f.buf_size != 0 {
            mem.write(f.buf, &data)?;
        }
        Ok(())
    }

    fn label_bounds(&self, offset: u32, len: u32) -> Result<(), Errno> {
        let (size, max_xfer) = self.backend.label_geometry();
        let end = offset.checked_add(len).ok_or(Errno::EINVAL)?;
        if end > size || len > max_xfer {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    fn get_config_data(&self, arg: &mut [u8]) -> Result<(), Errno> {
        let (offset, len) = nd::get_config_data_request(arg).ok_or(Errno::EFAULT)?;
        self.label_bounds(offset, len)?;
        let start = nd::GET_CONFIG_DATA_HDR_SIZE;
        let end = start.checked_add(len as usize).ok_or(Errno::EFAULT)?;
        let out = arg.get_mut(start..end).ok_or(Errno::EFAULT)?;
        self.backend.label_read(offset, out).map_err(|e| e.errno)?;
        nd::put_status(arg, 8, 0);
        Ok(())
    }

    fn set_config_data(&self, arg: &mut [u8]) -> Result<(), Errno> {
        let (offset, data) = nd::set_config_data_request(arg).ok_or(Errno::EFAULT)?;
        let len = u32::try_from(data.len()).map_err(|_| Errno::EINVAL)?;
        self.label_bounds(offset, len)?;
        self.backend
            .label_write(offset, data)
            .map_err(|e| e.errno)?;
        let at = nd::set_config_status_offset(arg).ok_or(Errno::EFAULT)?;
        if !nd::put_status(arg, at, 0) {
            return Err(Errno::EFAULT);
        }
        Ok(())
    }

    fn call(&self, arg: &mut [u8]) -> Result<(), Errno> {
        let mut pkg = nd::CmdPkg::from_bytes(arg).ok_or(Errno::EFAULT)?;
        if pkg.reserved != [0; 9] {
            return Err(Errno::EINVAL);
        }
        if pkg.family != ndc::CALL_FAMILY_OCXL || pkg.command != ndc::CALL_SMART {
            return Err(Errno::EINVAL);
        }
        let out_start = nd::CMD_PKG_SIZE
            .checked_add(pkg.size_in as usize)
            .ok_or(Errno::EFAULT)?;
        let out_end = out_start
            .checked_add(pkg.size_out as usize)
            .ok_or(Errno::EFAULT)?;
        if out_end > arg.len() {
            return Err(Errno::EFAULT);
        }
        let attrs = self.backend.smart().map_err(|e| e.errno)?;
        let full = nd::encode_smart(&attrs, usize::MAX);
        let fitted = nd::encode_smart(&attrs, pkg.size_out as usize);
        let dst = arg
            .get_mut(out_start..out_start + fitted.len())
            .ok_or(Errno::EFAULT)?;
        dst.copy_from_slice(&fitted);
        pkg.fw_size = u32::try_from(full.len()).unwrap_or(u32::MAX);
        if !pkg.write_to(arg) {
            return Err(Errno::EFAULT);
        }
        Ok(())
    }
}

fn copy_into(arg: &mut [u8], bytes: &[u8]) -> Result<(), Errno> {
    arg.get_mut(..bytes.len())
        .ok_or(Errno::EFAULT)?
        .copy_from_slice(bytes);
    Ok(())
}

/// The event flags of the ABI (§4) from a CHI value.
pub fn event_flags_from_chi(chi: u64) -> u64 {
    use ocxlpmem_regs::Chi;
    let mut f = 0;
    if chi & Chi::CDA != 0 {
        f |= event::DUMP_AVAILABLE;
    }
    if chi & Chi::ELA != 0 {
        f |= event::ERROR_LOG_AVAILABLE;
    }
    if chi & Chi::CHFS != 0 {
        f |= event::HARDWARE_FATAL;
    }
    if chi & Chi::CFFS != 0 {
        f |= event::FIRMWARE_FATAL;
    }
    f
}
