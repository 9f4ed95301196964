//! The `file` media window backend.
