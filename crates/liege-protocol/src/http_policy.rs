//! What liege refuses beyond what hyper (httparse underneath) already refuses, and how header names become
//! WSGI environ keys.
//!
//! hyper rejects malformed request lines, invalid header bytes, obs-fold, bad chunk sizes and oversized heads.
//! It does let through requests that are well-formed but ambiguous or dangerous behind a proxy: two `Host`s,
//! `Content-Length` *and* `Transfer-Encoding` (hyper silently prefers the latter, the classic smuggling
//! desync), codings nobody decodes, `*` with `GET`. [`check_request`] is that policy, applied to the parsed head
//! before the app sees anything.

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Uri, Version};

/// Size limits on a request head. uWSGI ties these to `buffer-size`; the defaults are generous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most header fields; every line counts, repeated names included.
    pub max_header_count: usize,
    /// Most bytes in the head: request line plus header lines, as they were on the wire (CRLFs included).
    pub max_head_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_header_count: 100, max_head_bytes: 64 * 1024 }
    }
}

/// A request liege refuses. [`Violation::status`] is what to answer with, [`Violation::reason`] a short body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("more than one Host header")]
    DuplicateHost,
    /// RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host.
    #[error("HTTP/1.1 request without a Host header")]
    MissingHost,
    /// RFC 9112 §3.2: 400 for a Host with an invalid value (`Host = uri-host [ ":" port ]`).
    #[error("invalid Host header")]
    InvalidHost,
    /// Two framings at once: the smuggling vector, refused outright (RFC 9112 §6.1 allows that).
    #[error("both Content-Length and Transfer-Encoding")]
    ContentLengthWithTransferEncoding,
    /// Not a decimal, or repeated (as fields or as a list) with different values (RFC 9110 §8.6).
    #[error("invalid Content-Length")]
    InvalidContentLength,
    /// Transfer-Encoding did not exist in HTTP/1.0; a 1.0 message carrying one is a desync attempt
    /// (RFC 9112 §6.1: treat it as faulty).
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    TransferEncodingInHttp10,
    /// Empty, not a list of tokens, `chunked` repeated or not last (RFC 9112 §6.3 says 400).
    #[error("malformed Transfer-Encoding")]
    InvalidTransferEncoding,
    /// A coding other than `chunked` (gzip, deflate, …): liege does not decode request bodies
    /// (RFC 9112 §6.1: 501 for a transfer coding the server does not understand).
    #[error("unsupported transfer coding")]
    UnsupportedTransferCoding,
    /// `*` is the asterisk-form, only for server-wide OPTIONS (RFC 9112 §3.2.4).
    #[error("request target * is only allowed with OPTIONS")]
    AsteriskNotOptions,
    /// The authority-form (`host:port`) belongs to CONNECT alone, and CONNECT to it (RFC 9112 §3.2.3).
    #[error("authority-form request target is only allowed with CONNECT")]
    AuthorityFormMismatch,
    /// A field that may appear once (RFC 9110 §5.3: Content-Type is not a list) appears twice: joining the
    /// values would hand the app a type no client sent.
    #[error("more than one {0} header")]
    DuplicateSingleton(&'static str),
    /// Raw bytes above 0x7F in the request target: RFC 3986 allows only ASCII, and accepting them when they
    /// happen to be UTF-8 but not otherwise (the parser's behaviour) is no policy at all.
    #[error("non-ASCII bytes in the request target")]
    NonAsciiTarget,
    #[error("too many header fields ({count} > {max})")]
    TooManyHeaders { count: usize, max: usize },
    #[error("request head too large (more than {max} bytes)")]
    HeadTooLarge { max: usize },
    /// The declared body exceeds the caller's limit (uWSGI's `limit-post`). Not produced by
    /// [`check_request`], which has no body limit; built by the caller from [`content_length`].
    #[error("request body too large ({length} > {max} bytes)")]
    BodyTooLarge { length: u64, max: u64 },
}

impl Violation {
    /// The HTTP status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Violation::UnsupportedTransferCoding => 501,
            Violation::TooManyHeaders { .. } | Violation::HeadTooLarge { .. } => 431,
            Violation::BodyTooLarge { .. } => 413,
            _ => 400,
        }
    }

    /// A short, fixed reason for the response body (no request data echoed back).
    pub fn reason(&self) -> &'static str {
        match self {
            Violation::DuplicateHost => "duplicate Host header",
            Violation::DuplicateSingleton(_) => "duplicate singleton header",
            Violation::NonAsciiTarget => "non-ASCII request target",
            Violation::MissingHost => "missing Host header",
            Violation::InvalidHost => "invalid Host header",
            Violation::ContentLengthWithTransferEncoding => "both Content-Length and Transfer-Encoding",
            Violation::InvalidContentLength => "invalid Content-Length",
            Violation::TransferEncodingInHttp10 => "Transfer-Encoding in HTTP/1.0",
            Violation::InvalidTransferEncoding => "invalid Transfer-Encoding",
            Violation::UnsupportedTransferCoding => "unsupported transfer coding",
            Violation::AsteriskNotOptions => "request target * is only for OPTIONS",
            Violation::AuthorityFormMismatch => "authority-form request target is only for CONNECT",
            Violation::TooManyHeaders { .. } => "too many headers",
            Violation::HeadTooLarge { .. } => "request header fields too large",
            Violation::BodyTooLarge { .. } => "request body too large",
        }
    }
}

/// Applies liege's request policy to a head hyper has already parsed. Cheapest checks first; the first
/// violation wins.
pub fn check_request(
    method: &Method,
    uri: &Uri,
    version: Version,
    headers: &HeaderMap,
    limits: &Limits,
) -> Result<(), Violation> {
    check_size(method, uri, headers, limits)?;
    check_target(method, uri)?;
    check_host(version, headers)?;
    check_singletons(headers)?;
    check_framing(version, headers)
}

fn check_size(method: &Method, uri: &Uri, headers: &HeaderMap, limits: &Limits) -> Result<(), Violation> {
    // `HeaderMap::len` counts values, i.e. header lines.
    let count = headers.len();
    if count > limits.max_header_count {
        return Err(Violation::TooManyHeaders { count, max: limits.max_header_count });
    }
    let max = limits.max_head_bytes;
    // "METHOD SP target SP HTTP/1.1 CRLF", then "name: value CRLF" per line, then the final CRLF.
    let mut bytes = method.as_str().len() + 1 + target_len(uri) + 1 + 8 + 2 + 2;
    for (name, value) in headers {
        bytes += name.as_str().len() + 2 + value.len() + 2;
        if bytes > max {
            return Err(Violation::HeadTooLarge { max });
        }
    }
    if bytes > max {
        return Err(Violation::HeadTooLarge { max });
    }
    Ok(())
}

/// Length of the request-target as sent, without re-serialising the URI.
fn target_len(uri: &Uri) -> usize {
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let path = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    scheme + authority + path
}

/// Fields that must not repeat (Host is checked on its own, with its value).
fn check_singletons(headers: &HeaderMap) -> Result<(), Violation> {
    let mut types = headers.get_all(http::header::CONTENT_TYPE).iter();
    if types.next().is_some() && types.next().is_some() {
        return Err(Violation::DuplicateSingleton("Content-Type"));
    }
    Ok(())
}

fn check_target(method: &Method, uri: &Uri) -> Result<(), Violation> {
    let target = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    if !target.is_ascii() || uri.authority().is_some_and(|a| !a.as_str().is_ascii()) {
        return Err(Violation::NonAsciiTarget);
    }
    let authority_form = uri.scheme().is_none() && uri.authority().is_some();
    if (*method == Method::CONNECT) != authority_form {
        return Err(Violation::AuthorityFormMismatch);
    }
    if *method != Method::OPTIONS && uri.scheme().is_none() && uri.path() == "*" {
        return Err(Violation::AsteriskNotOptions);
    }
    Ok(())
}

fn check_host(version: Version, headers: &HeaderMap) -> Result<(), Violation> {
    let mut hosts = headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(Violation::DuplicateHost),
        (Some(host), None) if valid_host(host.as_bytes()) => Ok(()),
        (Some(_), None) => Err(Violation::InvalidHost),
        (None, _) if version == Version::HTTP_11 => Err(Violation::MissingHost),
        (None, _) => Ok(()),
    }
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2): a reg-name (unreserved, sub-delims, pct-encoded) or a bracketed
/// IP literal, then an optional all-digit port. Empty is allowed (RFC 9112 §3.2, for targets without an
/// authority). Refuses what would smuggle a path, userinfo or whitespace into URLs the app builds from Host.
fn valid_host(host: &[u8]) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix(b"[") {
        let Some(close) = memchr::memchr(b']', rest) else {
            return false;
        };
        let (literal, after) = rest.split_at(close);
        // IPv6 / IPvFuture characters: hex, '.', ':', 'v' and sub-delims are all HOST_BYTE; no '[' inside.
        if literal.is_empty() || !literal.iter().all(|&b| HOST_BYTE[usize::from(b)]) {
            return false;
        }
        match after.get(1..) {
            Some([]) | None => return true,
            Some([b':', port @ ..]) => (&b""[..], port),
            Some(_) => return false,
        }
    } else {
        match memchr::memchr(b':', host) {
            Some(colon) => (&host[..colon], &host[colon + 1..]),
            None => (host, &b""[..]),
        }
    };
    name.iter().all(|&b| HOST_BYTE[usize::from(b)] && b != b':') && port.iter().all(u8::is_ascii_digit)
}

/// unreserved / sub-delims / '%' (pct-encoded) / ':' (IP literals); not '[' ']' '/' '?' '#' '@' or space.
static HOST_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'')
            || matches!(c, b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b'%' | b':');
        b += 1;
    }
    t
};

fn check_framing(version: Version, headers: &HeaderMap) -> Result<(), Violation> {
    if headers.contains_key(TRANSFER_ENCODING) {
        if version < Version::HTTP_11 {
            return Err(Violation::TransferEncodingInHttp10);
        }
        if headers.contains_key(CONTENT_LENGTH) {
            return Err(Violation::ContentLengthWithTransferEncoding);
        }
        return check_transfer_encoding(headers);
    }
    content_length(headers).map(|_| ())
}

/// The declared body length: `None` without Content-Length. Repeats (as fields or as a comma list) are
/// accepted only when identical, as RFC 9110 §8.6 allows; anything but ASCII digits is refused (no sign, no
/// hex, no empty value), as is a value that overflows u64.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Violation> {
    let mut found: Option<u64> = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let item = trim_ows(item);
            if item.is_empty() {
                return Err(Violation::InvalidContentLength);
            }
            let n = item
                .iter()
                .try_fold(0u64, |acc, &b| {
                    let digit = b.wrapping_sub(b'0');
                    if digit > 9 {
                        return None;
                    }
                    acc.checked_mul(10)?.checked_add(u64::from(digit))
                })
                .ok_or(Violation::InvalidContentLength)?;
            match found {
                Some(prev) if prev != n => return Err(Violation::InvalidContentLength),
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// Accepts exactly one `chunked`, last, with no parameters, and nothing else. Empty list elements are skipped
/// (RFC 9110 §5.6.1 asks recipients to tolerate them), but a field with no coding at all is malformed.
/// Malformed beats unsupported: `chunked, gzip` is 400 (chunked not final), `gzip, chunked` is 501.
fn check_transfer_encoding(headers: &HeaderMap) -> Result<(), Violation> {
    let mut any = false;
    let mut chunked_seen = false;
    let mut last_is_chunked = false;
    let mut unsupported = false;
    for value in headers.get_all(TRANSFER_ENCODING) {
        for element in value.as_bytes().split(|&b| b == b',') {
            let element = trim_ows(element);
            if element.is_empty() {
                continue;
            }
            any = true;
            let (name, has_params) = match memchr::memchr(b';', element) {
                Some(semi) => (trim_ows(&element[..semi]), true),
                None => (element, false),
            };
            if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                return Err(Violation::InvalidTransferEncoding);
            }
            if name.eq_ignore_ascii_case(b"chunked") {
                if chunked_seen || has_params {
                    return Err(Violation::InvalidTransferEncoding);
                }
                chunked_seen = true;
                last_is_chunked = true;
            } else {
                unsupported = true;
                last_is_chunked = false;
            }
        }
    }
    if !any || (chunked_seen && !last_is_chunked) {
        return Err(Violation::InvalidTransferEncoding);
    }
    if unsupported {
        return Err(Violation::UnsupportedTransferCoding);
    }
    Ok(())
}

/// `s` without the optional white space (spaces and tabs) around it, RFC 9110 §5.6.3.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[inline]
fn is_tchar(b: u8) -> bool {
    ENVIRON_BYTE[usize::from(b)] != 0 || b == b'_'
}

/// Header-name byte → environ-key byte: letters upper-cased, `-` → `_`, other token characters kept; 0 refuses
/// the name: `_` (see [`header_name_to_environ_key`]) and anything that is not a token character.
static ENVIRON_BYTE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_lowercase() {
            c.to_ascii_uppercase()
        } else if c == b'-' {
            b'_'
        } else if c.is_ascii_alphanumeric()
            || matches!(c, b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'.' | b'^' | b'`' | b'|' | b'~')
        {
            c
        } else {
            0
        };
        b += 1;
    }
    t
};

/// Appends the WSGI environ key for a header name to `out` and returns true, or returns false with `out`
/// untouched when the header must not reach the app.
///
/// `Content-Type` → `CONTENT_TYPE` and `Content-Length` → `CONTENT_LENGTH` (no `HTTP_` twin, PEP 3333);
/// others → `HTTP_` + upper-cased name with `-` → `_`. Dropped:
/// - names containing `_`: `X_Forwarded_For` would land on the same key as `X-Forwarded-For` and override a
///   proxy-set value (nginx's `underscores_in_headers off`, gunicorn and Apache drop them too);
/// - `Proxy`: as `HTTP_PROXY` it is read as proxy configuration by code that treats the environ like
///   `os.environ` (httpoxy, CVE-2016-5385); no legitimate client sends it;
/// - empty names and non-token bytes (hyper never produces these; kept as a guard).
///
/// One table lookup per byte and no allocation once `out` has capacity: reuse one buffer per worker.
pub fn header_name_to_environ_key(name: &[u8], out: &mut Vec<u8>) -> bool {
    if name.is_empty() {
        return false;
    }
    match name.len() {
        5 if name.eq_ignore_ascii_case(b"proxy") => return false,
        12 if name.eq_ignore_ascii_case(b"content-type") => {
            out.extend_from_slice(b"CONTENT_TYPE");
            return true;
        }
        14 if name.eq_ignore_ascii_case(b"content-length") => {
            out.extend_from_slice(b"CONTENT_LENGTH");
            return true;
        }
        _ => {}
    }
    let start = out.len();
    out.reserve(5 + name.len());
    out.extend_from_slice(b"HTTP_");
    let mut refused = false;
    out.extend(name.iter().map(|&b| {
        let mapped = ENVIRON_BYTE[usize::from(b)];
        refused |= mapped == 0;
        mapped
    }));
    if refused {
        out.truncate(start);
    }
    !refused
}

/// The environ key of the most common header names as a `&'static str`, so the caller can intern one Python
/// string per key for the life of the worker; `None` for anything else (use [`header_name_to_environ_key`]).
/// Case-insensitive; hyper hands names over lower-cased.
pub fn common_environ_key(name: &[u8]) -> Option<&'static str> {
    let candidates: &[(&[u8], &'static str)] = match name.len() {
        4 => &[(b"host", "HTTP_HOST")],
        5 => &[(b"range", "HTTP_RANGE")],
        6 => &[
            (b"accept", "HTTP_ACCEPT"),
            (b"cookie", "HTTP_COOKIE"),
            (b"origin", "HTTP_ORIGIN"),
            (b"pragma", "HTTP_PRAGMA"),
        ],
        7 => &[(b"referer", "HTTP_REFERER"), (b"upgrade", "HTTP_UPGRADE")],
        9 => &[(b"x-real-ip", "HTTP_X_REAL_IP")],
        10 => &[(b"user-agent", "HTTP_USER_AGENT"), (b"connection", "HTTP_CONNECTION")],
        12 => &[(b"content-type", "CONTENT_TYPE")],
        13 => &[
            (b"authorization", "HTTP_AUTHORIZATION"),
            (b"cache-control", "HTTP_CACHE_CONTROL"),
            (b"if-none-match", "HTTP_IF_NONE_MATCH"),
        ],
        14 => &[(b"content-length", "CONTENT_LENGTH")],
        15 => &[
            (b"accept-encoding", "HTTP_ACCEPT_ENCODING"),
            (b"accept-language", "HTTP_ACCEPT_LANGUAGE"),
            (b"x-forwarded-for", "HTTP_X_FORWARDED_FOR"),
        ],
        16 => &[(b"x-forwarded-host", "HTTP_X_FORWARDED_HOST"), (b"x-requested-with", "HTTP_X_REQUESTED_WITH")],
        17 => &[(b"x-forwarded-proto", "HTTP_X_FORWARDED_PROTO"), (b"if-modified-since", "HTTP_IF_MODIFIED_SINCE")],
        _ => return None,
    };
    candidates.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|&(_, key)| key)
}

#[inline]
fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends the percent-decoded `path` to `out`: the bytes of WSGI's `PATH_INFO` (PEP 3333 wants it decoded;
/// the str is those bytes as latin-1, which the Python side builds, or see [`decode_path_latin1`]).
///
/// Invalid escapes (`%zz`, a `%` near the end) are kept literally, as gunicorn and werkzeug do, rather than
/// refusing the request. `%2F` becomes `/` (every WSGI server does this; PATH_INFO cannot tell them apart) and
/// `+` stays `+` (form encoding applies to query strings only). Paths without `%` are one memcpy.
pub fn percent_decode(path: &[u8], out: &mut Vec<u8>) {
    out.reserve(path.len());
    let mut rest = path;
    while let Some(i) = memchr::memchr(b'%', rest) {
        let (literal, escape) = rest.split_at(i);
        out.extend_from_slice(literal);
        match escape {
            [_, hi, lo, tail @ ..] => match (hex_val(*hi), hex_val(*lo)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    rest = tail;
                }
                _ => {
                    out.push(b'%');
                    rest = &escape[1..];
                }
            },
            _ => {
                out.push(b'%');
                rest = &escape[1..];
            }
        }
    }
    out.extend_from_slice(rest);
}

/// Percent-decodes `path` and appends it to `out` as latin-1 (each byte → the code point of the same value),
/// i.e. the exact `str` PEP 3333 wants in `PATH_INFO`, for callers that build Python strings from UTF-8.
/// `scratch` is a reusable buffer for the decoded bytes.
pub fn decode_path_latin1(path: &[u8], scratch: &mut Vec<u8>, out: &mut String) {
    scratch.clear();
    percent_decode(path, scratch);
    latin1_to_string(scratch, out);
}

/// Appends latin-1 `bytes` to `out` (U+0000..U+00FF). ASCII, the usual case, is copied in bulk.
pub fn latin1_to_string(bytes: &[u8], out: &mut String) {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.is_ascii() => out.push_str(s),
        _ => out.extend(bytes.iter().map(|&b| char::from(b))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderName, HeaderValue};

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in list {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("valid name"),
                HeaderValue::from_bytes(value.as_bytes()).expect("valid value"),
            );
        }
        map
    }

    fn check(method: &str, target: &str, version: Version, list: &[(&str, &str)]) -> Result<(), Violation> {
        let method = Method::from_bytes(method.as_bytes()).expect("valid method");
        let uri: Uri = target.parse().expect("valid target");
        check_request(&method, &uri, version, &headers(list), &Limits::default())
    }

    fn get11(list: &[(&str, &str)]) -> Result<(), Violation> {
        check("GET", "/", Version::HTTP_11, list)
    }

    fn post11(list: &[(&str, &str)]) -> Result<(), Violation> {
        check("POST", "/upload", Version::HTTP_11, list)
    }

    #[test]
    fn ordinary_requests_pass() {
        assert_eq!(get11(&[("host", "example.com")]), Ok(()));
        assert_eq!(get11(&[("host", "example.com:8080"), ("accept", "*/*"), ("cookie", "a=1")]), Ok(()));
        assert_eq!(post11(&[("host", "h"), ("content-length", "5")]), Ok(()));
        assert_eq!(post11(&[("host", "h"), ("transfer-encoding", "chunked")]), Ok(()));
        assert_eq!(post11(&[("host", "h"), ("transfer-encoding", "Chunked")]), Ok(()));
        assert_eq!(check("GET", "/", Version::HTTP_10, &[]), Ok(()));
        assert_eq!(check("POST", "/", Version::HTTP_10, &[("content-length", "3")]), Ok(()));
        assert_eq!(check("OPTIONS", "*", Version::HTTP_11, &[("host", "h")]), Ok(()));
        assert_eq!(check("GET", "http://example.com/x?y", Version::HTTP_11, &[("host", "example.com")]), Ok(()));
        assert_eq!(check("CONNECT", "example.com:443", Version::HTTP_11, &[("host", "example.com:443")]), Ok(()));
    }

    #[test]
    fn duplicate_host() {
        assert_eq!(get11(&[("host", "a"), ("host", "b")]), Err(Violation::DuplicateHost));
        assert_eq!(get11(&[("host", "a"), ("host", "a")]), Err(Violation::DuplicateHost));
        assert_eq!(check("GET", "/", Version::HTTP_10, &[("host", "a"), ("host", "b")]), Err(Violation::DuplicateHost));
        assert_eq!(Violation::DuplicateHost.status(), 400);
    }

    #[test]
    fn missing_host() {
        assert_eq!(get11(&[]), Err(Violation::MissingHost));
        assert_eq!(get11(&[("accept", "*/*")]), Err(Violation::MissingHost));
        assert_eq!(check("GET", "/", Version::HTTP_10, &[]), Ok(()));
        assert_eq!(Violation::MissingHost.status(), 400);
    }

    #[test]
    fn host_values() {
        for ok in [
            "example.com",
            "example.com:80",
            "EXAMPLE.com",
            "127.0.0.1:8000",
            "[::1]",
            "[::1]:443",
            "a_b.example",
            "xn--bcher-kva.example",
            "",
            "h:",
            "%65xample.com",
        ] {
            assert_eq!(get11(&[("host", ok)]), Ok(()), "{ok:?}");
        }
        for bad in [
            "example.com/evil",
            "a@b",
            "a b",
            "a:b",
            "a:80:80",
            "a?b",
            "a#b",
            "[::1",
            "[::1]x",
            "[]",
            "[::1]:8x",
            "a\\b",
            "\"a\"",
        ] {
            assert_eq!(get11(&[("host", bad)]), Err(Violation::InvalidHost), "{bad:?}");
        }
    }

    #[test]
    fn content_length_with_transfer_encoding() {
        assert_eq!(
            post11(&[("host", "h"), ("content-length", "5"), ("transfer-encoding", "chunked")]),
            Err(Violation::ContentLengthWithTransferEncoding)
        );
        assert_eq!(
            post11(&[("host", "h"), ("transfer-encoding", "chunked"), ("content-length", "0")]),
            Err(Violation::ContentLengthWithTransferEncoding)
        );
    }

    #[test]
    fn content_length_values() {
        assert_eq!(post11(&[("host", "h"), ("content-length", "5"), ("content-length", "5")]), Ok(()));
        assert_eq!(post11(&[("host", "h"), ("content-length", "5, 5")]), Ok(()));
        assert_eq!(post11(&[("host", "h"), ("content-length", "0")]), Ok(()));
        for bad in [
            &[("content-length", "5"), ("content-length", "6")][..],
            &[("content-length", "5,6")],
            &[("content-length", "5,")],
            &[("content-length", "-1")],
            &[("content-length", "+5")],
            &[("content-length", "0x5")],
            &[("content-length", "5 5")],
            &[("content-length", "")],
            &[("content-length", "18446744073709551616")],
            &[("content-length", "1.0")],
        ] {
            let mut list = vec![("host", "h")];
            list.extend_from_slice(bad);
            assert_eq!(post11(&list), Err(Violation::InvalidContentLength), "{bad:?}");
        }
        assert_eq!(content_length(&headers(&[])), Ok(None));
        assert_eq!(content_length(&headers(&[("content-length", "42")])), Ok(Some(42)));
        assert_eq!(content_length(&headers(&[("content-length", "18446744073709551615")])), Ok(Some(u64::MAX)));
    }

    #[test]
    fn transfer_encoding_codings() {
        let te = |v: &str| post11(&[("host", "h"), ("transfer-encoding", v)]);
        assert_eq!(te("chunked"), Ok(()));
        assert_eq!(te(" chunked "), Ok(()));
        assert_eq!(te(", chunked"), Ok(()));
        assert_eq!(te("gzip, chunked"), Err(Violation::UnsupportedTransferCoding));
        assert_eq!(te("gzip"), Err(Violation::UnsupportedTransferCoding));
        assert_eq!(te("identity"), Err(Violation::UnsupportedTransferCoding));
        assert_eq!(te("deflate;q=1, chunked"), Err(Violation::UnsupportedTransferCoding));
        assert_eq!(te("chunked, gzip"), Err(Violation::InvalidTransferEncoding));
        assert_eq!(te("chunked, chunked"), Err(Violation::InvalidTransferEncoding));
        assert_eq!(te("chunked;x=1"), Err(Violation::InvalidTransferEncoding));
        assert_eq!(te(""), Err(Violation::InvalidTransferEncoding));
        assert_eq!(te(" , "), Err(Violation::InvalidTransferEncoding));
        assert_eq!(te("chun ked"), Err(Violation::InvalidTransferEncoding));
        assert_eq!(te("\"chunked\""), Err(Violation::InvalidTransferEncoding));
        assert_eq!(te("ch\u{fc}nked"), Err(Violation::InvalidTransferEncoding));
        // Split over two fields is the same list.
        assert_eq!(
            post11(&[("host", "h"), ("transfer-encoding", "gzip"), ("transfer-encoding", "chunked")]),
            Err(Violation::UnsupportedTransferCoding)
        );
        assert_eq!(
            post11(&[("host", "h"), ("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")]),
            Err(Violation::InvalidTransferEncoding)
        );
        assert_eq!(Violation::UnsupportedTransferCoding.status(), 501);
        assert_eq!(Violation::InvalidTransferEncoding.status(), 400);
    }

    #[test]
    fn transfer_encoding_in_http10() {
        assert_eq!(
            check("POST", "/", Version::HTTP_10, &[("transfer-encoding", "chunked")]),
            Err(Violation::TransferEncodingInHttp10)
        );
        assert_eq!(
            check("POST", "/", Version::HTTP_10, &[("transfer-encoding", "chunked"), ("content-length", "1")]),
            Err(Violation::TransferEncodingInHttp10)
        );
    }

    #[test]
    fn asterisk_only_for_options() {
        for method in ["GET", "POST", "HEAD", "DELETE"] {
            assert_eq!(check(method, "*", Version::HTTP_11, &[("host", "h")]), Err(Violation::AsteriskNotOptions));
        }
        assert_eq!(check("OPTIONS", "*", Version::HTTP_11, &[("host", "h")]), Ok(()));
        assert_eq!(check("OPTIONS", "/", Version::HTTP_11, &[("host", "h")]), Ok(()));
        // A path that merely contains '*' is fine.
        assert_eq!(check("GET", "/*", Version::HTTP_11, &[("host", "h")]), Ok(()));
    }

    #[test]
    fn authority_form_only_for_connect() {
        assert_eq!(
            check("GET", "example.com:80", Version::HTTP_11, &[("host", "example.com")]),
            Err(Violation::AuthorityFormMismatch)
        );
        assert_eq!(check("CONNECT", "/", Version::HTTP_11, &[("host", "h")]), Err(Violation::AuthorityFormMismatch));
    }

    #[test]
    fn header_count_limit() {
        let many: Vec<(String, String)> = (0..101).map(|i| (format!("x-h{i}"), "v".to_string())).collect();
        let mut list: Vec<(&str, &str)> = vec![("host", "h")];
        list.extend(many.iter().take(99).map(|(n, v)| (n.as_str(), v.as_str())));
        assert_eq!(get11(&list), Ok(()), "exactly 100");
        list.push(("x-one-more", "v"));
        assert_eq!(get11(&list), Err(Violation::TooManyHeaders { count: 101, max: 100 }));
        // Repeats of one name count per line.
        let repeated: Vec<(&str, &str)> =
            std::iter::once(("host", "h")).chain((0..100).map(|_| ("x-a", "v"))).collect();
        assert_eq!(get11(&repeated).map_err(|v| v.status()), Err(431));
    }

    #[test]
    fn head_bytes_limit() {
        let limits = Limits { max_header_count: 100, max_head_bytes: 100 };
        let uri: Uri = "/".parse().expect("uri");
        // "GET / HTTP/1.1\r\n" = 16, "host: h\r\n" = 9, final CRLF = 2: 27 bytes.
        let small = headers(&[("host", "h")]);
        assert_eq!(check_request(&Method::GET, &uri, Version::HTTP_11, &small, &limits), Ok(()));
        let exact = Limits { max_head_bytes: 27, ..limits };
        assert_eq!(check_request(&Method::GET, &uri, Version::HTTP_11, &small, &exact), Ok(()));
        let under = Limits { max_head_bytes: 26, ..limits };
        assert_eq!(
            check_request(&Method::GET, &uri, Version::HTTP_11, &small, &under),
            Err(Violation::HeadTooLarge { max: 26 })
        );
        let long_value = "v".repeat(100);
        let big = headers(&[("host", "h"), ("x-big", &long_value)]);
        let err = check_request(&Method::GET, &uri, Version::HTTP_11, &big, &limits);
        assert_eq!(err, Err(Violation::HeadTooLarge { max: 100 }));
        assert_eq!(err.map_err(|v| v.status()), Err(431));
        // A long target counts too.
        let long_uri: Uri = format!("/{}", "p".repeat(100)).parse().expect("uri");
        assert!(check_request(&Method::GET, &long_uri, Version::HTTP_11, &small, &limits).is_err());
        assert_eq!(target_len(&"http://example.com/a?b".parse().expect("uri")), "http://example.com/a?b".len());
        assert_eq!(target_len(&"*".parse().expect("uri")), 1);
    }

    #[test]
    fn violation_statuses_and_reasons() {
        let all = [
            Violation::DuplicateHost,
            Violation::MissingHost,
            Violation::InvalidHost,
            Violation::ContentLengthWithTransferEncoding,
            Violation::InvalidContentLength,
            Violation::TransferEncodingInHttp10,
            Violation::InvalidTransferEncoding,
            Violation::UnsupportedTransferCoding,
            Violation::AsteriskNotOptions,
            Violation::AuthorityFormMismatch,
            Violation::TooManyHeaders { count: 2, max: 1 },
            Violation::HeadTooLarge { max: 1 },
            Violation::BodyTooLarge { length: 2, max: 1 },
        ];
        for v in &all {
            assert!(matches!(v.status(), 400 | 413 | 431 | 501));
            assert!(!v.reason().is_empty() && v.reason().len() < 60);
            assert!(!v.to_string().is_empty());
        }
        assert_eq!(Violation::BodyTooLarge { length: 2, max: 1 }.status(), 413);
    }

    fn environ_key(name: &str) -> Option<String> {
        let mut out = b"keep".to_vec();
        let kept = header_name_to_environ_key(name.as_bytes(), &mut out);
        assert_eq!(&out[..4], b"keep", "appends");
        if kept {
            Some(String::from_utf8(out[4..].to_vec()).expect("ascii"))
        } else {
            assert_eq!(out, b"keep", "untouched when dropped");
            None
        }
    }

    #[test]
    fn environ_keys() {
        assert_eq!(environ_key("content-type").as_deref(), Some("CONTENT_TYPE"));
        assert_eq!(environ_key("Content-Length").as_deref(), Some("CONTENT_LENGTH"));
        assert_eq!(environ_key("host").as_deref(), Some("HTTP_HOST"));
        assert_eq!(environ_key("X-Forwarded-For").as_deref(), Some("HTTP_X_FORWARDED_FOR"));
        assert_eq!(environ_key("x-custom.v2").as_deref(), Some("HTTP_X_CUSTOM.V2"));
        assert_eq!(environ_key("a1!#$%&'*+.^`|~").as_deref(), Some("HTTP_A1!#$%&'*+.^`|~"));
        assert_eq!(environ_key("X_Forwarded_For"), None);
        assert_eq!(environ_key("content_length"), None);
        assert_eq!(environ_key("_"), None);
        assert_eq!(environ_key("Proxy"), None);
        assert_eq!(environ_key("proxy-authorization").as_deref(), Some("HTTP_PROXY_AUTHORIZATION"));
        assert_eq!(environ_key(""), None);
        assert_eq!(environ_key("a b"), None);
        assert_eq!(environ_key("a:b"), None);
        assert_eq!(environ_key("caf\u{e9}"), None);
    }

    #[test]
    fn common_keys_agree_with_general_mapping() {
        for name in [
            "host",
            "user-agent",
            "accept",
            "accept-encoding",
            "accept-language",
            "connection",
            "cookie",
            "content-type",
            "content-length",
            "referer",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-real-ip",
            "authorization",
            "cache-control",
            "origin",
            "upgrade",
            "if-none-match",
            "if-modified-since",
            "range",
            "pragma",
            "x-forwarded-host",
            "x-requested-with",
        ] {
            let common = common_environ_key(name.as_bytes());
            assert!(common.is_some(), "{name} should be common");
            assert_eq!(common.map(str::to_owned), environ_key(name), "{name}");
            assert_eq!(common_environ_key(name.to_ascii_uppercase().as_bytes()), common, "{name} any case");
        }
        for name in ["x-custom", "hosts", "", "x_forwarded_for", "proxy"] {
            assert_eq!(common_environ_key(name.as_bytes()), None, "{name}");
        }
    }

    fn decoded(path: &str) -> Vec<u8> {
        let mut out = Vec::new();
        percent_decode(path.as_bytes(), &mut out);
        out
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(decoded("/plain/path"), b"/plain/path");
        assert_eq!(decoded("/a%20b"), b"/a b");
        assert_eq!(decoded("/%41%42%43"), b"/ABC");
        assert_eq!(decoded("/%e9"), b"/\xe9");
        assert_eq!(decoded("/%C3%A9"), b"/\xc3\xa9");
        assert_eq!(decoded("/a%2Fb"), b"/a/b");
        assert_eq!(decoded("/a+b"), b"/a+b");
        assert_eq!(decoded("/%zz"), b"/%zz");
        assert_eq!(decoded("/%4"), b"/%4");
        assert_eq!(decoded("/%"), b"/%");
        assert_eq!(decoded("%"), b"%");
        assert_eq!(decoded("/%%41"), b"/%A");
        assert_eq!(decoded("/%4g%41"), b"/%4gA");
        assert_eq!(decoded("/%00"), b"/\x00");
        assert_eq!(decoded(""), b"");
        let mut out = b"x".to_vec();
        percent_decode(b"%41", &mut out);
        assert_eq!(out, b"xA", "appends");
    }

    #[test]
    fn latin1_paths() {
        let mut scratch = Vec::new();
        let mut out = String::new();
        decode_path_latin1(b"/caf%C3%A9/%e9", &mut scratch, &mut out);
        // UTF-8 bytes are *not* decoded as UTF-8: PEP 3333 wants each byte as one latin-1 code point.
        assert_eq!(out, "/caf\u{c3}\u{a9}/\u{e9}");
        out.clear();
        decode_path_latin1(b"/ascii", &mut scratch, &mut out);
        assert_eq!(out, "/ascii");
        out.clear();
        latin1_to_string(&(0u8..=255).collect::<Vec<_>>(), &mut out);
        assert_eq!(out.chars().map(u32::from).collect::<Vec<_>>(), (0u32..=255).collect::<Vec<_>>());
    }

    /// Decoding arbitrary bytes never panics and never grows the input.
    #[test]
    fn percent_decode_random() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut out = Vec::new();
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 16) as usize;
            let input: Vec<u8> = (0..len)
                .map(|i| [b'%', b'4', b'1', b'z', b'a', b'F', b'/', 0xff][((state >> (i * 3)) & 7) as usize])
                .collect();
            out.clear();
            percent_decode(&input, &mut out);
            assert!(out.len() <= input.len());
        }
    }

    #[test]
    fn duplicate_content_type_and_non_ascii_targets_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("x"));
        headers.append(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.append(http::header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        let uri: Uri = "/".parse().expect("uri");
        let err = check_request(&Method::POST, &uri, Version::HTTP_11, &headers, &Limits::default());
        assert_eq!(err, Err(Violation::DuplicateSingleton("Content-Type")));

        headers.remove(http::header::CONTENT_TYPE);
        let uri = Uri::from_maybe_shared(bytes_of("/\u{e0}%20k")).expect("http accepts UTF-8 targets");
        let err = check_request(&Method::GET, &uri, Version::HTTP_11, &headers, &Limits::default());
        assert_eq!(err, Err(Violation::NonAsciiTarget));
    }

    fn bytes_of(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }
}
