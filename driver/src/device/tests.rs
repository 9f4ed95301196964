//! Bring-up against the in-process simulator, with its faults and with transports that
//! distort what the card shows (hidden DVSECs, a foreign device, a stuck window).

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use ocxlpmem_regs::{offsets, Chi, Hci, Mmio, MmioError};
use ocxlpmem_sim::{ErrorLogEntry as SimLog, Fault, SimCard, SimConfig};

use super::*;
use crate::transport::sim::SimTransport;
use crate::transport::{IrqInfo, RegionInfo, RegionMap, Result, Transport};

fn card_with(cfg: SimConfig) -> (SimCard, Arc<dyn Transport>) {
    let card = SimCard::new(cfg).unwrap();
    let t: Arc<dyn Transport> = Arc::new(SimTransport::new(card.clone()));
    (card, t)
}

fn small() -> SimConfig {
    SimConfig {
        lpc_size: 32 << 20,
        ..SimConfig::default()
    }
}

fn quick() -> CardOptions {
    CardOptions {
        ready_timeout: Some(Duration::from_secs(10)),
        ..CardOptions::default()
    }
}

/// Rewrites the bytes of a config read at an offset.
type ConfigTweak = Box<dyn Fn(u64, &mut [u8]) + Send + Sync>;

/// A transport that passes everything to the simulator except what `tweak` changes in
/// config reads (`Some(bytes)` replaces the bytes read at an offset).
struct Tweaked {
    inner: SimTransport,
    tweak: ConfigTweak,
}

impl std::fmt::Debug for Tweaked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tweaked")
    }
}

impl Transport for Tweaked {
    fn describe(&self) -> String {
        "tweaked sim".into()
    }
    fn config_read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.inner.config_read(offset, buf)?;
        (self.tweak)(offset, buf);
        Ok(())
    }
    fn config_write(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.inner.config_write(offset, data)
    }
    fn region_info(&self, index: u32) -> Result<RegionInfo> {
        self.inner.region_info(index)
    }
    fn region_read(&self, index: u32, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.inner.region_read(index, offset, buf)
    }
    fn region_write(&self, index: u32, offset: u64, data: &[u8]) -> Result<()> {
        self.inner.region_write(index, offset, data)
    }
    fn map_region(&self, index: u32, offset: u64, len: u64) -> Result<RegionMap> {
        self.inner.map_region(index, offset, len)
    }
    fn irq_info(&self, index: u32) -> Result<IrqInfo> {
        self.inner.irq_info(index)
    }
    fn set_irq_eventfds(&self, index: u32, fds: &[OwnedFd]) -> Result<()> {
        self.inner.set_irq_eventfds(index, fds)
    }
    fn reset(&self) -> Result<()> {
        self.inner.reset()
    }
}

fn tweaked(
    cfg: SimConfig,
    tweak: impl Fn(u64, &mut [u8]) + Send + Sync + 'static,
) -> (SimCard, Arc<dyn Transport>) {
    let card = SimCard::new(cfg).unwrap();
    let t: Arc<dyn Transport> = Arc::new(Tweaked {
        inner: SimTransport::new(card.clone()),
        tweak: Box::new(tweak),
    });
    (card, t)
}

/// Old vfio-pci: nothing past the standard header.
fn hide_extended(offset: u64, buf: &mut [u8]) {
    if offset >= 0x100 {
        buf.fill(0);
    }
}

#[test]
fn brings_up_the_simulated_card_from_its_config_space() {
    let cfg = SimConfig {
        serial: 0x1234_5678_9abc_def0,
        ..small()
    };
    let (sim, t) = card_with(cfg.clone());
    let card = Card::open(t, &quick()).unwrap();
    let info = card.info();
    assert_eq!((info.vendor_id, info.device_id), (0x1014, 0x0625));
    assert_eq!(info.serial, 0x1234_5678_9abc_def0);
    assert_eq!(info.serial_source, SerialSource::Function1);
    let afu = info.afu.as_ref().unwrap();
    assert_eq!(afu.name, "IBM,SCM");
    assert_eq!(afu, &sim.afu_descriptor());
    assert_eq!(
        info.mmio,
        MmioLocation {
            bar: 0,
            offset: 0,
            size: cfg.layout.mmio_size
        }
    );
    assert_eq!(info.lpc_size, Some(32 << 20));
    assert_eq!(info.ccap0.bits(), cfg.ccap0);
    assert_eq!(info.ccap1.bits(), cfg.ccap1);
    assert_eq!(
        info.fw_version,
        String::from_utf8_lossy(&cfg.fwver).trim_end()
    );
    assert!(info.ready.unwrap().chi.is_ready());
    assert!(info.not_ready.is_none());
    assert!(info.recovered.is_empty());
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
    assert!(sim.afu_enabled(), "bring-up enables the AFU");
    // The bring-up heartbeat reached the card.
    assert_eq!(sim.counters().commands.get(&0x00), Some(&1));
    card.admin().heartbeat().unwrap();
    let json = info.to_json();
    assert_eq!(json["serial"], 0x1234_5678_9abc_def0_u64);
    assert_eq!(json["afu"]["name"], "IBM,SCM");
}

#[test]
fn mappable_command_areas_are_used_without_traps() {
    let cfg = SimConfig {
        mmap_command_areas: true,
        ..small()
    };
    let (sim, t) = card_with(cfg);
    let card = Card::open(t, &quick()).unwrap();
    assert!(!card.info().mmio_mapped.is_empty());
    let data = card.admin().admin_layout().data_offset;
    assert!(
        card.info().mmio_mapped.iter().any(|r| r.contains(&data)),
        "the admin data buffer {data:#x} is mapped: {:?}",
        card.info().mmio_mapped
    );
    let before = sim.counters().command_area_accesses;
    card.admin().stats().unwrap();
    let mapped_traps = sim.counters().command_area_accesses - before;
    // Without mapping, the same command traps.
    let (sim2, t2) = card_with(SimConfig {
        mmap_command_areas: true,
        ..small()
    });
    let opts = CardOptions {
        map_mmio: false,
        ..quick()
    };
    let card2 = Card::open(t2, &opts).unwrap();
    assert!(card2.info().mmio_mapped.is_empty());
    let before = sim2.counters().command_area_accesses;
    card2.admin().stats().unwrap();
    let trapped = sim2.counters().command_area_accesses - before;
    assert!(
        mapped_traps < trapped,
        "mapped {mapped_traps} traps, unmapped {trapped}"
    );
}

#[test]
fn every_access_is_bounds_checked_against_the_global_mmio_size() {
    let (_sim, t) = card_with(small());
    let card = Card::open(t, &quick()).unwrap();
    let size = card.mmio().size();
    assert!(matches!(
        card.mmio().read_u64(size),
        Err(MmioError::OutOfBounds { .. })
    ));
    assert!(matches!(
        card.mmio().write_u64(size - 4, 0),
        Err(MmioError::Misaligned { .. })
    ));
    let mut buf = [0u8; 16];
    assert!(card.mmio().read_bytes(size - 8, &mut buf).is_err());
}

#[test]
fn never_ready_names_the_missing_bits_and_shows_the_error_log() {
    let (sim, t) = card_with(small());
    sim.inject(Fault::MemoryNeverAvailable);
    sim.push_error_log(SimLog {
        log_type: 1,
        action_flags: 0,
        program_reference_code: 0xBEEF,
        data: vec![1, 2, 3],
    });
    let opts = CardOptions {
        ready_timeout: Some(Duration::from_millis(30)),
        ..CardOptions::default()
    };
    let e = Card::open(t, &opts).unwrap_err();
    match &e {
        DeviceError::NotReady {
            missing, log, chi, ..
        } => {
            assert_eq!(*missing, "MA");
            assert_eq!(chi & Chi::MA, 0);
            assert_eq!(log.len(), 1);
            assert_eq!(log[0].program_reference_code, 0xBEEF);
        }
        other => panic!("{other:?}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("MA never set") && text.contains("0xbeef"),
        "{text}"
    );
    assert!(e.hint().is_some());
    // A controller that never comes up cannot serve its log: the wait still ends on time.
    let (sim, t) = card_with(small());
    sim.inject(Fault::NeverReady);
    sim.push_error_log(SimLog {
        log_type: 1,
        action_flags: 0,
        program_reference_code: 1,
        data: Vec::new(),
    });
    match Card::open(t, &opts) {
        Err(DeviceError::NotReady { missing, log, .. }) => {
            assert!(missing.contains("CRDY"), "{missing}");
            assert!(log.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // A diagnostic open still gets the admin handle and says what is wrong.
    let (sim, t) = card_with(small());
    sim.inject(Fault::MemoryNeverAvailable);
    sim.push_error_log(SimLog {
        log_type: 1,
        action_flags: 0,
        program_reference_code: 7,
        data: Vec::new(),
    });
    let diag = CardOptions {
        require_ready: false,
        ..opts.clone()
    };
    let card = Card::open(t, &diag).unwrap();
    assert!(card.info().ready.is_none());
    assert!(card
        .info()
        .not_ready
        .as_ref()
        .unwrap()
        .contains("MA never set"));
    assert_eq!(
        card.admin().error_log_all().unwrap().len(),
        1,
        "a diagnostic open leaves the log for the user"
    );
}

#[test]
fn fatal_states_fail_at_once() {
    for fault in [Fault::FirmwareFatal, Fault::HardwareFatal] {
        let (sim, t) = card_with(small());
        sim.inject(fault);
        // A bound that would hang the test if the wait used it.
        let opts = CardOptions {
            ready_timeout: Some(Duration::from_secs(600)),
            ..CardOptions::default()
        };
        match Card::open(t, &opts) {
            Err(DeviceError::Fatal { chi, names, .. }) => {
                assert_ne!(chi & (Chi::CFFS | Chi::CHFS), 0);
                assert!(names.iter().any(|n| *n == "CFFS" || *n == "CHFS"));
            }
            other => panic!("{fault:?}: {other:?}"),
        }
    }
}

#[test]
fn a_removed_card_is_reported_gone() {
    let (sim, t) = card_with(small());
    sim.inject(Fault::SurpriseRemoval);
    let e = Card::open(t, &quick()).unwrap_err();
    assert!(matches!(e, DeviceError::ConfigGone { .. }), "{e:?}");
    assert!(e.to_string().contains("gone"));
}

#[test]
fn a_previous_owners_leftovers_are_cleaned_and_listed() {
    let (sim, t) = card_with(small());
    sim.inject(Fault::StaleAcra);
    sim.inject(Fault::StaleDumpPending);
    sim.mmio().write_u64(offsets::HCI, Hci::FDE).unwrap();
    let card = Card::open(t, &quick()).unwrap();
    let r = &card.info().recovered;
    assert!(
        r.contains(&Recovery::StaleResponse { area: "admin" }),
        "{r:?}"
    );
    assert!(r.contains(&Recovery::UncollectedDump), "{r:?}");
    assert!(r.contains(&Recovery::FirmwareDebugLeftOn), "{r:?}");
    let chi = card.mmio().read_u64(offsets::CHI).unwrap();
    assert_eq!(chi & (Chi::ACRA | Chi::CDA), 0);
    assert_eq!(card.mmio().read_u64(offsets::HCI).unwrap() & Hci::FDE, 0);
    card.admin().heartbeat().unwrap();
    // Without recovery the leftovers stay (the mailbox still copes with the response).
    let (sim, t) = card_with(small());
    sim.inject(Fault::StaleDumpPending);
    let opts = CardOptions {
        recover: false,
        ..quick()
    };
    let card = Card::open(t, &opts).unwrap();
    assert!(card.info().recovered.is_empty());
    assert_ne!(card.mmio().read_u64(offsets::CHI).unwrap() & Chi::CDA, 0);
}

#[test]
fn serial_zero_warns_and_falls_back_to_function_0() {
    let (_sim, t) = card_with(SimConfig {
        serial: 0,
        ..small()
    });
    let card = Card::open(Arc::clone(&t), &quick()).unwrap();
    assert_eq!(card.info().serial_source, SerialSource::None);
    assert!(card
        .info()
        .warnings
        .iter()
        .any(|w| w.contains("label-less")));
    drop(card);
    // Function 0's config space (as sysfs would give it) carries the serial.
    let mut f0 = vec![0u8; 4096];
    f0[0x100..0x104].copy_from_slice(
        &ocxlpmem_regs::config::ext_cap_header(ocxlpmem_regs::config::EXT_CAP_DSN, 1, 0)
            .to_le_bytes(),
    );
    f0[0x104..0x108].copy_from_slice(&0xdead_beef_u32.to_le_bytes());
    f0[0x108..0x10c].copy_from_slice(&0x0000_0042_u32.to_le_bytes());
    let opts = CardOptions {
        function0_config: Some(config::SavedConfig {
            source: "function 0".into(),
            bytes: f0,
        }),
        ..quick()
    };
    let card = Card::open(t, &opts).unwrap();
    assert_eq!(card.info().serial, 0x42_dead_beef);
    assert_eq!(card.info().serial_source, SerialSource::Function0);
}

#[test]
fn hidden_dvsecs_are_named_and_a_given_location_works_around_them() {
    let (_sim, t) = tweaked(small(), hide_extended);
    let e = Card::open(Arc::clone(&t), &quick()).unwrap_err();
    assert!(matches!(e, DeviceError::DvsecHidden { .. }), "{e:?}");
    assert!(e.to_string().contains("vfio-pci"));
    assert!(e.hint().unwrap().contains("--mmio"));
    let opts = CardOptions {
        mmio_location: Some("0:0:0x10000".parse().unwrap()),
        lpc_size: Some(32 << 20),
        ..quick()
    };
    let card = Card::open(Arc::clone(&t), &opts).unwrap();
    assert!(card.info().afu.is_none());
    assert_eq!(card.info().lpc_size, Some(32 << 20));
    assert!(card.info().warnings.iter().any(|w| w.contains("DVSEC")));
    card.admin().heartbeat().unwrap();
    drop(card);
    // A location that does not fit BAR 0.
    let opts = CardOptions {
        mmio_location: Some("0:0x8:0x1000000000".parse().unwrap()),
        ..quick()
    };
    let e = Card::open(t, &opts).unwrap_err();
    assert!(matches!(e, DeviceError::BadMmioLocation { .. }), "{e:?}");
}

#[test]
fn another_device_is_refused_by_its_ids() {
    let (_sim, t) = tweaked(small(), |offset, buf| {
        if offset == 0 && buf.len() >= 2 {
            buf[..2].copy_from_slice(&0x8086u16.to_le_bytes());
        }
    });
    let e = Card::open(t, &quick()).unwrap_err();
    assert!(
        matches!(e, DeviceError::NotACard { vendor: 0x8086, .. }),
        "{e:?}"
    );
}

#[test]
fn a_stuck_afu_information_window_times_out() {
    // Bit 31 of the offset register never reads 1.
    let (sim, t) = card_with(small());
    drop(t);
    let probe: Arc<dyn Transport> = Arc::new(SimTransport::new(sim.clone()));
    let caps = config::ext_caps(&config::TransportConfig(probe.as_ref())).unwrap();
    let all = config::dvsecs(&config::TransportConfig(probe.as_ref()), &caps).unwrap();
    let info_at = all
        .iter()
        .find(|d| d.id == ocxlpmem_regs::config::dvsec::ID_AFU_INFO)
        .unwrap()
        .offset;
    let stuck = info_at + ocxlpmem_regs::config::dvsec::afu_info::OFFSET;
    let t: Arc<dyn Transport> = Arc::new(Tweaked {
        inner: SimTransport::new(sim),
        tweak: Box::new(move |offset, buf| {
            if offset == stuck && buf.len() == 4 {
                buf[3] &= 0x7f;
            }
        }),
    });
    let opts = CardOptions {
        afu_info_timeout: Duration::from_millis(20),
        ..quick()
    };
    let e = Card::open(t, &opts).unwrap_err();
    assert!(
        matches!(e, DeviceError::AfuInfoTimeout { offset: 0, .. }),
        "{e:?}"
    );
}

#[test]
fn reset_runs_the_readiness_sequence_again() {
    let (sim, t) = card_with(SimConfig {
        crdy_delay: Duration::from_millis(20),
        ma_delay: Duration::from_millis(20),
        ..small()
    });
    let mut card = Card::open(t, &quick()).unwrap();
    let ready = card.reset(&quick()).unwrap();
    assert!(ready.polls > 1, "the card was not ready right after reset");
    card.admin().heartbeat().unwrap();
    assert!(sim.counters().commands.get(&0x00).copied().unwrap_or(0) >= 2);
}
