//! Calling the app and turning what it returns into a response the protocol layers can send.
//!
//! The call runs in a fresh copy of the thread's `contextvars` context, which the response's iteration and
//! `close()` enter again later (see `python::iteration`).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::iteration::{RequestContext, ResponseIter, StreamShared};
use super::start_response::{chunk_bytes, chunk_type_error, ResponseHead, StartResponse, WsgiError};
use super::streams::{FileSource, FileWrapper};

/// Where the body bytes come from.
pub enum BodySource {
    Empty,
    /// Everything, known before the head is sent.
    Full(Bytes),
    /// The first bytes (sent with the head) and an iterable to pull the rest from, on the thread that called
    /// the app (the inline event loop's body or writer pulls it).
    Iter {
        first: Bytes,
        iter: ResponseIter,
    },
    /// The first bytes and the rest as produced by the app thread that called the app (`threads = N`).
    Stream {
        first: Bytes,
        shared: Arc<StreamShared>,
    },
    /// A regular file from `wsgi.file_wrapper`; `closer` ends the response.
    File {
        source: FileSource,
        closer: FileCloser,
    },
}

/// The object whose `close()` ends a file-wrapper response, and the request's context to call it in.
pub struct FileCloser {
    object: Py<PyAny>,
    context: Option<RequestContext>,
}

impl FileCloser {
    pub fn close(self, py: Python<'_>) {
        let _entered = self.context.as_ref().map(|context| context.enter(py));
        close_iterable(py, self.object.bind(py), "file_wrapper");
    }
}

impl BodySource {
    /// For an app thread: turns a pending iteration into a stream the event loop reads, and returns the
    /// iteration for the calling thread to drive (`python::iteration::drive`).
    pub fn detach_iteration(&mut self) -> Option<(ResponseIter, Arc<StreamShared>)> {
        if !matches!(self, Self::Iter { .. }) {
            return None;
        }
        let shared = Arc::new(StreamShared::default());
        let stream = Self::Stream { first: Bytes::new(), shared: Arc::clone(&shared) };
        match std::mem::replace(self, stream) {
            Self::Iter { first, iter } => {
                if let Self::Stream { first: slot, .. } = self {
                    *slot = first;
                }
                Some((iter, shared))
            }
            _ => None,
        }
    }
}

/// A response ready for the wire.
pub struct Prepared {
    pub head: ResponseHead,
    pub body: BodySource,
    /// The app raised or broke the protocol (counted as an exception in the stats).
    pub app_failed: bool,
}

const INTERNAL_ERROR_BODY: &[u8] = b"Internal Server Error\n";

impl Prepared {
    /// A short plain-text response produced by liege itself (errors, refusals).
    pub fn plain(status: StatusCode, close: bool, body: &'static [u8]) -> Self {
        Self {
            head: ResponseHead::plain(status, close, body.len()),
            body: BodySource::Full(Bytes::from_static(body)),
            app_failed: false,
        }
    }

    fn internal_error() -> Self {
        Self { app_failed: true, ..Self::plain(StatusCode::INTERNAL_SERVER_ERROR, false, INTERNAL_ERROR_BODY) }
    }
}

/// Calls the WSGI app and prepares its response. Never fails: app errors become a logged 500.
pub fn call_app(
    py: Python<'_>,
    app: &Py<PyAny>,
    environ: Bound<'_, PyDict>,
    head_only: bool,
    request_line: &str,
) -> Prepared {
    let context = match RequestContext::new(py) {
        Ok(context) => context,
        Err(err) => {
            log_app_error(py, request_line, &WsgiError::AppRaised(err));
            return Prepared::internal_error();
        }
    };
    let entered = context.enter(py);
    let start_response = match Bound::new(py, StartResponse::new()) {
        Ok(sr) => sr,
        Err(err) => {
            log_app_error(py, request_line, &WsgiError::AppRaised(err));
            return Prepared::internal_error();
        }
    };
    let result = match app.bind(py).call1((environ, &start_response)) {
        Ok(result) => result,
        Err(err) => {
            log_app_error(py, request_line, &WsgiError::AppRaised(err));
            return Prepared::internal_error();
        }
    };
    match prepare(py, &result, &start_response, head_only, request_line) {
        Ok(Outcome::Ready(mut prepared)) => {
            if let BodySource::File { closer, .. } = &mut prepared.body {
                drop(entered);
                closer.context = Some(context);
            }
            prepared
        }
        Ok(Outcome::Iterate { head, first, iterator, remaining }) => {
            drop(entered);
            let iter = ResponseIter::new(
                result.unbind(),
                iterator,
                start_response.unbind(),
                context,
                remaining,
                request_line.to_owned(),
            );
            Prepared { head, body: BodySource::Iter { first, iter }, app_failed: false }
        }
        Err(err) => {
            log_app_error(py, request_line, &err);
            close_iterable(py, &result, request_line);
            Prepared::internal_error()
        }
    }
}

/// What `prepare` found: a response ready as is, or a generator to keep pulling after its first chunk.
enum Outcome {
    Ready(Prepared),
    Iterate { head: ResponseHead, first: Bytes, iterator: Py<PyAny>, remaining: Option<u64> },
}

fn prepare(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    start_response: &Bound<'_, StartResponse>,
    head_only: bool,
    request_line: &str,
) -> Result<Outcome, WsgiError> {
    if let Ok(wrapper) = result.cast::<FileWrapper>() {
        if !start_response.get().has_written() {
            if let Some(mut source) = wrapper.borrow().file_source(py) {
                let mut head = start_response.get().head(py)?;
                start_response.get().mark_sent();
                source.len = head.content_length.map_or(source.len, |cl| cl.min(source.len));
                if head.content_length.is_none() {
                    head.headers.insert(http::header::CONTENT_LENGTH, source.len.into());
                    head.content_length = Some(source.len);
                }
                if head_only {
                    close_iterable(py, result, request_line);
                    return Ok(Outcome::Ready(Prepared { head, body: BodySource::Empty, app_failed: false }));
                }
                return Ok(Outcome::Ready(Prepared {
                    head,
                    body: BodySource::File {
                        source,
                        closer: FileCloser { object: result.clone().unbind(), context: None },
                    },
                    app_failed: false,
                }));
            }
        }
    }

    // Lists and tuples are complete already: no Python code can run (or block) while we walk them.
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        let mut chunks: Vec<Bytes> = Vec::new();
        for item in result.try_iter().map_err(WsgiError::AppRaised)? {
            let item = item.map_err(WsgiError::AppRaised)?;
            chunks.push(chunk_bytes(&item).ok_or_else(|| chunk_type_error(&item))?);
        }
        let head = start_response.get().head(py)?;
        let written = start_response.get().take_written();
        start_response.get().mark_sent();
        let body = concat(written, chunks);
        return Ok(Outcome::Ready(complete(head, body, head_only)));
    }

    let mut iterator = result.try_iter().map_err(WsgiError::AppRaised)?;
    // PEP 3333: the head goes out with the first non-empty chunk (a generator may call start_response late).
    let mut first = None;
    for item in iterator.by_ref() {
        let item = item.map_err(WsgiError::AppRaised)?;
        let data = chunk_bytes(&item).ok_or_else(|| chunk_type_error(&item))?;
        if !data.is_empty() {
            first = Some(data);
            break;
        }
    }
    let head = start_response.get().head(py)?;
    let written = start_response.get().take_written();
    start_response.get().mark_sent();
    let exhausted = first.is_none();
    let first = concat(written, first.into_iter().collect());
    let reached_length = head.content_length.is_some_and(|cl| first.len() as u64 >= cl);
    if exhausted || head_only || reached_length {
        close_iterable(py, result, request_line);
        return Ok(Outcome::Ready(complete(head, first, head_only)));
    }
    let remaining = head.content_length.map(|cl| cl - first.len() as u64);
    Ok(Outcome::Iterate { head, first, iterator: iterator.into_any().unbind(), remaining })
}

/// A response whose whole body is known; trimmed to the app's Content-Length if it sent more.
fn complete(head: ResponseHead, mut body: Bytes, head_only: bool) -> Prepared {
    if let Some(limit) = head.content_length {
        body.truncate(limit.min(body.len() as u64) as usize);
    }
    let body = if head_only || body.is_empty() { BodySource::Empty } else { BodySource::Full(body) };
    Prepared { head, body, app_failed: false }
}

fn concat(written: Vec<u8>, chunks: Vec<Bytes>) -> Bytes {
    if written.is_empty() && chunks.len() == 1 {
        return chunks.into_iter().next().unwrap_or_default();
    }
    let total = written.len() + chunks.iter().map(Bytes::len).sum::<usize>();
    let mut body = BytesMut::with_capacity(total);
    body.extend_from_slice(&written);
    for chunk in &chunks {
        body.extend_from_slice(chunk);
    }
    body.freeze()
}

/// PEP 3333: the server calls `close()` on the iterable, if it has one, however the response ended.
pub fn close_iterable(py: Python<'_>, iterable: &Bound<'_, PyAny>, request_line: &str) {
    if iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>() {
        return;
    }
    let close = match iterable.getattr(pyo3::intern!(py, "close")) {
        Ok(close) => close,
        Err(_) => return,
    };
    if let Err(err) = close.call0() {
        log_app_error(py, request_line, &WsgiError::AppRaised(err));
    }
}

/// Logs an app failure with its traceback, attributed to the request.
pub fn log_app_error(py: Python<'_>, request_line: &str, err: &WsgiError) {
    tracing::error!("{err} while serving {request_line}");
    if let WsgiError::AppRaised(py_err) = err {
        py_err.display(py);
        // --- Python plugin options (py) ---
        if let Some(hook) = EXCEPTION_HOOK.get() {
            let (class, value) = exception_identity(py, py_err);
            hook(&class, value.as_deref());
        }
        // --- end Python plugin options ---
    }
}

// --- Python plugin options (py) ---
/// Told of every exception the app raised (after it is logged): its class as `module.Name` and its `str()`
/// (`None` when `str()` itself raised). The worker sets one for `reload-on-exception`; without it nothing
/// is computed, and the request path never looks here (only the error path does).
pub type ExceptionHook = Box<dyn Fn(&str, Option<&str>) + Send + Sync>;

static EXCEPTION_HOOK: std::sync::OnceLock<ExceptionHook> = std::sync::OnceLock::new();

/// Installs the process's [`ExceptionHook`] (once; false if one was already set).
pub fn set_exception_hook(hook: ExceptionHook) -> bool {
    EXCEPTION_HOOK.set(hook).is_ok()
}

/// An exception's class and value as uWSGI's Python plugin names them (pyutils.c
/// `uwsgi_python_exception_class` / `_msg`): `__module__.__name__` of the class (just `__name__` without a
/// module, or for Python 2's `exceptions`), and `str(exc)`.
pub fn exception_identity(py: Python<'_>, err: &PyErr) -> (String, Option<String>) {
    let class = err.get_type(py);
    let name = class.getattr("__name__").and_then(|n| n.extract::<String>()).unwrap_or_else(|_| "?".to_owned());
    let class_name = match class.getattr("__module__").and_then(|m| m.extract::<String>()) {
        Ok(module) if module != "exceptions" => format!("{module}.{name}"),
        _ => name,
    };
    let value = err.value(py).str().ok().map(|text| text.to_string());
    (class_name, value)
}
// --- end Python plugin options ---
