//! The logging family of options: loggers, routes, encoders, drains and filters, rotation, and the extra
//! request-log conditions, read as uWSGI's `core/logging.c` and `plugins/logfile`, `plugins/syslog` and
//! `plugins/logsocket` read them.
//!
//! uWSGI sends every log line of a vassal through its master ("log master") when any of these options is
//! set: the processes write to a pipe, the master splits the stream into lines and decides where each goes.
//! This module only *reads* the options into a [`LogRouting`] (every pattern compiled once here so a bad
//! regular expression is an error naming file and line); the binary's `logging::router` acts on it.
//!
//! The decisions, in uWSGI's order for each line of the app's and liege's own output:
//! 1. `log-drain = REGEX`: a matching line is dropped;
//! 2. `log-filter = REGEX` (if any): only lines matching one of them are kept;
//! 3. `log-route = ID REGEX`: a matching line goes to the logger named ID (every matching route), and then
//!    nowhere else;
//! 4. otherwise every unnamed `logger` gets it, or (none) the original output (the terminal, `logto`, the
//!    emperor's pipe).
//!
//! Request lines take the same path through `req-logger` / `log-req-route` / `log-req-encoder` when a
//! `req-logger` is configured (drains and filters apply to the general stream only, as in uWSGI); without
//! one they are part of the general stream. Encoders (`log-encoder = NAME[:ID] [ARGS]`) rewrite each line
//! before a logger writes it, in order; one with `:ID` applies only to the logger named ID.
//!
//! Patterns are PCRE in uWSGI; liege compiles them with `fancy-regex`, which has PCRE's look-around and
//! back-references (`log-route = default ^((?!\{).)*$` is a real-world one).

use std::path::PathBuf;

use crate::{values, ConfigError, ConfigWarning, RawOption};

/// Which option of the family a row of the option table is (see [`crate::OptionId::Logging`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogOption {
    Logger,
    ReqLogger,
    LogSyslog,
    LogSocket,
    LogRoute,
    LogReqRoute,
    LogEncoder,
    LogReqEncoder,
    LogDrain,
    LogFilter,
    LogMaster,
    LogMaxsize,
    LogBackupname,
    TouchLogrotate,
    TouchLogreopen,
    LogTruncate,
    LogfileChown,
    LogFormatStrftime,
    LogZero,
    LogBig,
    LogReopen,
}

/// Where a logger writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoggerTarget {
    /// `file:PATH`, or `file:logfile=PATH,maxsize=BYTES,backupname=PATH` (rotated when it outgrows maxsize).
    File { path: PathBuf, maxsize: Option<u64>, backupname: Option<PathBuf> },
    /// `fd:N`: an inherited descriptor.
    Fd(i32),
    /// `stdio`: the original output (what the process had before logging was routed).
    Stdio,
    /// `syslog[:IDENT[,FACILITY]]` (defaults `uwsgi`, `daemon`, as uWSGI).
    Syslog { ident: String, facility: String },
    /// `socket:ADDR`: one datagram per line, UDP to `host:port` or to a unix datagram socket path.
    Socket(String),
}

/// A `logger` / `req-logger` line: `[ID ]PLUGIN[:ARGS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerSpec {
    /// The name routes and encoders use; unnamed loggers get every line no route took.
    pub id: Option<String>,
    pub target: LoggerTarget,
}

/// A `log-route` / `log-req-route` line: lines matching `pattern` go to the logger named `logger`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRoute {
    pub logger: String,
    pub pattern: String,
}

/// One piece of a `format` / `json` encoder template (`${msg}`, `${strftime:%d}`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePiece {
    Text(String),
    /// The line without its newline.
    Msg,
    /// The line with its newline.
    MsgNl,
    /// Unix seconds, microseconds, milliseconds now.
    Unix,
    Micros,
    Millis,
    /// The local time now in a strftime format.
    Strftime(String),
}

/// What an encoder does to a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncoderKind {
    Prefix(String),
    Suffix(String),
    /// Appends a newline.
    Nl,
    Format(Vec<TemplatePiece>),
    /// Like `Format`, with the values JSON-escaped (the template supplies the quotes).
    Json(Vec<TemplatePiece>),
    /// The line gzip-compressed (one gzip member per line; for socket loggers).
    Gzip,
    /// The line zlib-compressed.
    Compress,
}

/// A `log-encoder` / `log-req-encoder` line: `NAME[:ID] [ARGS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderSpec {
    /// Only for the logger with this id (`json:default {...}`); `None`: every logger and the raw output.
    pub use_for: Option<String>,
    pub kind: EncoderKind,
}

/// The logging family, read and checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogRouting {
    pub loggers: Vec<LoggerSpec>,
    pub req_loggers: Vec<LoggerSpec>,
    pub routes: Vec<LogRoute>,
    pub req_routes: Vec<LogRoute>,
    pub encoders: Vec<EncoderSpec>,
    pub req_encoders: Vec<EncoderSpec>,
    pub drains: Vec<String>,
    pub filters: Vec<String>,
    /// `log-master`: route the output through the log process even without other options.
    pub log_master: bool,
    /// `log-maxsize` / `log-backupname`: rotate the `logto` / `daemonize` file when it outgrows this.
    pub maxsize: Option<u64>,
    pub backupname: Option<PathBuf>,
    /// `touch-logrotate` / `touch-logreopen`: rotate / reopen the log file when one of these is touched.
    pub touch_logrotate: Vec<PathBuf>,
    pub touch_logreopen: Vec<PathBuf>,
    /// `log-truncate`: empty the `logto` file at startup (not on reloads).
    pub truncate: bool,
    /// `logfile-chown`: give the `logto` file to `uid`/`gid`.
    pub chown: bool,
    /// `log-format-strftime`: run the rendered `logformat` line through strftime.
    pub format_strftime: bool,
    /// `log-zero`: log responses without a body even with `disable-logging`.
    pub zero: bool,
    /// `log-big`: log responses of at least this many bytes even with `disable-logging`.
    pub big: Option<u64>,
}

impl LogRouting {
    /// Whether the output must pass through the log process (uWSGI's `UWSGI_OPT_LOG_MASTER` options).
    pub fn needs_router(&self) -> bool {
        self.log_master
            || !self.loggers.is_empty()
            || !self.req_loggers.is_empty()
            || !self.routes.is_empty()
            || !self.encoders.is_empty()
            || !self.drains.is_empty()
            || !self.filters.is_empty()
            || self.maxsize.is_some()
            || !self.touch_logrotate.is_empty()
            || !self.touch_logreopen.is_empty()
    }
}

/// The loggers liege has; any other uWSGI logger plugin is refused with this list.
pub const LOGGER_PLUGINS: &str = "file, fd, stdio, syslog, socket";

/// syslog facility names, as uWSGI's syslog plugin knows them.
pub const SYSLOG_FACILITIES: &[&str] = &[
    "auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "security", "syslog", "user", "uucp",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];

/// Collects the family while the vassal's options are applied; [`LogOptions::finish`] checks references.
#[derive(Default)]
pub(crate) struct LogOptions {
    routing: LogRouting,
    /// Where each route and `:ID` encoder was given, to name it when its logger does not exist.
    references: Vec<(String, RawOption, bool)>,
    needs_logfile: Option<RawOption>,
}

impl LogOptions {
    pub(crate) fn apply(
        &mut self,
        which: LogOption,
        option: &RawOption,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<(), ConfigError> {
        let routing = &mut self.routing;
        match which {
            LogOption::Logger => routing.loggers.push(logger(option, &option.value)?),
            LogOption::ReqLogger => routing.req_loggers.push(logger(option, &option.value)?),
            // `log-syslog[=ARGS]` and `log-socket = ADDR` are shorthands for a logger.
            LogOption::LogSyslog => {
                let spec = if option.value.is_empty() || option.value == "true" {
                    "syslog".to_owned()
                } else {
                    format!("syslog:{}", option.value)
                };
                routing.loggers.push(logger(option, &spec)?)
            }
            LogOption::LogSocket => routing.loggers.push(logger(option, &format!("socket:{}", option.value))?),
            LogOption::LogRoute | LogOption::LogReqRoute => {
                let (id, pattern) = option
                    .value
                    .trim()
                    .split_once(' ')
                    .map(|(id, pattern)| (id.to_owned(), pattern.trim_start().to_owned()))
                    .filter(|(_, pattern)| !pattern.is_empty())
                    .ok_or_else(|| values::invalid(option, "expected LOGGER-ID REGEX"))?;
                check_pattern(option, &pattern)?;
                let request = which == LogOption::LogReqRoute;
                self.references.push((id.clone(), option.clone(), request));
                let route = LogRoute { logger: id, pattern };
                if request {
                    routing.req_routes.push(route)
                } else {
                    routing.routes.push(route)
                }
            }
            LogOption::LogEncoder | LogOption::LogReqEncoder => {
                let encoder = encoder(option)?;
                let request = which == LogOption::LogReqEncoder;
                if let Some(id) = &encoder.use_for {
                    self.references.push((id.clone(), option.clone(), request));
                }
                if request {
                    routing.req_encoders.push(encoder)
                } else {
                    routing.encoders.push(encoder)
                }
            }
            LogOption::LogDrain => {
                check_pattern(option, &option.value)?;
                routing.drains.push(option.value.clone())
            }
            LogOption::LogFilter => {
                check_pattern(option, &option.value)?;
                routing.filters.push(option.value.clone())
            }
            LogOption::LogMaster => routing.log_master = values::boolean(option, warnings)?,
            LogOption::LogMaxsize => {
                routing.maxsize = values::number_or_off(option, warnings)?;
                self.needs_logfile.get_or_insert_with(|| option.clone());
            }
            LogOption::LogBackupname => routing.backupname = Some(values::path(option)?),
            LogOption::TouchLogrotate => {
                routing.touch_logrotate.push(values::path(option)?);
                self.needs_logfile.get_or_insert_with(|| option.clone());
            }
            LogOption::TouchLogreopen => {
                routing.touch_logreopen.push(values::path(option)?);
                self.needs_logfile.get_or_insert_with(|| option.clone());
            }
            LogOption::LogTruncate => routing.truncate = values::boolean(option, warnings)?,
            LogOption::LogfileChown => routing.chown = values::boolean(option, warnings)?,
            LogOption::LogFormatStrftime => routing.format_strftime = values::boolean(option, warnings)?,
            LogOption::LogZero => routing.zero = values::boolean(option, warnings)?,
            LogOption::LogBig => routing.big = values::number_or_off(option, warnings)?,
            // A no-effect row: never reaches here (see the option table).
            LogOption::LogReopen => {}
        }
        Ok(())
    }

    /// Checks that every route and `:ID` encoder names a logger of its stream, and that rotation has a file.
    /// `daemonize = HOST:PORT` / `logto = HOST:PORT`: every line goes over UDP to that address, as an unnamed
    /// `socket:` logger would send it.
    pub(crate) fn udp_output(&mut self, option: &RawOption, address: &str) -> Result<(), ConfigError> {
        if address.is_empty() || address.starts_with(':') {
            return Err(values::invalid(option, "invalid UDP address: expected HOST:PORT (or a log file path)"));
        }
        self.routing.loggers.push(LoggerSpec { id: None, target: LoggerTarget::Socket(address.to_owned()) });
        Ok(())
    }

    pub(crate) fn finish(self, has_logfile: bool) -> Result<LogRouting, ConfigError> {
        for (id, option, request) in &self.references {
            let loggers = if *request { &self.routing.req_loggers } else { &self.routing.loggers };
            if !loggers.iter().any(|logger| logger.id.as_deref() == Some(id)) {
                let kind = if *request { "req-logger" } else { "logger" };
                return Err(values::invalid(
                    option,
                    format!("no {kind} is named '{id}' (name one with `{kind} = {id} PLUGIN:ARGS`)"),
                ));
            }
        }
        if let Some(option) = self.needs_logfile {
            if !has_logfile {
                return Err(ConfigError::Requires { origin: option.origin, name: option.key, required: "logto" });
            }
        }
        Ok(self.routing)
    }
}

fn check_pattern(option: &RawOption, pattern: &str) -> Result<(), ConfigError> {
    fancy_regex::Regex::new(pattern)
        .map(drop)
        .map_err(|err| values::invalid(option, format!("not a valid regular expression: {err}")))
}

/// `[ID ]PLUGIN[:ARGS]`, as `setup_chosen_logger`: the id is the part before the first space when it is
/// alphanumeric; an empty ARGS is no ARGS.
fn logger(option: &RawOption, spec: &str) -> Result<LoggerSpec, ConfigError> {
    let spec = spec.trim();
    let (id, rest) = match spec.split_once(' ') {
        Some((id, rest)) if !id.is_empty() && id.bytes().all(|byte| byte.is_ascii_alphanumeric()) => {
            (Some(id.to_owned()), rest.trim_start())
        }
        _ => (None, spec),
    };
    let (plugin, args) = match rest.split_once(':') {
        Some((plugin, args)) => (plugin, Some(args).filter(|args| !args.is_empty())),
        None => (rest, None),
    };
    let target = match plugin {
        "file" => file_target(option, args)?,
        "fd" => {
            let fd = args.and_then(|args| args.trim().parse::<i32>().ok()).filter(|fd| *fd >= 0);
            LoggerTarget::Fd(fd.ok_or_else(|| values::invalid(option, "fd: needs a descriptor number (fd:3)"))?)
        }
        "stdio" => LoggerTarget::Stdio,
        "syslog" => {
            let (ident, facility) = match args {
                None => ("uwsgi", "daemon"),
                Some(args) => match args.split_once(',') {
                    Some((ident, facility)) => (ident, facility),
                    None => (args, "daemon"),
                },
            };
            if !SYSLOG_FACILITIES.contains(&facility) {
                return Err(values::invalid(
                    option,
                    format!("unknown syslog facility '{facility}' (known: {})", SYSLOG_FACILITIES.join(", ")),
                ));
            }
            LoggerTarget::Syslog { ident: ident.to_owned(), facility: facility.to_owned() }
        }
        "socket" => LoggerTarget::Socket(
            args.ok_or_else(|| values::invalid(option, "socket: needs an address (host:port or a unix path)"))?
                .to_owned(),
        ),
        "" => return Err(values::invalid(option, "expected [ID ]PLUGIN[:ARGS], e.g. `file:/var/log/app.log`")),
        other => {
            return Err(values::invalid(
                option,
                format!("liege has no '{other}' logger (it has {LOGGER_PLUGINS}); send the lines on with one of those"),
            ))
        }
    };
    Ok(LoggerSpec { id, target })
}

/// `file:PATH` or the key=value form `file:logfile=PATH,maxsize=N,backupname=PATH` of `plugins/logfile`.
fn file_target(option: &RawOption, args: Option<&str>) -> Result<LoggerTarget, ConfigError> {
    let args = args.ok_or_else(|| values::invalid(option, "file: needs a path (file:/var/log/app.log)"))?;
    if !args.contains('=') {
        return Ok(LoggerTarget::File { path: PathBuf::from(args), maxsize: None, backupname: None });
    }
    let (mut path, mut maxsize, mut backupname) = (None, None, None);
    for pair in args.split(',') {
        let (key, value) = pair.split_once('=').ok_or_else(|| values::invalid(option, "file: expected key=value"))?;
        match key.trim() {
            "logfile" => path = Some(PathBuf::from(value)),
            "backupname" => backupname = Some(PathBuf::from(value)),
            "maxsize" => {
                let size =
                    value.trim().parse::<u64>().map_err(|_| values::invalid(option, "file: maxsize is bytes"))?;
                maxsize = Some(size).filter(|size| *size > 0);
            }
            other => {
                return Err(values::invalid(
                    option,
                    format!("file: unknown key '{other}' (known: logfile, maxsize, backupname)"),
                ))
            }
        }
    }
    let path = path.ok_or_else(|| values::invalid(option, "file: the key=value form needs logfile=PATH"))?;
    Ok(LoggerTarget::File { path, maxsize, backupname })
}

/// `NAME[:ID] [ARGS]`, as `uwsgi_setup_log_encoders`.
fn encoder(option: &RawOption) -> Result<EncoderSpec, ConfigError> {
    let value = option.value.as_str();
    let (head, args) = value.split_once(' ').unwrap_or((value, ""));
    let (name, use_for) = match head.split_once(':') {
        Some((name, id)) => (name, Some(id.to_owned()).filter(|id| !id.is_empty())),
        None => (head, None),
    };
    let kind = match name {
        "prefix" => EncoderKind::Prefix(args.to_owned()),
        "suffix" => EncoderKind::Suffix(args.to_owned()),
        "nl" => EncoderKind::Nl,
        "format" => EncoderKind::Format(template(option, args)?),
        "json" => EncoderKind::Json(template(option, args)?),
        "gzip" => EncoderKind::Gzip,
        "compress" => EncoderKind::Compress,
        other => {
            return Err(values::invalid(
                option,
                format!("unknown log encoder '{other}' (known: prefix, suffix, nl, format, json, gzip, compress)"),
            ))
        }
    };
    Ok(EncoderSpec { use_for, kind })
}

/// Splits `foo ${msg} bar` into pieces, as `uwsgi_log_encoder_parse_vars`: `${` ... `}` is a variable, a `$`
/// not followed by `{` is text, and an unterminated `${...` is text. Unknown variables, which uWSGI renders
/// as nothing, are an error here: they are typos.
pub fn template(option: &RawOption, args: &str) -> Result<Vec<TemplatePiece>, ConfigError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = args;
    while let Some(start) = rest.find("${") {
        let Some(length) = rest[start + 2..].find('}') else { break };
        text.push_str(&rest[..start]);
        let name = &rest[start + 2..start + 2 + length];
        let piece = match name {
            "msg" => TemplatePiece::Msg,
            "msgnl" => TemplatePiece::MsgNl,
            "unix" => TemplatePiece::Unix,
            "micros" => TemplatePiece::Micros,
            "millis" => TemplatePiece::Millis,
            _ => match name.strip_prefix("strftime:") {
                Some(format) => TemplatePiece::Strftime(format.to_owned()),
                None => {
                    return Err(values::invalid(
                        option,
                        format!("unknown encoder variable ${{{name}}} (known: msg, msgnl, unix, micros, millis, strftime:FORMAT)"),
                    ))
                }
            },
        };
        if !text.is_empty() {
            pieces.push(TemplatePiece::Text(std::mem::take(&mut text)));
        }
        pieces.push(piece);
        rest = &rest[start + 2 + length + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(TemplatePiece::Text(text));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Origin;

    fn raw(key: &str, value: &str) -> RawOption {
        RawOption { key: key.to_owned(), value: value.to_owned(), origin: Origin::CommandLine { index: 1 } }
    }

    fn read(lines: &[(&str, LogOption, &str)], has_logfile: bool) -> Result<LogRouting, String> {
        let mut options = LogOptions::default();
        let mut warnings = Vec::new();
        for (key, which, value) in lines {
            options.apply(*which, &raw(key, value), &mut warnings).map_err(|err| err.to_string())?;
        }
        options.finish(has_logfile).map_err(|err| err.to_string())
    }

    #[test]
    fn loggers_with_and_without_ids() {
        let routing = read(
            &[
                ("logger", LogOption::Logger, "file:/var/log/a.log"),
                ("logger", LogOption::Logger, "cron file:/var/log/cron.log"),
                ("logger", LogOption::Logger, "default stdio"),
                ("logger", LogOption::Logger, "syslog:myapp,local3"),
                ("logger", LogOption::Logger, "syslog"),
                ("logger", LogOption::Logger, "net socket:127.0.0.1:5140"),
                ("logger", LogOption::Logger, "file:logfile=/l,maxsize=100,backupname=/l.1"),
                ("req-logger", LogOption::ReqLogger, "stdio:"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(
            routing.loggers[0],
            LoggerSpec {
                id: None,
                target: LoggerTarget::File { path: "/var/log/a.log".into(), maxsize: None, backupname: None }
            }
        );
        assert_eq!(routing.loggers[1].id.as_deref(), Some("cron"));
        assert_eq!(routing.loggers[2], LoggerSpec { id: Some("default".into()), target: LoggerTarget::Stdio });
        assert_eq!(
            routing.loggers[3].target,
            LoggerTarget::Syslog { ident: "myapp".into(), facility: "local3".into() }
        );
        assert_eq!(
            routing.loggers[4].target,
            LoggerTarget::Syslog { ident: "uwsgi".into(), facility: "daemon".into() }
        );
        assert_eq!(routing.loggers[5].target, LoggerTarget::Socket("127.0.0.1:5140".into()));
        assert_eq!(
            routing.loggers[6].target,
            LoggerTarget::File { path: "/l".into(), maxsize: Some(100), backupname: Some("/l.1".into()) }
        );
        assert_eq!(routing.req_loggers, vec![LoggerSpec { id: None, target: LoggerTarget::Stdio }]);
        assert!(routing.needs_router());
    }

    #[test]
    fn unknown_plugins_and_bad_args_are_clear_errors() {
        let error = read(&[("logger", LogOption::Logger, "redislog:127.0.0.1:6379")], false).unwrap_err();
        assert!(error.contains("liege has no 'redislog' logger (it has file, fd, stdio, syslog, socket)"), "{error}");
        assert!(read(&[("logger", LogOption::Logger, "file:")], false).unwrap_err().contains("needs a path"));
        assert!(read(&[("logger", LogOption::Logger, "syslog:x,nope")], false).unwrap_err().contains("facility"));
        assert!(read(&[("logger", LogOption::Logger, "fd:x")], false).unwrap_err().contains("descriptor"));
    }

    #[test]
    fn routes_need_their_logger_and_a_valid_pattern() {
        let routing = read(
            &[
                ("logger", LogOption::Logger, "default stdio"),
                ("log-route", LogOption::LogRoute, r"default ^((?!\{).)*$"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(routing.routes, vec![LogRoute { logger: "default".into(), pattern: r"^((?!\{).)*$".into() }]);
        let error = read(&[("log-route", LogOption::LogRoute, "cron uwsgi-cron")], false).unwrap_err();
        assert!(error.contains("no logger is named 'cron'"), "{error}");
        // A route of the request stream needs a req-logger of that name, not a logger.
        let error = read(
            &[("logger", LogOption::Logger, "x stdio"), ("log-req-route", LogOption::LogReqRoute, "x GET")],
            false,
        )
        .unwrap_err();
        assert!(error.contains("no req-logger is named 'x'"), "{error}");
        let error = read(&[("log-drain", LogOption::LogDrain, "(unclosed")], false).unwrap_err();
        assert!(error.contains("not a valid regular expression"), "{error}");
        assert!(read(&[("log-route", LogOption::LogRoute, "lonely")], false).unwrap_err().contains("LOGGER-ID REGEX"));
    }

    #[test]
    fn encoders_parse_as_uwsgi() {
        let routing = read(
            &[
                ("logger", LogOption::Logger, "default stdio"),
                (
                    "log-encoder",
                    LogOption::LogEncoder,
                    r#"json:default {"t": "${strftime:%d/%b}", "message": "${msg}", "u": ${unix}}"#,
                ),
                ("log-encoder", LogOption::LogEncoder, "nl"),
                ("log-encoder", LogOption::LogEncoder, "prefix [app] "),
                ("log-encoder", LogOption::LogEncoder, "format $x ${msgnl} $"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(routing.encoders[0].use_for.as_deref(), Some("default"));
        assert_eq!(
            routing.encoders[0].kind,
            EncoderKind::Json(vec![
                TemplatePiece::Text(r#"{"t": ""#.into()),
                TemplatePiece::Strftime("%d/%b".into()),
                TemplatePiece::Text(r#"", "message": ""#.into()),
                TemplatePiece::Msg,
                TemplatePiece::Text(r#"", "u": "#.into()),
                TemplatePiece::Unix,
                TemplatePiece::Text("}".into()),
            ])
        );
        assert_eq!(routing.encoders[1], EncoderSpec { use_for: None, kind: EncoderKind::Nl });
        assert_eq!(routing.encoders[2].kind, EncoderKind::Prefix("[app] ".into()));
        assert_eq!(
            routing.encoders[3].kind,
            EncoderKind::Format(vec![
                TemplatePiece::Text("$x ".into()),
                TemplatePiece::MsgNl,
                TemplatePiece::Text(" $".into())
            ])
        );
        assert!(read(&[("log-encoder", LogOption::LogEncoder, "rot13")], false)
            .unwrap_err()
            .contains("unknown log encoder 'rot13'"));
        assert!(read(&[("log-encoder", LogOption::LogEncoder, "format ${mgs}")], false)
            .unwrap_err()
            .contains("unknown encoder variable ${mgs}"));
        assert!(read(&[("log-encoder", LogOption::LogEncoder, "nl:nobody")], false)
            .unwrap_err()
            .contains("no logger is named 'nobody'"));
    }

    #[test]
    fn rotation_needs_a_log_file() {
        let error = read(&[("log-maxsize", LogOption::LogMaxsize, "1000")], false).unwrap_err();
        assert!(error.contains("only has an effect together with 'logto'"), "{error}");
        let routing = read(
            &[
                ("log-maxsize", LogOption::LogMaxsize, "1000"),
                ("log-backupname", LogOption::LogBackupname, "/var/log/x.old"),
            ],
            true,
        )
        .unwrap();
        assert_eq!((routing.maxsize, routing.backupname), (Some(1000), Some("/var/log/x.old".into())));
        assert!(read(&[("touch-logrotate", LogOption::TouchLogrotate, "/run/x")], false).is_err());
    }
}
