//! Fletcher-64 as Linux and ndctl compute it over index blocks and v1.2 labels
//! (spec labels.md §7.1).

/// Fletcher-64 of `bytes`: little-endian 32-bit words, a wrapping 32-bit sum `lo`, a
/// 64-bit sum `hi` of the running `lo`; result `(hi << 32) | lo`. A tail shorter than a
/// word is ignored, as the kernel's word loop does (every checksummed span here is a
/// multiple of 8 bytes).
pub fn fletcher64(bytes: &[u8]) -> u64 {
    let mut lo: u32 = 0;
    let mut hi: u64 = 0;
    for word in bytes.chunks_exact(4) {
        let w = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        lo = lo.wrapping_add(w);
        hi = hi.wrapping_add(u64::from(lo));
    }
    (hi << 32) | u64::from(lo)
}

/// Fletcher-64 of `bytes` with the 8 bytes at `field` taken as zero (the stored checksum).
pub fn fletcher64_without(bytes: &[u8], field: usize) -> u64 {
    let mut lo: u32 = 0;
    let mut hi: u64 = 0;
    for (i, word) in bytes.chunks_exact(4).enumerate() {
        let at = i * 4;
        let w = if at >= field && at < field + 8 {
            0
        } else {
            u32::from_le_bytes([word[0], word[1], word[2], word[3]])
        };
        lo = lo.wrapping_add(w);
        hi = hi.wrapping_add(u64::from(lo));
    }
    (hi << 32) | u64::from(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fletcher64_of_known_words() {
        // words 1, 2: lo = 1 then 3; hi = 1 + 3 = 4.
        let bytes = [1, 0, 0, 0, 2, 0, 0, 0];
        assert_eq!(fletcher64(&bytes), (4 << 32) | 3);
        assert_eq!(fletcher64(&[]), 0);
    }

    #[test]
    fn fletcher64_lo_wraps_at_32_bits() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0];
        // lo: 0xffff_ffff, then 1 (wrapped); hi: 0xffff_ffff + 1.
        assert_eq!(fletcher64(&bytes), (0x1_0000_0000u64 << 32) | 1);
    }

    #[test]
    fn fletcher64_without_zeroes_the_field() {
        let mut bytes = [7u8; 32];
        let with = fletcher64_without(&bytes, 8);
        bytes[8..16].fill(0);
        assert_eq!(with, fletcher64(&bytes));
    }
}
