//! Client -> request numbers -> dispatcher -> backend round trips, through the same
//! seam a kernel device uses (the argument bytes and the caller's buffer addresses).

use std::sync::Mutex;

use nix::errno::Errno;
use ocxlpmem_ioctl::abi::{ControllerStats, FwDebug};
use ocxlpmem_ioctl::dispatch::SliceMemory;
use ocxlpmem_ioctl::number::card;
use ocxlpmem_ioctl::{
    Backend, BackendError, Client, ClientError, Dispatcher, ErrorLogRecord, Loopback,
};
use ocxlpmem_regs::payload::smart::Attribute;

#[derive(Default)]
struct Fake {
    logs: Mutex<Vec<ErrorLogRecord>>,
    dump: Vec<u8>,
    labels: Mutex<Vec<u8>>,
    regs: Mutex<[u64; 8]>,
    completed: Mutex<bool>,
}

impl Backend for Fake {
    fn error_log(&self) -> Result<Option<ErrorLogRecord>, BackendError> {
        Ok(self.logs.lock().unwrap().pop())
    }
    fn controller_dump(&self) -> Result<(), BackendError> {
        Ok(())
    }
    fn controller_dump_data(&self, offset: u32, buf: &mut [u8]) -> Result<usize, BackendError> {
        let rest = self.dump.get(offset as usize..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }
    fn controller_dump_complete(&self) -> Result<(), BackendError> {
        *self.completed.lock().unwrap() = true;
        Ok(())
    }
    fn controller_stats(&self) -> Result<ControllerStats, BackendError> {
        Ok(ControllerStats {
            reset_count: 3,
            life_remaining: 99,
            media_write_count: 1234,
            ..Default::default()
        })
    }
    fn event_flags(&self) -> Result<u64, BackendError> {
        Ok(if self.logs.lock().unwrap().is_empty() {
            0
        } else {
            2
        })
    }
    fn request_health(&self) -> Result<(), BackendError> {
        Err(BackendError::new(Errno::ETIMEDOUT, "no answer"))
    }
    fn fw_debug(&self, req: &FwDebug, data: &mut [u8]) -> Result<(), BackendError> {
        for b in data.iter_mut() {
            *b = b.wrapping_add(req.debug_action as u8);
        }
        Ok(())
    }
    fn mmio_read(&self, offset: u64) -> Result<u64, BackendError> {
        self.regs
            .lock()
            .unwrap()
            .get(offset as usize / 8)
            .copied()
            .ok_or(BackendError::new(Errno::EINVAL, "out of range"))
    }
    fn mmio_write(&self, offset: u64, value: u64) -> Result<(), BackendError> {
        let mut r = self.regs.lock().unwrap();
        let slot = r
            .get_mut(offset as usize / 8)
            .ok_or(BackendError::new(Errno::EINVAL, "out of range"))?;
        *slot = value;
        Ok(())
    }
    fn shutdown(&self) -> Result<(), BackendError> {
        Ok(())
    }
    fn label_geometry(&self) -> (u32, u32) {
        (self.labels.lock().unwrap().len() as u32, 4096)
    }
    fn label_read(&self, offset: u32, buf: &mut [u8]) -> Result<(), BackendError> {
        let l = self.labels.lock().unwrap();
        buf.copy_from_slice(&l[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }
    fn label_write(&self, offset: u32, data: &[u8]) -> Result<(), BackendError> {
        let mut l = self.labels.lock().unwrap();
        l[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn smart(&self) -> Result<Vec<Attribute>, BackendError> {
        Ok(vec![Attribute {
            id: 0xC2,
            current: 100,
            raw: 41,
            ..Default::default()
        }])
    }
}

fn fake() -> Fake {
    let mut f = Fake {
        dump: (0..70_000u32).map(|i| i as u8).collect(),
        ..Default::default()
    };
    *f.labels.get_mut().unwrap() = vec![0u8; 64 * 1024];
    f.logs.get_mut().unwrap().push(ErrorLogRecord {
        log_identifier: 7,
        log_type: 1,
        action_flags: 1 << 23,
        fw_revision: *b"SIM 1.0 ",
        data: vec![0xAB; 24],
        ..Default::default()
    });
    f
}

fn client(debug: bool) -> Client<Loopback<Fake>> {
    Client::new(Loopback::new(Dispatcher::new(fake()).allow_debug(debug)))
}

#[test]
fn error_log_entries_then_end_marker() {
    let c = client(false);
    let (log, data) = c.error_log(0x100).unwrap().unwrap();
    assert_eq!(log.log_identifier, 7);
    assert_eq!(log.error_log_type, 1);
    assert_eq!(log.buf_size, 0x40 + 24);
    assert_eq!(log.fw_revision_text(), "SIM 1.0 ");
    assert_eq!(data, vec![0xAB; 24]);
    assert!(c.error_log(0x100).unwrap().is_none());
}

#[test]
fn error_log_data_is_cut_to_the_callers_buffer() {
    let c = client(false);
    let (_, data) = c.error_log(8).unwrap().unwrap();
    assert_eq!(data.len(), 8);
}

#[test]
fn whole_dump_is_fetched_in_chunks_and_completed() {
    let c = client(false);
    let mut calls = 0;
    let d = c.read_dump(1 << 20, |_| calls += 1).unwrap();
    assert_eq!(d.len(), 70_000);
    assert_eq!(d[65_535], (65_535u32) as u8);
    assert_eq!(calls, 2);
    assert!(*c.device().dispatcher().backend().completed.lock().unwrap());
}

#[test]
fn stats_events_and_errors_cross_the_boundary() {
    let c = client(false);
    let s = c.controller_stats().unwrap();
    assert_eq!(
        (s.reset_count, s.life_remaining, s.media_write_count),
        (3, 99, 1234)
    );
    assert_eq!(c.event_check().unwrap(), 2);
    match c.request_health() {
        Err(ClientError::Ioctl { errno, .. }) => assert_eq!(errno, Errno::ETIMEDOUT),
        other => panic!("expected ETIMEDOUT, got {other:?}"),
    }
}

#[test]
fn debug_ioctls_are_refused_unless_enabled() {
    let c = client(false);
    assert!(matches!(
        c.mmio_read(0),
        Err(ClientError::Ioctl {
            errno: Errno::EPERM,
            ..
        })
    ));
    let c = client(true);
    c.mmio_write(0x10, 0x55).unwrap();
    assert_eq!(c.mmio_read(0x10).unwrap(), 0x55);
    let mut data = [1u8, 2, 3];
    c.fw_debug(2, 0, 0, 0, &mut data).unwrap();
    assert_eq!(data, [3, 4, 5]);
    c.shutdown().unwrap();
}

#[test]
fn label_area_round_trips_across_max_xfer_chunks() {
    let c = client(false);
    let cs = c.config_size().unwrap();
    assert_eq!((cs.config_size, cs.max_xfer), (64 * 1024, 4096));
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    c.write_config(100, &data).unwrap();
    let mut back = vec![0u8; data.len()];
    c.read_config(100, &mut back).unwrap();
    assert_eq!(back, data);
}

#[test]
fn label_access_past_the_area_is_einval() {
    let c = client(false);
    let mut buf = [0u8; 16];
    let e = c.read_config(64 * 1024 - 8, &mut buf).unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Ioctl {
                errno: Errno::EINVAL,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn smart_through_nd_cmd_call() {
    let c = client(false);
    let a = c.smart().unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].id, a[0].raw), (0xC2, 41));
}

#[test]
fn dispatcher_validates_reserved_fields_sizes_and_pointers() {
    let d = Dispatcher::new(fake());
    let mut mem = SliceMemory::empty();
    // Unknown request: EINVAL, as the proposed driver.
    assert_eq!(
        d.ioctl(0xC058_CAFF, &mut [0; 88], &mut mem),
        Err(Errno::EINVAL)
    );
    // Short argument: EFAULT.
    assert_eq!(
        d.ioctl(card::ERROR_LOG.request(), &mut [0; 40], &mut mem),
        Err(Errno::EFAULT)
    );
    // Reserved field set: EINVAL.
    let mut arg = [0u8; 88];
    arg[80] = 1;
    assert_eq!(
        d.ioctl(card::ERROR_LOG.request(), &mut arg, &mut mem),
        Err(Errno::EINVAL)
    );
    // Buffer size not a multiple of 8: EINVAL.
    let mut arg = [0u8; 88];
    arg[56] = 5;
    assert_eq!(
        d.ioctl(card::ERROR_LOG.request(), &mut arg, &mut mem),
        Err(Errno::EINVAL)
    );
    // A buffer pointer outside the caller's memory: EFAULT, nothing written.
    let mut arg = [0u8; 88];
    arg[56] = 16;
    arg[64..72].copy_from_slice(&0x1000u64.to_ne_bytes());
    assert_eq!(
        d.ioctl(card::ERROR_LOG.request(), &mut arg, &mut mem),
        Err(Errno::EFAULT)
    );
    // Unknown encoding direction under the other layout does not match.
    let ppc = Dispatcher::new(fake()).with_encoding(ocxlpmem_ioctl::Encoding::PowerPc);
    assert_eq!(
        ppc.ioctl(0x4008_CA35, &mut [0; 8], &mut mem),
        Err(Errno::EINVAL)
    );
}

#[test]
fn second_eventfd_registration_is_ebusy_and_events_signal_it() {
    use std::os::fd::AsFd;
    let efd = nix::sys::eventfd::EventFd::new().unwrap();
    let c = client(false);
    c.register_eventfd(efd.as_fd()).unwrap();
    match c.register_eventfd(efd.as_fd()) {
        Err(ClientError::Ioctl { errno, .. }) => assert_eq!(errno, Errno::EBUSY),
        other => panic!("expected EBUSY, got {other:?}"),
    }
    assert_eq!(c.device().dispatcher().poll_events().unwrap(), 2);
    assert_eq!(efd.read().unwrap(), 1);
}
