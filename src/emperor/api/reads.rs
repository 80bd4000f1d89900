//! The read-only calls: vassals, the emperor, history, logs (tail and live stream) and events.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::{error, unknown, Shared};
use crate::emperor::logs::{LogLine, RING_LINES};
use crate::emperor::registry::{State as VassalState, VassalStatus};
use crate::stats::window::HISTORY_SECONDS;

/// Lines returned by `/logs` when `tail` is not given.
pub const DEFAULT_TAIL: usize = 100;
/// Seconds returned by `/history` when `seconds` is not given (the dashboard's 15 minutes).
pub const DEFAULT_HISTORY: u64 = 900;

type QueryMap = Result<Query<HashMap<String, String>>, QueryRejection>;

pub async fn list(State(registry): Shared) -> Response {
    Json(json!({ "vassals": registry.statuses() })).into_response()
}

pub async fn one(State(registry): Shared, Path(name): Path<String>) -> Response {
    match registry.status(&name) {
        Some(status) => Json(status).into_response(),
        None => unknown(&name),
    }
}

/// The emperor itself and the sum over its vassals.
pub async fn emperor(State(registry): Shared) -> Response {
    let statuses = registry.statuses();
    let now = crate::process::unix_time();
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    for state in VassalState::ALL {
        by_state.insert(state.as_str(), statuses.iter().filter(|s| s.state == state).count());
    }
    let sum = |value: fn(&VassalStatus) -> u64| statuses.iter().map(value).sum::<u64>();
    let sum_rate = |value: fn(&VassalStatus) -> Option<f64>| {
        let rates: Vec<f64> = statuses.iter().filter_map(value).collect();
        (!rates.is_empty()).then(|| rates.iter().sum::<f64>())
    };
    let workers: Vec<&crate::control::WorkerReport> = statuses.iter().flat_map(|s| &s.workers).collect();
    let rss: Vec<u64> = statuses.iter().filter_map(|s| s.traffic.rss_bytes).collect();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "started_at": registry.started_at,
        "uptime_s": (now - registry.started_at).max(0.0),
        "dir": registry.dir.display().to_string(),
        "token_file": registry.token_file.as_ref().map(|p| p.display().to_string()),
        "vassals": {
            "total": statuses.len(),
            "by_state": by_state,
        },
        "totals": {
            "requests": sum(|s| s.requests),
            "rps": {
                "1s": sum_rate(|s| s.traffic.rps.last_second),
                "1m": sum_rate(|s| s.traffic.rps.last_minute),
            },
            "workers": workers.len(),
            "busy_workers": workers.iter().filter(|w| w.status == crate::control::WorkerStatus::Busy).count(),
            "rss_bytes": (!rss.is_empty()).then(|| rss.iter().sum::<u64>()),
            "exceptions": sum(|s| s.traffic.exceptions),
            "status": {
                "2xx": sum(|s| s.traffic.status.success),
                "3xx": sum(|s| s.traffic.status.redirection),
                "4xx": sum(|s| s.traffic.status.client_error),
                "5xx": sum(|s| s.traffic.status.server_error),
            },
        },
    }))
    .into_response()
}

pub async fn history(State(registry): Shared, Path(name): Path<String>, query: QueryMap) -> Response {
    let Ok(Query(query)) = query else {
        return error(StatusCode::BAD_REQUEST, "malformed query string");
    };
    let seconds = match query.get("seconds").map(|v| parse_count(v)) {
        None => DEFAULT_HISTORY,
        Some(Some(seconds)) if (1..=HISTORY_SECONDS as usize).contains(&seconds) => seconds as u64,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("seconds must be a whole number from 1 to {HISTORY_SECONDS}"),
            )
        }
    };
    let Some(shared) = registry.get(&name) else { return unknown(&name) };
    let points: Vec<serde_json::Value> = shared
        .history(seconds)
        .iter()
        .map(|p| json!({ "time": p.time, "requests": p.requests, "errors": p.errors, "p99_ms": p.p99_ms() }))
        .collect();
    Json(json!({ "vassal": name, "seconds": seconds, "interval": 1, "points": points })).into_response()
}

/// `grep` as given: a literal, matched case-insensitively.
struct Filter(Option<String>);

impl Filter {
    /// The filter a query asks for, or the 400 answer to give.
    fn from_query(query: &HashMap<String, String>) -> Result<Filter, &'static str> {
        match query.get("grep") {
            None => Ok(Filter(None)),
            Some(text) if text.len() > 1024 => Err("grep is limited to 1024 bytes"),
            Some(text) if text.is_empty() => Ok(Filter(None)),
            Some(text) => Ok(Filter(Some(text.to_lowercase()))),
        }
    }

    fn matches(&self, line: &LogLine) -> bool {
        self.0.as_ref().is_none_or(|needle| line.text.to_lowercase().contains(needle.as_str()))
    }
}

pub async fn logs(State(registry): Shared, Path(name): Path<String>, query: QueryMap) -> Response {
    let Ok(Query(query)) = query else {
        return error(StatusCode::BAD_REQUEST, "malformed query string");
    };
    let tail = match query.get("tail").map(|value| parse_count(value)) {
        None => DEFAULT_TAIL,
        Some(Some(tail)) => tail.min(RING_LINES),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("tail must be a whole number of lines (0 or more; at most {RING_LINES} are kept)"),
            )
        }
    };
    let filter = match Filter::from_query(&query) {
        Ok(filter) => filter,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let Some(lines) = registry.logs(&name, RING_LINES) else { return unknown(&name) };
    let mut matching: Vec<&LogLine> =
        lines.iter().map(|line| line.as_ref()).filter(|line| filter.matches(line)).collect();
    let skip = matching.len().saturating_sub(tail);
    matching.drain(..skip);
    Json(json!({ "vassal": name, "lines": matching })).into_response()
}

/// Live log lines as Server-Sent Events: `id` is the line's `seq`, `data` the line as JSON. A client that
/// reconnects with `Last-Event-ID` (or asks `?since=SEQ`) first gets the kept lines it missed. A client too
/// slow for the flow gets a `lagged` event saying how many lines it missed, never holds up the vassal.
pub async fn log_stream(
    State(registry): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    query: QueryMap,
) -> Response {
    let Ok(Query(query)) = query else {
        return error(StatusCode::BAD_REQUEST, "malformed query string");
    };
    let filter = match Filter::from_query(&query) {
        Ok(filter) => filter,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let since_text = query
        .get("since")
        .cloned()
        .or_else(|| headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned));
    let since = match since_text.as_deref().map(parse_count) {
        None => None,
        Some(Some(seq)) => Some(seq as u64),
        Some(None) => return error(StatusCode::BAD_REQUEST, "since (or Last-Event-ID) must be a line's seq number"),
    };
    let Some(shared) = registry.get(&name) else { return unknown(&name) };
    // Subscribe before reading the backlog, so no line falls between the two.
    let receiver = shared.logs.subscribe();
    let backlog: Vec<Arc<LogLine>> = match since {
        Some(since) => shared.logs.tail(RING_LINES).into_iter().filter(|line| line.seq > since).collect(),
        None => Vec::new(),
    };
    // Lines are sent in seq order, so remembering the last one sent also drops the live copies of lines the
    // backlog already sent.
    let state = StreamState { backlog: backlog.into_iter(), receiver, filter, last_sent: since };
    let stream = futures_util::stream::unfold(state, |mut state| async move {
        let event = state.next_event().await?;
        Some((Ok::<Event, Infallible>(event), state))
    });
    let mut response = Sse::new(stream).keep_alive(KeepAlive::default()).into_response();
    // Tell proxies (nginx) not to buffer the stream.
    response.headers_mut().insert("x-accel-buffering", axum::http::HeaderValue::from_static("no"));
    response
}

struct StreamState {
    backlog: std::vec::IntoIter<Arc<LogLine>>,
    receiver: tokio::sync::broadcast::Receiver<Arc<LogLine>>,
    filter: Filter,
    last_sent: Option<u64>,
}

impl StreamState {
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            let line = match self.backlog.next() {
                Some(line) => line,
                None => match self.receiver.recv().await {
                    Ok(line) => line,
                    Err(RecvError::Lagged(missed)) => {
                        return Some(Event::default().event("lagged").data(json!({ "missed": missed }).to_string()))
                    }
                    Err(RecvError::Closed) => return None,
                },
            };
            if self.last_sent.is_some_and(|seq| line.seq <= seq) || !self.filter.matches(&line) {
                continue;
            }
            self.last_sent = Some(line.seq);
            let data = serde_json::to_string(line.as_ref()).unwrap_or_default();
            return Some(Event::default().id(line.seq.to_string()).data(data));
        }
    }
}

pub async fn events(State(registry): Shared, Path(name): Path<String>) -> Response {
    match registry.get(&name) {
        Some(shared) => Json(json!({ "vassal": name, "events": shared.events() })).into_response(),
        None => unknown(&name),
    }
}

/// A whole number written in plain digits (no sign, no spaces).
fn parse_count(text: &str) -> Option<usize> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<usize>().unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_plain_digits() {
        assert_eq!(parse_count("10"), Some(10));
        assert_eq!(parse_count("0"), Some(0));
        assert_eq!(parse_count("99999999999999999999999"), Some(usize::MAX));
        assert_eq!(parse_count("-1"), None);
        assert_eq!(parse_count("ten"), None);
        assert_eq!(parse_count(""), None);
        assert_eq!(parse_count(" 1"), None);
    }

    #[test]
    fn grep_is_a_case_insensitive_literal() {
        let line = |text: &str| LogLine {
            seq: 1,
            time: 0.0,
            stream: crate::emperor::logs::Stream::Stdout,
            pid: None,
            text: text.into(),
        };
        let query = HashMap::from([("grep".to_owned(), "ERROR [x]".to_owned())]);
        let filter = Filter::from_query(&query).expect("filter");
        assert!(filter.matches(&line("an error [X] here")));
        assert!(!filter.matches(&line("an error x here")));
        assert!(Filter::from_query(&HashMap::new()).expect("none").matches(&line("anything")));
    }
}
