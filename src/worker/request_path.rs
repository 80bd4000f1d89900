//! The request path before and after the app: static files, the route tables, `add-header`/`del-header`.
//!
//! Both protocol handlers call [`RequestPath::front`] first with a view of the request's CGI vars; it
//! answers the request itself (a static file, a route's reply, a closed connection) or lets it through to
//! the app with the vars the routes changed. After the app, [`RequestPath::finish`] runs the response,
//! error and final route tables and edits the response headers. Order as in uWSGI: the static file is looked
//! up first on the original PATH_INFO, then the request routes run (a route can refuse, redirect or log the
//! static request too), then the file is sent or the app called.
//!
//! Static files are sent from the worker's event loop: over the uwsgi protocol with sendfile(2); over HTTP
//! as hyper body frames of 256 KiB read with pread (hyper owns the connection's framing and keep-alive, and
//! a socket taken away from it mid-connection could not be given back for the next request). Python is never
//! involved, so a static request never waits for an app thread.

use std::borrow::Cow;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use liege_config::{RouteTable, VassalConfig};

use crate::python::start_response::ResponseHead;
use crate::python::streams::FileSource;
use crate::routing::{Effects, Program, RealFs, Reply, RouteRequest, Verdict};
use crate::static_files::{Conditions, FileFacts, Found, StaticFiles};

/// A view of the request's CGI vars (`PATH_INFO` decoded, `HTTP_*` headers...).
pub trait RequestVars {
    fn get(&self, name: &str) -> Option<Cow<'_, str>>;
    /// Every var, for the routes (only built when there are routes).
    fn all(&self) -> Vec<(String, String)>;
}

pub struct RequestPath {
    static_files: Option<StaticFiles>,
    /// For `static:` route actions when no static option is set (MIME table, no mappings).
    route_files: Option<StaticFiles>,
    routes: Program,
    add_headers: Vec<(HeaderName, HeaderValue)>,
    del_headers: Vec<HeaderName>,
    active: bool,
}

/// What the front decided.
pub enum Front {
    /// Call the app.
    App(AppState),
    /// Answer without the app.
    Respond(Answer),
    /// Close the connection without a response (`break` with no status).
    Close { donotlog: bool },
}

/// A response liege produces itself.
pub struct Answer {
    pub head: ResponseHead,
    pub body: AnswerBody,
    pub donotlog: bool,
}

pub enum AnswerBody {
    Empty,
    Full(Bytes),
    File(FileSource),
}

impl AnswerBody {
    pub fn len(&self) -> u64 {
        match self {
            AnswerBody::Empty => 0,
            AnswerBody::Full(data) => data.len() as u64,
            AnswerBody::File(source) => source.len,
        }
    }
}

/// Carried from the front to the app's response.
#[derive(Default)]
pub struct AppState {
    /// Vars the routes changed, to set in the environ.
    pub overrides: Vec<(String, String)>,
    effects: Effects,
    request: Option<RouteRequest>,
}

impl AppState {
    pub fn donotlog(&self) -> bool {
        self.effects.donotlog
    }
}

impl RequestPath {
    pub fn from_config(config: &VassalConfig) -> Result<Self, String> {
        let settings = &config.request_path;
        let static_files = StaticFiles::compile(settings)?;
        let routes = Program::compile(&settings.routes).map_err(|err| err.to_string())?;
        let route_files = if static_files.is_none() && !settings.routes.is_empty() {
            StaticFiles::compile(&liege_config::RequestPathConfig { check_static_docroot: true, ..Default::default() })?
        } else {
            None
        };
        let mut add_headers = Vec::new();
        for (name, value) in &settings.add_headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|err| format!("add-header {name}: {err}"))?;
            let value = HeaderValue::from_str(value).map_err(|err| format!("add-header {name}: {err}"))?;
            add_headers.push((name, value));
        }
        let mut del_headers = Vec::new();
        for name in &settings.del_headers {
            del_headers
                .push(HeaderName::from_bytes(name.as_bytes()).map_err(|err| format!("del-header {name}: {err}"))?);
        }
        let active = static_files.is_some() || !settings.routes.is_empty();
        let headers = !add_headers.is_empty() || !del_headers.is_empty();
        Ok(Self { static_files, route_files, routes, add_headers, del_headers, active: active || headers })
    }

    /// Nothing configured: the handlers skip every call (the common case costs one branch).
    pub fn is_active(&self) -> bool {
        self.active
    }

    pub fn front(&self, vars: &dyn RequestVars) -> Front {
        let get = |name: &str| vars.get(name);
        let method = get("REQUEST_METHOD").unwrap_or(Cow::Borrowed("GET"));
        let path_info = get("PATH_INFO").unwrap_or(Cow::Borrowed("/"));
        let found = self
            .static_files
            .as_ref()
            .and_then(|files| files.find(&method, &path_info, get("DOCUMENT_ROOT").as_deref()));
        let mut state = AppState::default();
        let any_routes = [RouteTable::Request, RouteTable::Response, RouteTable::Error, RouteTable::Final]
            .into_iter()
            .any(|table| !self.routes.is_empty(table));
        if any_routes {
            let mut request = RouteRequest::new(vars.all());
            let verdict = self.routes.run(RouteTable::Request, &mut request, &RealFs, &mut state.effects);
            apply_effects(&mut state.effects);
            match verdict {
                Verdict::Proceed => {}
                Verdict::Close => return Front::Close { donotlog: state.effects.donotlog },
                Verdict::Reply(reply) => return Front::Respond(self.reply(reply, &state.effects)),
                Verdict::File(path) => {
                    let files = self.static_files.as_ref().or(self.route_files.as_ref());
                    let found = files.and_then(|files| files.find_file(&path));
                    return Front::Respond(match (files, found) {
                        (Some(files), Some(found)) => self.serve(files, found, vars, &state.effects),
                        _ => {
                            tracing::info!("route static file {path} not found");
                            self.reply(plain_reply(404), &state.effects)
                        }
                    });
                }
            }
            state.overrides = request.overrides();
            state.request = Some(request);
        }
        if let (Some(files), Some(found)) = (&self.static_files, found) {
            return Front::Respond(self.serve(files, found, vars, &state.effects));
        }
        Front::App(state)
    }

    fn serve(&self, files: &StaticFiles, found: Found, vars: &dyn RequestVars, effects: &Effects) -> Answer {
        let original = found.path.clone();
        let mime = files.mime().lookup(&original);
        let (sent, encoding) = files.variant(found, vars.get("HTTP_ACCEPT_ENCODING").as_deref());
        let facts = FileFacts::new(&original, &sent, mime, encoding);
        let (if_modified_since, range, if_range) =
            (vars.get("HTTP_IF_MODIFIED_SINCE"), vars.get("HTTP_RANGE"), vars.get("HTTP_IF_RANGE"));
        let (uri, path_info, method) = (vars.get("REQUEST_URI"), vars.get("PATH_INFO"), vars.get("REQUEST_METHOD"));
        let conditions = Conditions {
            head: method.as_deref() == Some("HEAD"),
            if_modified_since: if_modified_since.as_deref(),
            range: range.as_deref(),
            if_range: if_range.as_deref(),
            uri: uri.as_deref().unwrap_or("/"),
            path_info: path_info.as_deref().unwrap_or("/"),
        };
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let plan = files.plan(&facts, &conditions, now);
        let mut headers = HeaderMap::with_capacity(plan.headers.len() + self.add_headers.len());
        for (name, value) in &plan.headers {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.append(*name, value);
            }
        }
        let status = StatusCode::from_u16(plan.status).unwrap_or(StatusCode::OK);
        let body = match plan.body {
            None => AnswerBody::Empty,
            Some((offset, len)) => match std::fs::File::open(&facts.path) {
                Ok(file) => AnswerBody::File(FileSource { file, offset, len }),
                Err(err) => {
                    tracing::warn!("cannot open static file {}: {err}", facts.path.display());
                    return self.reply(plain_reply(403), effects);
                }
            },
        };
        let content_length = Some(match &body {
            AnswerBody::Empty => 0,
            other => other.len(),
        });
        let mut head = ResponseHead { status, reason: None, headers, content_length, close: false };
        self.edit_headers(&mut head.headers, effects);
        Answer { head, body, donotlog: effects.donotlog }
    }

    fn reply(&self, reply: Reply, effects: &Effects) -> Answer {
        let mut headers = HeaderMap::with_capacity(reply.headers.len() + 2);
        for (name, value) in &reply.headers {
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
                headers.append(name, value);
            }
        }
        let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let reason = reply.reason.filter(|r| Some(r.as_str()) != status.canonical_reason()).map(Bytes::from);
        let mut head =
            ResponseHead { status, reason, headers, content_length: Some(reply.body.len() as u64), close: reply.close };
        self.edit_headers(&mut head.headers, effects);
        let body = if reply.body.is_empty() { AnswerBody::Empty } else { AnswerBody::Full(Bytes::from(reply.body)) };
        Answer { head, body, donotlog: effects.donotlog }
    }

    /// `del-header`, then the routes' `clearheaders`/`delheader`, then `add-header` and `addheader`.
    fn edit_headers(&self, headers: &mut HeaderMap, effects: &Effects) {
        for name in &self.del_headers {
            headers.remove(name);
        }
        if effects.clear_headers {
            headers.clear();
        }
        for name in &effects.del_headers {
            headers.remove(name.as_str());
        }
        for (name, value) in &self.add_headers {
            headers.append(name.clone(), value.clone());
        }
        for (name, value) in &effects.add_headers {
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
                headers.append(name, value);
            }
        }
    }

    /// After the app: the response, error (status >= 400) and final tables, and the header edits. A route
    /// reply in the response or error table replaces the app's response.
    pub fn finish(&self, head: &mut ResponseHead, state: &mut AppState) -> Option<Answer> {
        if let Some(request) = state.request.as_mut() {
            request.status = Some(head.status.as_u16());
            let mut tables = vec![RouteTable::Response];
            if head.status.as_u16() >= 400 {
                tables.push(RouteTable::Error);
            }
            for table in tables {
                if self.routes.is_empty(table) {
                    continue;
                }
                let mut effects = Effects::default();
                let verdict = self.routes.run(table, request, &RealFs, &mut effects);
                apply_effects(&mut effects);
                merge(&mut state.effects, effects);
                match verdict {
                    Verdict::Reply(reply) => return Some(self.reply(reply, &state.effects)),
                    Verdict::File(_) | Verdict::Close | Verdict::Proceed => {}
                }
            }
            if !self.routes.is_empty(RouteTable::Final) {
                let mut effects = Effects::default();
                self.routes.run(RouteTable::Final, request, &RealFs, &mut effects);
                apply_effects(&mut effects);
                state.effects.donotlog |= effects.donotlog;
            }
        }
        self.edit_headers(&mut head.headers, &state.effects);
        None
    }
}

fn merge(into: &mut Effects, from: Effects) {
    into.donotlog |= from.donotlog;
    into.add_headers.extend(from.add_headers);
    into.del_headers.extend(from.del_headers);
    into.clear_headers |= from.clear_headers;
}

/// The effects that happen at once: `log:` lines and `chdir:`.
fn apply_effects(effects: &mut Effects) {
    for line in effects.log.drain(..) {
        crate::logging::write_line(line.as_bytes());
    }
    if let Some(dir) = effects.chdir.take() {
        if let Err(err) = std::env::set_current_dir(&dir) {
            tracing::warn!("route chdir to {dir} failed: {err}");
        }
    }
}

fn plain_reply(status: u16) -> Reply {
    let reason = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    let body = format!("{reason}\n");
    Reply {
        status,
        reason: None,
        headers: vec![
            ("Content-Type".into(), "text/plain; charset=utf-8".into()),
            ("Content-Length".into(), body.len().to_string()),
        ],
        body,
        close: false,
    }
}

/// Checked once in the master, so a bad route or static option stops the vassal at startup with its line.
pub fn check(config: &VassalConfig) -> Result<(), String> {
    RequestPath::from_config(config).map(|_| ())
}

/// The CGI vars of an HTTP request, as the environ will hold them.
pub struct HttpVars<'a> {
    pub parts: &'a http::request::Parts,
    pub info: &'a crate::python::environ::ConnectionInfo,
}

impl HttpVars<'_> {
    fn header(&self, cgi: &str) -> Option<Cow<'_, str>> {
        let name = cgi.strip_prefix("HTTP_")?.replace('_', "-").to_ascii_lowercase();
        let mut values = self.parts.headers.get_all(name.as_str()).iter();
        let first = values.next()?;
        let mut text = String::from_utf8_lossy(first.as_bytes()).into_owned();
        for value in values {
            text.push_str(if name == "cookie" { "; " } else { ", " });
            text.push_str(&String::from_utf8_lossy(value.as_bytes()));
        }
        Some(Cow::Owned(text))
    }
}

impl RequestVars for HttpVars<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        let uri = &self.parts.uri;
        Some(match name {
            "REQUEST_METHOD" => Cow::Borrowed(self.parts.method.as_str()),
            "PATH_INFO" => {
                let mut decoded = Vec::new();
                liege_protocol::http_policy::percent_decode(uri.path().as_bytes(), &mut decoded);
                Cow::Owned(String::from_utf8_lossy(&decoded).into_owned())
            }
            "QUERY_STRING" => Cow::Borrowed(uri.query().unwrap_or("")),
            "REQUEST_URI" => Cow::Borrowed(uri.path_and_query().map_or("/", |pq| pq.as_str())),
            "SCRIPT_NAME" => Cow::Borrowed(""),
            "SERVER_PROTOCOL" => {
                Cow::Borrowed(if self.parts.version == http::Version::HTTP_10 { "HTTP/1.0" } else { "HTTP/1.1" })
            }
            "REMOTE_ADDR" => Cow::Borrowed(self.info.remote_addr.as_str()),
            "REMOTE_PORT" => Cow::Borrowed(self.info.remote_port.as_str()),
            "SERVER_NAME" => Cow::Borrowed(self.info.server_name.as_str()),
            "SERVER_PORT" => Cow::Borrowed(self.info.server_port.as_str()),
            "CONTENT_TYPE" => return self.header("HTTP_CONTENT_TYPE"),
            "CONTENT_LENGTH" => return self.header("HTTP_CONTENT_LENGTH"),
            "UWSGI_SCHEME" => Cow::Borrowed("http"),
            other => return self.header(other),
        })
    }

    fn all(&self) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = [
            "REQUEST_METHOD",
            "PATH_INFO",
            "QUERY_STRING",
            "REQUEST_URI",
            "SCRIPT_NAME",
            "SERVER_PROTOCOL",
            "REMOTE_ADDR",
            "REMOTE_PORT",
            "SERVER_NAME",
            "SERVER_PORT",
        ]
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), self.get(name)?.into_owned())))
        .collect();
        for name in self.parts.headers.keys() {
            let cgi = match name.as_str() {
                "content-type" => "CONTENT_TYPE".to_owned(),
                "content-length" => "CONTENT_LENGTH".to_owned(),
                other => format!("HTTP_{}", other.replace('-', "_").to_ascii_uppercase()),
            };
            if let Some(value) = self.header(&format!("HTTP_{}", name.as_str().replace('-', "_").to_ascii_uppercase()))
            {
                vars.push((cgi, value.into_owned()));
            }
        }
        vars
    }
}

/// The CGI vars of a uwsgi-protocol request: what nginx sent.
pub struct UwsgiVars<'a>(pub &'a liege_protocol::uwsgi::Request<'a>);

impl RequestVars for UwsgiVars<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.0.get(name.as_bytes()).map(String::from_utf8_lossy)
    }

    fn all(&self) -> Vec<(String, String)> {
        self.0
            .vars
            .iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }
}

/// A route ended the request with `break` (no status): the connection is closed without a response.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("connection closed by a break route")]
pub struct CloseConnection;

/// Sets the vars the routes changed in the app's environ (`UWSGI_SCHEME` as `wsgi.url_scheme`, as uWSGI).
pub fn apply_overrides(environ: &pyo3::Bound<'_, pyo3::types::PyDict>, overrides: &[(String, String)]) {
    use pyo3::types::PyDictMethods;
    for (name, value) in overrides {
        let name = if name == "UWSGI_SCHEME" { "wsgi.url_scheme" } else { name.as_str() };
        if let Err(err) = environ.set_item(name, value) {
            tracing::warn!("cannot set {name} in the environ: {err}");
        }
    }
}

fn account(answer: &Answer, record: &mut super::record::RequestRecord) {
    record.status = answer.head.status.as_u16();
    record.head_bytes = answer.head.wire_size();
    record.header_count = answer.head.headers.len();
    record.donotlog = answer.donotlog;
}

/// The hyper response for an answer; the record goes with the body, so the log line and the stats are
/// written when the last byte was handed over.
pub fn http_response(
    answer: Answer,
    mut record: super::record::RequestRecord,
) -> http::Response<super::body::ResponseBody> {
    use super::body::ResponseBody;
    use crate::python::response::BodySource;
    account(&answer, &mut record);
    let Answer { head, body, .. } = answer;
    let body = match body {
        AnswerBody::Empty => ResponseBody::new(BodySource::Empty, Some(record)),
        AnswerBody::Full(data) => ResponseBody::new(BodySource::Full(data), Some(record)),
        AnswerBody::File(source) => ResponseBody::file(source, record),
    };
    let mut response = http::Response::new(body);
    *response.status_mut() = head.status;
    *response.headers_mut() = head.headers;
    if head.close {
        response.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(reason) = head.reason {
        if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason) {
            response.extensions_mut().insert(reason);
        }
    }
    response
}

/// A response the HTTP service turns into a closed connection (see [`CloseConnection`]).
pub fn http_close(
    mut record: super::record::RequestRecord,
    donotlog: bool,
) -> http::Response<super::body::ResponseBody> {
    record.donotlog = donotlog;
    let mut response =
        http::Response::new(super::body::ResponseBody::new(crate::python::response::BodySource::Empty, Some(record)));
    response.extensions_mut().insert(CloseConnection);
    response
}
