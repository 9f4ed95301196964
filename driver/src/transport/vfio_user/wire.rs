//! The vfio-user wire format (client side): message header, command numbers and the few
//! fixed layouts the client sends and parses. All fields are in the host's byte order, as
//! the protocol says ("all data is in the endianness of the host system").
//!
//! Written from the vfio-user protocol specification (QEMU docs/interop/vfio-user.rst),
//! not from the `vfio_user` crate, whose client ignores error replies.

/// Size of the header every message starts with.
pub(crate) const HEADER_SIZE: usize = 16;

/// Command numbers.
pub(crate) mod cmd {
    pub(crate) const VERSION: u16 = 1;
    pub(crate) const DEVICE_GET_INFO: u16 = 4;
    pub(crate) const DEVICE_GET_REGION_INFO: u16 = 5;
    pub(crate) const GET_IRQ_INFO: u16 = 7;
    pub(crate) const SET_IRQS: u16 = 8;
    pub(crate) const REGION_READ: u16 = 9;
    pub(crate) const REGION_WRITE: u16 = 10;
    pub(crate) const DEVICE_RESET: u16 = 13;

    /// The command's name, for messages.
    pub(crate) fn name(command: u16) -> &'static str {
        match command {
            VERSION => "VERSION",
            DEVICE_GET_INFO => "DEVICE_GET_INFO",
            DEVICE_GET_REGION_INFO => "DEVICE_GET_REGION_INFO",
            GET_IRQ_INFO => "GET_IRQ_INFO",
            SET_IRQS => "SET_IRQS",
            REGION_READ => "REGION_READ",
            REGION_WRITE => "REGION_WRITE",
            DEVICE_RESET => "DEVICE_RESET",
            _ => "unknown command",
        }
    }
}

/// Header flag bits.
pub(crate) mod flags {
    /// Message type field (bits 3:0).
    pub(crate) const TYPE_MASK: u32 = 0xF;
    /// Type: command.
    pub(crate) const COMMAND: u32 = 0;
    /// Type: reply.
    pub(crate) const REPLY: u32 = 1;
    /// The reply carries an errno in the header's error field.
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
        let r = Reader(b);
        Header {
            id: r.u16(0).unwrap_or(0),
            command: r.u16(2).unwrap_or(0),
            size: r.u32(4).unwrap_or(0),
            flags: r.u32(8).unwrap_or(0),
            error: r.u32(12).unwrap_or(0),
        }
    }

    pub(crate) fn is_reply(&self) -> bool {
        self.flags & flags::TYPE_MASK == flags::REPLY
    }

    pub(crate) fn is_error(&self) -> bool {
        self.flags & flags::ERROR != 0
    }
}

/// Bounds-checked host-endian reads from a received body.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl Reader<'_> {
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

/// Appends host-endian fields to a request body.
#[derive(Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
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

/// `struct vfio_region_info` as it travels (32 bytes), followed by its capability chain.
pub(crate) const REGION_INFO_SIZE: usize = 32;

/// Capability id of the sparse-mmap capability (`VFIO_REGION_INFO_CAP_SPARSE_MMAP`).
pub(crate) const CAP_SPARSE_MMAP: u16 = 1;

/// A decoded DEVICE_GET_REGION_INFO reply body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegionInfoReply {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
    pub(crate) index: u32,
    pub(crate) size: u64,
    /// File offset of the region start in the fd sent with the reply.
    pub(crate) offset: u64,
    /// Sparse-mmap areas; `None` when the reply carried no sparse capability.
    pub(crate) sparse: Option<Vec<(u64, u64)>>,
}

/// Parses a DEVICE_GET_REGION_INFO reply body, walking its capability chain with every
/// offset checked (the chain is peer input).
pub(crate) fn parse_region_info(body: &[u8]) -> Result<RegionInfoReply, String> {
    let r = Reader(body);
    let short = || format!("region info reply of {} bytes is too short", body.len());
    let argsz = r.u32(0).ok_or_else(short)?;
    let flags = r.u32(4).ok_or_else(short)?;
    let index = r.u32(8).ok_or_else(short)?;
    let cap_offset = r.u32(12).ok_or_else(short)?;
    let size = r.u64(16).ok_or_else(short)?;
    let offset = r.u64(24).ok_or_else(short)?;
    let mut sparse = None;
    // VFIO_REGION_INFO_FLAG_CAPS; caps only count when they were actually sent.
    if flags & 0x8 != 0 && cap_offset != 0 && body.len() > REGION_INFO_SIZE {
        let mut next = cap_offset as usize;
        let mut seen = 0usize;
        while next != 0 {
            seen += 1;
            if seen > 64 || next < REGION_INFO_SIZE {
                return Err(format!("capability chain is malformed at offset {next:#x}"));
            }
            let id = r
                .u16(next)
                .ok_or_else(|| format!("capability at {next:#x} lies outside the reply"))?;
            let following = r
                .u32(next + 4)
                .ok_or_else(|| format!("capability at {next:#x} is truncated"))?;
            if id == CAP_SPARSE_MMAP {
                let count = r
                    .u32(next + 8)
                    .ok_or_else(|| format!("sparse capability at {next:#x} is truncated"))?;
                let mut areas = Vec::new();
                for i in 0..count as usize {
                    let at = next + 16 + i * 16;
                    match (r.u64(at), r.u64(at + 8)) {
                        (Some(o), Some(s)) => areas.push((o, s)),
                        _ => {
                            return Err(format!(
                                "sparse capability at {next:#x} claims {count} areas; area {i} lies outside the reply"
                            ))
                        }
                    }
                }
                sparse.get_or_insert_with(Vec::new).extend(areas);
            }
            let following = following as usize;
            if following != 0 && following <= next {
                return Err(format!(
                    "capability chain does not advance at offset {next:#x}"
                ));
            }
            next = following;
        }
    }
    Ok(RegionInfoReply {
        argsz,
        flags,
        index,
        size,
        offset,
        sparse,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region_info(flags: u32, cap_offset: u32, caps: &[u8]) -> Vec<u8> {
        Writer::default()
            .u32((REGION_INFO_SIZE + caps.len()) as u32)
            .u32(flags)
            .u32(4)
            .u32(cap_offset)
            .u64(0x1000_0000)
            .u64(0x2000)
            .bytes(caps)
            .0
    }

    fn sparse_cap(next: u32, areas: &[(u64, u64)], claimed: u32) -> Vec<u8> {
        let mut w = Writer::default()
            .u16(CAP_SPARSE_MMAP)
            .u16(1)
            .u32(next)
            .u32(claimed)
            .u32(0);
        for &(o, s) in areas {
            w = w.u64(o).u64(s);
        }
        w.0
    }

    #[test]
    fn header_round_trips() {
        let h = Header {
            id: 0x1234,
            command: cmd::REGION_READ,
            size: 0x20,
            flags: flags::REPLY | flags::ERROR,
            error: 22,
        };
        assert_eq!(Header::decode(&h.encode()), h);
        assert!(h.is_reply() && h.is_error());
    }

    #[test]
    fn sparse_areas_are_read_from_the_chain() {
        let caps = sparse_cap(0, &[(0, 0x1000), (0x4000, 0x2000)], 2);
        let info = parse_region_info(&region_info(0xF, 32, &caps)).expect("valid reply");
        assert_eq!(info.sparse, Some(vec![(0, 0x1000), (0x4000, 0x2000)]));
        assert_eq!(
            (info.size, info.offset, info.index),
            (0x1000_0000, 0x2000, 4)
        );
    }

    #[test]
    fn no_caps_flag_means_no_sparse_capability() {
        let info = parse_region_info(&region_info(0x7, 0, &[])).expect("valid reply");
        assert_eq!(info.sparse, None);
    }

    #[test]
    fn area_count_past_the_reply_is_refused() {
        let caps = sparse_cap(0, &[(0, 0x1000)], 1000);
        assert!(parse_region_info(&region_info(0xF, 32, &caps)).is_err());
    }

    #[test]
    fn chain_that_loops_is_refused() {
        let caps = sparse_cap(32, &[(0, 0x1000)], 1);
        assert!(parse_region_info(&region_info(0xF, 32, &caps)).is_err());
    }

    #[test]
    fn cap_offset_inside_the_fixed_part_is_refused() {
        let caps = sparse_cap(0, &[(0, 0x1000)], 1);
        assert!(parse_region_info(&region_info(0xF, 8, &caps)).is_err());
    }

    #[test]
    fn short_reply_is_refused() {
        assert!(parse_region_info(&[0u8; 20]).is_err());
    }
}
