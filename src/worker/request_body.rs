//! Receiving a request body completely before the app runs: in memory below `post-buffering` bytes, in an
//! unlinked temporary file from there (uWSGI: `post_cl >= post_buffering` goes to disk), written in chunks of
//! `post-buffering-bufsize` bytes; refused past `limit-post`.
//!
//! Why not stream it into the app: the app runs inline on the worker's event loop, so a `wsgi.input.read()`
//! waiting on a slow client would freeze every connection of the worker. Receiving first also means a slow
//! upload costs a socket, never a busy worker (nginx buffers for the same reason).

use std::io::{BufWriter, Write};

use bytes::{Bytes, BytesMut};

use crate::python::streams::RequestBody;

#[derive(Debug, thiserror::Error)]
pub enum BodyReadError {
    #[error("request body larger than limit-post ({limit} bytes)")]
    TooLarge { limit: u64 },
    #[error("malformed request body: {0}")]
    Malformed(String),
    #[error("cannot spool the request body: {0}")]
    Spool(#[from] std::io::Error),
}

impl BodyReadError {
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::TooLarge { .. } => http::StatusCode::PAYLOAD_TOO_LARGE,
            Self::Malformed(_) => http::StatusCode::BAD_REQUEST,
            Self::Spool(_) => http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Accumulates body bytes.
pub struct BodyCollector {
    memory_limit: usize,
    /// 0 = unlimited.
    limit_post: u64,
    /// `post-buffering-bufsize`: the spool file is written in chunks of this size.
    bufsize: usize,
    single: Option<Bytes>,
    memory: BytesMut,
    file: Option<BufWriter<std::fs::File>>,
    total: u64,
}

impl BodyCollector {
    pub fn new(memory_limit: usize, limit_post: u64, bufsize: usize) -> Self {
        Self { memory_limit, limit_post, bufsize, single: None, memory: BytesMut::new(), file: None, total: 0 }
    }

    /// Refuses early when the declared length is already over the limit (before a 100-continue is sent).
    pub fn check_declared(&self, declared: Option<u64>) -> Result<(), BodyReadError> {
        match declared {
            Some(len) if self.limit_post > 0 && len > self.limit_post => {
                Err(BodyReadError::TooLarge { limit: self.limit_post })
            }
            _ => Ok(()),
        }
    }

    pub fn push(&mut self, data: Bytes) -> Result<(), BodyReadError> {
        if data.is_empty() {
            return Ok(());
        }
        self.total += data.len() as u64;
        if self.limit_post > 0 && self.total > self.limit_post {
            return Err(BodyReadError::TooLarge { limit: self.limit_post });
        }
        if let Some(file) = &mut self.file {
            file.write_all(&data)?;
            return Ok(());
        }
        // The common case, a body in one frame, is kept without copying.
        if self.single.is_none() && self.memory.is_empty() {
            if data.len() < self.memory_limit {
                self.single = Some(data);
                return Ok(());
            }
        } else if let Some(single) = self.single.take() {
            self.memory.extend_from_slice(&single);
        }
        if self.memory.len() + data.len() >= self.memory_limit {
            let mut file = BufWriter::with_capacity(self.bufsize.max(1), tempfile::tempfile()?);
            file.write_all(&self.memory)?;
            file.write_all(&data)?;
            self.memory = BytesMut::new();
            self.file = Some(file);
        } else {
            self.memory.extend_from_slice(&data);
        }
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn finish(self) -> Result<RequestBody, BodyReadError> {
        if let Some(file) = self.file {
            let file = file.into_inner().map_err(|err| BodyReadError::Spool(err.into_error()))?;
            return Ok(RequestBody::File { file, len: self.total });
        }
        Ok(match self.single {
            Some(data) => RequestBody::Memory(data),
            None if self.memory.is_empty() => RequestBody::Empty,
            None => RequestBody::Memory(self.memory.freeze()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_stay_in_memory_and_large_ones_spool() {
        let mut small = BodyCollector::new(8, 0, 8192);
        small.push(Bytes::from_static(b"abc")).expect("push");
        small.push(Bytes::from_static(b"de")).expect("push");
        assert!(matches!(small.finish().expect("finish"), RequestBody::Memory(b) if &b[..] == b"abcde"));

        let mut large = BodyCollector::new(4, 0, 8192);
        large.push(Bytes::from_static(b"abc")).expect("push");
        large.push(Bytes::from_static(b"defg")).expect("push");
        assert!(matches!(large.finish().expect("finish"), RequestBody::File { len: 7, .. }));

        // uWSGI's threshold: a body of post-buffering bytes or more goes to disk.
        let mut exact = BodyCollector::new(4, 0, 8192);
        exact.push(Bytes::from_static(b"abcd")).expect("push");
        assert!(matches!(exact.finish().expect("finish"), RequestBody::File { len: 4, .. }));
        let mut below = BodyCollector::new(4, 0, 8192);
        below.push(Bytes::from_static(b"ab")).expect("push");
        below.push(Bytes::from_static(b"c")).expect("push");
        assert!(matches!(below.finish().expect("finish"), RequestBody::Memory(b) if &b[..] == b"abc"));
    }

    #[test]
    fn a_spooled_body_is_written_in_chunks_of_bufsize() {
        use std::io::{Read, Seek};
        let mut body = BodyCollector::new(4, 0, 16);
        let written = |body: &BodyCollector| body.file.as_ref().map(|f| f.get_ref().metadata().expect("stat").len());
        body.push(Bytes::from_static(b"abc")).expect("push");
        assert_eq!(written(&body), None, "in memory");
        body.push(Bytes::from_static(b"def")).expect("push");
        body.push(Bytes::from_static(b"ghijk")).expect("push");
        assert_eq!(written(&body), Some(0), "11 bytes wait in the 16-byte buffer");
        body.push(Bytes::from_static(b"lmnopqrstu")).expect("push");
        assert_eq!(written(&body), Some(11), "the buffer is written when the next bytes do not fit");
        let RequestBody::File { mut file, len } = body.finish().expect("finish") else { panic!("spooled") };
        assert_eq!(len, 21);
        let mut all = String::new();
        file.rewind().expect("rewind");
        file.read_to_string(&mut all).expect("read");
        assert_eq!(all, "abcdefghijklmnopqrstu");
    }

    #[test]
    fn limit_post_refuses() {
        let mut body = BodyCollector::new(1024, 4, 8192);
        assert!(body.check_declared(Some(5)).is_err());
        assert!(matches!(body.push(Bytes::from_static(b"12345")), Err(BodyReadError::TooLarge { limit: 4 })));
    }
}
