//! The hand-over between processes: what one process image gives the next, across `fork` and `exec`.
//!
//! Three hand-overs exist, and each crosses a boundary no Rust value survives whole:
//! - emperor → vassal master (`exec`): the emperor's pre-bound sockets, by fd number, in [`INHERIT_ENV`];
//! - master → its next image (`exec`, a reload): the sockets, the old workers still serving, the counters;
//! - master → worker (`fork`): a [`WorkerSetup`], passed to the [`WorkerProgram`] the binary gave the master.
//!
//! And one answer travels back: a vassal's exit code ([`EXIT_APP_LOAD_FAILED`]) tells the emperor why it
//! died. These types live here, below the process kinds, so the emperor, the master and the worker agree on
//! them without importing each other (see `docs/modules.md`).

use std::collections::BTreeMap;
use std::os::fd::{OwnedFd, RawFd};

use liege_config::{Protocol, SocketAddress, VassalConfig};
use pyo3::prelude::*;
use serde::{Deserialize, Serialize};

use crate::stats::Counters;

/// Exit code of a worker (or master) whose app could not be loaded; uWSGI's value, which tools know.
pub const EXIT_APP_LOAD_FAILED: i32 = 22;

/// Environment variable carrying sockets (and, across a reload, the old workers) to a new master image.
pub const INHERIT_ENV: &str = "LIEGE_INHERIT";

/// What a master passes to its next image (or an emperor to a vassal).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Inheritance {
    #[serde(default)]
    pub sockets: Vec<InheritedSocket>,
    /// Workers of the previous image, still serving, to retire once the new ones are up.
    #[serde(default)]
    pub old_workers: Vec<i32>,
    /// Unix time the vassal first started (kept across reloads for `uwsgi.started_on`).
    #[serde(default)]
    pub started_on: u64,
    /// Replace the old workers one at a time (chain reload) instead of all at once.
    #[serde(default)]
    pub chain: bool,
    /// The group's counters at the re-exec, so the stats keep counting across a reload.
    #[serde(default)]
    pub counters: Option<Counters>,
    #[serde(default)]
    pub respawns: BTreeMap<crate::scoreboard::ExitCause, u64>,
}

/// A socket passed down by fd number, described in the `LIEGE_INHERIT` environment variable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InheritedSocket {
    /// By its name ([`protocol_name`]); an unknown name is an error, never a silent default.
    #[serde(with = "protocol_text")]
    pub protocol: Protocol,
    pub name: String,
    pub fd: RawFd,
}

/// The protocol's name in logs, stats and [`InheritedSocket::protocol`].
pub fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Http => "http",
        Protocol::Uwsgi => "uwsgi",
    }
}

/// Parses a name written by [`protocol_name`].
pub fn protocol_from_name(name: &str) -> Option<Protocol> {
    match name {
        "http" => Some(Protocol::Http),
        "uwsgi" => Some(Protocol::Uwsgi),
        _ => None,
    }
}

/// [`Protocol`] as its name in JSON (the config crate stays free of serde).
mod protocol_text {
    use liege_config::Protocol;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(protocol: &Protocol, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(super::protocol_name(*protocol))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Protocol, D::Error> {
        let name = String::deserialize(deserializer)?;
        super::protocol_from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown socket protocol {name:?} (http or uwsgi)")))
    }
}

/// The canonical display name of an address (what matches an inherited socket to a configured one).
pub fn address_name(address: &SocketAddress) -> String {
    match address {
        SocketAddress::Tcp { host, port } => format!("{host}:{port}"),
        SocketAddress::Unix(path) => path.display().to_string(),
        SocketAddress::Fd(fd) => format!("fd://{fd}"),
    }
}

/// A listening socket inherited from the master.
pub struct InheritedListener {
    pub protocol: Protocol,
    pub fd: OwnedFd,
    pub unix_path: Option<String>,
}

/// What the master hands a freshly forked worker.
pub struct WorkerSetup<'a> {
    pub id: u32,
    pub slot: usize,
    pub config: &'a VassalConfig,
    pub listeners: Vec<InheritedListener>,
    /// The app imported by the master (preload), or `None` for lazy-apps.
    pub app: Option<Py<PyAny>>,
}

/// The worker program, as the binary hands it to the master: the master knows how to fork and supervise a
/// worker, not what a worker does, so `master` never imports `worker` (the binary, above both, wires them).
#[derive(Clone, Copy)]
pub struct WorkerProgram {
    /// Checks the configuration once in the master, so warnings show once at startup, not once per worker,
    /// and a request-path configuration that cannot work (routes, static maps) stops the vassal with why.
    pub check_config: fn(&VassalConfig) -> Result<(), String>,
    /// The worker's main, run in the forked child; it never returns.
    pub run: fn(WorkerSetup<'_>) -> !,
}
