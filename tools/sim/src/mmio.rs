//! [`SimMmio`]: the card's global MMIO through the [`Mmio`] trait, every access trapped.

use ocxlpmem_regs::mmio::check_access;
use ocxlpmem_regs::{Mmio, MmioError};

use crate::card::SimCard;

/// The global MMIO area (BAR 0 at offset 0, as the AFU descriptor says), trapped: each
/// access goes through the model. Keeps the card alive.
#[derive(Debug, Clone)]
pub struct SimMmio {
    pub(crate) card: SimCard,
}

impl Mmio for SimMmio {
    fn size(&self) -> u64 {
        self.card.config().layout.mmio_size
    }

    fn read_u64(&self, offset: u64) -> Result<u64, MmioError> {
        check_access(offset, 8, self.size(), 8)?;
        Ok(self.card.bar0_read_word(offset))
    }

    fn write_u64(&self, offset: u64, value: u64) -> Result<(), MmioError> {
        check_access(offset, 8, self.size(), 8)?;
        self.card.bar0_write_word(offset, value);
        Ok(())
    }
}
