//! Starting the embedded CPython interpreter from a `PyConfig`, or adopting the one that loaded liege.
//!
//! Two builds (see `docs/python.md` and `crate::launch`): the binary initialises the CPython it embeds
//! ([`initialize`] below); the extension module runs inside an interpreter that is already up, so
//! [`initialize`] must not start another one: it checks that the vassal's virtualenv belongs to this Python
//! and makes the running interpreter look as the embedded one would (`sys.argv`, `os.environ`, `sys.path`,
//! signal dispositions, line-buffered stdio): see [`adopt`].
//!
//! Why not `Py_Initialize()`: we must choose `sys.executable` ourselves. CPython derives `sys.prefix` from it
//! and, for a virtualenv, finds `pyvenv.cfg` next to it; pointing it at `VENV/bin/python` makes a virtualenv
//! behave exactly as when its own `python` runs (site-packages, `sys.prefix`, `sys.base_prefix`). uWSGI's
//! `Py_SetPythonHome(venv)` instead breaks stdlib lookup for `python -m venv` environments.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use pyo3::ffi;

/// The interpreter this binary was built against (its libpython is the one we link).
const BUILD_PYTHON: &str = env!("LIEGE_PYTHON_EXECUTABLE");
/// `major.minor` of that interpreter.
pub const EMBEDDED_VERSION: &str = env!("LIEGE_PYTHON_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("virtualenv '{0}' has no bin/python")]
    NoVirtualenvPython(PathBuf),
    #[error(
        "virtualenv '{}' was made for Python {found}, this liege binary embeds Python {embedded}; fix: set \
         `python = {}/bin/python` (with liege installed there: {}/bin/python -m pip install liege), or \
         recreate it with Python {embedded}",
        path.display(), path.display(), path.display()
    )]
    VersionMismatch { path: PathBuf, found: String, embedded: String },
    #[error(
        "virtualenv '{}' was made for Python {found}, but this vassal runs on Python {running} ({}); never \
         mixing one interpreter with another's site-packages. Fix: drop `python =` (the vassal then runs on \
         {}/bin/python), or recreate the virtualenv: {} -m venv {}",
        venv.display(), interpreter.display(), venv.display(), interpreter.display(), venv.display()
    )]
    HostedVersionMismatch { venv: PathBuf, found: String, running: String, interpreter: PathBuf },
    #[error("Python failed to start: {0}")]
    Status(String),
    #[error("path contains a NUL byte: {0}")]
    Nul(PathBuf),
}

/// Initialises CPython once in this process. The calling thread holds the GIL afterwards.
///
/// `pyargv` (uWSGI's option of that name, already split at spaces) becomes `sys.argv[1:]`. `env` are the
/// vassal's `env = K=V` options, already in the process environment (an embedded interpreter reads them as
/// it starts; a running one is told, see [`adopt`]).
pub fn initialize(virtualenv: Option<&Path>, pyargv: &[String], env: &[(String, String)]) -> Result<(), InitError> {
    if let Some(hosted) = crate::launch::hosted() {
        return adopt(hosted, virtualenv, pyargv, env);
    }
    // SAFETY: Py_IsInitialized may be called at any time, without the GIL.
    if unsafe { ffi::Py_IsInitialized() } != 0 {
        // (a lazy-apps worker whose master already loaded Python for another reason: nothing to do)
        return Ok(());
    }
    let executable = match virtualenv {
        Some(venv) => venv_python(venv)?,
        None => PathBuf::from(BUILD_PYTHON),
    };
    let executable_c =
        CString::new(executable.as_os_str().as_bytes()).map_err(|_| InitError::Nul(executable.clone()))?;
    let mut argv_c = vec![CString::from(c"liege")];
    for argument in pyargv {
        argv_c.push(CString::new(argument.as_bytes()).map_err(|_| InitError::Nul(PathBuf::from(argument)))?);
    }
    // SAFETY: the PyConfig API is used as documented: init, set fields, initialise, clear; every status checked.
    unsafe {
        let mut config: ffi::PyConfig = std::mem::zeroed();
        ffi::PyConfig_InitPythonConfig(&mut config);
        // Signals belong to the master and workers (graceful stop, reload); Python must not install its own
        // SIGINT handler that would turn our quick stop into a KeyboardInterrupt in the app.
        config.install_signal_handlers = 0;
        // Buffered here, made line-buffered below: see `line_buffered_stdio`.
        config.buffered_stdio = 1;
        config.parse_argv = 0;
        let status = ffi::PyConfig_SetBytesString(&mut config, &mut config.executable, executable_c.as_ptr());
        check(status, &mut config)?;
        let status = ffi::PyConfig_SetBytesString(&mut config, &mut config.program_name, executable_c.as_ptr());
        check(status, &mut config)?;
        // sys.argv = ['liege', *pyargv], as uWSGI gives ['uwsgi', *pyargv]: apps that read sys.argv[0] get a
        // sane value, and apps configured by arguments (OpenStack's --config-file) get theirs.
        let mut argv: Vec<*const std::ffi::c_char> = argv_c.iter().map(|argument| argument.as_ptr()).collect();
        let status = ffi::PyConfig_SetBytesArgv(&mut config, argv.len() as ffi::Py_ssize_t, argv.as_mut_ptr());
        check(status, &mut config)?;
        let status = ffi::Py_InitializeFromConfig(&config);
        check(status, &mut config)?;
        ffi::PyConfig_Clear(&mut config);
    }
    line_buffered_stdio()
}

/// Extension mode: the interpreter that loaded liege is already running (it holds the GIL on this thread,
/// which keeps it, as the embedded path does after `Py_InitializeFromConfig`). What `PyConfig` would have
/// set is set here instead:
/// - the virtualenv must be this interpreter's: with another `major.minor` its C extensions would crash far
///   from the cause, so that is an error naming both versions and the fix. With the same version but not
///   this interpreter's own environment (`python = X` plus `virtualenv = V`), V's site-packages are added,
///   as uWSGI's `home` does for its plugin's Python;
/// - `sys.argv = ['liege', *pyargv]`; the `env` options reach `os.environ` (read once, at startup);
/// - `sys.path[0]`, which `-c`/`-m`/a console script put there (not the app's directory), goes: the app's
///   path is built from its options alone, as in the embedded build;
/// - SIGINT back to its default (Python's handler would turn a quick stop into a `KeyboardInterrupt` inside
///   the app; the embedded build sets `install_signal_handlers = 0`), and SIGXFSZ too; SIGPIPE stays
///   ignored, as in the binary (Rust's runtime ignores it too).
fn adopt(
    hosted: &crate::launch::Hosted,
    virtualenv: Option<&Path>,
    pyargv: &[String],
    env: &[(String, String)],
) -> Result<(), InitError> {
    use pyo3::prelude::*;
    use pyo3::types::PyList;
    use std::sync::atomic::{AtomicBool, Ordering};
    /// Once per process, as `Py_InitializeFromConfig` is: an in-place reload must not drop another
    /// `sys.path` entry.
    static ADOPTED: AtomicBool = AtomicBool::new(false);
    if ADOPTED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut extra_site = None;
    if let Some(venv) = virtualenv {
        let venv_python = venv.join("bin").join("python");
        if !venv_python.exists() {
            return Err(InitError::NoVirtualenvPython(venv.to_owned()));
        }
        if let Some(found) = crate::launch::venv_version(venv) {
            if found != hosted.version {
                return Err(InitError::HostedVersionMismatch {
                    venv: venv.to_owned(),
                    found,
                    running: hosted.version.clone(),
                    interpreter: hosted.executable.clone(),
                });
            }
        }
        extra_site = Some(venv.join("lib").join(format!("python{}", hosted.version)).join("site-packages"));
    }
    Python::attach(|py| {
        let sys = py.import("sys")?;
        let prefix: PathBuf = sys.getattr("prefix")?.extract()?;
        if let (Some(site_dir), Some(venv)) = (&extra_site, virtualenv) {
            let same = std::fs::canonicalize(&prefix).ok() == std::fs::canonicalize(venv).ok();
            if !same && site_dir.is_dir() {
                py.import("site")?.call_method1("addsitedir", (site_dir,))?;
            }
        }
        let argv = PyList::new(py, std::iter::once("liege").chain(pyargv.iter().map(String::as_str)))?;
        sys.setattr("argv", argv)?;
        let environ = py.import("os")?.getattr("environ")?;
        for (key, value) in env {
            environ.set_item(key, value)?;
        }
        let safe_path = sys.getattr("flags")?.getattr("safe_path").and_then(|flag| flag.is_truthy()).unwrap_or(false);
        let path = sys.getattr("path")?;
        if !safe_path && path.len()? > 0 {
            path.del_item(0)?;
        }
        let signal = py.import("signal")?;
        let default = signal.getattr("SIG_DFL")?;
        for name in ["SIGINT", "SIGXFSZ"] {
            signal.call_method1("signal", (signal.getattr(name)?, &default))?;
        }
        Ok::<_, PyErr>(())
    })
    .map_err(|err| InitError::Status(format!("cannot prepare the running interpreter: {err}")))?;
    ADOPTED.store(true, Ordering::Relaxed);
    line_buffered_stdio()
}

/// App prints and tracebacks must reach the log as they happen (not when 8 KiB pile up), and each line in
/// ONE write: with unbuffered stdio (`-u`, `PYTHONUNBUFFERED`) `print()` writes the text and the newline
/// separately, so lines of several workers sharing the log pipe interleave mid-line.
fn line_buffered_stdio() -> Result<(), InitError> {
    use pyo3::prelude::*;
    Python::attach(|py| {
        let sys = py.import("sys")?;
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("line_buffering", true)?;
        kwargs.set_item("write_through", false)?;
        for name in ["stdout", "stderr"] {
            let stream = sys.getattr(name)?;
            if !stream.is_none() {
                stream.call_method("reconfigure", (), Some(&kwargs))?;
            }
        }
        Ok::<_, PyErr>(())
    })
    .map_err(|err| InitError::Status(format!("cannot set up sys.stdout/sys.stderr: {err}")))
}

unsafe fn check(status: ffi::PyStatus, config: &mut ffi::PyConfig) -> Result<(), InitError> {
    if ffi::PyStatus_Exception(status) == 0 {
        return Ok(());
    }
    let message = if status.err_msg.is_null() {
        "unknown error".to_owned()
    } else {
        std::ffi::CStr::from_ptr(status.err_msg).to_string_lossy().into_owned()
    };
    ffi::PyConfig_Clear(config);
    Err(InitError::Status(message))
}

/// `VENV/bin/python`, after checking the virtualenv was made for the Python we embed: a 3.12 venv's
/// site-packages would load C extensions built for another ABI and crash far from the cause.
fn venv_python(venv: &Path) -> Result<PathBuf, InitError> {
    let python = venv.join("bin").join("python");
    if !python.exists() {
        return Err(InitError::NoVirtualenvPython(venv.to_owned()));
    }
    let embedded = EMBEDDED_VERSION;
    if let Some(found) = crate::launch::venv_version(venv) {
        if found != embedded {
            return Err(InitError::VersionMismatch { path: venv.to_owned(), found, embedded: embedded.to_owned() });
        }
    }
    Ok(python)
}
