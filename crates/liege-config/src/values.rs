//! Typed readings of option values, each failing with a message that names the option, the value and where
//! it was given. Shared by the vassal and emperor configurations.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::vassal::SocketAddress;
use crate::{ConfigError, ConfigWarning, RawOption};

/// The error for `option` with a reason.
pub fn invalid(option: &RawOption, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        origin: option.origin.clone(),
        name: option.key.clone(),
        value: option.value.clone(),
        reason: reason.into(),
    }
}

/// uWSGI's flag rule (`uwsgi_opt_true`): any value is true except `false`, `off`, `no` (any case) and `0`; an
/// empty value was already turned into `true` when read, as uWSGI does for a bare flag.
///
/// So `enable-threads = 4` is true, as in uWSGI, and so is `vacuum = maybe`. A value that is none of the usual
/// words (true/yes/on/1 or false/off/no/0) gets a warning saying how it was read, since it is often a typo or
/// an inline comment (`die-on-term = false ; x` is *true* for uWSGI, which keeps the comment in the value).
pub fn boolean(option: &RawOption, warnings: &mut Vec<ConfigWarning>) -> Result<bool, ConfigError> {
    let value = option.value.as_str();
    let lower = value.to_ascii_lowercase();
    match lower.as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => {
            warnings.push(ConfigWarning::new(
                &option.origin,
                format!(
                    "'{}' for flag '{}' is read as true, as uWSGI does (only false, off, no and 0 mean false)",
                    value, option.key
                ),
            ));
            Ok(true)
        }
    }
}

/// A whole number ≥ 0 read as uWSGI reads numbers (`strtol`): leading blanks skipped, then the leading
/// digits; anything after them is dropped with a warning (uWSGI prints "non-numeric value ... using N"), so
/// `harakiri = 60 # comment` is 60 and `cheaper = true` is 0. A negative number is an error, as in uWSGI's
/// `uwsgi_opt_set_int`; so is a number too large for the setting (uWSGI would wrap it silently).
pub fn whole_number<T: FromStr>(option: &RawOption, warnings: &mut Vec<ConfigWarning>) -> Result<T, ConfigError> {
    let text = option.value.trim_start();
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let digits_end = unsigned.bytes().position(|byte| !byte.is_ascii_digit()).unwrap_or(unsigned.len());
    let digits = &unsigned[..digits_end];
    if negative && digits.bytes().any(|byte| byte != b'0') {
        return Err(invalid(option, "must not be negative"));
    }
    let digits = if digits.is_empty() { "0" } else { digits };
    let number = digits.parse().map_err(|_| invalid(option, "number too large"))?;
    let is_plain = !text.is_empty() && digits_end == unsigned.len() && text.len() == option.value.len() && !negative;
    let is_plain = is_plain && !text.starts_with('+');
    if !is_plain {
        warnings.push(ConfigWarning::new(
            &option.origin,
            format!(
                "'{}' for '{}' is not a plain number; read as {digits} (its leading digits), as uWSGI does",
                option.value, option.key
            ),
        ));
    }
    Ok(number)
}

/// A whole number ≥ 1 (counts where 0 makes no sense: processes, threads, listen backlog...).
pub fn positive<T: FromStr + PartialEq + Default>(
    option: &RawOption,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<T, ConfigError> {
    let number: T = whole_number(option, warnings)?;
    if number == T::default() {
        return Err(invalid(option, "must be at least 1"));
    }
    Ok(number)
}

pub fn seconds(option: &RawOption, warnings: &mut Vec<ConfigWarning>) -> Result<Duration, ConfigError> {
    whole_number::<u64>(option, warnings).map(Duration::from_secs)
}

/// Seconds where 0 is refused.
pub fn positive_seconds(option: &RawOption, warnings: &mut Vec<ConfigWarning>) -> Result<Duration, ConfigError> {
    positive::<u64>(option, warnings).map(Duration::from_secs)
}

/// Seconds where 0 means "off", as uWSGI's `harakiri = 0`.
pub fn seconds_or_off(option: &RawOption, warnings: &mut Vec<ConfigWarning>) -> Result<Option<Duration>, ConfigError> {
    Ok(Some(seconds(option, warnings)?).filter(|duration| !duration.is_zero()))
}

/// Milliseconds where 0 means "off".
pub fn milliseconds_or_off(
    option: &RawOption,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Option<Duration>, ConfigError> {
    let millis: u64 = whole_number(option, warnings)?;
    Ok((millis > 0).then(|| Duration::from_millis(millis)))
}

/// A number where 0 means "off" (megabyte limits).
pub fn number_or_off(option: &RawOption, warnings: &mut Vec<ConfigWarning>) -> Result<Option<u64>, ConfigError> {
    Ok(Some(whole_number::<u64>(option, warnings)?).filter(|&number| number > 0))
}

/// An octal file mode like `666` or `0660` (uWSGI's chmod-socket).
pub fn octal_mode(option: &RawOption) -> Result<u32, ConfigError> {
    let text = option.value.as_str();
    let is_octal = !text.is_empty() && text.len() <= 5 && text.bytes().all(|byte| (b'0'..=b'7').contains(&byte));
    let mode = if is_octal { u32::from_str_radix(text, 8).ok() } else { None };
    match mode {
        Some(mode) if mode <= 0o7777 => Ok(mode),
        _ => Err(invalid(option, "expected an octal file mode such as 666 or 0660")),
    }
}

/// A path (any non-empty text; whether it exists is the runtime's business, since it may be created later
/// or be relative to `chdir`).
pub fn path(option: &RawOption) -> Result<PathBuf, ConfigError> {
    non_empty(option).map(PathBuf::from)
}

pub fn non_empty(option: &RawOption) -> Result<String, ConfigError> {
    if option.value.trim().is_empty() {
        return Err(invalid(option, "empty value (after expanding variables)"));
    }
    Ok(option.value.clone())
}

/// `KEY=VALUE` (env, vassal-set); the key must not be empty.
pub fn key_value(option: &RawOption) -> Result<(String, String), ConfigError> {
    match option.value.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.to_owned())),
        Some(_) => Err(invalid(option, "the name before '=' is empty")),
        None => Err(invalid(option, "expected KEY=VALUE")),
    }
}

/// A listening address in uWSGI's syntax:
///
/// - `:9099` → every interface (`0.0.0.0:9099`); `127.0.0.1:9000`, `localhost:9000`, `[::1]:9000`;
/// - `fd://3` → an inherited, already listening socket;
/// - anything containing `/`, or without a `:port` (`app.sock`, `@abstract`) → a unix socket path.
pub fn socket_address(option: &RawOption) -> Result<SocketAddress, ConfigError> {
    let text = option.value.as_str();
    if text.trim().is_empty() {
        return Err(invalid(option, "empty address"));
    }
    if let Some(fd) = text.strip_prefix("fd://") {
        return match fd.parse::<i32>() {
            Ok(fd) if fd >= 0 => Ok(SocketAddress::Fd(fd)),
            _ => Err(invalid(option, "fd:// must be followed by a file descriptor number")),
        };
    }
    if text.contains('/') || !text.contains(':') {
        if text.starts_with('=') {
            return Err(invalid(option, "uWSGI's shared-socket references (=N) are not supported"));
        }
        return Ok(SocketAddress::Unix(PathBuf::from(text)));
    }
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let Some((address, port)) = bracketed.split_once("]:") else {
            return Err(invalid(option, "expected [IPv6 address]:port"));
        };
        if address.is_empty() || address.contains(['[', ']']) {
            return Err(invalid(option, "expected [IPv6 address]:port"));
        }
        (format!("[{address}]"), port)
    } else {
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(invalid(option, "expected host:port"));
        };
        if host.contains(':') {
            return Err(invalid(option, "an IPv6 address needs brackets: [::1]:9000"));
        }
        (if host.is_empty() { "0.0.0.0".to_owned() } else { host.to_owned() }, port)
    };
    if host.chars().any(char::is_whitespace) {
        return Err(invalid(option, "the host contains whitespace"));
    }
    let is_digits = !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit());
    let Some(port) = port.parse::<u16>().ok().filter(|_| is_digits) else {
        return Err(invalid(option, "the port must be a number from 0 to 65535"));
    };
    Ok(SocketAddress::Tcp { host, port })
}

/// The address in `daemonize = HOST:PORT` or `logto = HOST:PORT`: uWSGI's `logto()` (core/logging.c) takes
/// any value with a colon for a UDP address and sends every log line there. A path never has one here
/// (`./a:b` or `/var/log/a:b` has a slash and stays a file). An empty host (`:8224`) is returned as given,
/// for the caller to refuse.
pub(crate) fn udp_log_address(option: &RawOption) -> Option<&str> {
    let text = option.value.trim();
    let (_, port) = text.rsplit_once(':')?;
    let is_address = !text.contains('/') && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    is_address.then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Origin;

    fn option(value: &str) -> RawOption {
        RawOption {
            key: "test".to_owned(),
            value: value.to_owned(),
            origin: Origin::File { path: PathBuf::from("a.ini"), line: 7 },
        }
    }

    fn reason(error: ConfigError) -> String {
        match error {
            ConfigError::InvalidValue { reason, .. } => reason,
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn booleans_follow_uwsgi_opt_true() {
        let mut warnings = Vec::new();
        for value in ["true", "1", "yes", "on", "TRUE", "On"] {
            assert!(boolean(&option(value), &mut warnings).unwrap(), "{value}");
        }
        for value in ["false", "0", "no", "off", "NO", "False"] {
            assert!(!boolean(&option(value), &mut warnings).unwrap(), "{value}");
        }
        assert!(warnings.is_empty());
        // Anything else is true, as in uWSGI, with a warning naming the place.
        for value in ["4", "maybe", "false ; comment"] {
            assert!(boolean(&option(value), &mut warnings).unwrap(), "{value}");
        }
        assert_eq!(warnings.len(), 3);
        assert!(warnings[0].to_string().starts_with("a.ini:7: warning: '4' for flag 'test' is read as true"));
    }

    #[test]
    fn numbers_by_leading_digits_as_strtol() {
        let mut warnings = Vec::new();
        assert_eq!(whole_number::<u32>(&option("42"), &mut warnings).unwrap(), 42);
        assert_eq!(whole_number::<u32>(&option("0"), &mut warnings).unwrap(), 0);
        assert!(warnings.is_empty());
        assert_eq!(whole_number::<u32>(&option("60 # kill after a minute"), &mut warnings).unwrap(), 60);
        assert_eq!(whole_number::<u32>(&option("5;"), &mut warnings).unwrap(), 5);
        assert_eq!(whole_number::<u32>(&option("true"), &mut warnings).unwrap(), 0);
        assert_eq!(whole_number::<u32>(&option("4.5"), &mut warnings).unwrap(), 4);
        assert_eq!(whole_number::<u32>(&option("+4"), &mut warnings).unwrap(), 4);
        assert_eq!(whole_number::<u32>(&option(" 7"), &mut warnings).unwrap(), 7);
        assert_eq!(warnings.len(), 6);
        assert!(warnings[0].to_string().contains("read as 60 (its leading digits)"), "{}", warnings[0]);
        assert_eq!(reason(whole_number::<u32>(&option("-1"), &mut warnings).unwrap_err()), "must not be negative");
        assert_eq!(reason(whole_number::<u32>(&option("99999999999"), &mut warnings).unwrap_err()), "number too large");
        assert_eq!(reason(positive::<u32>(&option("0"), &mut warnings).unwrap_err()), "must be at least 1");
        assert_eq!(positive::<u32>(&option("3"), &mut warnings).unwrap(), 3);
    }

    #[test]
    fn durations() {
        let w = &mut Vec::new();
        assert_eq!(seconds(&option("30"), w).unwrap(), Duration::from_secs(30));
        assert_eq!(seconds_or_off(&option("0"), w).unwrap(), None);
        assert_eq!(seconds_or_off(&option("5"), w).unwrap(), Some(Duration::from_secs(5)));
        assert_eq!(milliseconds_or_off(&option("250"), w).unwrap(), Some(Duration::from_millis(250)));
        assert_eq!(milliseconds_or_off(&option("0"), w).unwrap(), None);
        assert!(positive_seconds(&option("0"), w).is_err());
        assert!(w.is_empty());
    }

    #[test]
    fn octal_modes() {
        assert_eq!(octal_mode(&option("666")).unwrap(), 0o666);
        assert_eq!(octal_mode(&option("0660")).unwrap(), 0o660);
        assert_eq!(octal_mode(&option("4755")).unwrap(), 0o4755);
        for bad in ["999", "abc", "", "0o666", "77777", "-1"] {
            assert!(octal_mode(&option(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_values() {
        assert_eq!(key_value(&option("A=b=c")).unwrap(), ("A".to_owned(), "b=c".to_owned()));
        assert_eq!(key_value(&option("A=")).unwrap(), ("A".to_owned(), String::new()));
        assert_eq!(reason(key_value(&option("NOEQUALS")).unwrap_err()), "expected KEY=VALUE");
        assert_eq!(reason(key_value(&option("=x")).unwrap_err()), "the name before '=' is empty");
    }

    fn tcp(host: &str, port: u16) -> SocketAddress {
        SocketAddress::Tcp { host: host.to_owned(), port }
    }

    #[test]
    fn socket_addresses() {
        assert_eq!(socket_address(&option(":9099")).unwrap(), tcp("0.0.0.0", 9099));
        assert_eq!(socket_address(&option("127.0.0.1:9000")).unwrap(), tcp("127.0.0.1", 9000));
        assert_eq!(socket_address(&option("localhost:9000")).unwrap(), tcp("localhost", 9000));
        assert_eq!(socket_address(&option("[::1]:9000")).unwrap(), tcp("[::1]", 9000));
        assert_eq!(socket_address(&option(":0")).unwrap(), tcp("0.0.0.0", 0));
        assert_eq!(socket_address(&option("fd://3")).unwrap(), SocketAddress::Fd(3));
        assert_eq!(
            socket_address(&option("/tmp/app.sock")).unwrap(),
            SocketAddress::Unix(PathBuf::from("/tmp/app.sock"))
        );
        assert_eq!(socket_address(&option("app.sock")).unwrap(), SocketAddress::Unix(PathBuf::from("app.sock")));
        assert_eq!(socket_address(&option("@abstract")).unwrap(), SocketAddress::Unix(PathBuf::from("@abstract")));
        assert_eq!(
            socket_address(&option("./run/a:b.sock")).unwrap(),
            SocketAddress::Unix(PathBuf::from("./run/a:b.sock"))
        );
        for bad in [":99999", "host:abc", ":", "::1:9000", "[::1]9000", "fd://x", "fd://-1", "", "=0", "a b:80", ":+80"]
        {
            assert!(socket_address(&option(bad)).is_err(), "{bad} should be rejected");
        }
    }
}
