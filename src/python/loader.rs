//! Loading the app: start the interpreter, install the `uwsgi` module, import the WSGI callable.
//!
//! Shared by two kinds of process: the master imports the app once before forking (preload: the workers share
//! its pages), and with `lazy-apps` each worker imports it itself. It lives here, below both, so neither
//! needs the other to load an app.

use liege_config::{OptionKind, VassalConfig};
use nix::unistd::Pid;
use pyo3::prelude::*;

use crate::python;

/// The app could not be imported; why (the traceback) is already in the log.
#[derive(Debug, thiserror::Error)]
#[error("the app failed to load (the traceback is in the log)")]
pub struct AppLoadFailed;

/// Starts Python and imports the app (in the master for preload, in each worker for lazy-apps). Errors are
/// logged here, with the traceback.
pub fn load_python_app(config: &VassalConfig) -> Result<Py<PyAny>, AppLoadFailed> {
    load_python_app_with(config, crate::process::unix_now())
}

/// [`load_python_app`] for a vassal that first started at `started_on` (kept across reloads for
/// `uwsgi.started_on`).
pub fn load_python_app_with(config: &VassalConfig, started_on: u64) -> Result<Py<PyAny>, AppLoadFailed> {
    if config.app.is_none() && config.mounts.is_empty() && !config.mules.mules.is_empty() {
        // (mule family) A vassal of mules only, as uWSGI's "no app loaded" mode: the interpreter is ready for
        // the mules, and requests get a 503.
        prepare_interpreter(config, started_on)?;
        tracing::info!(
            "no app configured: this vassal runs its {} mule(s); requests get 503",
            config.mules.mules.len()
        );
        return placeholder().map_err(|err| {
            tracing::error!("{err}");
            AppLoadFailed
        });
    }
    prepare_interpreter(config, started_on)?;
    if config.app.is_none() && config.mounts.is_empty() {
        tracing::error!("no app configured: give wsgi-file, module, paste or mount");
        return Err(AppLoadFailed);
    }
    Python::attach(|py| {
        match python::app::load_apps(py, config) {
            Ok(app) => {
                // Objects that survive the import are moved out of the collector's reach, so workers don't
                // touch (and copy) the pages holding them when the GC runs: more memory stays shared.
                let _ = py.import("gc").and_then(|gc| gc.call_method0("freeze"));
                tracing::info!("app loaded: {}", config.app.as_ref().map_or("mounted apps".into(), describe_app));
                Ok(app)
            }
            Err(err) => {
                tracing::error!("{err}");
                if let Some(traceback) = err.traceback() {
                    crate::logging::write_raw(traceback.as_bytes());
                }
                Err(AppLoadFailed)
            }
        }
    })
}

/// Starts Python, installs the `uwsgi` module and prepares `sys.path`, without importing the app (what
/// [`load_python_app`] does first; a lazy-apps mule needs only this).
pub fn prepare_interpreter(config: &VassalConfig, started_on: u64) -> Result<(), AppLoadFailed> {
    if let Err(err) = python::interpreter::initialize(config.virtualenv.as_deref(), &config.pyargv, &config.env) {
        tracing::error!("{err}");
        return Err(AppLoadFailed);
    }
    Python::attach(|py| {
        let options: Vec<(String, String, bool)> = config
            .raw
            .iter()
            .map(|o| {
                let is_flag = liege_config::lookup(&o.key).is_some_and(|d| matches!(d.kind, OptionKind::Flag));
                (o.key.clone(), o.value.clone(), is_flag)
            })
            .collect();
        // (a mule, or a spooler with lazy-apps, imports the app too: its parent is the master, as a worker's)
        let master_pid = if crate::python::uwsgi_module::worker_id() == 0
            && crate::python::mules::mule_id() == 0
            && crate::spool::current_spooler().is_none()
        {
            std::process::id()
        } else {
            Pid::parent().as_raw() as u32
        };
        let info =
            python::uwsgi_module::ModuleInfo { numproc: config.processes, master_pid, started_on, options: &options };
        if let Err(err) = python::uwsgi_module::install(py, &info)
            .and_then(|()| python::app::prepare_sys_path(py, &config.pythonpath, config.app.as_ref()))
        {
            tracing::error!("cannot prepare the interpreter: {err}");
            err.display(py);
            return Err(AppLoadFailed);
        }
        Ok(())
    })
}

fn describe_app(spec: &liege_config::AppSpec) -> String {
    match &spec.source {
        liege_config::AppSource::File(path) => format!("{}:{}", path.display(), spec.callable),
        liege_config::AppSource::Module(module) => format!("{module}:{}", spec.callable),
        liege_config::AppSource::Paste(uri) => format!("paste {uri}"),
    }
}

/// With `need-app = false` a vassal whose app failed to load keeps running (uWSGI's behaviour) and answers
/// every request with a 503 that says why, instead of exiting.
pub fn no_app_placeholder() -> anyhow::Result<Py<PyAny>> {
    tracing::warn!("need-app = false: serving 503 until the app loads (fix it and send SIGHUP)");
    placeholder()
}

/// The 503 app.
fn placeholder() -> anyhow::Result<Py<PyAny>> {
    Python::attach(|py| {
        let code = c"def application(environ, start_response):\n    start_response('503 Service Unavailable', [('Content-Type', 'text/plain')])\n    return [b'no app loaded\\n']\n";
        let module = PyModule::from_code(py, code, c"liege_no_app.py", c"liege_no_app")?;
        Ok(module.getattr("application")?.unbind())
    })
    .map_err(|err: PyErr| anyhow::anyhow!("cannot create the no-app placeholder: {err}"))
}
