//! The admin mailbox protocol (spec §2) and every admin command (spec §3) of the
//! OpenCAPI persistent-memory card, over any [`ocxlpmem_regs::Mmio`].
#![warn(missing_docs)]
