//! Finding and importing the WSGI callable (`wsgi-file`, `module`, `callable`).

use std::path::{Path, PathBuf};

use liege_config::{AppSource, AppSpec};
use pyo3::prelude::*;
use pyo3::types::PyList;

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
/// `python app.py`.
pub fn prepare_sys_path(py: Python<'_>, pythonpath: &[PathBuf], app: Option<&AppSpec>) -> PyResult<()> {
    let sys_path = py.import("sys")?.getattr("path")?.cast_into::<PyList>()?;
    let mut front: Vec<String> = Vec::new();
    let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| ".".into());
    front.push(cwd.clone());
    front.extend(pythonpath.iter().map(|p| absolute(p).display().to_string()));
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

/// Imports the app and returns the WSGI callable.
pub fn load(py: Python<'_>, spec: &AppSpec) -> Result<Py<PyAny>, LoadError> {
    let (module, what) = match &spec.source {
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
            (module.into_any(), what)
        }
    };
    let callable = match module.getattr(spec.callable.as_str()) {
        Ok(callable) => callable,
        Err(_) => {
            let candidates: Vec<String> = ["application", "app", "wsgi_app", "api"]
                .into_iter()
                .filter(|name| *name != spec.callable && module.getattr(*name).is_ok_and(|o| o.is_callable()))
                .map(|name| format!("'{name}'"))
                .collect();
            let hint = if candidates.is_empty() {
                String::new()
            } else {
                format!(" (found {}: set `callable`)", candidates.join(", "))
            };
            return Err(LoadError::NoCallable { what, callable: spec.callable.clone(), hint });
        }
    };
    if !callable.is_callable() {
        return Err(LoadError::NotCallable { what, callable: spec.callable.clone() });
    }
    Ok(callable.unbind())
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
