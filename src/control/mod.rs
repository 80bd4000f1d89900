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

/// Environment variable naming the vassal's end of the channel.
pub const EMPEROR_FD_ENV: &str = "LIEGE_EMPEROR_FD";

/// A worker as reported to the emperor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    pub id: u32,
    pub pid: i32,
    /// `starting`, `idle`, `busy`, `stopping` (uWSGI's status names where they exist).
    pub status: String,
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
    pub respawn_cause: Option<String>,
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
        respawns: std::collections::BTreeMap<String, u64>,
        /// The side processes (`attach-daemon*`) and their state.
        #[serde(default)]
        daemons: Vec<DaemonReport>,
    },
    WorkerSpawned {
        id: u32,
        pid: i32,
    },
    /// `cause` is human-readable: `killed by signal 9 (SIGKILL)`, `exited with code 1`, `reload`, …
    WorkerExited {
        id: u32,
        pid: i32,
        cause: String,
    },
    /// A reload could not load the new code; the previous workers keep serving.
    ReloadFailed {
        error: String,
    },
    /// The vassal is about to exit (graceful or quick stop finished).
    Stopping,
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
