//! SECURE_ERASE (§3.11) on the near-storage area.

use crate::admin::Admin;
use crate::destructive::Destructive;
use crate::error::AdminError;
use crate::table;
use serde::Serialize;

/// The page counts Secure Erase reports in its response block (§3.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SecureEraseReport {
    /// Response +0x20.
    pub accessible_erased: u64,
    /// Response +0x28.
    pub accessible_attempted: u64,
    /// Response +0x30.
    pub defective_erased: u64,
    /// Response +0x38.
    pub defective_attempted: u64,
}

impl SecureEraseReport {
    /// §3.11: success only if erased == attempted for both kinds of page.
    pub fn is_complete(&self) -> bool {
        self.accessible_erased == self.accessible_attempted
            && self.defective_erased == self.defective_attempted
    }
}

impl Admin {
    /// Erases the whole card's media (near-storage opcode 0x20, default timeout 60 s).
    /// An erase that reports fewer pages erased than attempted is
    /// [`AdminError::EraseIncomplete`], carrying the counts.
    pub fn secure_erase(&self, _token: &Destructive) -> Result<SecureEraseReport, AdminError> {
        let c = self.send(&table::SECURE_ERASE, &[], &[], &mut [])?;
        let [accessible_erased, accessible_attempted, defective_erased, defective_attempted] =
            c.words;
        let r = SecureEraseReport {
            accessible_erased,
            accessible_attempted,
            defective_erased,
            defective_attempted,
        };
        if r.is_complete() {
            Ok(r)
        } else {
            Err(AdminError::EraseIncomplete(r))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_only_when_both_counts_match() {
        let mut r = SecureEraseReport {
            accessible_erased: 10,
            accessible_attempted: 10,
            defective_erased: 2,
            defective_attempted: 2,
        };
        assert!(r.is_complete());
        r.defective_erased = 1;
        assert!(!r.is_complete());
        r.defective_erased = 2;
        r.accessible_erased = 9;
        assert!(!r.is_complete());
    }
}
