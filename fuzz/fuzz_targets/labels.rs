//! The label-area parser over arbitrary bytes: loading an area, listing its namespaces,
//! and decoding single index blocks and label slots must never panic, read past the
//! input, or loop; whatever loads must list and re-load the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocxlpmem::label::index::{parse_index, LabelVersion, Layout};
use ocxlpmem::label::lsa::MemLsa;
use ocxlpmem::label::ns_label::NamespaceLabel;
use ocxlpmem::label::set::LabelArea;

fuzz_target!(|data: &[u8]| {
    let lsa = MemLsa::from_bytes(data.to_vec());
    if let Ok(LabelArea::Labels(set)) = LabelArea::load(&lsa) {
        let listed = set.namespaces(None);
        assert!(listed.len() <= set.nslot() as usize);
        // Loading is a pure function of the bytes.
        match LabelArea::load(&lsa) {
            Ok(LabelArea::Labels(again)) => assert_eq!(again, set),
            other => panic!("a second load differs: {other:?}"),
        }
    }
    for version in [LabelVersion::V1_1, LabelVersion::V1_2] {
        if let Some(layout) = Layout::for_size(data.len() as u64, version) {
            for block in 0..2 {
                let _ = parse_index(data, block, layout.index_size, data.len() as u64, version);
            }
        }
        let size = version.label_size() as usize;
        for (slot, chunk) in data.chunks_exact(size).take(64).enumerate() {
            let _ = NamespaceLabel::decode(chunk, version, slot as u32);
        }
    }
});
