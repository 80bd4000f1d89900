//! What the emperor knows about its vassals, shared with the API.
//!
//! Each vassal's supervisor task owns its processes and decides everything; after every decision it
//! publishes a [`VassalStatus`] snapshot here. The API only reads snapshots and sends commands, so a slow
//! API client can never hold up a supervisor (every lock here is held for a copy, never across an await).

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde::Serialize;
use tokio::sync::mpsc;

use super::logs::{unix_time, LogLine, LogStore};
use crate::control::WorkerReport;
use crate::stats::window::{Latency, Point, Rates, VassalMetrics};

/// Events kept per vassal.
pub const EVENTS_KEPT: usize = 500;

/// A vassal's lifecycle state, as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// A process is starting and none serves yet.
    Starting,
    /// A process serves; no reload in progress.
    Running,
    /// A process serves while its replacement starts.
    Reloading,
    /// Waiting before restarting a vassal that keeps failing (exponential backoff).
    Throttled,
    /// The file cannot be used as it is (see `last_error`); if an older version still serves, `pid` is set.
    Error,
    /// Told to stop; its processes are finishing.
    Stopping,
    /// No process (stopped through the API, or its file is gone and it is about to disappear).
    Stopped,
}

impl State {
    /// Every state, in lifecycle order (for counts by state).
    pub const ALL: [State; 7] = [
        State::Starting,
        State::Running,
        State::Reloading,
        State::Throttled,
        State::Error,
        State::Stopping,
        State::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Reloading => "reloading",
            State::Throttled => "throttled",
            State::Error => "error",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SocketInfo {
    /// `http` or `uwsgi`.
    pub proto: String,
    pub address: String,
    /// Assigned by the emperor from the port range (not named in the vassal file).
    pub auto: bool,
}

/// One vassal as the API shows it. The first fields are the contract ops scripts rely on (issue 4): never
/// rename them; add fields freely.
#[derive(Debug, Clone, Serialize)]
pub struct VassalStatus {
    pub name: String,
    /// Path of the vassal file.
    pub config: String,
    pub state: State,
    /// Master pid of the serving process (or of the starting one when none serves).
    pub pid: Option<i32>,
    pub sockets: Vec<SocketInfo>,
    /// Workers of that process, from its last report (`id`, `pid`, `status`, plus counters).
    pub workers: Vec<WorkerReport>,
    /// Side processes (`attach-daemon*`) of that process, from its last heartbeat.
    pub daemons: Vec<crate::control::DaemonReport>,
    /// Restarts after an unexpected exit (crash, failed start, hung master).
    pub respawns: u64,
    pub last_error: Option<String>,
    /// Unix time (seconds) the serving process started.
    pub started_at: Option<u64>,
    /// Unix time (seconds) the emperor first had this vassal serving.
    pub first_started_at: Option<u64>,
    // --- additions ---
    /// Reloads started (file changes, SIGHUP, API).
    pub reloads: u64,
    /// How the last vassal process ended (`exited with code 22 (the app failed to load)`).
    pub last_exit: Option<String>,
    /// Unix time (seconds) of `last_error`.
    pub last_error_at: Option<u64>,
    /// When throttled: unix time (seconds, fractional) of the next attempt.
    pub retry_at: Option<f64>,
    /// Consecutive failed starts (the backoff exponent).
    pub failures: u32,
    /// Requests finished since the emperor deployed this vassal (all its versions).
    pub requests: u64,
    /// Unix time (seconds, fractional) of the last message from the serving process.
    pub last_heartbeat: Option<f64>,
    pub log_file: Option<String>,
    #[serde(flatten)]
    pub traffic: Traffic,
}

/// A vassal's traffic, filled from its heartbeats' counters when read (see [`VassalShared::status`]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Traffic {
    pub rps: Rates,
    pub latency_ms: Latency,
    pub status: StatusCounts,
    pub exceptions: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub harakiri_count: u64,
    /// Master and workers of the serving process (`None` before its first report).
    pub rss_bytes: Option<u64>,
    /// Sum of the workers' proportional set sizes: the group's real memory footprint.
    pub pss_bytes: Option<u64>,
    /// Worker exits by cause since deployment (`crash`, `max-requests`, `reload`, ...).
    pub worker_respawns: crate::control::Respawns,
    /// Responses by exact code, for the common codes (200, 404, 500...).
    pub codes: BTreeMap<String, u64>,
}

/// Responses by status class since deployment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    #[serde(rename = "1xx")]
    pub informational: u64,
    #[serde(rename = "2xx")]
    pub success: u64,
    #[serde(rename = "3xx")]
    pub redirection: u64,
    #[serde(rename = "4xx")]
    pub client_error: u64,
    #[serde(rename = "5xx")]
    pub server_error: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub time: f64,
    /// `spawn`, `ready`, `reload`, `exit`, `throttle`, `error`, `stop`, `config`, `worker`.
    pub kind: &'static str,
    pub message: String,
}

/// The part of a vassal shared between its supervisor and the API.
pub struct VassalShared {
    pub name: String,
    pub path: PathBuf,
    pub logs: Arc<LogStore>,
    status: Mutex<VassalStatus>,
    events: Mutex<VecDeque<Event>>,
    metrics: Mutex<VassalMetrics>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl VassalShared {
    pub fn new(name: &str, path: PathBuf, logs: Arc<LogStore>) -> Self {
        let status = VassalStatus {
            name: name.to_owned(),
            config: path.display().to_string(),
            state: State::Starting,
            pid: None,
            sockets: Vec::new(),
            workers: Vec::new(),
            daemons: Vec::new(),
            respawns: 0,
            last_error: None,
            started_at: None,
            first_started_at: None,
            reloads: 0,
            last_exit: None,
            last_error_at: None,
            retry_at: None,
            failures: 0,
            requests: 0,
            last_heartbeat: None,
            log_file: logs.file_path().map(|p| p.display().to_string()),
            traffic: Traffic::default(),
        };
        VassalShared {
            name: name.to_owned(),
            path,
            logs,
            status: Mutex::new(status),
            events: Mutex::new(VecDeque::new()),
            metrics: Mutex::new(VassalMetrics::default()),
        }
    }

    /// The last published status with the traffic numbers as of now.
    pub fn status(&self) -> VassalStatus {
        let mut status = lock(&self.status).clone();
        let now = crate::process::unix_now();
        let mut metrics = lock(&self.metrics);
        let traffic = &mut status.traffic;
        traffic.rps = metrics.rates(now);
        traffic.latency_ms = metrics.latency(now);
        let total = &metrics.total;
        status.requests = total.requests;
        traffic.status = StatusCounts {
            informational: total.class(1),
            success: total.class(2),
            redirection: total.class(3),
            client_error: total.class(4),
            server_error: total.class(5),
        };
        traffic.exceptions = total.exceptions;
        traffic.bytes_sent = total.bytes_out;
        traffic.bytes_received = total.bytes_in;
        traffic.harakiri_count = total.harakiri;
        traffic.worker_respawns = metrics.respawns.clone();
        traffic.codes = total.codes.iter().map(|(code, count)| (code.to_string(), *count)).collect();
        status
    }

    /// Books a heartbeat's counters (see [`VassalMetrics::record`]).
    pub fn record_traffic(
        &self,
        pid: i32,
        time: f64,
        counters: crate::stats::Counters,
        respawns: crate::control::Respawns,
    ) {
        let mut metrics = lock(&self.metrics);
        metrics.record(pid, time, counters);
        metrics.record_respawns(pid, respawns);
    }

    /// A vassal process exited: stop tracking its counters.
    pub fn forget_process(&self, pid: i32) {
        lock(&self.metrics).forget(pid);
    }

    /// Per-second points of the last `seconds` seconds.
    pub fn history(&self, seconds: u64) -> Vec<Point> {
        lock(&self.metrics).history(crate::process::unix_now(), seconds)
    }

    /// The totals and the last minute's latency histogram, for `/metrics`.
    pub fn with_metrics<R>(&self, read: impl FnOnce(&VassalMetrics) -> R) -> R {
        read(&lock(&self.metrics))
    }

    pub fn publish(&self, mut status: VassalStatus) {
        let mut current = lock(&self.status);
        status.first_started_at = current.first_started_at.or(status.started_at);
        *current = status;
    }

    /// Records an event, and writes it into the vassal's log so the log tells the whole story.
    pub fn event(&self, kind: &'static str, message: String) {
        self.logs.note(&message);
        let mut events = lock(&self.events);
        if events.len() >= EVENTS_KEPT {
            events.pop_front();
        }
        events.push_back(Event { time: unix_time(), kind, message });
    }

    pub fn events(&self) -> Vec<Event> {
        lock(&self.events).iter().cloned().collect()
    }
}

/// What the API (or a signal) can ask of one vassal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Its file changed or appeared: validate it and start or replace the running version. `problem` is
    /// set when the directory entry itself is unusable (a directory, a dangling link).
    Changed { problem: Option<String> },
    /// Graceful reload of the same file (SIGHUP, API).
    Reload,
    /// Replace the workers one at a time, in the running process (API).
    ChainReload,
    /// Start again after an API stop.
    Start,
    /// Stop; the vassal stays listed as `stopped` (API).
    Stop,
    /// Stop and forget (its file is gone, or the emperor exits). `quick` kills instead of draining.
    Remove { quick: bool },
    /// Forget the backoff and try now.
    Retry,
}

#[derive(Clone)]
pub struct VassalEntry {
    pub shared: Arc<VassalShared>,
    pub commands: mpsc::UnboundedSender<Command>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no vassal named '{0}'")]
    UnknownVassal(String),
    #[error("vassal '{0}' is being removed")]
    Gone(String),
}

/// Every vassal the emperor currently supervises, by name.
pub struct Registry {
    vassals: RwLock<BTreeMap<String, VassalEntry>>,
    /// Unix time the emperor started.
    pub started_at: f64,
    /// The vassal directory.
    pub dir: PathBuf,
    /// Bearer token for state-changing API calls.
    token: String,
    /// Where the token can be read (shown by `/api/emperor`).
    pub token_file: Option<PathBuf>,
}

impl Registry {
    pub fn new(dir: PathBuf, token: String, token_file: Option<PathBuf>) -> Self {
        Registry { vassals: RwLock::new(BTreeMap::new()), started_at: unix_time(), dir, token, token_file }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, VassalEntry>> {
        self.vassals.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, VassalEntry>> {
        self.vassals.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn insert(&self, entry: VassalEntry) {
        self.write().insert(entry.shared.name.clone(), entry);
    }

    pub fn remove(&self, name: &str) {
        self.write().remove(name);
    }

    pub fn contains(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    pub fn entries(&self) -> Vec<VassalEntry> {
        self.read().values().cloned().collect()
    }

    pub fn statuses(&self) -> Vec<VassalStatus> {
        self.read().values().map(|entry| entry.shared.status()).collect()
    }

    pub fn get(&self, name: &str) -> Option<Arc<VassalShared>> {
        self.read().get(name).map(|entry| entry.shared.clone())
    }

    pub fn status(&self, name: &str) -> Option<VassalStatus> {
        self.get(name).map(|shared| shared.status())
    }

    pub fn logs(&self, name: &str, tail: usize) -> Option<Vec<Arc<LogLine>>> {
        self.get(name).map(|shared| shared.logs.tail(tail))
    }

    pub fn send(&self, name: &str, command: Command) -> Result<(), ControlError> {
        let entry = self.read().get(name).cloned().ok_or_else(|| ControlError::UnknownVassal(name.to_owned()))?;
        entry.commands.send(command).map_err(|_| ControlError::Gone(name.to_owned()))
    }

    /// Constant-time comparison of a presented bearer token.
    pub fn token_matches(&self, presented: &str) -> bool {
        let expected = self.token.as_bytes();
        let presented = presented.as_bytes();
        if expected.is_empty() || expected.len() != presented.len() {
            return false;
        }
        expected.iter().zip(presented).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
    }
}
