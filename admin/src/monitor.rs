//! Events (§4): a thread polls CHI at a configurable interval and turns its transitions
//! into typed events, delivered on a crossbeam channel and signalled on an eventfd (so a
//! user can put the monitor in an epoll loop). Under VFIO the card's interrupts are not
//! available, so polling is the mechanism, not a fallback.

use crate::admin::Admin;
use crate::error::AdminError;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use nix::sys::eventfd::{EfdFlags, EventFd};
use ocxlpmem_regs::{offsets, Chi, Mmio};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A condition worth telling a user about, reported once per transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// CHI.ELA rose: at least one error log entry is queued.
    ErrorLogAvailable,
    /// CHI.CDA rose: a controller dump is available.
    DumpAvailable,
    /// CHI.CFFS rose: the firmware is in a fatal state.
    FirmwareFatal,
    /// CHI.CHFS rose: the hardware is in a fatal state.
    HardwareFatal,
    /// CRDY & MA stopped being both set.
    ReadyLost {
        /// The CHI value that showed it.
        chi: u64,
    },
    /// CRDY & MA are both set again after [`Event::ReadyLost`].
    ReadyRestored,
    /// CHI read all ones: the device is gone (surprise removal) or EEH-frozen.
    DeviceGone,
    /// CHI reads a status again after [`Event::DeviceGone`] or [`Event::AccessFailed`].
    DeviceBack,
    /// Reading CHI failed in the transport.
    AccessFailed {
        /// The error, as text (the monitor thread keeps running).
        error: String,
    },
}

/// Options of [`Monitor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorOptions {
    /// Time between two CHI reads.
    pub interval: Duration,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(10),
        }
    }
}

/// What one poll saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reading {
    Chi(u64),
    Gone,
    Failed(String),
}

/// The transition state: the last reading and the last real CHI value.
#[derive(Debug)]
struct Tracker {
    last: Reading,
    last_chi: u64,
}

impl Tracker {
    /// The baseline is a ready card with nothing pending, so conditions already present
    /// when the monitor starts are reported once too.
    fn new() -> Self {
        Self {
            last: Reading::Chi(Chi::CRDY | Chi::MA),
            last_chi: Chi::CRDY | Chi::MA,
        }
    }

    fn update(&mut self, now: Reading) -> Vec<Event> {
        let mut ev = Vec::new();
        match &now {
            Reading::Gone if self.last != Reading::Gone => ev.push(Event::DeviceGone),
            Reading::Failed(e) if !matches!(self.last, Reading::Failed(_)) => {
                ev.push(Event::AccessFailed { error: e.clone() })
            }
            Reading::Chi(c) => {
                if !matches!(self.last, Reading::Chi(_)) {
                    ev.push(Event::DeviceBack);
                }
                let (old, new) = (self.last_chi, *c);
                let rose = |bit: u64| old & bit == 0 && new & bit != 0;
                for (bit, e) in [
                    (Chi::ELA, Event::ErrorLogAvailable),
                    (Chi::CDA, Event::DumpAvailable),
                    (Chi::CFFS, Event::FirmwareFatal),
                    (Chi::CHFS, Event::HardwareFatal),
                ] {
                    if rose(bit) {
                        ev.push(e);
                    }
                }
                let (was, is) = (Chi(old).is_ready(), Chi(new).is_ready());
                if was && !is {
                    ev.push(Event::ReadyLost { chi: new });
                } else if !was && is {
                    ev.push(Event::ReadyRestored);
                }
                self.last_chi = new;
            }
            _ => {}
        }
        self.last = now;
        ev
    }
}

/// Polls CHI on its own thread until dropped.
#[derive(Debug)]
pub struct Monitor {
    events: Receiver<Event>,
    eventfd: Arc<EventFd>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    /// Starts monitoring the card behind `admin`.
    pub fn for_admin(admin: &Admin, opts: MonitorOptions) -> Result<Self, AdminError> {
        Self::start(admin.mmio_arc(), opts)
    }

    /// Starts monitoring the global MMIO area `mmio` (only CHI is read).
    pub fn start(mmio: Arc<dyn Mmio>, opts: MonitorOptions) -> Result<Self, AdminError> {
        let eventfd =
            EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
                .map_err(|errno| AdminError::Monitor {
                    what: "creating the eventfd",
                    errno,
                })?;
        let eventfd = Arc::new(eventfd);
        let (tx, rx) = crossbeam_channel::unbounded();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let efd = Arc::clone(&eventfd);
        let thread = std::thread::Builder::new()
            .name("ocxlpmem-monitor".into())
            .spawn(move || {
                let mut tracker = Tracker::new();
                loop {
                    let reading = match mmio.read_u64(offsets::CHI) {
                        Ok(v) if Chi(v).is_all_ones() => Reading::Gone,
                        Ok(v) => Reading::Chi(v),
                        Err(e) => Reading::Failed(e.to_string()),
                    };
                    for e in tracker.update(reading) {
                        tracing::debug!(event = ?e, "card event");
                        if tx.send(e).is_err() {
                            return;
                        }
                        if let Err(errno) = efd.write(1) {
                            tracing::warn!(%errno, "signalling the monitor eventfd failed");
                        }
                    }
                    match stop_rx.recv_timeout(opts.interval) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                }
            })
            .map_err(|e| AdminError::Monitor {
                what: "spawning the monitor thread",
                errno: e
                    .raw_os_error()
                    .map_or(nix::errno::Errno::EAGAIN, nix::errno::Errno::from_raw),
            })?;
        Ok(Self {
            events: rx,
            eventfd,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The event channel (clone it to hand it to another thread).
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// An eventfd whose counter grows by one per event, signalled after the event is
    /// queued: poll it for readability, then call [`Monitor::take_signals`] and drain
    /// [`Monitor::events`].
    pub fn eventfd(&self) -> BorrowedFd<'_> {
        self.eventfd.as_fd()
    }

    /// Reads and resets the eventfd counter (0 if nothing was signalled).
    pub fn take_signals(&self) -> Result<u64, AdminError> {
        match self.eventfd.read() {
            Ok(n) => Ok(n),
            Err(nix::errno::Errno::EAGAIN) => Ok(0),
            Err(errno) => Err(AdminError::Monitor {
                what: "reading the eventfd",
                errno,
            }),
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        // Disconnecting the stop channel wakes the thread at once.
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::warn!("the monitor thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: u64 = Chi::CRDY | Chi::MA;

    #[test]
    fn each_condition_is_reported_once_per_rising_edge() {
        let mut t = Tracker::new();
        assert_eq!(t.update(Reading::Chi(READY)), []);
        assert_eq!(
            t.update(Reading::Chi(READY | Chi::ELA)),
            [Event::ErrorLogAvailable]
        );
        assert_eq!(t.update(Reading::Chi(READY | Chi::ELA)), []);
        assert_eq!(t.update(Reading::Chi(READY)), []);
        assert_eq!(
            t.update(Reading::Chi(READY | Chi::ELA)),
            [Event::ErrorLogAvailable]
        );
        assert_eq!(
            t.update(Reading::Chi(READY | Chi::CDA | Chi::CFFS | Chi::CHFS)),
            [
                Event::DumpAvailable,
                Event::FirmwareFatal,
                Event::HardwareFatal
            ]
        );
    }

    #[test]
    fn ready_lost_and_restored() {
        let mut t = Tracker::new();
        assert_eq!(
            t.update(Reading::Chi(Chi::CRDY)),
            [Event::ReadyLost { chi: Chi::CRDY }]
        );
        assert_eq!(t.update(Reading::Chi(0)), []);
        assert_eq!(t.update(Reading::Chi(READY)), [Event::ReadyRestored]);
    }

    #[test]
    fn gone_and_back_are_transitions_and_bits_compare_with_the_last_real_chi() {
        let mut t = Tracker::new();
        assert_eq!(t.update(Reading::Gone), [Event::DeviceGone]);
        assert_eq!(t.update(Reading::Gone), []);
        assert_eq!(
            t.update(Reading::Chi(READY | Chi::ELA)),
            [Event::DeviceBack, Event::ErrorLogAvailable]
        );
        let f = t.update(Reading::Failed("boom".into()));
        assert_eq!(
            f,
            [Event::AccessFailed {
                error: "boom".into()
            }]
        );
        assert_eq!(t.update(Reading::Failed("again".into())), []);
        assert_eq!(
            t.update(Reading::Chi(READY | Chi::ELA)),
            [Event::DeviceBack]
        );
    }

    #[test]
    fn conditions_present_at_start_are_reported() {
        let mut t = Tracker::new();
        assert_eq!(
            t.update(Reading::Chi(Chi::ELA)),
            [Event::ErrorLogAvailable, Event::ReadyLost { chi: Chi::ELA }]
        );
    }

    #[test]
    fn thread_delivers_on_channel_and_eventfd_and_stops_on_drop() {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use ocxlpmem_regs::VecMmio;
        let mem = Arc::new(VecMmio::new(0x400));
        mem.write_u64(offsets::CHI, READY).unwrap();
        let opts = MonitorOptions {
            interval: Duration::from_micros(200),
        };
        let m = Monitor::start(mem.clone(), opts).unwrap();
        let wait = Duration::from_secs(5);
        mem.write_u64(offsets::CHI, READY | Chi::ELA).unwrap();
        assert_eq!(m.events().recv_timeout(wait), Ok(Event::ErrorLogAvailable));
        // The thread queues the event before it signals: wait for the eventfd.
        let mut fds = [PollFd::new(m.eventfd(), PollFlags::POLLIN)];
        assert_eq!(poll(&mut fds, PollTimeout::from(5000u16)), Ok(1));
        assert_eq!(m.take_signals().unwrap(), 1);
        assert_eq!(m.take_signals().unwrap(), 0);
        mem.write_u64(offsets::CHI, u64::MAX).unwrap();
        assert_eq!(m.events().recv_timeout(wait), Ok(Event::DeviceGone));
        mem.write_u64(offsets::CHI, READY | Chi::ELA).unwrap();
        assert_eq!(m.events().recv_timeout(wait), Ok(Event::DeviceBack));
        let rx = m.events().clone();
        drop(m);
        // The thread is gone: the channel disconnects once drained.
        assert_eq!(rx.recv_timeout(wait), Err(RecvTimeoutError::Disconnected));
    }
}
