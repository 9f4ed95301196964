//! Architecture-neutral copy, fill and flush built on the per-CPU instructions.

use std::ptr;

use super::arch;
use super::cpu::{CpuPersistence, FlushInstruction};
use super::flags::Flags;

const NT_ALIGN: usize = 64;

/// Flushes the lines overlapping `[p, p + len)`.
///
/// # Safety
/// The range lies in memory mapped in this process.
pub(crate) unsafe fn flush(cpu: &CpuPersistence, p: *const u8, len: usize) {
    if len != 0 && cpu.flush_instruction() != FlushInstruction::None {
        // SAFETY: the caller's contract.
        unsafe { arch::flush(cpu, p, len) }
    }
}

/// The drain fence.
pub(crate) fn drain(cpu: &CpuPersistence) {
    arch::fence(cpu)
}

/// Copies `len` bytes (ranges may overlap), flushing the destination lines when `lines`.
/// Large non-overlapping copies use non-temporal stores for the aligned middle part.
///
/// # Safety
/// Both ranges valid for `len` bytes.
pub(crate) unsafe fn copy(
    cpu: &CpuPersistence,
    dst: *mut u8,
    src: *const u8,
    len: usize,
    flags: Flags,
    lines: bool,
) {
    let (d, s) = (dst as usize, src as usize);
    let overlap = d < s.saturating_add(len) && s < d.saturating_add(len);
    match cpu.nt_stores() {
        Some(nt) if !overlap && flags.use_nontemporal(len, cpu.nt_threshold()) => {
            let head = ((NT_ALIGN - d % NT_ALIGN) % NT_ALIGN).min(len);
            let body = (len - head) & !(NT_ALIGN - 1);
            let tail = len - head - body;
            // SAFETY: the three parts partition [0, len) of both valid, disjoint ranges;
            // dst + head is 64-byte aligned and body a multiple of 64 as nt_copy needs.
            unsafe {
                ptr::copy_nonoverlapping(src, dst, head);
                arch::nt_copy(nt, dst.add(head), src.add(head), body);
                ptr::copy_nonoverlapping(src.add(head + body), dst.add(head + body), tail);
                if lines {
                    flush(cpu, dst, head);
                    flush(cpu, dst.add(head + body), tail);
                }
            }
        }
        _ => {
            // SAFETY: the caller's contract; ptr::copy allows overlap.
            unsafe {
                ptr::copy(src, dst, len);
                if lines {
                    flush(cpu, dst, len);
                }
            }
        }
    }
}

/// Fills `len` bytes with `byte`, flushing when `lines`.
///
/// # Safety
/// `dst` valid for `len` bytes.
pub(crate) unsafe fn fill(
    cpu: &CpuPersistence,
    dst: *mut u8,
    byte: u8,
    len: usize,
    flags: Flags,
    lines: bool,
) {
    match cpu.nt_stores() {
        Some(nt) if flags.use_nontemporal(len, cpu.nt_threshold()) => {
            let d = dst as usize;
            let head = ((NT_ALIGN - d % NT_ALIGN) % NT_ALIGN).min(len);
            let body = (len - head) & !(NT_ALIGN - 1);
            let tail = len - head - body;
            // SAFETY: as in `copy`, for the destination only.
            unsafe {
                ptr::write_bytes(dst, byte, head);
                arch::nt_set(nt, dst.add(head), byte, body);
                ptr::write_bytes(dst.add(head + body), byte, tail);
                if lines {
                    flush(cpu, dst, head);
                    flush(cpu, dst.add(head + body), tail);
                }
            }
        }
        _ => {
            // SAFETY: the caller's contract.
            unsafe {
                ptr::write_bytes(dst, byte, len);
                if lines {
                    flush(cpu, dst, len);
                }
            }
        }
    }
}
