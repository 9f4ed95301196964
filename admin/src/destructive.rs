//! The explicit opt-in for destructive and debug operations.

/// Proof that the caller chose, in so many words, to run an operation that can destroy
/// data or stop the card: SHUTDOWN, FW_UPDATE, FW_DEBUG, Secure Erase and raw MMIO writes
/// take a `&Destructive`.
///
/// The only way to get one is [`Destructive::i_understand_this_can_destroy_data`]: there is
/// no `Default`, no public field and no conversion, so it cannot appear by accident (a
/// CLI should construct it only behind an explicit flag such as `--destructive`).
#[derive(Debug)]
pub struct Destructive {
    _private: (),
}

impl Destructive {
    /// The opt-in. Call it only where a human asked for the destructive operation.
    pub fn i_understand_this_can_destroy_data() -> Self {
        Self { _private: () }
    }
}
