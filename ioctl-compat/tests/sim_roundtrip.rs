//! The kernel ABI served by this driver from a simulated card: client -> dispatcher ->
//! Admin -> simulator, and back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use ocxlpmem_admin::Admin;
use ocxlpmem_ioctl::card_backend::{AdminBackend, LabelArea};
use ocxlpmem_ioctl::{BackendError, Client, ClientError, Dispatcher, Loopback};
use ocxlpmem_regs::abi::LABEL_AREA_SIZE;
use ocxlpmem_regs::{Chi, CommandArea};
use ocxlpmem_sim::{Fault, SimCard, SimConfig, REGION_BAR4};

struct SimLabels(SimCard);

impl LabelArea for SimLabels {
    fn size(&self) -> u32 {
        LABEL_AREA_SIZE as u32
    }
    fn read(&self, offset: u32, buf: &mut [u8]) -> Result<(), BackendError> {
        self.0
            .region_read(REGION_BAR4, u64::from(offset), buf)
            .map_err(|e| BackendError::new(Errno::EIO, e.to_string()))
    }
    fn write(&self, offset: u32, data: &[u8]) -> Result<(), BackendError> {
        self.0
            .region_write(REGION_BAR4, u64::from(offset), data)
            .map_err(|e| BackendError::new(Errno::EIO, e.to_string()))
    }
}

fn served() -> (SimCard, Client<Loopback<AdminBackend<SimLabels>>>) {
    let card = SimCard::new(SimConfig {
        lpc_size: 32 << 20,
        ..SimConfig::default()
    })
    .unwrap();
    let mmio: Arc<dyn ocxlpmem_regs::Mmio> = Arc::new(card.mmio());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !Chi(mmio.read_u64(0).unwrap()).is_ready() {
        assert!(Instant::now() < deadline, "sim never became ready");
        std::thread::yield_now();
    }
    let admin = Admin::new(mmio).unwrap();
    let backend = AdminBackend::new(admin, SimLabels(card.clone()));
    let client = Client::new(Loopback::new(Dispatcher::new(backend).allow_debug(true)));
    (card, client)
}

#[test]
fn error_logs_stats_smart_and_events_from_the_simulator() {
    let (card, c) = served();
    card.push_error_log(ocxlpmem_sim::ErrorLogEntry {
        log_type: 2,
        action_flags: 0,
        program_reference_code: 0xABC,
        data: vec![7; 16],
    });
    assert_eq!(c.event_check().unwrap() & 2, 2);
    let logs = c.error_log_all(16).unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].0.program_reference_code, 0xABC);
    assert_eq!(logs[0].0.error_log_type, 2);
    assert_eq!(logs[0].1, vec![7; 16]);
    assert_eq!(c.event_check().unwrap() & 2, 0);
    assert_eq!(c.controller_stats().unwrap().life_remaining, 100);
    assert!(c.smart().unwrap().iter().any(|a| a.id == 0xC2));
    assert_eq!(c.mmio_read(0x148).unwrap().to_le_bytes(), *b"SIM 1.0 ");
}

#[test]
fn controller_dump_through_the_abi_matches_the_card() {
    let (card, c) = served();
    let d = c.read_dump(1 << 20, |_| {}).unwrap();
    assert_eq!(d.len() as u64, card.config().effective_dump_size());
}

#[test]
fn label_area_through_ndctl_commands_is_the_lpc_head() {
    let (card, c) = served();
    assert_eq!(c.config_size().unwrap().config_size, 16 << 20);
    c.write_config(8192, b"NAMESPACE_INDEX\0").unwrap();
    let mut raw = [0u8; 16];
    card.region_read(REGION_BAR4, 8192, &mut raw).unwrap();
    assert_eq!(&raw, b"NAMESPACE_INDEX\0");
    let mut past = [0u8; 8];
    assert!(matches!(
        c.read_config((16 << 20) - 4, &mut past),
        Err(ClientError::Ioctl {
            errno: Errno::EINVAL,
            ..
        })
    ));
}

#[test]
fn a_command_timeout_is_etimedout() {
    let (card, c) = served();
    card.inject(Fault::CommandTimeout {
        area: CommandArea::Admin,
        opcode: Some(0x06),
    });
    assert!(matches!(
        c.controller_stats(),
        Err(ClientError::Ioctl {
            errno: Errno::ETIMEDOUT,
            ..
        })
    ));
}
