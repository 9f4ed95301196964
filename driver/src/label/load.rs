//! Finding the valid index blocks of a label area (spec labels.md §7.2) while reading only
//! index-block bytes: 72-byte headers decide which layout a block is parsed under before
//! the whole block is read.

use std::collections::HashMap;

use super::error::{IndexError, IndexRule, LabelError};
use super::index::{
    has_signature, header_label_size, le16, le64, parse_index, IndexBlock, LabelVersion, Layout,
    INDEX_ALIGN, INDEX_HEADER_SIZE,
};
use super::lsa::{read_exact, Lsa};

/// Bytes of an index header.
pub(super) const HDR: usize = INDEX_HEADER_SIZE as usize;

/// The index blocks found under one layout, at least one of them valid.
#[derive(Debug)]
pub(super) struct Found {
    /// Label format of the layout.
    pub version: LabelVersion,
    /// Index block size of the layout.
    pub index_size: u64,
    /// Each block, if valid.
    pub blocks: [Option<IndexBlock>; 2],
    /// Why each invalid block is invalid.
    pub errors: [Option<IndexError>; 2],
    /// The first 72 bytes at each block's offset (for noticing another writer later).
    pub headers: [[u8; HDR]; 2],
}

/// Why no layout gave a valid block.
#[derive(Debug)]
pub(super) struct NotFound {
    /// Some block had the index signature (damaged rather than blank).
    pub signature_seen: bool,
    /// The most telling failure of each block.
    pub errors: [IndexError; 2],
}

/// Reads through the LSA, remembering what it read so a range is fetched once.
struct Reader<'a> {
    lsa: &'a dyn Lsa,
    seen: HashMap<(u64, usize), Vec<u8>>,
}

impl Reader<'_> {
    fn read(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, LabelError> {
        if let Some(b) = self.seen.get(&(offset, len)) {
            return Ok(b.clone());
        }
        let mut buf = vec![0u8; len];
        read_exact(self.lsa, offset, &mut buf)?;
        self.seen.insert((offset, len), buf.clone());
        Ok(buf)
    }
}

/// A failure, and whether the whole block was checked (a header-only filter result ranks
/// below a full parse when choosing what to report).
type Failure = (IndexError, bool);

fn better(old: &Option<Failure>, new: &Failure) -> bool {
    match old {
        None => true,
        Some((e, full)) => (new.1, new.0.rule.depth()) > (*full, e.rule.depth()),
    }
}

/// Layout candidates in the kernel's order (128-byte labels first, then 256). Within a
/// version, a foreign index size block 0 points at with its otheroff comes first (so an
/// area in such a layout is read only where its index blocks are), then the current
/// formula's (for a formula area the two are the same).
fn candidates(size: u64, h0: Option<&[u8]>) -> Vec<(LabelVersion, u64)> {
    let mut out = Vec::new();
    for version in [LabelVersion::V1_1, LabelVersion::V1_2] {
        if let Some(h0) = h0.filter(|h| has_signature(h)) {
            let other = le64(h0, 40);
            let fits = other
                .checked_mul(2)
                .is_some_and(|two| two.saturating_add(2 * version.label_size()) <= size);
            if header_label_size(h0) == version.label_size()
                && other >= INDEX_ALIGN
                && other.is_multiple_of(INDEX_ALIGN)
                && fits
            {
                out.push((version, other));
            }
        }
        if let Some(l) = Layout::for_size(size, version) {
            if !out.contains(&(version, l.index_size)) {
                out.push((version, l.index_size));
            }
        }
    }
    out
}

/// Finds the first layout under which at least one index block is valid.
pub(super) fn find_index(lsa: &dyn Lsa) -> Result<Result<Found, NotFound>, LabelError> {
    let size = lsa.size();
    let mut reader = Reader {
        lsa,
        seen: HashMap::new(),
    };
    let h0 = if size >= HDR as u64 {
        Some(reader.read(0, HDR)?)
    } else {
        None
    };
    let cands = candidates(size, h0.as_deref());
    if cands.is_empty() {
        return Err(LabelError::AreaTooSmall {
            size,
            label_size: LabelVersion::V1_1.label_size(),
            min: 2 * INDEX_ALIGN + 2 * LabelVersion::V1_1.label_size(),
        });
    }
    let mut best: [Option<Failure>; 2] = [None, None];
    let mut signature_seen = false;
    for (version, index_size) in cands {
        let mut blocks: [Option<IndexBlock>; 2] = [None, None];
        let mut errors: [Option<IndexError>; 2] = [None, None];
        let mut headers = [[0u8; HDR]; 2];
        for b in 0..2u8 {
            let offset = u64::from(b) * index_size;
            let hdr = reader.read(offset, HDR)?;
            headers[usize::from(b)].copy_from_slice(&hdr);
            let err = |rule| IndexError {
                block: b,
                offset,
                rule,
            };
            let failure = if !has_signature(&hdr) {
                (err(IndexRule::Signature), true)
            } else if header_label_size(&hdr) != version.label_size() {
                signature_seen = true;
                let rule = IndexRule::LabelSize {
                    major: le16(&hdr, 60),
                    minor: le16(&hdr, 62),
                    labelsize: hdr.get(19).copied().unwrap_or(0),
                    label_size: header_label_size(&hdr),
                    expected: version.label_size(),
                };
                (err(rule), false)
            } else {
                signature_seen = true;
                let len = usize::try_from(index_size).unwrap_or(usize::MAX);
                let bytes = reader.read(offset, len)?;
                match parse_index(&bytes, b, index_size, size, version) {
                    Ok(block) => {
                        blocks[usize::from(b)] = Some(block);
                        continue;
                    }
                    Err(e) => (e, true),
                }
            };
            errors[usize::from(b)] = Some(failure.0.clone());
            if better(&best[usize::from(b)], &failure) {
                best[usize::from(b)] = Some(failure);
            }
        }
        if blocks.iter().any(Option::is_some) {
            return Ok(Ok(Found {
                version,
                index_size,
                blocks,
                errors,
                headers,
            }));
        }
    }
    let [e0, e1] = best;
    let fallback = |block: u8| IndexError {
        block,
        offset: 0,
        rule: IndexRule::Signature,
    };
    Ok(Err(NotFound {
        signature_seen,
        errors: [
            e0.map_or_else(|| fallback(0), |f| f.0),
            e1.map_or_else(|| fallback(1), |f| f.0),
        ],
    }))
}
