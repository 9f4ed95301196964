//! The ioctl ABI of the proposed `ocxlpmem` kernel driver (spec §5) and the ndctl
//! label-area commands.
//!
//! * [`number`]: request numbers computed per architecture (generic and powerpc `_IOC`);
//! * [`abi`]: the argument structures with layout checks;
//! * [`nd`]: the ndctl GET/SET_CONFIG_* and the SMART `ND_CMD_CALL` payload;
//! * [`client`]: a client of `/dev/ocxlpmem<N>` behind a syscall seam;
//! * [`dispatch`]: the same ABI served from this driver, validated as the kernel did;
//! * [`card_backend`]: the dispatcher's backend on this driver's admin commands.
#![warn(missing_docs)]

pub mod abi;
pub mod card_backend;
pub mod client;
pub mod dispatch;
pub mod nd;
pub mod number;

pub use client::{Client, ClientError, IoctlDevice, KernelDevice, Loopback};
pub use dispatch::{Backend, BackendError, Dispatcher, ErrorLogRecord, SliceMemory, UserMemory};
pub use number::{Dir, Encoding, IoctlDef};
