//! uWSGI's ini dialect, read line by line.
//!
//! This is our own reader because general ini crates disagree with uWSGI on exactly the lines real configs
//! contain: rust-ini merges a bare `master` line into the next key without an error and splits keys at `:`.
//! uWSGI's rules (core/ini.c), which this module reproduces:
//!
//! - `[name]` starts a section; only the requested section is read (`uwsgi` unless `file.ini:section`);
//!   lines before the first header or in other sections are ignored, so one file can hold several configs.
//! - A comment is a whole line starting with `;` or `#` (after optional whitespace). A `;` or `#` inside a
//!   value is part of the value (`logformat = a;b`, `env = COLOR=#fff`), unlike in many ini dialects.
//! - `key = value` splits at the first `=`; key and value are trimmed; quotes are kept as written.
//! - A bare `key` line means `true` (so `master` alone switches the master on).
//! - Repeated keys are all kept, in order: list options collect, scalars take the last.
//! - CRLF line ends work, and a UTF-8 byte-order mark at the start is skipped (editors on Windows add both).
//!
//! Expansion (`%n`, `$(ENV)`, `%(name)`) and includes (`ini = other.ini`) are not done here: they need to
//! know where the file is and what was set before, which the crate's collector tracks.

use std::path::{Path, PathBuf};

/// The section read when a spec names none, as in uWSGI.
pub const DEFAULT_SECTION: &str = "uwsgi";

/// One `key = value` (or bare `key`) line of the requested section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniEntry {
    /// Trimmed, as written (not yet resolved to a canonical option name).
    pub key: String,
    /// Trimmed, not expanded; `None` for a bare `key` line.
    pub value: Option<String>,
    /// 1-based line number in the file, for error messages.
    pub line: usize,
}

/// What a file contributed from the requested section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniSection {
    pub entries: Vec<IniEntry>,
    /// Whether a `[section]` header for the requested section exists at all (it may be empty), so a
    /// misspelled section name is reported instead of silently reading nothing.
    pub found: bool,
}

/// A line the reader cannot make sense of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniSyntaxError {
    pub line: usize,
    pub problem: String,
}

/// Splits `file.ini:section` into the file and the section (default `uwsgi`).
///
/// Like uWSGI, the section follows the last `:`; unlike uWSGI, a `:` followed by a path separator is part of
/// the file name (`/srv/a:b/app.ini` has no section). A spec that is only `:section` means "another section
/// of the current file", which the caller resolves (the file part comes back empty).
pub fn split_spec(spec: &str) -> (&str, &str) {
    match spec.rfind(':') {
        Some(colon) if !spec[colon + 1..].contains('/') => {
            let (file, section) = (&spec[..colon], &spec[colon + 1..]);
            (file, if section.is_empty() { DEFAULT_SECTION } else { section })
        }
        _ => (spec, DEFAULT_SECTION),
    }
}

/// True when a command-line argument names an ini file (`app.ini` or `app.ini:section`), which uWSGI
/// accepts without `--ini`.
pub fn is_ini_spec(arg: &str) -> bool {
    let (file, _section) = split_spec(arg);
    Path::new(file).extension().is_some_and(|ext| ext.eq_ignore_ascii_case("ini"))
}

/// Reads the entries of `section` from the text of an ini file.
pub fn parse(text: &str, section: &str) -> Result<IniSection, IniSyntaxError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut current_section: Option<&str> = None;
    let mut result = IniSection { entries: Vec::new(), found: false };

    for (index, raw_line) in text.split('\n').enumerate() {
        let line_number = index + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let Some(name) = header.strip_suffix(']') else {
                return Err(IniSyntaxError {
                    line: line_number,
                    problem: format!("section header '{line}' has no closing ']'"),
                });
            };
            let name = name.trim();
            current_section = Some(name);
            if name == section {
                result.found = true;
            }
            continue;
        }
        if current_section != Some(section) {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value.trim().to_owned())),
            None => (line, None),
        };
        if key.is_empty() {
            return Err(IniSyntaxError {
                line: line_number,
                problem: format!("line '{line}' has a value but no option name before '='"),
            });
        }
        result.entries.push(IniEntry { key: key.to_owned(), value, line: line_number });
    }
    Ok(result)
}

/// Decodes a config file, reporting the line of the first invalid byte if it is not UTF-8.
pub fn decode(bytes: Vec<u8>) -> Result<String, IniSyntaxError> {
    String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&byte| byte == b'\n').count() + 1;
        IniSyntaxError { line, problem: "the file is not valid UTF-8".to_owned() }
    })
}

/// Where `ini = name` inside `including_file` points.
///
/// uWSGI opens the name relative to the current directory. Vassal files are usually written to include a
/// sibling (`ini = common.ini`) and started from elsewhere, so liege keeps uWSGI's behaviour when that file
/// exists and otherwise looks next to the including file.
pub fn resolve_include(name: &str, including_file: Option<&Path>, cwd: &Path) -> PathBuf {
    let requested = Path::new(name);
    if requested.is_absolute() {
        return requested.to_path_buf();
    }
    let in_cwd = cwd.join(requested);
    if in_cwd.exists() {
        return in_cwd;
    }
    match including_file.and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(requested),
        _ => requested.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str, section: &str) -> Vec<(String, Option<String>, usize)> {
        parse(text, section).unwrap().entries.into_iter().map(|entry| (entry.key, entry.value, entry.line)).collect()
    }

    fn pair(key: &str, value: Option<&str>, line: usize) -> (String, Option<String>, usize) {
        (key.to_owned(), value.map(str::to_owned), line)
    }

    #[test]
    fn reads_default_section_and_ignores_others() {
        let text = "top = ignored\n[other]\nprocesses = 9\n[uwsgi]\nprocesses = 4\n[more]\nthreads = 2\n";
        assert_eq!(entries(text, "uwsgi"), vec![pair("processes", Some("4"), 5)]);
        assert_eq!(entries(text, "other"), vec![pair("processes", Some("9"), 3)]);
    }

    #[test]
    fn bare_key_is_kept_separate_from_the_next_line() {
        let text = "[uwsgi]\nmaster\nprocesses = 4\n";
        assert_eq!(entries(text, "uwsgi"), vec![pair("master", None, 2), pair("processes", Some("4"), 3)]);
    }

    #[test]
    fn comments_are_whole_lines_only() {
        let text = "[uwsgi]\n; a comment\n  # another\nlogformat = a;b #c\nenv = COLOR=#fff\n";
        assert_eq!(
            entries(text, "uwsgi"),
            vec![pair("logformat", Some("a;b #c"), 4), pair("env", Some("COLOR=#fff"), 5)]
        );
    }

    #[test]
    fn splits_at_first_equals_and_trims_but_keeps_quotes() {
        let text = "[uwsgi]\n  env   =   A=B=C  \ncallable = \"app\"\nchdir=\n";
        assert_eq!(
            entries(text, "uwsgi"),
            vec![pair("env", Some("A=B=C"), 2), pair("callable", Some("\"app\""), 3), pair("chdir", Some(""), 4)]
        );
    }

    #[test]
    fn empty_lines_skipped_and_repeats_kept_in_order() {
        let text = "[uwsgi]\n\nsocket = a\n\n\nsocket = b\nsocket = c\n";
        assert_eq!(
            entries(text, "uwsgi"),
            vec![pair("socket", Some("a"), 3), pair("socket", Some("b"), 6), pair("socket", Some("c"), 7)]
        );
    }

    #[test]
    fn crlf_and_bom() {
        let text = "\u{feff}[uwsgi]\r\nmaster\r\nprocesses = 4\r\n";
        assert_eq!(entries(text, "uwsgi"), vec![pair("master", None, 2), pair("processes", Some("4"), 3)]);
    }

    #[test]
    fn section_found_even_when_empty() {
        assert!(parse("[uwsgi]\n", "uwsgi").unwrap().found);
        assert!(!parse("[uwsgi]\n", "prod").unwrap().found);
        assert!(parse("[ prod ]\nx = 1\n", "prod").unwrap().found);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let error = parse("[uwsgi]\n[broken\n", "uwsgi").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(error.problem.contains("no closing ']'"), "{}", error.problem);
        let error = parse("[uwsgi]\n\n= 4\n", "uwsgi").unwrap_err();
        assert_eq!(error.line, 3);
        assert!(error.problem.contains("no option name"), "{}", error.problem);
    }

    #[test]
    fn non_utf8_reports_its_line() {
        let error = decode(b"[uwsgi]\nchdir = /srv/\xff\n".to_vec()).unwrap_err();
        assert_eq!(error.line, 2);
    }

    #[test]
    fn split_spec_rules() {
        assert_eq!(split_spec("app.ini"), ("app.ini", "uwsgi"));
        assert_eq!(split_spec("app.ini:prod"), ("app.ini", "prod"));
        assert_eq!(split_spec("app.ini:"), ("app.ini", "uwsgi"));
        assert_eq!(split_spec(":prod"), ("", "prod"));
        assert_eq!(split_spec("/srv/a:b/app.ini"), ("/srv/a:b/app.ini", "uwsgi"));
        assert!(is_ini_spec("app.ini"));
        assert!(is_ini_spec("conf/app.INI:prod"));
        assert!(!is_ini_spec("app.py"));
        assert!(!is_ini_spec("ini"));
    }

    #[test]
    fn include_resolution_prefers_cwd_then_including_dir() {
        let cwd = tempfile::tempdir().unwrap();
        let conf = tempfile::tempdir().unwrap();
        std::fs::write(cwd.path().join("in_cwd.ini"), "").unwrap();
        let including = conf.path().join("main.ini");
        assert_eq!(resolve_include("in_cwd.ini", Some(&including), cwd.path()), cwd.path().join("in_cwd.ini"));
        assert_eq!(resolve_include("sibling.ini", Some(&including), cwd.path()), conf.path().join("sibling.ini"));
        assert_eq!(resolve_include("/abs/x.ini", Some(&including), cwd.path()), PathBuf::from("/abs/x.ini"));
        assert_eq!(resolve_include("x.ini", None, cwd.path()), PathBuf::from("x.ini"));
    }
}
