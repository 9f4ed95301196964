//! Mapping persistent memory and the persistence primitives (`spec/pmem.md`).
//!
//! Built so far: CPU persistence selection ([`cpu`]: which flush, fence and non-temporal
//! store instructions this machine has, with the `PMEM_NO_*` overrides), the copy/fill
//! flags ([`flags`]), and the per-architecture primitives under them (POWER9 `dcbstps` /
//! `phwsync` where available, x86-64 `clwb`/`clflushopt`/`sfence`, a portable fallback),
//! and the mapping applications hold ([`PmemMap`]: any media-window range, with persist /
//! flush / drain / deep flush over sub-ranges, copies taking [`Flags`], the window's
//! granularity, and reads that report poisoned media instead of dying of SIGBUS).

pub mod cpu;
pub mod error;
pub mod flags;
pub mod map;
mod ops;
mod poison;

#[cfg(target_arch = "powerpc64")]
#[path = "power.rs"]
mod arch;
#[cfg(target_arch = "x86_64")]
#[path = "x86.rs"]
mod arch;
#[cfg(not(any(target_arch = "powerpc64", target_arch = "x86_64")))]
#[path = "portable.rs"]
mod arch;

pub use cpu::CpuPersistence;
pub use error::PmemError;
pub use flags::Flags;
pub use map::PmemMap;

/// Whether a store through these primitives must be followed by cache flushes: always,
/// unless `PMEM_NO_FLUSH=1` says the platform flushes caches on power loss.
fn needs_flush(cpu: &CpuPersistence) -> bool {
    cpu.no_flush_override() != Some(true)
}

/// Writes back the cache lines overlapping `[addr, addr + len)` without waiting for them.
///
/// # Safety
/// The range lies in memory mapped in this process.
pub unsafe fn flush(addr: *const u8, len: usize) {
    let cpu = CpuPersistence::get();
    if needs_flush(cpu) {
        // SAFETY: the caller's contract.
        unsafe { ops::flush(cpu, addr, len) }
    }
}

/// Waits until every flush and non-temporal store issued before it has reached the
/// persistence domain.
pub fn drain() {
    ops::drain(CpuPersistence::get())
}

/// [`flush`] then [`drain`]: `[addr, addr + len)` is persistent on return.
///
/// # Safety
/// The range lies in memory mapped in this process.
pub unsafe fn persist(addr: *const u8, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { flush(addr, len) };
    drain();
}

/// Copies `len` bytes from `src` to `dst` (the ranges may overlap) and makes them
/// persistent as `flags` ask: by default flushed and drained on return.
///
/// # Safety
/// `src` is valid for reads and `dst` for writes of `len` bytes.
pub unsafe fn memcpy(dst: *mut u8, src: *const u8, len: usize, flags: Flags) {
    let cpu = CpuPersistence::get();
    let lines = !flags.contains(Flags::NOFLUSH) && needs_flush(cpu);
    // SAFETY: the caller's contract.
    unsafe { ops::copy(cpu, dst, src, len, flags, lines) };
    finish(cpu, flags);
}

/// Fills `len` bytes at `dst` with `byte`, persistent as `flags` ask.
///
/// # Safety
/// `dst` is valid for writes of `len` bytes.
pub unsafe fn memset(dst: *mut u8, byte: u8, len: usize, flags: Flags) {
    let cpu = CpuPersistence::get();
    let lines = !flags.contains(Flags::NOFLUSH) && needs_flush(cpu);
    // SAFETY: the caller's contract.
    unsafe { ops::fill(cpu, dst, byte, len, flags, lines) };
    finish(cpu, flags);
}

/// The closing drain, unless the caller deferred it. Non-temporal stores need it even
/// without flushes, so NOFLUSH alone (which implies NODRAIN) is the only way to skip it.
fn finish(cpu: &CpuPersistence, flags: Flags) {
    if !flags.contains(Flags::NODRAIN) && !flags.contains(Flags::NOFLUSH) {
        ops::drain(cpu);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn memcpy_copies_every_size_and_alignment_with_every_flag() {
        let src = pattern(4096 + 128);
        for flags in [
            Flags::NONE,
            Flags::NONTEMPORAL,
            Flags::TEMPORAL,
            Flags::NOFLUSH,
        ] {
            for len in [0, 1, 63, 64, 65, 255, 256, 1000, 4096] {
                for off in [0, 1, 17, 64] {
                    let mut dst = vec![0u8; 4096 + 256];
                    // SAFETY: both vectors hold off + len bytes; they do not overlap.
                    unsafe { memcpy(dst.as_mut_ptr().add(off), src.as_ptr(), len, flags) };
                    assert_eq!(&dst[off..off + len], &src[..len], "{flags:?} {len} {off}");
                    assert!(dst[..off].iter().all(|&b| b == 0));
                    assert!(dst[off + len..].iter().all(|&b| b == 0));
                }
            }
        }
    }

    #[test]
    fn memcpy_handles_overlapping_ranges_like_memmove() {
        let mut buf = pattern(2048);
        let want: Vec<u8> = buf[..1500].to_vec();
        // SAFETY: both ranges lie inside buf.
        unsafe { memcpy(buf.as_mut_ptr().add(300), buf.as_ptr(), 1500, Flags::NONE) };
        assert_eq!(&buf[300..1800], &want[..]);
    }

    #[test]
    fn memset_fills_exactly_the_range() {
        for flags in [Flags::NONE, Flags::NONTEMPORAL, Flags::NODRAIN] {
            for (off, len) in [(0, 0), (3, 61), (0, 4096), (5, 777)] {
                let mut dst = vec![0u8; 5000];
                // SAFETY: off + len <= 5000.
                unsafe { memset(dst.as_mut_ptr().add(off), 0xa5, len, flags) };
                assert!(dst[off..off + len].iter().all(|&b| b == 0xa5));
                assert!(dst[..off].iter().chain(&dst[off + len..]).all(|&b| b == 0));
            }
        }
        drain();
    }

    #[test]
    fn persist_accepts_unaligned_and_empty_ranges() {
        let data = pattern(300);
        // SAFETY: the ranges lie inside data.
        unsafe {
            persist(data.as_ptr().add(1), 200);
            persist(data.as_ptr(), 0);
            flush(data.as_ptr().add(63), 2);
        }
        drain();
        assert_eq!(data, pattern(300));
    }
}
