//! x86-64 instructions: CPUID probing, clwb / clflushopt / clflush, sfence and
//! non-temporal stores (spec/pmem.md §6.3).
//!
//! clwb and clflushopt are not Rust target features, so they are emitted with `asm!`
//! and chosen from CPUID leaf 7 (EBX bit 23 clflushopt, bit 24 clwb). None of the asm
//! blocks say `nomem`: the compiler must not move stores across a flush or fence.

use std::arch::asm;
use std::arch::x86_64::{
    __cpuid, __cpuid_count, __m128i, __m256i, __m512i, _mm256_loadu_si256, _mm256_set1_epi8,
    _mm256_stream_si256, _mm512_loadu_si512, _mm512_set1_epi8, _mm512_stream_si512,
    _mm_loadu_si128, _mm_set1_epi8, _mm_stream_si128,
};

use super::cpu::{CpuFeatures, CpuPersistence, FlushInstruction, NtStores};

/// Line size of every flush instruction here.
const LINE: usize = 64;

pub(super) fn probe() -> CpuFeatures {
    // CPUID exists on every x86-64 CPU; leaf 0 reports the highest leaf.
    let max_leaf = __cpuid(0).eax;
    let (clflushopt, clwb) = if max_leaf >= 7 {
        // Leaf 7 is supported (checked against the highest leaf above).
        let ebx = __cpuid_count(7, 0).ebx;
        (ebx & (1 << 23) != 0, ebx & (1 << 24) != 0)
    } else {
        (false, false)
    };
    CpuFeatures {
        x86: true,
        clwb,
        clflushopt,
        avx: std::is_x86_feature_detected!("avx"),
        avx512f: std::is_x86_feature_detected!("avx512f"),
        ..CpuFeatures::default()
    }
}

/// Flushes every cache line that overlaps `[p, p + len)`.
///
/// # Safety
/// The range must lie in memory mapped in this process (a flush of an unmapped address
/// faults like a load).
pub(super) unsafe fn flush(cpu: &CpuPersistence, p: *const u8, len: usize) {
    let end = (p as usize).saturating_add(len);
    let mut line = p as usize & !(LINE - 1);
    match cpu.flush_instruction() {
        FlushInstruction::Clwb => {
            while line < end {
                // SAFETY: the line overlaps the caller's mapped range; clwb only writes the
                // line back and changes no register or flag.
                unsafe { asm!("clwb [{0}]", in(reg) line, options(nostack, preserves_flags)) };
                line += LINE;
            }
        }
        FlushInstruction::Clflushopt => {
            while line < end {
                // SAFETY: as for clwb; clflushopt also invalidates the line, which is
                // harmless for ordinary write-back memory.
                unsafe {
                    asm!("clflushopt [{0}]", in(reg) line, options(nostack, preserves_flags))
                };
                line += LINE;
            }
        }
        _ => {
            while line < end {
                // SAFETY: as for clflushopt; clflush is the baseline x86-64 flush.
                unsafe { asm!("clflush [{0}]", in(reg) line, options(nostack, preserves_flags)) };
                line += LINE;
            }
        }
    }
}

/// The drain: orders earlier flushes and non-temporal stores before later stores.
pub(super) fn fence(_cpu: &CpuPersistence) {
    // SAFETY: sfence has no operands and changes no register or flag.
    unsafe { asm!("sfence", options(nostack, preserves_flags)) };
}

/// Non-temporal copy of `len` bytes.
///
/// # Safety
/// `dst` is 64-byte aligned, `len` a multiple of 64, both ranges valid and not
/// overlapping, and `nt` names instructions the CPU has (as [`probe`] found).
pub(super) unsafe fn nt_copy(nt: NtStores, dst: *mut u8, src: *const u8, len: usize) {
    match nt {
        // SAFETY: the caller's contract, and the CPU has AVX-512F.
        NtStores::Avx512 => unsafe { copy_avx512(dst, src, len) },
        // SAFETY: the caller's contract, and the CPU has AVX.
        NtStores::Avx => unsafe { copy_avx(dst, src, len) },
        // SAFETY: the caller's contract; SSE2 is part of x86-64.
        NtStores::Sse2 => unsafe { copy_sse2(dst, src, len) },
    }
}

/// Non-temporal fill of `len` bytes with `byte`.
///
/// # Safety
/// As for [`nt_copy`], for `dst` only.
pub(super) unsafe fn nt_set(nt: NtStores, dst: *mut u8, byte: u8, len: usize) {
    match nt {
        // SAFETY: the caller's contract, and the CPU has AVX-512F.
        NtStores::Avx512 => unsafe { set_avx512(dst, byte, len) },
        // SAFETY: the caller's contract, and the CPU has AVX.
        NtStores::Avx => unsafe { set_avx(dst, byte, len) },
        // SAFETY: the caller's contract; SSE2 is part of x86-64.
        NtStores::Sse2 => unsafe { set_sse2(dst, byte, len) },
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn copy_avx512(dst: *mut u8, src: *const u8, len: usize) {
    let mut i = 0;
    // Four lines per round keeps several loads in flight, as a streaming copy needs.
    while i + 4 * LINE <= len {
        for k in 0..4 {
            let o = i + k * LINE;
            // SAFETY: o + 64 <= len; dst + o is 64-byte aligned; loads are unaligned.
            unsafe {
                let v = _mm512_loadu_si512(src.add(o).cast::<__m512i>());
                _mm512_stream_si512(dst.add(o).cast::<__m512i>(), v);
            }
        }
        i += 4 * LINE;
    }
    while i < len {
        // SAFETY: as above, one line.
        unsafe {
            let v = _mm512_loadu_si512(src.add(i).cast::<__m512i>());
            _mm512_stream_si512(dst.add(i).cast::<__m512i>(), v);
        }
        i += LINE;
    }
}

#[target_feature(enable = "avx")]
unsafe fn copy_avx(dst: *mut u8, src: *const u8, len: usize) {
    let mut i = 0;
    while i < len {
        // SAFETY: i + 64 <= len (len is a multiple of 64); dst + i is 64-byte aligned, so
        // both 32-byte halves are 32-byte aligned as vmovntdq needs.
        unsafe {
            let a = _mm256_loadu_si256(src.add(i).cast::<__m256i>());
            let b = _mm256_loadu_si256(src.add(i + 32).cast::<__m256i>());
            _mm256_stream_si256(dst.add(i).cast::<__m256i>(), a);
            _mm256_stream_si256(dst.add(i + 32).cast::<__m256i>(), b);
        }
        i += LINE;
    }
}

unsafe fn copy_sse2(dst: *mut u8, src: *const u8, len: usize) {
    let mut i = 0;
    while i < len {
        for k in 0..4 {
            let o = i + k * 16;
            // SAFETY: o + 16 <= len; dst + o is 16-byte aligned as movntdq needs.
            unsafe {
                let v = _mm_loadu_si128(src.add(o).cast::<__m128i>());
                _mm_stream_si128(dst.add(o).cast::<__m128i>(), v);
            }
        }
        i += LINE;
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn set_avx512(dst: *mut u8, byte: u8, len: usize) {
    let v = _mm512_set1_epi8(byte as i8);
    let mut i = 0;
    while i < len {
        // SAFETY: i + 64 <= len; dst + i is 64-byte aligned.
        unsafe { _mm512_stream_si512(dst.add(i).cast::<__m512i>(), v) };
        i += LINE;
    }
}

#[target_feature(enable = "avx")]
unsafe fn set_avx(dst: *mut u8, byte: u8, len: usize) {
    let v = _mm256_set1_epi8(byte as i8);
    let mut i = 0;
    while i < len {
        // SAFETY: i + 64 <= len; both halves are 32-byte aligned.
        unsafe {
            _mm256_stream_si256(dst.add(i).cast::<__m256i>(), v);
            _mm256_stream_si256(dst.add(i + 32).cast::<__m256i>(), v);
        }
        i += LINE;
    }
}

#[target_feature(enable = "sse2")]
unsafe fn set_sse2(dst: *mut u8, byte: u8, len: usize) {
    let v = _mm_set1_epi8(byte as i8);
    let mut i = 0;
    while i < len {
        // SAFETY: i + 16 <= len; dst + i is 16-byte aligned.
        unsafe { _mm_stream_si128(dst.add(i).cast::<__m128i>(), v) };
        i += 16;
    }
}
