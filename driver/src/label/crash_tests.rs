//! Crash consistency of every label-set operation (spec labels.md §7.3, project rule "a
//! crash at any write boundary leaves either the old or the new state").
//!
//! Each operation runs against a recording area; its write stream is then replayed onto
//! the area as it was before, cut after every write and inside every write at 8-byte
//! granularity, and the cut area is loaded. The states seen along the stream must be the
//! old one, then the new one (one switch, never back, nothing else). The committing index
//! write is also torn out of order: every subset of its changed 64-byte lines.

use std::collections::BTreeMap;

use proptest::prelude::*;
use uuid::Uuid;

use super::index::LabelVersion;
use super::lsa::{Lsa, RecordingLsa, SliceLsa};
use super::ns_label::NamespaceLabel;
use super::set::{LabelArea, LabelSet};
use super::set_tests::{ns, COOKIE, K128, M16};

/// What a load of an area shows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum View {
    Uninit,
    Set(LabelVersion, BTreeMap<u32, NamespaceLabel>),
}

fn view(bytes: &[u8]) -> View {
    match LabelArea::load(&SliceLsa::new(bytes)) {
        Ok(LabelArea::Labels(s)) => View::Set(s.version(), s.label_map().clone()),
        Ok(LabelArea::Uninitialized(_)) => View::Uninit,
        Err(e) => panic!("load of a whole area failed: {e}"),
    }
}

/// Bytes at the start of the area where writes are cut at 8-byte granularity: both index
/// blocks and the first slots of every layout tested (the largest, 16 MiB v1.1, has its
/// slots from 33280 on). Past it (only `zero` writes there) cuts fall on write boundaries.
const FINE: u64 = 64 << 10;

/// Replays `writes` onto `pre` and calls `check` on the image before the first write and
/// after every `gran` bytes of each write inside [`FINE`] (after each whole write past
/// it). Returns the number of cut points.
fn replay_cuts(
    pre: &[u8],
    writes: &[(u64, Vec<u8>)],
    gran: usize,
    mut check: impl FnMut(&[u8]),
) -> usize {
    let mut img = pre.to_vec();
    check(&img);
    let mut cuts = 1;
    for (offset, data) in writes {
        let at = *offset as usize;
        let step = if *offset < FINE { gran } else { data.len() };
        let mut done = 0;
        while done < data.len() {
            let n = step.min(data.len() - done);
            let (dst, src) = (&mut img[at + done..at + done + n], &data[done..done + n]);
            done += n;
            // A cut after bytes that did not change shows the same area as the one before.
            if dst != src {
                dst.copy_from_slice(src);
                check(&img);
                cuts += 1;
            }
        }
    }
    cuts
}

/// Runs `op` on `pre`, then checks every cut of its write stream. `path` is the sequence
/// of distinct views the stream must pass through (old first, new last).
fn check_op(pre: Vec<u8>, max_xfer: u64, op: impl FnOnce(&dyn Lsa), middle: Option<View>) -> usize {
    let old = view(&pre);
    let lsa = RecordingLsa::new(pre.clone(), max_xfer);
    op(&lsa);
    let post = lsa.snapshot();
    let new = view(&post);
    assert_ne!(old, new, "the operation changed nothing visible");
    let writes = lsa.writes();
    let mut path: Vec<View> = Vec::new();
    let cuts = replay_cuts(&pre, &writes, 8, |img| {
        let v = view(img);
        if path.last() != Some(&v) {
            path.push(v);
        }
    });
    let mut want = vec![old.clone()];
    want.extend(middle);
    want.push(new.clone());
    assert_eq!(path, want, "states seen along the write stream");
    if let View::Set(..) = new {
        let isz = LabelSet::load(&SliceLsa::new(&post))
            .unwrap()
            .layout()
            .index_size;
        check_commit_subsets(&pre, &writes, isz, &old, &new);
    }
    cuts
}

/// The last write of a commit is the index block (`isz` bytes, possibly in several
/// transfers). Applies every earlier write, then every subset (up to 2^8) of the
/// 64-byte lines of that block write that change bytes, as a power cut with cache lines
/// written back in any order would leave them.
fn check_commit_subsets(pre: &[u8], writes: &[(u64, Vec<u8>)], isz: u64, old: &View, new: &View) {
    let Some(mut first) = writes.len().checked_sub(1) else {
        return;
    };
    let block = writes[first].0 / isz;
    if block > 1 {
        return;
    }
    // The transfers of that one block write: contiguous, same block, ending the stream.
    while first > 0
        && writes[first - 1].0 / isz == block
        && writes[first - 1].0 + writes[first - 1].1.len() as u64 == writes[first].0
    {
        first -= 1;
    }
    let mut base = pre.to_vec();
    for (offset, data) in &writes[..first] {
        base[*offset as usize..][..data.len()].copy_from_slice(data);
    }
    let before = view(&base);
    let start = writes[first].0 as usize;
    let mut block = Vec::new();
    for (_, data) in &writes[first..] {
        block.extend_from_slice(data);
    }
    let lines: Vec<usize> = (0..block.len().div_ceil(64))
        .filter(|&i| {
            let r = i * 64..((i + 1) * 64).min(block.len());
            base[start + r.start..start + r.end] != block[r.clone()]
        })
        .take(8)
        .collect();
    for mask in 0u32..(1 << lines.len()) {
        let mut img = base.clone();
        for (bit, &i) in lines.iter().enumerate() {
            if mask & (1 << bit) != 0 {
                let r = i * 64..((i + 1) * 64).min(block.len());
                img[start + r.start..start + r.end].copy_from_slice(&block[r]);
            }
        }
        let v = view(&img);
        assert!(
            v == *old || v == *new || v == before,
            "subset {mask:#x} of lines {lines:?} gave {v:?}"
        );
    }
}

/// An area of `size` bytes with labels in slots 0, 2, 3 (slot 1 freed by a delete), and
/// the non-current block holding a different set than the current one.
fn populated(size: usize, v: LabelVersion) -> Vec<u8> {
    let lsa = RecordingLsa::new(vec![0; size], u64::MAX);
    let mut set = LabelSet::init(&lsa, v, false).unwrap();
    for n in 0..4 {
        set = set.create_namespace(&lsa, ns(n, "pre"), COOKIE).unwrap().0;
    }
    set.delete_namespace(&lsa, ns(1, "").uuid).unwrap();
    lsa.snapshot()
}

fn uuid(n: u128) -> Uuid {
    ns(n, "").uuid
}

fn every_operation(size: usize, max_xfer: u64) -> usize {
    let mut cuts = 0;
    for v in [LabelVersion::V1_1, LabelVersion::V1_2] {
        let other = if v == LabelVersion::V1_1 {
            LabelVersion::V1_2
        } else {
            LabelVersion::V1_1
        };
        let pre = populated(size, v);
        cuts += check_op(
            vec![0; size],
            max_xfer,
            |lsa| {
                LabelSet::init(lsa, v, false).unwrap();
            },
            None,
        );
        let load = |lsa: &dyn Lsa| LabelSet::load(lsa).unwrap();
        cuts += check_op(
            pre.clone(),
            max_xfer,
            |lsa| {
                load(lsa)
                    .create_namespace(lsa, ns(9, "new"), COOKIE)
                    .unwrap();
            },
            None,
        );
        cuts += check_op(
            pre.clone(),
            max_xfer,
            |lsa| {
                load(lsa)
                    .update_namespace(lsa, uuid(2), |l| l.set_name("renamed"))
                    .unwrap();
            },
            None,
        );
        cuts += check_op(
            pre.clone(),
            max_xfer,
            |lsa| {
                load(lsa).delete_namespace(lsa, uuid(3)).unwrap();
            },
            None,
        );
        // Updates in an area without a free slot below the label's own: the lowest free
        // slot is past it, never the live slot itself.
        let dense = {
            let lsa = RecordingLsa::new(pre.clone(), u64::MAX);
            load(&lsa)
                .create_namespace(&lsa, ns(1, "refill"), COOKIE)
                .unwrap();
            lsa.snapshot()
        };
        for n in [0, 3] {
            cuts += check_op(
                dense.clone(),
                max_xfer,
                |lsa| {
                    load(lsa)
                        .update_namespace(lsa, uuid(n), |l| l.set_name("moved"))
                        .unwrap();
                },
                None,
            );
        }
        // Two labels freed by one commit (a duplicate UUID).
        let dup = {
            let lsa = RecordingLsa::new(pre.clone(), u64::MAX);
            load(&lsa).add_label(&lsa, ns(2, "dup")).unwrap();
            lsa.snapshot()
        };
        cuts += check_op(
            dup,
            max_xfer,
            |lsa| {
                load(lsa).delete_namespace(lsa, uuid(2)).unwrap();
            },
            None,
        );
        cuts += check_op(
            pre.clone(),
            max_xfer,
            |lsa| {
                LabelSet::init(lsa, v, true).unwrap();
            },
            None,
        );
        // A change of version retires the old index first: old, then no index, then new.
        cuts += check_op(
            pre.clone(),
            max_xfer,
            |lsa| {
                LabelSet::init(lsa, other, true).unwrap();
            },
            Some(View::Uninit),
        );
        cuts += check_op(
            pre.clone(),
            max_xfer,
            |lsa| LabelSet::zero(lsa).unwrap(),
            None,
        );
    }
    cuts
}

#[test]
fn every_operation_on_128k_is_old_or_new_at_every_8_byte_cut() {
    // 64-byte transfers: every index write is 4 transfers, every label 2 or 4.
    let cuts = every_operation(K128, 64);
    eprintln!("128 KiB: {cuts} cut points loaded");
    // Each of the 8 operations per version changes at least a header's seq and checksum.
    assert!(cuts > 2 * 8 * 2, "{cuts}");
}

#[test]
fn every_operation_over_8_byte_transfers_is_old_or_new() {
    // papr_scm serves 8-byte transfers: every write boundary is an 8-byte boundary.
    let cuts = every_operation(4096, 8);
    eprintln!("4 KiB, 8-byte transfers: {cuts} cut points loaded");
    assert!(cuts > 2 * 8 * 2, "{cuts}");
}

#[test]
fn every_operation_on_the_16mib_area_is_old_or_new_at_every_8_byte_cut() {
    let cuts = every_operation(M16, 64 << 10);
    eprintln!("16 MiB: {cuts} cut points loaded");
    assert!(cuts > 2 * 8 * 2, "{cuts}");
}

// ---- random operation sequences against a model, with random power cuts ----

#[derive(Debug, Clone)]
enum Op {
    Create(u8),
    Rename(u8, u8),
    Delete(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<u8>().prop_map(Op::Create),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Rename(a, b)),
        2 => any::<u8>().prop_map(Op::Delete),
    ]
}

type Model = BTreeMap<Uuid, String>;

fn model_of(set: &LabelSet) -> Model {
    set.labels().map(|(_, l)| (l.uuid, l.name_str())).collect()
}

/// Applies `op` to the model; `None` when the operation must be refused.
fn apply(model: &Model, op: &Op, nslot: u32) -> Option<Model> {
    let mut m = model.clone();
    let pick = |k: u8| m.keys().nth(usize::from(k) % m.len().max(1)).copied();
    match op {
        Op::Create(id) => {
            let u = uuid(u128::from(*id % 24));
            if m.contains_key(&u) || m.len() as u32 >= nslot {
                return None;
            }
            m.insert(u, format!("c{id}"));
        }
        Op::Rename(k, name) => {
            let u = pick(*k)?;
            // The new label needs a free slot: the old one stays live until the commit.
            if m.len() as u32 >= nslot {
                return None;
            }
            m.insert(u, format!("r{name}"));
        }
        Op::Delete(k) => {
            let u = pick(*k)?;
            m.remove(&u);
        }
    }
    Some(m)
}

fn run(
    set: &LabelSet,
    lsa: &dyn Lsa,
    op: &Op,
    model: &Model,
) -> Result<LabelSet, super::error::LabelError> {
    let pick = |k: u8| {
        model
            .keys()
            .nth(usize::from(k) % model.len().max(1))
            .copied()
    };
    match op {
        Op::Create(id) => {
            let mut l = ns(u128::from(*id % 24), "");
            l.set_name(&format!("c{id}"))?;
            Ok(set.create_namespace(lsa, l, COOKIE)?.0)
        }
        Op::Rename(k, name) => {
            let u = pick(*k).unwrap_or(Uuid::nil());
            Ok(set
                .update_namespace(lsa, u, |l| l.set_name(&format!("r{name}")))?
                .0)
        }
        Op::Delete(k) => set.delete_namespace(lsa, pick(*k).unwrap_or(Uuid::nil())),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_with_power_cuts_match_a_model(
        v2 in any::<bool>(),
        steps in proptest::collection::vec((op(), proptest::option::of((any::<u16>(), any::<u16>()))), 1..40),
    ) {
        let v = if v2 { LabelVersion::V1_2 } else { LabelVersion::V1_1 };
        // 2 KiB: 12 v1.1 slots or 6 v1.2 slots, so "full" happens.
        let size = 2048;
        let lsa = RecordingLsa::new(vec![0; size], 64);
        LabelSet::init(&lsa, v, false).unwrap();
        let mut image = lsa.snapshot();
        let mut model = Model::new();
        for (op, cut) in steps {
            let set = LabelSet::load(&SliceLsa::new(&image)).unwrap();
            prop_assert_eq!(model_of(&set), model.clone());
            prop_assert_eq!(set.free_slots(), set.nslot() - model.len() as u32);
            let expect = apply(&model, &op, set.nslot());
            let lsa = RecordingLsa::new(image.clone(), 64);
            let result = run(&set, &lsa, &op, &model);
            let writes = lsa.writes();
            match (&expect, &result) {
                (None, Err(_)) => {
                    prop_assert!(writes.is_empty(), "a refused {:?} wrote", op);
                    continue;
                }
                (Some(_), Ok(_)) => {}
                _ => prop_assert!(false, "{:?}: model {:?}, driver {:?}", op, expect, result.map(|s| model_of(&s))),
            }
            let new = expect.unwrap_or_default();
            let Some((w, b)) = cut else {
                image = lsa.snapshot();
                model = new;
                continue;
            };
            // Power cut: the first w writes land, then b bytes (8-byte units) of the next.
            let w = usize::from(w) % (writes.len() + 1);
            for (offset, data) in &writes[..w] {
                image[*offset as usize..][..data.len()].copy_from_slice(data);
            }
            if let Some((offset, data)) = writes.get(w) {
                let n = (usize::from(b) % (data.len() / 8 + 1)) * 8;
                image[*offset as usize..][..n].copy_from_slice(&data[..n]);
            }
            let after = model_of(&LabelSet::load(&SliceLsa::new(&image)).unwrap());
            prop_assert!(after == model || after == new, "{:?} cut at {} gave {:?}", op, w, after);
            model = after;
        }
    }
}
