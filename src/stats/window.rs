//! The emperor's view of one vassal's traffic over time, built from the cumulative [`Counters`] its masters
//! send every second.
//!
//! Each snapshot is turned into a delta against the previous one from the same master process, and the delta
//! is booked to the second it covers (masters send their heartbeat just after each wall-clock second, so a
//! heartbeat stamped `T.005` covers second `T-1`). During a reload two masters report at once; their deltas
//! land in the same seconds and add up. Totals are kept across versions, so `requests` only ever grows while
//! the vassal is deployed.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::scoreboard::ExitCause;

use super::{Counters, Histogram};

/// Seconds of per-second history kept (the longest `/history` window).
pub const HISTORY_SECONDS: u64 = 3600;
/// The window of `rps.1m` and `latency_ms`.
pub const MINUTE: u64 = 60;

/// One second of a vassal's traffic, compact because a vassal keeps an hour of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The unix second covered.
    pub time: u64,
    pub requests: u32,
    /// 5xx responses.
    pub errors: u32,
    /// NaN when the second had no request.
    p99_ms: f32,
}

impl Point {
    pub fn p99_ms(&self) -> Option<f64> {
        (!self.p99_ms.is_nan()).then_some(f64::from(self.p99_ms))
    }
}

/// Latency percentiles over the last minute, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// Requests per second over the last second and the last minute (`None`: the vassal did not report).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Rates {
    #[serde(rename = "1s")]
    pub last_second: Option<f64>,
    #[serde(rename = "1m")]
    pub last_minute: Option<f64>,
}

#[derive(Default)]
pub struct VassalMetrics {
    /// The last snapshot of each master process still reporting.
    last: HashMap<i32, Counters>,
    /// Everything since the vassal was deployed.
    pub total: Counters,
    history: VecDeque<Point>,
    /// Per-second latency of the last minute, sparse (bucket, count), to expire from `minute`.
    recent: VecDeque<(u64, Vec<(u16, u64)>)>,
    /// Sum of `recent`.
    minute: Histogram,
    /// Worker exits by cause: the last count of each master, and the total since deployment.
    last_respawns: HashMap<i32, BTreeMap<ExitCause, u64>>,
    pub respawns: BTreeMap<ExitCause, u64>,
}

impl VassalMetrics {
    /// Books a master's count of worker exits by cause.
    pub fn record_respawns(&mut self, pid: i32, respawns: BTreeMap<ExitCause, u64>) {
        let previous = self.last_respawns.get(&pid);
        for (cause, &count) in &respawns {
            let before = previous.and_then(|p| p.get(cause)).copied().unwrap_or(0);
            let new = if count >= before { count - before } else { count };
            if new > 0 {
                *self.respawns.entry(*cause).or_default() += new;
            }
        }
        self.last_respawns.insert(pid, respawns);
    }

    /// Books a heartbeat from master `pid`, stamped `time` (unix seconds).
    pub fn record(&mut self, pid: i32, time: f64, snapshot: Counters) {
        let delta = match self.last.get(&pid) {
            Some(previous) => snapshot.since(previous),
            None => snapshot.clone(),
        };
        self.last.insert(pid, snapshot);
        self.total.add(&delta);
        let second = (time.round() as u64).saturating_sub(1);
        self.expire(second + 1);
        self.book(second, &delta);
    }

    /// A master exited: its last snapshot is no longer needed (its pid may come back as another process).
    pub fn forget(&mut self, pid: i32) {
        self.last.remove(&pid);
        self.last_respawns.remove(&pid);
    }

    fn book(&mut self, second: u64, delta: &Counters) {
        let latency: Vec<(u16, u64)> = delta.latency.buckets().map(|(b, c)| (b as u16, c)).collect();
        self.minute.add(&delta.latency);
        let recent = match self.recent.iter_mut().rev().find(|(t, _)| *t == second) {
            Some((_, buckets)) => {
                buckets.extend_from_slice(&latency);
                buckets.clone()
            }
            None => {
                let at = self.recent.iter().position(|(t, _)| *t > second).unwrap_or(self.recent.len());
                self.recent.insert(at, (second, latency.clone()));
                latency
            }
        };
        let mut histogram = Histogram::default();
        for (bucket, count) in recent {
            histogram.add_bucket(bucket as usize, count);
        }
        let p99 = histogram.quantile_ms(0.99).map_or(f32::NAN, |v| v as f32);
        let requests = u32::try_from(delta.requests).unwrap_or(u32::MAX);
        let errors = u32::try_from(delta.class(5)).unwrap_or(u32::MAX);
        match self.history.iter_mut().rev().take(5).find(|p| p.time == second) {
            Some(point) => {
                point.requests = point.requests.saturating_add(requests);
                point.errors = point.errors.saturating_add(errors);
                point.p99_ms = p99;
            }
            None => {
                let at = self.history.iter().rposition(|p| p.time < second).map_or(0, |i| i + 1);
                self.history.insert(at, Point { time: second, requests, errors, p99_ms: p99 });
                while self.history.len() as u64 > HISTORY_SECONDS {
                    self.history.pop_front();
                }
            }
        }
    }

    /// Drops latency older than a minute before `now`.
    fn expire(&mut self, now: u64) {
        while let Some((time, _)) = self.recent.front() {
            if *time + MINUTE > now {
                break;
            }
            if let Some((_, buckets)) = self.recent.pop_front() {
                let mut old = Histogram::default();
                for (bucket, count) in buckets {
                    old.add_bucket(bucket as usize, count);
                }
                self.minute.subtract(&old);
            }
        }
    }

    /// Percentiles over the minute before `now`.
    pub fn latency(&mut self, now: u64) -> Latency {
        self.expire(now);
        Latency {
            p50: self.minute.quantile_ms(0.50),
            p90: self.minute.quantile_ms(0.90),
            p99: self.minute.quantile_ms(0.99),
            max: self.minute.max_ms(),
        }
    }

    pub fn rates(&self, now: u64) -> Rates {
        let latest = self.history.back().filter(|p| p.time + 3 >= now);
        let minute: Vec<&Point> = self.history.iter().rev().take_while(|p| p.time + MINUTE >= now).collect();
        Rates {
            last_second: latest.map(|p| f64::from(p.requests)),
            last_minute: (!minute.is_empty())
                .then(|| minute.iter().map(|p| f64::from(p.requests)).sum::<f64>() / minute.len() as f64),
        }
    }

    /// The points of the last `seconds` seconds before `now`, oldest first.
    pub fn history(&self, now: u64, seconds: u64) -> Vec<Point> {
        let since = now.saturating_sub(seconds);
        let start = self.history.partition_point(|p| p.time < since);
        self.history.range(start..).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(requests: u64, errors: u64, latency_us: u64) -> Counters {
        let mut c = Counters { requests, bytes_out: requests, ..Counters::default() };
        c.classes[2] = requests - errors;
        c.classes[5] = errors;
        for _ in 0..requests {
            c.latency.record_us(latency_us);
        }
        c
    }

    #[test]
    fn heartbeats_become_one_point_per_second() {
        let mut m = VassalMetrics::default();
        m.record(10, 1000.004, snapshot(5, 0, 1_000));
        m.record(10, 1001.006, snapshot(15, 1, 1_000));
        m.record(10, 1002.003, snapshot(15, 1, 1_000));
        let points = m.history(1003, 900);
        assert_eq!(points.iter().map(|p| p.time).collect::<Vec<_>>(), vec![999, 1000, 1001]);
        assert_eq!(points.iter().map(|p| p.requests).collect::<Vec<_>>(), vec![5, 10, 0]);
        assert_eq!(points[1].errors, 1);
        assert_eq!(points[2].p99_ms(), None);
        assert_eq!(m.total.requests, 15);
        let rates = m.rates(1003);
        assert_eq!(rates.last_second, Some(0.0));
        assert_eq!(rates.last_minute, Some(5.0));
        // Nothing reported for a while: no current rate, and no latency once the minute has passed.
        assert_eq!(m.rates(1010).last_second, None);
        assert!(m.latency(1003).p50.is_some());
        assert_eq!(m.latency(1100).p50, None);
    }

    #[test]
    fn two_masters_during_a_reload_add_up() {
        let mut m = VassalMetrics::default();
        m.record(10, 500.0, snapshot(100, 0, 1_000));
        m.record(10, 501.0, snapshot(110, 0, 1_000));
        m.record(20, 501.01, snapshot(7, 0, 30_000));
        let points = m.history(502, 10);
        assert_eq!(points.last().map(|p| p.requests), Some(17));
        assert_eq!(m.total.requests, 117);
        m.forget(10);
        m.record_respawns(20, BTreeMap::from([(ExitCause::Unplanned, 2)]));
        m.record_respawns(20, BTreeMap::from([(ExitCause::Unplanned, 3), (ExitCause::Reload, 1)]));
        assert_eq!(m.respawns, BTreeMap::from([(ExitCause::Unplanned, 3), (ExitCause::Reload, 1)]));
        m.record(20, 502.0, snapshot(9, 0, 30_000));
        assert_eq!(m.total.requests, 119);
        let latency = m.latency(503);
        let p99 = latency.p99.expect("p99");
        assert!((p99 - 30.0).abs() < 1.0, "{p99}");
    }
}
