//! Following HTTP/1.1 message boundaries in the raw bytes of a connection, to see what hyper resolves silently.
//!
//! A request that carries both `Content-Length` and `Transfer-Encoding` is the classic request-smuggling
//! vector: a front end that frames it by the length and a back end that frames it by the chunks disagree on
//! where the next request starts. RFC 9112 §6.1 lets a server either reject it or let `Transfer-Encoding` win
//! and close the connection after the response. hyper does the latter *while parsing the head*, dropping the
//! `Content-Length`, so liege's policy ([`crate::http_policy`]) never sees the conflict. liege answers 400
//! instead (its README promises it, and a refusal tells the operator that something in front is framing
//! requests differently, where a silent close hides it).
//!
//! [`FramingWatch`] sees every byte the HTTP parser will read, before it reads it. It finds each request head,
//! reports which framing headers the head really carried ([`HeadFacts`]), and skips the body exactly as the
//! parser will (`Content-Length` bytes, or chunks up to the last chunk and its trailers), so the n-th head it
//! reports is the n-th request the parser hands over, pipelined requests included. Where it cannot follow the
//! stream the way the parser will (an ambiguous head, after which the parser closes the connection anyway; a
//! malformed length or chunk, which the parser refuses; `CONNECT`) it stops and reports nothing more, and the
//! caller falls back to the parser's own handling. The fast path costs one `memchr` pass over each head.
//!
//! Header lines are recognised as httparse (hyper's parser) splits them: lines end with LF or CRLF, the name
//! runs to the first `:` with no whitespace before it, empty lines before a request line are skipped.

use crate::http_policy::trim_ows;

/// Which framing headers one request head carried, as sent (before any parser resolved them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadFacts {
    pub content_length: bool,
    pub transfer_encoding: bool,
}

impl HeadFacts {
    /// Both `Content-Length` and `Transfer-Encoding`: the framing two parsers can disagree on.
    pub fn is_ambiguous(self) -> bool {
        self.content_length && self.transfer_encoding
    }
}

/// A head or a chunk-size line longer than this is refused by the parser anyway (liege's `buffer-size` caps
/// heads far below it); the watch stops instead of buffering without bound.
const MAX_LINE_BUFFER: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between requests or inside a head (its start is in `partial`).
    Head,
    /// Inside a `Content-Length` body.
    Body { remaining: u64 },
    /// Reading a chunk-size line (into `partial`).
    ChunkSize,
    /// Inside chunk data.
    ChunkData { remaining: u64 },
    /// The CRLF after chunk data (`seen_cr` once its CR went by).
    ChunkEnd { seen_cr: bool },
    /// Trailer lines after the last chunk, up to an empty line (into `partial`).
    Trailers,
    /// Can't follow the stream any further; reports nothing more.
    Stopped,
}

/// Follows request boundaries in a connection's incoming bytes. Feed it every byte, in order.
#[derive(Debug)]
pub struct FramingWatch {
    state: State,
    /// A head, chunk-size line or trailer section that straddles two reads.
    partial: Vec<u8>,
}

impl Default for FramingWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl FramingWatch {
    pub fn new() -> Self {
        Self { state: State::Head, partial: Vec::new() }
    }

    /// False once the watch gave up (see the module docs); it then reports no more heads.
    pub fn is_following(&self) -> bool {
        self.state != State::Stopped
    }

    /// Consumes `bytes`, calling `head` with the facts of each request head that ends inside them.
    pub fn feed(&mut self, mut bytes: &[u8], head: &mut impl FnMut(HeadFacts)) {
        while !bytes.is_empty() {
            bytes = match self.state {
                State::Stopped => return,
                State::Head => self.feed_head(bytes, head),
                State::Body { remaining } => {
                    let take = remaining.min(bytes.len() as u64);
                    self.state =
                        if take == remaining { State::Head } else { State::Body { remaining: remaining - take } };
                    &bytes[take as usize..]
                }
                State::ChunkSize => self.feed_chunk_size(bytes),
                State::ChunkData { remaining } => {
                    let take = remaining.min(bytes.len() as u64);
                    self.state = if take == remaining {
                        State::ChunkEnd { seen_cr: false }
                    } else {
                        State::ChunkData { remaining: remaining - take }
                    };
                    &bytes[take as usize..]
                }
                State::ChunkEnd { seen_cr } => match (seen_cr, bytes[0]) {
                    (false, b'\r') => {
                        self.state = State::ChunkEnd { seen_cr: true };
                        &bytes[1..]
                    }
                    (true, b'\n') => {
                        self.state = State::ChunkSize;
                        &bytes[1..]
                    }
                    // The parser refuses chunk data not followed by CRLF.
                    _ => return self.stop(),
                },
                State::Trailers => self.feed_trailers(bytes),
            }
        }
    }

    fn stop(&mut self) {
        self.state = State::Stopped;
        self.partial = Vec::new();
    }

    fn feed_head<'a>(&mut self, bytes: &'a [u8], head: &mut impl FnMut(HeadFacts)) -> &'a [u8] {
        let mut bytes = bytes;
        if self.partial.is_empty() {
            // Empty lines before a request line are skipped, as httparse does.
            let start = bytes.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(bytes.len());
            bytes = &bytes[start..];
            if bytes.is_empty() {
                return bytes;
            }
            // Fast path: the whole head is in this read, examined in place.
            if let Some(end) = head_end(bytes, 0) {
                self.finish_head(&bytes[..end], head);
                return &bytes[end..];
            }
        }
        // The head straddles reads: look again at what is kept plus the new bytes (the end may span both).
        let rescan_from = self.partial.len().saturating_sub(3);
        self.partial.extend_from_slice(bytes);
        match head_end(&self.partial, rescan_from) {
            Some(end) => {
                let used = end - (self.partial.len() - bytes.len());
                let whole = std::mem::take(&mut self.partial);
                self.finish_head(&whole[..end], head);
                &bytes[used..]
            }
            None => {
                if self.partial.len() > MAX_LINE_BUFFER {
                    self.stop();
                }
                &[]
            }
        }
    }

    /// Reports a complete head and sets up what follows it.
    fn finish_head(&mut self, head_bytes: &[u8], head: &mut impl FnMut(HeadFacts)) {
        let Some(parsed) = scan_head(head_bytes) else {
            // Not a head the parser accepts (it answers 400 and closes): nothing to follow.
            return self.stop();
        };
        head(parsed.facts);
        self.state = if parsed.facts.is_ambiguous() || parsed.connect {
            // The parser closes the connection after an ambiguous request; CONNECT leaves HTTP.
            State::Stopped
        } else if parsed.facts.transfer_encoding {
            if parsed.chunked {
                State::ChunkSize
            } else {
                State::Stopped
            }
        } else {
            match parsed.content_length {
                Some(0) | None => State::Head,
                Some(length) => State::Body { remaining: length },
            }
        };
    }

    fn feed_chunk_size<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        let Some(newline) = memchr::memchr(b'\n', bytes) else {
            self.partial.extend_from_slice(bytes);
            if self.partial.len() > MAX_LINE_BUFFER {
                self.stop();
            }
            return &[];
        };
        self.partial.extend_from_slice(&bytes[..=newline]);
        let line = std::mem::take(&mut self.partial);
        match chunk_size(&line) {
            Some(0) => self.state = State::Trailers,
            Some(size) => self.state = State::ChunkData { remaining: size },
            None => self.stop(),
        }
        &bytes[newline + 1..]
    }

    fn feed_trailers<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        // The trailer section ends with an empty line; with no trailers that is the very first line.
        let rescan_from = self.partial.len().saturating_sub(3);
        let kept = self.partial.len();
        self.partial.extend_from_slice(bytes);
        let end = match self.partial.as_slice() {
            [b'\n', ..] => Some(1),
            [b'\r', b'\n', ..] => Some(2),
            [b'\r'] | [] => None,
            section => head_end(section, rescan_from),
        };
        match end {
            Some(end) => {
                self.partial.clear();
                self.state = State::Head;
                &bytes[end - kept..]
            }
            None => {
                if self.partial.len() > MAX_LINE_BUFFER {
                    self.stop();
                }
                &[]
            }
        }
    }
}

/// Where a head ends (just past its empty line), searching for line ends from `from`.
fn head_end(bytes: &[u8], from: usize) -> Option<usize> {
    for newline in memchr::memchr_iter(b'\n', &bytes[from..]).map(|i| i + from) {
        match bytes.get(newline + 1) {
            Some(b'\n') => return Some(newline + 2),
            Some(b'\r') if bytes.get(newline + 2) == Some(&b'\n') => return Some(newline + 3),
            _ => {}
        }
    }
    None
}

struct ParsedHead {
    facts: HeadFacts,
    content_length: Option<u64>,
    chunked: bool,
    connect: bool,
}

/// The framing headers of a complete head; `None` where the parser would refuse the head's framing.
fn scan_head(head: &[u8]) -> Option<ParsedHead> {
    let mut lines = head.split(|&b| b == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let request_line = lines.next()?;
    let mut parsed = ParsedHead {
        facts: HeadFacts::default(),
        content_length: None,
        chunked: false,
        connect: request_line.starts_with(b"CONNECT "),
    };
    for line in lines.filter(|line| !line.is_empty()) {
        let Some(colon) = memchr::memchr(b':', line) else { continue };
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            parsed.facts.content_length = true;
            let length = digits(value)?;
            if parsed.content_length.is_some_and(|previous| previous != length) {
                return None;
            }
            parsed.content_length = Some(length);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            parsed.facts.transfer_encoding = true;
            // As hyper: the last coding of the last Transfer-Encoding line decides.
            let last = value.rsplit(|&b| b == b',').next().map(trim_ows).unwrap_or_default();
            parsed.chunked = last.eq_ignore_ascii_case(b"chunked");
        }
    }
    Some(parsed)
}

/// A chunk-size line (`hex[;extensions]` and its line end) as a size.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let size = line.split(|&b| b == b';').next().map(trim_ows)?;
    if size.is_empty() || size.len() > 16 {
        return None;
    }
    size.iter().try_fold(0u64, |total, &b| Some(total * 16 + u64::from((b as char).to_digit(16)?)))
}

fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |total, &b| total.checked_mul(10)?.checked_add(u64::from(b - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heads(stream: &[u8]) -> Vec<HeadFacts> {
        let mut watch = FramingWatch::new();
        let mut seen = Vec::new();
        watch.feed(stream, &mut |facts| seen.push(facts));
        seen
    }

    /// Every split of the stream into two reads, and a byte at a time, reports the same heads.
    fn heads_at_every_boundary(stream: &[u8]) -> Vec<HeadFacts> {
        let whole = heads(stream);
        for split in 0..=stream.len() {
            let mut watch = FramingWatch::new();
            let mut seen = Vec::new();
            watch.feed(&stream[..split], &mut |facts| seen.push(facts));
            watch.feed(&stream[split..], &mut |facts| seen.push(facts));
            assert_eq!(seen, whole, "split at {split}");
        }
        let mut watch = FramingWatch::new();
        let mut seen = Vec::new();
        for byte in stream {
            watch.feed(std::slice::from_ref(byte), &mut |facts| seen.push(facts));
        }
        assert_eq!(seen, whole, "byte at a time");
        whole
    }

    const PLAIN: HeadFacts = HeadFacts { content_length: false, transfer_encoding: false };
    const LENGTH: HeadFacts = HeadFacts { content_length: true, transfer_encoding: false };
    const CHUNKED: HeadFacts = HeadFacts { content_length: false, transfer_encoding: true };
    const BOTH: HeadFacts = HeadFacts { content_length: true, transfer_encoding: true };

    #[test]
    fn pipelined_requests_are_reported_in_order() {
        let stream = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(heads_at_every_boundary(stream), [PLAIN, PLAIN]);
    }

    #[test]
    fn a_content_length_body_is_skipped_even_when_it_looks_like_a_head() {
        let body = b"GET /fake HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut stream = format!("POST / HTTP/1.1\r\nHost: a\r\ncontent-LENGTH: {}\r\n\r\n", body.len()).into_bytes();
        stream.extend_from_slice(body);
        stream.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(heads_at_every_boundary(&stream), [LENGTH, PLAIN]);
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers_are_skipped() {
        let stream = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
            5;name=x\r\nhello\r\n10\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n0\r\nX-Trailer: 1\r\n\r\n\
            POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
            GET / HTTP/1.1\r\n\r\n";
        assert_eq!(heads_at_every_boundary(stream), [CHUNKED, CHUNKED, PLAIN]);
    }

    #[test]
    fn content_length_with_transfer_encoding_is_reported_and_nothing_after_it() {
        for stream in [
            &b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(heads_at_every_boundary(stream), [BOTH]);
        }
    }

    #[test]
    fn the_ambiguous_request_is_found_behind_innocent_ones() {
        let stream = b"GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
            POST /3 HTTP/1.1\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(heads_at_every_boundary(stream), [PLAIN, LENGTH, BOTH]);
    }

    #[test]
    fn bare_lf_line_ends_and_leading_empty_lines_are_followed() {
        let stream =
            b"\r\n\r\nGET / HTTP/1.1\nHost: a\n\nPOST / HTTP/1.1\nContent-Length: 2\n\nhiGET / HTTP/1.1\r\n\r\n";
        assert_eq!(heads_at_every_boundary(stream), [PLAIN, LENGTH, PLAIN]);
    }

    #[test]
    fn malformed_framing_stops_the_watch() {
        for stream in [
            &b"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\nGET / HTTP/1.1\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabGET / HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        ] {
            let mut watch = FramingWatch::new();
            let mut count = 0;
            watch.feed(stream, &mut |_| count += 1);
            assert!(!watch.is_following(), "{}", String::from_utf8_lossy(stream));
            assert!(count <= 1);
        }
    }

    #[test]
    fn an_endless_head_stops_the_watch_instead_of_growing() {
        let mut watch = FramingWatch::new();
        let line = vec![b'a'; 64 * 1024];
        watch.feed(b"GET / HTTP/1.1\r\nX: ", &mut |_| {});
        for _ in 0..20 {
            watch.feed(&line, &mut |_| panic!("no head ends here"));
        }
        assert!(!watch.is_following());
        assert!(watch.partial.capacity() == 0);
    }

    #[test]
    fn chunk_sizes_parse_as_hex_with_extensions() {
        assert_eq!(chunk_size(b"1a\r\n"), Some(26));
        assert_eq!(chunk_size(b"A;ext=1\r\n"), Some(10));
        assert_eq!(chunk_size(b"0\n"), Some(0));
        assert_eq!(chunk_size(b"\r\n"), None);
        assert_eq!(chunk_size(b"g\r\n"), None);
        assert_eq!(chunk_size(b"11111111111111111\r\n"), None);
    }
}
