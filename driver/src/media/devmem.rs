//! The `devmem` media window backend.
