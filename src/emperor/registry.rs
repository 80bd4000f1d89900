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
    /// Restarts after an unexpected exit (crash, failed start, hung master).
    pub respawns: u64,
    pub last_error: Option<String>,
    /// Unix time (seconds) the serving process started.
    pub started_at: Option<u64>,
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
    /// Requests served by the serving process, from its last heartbeat.
    pub requests: u64,
    /// Unix time (seconds, fractional) of the last message from the serving process.
    pub last_heartbeat: Option<f64>,
    pub log_file: Option<String>,
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
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
            respawns: 0,
            last_error: None,
            started_at: None,
            reloads: 0,
            last_exit: None,
            last_error_at: None,
            retry_at: None,
            failures: 0,
            requests: 0,
            last_heartbeat: None,
            log_file: logs.file_path().map(|p| p.display().to_string()),
        };
        VassalShared {
            name: name.to_owned(),
            path,
            logs,
            status: Mutex::new(status),
            events: Mutex::new(VecDeque::new()),
        }
    }

    pub fn status(&self) -> VassalStatus {
        lock(&self.status).clone()
    }

    pub fn publish(&self, status: VassalStatus) {
        *lock(&self.status) = status;
    }

    /// Records an event, and writes it into the vassal's log so the log tells the whole story.
    pub fn event(&self, kind: &'static str, message: String) {
        self.logs.note(&message);
        let mut events = lock(&self.events);
        if events.len() >= EVENTS_KEPT {
            events.pop_front();
        }
        events.push_back(Event {
            time: unix_time(),
            kind,
            message,
        });
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
}

impl Registry {
    pub fn new(dir: PathBuf, token: String) -> Self {
        Registry {
            vassals: RwLock::new(BTreeMap::new()),
            started_at: unix_time(),
            dir,
            token,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, VassalEntry>> {
        self.vassals
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, VassalEntry>> {
        self.vassals
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        self.read()
            .values()
            .map(|entry| entry.shared.status())
            .collect()
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
        let entry = self
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| ControlError::UnknownVassal(name.to_owned()))?;
        entry
            .commands
            .send(command)
            .map_err(|_| ControlError::Gone(name.to_owned()))
    }

    /// Constant-time comparison of a presented bearer token.
    pub fn token_matches(&self, presented: &str) -> bool {
        let expected = self.token.as_bytes();
        let presented = presented.as_bytes();
        if expected.is_empty() || expected.len() != presented.len() {
            return false;
        }
        expected
            .iter()
            .zip(presented)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}
