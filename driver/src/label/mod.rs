//! The namespace label format of `spec/labels.md` as pure functions over bytes.
//!
//! The label storage area access ([`lsa`]), the Fletcher-64 checksum, the index block
//! ([`index`]) and the namespace label slot ([`ns_label`]) with their rule checks, and
//! above them the label set ([`set`]): choosing the current index, listing the used
//! slots, and every change as the two-phase update, with namespace-level helpers
//! ([`namespace`]).

pub mod error;
pub mod fletcher;
pub mod index;
mod load;
pub mod lsa;
pub mod namespace;
pub mod ns_label;
pub mod set;

pub use namespace::{NamespaceEntry, NamespaceState};
pub use set::{LabelArea, LabelSet, Uninitialized, UninitializedKind};

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod set_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod untrusted_tests;
