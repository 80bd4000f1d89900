//! The option table: every option liege understands, once.
//!
//! The command-line parser, the ini reader, the validation in [`crate::VassalConfig::from_raw`], the emperor
//! parser and `liege --help` all read this one table, so an option cannot be documented but not parsed, or
//! parsed on the command line but not in an ini file. Names and aliases are uWSGI's, so existing ini files
//! and command lines keep working.

/// Identifies an option independently of how it was spelled (canonical name, alias or short flag).
///
/// Code that gives options their meaning matches on this enum, so the compiler points at every place to
/// update when an option is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionId {
    // configuration files and config logic
    Ini,
    Include,
    SetPlaceholder,
    Strict,
    IfEnv,
    IfNotEnv,
    IfExists,
    IfNotExists,
    IfFile,
    IfNotFile,
    IfDir,
    IfNotDir,
    IfOpt,
    IfNotOpt,
    IfHostname,
    IfNotHostname,
    For,
    ForGlob,
    ForTimes,
    ForReadline,
    EndIf,
    EndFor,
    Else,
    // sockets and HTTP
    HttpSocket,
    Socket,
    Listen,
    BufferSize,
    PostBuffering,
    LimitPost,
    HttpTimeout,
    SocketTimeout,
    HttpKeepalive,
    HttpRawBody,
    ChmodSocket,
    // --- static files, routing, headers (static) ---
    StaticMap,
    StaticMap2,
    CheckStatic,
    CheckStaticDocroot,
    StaticIndex,
    StaticSkipExt,
    StaticSafe,
    StaticExpires,
    StaticExpiresMtime,
    StaticExpiresUri,
    StaticExpiresUriMtime,
    StaticExpiresPathInfo,
    StaticExpiresPathInfoMtime,
    StaticExpiresType,
    StaticExpiresTypeMtime,
    StaticGzip,
    StaticGzipAll,
    StaticGzipDir,
    StaticGzipExt,
    StaticCachePaths,
    Mimefile,
    OffloadThreads,
    HonourRange,
    FileServeMode,
    /// Every `route*`, `final-route*`, `error-route*` and `response-route*` option.
    Route(crate::vassal::RouteTable, crate::vassal::RouteKind),
    AddHeader,
    DelHeader,
    HttpAutoChunked,
    // --- end static files, routing, headers (static) ---
    ChownSocket,
    SocketProtocol,
    // the app
    WsgiFile,
    Module,
    Callable,
    Chdir,
    Pythonpath,
    Virtualenv,
    Env,
    NeedApp,
    ShowConfig,
    Plugins,
    // --- mount, factories, cache (apps) ---
    Mount,
    ManageScriptName,
    NoDefaultApp,
    Cache2,
    Cache,
    CacheBlocksize,
    // --- end apps ---
    Pyargv,
    // --- the vassal's interpreter (issue 13) ---
    Python,
    // --- end the vassal's interpreter ---
    // --- Python plugin options: autoreload, paste, reload-on-exception, tracebacker (py) ---
    PyAutoreload,
    PyAutoreloadIgnore,
    Paste,
    PasteLogger,
    PasteName,
    IniPaste,
    IniPasteLogged,
    ReloadOnException,
    ReloadOnExceptionType,
    ReloadOnExceptionValue,
    ReloadOnExceptionRepr,
    PyTracebacker,
    ConnectAndRead,
    // --- end Python plugin options ---
    // processes
    Processes,
    Master,
    LazyApps,
    Threads,
    Uid,
    Gid,
    Pidfile,
    SafePidfile,
    Umask,
    Daemonize,
    Daemonize2,
    // limits and reloads
    MaxRequests,
    MaxRequestsDelta,
    MaxWorkerLifetime,
    ReloadOnRss,
    EvilReloadOnRss,
    LimitAs,
    Harakiri,
    HarakiriVerbose,
    ReloadMercy,
    WorkerReloadMercy,
    TouchReload,
    TouchChainReload,
    MasterFifo,
    Cheaper,
    CheaperInitial,
    CheaperStep,
    CheaperAlgo,
    Idle,
    // --- cheaper algorithms, idle mode, process tuning (cheaper) ---
    CheaperOverload,
    CheaperIdle,
    CheaperRssLimitSoft,
    CheaperRssLimitHard,
    /// `cheaper-busyness-*`.
    CheaperBusyness(crate::cheaper::BusynessOption),
    HarakiriQueueThreshold,
    CpuAffinity,
    NeverSwap,
    Ksm,
    BacklogStatus,
    HttpWorkers,
    UnsubscribeOnGracefulReload,
    // --- end cheaper ---
    // --- master-side features: side processes, hooks (feat) ---
    /// Every `attach-daemon*` spelling.
    AttachDaemon(crate::master::DaemonKind),
    /// `hook-PHASE`.
    Hook(crate::master::HookPhase),
    /// `exec-PHASE`: `hook-PHASE = exec:...`.
    ExecHook(crate::master::HookPhase),
    ExitOnReload,
    HarakiriGracefulTimeout,
    HarakiriGracefulSignal,
    ReloadOnAs,
    MaxFd,
    // --- end master-side features ---
    // --- cron family, cache bitmap, write timeouts, post-buffering-bufsize (cron) ---
    /// `cron`, `unique-cron`, `cron2`.
    Cron(crate::cron::CronKind),
    CronHarakiri,
    /// `legion-cron` and its spellings: refused (no legion subsystem).
    LegionCron,
    /// `so-send-timeout` and its three synonyms (one setting in uWSGI).
    SoSendTimeout,
    PostBufferingBufsize,
    CacheUseLastModified,
    // --- end cron family ---
    // --- mule family (mule) ---
    /// `mule`, `mules`, `farm`, `mule-reload-mercy`, `mule-msg-size`, `mule-msg-recv-size`,
    /// `touch-mules-reload` (see [`crate::mules`]).
    Mule(crate::mules::MuleOption),
    /// `mule-harakiri`: refused (it times uWSGI signal handlers, which liege does not have).
    MuleHarakiri,
    // --- end mule family ---
    // --- spooler family (spooler) ---
    /// `spooler`, `spooler-processes`, `spooler-frequency`, ... (see [`crate::spooler`]).
    Spooler(crate::spooler::SpoolerOption),
    /// `spooler-signal-as-task`: refused (no uWSGI signals).
    SpoolerSignalAsTask,
    // --- end spooler family ---
    // logging and stats
    Logto,
    Logto2,
    LogDate,
    LogXForwardedFor,
    DisableLogging,
    Stats,
    StatsHttp,
    Logformat,
    Log4xx,
    Log5xx,
    LogSlow,
    // --- logging family (conf) ---
    /// Loggers, routes, encoders, drains, rotation: see [`crate::logs`].
    Logging(crate::logs::LogOption),
    // --- end logging family ---
    // --- request and process options (conf) ---
    WsgiDisableFileWrapper,
    WsgiEnvBehaviour,
    HonourStdin,
    PyCallUwsgiForkHooks,
    PluginsDir,
    // --- end request and process options ---
    // emperor
    Emperor,
    VassalsInclude,
    VassalSet,
    Api,
    ApiTokenFile,
    RunDir,
    LogDir,
    VassalPortRange,
    EmperorThrottle,
    EmperorMaxThrottle,
    EmperorStats,
    EmperorRequiredHeartbeat,
    // accepted for compatibility, no effect
    Vacuum,
    EnableThreads,
    DieOnTerm,
    ThunderLock,
    SingleInterpreter,
    NoOrphans,
    IgnoreSigpipe,
    IgnoreWriteErrors,
    DisableWriteException,
    CloseOnExec,
    NoDeferAccept,
    HttpChunkedInput,
    PyCallOsafterfork,
    AutoProcname,
    ProcnamePrefix,
    ProcnamePrefixSpaced,
    Procname,
    ProcnameMaster,
    MemoryReport,
    // refused with an explanation
    LoopEngine,
    Vhost,
    EmperorTyrant,
    EmperorSubreaper,
    EmperorTyrantNofollow,
    EmperorTyrantInitgroups,
    BinaryPath,
    Cap,
}

/// How an option takes its value, which decides both argv parsing and how repeats combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    /// A boolean. A bare `--key` or bare `key` line means true; a value must be one of
    /// true/1/yes/on or false/0/no/off (any case). On the command line a flag never swallows the next
    /// argument (`--master --processes 4` is two options), as with uWSGI's getopt.
    Flag,
    /// One value; when repeated the last one wins.
    Scalar,
    /// Every occurrence is kept, in order (sockets, env, pythonpath...).
    List,
    /// A value that may be omitted, in which case `default` is used (uWSGI's `chmod-socket` alone means 666).
    OptionalValue { default: &'static str },
}

/// The sections of `liege --help`; also documents what an option is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionGroup {
    ConfigFiles,
    Sockets,
    App,
    Processes,
    LimitsAndReloads,
    LoggingAndStats,
    Emperor,
    Compatibility,
    Unsupported,
}

impl OptionGroup {
    /// Every group in the order `--help` prints them.
    pub const ALL: [OptionGroup; 9] = [
        OptionGroup::ConfigFiles,
        OptionGroup::Sockets,
        OptionGroup::App,
        OptionGroup::Processes,
        OptionGroup::LimitsAndReloads,
        OptionGroup::LoggingAndStats,
        OptionGroup::Emperor,
        OptionGroup::Compatibility,
        OptionGroup::Unsupported,
    ];

    pub fn title(self) -> &'static str {
        match self {
            OptionGroup::ConfigFiles => "Configuration files",
            OptionGroup::Sockets => "Sockets and HTTP",
            OptionGroup::App => "The app",
            OptionGroup::Processes => "Processes",
            OptionGroup::LimitsAndReloads => "Limits and reloads",
            OptionGroup::LoggingAndStats => "Logging and stats",
            OptionGroup::Emperor => "Emperor (liege emperor DIR / liege --emperor DIR)",
            OptionGroup::Compatibility => "Accepted for uWSGI compatibility, no effect (each line says why)",
            OptionGroup::Unsupported => "Not supported (an error that says what to do instead)",
        }
    }
}

/// Whether liege acts on an option, and in which mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Configures a vassal (an app).
    Vassal,
    /// Configures the emperor; an error in a vassal's config.
    EmperorOnly,
    /// Accepted (and its value checked) so uWSGI configs keep working, but liege already behaves this way.
    NoEffect,
    /// Refused: the reason says why and what to do instead. Better than a silent no-op that hides a
    /// behaviour the user relies on (e.g. `daemonize` would leave them without a detached process).
    Unsupported { reason: &'static str },
}

/// One row of the option table.
#[derive(Debug, PartialEq, Eq)]
pub struct OptionDef {
    pub id: OptionId,
    /// The canonical name: what [`crate::RawOption::key`] holds whatever spelling was used.
    pub name: &'static str,
    /// Other long names (uWSGI's synonyms), usable both on the command line and in ini files.
    pub aliases: &'static [&'static str],
    /// uWSGI's single-letter flag (`-p`), command line only.
    pub short: Option<char>,
    pub kind: OptionKind,
    pub group: OptionGroup,
    pub support: Support,
    /// What the value looks like, for `--help` (`N`, `ADDR`, `PATH`...). Empty for flags.
    pub value_name: &'static str,
    /// One line for `--help`.
    pub help: &'static str,
}

impl OptionDef {
    /// Every long spelling: the canonical name first, then the aliases.
    pub fn long_names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }

    /// `logformat` is a request-log template whose `%(status)`-style variables are filled per request, so an
    /// unknown `%(name)` in it is kept for the runtime instead of being a config error (as in uWSGI, where
    /// the placeholder pass leaves unresolved references alone).
    pub fn keeps_unknown_references(&self) -> bool {
        self.id == OptionId::Logformat
    }
}

use crate::cheaper::BusynessOption as BO;
use crate::cron::CronKind as CK;
use crate::logs::LogOption as LO;
use crate::master::{DaemonKind as DK, HookPhase as HP};
use crate::mules::MuleOption as MO;
use crate::spooler::SpoolerOption as SO;
use crate::vassal::{RouteKind as RK, RouteTable as RT};
use OptionGroup as G;
use OptionKind::{Flag, List, OptionalValue, Scalar};
use Support::{EmperorOnly, NoEffect, Unsupported, Vassal};

/// Builds a table row. Positional on purpose: one compact row per option keeps the table scannable, and the
/// argument order is the field order of [`OptionDef`].
#[allow(clippy::too_many_arguments)]
const fn opt(
    id: OptionId,
    name: &'static str,
    aliases: &'static [&'static str],
    short: Option<char>,
    kind: OptionKind,
    group: OptionGroup,
    support: Support,
    value_name: &'static str,
    help: &'static str,
) -> OptionDef {
    OptionDef { id, name, aliases, short, kind, group, support, value_name, help }
}

const LOOP_ENGINES: &str =
    "liege runs WSGI apps with prefork workers and threads (processes = N, threads = N); uWSGI's loop engines \
     (gevent, async, ugreen, greenlet, asyncio, tornado) are not available: size threads for the concurrency \
     you need, or run an async app under an ASGI server";

/// The option table. Order within a group is the order of `--help`.
#[rustfmt::skip]
pub static OPTIONS: &[OptionDef] = &[
    // --- configuration files ---
    opt(OptionId::Ini, "ini", &[], None, List, G::ConfigFiles, Vassal, "FILE[:SECTION]",
        "read options from an ini file (section [uwsgi] unless :SECTION), in place; a bare FILE.ini argument does the same"),
    opt(OptionId::Include, "include", &[], None, List, G::ConfigFiles, Vassal, "FILE.ini[:SECTION]",
        "read another ini file in place, like ini (uWSGI's format-by-extension include; liege reads ini only)"),
    opt(OptionId::SetPlaceholder, "set-placeholder", &["set-ph"], None, List, G::ConfigFiles, Vassal, "NAME=VALUE",
        "define a placeholder usable later as %(NAME); not an option itself"),
    opt(OptionId::Strict, "strict", &[], None, Flag, G::ConfigFiles, Vassal, "",
        "unknown keys are errors (liege's default); strict = false makes them warnings, as uWSGI without strict"),
    opt(OptionId::IfEnv, "if-env", &[], None, Scalar, G::ConfigFiles, Vassal, "VAR[=VALUE]",
        "until endif: only if the environment variable is set (and equals VALUE); %(_) is its value"),
    opt(OptionId::IfNotEnv, "if-not-env", &[], None, Scalar, G::ConfigFiles, Vassal, "VAR[=VALUE]",
        "until endif: only if the environment variable is unset (or differs from VALUE)"),
    opt(OptionId::IfExists, "if-exists", &[], None, Scalar, G::ConfigFiles, Vassal, "PATH",
        "until endif: only if PATH exists; %(_) is PATH"),
    opt(OptionId::IfNotExists, "if-not-exists", &[], None, Scalar, G::ConfigFiles, Vassal, "PATH",
        "until endif: only if PATH does not exist"),
    opt(OptionId::IfFile, "if-file", &[], None, Scalar, G::ConfigFiles, Vassal, "PATH",
        "until endif: only if PATH is a regular file; %(_) is PATH"),
    opt(OptionId::IfNotFile, "if-not-file", &[], None, Scalar, G::ConfigFiles, Vassal, "PATH",
        "until endif: only if PATH is not a regular file"),
    opt(OptionId::IfDir, "if-dir", &["if-directory"], None, Scalar, G::ConfigFiles, Vassal, "PATH",
        "until endif: only if PATH is a directory; %(_) is PATH"),
    opt(OptionId::IfNotDir, "if-not-dir", &[], None, Scalar, G::ConfigFiles, Vassal, "PATH",
        "until endif: only if PATH is not a directory"),
    opt(OptionId::IfOpt, "if-opt", &[], None, Scalar, G::ConfigFiles, Vassal, "NAME[=VALUE]",
        "until endif: only if option or placeholder NAME was set before (to VALUE); %(_) is its value"),
    opt(OptionId::IfNotOpt, "if-not-opt", &[], None, Scalar, G::ConfigFiles, Vassal, "NAME[=VALUE]",
        "until endif: only if option or placeholder NAME was not set before (or not to VALUE)"),
    opt(OptionId::IfHostname, "if-hostname", &[], None, Scalar, G::ConfigFiles, Vassal, "NAME",
        "until endif: only on the host called NAME"),
    opt(OptionId::IfNotHostname, "if-not-hostname", &[], None, Scalar, G::ConfigFiles, Vassal, "NAME",
        "until endif: only on hosts not called NAME"),
    opt(OptionId::For, "for", &[], None, Scalar, G::ConfigFiles, Vassal, "WORDS",
        "until endfor: repeat each option once per space-separated word, %(_) being the word"),
    opt(OptionId::ForGlob, "for-glob", &[], None, Scalar, G::ConfigFiles, Vassal, "PATTERN",
        "until endfor: repeat once per path matching PATTERN (directories end in /; no match: the pattern itself)"),
    opt(OptionId::ForTimes, "for-times", &[], None, Scalar, G::ConfigFiles, Vassal, "N",
        "until endfor: repeat N times, %(_) counting from 1"),
    opt(OptionId::ForReadline, "for-readline", &[], None, Scalar, G::ConfigFiles, Vassal, "FILE",
        "until endfor: repeat once per line of FILE, %(_) being the line"),
    opt(OptionId::EndIf, "endif", &["end-if"], None, Flag, G::ConfigFiles, Vassal, "",
        "ends an if-* block (any value is ignored, as in uWSGI)"),
    opt(OptionId::EndFor, "endfor", &["end-for"], None, Flag, G::ConfigFiles, Vassal, "",
        "ends a for* block (any value is ignored, as in uWSGI)"),
    opt(OptionId::Else, "else", &[], None, Flag, G::ConfigFiles, Vassal, "",
        "after an if-* block: the following options apply only if its condition was false (until endif)"),
    // --- sockets and HTTP ---
    opt(OptionId::HttpSocket, "http-socket", &["http11-socket", "http"], None, List, G::Sockets, Vassal, "ADDR",
        "serve HTTP on ADDR (:port, host:port, [v6]:port, /unix/path, fd://N); always HTTP/1.1 with keep-alive; \
         uWSGI's `http` router option means the same here"),
    opt(OptionId::Socket, "socket", &["uwsgi-socket"], Some('s'), List, G::Sockets, Vassal, "ADDR",
        "serve the binary uwsgi protocol (nginx uwsgi_pass) on ADDR"),
    opt(OptionId::Listen, "listen", &[], Some('l'), Scalar, G::Sockets, Vassal, "N",
        "listen backlog (default 1024; uWSGI's 100 drops connections under bursts)"),
    opt(OptionId::BufferSize, "buffer-size", &[], Some('b'), Scalar, G::Sockets, Vassal, "BYTES",
        "largest request head (request line + headers, or uwsgi packet) accepted (default 65536)"),
    opt(OptionId::PostBuffering, "post-buffering", &[], None, Scalar, G::Sockets, Vassal, "BYTES",
        "request bodies larger than this go to a temporary file instead of memory (default 1048576)"),
    opt(OptionId::LimitPost, "limit-post", &[], None, Scalar, G::Sockets, Vassal, "BYTES",
        "largest request body accepted; 0 = unlimited (default)"),
    opt(OptionId::HttpTimeout, "http-timeout", &[], None, Scalar, G::Sockets, Vassal, "SECONDS",
        "how long to wait for a request head or body bytes, or for a stalled response write (default 60); same setting as socket-timeout"),
    opt(OptionId::SocketTimeout, "socket-timeout", &[], Some('z'), Scalar, G::Sockets, Vassal, "SECONDS",
        "how long to wait for a request head or body bytes, or for a stalled response write (default 60); same setting as http-timeout"),
    opt(OptionId::HttpKeepalive, "http-keepalive", &[], None, OptionalValue { default: "15" }, G::Sockets, Vassal, "SECONDS",
        "close idle keep-alive connections after SECONDS (default 15; bare, 1 or true = 15, as uWSGI's 1 = on; 0 or false = no keep-alive)"),
    opt(OptionId::HttpRawBody, "http-raw-body", &[], None, Flag, G::Sockets, Vassal, "",
        "as uWSGI's HTTP router: bodies reach the app as the client sent them (chunked ones decoded) and the \
         connection closes after each response (raw-body sessions never keep alive); no WebSocket upgrades"),
    opt(OptionId::ChmodSocket, "chmod-socket", &["chmod"], Some('C'), OptionalValue { default: "666" }, G::Sockets, Vassal, "MODE",
        "octal permissions of unix sockets (bare = 666, as uWSGI)"),
    // --- static files, routing, headers (static) ---
    opt(OptionId::StaticMap, "static-map", &[], None, List, G::Sockets, Vassal, "MOUNT=DIR",
        "serve files under DIR for PATH_INFO starting with MOUNT (the rest of the path is looked up in DIR; DIR may be a single file); sent by the worker's event loop, never by Python"),
    opt(OptionId::StaticMap2, "static-map2", &[], None, List, G::Sockets, Vassal, "MOUNT=DIR",
        "like static-map, but the whole PATH_INFO (mountpoint included) is looked up in DIR"),
    opt(OptionId::CheckStatic, "check-static", &["static-check"], None, List, G::Sockets, Vassal, "DIR",
        "serve DIR+PATH_INFO when that file exists, before the app is called"),
    opt(OptionId::CheckStaticDocroot, "check-static-docroot", &[], None, Flag, G::Sockets, Vassal, "",
        "serve files from the request's DOCUMENT_ROOT (sent by nginx over the uwsgi protocol)"),
    opt(OptionId::StaticIndex, "static-index", &[], None, List, G::Sockets, Vassal, "FILE",
        "file served when a static directory is requested (repeatable, tried in order); without it directories go to the app"),
    opt(OptionId::StaticSkipExt, "static-skip-ext", &[], None, List, G::Sockets, Vassal, "EXT",
        "never serve static files whose path ends with EXT (they go to the app)"),
    opt(OptionId::StaticSafe, "static-safe", &[], None, List, G::Sockets, Vassal, "DIR",
        "allow static files (e.g. symlink targets) under DIR even though they are outside the mapped directory"),
    opt(OptionId::StaticExpires, "static-expires", &[], None, List, G::Sockets, Vassal, "REGEX SECONDS",
        "static files whose file name matches REGEX get an Expires header of now + SECONDS"),
    opt(OptionId::StaticExpiresMtime, "static-expires-mtime", &[], None, List, G::Sockets, Vassal, "REGEX SECONDS",
        "static files whose file name matches REGEX get an Expires header of the file's mtime + SECONDS"),
    opt(OptionId::StaticExpiresUri, "static-expires-uri", &[], None, List, G::Sockets, Vassal, "REGEX SECONDS",
        "static files whose REQUEST_URI matches REGEX get an Expires header of now + SECONDS"),
    opt(OptionId::StaticExpiresUriMtime, "static-expires-uri-mtime", &[], None, List, G::Sockets, Vassal, "REGEX SECONDS",
        "static files whose REQUEST_URI matches REGEX get an Expires header of the file's mtime + SECONDS"),
    opt(OptionId::StaticExpiresPathInfo, "static-expires-path-info", &[], None, List, G::Sockets, Vassal, "REGEX SECONDS",
        "static files whose PATH_INFO matches REGEX get an Expires header of now + SECONDS"),
    opt(OptionId::StaticExpiresPathInfoMtime, "static-expires-path-info-mtime", &[], None, List, G::Sockets, Vassal, "REGEX SECONDS",
        "static files whose PATH_INFO matches REGEX get an Expires header of the file's mtime + SECONDS"),
    opt(OptionId::StaticExpiresType, "static-expires-type", &[], None, List, G::Sockets, Vassal, "MIME=SECONDS",
        "static files of this content type get an Expires header of now + SECONDS"),
    opt(OptionId::StaticExpiresTypeMtime, "static-expires-type-mtime", &[], None, List, G::Sockets, Vassal, "MIME=SECONDS",
        "static files of this content type get an Expires header of the file's mtime + SECONDS"),
    opt(OptionId::StaticGzip, "static-gzip", &[], None, List, G::Sockets, Vassal, "REGEX",
        "serve FILE.gz instead of FILE when the resolved file name matches REGEX and the client accepts gzip"),
    opt(OptionId::StaticGzipAll, "static-gzip-all", &[], None, Flag, G::Sockets, Vassal, "",
        "serve FILE.gz (or FILE.br) beside any static FILE when the client accepts that encoding"),
    opt(OptionId::StaticGzipDir, "static-gzip-dir", &["static-gzip-prefix"], None, List, G::Sockets, Vassal, "DIR",
        "like static-gzip-all for files whose resolved path starts with DIR"),
    opt(OptionId::StaticGzipExt, "static-gzip-ext", &["static-gzip-suffix"], None, List, G::Sockets, Vassal, "EXT",
        "like static-gzip-all for files whose name ends with EXT"),
    opt(OptionId::Mimefile, "mimefile", &["mime-file"], None, List, G::Sockets, Vassal, "PATH",
        "read content types from this mime.types file (default /etc/mime.types when present, plus a built-in table)"),
    opt(OptionId::HonourRange, "honour-range", &[], None, Flag, G::Sockets, Vassal, "",
        "answer Range requests for static files (one range: 206, unsatisfiable: 416), as uWSGI; off by default as in uWSGI"),
    opt(OptionId::FileServeMode, "file-serve-mode", &["fileserve-mode"], None, Scalar, G::Sockets, Vassal, "MODE",
        "x-sendfile or x-accel-redirect (nginx): answer static files with that header for the front server to send, instead of the body"),
    opt(OptionId::AddHeader, "add-header", &[], None, List, G::Sockets, Vassal, "NAME: VALUE",
        "add this header to every response (repeatable)"),
    opt(OptionId::DelHeader, "del-header", &[], None, List, G::Sockets, Vassal, "NAME",
        "remove this header (any case) from every response the app sends"),
    opt(OptionId::StaticCachePaths, "static-cache-paths", &[], None, Scalar, G::Compatibility, NoEffect, "SECONDS",
        "uWSGI caches resolved static paths; liege resolves them per request (a few microseconds)"),
    opt(OptionId::OffloadThreads, "offload-threads", &["offload-thread"], None, Scalar, G::Compatibility, NoEffect, "N",
        "static files are already sent by the worker's event loop, never by a Python thread, so no offload threads are needed"),
    opt(OptionId::HttpAutoChunked, "http-auto-chunked", &[], None, Flag, G::Compatibility, NoEffect, "",
        "HTTP/1.1 responses without Content-Length are always sent chunked by liege (uWSGI's behaviour with this option on)"),
    opt(OptionId::Route(RT::Request, RK::PathInfo), "route", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (before the app): run ACTION when PATH_INFO matches REGEX"),
    opt(OptionId::Route(RT::Request, RK::Host), "route-host", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (before the app): run ACTION when HTTP_HOST matches REGEX"),
    opt(OptionId::Route(RT::Request, RK::Uri), "route-uri", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (before the app): run ACTION when REQUEST_URI matches REGEX"),
    opt(OptionId::Route(RT::Request, RK::QueryString), "route-qs", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (before the app): run ACTION when QUERY_STRING matches REGEX"),
    opt(OptionId::Route(RT::Request, RK::RemoteAddr), "route-remote-addr", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (before the app): run ACTION when REMOTE_ADDR matches REGEX"),
    opt(OptionId::Route(RT::Request, RK::UserAgent), "route-user-agent", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (before the app): run ACTION when the User-Agent matches REGEX"),
    opt(OptionId::Route(RT::Request, RK::Referer), "route-referer", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (before the app): run ACTION when the Referer matches REGEX"),
    opt(OptionId::Route(RT::Request, RK::RemoteUser), "route-remote-user", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (before the app): run ACTION when REMOTE_USER matches REGEX"),
    opt(OptionId::Route(RT::Request, RK::If), "route-if", &[], None, List, G::Sockets, Vassal, "COND:ARGS ACTION",
        "routing (before the app): run ACTION when the condition holds"),
    opt(OptionId::Route(RT::Request, RK::IfNot), "route-if-not", &[], None, List, G::Sockets, Vassal, "COND:ARGS ACTION",
        "routing (before the app): run ACTION when the condition does not hold"),
    opt(OptionId::Route(RT::Request, RK::Run), "route-run", &[], None, List, G::Sockets, Vassal, "ACTION",
        "routing (before the app): always run ACTION"),
    opt(OptionId::Route(RT::Request, RK::Label), "route-label", &[], None, List, G::Sockets, Vassal, "NAME",
        "routing (before the app): a label for goto"),
    opt(OptionId::Route(RT::Final, RK::PathInfo), "final-route", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (after the response was sent): run ACTION when PATH_INFO matches REGEX"),
    opt(OptionId::Route(RT::Final, RK::Host), "final-route-host", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (after the response was sent): run ACTION when HTTP_HOST matches REGEX"),
    opt(OptionId::Route(RT::Final, RK::Uri), "final-route-uri", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (after the response was sent): run ACTION when REQUEST_URI matches REGEX"),
    opt(OptionId::Route(RT::Final, RK::QueryString), "final-route-qs", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (after the response was sent): run ACTION when QUERY_STRING matches REGEX"),
    opt(OptionId::Route(RT::Final, RK::RemoteAddr), "final-route-remote-addr", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (after the response was sent): run ACTION when REMOTE_ADDR matches REGEX"),
    opt(OptionId::Route(RT::Final, RK::UserAgent), "final-route-user-agent", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (after the response was sent): run ACTION when the User-Agent matches REGEX"),
    opt(OptionId::Route(RT::Final, RK::Referer), "final-route-referer", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (after the response was sent): run ACTION when the Referer matches REGEX"),
    opt(OptionId::Route(RT::Final, RK::RemoteUser), "final-route-remote-user", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (after the response was sent): run ACTION when REMOTE_USER matches REGEX"),
    opt(OptionId::Route(RT::Final, RK::If), "final-route-if", &[], None, List, G::Sockets, Vassal, "COND:ARGS ACTION",
        "routing (after the response was sent): run ACTION when the condition holds"),
    opt(OptionId::Route(RT::Final, RK::IfNot), "final-route-if-not", &[], None, List, G::Sockets, Vassal, "COND:ARGS ACTION",
        "routing (after the response was sent): run ACTION when the condition does not hold"),
    opt(OptionId::Route(RT::Final, RK::Run), "final-route-run", &[], None, List, G::Sockets, Vassal, "ACTION",
        "routing (after the response was sent): always run ACTION"),
    opt(OptionId::Route(RT::Final, RK::Label), "final-route-label", &[], None, List, G::Sockets, Vassal, "NAME",
        "routing (after the response was sent): a label for goto"),
    opt(OptionId::Route(RT::Final, RK::Status), "final-route-status", &[], None, List, G::Sockets, Vassal, "STATUS ACTION",
        "routing (after the response was sent): run ACTION when the response status is STATUS"),
    opt(OptionId::Route(RT::Error, RK::PathInfo), "error-route", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (when the response is an error (status >= 400)): run ACTION when PATH_INFO matches REGEX"),
    opt(OptionId::Route(RT::Error, RK::Host), "error-route-host", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (when the response is an error (status >= 400)): run ACTION when HTTP_HOST matches REGEX"),
    opt(OptionId::Route(RT::Error, RK::Uri), "error-route-uri", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (when the response is an error (status >= 400)): run ACTION when REQUEST_URI matches REGEX"),
    opt(OptionId::Route(RT::Error, RK::QueryString), "error-route-qs", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (when the response is an error (status >= 400)): run ACTION when QUERY_STRING matches REGEX"),
    opt(OptionId::Route(RT::Error, RK::RemoteAddr), "error-route-remote-addr", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (when the response is an error (status >= 400)): run ACTION when REMOTE_ADDR matches REGEX"),
    opt(OptionId::Route(RT::Error, RK::UserAgent), "error-route-user-agent", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (when the response is an error (status >= 400)): run ACTION when the User-Agent matches REGEX"),
    opt(OptionId::Route(RT::Error, RK::Referer), "error-route-referer", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (when the response is an error (status >= 400)): run ACTION when the Referer matches REGEX"),
    opt(OptionId::Route(RT::Error, RK::RemoteUser), "error-route-remote-user", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (when the response is an error (status >= 400)): run ACTION when REMOTE_USER matches REGEX"),
    opt(OptionId::Route(RT::Error, RK::If), "error-route-if", &[], None, List, G::Sockets, Vassal, "COND:ARGS ACTION",
        "routing (when the response is an error (status >= 400)): run ACTION when the condition holds"),
    opt(OptionId::Route(RT::Error, RK::IfNot), "error-route-if-not", &[], None, List, G::Sockets, Vassal, "COND:ARGS ACTION",
        "routing (when the response is an error (status >= 400)): run ACTION when the condition does not hold"),
    opt(OptionId::Route(RT::Error, RK::Run), "error-route-run", &[], None, List, G::Sockets, Vassal, "ACTION",
        "routing (when the response is an error (status >= 400)): always run ACTION"),
    opt(OptionId::Route(RT::Error, RK::Label), "error-route-label", &[], None, List, G::Sockets, Vassal, "NAME",
        "routing (when the response is an error (status >= 400)): a label for goto"),
    opt(OptionId::Route(RT::Error, RK::Status), "error-route-status", &[], None, List, G::Sockets, Vassal, "STATUS ACTION",
        "routing (when the response is an error (status >= 400)): run ACTION when the response status is STATUS"),
    opt(OptionId::Route(RT::Response, RK::PathInfo), "response-route", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (before the response head is sent): run ACTION when PATH_INFO matches REGEX"),
    opt(OptionId::Route(RT::Response, RK::Host), "response-route-host", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (before the response head is sent): run ACTION when HTTP_HOST matches REGEX"),
    opt(OptionId::Route(RT::Response, RK::Uri), "response-route-uri", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (before the response head is sent): run ACTION when REQUEST_URI matches REGEX"),
    opt(OptionId::Route(RT::Response, RK::QueryString), "response-route-qs", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (before the response head is sent): run ACTION when QUERY_STRING matches REGEX"),
    opt(OptionId::Route(RT::Response, RK::RemoteAddr), "response-route-remote-addr", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (before the response head is sent): run ACTION when REMOTE_ADDR matches REGEX"),
    opt(OptionId::Route(RT::Response, RK::UserAgent), "response-route-user-agent", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (before the response head is sent): run ACTION when the User-Agent matches REGEX"),
    opt(OptionId::Route(RT::Response, RK::Referer), "response-route-referer", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (before the response head is sent): run ACTION when the Referer matches REGEX"),
    opt(OptionId::Route(RT::Response, RK::RemoteUser), "response-route-remote-user", &[], None, List, G::Sockets, Vassal, "REGEX ACTION",
        "routing (before the response head is sent): run ACTION when REMOTE_USER matches REGEX"),
    opt(OptionId::Route(RT::Response, RK::If), "response-route-if", &[], None, List, G::Sockets, Vassal, "COND:ARGS ACTION",
        "routing (before the response head is sent): run ACTION when the condition holds"),
    opt(OptionId::Route(RT::Response, RK::IfNot), "response-route-if-not", &[], None, List, G::Sockets, Vassal, "COND:ARGS ACTION",
        "routing (before the response head is sent): run ACTION when the condition does not hold"),
    opt(OptionId::Route(RT::Response, RK::Run), "response-route-run", &[], None, List, G::Sockets, Vassal, "ACTION",
        "routing (before the response head is sent): always run ACTION"),
    opt(OptionId::Route(RT::Response, RK::Label), "response-route-label", &[], None, List, G::Sockets, Vassal, "NAME",
        "routing (before the response head is sent): a label for goto"),
    opt(OptionId::Route(RT::Response, RK::Status), "response-route-status", &[], None, List, G::Sockets, Vassal, "STATUS ACTION",
        "routing (before the response head is sent): run ACTION when the response status is STATUS"),
    // --- end static files, routing, headers (static) ---
    opt(OptionId::ChownSocket, "chown-socket", &[], None, Scalar, G::Sockets, Vassal, "USER[:GROUP]",
        "owner (and group) of unix sockets, set after binding (needs the right to chown: root, or your own group)"),
    opt(OptionId::SocketProtocol, "protocol", &["socket-protocol"], None, Scalar, G::Sockets, Vassal, "http|uwsgi",
        "protocol spoken by plain `socket` sockets (default uwsgi); http-socket is always HTTP"),
    // --- the app ---
    opt(OptionId::WsgiFile, "wsgi-file", &["file"], None, Scalar, G::App, Vassal, "PATH",
        "load the WSGI app from a Python file (a bare app.py / app.wsgi argument does the same)"),
    opt(OptionId::Module, "module", &["wsgi"], Some('w'), Scalar, G::App, Vassal, "MOD[:CALLABLE]",
        "load the WSGI app from an importable module (pkg.mod or pkg.mod:callable)"),
    opt(OptionId::Callable, "callable", &[], None, Scalar, G::App, Vassal, "NAME",
        "name of the WSGI callable in the module or file (default application)"),
    opt(OptionId::Chdir, "chdir", &[], None, Scalar, G::App, Vassal, "DIR",
        "change to DIR before loading the app"),
    opt(OptionId::Pythonpath, "pythonpath", &["python-path", "pp"], None, List, G::App, Vassal, "DIR",
        "add DIR to sys.path (repeatable)"),
    opt(OptionId::Virtualenv, "virtualenv", &["home", "venv", "pyhome"], Some('H'), Scalar, G::App, Vassal, "DIR",
        "run the app in this virtualenv"),
    opt(OptionId::Env, "env", &[], None, List, G::App, Vassal, "KEY=VALUE",
        "set an environment variable for the app (repeatable)"),
    opt(OptionId::ShowConfig, "show-config", &[], None, Flag, G::ConfigFiles, Vassal, "",
        "log the configuration as an ini section at startup (uWSGI's `;uWSGI instance configuration` block)"),
    opt(OptionId::NeedApp, "need-app", &[], None, Flag, G::App, Vassal, "",
        "fail at startup if the app cannot be loaded (default true, as uWSGI 2.1)"),
    opt(OptionId::Plugins, "plugins", &["plugin", "need-plugins", "need-plugin"], None, List, G::App, Vassal, "NAMES",
        "accepted for python plugins (python, python3, python311...) and http: both are built in; \
         liege serves WSGI apps only, any other plugin is an error"),
    // --- mount, factories, cache (apps) ---
    opt(OptionId::Mount, "mount", &[], None, List, G::App, Vassal, "MOUNTPOINT=APP",
        "load another app under MOUNTPOINT (APP: file.py, file.wsgi, pkg.mod or pkg.mod:callable); repeatable"),
    opt(OptionId::ManageScriptName, "manage-script-name", &[], None, Flag, G::App, Vassal, "",
        "pick the app by the longest mountpoint prefixing PATH_INFO, moving that prefix to SCRIPT_NAME"),
    opt(OptionId::NoDefaultApp, "no-default-app", &[], None, Flag, G::App, Vassal, "",
        "a request matching no mountpoint gets a 500 instead of the default (first) app, as uWSGI"),
    opt(OptionId::Cache2, "cache2", &[], None, List, G::App, Vassal, "name=NAME,items=N[,blocksize=B,...]",
        "create a cache shared by all workers (uwsgi.cache_get/cache_set...); repeatable"),
    opt(OptionId::Cache, "cache", &[], None, Scalar, G::App, Vassal, "N",
        "create the old-style cache 'default' with N items"),
    opt(OptionId::CacheBlocksize, "cache-blocksize", &[], None, Scalar, G::App, Vassal, "BYTES",
        "largest value of the old-style cache (default 65536)"),
    // --- end apps ---
    opt(OptionId::Pyargv, "pyargv", &[], None, Scalar, G::App, Vassal, "ARGS",
        "sys.argv[1:] for the app: ARGS split at spaces (sys.argv[0] stays 'liege', as uWSGI keeps 'uwsgi')"),
    // --- the vassal's interpreter (issue 13) ---
    opt(OptionId::Python, "python", &[], None, Scalar, G::App, Vassal, "PATH",
        "run this vassal on the Python interpreter at PATH (needs liege installed for it: PATH -m pip install \
         liege); liege's answer to uWSGI's plugins = python3XX. uWSGI's `python = SCRIPT.py` (pyrun) is refused"),
    // --- end the vassal's interpreter ---
    // --- Python plugin options: autoreload, paste, reload-on-exception, tracebacker (py) ---
    opt(OptionId::PyAutoreload, "py-autoreload", &["py-auto-reload", "python-autoreload", "python-auto-reload"], None, Scalar, G::LimitsAndReloads, Vassal, "SECONDS",
        "development: every SECONDS each worker checks the files of the modules in sys.modules and, when one changed since it was first seen, the vassal reloads gracefully (0 = off)"),
    opt(OptionId::PyAutoreloadIgnore, "py-auto-reload-ignore", &[], None, List, G::LimitsAndReloads, Vassal, "MODULE",
        "leave this module (its name in sys.modules) out of py-autoreload's checks (repeatable)"),
    opt(OptionId::Paste, "paste", &[], None, Scalar, G::App, Vassal, "URI",
        "load the app with PasteDeploy: paste.deploy.loadapp(URI), e.g. config:/etc/app/api-paste.ini (PasteDeploy must be installed for the app's Python)"),
    opt(OptionId::PasteLogger, "paste-logger", &[], None, Flag, G::App, Vassal, "",
        "before loading a paste app, set up logging from its config file (logging.config.fileConfig); as in uWSGI any value but false/off/no/0 means on"),
    opt(OptionId::PasteName, "paste-name", &[], None, Scalar, G::App, Vassal, "NAME",
        "the paste section to load: loadapp(URI, NAME) (PasteDeploy's default: main)"),
    opt(OptionId::IniPaste, "ini-paste", &[], None, List, G::ConfigFiles, Vassal, "FILE",
        "read the [uwsgi] section of the paste config FILE, like ini, and load the app from FILE (paste = config:FILE, made absolute)"),
    opt(OptionId::IniPasteLogged, "ini-paste-logged", &[], None, List, G::ConfigFiles, Vassal, "FILE",
        "ini-paste with paste-logger: logging is set up from FILE too"),
    opt(OptionId::ReloadOnException, "reload-on-exception", &[], None, Flag, G::LimitsAndReloads, Vassal, "",
        "recycle a worker whose app raised an unhandled exception: its requests in flight finish (the failing one with a 500), then it is replaced"),
    opt(OptionId::ReloadOnExceptionType, "reload-on-exception-type", &[], None, List, G::LimitsAndReloads, Vassal, "TYPE",
        "reload-on-exception for exceptions of this class only: module.Name as uWSGI names it (myapp.errors.Fatal, builtins.MemoryError; a builtin also by its bare name); repeatable"),
    opt(OptionId::ReloadOnExceptionValue, "reload-on-exception-value", &[], None, List, G::LimitsAndReloads, Vassal, "VALUE",
        "reload-on-exception for exceptions whose str() is exactly VALUE; repeatable"),
    opt(OptionId::ReloadOnExceptionRepr, "reload-on-exception-repr", &[], None, List, G::LimitsAndReloads, Vassal, "TYPE: VALUE",
        "reload-on-exception for exceptions whose 'module.Name: value' (uWSGI's repr) is exactly this; repeatable"),
    opt(OptionId::PyTracebacker, "py-tracebacker", &[], None, Scalar, G::LoggingAndStats, Vassal, "PREFIX",
        "each worker answers on the unix socket PREFIX<worker id> with the Python stack of each of its threads (read it with liege --connect-and-read PREFIX1)"),
    opt(OptionId::ConnectAndRead, "connect-and-read", &[], None, Scalar, G::LoggingAndStats, Vassal, "ADDR",
        "a command: connect to ADDR (unix socket path or host:port), copy what it sends to stderr until it closes, and exit (run as liege --connect-and-read ADDR)"),
    // --- end Python plugin options ---
    // --- processes ---
    opt(OptionId::Processes, "processes", &["workers"], Some('p'), Scalar, G::Processes, Vassal, "N",
        "number of worker processes (default 1; the maximum when cheaper is set)"),
    opt(OptionId::Master, "master", &[], Some('M'), Flag, G::Processes, Vassal, "",
        "run a master process: always the case in liege (false is ignored with a warning)"),
    opt(OptionId::LazyApps, "lazy-apps", &["lazy"], None, Flag, G::Processes, Vassal, "",
        "load the app in each worker after fork instead of once in the master"),
    opt(OptionId::Threads, "threads", &[], None, Scalar, G::Processes, Vassal, "N",
        "Python threads per worker (default 1: the app runs inline on the worker's event loop)"),
    opt(OptionId::Uid, "uid", &[], None, Scalar, G::Processes, Vassal, "USER",
        "switch to this user (name or number) after binding sockets"),
    opt(OptionId::Gid, "gid", &[], None, Scalar, G::Processes, Vassal, "GROUP",
        "switch to this group (name or number) after binding sockets"),
    opt(OptionId::Cap, "cap", &[], None, List, G::Processes, Vassal, "CAPS",
        "Linux capabilities kept after uid/gid drop root (setuid,setgid,net_bind_service...; kept across reloads)"),
    opt(OptionId::Pidfile, "pidfile", &[], None, Scalar, G::Processes, Vassal, "PATH",
        "write the master's pid to PATH"),
    opt(OptionId::SafePidfile, "safe-pidfile", &[], None, Scalar, G::Processes, Vassal, "PATH",
        "the same as pidfile: liege writes it once, right after binding, before privileges drop (as uWSGI's safe-pidfile)"),
    opt(OptionId::Umask, "umask", &[], None, Scalar, G::Processes, Vassal, "MODE",
        "set the process umask (octal, e.g. 022) before anything is created: sockets, logs, pidfile, app files"),
    opt(OptionId::Daemonize, "daemonize", &[], Some('d'), Scalar, G::Processes, Vassal, "LOGFILE",
        "detach from the terminal (fork, new session) and append all output to LOGFILE; not needed under systemd"),
    opt(OptionId::Daemonize2, "daemonize2", &[], None, Scalar, G::Processes, Vassal, "LOGFILE",
        "the same as daemonize (uWSGI detaches after loading the app; liege detaches before binding)"),
    // --- limits and reloads ---
    opt(OptionId::MaxRequests, "max-requests", &[], Some('R'), Scalar, G::LimitsAndReloads, Vassal, "N",
        "recycle a worker after N requests (0 = never, the default)"),
    opt(OptionId::MaxRequestsDelta, "max-requests-delta", &[], None, Scalar, G::LimitsAndReloads, Vassal, "N",
        "add worker_id * N to max-requests so workers do not all recycle at once"),
    opt(OptionId::MaxWorkerLifetime, "max-worker-lifetime", &[], None, Scalar, G::LimitsAndReloads, Vassal, "SECONDS",
        "recycle a worker after it has run this long (0 = never)"),
    opt(OptionId::ReloadOnRss, "reload-on-rss", &[], None, Scalar, G::LimitsAndReloads, Vassal, "MB",
        "gracefully recycle a worker whose resident memory exceeds MB after a request"),
    opt(OptionId::EvilReloadOnRss, "evil-reload-on-rss", &[], None, Scalar, G::LimitsAndReloads, Vassal, "MB",
        "kill a worker whose resident memory exceeds MB, even mid-request (checked by the master)"),
    opt(OptionId::LimitAs, "limit-as", &[], None, Scalar, G::LimitsAndReloads, Vassal, "MB",
        "limit each worker's address space (RLIMIT_AS) to MB"),
    opt(OptionId::Harakiri, "harakiri", &[], Some('t'), Scalar, G::LimitsAndReloads, Vassal, "SECONDS",
        "kill a worker whose request runs longer than SECONDS (0 = off)"),
    opt(OptionId::HarakiriVerbose, "harakiri-verbose", &[], None, Flag, G::LimitsAndReloads, Vassal, "",
        "log details (request, Python stack) when harakiri kills a worker"),
    opt(OptionId::ReloadMercy, "reload-mercy", &[], None, Scalar, G::LimitsAndReloads, Vassal, "SECONDS",
        "how long a reload or stop waits for workers before killing them (default 60)"),
    opt(OptionId::WorkerReloadMercy, "worker-reload-mercy", &[], None, Scalar, G::LimitsAndReloads, Vassal, "SECONDS",
        "how long a recycled worker may take to finish (default 60)"),
    opt(OptionId::TouchReload, "touch-reload", &[], None, List, G::LimitsAndReloads, Vassal, "PATH",
        "gracefully reload when PATH's modification time changes (repeatable)"),
    opt(OptionId::TouchChainReload, "touch-chain-reload", &[], None, List, G::LimitsAndReloads, Vassal, "PATH",
        "reload workers one at a time when PATH's modification time changes (repeatable)"),
    opt(OptionId::MasterFifo, "master-fifo", &[], None, List, G::LimitsAndReloads, Vassal, "PATH",
        "create a FIFO at PATH accepting uWSGI's one-letter master commands (r, c, q...)"),
    opt(OptionId::Cheaper, "cheaper", &[], None, Scalar, G::LimitsAndReloads, Vassal, "N",
        "adaptive worker count: keep at least N workers (fewer than processes), more under load (see cheaper-algo)"),
    opt(OptionId::CheaperInitial, "cheaper-initial", &[], None, Scalar, G::LimitsAndReloads, Vassal, "N",
        "workers started at boot with cheaper (default: the cheaper minimum)"),
    opt(OptionId::CheaperStep, "cheaper-step", &[], None, Scalar, G::LimitsAndReloads, Vassal, "N",
        "workers added at once by the cheaper algorithm (default 1)"),
    opt(OptionId::CheaperAlgo, "cheaper-algo", &[], None, Scalar, G::LimitsAndReloads, Vassal, "NAME",
        "cheaper algorithm: spare (default), spare2, backlog, manual (the master FIFO's + and - only) or busyness"),
    opt(OptionId::Idle, "idle", &[], None, Scalar, G::LimitsAndReloads, Vassal, "SECONDS",
        "idle mode: after SECONDS without a request, stop every worker until the next connection arrives (then start processes, or cheaper, workers)"),
    // --- cheaper algorithms, idle mode, process tuning (cheaper) ---
    opt(OptionId::CheaperOverload, "cheaper-overload", &[], None, Scalar, G::LimitsAndReloads, Vassal, "N",
        "cheaper: spare acts after N seconds of all-busy or idle workers, backlog spawns while the listen queue is longer than N, busyness measures over N seconds (default 3)"),
    opt(OptionId::CheaperIdle, "cheaper-idle", &[], None, Scalar, G::LimitsAndReloads, Vassal, "SECONDS",
        "cheaper-algo = spare2: retire a worker after SECONDS with more than cheaper workers idle (default 10)"),
    opt(OptionId::CheaperRssLimitSoft, "cheaper-rss-limit-soft", &[], None, Scalar, G::LimitsAndReloads, Vassal, "BYTES",
        "cheaper: spawn no more workers while their total resident memory is at least BYTES"),
    opt(OptionId::CheaperRssLimitHard, "cheaper-rss-limit-hard", &[], None, Scalar, G::LimitsAndReloads, Vassal, "BYTES",
        "cheaper: while the workers' total resident memory is at least BYTES, retire the oldest idle worker each second (needs cheaper-rss-limit-soft, lower)"),
    opt(OptionId::CheaperBusyness(BO::Max), "cheaper-busyness-max", &[], None, Scalar, G::LimitsAndReloads, Vassal, "PERCENT",
        "cheaper-algo = busyness: above this average busyness spawn cheaper-step workers (default 50)"),
    opt(OptionId::CheaperBusyness(BO::Min), "cheaper-busyness-min", &[], None, Scalar, G::LimitsAndReloads, Vassal, "PERCENT",
        "cheaper-algo = busyness: below this average busyness retire a worker once the cheaper timer allows (default 25)"),
    opt(OptionId::CheaperBusyness(BO::Multiplier), "cheaper-busyness-multiplier", &[], None, Scalar, G::LimitsAndReloads, Vassal, "N",
        "cheaper-algo = busyness: a worker is retired after N idle cheaper-overload periods (default 10)"),
    opt(OptionId::CheaperBusyness(BO::Penalty), "cheaper-busyness-penalty", &[], None, Scalar, G::LimitsAndReloads, Vassal, "N",
        "cheaper-algo = busyness: added to the multiplier when workers are needed again soon after one was retired (default 2)"),
    opt(OptionId::CheaperBusyness(BO::Verbose), "cheaper-busyness-verbose", &[], None, Flag, G::LimitsAndReloads, Vassal, "",
        "cheaper-algo = busyness: log every measurement and decision"),
    opt(OptionId::CheaperBusyness(BO::BacklogAlert), "cheaper-busyness-backlog-alert", &[], None, Scalar, G::LimitsAndReloads, Vassal, "N",
        "cheaper-algo = busyness: spawn emergency workers whenever the listen queue is longer than N (default 33)"),
    opt(OptionId::CheaperBusyness(BO::BacklogMultiplier), "cheaper-busyness-backlog-multiplier", &[], None, Scalar, G::LimitsAndReloads, Vassal, "N",
        "cheaper-algo = busyness: the multiplier while emergency workers run (default 3)"),
    opt(OptionId::CheaperBusyness(BO::BacklogStep), "cheaper-busyness-backlog-step", &[], None, Scalar, G::LimitsAndReloads, Vassal, "N",
        "cheaper-algo = busyness: emergency workers spawned at once (default 1)"),
    opt(OptionId::CheaperBusyness(BO::BacklogNonzero), "cheaper-busyness-backlog-nonzero", &[], None, Scalar, G::LimitsAndReloads, Vassal, "SECONDS",
        "cheaper-algo = busyness: spawn an emergency worker when the listen queue has been non-empty for SECONDS (default 60)"),
    opt(OptionId::HarakiriQueueThreshold, "harakiri-queue-threshold", &[], None, Scalar, G::LimitsAndReloads, Vassal, "N",
        "harakiri kills a request past its time only while the listen queue holds at least N connections (default 0: always)"),
    opt(OptionId::CpuAffinity, "cpu-affinity", &[], None, Scalar, G::Processes, Vassal, "N",
        "pin each worker to N CPUs: worker W gets CPUs (W-1)*N onwards, wrapping around the machine's CPUs"),
    opt(OptionId::NeverSwap, "never-swap", &[], None, Flag, G::Processes, Vassal, "",
        "lock the master's and every worker's memory in RAM (mlockall); needs a large enough RLIMIT_MEMLOCK or CAP_IPC_LOCK"),
    opt(OptionId::Ksm, "ksm", &[], None, OptionalValue { default: "1" }, G::Processes, Vassal, "N",
        "Linux KSM: every N requests (workers) or N seconds (master) mark the process's memory mergeable (madvise MADV_MERGEABLE); bare ksm is 1"),
    opt(OptionId::BacklogStatus, "backlog-status", &[], None, OptionalValue { default: "true" }, G::Compatibility, NoEffect, "VALUE",
        "no uWSGI setting: the name of uWSGI's management flag 15 (a runtime query of the listen queue); uWSGI reads the ini key as a placeholder and does nothing, and so does liege (the stats server reports listen_queue)"),
    opt(OptionId::HttpWorkers, "http-workers", &[], None, Scalar, G::Compatibility, NoEffect, "N",
        "uWSGI's number of HTTP router processes in front of the workers; liege has no router: every worker (processes = N) parses HTTP itself, so HTTP is already handled by all of them"),
    opt(OptionId::UnsubscribeOnGracefulReload, "unsubscribe-on-graceful-reload", &[], None, Flag, G::Compatibility, NoEffect, "",
        "acts only on subscriptions to a uWSGI fastrouter (subscribe-to), which liege does not have (subscribe-to is refused), so it changes nothing, in uWSGI as here"),
    // --- end cheaper ---
    // --- master-side features: side processes, hooks (feat) ---
    opt(OptionId::AttachDaemon(DK::Dumb), "attach-daemon", &[], None, List, G::Processes, Vassal, "COMMAND",
        "run COMMAND next to the workers (Celery, a queue consumer...): started by the master, respawned with backoff when it exits, stopped with the vassal; its output goes to the vassal's log"),
    opt(OptionId::AttachDaemon(DK::Control), "attach-control-daemon", &[], None, List, G::Processes, Vassal, "COMMAND",
        "like attach-daemon, but the vassal stops when COMMAND exits"),
    opt(OptionId::AttachDaemon(DK::Smart), "smart-attach-daemon", &[], None, List, G::Processes, Vassal, "PIDFILE[,FREQ] COMMAND",
        "run COMMAND, which daemonizes and writes PIDFILE; watched through PIDFILE (started again when its pid is gone), kept running across reloads"),
    opt(OptionId::AttachDaemon(DK::Smart2), "smart-attach-daemon2", &[], None, List, G::Processes, Vassal, "PIDFILE[,FREQ] COMMAND",
        "like smart-attach-daemon for a COMMAND that stays in the foreground: liege daemonizes it and writes PIDFILE"),
    opt(OptionId::AttachDaemon(DK::KeyValue), "attach-daemon2", &[], None, List, G::Processes, Vassal, "cmd=COMMAND[,key=value...]",
        "attach-daemon with keys: cmd, pidfile, daemonize, freq, control, touch (files;...), stopsignal, reloadsignal, stdin, uid, gid, chdir, max_throttle, notifypid"),
    opt(OptionId::Hook(HP::Asap), "hook-asap", &[], None, List, G::Processes, Vassal, "ACTION:ARGS",
        "run a hook action as early as possible: before logs, sockets and the app (exec:, safeexec:, mkdir:, chdir:, putenv:, write:, append:, writefifo:, unlink:, chmod:, chown:, print:, exit:, unix_signal:N FUNCTION...)"),
    opt(OptionId::ExecHook(HP::Asap), "exec-asap", &[], None, List, G::Processes, Vassal, "COMMAND",
        "run COMMAND (sh -c) as early as possible: before logs, sockets and the app; a non-zero exit stops the vassal (as hook-asap = exec:COMMAND)"),
    opt(OptionId::Hook(HP::PreJail), "hook-pre-jail", &[], None, List, G::Processes, Vassal, "ACTION:ARGS",
        "run a hook action before the jail (liege has none: at startup, first start only) (exec:, safeexec:, mkdir:, chdir:, putenv:, write:, append:, writefifo:, unlink:, chmod:, chown:, print:, exit:, unix_signal:N FUNCTION...)"),
    opt(OptionId::ExecHook(HP::PreJail), "exec-pre-jail", &[], None, List, G::Processes, Vassal, "COMMAND",
        "run COMMAND (sh -c) before the jail (liege has none: at startup, first start only); a non-zero exit stops the vassal (as hook-pre-jail = exec:COMMAND)"),
    opt(OptionId::Hook(HP::PostJail), "hook-post-jail", &[], None, List, G::Processes, Vassal, "ACTION:ARGS",
        "run a hook action after the jail (liege has none: at startup, first start only) (exec:, safeexec:, mkdir:, chdir:, putenv:, write:, append:, writefifo:, unlink:, chmod:, chown:, print:, exit:, unix_signal:N FUNCTION...)"),
    opt(OptionId::ExecHook(HP::PostJail), "exec-post-jail", &[], None, List, G::Processes, Vassal, "COMMAND",
        "run COMMAND (sh -c) after the jail (liege has none: at startup, first start only); a non-zero exit stops the vassal (as hook-post-jail = exec:COMMAND)"),
    opt(OptionId::Hook(HP::InJail), "hook-in-jail", &[], None, List, G::Processes, Vassal, "ACTION:ARGS",
        "run a hook action in the jail (liege has none: at startup) (exec:, safeexec:, mkdir:, chdir:, putenv:, write:, append:, writefifo:, unlink:, chmod:, chown:, print:, exit:, unix_signal:N FUNCTION...)"),
    opt(OptionId::ExecHook(HP::InJail), "exec-in-jail", &[], None, List, G::Processes, Vassal, "COMMAND",
        "run COMMAND (sh -c) in the jail (liege has none: at startup); a non-zero exit stops the vassal (as hook-in-jail = exec:COMMAND)"),
    opt(OptionId::Hook(HP::AsRoot), "hook-as-root", &[], None, List, G::Processes, Vassal, "ACTION:ARGS",
        "run a hook action just before privileges drop (only when started as root) (exec:, safeexec:, mkdir:, chdir:, putenv:, write:, append:, writefifo:, unlink:, chmod:, chown:, print:, exit:, unix_signal:N FUNCTION...)"),
    opt(OptionId::ExecHook(HP::AsRoot), "exec-as-root", &[], None, List, G::Processes, Vassal, "COMMAND",
        "run COMMAND (sh -c) just before privileges drop (only when started as root); a non-zero exit stops the vassal (as hook-as-root = exec:COMMAND)"),
    opt(OptionId::Hook(HP::AsUser), "hook-as-user", &[], None, List, G::Processes, Vassal, "ACTION:ARGS",
        "run a hook action just after privileges drop (or at that point when not root) (exec:, safeexec:, mkdir:, chdir:, putenv:, write:, append:, writefifo:, unlink:, chmod:, chown:, print:, exit:, unix_signal:N FUNCTION...)"),
    opt(OptionId::ExecHook(HP::AsUser), "exec-as-user", &[], None, List, G::Processes, Vassal, "COMMAND",
        "run COMMAND (sh -c) just after privileges drop (or at that point when not root); a non-zero exit stops the vassal (as hook-as-user = exec:COMMAND)"),
    opt(OptionId::Hook(HP::AsUserAtexit), "hook-as-user-atexit", &[], None, List, G::Processes, Vassal, "ACTION:ARGS",
        "run a hook action when the master exits (exec:, safeexec:, mkdir:, chdir:, putenv:, write:, append:, writefifo:, unlink:, chmod:, chown:, print:, exit:, unix_signal:N FUNCTION...)"),
    opt(OptionId::ExecHook(HP::AsUserAtexit), "exec-as-user-atexit", &[], None, List, G::Processes, Vassal, "COMMAND",
        "run COMMAND (sh -c) when the master exits; a non-zero exit stops the vassal (as hook-as-user-atexit = exec:COMMAND)"),
    opt(OptionId::Hook(HP::PreApp), "hook-pre-app", &[], None, List, G::Processes, Vassal, "ACTION:ARGS",
        "run a hook action before the app is imported (with lazy-apps: in each worker) (exec:, safeexec:, mkdir:, chdir:, putenv:, write:, append:, writefifo:, unlink:, chmod:, chown:, print:, exit:, unix_signal:N FUNCTION...)"),
    opt(OptionId::ExecHook(HP::PreApp), "exec-pre-app", &[], None, List, G::Processes, Vassal, "COMMAND",
        "run COMMAND (sh -c) before the app is imported (with lazy-apps: in each worker); a non-zero exit stops the vassal (as hook-pre-app = exec:COMMAND)"),
    opt(OptionId::Hook(HP::PostApp), "hook-post-app", &[], None, List, G::Processes, Vassal, "ACTION:ARGS",
        "run a hook action after the app is imported in the master (not with lazy-apps) (exec:, safeexec:, mkdir:, chdir:, putenv:, write:, append:, writefifo:, unlink:, chmod:, chown:, print:, exit:, unix_signal:N FUNCTION...)"),
    opt(OptionId::ExecHook(HP::PostApp), "exec-post-app", &[], None, List, G::Processes, Vassal, "COMMAND",
        "run COMMAND (sh -c) after the app is imported in the master (not with lazy-apps); a non-zero exit stops the vassal (as hook-post-app = exec:COMMAND)"),
    opt(OptionId::Hook(HP::MasterStart), "hook-master-start", &[], None, List, G::Processes, Vassal, "ACTION:ARGS",
        "run a hook action when the master starts supervising, before the first workers (exec:, safeexec:, mkdir:, chdir:, putenv:, write:, append:, writefifo:, unlink:, chmod:, chown:, print:, exit:, unix_signal:N FUNCTION...)"),
    opt(OptionId::Hook(HP::PostFork), "hook-post-fork", &[], None, List, G::Processes, Vassal, "ACTION:ARGS",
        "run a hook action in each worker right after fork (exec:, safeexec:, mkdir:, chdir:, putenv:, write:, append:, writefifo:, unlink:, chmod:, chown:, print:, exit:, unix_signal:N FUNCTION...)"),
    opt(OptionId::Hook(HP::Accepting), "hook-accepting", &[], None, List, G::Processes, Vassal, "ACTION:ARGS",
        "run a hook action in each worker before it starts accepting (exec:, safeexec:, mkdir:, chdir:, putenv:, write:, append:, writefifo:, unlink:, chmod:, chown:, print:, exit:, unix_signal:N FUNCTION...)"),
    opt(OptionId::Hook(HP::AcceptingOnce), "hook-accepting-once", &[], None, List, G::Processes, Vassal, "ACTION:ARGS",
        "run a hook action in each worker id before it first starts accepting (exec:, safeexec:, mkdir:, chdir:, putenv:, write:, append:, writefifo:, unlink:, chmod:, chown:, print:, exit:, unix_signal:N FUNCTION...)"),
    opt(OptionId::Hook(HP::Accepting1), "hook-accepting1", &[], None, List, G::Processes, Vassal, "ACTION:ARGS",
        "run a hook action in worker 1 before it starts accepting (exec:, safeexec:, mkdir:, chdir:, putenv:, write:, append:, writefifo:, unlink:, chmod:, chown:, print:, exit:, unix_signal:N FUNCTION...)"),
    opt(OptionId::Hook(HP::Accepting1Once), "hook-accepting1-once", &[], None, List, G::Processes, Vassal, "ACTION:ARGS",
        "run a hook action in worker 1 before it first starts accepting (exec:, safeexec:, mkdir:, chdir:, putenv:, write:, append:, writefifo:, unlink:, chmod:, chown:, print:, exit:, unix_signal:N FUNCTION...)"),
    opt(OptionId::ExitOnReload, "exit-on-reload", &[], None, Flag, G::LimitsAndReloads, Vassal, "",
        "a reload (SIGHUP, touch-reload, the FIFO's r) stops the vassal gracefully instead, exit code 0 (for containers whose orchestrator restarts them)"),
    opt(OptionId::HarakiriGracefulTimeout, "harakiri-graceful-timeout", &[], None, Scalar, G::LimitsAndReloads, Vassal, "SECONDS",
        "harakiri first asks the stuck worker to stop (harakiri-graceful-signal, default SIGTERM) and kills it only after SECONDS more"),
    opt(OptionId::HarakiriGracefulSignal, "harakiri-graceful-signal", &[], None, Scalar, G::LimitsAndReloads, Vassal, "SIGNAL",
        "signal of the graceful harakiri attempt (number or name; default 15, SIGTERM)"),
    opt(OptionId::ReloadOnAs, "reload-on-as", &[], None, Scalar, G::LimitsAndReloads, Vassal, "MB",
        "gracefully recycle a worker whose address space (virtual size) exceeds MB"),
    opt(OptionId::MaxFd, "max-fd", &[], None, Scalar, G::Processes, Vassal, "N",
        "set the open-files limit (RLIMIT_NOFILE, soft and hard) to N before anything else; raising the hard limit needs root"),
    // --- end master-side features ---
    // --- cron family, cache bitmap, write timeouts, post-buffering-bufsize (cron) ---
    opt(OptionId::Cron(CK::Cron), "cron", &[], None, List, G::Processes, Vassal, "MIN HOUR DAY MONTH WEEKDAY COMMAND",
        "the master runs COMMAND (/bin/sh -c, output in the vassal log) when the local time matches; -1 = any, -N = every N; repeatable"),
    opt(OptionId::Cron(CK::Unique), "unique-cron", &[], None, List, G::Processes, Vassal, "MIN HOUR DAY MONTH WEEKDAY COMMAND",
        "like cron, but a run is skipped while the previous run of that entry is still going"),
    opt(OptionId::Cron(CK::KeyValue), "cron2", &[], None, List, G::Processes, Vassal, "[minute=M,hour=H,day=D,month=MON,week=W,unique=0|1,harakiri=S] COMMAND",
        "cron with keys (default -1 each: every minute); harakiri=S kills this entry's run after S seconds, 0 never"),
    opt(OptionId::CronHarakiri, "cron-harakiri", &[], None, Scalar, G::Processes, Vassal, "SECONDS",
        "kill (SIGKILL, its process group) a cron command still running SECONDS after it started (0 = never)"),
    opt(OptionId::LegionCron, "legion-cron", &["cron-legion", "unique-legion-cron", "unique-cron-legion"], None, List,
        G::Unsupported, Unsupported { reason: crate::cron::LEGION }, "LEGION CRON", "not supported: liege has no legions"),
    opt(OptionId::SoSendTimeout, "so-send-timeout", &["socket-send-timeout", "so-write-timeout", "socket-write-timeout"],
        None, OptionalValue { default: "1" }, G::Sockets, Vassal, "SECONDS",
        "SO_SNDTIMEO of TCP sockets: a response write to a client that makes no progress for SECONDS drops the connection (logged, counted in the stats' write_errors); bare: 1"),
    opt(OptionId::PostBufferingBufsize, "post-buffering-bufsize", &[], None, Scalar, G::Sockets, Vassal, "BYTES",
        "size of the reads of a request body and of the writes of a spooled one (default 8192, raised to post-buffering)"),
    opt(OptionId::CacheUseLastModified, "cache-use-last-modified", &[], None, Flag, G::App, Vassal, "",
        "the old-style cache updates its last_modified_at (stats) on every change (cache2: lastmod=1)"),
    // --- end cron family ---
    // --- mule family (mule) ---
    opt(OptionId::Mule(MO::Mule), "mule", &[], None, OptionalValue { default: "" }, G::Processes, Vassal, "SCRIPT.py|MODULE:FUNCTION",
        "add a mule, a process the master forks after loading the app: runs SCRIPT.py as __main__, or calls MODULE:FUNCTION, or (bare) waits for messages for uwsgi.mule_msg_hook; respawned when it exits; repeatable"),
    opt(OptionId::Mule(MO::Mules), "mules", &[], None, List, G::Processes, Vassal, "N",
        "add N mules that wait for messages (uwsgi.mule_msg_hook, uwsgi.mule_get_msg)"),
    opt(OptionId::Mule(MO::Farm), "farm", &[], None, List, G::Processes, Vassal, "NAME:ID[,ID...]",
        "group mules (ids from 1, in the order mule/mules are given) under NAME: uwsgi.mule_msg(msg, 'NAME') reaches one of them"),
    opt(OptionId::Mule(MO::ReloadMercy), "mule-reload-mercy", &[], None, Scalar, G::LimitsAndReloads, Vassal, "SECONDS",
        "how long a mule asked to stop (reload, touch-mules-reload, stop) may take before SIGKILL (default 60)"),
    opt(OptionId::Mule(MO::MsgSize), "mule-msg-size", &[], None, Scalar, G::Processes, Vassal, "BYTES",
        "send and receive buffer of each mule message queue (a message must fit; default: the kernel's)"),
    opt(OptionId::Mule(MO::MsgRecvSize), "mule-msg-recv-size", &[], None, Scalar, G::Processes, Vassal, "BYTES",
        "receive buffer of a message-only mule: longer messages are cut (default 65536; uwsgi.mule_msg_recv_size())"),
    opt(OptionId::Mule(MO::TouchReload), "touch-mules-reload", &[], None, List, G::LimitsAndReloads, Vassal, "PATH",
        "restart only the mules (SIGHUP, then SIGKILL after mule-reload-mercy) when PATH's modification time changes"),
    opt(OptionId::MuleHarakiri, "mule-harakiri", &[], None, Scalar, G::Unsupported, Unsupported { reason: crate::mules::HARAKIRI },
        "SECONDS", "not supported: it times uWSGI signal handlers in mules, and liege has no uWSGI signals"),
    // --- end mule family ---
    // --- spooler family (spooler) ---
    opt(OptionId::Spooler(SO::Dir), "spooler", &[], Some('Q'), List, G::Processes, Vassal, "DIR",
        "run a spooler on DIR (created if missing): a process that runs the tasks workers write there with uwsgi.spool(), calling uwsgi.spooler; repeatable"),
    opt(OptionId::Spooler(SO::External), "spooler-external", &[], None, List, G::Processes, Vassal, "DIR",
        "workers may spool tasks into DIR (uwsgi.spool(spooler=DIR)), but another instance runs them: no process here"),
    opt(OptionId::Spooler(SO::Processes), "spooler-processes", &[], None, Scalar, G::Processes, Vassal, "N",
        "spooler processes per spooler directory (default 1)"),
    opt(OptionId::Spooler(SO::Frequency), "spooler-frequency", &["spooler-freq"], None, Scalar, G::Processes, Vassal, "SECONDS",
        "a spooler scans its directory every SECONDS (default 30; woken at once when a worker spools)"),
    opt(OptionId::Spooler(SO::MaxTasks), "spooler-max-tasks", &[], None, Scalar, G::Processes, Vassal, "N",
        "a spooler exits after N tasks and the master starts a new one (0 = never)"),
    opt(OptionId::Spooler(SO::Harakiri), "spooler-harakiri", &[], None, Scalar, G::Processes, Vassal, "SECONDS",
        "kill (SIGKILL) a spooler whose task runs longer than SECONDS; the task stays spooled (0 = never)"),
    opt(OptionId::Spooler(SO::Ordered), "spooler-ordered", &[], None, Flag, G::Processes, Vassal, "",
        "run tasks in name order, the numbered priority subdirectories (uwsgi.spool(priority=N)) first, lowest first"),
    opt(OptionId::Spooler(SO::Quiet), "spooler-quiet", &[], None, Flag, G::Processes, Vassal, "",
        "no log line for each spooled and each run task"),
    opt(OptionId::Spooler(SO::Chdir), "spooler-chdir", &[], None, Scalar, G::Processes, Vassal, "DIR",
        "chdir to DIR before each spooler task"),
    opt(OptionId::Spooler(SO::Import), "spooler-import", &["spooler-pyimport", "spooler-py-import", "spooler-python-import"],
        None, List, G::Processes, Vassal, "MODULE|FILE.py",
        "import a Python module (or file) in each spooler process at start, e.g. the one defining the @spool functions"),
    opt(OptionId::Spooler(SO::Cheap), "spooler-cheap", &[], None, Flag, G::Processes, Vassal, "",
        "start a spooler only when its directory has a task (checked every spooler-frequency seconds); it exits after a scan with none"),
    opt(OptionId::Spooler(SO::TouchReload), "touch-spoolers-reload", &[], None, List, G::LimitsAndReloads, Vassal, "PATH",
        "restart the spooler processes when PATH is touched (its modification time changes)"),
    opt(OptionId::SpoolerSignalAsTask, "spooler-signal-as-task", &[], None, Flag, G::Unsupported,
        Unsupported { reason: crate::spooler::SIGNAL_AS_TASK }, "", "not supported: liege has no uWSGI signals"),
    // --- end spooler family ---
    // --- logging and stats ---
    opt(OptionId::Logto, "logto", &[], None, Scalar, G::LoggingAndStats, Vassal, "PATH",
        "append the app's stdout and stderr to PATH"),
    opt(OptionId::Logto2, "logto2", &[], None, Scalar, G::LoggingAndStats, Vassal, "PATH",
        "the same file as logto; uWSGI opens it after dropping privileges, liege before (the file is root's)"),
    opt(OptionId::LogXForwardedFor, "log-x-forwarded-for", &[], None, Flag, G::LoggingAndStats, Vassal, "",
        "request log: show the X-Forwarded-For header (when there is one) as the address, as uWSGI"),
    opt(OptionId::LogDate, "log-date", &["logdate"], None, OptionalValue { default: "true" }, G::LoggingAndStats, Vassal, "[STRFTIME]",
        "prefix liege's own log lines with the date: ctime form when bare or true, else the strftime FORMAT (in ini files write %% for %)"),
    opt(OptionId::DisableLogging, "disable-logging", &[], Some('L'), Flag, G::LoggingAndStats, Vassal, "",
        "do not log requests (errors are still logged; log-4xx, log-5xx, log-slow still log theirs)"),
    opt(OptionId::Stats, "stats", &["stats-server"], None, Scalar, G::LoggingAndStats, Vassal, "ADDR",
        "serve uWSGI-compatible stats JSON on ADDR (works with uwsgitop and uwsgi_exporter)"),
    opt(OptionId::StatsHttp, "stats-http", &[], None, Flag, G::LoggingAndStats, Vassal, "",
        "serve the stats JSON with an HTTP response header"),
    opt(OptionId::Logformat, "logformat", &["log-format"], None, Scalar, G::LoggingAndStats, Vassal, "FORMAT",
        "request log line: a uWSGI template with %(method) %(uri) %(status) %(var.NAME)..., or json for JSON lines"),
    opt(OptionId::Log4xx, "log-4xx", &[], None, Flag, G::LoggingAndStats, Vassal, "",
        "log requests answered with 4xx even with disable-logging (with logging on, all are logged anyway)"),
    opt(OptionId::Log5xx, "log-5xx", &[], None, Flag, G::LoggingAndStats, Vassal, "",
        "log requests answered with 5xx even with disable-logging (with logging on, all are logged anyway)"),
    opt(OptionId::LogSlow, "log-slow", &[], None, Scalar, G::LoggingAndStats, Vassal, "MILLISECONDS",
        "log requests that took at least this many milliseconds, even with disable-logging"),
    // --- logging family (conf) ---
    opt(OptionId::Logging(LO::Logger), "logger", &[], None, List, G::LoggingAndStats, Vassal, "[ID ]PLUGIN[:ARGS]",
        "send log lines to a logger: file:PATH (or file:logfile=PATH,maxsize=N,backupname=PATH), fd:N, stdio, syslog[:IDENT[,FACILITY]], socket:ADDR; named ones (ID) get only what log-route sends them"),
    opt(OptionId::Logging(LO::ReqLogger), "req-logger", &["logger-req"], None, List, G::LoggingAndStats, Vassal, "[ID ]PLUGIN[:ARGS]",
        "send request log lines to their own logger (same plugins as logger)"),
    opt(OptionId::Logging(LO::LogSyslog), "log-syslog", &[], None, OptionalValue { default: "true" }, G::LoggingAndStats, Vassal, "[IDENT[,FACILITY]]",
        "the same as logger = syslog[:IDENT[,FACILITY]]"),
    opt(OptionId::Logging(LO::LogSocket), "log-socket", &[], None, Scalar, G::LoggingAndStats, Vassal, "ADDR",
        "the same as logger = socket:ADDR (one datagram per line, UDP host:port or a unix datagram socket)"),
    opt(OptionId::Logging(LO::LogRoute), "log-route", &[], None, List, G::LoggingAndStats, Vassal, "ID REGEX",
        "log lines matching REGEX go to the logger named ID (and not to the unnamed loggers)"),
    opt(OptionId::Logging(LO::LogReqRoute), "log-req-route", &[], None, List, G::LoggingAndStats, Vassal, "ID REGEX",
        "request log lines matching REGEX go to the req-logger named ID"),
    opt(OptionId::Logging(LO::LogEncoder), "log-encoder", &[], None, List, G::LoggingAndStats, Vassal, "NAME[:ID] [ARGS]",
        "rewrite log lines before they are written: prefix TEXT, suffix TEXT, nl, format/json TEMPLATE (${msg} ${msgnl} ${unix} ${micros} ${millis} ${strftime:FMT}), gzip, compress; :ID only for that logger"),
    opt(OptionId::Logging(LO::LogReqEncoder), "log-req-encoder", &[], None, List, G::LoggingAndStats, Vassal, "NAME[:ID] [ARGS]",
        "like log-encoder, for request log lines"),
    opt(OptionId::Logging(LO::LogDrain), "log-drain", &[], None, List, G::LoggingAndStats, Vassal, "REGEX",
        "drop log lines matching REGEX (not request lines sent to a req-logger)"),
    opt(OptionId::Logging(LO::LogFilter), "log-filter", &[], None, List, G::LoggingAndStats, Vassal, "REGEX",
        "keep only log lines matching one of the log-filter REGEXes"),
    opt(OptionId::Logging(LO::LogMaster), "log-master", &[], None, Flag, G::LoggingAndStats, Vassal, "",
        "pass all output through liege's log process (implied by logger, log-route, log-encoder, log-drain, log-maxsize...)"),
    opt(OptionId::Logging(LO::LogMaxsize), "log-maxsize", &[], None, Scalar, G::LoggingAndStats, Vassal, "BYTES",
        "rotate the logto file when it grows past BYTES (renamed to log-backupname, or FILE.UNIXTIME)"),
    opt(OptionId::Logging(LO::LogBackupname), "log-backupname", &[], None, Scalar, G::LoggingAndStats, Vassal, "PATH",
        "name the rotated logto file gets (default FILE.UNIXTIME)"),
    opt(OptionId::Logging(LO::TouchLogrotate), "touch-logrotate", &[], None, List, G::LoggingAndStats, Vassal, "FILE",
        "rotate the logto file when FILE is touched"),
    opt(OptionId::Logging(LO::TouchLogreopen), "touch-logreopen", &[], None, List, G::LoggingAndStats, Vassal, "FILE",
        "reopen the logto file when FILE is touched (after an external logrotate moved it)"),
    opt(OptionId::Logging(LO::LogTruncate), "log-truncate", &[], None, Flag, G::LoggingAndStats, Vassal, "",
        "empty the logto file at startup (not on reloads)"),
    opt(OptionId::Logging(LO::LogfileChown), "logfile-chown", &[], None, Flag, G::LoggingAndStats, Vassal, "",
        "give the logto file to uid/gid, so the app can reopen it after dropping privileges"),
    opt(OptionId::Logging(LO::LogFormatStrftime), "log-format-strftime", &[], None, Flag, G::LoggingAndStats, Vassal, "",
        "run each logformat line through strftime (write %%Y etc. in ini files for %Y)"),
    opt(OptionId::Logging(LO::LogZero), "log-zero", &[], None, Flag, G::LoggingAndStats, Vassal, "",
        "log responses without a body even with disable-logging"),
    opt(OptionId::Logging(LO::LogBig), "log-big", &[], None, Scalar, G::LoggingAndStats, Vassal, "BYTES",
        "log responses of at least BYTES even with disable-logging"),
    opt(OptionId::Logging(LO::LogReopen), "log-reopen", &[], None, Flag, G::Compatibility, NoEffect, "",
        "always so in liege: every reload reopens the logto file"),
    // --- end logging family ---
    // --- request and process options (conf) ---
    opt(OptionId::WsgiDisableFileWrapper, "wsgi-disable-file-wrapper", &[], None, Flag, G::App, Vassal, "",
        "leave wsgi.file_wrapper out of the environ (apps then send files through their own iterables)"),
    opt(OptionId::WsgiEnvBehaviour, "wsgi-env-behaviour", &[], None, Scalar, G::App, Vassal, "holy|cheat",
        "uWSGI's environ allocation strategy; liege always gives each request a fresh environ dict (holy), and cheat \
         (uWSGI's reuse of one dict) has no effect an app can see, so both are accepted"),
    opt(OptionId::HonourStdin, "honour-stdin", &[], None, Flag, G::Compatibility, NoEffect, "",
        "always so in liege: stdin is left as it was given (uWSGI without this option remaps it to /dev/null)"),
    opt(OptionId::PyCallUwsgiForkHooks, "py-call-uwsgi-fork-hooks", &[], None, Flag, G::Compatibility, NoEffect, "",
        "always so in liege: the master calls PyOS_BeforeFork / PyOS_AfterFork_* around every worker fork"),
    opt(OptionId::PluginsDir, "plugins-dir", &["plugin-dir"], None, List, G::Compatibility, NoEffect, "DIR",
        "no effect: liege's plugins (python, http) are built in, there is nothing to look up in DIR"),
    // --- end request and process options ---
    // --- emperor ---
    opt(OptionId::Emperor, "emperor", &[], None, Scalar, G::Emperor, EmperorOnly, "DIR",
        "run the emperor on the vassal directory DIR (one app per *.ini file)"),
    opt(OptionId::VassalsInclude, "vassals-include", &[], None, List, G::Emperor, EmperorOnly, "FILE",
        "read FILE into every vassal's config, after the vassal's own file (repeatable)"),
    opt(OptionId::VassalSet, "vassal-set", &[], None, List, G::Emperor, EmperorOnly, "KEY=VALUE",
        "set an option in every vassal (repeatable)"),
    opt(OptionId::Api, "api", &[], None, Scalar, G::Emperor, EmperorOnly, "ADDR",
        "address of the emperor's HTTP API and dashboard (default 127.0.0.1:9191)"),
    opt(OptionId::ApiTokenFile, "api-token-file", &[], None, Scalar, G::Emperor, EmperorOnly, "PATH",
        "require the bearer token stored in PATH for API calls that change state"),
    opt(OptionId::RunDir, "run-dir", &[], None, Scalar, G::Emperor, EmperorOnly, "DIR",
        "directory for the emperor's runtime files (sockets, pids)"),
    opt(OptionId::LogDir, "log-dir", &[], None, Scalar, G::Emperor, EmperorOnly, "DIR",
        "directory for per-vassal log files"),
    opt(OptionId::VassalPortRange, "vassal-port-range", &[], None, Scalar, G::Emperor, EmperorOnly, "LOW-HIGH",
        "ports the emperor assigns to vassals that ask for one (default 8001-8999)"),
    opt(OptionId::EmperorThrottle, "emperor-throttle", &[], None, Scalar, G::Emperor, EmperorOnly, "MILLISECONDS",
        "first delay before respawning a crashing vassal; doubles on each crash (default 1000, as uWSGI)"),
    opt(OptionId::EmperorMaxThrottle, "emperor-max-throttle", &[], None, Scalar, G::Emperor, EmperorOnly, "MILLISECONDS",
        "cap of the respawn delay of a crashing vassal (default 60000)"),
    opt(OptionId::EmperorStats, "emperor-stats", &["emperor-stats-server"], None, Scalar, G::Emperor, EmperorOnly, "ADDR",
        "serve uWSGI's emperor stats JSON on ADDR (unix path or host:port; uwsgitop ADDR lists the vassals)"),
    opt(OptionId::EmperorTyrant, "emperor-tyrant", &[], None, Flag, G::Emperor, EmperorOnly, "",
        "run each vassal as the owner (uid and gid) of its file; root-owned files are refused (the emperor must be \
         root, or keep cap = setuid,setgid)"),
    opt(OptionId::EmperorTyrantNofollow, "emperor-tyrant-nofollow", &[], None, Flag, G::Emperor, EmperorOnly, "",
        "with emperor-tyrant: take the owner of a symlinked vassal file from the link, not from its target"),
    opt(OptionId::EmperorTyrantInitgroups, "emperor-tyrant-initgroups", &[], None, Flag, G::Emperor, EmperorOnly, "",
        "with emperor-tyrant: give each vassal its owner's supplementary groups (default: its group alone)"),
    opt(OptionId::EmperorSubreaper, "emperor-subreaper", &[], None, Flag, G::Emperor, EmperorOnly, "",
        "make the emperor a child subreaper (PR_SET_CHILD_SUBREAPER): processes orphaned below it are reparented \
         to it and reaped (always done when the emperor is PID 1, as in a container)"),
    opt(OptionId::BinaryPath, "binary-path", &[], None, Scalar, G::Emperor, EmperorOnly, "PATH",
        "start vassals with the liege binary at PATH instead of the running one (e.g. after an upgrade)"),
    opt(OptionId::EmperorRequiredHeartbeat, "emperor-required-heartbeat", &[], None, Scalar, G::Emperor, EmperorOnly, "SECONDS",
        "restart a vassal whose master sends no heartbeat for this long (default 30; it sends one a second)"),
    // --- compatibility, no effect ---
    opt(OptionId::Vacuum, "vacuum", &[], None, Flag, G::Compatibility, NoEffect, "",
        "always on in liege: unix sockets and the pidfile are removed on exit"),
    opt(OptionId::EnableThreads, "enable-threads", &[], Some('T'), Flag, G::Compatibility, NoEffect, "",
        "always on in liege: Python threads started by the app always run"),
    opt(OptionId::DieOnTerm, "die-on-term", &[], None, Flag, G::Compatibility, NoEffect, "",
        "always on in liege: SIGTERM stops gracefully (it never means reload)"),
    opt(OptionId::ThunderLock, "thunder-lock", &[], None, Flag, G::Compatibility, NoEffect, "",
        "not needed in liege: only idle workers accept, there is no thundering herd to serialize"),
    opt(OptionId::SingleInterpreter, "single-interpreter", &[], Some('i'), Flag, G::Compatibility, NoEffect, "",
        "always on in liege: one Python interpreter per process"),
    opt(OptionId::NoOrphans, "no-orphans", &[], None, Flag, G::Compatibility, NoEffect, "",
        "always on in liege: workers die with their master"),
    opt(OptionId::PyCallOsafterfork, "py-call-osafterfork", &[], None, Flag, G::Compatibility, NoEffect, "",
        "always on in liege: Python's at-fork hooks run in every worker"),
    opt(OptionId::AutoProcname, "auto-procname", &[], None, Flag, G::Compatibility, NoEffect, "",
        "accepted for compatibility, no effect: liege does not change process titles"),
    opt(OptionId::ProcnamePrefix, "procname-prefix", &[], None, Scalar, G::Compatibility, NoEffect, "PREFIX",
        "accepted for compatibility, no effect: liege does not change process titles"),
    opt(OptionId::ProcnamePrefixSpaced, "procname-prefix-spaced", &[], None, Scalar, G::Compatibility, NoEffect, "PREFIX",
        "accepted for compatibility, no effect: liege does not change process titles"),
    opt(OptionId::Procname, "procname", &[], None, Scalar, G::Compatibility, NoEffect, "NAME",
        "accepted for compatibility, no effect: liege does not change process titles"),
    opt(OptionId::ProcnameMaster, "procname-master", &[], None, Scalar, G::Compatibility, NoEffect, "NAME",
        "accepted for compatibility, no effect: liege does not change process titles"),
    opt(OptionId::IgnoreSigpipe, "ignore-sigpipe", &[], None, Flag, G::Compatibility, NoEffect, "",
        "always so in liege: SIGPIPE is ignored, a client that went away is a write error, never reported as one"),
    opt(OptionId::IgnoreWriteErrors, "ignore-write-errors", &[], None, Flag, G::Compatibility, NoEffect, "",
        "always so in liege: failed writes to a client that went away are logged at debug level only"),
    opt(OptionId::DisableWriteException, "disable-write-exception", &[], None, Flag, G::Compatibility, NoEffect, "",
        "always so in liege: a failed write to the client raises nothing in the app; the response is dropped"),
    opt(OptionId::CloseOnExec, "close-on-exec", &[], None, Flag, G::Compatibility, NoEffect, "",
        "always so in liege: listening and connection sockets are close-on-exec (subprocesses never inherit them)"),
    opt(OptionId::NoDeferAccept, "no-defer-accept", &[], None, Flag, G::Compatibility, NoEffect, "",
        "always so in liege: it never sets TCP_DEFER_ACCEPT"),
    opt(OptionId::HttpChunkedInput, "http-chunked-input", &[], None, Flag, G::Compatibility, NoEffect, "",
        "always so in liege: chunked request bodies are decoded, the app reads them from wsgi.input"),
    opt(OptionId::MemoryReport, "memory-report", &[], Some('m'), Flag, G::Compatibility, NoEffect, "",
        "always on in liege: the stats always report each worker's memory"),
    // --- unsupported ---
    opt(OptionId::LoopEngine, "gevent", &["async", "ugreen", "greenlet", "asyncio", "tornado", "gevent-early-monkey-patch",
        "gevent-monkey-patch", "loop"], None, Scalar, G::Unsupported, Unsupported { reason: LOOP_ENGINES },
        "N", "not supported: liege runs WSGI with prefork workers and threads"),
    opt(OptionId::Vhost, "vhost", &["vhost-host"], None, Flag, G::Unsupported,
        Unsupported { reason: "liege serves one WSGI app per vassal, so there is no app to pick by host name: run \
                               one vassal per site and route by Host in your proxy" },
        "", "not supported: one app per vassal, route by Host in the proxy"),
];

/// Strips the dashes a command-line spelling carries, so `--workers`, `-p` and `workers` all resolve.
fn without_dashes(name: &str) -> &str {
    name.strip_prefix("--").or_else(|| name.strip_prefix('-')).unwrap_or(name)
}

/// Finds an option by canonical name, long alias or (written `-p`) short flag.
///
/// Long names may be given with or without their leading `--`, as they appear on the command line or as ini
/// keys; a single letter only resolves as a short flag when written with its dash (`-p`), because an ini key
/// `p` is not an option in uWSGI either.
pub fn lookup(name: &str) -> Option<&'static OptionDef> {
    if let Some(letter) = single_dash_letter(name) {
        return lookup_short(letter);
    }
    lookup_long(without_dashes(name))
}

/// Finds an option by its long spelling exactly as written (no dashes): what an ini key must be.
pub fn lookup_long(name: &str) -> Option<&'static OptionDef> {
    OPTIONS.iter().find(|def| def.long_names().any(|spelling| spelling == name))
}

/// Finds an option by its uWSGI short flag letter.
pub fn lookup_short(letter: char) -> Option<&'static OptionDef> {
    OPTIONS.iter().find(|def| def.short == Some(letter))
}

/// Finds an option by id. Every id is in the table (a test checks it), so this only fails on a table bug.
pub fn by_id(id: OptionId) -> Option<&'static OptionDef> {
    OPTIONS.iter().find(|def| def.id == id)
}

fn single_dash_letter(name: &str) -> Option<char> {
    let rest = name.strip_prefix('-')?;
    if rest.starts_with('-') {
        return None;
    }
    let mut chars = rest.chars();
    match (chars.next(), chars.next()) {
        (Some(letter), None) => Some(letter),
        _ => None,
    }
}

/// The closest long option name to a misspelled one, if it is close enough to be a plausible typo.
///
/// Typos are the most common uWSGI support question ("why does my setting do nothing?"), because uWSGI
/// silently takes unknown keys as placeholders. Suggestions use the Damerau-Levenshtein distance (a swapped
/// pair of letters counts as one edit) and are only made within 2 edits and less than a third of the word, so
/// a completely unrelated name gets no misleading suggestion. `_` is compared as `-`, a frequent slip.
pub fn suggest(name: &str) -> Option<&'static str> {
    let typed = without_dashes(name).to_ascii_lowercase().replace('_', "-");
    if typed.is_empty() {
        return None;
    }
    let typed_len = typed.chars().count();
    let mut best: Option<(usize, &'static str)> = None;
    for spelling in OPTIONS.iter().flat_map(OptionDef::long_names) {
        // The distance is at least the difference in length, and only a distance of 2 or less is ever
        // suggested: a spelling 3 or more characters longer or shorter can neither be suggested nor beat one
        // that can, so the edit distance (quadratic) is not computed for it.
        if spelling.chars().count().abs_diff(typed_len) > 2 {
            continue;
        }
        let distance = strsim::damerau_levenshtein(&typed, spelling);
        if best.is_none_or(|(best_distance, _)| distance < best_distance) {
            best = Some((distance, spelling));
        }
    }
    let (distance, spelling) = best?;
    let longest = typed_len.max(spelling.chars().count());
    let close_enough = distance <= 2 && distance * 3 < longest;
    close_enough.then_some(spelling)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_spelling_is_unique() {
        let mut seen = HashSet::new();
        for def in OPTIONS {
            for spelling in def.long_names() {
                assert!(seen.insert(spelling), "duplicate option spelling {spelling}");
            }
        }
        let mut shorts = HashSet::new();
        for def in OPTIONS.iter().filter_map(|def| def.short) {
            assert!(shorts.insert(def), "duplicate short flag -{def}");
        }
    }

    #[test]
    fn every_id_has_exactly_one_row() {
        let mut ids = HashSet::new();
        for def in OPTIONS {
            assert!(ids.insert(def.id), "{:?} appears twice", def.id);
            assert_eq!(by_id(def.id).map(|found| found.name), Some(def.name));
        }
    }

    #[test]
    fn every_option_has_help_and_value_names_match_kinds() {
        for def in OPTIONS {
            assert!(!def.help.is_empty(), "{} has no help", def.name);
            match def.kind {
                OptionKind::Flag => assert!(def.value_name.is_empty(), "{} is a flag", def.name),
                _ => assert!(!def.value_name.is_empty(), "{} needs a value name", def.name),
            }
        }
    }

    #[test]
    fn lookup_resolves_aliases_and_short_flags() {
        assert_eq!(lookup("processes").map(|d| d.id), Some(OptionId::Processes));
        assert_eq!(lookup("workers").map(|d| d.id), Some(OptionId::Processes));
        assert_eq!(lookup("--workers").map(|d| d.id), Some(OptionId::Processes));
        assert_eq!(lookup("-p").map(|d| d.id), Some(OptionId::Processes));
        assert_eq!(lookup("-M").map(|d| d.id), Some(OptionId::Master));
        assert_eq!(lookup("-H").map(|d| d.id), Some(OptionId::Virtualenv));
        assert_eq!(lookup("pyhome").map(|d| d.id), Some(OptionId::Virtualenv));
        assert_eq!(lookup("-w").map(|d| d.id), Some(OptionId::Module));
        assert_eq!(lookup("wsgi").map(|d| d.id), Some(OptionId::Module));
        assert_eq!(lookup("file").map(|d| d.id), Some(OptionId::WsgiFile));
        assert_eq!(lookup("http11-socket").map(|d| d.id), Some(OptionId::HttpSocket));
        assert_eq!(lookup("uwsgi-socket").map(|d| d.id), Some(OptionId::Socket));
        assert_eq!(lookup("set-ph").map(|d| d.id), Some(OptionId::SetPlaceholder));
        assert_eq!(lookup("-z").map(|d| d.id), Some(OptionId::SocketTimeout));
        assert_eq!(lookup("stats-server").map(|d| d.id), Some(OptionId::Stats));
        assert_eq!(lookup("log-format").map(|d| d.id), Some(OptionId::Logformat));
        // A bare letter is not an option name: ini keys are long names only.
        assert!(lookup("p").is_none());
        assert!(lookup("no-such-option").is_none());
    }

    #[test]
    fn suggest_finds_close_typos_only() {
        assert_eq!(suggest("proceses"), Some("processes"));
        assert_eq!(suggest("harakri"), Some("harakiri"));
        assert_eq!(suggest("http_socket"), Some("http-socket"));
        assert_eq!(suggest("--enable-thread"), Some("enable-threads"));
        assert_eq!(suggest("wokrers"), Some("workers"));
        assert_eq!(suggest("project"), None);
        assert_eq!(suggest("xyz"), None);
        assert_eq!(suggest(""), None);
    }
}
