//! Which flush, fence and store instructions this CPU gets, chosen once at run time
//! (spec/pmem.md §6.3), with PMDK's environment overrides.
//!
//! x86-64: clwb if present, else clflushopt, else clflush; `sfence` as the drain;
//! non-temporal stores for copies at or above `PMEM_MOVNT_THRESHOLD` (256 B). POWER: one
//! flush per 128-byte block, `dcbstps` + `phwsync` on ISA 3.1 and `dcbf` + `hwsync` before
//! (AT_HWCAP2). Anything else: no cache-flush instruction; the mapping then falls back to
//! `msync` for CACHE_LINE windows (see `PmemMap`).

use std::sync::OnceLock;

/// The cache-flush instruction used per line or block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlushInstruction {
    /// x86 `clwb` (write back, line may stay cached).
    Clwb,
    /// x86 `clflushopt` (weakly ordered flush + invalidate).
    Clflushopt,
    /// x86 `clflush` (ordered flush + invalidate).
    Clflush,
    /// POWER ISA 3.1 `dcbstps` (`dcbf` with L=6, "store to persistent").
    Dcbstps,
    /// POWER `dcbf` (L=0), as the kernel uses on POWER9.
    Dcbf,
    /// No cache-flush instruction on this architecture (portable fallback).
    None,
}

/// The fence used as the drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FenceInstruction {
    /// x86 `sfence`.
    Sfence,
    /// POWER ISA 3.1 `phwsync` (`sync` with L=4).
    Phwsync,
    /// POWER `hwsync` (`sync`).
    Hwsync,
    /// A sequentially consistent compiler and CPU fence (portable fallback).
    SeqCst,
}

/// Width of the non-temporal stores used for large copies (x86 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NtStores {
    /// 64-byte AVX-512F `vmovntdq`.
    Avx512,
    /// 32-byte AVX `vmovntdq`.
    Avx,
    /// 16-byte SSE2 `movntdq`.
    Sse2,
}

/// What the hardware offers, as probed (kept apart from the selection so the rules can be
/// tested with any combination).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuFeatures {
    /// The CPU is an x86-64 one.
    pub x86: bool,
    /// CPUID.7.0:EBX bit 24.
    pub clwb: bool,
    /// CPUID.7.0:EBX bit 23.
    pub clflushopt: bool,
    /// AVX usable (CPUID and OS support).
    pub avx: bool,
    /// AVX-512F usable.
    pub avx512f: bool,
    /// The CPU is a 64-bit POWER one.
    pub power: bool,
    /// AT_HWCAP2 has PPC_FEATURE2_ARCH_3_1 (POWER10 and later).
    pub power_isa31: bool,
}

impl CpuFeatures {
    /// Probes the CPU this process runs on.
    pub fn probe() -> CpuFeatures {
        super::arch::probe()
    }
}

/// Default `PMEM_MOVNT_THRESHOLD`: copies of at least this many bytes use non-temporal
/// stores.
pub const DEFAULT_MOVNT_THRESHOLD: usize = 256;

/// The instruction selection for this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuPersistence {
    flush: FlushInstruction,
    fence: FenceInstruction,
    cache_line: usize,
    nt: Option<NtStores>,
    movnt_threshold: usize,
    no_flush: Option<bool>,
}

fn env_flag(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<bool> {
    match env(name)?.trim() {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

impl CpuPersistence {
    /// Applies PMDK's selection rules to `features`, with environment lookups through `env`
    /// (`PMEM_NO_CLWB`, `PMEM_NO_CLFLUSHOPT`, `PMEM_NO_MOVNT`, `PMEM_MOVNT_THRESHOLD`,
    /// `PMEM_AVX`, `PMEM_AVX512F`, `PMEM_NO_FLUSH`; ours: `OCXLPMEM_NO_ISA31=1` forces the
    /// POWER9 instructions on ISA 3.1, e.g. under an emulator that rejects `dcbf` L=6).
    pub fn select(features: CpuFeatures, env: &dyn Fn(&str) -> Option<String>) -> CpuPersistence {
        let no_flush = env_flag(env, "PMEM_NO_FLUSH");
        if features.x86 {
            let mut flush = FlushInstruction::Clflush;
            if features.clflushopt && env_flag(env, "PMEM_NO_CLFLUSHOPT") != Some(true) {
                flush = FlushInstruction::Clflushopt;
            }
            if features.clwb && env_flag(env, "PMEM_NO_CLWB") != Some(true) {
                flush = FlushInstruction::Clwb;
            }
            let nt = if env_flag(env, "PMEM_NO_MOVNT") == Some(true) {
                None
            } else if features.avx512f
                && env_flag(env, "PMEM_AVX512F") != Some(false)
                && env_flag(env, "PMEM_AVX") != Some(false)
            {
                Some(NtStores::Avx512)
            } else if features.avx && env_flag(env, "PMEM_AVX") != Some(false) {
                Some(NtStores::Avx)
            } else {
                Some(NtStores::Sse2)
            };
            let movnt_threshold = env("PMEM_MOVNT_THRESHOLD")
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(DEFAULT_MOVNT_THRESHOLD);
            return CpuPersistence {
                flush,
                fence: FenceInstruction::Sfence,
                cache_line: 64,
                nt,
                movnt_threshold,
                no_flush,
            };
        }
        if features.power {
            let isa31 = features.power_isa31 && env_flag(env, "OCXLPMEM_NO_ISA31") != Some(true);
            let (flush, fence) = if isa31 {
                (FlushInstruction::Dcbstps, FenceInstruction::Phwsync)
            } else {
                (FlushInstruction::Dcbf, FenceInstruction::Hwsync)
            };
            return CpuPersistence {
                flush,
                fence,
                cache_line: 128,
                nt: None,
                movnt_threshold: DEFAULT_MOVNT_THRESHOLD,
                no_flush,
            };
        }
        CpuPersistence {
            flush: FlushInstruction::None,
            fence: FenceInstruction::SeqCst,
            cache_line: 64,
            nt: None,
            movnt_threshold: DEFAULT_MOVNT_THRESHOLD,
            no_flush,
        }
    }

    /// The selection for this process: probed and read from the environment once, at
    /// first use (as PMDK does at library load).
    pub fn get() -> &'static CpuPersistence {
        static CPU: OnceLock<CpuPersistence> = OnceLock::new();
        CPU.get_or_init(|| {
            CpuPersistence::select(CpuFeatures::probe(), &|name| std::env::var(name).ok())
        })
    }

    /// The flush instruction.
    pub fn flush_instruction(&self) -> FlushInstruction {
        self.flush
    }

    /// The drain fence.
    pub fn fence_instruction(&self) -> FenceInstruction {
        self.fence
    }

    /// Bytes covered by one flush (64 on x86, 128 on POWER).
    pub fn cache_line(&self) -> usize {
        self.cache_line
    }

    /// Non-temporal stores in use, if any.
    pub fn nt_stores(&self) -> Option<NtStores> {
        self.nt
    }

    /// Copies of at least this many bytes use non-temporal stores (when available).
    pub fn movnt_threshold(&self) -> usize {
        self.movnt_threshold
    }

    /// The threshold, or `None` when no non-temporal stores are in use.
    pub(crate) fn nt_threshold(&self) -> Option<usize> {
        self.nt.map(|_| self.movnt_threshold)
    }

    /// `PMEM_NO_FLUSH`: `Some(true)` skips cache flushes (as with eADR), `Some(false)`
    /// flushes even on BYTE granularity, `None` follows the granularity.
    pub fn no_flush_override(&self) -> Option<bool> {
        self.no_flush
    }

    /// One line for logs and benchmark reports.
    pub fn describe(&self) -> String {
        let nt = match self.nt {
            Some(w) => format!("{w:?} non-temporal stores from {} B", self.movnt_threshold),
            None => "no non-temporal stores".into(),
        };
        format!(
            "flush {:?} per {} B, drain {:?}, {nt}",
            self.flush, self.cache_line, self.fence
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x86_all() -> CpuFeatures {
        CpuFeatures {
            x86: true,
            clwb: true,
            clflushopt: true,
            avx: true,
            avx512f: true,
            ..CpuFeatures::default()
        }
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn x86_prefers_clwb_then_clflushopt_then_clflush() {
        let none = env_of(&[]);
        assert_eq!(
            CpuPersistence::select(x86_all(), &none).flush,
            FlushInstruction::Clwb
        );
        let f = CpuFeatures {
            clwb: false,
            ..x86_all()
        };
        assert_eq!(
            CpuPersistence::select(f, &none).flush,
            FlushInstruction::Clflushopt
        );
        let f = CpuFeatures {
            clwb: false,
            clflushopt: false,
            ..x86_all()
        };
        let c = CpuPersistence::select(f, &none);
        assert_eq!(
            (c.flush, c.fence),
            (FlushInstruction::Clflush, FenceInstruction::Sfence)
        );
    }

    #[test]
    fn x86_env_overrides_use_pmdk_names() {
        let e = env_of(&[("PMEM_NO_CLWB", "1")]);
        assert_eq!(
            CpuPersistence::select(x86_all(), &e).flush,
            FlushInstruction::Clflushopt
        );
        let e = env_of(&[("PMEM_NO_CLWB", "1"), ("PMEM_NO_CLFLUSHOPT", "1")]);
        assert_eq!(
            CpuPersistence::select(x86_all(), &e).flush,
            FlushInstruction::Clflush
        );
        let e = env_of(&[("PMEM_NO_MOVNT", "1")]);
        assert_eq!(CpuPersistence::select(x86_all(), &e).nt_threshold(), None);
        let e = env_of(&[("PMEM_MOVNT_THRESHOLD", "4096")]);
        assert_eq!(
            CpuPersistence::select(x86_all(), &e).nt_threshold(),
            Some(4096)
        );
        let e = env_of(&[("PMEM_AVX512F", "0")]);
        assert_eq!(
            CpuPersistence::select(x86_all(), &e).nt,
            Some(NtStores::Avx)
        );
        let e = env_of(&[("PMEM_AVX", "0")]);
        assert_eq!(
            CpuPersistence::select(x86_all(), &e).nt,
            Some(NtStores::Sse2)
        );
        let e = env_of(&[("PMEM_NO_FLUSH", "1")]);
        assert_eq!(CpuPersistence::select(x86_all(), &e).no_flush, Some(true));
    }

    #[test]
    fn x86_default_threshold_is_256_bytes() {
        let c = CpuPersistence::select(x86_all(), &env_of(&[]));
        assert_eq!(c.movnt_threshold(), 256);
        assert_eq!(c.cache_line(), 64);
        let e = env_of(&[("PMEM_MOVNT_THRESHOLD", "not a number")]);
        assert_eq!(CpuPersistence::select(x86_all(), &e).movnt_threshold(), 256);
    }

    #[test]
    fn power_isa31_uses_dcbstps_and_phwsync_power9_dcbf_and_hwsync() {
        let p10 = CpuFeatures {
            power: true,
            power_isa31: true,
            ..CpuFeatures::default()
        };
        let c = CpuPersistence::select(p10, &env_of(&[]));
        assert_eq!(
            (c.flush, c.fence),
            (FlushInstruction::Dcbstps, FenceInstruction::Phwsync)
        );
        assert_eq!(c.cache_line(), 128);
        assert_eq!(c.nt_threshold(), None);
        let p9 = CpuFeatures {
            power: true,
            ..CpuFeatures::default()
        };
        let c = CpuPersistence::select(p9, &env_of(&[]));
        assert_eq!(
            (c.flush, c.fence),
            (FlushInstruction::Dcbf, FenceInstruction::Hwsync)
        );
        let c = CpuPersistence::select(p10, &env_of(&[("OCXLPMEM_NO_ISA31", "1")]));
        assert_eq!(c.flush, FlushInstruction::Dcbf);
    }

    #[test]
    fn unknown_cpu_gets_the_portable_fallback() {
        let c = CpuPersistence::select(CpuFeatures::default(), &env_of(&[]));
        assert_eq!(
            (c.flush, c.fence),
            (FlushInstruction::None, FenceInstruction::SeqCst)
        );
    }

    #[test]
    fn this_cpu_probe_matches_the_build_target() {
        let c = CpuPersistence::get();
        if cfg!(target_arch = "x86_64") {
            assert_eq!(c.fence_instruction(), FenceInstruction::Sfence);
        } else if cfg!(target_arch = "powerpc64") {
            assert_eq!(c.cache_line(), 128);
        } else {
            assert_eq!(c.flush_instruction(), FlushInstruction::None);
        }
        assert!(!c.describe().is_empty());
    }
}
