//! Errors of the object model.

use uuid::Uuid;

use crate::label::error::LabelError;

/// Why a bus, region or namespace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NvdimmError {
    /// The label format or the label area failed.
    #[error(transparent)]
    Label(#[from] LabelError),
    /// The region has no cookie (serial 0): it cannot hold labels.
    #[error(
        "the region is label-less: the card's serial number is 0, so there is no \
         interleave-set cookie; it is one raw namespace and cannot be divided"
    )]
    LabelLess,
    /// The label area has no valid index.
    #[error("{dimm} has no namespace labels: {detail}")]
    NoLabels {
        /// The DIMM.
        dimm: String,
        /// What reading found.
        detail: String,
    },
    /// The media window is not the card's size.
    #[error("{window} is {len:#x} bytes, but the card's memory is {expected:#x} bytes")]
    WindowSize {
        /// The window.
        window: String,
        /// Its length.
        len: u64,
        /// The card's LPC size.
        expected: u64,
    },
    /// The media window cannot hold the label area and one namespace.
    #[error(
        "{window} is {len:#x} bytes: too small for the 16 MiB label area and a 16 MiB namespace"
    )]
    WindowTooSmall {
        /// The window.
        window: String,
        /// Its length.
        len: u64,
    },
    /// Not enough contiguous free space.
    #[error("no free extent of {asked:#x} bytes (largest free extent: {largest:#x} bytes)")]
    NoSpace {
        /// Bytes asked for.
        asked: u64,
        /// The largest free extent.
        largest: u64,
    },
    /// Smaller than the minimum namespace size.
    #[error("a namespace of {size:#x} bytes is smaller than the minimum {min:#x}")]
    TooSmall {
        /// Size asked for.
        size: u64,
        /// The minimum.
        min: u64,
    },
    /// The size is not a multiple of the alignment.
    #[error("size {size:#x} is not a multiple of the alignment {align:#x}")]
    SizeNotAligned {
        /// Size asked for.
        size: u64,
        /// The alignment.
        align: u64,
    },
    /// The alignment is not a power of two.
    #[error("alignment {align:#x} is not a power of two")]
    BadAlign {
        /// The alignment asked for.
        align: u64,
    },
    /// No namespace matches.
    #[error("no namespace {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// Several namespaces match a name.
    #[error("{what} names several namespaces: {}", matches.join(", "))]
    Ambiguous {
        /// What was looked for.
        what: String,
        /// Their UUIDs.
        matches: Vec<String>,
    },
    /// No cookie is known (an offline label image opened without one).
    #[error(
        "no interleave-set cookie is known for this label area, so no label can be written for it"
    )]
    NoCookie,
    /// The bus has no media window (a bare label-area image).
    #[error("this label area has no media window: its namespaces cannot be mapped")]
    NoWindow,
    /// The namespace's labels are not usable.
    #[error("namespace {uuid} cannot be used: {state}")]
    Unusable {
        /// The namespace.
        uuid: Uuid,
        /// Why.
        state: String,
    },
}

impl NvdimmError {
    /// The suggested fix, where there is one.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            NvdimmError::NoLabels { .. } => "initialise the label area: ocxlpmem-ctl init-labels",
            NvdimmError::LabelLess => {
                "use the region's one namespace as a whole (a card with a serial number gets labels)"
            }
            NvdimmError::NoSpace { .. } => "destroy a namespace or ask for less",
            NvdimmError::Ambiguous { .. } => "name the namespace by its UUID",
            NvdimmError::NoCookie => "give the card's serial number (ocxlpmem-ctl --cookie N)",
            _ => return None,
        })
    }
}
