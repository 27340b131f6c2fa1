//! Identifiers made in time order: the Unix time in milliseconds, then random bits.
//!
//! Serials and key ids key the store's B-trees: the certificates by serial, the keys by id,
//! the certificates and the audit events by key. Random keys put every issuance on a page
//! of its own in each of those indexes, all over the file, and every page a commit touches
//! is written to the WAL whole; once the store outgrows the page cache they are read from
//! disk first. Keys made in order append to each index's last pages instead (issue 14). The
//! time they tell is no secret: a key's certificate carries it (`notBefore`).

use std::time::{SystemTime, UNIX_EPOCH};

/// A `width`-bit value (at most 128): its top `time_bits` bits are the Unix time in
/// milliseconds (its low bits, should it ever not fit), the rest come from the OS CSPRNG.
pub(crate) fn time_ordered(width: u32, time_bits: u32) -> u128 {
    debug_assert!(time_bits < width && width <= 128);
    // A clock set before 1970 orders nothing, but the random bits still make the value
    // unique, so it is no reason to fail an issuance.
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let random_bits = width - time_bits;
    let time = millis & ((1 << time_bits) - 1);
    let random = u128::from_be_bytes(crate::random_bytes()) >> (128 - random_bits);
    (time << random_bits) | random
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fit_their_width_and_follow_the_clock() {
        let first = time_ordered(96, 44);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = time_ordered(96, 44);
        assert!(first < 1 << 96 && second < 1 << 96);
        assert!(first < second, "made 2 ms apart, in order");
        // The random part differs between two values of the same millisecond.
        let (a, b) = (time_ordered(96, 44), time_ordered(96, 44));
        assert_ne!(a, b);
    }
}
