//! The namespace label format of `spec/labels.md` as pure functions over bytes.
//!
//! Built so far: the label storage area access ([`lsa`]), the Fletcher-64 checksum, the
//! index block ([`index`]) and the namespace label slot ([`ns_label`]) with their rule
//! checks. The label set above them (index selection, claiming a free slot, the
//! two-phase update) is not written yet.

pub mod error;
pub mod fletcher;
pub mod index;
pub mod lsa;
pub mod ns_label;

#[cfg(test)]
mod tests;
