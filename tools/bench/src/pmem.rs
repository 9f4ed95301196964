//! `ocxlpmem-bench pmem`: memcpy-persist throughput and persist latency of
//! `ocxlpmem::pmem::PmemMap` against libpmem2 (Debian's PMDK, cargo feature `libpmem2`),
//! on the same file-backed mapping in the same run.
//!
//! One file (in /dev/shm by default) is mapped once, by `PmemMap::from_file`; libpmem2
//! gets the very same mapping through `pmem2_map_from_existing`. A tmpfs file has no
//! MAP_SYNC, so both would detect PAGE granularity and persist by msync, which would
//! measure the kernel, not the libraries. Both are therefore told CACHE_LINE (libpmem2
//! through the granularity argument of `pmem2_map_from_existing`, ours through
//! `force_granularity`): both persist with clwb (or the best flush the CPU has) + sfence
//! and use non-temporal stores from 256 bytes, as on real pmem.
//!
//! Sizes 64 B .. 2 MiB; the two sides alternate in rounds so that machine noise hits both
//! alike. Throughput: median over rounds of bytes copied-and-persisted per second,
//! destination moving through the file. Latency: p50/p99 over batches of the mean time of
//! one `persist` call on freshly dirtied lines (batches of 256 KiB, so that the clock's
//! resolution does not decide the small sizes). Ratios are ours over libpmem2 for throughput and libpmem2 over
//! ours for latency, so >= 1.0 means "at least as fast" in both.

use std::path::PathBuf;
use std::time::Instant;

use ocxlpmem::media::Granularity;
use ocxlpmem::pmem::{CpuPersistence, Flags, PmemMap};
use serde::Serialize;

const SIZES: [usize; 5] = [64, 256, 4 << 10, 64 << 10, 2 << 20];
const TARGET_RATIO: f64 = 1.0;

const USAGE: &str =
    "usage: ocxlpmem-bench pmem [--dir DIR] [--file-mib N] [--rounds N] [--quick] [--json]\n  \
    --dir DIR      where the benchmark file lives (default /dev/shm, else the temp dir)\n  \
    --file-mib N   size of the mapped file in MiB (default 64)\n  \
    --rounds N     alternating rounds per side and size (default 7)\n  \
    --quick        a tenth of the work (smoke runs)\n  \
    --json         print the report as JSON";

/// One implementation of the two operations measured.
trait Side {
    fn copy_persist(&self, off: usize, src: &[u8]) -> Result<(), String>;
    fn persist(&self, off: usize, len: usize) -> Result<(), String>;
}

struct Ours<'a>(&'a PmemMap);

impl Side for Ours<'_> {
    fn copy_persist(&self, off: usize, src: &[u8]) -> Result<(), String> {
        self.0
            .memcpy(off, src, Flags::NONE)
            .map_err(|e| e.to_string())
    }
    fn persist(&self, off: usize, len: usize) -> Result<(), String> {
        self.0.persist(off, len).map_err(|e| e.to_string())
    }
}

#[derive(Debug, Serialize, Clone, Copy)]
struct Latency {
    p50_ns: u64,
    p99_ns: u64,
    samples: usize,
}

#[derive(Debug, Serialize)]
struct SizeReport {
    size_bytes: usize,
    ours_memcpy_persist_mib_s: f64,
    libpmem2_memcpy_persist_mib_s: Option<f64>,
    memcpy_persist_ratio: Option<f64>,
    ours_persist: Latency,
    libpmem2_persist: Option<Latency>,
    persist_p50_ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    benchmark: &'static str,
    file: String,
    file_bytes: usize,
    granularity: &'static str,
    cpu: String,
    libpmem2: bool,
    rounds: usize,
    sizes: Vec<SizeReport>,
    target_ratio: f64,
    meets_target: Option<bool>,
}

/// Runs the pmem benchmark with its command-line arguments (after the benchmark name).
pub fn run(args: &[String]) -> Result<(), String> {
    let mut dir: Option<PathBuf> = None;
    let mut file_mib = 64usize;
    let mut rounds = 7usize;
    let mut quick = false;
    let mut json = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Result<usize, String> {
            let v = it.next().ok_or(format!("{name} needs a value"))?;
            v.parse().map_err(|e| format!("{name} {v:?}: {e}"))
        };
        match a.as_str() {
            "--dir" => {
                dir = Some(PathBuf::from(it.next().ok_or("--dir needs a value")?));
            }
            "--file-mib" => file_mib = num("--file-mib")?,
            "--rounds" => rounds = num("--rounds")?.max(1),
            "--quick" => quick = true,
            "--json" => json = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    if file_mib < 8 {
        return Err("--file-mib must be at least 8 (four 2 MiB copies)".into());
    }
    let dir = dir.unwrap_or_else(|| {
        let shm = PathBuf::from("/dev/shm");
        if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        }
    });
    let file = tempfile::Builder::new()
        .prefix("ocxlpmem-bench-pmem-")
        .tempfile_in(&dir)
        .map_err(|e| format!("creating the benchmark file in {}: {e}", dir.display()))?;
    let len = file_mib << 20;
    let map = PmemMap::from_file(file.path(), len as u64)
        .map_err(|e| e.to_string())?
        .force_granularity(Granularity::CacheLine);
    // Fault every page in before measuring.
    map.memset(0, 0, len, Flags::NOFLUSH)
        .map_err(|e| e.to_string())?;
    map.persist(0, len).map_err(|e| e.to_string())?;

    #[cfg(feature = "libpmem2")]
    let theirs = Some(libpmem2::Pmem2::from_existing(file.as_file(), &map)?);
    #[cfg(not(feature = "libpmem2"))]
    let theirs: Option<Ours<'_>> = None;
    let ours = Ours(&map);

    let src: Vec<u8> = (0..2 << 20).map(|i: usize| (i * 7 + 1) as u8).collect();
    let scale = if quick { 10 } else { 1 };
    let mut sizes = Vec::new();
    for size in SIZES {
        let (mut t_ours, mut t_theirs) = (Vec::new(), Vec::new());
        let (mut l_ours, mut l_theirs) = (Vec::new(), Vec::new());
        // About 64 MiB copied per round and side (at least 256 copies); 200 timed
        // batches of persists.
        let copies = ((64 << 20) / size).clamp(256, 200_000) / scale;
        let batches = 200 / scale;
        for round in 0..rounds {
            // Who goes first alternates, so neither side always finds the other's state.
            let ours_first = round % 2 == 0 || theirs.is_none();
            if ours_first {
                t_ours.push(throughput(&ours, &src[..size], len, copies)?);
                l_ours.extend(latency(&map, &ours, size, len, batches)?);
            }
            if let Some(t) = &theirs {
                t_theirs.push(throughput(t, &src[..size], len, copies)?);
                l_theirs.extend(latency(&map, t, size, len, batches)?);
            }
            if !ours_first {
                t_ours.push(throughput(&ours, &src[..size], len, copies)?);
                l_ours.extend(latency(&map, &ours, size, len, batches)?);
            }
        }
        let ours_mib = median(&mut t_ours);
        let theirs_mib = theirs.as_ref().map(|_| median(&mut t_theirs));
        let ours_lat = summary(l_ours);
        let theirs_lat = theirs.as_ref().map(|_| summary(l_theirs));
        sizes.push(SizeReport {
            size_bytes: size,
            ours_memcpy_persist_mib_s: round2(ours_mib),
            libpmem2_memcpy_persist_mib_s: theirs_mib.map(round2),
            memcpy_persist_ratio: theirs_mib.map(|t| round2(ours_mib / t)),
            ours_persist: ours_lat,
            libpmem2_persist: theirs_lat,
            persist_p50_ratio: theirs_lat
                .map(|t| round2(t.p50_ns as f64 / ours_lat.p50_ns.max(1) as f64)),
        });
    }
    let meets_target = theirs.as_ref().map(|_| {
        sizes.iter().all(|s| {
            s.memcpy_persist_ratio.unwrap_or(0.0) >= TARGET_RATIO
                && s.persist_p50_ratio.unwrap_or(0.0) >= TARGET_RATIO
        })
    });
    let report = Report {
        benchmark: "pmem",
        file: file.path().display().to_string(),
        file_bytes: len,
        granularity: "CACHE_LINE (forced on both sides)",
        cpu: CpuPersistence::get().describe(),
        libpmem2: theirs.is_some(),
        rounds,
        sizes,
        target_ratio: TARGET_RATIO,
        meets_target,
    };
    if json {
        let s = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        println!("{s}");
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &Report) {
    println!("{} ({}), {}", r.file, r.granularity, r.cpu);
    println!(
        "{:>8}  {:>12} {:>12} {:>6}  {:>9} {:>9} {:>6}",
        "size", "ours MiB/s", "pmem2 MiB/s", "ratio", "ours p50", "pmem2 p50", "ratio"
    );
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for s in &r.sizes {
        println!(
            "{:>8}  {:>12.0} {:>12} {:>6}  {:>7}ns {:>9} {:>6}",
            s.size_bytes,
            s.ours_memcpy_persist_mib_s,
            s.libpmem2_memcpy_persist_mib_s
                .map_or("-".to_string(), |v| format!("{v:.0}")),
            opt(s.memcpy_persist_ratio),
            s.ours_persist.p50_ns,
            s.libpmem2_persist
                .map_or("-".to_string(), |l| format!("{}ns", l.p50_ns)),
            opt(s.persist_p50_ratio),
        );
    }
    if !r.libpmem2 {
        println!("(built without the libpmem2 feature: no reference; see scripts/bench-pmem)");
    }
}

/// MiB/s of `copies` memcpy-persists of `src`, the destination walking through the file.
fn throughput(side: &dyn Side, src: &[u8], len: usize, copies: usize) -> Result<f64, String> {
    let slots = len / src.len();
    let t = Instant::now();
    for i in 0..copies {
        side.copy_persist((i % slots) * src.len(), src)?;
    }
    let secs = t.elapsed().as_secs_f64().max(1e-9);
    Ok((copies * src.len()) as f64 / secs / (1 << 20) as f64)
}

/// Bytes dirtied, then persisted, per timed batch: enough persists per batch that the
/// clock's resolution (tens of ns) does not decide the small sizes.
const BATCH_BYTES: usize = 256 << 10;

/// Persist calls of `size` bytes on lines dirtied just before with ordinary (cached)
/// stores (untimed), timed in batches of `BATCH_BYTES`; returns ns per persist call of
/// each batch.
fn latency(
    map: &PmemMap,
    side: &dyn Side,
    size: usize,
    len: usize,
    batches: usize,
) -> Result<Vec<u64>, String> {
    let per_batch = (BATCH_BYTES / size).max(1);
    let span = per_batch * size;
    let slots = len / span;
    let mut out = Vec::with_capacity(batches);
    for b in 0..batches {
        let base = (b % slots) * span;
        map.memset(base, b as u8, span, Flags::NOFLUSH | Flags::TEMPORAL)
            .map_err(|e| e.to_string())?;
        let t = Instant::now();
        for k in 0..per_batch {
            side.persist(base + k * size, size)?;
        }
        let ns = t.elapsed().as_nanos() / per_batch as u128;
        out.push(u64::try_from(ns).unwrap_or(u64::MAX));
    }
    Ok(out)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn summary(mut ns: Vec<u64>) -> Latency {
    ns.sort_unstable();
    let at = |q: f64| {
        ns.get(((ns.len().saturating_sub(1)) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    Latency {
        p50_ns: at(0.5),
        p99_ns: at(0.99),
        samples: ns.len(),
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(feature = "libpmem2")]
mod libpmem2 {
    //! The few libpmem2 (PMDK 1.12) entry points the benchmark needs, declared by hand.

    use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
    use std::fs::File;
    use std::os::fd::AsRawFd;

    use ocxlpmem::pmem::PmemMap;

    use super::Side;

    #[repr(C)]
    struct Source {
        _opaque: [u8; 0],
    }
    #[repr(C)]
    struct Map {
        _opaque: [u8; 0],
    }

    /// `PMEM2_GRANULARITY_CACHE_LINE` of `enum pmem2_granularity`.
    const GRANULARITY_CACHE_LINE: c_int = 1;

    type MemcpyFn = unsafe extern "C" fn(*mut c_void, *const c_void, usize, c_uint) -> *mut c_void;
    type PersistFn = unsafe extern "C" fn(*const c_void, usize);

    #[link(name = "pmem2")]
    extern "C" {
        fn pmem2_source_from_fd(src: *mut *mut Source, fd: c_int) -> c_int;
        fn pmem2_map_from_existing(
            map: *mut *mut Map,
            src: *const Source,
            addr: *mut c_void,
            len: usize,
            gran: c_int,
        ) -> c_int;
        fn pmem2_get_memcpy_fn(map: *mut Map) -> Option<MemcpyFn>;
        fn pmem2_get_persist_fn(map: *mut Map) -> Option<PersistFn>;
        fn pmem2_errormsg() -> *const c_char;
    }

    fn errormsg() -> String {
        // SAFETY: pmem2_errormsg returns a thread-local NUL-terminated string (or NULL).
        let p = unsafe { pmem2_errormsg() };
        if p.is_null() {
            return "unknown error".into();
        }
        // SAFETY: non-null, NUL-terminated, valid until the next libpmem2 call here.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    /// libpmem2's view of the mapping that a `PmemMap` owns. The map object is never
    /// deleted (the process ends first); `pmem2_map_delete` would not unmap it anyway.
    pub(super) struct Pmem2 {
        base: *mut u8,
        len: usize,
        memcpy: MemcpyFn,
        persist: PersistFn,
    }

    impl Pmem2 {
        pub(super) fn from_existing(file: &File, map: &PmemMap) -> Result<Pmem2, String> {
            let mut src: *mut Source = std::ptr::null_mut();
            // SAFETY: `src` is a valid out-pointer; the fd is open for the call.
            let rc = unsafe { pmem2_source_from_fd(&mut src, file.as_raw_fd()) };
            if rc != 0 {
                return Err(format!("pmem2_source_from_fd: {rc}: {}", errormsg()));
            }
            let mut m: *mut Map = std::ptr::null_mut();
            // SAFETY: addr/len describe the live shared mapping of this very file, owned
            // by `map`, which outlives every use of the returned functions (run() keeps
            // it); libpmem2 only records them.
            let rc = unsafe {
                pmem2_map_from_existing(
                    &mut m,
                    src,
                    map.as_ptr().cast(),
                    map.len(),
                    GRANULARITY_CACHE_LINE,
                )
            };
            if rc != 0 {
                return Err(format!("pmem2_map_from_existing: {rc}: {}", errormsg()));
            }
            // SAFETY: `m` is the valid map just created.
            let (memcpy, persist) = unsafe { (pmem2_get_memcpy_fn(m), pmem2_get_persist_fn(m)) };
            Ok(Pmem2 {
                base: map.as_ptr(),
                len: map.len(),
                memcpy: memcpy.ok_or("pmem2_get_memcpy_fn returned NULL")?,
                persist: persist.ok_or("pmem2_get_persist_fn returned NULL")?,
            })
        }

        fn check(&self, off: usize, len: usize) -> Result<(), String> {
            match off.checked_add(len) {
                Some(end) if end <= self.len => Ok(()),
                _ => Err(format!(
                    "{off:#x}+{len:#x} outside the {:#x}-byte map",
                    self.len
                )),
            }
        }
    }

    impl Side for Pmem2 {
        fn copy_persist(&self, off: usize, src: &[u8]) -> Result<(), String> {
            self.check(off, src.len())?;
            // SAFETY: the destination lies inside the live mapping (checked), `src` is a
            // valid slice that does not overlap it; flags 0 = copy, flush, drain.
            unsafe { (self.memcpy)(self.base.add(off).cast(), src.as_ptr().cast(), src.len(), 0) };
            Ok(())
        }

        fn persist(&self, off: usize, len: usize) -> Result<(), String> {
            self.check(off, len)?;
            // SAFETY: the range lies inside the live mapping (checked).
            unsafe { (self.persist)(self.base.add(off).cast(), len) };
            Ok(())
        }
    }
}
