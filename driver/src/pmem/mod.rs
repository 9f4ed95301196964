//! Mapping persistent memory and the persistence primitives (`spec/pmem.md`).
