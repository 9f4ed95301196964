//! The transport trait ("a PCI function I can talk to") and its implementations.
