//! The file-like objects of the WSGI environ: `wsgi.input`, `wsgi.errors`, `wsgi.file_wrapper`.

use std::fs::File;
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

/// A request body, fully received before the app is called: small ones in memory, large ones spooled to an
/// unlinked temporary file. Reading it never touches the network, so the app can't be stalled by a slow client.
#[derive(Debug, Default)]
pub enum RequestBody {
    #[default]
    Empty,
    Memory(Bytes),
    File {
        file: File,
        len: u64,
    },
}

impl RequestBody {
    pub fn len(&self) -> u64 {
        match self {
            Self::Empty => 0,
            Self::Memory(bytes) => bytes.len() as u64,
            Self::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `max` bytes starting at `offset`.
    fn read_at(&self, offset: u64, max: usize) -> std::io::Result<Vec<u8>> {
        let end = (offset + max as u64).min(self.len());
        if offset >= end {
            return Ok(Vec::new());
        }
        match self {
            Self::Empty => Ok(Vec::new()),
            Self::Memory(bytes) => Ok(bytes[offset as usize..end as usize].to_vec()),
            Self::File { file, .. } => {
                let mut buf = vec![0; (end - offset) as usize];
                file.read_exact_at(&mut buf, offset)?;
                Ok(buf)
            }
        }
    }

    /// Position of the first `\n` at or after `offset` (bounded by `limit` bytes), if any.
    fn find_newline(&self, offset: u64, limit: usize) -> std::io::Result<Option<u64>> {
        match self {
            Self::Empty => Ok(None),
            Self::Memory(bytes) => {
                let start = (offset as usize).min(bytes.len());
                let end = start.saturating_add(limit).min(bytes.len());
                Ok(memchr::memchr(b'\n', &bytes[start..end]).map(|i| (start + i) as u64))
            }
            Self::File { .. } => {
                let mut scanned = 0usize;
                let mut at = offset;
                while scanned < limit && at < self.len() {
                    let block = self.read_at(at, (limit - scanned).min(64 * 1024))?;
                    if let Some(i) = memchr::memchr(b'\n', &block) {
                        return Ok(Some(at + i as u64));
                    }
                    scanned += block.len();
                    at += block.len() as u64;
                }
                Ok(None)
            }
        }
    }
}

/// `wsgi.input`: read, readline, readlines and iteration over the received body, bounded by it (a read past
/// the end returns `b""`, never blocks).
#[pyclass(module = "liege", name = "InputStream")]
pub struct InputStream {
    body: RequestBody,
    position: u64,
}

impl InputStream {
    pub fn new(body: RequestBody) -> Self {
        Self { body, position: 0 }
    }

    fn remaining(&self) -> u64 {
        self.body.len().saturating_sub(self.position)
    }

    fn take<'py>(&mut self, py: Python<'py>, n: u64) -> PyResult<Bound<'py, PyBytes>> {
        let n = n.min(self.remaining()) as usize;
        if n == 0 {
            return Ok(PyBytes::new(py, b""));
        }
        if let RequestBody::Memory(bytes) = &self.body {
            let start = self.position as usize;
            self.position += n as u64;
            return Ok(PyBytes::new(py, &bytes[start..start + n]));
        }
        let data =
            self.body.read_at(self.position, n).map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
        self.position += data.len() as u64;
        Ok(PyBytes::new(py, &data))
    }

    fn line<'py>(&mut self, py: Python<'py>, limit: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let limit = match limit {
            Some(n) if n >= 0 => (n as u64).min(self.remaining()),
            _ => self.remaining(),
        };
        let newline = self
            .body
            .find_newline(self.position, limit as usize)
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
        let n = match newline {
            Some(at) => at - self.position + 1,
            None => limit,
        };
        self.take(py, n)
    }
}

#[pymethods]
impl InputStream {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        match size {
            Some(n) if n >= 0 => self.take(py, n as u64),
            _ => self.take(py, self.remaining()),
        }
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        self.line(py, size)
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&mut self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let lines = PyList::empty(py);
        let mut total = 0usize;
        while self.remaining() > 0 {
            let line = self.line(py, None)?;
            total += line.as_bytes().len();
            lines.append(line)?;
            if matches!(hint, Some(h) if h > 0 && total >= h as usize) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        if self.remaining() == 0 {
            return Ok(None);
        }
        self.line(py, None).map(Some)
    }

    fn __len__(&self) -> usize {
        self.remaining() as usize
    }

    fn readable(&self) -> bool {
        true
    }
}

/// `wsgi.errors`: text written here goes to the vassal's log, one line per write of a line.
#[pyclass(module = "liege", name = "ErrorStream", frozen)]
pub struct ErrorStream;

#[pymethods]
impl ErrorStream {
    fn write(&self, text: &str) -> usize {
        crate::logging::write_raw(text.as_bytes());
        text.len()
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            let line = line?;
            crate::logging::write_raw(line.extract::<&str>()?.as_bytes());
        }
        Ok(())
    }

    fn flush(&self) {}

    fn isatty(&self) -> bool {
        false
    }
}

/// `wsgi.file_wrapper`: when the wrapped object has a `fileno()` of a regular file, liege serves it straight
/// from the file descriptor (sendfile on the uwsgi socket, large reads without the GIL on HTTP); otherwise it
/// is an ordinary iterable reading `blksize` bytes at a time.
#[pyclass(module = "liege", name = "FileWrapper")]
pub struct FileWrapper {
    filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: isize) -> PyResult<Self> {
        if blksize <= 0 {
            return Err(PyValueError::new_err("blksize must be positive"));
        }
        Ok(Self { filelike, blksize: blksize as usize })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self.filelike.bind(py).call_method1("read", (self.blksize,))?;
        if data.len()? == 0 {
            return Ok(None);
        }
        Ok(Some(data))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let filelike = self.filelike.bind(py);
        if filelike.hasattr("close")? {
            filelike.call_method0("close")?;
        }
        Ok(())
    }
}

/// A regular file to send from a file descriptor, from its current offset.
#[derive(Debug)]
pub struct FileSource {
    pub file: File,
    pub offset: u64,
    pub len: u64,
}

impl FileWrapper {
    /// The wrapped object as a file descriptor we can send from, if it is a regular file.
    pub fn file_source(&self, py: Python<'_>) -> Option<FileSource> {
        let filelike = self.filelike.bind(py);
        let fd: i32 = filelike.call_method0("fileno").ok()?.extract().ok()?;
        // Flush Python-side buffering before reading the fd directly.
        if filelike.hasattr("flush").unwrap_or(false) {
            let _ = filelike.call_method0("flush");
        }
        let offset: u64 = filelike.call_method0("tell").ok().and_then(|t| t.extract().ok()).unwrap_or(0);
        // SAFETY: fd is open for as long as the filelike lives; we duplicate it to own our copy.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let owned = borrowed.try_clone_to_owned().ok()?;
        let file = File::from(owned);
        let meta = file.metadata().ok()?;
        if !meta.file_type().is_file() {
            return None;
        }
        Some(FileSource { file, offset, len: meta.len().saturating_sub(offset) })
    }
}

pub fn read_file_chunk(source: &FileSource, position: u64, max: usize) -> std::io::Result<Bytes> {
    let remaining = source.len.saturating_sub(position);
    let n = (remaining as usize).min(max);
    let mut buf = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        let read = source.file.read_at(&mut buf[filled..], source.offset + position + filled as u64)?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    buf.truncate(filled);
    Ok(Bytes::from(buf))
}
