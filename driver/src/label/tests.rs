//! Tests of the index block and label slot codecs against spec/labels.md.

use uuid::Uuid;

use super::error::{IndexRule, SlotRule};
use super::index::{all_free, clear_tail_bits, is_free, set_free};
use super::index::{current_block, next_seq, parse_index, IndexBlock, LabelVersion, Layout};
use super::ns_label::NamespaceLabel;

const LSA: u64 = 128 * 1024;

#[test]
fn layout_of_a_128k_area_matches_the_kernel_formula() {
    // v1.2: 512 guessed slots -> 256-byte index blocks -> (128 KiB - 512) / 256 = 510.
    let l = Layout::for_size(LSA, LabelVersion::V1_2).unwrap();
    assert_eq!((l.index_size, l.nslot), (256, 510));
    assert_eq!(l.label_offset(), 512);
    assert_eq!(l.slot_offset(509), Some(512 + 509 * 256));
    assert_eq!(l.slot_offset(510), None);
    // v1.1: 1024 guessed slots -> 72 + 128 = 200 -> 256; (128 KiB - 512) / 128 = 1020.
    let l = Layout::for_size(LSA, LabelVersion::V1_1).unwrap();
    assert_eq!((l.index_size, l.nslot), (256, 1020));
    assert!(Layout::for_size(512 + 256, LabelVersion::V1_2).is_none());
}

#[test]
fn sequence_numbers_cycle_and_pick_the_newer_block() {
    assert_eq!(
        [next_seq(1), next_seq(2), next_seq(3), next_seq(0)],
        [2, 3, 1, 1]
    );
    assert_eq!(current_block(Some(1), Some(2)), Some(1));
    assert_eq!(current_block(Some(3), Some(1)), Some(1));
    assert_eq!(current_block(Some(2), Some(1)), Some(0));
    assert_eq!(current_block(Some(2), Some(2)), Some(1));
    assert_eq!(current_block(Some(2), None), Some(0));
    assert_eq!(current_block(None, None), None);
}

#[test]
fn index_block_round_trips_and_rejects_damage_in_rule_order() {
    let layout = Layout::for_size(LSA, LabelVersion::V1_2).unwrap();
    let mut free = all_free(layout.nslot);
    set_free(&mut free, 3, false);
    let block = IndexBlock::new(&layout, 1, 2, free);
    let bytes = block.encode(layout.index_size);
    let parsed = parse_index(&bytes, 1, layout.index_size, LSA, layout.version).unwrap();
    assert_eq!(parsed.seq2(), 2);
    assert_eq!(parsed.nslot, 510);
    assert!(!is_free(&parsed.free, 3));
    assert!(is_free(&parsed.free, 4));

    let mut bad_sig = bytes.clone();
    bad_sig[0] ^= 1;
    let e = parse_index(&bad_sig, 1, layout.index_size, LSA, layout.version).unwrap_err();
    assert_eq!(e.rule, IndexRule::Signature);

    let mut bad_sum = bytes.clone();
    bad_sum[100] ^= 0x40;
    let e = parse_index(&bad_sum, 1, layout.index_size, LSA, layout.version).unwrap_err();
    assert!(matches!(e.rule, IndexRule::Checksum { .. }), "{e}");

    // Block 1 parsed as if it were block 0: its myoff is wrong.
    let e = parse_index(&bytes, 0, layout.index_size, LSA, layout.version).unwrap_err();
    assert!(
        matches!(e.rule, IndexRule::Offset { field: "myoff", .. }),
        "{e}"
    );

    let e = parse_index(&bytes[..100], 1, layout.index_size, LSA, layout.version).unwrap_err();
    assert!(matches!(e.rule, IndexRule::Truncated { .. }), "{e}");
}

#[test]
fn namespace_label_round_trips_and_checks_slot_and_checksum() {
    let uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
    let mut label = NamespaceLabel::new(uuid, 0x100_0000, 0x4000_0000);
    label.set_name("db0").unwrap();
    label.slot = 7;
    let bytes = label.encode(LabelVersion::V1_2, 7);
    assert_eq!(bytes.len(), 256);
    let back = NamespaceLabel::decode(&bytes, LabelVersion::V1_2, 7).unwrap();
    assert_eq!(back.uuid, uuid);
    assert_eq!(back.name_str(), "db0");
    assert_eq!((back.dpa, back.rawsize), (0x100_0000, 0x4000_0000));

    let e = NamespaceLabel::decode(&bytes, LabelVersion::V1_2, 8).unwrap_err();
    assert_eq!(e, SlotRule::SlotField { found: 7 });

    let mut damaged = bytes.clone();
    damaged[0x60] ^= 1;
    let e = NamespaceLabel::decode(&damaged, LabelVersion::V1_2, 7).unwrap_err();
    assert!(matches!(e, SlotRule::Checksum { .. }), "{e}");

    assert!(label.set_name(&"x".repeat(64)).is_err());
}

#[test]
fn index_encode_of_a_too_small_size_still_yields_a_whole_header() {
    let layout = Layout::for_size(LSA, LabelVersion::V1_2).unwrap();
    let block = IndexBlock::new(&layout, 0, 1, all_free(layout.nslot));
    let bytes = block.encode(16);
    assert_eq!(bytes.len(), 72);
    assert_eq!(&bytes[..16], b"NAMESPACE_INDEX\0");
}

#[test]
fn bitmap_bits_at_and_past_nslot_are_cleared() {
    let mut free = vec![0xffu8; 3];
    clear_tail_bits(&mut free, 10);
    assert_eq!(free, [0xff, 0x03, 0x00]);
    let mut free = vec![0xffu8; 3];
    clear_tail_bits(&mut free, 16);
    assert_eq!(free, [0xff, 0xff, 0x00]);
    assert_eq!(all_free(1), [0x01]);
    assert_eq!(all_free(0), Vec::<u8>::new());
}
