//! The argument structures of spec §5, as the kernel lays them out (`repr(C)`, natural
//! alignment, host byte order), with compile-time size and offset checks.
//!
//! Arguments cross the ioctl boundary as byte arrays: every structure has
//! `to_bytes`/`from_bytes` that place each field at its `offset_of!` offset in host byte
//! order, so no `unsafe` transmute is needed and the layout asserts cover the codec too.

use std::mem::{offset_of, size_of};

use ocxlpmem_regs::abi::size;

/// Reads a host-order integer of `N` bytes at `off` (the caller passes a buffer of the
/// structure's size, so the slice is in bounds; a short buffer gives zeros, never a panic).
fn field<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = b.get(off..off + N) {
        out.copy_from_slice(s);
    }
    out
}

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    if let Some(d) = b.get_mut(off..off + v.len()) {
        d.copy_from_slice(v);
    }
}

macro_rules! codec {
    ($ty:ident, $size:expr, { $($f:ident : $t:ty),* $(,)? }, arrays { $($a:ident : [$at:ty; $n:expr]),* $(,)? }) => {
        const _: () = assert!(size_of::<$ty>() == $size);
        impl $ty {
            /// Size of the structure in bytes (spec §5).
            pub const SIZE: usize = $size;

            /// The structure as the kernel sees it: host byte order, spec offsets.
            pub fn to_bytes(&self) -> [u8; $size] {
                let mut b = [0u8; $size];
                $( put(&mut b, offset_of!($ty, $f), &self.$f.to_ne_bytes()); )*
                $(
                    for (i, v) in self.$a.iter().enumerate() {
                        put(&mut b, offset_of!($ty, $a) + i * size_of::<$at>(), &v.to_ne_bytes());
                    }
                )*
                b
            }

            /// Parses the structure from its bytes (missing bytes read as zero).
            pub fn from_bytes(b: &[u8]) -> Self {
                let mut s = Self::default();
                $( s.$f = <$t>::from_ne_bytes(field(b, offset_of!($ty, $f))); )*
                $(
                    for i in 0..$n {
                        s.$a[i] = <$at>::from_ne_bytes(field(b, offset_of!($ty, $a) + i * size_of::<$at>()));
                    }
                )*
                s
            }
        }
    };
}

/// `struct error_log` (88 bytes): one error log entry (ERROR_LOG).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorLog {
    /// Log identifier.
    pub log_identifier: u32,
    /// Program reference code.
    pub program_reference_code: u32,
    /// Action flags (24 bits).
    pub action_flags: u32,
    /// Power-on seconds at the time of the error.
    pub power_on_seconds: u32,
    /// Timestamp relative to the current IPL.
    pub timestamp: u64,
    /// WWID words 0 and 1.
    pub wwid: [u64; 2],
    /// Firmware revision, NUL-terminated.
    pub fw_revision: [u8; 9],
    /// Reserved, zero on input.
    pub reserved0: [u8; 7],
    /// In: caller buffer size (multiple of 8). Out: the payload length the device
    /// reported (>= 0x40 for any entry; 0 = no more entries).
    pub buf_size: u16,
    /// Log type.
    pub error_log_type: u8,
    /// Reserved, zero on input.
    pub reserved1: [u8; 5],
    /// Address of the caller's buffer for the variable error data.
    pub buf_ptr: u64,
    /// Reserved, zero on input.
    pub reserved2: [u64; 2],
}

codec!(ErrorLog, size::ERROR_LOG, {
    log_identifier: u32, program_reference_code: u32, action_flags: u32,
    power_on_seconds: u32, timestamp: u64, buf_size: u16, error_log_type: u8, buf_ptr: u64,
}, arrays {
    wwid: [u64; 2], fw_revision: [u8; 9], reserved0: [u8; 7], reserved1: [u8; 5],
    reserved2: [u64; 2],
});

impl ErrorLog {
    /// True when every reserved field is zero (required on input).
    pub fn reserved_clear(&self) -> bool {
        self.reserved0 == [0; 7] && self.reserved1 == [0; 5] && self.reserved2 == [0; 2]
    }

    /// The firmware revision as text (up to the first NUL).
    pub fn fw_revision_text(&self) -> String {
        let end = self.fw_revision.iter().position(|&c| c == 0).unwrap_or(8);
        String::from_utf8_lossy(self.fw_revision.get(..end).unwrap_or_default()).into_owned()
    }
}

/// `struct controller_dump_data` (80 bytes): one chunk of a controller dump.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControllerDumpData {
    /// Address of the caller's buffer.
    pub buf_ptr: u64,
    /// In: buffer size. Out: bytes returned (0 = end of the dump).
    pub buf_size: u16,
    /// Reserved, zero on input.
    pub reserved0: u16,
    /// Offset in the dump.
    pub offset: u32,
    /// Reserved, zero on input.
    pub reserved: [u64; 8],
}

codec!(ControllerDumpData, size::CONTROLLER_DUMP_DATA, {
    buf_ptr: u64, buf_size: u16, reserved0: u16, offset: u32,
}, arrays { reserved: [u64; 8] });

impl ControllerDumpData {
    /// True when every reserved field is zero.
    pub fn reserved_clear(&self) -> bool {
        self.reserved0 == 0 && self.reserved == [0; 8]
    }
}

/// `struct controller_stats` (104 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControllerStats {
    /// Reset count.
    pub reset_count: u32,
    /// Seconds since the last reset.
    pub reset_uptime: u32,
    /// Power-on uptime in seconds.
    pub power_on_uptime: u32,
    /// Life remaining, percent.
    pub life_remaining: u8,
    /// Critical resource utilisation, percent.
    pub critical_resource_utilization: u8,
    /// Reserved.
    pub reserved: [u8; 2],
    /// Host load count.
    pub host_load_count: u64,
    /// Host store count.
    pub host_store_count: u64,
    /// Host load duration (ns, cumulative).
    pub host_load_duration: u64,
    /// Host store duration (ns, cumulative).
    pub host_store_duration: u64,
    /// Media read count.
    pub media_read_count: u64,
    /// Media write count.
    pub media_write_count: u64,
    /// Media read duration (ns, cumulative).
    pub media_read_duration: u64,
    /// Media write duration (ns, cumulative).
    pub media_write_duration: u64,
    /// Cache read hit count.
    pub cache_read_hit_count: u64,
    /// Cache write hit count.
    pub cache_write_hit_count: u64,
    /// Fast write count.
    pub fast_write_count: u64,
}

codec!(ControllerStats, size::CONTROLLER_STATS, {
    reset_count: u32, reset_uptime: u32, power_on_uptime: u32, life_remaining: u8,
    critical_resource_utilization: u8, host_load_count: u64, host_store_count: u64,
    host_load_duration: u64, host_store_duration: u64, media_read_count: u64,
    media_write_count: u64, media_read_duration: u64, media_write_duration: u64,
    cache_read_hit_count: u64, cache_write_hit_count: u64, fast_write_count: u64,
}, arrays { reserved: [u8; 2] });

/// `struct eventfd` (8 bytes): registers an eventfd for card events.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Eventfd {
    /// The eventfd's descriptor in the caller's process.
    pub eventfd: i32,
    /// Reserved, zero.
    pub reserved: u32,
}

codec!(Eventfd, size::EVENTFD, { eventfd: i32, reserved: u32 }, arrays {});

/// `struct fwdebug` (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FwDebug {
    /// Debug parameter 1.
    pub debug_parameter_1: u64,
    /// Debug parameter 2.
    pub debug_parameter_2: u64,
    /// Address of the caller's buffer (input and output data), 0 for none.
    pub buf: u64,
    /// Debug action (spec §3.4: 0x01..0x05).
    pub debug_action: u16,
    /// Function code.
    pub function_code: u16,
    /// Size of the buffer.
    pub buf_size: u16,
    /// Reserved, zero.
    pub reserved: u16,
}

codec!(FwDebug, size::FWDEBUG, {
    debug_parameter_1: u64, debug_parameter_2: u64, buf: u64, debug_action: u16,
    function_code: u16, buf_size: u16, reserved: u16,
}, arrays {});

/// `struct mmio` (16 bytes): a debug register access.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MmioArg {
    /// Global-MMIO offset.
    pub address: u64,
    /// Value (LE64 access on the device side).
    pub val: u64,
}

codec!(MmioArg, size::MMIO, { address: u64, val: u64 }, arrays {});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_log_offsets_match_spec() {
        assert_eq!(offset_of!(ErrorLog, log_identifier), 0);
        assert_eq!(offset_of!(ErrorLog, program_reference_code), 4);
        assert_eq!(offset_of!(ErrorLog, action_flags), 8);
        assert_eq!(offset_of!(ErrorLog, power_on_seconds), 12);
        assert_eq!(offset_of!(ErrorLog, timestamp), 16);
        assert_eq!(offset_of!(ErrorLog, wwid), 24);
        assert_eq!(offset_of!(ErrorLog, fw_revision), 40);
        assert_eq!(offset_of!(ErrorLog, reserved0), 49);
        assert_eq!(offset_of!(ErrorLog, buf_size), 56);
        assert_eq!(offset_of!(ErrorLog, error_log_type), 58);
        assert_eq!(offset_of!(ErrorLog, reserved1), 59);
        assert_eq!(offset_of!(ErrorLog, buf_ptr), 64);
        assert_eq!(offset_of!(ErrorLog, reserved2), 72);
        assert_eq!(size_of::<ErrorLog>(), 88);
    }

    #[test]
    fn controller_dump_data_offsets_match_spec() {
        assert_eq!(offset_of!(ControllerDumpData, buf_ptr), 0);
        assert_eq!(offset_of!(ControllerDumpData, buf_size), 8);
        assert_eq!(offset_of!(ControllerDumpData, reserved0), 10);
        assert_eq!(offset_of!(ControllerDumpData, offset), 12);
        assert_eq!(offset_of!(ControllerDumpData, reserved), 16);
        assert_eq!(size_of::<ControllerDumpData>(), 80);
    }

    #[test]
    fn controller_stats_offsets_match_spec() {
        assert_eq!(offset_of!(ControllerStats, reset_count), 0);
        assert_eq!(offset_of!(ControllerStats, reset_uptime), 4);
        assert_eq!(offset_of!(ControllerStats, power_on_uptime), 8);
        assert_eq!(offset_of!(ControllerStats, life_remaining), 12);
        assert_eq!(
            offset_of!(ControllerStats, critical_resource_utilization),
            13
        );
        assert_eq!(offset_of!(ControllerStats, reserved), 14);
        let u64s = [
            offset_of!(ControllerStats, host_load_count),
            offset_of!(ControllerStats, host_store_count),
            offset_of!(ControllerStats, host_load_duration),
            offset_of!(ControllerStats, host_store_duration),
            offset_of!(ControllerStats, media_read_count),
            offset_of!(ControllerStats, media_write_count),
            offset_of!(ControllerStats, media_read_duration),
            offset_of!(ControllerStats, media_write_duration),
            offset_of!(ControllerStats, cache_read_hit_count),
            offset_of!(ControllerStats, cache_write_hit_count),
            offset_of!(ControllerStats, fast_write_count),
        ];
        assert_eq!(u64s, [16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96]);
        assert_eq!(size_of::<ControllerStats>(), 104);
    }

    #[test]
    fn small_struct_offsets_match_spec() {
        assert_eq!(offset_of!(Eventfd, eventfd), 0);
        assert_eq!(offset_of!(Eventfd, reserved), 4);
        assert_eq!(offset_of!(FwDebug, debug_parameter_1), 0);
        assert_eq!(offset_of!(FwDebug, debug_parameter_2), 8);
        assert_eq!(offset_of!(FwDebug, buf), 16);
        assert_eq!(offset_of!(FwDebug, debug_action), 24);
        assert_eq!(offset_of!(FwDebug, function_code), 26);
        assert_eq!(offset_of!(FwDebug, buf_size), 28);
        assert_eq!(offset_of!(FwDebug, reserved), 30);
        assert_eq!(offset_of!(MmioArg, address), 0);
        assert_eq!(offset_of!(MmioArg, val), 8);
    }

    #[test]
    fn codec_round_trips_every_field() {
        let e = ErrorLog {
            log_identifier: 1,
            program_reference_code: 2,
            action_flags: 3,
            power_on_seconds: 4,
            timestamp: 5,
            wwid: [6, 7],
            fw_revision: *b"SIM 1.0 \0",
            reserved0: [0; 7],
            buf_size: 0x48,
            error_log_type: 9,
            reserved1: [0; 5],
            buf_ptr: 0xdead_beef,
            reserved2: [0, 1],
        };
        let b = e.to_bytes();
        assert_eq!(ErrorLog::from_bytes(&b), e);
        assert_eq!(b[56..58], 0x48u16.to_ne_bytes());
        assert_eq!(&b[40..48], b"SIM 1.0 ");
        assert!(!e.reserved_clear());
        assert_eq!(e.fw_revision_text(), "SIM 1.0 ");
        let s = ControllerStats {
            life_remaining: 97,
            fast_write_count: u64::MAX,
            ..Default::default()
        };
        let sb = s.to_bytes();
        assert_eq!(sb[12], 97);
        assert_eq!(sb[96..104], u64::MAX.to_ne_bytes());
        assert_eq!(ControllerStats::from_bytes(&sb), s);
    }

    #[test]
    fn short_buffers_parse_as_zero_not_panic() {
        assert_eq!(ErrorLog::from_bytes(&[1, 0, 0]), ErrorLog::default());
        assert_eq!(MmioArg::from_bytes(&[]), MmioArg::default());
    }
}
