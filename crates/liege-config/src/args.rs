//! Command-line arguments, split the way uWSGI's getopt_long does.
//!
//! - `--name value` and `--name=value`; a value may start with a single `-` (`--harakiri -1` gets
//!   the value `-1`, which validation then rejects with a clear message), but an argument starting with `--`
//!   is never taken as a value: `--socket --master` is a forgotten value, not a socket named `--master`.
//! - Flags (`--master`, `-M`) never take the next argument; `--master=false` is allowed.
//! - Options with an optional value (`--chmod-socket`) take `=value`, or a following argument made only of
//!   digits (`--chmod-socket 660`), and otherwise mean their default.
//! - Short flags as uWSGI defines them: `-p 4`, `-p4`, `-M`, and clusters like `-MT`.
//! - Anything else is positional: the caller treats `*.ini` as `--ini` and `*.py`/`*.wsgi` as `--wsgi-file`
//!   (vassal), or as the vassal directory (emperor). `--` ends the options.
//! - `--help`, `-h`, `--usage` and `--version` are not options: the binary must answer them before calling
//!   this crate; they come back as [`ConfigError::HelpOrVersion`] so a missed one is still a clear message.

use std::ffi::OsString;
use std::path::Path;

use crate::options::{self, OptionDef, OptionKind};
use crate::{ConfigError, Origin};

/// One option or positional argument, values not yet expanded.
#[derive(Debug)]
pub enum Item {
    Option {
        def: &'static OptionDef,
        /// As written (`--workers`, `-p`), for error messages.
        spelled: String,
        /// `true` for a bare flag, the default for a bare optional value.
        value: String,
        origin: Origin,
    },
    Positional {
        value: String,
        origin: Origin,
    },
}

/// True for a positional argument that names a WSGI file (uWSGI's python plugin accepts `uwsgi app.py`).
pub fn is_app_file(argument: &str) -> bool {
    Path::new(argument).extension().is_some_and(|ext| ext == "py" || ext == "wsgi")
}

/// Splits argv (without the program name) into options and positional arguments.
pub fn parse(args: &[OsString]) -> Result<Vec<Item>, ConfigError> {
    let mut items = Vec::new();
    let mut cursor = ArgCursor { args, next: 0 };
    let mut options_ended = false;
    while let Some((index, argument)) = cursor.take()? {
        let origin = Origin::CommandLine { index };
        if options_ended || argument == "-" || !argument.starts_with('-') {
            items.push(Item::Positional { value: argument.to_owned(), origin });
        } else if argument == "--" {
            options_ended = true;
        } else if let Some(long) = argument.strip_prefix("--") {
            items.push(parse_long(long, origin, &mut cursor)?);
        } else {
            parse_short_cluster(&argument[1..], origin, &mut cursor, &mut items)?;
        }
    }
    Ok(items)
}

/// Walks argv, turning arguments into `&str` (non-UTF-8 arguments are an error: option values end up in
/// paths, names and Python strings, all of which liege treats as text).
struct ArgCursor<'a> {
    args: &'a [OsString],
    next: usize,
}

impl<'a> ArgCursor<'a> {
    fn take(&mut self) -> Result<Option<(usize, &'a str)>, ConfigError> {
        let index = self.next;
        let Some(argument) = self.args.get(index) else {
            return Ok(None);
        };
        self.next += 1;
        Ok(Some((index, decode(argument, index)?)))
    }

    fn peek(&self) -> Option<&'a str> {
        self.args.get(self.next).and_then(|argument| argument.to_str())
    }

    /// The next argument as the required value of `spelled`.
    fn required_value(&mut self, spelled: &str, origin: &Origin) -> Result<&'a str, ConfigError> {
        let missing = || ConfigError::MissingValue { origin: origin.clone(), name: spelled.to_owned() };
        let Some(argument) = self.args.get(self.next) else {
            return Err(missing());
        };
        let next = decode(argument, self.next)?;
        if next.starts_with("--") && next.len() > 2 {
            return Err(missing());
        }
        self.next += 1;
        Ok(next)
    }

    /// The next argument if it can only be a value (digits, like `660` after `--chmod-socket`).
    fn optional_value(&mut self) -> Option<&'a str> {
        let next = self.peek()?;
        let is_value = !next.is_empty() && next.bytes().all(|byte| byte.is_ascii_digit());
        if is_value {
            self.next += 1;
        }
        is_value.then_some(next)
    }
}

fn decode(argument: &OsString, index: usize) -> Result<&str, ConfigError> {
    argument.to_str().ok_or_else(|| ConfigError::Syntax {
        origin: Origin::CommandLine { index },
        problem: format!("argument '{}' is not valid UTF-8", argument.to_string_lossy()),
    })
}

fn parse_long(long: &str, origin: Origin, cursor: &mut ArgCursor<'_>) -> Result<Item, ConfigError> {
    let (name, attached) = match long.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (long, None),
    };
    let spelled = format!("--{name}");
    if matches!(name, "help" | "usage" | "version") {
        return Err(ConfigError::HelpOrVersion { origin, flag: spelled });
    }
    let def = options::lookup_long(name).ok_or_else(|| ConfigError::UnknownOption {
        origin: origin.clone(),
        name: spelled.clone(),
        suggestion: options::suggest(name).map(|suggestion| format!("--{suggestion}")),
    })?;
    let value = match (def.kind, attached) {
        (_, Some(value)) => value,
        (OptionKind::Flag, None) => "true",
        (OptionKind::OptionalValue { default }, None) => cursor.optional_value().unwrap_or(default),
        (OptionKind::Scalar | OptionKind::List, None) => cursor.required_value(&spelled, &origin)?,
    };
    Ok(Item::Option { def, spelled, value: value.to_owned(), origin })
}

fn parse_short_cluster(
    cluster: &str,
    origin: Origin,
    cursor: &mut ArgCursor<'_>,
    items: &mut Vec<Item>,
) -> Result<(), ConfigError> {
    for (position, letter) in cluster.char_indices() {
        let spelled = format!("-{letter}");
        if letter == 'h' {
            return Err(ConfigError::HelpOrVersion { origin, flag: spelled });
        }
        let def = options::lookup_short(letter).ok_or_else(|| ConfigError::UnknownOption {
            origin: origin.clone(),
            name: spelled.clone(),
            suggestion: None,
        })?;
        // What follows the letter in the same argument is its value (`-p4`, getopt style; `-p=4` too).
        let attached = &cluster[position + letter.len_utf8()..];
        let attached = attached.strip_prefix('=').unwrap_or(attached);
        let value = match def.kind {
            OptionKind::Flag => {
                items.push(Item::Option { def, spelled, value: "true".to_owned(), origin: origin.clone() });
                continue;
            }
            _ if !attached.is_empty() => attached,
            OptionKind::OptionalValue { default } => cursor.optional_value().unwrap_or(default),
            OptionKind::Scalar | OptionKind::List => cursor.required_value(&spelled, &origin)?,
        };
        items.push(Item::Option { def, spelled, value: value.to_owned(), origin });
        return Ok(());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OptionId;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    /// (option id or None for positional, value, argument index)
    fn summary(args: &[&str]) -> Vec<(Option<OptionId>, String, usize)> {
        parse(&os(args))
            .unwrap()
            .into_iter()
            .map(|item| match item {
                Item::Option { def, value, origin: Origin::CommandLine { index }, .. } => (Some(def.id), value, index),
                Item::Positional { value, origin: Origin::CommandLine { index } } => (None, value, index),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    fn entry(id: Option<OptionId>, value: &str, index: usize) -> (Option<OptionId>, String, usize) {
        (id, value.to_owned(), index)
    }

    #[test]
    fn long_options_with_separate_and_attached_values() {
        assert_eq!(
            summary(&["--http-socket", ":9099", "--processes=4", "--master", "--lazy-apps"]),
            vec![
                entry(Some(OptionId::HttpSocket), ":9099", 0),
                entry(Some(OptionId::Processes), "4", 2),
                entry(Some(OptionId::Master), "true", 3),
                entry(Some(OptionId::LazyApps), "true", 4),
            ]
        );
    }

    #[test]
    fn flags_do_not_swallow_the_next_argument() {
        assert_eq!(
            summary(&["--master", "app.ini", "--master=false"]),
            vec![
                entry(Some(OptionId::Master), "true", 0),
                entry(None, "app.ini", 1),
                entry(Some(OptionId::Master), "false", 2),
            ]
        );
    }

    #[test]
    fn short_flags() {
        assert_eq!(
            summary(&["-p", "4", "-M", "-H", "venv", "-w", "mod:app", "-s", "sock", "-T", "-L", "-b", "32768"]),
            vec![
                entry(Some(OptionId::Processes), "4", 0),
                entry(Some(OptionId::Master), "true", 2),
                entry(Some(OptionId::Virtualenv), "venv", 3),
                entry(Some(OptionId::Module), "mod:app", 5),
                entry(Some(OptionId::Socket), "sock", 7),
                entry(Some(OptionId::EnableThreads), "true", 9),
                entry(Some(OptionId::DisableLogging), "true", 10),
                entry(Some(OptionId::BufferSize), "32768", 11),
            ]
        );
        assert_eq!(
            summary(&["-p4", "-MTp", "2", "-t=30"]),
            vec![
                entry(Some(OptionId::Processes), "4", 0),
                entry(Some(OptionId::Master), "true", 1),
                entry(Some(OptionId::EnableThreads), "true", 1),
                entry(Some(OptionId::Processes), "2", 1),
                entry(Some(OptionId::Harakiri), "30", 3),
            ]
        );
    }

    #[test]
    fn optional_values() {
        assert_eq!(
            summary(&["--chmod-socket", "--chmod-socket", "660", "--chmod-socket=600", "-C", "x.ini"]),
            vec![
                entry(Some(OptionId::ChmodSocket), "666", 0),
                entry(Some(OptionId::ChmodSocket), "660", 1),
                entry(Some(OptionId::ChmodSocket), "600", 3),
                entry(Some(OptionId::ChmodSocket), "666", 4),
                entry(None, "x.ini", 5),
            ]
        );
    }

    #[test]
    fn values_may_start_with_one_dash_and_double_dash_ends_options() {
        assert_eq!(
            summary(&["--harakiri", "-1", "--", "--not-an-option"]),
            vec![entry(Some(OptionId::Harakiri), "-1", 0), entry(None, "--not-an-option", 3)]
        );
    }

    #[test]
    fn missing_values() {
        let error = parse(&os(&["--socket"])).unwrap_err();
        assert_eq!(error.to_string(), "command line: option '--socket' needs a value");
        let error = parse(&os(&["--socket", "--master"])).unwrap_err();
        assert_eq!(error.to_string(), "command line: option '--socket' needs a value");
        let error = parse(&os(&["-p"])).unwrap_err();
        assert_eq!(error.to_string(), "command line: option '-p' needs a value");
    }

    #[test]
    fn unknown_options_suggest_close_names() {
        let error = parse(&os(&["--proceses", "4"])).unwrap_err();
        assert_eq!(error.to_string(), "command line: unknown option '--proceses' (did you mean '--processes'?)");
        let error = parse(&os(&["--frobnicate"])).unwrap_err();
        assert_eq!(error.to_string(), "command line: unknown option '--frobnicate'");
        let error = parse(&os(&["-Y"])).unwrap_err();
        assert_eq!(error.to_string(), "command line: unknown option '-Y'");
    }

    #[test]
    fn help_and_version_are_for_the_binary() {
        for flag in ["--help", "-h", "--version", "--usage"] {
            let error = parse(&os(&["--master", flag])).unwrap_err();
            assert!(
                matches!(&error, ConfigError::HelpOrVersion { flag: found, origin: Origin::CommandLine { index: 1 } } if found == flag),
                "{error}"
            );
        }
    }

    #[test]
    fn non_utf8_arguments_are_rejected() {
        use std::os::unix::ffi::OsStringExt;
        let args = vec![OsString::from("--chdir"), OsString::from_vec(vec![0x66, 0xff])];
        let error = parse(&args).unwrap_err();
        assert!(matches!(&error, ConfigError::Syntax { origin: Origin::CommandLine { index: 1 }, .. }), "{error}");
        let args = vec![OsString::from_vec(vec![0x2d, 0x2d, 0xff])];
        let error = parse(&args).unwrap_err();
        assert!(error.to_string().contains("not valid UTF-8"), "{error}");
    }

    #[test]
    fn app_files() {
        assert!(is_app_file("app.py"));
        assert!(is_app_file("/srv/app.wsgi"));
        assert!(!is_app_file("app.ini"));
        assert!(!is_app_file("py"));
    }
}
