//! The worker's side of harakiri: answer the stuck request's client with a 504 before the master kills us.
//!
//! The master can't reach a worker's client sockets, and the worker's event loop is stuck inside the app, so
//! a small watchdog thread does it: while the app runs (before any byte of its response is sent) the socket's
//! fd is published here; once the request has run longer than `harakiri`, the watchdog writes a complete 504
//! response to it and shuts it down. The master then dumps the Python stack to the log and kills the worker.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::scoreboard::WorkerSlot;

const RESPONSE: &[u8] = b"HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 43\r\nConnection: close\r\n\r\nThe app took too long (harakiri) and died.\n";

#[derive(Debug, Default)]
pub struct HarakiriWatch {
    /// The client socket of the request the app is running for; -1 when no app call is in progress or its
    /// response has started.
    fd: AtomicI32,
    answered: AtomicBool,
    /// `harakiri-verbose`: the request's vars (CGI-style `KEY=value` lines) to log with the harakiri report.
    verbose: bool,
    vars: std::sync::Mutex<String>,
}

impl HarakiriWatch {
    /// Starts the watchdog thread for a worker whose requests may run at most `limit`.
    pub fn start(slot: &'static WorkerSlot, limit: Duration, verbose: bool) -> Arc<Self> {
        let watch = Arc::new(Self {
            fd: AtomicI32::new(-1),
            answered: AtomicBool::new(false),
            verbose,
            vars: std::sync::Mutex::new(String::new()),
        });
        let watcher = Arc::clone(&watch);
        let spawned = std::thread::Builder::new().name("liege-harakiri".into()).spawn(move || loop {
            std::thread::sleep(Duration::from_millis(100));
            let started = slot.request_started_us.load(Ordering::Relaxed);
            if started == 0 {
                continue;
            }
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
            if Duration::from_micros(now.saturating_sub(started)) > limit {
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
        if self.verbose {
            if let Ok(mut slot) = self.vars.lock() {
                *slot = vars();
            }
        }
        self.fd.store(fd, Ordering::Release);
    }

    /// The app returned: the response is ours to send now.
    pub fn disarm(&self) {
        self.fd.store(-1, Ordering::Release);
    }

    fn answer(&self) {
        let fd = self.fd.swap(-1, Ordering::AcqRel);
        if fd < 0 || self.answered.swap(true, Ordering::AcqRel) {
            return;
        }
        if self.verbose {
            let vars = self.vars.lock().map(|v| v.clone()).unwrap_or_default();
            tracing::error!("HARAKIRI request vars (harakiri-verbose):\n{vars}");
        }
        // SAFETY: the fd stays open while armed (the connection is owned by the task stuck in the app); we only
        // write a complete response and shut the socket down, we never close it.
        unsafe {
            libc::send(fd, RESPONSE.as_ptr().cast(), RESPONSE.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT);
            libc::shutdown(fd, libc::SHUT_RDWR);
        }
    }
}
