//! The portable fallback for architectures without known flush instructions (s390x and
//! others): there is no cache-flush instruction to issue, so `PmemMap` makes CACHE_LINE
//! ranges durable with the window's `msync` instead (see `FlushInstruction::None`), and
//! the drain is a sequentially consistent fence.

use std::sync::atomic::{fence as atomic_fence, Ordering};

use super::cpu::{CpuFeatures, CpuPersistence, NtStores};

pub(super) fn probe() -> CpuFeatures {
    CpuFeatures::default()
}

/// No instruction exists; `PmemMap` never relies on this for durability (it msyncs).
///
/// # Safety
/// None beyond the signature shared with the other architectures.
pub(super) unsafe fn flush(_cpu: &CpuPersistence, _p: *const u8, _len: usize) {
    atomic_fence(Ordering::SeqCst);
}

/// The drain.
pub(super) fn fence(_cpu: &CpuPersistence) {
    atomic_fence(Ordering::SeqCst);
}

/// Never selected (`nt_stores()` is `None`); copies with ordinary stores.
///
/// # Safety
/// Both ranges valid for `len` bytes and not overlapping.
pub(super) unsafe fn nt_copy(_nt: NtStores, dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
}

/// See [`nt_copy`].
///
/// # Safety
/// `dst` valid for `len` bytes.
pub(super) unsafe fn nt_set(_nt: NtStores, dst: *mut u8, byte: u8, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { std::ptr::write_bytes(dst, byte, len) };
}
