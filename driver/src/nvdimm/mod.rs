//! The nvdimm-like object model: bus, dimm, region, namespace.
