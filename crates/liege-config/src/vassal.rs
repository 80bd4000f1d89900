//! The typed, validated configuration of one vassal (one app: a master and its workers).
//!
//! Built from the ordered list of raw options (command line and ini files merged in order) by
//! [`VassalConfig::from_raw`]. Every field has uWSGI's meaning and unit unless its doc says otherwise.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::apps::{self, CacheSpec, Mount, MountTarget, MountedApp};
use crate::options::{self, OptionId, OptionKind, Support};
use crate::{values, ConfigError, ConfigWarning, Origin, RawOption};

/// Which wire protocol a listening socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.x (`http-socket`).
    Http,
    /// The binary uwsgi protocol (`socket`), what nginx's `uwsgi_pass` sends.
    Uwsgi,
}

/// Where a socket listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SocketAddress {
    /// `host:port`; uWSGI's `:port` means every interface (`0.0.0.0:port`). Kept as written
    /// (host may be a name, an IPv4 address or a bracketed IPv6 address).
    Tcp { host: String, port: u16 },
    /// A filesystem path (anything containing `/` or not of the `host:port` shape).
    Unix(PathBuf),
    /// An already-open listening socket inherited from the parent (`fd://3`).
    Fd(i32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    pub protocol: Protocol,
    pub address: SocketAddress,
}

/// How to find the WSGI callable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSource {
    /// `wsgi-file = path.py` (relative paths are resolved after `chdir`).
    File(PathBuf),
    /// `module = pkg.mod` or `pkg.mod:callable`.
    Module(String),
    /// `paste = URI` (or a mounted `.ini`): PasteDeploy's `loadapp(URI)`; `callable` does not apply.
    Paste(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    pub source: AppSource,
    /// `callable` (default `application`), overridden by the `:callable` suffix of `module`.
    pub callable: String,
}

pub use crate::cheaper::{Busyness, Cheaper, CheaperAlgo, Tuning};

// --- static files, routing, headers (static) ---
/// Which of uWSGI's four route tables a `*route*` option adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteTable {
    /// `route*`: before the app (or the static file) answers.
    Request,
    /// `final-route*`: after the response was sent (logging only).
    Final,
    /// `error-route*`: when the response status is >= 400.
    Error,
    /// `response-route*`: when the response head is ready, before it is sent.
    Response,
}

/// What a route's first word is matched against (`route-host` → the Host header...), or that it is a
/// condition (`route-if`), an unconditional action (`route-run`), a label (`route-label`) or a status check
/// (`error-route-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    PathInfo,
    Host,
    Uri,
    QueryString,
    RemoteAddr,
    UserAgent,
    Referer,
    RemoteUser,
    If,
    IfNot,
    Run,
    Label,
    Status,
}

/// One routing option as written; the runtime compiles the list into a program (and reports errors with
/// `origin`), because what an action means is the server's business, not the config reader's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLine {
    pub table: RouteTable,
    pub kind: RouteKind,
    pub text: String,
    pub origin: Origin,
}

/// A static-file option as written (`static-map`, `static-expires`...), with where it came from; compiled
/// by the runtime (regexes, directories) so its errors can name the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticLine {
    pub id: OptionId,
    pub value: String,
    pub origin: Origin,
}

/// Static files, routing and response headers, as given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestPathConfig {
    /// Every static-file option in order (maps, checks, expires, gzip, index, skip-ext, safe, mimefile).
    pub static_files: Vec<StaticLine>,
    pub check_static_docroot: bool,
    pub static_gzip_all: bool,
    /// `honour-range`: answer `Range` on static files.
    pub honour_range: bool,
    /// `file-serve-mode`: `None` = send the file, else the header to send instead (`X-Sendfile`,
    /// `X-Accel-Redirect`).
    pub file_serve_header: Option<&'static str>,
    /// Every route option in order, all four tables.
    pub routes: Vec<RouteLine>,
    /// `add-header` as (name, value).
    pub add_headers: Vec<(String, String)>,
    /// `del-header` names, lowercased.
    pub del_headers: Vec<String>,
}
// --- end static files, routing, headers (static) ---

/// Request log line format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFormat {
    /// uWSGI's default request line.
    Default,
    /// JSON lines (`log-format = json`).
    Json,
    /// A `logformat` template with `%(var)` placeholders, kept verbatim for the runtime to compile.
    Template(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct VassalConfig {
    /// `%n` of the first config file, or `liege` when there is none. Names the app in logs.
    pub name: String,
    /// In the order given: `http-socket` ones as [`Protocol::Http`], `socket` ones as [`Protocol::Uwsgi`].
    pub sockets: Vec<SocketSpec>,
    /// `None` only when no app option was given (a startup error when `need_app`).
    pub app: Option<AppSpec>,
    pub chdir: Option<PathBuf>,
    pub pythonpath: Vec<PathBuf>,
    /// `virtualenv` / `home` / `venv` / `pyhome` / `-H`.
    pub virtualenv: Option<PathBuf>,
    /// `env = K=V`, in order.
    pub env: Vec<(String, String)>,
    /// `processes` / `workers` / `-p`; default 1. With `cheaper` it is the maximum.
    pub processes: u32,
    /// Accepted for compatibility; liege always runs a master (`master = false` is honoured as true, with a warning
    /// left to the runtime).
    pub master: bool,
    pub lazy_apps: bool,
    /// Python threads per worker; default 1 (the app is called inline on the worker's event loop).
    pub threads: u32,
    /// Listen backlog; default 1024 (uWSGI's 100 is a known trap).
    pub listen: u32,
    /// Largest request head (request line + headers) in bytes; default 65536. uWSGI's meaning: the whole
    /// uwsgi packet / header buffer.
    pub buffer_size: usize,
    pub disable_logging: bool,
    /// Default true (an app that fails to load is a startup error), as uWSGI 2.1.
    pub need_app: bool,
    /// `show-config`: the master logs [`Self::raw`] as an ini section when it starts (and after each reload,
    /// which starts it again), as uWSGI's `show_config()`.
    pub show_config: bool,
    // --- mount, factories, cache (apps) ---
    /// `mount` lines in order: apps 1.. after the default app (see `liege::python::app`).
    pub mounts: Vec<MountedApp>,
    pub manage_script_name: bool,
    pub no_default_app: bool,
    /// The `wsgi-file` and `paste` not used as [`VassalConfig::app`], in that order: uWSGI loads `module`,
    /// then `wsgi-file`, then `paste` on the same mountpoint, so the first that loads is the app and the
    /// others are tried only when the ones before failed.
    pub fallback_apps: Vec<AppSpec>,
    /// `cache2` lines, then the old-style `cache` (named `default`) if given.
    pub caches: Vec<CacheSpec>,
    // --- end apps ---
    /// Unix socket mode; bare `chmod-socket` means 0o666 as in uWSGI.
    pub chmod_socket: Option<u32>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    /// `cap`: Linux capabilities (names as uWSGI spells them, comma-separated) kept after dropping root.
    pub caps: Vec<String>,
    pub pidfile: Option<PathBuf>,
    /// `logto`: append the vassal's stdout and stderr to this file.
    pub logto: Option<PathBuf>,
    /// Request bodies larger than this are spooled to a temporary file instead of memory (`post-buffering`,
    /// bytes; default 1 MiB).
    pub post_buffering: usize,
    /// Largest accepted request body (`limit-post`, bytes; 0 = unlimited, the default).
    pub limit_post: u64,
    /// How long to wait for a request head or body bytes, and for a response write that cannot go on to make
    /// progress, as uWSGI's `socket-timeout` (`http-timeout` / `socket-timeout`; default 60 s).
    pub socket_timeout: Duration,
    /// Idle keep-alive connections are closed after this (`http-keepalive`, seconds; default 15 s, 0 = no
    /// keep-alive).
    pub keepalive_timeout: Duration,
    // --- write timeouts, post-buffering-bufsize (cron) ---
    /// `so-send-timeout` (and `socket-send-timeout`, `so-write-timeout`, `socket-write-timeout`, one setting in
    /// uWSGI): SO_SNDTIMEO of the TCP listening sockets, inherited by their connections. liege's writes never
    /// block, so the worker enforces it: a response write to a TCP client that makes no progress this long
    /// drops the connection. `None`: no such limit (uWSGI's default, 0).
    pub so_send_timeout: Option<Duration>,
    /// `post-buffering-bufsize`: the size of each read of a request body from the socket (uwsgi protocol) and
    /// of each write of a spooled body to its file; default 8192, raised to `post-buffering` as uWSGI does.
    pub post_buffering_bufsize: usize,
    // --- end write timeouts ---
    // --- static files, routing, headers (static) ---
    pub request_path: RequestPathConfig,
    // --- end static files, routing, headers (static) ---

    // --- limits and reloads (master lifecycle) ---
    /// 0 = never.
    pub max_requests: u64,
    pub max_requests_delta: u64,
    pub max_worker_lifetime: Option<Duration>,
    /// Megabytes.
    pub reload_on_rss: Option<u64>,
    pub evil_reload_on_rss: Option<u64>,
    /// Megabytes (RLIMIT_AS per worker).
    pub limit_as: Option<u64>,
    pub harakiri: Option<Duration>,
    pub harakiri_verbose: bool,
    /// Default 60 s.
    pub reload_mercy: Duration,
    /// Default 60 s.
    pub worker_reload_mercy: Duration,
    pub touch_reload: Vec<PathBuf>,
    pub touch_chain_reload: Vec<PathBuf>,
    pub master_fifo: Vec<PathBuf>,
    pub cheaper: Option<Cheaper>,
    /// `idle`, `harakiri-queue-threshold`, `cpu-affinity`, `never-swap`, `ksm`.
    pub tuning: Tuning,

    // --- stats and request logs ---
    /// `stats` / `stats-server`: unix path or host:port.
    pub stats: Option<SocketAddress>,
    /// Serve the stats JSON over HTTP (`stats-http`).
    pub stats_http: bool,
    pub log_format: LogFormat,
    pub log_4xx: bool,
    pub log_5xx: bool,
    /// Log only requests slower than this (`log-slow`, milliseconds).
    pub log_slow: Option<Duration>,

    // --- process setup ---
    /// `chown-socket = USER[:GROUP]`: owner of unix sockets, applied after binding.
    pub chown_socket: Option<String>,
    /// `umask`: set before anything is created.
    pub umask: Option<u32>,
    /// `daemonize` / `daemonize2`: detach and append all output to this file.
    pub daemonize: Option<PathBuf>,
    /// `daemonize = HOST:PORT`: detach with no log file; the output goes over UDP to that address (a socket
    /// logger in [`Self::logs`]), as uWSGI's `daemonize` and `logto` do when given an address.
    pub detach: bool,
    /// `pyargv`: `sys.argv[1:]` (split at spaces, as uWSGI).
    pub pyargv: Vec<String>,
    // --- the vassal's interpreter (issue 13) ---
    /// `python = PATH`: the interpreter that runs this vassal (`PATH -c <liege bootstrap>`), instead of the one
    /// `virtualenv` implies or the one liege was started with.
    pub python: Option<PathBuf>,
    // --- end the vassal's interpreter ---
    // --- Python plugin options (py) ---
    /// `py-autoreload`, `paste-logger`/`paste-name`, `reload-on-exception*`, `py-tracebacker` (see
    /// [`crate::python`]).
    pub python_features: crate::python::PythonFeatures,
    // --- end Python plugin options ---
    /// `log-date`: the strftime format prefixed to liege's own log lines (`None`: no date; empty: C's ctime
    /// form, uWSGI's default).
    pub log_date: Option<String>,
    /// `log-x-forwarded-for`: the request log shows X-Forwarded-For as the address.
    pub log_x_forwarded_for: bool,
    // --- logging family (conf) ---
    /// Loggers, routes, encoders, drains, rotation, extra request-log conditions (see [`crate::logs`]).
    pub logs: crate::logs::LogRouting,
    // --- end logging family ---
    /// `wsgi-disable-file-wrapper`: no `wsgi.file_wrapper` in the environ.
    pub wsgi_disable_file_wrapper: bool,
    // --- master-side features: side processes, hooks (feat) ---
    /// `attach-daemon*`, `hook-*`, `exec-*` (see [`crate::master`]).
    pub master_features: crate::master::MasterFeatures,
    // --- spooler family (spooler) ---
    /// `spooler` and its options (see [`crate::spooler`]).
    pub spooler: crate::spooler::SpoolerConfig,
    // --- end spooler family ---
    // --- end master-side features ---
    // --- mule family (mule) ---
    /// `mule`, `mules`, `farm`, `mule-*`, `touch-mules-reload` (see [`crate::mules`]).
    pub mules: crate::mules::Mules,
    // --- end mule family ---
    /// Every raw option in the order it was given, canonical names, after expansion: what `uwsgi.opt` shows.
    pub raw: Vec<RawOption>,
    /// Readings that uWSGI accepts but that are probably not what was meant (see [`ConfigWarning`]).
    pub warnings: Vec<ConfigWarning>,
}

const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);

impl VassalConfig {
    /// Interprets the ordered raw options (command line and files merged, see [`crate::parse_vassal_args`]):
    /// applies the defaults documented on each field, gives every value its type and checks it, with errors
    /// that name the option and where it was given.
    ///
    /// `first_file_name` is the `%n` of the first config file (its file name without `.ini`; a path or a
    /// name with `.ini` is reduced to that), which names the app; `liege` when there is none.
    pub fn from_raw(raw: Vec<RawOption>, first_file_name: Option<&str>) -> Result<Self, ConfigError> {
        let mut builder = Builder::new(app_name(first_file_name));
        for option in &raw {
            builder.apply(option)?;
        }
        let mut config = builder.finish()?;
        config.raw = raw;
        Ok(config)
    }
}

fn app_name(first_file_name: Option<&str>) -> String {
    let file_name = first_file_name
        .map(|name| Path::new(name).file_name().map_or(name.to_owned(), |file| file.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let name = file_name.strip_suffix(".ini").unwrap_or(&file_name);
    if name.is_empty() {
        "liege".to_owned()
    } else {
        name.to_owned()
    }
}

/// Accumulates options in order (last scalar wins); cross-option checks happen in [`Builder::finish`].
struct Builder<'r> {
    config: VassalConfig,
    /// The last `module` (with its `:callable` suffix, which beats `callable` as in uWSGI), `wsgi-file`
    /// and `paste`: ordered by uWSGI's loading order in [`Builder::finish`].
    module: Option<(String, Option<String>)>,
    file: Option<PathBuf>,
    paste: Option<String>,
    callable: Option<String>,
    cheaper: crate::cheaper::CheaperOptions<'r>,
    /// Indexes in `config.sockets` of the `socket` ones, whose protocol `protocol` may change.
    default_protocol_sockets: Vec<usize>,
    protocol: Option<Protocol>,
    warnings: Vec<ConfigWarning>,
    // --- mount, factories, cache (apps) ---
    apps: AppsOptions,
    // --- logging family (conf) ---
    logs: crate::logs::LogOptions,
    /// `http-raw-body`: keep-alive off (see `finish`).
    http_raw_body: bool,
    // --- Python plugin options (py) ---
    python: crate::python::PythonOrigins,
}

/// `mount` and `cache`, resolved in [`Builder::finish`].
#[derive(Default)]
struct AppsOptions {
    mounts: Vec<Mount>,
    cache_items: Option<u64>,
    cache_blocksize: Option<(u64, RawOption)>,
    /// `cache-use-last-modified` (old-style cache only, as uWSGI).
    cache_use_last_modified: bool,
    /// `post-buffering-bufsize` as given, resolved against `post-buffering` at the end.
    post_buffering_bufsize: Option<(usize, RawOption)>,
}

impl<'r> Builder<'r> {
    fn new(name: String) -> Self {
        let config = VassalConfig {
            name,
            sockets: Vec::new(),
            app: None,
            chdir: None,
            pythonpath: Vec::new(),
            virtualenv: None,
            env: Vec::new(),
            processes: 1,
            master: true,
            lazy_apps: false,
            threads: 1,
            listen: 1024,
            buffer_size: 65536,
            disable_logging: false,
            need_app: true,
            show_config: false,
            // --- mount, factories, cache (apps) ---
            mounts: Vec::new(),
            manage_script_name: false,
            no_default_app: false,
            fallback_apps: Vec::new(),
            caches: Vec::new(),
            // --- end apps ---
            chmod_socket: None,
            uid: None,
            gid: None,
            caps: Vec::new(),
            pidfile: None,
            logto: None,
            post_buffering: 1024 * 1024,
            limit_post: 0,
            socket_timeout: Duration::from_secs(60),
            keepalive_timeout: DEFAULT_KEEPALIVE,
            so_send_timeout: None,
            post_buffering_bufsize: 0,
            // --- static files, routing, headers (static) ---
            request_path: RequestPathConfig::default(),
            // --- end static files, routing, headers (static) ---
            max_requests: 0,
            max_requests_delta: 0,
            max_worker_lifetime: None,
            reload_on_rss: None,
            evil_reload_on_rss: None,
            limit_as: None,
            harakiri: None,
            harakiri_verbose: false,
            reload_mercy: Duration::from_secs(60),
            worker_reload_mercy: Duration::from_secs(60),
            touch_reload: Vec::new(),
            touch_chain_reload: Vec::new(),
            master_fifo: Vec::new(),
            cheaper: None,
            tuning: Tuning::default(),
            stats: None,
            stats_http: false,
            log_format: LogFormat::Default,
            log_4xx: false,
            log_5xx: false,
            log_slow: None,
            chown_socket: None,
            umask: None,
            daemonize: None,
            detach: false,
            pyargv: Vec::new(),
            python: None,
            // --- Python plugin options (py) ---
            python_features: crate::python::PythonFeatures::default(),
            // --- end Python plugin options ---
            log_date: None,
            log_x_forwarded_for: false,
            logs: crate::logs::LogRouting::default(),
            wsgi_disable_file_wrapper: false,
            master_features: crate::master::MasterFeatures::default(),
            mules: crate::mules::Mules::default(),
            spooler: crate::spooler::SpoolerConfig::default(),
            raw: Vec::new(),
            warnings: Vec::new(),
        };
        Builder {
            config,
            module: None,
            file: None,
            paste: None,
            callable: None,
            cheaper: crate::cheaper::CheaperOptions::default(),
            apps: AppsOptions::default(),
            logs: crate::logs::LogOptions::default(),
            http_raw_body: false,
            python: crate::python::PythonOrigins::default(),
            default_protocol_sockets: Vec::new(),
            protocol: None,
            warnings: Vec::new(),
        }
    }

    fn apply(&mut self, option: &'r RawOption) -> Result<(), ConfigError> {
        let def = options::lookup_long(&option.key).ok_or_else(|| ConfigError::UnknownOption {
            origin: option.origin.clone(),
            name: option.key.clone(),
            suggestion: options::suggest(&option.key).map(str::to_owned),
        })?;
        match def.support {
            Support::Vassal => {}
            Support::EmperorOnly => {
                return Err(ConfigError::EmperorOnly { origin: option.origin.clone(), name: option.key.clone() })
            }
            Support::Unsupported { reason } => {
                return Err(ConfigError::Unsupported {
                    origin: option.origin.clone(),
                    name: option.key.clone(),
                    reason,
                })
            }
            Support::NoEffect => {
                if def.kind == OptionKind::Flag {
                    values::boolean(option, &mut self.warnings)?;
                }
                return Ok(());
            }
        }
        warn_inline_comment(option, &mut self.warnings);
        let config = &mut self.config;
        let w = &mut self.warnings;
        match def.id {
            // Already acted on while reading (files read in place, placeholders substituted).
            OptionId::Ini | OptionId::Include | OptionId::SetPlaceholder | OptionId::Strict => {}
            OptionId::IfEnv
            | OptionId::IfNotEnv
            | OptionId::IfExists
            | OptionId::IfNotExists
            | OptionId::IfFile
            | OptionId::IfNotFile
            | OptionId::IfDir
            | OptionId::IfNotDir
            | OptionId::IfOpt
            | OptionId::IfNotOpt
            | OptionId::IfHostname
            | OptionId::IfNotHostname
            | OptionId::For
            | OptionId::ForGlob
            | OptionId::ForTimes
            | OptionId::ForReadline
            | OptionId::EndIf
            | OptionId::EndFor
            | OptionId::Else => {}
            OptionId::HttpSocket => {
                config.sockets.push(SocketSpec { protocol: Protocol::Http, address: values::socket_address(option)? })
            }
            OptionId::Socket => {
                self.default_protocol_sockets.push(config.sockets.len());
                config.sockets.push(SocketSpec { protocol: Protocol::Uwsgi, address: values::socket_address(option)? })
            }
            OptionId::SocketProtocol => self.protocol = Some(socket_protocol(option)?),
            OptionId::ChownSocket => config.chown_socket = Some(owner(option)?),
            OptionId::Umask => config.umask = Some(values::octal_mode(option)?),
            OptionId::Daemonize | OptionId::Daemonize2 => {
                config.detach = true;
                match values::udp_log_address(option) {
                    Some(address) => self.logs.udp_output(option, address)?,
                    None => config.daemonize = Some(values::path(option)?),
                }
            }
            OptionId::Python => config.python = Some(interpreter_path(option)?),
            OptionId::Pyargv => {
                config.pyargv = option.value.split(' ').filter(|word| !word.is_empty()).map(str::to_owned).collect()
            }
            OptionId::Listen => config.listen = values::positive(option, w)?,
            OptionId::BufferSize => config.buffer_size = values::positive(option, w)?,
            OptionId::PostBuffering => config.post_buffering = values::whole_number(option, w)?,
            OptionId::LimitPost => config.limit_post = values::whole_number(option, w)?,
            OptionId::HttpTimeout | OptionId::SocketTimeout => {
                config.socket_timeout = values::positive_seconds(option, w)?
            }
            OptionId::HttpKeepalive => config.keepalive_timeout = keepalive(option, w)?,
            // uWSGI's router never keeps a raw-body session alive (plugins/http/http.c), whatever
            // http-keepalive says: applied in `finish`, so the order of the two options does not matter.
            OptionId::HttpRawBody => self.http_raw_body = values::boolean(option, w)?,
            OptionId::ChmodSocket => config.chmod_socket = Some(values::octal_mode(option)?),
            // --- static files, routing, headers (static) ---
            OptionId::StaticMap
            | OptionId::StaticMap2
            | OptionId::CheckStatic
            | OptionId::StaticIndex
            | OptionId::StaticSkipExt
            | OptionId::StaticSafe
            | OptionId::StaticExpires
            | OptionId::StaticExpiresMtime
            | OptionId::StaticExpiresUri
            | OptionId::StaticExpiresUriMtime
            | OptionId::StaticExpiresPathInfo
            | OptionId::StaticExpiresPathInfoMtime
            | OptionId::StaticExpiresType
            | OptionId::StaticExpiresTypeMtime
            | OptionId::StaticGzip
            | OptionId::StaticGzipDir
            | OptionId::StaticGzipExt
            | OptionId::Mimefile => config.request_path.static_files.push(StaticLine {
                id: def.id,
                value: values::non_empty(option)?,
                origin: option.origin.clone(),
            }),
            OptionId::CheckStaticDocroot => config.request_path.check_static_docroot = values::boolean(option, w)?,
            OptionId::StaticGzipAll => config.request_path.static_gzip_all = values::boolean(option, w)?,
            OptionId::HonourRange => config.request_path.honour_range = values::boolean(option, w)?,
            OptionId::FileServeMode => config.request_path.file_serve_header = file_serve_mode(option)?,
            OptionId::Logging(which) => self.logs.apply(which, option, w)?,
            // --- request and process options (conf) ---
            OptionId::WsgiDisableFileWrapper => config.wsgi_disable_file_wrapper = values::boolean(option, w)?,
            OptionId::WsgiEnvBehaviour => {
                if !matches!(option.value.to_ascii_lowercase().as_str(), "holy" | "cheat") {
                    return Err(values::invalid(option, "expected holy or cheat"));
                }
            }
            OptionId::HonourStdin | OptionId::PyCallUwsgiForkHooks | OptionId::PluginsDir => {}
            OptionId::Route(table, kind) => config.request_path.routes.push(RouteLine {
                table,
                kind,
                text: values::non_empty(option)?,
                origin: option.origin.clone(),
            }),
            OptionId::AddHeader => config.request_path.add_headers.push(header_line(option)?),
            OptionId::DelHeader => {
                let name = values::non_empty(option)?;
                if http_token(&name).is_none() {
                    return Err(values::invalid(option, "expected a header name"));
                }
                config.request_path.del_headers.push(name.to_ascii_lowercase())
            }
            OptionId::StaticCachePaths | OptionId::OffloadThreads | OptionId::HttpAutoChunked => {}
            // --- end static files, routing, headers (static) ---
            OptionId::WsgiFile => self.file = Some(values::path(option)?),
            OptionId::Module => self.module = Some(split_module(option)?),
            // --- Python plugin options (py) ---
            OptionId::Paste => self.paste = Some(values::non_empty(option)?),
            OptionId::PasteLogger => {
                config.python_features.paste_logger = values::boolean(option, w)?;
                self.python.paste_logger = Some(option.clone());
            }
            OptionId::PasteName => {
                config.python_features.paste_name = Some(values::non_empty(option)?);
                self.python.paste_name = Some(option.clone());
            }
            // Read in place while collecting (the file's [uwsgi] section, then `paste`).
            OptionId::IniPaste | OptionId::IniPasteLogged => {}
            OptionId::PyAutoreload => config.python_features.autoreload = values::seconds_or_off(option, w)?,
            OptionId::PyAutoreloadIgnore => {
                config.python_features.autoreload_ignore.push(python_name(option)?);
                self.python.autoreload_ignore = Some(option.clone());
            }
            OptionId::ReloadOnException => config.python_features.reload_on_exception.any = values::boolean(option, w)?,
            OptionId::ReloadOnExceptionType => {
                config.python_features.reload_on_exception.types.push(python_name(option)?)
            }
            OptionId::ReloadOnExceptionValue => {
                config.python_features.reload_on_exception.values.push(option.value.clone())
            }
            OptionId::ReloadOnExceptionRepr => {
                config.python_features.reload_on_exception.reprs.push(values::non_empty(option)?)
            }
            OptionId::PyTracebacker => config.python_features.tracebacker = Some(values::non_empty(option)?),
            OptionId::ConnectAndRead => {
                return Err(values::invalid(
                    option,
                    "connect-and-read is a command, not a setting: run `liege --connect-and-read ADDR`",
                ))
            }
            // --- end Python plugin options ---
            OptionId::Callable => self.callable = Some(python_name(option)?),
            OptionId::Chdir => config.chdir = Some(values::path(option)?),
            OptionId::Pythonpath => config.pythonpath.push(values::path(option)?),
            OptionId::Virtualenv => config.virtualenv = Some(values::path(option)?),
            OptionId::Env => config.env.push(values::key_value(option)?),
            OptionId::NeedApp => config.need_app = values::boolean(option, w)?,
            OptionId::ShowConfig => config.show_config = values::boolean(option, w)?,
            OptionId::Plugins => check_plugins(option)?,
            // --- mount, factories, cache (apps) ---
            OptionId::Mount => self.apps.mounts.push(apps::mount(option)?),
            OptionId::ManageScriptName => config.manage_script_name = values::boolean(option, w)?,
            OptionId::NoDefaultApp => config.no_default_app = values::boolean(option, w)?,
            OptionId::Cache2 => config.caches.push(apps::cache2(option)?),
            OptionId::Cache => self.apps.cache_items = Some(values::positive(option, w)?),
            OptionId::CacheBlocksize => {
                self.apps.cache_blocksize = Some((values::positive(option, w)?, option.clone()))
            }
            // --- end apps ---
            OptionId::Processes => config.processes = values::positive(option, w)?,
            OptionId::Master => config.master = values::boolean(option, w)?,
            OptionId::LazyApps => config.lazy_apps = values::boolean(option, w)?,
            OptionId::Threads => config.threads = values::positive(option, w)?,
            OptionId::Uid => config.uid = Some(values::non_empty(option)?),
            OptionId::Gid => config.gid = Some(values::non_empty(option)?),
            OptionId::Cap => config.caps.push(values::non_empty(option)?),
            OptionId::Pidfile | OptionId::SafePidfile => config.pidfile = Some(values::path(option)?),
            OptionId::MaxRequests => config.max_requests = values::whole_number(option, w)?,
            OptionId::MaxRequestsDelta => config.max_requests_delta = values::whole_number(option, w)?,
            OptionId::MaxWorkerLifetime => config.max_worker_lifetime = values::seconds_or_off(option, w)?,
            OptionId::ReloadOnRss => config.reload_on_rss = values::number_or_off(option, w)?,
            OptionId::EvilReloadOnRss => config.evil_reload_on_rss = values::number_or_off(option, w)?,
            OptionId::LimitAs => config.limit_as = values::number_or_off(option, w)?,
            OptionId::Harakiri => config.harakiri = values::seconds_or_off(option, w)?,
            OptionId::HarakiriVerbose => config.harakiri_verbose = values::boolean(option, w)?,
            OptionId::ReloadMercy => config.reload_mercy = values::positive_seconds(option, w)?,
            OptionId::WorkerReloadMercy => config.worker_reload_mercy = values::positive_seconds(option, w)?,
            OptionId::TouchReload => config.touch_reload.push(values::path(option)?),
            OptionId::TouchChainReload => config.touch_chain_reload.push(values::path(option)?),
            OptionId::MasterFifo => config.master_fifo.push(values::path(option)?),
            // --- cheaper algorithms, idle mode, process tuning (cheaper) ---
            OptionId::Cheaper
            | OptionId::CheaperInitial
            | OptionId::CheaperStep
            | OptionId::CheaperAlgo
            | OptionId::CheaperOverload
            | OptionId::CheaperIdle
            | OptionId::CheaperRssLimitSoft
            | OptionId::CheaperRssLimitHard
            | OptionId::CheaperBusyness(_) => {
                self.cheaper.apply(def.id, option, w)?;
            }
            OptionId::Idle
            | OptionId::HarakiriQueueThreshold
            | OptionId::CpuAffinity
            | OptionId::NeverSwap
            | OptionId::Ksm => {
                crate::cheaper::apply_tuning(&mut config.tuning, def.id, option, w)?;
            }
            // --- end cheaper ---
            // --- master-side features: side processes, hooks (feat) ---
            OptionId::AttachDaemon(kind) => config.master_features.daemons.push(crate::master::daemon(kind, option)?),
            OptionId::Hook(phase) => config.master_features.hooks.push(crate::master::hook(phase, false, option)?),
            OptionId::ExecHook(phase) => config.master_features.hooks.push(crate::master::hook(phase, true, option)?),
            OptionId::ExitOnReload => config.master_features.exit_on_reload = values::boolean(option, w)?,
            OptionId::HarakiriGracefulTimeout => {
                config.master_features.harakiri_graceful_timeout = values::seconds_or_off(option, w)?
            }
            OptionId::HarakiriGracefulSignal => {
                config.master_features.harakiri_graceful_signal = crate::master::signal_option(option)?
            }
            OptionId::ReloadOnAs => config.master_features.reload_on_as = values::number_or_off(option, w)?,
            OptionId::MaxFd => config.master_features.max_fd = values::number_or_off(option, w)?,
            // --- end master-side features ---
            // --- cron family, cache bitmap, write timeouts, post-buffering-bufsize (cron) ---
            OptionId::Cron(kind) => config.master_features.crons.push(crate::cron::cron(kind, option, w)?),
            OptionId::CronHarakiri => config.master_features.cron_harakiri = crate::cron::harakiri(option, w)?,
            OptionId::SoSendTimeout => config.so_send_timeout = values::seconds_or_off(option, w)?,
            OptionId::PostBufferingBufsize => {
                self.apps.post_buffering_bufsize = Some((values::whole_number(option, w)?, option.clone()))
            }
            OptionId::CacheUseLastModified => self.apps.cache_use_last_modified = values::boolean(option, w)?,
            // Unreachable through `support` above.
            OptionId::LegionCron => {}
            // --- end cron family ---
            // --- mule family (mule) ---
            OptionId::Mule(which) => config.mules.apply(which, option, w)?,
            // Unreachable through `support` above.
            OptionId::MuleHarakiri => {}
            // --- end mule family ---
            // --- spooler family (spooler) ---
            OptionId::Spooler(which) => config.spooler.apply(which, option, w)?,
            // Unreachable through `support` above.
            OptionId::SpoolerSignalAsTask => {}
            // --- end spooler family ---
            OptionId::Logto | OptionId::Logto2 => match values::udp_log_address(option) {
                Some(address) => self.logs.udp_output(option, address)?,
                None => config.logto = Some(values::path(option)?),
            },
            OptionId::LogDate => config.log_date = log_date(option),
            OptionId::LogXForwardedFor => config.log_x_forwarded_for = values::boolean(option, w)?,
            OptionId::DisableLogging => config.disable_logging = values::boolean(option, w)?,
            OptionId::Stats => config.stats = Some(values::socket_address(option)?),
            OptionId::StatsHttp => config.stats_http = values::boolean(option, w)?,
            OptionId::Logformat => {
                config.log_format = if option.value.eq_ignore_ascii_case("json") {
                    LogFormat::Json
                } else {
                    LogFormat::Template(values::non_empty(option)?)
                }
            }
            OptionId::Log4xx => config.log_4xx = values::boolean(option, w)?,
            OptionId::Log5xx => config.log_5xx = values::boolean(option, w)?,
            OptionId::LogSlow => config.log_slow = values::milliseconds_or_off(option, w)?,
            // Unreachable through `support` above, listed so a new option cannot be forgotten here.
            OptionId::Emperor
            | OptionId::VassalsInclude
            | OptionId::VassalSet
            | OptionId::Api
            | OptionId::ApiTokenFile
            | OptionId::RunDir
            | OptionId::LogDir
            | OptionId::VassalPortRange
            | OptionId::EmperorThrottle
            | OptionId::EmperorMaxThrottle
            | OptionId::EmperorStats
            | OptionId::EmperorRequiredHeartbeat
            | OptionId::EmperorTyrant
            | OptionId::EmperorSubreaper
            | OptionId::EmperorTyrantNofollow
            | OptionId::EmperorTyrantInitgroups
            | OptionId::BinaryPath
            | OptionId::Vacuum
            | OptionId::EnableThreads
            | OptionId::DieOnTerm
            | OptionId::ThunderLock
            | OptionId::SingleInterpreter
            | OptionId::NoOrphans
            | OptionId::IgnoreSigpipe
            | OptionId::IgnoreWriteErrors
            | OptionId::DisableWriteException
            | OptionId::CloseOnExec
            | OptionId::NoDeferAccept
            | OptionId::HttpChunkedInput
            | OptionId::PyCallOsafterfork
            | OptionId::AutoProcname
            | OptionId::ProcnamePrefix
            | OptionId::ProcnamePrefixSpaced
            | OptionId::Procname
            | OptionId::ProcnameMaster
            | OptionId::MemoryReport
            | OptionId::BacklogStatus
            | OptionId::HttpWorkers
            | OptionId::UnsubscribeOnGracefulReload
            | OptionId::LoopEngine
            | OptionId::Vhost => {}
        }
        Ok(())
    }

    fn finish(mut self) -> Result<VassalConfig, ConfigError> {
        // --- mount, factories, cache (apps) ---
        // `callable` names the callable of files and of modules without `:callable`, mounted ones included.
        let default_callable = self.callable.clone().unwrap_or_else(|| "application".to_owned());
        // uWSGI's loading order (`uwsgi_python_init_apps`): module, wsgi-file, paste, all on the default
        // mountpoint, so the first that loads is the app (kinto's and ckan's configs rely on the fallback).
        let mut sources = Vec::new();
        if let Some((module, module_callable)) = self.module.take() {
            let callable = module_callable.unwrap_or_else(|| default_callable.clone());
            sources.push(AppSpec { source: AppSource::Module(module), callable });
        }
        if let Some(file) = self.file.take() {
            sources.push(AppSpec { source: AppSource::File(file), callable: default_callable.clone() });
        }
        if let Some(uri) = self.paste.take() {
            sources.push(AppSpec { source: AppSource::Paste(uri), callable: default_callable.clone() });
        }
        let mut sources = sources.into_iter();
        self.config.app = sources.next();
        self.config.fallback_apps = sources.collect();
        self.config.mounts = std::mem::take(&mut self.apps.mounts)
            .into_iter()
            .map(|Mount { mountpoint, target }| {
                let app = match target {
                    MountTarget::File(file) => {
                        AppSpec { source: AppSource::File(file), callable: default_callable.clone() }
                    }
                    MountTarget::Module { module, callable } => AppSpec {
                        source: AppSource::Module(module),
                        callable: callable.unwrap_or_else(|| default_callable.clone()),
                    },
                    MountTarget::Paste(uri) => {
                        AppSpec { source: AppSource::Paste(uri), callable: default_callable.clone() }
                    }
                };
                MountedApp { mountpoint, app }
            })
            .collect();
        match (self.apps.cache_items, self.apps.cache_blocksize.take()) {
            (Some(items), blocksize) => {
                let mut spec = CacheSpec::old_style(items, blocksize.map(|(size, _)| size));
                spec.lastmod = self.apps.cache_use_last_modified;
                self.config.caches.push(spec)
            }
            (None, Some((_, option))) => {
                return Err(ConfigError::Requires { origin: option.origin, name: option.key, required: "cache" })
            }
            (None, None) => {}
        }
        // --- end apps ---
        // --- Python plugin options (py) ---
        let paste_uris: Vec<&str> = self
            .config
            .app
            .iter()
            .chain(&self.config.fallback_apps)
            .chain(self.config.mounts.iter().map(|mount| &mount.app))
            .filter_map(|spec| match &spec.source {
                AppSource::Paste(uri) => Some(uri.as_str()),
                _ => None,
            })
            .collect();
        crate::python::check(&self.config.python_features, &paste_uris, &self.python, &mut self.warnings)?;
        // --- end Python plugin options ---
        // --- post-buffering-bufsize (cron) ---
        // uWSGI (`uwsgi_setup_post_buffering`): 8192 unless given, and never below post-buffering.
        let bufsize = match self.apps.post_buffering_bufsize.take() {
            Some((0, _)) | None => 8192,
            Some((size, option)) if size < self.config.post_buffering => {
                self.warnings.push(ConfigWarning::new(
                    &option.origin,
                    format!(
                        "post-buffering-bufsize {size} is below post-buffering ({}): raised to it, as uWSGI does",
                        self.config.post_buffering
                    ),
                ));
                self.config.post_buffering
            }
            Some((size, _)) => size,
        };
        self.config.post_buffering_bufsize = bufsize.max(self.config.post_buffering).max(1);
        // --- end post-buffering-bufsize ---
        self.config.cheaper = std::mem::take(&mut self.cheaper).finish(self.config.processes, &mut self.warnings)?;
        // --- master-side features (feat) ---
        crate::master::check(&self.config.master_features, self.config.lazy_apps)?;
        // --- end master-side features ---
        if let Some(protocol) = self.protocol {
            for &index in &self.default_protocol_sockets {
                self.config.sockets[index].protocol = protocol;
            }
        }
        if self.http_raw_body {
            self.config.keepalive_timeout = Duration::ZERO;
        }
        // --- logging family (conf) ---
        let has_logfile = self.config.logto.is_some() || self.config.daemonize.is_some();
        self.config.logs = self.logs.finish(has_logfile)?;
        self.config.mules.finish()?; // (mule family)
        self.config.warnings = self.warnings;
        Ok(self.config)
    }
}

// --- static files, routing, headers (static) ---
/// uWSGI's `file-serve-mode` spellings (case-insensitive). uWSGI silently keeps the default for anything
/// else; here that is an error.
fn file_serve_mode(option: &RawOption) -> Result<Option<&'static str>, ConfigError> {
    match option.value.to_ascii_lowercase().as_str() {
        "x-sendfile" | "xsendfile" => Ok(Some("X-Sendfile")),
        "x-accel-redirect" | "xaccelredirect" | "nginx" => Ok(Some("X-Accel-Redirect")),
        "default" | "raw" => Ok(None),
        _ => Err(values::invalid(option, "expected x-sendfile or x-accel-redirect (nginx)")),
    }
}

/// A header name made of HTTP token characters.
fn http_token(name: &str) -> Option<&str> {
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    valid.then_some(name)
}

/// `add-header = Name: value` (uWSGI takes the line verbatim; a line without a colon would be a broken
/// header on the wire, so it is refused here).
fn header_line(option: &RawOption) -> Result<(String, String), ConfigError> {
    let (name, value) =
        option.value.split_once(':').ok_or_else(|| values::invalid(option, "expected 'Name: value'"))?;
    let name = http_token(name.trim()).ok_or_else(|| values::invalid(option, "expected 'Name: value'"))?;
    let value = value.trim();
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(values::invalid(option, "a header value cannot contain CR, LF or NUL"));
    }
    Ok((name.to_owned(), value.to_owned()))
}
// --- end static files, routing, headers (static) ---

/// uWSGI's `http-keepalive = N` (plugins/http): 0 is off, 1 is on with the default timeout, more is the idle
/// timeout in seconds. Configs also say `http-keepalive = true`, which must mean "on, with the default
/// timeout" rather than 0 by leading digits.
fn keepalive(option: &RawOption, w: &mut Vec<ConfigWarning>) -> Result<Duration, ConfigError> {
    match option.value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Ok(DEFAULT_KEEPALIVE),
        "false" | "no" | "off" => Ok(Duration::ZERO),
        _ => match values::seconds(option, w)? {
            one if one == Duration::from_secs(1) => Ok(DEFAULT_KEEPALIVE),
            seconds => Ok(seconds),
        },
    }
}

/// A value read from a file that contains what looks like an inline comment (`harakiri = 60 # one minute`,
/// `processes = 8 ; max`). uWSGI has no inline comments: it keeps the text in the value, so numbers are read
/// by their leading digits and strings keep the comment. liege reads them the same way and says so, since a
/// string that silently ends in "; a comment" is a bug waiting to happen.
fn warn_inline_comment(option: &RawOption, warnings: &mut Vec<ConfigWarning>) {
    if !matches!(option.origin, Origin::File { .. }) || option.key == "logformat" {
        return;
    }
    let value = option.value.as_str();
    let comment_at = value.match_indices([';', '#']).find(|(index, _)| {
        value[..*index].ends_with([' ', '\t']) || (*index + 1 == value.len() && value.ends_with(';'))
    });
    if let Some((index, _)) = comment_at {
        warnings.push(ConfigWarning::new(
            &option.origin,
            format!(
                "'{}' has text after the value that looks like an inline comment ('{}'); uWSGI has no inline \
                 comments and keeps it in the value, and so does liege: put comments on their own line",
                option.key,
                value[index..].trim()
            ),
        ));
    }
}

/// `log-date` as uWSGI's `uwsgi_opt_log_date`: bare, true, 1, on or yes mean the ctime form; anything else is
/// a strftime format. (uWSGI would take `false` as a format too and print "false - "; liege reads it as off.)
fn log_date(option: &RawOption) -> Option<String> {
    match option.value.to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Some(String::new()),
        "false" | "0" | "off" | "no" => None,
        _ => Some(option.value.clone()),
    }
}

/// `protocol` / `socket-protocol`: what plain `socket` sockets speak.
fn socket_protocol(option: &RawOption) -> Result<Protocol, ConfigError> {
    match option.value.to_ascii_lowercase().as_str() {
        "http" | "http11" => Ok(Protocol::Http),
        "uwsgi" => Ok(Protocol::Uwsgi),
        other => Err(values::invalid(
            option,
            format!("liege speaks http and uwsgi; uWSGI's '{other}' protocol (fastcgi, scgi, raw, https...) is not available"),
        )),
    }
}

/// `USER`, `USER:GROUP` (names or numbers), as uWSGI's `chown-socket`.
fn owner(option: &RawOption) -> Result<String, ConfigError> {
    let value = values::non_empty(option)?;
    let (user, group) = value.split_once(':').map_or((value.as_str(), None), |(user, group)| (user, Some(group)));
    if user.is_empty() || group.is_some_and(str::is_empty) || value.chars().any(char::is_whitespace) {
        return Err(values::invalid(option, "expected USER or USER:GROUP"));
    }
    Ok(value)
}

/// `pkg.mod`, `pkg.mod:callable` or a factory call `pkg.mod:create_app(...)`.
fn split_module(option: &RawOption) -> Result<(String, Option<String>), ConfigError> {
    apps::split_module_value(option, &option.value)
}

fn python_name(option: &RawOption) -> Result<String, ConfigError> {
    let name = values::non_empty(option)?;
    if name.chars().any(char::is_whitespace) {
        return Err(values::invalid(option, "expected a Python name"));
    }
    Ok(name)
}

/// `plugins = python3` is in most distribution-packaged uWSGI configs; Python (and HTTP, with uWSGI's
/// `corerouter` base of its HTTP router) are built into liege, so those are accepted, in any of their
/// `python = PATH` names an interpreter. uWSGI's option of that name (an alias of `pyrun`) runs a script
/// instead; a value that is plainly a script is refused with why rather than started as an interpreter.
fn interpreter_path(option: &RawOption) -> Result<PathBuf, ConfigError> {
    let path = values::path(option)?;
    if path.extension().is_some_and(|ext| ext == "py" || ext == "pyc") {
        return Err(values::invalid(
            option,
            "liege's `python` names the interpreter that runs the vassal (e.g. /usr/bin/python3.13); uWSGI's \
             `python = SCRIPT` (pyrun, run a script instead of serving) is not supported",
        ));
    }
    Ok(path)
}

/// spellings (`python311`, `python3.11`, `0:python`, `/usr/lib/uwsgi/plugins/python3_plugin.so`, a path to a
/// python binary). Any other plugin is an error that names what it does and what to use instead.
fn check_plugins(option: &RawOption) -> Result<(), ConfigError> {
    for plugin in option.value.split(',').map(str::trim).filter(|plugin| !plugin.is_empty()) {
        let base = plugin.rsplit('/').next().unwrap_or(plugin);
        let base = base.strip_suffix("_plugin.so").unwrap_or(base);
        let base = base.split_once(':').map_or(base, |(_modifier, name)| name);
        let is_python = base.strip_prefix("python").is_some_and(|version| {
            version.chars().all(|character| character.is_ascii_digit() || character == '.' || character == '_')
        });
        if is_python || base == "http" || base == "corerouter" {
            continue;
        }
        let reason = match plugin_language(base) {
            Some(language) => format!(
                "the '{plugin}' plugin runs {language} apps; liege serves Python WSGI apps only (run that app \
                 under uWSGI or its own server)"
            ),
            None if base == "sentry" => "the 'sentry' plugin (unbit/uwsgi-sentry) reports uWSGI alarms and \
                 crashes to Sentry from C; liege has no plugins: report errors with the sentry-sdk Python \
                 package in the app (sentry_sdk.init; its WSGI integration is enabled by default)"
                .to_owned(),
            None if matches!(base, "gevent" | "greenlet" | "ugreen" | "asyncio" | "tornado" | "coroae") => format!(
                "the '{plugin}' plugin is a loop engine; liege runs WSGI apps with prefork workers and threads \
                 (processes = N, threads = N)"
            ),
            None => {
                format!("liege has no plugins: Python (WSGI) and HTTP are built in, and '{plugin}' is not available")
            }
        };
        return Err(values::invalid(option, reason));
    }
    Ok(())
}

/// The language of uWSGI's request plugins for other languages.
fn plugin_language(name: &str) -> Option<&'static str> {
    let language = match name {
        "php" => "PHP",
        "rack" | "ruby" | "ruby19" | "ruby20" | "rbthreads" | "fiber" => "Ruby",
        "psgi" | "perl" => "Perl",
        "lua" => "Lua",
        "jvm" | "jwsgi" | "ring" | "servlet" => "Java/JVM",
        "mono" => "Mono/.NET",
        "cgi" => "CGI",
        "go" | "gccgo" => "Go",
        "v8" => "JavaScript",
        "pypy" => "PyPy",
        _ => return None,
    };
    Some(language)
}
