//! The `uwsgi` Python module, importable by apps as under uWSGI.
//!
//! Covers what real apps use: `version`, `numproc`, `worker_id()`, `masterpid()`, `opt`, `post_fork_hook`
//! (called in every worker after fork), `reload()`, `log()`, `started_on`, `total_requests()`. Values have
//! uWSGI's Python 3 types (`version` and `opt` values are bytes) so code written for uWSGI runs unchanged.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::scoreboard::Scoreboard;

/// This process's worker id: 0 in the master, 1..=N in workers (set right after fork).
static WORKER_ID: AtomicU32 = AtomicU32::new(0);

pub fn set_worker_id(id: u32) {
    WORKER_ID.store(id, Relaxed);
}

pub fn worker_id() -> u32 {
    WORKER_ID.load(Relaxed)
}

/// What the module exposes about the running vassal.
pub struct ModuleInfo<'a> {
    pub numproc: u32,
    pub master_pid: u32,
    pub started_on: u64,
    /// `(key, value)` in the order given; a bare flag's value is `true`.
    pub options: &'a [(String, String, bool)],
}

/// Creates the module and registers it in `sys.modules` so `import uwsgi` finds it.
pub fn install(py: Python<'_>, info: &ModuleInfo<'_>) -> PyResult<()> {
    let module = PyModule::new(py, "uwsgi")?;
    module.add("version", PyBytes::new(py, concat!(env!("CARGO_PKG_VERSION"), "-liege").as_bytes()))?;
    module.add("SERVER", "liege")?;
    module.add("numproc", info.numproc)?;
    module.add("started_on", info.started_on)?;
    module.add("post_fork_hook", py.None())?;
    module.add("opt", options_dict(py, info.options)?)?;
    module.add("_master_pid", info.master_pid)?;
    module.add_function(wrap_pyfunction!(worker_id_py, &module)?)?;
    module.add_function(wrap_pyfunction!(masterpid, &module)?)?;
    module.add_function(wrap_pyfunction!(reload, &module)?)?;
    module.add_function(wrap_pyfunction!(log, &module)?)?;
    module.add_function(wrap_pyfunction!(total_requests, &module)?)?;
    module.add_function(wrap_pyfunction!(mule_id, &module)?)?;
    let sys_modules = py.import("sys")?.getattr("modules")?;
    sys_modules.set_item("uwsgi", module)?;
    Ok(())
}

/// uWSGI's `opt`: each key once; a repeated key becomes a list; flags are `True`, values bytes.
fn options_dict<'py>(py: Python<'py>, options: &[(String, String, bool)]) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (key, value, is_flag) in options {
        let value: Bound<'py, PyAny> = if *is_flag {
            pyo3::types::PyBool::new(py, true).to_owned().into_any()
        } else {
            PyBytes::new(py, value.as_bytes()).into_any()
        };
        match dict.get_item(key)? {
            None => dict.set_item(key, value)?,
            Some(existing) => {
                if let Ok(list) = existing.cast::<PyList>() {
                    list.append(value)?;
                } else {
                    dict.set_item(key, PyList::new(py, [existing, value])?)?;
                }
            }
        }
    }
    Ok(dict)
}

/// Calls `uwsgi.post_fork_hook` if the app set one; errors are logged, never fatal (as uWSGI).
pub fn run_post_fork_hook(py: Python<'_>) {
    let hook = py.import("uwsgi").and_then(|m| m.getattr("post_fork_hook"));
    match hook {
        Ok(hook) if !hook.is_none() => {
            if let Err(err) = hook.call0() {
                tracing::error!("uwsgi.post_fork_hook raised:");
                err.print(py);
            }
        }
        Ok(_) => {}
        Err(err) => err.print(py),
    }
}

#[pyfunction(name = "worker_id")]
fn worker_id_py() -> u32 {
    worker_id()
}

#[pyfunction]
fn mule_id() -> u32 {
    0
}

#[pyfunction]
fn masterpid(py: Python<'_>) -> PyResult<u32> {
    py.import("uwsgi")?.getattr("_master_pid")?.extract()
}

/// Asks the master for a graceful reload (SIGHUP), as uWSGI's `uwsgi.reload()`.
#[pyfunction]
fn reload(py: Python<'_>) -> PyResult<bool> {
    let pid: i32 = masterpid(py)? as i32;
    Ok(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGHUP).is_ok())
}

/// Writes one line to the vassal's log.
#[pyfunction]
fn log(message: &str) -> bool {
    crate::logging::write_line(message.trim_end_matches('\n').as_bytes());
    true
}

#[pyfunction]
fn total_requests() -> u64 {
    Scoreboard::global().map(Scoreboard::total_requests).unwrap_or(0)
}
