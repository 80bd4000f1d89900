//! The `uwsgi` Python module, importable by apps as under uWSGI.
//!
//! Covers what real apps use: `version`, `numproc`, `worker_id()`, `masterpid()`, `opt`, `post_fork_hook`
//! (called in every worker after fork), `reload()`, `log()`, `started_on`, `total_requests()`, and the cache functions (`cache_get`, `cache_set`,
//! `cache_update`, `cache_del`, `cache_exists`, `cache_clear`, `cache_inc`/`dec`/`mul`/`div`, `cache_num`,
//! `cache_keys`) over [`crate::cache`], the mule functions (`mule_id`, `mule_msg`, `mule_get_msg`, `farm_msg`...,
//! see [`crate::python::mules`]), and with a `spooler` the spooler functions (`spool`, `send_to_spooler`,
//! `spooler_jobs`, `spooler_pid(s)`, `set_spooler_frequency`, `spooler_get_task`, `spoolers`; the
//! `SPOOL_OK`/`SPOOL_RETRY`/`SPOOL_IGNORE` codes always) over [`crate::spool`]. Values have
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
    add_spooler_functions(py, &module)?;
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

// --- the spooler functions (uWSGI's uwsgi_pymodule.c `uwsgi_spooler_methods`, python_plugin.c's spooler) ---
//
// `spool` / `send_to_spooler` write a task (see [`crate::spool`]); a spooler process calls `uwsgi.spooler`
// (which the app sets, e.g. uwsgidecorators.py) with each task's arguments and keeps, deletes or ignores the
// file by its answer: SPOOL_OK (-2) done, SPOOL_RETRY (-1) again at the next scan, SPOOL_IGNORE (0) not this
// callable's. As under uWSGI the functions exist only when the vassal has spoolers (apps test for them).

/// uWSGI's return codes of the spooler callable.
pub const SPOOL_OK: i32 = -2;
pub const SPOOL_RETRY: i32 = -1;
pub const SPOOL_IGNORE: i32 = 0;

/// `spooler-quiet`, for the "written" log line (set by the master before anything forks).
static SPOOLER_QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_spooler_quiet(quiet: bool) {
    SPOOLER_QUIET.store(quiet, Relaxed);
}

fn add_spooler_functions(py: Python<'_>, module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("SPOOL_OK", SPOOL_OK)?;
    module.add("SPOOL_RETRY", SPOOL_RETRY)?;
    module.add("SPOOL_IGNORE", SPOOL_IGNORE)?;
    module.add_function(wrap_pyfunction!(i_am_the_spooler, module)?)?;
    module.add_function(wrap_pyfunction!(spooler_dir, module)?)?;
    let Some(board) = crate::spool::SpoolBoard::global() else { return Ok(()) };
    use std::os::unix::ffi::OsStrExt;
    let dirs: Vec<Bound<'_, PyBytes>> =
        board.slots().map(|(_, dir)| PyBytes::new(py, dir.path.as_os_str().as_bytes())).collect();
    module.add("spoolers", pyo3::types::PyTuple::new(py, dirs)?)?;
    module.add_function(wrap_pyfunction!(spool, module)?)?;
    let spool_function = module.getattr("spool")?;
    module.add("send_to_spooler", spool_function)?;
    module.add_function(wrap_pyfunction!(set_spooler_frequency, module)?)?;
    module.add_function(wrap_pyfunction!(spooler_jobs, module)?)?;
    module.add_function(wrap_pyfunction!(spooler_pid, module)?)?;
    module.add_function(wrap_pyfunction!(spooler_pids, module)?)?;
    module.add_function(wrap_pyfunction!(spooler_get_task, module)?)?;
    Ok(())
}

/// A key or value of a spooled task: bytes as they are, str as UTF-8, anything else as its `str()` (uWSGI
/// takes only bytes keys and `bytes(value)` values under Python 3; liege also takes what Python 2 code passes).
fn spool_bytes(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(text) = value.cast::<pyo3::types::PyString>() {
        return Ok(text.to_str()?.as_bytes().to_vec());
    }
    Ok(value.str()?.to_str()?.as_bytes().to_vec())
}

/// `uwsgi.spool(dict)` or `uwsgi.spool(key=value, ...)`: writes a task, returns its file's path (bytes).
/// A bytes `body` item is the task's body (not limited to 64 KiB, and taken out of the dict, as uWSGI).
#[pyfunction]
#[pyo3(signature = (*args, **kwargs))]
fn spool<'py>(
    py: Python<'py>,
    args: &Bound<'py, pyo3::types::PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let not_a_dict =
        || pyo3::exceptions::PyValueError::new_err("The argument of spooler callable must be a dictionary");
    let dict = match args.get_item(0) {
        Ok(first) => first.cast_into::<PyDict>().map_err(|_| not_a_dict())?,
        Err(_) => kwargs.cloned().ok_or_else(not_a_dict)?,
    };
    let mut body = Vec::new();
    for key in [pyo3::types::PyString::new(py, "body").into_any(), PyBytes::new(py, b"body").into_any()] {
        if let Some(value) = dict.get_item(&key)? {
            if let Ok(bytes) = value.cast::<PyBytes>() {
                body = bytes.as_bytes().to_vec();
                dict.del_item(&key)?;
            }
        }
    }
    let mut items = Vec::new();
    for (key, value) in dict.iter() {
        items.push((spool_bytes(&key)?, spool_bytes(&value)?));
    }
    let Some(board) = crate::spool::SpoolBoard::global() else {
        return Err(pyo3::exceptions::PyValueError::new_err("unable to spool job"));
    };
    let quiet = SPOOLER_QUIET.load(Relaxed);
    match py.detach(|| crate::spool::file::spool(board, &items, &body, quiet)) {
        Ok(path) => {
            use std::os::unix::ffi::OsStrExt;
            Ok(PyBytes::new(py, path.as_os_str().as_bytes()))
        }
        Err(err) => {
            tracing::error!("{err}");
            Err(pyo3::exceptions::PyValueError::new_err("unable to spool job"))
        }
    }
}

#[pyfunction]
fn set_spooler_frequency(seconds: i64) -> bool {
    if let Some(board) = crate::spool::SpoolBoard::global() {
        board.set_frequency(seconds.max(0) as u64);
    }
    true
}

/// The task files of the first spooler's directory.
#[pyfunction]
fn spooler_jobs(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    use std::os::unix::ffi::OsStrExt;
    let jobs = crate::spool::SpoolBoard::global()
        .and_then(|board| board.dirs().first().map(|dir| crate::spool::file::jobs(&dir.path)))
        .unwrap_or_default();
    PyList::new(py, jobs.iter().map(|path| PyBytes::new(py, path.as_os_str().as_bytes())))
}

#[pyfunction]
fn spooler_pid() -> i32 {
    crate::spool::SpoolBoard::global().and_then(|b| b.slot(0)).map_or(0, |slot| slot.pid.load(Relaxed))
}

#[pyfunction]
fn spooler_pids() -> Vec<i32> {
    crate::spool::SpoolBoard::global().map_or_else(Vec::new, |b| b.slots().map(|(s, _)| s.pid.load(Relaxed)).collect())
}

#[pyfunction]
fn spooler_get_task<'py>(py: Python<'py>, path: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
    let Some(task) = crate::spool::file::read_task(std::path::Path::new(path)) else { return Ok(None) };
    task_dict(py, path.as_bytes(), &task.args, &task.body).map(Some)
}

#[pyfunction]
fn i_am_the_spooler(py: Python<'_>) -> Py<PyAny> {
    if crate::spool::current_spooler().is_some() {
        pyo3::types::PyBool::new(py, true).to_owned().into_any().unbind()
    } else {
        py.None()
    }
}

#[pyfunction]
fn spooler_dir(py: Python<'_>) -> PyResult<Bound<'_, PyBytes>> {
    use std::os::unix::ffi::OsStrExt;
    crate::spool::current_spooler()
        .and_then(|index| crate::spool::SpoolBoard::global()?.slot_dir(index))
        .map(|dir| PyBytes::new(py, dir.path.as_os_str().as_bytes()))
        .ok_or_else(|| pyo3::exceptions::PyValueError::new_err("This process is not a spooler"))
}

/// uWSGI's `uwsgi_python_dict_from_spooler_content`: `spooler_task_name` (str key), each argument as bytes
/// key and value, and `body` (str key) when there is one.
fn task_dict<'py>(
    py: Python<'py>,
    name: &[u8],
    args: &[(Vec<u8>, Vec<u8>)],
    body: &[u8],
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("spooler_task_name", PyBytes::new(py, name))?;
    for (key, value) in args {
        dict.set_item(PyBytes::new(py, key), PyBytes::new(py, value))?;
    }
    if !body.is_empty() {
        dict.set_item("body", PyBytes::new(py, body))?;
    }
    Ok(dict)
}

/// Runs one task through `uwsgi.spooler` (uWSGI's `uwsgi_python_spooler`): its int answer, SPOOL_IGNORE
/// when no callable is set, SPOOL_RETRY when it raised (the traceback is logged) or answered a non-int.
pub fn run_spooler_callable(name: &[u8], args: &[(Vec<u8>, Vec<u8>)], body: &[u8]) -> i32 {
    Python::attach(|py| {
        let Ok(module) = py.import("uwsgi") else { return SPOOL_IGNORE };
        let callable = match module.getattr("spooler") {
            Ok(callable) if !callable.is_none() => callable,
            _ => return SPOOL_IGNORE,
        };
        let dict = match task_dict(py, name, args, body) {
            Ok(dict) => dict,
            Err(_) => return SPOOL_OK,
        };
        match callable.call1((dict,)) {
            Ok(answer) if answer.is_instance_of::<pyo3::types::PyInt>() => {
                answer.extract::<i64>().map_or(SPOOL_RETRY, |n| n as i32)
            }
            Ok(_) => SPOOL_RETRY,
            Err(err) => {
                err.print(py);
                SPOOL_RETRY
            }
        }
    })
}

/// `spooler-import`: imports each module (a path or `.py` name is imported from its file) in a spooler.
pub fn spooler_imports(imports: &[String]) {
    Python::attach(|py| {
        for name in imports {
            let result = if name.contains('/') || name.ends_with(".py") {
                let module_name = std::path::Path::new(name)
                    .file_stem()
                    .map(|s| s.to_string_lossy().replace(['.', '-'], "_"))
                    .unwrap_or_else(|| "spooler_import".into());
                py.import("importlib.util").and_then(|util| {
                    let spec = util.call_method1("spec_from_file_location", (module_name.as_str(), name.as_str()))?;
                    let module = util.call_method1("module_from_spec", (&spec,))?;
                    py.import("sys")?.getattr("modules")?.set_item(module_name.as_str(), &module)?;
                    spec.getattr("loader")?.call_method1("exec_module", (&module,))?;
                    Ok(())
                })
            } else {
                py.import(name.as_str()).map(|_| ())
            };
            if let Err(err) = result {
                tracing::error!("spooler-import {name} failed:");
                err.print(py);
            }
        }
    });
}
// --- end spooler functions ---
