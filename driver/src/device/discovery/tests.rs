use super::fake::{Dev, FakeSysfs};
use super::*;

fn bdf(s: &str) -> Bdf {
    s.parse().unwrap()
}

#[test]
fn bdf_parses_and_prints_both_forms() {
    let b = bdf("0000:01:00.1");
    assert_eq!((b.domain, b.bus, b.device, b.function), (0, 1, 0, 1));
    assert_eq!(b.to_string(), "0000:01:00.1");
    assert_eq!(bdf("0a:1f.7").to_string(), "0000:0a:1f.7");
    assert_eq!(bdf("10000:e1:00.0").to_string(), "10000:e1:00.0");
    for bad in [
        "",
        "0000:01:00",
        "0000:01:20.0",
        "0000:01:00.8",
        "x:01:00.0",
        "1:2:3:4.0",
    ] {
        let e = bad.parse::<Bdf>().unwrap_err();
        assert!(e.to_string().contains("not a PCI address"), "{bad}: {e}");
    }
    assert_eq!(serde_json::to_string(&b).unwrap(), "\"0000:01:00.1\"");
    assert_eq!(serde_json::from_str::<Bdf>("\"0000:01:00.1\"").unwrap(), b);
    assert!(serde_json::from_str::<Bdf>("\"01:00\"").is_err());
}

#[test]
fn scan_groups_functions_into_cards_and_reads_each_attribute() {
    let s = FakeSysfs::new();
    s.add(Dev::card("0000:01:00.0", Some("ocxl"), Some(4)))
        .add(Dev {
            numa: 8,
            ..Dev::card("0000:01:00.1", Some("vfio-pci"), Some(5))
        })
        .add(Dev::card("0030:02:00.1", None, Some(9)))
        .add(Dev {
            ids: (0x8086, 0x1234),
            ..Dev::card("0000:00:1f.0", Some("nvme"), Some(1))
        });
    std::fs::write(s.dev_dir("0030:02:00.1").join("numa_node"), "-1\n").unwrap();
    std::fs::write(
        s.dev_dir("0030:02:00.1").join("driver_override"),
        "vfio-pci\n",
    )
    .unwrap();
    let d = scan(s.root()).unwrap();
    assert_eq!(d.cards.len(), 2, "{d:#?}");
    let c = &d.cards[0];
    assert_eq!(c.slot.to_string(), "0000:01:00");
    assert_eq!(c.functions.len(), 2);
    let f0 = &c.functions[0];
    assert_eq!(
        (f0.function, f0.binding, f0.carries_pmem_afu),
        (0, Binding::Ocxl, false)
    );
    let f1 = c.pmem_function().unwrap();
    assert_eq!(f1.binding, Binding::VfioPci);
    assert_eq!(f1.driver.as_deref(), Some("vfio-pci"));
    assert_eq!(f1.numa_node, Some(8));
    assert!(f1.carries_pmem_afu);
    assert_eq!(f1.driver_override, None);
    let g = f1.iommu_group.as_ref().unwrap();
    assert_eq!((g.number, g.viable, g.peers.len()), (5, true, 0));
    let other = d.cards[1].pmem_function().unwrap();
    assert_eq!(other.bdf.to_string(), "0030:02:00.1");
    assert_eq!(other.binding, Binding::None);
    assert_eq!(other.numa_node, None);
    assert_eq!(other.driver_override.as_deref(), Some("vfio-pci"));
    // The scan is JSON-printable with stable names.
    let j = serde_json::to_value(&d).unwrap();
    assert_eq!(j["cards"][0]["functions"][1]["binding"], "vfio-pci");
    assert_eq!(j["cards"][0]["functions"][1]["bdf"], "0000:01:00.1");
    assert_eq!(j["cards"][1]["functions"][0]["binding"], "none");
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn group_peers_and_the_kernel_viability_rule() {
    let s = FakeSysfs::new();
    s.add(Dev::card("0000:01:00.1", Some("vfio-pci"), Some(7)))
        .add(Dev::card("0000:01:00.0", Some("ocxl"), Some(7)))
        .add(Dev {
            bridge: true,
            ids: (0x1014, 0x04c1),
            ..Dev::card("0000:00:00.0", Some("pcieport"), Some(7))
        })
        .add(Dev {
            ids: (0x1b36, 0x0001),
            ..Dev::card("0000:00:02.0", Some("pci-stub"), Some(7))
        });
    let d = scan(s.root()).unwrap();
    let f1 = d.function(&bdf("0000:01:00.1")).unwrap();
    let g = f1.iommu_group.as_ref().unwrap();
    let names: Vec<_> = g.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["0000:00:00.0", "0000:00:02.0", "0000:01:00.0"]);
    assert!(g.peers[0].is_bridge && g.peers[0].keeps_group_viable);
    assert!(g.peers[1].keeps_group_viable);
    assert!(!g.peers[2].keeps_group_viable);
    assert!(!g.viable);
    let e = d.usable_through_vfio(&f1.bdf).unwrap_err();
    assert!(
        matches!(e, DiscoveryError::GroupNotViable { group: 7, .. }),
        "{e}"
    );
    let m = e.to_string();
    assert!(
        m.contains("0000:01:00.0 (ocxl)") && !m.contains("pcieport"),
        "{m}"
    );
    // Unbinding the blocker makes the group viable.
    s.set_driver("0000:01:00.0", None);
    let d = scan(s.root()).unwrap();
    assert!(d.cards[0].functions[1].iommu_group.as_ref().unwrap().viable);
    d.usable_through_vfio(&bdf("0000:01:00.1")).unwrap();
}

#[test]
fn viability_rule_table() {
    assert!(member_keeps_group_viable(None, false));
    assert!(member_keeps_group_viable(Some("vfio-pci"), false));
    assert!(member_keeps_group_viable(Some("mlx5_vfio_pci"), false));
    assert!(member_keeps_group_viable(Some("pci-stub"), false));
    assert!(member_keeps_group_viable(Some("pcieport"), true));
    assert!(!member_keeps_group_viable(Some("pcieport"), false));
    assert!(!member_keeps_group_viable(Some("ocxl"), false));
    assert!(!member_keeps_group_viable(Some("nvme"), false));
}

#[test]
fn bridge_detection_prefers_the_config_header_type() {
    let s = FakeSysfs::new();
    s.add(Dev::card("0000:00:00.0", None, None));
    let dir = s.dev_dir("0000:00:00.0");
    assert!(!is_bridge(&dir));
    let mut cfg = vec![0u8; 64];
    cfg[0x0e] = 0x81; // multi-function, header type 1
    std::fs::write(dir.join("config"), &cfg).unwrap();
    assert!(is_bridge(&dir));
    cfg[0x0e] = 0x80;
    std::fs::write(dir.join("config"), &cfg).unwrap();
    std::fs::write(dir.join("class"), "0x060400\n").unwrap();
    assert!(!is_bridge(&dir), "config space wins over the class code");
    std::fs::remove_file(dir.join("config")).unwrap();
    assert!(is_bridge(&dir));
}

#[test]
fn not_found_lists_what_was_found() {
    let s = FakeSysfs::new();
    s.add(Dev::card("0000:01:00.0", None, Some(1)))
        .add(Dev::card("0000:01:00.1", None, Some(1)));
    let d = scan(s.root()).unwrap();
    let e = d.function(&bdf("0000:05:00.1")).unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, DiscoveryError::NotFound { .. }));
    assert!(
        m.contains("0000:05:00.1") && m.contains("found: 0000:01:00.0, 0000:01:00.1"),
        "{m}"
    );
    let empty = FakeSysfs::new();
    let d = scan(empty.root()).unwrap();
    assert!(d.cards.is_empty());
    let e = d.pmem_function(None).unwrap_err();
    assert!(matches!(e, DiscoveryError::NoCard { .. }), "{e}");
    assert!(e.to_string().contains("lspci -d 1014:0625"), "{e}");
    let e = d.function(&bdf("0000:01:00.1")).unwrap_err();
    assert!(e.to_string().contains("found: none"), "{e}");
}

#[test]
fn missing_sysfs_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let e = scan(t.path().join("nope")).unwrap_err();
    assert!(matches!(e, DiscoveryError::NoPciBus { .. }));
    assert!(e.to_string().contains("mount -t sysfs"), "{e}");
}

#[test]
fn pmem_function_picks_the_only_card_or_asks_for_one() {
    let s = FakeSysfs::new();
    s.add(Dev::card("0000:01:00.1", None, Some(1)));
    let d = scan(s.root()).unwrap();
    assert_eq!(
        d.pmem_function(None).unwrap().bdf.to_string(),
        "0000:01:00.1"
    );
    s.add(Dev::card("0000:02:00.1", None, Some(2)));
    let d = scan(s.root()).unwrap();
    let e = d.pmem_function(None).unwrap_err();
    assert!(matches!(e, DiscoveryError::Ambiguous { .. }), "{e}");
    assert!(e.to_string().contains("0000:01:00, 0000:02:00"), "{e}");
    let slot = bdf("0000:02:00.0").slot();
    assert_eq!(
        d.pmem_function(Some(slot)).unwrap().bdf.to_string(),
        "0000:02:00.1"
    );
}

#[test]
fn wrong_driver_and_missing_group_name_the_fix() {
    let s = FakeSysfs::new();
    s.add(Dev::card("0000:01:00.1", Some("ocxl"), Some(3)))
        .add(Dev::card("0000:02:00.1", Some("vfio-pci"), None));
    let d = scan(s.root()).unwrap();
    // Alone in its group: viable (the group is about the peers), but on the wrong driver.
    let f = d.function(&bdf("0000:01:00.1")).unwrap();
    assert!(f.iommu_group.as_ref().unwrap().viable);
    let e = d.usable_through_vfio(&bdf("0000:01:00.1")).unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, DiscoveryError::WrongDriver { .. }), "{m}");
    let dev = s.root().join("bus/pci/devices/0000:01:00.1");
    for want in [
        "bound to ocxl".to_string(),
        "modprobe vfio-pci".to_string(),
        format!("echo 0000:01:00.1 > {}/driver/unbind", dev.display()),
        format!("echo vfio-pci > {}/driver_override", dev.display()),
        format!(
            "echo 0000:01:00.1 > {}/bus/pci/drivers_probe",
            s.root().display()
        ),
    ] {
        assert!(m.contains(&want), "missing {want:?} in {m}");
    }
    let e = d.usable_through_vfio(&bdf("0000:02:00.1")).unwrap_err();
    assert!(matches!(e, DiscoveryError::NoIommuGroup { .. }), "{e}");
    assert!(d
        .warnings
        .iter()
        .any(|w| w.contains("0000:02:00.1: no IOMMU group")));
}

#[test]
fn unexpected_layouts_are_warned_about() {
    let s = FakeSysfs::new();
    s.add(Dev::card("0000:01:00.0", None, Some(1)))
        .add(Dev::card("0000:01:00.2", None, Some(1)))
        .add(Dev::card("0000:03:00.1", Some("ocxl"), Some(2)));
    std::fs::write(
        s.dev_dir("0000:03:00.1").join("driver_override"),
        "vfio-pci\n",
    )
    .unwrap();
    // A device whose ids cannot be read.
    let broken = s.dev_dir("0000:04:00.0");
    std::fs::create_dir_all(&broken).unwrap();
    std::os::unix::fs::symlink(&broken, s.root().join("bus/pci/devices/0000:04:00.0")).unwrap();
    let d = scan(s.root()).unwrap();
    let w = d.warnings.join("\n");
    assert!(w.contains("card 0000:01:00: no function 1"), "{w}");
    assert!(w.contains("0000:01:00.2: unexpected function 2"), "{w}");
    assert!(
        w.contains("driver_override is vfio-pci but it is bound to ocxl"),
        "{w}"
    );
    assert!(
        w.contains("0000:04:00.0: vendor/device ids unreadable"),
        "{w}"
    );
    assert_eq!(d.warnings.len(), 4, "{w}");
}
