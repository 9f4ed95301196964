//! The one bounded wait: spin, then yield, then sleep with backoff, and re-check once
//! after the deadline before giving up (STYLE.md, CXL mailbox notes).

use crate::error::AdminError;
use crate::options::PollStrategy;
use std::time::{Duration, Instant};

/// In the spin phase the clock is read once per this many checks (a check and a spin
/// hint take well under 100 ns, so the deadline is still noticed within microseconds).
const SPINS_PER_CLOCK_READ: u32 = 8;

/// Polls `check` until it yields a value or `timeout` passes.
///
/// Returns `Ok(Ok(value))` when `check` produced one, `Ok(Err(waited))` on timeout, and
/// `Err` as soon as `check` fails. The deadline is noticed *before* a check, so the last
/// check always runs after the deadline: a completion that lands while the waiter was
/// asleep is still seen.
pub(crate) fn poll_until<T>(
    strategy: &PollStrategy,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>, AdminError>,
) -> Result<Result<T, Duration>, AdminError> {
    let start = Instant::now();
    let mut sleep = strategy.min_sleep.max(Duration::from_micros(1));
    let mut elapsed = Duration::ZERO;
    let mut spins = 0u32;
    loop {
        let expired = elapsed >= timeout;
        if let Some(v) = check()? {
            return Ok(Ok(v));
        }
        if expired {
            return Ok(Err(start.elapsed()));
        }
        if elapsed < strategy.spin {
            // Fast path: one spin hint between reads (a pause costs tens of ns, and every
            // one between two reads is latency added to the completion), and the clock
            // read only every few rounds, for the same reason.
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(SPINS_PER_CLOCK_READ) {
                elapsed = start.elapsed();
            }
            continue;
        }
        if elapsed < strategy.yield_until {
            std::thread::yield_now();
        } else {
            let remaining = timeout.saturating_sub(elapsed);
            std::thread::sleep(sleep.min(remaining).max(Duration::from_micros(1)));
            sleep = (sleep * 2).min(strategy.max_sleep.max(strategy.min_sleep));
        }
        elapsed = start.elapsed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn returns_the_value_on_first_success() {
        let n = Cell::new(0);
        let r = poll_until(&PollStrategy::default(), Duration::from_secs(1), || {
            n.set(n.get() + 1);
            Ok((n.get() == 3).then_some(n.get()))
        });
        assert!(matches!(r, Ok(Ok(3))));
    }

    #[test]
    fn rechecks_once_after_the_deadline() {
        // With a zero timeout the first check already counts as the re-check: exactly
        // one call, and a success there still wins.
        let n = Cell::new(0);
        let r = poll_until(&PollStrategy::default(), Duration::ZERO, || {
            n.set(n.get() + 1);
            Ok(None::<()>)
        });
        assert!(matches!(r, Ok(Err(_))));
        assert_eq!(n.get(), 1);
        let r = poll_until(&PollStrategy::default(), Duration::ZERO, || Ok(Some(7)));
        assert!(matches!(r, Ok(Ok(7))));
    }

    #[test]
    fn sleeping_phase_still_times_out() {
        let s = PollStrategy::sleep_only(Duration::from_micros(200));
        let r = poll_until(&s, Duration::from_millis(2), || Ok(None::<()>));
        match r {
            Ok(Err(waited)) => assert!(waited >= Duration::from_millis(2)),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }

    #[test]
    fn errors_stop_the_wait() {
        let r: Result<Result<(), _>, _> =
            poll_until(&PollStrategy::default(), Duration::from_secs(1), || {
                Err(AdminError::Gone { offset: 0 })
            });
        assert!(matches!(r, Err(AdminError::Gone { offset: 0 })));
    }
}
