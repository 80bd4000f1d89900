//! The cron family (`cron`, `unique-cron`, `cron2`, `cron-harakiri`): commands the master runs on a wall-clock
//! schedule, read with uWSGI's syntax (core/cron.c) so a mistake is an error naming the file and line. What
//! they do at run time is the master's business (`liege::master::cron`).
//!
//! uWSGI's meanings:
//!
//! - `cron = MINUTE HOUR DAY MONTH WEEKDAY COMMAND`: five integers then the command, run by `/bin/sh -c`. A
//!   field of `-1` matches any value, `-N` every value divisible by N (`-15` in the minute field is `*/15`);
//!   months are 1-12, weekdays 0-6 from Sunday (7 is Sunday too). When both DAY and WEEKDAY are given (not
//!   negative) either may match, as in crontab.
//! - `unique-cron`: the same, but a run is skipped while the previous run of that entry is still going.
//! - `cron2 = key=value,... COMMAND` (or just `COMMAND`, every minute): keys `minute`, `hour`, `day`, `month`,
//!   `week` (default -1), `unique` (a number, non-zero = unique), `harakiri` (seconds; 0 = never killed, even
//!   with `cron-harakiri`).
//! - `cron-harakiri = N`: a command still running N seconds after it started is killed (its process group,
//!   SIGKILL); `cron2`'s `harakiri` overrides it for its entry.
//!
//! uWSGI reads the numbers with `sscanf`/`atoi`, which take `5x` for 5; liege refuses anything that is not a
//! whole number. Values that can never match (minute 60, month 13...) are accepted as uWSGI does, with a
//! warning. Legion crons (`legion-cron`, cron2's `legion`) need uWSGI's legion clustering, which liege does not
//! have: they are refused.

use crate::{values, ConfigError, ConfigWarning, Origin, RawOption};

/// When an entry runs: uWSGI's five fields, as given (negative = "every N", -1 = any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronSchedule {
    pub minute: i32,
    pub hour: i32,
    pub day: i32,
    pub month: i32,
    pub week: i32,
}

impl CronSchedule {
    /// Every minute (cron2's defaults).
    pub const EVERY_MINUTE: CronSchedule = CronSchedule { minute: -1, hour: -1, day: -1, month: -1, week: -1 };
}

/// How long a run of an entry may last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronHarakiri {
    /// `cron-harakiri` applies (no limit without it): `cron`, `unique-cron`, `cron2` without `harakiri`.
    Default,
    /// `cron2 harakiri=N`, N > 0: killed after N seconds, whatever `cron-harakiri` says.
    Seconds(u64),
    /// `cron2 harakiri=0` (or negative): never killed.
    Never,
}

/// One cron entry (uWSGI's `struct uwsgi_cron`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSpec {
    pub schedule: CronSchedule,
    /// Given to `/bin/sh -c`.
    pub command: String,
    /// Skip a run while the previous one is still running (`unique-cron`, `cron2 unique=1`).
    pub unique: bool,
    pub harakiri: CronHarakiri,
    pub origin: Origin,
    /// The option's name (`cron`, `unique-cron`, `cron2`).
    pub option: String,
}

/// Which spelling of the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CronKind {
    /// `cron = M H D MON W COMMAND`.
    Cron,
    /// `unique-cron = M H D MON W COMMAND`.
    Unique,
    /// `cron2 = key=value,... COMMAND`.
    KeyValue,
}

/// Parses one `cron`, `unique-cron` or `cron2` option.
pub fn cron(kind: CronKind, option: &RawOption, warnings: &mut Vec<ConfigWarning>) -> Result<CronSpec, ConfigError> {
    let value = values::non_empty(option)?;
    let mut spec = CronSpec {
        schedule: CronSchedule::EVERY_MINUTE,
        command: String::new(),
        unique: kind == CronKind::Unique,
        harakiri: CronHarakiri::Default,
        origin: option.origin.clone(),
        option: option.key.clone(),
    };
    match kind {
        CronKind::Cron | CronKind::Unique => {
            let (fields, command) = five_fields(&value).ok_or_else(|| {
                values::invalid(
                    option,
                    "expected MINUTE HOUR DAY MONTH WEEKDAY COMMAND, five whole numbers (-1 = any, -N = every N) \
                     then the command",
                )
            })?;
            let [minute, hour, day, month, week] = fields;
            spec.schedule = CronSchedule { minute, hour, day, month, week };
            spec.command = command.to_owned();
        }
        CronKind::KeyValue => key_values(&mut spec, option, &value)?,
    }
    if spec.command.trim().is_empty() {
        return Err(values::invalid(option, "the cron entry has no command"));
    }
    warn_never_matching(&spec.schedule, option, warnings);
    Ok(spec)
}

/// `cron-harakiri = N` (seconds; 0 = off).
pub fn harakiri(option: &RawOption, warnings: &mut Vec<ConfigWarning>) -> Result<Option<u64>, ConfigError> {
    values::number_or_off(option, warnings)
}

/// The five leading whole numbers and the rest (the command), as uWSGI's `sscanf("%d %d %d %d %d %n")` but
/// with each number a whole word.
fn five_fields(value: &str) -> Option<([i32; 5], &str)> {
    let mut rest = value.trim_start();
    let mut fields = [0i32; 5];
    for field in &mut fields {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        *field = rest[..end].parse().ok()?;
        rest = rest[end..].trim_start();
    }
    Some((fields, rest.trim_end()))
}

/// `cron2`: `key=value,... COMMAND`. As uWSGI: when the text before the first space has an `=`, it is the
/// key list and the command follows; otherwise the whole value is the command, run every minute.
fn key_values(spec: &mut CronSpec, option: &RawOption, value: &str) -> Result<(), ConfigError> {
    let (keys, command) = match value.split_once(' ') {
        Some((keys, command)) if keys.contains('=') => (keys, command.trim()),
        Some(_) => ("", value),
        None if value.contains('=') => {
            return Err(values::invalid(option, "cron2 needs a command after its keys (key=value,... COMMAND)"))
        }
        None => ("", value),
    };
    spec.command = command.to_owned();
    for item in keys.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        let Some((key, text)) = item.split_once('=') else {
            return Err(values::invalid(
                option,
                format!("'{item}' is not key=value (uWSGI would silently ignore it; write {item}=N)"),
            ));
        };
        let number = || -> Result<i32, ConfigError> {
            text.trim()
                .parse()
                .map_err(|_| values::invalid(option, format!("cron2 '{key}' needs a whole number, not '{text}'")))
        };
        let schedule = &mut spec.schedule;
        match key.trim() {
            "minute" => schedule.minute = number()?,
            "hour" => schedule.hour = number()?,
            "day" => schedule.day = number()?,
            "month" => schedule.month = number()?,
            "week" => schedule.week = number()?,
            "unique" => spec.unique = number()? != 0,
            "harakiri" => {
                let seconds = number()?;
                spec.harakiri =
                    if seconds > 0 { CronHarakiri::Seconds(seconds.unsigned_abs().into()) } else { CronHarakiri::Never }
            }
            "legion" => return Err(values::invalid(option, LEGION)),
            other => {
                return Err(values::invalid(
                    option,
                    format!("unknown cron2 key '{other}' (known: minute, hour, day, month, week, unique, harakiri)"),
                ))
            }
        }
    }
    Ok(())
}

/// Why legion crons are refused.
pub const LEGION: &str = "liege has no legion subsystem (uWSGI's clustering, which runs a legion cron on the \
                          lord only): run the cron in one vassal only";

/// A field that can never match makes the entry never run: uWSGI accepts it silently, liege warns.
fn warn_never_matching(schedule: &CronSchedule, option: &RawOption, warnings: &mut Vec<ConfigWarning>) {
    let fields = [
        ("minute", schedule.minute, 0, 59),
        ("hour", schedule.hour, 0, 23),
        ("day", schedule.day, 1, 31),
        ("month", schedule.month, 1, 12),
        ("weekday", schedule.week, 0, 7),
    ];
    for (name, value, low, high) in fields {
        if value >= 0 && !(low..=high).contains(&value) {
            warnings.push(ConfigWarning::new(
                &option.origin,
                format!("cron {name} {value} is outside {low}-{high}: this entry never runs (as in uWSGI)"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(key: &str, value: &str) -> RawOption {
        RawOption { key: key.into(), value: value.into(), origin: Origin::CommandLine { index: 0 } }
    }

    fn parse(kind: CronKind, value: &str) -> Result<CronSpec, ConfigError> {
        cron(kind, &raw("cron", value), &mut Vec::new())
    }

    #[test]
    fn cron_lines_read_five_numbers_then_the_command() {
        let spec = parse(CronKind::Unique, "15 0 -1 -1 -1 { touch /run/uwsgi-logrotate  }").unwrap();
        assert_eq!(spec.schedule, CronSchedule { minute: 15, hour: 0, day: -1, month: -1, week: -1 });
        assert_eq!(spec.command, "{ touch /run/uwsgi-logrotate  }");
        assert!(spec.unique);
        assert_eq!(spec.harakiri, CronHarakiri::Default);
        let spec = parse(CronKind::Cron, "  -15   -1 -1 -1 -1\t./manage.py runjobs quarter_hourly").unwrap();
        assert_eq!(spec.schedule.minute, -15);
        assert_eq!(spec.command, "./manage.py runjobs quarter_hourly");
        assert!(!spec.unique);
        for bad in
            ["*/5 * * * * ls", "5 0 -1 -1 ls", "5x 0 -1 -1 -1 ls", "5-3 0 -1 -1 ls", "0 0 -1 -1 -1", "0 0 -1 -1 -1  "]
        {
            assert!(parse(CronKind::Cron, bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn cron2_keys_and_defaults() {
        let spec = parse(CronKind::KeyValue, "minute=-5,hour=3,unique=1,harakiri=30 /usr/bin/backup --all").unwrap();
        assert_eq!(spec.schedule, CronSchedule { minute: -5, hour: 3, day: -1, month: -1, week: -1 });
        assert_eq!(spec.command, "/usr/bin/backup --all");
        assert!(spec.unique);
        assert_eq!(spec.harakiri, CronHarakiri::Seconds(30));
        let spec = parse(CronKind::KeyValue, "day=1,month=1,week=0,unique=0,harakiri=0 echo x").unwrap();
        assert_eq!((spec.schedule.day, spec.schedule.month, spec.schedule.week), (1, 1, 0));
        assert!(!spec.unique);
        assert_eq!(spec.harakiri, CronHarakiri::Never);
        assert_eq!(parse(CronKind::KeyValue, "harakiri=-3 x").unwrap().harakiri, CronHarakiri::Never);
        // No key list: the whole value is the command, every minute.
        let spec = parse(CronKind::KeyValue, "echo a=b").unwrap();
        assert_eq!((spec.schedule, spec.command.as_str()), (CronSchedule::EVERY_MINUTE, "echo a=b"));
        assert_eq!(parse(CronKind::KeyValue, "uptime").unwrap().command, "uptime");
        for bad in ["minute=5", "minute=5 ", "minute=x ls", "unique,minute=1 ls", "color=red ls", "legion=mylegion ls"]
        {
            assert!(parse(CronKind::KeyValue, bad).is_err(), "{bad} should be refused");
        }
        // `minute` alone before a space has no '=': it is part of the command, as in uWSGI.
        assert_eq!(parse(CronKind::KeyValue, "minute ls").unwrap().command, "minute ls");
    }

    #[test]
    fn never_matching_fields_are_warned_about() {
        let mut warnings = Vec::new();
        cron(CronKind::Cron, &raw("cron", "60 0 32 13 8 ls"), &mut warnings).unwrap();
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        warnings.clear();
        cron(CronKind::Cron, &raw("cron", "59 23 31 12 7 ls"), &mut warnings).unwrap();
        cron(CronKind::Cron, &raw("cron", "-90 -1 -1 -1 -1 ls"), &mut warnings).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
