//! The control channel between an emperor and one of its vassals: small typed messages, one JSON object per
//! line, over a unix socketpair whose vassal end is passed as fd number `LIEGE_EMPEROR_FD`.
//!
//! Why JSON lines: both ends are ours, the volume is a few messages per second, and a human can read a
//! captured exchange. The master never blocks on this channel: it writes with `MSG_DONTWAIT` and drops a
//! heartbeat the emperor is too slow to read (the next one supersedes it); it reads whole lines only.

pub mod handover;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

pub use crate::scoreboard::{ExitCause, WorkerStatus};

/// Worker exits by cause (`crash`, `max-requests`, `reload`, ...); serialized as an object keyed by the
/// causes' names, in their alphabetical order.
pub type Respawns = std::collections::BTreeMap<ExitCause, u64>;

/// Environment variable naming the vassal's end of the channel.
pub const EMPEROR_FD_ENV: &str = "LIEGE_EMPEROR_FD";

/// A worker as reported to the emperor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    pub id: u32,
    pub pid: i32,
    /// `starting`, `idle`, `busy`, `stopping` (uWSGI's status names where they exist).
    pub status: WorkerStatus,
    pub requests: u64,
    pub exceptions: u64,
    /// Resident memory of this process (`None` until first measured).
    #[serde(default)]
    pub rss_bytes: Option<u64>,
    /// Proportional set size: its share of memory, shared pages divided among their users.
    #[serde(default)]
    pub pss_bytes: Option<u64>,
    /// Unix time this process was forked.
    #[serde(default)]
    pub last_spawn: Option<u64>,
    /// Processes that have held this worker id (1: never respawned).
    #[serde(default)]
    pub respawn_count: u64,
    /// Why the previous holder of this id exited (`max-requests`, `crash`, ...), if one did.
    #[serde(default)]
    pub respawn_cause: Option<ExitCause>,
    #[serde(default)]
    pub harakiri_count: u64,
    /// Mean request time of this process (`None` before its first request).
    #[serde(default)]
    pub avg_rt_ms: Option<f64>,
    /// The request being served right now (`None` when idle): what a stuck worker is stuck on.
    #[serde(default)]
    pub current_request: Option<CurrentRequest>,
}

/// One side process (`attach-daemon*`) as the master reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonReport {
    pub command: String,
    /// The option that declared it (`attach-daemon`, `smart-attach-daemon`...).
    pub kind: String,
    pub pid: Option<i32>,
    pub running: bool,
    /// Times started (the first included).
    pub starts: u64,
    /// How the last one ended (`killed by signal 9 (SIGKILL)`...).
    pub last_exit: Option<String>,
    /// Waiting to be started again (backoff): in how many seconds.
    pub next_start_in_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentRequest {
    /// `METHOD URI`, cut at 240 bytes.
    pub line: String,
    /// How long it has been running.
    pub running_ms: f64,
}

/// Vassal → emperor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VassalMessage {
    /// Every worker of the current generation is serving (sent at start and after each reload).
    Ready {
        pid: i32,
        workers: Vec<WorkerReport>,
    },
    /// Sent just after every wall-clock second: proof of life, the workers, and the group's cumulative
    /// counters (see [`crate::stats`]).
    Heartbeat {
        pid: i32,
        requests: u64,
        workers: Vec<WorkerReport>,
        /// Unix time (fractional) the snapshot was taken.
        #[serde(default)]
        time: f64,
        #[serde(default)]
        counters: Option<Box<crate::stats::Counters>>,
        /// Master and workers together.
        #[serde(default)]
        rss_bytes: Option<u64>,
        /// Worker exits by cause (`crash`, `max-requests`, `reload`, ...) since the master started.
        #[serde(default)]
        respawns: Respawns,
        /// The side processes (`attach-daemon*`) and their state.
        #[serde(default)]
        daemons: Vec<DaemonReport>,
    },
    WorkerSpawned {
        id: u32,
        pid: i32,
    },
    /// A worker exited: `cause` says why it was asked to (`reload` for a worker replaced by a reload, or
    /// that left for good; `crash` when nobody asked), `how` how it ended (`killed by signal 9 (SIGKILL)`).
    WorkerExited {
        id: u32,
        pid: i32,
        cause: ExitCause,
        how: String,
    },
    /// A reload could not load the new code; the previous workers keep serving.
    ReloadFailed {
        error: String,
    },
    /// The vassal is about to exit (graceful or quick stop finished).
    Stopping,
}

impl VassalMessage {
    /// A `WorkerExited`'s exit as a person reads it: `killed by signal 9 (SIGKILL)` for a crash,
    /// `max-requests (exited with code 0)` for a planned one.
    pub fn describe_exit(cause: ExitCause, how: &str) -> String {
        match cause {
            ExitCause::Unplanned => how.to_owned(),
            cause => format!("{cause} ({how})"),
        }
    }
}

/// Emperor → vassal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EmperorCommand {
    /// Graceful reload with the app re-imported (SIGHUP's meaning).
    Reload,
    /// Replace the workers one at a time (the master FIFO's `c`).
    ChainReload,
    /// Finish in-flight requests and exit (SIGTERM's meaning).
    Stop,
    /// Exit now (SIGINT's meaning).
    QuickStop,
}

/// One end of the channel, line-framed.
pub struct Channel {
    fd: OwnedFd,
    pending: Vec<u8>,
}

impl Channel {
    pub fn new(fd: OwnedFd) -> Self {
        Self { fd, pending: Vec::new() }
    }

    /// The vassal's end, if this process was started by an emperor.
    pub fn from_env() -> Option<Self> {
        let fd: i32 = std::env::var(EMPEROR_FD_ENV).ok()?.parse().ok()?;
        // SAFETY: fcntl only checks that the descriptor is open before we take ownership of it.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return None;
        }
        // SAFETY: the emperor passed this descriptor to us for exactly this use; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        set_cloexec_nonblocking(&fd);
        Some(Self::new(fd))
    }

    /// Sends one message without blocking. A full socket buffer drops the message (`Ok(false)`).
    pub fn send<T: Serialize>(&self, message: &T) -> io::Result<bool> {
        let mut line = serde_json::to_vec(message).map_err(io::Error::other)?;
        line.push(b'\n');
        match nix::sys::socket::send(
            self.fd.as_raw_fd(),
            &line,
            nix::sys::socket::MsgFlags::MSG_DONTWAIT | nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(n) if n == line.len() => Ok(true),
            Ok(_) => Err(io::Error::other("partial control message")),
            Err(nix::errno::Errno::EAGAIN) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Reads what is available and returns the complete messages; `Err` with `UnexpectedEof` when the other
    /// end is gone. Lines that don't parse are skipped (logged by the caller via the error list).
    pub fn receive<T: for<'de> Deserialize<'de>>(&mut self) -> io::Result<Vec<Result<T, String>>> {
        let mut buffer = [0u8; 4096];
        loop {
            match nix::unistd::read(self.fd.as_fd(), &mut buffer) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.pending.extend_from_slice(&buffer[..n]),
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        let mut messages = Vec::new();
        while let Some(end) = memchr::memchr(b'\n', &self.pending) {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            messages.push(
                serde_json::from_slice(&line[..line.len() - 1])
                    .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&line))),
            );
        }
        Ok(messages)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn set_cloexec_nonblocking(fd: &OwnedFd) {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        let fd_flags = libc::fcntl(raw, libc::F_GETFD);
        if fd_flags >= 0 {
            libc::fcntl(raw, libc::F_SETFD, fd_flags | libc::FD_CLOEXEC);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::handover::{Inheritance, InheritedSocket};

    /// The JSON of every message between processes, pinned: a rename here would break a running emperor
    /// talking to a master of the same version after an `exec`, and the API shows some of these values.
    #[test]
    fn each_message_has_pinned_json() {
        let json = |value: &dyn erased::Json| value.to_json();
        let worker = WorkerReport {
            id: 1,
            pid: 42,
            status: WorkerStatus::Busy,
            requests: 3,
            exceptions: 0,
            rss_bytes: Some(1024),
            pss_bytes: None,
            last_spawn: Some(1_700_000_000),
            respawn_count: 2,
            respawn_cause: Some(ExitCause::MaxRequests),
            harakiri_count: 0,
            avg_rt_ms: Some(1.5),
            current_request: Some(CurrentRequest { line: "GET /".into(), running_ms: 2.0 }),
        };
        assert_eq!(
            json(&worker),
            r#"{"id":1,"pid":42,"status":"busy","requests":3,"exceptions":0,"rss_bytes":1024,"pss_bytes":null,"last_spawn":1700000000,"respawn_count":2,"respawn_cause":"max-requests","harakiri_count":0,"avg_rt_ms":1.5,"current_request":{"line":"GET /","running_ms":2.0}}"#
        );
        let respawns: Respawns = [
            (ExitCause::Reload, 1),
            (ExitCause::Unplanned, 2),
            (ExitCause::MaxRequests, 1),
            (ExitCause::Cheaper, 1),
            (ExitCause::EvilReloadOnRss, 1),
            (ExitCause::ReloadOnAs, 1),
        ]
        .into_iter()
        .collect();
        let messages = [
            (VassalMessage::Ready { pid: 7, workers: Vec::new() }, r#"{"type":"ready","pid":7,"workers":[]}"#),
            (
                VassalMessage::Heartbeat {
                    pid: 7,
                    requests: 3,
                    workers: Vec::new(),
                    time: 1.5,
                    counters: None,
                    rss_bytes: Some(10),
                    respawns: respawns.clone(),
                    daemons: vec![DaemonReport {
                        command: "sleep 60".into(),
                        kind: "attach-daemon".into(),
                        pid: Some(9),
                        running: true,
                        starts: 2,
                        last_exit: Some("exited with code 1".into()),
                        next_start_in_s: None,
                    }],
                },
                // Causes sorted by name, as the string-keyed map they replace sorted them.
                r#"{"type":"heartbeat","pid":7,"requests":3,"workers":[],"time":1.5,"counters":null,"rss_bytes":10,"respawns":{"cheaper":1,"crash":2,"evil-reload-on-rss":1,"max-requests":1,"reload":1,"reload-on-as":1},"daemons":[{"command":"sleep 60","kind":"attach-daemon","pid":9,"running":true,"starts":2,"last_exit":"exited with code 1","next_start_in_s":null}]}"#,
            ),
            (VassalMessage::WorkerSpawned { id: 1, pid: 2 }, r#"{"type":"worker_spawned","id":1,"pid":2}"#),
            (
                VassalMessage::WorkerExited {
                    id: 1,
                    pid: 2,
                    cause: ExitCause::Harakiri,
                    how: "killed by signal 9 (SIGKILL)".into(),
                },
                r#"{"type":"worker_exited","id":1,"pid":2,"cause":"harakiri","how":"killed by signal 9 (SIGKILL)"}"#,
            ),
            (VassalMessage::ReloadFailed { error: "x".into() }, r#"{"type":"reload_failed","error":"x"}"#),
            (VassalMessage::Stopping, r#"{"type":"stopping"}"#),
        ];
        for (message, expected) in messages {
            assert_eq!(json(&message), expected);
            assert_eq!(serde_json::from_str::<VassalMessage>(expected).expect("parses"), message);
        }
        let commands = [
            (EmperorCommand::Reload, r#"{"type":"reload"}"#),
            (EmperorCommand::ChainReload, r#"{"type":"chain_reload"}"#),
            (EmperorCommand::Stop, r#"{"type":"stop"}"#),
            (EmperorCommand::QuickStop, r#"{"type":"quick_stop"}"#),
        ];
        for (command, expected) in commands {
            assert_eq!(json(&command), expected);
            assert_eq!(serde_json::from_str::<EmperorCommand>(expected).expect("parses"), command);
        }
        let socket = InheritedSocket { protocol: liege_config::Protocol::Uwsgi, name: "127.0.0.1:9000".into(), fd: 5 };
        assert_eq!(json(&socket), r#"{"protocol":"uwsgi","name":"127.0.0.1:9000","fd":5}"#);
        let inheritance = Inheritance {
            sockets: vec![socket],
            old_workers: vec![11, 12],
            started_on: 1_700_000_000,
            chain: true,
            counters: None,
            respawns,
        };
        assert_eq!(
            json(&inheritance),
            r#"{"sockets":[{"protocol":"uwsgi","name":"127.0.0.1:9000","fd":5}],"old_workers":[11,12],"started_on":1700000000,"chain":true,"counters":null,"respawns":{"cheaper":1,"crash":2,"evil-reload-on-rss":1,"max-requests":1,"reload":1,"reload-on-as":1}}"#
        );
    }

    #[test]
    fn causes_and_statuses_travel_by_the_names_logs_and_stats_use() {
        use ExitCause::*;
        for cause in [
            Unplanned,
            MaxRequests,
            MaxWorkerLifetime,
            ReloadOnRss,
            EvilReloadOnRss,
            Harakiri,
            Reload,
            Cheaper,
            ReloadOnAs,
            ReloadOnException,
        ] {
            let text = serde_json::to_string(&cause).expect("serializes");
            assert_eq!(text, format!("\"{}\"", cause.as_str()));
            assert_eq!(serde_json::from_str::<ExitCause>(&text).expect("parses"), cause);
        }
        for status in
            [WorkerStatus::Free, WorkerStatus::Starting, WorkerStatus::Idle, WorkerStatus::Busy, WorkerStatus::Stopping]
        {
            assert_eq!(serde_json::to_string(&status).expect("serializes"), format!("\"{}\"", status.as_str()));
        }
        assert!(serde_json::from_str::<ExitCause>(r#""crashed""#).is_err(), "an unknown cause is an error");
        assert_eq!(VassalMessage::describe_exit(Unplanned, "exited with code 1"), "exited with code 1");
        assert_eq!(
            VassalMessage::describe_exit(MaxRequests, "exited with code 0"),
            "max-requests (exited with code 0)"
        );
    }

    #[test]
    fn a_misspelt_socket_protocol_is_an_error_not_http() {
        let error = serde_json::from_str::<InheritedSocket>(r#"{"protocol":"uswgi","name":"a","fd":3}"#)
            .expect_err("no silent default");
        assert!(error.to_string().contains("unknown socket protocol \"uswgi\""), "{error}");
        let socket: InheritedSocket =
            serde_json::from_str(r#"{"protocol":"http","name":"a","fd":3}"#).expect("a known name parses");
        assert_eq!(socket.protocol, liege_config::Protocol::Http);
    }

    /// `serde_json::to_string` of differently typed values through one closure.
    mod erased {
        pub trait Json {
            fn to_json(&self) -> String;
        }
        impl<T: serde::Serialize> Json for T {
            fn to_json(&self) -> String {
                serde_json::to_string(self).expect("serializes")
            }
        }
    }

    #[test]
    fn messages_round_trip_as_json_lines() {
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        a.set_nonblocking(true).expect("nonblocking");
        b.set_nonblocking(true).expect("nonblocking");
        let vassal = Channel::new(OwnedFd::from(a));
        let mut emperor = Channel::new(OwnedFd::from(b));
        assert!(vassal.send(&VassalMessage::WorkerSpawned { id: 1, pid: 42 }).expect("send"));
        assert!(vassal.send(&VassalMessage::Stopping).expect("send"));
        let received: Vec<Result<VassalMessage, String>> = emperor.receive().expect("receive");
        assert_eq!(received, vec![Ok(VassalMessage::WorkerSpawned { id: 1, pid: 42 }), Ok(VassalMessage::Stopping)]);
        let text = serde_json::to_string(&EmperorCommand::Reload).expect("json");
        assert_eq!(text, r#"{"type":"reload"}"#);
        drop(vassal);
        assert!(emperor.receive::<VassalMessage>().is_err(), "EOF must be reported");
    }
}
