//! Log-linear latency buckets: the one histogram layout shared by the scoreboard (where workers count their
//! requests, lock-free), the stats that add slots up and travel to the emperor, and the API's percentiles.
//!
//! Why log-linear: a fixed number of sub-buckets per power of two keeps the relative error of any percentile
//! constant (≈ 3 %) from 1 µs to minutes, in a thousand counters a worker can bump with one relaxed add. A
//! bucket index is all that travels; these functions turn it back into microseconds.

/// Log-linear latency buckets: `SUB_BUCKETS` per power of two of microseconds, so any percentile read from them
/// is within 1/SUB_BUCKETS (≈ 3 %) of the truth, from 1 µs to ~2^30 µs (≈ 18 minutes).
pub const SUB_BUCKETS: usize = 32;
pub const OCTAVES: usize = 31;
pub const LATENCY_BUCKETS: usize = SUB_BUCKETS * OCTAVES;

/// Index of the log-linear bucket holding `micros`.
pub fn latency_bucket(micros: u64) -> usize {
    let v = micros.max(1);
    let octave = 63 - v.leading_zeros() as usize; // floor(log2 v)
    if octave >= OCTAVES {
        return LATENCY_BUCKETS - 1;
    }
    // The 5 bits below the leading one select the sub-bucket (SUB_BUCKETS = 32).
    let fraction = if octave >= 5 { v >> (octave - 5) } else { v << (5 - octave) };
    octave * SUB_BUCKETS + (fraction as usize & (SUB_BUCKETS - 1))
}

/// The smallest value that falls in `bucket` (the inverse of [`latency_bucket`], for percentile estimates).
pub fn bucket_lower_bound_us(bucket: usize) -> u64 {
    let octave = bucket / SUB_BUCKETS;
    let sub = (bucket % SUB_BUCKETS) as u64;
    let base = 1u64 << octave;
    base + (base * sub) / SUB_BUCKETS as u64
}

/// The middle of a bucket, in µs.
pub fn bucket_midpoint_us(bucket: usize) -> f64 {
    let low = bucket_lower_bound_us(bucket) as f64;
    (low + bucket_upper_bound_us(bucket) as f64) / 2.0
}

/// The first value of the next bucket (the exclusive upper bound of `bucket`), in µs.
pub fn bucket_upper_bound_us(bucket: usize) -> u64 {
    if bucket + 1 >= SUB_BUCKETS * OCTAVES {
        return 1u64 << OCTAVES;
    }
    bucket_lower_bound_us(bucket + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in [1u64, 2, 3, 31, 32, 33, 100, 1_000, 1_001, 65_536, 1_000_000, 60_000_000] {
            let b = latency_bucket(v);
            assert!(b >= last, "bucket for {v} went backwards");
            last = b;
            let low = bucket_lower_bound_us(b);
            assert!(low <= v, "{v}: lower bound {low} above value");
            assert!((v - low) as f64 <= v as f64 / SUB_BUCKETS as f64 + 1.0, "{v}: bucket too wide (low {low})");
        }
    }
}
