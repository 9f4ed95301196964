//! Tunables of the admin handle: timeouts, the completion-poll strategy, retries.

use ocxlpmem_regs::Opcode;
use std::time::Duration;

/// How a bounded wait polls a register: spin, then yield, then sleep with backoff.
///
/// The fast path never sleeps: a command the firmware answers within `spin` is seen
/// within one register read of its completion. (The proposed kernel driver slept 32 ms
/// between completion checks.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollStrategy {
    /// Busy-poll (with a spin-loop hint) for this long first.
    pub spin: Duration,
    /// Then poll with `yield_now` between reads until this much time has passed in total.
    pub yield_until: Duration,
    /// Then sleep between reads, starting here and doubling...
    pub min_sleep: Duration,
    /// ...up to this.
    pub max_sleep: Duration,
}

impl Default for PollStrategy {
    fn default() -> Self {
        Self {
            spin: Duration::from_micros(50),
            yield_until: Duration::from_micros(500),
            min_sleep: Duration::from_micros(10),
            max_sleep: Duration::from_millis(1),
        }
    }
}

impl PollStrategy {
    /// Only sleeps, `interval` between reads (what a simple kernel driver does; useful to
    /// compare against, and kind to a loaded machine).
    pub const fn sleep_only(interval: Duration) -> Self {
        Self {
            spin: Duration::ZERO,
            yield_until: Duration::ZERO,
            min_sleep: interval,
            max_sleep: interval,
        }
    }
}

/// Retry with exponential backoff (FW_UPDATE on BLOCKED_BG_TASK, §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per block, the first included.
    pub attempts: u32,
    /// Wait before the first retry.
    pub initial_backoff: Duration,
    /// Longest wait between retries (the backoff doubles up to this).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 8,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
        }
    }
}

/// Options of [`crate::Admin::with_options`].
#[derive(Debug, Clone, PartialEq)]
pub struct AdminOptions {
    /// Multiplies every command's default timeout (tests use small values so nothing waits
    /// seconds; the spec lets callers lengthen them). Per-opcode overrides win.
    pub timeout_scale: f64,
    /// Per-opcode timeouts replacing the scaled default.
    pub timeouts: Vec<(Opcode, Duration)>,
    /// How completions (and other bits) are polled.
    pub poll: PollStrategy,
    /// Bound on waiting for a stale ACRA/NSCRA to read 0 after clearing it (§2.4 step 2).
    pub stale_clear_timeout: Duration,
    /// Bound on waiting for the controller to clear HCI.CD (§3.8 Decision: 10 s) and for
    /// CHI.CDA to drop after HCI.CDC.
    pub dump_timeout: Duration,
    /// Retry policy of FW_UPDATE blocks on BLOCKED_BG_TASK.
    pub fw_retry: RetryPolicy,
}

impl Default for AdminOptions {
    fn default() -> Self {
        Self {
            timeout_scale: 1.0,
            timeouts: Vec::new(),
            poll: PollStrategy::default(),
            stale_clear_timeout: Duration::from_millis(100),
            dump_timeout: Duration::from_secs(10),
            fw_retry: RetryPolicy::default(),
        }
    }
}

impl AdminOptions {
    /// Sets the timeout of one opcode (replacing any earlier override of it).
    pub fn with_timeout(mut self, opcode: Opcode, timeout: Duration) -> Self {
        self.timeouts.retain(|(op, _)| *op != opcode);
        self.timeouts.push((opcode, timeout));
        self
    }

    /// Scales every default timeout (0.01 turns HEARTBEAT's 100 ms into 1 ms).
    pub fn with_timeout_scale(mut self, scale: f64) -> Self {
        self.timeout_scale = scale;
        self
    }

    /// The timeout the send path uses for `opcode`, given its table default.
    pub fn timeout_for(&self, opcode: Opcode, default: Duration) -> Duration {
        if let Some((_, t)) = self.timeouts.iter().find(|(op, _)| *op == opcode) {
            return *t;
        }
        if self.timeout_scale.is_finite() && self.timeout_scale > 0.0 {
            // Saturates instead of panicking on huge scales.
            Duration::try_from_secs_f64(default.as_secs_f64() * self.timeout_scale)
                .unwrap_or(Duration::MAX)
        } else {
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_beats_scale_and_scale_applies_to_defaults() {
        let o = AdminOptions::default()
            .with_timeout_scale(0.01)
            .with_timeout(Opcode::Smart, Duration::from_millis(7));
        assert_eq!(
            o.timeout_for(Opcode::Heartbeat, Duration::from_millis(100)),
            Duration::from_millis(1)
        );
        assert_eq!(
            o.timeout_for(Opcode::Smart, Duration::from_millis(100)),
            Duration::from_millis(7)
        );
        let o = o.with_timeout(Opcode::Smart, Duration::from_millis(9));
        assert_eq!(o.timeouts.len(), 1);
        assert_eq!(
            o.timeout_for(Opcode::Smart, Duration::from_millis(100)),
            Duration::from_millis(9)
        );
    }

    #[test]
    fn nonsense_scale_keeps_the_default() {
        let d = Duration::from_millis(100);
        for s in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let o = AdminOptions::default().with_timeout_scale(s);
            assert_eq!(o.timeout_for(Opcode::Heartbeat, d), d);
        }
        let o = AdminOptions::default().with_timeout_scale(1e300);
        assert_eq!(o.timeout_for(Opcode::Heartbeat, d), Duration::MAX);
    }
}
