//! Readiness (spec §1.4): wait until CHI shows CRDY and MA, bounded by the CCAP0 budget,
//! polling adaptively so a ready card is seen within about a millisecond.

use std::time::{Duration, Instant};

use ocxlpmem_regs::{offsets, Chi, Mmio, MmioError};

/// The first pause between two CHI reads; pauses double up to [`MAX_PAUSE`].
pub const FIRST_PAUSE: Duration = Duration::from_micros(10);
/// The longest pause between two CHI reads (the detection latency of a ready card).
pub const MAX_PAUSE: Duration = Duration::from_millis(1);

/// How a wait for readiness ended, when it did not succeed.
#[derive(Debug)]
pub enum NotReady {
    /// Reading CHI failed.
    Access(MmioError),
    /// CHI read all ones.
    Gone,
    /// CFFS or CHFS is set.
    Fatal(Chi),
    /// The budget ran out; the last CHI read.
    Timeout {
        /// CHI at the deadline.
        chi: Chi,
        /// How long was waited.
        waited: Duration,
    },
}

/// What a successful wait saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// CHI when it showed CRDY and MA.
    pub chi: Chi,
    /// How long the wait took.
    pub waited: Duration,
    /// How many times CHI was read.
    pub polls: u32,
}

/// Waits until CHI shows CRDY and MA, for at most `budget`, re-checking once after the
/// deadline. Fatal states and all-ones reads end the wait at once.
pub fn wait_ready(mmio: &dyn Mmio, budget: Duration) -> Result<Ready, NotReady> {
    let start = Instant::now();
    let deadline = start + budget;
    let mut pause = FIRST_PAUSE;
    let mut polls = 0u32;
    loop {
        let late = Instant::now() >= deadline;
        let raw = mmio.read_u64(offsets::CHI).map_err(NotReady::Access)?;
        polls = polls.saturating_add(1);
        let chi = Chi(raw);
        if chi.is_all_ones() {
            return Err(NotReady::Gone);
        }
        if chi.is_fatal() {
            return Err(NotReady::Fatal(chi));
        }
        if chi.is_ready() {
            return Ok(Ready {
                chi,
                waited: start.elapsed(),
                polls,
            });
        }
        if late {
            return Err(NotReady::Timeout {
                chi,
                waited: start.elapsed(),
            });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// The name of what is missing from a not-ready CHI.
pub fn missing(chi: Chi) -> &'static str {
    match (chi.0 & Chi::CRDY != 0, chi.0 & Chi::MA != 0) {
        (false, false) => "CRDY and MA",
        (false, true) => "CRDY",
        (true, false) => "MA",
        (true, true) => "nothing",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocxlpmem_regs::VecMmio;
    use std::sync::Arc;

    #[test]
    fn ready_card_is_seen_on_the_first_read() {
        let m = VecMmio::new(0x300);
        m.write_u64(offsets::CHI, Chi::CRDY | Chi::MA).unwrap();
        let r = wait_ready(&m, Duration::ZERO).unwrap();
        assert_eq!(r.polls, 1);
    }

    #[test]
    fn timeout_names_the_missing_bit_after_a_final_recheck() {
        let m = VecMmio::new(0x300);
        m.write_u64(offsets::CHI, Chi::CRDY).unwrap();
        match wait_ready(&m, Duration::from_millis(5)) {
            Err(NotReady::Timeout { chi, .. }) => assert_eq!(missing(chi), "MA"),
            other => panic!("{other:?}"),
        }
        assert_eq!(missing(Chi(0)), "CRDY and MA");
        assert_eq!(missing(Chi(Chi::MA)), "CRDY");
    }

    #[test]
    fn fatal_and_gone_end_the_wait_at_once() {
        let m = VecMmio::new(0x300);
        m.write_u64(offsets::CHI, Chi::CFFS).unwrap();
        // A budget that would never end: the wait must not use it.
        assert!(matches!(
            wait_ready(&m, Duration::from_secs(3600)),
            Err(NotReady::Fatal(_))
        ));
        m.write_u64(offsets::CHI, u64::MAX).unwrap();
        assert!(matches!(
            wait_ready(&m, Duration::from_secs(3600)),
            Err(NotReady::Gone)
        ));
    }

    #[test]
    fn a_card_that_becomes_ready_later_is_seen() {
        let m = Arc::new(VecMmio::new(0x300));
        let m2 = Arc::clone(&m);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            m2.write_u64(offsets::CHI, Chi::CRDY | Chi::MA).unwrap();
        });
        let r = wait_ready(m.as_ref(), Duration::from_secs(10)).unwrap();
        t.join().unwrap();
        assert!(r.polls > 1);
        assert!(r.chi.is_ready());
    }

    #[test]
    fn out_of_bounds_is_an_access_error() {
        let m = VecMmio::new(0);
        assert!(matches!(
            wait_ready(&m, Duration::ZERO),
            Err(NotReady::Access(_))
        ));
    }
}
