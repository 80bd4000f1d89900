//! `start_response` and the response head it records (PEP 3333).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use pyo3::exceptions::{PyAssertionError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};

/// Why a response could not be produced; each is logged with the request and answered with a 500 when no
/// byte of the response was sent yet.
#[derive(Debug, thiserror::Error)]
pub enum WsgiError {
    #[error("the app raised an exception")]
    AppRaised(#[source] PyErr),
    #[error("the app returned a chunk of type '{0}': WSGI response chunks must be bytes")]
    NotBytes(String),
    #[error("the app returned without calling start_response")]
    StartResponseNotCalled,
    #[error("invalid status line {0:?}: expected '<3-digit code> <reason>'")]
    BadStatus(String),
    #[error("invalid response header {0}")]
    BadHeader(String),
}

/// The response head as the app gave it, validated and ready for the wire.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    /// The app's reason phrase when it differs from the standard one (`200 Ok` in the seed app).
    pub reason: Option<Bytes>,
    pub headers: HeaderMap,
    pub content_length: Option<u64>,
    /// The app asked for `Connection: close`.
    pub close: bool,
}

impl ResponseHead {
    /// A plain-text error response produced by liege itself.
    pub fn plain(status: StatusCode, close: bool, body_len: usize) -> Self {
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        Self { status, reason: None, headers, content_length: Some(body_len as u64), close }
    }

    /// Bytes of the head as uWSGI counts them for the request log (status line, headers, CRLFs).
    pub fn wire_size(&self) -> usize {
        let status_line =
            9 + 3 + 1 + self.reason.as_ref().map_or(self.status.canonical_reason().map_or(0, str::len), Bytes::len) + 2;
        status_line + self.headers.iter().map(|(n, v)| n.as_str().len() + 2 + v.len() + 2).sum::<usize>() + 2
    }
}

/// The `start_response` callable handed to the app; one per request.
///
/// Frozen (interior mutability) so the iteration loop can ask "did the app call `write()`?" with one relaxed
/// atomic load per chunk instead of a pyo3 borrow (two atomic read-modify-writes) per chunk.
#[pyclass(module = "liege", name = "StartResponse", frozen)]
pub struct StartResponse {
    state: Mutex<State>,
    /// Bytes given to the legacy `write()` callable, sent before the next chunk of the iterable.
    written: Mutex<Vec<u8>>,
    /// `written` is not empty (checked per chunk without taking its lock).
    has_written: AtomicBool,
}

#[derive(Default)]
struct State {
    status: Option<Py<PyString>>,
    headers: Option<Py<PyAny>>,
    /// Set once the head left (or was handed to) the server; after that only `exc_info` re-raises.
    headers_sent: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere while it was held; the data is still consistent.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StartResponse {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            written: Mutex::new(Vec::new()),
            has_written: AtomicBool::new(false),
        }
    }

    pub fn called(&self) -> bool {
        lock(&self.state).status.is_some()
    }

    /// The head is being handed to the server: from now on `start_response` only re-raises `exc_info`.
    pub fn mark_sent(&self) {
        lock(&self.state).headers_sent = true;
    }

    /// True when `write()` left bytes that must go out before the next chunk.
    #[inline]
    pub fn has_written(&self) -> bool {
        self.has_written.load(Ordering::Relaxed)
    }

    /// Takes the bytes given to `write()` so far.
    pub fn take_written(&self) -> Vec<u8> {
        if !self.has_written() {
            return Vec::new();
        }
        self.has_written.store(false, Ordering::Relaxed);
        std::mem::take(&mut *lock(&self.written))
    }

    /// Validates what the app passed and turns it into a [`ResponseHead`].
    pub fn head(&self, py: Python<'_>) -> Result<ResponseHead, WsgiError> {
        let (status, headers) = {
            let state = lock(&self.state);
            let status = state.status.as_ref().ok_or(WsgiError::StartResponseNotCalled)?.clone_ref(py);
            (status, state.headers.as_ref().map(|h| h.clone_ref(py)))
        };
        let status = status.bind(py);
        let status = status.to_str().map_err(|_| WsgiError::BadStatus(status.to_string()))?;
        let (code, reason) = parse_status(status)?;
        let mut head =
            ResponseHead { status: code, reason, headers: HeaderMap::new(), content_length: None, close: false };
        let Some(headers) = &headers else { return Ok(head) };
        let headers = headers.bind(py);
        let items = headers.try_iter().map_err(|_| WsgiError::BadHeader("list: not iterable".into()))?;
        for item in items {
            let item = item.map_err(|e| WsgiError::BadHeader(e.to_string()))?;
            let (name, value): (Bound<'_, PyString>, Bound<'_, PyString>) = item
                .extract()
                .map_err(|_| WsgiError::BadHeader(format!("{item}: each header must be a (str, str) tuple")))?;
            let name_bytes =
                latin1_bytes(&name).ok_or_else(|| WsgiError::BadHeader(format!("name {name:?} is not latin-1")))?;
            let value_bytes =
                latin1_bytes(&value).ok_or_else(|| WsgiError::BadHeader(format!("value {value:?} is not latin-1")))?;
            let header_name = HeaderName::from_bytes(&name_bytes)
                .map_err(|_| WsgiError::BadHeader(format!("name {name:?} is not a valid HTTP token")))?;
            // HeaderValue refuses CR, LF and NUL: an app can't split the response (header injection).
            let header_value = HeaderValue::from_bytes(&value_bytes)
                .map_err(|_| WsgiError::BadHeader(format!("{name}: value {value:?} contains control characters")))?;
            match header_name {
                // Hop-by-hop headers are the server's business (PEP 3333); honour an explicit close.
                ref n if n == http::header::CONNECTION => {
                    if value_bytes.eq_ignore_ascii_case(b"close") {
                        head.close = true;
                    }
                }
                ref n if n == http::header::TRANSFER_ENCODING || n == "keep-alive" => {}
                ref n if n == http::header::CONTENT_LENGTH => {
                    let length = std::str::from_utf8(&value_bytes)
                        .ok()
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .ok_or_else(|| WsgiError::BadHeader(format!("Content-Length {value:?} is not a number")))?;
                    head.content_length = Some(length);
                    head.headers.insert(header_name, header_value);
                }
                _ => {
                    head.headers.append(header_name, header_value);
                }
            }
        }
        Ok(head)
    }
}

impl Default for StartResponse {
    fn default() -> Self {
        Self::new()
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        {
            let this = slf.get();
            let mut state = lock(&this.state);
            match exc_info.filter(|e| !e.is_none()) {
                Some(exc_info) if state.headers_sent => {
                    // Too late to change the response: re-raise the app's error (PEP 3333).
                    return Err(PyErr::from_value(exc_info.get_item(1)?));
                }
                Some(_) => {}
                None if state.status.is_some() => {
                    return Err(PyAssertionError::new_err("start_response called a second time without exc_info"));
                }
                None => {}
            }
            let status = status
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err(format!("status must be a str, not {}", type_name(status))))?;
            if !headers.is_instance_of::<pyo3::types::PyList>() {
                return Err(PyTypeError::new_err(format!("headers must be a list, not {}", type_name(headers))));
            }
            state.status = Some(status.clone().unbind());
            state.headers = Some(headers.clone().unbind());
        }
        slf.getattr("write")
    }

    /// The legacy `write()` callable returned by `start_response`.
    fn write(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        if !self.called() {
            return Err(PyAssertionError::new_err("write() called before start_response"));
        }
        match chunk_bytes(data) {
            Some(bytes) => {
                lock(&self.written).extend_from_slice(&bytes);
                self.has_written.store(true, Ordering::Relaxed);
                Ok(())
            }
            None => Err(PyTypeError::new_err(format!("write() takes bytes, not {}", type_name(data)))),
        }
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// Chunks at least this large are sent from the Python object's own buffer instead of being copied.
pub const BORROW_THRESHOLD: usize = 16 * 1024;

/// Keeps a `bytes` object alive while its buffer is being sent. CPython `bytes` are immutable, so reading the
/// buffer needs no GIL; the reference is released (deferred by pyo3 when detached) once the write is done.
struct PyBytesOwner {
    _object: Py<PyBytes>,
    data: *const u8,
    len: usize,
}

// SAFETY: the buffer of an immutable `bytes` object is never written after creation and lives as long as
// `_object`; Py<T> itself is Send.
unsafe impl Send for PyBytesOwner {}
// SAFETY: as for Send: the bytes are immutable, so shared access from several threads only reads them.
unsafe impl Sync for PyBytesOwner {}

impl AsRef<[u8]> for PyBytesOwner {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: see the Send/Sync note above.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

/// The bytes of a response chunk, or `None` when it is not a bytestring (PEP 3333: str chunks are an error).
pub fn chunk_bytes(chunk: &Bound<'_, PyAny>) -> Option<Bytes> {
    if let Ok(bytes) = chunk.cast::<PyBytes>() {
        let data = bytes.as_bytes();
        if data.len() >= BORROW_THRESHOLD {
            let owner = PyBytesOwner { data: data.as_ptr(), len: data.len(), _object: bytes.clone().unbind() };
            return Some(Bytes::from_owner(owner));
        }
        return Some(Bytes::copy_from_slice(data));
    }
    if let Ok(array) = chunk.cast::<PyByteArray>() {
        return Some(Bytes::from(array.to_vec()));
    }
    None
}

pub fn chunk_type_error(chunk: &Bound<'_, PyAny>) -> WsgiError {
    WsgiError::NotBytes(type_name(chunk))
}

/// A `str` as latin-1 bytes (PEP 3333 header strings), `None` if it has a code point above U+00FF.
fn latin1_bytes(s: &Bound<'_, PyString>) -> Option<Vec<u8>> {
    let text = s.to_str().ok()?;
    if text.is_ascii() {
        return Some(text.as_bytes().to_vec());
    }
    text.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

fn parse_status(status: &str) -> Result<(StatusCode, Option<Bytes>), WsgiError> {
    let bad = || WsgiError::BadStatus(status.to_owned());
    let code_text = status.get(..3).ok_or_else(bad)?;
    let rest = &status[3..];
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(bad());
    }
    let code: u16 = code_text.parse().map_err(|_| bad())?;
    let code = StatusCode::from_u16(code).map_err(|_| bad())?;
    if code.as_u16() < 200 {
        return Err(bad());
    }
    let reason = rest.trim();
    if reason.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(bad());
    }
    let custom = (!reason.is_empty() && code.canonical_reason() != Some(reason))
        .then(|| Bytes::copy_from_slice(reason.as_bytes()));
    Ok((code, custom))
}

#[cfg(test)]
mod tests {
    use super::parse_status;

    #[test]
    fn status_lines_parse_with_custom_reasons() {
        assert_eq!(parse_status("200 OK").map(|(c, r)| (c.as_u16(), r)).ok(), Some((200, None)));
        let (code, reason) = parse_status("200 Ok").expect("valid");
        assert_eq!((code.as_u16(), reason.as_deref()), (200, Some(&b"Ok"[..])));
        assert!(parse_status("2OO OK").is_err());
        assert!(parse_status("200OK").is_err());
        assert!(parse_status("99 x").is_err());
        assert!(parse_status("100 Continue").is_err());
        assert!(parse_status("200 OK\r\nX: y").is_err());
        assert_eq!(parse_status("404").map(|(c, _)| c.as_u16()).ok(), Some(404));
    }
}
