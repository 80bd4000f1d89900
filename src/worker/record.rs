//! One request's bookkeeping: the request log line and the scoreboard update, written when the response is
//! finished (or abandoned), from wherever that happens.

use std::rc::Rc;
use std::time::{Instant, SystemTime};

use super::Worker;

pub struct RequestRecord {
    worker: Rc<Worker>,
    started: Instant,
    started_at: SystemTime,
    /// `METHOD URI` (the part of the request line the log shows).
    pub request_line: String,
    pub remote_addr: Rc<str>,
    pub protocol: &'static str,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub head_bytes: usize,
    /// Size of the request head (HTTP) or vars packet (uwsgi).
    pub head_in: usize,
    pub header_count: usize,
    pub vars: usize,
    pub failed: bool,
}

impl RequestRecord {
    pub fn begin(worker: Rc<Worker>, request_line: String, remote_addr: Rc<str>, protocol: &'static str) -> Self {
        Self {
            worker,
            started: Instant::now(),
            started_at: SystemTime::now(),
            request_line,
            remote_addr,
            protocol,
            status: 0,
            bytes_in: 0,
            bytes_out: 0,
            head_bytes: 0,
            head_in: 0,
            header_count: 0,
            vars: 0,
            failed: false,
        }
    }
}

impl RequestRecord {
    /// The app is about to run: the worker is busy from now on (and a harakiri timer would start here), not
    /// while it waited for a slow client's body.
    pub fn app_started(&self) {
        let now_us = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        self.worker.slot.begin_request(now_us, self.request_line.as_bytes());
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        let slot = self.worker.slot;
        slot.end_request(self.status, self.bytes_in, self.bytes_out, elapsed, self.failed);
        slot.set_status(crate::master::scoreboard::WorkerStatus::Idle);
        let worker_requests = slot.requests.load(std::sync::atomic::Ordering::Relaxed);
        self.worker.request_done(worker_requests);
        if !self.worker.log_requests {
            return;
        }
        let total = crate::master::scoreboard::Scoreboard::global().map_or(worker_requests, |b| b.total_requests());
        let when = crate::logging::ctime(self.started_at);
        crate::logging::append_request_line(|out| {
            use std::io::Write;
            // uWSGI's default request line, so existing log parsers keep working; the trailing part names the
            // worker instead of uWSGI's "(N switches on core C)".
            let _ = write!(
                out,
                "[pid: {}|app: 0|req: {}/{}] {} () {{{} vars in {} bytes}} [{}] {} => generated {} bytes in {} msecs ({} {}) {} headers in {} bytes (worker {})",
                self.worker.pid,
                worker_requests,
                total,
                self.remote_addr,
                self.vars,
                self.head_in,
                when,
                self.request_line,
                self.bytes_out,
                elapsed.as_millis(),
                self.protocol,
                self.status,
                self.header_count,
                self.head_bytes,
                self.worker.id,
            );
        });
    }
}
