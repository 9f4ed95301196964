//! The ioctl ABI of the proposed `ocxlpmem` kernel driver (spec §5) and the ndctl
//! label-area commands.
#![warn(missing_docs)]
