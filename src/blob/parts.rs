//! How large the parts of a multipart upload are. S3 takes at most 10,000
//! parts of at most 5 GiB each (every part but the last at least 5 MiB) and
//! objects of at most 5 TiB, so the configured part size is only a floor:
//!
//! - a body of known length gets one part size, chosen up front so that the
//!   whole body fits in 10,000 parts (its parts are streamed, never held);
//! - a chunked body's parts are held in memory one at a time, so they start
//!   at the configured size and double every 1,000 parts, up to 5 GiB.

/// S3's most parts in one upload.
pub const MAX_PARTS: u64 = 10_000;
/// S3's largest part.
pub const MAX_PART_SIZE: u64 = 5 << 30;
/// S3's largest object.
pub const MAX_OBJECT_SIZE: u64 = 5 << 40;
/// A chunked body's part size doubles after every this many parts.
pub const PARTS_PER_DOUBLING: u64 = 1_000;

const MIB: u64 = 1 << 20;

/// The part size for a body of `length` bytes: `configured` when the body
/// fits in [`MAX_PARTS`] parts of that size, else the smallest whole number
/// of MiB that does.
pub fn for_length(configured: u64, length: u64) -> u64 {
    let configured = configured.max(1);
    if length.div_ceil(configured) <= MAX_PARTS {
        return configured;
    }
    let needed = length.div_ceil(MAX_PARTS).next_multiple_of(MIB);
    needed.min(MAX_PART_SIZE)
}

/// The size of part `number` (counted from 1) of a body of unknown length.
pub fn for_chunked_part(configured: u64, number: u64) -> u64 {
    let doublings = (number.saturating_sub(1) / PARTS_PER_DOUBLING).min(32);
    configured.saturating_mul(1 << doublings).min(MAX_PART_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_PART_SIZE, MIN_PART_SIZE};

    const TIB: u64 = 1 << 40;

    fn parts_needed(length: u64, part_size: u64) -> u64 {
        length.div_ceil(part_size)
    }

    /// What 10,000 chunked parts hold at this configured size.
    fn chunked_capacity(configured: u64) -> u64 {
        (1..=MAX_PARTS)
            .map(|n| for_chunked_part(configured, n))
            .sum()
    }

    #[test]
    fn a_5_tib_body_of_known_length_fits_in_10000_parts() {
        for configured in [MIN_PART_SIZE, DEFAULT_PART_SIZE] {
            let size = for_length(configured, MAX_OBJECT_SIZE);
            assert_eq!(size, 525 * MIB, "whole MiB, just large enough");
            assert!(parts_needed(MAX_OBJECT_SIZE, size) <= MAX_PARTS);
            assert!(parts_needed(MAX_OBJECT_SIZE, size - MIB) > MAX_PARTS);
        }
    }

    #[test]
    fn known_lengths_keep_the_configured_size_while_it_fits() {
        let limit = DEFAULT_PART_SIZE * MAX_PARTS;
        assert_eq!(for_length(DEFAULT_PART_SIZE, 1), DEFAULT_PART_SIZE);
        assert_eq!(for_length(DEFAULT_PART_SIZE, limit), DEFAULT_PART_SIZE);
        let grown = for_length(DEFAULT_PART_SIZE, limit + 1);
        assert_eq!(grown, DEFAULT_PART_SIZE + MIB);
        assert!(parts_needed(limit + 1, grown) <= MAX_PARTS);
        // A larger configured size is never shrunk.
        assert_eq!(for_length(MAX_PART_SIZE, 1), MAX_PART_SIZE);
    }

    #[test]
    fn chunked_parts_double_every_1000_parts() {
        let c = DEFAULT_PART_SIZE;
        assert_eq!(for_chunked_part(c, 1), c);
        assert_eq!(for_chunked_part(c, 1000), c);
        assert_eq!(for_chunked_part(c, 1001), 2 * c);
        assert_eq!(for_chunked_part(c, 2000), 2 * c);
        assert_eq!(for_chunked_part(c, 2001), 4 * c);
        assert_eq!(for_chunked_part(c, 8001), 256 * c);
        assert_eq!(for_chunked_part(c, 9001), MAX_PART_SIZE, "not 512 * 16 MiB");
    }

    #[test]
    fn chunked_parts_never_exceed_5_gib() {
        for configured in [MIN_PART_SIZE, DEFAULT_PART_SIZE, 1 << 30, MAX_PART_SIZE] {
            for number in [1, 1000, 1001, 5000, 9999, 10_000, 65_535] {
                let size = for_chunked_part(configured, number);
                assert!(size <= MAX_PART_SIZE, "{configured} part {number}");
                assert!(size >= configured.min(MAX_PART_SIZE));
            }
        }
        assert_eq!(for_chunked_part(1 << 30, 10_000), MAX_PART_SIZE);
    }

    #[test]
    fn a_5_tib_chunked_body_fits_at_the_default_part_size() {
        assert!(chunked_capacity(DEFAULT_PART_SIZE) >= MAX_OBJECT_SIZE);
        assert!(chunked_capacity(6 * MIB) >= MAX_OBJECT_SIZE);
        // At S3's 5 MiB minimum, 10,000 growing parts hold a little less.
        let at_minimum = chunked_capacity(MIN_PART_SIZE);
        assert!(at_minimum > 4 * TIB + 800 * (1 << 30), "{at_minimum}");
        assert!(at_minimum < MAX_OBJECT_SIZE);
    }
}
