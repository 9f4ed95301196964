//! One vfio-user command in, one reply out. Every refusal is an error reply with a real
//! errno (EINVAL for bad arguments and refused register accesses, ENOTSUP for commands the
//! simulator does not offer); nothing here can desynchronise the stream, because the whole
//! message has been read before it is handled.

use std::os::fd::{BorrowedFd, OwnedFd};

use tracing::{debug, info};

use super::model::DeviceModel;
use super::wire::{cmd, Body, Fields};

/// Largest data transfer of one REGION_READ/WRITE, advertised in the VERSION reply.
pub(crate) const MAX_DATA_XFER: u32 = 1 << 20;
/// Descriptors accepted with one message.
pub(crate) const MAX_MSG_FDS: u32 = 8;
/// Number of IRQ indexes of a PCI function.
const NUM_IRQS: u32 = 5;

const FLAG_READ: u32 = 1;
const FLAG_WRITE: u32 = 2;
const FLAG_MMAP: u32 = 4;
const FLAG_CAPS: u32 = 8;
const CAP_SPARSE_MMAP: u16 = 1;
const REGION_INFO_SIZE: u32 = 32;
const DEVICE_FLAGS_RESET: u32 = 1;
const DEVICE_FLAGS_PCI: u32 = 2;
const IRQ_INFO_EVENTFD: u32 = 1;
const IRQ_INFO_NORESIZE: u32 = 8;
const IRQ_SET_DATA_NONE: u32 = 1;
const IRQ_SET_DATA_EVENTFD: u32 = 4;
const IRQ_SET_ACTION_TRIGGER: u32 = 32;

/// A reply: its body and, for region info, the region's mmap descriptor.
pub(crate) struct Reply<'a> {
    pub(crate) body: Vec<u8>,
    pub(crate) fd: Option<BorrowedFd<'a>>,
}

impl Reply<'_> {
    fn body(body: Body) -> Self {
        Reply {
            body: body.0,
            fd: None,
        }
    }
}

/// Per-connection state: the eventfds the client attached. Dropped (closed) when the
/// client goes, so a dead client leaves nothing behind but the card's own state.
#[derive(Default)]
pub(crate) struct Session {
    irq_fds: Vec<Vec<Option<OwnedFd>>>,
    version_done: bool,
}

type Handled<'a> = Result<Reply<'a>, i32>;

impl Session {
    /// Handles one command.
    pub(crate) fn handle<'m>(
        &mut self,
        model: &'m dyn DeviceModel,
        command: u16,
        body: &[u8],
        fds: Vec<OwnedFd>,
    ) -> Handled<'m> {
        let f = Fields(body);
        if !self.version_done && command != cmd::VERSION {
            // The protocol's first message is VERSION; anything else is a confused client.
            debug!(command, "command before VERSION refused");
            return Err(libc::EINVAL);
        }
        match command {
            cmd::VERSION => self.version(f),
            cmd::DMA_MAP => dma_map(f, fds),
            cmd::DMA_UNMAP => dma_unmap(f),
            cmd::DEVICE_GET_INFO => Ok(Reply::body(
                Body::default()
                    .u32(16)
                    .u32(DEVICE_FLAGS_PCI | DEVICE_FLAGS_RESET)
                    .u32(model.num_regions())
                    .u32(NUM_IRQS),
            )),
            cmd::DEVICE_GET_REGION_INFO => region_info(model, f),
            cmd::GET_IRQ_INFO => irq_info(model, f),
            cmd::SET_IRQS => self.set_irqs(model, f, fds),
            cmd::REGION_READ => region_read(model, f),
            cmd::REGION_WRITE => region_write(model, f),
            cmd::DEVICE_RESET => {
                info!("device reset requested by the client");
                model.reset().map(|()| Reply::body(Body::default()))
            }
            other => {
                debug!(command = other, "unsupported vfio-user command");
                Err(libc::ENOTSUP)
            }
        }
    }

    fn version(&mut self, f: Fields<'_>) -> Handled<'static> {
        let (major, minor) = (f.u16(0).ok_or(libc::EINVAL)?, f.u16(2).ok_or(libc::EINVAL)?);
        // The capabilities string is optional and may lack its NUL (the crate's server
        // panicked on that); the simulator needs nothing from it, so it is only logged.
        let caps = f.0.get(4..).unwrap_or(&[]);
        let caps =
            String::from_utf8_lossy(caps.split(|&b| b == 0).next().unwrap_or(&[])).into_owned();
        info!(major, minor, capabilities = %caps, "client version");
        if major != 0 {
            return Err(libc::ENOTSUP);
        }
        // The reply's minor must not exceed the client's.
        let minor = minor.min(1);
        self.version_done = true;
        let json = format!(
            r#"{{"capabilities":{{"max_msg_fds":{MAX_MSG_FDS},"max_data_xfer_size":{MAX_DATA_XFER},"pgsizes":4096,"max_dma_maps":65535}}}}"#
        );
        Ok(Reply::body(
            Body::default()
                .u16(0)
                .u16(minor)
                .bytes(json.as_bytes())
                .bytes(&[0]),
        ))
    }

    fn set_irqs(
        &mut self,
        model: &dyn DeviceModel,
        f: Fields<'_>,
        fds: Vec<OwnedFd>,
    ) -> Handled<'static> {
        let flags = f.u32(4).ok_or(libc::EINVAL)?;
        let index = f.u32(8).ok_or(libc::EINVAL)?;
        let start = f.u32(12).ok_or(libc::EINVAL)?;
        let count = f.u32(16).ok_or(libc::EINVAL)?;
        if index >= NUM_IRQS || flags & IRQ_SET_ACTION_TRIGGER == 0 {
            return Err(libc::EINVAL);
        }
        let vectors = model.irq_count(index);
        if self.irq_fds.len() < NUM_IRQS as usize {
            self.irq_fds.resize_with(NUM_IRQS as usize, Vec::new);
        }
        let slot = self.irq_fds.get_mut(index as usize).ok_or(libc::EINVAL)?;
        if flags & IRQ_SET_DATA_NONE != 0 && count == 0 {
            // Disable every vector of the index (the VFIO convention).
            slot.clear();
            return Ok(Reply::body(Body::default()));
        }
        let end = start.checked_add(count).ok_or(libc::EINVAL)?;
        if end > vectors || flags & IRQ_SET_DATA_EVENTFD == 0 || fds.len() != count as usize {
            return Err(libc::EINVAL);
        }
        slot.resize_with(vectors as usize, || None);
        for (i, fd) in (start..end).zip(fds) {
            if let Some(s) = slot.get_mut(i as usize) {
                *s = Some(fd);
            }
        }
        Ok(Reply::body(Body::default()))
    }
}

fn dma_map(f: Fields<'_>, fds: Vec<OwnedFd>) -> Handled<'static> {
    let (address, size) = (
        f.u64(16).ok_or(libc::EINVAL)?,
        f.u64(24).ok_or(libc::EINVAL)?,
    );
    if fds.len() > 1 {
        return Err(libc::EINVAL);
    }
    // The card does no DMA: accept the map (QEMU maps guest RAM) and close the fd.
    debug!(address, size, with_fd = !fds.is_empty(), "DMA_MAP accepted");
    Ok(Reply::body(Body::default()))
}

fn dma_unmap(f: Fields<'_>) -> Handled<'static> {
    let (argsz, flags) = (f.u32(0).ok_or(libc::EINVAL)?, f.u32(4).ok_or(libc::EINVAL)?);
    let (address, size) = (
        f.u64(8).ok_or(libc::EINVAL)?,
        f.u64(16).ok_or(libc::EINVAL)?,
    );
    Ok(Reply::body(
        Body::default().u32(argsz).u32(flags).u64(address).u64(size),
    ))
}

fn region_info<'m>(model: &'m dyn DeviceModel, f: Fields<'_>) -> Handled<'m> {
    let argsz = f.u32(0).ok_or(libc::EINVAL)?;
    let index = f.u32(8).ok_or(libc::EINVAL)?;
    if index >= model.num_regions() {
        return Err(libc::EINVAL);
    }
    let r = model.region(index);
    let mut flags = 0;
    if r.read {
        flags |= FLAG_READ;
    }
    if r.write {
        flags |= FLAG_WRITE;
    }
    let mappable = r.fd.is_some() && !r.mmap_areas.is_empty();
    // The sparse capability is always sent with an mmap-able region, so a client never
    // has to guess which parts it may map.
    let mut caps = Body::default();
    if mappable {
        flags |= FLAG_MMAP;
        caps = caps
            .u16(CAP_SPARSE_MMAP)
            .u16(1)
            .u32(0)
            .u32(r.mmap_areas.len() as u32)
            .u32(0);
        for &(o, s) in &r.mmap_areas {
            caps = caps.u64(o).u64(s);
        }
    }
    let needed = REGION_INFO_SIZE + caps.0.len() as u32;
    // A client whose argsz is too small for the capability gets the size it needs and
    // asks again. The CAPS flag and the fd go only with a reply that carries the
    // capability (as libvfio-user does): QEMU's vfio-user-pci refuses a reply with CAPS
    // set and no capability offset ("failed to get region 4 info: Invalid argument").
    let with_caps = mappable && argsz >= needed;
    if with_caps {
        flags |= FLAG_CAPS;
    }
    let file_offset = r.fd.map_or(0, |(_, o)| o);
    let body = Body::default()
        .u32(needed)
        .u32(flags)
        .u32(index)
        .u32(if with_caps { REGION_INFO_SIZE } else { 0 })
        .u64(r.size)
        .u64(file_offset);
    let body = if with_caps { body.bytes(&caps.0) } else { body };
    Ok(Reply {
        body: body.0,
        fd: if with_caps {
            r.fd.map(|(fd, _)| fd)
        } else {
            None
        },
    })
}

fn irq_info(model: &dyn DeviceModel, f: Fields<'_>) -> Handled<'static> {
    let index = f.u32(8).ok_or(libc::EINVAL)?;
    if index >= NUM_IRQS {
        return Err(libc::EINVAL);
    }
    let count = model.irq_count(index);
    let flags = if count > 0 {
        IRQ_INFO_EVENTFD | IRQ_INFO_NORESIZE
    } else {
        0
    };
    Ok(Reply::body(
        Body::default().u32(16).u32(flags).u32(index).u32(count),
    ))
}

/// Parses the (offset, region, count) prefix of REGION_READ/WRITE.
fn access(model: &dyn DeviceModel, f: Fields<'_>) -> Result<(u64, u32, u32), i32> {
    let offset = f.u64(0).ok_or(libc::EINVAL)?;
    let region = f.u32(8).ok_or(libc::EINVAL)?;
    let count = f.u32(12).ok_or(libc::EINVAL)?;
    if region >= model.num_regions() || count > MAX_DATA_XFER {
        return Err(libc::EINVAL);
    }
    Ok((offset, region, count))
}

fn region_read(model: &dyn DeviceModel, f: Fields<'_>) -> Handled<'static> {
    let (offset, region, count) = access(model, f)?;
    let mut data = vec![0u8; count as usize];
    model.read(region, offset, &mut data)?;
    Ok(Reply::body(
        Body::default()
            .u64(offset)
            .u32(region)
            .u32(count)
            .bytes(&data),
    ))
}

fn region_write(model: &dyn DeviceModel, f: Fields<'_>) -> Handled<'static> {
    let (offset, region, count) = access(model, f)?;
    let data =
        f.0.get(16..)
            .filter(|d| d.len() == count as usize)
            .ok_or(libc::EINVAL)?;
    model.write(region, offset, data)?;
    Ok(Reply::body(
        Body::default().u64(offset).u32(region).u32(count),
    ))
}
