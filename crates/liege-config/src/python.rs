//! Options of uWSGI's Python plugin that are not about finding the app: `py-autoreload` (and its ignore
//! list), the PasteDeploy loader's companions (`paste-logger`, `paste-name`), `reload-on-exception` and its
//! filters, and `py-tracebacker`.
//!
//! uWSGI's meanings, from its source (plugins/python/python_plugin.c, pyloader.c `uwsgi_paste_loader`,
//! tracebacker.c, core/exceptions.c `uwsgi_manage_exception`):
//!
//! - `py-autoreload = N`: a thread in every worker looks at the `__file__` of each module in `sys.modules`
//!   every N seconds; the first time it sees a file it records its modification time, and when a recorded
//!   time changes it logs `[uwsgi-python-reloader] module/file X has been modified` and asks the master for a
//!   graceful reload (SIGHUP). `py-auto-reload-ignore = MODULE` leaves a module (by its `sys.modules` name)
//!   out of the scan. 0 is off.
//! - `paste-logger`: before `paste.deploy.loadapp`, `logging.config.fileConfig` of the paste config file (the
//!   `config:` URI without its scheme). A flag, read as uWSGI reads flags (`paste-logger = %p` in real files
//!   means "on"). `paste-name = NAME`: `loadapp(URI, NAME)`, the section to load.
//! - `reload-on-exception`: a worker whose app raised an unhandled exception exits and is respawned;
//!   `reload-on-exception-type/-value/-repr` do it only for matching exceptions (see [`ReloadOnException`]).
//! - `py-tracebacker = PREFIX`: each worker listens on the unix socket `PREFIX<worker id>` and writes the
//!   Python stack of each of its threads to whoever connects.

use std::time::Duration;

use crate::{ConfigError, ConfigWarning, RawOption};

/// The Python plugin's options as given (see the module docs for what each does).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PythonFeatures {
    /// `py-autoreload`: how often each worker scans the modules' files; `None` = off.
    pub autoreload: Option<Duration>,
    /// `py-auto-reload-ignore`: module names (as keys of `sys.modules`) the scan skips.
    pub autoreload_ignore: Vec<String>,
    /// `paste-logger` (or `ini-paste-logged`): configure `logging` from the paste config file first.
    pub paste_logger: bool,
    /// `paste-name`: the name passed to `loadapp` (PasteDeploy's default is `main`).
    pub paste_name: Option<String>,
    /// `reload-on-exception` and its filters.
    pub reload_on_exception: ReloadOnException,
    /// `py-tracebacker`: the socket path prefix; each worker appends its id.
    pub tracebacker: Option<String>,
}

/// Which unhandled app exceptions recycle the worker that raised them.
///
/// uWSGI describes the filters as "a specific exception type / value / type+value"; its Python plugin names
/// an exception's type `module.Name` (`builtins.MemoryError`, `myapp.errors.Fatal`), its value `str(exc)`
/// and its repr `module.Name: value`, and compares whole strings. (uWSGI's C code compares all three
/// filters against the value by mistake, which is why `reload-on-exception-type = MemoryError` never fires
/// there; liege does what the options say.) A built-in exception also matches by its bare name, as uWSGI
/// on Python 2 named it (`MemoryError`, `MemoryError: ...`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReloadOnException {
    /// `reload-on-exception`: every exception.
    pub any: bool,
    pub types: Vec<String>,
    pub values: Vec<String>,
    pub reprs: Vec<String>,
}

impl ReloadOnException {
    /// Any of the options is set (otherwise exceptions are not even looked at).
    pub fn is_set(&self) -> bool {
        self.any || !self.types.is_empty() || !self.values.is_empty() || !self.reprs.is_empty()
    }

    /// Whether an exception of class `class` (`module.Name`) whose `str()` is `value` (`None` when `str()`
    /// itself failed) recycles the worker.
    pub fn matches(&self, class: &str, value: Option<&str>) -> bool {
        if self.any {
            return true;
        }
        let bare = class.strip_prefix("builtins.");
        let is_class = |name: &str| name == class || bare == Some(name);
        if self.types.iter().any(|name| is_class(name)) {
            return true;
        }
        let Some(value) = value else { return false };
        if self.values.iter().any(|expected| expected == value) {
            return true;
        }
        self.reprs
            .iter()
            .any(|repr| repr.strip_suffix(value).and_then(|head| head.strip_suffix(": ")).is_some_and(&is_class))
    }
}

/// Cross-option checks once everything is read: `paste-logger` needs `config:` URIs (it reads the logging
/// sections of that file), and options that only modify another one say so when that one is missing.
pub fn check(
    features: &PythonFeatures,
    paste_uris: &[&str],
    origins: &PythonOrigins,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<(), ConfigError> {
    if let Some(option) = origins.paste_logger.as_ref().filter(|_| features.paste_logger) {
        if paste_uris.is_empty() {
            warnings.push(ConfigWarning::new(
                &option.origin,
                format!("'{}' has no effect without paste (or ini-paste, or a mounted .ini app)", option.key),
            ));
        }
        if let Some(uri) = paste_uris.iter().find(|uri| !uri.starts_with("config:")) {
            return Err(crate::values::invalid(
                option,
                format!(
                    "paste-logger reads the logging sections of the paste config file, so the paste app must be \
                     given as config:PATH (got '{uri}')"
                ),
            ));
        }
    }
    if let Some(option) = origins.paste_name.as_ref().filter(|_| paste_uris.is_empty()) {
        warnings.push(ConfigWarning::new(
            &option.origin,
            "'paste-name' has no effect without paste (or ini-paste, or a mounted .ini app)",
        ));
    }
    if let Some(option) = origins.autoreload_ignore.as_ref().filter(|_| features.autoreload.is_none()) {
        warnings
            .push(ConfigWarning::new(&option.origin, "'py-auto-reload-ignore' has no effect without py-autoreload"));
    }
    Ok(())
}

/// Where the options [`check`] talks about were given (the last one of each).
#[derive(Debug, Default)]
pub struct PythonOrigins {
    pub paste_logger: Option<RawOption>,
    pub paste_name: Option<RawOption>,
    pub autoreload_ignore: Option<RawOption>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Origin;

    fn filters(types: &[&str], values: &[&str], reprs: &[&str]) -> ReloadOnException {
        let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        ReloadOnException { any: false, types: owned(types), values: owned(values), reprs: owned(reprs) }
    }

    #[test]
    fn nothing_set_matches_nothing_and_the_flag_matches_everything() {
        let none = ReloadOnException::default();
        assert!(!none.is_set());
        assert!(!none.matches("builtins.ValueError", Some("x")));
        let any = ReloadOnException { any: true, ..Default::default() };
        assert!(any.is_set());
        assert!(any.matches("myapp.Boom", None));
    }

    #[test]
    fn types_match_the_whole_class_name_or_a_builtin_by_its_bare_name() {
        let by_type = filters(&["MemoryError", "myapp.errors.Fatal"], &[], &[]);
        assert!(by_type.is_set());
        assert!(by_type.matches("builtins.MemoryError", Some("")));
        assert!(by_type.matches("myapp.errors.Fatal", Some("disk gone")));
        assert!(!by_type.matches("builtins.ValueError", Some("MemoryError")), "the value is not the type");
        assert!(!by_type.matches("other.MemoryError", None), "bare names only stand for builtins");
        assert!(!by_type.matches("myapp.errors.FatalError", None), "whole names, not prefixes");
        assert!(filters(&["builtins.KeyError"], &[], &[]).matches("builtins.KeyError", None));
    }

    #[test]
    fn values_match_str_of_the_exception_exactly() {
        let by_value = filters(&[], &["out of cheese"], &[]);
        assert!(by_value.matches("builtins.RuntimeError", Some("out of cheese")));
        assert!(!by_value.matches("builtins.RuntimeError", Some("out of cheese!")));
        assert!(!by_value.matches("builtins.RuntimeError", None), "str() failed: no value to compare");
    }

    #[test]
    fn reprs_match_class_colon_value() {
        let by_repr = filters(&[], &[], &["builtins.ValueError: bad", "KeyError: 'k'", "a.B: x: y"]);
        assert!(by_repr.matches("builtins.ValueError", Some("bad")));
        assert!(by_repr.matches("builtins.KeyError", Some("'k'")));
        assert!(by_repr.matches("a.B", Some("x: y")), "the value may contain ': '");
        assert!(!by_repr.matches("builtins.ValueError", Some("worse")));
        assert!(!by_repr.matches("builtins.TypeError", Some("bad")));
    }

    fn raw(key: &str, value: &str) -> RawOption {
        RawOption { key: key.into(), value: value.into(), origin: Origin::File { path: "a.ini".into(), line: 3 } }
    }

    #[test]
    fn check_wants_config_uris_for_paste_logger_and_warns_about_lone_modifiers() {
        let on = PythonFeatures { paste_logger: true, ..Default::default() };
        let origins = PythonOrigins { paste_logger: Some(raw("paste-logger", "true")), ..Default::default() };
        let mut warnings = Vec::new();
        assert!(check(&on, &["config:/a.ini"], &origins, &mut warnings).is_ok());
        assert!(warnings.is_empty());
        let err = check(&on, &["egg:shavar"], &origins, &mut warnings).unwrap_err().to_string();
        assert!(err.contains("config:PATH"), "{err}");
        assert!(check(&on, &[], &origins, &mut warnings).is_ok());
        assert!(warnings[0].message.contains("no effect without paste"), "{}", warnings[0]);

        let origins = PythonOrigins {
            paste_name: Some(raw("paste-name", "api")),
            autoreload_ignore: Some(raw("py-auto-reload-ignore", "x")),
            ..Default::default()
        };
        let mut warnings = Vec::new();
        check(&PythonFeatures::default(), &[], &origins, &mut warnings).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let mut warnings = Vec::new();
        let watching = PythonFeatures { autoreload: Some(Duration::from_secs(1)), ..Default::default() };
        check(&watching, &["config:/a.ini"], &origins, &mut warnings).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
