//! Simulated time: wall time or a manual clock that only tests move.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::config::ClockMode;

/// The card's clock. `now()` is the time since the card was created.
#[derive(Debug)]
pub struct SimClock {
    mode: ClockMode,
    start: Instant,
    /// Nanoseconds added by [`SimClock::advance`].
    offset_ns: AtomicU64,
    /// The firmware thread, woken when time moves.
    waker: OnceLock<Thread>,
}

impl SimClock {
    pub(crate) fn new(mode: ClockMode) -> Self {
        SimClock {
            mode,
            start: Instant::now(),
            offset_ns: AtomicU64::new(0),
            waker: OnceLock::new(),
        }
    }

    pub(crate) fn set_waker(&self, t: Thread) {
        // Set once, right after the firmware thread is spawned.
        let _ = self.waker.set(t);
    }

    pub(crate) fn wake(&self) {
        if let Some(t) = self.waker.get() {
            t.unpark();
        }
    }

    /// Which kind of clock this is.
    pub fn mode(&self) -> ClockMode {
        self.mode
    }

    /// Simulated time since the card was created.
    pub fn now(&self) -> Duration {
        let offset = Duration::from_nanos(self.offset_ns.load(Ordering::SeqCst));
        match self.mode {
            ClockMode::Real => self.start.elapsed().saturating_add(offset),
            ClockMode::Manual => offset,
        }
    }

    /// Moves time forward by `d` (on a real clock this skips ahead of wall time) and
    /// wakes the firmware so that events now due (readiness, delayed completions) happen.
    pub fn advance(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .offset_ns
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_add(ns))
            });
        self.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let c = SimClock::new(ClockMode::Manual);
        assert_eq!(c.now(), Duration::ZERO);
        c.advance(Duration::from_millis(5));
        assert_eq!(c.now(), Duration::from_millis(5));
        c.advance(Duration::MAX);
        assert_eq!(c.now(), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn real_clock_includes_the_offset() {
        let c = SimClock::new(ClockMode::Real);
        c.advance(Duration::from_secs(100));
        assert!(c.now() >= Duration::from_secs(100));
    }
}
