//! Response bodies: the hyper `Body` for HTTP, and the readers shared with the uwsgi-protocol writer.
//!
//! A generator response on an inline worker is pulled right here, in `poll_frame`, on the event-loop thread
//! that called the app (see `python::iteration` for the batching policy). How that meets hyper's h1
//! dispatcher: after a frame, hyper keeps polling the body while its write buffer has room (it flattens
//! frames into one buffer, `writev(false)`), and flushes when the body returns `Pending` or the buffer is
//! full. So after the head's first chunk and after a batch that ended on time, [`IterReader`] returns
//! `Pending` once (waking itself): hyper flushes, then polls again, and the next `next()` only runs once the
//! produced bytes are on the wire. A client that does not drain stops the pulling: hyper does not poll the
//! body while its buffer is full and the socket is not writable.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use pyo3::prelude::*;

use super::record::RequestRecord;
use crate::python::iteration::{Batch, ResponseIter, StreamShared, Take};
use crate::python::response::{BodySource, FileCloser};
use crate::python::streams::{read_file_chunk, FileSource};

/// Reads of a file-wrapper file are this large.
const FILE_CHUNK: usize = 256 * 1024;

/// The app failed in the middle of a response: the connection must be aborted.
#[derive(Debug, thiserror::Error)]
#[error("the app failed while streaming the response")]
pub struct StreamAborted;

/// A response iterable pulled on this (the calling) thread, batch by batch.
pub struct IterReader {
    iter: ResponseIter,
    first: Option<Bytes>,
    buffer: BytesMut,
    /// A large chunk to send after the current batch, from its own buffer.
    big: Option<Bytes>,
    /// The bytes handed over must be written before the next pull.
    flush_first: bool,
    /// `Some(true)` when the iteration ended, `Some(false)` when it failed (abort after the bytes before it).
    end: Option<bool>,
}

impl IterReader {
    pub fn new(first: Bytes, iter: ResponseIter) -> Self {
        Self {
            iter,
            first: (!first.is_empty()).then_some(first),
            buffer: BytesMut::new(),
            big: None,
            flush_first: false,
            end: None,
        }
    }

    /// No byte is left to hand over.
    pub fn is_done(&self) -> bool {
        self.end == Some(true) && self.first.is_none() && self.big.is_none()
    }

    /// The next bytes for the writer: pulls a batch when nothing is pending. `Pending` only to let the writer
    /// flush before the next pull (the waker is woken at once).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, StreamAborted>>> {
        if let Some(first) = self.first.take() {
            // The time to first byte is the app's: the head and its first chunk leave before the next `next()`.
            self.flush_first = true;
            return Poll::Ready(Some(Ok(first)));
        }
        loop {
            if let Some(big) = self.big.take() {
                return Poll::Ready(Some(Ok(big)));
            }
            match self.end {
                Some(true) => return Poll::Ready(None),
                Some(false) => return Poll::Ready(Some(Err(StreamAborted))),
                None => {}
            }
            if std::mem::take(&mut self.flush_first) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            match self.pull() {
                Some(data) => return Poll::Ready(Some(Ok(data))),
                None => continue,
            }
        }
    }

    /// Pulls one batch (with the GIL) and returns its bytes, if any; the rest of the outcome is kept in `self`.
    pub fn pull(&mut self) -> Option<Bytes> {
        let (iter, buffer, big) = (&mut self.iter, &mut self.buffer, &mut self.big);
        let batch = Python::attach(|py| iter.pull(py, buffer, big));
        match batch {
            Batch::More => {}
            Batch::Flush => self.flush_first = true,
            Batch::End => self.end = Some(true),
            Batch::Failed => self.end = Some(false),
        }
        (!self.buffer.is_empty()).then(|| self.buffer.split().freeze())
    }

    /// Takes the large chunk that ended the last batch, if any.
    pub fn take_big(&mut self) -> Option<Bytes> {
        self.big.take()
    }

    /// How the last batch ended: `None` while more may follow, `Some(false)` when the app failed.
    pub fn ended(&self) -> Option<bool> {
        self.end
    }

    /// Calls `close()` now (it would run on drop anyway).
    pub fn close(&mut self) {
        Python::attach(|py| self.iter.close(py));
    }
}

/// The rest of a streamed response, as produced by the app thread that called the app (`threads = N`).
pub struct StreamReader {
    first: Option<Bytes>,
    shared: Arc<StreamShared>,
}

impl StreamReader {
    pub fn new(first: Bytes, shared: Arc<StreamShared>) -> Self {
        Self { first: (!first.is_empty()).then_some(first), shared }
    }

    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, StreamAborted>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        match self.shared.take(cx.waker()) {
            Take::Data(data) => Poll::Ready(Some(Ok(data))),
            Take::Wait => Poll::Pending,
            Take::End { ok: true } => Poll::Ready(None),
            Take::End { ok: false } => Poll::Ready(Some(Err(StreamAborted))),
        }
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        self.shared.writer_gone();
    }
}

/// A file-wrapper file read in large chunks; its wrapper's `close()` runs when the body is dropped.
pub struct FileReader {
    pub source: FileSource,
    pub position: u64,
    closer: Option<FileCloser>,
}

impl FileReader {
    pub fn new(source: FileSource, closer: FileCloser) -> Self {
        Self { source, position: 0, closer: Some(closer) }
    }

    /// A file liege opened itself (static files): nothing to close in Python.
    pub fn plain(source: FileSource) -> Self {
        Self { source, position: 0, closer: None }
    }

    pub fn remaining(&self) -> u64 {
        self.source.len - self.position
    }

    pub fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        if self.remaining() == 0 {
            return None;
        }
        let chunk = read_file_chunk(&self.source, self.position, FILE_CHUNK);
        match chunk {
            Ok(data) if data.is_empty() => {
                // The file shrank under us: end early rather than loop forever.
                self.position = self.source.len;
                Some(Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file shrank while being sent")))
            }
            Ok(data) => {
                self.position += data.len() as u64;
                Some(Ok(data))
            }
            Err(err) => Some(Err(err)),
        }
    }
}

impl Drop for FileReader {
    fn drop(&mut self) {
        if let Some(closer) = self.closer.take() {
            Python::attach(|py| closer.close(py));
        }
    }
}

enum Source {
    Empty,
    Full(Option<Bytes>),
    Iter(IterReader),
    Stream(StreamReader),
    File(FileReader),
}

/// The hyper response body. Holds the request's record so the log line and the stats are written when the
/// last byte was handed over (or the client went away).
pub struct ResponseBody {
    record: Option<RequestRecord>,
    source: Source,
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Aborted(#[from] StreamAborted),
    #[error("reading the file failed: {0}")]
    File(#[from] std::io::Error),
}

impl ResponseBody {
    pub fn new(source: BodySource, record: Option<RequestRecord>) -> Self {
        let source = match source {
            BodySource::Empty => Source::Empty,
            BodySource::Full(data) => Source::Full(Some(data)),
            BodySource::Iter { first, iter } => Source::Iter(IterReader::new(first, iter)),
            BodySource::Stream { first, shared } => Source::Stream(StreamReader::new(first, shared)),
            BodySource::File { source, closer } => Source::File(FileReader::new(source, closer)),
        };
        Self { record, source }
    }

    /// A static file, read in large chunks from the event loop.
    pub fn file(source: FileSource, record: RequestRecord) -> Self {
        Self { source: Source::File(FileReader::plain(source)), record: Some(record) }
    }

    fn count(&mut self, data: &Bytes) {
        if let Some(record) = &mut self.record {
            record.bytes_out += data.len() as u64;
        }
    }

    fn fail(&mut self) {
        if let Some(record) = &mut self.record {
            record.failed = true;
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let next = match &mut this.source {
            Source::Empty => None,
            Source::Full(data) => data.take().map(Ok),
            Source::Iter(reader) => match reader.poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(next) => next.map(|r| r.map_err(BodyError::from)),
            },
            Source::Stream(reader) => match reader.poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(next) => next.map(|r| r.map_err(BodyError::from)),
            },
            Source::File(reader) => reader.next_chunk().map(|r| r.map_err(BodyError::from)),
        };
        match next {
            Some(Ok(data)) => {
                this.count(&data);
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Some(Err(err)) => {
                this.fail();
                Poll::Ready(Some(Err(err)))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Empty => true,
            Source::Full(data) => data.is_none(),
            Source::Iter(reader) => reader.is_done(),
            Source::Stream(_) => false,
            Source::File(reader) => reader.remaining() == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Empty => SizeHint::with_exact(0),
            Source::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Source::Iter(_) | Source::Stream(_) => SizeHint::default(),
            Source::File(reader) => SizeHint::with_exact(reader.remaining()),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // `close()` first, then the record (log line, stats), then the iteration itself, whose drop hands the
        // inline worker's turn to the next request: that request's record must not start before this one ends.
        if let Source::Iter(reader) = &mut self.source {
            reader.close();
        }
        self.record.take();
    }
}
