//! The ndctl per-DIMM commands this driver serves (`linux/ndctl.h`): the label-area
//! commands and the SMART `ND_CMD_CALL` of the ocxlpmem family (spec §5).
//!
//! These structures are `__packed` in the uapi header and carry their data inline after
//! the header, so they are coded as byte layouts (host byte order) rather than structs.

use ocxlpmem_regs::abi::nd;
use ocxlpmem_regs::payload::smart::Attribute;

/// `struct nd_cmd_get_config_size`: u32 status, u32 config_size, u32 max_xfer.
pub const GET_CONFIG_SIZE_SIZE: usize = 12;
/// `struct nd_cmd_get_config_data_hdr`: u32 in_offset, u32 in_length, u32 status, data.
pub const GET_CONFIG_DATA_HDR_SIZE: usize = 12;
/// `struct nd_cmd_set_config_hdr`: u32 in_offset, u32 in_length, data, then u32 status.
pub const SET_CONFIG_HDR_SIZE: usize = 8;
/// `struct nd_cmd_pkg`: u64 family, u64 command, u32 size_in, u32 size_out,
/// u32 reserved2[9], u32 fw_size, then the payload.
pub const CMD_PKG_SIZE: usize = 64;
/// Size of the SMART payload header (u8 count, u8 reserved[7]).
pub const SMART_HEADER_SIZE: usize = 8;

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes(s.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    Some(u64::from_ne_bytes(s.try_into().ok()?))
}

fn put(b: &mut [u8], off: usize, v: &[u8]) -> bool {
    match off.checked_add(v.len()).and_then(|end| b.get_mut(off..end)) {
        Some(d) => {
            d.copy_from_slice(v);
            true
        }
        None => false,
    }
}

/// GET_CONFIG_SIZE's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfigSize {
    /// Command status (0 = success, [`nd::CONFIG_LOCKED`] when locked).
    pub status: u32,
    /// Size of the label area in bytes.
    pub config_size: u32,
    /// Largest transfer per GET/SET_CONFIG_DATA.
    pub max_xfer: u32,
}

impl ConfigSize {
    /// Encodes the reply.
    pub fn to_bytes(&self) -> [u8; GET_CONFIG_SIZE_SIZE] {
        let mut b = [0u8; GET_CONFIG_SIZE_SIZE];
        put(&mut b, 0, &self.status.to_ne_bytes());
        put(&mut b, 4, &self.config_size.to_ne_bytes());
        put(&mut b, 8, &self.max_xfer.to_ne_bytes());
        b
    }

    /// Decodes the reply; `None` when the buffer is short.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        Some(Self {
            status: u32_at(b, 0)?,
            config_size: u32_at(b, 4)?,
            max_xfer: u32_at(b, 8)?,
        })
    }
}

/// Builds a GET_CONFIG_DATA argument: the header plus room for `length` bytes.
pub fn get_config_data_arg(offset: u32, length: u32) -> Vec<u8> {
    let mut b = vec![0u8; GET_CONFIG_DATA_HDR_SIZE + length as usize];
    put(&mut b, 0, &offset.to_ne_bytes());
    put(&mut b, 4, &length.to_ne_bytes());
    b
}

/// Splits a GET_CONFIG_DATA argument into (in_offset, in_length).
pub fn get_config_data_request(b: &[u8]) -> Option<(u32, u32)> {
    Some((u32_at(b, 0)?, u32_at(b, 4)?))
}

/// The status and data of a GET_CONFIG_DATA reply.
pub fn get_config_data_reply(b: &[u8]) -> Option<(u32, &[u8])> {
    Some((u32_at(b, 8)?, b.get(GET_CONFIG_DATA_HDR_SIZE..)?))
}

/// Builds a SET_CONFIG_DATA argument: header, `data`, then the 4-byte status slot.
pub fn set_config_data_arg(offset: u32, data: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(data.len()).ok()?;
    let mut b = vec![0u8; SET_CONFIG_HDR_SIZE + data.len() + 4];
    put(&mut b, 0, &offset.to_ne_bytes());
    put(&mut b, 4, &len.to_ne_bytes());
    put(&mut b, SET_CONFIG_HDR_SIZE, data);
    Some(b)
}

/// Splits a SET_CONFIG_DATA argument into (in_offset, data); `None` when the buffer is
/// shorter than the header, the data it announces and the status slot.
pub fn set_config_data_request(b: &[u8]) -> Option<(u32, &[u8])> {
    let off = u32_at(b, 0)?;
    let len = u32_at(b, 4)? as usize;
    let end = SET_CONFIG_HDR_SIZE.checked_add(len)?;
    if b.len() < end.checked_add(4)? {
        return None;
    }
    Some((off, b.get(SET_CONFIG_HDR_SIZE..end)?))
}

/// Offset of SET_CONFIG_DATA's status word (after the data).
pub fn set_config_status_offset(b: &[u8]) -> Option<usize> {
    let len = u32_at(b, 4)? as usize;
    SET_CONFIG_HDR_SIZE.checked_add(len)
}

/// Reads SET_CONFIG_DATA's status word.
pub fn set_config_data_status(b: &[u8]) -> Option<u32> {
    u32_at(b, set_config_status_offset(b)?)
}

/// Writes a u32 status at `off` (false when out of bounds).
pub fn put_status(b: &mut [u8], off: usize, status: u32) -> bool {
    put(b, off, &status.to_ne_bytes())
}

/// The fixed part of `struct nd_cmd_pkg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CmdPkg {
    /// Command family ([`nd::CALL_FAMILY_OCXL`] = 6 for this driver).
    pub family: u64,
    /// Command within the family ([`nd::CALL_SMART`] = 1).
    pub command: u64,
    /// Input bytes in the payload.
    pub size_in: u32,
    /// Output bytes the caller has room for after the input.
    pub size_out: u32,
    /// Reserved words (must be zero).
    pub reserved: [u32; 9],
    /// Out: bytes the firmware wanted to return.
    pub fw_size: u32,
}

impl CmdPkg {
    /// Encodes the header into the first [`CMD_PKG_SIZE`] bytes of `b` (false if short).
    pub fn write_to(&self, b: &mut [u8]) -> bool {
        let mut ok = put(b, 0, &self.family.to_ne_bytes());
        ok &= put(b, 8, &self.command.to_ne_bytes());
        ok &= put(b, 16, &self.size_in.to_ne_bytes());
        ok &= put(b, 20, &self.size_out.to_ne_bytes());
        for (i, r) in self.reserved.iter().enumerate() {
            ok &= put(b, 24 + 4 * i, &r.to_ne_bytes());
        }
        ok & put(b, 60, &self.fw_size.to_ne_bytes())
    }

    /// Decodes the header; `None` when the buffer is short.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let mut reserved = [0u32; 9];
        for (i, r) in reserved.iter_mut().enumerate() {
            *r = u32_at(b, 24 + 4 * i)?;
        }
        Some(Self {
            family: u64_at(b, 0)?,
            command: u64_at(b, 8)?,
            size_in: u32_at(b, 16)?,
            size_out: u32_at(b, 20)?,
            reserved,
            fw_size: u32_at(b, 60)?,
        })
    }

    /// The SMART call of this driver's family with room for `max_attributes`.
    pub fn smart(max_attributes: usize) -> Self {
        let out = SMART_HEADER_SIZE + 16 * max_attributes;
        Self {
            family: nd::CALL_FAMILY_OCXL,
            command: nd::CALL_SMART,
            size_in: 0,
            size_out: u32::try_from(out).unwrap_or(u32::MAX),
            reserved: [0; 9],
            fw_size: 0,
        }
    }
}

/// Encodes the SMART payload: u8 count, u8 reserved[7], then each attribute's two words
/// (host order, as the driver copied them). Truncated to whole attributes that fit `room`.
pub fn encode_smart(attrs: &[Attribute], room: usize) -> Vec<u8> {
    let fit = room.saturating_sub(SMART_HEADER_SIZE) / 16;
    let n = attrs.len().min(fit).min(u8::MAX as usize);
    let mut b = vec![0u8; SMART_HEADER_SIZE + 16 * n];
    if let Some(c) = b.first_mut() {
        *c = n as u8;
    }
    for (i, a) in attrs.iter().take(n).enumerate() {
        let [w0, w1] = a.encode();
        put(&mut b, SMART_HEADER_SIZE + 16 * i, &w0.to_ne_bytes());
        put(&mut b, SMART_HEADER_SIZE + 16 * i + 8, &w1.to_ne_bytes());
    }
    b
}

/// Decodes a SMART payload; attributes past the buffer are dropped, never read.
pub fn decode_smart(b: &[u8]) -> Vec<Attribute> {
    let count = b.first().copied().unwrap_or(0) as usize;
    (0..count)
        .map_while(|i| {
            let off = SMART_HEADER_SIZE + 16 * i;
            Some(Attribute::decode(u64_at(b, off)?, u64_at(b, off + 8)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_size_round_trips() {
        let c = ConfigSize {
            status: 0,
            config_size: nd::CONFIG_SIZE,
            max_xfer: 4096,
        };
        assert_eq!(ConfigSize::from_bytes(&c.to_bytes()), Some(c));
        assert_eq!(ConfigSize::from_bytes(&[0; 11]), None);
    }

    #[test]
    fn set_config_status_follows_the_data() {
        let mut b = set_config_data_arg(0x100, &[1, 2, 3, 4, 5]).unwrap();
        assert_eq!(b.len(), 8 + 5 + 4);
        assert_eq!(
            set_config_data_request(&b),
            Some((0x100, &[1u8, 2, 3, 4, 5][..]))
        );
        assert!(put_status(&mut b, 13, 7));
        assert_eq!(set_config_data_status(&b), Some(7));
        // A header that announces more data than the buffer holds is refused.
        let mut bad = b.clone();
        bad[4..8].copy_from_slice(&100u32.to_ne_bytes());
        assert_eq!(set_config_data_request(&bad), None);
    }

    #[test]
    fn cmd_pkg_is_64_bytes_with_fw_size_last() {
        let p = CmdPkg {
            fw_size: 0xAABB,
            ..CmdPkg::smart(3)
        };
        let mut b = [0u8; CMD_PKG_SIZE];
        assert!(p.write_to(&mut b));
        assert_eq!(b[60..64], 0xAABBu32.to_ne_bytes());
        assert_eq!(b[0..8], 6u64.to_ne_bytes());
        assert_eq!(CmdPkg::from_bytes(&b), Some(p));
        assert_eq!(p.size_out, 8 + 48);
        assert!(!p.write_to(&mut [0u8; 63]));
    }

    #[test]
    fn smart_payload_is_count_reserved_then_words() {
        let a = Attribute {
            id: 0xC2,
            flags: 0,
            current: 100,
            threshold: 10,
            worst: 90,
            raw: 42,
        };
        let b = encode_smart(&[a, a], 8 + 32);
        assert_eq!(b.len(), 40);
        assert_eq!(b[0], 2);
        assert_eq!(b[1..8], [0; 7]);
        assert_eq!(decode_smart(&b), vec![a, a]);
        // Room for one only: the count says one.
        assert_eq!(encode_smart(&[a, a], 8 + 20)[0], 1);
        // A count larger than the buffer is cut short, not over-read.
        let mut lie = b.clone();
        lie[0] = 9;
        assert_eq!(decode_smart(&lie).len(), 2);
    }
}
