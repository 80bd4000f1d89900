//! The request log: which requests are logged (`disable-logging`, `log-4xx`, `log-5xx`, `log-slow`) and how
//! each line looks (uWSGI's default line, a `logformat` template, or JSON lines).
//!
//! Sans-I/O: [`RequestLog`] is compiled once per worker from the config, then renders [`Entry`] values into a
//! byte buffer the caller owns (the worker's batched request-log buffer), so a line costs no allocation.
//! Local-time text (`%(ctime)`, `%(ltime)`) comes through the [`Clock`] trait: the worker's clock caches it
//! per second, tests use a fixed one.
//!
//! **Templates** follow uWSGI's `core/logging.c` (`uwsgi_build_log_format`, `uwsgi_logit_lf`, the
//! `uwsgi_lf_*` functions): `%(name)` is a variable, everything else is copied as it is. There is no `%%`
//! escape at this level in uWSGI either: in a config *file* `%%` is the magic variable for `%` and the config
//! crate has already turned it into `%`; on the command line `%%` stays `%%`, as with uWSGI. A variable whose
//! value is empty (no User-Agent, no query string...) is written `-`, as uWSGI does. An unknown name is, for
//! uWSGI, a "logvar" the app may set with `uwsgi.set_logvar()`; liege has no logvars, so such a name always
//! logs `-` and [`RequestLog::new`] returns a warning for it (uWSGI accepts it silently; a typo deserves a
//! word at startup, but not a refusal to start). Unlike uWSGI, control bytes in values are written as `\xNN`,
//! so a request var with a newline can not forge a second log line.
//!
//! **Request vars** (`%(uagent)`, `%(referer)`, `%(host)`, `%(user)`, `%(var.NAME)`) are copied out of the
//! request only when the format uses them: [`RequestLog::captures`] lists them once, the protocol handlers
//! copy just those into a [`Captured`], and the default format captures nothing. Over HTTP, `NAME` is the CGI
//! name uWSGI's http parser would have produced (`HTTP_USER_AGENT`, `REMOTE_ADDR`, `PATH_INFO`, ...).

use std::io::Write;
use std::time::Duration;

use liege_config::{LogFormat, VassalConfig};

pub use crate::logging::Clock;

/// Which requests get a line. uWSGI's `log_request()`: a request is logged when logging is enabled, *or*
/// when one of the conditions matches; the conditions exist to log some requests while `disable-logging`
/// is on, and with logging enabled they change nothing (no request is logged twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Filter {
    /// Logging enabled (not `disable-logging`).
    pub all: bool,
    pub status_4xx: bool,
    pub status_5xx: bool,
    /// `log-slow`: requests that took at least this long (compared in whole milliseconds, as uWSGI does).
    pub slow: Option<Duration>,
    /// `log-zero`: responses without a body.
    pub zero: bool,
    /// `log-big`: responses of at least this many body bytes.
    pub big: Option<u64>,
}

impl Filter {
    pub fn from_config(config: &VassalConfig) -> Self {
        Self {
            all: !config.disable_logging,
            status_4xx: config.log_4xx,
            status_5xx: config.log_5xx,
            slow: config.log_slow,
            zero: config.logs.zero,
            big: config.logs.big,
        }
    }

    /// True when no request can ever be logged (nothing to capture, nothing to format).
    pub fn is_never(&self) -> bool {
        !self.all && !self.status_4xx && !self.status_5xx && self.slow.is_none() && !self.zero && self.big.is_none()
    }

    /// `rsize` is the response body's size in bytes (uWSGI's `response_size`).
    pub fn wants(&self, status: u16, elapsed: Duration, rsize: u64) -> bool {
        self.all
            || (self.zero && rsize == 0)
            || self.big.is_some_and(|big| rsize >= big)
            || (self.status_4xx && (400..=499).contains(&status))
            || (self.status_5xx && (500..=599).contains(&status))
            || self.slow.is_some_and(|slow| elapsed.as_millis() >= slow.as_millis())
    }
}

/// A template variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Uri,
    Method,
    Addr,
    Proto,
    Status,
    /// Response body bytes.
    Rsize,
    /// Response header bytes.
    Hsize,
    /// Headers + body.
    Size,
    /// Request body length (uWSGI's `post_cl`).
    Cl,
    Micros,
    Msecs,
    Secs,
    /// Start of the request: unix milliseconds, microseconds, seconds.
    Tmsecs,
    Tmicros,
    Time,
    Ltime,
    Ctime,
    /// Now (when the line is written), unix seconds.
    Epoch,
    Pid,
    Wid,
    Switches,
    Vars,
    Core,
    Vsz,
    Rss,
    VszM,
    RssM,
    Pktsize,
    Modifier1,
    Modifier2,
    /// Number of response headers.
    Headers,
    /// A captured request var, by index into [`RequestLog::captures`].
    Captured(usize),
    /// Something liege does not have (logvars, metrics, I/O error counters): always `-`.
    Missing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunk {
    Literal(Box<[u8]>),
    Var(Var),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Format {
    Default,
    Json { host: usize, uagent: usize, referer: usize },
    Template(Vec<Chunk>),
}

/// Where an HTTP request's CGI var comes from (what uWSGI's http parser would have put in the vars).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpSource {
    Method,
    RequestUri,
    /// The percent-decoded path.
    PathInfo,
    QueryString,
    Protocol,
    RemoteAddr,
    RemotePort,
    ServerName,
    ServerPort,
    /// Always empty (liege mounts the app at the root).
    ScriptName,
    Header(http::HeaderName),
    /// No such var on an HTTP request (`REMOTE_USER`, `HTTP_X_A_B` with a name no header can map to...).
    Absent,
}

impl HttpSource {
    fn for_var(name: &[u8]) -> Self {
        match name {
            b"REQUEST_METHOD" => Self::Method,
            b"REQUEST_URI" => Self::RequestUri,
            b"PATH_INFO" => Self::PathInfo,
            b"QUERY_STRING" => Self::QueryString,
            b"SERVER_PROTOCOL" => Self::Protocol,
            b"REMOTE_ADDR" => Self::RemoteAddr,
            b"REMOTE_PORT" => Self::RemotePort,
            b"SERVER_NAME" => Self::ServerName,
            b"SERVER_PORT" => Self::ServerPort,
            b"SCRIPT_NAME" => Self::ScriptName,
            b"CONTENT_TYPE" => Self::Header(http::header::CONTENT_TYPE),
            b"CONTENT_LENGTH" => Self::Header(http::header::CONTENT_LENGTH),
            _ => match name.strip_prefix(b"HTTP_") {
                // HTTP_X_REQUEST_ID is the header x-request-id (liege drops headers with `_` in their name).
                Some(header) if !header.is_empty() => {
                    let lower: Vec<u8> =
                        header.iter().map(|&b| if b == b'_' { b'-' } else { b.to_ascii_lowercase() }).collect();
                    http::HeaderName::from_bytes(&lower).map_or(Self::Absent, Self::Header)
                }
                _ => Self::Absent,
            },
        }
    }
}

/// A request var the format needs, copied per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// The CGI name (`HTTP_USER_AGENT`), looked up as it is in uwsgi-protocol vars.
    pub name: Box<[u8]>,
    pub http: HttpSource,
}

/// The captured values of one request, in [`RequestLog::captures`] order, in one buffer. Empty (and
/// allocation-free) when the format needs none.
#[derive(Debug, Default)]
pub struct Captured {
    data: Vec<u8>,
    /// `(start, end)` in `data`; `None` when the request had no such var.
    spans: Vec<Option<(u32, u32)>>,
}

impl Captured {
    fn with_capacity(vars: usize) -> Self {
        Self { data: Vec::with_capacity(vars * 32), spans: Vec::with_capacity(vars) }
    }

    fn push(&mut self, value: Option<&[u8]>) {
        match value {
            Some(value) => {
                let start = self.data.len() as u32;
                self.data.extend_from_slice(value);
                self.spans.push(Some((start, self.data.len() as u32)));
            }
            None => self.spans.push(None),
        }
    }

    /// A header's values, repeated ones joined with `, ` (`; ` for cookies) as the WSGI environ has them.
    fn push_header(&mut self, headers: &http::HeaderMap, name: &http::HeaderName) {
        let mut values = headers.get_all(name).iter();
        let Some(first) = values.next() else { return self.push(None) };
        let start = self.data.len() as u32;
        self.data.extend_from_slice(first.as_bytes());
        for value in values {
            self.data.extend_from_slice(if name == http::header::COOKIE { b"; " } else { b", " });
            self.data.extend_from_slice(value.as_bytes());
        }
        self.spans.push(Some((start, self.data.len() as u32)));
    }

    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let (start, end) = (*self.spans.get(index)?)?;
        self.data.get(start as usize..end as usize)
    }
}

/// Resident and virtual size of the worker, for `%(rss)` and friends.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss: u64,
    pub vsz: u64,
}

/// Everything a line can show about one finished request.
pub struct Entry<'a> {
    pub pid: u32,
    pub wid: u32,
    /// Requests served by this worker / by all workers (the default line's `req: N/M`).
    pub worker_requests: u64,
    pub total_requests: u64,
    pub addr: &'a str,
    /// `METHOD URI`.
    pub request_line: &'a str,
    pub proto: &'a str,
    pub status: u16,
    pub rsize: u64,
    pub hsize: u64,
    pub cl: u64,
    pub vars: usize,
    pub headers: usize,
    /// Request vars packet / head size, for `%(pktsize)`.
    pub pktsize: usize,
    /// The default line's "in N bytes".
    pub head_in: usize,
    pub modifier2: u8,
    /// Start of the request, unix microseconds.
    pub start_us: u64,
    pub elapsed: Duration,
    pub captured: &'a Captured,
    /// Present when [`RequestLog::needs_memory`].
    pub memory: Option<Memory>,
}

impl Entry<'_> {
    fn method(&self) -> &str {
        self.request_line.split_once(' ').map_or(self.request_line, |(method, _)| method)
    }

    fn uri(&self) -> &str {
        self.request_line.split_once(' ').map_or("", |(_, uri)| uri)
    }
}

/// The compiled request log of a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLog {
    pub filter: Filter,
    format: Format,
    captures: Vec<Capture>,
    /// `log-x-forwarded-for`: the capture holding X-Forwarded-For, shown as the address when present.
    forwarded_for: Option<usize>,
    needs_memory: bool,
    needs_totals: bool,
    /// `log-format-strftime`: the rendered template line goes through strftime.
    strftime: bool,
}

impl RequestLog {
    /// Compiles the config's format; the strings returned are warnings worth showing once at startup.
    pub fn new(config: &VassalConfig) -> (Self, Vec<String>) {
        let (mut log, warnings) = Self::compile(&config.log_format, Filter::from_config(config));
        log.strftime = config.logs.format_strftime && matches!(log.format, Format::Template(_));
        if config.log_x_forwarded_for && !log.filter.is_never() {
            log.forwarded_for = Some(capture_index(&mut log.captures, b"HTTP_X_FORWARDED_FOR"));
        }
        (log, warnings)
    }

    pub fn compile(format: &LogFormat, filter: Filter) -> (Self, Vec<String>) {
        let mut captures = Vec::new();
        let mut warnings = Vec::new();
        let format = match format {
            LogFormat::Default => Format::Default,
            LogFormat::Json => Format::Json {
                host: capture_index(&mut captures, b"HTTP_HOST"),
                uagent: capture_index(&mut captures, b"HTTP_USER_AGENT"),
                referer: capture_index(&mut captures, b"HTTP_REFERER"),
            },
            LogFormat::Template(template) => Format::Template(compile_template(template, &mut captures, &mut warnings)),
        };
        let vars = |wanted: &[Var]| match &format {
            Format::Template(chunks) => chunks.iter().any(|c| matches!(c, Chunk::Var(v) if wanted.contains(v))),
            _ => false,
        };
        let needs_memory = vars(&[Var::Rss, Var::Vsz, Var::RssM, Var::VszM]);
        let needs_totals = format == Format::Default;
        if filter.is_never() {
            // Nothing is ever logged: copy nothing per request.
            captures.clear();
        }
        (Self { filter, format, captures, forwarded_for: None, needs_memory, needs_totals, strftime: false }, warnings)
    }

    /// The request vars to copy into each request's [`Captured`] (empty for the default format).
    #[cfg(test)]
    pub fn captures(&self) -> &[Capture] {
        &self.captures
    }

    /// The format shows the worker's memory (read from /proc per logged request).
    pub fn needs_memory(&self) -> bool {
        self.needs_memory
    }

    /// The format shows the request counters (the default line).
    pub fn needs_totals(&self) -> bool {
        self.needs_totals
    }

    /// Copies the needed vars of an HTTP request.
    pub fn capture_http(
        &self,
        head: &http::request::Parts,
        remote_addr: &str,
        remote_port: &str,
        local_name: &str,
        local_port: &str,
    ) -> Captured {
        if self.captures.is_empty() {
            return Captured::default();
        }
        let mut captured = Captured::with_capacity(self.captures.len());
        let host = || crate::python::environ::split_host(head.headers.get(http::header::HOST).map(|h| h.as_bytes()));
        for capture in &self.captures {
            match &capture.http {
                HttpSource::Method => captured.push(Some(head.method.as_str().as_bytes())),
                HttpSource::RequestUri => {
                    captured.push(Some(head.uri.path_and_query().map_or("/", |pq| pq.as_str()).as_bytes()))
                }
                HttpSource::PathInfo => {
                    let mut decoded = Vec::new();
                    liege_protocol::http_policy::percent_decode(head.uri.path().as_bytes(), &mut decoded);
                    captured.push(Some(&decoded));
                }
                HttpSource::QueryString => captured.push(Some(head.uri.query().unwrap_or("").as_bytes())),
                HttpSource::Protocol => {
                    captured.push(Some(if head.version == http::Version::HTTP_10 { b"HTTP/1.0" } else { b"HTTP/1.1" }))
                }
                HttpSource::RemoteAddr => captured.push(Some(remote_addr.as_bytes())),
                HttpSource::RemotePort => captured.push(Some(remote_port.as_bytes())),
                HttpSource::ServerName => captured.push(Some(host().0.unwrap_or(local_name.as_bytes()))),
                HttpSource::ServerPort => captured.push(Some(host().1.unwrap_or(local_port.as_bytes()))),
                HttpSource::ScriptName => captured.push(Some(b"")),
                HttpSource::Header(name) => captured.push_header(&head.headers, name),
                HttpSource::Absent => captured.push(None),
            }
        }
        captured
    }

    /// Copies the needed vars of a uwsgi-protocol request (`get` looks a var up in the packet).
    pub fn capture_vars<'a>(&self, get: impl Fn(&[u8]) -> Option<&'a [u8]>) -> Captured {
        if self.captures.is_empty() {
            return Captured::default();
        }
        let mut captured = Captured::with_capacity(self.captures.len());
        for capture in &self.captures {
            captured.push(get(&capture.name));
        }
        captured
    }

    /// Appends the line for `entry` (without the newline) to `out`.
    ///
    /// With `log-x-forwarded-for` the address is the request's X-Forwarded-For header, whole, when it has
    /// one (uWSGI takes the header's value as the request's address for its logs; the app's REMOTE_ADDR is
    /// unchanged).
    pub fn write(&self, entry: &Entry<'_>, clock: &mut impl Clock, out: &mut Vec<u8>) {
        let forwarded = self.forwarded_for.and_then(|index| entry.captured.get(index));
        let forwarded = forwarded.and_then(|value| std::str::from_utf8(value).ok());
        let with_forwarded;
        let entry = match forwarded {
            Some(addr) => {
                with_forwarded = Entry { addr, ..*entry };
                &with_forwarded
            }
            None => entry,
        };
        match &self.format {
            Format::Default => write_default(entry, clock, out),
            Format::Json { host, uagent, referer } => write_json(entry, [*host, *uagent, *referer], out),
            Format::Template(chunks) => {
                let start = out.len();
                for chunk in chunks {
                    match chunk {
                        Chunk::Literal(text) => out.extend_from_slice(text),
                        Chunk::Var(var) => write_var(*var, entry, clock, out),
                    }
                }
                if self.strftime {
                    // uWSGI's `logformat_strftime`: the whole rendered line is the strftime format.
                    let line = String::from_utf8_lossy(&out[start..]).into_owned();
                    out.truncate(start);
                    out.extend_from_slice(&crate::logging::strftime_now(&line));
                }
            }
        }
    }
}

fn capture_index(captures: &mut Vec<Capture>, name: &[u8]) -> usize {
    if let Some(index) = captures.iter().position(|c| &*c.name == name) {
        return index;
    }
    captures.push(Capture { name: name.into(), http: HttpSource::for_var(name) });
    captures.len() - 1
}

/// uWSGI's parse: `%(name)` is a variable; a `%(` without its `)`, and `%()`, stay literal.
fn compile_template(template: &str, captures: &mut Vec<Capture>, warnings: &mut Vec<String>) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut literal: Vec<u8> = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find("%(") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')').filter(|&end| end > 0) else {
            // Not a variable: keep the `%(` and scan on after it.
            literal.extend_from_slice(&rest.as_bytes()[..at + 2]);
            rest = after;
            continue;
        };
        literal.extend_from_slice(&rest.as_bytes()[..at]);
        if !literal.is_empty() {
            chunks.push(Chunk::Literal(std::mem::take(&mut literal).into_boxed_slice()));
        }
        chunks.push(Chunk::Var(variable(&after[..end], captures, warnings)));
        rest = &after[end + 1..];
    }
    literal.extend_from_slice(rest.as_bytes());
    if !literal.is_empty() {
        chunks.push(Chunk::Literal(literal.into_boxed_slice()));
    }
    chunks
}

fn variable(name: &str, captures: &mut Vec<Capture>, warnings: &mut Vec<String>) -> Var {
    let captured = |captures: &mut Vec<Capture>, var: &str| Var::Captured(capture_index(captures, var.as_bytes()));
    match name {
        "uri" => Var::Uri,
        "method" => Var::Method,
        "addr" => Var::Addr,
        "proto" => Var::Proto,
        "user" => captured(captures, "REMOTE_USER"),
        "host" => captured(captures, "HTTP_HOST"),
        "uagent" => captured(captures, "HTTP_USER_AGENT"),
        "referer" => captured(captures, "HTTP_REFERER"),
        "status" => Var::Status,
        "rsize" => Var::Rsize,
        "hsize" => Var::Hsize,
        "size" => Var::Size,
        "cl" => Var::Cl,
        "micros" => Var::Micros,
        "msecs" => Var::Msecs,
        "secs" => Var::Secs,
        "tmsecs" => Var::Tmsecs,
        "tmicros" => Var::Tmicros,
        "time" => Var::Time,
        // uWSGI's ftime is ltime unless logformat-strftime is set, which liege does not have.
        "ltime" | "ftime" => Var::Ltime,
        "ctime" => Var::Ctime,
        "epoch" => Var::Epoch,
        "pid" => Var::Pid,
        "wid" => Var::Wid,
        "switches" => Var::Switches,
        "vars" => Var::Vars,
        "core" => Var::Core,
        "vsz" => Var::Vsz,
        "rss" => Var::Rss,
        "vszM" => Var::VszM,
        "rssM" => Var::RssM,
        "pktsize" => Var::Pktsize,
        "modifier1" => Var::Modifier1,
        "modifier2" => Var::Modifier2,
        "headers" => Var::Headers,
        "werr" | "rerr" | "ioerr" => {
            warnings.push(format!("logformat: %({name}) is not tracked by liege and always logs '-'"));
            Var::Missing
        }
        _ => {
            if let Some(var) = name.strip_prefix("var.").filter(|var| !var.is_empty()) {
                return captured(captures, var);
            }
            if name.starts_with("metric.") {
                warnings.push(format!("logformat: %({name}): liege has no metrics; it always logs '-'"));
            } else {
                warnings.push(format!(
                    "logformat: unknown variable %({name}) always logs '-' (uWSGI reads it as a logvar set by uwsgi.set_logvar(), which liege does not have)"
                ));
            }
            Var::Missing
        }
    }
}

fn number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A text value of a template: `-` when empty (uWSGI), control bytes as `\xNN` (one request, one line).
fn text(out: &mut Vec<u8>, value: &[u8]) {
    if value.is_empty() {
        out.push(b'-');
        return;
    }
    if !value.iter().any(|&b| b < 0x20 || b == 0x7f) {
        out.extend_from_slice(value);
        return;
    }
    for &b in value {
        if b < 0x20 || b == 0x7f {
            let _ = write!(out, "\\x{b:02x}");
        } else {
            out.push(b);
        }
    }
}

fn write_var(var: Var, e: &Entry<'_>, clock: &mut impl Clock, out: &mut Vec<u8>) {
    let start_secs = e.start_us / 1_000_000;
    let micros = e.elapsed.as_micros() as u64;
    let memory = e.memory.unwrap_or_default();
    match var {
        Var::Uri => text(out, e.uri().as_bytes()),
        Var::Method => text(out, e.method().as_bytes()),
        Var::Addr => text(out, e.addr.as_bytes()),
        Var::Proto => text(out, e.proto.as_bytes()),
        Var::Status => number(out, e.status),
        Var::Rsize => number(out, e.rsize),
        Var::Hsize => number(out, e.hsize),
        Var::Size => number(out, e.rsize + e.hsize),
        Var::Cl => number(out, e.cl),
        Var::Micros => number(out, micros),
        Var::Msecs => number(out, micros / 1000),
        // uwsgi_float2str: printf("%f") of a C float.
        Var::Secs => {
            let _ = write!(out, "{:.6}", micros as f32 / 1_000_000.0);
        }
        Var::Tmsecs => number(out, e.start_us / 1000),
        Var::Tmicros => number(out, e.start_us),
        Var::Time => number(out, start_secs),
        Var::Ltime => clock.ltime(start_secs, out),
        Var::Ctime => clock.ctime(start_secs, out),
        Var::Epoch => number(out, clock.now_secs()),
        Var::Pid => number(out, e.pid),
        Var::Wid => number(out, e.wid),
        // No green-thread switches in liege (uWSGI counts async switches; 0 outside async modes).
        Var::Switches => number(out, 0u8),
        Var::Vars => number(out, e.vars),
        // uWSGI's async core id; liege has no such cores.
        Var::Core => number(out, 0u8),
        Var::Vsz => number(out, memory.vsz),
        Var::Rss => number(out, memory.rss),
        Var::VszM => number(out, memory.vsz / 1024 / 1024),
        Var::RssM => number(out, memory.rss / 1024 / 1024),
        Var::Pktsize => number(out, e.pktsize),
        // liege serves modifier1 0 (WSGI) only.
        Var::Modifier1 => number(out, 0u8),
        Var::Modifier2 => number(out, e.modifier2),
        Var::Headers => number(out, e.headers),
        Var::Captured(index) => text(out, e.captured.get(index).unwrap_or_default()),
        Var::Missing => out.push(b'-'),
    }
}

/// uWSGI's default request line, so existing log parsers keep working; the trailing part names the worker
/// instead of uWSGI's "(N switches on core C)". Written piece by piece: `write!` with a dozen arguments
/// costs about twice as much, and this is the line most deployments log.
fn write_default(e: &Entry<'_>, clock: &mut impl Clock, out: &mut Vec<u8>) {
    out.extend_from_slice(b"[pid: ");
    number(out, e.pid);
    out.extend_from_slice(b"|app: 0|req: ");
    number(out, e.worker_requests);
    out.push(b'/');
    number(out, e.total_requests);
    out.extend_from_slice(b"] ");
    out.extend_from_slice(e.addr.as_bytes());
    out.extend_from_slice(b" () {");
    number(out, e.vars);
    out.extend_from_slice(b" vars in ");
    number(out, e.head_in);
    out.extend_from_slice(b" bytes} [");
    clock.ctime(e.start_us / 1_000_000, out);
    out.extend_from_slice(b"] ");
    out.extend_from_slice(e.request_line.as_bytes());
    out.extend_from_slice(b" => generated ");
    number(out, e.rsize);
    out.extend_from_slice(b" bytes in ");
    number(out, e.elapsed.as_millis() as u64);
    out.extend_from_slice(b" msecs (");
    out.extend_from_slice(e.proto.as_bytes());
    out.push(b' ');
    number(out, e.status);
    out.extend_from_slice(b") ");
    number(out, e.headers);
    out.extend_from_slice(b" headers in ");
    number(out, e.hsize);
    out.extend_from_slice(b" bytes (worker ");
    number(out, e.wid);
    out.push(b')');
}

/// A JSON string from bytes: UTF-8 as it is (invalid sequences become U+FFFD), with JSON's escapes.
fn json_string(out: &mut Vec<u8>, value: &[u8]) {
    match std::str::from_utf8(value) {
        Ok(text) => json_str(out, text),
        Err(_) => json_str(out, &String::from_utf8_lossy(value)),
    }
}

fn json_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.push(b'"');
    // Almost every value needs no escape at all: one scan, one copy.
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[plain..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(escape);
        }
        plain = i + 1;
    }
    out.extend_from_slice(&bytes[plain..]);
    out.push(b'"');
}

fn json_optional(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(value) => json_string(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

/// One JSON object: the template variables of the same names, with the same meaning; numbers as numbers,
/// absent request headers as `null`.
fn write_json(e: &Entry<'_>, [host, uagent, referer]: [usize; 3], out: &mut Vec<u8>) {
    let micros = e.elapsed.as_micros() as u64;
    out.extend_from_slice(b"{\"time\":");
    number(out, e.start_us / 1_000_000);
    out.extend_from_slice(b",\"pid\":");
    number(out, e.pid);
    out.extend_from_slice(b",\"wid\":");
    number(out, e.wid);
    out.extend_from_slice(b",\"addr\":");
    json_str(out, e.addr);
    out.extend_from_slice(b",\"method\":");
    json_str(out, e.method());
    out.extend_from_slice(b",\"uri\":");
    json_str(out, e.uri());
    out.extend_from_slice(b",\"proto\":");
    json_str(out, e.proto);
    out.extend_from_slice(b",\"status\":");
    number(out, e.status);
    out.extend_from_slice(b",\"size\":");
    number(out, e.rsize + e.hsize);
    out.extend_from_slice(b",\"rsize\":");
    number(out, e.rsize);
    out.extend_from_slice(b",\"msecs\":");
    number(out, micros / 1000);
    out.extend_from_slice(b",\"micros\":");
    number(out, micros);
    out.extend_from_slice(b",\"host\":");
    json_optional(out, e.captured.get(host));
    out.extend_from_slice(b",\"uagent\":");
    json_optional(out, e.captured.get(uagent));
    out.extend_from_slice(b",\"referer\":");
    json_optional(out, e.captured.get(referer));
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FixedClock;

    impl Clock for FixedClock {
        fn ctime(&mut self, secs: u64, out: &mut Vec<u8>) {
            let _ = write!(out, "ctime({secs})");
        }
        fn ltime(&mut self, secs: u64, out: &mut Vec<u8>) {
            let _ = write!(out, "ltime({secs})");
        }
        fn now_secs(&mut self) -> u64 {
            1_800_000_009
        }
    }

    fn template(text: &str) -> (RequestLog, Vec<String>) {
        RequestLog::compile(&LogFormat::Template(text.to_owned()), Filter { all: true, ..Filter::default() })
    }

    fn entry<'a>(captured: &'a Captured) -> Entry<'a> {
        Entry {
            pid: 4242,
            wid: 3,
            worker_requests: 7,
            total_requests: 19,
            addr: "10.0.0.1",
            request_line: "GET /a?b=c",
            proto: "HTTP/1.1",
            status: 404,
            rsize: 120,
            hsize: 80,
            cl: 5,
            vars: 12,
            headers: 3,
            pktsize: 345,
            head_in: 349,
            modifier2: 0,
            start_us: 1_800_000_000_123_456,
            elapsed: Duration::from_micros(2_345_678),
            captured,
            memory: Some(Memory { rss: 50 * 1024 * 1024 + 1, vsz: 300 * 1024 * 1024 }),
        }
    }

    fn render(log: &RequestLog, entry: &Entry<'_>) -> String {
        let mut out = Vec::new();
        log.write(entry, &mut FixedClock, &mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn builtin_variables_render_like_uwsgi() {
        let (log, warnings) = template(
            "%(addr) %(method) %(uri) %(proto) %(status) %(rsize) %(hsize) %(size) %(cl) %(msecs) %(micros) %(secs) \
             %(pid) %(wid) %(time) %(tmsecs) %(tmicros) %(epoch) %(ctime) [%(ltime)] %(ftime) %(vars) %(headers) \
             %(pktsize) %(switches) %(core) %(modifier1) %(modifier2) %(rss) %(rssM) %(vsz) %(vszM)",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let captured = Captured::default();
        assert_eq!(
            render(&log, &entry(&captured)),
            "10.0.0.1 GET /a?b=c HTTP/1.1 404 120 80 200 5 2345 2345678 2.345678 4242 3 1800000000 1800000000123 \
             1800000000123456 1800000009 ctime(1800000000) [ltime(1800000000)] ltime(1800000000) 12 3 345 0 0 0 0 \
             52428801 50 314572800 300"
        );
    }

    #[test]
    fn literal_text_percent_signs_and_unterminated_variables_stay_as_written() {
        let (log, warnings) = template("100% %%(status) %() %(status");
        assert!(warnings.is_empty());
        let captured = Captured::default();
        // `%%(status)` is `%` then the variable, as in uWSGI (a config file's `%%` was already expanded).
        assert_eq!(render(&log, &entry(&captured)), "100% %404 %() %(status");
        let (log, _) = template("plain");
        assert_eq!(render(&log, &entry(&captured)), "plain");
    }

    #[test]
    fn unknown_and_unsupported_variables_log_a_dash_and_warn() {
        let (log, warnings) = template("%(nosuch) %(metric.foo) %(werr) %(var.)");
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings[0].contains("%(nosuch)"));
        let captured = Captured::default();
        assert_eq!(render(&log, &entry(&captured)), "- - - -");
    }

    #[test]
    fn request_vars_are_captured_once_and_empty_values_are_dashes() {
        let (log, _) = template("%(uagent)|%(var.HTTP_USER_AGENT)|%(referer)|%(host)|%(user)|%(var.HTTP_X_ID)");
        let names: Vec<&[u8]> = log.captures().iter().map(|c| &*c.name).collect();
        assert_eq!(names, [&b"HTTP_USER_AGENT"[..], b"HTTP_REFERER", b"HTTP_HOST", b"REMOTE_USER", b"HTTP_X_ID"]);
        let captured = log.capture_vars(|name| match name {
            b"HTTP_USER_AGENT" => Some(&b"curl/8"[..]),
            b"HTTP_REFERER" => Some(b""),
            b"HTTP_X_ID" => Some(b"a\nb"),
            _ => None,
        });
        assert_eq!(render(&log, &entry(&captured)), "curl/8|curl/8|-|-|-|a\\x0ab");
    }

    #[test]
    fn http_requests_map_cgi_names_to_their_sources() {
        let (log, _) = template(
            "%(var.REQUEST_METHOD) %(var.REQUEST_URI) %(var.PATH_INFO) %(var.QUERY_STRING) %(var.SERVER_PROTOCOL) \
             %(var.REMOTE_ADDR) %(var.REMOTE_PORT) %(var.SERVER_NAME) %(var.SERVER_PORT) %(var.HTTP_X_REQUEST_ID) \
             %(var.CONTENT_TYPE) %(var.REMOTE_USER) %(host) %(var.HTTP_ACCEPT)",
        );
        let request = http::Request::builder()
            .method("POST")
            .uri("/caf%C3%A9/x?q=1")
            .header("host", "example.com:8080")
            .header("x-request-id", "abc-123")
            .header("content-type", "text/plain")
            .header("accept", "a")
            .header("accept", "b")
            .body(())
            .expect("request");
        let (parts, ()) = request.into_parts();
        let captured = log.capture_http(&parts, "10.0.0.9", "5555", "127.0.0.1", "80");
        assert_eq!(
            render(&log, &entry(&captured)),
            "POST /caf%C3%A9/x?q=1 /café/x q=1 HTTP/1.1 10.0.0.9 5555 example.com 8080 abc-123 text/plain - \
             example.com:8080 a, b"
        );
    }

    #[test]
    fn default_line_is_uwsgis() {
        let (log, warnings) = RequestLog::compile(&LogFormat::Default, Filter { all: true, ..Filter::default() });
        assert!(warnings.is_empty());
        assert!(log.captures().is_empty() && log.needs_totals() && !log.needs_memory());
        let captured = Captured::default();
        assert_eq!(
            render(&log, &entry(&captured)),
            "[pid: 4242|app: 0|req: 7/19] 10.0.0.1 () {12 vars in 349 bytes} [ctime(1800000000)] GET /a?b=c => \
             generated 120 bytes in 2345 msecs (HTTP/1.1 404) 3 headers in 80 bytes (worker 3)"
        );
    }

    #[test]
    fn json_lines_are_valid_json_for_any_bytes() {
        let (log, _) = RequestLog::compile(&LogFormat::Json, Filter { all: true, ..Filter::default() });
        let captured = log.capture_vars(|name| match name {
            b"HTTP_USER_AGENT" => Some(&b"quote\" back\\ nl\n tab\t bell\x07 del\x7f bad\xff caf\xc3\xa9"[..]),
            b"HTTP_HOST" => Some(b"h"),
            _ => None,
        });
        let mut e = entry(&captured);
        e.request_line = "GET /p\"q\\r/%C3%A9?x=\u{e9}";
        let line = render(&log, &e);
        let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(value["uri"], "/p\"q\\r/%C3%A9?x=\u{e9}");
        assert_eq!(value["method"], "GET");
        assert_eq!(value["uagent"], "quote\" back\\ nl\n tab\t bell\u{7} del\u{7f} bad\u{fffd} caf\u{e9}");
        assert_eq!(value["host"], "h");
        assert_eq!(value["referer"], serde_json::Value::Null);
        assert_eq!(value["status"], 404);
        assert_eq!(value["size"], 200);
        assert_eq!(value["rsize"], 120);
        assert_eq!(value["msecs"], 2345);
        assert_eq!(value["micros"], 2_345_678);
        assert_eq!(value["time"], 1_800_000_000u64);
        assert_eq!(value["pid"], 4242);
        assert_eq!(value["wid"], 3);
        assert_eq!(value["addr"], "10.0.0.1");
        assert_eq!(value["proto"], "HTTP/1.1");
    }

    /// Formatting cost per line of each format (`cargo test --release -- --ignored --nocapture line_cost`).
    #[test]
    #[ignore]
    fn line_cost() {
        let template = "%(addr) - %(user) [%(ltime)] \"%(method) %(uri) %(proto)\" %(status) %(size) \"%(referer)\" \"%(uagent)\" %(msecs)ms";
        let all = Filter { all: true, ..Filter::default() };
        for (name, format) in [
            ("default", LogFormat::Default),
            ("template", LogFormat::Template(template.into())),
            ("json", LogFormat::Json),
        ] {
            let (log, _) = RequestLog::compile(&format, all);
            let mut out = Vec::with_capacity(1 << 20);
            let rounds = 1_000_000u32;
            let started = std::time::Instant::now();
            for _ in 0..rounds {
                let captured = log.capture_vars(|name| match name {
                    b"HTTP_USER_AGENT" => Some(&b"Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"[..]),
                    b"HTTP_HOST" => Some(b"example.com"),
                    _ => None,
                });
                log.write(&entry(&captured), &mut FixedClock, &mut out);
                if out.len() > (1 << 20) - 4096 {
                    out.clear();
                }
            }
            eprintln!("{name}: {:.0} ns/line", started.elapsed().as_nanos() as f64 / f64::from(rounds));
        }
    }

    #[test]
    fn filters_follow_uwsgi_log_request() {
        let slow = Duration::from_millis(500);
        let off = Filter::default();
        assert!(off.is_never() && !off.wants(500, slow, 1));
        let errors = Filter { status_5xx: true, ..Filter::default() };
        assert!(errors.wants(500, Duration::ZERO, 1) && errors.wants(599, Duration::ZERO, 1));
        assert!(!errors.wants(404, slow, 1) && !errors.wants(600, slow, 1) && !errors.wants(200, slow, 1));
        let client = Filter { status_4xx: true, ..Filter::default() };
        assert!(client.wants(404, Duration::ZERO, 1) && !client.wants(500, Duration::ZERO, 1));
        let slow_only = Filter { slow: Some(slow), ..Filter::default() };
        assert!(slow_only.wants(200, Duration::from_micros(500_000), 1));
        assert!(!slow_only.wants(200, Duration::from_micros(499_999), 1));
        // With logging on, the conditions add nothing: every request is logged, once.
        let all = Filter { all: true, status_5xx: true, ..Filter::default() };
        assert!(all.wants(200, Duration::ZERO, 1) && all.wants(500, Duration::ZERO, 1));
        // Nothing can be logged: nothing is captured either.
        let (log, _) = RequestLog::compile(&LogFormat::Json, off);
        assert!(log.captures().is_empty());
        // log-zero and log-big look at the response body's size.
        let zero = Filter { zero: true, ..Filter::default() };
        assert!(!zero.is_never() && zero.wants(204, Duration::ZERO, 0) && !zero.wants(200, Duration::ZERO, 1));
        let big = Filter { big: Some(1000), ..Filter::default() };
        assert!(big.wants(200, Duration::ZERO, 1000) && !big.wants(200, Duration::ZERO, 999));
    }

    #[test]
    fn strftime_pass_formats_the_rendered_line() {
        let (mut log, _) = RequestLog::compile(
            &LogFormat::Template("%Y %(status)".to_owned()),
            Filter { all: true, ..Filter::default() },
        );
        log.strftime = true;
        let captured = Captured::default();
        let mut out = Vec::new();
        log.write(&entry(&captured), &mut FixedClock, &mut out);
        let year = String::from_utf8(crate::logging::strftime_now("%Y")).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("{year} 404"));
    }
}
