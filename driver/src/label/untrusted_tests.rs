//! Untrusted label areas: arbitrary bytes, index blocks with valid checksums and
//! arbitrary fields, and damaged valid areas load without a panic or an out-of-area
//! transfer, and changes on top of a lenient load read back (spec labels.md project rules).

use proptest::prelude::*;

use super::error::LabelError;
use super::index::LabelVersion;
use super::lsa::{MemLsa, SliceLsa};
use super::set::{LabelArea, LabelSet};
use super::set_tests::{ns, COOKIE};

/// A loaded area is self-consistent: active labels sit in used slots below nslot
/// and carry their own slot number.
fn consistent(set: &LabelSet) -> Result<(), TestCaseError> {
    for (slot, label) in set.labels() {
        prop_assert!(slot < set.nslot());
        prop_assert!(!set.is_slot_free(slot));
        prop_assert_eq!(label.slot, slot);
    }
    Ok(())
}

fn populated_small(v: LabelVersion) -> Vec<u8> {
    let lsa = MemLsa::new(4096);
    let mut set = LabelSet::init(&lsa, v, false).unwrap();
    for n in 0..5 {
        set = set.create_namespace(&lsa, ns(n, "p"), COOKIE).unwrap().0;
    }
    set.delete_label(&lsa, 2).unwrap();
    lsa.snapshot()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes: load answers (labels or uninitialised) without a panic and
    /// without a transfer outside the area (the slice backend would refuse it).
    #[test]
    fn arbitrary_bytes_load_without_panic_or_overread(
        bytes in proptest::collection::vec(any::<u8>(), 768..6000),
    ) {
        match LabelArea::load(&SliceLsa::new(&bytes)) {
            Ok(LabelArea::Labels(set)) => consistent(&set)?,
            Ok(LabelArea::Uninitialized(_)) => {}
            Err(e) => prop_assert!(false, "load failed: {}", e),
        }
    }

    /// Index blocks with a signature, a matching checksum and arbitrary other fields
    /// (offsets right or not, any nslot, mysize, version): the deeper rules and the
    /// slot scan run on them without a panic or a transfer outside the area.
    #[test]
    fn checksummed_arbitrary_headers_load_without_panic(
        size in 768usize..9000,
        fill in proptest::collection::vec(any::<u8>(), 9000),
        fields in proptest::collection::vec(
            (
                any::<u32>(),
                prop_oneof![3 => 0u32..64, 1 => 0u32..4000],
                prop_oneof![3 => Just(256u64), 1 => 0u64..400],
                prop_oneof![3 => 1u16..3, 1 => 0u16..8],
                prop_oneof![3 => 0u8..2, 1 => any::<u8>()],
                prop_oneof![4 => Just(true), 1 => Just(false)],
            ),
            2,
        ),
    ) {
        let mut bytes = fill[..size].to_vec();
        let isz = 256usize;
        for (b, &(seq, nslot, mysize, minor, labelsize, right)) in fields.iter().enumerate() {
            let blk = &mut bytes[b * isz..(b + 1) * isz];
            blk[..16].copy_from_slice(b"NAMESPACE_INDEX\0");
            blk[19] = labelsize;
            blk[20..24].copy_from_slice(&seq.to_le_bytes());
            if right {
                let (mine, other) = ((b * isz) as u64, ((1 - b) * isz) as u64);
                blk[24..32].copy_from_slice(&mine.to_le_bytes());
                blk[40..48].copy_from_slice(&other.to_le_bytes());
                blk[48..56].copy_from_slice(&(2 * isz as u64).to_le_bytes());
            }
            blk[32..40].copy_from_slice(&mysize.to_le_bytes());
            blk[56..60].copy_from_slice(&nslot.to_le_bytes());
            blk[60..62].copy_from_slice(&1u16.to_le_bytes());
            blk[62..64].copy_from_slice(&minor.to_le_bytes());
            let span = if (72..=isz as u64).contains(&mysize) { mysize as usize } else { isz };
            let sum = super::fletcher::fletcher64_without(&blk[..span], 64);
            blk[64..72].copy_from_slice(&sum.to_le_bytes());
        }
        match LabelArea::load(&SliceLsa::new(&bytes)) {
            Ok(LabelArea::Labels(set)) => consistent(&set)?,
            Ok(LabelArea::Uninitialized(_)) => {}
            Err(e) => prop_assert!(false, "load failed: {}", e),
        }
    }

    /// A valid area with damaged bytes loads leniently, and a change on top of what
    /// it loaded either fails with a typed error or reads back as written.
    #[test]
    fn damaged_areas_load_and_accept_changes(
        v2 in any::<bool>(),
        flips in proptest::collection::vec((0usize..4096, 1u8..=255), 1..12),
    ) {
        let v = if v2 { LabelVersion::V1_2 } else { LabelVersion::V1_1 };
        let mut bytes = populated_small(v);
        for (at, x) in flips {
            bytes[at] ^= x;
        }
        let lsa = MemLsa::from_bytes(bytes);
        let set = match LabelArea::load(&lsa) {
            Ok(LabelArea::Labels(set)) => set,
            Ok(LabelArea::Uninitialized(_)) => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("load failed: {e}"))),
        };
        consistent(&set)?;
        match set.create_namespace(&lsa, ns(77, "after"), COOKIE) {
            Ok((after, slot)) => {
                let back = LabelSet::load(&lsa).unwrap();
                prop_assert_eq!(back.label_map(), after.label_map());
                prop_assert_eq!(back.label(slot).map(|l| l.uuid), Some(ns(77, "").uuid));
                consistent(&back)?;
            }
            Err(LabelError::NoFreeSlot { .. } | LabelError::UuidExists { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected {}", e),
        }
    }
}
