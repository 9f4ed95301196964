//! Namespace labels: the 128-byte v1.1 and 256-byte v1.2 slot contents (spec labels.md
//! §7.1).

use uuid::Uuid;

use super::error::{LabelError, SlotRule};
use super::fletcher::fletcher64_without;
use super::index::{le16, le32, le64, LabelVersion};

/// Label flag: read-only label.
pub const FLAG_ROLABEL: u32 = 0x1;
/// Label flag: BLK / DIMM-local namespace.
pub const FLAG_LOCAL: u32 = 0x2;
/// Label flag: v1.1 BTT marker.
pub const FLAG_BTT: u32 = 0x4;
/// Label flag: the set is mid-update (multi-DIMM, v1.1 era).
pub const FLAG_UPDATING: u32 = 0x8;

/// Bytes of the name field (NUL-terminated, so at most 63 bytes of name are written).
pub const NAME_LEN: usize = 64;
/// Offset of the v1.2 label checksum.
const LABEL_CHECKSUM_OFFSET: usize = 248;

/// Region type GUID of NFIT pmem (v1.2 `type_guid`); this card, not an NFIT provider,
/// writes zero as the Linux ocxl driver's region did.
pub const NFIT_PMEM_TYPE_GUID: Uuid = Uuid::from_u128(0x66f0d379_b4f3_4074_ac43_0d3318b78cdb);
/// Abstraction GUID: BTT (v1.1 layout).
pub const BTT_GUID: Uuid = Uuid::from_u128(0x8aed63a2_29a2_4c66_8b12_f05d15d3922a);
/// Abstraction GUID: BTT2 (v2 layout).
pub const BTT2_GUID: Uuid = Uuid::from_u128(0x18633bfc_1735_4217_8ac9_17239282d3f8);
/// Abstraction GUID: PFN (fsdax with struct-page info).
pub const PFN_GUID: Uuid = Uuid::from_u128(0x266400ba_fb9f_4677_bcb0_968f11d0d225);
/// Abstraction GUID: device-dax.
pub const DAX_GUID: Uuid = Uuid::from_u128(0x97a86d9c_3cdd_4eda_986f_5068b4f80088);

/// One namespace label as stored in a slot.
///
/// `uuid` is kept in RFC 4122 byte order (as ndctl prints it); the two v1.2 GUIDs are
/// stored the way the kernel's `guid_t` holds them (first three fields little-endian).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceLabel {
    /// Namespace UUID.
    pub uuid: Uuid,
    /// Name bytes up to the first NUL (at most 64).
    pub name: Vec<u8>,
    /// FLAG_* bits.
    pub flags: u32,
    /// Labels in the set (DIMMs in the interleave set).
    pub nlabel: u16,
    /// This DIMM's position in the set.
    pub position: u16,
    /// Interleave-set cookie.
    pub isetcookie: u64,
    /// Logical block size (v1.1 pmem writes 0, read as 512).
    pub lbasize: u64,
    /// Start in the DIMM's physical address space (here: offset in the pmem region).
    pub dpa: u64,
    /// Namespace size in bytes.
    pub rawsize: u64,
    /// The slot field (its own slot index when valid).
    pub slot: u32,
    /// v1.2 align byte.
    pub align: u8,
    /// v1.2 region type GUID.
    pub type_guid: Uuid,
    /// v1.2 abstraction GUID (zero = raw).
    pub abstraction_guid: Uuid,
}

impl NamespaceLabel {
    /// A label with the given identity and placement and every other field zero.
    pub fn new(uuid: Uuid, dpa: u64, rawsize: u64) -> NamespaceLabel {
        NamespaceLabel {
            uuid,
            name: Vec::new(),
            flags: 0,
            nlabel: 1,
            position: 0,
            isetcookie: 0,
            lbasize: 0,
            dpa,
            rawsize,
            slot: 0,
            align: 0,
            type_guid: Uuid::nil(),
            abstraction_guid: Uuid::nil(),
        }
    }

    /// The name as text (invalid UTF-8 replaced).
    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// Sets the name, refusing names that leave no room for the terminating NUL.
    pub fn set_name(&mut self, name: &str) -> Result<(), LabelError> {
        if name.len() >= NAME_LEN || name.as_bytes().contains(&0) {
            return Err(LabelError::NameTooLong {
                len: name.len(),
                max: NAME_LEN - 1,
            });
        }
        self.name = name.as_bytes().to_vec();
        Ok(())
    }

    /// Decodes the label in `bytes` (one slot of `version`'s size) found at position
    /// `slot`; fails if its slot field disagrees or (v1.2) its checksum does not match.
    pub fn decode(bytes: &[u8], version: LabelVersion, slot: u32) -> Result<Self, SlotRule> {
        let need = version.label_size() as usize;
        let Some(b) = bytes.get(..need) else {
            return Err(SlotRule::Truncated {
                have: bytes.len(),
                need,
            });
        };
        let found = le32(b, 120);
        if found != slot {
            return Err(SlotRule::SlotField { found });
        }
        if version == LabelVersion::V1_2 {
            let stored = le64(b, LABEL_CHECKSUM_OFFSET);
            let computed = fletcher64_without(b, LABEL_CHECKSUM_OFFSET);
            if stored != computed {
                return Err(SlotRule::Checksum { stored, computed });
            }
        }
        let uuid_at = |at: usize| {
            let mut u = [0u8; 16];
            if let Some(s) = b.get(at..at + 16) {
                u.copy_from_slice(s);
            }
            u
        };
        let name_field = b.get(16..16 + NAME_LEN).unwrap_or(&[]);
        let name_len = name_field
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(name_field.len());
        let (align, type_guid, abstraction_guid) = match version {
            LabelVersion::V1_1 => (0, Uuid::nil(), Uuid::nil()),
            LabelVersion::V1_2 => (
                b.get(124).copied().unwrap_or(0),
                Uuid::from_bytes_le(uuid_at(128)),
                Uuid::from_bytes_le(uuid_at(144)),
            ),
        };
        Ok(NamespaceLabel {
            uuid: Uuid::from_bytes(uuid_at(0)),
            name: name_field.get(..name_len).unwrap_or(&[]).to_vec(),
            flags: le32(b, 80),
            nlabel: le16(b, 84),
            position: le16(b, 86),
            isetcookie: le64(b, 88),
            lbasize: le64(b, 96),
            dpa: le64(b, 104),
            rawsize: le64(b, 112),
            slot: found,
            align,
            type_guid,
            abstraction_guid,
        })
    }

    /// Encodes the label for `version` into its slot size, with `slot` as the slot field
    /// and (v1.2) the checksum. A name longer than the field is cut at 64 bytes.
    pub fn encode(&self, version: LabelVersion, slot: u32) -> Vec<u8> {
        let mut b = vec![0u8; 256];
        b[0..16].copy_from_slice(self.uuid.as_bytes());
        let n = self.name.len().min(NAME_LEN);
        b[16..16 + n].copy_from_slice(&self.name[..n]);
        b[80..84].copy_from_slice(&self.flags.to_le_bytes());
        b[84..86].copy_from_slice(&self.nlabel.to_le_bytes());
        b[86..88].copy_from_slice(&self.position.to_le_bytes());
        b[88..96].copy_from_slice(&self.isetcookie.to_le_bytes());
        b[96..104].copy_from_slice(&self.lbasize.to_le_bytes());
        b[104..112].copy_from_slice(&self.dpa.to_le_bytes());
        b[112..120].copy_from_slice(&self.rawsize.to_le_bytes());
        b[120..124].copy_from_slice(&slot.to_le_bytes());
        match version {
            LabelVersion::V1_1 => b.truncate(128),
            LabelVersion::V1_2 => {
                b[124] = self.align;
                b[128..144].copy_from_slice(&self.type_guid.to_bytes_le());
                b[144..160].copy_from_slice(&self.abstraction_guid.to_bytes_le());
                let sum = fletcher64_without(&b, LABEL_CHECKSUM_OFFSET);
                b[248..256].copy_from_slice(&sum.to_le_bytes());
            }
        }
        b
    }

    /// Logical sector size: lbasize, with 0 meaning 512 (v1.1 pmem).
    pub fn sector_size(&self) -> u64 {
        if self.lbasize == 0 {
            512
        } else {
            self.lbasize
        }
    }

    /// True when the UPDATING flag is set.
    pub fn is_updating(&self) -> bool {
        self.flags & FLAG_UPDATING != 0
    }
}

/// Whether a label set (the labels of one namespace UUID, gathered over the DIMMs of its
/// interleave set) is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetState {
    /// All `nlabel` positions are present: valid, even if UPDATING flags remain (old
    /// kernels left them set).
    Complete,
    /// Some positions are missing or disagree on nlabel: the set is mid-update or its
    /// other DIMMs are not here.
    Incomplete {
        /// Distinct positions found.
        found: usize,
        /// nlabel claimed.
        nlabel: u16,
    },
}

/// Decides whether `labels` (one namespace's labels from every DIMM seen) form a complete
/// set: one label per position 0..nlabel, all claiming the same nlabel.
pub fn set_state(labels: &[&NamespaceLabel]) -> SetState {
    let nlabel = labels.first().map_or(0, |l| l.nlabel);
    let mut seen = std::collections::BTreeSet::new();
    let mut consistent = true;
    for l in labels {
        consistent &= l.nlabel == nlabel && l.position < nlabel;
        seen.insert(l.position);
    }
    if consistent && nlabel > 0 && seen.len() == usize::from(nlabel) && labels.len() == seen.len() {
        SetState::Complete
    } else {
        SetState::Incomplete {
            found: seen.len(),
            nlabel,
        }
    }
}
