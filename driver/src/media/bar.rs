//! The card's LPC memory (BAR 4) mapped through a transport.
//!
//! On the card this is the persistent memory itself: coherent with the CPU caches, so a
//! store is persistent once its cache line is flushed and the flush has drained
//! ([`Granularity::CacheLine`]). The whole BAR is mapped once; the window owns the mapping.
//!
//! A transport has no bad-block query, so the window's bad ranges come from whoever knows
//! them: a fixed list ([`BarWindow::with_bad_ranges`]) or a live source
//! ([`BarWindow::with_bad_range_source`], e.g. the simulator's `SimCard::bad_ranges`).

use std::fmt;
use std::io;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::Arc;

use std::path::PathBuf;

use super::file::{check_lpc_size, normalize_ranges, WindowError};
use super::{Granularity, MediaKind, MediaWindow};
use crate::transport::{region, RegionMap, Transport, TransportError};

/// Where a window's bad ranges come from: asked each time, since media can go bad while
/// the window is open.
pub type BadRangeSource = Arc<dyn Fn() -> Vec<Range<u64>> + Send + Sync>;

/// BAR 4 of a card, mapped.
pub struct BarWindow {
    map: RegionMap,
    describe: String,
    bad: Option<BadRangeSource>,
}

impl fmt::Debug for BarWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarWindow")
            .field("map", &self.map)
            .field("describe", &self.describe)
            .field("bad_range_source", &self.bad.is_some())
            .finish()
    }
}

impl BarWindow {
    /// Maps the whole of BAR 4 of `transport`.
    pub fn open(transport: &dyn Transport) -> Result<BarWindow, TransportError> {
        let info = transport.region_info(region::BAR4)?;
        if info.size == 0 {
            return Err(TransportError::NoSuchRegion {
                index: region::BAR4,
                device: transport.describe(),
            });
        }
        let map = transport.map_region(region::BAR4, 0, info.size)?;
        Ok(BarWindow {
            map,
            describe: format!("{} BAR 4 ({} MiB)", transport.describe(), info.size >> 20),
            bad: None,
        })
    }

    /// As [`BarWindow::open`], checking the BAR the way every window is checked: larger than
    /// the label area, and exactly `lpc_size` bytes when that is given (from the AFU
    /// descriptor).
    pub fn open_expecting(
        transport: &dyn Transport,
        lpc_size: Option<u64>,
    ) -> Result<BarWindow, WindowError> {
        let info = transport.region_info(region::BAR4)?;
        let path = PathBuf::from(format!("{} BAR 4", transport.describe()));
        if let Some(expected) = lpc_size.filter(|&e| e != info.size) {
            return Err(WindowError::SizeMismatch {
                path,
                expected,
                actual: info.size,
                fix: "the card's BAR 4 must be its LPC memory; check the AFU descriptor's \
                      LPC size and the simulator's --lpc-size",
            });
        }
        check_lpc_size(info.size)?;
        Ok(BarWindow::open(transport)?)
    }

    /// Declares a fixed list of bad byte ranges (window offsets); they are sorted, merged
    /// and clipped to the window.
    pub fn with_bad_ranges(self, ranges: Vec<Range<u64>>) -> BarWindow {
        self.with_bad_range_source(Arc::new(move || ranges.clone()))
    }

    /// Asks `source` for the bad byte ranges each time they are wanted (for the simulator:
    /// `let c = card.clone(); Arc::new(move || c.bad_ranges())`).
    pub fn with_bad_range_source(mut self, source: BadRangeSource) -> BarWindow {
        self.bad = Some(source);
        self
    }
}

impl MediaWindow for BarWindow {
    fn kind(&self) -> MediaKind {
        MediaKind::Bar
    }

    fn len(&self) -> u64 {
        self.map.len() as u64
    }

    fn base(&self) -> NonNull<u8> {
        self.map.as_ptr()
    }

    fn granularity(&self) -> Granularity {
        Granularity::CacheLine
    }

    fn sync(&self, range: Range<u64>) -> io::Result<()> {
        super::check_sync_range(&range, self.len())?;
        let (start, n) = (range.start as usize, (range.end - range.start) as usize);
        // SAFETY: [start, start + n) lies inside the mapping, which lives as long as self.
        unsafe { crate::pmem::persist(self.map.as_ptr().as_ptr().add(start), n) };
        Ok(())
    }

    fn bad_ranges(&self) -> Vec<Range<u64>> {
        match &self.bad {
            Some(source) => normalize_ranges(source(), self.len()),
            None => Vec::new(),
        }
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use super::*;
    use crate::transport::sim::SimTransport;
    use ocxlpmem_sim::{SimCard, SimConfig};

    #[test]
    fn bar_window_maps_the_whole_lpc_memory_and_syncs_inside_it() {
        let cfg = SimConfig {
            lpc_size: 64 << 20,
            ..SimConfig::default()
        };
        let t = SimTransport::new(SimCard::new(cfg).unwrap());
        let w = BarWindow::open(&t).unwrap();
        assert_eq!(w.len(), 64 << 20);
        assert_eq!(w.kind(), MediaKind::Bar);
        // SAFETY: offset 0x2000 is inside the 64 MiB window.
        unsafe { w.base().as_ptr().add(0x2000).write_volatile(0xc3) };
        w.sync(0x2000..0x2001).unwrap();
        let mut b = [0u8; 1];
        t.region_read(region::BAR4, 0x2000, &mut b).unwrap();
        assert_eq!(b[0], 0xc3);
        assert!(w.sync(0..(64 << 20) + 1).is_err());
        assert!(w.describe().contains("BAR 4 (64 MiB)"), "{}", w.describe());
    }

    #[test]
    fn open_expecting_checks_the_bar_size_against_lpc_size() {
        let cfg = SimConfig {
            lpc_size: 64 << 20,
            ..SimConfig::default()
        };
        let t = SimTransport::new(SimCard::new(cfg).unwrap());
        assert_eq!(
            BarWindow::open_expecting(&t, Some(64 << 20)).unwrap().len(),
            64 << 20
        );
        BarWindow::open_expecting(&t, None).unwrap();
        let e = BarWindow::open_expecting(&t, Some(128 << 20)).unwrap_err();
        assert!(
            matches!(e, WindowError::SizeMismatch { actual, .. } if actual == 64 << 20),
            "{e}"
        );
        assert!(e.to_string().contains("BAR 4"), "{e}");
    }

    #[test]
    fn bad_ranges_follow_the_simulated_cards_poison() {
        let card = SimCard::new(SimConfig {
            lpc_size: 32 << 20,
            ..SimConfig::default()
        })
        .unwrap();
        let t = SimTransport::new(card.clone());
        let c = card.clone();
        let w = BarWindow::open(&t)
            .unwrap()
            .with_bad_range_source(Arc::new(move || c.bad_ranges()));
        assert!(w.bad_ranges().is_empty());
        card.poison(0x5000..0x5100);
        card.poison(0x1000..0x1040);
        assert_eq!(w.bad_ranges(), vec![0x1000..0x1040, 0x5000..0x5100]);
        let fixed = BarWindow::open(&t)
            .unwrap()
            .with_bad_ranges(vec![(32 << 20) - 8..(40 << 20), 0x40..0x80]);
        assert_eq!(
            fixed.bad_ranges(),
            vec![0x40..0x80, (32 << 20) - 8..32 << 20]
        );
    }
}
