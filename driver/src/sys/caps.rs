//! The capability chain of `VFIO_DEVICE_GET_REGION_INFO`, parsed from a byte buffer.
//!
//! The kernel appends capabilities after `struct vfio_region_info`; each starts with a
//! `vfio_info_cap_header { u16 id, u16 version, u32 next }` whose `next` is an offset from
//! the start of the whole buffer (0 ends the chain). The buffer is untrusted input here:
//! every offset and count is bounds-checked, and the chain may not loop.

use vfio_bindings::bindings::vfio::{
    vfio_info_cap_header, vfio_region_info, vfio_region_info_cap_sparse_mmap,
    vfio_region_info_cap_type, vfio_region_sparse_mmap_area, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
    VFIO_REGION_INFO_CAP_SPARSE_MMAP, VFIO_REGION_INFO_CAP_TYPE,
};

/// Size of a capability header.
const HEADER: usize = std::mem::size_of::<vfio_info_cap_header>();
/// Size of the fixed part of the sparse-mmap capability (header, nr_areas, reserved).
const SPARSE_FIXED: usize = std::mem::size_of::<vfio_region_info_cap_sparse_mmap>();
/// Size of one sparse-mmap area.
const SPARSE_AREA: usize = std::mem::size_of::<vfio_region_sparse_mmap_area>();
/// Size of the region-type capability.
const TYPE_CAP: usize = std::mem::size_of::<vfio_region_info_cap_type>();
/// Capabilities live after the fixed `vfio_region_info`.
pub const REGION_INFO_SIZE: usize = std::mem::size_of::<vfio_region_info>();

// Layout of the kernel ABI this parser reads by offset (include/uapi/linux/vfio.h).
const _: () = {
    assert!(HEADER == 8);
    assert!(std::mem::offset_of!(vfio_info_cap_header, id) == 0);
    assert!(std::mem::offset_of!(vfio_info_cap_header, version) == 2);
    assert!(std::mem::offset_of!(vfio_info_cap_header, next) == 4);
    assert!(SPARSE_FIXED == 16);
    assert!(std::mem::offset_of!(vfio_region_info_cap_sparse_mmap, nr_areas) == 8);
    assert!(std::mem::offset_of!(vfio_region_info_cap_sparse_mmap, areas) == 16);
    assert!(SPARSE_AREA == 16);
    assert!(std::mem::offset_of!(vfio_region_sparse_mmap_area, offset) == 0);
    assert!(std::mem::offset_of!(vfio_region_sparse_mmap_area, size) == 8);
    assert!(TYPE_CAP == 16);
    assert!(std::mem::offset_of!(vfio_region_info_cap_type, type_) == 8);
    assert!(std::mem::offset_of!(vfio_region_info_cap_type, subtype) == 12);
    assert!(REGION_INFO_SIZE == 32);
};

/// Upper bound on the number of capabilities followed (a real chain has a handful).
const MAX_CAPS: usize = 64;

/// One capability of a region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionCap {
    /// `VFIO_REGION_INFO_CAP_SPARSE_MMAP`: the mmap-able `(offset, size)` areas.
    SparseMmap(Vec<(u64, u64)>),
    /// `VFIO_REGION_INFO_CAP_TYPE`: a device-specific region type.
    Type {
        /// Region type.
        type_: u32,
        /// Region subtype.
        subtype: u32,
    },
    /// `VFIO_REGION_INFO_CAP_MSIX_MAPPABLE`: the MSI-X table may be mmap-ed.
    MsixMappable,
    /// A capability this driver does not interpret.
    Other {
        /// Capability id.
        id: u16,
        /// Capability version.
        version: u16,
    },
}

/// Why a capability chain cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapChainError {
    /// A capability (or a field it points to) does not fit in the buffer.
    #[error("capability id {id} at {offset:#x} needs {need} bytes but the buffer has {len}")]
    Truncated {
        /// Capability id (0 when the header itself did not fit).
        id: u16,
        /// Offset of the capability.
        offset: usize,
        /// Bytes needed from the start of the buffer.
        need: usize,
        /// Length of the buffer.
        len: usize,
    },
    /// A `next` offset points backwards, into the fixed part, or is misaligned.
    #[error("capability at {offset:#x} has a bad next offset {next:#x}")]
    BadNext {
        /// Offset of the capability.
        offset: usize,
        /// The next offset it gave.
        next: u32,
    },
    /// The chain is longer than any real one.
    #[error("capability chain longer than {MAX_CAPS} entries")]
    TooLong,
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    let b = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes([b[0], b[1]]))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    let b = buf.get(at..at.checked_add(8)?)?;
    let mut w = [0u8; 8];
    w.copy_from_slice(b);
    Some(u64::from_ne_bytes(w))
}

/// Parses the chain starting at `first` (the `cap_offset` field; 0 = no capabilities) in
/// `buf`, the whole buffer the kernel filled (fixed `vfio_region_info` first). Values are
/// in host byte order, as the kernel writes them.
pub fn parse_region_caps(buf: &[u8], first: u32) -> Result<Vec<RegionCap>, CapChainError> {
    let mut caps = Vec::new();
    let mut at = first as usize;
    let mut prev_end = REGION_INFO_SIZE;
    if first != 0 && (at < REGION_INFO_SIZE || !at.is_multiple_of(4)) {
        return Err(CapChainError::BadNext {
            offset: 0,
            next: first,
        });
    }
    while at != 0 {
        if caps.len() >= MAX_CAPS {
            return Err(CapChainError::TooLong);
        }
        let truncated = |id, need| CapChainError::Truncated {
            id,
            offset: at,
            need,
            len: buf.len(),
        };
        let (Some(id), Some(version), Some(next)) =
            (u16_at(buf, at), u16_at(buf, at + 2), u32_at(buf, at + 4))
        else {
            return Err(truncated(0, at.saturating_add(HEADER)));
        };
        let cap = match u32::from(id) {
            VFIO_REGION_INFO_CAP_SPARSE_MMAP => {
                let nr = u32_at(buf, at + 8).ok_or_else(|| truncated(id, at + SPARSE_FIXED))?;
                let need = (nr as usize)
                    .checked_mul(SPARSE_AREA)
                    .and_then(|n| n.checked_add(at + SPARSE_FIXED))
                    .unwrap_or(usize::MAX);
                if need > buf.len() {
                    return Err(truncated(id, need));
                }
                let mut areas = Vec::with_capacity(nr as usize);
                for i in 0..nr as usize {
                    let base = at + SPARSE_FIXED + i * SPARSE_AREA;
                    // In bounds: checked against `need` above.
                    let (Some(o), Some(s)) = (u64_at(buf, base), u64_at(buf, base + 8)) else {
                        return Err(truncated(id, need));
                    };
                    areas.push((o, s));
                }
                RegionCap::SparseMmap(areas)
            }
            VFIO_REGION_INFO_CAP_TYPE => {
                let (Some(type_), Some(subtype)) = (u32_at(buf, at + 8), u32_at(buf, at + 12))
                else {
                    return Err(truncated(id, at + TYPE_CAP));
                };
                RegionCap::Type { type_, subtype }
            }
            VFIO_REGION_INFO_CAP_MSIX_MAPPABLE => RegionCap::MsixMappable,
            _ => RegionCap::Other { id, version },
        };
        caps.push(cap);
        // A next offset must move forward past this header, so the walk always ends.
        let next_at = next as usize;
        if next != 0 && (next_at < at + HEADER || next_at < prev_end || !next_at.is_multiple_of(4))
        {
            return Err(CapChainError::BadNext { offset: at, next });
        }
        prev_end = at + HEADER;
        at = next_at;
    }
    Ok(caps)
}

/// The sparse-mmap areas of a parsed chain, if it has that capability.
pub fn sparse_areas(caps: &[RegionCap]) -> Option<&[(u64, u64)]> {
    caps.iter().find_map(|c| match c {
        RegionCap::SparseMmap(a) => Some(a.as_slice()),
        _ => None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a buffer as the kernel would: fixed region info, then the given caps.
    pub(crate) struct Builder {
        pub(crate) buf: Vec<u8>,
        last_next: Option<usize>,
        pub(crate) first: u32,
    }

    impl Builder {
        pub(crate) fn new() -> Self {
            Builder {
                buf: vec![0; REGION_INFO_SIZE],
                last_next: None,
                first: 0,
            }
        }

        fn link(&mut self) -> usize {
            let at = self.buf.len();
            match self.last_next {
                Some(p) => self.buf[p..p + 4].copy_from_slice(&(at as u32).to_ne_bytes()),
                None => self.first = at as u32,
            }
            self.last_next = Some(at + 4);
            at
        }

        fn header(&mut self, id: u16, version: u16) {
            self.link();
            self.buf.extend_from_slice(&id.to_ne_bytes());
            self.buf.extend_from_slice(&version.to_ne_bytes());
            self.buf.extend_from_slice(&0u32.to_ne_bytes());
        }

        pub(crate) fn sparse(mut self, areas: &[(u64, u64)]) -> Self {
            self.header(VFIO_REGION_INFO_CAP_SPARSE_MMAP as u16, 1);
            self.buf
                .extend_from_slice(&(areas.len() as u32).to_ne_bytes());
            self.buf.extend_from_slice(&0u32.to_ne_bytes());
            for (o, s) in areas {
                self.buf.extend_from_slice(&o.to_ne_bytes());
                self.buf.extend_from_slice(&s.to_ne_bytes());
            }
            self
        }

        pub(crate) fn type_cap(mut self, t: u32, s: u32) -> Self {
            self.header(VFIO_REGION_INFO_CAP_TYPE as u16, 1);
            self.buf.extend_from_slice(&t.to_ne_bytes());
            self.buf.extend_from_slice(&s.to_ne_bytes());
            self
        }

        fn other(mut self, id: u16) -> Self {
            self.header(id, 7);
            self
        }
    }

    #[test]
    fn no_caps_is_an_empty_chain() {
        assert_eq!(parse_region_caps(&[0; 32], 0), Ok(vec![]));
    }

    #[test]
    fn sparse_mmap_areas_are_read_in_order() {
        let b = Builder::new().sparse(&[(0x1000, 0x8000), (0x9000, 0x1000)]);
        let caps = parse_region_caps(&b.buf, b.first).unwrap();
        assert_eq!(
            sparse_areas(&caps),
            Some(&[(0x1000, 0x8000), (0x9000, 0x1000)][..])
        );
    }

    #[test]
    fn chain_of_three_kinds_is_followed() {
        let b = Builder::new()
            .type_cap(0x8000_1014, 2)
            .other(42)
            .sparse(&[(0, 0x1000)]);
        let caps = parse_region_caps(&b.buf, b.first).unwrap();
        assert_eq!(
            caps,
            vec![
                RegionCap::Type {
                    type_: 0x8000_1014,
                    subtype: 2
                },
                RegionCap::Other { id: 42, version: 7 },
                RegionCap::SparseMmap(vec![(0, 0x1000)]),
            ]
        );
    }

    #[test]
    fn area_count_past_the_buffer_is_truncated_not_a_panic() {
        let mut b = Builder::new().sparse(&[(0, 0x1000)]);
        let at = b.first as usize;
        b.buf[at + 8..at + 12].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(matches!(
            parse_region_caps(&b.buf, b.first),
            Err(CapChainError::Truncated { id: 1, .. })
        ));
    }

    #[test]
    fn header_past_the_end_is_truncated() {
        assert!(matches!(
            parse_region_caps(&[0; 36], 32),
            Err(CapChainError::Truncated { id: 0, .. })
        ));
        assert!(matches!(
            parse_region_caps(&[0; 32], 0x1000),
            Err(CapChainError::Truncated { .. })
        ));
    }

    #[test]
    fn loops_and_backward_links_are_refused() {
        let mut b = Builder::new().other(9);
        let at = b.first as usize;
        // Points at itself.
        b.buf[at + 4..at + 8].copy_from_slice(&(at as u32).to_ne_bytes());
        assert!(matches!(
            parse_region_caps(&b.buf, b.first),
            Err(CapChainError::BadNext { .. })
        ));
        // First offset inside the fixed part.
        assert!(matches!(
            parse_region_caps(&b.buf, 8),
            Err(CapChainError::BadNext { .. })
        ));
        // Misaligned.
        assert!(matches!(
            parse_region_caps(&b.buf, 33),
            Err(CapChainError::BadNext { .. })
        ));
    }

    #[test]
    fn overlong_chain_is_refused() {
        let mut b = Builder::new();
        for _ in 0..=MAX_CAPS {
            b = b.other(9);
        }
        assert_eq!(
            parse_region_caps(&b.buf, b.first),
            Err(CapChainError::TooLong)
        );
    }

    #[test]
    fn truncated_type_cap() {
        let mut b = Builder::new().type_cap(1, 2);
        b.buf.truncate(b.buf.len() - 2);
        assert!(matches!(
            parse_region_caps(&b.buf, b.first),
            Err(CapChainError::Truncated { id: 2, .. })
        ));
    }
}
