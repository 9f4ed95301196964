//! Namespace-level views of a label set: labels grouped by UUID, the UPDATING and
//! duplicate rules, the interleave-set cookie check, and the one-label-per-namespace
//! operations this card uses (one DIMM per region, spec device.md §6).

use std::collections::BTreeMap;

use uuid::Uuid;

use super::error::{LabelError, LabelWarning};
use super::lsa::Lsa;
use super::ns_label::{set_state, NamespaceLabel, SetState, FLAG_UPDATING};
use super::set::LabelSet;

/// Whether the labels of one namespace UUID are usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceState {
    /// A complete set (here: the one label of nlabel 1). `updating` is true when a label
    /// still carries the UPDATING flag old kernels left behind; accepted (labels.md §7.3).
    Active {
        /// Some label has UPDATING set.
        updating: bool,
    },
    /// Positions missing or nlabel disagreeing: mid-update, or a multi-DIMM set whose
    /// other DIMMs are not on this card.
    Incomplete {
        /// Distinct positions found.
        found: usize,
        /// The nlabel claimed.
        nlabel: u16,
    },
    /// Two or more labels at one position: ambiguous, neither is used.
    Duplicate,
    /// Complete, but written for another interleave set.
    CookieMismatch {
        /// The label's cookie.
        found: u64,
        /// The expected one.
        expected: u64,
    },
}

/// One namespace UUID and its labels in this area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceEntry {
    /// The UUID.
    pub uuid: Uuid,
    /// Slots of its labels, ascending.
    pub slots: Vec<u32>,
    /// The label in the lowest slot (the one the single-DIMM case uses).
    pub label: NamespaceLabel,
    /// Usable or why not.
    pub state: NamespaceState,
}

impl NamespaceEntry {
    /// True if the namespace can be used.
    pub fn is_usable(&self) -> bool {
        matches!(self.state, NamespaceState::Active { .. })
    }
}

impl LabelSet {
    fn by_uuid(&self) -> BTreeMap<Uuid, Vec<(u32, &NamespaceLabel)>> {
        let mut groups: BTreeMap<Uuid, Vec<(u32, &NamespaceLabel)>> = BTreeMap::new();
        for (slot, label) in self.labels() {
            groups.entry(label.uuid).or_default().push((slot, label));
        }
        groups
    }

    /// The namespaces of this area, by UUID. With `expected_cookie`, complete sets whose
    /// isetcookie differs are reported as [`NamespaceState::CookieMismatch`].
    pub fn namespaces(&self, expected_cookie: Option<u64>) -> Vec<NamespaceEntry> {
        self.by_uuid()
            .into_iter()
            .map(|(uuid, group)| {
                let labels: Vec<&NamespaceLabel> = group.iter().map(|(_, l)| *l).collect();
                let mut positions: Vec<u16> = labels.iter().map(|l| l.position).collect();
                positions.sort_unstable();
                let dup = positions.windows(2).any(|w| w[0] == w[1]);
                let state = if dup {
                    NamespaceState::Duplicate
                } else {
                    match set_state(&labels) {
                        SetState::Incomplete { found, nlabel } => {
                            NamespaceState::Incomplete { found, nlabel }
                        }
                        SetState::Complete => match expected_cookie {
                            Some(expected) if labels[0].isetcookie != expected => {
                                NamespaceState::CookieMismatch {
                                    found: labels[0].isetcookie,
                                    expected,
                                }
                            }
                            _ => NamespaceState::Active {
                                updating: labels.iter().any(|l| l.is_updating()),
                            },
                        },
                    }
                };
                NamespaceEntry {
                    uuid,
                    slots: group.iter().map(|(s, _)| *s).collect(),
                    label: labels[0].clone(),
                    state,
                }
            })
            .collect()
    }

    /// The namespace-level findings of a load: UPDATING flags on complete sets,
    /// incomplete sets, duplicate labels.
    pub(super) fn namespace_warnings(&self) -> Vec<LabelWarning> {
        let mut out = Vec::new();
        for ns in self.namespaces(None) {
            match ns.state {
                NamespaceState::Active { updating: true } => {
                    for &slot in &ns.slots {
                        if self.label(slot).is_some_and(NamespaceLabel::is_updating) {
                            out.push(LabelWarning::Updating { slot });
                        }
                    }
                }
                NamespaceState::Incomplete { found, nlabel } => {
                    out.push(LabelWarning::IncompleteSet {
                        uuid: ns.uuid,
                        found,
                        nlabel,
                    });
                }
                NamespaceState::Duplicate => out.push(LabelWarning::DuplicateUuid {
                    uuid: ns.uuid,
                    slots: ns.slots,
                }),
                NamespaceState::Active { updating: false }
                | NamespaceState::CookieMismatch { .. } => {}
            }
        }
        out
    }

    /// One warning per complete namespace whose cookie is not `expected` (the region's
    /// interleave-set cookie, here the card serial).
    pub fn check_cookie(&self, expected: u64) -> Vec<LabelWarning> {
        self.namespaces(Some(expected))
            .into_iter()
            .filter_map(|ns| match ns.state {
                NamespaceState::CookieMismatch { found, expected } => {
                    Some(LabelWarning::CookieMismatch {
                        uuid: ns.uuid,
                        slot: ns.slots[0],
                        found,
                        expected,
                    })
                }
                _ => None,
            })
            .collect()
    }

    /// The single label of namespace `uuid`: its slot and contents. Fails if there is no
    /// such namespace or several labels claim it.
    pub fn find_namespace(&self, uuid: Uuid) -> Result<(u32, &NamespaceLabel), LabelError> {
        let mut hits = self.labels().filter(|(_, l)| l.uuid == uuid);
        let Some(first) = hits.next() else {
            return Err(LabelError::NotFound { uuid });
        };
        let rest: Vec<u32> = hits.map(|(s, _)| s).collect();
        if rest.is_empty() {
            Ok(first)
        } else {
            let mut slots = vec![first.0];
            slots.extend(rest);
            Err(LabelError::DuplicateUuid { uuid, slots })
        }
    }

    /// As [`find_namespace`](Self::find_namespace), and the label's isetcookie must be
    /// `expected`.
    pub fn find_namespace_checked(
        &self,
        uuid: Uuid,
        expected: u64,
    ) -> Result<(u32, &NamespaceLabel), LabelError> {
        let (slot, label) = self.find_namespace(uuid)?;
        if label.isetcookie != expected {
            return Err(LabelError::CookieMismatch {
                uuid,
                slot,
                found: label.isetcookie,
                expected,
            });
        }
        Ok((slot, label))
    }

    /// Active labels whose name is `name`, in slot order (names need not be unique).
    pub fn find_by_name(&self, name: &str) -> Vec<(u32, &NamespaceLabel)> {
        self.labels()
            .filter(|(_, l)| l.name == name.as_bytes())
            .collect()
    }

    /// Creates namespace `label.uuid` as the single label of a one-DIMM set: nlabel 1,
    /// position 0, isetcookie `cookie`, UPDATING cleared. Refuses a UUID already present.
    pub fn create_namespace(
        &self,
        lsa: &dyn Lsa,
        mut label: NamespaceLabel,
        cookie: u64,
    ) -> Result<(LabelSet, u32), LabelError> {
        if let Some((slot, _)) = self.labels().find(|(_, l)| l.uuid == label.uuid) {
            return Err(LabelError::UuidExists {
                uuid: label.uuid,
                slot,
            });
        }
        label.nlabel = 1;
        label.position = 0;
        label.isetcookie = cookie;
        label.flags &= !FLAG_UPDATING;
        self.add_label(lsa, label)
    }

    /// Changes namespace `uuid` through `edit` (name, size, ...), writing the result into a
    /// new slot and freeing the old one in one commit. The UUID cannot be changed this
    /// way; the UPDATING flag is cleared.
    pub fn update_namespace(
        &self,
        lsa: &dyn Lsa,
        uuid: Uuid,
        edit: impl FnOnce(&mut NamespaceLabel) -> Result<(), LabelError>,
    ) -> Result<(LabelSet, u32), LabelError> {
        let (slot, label) = self.find_namespace(uuid)?;
        let mut label = label.clone();
        edit(&mut label)?;
        label.uuid = uuid;
        label.flags &= !FLAG_UPDATING;
        self.update_label(lsa, slot, label)
    }

    /// Deletes namespace `uuid`: every label carrying it (duplicates included) is freed
    /// in one commit.
    pub fn delete_namespace(&self, lsa: &dyn Lsa, uuid: Uuid) -> Result<LabelSet, LabelError> {
        let slots: Vec<u32> = self
            .labels()
            .filter(|(_, l)| l.uuid == uuid)
            .map(|(s, _)| s)
            .collect();
        if slots.is_empty() {
            return Err(LabelError::NotFound { uuid });
        }
        Ok(self.change(lsa, Vec::new(), &slots)?.0)
    }
}
