//! Typed errors of the label format: each names the offset and the rule broken.

use super::lsa::LsaError;

/// A validity rule of an index block (spec labels.md §7.2), in checking order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexRule {
    /// Fewer bytes than an index block needs are there.
    #[error("block truncated: {have} of {need} bytes present")]
    Truncated {
        /// Bytes available.
        have: u64,
        /// Bytes needed.
        need: u64,
    },
    /// The signature is not "NAMESPACE_INDEX\0".
    #[error("signature is not NAMESPACE_INDEX")]
    Signature,
    /// Fletcher-64 over the block does not match the stored checksum.
    #[error("checksum {stored:#018x} != computed {computed:#018x}")]
    Checksum {
        /// The checksum field.
        stored: u64,
        /// What the bytes sum to.
        computed: u64,
    },
    /// The 2-bit sequence number is 0.
    #[error("sequence {seq:#x} has no valid 2-bit value (0 means invalid)")]
    Sequence {
        /// The seq field.
        seq: u32,
    },
    /// myoff, otheroff or labeloff is not where this block's layout puts it.
    #[error("{field} is {found:#x}, expected {expected:#x}")]
    Offset {
        /// "myoff", "otheroff" or "labeloff".
        field: &'static str,
        /// The stored value.
        found: u64,
        /// The value the layout implies.
        expected: u64,
    },
    /// mysize is outside [72, index size].
    #[error("mysize {found:#x} is outside [{min:#x}, {max:#x}]")]
    MySize {
        /// The stored value.
        found: u64,
        /// 72, the header size.
        min: u64,
        /// The index size.
        max: u64,
    },
    /// major/minor/labelsize describe another label size than the one being parsed.
    #[error("version {major}.{minor} with labelsize field {labelsize} means {label_size}-byte labels, not {expected}")]
    LabelSize {
        /// The major field.
        major: u16,
        /// The minor field.
        minor: u16,
        /// The labelsize field.
        labelsize: u8,
        /// The label size those imply (0 if none).
        label_size: u64,
        /// The label size being parsed.
        expected: u64,
    },
    /// nslot labels plus two index blocks do not fit the area.
    #[error(
        "nslot {nslot} x {label_size} + 2 x {index_size:#x} exceeds the {lsa_size:#x}-byte area"
    )]
    SlotCount {
        /// The nslot field.
        nslot: u32,
        /// Label size.
        label_size: u64,
        /// Index size.
        index_size: u64,
        /// LSA size.
        lsa_size: u64,
    },
}

impl IndexRule {
    /// How far validation got before this rule failed (for choosing which failure of
    /// several candidate layouts to report).
    pub fn depth(&self) -> u8 {
        match self {
            IndexRule::Truncated { .. } => 0,
            IndexRule::Signature => 1,
            IndexRule::Checksum { .. } => 2,
            IndexRule::Sequence { .. } => 3,
            IndexRule::Offset { .. } => 4,
            IndexRule::MySize { .. } => 5,
            IndexRule::LabelSize { .. } => 6,
            IndexRule::SlotCount { .. } => 7,
        }
    }
}

/// An index block failed a validity rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("index block {block} at offset {offset:#x}: {rule}")]
pub struct IndexError {
    /// 0 or 1.
    pub block: u8,
    /// Offset of the block in the label area.
    pub offset: u64,
    /// The rule broken.
    pub rule: IndexRule,
}

/// Why a label slot marked used is not an active label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotRule {
    /// The label's `slot` field is not its position.
    #[error("slot field is {found}, not its position")]
    SlotField {
        /// The stored slot field.
        found: u32,
    },
    /// The v1.2 label checksum does not match.
    #[error("label checksum {stored:#018x} != computed {computed:#018x}")]
    Checksum {
        /// The checksum field.
        stored: u64,
        /// What the bytes sum to.
        computed: u64,
    },
    /// Fewer bytes than a label were given.
    #[error("label truncated: {have} of {need} bytes")]
    Truncated {
        /// Bytes available.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
}

/// A used slot that is not an active label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label slot {slot} at offset {offset:#x}: {rule}")]
pub struct SlotError {
    /// The slot index.
    pub slot: u32,
    /// Offset of the slot in the label area.
    pub offset: u64,
    /// The rule broken.
    pub rule: SlotRule,
}

/// Something a lenient read accepted but a user may want to know about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelWarning {
    /// Only one index block is valid; the other is why.
    #[error("only one valid index block; {0}")]
    OtherIndexInvalid(IndexError),
    /// nslot is not what the current formula gives (older kernels sized it differently).
    #[error(
        "nslot {found} differs from the current formula's {formula} (older kernel layout); kept"
    )]
    LegacySlotCount {
        /// The stored nslot.
        found: u32,
        /// What the current formula gives.
        formula: u32,
    },
    /// A used slot is not an active label and was skipped.
    #[error("skipped {0}")]
    SlotSkipped(SlotError),
    /// A label carries the UPDATING flag (left by old kernels on complete sets).
    #[error("label slot {slot} has the UPDATING flag set; accepted when its set is complete")]
    Updating {
        /// The slot.
        slot: u32,
    },
    /// The current index's free bitmap holds fewer bits than its nslot; the slots past
    /// the bitmap are treated as absent.
    #[error("index nslot {nslot} but its free bitmap covers only {covered} slots; slots past it ignored")]
    BitmapShort {
        /// The stored nslot.
        nslot: u32,
        /// Slots the bitmap covers.
        covered: u32,
    },
    /// Several active labels claim the same namespace UUID and position.
    #[error("namespace {uuid} has {} labels at one position (slots {slots:?}); fix: delete the namespace or one of the slots", slots.len())]
    DuplicateUuid {
        /// The UUID.
        uuid: uuid::Uuid,
        /// The slots holding it.
        slots: Vec<u32>,
    },
    /// A namespace's labels do not form a complete set (mid-update, or DIMMs missing).
    #[error("namespace {uuid} has {found} of {nlabel} labels; not usable on this card")]
    IncompleteSet {
        /// The UUID.
        uuid: uuid::Uuid,
        /// Distinct positions found.
        found: usize,
        /// The nlabel its labels claim.
        nlabel: u16,
    },
    /// A label's interleave-set cookie is not the region's.
    #[error("namespace {uuid} (slot {slot}) has interleave-set cookie {found:#018x}, the region's is {expected:#018x}; the label belongs to another card or the card serial changed")]
    CookieMismatch {
        /// The UUID.
        uuid: uuid::Uuid,
        /// The slot.
        slot: u32,
        /// The label's cookie.
        found: u64,
        /// The region's cookie.
        expected: u64,
    },
}

/// Why a label-area operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// The storage under the labels failed.
    #[error(transparent)]
    Lsa(#[from] LsaError),
    /// Neither index block is valid under any layout; the deepest failures are given.
    #[error("no valid label index in the {lsa_size:#x}-byte area ({block0}; {block1}); fix: initialise the label area (init-labels)")]
    NoValidIndex {
        /// Size of the area.
        lsa_size: u64,
        /// Why block 0 failed.
        block0: IndexError,
        /// Why block 1 failed.
        block1: IndexError,
    },
    /// The area is too small for two index blocks and two labels.
    #[error("label area of {size:#x} bytes is too small for {label_size}-byte labels (minimum {min:#x})")]
    AreaTooSmall {
        /// Size of the area.
        size: u64,
        /// Label size asked for.
        label_size: u64,
        /// The minimum.
        min: u64,
    },
    /// Every slot is in use.
    #[error("all {nslot} label slots are in use; fix: destroy a namespace")]
    NoFreeSlot {
        /// The slot count.
        nslot: u32,
    },
    /// A slot number is not an active label of this area.
    #[error("label slot {slot} is not an active label (nslot {nslot})")]
    NotActive {
        /// The slot asked for.
        slot: u32,
        /// The slot count.
        nslot: u32,
    },
    /// A name does not fit the 64-byte NUL-terminated field.
    #[error("namespace name is {len} bytes; at most {max} fit the label")]
    NameTooLong {
        /// Its length in bytes.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A valid label area already exists and would be overwritten.
    #[error("the label area already holds {labels} label(s) (version {version}); fix: pass force to re-initialise")]
    AlreadyInitialised {
        /// Active labels.
        labels: usize,
        /// Their version.
        version: &'static str,
    },
    /// No active label carries this namespace UUID.
    #[error("no namespace {uuid} in the label area")]
    NotFound {
        /// The UUID asked for.
        uuid: uuid::Uuid,
    },
    /// A namespace UUID is already in use by an active label.
    #[error("namespace {uuid} already exists (label slot {slot}); fix: pick another UUID or update that namespace")]
    UuidExists {
        /// The UUID.
        uuid: uuid::Uuid,
        /// The slot holding it.
        slot: u32,
    },
    /// Several labels claim one namespace, so which one to change is ambiguous.
    #[error("namespace {uuid} has duplicate labels in slots {slots:?}; fix: delete the namespace, or delete all but one slot")]
    DuplicateUuid {
        /// The UUID.
        uuid: uuid::Uuid,
        /// The slots holding it.
        slots: Vec<u32>,
    },
    /// A namespace's label was written for another interleave set.
    #[error("namespace {uuid} (slot {slot}) has interleave-set cookie {found:#018x}, expected {expected:#018x}; fix: the labels belong to another card or its serial changed: destroy the namespace or re-initialise the labels")]
    CookieMismatch {
        /// The UUID.
        uuid: uuid::Uuid,
        /// The slot.
        slot: u32,
        /// The label's cookie.
        found: u64,
        /// The expected cookie.
        expected: u64,
    },
    /// The area changed underneath a cached view (another writer).
    #[error("index block {block} changed since it was read (seq {expected} expected, {found} found); re-read and retry")]
    Stale {
        /// The block.
        block: u8,
        /// The seq the cached view holds.
        expected: u8,
        /// The seq on media (0 = invalid).
        found: u8,
    },
}
