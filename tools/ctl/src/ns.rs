//! Label and namespace commands over a bus: a card's, or one built from an image file
//! (a whole card image, or a bare label area) for offline inspection and repair.

use std::path::Path;
use std::sync::Arc;

use ocxlpmem::label::index::{header_label_size, LabelVersion, INDEX_ALIGN, INDEX_SIGNATURE};
use ocxlpmem::label::lsa::{read_all, FileLsa, Lsa, SliceLsa};
use ocxlpmem::label::ns_label::NamespaceLabel;
use ocxlpmem::label::LabelArea;
use ocxlpmem::media::file::FileWindow;
use ocxlpmem::media::{MediaWindow, LABEL_AREA_SIZE};
use ocxlpmem::nvdimm::{Bus, NamespaceSpec, NvdimmError};
use serde_json::json;
use uuid::Uuid;

use crate::output::{exit, CtlError, CtlResult};

impl From<NvdimmError> for CtlError {
    fn from(e: NvdimmError) -> Self {
        let code = match &e {
            NvdimmError::NotFound { .. } => exit::NOT_FOUND,
            NvdimmError::NoSpace { .. }
            | NvdimmError::TooSmall { .. }
            | NvdimmError::SizeNotAligned { .. }
            | NvdimmError::BadAlign { .. }
            | NvdimmError::Ambiguous { .. }
            | NvdimmError::NoCookie => exit::USAGE,
            NvdimmError::LabelLess | NvdimmError::NoWindow => exit::UNSUPPORTED,
            NvdimmError::Label(ocxlpmem::label::error::LabelError::AlreadyInitialised {
                ..
            }) => exit::REFUSED,
            _ => exit::FAILED,
        };
        let hint = e.hint();
        let mut c = CtlError::new(code, e.to_string());
        if let Some(h) = hint {
            c = c.hint(h);
        }
        if let NvdimmError::Label(ocxlpmem::label::error::LabelError::AlreadyInitialised {
            ..
        }) = &e
        {
            c = c.hint("the area holds valid labels: add --force to start over (every namespace is forgotten)");
        }
        c
    }
}

/// What `--file` names: a whole card image (> 16 MiB: label area then region) or a bare
/// label area (<= 16 MiB, region size from `--region-size`).
pub fn bus_for_file(path: &Path, cookie: Option<u64>, region_size: Option<u64>) -> CtlResult<Bus> {
    let len = std::fs::metadata(path)
        .map_err(|e| {
            CtlError::new(
                exit::NOT_FOUND,
                format!("cannot read {}: {e}", path.display()),
            )
            .hint("pass an existing image with --file")
        })?
        .len();
    // A sim image's sidecar gives its serial, so its labels are checked like the card's.
    let cookie = cookie.or_else(|| crate::target::sidecar_serial(path));
    if len > LABEL_AREA_SIZE {
        let w = FileWindow::open(path, len).map_err(|e| {
            CtlError::new(exit::FAILED, format!("cannot map {}: {e}", path.display()))
        })?;
        let w: Arc<dyn MediaWindow> = Arc::new(w);
        return Ok(Bus::from_image(0, w, cookie)?);
    }
    let lsa = FileLsa::open(path, true)
        .map_err(|e| CtlError::new(exit::FAILED, format!("cannot open {}: {e}", path.display())))?;
    Ok(Bus::from_lsa(
        0,
        Arc::new(lsa),
        cookie,
        region_size.unwrap_or(0),
    ))
}

fn version(v: &str) -> CtlResult<LabelVersion> {
    match v {
        "1.1" => Ok(LabelVersion::V1_1),
        "1.2" => Ok(LabelVersion::V1_2),
        other => Err(CtlError::new(
            exit::USAGE,
            format!("label version {other:?}: 1.1 (ndctl's default) or 1.2"),
        )),
    }
}

/// `init-labels`.
pub fn init_labels(bus: &Bus, v: &str, force: bool) -> CtlResult<serde_json::Value> {
    bus.init_labels(version(v)?, force)?;
    let s = bus.label_summary()?;
    Ok(json!({ "dev": bus.dimm().dev(), "initialized": true, "labels": s }))
}

/// `check-labels`: fails (exit 1) unless the area holds a valid label set without
/// warnings.
pub fn check_labels(bus: &Bus) -> CtlResult<serde_json::Value> {
    let s = bus.label_summary()?;
    let ok = s.state == "labels" && s.warnings.is_empty();
    if !ok {
        let mut e = CtlError::new(
            exit::FAILED,
            format!(
                "{}: label area is {}{}",
                bus.dimm().dev(),
                s.state,
                if s.warnings.is_empty() {
                    String::new()
                } else {
                    format!(": {}", s.warnings.join("; "))
                }
            ),
        );
        if s.state == "blank" {
            e = e.hint("initialise it with `ocxlpmem-ctl init-labels`");
        }
        return Err(e);
    }
    Ok(json!({ "dev": bus.dimm().dev(), "verified": true, "labels": s }))
}

/// `zero-labels`.
pub fn zero_labels(bus: &Bus) -> CtlResult<serde_json::Value> {
    let size = bus.dimm().lsa().size();
    bus.zero_labels()?;
    Ok(json!({ "dev": bus.dimm().dev(), "zeroed_bytes": size }))
}

/// `create-namespace`.
pub fn create(bus: &Bus, spec: &NamespaceSpec) -> CtlResult<serde_json::Value> {
    let ns = bus.create_namespace(spec)?;
    Ok(json!(ns))
}

/// `destroy-namespace`.
pub fn destroy(bus: &Bus, key: &str) -> CtlResult<serde_json::Value> {
    let ns = bus.find(key)?;
    if ns.uuid.is_nil() {
        return Err(NvdimmError::LabelLess.into());
    }
    bus.destroy_namespace(ns.uuid)?;
    Ok(json!({ "destroyed": ns }))
}

/// The `regions` / `namespaces` parts of `list` for one bus.
pub fn list_parts(bus: &Bus, regions: bool, namespaces: bool) -> CtlResult<serde_json::Value> {
    let mut v = json!({});
    if regions {
        let cap = bus.capacity()?;
        v["regions"] = json!([{
            "dev": bus.region().dev(),
            "offset": bus.region().base(),
            "size": cap.size,
            "available_size": cap.available,
            "max_available_extent": cap.largest_free_extent,
            "interleave_set_cookie": bus.region().cookie(),
            "label_less": bus.region().is_label_less(),
            "labels": bus.label_summary()?,
        }]);
    }
    if namespaces {
        v["namespaces"] = json!(bus.namespaces()?);
    }
    Ok(v)
}

fn label_json(l: &NamespaceLabel, v2: bool) -> serde_json::Value {
    let mut j = json!({
        "uuid": l.uuid.to_string(),
        "name": l.name_str(),
        "slot": l.slot,
        "position": l.position,
        "nlabel": l.nlabel,
        "flags": l.flags,
        "isetcookie": l.isetcookie,
        "lbasize": l.lbasize,
        "dpa": l.dpa,
        "rawsize": l.rawsize,
    });
    if v2 {
        j["type_guid"] = json!(l.type_guid.to_string());
        j["abstraction_guid"] = json!(l.abstraction_guid.to_string());
    }
    j
}

fn le16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// `read-labels` as JSON shaped like ndctl's: both index blocks as found (valid or not)
/// and every slot whose slot field names its position (the bitmap is not consulted, as
/// ndctl does not). `out` receives the raw bytes.
pub fn read_labels(lsa: &dyn Lsa, dev: &str, out: Option<&Path>) -> CtlResult<serde_json::Value> {
    let buf = read_all(lsa).map_err(|e| CtlError::new(exit::DEVICE, format!("{dev}: {e}")))?;
    if let Some(o) = out {
        std::fs::write(o, &buf).map_err(|e| {
            CtlError::new(exit::FAILED, format!("cannot write {}: {e}", o.display()))
        })?;
    }
    let size = buf.len() as u64;
    // The label set's reader finds the layout (formula or foreign) and scans the slots the
    // way ndctl does; an area without a valid index lists its first two block offsets.
    // Parsed from the copy just read, so the device is read once.
    let copy = SliceLsa::new(&buf);
    let set = match LabelArea::load(&copy) {
        Ok(LabelArea::Labels(set)) => Some(set),
        Ok(LabelArea::Uninitialized(_)) => None,
        Err(e) => return Err(CtlError::new(exit::DEVICE, format!("{dev}: {e}"))),
    };
    let offsets: Vec<u64> = match &set {
        Some(s) => vec![s.layout().index_offset(0), s.layout().index_offset(1)],
        None => vec![0, INDEX_ALIGN],
    };
    let mut index = Vec::new();
    for off in offsets {
        let hdr = buf.get(off as usize..).unwrap_or_default();
        let present = hdr.starts_with(&INDEX_SIGNATURE);
        index.push(json!({
            "offset": off,
            "signature_present": present,
            "signature": if present { "NAMESPACE_INDEX" } else { "" },
            "major": le16(hdr, 60),
            "minor": le16(hdr, 62),
            "labelsize": header_label_size(hdr),
            "seq": le32(hdr, 20),
            "nslot": le32(hdr, 56),
        }));
    }
    let labels: Vec<serde_json::Value> = match &set {
        Some(s) => s
            .scan_all_slots(&copy)
            .map_err(|e| CtlError::new(exit::DEVICE, format!("{dev}: {e}")))?
            .iter()
            .map(|(_, l)| label_json(l, s.version() == LabelVersion::V1_2))
            .collect(),
        None => Vec::new(),
    };
    Ok(json!({
        "dev": dev,
        "size": size,
        "output_file": out,
        "index": index,
        "label": labels,
        "all_zero": buf.iter().all(|&b| b == 0),
    }))
}

/// Parses `--uuid`.
pub fn parse_uuid(s: &str) -> Result<Uuid, String> {
    Uuid::parse_str(s).map_err(|e| format!("{s:?} is not a UUID: {e}"))
}
