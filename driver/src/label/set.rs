//! The label set of one label area: the current index and the active labels it marks
//! used, and every change as the two-phase update of spec labels.md §7.3.
//!
//! Every change first writes new labels into slots free in the current index, then writes
//! the *other* index block with the next sequence number and a bitmap that marks the new
//! slots used and the superseded ones free. That single index write is the commit: until
//! it is complete and its checksum matches, the current block still describes the old set
//! and its used slots were not touched; once it is, the new block wins the sequence rule.
//!
//! ```
//! use ocxlpmem::label::index::LabelVersion;
//! use ocxlpmem::label::lsa::MemLsa;
//! use ocxlpmem::label::ns_label::NamespaceLabel;
//! use ocxlpmem::label::{LabelArea, LabelSet};
//!
//! # fn main() -> Result<(), ocxlpmem::label::error::LabelError> {
//! let lsa = MemLsa::new(128 << 10);
//! let serial = 0x1234_5678; // the region's interleave-set cookie
//! let set = match LabelArea::load(&lsa)? {
//!     LabelArea::Labels(set) => set,
//!     LabelArea::Uninitialized(_) => LabelSet::init(&lsa, LabelVersion::V1_1, false)?,
//! };
//! let uuid = uuid::Uuid::from_u128(0x5eed);
//! let (set, _slot) = set.create_namespace(&lsa, NamespaceLabel::new(uuid, 0, 16 << 20), serial)?;
//! let (set, _slot) = set.update_namespace(&lsa, uuid, |l| l.set_name("db"))?;
//! assert_eq!(set.find_namespace_checked(uuid, serial)?.1.name_str(), "db");
//! let set = set.delete_namespace(&lsa, uuid)?;
//! assert_eq!(LabelSet::load(&lsa)?, set);
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use super::error::{IndexError, LabelError, LabelWarning, SlotError};
use super::index::{
    all_free, current_block, has_signature, is_free, le32, next_seq, set_free, IndexBlock,
    LabelVersion, Layout, INDEX_ALIGN,
};
use super::load::{find_index, Found, HDR};
use super::lsa::{read_exact, write_all, Lsa};
use super::ns_label::NamespaceLabel;

/// What a label area holds: a label set, or no valid index at all.
#[derive(Debug, Clone)]
pub enum LabelArea {
    /// At least one index block is valid.
    Labels(LabelSet),
    /// Neither index block is valid under any layout; `init` makes it usable.
    Uninitialized(Uninitialized),
}

/// Whether an area without a valid index looks never initialised or damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UninitializedKind {
    /// No index signature anywhere an index block could start (zeroed or never used).
    Blank,
    /// An index signature is there but no block passes validation (corrupt, or written
    /// by something this reader does not understand).
    Damaged,
}

/// A label area with no valid index block, and why each block was rejected.
#[derive(Debug, Clone)]
pub struct Uninitialized {
    /// Size of the area.
    pub lsa_size: u64,
    /// Blank or damaged.
    pub kind: UninitializedKind,
    /// Why block 0 was rejected (the failure that got furthest).
    pub block0: IndexError,
    /// Why block 1 was rejected.
    pub block1: IndexError,
}

impl Uninitialized {
    /// The same facts as an error, for callers that need labels.
    pub fn into_error(self) -> LabelError {
        LabelError::NoValidIndex {
            lsa_size: self.lsa_size,
            block0: self.block0,
            block1: self.block1,
        }
    }
}

/// The label set of an area as of its current index block.
///
/// A value, not a live view: each operation writes the area and returns the new set; the
/// old value then describes the old state. Before writing, an operation re-reads both
/// index headers and refuses with [`LabelError::Stale`] if another writer committed since.
/// After an operation fails with an LSA error the area holds either the old or the new
/// set; load it again to see which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSet {
    /// The layout written on the next commit (the one found, or the current formula's
    /// slot count when the found block uses the same index size with fewer slots).
    layout: Layout,
    /// nslot of the current block as found.
    found_nslot: u32,
    /// Which block is current.
    current: u8,
    /// Its 2-bit sequence number.
    seq: u8,
    /// Free bitmap over `layout.nslot` slots (1 = free).
    free: Vec<u8>,
    /// Active labels by slot.
    labels: BTreeMap<u32, NamespaceLabel>,
    /// Slots marked used whose contents are not an active label (kept used: never
    /// overwrite bytes this reader could not interpret; `release_skipped` frees them).
    skipped: BTreeSet<u32>,
    /// What the lenient read accepted.
    warnings: Vec<LabelWarning>,
    /// The 72 bytes at each block offset as last seen or written.
    headers: [[u8; HDR]; 2],
}

impl LabelArea {
    /// Reads the area: both index blocks (72-byte headers first, whole blocks only under
    /// a layout their header claims), then the slots the current block marks used,
    /// nothing else.
    pub fn load(lsa: &dyn Lsa) -> Result<LabelArea, LabelError> {
        match find_index(lsa)? {
            Ok(found) => LabelSet::from_found(lsa, found).map(LabelArea::Labels),
            Err(nf) => {
                let [block0, block1] = nf.errors;
                Ok(LabelArea::Uninitialized(Uninitialized {
                    lsa_size: lsa.size(),
                    kind: if nf.signature_seen {
                        UninitializedKind::Damaged
                    } else {
                        UninitializedKind::Blank
                    },
                    block0,
                    block1,
                }))
            }
        }
    }

    /// The label set, if there is one.
    pub fn labels(self) -> Option<LabelSet> {
        match self {
            LabelArea::Labels(s) => Some(s),
            LabelArea::Uninitialized(_) => None,
        }
    }
}

fn seq_of(hdr: &[u8]) -> u8 {
    if has_signature(hdr) {
        (le32(hdr, 20) & 3) as u8
    } else {
        0
    }
}

/// Calls `f(start, count)` for each run of consecutive slots below `nslot` that `free`
/// marks used.
fn used_runs(
    free: &[u8],
    nslot: u32,
    mut f: impl FnMut(u32, u32) -> Result<(), LabelError>,
) -> Result<(), LabelError> {
    let mut s = 0u32;
    while s < nslot {
        if s.is_multiple_of(8) && free.get((s / 8) as usize) == Some(&0xff) {
            // A whole byte of free slots (the common case of a sparse area).
            s += 8;
            continue;
        }
        if is_free(free, s) {
            s += 1;
            continue;
        }
        let start = s;
        while s < nslot && !is_free(free, s) {
            s += 1;
        }
        f(start, s - start)?;
    }
    Ok(())
}

impl LabelSet {
    /// Loads the area, treating an area without a valid index as an error
    /// ([`LabelError::NoValidIndex`], whose message says to initialise it). Use
    /// [`LabelArea::load`] to handle that case as a state.
    pub fn load(lsa: &dyn Lsa) -> Result<LabelSet, LabelError> {
        match LabelArea::load(lsa)? {
            LabelArea::Labels(s) => Ok(s),
            LabelArea::Uninitialized(u) => Err(u.into_error()),
        }
    }

    fn from_found(lsa: &dyn Lsa, found: Found) -> Result<LabelSet, LabelError> {
        let Found {
            version,
            index_size,
            blocks,
            errors,
            headers,
        } = found;
        let size = lsa.size();
        let seqs = [0, 1].map(|b| blocks[b].as_ref().map(IndexBlock::seq2));
        let current = current_block(seqs[0], seqs[1]).unwrap_or(0);
        let mut warnings = Vec::new();
        let mut blocks = blocks;
        let other_err = errors[usize::from(1 - current)].clone();
        let Some(block) = blocks[usize::from(current)].take() else {
            return Err(LabelError::NoValidIndex {
                lsa_size: size,
                block0: errors[0].clone().unwrap_or_else(|| missing(0)),
                block1: errors[1].clone().unwrap_or_else(|| missing(1)),
            });
        };
        if let Some(e) = other_err {
            warnings.push(LabelWarning::OtherIndexInvalid(e));
        }
        let covered = u32::try_from(block.free.len().saturating_mul(8)).unwrap_or(u32::MAX);
        let nslot = block.nslot.min(covered);
        if nslot < block.nslot {
            warnings.push(LabelWarning::BitmapShort {
                nslot: block.nslot,
                covered,
            });
        }
        let formula = Layout::for_size(size, version);
        if let Some(f) = formula {
            if f.nslot != block.nslot {
                warnings.push(LabelWarning::LegacySlotCount {
                    found: block.nslot,
                    formula: f.nslot,
                });
            }
        }
        let layout = match formula {
            Some(f) if f.index_size == index_size && f.nslot >= nslot => f,
            _ => Layout {
                lsa_size: size,
                version,
                index_size,
                nslot,
            },
        };
        // The bitmap over the write layout: found bits for found slots, new slots free.
        let mut free = all_free(layout.nslot);
        let whole = (nslot / 8) as usize;
        for (d, f) in free.iter_mut().zip(&block.free).take(whole) {
            *d = *f;
        }
        for s in (whole as u32 * 8)..nslot {
            set_free(&mut free, s, is_free(&block.free, s));
        }
        let l = layout.label_size();
        let mut labels = BTreeMap::new();
        let mut skipped = BTreeSet::new();
        used_runs(&free, nslot, |start, count| {
            let offset = layout.label_offset() + u64::from(start) * l;
            let mut buf = vec![0u8; count as usize * l as usize];
            read_exact(lsa, offset, &mut buf)?;
            for (i, bytes) in buf.chunks_exact(l as usize).enumerate() {
                let slot = start + i as u32;
                match NamespaceLabel::decode(bytes, version, slot) {
                    Ok(label) => {
                        labels.insert(slot, label);
                    }
                    Err(rule) => {
                        skipped.insert(slot);
                        warnings.push(LabelWarning::SlotSkipped(SlotError {
                            slot,
                            offset: offset + i as u64 * l,
                            rule,
                        }));
                    }
                }
            }
            Ok(())
        })?;
        let mut set = LabelSet {
            layout,
            found_nslot: block.nslot,
            current,
            seq: block.seq2(),
            free,
            labels,
            skipped,
            warnings,
            headers,
        };
        set.warnings.extend(set.namespace_warnings());
        Ok(set)
    }

    /// Initialises the area with `version` labels and no namespaces.
    ///
    /// An area without a valid index gets ndctl's pair: block 0 with seq 3 written first,
    /// then block 1 with seq 2, all slots free (a crash leaves it uninitialised or
    /// initialised). An area with used slots (labels or skipped ones) is refused unless `force`. Re-initialising
    /// a valid area whose index size stays the same is two ordinary commits of an empty
    /// set (a crash leaves the old or the empty set); a change of index size (another
    /// version or a foreign layout) first invalidates the old blocks, non-current first,
    /// so a crash leaves the old set, an uninitialised area, or the new one.
    pub fn init(lsa: &dyn Lsa, version: LabelVersion, force: bool) -> Result<LabelSet, LabelError> {
        let size = lsa.size();
        let layout = Layout::for_size(size, version).ok_or(LabelError::AreaTooSmall {
            size,
            label_size: version.label_size(),
            min: 2 * INDEX_ALIGN + 2 * version.label_size(),
        })?;
        if let LabelArea::Labels(set) = LabelArea::load(lsa)? {
            let in_use = set.labels.len() + set.skipped.len();
            if in_use > 0 && !force {
                return Err(LabelError::AlreadyInitialised {
                    labels: in_use,
                    version: set.layout.version.as_str(),
                });
            }
            if set.layout.version == version && set.layout.index_size == layout.index_size {
                let empty = all_free(layout.nslot);
                let once =
                    set.flip(lsa, layout, empty.clone(), BTreeMap::new(), BTreeSet::new())?;
                return once.flip(lsa, layout, empty, BTreeMap::new(), BTreeSet::new());
            }
            // The new blocks land where the old layout has other things: retire the old
            // index first, the fallback block before the current one.
            let old = set.layout;
            for b in [1 - set.current, set.current] {
                let zero = vec![0u8; old.index_size as usize];
                write_all(lsa, old.index_offset(b), &zero)?;
            }
        }
        let mut headers = [[0u8; HDR]; 2];
        for (b, seq) in [(0u8, 3u8), (1, 2)] {
            let bytes =
                IndexBlock::new(&layout, b, seq, all_free(layout.nslot)).encode(layout.index_size);
            write_all(lsa, layout.index_offset(b), &bytes)?;
            headers[usize::from(b)].copy_from_slice(&bytes[..HDR]);
        }
        Ok(LabelSet {
            layout,
            found_nslot: layout.nslot,
            current: 0,
            seq: 3,
            free: all_free(layout.nslot),
            labels: BTreeMap::new(),
            skipped: BTreeSet::new(),
            warnings: Vec::new(),
            headers,
        })
    }

    /// Zeroes the whole area (ndctl zero-labels): the non-current index block first, then
    /// the current one, then the rest, so a crash leaves the old set or no index.
    pub fn zero(lsa: &dyn Lsa) -> Result<(), LabelError> {
        let size = lsa.size();
        let area = match LabelArea::load(lsa) {
            // Too small for labels: still zero what is there.
            Err(LabelError::AreaTooSmall { .. }) => None,
            other => Some(other?),
        };
        if let Some(LabelArea::Labels(set)) = area {
            let l = set.layout;
            for b in [1 - set.current, set.current] {
                write_all(lsa, l.index_offset(b), &vec![0u8; l.index_size as usize])?;
            }
        }
        let chunk = 1u64 << 20;
        let mut at = 0u64;
        while at < size {
            let n = chunk.min(size - at);
            write_all(lsa, at, &vec![0u8; n as usize])?;
            at += n;
        }
        Ok(())
    }

    /// Every slot below nslot whose contents decode as a label carrying its own slot
    /// number, free or not: what `ndctl read-labels` lists (it does not consult the
    /// bitmap). Reads every slot; the active set is [`labels`](Self::labels).
    pub fn scan_all_slots(&self, lsa: &dyn Lsa) -> Result<Vec<(u32, NamespaceLabel)>, LabelError> {
        let l = self.layout.label_size();
        let per_read = (lsa.max_xfer().clamp(l, 1 << 20) / l) as u32;
        let mut out = Vec::new();
        let mut start = 0u32;
        while start < self.layout.nslot {
            let count = per_read.min(self.layout.nslot - start);
            let mut buf = vec![0u8; count as usize * l as usize];
            read_exact(
                lsa,
                self.layout.label_offset() + u64::from(start) * l,
                &mut buf,
            )?;
            for (i, bytes) in buf.chunks_exact(l as usize).enumerate() {
                let slot = start + i as u32;
                if let Ok(label) = NamespaceLabel::decode(bytes, self.layout.version, slot) {
                    out.push((slot, label));
                }
            }
            start += count;
        }
        Ok(out)
    }

    /// Label format version.
    pub fn version(&self) -> LabelVersion {
        self.layout.version
    }

    /// The layout the next commit writes.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// nslot of the current index block as found on media.
    pub fn found_nslot(&self) -> u32 {
        self.found_nslot
    }

    /// Which index block (0 or 1) is current.
    pub fn current_block(&self) -> u8 {
        self.current
    }

    /// The current block's 2-bit sequence number.
    pub fn seq(&self) -> u8 {
        self.seq
    }

    /// Number of slots.
    pub fn nslot(&self) -> u32 {
        self.layout.nslot
    }

    /// Slots free for new labels.
    pub fn free_slots(&self) -> u32 {
        (0..self.layout.nslot)
            .filter(|&s| is_free(&self.free, s))
            .count() as u32
    }

    /// True if `slot` is free in the current index.
    pub fn is_slot_free(&self, slot: u32) -> bool {
        slot < self.layout.nslot && is_free(&self.free, slot)
    }

    /// Active labels by slot, in slot order.
    pub fn labels(&self) -> impl Iterator<Item = (u32, &NamespaceLabel)> {
        self.labels.iter().map(|(s, l)| (*s, l))
    }

    /// The active labels as a map (slot -> label).
    pub fn label_map(&self) -> &BTreeMap<u32, NamespaceLabel> {
        &self.labels
    }

    /// The active label in `slot`.
    pub fn label(&self, slot: u32) -> Option<&NamespaceLabel> {
        self.labels.get(&slot)
    }

    /// Slots marked used that hold no active label (their warnings say why).
    pub fn skipped_slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.skipped.iter().copied()
    }

    /// What reading accepted leniently, plus the namespace-level findings.
    pub fn warnings(&self) -> &[LabelWarning] {
        &self.warnings
    }

    /// Writes `label` into a free slot and commits it; returns the new set and the slot.
    /// The slot field is set to the slot; everything else is written as given.
    pub fn add_label(
        &self,
        lsa: &dyn Lsa,
        label: NamespaceLabel,
    ) -> Result<(LabelSet, u32), LabelError> {
        let (set, slots) = self.change(lsa, vec![label], &[])?;
        Ok((set, slots[0]))
    }

    /// Replaces the active label in `slot` by `label`, written into a new slot; the one
    /// commit marks the new slot used and frees the old one.
    pub fn update_label(
        &self,
        lsa: &dyn Lsa,
        slot: u32,
        label: NamespaceLabel,
    ) -> Result<(LabelSet, u32), LabelError> {
        self.require_active(slot)?;
        let (set, slots) = self.change(lsa, vec![label], &[slot])?;
        Ok((set, slots[0]))
    }

    /// Frees the active label in `slot` (one commit).
    pub fn delete_label(&self, lsa: &dyn Lsa, slot: u32) -> Result<LabelSet, LabelError> {
        self.require_active(slot)?;
        Ok(self.change(lsa, Vec::new(), &[slot])?.0)
    }

    /// Frees every used slot that holds no active label (one commit).
    pub fn release_skipped(&self, lsa: &dyn Lsa) -> Result<LabelSet, LabelError> {
        let frees: Vec<u32> = self.skipped.iter().copied().collect();
        Ok(self.change(lsa, Vec::new(), &frees)?.0)
    }

    fn require_active(&self, slot: u32) -> Result<(), LabelError> {
        if self.labels.contains_key(&slot) {
            Ok(())
        } else {
            Err(LabelError::NotActive {
                slot,
                nslot: self.layout.nslot,
            })
        }
    }

    /// The general change: `add` labels go into fresh slots (lowest free first, never a
    /// slot used in the current index, so never one of `frees`), `frees` are released,
    /// and one index write commits both.
    pub(super) fn change(
        &self,
        lsa: &dyn Lsa,
        add: Vec<NamespaceLabel>,
        frees: &[u32],
    ) -> Result<(LabelSet, Vec<u32>), LabelError> {
        let mut free = self.free.clone();
        let mut slots = Vec::with_capacity(add.len());
        let mut next = 0u32;
        for _ in &add {
            while next < self.layout.nslot && !is_free(&free, next) {
                next += 1;
            }
            if next >= self.layout.nslot {
                return Err(LabelError::NoFreeSlot {
                    nslot: self.layout.nslot,
                });
            }
            set_free(&mut free, next, false);
            slots.push(next);
        }
        self.check_fresh(lsa)?;
        let mut labels = self.labels.clone();
        let mut skipped = self.skipped.clone();
        for &s in frees {
            labels.remove(&s);
            skipped.remove(&s);
            set_free(&mut free, s, true);
        }
        let v = self.layout.version;
        let l = self.layout.label_size() as usize;
        for (mut label, &slot) in add.into_iter().zip(&slots) {
            label.slot = slot;
            let bytes = label.encode(v, slot);
            let offset = self.layout.slot_offset(slot).ok_or(LabelError::NotActive {
                slot,
                nslot: self.layout.nslot,
            })?;
            write_all(lsa, offset, bytes.get(..l).unwrap_or(&bytes))?;
            labels.insert(slot, label);
        }
        let set = self.flip(lsa, self.layout, free, labels, skipped)?;
        Ok((set, slots))
    }

    /// Refuses if either index header on media differs from the one this set saw.
    fn check_fresh(&self, lsa: &dyn Lsa) -> Result<(), LabelError> {
        for b in 0..2u8 {
            let mut hdr = [0u8; HDR];
            read_exact(lsa, self.layout.index_offset(b), &mut hdr)?;
            let cached = &self.headers[usize::from(b)];
            if &hdr != cached {
                return Err(LabelError::Stale {
                    block: b,
                    expected: seq_of(cached),
                    found: seq_of(&hdr),
                });
            }
        }
        Ok(())
    }

    /// The commit: writes the non-current block with the next sequence number and
    /// `free` as its bitmap under `layout`, and returns the set it describes.
    fn flip(
        &self,
        lsa: &dyn Lsa,
        layout: Layout,
        free: Vec<u8>,
        labels: BTreeMap<u32, NamespaceLabel>,
        skipped: BTreeSet<u32>,
    ) -> Result<LabelSet, LabelError> {
        let next = 1 - self.current;
        let seq = next_seq(self.seq);
        let bytes = IndexBlock::new(&layout, next, seq, free.clone()).encode(layout.index_size);
        write_all(lsa, layout.index_offset(next), &bytes)?;
        let mut headers = self.headers;
        headers[usize::from(next)].copy_from_slice(&bytes[..HDR]);
        let mut set = LabelSet {
            layout,
            found_nslot: layout.nslot,
            current: next,
            seq,
            free,
            labels,
            warnings: Vec::new(),
            headers,
            skipped,
        };
        // What a load of the new state would report: the slot count against the formula
        // (the old current block is valid, so no block warning), the still-skipped
        // slots, and the namespace findings.
        if let Some(f) = Layout::for_size(layout.lsa_size, layout.version) {
            if f.nslot != layout.nslot {
                set.warnings.push(LabelWarning::LegacySlotCount {
                    found: layout.nslot,
                    formula: f.nslot,
                });
            }
        }
        set.warnings.extend(
            self.warnings
                .iter()
                .filter(
                    |w| matches!(w, LabelWarning::SlotSkipped(e) if set.skipped.contains(&e.slot)),
                )
                .cloned(),
        );
        set.warnings.extend(set.namespace_warnings());
        Ok(set)
    }
}

/// Placeholder reason for a block `find_index` reported neither valid nor invalid (it
/// always reports one; this keeps that a typed error rather than a panic).
fn missing(block: u8) -> IndexError {
    IndexError {
        block,
        offset: 0,
        rule: super::error::IndexRule::Signature,
    }
}
