//! The `devdax` media window backend.
