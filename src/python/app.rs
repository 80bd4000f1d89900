//! Finding and importing the WSGI callable (`wsgi-file`, `module`, `callable`).

use std::path::{Path, PathBuf};

use liege_config::{AppSource, AppSpec};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("wsgi-file '{0}' not found")]
    FileNotFound(PathBuf),
    #[error("cannot import {what}")]
    Import {
        what: String,
        /// The formatted Python traceback.
        traceback: String,
    },
    #[error("{what} has no callable '{callable}'{hint}")]
    NoCallable { what: String, callable: String, hint: String },
    #[error("no app configured: give wsgi-file, module, paste or mount")]
    NoApp,
    #[error("'{callable}' in {what} is not callable")]
    NotCallable { what: String, callable: String },
}

impl LoadError {
    pub fn traceback(&self) -> Option<&str> {
        match self {
            Self::Import { traceback, .. } => Some(traceback),
            _ => None,
        }
    }
}

/// Prepends the app's directories to `sys.path`: the working directory (as uWSGI does), the `pythonpath`
/// entries in order, and the directory of a `wsgi-file` so its sibling modules import as they would with
/// `python app.py`. `pythonpath` entries with glob characters are expanded.
pub fn prepare_sys_path(py: Python<'_>, pythonpath: &[PathBuf], app: Option<&AppSpec>) -> PyResult<()> {
    let sys_path = py.import("sys")?.getattr("path")?.cast_into::<PyList>()?;
    let mut front: Vec<String> = Vec::new();
    let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| ".".into());
    front.push(cwd.clone());
    for entry in pythonpath {
        let entry = absolute(entry).display().to_string();
        // uWSGI expands globs in `pythonpath` (`/usr/local/src/*`), adding every match in sorted order, as
        // glob(3) gives them; a pattern that matches nothing adds nothing.
        if entry.contains(['*', '?', '[']) {
            let matches: Vec<String> = py.import("glob")?.call_method1("glob", (&entry,))?.extract()?;
            let mut matches = matches;
            matches.sort();
            if matches.is_empty() {
                tracing::warn!("pythonpath {entry}: the pattern matches nothing");
            }
            front.extend(matches);
        } else {
            front.push(entry);
        }
    }
    if let Some(AppSpec { source: AppSource::File(file), .. }) = app {
        if let Some(dir) = absolute(file).parent() {
            front.push(dir.display().to_string());
        }
    }
    for (i, entry) in front.iter().enumerate() {
        sys_path.insert(i, entry)?;
    }
    Ok(())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

fn format_exception(py: Python<'_>, err: &PyErr) -> String {
    let formatted = (|| -> PyResult<String> {
        let traceback = py.import("traceback")?;
        // Pass the traceback explicitly: on 3.11 the value's __traceback__ may lack the frames of the
        // failing module until the error is normalised.
        let lines = traceback.call_method1("format_exception", (err.get_type(py), err.value(py), err.traceback(py)))?;
        let text: Vec<String> = lines.extract()?;
        Ok(text.concat())
    })();
    formatted.unwrap_or_else(|_| err.to_string())
}

/// Imports the app and returns the WSGI callable (or the dict of a multi-app module, see [`load_apps`]).
/// `paste` says how PasteDeploy apps load (`paste-name`, `paste-logger`).
pub fn load(py: Python<'_>, spec: &AppSpec, paste: &PasteSettings<'_>) -> Result<Py<PyAny>, LoadError> {
    let (module, what) = match &spec.source {
        AppSource::Paste(uri) => return load_paste(py, uri, paste),
        AppSource::File(path) => {
            let path = absolute(path);
            if !path.is_file() {
                return Err(LoadError::FileNotFound(path));
            }
            let what = format!("wsgi-file '{}'", path.display());
            (
                import_file(py, &path)
                    .map_err(|err| LoadError::Import { what: what.clone(), traceback: format_exception(py, &err) })?,
                what,
            )
        }
        AppSource::Module(name) => {
            let what = format!("module '{name}'");
            let module = py
                .import(name.as_str())
                .map_err(|err| LoadError::Import { what: what.clone(), traceback: format_exception(py, &err) })?;
            // uWSGI's multi-app modules: a dict of mountpoint -> app in `uwsgi.applications` (set by the module
            // while it imports) or in the module's own `applications` (pyloader.c `uwsgi_uwsgi_loader`).
            for holder in
                [py.import("uwsgi").ok().map(Bound::into_any), Some(module.clone().into_any())].into_iter().flatten()
            {
                if let Ok(applications) = holder.getattr("applications") {
                    if applications.is_instance_of::<PyDict>() {
                        return Ok(applications.unbind());
                    }
                }
            }
            (module.into_any(), what)
        }
    };
    resolve_callable(py, &module, &spec.callable, &what).map(Bound::unbind)
}

/// The WSGI object named by `callable` in `module`: an attribute, or the result of calling a factory.
///
/// `name()` calls a factory without arguments, as uWSGI (`module:create_app()`) and Gunicorn do; liege also
/// takes Gunicorn's literal arguments, `name('prod', debug=False)`: positional and keyword arguments that
/// are Python literals (strings, numbers, tuples, lists, dicts, sets, booleans, `None`), read with
/// `ast.literal_eval`, never evaluated as code. The `callable` option accepts the same forms.
fn resolve_callable<'py>(
    py: Python<'py>,
    module: &Bound<'py, PyAny>,
    callable: &str,
    what: &str,
) -> Result<Bound<'py, PyAny>, LoadError> {
    let (name, call) = match callable.split_once('(') {
        Some((name, _)) => (name.trim(), true),
        None => (callable, false),
    };
    let object = match module.getattr(name) {
        Ok(object) => object,
        Err(_) => {
            let candidates: Vec<String> = ["application", "app", "wsgi_app", "api", "create_app", "make_app"]
                .into_iter()
                .filter(|candidate| *candidate != name && module.getattr(*candidate).is_ok_and(|o| o.is_callable()))
                .map(|candidate| format!("'{candidate}'"))
                .collect();
            let hint = if candidates.is_empty() {
                String::new()
            } else {
                format!(" (found {}: set `callable`)", candidates.join(", "))
            };
            return Err(LoadError::NoCallable { what: what.to_owned(), callable: name.to_owned(), hint });
        }
    };
    let object = if call {
        let called = (|| -> PyResult<Bound<'py, PyAny>> {
            let helper = factory_helper(py)?;
            helper.call1((object, callable))
        })();
        called.map_err(|err| LoadError::Import {
            what: format!("{what} (calling the factory {callable})"),
            traceback: format_exception(py, &err),
        })?
    } else {
        object
    };
    // A dict maps mountpoints to apps (uWSGI's multi-app module); its values are checked when mounted.
    if object.is_instance_of::<PyDict>() {
        return Ok(object);
    }
    if !object.is_callable() {
        return Err(LoadError::NotCallable { what: what.to_owned(), callable: callable.to_owned() });
    }
    Ok(object)
}

// --- Python plugin options (py) ---
/// How `paste` apps load: `paste-name` (the section, PasteDeploy's default `main`) and `paste-logger`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PasteSettings<'a> {
    pub name: Option<&'a str>,
    pub logger: bool,
}

impl<'a> PasteSettings<'a> {
    pub fn of(config: &'a liege_config::VassalConfig) -> Self {
        PasteSettings {
            name: config.python_features.paste_name.as_deref(),
            logger: config.python_features.paste_logger,
        }
    }
}

/// uWSGI's `uwsgi_paste_loader` (plugins/python/pyloader.c): with `paste-logger`, `logging.config.fileConfig`
/// of the `config:` file first (a failure is logged and loading goes on, as in uWSGI), then
/// `paste.deploy.loadapp(URI[, NAME])`. What `loadapp` returns is the app; PasteDeploy checks it.
fn load_paste(py: Python<'_>, uri: &str, paste: &PasteSettings<'_>) -> Result<Py<PyAny>, LoadError> {
    tracing::info!("Loading paste environment: {uri}");
    let what = format!("paste '{uri}'");
    let helper = paste_helper(py).map_err(|err| import_error(py, "the paste loader", &err))?;
    if paste.logger {
        // (the config checked that paste-logger only comes with config: URIs)
        let path = uri.strip_prefix("config:").unwrap_or(uri);
        if let Err(err) = helper.call_method1("setup_logging", (path,)) {
            tracing::error!("paste-logger: cannot set up logging from {path}; loading the app anyway");
            crate::logging::write_raw(format_exception(py, &err).as_bytes());
        }
    }
    let app = helper
        .call_method1("load", (uri, paste.name))
        .map_err(|err| LoadError::Import { what: what.clone(), traceback: format_exception(py, &err) })?;
    if !app.is_callable() {
        return Err(LoadError::NotCallable { what, callable: "the object loadapp returned".to_owned() });
    }
    Ok(app.unbind())
}

fn paste_helper(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let code = std::ffi::CString::new(include_str!("paste.py"))
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("paste.py contains a NUL byte"))?;
    PyModule::from_code(py, &code, c"<liege paste>", c"_liege_paste")
}
// --- end Python plugin options ---

/// `_call(factory, "name(args)")`: parses the call with `ast` and passes literal arguments only.
fn factory_helper(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let code = std::ffi::CString::new(include_str!("factory.py"))
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("factory.py contains a NUL byte"))?;
    let module = PyModule::from_code(py, &code, c"<liege factory>", c"_liege_factory")?;
    module.getattr("call")
}

/// Imports a file as a module named like uWSGI names it (`uwsgi_file_<mangled path>`), registered in
/// `sys.modules` so pickling and `inspect` work on its objects.
///
/// The source is compiled on every load, never read from `__pycache__`, as uWSGI does: a `.pyc` is validated
/// by mtime seconds and size only, so an edit of the same size within the same second would survive a reload.
fn import_file<'py>(py: Python<'py>, path: &Path) -> PyResult<Bound<'py, PyAny>> {
    let mangled: String = path
        .with_extension("")
        .display()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let name = format!("uwsgi_file_{}", mangled.trim_start_matches('_'));
    let path_text = path.display().to_string();
    let source = std::fs::read(path).map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("{path_text}: {e}")))?;
    let module = PyModule::new(py, &name)?;
    module.setattr("__file__", &path_text)?;
    let builtins = py.import("builtins")?;
    module.setattr("__builtins__", &builtins)?;
    let code = builtins.getattr("compile")?.call1((pyo3::types::PyBytes::new(py, &source), &path_text, "exec"))?;
    let sys_modules = py.import("sys")?.getattr("modules")?;
    sys_modules.set_item(&name, &module)?;
    if let Err(err) = builtins.getattr("exec")?.call1((code, module.dict())) {
        let _ = sys_modules.del_item(&name);
        return Err(err);
    }
    Ok(module.into_any())
}

/// The apps of a vassal, loaded in uWSGI's order (plugins/python/python_plugin.c `uwsgi_python_init_apps`,
/// core/uwsgi.c `uwsgi_init_all_apps`):
///
/// 1. `module` as app 0 with mountpoint `""`; if it fails and `wsgi-file` is given too, the file takes its
///    place (uWSGI registers the file only when the module did not load: same mountpoint);
/// 2. each `mount`, in order. A mountpoint already taken is skipped with a message, as in uWSGI.
///
/// A loaded object that is a dict (uWSGI's multi-app: `uwsgi.applications` or a module's `applications`)
/// mounts each of its entries: keys are mountpoints, values apps or names of apps in the module.
///
/// The default app, which serves requests no mountpoint claims, is the first app whose mountpoint is empty
/// or starts with `/` (in practice the first app loaded), unless `no-default-app`.
///
/// All apps share the main interpreter (uWSGI's `single-interpreter`; uWSGI's default of one
/// sub-interpreter per mounted app is not available through pyo3).
///
/// With one app at `""` and a default app, the app itself is returned (no per-request dispatch). Otherwise a
/// [`Mounts`] dispatcher, which selects the app per request with [`crate::python::environ::route`].
///
/// `strict` (`need-app`): an app that fails to load fails the vassal; otherwise it is left out (logged with
/// its traceback) and the others serve; no app at all is an error either way.
pub fn load_apps(py: Python<'_>, config: &liege_config::VassalConfig) -> Result<Py<PyAny>, LoadError> {
    let strict = config.need_app;
    let paste = PasteSettings::of(config);
    let mut table: Vec<(String, Py<PyAny>, String)> = Vec::new();
    let mut first_error = None;
    if let Some(spec) = &config.app {
        // The default app and the sources after it (wsgi-file, paste), each tried only if the ones before
        // failed, as uWSGI tries them on the same mountpoint.
        let mut tried = spec;
        let mut outcome = load(py, spec, &paste);
        for fallback in &config.fallback_apps {
            let Err(err) = &outcome else { break };
            report(err);
            let kind = if matches!(fallback.source, AppSource::File(_)) { "wsgi-file " } else { "" };
            tracing::warn!("{}: trying {kind}{} instead, as uWSGI does", describe(tried), describe(fallback));
            tried = fallback;
            outcome = load(py, fallback, &paste);
        }
        match outcome {
            Ok(app) => add(py, &mut table, "", app, tried, describe(tried))?,
            Err(err) if !config.fallback_apps.is_empty() => return Err(err),
            Err(err) if strict || config.mounts.is_empty() => return Err(err),
            Err(err) => {
                report(&err);
                first_error.get_or_insert(err);
            }
        }
    }
    for mount in &config.mounts {
        if let Some(dir) = file_dir(&mount.app) {
            let sys_path = py
                .import("sys")
                .and_then(|sys| sys.getattr("path"))
                .map_err(|err| import_error(py, "sys.path", &err))?;
            let _ = sys_path.call_method1("append", (dir,));
        }
        if table.iter().any(|(mountpoint, ..)| *mountpoint == mount.mountpoint) {
            tracing::warn!("mountpoint {} already configured: skipping {}", mount.mountpoint, describe(&mount.app));
            continue;
        }
        tracing::info!("mounting {} on {}", describe(&mount.app), mount.mountpoint);
        match load(py, &mount.app, &paste) {
            Ok(app) => add(py, &mut table, &mount.mountpoint, app, &mount.app, describe(&mount.app))?,
            Err(err) if strict => return Err(err),
            Err(err) => {
                report(&err);
                first_error.get_or_insert(err);
            }
        }
    }
    if table.is_empty() {
        return Err(first_error.unwrap_or(LoadError::NoApp));
    }
    let default = if config.no_default_app {
        None
    } else {
        table.iter().position(|(mountpoint, ..)| mountpoint.is_empty() || mountpoint.starts_with('/'))
    };
    for (id, (mountpoint, _, description)) in table.iter().enumerate() {
        let marker = if default == Some(id) { " (default app)" } else { "" };
        tracing::info!("WSGI app {id} (mountpoint='{mountpoint}') ready: {description}{marker}");
    }
    if table.len() == 1 && table[0].0.is_empty() && default == Some(0) {
        return Ok(table.remove(0).1);
    }
    let mounts = Mounts {
        mountpoints: table.iter().map(|(mountpoint, ..)| mountpoint.clone()).collect(),
        apps: table.into_iter().map(|(_, app, _)| app).collect(),
        default,
        manage_script_name: config.manage_script_name,
    };
    Ok(Py::new(py, mounts).map_err(|err| import_error(py, "the app table", &err))?.into_any())
}

fn describe(spec: &AppSpec) -> String {
    match &spec.source {
        AppSource::File(path) => format!("{}:{}", path.display(), spec.callable),
        AppSource::Module(module) => format!("{module}:{}", spec.callable),
        AppSource::Paste(uri) => format!("paste {uri}"),
    }
}

fn file_dir(spec: &AppSpec) -> Option<String> {
    match &spec.source {
        AppSource::File(file) => absolute(file).parent().map(|dir| dir.display().to_string()),
        AppSource::Module(_) | AppSource::Paste(_) => None,
    }
}

fn report(err: &LoadError) {
    tracing::error!("{err}");
    if let Some(traceback) = err.traceback() {
        crate::logging::write_raw(traceback.as_bytes());
    }
}

fn import_error(py: Python<'_>, what: &str, err: &PyErr) -> LoadError {
    LoadError::Import { what: what.to_owned(), traceback: format_exception(py, err) }
}

/// Adds a loaded app, or each entry of a multi-app dict, to the table.
fn add(
    py: Python<'_>,
    table: &mut Vec<(String, Py<PyAny>, String)>,
    mountpoint: &str,
    app: Py<PyAny>,
    spec: &AppSpec,
    description: String,
) -> Result<(), LoadError> {
    let app = app.into_bound(py);
    let Ok(applications) = app.cast::<PyDict>() else {
        table.push((mountpoint.to_owned(), app.unbind(), description));
        return Ok(());
    };
    tracing::info!("found a multiapp module: {description}");
    let what = format!("the applications dict of {description}");
    if applications.is_empty() {
        return Err(LoadError::NoCallable { what, callable: "applications".into(), hint: " (it is empty)".into() });
    }
    for (key, value) in applications.iter() {
        let Ok(key) = key.cast::<PyString>().map(|k| k.to_string()) else {
            tracing::warn!("{what}: a key is not a string mountpoint; skipped");
            continue;
        };
        let value = if let Ok(name) = value.cast::<PyString>() {
            // A string names an attribute of the module that defined the dict.
            let module = match &spec.source {
                AppSource::Module(module) => {
                    py.import(module.as_str()).map_err(|err| import_error(py, module, &err))?
                }
                AppSource::File(_) | AppSource::Paste(_) => {
                    return Err(LoadError::NotCallable { what, callable: name.to_string() });
                }
            };
            match module.getattr(name.to_string().as_str()) {
                Ok(app) => app,
                Err(_) => {
                    tracing::warn!("skipping broken app {key}: no '{name}' in {description}");
                    continue;
                }
            }
        } else {
            value
        };
        if !value.is_callable() {
            return Err(LoadError::NotCallable { what, callable: key });
        }
        if table.iter().any(|(mountpoint, ..)| *mountpoint == key) {
            tracing::warn!("mountpoint {key} already configured: skipping");
            continue;
        }
        table.push((key.clone(), value.unbind(), format!("{description} [{key}]")));
    }
    Ok(())
}

/// A vassal's apps behind one WSGI callable: picks the app of each request by its path (uWSGI's
/// `manage-script-name`) or its `SCRIPT_NAME`, moves the mountpoint from `PATH_INFO` to `SCRIPT_NAME`, and
/// calls it. A request no app claims (only possible with `no-default-app`) gets uWSGI's 500.
#[pyclass(frozen, name = "LiegeMounts")]
pub struct Mounts {
    mountpoints: Vec<String>,
    apps: Vec<Py<PyAny>>,
    default: Option<usize>,
    manage_script_name: bool,
}

#[pymethods]
impl Mounts {
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        environ: Bound<'py, PyDict>,
        start_response: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let text = |key: &Bound<'py, PyString>| -> PyResult<String> {
            Ok(match environ.get_item(key)? {
                Some(value) => value.cast::<PyString>().map(|s| s.to_string()).unwrap_or_default(),
                None => String::new(),
            })
        };
        let script_name_key = pyo3::intern!(py, "SCRIPT_NAME");
        let path_info_key = pyo3::intern!(py, "PATH_INFO");
        let script_name = text(script_name_key)?;
        let path_info = text(path_info_key)?;
        let mountpoints: Vec<&str> = self.mountpoints.iter().map(String::as_str).collect();
        let route = crate::python::environ::route(
            &mountpoints,
            self.default,
            self.manage_script_name,
            &script_name,
            &path_info,
        );
        let Some(app) = route.app.and_then(|index| self.apps.get(index)) else {
            tracing::error!(
                "no app for SCRIPT_NAME='{script_name}' PATH_INFO='{path_info}' (no-default-app): answering 500"
            );
            let headers = PyList::new(py, [("Content-Type", "text/plain")])?;
            start_response.call1(("500 Internal Server Error", headers))?;
            return Ok(PyList::new(py, [pyo3::types::PyBytes::new(py, b"Internal Server Error\n")])?.into_any());
        };
        if let Some((script_name, path_info)) = route.rewrite {
            environ.set_item(script_name_key, script_name)?;
            environ.set_item(path_info_key, path_info)?;
        }
        app.bind(py).call1((environ, start_response))
    }

    /// uWSGI's `uwsgi.applications`-like view for debugging: `{mountpoint: app}`.
    #[getter]
    fn apps<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (mountpoint, app) in self.mountpoints.iter().zip(&self.apps) {
            dict.set_item(mountpoint, app.bind(py))?;
        }
        Ok(dict)
    }
}
