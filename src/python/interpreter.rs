//! Starting the embedded CPython interpreter from a `PyConfig`.
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
    #[error("virtualenv '{path}' was made for Python {found}, liege embeds Python {embedded}")]
    VersionMismatch { path: PathBuf, found: String, embedded: String },
    #[error("Python failed to start: {0}")]
    Status(String),
    #[error("path contains a NUL byte: {0}")]
    Nul(PathBuf),
}

/// Initialises CPython once in this process. The calling thread holds the GIL afterwards.
///
/// `pyargv` (uWSGI's option of that name, already split at spaces) becomes `sys.argv[1:]`.
pub fn initialize(virtualenv: Option<&Path>, pyargv: &[String]) -> Result<(), InitError> {
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
    if let Ok(cfg) = std::fs::read_to_string(venv.join("pyvenv.cfg")) {
        let found = cfg.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            matches!(key.trim(), "version" | "version_info").then(|| value.trim().to_owned())
        });
        if let Some(found) = found {
            if found != embedded && !found.starts_with(&format!("{embedded}.")) {
                return Err(InitError::VersionMismatch { path: venv.to_owned(), found, embedded: embedded.to_owned() });
            }
        }
    }
    Ok(python)
}
