//! Tests of the label set: init and load, the operations, the read footprint, and
//! damaged or foreign areas (spec labels.md §7.2, §7.3).

use std::collections::BTreeSet;

use uuid::Uuid;

use super::error::{IndexRule, LabelError, LabelWarning, SlotRule};
use super::index::{all_free, le32, set_free, IndexBlock, LabelVersion, Layout};
use super::lsa::{Lsa, MemLsa, RecordingLsa, SliceLsa};
use super::namespace::NamespaceState;
use super::ns_label::{NamespaceLabel, FLAG_UPDATING};
use super::set::{LabelArea, LabelSet, UninitializedKind};

pub(super) const K128: usize = 128 * 1024;
pub(super) const M16: usize = 16 * 1024 * 1024;
pub(super) const COOKIE: u64 = 0x0123_4567_89ab_cdef;

pub(super) fn ns(n: u128, name: &str) -> NamespaceLabel {
    let mut l = NamespaceLabel::new(
        Uuid::from_u128(0xa000_0000_0000_4000_8000_0000_0000_0000 | n),
        (16 << 20) * n as u64,
        16 << 20,
    );
    l.set_name(name).unwrap();
    l.isetcookie = COOKIE;
    l
}

fn names(set: &LabelSet) -> Vec<(u32, String)> {
    set.labels().map(|(s, l)| (s, l.name_str())).collect()
}

const V: [LabelVersion; 2] = [LabelVersion::V1_1, LabelVersion::V1_2];

#[test]
fn init_writes_ndctl_pair_block0_seq3_then_block1_seq2() {
    for v in V {
        let lsa = RecordingLsa::new(vec![0; K128], 4096);
        let set = LabelSet::init(&lsa, v, false).unwrap();
        let writes = lsa.writes();
        let isz = 256u64;
        // The load of the blank area reads; then exactly two writes, block 0 first.
        assert_eq!(writes.len(), 2);
        assert_eq!(writes[0].0, 0);
        assert_eq!(writes[1].0, isz);
        assert_eq!(le32(&writes[0].1, 20), 3);
        assert_eq!(le32(&writes[1].1, 20), 2);
        assert_eq!((set.current_block(), set.seq()), (0, 3));
        let back = LabelSet::load(&lsa).unwrap();
        assert_eq!(back, set, "{v}");
        assert_eq!(back.current_block(), 0);
        let nslot = if v == LabelVersion::V1_1 { 1020 } else { 510 };
        assert_eq!((back.nslot(), back.free_slots()), (nslot, nslot));
        assert!(back.warnings().is_empty(), "{:?}", back.warnings());
    }
}

#[test]
fn init_and_load_the_full_16mib_label_area() {
    // 16 MiB: v1.1 guesses 131072 slots -> index round_up(72 + 16384, 256) = 16640,
    // nslot (16 MiB - 33280) / 128 = 130812; v1.2: 65536 -> 8448, (16 MiB - 16896) / 256
    // = 65470.
    for (v, isz, nslot) in [
        (LabelVersion::V1_1, 16640, 130812),
        (LabelVersion::V1_2, 8448, 65470),
    ] {
        let lsa = MemLsa::new(M16).with_max_xfer(64 << 10);
        let set = LabelSet::init(&lsa, v, false).unwrap();
        assert_eq!((set.layout().index_size, set.nslot()), (isz, nslot));
        let (set, slot) = set.create_namespace(&lsa, ns(1, "big"), COOKIE).unwrap();
        let last = set.nslot() - 1;
        // Fill up to the last slot to exercise the far end of the bitmap and the area.
        let mut s = set;
        for _ in 0..3 {
            s = s.add_label(&lsa, ns(2, "x")).unwrap().0;
        }
        let back = LabelSet::load(&lsa).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.find_namespace(ns(1, "").uuid).unwrap().0, slot);
        assert_eq!(back.free_slots(), nslot - 4);
        assert!(back.is_slot_free(last));
    }
}

/// Every read of a load lies inside the two index blocks or a used slot, and every used
/// slot is read.
fn assert_reads_only_index_and_used(lsa: &RecordingLsa, set: &LabelSet) {
    let l = set.layout();
    let index_end = 2 * l.index_size;
    let used: BTreeSet<u32> = set.labels().map(|(s, _)| s).collect();
    let mut read_slots = BTreeSet::new();
    for (offset, len) in lsa.reads() {
        let end = offset + len;
        if end <= index_end {
            continue;
        }
        assert!(
            offset >= index_end,
            "read [{offset:#x}, {end:#x}) straddles the index"
        );
        let first = (offset - index_end) / l.label_size();
        let last = (end - 1 - index_end) / l.label_size();
        assert_eq!((offset - index_end) % l.label_size(), 0);
        assert_eq!((end - index_end) % l.label_size(), 0);
        for s in first..=last {
            assert!(used.contains(&(s as u32)), "read free slot {s}");
            read_slots.insert(s as u32);
        }
    }
    assert_eq!(read_slots, used);
}

#[test]
fn load_reads_only_the_index_blocks_and_the_used_slots() {
    for size in [K128, M16] {
        for v in V {
            let mem = MemLsa::new(size);
            let mut set = LabelSet::init(&mem, v, false).unwrap();
            for n in 0..6 {
                set = set.create_namespace(&mem, ns(n, "n"), COOKIE).unwrap().0;
            }
            set = set.delete_namespace(&mem, ns(1, "").uuid).unwrap();
            set = set.delete_namespace(&mem, ns(4, "").uuid).unwrap();
            let lsa = RecordingLsa::new(mem.snapshot(), 64 << 10);
            let back = LabelSet::load(&lsa).unwrap();
            assert_eq!(back.label_map(), set.label_map());
            assert_eq!(
                back.labels().map(|(s, _)| s).collect::<Vec<_>>(),
                [0, 2, 3, 5]
            );
            assert_reads_only_index_and_used(&lsa, &back);
            // The whole area is much larger than what was read.
            let total: u64 = lsa.reads().iter().map(|r| r.1).sum();
            eprintln!(
                "{v} {size:#x}: load read {total} bytes in {} transfers",
                lsa.reads().len()
            );
            assert!(total < 4 * back.layout().index_size + 8 * 256, "{total}");
        }
    }
}

#[test]
fn add_update_delete_flip_blocks_and_free_the_superseded_slot() {
    let lsa = MemLsa::new(K128);
    let s0 = LabelSet::init(&lsa, LabelVersion::V1_2, false).unwrap();
    let (s1, a) = s0.create_namespace(&lsa, ns(1, "a"), COOKIE).unwrap();
    assert_eq!((a, s1.current_block(), s1.seq()), (0, 1, 1));
    let (s2, b) = s1.create_namespace(&lsa, ns(2, "b"), COOKIE).unwrap();
    assert_eq!((b, s2.current_block(), s2.seq()), (1, 0, 2));
    let uuid_a = ns(1, "").uuid;
    let (s3, a2) = s2
        .update_namespace(&lsa, uuid_a, |l| l.set_name("a-renamed"))
        .unwrap();
    // The new label goes into a slot free in the current index, never in place.
    assert_eq!(a2, 2);
    assert!(s3.is_slot_free(0));
    assert_eq!((s3.current_block(), s3.seq()), (1, 3));
    assert_eq!(names(&s3), [(1, "b".into()), (2, "a-renamed".into())]);
    let s4 = s3.delete_label(&lsa, 1).unwrap();
    assert_eq!(names(&s4), [(2, "a-renamed".into())]);
    assert_eq!((s4.current_block(), s4.seq()), (0, 1));
    // The freed slot 0 is reused first.
    let (s5, c) = s4.add_label(&lsa, ns(3, "c")).unwrap();
    assert_eq!(c, 0);
    let back = LabelSet::load(&lsa).unwrap();
    assert_eq!(back, s5);
    assert_eq!(back.free_slots(), 510 - 2);
    assert!(matches!(
        s5.delete_label(&lsa, 7),
        Err(LabelError::NotActive {
            slot: 7,
            nslot: 510
        })
    ));
    assert!(matches!(
        s5.create_namespace(&lsa, ns(3, "again"), COOKIE),
        Err(LabelError::UuidExists { slot: 0, .. })
    ));
}

#[test]
fn a_full_area_refuses_with_the_slot_count_and_writes_nothing() {
    // 4 KiB with 256-byte labels: (4096 - 512) / 256 = 14 slots.
    let lsa = RecordingLsa::new(vec![0; 4096], 4096);
    let mut set = LabelSet::init(&lsa, LabelVersion::V1_2, false).unwrap();
    assert_eq!(set.nslot(), 14);
    for n in 0..14 {
        set = set.add_label(&lsa, ns(n, "f")).unwrap().0;
    }
    let before = lsa.writes().len();
    let err = set.add_label(&lsa, ns(99, "f")).unwrap_err();
    assert!(matches!(err, LabelError::NoFreeSlot { nslot: 14 }), "{err}");
    assert!(err.to_string().contains("all 14 label slots"), "{err}");
    // An update needs a free slot too (the old one is live until the commit).
    let err = set.update_label(&lsa, 3, ns(3, "g")).unwrap_err();
    assert!(matches!(err, LabelError::NoFreeSlot { .. }));
    assert_eq!(lsa.writes().len(), before);
    // Deleting one makes room again.
    let set = set.delete_label(&lsa, 5).unwrap();
    assert_eq!(set.add_label(&lsa, ns(99, "f")).unwrap().1, 5);
}

#[test]
fn a_blank_area_is_uninitialized_and_a_damaged_one_says_why() {
    let blank = SliceLsa::new(&[0u8; K128]);
    match LabelArea::load(&blank).unwrap() {
        LabelArea::Uninitialized(u) => {
            assert_eq!(u.kind, UninitializedKind::Blank);
            assert_eq!(u.block0.rule, IndexRule::Signature);
        }
        LabelArea::Labels(s) => panic!("blank area loaded as {s:?}"),
    }
    let err = LabelSet::load(&blank).unwrap_err();
    assert!(err.to_string().contains("init"), "{err}");

    // Both blocks with a broken checksum: damaged, and the checksum is named.
    let lsa = MemLsa::new(K128);
    LabelSet::init(&lsa, LabelVersion::V1_1, false).unwrap();
    let mut bytes = lsa.snapshot();
    bytes[100] ^= 1;
    bytes[256 + 100] ^= 1;
    match LabelArea::load(&SliceLsa::new(&bytes)).unwrap() {
        LabelArea::Uninitialized(u) => {
            assert_eq!(u.kind, UninitializedKind::Damaged);
            assert!(
                matches!(u.block0.rule, IndexRule::Checksum { .. }),
                "{}",
                u.block0
            );
            assert!(
                matches!(u.block1.rule, IndexRule::Checksum { .. }),
                "{}",
                u.block1
            );
            assert_eq!(u.block1.offset, 256);
        }
        LabelArea::Labels(s) => panic!("damaged area loaded as {s:?}"),
    }
    // Too small for any layout.
    assert!(matches!(
        LabelArea::load(&SliceLsa::new(&[0u8; 512])),
        Err(LabelError::AreaTooSmall { .. })
    ));
}

/// An area with block 0 and block 1 written with the given seqs (None = zeroed), block
/// `b` having slot `b` used with a label named after the block.
fn two_blocks(v: LabelVersion, seq0: Option<u8>, seq1: Option<u8>) -> Vec<u8> {
    let layout = Layout::for_size(K128 as u64, v).unwrap();
    let mut bytes = vec![0u8; K128];
    for (b, seq) in [(0u8, seq0), (1u8, seq1)] {
        let Some(seq) = seq else { continue };
        let mut free = all_free(layout.nslot);
        set_free(&mut free, u32::from(b), false);
        let blk = IndexBlock::new(&layout, b, seq, free).encode(layout.index_size);
        let at = layout.index_offset(b) as usize;
        bytes[at..at + blk.len()].copy_from_slice(&blk);
        let label = ns(u128::from(b), &format!("block{b}")).encode(v, u32::from(b));
        let at = layout.slot_offset(u32::from(b)).unwrap() as usize;
        bytes[at..at + label.len()].copy_from_slice(&label);
    }
    bytes
}

#[test]
fn the_current_block_follows_the_sequence_rules() {
    for v in V {
        for (seq0, seq1, want) in [
            (Some(1), Some(2), 1),
            (Some(2), Some(3), 1),
            (Some(3), Some(1), 1),
            (Some(2), Some(1), 0),
            (Some(3), Some(2), 0),
            (Some(1), Some(3), 0),
            (Some(2), Some(2), 1),
            (Some(1), None, 0),
            (None, Some(3), 1),
        ] {
            let bytes = two_blocks(v, seq0, seq1);
            let set = LabelSet::load(&SliceLsa::new(&bytes)).unwrap();
            assert_eq!(set.current_block(), want, "{v} {seq0:?} {seq1:?}");
            assert_eq!(names(&set), [(u32::from(want), format!("block{want}"))]);
            let one_invalid = seq0.is_none() || seq1.is_none();
            let warned = set
                .warnings()
                .iter()
                .any(|w| matches!(w, LabelWarning::OtherIndexInvalid(_)));
            assert_eq!(warned, one_invalid);
        }
    }
}

#[test]
fn a_block_with_seq_zero_is_invalid_and_the_other_is_used() {
    // ndctl's 4-DIMM v1.1 images: block 0 with seq 0, block 1 with seq 3.
    let mut bytes = two_blocks(LabelVersion::V1_1, Some(1), Some(3));
    let layout = Layout::for_size(K128 as u64, LabelVersion::V1_1).unwrap();
    let blk = IndexBlock::new(&layout, 0, 0, all_free(layout.nslot)).encode(256);
    bytes[..256].copy_from_slice(&blk);
    let set = LabelSet::load(&SliceLsa::new(&bytes)).unwrap();
    assert_eq!(set.current_block(), 1);
    let w = &set.warnings()[0];
    assert!(
        matches!(w, LabelWarning::OtherIndexInvalid(e) if matches!(e.rule, IndexRule::Sequence { seq: 0 })),
        "{w}"
    );
}

#[test]
fn a_used_slot_that_fails_its_checks_is_skipped_with_a_warning() {
    let lsa = MemLsa::new(K128);
    let mut set = LabelSet::init(&lsa, LabelVersion::V1_2, false).unwrap();
    for n in 0..3 {
        set = set.create_namespace(&lsa, ns(n, "s"), COOKIE).unwrap().0;
    }
    let mut bytes = lsa.snapshot();
    // Slot 1: flip a byte of the name (checksum fails); slot 2: a wrong slot field.
    bytes[512 + 256 + 20] ^= 0x20;
    bytes[512 + 2 * 256 + 120] = 9;
    let lsa = MemLsa::from_bytes(bytes);
    let set = LabelSet::load(&lsa).unwrap();
    assert_eq!(set.labels().map(|(s, _)| s).collect::<Vec<_>>(), [0]);
    assert_eq!(set.skipped_slots().collect::<Vec<_>>(), [1, 2]);
    let rules: Vec<&SlotRule> = set
        .warnings()
        .iter()
        .filter_map(|w| match w {
            LabelWarning::SlotSkipped(e) => Some(&e.rule),
            _ => None,
        })
        .collect();
    assert!(matches!(rules[0], SlotRule::Checksum { .. }));
    assert_eq!(rules[1], &SlotRule::SlotField { found: 9 });
    // Skipped slots stay used until released explicitly; they are never overwritten.
    let (set, slot) = set.add_label(&lsa, ns(7, "new")).unwrap();
    assert_eq!(slot, 3);
    assert_eq!(set.skipped_slots().count(), 2);
    let set = set.release_skipped(&lsa).unwrap();
    let back = LabelSet::load(&lsa).unwrap();
    assert_eq!(back, set);
    assert!(back.is_slot_free(1) && back.is_slot_free(2));
    assert!(back.warnings().is_empty(), "{:?}", back.warnings());
}

#[test]
fn updating_flag_on_a_complete_set_is_accepted_and_cleared_on_update() {
    let lsa = MemLsa::new(K128);
    let set = LabelSet::init(&lsa, LabelVersion::V1_1, false).unwrap();
    let mut l = ns(1, "old-kernel");
    l.flags |= FLAG_UPDATING;
    let (set, slot) = set.add_label(&lsa, l).unwrap();
    let loaded = LabelSet::load(&lsa).unwrap();
    assert_eq!(loaded, set);
    let set = loaded;
    assert!(set.warnings().contains(&LabelWarning::Updating { slot }));
    let entry = &set.namespaces(Some(COOKIE))[0];
    assert_eq!(entry.state, NamespaceState::Active { updating: true });
    assert!(entry.is_usable());
    let (set, _) = set
        .update_namespace(&lsa, ns(1, "").uuid, |_| Ok(()))
        .unwrap();
    let back = LabelSet::load(&lsa).unwrap();
    assert_eq!(back, set);
    assert_eq!(
        back.namespaces(Some(COOKIE))[0].state,
        NamespaceState::Active { updating: false }
    );
    assert!(back.warnings().is_empty());
}

#[test]
fn a_multi_dimm_label_is_an_incomplete_set_here() {
    let lsa = MemLsa::new(K128);
    let set = LabelSet::init(&lsa, LabelVersion::V1_1, false).unwrap();
    let mut l = ns(1, "4way");
    l.nlabel = 4;
    l.position = 2;
    l.flags |= FLAG_UPDATING;
    set.add_label(&lsa, l).unwrap();
    let set = LabelSet::load(&lsa).unwrap();
    let entry = &set.namespaces(None)[0];
    assert_eq!(
        entry.state,
        NamespaceState::Incomplete {
            found: 1,
            nlabel: 4
        }
    );
    assert!(!entry.is_usable());
    assert!(set
        .warnings()
        .iter()
        .any(|w| matches!(w, LabelWarning::IncompleteSet { nlabel: 4, .. })));
    // UPDATING on an incomplete set is not excused.
    assert!(!set
        .warnings()
        .iter()
        .any(|w| matches!(w, LabelWarning::Updating { .. })));
}

#[test]
fn duplicate_uuids_are_reported_and_deleted_together() {
    let lsa = MemLsa::new(K128);
    let set = LabelSet::init(&lsa, LabelVersion::V1_2, false).unwrap();
    let (set, _) = set.add_label(&lsa, ns(1, "first")).unwrap();
    let (set, _) = set.add_label(&lsa, ns(2, "other")).unwrap();
    let (set, _) = set.add_label(&lsa, ns(1, "second")).unwrap();
    let loaded = LabelSet::load(&lsa).unwrap();
    assert_eq!(loaded, set);
    let set = loaded;
    let uuid = ns(1, "").uuid;
    assert!(set.warnings().contains(&LabelWarning::DuplicateUuid {
        uuid,
        slots: vec![0, 2]
    }));
    let entry = set
        .namespaces(None)
        .into_iter()
        .find(|e| e.uuid == uuid)
        .unwrap();
    assert_eq!(entry.state, NamespaceState::Duplicate);
    assert!(matches!(
        set.find_namespace(uuid),
        Err(LabelError::DuplicateUuid { ref slots, .. }) if slots == &[0, 2]
    ));
    assert!(matches!(
        set.update_namespace(&lsa, uuid, |_| Ok(())),
        Err(LabelError::DuplicateUuid { .. })
    ));
    let set = set.delete_namespace(&lsa, uuid).unwrap();
    assert_eq!(names(&set), [(1, "other".into())]);
    assert!(LabelSet::load(&lsa).unwrap().warnings().is_empty());
}

#[test]
fn a_cookie_mismatch_is_named_in_the_warning_and_the_error() {
    let lsa = MemLsa::new(K128);
    let set = LabelSet::init(&lsa, LabelVersion::V1_1, false).unwrap();
    let (set, slot) = set.create_namespace(&lsa, ns(1, "mine"), COOKIE).unwrap();
    let (set, other) = set.create_namespace(&lsa, ns(2, "foreign"), 42).unwrap();
    assert!(set.check_cookie(COOKIE).len() == 1);
    let w = &set.check_cookie(COOKIE)[0];
    assert_eq!(
        w,
        &LabelWarning::CookieMismatch {
            uuid: ns(2, "").uuid,
            slot: other,
            found: 42,
            expected: COOKIE
        }
    );
    assert!(w.to_string().contains("0x000000000000002a"), "{w}");
    assert_eq!(
        set.find_namespace_checked(ns(1, "").uuid, COOKIE)
            .unwrap()
            .0,
        slot
    );
    let e = set
        .find_namespace_checked(ns(2, "").uuid, COOKIE)
        .unwrap_err();
    assert!(
        matches!(e, LabelError::CookieMismatch { found: 42, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("fix:"), "{e}");
    let states: Vec<_> = set
        .namespaces(Some(COOKIE))
        .into_iter()
        .map(|e| e.state)
        .collect();
    assert_eq!(
        states,
        [
            NamespaceState::Active { updating: false },
            NamespaceState::CookieMismatch {
                found: 42,
                expected: COOKIE
            }
        ]
    );
    assert_eq!(set.find_by_name("foreign")[0].0, other);
    assert!(set.find_by_name("nobody").is_empty());
}

#[test]
fn the_old_kernel_slot_count_is_read_and_upgraded_on_the_next_commit() {
    // ndctl's v1.1 test images: 128 KiB, index 256, nslot 1016 (size / 129).
    let layout = Layout::with_nslot(K128 as u64, LabelVersion::V1_1, 1016).unwrap();
    assert_eq!(layout.index_size, 256);
    let mut bytes = vec![0u8; K128];
    let mut free = all_free(1016);
    set_free(&mut free, 0, false);
    for (b, seq) in [(0u8, 3u8), (1, 2)] {
        let blk = IndexBlock::new(&layout, b, seq, free.clone()).encode(256);
        bytes[usize::from(b) * 256..][..256].copy_from_slice(&blk);
    }
    let label = ns(1, "legacy").encode(LabelVersion::V1_1, 0);
    bytes[512..640].copy_from_slice(&label);
    let lsa = MemLsa::from_bytes(bytes);
    let set = LabelSet::load(&lsa).unwrap();
    assert_eq!(set.found_nslot(), 1016);
    assert!(set.warnings().contains(&LabelWarning::LegacySlotCount {
        found: 1016,
        formula: 1020
    }));
    assert_eq!(set.nslot(), 1020);
    let set = set.delete_namespace(&lsa, ns(1, "").uuid).unwrap();
    let back = LabelSet::load(&lsa).unwrap();
    assert_eq!(back, set);
    assert_eq!((back.found_nslot(), back.free_slots()), (1020, 1020));
}

#[test]
fn a_second_writer_is_noticed_before_anything_is_written() {
    let lsa = RecordingLsa::new(vec![0; K128], 4096);
    let set = LabelSet::init(&lsa, LabelVersion::V1_2, false).unwrap();
    let mine = LabelSet::load(&lsa).unwrap();
    set.create_namespace(&lsa, ns(1, "theirs"), COOKIE).unwrap();
    let before = lsa.writes().len();
    let err = mine
        .create_namespace(&lsa, ns(2, "mine"), COOKIE)
        .unwrap_err();
    assert!(
        matches!(
            err,
            LabelError::Stale {
                block: 1,
                expected: 2,
                found: 1
            }
        ),
        "{err}"
    );
    assert_eq!(lsa.writes().len(), before);
}

#[test]
fn init_refuses_existing_labels_unless_forced_and_can_change_version() {
    let lsa = MemLsa::new(K128);
    let set = LabelSet::init(&lsa, LabelVersion::V1_1, false).unwrap();
    // An empty valid area may be re-initialised without force.
    let again = LabelSet::init(&lsa, LabelVersion::V1_1, false).unwrap();
    assert_eq!(again.labels().count(), set.labels().count());
    let set = again;
    let (_, _) = set.create_namespace(&lsa, ns(1, "keep"), COOKIE).unwrap();
    let err = LabelSet::init(&lsa, LabelVersion::V1_2, false).unwrap_err();
    assert!(
        matches!(
            err,
            LabelError::AlreadyInitialised {
                labels: 1,
                version: "1.1"
            }
        ),
        "{err}"
    );
    assert_eq!(LabelSet::load(&lsa).unwrap().labels().count(), 1);
    for v in [LabelVersion::V1_1, LabelVersion::V1_2, LabelVersion::V1_1] {
        let set = LabelSet::init(&lsa, v, true).unwrap();
        let back = LabelSet::load(&lsa).unwrap();
        assert_eq!(back, set);
        assert_eq!((back.version(), back.labels().count()), (v, 0));
        assert!(back.warnings().is_empty(), "{:?}", back.warnings());
        back.create_namespace(&lsa, ns(1, "again"), COOKIE).unwrap();
    }
}

#[test]
fn zero_leaves_a_blank_area() {
    let lsa = MemLsa::new(K128).with_max_xfer(4096);
    let set = LabelSet::init(&lsa, LabelVersion::V1_2, false).unwrap();
    set.create_namespace(&lsa, ns(1, "z"), COOKIE).unwrap();
    LabelSet::zero(&lsa).unwrap();
    assert!(lsa.snapshot().iter().all(|&b| b == 0));
    assert!(matches!(
        LabelArea::load(&lsa).unwrap(),
        LabelArea::Uninitialized(u) if u.kind == UninitializedKind::Blank
    ));
    assert_eq!(lsa.size(), K128 as u64);
}

#[test]
fn the_card_label_area_round_trips_through_a_media_window_reopen() {
    use crate::media::{file::FileWindow, MediaWindow, LABEL_AREA_SIZE};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("media");
    let lpc = LABEL_AREA_SIZE + (16 << 20);
    let window: Arc<dyn MediaWindow> = Arc::new(FileWindow::create(&path, lpc).unwrap());
    let lsa = super::lsa::MediaLsa::new(window);
    // The driver's LSA is the whole 16 MiB label area, transfers of 64 KiB.
    assert_eq!((lsa.size(), lsa.max_xfer()), (M16 as u64, 64 << 10));
    let set = LabelSet::init(&lsa, LabelVersion::V1_1, false).unwrap();
    let (set, _) = set.create_namespace(&lsa, ns(1, "pmem0"), COOKIE).unwrap();
    let (set, _) = set.create_namespace(&lsa, ns(2, "pmem1"), COOKIE).unwrap();
    drop(lsa);
    let window: Arc<dyn MediaWindow> = Arc::new(FileWindow::open(&path, lpc).unwrap());
    let back = LabelSet::load(&super::lsa::MediaLsa::new(window)).unwrap();
    assert_eq!(back, set);
    assert_eq!(back.layout().nslot, 130812);
    // The same bytes as a label image file (ndctl read-labels -o) read the same.
    let image = dir.path().join("labels.bin");
    std::fs::write(&image, &std::fs::read(&path).unwrap()[..M16]).unwrap();
    let file = super::lsa::FileLsa::open(&image, false).unwrap();
    assert_eq!(LabelSet::load(&file).unwrap().label_map(), set.label_map());
}

#[test]
fn a_foreign_index_size_and_a_bitmap_shorter_than_nslot_are_read_leniently() {
    // 256 KiB: the formula gives 512-byte index blocks; this writer used 256-byte blocks
    // (found through block 0's otheroff) and claims 2000 slots, more than the 184-byte
    // bitmap of such a block covers (1472).
    let size = 256 * 1024;
    let layout = Layout {
        lsa_size: size as u64,
        version: LabelVersion::V1_1,
        index_size: 256,
        nslot: 2000,
    };
    assert_eq!(
        Layout::for_size(size as u64, LabelVersion::V1_1)
            .unwrap()
            .index_size,
        512
    );
    let mut bytes = vec![0u8; size];
    let mut free = vec![0xffu8; 184];
    set_free(&mut free, 0, false);
    for (b, seq) in [(0u8, 1u8), (1, 1)] {
        let blk = IndexBlock::new(&layout, b, seq, free.clone()).encode(256);
        bytes[usize::from(b) * 256..][..256].copy_from_slice(&blk);
    }
    bytes[512..640].copy_from_slice(&ns(1, "foreign").encode(LabelVersion::V1_1, 0));
    let rec = RecordingLsa::new(bytes.clone(), 4096);
    let set = LabelSet::load(&rec).unwrap();
    assert_reads_only_index_and_used(&rec, &set);
    let lsa = MemLsa::from_bytes(bytes);
    let loaded = LabelSet::load(&lsa).unwrap();
    assert_eq!(loaded, set);
    let set = loaded;
    // Equal seqs: block 1 is current.
    assert_eq!(set.current_block(), 1);
    assert!(set.warnings().contains(&LabelWarning::BitmapShort {
        nslot: 2000,
        covered: 1472
    }));
    assert_eq!((set.layout().index_size, set.nslot()), (256, 1472));
    assert_eq!(names(&set), [(0, "foreign".into())]);
    // Writes keep the layout found (moving the index blocks is not a one-write change).
    let (set, slot) = set.create_namespace(&lsa, ns(2, "mine"), COOKIE).unwrap();
    assert_eq!(slot, 1);
    let back = LabelSet::load(&lsa).unwrap();
    assert_eq!(back, set);
    assert_eq!((back.current_block(), back.found_nslot()), (0, 1472));
}

#[test]
fn scan_all_slots_lists_freed_labels_too_as_ndctl_read_labels_does() {
    let lsa = MemLsa::new(K128).with_max_xfer(4096);
    let set = LabelSet::init(&lsa, LabelVersion::V1_2, false).unwrap();
    let (set, _) = set.create_namespace(&lsa, ns(1, "kept"), COOKIE).unwrap();
    let (set, _) = set.create_namespace(&lsa, ns(2, "gone"), COOKIE).unwrap();
    let set = set.delete_namespace(&lsa, ns(2, "").uuid).unwrap();
    let scanned: Vec<(u32, String)> = set
        .scan_all_slots(&lsa)
        .unwrap()
        .into_iter()
        .map(|(s, l)| (s, l.name_str()))
        .collect();
    assert_eq!(scanned, [(0, "kept".into()), (1, "gone".into())]);
    assert_eq!(names(&set), [(0, "kept".into())]);
}

#[test]
fn v1_2_labels_keep_their_type_and_abstraction_guids_through_the_set() {
    use super::ns_label::{NFIT_PMEM_TYPE_GUID, PFN_GUID};
    let lsa = MemLsa::new(K128);
    let set = LabelSet::init(&lsa, LabelVersion::V1_2, false).unwrap();
    let mut l = ns(1, "fsdax");
    l.type_guid = NFIT_PMEM_TYPE_GUID;
    l.abstraction_guid = PFN_GUID;
    l.lbasize = 4096;
    l.align = 1;
    let (set, slot) = set.create_namespace(&lsa, l, COOKIE).unwrap();
    // The GUIDs sit at 128 and 144 in the kernel's guid_t byte order.
    let bytes = lsa.snapshot();
    let at = set.layout().slot_offset(slot).unwrap() as usize;
    assert_eq!(&bytes[at + 128..at + 132], &[0x79, 0xd3, 0xf0, 0x66]);
    assert_eq!(&bytes[at + 144..at + 148], &[0xba, 0x00, 0x64, 0x26]);
    let back = LabelSet::load(&lsa).unwrap();
    let (_, got) = back.find_namespace(ns(1, "").uuid).unwrap();
    assert_eq!(
        (got.type_guid, got.abstraction_guid),
        (NFIT_PMEM_TYPE_GUID, PFN_GUID)
    );
    assert_eq!((got.sector_size(), got.align), (4096, 1));
}

#[test]
fn blocks_of_two_versions_resolve_to_128_byte_labels_first_as_the_kernel_does() {
    // 128 KiB: both versions use 256-byte index blocks, so block 0 may be v1.2 and block
    // 1 v1.1. The kernel tries 128-byte labels first: block 1 (v1.1) wins.
    let v11 = two_blocks(LabelVersion::V1_1, None, Some(1));
    let v12 = two_blocks(LabelVersion::V1_2, Some(2), None);
    let mut bytes = v11.clone();
    bytes[..256].copy_from_slice(&v12[..256]);
    let set = LabelSet::load(&SliceLsa::new(&bytes)).unwrap();
    assert_eq!(
        (set.version(), set.current_block()),
        (LabelVersion::V1_1, 1)
    );
    let w = set.warnings()[0].to_string();
    assert!(w.contains("256-byte labels, not 128"), "{w}");
}
