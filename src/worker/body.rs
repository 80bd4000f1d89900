//! Response bodies: the hyper `Body` for HTTP, and the stream reader shared with the uwsgi-protocol writer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use pyo3::prelude::*;
use tokio::time::Sleep;

use super::record::RequestRecord;
use crate::python::iteration::{StreamShared, Take};
use crate::python::response::BodySource;
use crate::python::streams::{read_file_chunk, FileSource};

/// How long the writer waits for more chunks after the first bytes of a burst arrive (see
/// `python::iteration`). Tokio's timer resolution is 1 ms, so this is the smallest useful value.
const LINGER: Duration = Duration::from_millis(1);

/// Reads of a file-wrapper file are this large.
const FILE_CHUNK: usize = 256 * 1024;

/// The rest of a streamed response, as produced by a pool thread.
pub struct StreamReader {
    first: Option<Bytes>,
    shared: Arc<StreamShared>,
    linger: Option<Pin<Box<Sleep>>>,
}

/// The app failed in the middle of a response: the connection must be aborted.
#[derive(Debug, thiserror::Error)]
#[error("the app failed while streaming the response")]
pub struct StreamAborted;

impl StreamReader {
    pub fn new(first: Bytes, shared: Arc<StreamShared>) -> Self {
        Self { first: (!first.is_empty()).then_some(first), shared, linger: None }
    }

    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, StreamAborted>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        loop {
            let linger_over = self.linger.as_mut().is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
            match self.shared.take(linger_over, cx.waker()) {
                Take::Data(data) => {
                    self.linger = None;
                    return Poll::Ready(Some(Ok(data)));
                }
                Take::Wait { buffered: true } if self.linger.is_none() => {
                    self.linger = Some(Box::pin(tokio::time::sleep(LINGER)));
                }
                Take::Wait { .. } => return Poll::Pending,
                Take::End { ok: true } => return Poll::Ready(None),
                Take::End { ok: false } => return Poll::Ready(Some(Err(StreamAborted))),
            }
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
    closer: Option<Py<PyAny>>,
}

impl FileReader {
    pub fn new(source: FileSource, closer: Py<PyAny>) -> Self {
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
            Python::attach(|py| crate::python::response::close_iterable(py, closer.bind(py), "file_wrapper"));
        }
    }
}

enum Source {
    Empty,
    Full(Option<Bytes>),
    Stream(StreamReader),
    File(FileReader),
}

/// The hyper response body. Holds the request's record so the log line and the stats are written when the
/// last byte was handed over (or the client went away).
pub struct ResponseBody {
    source: Source,
    record: Option<RequestRecord>,
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
            BodySource::Stream { first, shared } => Source::Stream(StreamReader::new(first, shared)),
            BodySource::File { source, closer } => Source::File(FileReader::new(source, closer)),
        };
        Self { source, record }
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
            Source::Stream(_) => false,
            Source::File(reader) => reader.remaining() == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Empty => SizeHint::with_exact(0),
            Source::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Source::Stream(_) => SizeHint::default(),
            Source::File(reader) => SizeHint::with_exact(reader.remaining()),
        }
    }
}
