//! Discovery (sysfs), binding to vfio-pci, config-space parsing, bring-up and readiness.
pub mod bind;
pub mod discovery;
