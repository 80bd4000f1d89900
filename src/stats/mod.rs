//! Request statistics as they travel from the scoreboard to the API.
//!
//! The scoreboard ([`crate::scoreboard`]) holds each live worker's counters. The master adds them up,
//! with those of the workers that have exited, into one cumulative [`Counters`] for the whole group, and sends
//! it to the emperor every second. The emperor turns consecutive snapshots into per-second deltas
//! ([`window::VassalMetrics`]): rates, percentiles over the last minute, the history behind the charts, and
//! totals that survive reloads. Cumulative snapshots make a lost or late heartbeat harmless: the next one
//! carries everything.

pub mod uwsgi;
pub mod window;

use serde::{Deserialize, Serialize};

use crate::latency::{bucket_midpoint_us, LATENCY_BUCKETS};
use crate::scoreboard::{WorkerSlot, TRACKED_CODES};

/// Request counters of a group of workers, cumulative since the group's master started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub requests: u64,
    pub exceptions: u64,
    pub harakiri: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Sum of request durations (µs).
    pub running_time_us: u64,
    /// By status class: index 1–5 are 1xx–5xx; index 0 counts requests that ended without a status (the client
    /// went away before the app answered).
    pub classes: [u64; 6],
    /// The [`TRACKED_CODES`] that occurred, with their counts.
    #[serde(default)]
    pub codes: Vec<(u16, u64)>,
    pub latency: Histogram,
}

impl Counters {
    /// Adds one worker's scoreboard slot.
    pub fn add_slot(&mut self, slot: &WorkerSlot) {
        use std::sync::atomic::Ordering::Relaxed;
        self.requests += slot.requests.load(Relaxed);
        self.exceptions += slot.exceptions.load(Relaxed);
        self.harakiri += slot.harakiri_count.load(Relaxed);
        self.bytes_in += slot.bytes_in.load(Relaxed);
        self.bytes_out += slot.bytes_out.load(Relaxed);
        self.running_time_us += slot.running_time_us.load(Relaxed);
        for (total, counter) in self.classes.iter_mut().zip(&slot.status_classes) {
            *total += counter.load(Relaxed);
        }
        for (code, counter) in TRACKED_CODES.iter().zip(&slot.tracked_codes) {
            let count = counter.load(Relaxed);
            if count > 0 {
                self.add_code(*code, count);
            }
        }
        self.latency.add_slot(slot);
    }

    fn add_code(&mut self, code: u16, count: u64) {
        match self.codes.iter_mut().find(|(c, _)| *c == code) {
            Some((_, total)) => *total += count,
            None => {
                self.codes.push((code, count));
                self.codes.sort_unstable();
            }
        }
    }

    pub fn add(&mut self, other: &Counters) {
        self.requests += other.requests;
        self.exceptions += other.exceptions;
        self.harakiri += other.harakiri;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.running_time_us += other.running_time_us;
        for (total, count) in self.classes.iter_mut().zip(&other.classes) {
            *total += count;
        }
        for &(code, count) in &other.codes {
            self.add_code(code, count);
        }
        self.latency.add(&other.latency);
    }

    /// What happened between `earlier` and `self`, two snapshots of the same group. A counter that went
    /// backwards means the group restarted its counting (a master re-executed itself): everything it shows
    /// now is new.
    pub fn since(&self, earlier: &Counters) -> Counters {
        if self.requests < earlier.requests || self.bytes_out < earlier.bytes_out {
            return self.clone();
        }
        let mut delta = Counters {
            requests: self.requests - earlier.requests,
            exceptions: self.exceptions.saturating_sub(earlier.exceptions),
            harakiri: self.harakiri.saturating_sub(earlier.harakiri),
            bytes_in: self.bytes_in.saturating_sub(earlier.bytes_in),
            bytes_out: self.bytes_out - earlier.bytes_out,
            running_time_us: self.running_time_us.saturating_sub(earlier.running_time_us),
            classes: std::array::from_fn(|i| self.classes[i].saturating_sub(earlier.classes[i])),
            codes: Vec::new(),
            latency: self.latency.since(&earlier.latency),
        };
        for &(code, count) in &self.codes {
            let before = earlier.codes.iter().find(|(c, _)| *c == code).map_or(0, |(_, n)| *n);
            if count > before {
                delta.codes.push((code, count - before));
            }
        }
        delta
    }

    /// Count by class as the API spells it.
    pub fn class(&self, class: usize) -> u64 {
        self.classes.get(class).copied().unwrap_or(0)
    }
}

/// A log-linear latency histogram with the scoreboard's buckets. Serialized sparsely (`[[bucket, count], ...]`)
/// because a second of traffic rarely touches more than a few dozen of its 992 buckets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Either empty (no requests) or `LATENCY_BUCKETS` long.
    counts: Vec<u64>,
}

impl Histogram {
    fn dense(&mut self) -> &mut Vec<u64> {
        if self.counts.is_empty() {
            self.counts = vec![0; LATENCY_BUCKETS];
        }
        &mut self.counts
    }

    pub fn add_bucket(&mut self, bucket: usize, count: u64) {
        if bucket < LATENCY_BUCKETS && count > 0 {
            self.dense()[bucket] += count;
        }
    }

    #[cfg(test)]
    pub fn record_us(&mut self, micros: u64) {
        self.dense()[crate::latency::latency_bucket(micros)] += 1;
    }

    fn add_slot(&mut self, slot: &WorkerSlot) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut touched = false;
        for (bucket, counter) in slot.latency.iter().enumerate() {
            let count = counter.load(Relaxed);
            if count > 0 {
                if !touched {
                    self.dense();
                    touched = true;
                }
                self.counts[bucket] += count;
            }
        }
    }

    pub fn add(&mut self, other: &Histogram) {
        if other.counts.is_empty() {
            return;
        }
        for (total, count) in self.dense().iter_mut().zip(&other.counts) {
            *total += count;
        }
    }

    /// Removes counts added earlier (for rolling windows); saturates at zero.
    pub fn subtract(&mut self, other: &Histogram) {
        if self.counts.is_empty() {
            return;
        }
        for (total, count) in self.counts.iter_mut().zip(&other.counts) {
            *total = total.saturating_sub(*count);
        }
    }

    fn since(&self, earlier: &Histogram) -> Histogram {
        let mut delta = self.clone();
        delta.subtract(earlier);
        if delta.count() == 0 {
            delta.counts.clear();
        }
        delta
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Non-empty buckets as `(bucket, count)`.
    pub fn buckets(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(b, c)| (b, *c))
    }

    /// The value below which `quantile` (0..=1) of the requests fall, in milliseconds; `None` when empty.
    /// Each bucket is reported at its midpoint, so the answer is within half a bucket (≈ 1.6 %) of the truth.
    pub fn quantile_ms(&self, quantile: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((quantile.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, count) in self.buckets() {
            seen += count;
            if seen >= rank {
                return Some(bucket_midpoint_us(bucket) / 1000.0);
            }
        }
        None
    }

    /// The slowest request, in milliseconds (its bucket's midpoint); `None` when empty.
    pub fn max_ms(&self) -> Option<f64> {
        self.buckets().last().map(|(bucket, _)| bucket_midpoint_us(bucket) / 1000.0)
    }
}

impl Serialize for Histogram {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(None)?;
        for (bucket, count) in self.buckets() {
            seq.serialize_element(&(bucket, count))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Histogram {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pairs: Vec<(usize, u64)> = Vec::deserialize(deserializer)?;
        let mut histogram = Histogram::default();
        for (bucket, count) in pairs {
            if bucket >= LATENCY_BUCKETS {
                return Err(serde::de::Error::custom(format!("latency bucket {bucket} out of range")));
            }
            histogram.add_bucket(bucket, count);
        }
        Ok(histogram)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(samples_us: &[(u64, u64)]) -> Histogram {
        let mut h = Histogram::default();
        for &(value, times) in samples_us {
            for _ in 0..times {
                h.record_us(value);
            }
        }
        h
    }

    #[test]
    fn quantiles_are_within_a_bucket() {
        // 90 fast (10 ms), 9 slower (50 ms), 1 slow (200 ms).
        let h = histogram(&[(10_000, 90), (50_000, 9), (200_000, 1)]);
        let close = |got: Option<f64>, want: f64| {
            let got = got.expect("value");
            assert!((got - want).abs() <= want * 0.04, "{got} not within 4 % of {want}");
        };
        close(h.quantile_ms(0.5), 10.0);
        close(h.quantile_ms(0.9), 10.0);
        close(h.quantile_ms(0.99), 50.0);
        close(h.quantile_ms(0.999), 200.0);
        close(h.max_ms(), 200.0);
        assert_eq!(Histogram::default().quantile_ms(0.5), None);
    }

    #[test]
    fn deltas_subtract_and_detect_restarts() {
        let mut before = Counters { requests: 10, bytes_out: 100, ..Counters::default() };
        before.latency = histogram(&[(1_000, 10)]);
        before.add_code(200, 10);
        let mut after = before.clone();
        after.requests = 15;
        after.bytes_out = 150;
        after.latency.record_us(5_000);
        after.add_code(404, 5);
        let delta = after.since(&before);
        assert_eq!(delta.requests, 5);
        assert_eq!(delta.codes, vec![(404, 5)]);
        assert_eq!(delta.latency.count(), 1);
        // A restarted group starts over: the whole snapshot is new.
        let restarted = Counters { requests: 3, bytes_out: 30, ..Counters::default() };
        assert_eq!(restarted.since(&after).requests, 3);
    }

    #[test]
    fn histograms_serialize_sparsely() {
        let h = histogram(&[(1_000, 2), (40_000, 1)]);
        let text = serde_json::to_string(&h).expect("json");
        assert_eq!(text.matches('[').count(), 3, "{text}");
        let back: Histogram = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, h);
        assert!(serde_json::from_str::<Histogram>("[[99999,1]]").is_err());
    }
}
