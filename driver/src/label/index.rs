//! Index blocks: layout arithmetic, validation in the fixed order, encoding, sequence
//! numbers (spec labels.md §7.1, §7.2).

use super::error::{IndexError, IndexRule};
use super::fletcher::fletcher64_without;

/// "NAMESPACE_INDEX" + NUL.
pub const INDEX_SIGNATURE: [u8; 16] = *b"NAMESPACE_INDEX\0";
/// Bytes of the index header before the free bitmap.
pub const INDEX_HEADER_SIZE: u64 = 72;
/// Index blocks are rounded up to this.
pub const INDEX_ALIGN: u64 = 256;
/// Offset of the checksum field in an index block.
pub const INDEX_CHECKSUM_OFFSET: usize = 64;

/// The two label format versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LabelVersion {
    /// 1.1: 128-byte labels, no label checksum (ndctl's default).
    V1_1,
    /// 1.2: 256-byte labels with checksum, type and abstraction GUIDs.
    V1_2,
}

impl LabelVersion {
    /// Bytes per label slot.
    pub fn label_size(self) -> u64 {
        match self {
            LabelVersion::V1_1 => 128,
            LabelVersion::V1_2 => 256,
        }
    }

    /// The minor version field.
    pub fn minor(self) -> u16 {
        match self {
            LabelVersion::V1_1 => 1,
            LabelVersion::V1_2 => 2,
        }
    }

    /// The index block's labelsize field (log2(size) - 7 for v1.2; v1.1 writes 0).
    pub fn labelsize_field(self) -> u8 {
        match self {
            LabelVersion::V1_1 => 0,
            LabelVersion::V1_2 => 1,
        }
    }

    /// "1.1" or "1.2".
    pub fn as_str(self) -> &'static str {
        match self {
            LabelVersion::V1_1 => "1.1",
            LabelVersion::V1_2 => "1.2",
        }
    }
}

impl std::fmt::Display for LabelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the index blocks and slots of one area are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    /// Size of the whole label area.
    pub lsa_size: u64,
    /// Label format version (fixes the label size).
    pub version: LabelVersion,
    /// Size of one index block (block 1 starts here, slots at twice this).
    pub index_size: u64,
    /// Number of label slots.
    pub nslot: u32,
}

/// Index block size for `nslot` slots: round_up(72 + ceil(nslot / 8), 256).
pub fn index_size_for(nslot: u32) -> u64 {
    let raw = INDEX_HEADER_SIZE + u64::from(nslot).div_ceil(8);
    raw.div_ceil(INDEX_ALIGN) * INDEX_ALIGN
}

impl Layout {
    /// The layout the current kernel formula gives an area of `lsa_size` bytes: start from
    /// size / L slots, size the index for that, then fit as many slots as remain.
    /// Requires room for two index blocks and at least two labels.
    pub fn for_size(lsa_size: u64, version: LabelVersion) -> Option<Layout> {
        let l = version.label_size();
        let guess = u32::try_from(lsa_size / l).unwrap_or(u32::MAX);
        let guess_index = index_size_for(guess);
        let nslot = lsa_size.checked_sub(guess_index.checked_mul(2)?)? / l;
        let nslot = u32::try_from(nslot).ok()?;
        if nslot < 2 {
            return None;
        }
        // index_size_for(nslot) <= guess_index, so this always fits.
        Layout::with_nslot(lsa_size, version, nslot)
    }

    /// The layout an index block with `nslot` slots describes, if it fits the area.
    pub fn with_nslot(lsa_size: u64, version: LabelVersion, nslot: u32) -> Option<Layout> {
        let index_size = index_size_for(nslot);
        let need = u64::from(nslot)
            .checked_mul(version.label_size())?
            .checked_add(index_size.checked_mul(2)?)?;
        (need <= lsa_size).then_some(Layout {
            lsa_size,
            version,
            index_size,
            nslot,
        })
    }

    /// Bytes per label.
    pub fn label_size(&self) -> u64 {
        self.version.label_size()
    }

    /// Offset of index block `block` (0 or 1).
    pub fn index_offset(&self, block: u8) -> u64 {
        u64::from(block.min(1)) * self.index_size
    }

    /// Offset of slot 0.
    pub fn label_offset(&self) -> u64 {
        2 * self.index_size
    }

    /// Offset of `slot`, if it is below nslot.
    pub fn slot_offset(&self, slot: u32) -> Option<u64> {
        (slot < self.nslot).then(|| self.label_offset() + u64::from(slot) * self.label_size())
    }

    /// Bytes of the free bitmap.
    pub fn bitmap_len(&self) -> usize {
        usize::try_from(u64::from(self.nslot).div_ceil(8)).unwrap_or(usize::MAX)
    }
}

/// Successor of a 2-bit sequence number: 1 -> 2 -> 3 -> 1 (0 stays invalid -> 1).
pub fn next_seq(seq: u8) -> u8 {
    match seq & 3 {
        1 => 2,
        2 => 3,
        _ => 1,
    }
}

/// Which of two blocks is current, given each block's 2-bit seq if valid (§7.2): one
/// valid block is current; equal seqs pick block 1; otherwise the successor wins.
pub fn current_block(seq0: Option<u8>, seq1: Option<u8>) -> Option<u8> {
    match (seq0, seq1) {
        (None, None) => None,
        (Some(_), None) => Some(0),
        (None, Some(_)) => Some(1),
        (Some(a), Some(b)) => {
            if a == b || next_seq(a) == b {
                Some(1)
            } else {
                Some(0)
            }
        }
    }
}

/// A decoded, valid index block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexBlock {
    /// The 3-byte flags placeholder.
    pub flags: [u8; 3],
    /// The labelsize field.
    pub labelsize: u8,
    /// The full seq field (only bits 0-1 count).
    pub seq: u32,
    /// myoff.
    pub myoff: u64,
    /// mysize.
    pub mysize: u64,
    /// otheroff.
    pub otheroff: u64,
    /// labeloff.
    pub labeloff: u64,
    /// nslot.
    pub nslot: u32,
    /// major.
    pub major: u16,
    /// minor.
    pub minor: u16,
    /// The stored checksum.
    pub checksum: u64,
    /// The free bitmap, ceil(nslot / 8) bytes, 1 = free.
    pub free: Vec<u8>,
}

pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    let mut w = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        w.copy_from_slice(s);
    }
    u16::from_le_bytes(w)
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

/// The label size a version pair and labelsize field describe (0 if none).
fn label_size_of(major: u16, minor: u16, labelsize: u8) -> u64 {
    let version = u32::from(major) * 100 + u32::from(minor);
    if major != 1 {
        0
    } else if version >= 102 {
        1u64.checked_shl(7 + u32::from(labelsize)).unwrap_or(0)
    } else {
        128
    }
}

/// The label size an index header's version fields describe (0 if none), read from the
/// header bytes without validating anything else: the cheap filter a reader uses to pick
/// which layout to parse a block under.
pub fn header_label_size(hdr: &[u8]) -> u64 {
    label_size_of(
        le16(hdr, 60),
        le16(hdr, 62),
        hdr.get(19).copied().unwrap_or(0),
    )
}

/// True if `hdr` starts with the index signature.
pub fn has_signature(hdr: &[u8]) -> bool {
    hdr.get(..16) == Some(&INDEX_SIGNATURE[..])
}

/// The checks that need only the 72-byte header, after signature and checksum: sequence,
/// offsets, sizes, in that order. `block` is 0 or 1; `index_size` the layout's.
pub fn check_header(
    hdr: &[u8],
    block: u8,
    index_size: u64,
    lsa_size: u64,
    version: LabelVersion,
) -> Result<(), IndexRule> {
    let seq = le32(hdr, 20);
    if seq & 3 == 0 {
        return Err(IndexRule::Sequence { seq });
    }
    let mine = u64::from(block.min(1)) * index_size;
    let other = u64::from(1 - block.min(1)) * index_size;
    for (field, at, expected) in [
        ("myoff", 24, mine),
        ("otheroff", 40, other),
        ("labeloff", 48, 2 * index_size),
    ] {
        let found = le64(hdr, at);
        if found != expected {
            return Err(IndexRule::Offset {
                field,
                found,
                expected,
            });
        }
    }
    let mysize = le64(hdr, 32);
    if !(INDEX_HEADER_SIZE..=index_size).contains(&mysize) {
        return Err(IndexRule::MySize {
            found: mysize,
            min: INDEX_HEADER_SIZE,
            max: index_size,
        });
    }
    let (labelsize, major, minor) = (
        hdr.get(19).copied().unwrap_or(0),
        le16(hdr, 60),
        le16(hdr, 62),
    );
    let label_size = label_size_of(major, minor, labelsize);
    if label_size != version.label_size() {
        return Err(IndexRule::LabelSize {
            major,
            minor,
            labelsize,
            label_size,
            expected: version.label_size(),
        });
    }
    let nslot = le32(hdr, 56);
    let fits = u64::from(nslot)
        .checked_mul(label_size)
        .and_then(|n| n.checked_add(2 * index_size))
        .is_some_and(|need| need <= lsa_size);
    if !fits {
        return Err(IndexRule::SlotCount {
            nslot,
            label_size,
            index_size,
            lsa_size,
        });
    }
    Ok(())
}

/// Validates index block `block` (its `index_size` bytes in `bytes`) in the fixed order
/// signature, checksum, sequence, offsets, sizes, and decodes it.
pub fn parse_index(
    bytes: &[u8],
    block: u8,
    index_size: u64,
    lsa_size: u64,
    version: LabelVersion,
) -> Result<IndexBlock, IndexError> {
    let offset = u64::from(block.min(1)) * index_size;
    let err = |rule| IndexError {
        block,
        offset,
        rule,
    };
    let have = bytes.len() as u64;
    if have < index_size || index_size < INDEX_HEADER_SIZE {
        return Err(err(IndexRule::Truncated {
            have,
            need: index_size.max(INDEX_HEADER_SIZE),
        }));
    }
    let Some(block_bytes) = bytes.get(..usize::try_from(index_size).unwrap_or(usize::MAX)) else {
        return Err(err(IndexRule::Truncated {
            have,
            need: index_size,
        }));
    };
    if block_bytes.get(..16) != Some(&INDEX_SIGNATURE[..]) {
        return Err(err(IndexRule::Signature));
    }
    // The checksum covers mysize bytes; a mysize outside the block is a size error found
    // later, so until then sum the whole block (what the kernel does) to stay in bounds.
    let mysize = le64(block_bytes, 32);
    let span = if (INDEX_HEADER_SIZE..=index_size).contains(&mysize) {
        mysize
    } else {
        index_size
    };
    let summed = block_bytes.get(..span as usize).unwrap_or(block_bytes);
    let stored = le64(block_bytes, INDEX_CHECKSUM_OFFSET);
    let computed = fletcher64_without(summed, INDEX_CHECKSUM_OFFSET);
    if stored != computed {
        return Err(err(IndexRule::Checksum { stored, computed }));
    }
    check_header(block_bytes, block, index_size, lsa_size, version).map_err(err)?;
    let nslot = le32(block_bytes, 56);
    let bitmap_len = u64::from(nslot).div_ceil(8) as usize;
    let start = INDEX_HEADER_SIZE as usize;
    // index_size >= 72 + ceil(nslot / 8) whenever index_size = index_size_for(nslot);
    // a foreign block with a larger nslot than its layout gets the bits that are there.
    let free = block_bytes
        .get(start..start + bitmap_len)
        .map(<[u8]>::to_vec)
        .unwrap_or_else(|| {
            block_bytes
                .get(start..)
                .map(<[u8]>::to_vec)
                .unwrap_or_default()
        });
    let mut flags = [0u8; 3];
    flags.copy_from_slice(block_bytes.get(16..19).unwrap_or(&[0, 0, 0]));
    Ok(IndexBlock {
        flags,
        labelsize: block_bytes.get(19).copied().unwrap_or(0),
        seq: le32(block_bytes, 20),
        myoff: le64(block_bytes, 24),
        mysize,
        otheroff: le64(block_bytes, 40),
        labeloff: le64(block_bytes, 48),
        nslot,
        major: le16(block_bytes, 60),
        minor: le16(block_bytes, 62),
        checksum: stored,
        free,
    })
}

impl IndexBlock {
    /// A fresh block for `layout` at position `block` with sequence `seq` and bitmap
    /// `free` (ceil(nslot / 8) bytes; bits past nslot are cleared).
    pub fn new(layout: &Layout, block: u8, seq: u8, mut free: Vec<u8>) -> IndexBlock {
        free.resize(layout.bitmap_len(), 0);
        clear_tail_bits(&mut free, layout.nslot);
        IndexBlock {
            flags: [0; 3],
            labelsize: layout.version.labelsize_field(),
            seq: u32::from(seq & 3),
            myoff: layout.index_offset(block),
            mysize: layout.index_size,
            otheroff: layout.index_offset(1 - block.min(1)),
            labeloff: layout.label_offset(),
            nslot: layout.nslot,
            major: 1,
            minor: layout.version.minor(),
            checksum: 0,
            free,
        }
    }

    /// The 2-bit sequence number.
    pub fn seq2(&self) -> u8 {
        (self.seq & 3) as u8
    }

    /// Encodes the block into `index_size` bytes (at least the 72-byte header) with its
    /// checksum over mysize bytes.
    pub fn encode(&self, index_size: u64) -> Vec<u8> {
        let size = usize::try_from(index_size.max(INDEX_HEADER_SIZE)).unwrap_or(usize::MAX);
        let mut b = vec![0u8; size];
        b[..16].copy_from_slice(&INDEX_SIGNATURE);
        b[16..19].copy_from_slice(&self.flags);
        b[19] = self.labelsize;
        b[20..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.myoff.to_le_bytes());
        b[32..40].copy_from_slice(&self.mysize.to_le_bytes());
        b[40..48].copy_from_slice(&self.otheroff.to_le_bytes());
        b[48..56].copy_from_slice(&self.labeloff.to_le_bytes());
        b[56..60].copy_from_slice(&self.nslot.to_le_bytes());
        b[60..62].copy_from_slice(&self.major.to_le_bytes());
        b[62..64].copy_from_slice(&self.minor.to_le_bytes());
        let start = INDEX_HEADER_SIZE as usize;
        let n = self.free.len().min(b.len().saturating_sub(start));
        b[start..start + n].copy_from_slice(&self.free[..n]);
        let span = usize::try_from(self.mysize)
            .unwrap_or(usize::MAX)
            .clamp(INDEX_HEADER_SIZE as usize, b.len());
        let sum = fletcher64_without(&b[..span], INDEX_CHECKSUM_OFFSET);
        b[64..72].copy_from_slice(&sum.to_le_bytes());
        b
    }
}

/// Clears bitmap bits at and past `nslot` (writers keep them zero).
pub fn clear_tail_bits(free: &mut [u8], nslot: u32) {
    let first = (nslot / 8) as usize;
    let keep = nslot % 8;
    for (i, byte) in free.iter_mut().enumerate().skip(first) {
        if i == first && keep != 0 {
            *byte &= (1u8 << keep) - 1;
        } else {
            *byte = 0;
        }
    }
}

/// True if `slot` is marked free in `free` (bit `slot % 8` of byte `slot / 8`, the
/// little-endian bit order of the kernel's bitmap on POWER9 LE and x86).
pub fn is_free(free: &[u8], slot: u32) -> bool {
    free.get((slot / 8) as usize)
        .is_some_and(|b| b & (1 << (slot % 8)) != 0)
}

/// Marks `slot` free (`true`) or used (`false`); out-of-range slots are ignored.
pub fn set_free(free: &mut [u8], slot: u32, value: bool) {
    if let Some(b) = free.get_mut((slot / 8) as usize) {
        if value {
            *b |= 1 << (slot % 8);
        } else {
            *b &= !(1 << (slot % 8));
        }
    }
}

/// A bitmap with every slot below `nslot` free.
pub fn all_free(nslot: u32) -> Vec<u8> {
    let mut free = vec![0xffu8; u64::from(nslot).div_ceil(8) as usize];
    clear_tail_bits(&mut free, nslot);
    free
}
