//! The worker's side of harakiri: answer the stuck request's client with a 504 before the master kills us.
//!
//! The master can't reach a worker's client sockets, and the worker's event loop is stuck inside the app, so
//! a small watchdog thread does it: while the app runs (before any byte of its response is sent) the socket's
//! fd is published here; once the request has run longer than `harakiri`, the watchdog writes a complete 504
//! response to it and shuts it down. The master then dumps the Python stack to the log and kills the worker.
//!
//! One lock covers arm, disarm and the answer, and the watchdog holds it from the moment it takes the fd
//! until it has written the 504. Without it, the watchdog could take the fd, the request could finish, its
//! connection close, and the next accepted connection get the same fd number: the 504 (and the shutdown)
//! would hit another client. With it, a request that finishes while the watchdog answers waits in `disarm`
//! (a few µs: the send is non-blocking), and its connection is closed only after `disarm` returns, so the fd
//! the watchdog writes to is still the stuck request's.
//!
//! Why a lock and not a duplicate of the fd per request: the lock is two uncontended atomic operations on the
//! request path, the watchdog takes it only for a request already past its limit; a `dup` + `close` is two
//! syscalls per request, measured at about 2.5 µs here (a C loop of `fcntl(F_DUPFD_CLOEXEC)` + `close`).
//! The lock relies on every `arm` being followed by `disarm` before the connection closes, which both
//! protocol handlers do (the disarm directly follows the app call; the app runs inline, so the task cannot
//! be dropped in between while the worker keeps serving).

use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::scoreboard::WorkerSlot;

const RESPONSE: &[u8] = b"HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 43\r\nConnection: close\r\n\r\nThe app took too long (harakiri) and died.\n";

#[derive(Debug, Default)]
pub struct HarakiriWatch {
    armed: Mutex<Armed>,
    /// `harakiri-verbose`: the request's vars (CGI-style `KEY=value` lines) are logged with the harakiri report.
    verbose: bool,
}

#[derive(Debug)]
struct Armed {
    /// The client socket of the request the app is running for; -1 when no app call is in progress or its
    /// response has started.
    fd: RawFd,
    /// The 504 was sent (once per worker: the master kills it next).
    answered: bool,
    /// `harakiri-verbose`: the request's vars.
    vars: String,
}

impl Default for Armed {
    fn default() -> Self {
        Self { fd: -1, answered: false, vars: String::new() }
    }
}

impl HarakiriWatch {
    fn new(verbose: bool) -> Self {
        Self { armed: Mutex::new(Armed::default()), verbose }
    }

    /// Starts the watchdog thread for a worker whose requests may run at most `limit`; with
    /// `harakiri-queue-threshold` (`queue_threshold` > 0) only while the master's last listen queue reading
    /// is at least that long, as the master's own harakiri.
    pub fn start(slot: &'static WorkerSlot, limit: Duration, verbose: bool, queue_threshold: u64) -> Arc<Self> {
        let watch = Arc::new(Self::new(verbose));
        let watcher = Arc::clone(&watch);
        let spawned = std::thread::Builder::new().name("liege-harakiri".into()).spawn(move || loop {
            std::thread::sleep(Duration::from_millis(100));
            let started = slot.request_started_us.load(Ordering::Relaxed);
            if started == 0 {
                continue;
            }
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
            let queue_short = queue_threshold > 0
                && crate::scoreboard::Scoreboard::global()
                    .is_some_and(|board| board.header().backlog.load(Ordering::Relaxed) < queue_threshold);
            if Duration::from_micros(now.saturating_sub(started)) > limit && !queue_short {
                watcher.answer();
            }
        });
        if let Err(err) = spawned {
            tracing::warn!("cannot start the harakiri watchdog: {err}");
        }
        watch
    }

    /// The app is about to run for the client on `fd`; `vars` describes the request (only called for, and
    /// only kept with, `harakiri-verbose`).
    pub fn arm(&self, fd: RawFd, vars: impl FnOnce() -> String) {
        // Built outside the lock: the watchdog never waits for it.
        let vars = if self.verbose { vars() } else { String::new() };
        let mut armed = self.lock();
        armed.fd = fd;
        armed.vars = vars;
    }

    /// The app returned: the response is ours to send now. Waits while the watchdog is answering, so the
    /// connection cannot be closed (and its fd number reused) under it.
    pub fn disarm(&self) {
        self.lock().fd = -1;
    }

    fn answer(&self) {
        if let Some(armed) = self.take() {
            Self::respond(armed);
        }
    }

    /// The watchdog's first step: the lock, if a request is armed and not answered yet (once per worker).
    fn take(&self) -> Option<MutexGuard<'_, Armed>> {
        let armed = self.lock();
        (armed.fd >= 0 && !armed.answered).then_some(armed)
    }

    /// The watchdog's second step, still under the lock: the 504, then shut the socket down.
    fn respond(mut armed: MutexGuard<'_, Armed>) {
        armed.answered = true;
        if !armed.vars.is_empty() {
            tracing::error!("HARAKIRI request vars (harakiri-verbose):\n{}", armed.vars);
        }
        // SAFETY: the fd is open: the connection's owner closes it only after `disarm`, which waits for this
        // lock. We write a complete response and shut the socket down; we never close it.
        unsafe {
            libc::send(armed.fd, RESPONSE.as_ptr().cast(), RESPONSE.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT);
            libc::shutdown(armed.fd, libc::SHUT_RDWR);
        }
        armed.fd = -1;
    }

    /// A panic while holding the lock cannot leave `Armed` inconsistent (plain fields), so a poisoned lock
    /// is used as is.
    fn lock(&self) -> MutexGuard<'_, Armed> {
        self.armed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{ErrorKind, Read};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::net::UnixStream;

    /// The race: the watchdog takes the armed connection; before it writes, the request finishes, its
    /// connection is closed and the next accepted connection gets the same fd number. The request cannot
    /// finish while the watchdog answers, so the 504 goes to the stuck request's client, never the new one.
    #[test]
    fn the_504_never_reaches_the_connection_that_reused_the_fd() {
        let watch = HarakiriWatch::new(false);
        let (server_a, mut client_a) = UnixStream::pair().expect("pair");
        let number = server_a.as_raw_fd();
        watch.arm(number, String::new);
        let (finished_tx, finished_rx) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            let taken = watch.take().expect("armed");
            // The worker's side: the app returns, the request disarms, its connection closes, and the next one
            // is accepted into the same number (dup2 does what accept(2) would).
            let worker = scope.spawn(|| {
                watch.disarm();
                // The new pair is made before server_a closes, so neither of its ends can take `number` itself
                // (dup2 onto an fd that server_b already owns would give that fd two owners).
                let (server_b, client_b) = UnixStream::pair().expect("pair");
                drop(server_a);
                // SAFETY: `number` was just freed by closing server_a and no other owner holds it; it becomes
                // the new connection's.
                let reused = unsafe {
                    assert_eq!(libc::dup2(server_b.as_raw_fd(), number), number);
                    OwnedFd::from_raw_fd(number)
                };
                finished_tx.send(()).expect("send");
                (reused, server_b, client_b)
            });
            // While the watchdog holds the armed request, the worker cannot get past `disarm`.
            assert!(finished_rx.recv_timeout(Duration::from_millis(300)).is_err(), "disarm did not wait");
            HarakiriWatch::respond(taken);
            let (reused, _server_b, mut client_b) = worker.join().expect("worker");
            client_b.set_nonblocking(true).expect("nonblocking");
            match client_b.read(&mut [0u8; 512]) {
                Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                other => panic!("the new connection was answered or shut down: {other:?}"),
            }
            drop(reused);
        });
        let mut answered = Vec::new();
        client_a.read_to_end(&mut answered).expect("read");
        assert_eq!(answered, RESPONSE, "the stuck request's client gets the 504");
    }

    /// A disarmed watch answers no one, and a worker answers at most once.
    #[test]
    fn only_an_armed_request_is_answered_and_only_once() {
        let watch = HarakiriWatch::new(true);
        let (server, mut client) = UnixStream::pair().expect("pair");
        watch.arm(server.as_raw_fd(), || "REQUEST_URI=/slow".into());
        watch.disarm();
        watch.answer();
        client.set_nonblocking(true).expect("nonblocking");
        assert!(matches!(client.read(&mut [0u8; 64]), Err(err) if err.kind() == ErrorKind::WouldBlock));
        watch.arm(server.as_raw_fd(), String::new);
        watch.answer();
        assert!(watch.take().is_none(), "answered once: the next request is not answered");
        client.set_nonblocking(false).expect("blocking");
        let mut answered = Vec::new();
        client.read_to_end(&mut answered).expect("read");
        assert_eq!(answered, RESPONSE);
    }
}
