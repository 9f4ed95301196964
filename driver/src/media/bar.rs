//! The `bar` media window backend.
