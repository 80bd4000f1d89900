//! The uwsgi binary protocol: what nginx's `uwsgi_pass` (and Apache's `mod_proxy_uwsgi`) send.
//!
//! A request is one *packet* followed by the request body on the same stream:
//!
//! ```text
//! u8 modifier1 | u16 LE datasize | u8 modifier2        4-byte header
//! { u16 LE keylen | key | u16 LE vallen | value } *    `datasize` bytes of vars (CGI-style environ)
//! <CONTENT_LENGTH bytes of body>                       not part of the packet
//! ```
//!
//! The response is raw HTTP (`HTTP/1.1 200 OK\r\n…`) written back on the same connection, which is then
//! closed. There is no framing on the way back and no keep-alive.
//!
//! Use [`check`] on whatever has been read so far until it says [`Status::Complete`], then [`parse`] exactly
//! `packet_len` bytes. Both are pure functions over byte slices; nothing here reads a socket.
//!
//! The fuzz harness of this module is the deterministic random-input test at the bottom of this file
//! (`random_bytes_never_panic` and friends): cargo-fuzz needs a nightly toolchain, which liege does not use.

use std::fmt;

/// Size of the fixed packet header: `modifier1`, `datasize` (u16 LE), `modifier2`.
pub const HEADER_LEN: usize = 4;

/// The only `modifier1` liege serves: a WSGI request (uWSGI's "Standard WSGI request"). Other values select
/// other uWSGI subsystems (5 PSGI, 10 management, 17 spooler, 22 *raw code evaluation*, …) that liege does not
/// have and must never emulate.
pub const MODIFIER1_WSGI: u8 = 0;

/// Largest `datasize` the header can express.
pub const MAX_DATASIZE: usize = u16::MAX as usize;

/// What [`check`] found in the bytes read so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The first `packet_len` bytes (`4 + datasize`) are a whole packet; what follows is the body.
    Complete { packet_len: usize },
    /// At least `needed` more bytes must be read before the packet is whole (exact once the header is in).
    Partial { needed: usize },
}

/// Why a packet was refused. Incomplete input is never an error: it is [`Status::Partial`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UwsgiError {
    /// `datasize` exceeds the configured `buffer-size` (uWSGI: "invalid request block size").
    #[error("uwsgi packet vars of {datasize} bytes exceed buffer-size {max}")]
    TooLarge { datasize: usize, max: usize },
    /// `modifier1` is not 0 (WSGI). Refused as early as the header, before any var is buffered.
    #[error("unsupported uwsgi modifier1 {modifier1} (only 0, WSGI, is served)")]
    UnsupportedModifier { modifier1: u8, modifier2: u8 },
    /// The slice given to [`parse`] is not exactly one packet (`4 + datasize` bytes, or at least the
    /// 4-byte header): pass it the `packet_len` that [`check`] reported.
    #[error("uwsgi packet should be {expected} bytes long, got {actual}")]
    LengthMismatch { expected: usize, actual: usize },
    /// The vars block does not decode; `offset` is from the start of the packet (header included).
    #[error("malformed uwsgi vars at byte {offset}: {kind}")]
    Malformed { offset: usize, kind: Malformed },
    /// `CONTENT_LENGTH` is not a plain decimal number, overflows u64, or is repeated with different values.
    #[error("invalid CONTENT_LENGTH in uwsgi vars")]
    InvalidContentLength,
    /// [`encode_request`] was asked for something the wire format cannot carry.
    #[error("cannot encode uwsgi packet: {0}")]
    Unencodable(&'static str),
}

impl UwsgiError {
    /// The HTTP status to answer with, should the caller answer rather than just close (uWSGI closes).
    ///
    /// Oversized vars are oversized request headers in disguise, hence 431.
    pub fn status(&self) -> u16 {
        match self {
            UwsgiError::TooLarge { .. } => 431,
            UwsgiError::UnsupportedModifier { .. } => 501,
            _ => 400,
        }
    }
}

/// The ways a vars block can be malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// A key length of 0. uWSGI refuses these too ("uwsgi key cannot be null").
    EmptyKey,
    /// Fewer than 2 bytes left where a key or value length was expected (trailing garbage).
    TruncatedLength,
    /// A key length that runs past the end of the vars.
    KeyOverrun,
    /// A value length that runs past the end of the vars.
    ValueOverrun,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Malformed::EmptyKey => "zero-length key",
            Malformed::TruncatedLength => "truncated length field",
            Malformed::KeyOverrun => "key runs past the end of the packet",
            Malformed::ValueOverrun => "value runs past the end of the packet",
        })
    }
}

#[inline]
fn read_u16_le(buf: &[u8], at: usize) -> Option<usize> {
    match buf.get(at..at + 2) {
        Some(&[lo, hi]) => Some(u16::from_le_bytes([lo, hi]) as usize),
        _ => None,
    }
}

/// Is a whole packet buffered? Looks only at the 4-byte header, so it is O(1) and can refuse an oversized or
/// non-WSGI packet before its vars are read.
///
/// `max_datasize` is uWSGI's `buffer-size` option: uWSGI compares it with `datasize` (the vars, header
/// excluded), and so does this. Bytes after the packet (the body) are ignored.
pub fn check(buf: &[u8], max_datasize: usize) -> Result<Status, UwsgiError> {
    let (modifier1, datasize, modifier2) = match *buf {
        [m1, lo, hi, m2, ..] => (m1, u16::from_le_bytes([lo, hi]) as usize, m2),
        _ => return Ok(Status::Partial { needed: HEADER_LEN - buf.len() }),
    };
    if modifier1 != MODIFIER1_WSGI {
        return Err(UwsgiError::UnsupportedModifier { modifier1, modifier2 });
    }
    if datasize > max_datasize {
        return Err(UwsgiError::TooLarge { datasize, max: max_datasize });
    }
    let packet_len = HEADER_LEN + datasize;
    if buf.len() >= packet_len {
        Ok(Status::Complete { packet_len })
    } else {
        Ok(Status::Partial { needed: packet_len - buf.len() })
    }
}

/// A parsed uwsgi request packet. Everything borrows from the packet bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub modifier1: u8,
    /// Passed through unchecked: uWSGI ignores it for WSGI requests and nginx always sends 0 unless
    /// `uwsgi_modifier2` says otherwise.
    pub modifier2: u8,
    pub vars: Vars<'a>,
}

/// The vars of a packet, validated by [`parse`] and decoded lazily: iterating allocates nothing and cannot
/// fail, so building the Python environ is a single pass over the packet. Order and duplicates are kept as
/// sent (nginx sends `uwsgi_param`s first, then `HTTP_*` headers); the caller decides what a duplicate means.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Vars<'a> {
    data: &'a [u8],
    count: usize,
}

impl<'a> Vars<'a> {
    /// Number of vars (duplicates included).
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// `(key, value)` pairs in wire order.
    pub fn iter(&self) -> VarsIter<'a> {
        VarsIter { rest: self.data, remaining: self.count }
    }

    /// The raw vars block (without the 4-byte header), e.g. to forward it unchanged.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.data
    }
}

impl fmt::Debug for Vars<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v))))
            .finish()
    }
}

impl<'a> IntoIterator for Vars<'a> {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = VarsIter<'a>;
    fn into_iter(self) -> VarsIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &Vars<'a> {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = VarsIter<'a>;
    fn into_iter(self) -> VarsIter<'a> {
        self.iter()
    }
}

/// Iterator over validated vars. Created by [`Vars::iter`].
#[derive(Debug, Clone)]
pub struct VarsIter<'a> {
    rest: &'a [u8],
    remaining: usize,
}

impl<'a> VarsIter<'a> {
    /// Splits one var off `rest`. `None` only on malformed input, which [`parse`] has already excluded.
    #[inline]
    fn next_var(rest: &'a [u8]) -> Option<(&'a [u8], &'a [u8], &'a [u8])> {
        let klen = read_u16_le(rest, 0)?;
        let key = rest.get(2..2 + klen)?;
        let vlen = read_u16_le(rest, 2 + klen)?;
        let vstart = 4 + klen;
        let value = rest.get(vstart..vstart + vlen)?;
        Some((key, value, rest.get(vstart + vlen..)?))
    }
}

impl<'a> Iterator for VarsIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        match Self::next_var(self.rest) {
            Some((key, value, rest)) => {
                self.rest = rest;
                self.remaining -= 1;
                Some((key, value))
            }
            None => {
                // Unreachable after `parse`; end quietly rather than panic.
                self.remaining = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for VarsIter<'_> {}
impl std::iter::FusedIterator for VarsIter<'_> {}

/// Parses one whole packet: exactly the `packet_len` bytes [`check`] reported, header included.
///
/// Validates every var up front so that [`Vars`] iteration cannot fail. Refuses, as uWSGI does, zero-length
/// keys and any length that runs past the end; also refuses a non-zero `modifier1` (see [`MODIFIER1_WSGI`]).
/// Empty values are fine (nginx sends `CONTENT_TYPE` and `CONTENT_LENGTH` empty on a GET).
pub fn parse(packet: &[u8]) -> Result<Request<'_>, UwsgiError> {
    let (modifier1, datasize, modifier2, data) = match *packet {
        [m1, lo, hi, m2, ref data @ ..] => (m1, u16::from_le_bytes([lo, hi]) as usize, m2, data),
        _ => return Err(UwsgiError::LengthMismatch { expected: HEADER_LEN, actual: packet.len() }),
    };
    if modifier1 != MODIFIER1_WSGI {
        return Err(UwsgiError::UnsupportedModifier { modifier1, modifier2 });
    }
    if data.len() != datasize {
        return Err(UwsgiError::LengthMismatch { expected: HEADER_LEN + datasize, actual: packet.len() });
    }
    let count = validate_vars(data)?;
    Ok(Request { modifier1, modifier2, vars: Vars { data, count } })
}

/// Walks the vars block once, returning the var count or the first defect.
fn validate_vars(data: &[u8]) -> Result<usize, UwsgiError> {
    let end = data.len();
    let mut pos = 0usize;
    let mut count = 0usize;
    let malformed = |at: usize, kind| UwsgiError::Malformed { offset: HEADER_LEN + at, kind };
    while pos < end {
        let klen = read_u16_le(data, pos).ok_or_else(|| malformed(pos, Malformed::TruncatedLength))?;
        if klen == 0 {
            return Err(malformed(pos, Malformed::EmptyKey));
        }
        let key_end = pos + 2 + klen;
        if key_end > end {
            return Err(malformed(pos, Malformed::KeyOverrun));
        }
        let vlen = read_u16_le(data, key_end).ok_or_else(|| malformed(key_end, Malformed::TruncatedLength))?;
        let value_end = key_end + 2 + vlen;
        if value_end > end {
            return Err(malformed(key_end, Malformed::ValueOverrun));
        }
        pos = value_end;
        count += 1;
    }
    Ok(count)
}

impl<'a> Request<'a> {
    /// The first value of `key` (exact, case-sensitive match, as CGI var names are). A linear scan: fine for
    /// the few lookups a request needs; build a map if you need many.
    pub fn get(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.vars.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The body length: `CONTENT_LENGTH` as a decimal, 0 when absent or empty (a GET through nginx).
    ///
    /// Stricter than uWSGI, which reads leading digits and ignores the rest: a non-digit anywhere, an overflow,
    /// or repeated `CONTENT_LENGTH` vars that disagree are errors, since the body framing depends on it.
    pub fn content_length(&self) -> Result<u64, UwsgiError> {
        let mut found: Option<u64> = None;
        for (key, value) in self.vars.iter() {
            if key != b"CONTENT_LENGTH" {
                continue;
            }
            let n = parse_decimal(value).ok_or(UwsgiError::InvalidContentLength)?;
            match found {
                Some(prev) if prev != n => return Err(UwsgiError::InvalidContentLength),
                _ => found = Some(n),
            }
        }
        Ok(found.unwrap_or(0))
    }

    /// `wsgi.url_scheme`: `UWSGI_SCHEME` if it says `http`/`https` (old `uwsgi_params` send it), else
    /// `https` when `HTTPS` is `on`/`1` (what uWSGI checks), else `REQUEST_SCHEME` (current nginx
    /// `uwsgi_params`), else `http`. `X-Forwarded-Proto` is deliberately not consulted: any client can send it.
    pub fn url_scheme(&self) -> &'static str {
        let mut uwsgi_scheme = None;
        let mut https = false;
        let mut request_scheme = None;
        for (key, value) in self.vars.iter() {
            match key {
                b"UWSGI_SCHEME" => uwsgi_scheme = scheme_of(value).or(uwsgi_scheme),
                b"HTTPS" => https |= value.eq_ignore_ascii_case(b"on") || value == b"1",
                b"REQUEST_SCHEME" => request_scheme = scheme_of(value).or(request_scheme),
                _ => {}
            }
        }
        uwsgi_scheme.or(https.then_some("https")).or(request_scheme).unwrap_or("http")
    }

    /// The vars that belong in the WSGI environ: all of them minus [`is_magic_var`] ones.
    pub fn environ_vars(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.vars.iter().filter(|(k, _)| !is_magic_var(k))
    }
}

fn scheme_of(value: &[u8]) -> Option<&'static str> {
    if value.eq_ignore_ascii_case(b"https") {
        Some("https")
    } else if value.eq_ignore_ascii_case(b"http") {
        Some("http")
    } else {
        None
    }
}

/// Plain ASCII decimal (no sign, no whitespace); empty means 0. `None` on anything else or overflow.
fn parse_decimal(value: &[u8]) -> Option<u64> {
    value.iter().try_fold(0u64, |acc, &b| {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Is this a uWSGI "magic" var, which liege drops from the environ and never acts on?
///
/// uWSGI's core (`core/protocol.c`) acts on `UWSGI_SCRIPT`, `UWSGI_MODULE`, `UWSGI_CALLABLE`, `UWSGI_FILE`
/// (load an app named by the request), `UWSGI_APPID` (switch app), `UWSGI_PYHOME`/`UWSGI_HOME` (virtualenv),
/// `UWSGI_CHDIR`, `UWSGI_SETENV` (`setenv(3)` in the worker!), `UWSGI_POSTFILE` (read the body from a local
/// path), `UWSGI_TOUCH_RELOAD`, `UWSGI_CACHE_GET` and `UWSGI_SCHEME`; plugins read more. Rather than track
/// that list, every var starting with `UWSGI_` (case-sensitive, as uWSGI's `memcmp`) is magic: liege loads
/// code only from its config, never because a request asked. Such vars can only come from the front-end's
/// own config (`uwsgi_param`), not from clients (nginx prefixes client headers with `HTTP_`), so dropping them
/// loses nothing an app should see. `UWSGI_SCHEME` is honoured for `wsgi.url_scheme` via
/// [`Request::url_scheme`] before being dropped.
#[inline]
pub fn is_magic_var(key: &[u8]) -> bool {
    key.starts_with(b"UWSGI_")
}

/// Appends one packet (header + vars, no body) to `out`. Used by tests and by anything acting as a uwsgi
/// client. On error `out` is left as it was.
///
/// Errors when a key is empty (the parser would refuse it), a key or value exceeds 65535 bytes, or the vars
/// exceed the 65535 bytes `datasize` can express.
pub fn encode_request(
    modifier1: u8,
    modifier2: u8,
    vars: &[(&[u8], &[u8])],
    out: &mut Vec<u8>,
) -> Result<(), UwsgiError> {
    let mut datasize = 0usize;
    for (key, value) in vars {
        if key.is_empty() {
            return Err(UwsgiError::Unencodable("empty key"));
        }
        if key.len() > MAX_DATASIZE || value.len() > MAX_DATASIZE {
            return Err(UwsgiError::Unencodable("key or value longer than 65535 bytes"));
        }
        datasize += 4 + key.len() + value.len();
    }
    let Ok(size16) = u16::try_from(datasize) else {
        return Err(UwsgiError::Unencodable("vars longer than 65535 bytes"));
    };
    out.reserve(HEADER_LEN + datasize);
    let [lo, hi] = size16.to_le_bytes();
    out.extend_from_slice(&[modifier1, lo, hi, modifier2]);
    for (key, value) in vars {
        // Lengths were checked above, so these casts are lossless.
        out.extend_from_slice(&(key.len() as u16).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        out.extend_from_slice(value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What nginx sends for `GET /x?y=1` with the stock `uwsgi_params` (nginx/conf/uwsgi_params) followed by
    /// the request headers as `HTTP_*`. `HTTPS` is `if_not_empty` there, so nginx omits it on plain HTTP; it
    /// is included here empty to cover an empty value in the middle of the packet.
    fn nginx_get_vars() -> Vec<(&'static [u8], &'static [u8])> {
        vec![
            (b"QUERY_STRING", b"y=1"),
            (b"REQUEST_METHOD", b"GET"),
            (b"CONTENT_TYPE", b""),
            (b"CONTENT_LENGTH", b""),
            (b"REQUEST_URI", b"/x?y=1"),
            (b"PATH_INFO", b"/x"),
            (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
            (b"REQUEST_SCHEME", b"http"),
            (b"HTTPS", b""),
            (b"REMOTE_ADDR", b"127.0.0.1"),
            (b"REMOTE_PORT", b"51234"),
            (b"SERVER_PORT", b"80"),
            (b"SERVER_NAME", b"localhost"),
            (b"HTTP_HOST", b"localhost"),
            (b"HTTP_USER_AGENT", b"curl/8.5.0"),
            (b"HTTP_ACCEPT", b"*/*"),
        ]
    }

    fn encode(vars: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_request(0, 0, vars, &mut out).expect("encodable");
        out
    }

    /// Builds a packet from raw vars bytes, with a correct header.
    fn packet_with_vars(vars: &[u8]) -> Vec<u8> {
        let mut p = vec![0];
        p.extend_from_slice(&(vars.len() as u16).to_le_bytes());
        p.push(0);
        p.extend_from_slice(vars);
        p
    }

    #[test]
    fn nginx_packet_round_trip() {
        let vars = nginx_get_vars();
        let packet = encode(&vars);
        assert_eq!(check(&packet, 4096), Ok(Status::Complete { packet_len: packet.len() }));
        let req = parse(&packet).expect("valid");
        assert_eq!(req.modifier1, 0);
        assert_eq!(req.modifier2, 0);
        assert_eq!(req.vars.len(), vars.len());
        assert_eq!(req.vars.iter().collect::<Vec<_>>(), vars);
        assert_eq!(req.get(b"PATH_INFO"), Some(&b"/x"[..]));
        assert_eq!(req.get(b"QUERY_STRING"), Some(&b"y=1"[..]));
        assert_eq!(req.get(b"HTTPS"), Some(&b""[..]));
        assert_eq!(req.get(b"NOPE"), None);
        assert_eq!(req.content_length(), Ok(0));
        assert_eq!(req.url_scheme(), "http");
    }

    #[test]
    fn nginx_packet_bytes_exact() {
        // Hand-assembled from the wire format, to catch an encoder and parser that agree on a wrong layout.
        let packet: &[u8] = b"\x00\x24\x00\x00\
            \x0e\x00REQUEST_METHOD\x03\x00GET\
            \x09\x00PATH_INFO\x02\x00/x";
        assert_eq!(packet.len(), 4 + 0x24);
        let req = parse(packet).expect("valid");
        let vars: Vec<_> = req.vars.iter().collect();
        assert_eq!(vars, vec![(&b"REQUEST_METHOD"[..], &b"GET"[..]), (&b"PATH_INFO"[..], &b"/x"[..])]);
        assert_eq!(encode(&vars), packet);
    }

    #[test]
    fn body_follows_packet() {
        let mut buf = encode(&[(b"CONTENT_LENGTH", b"5"), (b"REQUEST_METHOD", b"POST")]);
        let packet_len = buf.len();
        buf.extend_from_slice(b"hello");
        assert_eq!(check(&buf, 4096), Ok(Status::Complete { packet_len }));
        let req = parse(&buf[..packet_len]).expect("valid");
        assert_eq!(req.content_length(), Ok(5));
        assert_eq!(&buf[packet_len..], b"hello");
    }

    #[test]
    fn empty_packet_is_valid() {
        let packet = [0u8, 0, 0, 0];
        assert_eq!(check(&packet, 0), Ok(Status::Complete { packet_len: 4 }));
        let req = parse(&packet).expect("valid");
        assert!(req.vars.is_empty());
        assert_eq!(req.content_length(), Ok(0));
    }

    #[test]
    fn every_prefix_is_partial() {
        let mut packet = encode(&nginx_get_vars());
        // A body after the packet must not change anything.
        let packet_len = packet.len();
        for cut in 0..packet_len {
            match check(&packet[..cut], 65535) {
                Ok(Status::Partial { needed }) => {
                    assert!(needed > 0, "cut {cut}");
                    assert!(cut + needed <= packet_len, "cut {cut} overshoots");
                    if cut >= HEADER_LEN {
                        assert_eq!(cut + needed, packet_len, "exact once the header is in");
                    }
                }
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        packet.extend_from_slice(b"body");
        assert_eq!(check(&packet, 65535), Ok(Status::Complete { packet_len }));
    }

    #[test]
    fn too_large_refused_from_header_alone() {
        let header = [0u8, 0x01, 0x10, 0]; // datasize 4097
        assert_eq!(check(&header, 4096), Err(UwsgiError::TooLarge { datasize: 4097, max: 4096 }));
        assert_eq!(check(&header, 4097), Ok(Status::Partial { needed: 4097 }));
        assert_eq!(UwsgiError::TooLarge { datasize: 1, max: 0 }.status(), 431);
    }

    #[test]
    fn non_wsgi_modifier_refused() {
        // 22 is uWSGI's raw code evaluation: the one that must never be "supported".
        let mut packet = encode(&[(b"A", b"b")]);
        packet[0] = 22;
        packet[3] = 7;
        let err = UwsgiError::UnsupportedModifier { modifier1: 22, modifier2: 7 };
        assert_eq!(check(&packet[..4], 4096), Err(err.clone()));
        assert_eq!(parse(&packet), Err(err.clone()));
        assert_eq!(err.status(), 501);
        let mut out = Vec::new();
        encode_request(22, 7, &[(b"A", b"b")], &mut out).expect("encodable");
        assert_eq!(out, packet);
    }

    #[test]
    fn modifier2_passed_through() {
        let mut out = Vec::new();
        encode_request(0, 9, &[(b"A", b"b")], &mut out).expect("encodable");
        assert_eq!(parse(&out).map(|r| r.modifier2), Ok(9));
    }

    #[test]
    fn length_mismatch() {
        let packet = encode(&[(b"KEY", b"value")]);
        let short = &packet[..packet.len() - 1];
        assert_eq!(parse(short), Err(UwsgiError::LengthMismatch { expected: packet.len(), actual: packet.len() - 1 }));
        let mut long = packet.clone();
        long.push(b'x');
        assert!(matches!(parse(&long), Err(UwsgiError::LengthMismatch { .. })));
        assert_eq!(parse(&[0, 0, 0]), Err(UwsgiError::LengthMismatch { expected: 4, actual: 3 }));
        assert!(matches!(parse(&[]), Err(UwsgiError::LengthMismatch { .. })));
    }

    fn malformed_kind(vars: &[u8]) -> Malformed {
        match parse(&packet_with_vars(vars)) {
            Err(UwsgiError::Malformed { kind, .. }) => kind,
            other => panic!("{vars:?}: {other:?}"),
        }
    }

    #[test]
    fn malformed_empty_key() {
        assert_eq!(malformed_kind(b"\x00\x00\x01\x00a"), Malformed::EmptyKey);
        // Also after a valid var, with the offset pointing at it.
        let packet = packet_with_vars(b"\x01\x00A\x00\x00\x00\x00\x00\x00");
        let err = parse(&packet);
        assert_eq!(err, Err(UwsgiError::Malformed { offset: 4 + 5, kind: Malformed::EmptyKey }));
    }

    #[test]
    fn malformed_trailing_byte() {
        // One stray byte after a valid var: not even a length.
        assert_eq!(malformed_kind(b"\x01\x00A\x01\x00b\xff"), Malformed::TruncatedLength);
        assert_eq!(malformed_kind(b"\x05"), Malformed::TruncatedLength);
    }

    #[test]
    fn malformed_key_overrun() {
        assert_eq!(malformed_kind(b"\x05\x00AB"), Malformed::KeyOverrun);
        assert_eq!(malformed_kind(b"\xff\xffA"), Malformed::KeyOverrun);
        // Key longer than the whole packet.
        assert_eq!(malformed_kind(b"\x10\x00ABCD\x00\x00"), Malformed::KeyOverrun);
    }

    #[test]
    fn malformed_missing_value_length() {
        // Key fills the packet exactly: no room for its value length (uWSGI's strict `<` on the key end).
        assert_eq!(malformed_kind(b"\x03\x00ABC"), Malformed::TruncatedLength);
        assert_eq!(malformed_kind(b"\x03\x00ABC\x00"), Malformed::TruncatedLength);
    }

    #[test]
    fn malformed_value_overrun() {
        assert_eq!(malformed_kind(b"\x01\x00A\x05\x00abc"), Malformed::ValueOverrun);
        assert_eq!(malformed_kind(b"\x01\x00A\xff\xff"), Malformed::ValueOverrun);
    }

    #[test]
    fn empty_value_at_end_is_fine() {
        let packet = packet_with_vars(b"\x01\x00A\x00\x00");
        let req = parse(&packet).expect("valid");
        assert_eq!(req.get(b"A"), Some(&b""[..]));
    }

    #[test]
    fn duplicate_keys_kept_in_order() {
        let packet = encode(&[(b"HTTP_COOKIE", b"a=1"), (b"X", b"y"), (b"HTTP_COOKIE", b"b=2")]);
        let req = parse(&packet).expect("valid");
        let cookies: Vec<_> = req.vars.iter().filter(|(k, _)| *k == b"HTTP_COOKIE").map(|(_, v)| v).collect();
        assert_eq!(cookies, vec![&b"a=1"[..], &b"b=2"[..]]);
        assert_eq!(req.get(b"HTTP_COOKIE"), Some(&b"a=1"[..]));
    }

    #[test]
    fn binary_keys_and_values_survive() {
        let key: &[u8] = b"K\x00\xff";
        let value: &[u8] = b"\x00\x01\x02\xfe\xff";
        let req_bytes = encode(&[(key, value)]);
        assert_eq!(parse(&req_bytes).map(|r| r.get(key)), Ok(Some(value)));
    }

    #[test]
    fn content_length_rules() {
        let cl = |vars: &[(&[u8], &[u8])]| parse(&encode(vars)).expect("valid").content_length();
        assert_eq!(cl(&[]), Ok(0));
        assert_eq!(cl(&[(b"CONTENT_LENGTH", b"")]), Ok(0));
        assert_eq!(cl(&[(b"CONTENT_LENGTH", b"0")]), Ok(0));
        assert_eq!(cl(&[(b"CONTENT_LENGTH", b"1234")]), Ok(1234));
        assert_eq!(cl(&[(b"CONTENT_LENGTH", b"18446744073709551615")]), Ok(u64::MAX));
        assert_eq!(cl(&[(b"CONTENT_LENGTH", b"18446744073709551616")]), Err(UwsgiError::InvalidContentLength));
        for bad in [&b"12a"[..], b"-1", b"+1", b" 1", b"1 ", b"0x10", b"1,1"] {
            assert_eq!(cl(&[(b"CONTENT_LENGTH", bad)]), Err(UwsgiError::InvalidContentLength), "{bad:?}");
        }
        assert_eq!(cl(&[(b"CONTENT_LENGTH", b"3"), (b"CONTENT_LENGTH", b"3")]), Ok(3));
        assert_eq!(cl(&[(b"CONTENT_LENGTH", b"3"), (b"CONTENT_LENGTH", b"4")]), Err(UwsgiError::InvalidContentLength));
        // The key match is exact: a header-derived var is not the body length.
        assert_eq!(cl(&[(b"HTTP_CONTENT_LENGTH", b"9")]), Ok(0));
    }

    #[test]
    fn url_scheme_rules() {
        let scheme = |vars: &[(&[u8], &[u8])]| parse(&encode(vars)).expect("valid").url_scheme();
        assert_eq!(scheme(&[]), "http");
        assert_eq!(scheme(&[(b"HTTPS", b"on")]), "https");
        assert_eq!(scheme(&[(b"HTTPS", b"1")]), "https");
        assert_eq!(scheme(&[(b"HTTPS", b"")]), "http");
        assert_eq!(scheme(&[(b"HTTPS", b"off")]), "http");
        assert_eq!(scheme(&[(b"REQUEST_SCHEME", b"https")]), "https");
        assert_eq!(scheme(&[(b"UWSGI_SCHEME", b"https"), (b"HTTPS", b"")]), "https");
        assert_eq!(scheme(&[(b"UWSGI_SCHEME", b"http"), (b"HTTPS", b"on")]), "http");
        assert_eq!(scheme(&[(b"UWSGI_SCHEME", b"gopher"), (b"REQUEST_SCHEME", b"https")]), "https");
        assert_eq!(scheme(&[(b"HTTP_X_FORWARDED_PROTO", b"https")]), "http");
    }

    #[test]
    fn magic_vars() {
        for key in [
            &b"UWSGI_SCRIPT"[..],
            b"UWSGI_MODULE",
            b"UWSGI_CALLABLE",
            b"UWSGI_FILE",
            b"UWSGI_PYHOME",
            b"UWSGI_HOME",
            b"UWSGI_CHDIR",
            b"UWSGI_APPID",
            b"UWSGI_SETENV",
            b"UWSGI_POSTFILE",
            b"UWSGI_TOUCH_RELOAD",
            b"UWSGI_CACHE_GET",
            b"UWSGI_SCHEME",
            b"UWSGI_SOMETHING_NEW",
        ] {
            assert!(is_magic_var(key), "{key:?}");
        }
        for key in [&b"UWSGI"[..], b"uwsgi_script", b"HTTP_UWSGI_SCRIPT", b"PATH_INFO", b"", b"XUWSGI_A"] {
            assert!(!is_magic_var(key), "{key:?}");
        }
        let packet = encode(&[(b"UWSGI_SCRIPT", b"evil"), (b"PATH_INFO", b"/"), (b"UWSGI_SETENV", b"A=B")]);
        let req = parse(&packet).expect("valid");
        assert_eq!(req.environ_vars().collect::<Vec<_>>(), vec![(&b"PATH_INFO"[..], &b"/"[..])]);
    }

    #[test]
    fn encode_limits() {
        let mut out = vec![9u8];
        assert_eq!(encode_request(0, 0, &[(b"", b"x")], &mut out), Err(UwsgiError::Unencodable("empty key")));
        let big = vec![b'v'; 65536];
        assert!(encode_request(0, 0, &[(b"K", &big)], &mut out).is_err());
        // Each var fits, the sum does not.
        let half = vec![b'v'; 40000];
        assert!(encode_request(0, 0, &[(b"A", &half), (b"B", &half)], &mut out).is_err());
        assert_eq!(out, vec![9u8], "out untouched on error");
        // The largest encodable packet: datasize 65535.
        let max_value = vec![b'v'; 65535 - 4 - 1];
        out.clear();
        encode_request(0, 0, &[(b"K", &max_value)], &mut out).expect("fits exactly");
        assert_eq!(out.len(), 4 + 65535);
        assert_eq!(check(&out, MAX_DATASIZE), Ok(Status::Complete { packet_len: out.len() }));
        assert_eq!(parse(&out).map(|r| r.get(b"K").map(<[u8]>::len)), Ok(Some(max_value.len())));
    }

    #[test]
    fn encode_appends() {
        let mut out = b"prefix".to_vec();
        encode_request(0, 0, &[(b"A", b"b")], &mut out).expect("encodable");
        assert_eq!(&out[..6], b"prefix");
        assert!(parse(&out[6..]).is_ok());
    }

    #[test]
    fn debug_output_is_readable() {
        let packet = encode(&[(b"A", b"b")]);
        let req = parse(&packet).expect("valid");
        assert_eq!(format!("{:?}", req.vars), r#"{"A": "b"}"#);
    }

    /// Small deterministic PRNG (xorshift64*), so the random tests need no dependency and always replay.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// Feeds `buf` through the whole pipeline as a worker would, asserting the invariants that must hold
    /// for any input: no panic, `Complete` only within the buffer, a successful parse iterates exactly
    /// `len()` vars that re-encode to the same bytes.
    fn exercise(buf: &[u8], max: usize) {
        match check(buf, max) {
            Ok(Status::Complete { packet_len }) => {
                assert!(packet_len <= buf.len() && packet_len >= HEADER_LEN);
                if let Ok(req) = parse(&buf[..packet_len]) {
                    let vars: Vec<_> = req.vars.iter().collect();
                    assert_eq!(vars.len(), req.vars.len());
                    let mut again = Vec::new();
                    encode_request(req.modifier1, req.modifier2, &vars, &mut again).expect("re-encodable");
                    assert_eq!(again, &buf[..packet_len]);
                    let _ = req.content_length();
                    let _ = req.url_scheme();
                    let _ = req.get(b"PATH_INFO");
                    let _ = req.environ_vars().count();
                }
            }
            Ok(Status::Partial { needed }) => assert!(needed > 0),
            Err(_) => {}
        }
        // `parse` must also survive being handed arbitrary slices directly.
        if let Ok(req) = parse(buf) {
            assert_eq!(req.vars.iter().count(), req.vars.len());
        }
    }

    /// The fuzz harness: 200k random inputs through `check` + `parse`. Half are raw random bytes (with a
    /// valid-looking header half the time, so the vars walker is reached), half are mutations of a real
    /// nginx packet (byte flips, truncations, inserted length fields), which reach deeper states.
    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let seed_packet = encode(&nginx_get_vars());
        for i in 0..200_000 {
            let buf = if i % 2 == 0 {
                let len = rng.below(64);
                let mut buf = rng.bytes(len);
                if rng.below(2) == 0 && buf.len() >= HEADER_LEN {
                    buf[0] = 0;
                    let datasize = (buf.len() - HEADER_LEN) as u16;
                    buf[1..3].copy_from_slice(&datasize.to_le_bytes());
                }
                buf
            } else {
                let mut buf = seed_packet.clone();
                for _ in 0..=rng.below(4) {
                    match rng.below(4) {
                        0 => {
                            let at = rng.below(buf.len());
                            buf[at] = rng.next() as u8;
                        }
                        1 => buf.truncate(rng.below(buf.len() + 1)),
                        2 => {
                            let at = rng.below(buf.len() + 1);
                            let len = rng.bytes(2);
                            buf.splice(at..at, len);
                        }
                        _ => {
                            let at = rng.below(buf.len() + 1);
                            buf.splice(at..at, [0u8, 0]);
                        }
                    }
                    if buf.is_empty() {
                        break;
                    }
                }
                if rng.below(2) == 0 && buf.len() >= HEADER_LEN {
                    // Fix the header up so the damage is inside the vars, not just a length mismatch.
                    let datasize = ((buf.len() - HEADER_LEN).min(MAX_DATASIZE)) as u16;
                    buf[1..3].copy_from_slice(&datasize.to_le_bytes());
                }
                buf
            };
            exercise(&buf, rng.below(2 * 4096));
        }
    }

    /// Property: any encodable var list round-trips, and every strict prefix of its packet is `Partial`.
    #[test]
    fn random_var_lists_round_trip() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        for _ in 0..5_000 {
            let n = rng.below(12);
            let owned: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
                .map(|_| {
                    let klen = 1 + rng.below(20);
                    let vlen = rng.below(40);
                    (rng.bytes(klen), rng.bytes(vlen))
                })
                .collect();
            let vars: Vec<(&[u8], &[u8])> = owned.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            let packet = encode(&vars);
            assert_eq!(check(&packet, MAX_DATASIZE), Ok(Status::Complete { packet_len: packet.len() }));
            let req = parse(&packet).expect("round trip");
            assert_eq!(req.vars.iter().collect::<Vec<_>>(), vars);
            let cut = rng.below(packet.len());
            assert!(matches!(check(&packet[..cut], MAX_DATASIZE), Ok(Status::Partial { .. })));
        }
    }
}
