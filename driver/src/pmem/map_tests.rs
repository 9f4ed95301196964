//! Tests of [`PmemMap`](super::PmemMap): one per rule of the mapping.

use super::*;
use crate::media::file::page_size;
use std::fs::OpenOptions;

fn page() -> usize {
    page_size() as usize
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn file_map(pages: usize) -> (tempfile::TempDir, std::path::PathBuf, PmemMap) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool");
    let map = PmemMap::from_file(&path, (pages * page()) as u64).unwrap();
    (dir, path, map)
}

#[test]
fn parse_granularity_takes_libpmem2_values_in_any_case() {
    assert_eq!(parse_granularity("byte"), Some(Granularity::Byte));
    assert_eq!(
        parse_granularity("CACHE_LINE"),
        Some(Granularity::CacheLine)
    );
    assert_eq!(parse_granularity(" Page "), Some(Granularity::Page));
    assert_eq!(parse_granularity("huge"), None);
}

#[test]
fn new_checks_bounds_and_cache_line_alignment() {
    let (_d, _p, map) = file_map(4);
    let w = Arc::clone(map.window());
    let len = w.len();
    let e = PmemMap::new(Arc::clone(&w), 0..len + 1).unwrap_err();
    assert!(
        matches!(e, PmemError::RangeOutsideWindow { window_len, .. } if window_len == len),
        "{e}"
    );
    assert!(e.to_string().contains("pool"), "{e}");
    #[allow(clippy::reversed_empty_ranges)]
    let e = PmemMap::new(Arc::clone(&w), 8..4).unwrap_err();
    assert!(matches!(e, PmemError::RangeOutsideWindow { .. }), "{e}");
    let e = PmemMap::new(Arc::clone(&w), 8..4096).unwrap_err();
    assert!(matches!(e, PmemError::Misaligned { offset: 8, .. }), "{e}");
    let line = CpuPersistence::get().cache_line() as u64;
    let m = PmemMap::new(w, line..len).unwrap();
    assert_eq!(m.len() as u64, len - line);
    assert_eq!(m.window_range(), line..len);
}

#[test]
fn plain_file_is_page_granular_and_not_pmem() {
    let (_d, _p, map) = file_map(2);
    assert_eq!(map.granularity(), Granularity::Page);
    assert!(!map.is_pmem());
    let e = PmemMap::from_file(_d.path().join("pool"), (2 * page()) as u64)
        .unwrap()
        .with_required_granularity(Granularity::CacheLine)
        .unwrap_err();
    assert!(
        matches!(
            e,
            PmemError::GranularityNotSupported {
                required: Granularity::CacheLine,
                available: Granularity::Page,
                ..
            }
        ),
        "{e}"
    );
    let forced = map.force_granularity(Granularity::CacheLine);
    assert!(forced.is_pmem());
    assert!(forced.with_required_granularity(Granularity::Page).is_ok());
}

#[test]
fn copies_on_a_file_reach_the_file_with_every_flag_and_granularity() {
    for g in [Granularity::Page, Granularity::CacheLine, Granularity::Byte] {
        let (_d, path, map) = file_map(8);
        let map = map.force_granularity(g);
        let data = pattern(3000, 7);
        let all = [
            Flags::NONE,
            Flags::NODRAIN,
            Flags::NONTEMPORAL,
            Flags::TEMPORAL | Flags::WB,
            Flags::WC,
        ];
        for (i, flags) in all.into_iter().enumerate() {
            map.memcpy(i * 3001, &data, flags).unwrap();
        }
        map.drain();
        let p5 = page() * 5;
        map.memset(p5, 0xee, 100, Flags::NONE).unwrap();
        map.memset(p5 + 200, 0x11, 700, Flags::NONTEMPORAL).unwrap();
        // Overlapping move forward by 10 bytes inside the first record.
        map.memmove(10, 0, 1000, Flags::NONE).unwrap();
        map.persist(0, map.len()).unwrap();
        let disk = std::fs::read(&path).unwrap();
        assert!(disk[10..1010] == data[..1000], "{g:?} memmove");
        assert!(disk[1010..3000] == data[1010..3000], "{g:?}");
        for i in 1..5 {
            assert!(
                disk[i * 3001..i * 3001 + 3000] == data[..],
                "{g:?} copy {i}"
            );
        }
        assert!(disk[p5..p5 + 100].iter().all(|&b| b == 0xee), "{g:?}");
        assert!(disk[p5 + 100..p5 + 200].iter().all(|&b| b == 0), "{g:?}");
        assert!(disk[p5 + 200..p5 + 900].iter().all(|&b| b == 0x11), "{g:?}");
    }
}

#[test]
fn noflush_copy_lands_in_memory_and_persists_later() {
    let (_d, _p, map) = file_map(1);
    let data = pattern(512, 3);
    map.memcpy(64, &data, Flags::NOFLUSH).unwrap();
    let mut back = vec![0u8; 512];
    map.read(64, &mut back).unwrap();
    assert_eq!(back, data);
    map.flush(64, 512).unwrap();
    map.drain();
    map.deep_flush(0, map.len()).unwrap();
}

#[test]
fn every_operation_rejects_ranges_outside_the_mapping() {
    let (_d, _p, map) = file_map(1);
    let n = map.len();
    let check = |e: PmemError, offset: usize| {
        assert!(
            matches!(e, PmemError::OutOfRange { offset: o, map_len, .. }
                if o == offset as u64 && map_len == n as u64),
            "{e}"
        );
    };
    check(map.persist(n - 1, 2).unwrap_err(), n - 1);
    check(map.flush(n, 1).unwrap_err(), n);
    check(map.deep_flush(1, n).unwrap_err(), 1);
    check(map.memcpy(n - 3, &[0; 4], Flags::NONE).unwrap_err(), n - 3);
    check(
        map.memset(usize::MAX, 0, 2, Flags::NONE).unwrap_err(),
        usize::MAX,
    );
    check(map.memmove(0, n - 1, 2, Flags::NONE).unwrap_err(), n - 1);
    check(map.read(n - 8, &mut [0; 9]).unwrap_err(), n - 8);
    check(map.store_u64(n - 4, 1).unwrap_err(), n - 4);
    // SAFETY: the call fails before any slice exists.
    check(unsafe { map.slice(n, 1) }.unwrap_err(), n);
    assert!(matches!(
        map.store_u64(4, 1).unwrap_err(),
        PmemError::Misaligned {
            offset: 4,
            alignment: 8
        }
    ));
}

#[test]
fn store_u64_and_slices_see_the_same_bytes() {
    let (_d, _p, map) = file_map(1);
    map.store_u64(128, 0x1122_3344_5566_7788).unwrap();
    map.persist(128, 8).unwrap();
    // SAFETY: no other access to these bytes while the slices live.
    unsafe {
        assert_eq!(
            map.slice(128, 8).unwrap(),
            &0x1122_3344_5566_7788u64.to_ne_bytes()
        );
        map.slice_mut(256, 4).unwrap().copy_from_slice(b"abcd");
    }
    let mut b = [0u8; 4];
    map.read(256, &mut b).unwrap();
    assert_eq!(&b, b"abcd");
}

#[test]
fn read_past_eof_of_a_truncated_file_names_the_offset_and_the_process_lives() {
    let (_d, path, map) = file_map(16);
    let p = page();
    map.memcpy(0, &pattern(16 * p, 9), Flags::NONE).unwrap();
    // Shrink the file under the mapping: pages 4.. now raise SIGBUS on a plain load.
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len((4 * p) as u64)
        .unwrap();
    let mut ok = vec![0u8; 4 * p];
    map.read(0, &mut ok).unwrap();
    assert!(ok == pattern(16 * p, 9)[..4 * p]);

    let mut buf = vec![0u8; 6 * p];
    let e = map.read(2 * p, &mut buf).unwrap_err();
    assert!(
        matches!(e, PmemError::Poisoned { offset, window_offset, .. }
            if offset == (4 * p) as u64 && window_offset == (4 * p) as u64),
        "{e}"
    );
    assert!(e.to_string().contains(&format!("{:#x}", 4 * p)), "{e}");
    let e = map.read(10 * p + 5, &mut [0u8; 100]).unwrap_err();
    assert!(
        matches!(e, PmemError::Poisoned { offset, .. } if offset == (10 * p + 5) as u64),
        "{e}"
    );

    // The same bytes through a mapping that starts inside the window: offsets translate.
    let inner = PmemMap::new(Arc::clone(map.window()), (3 * p) as u64..(16 * p) as u64).unwrap();
    let e = inner.read(p / 2, &mut vec![0u8; p]).unwrap_err();
    assert!(
        matches!(e, PmemError::Poisoned { offset, window_offset, .. }
            if offset == p as u64 && window_offset == (4 * p) as u64),
        "{e}"
    );
}

#[test]
fn known_bad_ranges_fail_a_read_before_touching_memory() {
    let dir = tempfile::tempdir().unwrap();
    let len = 8 * page() as u64;
    let w = FileWindow::open_or_create_unlabeled(dir.path().join("m"), len)
        .unwrap()
        .with_bad_ranges(vec![0x1234..0x1300, 5 * page() as u64..6 * page() as u64]);
    let map = PmemMap::new(Arc::new(w), 0x1000..len).unwrap();
    assert_eq!(
        map.bad_ranges(),
        vec![
            0x234..0x300,
            5 * page() as u64 - 0x1000..6 * page() as u64 - 0x1000
        ]
    );
    let e = map.read(0x100, &mut [0u8; 0x200]).unwrap_err();
    assert!(
        matches!(
            e,
            PmemError::Poisoned {
                offset: 0x234,
                window_offset: 0x1234,
                ..
            }
        ),
        "{e}"
    );
    map.read(0x300, &mut [0u8; 0x100]).unwrap();
    map.read(0, &mut [0u8; 0x234]).unwrap();
}

#[cfg(feature = "sim")]
mod bar {
    use super::*;
    use crate::media::bar::BarWindow;
    use crate::media::LABEL_AREA_SIZE;
    use crate::transport::sim::SimTransport;
    use crate::transport::{region, Transport};
    use ocxlpmem_sim::{SimCard, SimConfig};

    fn bar_map() -> (SimCard, SimTransport, PmemMap) {
        let card = SimCard::new(SimConfig {
            lpc_size: 32 << 20,
            ..SimConfig::default()
        })
        .unwrap();
        let t = SimTransport::new(card.clone());
        let c = card.clone();
        let w = BarWindow::open(&t)
            .unwrap()
            .with_bad_range_source(Arc::new(move || c.bad_ranges()));
        let map = PmemMap::new(Arc::new(w), LABEL_AREA_SIZE..LABEL_AREA_SIZE + (4 << 20)).unwrap();
        (card, t, map)
    }

    #[test]
    fn bar_window_is_cache_line_pmem_and_copies_reach_the_card() {
        let (_card, t, map) = bar_map();
        if std::env::var_os(FORCE_GRANULARITY_ENV).is_none() {
            assert_eq!(map.granularity(), Granularity::CacheLine);
            assert!(map.is_pmem());
        }
        let data = pattern(70_000, 1);
        map.memcpy(0x40, &data, Flags::NONE).unwrap();
        map.memcpy(0x2_0000, &data[..100], Flags::NODRAIN).unwrap();
        map.drain();
        map.memset(0x3_0000, 0x5a, 4096 + 3, Flags::NONTEMPORAL)
            .unwrap();
        map.memmove(0x4_0000, 0x40, 1000, Flags::TEMPORAL).unwrap();
        map.deep_flush(0, 0x5_0000).unwrap();
        let at = |off: u64, n: usize| {
            let mut b = vec![0u8; n];
            t.region_read(region::BAR4, LABEL_AREA_SIZE + off, &mut b)
                .unwrap();
            b
        };
        assert!(at(0x40, data.len()) == data);
        assert_eq!(at(0x2_0000, 100), data[..100]);
        assert!(at(0x3_0000, 4099).iter().all(|&b| b == 0x5a));
        assert_eq!(at(0x3_0000 + 4099, 1), [0]);
        assert_eq!(at(0x4_0000, 1000), data[..1000]);
    }

    #[test]
    fn reading_the_simulated_cards_poison_names_the_first_bad_offset() {
        let (card, _t, map) = bar_map();
        map.memcpy(0, &pattern(0x4000, 5), Flags::NONE).unwrap();
        card.poison(LABEL_AREA_SIZE + 0x1234..LABEL_AREA_SIZE + 0x1300);
        assert_eq!(map.bad_ranges(), vec![0x1234..0x1300]);
        let e = map.read(0x1000, &mut [0u8; 0x1000]).unwrap_err();
        assert!(
            matches!(e, PmemError::Poisoned { offset: 0x1234, window_offset, .. }
                if window_offset == LABEL_AREA_SIZE + 0x1234),
            "{e}"
        );
        assert!(e.to_string().contains("BAR 4"), "{e}");
        let mut good = [0u8; 0x100];
        map.read(0x1300, &mut good).unwrap();
        assert_eq!(&good[..], &pattern(0x4000, 5)[0x1300..0x1400]);
        // Poison outside the mapping (in the label area) does not concern it.
        card.poison(0..0x100);
        assert_eq!(map.bad_ranges(), vec![0x1234..0x1300]);
    }
}
