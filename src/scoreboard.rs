//! The scoreboard: per-worker counters in one `MAP_SHARED` anonymous mapping created by the master before it
//! forks, so every worker inherits it.
//!
//! Shared by two kinds of process (the master and its workers) and read by the `uwsgi` Python module inside
//! the workers, so it lives here, below all of them (see `docs/modules.md`). It is the single source of truth
//! for stats: the emperor gets snapshots of it from the master, never from workers.
//!
//! Who writes what. A worker writes its own slot: status, counters, latency buckets, the current request
//! (start time and line), open connections, and `exit_cause` when it recycles itself. The master writes six
//! fields: `id` and `last_spawn_s` when it prepares the slot before the fork, `pid` right after it,
//! `exit_cause` when it asks the worker to exit (the first cause recorded wins, so the two writers never
//! overwrite each other), `harakiri_count` when it kills a stuck worker, and `rss_bytes` when it samples
//! memory. It also resets a whole slot, but only when no worker owns it (before the fork, after the reap).
//! Everything is a relaxed atomic on cache-line-aligned slots: no locks and no syscalls on the request path;
//! the one multi-field value, the request line, is published under a seqlock (see [`WorkerSlot::request_line`]).

use std::ptr::NonNull;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{fence, AtomicI32, AtomicU32, AtomicU64, AtomicU8};
use std::sync::OnceLock;
use std::time::Duration;

use crate::latency::{latency_bucket, LATENCY_BUCKETS};

/// Status codes common enough to count individually (the rest only by class).
pub const TRACKED_CODES: [u16; 16] = [200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 405, 429, 500, 502, 503, 504];

/// Bytes of the current request line kept for harakiri reports.
pub const REQUEST_LINE_BYTES: usize = 240;

#[repr(u8)]
///
/// Travels to the emperor in [`crate::control::WorkerReport::status`] as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerStatus {
    /// Slot unused.
    Free = 0,
    /// Forked, loading the app (lazy-apps) or running the post-fork hook.
    Starting = 1,
    Idle = 2,
    Busy = 3,
    /// Finishing in-flight requests before exiting.
    Stopping = 4,
}

impl WorkerStatus {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Starting,
            2 => Self::Idle,
            3 => Self::Busy,
            4 => Self::Stopping,
            _ => Self::Free,
        }
    }

    /// uWSGI's names, which uwsgitop and exporters expect.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Starting => "starting",
            Self::Idle => "idle",
            Self::Busy => "busy",
            Self::Stopping => "stopping",
        }
    }
}

/// Why a worker was asked to exit (or killed); written before the exit by whoever decided it, read by the
/// master when it reaps the worker, so every exit has a recorded cause.
///
/// It travels (in respawn counts, in `WorkerExited`) as the name [`ExitCause::as_str`] gives, and sorts by
/// that name, so a map keyed by causes serializes in the same order as one keyed by their names.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitCause {
    /// Nothing planned: a crash, or an exit the master did not ask for.
    #[serde(rename = "crash")]
    Unplanned = 0,
    MaxRequests = 1,
    MaxWorkerLifetime = 2,
    ReloadOnRss = 3,
    EvilReloadOnRss = 4,
    Harakiri = 5,
    Reload = 6,
    Cheaper = 7,
    /// `reload-on-as` (master-side feature, src/master/lifecycle.rs).
    ReloadOnAs = 8,
    /// `reload-on-exception*`: the app raised a matching exception (the worker recycles itself).
    ReloadOnException = 9,
}

impl ExitCause {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::MaxRequests,
            2 => Self::MaxWorkerLifetime,
            3 => Self::ReloadOnRss,
            4 => Self::EvilReloadOnRss,
            5 => Self::Harakiri,
            6 => Self::Reload,
            7 => Self::Cheaper,
            8 => Self::ReloadOnAs,
            9 => Self::ReloadOnException,
            _ => Self::Unplanned,
        }
    }

    /// The option (or event) that caused it, as the logs and stats name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unplanned => "crash",
            Self::MaxRequests => "max-requests",
            Self::MaxWorkerLifetime => "max-worker-lifetime",
            Self::ReloadOnRss => "reload-on-rss",
            Self::EvilReloadOnRss => "evil-reload-on-rss",
            Self::Harakiri => "harakiri",
            Self::Reload => "reload",
            Self::Cheaper => "cheaper",
            Self::ReloadOnAs => "reload-on-as",
            Self::ReloadOnException => "reload-on-exception",
        }
    }
}

impl Ord for ExitCause {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for ExitCause {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for ExitCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One worker's counters, written by the worker that owns the slot and by the master (the six fields listed
/// in the module docs).
#[repr(C, align(64))]
pub struct WorkerSlot {
    pub pid: AtomicI32,
    /// 1-based worker id as uWSGI numbers them; 0 when free.
    pub id: AtomicU32,
    pub status: AtomicU8,
    pub exit_cause: AtomicU8,
    pub harakiri_count: AtomicU64,
    /// Open client connections (workers balance accepts on it).
    pub connections: AtomicU32,
    pub requests: AtomicU64,
    pub exceptions: AtomicU64,
    pub status_classes: [AtomicU64; 6],
    pub tracked_codes: [AtomicU64; TRACKED_CODES.len()],
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Sum of request durations in µs (uWSGI's `running_time`).
    pub running_time_us: AtomicU64,
    /// Wall-clock µs since the epoch when the current request started; 0 when idle.
    pub request_started_us: AtomicU64,
    /// Incremented before and after writing `request_line` (a seqlock), so a reader never sees a torn line.
    pub request_line_seq: AtomicU32,
    pub request_line_len: AtomicU32,
    pub request_line: [AtomicU8; REQUEST_LINE_BYTES],
    pub last_spawn_s: AtomicU64,
    pub rss_bytes: AtomicU64,
    pub latency: [AtomicU64; LATENCY_BUCKETS],
    /// Connections whose response could not be written (the client went away, or a write made no progress
    /// within the write timeout): uWSGI's per-core `write_errors`.
    pub write_errors: AtomicU64,
}

#[repr(C, align(64))]
pub struct Header {
    pub master_pid: AtomicI32,
    pub slots: AtomicU32,
    /// Requests served by workers that have exited (their slots were reused).
    pub retired_requests: AtomicU64,
    /// The longest listen queue of the master's sockets, written by the master once a second (uWSGI's
    /// `shared->backlog`): workers read it for `harakiri-queue-threshold`.
    pub backlog: AtomicU64,
}

/// The mapping. Lives for the whole process (and its forked children); never unmapped.
pub struct Scoreboard {
    header: NonNull<Header>,
    slots: NonNull<WorkerSlot>,
    len: usize,
}

// SAFETY: the mapping is shared memory accessed only through atomics.
unsafe impl Send for Scoreboard {}
// SAFETY: as for Send: every access through `&Scoreboard` is an atomic load or store.
unsafe impl Sync for Scoreboard {}

static GLOBAL: OnceLock<Scoreboard> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
#[error("cannot map the scoreboard ({slots} slots): {source}")]
pub struct MapError {
    slots: usize,
    source: nix::Error,
}

impl Scoreboard {
    /// Maps a zeroed scoreboard with `slots` worker slots and installs it as this process's scoreboard
    /// (inherited by every worker forked afterwards).
    pub fn install(slots: usize) -> Result<&'static Scoreboard, MapError> {
        if let Some(existing) = GLOBAL.get() {
            return Ok(existing);
        }
        let bytes = std::mem::size_of::<Header>() + slots * std::mem::size_of::<WorkerSlot>();
        let length = std::num::NonZeroUsize::new(bytes).ok_or(MapError { slots, source: nix::Error::EINVAL })?;
        use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
        // SAFETY: a fresh anonymous mapping; zeroed memory is a valid initial state for every atomic in it.
        let base =
            unsafe { mmap_anonymous(None, length, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, MapFlags::MAP_SHARED) }
                .map_err(|source| MapError { slots, source })?;
        let header = base.cast::<Header>();
        // SAFETY: Header is 64-aligned and its size is a multiple of 64, so the slots that follow are aligned.
        let first_slot =
            unsafe { NonNull::new_unchecked(base.as_ptr().cast::<u8>().add(std::mem::size_of::<Header>())) }
                .cast::<WorkerSlot>();
        let board = Scoreboard { header, slots: first_slot, len: slots };
        board.header().slots.store(slots as u32, Relaxed);
        board.header().master_pid.store(std::process::id() as i32, Relaxed);
        Ok(GLOBAL.get_or_init(|| board))
    }

    pub fn global() -> Option<&'static Scoreboard> {
        GLOBAL.get()
    }

    pub fn header(&self) -> &Header {
        // SAFETY: valid for the life of the process.
        unsafe { self.header.as_ref() }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn slot(&self, index: usize) -> Option<&WorkerSlot> {
        // SAFETY: bounds checked; valid for the life of the process.
        (index < self.len).then(|| unsafe { &*self.slots.as_ptr().add(index) })
    }

    pub fn slots(&self) -> impl Iterator<Item = &WorkerSlot> {
        (0..self.len).filter_map(|i| self.slot(i))
    }

    /// Every request ever served by this master's workers, including exited ones.
    pub fn total_requests(&self) -> u64 {
        self.header().retired_requests.load(Relaxed) + self.slots().map(|s| s.requests.load(Relaxed)).sum::<u64>()
    }
}

impl WorkerSlot {
    /// Clears the slot for a new worker; called by the master before forking it.
    pub fn reset(&self, id: u32, now_s: u64) {
        self.pid.store(0, Relaxed);
        self.id.store(id, Relaxed);
        self.status.store(WorkerStatus::Starting as u8, Relaxed);
        self.exit_cause.store(ExitCause::Unplanned as u8, Relaxed);
        self.connections.store(0, Relaxed);
        self.clear_counters();
        self.last_spawn_s.store(now_s, Relaxed);
    }

    /// Zeroes every counter (the master moved them to its retired totals).
    pub fn clear_counters(&self) {
        for counter in [
            &self.requests,
            &self.exceptions,
            &self.bytes_in,
            &self.bytes_out,
            &self.running_time_us,
            &self.request_started_us,
            &self.rss_bytes,
            &self.harakiri_count,
            &self.write_errors,
        ] {
            counter.store(0, Relaxed);
        }
        self.status_classes.iter().chain(&self.tracked_codes).chain(&self.latency).for_each(|c| c.store(0, Relaxed));
        self.request_line_len.store(0, Relaxed);
    }

    pub fn status(&self) -> WorkerStatus {
        WorkerStatus::from_u8(self.status.load(Relaxed))
    }

    pub fn exit_cause(&self) -> ExitCause {
        ExitCause::from_u8(self.exit_cause.load(Relaxed))
    }

    /// Records why this worker is about to exit; the first cause recorded wins.
    pub fn set_exit_cause(&self, cause: ExitCause) {
        let _ = self.exit_cause.compare_exchange(ExitCause::Unplanned as u8, cause as u8, Relaxed, Relaxed);
    }

    pub fn set_status(&self, status: WorkerStatus) {
        self.status.store(status as u8, Relaxed);
    }

    /// Marks the start of a request: busy, with its start time and request line for harakiri reports.
    ///
    /// The request line is published under a seqlock (this worker is its only writer): the stamp goes odd,
    /// the bytes are written, the stamp goes even again. The orderings follow crossbeam's `SeqLock`, and
    /// each matters: the bytes are relaxed stores, which the CPU (on a weakly ordered one, e.g. ARM) or the
    /// compiler may move before a plain store of the odd stamp, so a reader could read new bytes next to an
    /// unchanged even stamp and accept a torn line. The `Release` fence after the odd stamp forbids that: any
    /// reader that sees one of the new bytes and then passes its `Acquire` fence also sees the odd stamp (or a
    /// later one) and retries. The final `Release` store pairs with the reader's first `Acquire` load: a
    /// reader that sees the even stamp sees every byte written before it.
    pub fn begin_request(&self, now_us: u64, request_line: &[u8]) {
        let seq = self.request_line_seq.load(Relaxed);
        self.request_line_seq.store(seq.wrapping_add(1), Relaxed);
        fence(Release);
        let len = request_line.len().min(REQUEST_LINE_BYTES);
        for (cell, byte) in self.request_line.iter().zip(&request_line[..len]) {
            cell.store(*byte, Relaxed);
        }
        self.request_line_len.store(len as u32, Relaxed);
        self.request_line_seq.store(seq.wrapping_add(2), Release);
        self.request_started_us.store(now_us, Relaxed);
        self.set_status(WorkerStatus::Busy);
    }

    /// Records a finished request.
    pub fn end_request(&self, status: u16, bytes_in: u64, bytes_out: u64, elapsed: Duration, failed: bool) {
        let micros = elapsed.as_micros().min(u64::MAX as u128) as u64;
        self.requests.fetch_add(1, Relaxed);
        if failed {
            self.exceptions.fetch_add(1, Relaxed);
        }
        let class = usize::from(status / 100).min(5);
        self.status_classes[class].fetch_add(1, Relaxed);
        if let Some(i) = TRACKED_CODES.iter().position(|&c| c == status) {
            self.tracked_codes[i].fetch_add(1, Relaxed);
        }
        self.bytes_in.fetch_add(bytes_in, Relaxed);
        self.bytes_out.fetch_add(bytes_out, Relaxed);
        self.running_time_us.fetch_add(micros, Relaxed);
        self.latency[latency_bucket(micros)].fetch_add(1, Relaxed);
        self.request_started_us.store(0, Relaxed);
    }

    /// The request line being served, if it could be read consistently (the reader's side of the seqlock in
    /// [`WorkerSlot::begin_request`]).
    pub fn request_line(&self) -> Option<Vec<u8>> {
        for _ in 0..4 {
            // Acquire: pairs with the writer's final Release store, so the bytes of that write are visible.
            let before = self.request_line_seq.load(Acquire);
            if before % 2 == 1 {
                continue;
            }
            let len = (self.request_line_len.load(Relaxed) as usize).min(REQUEST_LINE_BYTES);
            let line: Vec<u8> = self.request_line[..len].iter().map(|b| b.load(Relaxed)).collect();
            // Acquire fence: pairs with the writer's Release fence. If any load above saw a byte of a newer
            // write, the stamp loaded below is that write's odd stamp or later, and the copy is thrown away.
            // (An Acquire load alone would not do: it orders what comes after it, not the loads before.)
            fence(Acquire);
            if self.request_line_seq.load(Relaxed) == before {
                return Some(line);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer publishes request lines as fast as it can while readers check that every line they get is
    /// whole: its length and its bytes come from the same write (byte = 'a' + len % 26), never a mix.
    #[test]
    fn request_line_is_never_torn() {
        use std::sync::atomic::AtomicBool;
        let board = Scoreboard::install(2).expect("map");
        let slot = board.slot(0).expect("slot");
        slot.reset(1, 0);
        let done = AtomicBool::new(false);
        let line_for = |i: usize| {
            let len = 1 + i % REQUEST_LINE_BYTES;
            vec![b'a' + (len % 26) as u8; len]
        };
        let whole = [AtomicU64::new(0), AtomicU64::new(0)];
        std::thread::scope(|scope| {
            for seen in &whole {
                let done = &done;
                scope.spawn(move || {
                    while !done.load(Relaxed) {
                        let Some(line) = slot.request_line().filter(|l| !l.is_empty()) else { continue };
                        let expected = b'a' + (line.len() % 26) as u8;
                        assert!(line.iter().all(|&b| b == expected), "torn: {:?}", String::from_utf8_lossy(&line));
                        seen.fetch_add(1, Relaxed);
                    }
                });
            }
            // Bounded in count and time; stops early once both readers have checked plenty of lines.
            let started = std::time::Instant::now();
            for i in 0..5_000_000 {
                slot.begin_request(1, &line_for(i));
                if i % 1024 == 0
                    && (whole.iter().all(|seen| seen.load(Relaxed) >= 20_000)
                        || started.elapsed() > Duration::from_secs(20))
                {
                    break;
                }
            }
            done.store(true, Relaxed);
        });
        assert!(whole.iter().all(|seen| seen.load(Relaxed) > 0), "a reader never got a line");
    }

    #[test]
    fn slot_counts_requests_and_request_line() {
        let board = Scoreboard::install(2).expect("map");
        let slot = board.slot(1).expect("slot");
        slot.reset(2, 0);
        slot.begin_request(5, b"GET /x HTTP/1.1");
        assert_eq!(slot.status(), WorkerStatus::Busy);
        assert_eq!(slot.request_line().as_deref(), Some(&b"GET /x HTTP/1.1"[..]));
        slot.end_request(404, 10, 20, Duration::from_micros(1500), false);
        assert_eq!(slot.requests.load(Relaxed), 1);
        assert_eq!(slot.status_classes[4].load(Relaxed), 1);
        assert_eq!(slot.request_started_us.load(Relaxed), 0);
        assert_eq!(board.total_requests(), 1);
    }
}
