//! The emperor's configuration: `liege emperor DIR [OPTIONS]` or uWSGI's `liege --emperor DIR [OPTIONS]`.
//!
//! Emperor options share the option table (so `--help` documents them and ini files may set them), but they
//! are not part of [`crate::VassalConfig`]: in a vassal's config they are an error, and app options given to
//! the emperor are an error that points at `--vassal-set`, uWSGI's way to give an option to every vassal.
//! Options that have no effect in liege (`--master`, `--vacuum`, `--die-on-term`...) are accepted, since
//! uWSGI emperor command lines often carry them.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::options::{self, OptionId, OptionKind, Support};
use crate::{args, collect, ini, values, ConfigError, ConfigWarning, Origin, RawOption};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmperorConfig {
    /// The vassal directory: one app per `*.ini` file in it. With [`Self::pattern`], the directory the
    /// pattern's fixed part names (watched recursively).
    pub dir: PathBuf,
    /// `emperor = /etc/uwsgi/vassals/*/*.ini` or `emperor = /srv/app/uwsgi.ini`: uWSGI's glob monitor (a path
    /// without wildcards is a glob matching one file). The vassals are the matching `*.ini` files, and they
    /// run in the emperor's working directory, as uWSGI's glob monitor leaves them.
    pub pattern: Option<String>,
    /// Address of the HTTP API and dashboard; default `127.0.0.1:9191`.
    pub api: String,
    /// A file holding the bearer token required by state-changing API calls.
    pub api_token_file: Option<PathBuf>,
    /// Where the emperor keeps runtime files (sockets, pids).
    pub run_dir: Option<PathBuf>,
    /// Where per-vassal log files go.
    pub log_dir: Option<PathBuf>,
    /// Ports handed to vassals that ask for one; default 8001-8999 (inclusive).
    pub vassal_port_range: (u16, u16),
    /// Files read into every vassal's config after the vassal's own file (`vassals-include`).
    pub vassals_include: Vec<PathBuf>,
    /// Options set in every vassal (`vassal-set = key=value`, keys checked against the option table and
    /// given in canonical form).
    pub vassal_set: Vec<(String, String)>,
    /// First delay before respawning a crash-looping vassal; doubles each time (`emperor-throttle`,
    /// milliseconds as in uWSGI; default 1 s).
    pub throttle_base: Duration,
    /// Cap of that delay (`emperor-max-throttle`, milliseconds as in uWSGI; default 60 s where uWSGI has 3 min:
    /// a fixed app should come back within a minute).
    pub throttle_max: Duration,
    /// Where to serve uWSGI's emperor stats document (`emperor-stats`), if anywhere.
    pub stats: Option<crate::SocketAddress>,
    /// A vassal master silent for this long is considered hung and restarted (`emperor-required-heartbeat`).
    pub required_heartbeat: Duration,
    /// The emperor process's own `umask`, `daemonize` (log file), `logto` and `pidfile`, as in uWSGI where
    /// the emperor is a uWSGI instance like any other.
    pub umask: Option<u32>,
    pub daemonize: Option<PathBuf>,
    pub logto: Option<PathBuf>,
    pub pidfile: Option<PathBuf>,
    /// `show-config`: log the configuration as an ini section at start, as a vassal does.
    pub show_config: bool,
    /// `uid` / `gid` / `cap` of the emperor process itself: after binding its API and stats sockets it drops
    /// root to this user and group, keeping these capabilities (uWSGI's emperor is an instance like any
    /// other, so its own `uid` drops its own privileges; the vassals then run as that user too).
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub caps: Vec<String>,
    /// `chmod-socket`: the mode of the emperor's own unix sockets (its stats socket).
    pub chmod_socket: Option<u32>,
    /// `emperor-tyrant` (and `-nofollow`, `-initgroups`): each vassal runs as its file's owner.
    pub tyrant: Option<Tyrant>,
    /// `emperor-subreaper`: the emperor sets `PR_SET_CHILD_SUBREAPER`, so orphans below it are reparented
    /// to it, and it reaps them (uWSGI's option; as PID 1 it reaps them without it).
    pub subreaper: bool,
    /// `binary-path`: the liege binary vassals are started with, instead of the running one.
    pub binary_path: Option<PathBuf>,
    /// `touch-reload`: touching one of these files does what SIGHUP does to the emperor (uWSGI's
    /// `emperor_massive_reload`: every vassal reloads gracefully), as touch-reload does what SIGHUP does to
    /// the instance that sets it.
    pub touch_reload: Vec<PathBuf>,
    /// Every raw option in order, for display.
    pub raw: Vec<RawOption>,
    /// Readings that uWSGI accepts but that are probably not what was meant (see [`ConfigWarning`]).
    pub warnings: Vec<ConfigWarning>,
}

/// `emperor-tyrant`: every vassal runs as the owner of its file (uWSGI's core/emperor.c).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tyrant {
    /// `emperor-tyrant-nofollow`: the owner of a symlink is the link's, not its target's.
    pub nofollow: bool,
    /// `emperor-tyrant-initgroups`: the owner's supplementary groups too (default: only the file's group).
    pub initgroups: bool,
}

/// Reads the emperor's command line (argv without the program name, with or without a leading `emperor`
/// word). The vassal directory is the first positional argument that is not an ini file, or `--emperor DIR`;
/// ini files (`--ini emperor.ini`, a bare `emperor.ini`) may hold the same options in their `[uwsgi]` section.
pub fn parse_emperor_args(
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<EmperorConfig, ConfigError> {
    let args = match args.first() {
        Some(first) if first == "emperor" => &args[1..],
        _ => args,
    };
    let mut collector = collect::Collector::new(env);
    for item in args::parse(args)? {
        match item {
            args::Item::Option { def, spelled, value, origin } => {
                collector.add_command_line_option(def, &spelled, &value, origin)?
            }
            // `liege emperor '/etc/vassals/*.ini'`: a pattern is the emperor's glob, not a config to read.
            args::Item::Positional { value, origin }
                if ini::is_ini_spec(&value) && !value.contains(['*', '?', '[']) =>
            {
                collector.add_command_line_ini(&value, origin)?
            }
            args::Item::Positional { value, origin } => collector.add_command_line_emperor_dir(&value, origin),
        }
    }
    EmperorConfig::from_raw(collector.finish()?.raw)
}

impl EmperorConfig {
    /// Interprets raw options for the emperor (see [`parse_emperor_args`]).
    pub fn from_raw(raw: Vec<RawOption>) -> Result<Self, ConfigError> {
        let mut config = EmperorConfig {
            dir: PathBuf::new(),
            pattern: None,
            api: "127.0.0.1:9191".to_owned(),
            api_token_file: None,
            run_dir: None,
            log_dir: None,
            vassal_port_range: (8001, 8999),
            vassals_include: Vec::new(),
            vassal_set: Vec::new(),
            throttle_base: Duration::from_secs(1),
            throttle_max: Duration::from_secs(60),
            stats: None,
            required_heartbeat: Duration::from_secs(30),
            umask: None,
            daemonize: None,
            logto: None,
            pidfile: None,
            show_config: false,
            uid: None,
            gid: None,
            caps: Vec::new(),
            chmod_socket: None,
            tyrant: None,
            subreaper: false,
            binary_path: None,
            touch_reload: Vec::new(),
            raw: Vec::new(),
            warnings: Vec::new(),
        };
        let mut warnings = Vec::new();
        let w = &mut warnings;
        let mut dir: Option<&RawOption> = None;
        let mut stats_alias: Option<&RawOption> = None;
        let mut tyrant_flags = (false, false);
        for option in &raw {
            let def = options::lookup_long(&option.key).ok_or_else(|| ConfigError::UnknownOption {
                origin: option.origin.clone(),
                name: option.key.clone(),
                suggestion: options::suggest(&option.key).map(str::to_owned),
            })?;
            match def.support {
                Support::EmperorOnly => {}
                Support::NoEffect => {
                    if def.kind == OptionKind::Flag {
                        values::boolean(option, w)?;
                    }
                    continue;
                }
                Support::Unsupported { reason } => {
                    return Err(ConfigError::Unsupported {
                        origin: option.origin.clone(),
                        name: option.key.clone(),
                        reason,
                    })
                }
                // Reading options (config logic was applied while reading), and `master`, always on anyway.
                Support::Vassal
                    if matches!(
                        def.id,
                        OptionId::Ini | OptionId::Include | OptionId::SetPlaceholder | OptionId::Strict
                    ) || crate::logic::opens_block(def.id)
                        || matches!(def.id, OptionId::EndIf | OptionId::EndFor | OptionId::Else) =>
                {
                    continue
                }
                // The emperor process's own settings.
                Support::Vassal if def.id == OptionId::Umask => {
                    config.umask = Some(values::octal_mode(option)?);
                    continue;
                }
                Support::Vassal if matches!(def.id, OptionId::Daemonize | OptionId::Daemonize2) => {
                    config.daemonize = Some(emperor_log_file(option)?);
                    continue;
                }
                Support::Vassal if matches!(def.id, OptionId::Logto | OptionId::Logto2) => {
                    config.logto = Some(emperor_log_file(option)?);
                    continue;
                }
                Support::Vassal if def.id == OptionId::TouchReload => {
                    config.touch_reload.push(values::path(option)?);
                    continue;
                }
                Support::Vassal if def.id == OptionId::ShowConfig => {
                    config.show_config = values::boolean(option, w)?;
                    continue;
                }
                Support::Vassal if matches!(def.id, OptionId::Pidfile | OptionId::SafePidfile) => {
                    config.pidfile = Some(values::path(option)?);
                    continue;
                }
                Support::Vassal if def.id == OptionId::Uid => {
                    config.uid = Some(values::non_empty(option)?);
                    continue;
                }
                Support::Vassal if def.id == OptionId::Gid => {
                    config.gid = Some(values::non_empty(option)?);
                    continue;
                }
                Support::Vassal if def.id == OptionId::Cap => {
                    config.caps.push(values::non_empty(option)?);
                    continue;
                }
                Support::Vassal if def.id == OptionId::ChmodSocket => {
                    config.chmod_socket = Some(values::octal_mode(option)?);
                    continue;
                }
                // `stats = ADDR` in an emperor's ini: uWSGI's emperor instance (no master) never serves it;
                // here it is the emperor's stats document, what uwsgitop and exporters can read of an emperor.
                Support::Vassal if def.id == OptionId::Stats => {
                    stats_alias = Some(option);
                    continue;
                }
                Support::Vassal if def.id == OptionId::Master => {
                    values::boolean(option, w)?;
                    continue;
                }
                // An emperor's ini file (Fedora's /etc/uwsgi.ini, a container's docker.ini) may carry app
                // tuning such as `buffer-size`: uWSGI's emperor-only instance serves no request, so it has no
                // effect there, and uWSGI's vassals never inherit it. liege warns and goes on. Options that
                // would make uWSGI also serve an app beside its emperor stay errors (liege's emperor runs no
                // app itself), as do app options on the command line.
                Support::Vassal if matches!(option.origin, Origin::File { .. }) && !starts_an_app(def.id) => {
                    w.push(ConfigWarning::new(
                        &option.origin,
                        format!(
                            "'{}' has no effect on the emperor, as in uWSGI (an emperor serves no requests, and \
                             vassals read their own files); to give it to every vassal, use vassal-set = {}=VALUE",
                            option.key, option.key
                        ),
                    ));
                    continue;
                }
                Support::Vassal => {
                    return Err(ConfigError::VassalOnly { origin: option.origin.clone(), name: option.key.clone() })
                }
            }
            match def.id {
                OptionId::Emperor => dir = Some(option),
                OptionId::VassalsInclude => config.vassals_include.push(values::path(option)?),
                OptionId::VassalSet => config.vassal_set.push(vassal_setting(option)?),
                OptionId::Api => config.api = values::non_empty(option)?,
                OptionId::ApiTokenFile => config.api_token_file = Some(values::path(option)?),
                OptionId::RunDir => config.run_dir = Some(values::path(option)?),
                OptionId::LogDir => config.log_dir = Some(values::path(option)?),
                OptionId::VassalPortRange => config.vassal_port_range = port_range(option)?,
                OptionId::EmperorThrottle => config.throttle_base = milliseconds(option, w)?,
                OptionId::EmperorMaxThrottle => config.throttle_max = milliseconds(option, w)?,
                OptionId::EmperorStats => config.stats = Some(values::socket_address(option)?),
                OptionId::EmperorTyrant => {
                    if values::boolean(option, w)? {
                        config.tyrant.get_or_insert_with(Tyrant::default);
                    } else {
                        config.tyrant = None;
                    }
                }
                OptionId::EmperorTyrantNofollow => tyrant_flags.0 = values::boolean(option, w)?,
                OptionId::EmperorTyrantInitgroups => tyrant_flags.1 = values::boolean(option, w)?,
                OptionId::EmperorSubreaper => config.subreaper = values::boolean(option, w)?,
                OptionId::BinaryPath => config.binary_path = Some(values::path(option)?),
                OptionId::EmperorRequiredHeartbeat => config.required_heartbeat = values::positive_seconds(option, w)?,
                _ => {}
            }
        }
        if let Some(option) = stats_alias {
            if config.stats.is_none() {
                config.stats = Some(values::socket_address(option)?);
            }
        }
        if let Some(tyrant) = &mut config.tyrant {
            (tyrant.nofollow, tyrant.initgroups) = tyrant_flags;
        }
        let dir = dir.ok_or(ConfigError::NoEmperorDirectory)?;
        (config.dir, config.pattern) = emperor_source(dir)?;
        config.raw = raw;
        config.warnings = warnings;
        Ok(config)
    }
}

/// `emperor = DIR`, or uWSGI's glob monitor: a pattern (`/etc/vassals/*/*.ini`) or one file (`%D/foo.ini`).
/// Monitor URLs (`zmq://`, `pg://`, `amqp://`...) are refused: liege's emperor watches files.
fn emperor_source(option: &RawOption) -> Result<(PathBuf, Option<String>), ConfigError> {
    let value = option.value.trim();
    if value.contains("://") {
        return Err(values::invalid(
            option,
            "liege's emperor watches files: a directory of *.ini files or a glob of them; uWSGI's monitor URLs \
             (zmq://, pg://, amqp://, mongodb://) are not supported",
        ));
    }
    let has_wildcards = value.contains(['*', '?', '[']);
    if !has_wildcards && !value.ends_with(".ini") {
        return Ok((values::path(option)?, None));
    }
    if let Err(err) = glob::Pattern::new(value) {
        return Err(values::invalid(option, format!("not a valid glob pattern: {err}")));
    }
    if !value.ends_with(".ini") && !value.ends_with('*') {
        return Err(values::invalid(option, "liege reads ini vassal files only: the pattern must match *.ini files"));
    }
    // The fixed part: the directories before the first component with a wildcard (or the file's directory).
    let mut fixed = PathBuf::new();
    let components: Vec<&str> = value.split('/').collect();
    for (index, component) in components.iter().enumerate() {
        if index + 1 == components.len() || component.contains(['*', '?', '[']) {
            break;
        }
        fixed.push(if component.is_empty() && index == 0 { "/" } else { component });
    }
    if fixed.as_os_str().is_empty() {
        fixed.push(".");
    }
    Ok((fixed, Some(value.to_owned())))
}

/// The emperor's own `daemonize` / `logto` file. A vassal may send its output over UDP (`HOST:PORT`, through
/// its log process); the emperor has no log process, so an address is refused rather than taken for a file
/// name.
fn emperor_log_file(option: &RawOption) -> Result<PathBuf, ConfigError> {
    if values::udp_log_address(option).is_some() {
        return Err(values::invalid(
            option,
            "the emperor logs to a file, not to a UDP address (vassals can: give them `logto = HOST:PORT` with \
             --vassal-set); give a log file path, or run it in the foreground under systemd",
        ));
    }
    values::path(option)
}

/// Options with which a uWSGI instance serves an app of its own (a socket to serve on, an app to load):
/// in an emperor's file they are an error, not a warning, since liege's emperor would silently not serve it.
fn starts_an_app(id: OptionId) -> bool {
    matches!(
        id,
        OptionId::Socket
            | OptionId::HttpSocket
            | OptionId::WsgiFile
            | OptionId::Module
            | OptionId::Mount
            | OptionId::Paste
            | OptionId::Processes
    )
}

fn milliseconds(option: &RawOption, w: &mut Vec<ConfigWarning>) -> Result<Duration, ConfigError> {
    values::positive::<u64>(option, w).map(Duration::from_millis)
}

/// `LOW-HIGH`, inclusive, `LOW <= HIGH`, no port 0 (that would mean "any port" to the kernel).
fn port_range(option: &RawOption) -> Result<(u16, u16), ConfigError> {
    let invalid =
        || values::invalid(option, "expected LOW-HIGH with ports from 1 to 65535, LOW <= HIGH (e.g. 8001-8999)");
    let (low, high) = option.value.split_once('-').ok_or_else(invalid)?;
    let parse = |text: &str| -> Option<u16> {
        let text = text.trim();
        let is_digits = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
        text.parse().ok().filter(|&port| is_digits && port > 0)
    };
    match (parse(low), parse(high)) {
        (Some(low), Some(high)) if low <= high => Ok((low, high)),
        _ => Err(invalid()),
    }
}

/// `key=value` where key must be an app option (checked now, so a typo fails at emperor start rather than
/// in every vassal).
fn vassal_setting(option: &RawOption) -> Result<(String, String), ConfigError> {
    let (key, value) = values::key_value(option)?;
    let def = options::lookup_long(&key).ok_or_else(|| {
        values::invalid(
            option,
            match options::suggest(&key) {
                Some(suggestion) => {
                    format!("'{key}' is not an option (did you mean '{suggestion}'?)")
                }
                None => format!("'{key}' is not an option"),
            },
        )
    })?;
    if def.support == Support::EmperorOnly {
        return Err(values::invalid(option, format!("'{key}' configures the emperor, not the vassals")));
    }
    Ok((def.name.to_owned(), value))
}
