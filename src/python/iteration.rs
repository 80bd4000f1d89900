//! Streaming a response iterable without delaying chunks and without a syscall per tiny chunk.
//!
//! The worker calls the app inline on its event-loop thread and pulls the first chunk there (the head can't
//! be sent before it, PEP 3333). If more may follow from a generator, the rest of the iteration moves to a
//! pool thread attached to Python, which appends chunks to a shared buffer while the event loop writes what
//! has accumulated. The writer is woken when the first bytes arrive, when 64 KiB pile up, and when the
//! iterable ends; after the first wake it lingers at most ~1 ms for more. So a generator yielding 1,002 tiny
//! strings (the seed app) leaves in one or two writes, and a generator that sleeps between yields still has
//! every chunk on the wire about a millisecond after it was produced.
//!
//! Why a thread and not inline iteration: while Python runs on the event-loop thread nothing can be written,
//! so a chunk followed by a slow `next()` (a sleep, a database call) would sit unsent for the whole call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;

use bytes::{Bytes, BytesMut};
use pyo3::prelude::*;

use super::start_response::{chunk_bytes, chunk_type_error, StartResponse};

/// Wake the writer as soon as this much is buffered, whatever the linger.
pub const WAKE_BYTES: usize = 64 * 1024;
/// The producer pauses (GIL released) above this until the writer catches up: a fast generator and a slow
/// client must not buffer a whole response in memory.
const HIGH_WATER: usize = 1024 * 1024;

#[derive(Debug, Default)]
struct State {
    buffer: BytesMut,
    /// `Some(true)` ended normally, `Some(false)` ended with an app error (the connection must be aborted so
    /// the client sees a truncated response, not a short "complete" one).
    finished: Option<bool>,
    waker: Option<Waker>,
    writer_gone: bool,
}

/// The buffer between the producing pool thread and the writing event loop.
#[derive(Debug, Default)]
pub struct StreamShared {
    state: Mutex<State>,
    drained: Condvar,
}

/// What the writer gets when it asks for data.
#[derive(Debug)]
pub enum Take {
    Data(Bytes),
    /// Nothing to send yet; `buffered` says whether some bytes are waiting for the linger to end.
    Wait {
        buffered: bool,
    },
    End {
        ok: bool,
    },
}

impl StreamShared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the buffer itself is still consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends a chunk. Returns false when the writer is gone (client disconnected): stop iterating.
    pub fn push(&self, data: &[u8]) -> bool {
        let mut state = self.lock();
        if state.writer_gone {
            return false;
        }
        let was_empty = state.buffer.is_empty();
        state.buffer.extend_from_slice(data);
        if was_empty || state.buffer.len() >= WAKE_BYTES {
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        }
        true
    }

    /// True when the producer should wait for the writer before pushing more.
    pub fn over_high_water(&self) -> bool {
        let state = self.lock();
        !state.writer_gone && state.buffer.len() >= HIGH_WATER
    }

    /// Blocks until the writer drained below the high-water mark or went away. Call without the GIL.
    pub fn wait_drained(&self) {
        let mut state = self.lock();
        while !state.writer_gone && state.buffer.len() >= HIGH_WATER {
            state = self.drained.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    pub fn finish(&self, ok: bool) {
        let mut state = self.lock();
        state.finished = Some(ok);
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// Takes what is buffered if it is worth a write now (`force` once the linger expired).
    pub fn take(&self, force: bool, waker: &Waker) -> Take {
        let mut state = self.lock();
        let buffered = state.buffer.len();
        if buffered > 0 && (force || state.finished.is_some() || buffered >= WAKE_BYTES) {
            let data = state.buffer.split().freeze();
            drop(state);
            self.drained.notify_all();
            return Take::Data(data);
        }
        if let Some(ok) = state.finished {
            return Take::End { ok };
        }
        match &mut state.waker {
            Some(existing) if existing.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
        Take::Wait { buffered: buffered > 0 }
    }

    /// The writer stops (response done or client gone); the producer will stop at its next chunk.
    pub fn writer_gone(&self) {
        self.lock().writer_gone = true;
        self.drained.notify_all();
    }

    fn is_writer_gone(&self) -> bool {
        self.lock().writer_gone
    }
}

/// An iteration to finish on a pool thread.
pub struct StreamJob {
    /// The object the app returned: its `close()` is called at the end, whatever happens.
    pub iterable: Py<PyAny>,
    pub iterator: Py<PyAny>,
    pub start_response: Py<StartResponse>,
    pub shared: Arc<StreamShared>,
    /// Bytes still allowed by the app's Content-Length, if it gave one.
    pub remaining: Option<u64>,
    /// For error messages.
    pub request_line: String,
}

/// Threads attached to Python that finish response iterations. Grows on demand (a thread per concurrent
/// stream, so one long-lived stream never blocks another) and keeps idle threads for reuse.
pub struct IterationPool {
    sender: crossbeam_channel::Sender<StreamJob>,
    receiver: crossbeam_channel::Receiver<StreamJob>,
    idle: Arc<AtomicUsize>,
    spawned: AtomicUsize,
}

/// Upper bound on pool threads per worker; beyond it streams queue.
const MAX_POOL_THREADS: usize = 64;

impl IterationPool {
    pub fn new() -> Self {
        let (sender, receiver) = crossbeam_channel::unbounded();
        Self { sender, receiver, idle: Arc::new(AtomicUsize::new(0)), spawned: AtomicUsize::new(0) }
    }

    pub fn submit(&self, job: StreamJob) {
        if self.idle.load(Ordering::Acquire) == 0 && self.spawned.load(Ordering::Relaxed) < MAX_POOL_THREADS {
            self.spawn_thread();
        }
        if let Err(crossbeam_channel::SendError(job)) = self.sender.send(job) {
            // Unreachable while `self` holds the receiver; fail the stream rather than hang the client.
            job.shared.finish(false);
        }
    }

    fn spawn_thread(&self) {
        let receiver = self.receiver.clone();
        let idle = Arc::clone(&self.idle);
        let number = self.spawned.fetch_add(1, Ordering::Relaxed) + 1;
        idle.fetch_add(1, Ordering::AcqRel);
        let spawned = std::thread::Builder::new().name(format!("liege-stream-{number}")).spawn(move || {
            // Attach once for the thread's life (keeps its thread state), detach while waiting for work.
            Python::attach(|py| {
                py.detach(|| {
                    while let Ok(job) = receiver.recv() {
                        idle.fetch_sub(1, Ordering::AcqRel);
                        Python::attach(|py| run_job(py, job));
                        idle.fetch_add(1, Ordering::AcqRel);
                    }
                })
            })
        });
        if let Err(err) = spawned {
            self.idle.fetch_sub(1, Ordering::AcqRel);
            self.spawned.fetch_sub(1, Ordering::Relaxed);
            tracing::error!("cannot start a streaming thread: {err}");
        }
    }
}

impl Default for IterationPool {
    fn default() -> Self {
        Self::new()
    }
}

fn run_job(py: Python<'_>, job: StreamJob) {
    let ok = iterate(py, &job);
    super::response::close_iterable(py, job.iterable.bind(py), &job.request_line);
    job.shared.finish(ok);
}

/// Pulls the rest of the chunks; false when the stream must be aborted (app error).
fn iterate(py: Python<'_>, job: &StreamJob) -> bool {
    let iterator = job.iterator.bind(py);
    let mut remaining = job.remaining;
    loop {
        if job.shared.is_writer_gone() {
            return true;
        }
        // SAFETY: `iterator` came from `try_iter()` (so it is an iterator) and the job keeps it alive; `py`
        // proves the GIL is held. PyIter_Next returns a new reference or NULL, which the code below owns or checks.
        let next = unsafe { pyo3::ffi::PyIter_Next(iterator.as_ptr()) };
        let chunk = if next.is_null() {
            if let Some(err) = PyErr::take(py) {
                super::response::log_app_error(
                    py,
                    &job.request_line,
                    &super::start_response::WsgiError::AppRaised(err),
                );
                return false;
            }
            break;
        } else {
            // SAFETY: PyIter_Next returned a new reference.
            unsafe { Bound::from_owned_ptr(py, next) }
        };
        let data = match chunk_bytes(&chunk) {
            Some(data) => data,
            None => {
                super::response::log_app_error(py, &job.request_line, &chunk_type_error(&chunk));
                return false;
            }
        };
        let written = std::mem::take(&mut job.start_response.bind(py).borrow_mut().written);
        for piece in [&written[..], &data[..]] {
            if piece.is_empty() {
                continue;
            }
            let piece = match remaining {
                Some(left) => &piece[..piece.len().min(left as usize)],
                None => piece,
            };
            if !job.shared.push(piece) {
                return true;
            }
            if let Some(left) = remaining.as_mut() {
                *left -= piece.len() as u64;
                if *left == 0 {
                    // The app's Content-Length is reached: more bytes would corrupt the connection.
                    return true;
                }
            }
        }
        if job.shared.over_high_water() {
            py.detach(|| job.shared.wait_drained());
        }
    }
    let written = std::mem::take(&mut job.start_response.bind(py).borrow_mut().written);
    if !written.is_empty() {
        job.shared.push(&written);
    }
    true
}
