//! The namespace label format of `spec/labels.md` as pure functions over bytes.
