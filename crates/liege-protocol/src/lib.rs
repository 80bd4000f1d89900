//! Sans-I/O protocol code for liege: byte slices in, borrowed results out.
//!
//! Nothing here owns a socket, a buffer or a timer. The worker reads into its own buffer and asks:
//! - [`uwsgi::check`]: is a whole uwsgi packet there yet? (`Partial { needed }` is not an error), then
//!   [`uwsgi::parse`]: the vars, validated once, borrowed from the buffer, iterated without allocating;
//! - [`http_policy::check_request`]: does a head that hyper parsed break liege's rules (smuggling-prone
//!   framing, duplicate Host, size limits)? And [`http_policy::header_name_to_environ_key`] /
//!   [`http_policy::percent_decode`] for building the WSGI environ;
//! - [`http_framing::FramingWatch`]: which framing headers did each request head on a connection really carry
//!   (hyper resolves `Content-Length` + `Transfer-Encoding` before liege's policy could see it)?
//!
//! Keeping I/O out (as httparse and h11 do) is what makes this code testable at every byte boundary and
//! fuzzable with plain random input, and lets the same codec serve blocking, async or test callers.

#![forbid(unsafe_code)]

pub mod http_framing;
pub mod http_policy;
pub mod uwsgi;
