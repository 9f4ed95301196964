//! 64-bit POWER instructions (spec/pmem.md §6.3, device.md §9): one flush per 128-byte
//! cache block, then a fence. On ISA 3.1 (POWER10, AT_HWCAP2 bit PPC_FEATURE2_ARCH_3_1)
//! `dcbstps` (dcbf L=6) and `phwsync` (sync L=4); on POWER9 plain `dcbf` and `hwsync`,
//! as the Linux kernel does. qemu-user rejects dcbf L=6, so emulated runs take the POWER9
//! path (qemu `-cpu power9` does not report ISA 3.1; `OCXLPMEM_NO_ISA31=1` forces it).
//!
//! None of the asm blocks say `nomem`: the compiler must not move stores across them.

use std::arch::asm;

use super::cpu::{CpuFeatures, CpuPersistence, FenceInstruction, FlushInstruction, NtStores};

/// POWER cache block size.
const BLOCK: usize = 128;

/// `PPC_FEATURE2_ARCH_3_1` from the kernel's `asm/cputable.h` (not in every libc version).
const PPC_FEATURE2_ARCH_3_1: u64 = 0x0004_0000;

pub(super) fn probe() -> CpuFeatures {
    // SAFETY: getauxval only reads the process's auxiliary vector.
    let hwcap2 = unsafe { libc::getauxval(libc::AT_HWCAP2) };
    CpuFeatures {
        power: true,
        power_isa31: u64::from(hwcap2) & PPC_FEATURE2_ARCH_3_1 != 0,
        ..CpuFeatures::default()
    }
}

/// Flushes every cache block that overlaps `[p, p + len)`.
///
/// # Safety
/// The range must lie in memory mapped in this process.
pub(super) unsafe fn flush(cpu: &CpuPersistence, p: *const u8, len: usize) {
    let end = (p as usize).saturating_add(len);
    let mut block = p as usize & !(BLOCK - 1);
    if cpu.flush_instruction() == FlushInstruction::Dcbstps {
        while block < end {
            // SAFETY: the block overlaps the caller's mapped range; dcbstps writes it back
            // to the persistence domain and changes no register or CR field.
            unsafe { asm!("dcbf 0, {0}, 6", in(reg) block, options(nostack, preserves_flags)) };
            block += BLOCK;
        }
    } else {
        while block < end {
            // SAFETY: as above; plain dcbf writes the block back and invalidates it.
            unsafe { asm!("dcbf 0, {0}", in(reg) block, options(nostack, preserves_flags)) };
            block += BLOCK;
        }
    }
}

/// The drain.
pub(super) fn fence(cpu: &CpuPersistence) {
    if cpu.fence_instruction() == FenceInstruction::Phwsync {
        // SAFETY: phwsync (sync L=4) has no operands and changes no register.
        unsafe { asm!("sync 4", options(nostack, preserves_flags)) };
    } else {
        // SAFETY: hwsync (sync L=0) has no operands and changes no register.
        unsafe { asm!("sync", options(nostack, preserves_flags)) };
    }
}

/// POWER has no streaming stores here: never selected (`nt_stores()` is `None`), and if
/// called it copies with ordinary stores, which is still correct when flushed.
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
