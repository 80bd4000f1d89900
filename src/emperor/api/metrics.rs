//! `GET /metrics`: every vassal in Prometheus' text exposition format (version 0.0.4), one label `vassal`.
//! Counters count since the emperor deployed the vassal and survive its reloads; gauges are the last report.
//!
//! Latency is exported as a histogram with fixed bounds (`le`), summed from the scoreboard's log-linear
//! buckets; each of those is counted where its midpoint falls, so a bound is accurate to about 1.6 %.

use std::fmt::Write;

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::Shared;
use crate::emperor::registry::{State as VassalState, VassalStatus};
use crate::latency::bucket_midpoint_us;
use crate::stats::Counters;

/// Histogram bounds, in seconds.
const BOUNDS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

const WORKER_STATUSES: [&str; 5] = ["starting", "idle", "busy", "stopping", "cheap"];

pub async fn metrics(axum::extract::State(registry): Shared) -> Response {
    let mut vassals: Vec<(VassalStatus, Counters)> = Vec::new();
    for entry in registry.entries() {
        let status = entry.shared.status();
        let total = entry.shared.with_metrics(|m| m.total.clone());
        vassals.push((status, total));
    }
    let body = render(&vassals);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// One metric family: its HELP and TYPE lines, then one sample per vassal (or several, with extra labels).
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn start<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, vassal: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.out, "{name}{{vassal=\"{}\"", escape(vassal));
        for (key, label) in labels {
            let _ = write!(self.out, ",{key}=\"{}\"", escape(label));
        }
        let _ = writeln!(self.out, "}} {value}");
    }
}

fn render(vassals: &[(VassalStatus, Counters)]) -> String {
    let mut out = String::with_capacity(4096 + vassals.len() * 4096);
    let counter = |out: &mut String, name: &str, help: &str, value: fn(&VassalStatus, &Counters) -> u64| {
        let mut family = Family::start(out, name, "counter", help);
        for (status, total) in vassals {
            family.sample(name, &status.name, &[], value(status, total));
        }
    };

    {
        let name = "liege_requests_total";
        let mut family = Family::start(
            &mut out,
            name,
            "counter",
            "Requests finished, by status class (none: the client left before a response).",
        );
        for (status, total) in vassals {
            for (class, label) in ["none", "1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
                family.sample(name, &status.name, &[("class", label)], total.class(class));
            }
        }
    }
    {
        let name = "liege_responses_total";
        let mut family =
            Family::start(&mut out, name, "counter", "Responses by exact status code, for the common codes.");
        for (status, total) in vassals {
            for (code, count) in &total.codes {
                family.sample(name, &status.name, &[("code", &code.to_string())], count);
            }
        }
    }
    {
        let name = "liege_request_duration_seconds";
        let mut family =
            Family::start(&mut out, name, "histogram", "Time from the request's arrival to the end of its response.");
        for (status, total) in vassals {
            let mut cumulative = [0u64; BOUNDS.len()];
            for (bucket, count) in total.latency.buckets() {
                let seconds = bucket_midpoint_us(bucket) / 1e6;
                for (slot, bound) in cumulative.iter_mut().zip(BOUNDS) {
                    if seconds <= bound {
                        *slot += count;
                    }
                }
            }
            let bucket_name = format!("{name}_bucket");
            for (count, bound) in cumulative.iter().zip(BOUNDS) {
                family.sample(&bucket_name, &status.name, &[("le", &bound.to_string())], count);
            }
            family.sample(&bucket_name, &status.name, &[("le", "+Inf")], total.latency.count());
            family.sample(&format!("{name}_sum"), &status.name, &[], total.running_time_us as f64 / 1e6);
            family.sample(&format!("{name}_count"), &status.name, &[], total.latency.count());
        }
    }
    counter(&mut out, "liege_sent_bytes_total", "Response bytes written (head and body).", |_, t| t.bytes_out);
    counter(&mut out, "liege_received_bytes_total", "Request body bytes read.", |_, t| t.bytes_in);
    counter(&mut out, "liege_exceptions_total", "Requests where the app raised an exception.", |_, t| t.exceptions);
    counter(&mut out, "liege_harakiri_total", "Workers killed for exceeding harakiri.", |_, t| t.harakiri);
    {
        let name = "liege_worker_respawns_total";
        let mut family = Family::start(
            &mut out,
            name,
            "counter",
            "Worker exits, by cause (crash, max-requests, reload-on-rss, harakiri, reload...).",
        );
        for (status, _) in vassals {
            for (cause, count) in &status.traffic.worker_respawns {
                family.sample(name, &status.name, &[("cause", cause.as_str())], count);
            }
        }
    }
    counter(
        &mut out,
        "liege_vassal_restarts_total",
        "Restarts of the whole vassal after a crash or failed start.",
        |s, _| s.respawns,
    );
    counter(&mut out, "liege_vassal_reloads_total", "Reloads started (file changes, signals, API).", |s, _| s.reloads);
    {
        let name = "liege_workers";
        let mut family = Family::start(&mut out, name, "gauge", "Workers of the serving process, by status.");
        for (status, _) in vassals {
            for worker_status in WORKER_STATUSES {
                let count = status.workers.iter().filter(|w| w.status.as_str() == worker_status).count();
                family.sample(name, &status.name, &[("status", worker_status)], count);
            }
        }
    }
    {
        let name = "liege_memory_rss_bytes";
        let mut family =
            Family::start(&mut out, name, "gauge", "Resident memory of the serving process: master and workers.");
        for (status, _) in vassals {
            if let Some(rss) = status.traffic.rss_bytes {
                family.sample(name, &status.name, &[], rss);
            }
        }
    }
    {
        let name = "liege_memory_pss_bytes";
        let mut family = Family::start(
            &mut out,
            name,
            "gauge",
            "Proportional set size of the workers (shared pages divided among them).",
        );
        for (status, _) in vassals {
            if let Some(pss) = status.traffic.pss_bytes {
                family.sample(name, &status.name, &[], pss);
            }
        }
    }
    {
        let name = "liege_vassal_state";
        let mut family = Family::start(&mut out, name, "gauge", "1 for the vassal's current state, 0 for the others.");
        for (status, _) in vassals {
            for state in VassalState::ALL {
                family.sample(name, &status.name, &[("state", state.as_str())], u8::from(status.state == state));
            }
        }
    }
    {
        let name = "liege_vassal_start_time_seconds";
        let mut family = Family::start(&mut out, name, "gauge", "Unix time the serving process started.");
        for (status, _) in vassals {
            if let Some(started) = status.started_at {
                family.sample(name, &status.name, &[], started);
            }
        }
    }
    out
}

/// A label value as the exposition format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
