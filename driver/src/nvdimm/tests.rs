//! The object model over a file-backed card image.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::label::index::LabelVersion;
use crate::media::file::FileWindow;

const M: u64 = 1 << 20;

fn image(dir: &tempfile::TempDir, lpc: u64) -> Arc<dyn MediaWindow> {
    let p = dir.path().join("card.img");
    let w = if p.exists() {
        FileWindow::open(&p, lpc).unwrap()
    } else {
        FileWindow::create(&p, lpc).unwrap()
    };
    Arc::new(w)
}

fn bus(dir: &tempfile::TempDir, serial: u64) -> Bus {
    Bus::from_window(0, image(dir, 128 * M), serial, Some(128 * M)).unwrap()
}

fn spec(size: Option<u64>, name: &str) -> NamespaceSpec {
    NamespaceSpec {
        size,
        name: name.into(),
        ..NamespaceSpec::default()
    }
}

#[test]
fn a_blank_area_has_no_namespaces_and_says_how_to_start() {
    let d = tempfile::tempdir().unwrap();
    let b = bus(&d, 0x77);
    assert_eq!(b.label_summary().unwrap().state, "blank");
    assert!(b.namespaces().unwrap().is_empty());
    let e = b.create_namespace(&spec(Some(16 * M), "x")).unwrap_err();
    assert!(matches!(e, NvdimmError::NoLabels { .. }), "{e:?}");
    assert!(e.hint().unwrap().contains("init-labels"));
    assert_eq!(b.region().size(), 112 * M);
    assert_eq!(b.capacity().unwrap().available, 112 * M);
}

#[test]
fn create_list_find_destroy_and_reuse_space() {
    let d = tempfile::tempdir().unwrap();
    let b = bus(&d, 0x77);
    b.init_labels(LabelVersion::V1_1, false).unwrap();
    let s = b.label_summary().unwrap();
    assert_eq!((s.state, s.version.as_deref()), ("labels", Some("1.1")));
    let a = b.create_namespace(&spec(Some(16 * M), "a")).unwrap();
    assert_eq!((a.offset, a.size, a.mode), (0, 16 * M, "raw"));
    assert!(a.usable && a.state == "active");
    let rest = b.create_namespace(&spec(None, "rest")).unwrap();
    assert_eq!((rest.offset, rest.size), (16 * M, 96 * M));
    let cap = b.capacity().unwrap();
    assert_eq!((cap.available, cap.largest_free_extent), (0, 0));
    let all = b.namespaces().unwrap();
    assert_eq!(
        all.iter().map(|n| n.dev.as_str()).collect::<Vec<_>>(),
        ["namespace0.0", "namespace0.1"]
    );
    assert_eq!(b.find("rest").unwrap().uuid, rest.uuid);
    assert_eq!(b.find("namespace0.0").unwrap().uuid, a.uuid);
    assert_eq!(b.find(&a.uuid.to_string()).unwrap().name, "a");
    let (w, r) = b.namespace_range(rest.uuid).unwrap();
    assert_eq!(r, (16 * M + 16 * M)..(16 * M + 112 * M));
    assert_eq!(w.len(), 128 * M);
    assert_eq!(b.region().window().unwrap().len(), 128 * M);
    // Destroy the first; the next create goes to the lowest free extent.
    b.destroy_namespace(a.uuid).unwrap();
    assert_eq!(b.capacity().unwrap().largest_free_extent, 16 * M);
    let again = b.create_namespace(&spec(None, "again")).unwrap();
    assert_eq!((again.offset, again.size), (0, 16 * M));
    // Everything survives reopening the image.
    drop(b);
    let b = bus(&d, 0x77);
    let names: Vec<String> = b
        .namespaces()
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["again", "rest"]);
}

#[test]
fn bad_requests_are_refused_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let b = bus(&d, 0x77);
    b.init_labels(LabelVersion::V1_2, false).unwrap();
    assert!(matches!(
        b.create_namespace(&spec(Some(8 * M), "small")),
        Err(NvdimmError::TooSmall { .. })
    ));
    assert!(matches!(
        b.create_namespace(&spec(Some(17 * M), "odd")),
        Err(NvdimmError::SizeNotAligned { .. })
    ));
    assert!(matches!(
        b.create_namespace(&NamespaceSpec {
            align: Some(3 * M),
            ..spec(Some(18 * M), "x")
        }),
        Err(NvdimmError::BadAlign { .. })
    ));
    match b.create_namespace(&spec(Some(128 * M), "big")) {
        Err(NvdimmError::NoSpace { asked, largest }) => {
            assert_eq!((asked, largest), (128 * M, 112 * M))
        }
        other => panic!("{other:?}"),
    }
    let n = b.create_namespace(&spec(Some(16 * M), "n")).unwrap();
    assert!(matches!(
        b.create_namespace(&NamespaceSpec {
            uuid: Some(n.uuid),
            ..spec(Some(16 * M), "dup")
        }),
        Err(NvdimmError::Label(_))
    ));
    assert!(matches!(
        b.create_namespace(&spec(Some(16 * M), &"x".repeat(65))),
        Err(NvdimmError::Label(_))
    ));
    assert!(matches!(
        b.destroy_namespace(Uuid::new_v4()),
        Err(NvdimmError::Label(_))
    ));
    assert!(matches!(b.find("nope"), Err(NvdimmError::NotFound { .. })));
    // Re-initialising over valid labels needs force.
    assert!(b.init_labels(LabelVersion::V1_1, false).is_err());
    b.init_labels(LabelVersion::V1_1, true).unwrap();
    assert!(b.namespaces().unwrap().is_empty());
}

#[test]
fn serial_zero_is_one_raw_label_less_namespace() {
    let d = tempfile::tempdir().unwrap();
    let b = bus(&d, 0);
    let all = b.namespaces().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].offset, all[0].size), (0, 112 * M));
    assert_eq!(all[0].state, "label-less");
    assert!(matches!(
        b.create_namespace(&spec(None, "x")),
        Err(NvdimmError::LabelLess)
    ));
    assert!(matches!(
        b.init_labels(LabelVersion::V1_1, false),
        Err(NvdimmError::LabelLess)
    ));
    let (_, r) = b.namespace_range(Uuid::nil()).unwrap();
    assert_eq!(r, (16 * M)..(128 * M));
    assert_eq!(b.label_summary().unwrap().state, "label-less");
}

#[test]
fn labels_of_another_card_are_listed_unusable_and_keep_their_space() {
    let d = tempfile::tempdir().unwrap();
    let first = bus(&d, 0xAAAA);
    first.init_labels(LabelVersion::V1_1, false).unwrap();
    let n = first
        .create_namespace(&spec(Some(32 * M), "theirs"))
        .unwrap();
    drop(first);
    let b = bus(&d, 0xBBBB);
    let all = b.namespaces().unwrap();
    assert_eq!(all.len(), 1);
    assert!(!all[0].usable);
    assert!(all[0].state.contains("CookieMismatch"), "{}", all[0].state);
    assert!(matches!(
        b.namespace_range(n.uuid),
        Err(NvdimmError::Unusable { .. })
    ));
    assert_eq!(b.capacity().unwrap().available, 80 * M);
    assert!(!b.label_summary().unwrap().warnings.is_empty());
}

#[test]
fn windows_of_the_wrong_size_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let w = image(&d, 64 * M);
    assert!(matches!(
        Bus::from_window(0, Arc::clone(&w), 1, Some(128 * M)),
        Err(NvdimmError::WindowSize { .. })
    ));
    let d2 = tempfile::tempdir().unwrap();
    let tiny = image(&d2, 24 * M);
    assert!(matches!(
        Bus::from_window(0, tiny, 1, None),
        Err(NvdimmError::WindowTooSmall { .. })
    ));
}

#[derive(Debug, Clone)]
enum Op {
    Create(u8),
    Destroy(u8),
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random create/destroy sequences against a model: the listing always equals the
    /// model's namespaces, none overlap, and space is never lost.
    #[test]
    fn random_create_destroy_matches_a_model(ops in proptest::collection::vec(
        prop_oneof![(1u8..5).prop_map(Op::Create), any::<u8>().prop_map(Op::Destroy)], 1..16)) {
        let d = tempfile::tempdir().unwrap();
        let b = bus(&d, 0x99);
        b.init_labels(LabelVersion::V1_1, false).unwrap();
        let mut model: BTreeMap<Uuid, u64> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Create(units) => {
                    let size = u64::from(units) * 16 * M;
                    let free: u64 = 112 * M - model.values().sum::<u64>();
                    match b.create_namespace(&spec(Some(size), "p")) {
                        Ok(n) => { model.insert(n.uuid, n.size); }
                        Err(NvdimmError::NoSpace { largest, .. }) => {
                            prop_assert!(largest < size && largest <= free);
                        }
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                }
                Op::Destroy(k) => {
                    if let Some(&u) = model.keys().nth(usize::from(k) % model.len().max(1)) {
                        b.destroy_namespace(u).unwrap();
                        model.remove(&u);
                    }
                }
            }
            let listed = b.namespaces().unwrap();
            let got: BTreeMap<Uuid, u64> = listed.iter().map(|n| (n.uuid, n.size)).collect();
            prop_assert_eq!(&got, &model);
            for w in listed.windows(2) {
                prop_assert!(w[0].offset + w[0].size <= w[1].offset);
            }
            prop_assert_eq!(b.capacity().unwrap().available, 112 * M - model.values().sum::<u64>());
        }
    }
}

#[test]
fn a_bare_label_image_is_edited_offline() {
    let lsa: Arc<dyn crate::label::lsa::Lsa> = Arc::new(crate::label::lsa::MemLsa::new(128 << 10));
    let no_cookie = Bus::from_lsa(0, Arc::clone(&lsa), None, 112 * M);
    no_cookie.init_labels(LabelVersion::V1_1, false).unwrap();
    assert!(matches!(
        no_cookie.create_namespace(&spec(Some(16 * M), "x")),
        Err(NvdimmError::NoCookie)
    ));
    let b = Bus::from_lsa(0, Arc::clone(&lsa), Some(0x42), 112 * M);
    let n = b.create_namespace(&spec(Some(32 * M), "offline")).unwrap();
    assert!(matches!(
        b.namespace_range(n.uuid),
        Err(NvdimmError::NoWindow)
    ));
    // Without a cookie the listing shows what is there, unchecked.
    let listed = no_cookie.namespaces().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].usable);
    assert_eq!(no_cookie.label_summary().unwrap().nslot, Some(1020));
}

/// A file window that reports fixed bad ranges (as a poisoned card would).
#[derive(Debug)]
struct Poisoned(FileWindow, Vec<std::ops::Range<u64>>);

impl MediaWindow for Poisoned {
    fn kind(&self) -> crate::media::MediaKind {
        self.0.kind()
    }
    fn len(&self) -> u64 {
        self.0.len()
    }
    fn base(&self) -> std::ptr::NonNull<u8> {
        self.0.base()
    }
    fn granularity(&self) -> crate::media::Granularity {
        self.0.granularity()
    }
    fn sync(&self, range: std::ops::Range<u64>) -> std::io::Result<()> {
        self.0.sync(range)
    }
    fn bad_ranges(&self) -> Vec<std::ops::Range<u64>> {
        self.1.clone()
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

#[test]
fn each_namespace_reports_its_bad_ranges_relative_to_its_start() {
    let d = tempfile::tempdir().unwrap();
    let f = FileWindow::create(d.path().join("p.img"), 128 * M).unwrap();
    // One bad line in the label area (no namespace), one straddling two namespaces.
    let bad = vec![4096..4160, (16 * M + 16 * M - 64)..(16 * M + 16 * M + 64)];
    let w: Arc<dyn MediaWindow> = Arc::new(Poisoned(f, bad));
    let b = Bus::from_window(0, w, 5, None).unwrap();
    b.init_labels(LabelVersion::V1_1, false).unwrap();
    b.create_namespace(&spec(Some(16 * M), "a")).unwrap();
    b.create_namespace(&spec(Some(16 * M), "b")).unwrap();
    b.create_namespace(&spec(Some(16 * M), "c")).unwrap();
    let all = b.namespaces().unwrap();
    let one = |start: u64, end: u64| vec![std::ops::Range { start, end }];
    assert_eq!(all[0].bad_ranges, one(16 * M - 64, 16 * M));
    assert_eq!(all[1].bad_ranges, one(0, 64));
    assert!(all[2].bad_ranges.is_empty());
}
