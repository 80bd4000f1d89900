//! liege's configuration: uWSGI's ini files and command lines, read faithfully, validated strictly.
//!
//! liege is a drop-in for uWSGI, so existing `uwsgi.ini` files and `uwsgi --http-socket ...` command lines
//! must work unchanged. Reading happens in stages, each in its own module:
//!
//! 1. `args` turns argv into options (`--name value`, `--name=value`, `-p 4`, `-M`, `app.ini`, `app.py`);
//! 2. `collect` merges them in order with the ini files they name ([`ini`] reads uWSGI's dialect), expanding
//!    each value as it is read (`expand`: `%n`, `$(ENV)`, `%(name)`) and each `ini =` include in place,
//!    which gives one ordered list of [`RawOption`]s, like uWSGI's internal option list;
//! 3. [`VassalConfig::from_raw`] (or [`EmperorConfig::from_raw`]) gives every option its type and checks
//!    it, naming the file and line of any mistake.
//!
//! The [`OPTIONS`] table drives all of it, and [`help_text`].
//!
//! # Unknown options and placeholders
//!
//! uWSGI accepts any key in an ini file: an unknown key becomes a *placeholder* that later values can use
//! (`project = shop` then `chdir = /srv/%(project)`). The cost is that a typo (`proceses = 4`) is silently
//! ignored, uWSGI's most common support question. liege keeps the useful half: a key that is not an option
//! is accepted only if a later value refers to it as `%(key)`, or if it is defined with
//! `set-placeholder = key=value` (`set-ph`). Any other unknown key is an error naming the file and line with
//! a did-you-mean suggestion. On the command line unknown flags are always errors (as with uWSGI's getopt);
//! use `--set-ph key=value` there.
//!
//! # Expansion
//!
//! In config files, uWSGI's magic variables (`%n` file name without extension, `%d` its directory with a
//! trailing `/`, `%p`, `%s`, `%e`, `%c`, `%x`, `%0`-`%9`, `%h`, `%k`, `%t`, `%T`, `%u`, `%U`, `%g`, `%G`, `%V`,
//! `%v`, `%o`, `%i`, upper-case twins for the first file, `%%`), `$(NAME)` for environment variables and
//! `%(name)` for the current value of an option or placeholder set earlier. On the command line `$(NAME)` and
//! `%(name)` work but magic letters are kept as written, exactly as uWSGI does (it applies its magic table
//! to file contents only).

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

pub mod apps;
mod args;
pub mod cheaper;
mod collect;
pub mod cron;
mod emperor;
mod expand;
mod help;
mod host;
pub mod ini;
mod logic;
pub mod logs;
pub mod master;
pub mod mules;
pub mod options;
pub mod python;
pub mod spooler;
pub mod uwsgi_names;
mod values;
pub mod vassal;

pub use apps::{CacheSpec, MountedApp};
pub use emperor::{parse_emperor_args, EmperorConfig, Tyrant};
pub use help::help_text;
pub use options::{lookup, suggest, OptionDef, OptionGroup, OptionId, OptionKind, Support, OPTIONS};
pub use vassal::{
    AppSource, AppSpec, Cheaper, CheaperAlgo, LogFormat, Protocol, SocketAddress, SocketSpec, VassalConfig,
};
pub use vassal::{RequestPathConfig, RouteKind, RouteLine, RouteTable, StaticLine};

/// liege's version, as `%V` and `--version` show it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where an option came from, so every error can point at the exact place to fix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The `index`-th argument (0-based, not counting the program name).
    CommandLine { index: usize },
    /// A line (1-based) of a config file; `path` is the path the file was opened with.
    File { path: PathBuf, line: usize },
}

impl fmt::Display for Origin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::CommandLine { .. } => formatter.write_str("command line"),
            Origin::File { path, line } => write!(formatter, "{}:{line}", path.display()),
        }
    }
}

/// One option as given, after expansion, before its value is interpreted.
///
/// The ordered list of these is what uWSGI exposes as `uwsgi.opt`, and what [`VassalConfig::from_raw`]
/// interprets. A placeholder defined by an otherwise unknown ini key (`project = foo`) appears as
/// `set-placeholder` with the value `project=foo`, so every `key` is a canonical option name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOption {
    /// The canonical option name (`processes`, even when written `workers` or `-p`).
    pub key: String,
    /// The value after expansion; `true` for a bare flag, the documented default for a bare optional value.
    pub value: String,
    pub origin: Origin,
}

/// Something uWSGI accepts and liege reads the same way, but that is probably not what the author meant
/// (a number with text after it, an inline comment kept in a value, an unknown key with `strict = false`).
/// The binary logs these at startup and `--check-config` prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub origin: Origin,
    pub message: String,
}

impl ConfigWarning {
    pub fn new(origin: &Origin, message: impl Into<String>) -> Self {
        ConfigWarning { origin: origin.clone(), message: message.into() }
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: warning: {}", self.origin, self.message)
    }
}

/// Everything that can be wrong with a configuration. Every message starts with where the problem is
/// (`app.ini:3: ...`, `command line: ...`, or the file that could not be read).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{origin}: unknown option '{name}'{}", did_you_mean(.suggestion))]
    UnknownOption { origin: Origin, name: String, suggestion: Option<String> },

    #[error("{origin}: option '{name}' is not supported by liege: {reason}")]
    Unsupported { origin: Origin, name: String, reason: &'static str },

    #[error(
        "{origin}: '{name}' is a uWSGI option that liege does not implement; remove it (or put it in a \
         section liege does not read), and see `liege --help` for what liege offers instead"
    )]
    NotImplemented { origin: Origin, name: String },

    #[error("{origin}: option '{name}' configures the emperor, not an app; give it to `liege emperor DIR`")]
    EmperorOnly { origin: Origin, name: String },

    #[error(
        "{origin}: option '{name}' configures an app, not the emperor; put it in the vassal files, or give it \
         to every vassal with --vassal-set {name}=VALUE"
    )]
    VassalOnly { origin: Origin, name: String },

    #[error("{origin}: option '{name}' needs a value")]
    MissingValue { origin: Origin, name: String },

    #[error("{origin}: invalid value '{value}' for '{name}': {reason}")]
    InvalidValue { origin: Origin, name: String, value: String, reason: String },

    #[error("{origin}: '{name}' and '{other}' (at {other_origin}) cannot both be given: {reason}")]
    Conflict { origin: Origin, name: &'static str, other: &'static str, other_origin: Origin, reason: &'static str },

    #[error("{origin}: option '{name}' only has an effect together with '{required}', which is not set")]
    Requires { origin: Origin, name: String, required: &'static str },

    #[error(
        "{origin}: %({name}) refers to no option or placeholder set before this point \
         (define it earlier, e.g. `set-placeholder = {name}=VALUE`)"
    )]
    UnknownReference { origin: Origin, name: String },

    #[error("{origin}: unknown magic variable '%{letter}' (write %% for a literal %)")]
    UnknownMagic { origin: Origin, letter: char },

    #[error("{origin}: magic variable '%{letter}' is unavailable: {reason}")]
    MagicUnavailable { origin: Origin, letter: char, reason: String },

    #[error("{}: cannot read config file: {source}{}", .path.display(), describe_reference(.referenced_at))]
    ReadFile { path: PathBuf, referenced_at: Option<Origin>, source: std::io::Error },

    #[error("{}: no [{section}] section in this file{}", .path.display(), describe_reference(.referenced_at))]
    SectionNotFound { path: PathBuf, section: String, referenced_at: Option<Origin> },

    #[error("{origin}: {problem}")]
    Syntax { origin: Origin, problem: String },

    #[error("{origin}: including '{}' again would loop forever ({chain})", .path.display())]
    IncludeCycle { origin: Origin, path: PathBuf, chain: String },

    #[error(
        "{origin}: unexpected argument '{argument}' (options start with - or --, config files end in .ini, \
         app files in .py or .wsgi)"
    )]
    UnexpectedArgument { origin: Origin, argument: String },

    /// `--help`, `-h`, `--usage` or `--version`: the binary answers these before parsing options (see
    /// [`help_text`] and [`VERSION`]); this error only means they were not intercepted.
    #[error("{origin}: '{flag}' must be handled by the liege binary before options are parsed")]
    HelpOrVersion { origin: Origin, flag: String },

    #[error("command line: no vassal directory given; use `liege emperor DIR` or `liege --emperor DIR`")]
    NoEmperorDirectory,
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion.as_ref().map(|name| format!(" (did you mean '{name}'?)")).unwrap_or_default()
}

fn describe_reference(origin: &Option<Origin>) -> String {
    origin.as_ref().map(|origin| format!(" (referenced at {origin})")).unwrap_or_default()
}

/// Reads a vassal's command line (argv without the program name) into its validated configuration.
///
/// Options and ini files are merged in the order given: `--ini app.ini` and a bare `app.ini` argument read
/// the file at that point, so later options override it and earlier ones are overridden by it, as in uWSGI.
/// A bare `app.py` or `app.wsgi` argument means `--wsgi-file`, as uWSGI's python plugin does.
/// `env` supplies environment variables for `$(NAME)` (pass `&|name| std::env::var(name).ok()`).
pub fn parse_vassal_args(args: &[OsString], env: &dyn Fn(&str) -> Option<String>) -> Result<VassalConfig, ConfigError> {
    let collected = collect_args(args, env)?;
    let mut config = VassalConfig::from_raw(collected.raw, collected.first_file_name.as_deref())?;
    let mut warnings = collected.warnings;
    warnings.append(&mut config.warnings);
    config.warnings = warnings;
    Ok(config)
}

/// What a command line asks for: one app, or the emperor (`emperor = DIR` in an ini's `[uwsgi]` section, as
/// the Fedora and PLD packages start it with `uwsgi --ini /etc/uwsgi.ini`).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Mode {
    Vassal(VassalConfig),
    Emperor(EmperorConfig),
}

/// Reads a command line that may configure either a vassal or the emperor: when the merged options contain
/// `emperor`, they are read as the emperor's ([`EmperorConfig::from_raw`]), otherwise as one app's.
pub fn parse_args(args: &[OsString], env: &dyn Fn(&str) -> Option<String>) -> Result<Mode, ConfigError> {
    let collected = collect_args(args, env)?;
    if collected.raw.iter().any(|option| option.key == "emperor") {
        let mut config = EmperorConfig::from_raw(collected.raw)?;
        let mut warnings = collected.warnings;
        warnings.append(&mut config.warnings);
        config.warnings = warnings;
        return Ok(Mode::Emperor(config));
    }
    let mut config = VassalConfig::from_raw(collected.raw, collected.first_file_name.as_deref())?;
    let mut warnings = collected.warnings;
    warnings.append(&mut config.warnings);
    config.warnings = warnings;
    Ok(Mode::Vassal(config))
}

/// Merges a vassal's command line with the files it names (see [`parse_vassal_args`]).
fn collect_args(args: &[OsString], env: &dyn Fn(&str) -> Option<String>) -> Result<collect::Collected, ConfigError> {
    let mut collector = collect::Collector::new(env);
    for item in args::parse(args)? {
        match item {
            args::Item::Option { def, spelled, value, origin } => {
                collector.add_command_line_option(def, &spelled, &value, origin)?
            }
            args::Item::Positional { value, origin } if ini::is_ini_spec(&value) => {
                collector.add_command_line_ini(&value, origin)?
            }
            args::Item::Positional { value, origin } if args::is_app_file(&value) => {
                collector.add_command_line_app_file(&value, origin)
            }
            args::Item::Positional { value, origin } => {
                return Err(ConfigError::UnexpectedArgument { origin, argument: value })
            }
        }
    }
    let collected = collector.finish()?;
    Ok(collected)
}

/// Reads one ini file (`file` or `file:section`) with its includes into raw options, without interpreting
/// them: the emperor uses it to check a vassal file (then [`VassalConfig::from_raw`]) before starting it.
///
/// Unknown keys are already rejected here (unless used as placeholders), since that needs the whole file.
pub fn load_ini(spec: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<RawOption>, ConfigError> {
    let mut collector = collect::Collector::new(env);
    collector.add_ini(spec, None)?;
    Ok(collector.finish()?.raw)
}

/// The name a vassal file gives its app: its file name without the `.ini` extension (`%n`), as
/// [`VassalConfig::from_raw`] expects for `first_file_name`.
pub fn app_name_of(spec: &str) -> String {
    let (file, _section) = ini::split_spec(spec);
    expand::file_stem(std::path::Path::new(file))
}

#[cfg(test)]
mod tests;

/// `show-config`: the options in order as one ini section, framed as uWSGI's `show_config()` frames it (tools
/// that cut the block out of a log look for these two comment lines). A flag given without a value is `true`.
pub fn show_config(raw: &[RawOption]) -> String {
    let mut out = String::from("\n;uWSGI instance configuration\n[uwsgi]\n");
    for option in raw {
        let value = if option.value.is_empty() { "true" } else { option.value.as_str() };
        out.push_str(&format!("{} = {value}\n", option.key));
    }
    out.push_str(";end of configuration\n\n");
    out
}
