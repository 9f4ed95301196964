//! The firmware thread: woken by a doorbell (or by time moving), it services the state,
//! then spins briefly for the next doorbell before parking, so that a command round
//! trip costs microseconds, not a scheduler wake-up.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::card::Inner;
use crate::config::ClockMode;

/// How long the firmware spins for the next doorbell before parking.
pub const SPIN: Duration = Duration::from_micros(75);
/// Doorbell polls between two clock reads while spinning.
const CLOCK_EVERY: u32 = 32;
/// Longest park; a stop or a doorbell unparks it sooner.
const MAX_PARK: Duration = Duration::from_secs(1);

/// The thread's body; returns when the card is dropped.
pub(crate) fn run(inner: Arc<Inner>) {
    loop {
        if inner.stop.load(Ordering::Acquire) {
            return;
        }
        let seen = inner.hw.regs.hci.rung.load(Ordering::Acquire);
        let next = inner.service();
        let spin_end = Instant::now() + SPIN;
        let mut rung = false;
        // The clock is read once per CLOCK_EVERY polls: a clock read costs as much as a
        // poll, and time spent between two polls is latency added to every command.
        'spin: loop {
            for _ in 0..CLOCK_EVERY {
                if inner.hw.regs.hci.rung.load(Ordering::Acquire) != seen
                    || inner.stop.load(Ordering::Acquire)
                {
                    rung = true;
                    break 'spin;
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= spin_end {
                break;
            }
        }
        if rung {
            continue;
        }
        let timeout = match (inner.hw.clock.mode(), next) {
            (ClockMode::Real, Some(t)) => t.saturating_sub(inner.hw.clock.now()),
            _ => MAX_PARK,
        }
        .min(MAX_PARK);
        // `sleeping` is raised before the last look at the count, and a doorbell bumps
        // the count before it looks at `sleeping` (both SeqCst): either this sees the
        // doorbell, or the doorbell sees `sleeping` and leaves an unpark token, so the
        // park returns. While the firmware spins, a doorbell costs no unpark at all.
        inner.sleeping.store(true, Ordering::SeqCst);
        if inner.hw.regs.hci.rung.load(Ordering::SeqCst) == seen && !timeout.is_zero() {
            std::thread::park_timeout(timeout);
        }
        inner.sleeping.store(false, Ordering::SeqCst);
    }
}
