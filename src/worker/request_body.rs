//! Receiving a request body completely before the app runs: in memory up to `post-buffering` bytes, in an
//! unlinked temporary file beyond, refused past `limit-post`.
//!
//! Why not stream it into the app: the app runs inline on the worker's event loop, so a `wsgi.input.read()`
//! waiting on a slow client would freeze every connection of the worker. Receiving first also means a slow
//! upload costs a socket, never a busy worker (nginx buffers for the same reason).

use std::io::Write;

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
    single: Option<Bytes>,
    memory: BytesMut,
    file: Option<std::fs::File>,
    total: u64,
}

impl BodyCollector {
    pub fn new(memory_limit: usize, limit_post: u64) -> Self {
        Self { memory_limit, limit_post, single: None, memory: BytesMut::new(), file: None, total: 0 }
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
            if data.len() <= self.memory_limit {
                self.single = Some(data);
                return Ok(());
            }
        } else if let Some(single) = self.single.take() {
            self.memory.extend_from_slice(&single);
        }
        if self.memory.len() + data.len() > self.memory_limit {
            let mut file = tempfile::tempfile()?;
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

    pub fn finish(self) -> RequestBody {
        if let Some(file) = self.file {
            return RequestBody::File { file, len: self.total };
        }
        match self.single {
            Some(data) => RequestBody::Memory(data),
            None if self.memory.is_empty() => RequestBody::Empty,
            None => RequestBody::Memory(self.memory.freeze()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_stay_in_memory_and_large_ones_spool() {
        let mut small = BodyCollector::new(8, 0);
        small.push(Bytes::from_static(b"abc")).expect("push");
        small.push(Bytes::from_static(b"de")).expect("push");
        assert!(matches!(small.finish(), RequestBody::Memory(b) if &b[..] == b"abcde"));

        let mut large = BodyCollector::new(4, 0);
        large.push(Bytes::from_static(b"abc")).expect("push");
        large.push(Bytes::from_static(b"defg")).expect("push");
        assert!(matches!(large.finish(), RequestBody::File { len: 7, .. }));
    }

    #[test]
    fn limit_post_refuses() {
        let mut body = BodyCollector::new(1024, 4);
        assert!(body.check_declared(Some(5)).is_err());
        assert!(matches!(body.push(Bytes::from_static(b"12345")), Err(BodyReadError::TooLarge { limit: 4 })));
    }
}
