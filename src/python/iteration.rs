//! Iterating a response iterable: on the thread that called the app, in the request's context, cheaply.
//!
//! # Where
//!
//! PEP 3333 leaves it open, but every framework assumes what uWSGI, Gunicorn and Granian do: the call, the
//! iteration and `close()` run on one thread, in one context. Flask's `stream_with_context`, Bottle's
//! thread-local `request`/`response`, Django's `translation.activate()` (an `asgiref.local.Local`, a
//! `ContextVar` underneath), Werkzeug's `Local`: all of them are set during the call and read while the
//! generator runs or in `close()`. So liege iterates where it called:
//!
//! - `threads = 1` (the app runs inline on the worker's event-loop thread): the HTTP body's `poll_frame` (and
//!   the uwsgi-protocol writer) pulls the chunks on that thread, under the GIL. A slow generator holds the
//!   event loop while it runs, as it holds a uWSGI worker; `threads = N` or more processes are the answer.
//! - `threads = N`: the app thread that called the app keeps iterating (it stays busy for the stream's
//!   duration, like a gunicorn gthread worker thread) and hands the bytes to the event loop through
//!   [`StreamShared`], whose high-water mark pauses it (GIL released) while the client does not drain.
//!
//! # In which context
//!
//! Each request gets its own copy of the thread's `contextvars` context ([`RequestContext`]): the call, every
//! batch of `next()` calls and `close()` run in it. Values the app sets in the call are therefore seen by its
//! generator and its `close()`, and never leak into the next request on the thread (nor into another stream
//! interleaved with it). `threading.local` has no such copy; on an inline worker streams are therefore
//! serialized ([`InlineGate`]): a request waits until the previous request's iteration is over, so the
//! thread-locals it sets stay its own until its `close()` (again what a uWSGI worker does).
//!
//! # How cheaply
//!
//! A seed-style generator yields a thousand tiny strings. Per chunk liege does `PyIter_Next`, an exact-type
//! check, a copy into a reused buffer and a length check for the app's Content-Length: no allocation, no
//! lock, no clock read. Chunks are coalesced into batches, and a batch ends when
//! - 64 KiB are buffered ([`BATCH_BYTES`]), or a single chunk is large enough to be sent from its own buffer;
//! - the iterable is exhausted (then `close()` runs right away, and the last batch ends the body);
//! - the batch has taken ≥ 1 ms ([`SLOW`]): then the writer flushes what was produced before the next
//!   `next()` runs, so a generator that sleeps or waits between yields (server-sent events, progress output)
//!   still gets each chunk on the wire right after it was produced.
//!
//! The clock is read at the 1st, 2nd, 4th, ... chunk of a batch and then every 32nd, so a fast generator pays
//! about 35 clock reads per thousand chunks. Once a single `next()` took ≥ 1 ms (the batch ended at its
//! first or second chunk: the generator blocks, e.g. sleeps between events), every chunk of the response is
//! timed: its `next()` calls are slow anyway. A generator that was fast for 32 chunks of a batch and then
//! starts blocking is noticed at the next check, at most 31 chunks later. The first non-empty chunk always goes out with the head on its own:
//! the time to first byte is the app's, whatever it does next. The price of coalescing: a chunk that a fast
//! `next()` produced waits in the batch during the following slow `next()` (at most one per generator
//! before it is known as slow); uWSGI and Gunicorn avoid that with a syscall per chunk, which costs a
//! thousand syscalls per seed-style response.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pyo3::ffi;
use pyo3::prelude::*;

use super::response::{close_iterable, log_app_error};
use super::start_response::{chunk_bytes, chunk_type_error, StartResponse, WsgiError, BORROW_THRESHOLD};

/// A batch ends once this much is buffered.
pub const BATCH_BYTES: usize = 64 * 1024;
/// A batch that took this long ends so that its bytes are written before the next `next()`.
pub const SLOW: Duration = Duration::from_millis(1);
/// After the first few chunks of a batch the clock is read every this many chunks (a power of two).
const CLOCK_EVERY: u32 = 32;
/// The threaded producer pauses (GIL released) above this until the writer catches up: a fast generator and
/// a slow client must not buffer a whole response in memory.
const HIGH_WATER: usize = 1024 * 1024;

/// The request's own `contextvars.Context` (a copy of the calling thread's, so values set at import time are
/// visible), entered while the app's code runs for the request.
pub struct RequestContext(Py<PyAny>);

impl RequestContext {
    pub fn new(py: Python<'_>) -> PyResult<Self> {
        // SAFETY: the GIL is held; PyContext_CopyCurrent returns a new reference or NULL with an exception.
        let context = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyContext_CopyCurrent())? };
        Ok(Self(context.unbind()))
    }

    /// Makes this the thread's current context until the guard drops.
    pub fn enter<'a>(&'a self, py: Python<'_>) -> Entered<'a> {
        // SAFETY: the GIL is held and the pointer is a live context object.
        let entered = unsafe { ffi::PyContext_Enter(self.0.as_ptr()) } == 0;
        if !entered {
            // Only fails when the context is already entered (re-entrant use, a bug): run in the current one.
            if let Some(err) = PyErr::take(py) {
                tracing::warn!("cannot enter the request's context: {err}");
            }
        }
        Entered { context: self, entered }
    }
}

/// While alive, the request's context is the thread's current one. Create and drop it with the GIL held.
pub struct Entered<'a> {
    context: &'a RequestContext,
    entered: bool,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        if self.entered {
            // SAFETY: created with the GIL held, which the holder keeps until this drops (scoped guard); the
            // context is the one entered on this thread.
            unsafe {
                if ffi::PyContext_Exit(self.context.0.as_ptr()) != 0 {
                    ffi::PyErr_Clear();
                }
            }
        }
    }
}

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// Stopped at the size limit; pull again when the bytes are handed over.
    More,
    /// Stopped on time: write the bytes out before pulling again.
    Flush,
    /// The iterable is exhausted or the app's Content-Length reached; `close()` was called.
    End,
    /// The app raised or yielded a non-bytes chunk (logged, `close()` called): the response must be aborted so
    /// the client sees it truncated, not short and "complete".
    Failed,
}

/// A response iterable being pulled, with everything needed to finish it: its `close()` is called exactly
/// once, in the request's context, by [`ResponseIter::close`] or, whatever happened, on drop.
pub struct ResponseIter {
    iterable: Py<PyAny>,
    iterator: Py<PyAny>,
    start_response: Py<StartResponse>,
    context: RequestContext,
    /// Bytes still allowed by the app's Content-Length, if it gave one.
    remaining: Option<u64>,
    request_line: String,
    /// A single `next()` took ≥ `SLOW` once: time every chunk from now on.
    slow: bool,
    closed: bool,
    /// The inline worker's turn, held until this iteration is dropped (see [`InlineGate`]).
    turn: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl ResponseIter {
    pub fn new(
        iterable: Py<PyAny>,
        iterator: Py<PyAny>,
        start_response: Py<StartResponse>,
        context: RequestContext,
        remaining: Option<u64>,
        request_line: String,
    ) -> Self {
        Self {
            iterable,
            iterator,
            start_response,
            context,
            remaining,
            request_line,
            slow: false,
            closed: false,
            turn: None,
        }
    }

    /// Keeps the inline worker's turn until this iteration ends.
    pub fn hold(&mut self, turn: tokio::sync::OwnedSemaphorePermit) {
        self.turn = Some(turn);
    }

    /// Pulls the next batch: chunks are appended to `out`; a chunk large enough to be sent from its own buffer
    /// ends the batch and is put in `big` (to be sent after `out`). On `End` and `Failed`, `close()` has run.
    pub fn pull(&mut self, py: Python<'_>, out: &mut BytesMut, big: &mut Option<Bytes>) -> Batch {
        if self.closed {
            return Batch::End;
        }
        let outcome = {
            let _entered = self.context.enter(py);
            let mut cursor = Cursor {
                iterator: self.iterator.as_ptr(),
                start_response: self.start_response.get(),
                remaining: &mut self.remaining,
                slow: &mut self.slow,
                request_line: &self.request_line,
            };
            cursor.pull(py, out, big)
        };
        if matches!(outcome, Batch::End | Batch::Failed) {
            self.close(py);
        }
        outcome
    }

    /// Calls the iterable's `close()` (once), in the request's context.
    pub fn close(&mut self, py: Python<'_>) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        let _entered = self.context.enter(py);
        close_iterable(py, self.iterable.bind(py), &self.request_line);
    }
}

impl Drop for ResponseIter {
    fn drop(&mut self) {
        if !self.closed {
            // The client went away, or the writer stopped early: PEP 3333 still wants `close()`.
            Python::attach(|py| self.close(py));
        }
    }
}

/// One batch's view of a [`ResponseIter`] (the fields the loop touches, borrowed apart from the context).
struct Cursor<'a> {
    iterator: *mut ffi::PyObject,
    start_response: &'a StartResponse,
    remaining: &'a mut Option<u64>,
    slow: &'a mut bool,
    request_line: &'a str,
}

impl Cursor<'_> {
    fn pull(&mut self, py: Python<'_>, out: &mut BytesMut, big: &mut Option<Bytes>) -> Batch {
        let start_response = self.start_response;
        let iterator = self.iterator;
        let started = Instant::now();
        let mut count: u32 = 0;
        if out.capacity() - out.len() < BATCH_BYTES {
            out.reserve(BATCH_BYTES);
        }
        loop {
            // SAFETY: the GIL is held and `iterator` is a live iterator (PyObject_GetIter's result).
            let next = unsafe { ffi::PyIter_Next(iterator) };
            if next.is_null() {
                if let Some(err) = PyErr::take(py) {
                    log_app_error(py, self.request_line, &WsgiError::AppRaised(err));
                    return Batch::Failed;
                }
                if start_response.has_written() {
                    let written = start_response.take_written();
                    self.append(&written, out);
                }
                return Batch::End;
            }
            // SAFETY: PyIter_Next returned a new reference, owned (and released) by `chunk`.
            let chunk = unsafe { Bound::from_owned_ptr(py, next) };
            if start_response.has_written() {
                let written = start_response.take_written();
                if self.append(&written, out) {
                    return Batch::End;
                }
            }
            // SAFETY: `next` is a live object; the exact check is a type-pointer comparison.
            let data: &[u8] = if unsafe { ffi::PyBytes_CheckExact(next) } != 0 {
                // SAFETY: an exact bytes object; its buffer lives as long as `chunk`.
                unsafe {
                    std::slice::from_raw_parts(
                        ffi::PyBytes_AsString(next).cast::<u8>(),
                        ffi::PyBytes_Size(next) as usize,
                    )
                }
            } else {
                match chunk_bytes(&chunk) {
                    // bytes subclasses and bytearrays: rare, the general path is fine.
                    Some(data) => {
                        if self.append(&data, out) {
                            return Batch::End;
                        }
                        &[]
                    }
                    None => {
                        log_app_error(py, self.request_line, &chunk_type_error(&chunk));
                        return Batch::Failed;
                    }
                }
            };
            if data.len() >= BORROW_THRESHOLD && self.remaining.is_none_or(|left| left >= data.len() as u64) {
                // Sent from the bytes object's own buffer, not copied into the batch.
                *big = chunk_bytes(&chunk);
                if let Some(left) = self.remaining.as_mut() {
                    *left -= data.len() as u64;
                    if *left == 0 {
                        return Batch::End;
                    }
                }
                return Batch::More;
            }
            if self.append(data, out) {
                return Batch::End;
            }
            if out.len() >= BATCH_BYTES {
                return Batch::More;
            }
            count = count.wrapping_add(1);
            let check_clock = *self.slow || count.is_power_of_two() || count % CLOCK_EVERY == 0;
            if check_clock && started.elapsed() >= SLOW {
                // A batch that ends at its first chunks ended on one blocking `next()`; later, on many fast ones
                // (a CPU-bound generator), which is no reason to time every chunk.
                *self.slow |= count <= 2;
                return Batch::Flush;
            }
        }
    }

    /// Appends `data`, trimmed to the app's Content-Length; true when that length is reached (more bytes would
    /// corrupt the connection, so the iteration ends).
    #[inline]
    fn append(&mut self, data: &[u8], out: &mut BytesMut) -> bool {
        match self.remaining.as_mut() {
            None => {
                out.extend_from_slice(data);
                false
            }
            Some(left) => {
                let take = data.len().min(*left as usize);
                out.extend_from_slice(&data[..take]);
                *left -= take as u64;
                *left == 0
            }
        }
    }
}

/// On an inline worker, one request at a time runs the app's code, from the call to its iteration's end (see
/// the module docs: `threading.local` values must stay the request's own until its `close()`).
pub struct InlineGate(Arc<tokio::sync::Semaphore>);

impl InlineGate {
    pub fn new() -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(1)))
    }

    /// Waits until no other request's response is being iterated. `None` only if the gate was closed.
    pub async fn turn(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        match Arc::clone(&self.0).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => Arc::clone(&self.0).acquire_owned().await.ok(),
        }
    }
}

impl Default for InlineGate {
    fn default() -> Self {
        Self::new()
    }
}

/// Finishes an iteration on an app thread (`threads = N`), handing batches to the event loop through `shared`;
/// returns when the iterable is exhausted, the app failed or the writer went away, after `close()`.
pub fn drive(py: Python<'_>, mut iter: ResponseIter, shared: &StreamShared) {
    let mut out = BytesMut::new();
    let mut big = None;
    let ok = loop {
        let batch = iter.pull(py, &mut out, &mut big);
        let mut delivered = true;
        if !out.is_empty() {
            delivered = shared.push(&out);
            out.clear();
        }
        if let Some(data) = big.take() {
            delivered = delivered && shared.push(&data);
        }
        match batch {
            Batch::End => break true,
            Batch::Failed => break false,
            Batch::More | Batch::Flush if !delivered => break true,
            Batch::More | Batch::Flush => {
                if shared.over_high_water() {
                    py.detach(|| shared.wait_drained());
                }
            }
        }
    };
    iter.close(py);
    shared.finish(ok);
}

#[derive(Debug, Default)]
struct State {
    buffer: BytesMut,
    /// `Some(true)` ended normally, `Some(false)` ended with an app error (the connection must be aborted).
    finished: Option<bool>,
    waker: Option<Waker>,
    writer_gone: bool,
}

/// The buffer between an app thread that iterates (`threads = N`) and the event loop that writes. The producer
/// pushes whole batches, so the writer sends whatever is there when it wakes.
#[derive(Debug, Default)]
pub struct StreamShared {
    state: Mutex<State>,
    drained: Condvar,
}

/// What the writer gets when it asks for data.
#[derive(Debug)]
pub enum Take {
    Data(Bytes),
    /// Nothing yet; the writer is woken by the next push or the end.
    Wait,
    End {
        ok: bool,
    },
}

impl StreamShared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the buffer itself is still consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends a batch. Returns false when the writer is gone (client disconnected): stop iterating.
    pub fn push(&self, data: &[u8]) -> bool {
        let mut state = self.lock();
        if state.writer_gone {
            return false;
        }
        state.buffer.extend_from_slice(data);
        if let Some(waker) = state.waker.take() {
            waker.wake();
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

    /// Takes what is buffered, or registers `waker` for the next push.
    pub fn take(&self, waker: &Waker) -> Take {
        let mut state = self.lock();
        if !state.buffer.is_empty() {
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
        Take::Wait
    }

    /// The writer stops (response done or client gone); the producer stops at its next batch.
    pub fn writer_gone(&self) {
        self.lock().writer_gone = true;
        self.drained.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop_waker() -> Waker {
        Waker::noop().clone()
    }

    #[test]
    fn the_writer_takes_whole_batches_then_the_end() {
        let shared = StreamShared::default();
        let waker = noop_waker();
        assert!(matches!(shared.take(&waker), Take::Wait));
        assert!(shared.push(b"ab"));
        assert!(shared.push(b"cd"));
        match shared.take(&waker) {
            Take::Data(data) => assert_eq!(&data[..], b"abcd"),
            other => panic!("expected data, got {other:?}"),
        }
        shared.finish(false);
        assert!(matches!(shared.take(&waker), Take::End { ok: false }));
    }

    #[test]
    fn a_gone_writer_stops_the_producer_and_its_wait() {
        let shared = Arc::new(StreamShared::default());
        assert!(shared.push(&vec![0u8; HIGH_WATER]));
        assert!(shared.over_high_water());
        let waiter = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || shared.wait_drained())
        };
        shared.writer_gone();
        waiter.join().expect("the producer's wait ends");
        assert!(!shared.push(b"more"));
        assert!(!shared.over_high_water());
    }

    #[test]
    fn draining_below_high_water_releases_the_producer() {
        let shared = Arc::new(StreamShared::default());
        assert!(shared.push(&vec![0u8; HIGH_WATER + 1]));
        let waiter = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || shared.wait_drained())
        };
        assert!(matches!(shared.take(&noop_waker()), Take::Data(_)));
        waiter.join().expect("the producer's wait ends");
    }
}
