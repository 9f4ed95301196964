//! Free-space allocation in a region: the complement of the claimed ranges, aligned.

use std::ops::Range;

/// A free byte range of a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Extent {
    /// Start (aligned).
    pub offset: u64,
    /// Length (a multiple of the alignment).
    pub len: u64,
}

/// The free extents of a region of `size` bytes in which `used` is claimed (ranges may
/// overlap, be empty or reach past the region: all are tolerated, as labels are
/// untrusted), each shrunk to `align` (a power of two) at both ends, in offset order.
pub fn free_extents(size: u64, used: &[Range<u64>], align: u64) -> Vec<Extent> {
    let align = align.max(1);
    let mut claimed: Vec<Range<u64>> = used
        .iter()
        .filter(|r| r.start < r.end && r.start < size)
        .map(|r| r.start..r.end.min(size))
        .collect();
    claimed.sort_by_key(|r| r.start);
    let mut out = Vec::new();
    let mut at = 0u64;
    let mut push = |from: u64, to: u64| {
        let start = from.checked_next_multiple_of(align).unwrap_or(u64::MAX);
        let end = to / align * align;
        if start < end {
            out.push(Extent {
                offset: start,
                len: end - start,
            });
        }
    };
    for r in claimed {
        if r.start > at {
            push(at, r.start);
        }
        at = at.max(r.end);
    }
    if at < size {
        push(at, size);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const M: u64 = 1 << 20;

    #[test]
    fn holes_between_claims_aligned() {
        let e = free_extents(
            100 * M,
            &[(10 * M)..(20 * M), (30 * M + 1)..(40 * M)],
            2 * M,
        );
        assert_eq!(
            e,
            [
                Extent {
                    offset: 0,
                    len: 10 * M
                },
                Extent {
                    offset: 20 * M,
                    len: 10 * M
                },
                Extent {
                    offset: 40 * M,
                    len: 60 * M
                },
            ]
        );
    }

    #[test]
    fn overlapping_empty_and_wild_claims_are_tolerated() {
        let e = free_extents(
            64 * M,
            &[
                (8 * M)..(16 * M),
                (12 * M)..(20 * M),
                (5 * M)..(5 * M),
                (60 * M)..u64::MAX,
                u64::MAX..u64::MAX,
            ],
            M,
        );
        assert_eq!(
            e,
            [
                Extent {
                    offset: 0,
                    len: 8 * M
                },
                Extent {
                    offset: 20 * M,
                    len: 40 * M
                }
            ]
        );
        let all = vec![Range {
            start: 0,
            end: u64::MAX,
        }];
        assert!(free_extents(64 * M, &all, M).is_empty());
    }

    proptest! {
        #[test]
        fn extents_never_touch_a_claim_and_cover_the_rest(
            claims in proptest::collection::vec((0u64..256, 0u64..64), 0..12),
        ) {
            let size = 256 * M;
            let used: Vec<Range<u64>> = claims.iter().map(|&(s, l)| (s * M)..((s + l) * M)).collect();
            let free = free_extents(size, &used, M);
            let mut covered = 0;
            for e in &free {
                prop_assert_eq!(e.offset % M, 0);
                prop_assert!(e.offset + e.len <= size);
                for u in &used {
                    prop_assert!(e.offset + e.len <= u.start || u.end <= e.offset || u.start >= u.end);
                }
                covered += e.len;
            }
            // Every MiB not claimed is in some extent.
            let claimed = (0..256u64).filter(|m| used.iter().any(|u| u.start <= m * M && m * M < u.end)).count() as u64;
            prop_assert_eq!(covered, size - claimed * M);
        }
    }
}
