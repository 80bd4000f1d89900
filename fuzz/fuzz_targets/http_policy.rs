//! Raw request heads through httparse (what hyper uses underneath), into `http` parts, then liege's policy.
//!
//! Properties beyond "no panic":
//! - a request with both Content-Length and Transfer-Encoding is never accepted (the smuggling desync);
//! - an accepted request has one valid body framing: `content_length` agrees, a Transfer-Encoding ends in
//!   `chunked` and only on HTTP/1.1, an HTTP/1.1 request has exactly one Host, limits hold;
//! - the environ-key mapping is total, upper-case, `HTTP_`-prefixed except the two CGI names, and agrees
//!   with the interned fast path (`common_environ_key`);
//! - percent-decoding never grows the path and is the identity without `%`.
#![no_main]

use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Uri, Version};
use libfuzzer_sys::fuzz_target;
use liege_protocol::http_policy::{self, Limits};

fuzz_target!(|data: &[u8]| {
    // The first byte picks tight or default limits, so the size checks are reached too.
    let (limits, head) = match data.split_first() {
        Some((&b, rest)) if b & 1 == 1 => {
            (Limits { max_header_count: usize::from(b >> 4), max_head_bytes: usize::from(b) * 4 }, rest)
        }
        Some((_, rest)) => (Limits::default(), rest),
        None => return,
    };
    let mut storage = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut storage);
    if !matches!(parsed.parse(head), Ok(httparse::Status::Complete(_))) {
        return;
    }
    let (Some(method), Some(path), Some(version)) = (parsed.method, parsed.path, parsed.version) else {
        return;
    };
    // What hyper would do before liege's policy sees the head: refuse what `http` cannot represent.
    let Ok(method) = Method::from_bytes(method.as_bytes()) else { return };
    let Ok(uri) = path.parse::<Uri>() else { return };
    let version = if version == 1 { Version::HTTP_11 } else { Version::HTTP_10 };
    let mut headers = HeaderMap::new();
    for header in parsed.headers.iter() {
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(header.name.as_bytes()), HeaderValue::from_bytes(header.value))
        else {
            return;
        };
        headers.append(name, value);
    }

    let verdict = http_policy::check_request(&method, &uri, version, &headers, &limits);
    if let Err(violation) = &verdict {
        assert!(matches!(violation.status(), 400 | 413 | 431 | 501));
        assert!(!violation.reason().is_empty());
    }
    if headers.contains_key(CONTENT_LENGTH) && headers.contains_key(TRANSFER_ENCODING) {
        assert!(verdict.is_err(), "accepted both Content-Length and Transfer-Encoding: {head:?}");
    }
    if verdict.is_ok() {
        assert!(headers.len() <= limits.max_header_count);
        let length = http_policy::content_length(&headers).expect("accepted with a bad Content-Length");
        if headers.contains_key(TRANSFER_ENCODING) {
            assert_eq!(version, Version::HTTP_11);
            assert!(length.is_none());
            let last = headers.get_all(TRANSFER_ENCODING).iter().last().expect("TE present");
            let last = last.as_bytes().split(|&b| b == b',').map(trim).rfind(|e| !e.is_empty());
            assert!(last.is_some_and(|e| e.eq_ignore_ascii_case(b"chunked")), "TE not ending in chunked: {head:?}");
        }
        if version == Version::HTTP_11 {
            assert_eq!(headers.get_all(HOST).iter().count(), 1);
        }
        assert!(headers.get_all(CONTENT_TYPE).iter().count() <= 1);
    }

    let mut key = Vec::new();
    for name in headers.keys() {
        key.clear();
        let name = name.as_str().as_bytes();
        let kept = http_policy::header_name_to_environ_key(name, &mut key);
        if !kept {
            assert!(key.is_empty());
            continue;
        }
        assert!(key.starts_with(b"HTTP_") || key == b"CONTENT_TYPE" || key == b"CONTENT_LENGTH");
        assert!(!key.iter().any(u8::is_ascii_lowercase) && !key.contains(&b'-'));
        if let Some(common) = http_policy::common_environ_key(name) {
            assert_eq!(common.as_bytes(), key.as_slice());
        }
    }

    let raw = path.as_bytes();
    let mut decoded = Vec::new();
    http_policy::percent_decode(raw, &mut decoded);
    assert!(decoded.len() <= raw.len());
    if !raw.contains(&b'%') {
        assert_eq!(decoded, raw);
    }
    let (mut scratch, mut latin1) = (Vec::new(), String::new());
    http_policy::decode_path_latin1(raw, &mut scratch, &mut latin1);
    assert_eq!(latin1.chars().count(), decoded.len());
    assert!(latin1.chars().zip(&decoded).all(|(c, &b)| u32::from(c) == u32::from(b)));
});

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
