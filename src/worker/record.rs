//! One request's bookkeeping: the request log line and the scoreboard update, written when the response is
//! finished (or abandoned), from wherever that happens.

use std::rc::Rc;
use std::time::{Instant, SystemTime};

use super::log_format::{Captured, Entry, Memory};
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
    /// The request vars the log format shows (user agent, `var.X`...); empty unless the format needs some.
    pub captured: Captured,
    /// uwsgi packet header's modifier2 (`%(modifier2)`); 0 over HTTP.
    pub modifier2: u8,
    /// uWSGI's `%(pktsize)`: the uwsgi packet's datasize (without its 4-byte header), or the request head's
    /// size over HTTP. (The default line's "in N bytes" is `head_in`, which counts the header.)
    pub pktsize: usize,
    /// A `donotlog` route matched: counted in the stats, not written to the request log.
    pub donotlog: bool,
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
            captured: Captured::default(),
            modifier2: 0,
            pktsize: 0,
            donotlog: false,
        }
    }
}

impl RequestRecord {
    /// The app is about to run: the worker is busy from now on (and a harakiri timer would start here), not
    /// while it waited for a slow client's body.
    pub fn app_started(&self) {
        let now_us =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        self.worker.slot.begin_request(now_us, self.request_line.as_bytes());
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        let slot = self.worker.slot;
        slot.end_request(self.status, self.bytes_in, self.bytes_out, elapsed, self.failed);
        slot.set_status(crate::scoreboard::WorkerStatus::Idle);
        let worker_requests = slot.requests.load(std::sync::atomic::Ordering::Relaxed);
        self.worker.request_done(worker_requests);
        let log = &self.worker.request_log;
        if self.donotlog || !log.filter.wants(self.status, elapsed, self.bytes_out) {
            return;
        }
        let total = if log.needs_totals() {
            crate::scoreboard::Scoreboard::global().map_or(worker_requests, |b| b.total_requests())
        } else {
            0
        };
        let entry = Entry {
            pid: self.worker.pid,
            wid: self.worker.id,
            worker_requests,
            total_requests: total,
            addr: &self.remote_addr,
            request_line: &self.request_line,
            proto: self.protocol,
            status: self.status,
            rsize: self.bytes_out,
            hsize: self.head_bytes as u64,
            cl: self.bytes_in,
            vars: self.vars,
            headers: self.header_count,
            pktsize: self.pktsize,
            head_in: self.head_in,
            modifier2: self.modifier2,
            start_us: self.started_at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64),
            elapsed,
            captured: &self.captured,
            memory: log.needs_memory().then(memory).flatten(),
        };
        let mut clock = self.worker.log_clock.borrow_mut();
        crate::logging::append_request_line(|out| log.write(&entry, &mut *clock, out));
    }
}

/// This process's virtual and resident size, from /proc/self/statm (for `%(rss)`/`%(vsz)` only).
fn memory() -> Option<Memory> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let mut fields = statm.split_whitespace();
    let vsz_pages: u64 = fields.next()?.parse().ok()?;
    let rss_pages: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    Some(Memory { rss: rss_pages * page, vsz: vsz_pages * page })
}
