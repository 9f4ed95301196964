//! [`Backend`] on this driver: the admin commands of [`ocxlpmem_admin::Admin`] plus a
//! label area, so the [`crate::Dispatcher`] serves the kernel ABI from a card driven in
//! userspace.

use nix::errno::Errno;
use ocxlpmem_admin::{Admin, AdminError, Destructive, FwDebugAction, FwDebugRequest};
use ocxlpmem_regs::payload::smart::Attribute;

use crate::abi::{ControllerStats, FwDebug};
use crate::dispatch::{event_flags_from_chi, Backend, BackendError, ErrorLogRecord};

/// The label (metadata) area behind GET/SET_CONFIG_DATA.
pub trait LabelArea: Send + Sync {
    /// Size in bytes.
    fn size(&self) -> u32;
    /// Reads `buf.len()` bytes at `offset` (already bounds-checked by the dispatcher).
    fn read(&self, offset: u32, buf: &mut [u8]) -> Result<(), BackendError>;
    /// Writes `data` at `offset` (already bounds-checked).
    fn write(&self, offset: u32, data: &[u8]) -> Result<(), BackendError>;
}

/// Maximum transfer of one label command: PAGE_SIZE, as the proposed driver.
pub const LABEL_MAX_XFER: u32 = 4096;

/// The errno the proposed driver returned for each admin failure.
pub fn errno_of(e: &AdminError) -> Errno {
    match e {
        AdminError::Timeout { .. } | AdminError::WaitTimeout { .. } => Errno::ETIMEDOUT,
        AdminError::Status { .. } => Errno::EIO,
        AdminError::Gone { .. } => Errno::ENODEV,
        AdminError::InvalidArgument { .. } => Errno::EINVAL,
        AdminError::NoNearStorageArea => Errno::ENOTSUP,
        _ => Errno::EIO,
    }
}

fn be(e: AdminError) -> BackendError {
    BackendError::new(errno_of(&e), e.to_string())
}

/// A card driven by this driver, served through the kernel ABI.
pub struct AdminBackend<L> {
    admin: Admin,
    labels: L,
}

impl<L: LabelArea> AdminBackend<L> {
    /// Serves `admin`'s card with `labels` as its label area.
    pub fn new(admin: Admin, labels: L) -> Self {
        Self { admin, labels }
    }

    /// The admin handle.
    pub fn admin(&self) -> &Admin {
        &self.admin
    }
}

// The debug ioctls are gated by the dispatcher (`allow_debug`); reaching them means the
// operator enabled them, which is the opt-in the token stands for.
fn token() -> Destructive {
    Destructive::i_understand_this_can_destroy_data()
}

impl<L: LabelArea> Backend for AdminBackend<L> {
    fn error_log(&self) -> Result<Option<ErrorLogRecord>, BackendError> {
        let e = self.admin.error_log_next().map_err(be)?;
        Ok(e.map(|e| ErrorLogRecord {
            log_identifier: e.log_id,
            program_reference_code: e.program_reference_code,
            log_type: e.log_type,
            action_flags: e.action_flags,
            power_on_seconds: e.power_on_seconds,
            timestamp: e.timestamp,
            wwid: e.wwid,
            fw_revision: e.fw_revision,
            data: e.variable_data,
        }))
    }

    fn controller_dump(&self) -> Result<(), BackendError> {
        self.admin.dump_request().map_err(be)
    }

    fn controller_dump_data(&self, offset: u32, buf: &mut [u8]) -> Result<usize, BackendError> {
        self.admin.dump_fetch(u64::from(offset), buf).map_err(be)
    }

    fn controller_dump_complete(&self) -> Result<(), BackendError> {
        self.admin.dump_complete().map_err(be)
    }

    fn controller_stats(&self) -> Result<ControllerStats, BackendError> {
        let s = self.admin.stats().map_err(be)?;
        Ok(ControllerStats {
            reset_count: s.reset_count,
            reset_uptime: s.seconds_since_reset,
            power_on_uptime: s.power_on_uptime_seconds,
            life_remaining: s.life_remaining_percent,
            critical_resource_utilization: s.critical_resource_utilisation_percent,
            reserved: [0; 2],
            host_load_count: s.host_load_count,
            host_store_count: s.host_store_count,
            host_load_duration: s.host_load_duration_ns,
            host_store_duration: s.host_store_duration_ns,
            media_read_count: s.media_read_count,
            media_write_count: s.media_write_count,
            media_read_duration: s.media_read_duration_ns,
            media_write_duration: s.media_write_duration_ns,
            cache_read_hit_count: s.cache_read_hit_count,
            cache_write_hit_count: s.cache_write_hit_count,
            fast_write_count: s.fast_write_count,
        })
    }

    fn event_flags(&self) -> Result<u64, BackendError> {
        Ok(event_flags_from_chi(
            self.admin.read_chi().map_err(be)?.bits(),
        ))
    }

    fn request_health(&self) -> Result<(), BackendError> {
        self.admin.request_health().map_err(be)
    }

    fn fw_debug(&self, req: &FwDebug, data: &mut [u8]) -> Result<(), BackendError> {
        let action = u8::try_from(req.debug_action)
            .map_err(|_| BackendError::new(Errno::EINVAL, "debug_action does not fit 8 bits"))?;
        let input = data.to_vec();
        let r = FwDebugRequest {
            action: FwDebugAction::Other(action),
            function_code: req.function_code,
            parameter1: req.debug_parameter_1,
            parameter2: req.debug_parameter_2,
            input: &input,
        };
        self.admin
            .fw_debug(&r, data, &token())
            .map(drop)
            .map_err(be)
    }

    fn mmio_read(&self, offset: u64) -> Result<u64, BackendError> {
        self.admin.raw_read(offset).map_err(be)
    }

    fn mmio_write(&self, offset: u64, value: u64) -> Result<(), BackendError> {
        self.admin.raw_write(offset, value, &token()).map_err(be)
    }

    fn shutdown(&self) -> Result<(), BackendError> {
        self.admin.shutdown(&token()).map_err(be)
    }

    fn label_geometry(&self) -> (u32, u32) {
        (self.labels.size(), LABEL_MAX_XFER)
    }

    fn label_read(&self, offset: u32, buf: &mut [u8]) -> Result<(), BackendError> {
        self.labels.read(offset, buf)
    }

    fn label_write(&self, offset: u32, data: &[u8]) -> Result<(), BackendError> {
        self.labels.write(offset, data)
    }

    fn smart(&self) -> Result<Vec<Attribute>, BackendError> {
        let a = self.admin.smart().map_err(be)?;
        Ok(a.iter()
            .map(|x| Attribute {
                id: x.id,
                flags: x.flags,
                current: x.current,
                threshold: x.threshold,
                worst: x.worst,
                raw: x.raw,
            })
            .collect())
    }
}
