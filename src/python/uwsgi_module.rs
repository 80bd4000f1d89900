//! The `uwsgi` Python module, importable by apps as under uWSGI.
//!
//! Covers what real apps use: `version`, `numproc`, `worker_id()`, `masterpid()`, `opt`, `post_fork_hook`
//! (called in every worker after fork), `reload()`, `log()`, `started_on`, `total_requests()`, and the cache functions (`cache_get`, `cache_set`,
//! `cache_update`, `cache_del`, `cache_exists`, `cache_clear`, `cache_inc`/`dec`/`mul`/`div`, `cache_num`,
//! `cache_keys`) over [`crate::cache`], and the mule functions (`mule_id`, `mule_msg`, `mule_get_msg`, `farm_msg`...,
//! see [`crate::python::mules`]). Values have
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
    crate::python::mules::add_functions(&module)?; // (mule family: mule_id, mule_msg, mule_get_msg, farm_*...)
    add_cache_functions(&module)?;
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

// --- the cache functions (uWSGI's plugins/python/uwsgi_pymodule.c `py_uwsgi_cache_*`) ---
//
// Same signatures and answers as uWSGI: keys and values are bytes or str (UTF-8), `expires` is seconds from
// now (0 = never), `cache` names a cache (default: the first one). Success is `True`, failure `None` (not
// `False`): a value larger than the cache's blocksize, a full cache, `cache_set` on an existing key, or no
// such cache. `cache_get` answers bytes or `None`.

fn cache_bytes<'a>(value: &'a Bound<'_, PyAny>) -> PyResult<std::borrow::Cow<'a, [u8]>> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(std::borrow::Cow::Borrowed(bytes.as_bytes()));
    }
    if let Ok(text) = value.cast::<pyo3::types::PyString>() {
        return Ok(std::borrow::Cow::Owned(text.to_str()?.as_bytes().to_vec()));
    }
    if let Ok(array) = value.cast::<pyo3::types::PyByteArray>() {
        return Ok(std::borrow::Cow::Owned(array.to_vec()));
    }
    Err(pyo3::exceptions::PyTypeError::new_err("cache keys and values must be bytes or str"))
}

/// The cache named `name` (default: the first). `name@server` (a remote cache) is refused.
fn cache_named(name: Option<&str>) -> PyResult<Option<&'static crate::cache::Store>> {
    if name.is_some_and(|name| name.contains('@')) {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "remote caches (name@server) are not supported by liege; use a local cache name",
        ));
    }
    Ok(crate::cache::by_name(name))
}

fn lock_failed(err: impl std::fmt::Display) -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err(err.to_string())
}

/// `True` for success, `None` for failure, as uWSGI.
fn true_or_none(py: Python<'_>, ok: bool) -> Py<PyAny> {
    if ok {
        pyo3::types::PyBool::new(py, true).to_owned().into_any().unbind()
    } else {
        py.None()
    }
}

fn cache_write(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    write: impl FnOnce(&[u8]) -> PyResult<crate::cache::Write<'_>>,
    value_holder: Option<&Bound<'_, PyAny>>,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Py<PyAny>> {
    let key = cache_bytes(key)?;
    let value = value_holder.map(cache_bytes).transpose()?;
    let Some(store) = cache_named(cache)? else { return Ok(py.None()) };
    let write = write(value.as_deref().unwrap_or_default())?;
    match store.set(&key, write, expires, crate::cache::now()) {
        Ok(()) => Ok(true_or_none(py, true)),
        Err(crate::cache::SetError::Lock(err)) => Err(lock_failed(err)),
        Err(_) => Ok(py.None()),
    }
}

#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_get<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    cache: Option<&str>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let key = cache_bytes(key)?;
    let Some(store) = cache_named(cache)? else { return Ok(None) };
    let value = store.get(&key, crate::cache::now()).map_err(lock_failed)?;
    Ok(value.map(|value| PyBytes::new(py, &value)))
}

#[pyfunction]
#[pyo3(signature = (key, value, expires = 0, cache = None))]
fn cache_set(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Py<PyAny>> {
    cache_write(py, key, |v| Ok(crate::cache::Write::Insert(v)), Some(value), expires, cache)
}

#[pyfunction]
#[pyo3(signature = (key, value, expires = 0, cache = None))]
fn cache_update(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Py<PyAny>> {
    cache_write(py, key, |v| Ok(crate::cache::Write::Upsert(v)), Some(value), expires, cache)
}

fn cache_math(
    py: Python<'_>,
    op: crate::cache::MathOp,
    key: &Bound<'_, PyAny>,
    value: i64,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Py<PyAny>> {
    cache_write(py, key, |_| Ok(crate::cache::Write::Math(op, value)), None, expires, cache)
}

#[pyfunction]
#[pyo3(signature = (key, value = 1, expires = 0, cache = None))]
fn cache_inc(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: i64,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Py<PyAny>> {
    cache_math(py, crate::cache::MathOp::Inc, key, value, expires, cache)
}

#[pyfunction]
#[pyo3(signature = (key, value = 1, expires = 0, cache = None))]
fn cache_dec(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: i64,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Py<PyAny>> {
    cache_math(py, crate::cache::MathOp::Dec, key, value, expires, cache)
}

#[pyfunction]
#[pyo3(signature = (key, value = 2, expires = 0, cache = None))]
fn cache_mul(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: i64,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Py<PyAny>> {
    cache_math(py, crate::cache::MathOp::Mul, key, value, expires, cache)
}

#[pyfunction]
#[pyo3(signature = (key, value = 2, expires = 0, cache = None))]
fn cache_div(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: i64,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Py<PyAny>> {
    cache_math(py, crate::cache::MathOp::Div, key, value, expires, cache)
}

/// The 64-bit number under `key` (set by `cache_inc` & co), 0 if absent or not a number.
#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_num(key: &Bound<'_, PyAny>, cache: Option<&str>) -> PyResult<i64> {
    let key = cache_bytes(key)?;
    let Some(store) = cache_named(cache)? else { return Ok(0) };
    Ok(store.number(&key, crate::cache::now()).map_err(lock_failed)?.unwrap_or(0))
}

#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_del(py: Python<'_>, key: &Bound<'_, PyAny>, cache: Option<&str>) -> PyResult<Py<PyAny>> {
    let key = cache_bytes(key)?;
    let Some(store) = cache_named(cache)? else { return Ok(py.None()) };
    Ok(true_or_none(py, store.delete(&key, crate::cache::now()).map_err(lock_failed)?))
}

#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_exists(py: Python<'_>, key: &Bound<'_, PyAny>, cache: Option<&str>) -> PyResult<Py<PyAny>> {
    let key = cache_bytes(key)?;
    let Some(store) = cache_named(cache)? else { return Ok(py.None()) };
    Ok(true_or_none(py, store.exists(&key, crate::cache::now()).map_err(lock_failed)?))
}

#[pyfunction]
#[pyo3(signature = (cache = None))]
fn cache_clear(py: Python<'_>, cache: Option<&str>) -> PyResult<Py<PyAny>> {
    let Some(store) = cache_named(cache)? else { return Ok(py.None()) };
    store.clear(crate::cache::now()).map_err(lock_failed)?;
    Ok(true_or_none(py, true))
}

/// The keys (bytes) of the live items; `ValueError` without such a cache, as uWSGI.
#[pyfunction]
#[pyo3(signature = (cache = None))]
fn cache_keys<'py>(py: Python<'py>, cache: Option<&str>) -> PyResult<Bound<'py, PyList>> {
    let Some(store) = cache_named(cache)? else {
        return Err(pyo3::exceptions::PyValueError::new_err("no local uWSGI cache available"));
    };
    let keys = store.keys(crate::cache::now()).map_err(lock_failed)?;
    PyList::new(py, keys.iter().map(|key| PyBytes::new(py, key)))
}

fn add_cache_functions(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(cache_get, module)?)?;
    module.add_function(wrap_pyfunction!(cache_set, module)?)?;
    module.add_function(wrap_pyfunction!(cache_update, module)?)?;
    module.add_function(wrap_pyfunction!(cache_del, module)?)?;
    module.add_function(wrap_pyfunction!(cache_exists, module)?)?;
    module.add_function(wrap_pyfunction!(cache_clear, module)?)?;
    module.add_function(wrap_pyfunction!(cache_inc, module)?)?;
    module.add_function(wrap_pyfunction!(cache_dec, module)?)?;
    module.add_function(wrap_pyfunction!(cache_mul, module)?)?;
    module.add_function(wrap_pyfunction!(cache_div, module)?)?;
    module.add_function(wrap_pyfunction!(cache_num, module)?)?;
    module.add_function(wrap_pyfunction!(cache_keys, module)?)?;
    Ok(())
}
