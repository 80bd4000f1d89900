//! Building the WSGI environ (PEP 3333) for each request, as cheaply as CPython allows.
//!
//! A template dict holding every per-worker constant (`wsgi.version`, `wsgi.errors`, `SCRIPT_NAME`, …) is
//! `copy()`'d (one C call), then only per-request keys are set, with keys that are created once per worker and
//! reused: header names map to interned `HTTP_*` strings through a small cache instead of being upper-cased and
//! allocated for every request. Values are decoded as latin-1 straight from the request bytes, as PEP 3333 asks.

use std::collections::HashMap;

use liege_protocol::http_policy;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::streams::{ErrorStream, FileWrapper, InputStream, RequestBody};

/// Per-worker constants of every environ.
pub struct EnvironSettings {
    pub multithread: bool,
    pub multiprocess: bool,
    /// `wsgi.file_wrapper` is offered (not with `wsgi-disable-file-wrapper`).
    pub file_wrapper: bool,
}

/// Keys set on every request, created once.
struct Keys {
    request_method: Py<PyString>,
    path_info: Py<PyString>,
    query_string: Py<PyString>,
    request_uri: Py<PyString>,
    server_protocol: Py<PyString>,
    remote_addr: Py<PyString>,
    remote_port: Py<PyString>,
    server_name: Py<PyString>,
    server_port: Py<PyString>,
    content_length: Py<PyString>,
    wsgi_input: Py<PyString>,
    wsgi_url_scheme: Py<PyString>,
}

/// Cached values that recur on most requests.
struct Values {
    http11: Py<PyString>,
    http10: Py<PyString>,
    https: Py<PyString>,
    methods: Vec<(http::Method, Py<PyString>)>,
}

/// Most header caches stay tiny; this bound stops a client inventing header names from growing one forever.
const HEADER_KEY_CACHE_LIMIT: usize = 512;

/// Connection-level strings, created on the connection's first request and reused for the rest.
pub struct ConnectionStrings {
    pub remote_addr: Py<PyString>,
    pub remote_port: Py<PyString>,
    pub server_name: Py<PyString>,
    pub server_port: Py<PyString>,
}

/// Addresses of one accepted connection.
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfo {
    /// Unique within the worker process.
    pub id: u64,
    pub remote_addr: String,
    pub remote_port: String,
    pub server_name: String,
    pub server_port: String,
}

impl ConnectionStrings {
    pub fn new(py: Python<'_>, info: &ConnectionInfo) -> Self {
        Self {
            remote_addr: PyString::new(py, &info.remote_addr).unbind(),
            remote_port: PyString::new(py, &info.remote_port).unbind(),
            server_name: PyString::new(py, &info.server_name).unbind(),
            server_port: PyString::new(py, &info.server_port).unbind(),
        }
    }
}

pub struct EnvironBuilder {
    template: Py<PyDict>,
    keys: Keys,
    values: Values,
    http_header_keys: HashMap<http::HeaderName, Option<Py<PyString>>>,
    uwsgi_var_keys: HashMap<Box<[u8]>, Py<PyString>>,
    scratch: Vec<u8>,
}

fn intern(py: Python<'_>, s: &str) -> Py<PyString> {
    PyString::intern(py, s).unbind()
}

/// A `str` from bytes taken as latin-1 (every byte is one code point), as PEP 3333 asks for environ values.
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    // SAFETY: PyUnicode_DecodeLatin1 reads exactly `len` bytes and returns a new reference or NULL with an
    // exception set, which from_owned_ptr_or_err turns into a PyErr.
    unsafe {
        let ptr = pyo3::ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), bytes.len() as isize, std::ptr::null());
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked())
    }
}

impl EnvironBuilder {
    pub fn new(py: Python<'_>, settings: &EnvironSettings) -> PyResult<Self> {
        let template = PyDict::new(py);
        template.set_item("wsgi.version", PyTuple::new(py, [1, 0])?)?;
        template.set_item("wsgi.url_scheme", intern(py, "http"))?;
        template.set_item("wsgi.errors", Py::new(py, ErrorStream)?)?;
        template.set_item("wsgi.multithread", settings.multithread)?;
        template.set_item("wsgi.multiprocess", settings.multiprocess)?;
        template.set_item("wsgi.run_once", false)?;
        // The body is fully received before the app runs, so reading to EOF is always safe (werkzeug and
        // others honour this flag for chunked requests).
        template.set_item("wsgi.input_terminated", true)?;
        if settings.file_wrapper {
            template.set_item("wsgi.file_wrapper", py.get_type::<FileWrapper>())?;
        }
        template.set_item("SCRIPT_NAME", intern(py, ""))?;
        template.set_item("QUERY_STRING", intern(py, ""))?;
        template.set_item("SERVER_SOFTWARE", concat!("liege/", env!("CARGO_PKG_VERSION")))?;
        let keys = Keys {
            request_method: intern(py, "REQUEST_METHOD"),
            path_info: intern(py, "PATH_INFO"),
            query_string: intern(py, "QUERY_STRING"),
            request_uri: intern(py, "REQUEST_URI"),
            server_protocol: intern(py, "SERVER_PROTOCOL"),
            remote_addr: intern(py, "REMOTE_ADDR"),
            remote_port: intern(py, "REMOTE_PORT"),
            server_name: intern(py, "SERVER_NAME"),
            server_port: intern(py, "SERVER_PORT"),
            content_length: intern(py, "CONTENT_LENGTH"),
            wsgi_input: intern(py, "wsgi.input"),
            wsgi_url_scheme: intern(py, "wsgi.url_scheme"),
        };
        let methods = [
            http::Method::GET,
            http::Method::POST,
            http::Method::HEAD,
            http::Method::PUT,
            http::Method::DELETE,
            http::Method::PATCH,
            http::Method::OPTIONS,
        ]
        .into_iter()
        .map(|m| {
            let s = intern(py, m.as_str());
            (m, s)
        })
        .collect();
        let values = Values {
            http11: intern(py, "HTTP/1.1"),
            http10: intern(py, "HTTP/1.0"),
            https: intern(py, "https"),
            methods,
        };
        Ok(Self {
            template: template.unbind(),
            keys,
            values,
            http_header_keys: HashMap::new(),
            uwsgi_var_keys: HashMap::new(),
            scratch: Vec::with_capacity(64),
        })
    }

    fn method<'py>(&self, py: Python<'py>, method: &http::Method) -> PyResult<Bound<'py, PyString>> {
        match self.values.methods.iter().find(|(m, _)| m == method) {
            Some((_, s)) => Ok(s.bind(py).clone()),
            None => latin1(py, method.as_str().as_bytes()),
        }
    }

    /// The environ key for a header (`HTTP_USER_AGENT`, `CONTENT_TYPE`, …), or `None` for names the policy
    /// drops (those containing `_`).
    fn header_key<'py>(
        cache: &mut HashMap<http::HeaderName, Option<Py<PyString>>>,
        scratch: &mut Vec<u8>,
        py: Python<'py>,
        name: &http::HeaderName,
    ) -> Option<Bound<'py, PyString>> {
        if let Some(cached) = cache.get(name) {
            return cached.as_ref().map(|k| k.bind(py).clone());
        }
        scratch.clear();
        let key = http_policy::header_name_to_environ_key(name.as_str().as_bytes(), scratch)
            .then(|| String::from_utf8_lossy(scratch).into_owned())
            .map(|k| PyString::intern(py, &k));
        if cache.len() < HEADER_KEY_CACHE_LIMIT {
            cache.insert(name.clone(), key.as_ref().map(|k| k.clone().unbind()));
        }
        key
    }

    /// The environ of an HTTP request.
    pub fn http<'py>(
        &mut self,
        py: Python<'py>,
        head: &http::request::Parts,
        connection: &ConnectionStrings,
        body: RequestBody,
    ) -> PyResult<Bound<'py, PyDict>> {
        let environ = self.template.bind(py).copy()?;
        let k = &self.keys;
        environ.set_item(k.request_method.bind(py), self.method(py, &head.method)?)?;
        let uri = &head.uri;
        self.scratch.clear();
        http_policy::percent_decode(uri.path().as_bytes(), &mut self.scratch);
        environ.set_item(k.path_info.bind(py), latin1(py, &self.scratch)?)?;
        if let Some(query) = uri.query() {
            environ.set_item(k.query_string.bind(py), latin1(py, query.as_bytes())?)?;
        }
        let request_uri = uri.path_and_query().map_or("/", |pq| pq.as_str());
        environ.set_item(k.request_uri.bind(py), latin1(py, request_uri.as_bytes())?)?;
        let protocol = if head.version == http::Version::HTTP_10 { &self.values.http10 } else { &self.values.http11 };
        environ.set_item(k.server_protocol.bind(py), protocol.bind(py))?;
        environ.set_item(k.remote_addr.bind(py), connection.remote_addr.bind(py))?;
        environ.set_item(k.remote_port.bind(py), connection.remote_port.bind(py))?;
        let (server_name, server_port) = split_host(head.headers.get(http::header::HOST).map(|h| h.as_bytes()));
        match server_name {
            Some(name) => environ.set_item(k.server_name.bind(py), latin1(py, name)?)?,
            None => environ.set_item(k.server_name.bind(py), connection.server_name.bind(py))?,
        }
        match server_port {
            Some(port) => environ.set_item(k.server_port.bind(py), latin1(py, port)?)?,
            None => environ.set_item(k.server_port.bind(py), connection.server_port.bind(py))?,
        }
        let content_length_given = head.headers.contains_key(http::header::CONTENT_LENGTH);
        for name in head.headers.keys() {
            if name == http::header::CONTENT_LENGTH {
                continue;
            }
            let Some(key) = Self::header_key(&mut self.http_header_keys, &mut self.scratch, py, name) else { continue };
            let mut values = head.headers.get_all(name).iter();
            let Some(first) = values.next() else { continue };
            match values.next() {
                None => environ.set_item(key, latin1(py, first.as_bytes())?)?,
                Some(second) => {
                    // Repeated headers are joined (RFC 9110 §5.3); cookies with "; " as RFC 6265 §5.4 wants.
                    let separator: &[u8] = if name == http::header::COOKIE { b"; " } else { b", " };
                    let mut joined = Vec::with_capacity(first.len() + second.len() + 2);
                    for (i, value) in [first, second].into_iter().chain(values).enumerate() {
                        if i > 0 {
                            joined.extend_from_slice(separator);
                        }
                        joined.extend_from_slice(value.as_bytes());
                    }
                    environ.set_item(key, latin1(py, &joined)?)?;
                }
            }
        }
        // The body is already complete, so its real length is known even for chunked requests; frameworks
        // (Django among them) read nothing when CONTENT_LENGTH is missing.
        if content_length_given || !body.is_empty() {
            let mut buf = itoa::Buffer::new();
            environ.set_item(k.content_length.bind(py), buf.format(body.len()))?;
        }
        environ.set_item(k.wsgi_input.bind(py), Py::new(py, InputStream::new(body))?)?;
        Ok(environ)
    }

    /// The environ of a uwsgi-protocol request: the vars nginx sent, as they are. The caller passes them
    /// without `UWSGI_*` magic vars (liege never loads code or switches apps because a request asked).
    pub fn uwsgi<'py, 'a>(
        &mut self,
        py: Python<'py>,
        vars: impl Iterator<Item = (&'a [u8], &'a [u8])>,
        https: bool,
        body: RequestBody,
    ) -> PyResult<Bound<'py, PyDict>> {
        let environ = self.template.bind(py).copy()?;
        for (key, value) in vars {
            let key_str = match self.uwsgi_var_keys.get(key) {
                Some(k) => k.bind(py).clone(),
                None => {
                    let k = latin1(py, key)?;
                    if self.uwsgi_var_keys.len() < HEADER_KEY_CACHE_LIMIT {
                        let interned = PyString::intern(py, &k.to_string_lossy());
                        self.uwsgi_var_keys.insert(key.into(), interned.clone().unbind());
                        interned
                    } else {
                        k
                    }
                }
            };
            environ.set_item(key_str, latin1(py, value)?)?;
        }
        if https {
            environ.set_item(self.keys.wsgi_url_scheme.bind(py), self.values.https.bind(py))?;
        }
        if !body.is_empty() {
            let mut buf = itoa::Buffer::new();
            environ.set_item(self.keys.content_length.bind(py), buf.format(body.len()))?;
        }
        environ.set_item(self.keys.wsgi_input.bind(py), Py::new(py, InputStream::new(body))?)?;
        Ok(environ)
    }
}

/// Splits a Host header value into name and port (`example.com:8080`, `[::1]:80`).
pub fn split_host(host: Option<&[u8]>) -> (Option<&[u8]>, Option<&[u8]>) {
    let Some(host) = host.filter(|h| !h.is_empty()) else { return (None, None) };
    let port_at = if host.first() == Some(&b'[') {
        memchr::memchr(b']', host).and_then(|end| (host.get(end + 1) == Some(&b':')).then_some(end + 1))
    } else {
        memchr::memrchr(b':', host)
    };
    match port_at {
        Some(i) => (Some(&host[..i]), Some(&host[i + 1..])),
        None => (Some(host), None),
    }
}

/// Which app of a vassal serves a request, and the `SCRIPT_NAME` / `PATH_INFO` it sees: uWSGI's rules
/// (core/protocol.c `manage_script_name`, core/utils.c `uwsgi_get_app_id`), as a pure function.
///
/// `mountpoints[i]` is app `i`'s mountpoint (`""` for the `module` / `wsgi-file` app).
///
/// 1. With `manage-script-name`, the longest mountpoint that prefixes `PATH_INFO` at a `/` boundary (or is
///    all of it) wins; a trailing slash of the mountpoint is ignored for matching, and an empty or `/`
///    mountpoint never matches (uWSGI starts from length 0 and wants strictly longer). `SCRIPT_NAME` becomes
///    the mountpoint as written and `PATH_INFO` the rest: `/app` on `/app/x` gives `/app` + `/x`; `/app` on
///    `/app` gives `/app` + `""`; `/app/` on `/app/x` gives `/app/` + `x`. For `/app/` on exactly `/app`
///    uWSGI computes a negative length (reads out of bounds); liege gives `/app` + `""` instead.
/// 2. Otherwise the app whose mountpoint equals `SCRIPT_NAME` (what nginx sent with
///    `uwsgi_param SCRIPT_NAME`, `""` over HTTP) is chosen.
/// 3. Else the default app (`default`, `None` with `no-default-app`), with the environ as it was.
/// 4. Else no app: uWSGI answers 500.
pub fn route(
    mountpoints: &[&str],
    default: Option<usize>,
    manage_script_name: bool,
    script_name: &str,
    path_info: &str,
) -> Route {
    if manage_script_name && !path_info.is_empty() {
        let mut best: Option<(usize, usize)> = None;
        for (index, mountpoint) in mountpoints.iter().enumerate() {
            let matched = mountpoint.strip_suffix('/').unwrap_or(mountpoint);
            let longer = best.map_or(0, |(_, length)| length);
            if matched.len() <= longer || !path_info.starts_with(matched) {
                continue;
            }
            if path_info.len() > matched.len() && path_info.as_bytes()[matched.len()] != b'/' {
                continue;
            }
            best = Some((index, matched.len()));
        }
        if let Some((index, matched)) = best {
            let mountpoint = mountpoints[index];
            let (script_name, path_info) = match path_info.get(mountpoint.len()..) {
                Some(rest) => (mountpoint.to_owned(), rest.to_owned()),
                None => (path_info[..matched].to_owned(), String::new()),
            };
            return Route { app: Some(index), rewrite: Some((script_name, path_info)) };
        }
    }
    let app = mountpoints.iter().position(|mountpoint| *mountpoint == script_name).or(default);
    Route { app, rewrite: None }
}

/// The answer of [`route`].
#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    /// `None`: no app serves this request (a 500, as uWSGI).
    pub app: Option<usize>,
    /// New `SCRIPT_NAME` and `PATH_INFO`, when `manage-script-name` moved a prefix.
    pub rewrite: Option<(String, String)>,
}

#[cfg(test)]
mod route_tests {
    use super::{route, Route};

    fn rewritten(app: usize, script_name: &str, path_info: &str) -> Route {
        Route { app: Some(app), rewrite: Some((script_name.into(), path_info.into())) }
    }

    #[test]
    fn longest_prefix_at_a_slash_boundary() {
        let mounts = ["", "/app", "/app/admin", "/apple"];
        let go = |path| route(&mounts, Some(0), true, "", path);
        assert_eq!(go("/app/x"), rewritten(1, "/app", "/x"));
        assert_eq!(go("/app"), rewritten(1, "/app", ""));
        assert_eq!(go("/app/"), rewritten(1, "/app", "/"));
        assert_eq!(go("/app/admin/users"), rewritten(2, "/app/admin", "/users"));
        assert_eq!(go("/app/administrator"), rewritten(1, "/app", "/administrator"));
        assert_eq!(go("/apple/pie"), rewritten(3, "/apple", "/pie"));
        assert_eq!(go("/appl"), Route { app: Some(0), rewrite: None });
        assert_eq!(go("/"), Route { app: Some(0), rewrite: None });
    }

    #[test]
    fn trailing_slash_mountpoints_as_uwsgi() {
        let mounts = ["/app/", "/"];
        assert_eq!(route(&mounts, Some(0), true, "", "/app/x"), rewritten(0, "/app/", "x"));
        assert_eq!(route(&mounts, Some(0), true, "", "/app"), rewritten(0, "/app", ""));
        // "/" never matches by prefix; the default (first) app serves the rest.
        assert_eq!(route(&mounts, Some(0), true, "", "/other"), Route { app: Some(0), rewrite: None });
    }

    #[test]
    fn script_name_from_the_proxy_selects_the_app() {
        let mounts = ["", "/blog"];
        assert_eq!(route(&mounts, Some(0), false, "/blog", "/post/1"), Route { app: Some(1), rewrite: None });
        assert_eq!(route(&mounts, Some(0), false, "", "/blog/post/1"), Route { app: Some(0), rewrite: None });
        // manage-script-name on, the proxy already stripped the prefix: PATH_INFO matches nothing, SCRIPT_NAME does.
        assert_eq!(route(&mounts, Some(0), true, "/blog", "/post/1"), Route { app: Some(1), rewrite: None });
    }

    #[test]
    fn no_default_app_means_no_app() {
        let mounts = ["/a", "/b"];
        assert_eq!(route(&mounts, None, true, "", "/c"), Route { app: None, rewrite: None });
        assert_eq!(route(&mounts, Some(0), true, "", "/c"), Route { app: Some(0), rewrite: None });
        assert_eq!(route(&mounts, None, true, "", ""), Route { app: None, rewrite: None });
    }
}

#[cfg(test)]
mod tests {
    use super::split_host;

    #[test]
    fn host_header_splits_into_name_and_port() {
        assert_eq!(split_host(Some(b"example.com:8080")), (Some(&b"example.com"[..]), Some(&b"8080"[..])));
        assert_eq!(split_host(Some(b"example.com")), (Some(&b"example.com"[..]), None));
        assert_eq!(split_host(Some(b"[::1]:80")), (Some(&b"[::1]"[..]), Some(&b"80"[..])));
        assert_eq!(split_host(Some(b"[::1]")), (Some(&b"[::1]"[..]), None));
        assert_eq!(split_host(None), (None, None));
    }
}
