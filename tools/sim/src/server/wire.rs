//! The vfio-user wire format (server side): header, command numbers, field access in the
//! host's byte order (the protocol's rule). Written from the vfio-user protocol
//! specification; the simulator does not share this code with the driver's client on purpose (DESIGN.md: a misunderstanding in
//! one side shows up as a test failure instead of being mirrored in both).

/// Size of the header every message starts with.
pub(crate) const HEADER_SIZE: usize = 16;

/// Command numbers.
pub(crate) mod cmd {
    pub(crate) const VERSION: u16 = 1;
    pub(crate) const DMA_MAP: u16 = 2;
    pub(crate) const DMA_UNMAP: u16 = 3;
    pub(crate) const DEVICE_GET_INFO: u16 = 4;
    pub(crate) const DEVICE_GET_REGION_INFO: u16 = 5;
    pub(crate) const GET_IRQ_INFO: u16 = 7;
    pub(crate) const SET_IRQS: u16 = 8;
    pub(crate) const REGION_READ: u16 = 9;
    pub(crate) const REGION_WRITE: u16 = 10;
    pub(crate) const DEVICE_RESET: u16 = 13;
}

/// Header flag bits.
pub(crate) mod flags {
    pub(crate) const TYPE_MASK: u32 = 0xF;
    pub(crate) const COMMAND: u32 = 0;
    pub(crate) const REPLY: u32 = 1;
    pub(crate) const NO_REPLY: u32 = 1 << 4;
    pub(crate) const ERROR: u32 = 1 << 5;
}

/// The 16-byte message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Header {
    pub(crate) id: u16,
    pub(crate) command: u16,
    /// Size of the whole message, header included.
    pub(crate) size: u32,
    pub(crate) flags: u32,
    pub(crate) error: u32,
}

impl Header {
    pub(crate) fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..2].copy_from_slice(&self.id.to_ne_bytes());
        b[2..4].copy_from_slice(&self.command.to_ne_bytes());
        b[4..8].copy_from_slice(&self.size.to_ne_bytes());
        b[8..12].copy_from_slice(&self.flags.to_ne_bytes());
        b[12..16].copy_from_slice(&self.error.to_ne_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8; HEADER_SIZE]) -> Header {
        let r = Fields(b);
        Header {
            id: r.u16(0).unwrap_or(0),
            command: r.u16(2).unwrap_or(0),
            size: r.u32(4).unwrap_or(0),
            flags: r.u32(8).unwrap_or(0),
            error: r.u32(12).unwrap_or(0),
        }
    }

    /// The reply header to this command: same id and command, `body` bytes after it.
    pub(crate) fn reply(&self, body: usize) -> Header {
        Header {
            id: self.id,
            command: self.command,
            size: (HEADER_SIZE + body) as u32,
            flags: flags::REPLY,
            error: 0,
        }
    }

    /// The error reply to this command, carrying `errno`.
    pub(crate) fn error_reply(&self, errno: i32) -> Header {
        Header {
            id: self.id,
            command: self.command,
            size: HEADER_SIZE as u32,
            flags: flags::REPLY | flags::ERROR,
            error: errno as u32,
        }
    }

    pub(crate) fn no_reply(&self) -> bool {
        self.flags & flags::NO_REPLY != 0
    }

    pub(crate) fn is_command(&self) -> bool {
        self.flags & flags::TYPE_MASK == flags::COMMAND
    }
}

/// Bounds-checked host-endian reads from a received body.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a>(pub(crate) &'a [u8]);

impl Fields<'_> {
    fn array<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        let end = off.checked_add(N)?;
        self.0.get(off..end)?.try_into().ok()
    }
    pub(crate) fn u16(&self, off: usize) -> Option<u16> {
        self.array(off).map(u16::from_ne_bytes)
    }
    pub(crate) fn u32(&self, off: usize) -> Option<u32> {
        self.array(off).map(u32::from_ne_bytes)
    }
    pub(crate) fn u64(&self, off: usize) -> Option<u64> {
        self.array(off).map(u64::from_ne_bytes)
    }
}

/// Builds a reply body from host-endian fields.
#[derive(Default)]
pub(crate) struct Body(pub(crate) Vec<u8>);

impl Body {
    pub(crate) fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_ne_bytes());
        self
    }
    pub(crate) fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_ne_bytes());
        self
    }
    pub(crate) fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_ne_bytes());
        self
    }
    pub(crate) fn bytes(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reply_carries_errno_and_the_command_id() {
        let cmd = Header {
            id: 7,
            command: cmd::REGION_READ,
            size: 32,
            flags: flags::COMMAND,
            error: 0,
        };
        let r = Header::decode(&cmd.error_reply(libc::EINVAL).encode());
        assert_eq!((r.id, r.command, r.size), (7, cmd::REGION_READ, 16));
        assert_eq!(r.flags, flags::REPLY | flags::ERROR);
        assert_eq!(r.error, libc::EINVAL as u32);
    }

    #[test]
    fn short_fields_read_as_none() {
        let f = Fields(&[1, 2, 3]);
        // host byte order, the protocol's rule: 0x0201 on little-endian, 0x0102 on s390x
        assert_eq!(f.u16(0), Some(u16::from_ne_bytes([1, 2])));
        assert_eq!(f.u32(0), None);
        assert_eq!(f.u16(usize::MAX), None);
    }
}
