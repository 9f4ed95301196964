//! The in-process simulator as a transport (cargo feature `sim`).
