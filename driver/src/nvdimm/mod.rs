//! The nvdimm-like object model (spec device.md §6): one [`Bus`] per card, holding one
//! [`Dimm`] (the card: serial, firmware, health, admin commands, label area) and one pmem
//! [`Region`] (the card's memory after the 16 MiB label area, interleave-set cookie = the
//! serial), carved into [`Namespace`]s described by labels.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use ocxlpmem::label::index::LabelVersion;
//! use ocxlpmem::media::file::FileWindow;
//! use ocxlpmem::nvdimm::{Bus, NamespaceSpec};
//!
//! // A card image in a file (the simulator's, or a test image), serial 0x1234.
//! let window = Arc::new(FileWindow::open("card.img", 256 << 20)?);
//! let bus = Bus::from_window(0, window, 0x1234, None)?;
//! bus.init_labels(LabelVersion::V1_1, false)?;
//! let ns = bus.create_namespace(&NamespaceSpec { size: Some(64 << 20), name: "log".into(), ..Default::default() })?;
//! let (window, range) = bus.namespace_range(ns.uuid)?;
//! # let _ = (window, range);
//! # Ok(()) }
//! ```

mod alloc;
mod error;
#[cfg(test)]
mod tests;

use std::ops::Range;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::device::Card;
use crate::label::error::LabelWarning;
use crate::label::index::LabelVersion;
use crate::label::lsa::{Lsa, MediaLsa};
use crate::label::namespace::NamespaceState;
use crate::label::ns_label::NamespaceLabel;
use crate::label::set::{LabelArea, LabelSet};
use crate::media::{MediaWindow, LABEL_AREA_SIZE};

pub use alloc::{free_extents, Extent};
pub use error::NvdimmError;

/// The smallest namespace (labels.md: rawsize minimum 16 MiB).
pub const MIN_NAMESPACE_SIZE: u64 = 16 << 20;
/// The default alignment of a namespace's offset and size.
pub const DEFAULT_ALIGN: u64 = 2 << 20;

/// What a new namespace should be.
#[derive(Debug, Clone, Default)]
pub struct NamespaceSpec {
    /// Size in bytes; `None` takes the largest free extent.
    pub size: Option<u64>,
    /// Name (at most 64 bytes).
    pub name: String,
    /// UUID; `None` makes a random one.
    pub uuid: Option<Uuid>,
    /// Alignment of offset and size; `None` is [`DEFAULT_ALIGN`].
    pub align: Option<u64>,
}

/// One namespace of a region.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Namespace {
    /// ndctl-style device name, `namespace<bus>.<n>` (n in offset order).
    pub dev: String,
    /// UUID (nil for the label-less region's one namespace).
    pub uuid: Uuid,
    /// Name.
    pub name: String,
    /// Offset inside the region (the label's dpa).
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// Logical sector size.
    pub sector_size: u64,
    /// Always "raw" (no BTT/pfn/dax info blocks are written by this driver).
    pub mode: &'static str,
    /// Label slot (none when label-less).
    pub slot: Option<u32>,
    /// Whether it can be used, and why not.
    pub state: String,
    /// True when it can be mapped.
    pub usable: bool,
    /// Known bad (poisoned) byte ranges, relative to the namespace's start.
    pub bad_ranges: Vec<Range<u64>>,
}

/// The label area's state, for listings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LabelSummary {
    /// "labels", "blank", "damaged" or "label-less".
    pub state: &'static str,
    /// Label format version when there are labels.
    pub version: Option<String>,
    /// Slots in the area.
    pub nslot: Option<u32>,
    /// Free slots.
    pub free_slots: Option<u32>,
    /// What reading found.
    pub warnings: Vec<String>,
}

/// The card as a DIMM: identity, admin access, label area.
pub struct Dimm {
    dev: String,
    serial: u64,
    card: Option<Arc<Card>>,
    lsa: Arc<dyn Lsa>,
    /// Serialises label writers of this process (other processes are caught by the
    /// label set's stale-index check).
    write_lock: Mutex<()>,
}

impl std::fmt::Debug for Dimm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dimm")
            .field("dev", &self.dev)
            .field("serial", &self.serial)
            .field("card", &self.card.as_ref().map(|c| c.info().device.clone()))
            .finish_non_exhaustive()
    }
}

impl Dimm {
    /// `nmem<bus>`.
    pub fn dev(&self) -> &str {
        &self.dev
    }
    /// The serial number.
    pub fn serial(&self) -> u64 {
        self.serial
    }
    /// The card, when the bus was built from one (admin commands, health, firmware).
    pub fn card(&self) -> Option<&Arc<Card>> {
        self.card.as_ref()
    }
    /// The label area.
    pub fn lsa(&self) -> &Arc<dyn Lsa> {
        &self.lsa
    }
}

/// The pmem region: the card's memory after the label area.
#[derive(Debug)]
pub struct Region {
    dev: String,
    window: Option<Arc<dyn MediaWindow>>,
    size: u64,
    cookie: Option<u64>,
}

impl Region {
    /// `region<bus>`.
    pub fn dev(&self) -> &str {
        &self.dev
    }
    /// Where the region starts in the media window.
    pub fn base(&self) -> u64 {
        LABEL_AREA_SIZE
    }
    /// Size in bytes (the card's memory - 16 MiB).
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Interleave-set cookie (the serial); `None` when editing a label image offline
    /// without one (labels are then listed without a cookie check and cannot be created).
    pub fn cookie(&self) -> Option<u64> {
        self.cookie
    }
    /// True when the region has no usable cookie (serial 0): one raw namespace, no labels.
    pub fn is_label_less(&self) -> bool {
        self.cookie == Some(0)
    }
    /// The media window (none for a bare label-area image).
    pub fn window(&self) -> Option<&Arc<dyn MediaWindow>> {
        self.window.as_ref()
    }
}

/// Capacity of a region.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Capacity {
    /// Region size.
    pub size: u64,
    /// Bytes not claimed by any label.
    pub available: u64,
    /// The largest free extent (what `create_namespace` without a size takes).
    pub largest_free_extent: u64,
}

/// One card as an nvdimm bus: its DIMM and its region.
#[derive(Debug)]
pub struct Bus {
    index: usize,
    dimm: Dimm,
    region: Region,
}

impl Bus {
    /// The bus of a card that is up, with its memory reached through `window` (which must
    /// be the card's LPC size when the card reports one).
    pub fn from_card(
        index: usize,
        card: Arc<Card>,
        window: Arc<dyn MediaWindow>,
    ) -> Result<Bus, NvdimmError> {
        let serial = card.info().serial;
        let lpc = card.info().lpc_size;
        let mut bus = Bus::from_window(index, window, serial, lpc)?;
        bus.dimm.card = Some(card);
        Ok(bus)
    }

    /// A bus over a bare media window (a card image without a card): `serial` is the
    /// cookie. With `expected_len`, the window must be exactly that long.
    pub fn from_window(
        index: usize,
        window: Arc<dyn MediaWindow>,
        serial: u64,
        expected_len: Option<u64>,
    ) -> Result<Bus, NvdimmError> {
        let len = window.len();
        if let Some(e) = expected_len.filter(|e| *e != len) {
            return Err(NvdimmError::WindowSize {
                window: window.describe(),
                len,
                expected: e,
            });
        }
        if serial == 0 {
            tracing::warn!(
                window = window.describe(),
                "serial 0: no interleave-set cookie, the region is label-less (one raw namespace)"
            );
        }
        Bus::from_image(index, window, Some(serial))
    }

    /// A bus over a card image whose cookie may be unknown (offline editing: listing is
    /// unchecked and creating refuses without one).
    pub fn from_image(
        index: usize,
        window: Arc<dyn MediaWindow>,
        cookie: Option<u64>,
    ) -> Result<Bus, NvdimmError> {
        let len = window.len();
        if len < LABEL_AREA_SIZE + MIN_NAMESPACE_SIZE {
            return Err(NvdimmError::WindowTooSmall {
                window: window.describe(),
                len,
            });
        }
        let lsa: Arc<dyn Lsa> = Arc::new(MediaLsa::new(Arc::clone(&window)));
        let mut bus = Bus::from_lsa(index, lsa, cookie, len - LABEL_AREA_SIZE);
        bus.region.window = Some(window);
        Ok(bus)
    }

    /// A bus over a bare label area (an image file edited offline): the region is
    /// `region_size` bytes that are not mapped here, `cookie` the card's serial if known.
    pub fn from_lsa(index: usize, lsa: Arc<dyn Lsa>, cookie: Option<u64>, region_size: u64) -> Bus {
        Bus {
            index,
            dimm: Dimm {
                dev: format!("nmem{index}"),
                serial: cookie.unwrap_or(0),
                card: None,
                lsa,
                write_lock: Mutex::new(()),
            },
            region: Region {
                dev: format!("region{index}"),
                window: None,
                size: region_size,
                cookie,
            },
        }
    }

    /// `ocxlpmem<index>`.
    pub fn dev(&self) -> String {
        format!("ocxlpmem{}", self.index)
    }
    /// The DIMM.
    pub fn dimm(&self) -> &Dimm {
        &self.dimm
    }
    /// The region.
    pub fn region(&self) -> &Region {
        &self.region
    }

    fn lsa(&self) -> &dyn Lsa {
        self.dimm.lsa.as_ref()
    }

    /// The label set, or why there is none.
    fn labels(&self) -> Result<LabelSet, NvdimmError> {
        if self.region.is_label_less() {
            return Err(NvdimmError::LabelLess);
        }
        match LabelArea::load(self.lsa())? {
            LabelArea::Labels(set) => Ok(set),
            LabelArea::Uninitialized(u) => Err(NvdimmError::NoLabels {
                dimm: self.dimm.dev.clone(),
                detail: u.into_error().to_string(),
            }),
        }
    }

    /// What the label area holds.
    pub fn label_summary(&self) -> Result<LabelSummary, NvdimmError> {
        if self.region.is_label_less() {
            return Ok(LabelSummary {
                state: "label-less",
                version: None,
                nslot: None,
                free_slots: None,
                warnings: vec!["serial 0: no interleave-set cookie".into()],
            });
        }
        Ok(match LabelArea::load(self.lsa())? {
            LabelArea::Labels(set) => {
                let mut warnings: Vec<String> =
                    set.warnings().iter().map(ToString::to_string).collect();
                if let Some(c) = self.region.cookie {
                    warnings.extend(set.check_cookie(c).iter().map(LabelWarning::to_string));
                }
                LabelSummary {
                    state: "labels",
                    version: Some(set.version().to_string()),
                    nslot: Some(set.nslot()),
                    free_slots: Some(set.free_slots()),
                    warnings,
                }
            }
            LabelArea::Uninitialized(u) => LabelSummary {
                state: match u.kind {
                    crate::label::set::UninitializedKind::Blank => "blank",
                    crate::label::set::UninitializedKind::Damaged => "damaged",
                },
                version: None,
                nslot: None,
                free_slots: None,
                warnings: vec![u.into_error().to_string()],
            },
        })
    }

    /// Writes a fresh, empty label area (refuses to overwrite valid labels unless `force`).
    pub fn init_labels(&self, version: LabelVersion, force: bool) -> Result<(), NvdimmError> {
        if self.region.is_label_less() {
            return Err(NvdimmError::LabelLess);
        }
        let _g = self
            .dimm
            .write_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        LabelSet::init(self.lsa(), version, force)?;
        Ok(())
    }

    /// Zeroes the label area (every namespace is forgotten).
    pub fn zero_labels(&self) -> Result<(), NvdimmError> {
        let _g = self
            .dimm
            .write_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        LabelSet::zero(self.lsa())?;
        Ok(())
    }

    /// The namespaces, in offset order. A label-less region has one raw namespace
    /// covering it; a blank label area has none.
    pub fn namespaces(&self) -> Result<Vec<Namespace>, NvdimmError> {
        if self.region.is_label_less() {
            return Ok(vec![Namespace {
                dev: format!("namespace{}.0", self.index),
                uuid: Uuid::nil(),
                name: String::new(),
                offset: 0,
                size: self.region.size(),
                sector_size: 512,
                mode: "raw",
                slot: None,
                state: "label-less".into(),
                usable: true,
                bad_ranges: self.bad_ranges(0, self.region.size()),
            }]);
        }
        let set = match self.labels() {
            Ok(s) => s,
            Err(NvdimmError::NoLabels { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out: Vec<Namespace> = set
            .namespaces(self.region.cookie)
            .into_iter()
            .map(|e| {
                let l = &e.label;
                let in_region = l
                    .dpa
                    .checked_add(l.rawsize)
                    .is_some_and(|end| end <= self.region.size());
                let (state, usable) = match (&e.state, in_region) {
                    (_, false) => ("outside the region".to_string(), false),
                    (NamespaceState::Active { .. }, true) => ("active".to_string(), true),
                    (s, true) => (format!("{s:?}"), false),
                };
                Namespace {
                    dev: String::new(),
                    uuid: e.uuid,
                    name: l.name_str(),
                    offset: l.dpa,
                    size: l.rawsize,
                    sector_size: l.sector_size(),
                    mode: "raw",
                    slot: e.slots.first().copied(),
                    state,
                    usable,
                    bad_ranges: if in_region {
                        self.bad_ranges(l.dpa, l.rawsize)
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect();
        out.sort_by_key(|n| (n.offset, n.uuid));
        for (i, n) in out.iter_mut().enumerate() {
            n.dev = format!("namespace{}.{i}", self.index);
        }
        Ok(out)
    }

    /// The window's bad ranges inside region bytes `[offset, offset + len)`, relative to
    /// `offset`.
    fn bad_ranges(&self, offset: u64, len: u64) -> Vec<Range<u64>> {
        let Some(w) = &self.region.window else {
            return Vec::new();
        };
        let start = self.region.base() + offset;
        let end = start.saturating_add(len);
        w.bad_ranges()
            .into_iter()
            .filter(|r| r.start < end && start < r.end)
            .map(|r| r.start.max(start) - start..r.end.min(end) - start)
            .collect()
    }

    /// Size, free bytes and largest free extent of the region.
    pub fn capacity(&self) -> Result<Capacity, NvdimmError> {
        let size = self.region.size();
        if self.region.is_label_less() {
            return Ok(Capacity {
                size,
                available: 0,
                largest_free_extent: 0,
            });
        }
        let used = self.claimed()?;
        let free = free_extents(size, &used, 1);
        Ok(Capacity {
            size,
            available: free.iter().map(|e| e.len).sum(),
            largest_free_extent: free.iter().map(|e| e.len).max().unwrap_or(0),
        })
    }

    /// The byte ranges of the region any label claims (whatever its state: a range a
    /// label we cannot use still names is never handed out again).
    fn claimed(&self) -> Result<Vec<Range<u64>>, NvdimmError> {
        let set = match self.labels() {
            Ok(s) => s,
            Err(NvdimmError::NoLabels { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(set
            .labels()
            .map(|(_, l)| l.dpa..l.dpa.saturating_add(l.rawsize))
            .collect())
    }

    /// Creates a namespace in the first free extent that fits.
    pub fn create_namespace(&self, spec: &NamespaceSpec) -> Result<Namespace, NvdimmError> {
        let align = spec.align.unwrap_or(DEFAULT_ALIGN);
        if align == 0 || !align.is_power_of_two() {
            return Err(NvdimmError::BadAlign { align });
        }
        let _g = self
            .dimm
            .write_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let set = self.labels()?;
        let used: Vec<Range<u64>> = set
            .labels()
            .map(|(_, l)| l.dpa..l.dpa.saturating_add(l.rawsize))
            .collect();
        let free = free_extents(self.region.size(), &used, align);
        let largest = free.iter().map(|e| e.len).max().unwrap_or(0);
        let size = match spec.size {
            Some(s) => {
                if s % align != 0 {
                    return Err(NvdimmError::SizeNotAligned { size: s, align });
                }
                s
            }
            None => largest,
        };
        if size < MIN_NAMESPACE_SIZE {
            return Err(if spec.size.is_some() {
                NvdimmError::TooSmall {
                    size,
                    min: MIN_NAMESPACE_SIZE,
                }
            } else {
                NvdimmError::NoSpace {
                    asked: MIN_NAMESPACE_SIZE,
                    largest,
                }
            });
        }
        let at = free
            .iter()
            .find(|e| e.len >= size)
            .ok_or(NvdimmError::NoSpace {
                asked: size,
                largest,
            })?
            .offset;
        let cookie = self.region.cookie.ok_or(NvdimmError::NoCookie)?;
        let uuid = spec.uuid.unwrap_or_else(Uuid::new_v4);
        let mut label = NamespaceLabel::new(uuid, at, size);
        label.set_name(&spec.name)?;
        let (set, slot) = set.create_namespace(self.lsa(), label, cookie)?;
        drop(set);
        tracing::info!(%uuid, offset = at, size, slot, "namespace created");
        self.namespaces()?
            .into_iter()
            .find(|n| n.uuid == uuid)
            .ok_or(NvdimmError::NotFound {
                what: uuid.to_string(),
            })
    }

    /// Destroys namespace `uuid` (its labels are freed in one commit; the data stays
    /// where it was until something else is created there).
    pub fn destroy_namespace(&self, uuid: Uuid) -> Result<(), NvdimmError> {
        let _g = self
            .dimm
            .write_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.labels()?.delete_namespace(self.lsa(), uuid)?;
        Ok(())
    }

    /// Finds a namespace by UUID, by device name (`namespace0.1`) or by label name.
    pub fn find(&self, key: &str) -> Result<Namespace, NvdimmError> {
        let all = self.namespaces()?;
        let uuid = Uuid::parse_str(key).ok();
        let hits: Vec<&Namespace> = all
            .iter()
            .filter(|n| {
                Some(n.uuid) == uuid || n.dev == key || (!n.name.is_empty() && n.name == key)
            })
            .collect();
        match hits[..] {
            [one] => Ok(one.clone()),
            [] => Err(NvdimmError::NotFound {
                what: key.to_string(),
            }),
            _ => Err(NvdimmError::Ambiguous {
                what: key.to_string(),
                matches: hits.iter().map(|n| n.uuid.to_string()).collect(),
            }),
        }
    }

    /// Where namespace `uuid` lives: the media window and the byte range in it (for a
    /// [`crate::pmem`] mapping). Only usable namespaces can be mapped.
    pub fn namespace_range(
        &self,
        uuid: Uuid,
    ) -> Result<(Arc<dyn MediaWindow>, Range<u64>), NvdimmError> {
        let ns = self.find(&uuid.to_string())?;
        if !ns.usable {
            return Err(NvdimmError::Unusable {
                uuid,
                state: ns.state,
            });
        }
        let window = self.region.window.as_ref().ok_or(NvdimmError::NoWindow)?;
        let start = self.region.base() + ns.offset;
        Ok((Arc::clone(window), start..start + ns.size))
    }
}
