//! The admin handle: discovery of the two command areas (§2.1), the shared register
//! helpers, and the commands without a payload of their own.

use crate::destructive::Destructive;
use crate::error::AdminError;
use crate::mailbox::Channel;
use crate::options::AdminOptions;
use crate::table;
use ocxlpmem_regs::{offsets, AreaLayout, Ccap1, Chi, CommandArea, Hci, Mmio};
use std::sync::{Arc, Mutex};

/// Bytes of CMD_CAPS output [`Admin::cmd_caps`] returns (its format is unknown, §3.10).
pub const CMD_CAPS_LEN: usize = 4096;

/// HCI bits the host sets and later withdraws itself (FDE through HCIC; AR), carried
/// over by [`Admin`]'s HCI read-modify-write; the controller never consumes them.
pub const HCI_HOST_LEVELS: u64 = Hci::FDE | Hci::AR;

/// A handle on one card's admin and near-storage command areas. `Send + Sync`: share it
/// in an `Arc`; each area serialises its own commands (one at a time per area, §2.4).
pub struct Admin {
    mmio: Arc<dyn Mmio>,
    opts: AdminOptions,
    /// Serialises read-modify-writes of HCI (§1 Decision) between areas and requests.
    hci: Mutex<()>,
    pub(crate) admin: Channel,
    pub(crate) near_storage: Option<Channel>,
    /// CCAP1's maximum controller dump size, read once.
    pub(crate) max_dump_size: u64,
    /// One controller dump at a time (request, fetches and completion belong together).
    pub(crate) dump_lock: Mutex<()>,
    /// One error-log drain at a time, so ELA checked is ELA popped.
    pub(crate) errlog_lock: Mutex<()>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("admin", &self.admin.layout)
            .field(
                "near_storage",
                &self.near_storage.as_ref().map(|c| c.layout),
            )
            .field("max_dump_size", &self.max_dump_size)
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// Discovers and validates both command areas with default options.
    pub fn new(mmio: Arc<dyn Mmio>) -> Result<Self, AdminError> {
        Self::with_options(mmio, AdminOptions::default())
    }

    /// Discovers both command areas from 0x100..0x128 (§2.1) and validates them: each
    /// block 8-byte aligned, inside the global MMIO area, clear of the register file and
    /// of every other block. A near-storage area whose two registers read 0 is taken as
    /// absent ([`AdminError::NoNearStorageArea`] from Secure Erase); the card must not be
    /// gone (CHI all ones). Readiness is not waited for here (that is bring-up's job).
    pub fn with_options(mmio: Arc<dyn Mmio>, opts: AdminOptions) -> Result<Self, AdminError> {
        let chi = mmio
            .read_u64(offsets::CHI)
            .map_err(AdminError::transport("reading CHI at discovery"))?;
        if Chi(chi).is_all_ones() {
            return Err(AdminError::Gone {
                offset: offsets::CHI,
            });
        }
        let read_layout = |area: CommandArea| -> Result<(u64, u64), AdminError> {
            let o = mmio
                .read_u64(area.offsets_register())
                .map_err(AdminError::transport("reading a command area's offsets"))?;
            let b = mmio
                .read_u64(area.buffer_register())
                .map_err(AdminError::transport("reading a command area's buffer"))?;
            Ok((o, b))
        };
        let size = mmio.size();
        let (o, b) = read_layout(CommandArea::Admin)?;
        let admin = AreaLayout::decode(o, b);
        admin.validate(size).map_err(|source| AdminError::Layout {
            area: CommandArea::Admin,
            source,
        })?;
        let (o, b) = read_layout(CommandArea::NearStorage)?;
        let near_storage = if o == 0 && b == 0 {
            None
        } else {
            let ns = AreaLayout::decode(o, b);
            let area = CommandArea::NearStorage;
            ns.validate(size)
                .map_err(|source| AdminError::Layout { area, source })?;
            check_apart(&admin, &ns).map_err(|source| AdminError::Layout { area, source })?;
            Some(ns)
        };
        let ccap1 = mmio
            .read_u64(offsets::CCAP1)
            .map_err(AdminError::transport("reading CCAP1"))?;
        Ok(Self {
            max_dump_size: u64::from(Ccap1(ccap1).max_dump_size()),
            mmio,
            opts,
            hci: Mutex::new(()),
            admin: Channel::new(CommandArea::Admin, admin),
            near_storage: near_storage.map(|l| Channel::new(CommandArea::NearStorage, l)),
            dump_lock: Mutex::new(()),
            errlog_lock: Mutex::new(()),
        })
    }

    /// Makes the next command of each area write every request word again instead of
    /// trusting that the unused ones still hold the zeros this handle wrote. Call it after
    /// anything else may have written the request blocks (a controller reset).
    pub fn forget_request_words(&self) {
        self.admin.forget_request_words();
        if let Some(ns) = &self.near_storage {
            ns.forget_request_words();
        }
    }

    /// The layout of the admin area as discovered.
    pub fn admin_layout(&self) -> AreaLayout {
        self.admin.layout
    }

    /// The layout of the near-storage area, if the card has one.
    pub fn near_storage_layout(&self) -> Option<AreaLayout> {
        self.near_storage.as_ref().map(|c| c.layout)
    }

    /// The options in use.
    pub fn options(&self) -> &AdminOptions {
        &self.opts
    }

    /// CCAP1's maximum controller dump size in bytes.
    pub fn max_dump_size(&self) -> u64 {
        self.max_dump_size
    }

    pub(crate) fn mmio(&self) -> &dyn Mmio {
        &*self.mmio
    }

    pub(crate) fn mmio_arc(&self) -> Arc<dyn Mmio> {
        Arc::clone(&self.mmio)
    }

    pub(crate) fn channel(&self, area: CommandArea) -> Result<&Channel, AdminError> {
        match area {
            CommandArea::Admin => Ok(&self.admin),
            CommandArea::NearStorage => self
                .near_storage
                .as_ref()
                .ok_or(AdminError::NoNearStorageArea),
        }
    }

    /// Reads CHI; all ones is [`AdminError::Gone`], never a status.
    pub fn read_chi(&self) -> Result<Chi, AdminError> {
        let v = self
            .mmio
            .read_u64(offsets::CHI)
            .map_err(AdminError::transport("reading CHI"))?;
        let chi = Chi(v);
        if chi.is_all_ones() {
            return Err(AdminError::Gone {
                offset: offsets::CHI,
            });
        }
        Ok(chi)
    }

    /// Sets HCI bits: a read-modify-write (OR) under the HCI lock (§1 Decision).
    ///
    /// Only the bits the host holds as levels ([`HCI_HOST_LEVELS`]) are carried over
    /// from the read. A one-shot request bit (a doorbell, CD, CDC, CHPD) read as pending
    /// may be consumed by the controller between our read and our write; writing it back
    /// to a register whose writes set bits would ring that request a second time (a
    /// duplicated command or a restarted dump). Carrying FDE keeps the RMW's purpose.
    pub(crate) fn set_hci(&self, bits: u64) -> Result<(), AdminError> {
        let _g = self.hci.lock().unwrap_or_else(|e| e.into_inner());
        let v = self
            .mmio
            .read_u64(offsets::HCI)
            .map_err(AdminError::transport("reading HCI"))?;
        if v == u64::MAX {
            return Err(AdminError::Gone {
                offset: offsets::HCI,
            });
        }
        self.mmio
            .write_u64(offsets::HCI, (v & HCI_HOST_LEVELS) | bits)
            .map_err(AdminError::transport("writing HCI"))
    }

    /// Withdraws HCI bits through HCIC (W1: only the mask meant).
    pub(crate) fn clear_hci(&self, bits: u64) -> Result<(), AdminError> {
        self.mmio
            .write_u64(offsets::HCIC, bits)
            .map_err(AdminError::transport("writing HCIC"))
    }

    /// Reads HCI (the requests still pending).
    pub(crate) fn read_hci(&self) -> Result<u64, AdminError> {
        let v = self
            .mmio
            .read_u64(offsets::HCI)
            .map_err(AdminError::transport("reading HCI"))?;
        if v == u64::MAX {
            return Err(AdminError::Gone {
                offset: offsets::HCI,
            });
        }
        Ok(v)
    }

    /// Clears CHI bits through CHIC (W1).
    pub(crate) fn clear_chi(&self, bits: u64) -> Result<(), AdminError> {
        self.mmio
            .write_u64(offsets::CHIC, bits)
            .map_err(AdminError::transport("writing CHIC"))
    }

    /// HEARTBEAT (§3.1): a liveness check.
    pub fn heartbeat(&self) -> Result<(), AdminError> {
        self.send(&table::HEARTBEAT, &[], &[], &mut []).map(|_| ())
    }

    /// SHUTDOWN (§3.2): debug/maintenance only; the card stops serving until reset.
    pub fn shutdown(&self, _token: &Destructive) -> Result<(), AdminError> {
        self.send(&table::SHUTDOWN, &[], &[], &mut []).map(|_| ())
    }

    /// CMD_CAPS (§3.10): the first [`CMD_CAPS_LEN`] bytes (or the whole data buffer if
    /// smaller) of the answer, RAW; the format is unknown.
    pub fn cmd_caps(&self) -> Result<Vec<u8>, AdminError> {
        let mut buf = vec![0u8; CMD_CAPS_LEN];
        let n = self.cmd_caps_into(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// CMD_CAPS into `buf`; returns the bytes copied (min(buf, data_size)).
    pub fn cmd_caps_into(&self, buf: &mut [u8]) -> Result<usize, AdminError> {
        self.send(&table::CMD_CAPS, &[], &[], buf).map(|c| c.len)
    }

    /// One aligned 64-bit read of the global MMIO area, for diagnostics. No protocol
    /// state is touched; an all-ones value is returned as read.
    pub fn raw_read(&self, offset: u64) -> Result<u64, AdminError> {
        self.mmio
            .read_u64(offset)
            .map_err(AdminError::transport("raw read"))
    }

    /// One aligned 64-bit write to the global MMIO area. It bypasses the command locks
    /// and can break a command in flight or the card itself, hence the token.
    pub fn raw_write(
        &self,
        offset: u64,
        value: u64,
        _token: &Destructive,
    ) -> Result<(), AdminError> {
        self.mmio
            .write_u64(offset, value)
            .map_err(AdminError::transport("raw write"))
    }
}

/// The admin and near-storage blocks must not overlap each other either.
fn check_apart(a: &AreaLayout, b: &AreaLayout) -> Result<(), ocxlpmem_regs::command::LayoutError> {
    let blocks = |l: &AreaLayout| {
        [
            (
                "admin/near-storage request block",
                l.request_offset,
                offsets::BLOCK_SIZE,
            ),
            (
                "admin/near-storage response block",
                l.response_offset,
                offsets::BLOCK_SIZE,
            ),
            ("admin/near-storage data buffer", l.data_offset, l.data_size),
        ]
    };
    for (an, ao, al) in blocks(a) {
        for (bn, bo, bl) in blocks(b) {
            // Both layouts passed validate(), so the sums cannot overflow the area size.
            if ao < bo.saturating_add(bl) && bo < ao.saturating_add(al) {
                return Err(ocxlpmem_regs::command::LayoutError::Overlap { a: an, b: bn });
            }
        }
    }
    Ok(())
}
